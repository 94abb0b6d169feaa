//! What the console's test suites share: a store with something in every
//! queue (陳大文 in two shops with an order in each and a conflict on his
//! company, two 陳小明 waiting for review, a CSV's dead letters and the
//! fixed pipeline to replay them through), its users, and a console served
//! on a free loopback port.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use synchub_console::{Console, ConsoleConfig, PipelineHandle};
use synchub_core::merge::{FieldPolicy, MergePolicy};
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_store::reviews::NewReview;
use synchub_store::users::Role;
use synchub_store::Store;
use synchub_testkit::{MemorySystem, TestDb};

pub const OPS_PASSWORD: &str = "correct horse battery";
pub const VIEWER_PASSWORD: &str = "viewer password 123";

pub fn record(kind: ObjectKind, fields: Value) -> Record {
    let Value::Object(map) = fields else {
        panic!("fields must be an object")
    };
    Record::from_fields(kind, map).unwrap()
}

pub fn memory_conn(
    name: &str,
    system: &MemorySystem,
    direction: Direction,
    objects: &[ObjectKind],
) -> Connection {
    Connection {
        name: name.into(),
        connector: Arc::new(system.connector(50)),
        direction,
        objects: objects.to_vec(),
        region: Some("TW".into()),
    }
}

pub fn csv_conn(path: &Path, mobile_to: &str) -> Connection {
    let cfg = synchub_csv::CsvConfig {
        path: path.to_path_buf(),
        id_column: Some("id".into()),
        map: BTreeMap::from([
            ("name".to_string(), "full_name".to_string()),
            ("mobile".to_string(), mobile_to.to_string()),
        ]),
        delimiter: None,
        page_size: None,
        date_region: None,
        encoding: None,
    };
    Connection {
        name: "people_csv".into(),
        connector: Arc::new(synchub_csv::CsvSource::build(cfg, None).unwrap()),
        direction: Direction::Pull,
        objects: vec![ObjectKind::Contact],
        region: Some("TW".into()),
    }
}

/// A store with something in every queue, and the console's pipelines.
pub struct World {
    pub store: Store,
    pub shops: Arc<Engine>,
    pub ledger: MemorySystem,
    /// 陳大文's CRM id.
    pub tai_man: String,
    /// The open conflict on his company.
    pub conflict: i64,
    /// The review pair (two 陳小明).
    pub review: i64,
    /// A dead letter of the CSV (林美玲, mapped wrongly).
    pub dead_letter: i64,
    pub pipelines: Vec<PipelineHandle>,
    pub _dir: tempfile::TempDir,
}

pub async fn world(db: &TestDb) -> World {
    let store = db.store().await;
    // GIVEN two shops that both know 陳大文 (one with his phone written
    // nationally), each with an order of his, and two people named 陳小明
    let shopa = MemorySystem::new("shopa");
    let shopb = MemorySystem::new("shopb");
    let ledger = MemorySystem::new("ledger");
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
        "a2",
        record(
            ObjectKind::Contact,
            json!({"full_name": "陳小明", "emails": ["siu.ming@example.hk"]}),
        ),
    );
    shopb.put(
        "b2",
        record(
            ObjectKind::Contact,
            json!({"full_name": "陳小明", "emails": ["ming@work.example.hk"]}),
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
    let policy = MergePolicy {
        fields: BTreeMap::from([("company".to_string(), FieldPolicy::Manual)]),
        ..MergePolicy::default()
    };
    let shops = Arc::new(Engine::new(
        store.clone(),
        "shops",
        vec![
            memory_conn("shopa", &shopa, Direction::Pull, &both),
            memory_conn("shopb", &shopb, Direction::Pull, &both),
            memory_conn("ledger", &ledger, Direction::Push, &[ObjectKind::Contact]),
        ],
        policy,
        BTreeMap::new(),
    ));
    shops.run(&RunOptions::default()).await.unwrap();
    // AND both shops change his company, differently: a conflict
    shopa.edit(ObjectKind::Contact, "a1", |r| {
        if let Record::Contact(c) = r {
            c.company = Some("Acme Taiwan".into());
        }
    });
    shops.run(&RunOptions::default()).await.unwrap();
    shopb.edit(ObjectKind::Contact, "b1", |r| {
        if let Record::Contact(c) = r {
            c.company = Some("Acme HK".into());
        }
    });
    shops.run(&RunOptions::default()).await.unwrap();
    let open = store.conflicts(false).await.unwrap();
    assert_eq!(open.len(), 1, "one conflict on the company: {open:#?}");
    let conflict = open[0].id;
    let tai_man = open[0].detail.crm_id.clone();

    // AND the two 陳小明 wait in the review queue
    let ming: Vec<String> = store
        .find_contacts(
            &synchub_store::relations::ContactSearch {
                patterns: vec!["陳小明".into()],
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ming.len(), 2, "{ming:?}");
    let (left, right) = if ming[0] < ming[1] {
        (ming[0].clone(), ming[1].clone())
    } else {
        (ming[1].clone(), ming[0].clone())
    };
    store
        .queue_reviews(&[NewReview {
            left_id: left,
            right_id: right,
            score: 3.2,
            probability: 0.81,
            evidence: json!([{"field": "full_name", "level": "exact", "weight": 4.1},
                             {"field": "email", "level": "different", "weight": -0.9}])
            .to_string(),
        }])
        .await
        .unwrap();
    let review = store.reviews(false).await.unwrap()[0].id;

    // AND a CSV whose mobile column was mapped to the birth date: dead letters
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "id,name,mobile\nP1,林美玲,0922-000-111\nP2,王小華,0933-222-333\n",
    )
    .unwrap();
    let broken = Engine::new(
        store.clone(),
        "people",
        vec![csv_conn(&csv, "birth_date")],
        MergePolicy::default(),
        BTreeMap::new(),
    );
    broken.run(&RunOptions::default()).await.unwrap();
    let dead = store.dead_letter_rows(false, 10).await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:#?}");
    let dead_letter = dead
        .iter()
        .find(|d| d.letter.external_id.as_deref() == Some("P1"))
        .unwrap()
        .id;
    // … and the mapping fixed: the console replays through the fixed pipeline
    let fixed = Arc::new(Engine::new(
        store.clone(),
        "people",
        vec![csv_conn(&csv, "phone")],
        MergePolicy::default(),
        BTreeMap::new(),
    ));

    for (name, role, password) in [
        ("ops", Role::Operator, OPS_PASSWORD),
        ("viewer", Role::Viewer, VIEWER_PASSWORD),
        ("boss", Role::Admin, OPS_PASSWORD),
    ] {
        let hash = synchub_console::hash_password(password).unwrap();
        store.put_user(name, role, &hash).await.unwrap();
    }
    World {
        store,
        pipelines: vec![
            PipelineHandle {
                name: "shops".into(),
                engine: shops.clone(),
                every: Some(Duration::from_secs(300)),
            },
            PipelineHandle {
                name: "people".into(),
                engine: fixed,
                every: None,
            },
        ],
        shops,
        ledger,
        tai_man,
        conflict,
        review,
        dead_letter,
        _dir: dir,
    }
}

/// Serves the console on a free loopback port; returns its base URL.
pub async fn serve(store: Store, pipelines: Vec<PipelineHandle>, config: ConsoleConfig) -> String {
    serve_console(Console::new(store, pipelines, config).unwrap()).await
}

/// Serves `console` on a free loopback port; returns its base URL.
pub async fn serve_console(console: Console) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, synchub_console::router(console))
            .await
            .unwrap();
    });
    format!("http://{addr}")
}
