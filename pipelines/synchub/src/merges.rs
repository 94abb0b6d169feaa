//! `synchub merges list|show ID|unmerge ID`: the contact merge history and
//! undoing a merge. An unmerge restores both contacts and their links and
//! queues the restored records for every linked system (written on the
//! next run of the pipeline).

use anyhow::{anyhow, Context};
use clap::Subcommand;
use std::process::ExitCode;

use crate::commands::open_store;

#[derive(Debug, Subcommand)]
pub enum MergeAction {
    /// Merges in force, newest first.
    List {
        /// Include undone merges.
        #[arg(long)]
        all: bool,
        /// table (default) or json.
        #[arg(long, value_enum, default_value_t)]
        format: crate::output::Format,
    },
    /// One merge: evidence and the before-images.
    Show {
        /// Merge id.
        id: i64,
    },
    /// Undo a merge.
    Unmerge {
        /// Merge id.
        id: i64,
    },
}

pub async fn run(db: &str, action: MergeAction) -> anyhow::Result<ExitCode> {
    let store = open_store(db).await?;
    match action {
        MergeAction::List { all, format } => {
            let list = store.merges(all).await?;
            if format == crate::output::Format::Json {
                let items: Vec<serde_json::Value> = list
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "id": m.id,
                            "merged_at": m.merged_at,
                            "undone_at": m.undone_at,
                            "survivor": m.detail.survivor,
                            "loser": m.detail.loser,
                            "evidence": m.detail.evidence,
                        })
                    })
                    .collect();
                crate::output::emit_json(&serde_json::json!({ "merges": items }))?;
                return Ok(ExitCode::SUCCESS);
            }
            if list.is_empty() {
                println!("no {}merges", if all { "" } else { "active " });
            }
            for m in list {
                let d = &m.detail;
                println!(
                    "{:>5}  {}  {} <- {}  {}{}",
                    m.id,
                    m.merged_at,
                    d.survivor,
                    d.loser,
                    d.evidence,
                    m.undone_at
                        .map(|t| format!("  (undone {t})"))
                        .unwrap_or_default()
                );
            }
        }
        MergeAction::Show { id } => {
            let m = store
                .merges(true)
                .await?
                .into_iter()
                .find(|m| m.id == id)
                .ok_or_else(|| anyhow!("no merge with id {id}"))?;
            let d = &m.detail;
            let out = serde_json::json!({
                "id": m.id,
                "survivor": d.survivor,
                "loser": d.loser,
                "evidence": d.evidence,
                "merged_at": m.merged_at,
                "undone_at": m.undone_at,
                "survivor_before": d.survivor_before,
                "loser_before": d.loser_before,
                "links_before": d.links_before,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        MergeAction::Unmerge { id } => {
            synchub_engine::merges::unmerge(&store, id, &[])
                .await
                .with_context(|| format!("cannot undo merge {id}"))?;
            println!("merge {id} undone; linked systems get the restored records on the next run");
        }
    }
    Ok(ExitCode::SUCCESS)
}
