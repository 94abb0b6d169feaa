//! The ops console through real HTTP: a server on a loopback port, a
//! browser-like client keeping cookies (reqwest's cookie store), a store
//! with customers from two shops, a conflict, a dead letter, a review pair
//! and a push target — on SQLite and on PostgreSQL. After every action the
//! store is read to see that it happened (or did not).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use synchub_console::{Console, ConsoleConfig, PipelineHandle};
use synchub_core::merge::{FieldPolicy, MergePolicy};
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_store::reviews::NewReview;
use synchub_store::users::Role;
use synchub_store::Store;
use synchub_testkit::{MemorySystem, TestDb};

const OPS_PASSWORD: &str = "correct horse battery";
const VIEWER_PASSWORD: &str = "viewer password 123";

fn record(kind: ObjectKind, fields: Value) -> Record {
    let Value::Object(map) = fields else {
        panic!("fields must be an object")
    };
    Record::from_fields(kind, map).unwrap()
}

fn memory_conn(
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

fn csv_conn(path: &Path, mobile_to: &str) -> Connection {
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
struct World {
    store: Store,
    shops: Arc<Engine>,
    ledger: MemorySystem,
    /// 陳大文's CRM id.
    tai_man: String,
    /// The open conflict on his company.
    conflict: i64,
    /// The review pair (two 陳小明).
    review: i64,
    /// A dead letter of the CSV (林美玲, mapped wrongly).
    dead_letter: i64,
    pipelines: Vec<PipelineHandle>,
    _dir: tempfile::TempDir,
}

async fn world(db: &TestDb) -> World {
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
                   "emails": ["tai.man@example.hk"], "phones": ["0912-345-678"]}),
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
async fn serve(store: Store, pipelines: Vec<PipelineHandle>, config: ConsoleConfig) -> String {
    let console = Console::new(store, pipelines, config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, synchub_console::router(console))
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

/// A browser: keeps cookies, does not follow redirects (they are checked).
struct Browser {
    http: reqwest::Client,
    base: String,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    cookies: Vec<String>,
    body: String,
}

impl Page {
    /// The CSRF token of the first form on the page.
    fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
        }
    }

    async fn page(response: reqwest::Response) -> Page {
        Page {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_string()),
            cookies: response
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect(),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        Self::page(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Self::page(
            self.http
                .post(format!("{}{path}", self.base))
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Signs in; returns the answer to the login form.
    async fn sign_in(&self, name: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("name", name),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/"),
            ],
        )
        .await
    }

    /// The CSRF token of this browser's session.
    async fn token(&self) -> String {
        let home = self.get("/").await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.body);
        home.csrf()
    }
}

async fn console_end_to_end(backend: &str) {
    let db = TestDb::of(backend).await;
    let w = world(&db).await;
    let base = serve(
        w.store.clone(),
        w.pipelines.clone(),
        ConsoleConfig::default(),
    )
    .await;
    let ops = Browser::new(&base);

    // A page without a session sends to the login form; a form is refused
    let page = ops.get("/customers?q=x").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location.as_deref(),
        Some("/login?next=/customers%3Fq%3Dx")
    );
    let page = ops
        .post(
            &format!("/queues/conflicts/{}/resolve", w.conflict),
            &[("take", "remote")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);

    // A wrong password: 401 and the form again, no session
    let page = ops.sign_in("ops", "wrong password!").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.body.contains("Wrong name or password"),
        "{}",
        page.body
    );
    assert!(!page
        .cookies
        .iter()
        .any(|c| c.starts_with("synchub_session=")));
    assert_eq!(ops.get("/").await.status, StatusCode::SEE_OTHER);
    // … and an unknown name answers the same
    assert_eq!(
        ops.sign_in("nobody", OPS_PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );

    // The right password: a session, back to where the reader was going
    let page = ops.sign_in("ops", OPS_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/"));

    // Search: by the family name, by a phone written nationally
    let page = ops.get("/customers?q=%E9%99%B3").await; // 陳
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("陳大文") && page.body.contains("陳小明"),
        "{}",
        page.body
    );
    let page = ops.get("/customers?q=0912+345+678&region=TW").await;
    assert!(page.body.contains("陳大文"), "{}", page.body);
    assert!(!page.body.contains("陳小明"), "{}", page.body);
    assert!(
        page.body.contains(&format!("/customers/{}", w.tai_man)),
        "{}",
        page.body
    );
    let page = ops.get("/customers?q=TAI.MAN%40example.hk").await;
    assert!(page.body.contains(&format!("/customers/{}", w.tai_man)));

    // His 360° page: both shops' copies and both shops' orders
    let page = ops.get(&format!("/customers/{}", w.tai_man)).await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "陳大文",
        "+886912345678",
        "shopa",
        "shopb",
        "#A-1001",
        "#B-2001",
        "1280.50",
        "Acme Taiwan",
    ] {
        assert!(
            page.body.contains(text),
            "{text} missing from the 360° page:\n{}",
            page.body
        );
    }

    // A form without its CSRF token is refused, and nothing changes
    let path = format!("/queues/conflicts/{}/resolve", w.conflict);
    let page = ops.post(&path, &[("take", "remote")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let page = ops
        .post(&path, &[("take", "remote"), ("csrf", "forged")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(
        w.store.conflict(w.conflict).await.unwrap().unwrap().status,
        "open"
    );

    // A viewer reads every page but changes nothing (403)
    let viewer = Browser::new(&base);
    assert_eq!(
        viewer.sign_in("viewer", VIEWER_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let vt = viewer.token().await;
    for (path, form) in [
        (
            path.clone(),
            vec![("take", "remote"), ("csrf", vt.as_str())],
        ),
        (
            format!("/queues/dead-letters/{}/replay", w.dead_letter),
            vec![("csrf", vt.as_str())],
        ),
        (
            "/queues/dead-letters/replay-all".to_string(),
            vec![("csrf", vt.as_str())],
        ),
        (
            format!("/queues/reviews/{}/merge", w.review),
            vec![("csrf", vt.as_str())],
        ),
        (
            format!("/queues/reviews/{}/keep-apart", w.review),
            vec![("csrf", vt.as_str())],
        ),
    ] {
        let page = viewer.post(&path, &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.body);
    }
    assert_eq!(
        w.store.conflict(w.conflict).await.unwrap().unwrap().status,
        "open"
    );
    assert!(w
        .store
        .dead_letter(w.dead_letter)
        .await
        .unwrap()
        .unwrap()
        .replayed_at
        .is_none());
    assert_eq!(
        w.store.review(w.review).await.unwrap().unwrap().status,
        "open"
    );
    for path in [
        "/queues/conflicts",
        "/queues/dead-letters",
        "/queues/reviews",
        "/queues/refused",
        "/pipelines",
    ] {
        let page = viewer.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            !page.body.contains("/resolve\""),
            "{path}: a viewer gets no action forms"
        );
    }
    assert_eq!(viewer.get("/audit").await.status, StatusCode::FORBIDDEN);

    // The operator resolves the conflict by taking shop B's value …
    let csrf = ops.token().await;
    let page = ops.get("/queues/conflicts").await;
    assert!(
        page.body.contains("Acme Taiwan") && page.body.contains("Acme HK"),
        "side by side"
    );
    let page = ops
        .post(&path, &[("take", "remote"), ("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let c = w.store.conflict(w.conflict).await.unwrap().unwrap();
    assert_eq!(c.status, "resolved");
    let rec = w.store.record(&w.tai_man).await.unwrap().unwrap();
    assert_eq!(
        rec.record.as_contact().unwrap().company.as_deref(),
        Some("Acme HK")
    );
    // … which the next run pushes out
    w.shops.run(&RunOptions::default()).await.unwrap();
    let pushed = w.ledger.live(ObjectKind::Contact);
    assert!(
        pushed
            .values()
            .any(|r| r.as_contact().and_then(|c| c.company.as_deref()) == Some("Acme HK")),
        "{pushed:#?}"
    );
    // … and his page says who did it
    let page = ops.get(&format!("/customers/{}", w.tai_man)).await;
    assert!(page.body.contains("conflict.resolve"), "{}", page.body);
    assert!(page.body.contains("<td>ops</td>"), "{}", page.body);
    let audit = w.store.audit_of_contact(&w.tai_man, 10).await.unwrap();
    assert_eq!(audit[0].actor, "ops");
    assert_eq!(audit[0].action, "conflict.resolve");

    // The operator replays the dead letter: it lands and leaves the queue
    let page = ops
        .post(
            &format!("/queues/dead-letters/{}/replay", w.dead_letter),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let d = w.store.dead_letter(w.dead_letter).await.unwrap().unwrap();
    assert!(d.resolved_at.is_some(), "{d:?}");
    let open: Vec<i64> = w
        .store
        .dead_letter_rows(false, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert!(!open.contains(&w.dead_letter), "{open:?}");
    let page = ops.get(page.location.as_deref().unwrap()).await;
    assert!(page.body.contains("1 landed"), "{}", page.body);
    let found = synchub_console::find_contacts(&w.store, "0922-000-111", Some("TW"), 5)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name.as_deref(), Some("林美玲"));
    let page = ops.get(&format!("/customers/{}", found[0].id)).await;
    assert!(page.body.contains("dead_letter.replay"), "{}", page.body);

    // "Replay all" replays what this console's pipelines read and names
    // the streams it leaves
    let mut tx = w.store.begin().await.unwrap();
    synchub_store::dead_letters::insert_many(
        &mut tx,
        &[synchub_store::dead_letters::DeadLetter {
            connection: "nowhere".into(),
            object: ObjectKind::Contact,
            external_id: Some("x1".into()),
            location: None,
            reason: "unknown".into(),
            payload: "{}".into(),
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let page = ops
        .post("/queues/dead-letters/replay-all", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = ops.get(page.location.as_deref().unwrap()).await;
    assert!(
        page.body
            .contains("1 left: no pipeline of this console reads nowhere.contact"),
        "{}",
        page.body
    );
    let letters = w.store.dead_letter_rows(true, 10).await.unwrap();
    for d in &letters {
        let from_csv = d.letter.connection == "people_csv";
        assert_eq!(d.replayed_at.is_some(), from_csv, "{d:?}");
    }

    // The operator merges the review pair, then undoes the merge
    let r = w.store.review(w.review).await.unwrap().unwrap();
    let page = ops
        .post(
            &format!("/queues/reviews/{}/merge", w.review),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        w.store.review(w.review).await.unwrap().unwrap().status,
        "merged"
    );
    assert_eq!(
        w.store
            .live_contact_id(&r.right_id)
            .await
            .unwrap()
            .as_deref(),
        Some(r.left_id.as_str())
    );
    let merge = w.store.contact_merges(&r.left_id).await.unwrap()[0].id;
    let page = ops.get(&format!("/customers/{}", r.left_id)).await;
    assert!(
        page.body.contains(&format!("/merges/{merge}/unmerge")),
        "{}",
        page.body
    );
    assert!(page.body.contains("review.merge"));
    let page = ops
        .post(&format!("/merges/{merge}/unmerge"), &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        w.store
            .live_contact_id(&r.right_id)
            .await
            .unwrap()
            .as_deref(),
        Some(r.right_id.as_str())
    );
    let page = ops.get(&format!("/customers/{}", r.right_id)).await;
    assert!(
        page.body.contains("merge.unmerge") && page.body.contains("review.merge"),
        "{}",
        page.body
    );

    // The pipelines page: last run, streams, the chart, the history
    let page = ops.get("/pipelines").await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "shops",
        "shopa.contact",
        "<svg",
        "Run history",
        "every 5 min",
    ] {
        assert!(page.body.contains(text), "{text} missing:\n{}", page.body);
    }
    let page = ops.get("/runs/1").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Run #1"));

    // An admin sees the audit log
    let boss = Browser::new(&base);
    assert_eq!(
        boss.sign_in("boss", OPS_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = boss.get("/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    for action in [
        "conflict.resolve",
        "dead_letter.replay",
        "review.merge",
        "merge.unmerge",
    ] {
        assert!(page.body.contains(action), "{action}");
    }

    // Signing out ends the session in the store
    let page = ops.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(ops.get("/").await.status, StatusCode::SEE_OTHER);

    // No password is kept in clear
    let user = w.store.user_by_name("ops").await.unwrap().unwrap();
    assert!(user.password_hash.starts_with("$argon2id$"));
    assert!(!user.password_hash.contains(OPS_PASSWORD));
}

#[tokio::test]
async fn console_end_to_end_sqlite() {
    console_end_to_end("sqlite").await;
}

#[tokio::test]
async fn console_end_to_end_postgres() {
    console_end_to_end("postgres").await;
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_strict_and_secure_behind_https() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let hash = synchub_console::hash_password(OPS_PASSWORD).unwrap();
    store.put_user("ops", Role::Operator, &hash).await.unwrap();

    // GIVEN a console served over plain http
    let base = serve(store.clone(), Vec::new(), ConsoleConfig::default()).await;
    let page = Browser::new(&base).sign_in("ops", OPS_PASSWORD).await;
    let session = page
        .cookies
        .iter()
        .find(|c| c.starts_with("synchub_session="))
        .expect("a session cookie");
    // THEN the session cookie is out of scripts' reach and not sent cross-site
    assert!(session.contains("; HttpOnly"), "{session}");
    assert!(session.contains("; SameSite=Strict"), "{session}");
    assert!(session.contains("; Path=/"), "{session}");
    assert!(!session.contains("Secure"), "{session}");
    // AND the store holds only its hash
    let token = session
        .trim_start_matches("synchub_session=")
        .split(';')
        .next()
        .unwrap();
    assert!(store.session(token).await.unwrap().is_none());
    assert!(store
        .session(&synchub_core::hash_bytes(token.as_bytes()))
        .await
        .unwrap()
        .is_some());

    // GIVEN a console people reach over https
    let secure = ConsoleConfig {
        secure_cookies: true,
        ..ConsoleConfig::default()
    };
    let base = serve(store.clone(), Vec::new(), secure).await;
    let page = Browser::new(&base).sign_in("ops", OPS_PASSWORD).await;
    let session = page
        .cookies
        .iter()
        .find(|c| c.starts_with("synchub_session="))
        .expect("a session cookie");
    // THEN it is also Secure
    assert!(
        session.contains("; Secure") && session.contains("; HttpOnly"),
        "{session}"
    );
}

#[tokio::test]
async fn the_login_form_is_refused_without_its_csrf_token() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let hash = synchub_console::hash_password(OPS_PASSWORD).unwrap();
    store.put_user("ops", Role::Operator, &hash).await.unwrap();
    let base = serve(store.clone(), Vec::new(), ConsoleConfig::default()).await;

    // GIVEN a client that never loaded the login form (a forged cross-site post)
    let b = Browser::new(&base);
    let page = b
        .post(
            "/login",
            &[
                ("name", "ops"),
                ("password", OPS_PASSWORD),
                ("csrf", "guess"),
            ],
        )
        .await;
    // THEN the right password does not open a session
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!page
        .cookies
        .iter()
        .any(|c| c.starts_with("synchub_session=")));

    // AND pages carry headers that keep them out of frames and scripts
    let ok = b.sign_in("ops", OPS_PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let r = b.http.get(format!("{base}/")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
}
