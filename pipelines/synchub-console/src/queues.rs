//! The work queues: dead letters (payload, reason, replay one or all),
//! conflicts (base, CRM and remote side by side; resolve by picking a side
//! or typing a value), duplicate review (pairs with score and per-field
//! evidence; merge or keep apart) and pushes the targets refused.
//!
//! Every change goes through the function its command uses (`synchub
//! dead-letters replay`, `conflicts resolve`, `review merge|keep-apart`)
//! and is written to the audit log with who and when.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};
use synchub_core::merge::survivorship::SurvivorshipRules;
use synchub_core::Record;
use synchub_engine::Engine;
use synchub_store::conflicts::Conflict;
use synchub_store::records::StoredRecord;
use synchub_store::Store;

use crate::auth::{encode_component, CsrfForm, SessionUser};
use crate::customers::{done, Flash};
use crate::layout::{self, action_button, age, json_value, page, short_id, show, when};
use crate::{PageError, PageResult, Shared};

/// At most this many rows of a queue are shown.
const SHOWN: i64 = 200;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AllQuery {
    #[serde(default)]
    all: Option<String>,
}

impl AllQuery {
    fn all(&self) -> bool {
        self.all
            .as_deref()
            .is_some_and(|v| !v.is_empty() && v != "0")
    }
}

fn customer_link(id: &str, label: &str) -> Markup {
    html! { a href=(format!("/customers/{}", encode_component(id))) { (label) } }
}

fn toggle(path: &str, all: bool, what: &str) -> Markup {
    html! {
        p.muted {
            @if all { a href=(path) { "Only what is open" } }
            @else { a href=(format!("{path}?all=1")) { "Also " (what) } }
        }
    }
}

// ---------------------------------------------------------------- dead letters

/// `GET /queues/dead-letters`.
pub(crate) async fn dead_letters(
    State(c): State<Shared>,
    user: SessionUser,
    Query(q): Query<AllQuery>,
    Query(flash): Query<Flash>,
) -> PageResult {
    let rows = c.store.dead_letter_rows(q.all(), SHOWN).await?;
    let body = html! {
        (flash.notice())
        h1 { "Dead letters" }
        p.muted { "Source items that could not be mapped or validated. After fixing the mapping or the config (and restarting the daemon), replay them: their streams are read again and each item that lands leaves this list." }
        @if !rows.is_empty() {
            (action_button(&user, "/queues/dead-letters/replay-all", "Replay all", "primary"))
        }
        (toggle("/queues/dead-letters", q.all(), "those that landed"))
        @if rows.is_empty() { p { "No dead letters." } }
        @else { div.scroll { table {
            thead { tr { th { "Id" } th { "Stream" } th { "Item" } th { "Reason" } th { "Stored" } th { "Replayed" } th {} } }
            tbody { @for d in &rows { tr {
                td { a href=(format!("/queues/dead-letters/{}", d.id)) { (d.id) } }
                td { (d.letter.connection) "." (d.letter.object) }
                td { (d.letter.external_id.as_deref().or(d.letter.location.as_deref()).unwrap_or("")) }
                td { (d.letter.reason) }
                td { (when(&d.created_at)) }
                td { @match (&d.replayed_at, &d.resolved_at) {
                    (_, Some(t)) => { span.ok { "landed " (when(t)) } }
                    (Some(t), None) => { span.warn { "failed again " (when(t)) } }
                    _ => {}
                } }
                td { @if d.resolved_at.is_none() { (action_button(&user, &format!("/queues/dead-letters/{}/replay", d.id), "Replay", "")) } }
            } } }
        } } }
    };
    Ok(layout::html(
        StatusCode::OK,
        page("Dead letters", Some(&user), body),
    ))
}

/// `GET /queues/dead-letters/{id}`: the payload and the reason.
pub(crate) async fn dead_letter(
    State(c): State<Shared>,
    user: SessionUser,
    Path(id): Path<i64>,
) -> PageResult {
    let d = c
        .store
        .dead_letter(id)
        .await?
        .ok_or_else(|| PageError::not_found(format!("no dead letter with id {id}")))?;
    let payload = serde_json::to_string_pretty(&json_value(&d.letter.payload))
        .unwrap_or_else(|_| d.letter.payload.clone());
    let l = &d.letter;
    let body = html! {
        h1 { "Dead letter " (d.id) }
        table {
            tr { th { "Stream" } td { (l.connection) "." (l.object) } }
            tr { th { "Item" } td { (l.external_id.as_deref().unwrap_or("")) } }
            tr { th { "Where" } td { (l.location.as_deref().unwrap_or("")) } }
            tr { th { "Reason" } td.error { (l.reason) } }
            tr { th { "Stored" } td { (when(&d.created_at)) } }
            tr { th { "Replayed" } td { (d.replayed_at.as_deref().map(when).unwrap_or_default()) } }
            tr { th { "Landed" } td { (d.resolved_at.as_deref().map(when).unwrap_or_default()) } }
        }
        h2 { "Payload as received" }
        pre { (payload) }
        @if d.resolved_at.is_none() {
            (action_button(&user, &format!("/queues/dead-letters/{}/replay", d.id), "Replay", "primary"))
        }
    };
    Ok(layout::html(
        StatusCode::OK,
        page("Dead letter", Some(&user), body),
    ))
}

fn replay_message(results: &[crate::replay::Replayed]) -> String {
    let landed = results.iter().filter(|r| r.landed).count();
    let ids: Vec<String> = results.iter().map(|r| r.id.to_string()).collect();
    format!(
        "Replayed {} dead letter(s) ({}): {landed} landed, {} still rejected. Linked systems get the new records on the next run.",
        results.len(),
        ids.join(", "),
        results.len() - landed
    )
}

/// `POST /queues/dead-letters/{id}/replay`.
pub(crate) async fn replay_one(
    State(c): State<Shared>,
    user: SessionUser,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.authorize(&form.csrf)?;
    let d = c
        .store
        .dead_letter(id)
        .await?
        .ok_or_else(|| PageError::not_found(format!("no dead letter with id {id}")))?;
    let results = crate::replay::replay(&c, &user.name, std::slice::from_ref(&d)).await?;
    Ok(done("/queues/dead-letters", &replay_message(&results)))
}

/// `POST /queues/dead-letters/replay-all`: every dead letter not yet landed.
pub(crate) async fn replay_all(
    State(c): State<Shared>,
    user: SessionUser,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.authorize(&form.csrf)?;
    let letters = c.store.dead_letter_rows(false, i64::MAX).await?;
    if letters.is_empty() {
        return Ok(done("/queues/dead-letters", "No dead letters to replay."));
    }
    // Those from streams no pipeline of this console reads are left for a
    // console that has their pipeline (said in the message).
    let (known, unknown): (Vec<_>, Vec<_>) = letters
        .into_iter()
        .partition(|d| crate::replay::can_replay(&c, d));
    if known.is_empty() {
        // Names the first stream no pipeline reads, and what to do.
        crate::replay::replay(&c, &user.name, &unknown[..1]).await?;
    }
    let results = crate::replay::replay(&c, &user.name, &known).await?;
    let mut message = replay_message(&results);
    if !unknown.is_empty() {
        let streams: std::collections::BTreeSet<String> = unknown
            .iter()
            .map(|d| format!("{}.{}", d.letter.connection, d.letter.object))
            .collect();
        message.push_str(&format!(
            " {} left: no pipeline of this console reads {}.",
            unknown.len(),
            streams.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(done("/queues/dead-letters", &message))
}

// ---------------------------------------------------------------- conflicts

/// A record's name for people.
fn label(rec: Option<&StoredRecord>, fallback: &str) -> String {
    rec.and_then(|r| match &r.record {
        Record::Contact(c) => c.display_name(),
        Record::Company(c) => Some(c.name.clone()).filter(|n| !n.is_empty()),
        Record::Order(o) => o.number.as_ref().map(|n| format!("order {n}")),
        Record::Invoice(i) => i.number.as_ref().map(|n| format!("invoice {n}")),
        Record::Activity(a) => a.subject.clone(),
    })
    .unwrap_or_else(|| short_id(fallback))
}

async fn records_of(
    store: &Store,
    ids: impl Iterator<Item = &String>,
) -> Result<HashMap<String, StoredRecord>, PageError> {
    let mut out = HashMap::new();
    for id in ids {
        if !out.contains_key(id) {
            if let Some(r) = store.record(id).await? {
                out.insert(id.clone(), r);
            }
        }
    }
    Ok(out)
}

fn resolve_forms(user: &SessionUser, c: &Conflict) -> Markup {
    let action = format!("/queues/conflicts/{}/resolve", c.id);
    html! {
        @if user.role.can_act() && c.status == "open" {
            form.inline method="post" action=(action) {
                input type="hidden" name="csrf" value=(user.csrf);
                input type="hidden" name="take" value="local";
                button type="submit" { "Keep CRM" }
            }
            " "
            form.inline method="post" action=(action) {
                input type="hidden" name="csrf" value=(user.csrf);
                input type="hidden" name="take" value="remote";
                button type="submit" { "Take " (c.detail.connection) }
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(user.csrf);
                input type="hidden" name="take" value="value";
                input name="value" placeholder="or type a value (JSON or text)" aria-label="Value";
                button type="submit" { "Set" }
            }
        }
    }
}

/// `GET /queues/conflicts`: per record, each field's base, CRM and remote
/// values side by side.
pub(crate) async fn conflicts(
    State(c): State<Shared>,
    user: SessionUser,
    Query(q): Query<AllQuery>,
    Query(flash): Query<Flash>,
) -> PageResult {
    let mut list = c.store.conflicts(q.all()).await?;
    let total = list.len();
    list.truncate(usize::try_from(SHOWN).unwrap_or(usize::MAX));
    let records = records_of(&c.store, list.iter().map(|x| &x.detail.crm_id)).await?;
    let mut by_record: BTreeMap<&str, Vec<&Conflict>> = BTreeMap::new();
    for x in &list {
        by_record.entry(&x.detail.crm_id).or_default().push(x);
    }
    let body = html! {
        (flash.notice())
        h1 { "Conflicts" }
        p.muted { "The same field changed in the CRM and in a linked system since they last agreed. The value chosen is written to the CRM and pushed to every linked system on the next run." }
        (toggle("/queues/conflicts", q.all(), "resolved ones"))
        @if list.is_empty() { p { "No conflicts." } }
        @else {
            p.muted { (total) " conflict(s)" @if total > list.len() { ", the first " (list.len()) " shown" } }
            @for (crm_id, items) in &by_record {
                @let rec = records.get(*crm_id);
                @let object = items.first().map(|x| x.detail.object);
                section.pair {
                    h2 {
                        @if object == Some(synchub_core::ObjectKind::Contact) { (customer_link(crm_id, &label(rec, crm_id))) }
                        @else { (label(rec, crm_id)) }
                        " " span.muted { (object.map(|o| o.as_str()).unwrap_or("")) }
                    }
                    div.scroll { table {
                        thead { tr { th { "Field" } th { "Base (last agreed)" } th { "CRM" } th { "Remote" } th { "Raised" } th { "Resolve" } } }
                        tbody { @for x in items {
                            @let d = &x.detail;
                            tr {
                                th scope="row" { (d.field) }
                                td { (show(Some(&json_value(&d.base)))) }
                                td { (show(Some(&json_value(&d.local)))) }
                                td { (show(Some(&json_value(&d.remote)))) br; span.muted { (d.connection) " " (short_id(&d.external_id)) } }
                                td { (age(&x.created_at)) " ago" }
                                td {
                                    @if x.status == "open" { (resolve_forms(&user, x)) }
                                    @else { span.muted { (x.status) ": " (x.resolution.as_deref().map(|r| show(Some(&json_value(r)))).unwrap_or_default()) } }
                                }
                            }
                        } }
                    } }
                }
            }
        }
    };
    Ok(layout::html(
        StatusCode::OK,
        page("Conflicts", Some(&user), body),
    ))
}

#[derive(Deserialize, Default)]
pub(crate) struct ResolveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    take: String,
    #[serde(default)]
    value: String,
}

/// `POST /queues/conflicts/{id}/resolve`: `synchub conflicts resolve ID
/// --take local|remote|VALUE`.
pub(crate) async fn resolve(
    State(c): State<Shared>,
    user: SessionUser,
    Path(id): Path<i64>,
    Form(form): Form<ResolveForm>,
) -> PageResult {
    user.authorize(&form.csrf)?;
    let conflict = c
        .store
        .conflict(id)
        .await?
        .ok_or_else(|| PageError::not_found(format!("no conflict with id {id}")))?;
    if conflict.status != "open" {
        return Err(PageError::conflict(format!(
            "conflict {id} is already {}",
            conflict.status
        )));
    }
    let d = &conflict.detail;
    let chosen = match form.take.as_str() {
        "local" => json_value(&d.local),
        "remote" => json_value(&d.remote),
        "value" => {
            let text = form.value.trim();
            if text.is_empty() {
                return Err(PageError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "No value",
                    "type the value to set, or pick a side",
                ));
            }
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        }
        other => {
            return Err(PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unknown choice",
                format!("take `{other}`: pick local, remote or type a value"),
            ))
        }
    };
    let version =
        synchub_engine::local::resolve_conflict(&c.store, &conflict, chosen.clone()).await?;
    let summary = format!(
        "resolved conflict {id} on {} (CRM vs {}): took {} = {}",
        d.field,
        d.connection,
        match form.take.as_str() {
            "local" => "the CRM value",
            "remote" => "the remote value",
            _ => "a typed value",
        },
        chosen
    );
    c.store
        .record_audit(
            &user.name,
            "conflict.resolve",
            &summary,
            &json!({
                "conflict": id, "field": d.field, "connection": d.connection,
                "take": form.take, "value": chosen, "version": version,
            }),
            std::slice::from_ref(&d.crm_id),
        )
        .await?;
    tracing::info!(user = %user.name, conflict = id, "console: conflict resolved");
    Ok(done(
        "/queues/conflicts",
        &format!(
            "Conflict {id} resolved: {} = {chosen}; linked systems get it on the next run.",
            d.field
        ),
    ))
}

// ---------------------------------------------------------------- review

fn contact_card(id: &str, rec: Option<&StoredRecord>) -> Markup {
    let fields = rec.map(|r| r.record.to_fields()).unwrap_or_default();
    html! {
        div {
            @if rec.is_some_and(|r| !r.deleted && r.merged_into.is_none()) { h3 { (customer_link(id, &label(rec, id))) } }
            @else { h3 { (label(rec, id)) " " span.muted { "(gone)" } } }
            table { tbody {
                @for key in ["full_name", "emails", "phones", "company", "addresses", "birth_date"] {
                    @if let Some(v) = fields.get(key).filter(|v| !v.is_null()) {
                        tr { th { (key) } td { (show(Some(v))) } }
                    }
                }
            } }
        }
    }
}

/// `GET /queues/reviews`: pairs the matcher could not decide.
pub(crate) async fn reviews(
    State(c): State<Shared>,
    user: SessionUser,
    Query(q): Query<AllQuery>,
    Query(flash): Query<Flash>,
) -> PageResult {
    let mut list = c.store.reviews(q.all()).await?;
    let total = list.len();
    list.truncate(usize::try_from(SHOWN).unwrap_or(usize::MAX));
    let ids: Vec<String> = list
        .iter()
        .flat_map(|r| [r.left_id.clone(), r.right_id.clone()])
        .collect();
    let records = records_of(&c.store, ids.iter()).await?;
    let body = html! {
        (flash.notice())
        h1 { "Duplicate review" }
        p.muted { "Contact pairs the matcher scored between merging on its own and keeping apart. A merge can be undone from the customer's page." }
        (toggle("/queues/reviews", q.all(), "decided pairs"))
        @if list.is_empty() { p { "No pairs to review." } }
        @else { p.muted { (total) " pair(s)" @if total > list.len() { ", the first " (list.len()) " shown" } } }
        @for r in &list {
            @let evidence: Value = serde_json::from_str(&r.evidence).unwrap_or(Value::Null);
            section.pair {
                h2 { "Pair " (r.id) " " span.muted { "probability " (format!("{:.3}", r.probability)) ", weight " (format!("{:.2}", r.score)) " · " (r.status) } }
                div.side {
                    (contact_card(&r.left_id, records.get(&r.left_id)))
                    (contact_card(&r.right_id, records.get(&r.right_id)))
                }
                @if let Some(fields) = evidence.as_array() {
                    div.scroll { table {
                        thead { tr { th { "Evidence: field" } th { "Agreement" } th.num { "Weight" } } }
                        tbody { @for f in fields { tr {
                            td { (f["field"].as_str().unwrap_or("?")) }
                            td { (f["level"].as_str().unwrap_or("?")) }
                            td.num { (format!("{:+.2}", f["weight"].as_f64().unwrap_or(0.0))) }
                        } } }
                    } }
                }
                @if r.status == "open" {
                    p {
                        (action_button(&user, &format!("/queues/reviews/{}/merge", r.id), "Merge", "primary"))
                        " "
                        (action_button(&user, &format!("/queues/reviews/{}/keep-apart", r.id), "Keep apart", ""))
                    }
                }
            }
        }
    };
    Ok(layout::html(
        StatusCode::OK,
        page("Duplicate review", Some(&user), body),
    ))
}

async fn open_review(store: &Store, id: i64) -> Result<synchub_store::reviews::Review, PageError> {
    let r = store
        .review(id)
        .await?
        .ok_or_else(|| PageError::not_found(format!("no review pair {id}")))?;
    if r.status != "open" {
        return Err(PageError::conflict(format!(
            "review pair {id} is already decided ({})",
            r.status
        )));
    }
    Ok(r)
}

/// `POST /queues/reviews/{id}/merge`: `synchub review merge ID`.
pub(crate) async fn merge_review(
    State(c): State<Shared>,
    user: SessionUser,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.authorize(&form.csrf)?;
    let r = open_review(&c.store, id).await?;
    let engine = Engine::new(
        c.store.clone(),
        String::from("review"),
        Vec::new(),
        Default::default(),
        Default::default(),
    );
    let evidence =
        json!({ "tier": "review", "review": id, "probability": r.probability, "by": user.name });
    let outcome = engine
        .merge_contacts(
            &r.left_id,
            &r.right_id,
            evidence,
            &SurvivorshipRules::default(),
        )
        .await?;
    c.store.decide_review(id, "merged").await?;
    c.store
        .record_audit(
            &user.name,
            "review.merge",
            &format!(
                "merged review pair {id}: {} into {} (merge {})",
                r.right_id, r.left_id, outcome.merge_id
            ),
            &json!({ "review": id, "merge": outcome.merge_id, "survivor": r.left_id, "loser": r.right_id, "probability": r.probability }),
            &[r.left_id.clone(), r.right_id.clone()],
        )
        .await?;
    tracing::info!(user = %user.name, review = id, merge = outcome.merge_id, "console: review pair merged");
    Ok(done(
        &format!("/customers/{}", encode_component(&r.left_id)),
        &format!(
            "Pair {id} merged (merge {}); the golden record is queued for every linked system on the next run.",
            outcome.merge_id
        ),
    ))
}

/// `POST /queues/reviews/{id}/keep-apart`: `synchub review keep-apart ID`.
pub(crate) async fn keep_apart(
    State(c): State<Shared>,
    user: SessionUser,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.authorize(&form.csrf)?;
    let r = open_review(&c.store, id).await?;
    if !c.store.decide_review(id, "kept_apart").await? {
        return Err(PageError::conflict(format!(
            "review pair {id} was decided meanwhile"
        )));
    }
    c.store
        .record_audit(
            &user.name,
            "review.keep_apart",
            &format!(
                "kept review pair {id} apart: {} and {}",
                r.left_id, r.right_id
            ),
            &json!({ "review": id, "left": r.left_id, "right": r.right_id }),
            &[r.left_id.clone(), r.right_id.clone()],
        )
        .await?;
    Ok(done(
        "/queues/reviews",
        &format!("Pair {id} kept apart; it will not be queued again."),
    ))
}

// ---------------------------------------------------------------- refused pushes

/// `GET /queues/refused`: pushes refused for good, then those retrying.
pub(crate) async fn refused(State(c): State<Shared>, user: SessionUser) -> PageResult {
    let rows = c.store.failed_pushes(SHOWN * 2).await?;
    let (refused, retrying): (Vec<_>, Vec<_>) = rows.iter().partition(|p| p.refused());
    let record = |p: &synchub_store::outbox::FailedPush| {
        html! {
            @if p.object == "contact" { (customer_link(&p.crm_id, &short_id(&p.crm_id))) }
            @else { code { (short_id(&p.crm_id)) } }
        }
    };
    let body = html! {
        h1 { "Pushes that did not go through" }
        h2 { "Refused for good" }
        p.muted { "The target refused these changes (a validation error, a duplicate, a record gone there); they are not tried again. Fix the record in the CRM or in the target; the next change is pushed anew." }
        @if refused.is_empty() { p { "None." } }
        @else { div.scroll { table {
            thead { tr { th { "Id" } th { "Target" } th { "Record" } th { "Change" } th { "Reason" } th { "Queued" } } }
            tbody { @for p in &refused { tr {
                td { (p.id) } td { (p.connection) "." (p.object) } td { (record(p)) }
                td { (format!("{:?}", p.op).to_lowercase()) }
                td.error { (p.last_error.as_deref().unwrap_or("")) }
                td { (when(&p.created_at)) }
            } } }
        } } }
        h2 { "Failing, still retrying" }
        @if retrying.is_empty() { p { "None." } }
        @else { div.scroll { table {
            thead { tr { th { "Id" } th { "Target" } th { "Record" } th { "Change" } th.num { "Attempts" } th { "Last answer" } th { "Queued" } } }
            tbody { @for p in &retrying { tr {
                td { (p.id) } td { (p.connection) "." (p.object) } td { (record(p)) }
                td { (format!("{:?}", p.op).to_lowercase()) }
                td.num { (p.attempts) }
                td { (p.last_error.as_deref().unwrap_or("")) }
                td { (when(&p.created_at)) }
            } } }
        } } }
    };
    Ok(layout::html(
        StatusCode::OK,
        page("Refused pushes", Some(&user), body),
    ))
}
