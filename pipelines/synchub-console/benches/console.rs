//! The console's pages on a store of a million contacts (issue 19: under
//! 100 ms), over real HTTP, on PostgreSQL.
//!
//! A fresh database (migrated, so with the search indexes of migration
//! 0010) gets 陳大文 through the sync engine (two shops, an order in each,
//! his phone written `0932-111-222`), then a crowd of N contacts (Chinese
//! names in traditional and simplified script, Latin names; each with an
//! email, a phone, its exact-match keys and a link to a shop) loaded with
//! `INSERT … SELECT FROM UNNEST` in batches, the search indexes dropped
//! for the load and rebuilt from their own definitions afterwards. The
//! console is then served on a loopback port and each page asked for
//! [`ROUNDS`] times in a row by a client keeping the session cookie.
//!
//! Prints `BENCH console_load …` (load and index times) and one
//! `BENCH console page=… p50_ms=… p95_ms=…` line per page.
//! `CONSOLE_BENCH_CONTACTS` changes N (default 1,000,000).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use serde_json::{json, Value};
use sqlx::Connection as _;
use synchub_console::{Console, ConsoleConfig};
use synchub_core::merge::MergePolicy;
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_store::users::Role;
use synchub_testkit::data::Lcg;
use synchub_testkit::{MemorySystem, TestDb};

const ROUNDS: usize = 40;
const WARM_UP: usize = 3;
const BATCH: usize = 20_000;
const PASSWORD: &str = "bench password 1234";

const FAMILY_HANT: &[&str] = &[
    "陳", "林", "黃", "張", "李", "王", "吳", "劉", "蔡", "楊", "許", "鄭", "謝", "郭", "洪", "曾",
    "邱", "廖", "賴", "周", "徐", "蘇", "葉", "莊", "呂", "江", "何", "蕭", "羅", "高",
];
const FAMILY_HANS: &[&str] = &[
    "陈", "林", "黄", "张", "李", "王", "吴", "刘", "蔡", "杨", "许", "郑", "谢", "郭", "赵", "孙",
];
const GIVEN_CHARS: &[&str] = &[
    "大", "小", "志", "明", "美", "玲", "家", "豪", "建", "宏", "俊", "傑", "淑", "芬", "雅", "婷",
    "宗", "翰", "怡", "君", "冠", "宇", "文", "華", "偉", "強", "國", "輝", "珍", "娟", "萍", "龍",
    "安", "平", "德", "成", "山", "海", "雲", "麗",
];
const LATIN_GIVEN: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Susan",
    "Richard",
    "Jessica",
    "Joseph",
    "Sarah",
    "Thomas",
    "Karen",
    "Wing",
    "Ka Ming",
    "Siu Fung",
    "Mei Ling",
];
const LATIN_FAMILY: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Moore",
    "Jackson",
    "Lee",
    "Wong",
    "Chan",
    "Cheung",
    "Lau",
    "Ng",
    "Ho",
    "Tsang",
    "Leung",
];

fn pick<'a>(rng: &mut Lcg, from: &[&'a str]) -> &'a str {
    from[usize::try_from(rng.below(from.len() as u64)).unwrap()]
}

fn record(kind: ObjectKind, fields: Value) -> Record {
    let Value::Object(map) = fields else {
        panic!("fields must be an object")
    };
    Record::from_fields(kind, map).unwrap()
}

/// 陳大文 in two shops, an order in each, through the sync engine.
async fn seed_customer(store: &synchub_store::Store) -> anyhow::Result<String> {
    let shopa = MemorySystem::new("shopa");
    let shopb = MemorySystem::new("shopb");
    shopa.put(
        "a1",
        record(
            ObjectKind::Contact,
            json!({"full_name": "陳大文", "given_name": "大文", "family_name": "陳",
                   "emails": ["tai.man@example.hk"], "phones": ["0932-111-222"]}),
        ),
    );
    shopb.put(
        "b1",
        record(
            ObjectKind::Contact,
            json!({"full_name": "陳大文", "emails": ["Tai.Man@example.hk"]}),
        ),
    );
    shopa.put(
        "oa1",
        record(
            ObjectKind::Order,
            json!({"number": "#A-1001", "currency": "TWD", "total": "1280.50",
                   "placed_at": "2024-03-01T08:00:00Z", "customer": {"external_id": "a1"}}),
        ),
    );
    shopb.put(
        "ob1",
        record(
            ObjectKind::Order,
            json!({"number": "#B-2001", "currency": "TWD", "total": "99.00",
                   "placed_at": "2024-04-01T08:00:00Z", "customer": {"external_id": "b1"}}),
        ),
    );
    let both = [ObjectKind::Contact, ObjectKind::Order];
    let conn = |name: &str, system: &MemorySystem| Connection {
        name: name.into(),
        connector: Arc::new(system.connector(50)),
        direction: Direction::Pull,
        objects: both.to_vec(),
        region: Some("TW".into()),
    };
    let engine = Engine::new(
        store.clone(),
        "shops",
        vec![conn("shopa", &shopa), conn("shopb", &shopb)],
        MergePolicy::default(),
        BTreeMap::new(),
    );
    engine.run(&RunOptions::default()).await?;
    let found = synchub_console::find_contacts(store, "0932-111-222", Some("TW"), 5).await?;
    ensure!(found.len() == 1, "陳大文 once after the sync: {found:?}");
    Ok(found[0].id.clone())
}

/// One crowd contact: its document and its email and phone keys.
fn crowd_contact(i: usize, rng: &mut Lcg) -> (String, String, String) {
    let (full, given, family) = match rng.below(10) {
        0..=4 => {
            let f = pick(rng, FAMILY_HANT);
            let g = format!("{}{}", pick(rng, GIVEN_CHARS), pick(rng, GIVEN_CHARS));
            (format!("{f}{g}"), g, f.to_string())
        }
        5..=6 => {
            let f = pick(rng, FAMILY_HANS);
            let g = pick(rng, GIVEN_CHARS).to_string();
            (format!("{f}{g}"), g, f.to_string())
        }
        _ => {
            let g = pick(rng, LATIN_GIVEN);
            let f = pick(rng, LATIN_FAMILY);
            (format!("{g} {f}"), g.to_string(), f.to_string())
        }
    };
    let email = format!("user{i}@example{}.com", i % 500);
    let phone = format!("+88691{:07}", i);
    let doc = record(
        ObjectKind::Contact,
        json!({"full_name": full, "given_name": given, "family_name": family,
               "emails": [email], "phones": [phone]}),
    );
    (
        serde_json::to_string(&doc).unwrap(),
        format!("email:{email}"),
        format!("phone:{phone}"),
    )
}

/// Loads `n` contacts; returns (load seconds, index rebuild seconds).
async fn load_crowd(url: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut db = sqlx::postgres::PgConnection::connect(url).await?;
    sqlx::query("SET maintenance_work_mem = '256MB'")
        .execute(&mut db)
        .await?;
    // The search indexes, dropped for the load and rebuilt as defined.
    let defs: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes \
         WHERE tablename = 'crm_record' AND indexname LIKE 'crm_contact_search%'",
    )
    .fetch_all(&mut db)
    .await?;
    ensure!(
        defs.len() == 2,
        "migration 0010's two search indexes: {defs:?}"
    );
    for (name, _) in &defs {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(&mut db)
            .await?;
    }
    let started = Instant::now();
    let now = "2026-01-01T00:00:00Z";
    let mut rng = Lcg::new(19);
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        let mut ids = Vec::with_capacity(end - i);
        let mut docs = Vec::with_capacity(end - i);
        let mut key_ids = Vec::with_capacity(2 * (end - i));
        let mut keys = Vec::with_capacity(2 * (end - i));
        let mut externals = Vec::with_capacity(end - i);
        for k in i..end {
            let id = format!("00000000-0000-4000-8000-{k:012}");
            let (doc, email, phone) = crowd_contact(k, &mut rng);
            key_ids.push(id.clone());
            keys.push(email);
            key_ids.push(id.clone());
            keys.push(phone);
            externals.push(format!("crowd-{k}"));
            ids.push(id);
            docs.push(doc);
        }
        let mut tx = db.begin().await?;
        sqlx::query(
            "INSERT INTO crm_record (id, kind, data, hash, version, deleted, created_at, updated_at) \
             SELECT id, 'contact', data, md5(data), 1, 0, $3, $3 \
             FROM UNNEST($1::text[], $2::text[]) AS t (id, data)",
        )
        .bind(&ids)
        .bind(&docs)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("loading contacts")?;
        sqlx::query(
            "INSERT INTO match_key (kind, key, crm_id) \
             SELECT 'contact', key, id FROM UNNEST($1::text[], $2::text[]) AS t (id, key)",
        )
        .bind(&key_ids)
        .bind(&keys)
        .execute(&mut *tx)
        .await
        .context("loading match keys")?;
        sqlx::query(
            "INSERT INTO id_link (connection, object, external_id, crm_id, updated_at) \
             SELECT 'shopa', 'contact', ext, id, $3 FROM UNNEST($1::text[], $2::text[]) AS t (id, ext)",
        )
        .bind(&ids)
        .bind(&externals)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("loading links")?;
        tx.commit().await?;
        i = end;
    }
    let loaded = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for (_, def) in &defs {
        sqlx::query(def).execute(&mut db).await?;
    }
    sqlx::query("ANALYZE").execute(&mut db).await?;
    Ok((loaded, started.elapsed().as_secs_f64()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("CONSOLE_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let tai_man = seed_customer(&store).await?;
    let (load_s, index_s) = load_crowd(&db.url, n).await?;
    println!(
        "BENCH console_load contacts={n} load_s={load_s:.1} index_s={index_s:.1} rows_per_s={:.0}",
        n as f64 / load_s
    );

    let hash = synchub_console::hash_password(PASSWORD)?;
    store.put_user("ops", Role::Operator, &hash).await?;
    let console = Console::new(store.clone(), Vec::new(), ConsoleConfig::default())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, synchub_console::router(console)).await });

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = http
        .get(format!("{base}/login"))
        .send()
        .await?
        .text()
        .await?;
    let marker = r#"name="csrf" value=""#;
    let start = form.find(marker).context("login form")? + marker.len();
    let csrf = &form[start..start + form[start..].find('"').context("csrf")?];
    let login = http
        .post(format!("{base}/login"))
        .form(&[
            ("name", "ops"),
            ("password", PASSWORD),
            ("csrf", csrf),
            ("next", "/"),
        ])
        .send()
        .await?;
    ensure!(login.status().is_redirection(), "login: {}", login.status());

    let pages: Vec<(&str, String, &str)> = vec![
        ("dashboard", "/".into(), "dead letters"),
        (
            "search_name_cjk",
            "/customers?q=陳大文".into(),
            "tai.man@example.hk",
        ),
        (
            "search_name_cjk_spaced",
            "/customers?q=陳+大文".into(),
            "tai.man@example.hk",
        ),
        (
            "search_name_cjk_part",
            "/customers?q=大文".into(),
            "found for",
        ),
        (
            "search_surname_one_char",
            "/customers?q=陳".into(),
            "found for",
        ),
        ("search_name_latin", "/customers?q=garcia".into(), "Garcia"),
        (
            "search_phone",
            "/customers?q=0932-111-222".into(),
            "tai.man@example.hk",
        ),
        (
            "search_phone_e164",
            "/customers?q=%2B886+932+111+222".into(),
            "tai.man@example.hk",
        ),
        (
            "search_email",
            "/customers?q=Tai.Man@example.hk".into(),
            "tai.man@example.hk",
        ),
        ("customer_360", format!("/customers/{tai_man}"), "#B-2001"),
        ("pipelines", "/pipelines".into(), "Pipelines"),
    ];
    for (name, path, expect) in &pages {
        let mut ms = Vec::with_capacity(ROUNDS);
        for round in 0..WARM_UP + ROUNDS {
            let t = Instant::now();
            let resp = http.get(format!("{base}{path}")).send().await?;
            let status = resp.status();
            let body = resp.text().await?;
            let elapsed = t.elapsed().as_secs_f64() * 1000.0;
            ensure!(status.is_success(), "{name}: {status}");
            ensure!(body.contains(expect), "{name}: no `{expect}` in the page");
            if round >= WARM_UP {
                ms.push(elapsed);
            }
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "BENCH console contacts={n} page={name} p50_ms={:.1} p95_ms={:.1} max_ms={:.1} rounds={ROUNDS}",
            percentile(&ms, 0.5),
            percentile(&ms, 0.95),
            ms[ms.len() - 1]
        );
    }
    store.close().await;
    Ok(())
}
