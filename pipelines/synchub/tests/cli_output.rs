//! Output for people and for programs, through the binary: tables and
//! `--format json`, conflicts named by person and field with their values
//! shown once-encoded, bulk resolution, run history, and a closed pipe.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

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

/// Runs a command that must succeed; returns stdout.
fn ok(db: &str, args: &[&str]) -> String {
    let o = synchub(db, args);
    assert!(
        o.status.success(),
        "synchub {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn json(db: &str, args: &[&str]) -> Value {
    let out = ok(db, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// A store after one run of the standard CSV pipeline.
fn csv_store() -> (tempfile::TempDir, TestDb, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    write_contacts_csv(&csv, 50, 3).unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, csv_pipeline(&csv, 20)).unwrap();
    let db = TestDb::sqlite();
    ok(&db.url, &["run", "--once", pipeline.to_str().unwrap()]);
    (dir, db, pipeline)
}

/// Two CSV sources that disagree on the company of the same two people,
/// merged with `default = "manual"`: two open conflicts on `company`.
fn conflict_store() -> (tempfile::TempDir, TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "a.csv",
        "id,name,email,company\n1,陳大文,tai.man@example.hk,Acme\n2,王小明,ming@example.tw,Foo\n",
    );
    write(
        "b.csv",
        "id,name,email,company\n9,陳大文,tai.man@example.hk,Acme Ltd\n8,王小明,ming@example.tw,Bar\n",
    );
    let conn = |name: &str| {
        format!(
            "[[connections]]\nname = \"{name}\"\nkind = \"csv\"\ndirection = \"pull\"\n\
             [connections.config]\npath = \"{name}.csv\"\nid_column = \"id\"\n\
             map = {{ name = \"full_name\", email = \"email\", company = \"company\" }}\n"
        )
    };
    let text = format!(
        "version = 1\nname = \"two-sources\"\nregion = \"HK\"\n{}{}[merge]\ndefault = \"manual\"\n",
        conn("a"),
        conn("b")
    );
    let pipeline = dir.path().join("two.toml");
    std::fs::write(&pipeline, text).unwrap();
    let db = TestDb::sqlite();
    ok(&db.url, &["run", "--once", pipeline.to_str().unwrap()]);
    (dir, db)
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let (_dir, db, _) = csv_store();
    for args in [
        &["status"][..],
        &["runs", "list"][..],
        &["conflicts", "list", "--all"][..],
    ] {
        // GIVEN a reader that has gone away before the command writes
        let mut child = Command::new(env!("CARGO_BIN_EXE_synchub"))
            .args(args)
            .env("SYNCHUB_DATABASE_URL", &db.url)
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        // THEN no panic, no backtrace, no error
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(o.status.success(), "{args:?}: {err}");
    }
}

#[test]
fn status_prints_tables_with_cursors_summarized_and_json_on_request() {
    let (_dir, db, _) = csv_store();
    let out = ok(&db.url, &["status"]);
    assert!(out.contains("CONNECTION  OBJECT   PAGES"), "{out}");
    assert!(out.contains("csv_source  contact"), "{out}");
    assert!(out.contains("offset="), "cursor summarized: {out}");
    assert!(!out.contains("{\"offset\""), "no raw JSON cursor: {out}");
    assert!(
        out.contains("PENDING  FAILING") || out.contains("nothing waiting"),
        "{out}"
    );
    assert!(out.contains("recent runs"), "{out}");

    let doc = json(&db.url, &["status", "--format", "json"]);
    let stream = &doc["streams"][0];
    assert_eq!(stream["connection"], "csv_source");
    assert!(stream["cursor"]["offset"].as_u64().unwrap() > 0, "{doc}");
    assert!(doc["records"][0]["count"].as_i64().unwrap() > 0, "{doc}");
    assert!(doc["dead_letters"]["count"].as_i64().unwrap() >= 1, "{doc}");
    assert_eq!(doc["recent_runs"][0]["pipeline"], "test-csv");
}

#[test]
fn conflicts_show_the_person_field_and_systems_and_values_once_encoded() {
    let (_dir, db) = conflict_store();
    // WHEN the open conflicts are listed THEN each names the person, the field and both systems
    let out = ok(&db.url, &["conflicts", "list"]);
    assert!(out.contains("PERSON"), "{out}");
    assert!(out.contains("陳大文") && out.contains("王小明"), "{out}");
    assert!(out.contains("company"), "{out}");
    assert!(out.contains("crm vs b"), "{out}");
    assert!(out.contains("\"Acme Ltd\""), "{out}");

    let list = json(&db.url, &["conflicts", "list", "--format", "json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let chan = list.iter().find(|c| c["person"] == "陳大文").unwrap();
    assert_eq!(chan["field"], "company");
    assert_eq!(chan["local"], "Acme");
    assert_eq!(chan["remote"], "Acme Ltd");
    assert_eq!(chan["connection"], "b");

    // AND `show` prints each value as JSON once, not a JSON string of JSON
    let id = chan["id"].as_i64().unwrap().to_string();
    let out = ok(&db.url, &["conflicts", "show", &id]);
    assert!(out.contains("remote:  \"Acme Ltd\""), "{out}");
    assert!(!out.contains("\\\""), "double-encoded: {out}");
    assert!(out.contains("陳大文"), "{out}");
    let one = json(&db.url, &["conflicts", "show", &id, "--format", "json"]);
    assert_eq!(one["local"], "Acme");
}

#[test]
fn conflicts_resolve_in_bulk_by_field_with_a_dry_run_first() {
    let (_dir, db) = conflict_store();
    // GIVEN two open conflicts on `company` from `b`
    // WHEN a dry run resolves them THEN it says what it would do and writes nothing
    let out = ok(
        &db.url,
        &[
            "conflicts",
            "resolve",
            "--field",
            "company",
            "--source",
            "b",
            "--take",
            "remote",
            "--dry-run",
        ],
    );
    assert!(out.contains("would resolve 2 conflict(s)"), "{out}");
    let open = json(&db.url, &["conflicts", "list", "--format", "json"]);
    assert_eq!(open.as_array().unwrap().len(), 2);

    // WHEN they are resolved THEN none stays open and each took the remote value
    let out = ok(
        &db.url,
        &[
            "conflicts",
            "resolve",
            "--field",
            "company",
            "--source",
            "b",
            "--take",
            "remote",
        ],
    );
    assert!(out.contains("resolved 2 conflict(s)"), "{out}");
    let open = json(&db.url, &["conflicts", "list", "--format", "json"]);
    assert!(open.as_array().unwrap().is_empty(), "{open}");
    let all = json(&db.url, &["conflicts", "list", "--all", "--format", "json"]);
    for c in all.as_array().unwrap() {
        assert_eq!(c["status"], "resolved");
        assert_eq!(c["resolution"], c["remote"], "{c}");
    }

    // AND a field without conflicts is refused with what there is
    let o = synchub(
        &db.url,
        &[
            "conflicts",
            "resolve",
            "--field",
            "title",
            "--take",
            "local",
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no open conflict on field `title`"), "{err}");
}

#[test]
fn runs_list_and_show_read_the_run_history() {
    let (_dir, db, pipeline) = csv_store();
    ok(&db.url, &["run", "--once", pipeline.to_str().unwrap()]);
    let out = ok(&db.url, &["runs", "list"]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].starts_with("1 ") && rows[1].starts_with("2 "),
        "{out}"
    );
    assert!(out.contains("test-csv"), "{out}");

    // #2 is the first run, which read every row
    let out = ok(&db.url, &["runs", "show", "2"]);
    assert!(out.contains("run #2: test-csv"), "{out}");
    assert!(out.contains("csv_source.contact  50"), "{out}");
    let doc = json(&db.url, &["runs", "show", "1", "--format", "json"]);
    assert_eq!(doc["report"]["streams"]["csv_source.contact"]["read"], 0);
    let list = json(&db.url, &["runs", "list", "--format", "json"]);
    assert_eq!(list.as_array().unwrap().len(), 2);

    let o = synchub(&db.url, &["runs", "show", "9"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no run #9"));
}

#[test]
fn listing_json_is_valid_on_an_empty_store() {
    let db = TestDb::sqlite();
    assert_eq!(
        json(&db.url, &["conflicts", "list", "--format", "json"]),
        Value::Array(vec![])
    );
    assert_eq!(
        json(&db.url, &["runs", "list", "--format", "json"]),
        Value::Array(vec![])
    );
    let status = json(&db.url, &["status", "--format", "json"]);
    assert!(status["streams"].as_array().unwrap().is_empty());
    let _ = Path::new(".");
}

#[test]
fn newest_skips_conflicts_whose_source_gives_no_change_time() {
    // GIVEN conflicts raised by a CSV file, which carries no change times
    let (_dir, db) = conflict_store();
    // WHEN the newest side is asked for THEN each conflict is skipped with the reason
    let out = ok(
        &db.url,
        &[
            "conflicts",
            "resolve",
            "--field",
            "company",
            "--take",
            "newest",
        ],
    );
    assert!(out.contains("resolved 0 conflict(s), skipped 2"), "{out}");
    assert!(out.contains("no change time"), "{out}");
    let open = json(&db.url, &["conflicts", "list", "--format", "json"]);
    assert_eq!(open.as_array().unwrap().len(), 2, "nothing was decided");
    // AND one conflict asked for the newest side is refused with what to do instead
    let id = open[0]["id"].as_i64().unwrap().to_string();
    let o = synchub(&db.url, &["conflicts", "resolve", &id, "--take", "newest"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("take local or remote"), "{err}");
}
