//! `deploy/bench.sh imap`: a mailbox read from a real Dovecot into
//! PostgreSQL by the release `synchub run --once`, in a child process.
//!
//! The bench starts its own Dovecot (`deploy/peers/dovecot/dovecot-up.sh`,
//! 127.0.0.1:10146, user `bench`, under /tmp) so it never touches the test
//! server, writes the messages as Maildir files (as a delivery agent would:
//! APPENDing 100,000 messages costs minutes and measures Dovecot, not
//! synchub), lets Dovecot index the folder with one SELECT, then times:
//! the first sync (every message becomes an activity, headers plus a 2 KB
//! snippet fetched) and a no-change incremental pass over the same folder.
//! Peak RSS is the child's high-water mark (VmHWM). The Dovecot instance
//! and its mail are removed at the end.
//!
//! `SYNCHUB_IMAP_BENCH_SIZES=10000,100000` (default) chooses the sizes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sqlx::Connection as _;
use synchub_imap::client::{Endpoint, Security, Session};

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PORT: u16 = 10146;
const USER: &str = "bench";
const PASSWORD: &str = "secret-bench";

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn up() -> bool {
    std::net::TcpStream::connect(("127.0.0.1", PORT)).is_ok()
}

fn dovecot_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/synchub-bench-dovecot-{PORT}"))
}

/// Starts the bench's own Dovecot.
fn start_dovecot() {
    if up() {
        // Left by an interrupted bench run (the pid file is ours).
        stop_dovecot();
    }
    assert!(!up(), "something else listens on 127.0.0.1:{PORT}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/peers");
    let have = Command::new("sh")
        .args(["-c", "command -v dovecot"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        // Installs dovecot-imapd (root) and starts the test server; ours is another instance.
        let st = Command::new("bash")
            .arg(root.join("dovecot.sh"))
            .status()
            .unwrap();
        assert!(st.success(), "deploy/peers/dovecot.sh failed");
    }
    let st = Command::new("bash")
        .arg(root.join("dovecot/dovecot-up.sh"))
        .arg(dovecot_dir())
        .arg(PORT.to_string())
        .args([USER, PASSWORD])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "dovecot-up.sh failed");
}

fn stop_dovecot() {
    let dir = dovecot_dir();
    if let Ok(pid) = std::fs::read_to_string(dir.join("run/master.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    for _ in 0..100 {
        if !up() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// One generated message: CJK subjects and names in RFC 2047 (UTF-8 and
/// Big5), threads of five, a plain-text body.
fn message(i: usize, big5_names: &[String]) -> Vec<u8> {
    let who = i % 2000;
    let from = if i.is_multiple_of(3) {
        format!(
            "{} <Customer.{who}@Example.com.TW>",
            big5_names[who % big5_names.len()]
        )
    } else {
        format!(
            "=?UTF-8?B?{}?= <customer.{who}@example.com.tw>",
            b64(&format!("客戶{who}"))
        )
    };
    let root = i - i % 5;
    let refs = if i == root {
        String::new()
    } else {
        format!("In-Reply-To: <bench{}@gen.synchub.test>\r\nReferences: <bench{root}@gen.synchub.test>\r\n", i - 1)
    };
    format!(
        "Return-Path: <customer.{who}@example.com.tw>\r\nFrom: {from}\r\nTo: Sales <sales@synchub.test>\r\nCc: billing@synchub.test\r\nSubject: =?UTF-8?B?{}?=\r\nDate: Mon, 1 Jan 2024 {:02}:{:02}:{:02} +0800\r\nMessage-ID: <bench{i}@gen.synchub.test>\r\n{refs}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n您好，附上第 {i} 號報價單，請查收。\r\nThe quote for order {i} is attached; prices are valid for 30 days.\r\n\r\n-- \r\nSales team\r\n",
        b64(&format!("報價單 Q-{:06}", root)),
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60
    )
    .into_bytes()
}

/// Writes `n` messages into the Maildir folder `folder` of the bench user.
fn write_maildir(folder: &str, n: usize) {
    let big5_names: Vec<String> = ["陳大文", "林美玲", "王小明", "張志強", "李淑芬"]
        .iter()
        .map(|name| {
            let (bytes, _, _) = encoding_rs::BIG5.encode(name);
            format!(
                "=?Big5?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(&bytes)
            )
        })
        .collect();
    let dir = dovecot_dir().join(format!("mail/{USER}/Maildir/.{folder}"));
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::File::create(dir.join("maildirfolder")).unwrap();
    for i in 0..n {
        let body = message(i, &big5_names);
        let name = format!(
            "{}.M{i}P1.bench,S={}:2,S",
            1_704_067_200 + i as u64,
            body.len()
        );
        let mut f = std::fs::File::create(dir.join("cur").join(name)).unwrap();
        f.write_all(&body).unwrap();
    }
    let st = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(dovecot_dir().join(format!("mail/{USER}")))
        .status()
        .unwrap();
    assert!(st.success());
}

/// Lets Dovecot index the new folder (the state of a mailbox whose mail
/// was delivered over time); returns the message count SELECT reports.
async fn index_folder(folder: &str) -> String {
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port: PORT,
        security: Security::Plain,
        timeout: Duration::from_secs(600),
    };
    let mut s = Session::connect(&ep).await.unwrap();
    s.login(USER, PASSWORD).await.unwrap();
    s.command("ENABLE QRESYNC").await.unwrap();
    let r = s.command(&format!("SELECT {folder}")).await.unwrap();
    s.command("LOGOUT").await.unwrap();
    r.untagged
        .iter()
        .map(|t| format!("{t:?}"))
        .find(|t| t.contains("EXISTS"))
        .unwrap_or_default()
}

async fn fresh_database(name: &str) -> String {
    let mut admin = sqlx::PgConnection::connect(ADMIN)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

async fn drop_database(name: &str) {
    if let Ok(mut admin) = sqlx::PgConnection::connect(ADMIN).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

/// One `synchub run --once`: (seconds, peak RSS in KB, the JSON report).
fn timed_run(url: &str, pipeline: &Path) -> (f64, u64, serde_json::Value) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["run", "--once", "--report", "json"])
        .arg(pipeline)
        .env("SYNCHUB_DATABASE_URL", url)
        .env("SYNCHUB_BENCH_IMAP_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn synchub");
    let pid = child.id();
    let mut peak_kb = 0;
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let status = loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = started.elapsed().as_secs_f64();
    out.push_str(&reader.join().unwrap());
    assert!(status.success(), "synchub run failed: {out}");
    let start = out.find('{').expect("a json report");
    (
        secs,
        peak_kb,
        serde_json::from_str(out[start..].trim()).expect("json"),
    )
}

async fn run_once(n: usize, dir: &Path) {
    let folder = format!("Bench{n}");
    write_maildir(&folder, n);
    let exists = index_folder(&folder).await;
    assert!(exists.contains(&n.to_string()), "{folder}: {exists}");
    let db_name = format!("synchub_bench_imap_{n}");
    let url = fresh_database(&db_name).await;
    let pipeline = dir.join(format!("imap-{n}.toml"));
    std::fs::write(
        &pipeline,
        format!(
            r#"version = 1
name = "bench"

[[connections]]
name = "mailbox"
kind = "imap"
direction = "pull"
objects = ["activity"]

[connections.config]
host = "127.0.0.1"
port = {PORT}
user = "{USER}"
password = "${{SYNCHUB_BENCH_IMAP_PASSWORD}}"
tls = false
folders = ["{folder}"]
page_size = 1000
timeout_secs = 600
"#
        ),
    )
    .unwrap();

    let (secs, peak_kb, report) = timed_run(&url, &pipeline);
    let s = &report["streams"]["mailbox.activity"];
    assert_eq!(s["created"], n, "{report}");
    println!(
        "BENCH name=imap_first_sync_postgres_{n} records={n} seconds={secs:.2} rate={:.0} peak_rss_mb={:.1}",
        n as f64 / secs,
        peak_kb as f64 / 1024.0
    );
    let (secs, peak_kb, report) = timed_run(&url, &pipeline);
    assert_eq!(report["streams"]["mailbox.activity"]["read"], 0, "{report}");
    println!(
        "BENCH name=imap_no_change_pass_postgres_{n} records=0 seconds={secs:.3} rate=0 peak_rss_mb={:.1}",
        peak_kb as f64 / 1024.0
    );
    drop_database(&db_name).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes: Vec<usize> = std::env::var("SYNCHUB_IMAP_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    start_dovecot();
    let dir = tempfile::tempdir().unwrap();
    for n in sizes {
        run_once(n, dir.path()).await;
    }
    stop_dovecot();
}
