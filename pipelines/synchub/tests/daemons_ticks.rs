//! Issue 18: schedule ticks are claimed in the store, so two daemons on one
//! PostgreSQL run each tick of a pipeline once between them (not once
//! each), and when the instance serving the ticks stops, the other serves
//! the next ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use synchub_store::Store;
use synchub_testkit::process::{start_daemon, DaemonProcess};
use synchub_testkit::TestDb;
use synchub_woocommerce::sandbox as woo;

const BIN: &str = env!("CARGO_BIN_EXE_synchub");

fn pipeline(base_url: &str) -> String {
    format!(
        r#"version = 1
name = "ticks"
region = "TW"

[schedule]
every_seconds = 1

[[connections]]
name = "woo"
kind = "woocommerce"
direction = "pull"
objects = ["contact"]

[connections.config]
base_url = "{base_url}"
consumer_key = "{}"
consumer_secret = "{}"
"#,
        woo::SANDBOX_KEY,
        woo::SANDBOX_SECRET,
    )
}

fn pid_of(holder: &str) -> u32 {
    holder.split(':').nth(1).unwrap().parse().unwrap()
}

/// Waits until `pid` has claimed `n` ticks.
async fn wait_for_ticks(store: &Store, pid: u32, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ticks = store.claimed_ticks("ticks").await.unwrap();
        if ticks.iter().filter(|(_, h)| pid_of(h) == pid).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "daemon {pid} claimed fewer than {n} ticks: {ticks:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stop(mut d: DaemonProcess) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert!(d.child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_run_each_schedule_tick_once_and_either_serves_them() {
    // GIVEN a pipeline ticking every second and two daemons on one store
    let sandbox = woo::spawn(woo::SandboxOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ticks.toml"), pipeline(&sandbox.base_url)).unwrap();
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let first = start_daemon(BIN, &db.url, dir.path());
    let second = start_daemon(BIN, &db.url, dir.path());
    let pids = [first.child.id(), second.child.id()];

    // WHEN they run for a few ticks, then the one that served the last
    // tick stops
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.claimed_ticks("ticks").await.unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "no ticks were claimed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ticks = store.claimed_ticks("ticks").await.unwrap();
    let last = pid_of(&ticks.last().unwrap().1);
    let (gone, survivor) = if last == pids[0] {
        (first, second)
    } else {
        (second, first)
    };
    let survivor_pid = survivor.child.id();
    let gone_pid = gone.child.id();
    stop(gone);
    let stopped_period = store
        .claimed_ticks("ticks")
        .await
        .unwrap()
        .last()
        .unwrap()
        .0;

    // THEN the other serves the following ticks
    wait_for_ticks(&store, survivor_pid, 3).await;
    stop(survivor);
    let ticks = store.claimed_ticks("ticks").await.unwrap();
    assert!(
        ticks
            .iter()
            .filter(|(p, _)| *p > stopped_period)
            .all(|(_, h)| pid_of(h) == survivor_pid),
        "a stopped daemon claimed a tick: {ticks:?}"
    );
    assert!(ticks
        .iter()
        .filter(|(p, _)| *p > stopped_period)
        .any(|(_, h)| pid_of(h) == survivor_pid));
    // AND each run was a claimed tick: the stream was leased at most once
    // per claimed period (two uncoordinated daemons would lease it about
    // twice as often), and at least once per period but for a run cut short
    // by each stop.
    let grants = store
        .lease_log()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "grant")
        .count();
    assert!(
        grants <= ticks.len() && grants + 2 >= ticks.len(),
        "{grants} lease grants for {} claimed ticks: {ticks:?}",
        ticks.len()
    );
    // Every claim names one of the two daemons.
    assert!(ticks
        .iter()
        .all(|(_, h)| [gone_pid, survivor_pid].contains(&pid_of(h))));
}
