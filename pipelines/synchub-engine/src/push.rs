//! Draining the outbox of one target: write through the connector, then
//! store the returned id, version and snapshot in the same transaction that
//! marks the rows done, so the echo of our own write is recognised on the
//! next pull and not synced back.

use std::collections::HashSet;

use synchub_core::{Change, ChangeOp, ErrorClass, ObjectKind, Record};
use synchub_store::links::Link;
use synchub_store::{conflicts, links, outbox, records, StoreError};

use crate::report::RunReport;
use crate::{Connection, Engine, EngineError};

const BATCH: i64 = 100;
const MAX_ATTEMPTS: i64 = 5;

pub(crate) async fn drain(
    engine: &Engine,
    conn: &Connection,
    object: ObjectKind,
    report: &mut RunReport,
) -> Result<(), EngineError> {
    let store = &engine.store;
    let mut failed: HashSet<i64> = HashSet::new();
    loop {
        let pending: Vec<_> = store
            .pending_pushes(
                &conn.name,
                object,
                BATCH + failed.len() as i64,
                MAX_ATTEMPTS,
            )
            .await?
            .into_iter()
            .filter(|p| !failed.contains(&p.id))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = pending.iter().map(|p| p.crm_id.clone()).collect();
        let (current, linked, waiting) = {
            let mut c = store
                .pool()
                .acquire()
                .await
                .map_err(|e| StoreError::Query {
                    context: "acquiring a connection",
                    source: e,
                })?;
            (
                records::get_many(&mut c, &ids).await?,
                links::by_crm_ids(&mut c, &ids).await?,
                conflicts::open_for(&mut c, &conn.name, &ids).await?,
            )
        };
        let mut changes = Vec::new();
        let mut skipped = Vec::new();
        for p in &pending {
            if waiting.contains(&p.crm_id) {
                // A person decides first; the resolution queues the write.
                failed.insert(p.id);
                continue;
            }
            let Some(rec) = current.get(&p.crm_id) else {
                skipped.push(p.crm_id.clone());
                continue;
            };
            let mine: Vec<&Link> = linked
                .get(&p.crm_id)
                .map(|ls| {
                    ls.iter()
                        .filter(|l| l.connection == conn.name && l.object == object)
                        .collect()
                })
                .unwrap_or_default();
            let link = mine.iter().copied().find(|l| !l.deleted);
            // The operation follows the record as it is now, not as it was
            // when the row was queued: a record deleted since is never
            // created or updated, and a live one is never deleted.
            let op = match (rec.deleted, p.op, link) {
                (true, ChangeOp::Delete, Some(_)) => ChangeOp::Delete,
                (true, _, _) => {
                    skipped.push(p.crm_id.clone());
                    continue;
                }
                (false, _, Some(_)) => ChangeOp::Update,
                // The target deleted its copy; it is not brought back.
                (false, _, None) if !mine.is_empty() => {
                    skipped.push(p.crm_id.clone());
                    continue;
                }
                (false, _, None) => ChangeOp::Create,
            };
            changes.push(Change {
                crm_id: p.crm_id.clone(),
                op,
                external_id: link.map(|l| l.external_id.clone()),
                base_version: link.and_then(|l| l.remote_version.clone()),
                record: rec.record.clone(),
                idempotency_key: p.idempotency_key.clone(),
            });
        }
        let outcomes = if changes.is_empty() {
            Vec::new()
        } else {
            match conn.connector.push(object, &changes).await {
                Ok(o) => o,
                Err(e) if e.class() == ErrorClass::Retry => {
                    tracing::warn!(connection = %conn.name, %object, error = %e, "push deferred to the next run");
                    return Err(EngineError::Connector {
                        connection: conn.name.clone(),
                        object,
                        source: e,
                    });
                }
                Err(source) => {
                    return Err(EngineError::Connector {
                        connection: conn.name.clone(),
                        object,
                        source,
                    })
                }
            }
        };
        let mut tx = store.begin().await?;
        let mut done = skipped;
        let mut new_links = Vec::new();
        let stream = report.stream(&conn.name, object);
        for (change, outcome) in changes.iter().zip(outcomes.iter()) {
            let p = pending.iter().find(|p| p.crm_id == change.crm_id);
            match &outcome.result {
                Ok(written) => {
                    stream.pushed += 1;
                    done.push(change.crm_id.clone());
                    let snapshot_record: Record = written
                        .record
                        .clone()
                        .and_then(|r| crate::apply::normalize(r, conn.region.as_deref()).ok())
                        .unwrap_or_else(|| change.record.clone());
                    new_links.push(Link {
                        connection: conn.name.clone(),
                        object,
                        external_id: written.external_id.clone(),
                        crm_id: change.crm_id.clone(),
                        remote_version: written.version.clone(),
                        remote_updated_at: None,
                        snapshot_hash: Some(snapshot_record.content_hash()),
                        snapshot: Some(snapshot_record.to_fields()),
                        deleted: change.op == ChangeOp::Delete,
                    });
                }
                Err(message) => {
                    stream.push_failed += 1;
                    tracing::warn!(connection = %conn.name, %object, crm_id = %change.crm_id, error = %message, "target refused a change");
                    if let Some(p) = p {
                        failed.insert(p.id);
                        outbox::fail(&mut tx, p.id, message).await?;
                    }
                }
            }
        }
        if outcomes.len() < changes.len() {
            return Err(EngineError::Contract {
                connection: conn.name.clone(),
                object,
                message: format!(
                    "push returned {} outcomes for {} changes",
                    outcomes.len(),
                    changes.len()
                ),
            });
        }
        links::upsert_many(&mut tx, &new_links).await?;
        outbox::complete(&mut tx, &conn.name, object, &done).await?;
        tx.commit().await.map_err(|e| StoreError::Query {
            context: "committing pushes",
            source: e,
        })?;
    }
}
