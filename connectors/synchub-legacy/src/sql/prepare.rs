//! Connecting to the legacy database and preparing one query per table:
//! its columns are discovered in `information_schema`, so custom-field
//! columns an admin added are read without configuration.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::Connection as _;
use sqlx::Row as _;

use super::schema::TableSpec;
use crate::mapping::{Compiled, Slot};
use crate::LegacyError;

/// A table ready to be read: the SELECT (without WHERE/LIMIT) and its columns.
pub(crate) struct Prepared {
    pub spec: TableSpec,
    pub compiled: Compiled,
    /// `SELECT … FROM base b LEFT JOIN …`; the first column is the row id.
    pub select: String,
    /// Slots of the selected columns after the id.
    pub slots: Vec<Slot>,
}

/// Opens a small pool; errors say what to check, never the password.
pub(crate) async fn connect(
    options: &MySqlConnectOptions,
    url: &str,
) -> Result<MySqlPool, LegacyError> {
    // One direct connection first: a pool would retry until its timeout and
    // report "pool timed out" instead of what the server said.
    let first = MySqlConnection::connect_with(options)
        .await
        .map_err(|e| connect_error(&e, url))?;
    drop(first);
    MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .map_err(|e| connect_error(&e, url))
}

fn connect_error(e: &sqlx::Error, url: &str) -> LegacyError {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let (message, auth) = if lower.contains("access denied") {
        (
            format!("access denied ({text}): check the user and password in the URL"),
            true,
        )
    } else if lower.contains("unknown database") {
        (
            format!("{text}: check the database name at the end of the URL"),
            false,
        )
    } else if lower.contains("refused")
        || lower.contains("timed out")
        || matches!(e, sqlx::Error::PoolTimedOut)
    {
        (
            format!("{text}: is MySQL/MariaDB running and listening on that host and port?"),
            false,
        )
    } else {
        (text, false)
    };
    LegacyError::Connect {
        url: url.to_string(),
        message,
        auth,
    }
}

pub(crate) fn query_error(e: &sqlx::Error, url: &str, table: &str) -> LegacyError {
    LegacyError::Query {
        url: url.to_string(),
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// Quotes an identifier for MySQL.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Discovers the columns of every table and builds the queries. Tables the
/// mapping does not mention are left out; a missing base table is an error,
/// a missing joined table is skipped.
pub(crate) async fn prepare(
    pool: &MySqlPool,
    url: &str,
    kind: &str,
    specs: Vec<(TableSpec, Compiled)>,
) -> Result<Vec<Prepared>, LegacyError> {
    let rows = sqlx::query(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| query_error(&e, url, "information_schema.COLUMNS"))?;
    let mut columns: HashMap<String, Vec<String>> = HashMap::new();
    for row in rows {
        let table: String = row
            .try_get(0)
            .map_err(|e| query_error(&e, url, "information_schema.COLUMNS"))?;
        let column: String = row
            .try_get(1)
            .map_err(|e| query_error(&e, url, "information_schema.COLUMNS"))?;
        columns
            .entry(table.to_lowercase())
            .or_default()
            .push(column);
    }
    let labels = if columns.contains_key("vtiger_field") {
        vtiger_labels(pool, url).await?
    } else {
        HashMap::new()
    };
    let mut prepared = Vec::new();
    for (spec, compiled) in specs {
        let Some(base_columns) = columns.get(spec.table) else {
            return Err(LegacyError::Schema {
                url: url.to_string(),
                message: format!(
                    "the database has no table '{}': is it a {kind} database?",
                    spec.table
                ),
            });
        };
        let mut seen: HashSet<String> = HashSet::new();
        let mut select = format!("SELECT CAST(b.{} AS CHAR)", ident(spec.id));
        let mut slots = Vec::new();
        let mut add = |alias_of: &str, expr: String, select: &mut String| {
            let mut alias = alias_of.to_string();
            if !seen.insert(alias.to_lowercase()) {
                return;
            }
            if alias.is_empty() {
                alias = "column".into();
            }
            select.push_str(&format!(", CAST({expr} AS CHAR) AS {}", ident(&alias)));
            slots.push(compiled.slot(&alias));
        };
        for column in base_columns {
            add(column, format!("b.{}", ident(column)), &mut select);
        }
        let mut from = format!(" FROM {} b", ident(spec.table));
        for (i, join) in spec.joins.iter().enumerate() {
            let Some(join_columns) = columns.get(join.table) else {
                tracing::warn!(
                    table = join.table,
                    "joined table missing; its columns are skipped"
                );
                continue;
            };
            let alias = format!("j{i}");
            from.push_str(&format!(
                " LEFT JOIN {} {alias} ON {alias}.{} = b.{}",
                ident(join.table),
                ident(join.key),
                ident(spec.id)
            ));
            for column in join_columns {
                if column.eq_ignore_ascii_case(join.key) {
                    continue;
                }
                let name = if join.labels {
                    labels
                        .get(&(join.table.to_string(), column.to_lowercase()))
                        .unwrap_or(column)
                } else {
                    column
                };
                add(name, format!("{alias}.{}", ident(column)), &mut select);
            }
        }
        select.push_str(&from);
        prepared.push(Prepared {
            spec,
            compiled,
            select,
            slots,
        });
    }
    Ok(prepared)
}

/// vtiger custom fields are columns `cf_NNN`; their labels live in `vtiger_field`.
async fn vtiger_labels(
    pool: &MySqlPool,
    url: &str,
) -> Result<HashMap<(String, String), String>, LegacyError> {
    let rows = sqlx::query(
        "SELECT CAST(tablename AS CHAR), CAST(columnname AS CHAR), CAST(fieldlabel AS CHAR) FROM vtiger_field \
         WHERE columnname LIKE 'cf\\_%'",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| query_error(&e, url, "vtiger_field"))?;
    let mut labels = HashMap::new();
    for row in rows {
        let get = |i: usize| {
            row.try_get::<Option<String>, _>(i)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        let (table, column, label) = (get(0), get(1), get(2));
        if !label.trim().is_empty() {
            labels.insert((table, column.to_lowercase()), label.trim().to_string());
        }
    }
    Ok(labels)
}
