//! Draining the outbox of one target: write through the connector, then
//! store the returned id, version and snapshot in the same transaction that
//! marks the rows done, so the echo of our own write is recognised on the
//! next pull and not synced back.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use synchub_core::{Change, ChangeOp, ErrorClass, ObjectKind, Page, Record, Refusal, RemoteRecord};
use synchub_store::links::Link;
use synchub_store::{conflicts, leases, links, outbox, records, StoreError, Tx};

use crate::report::RunReport;
use crate::{Connection, Engine, EngineError};

const BATCH: i64 = 100;
const MAX_ATTEMPTS: i64 = 5;
/// How often one change is re-read, merged and pushed again after the
/// target answered that its copy changed, within one drain; past it, the
/// conflict counts as a failed attempt.
const MAX_CONFLICT_RETRIES: u32 = 3;

/// How long a drain holds the outbox rows it claimed: past it (the drain
/// died), another process may push them, with the same idempotency keys.
const CLAIM_TTL: Duration = Duration::from_secs(600);

/// Drains one target's outbox, claiming each batch before it is pushed so
/// that no other process pushes the same change; claims left (refused or
/// failed rows) are released at the end.
pub(crate) async fn drain(
    engine: &Engine,
    conn: &Connection,
    object: ObjectKind,
    report: &mut RunReport,
) -> Result<(), EngineError> {
    // A drain killed on this host (a `synchub run` SIGKILLed mid-push) left
    // its claims; they are taken over now rather than after CLAIM_TTL.
    if let Err(e) = engine.store.release_dead_claims(&conn.name, object).await {
        tracing::warn!(connection = %conn.name, %object, error = %e, "reading outbox claims of ended processes failed");
    }
    let holder = leases::new_holder();
    let result = drain_claimed(engine, conn, object, report, &holder).await;
    if let Err(e) = engine.store.release_claims(&holder).await {
        // They expire on their own after CLAIM_TTL.
        tracing::warn!(connection = %conn.name, %object, error = %e, "releasing outbox claims failed");
    }
    result
}

async fn drain_claimed(
    engine: &Engine,
    conn: &Connection,
    object: ObjectKind,
    report: &mut RunReport,
    holder: &str,
) -> Result<(), EngineError> {
    let store = &engine.store;
    let mut failed: HashSet<i64> = HashSet::new();
    let mut conflicted: HashMap<i64, u32> = HashMap::new();
    let mut reread: Vec<RemoteRecord> = Vec::new();
    loop {
        let pending: Vec<_> = store
            .claim_pushes(
                &conn.name,
                object,
                BATCH + failed.len() as i64,
                MAX_ATTEMPTS,
                &outbox::ClaimBy {
                    holder,
                    now: chrono::Utc::now(),
                    ttl: CLAIM_TTL,
                },
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
            // An accounting target invoices an order only in the state its
            // `invoice_when` names; the order is queued again when it
            // changes, and invoiced then.
            if op == ChangeOp::Create
                && !engine.invoice_rules.routes(&conn.name, object, &rec.record)
            {
                tracing::debug!(connection = %conn.name, %object, crm_id = %p.crm_id, "not in the state `invoice_when` names; skipped");
                skipped.push(p.crm_id.clone());
                continue;
            }
            changes.push(Change {
                crm_id: p.crm_id.clone(),
                op,
                external_id: link.map(|l| l.external_id.clone()),
                base_version: link.and_then(|l| l.remote_version.clone()),
                base: link
                    .and_then(|l| l.snapshot.clone())
                    .and_then(|fields| Record::from_fields(object, fields).ok()),
                record: rec.record.clone(),
                // A retry after a conflict is a new request (against a new
                // base): targets that remember a key's answer, faults
                // included (QuickBooks `requestid`), would replay the
                // conflict under the old key.
                idempotency_key: match conflicted.get(&p.id) {
                    Some(n) => format!("{}-c{n}", p.idempotency_key),
                    None => p.idempotency_key.clone(),
                },
            });
        }
        let outcomes = if changes.is_empty() {
            Vec::new()
        } else {
            match conn.connector.push(object, &changes).await {
                Ok(o) => o,
                Err(e) if e.class() == ErrorClass::Retry => {
                    tracing::warn!(connection = %conn.name, %object, error = %e, "push deferred to the next run");
                    if let synchub_core::ConnectorError::Unavailable {
                        retry_after: Some(after),
                        ..
                    } = &e
                    {
                        // The target said when: the batch waits until then.
                        let mut tx = store.begin().await?;
                        let message = e.to_string();
                        for c in &changes {
                            if let Some(p) = pending.iter().find(|p| p.crm_id == c.crm_id) {
                                defer(&mut tx, p.id, *after, &message).await?;
                            }
                        }
                        tx.commit().await.map_err(|e| StoreError::Query {
                            context: "deferring pushes",
                            source: e,
                        })?;
                    }
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
                Err(refusal) => {
                    let Some(p) = p else {
                        stream.push_failed += 1;
                        continue;
                    };
                    match refusal {
                        // Changed at the target since our base: not a failed
                        // attempt. Its current copy is merged in (below,
                        // after this commit) and the change is pushed again
                        // with the new base, a bounded number of times.
                        Refusal::Conflict { current, .. }
                            if bump(&mut conflicted, p.id) <= MAX_CONFLICT_RETRIES =>
                        {
                            tracing::info!(connection = %conn.name, %object, crm_id = %change.crm_id, reason = %refusal, "changed at the target; re-reading and merging before a retry");
                            if let Some(cur) = current {
                                reread.push((**cur).clone());
                            }
                            note_error(&mut tx, p.id, &refusal.to_string()).await?;
                        }
                        // The target said when: the row waits until then
                        // and the wait is not a failed attempt.
                        Refusal::Retry {
                            after: Some(after), ..
                        } => {
                            stream.push_failed += 1;
                            failed.insert(p.id);
                            tracing::warn!(connection = %conn.name, %object, crm_id = %change.crm_id, error = %refusal, "target asked us to wait");
                            defer(&mut tx, p.id, *after, &refusal.to_string()).await?;
                        }
                        _ => {
                            stream.push_failed += 1;
                            failed.insert(p.id);
                            tracing::warn!(connection = %conn.name, %object, crm_id = %change.crm_id, error = %refusal, "target refused a change");
                            let message = refusal.to_string();
                            if refusal.is_transient() {
                                outbox::fail(&mut tx, p.id, &message).await?;
                            } else {
                                outbox::refuse(&mut tx, p.id, &message).await?;
                            }
                        }
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
        if !reread.is_empty() {
            // The targets' current copies, merged as a pull would (three-way,
            // with the link's snapshot as base); the link takes the new
            // version, so the retry carries it.
            let page = Page {
                records: std::mem::take(&mut reread),
                done: true,
                ..Default::default()
            };
            crate::apply::apply_page(engine, conn, object, &page, 0, false, None).await?;
        }
    }
}

/// Keeps the target's last answer on a row without counting an attempt.
async fn note_error(tx: &mut Tx, id: i64, message: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET last_error = $1 WHERE id = $2")
        .bind(message)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::Query {
            context: "noting an outbox answer",
            source: e,
        })?;
    Ok(())
}

/// Conflicts met per outbox row in one drain.
fn bump(seen: &mut HashMap<i64, u32>, id: i64) -> u32 {
    let n = seen.entry(id).or_insert(0);
    *n += 1;
    *n
}

/// The claim holder of rows waiting for a target's `Retry-After`: no drain
/// uses it, so the rows stay out of every claim until `claim_until`.
pub(crate) const DEFERRED: &str = "deferred:retry-after";

/// Keeps an outbox row out of every drain until `after` from now (the
/// target's `Retry-After`), without counting a failed attempt.
async fn defer(tx: &mut Tx, id: i64, after: Duration, message: &str) -> Result<(), StoreError> {
    let until = chrono::Utc::now()
        + chrono::Duration::from_std(after).unwrap_or_else(|_| chrono::Duration::hours(1));
    let until = until.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    sqlx::query(
        "UPDATE outbox SET claimed_by = $1, claim_until = $2, last_error = $3 WHERE id = $4",
    )
    .bind(DEFERRED)
    .bind(until)
    .bind(message)
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(|e| StoreError::Query {
        context: "deferring an outbox row",
        source: e,
    })?;
    Ok(())
}
