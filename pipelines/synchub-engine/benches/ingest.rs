//! Ingest throughput: contacts from an in-memory generator source through the
//! whole engine (normalize, match keys, identity map, snapshot, cursor; one
//! transaction per 1,000-record page) into SQLite and PostgreSQL.
//!
//! Each (backend, size) runs in a child process so peak RSS is its own.
//! `SYNCHUB_BENCH_SIZES=100000,1000000` and `SYNCHUB_BENCH_BACKENDS=sqlite,postgres`
//! choose what runs. Prints one `BENCH` line per run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::json;
use sqlx::Connection as _;
use synchub_core::connector::ObjectSpec;
use synchub_core::model::Contact;
use synchub_core::{Connector, ConnectorError, Cursor, ObjectKind, Page, Record, RemoteRecord};
use synchub_engine::{Connection, Direction, Engine, RunOptions};

struct Generator {
    total: u64,
    page: u64,
}

#[async_trait]
impl Connector for Generator {
    fn kind(&self) -> &'static str {
        "generator"
    }
    fn objects(&self) -> Vec<ObjectSpec> {
        vec![ObjectSpec {
            kind: ObjectKind::Contact,
            can_read: true,
            incremental: true,
            can_write: false,
        }]
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn pull(&self, _: ObjectKind, from: Option<&Cursor>) -> Result<Page, ConnectorError> {
        let start = from
            .and_then(|c| c.0.get("offset"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let end = (start + self.page).min(self.total);
        let records = (start..end)
            .map(|i| RemoteRecord {
                external_id: format!("g{i}"),
                version: None,
                updated_at: None,
                deleted: false,
                record: Some(Record::Contact(Contact {
                    given_name: Some(["大文", "美玲", "Wei", "Ana"][(i % 4) as usize].into()),
                    family_name: Some(["陳", "林", "Wang", "García"][(i % 4) as usize].into()),
                    emails: vec![format!("person{i}@example.com")],
                    // Unique for the first 100M records (the mobile block
                    // repeats every 100,000 otherwise, and equal phones with
                    // equal names are rightly matched).
                    phones: vec![format!(
                        "+886 9{:02} {:03} {:03}",
                        i % 100,
                        (i / 100_000) % 1000,
                        (i / 100) % 1000
                    )],
                    company: Some(format!("Company {} Ltd", i % 1000)),
                    ..Contact::default()
                })),
                raw: json!(null),
            })
            .collect();
        Ok(Page {
            records,
            rejected: vec![],
            next: Some(Cursor(json!({ "offset": end }))),
            done: end >= self.total,
        })
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn child(backend: &str, n: u64) {
    let dir = tempfile_dir();
    let url = match backend {
        "postgres" => {
            let admin = "postgres://postgres@127.0.0.1:5432/postgres";
            let name = format!("synchub_bench_{}", std::process::id());
            let mut c = sqlx::postgres::PgConnection::connect(admin)
                .await
                .expect("postgres");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .unwrap();
            format!("postgres://postgres@127.0.0.1:5432/{name}")
        }
        _ => format!("sqlite://{}/bench.db", dir.display()),
    };
    let store = synchub_store::Store::connect(&url).await.expect("store");
    let probe = store.clone();
    let conn = Connection {
        name: "gen".into(),
        connector: Arc::new(Generator {
            total: n,
            page: 1000,
        }),
        direction: Direction::Pull,
        objects: vec![ObjectKind::Contact],
        region: Some("TW".into()),
    };
    let engine = Engine::new(
        store,
        "bench",
        vec![conn],
        Default::default(),
        BTreeMap::new(),
    );
    let started = Instant::now();
    let report = engine.run(&RunOptions::default()).await.expect("run");
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self");
    assert_eq!(report.total().created, n, "{}", report.to_table());
    let pg = if backend == "postgres" {
        format!(" pg_backend_cpu_s={:.1}", pg_backend_cpu(&probe).await)
    } else {
        String::new()
    };
    println!(
        "BENCH name=ingest_{backend}_{n} records={n} seconds={secs:.2} rate={:.0} peak_rss_mb={:.1} \
         cpu_s={cpu:.1}{pg} load_avg={}",
        n as f64 / secs,
        peak_rss_mb(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
    if backend == "postgres" {
        probe.close().await;
        let admin = "postgres://postgres@127.0.0.1:5432/postgres";
        if let Ok(mut c) = sqlx::postgres::PgConnection::connect(admin).await {
            let name = format!("synchub_bench_{}", std::process::id());
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut c)
                .await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// User + system CPU seconds of a process, from /proc (clock ticks of
/// 1/100 s, the Linux default).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state;
    // utime and stime are fields 14 and 15 of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of the PostgreSQL backends serving the bench's database.
async fn pg_backend_cpu(store: &synchub_store::Store) -> f64 {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT CAST(pid AS BIGINT) AS pid FROM pg_stat_activity WHERE datname = current_database()",
    )
    .fetch_all(store.pool())
    .await
    .unwrap_or_default();
    rows.iter()
        .filter_map(|r| r.try_get::<i64, _>("pid").ok())
        .map(|pid| cpu_seconds(&pid.to_string()))
        .sum()
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("synchub-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn main() {
    if let Ok(spec) = std::env::var("SYNCHUB_BENCH_CHILD") {
        let (backend, n) = spec.split_once(':').unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(child(backend, n.parse().unwrap()));
        return;
    }
    let sizes = std::env::var("SYNCHUB_BENCH_SIZES").unwrap_or_else(|_| "100000,1000000".into());
    let backends =
        std::env::var("SYNCHUB_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let exe = std::env::current_exe().unwrap();
    for backend in backends.split(',') {
        for n in sizes.split(',') {
            let status = std::process::Command::new(&exe)
                .env("SYNCHUB_BENCH_CHILD", format!("{backend}:{n}"))
                .status()
                .unwrap();
            assert!(status.success(), "bench {backend}:{n} failed");
        }
    }
}
