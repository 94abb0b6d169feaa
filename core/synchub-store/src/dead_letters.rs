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

    /// Number of dead letters.
    pub async fn dead_letter_count(&self) -> Result<i64, StoreError> {
        sqlx::query("SELECT COUNT(*) AS n FROM dead_letter")
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get("n"))
            .ctx("counting dead letters")
    }
}
