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

/// A `synchub daemon` child process, killed when dropped.
pub struct DaemonProcess {
    /// The process.
    pub child: Child,
    /// `http://HOST:PORT` it listens on.
    pub base: String,
    /// `HOST:PORT` it listens on.
    pub addr: String,
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin daemon` on a free loopback port over the pipelines of `dir`
/// and the store `db`, and waits for its `listening on` line. Its later
/// output is drained, so the daemon never meets a closed pipe.
pub fn start_daemon(bin: &str, db: &str, dir: &std::path::Path) -> DaemonProcess {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin)
        .args(["daemon", "--listen", "127.0.0.1:0", "--config-dir"])
        .arg(dir)
        .env("SYNCHUB_DATABASE_URL", db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start synchub daemon");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("daemon stdout"));
    let mut first = String::new();
    out.read_line(&mut first)
        .expect("read the daemon's first line");
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let base = first
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    let addr = base.trim_start_matches("http://").to_string();
    DaemonProcess { child, base, addr }
}
