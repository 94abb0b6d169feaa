//! Dead letters: source items that could not be mapped or validated, kept
//! with their raw payload and the reason. A replay of the same item (a page
//! re-read after a crash, a full refresh) does not add a second row.

use sqlx::{AnyConnection, Row};
use synchub_core::ObjectKind;

use crate::records::CHUNK;
use crate::sql::Sql;
use crate::{now_text, QueryContext, Store, StoreError};

/// A dead letter to store.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Connection it came from.
    pub connection: String,
    /// Object kind.
    pub object: ObjectKind,
    /// Source id, if known.
    pub external_id: Option<String>,
    /// Where in the source.
    pub location: Option<String>,
    /// Why it was rejected.
    pub reason: String,
    /// The raw payload, as JSON text.
    pub payload: String,
}

impl DeadLetter {
    fn fingerprint(&self) -> String {
        let text = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.connection,
            self.object,
            self.external_id.as_deref().unwrap_or(""),
            self.location.as_deref().unwrap_or(""),
            self.reason,
            self.payload
        );
        synchub_core::hash_bytes(text.as_bytes())
    }
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDeadLetter {
    /// Row id.
    pub id: i64,
    /// The item and why it was rejected.
    pub letter: DeadLetter,
    /// When it was stored (RFC 3339).
    pub created_at: String,
    /// When it was last replayed.
    pub replayed_at: Option<String>,
    /// When a replay landed it in the CRM.
    pub resolved_at: Option<String>,
}

const STORED: &str = "SELECT id, connection, object, external_id, location, reason, payload, \
     created_at, replayed_at, resolved_at FROM dead_letter";

fn decode_stored(r: &sqlx::any::AnyRow) -> Result<StoredDeadLetter, StoreError> {
    const CTX: &str = "reading a dead letter";
    let object: String = r.try_get("object").ctx(CTX)?;
    Ok(StoredDeadLetter {
        id: r.try_get("id").ctx(CTX)?,
        letter: DeadLetter {
            connection: r.try_get("connection").ctx(CTX)?,
            object: ObjectKind::parse(&object)
                .ok_or_else(|| crate::corrupt(CTX, format!("unknown object `{object}`")))?,
            external_id: r.try_get("external_id").ctx(CTX)?,
            location: r.try_get("location").ctx(CTX)?,
            reason: r.try_get("reason").ctx(CTX)?,
            payload: r.try_get("payload").ctx(CTX)?,
        },
        created_at: r.try_get("created_at").ctx(CTX)?,
        replayed_at: r.try_get("replayed_at").ctx(CTX)?,
        resolved_at: r.try_get("resolved_at").ctx(CTX)?,
    })
}

/// Stores dead letters, skipping exact replays.
pub async fn insert_many(
    conn: &mut AnyConnection,
    letters: &[DeadLetter],
) -> Result<(), StoreError> {
    let now = now_text();
    for chunk in letters.chunks(CHUNK) {
        let mut q = Sql::new(
            "INSERT INTO dead_letter (fingerprint, connection, object, external_id, location, \
             reason, payload, created_at) VALUES ",
        );
        for (i, d) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.open()
                .item(d.fingerprint())
                .item(d.connection.clone())
                .item(d.object.as_str())
                .item(d.external_id.clone())
                .item(d.location.clone())
                .item(d.reason.clone())
                .item(d.payload.clone())
                .item(now.clone())
                .close();
        }
        q.push(" ON CONFLICT (fingerprint) DO NOTHING");
        q.execute(&mut *conn).await.ctx("writing dead letters")?;
    }
    Ok(())
}

impl Store {
    /// The most recent dead letters.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>, StoreError> {
        const CTX: &str = "listing dead letters";
        let rows = sqlx::query(
            "SELECT connection, object, external_id, location, reason, payload FROM dead_letter \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        rows.iter()
            .map(|r| {
                let object: String = r.try_get("object").ctx(CTX)?;
                Ok(DeadLetter {
                    connection: r.try_get("connection").ctx(CTX)?,
                    object: ObjectKind::parse(&object)
                        .ok_or_else(|| crate::corrupt(CTX, object.clone()))?,
                    external_id: r.try_get("external_id").ctx(CTX)?,
                    location: r.try_get("location").ctx(CTX)?,
                    reason: r.try_get("reason").ctx(CTX)?,
                    payload: r.try_get("payload").ctx(CTX)?,
                })
            })
            .collect()
    }

    /// Dead letters with their ids, newest first; replayed ones that landed
    /// only when `all`.
    pub async fn dead_letter_rows(
        &self,
        all: bool,
        limit: i64,
    ) -> Result<Vec<StoredDeadLetter>, StoreError> {
        let sql = format!(
            "{STORED} {} ORDER BY id DESC LIMIT $1",
            if all { "" } else { "WHERE resolved_at IS NULL" }
        );
        let rows = sqlx::query(&sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .ctx("listing dead letters")?;
        rows.iter().map(decode_stored).collect()
    }

    /// One dead letter by id.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<StoredDeadLetter>, StoreError> {
        let row = sqlx::query(&format!("{STORED} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .ctx("reading a dead letter")?;
        row.as_ref().map(decode_stored).transpose()
    }

    /// Records a replay of a dead letter; `landed` when the item is now in
    /// the CRM (it then leaves the default listing).
    pub async fn mark_dead_letter_replayed(&self, id: i64, landed: bool) -> Result<(), StoreError> {
        let now = now_text();
        sqlx::query(
            "UPDATE dead_letter SET replayed_at = $1, \
             resolved_at = CASE WHEN $2 = 1 THEN $3 ELSE resolved_at END WHERE id = $4",
        )
        .bind(now.clone())
        .bind(i64::from(landed))
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .ctx("recording a dead letter replay")?;
        Ok(())
    }

    /// Whether the item of dead letter `id` landed in the CRM since `since`
    /// (RFC 3339): its identity link was written then, and no new dead
    /// letter for the same item was.
    pub async fn dead_letter_landed(&self, id: i64, since: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM dead_letter d \
             JOIN id_link l ON l.connection = d.connection AND l.object = d.object \
               AND l.external_id = d.external_id \
             WHERE d.id = $1 AND l.updated_at >= $2 AND NOT EXISTS ( \
               SELECT 1 FROM dead_letter n WHERE n.connection = d.connection \
               AND n.object = d.object AND n.external_id = d.external_id \
               AND n.id <> d.id AND n.created_at >= $3)",
        )
        .bind(id)
        .bind(since)
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .ctx("checking a replayed dead letter")?;
        let n: i64 = row.try_get("n").ctx("checking a replayed dead letter")?;
        Ok(n > 0)
    }

    /// Number of dead letters.
    pub async fn dead_letter_count(&self) -> Result<i64, StoreError> {
        sqlx::query("SELECT COUNT(*) AS n FROM dead_letter")
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get("n"))
            .ctx("counting dead letters")
    }
}
