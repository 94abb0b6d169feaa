//! `synchub outbox failed`: pushes that did not go through. A target that
//! refused a change for good (a validation error, "email required", "phone
//! taken": a permanent refusal) is listed with its reason and never tried
//! again; transient failures are listed as retrying, with their attempts.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use synchub_store::Store;

use crate::output::{emit, emit_json, truncate, Format, Table};

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Refused pushes (permanent) first, then those still retrying.
    Failed {
        /// At most this many.
        #[arg(long, default_value_t = 200)]
        limit: i64,
        /// table (default) or json.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub async fn command(store: &Store, action: OutboxAction) -> anyhow::Result<ExitCode> {
    let OutboxAction::Failed { limit, format } = action;
    let rows = store.failed_pushes(limit.max(1)).await?;
    let state = |p: &synchub_store::outbox::FailedPush| {
        if p.refused() {
            "refused".to_string()
        } else {
            format!("retrying ({} attempts)", p.attempts)
        }
    };
    match format {
        Format::Json => emit_json(&serde_json::Value::Array(
            rows.iter()
                .map(|p| {
                    json!({
                        "id": p.id,
                        "target": p.connection,
                        "object": p.object,
                        "crm_id": p.crm_id,
                        "op": format!("{:?}", p.op).to_lowercase(),
                        "permanent": p.refused(),
                        "attempts": if p.refused() { None } else { Some(p.attempts) },
                        "reason": p.last_error,
                        "queued_at": p.created_at,
                    })
                })
                .collect(),
        ))?,
        Format::Table if rows.is_empty() => emit("no failed pushes\n")?,
        Format::Table => {
            let mut t = Table::new(&["ID", "TARGET", "RECORD", "OP", "STATE", "REASON"]);
            for p in &rows {
                t.row(vec![
                    p.id.to_string(),
                    format!("{}.{}", p.connection, p.object),
                    p.crm_id.clone(),
                    format!("{:?}", p.op).to_lowercase(),
                    state(p),
                    truncate(p.last_error.as_deref().unwrap_or(""), 80),
                ]);
            }
            emit(&t.render(0))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
