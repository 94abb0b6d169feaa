//! GIVEN a 10,000-row CSV pulled in pages of 100
//! WHEN `synchub run` is SIGKILLed at 22 points spread over the run and re-run each time
//! THEN the store equals the store of an uninterrupted run: same rows, no duplicate, no loss.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use synchub_core::ObjectKind;
use synchub_testkit::data::{csv_pipeline, write_contacts_csv};
use synchub_testkit::process::kill_at_page;
use synchub_testkit::TestDb;

const ROWS: u64 = 10_000;
const PAGE: usize = 100;
const KILLS: i64 = 22;

fn spawn_run(db: &str, pipeline: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["run", "--once"])
        .arg(pipeline)
        .env("SYNCHUB_DATABASE_URL", db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn synchub")
}

fn run_to_end(db: &str, pipeline: &Path) {
    let status = spawn_run(db, pipeline).wait().expect("wait");
    assert!(status.success(), "synchub run failed: {status}");
}

async fn cursor_seq(store: &synchub_store::Store) -> i64 {
    synchub_testkit::process::cursor_seq(store, "csv_source", ObjectKind::Contact).await
}

async fn crash_and_resume(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    write_contacts_csv(&csv, ROWS, 7).unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, csv_pipeline(&csv, PAGE)).unwrap();
    let pages = (ROWS as i64 + PAGE as i64 - 1) / PAGE as i64;

    // The reference: one uninterrupted run.
    let reference = TestDb::of(backend).await;
    run_to_end(&reference.url, &pipeline);
    let expected = reference.store().await.canonical_dump().await.unwrap();
    let contacts = expected
        .iter()
        .filter(|l| l.starts_with("crm_record|"))
        .count();
    assert!(
        contacts > 9_000,
        "reference run stored only {contacts} contacts"
    );

    // The crashed one: kill when the cursor passes each target page, re-run.
    let crashed = TestDb::of(backend).await;
    let observer = crashed.store().await;
    let mut kills = 0;
    for k in 1..=KILLS {
        let target = k * pages / (KILLS + 1);
        let mut child = spawn_run(&crashed.url, &pipeline);
        let stream = ("csv_source", ObjectKind::Contact);
        if kill_at_page(
            &mut child,
            &observer,
            stream,
            target,
            Duration::from_secs(120),
        )
        .await
        {
            kills += 1;
        }
    }
    assert!(kills >= 20, "only {kills} runs were killed mid-way");
    run_to_end(&crashed.url, &pipeline);
    assert!(
        cursor_seq(&observer).await >= pages,
        "the cursor ends on the last page"
    );

    let actual = crashed.store().await.canonical_dump().await.unwrap();
    let missing: Vec<_> = expected
        .iter()
        .filter(|l| !actual.contains(l))
        .take(3)
        .collect();
    let extra: Vec<_> = actual
        .iter()
        .filter(|l| !expected.contains(l))
        .take(3)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    assert_eq!(actual.len(), expected.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_22_points_then_resume_equals_uninterrupted_run_sqlite() {
    crash_and_resume("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_22_points_then_resume_equals_uninterrupted_run_postgres() {
    crash_and_resume("postgres").await;
}
