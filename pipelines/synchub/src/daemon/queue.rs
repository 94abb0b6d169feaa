//! The daemon's side of the store's delivery queue: any instance serves
//! the wake-ups and webhook deletes queued by any other.
//!
//! Every [`POLL`] the poller claims the due deletes of each pipeline
//! (applying each, retried with a growing backoff when it fails) and takes
//! a pending wake-up, waking the pipeline's scheduler.

use std::time::Duration;

use synchub_core::{ObjectKind, RemoteRecord};
use synchub_store::deliveries::QueuedDelete;
use tokio_util::sync::CancellationToken;

use super::{Daemon, Slot};

/// How often the queue is looked at.
pub(crate) const POLL: Duration = Duration::from_secs(1);
/// How long a claimed delete is ours before another instance may take it.
const CLAIM: Duration = Duration::from_secs(60);
/// The longest wait between two attempts at a failing delete.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The wait after the `attempts`-th failure: 1 s, 2 s, 4 s … one hour.
pub(crate) fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 13) - 1).unwrap_or(0);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// Applies one queued delete; it leaves the queue when applied, and is
/// released for a later attempt (with its error) when not.
pub(crate) async fn apply_delete(
    d: &Daemon,
    slot: &Slot,
    delete: &QueuedDelete,
    records: Vec<RemoteRecord>,
) -> Result<(), String> {
    let Some(object) = ObjectKind::parse(&delete.object) else {
        let e = format!("unknown object `{}`", delete.object);
        let _ = d
            .store
            .fail_delete(delete.id, &e, backoff(delete.attempts))
            .await;
        return Err(e);
    };
    let applied = slot
        .engine
        .apply_remote(&delete.connection, object, records)
        .await;
    if let (Ok(counts), Ok(mut st)) = (&applied, slot.status.lock()) {
        let stream = format!("{}.{object}", delete.connection);
        *st.records.entry((stream.clone(), "deleted")).or_default() += counts.deleted;
        *st.records.entry((stream, "dead_lettered")).or_default() += counts.dead_lettered;
    }
    match applied {
        Ok(_) => {
            if let Err(e) = d.store.finish_delete(delete.id).await {
                tracing::warn!(id = delete.id, error = %e, "applied delete left in the queue; it will be applied again");
            }
            Ok(())
        }
        Err(e) => {
            let wait = backoff(delete.attempts);
            tracing::error!(
                connection = %delete.connection,
                %object,
                attempts = delete.attempts,
                retry_in_s = wait.as_secs(),
                error = %e,
                "applying a webhook delete failed; retrying later"
            );
            d.retried_deletes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(e2) = d.store.fail_delete(delete.id, &e.to_string(), wait).await {
                tracing::warn!(id = delete.id, error = %e2, "could not record the failed delete");
            }
            Err(e.to_string())
        }
    }
}

/// Serves the queue until `stop`: one look at its depth per [`POLL`], and
/// work only for the pipelines that have some.
pub(crate) async fn poll(d: std::sync::Arc<Daemon>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.cancelled() => return,
        }
        let depth = match d.store.queue_depth().await {
            Ok(depth) => depth,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the delivery queue");
                continue;
            }
        };
        let pipelines = d.pipelines();
        for q in depth.iter().filter(|q| q.rows > 0) {
            if stop.is_cancelled() {
                return;
            }
            let Some(slot) = pipelines.slots.iter().find(|s| s.name == q.pipeline) else {
                continue; // another instance's pipeline
            };
            match q.kind.as_str() {
                "delete" => serve_deletes(&d, slot).await,
                // A wake-up queued by any instance: the run takes it (see run_once).
                "wake" => slot.schedule.wake(),
                _ => {}
            }
        }
    }
}

async fn serve_deletes(d: &Daemon, slot: &Slot) {
    let deletes = match d
        .store
        .claim_deletes(&slot.name, &d.holder, CLAIM, 50)
        .await
    {
        Ok(deletes) => deletes,
        Err(e) => {
            tracing::warn!(pipeline = %slot.name, error = %e, "cannot claim queued deletes");
            return;
        }
    };
    for delete in deletes {
        let record: RemoteRecord = match serde_json::from_str(&delete.payload) {
            Ok(r) => r,
            Err(e) => {
                let why = format!("stored delete does not decode: {e}");
                let _ = d.store.fail_delete(delete.id, &why, MAX_BACKOFF).await;
                continue;
            }
        };
        let _ = apply_delete(d, slot, &delete, vec![record]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
