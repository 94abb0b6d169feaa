//! `synchub run` over a CSV file that changes between runs, and over one
//! with values too long for an index, on SQLite and PostgreSQL.
//!
//! GIVEN a CSV pipeline run to the end
//! WHEN a row already read is edited (same length, then growing by bytes)
//! THEN the next run applies the edit, with no dead letter made up;
//! AND a row with a 5 MB email or id is a dead letter naming its row and
//!     column while every other row lands, run after run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use synchub_core::ObjectKind;
use synchub_testkit::data::csv_pipeline;
use synchub_testkit::TestDb;

const HEADER: &str = "id,first_name,last_name,email,phone,company,city,birth_date,notes";

fn row(i: u64) -> String {
    format!("{i},Tai Man,Chan {i:03},person{i:03}@example.com,,Company {i:03},Taipei,,")
}

fn file(rows: impl IntoIterator<Item = String>) -> String {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(&r);
        text.push('\n');
    }
    text
}

fn run(db: &str, pipeline: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["run", "--once"])
        .arg(pipeline)
        .env("SYNCHUB_DATABASE_URL", db)
        .output()
        .expect("run synchub");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "synchub run failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

async fn company_of(store: &synchub_store::Store, email: &str) -> Option<String> {
    store
        .records(ObjectKind::Contact, false)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| r.record.as_contact().cloned())
        .find(|c| c.emails.iter().any(|e| e == email))
        .and_then(|c| c.company)
}

async fn edits_of_read_rows_are_applied(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, csv_pipeline(&csv, 10)).unwrap();
    let rows: Vec<String> = (1..=60).map(row).collect();
    std::fs::write(&csv, file(rows.clone())).unwrap();
    let db = TestDb::of(backend).await;
    run(&db.url, &pipeline);
    let store = db.store().await;
    assert_eq!(
        company_of(&store, "person003@example.com").await.as_deref(),
        Some("Company 003")
    );

    // Same length: the byte offset of the cursor still fits the file.
    let mut edited = rows.clone();
    edited[2] = edited[2].replace("Company 003", "Cumpany 003");
    std::fs::write(&csv, file(edited.clone())).unwrap();
    run(&db.url, &pipeline);
    assert_eq!(
        company_of(&store, "person003@example.com").await.as_deref(),
        Some("Cumpany 003"),
        "a same-length edit of a read row was skipped"
    );

    // Growing by 3 bytes: the old offset now falls inside a row.
    edited[4] = edited[4].replace("Company 005", "Company 005 陳");
    std::fs::write(&csv, file(edited)).unwrap();
    run(&db.url, &pipeline);
    assert_eq!(
        company_of(&store, "person005@example.com").await.as_deref(),
        Some("Company 005 陳")
    );
    let dead = store.dead_letters(10).await.unwrap();
    assert!(dead.is_empty(), "made-up dead letters: {dead:#?}");
    assert_eq!(
        store
            .records(ObjectKind::Contact, false)
            .await
            .unwrap()
            .len(),
        60
    );
}

async fn oversized_values_do_not_block_the_stream(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, csv_pipeline(&csv, 100)).unwrap();
    let huge = "x".repeat(5 * 1024 * 1024);
    let mut rows: Vec<String> = (1..=10).map(row).collect();
    rows[1] = rows[1].replace("person002", &huge);
    rows[3] = format!("{huge}{}", &rows[3][1..]);
    std::fs::write(&csv, file(rows)).unwrap();
    let db = TestDb::of(backend).await;
    for _ in 0..2 {
        run(&db.url, &pipeline);
    }
    let store = db.store().await;
    assert_eq!(
        store
            .records(ObjectKind::Contact, false)
            .await
            .unwrap()
            .len(),
        8
    );
    let mut dead = store.dead_letters(10).await.unwrap();
    dead.sort_by(|a, b| a.location.cmp(&b.location));
    assert_eq!(
        dead.len(),
        2,
        "{:#?}",
        dead.iter()
            .map(|d| (&d.location, &d.reason))
            .collect::<Vec<_>>()
    );
    assert!(dead[0]
        .location
        .as_deref()
        .unwrap()
        .ends_with("contacts.csv row 2"));
    assert!(
        dead[0].reason.starts_with("column `email`"),
        "{}",
        dead[0].reason
    );
    assert!(dead[1]
        .location
        .as_deref()
        .unwrap()
        .ends_with("contacts.csv row 4"));
    assert!(
        dead[1].reason.starts_with("column `id`"),
        "{}",
        dead[1].reason
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_edits_of_read_rows_are_applied_sqlite() {
    edits_of_read_rows_are_applied("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_edits_of_read_rows_are_applied_postgres() {
    edits_of_read_rows_are_applied("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_oversized_values_do_not_block_the_stream_sqlite() {
    oversized_values_do_not_block_the_stream("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_oversized_values_do_not_block_the_stream_postgres() {
    oversized_values_do_not_block_the_stream("postgres").await;
}
