//! The Outlook connector against its stateful Graph sandbox: fixture
//! shapes, delta paging per folder, resume, an evicted delta token through
//! the engine (SQLite), throttling with Retry-After, token refresh, two-way
//! contacts with a conflict, and change notifications.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::RawQuery;
use axum::http::HeaderMap;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use synchub_core::model::Contact;
use synchub_core::{
    Change, ChangeOp, Connector, Cursor, ErrorClass, ObjectKind, Page, Record, Refusal,
    WebhookAction,
};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_http::webhook::{Delivery, MemoryReplayGuard, VerifiedDelivery, WebhookError};
use synchub_http::{
    BodyCheck, ConnectorFactory, Deps, MemoryTokenStore, QuotaRegistry, SecretString, TokenCipher,
    TokenSet, TokenVault,
};
use synchub_outlook::sandbox::{self, Fault, SandboxHandle};
use synchub_outlook::{OutlookConfig, OutlookConnector, OutlookFactory};
use synchub_testkit::TestDb;

const ACCESS: &str = "eyJ0eXAiOiJKV1Qi.initial";
const REFRESH: &str = "0.AAAA-refresh";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cipher() -> TokenCipher {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let hex: String = (0..32u32)
        .map(|i| format!("{:02x}", (seed.wrapping_mul(i + 11) >> 5) % 256))
        .collect();
    TokenCipher::from_key_material(&SecretString::from(hex)).unwrap()
}

async fn deps() -> Deps {
    let vault = TokenVault::new(Arc::new(MemoryTokenStore::default()), cipher());
    vault
        .save(
            "outlook",
            &TokenSet {
                access_token: SecretString::from(ACCESS.to_string()),
                refresh_token: Some(SecretString::from(REFRESH.to_string())),
                expires_at: Some(Utc::now() + chrono::Duration::hours(1)),
                scopes: vec![],
                extra: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
    let mut d = Deps::new("outlook", ".").with_tokens(vault);
    d.quotas = Box::leak(Box::new(QuotaRegistry::new()));
    d
}

fn config(sb: &SandboxHandle, extra: Value) -> OutlookConfig {
    let mut v = json!({
        "graph_url": sb.graph_url(),
        "page_size": 2,
        "client_state": "secretClientValue",
        "oauth": {"provider": "microsoft", "client_id": "cid", "tenant": "common",
                  "token_url": format!("{}/token", sb.base_url)}
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(v).unwrap()
}

async fn connector(sb: &SandboxHandle) -> OutlookConnector {
    OutlookConnector::build(config(sb, json!({})), &deps().await).unwrap()
}

fn seed(sb: &SandboxHandle) -> Vec<String> {
    let mut mb = sb.mailbox();
    let t = |m: u32| Utc.with_ymd_and_hms(2023, 11, 21, 2, m, 0).unwrap();
    let mut ids = Vec::new();
    for i in 0..3u32 {
        ids.push(mb.add_message(
            "inbox",
            ("林美玲", "MeiLing.Lin@Example.com.TW"),
            &[("Sales", "sales@example.com")],
            &format!("訂單 #{} 出貨通知", 1043 + i),
            t(i),
        ));
    }
    for i in 0..2u32 {
        ids.push(mb.add_message(
            "sentitems",
            ("Sales", "sales@example.com"),
            &[("陳大文", "tai.man@example.hk")],
            &format!("Re: 報價 {i}"),
            t(10 + i),
        ));
    }
    ids
}

async fn read_all(
    c: &OutlookConnector,
    object: ObjectKind,
    from: Option<Cursor>,
) -> Vec<(Option<Cursor>, Page)> {
    let mut out = Vec::new();
    let mut cursor = from;
    for _ in 0..100 {
        let page = c.pull(object, cursor.as_ref()).await.unwrap();
        let (next, done) = (page.next.clone(), page.done);
        out.push((cursor.clone(), page));
        if done {
            return out;
        }
        cursor = next;
    }
    panic!("no end");
}

fn keys_missing(fx: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (fx, actual) {
        (Value::Object(f), Value::Object(a)) => {
            for (k, v) in f {
                if k.starts_with('_') || k == "@odata.context" {
                    continue;
                }
                match a.get(k) {
                    Some(x) => keys_missing(v, x, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(f), Value::Array(a)) => {
            if let (Some(f0), Some(a0)) = (f.first(), a.first()) {
                keys_missing(f0, a0, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

async fn raw(sb: &SandboxHandle, url: &str) -> (u16, HeaderMap, Value) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(ACCESS)
        .header("Prefer", "odata.maxpagesize=2")
        .send()
        .await
        .unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    let _ = sb;
    (s, h, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn sandbox_answers_in_the_shapes_of_the_fixtures() {
    let sb = sandbox::spawn(ACCESS, REFRESH).await.unwrap();
    let ids = seed(&sb);
    let mut missing = Vec::new();
    let first = format!("{}/me/mailFolders/inbox/messages/delta", sb.graph_url());
    let (s, h, page) = raw(&sb, &first).await;
    assert_eq!(s, 200);
    assert_eq!(h["preference-applied"], "odata.maxpagesize=2");
    keys_missing(
        &fixture("messages_delta_page.json"),
        &page,
        "page",
        &mut missing,
    );
    let (_, _, last) = raw(&sb, page["@odata.nextLink"].as_str().unwrap()).await;
    let delta = last["@odata.deltaLink"].as_str().unwrap().to_string();
    {
        let mut mb = sb.mailbox();
        mb.delete_message(&ids[0]);
        mb.mark_read(&ids[1]);
    }
    let (_, _, fin) = raw(&sb, &delta).await;
    // The final fixture: a removal and an update carrying only what changed.
    let fx = fixture("messages_delta_final.json");
    assert!(fin.get("@odata.deltaLink").is_some());
    keys_missing(&fx["value"][0], &fin["value"][0], "removed", &mut missing);
    keys_missing(&fx["value"][1], &fin["value"][1], "partial", &mut missing);
    let partial = fin["value"][1].as_object().unwrap();
    assert!(!partial.contains_key("subject"), "{partial:?}");
    // Contacts.
    let id = sb.mailbox().add_contact(fixture("contact.json"));
    let (_, _, c) = raw(&sb, &format!("{}/me/contacts/{id}", sb.graph_url())).await;
    keys_missing(&fixture("contact.json"), &c, "contact", &mut missing);
    // Evicted token: 410 with the fixture's error.
    sb.mailbox().expire_delta_tokens();
    let (s, h, e) = raw(&sb, &delta).await;
    assert_eq!(s, 410);
    assert!(h.contains_key("location"));
    assert_eq!(
        e["error"]["code"],
        fixture("error_sync_state_not_found.json")["error"]["code"]
    );
    keys_missing(
        &fixture("error_sync_state_not_found.json"),
        &e,
        "410",
        &mut missing,
    );
    // Throttle: 429 with Retry-After and the fixture's body.
    sb.mailbox().faults.push_back(Fault::TooMany);
    let (s, h, e) = raw(&sb, &first).await;
    assert_eq!(s, 429);
    assert_eq!(h["retry-after"], "1");
    let mut fx429 = fixture("error_429.json");
    fx429.as_object_mut().unwrap().remove("_headers");
    assert_eq!(e, fx429);
    assert!(
        missing.is_empty(),
        "sandbox lacks fixture keys: {missing:?}"
    );
}

#[tokio::test]
async fn folders_are_read_to_the_end_and_every_cursor_resumes() {
    let sb = sandbox::spawn(ACCESS, REFRESH).await.unwrap();
    let ids = seed(&sb);
    let c = connector(&sb).await;
    let pages = read_all(&c, ObjectKind::Activity, None).await;
    // inbox: 2 + 1, sentitems: 2 → three pages, each message once.
    assert_eq!(pages.len(), 3);
    let got: Vec<String> = pages
        .iter()
        .flat_map(|(_, p)| p.records.iter().map(|r| r.external_id.clone()))
        .collect();
    assert_eq!(got.len(), 5);
    assert_eq!(
        got.iter().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect()
    );
    for (cur, page) in &pages {
        assert_eq!(
            &c.pull(ObjectKind::Activity, cur.as_ref()).await.unwrap(),
            page
        );
    }
    let log = sb.mailbox().log.clone();
    assert!(log
        .iter()
        .all(|l| !l.contains("delta") || l.contains("odata.maxpagesize=2")));
    let Some(Record::Activity(a)) = &pages[0].1.records[0].record else {
        panic!()
    };
    assert!(a.subject.as_deref().unwrap().starts_with("訂單"));
    assert_eq!(
        a.participants[0].email.as_deref(),
        Some("meiling.lin@example.com.tw")
    );
    assert_eq!(a.participants[0].name.as_deref(), Some("林美玲"));
    // Changes: a deletion, a read flag (partial: fetched in full) and a new mail.
    let cursor = pages.last().unwrap().1.next.clone();
    let fresh = {
        let mut mb = sb.mailbox();
        mb.delete_message(&ids[0]);
        mb.mark_read(&ids[1]);
        mb.add_message(
            "sentitems",
            ("Sales", "sales@example.com"),
            &[("王小明", "w@x.tw")],
            "新報價",
            Utc::now(),
        )
    };
    let inc = read_all(&c, ObjectKind::Activity, cursor).await;
    let recs: BTreeMap<String, _> = inc
        .iter()
        .flat_map(|(_, p)| p.records.clone())
        .map(|r| (r.external_id.clone(), r))
        .collect();
    assert_eq!(recs.len(), 3);
    assert!(recs[&ids[0]].deleted);
    let Some(Record::Activity(read)) = &recs[&ids[1]].record else {
        panic!()
    };
    assert!(read.subject.is_some(), "a partial update is read in full");
    assert!(!recs[&fresh].deleted);
}

#[tokio::test]
async fn an_evicted_delta_token_resyncs_through_the_engine_without_duplicates() {
    let sb = sandbox::spawn(ACCESS, REFRESH).await.unwrap();
    seed(&sb);
    let c: Arc<dyn Connector> = Arc::new(connector(&sb).await);
    let db = TestDb::sqlite();
    let store = db.store().await;
    let engine = Engine::new(
        store.clone(),
        "outlook",
        vec![Connection {
            name: "outlook".into(),
            connector: c,
            direction: Direction::Pull,
            objects: vec![ObjectKind::Activity],
            region: Some("HK".into()),
        }],
        Default::default(),
        BTreeMap::new(),
    );
    let links = || async {
        store
            .link_counts()
            .await
            .unwrap()
            .into_iter()
            .find(|(c, o, _)| c == "outlook" && o == "activity")
            .map_or(0, |(_, _, n)| n)
    };
    let r = engine.run(&RunOptions::default()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(links().await, 5);
    {
        let mut mb = sb.mailbox();
        mb.add_message(
            "inbox",
            ("張偉", "zhang.wei@example.cn"),
            &[("Sales", "sales@example.com")],
            "詢價",
            Utc::now(),
        );
        mb.expire_delta_tokens();
    }
    let r = engine.run(&RunOptions::default()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.streams.values().map(|s| s.resyncs).sum::<u64>(), 1);
    assert_eq!(links().await, 6);
    let r = engine.run(&RunOptions::default()).await.unwrap();
    assert_eq!(r.streams.values().map(|s| s.resyncs).sum::<u64>(), 0);
    assert_eq!(links().await, 6);
}

#[tokio::test]
async fn throttles_are_waited_out_and_an_expired_token_refreshed_once() {
    let sb = sandbox::spawn(ACCESS, REFRESH).await.unwrap();
    seed(&sb);
    let c = connector(&sb).await;
    sb.mailbox()
        .faults
        .extend([Fault::TooMany, Fault::Unavailable]);
    let started = std::time::Instant::now();
    let page = c.pull(ObjectKind::Activity, None).await.unwrap();
    assert_eq!(page.records.len(), 2);
    // Retry-After: 1 was honoured twice.
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    sb.mailbox().expire_access_tokens();
    let again = c.pull(ObjectKind::Activity, None).await.unwrap();
    assert_eq!(again, page);
    assert_eq!(sb.mailbox().refreshes, 1);
    assert_eq!(c.refresh_count(), 1);
    // Without tokens: the command to run.
    let bare = OutlookConnector::build(config(&sb, json!({})), &Deps::new("outlook", ".")).unwrap();
    let e = bare.pull(ObjectKind::Activity, None).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Reauth);
    assert!(e.to_string().contains("run `synchub auth outlook`"), "{e}");
}

#[tokio::test]
async fn contacts_flow_both_ways_and_a_changed_contact_is_a_conflict() {
    let sb = sandbox::spawn(ACCESS, REFRESH).await.unwrap();
    let existing = sb.mailbox().add_contact(fixture("contact.json"));
    let c = connector(&sb).await;
    let pages = read_all(&c, ObjectKind::Contact, None).await;
    let r = &pages[0].1.records[0];
    assert_eq!(r.external_id, existing);
    assert_eq!(
        r.record
            .as_ref()
            .and_then(Record::as_contact)
            .unwrap()
            .full_name
            .as_deref(),
        Some("張偉")
    );
    let synced = pages.last().unwrap().1.next.clone();
    // Create from the CRM.
    let person = Contact {
        full_name: Some("陳大文".into()),
        given_name: Some("大文".into()),
        family_name: Some("陳".into()),
        emails: vec!["tai.man@example.hk".into()],
        ..Contact::default()
    };
    let create = Change {
        crm_id: "crm-1".into(),
        op: ChangeOp::Create,
        external_id: None,
        base_version: None,
        record: Record::Contact(person.clone()),
        idempotency_key: "k1".into(),
        base: None,
    };
    let w = c
        .push(ObjectKind::Contact, std::slice::from_ref(&create))
        .await
        .unwrap()[0]
        .result
        .clone()
        .unwrap();
    assert_eq!(
        sb.mailbox().contacts[&w.external_id].body["displayName"],
        "陳大文"
    );
    // The engine retries the create (its first answer was lost): still one contact.
    let retried = c
        .push(ObjectKind::Contact, std::slice::from_ref(&create))
        .await
        .unwrap()[0]
        .result
        .clone()
        .unwrap();
    assert_eq!(retried.external_id, w.external_id);
    assert_eq!(sb.mailbox().contacts.len(), 2);
    // Another create (another key) is another contact.
    let other = Change {
        crm_id: "crm-2".into(),
        idempotency_key: "k9".into(),
        ..create.clone()
    };
    let w9 = c.push(ObjectKind::Contact, &[other]).await.unwrap()[0]
        .result
        .clone()
        .unwrap();
    assert_ne!(w9.external_id, w.external_id);
    assert_eq!(sb.mailbox().contacts.len(), 3);
    // Sparse update with If-Match.
    let mut titled = person.clone();
    titled.title = Some("經理".into());
    let update = Change {
        op: ChangeOp::Update,
        external_id: Some(w.external_id.clone()),
        base_version: w.version.clone(),
        record: Record::Contact(titled.clone()),
        idempotency_key: "k2".into(),
        base: Some(create.record.clone()),
        ..create.clone()
    };
    let w2 = c
        .push(ObjectKind::Contact, std::slice::from_ref(&update))
        .await
        .unwrap()[0]
        .result
        .clone()
        .unwrap();
    assert_ne!(w2.version, w.version);
    // An edit in Outlook, then our stale write: 412 → conflict with the current contact.
    sb.mailbox()
        .edit_contact(&w.external_id, |b| b["displayName"] = json!("陳大文先生"));
    let mut again = titled.clone();
    again.company = Some("範例".into());
    let stale = Change {
        base_version: w2.version.clone(),
        record: Record::Contact(again),
        idempotency_key: "k3".into(),
        ..update
    };
    match &c.push(ObjectKind::Contact, &[stale]).await.unwrap()[0].result {
        Err(Refusal::Conflict {
            current: Some(cur), ..
        }) => assert_eq!(
            cur.record
                .as_ref()
                .and_then(Record::as_contact)
                .unwrap()
                .full_name
                .as_deref(),
            Some("陳大文先生")
        ),
        other => panic!("expected conflict, got {other:?}"),
    }
    // The Outlook edit and our creation come through the delta link.
    let inc = read_all(&c, ObjectKind::Contact, synced.clone()).await;
    let ids: BTreeSet<String> = inc
        .iter()
        .flat_map(|(_, p)| p.records.iter().map(|r| r.external_id.clone()))
        .collect();
    assert!(ids.contains(&w.external_id));
    // Evicted: resync.
    sb.mailbox().expire_delta_tokens();
    let e = c
        .pull(ObjectKind::Contact, synced.as_ref())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Resync, "{e}");
}

#[tokio::test]
async fn notifications_handshake_verify_and_subscriptions_renew() {
    let sb = sandbox::spawn(ACCESS, REFRESH).await.unwrap();
    let built = OutlookFactory::build(config(&sb, json!({})), &deps().await).unwrap();
    let hooks = built
        .webhooks
        .clone()
        .expect("webhooks with a client_state");
    // A notification endpoint answering Graph's handshake through the source.
    let h2 = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |RawQuery(q): RawQuery, headers: HeaderMap| {
            let h = h2.clone();
            async move {
                match h.handshake(q.as_deref(), &headers) {
                    Some(hs) => (
                        axum::http::StatusCode::from_u16(hs.status).unwrap(),
                        [("content-type", hs.content_type)],
                        hs.body,
                    ),
                    None => (
                        axum::http::StatusCode::ACCEPTED,
                        [("content-type", "text/plain")],
                        String::new(),
                    ),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // Create: one subscription per folder plus contacts, each validated.
    let next = hooks.renew(&url).await.unwrap().unwrap();
    assert!(next > Utc::now() + chrono::Duration::days(1));
    assert_eq!(sb.mailbox().subscriptions.len(), 3);
    let first: Vec<String> = sb.mailbox().subscriptions.keys().cloned().collect();
    // Renew: the same subscriptions, patched.
    hooks.renew(&url).await.unwrap();
    assert_eq!(
        sb.mailbox()
            .subscriptions
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        first
    );
    assert_eq!(
        sb.mailbox()
            .log
            .iter()
            .filter(|l| l.starts_with("PATCH /v1.0/subscriptions/"))
            .count(),
        3
    );
    // A notification URL that does not echo the token: Graph refuses.
    let e = hooks.renew("http://127.0.0.1:9/nothing").await;
    assert!(
        e.is_ok(),
        "renewal patches existing subscriptions without a handshake"
    );
    // Verification: the fixture's clientState is ours; a forged one is not.
    let body = serde_json::to_vec(&fixture("change_notification.json")).unwrap();
    assert!(matches!(
        hooks.begin(&HeaderMap::new()).unwrap(),
        BodyCheck::Unsigned { .. }
    ));
    let delivery = VerifiedDelivery {
        delivery: Delivery { id: "d1".into() },
        content_id: "c1".into(),
    };
    let guard = MemoryReplayGuard::new(std::time::Duration::from_secs(60), 100);
    let action = hooks
        .classify(&delivery, &HeaderMap::new(), &body, &guard)
        .await
        .unwrap();
    assert_eq!(
        action,
        WebhookAction::Sync {
            object: ObjectKind::Activity,
            deleted: None
        }
    );
    assert_eq!(
        hooks
            .classify(&delivery, &HeaderMap::new(), &body, &guard)
            .await
            .unwrap(),
        WebhookAction::Nothing("duplicate")
    );
    let forged = String::from_utf8(body)
        .unwrap()
        .replace("secretClientValue", "secretClientValuX");
    let other = VerifiedDelivery {
        delivery: Delivery { id: "d2".into() },
        content_id: "c2".into(),
    };
    assert_eq!(
        hooks
            .classify(&other, &HeaderMap::new(), forged.as_bytes(), &guard)
            .await
            .unwrap_err(),
        WebhookError::BadClientState
    );
}

#[tokio::test]
async fn subscription_creation_fails_when_the_endpoint_does_not_validate() {
    let sb = sandbox::spawn(ACCESS, REFRESH).await.unwrap();
    let built = OutlookFactory::build(config(&sb, json!({})), &deps().await).unwrap();
    let hooks = built.webhooks.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "wrong" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let e = hooks.renew(&url).await.unwrap_err();
    assert!(e.to_string().contains("subscriptions.create"), "{e}");
    assert!(sb.mailbox().subscriptions.is_empty());
}

#[tokio::test]
async fn the_erased_factory_names_the_key_of_a_bad_setting() {
    use synchub_http::{DynFactory, Factory};
    let f = Factory::<OutlookFactory>::new();
    assert_eq!(f.kind(), "outlook");
    let deps = Deps::new("outlook", ".");
    let bad = json!({"oauth": {"provider": "microsoft", "client_id": "x"}, "folders": []});
    let e = f.build("connections[0].config", &bad, &deps).err().unwrap();
    assert!(
        e.to_string().contains("connections[0].config") && e.to_string().contains("folders"),
        "{e}"
    );
    let typo = json!({"oauth": {"provider": "microsoft", "client_id": "x"}, "folder": ["inbox"]});
    let e = f
        .build("connections[0].config", &typo, &deps)
        .err()
        .unwrap();
    assert!(e.to_string().contains("folder"), "{e}");
    // Without a client_state there is no webhook side.
    let plain = json!({"oauth": {"provider": "microsoft", "client_id": "x"}});
    assert!(f
        .build("connections[0].config", &plain, &deps)
        .unwrap()
        .webhooks
        .is_none());
}
