//! `synchub migrate csv` end to end into PostgreSQL: a generated legacy
//! contacts export (about 5 % duplicates, 60 % CJK names, +886/+852/+86
//! phones in local formats, two custom columns) read, decoded, mapped,
//! normalized, matched against what the CRM holds (duplicates merged), and
//! written one transaction per page, by the release binary in a child
//! process. Peak RSS is the child's high-water mark (VmHWM).
//!
//! `SYNCHUB_MIGRATE_BENCH_SIZES=100000,1000000` (default) chooses the sizes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection as _;

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

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

async fn run_once(rows: u64, dir: &Path) {
    let csv = dir.join(format!("legacy-{rows}.csv"));
    let sample = synchub_legacy::write_sample_contacts_csv(&csv, rows, 42).unwrap();
    let db_name = format!("synchub_bench_migrate_{rows}");
    let url = fresh_database(&db_name).await;

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["migrate", "csv"])
        .arg(&csv)
        .env("SYNCHUB_DATABASE_URL", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn synchub");
    let pid = child.id();
    let mut peak_kb = 0;
    let status = loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = started.elapsed().as_secs_f64();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "migrate failed: {out}");
    // "read N rows: C new records, M duplicates merged into existing contacts, ..."
    let summary = out
        .lines()
        .find(|l| l.starts_with("read "))
        .unwrap_or_default()
        .to_string();
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    let (read, created, merged) = (numbers[0], numbers[1], numbers[2]);
    assert_eq!(read, rows, "{summary}");
    // "probabilistic matching over N contacts (P candidate pairs, S s): M merged …, Q new pairs …"
    let fuzzy = out
        .lines()
        .find(|l| l.starts_with("probabilistic matching"))
        .unwrap_or_default()
        .to_string();
    let f: Vec<f64> = fuzzy
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|s| s.parse().ok())
        .collect();
    let fuzzy_fields = match f.as_slice() {
        [_, pairs, secs, merged, queued, ..] => format!(
            "fuzzy_seconds={secs:.1} fuzzy_candidate_pairs={pairs} fuzzy_merged={merged} review_queued={queued}"
        ),
        _ => "fuzzy=missing".into(),
    };
    println!(
        "BENCH name=migrate_csv_postgres_{rows} records={rows} seconds={secs:.2} rate={:.0} peak_rss_mb={:.1} created={created} exact_merged={merged} generated_duplicates={} {fuzzy_fields}",
        rows as f64 / secs,
        peak_kb as f64 / 1024.0,
        sample.duplicates
    );
    drop_database(&db_name).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes: Vec<u64> = std::env::var("SYNCHUB_MIGRATE_BENCH_SIZES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for rows in sizes {
        run_once(rows, dir.path()).await;
    }
}
