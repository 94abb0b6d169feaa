//! Applying one page in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use synchub_core::merge::{merge3, Merged, Side, CRM_SOURCE};
use synchub_core::model::{Contact, PartyRef};
use synchub_core::{derive_crm_id, ObjectKind, Page, Record, RemoteRecord};
use synchub_store::conflicts::NewConflict;
use synchub_store::dead_letters::DeadLetter;
use synchub_store::links::Link;
use synchub_store::records::{FieldTimes, RecordWrite, StoredRecord};
use synchub_store::{conflicts, cursors, dead_letters, leases, links, records, StoreError, Tx};

use crate::local::plan_outbox;
use crate::report::StreamReport;
use crate::{Connection, DeletePolicy, Engine, EngineError};

/// The CRM state of one record while a page is applied.
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

/// Everything one page will write, gathered before the writes.
#[derive(Default)]
struct Writes {
    current: HashMap<String, Current>,
    dirty: BTreeSet<String>,
    propagate_delete: BTreeSet<String>,
    push_back: BTreeSet<String>,
    links: BTreeMap<String, Link>,
    /// The links as loaded: one that is written back unchanged keeps its
    /// row (and its `updated_at`) as it was.
    loaded_links: HashMap<String, Link>,
    page_keys: HashMap<String, String>,
    conflicts: Vec<NewConflict>,
    dead: Vec<DeadLetter>,
    /// Fuzzy key → contacts stored under it (the pull matcher's candidates).
    fuzzy_keys: HashMap<String, Vec<String>>,
    /// The pull matcher, when this page has contacts it may need to place.
    matcher: Option<crate::fuzzy::pull::PullMatcher>,
    /// Pairs the pull matcher queued for review.
    reviews: Vec<synchub_store::reviews::NewReview>,
}

pub(crate) async fn apply_page(
    engine: &Engine,
    conn: &Connection,
    object: ObjectKind,
    page: &Page,
    seq: i64,
    dry_run: bool,
    lease: Option<&crate::Held<'_>>,
) -> Result<StreamReport, EngineError> {
    let mut counts = StreamReport::default();
    let mut tx = engine.store.begin().await?;
    // The fencing check comes first: it locks the lease row (PostgreSQL) or
    // takes the writer lock (SQLite) until the page commits, so no takeover
    // can slip between the check and the commit.
    if let Some(held) = lease {
        if !leases::fence(&mut tx, held.lease, Utc::now(), held.ttl).await? {
            rollback(tx).await?;
            return Err(EngineError::LeaseLost {
                stream: held.lease.key.to_string(),
                token: held.lease.token,
            });
        }
    }
    let mut w = Writes::default();
    let region = conn.region.as_deref();

    // Ids that cannot be stored or that repeat within the page become dead
    // letters before anything is looked up with them.
    let accepted = screen_ids(conn, object, &page.records, &mut w.dead);
    if seq > 0 {
        RunIds::note(engine, conn, object, seq, &accepted, &mut counts);
    }
    let ext_ids: Vec<String> = accepted.iter().map(|r| r.external_id.clone()).collect();
    let known = links::by_external_ids(&mut tx, &conn.name, object, &ext_ids).await?;
    let ids: Vec<String> = known.values().map(|l| l.crm_id.clone()).collect();
    load_current(&mut tx, &mut w, &ids).await?;
    w.loaded_links = known.clone();
    w.links = known.into_iter().collect();

    // Normalize and validate; rejected items become dead letters.
    let mut prepared: Vec<(&RemoteRecord, Option<Record>)> = Vec::with_capacity(accepted.len());
    for r in accepted {
        if r.deleted {
            prepared.push((r, None));
            continue;
        }
        match r.record.clone().map(|rec| normalize(rec, region)) {
            Some(Ok(rec)) => match oversized_key(&rec, region) {
                Some(reason) => w.dead.push(dead_letter(conn, object, r, reason)),
                None => prepared.push((r, Some(rec))),
            },
            Some(Err(reason)) => w.dead.push(dead_letter(conn, object, r, reason)),
            None => w.dead.push(dead_letter(
                conn,
                object,
                r,
                "record has no content and is not a deletion".into(),
            )),
        }
    }
    resolve_parties(&mut tx, conn, &mut prepared).await?;
    preload_candidates(&mut tx, &mut w, &prepared, region).await?;
    if engine.pull_matching && preload_fuzzy(&mut tx, &mut w, &prepared, region).await? {
        let cached = engine.run_ids.lock().ok().and_then(|ids| ids.live_contacts);
        let existing = match cached {
            Some(n) => n,
            None => crate::fuzzy::pull::live_contacts(&mut tx).await?,
        };
        w.matcher = Some(crate::fuzzy::pull::PullMatcher::new(existing, region));
    }

    let mail: Vec<String> = prepared
        .iter()
        .filter(|(r, _)| !w.links.contains_key(&r.external_id))
        .filter_map(|(_, rec)| rec.as_ref().and_then(message_crm_id))
        .collect();
    load_current(&mut tx, &mut w, &mail).await?;

    counts.read = (page.records.len() + page.rejected.len()) as u64;
    for (remote, rec) in prepared {
        match rec {
            None => apply_delete(engine, conn, object, remote, &mut w, &mut counts),
            Some(rec) => apply_one(engine, conn, object, remote, rec, &mut w, &mut counts),
        }
    }
    for rej in &page.rejected {
        w.dead.push(DeadLetter {
            connection: conn.name.clone(),
            object,
            external_id: rej.external_id.clone(),
            location: rej.location.clone(),
            reason: rej.reason.clone(),
            payload: rej.raw.to_string(),
        });
    }
    counts.dead_lettered += w.dead.len() as u64;
    counts.invalid = w
        .dead
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

    counts.matcher.clone_from(&w.matcher);
    if let (Some(m), Ok(mut ids)) = (&w.matcher, engine.run_ids.lock()) {
        ids.live_contacts = Some(m.existing_contacts + counts.created);
    }
    write_all(engine, conn, object, &mut tx, w).await?;
    crate::invoices::settle_orders(engine, conn, object, &mut tx, &page.records).await?;
    if let Some(next) = &page.next {
        if !cursors::save(&mut tx, &conn.name, object, Some(next), seq).await? {
            // Another run committed this stream further on: applying this
            // page now would overwrite newer state with older.
            rollback(tx).await?;
            return Err(EngineError::CursorBackwards {
                connection: conn.name.clone(),
                object,
                seq,
            });
        }
    }
    let result = if dry_run {
        tx.rollback().await
    } else {
        tx.commit().await
    };
    result.map_err(|e| StoreError::Query {
        context: "committing a page",
        source: e,
    })?;
    if !dry_run {
        engine.store.note_writes(counts.read).await?;
    }
    Ok(counts)
}

async fn rollback(tx: Tx) -> Result<(), StoreError> {
    tx.rollback().await.map_err(|e| StoreError::Query {
        context: "rolling back a refused page",
        source: e,
    })
}

/// The longest value the store puts into an index (the identity map's
/// external id, a contact's match keys). A PostgreSQL b-tree entry holds at
/// most about 2.7 kB (a longer one fails the whole page with "index row
/// requires … bytes"); SQLite takes anything, and both backends behave alike
/// by refusing such a value here.
pub const MAX_INDEXED_BYTES: usize = 1024;

/// A long value cut for a message or a dead letter's id column.
fn shorten(v: &str) -> String {
    const SHOWN: usize = 64;
    if v.len() <= SHOWN {
        return v.to_string();
    }
    let mut end = SHOWN;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &v[..end])
}

/// The records of a page whose id can be stored and is the first of its
/// kind in the page; the others become dead letters naming why (a repeated
/// id names both items: applying both would silently overwrite the first).
fn screen_ids<'p>(
    conn: &Connection,
    object: ObjectKind,
    records: &'p [RemoteRecord],
    dead: &mut Vec<DeadLetter>,
) -> Vec<&'p RemoteRecord> {
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let id = r.external_id.as_str();
        if id.len() > MAX_INDEXED_BYTES {
            dead.push(DeadLetter {
                external_id: Some(shorten(id)),
                ..dead_letter(
                    conn,
                    object,
                    r,
                    format!(
                        "item {} of the page: the external id is {} bytes long; an indexed value \
                         takes at most {MAX_INDEXED_BYTES}",
                        i + 1,
                        id.len()
                    ),
                )
            });
            continue;
        }
        match first.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => dead.push(dead_letter(
                conn,
                object,
                r,
                format!(
                    "duplicate id `{}`: items {} and {} of one page carry it; the later one is \
                     not applied",
                    shorten(id),
                    e.get() + 1,
                    i + 1
                ),
            )),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(i);
                out.push(r);
            }
        }
    }
    out
}

/// The ids each stream has read in the current run: where (page, item)
/// and the source time of the read. Kept as 64-bit hashes (a million ids
/// take about 40 MB).
#[derive(Default)]
pub(crate) struct RunIds {
    streams: HashMap<String, HashMap<u64, ReadAt>>,
    /// Live contacts in the store (for the pull matcher's prior): counted
    /// once per run, then moved by the contacts this run's pages create.
    live_contacts: Option<u64>,
}

/// Where an id was read: page, item, source time (µs).
type ReadAt = (i64, usize, Option<i64>);

impl RunIds {
    pub(crate) fn reset(ids: &std::sync::Mutex<RunIds>) {
        if let Ok(mut ids) = ids.lock() {
            ids.streams.clear();
            ids.live_contacts = None;
        }
    }

    /// Reports every id read before in this run (on an earlier page) when
    /// nothing says the later read is newer: a source that lists one id
    /// twice, whose later row is applied over the first.
    fn note(
        engine: &Engine,
        conn: &Connection,
        object: ObjectKind,
        seq: i64,
        records: &[&RemoteRecord],
        counts: &mut StreamReport,
    ) {
        use std::hash::{Hash, Hasher};
        let Ok(mut ids) = engine.run_ids.lock() else {
            return;
        };
        let seen = ids
            .streams
            .entry(format!("{}.{object}", conn.name))
            .or_default();
        for (i, r) in records.iter().enumerate() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            r.external_id.hash(&mut h);
            let at = r.updated_at.map(|t| t.timestamp_micros());
            let before = seen.insert(h.finish(), (seq, i, at));
            if let Some((page, item, then)) = before {
                let newer = matches!((at, then), (Some(a), Some(b)) if a > b);
                if page != seq && !newer {
                    counts.repeated_ids += 1;
                    let text = format!(
                        "id `{}` was read twice in this run (page {page} item {} and page {seq} \
                         item {}) with nothing saying which is newer; the later read was applied",
                        shorten(&r.external_id),
                        item + 1,
                        i + 1
                    );
                    tracing::warn!(connection = %conn.name, %object, "{text}");
                    if counts.warnings.len() < crate::report::MAX_INVALID {
                        counts.warnings.push(text);
                    }
                }
            }
        }
    }
}

/// Why a normalized record cannot be stored: a match key (an email or a
/// phone) too long for the key index.
fn oversized_key(rec: &Record, region: Option<&str>) -> Option<String> {
    let Record::Contact(c) = rec else { return None };
    synchub_identity::match_keys(c, region)
        .into_iter()
        .find(|k| k.len() > MAX_INDEXED_BYTES)
        .map(|k| {
            let (kind, value) = k.split_once(':').unwrap_or(("key", k.as_str()));
            let field = match kind {
                "email" => "emails",
                "phone" => "phones",
                other => other,
            };
            format!(
                "field `{field}`: a value of {} bytes (`{}`) is longer than the \
                 {MAX_INDEXED_BYTES} bytes an indexed value may take",
                value.len(),
                shorten(value)
            )
        })
}

fn dead_letter(
    conn: &Connection,
    object: ObjectKind,
    r: &RemoteRecord,
    reason: String,
) -> DeadLetter {
    DeadLetter {
        connection: conn.name.clone(),
        object,
        external_id: Some(r.external_id.clone()),
        location: None,
        reason,
        payload: r.raw.to_string(),
    }
}

/// Loads these records and, following merge pointers, their survivors (a
/// link of a merged record applies to the record it was merged into).
async fn load_current(tx: &mut Tx, w: &mut Writes, ids: &[String]) -> Result<(), StoreError> {
    let mut want: Vec<String> = ids.to_vec();
    for _ in 0..8 {
        let missing: Vec<String> = want
            .iter()
            .filter(|id| !w.current.contains_key(*id))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        want.clear();
        for (id, rec) in records::get_many(tx, &missing).await? {
            want.extend(rec.merged_into.clone());
            w.current.insert(id, rec.into());
        }
    }
    Ok(())
}

/// Normalizes a record for storage and checks it is usable.
pub(crate) fn normalize(rec: Record, region: Option<&str>) -> Result<Record, String> {
    match rec {
        Record::Contact(mut c) => {
            synchub_identity::normalize_contact(&mut c, region);
            if let Some(bad) = c.custom.get(synchub_identity::INVALID_EMAILS) {
                tracing::warn!(invalid = %bad, "email values that are not addresses kept as the custom field `invalid_emails`, not used to match");
            }
            if c.display_name().is_none() && c.phones.is_empty() {
                return Err("contact has no name, email or phone".into());
            }
            Ok(Record::Contact(c))
        }
        Record::Order(mut o) => {
            o.currency = o.currency.trim().to_ascii_uppercase();
            if o.currency.len() != 3 {
                return Err(format!(
                    "order has no valid currency code (got `{}`)",
                    o.currency
                ));
            }
            Ok(Record::Order(o))
        }
        Record::Invoice(mut i) => {
            i.currency = i.currency.trim().to_ascii_uppercase();
            if i.currency.len() != 3 {
                return Err(format!(
                    "invoice has no valid currency code (got `{}`)",
                    i.currency
                ));
            }
            Ok(Record::Invoice(i))
        }
        Record::Company(c) if c.name.trim().is_empty() => Err("company has no name".into()),
        other => Ok(other),
    }
}

fn party_mut(rec: &mut Record) -> Option<&mut PartyRef> {
    match rec {
        Record::Order(o) => o.customer.as_mut(),
        Record::Invoice(i) => i.customer.as_mut(),
        _ => None,
    }
}

/// Fills `crm_id` of order and invoice customers through the identity map
/// (same connection), else through an exact email key.
async fn resolve_parties(
    tx: &mut Tx,
    conn: &Connection,
    prepared: &mut [(&RemoteRecord, Option<Record>)],
) -> Result<(), StoreError> {
    let mut ext: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for (_, rec) in prepared.iter_mut() {
        if let Some(p) = rec.as_mut().and_then(party_mut) {
            ext.extend(p.external_id.clone());
            if let Some(e) = p
                .email
                .as_deref()
                .and_then(synchub_identity::normalize_email)
            {
                keys.push(format!("email:{e}"));
            }
        }
    }
    if ext.is_empty() && keys.is_empty() {
        return Ok(());
    }
    let by_ext = links::by_external_ids(tx, &conn.name, ObjectKind::Contact, &ext).await?;
    let by_key: HashMap<String, String> = records::find_by_keys(tx, ObjectKind::Contact, &keys)
        .await?
        .into_iter()
        .rev()
        .collect();
    for (_, rec) in prepared.iter_mut() {
        if let Some(p) = rec.as_mut().and_then(party_mut) {
            let via_ext = p
                .external_id
                .as_ref()
                .and_then(|e| by_ext.get(e))
                .map(|l| l.crm_id.clone());
            let via_email = p
                .email
                .as_deref()
                .and_then(synchub_identity::normalize_email)
                .and_then(|e| by_key.get(&format!("email:{e}")).cloned());
            p.crm_id = via_ext.or(via_email);
        }
    }
    Ok(())
}

async fn preload_candidates(
    tx: &mut Tx,
    w: &mut Writes,
    prepared: &[(&RemoteRecord, Option<Record>)],
    region: Option<&str>,
) -> Result<(), StoreError> {
    let mut keys = Vec::new();
    for (r, rec) in prepared {
        if let (false, Some(Record::Contact(c))) = (w.links.contains_key(&r.external_id), rec) {
            keys.extend(synchub_identity::match_keys(c, region));
        }
    }
    keys.sort();
    keys.dedup();
    let hits = records::find_by_keys(tx, ObjectKind::Contact, &keys).await?;
    let ids: Vec<String> = hits.iter().map(|(_, id)| id.clone()).collect();
    load_current(tx, w, &ids).await?;
    for (key, id) in hits {
        // find_by_keys is sorted, so the smallest id wins deterministically.
        w.page_keys.entry(key).or_insert(id);
    }
    Ok(())
}

/// The pull matcher's candidates: contacts stored under a fuzzy key of an
/// unlinked incoming contact. True when the page has such contacts (the
/// matcher is needed).
async fn preload_fuzzy(
    tx: &mut Tx,
    w: &mut Writes,
    prepared: &[(&RemoteRecord, Option<Record>)],
    region: Option<&str>,
) -> Result<bool, StoreError> {
    let mut keys = Vec::new();
    for (r, rec) in prepared {
        if let (false, Some(Record::Contact(c))) = (w.links.contains_key(&r.external_id), rec) {
            keys.extend(crate::fuzzy::pull::keys(c, region));
        }
    }
    if keys.is_empty() {
        return Ok(false);
    }
    keys.sort();
    keys.dedup();
    let hits = records::find_by_keys(tx, ObjectKind::Contact, &keys).await?;
    let ids: Vec<String> = hits.iter().map(|(_, id)| id.clone()).collect();
    load_current(tx, w, &ids).await?;
    for (key, id) in hits {
        w.fuzzy_keys.entry(key).or_default().push(id);
    }
    Ok(true)
}

/// The pull matcher's decision for an unlinked contact no exact key placed:
/// the existing contact it merges into or is queued for review with.
fn fuzzy_match(
    w: &Writes,
    c: &Contact,
    region: Option<&str>,
) -> Option<(String, synchub_identity::matcher::MatchEvidence)> {
    let matcher = w.matcher.as_ref()?;
    let mut ids: Vec<String> = crate::fuzzy::pull::keys(c, region)
        .iter()
        .filter_map(|k| w.fuzzy_keys.get(k))
        .flatten()
        .cloned()
        .chain(
            synchub_identity::match_keys(c, region)
                .iter()
                .filter_map(|k| w.page_keys.get(k).cloned()),
        )
        .map(|id| survivor(w, id))
        .collect();
    ids.sort();
    ids.dedup();
    let candidates: Vec<(String, Contact)> = ids
        .into_iter()
        .filter_map(|id| match w.current.get(&id) {
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

/// Follows merge pointers to the surviving record.
fn survivor(w: &Writes, mut id: String) -> String {
    for _ in 0..8 {
        match w.current.get(&id).and_then(|c| c.merged_into.clone()) {
            Some(next) => id = next,
            None => break,
        }
    }
    id
}

fn find_match(w: &Writes, c: &Contact, region: Option<&str>) -> Option<String> {
    for key in synchub_identity::match_keys(c, region) {
        let Some(id) = w.page_keys.get(&key).cloned() else {
            continue;
        };
        let id = survivor(w, id);
        let Some(cur) = w.current.get(&id) else {
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

fn apply_one(
    engine: &Engine,
    conn: &Connection,
    object: ObjectKind,
    remote: &RemoteRecord,
    rec: Record,
    w: &mut Writes,
    counts: &mut StreamReport,
) {
    let remote_fields = rec.to_fields();
    let remote_hash = rec.content_hash();
    let link = w.links.get(&remote.external_id).cloned();
    let region = conn.region.as_deref();

    if let Some(link) = &link {
        let same_version = link.remote_version.is_some() && link.remote_version == remote.version;
        if same_version || link.snapshot_hash.as_deref() == Some(remote_hash.as_str()) {
            counts.unchanged += 1;
            if !same_version && remote.version.is_some() {
                let mut l = link.clone();
                l.remote_version = remote.version.clone();
                l.remote_updated_at = time_text(remote.updated_at).or(l.remote_updated_at);
                w.links.insert(remote.external_id.clone(), l);
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
            counts.unchanged += 1;
            return;
        }
    }

    let by_message = if link.is_none() {
        message_crm_id(&rec)
    } else {
        None
    };
    if let Some(id) = &by_message {
        if w.current.get(id).is_some_and(|c| !c.deleted) {
            // Another connection brought this message first: one activity,
            // linked from every mailbox that holds it.
            counts.unchanged += 1;
            set_link(w, conn, object, remote, id, remote_fields, remote_hash);
            return;
        }
    }

    let mut review = None;
    let (crm_id, base, matched) = match &link {
        Some(l) => (survivor(w, l.crm_id.clone()), l.snapshot.clone(), false),
        None => match rec.as_contact().and_then(|c| find_match(w, c, region)) {
            Some(id) => (id, None, true),
            None => {
                let new_id = by_message
                    .unwrap_or_else(|| derive_crm_id(&conn.name, object, &remote.external_id));
                match rec.as_contact().and_then(|c| fuzzy_match(w, c, region)) {
                    Some((id, e)) if crate::fuzzy::pull::merges(&e) => {
                        counts.fuzzy_merged += 1;
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

    let (new_fields, new_times): (Map<String, Value>, FieldTimes) = match w.current.get(&crm_id) {
        Some(cur) if cur.deleted => {
            if remote
                .updated_at
                .is_some_and(|r| cur.deleted_at().is_some_and(|d| r > d))
            {
                // An edit made after the CRM delete: keep it deleted, ask a person.
                w.conflicts.push(NewConflict {
                    crm_id: crm_id.clone(),
                    object,
                    field: "_deleted".into(),
                    connection: conn.name.clone(),
                    external_id: remote.external_id.clone(),
                    base: "false".into(),
                    local: "true".into(),
                    remote: "false".into(),
                });
                counts.conflicted += 1;
            } else {
                counts.unchanged += 1;
            }
            set_link(w, conn, object, remote, &crm_id, remote_fields, remote_hash);
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
                    source: &conn.name,
                },
                &engine.policy,
            );
            for c in &merged.conflicts {
                w.conflicts.push(NewConflict {
                    crm_id: crm_id.clone(),
                    object,
                    field: c.field.clone(),
                    connection: conn.name.clone(),
                    external_id: remote.external_id.clone(),
                    base: c.base.to_string(),
                    local: c.local.to_string(),
                    remote: c.remote.to_string(),
                });
            }
            if !merged.conflicts.is_empty() {
                counts.conflicted += 1;
            }
            if matched {
                counts.merged += 1;
            } else if merged.changes_local(&local_fields) {
                counts.updated += 1;
            } else if merged.conflicts.is_empty() {
                counts.unchanged += 1;
            }
            // While a conflict waits for a person, the remote keeps its value.
            if merged.conflicts.is_empty()
                && merged.changes_remote(&remote_fields)
                && conn.can_push(object)
            {
                w.push_back.insert(crm_id.clone());
            }
            if !merged.changes_local(&local_fields) {
                set_link(w, conn, object, remote, &crm_id, remote_fields, remote_hash);
                return;
            }
            let times = next_field_times(
                &cur.field_times,
                Some(&local_fields),
                &merged.fields,
                remote.updated_at.unwrap_or_else(Utc::now),
            );
            (merged.fields, times)
        }
        None => {
            counts.created += 1;
            let times = next_field_times(
                &FieldTimes::new(),
                None,
                &remote_fields,
                remote.updated_at.unwrap_or_else(Utc::now),
            );
            (remote_fields.clone(), times)
        }
    };
    let record = match Record::from_fields(object, new_fields) {
        Ok(r) => r,
        Err(e) => {
            w.dead.push(dead_letter(
                conn,
                object,
                remote,
                format!("merged record is invalid: {e}"),
            ));
            return;
        }
    };
    let version = w.current.get(&crm_id).map(|c| c.version).unwrap_or(0) + 1;
    if let Record::Contact(c) = &record {
        for key in synchub_identity::match_keys(c, region) {
            w.page_keys.entry(key).or_insert_with(|| crm_id.clone());
        }
        for key in crate::fuzzy::pull::keys(c, region) {
            let ids = w.fuzzy_keys.entry(key).or_default();
            if !ids.contains(&crm_id) {
                ids.push(crm_id.clone());
            }
        }
    }
    if let Some(r) = review {
        counts.fuzzy_queued += 1;
        w.reviews.push(r);
    }
    w.current.insert(
        crm_id.clone(),
        Current {
            record,
            version,
            deleted: false,
            merged_into: None,
            changed_at: Some(Utc::now()),
            field_times: new_times,
        },
    );
    w.dirty.insert(crm_id.clone());
    set_link(w, conn, object, remote, &crm_id, remote_fields, remote_hash);
}

fn set_link(
    w: &mut Writes,
    conn: &Connection,
    object: ObjectKind,
    remote: &RemoteRecord,
    crm_id: &str,
    snapshot: Map<String, Value>,
    hash: String,
) {
    // A link keeps the record it names: one of a merged record stays with
    // it (its data flows to the survivor) so the merge's delete policy can
    // still reach that copy.
    let crm_id = w
        .links
        .get(&remote.external_id)
        .map(|l| l.crm_id.clone())
        .unwrap_or_else(|| crm_id.to_string());
    w.links.insert(
        remote.external_id.clone(),
        Link {
            connection: conn.name.clone(),
            object,
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

fn apply_delete(
    engine: &Engine,
    conn: &Connection,
    object: ObjectKind,
    remote: &RemoteRecord,
    w: &mut Writes,
    counts: &mut StreamReport,
) {
    let Some(mut link) = w.links.get(&remote.external_id).cloned() else {
        counts.unchanged += 1;
        return;
    };
    if link.deleted {
        counts.unchanged += 1;
        return;
    }
    let policy = engine.delete_policy(object);
    let merged_copy = w
        .current
        .get(&link.crm_id)
        .is_some_and(|c| c.merged_into.is_some());
    if merged_copy {
        // The system dropped its copy of a record merged into another: a
        // duplicate went away; the survivor is not deleted with it.
        counts.unchanged += 1;
        link.deleted = true;
        link.remote_updated_at = time_text(remote.updated_at.or(Some(Utc::now())));
        w.links.insert(remote.external_id.clone(), link);
        return;
    }
    let crm_id = survivor(w, link.crm_id.clone());
    let deleted_at = remote.updated_at.unwrap_or_else(Utc::now);
    if policy != DeletePolicy::Ignore {
        if let Some(cur) = w.current.get_mut(&crm_id) {
            if !cur.deleted && cur.last_edit().is_some_and(|t| t > deleted_at) {
                // Another system edited the record after this delete: keep it
                // live, ask a person (the mirror of an edit after a delete).
                w.conflicts.push(NewConflict {
                    crm_id: crm_id.clone(),
                    object,
                    field: DELETED_FIELD.into(),
                    connection: conn.name.clone(),
                    external_id: remote.external_id.clone(),
                    base: "false".into(),
                    local: "false".into(),
                    remote: "true".into(),
                });
                counts.conflicted += 1;
            } else if !cur.deleted {
                cur.deleted = true;
                cur.version += 1;
                cur.changed_at = Some(Utc::now());
                cur.field_times.insert(DELETED_FIELD.into(), deleted_at);
                w.dirty.insert(crm_id.clone());
                if policy == DeletePolicy::Delete {
                    w.propagate_delete.insert(crm_id.clone());
                }
            }
        }
    }
    counts.deleted += 1;
    link.deleted = true;
    link.remote_updated_at = time_text(Some(deleted_at));
    w.links.insert(remote.external_id.clone(), link);
}

async fn write_all(
    engine: &Engine,
    conn: &Connection,
    object: ObjectKind,
    tx: &mut Tx,
    w: Writes,
) -> Result<(), EngineError> {
    let mut writes = Vec::with_capacity(w.dirty.len());
    let mut keys = Vec::new();
    for id in &w.dirty {
        if let Some(cur) = w.current.get(id) {
            writes.push(RecordWrite {
                id: id.clone(),
                record: cur.record.clone(),
                version: cur.version,
                deleted: cur.deleted,
                field_times: cur.field_times.clone(),
            });
            if let (Record::Contact(c), false) = (&cur.record, cur.deleted) {
                keys.push((
                    id.clone(),
                    crate::fuzzy::pull::stored_keys(c, conn.region.as_deref()),
                ));
            } else if object == ObjectKind::Contact {
                keys.push((id.clone(), Vec::new()));
            }
        }
    }
    records::upsert_many(tx, &writes).await?;
    if object == ObjectKind::Contact {
        records::set_keys(tx, ObjectKind::Contact, &keys).await?;
    }
    let loaded = w.loaded_links;
    let link_rows: Vec<Link> = w
        .links
        .into_values()
        .filter(|l| loaded.get(&l.external_id) != Some(l))
        .collect();
    links::upsert_many(tx, &link_rows).await?;
    let versions: HashMap<String, (i64, bool)> = w
        .current
        .iter()
        .filter(|(id, _)| w.dirty.contains(*id) || w.push_back.contains(*id))
        .map(|(id, c)| (id.clone(), (c.version, c.deleted)))
        .collect();
    plan_outbox(
        engine,
        tx,
        object,
        Some(&conn.name),
        &versions,
        &w.push_back,
        &w.propagate_delete,
    )
    .await?;
    dead_letters::insert_many(tx, &w.dead).await?;
    synchub_store::reviews::queue(tx, &w.reviews).await?;
    for c in &w.conflicts {
        conflicts::record(tx, c).await?;
    }
    Ok(())
}

/// The CRM id of an email activity, from its Message-ID (without angle
/// brackets): the same message read through Gmail, Outlook or IMAP is one
/// activity, whichever connection brings it first.
fn message_crm_id(rec: &Record) -> Option<String> {
    let Record::Activity(a) = rec else {
        return None;
    };
    let id = a.message_id.as_deref()?.trim();
    let id = id.trim_start_matches('<').trim_end_matches('>').trim();
    (!id.is_empty()).then(|| derive_crm_id("message-id", ObjectKind::Activity, id))
}
