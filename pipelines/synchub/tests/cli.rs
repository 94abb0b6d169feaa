//! The command line as users meet it: clear one-line errors naming the file,
//! key or host; the JSON report; incremental runs; dead letters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use synchub_testkit::data::{csv_pipeline, write_contacts_csv};
use synchub_testkit::TestDb;

fn synchub(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_DATABASE_URL", db)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run synchub")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn assert_clean_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr should mention `{n}`:\n{err}");
    }
    assert!(!err.contains("panicked"), "no panic expected:\n{err}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one clear line expected:\n{err}"
    );
}

fn report(o: &Output) -> Value {
    assert!(o.status.success(), "run failed: {}", stderr(o));
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn setup(rows: u64) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    write_contacts_csv(&csv, rows, 3).unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, csv_pipeline(&csv, 100)).unwrap();
    (dir, csv, pipeline)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn bad_database_url_is_one_clear_error() {
    let (_d, _csv, pipeline) = setup(10);
    let o = synchub("mysql-ish://nowhere", &["run", "--once", p(&pipeline)]);
    assert_clean_error(
        &o,
        &[
            "unsupported database URL",
            "mysql-ish://nowhere",
            "sqlite://",
        ],
    );
}

#[test]
fn unreachable_database_host_is_named_and_password_hidden() {
    let (_d, _csv, pipeline) = setup(10);
    let o = synchub(
        "postgres://app:hunter2@127.0.0.1:1/crm",
        &["run", "--once", p(&pipeline)],
    );
    assert_clean_error(&o, &["cannot open database", "127.0.0.1:1"]);
    assert!(
        !stderr(&o).contains("hunter2"),
        "password leaked: {}",
        stderr(&o)
    );
}

#[test]
fn missing_pipeline_file_is_named() {
    let db = TestDb::sqlite();
    let o = synchub(&db.url, &["run", "--once", "/nonexistent/pipeline.toml"]);
    assert_clean_error(
        &o,
        &["cannot read pipeline file /nonexistent/pipeline.toml"],
    );
}

#[test]
fn malformed_pipeline_names_the_file_and_the_key() {
    let (dir, csv, _) = setup(10);
    let bad = dir.path().join("bad.toml");
    let text = csv_pipeline(&csv, 100).replace("direction = \"pull\"", "direction = \"sideways\"");
    std::fs::write(&bad, text).unwrap();
    let db = TestDb::sqlite();
    let o = synchub(&db.url, &["run", "--once", p(&bad)]);
    assert_clean_error(&o, &[p(&bad), "connections[0].direction", "sideways"]);

    let text = csv_pipeline(&csv, 100).replace("email = \"email\"", "email = \"e_mail_address\"");
    std::fs::write(&bad, text).unwrap();
    let o = synchub(&db.url, &["run", "--once", p(&bad)]);
    assert_clean_error(
        &o,
        &["connections[0].config", "e_mail_address", "expected one of"],
    );

    std::fs::write(&bad, "version = 1\nname = \"x\"\n[[connections]\n").unwrap();
    let o = synchub(&db.url, &["run", "--once", p(&bad)]);
    assert_clean_error(&o, &[p(&bad), "not valid TOML"]);
}

#[test]
fn missing_environment_variable_is_named() {
    let (dir, csv, _) = setup(10);
    let bad = dir.path().join("env.toml");
    let text = csv_pipeline(&csv, 100).replace(
        "name = \"test-csv\"",
        "name = \"${SYNCHUB_TEST_UNSET_VAR}\"",
    );
    std::fs::write(&bad, text).unwrap();
    let o = synchub(&TestDb::sqlite().url, &["run", "--once", p(&bad)]);
    assert_clean_error(&o, &["SYNCHUB_TEST_UNSET_VAR", "is not set"]);
}

#[test]
fn json_report_incremental_runs_and_a_changed_record() {
    let (_d, csv, pipeline) = setup(1_000);
    let db = TestDb::sqlite();

    // GIVEN a fresh store WHEN the file is pulled THEN every row is accounted for.
    let first = report(&synchub(
        &db.url,
        &["run", "--once", "--report", "json", p(&pipeline)],
    ));
    let s = &first["streams"]["csv_source.contact"];
    for key in [
        "read",
        "created",
        "updated",
        "merged",
        "unchanged",
        "conflicted",
        "dead_lettered",
        "pushed",
        "seconds",
    ] {
        assert!(s.get(key).is_some(), "report lacks `{key}`: {s}");
    }
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap();
    assert_eq!(n(s, "read"), 1_000);
    assert_eq!(
        n(s, "created") + n(s, "merged") + n(s, "dead_lettered") + n(s, "unchanged"),
        1_000,
        "{s}"
    );
    assert!(n(s, "merged") >= 15, "rows sharing an email merge: {s}");
    assert!(
        n(s, "dead_lettered") >= 2,
        "bad rows become dead letters: {s}"
    );

    // WHEN it runs again THEN nothing is read past the cursor.
    let second = report(&synchub(
        &db.url,
        &["run", "--once", "--report", "json", p(&pipeline)],
    ));
    assert_eq!(n(&second["streams"]["csv_source.contact"], "read"), 0);

    // WHEN one row changes and everything is read again THEN exactly one record is updated.
    let text = std::fs::read_to_string(&csv)
        .unwrap()
        .replace(",row 502\n", ",row 502 (edited)\n");
    std::fs::write(&csv, text).unwrap();
    let third = report(&synchub(
        &db.url,
        &[
            "run",
            "--once",
            "--full-refresh",
            "--report",
            "json",
            p(&pipeline),
        ],
    ));
    let s3 = &third["streams"]["csv_source.contact"];
    assert_eq!(n(s3, "read"), 1_000);
    assert_eq!(n(s3, "updated"), 1, "{s3}");
    assert_eq!(n(s3, "created"), 0, "{s3}");

    // AND a further full refresh changes nothing.
    let fourth = report(&synchub(
        &db.url,
        &[
            "run",
            "--once",
            "--full-refresh",
            "--report",
            "json",
            p(&pipeline),
        ],
    ));
    let s4 = &fourth["streams"]["csv_source.contact"];
    assert_eq!(n(s4, "updated") + n(s4, "created"), 0, "{s4}");

    // Dead letters keep the payload and the reason, listed by `status`.
    let status = synchub(&db.url, &["status"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("dead letters:"), "{out}");
    assert!(out.contains("is not a date"), "{out}");
}

#[test]
fn dry_run_writes_nothing() {
    let (_d, _csv, pipeline) = setup(300);
    let db = TestDb::sqlite();
    let r = report(&synchub(
        &db.url,
        &[
            "run",
            "--once",
            "--dry-run",
            "--report",
            "json",
            p(&pipeline),
        ],
    ));
    assert_eq!(r["dry_run"], Value::Bool(true));
    assert_eq!(
        r["streams"]["csv_source.contact"]["read"].as_u64(),
        Some(300)
    );
    let again = report(&synchub(
        &db.url,
        &["run", "--once", "--report", "json", p(&pipeline)],
    ));
    assert_eq!(
        again["streams"]["csv_source.contact"]["read"].as_u64(),
        Some(300),
        "dry run stored no cursor"
    );
}
