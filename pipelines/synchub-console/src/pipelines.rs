//! The pipelines page (each pipeline's last and next run, each stream's
//! position, lag, lease holder and last outcomes, a chart of records by
//! outcome over the latest runs), one run's report, and for admins the
//! audit log and the users.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use maud::{html, Markup, PreEscaped};
use serde_json::Value;
use synchub_store::users::Role;

use crate::auth::SessionUser;
use crate::layout::{self, age, duration, json_value, page, when};
use crate::{PageError, PageResult, Shared};

/// Runs read for the page (the chart shows the latest [`CHART_RUNS`]).
const RUNS: i64 = 200;
const CHART_RUNS: usize = 40;

/// Outcomes counted per stream in a run report, with their chart colour.
const OUTCOMES: [(&str, &str); 8] = [
    ("created", "#1a7f37"),
    ("updated", "#0b5cad"),
    ("merged", "#8250df"),
    ("unchanged", "#afb8c1"),
    ("conflicted", "#9a6700"),
    ("dead_lettered", "#b42318"),
    ("deleted", "#57606a"),
    ("pushed", "#0598bc"),
];

type RunRow = (String, String, String, String);

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Sum of `key` over a report's streams.
fn total(report: &Value, key: &str) -> u64 {
    report
        .get("streams")
        .and_then(Value::as_object)
        .map_or(0, |s| s.values().map(|v| count(v, key)).sum())
}

fn errors(report: &Value) -> usize {
    report
        .get("errors")
        .and_then(Value::as_object)
        .map_or(0, |e| e.len())
}

/// Records by outcome over runs (oldest left), as stacked bars.
fn chart(runs: &[(String, Value)]) -> Markup {
    const BAR: usize = 14;
    const HEIGHT: f64 = 120.0;
    let totals: Vec<Vec<u64>> = runs
        .iter()
        .map(|(_, r)| OUTCOMES.iter().map(|(k, _)| total(r, k)).collect())
        .collect();
    let max = totals
        .iter()
        .map(|t| t.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let width = (runs.len() * BAR).max(BAR);
    let mut svg = String::new();
    for (i, (bars, (name, _))) in totals.iter().zip(runs).enumerate() {
        let mut y = HEIGHT;
        let sum: u64 = bars.iter().sum();
        let x = i * BAR + 1;
        for (n, (outcome, colour)) in bars.iter().zip(OUTCOMES) {
            if *n == 0 {
                continue;
            }
            #[allow(clippy::cast_precision_loss)]
            let h = (*n as f64 / max as f64 * HEIGHT).max(1.0);
            y -= h;
            svg.push_str(&format!(
                r#"<rect x="{x}" y="{y:.1}" width="{}" height="{h:.1}" fill="{colour}"><title>{} {outcome}: {n}</title></rect>"#,
                BAR - 2,
                maud::html! { (name) }.into_string()
            ));
        }
        if sum == 0 {
            svg.push_str(&format!(
                r##"<rect x="{x}" y="{}" width="{}" height="1" fill="#d8dee4"><title>{}: nothing to do</title></rect>"##,
                HEIGHT - 1.0,
                BAR - 2,
                maud::html! { (name) }.into_string()
            ));
        }
    }
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" width=(width) height=(HEIGHT) viewBox=(format!("0 0 {width} {HEIGHT}")) role="img" aria-label="Records by outcome per run, oldest on the left" {
            (PreEscaped(svg))
        }
        p.legend {
            @for (outcome, colour) in OUTCOMES {
                span { svg width="12" height="12" aria-hidden="true" { rect width="12" height="12" fill=(colour) {} } " " (outcome) }
            }
            span.muted { "largest run: " (max) " records" }
        }
    }
}

/// `GET /pipelines`.
pub(crate) async fn pipelines_page(State(c): State<Shared>, user: SessionUser) -> PageResult {
    let runs: Vec<RunRow> = c.store.recent_runs(RUNS).await?;
    let reports: Vec<Value> = runs.iter().map(|r| json_value(&r.3)).collect();
    let cursors = c.store.cursors().await?;
    let leases = c.store.leases().await?;
    let allowances = crate::credentials::allowances(&c.store).await?;
    let tokens = crate::credentials::tokens(&c.store, &c.vault).await?;
    let now = chrono::Utc::now();

    let mut names: BTreeSet<String> = c.pipelines.iter().map(|p| p.name.clone()).collect();
    names.extend(runs.iter().map(|r| r.0.clone()));
    let every: BTreeMap<&str, std::time::Duration> = c
        .pipelines
        .iter()
        .filter_map(|p| p.every.map(|e| (p.name.as_str(), e)))
        .collect();

    // The latest report of each stream.
    let mut last_of_stream: BTreeMap<String, (usize, &Value)> = BTreeMap::new();
    for (i, r) in reports.iter().enumerate() {
        if let Some(streams) = r.get("streams").and_then(Value::as_object) {
            for (k, v) in streams {
                last_of_stream.entry(k.clone()).or_insert((i, v));
            }
        }
    }
    let chart_runs: Vec<(String, Value)> = runs
        .iter()
        .zip(&reports)
        .take(CHART_RUNS)
        .map(|(r, rep)| (format!("{} {}", r.0, when(&r.1)), rep.clone()))
        .rev()
        .collect();

    let body = html! {
        h1 { "Pipelines" }
        div.scroll { table {
            thead { tr { th { "Pipeline" } th { "Last run" } th.num { "Seconds" } th { "Result" } th { "Next run" } } }
            tbody { @for name in &names {
                @let last = runs.iter().position(|r| &r.0 == name);
                tr {
                    td { (name) }
                    @if let Some(i) = last {
                        @let (r, rep) = (&runs[i], &reports[i]);
                        td { a href=(format!("/runs/{}", i + 1)) { (when(&r.1)) } br; span.muted { (age(&r.2)) " ago" } }
                        td.num { (format!("{:.1}", rep.get("seconds").and_then(Value::as_f64).unwrap_or(0.0))) }
                        td { @if errors(rep) > 0 { span.error { (errors(rep)) " stream(s) failed" } } @else { span.ok { "ok" } }
                             @if let Some(n) = rep.get(synchub_store::runs::NOOP_RUNS).and_then(Value::as_u64) { br; span.muted { (n) " run(s) with nothing to do" } } }
                        td { @match (every.get(name.as_str()), chrono::DateTime::parse_from_rfc3339(&r.2)) {
                            (Some(e), Ok(t)) => {
                                @let next = t.with_timezone(&chrono::Utc) + chrono::Duration::from_std(*e).unwrap_or_default();
                                @if next > now { "in " (duration((next - now).num_seconds())) } @else { "due" }
                                br; span.muted { "every " (duration(i64::try_from(e.as_secs()).unwrap_or(i64::MAX))) }
                            }
                            _ => { span.muted { "on webhooks or by hand" } }
                        } }
                    } @else {
                        td.muted { "never ran" } td {} td {} td {}
                    }
                }
            } }
        } }

        h2 { "Streams" }
        p.muted { "Lag: time since the stream last committed a page." }
        @if cursors.is_empty() { p { "No stream has been read yet." } }
        @else { div.scroll { table {
            thead { tr { th { "Stream" } th.num { "Pages" } th { "Last page" } th { "Lag" } th { "Lease" } th { "Last run of it" } } }
            tbody { @for (conn, object, _cursor, seq, at) in &cursors {
                @let key = format!("{conn}.{object}");
                @let lease = leases.iter().find(|l| &l.key.connection == conn && l.key.object.as_str() == object.as_str() && l.is_live(now));
                tr {
                    td { (key) }
                    td.num { (seq) }
                    td { (when(at)) }
                    td { (age(at)) }
                    td { @if let Some(l) = lease { "held by " (l.host) " pid " (l.pid) br; span.muted { (l.key.pipeline) ", until " (when(&l.expires_at)) } } @else { span.muted { "free" } } }
                    td { @if let Some((i, s)) = last_of_stream.get(&key) {
                        a href=(format!("/runs/{}", i + 1)) { "#" (i + 1) } ": "
                        @for (k, _) in OUTCOMES { @if count(s, k) > 0 { (k) " " (count(s, k)) "; " } }
                        @if count(s, "push_failed") > 0 { span.error { "push failed " (count(s, "push_failed")) } }
                    } }
                }
            } }
        } } }

        (crate::credentials::section(&allowances, &tokens, c.store.backend(), now))

        h2 { "Records by outcome, latest " (chart_runs.len()) " runs" }
        @if chart_runs.is_empty() { p { "No runs yet." } } @else { (chart(&chart_runs)) }

        h2 { "Run history" }
        @if runs.is_empty() { p { "No runs recorded yet." } }
        @else { div.scroll { table {
            thead { tr { th { "#" } th { "Pipeline" } th { "Started" } th.num { "Seconds" }
                @for k in ["read", "created", "updated", "merged", "conflicted", "dead_lettered", "pushed"] { th.num { (k) } }
                th.num { "Errors" } } }
            tbody { @for (i, (r, rep)) in runs.iter().zip(&reports).enumerate().take(50) { tr {
                td { a href=(format!("/runs/{}", i + 1)) { (i + 1) } }
                td { (r.0) }
                td { (when(&r.1)) }
                td.num { (format!("{:.1}", rep.get("seconds").and_then(Value::as_f64).unwrap_or(0.0))) }
                @for k in ["read", "created", "updated", "merged", "conflicted", "dead_lettered", "pushed"] { td.num { (total(rep, k)) } }
                td.num { @if errors(rep) > 0 { span.error { (errors(rep)) } } @else { "0" } }
            } } }
        } } }
    };
    Ok(layout::html(
        StatusCode::OK,
        page("Pipelines", Some(&user), body),
    ))
}

/// `GET /runs/{n}`: run n (1 = the latest) per stream, with its errors.
pub(crate) async fn run_page(
    State(c): State<Shared>,
    user: SessionUser,
    Path(number): Path<i64>,
) -> PageResult {
    if number < 1 {
        return Err(PageError::not_found(
            "runs are numbered from 1 (the latest)",
        ));
    }
    let runs = c.store.recent_runs(number).await?;
    let run = usize::try_from(number - 1)
        .ok()
        .and_then(|i| runs.get(i))
        .ok_or_else(|| {
            PageError::not_found(format!(
                "no run #{number}: the run log holds {} run(s)",
                runs.len()
            ))
        })?;
    let rep = json_value(&run.3);
    let keys = [
        "read",
        "created",
        "updated",
        "merged",
        "unchanged",
        "conflicted",
        "dead_lettered",
        "deleted",
        "pushed",
        "push_failed",
        "pages",
    ];
    let body = html! {
        h1 { "Run #" (number) ": " (run.0) }
        p { "Started " (when(&run.1)) ", finished " (when(&run.2)) " (" (age(&run.2)) " ago)" }
        @if rep.get("dry_run").and_then(Value::as_bool) == Some(true) { p.warn { "Dry run: nothing was written." } }
        div.scroll { table {
            thead { tr { th { "Stream" } @for k in keys { th.num { (k) } } th.num { "Seconds" } } }
            tbody { @if let Some(streams) = rep.get("streams").and_then(Value::as_object) {
                @for (name, s) in streams { tr {
                    td { (name) }
                    @for k in keys { td.num { (count(s, k)) } }
                    td.num { (format!("{:.1}", s.get("seconds").and_then(Value::as_f64).unwrap_or(0.0))) }
                } }
            } }
        } }
        @if let Some(errs) = rep.get("errors").and_then(Value::as_object).filter(|e| !e.is_empty()) {
            h2 { "Errors" }
            ul { @for (stream, e) in errs { li { b { (stream) } ": " span.error { (e.as_str().unwrap_or_default()) } } } }
        }
        h2 { "Report" }
        pre { (serde_json::to_string_pretty(&rep).unwrap_or_default()) }
    };
    Ok(layout::html(StatusCode::OK, page("Run", Some(&user), body)))
}

/// `GET /audit`: everything done through the console, and the users (admins).
pub(crate) async fn audit_page(State(c): State<Shared>, user: SessionUser) -> PageResult {
    if user.role != Role::Admin {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "the audit log and the users are for admins; each customer's page shows what was done to it",
        ));
    }
    let entries = c.store.audit_log(500).await?;
    let users = c.store.users().await?;
    let body = html! {
        h1 { "Audit log" }
        div.scroll { table {
            thead { tr { th { "When" } th { "Who" } th { "What" } th { "Details" } } }
            tbody { @for a in &entries { tr {
                td { (when(&a.at)) }
                td { (a.actor) }
                td { code { (a.action) } " " (a.summary) }
                td { code { (a.detail) } }
            } } }
        } }
        h2 { "Users" }
        p.muted { "Added and changed with synchub users add NAME --role viewer|operator|admin." }
        table {
            thead { tr { th { "Name" } th { "Role" } th { "Added" } } }
            tbody { @for u in &users { tr { td { (u.name) } td { (u.role) } td { (when(&u.created_at)) } } } }
        }
    };
    Ok(layout::html(
        StatusCode::OK,
        page("Audit", Some(&user), body),
    ))
}
