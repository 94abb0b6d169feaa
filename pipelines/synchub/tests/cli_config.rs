//! Bad configuration and bad surroundings, as a new user meets them through
//! the binary: misspelled fields get a suggestion, secrets never reach an
//! error or a log line, and the store, the CSV file and a second process are
//! named in one clean line instead of a timeout or a stream of log lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use synchub_testkit::data::{csv_pipeline, write_contacts_csv};
use synchub_testkit::TestDb;

fn synchub_env(db: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synchub"));
    cmd.args(args)
        .env("SYNCHUB_DATABASE_URL", db)
        .env_remove("RUST_BACKTRACE")
        .env_remove("SYNCHUB_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run synchub")
}

fn synchub(db: &str, args: &[&str]) -> Output {
    synchub_env(db, args, &[])
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

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A folder with a 20-row contacts file and the standard CSV pipeline.
fn setup() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    write_contacts_csv(&csv, 20, 3).unwrap();
    let text = csv_pipeline(&csv, 100);
    (dir, csv, text)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A SQLite URL in `dir` whose file does not exist yet.
fn fresh_sqlite(dir: &Path, name: &str) -> (String, PathBuf) {
    let file = dir.join(name);
    (format!("sqlite://{}", file.display()), file)
}

#[test]
fn misspelled_merge_field_is_refused_with_a_suggestion() {
    // GIVEN a merge rule on `compnay`, a field the model does not have
    let (dir, _csv, text) = setup();
    let bad = write(
        dir.path(),
        "bad.toml",
        &format!("{text}\n[merge]\nfields = {{ compnay = \"manual\" }}\n"),
    );
    let (db, db_file) = fresh_sqlite(dir.path(), "store.db");
    // WHEN it is run THEN it is refused, naming the file, the key and the field meant
    let o = synchub(&db, &["run", "--once", p(&bad)]);
    assert_clean_error(
        &o,
        &[p(&bad), "merge.fields.compnay", "did you mean `company`"],
    );
    assert!(
        !db_file.exists(),
        "a refused pipeline must not create a store"
    );

    // AND the same rules spelt right (a custom field as `custom.<key>`) run.
    let good = write(
        dir.path(),
        "good.toml",
        &format!(
            "{text}\n[merge]\nfields = {{ company = \"manual\", \"custom.vip\" = \"crm-wins\" }}\n"
        ),
    );
    let o = synchub(&db, &["run", "--once", p(&good)]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn misspelled_csv_map_field_gets_a_suggestion_and_the_file() {
    let (dir, _csv, text) = setup();
    let bad = write(
        dir.path(),
        "map.toml",
        &text.replace("company = \"company\"", "company = \"compnay\""),
    );
    let o = synchub(&TestDb::sqlite().url, &["run", "--once", p(&bad)]);
    assert_clean_error(
        &o,
        &[
            p(&bad),
            "connections[0].config.map.\"company\"",
            "unknown field `compnay`",
            "did you mean `company`",
        ],
    );
}

#[test]
fn unknown_kind_and_unknown_key_name_the_file_and_create_no_store() {
    let (dir, _csv, text) = setup();
    let (db, db_file) = fresh_sqlite(dir.path(), "store.db");

    // GIVEN a connector kind this build lacks
    let bad = write(
        dir.path(),
        "kind.toml",
        &text.replace("kind = \"csv\"", "kind = \"cvs\""),
    );
    let o = synchub(&db, &["run", "--once", p(&bad)]);
    assert_clean_error(
        &o,
        &[
            p(&bad),
            "connections[0].kind",
            "unknown connector `cvs`",
            "did you mean `csv`",
        ],
    );
    assert!(
        !db_file.exists(),
        "the pipeline is checked before the store is opened"
    );

    // GIVEN a misspelled connector setting
    let bad = write(
        dir.path(),
        "key.toml",
        &text.replace("\npath = ", "\npaht = "),
    );
    let o = synchub(&db, &["run", "--once", p(&bad)]);
    assert_clean_error(&o, &[p(&bad), "connections[0].config", "paht"]);
    assert!(
        !db_file.exists(),
        "the pipeline is checked before the store is opened"
    );
}

#[test]
fn a_secret_in_the_wrong_place_is_named_by_key_never_by_value() {
    const SECRET: &str = "whsec_do-not-print-4242";
    let dir = tempfile::tempdir().unwrap();
    let env = [("SYNCHUB_TEST_HOOK_SECRET", SECRET)];

    // GIVEN a webhook secret where a list of secrets is expected
    let shop = write(
        dir.path(),
        "shop.toml",
        r#"version = 1
name = "shop"

[[connections]]
name = "shop_tw"
kind = "shopify"
direction = "pull"

[connections.config]
shop = "example-tw"
access_token = "shpat_x"
webhook_secrets = "${SYNCHUB_TEST_HOOK_SECRET}"
"#,
    );
    let o = synchub_env(&TestDb::sqlite().url, &["run", "--once", p(&shop)], &env);
    assert_clean_error(
        &o,
        &[
            p(&shop),
            "connections[0].config.webhook_secrets",
            "${SYNCHUB_TEST_HOOK_SECRET}",
            "expected a sequence",
        ],
    );
    assert!(
        !stderr(&o).contains(SECRET),
        "secret printed: {}",
        stderr(&o)
    );

    // GIVEN the secret where a number is expected (a connector setting)
    let woo = write(
        dir.path(),
        "woo.toml",
        r#"version = 1
name = "woo"

[[connections]]
name = "woo_tw"
kind = "woocommerce"
direction = "pull"

[connections.config]
base_url = "https://shop.example"
consumer_key = "ck_x"
consumer_secret = "cs_x"
per_page = "${SYNCHUB_TEST_HOOK_SECRET}"
"#,
    );
    let o = synchub_env(&TestDb::sqlite().url, &["run", "--once", p(&woo)], &env);
    assert_clean_error(&o, &[p(&woo), "connections[0].config.per_page"]);
    assert!(
        !stderr(&o).contains(SECRET),
        "secret printed: {}",
        stderr(&o)
    );

    // GIVEN the secret where the pipeline itself expects a list or a name
    let (dir2, _csv, text) = setup();
    let objects = write(
        dir2.path(),
        "objects.toml",
        &text.replace(
            "objects = [\"contact\"]",
            "objects = \"${SYNCHUB_TEST_HOOK_SECRET}\"",
        ),
    );
    let o = synchub_env(&TestDb::sqlite().url, &["run", "--once", p(&objects)], &env);
    assert_clean_error(&o, &[p(&objects), "connections[0].objects"]);
    assert!(
        !stderr(&o).contains(SECRET),
        "secret printed: {}",
        stderr(&o)
    );
    let direction = write(
        dir2.path(),
        "direction.toml",
        &text.replace(
            "direction = \"pull\"",
            "direction = \"${SYNCHUB_TEST_HOOK_SECRET}\"",
        ),
    );
    let o = synchub_env(
        &TestDb::sqlite().url,
        &["run", "--once", p(&direction)],
        &env,
    );
    assert_clean_error(&o, &[p(&direction), "connections[0].direction"]);
    assert!(
        !stderr(&o).contains(SECRET),
        "secret printed: {}",
        stderr(&o)
    );
}

#[test]
fn a_password_in_the_database_url_query_is_never_printed() {
    let o = synchub(
        "postgres://app@127.0.0.1:1/crm?sslmode=disable&password=hunter2-query",
        &["status"],
    );
    assert_clean_error(&o, &["cannot open database", "127.0.0.1:1", "password=***"]);
    assert!(
        !stderr(&o).contains("hunter2"),
        "password leaked: {}",
        stderr(&o)
    );
}

#[test]
fn credentials_in_a_base_url_never_reach_the_logs() {
    // GIVEN two connections to one store whose base URL carries `user:token@`
    // (the shared quota's credential id is logged when their limits differ)
    // and a third connection that stops the pipeline before any request.
    const TOKEN: &str = "tok-in-url-98765";
    let dir = tempfile::tempdir().unwrap();
    let conn = |name: &str, rate: u32| {
        format!(
            r#"
[[connections]]
name = "{name}"
kind = "woocommerce"
direction = "pull"

[connections.config]
base_url = "http://shopuser:{TOKEN}@127.0.0.1:1"
consumer_key = "ck_x"
consumer_secret = "cs_x"
quota = {{ requests = {rate}, per_secs = 1, burst = {rate} }}
"#
        )
    };
    let text = format!(
        "version = 1\nname = \"w\"\n{}{}\n[[connections]]\nname = \"broken\"\nkind = \"csv\"\ndirection = \"pull\"\n[connections.config]\npath = \"x.csv\"\nmap = {{ a = \"emial\" }}\n",
        conn("woo_a", 5),
        conn("woo_b", 7)
    );
    let pipeline = write(dir.path(), "w.toml", &text);
    // WHEN it runs with debug logging
    let o = synchub(
        &TestDb::sqlite().url,
        &["-vv", "run", "--once", p(&pipeline)],
    );
    let err = stderr(&o);
    // THEN the logs and the error show the connections, never the token.
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("quota already configured differently"),
        "the credential id should have been logged:\n{err}"
    );
    assert!(!err.contains(TOKEN), "token leaked:\n{err}");
}

#[test]
fn a_read_only_sqlite_file_fails_fast_and_is_named() {
    // GIVEN a store whose file is not writable
    let dir = tempfile::tempdir().unwrap();
    let (db, file) = fresh_sqlite(dir.path(), "ro.db");
    assert!(synchub(&db, &["status"]).status.success());
    let mut perms = std::fs::metadata(&file).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&file, perms).unwrap();
    // WHEN a command opens it THEN it fails at once, naming the file.
    let started = Instant::now();
    let o = synchub(&db, &["status"]);
    let took = started.elapsed();
    assert_clean_error(&o, &["database file", p(&file), "is read-only"]);
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}; a read-only file must fail fast"
    );
}

#[test]
fn runs_starting_at_once_on_a_fresh_sqlite_store_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4 {
        // GIVEN no store file yet WHEN four processes open it at once
        let (db, _) = fresh_sqlite(dir.path(), &format!("race{round}.db"));
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_synchub"))
                    .args(["status"])
                    .env("SYNCHUB_DATABASE_URL", &db)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // THEN every one of them migrates or waits for the other and succeeds.
        for child in children {
            let o = child.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", stderr(&o));
        }
    }
}

/// The lines of stderr that start with `error:`.
fn error_lines(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn csv_file_problems_end_in_one_plain_error_line() {
    let (dir, csv, text) = setup();
    let db = TestDb::sqlite();
    let run = |pipeline: &Path| synchub(&db.url, &["run", "--once", p(pipeline)]);

    // GIVEN the file is missing
    let missing = dir.path().join("gone.csv");
    let pipeline = write(
        dir.path(),
        "missing.toml",
        &text.replace(p(&csv), p(&missing)),
    );
    let o = run(&pipeline);
    assert!(!o.status.success());
    let lines = error_lines(&o);
    assert_eq!(lines.len(), 1, "one error line expected:\n{}", stderr(&o));
    assert!(lines[0].contains(p(&missing)), "{lines:?}");
    assert!(lines[0].contains("No such file"), "{lines:?}");
    assert!(
        !stderr(&o).contains('\u{1b}'),
        "no colour codes when stderr is not a terminal:\n{}",
        stderr(&o)
    );

    // GIVEN the file is empty
    let empty = write(dir.path(), "empty.csv", "");
    let pipeline = write(dir.path(), "empty.toml", &text.replace(p(&csv), p(&empty)));
    let o = run(&pipeline);
    assert!(!o.status.success());
    let lines = error_lines(&o);
    assert_eq!(lines.len(), 1, "{}", stderr(&o));
    assert!(
        lines[0].contains(p(&empty)) && lines[0].contains("empty"),
        "{lines:?}"
    );

    // GIVEN the header lacks a mapped column
    let header = write(dir.path(), "header.csv", "id,first_name\n1,Ann\n");
    let pipeline = write(
        dir.path(),
        "header.toml",
        &text.replace(p(&csv), p(&header)),
    );
    let o = run(&pipeline);
    assert!(!o.status.success());
    let lines = error_lines(&o);
    assert_eq!(lines.len(), 1, "{}", stderr(&o));
    assert!(
        lines[0].contains(p(&header)) && lines[0].contains("`birth_date` is not in"),
        "{lines:?}"
    );
}

#[test]
fn a_direction_the_connector_cannot_serve_is_refused() {
    // GIVEN a CSV file (read-only) asked to receive pushes
    let (dir, _csv, text) = setup();
    let (db, db_file) = fresh_sqlite(dir.path(), "store.db");
    for direction in ["push", "two-way"] {
        let bad = write(
            dir.path(),
            "push.toml",
            &text.replace(
                "direction = \"pull\"",
                &format!("direction = \"{direction}\""),
            ),
        );
        // WHEN it is run THEN it is refused instead of doing nothing and exiting 0
        let o = synchub(&db, &["run", "--once", p(&bad)]);
        assert_clean_error(
            &o,
            &[
                p(&bad),
                "connections[0].direction",
                "cannot write contact",
                "pull",
            ],
        );
        assert!(!db_file.exists());
    }
}
