//! GIVEN a 10,000-row legacy contacts export (about 5 % duplicates)
//! WHEN `synchub migrate csv` is SIGKILLed at 8 points and continued with `--resume` each time
//! THEN the store equals the store of an uninterrupted migration: same
//!      contacts, same identity links (legacy ids), same merges, no duplicate, no loss;
//! AND a second full run of the same migration creates and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use synchub_core::ObjectKind;
use synchub_testkit::process::kill_at_page;
use synchub_testkit::TestDb;

const ROWS: u64 = 10_000;
const PAGE: u64 = 250;
const KILLS: i64 = 8;
const STREAM: &str = "migrate_csv";

fn migrate_cmd(db: &str, csv: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synchub"));
    cmd.args(["migrate", "csv"])
        .arg(csv)
        .args(["--page-size", &PAGE.to_string()])
        .args(extra)
        .env("SYNCHUB_DATABASE_URL", db);
    cmd
}

fn spawn(db: &str, csv: &Path, extra: &[&str]) -> Child {
    migrate_cmd(db, csv, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn synchub")
}

fn run(db: &str, csv: &Path, extra: &[&str]) -> Output {
    let out = migrate_cmd(db, csv, extra).output().expect("run synchub");
    assert!(
        out.status.success(),
        "synchub migrate failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn cursor_seq(store: &synchub_store::Store) -> i64 {
    synchub_testkit::process::cursor_seq(store, STREAM, ObjectKind::Contact).await
}

fn diff(expected: &[String], actual: &[String]) -> (Vec<String>, Vec<String>) {
    let e: std::collections::HashSet<&String> = expected.iter().collect();
    let a: std::collections::HashSet<&String> = actual.iter().collect();
    let missing = expected
        .iter()
        .filter(|l| !a.contains(l))
        .take(3)
        .cloned()
        .collect();
    let extra = actual
        .iter()
        .filter(|l| !e.contains(l))
        .take(3)
        .cloned()
        .collect();
    (missing, extra)
}

async fn kill_and_resume(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("legacy-contacts.csv");
    let sample = synchub_legacy::write_sample_contacts_csv(&csv, ROWS, 11).unwrap();
    let pages = ROWS.div_ceil(PAGE) as i64;

    // The reference: one uninterrupted migration.
    let reference = TestDb::of(backend).await;
    run(&reference.url, &csv, &[]);
    let expected = reference.store().await.canonical_dump().await.unwrap();
    let contacts = expected
        .iter()
        .filter(|l| l.starts_with("crm_record|"))
        .count() as u64;
    let links = expected
        .iter()
        .filter(|l| l.starts_with("id_link|"))
        .count() as u64;
    assert_eq!(links, ROWS, "every legacy row keeps its legacy id");
    assert!(
        contacts < ROWS && contacts + sample.duplicates >= ROWS - ROWS / 100,
        "{contacts} contacts from {ROWS} rows with {} duplicates",
        sample.duplicates
    );

    // The interrupted one: SIGKILL when the cursor passes each target page,
    // then continue with --resume.
    let crashed = TestDb::of(backend).await;
    let observer = crashed.store().await;
    let mut kills = 0;
    for k in 1..=KILLS {
        let target = k * pages / (KILLS + 1);
        let extra: &[&str] = if k == 1 { &[] } else { &["--resume"] };
        let mut child = spawn(&crashed.url, &csv, extra);
        let stream = (STREAM, ObjectKind::Contact);
        if kill_at_page(
            &mut child,
            &observer,
            stream,
            target,
            Duration::from_secs(180),
        )
        .await
        {
            kills += 1;
        }
    }
    assert!(kills >= KILLS - 1, "only {kills} runs were killed mid-way");
    run(&crashed.url, &csv, &["--resume"]);
    assert!(cursor_seq(&observer).await >= pages);

    let actual = crashed.store().await.canonical_dump().await.unwrap();
    let (missing, extra) = diff(&expected, &actual);
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    assert_eq!(actual.len(), expected.len());

    // A second full run of the same migration creates and changes nothing.
    let again = run(&crashed.url, &csv, &[]);
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.contains(&format!("read {ROWS} rows: 0 new records")),
        "{text}"
    );
    // Everything but the cursor (which records that the run happened).
    let data = |dump: Vec<String>| -> Vec<String> {
        dump.into_iter()
            .filter(|l| !l.starts_with("sync_cursor|"))
            .collect()
    };
    let after = data(crashed.store().await.canonical_dump().await.unwrap());
    let (missing, extra) = diff(&data(actual), &after);
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the second run changed the store: missing {missing:?}\nextra {extra:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_sigkill_then_resume_equals_uninterrupted_sqlite() {
    kill_and_resume("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_sigkill_then_resume_equals_uninterrupted_postgres() {
    kill_and_resume("postgres").await;
}

/// `--dry-run` writes nothing and still names each invalid row with its
/// row number and reason; the real run then keeps them as dead letters.
#[test]
fn migrate_dry_run_lists_invalid_rows_and_writes_nothing() {
    let export = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../connectors/synchub-legacy/tests/data/salesforce");
    let db = TestDb::sqlite();
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["migrate", "salesforce"])
        .arg(&export)
        .arg("--dry-run")
        .env("SYNCHUB_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("dry run: migration from salesforce"),
        "{text}"
    );
    assert!(
        text.contains("Contact.csv row 5 (line 7): row has 6 columns, the header has 24"),
        "{text}"
    );
    assert!(
        text.contains("Contact.csv row 6 (line 8): contact has no name, email or phone"),
        "{text}"
    );
    assert!(text.contains("nothing was written (--dry-run)"), "{text}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = db.store().await;
        assert!(
            store.canonical_dump().await.unwrap().is_empty(),
            "dry run wrote to the store"
        );
    });

    // The real run: the same rows, now kept as dead letters.
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["migrate", "salesforce"])
        .arg(&export)
        .env("SYNCHUB_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("kept as dead letters"), "{text}");
    rt.block_on(async {
        let store = db.store().await;
        let dead = store.dead_letters(100).await.unwrap();
        assert!(
            dead.iter()
                .any(|d| d.location.as_deref() == Some("Contact.csv row 5 (line 7)")),
            "{dead:?}"
        );
    });
}
