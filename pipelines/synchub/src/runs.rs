//! `synchub runs list|show`: the run history kept in the store's run log.
//! Runs are numbered from the latest: `#1` is the last run.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{json, Value};
use synchub_store::Store;

use crate::output::{self, emit, emit_json, Format, Table};

#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// The latest runs, newest first, with their counts.
    List {
        /// How many runs.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One run per stream, with its errors.
    Show {
        /// Run number from `synchub runs list` (1 = the latest).
        number: i64,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

type RunRow = (String, String, String, String);

pub async fn command(store: &Store, action: RunsAction) -> anyhow::Result<ExitCode> {
    match action {
        RunsAction::List { limit, format } => {
            let runs = store.recent_runs(limit).await?;
            if format == Format::Json {
                let list: Vec<Value> = runs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| run_json(i + 1, r))
                    .collect();
                emit_json(&Value::Array(list))?;
            } else if runs.is_empty() {
                emit("no runs recorded yet (synchub run PIPELINE.toml)\n")?;
            } else {
                emit(&table(&runs).render(0))?;
            }
        }
        RunsAction::Show { number, format } => {
            if number < 1 {
                bail!("run number {number}: runs are numbered from 1 (the latest); see synchub runs list");
            }
            let runs = store.recent_runs(number).await?;
            let Some(run) = usize::try_from(number - 1).ok().and_then(|i| runs.get(i)) else {
                bail!(
                    "no run #{number}: the run log holds {} run(s) (synchub runs list)",
                    runs.len()
                );
            };
            if format == Format::Json {
                emit_json(&run_json(usize::try_from(number).unwrap_or(0), run))?;
            } else {
                emit(&show(number, run))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_json(number: usize, (name, started, finished, report): &RunRow) -> Value {
    json!({
        "number": number,
        "pipeline": name,
        "started_at": started,
        "finished_at": finished,
        "report": output::json_value(report),
    })
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Totals of a report over its streams.
fn totals(report: &Value) -> Value {
    let mut t = serde_json::Map::new();
    for key in COUNTS {
        let sum: u64 = report
            .get("streams")
            .and_then(Value::as_object)
            .map(|s| s.values().map(|v| count(v, key)).sum())
            .unwrap_or(0);
        t.insert(key.to_string(), json!(sum));
    }
    Value::Object(t)
}

const COUNTS: [&str; 8] = [
    "read",
    "created",
    "updated",
    "merged",
    "unchanged",
    "conflicted",
    "dead_lettered",
    "pushed",
];

/// The runs as a table, numbered from the latest.
pub fn table(runs: &[RunRow]) -> Table {
    let mut t = Table::new(&[
        "#",
        "PIPELINE",
        "STARTED",
        "SECONDS",
        "READ",
        "CREATED",
        "UPDATED",
        "MERGED",
        "CONFLICTED",
        "DEAD",
        "PUSHED",
        "ERRORS",
    ]);
    for (i, (name, started, _, report)) in runs.iter().enumerate() {
        let r = output::json_value(report);
        let sum = totals(&r);
        let errors = r
            .get("errors")
            .and_then(Value::as_object)
            .map_or(0, |e| e.len());
        let seconds = r.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
        let mut row = vec![
            (i + 1).to_string(),
            name.clone(),
            format!("{} ({} ago)", short_time(started), output::age(started)),
            format!("{seconds:.1}"),
        ];
        for key in [
            "read",
            "created",
            "updated",
            "merged",
            "conflicted",
            "dead_lettered",
            "pushed",
        ] {
            row.push(count(&sum, key).to_string());
        }
        row.push(errors.to_string());
        t.row(row);
    }
    t
}

fn short_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

fn show(number: i64, (name, started, finished, report): &RunRow) -> String {
    let r = output::json_value(report);
    let mut out = format!(
        "run #{number}: {name}\nstarted:  {}\nfinished: {}\n",
        short_time(started),
        short_time(finished)
    );
    if r.get("dry_run").and_then(Value::as_bool) == Some(true) {
        out.push_str("dry run: nothing was written\n");
    }
    let mut t = Table::new(&[
        "STREAM",
        "READ",
        "CREATED",
        "UPDATED",
        "MERGED",
        "UNCHANGED",
        "CONFLICTED",
        "DEAD",
        "PUSHED",
        "SECONDS",
    ]);
    if let Some(streams) = r.get("streams").and_then(Value::as_object) {
        for (stream, s) in streams {
            let mut row = vec![stream.clone()];
            for key in COUNTS {
                row.push(count(s, key).to_string());
            }
            row.push(format!(
                "{:.1}",
                s.get("seconds").and_then(Value::as_f64).unwrap_or(0.0)
            ));
            t.row(row);
        }
    }
    out.push('\n');
    out.push_str(&t.render(0));
    if let Some(errors) = r.get("errors").and_then(Value::as_object) {
        for (stream, e) in errors {
            out.push_str(&format!(
                "error in {stream}: {}\n",
                e.as_str().unwrap_or_default()
            ));
        }
    }
    out
}
