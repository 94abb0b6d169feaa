//! Reading the CRM relations of migration 0007 (`contacts`, `orders`,
//! `contact_sources`, `contact_timeline`, …; docs/store.md): contact search,
//! the linked systems' copies of a contact, its timeline, and keyset pages
//! of a whole relation for export in bounded memory.
//!
//! The relations are views over the stored documents: PostgreSQL types them
//! (jsonb, timestamptz, numeric), SQLite keeps JSON and RFC 3339 text. The
//! `Any` driver decodes neither jsonb nor timestamptz nor numeric, so every
//! column read here is cast to text and times are brought back to RFC 3339.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row;

use crate::merges::Merge;
use crate::sql::Sql;
use crate::{corrupt, QueryContext, Store, StoreError};

/// A contact as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSummary {
    /// CRM id.
    pub id: String,
    /// Display name (full name, else given + family, else the first email).
    pub name: Option<String>,
    /// Primary email, lower case.
    pub email: Option<String>,
    /// Primary phone, E.164 where it could be normalized.
    pub phone: Option<String>,
    /// Company name.
    pub company: Option<String>,
    /// When the CRM record last changed (RFC 3339).
    pub updated_at: String,
}

/// What to look for in `contacts`. A contact matches when any exact key
/// matches or any pattern is a substring of its name or primary email.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactSearch {
    /// Exact-match keys (`email:…`, `phone:+886…`), as synchub-identity makes them.
    pub keys: Vec<String>,
    /// Substrings, compared case-insensitively with the name (also without
    /// spaces, and family name first) and the primary email.
    pub patterns: Vec<String>,
    /// Exact CRM ids.
    pub ids: Vec<String>,
}

impl ContactSearch {
    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.patterns.is_empty() && self.ids.is_empty()
    }
}

/// One linked system's copy of a contact.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactSource {
    /// Connection name.
    pub system: String,
    /// The contact's id there.
    pub external_id: String,
    /// The fields as that system held them at the last sync.
    pub snapshot: Option<Map<String, Value>>,
    /// The system's own change time, where it gives one (RFC 3339).
    pub remote_updated_at: Option<String>,
    /// When synchub last synced it (RFC 3339).
    pub last_synced_at: String,
    /// Deleted in that system.
    pub deleted: bool,
}

/// One entry of a contact's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// When (RFC 3339).
    pub at: Option<String>,
    /// `order`, `invoice` or `activity`.
    pub kind: String,
    /// CRM id of the order, invoice or activity.
    pub record_id: String,
    /// Order or invoice number, or the activity's subject.
    pub title: Option<String>,
    /// Status (for an activity: its kind, e.g. `email`).
    pub status: Option<String>,
    /// Total, exact decimal text.
    pub amount: Option<String>,
    /// ISO 4217 currency.
    pub currency: Option<String>,
}

/// A relation that can be exported whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The `contacts` view.
    Contacts,
    /// The `orders` view.
    Orders,
}

/// An exported column: its name and whether its text is JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// The value is a JSON document (a list, an object).
    pub json: bool,
}

const fn col(name: &'static str) -> Column {
    Column { name, json: false }
}

const fn json_col(name: &'static str) -> Column {
    Column { name, json: true }
}

const CONTACT_COLUMNS: &[Column] = &[
    col("id"),
    col("name"),
    col("full_name"),
    col("given_name"),
    col("family_name"),
    col("email"),
    col("phone"),
    json_col("emails"),
    json_col("phones"),
    col("company"),
    col("title"),
    json_col("addresses"),
    json_col("tags"),
    col("birth_date"),
    col("created_at"),
    col("updated_at"),
];

const ORDER_COLUMNS: &[Column] = &[
    col("id"),
    col("number"),
    col("contact_id"),
    col("customer_external_id"),
    col("customer_email"),
    col("customer_name"),
    col("status"),
    col("financial_status"),
    col("fulfillment_status"),
    col("currency"),
    col("subtotal"),
    col("tax_total"),
    col("total"),
    col("placed_at"),
    col("created_at"),
    col("updated_at"),
];

/// Columns holding times, brought back to RFC 3339 on PostgreSQL.
const TIME_COLUMNS: &[&str] = &["created_at", "updated_at", "placed_at"];

impl Relation {
    /// The view's name.
    pub fn view(self) -> &'static str {
        match self {
            Relation::Contacts => "contacts",
            Relation::Orders => "orders",
        }
    }

    /// The exported columns, in order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Relation::Contacts => CONTACT_COLUMNS,
            Relation::Orders => ORDER_COLUMNS,
        }
    }
}

/// A time as PostgreSQL prints a timestamptz cast to text
/// (`2026-12-04 17:56:10.247518+00`), or already RFC 3339, as RFC 3339 UTC.
fn rfc3339(text: String) -> String {
    if DateTime::parse_from_rfc3339(&text).is_ok() {
        return text;
    }
    match DateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        Ok(t) => t
            .with_timezone(&Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Err(_) => text,
    }
}

/// `%text%` for LIKE, with the wildcards of `text` escaped (`\`).
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn text(row: &sqlx::any::AnyRow, col: &str, ctx: &'static str) -> Result<String, StoreError> {
    row.try_get(col).ctx(ctx)
}

fn opt(
    row: &sqlx::any::AnyRow,
    col: &str,
    ctx: &'static str,
) -> Result<Option<String>, StoreError> {
    row.try_get(col).ctx(ctx)
}

impl Store {
    /// Live contacts matching `search`, by name then id; at most `limit`.
    /// An empty search lists every contact.
    pub async fn find_contacts(
        &self,
        search: &ContactSearch,
        limit: i64,
    ) -> Result<Vec<ContactSummary>, StoreError> {
        const CTX: &str = "searching contacts";
        let mut conn = self.pool.acquire().await.ctx("acquiring a connection")?;
        let postgres = crate::sql::is_postgres(&conn);
        let mut q = Sql::new(
            "SELECT id, name, email, phone, company, CAST(updated_at AS TEXT) AS updated_at \
             FROM contacts",
        );
        if !search.is_empty() {
            q.push(" WHERE 1 = 0");
            if !search.ids.is_empty() {
                q.push(" OR id").in_set(postgres, &search.ids);
            }
            if !search.keys.is_empty() {
                q.push(" OR id IN (SELECT crm_id FROM match_key WHERE kind = 'contact' AND key")
                    .in_set(postgres, &search.keys)
                    .push(")");
            }
            for p in &search.patterns {
                let like = like_pattern(p);
                let squeezed = like_pattern(&p.replace(char::is_whitespace, ""));
                q.push(" OR lower(COALESCE(name, '')) LIKE ")
                    .bind(like.clone())
                    .push(" ESCAPE '\\'");
                q.push(" OR lower(COALESCE(email, '')) LIKE ")
                    .bind(like.clone())
                    .push(" ESCAPE '\\'");
                q.push(" OR lower(COALESCE(family_name, '') || COALESCE(given_name, '')) LIKE ")
                    .bind(squeezed.clone())
                    .push(" ESCAPE '\\'");
                q.push(
                    " OR lower(COALESCE(family_name, '') || ' ' || COALESCE(given_name, '')) LIKE ",
                )
                .bind(like)
                .push(" ESCAPE '\\'");
                q.push(" OR replace(lower(COALESCE(full_name, '')), ' ', '') LIKE ")
                    .bind(squeezed)
                    .push(" ESCAPE '\\'");
            }
        }
        q.push(" ORDER BY name, id LIMIT ").bind(limit.max(0));
        let rows = q.fetch_all(&mut conn).await.ctx(CTX)?;
        rows.iter()
            .map(|r| {
                Ok(ContactSummary {
                    id: text(r, "id", CTX)?,
                    name: opt(r, "name", CTX)?,
                    email: opt(r, "email", CTX)?,
                    phone: opt(r, "phone", CTX)?,
                    company: opt(r, "company", CTX)?,
                    updated_at: rfc3339(text(r, "updated_at", CTX)?),
                })
            })
            .collect()
    }

    /// The live contact `id` stands for: itself when live, the contact it
    /// was merged into (following chained merges), or `None` when it is
    /// unknown or deleted.
    pub async fn live_contact_id(&self, id: &str) -> Result<Option<String>, StoreError> {
        const CTX: &str = "resolving a contact id";
        let row = sqlx::query("SELECT contact_id FROM contact_ids WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .ctx(CTX)?;
        row.map(|r| text(&r, "contact_id", CTX)).transpose()
    }

    /// Each linked system's copy of a live contact, by system and id there.
    pub async fn contact_sources(
        &self,
        contact_id: &str,
    ) -> Result<Vec<ContactSource>, StoreError> {
        const CTX: &str = "reading a contact's linked systems";
        let rows = sqlx::query(
            "SELECT system, external_id, CAST(snapshot AS TEXT) AS snapshot, \
             CAST(remote_updated_at AS TEXT) AS remote_updated_at, \
             CAST(last_synced_at AS TEXT) AS last_synced_at, deleted \
             FROM contact_sources WHERE contact_id = $1 ORDER BY system, external_id",
        )
        .bind(contact_id)
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        rows.iter()
            .map(|r| {
                let snapshot = match opt(r, "snapshot", CTX)? {
                    Some(s) => Some(serde_json::from_str(&s).map_err(|e| corrupt(CTX, e))?),
                    None => None,
                };
                Ok(ContactSource {
                    system: text(r, "system", CTX)?,
                    external_id: text(r, "external_id", CTX)?,
                    snapshot,
                    remote_updated_at: opt(r, "remote_updated_at", CTX)?.map(rfc3339),
                    last_synced_at: rfc3339(text(r, "last_synced_at", CTX)?),
                    deleted: r.try_get::<i64, _>("deleted").ctx(CTX)? != 0,
                })
            })
            .collect()
    }

    /// A live contact's orders, invoices and activities, oldest first.
    pub async fn contact_timeline(
        &self,
        contact_id: &str,
    ) -> Result<Vec<TimelineEntry>, StoreError> {
        const CTX: &str = "reading a contact's timeline";
        let rows = sqlx::query(
            "SELECT CAST(at AS TEXT) AS at, kind, record_id, title, status, \
             CAST(amount AS TEXT) AS amount, currency \
             FROM contact_timeline WHERE contact_id = $1 ORDER BY at, kind, record_id",
        )
        .bind(contact_id)
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        rows.iter()
            .map(|r| {
                Ok(TimelineEntry {
                    at: opt(r, "at", CTX)?.map(rfc3339),
                    kind: text(r, "kind", CTX)?,
                    record_id: text(r, "record_id", CTX)?,
                    title: opt(r, "title", CTX)?,
                    status: opt(r, "status", CTX)?,
                    amount: opt(r, "amount", CTX)?,
                    currency: opt(r, "currency", CTX)?,
                })
            })
            .collect()
    }

    /// Every merge (undone ones too) into or out of a live contact or a
    /// contact merged into it, oldest first.
    pub async fn contact_merges(&self, contact_id: &str) -> Result<Vec<Merge>, StoreError> {
        const CTX: &str = "reading a contact's merges";
        let rows = sqlx::query(
            "SELECT m.id FROM contact_merge m WHERE m.survivor IN \
             (SELECT id FROM contact_ids WHERE contact_id = $1) \
             OR m.loser IN (SELECT id FROM contact_ids WHERE contact_id = $2) ORDER BY m.id",
        )
        .bind(contact_id)
        .bind(contact_id)
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        let mut conn = self.pool.acquire().await.ctx("acquiring a connection")?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get("id").ctx(CTX)?;
            if let Some(m) = crate::merges::get(&mut conn, id).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Up to `limit` rows of `relation` with ids after `after`, in id order,
    /// each value as text in [`Relation::columns`] order: a whole relation is
    /// read page by page in bounded memory.
    pub async fn relation_page(
        &self,
        relation: Relation,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, Vec<Option<String>>)>, StoreError> {
        const CTX: &str = "exporting a relation";
        let cols: Vec<String> = relation
            .columns()
            .iter()
            .map(|c| format!("CAST({0} AS TEXT) AS {0}", c.name))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
            cols.join(", "),
            relation.view()
        );
        let rows = sqlx::query(&sql)
            .bind(after.unwrap_or("").to_string())
            .bind(limit.max(1))
            .fetch_all(&self.pool)
            .await
            .ctx(CTX)?;
        rows.iter()
            .map(|r| {
                let id = text(r, "id", CTX)?;
                let values = relation
                    .columns()
                    .iter()
                    .map(|c| {
                        let v = opt(r, c.name, CTX)?;
                        Ok(if TIME_COLUMNS.contains(&c.name) {
                            v.map(rfc3339)
                        } else {
                            v
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Ok((id, values))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_times_come_back_as_rfc3339_utc() {
        assert_eq!(
            rfc3339("2026-12-04 17:56:10.247518+00".into()),
            "2026-12-04T17:56:10.247518Z"
        );
        assert_eq!(
            rfc3339("2023-12-31 23:00:10+08".into()),
            "2023-12-31T15:00:10Z"
        );
        assert_eq!(
            rfc3339("2023-12-31T23:00:10Z".into()),
            "2023-12-31T23:00:10Z"
        );
        assert_eq!(rfc3339("not a time".into()), "not a time");
    }

    #[test]
    fn like_patterns_escape_wildcards_and_fold_case() {
        assert_eq!(like_pattern("Ab%_c"), "%ab\\%\\_c%");
        assert_eq!(like_pattern("陳大文"), "%陳大文%");
    }
}
