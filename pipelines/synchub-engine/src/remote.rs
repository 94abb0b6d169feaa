//! Records a source hands us outside a pull (a webhook carrying a delete:
//! deleted records never show up in an `updated_at` query again), applied
//! exactly like one page of a pull, in one transaction, without moving the
//! stream cursor.

use synchub_core::{ObjectKind, Page, RemoteRecord};

use crate::report::StreamReport;
use crate::{apply, Engine, EngineError};

impl Engine {
    /// Applies `records` of `object` as received from `connection`.
    pub async fn apply_remote(
        &self,
        connection: &str,
        object: ObjectKind,
        records: Vec<RemoteRecord>,
    ) -> Result<StreamReport, EngineError> {
        let conn = self
            .connections
            .iter()
            .find(|c| c.name == connection)
            .ok_or_else(|| {
                EngineError::Invalid(format!("pipeline has no connection `{connection}`"))
            })?;
        if !conn.direction.pulls() || !conn.objects.contains(&object) {
            return Err(EngineError::Invalid(format!(
                "connection `{connection}` does not pull {object}"
            )));
        }
        let page = Page {
            records,
            done: true,
            ..Page::default()
        };
        apply::apply_page(self, conn, object, &page, 0, false, None).await
    }
}
