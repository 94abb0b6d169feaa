//! The Gmail connector against its stateful sandbox: the sandbox is checked
//! against the recorded fixtures first, then the connector is driven
//! through pagination, resume, history expiry (through the engine, on
//! SQLite), throttles, token refresh and two-way contacts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};
use synchub_core::model::Contact;
use synchub_core::{
    Change, ChangeOp, Connector, ConnectorError, Cursor, ErrorClass, ObjectKind, Page, Record,
    Refusal,
};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_gmail::sandbox::{self, Fault, SandboxHandle};
use synchub_gmail::{GmailConfig, GmailConnector};
use synchub_http::{
    Deps, MemoryTokenStore, QuotaRegistry, SecretString, TokenCipher, TokenSet, TokenVault,
};
use synchub_testkit::TestDb;

const ACCESS: &str = "ya29.initial";
const REFRESH: &str = "1//refresh-sandbox";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A key generated at test time (no key material in the source).
fn cipher() -> TokenCipher {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let hex: String = (0..32u32)
        .map(|i| format!("{:02x}", (seed.wrapping_mul(i + 7) >> 3) % 256))
        .collect();
    TokenCipher::from_key_material(&SecretString::from(hex)).unwrap()
}

async fn vault_with(name: &str, access: Option<&str>) -> TokenVault {
    let vault = TokenVault::new(Arc::new(MemoryTokenStore::default()), cipher());
    if let Some(access) = access {
        let set = TokenSet {
            access_token: SecretString::from(access.to_string()),
            refresh_token: Some(SecretString::from(REFRESH.to_string())),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
            scopes: vec![],
            extra: BTreeMap::new(),
        };
        vault.save(name, &set).await.unwrap();
    }
    vault
}

fn config(base: &str, extra: Value) -> GmailConfig {
    let mut v = json!({
        "gmail_url": base,
        "people_url": base,
        "page_size": 3,
        "people_page_size": 2,
        "oauth": {"provider": "generic", "client_id": "cid", "client_secret": "csecret",
                  "auth_url": format!("{base}/auth"), "token_url": format!("{base}/token")}
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(v).unwrap()
}

async fn connector(sb: &SandboxHandle, extra: Value) -> GmailConnector {
    let mut deps = Deps::new("mail", ".").with_tokens(vault_with("mail", Some(ACCESS)).await);
    deps.quotas = Box::leak(Box::new(QuotaRegistry::new()));
    GmailConnector::build(config(&sb.base_url, extra), &deps).unwrap()
}

async fn sandbox() -> SandboxHandle {
    sandbox::spawn("sales@example.com.tw", ACCESS, REFRESH)
        .await
        .unwrap()
}

/// Seeds `n` inbox messages, each from a CJK-named sender, one minute apart.
fn seed(sb: &SandboxHandle, n: usize) -> Vec<String> {
    let mut acc = sb.account();
    (0..n)
        .map(|i| {
            let from = format!("\"陳大文{i}\" <Tai.Man.{i}@Example.com.HK>");
            let subject = format!("報價單 Q-2023-{i:03}");
            let mid = format!("<q{i}@mail.example.com.hk>");
            acc.add_message(
                None,
                &["INBOX", "UNREAD"],
                &[
                    ("From", from.as_str()),
                    ("To", "sales@example.com.tw"),
                    (
                        "Cc",
                        "\"林美玲\" <meiling.lin@example.com.tw>, boss@example.com.tw",
                    ),
                    ("Subject", subject.as_str()),
                    ("Message-ID", mid.as_str()),
                ],
                "您好，附上報價單，請查收。",
                1_700_640_000_000 + i as i64 * 60_000,
            )
        })
        .collect()
}

/// Reads a stream to its end; returns every page and the cursor each started from.
async fn read_all(
    c: &GmailConnector,
    object: ObjectKind,
    from: Option<Cursor>,
) -> Vec<(Option<Cursor>, Page)> {
    let mut out = Vec::new();
    let mut cursor = from;
    for _ in 0..100 {
        let page = c.pull(object, cursor.as_ref()).await.unwrap();
        let next = page.next.clone();
        let done = page.done;
        out.push((cursor.clone(), page));
        if done {
            return out;
        }
        cursor = next;
    }
    panic!("no end after 100 pages");
}

fn ids(pages: &[(Option<Cursor>, Page)]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|(_, p)| p.records.iter().map(|r| r.external_id.clone()))
        .collect()
}

/// Keys of `fixture` (recursively; arrays by their first item) missing from `actual`.
fn missing_keys(fixture: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (fixture, actual) {
        (Value::Object(f), Value::Object(a)) => {
            for (k, v) in f {
                if k.starts_with('_') {
                    continue;
                }
                match a.get(k) {
                    Some(x) => missing_keys(v, x, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(f), Value::Array(a)) => {
            if let (Some(f0), Some(a0)) = (f.first(), a.first()) {
                missing_keys(f0, a0, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

async fn raw_get(sb: &SandboxHandle, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", sb.base_url))
        .bearer_auth(ACCESS)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn sandbox_answers_in_the_shapes_of_the_fixtures() {
    let sb = sandbox().await;
    let ids = seed(&sb, 2);
    let start = sb.account().history_id;
    {
        let mut acc = sb.account();
        acc.add_message(None, &["INBOX"], &[("From", "a@b.c")], "x", 1);
        acc.add_labels(&ids[0], &["TRASH"]);
        acc.delete_message(&ids[1]);
    }
    let mut missing = Vec::new();
    // messages.get?format=metadata
    let (s, msg) = raw_get(
        &sb,
        &format!(
            "/gmail/v1/users/me/messages/{}?format=metadata&metadataHeaders=From",
            ids[0]
        ),
    )
    .await;
    assert_eq!(s, 200);
    missing_keys(
        &fixture("message_metadata.json"),
        &msg,
        "message",
        &mut missing,
    );
    // history.list: every record kind of the fixture appears with its keys.
    let (s, hist) = raw_get(
        &sb,
        &format!("/gmail/v1/users/me/history?startHistoryId={start}&maxResults=2"),
    )
    .await;
    assert_eq!(s, 200);
    let (_, hist2) = raw_get(
        &sb,
        &format!(
            "/gmail/v1/users/me/history?startHistoryId={start}&maxResults=2&pageToken={}",
            hist["nextPageToken"].as_str().unwrap()
        ),
    )
    .await;
    let fx = fixture("history_list.json");
    let mut records: Vec<Value> = hist["history"].as_array().unwrap().clone();
    records.extend(hist2["history"].as_array().unwrap().iter().cloned());
    for f in fx["history"].as_array().unwrap() {
        let kind = [
            "messagesAdded",
            "labelsAdded",
            "messagesDeleted",
            "labelsRemoved",
        ]
        .into_iter()
        .find(|k| f.get(*k).is_some())
        .unwrap();
        if kind == "labelsRemoved" {
            continue; // not produced in this scenario
        }
        let a = records
            .iter()
            .find(|r| r.get(kind).is_some())
            .unwrap_or_else(|| panic!("no {kind}"));
        missing_keys(f, a, &format!("history.{kind}"), &mut missing);
    }
    assert!(hist.get("nextPageToken").is_some() && hist.get("historyId").is_some());
    // Expired history id: the fixture's 404.
    sb.account().expire_history();
    let (s, e) = raw_get(
        &sb,
        &format!("/gmail/v1/users/me/history?startHistoryId={start}"),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(e, fixture("error_404_history.json"));
    // Throttle: the fixture's 403.
    sb.account().faults.push_back(Fault::UserRateLimit);
    let (s, e) = raw_get(&sb, "/gmail/v1/users/me/profile").await;
    assert_eq!(s, 403);
    assert_eq!(e, fixture("error_403_rate.json"));
    // People: a page with a tombstone, then the expired sync token error.
    let p = {
        let mut acc = sb.account();
        let p = acc.add_person(json!({"names": [{"givenName": "小明", "familyName": "王", "unstructuredName": "王小明"}],
            "emailAddresses": [{"value": "xiaoming.wang@example.com.tw", "type": "work"}],
            "phoneNumbers": [{"value": "0912-345-678", "canonicalForm": "+886912345678", "type": "mobile"}],
            "organizations": [{"name": "台灣範例股份有限公司", "title": "採購經理"}]}));
        acc.add_person(json!({"names": [{"unstructuredName": "x"}]}));
        p
    };
    let (_, first) = raw_get(
        &sb,
        "/v1/people/me/connections?personFields=names,metadata&requestSyncToken=true",
    )
    .await;
    let token = first["nextSyncToken"].as_str().unwrap().to_string();
    {
        let mut acc = sb.account();
        let other = acc.people.keys().find(|k| **k != p).cloned().unwrap();
        acc.write_person(&other, json!({}), true);
    }
    let (_, changes) = raw_get(
        &sb,
        &format!("/v1/people/me/connections?personFields=names,metadata&requestSyncToken=true&syncToken={token}"),
    )
    .await;
    let fx = fixture("people_connections_page.json");
    missing_keys(
        &fx["connections"][0],
        &first["connections"][0],
        "person",
        &mut missing,
    );
    missing_keys(
        &fx["connections"][1],
        &changes["connections"][0],
        "tombstone",
        &mut missing,
    );
    assert!(changes.get("nextSyncToken").is_some() && changes.get("totalItems").is_some());
    sb.account().expire_sync_tokens();
    let (s, e) = raw_get(
        &sb,
        &format!("/v1/people/me/connections?personFields=names&syncToken={token}"),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(e, fixture("people_expired_sync_token.json"));
    // `personFields` is required.
    let (s, _) = raw_get(&sb, "/v1/people/me/connections").await;
    assert_eq!(s, 400);
    // The sandbox may add keys; it must not lack any of the fixtures' keys.
    assert!(
        missing.is_empty(),
        "sandbox lacks fixture keys: {missing:?}"
    );
}

#[tokio::test]
async fn reads_every_message_once_and_resumes_from_every_cursor() {
    let sb = sandbox().await;
    let seeded = seed(&sb, 8);
    let c = connector(&sb, json!({})).await;
    let pages = read_all(&c, ObjectKind::Activity, None).await;
    // GIVEN 8 messages and pages of 3 WHEN read to the end THEN 3 pages, each message once.
    assert_eq!(pages.len(), 3);
    let got: BTreeSet<String> = ids(&pages).into_iter().collect();
    assert_eq!(got, seeded.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(ids(&pages).len(), 8);
    // Every page, replayed from the cursor it started at, is the same page.
    for (cursor, page) in &pages {
        let again = c.pull(ObjectKind::Activity, cursor.as_ref()).await.unwrap();
        assert_eq!(&again, page);
    }
    // The activity carries the CJK subject and lower-cased participants.
    let r = &pages[0].1.records[0];
    let Some(Record::Activity(a)) = &r.record else {
        panic!("activity")
    };
    assert!(a.subject.as_deref().unwrap().starts_with("報價單"));
    let from = &a.participants[0];
    assert!(from.name.as_deref().unwrap().starts_with("陳大文"));
    assert!(from.email.as_deref().unwrap().starts_with("tai.man."));
    assert_eq!(a.participants.iter().filter(|p| p.role == "cc").count(), 2);
    // metadata by default, with only the headers asked for.
    let log = sb.account().log.clone();
    assert!(log
        .iter()
        .any(|l| l.contains("format=metadata") && l.contains("metadataHeaders=Message-ID")));
    // Quota units: 1 (profile) per first page, 5 per list, 5 per get.
    assert!(sb.account().units_spent >= 1 + 3 * 5 + 8 * 5);
}

#[tokio::test]
async fn history_brings_new_trashed_and_deleted_messages() {
    let sb = sandbox().await;
    let seeded = seed(&sb, 4);
    let c = connector(&sb, json!({"labels": ["INBOX"]})).await;
    let first = read_all(&c, ObjectKind::Activity, None).await;
    let cursor = first.last().unwrap().1.next.clone();
    assert_eq!(cursor.as_ref().unwrap().0["mode"], "history");
    // GIVEN new mail, one trashed, one deleted and one sent-only message
    let fresh = {
        let mut acc = sb.account();
        let fresh = acc.add_message(
            None,
            &["INBOX"],
            &[("From", "新客戶 <New@Example.tw>"), ("Subject", "詢價")],
            "s",
            1_700_700_000_000,
        );
        acc.add_message(
            None,
            &["SENT"],
            &[("From", "sales@example.com.tw"), ("Subject", "out")],
            "s",
            1_700_700_000_001,
        );
        acc.add_labels(&seeded[0], &["TRASH"]);
        acc.delete_message(&seeded[1]);
        fresh
    };
    // WHEN the history is read (pages of 3 records)
    let pages = read_all(&c, ObjectKind::Activity, cursor.clone()).await;
    let all: Vec<_> = pages.iter().flat_map(|(_, p)| p.records.clone()).collect();
    // THEN the new inbox message comes, the sent-only one is filtered out,
    // the trashed and deleted ones come as deletions.
    let by_id: BTreeMap<_, _> = all.iter().map(|r| (r.external_id.clone(), r)).collect();
    assert!(!by_id[&fresh].deleted);
    assert!(by_id[&seeded[0]].deleted);
    assert!(by_id[&seeded[1]].deleted);
    assert_eq!(by_id.len(), 3, "{:?}", by_id.keys());
    // Resume from every cursor of the history read gives the same pages.
    for (cur, page) in &pages {
        assert_eq!(
            &c.pull(ObjectKind::Activity, cur.as_ref()).await.unwrap(),
            page
        );
    }
    // A quiet mailbox: one empty page, done, cursor at the mailbox's history id.
    let last = pages.last().unwrap().1.next.clone();
    let quiet = c.pull(ObjectKind::Activity, last.as_ref()).await.unwrap();
    assert!(quiet.records.is_empty() && quiet.done);
    assert_eq!(
        quiet.next.unwrap().0["start"],
        json!(sb.account().history_id.to_string())
    );
}

#[tokio::test]
async fn expired_history_id_resyncs_through_the_engine_without_duplicates() {
    let sb = sandbox().await;
    seed(&sb, 5);
    let c: Arc<dyn Connector> = Arc::new(connector(&sb, json!({})).await);
    let db = TestDb::sqlite();
    let store = db.store().await;
    let engine = Engine::new(
        store.clone(),
        "mail",
        vec![Connection {
            name: "mail".into(),
            connector: c.clone(),
            direction: Direction::Pull,
            objects: vec![ObjectKind::Activity],
            region: Some("TW".into()),
        }],
        Default::default(),
        BTreeMap::new(),
    );
    let activity_links = || async {
        store
            .link_counts()
            .await
            .unwrap()
            .into_iter()
            .find(|(conn, obj, _)| conn == "mail" && obj == "activity")
            .map_or(0, |(_, _, n)| n)
    };
    let r = engine.run(&RunOptions::default()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(activity_links().await, 5);
    // GIVEN one more message and a history id Google no longer keeps
    {
        let mut acc = sb.account();
        acc.add_message(
            None,
            &["INBOX"],
            &[("From", "王小明 <w@x.tw>"), ("Subject", "再次詢價")],
            "s",
            1_700_900_000_000,
        );
        acc.expire_history();
    }
    // WHEN the next run reads
    let r = engine.run(&RunOptions::default()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // THEN it resynced once and holds six activities, none twice.
    assert_eq!(r.streams.values().map(|s| s.resyncs).sum::<u64>(), 1);
    assert_eq!(activity_links().await, 6);
    // And the run after that is incremental again.
    let r = engine.run(&RunOptions::default()).await.unwrap();
    assert_eq!(r.streams.values().map(|s| s.resyncs).sum::<u64>(), 0);
    assert_eq!(activity_links().await, 6);
}

#[tokio::test]
async fn rate_limit_403_and_429_are_throttles_not_reauth() {
    let sb = sandbox().await;
    seed(&sb, 2);
    let c = connector(&sb, json!({})).await;
    sb.account()
        .faults
        .extend([Fault::UserRateLimit, Fault::TooMany]);
    let page = c.pull(ObjectKind::Activity, None).await.unwrap();
    assert_eq!(page.records.len(), 2);
    let acc = sb.account();
    // Two refused profile calls, then served; no token refresh.
    assert_eq!(acc.log.iter().filter(|l| l.contains("/profile")).count(), 3);
    assert_eq!(acc.refreshes, 0);
    assert_eq!(c.refresh_count(), 0);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once() {
    let sb = sandbox().await;
    seed(&sb, 2);
    let c = connector(&sb, json!({})).await;
    c.pull(ObjectKind::Activity, None).await.unwrap();
    // GIVEN the access token expired server-side WHEN reading again
    sb.account().expire_access_tokens();
    let page = c.pull(ObjectKind::Activity, None).await.unwrap();
    // THEN one refresh, the run goes on.
    assert_eq!(page.records.len(), 2);
    assert_eq!(sb.account().refreshes, 1);
    assert_eq!(c.refresh_count(), 1);
    // A revoked refresh token: a re-auth error naming the command.
    {
        let mut acc = sb.account();
        acc.expire_access_tokens();
        acc.refresh_token = "revoked".into();
    }
    let e = c.pull(ObjectKind::Activity, None).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Reauth, "{e}");
}

#[tokio::test]
async fn a_connection_without_tokens_says_to_run_synchub_auth() {
    let sb = sandbox().await;
    let mut deps = Deps::new("mail", ".").with_tokens(vault_with("mail", None).await);
    deps.quotas = Box::leak(Box::new(QuotaRegistry::new()));
    let c = GmailConnector::build(config(&sb.base_url, json!({})), &deps).unwrap();
    let e = c.pull(ObjectKind::Activity, None).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Reauth);
    assert!(e.to_string().contains("run `synchub auth mail`"), "{e}");
    let bare =
        GmailConnector::build(config(&sb.base_url, json!({})), &Deps::new("mail", ".")).unwrap();
    let e = bare.check().await.unwrap_err();
    assert!(e.to_string().contains("run `synchub auth mail`"), "{e}");
    // Strict config: an unknown key is refused.
    let bad: Result<GmailConfig, _> = serde_json::from_value(
        json!({"oauth": {"provider": "generic", "client_id": "x"}, "lables": []}),
    );
    assert!(bad.unwrap_err().to_string().contains("lables"));
}

fn person(name: &str, given: &str, family: &str, email: &str) -> Contact {
    Contact {
        full_name: Some(name.into()),
        given_name: Some(given.into()),
        family_name: Some(family.into()),
        emails: vec![email.into()],
        ..Contact::default()
    }
}

#[tokio::test]
async fn contacts_sync_with_tokens_and_resync_when_the_token_expired() {
    let sb = sandbox().await;
    let names: Vec<String> = {
        let mut acc = sb.account();
        (0..5)
            .map(|i| {
                acc.add_person(json!({"names": [{"unstructuredName": format!("張偉{i}"), "givenName": "偉", "familyName": "張"}],
                    "emailAddresses": [{"value": format!("zhang{i}@example.cn")}]}))
            })
            .collect()
    };
    let c = connector(&sb, json!({})).await;
    let pages = read_all(&c, ObjectKind::Contact, None).await;
    assert_eq!(pages.len(), 3);
    assert_eq!(
        ids(&pages).into_iter().collect::<BTreeSet<_>>(),
        names.iter().cloned().collect()
    );
    for (cur, page) in &pages {
        assert_eq!(
            &c.pull(ObjectKind::Contact, cur.as_ref()).await.unwrap(),
            page
        );
    }
    let synced = pages.last().unwrap().1.next.clone();
    // An edit and a deletion come through the sync token.
    {
        let mut acc = sb.account();
        acc.edit_person(&names[2], |b| {
            b["names"][0]["unstructuredName"] = json!("張偉（總經理）")
        });
        acc.write_person(&names[3], json!({}), true);
    }
    let inc = read_all(&c, ObjectKind::Contact, synced.clone()).await;
    let recs: Vec<_> = inc.iter().flat_map(|(_, p)| p.records.clone()).collect();
    assert_eq!(recs.len(), 2);
    let edited = recs.iter().find(|r| r.external_id == names[2]).unwrap();
    assert_eq!(
        edited
            .record
            .as_ref()
            .and_then(Record::as_contact)
            .unwrap()
            .full_name
            .as_deref(),
        Some("張偉（總經理）")
    );
    assert!(
        recs.iter()
            .find(|r| r.external_id == names[3])
            .unwrap()
            .deleted
    );
    // Seven days later the token is gone: a resync, not a failure.
    sb.account().expire_sync_tokens();
    let e = c
        .pull(ObjectKind::Contact, synced.as_ref())
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectorError::Resync { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Resync);
}

#[tokio::test]
async fn contacts_push_creates_updates_and_reports_a_stale_etag_as_conflict() {
    let sb = sandbox().await;
    let c = connector(&sb, json!({})).await;
    let create = Change {
        crm_id: "crm-1".into(),
        op: ChangeOp::Create,
        external_id: None,
        base_version: None,
        record: Record::Contact(person("陳大文", "大文", "陳", "tai.man@example.hk")),
        idempotency_key: "k1".into(),
        base: None,
    };
    let out = c
        .push(ObjectKind::Contact, std::slice::from_ref(&create))
        .await
        .unwrap();
    let written = out[0].result.clone().unwrap();
    assert!(written.external_id.starts_with("people/c"));
    // A retried create (its first answer was lost) finds the person it made.
    let retried = c
        .push(ObjectKind::Contact, std::slice::from_ref(&create))
        .await
        .unwrap();
    assert_eq!(
        retried[0].result.clone().unwrap().external_id,
        written.external_id
    );
    assert_eq!(sb.account().people.len(), 1);
    let stored = sb.account().people[&written.external_id].body.clone();
    assert_eq!(stored["names"][0]["unstructuredName"], "陳大文");
    // The CRM changes the title with the etag it holds: written, only `organizations` sent.
    let mut next = person("陳大文", "大文", "陳", "tai.man@example.hk");
    next.title = Some("採購經理".into());
    let update = Change {
        crm_id: "crm-1".into(),
        op: ChangeOp::Update,
        external_id: Some(written.external_id.clone()),
        base_version: written.version.clone(),
        record: Record::Contact(next.clone()),
        idempotency_key: "k2".into(),
        base: create.record.clone().into(),
    };
    let out = c
        .push(ObjectKind::Contact, std::slice::from_ref(&update))
        .await
        .unwrap();
    let w2 = out[0].result.clone().unwrap();
    assert_ne!(w2.version, written.version);
    assert!(sb
        .account()
        .log
        .iter()
        .any(|l| l.contains("updatePersonFields=organizations&")));
    assert_eq!(
        sb.account().people[&written.external_id].body["organizations"][0]["title"],
        "採購經理"
    );
    // Someone edits it in Google Contacts; our etag is now stale.
    sb.account().edit_person(&written.external_id, |b| {
        b["names"][0]["unstructuredName"] = json!("陳大文先生")
    });
    next.company = Some("範例有限公司".into());
    let stale = Change {
        base_version: w2.version.clone(),
        record: Record::Contact(next),
        idempotency_key: "k3".into(),
        ..update.clone()
    };
    let out = c.push(ObjectKind::Contact, &[stale]).await.unwrap();
    match &out[0].result {
        Err(Refusal::Conflict {
            current: Some(cur), ..
        }) => {
            let cur = cur.record.as_ref().and_then(Record::as_contact).unwrap();
            assert_eq!(cur.full_name.as_deref(), Some("陳大文先生"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A delete of a person already gone is done, not an error.
    let del = Change {
        op: ChangeOp::Delete,
        idempotency_key: "k4".into(),
        ..update
    };
    let out = c
        .push(ObjectKind::Contact, std::slice::from_ref(&del))
        .await
        .unwrap();
    assert!(out[0].result.is_ok());
    let out = c.push(ObjectKind::Contact, &[del]).await.unwrap();
    assert!(out[0].result.is_ok());
    // Mail cannot be written.
    assert!(c.push(ObjectKind::Activity, &[]).await.is_err());
}

#[tokio::test]
async fn the_erased_factory_names_the_key_of_a_bad_setting() {
    use synchub_http::{DynFactory, Factory};
    let f = Factory::<synchub_gmail::GmailFactory>::new();
    assert_eq!(f.kind(), "gmail");
    let deps = Deps::new("mail", ".");
    let bad = json!({"oauth": {"provider": "generic", "client_id": "x"}, "page_size": 900});
    let e = f.build("connections[1].config", &bad, &deps).err().unwrap();
    assert!(
        e.to_string().contains("connections[1].config") && e.to_string().contains("page_size"),
        "{e}"
    );
    let typo = json!({"oauth": {"provider": "generic", "client_id": "x"}, "lables": ["INBOX"]});
    let e = f
        .build("connections[1].config", &typo, &deps)
        .err()
        .unwrap();
    assert!(e.to_string().contains("connections[1].config"), "{e}");
    let good = json!({"oauth": {"provider": "generic", "client_id": "x"}, "labels": ["INBOX"]});
    let built = f.build("connections[1].config", &good, &deps).unwrap();
    assert_eq!(built.connector.kind(), "gmail");
    assert!(built.webhooks.is_none());
}
