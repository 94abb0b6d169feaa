//! The home page, customer search and the 360° customer page: the golden
//! record with each field as every linked system holds it, the merge
//! history (with unmerge), orders, invoices and mail on one timeline, and
//! what people did to the customer through the console.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{encode_component, redirect, CsrfForm, SessionUser};
use crate::layout::{self, action_button, age, page, short_id, show, when};
use crate::{PageError, PageResult, Shared};

/// A message carried to the page an action redirects to.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Flash {
    #[serde(default)]
    done: String,
}

impl Flash {
    pub(crate) fn notice(&self) -> Markup {
        html! {
            @if !self.done.is_empty() { p.notice role="status" { (self.done) } }
        }
    }
}

/// Where an action sends the browser, with what it did.
pub(crate) fn done(path: &str, message: &str) -> axum::response::Response {
    redirect(&format!("{path}?done={}", encode_component(message)))
}

fn search_form(q: &str, region: &str) -> Markup {
    html! {
        form.search method="get" action="/customers" role="search" {
            input name="q" value=(q) placeholder="Name (any script), email or phone (any format)" aria-label="Search customers";
            input name="region" value=(region) size="3" maxlength="2" placeholder="TW" aria-label="Phone region" title="Region for phone numbers written without a country code";
            button.primary type="submit" { "Search" }
        }
    }
}

fn card(href: &str, count: usize, capped: bool, label: &str) -> Markup {
    html! {
        a.card href=(href) {
            b { (count) @if capped { "+" } }
            (label)
        }
    }
}

/// `GET /`: what waits for a person, and the customer search.
pub(crate) async fn home(State(c): State<Shared>, user: SessionUser) -> PageResult {
    const CAP: i64 = 1000;
    let dead = c.store.dead_letter_rows(false, CAP).await?.len();
    let conflicts = c.store.conflicts(false).await?.len();
    let reviews = c.store.reviews(false).await?.len();
    let failed = c.store.failed_pushes(CAP).await?;
    let refused = failed.iter().filter(|p| p.refused()).count();
    let retrying = failed.len() - refused;
    let cap = usize::try_from(CAP).unwrap_or(usize::MAX);
    let body = html! {
        h1 { "Customers and work queues" }
        (search_form("", ""))
        div.cards {
            (card("/queues/dead-letters", dead, dead >= cap, "dead letters to replay"))
            (card("/queues/conflicts", conflicts, false, "open conflicts"))
            (card("/queues/reviews", reviews, false, "duplicate pairs to review"))
            (card("/queues/refused", refused, false, "pushes refused for good"))
            (card("/queues/refused", retrying, false, "pushes retrying"))
        }
        p.muted { "Store: " (c.store.display_url()) }
    };
    Ok(layout::html(
        StatusCode::OK,
        page("Home", Some(&user), body),
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    region: String,
}

/// `GET /customers?q=…&region=…`.
pub(crate) async fn search_page(
    State(c): State<Shared>,
    user: SessionUser,
    Query(q): Query<SearchQuery>,
) -> PageResult {
    let region = q.region.trim().to_ascii_uppercase();
    let found = crate::search::find_contacts(&c.store, &q.q, Some(&region), 100).await?;
    let body = html! {
        h1 { "Customers" }
        (search_form(&q.q, &region))
        @if !q.q.trim().is_empty() {
            p.muted { (found.len()) " found for “" (q.q.trim()) "”" @if found.len() == 100 { " (the first 100)" } }
            div.scroll { table {
                thead { tr { th { "Name" } th { "Email" } th { "Phone" } th { "Company" } th { "Changed" } } }
                tbody {
                    @for p in &found {
                        tr {
                            td { a href=(format!("/customers/{}", encode_component(&p.id))) { (p.name.as_deref().unwrap_or("(no name)")) } }
                            td { (p.email.as_deref().unwrap_or("")) }
                            td { (p.phone.as_deref().unwrap_or("")) }
                            td { (p.company.as_deref().unwrap_or("")) }
                            td { (when(&p.updated_at)) }
                        }
                    }
                }
            } }
        }
    };
    Ok(layout::html(
        StatusCode::OK,
        page("Customers", Some(&user), body),
    ))
}

/// `GET /customers/{id}`: the 360° page (a merged-away id shows its survivor).
pub(crate) async fn customer_page(
    State(c): State<Shared>,
    user: SessionUser,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> PageResult {
    let Some(live) = c.store.live_contact_id(&id).await? else {
        return Err(PageError::not_found(format!(
            "no customer with id {id} (deleted, or never in this store)"
        )));
    };
    if live != id {
        return Ok(redirect(&format!("/customers/{}", encode_component(&live))));
    }
    let rec =
        c.store.record(&id).await?.ok_or_else(|| {
            PageError::not_found(format!("customer {id} vanished while it was read"))
        })?;
    let sources = c.store.contact_sources(&id).await?;
    let timeline = c.store.contact_timeline(&id).await?;
    let merges = c.store.contact_merges(&id).await?;
    let audit = c.store.audit_of_contact(&id, 100).await?;
    let golden = rec.record.to_fields();
    let name = match &rec.record {
        synchub_core::Record::Contact(contact) => contact.display_name(),
        _ => None,
    }
    .unwrap_or_else(|| "(no name)".to_string());

    let mut fields: BTreeSet<String> = golden.keys().cloned().collect();
    for s in &sources {
        fields.extend(s.snapshot.iter().flat_map(|m| m.keys().cloned()));
    }
    // Which linked systems each order and invoice came from.
    let mut systems_of = std::collections::HashMap::new();
    for e in timeline.iter().filter(|e| e.kind != "activity").take(500) {
        let links = c.store.links_of(&e.record_id).await?;
        let names: BTreeSet<String> = links.into_iter().map(|l| l.connection).collect();
        systems_of.insert(
            e.record_id.clone(),
            names.into_iter().collect::<Vec<_>>().join(", "),
        );
    }

    let body = html! {
        (flash.notice())
        h1 { (name) }
        p.muted { "CRM id " code { (rec.id) } " · version " (rec.version) " · changed " (when(&rec.updated_at)) }

        h2 { "Golden record, and each linked system's copy" }
        p.muted { "Each system's value as synchub last synced it, with the time that system changed it (else when it was synced). ✓ marks a copy holding the golden value." }
        div.scroll { table {
            thead { tr {
                th { "Field" } th { "Golden record" }
                @for s in &sources { th { (s.system) br; span.muted { (short_id(&s.external_id)) } } }
            } }
            tbody {
                @for f in &fields {
                    @let gold = golden.get(f);
                    tr {
                        th scope="row" { (f) }
                        td {
                            (show(gold))
                            @if let Some(t) = rec.field_times.get(f) { br; span.muted { "changed " (t.format("%Y-%m-%d %H:%M:%S")) } }
                        }
                        @for s in &sources {
                            @let v = s.snapshot.as_ref().and_then(|m| m.get(f));
                            td {
                                @if let Some(v) = v.filter(|v| !v.is_null()) {
                                    (show(Some(v)))
                                    @if gold == Some(v) { " " span.holds title="holds the golden value" { "✓" } }
                                    br; span.muted { (when(s.remote_updated_at.as_deref().unwrap_or(&s.last_synced_at))) }
                                }
                            }
                        }
                    }
                }
            }
        } }

        h2 { "Linked systems" }
        @if sources.is_empty() { p.muted { "None: this customer exists only in the CRM." } }
        @else { div.scroll { table {
            thead { tr { th { "System" } th { "Id there" } th { "Last synced" } th { "Changed there" } th { "Deleted there" } } }
            tbody { @for s in &sources { tr {
                td { (s.system) } td { code { (s.external_id) } } td { (when(&s.last_synced_at)) }
                td { (s.remote_updated_at.as_deref().map(when).unwrap_or_default()) }
                td { @if s.deleted { span.warn { "deleted" } } }
            } } }
        } } }

        h2 { "Timeline: orders, invoices and mail" }
        @if timeline.is_empty() { p.muted { "Nothing yet." } }
        @else { div.scroll { table {
            thead { tr { th { "When" } th { "Kind" } th { "What" } th { "Status" } th.num { "Amount" } th { "From" } } }
            tbody { @for e in &timeline { tr {
                td { (e.at.as_deref().map(when).unwrap_or_default()) }
                td { (e.kind) }
                td { (e.title.as_deref().unwrap_or("")) }
                td { (e.status.as_deref().unwrap_or("")) }
                td.num { @if let Some(a) = &e.amount { (a) " " (e.currency.as_deref().unwrap_or("")) } }
                td { (systems_of.get(&e.record_id).map(String::as_str).unwrap_or("")) }
            } } }
        } } }

        h2 { "Merge history" }
        @if merges.is_empty() { p.muted { "No merges." } }
        @else { div.scroll { table {
            thead { tr { th { "Merge" } th { "When" } th { "Kept" } th { "Merged in" } th { "Evidence" } th { "State" } } }
            tbody { @for m in &merges { tr {
                td { (m.id) }
                td { (when(&m.merged_at)) }
                td { a href=(format!("/customers/{}", encode_component(&m.detail.survivor))) { (short_id(&m.detail.survivor)) } }
                td { a href=(format!("/customers/{}", encode_component(&m.detail.loser))) { (short_id(&m.detail.loser)) } }
                td { code { (m.detail.evidence.to_string()) } }
                td {
                    @if let Some(t) = &m.undone_at { span.muted { "undone " (when(t)) } }
                    @else { (action_button(&user, &format!("/merges/{}/unmerge", m.id), "Unmerge", "danger")) }
                }
            } } }
        } } }

        h2 { "Done through the console" }
        @if audit.is_empty() { p.muted { "Nothing yet." } }
        @else { div.scroll { table {
            thead { tr { th { "When" } th { "Who" } th { "What" } } }
            tbody { @for a in &audit { tr {
                td { (when(&a.at)) br; span.muted { (age(&a.at)) " ago" } }
                td { (a.actor) }
                td { code { (a.action) } " " (a.summary) }
            } } }
        } } }
    };
    Ok(layout::html(StatusCode::OK, page(&name, Some(&user), body)))
}

/// `POST /merges/{id}/unmerge`: `synchub merges unmerge ID`.
pub(crate) async fn unmerge(
    State(c): State<Shared>,
    user: SessionUser,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    user.authorize(&form.csrf)?;
    let m = c
        .store
        .merges(true)
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| PageError::not_found(format!("no merge with id {id}")))?;
    synchub_engine::merges::unmerge(&c.store, id, &[]).await?;
    let d = &m.detail;
    let summary = format!(
        "undid merge {id}: {} is a customer of its own again beside {}",
        d.loser, d.survivor
    );
    c.store
        .record_audit(
            &user.name,
            "merge.unmerge",
            &summary,
            &json!({ "merge": id, "survivor": d.survivor, "loser": d.loser }),
            &[d.survivor.clone(), d.loser.clone()],
        )
        .await?;
    tracing::info!(user = %user.name, merge = id, "console: merge undone");
    Ok(done(
        &format!("/customers/{}", encode_component(&d.survivor)),
        &format!("Merge {id} undone; linked systems get the restored records on the next run."),
    ))
}
