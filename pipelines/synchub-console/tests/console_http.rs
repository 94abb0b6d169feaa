//! The ops console through real HTTP: a server on a loopback port, a
//! browser-like client keeping cookies (reqwest's cookie store), a store
//! with customers from two shops, a conflict, a dead letter, a review pair
//! and a push target — on SQLite and on PostgreSQL. After every action the
//! store is read to see that it happened (or did not).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection as _;
use synchub_console::{Console, ConsoleConfig};
use synchub_core::merge::MergePolicy;
use synchub_core::ObjectKind;
use synchub_engine::{Direction, Engine, RunOptions};
use synchub_store::users::Role;
use synchub_store::Store;
use synchub_testkit::{MemorySystem, TestDb};

mod common;

use common::*;

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
    let page = ops.get("/customers?q=0932+111+222&region=TW").await;
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
        "+886932111222",
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

/// Names in several scripts and spellings, from one shop.
async fn people(store: &Store) {
    let shop = MemorySystem::new("people");
    let people = [
        json!({"full_name": "陳大文", "given_name": "大文", "family_name": "陳", "emails": ["dm@example.hk"]}),
        json!({"full_name": "陈大文", "emails": ["dm@example.cn"]}),
        json!({"full_name": "陳 大文", "emails": ["spaced@example.hk"]}),
        json!({"given_name": "大文", "family_name": "黃", "emails": ["wong@example.hk"]}),
        json!({"full_name": "林美玲", "emails": ["mei@example.tw"]}),
        json!({"full_name": "Tai Man Chan", "emails": ["tmc@example.com"]}),
        json!({"given_name": "Siu Ming", "family_name": "Wong", "emails": ["smw@example.com"]}),
        json!({"full_name": "José García", "emails": ["jose@example.es"]}),
        json!({"full_name": "田中太郎", "emails": ["taro@example.jp"]}),
        json!({"emails": ["nameless_50%@example.org"]}),
    ];
    for (i, p) in people.into_iter().enumerate() {
        shop.put(&format!("p{i}"), record(ObjectKind::Contact, p));
    }
    let engine = Engine::new(
        store.clone(),
        "people",
        vec![memory_conn(
            "people",
            &shop,
            Direction::Pull,
            &[ObjectKind::Contact],
        )],
        MergePolicy::default(),
        BTreeMap::new(),
    );
    engine.run(&RunOptions::default()).await.unwrap();
}

async fn names_found(store: &Store, q: &str) -> Vec<String> {
    let mut names: Vec<String> = synchub_console::find_contacts(store, q, None, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name.unwrap_or_default())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn name_search_through_the_postgres_indexes_finds_what_the_sqlite_scan_finds() {
    // GIVEN the same people in a PostgreSQL store (searched through the
    // trigram and CJK-gram indexes of migration 0010) and in a SQLite one
    // (searched by reading every contact)
    let pg_db = TestDb::postgres().await;
    let pg = pg_db.store().await;
    let lite_db = TestDb::sqlite();
    let lite = lite_db.store().await;
    people(&pg).await;
    people(&lite).await;
    // WHEN each is searched by a name in any script, whole or in part
    for (q, expected) in [
        ("陳", vec!["陳 大文", "陳大文"]),
        ("大文", vec!["大文 黃", "陈大文", "陳 大文", "陳大文"]),
        ("陳大文", vec!["陳 大文", "陳大文"]),
        ("陳 大文", vec!["陳 大文", "陳大文"]),
        ("黃大文", vec!["大文 黃"]),
        ("陈", vec!["陈大文"]),
        ("美", vec!["林美玲"]),
        ("太郎", vec!["田中太郎"]),
        ("chan", vec!["Tai Man Chan"]),
        ("TAI MAN", vec!["Tai Man Chan"]),
        ("wong", vec!["Siu Ming Wong", "大文 黃"]),
        ("garcía", vec!["José García"]),
        ("50%", vec!["nameless_50%@example.org"]),
        ("example.tw", vec!["林美玲"]),
        ("nobody", vec![]),
    ] {
        // THEN both find the same people
        let on_pg = names_found(&pg, q).await;
        assert_eq!(on_pg, expected, "postgres, {q}");
        assert_eq!(
            names_found(&lite, q).await,
            on_pg,
            "sqlite vs postgres, {q}"
        );
    }
    // AND the indexes exist where the search looks
    let row: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_indexes WHERE indexname IN \
         ('crm_contact_search_trgm', 'crm_contact_search_grams')",
    )
    .fetch_one(
        &mut sqlx::postgres::PgConnection::connect(&pg_db.url)
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(row.0, 2);
}

/// The number in the first `td.left` cell after `key`.
fn allowance_left(body: &str, key: &str) -> f64 {
    let at = body
        .find(key)
        .unwrap_or_else(|| panic!("{key} not shown:\n{body}"));
    let marker = "class=\"num left\">";
    let start = body[at..].find(marker).unwrap() + at + marker.len();
    let end = body[start..].find('<').unwrap() + start;
    body[start..end].parse().unwrap()
}

#[tokio::test]
async fn the_pipelines_page_shows_each_credentials_allowance_and_token_expiry_never_the_token() {
    use synchub_http::{SecretString, TokenCipher, TokenSet, TokenVault};
    let db = TestDb::postgres().await;
    let store = db.store().await;
    // GIVEN a shared bucket of 1000 points refilling 50 a second that held
    // 200 points 2 s ago (by the database's clock), one not learned yet …
    let mut pg = sqlx::postgres::PgConnection::connect(&db.url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO rate_budget (key, capacity, refill_per_sec, level, at_epoch) VALUES \
         ('shopify:acme#cost', 1000, 50, 200, EXTRACT(EPOCH FROM clock_timestamp()) - 2), \
         ('xero:books#requests', NULL, NULL, 0, EXTRACT(EPOCH FROM clock_timestamp()))",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    // … and two OAuth connections in the vault: one valid for an hour with
    // a refresh token, one expired two hours ago without
    let key = SecretString::from(
        (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect::<String>(),
    );
    let vault = TokenVault::new(
        Arc::new(synchub_store::tokens::SqlTokenStore::new(store.clone())),
        TokenCipher::from_key_material(&key).unwrap(),
    );
    let access = format!("ya29.access-{}", rand::random::<u64>());
    let refresh = format!("1//refresh-{}", rand::random::<u64>());
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let token = |access: &str, refresh: Option<&str>, expires| TokenSet {
        access_token: SecretString::from(access.to_string()),
        refresh_token: refresh.map(|r| SecretString::from(r.to_string())),
        expires_at: Some(expires),
        scopes: vec!["mail.read".into()],
        extra: BTreeMap::new(),
    };
    vault
        .save("gmail_ops", &token(&access, Some(&refresh), in_an_hour))
        .await
        .unwrap();
    vault
        .save(
            "outlook_old",
            &token(
                &access,
                None,
                chrono::Utc::now() - chrono::Duration::hours(2),
            ),
        )
        .await
        .unwrap();
    let hash = synchub_console::hash_password(VIEWER_PASSWORD).unwrap();
    store.put_user("viewer", Role::Viewer, &hash).await.unwrap();
    let console = Console::new(store.clone(), Vec::new(), ConsoleConfig::default())
        .unwrap()
        .with_token_vault(vault);
    let base = serve_console(console).await;
    let viewer = Browser::new(&base);
    viewer.sign_in("viewer", VIEWER_PASSWORD).await;

    // WHEN a viewer opens the pipelines page
    let page = viewer.get("/pipelines").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = page.body;
    // THEN the bucket shows what is left now: 200 + 50/s since, at most 1000
    let left = allowance_left(&body, "shopify:acme#cost");
    assert!((300.0..=1000.0).contains(&left), "{left}");
    assert!(body.contains("50 per second"), "{body}");
    assert!(body.contains("xero:books#requests"), "{body}");
    assert!(body.contains("not learned yet"), "{body}");
    // AND each token's validity and expiry, and whether it can be refreshed
    let gmail = &body[body.find("gmail_ops").unwrap()..body.find("outlook_old").unwrap()];
    assert!(
        gmail.contains("valid") && !gmail.contains("expired"),
        "{gmail}"
    );
    assert!(
        gmail.contains(&in_an_hour.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "{gmail}"
    );
    assert!(gmail.contains(">held<"), "{gmail}");
    let outlook = &body[body.find("outlook_old").unwrap()..];
    assert!(outlook.contains("expired"), "{outlook}");
    assert!(outlook.contains("sign in again"), "{outlook}");
    // AND never the tokens themselves
    assert!(!body.contains(&access) && !body.contains(&refresh));

    // A console holding another key says it cannot open them, and no more
    let other = SecretString::from("ab".repeat(32));
    let console = Console::new(store.clone(), Vec::new(), ConsoleConfig::default())
        .unwrap()
        .with_token_vault(TokenVault::new(
            Arc::new(synchub_store::tokens::SqlTokenStore::new(store.clone())),
            TokenCipher::from_key_material(&other).unwrap(),
        ));
    let base = serve_console(console).await;
    let viewer = Browser::new(&base);
    viewer.sign_in("viewer", VIEWER_PASSWORD).await;
    let body = viewer.get("/pipelines").await.body;
    assert!(body.contains("cannot be opened here"), "{body}");
    assert!(!body.contains(&access) && !body.contains(&refresh));
}
