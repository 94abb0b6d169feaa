//! The queryable CRM relations (migration 0007, docs/store.md) on both
//! backends: they hold the right rows after creates, merges, unmerges and
//! deletes, and a store written by the release before them migrates with
//! nothing lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use sqlx::Row;
use synchub_core::merge::survivorship::SurvivorshipRules;
use synchub_core::merge::MergePolicy;
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_store::relations::ContactSearch;
use synchub_store::Store;
use synchub_testkit::{MemorySystem, TestDb};

fn record(kind: ObjectKind, fields: serde_json::Value) -> Record {
    let serde_json::Value::Object(map) = fields else {
        panic!("fields must be an object")
    };
    Record::from_fields(kind, map).unwrap()
}

fn person(name: &str, email: &str, phone: &str) -> Record {
    record(
        ObjectKind::Contact,
        json!({"full_name": name, "emails": [email], "phones": [phone]}),
    )
}

fn order(number: &str, customer: &str, total: &str, placed_at: &str) -> Record {
    record(
        ObjectKind::Order,
        json!({
            "number": number, "currency": "TWD", "total": total, "placed_at": placed_at,
            "customer": {"external_id": customer},
            "lines": [{"sku": "A-1", "description": "茶葉", "quantity": "2", "unit_price": "0.5", "total": "1.0"}],
        }),
    )
}

fn engine(store: &Store, shop: &MemorySystem) -> Engine {
    let conn = Connection {
        name: "shop".into(),
        connector: Arc::new(shop.connector(2)),
        direction: Direction::Pull,
        objects: vec![ObjectKind::Contact, ObjectKind::Order],
        region: Some("TW".into()),
    };
    Engine::new(
        store.clone(),
        "relations",
        vec![conn],
        MergePolicy::default(),
        BTreeMap::new(),
    )
}

async fn contact_of(store: &Store, email: &str) -> String {
    let found = store
        .find_contacts(
            &ContactSearch {
                keys: vec![format!("email:{email}")],
                ..ContactSearch::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "one live contact has {email}: {found:?}");
    found[0].id.clone()
}

async fn timeline_titles(store: &Store, contact: &str) -> Vec<String> {
    store
        .contact_timeline(contact)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.kind, e.title.unwrap_or_default()))
        .collect()
}

async fn order_contact(store: &Store, number: &str) -> Option<String> {
    sqlx::query("SELECT contact_id FROM orders WHERE number = $1")
        .bind(number)
        .fetch_optional(store.pool())
        .await
        .unwrap()
        .map(|r| r.try_get("contact_id").unwrap())
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
}

async fn relations_follow_creates_merges_unmerges_and_deletes(backend: &str) {
    // GIVEN a shop with three people and an order each
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let shop = MemorySystem::new("shop");
    shop.put("c1", person("陳大文", "tai.man@example.hk", "0912-345-678"));
    shop.put(
        "c2",
        person("Chan Tai Man", "tm.chan@work.hk", "0922-000-111"),
    );
    shop.put("c3", person("Ann Lee", "ann@example.com", "0933-000-222"));
    shop.put("o1", order("#1", "c1", "10.10", "2024-01-02T10:00:00Z"));
    shop.put("o2", order("#2", "c2", "20.20", "2024-01-01T10:00:00Z"));
    shop.put("o3", order("#3", "c3", "30.30", "2024-01-03T10:00:00Z"));
    let e = engine(&store, &shop);

    // WHEN the shop is synced
    e.run(&RunOptions::default()).await.unwrap();

    // THEN every person is a contact with their order on their timeline
    assert_eq!(count(&store, "SELECT COUNT(*) FROM contacts").await, 3);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM orders").await, 3);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM order_lines").await, 3);
    let (c1, c2, c3) = (
        contact_of(&store, "tai.man@example.hk").await,
        contact_of(&store, "tm.chan@work.hk").await,
        contact_of(&store, "ann@example.com").await,
    );
    assert_eq!(timeline_titles(&store, &c1).await, vec!["order #1"]);
    assert_eq!(timeline_titles(&store, &c2).await, vec!["order #2"]);
    let t = store.contact_timeline(&c1).await.unwrap();
    assert_eq!(
        t[0].amount.as_deref().map(|a| a.trim_end_matches('0')),
        Some("10.1")
    );
    assert_eq!(t[0].currency.as_deref(), Some("TWD"));
    assert_eq!(t[0].at.as_deref(), Some("2024-01-02T10:00:00Z"));
    let phone: String = sqlx::query("SELECT phone FROM contacts WHERE id = $1")
        .bind(&c1)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get("phone")
        .unwrap();
    assert_eq!(phone, "+886912345678", "contacts.phone is E.164");
    let sources = store.contact_sources(&c1).await.unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(
        (sources[0].system.as_str(), sources[0].external_id.as_str()),
        ("shop", "c1")
    );
    assert!(
        sources[0].last_synced_at.ends_with('Z'),
        "times come back as RFC 3339: {}",
        sources[0].last_synced_at
    );

    // WHEN c2 is merged into c1
    let merged = e
        .merge_contacts(
            &c1,
            &c2,
            json!({"score": 0.95}),
            &SurvivorshipRules::default(),
        )
        .await
        .unwrap();

    // THEN c2 leaves `contacts` and its order appears under the survivor, in time order
    assert_eq!(count(&store, "SELECT COUNT(*) FROM contacts").await, 2);
    assert_eq!(
        store.live_contact_id(&c2).await.unwrap().as_deref(),
        Some(c1.as_str())
    );
    assert_eq!(
        order_contact(&store, "#2").await.as_deref(),
        Some(c1.as_str())
    );
    assert_eq!(
        timeline_titles(&store, &c1).await,
        vec!["order #2", "order #1"]
    );
    assert_eq!(
        store.contact_sources(&c1).await.unwrap().len(),
        2,
        "both shop customers are copies of the survivor"
    );
    let history = store.contact_merges(&c1).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, merged.merge_id);

    // WHEN the merge is undone
    synchub_engine::merges::unmerge(&store, merged.merge_id, &[])
        .await
        .unwrap();

    // THEN each person has their own order again
    assert_eq!(count(&store, "SELECT COUNT(*) FROM contacts").await, 3);
    assert_eq!(timeline_titles(&store, &c1).await, vec!["order #1"]);
    assert_eq!(timeline_titles(&store, &c2).await, vec!["order #2"]);
    assert_eq!(
        order_contact(&store, "#2").await.as_deref(),
        Some(c2.as_str())
    );
    assert_eq!(
        store.live_contact_id(&c2).await.unwrap().as_deref(),
        Some(c2.as_str())
    );
    let history = store.contact_merges(&c1).await.unwrap();
    assert!(
        history[0].undone_at.is_some(),
        "the history keeps the undone merge"
    );

    // WHEN the shop deletes c3 and order #3
    shop.delete(ObjectKind::Contact, "c3");
    shop.delete(ObjectKind::Order, "o3");
    e.run(&RunOptions::default()).await.unwrap();

    // THEN c3 leaves `contacts`, its order leaves `orders`, and nothing else moved
    assert_eq!(count(&store, "SELECT COUNT(*) FROM contacts").await, 2);
    assert_eq!(store.live_contact_id(&c3).await.unwrap(), None);
    assert_eq!(order_contact(&store, "#3").await, None);
    assert!(store.contact_timeline(&c3).await.unwrap().is_empty());
    assert_eq!(count(&store, "SELECT COUNT(*) FROM orders").await, 2);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM contact_timeline").await,
        2
    );
}

#[tokio::test]
async fn relations_follow_creates_merges_unmerges_and_deletes_sqlite() {
    relations_follow_creates_merges_unmerges_and_deletes("sqlite").await;
}

#[tokio::test]
async fn relations_follow_creates_merges_unmerges_and_deletes_postgres() {
    relations_follow_creates_merges_unmerges_and_deletes("postgres").await;
}

async fn old_store_migrates_with_nothing_lost(backend: &str) {
    // GIVEN a store written by the release before the relations: its
    // schema (migrations 0001-0005) and the rows `synchub demo` wrote
    let db = TestDb::of(backend).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../core/synchub-store/migrations")
        .join(backend);
    let mut old = sqlx::migrate::Migrator::new(dir).await.unwrap();
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version <= 5)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let fixture = include_str!("fixtures/store-0005-demo.sql");
    if backend == "postgres" {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        old.run(&pool).await.unwrap();
        sqlx::raw_sql(fixture).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let opts: sqlx::sqlite::SqliteConnectOptions =
            format!("{}?mode=rwc", db.url).parse().unwrap();
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        old.run(&pool).await.unwrap();
        sqlx::raw_sql(fixture).execute(&pool).await.unwrap();
        pool.close().await;
    }
    // WHEN today's code opens it (migration 0007 runs), before and after
    sqlx::any::install_default_drivers();
    let url = if backend == "sqlite" {
        format!("{}?mode=rw", db.url)
    } else {
        db.url.clone()
    };
    let old_pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let before = dump(&old_pool).await;
    let live: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM crm_record WHERE kind = 'contact' AND deleted = 0 \
         AND merged_into IS NULL",
    )
    .fetch_one(&old_pool)
    .await
    .unwrap()
    .try_get("n")
    .unwrap();
    assert!(live > 30, "the fixture holds the demo's contacts ({live})");
    old_pool.close().await;
    let store = db.store().await;
    let after = dump(store.pool()).await;

    // THEN every row of every table is there, unchanged
    assert_eq!(before.len(), after.len());
    for (table, rows) in &before {
        assert_eq!(
            rows, &after[table],
            "table {table} unchanged by the migration"
        );
    }
    assert!(before["crm_record"].len() >= 65 && before["id_link"].len() >= 100);

    // AND the relations show the old rows
    assert_eq!(count(&store, "SELECT COUNT(*) FROM contacts").await, live);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM orders").await, 20);
    assert!(count(&store, "SELECT COUNT(*) FROM order_lines").await >= 20);
    // Every order of a known customer is on a timeline; the demo's guest
    // checkout (#1005, no customer record) is on none.
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM contact_timeline").await,
        count(
            &store,
            "SELECT COUNT(*) FROM orders WHERE contact_id IS NOT NULL"
        )
        .await
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM orders WHERE contact_id IS NULL"
        )
        .await,
        1
    );
    let chan = contact_of(&store, "tai.man.chan@example.hk").await;
    let systems: Vec<String> = store
        .contact_sources(&chan)
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{}:{}", s.system, s.external_id))
        .collect();
    assert!(
        systems.contains(&"legacy_export:C-1001".to_string())
            && systems.contains(&"legacy_export:C-1002".to_string()),
        "{systems:?}"
    );
    assert!(store.dead_letter_rows(false, 100).await.unwrap().len() >= 4);
}

/// Rows of every table a store written before 0007 holds, as text.
async fn dump(pool: &sqlx::AnyPool) -> BTreeMap<&'static str, Vec<String>> {
    const TABLES: &[(&str, &str)] = &[
        ("crm_record", "id, kind, data, hash, version, deleted, merged_into, field_times, created_at, updated_at"),
        ("match_key", "kind, key, crm_id"),
        ("id_link", "connection, object, external_id, crm_id, remote_version, remote_updated_at, snapshot, snapshot_hash, deleted, updated_at"),
        ("sync_cursor", "connection, object, cursor, seq, updated_at"),
        ("outbox", "id, connection, object, crm_id, op, idempotency_key, created_at, attempts, last_error, done_at"),
        ("dead_letter", "id, fingerprint, connection, object, external_id, location, reason, payload, created_at"),
        ("contact_merge", "id, survivor, loser, evidence"),
    ];
    let mut out = BTreeMap::new();
    for (table, cols) in TABLES {
        let casts: Vec<String> = cols
            .split(", ")
            .map(|c| format!("COALESCE(CAST({c} AS TEXT), '<null>')"))
            .collect();
        let sql = format!(
            "SELECT {} AS row_text FROM {table} ORDER BY 1",
            casts.join(" || '|' || ")
        );
        let rows = sqlx::query(&sql).fetch_all(pool).await.unwrap();
        out.insert(
            *table,
            rows.iter()
                .map(|r| r.try_get::<String, _>("row_text").unwrap())
                .collect(),
        );
    }
    out
}

#[tokio::test]
async fn old_store_migrates_with_nothing_lost_sqlite() {
    old_store_migrates_with_nothing_lost("sqlite").await;
}

#[tokio::test]
async fn old_store_migrates_with_nothing_lost_postgres() {
    old_store_migrates_with_nothing_lost("postgres").await;
}

async fn timeline_puts_orders_invoices_and_activities_in_time_order(backend: &str) {
    // GIVEN a contact with an order, an invoice and a mail from her address
    // (written as the engine writes them), and a mail from a stranger
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let write = |id: &str, kind: ObjectKind, fields: serde_json::Value| {
        synchub_store::records::RecordWrite {
            id: id.into(),
            record: record(kind, fields),
            version: 1,
            deleted: false,
            field_times: Default::default(),
        }
    };
    let rows = vec![
        write(
            "k1",
            ObjectKind::Contact,
            json!({"full_name": "Ann Lee", "emails": ["ann@example.com"]}),
        ),
        write(
            "o1",
            ObjectKind::Order,
            json!({"number": "#1", "currency": "TWD", "total": "10.00",
                   "placed_at": "2024-01-03T00:00:00Z", "customer": {"crm_id": "k1"}}),
        ),
        write(
            "i1",
            ObjectKind::Invoice,
            json!({"number": "INV-1", "currency": "TWD", "total": "99.90", "amount_due": "0.10",
                   "issued_on": "2024-01-02", "customer": {"crm_id": "k1"}}),
        ),
        write(
            "a1",
            ObjectKind::Activity,
            json!({"kind": "email", "subject": "Quote", "occurred_at": "2024-01-01T09:00:00Z",
                   "participants": [{"role": "from", "email": "ann@example.com"},
                                    {"role": "to", "email": "sales@shop.tw"}]}),
        ),
        write(
            "a2",
            ObjectKind::Activity,
            json!({"kind": "email", "subject": "Spam", "occurred_at": "2024-01-01T10:00:00Z",
                   "participants": [{"role": "from", "email": "x@elsewhere.com"}]}),
        ),
    ];
    let mut tx = store.begin().await.unwrap();
    synchub_store::records::upsert_many(&mut tx, &rows)
        .await
        .unwrap();
    synchub_store::records::set_keys(
        &mut tx,
        ObjectKind::Contact,
        &[("k1".to_string(), vec!["email:ann@example.com".to_string()])],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // THEN her timeline is the mail, the invoice, the order, oldest first
    let t = store.contact_timeline("k1").await.unwrap();
    let seen: Vec<(String, String, Option<String>)> = t
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                e.title.clone().unwrap_or_default(),
                e.at.clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "activity".into(),
                "Quote".into(),
                Some("2024-01-01T09:00:00Z".into())
            ),
            (
                "invoice".into(),
                "INV-1".into(),
                Some("2024-01-02T00:00:00Z".into())
            ),
            (
                "order".into(),
                "#1".into(),
                Some("2024-01-03T00:00:00Z".into())
            ),
        ]
    );
    assert_eq!(t[1].amount.as_deref(), Some("99.90"), "money stays exact");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM activities").await, 2);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM activity_contacts").await,
        1
    );
    let due: String =
        sqlx::query("SELECT CAST(amount_due AS TEXT) AS due FROM invoices WHERE contact_id = $1")
            .bind("k1")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get("due")
            .unwrap();
    assert_eq!(due, "0.10");
}

#[tokio::test]
async fn timeline_puts_orders_invoices_and_activities_in_time_order_sqlite() {
    timeline_puts_orders_invoices_and_activities_in_time_order("sqlite").await;
}

#[tokio::test]
async fn timeline_puts_orders_invoices_and_activities_in_time_order_postgres() {
    timeline_puts_orders_invoices_and_activities_in_time_order("postgres").await;
}
