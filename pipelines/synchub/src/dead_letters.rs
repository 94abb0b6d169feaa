//! `synchub dead-letters list|show ID|replay [ID|--all] --pipeline FILE`:
//! source items that could not be mapped or validated. A replay re-reads
//! the streams the items came from with the pipeline as it is now (a fixed
//! mapping, a corrected config), through mapping and the engine, and marks
//! each item that landed; the identity map makes the re-read land each
//! record once, and records already held come back unchanged.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use serde_json::json;
use synchub_engine::{RunOptions, RunReport};
use synchub_store::dead_letters::StoredDeadLetter;
use synchub_store::Store;

use crate::output::{emit, emit_json, json_value, truncate, Format, Table};

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// Dead letters not yet replayed into the CRM, newest first.
    List {
        /// Include those a replay landed.
        #[arg(long)]
        all: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// table (default) or json.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One dead letter with its raw payload.
    Show {
        /// Dead letter id.
        id: i64,
    },
    /// Re-read the items' streams with the pipeline as it is now and mark
    /// those that landed.
    Replay {
        /// Dead letter id; or --all.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every dead letter not yet landed.
        #[arg(long)]
        all: bool,
        /// The pipeline file the items came through (after the fix).
        #[arg(long)]
        pipeline: PathBuf,
    },
}

fn letter_json(d: &StoredDeadLetter) -> serde_json::Value {
    json!({
        "id": d.id,
        "connection": d.letter.connection,
        "object": d.letter.object.as_str(),
        "external_id": d.letter.external_id,
        "location": d.letter.location,
        "reason": d.letter.reason,
        "payload": json_value(&d.letter.payload),
        "created_at": d.created_at,
        "replayed_at": d.replayed_at,
        "resolved_at": d.resolved_at,
    })
}

pub async fn command(store: &Store, action: DeadLetterAction) -> anyhow::Result<ExitCode> {
    match action {
        DeadLetterAction::List { all, limit, format } => {
            let rows = store.dead_letter_rows(all, limit.max(1)).await?;
            match format {
                Format::Json => emit_json(&serde_json::Value::Array(
                    rows.iter().map(letter_json).collect(),
                ))?,
                Format::Table if rows.is_empty() => emit("no dead letters\n")?,
                Format::Table => {
                    let mut t =
                        Table::new(&["ID", "STREAM", "ITEM", "REASON", "STORED", "REPLAYED"]);
                    for d in &rows {
                        t.row(vec![
                            d.id.to_string(),
                            format!("{}.{}", d.letter.connection, d.letter.object),
                            d.letter
                                .external_id
                                .clone()
                                .or_else(|| d.letter.location.clone())
                                .unwrap_or_default(),
                            truncate(&d.letter.reason, 70),
                            d.created_at.clone(),
                            match (&d.replayed_at, &d.resolved_at) {
                                (_, Some(_)) => "landed".to_string(),
                                (Some(_), None) => "failed again".to_string(),
                                _ => String::new(),
                            },
                        ]);
                    }
                    emit(&t.render(0))?;
                }
            }
        }
        DeadLetterAction::Show { id } => {
            let d = store.dead_letter(id).await?.ok_or_else(|| {
                anyhow!("no dead letter with id {id} (see `synchub dead-letters list --all`)")
            })?;
            emit_json(&letter_json(&d))?;
        }
        DeadLetterAction::Replay { id, all, pipeline } => {
            let letters = match (id, all) {
                (Some(id), _) => vec![store.dead_letter(id).await?.ok_or_else(|| {
                    anyhow!("no dead letter with id {id} (see `synchub dead-letters list`)")
                })?],
                (None, _) => store.dead_letter_rows(false, i64::MAX).await?,
            };
            if letters.is_empty() {
                emit("no dead letters to replay\n")?;
                return Ok(ExitCode::SUCCESS);
            }
            return replay(store, &letters, &pipeline).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(
    store: &Store,
    letters: &[StoredDeadLetter],
    pipeline: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::pipeline::load(pipeline)?;
    let engine = crate::commands::build_engine(store.clone(), &loaded)?;
    let streams: BTreeSet<(String, synchub_core::ObjectKind)> = letters
        .iter()
        .map(|d| (d.letter.connection.clone(), d.letter.object))
        .collect();
    for (name, object) in &streams {
        let known = engine
            .connections()
            .iter()
            .any(|c| &c.name == name && c.direction.pulls() && c.objects.contains(object));
        if !known {
            bail!(
                "pipeline file {} does not read {object}s from a connection named `{name}`; \
                 replay with the pipeline those dead letters came through",
                pipeline.display()
            );
        }
    }
    let started = synchub_store::now_text();
    let opts = RunOptions {
        full_refresh: true,
        ..RunOptions::default()
    };
    let mut report = RunReport::default();
    for (name, object) in &streams {
        let conn = engine
            .connections()
            .iter()
            .find(|c| &c.name == name)
            .ok_or_else(|| anyhow!("connection `{name}` vanished from the pipeline"))?;
        engine
            .pull_stream(conn, *object, &opts, &mut report)
            .await
            .map_err(|e| anyhow!("replaying {name}.{object}: {e}"))?;
    }
    let mut landed = 0;
    let mut t = Table::new(&["ID", "STREAM", "ITEM", "RESULT"]);
    for d in letters {
        let ok = store.dead_letter_landed(d.id, &started).await?;
        store.mark_dead_letter_replayed(d.id, ok).await?;
        landed += usize::from(ok);
        t.row(vec![
            d.id.to_string(),
            format!("{}.{}", d.letter.connection, d.letter.object),
            d.letter.external_id.clone().unwrap_or_default(),
            if ok {
                "landed".to_string()
            } else if d.letter.external_id.is_none() {
                "not confirmed: the item has no id to find it by".to_string()
            } else {
                "still rejected (see `synchub dead-letters list`)".to_string()
            },
        ]);
    }
    emit(&t.render(0))?;
    emit(&format!(
        "{landed} of {} dead letters landed; linked systems get the new records on the next run\n",
        letters.len()
    ))?;
    Ok(if landed == letters.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
