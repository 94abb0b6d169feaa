//! CRM-side changes: planning outbox rows for the targets of a changed
//! record, and applying an edit made in the CRM itself (a conflict
//! resolution) so that it flows out like any other change.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use synchub_core::{ChangeOp, ObjectKind, Record};
use synchub_store::conflicts::{self, Conflict};
use synchub_store::outbox::OutboxEntry;
use synchub_store::records::RecordWrite;
use synchub_store::{links, outbox, records, Store, StoreError, Tx};

use crate::{Engine, EngineError};

pub(crate) fn idempotency_key(target: &str, crm_id: &str, version: i64, op: ChangeOp) -> String {
    synchub_core::hash_bytes(format!("{target}|{crm_id}|{version}|{op:?}").as_bytes())
}

/// Writes outbox rows for changed records: every pushing connection of the
/// engine gets a create, update or delete, except the connection the change
/// came from (`source`), which gets one only for records in `push_back`
/// (the merge result differs from what it holds).
pub(crate) async fn plan_outbox(
    engine: &Engine,
    tx: &mut Tx,
    object: ObjectKind,
    source: Option<&str>,
    versions: &HashMap<String, (i64, bool)>,
    push_back: &BTreeSet<String>,
    propagate_delete: &BTreeSet<String>,
) -> Result<(), StoreError> {
    let targets: Vec<&str> = engine
        .connections
        .iter()
        .filter(|c| c.can_push(object))
        .map(|c| c.name.as_str())
        .collect();
    if targets.is_empty() || versions.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<String> = versions.keys().cloned().collect();
    ids.sort();
    let existing = links::by_crm_ids(tx, &ids).await?;
    let mut entries = Vec::new();
    for id in &ids {
        let (version, deleted) = versions[id];
        for target in &targets {
            let from_source = source == Some(*target);
            if from_source && !push_back.contains(id) {
                continue;
            }
            let linked = existing.get(id).is_some_and(|ls| {
                ls.iter()
                    .any(|l| l.connection == *target && l.object == object && !l.deleted)
            });
            let op = match (deleted, linked) {
                (true, true) if propagate_delete.contains(id) => ChangeOp::Delete,
                (true, _) => continue,
                (false, true) => ChangeOp::Update,
                (false, false) if from_source => continue,
                (false, false) => ChangeOp::Create,
            };
            entries.push(OutboxEntry {
                connection: target.to_string(),
                object,
                crm_id: id.clone(),
                op,
                idempotency_key: idempotency_key(target, id, version, op),
            });
        }
    }
    outbox::enqueue(tx, &entries).await
}

/// Replaces a CRM record with an edit made in the CRM (an operator's fix)
/// and queues an update for every connection linked to it. Returns the new
/// version.
pub async fn apply_local_edit(
    store: &Store,
    crm_id: &str,
    record: Record,
) -> Result<i64, EngineError> {
    let mut tx = store.begin().await?;
    let version = edit_in_tx(&mut tx, crm_id, Some(record), None).await?;
    commit(tx).await?;
    Ok(version)
}

/// Deletes a record in the CRM and queues a delete for every system linked
/// to it. Returns the new version.
pub async fn delete_local(store: &Store, crm_id: &str) -> Result<i64, EngineError> {
    let mut tx = store.begin().await?;
    let version = edit_in_tx(&mut tx, crm_id, None, Some(true)).await?;
    commit(tx).await?;
    Ok(version)
}

/// Resolves a conflict with the chosen value: the record gets it as a CRM
/// edit (so it is pushed to every linked system) and the conflict is closed,
/// in one transaction. Field `_deleted` decides a delete-versus-edit conflict.
pub async fn resolve_conflict(
    store: &Store,
    conflict: &Conflict,
    chosen: Value,
) -> Result<i64, EngineError> {
    let d = &conflict.detail;
    let mut tx = store.begin().await?;
    let current = records::get_many(&mut tx, std::slice::from_ref(&d.crm_id)).await?;
    let cur = current
        .get(&d.crm_id)
        .ok_or_else(|| EngineError::Invalid(format!("CRM record {} no longer exists", d.crm_id)))?;
    let version = if d.field == "_deleted" {
        let deleted = chosen
            .as_bool()
            .ok_or_else(|| EngineError::Invalid("`_deleted` takes true or false".into()))?;
        edit_in_tx(&mut tx, &d.crm_id, None, Some(deleted)).await?
    } else {
        let mut fields = cur.record.to_fields();
        let (target, key) = match d.field.split_once('.') {
            Some((outer, inner)) => {
                let nested = fields
                    .entry(outer.to_string())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                match nested {
                    Value::Object(m) => (m, inner.to_string()),
                    _ => (&mut fields, d.field.clone()),
                }
            }
            None => (&mut fields, d.field.clone()),
        };
        if chosen.is_null() {
            target.remove(&key);
        } else {
            target.insert(key, chosen.clone());
        }
        let record = Record::from_fields(d.object, fields).map_err(|e| {
            EngineError::Invalid(format!(
                "value {chosen} does not fit field `{}`: {e}",
                d.field
            ))
        })?;
        edit_in_tx(&mut tx, &d.crm_id, Some(record), None).await?
    };
    conflicts::mark_resolved(&mut tx, conflict.id, &chosen.to_string()).await?;
    commit(tx).await?;
    Ok(version)
}

async fn commit(tx: Tx) -> Result<(), StoreError> {
    tx.commit().await.map_err(|e| StoreError::Query {
        context: "committing a CRM edit",
        source: e,
    })
}

async fn edit_in_tx(
    tx: &mut Tx,
    crm_id: &str,
    record: Option<Record>,
    deleted: Option<bool>,
) -> Result<i64, EngineError> {
    let current = records::get_many(tx, &[crm_id.to_string()]).await?;
    let cur = current
        .get(crm_id)
        .ok_or_else(|| EngineError::Invalid(format!("no CRM record {crm_id}")))?;
    let version = cur.version + 1;
    let record = record.unwrap_or_else(|| cur.record.clone());
    let deleted = deleted.unwrap_or(cur.deleted);
    let object = record.kind();
    let now = chrono::Utc::now();
    let mut field_times = crate::apply::next_field_times(
        &cur.field_times,
        Some(&cur.record.to_fields()),
        &record.to_fields(),
        now,
    );
    if deleted {
        let at = if cur.deleted {
            cur.field_times.get(crate::apply::DELETED_FIELD).copied()
        } else {
            None
        };
        field_times.insert(crate::apply::DELETED_FIELD.into(), at.unwrap_or(now));
    }
    records::upsert_many(
        tx,
        &[RecordWrite {
            id: crm_id.to_string(),
            record: record.clone(),
            version,
            deleted,
            field_times,
        }],
    )
    .await?;
    if let Record::Contact(c) = &record {
        let keys = if deleted {
            Vec::new()
        } else {
            synchub_identity::match_keys(c, None)
        };
        records::set_keys(tx, object, &[(crm_id.to_string(), keys)]).await?;
    }
    let linked = links::by_crm_ids(tx, &[crm_id.to_string()]).await?;
    let op = if deleted {
        ChangeOp::Delete
    } else {
        ChangeOp::Update
    };
    let mut entries: Vec<OutboxEntry> = linked
        .get(crm_id)
        .into_iter()
        .flatten()
        .filter(|l| !l.deleted && l.object == object)
        .map(|l| OutboxEntry {
            connection: l.connection.clone(),
            object,
            crm_id: crm_id.to_string(),
            op,
            idempotency_key: idempotency_key(&l.connection, crm_id, version, op),
        })
        .collect();
    entries.dedup_by(|a, b| a.connection == b.connection);
    outbox::enqueue(tx, &entries).await?;
    Ok(version)
}
