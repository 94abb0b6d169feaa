//! Stream cursors: per (connection, object), stored with the page they
//! follow, and only ever moving forward (a write with a lower sequence number
//! than the stored one is ignored).

use sqlx::{AnyConnection, Row};
use synchub_core::{Cursor, ObjectKind};

use crate::{corrupt, now_text, QueryContext, Store, StoreError};

/// A stored cursor and its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCursor {
    /// The connector's cursor; `None` after a reset.
    pub cursor: Option<Cursor>,
    /// Monotonic page sequence number.
    pub seq: i64,
}

/// Loads the cursor of a stream.
pub async fn load(
    conn: &mut AnyConnection,
    connection: &str,
    object: ObjectKind,
) -> Result<Option<StoredCursor>, StoreError> {
    const CTX: &str = "loading a stream cursor";
    let row =
        sqlx::query("SELECT cursor, seq FROM sync_cursor WHERE connection = $1 AND object = $2")
            .bind(connection)
            .bind(object.as_str())
            .fetch_optional(conn)
            .await
            .ctx(CTX)?;
    let Some(row) = row else { return Ok(None) };
    let text: Option<String> = row.try_get("cursor").ctx(CTX)?;
    let cursor = match text {
        Some(t) => Some(Cursor(
            serde_json::from_str(&t).map_err(|e| corrupt(CTX, e))?,
        )),
        None => None,
    };
    Ok(Some(StoredCursor {
        cursor,
        seq: row.try_get("seq").ctx(CTX)?,
    }))
}

/// Saves the cursor of a stream if `seq` is ahead of the stored one.
/// Returns false when the write was refused as going backwards.
pub async fn save(
    conn: &mut AnyConnection,
    connection: &str,
    object: ObjectKind,
    cursor: Option<&Cursor>,
    seq: i64,
) -> Result<bool, StoreError> {
    let text = cursor.map(|c| serde_json::to_string(&c.0).unwrap_or_default());
    let done = sqlx::query(
        "INSERT INTO sync_cursor (connection, object, cursor, seq, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (connection, object) DO UPDATE SET cursor = excluded.cursor, \
         seq = excluded.seq, updated_at = excluded.updated_at WHERE sync_cursor.seq < excluded.seq",
    )
    .bind(connection)
    .bind(object.as_str())
    .bind(text)
    .bind(seq)
    .bind(now_text())
    .execute(conn)
    .await
    .ctx("saving a stream cursor")?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// All cursors: (connection, object, cursor JSON, seq, updated_at).
    pub async fn cursors(
        &self,
    ) -> Result<Vec<(String, String, Option<String>, i64, String)>, StoreError> {
        const CTX: &str = "listing cursors";
        let rows = sqlx::query(
            "SELECT connection, object, cursor, seq, updated_at FROM sync_cursor ORDER BY connection, object",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("connection").ctx(CTX)?,
                    r.try_get("object").ctx(CTX)?,
                    r.try_get("cursor").ctx(CTX)?,
                    r.try_get("seq").ctx(CTX)?,
                    r.try_get("updated_at").ctx(CTX)?,
                ))
            })
            .collect()
    }

    /// The cursor of one stream.
    pub async fn cursor(
        &self,
        connection: &str,
        object: ObjectKind,
    ) -> Result<Option<StoredCursor>, StoreError> {
        let mut conn = self.pool.acquire().await.ctx("acquiring a connection")?;
        load(&mut conn, connection, object).await
    }
}
