//! The 360° customer and the operations on what failed, through the binary:
//! `contacts list|show`, `export`, `dead-letters list|show|replay` and
//! `outbox failed`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::{json, Value};
use synchub_core::merge::MergePolicy;
use synchub_core::{ChangeOp, ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_store::outbox::{self, OutboxEntry, REFUSED_ATTEMPTS};
use synchub_store::records::{self, RecordWrite};
use synchub_testkit::{MemorySystem, TestDb};

fn synchub(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_DATABASE_URL", db)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run synchub")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "synchub failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn record(kind: ObjectKind, fields: Value) -> Record {
    let Value::Object(map) = fields else {
        panic!("fields must be an object")
    };
    Record::from_fields(kind, map).unwrap()
}

fn conn(name: &str, system: &MemorySystem, direction: Direction) -> Connection {
    Connection {
        name: name.into(),
        connector: Arc::new(system.connector(50)),
        direction,
        objects: vec![ObjectKind::Contact, ObjectKind::Order],
        region: Some("TW".into()),
    }
}

fn engine(store: &synchub_store::Store, conns: Vec<Connection>) -> Engine {
    Engine::new(
        store.clone(),
        "cli",
        conns,
        MergePolicy::default(),
        BTreeMap::new(),
    )
}

async fn contacts_show_finds_one_person_three_ways(backend: &str) {
    // GIVEN a shop with 陳大文 (phone written nationally), a neighbour
    // sharing his family name, and an order of his
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let shop = MemorySystem::new("shop");
    shop.put(
        "c1",
        record(
            ObjectKind::Contact,
            json!({"full_name": "陳大文", "given_name": "大文", "family_name": "陳",
                   "emails": ["tai.man@example.hk"], "phones": ["0912-345-678"]}),
        ),
    );
    shop.put(
        "c2",
        record(
            ObjectKind::Contact,
            json!({"full_name": "陳小明", "emails": ["siu.ming@example.hk"], "phones": ["0922-111-222"]}),
        ),
    );
    shop.put(
        "o1",
        record(
            ObjectKind::Order,
            json!({"number": "#1001", "currency": "TWD", "total": "1280.50",
                   "placed_at": "2024-03-01T08:00:00Z", "customer": {"external_id": "c1"}}),
        ),
    );
    let e = engine(&store, vec![conn("shop", &shop, Direction::Pull)]);
    e.run(&RunOptions::default()).await.unwrap();

    // WHEN he is looked up three ways THEN each finds the same one person
    let mut ids = BTreeSet::new();
    for who in [
        "0912-345-678",
        "+886912345678",
        "陳大文",
        "陳 大文",
        "TAI.MAN@example.hk",
    ] {
        let v = json_of(&synchub(
            &db.url,
            &["contacts", "show", who, "--format", "json"],
        ));
        assert_eq!(v["record"]["full_name"], "陳大文", "{who}: {v}");
        ids.insert(v["id"].as_str().unwrap().to_string());
        // with his order on the timeline, and the shop's copy with its time
        assert_eq!(v["timeline"][0]["title"], "#1001", "{who}: {v}");
        assert_eq!(v["timeline"][0]["amount"], "1280.50");
        assert_eq!(v["sources"][0]["system"], "shop");
        assert_eq!(v["sources"][0]["external_id"], "c1");
        assert_eq!(
            v["fields"]["phones"]["value"],
            json!(["+886912345678"]),
            "{who}: the golden record holds E.164"
        );
        assert_eq!(
            v["fields"]["phones"]["systems"]["shop:c1"]["value"],
            json!(["+886912345678"])
        );
    }
    assert_eq!(ids.len(), 1, "{ids:?}");

    // AND the list finds him the same ways, and the family name finds both
    for who in ["0912345678", "+886 912 345 678", "大文"] {
        let v = json_of(&synchub(
            &db.url,
            &["contacts", "list", "--search", who, "--format", "json"],
        ));
        let names: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["陳大文"], "{who}");
    }
    let v = json_of(&synchub(
        &db.url,
        &["contacts", "list", "--search", "陳", "--format", "json"],
    ));
    assert_eq!(v.as_array().unwrap().len(), 2);

    // AND someone unknown is a clear error
    let out = synchub(&db.url, &["contacts", "show", "0900-000-000"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no contact matches `0900-000-000`"), "{err}");
    let out = synchub(&db.url, &["contacts", "show", "陳"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 contacts match"));

    // AND after 陳小明 is merged into him, 陳小明's old id shows the survivor
    // with the merge in its history and both shop customers as his copies
    let him = ids.iter().next().unwrap().clone();
    let other = json_of(&synchub(
        &db.url,
        &["contacts", "show", "陳小明", "--format", "json"],
    ));
    let other = other["id"].as_str().unwrap().to_string();
    e.merge_contacts(
        &him,
        &other,
        json!({"score": 0.9}),
        &synchub_core::merge::survivorship::SurvivorshipRules::default(),
    )
    .await
    .unwrap();
    let v = json_of(&synchub(
        &db.url,
        &["contacts", "show", &other, "--format", "json"],
    ));
    assert_eq!(v["id"], him.as_str());
    assert_eq!(v["merges"][0]["loser"], other.as_str());
    assert_eq!(v["sources"].as_array().unwrap().len(), 2, "{v}");
}

#[tokio::test]
async fn contacts_show_finds_one_person_by_national_phone_e164_and_chinese_name_sqlite() {
    contacts_show_finds_one_person_three_ways("sqlite").await;
}

#[tokio::test]
async fn contacts_show_finds_one_person_by_national_phone_e164_and_chinese_name_postgres() {
    contacts_show_finds_one_person_three_ways("postgres").await;
}

async fn export_streams_across_pages(backend: &str) {
    // GIVEN more contacts than two export pages, one deleted, and orders
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    // Export reads pages of 2,000 rows (export::EXPORT_PAGE): cross two boundaries.
    let n = 2_000 * 2 + 7;
    let mut rows = Vec::new();
    for i in 0..n {
        rows.push(RecordWrite {
            id: format!("c{i:06}"),
            record: record(
                ObjectKind::Contact,
                json!({"full_name": format!("客戶 {i}"), "emails": [format!("p{i}@example.tw")],
                       "phones": ["+886912345678"], "tags": ["vip", "新客"]}),
            ),
            version: 1,
            deleted: i == 5,
            field_times: Default::default(),
        });
    }
    for i in 0..3 {
        rows.push(RecordWrite {
            id: format!("o{i}"),
            record: record(
                ObjectKind::Order,
                json!({"number": format!("#{i}"), "currency": "TWD", "total": "0.10",
                       "customer": {"crm_id": format!("c{i:06}")}}),
            ),
            version: 1,
            deleted: false,
            field_times: Default::default(),
        });
    }
    let mut tx = store.begin().await.unwrap();
    records::upsert_many(&mut tx, &rows).await.unwrap();
    tx.commit().await.unwrap();

    // WHEN the contacts are exported as JSON lines
    let text = ok(&synchub(
        &db.url,
        &["export", "contacts", "--format", "jsonl"],
    ));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // THEN every live contact is there once, in id order, lists as JSON
    assert_eq!(lines.len(), n - 1);
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "ordered and unique across page boundaries");
    assert!(
        !ids.contains(&"c000005"),
        "a deleted contact is not exported"
    );
    assert_eq!(lines[0]["tags"], json!(["vip", "新客"]));
    assert_eq!(lines[0]["name"], "客戶 0");

    // AND as CSV to a file, with a header
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contacts.csv");
    ok(&synchub(
        &db.url,
        &[
            "export",
            "contacts",
            "--format",
            "csv",
            "--output",
            file.to_str().unwrap(),
        ],
    ));
    let mut rdr = csv::Reader::from_path(&file).unwrap();
    assert_eq!(rdr.headers().unwrap().get(0), Some("id"));
    assert_eq!(rdr.records().count(), n - 1);

    // AND orders carry their contact and exact money
    let text = ok(&synchub(
        &db.url,
        &["export", "orders", "--format", "jsonl"],
    ));
    let orders: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(orders.len(), 3);
    assert_eq!(orders[1]["contact_id"], "c000001");
    assert_eq!(orders[1]["total"], "0.10");
}

#[tokio::test]
async fn export_streams_every_contact_and_order_across_pages_sqlite() {
    export_streams_across_pages("sqlite").await;
}

#[tokio::test]
async fn export_streams_every_contact_and_order_across_pages_postgres() {
    export_streams_across_pages("postgres").await;
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn csv_pipeline(csv: &std::path::Path, phone_field: &str) -> String {
    format!(
        r#"version = 1
name = "people"
region = "TW"

[[connections]]
name = "people_csv"
kind = "csv"
direction = "pull"
objects = ["contact"]

[connections.config]
path = "{}"
id_column = "id"

[connections.config.map]
name = "full_name"
mobile = "{phone_field}"
"#,
        csv.display()
    )
}

#[tokio::test]
async fn a_dead_letter_fixed_by_a_mapping_change_and_replayed_lands_once() {
    // GIVEN a pipeline that maps the mobile column to the birth date by mistake
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("people.csv");
    write(
        &csv,
        "id,name,mobile\nP1,陳大文,0912-345-678\nP2,林美玲,0922-000-111\n",
    );
    let pipeline = dir.path().join("people.toml");
    write(&pipeline, &csv_pipeline(&csv, "birth_date"));
    let p = pipeline.to_str().unwrap();
    ok(&synchub(&db.url, &["run", p, "--once"]));
    let dead = json_of(&synchub(
        &db.url,
        &["dead-letters", "list", "--format", "json"],
    ));
    assert_eq!(dead.as_array().unwrap().len(), 2, "{dead}");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("is not a date"),
        "{dead}"
    );
    let id = dead[0]["id"].as_i64().unwrap();
    let shown = json_of(&synchub(
        &db.url,
        &["dead-letters", "show", &id.to_string()],
    ));
    assert_eq!(shown["payload"]["mobile"], dead[0]["payload"]["mobile"]);
    assert_eq!(
        json_of(&synchub(&db.url, &["contacts", "list", "--format", "json"])),
        json!([])
    );

    // WHEN a replay runs with the pipeline still wrong, nothing lands
    let out = synchub(
        &db.url,
        &["dead-letters", "replay", &id.to_string(), "--pipeline", p],
    );
    assert!(!out.status.success(), "a replay that lands nothing fails");
    assert!(String::from_utf8_lossy(&out.stdout).contains("still rejected"));

    // WHEN the mapping is fixed and every dead letter replayed
    write(&pipeline, &csv_pipeline(&csv, "phone"));
    let out = ok(&synchub(
        &db.url,
        &["dead-letters", "replay", "--all", "--pipeline", p],
    ));
    assert!(out.contains("2 of 2 dead letters landed"), "{out}");

    // THEN both people are contacts, once each, with E.164 phones
    let list = json_of(&synchub(&db.url, &["contacts", "list", "--format", "json"]));
    let phones: BTreeSet<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, BTreeSet::from(["+886912345678", "+886922000111"]));
    assert_eq!(
        json_of(&synchub(
            &db.url,
            &["dead-letters", "list", "--format", "json"]
        )),
        json!([]),
        "landed dead letters leave the list"
    );
    let all = json_of(&synchub(
        &db.url,
        &["dead-letters", "list", "--all", "--format", "json"],
    ));
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["resolved_at"].is_string()));

    // AND running the pipeline or replaying again adds nothing
    ok(&synchub(&db.url, &["run", p, "--once"]));
    let out = ok(&synchub(
        &db.url,
        &["dead-letters", "replay", "--all", "--pipeline", p],
    ));
    assert!(out.contains("no dead letters to replay"), "{out}");
    let list = json_of(&synchub(&db.url, &["contacts", "list", "--format", "json"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_permanently_refused_push_is_attempted_once_and_listed_with_its_reason() {
    // GIVEN a CRM fed by a shop and pushing to a ledger, which has the person
    let db = TestDb::sqlite();
    let store = db.store().await;
    let shop = MemorySystem::new("shop");
    let ledger = MemorySystem::new("ledger");
    shop.put(
        "c1",
        record(
            ObjectKind::Contact,
            json!({"full_name": "Ann Lee", "emails": ["ann@example.com"]}),
        ),
    );
    let e = engine(
        &store,
        vec![
            conn("shop", &shop, Direction::Pull),
            Connection {
                objects: vec![ObjectKind::Contact],
                ..conn("ledger", &ledger, Direction::Push)
            },
        ],
    );
    e.run(&RunOptions::default()).await.unwrap();
    let (ledger_id, _) = ledger.live(ObjectKind::Contact).into_iter().next().unwrap();

    // WHEN the ledger drops its copy unseen and the shop edits the person:
    // the ledger refuses the update for good (404)
    ledger.delete(ObjectKind::Contact, &ledger_id);
    shop.edit(ObjectKind::Contact, "c1", |r| {
        if let Record::Contact(c) = r {
            c.company = Some("Acme".into());
        }
    });
    let first = e.run(&RunOptions::default()).await.unwrap();
    let second = e.run(&RunOptions::default()).await.unwrap();

    // THEN it was attempted once, not retried, and is listed with its reason
    assert_eq!(first.streams["ledger.contact"].push_failed, 1);
    assert_eq!(
        second
            .streams
            .get("ledger.contact")
            .map_or(0, |s| s.push_failed),
        0,
        "a permanent refusal is not retried"
    );
    let failed = json_of(&synchub(&db.url, &["outbox", "failed", "--format", "json"]));
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed[0]["target"], "ledger");
    assert_eq!(failed[0]["permanent"], true);
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("404 not found"),
        "{failed}"
    );
}

#[tokio::test]
async fn outbox_failed_lists_refusals_first_and_transient_failures_as_retrying() {
    // GIVEN three queued pushes: one refused for good, one failing, one fine
    let db = TestDb::sqlite();
    let store = db.store().await;
    let entry = |crm: &str| OutboxEntry {
        connection: "xero".into(),
        object: ObjectKind::Contact,
        crm_id: crm.into(),
        op: ChangeOp::Create,
        idempotency_key: format!("k-{crm}"),
    };
    let mut tx = store.begin().await.unwrap();
    outbox::enqueue(&mut tx, &[entry("a"), entry("b"), entry("c")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let pending = store
        .pending_pushes("xero", ObjectKind::Contact, 10, 5)
        .await
        .unwrap();
    let id_of = |crm: &str| pending.iter().find(|p| p.crm_id == crm).unwrap().id;
    let mut tx = store.begin().await.unwrap();
    outbox::fail(&mut tx, id_of("a"), "503 service unavailable")
        .await
        .unwrap();
    outbox::fail(&mut tx, id_of("a"), "503 service unavailable")
        .await
        .unwrap();
    outbox::refuse(&mut tx, id_of("b"), "400 email required")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // WHEN the failed pushes are listed
    let v = json_of(&synchub(&db.url, &["outbox", "failed", "--format", "json"]));

    // THEN the refusal comes first with its reason, the transient one is retrying
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["crm_id"], "b");
    assert_eq!(rows[0]["permanent"], true);
    assert_eq!(rows[0]["reason"], "400 email required");
    assert_eq!(rows[1]["crm_id"], "a");
    assert_eq!(rows[1]["permanent"], false);
    assert_eq!(rows[1]["attempts"], 2);
    let table = ok(&synchub(&db.url, &["outbox", "failed"]));
    assert!(
        table.contains("refused") && table.contains("retrying (2 attempts)"),
        "{table}"
    );
    let stored = store.failed_pushes(10).await.unwrap();
    assert_eq!(
        stored[0].attempts, REFUSED_ATTEMPTS,
        "refused rows carry the marker"
    );
    assert!(stored[0].refused() && !stored[1].refused());
}
