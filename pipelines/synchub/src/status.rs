//! `synchub status`: what the store holds, as tables (cursors summarized,
//! pushes waiting per connection) or as one JSON document.

use std::process::ExitCode;

use serde_json::{json, Value};
use synchub_store::Store;

use crate::output::{self, emit, emit_json, truncate, Format, Table};

/// Dead letters and runs shown by default.
const LATEST: i64 = 5;

pub async fn run(store: &Store, format: Format) -> anyhow::Result<ExitCode> {
    let records = store.record_counts().await?;
    let links = store.link_counts().await?;
    let cursors = store.cursors().await?;
    let outbox = store.outbox_summary().await?;
    let dead_count = store.dead_letter_count().await?;
    let dead = store.dead_letters(LATEST).await?;
    let open_conflicts = store.conflicts(false).await?.len();
    let runs = store.recent_runs(LATEST).await?;
    let now = chrono::Utc::now();
    let leases = store.leases().await?;
    let queue = store.queue_depth().await?;

    if format == Format::Json {
        let doc = json!({
            "database": store.display_url(),
            "records": records.iter().map(|(k, n)| json!({"kind": k, "count": n})).collect::<Vec<_>>(),
            "links": links.iter().map(|(c, o, n)| json!({"connection": c, "object": o, "count": n})).collect::<Vec<_>>(),
            "streams": cursors.iter().map(|(c, o, cursor, seq, at)| json!({
                "connection": c, "object": o, "pages": seq, "updated_at": at,
                "cursor": cursor.as_deref().map(output::json_value),
            })).collect::<Vec<_>>(),
            "outbox": outbox.iter().map(|(c, p, f)| json!({"connection": c, "pending": p, "failing": f})).collect::<Vec<_>>(),
            "dead_letters": {
                "count": dead_count,
                "latest": dead.iter().map(|d| json!({
                    "connection": d.connection, "object": d.object.as_str(),
                    "external_id": d.external_id, "location": d.location, "reason": d.reason,
                })).collect::<Vec<_>>(),
            },
            "open_conflicts": open_conflicts,
            // Which instance holds which stream (live leases only).
            "leases": leases.iter().filter(|l| l.is_live(now)).map(|l| json!({
                "pipeline": l.key.pipeline, "connection": l.key.connection,
                "object": l.key.object.as_str(), "holder": l.holder, "host": l.host,
                "pid": l.pid, "token": l.token, "since": l.acquired_at, "expires_at": l.expires_at,
            })).collect::<Vec<_>>(),
            "queue": queue.iter().map(|q| json!({"pipeline": q.pipeline, "kind": q.kind, "rows": q.rows})).collect::<Vec<_>>(),
            "recent_runs": runs.iter().map(|(name, started, finished, report)| json!({
                "pipeline": name, "started_at": started, "finished_at": finished,
                "report": output::json_value(report),
            })).collect::<Vec<_>>(),
        });
        emit_json(&doc)?;
        return Ok(ExitCode::SUCCESS);
    }

    let mut out = format!("database: {}\n", store.display_url());

    out.push_str("\nCRM records\n");
    let mut t = Table::new(&["KIND", "COUNT"]);
    for (kind, n) in &records {
        t.row(vec![kind.clone(), n.to_string()]);
    }
    out.push_str(&section(&t, "none yet"));

    out.push_str("\nidentity links\n");
    let mut t = Table::new(&["CONNECTION", "OBJECT", "LINKS"]);
    for (conn, object, n) in &links {
        t.row(vec![conn.clone(), object.clone(), n.to_string()]);
    }
    out.push_str(&section(&t, "none yet"));

    out.push_str("\nstreams\n");
    let mut t = Table::new(&["CONNECTION", "OBJECT", "PAGES", "LAST PAGE", "POSITION"]);
    for (conn, object, cursor, seq, at) in &cursors {
        t.row(vec![
            conn.clone(),
            object.clone(),
            seq.to_string(),
            output::age(at) + " ago",
            summarize_cursor(cursor.as_deref()),
        ]);
    }
    out.push_str(&section(&t, "no stream has been read"));

    out.push_str("\nstream leases (which instance holds which stream)\n");
    let mut t = Table::new(&[
        "PIPELINE", "STREAM", "HOST", "PID", "TOKEN", "SINCE", "EXPIRES",
    ]);
    for l in leases.iter().filter(|l| l.is_live(now)) {
        t.row(vec![
            l.key.pipeline.clone(),
            format!("{}.{}", l.key.connection, l.key.object),
            l.host.clone(),
            l.pid.to_string(),
            l.token.to_string(),
            output::age(&l.acquired_at) + " ago",
            l.expires_at.clone(),
        ]);
    }
    out.push_str(&section(&t, "no stream is being synced"));

    if !queue.is_empty() {
        out.push_str("\ndelivery queue (served by any instance)\n");
        let mut t = Table::new(&["PIPELINE", "KIND", "WAITING"]);
        for q in &queue {
            t.row(vec![q.pipeline.clone(), q.kind.clone(), q.rows.to_string()]);
        }
        out.push_str(&section(&t, ""));
    }

    out.push_str("\noutbox (pushes waiting per connection)\n");
    let mut t = Table::new(&["CONNECTION", "PENDING", "FAILING"]);
    for (conn, pending, failing) in &outbox {
        t.row(vec![conn.clone(), pending.to_string(), failing.to_string()]);
    }
    out.push_str(&section(&t, "nothing waiting"));

    out.push_str(&format!("\ndead letters: {dead_count}\n"));
    let mut t = Table::new(&["STREAM", "WHERE", "REASON"]);
    for d in &dead {
        t.row(vec![
            format!("{}.{}", d.connection, d.object),
            d.location
                .clone()
                .or_else(|| d.external_id.clone())
                .unwrap_or_default(),
            truncate(&d.reason, 80),
        ]);
    }
    if !t.is_empty() {
        out.push_str(&t.render(2));
    }

    out.push_str(&format!(
        "\nopen conflicts: {open_conflicts}{}\n",
        if open_conflicts > 0 {
            " (synchub conflicts list)"
        } else {
            ""
        }
    ));

    out.push_str("\nrecent runs (synchub runs list)\n");
    out.push_str(&section(&crate::runs::table(&runs), "no run yet"));
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn section(t: &Table, empty: &str) -> String {
    if t.is_empty() {
        format!("  {empty}\n")
    } else {
        t.render(2)
    }
}

/// A cursor in one short line: its scalar values, long ones cut.
pub fn summarize_cursor(cursor: Option<&str>) -> String {
    let Some(text) = cursor else {
        return "-".into();
    };
    match output::json_value(text) {
        Value::Object(map) => {
            let mut parts = Vec::new();
            let mut more = 0;
            for (k, v) in &map {
                let shown = match v {
                    Value::String(s) => truncate(s, 28),
                    Value::Number(_) | Value::Bool(_) => v.to_string(),
                    Value::Null => continue,
                    _ => {
                        more += 1;
                        continue;
                    }
                };
                if parts.len() < 3 {
                    parts.push(format!("{k}={shown}"));
                } else {
                    more += 1;
                }
            }
            if more > 0 {
                parts.push(format!("(+{more} more)"));
            }
            parts.join(" ")
        }
        other => output::short(&other, 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_summarized() {
        assert_eq!(
            summarize_cursor(Some(r#"{"offset": 120, "row": 3}"#)),
            "offset=120 row=3"
        );
        let long = r#"{"a":"x","b":1,"c":true,"d":2,"e":{"deep":1}}"#;
        assert_eq!(summarize_cursor(Some(long)), "a=x b=1 c=true (+2 more)");
        assert_eq!(summarize_cursor(None), "-");
    }
}
