//! Database sources (`suitecrm`, `vtiger`) read through sqlx over `mysql://`.
//!
//! Each module table is read in primary-key order, one page per query
//! (`WHERE id > ? ORDER BY id LIMIT n`), joined one-to-one with its
//! custom-field and detail tables; e-mails, accounts and owners come from
//! one extra query per page each. Cursor: `{"table": "contacts",
//! "after_id": "…"}`; when a table ends the cursor moves to
//! `{"table": "leads"}`. Every value is read as text (`CAST … AS CHAR`) and
//! goes through the same mapping as export files.

mod prepare;
mod schema;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::Row as _;
use synchub_core::{Connector, ConnectorError, Cursor, ObjectKind, ObjectSpec, Page};
use tokio::sync::OnceCell;

use crate::error::redact_url;
use crate::mapping::{Compiled, Mapping, Row};
use crate::{LegacyError, LegacyOptions};
use prepare::{query_error, Prepared};

/// A SuiteCRM or vtiger database.
pub(crate) struct SqlSource {
    kind: &'static str,
    url: String,
    options: MySqlConnectOptions,
    specs: Vec<(schema::TableSpec, Compiled)>,
    opts: LegacyOptions,
    state: OnceCell<(MySqlPool, Arc<Vec<Prepared>>)>,
}

impl SqlSource {
    /// Parses the URL and pairs each table with its mapping; no IO.
    pub(crate) fn new(
        kind: &'static str,
        url: &str,
        mapping: &Mapping,
        opts: LegacyOptions,
    ) -> Result<SqlSource, LegacyError> {
        let shown = redact_url(url);
        if !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
            return Err(LegacyError::Url {
                url: shown,
                message: format!("{kind} is read from its database: pass mysql://USER:PASSWORD@HOST:PORT/DATABASE"),
            });
        }
        let normalized = url.replacen("mariadb://", "mysql://", 1);
        let options = MySqlConnectOptions::from_str(&normalized).map_err(|e| LegacyError::Url {
            url: shown.clone(),
            message: e.to_string(),
        })?;
        let all = if kind == "vtiger" {
            schema::vtiger()
        } else {
            schema::suitecrm()
        };
        let specs = all
            .into_iter()
            .filter_map(|spec| {
                let object = mapping
                    .objects
                    .iter()
                    .find(|o| o.source.eq_ignore_ascii_case(spec.label))?;
                let compiled = Compiled::new(mapping, object, opts.default_region.as_deref());
                Some((
                    schema::TableSpec {
                        kind: object.object,
                        ..spec
                    },
                    compiled,
                ))
            })
            .collect();
        Ok(SqlSource {
            kind,
            url: shown,
            options,
            specs,
            opts,
            state: OnceCell::new(),
        })
    }

    async fn state(&self) -> Result<&(MySqlPool, Arc<Vec<Prepared>>), LegacyError> {
        self.state
            .get_or_try_init(|| async {
                let pool = prepare::connect(&self.options, &self.url).await?;
                let prepared =
                    prepare::prepare(&pool, &self.url, self.kind, self.specs.clone()).await?;
                Ok((pool, Arc::new(prepared)))
            })
            .await
    }

    async fn read(&self, object: ObjectKind, from: Option<&Cursor>) -> Result<Page, LegacyError> {
        let (pool, prepared) = self.state().await?;
        let tables: Vec<&Prepared> = prepared.iter().filter(|p| p.spec.kind == object).collect();
        if tables.is_empty() {
            return Ok(Page {
                done: true,
                ..Page::default()
            });
        }
        let (index, after) = match from {
            None => (0, None),
            Some(cursor) => locate(&tables, &cursor.0)?,
        };
        let table = tables[index];
        let limit = self.opts.page_size.max(1);
        let mut sql = table.select.clone();
        let id = format!("b.`{}`", table.spec.id);
        if after.is_some() {
            sql.push_str(&format!(" WHERE {id} > ?"));
        }
        sql.push_str(&format!(" ORDER BY {id} LIMIT {limit}"));
        let mut query = sqlx::query(&sql);
        if let Some(after) = &after {
            query = query.bind(after.clone());
        }
        let rows = query
            .fetch_all(pool)
            .await
            .map_err(|e| query_error(&e, &self.url, table.spec.table))?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: Option<String> = row
                .try_get(0)
                .map_err(|e| query_error(&e, &self.url, table.spec.table))?;
            let mut cells = Vec::with_capacity(table.slots.len());
            for i in 0..table.slots.len() {
                let v: Option<String> = row
                    .try_get(i + 1)
                    .map_err(|e| query_error(&e, &self.url, table.spec.table))?;
                cells.push(v.unwrap_or_default());
            }
            ids.push(id.unwrap_or_default());
            values.push(cells);
        }
        let extras = self.enrich(pool, table, &ids).await?;
        let mut page = Page::default();
        for (id, cells) in ids.iter().zip(&values) {
            let extra = extras.get(id).map(Vec::as_slice).unwrap_or_default();
            let extra_slots: Vec<_> = extra
                .iter()
                .map(|(name, _)| table.compiled.slot(name))
                .collect();
            let mut row_cells: Vec<_> = table
                .slots
                .iter()
                .zip(cells.iter().map(String::as_str))
                .collect();
            row_cells.extend(
                extra_slots
                    .iter()
                    .zip(extra.iter().map(|(_, v)| v.as_str())),
            );
            let row = Row {
                cells: row_cells,
                number: 0,
                location: format!("{} id {id}", table.spec.table),
            };
            match table.compiled.map_row(&row) {
                Ok(record) if self.opts.skip_deleted && record.deleted => {}
                Ok(record) => page.records.push(record),
                Err(rejected) => page.rejected.push(*rejected),
            }
        }
        let finished = rows.len() < limit;
        let last = index + 1 == tables.len();
        page.done = finished && last;
        page.next = Some(Cursor(match (finished && !last, ids.last()) {
            (true, _) => json!({ "table": tables[index + 1].spec.label }),
            (false, Some(last_id)) => json!({ "table": table.spec.label, "after_id": last_id }),
            (false, None) => json!({ "table": table.spec.label, "after_id": after }),
        }));
        Ok(page)
    }

    /// Runs the table's relationship queries for the page's ids.
    async fn enrich(
        &self,
        pool: &MySqlPool,
        table: &Prepared,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<(String, String)>>, LegacyError> {
        let mut extras: HashMap<String, Vec<(String, String)>> = HashMap::new();
        if ids.is_empty() {
            return Ok(extras);
        }
        let placeholders = vec!["?"; ids.len()].join(",");
        for template in &table.spec.enrich {
            let sql = template.replace("{ids}", &placeholders);
            let mut query = sqlx::query(&sql);
            for id in ids {
                query = query.bind(id);
            }
            let rows = query
                .fetch_all(pool)
                .await
                .map_err(|e| query_error(&e, &self.url, table.spec.table))?;
            for row in rows {
                let Some(id) = row.try_get::<Option<String>, _>(0).ok().flatten() else {
                    continue;
                };
                let entry = extras.entry(id).or_default();
                for (i, column) in row.columns().iter().enumerate().skip(1) {
                    use sqlx::Column as _;
                    if let Ok(Some(v)) = row.try_get::<Option<String>, _>(i) {
                        let pair = (column.name().to_string(), v);
                        if !entry.contains(&pair) {
                            entry.push(pair);
                        }
                    }
                }
            }
        }
        Ok(extras)
    }
}

/// Finds the table and position a cursor names.
fn locate(tables: &[&Prepared], cursor: &Value) -> Result<(usize, Option<String>), LegacyError> {
    let bad = |message: &str| LegacyError::Cursor {
        cursor: cursor.to_string(),
        message: message.to_string(),
    };
    let name = cursor
        .get("table")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("it has no \"table\""))?;
    let index = tables
        .iter()
        .position(|t| t.spec.label == name)
        .ok_or_else(|| bad("this source does not read that table; run without --resume"))?;
    let after = match cursor.get("after_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    Ok((index, after))
}

#[async_trait]
impl Connector for SqlSource {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        let mut kinds: Vec<ObjectKind> = Vec::new();
        for (spec, _) in &self.specs {
            if !kinds.contains(&spec.kind) {
                kinds.push(spec.kind);
            }
        }
        kinds
            .into_iter()
            .map(|kind| ObjectSpec {
                kind,
                can_read: true,
                incremental: false,
                can_write: false,
            })
            .collect()
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.state().await.map(|_| ()).map_err(ConnectorError::from)
    }

    async fn estimate(&self, object: ObjectKind) -> Option<u64> {
        let (pool, prepared) = self.state().await.ok()?;
        let mut total = 0u64;
        for table in prepared.iter().filter(|p| p.spec.kind == object) {
            // The table name comes from the built-in schema, never from input.
            let sql = format!("SELECT COUNT(*) FROM `{}`", table.spec.table);
            let n: i64 = sqlx::query_scalar(&sql).fetch_one(pool).await.ok()?;
            total += u64::try_from(n).unwrap_or(0);
        }
        Some(total)
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        self.read(object, from).await.map_err(ConnectorError::from)
    }
}
