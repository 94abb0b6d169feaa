//! Merging two CRM contacts judged the same person, and undoing it.
//!
//! A merge builds the golden record by survivorship rules, moves the
//! loser's identity links to the survivor (every source value stays
//! attached: each link keeps its snapshot), tombstones the loser with a
//! pointer to the survivor, queues the survivor for every linked system and
//! applies the delete policy to the loser's copy in a system that holds both.
//! Everything it changes is kept as a before-image, so `unmerge` restores
//! both contacts and the links as they were and queues the writes that put
//! the systems back.

use std::collections::HashMap;

use serde_json::Value;
use synchub_core::merge::survivorship::{golden, Candidate, SurvivorshipRules};
use synchub_core::{ChangeOp, ObjectKind, Record};
use synchub_store::links::Link;
use synchub_store::merges::{self, LinkImage, NewMerge, RecordImage};
use synchub_store::outbox::OutboxEntry;
use synchub_store::records::RecordWrite;
use synchub_store::{links, outbox, records, Store, StoreError, Tx};

use crate::local::idempotency_key;
use crate::{DeletePolicy, Engine, EngineError};

/// How a merge is carried out.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// Per-field survivorship rules.
    pub rules: SurvivorshipRules,
    /// What happens to the loser's copy in a system that also holds the
    /// survivor: `Delete` deletes it there; otherwise it stays, unlinked
    /// from the survivor.
    pub deletes: DeletePolicy,
    /// Connections that take contact writes; one without any link to a
    /// record it should hold is queued a create. Empty: linked ones only.
    pub targets: Vec<String>,
}

/// The result of a merge.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// The merge id (for `unmerge`).
    pub merge_id: i64,
    /// The survivor's new version.
    pub version: i64,
    /// Fields whose value came from the loser.
    pub from_loser: Vec<String>,
}

fn invalid(msg: String) -> EngineError {
    EngineError::Invalid(msg)
}

async fn commit(tx: Tx, context: &'static str) -> Result<(), StoreError> {
    tx.commit()
        .await
        .map_err(|source| StoreError::Query { context, source })
}

fn entry(target: &str, crm_id: &str, version: i64, op: ChangeOp) -> OutboxEntry {
    OutboxEntry {
        connection: target.to_string(),
        object: ObjectKind::Contact,
        crm_id: crm_id.to_string(),
        op,
        idempotency_key: idempotency_key(target, crm_id, version, op),
    }
}

/// Creates for every target that has never held `ls`'s record.
fn creates(targets: &[String], ls: &[Link], crm_id: &str, version: i64) -> Vec<OutboxEntry> {
    targets
        .iter()
        .filter(|t| {
            !ls.iter()
                .any(|l| &l.connection == *t && l.object == ObjectKind::Contact)
        })
        .map(|t| entry(t, crm_id, version, ChangeOp::Create))
        .collect()
}

fn live_targets(ls: &[Link]) -> Vec<String> {
    let mut t: Vec<String> = ls
        .iter()
        .filter(|l| !l.deleted && l.object == ObjectKind::Contact)
        .map(|l| l.connection.clone())
        .collect();
    t.sort();
    t.dedup();
    t
}

/// Merges `loser` into `survivor`. `evidence` is kept with the merge
/// (score, matched keys, who asked).
pub async fn merge_contacts(
    store: &Store,
    survivor: &str,
    loser: &str,
    evidence: Value,
    opts: &MergeOptions,
) -> Result<MergeOutcome, EngineError> {
    let mut tx = store.begin().await?;
    let outcome = merge_in(&mut tx, survivor, loser, evidence, opts).await?;
    commit(tx, "committing a merge").await?;
    Ok(outcome)
}

/// [`merge_contacts`] inside the caller's transaction (a batch of merges
/// committed with the cursor that counts them).
pub async fn merge_in(
    tx: &mut Tx,
    survivor: &str,
    loser: &str,
    evidence: Value,
    opts: &MergeOptions,
) -> Result<MergeOutcome, EngineError> {
    if survivor == loser {
        return Err(invalid(format!("cannot merge {survivor} into itself")));
    }
    let ids = [survivor.to_string(), loser.to_string()];
    let recs = records::get_many(&mut *tx, &ids).await?;
    for id in &ids {
        let r = recs
            .get(id)
            .ok_or_else(|| invalid(format!("no CRM record {id}")))?;
        if r.kind != ObjectKind::Contact {
            return Err(invalid(format!("{id} is a {}, not a contact", r.kind)));
        }
        if r.deleted || r.merged_into.is_some() {
            return Err(invalid(format!("{id} is deleted or already merged")));
        }
    }
    let (s, l) = (&recs[survivor], &recs[loser]);
    let mut linked = links::by_crm_ids(&mut *tx, &ids).await?;
    let s_links = linked.remove(survivor).unwrap_or_default();
    let l_links = linked.remove(loser).unwrap_or_default();
    let mut keys = records::keys_of(&mut *tx, &ids).await?;

    let sources = |ls: &[Link]| -> Vec<(String, serde_json::Map<String, Value>)> {
        ls.iter()
            .filter_map(|l| l.snapshot.clone().map(|snap| (l.connection.clone(), snap)))
            .collect()
    };
    let (s_fields, l_fields) = (s.record.to_fields(), l.record.to_fields());
    let (s_src, l_src) = (sources(&s_links), sources(&l_links));
    let g = golden(
        Candidate {
            fields: &s_fields,
            field_times: &s.field_times,
            sources: &s_src,
        },
        Candidate {
            fields: &l_fields,
            field_times: &l.field_times,
            sources: &l_src,
        },
        &opts.rules,
    );
    let record = Record::from_fields(ObjectKind::Contact, g.fields)
        .map_err(|e| invalid(format!("the merged record is invalid: {e}")))?;
    let version = s.version + 1;
    let loser_version = l.version + 1;
    records::upsert_many(
        &mut *tx,
        &[
            RecordWrite {
                id: survivor.to_string(),
                record: record.clone(),
                version,
                deleted: false,
                field_times: g.field_times,
            },
            RecordWrite {
                id: loser.to_string(),
                record: l.record.clone(),
                version: loser_version,
                deleted: true,
                field_times: l.field_times.clone(),
            },
        ],
    )
    .await?;
    records::set_merged_into(&mut *tx, loser, Some(survivor)).await?;
    let golden_keys = match &record {
        Record::Contact(c) => crate::fuzzy::pull::stored_keys(c, None),
        _ => Vec::new(),
    };
    records::set_keys(
        &mut *tx,
        ObjectKind::Contact,
        &[
            (survivor.to_string(), golden_keys),
            (loser.to_string(), Vec::new()),
        ],
    )
    .await?;

    // The loser's links move to the survivor, except in a system that holds
    // both: there the loser's copy is a duplicate, and the policy decides.
    let s_targets = live_targets(&s_links);
    let mut moved = Vec::new();
    let mut entries = Vec::new();
    for link in &l_links {
        let duplicate = !link.deleted && s_targets.contains(&link.connection);
        if duplicate {
            if opts.deletes == DeletePolicy::Delete {
                entries.push(entry(
                    &link.connection,
                    loser,
                    loser_version,
                    ChangeOp::Delete,
                ));
            }
            continue;
        }
        moved.push(Link {
            crm_id: survivor.to_string(),
            ..link.clone()
        });
    }
    links::upsert_many(&mut *tx, &moved).await?;
    let mut after = s_links.clone();
    after.extend(moved);
    for target in live_targets(&after) {
        entries.push(entry(&target, survivor, version, ChangeOp::Update));
    }
    entries.extend(creates(&opts.targets, &after, survivor, version));
    outbox::enqueue(&mut *tx, &entries).await?;

    let merge_id = merges::insert(
        &mut *tx,
        &NewMerge {
            survivor: survivor.to_string(),
            loser: loser.to_string(),
            evidence,
            survivor_before: RecordImage::of(s, keys.remove(survivor).unwrap_or_default()),
            loser_before: RecordImage::of(l, keys.remove(loser).unwrap_or_default()),
            links_before: l_links.iter().map(LinkImage::from).collect(),
        },
    )
    .await?;
    Ok(MergeOutcome {
        merge_id,
        version,
        from_loser: g.from_loser,
    })
}

/// Undoes a merge: both contacts get their data, deletion state, field
/// times and match keys from before it; the loser's links point at the
/// loser again (a copy deleted because of the merge is created anew); every
/// linked system is queued the restored record. Edits made to the survivor
/// since the merge are replaced by its before-image. A merge can only be
/// undone while no later merge of either contact is active.
pub async fn unmerge(store: &Store, merge_id: i64, targets: &[String]) -> Result<(), EngineError> {
    let mut tx = store.begin().await?;
    let m = merges::get(&mut tx, merge_id)
        .await?
        .ok_or_else(|| invalid(format!("no merge with id {merge_id}")))?;
    if m.undone_at.is_some() {
        return Err(invalid(format!("merge {merge_id} is already undone")));
    }
    let d = &m.detail;
    for id in [&d.survivor, &d.loser] {
        if let Some(later) = merges::active_for(&mut tx, id)
            .await?
            .into_iter()
            .find(|x| x.id > merge_id)
        {
            return Err(invalid(format!(
                "undo merge {} first: it involves {id} and came later",
                later.id
            )));
        }
    }
    let ids = [d.survivor.clone(), d.loser.clone()];
    let cur = records::get_many(&mut tx, &ids).await?;
    let mut versions = HashMap::new();
    let mut writes = Vec::new();
    for (id, image) in [
        (&d.survivor, &d.survivor_before),
        (&d.loser, &d.loser_before),
    ] {
        let now = cur
            .get(id)
            .ok_or_else(|| invalid(format!("CRM record {id} no longer exists")))?;
        let version = now.version + 1;
        versions.insert(id.clone(), version);
        writes.push(RecordWrite {
            id: id.clone(),
            record: image.record.clone(),
            version,
            deleted: image.deleted,
            field_times: image.field_times.clone(),
        });
    }
    records::upsert_many(&mut tx, &writes).await?;
    records::set_merged_into(
        &mut tx,
        &d.survivor,
        d.survivor_before.merged_into.as_deref(),
    )
    .await?;
    records::set_merged_into(&mut tx, &d.loser, d.loser_before.merged_into.as_deref()).await?;
    records::set_keys(
        &mut tx,
        ObjectKind::Contact,
        &[
            (d.survivor.clone(), d.survivor_before.keys.clone()),
            (d.loser.clone(), d.loser_before.keys.clone()),
        ],
    )
    .await?;

    // Links point where they pointed; their sync state stays current (it
    // describes what each system holds now).
    let mut entries = Vec::new();
    let mut restored = Vec::new();
    for img in &d.links_before {
        let Some(object) = ObjectKind::parse(&img.object) else {
            continue;
        };
        let now = links::by_external_ids(
            &mut tx,
            &img.connection,
            object,
            std::slice::from_ref(&img.external_id),
        )
        .await?
        .remove(&img.external_id);
        match now {
            Some(l) if l.deleted && !img.deleted => {
                // The copy was deleted (by the merge's policy): create anew.
                links::remove(&mut tx, &l).await?;
                entries.push(entry(
                    &img.connection,
                    &d.loser,
                    versions[&d.loser],
                    ChangeOp::Create,
                ));
            }
            Some(l) => restored.push(Link {
                crm_id: img.crm_id.clone(),
                ..l
            }),
            None => restored.push(Link {
                connection: img.connection.clone(),
                object,
                external_id: img.external_id.clone(),
                crm_id: img.crm_id.clone(),
                remote_version: img.remote_version.clone(),
                remote_updated_at: img.remote_updated_at.clone(),
                snapshot: img.snapshot.clone(),
                snapshot_hash: img.snapshot_hash.clone(),
                deleted: img.deleted,
            }),
        }
    }
    links::upsert_many(&mut tx, &restored).await?;
    let linked = links::by_crm_ids(&mut tx, &ids).await?;
    for id in &ids {
        let deleted = writes.iter().any(|w| &w.id == id && w.deleted);
        if deleted {
            continue;
        }
        let ls = linked.get(id).map(Vec::as_slice).unwrap_or(&[]);
        for target in live_targets(ls) {
            entries.push(entry(&target, id, versions[id], ChangeOp::Update));
        }
        let recreated: Vec<String> = entries
            .iter()
            .filter(|e| &e.crm_id == id && e.op == ChangeOp::Create)
            .map(|e| e.connection.clone())
            .collect();
        entries.extend(
            creates(targets, ls, id, versions[id])
                .into_iter()
                .filter(|e| !recreated.contains(&e.connection)),
        );
    }
    outbox::enqueue(&mut tx, &entries).await?;
    merges::mark_undone(&mut tx, merge_id).await?;
    commit(tx, "committing an unmerge").await?;
    Ok(())
}

impl Engine {
    /// [`merge_contacts`] with this pipeline's contact delete policy.
    pub async fn merge_contacts(
        &self,
        survivor: &str,
        loser: &str,
        evidence: Value,
        rules: &SurvivorshipRules,
    ) -> Result<MergeOutcome, EngineError> {
        let opts = MergeOptions {
            rules: rules.clone(),
            deletes: self.delete_policy(ObjectKind::Contact),
            targets: self.contact_targets(),
        };
        merge_contacts(&self.store, survivor, loser, evidence, &opts).await
    }

    /// [`merge_in`] with this pipeline's contact delete policy, inside the
    /// caller's transaction.
    pub async fn merge_contacts_in(
        &self,
        tx: &mut Tx,
        survivor: &str,
        loser: &str,
        evidence: Value,
        rules: &SurvivorshipRules,
    ) -> Result<MergeOutcome, EngineError> {
        let opts = MergeOptions {
            rules: rules.clone(),
            deletes: self.delete_policy(ObjectKind::Contact),
            targets: self.contact_targets(),
        };
        merge_in(tx, survivor, loser, evidence, &opts).await
    }

    /// [`unmerge`], queueing creates for this pipeline's targets.
    pub async fn unmerge(&self, merge_id: i64) -> Result<(), EngineError> {
        unmerge(&self.store, merge_id, &self.contact_targets()).await
    }

    fn contact_targets(&self) -> Vec<String> {
        self.connections
            .iter()
            .filter(|c| c.can_push(ObjectKind::Contact))
            .map(|c| c.name.clone())
            .collect()
    }
}
