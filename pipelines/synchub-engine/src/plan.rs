//! Planning one page: what a page of remote records does to the CRM, decided
//! without IO from the state the store held for it, the engine's policies and
//! a clock passed in (so a replayed page plans the same). `apply` loads the
//! state, calls [`plan_page`] and hands the [`PagePlan`] to the store in the
//! page's transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use synchub_core::merge::{merge3, MergePolicy, Merged, Side, CRM_SOURCE};
use synchub_core::model::Contact;
use synchub_core::{derive_crm_id, ObjectKind, Record, RemoteRecord};
use synchub_store::conflicts::NewConflict;
use synchub_store::dead_letters::DeadLetter;
use synchub_store::links::Link;
use synchub_store::records::{FieldTimes, RecordWrite, StoredRecord};
use synchub_store::reviews::NewReview;

use crate::fuzzy::pull::PullMatcher;
use crate::report::StreamReport;
use crate::DeletePolicy;

/// The CRM state of one record while a page is planned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Current {
    pub record: Record,
    pub version: i64,
    pub deleted: bool,
    pub merged_into: Option<String>,
    pub changed_at: Option<DateTime<Utc>>,
    pub field_times: FieldTimes,
}

/// The field-times key of the CRM delete (its source time).
pub(crate) const DELETED_FIELD: &str = "_deleted";

impl Current {
    /// When the record was deleted, by the deleting source's clock.
    fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.field_times
            .get(DELETED_FIELD)
            .copied()
            .or(self.changed_at)
    }

    /// The latest source time of a live field.
    fn last_edit(&self) -> Option<DateTime<Utc>> {
        self.field_times
            .iter()
            .filter(|(k, _)| k.as_str() != DELETED_FIELD)
            .map(|(_, t)| *t)
            .max()
            .or(self.changed_at)
    }
}

impl From<StoredRecord> for Current {
    fn from(s: StoredRecord) -> Current {
        Current {
            changed_at: parse_time(&s.updated_at),
            record: s.record,
            version: s.version,
            deleted: s.deleted,
            merged_into: s.merged_into,
            field_times: s.field_times,
        }
    }
}

/// Field times after `old` became `new`: changed (or removed) fields get
/// `at`, the others keep theirs.
pub(crate) fn next_field_times(
    times: &FieldTimes,
    old: Option<&Map<String, Value>>,
    new: &Map<String, Value>,
    at: DateTime<Utc>,
) -> FieldTimes {
    let mut out = times.clone();
    out.remove(DELETED_FIELD);
    let empty = Map::new();
    let old = old.unwrap_or(&empty);
    for key in old.keys().chain(new.keys()) {
        if old.get(key) != new.get(key) {
            out.insert(key.clone(), at);
        }
    }
    out
}

pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn time_text(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// The most contacts a fuzzy key may name and still give the pull matcher
/// candidates. A key more share (a common name and nothing else) is no
/// evidence on its own, and reading all of its holders on every page would
/// make each page cost more as the store grows; the other keys (name with
/// birth date, postal code or street) still bring such a contact's
/// duplicates. The batch matcher treats name-only blocks larger than its
/// own limit alike (sorted neighbourhood instead of all pairs).
pub(crate) const FUZZY_BLOCK: usize = 64;

/// What the store held for a page, loaded before planning.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageState {
    /// The records the page's links, match keys and fuzzy keys name, and
    /// their survivors.
    pub current: HashMap<String, Current>,
    /// The page's links, by external id, as loaded.
    pub links: HashMap<String, Link>,
    /// Exact match key → the stored contact under it (smallest id).
    pub page_keys: HashMap<String, String>,
    /// Fuzzy key → contacts stored under it (the pull matcher's candidates).
    pub fuzzy_keys: HashMap<String, Vec<String>>,
    /// Fuzzy keys more than [`FUZZY_BLOCK`] stored contacts share.
    pub crowded_keys: HashSet<String>,
    /// The pull matcher, when this page has contacts it may need to place.
    pub matcher: Option<PullMatcher>,
}

/// The rules a page is planned under.
#[derive(Debug, Clone)]
pub(crate) struct PagePolicy<'a> {
    /// The connection the page came from.
    pub connection: &'a str,
    pub object: ObjectKind,
    pub region: Option<&'a str>,
    pub merge: &'a MergePolicy,
    pub delete: DeletePolicy,
    /// The connection takes pushes of this object (a merge result that
    /// differs from what it holds goes back to it).
    pub can_push: bool,
}

/// A page ready to plan: its items normalized (a record, or `None` for a
/// deletion) and the dead letters found while screening it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PreparedPage<'p> {
    pub items: Vec<(&'p RemoteRecord, Option<Record>)>,
    pub dead: Vec<DeadLetter>,
    /// Items read (records and rejected items).
    pub read: u64,
}

/// Everything one page writes, decided before any write.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PagePlan {
    /// Records to insert or replace, in id order.
    pub records: Vec<RecordWrite>,
    /// Match keys of records created by this page (nothing to delete first).
    pub new_keys: Vec<(String, Vec<String>)>,
    /// Match keys replacing those of records that existed.
    pub replaced_keys: Vec<(String, Vec<String>)>,
    /// Links that are new or changed, in external-id order.
    pub links: Vec<Link>,
    /// Version and tombstone of every record the outbox may need to push.
    pub versions: BTreeMap<String, (i64, bool)>,
    /// Records whose merge result differs from what the source holds.
    pub push_back: BTreeSet<String>,
    /// Deleted records whose delete goes to the other systems.
    pub propagate_delete: BTreeSet<String>,
    pub conflicts: Vec<NewConflict>,
    pub dead: Vec<DeadLetter>,
    pub reviews: Vec<NewReview>,
    pub counts: StreamReport,
}

/// The working state of one plan.
struct Planner<'a> {
    policy: &'a PagePolicy<'a>,
    clock: DateTime<Utc>,
    current: HashMap<String, Current>,
    dirty: BTreeSet<String>,
    /// Records this page creates (not in the store before it).
    created: BTreeSet<String>,
    propagate_delete: BTreeSet<String>,
    push_back: BTreeSet<String>,
    links: BTreeMap<String, Link>,
    loaded_links: HashMap<String, Link>,
    page_keys: HashMap<String, String>,
    fuzzy_keys: HashMap<String, Vec<String>>,
    crowded_keys: HashSet<String>,
    matcher: Option<PullMatcher>,
    conflicts: Vec<NewConflict>,
    dead: Vec<DeadLetter>,
    reviews: Vec<NewReview>,
    counts: StreamReport,
}

/// Plans a page: pure, so the same page, state, policy and clock give the
/// same plan.
pub(crate) fn plan_page(
    page: PreparedPage<'_>,
    state: PageState,
    policy: &PagePolicy<'_>,
    clock: DateTime<Utc>,
) -> PagePlan {
    let mut p = Planner {
        policy,
        clock,
        current: state.current,
        dirty: BTreeSet::new(),
        created: BTreeSet::new(),
        propagate_delete: BTreeSet::new(),
        push_back: BTreeSet::new(),
        links: state.links.clone().into_iter().collect(),
        loaded_links: state.links,
        page_keys: state.page_keys,
        fuzzy_keys: state.fuzzy_keys,
        crowded_keys: state.crowded_keys,
        matcher: state.matcher,
        conflicts: Vec::new(),
        dead: page.dead,
        reviews: Vec::new(),
        counts: StreamReport {
            read: page.read,
            ..StreamReport::default()
        },
    };
    for (remote, rec) in page.items {
        match rec {
            None => p.delete(remote),
            Some(rec) => p.one(remote, rec),
        }
    }
    p.finish()
}

impl Planner<'_> {
    fn finish(self) -> PagePlan {
        let Planner {
            policy,
            current,
            dirty,
            created,
            propagate_delete,
            push_back,
            links,
            loaded_links,
            conflicts,
            dead,
            reviews,
            mut counts,
            matcher,
            ..
        } = self;
        counts.dead_lettered += dead.len() as u64;
        counts.invalid = dead
            .iter()
            .take(crate::report::MAX_INVALID)
            .map(|d| crate::report::Invalid {
                location: d
                    .location
                    .clone()
                    .or_else(|| d.external_id.clone())
                    .unwrap_or_default(),
                reason: d.reason.clone(),
            })
            .collect();
        counts.matcher = matcher;
        let mut records = Vec::with_capacity(dirty.len());
        let mut new_keys = Vec::new();
        let mut replaced_keys = Vec::new();
        for id in &dirty {
            let Some(cur) = current.get(id) else { continue };
            records.push(RecordWrite {
                id: id.clone(),
                record: cur.record.clone(),
                version: cur.version,
                deleted: cur.deleted,
                field_times: cur.field_times.clone(),
            });
            let keys = match (&cur.record, cur.deleted) {
                (Record::Contact(c), false) => crate::fuzzy::pull::stored_keys(c, policy.region),
                _ if policy.object == ObjectKind::Contact => Vec::new(),
                _ => continue,
            };
            // A record this page creates has no keys yet.
            if created.contains(id) {
                new_keys.push((id.clone(), keys));
            } else {
                replaced_keys.push((id.clone(), keys));
            }
        }
        let links: Vec<Link> = links
            .into_values()
            .filter(|l| loaded_links.get(&l.external_id) != Some(l))
            .collect();
        let versions = current
            .iter()
            .filter(|(id, _)| dirty.contains(*id) || push_back.contains(*id))
            .map(|(id, c)| (id.clone(), (c.version, c.deleted)))
            .collect();
        PagePlan {
            records,
            new_keys,
            replaced_keys,
            links,
            versions,
            push_back,
            propagate_delete,
            conflicts,
            dead,
            reviews,
            counts,
        }
    }

    /// Follows merge pointers to the surviving record.
    fn survivor(&self, mut id: String) -> String {
        for _ in 0..8 {
            match self.current.get(&id).and_then(|c| c.merged_into.clone()) {
                Some(next) => id = next,
                None => break,
            }
        }
        id
    }

    fn find_match(&self, c: &Contact) -> Option<String> {
        for key in synchub_identity::match_keys(c, self.policy.region) {
            let Some(id) = self.page_keys.get(&key).cloned() else {
                continue;
            };
            let id = self.survivor(id);
            let Some(cur) = self.current.get(&id) else {
                continue;
            };
            if cur.deleted {
                continue;
            }
            if key.starts_with("email:") {
                return Some(id);
            }
            if let Record::Contact(existing) = &cur.record {
                if synchub_identity::names_compatible(existing, c) {
                    return Some(id);
                }
            }
        }
        None
    }

    /// The pull matcher's decision for an unlinked contact no exact key
    /// placed: the existing contact it merges into or is queued for review
    /// with.
    fn fuzzy_match(
        &self,
        c: &Contact,
    ) -> Option<(String, synchub_identity::matcher::MatchEvidence)> {
        let region = self.policy.region;
        let matcher = self.matcher.as_ref()?;
        let mut ids: Vec<String> = crate::fuzzy::pull::keys(c, region)
            .iter()
            .filter(|k| !self.crowded_keys.contains(*k))
            .filter_map(|k| self.fuzzy_keys.get(k))
            .filter(|ids| ids.len() <= FUZZY_BLOCK)
            .flatten()
            .cloned()
            .chain(
                synchub_identity::match_keys(c, region)
                    .iter()
                    .filter_map(|k| self.page_keys.get(k).cloned()),
            )
            .map(|id| self.survivor(id))
            .collect();
        ids.sort();
        ids.dedup();
        let candidates: Vec<(String, Contact)> = ids
            .into_iter()
            .filter_map(|id| match self.current.get(&id) {
                Some(Current {
                    record: Record::Contact(existing),
                    deleted: false,
                    ..
                }) => Some((id, existing.clone())),
                _ => None,
            })
            .collect();
        matcher.decide(c, &candidates, region)
    }

    fn conflict(&mut self, crm_id: &str, remote: &RemoteRecord, field: &str, values: [&str; 3]) {
        let [base, local, remote_value] = values;
        self.conflicts.push(NewConflict {
            crm_id: crm_id.to_string(),
            object: self.policy.object,
            field: field.into(),
            connection: self.policy.connection.to_string(),
            external_id: remote.external_id.clone(),
            base: base.into(),
            local: local.into(),
            remote: remote_value.into(),
        });
    }

    fn one(&mut self, remote: &RemoteRecord, rec: Record) {
        let object = self.policy.object;
        let region = self.policy.region;
        let remote_fields = rec.to_fields();
        let remote_hash = rec.content_hash();
        let link = self.links.get(&remote.external_id).cloned();

        if let Some(link) = &link {
            let same_version =
                link.remote_version.is_some() && link.remote_version == remote.version;
            if same_version || link.snapshot_hash.as_deref() == Some(remote_hash.as_str()) {
                self.counts.unchanged += 1;
                if !same_version && remote.version.is_some() {
                    let mut l = link.clone();
                    l.remote_version = remote.version.clone();
                    l.remote_updated_at = time_text(remote.updated_at).or(l.remote_updated_at);
                    self.links.insert(remote.external_id.clone(), l);
                }
                return;
            }
            let stale = |known: Option<DateTime<Utc>>| match (remote.updated_at, known) {
                (Some(r), Some(k)) => r <= k,
                (None, _) => true,
                _ => false,
            };
            if link.deleted && stale(link.remote_updated_at.as_deref().and_then(parse_time)) {
                // A stale read of a record this source already deleted.
                self.counts.unchanged += 1;
                return;
            }
        }

        let by_message = if link.is_none() {
            crate::apply::message_crm_id(&rec)
        } else {
            None
        };
        if let Some(id) = &by_message {
            if self.current.get(id).is_some_and(|c| !c.deleted) {
                // Another connection brought this message first: one
                // activity, linked from every mailbox that holds it.
                self.counts.unchanged += 1;
                self.set_link(remote, id, remote_fields, remote_hash);
                return;
            }
        }

        let mut review = None;
        let (crm_id, base, matched) = match &link {
            Some(l) => (self.survivor(l.crm_id.clone()), l.snapshot.clone(), false),
            None => match rec.as_contact().and_then(|c| self.find_match(c)) {
                Some(id) => (id, None, true),
                None => {
                    let new_id = by_message.unwrap_or_else(|| {
                        derive_crm_id(self.policy.connection, object, &remote.external_id)
                    });
                    match rec.as_contact().and_then(|c| self.fuzzy_match(c)) {
                        Some((id, e)) if crate::fuzzy::pull::merges(&e) => {
                            self.counts.fuzzy_merged += 1;
                            (id, None, true)
                        }
                        Some((id, e)) => {
                            review = Some(crate::fuzzy::pull::review(&new_id, &id, &e));
                            (new_id, None, false)
                        }
                        None => (new_id, None, false),
                    }
                }
            },
        };

        let at = remote.updated_at.unwrap_or(self.clock);
        let (new_fields, new_times): (Map<String, Value>, FieldTimes) =
            match self.current.get(&crm_id) {
                Some(cur) if cur.deleted => {
                    if remote
                        .updated_at
                        .is_some_and(|r| cur.deleted_at().is_some_and(|d| r > d))
                    {
                        // An edit made after the CRM delete: keep it deleted,
                        // ask a person.
                        self.conflict(&crm_id, remote, DELETED_FIELD, ["false", "true", "false"]);
                        self.counts.conflicted += 1;
                    } else {
                        self.counts.unchanged += 1;
                    }
                    self.set_link(remote, &crm_id, remote_fields, remote_hash);
                    return;
                }
                Some(cur) => {
                    let local_fields = cur.record.to_fields();
                    let merged: Merged = merge3(
                        base.as_ref(),
                        Side {
                            fields: &local_fields,
                            changed_at: cur.changed_at,
                            field_times: Some(&cur.field_times),
                            source: CRM_SOURCE,
                        },
                        Side {
                            fields: &remote_fields,
                            changed_at: remote.updated_at,
                            field_times: None,
                            source: self.policy.connection,
                        },
                        self.policy.merge,
                    );
                    let changes_local = merged.changes_local(&local_fields);
                    let times = changes_local.then(|| {
                        next_field_times(&cur.field_times, Some(&local_fields), &merged.fields, at)
                    });
                    for c in &merged.conflicts {
                        let (base, local, theirs) = (
                            c.base.to_string(),
                            c.local.to_string(),
                            c.remote.to_string(),
                        );
                        self.conflict(&crm_id, remote, &c.field, [&base, &local, &theirs]);
                    }
                    if !merged.conflicts.is_empty() {
                        self.counts.conflicted += 1;
                    }
                    if matched {
                        self.counts.merged += 1;
                    } else if changes_local {
                        self.counts.updated += 1;
                    } else if merged.conflicts.is_empty() {
                        self.counts.unchanged += 1;
                    }
                    // While a conflict waits for a person, the remote keeps its value.
                    if merged.conflicts.is_empty()
                        && merged.changes_remote(&remote_fields)
                        && self.policy.can_push
                    {
                        self.push_back.insert(crm_id.clone());
                    }
                    let Some(times) = times else {
                        self.set_link(remote, &crm_id, remote_fields, remote_hash);
                        return;
                    };
                    (merged.fields, times)
                }
                None => {
                    self.counts.created += 1;
                    self.created.insert(crm_id.clone());
                    let times = next_field_times(&FieldTimes::new(), None, &remote_fields, at);
                    (remote_fields.clone(), times)
                }
            };
        let record = match Record::from_fields(object, new_fields) {
            Ok(r) => r,
            Err(e) => {
                self.dead.push(dead_letter(
                    self.policy.connection,
                    object,
                    remote,
                    format!("merged record is invalid: {e}"),
                ));
                return;
            }
        };
        let version = self.current.get(&crm_id).map(|c| c.version).unwrap_or(0) + 1;
        if let Record::Contact(c) = &record {
            for key in synchub_identity::match_keys(c, region) {
                self.page_keys.entry(key).or_insert_with(|| crm_id.clone());
            }
            for key in crate::fuzzy::pull::keys(c, region) {
                let ids = self.fuzzy_keys.entry(key).or_default();
                // Past the cap the key gives no candidates: stop growing it.
                if ids.len() <= FUZZY_BLOCK && !ids.contains(&crm_id) {
                    ids.push(crm_id.clone());
                }
            }
        }
        if let Some(r) = review {
            self.counts.fuzzy_queued += 1;
            self.reviews.push(r);
        }
        self.current.insert(
            crm_id.clone(),
            Current {
                record,
                version,
                deleted: false,
                merged_into: None,
                changed_at: Some(self.clock),
                field_times: new_times,
            },
        );
        self.dirty.insert(crm_id.clone());
        self.set_link(remote, &crm_id, remote_fields, remote_hash);
    }

    fn set_link(
        &mut self,
        remote: &RemoteRecord,
        crm_id: &str,
        snapshot: Map<String, Value>,
        hash: String,
    ) {
        // A link keeps the record it names: one of a merged record stays with
        // it (its data flows to the survivor) so the merge's delete policy can
        // still reach that copy.
        let crm_id = self
            .links
            .get(&remote.external_id)
            .map(|l| l.crm_id.clone())
            .unwrap_or_else(|| crm_id.to_string());
        self.links.insert(
            remote.external_id.clone(),
            Link {
                connection: self.policy.connection.to_string(),
                object: self.policy.object,
                external_id: remote.external_id.clone(),
                crm_id,
                remote_version: remote.version.clone(),
                remote_updated_at: time_text(remote.updated_at),
                snapshot: Some(snapshot),
                snapshot_hash: Some(hash),
                deleted: false,
            },
        );
    }

    fn delete(&mut self, remote: &RemoteRecord) {
        let Some(mut link) = self.links.get(&remote.external_id).cloned() else {
            self.counts.unchanged += 1;
            return;
        };
        if link.deleted {
            self.counts.unchanged += 1;
            return;
        }
        let merged_copy = self
            .current
            .get(&link.crm_id)
            .is_some_and(|c| c.merged_into.is_some());
        if merged_copy {
            // The system dropped its copy of a record merged into another: a
            // duplicate went away; the survivor is not deleted with it.
            self.counts.unchanged += 1;
            link.deleted = true;
            link.remote_updated_at = time_text(remote.updated_at.or(Some(self.clock)));
            self.links.insert(remote.external_id.clone(), link);
            return;
        }
        let crm_id = self.survivor(link.crm_id.clone());
        let deleted_at = remote.updated_at.unwrap_or(self.clock);
        let policy = self.policy.delete;
        if policy != DeletePolicy::Ignore {
            let clock = self.clock;
            let mut conflict = false;
            if let Some(cur) = self.current.get_mut(&crm_id) {
                if !cur.deleted && cur.last_edit().is_some_and(|t| t > deleted_at) {
                    // Another system edited the record after this delete:
                    // keep it live, ask a person (the mirror of an edit
                    // after a delete).
                    conflict = true;
                } else if !cur.deleted {
                    cur.deleted = true;
                    cur.version += 1;
                    cur.changed_at = Some(clock);
                    cur.field_times.insert(DELETED_FIELD.into(), deleted_at);
                    self.dirty.insert(crm_id.clone());
                    if policy == DeletePolicy::Delete {
                        self.propagate_delete.insert(crm_id.clone());
                    }
                }
            }
            if conflict {
                self.conflict(&crm_id, remote, DELETED_FIELD, ["false", "false", "true"]);
                self.counts.conflicted += 1;
            }
        }
        self.counts.deleted += 1;
        link.deleted = true;
        link.remote_updated_at = time_text(Some(deleted_at));
        self.links.insert(remote.external_id.clone(), link);
    }
}

/// A dead letter for one item of a page.
pub(crate) fn dead_letter(
    connection: &str,
    object: ObjectKind,
    r: &RemoteRecord,
    reason: String,
) -> DeadLetter {
    DeadLetter {
        connection: connection.to_string(),
        object,
        external_id: Some(r.external_id.clone()),
        location: None,
        reason,
        payload: r.raw.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// One generated page item: external id index, name, email index,
    /// source time (seconds), deletion.
    type Item = (u8, u8, u8, Option<u32>, bool);

    fn contact(name: u8, email: u8) -> Record {
        let names = ["陳大文", "Ana García", "Wei Wang", "林美玲"];
        Record::Contact(Contact {
            full_name: Some(names[usize::from(name) % names.len()].into()),
            emails: vec![format!("p{email}@example.com")],
            ..Contact::default()
        })
    }

    fn remote(item: &Item) -> RemoteRecord {
        let (id, name, email, at, deleted) = *item;
        RemoteRecord {
            external_id: format!("x{id}"),
            version: None,
            updated_at: at.map(|s| DateTime::<Utc>::from_timestamp(i64::from(s), 0).unwrap()),
            deleted,
            record: (!deleted).then(|| contact(name, email)),
            raw: json!({ "id": id }),
        }
    }

    /// A store holding contacts `s0…` linked to `x0…` for the stored items,
    /// built anew (fresh hash maps, so their iteration order differs from
    /// one call to the next).
    fn state(stored: &[(u8, u8)]) -> PageState {
        let mut s = PageState::default();
        for (i, (name, email)) in stored.iter().enumerate() {
            let id = format!("s{i}");
            let rec = contact(*name, *email);
            let fields = rec.to_fields();
            let hash = rec.content_hash();
            if let Record::Contact(c) = &rec {
                for key in synchub_identity::match_keys(c, Some("TW")) {
                    s.page_keys.entry(key).or_insert_with(|| id.clone());
                }
            }
            s.current.insert(
                id.clone(),
                Current {
                    record: rec,
                    version: 1,
                    deleted: false,
                    merged_into: None,
                    changed_at: DateTime::<Utc>::from_timestamp(1_000, 0),
                    field_times: FieldTimes::new(),
                },
            );
            s.links.insert(
                format!("x{i}"),
                Link {
                    connection: "shop".into(),
                    object: ObjectKind::Contact,
                    external_id: format!("x{i}"),
                    crm_id: id,
                    remote_version: None,
                    remote_updated_at: None,
                    snapshot: Some(fields),
                    snapshot_hash: Some(hash),
                    deleted: false,
                },
            );
        }
        s
    }

    fn plan(items: &[RemoteRecord], s: PageState, delete: DeletePolicy) -> PagePlan {
        let merge = MergePolicy::default();
        let policy = PagePolicy {
            connection: "shop",
            object: ObjectKind::Contact,
            region: Some("TW"),
            merge: &merge,
            delete,
            can_push: true,
        };
        let page = PreparedPage {
            items: items.iter().map(|r| (r, r.record.clone())).collect(),
            dead: Vec::new(),
            read: items.len() as u64,
        };
        plan_page(
            page,
            s,
            &policy,
            DateTime::<Utc>::from_timestamp(2_000, 0).unwrap(),
        )
    }

    /// Items with distinct external ids (a page's screening guarantees it).
    fn page(items: Vec<Item>) -> Vec<RemoteRecord> {
        let mut seen = BTreeSet::new();
        items
            .iter()
            .filter(|i| seen.insert(i.0))
            .map(remote)
            .collect()
    }

    fn deletes() -> impl Strategy<Value = DeletePolicy> {
        prop_oneof![
            Just(DeletePolicy::Ignore),
            Just(DeletePolicy::Archive),
            Just(DeletePolicy::Delete)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        // GIVEN a store and a page WHEN the page is planned twice from
        // states built anew THEN both plans are equal (nothing depends on
        // hash order or on the time of day: the clock is an input).
        #[test]
        fn same_inputs_same_plan(
            stored in prop::collection::vec((0u8..4, 0u8..6), 0..6),
            items in prop::collection::vec(
                (0u8..10, 0u8..4, 0u8..8, prop::option::of(0u32..4_000), any::<bool>()), 0..16),
            delete in deletes(),
        ) {
            let items = page(items);
            let a = plan(&items, state(&stored), delete);
            let b = plan(&items, state(&stored), delete);
            prop_assert_eq!(a, b);
        }

        // GIVEN an empty store WHEN a page of new records is planned THEN
        // every written record is version 1 with its keys only added (no
        // old keys to delete), one link per item, and each record has its
        // own link or was matched by email to one the page created.
        #[test]
        fn first_load_only_adds(
            items in prop::collection::vec(
                (0u8..40, 0u8..4, 0u8..60, prop::option::of(0u32..4_000), Just(false)), 1..30),
        ) {
            let items = page(items);
            let p = plan(&items, PageState::default(), DeletePolicy::Archive);
            prop_assert!(p.replaced_keys.is_empty());
            prop_assert!(p.records.iter().all(|r| r.version >= 1));
            prop_assert_eq!(p.new_keys.len(), p.records.len());
            prop_assert_eq!(p.links.len(), items.len());
            prop_assert_eq!(p.counts.created as usize, p.records.len());
            prop_assert_eq!((p.counts.created + p.counts.merged) as usize, items.len());
        }

        // GIVEN a plan's records and links stored WHEN the same page is
        // planned again (a replay after a crash before the next page) THEN
        // it changes nothing.
        #[test]
        fn replayed_page_changes_nothing(
            stored in prop::collection::vec((0u8..4, 0u8..6), 0..4),
            items in prop::collection::vec(
                (0u8..10, 0u8..4, 0u8..8, prop::option::of(0u32..4_000), Just(false)), 0..12),
        ) {
            let items = page(items);
            let first = plan(&items, state(&stored), DeletePolicy::Archive);
            let mut after = state(&stored);
            for r in &first.records {
                after.current.insert(r.id.clone(), Current {
                    record: r.record.clone(),
                    version: r.version,
                    deleted: r.deleted,
                    merged_into: None,
                    changed_at: DateTime::<Utc>::from_timestamp(2_000, 0),
                    field_times: r.field_times.clone(),
                });
            }
            for l in &first.links {
                after.links.insert(l.external_id.clone(), l.clone());
            }
            let again = plan(&items, after, DeletePolicy::Archive);
            prop_assert!(again.records.is_empty(), "{:?}", again.records);
            prop_assert!(again.links.is_empty());
            prop_assert_eq!(again.counts.unchanged as usize, items.len());
        }
    }
}
