//! SIGKILL in the middle of a mailbox, then resume (issue 15), through the
//! `synchub` binary against the real Dovecot of `deploy/peers/dovecot.sh`
//! (user `grace`, folders `MailKill` and `MailKill2`) into PostgreSQL.
//!
//! GIVEN 300 messages in one folder and 100 in another, 50 of them copies
//!       of messages of the first (the same Message-ID), read in pages of 10
//! WHEN `synchub run` is SIGKILLed at 8 points spread over both folders and
//!      re-run each time, then run to the end
//! THEN the store holds exactly one live activity per distinct message
//!      (350): none lost, none doubled, each with its own subject, and no
//!      dead letter; a run after that reads nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use synchub_core::model::Record;
use synchub_core::ObjectKind;
use synchub_imap::client::{Endpoint, Security, Session};
use synchub_testkit::process::kill_at_page;
use synchub_testkit::TestDb;

const PORT: u16 = 10143;
const USER: &str = "grace";
const PASSWORD: &str = "secret-grace";
const FIRST: usize = 300;
const SECOND: usize = 100;
const SHARED: usize = 50;
const PAGE: usize = 10;
const KILLS: i64 = 8;

fn message(i: usize) -> Vec<u8> {
    format!(
        "From: =?UTF-8?B?6Zmz5aSn5paH?= <Customer.{}@Example.com.HK>\r\nTo: grace@synchub.test\r\nSubject: kill {i}\r\nDate: Mon, 1 Jan 2024 09:00:00 +0000\r\nMessage-ID: <kill{i}@gen.synchub.test>\r\n\r\nbody {i}\r\n",
        i % 17
    )
    .into_bytes()
}

async fn fill() {
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port: PORT,
        security: Security::Plain,
        timeout: Duration::from_secs(60),
    };
    let mut s = Session::connect(&ep).await.unwrap_or_else(|e| {
        panic!(
            "Dovecot is not answering on 127.0.0.1:{PORT} ({e}): run deploy/peers/dovecot.sh first"
        )
    });
    s.login(USER, PASSWORD).await.unwrap();
    for folder in ["MailKill", "MailKill2"] {
        let _ = s.command(&format!("DELETE {folder}")).await;
        s.command(&format!("CREATE {folder}")).await.unwrap();
    }
    s.append("MailKill", &(0..FIRST).map(message).collect::<Vec<_>>())
        .await
        .unwrap();
    // The second folder: 50 copies of the first's last messages, 50 new ones.
    let second: Vec<Vec<u8>> = (FIRST - SHARED..FIRST - SHARED + SECOND)
        .map(message)
        .collect();
    s.append("MailKill2", &second).await.unwrap();
    s.command("LOGOUT").await.unwrap();
}

fn pipeline(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("kill.toml");
    std::fs::write(
        &p,
        format!(
            r#"version = 1
name = "kill"

[[connections]]
name = "mailbox"
kind = "imap"
direction = "pull"
objects = ["activity"]

[connections.config]
host = "127.0.0.1"
port = {PORT}
user = "{USER}"
password = "${{SYNCHUB_TEST_IMAP_PASSWORD}}"
tls = false
folders = ["MailKill", "MailKill2"]
page_size = {PAGE}
"#
        ),
    )
    .unwrap();
    p
}

fn spawn_run(db: &str, pipeline: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["run", "--once", "--report", "json"])
        .arg(pipeline)
        .env("SYNCHUB_DATABASE_URL", db)
        .env("SYNCHUB_TEST_IMAP_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn synchub")
}

fn run_to_end(db: &str, pipeline: &Path) -> serde_json::Value {
    let out = spawn_run(db, pipeline).wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "synchub run failed: {text}");
    let start = text.find('{').expect("a json report");
    serde_json::from_str(text[start..].trim()).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_mailbox_then_resume_loses_and_doubles_nothing() {
    fill().await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let pages = ((FIRST + SECOND) / PAGE) as i64;

    let mut kills = 0;
    for k in 1..=KILLS {
        let target = k * pages / (KILLS + 1);
        let mut child = spawn_run(&db.url, &p);
        if kill_at_page(
            &mut child,
            &store,
            ("mailbox", ObjectKind::Activity),
            target,
            Duration::from_secs(120),
        )
        .await
        {
            kills += 1;
        }
    }
    assert!(kills >= 6, "only {kills} runs were killed mid-way");
    run_to_end(&db.url, &p);

    let live = store.records(ObjectKind::Activity, false).await.unwrap();
    let expected: BTreeSet<String> = (0..FIRST - SHARED + SECOND)
        .map(|i| format!("<kill{i}@gen.synchub.test>"))
        .collect();
    let mut seen = BTreeSet::new();
    for r in &live {
        let Record::Activity(a) = &r.record else {
            panic!("not an activity")
        };
        let mid = a.message_id.clone().unwrap();
        let i: usize = mid
            .trim_start_matches("<kill")
            .split('@')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(a.subject.as_deref(), Some(format!("kill {i}").as_str()));
        assert!(seen.insert(mid.clone()), "{mid} stored twice");
    }
    let lost: Vec<_> = expected.difference(&seen).take(5).collect();
    assert!(lost.is_empty(), "lost {lost:?}");
    assert_eq!(live.len(), expected.len(), "no extra activity");
    let all = store.records(ObjectKind::Activity, true).await.unwrap();
    assert_eq!(all.len(), expected.len(), "nothing deleted either");
    assert!(store.dead_letters(10).await.unwrap().is_empty());

    let again = run_to_end(&db.url, &p);
    assert_eq!(again["streams"]["mailbox.activity"]["read"], 0, "{again}");
}
