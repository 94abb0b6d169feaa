//! Applying one page in one transaction: screen and normalize its items,
//! load what the store holds for them, plan the page without IO
//! ([`crate::plan::plan_page`]) and write the plan in bulk, the cursor
//! committed with it.

use std::collections::HashMap;

use chrono::Utc;
use synchub_core::model::PartyRef;
use synchub_core::{ObjectKind, Page, Record, RemoteRecord};
use synchub_store::dead_letters::DeadLetter;
use synchub_store::page::PageWrites;
use synchub_store::{cursors, leases, links, records, StoreError, Tx};

use crate::local::plan_outbox;
use crate::plan::{dead_letter, plan_page, PagePlan, PagePolicy, PageState, PreparedPage};
use crate::report::StreamReport;
use crate::{Connection, Engine, EngineError};

pub(crate) use crate::plan::{next_field_times, DELETED_FIELD};

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
    let mut state = PageState::default();
    let region = conn.region.as_deref();

    // Ids that cannot be stored or that repeat within the page become dead
    // letters before anything is looked up with them.
    let mut dead = Vec::new();
    let accepted = screen_ids(conn, object, &page.records, &mut dead);
    if seq > 0 {
        RunIds::note(engine, conn, object, seq, &accepted, &mut counts);
    }
    let ext_ids: Vec<String> = accepted.iter().map(|r| r.external_id.clone()).collect();
    let known = links::by_external_ids(&mut tx, &conn.name, object, &ext_ids).await?;
    let ids: Vec<String> = known.values().map(|l| l.crm_id.clone()).collect();
    load_current(&mut tx, &mut state, &ids).await?;
    state.links = known;

    // Normalize and validate; rejected items become dead letters.
    let mut prepared: Vec<(&RemoteRecord, Option<Record>)> = Vec::with_capacity(accepted.len());
    for r in accepted {
        if r.deleted {
            prepared.push((r, None));
            continue;
        }
        match r.record.clone().map(|rec| normalize(rec, region)) {
            Some(Ok(rec)) => match oversized_key(&rec, region) {
                Some(reason) => dead.push(dead_letter(&conn.name, object, r, reason)),
                None => prepared.push((r, Some(rec))),
            },
            Some(Err(reason)) => dead.push(dead_letter(&conn.name, object, r, reason)),
            None => dead.push(dead_letter(
                &conn.name,
                object,
                r,
                "record has no content and is not a deletion".into(),
            )),
        }
    }
    resolve_parties(&mut tx, conn, &mut prepared).await?;
    preload_candidates(&mut tx, &mut state, &prepared, region).await?;
    if engine.pull_matching && preload_fuzzy(&mut tx, &mut state, &prepared, region).await? {
        let cached = engine.run_ids.lock().ok().and_then(|ids| ids.live_contacts);
        let existing = match cached {
            Some(n) => n,
            None => crate::fuzzy::pull::live_contacts(&mut tx).await?,
        };
        state.matcher = Some(crate::fuzzy::pull::PullMatcher::new(existing, region));
    }
    // An email activity another connection brought first is one activity:
    // its record is loaded so the plan links this copy to it.
    let mail: Vec<String> = prepared
        .iter()
        .filter(|(r, _)| !state.links.contains_key(&r.external_id))
        .filter_map(|(_, rec)| rec.as_ref().and_then(message_crm_id))
        .collect();
    load_current(&mut tx, &mut state, &mail).await?;
    for rej in &page.rejected {
        dead.push(DeadLetter {
            connection: conn.name.clone(),
            object,
            external_id: rej.external_id.clone(),
            location: rej.location.clone(),
            reason: rej.reason.clone(),
            payload: rej.raw.to_string(),
        });
    }

    let policy = PagePolicy {
        connection: &conn.name,
        object,
        region,
        merge: &engine.policy,
        delete: engine.delete_policy(object),
        can_push: conn.can_push(object),
    };
    let input = PreparedPage {
        items: prepared,
        dead,
        read: (page.records.len() + page.rejected.len()) as u64,
    };
    let plan = plan_page(input, state, &policy, Utc::now());
    counts.absorb(&plan.counts);
    if let (Some(m), Ok(mut ids)) = (&plan.counts.matcher, engine.run_ids.lock()) {
        ids.live_contacts = Some(m.existing_contacts + plan.counts.created);
    }
    execute(engine, conn, object, &mut tx, plan).await?;
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
                    &conn.name,
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
                &conn.name,
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

/// Loads these records and, following merge pointers, their survivors (a
/// link of a merged record applies to the record it was merged into).
async fn load_current(tx: &mut Tx, w: &mut PageState, ids: &[String]) -> Result<(), StoreError> {
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
    w: &mut PageState,
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
    w: &mut PageState,
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
    let (hits, crowded) =
        records::find_by_keys_capped(tx, ObjectKind::Contact, &keys, crate::plan::FUZZY_BLOCK)
            .await?;
    let ids: Vec<String> = hits.iter().map(|(_, id)| id.clone()).collect();
    load_current(tx, w, &ids).await?;
    for (key, id) in hits {
        w.fuzzy_keys.entry(key).or_default().push(id);
    }
    w.crowded_keys.extend(crowded);
    Ok(true)
}

/// Writes a page's plan in its transaction: the store's bulk writes, then
/// the outbox rows of the changed records.
async fn execute(
    engine: &Engine,
    conn: &Connection,
    object: ObjectKind,
    tx: &mut Tx,
    plan: PagePlan,
) -> Result<(), EngineError> {
    let writes = PageWrites {
        object: Some(object),
        records: plan.records,
        new_keys: plan.new_keys,
        replaced_keys: plan.replaced_keys,
        links: plan.links,
        dead: plan.dead,
        reviews: plan.reviews,
        conflicts: plan.conflicts,
    };
    synchub_store::page::write_page(tx, &writes).await?;
    let versions: HashMap<String, (i64, bool)> = plan.versions.into_iter().collect();
    plan_outbox(
        engine,
        tx,
        object,
        Some(&conn.name),
        &versions,
        &plan.push_back,
        &plan.propagate_delete,
    )
    .await?;
    Ok(())
}

/// The CRM id of an email activity, from its Message-ID (without angle
/// brackets): the same message read through Gmail, Outlook or IMAP is one
/// activity, whichever connection brings it first.
pub(crate) fn message_crm_id(rec: &Record) -> Option<String> {
    let Record::Activity(a) = rec else {
        return None;
    };
    let id = a.message_id.as_deref()?.trim();
    let id = id.trim_start_matches('<').trim_end_matches('>').trim();
    (!id.is_empty()).then(|| synchub_core::derive_crm_id("message-id", ObjectKind::Activity, id))
}
