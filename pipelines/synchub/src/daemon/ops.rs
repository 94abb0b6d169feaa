//! What an operator asks of a running daemon beyond its runs: readiness
//! (`GET /ready`, apart from liveness on `/health`) and the shared-state
//! metrics read from the store — who holds which stream's lease, the
//! delivery queue's depth, the lag of each stream, and time spent waiting
//! on rate budgets.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{label, Daemon};

/// `GET /ready`: 200 when this instance can take work (its store answers,
/// it runs at least one pipeline and is not shutting down), else 503 with
/// why; a load
/// balancer routes webhooks by it, while `/health` (liveness) stays 200 so
/// that a store outage does not get the process restarted.
pub(crate) async fn ready(State(d): State<Arc<Daemon>>) -> Response {
    let store = d.store.record_counts().await;
    let loaded = d.pipelines().slots.len();
    let draining = d.draining.load(std::sync::atomic::Ordering::SeqCst);
    let (code, why) = match (&store, loaded == 0) {
        _ if draining => (
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: shutting down".to_string(),
        ),
        (Err(e), _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}"),
        ),
        (Ok(_), true) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no pipeline loaded".to_string(),
        ),
        (Ok(_), false) => (StatusCode::OK, "ready".to_string()),
    };
    let body = json!({
        "status": why,
        "instance": d.holder,
        "pipelines": loaded,
    });
    (code, Json(body)).into_response()
}

/// The metrics read from the store, appended to `/metrics`; a store that
/// does not answer leaves them out (and `synchub_store_up` says 0).
pub(crate) async fn shared_metrics(d: &Daemon, out: &mut String) {
    let leases = d.store.leases().await;
    let queue = d.store.queue_depth().await;
    let cursors = d.store.cursors().await;
    let up = leases.is_ok() && queue.is_ok() && cursors.is_ok();
    let now = chrono::Utc::now();
    out.push_str("# HELP synchub_store_up Whether the store answered this scrape.\n# TYPE synchub_store_up gauge\n");
    let _ = writeln!(out, "synchub_store_up {}", u8::from(up));
    out.push_str("# HELP synchub_lease_token Fencing token of each live stream lease, labelled with its holder.\n# TYPE synchub_lease_token gauge\n");
    if let Ok(rows) = &leases {
        for row in rows.iter().filter(|r| r.is_live(now)) {
            let _ = writeln!(
                out,
                "synchub_lease_token{{pipeline=\"{}\",stream=\"{}.{}\",holder=\"{}\",host=\"{}\",pid=\"{}\",this_instance=\"{}\"}} {}",
                label(&row.key.pipeline),
                label(&row.key.connection),
                row.key.object,
                label(&row.holder),
                label(&row.host),
                row.pid,
                row.holder.starts_with(&this_process()),
                row.token
            );
        }
    }
    out.push_str("# HELP synchub_queue_depth Deliveries waiting in the store's queue (any instance serves them).\n# TYPE synchub_queue_depth gauge\n");
    if let Ok(rows) = &queue {
        for q in rows {
            let _ = writeln!(
                out,
                "synchub_queue_depth{{pipeline=\"{}\",kind=\"{}\"}} {}",
                label(&q.pipeline),
                label(&q.kind),
                q.rows
            );
        }
    }
    out.push_str("# HELP synchub_sync_lag_seconds Seconds since each stream's cursor was last committed.\n# TYPE synchub_sync_lag_seconds gauge\n");
    if let Ok(rows) = &cursors {
        for (connection, object, _, _, updated_at) in rows {
            let Ok(at) = chrono::DateTime::parse_from_rfc3339(updated_at) else {
                continue;
            };
            let lag = (now - at.with_timezone(&chrono::Utc))
                .num_milliseconds()
                .max(0);
            let _ = writeln!(
                out,
                "synchub_sync_lag_seconds{{stream=\"{}.{}\"}} {:.3}",
                label(connection),
                label(object),
                lag as f64 / 1000.0
            );
        }
    }
    out.push_str("# HELP synchub_throttle_wait_seconds_total Time requests of this process waited on rate budgets (local and shared).\n# TYPE synchub_throttle_wait_seconds_total counter\n");
    let _ = writeln!(
        out,
        "synchub_throttle_wait_seconds_total {:.3}",
        synchub_http::shared_budget::total_wait().as_secs_f64()
    );
    if let Ok(r) = d.reloads.lock() {
        out.push_str("# HELP synchub_config_reloads_total SIGHUP reloads by result.\n# TYPE synchub_config_reloads_total counter\n");
        let _ = writeln!(
            out,
            "synchub_config_reloads_total{{result=\"ok\"}} {}",
            r.ok
        );
        let _ = writeln!(
            out,
            "synchub_config_reloads_total{{result=\"refused\"}} {}",
            r.refused
        );
    }
    out.push_str("# HELP synchub_webhook_delete_failures_total Failed attempts at queued webhook deletes (each is retried).\n# TYPE synchub_webhook_delete_failures_total counter\n");
    let _ = writeln!(
        out,
        "synchub_webhook_delete_failures_total {}",
        d.retried_deletes.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// `host:pid:` — the prefix of every holder id this process hands out.
fn this_process() -> String {
    format!(
        "{}:{}:",
        synchub_store::leases::host_name(),
        std::process::id()
    )
}
