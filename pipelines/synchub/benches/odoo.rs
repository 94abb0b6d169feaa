//! Issue 17: 50,000 partners pulled from the real Odoo 11 of
//! `deploy/peers/odoo.sh` into PostgreSQL by the release binary
//! (`synchub run --once`, a `kind = "odoo"` pipeline reading companies and
//! contacts, 1,000 per request), in a child process. Peak RSS is the
//! child's high-water mark (VmHWM).
//!
//! The partners live in their own Odoo database, `synchub_bench`, a copy of
//! the test database made by Odoo's own `db.duplicate_database`, so the
//! tests never read them. Creating 50,000 partners through the ORM takes
//! too long here (`res.partner.load` ran at ≈ 21 rows/s on this machine,
//! and Odoo 11's `create` takes one record per call), so they are written
//! with SQL into that database: ONE company and ONE contact are created
//! through the ORM (`execute_kw create`, so every stored column has the
//! value Odoo computes), and the rest are copies of those two rows with
//! their own name, display name, email, phone, `ref`, parent and
//! commercial partner (the stored computed fields that depend on them).
//! This is not an Odoo-documented import path; it is used only for this
//! benchmark's data. The seed is kept between runs (found by `ref`).
//!
//! `SYNCHUB_ODOO_BENCH_PARTNERS` (default 50000) chooses the size; one
//! partner in ten is a company, the others its contacts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection as _;

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const ODOO: &str = "http://127.0.0.1:18069";
const ODOO_PG: &str = "postgres://odoo:odoo@127.0.0.1:18433";
const BENCH_DB: &str = "synchub_bench";

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

async fn odoo(http: &reqwest::Client, service: &str, method: &str, args: Value) -> Value {
    let answer: Value = http
        .post(format!("{ODOO}/jsonrpc"))
        .json(&json!({"jsonrpc": "2.0", "method": "call", "id": 1,
                      "params": {"service": service, "method": method, "args": args}}))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the real Odoo is not running on {ODOO} ({e}): start it with deploy/peers/odoo.sh"
            )
        })
        .json()
        .await
        .expect("json");
    assert!(answer.get("error").is_none(), "{answer}");
    answer["result"].clone()
}

/// Makes `synchub_bench` hold `n` bench partners (n/10 companies, the rest
/// their contacts); returns (companies, contacts) it holds in all.
async fn seed(http: &reqwest::Client, n: i64) -> (i64, i64) {
    let dbs = odoo(http, "db", "list", json!([])).await;
    let exists = dbs
        .as_array()
        .is_some_and(|a| a.iter().any(|d| d == BENCH_DB));
    let pg_url = format!("{ODOO_PG}/{BENCH_DB}");
    if exists {
        let mut pg = sqlx::PgConnection::connect(&pg_url).await.unwrap();
        let have: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM res_partner WHERE ref LIKE 'bench-%'")
                .fetch_one(&mut pg)
                .await
                .unwrap();
        if have != n {
            pg.close().await.ok();
            odoo(http, "db", "drop", json!(["master-pass", BENCH_DB])).await;
        }
    }
    let dbs = odoo(http, "db", "list", json!([])).await;
    if !dbs
        .as_array()
        .is_some_and(|a| a.iter().any(|d| d == BENCH_DB))
    {
        let started = Instant::now();
        odoo(
            http,
            "db",
            "duplicate_database",
            json!(["master-pass", "odoo", BENCH_DB]),
        )
        .await;
        let uid = odoo(
            http,
            "common",
            "authenticate",
            json!([BENCH_DB, "admin", "admin", {}]),
        )
        .await;
        let create = |vals: Value| {
            let uid = uid.clone();
            async move {
                odoo(
                    http,
                    "object",
                    "execute_kw",
                    json!([BENCH_DB, uid, "admin", "res.partner", "create", [vals]]),
                )
                .await
                .as_i64()
                .unwrap()
            }
        };
        let company = create(json!({"name": "台北茶行 bench-c-0", "is_company": true,
            "ref": "bench-c-0", "email": "bench-c-0@example.com.tw", "phone": "+886 2 2345 0000"}))
        .await;
        let contact = create(json!({"name": "李小龍 bench-p-0", "parent_id": company,
            "ref": "bench-p-0", "email": "bench-p-0@example.com.tw", "phone": "+886 912 000 000"}))
        .await;
        let mut pg = sqlx::PgConnection::connect(&pg_url).await.unwrap();
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_name = 'res_partner' AND column_name <> 'id' ORDER BY ordinal_position",
        )
        .fetch_all(&mut pg)
        .await
        .unwrap();
        let companies = n / 10;
        let contacts = n - companies;
        // Companies 1..companies-1 copy the template company.
        let select = |overrides: &[(&str, &str)]| {
            columns
                .iter()
                .map(|c| {
                    overrides
                        .iter()
                        .find(|(k, _)| *k == c.as_str())
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_else(|| format!("t.{c}"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let list = columns.join(", ");
        let company_sql = format!(
            "INSERT INTO res_partner ({list}) SELECT {} FROM res_partner t, generate_series(1, {}) g \
             WHERE t.id = {company}",
            select(&[
                ("name", "'台北茶行 bench-c-' || g"),
                ("display_name", "'台北茶行 bench-c-' || g"),
                ("ref", "'bench-c-' || g"),
                ("email", "'bench-c-' || g || '@example.com.tw'"),
                ("phone", "'+886 2 2345 ' || lpad((g % 10000)::text, 4, '0')"),
                ("commercial_company_name", "'台北茶行 bench-c-' || g"),
            ]),
            companies - 1
        );
        sqlx::query(&company_sql).execute(&mut pg).await.unwrap();
        sqlx::query(
            "UPDATE res_partner SET commercial_partner_id = id \
             WHERE ref LIKE 'bench-c-%' AND ref <> 'bench-c-0'",
        )
        .execute(&mut pg)
        .await
        .unwrap();
        // Contacts 1..contacts-1 copy the template contact, each under
        // company g % companies.
        let contact_sql = format!(
            "INSERT INTO res_partner ({list}) SELECT {} FROM res_partner t, generate_series(1, {}) g \
             JOIN res_partner c ON c.ref = 'bench-c-' || (g % {companies}) \
             WHERE t.id = {contact}",
            select(&[
                ("name", "'李小龍 bench-p-' || g"),
                ("display_name", "c.name || ', 李小龍 bench-p-' || g"),
                ("ref", "'bench-p-' || g"),
                ("email", "'bench-p-' || g || '@example.com.tw'"),
                ("phone", "'+886 912 ' || lpad((g % 1000000)::text, 6, '0')"),
                ("parent_id", "c.id"),
                ("commercial_partner_id", "c.id"),
                ("commercial_company_name", "c.name"),
            ]),
            contacts - 1
        );
        sqlx::query(&contact_sql).execute(&mut pg).await.unwrap();
        sqlx::query("ANALYZE res_partner")
            .execute(&mut pg)
            .await
            .unwrap();
        pg.close().await.ok();
        eprintln!(
            "seeded {n} partners into Odoo database {BENCH_DB} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    // What an Odoo read returns (the ORM's view, not the table's).
    let uid = odoo(
        http,
        "common",
        "authenticate",
        json!([BENCH_DB, "admin", "admin", {}]),
    )
    .await;
    let count = |domain: Value| {
        let uid = uid.clone();
        async move {
            odoo(
                http,
                "object",
                "execute_kw",
                json!([
                    BENCH_DB,
                    uid,
                    "admin",
                    "res.partner",
                    "search_count",
                    [domain]
                ]),
            )
            .await
            .as_i64()
            .unwrap()
        }
    };
    (
        count(json!([["is_company", "=", true]])).await,
        count(json!([["is_company", "=", false]])).await,
    )
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: i64 = std::env::var("SYNCHUB_ODOO_BENCH_PARTNERS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(50_000);
    let http = reqwest::Client::new();
    let (companies, contacts) = seed(&http, n).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("odoo-bench.toml");
    std::fs::write(
        &file,
        format!(
            r#"version = 1
name = "odoo-bench"
region = "TW"

[[connections]]
name = "odoo"
kind = "odoo"
direction = "pull"
objects = ["company", "contact"]

[connections.config]
url = "{ODOO}"
database = "{BENCH_DB}"
login = "admin"
password = "admin"
page_size = 1000
"#
        ),
    )
    .unwrap();
    let store_db = "synchub_bench_odoo_pull";
    let url = fresh_database(store_db).await;
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["run", "--once", "--report", "json"])
        .arg(&file)
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
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = started.elapsed().as_secs_f64();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "run failed: {out}");
    let report: Value = serde_json::from_str(out.trim()).expect("a JSON report");
    let n_of = |stream: &str, k: &str| report["streams"][stream][k].as_u64().unwrap_or(0);
    let read = n_of("odoo.company", "read") + n_of("odoo.contact", "read");
    let created = n_of("odoo.company", "created") + n_of("odoo.contact", "created");
    assert_eq!(
        read as i64,
        companies + contacts,
        "every partner Odoo returns is read once: {report}"
    );
    let mut store = sqlx::PgConnection::connect(&url).await.unwrap();
    let linked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM id_link WHERE connection = 'odoo'")
        .fetch_one(&mut store)
        .await
        .unwrap();
    store.close().await.ok();
    println!(
        "BENCH name=odoo_pull_postgres_{n} records={read} seconds={secs:.2} rate={:.0} peak_rss_mb={:.1} companies={companies} contacts={contacts} created={created} linked={linked}",
        read as f64 / secs,
        peak_kb as f64 / 1024.0,
    );
    drop_database(store_db).await;
}
