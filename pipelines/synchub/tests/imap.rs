//! `synchub run` with a `kind = "imap"` connection against the real Dovecot
//! of `deploy/peers/dovecot.sh` (127.0.0.1:10143, user `grace`).
//!
//! GIVEN 30 messages in INBOX and 5 in Sent
//! WHEN the pipeline runs twice
//! THEN the first run creates 35 email activities and the second reads none;
//! AND a wrong password fails the run with one error naming user and host,
//!     and the password appears nowhere in the output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use synchub_imap::client::{Endpoint, Security, Session};
use synchub_testkit::TestDb;

const PORT: u16 = 10143;
const USER: &str = "grace";
const PASSWORD: &str = "secret-grace";

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
    s.login(USER, PASSWORD)
        .await
        .expect("test user (deploy/peers/dovecot.sh)");
    for folder in ["INBOX", "Sent"] {
        s.command(&format!("SELECT {folder}")).await.unwrap();
        s.command("UID STORE 1:* +FLAGS.SILENT (\\Deleted)")
            .await
            .unwrap();
        s.command("EXPUNGE").await.unwrap();
    }
    let msg = |i: usize| {
        format!(
            "From: Customer {i} <Customer{i}@Example.com>\r\nTo: {USER}@synchub.test\r\nSubject: =?UTF-8?B?6KiC5Zau?= {i}\r\nDate: Mon, 1 Jan 2024 09:00:00 +0000\r\nMessage-ID: <bin{i}@gen.synchub.test>\r\n\r\nHello {i}\r\n"
        )
        .into_bytes()
    };
    s.append("INBOX", &(0..30).map(msg).collect::<Vec<_>>())
        .await
        .unwrap();
    s.append("Sent", &(30..35).map(msg).collect::<Vec<_>>())
        .await
        .unwrap();
    s.command("LOGOUT").await.unwrap();
}

fn pipeline(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("mail.toml");
    std::fs::write(
        &p,
        format!(
            r#"version = 1
name = "mail"

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
page_size = 10
"#
        ),
    )
    .unwrap();
    p
}

fn run(db: &str, pipeline: &Path, password: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["run", "--once", "--report", "json"])
        .arg(pipeline)
        .env("SYNCHUB_DATABASE_URL", db)
        .env("SYNCHUB_TEST_IMAP_PASSWORD", password)
        .output()
        .expect("run synchub")
}

fn report(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "synchub run failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = text.find('{').expect("a json report");
    serde_json::from_str(text[start..].trim()).expect("the report is json")
}

#[tokio::test]
async fn synchub_run_reads_a_mailbox_then_nothing() {
    fill().await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let p = pipeline(dir.path());

    let first = report(&run(&db.url, &p, PASSWORD));
    let s = &first["streams"]["mailbox.activity"];
    assert_eq!(s["created"], 35, "{first}");
    assert_eq!(s["read"], 35, "{first}");

    let second = report(&run(&db.url, &p, PASSWORD));
    assert_eq!(second["streams"]["mailbox.activity"]["read"], 0, "{second}");

    let bad = run(&db.url, &p, "wrong-password-1234");
    assert!(!bad.status.success(), "a refused login fails the run");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(
        all.contains("`grace`") && all.contains("127.0.0.1:10143"),
        "{all}"
    );
    assert!(!all.contains("wrong-password-1234"), "{all}");
}
