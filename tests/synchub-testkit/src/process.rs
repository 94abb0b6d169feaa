//! Killing a `synchub` child process at a chosen point of its run.

use std::process::Child;
use std::time::{Duration, Instant};

use synchub_core::ObjectKind;
use synchub_store::Store;

/// The page sequence number the stream's cursor has reached (0 before any).
pub async fn cursor_seq(store: &Store, connection: &str, object: ObjectKind) -> i64 {
    store
        .cursor(connection, object)
        .await
        .ok()
        .flatten()
        .map(|c| c.seq)
        .unwrap_or(0)
}

/// Waits until the stream's cursor reaches page `target`, then SIGKILLs
/// `child` and returns true; returns false when the child ended first.
/// Panics when the run makes no progress within `patience`.
pub async fn kill_at_page(
    child: &mut Child,
    store: &Store,
    stream: (&str, ObjectKind),
    target: i64,
    patience: Duration,
) -> bool {
    kill_when(child, patience, || async {
        cursor_seq(store, stream.0, stream.1).await >= target
    })
    .await
}

/// Polls `reached` (state in the store, never a timer) until it holds, then
/// SIGKILLs `child` and returns true; returns false when the child ended
/// first. Panics when `reached` does not hold within `patience`.
pub async fn kill_when<F, Fut>(child: &mut Child, patience: Duration, mut reached: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + patience;
    loop {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if reached().await {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not reach the kill point within {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
