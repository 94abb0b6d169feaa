//! `synchub review`: the queue of pairs the probabilistic pass
//! (`synchub_engine::fuzzy`) left for a person.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use serde_json::json;
use synchub_core::merge::survivorship::SurvivorshipRules;
use synchub_core::Record;
use synchub_engine::Engine;
use synchub_store::Store;

use crate::cli::ReviewAction;
use crate::commands::open_store;

/// `synchub review list|show|merge|keep-apart`.
pub async fn command(db: &str, action: ReviewAction) -> anyhow::Result<ExitCode> {
    let store = open_store(db).await?;
    match action {
        ReviewAction::List { all, format } => {
            let items = store.reviews(all).await?;
            if format == crate::output::Format::Json {
                let mut out = Vec::with_capacity(items.len());
                for r in &items {
                    out.push(serde_json::json!({
                        "id": r.id,
                        "probability": r.probability,
                        "score": r.score,
                        "left_id": r.left_id,
                        "right_id": r.right_id,
                        "status": r.status,
                        "left": label(&store, &r.left_id).await,
                        "right": label(&store, &r.right_id).await,
                    }));
                }
                crate::output::emit_json(&serde_json::json!({ "reviews": out }))?;
                return Ok(ExitCode::SUCCESS);
            }
            if items.is_empty() {
                println!("no {}pairs to review", if all { "" } else { "open " });
            }
            for r in items {
                println!(
                    "#{:<6} p={:.3} score={:>6.2} {} ↔ {} [{}]  {}  |  {}",
                    r.id,
                    r.probability,
                    r.score,
                    r.left_id,
                    r.right_id,
                    r.status,
                    label(&store, &r.left_id).await,
                    label(&store, &r.right_id).await
                );
            }
        }
        ReviewAction::Show { id } => {
            let r = store
                .review(id)
                .await?
                .ok_or_else(|| anyhow!("no review #{id}; `synchub review list` shows the queue"))?;
            println!(
                "review #{} ({}): match probability {:.3}, weight {:.2}",
                r.id, r.status, r.probability, r.score
            );
            for side in [&r.left_id, &r.right_id] {
                let rec = store.record(side).await?;
                println!(
                    "  {side}: {}",
                    rec.map(|r| serde_json::to_string(&r.record).unwrap_or_default())
                        .unwrap_or_else(|| "(gone)".into())
                );
            }
            println!("  evidence (field: level, weight):");
            let fields: serde_json::Value = serde_json::from_str(&r.evidence)?;
            for f in fields.as_array().into_iter().flatten() {
                println!(
                    "    {}: {} ({:+.2})",
                    f["field"].as_str().unwrap_or("?"),
                    f["level"].as_str().unwrap_or("?"),
                    f["weight"].as_f64().unwrap_or(0.0)
                );
            }
        }
        ReviewAction::Merge { id } => {
            let r = open_review(&store, id).await?;
            let engine = Engine::new(
                store.clone(),
                String::from("review"),
                Vec::new(),
                Default::default(),
                Default::default(),
            );
            let evidence = json!({ "tier": "review", "review": id, "probability": r.probability });
            engine
                .merge_contacts(
                    &r.left_id,
                    &r.right_id,
                    evidence,
                    &SurvivorshipRules::default(),
                )
                .await?;
            store.decide_review(id, "merged").await?;
            println!(
                "merged {} into {} (undo with the merge history); the golden record is queued for every linked system on the next run",
                r.right_id, r.left_id
            );
        }
        ReviewAction::KeepApart { id } => {
            open_review(&store, id).await?;
            store.decide_review(id, "kept_apart").await?;
            println!("review #{id}: kept apart; the pair will not be queued again");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn open_review(store: &Store, id: i64) -> anyhow::Result<synchub_store::reviews::Review> {
    let r = store
        .review(id)
        .await?
        .ok_or_else(|| anyhow!("no review #{id}; `synchub review list` shows the queue"))?;
    if r.status != "open" {
        bail!("review #{id} is already decided ({})", r.status);
    }
    Ok(r)
}

async fn label(store: &Store, id: &str) -> String {
    match store.record(id).await {
        Ok(Some(r)) => match r.record {
            Record::Contact(c) => {
                let name = c
                    .full_name
                    .clone()
                    .or_else(|| {
                        let n = format!(
                            "{} {}",
                            c.given_name.clone().unwrap_or_default(),
                            c.family_name.clone().unwrap_or_default()
                        );
                        (!n.trim().is_empty()).then(|| n.trim().to_string())
                    })
                    .unwrap_or_default();
                let email = c.emails.first().cloned().unwrap_or_default();
                format!("{name} {email}").trim().to_string()
            }
            _ => String::new(),
        },
        _ => "(gone)".into(),
    }
}
