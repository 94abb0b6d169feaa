//! Against a real Dovecot (CONDSTORE/QRESYNC) on 127.0.0.1:10143, started by
//! `deploy/peers/dovecot.sh`. Each test owns one mailbox user and resets it
//! over IMAP first, so tests run in parallel and repeat.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use synchub_core::model::Record;
use synchub_core::{Connector, ConnectorError, Cursor, ObjectKind, Page};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_imap::client::{Endpoint, Security, Session};
use synchub_imap::{ImapConfig, ImapConnector};
use synchub_store::Store;

const PORT: u16 = 10143;

fn password(user: &str) -> String {
    format!("secret-{user}")
}

/// An admin session for one user; a clear failure when Dovecot is not up.
async fn admin(user: &str) -> Session {
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port: PORT,
        security: Security::Plain,
        timeout: Duration::from_secs(60),
    };
    let mut s = Session::connect(&ep).await.unwrap_or_else(|e| {
        panic!(
            "Dovecot is not answering on 127.0.0.1:{PORT} ({e}): run deploy/peers/dovecot.sh first"
        )
    });
    s.login(user, &password(user))
        .await
        .expect("test user login (see deploy/peers/dovecot.sh)");
    s
}

/// Empties INBOX and recreates every other folder named (a new UIDVALIDITY).
async fn reset(user: &str, others: &[&str]) -> Session {
    let mut s = admin(user).await;
    s.command("SELECT INBOX").await.unwrap();
    s.command("UID STORE 1:* +FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap();
    s.command("EXPUNGE").await.unwrap();
    s.command("UNSELECT").await.unwrap();
    for f in others {
        recreate(&mut s, f).await;
    }
    s
}

async fn recreate(s: &mut Session, folder: &str) {
    let wire = format!("\"{}\"", synchub_imap::utf7::encode(folder));
    let _ = s.command(&format!("DELETE {wire}")).await;
    s.command(&format!("CREATE {wire}")).await.unwrap();
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A generated message: CJK names in Big5 and GB2312 encoded words on some,
/// threads every fifth message, a base64 body with a snippet.
fn message(user: &str, i: usize) -> Vec<u8> {
    let from = match i % 3 {
        0 => format!(
            "=?Big5?B?{}?= <Chen.DaWen{i}@Example.COM>",
            b64(&encoding_rs::BIG5.encode("陳大文").0)
        ),
        1 => format!(
            "=?GB2312?B?{}?= <wang{i}@example.cn>",
            b64(&encoding_rs::GBK.encode("王小明").0)
        ),
        _ => format!("\"Anna Berg\" <anna{i}@example.org>"),
    };
    let subject = match i % 2 {
        0 => format!("=?UTF-8?B?{}?=", b64(format!("訂單確認 #{i}").as_bytes())),
        _ => format!("Invoice INV-{i}"),
    };
    let mut m = format!(
        "From: {from}\r\nTo: Alice Sales <{user}@synchub.test>\r\nCc: billing@synchub.test\r\nSubject: {subject}\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <m{i}.{user}@gen.synchub.test>\r\n"
    );
    if i.is_multiple_of(5) && i > 0 {
        m.push_str(&format!("In-Reply-To: <m{}.{user}@gen.synchub.test>\r\nReferences: <m{}.{user}@gen.synchub.test>\r\n", i - 1, i - 1));
    }
    let body = b64(format!("您好，這是測試郵件 {i}。 Hello from message {i}.").as_bytes());
    m.push_str(&format!("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n"));
    m.into_bytes()
}

fn connector(
    user: &str,
    folders: &[&str],
    page_size: usize,
    dir: &std::path::Path,
) -> ImapConnector {
    connector_tracking(user, folders, page_size, dir, "qresync")
}

fn connector_tracking(
    user: &str,
    folders: &[&str],
    page_size: usize,
    dir: &std::path::Path,
    changes: &str,
) -> ImapConnector {
    let cfg: ImapConfig = serde_json::from_value(serde_json::json!({
        "changes": changes,
        "host": "127.0.0.1",
        "port": PORT,
        "user": user,
        "password": password(user),
        "tls": false,
        "folders": folders,
        "page_size": page_size,
    }))
    .unwrap();
    let settings = cfg.check(dir).unwrap();
    ImapConnector::new(settings, dir.join("index"))
}

/// Pulls from `from` to the end; the pages and the cursor after each.
async fn pull_all(c: &dyn Connector, from: Option<Cursor>) -> Vec<(Page, Cursor)> {
    let mut cursor = from;
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = c.pull(ObjectKind::Activity, cursor.as_ref()).await.unwrap();
        let next = page.next.clone().expect("every imap page carries a cursor");
        let done = page.done;
        cursor = Some(next.clone());
        out.push((page, next));
        if done {
            return out;
        }
    }
    panic!("the stream never ended");
}

fn ids(pages: &[(Page, Cursor)]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|(p, _)| p.records.iter().map(|r| r.external_id.clone()))
        .collect()
}

#[tokio::test]
async fn pages_to_the_end_and_resumes_from_every_cursor() {
    // GIVEN 520 messages in INBOX and 30 in Sent
    let user = "alice";
    let mut s = reset(user, &["Sent"]).await;
    let inbox: Vec<Vec<u8>> = (0..520).map(|i| message(user, i)).collect();
    s.append("INBOX", &inbox).await.unwrap();
    let sent: Vec<Vec<u8>> = (1000..1030).map(|i| message(user, i)).collect();
    s.append("Sent", &sent).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = connector(user, &["INBOX", "Sent"], 200, dir.path());

    // WHEN the stream is read from the start
    let pages = pull_all(&c, None).await;

    // THEN every message comes once, in pages of at most 200, over one login
    let all = ids(&pages);
    assert_eq!(all.len(), 550);
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 550);
    assert!(pages.iter().all(|(p, _)| p.records.len() <= 200));
    assert_eq!(
        pages
            .iter()
            .map(|(p, _)| p.records.len())
            .collect::<Vec<_>>(),
        vec![200, 200, 150]
    );
    assert!(pages.last().unwrap().0.done);
    assert_eq!(c.logins(), 1, "one session per run");
    assert_eq!(c.estimate(ObjectKind::Activity).await, Some(550));

    // AND resuming from every cursor in a new session reads exactly the rest
    for k in 0..pages.len() {
        let fresh = connector(user, &["INBOX", "Sent"], 200, dir.path());
        let rest = pull_all(&fresh, Some(pages[k].1.clone())).await;
        let expected: Vec<String> = ids(&pages[k + 1..]);
        assert_eq!(ids(&rest), expected, "resume after page {k}");
        // a replayed page is the same page
        if k + 1 < pages.len() {
            let again = fresh
                .pull(ObjectKind::Activity, Some(&pages[k].1))
                .await
                .unwrap();
            assert_eq!(
                again.records,
                pages[k + 1].0.records,
                "replay of page {}",
                k + 1
            );
        }
        fresh.close().await.unwrap();
    }

    // AND close logs out; the next pull logs in again
    c.close().await.unwrap();
    let after = c
        .pull(ObjectKind::Activity, Some(&pages.last().unwrap().1))
        .await
        .unwrap();
    assert!(after.records.is_empty() && after.done, "nothing changed");
    assert_eq!(c.logins(), 2);
    c.close().await.unwrap();
}

fn flags(p: &Page, id: &str) -> Vec<String> {
    let r = p.records.iter().find(|r| r.external_id == id).unwrap();
    let Some(Record::Activity(a)) = &r.record else {
        panic!("{id} is not an activity")
    };
    serde_json::from_value(a.custom["flags"].clone()).unwrap()
}

#[tokio::test]
async fn flag_changes_expunges_and_new_mail_are_read_incrementally() {
    incremental("bob", "qresync").await;
}

#[tokio::test]
async fn without_qresync_condstore_still_reads_flags_and_expunges() {
    incremental("ivan", "condstore").await;
}

#[tokio::test]
async fn with_uids_only_new_mail_and_expunges_are_read() {
    incremental("judy", "uids").await;
}

async fn incremental(user: &str, changes: &str) {
    let mut s = reset(user, &[]).await;
    s.append(
        "INBOX",
        &(0..10).map(|i| message(user, i)).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = connector_tracking(user, &["INBOX"], 200, dir.path(), changes);
    let first = pull_all(&c, None).await;
    assert_eq!(ids(&first).len(), 10);
    let cursor = first.last().unwrap().1.clone();

    // GIVEN nothing changed THEN an incremental pass reads nothing
    let quiet = pull_all(&c, Some(cursor.clone())).await;
    assert_eq!(ids(&quiet).len(), 0);

    // WHEN two messages are flagged, one expunged and one arrives
    s.command("SELECT INBOX").await.unwrap();
    // (UIDs go on growing across runs of this test: look them up)
    let found = s.command("UID SEARCH ALL").await.unwrap();
    let uids: Vec<u64> = found
        .untagged
        .iter()
        .filter(|r| r.first().and_then(|t| t.atom()) == Some("SEARCH"))
        .flat_map(|r| r.iter().skip(1).filter_map(|t| t.number()))
        .collect();
    assert_eq!(uids.len(), 10);
    s.command(&format!(
        "UID STORE {},{} +FLAGS.SILENT (\\Flagged)",
        uids[1], uids[2]
    ))
    .await
    .unwrap();
    s.command(&format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", uids[4]))
        .await
        .unwrap();
    s.command(&format!("UID EXPUNGE {}", uids[4]))
        .await
        .unwrap();
    s.append("INBOX", &[message(user, 10)]).await.unwrap();

    // THEN the next pass reads exactly those four
    let next = pull_all(&c, Some(cursor)).await;
    let page = &next[0].0;
    let mut got: Vec<(String, bool)> = next
        .iter()
        .flat_map(|(p, _)| p.records.iter().map(|r| (r.external_id.clone(), r.deleted)))
        .collect();
    got.sort();
    let id = |i: usize| format!("<m{i}.{user}@gen.synchub.test>");
    let mut want = vec![(id(4), true), (id(10), false)];
    if changes != "uids" {
        // flag changes need a MODSEQ
        want.extend([(id(1), false), (id(2), false)]);
        assert!(flags(page, &id(1)).contains(&"\\Flagged".to_string()));
    }
    want.sort();
    assert_eq!(got, want, "changes = {changes}");
    assert!(!flags(page, &id(10)).contains(&"\\Flagged".to_string()));

    // AND the pass after that is quiet again
    let after = pull_all(&c, Some(next.last().unwrap().1.clone())).await;
    assert_eq!(ids(&after).len(), 0);
    c.close().await.unwrap();
}

async fn activities(store: &Store) -> Vec<(String, Option<String>)> {
    let mut v: Vec<(String, Option<String>)> = store
        .records(ObjectKind::Activity, false)
        .await
        .unwrap()
        .into_iter()
        .map(|r| match r.record {
            Record::Activity(a) => (a.message_id.unwrap_or_default(), a.subject),
            other => panic!("not an activity: {other:?}"),
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_changed_uidvalidity_rereads_the_mailbox_without_duplicates() {
    // GIVEN INBOX and a Chinese-named folder (modified UTF-7 on the wire)
    let user = "carol";
    let folder = "Projects/客戶";
    let mut s = reset(user, &[folder]).await;
    s.append(
        "INBOX",
        &(0..15).map(|i| message(user, i)).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let moved: Vec<Vec<u8>> = (100..125).map(|i| message(user, i)).collect();
    s.append(&synchub_imap::utf7::encode(folder), &moved)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("crm.db").display()))
        .await
        .unwrap();
    let c = Arc::new(connector(user, &["INBOX", folder], 10, dir.path()));
    let engine = Engine::new(
        store.clone(),
        "imap-resync",
        vec![Connection {
            name: "mail".into(),
            connector: c.clone(),
            direction: Direction::Pull,
            objects: vec![ObjectKind::Activity],
            region: None,
        }],
        Default::default(),
        BTreeMap::new(),
    );
    let r1 = engine.run(&RunOptions::default()).await.unwrap();
    assert!(r1.errors.is_empty(), "{:?}", r1.errors);
    assert_eq!(activities(&store).await.len(), 40);
    assert_eq!(r1.streams["mail.activity"].created, 40);
    assert_eq!(c.logins(), 1);

    // WHEN the folder is recreated (a new UIDVALIDITY) with the same mail and one more
    recreate(&mut s, folder).await;
    let mut again = moved.clone();
    again.push(message(user, 125));
    s.append(&synchub_imap::utf7::encode(folder), &again)
        .await
        .unwrap();

    // THEN the next run resyncs once and holds one activity per message
    let r2 = engine.run(&RunOptions::default()).await.unwrap();
    assert!(r2.errors.is_empty(), "{:?}", r2.errors);
    let s2 = &r2.streams["mail.activity"];
    assert_eq!(s2.resyncs, 1);
    assert_eq!(s2.created, 1, "only the new message is new: {s2:?}");
    let acts = activities(&store).await;
    assert_eq!(acts.len(), 41);
    assert_eq!(
        acts.iter().map(|(m, _)| m).collect::<BTreeSet<_>>().len(),
        41
    );
    assert!(acts
        .iter()
        .any(|(_, s)| s.as_deref() == Some("訂單確認 #124")));

    // AND a third run is quiet
    let r3 = engine.run(&RunOptions::default()).await.unwrap();
    assert_eq!(r3.streams["mail.activity"].read, 0, "{:?}", r3.streams);
    assert_eq!(r3.streams["mail.activity"].resyncs, 0);
}

#[tokio::test]
async fn a_wrong_password_or_an_unreachable_host_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _ = admin("dave").await; // Dovecot must be up for this test to mean anything
    let cfg: ImapConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1", "port": PORT, "user": "dave", "password": "not-the-password-xyz", "tls": false,
    }))
    .unwrap();
    let c = ImapConnector::new(cfg.check(dir.path()).unwrap(), dir.path().join("ix"));
    let err = c.check().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("`dave`") && msg.contains("127.0.0.1:10143"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password-xyz"), "{msg}");

    let cfg: ImapConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1", "port": 9, "user": "dave", "password": "x", "tls": false, "timeout_secs": 5,
    }))
    .unwrap();
    let c = ImapConnector::new(cfg.check(dir.path()).unwrap(), dir.path().join("ix"));
    let err = c.pull(ObjectKind::Activity, None).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("`dave`") && msg.contains("127.0.0.1:9"),
        "{msg}"
    );

    // A host name that does not resolve is a configuration error at once.
    let cfg: ImapConfig = serde_json::from_value(serde_json::json!({
        "host": "imap.does-not-exist.invalid", "user": "dave", "password": "x",
    }))
    .unwrap();
    let c = ImapConnector::new(cfg.check(dir.path()).unwrap(), dir.path().join("ix"));
    let err = c.check().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Config(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("imap.does-not-exist.invalid") && msg.contains("`dave`"),
        "{msg}"
    );

    // A folder that does not exist is a configuration error naming it.
    let c = connector("dave", &["INBOX", "Nope/不存在"], 50, dir.path());
    // INBOX is read first: read on until the missing folder.
    let mut cursor = None;
    let err = loop {
        match c.pull(ObjectKind::Activity, cursor.as_ref()).await {
            Ok(p) => {
                assert!(!p.done, "the missing folder was never reported");
                cursor = p.next;
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, ConnectorError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("Nope/不存在"), "{err}");
}

#[tokio::test]
async fn encoded_words_names_snippets_and_missing_message_ids_decode() {
    let user = "erin";
    let mut s = reset(user, &[]).await;
    let gb_name = b64(&encoding_rs::GBK.encode("王小明").0);
    let big5_subj = b64(&encoding_rs::BIG5.encode("報價單 2024").0);
    let multipart = format!(
        "From: =?GB2312?B?{gb_name}?= <Wang@Example.CN>\r\nTo: =?utf-8?Q?Ren=C3=A9e?= <renee@x.org>, team@x.org\r\nSubject: =?Big5?B?{big5_subj}?=\r\nDate: Mon, 1 Jan 2024 09:00:00 +0800\r\nMessage-ID: <mp.{user}@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\nContent-Type: text/plain; charset=big5\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--zz\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--zz--\r\n",
        b64(&encoding_rs::BIG5.encode("您好，附件是報價單。").0)
    );
    let no_id = "From: someone@x.org\r\nSubject: no id\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nplain body\r\n".to_string();
    s.append(
        "INBOX",
        &[multipart.into_bytes(), no_id.clone().into_bytes()],
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = connector(user, &["INBOX"], 50, dir.path());
    let pages = pull_all(&c, None).await;
    let recs: Vec<_> = pages.iter().flat_map(|(p, _)| p.records.clone()).collect();
    assert_eq!(recs.len(), 2);
    let Some(Record::Activity(a)) = &recs[0].record else {
        panic!("not an activity")
    };
    assert_eq!(a.subject.as_deref(), Some("報價單 2024"));
    assert_eq!(a.snippet.as_deref(), Some("您好，附件是報價單。"));
    assert_eq!(
        a.occurred_at.unwrap().to_rfc3339(),
        "2024-01-01T01:00:00+00:00"
    );
    let people: Vec<(&str, Option<&str>, Option<&str>)> = a
        .participants
        .iter()
        .map(|p| (p.role.as_str(), p.email.as_deref(), p.name.as_deref()))
        .collect();
    assert_eq!(
        people,
        vec![
            ("from", Some("wang@example.cn"), Some("王小明")),
            ("to", Some("renee@x.org"), Some("Renée")),
            ("to", Some("team@x.org"), None),
        ]
    );
    let Some(Record::Activity(b)) = &recs[1].record else {
        panic!("not an activity")
    };
    assert!(
        recs[1].external_id.starts_with("<sha256-"),
        "{}",
        recs[1].external_id
    );
    assert_eq!(b.snippet.as_deref(), Some("plain body"));

    // The same message appended again (a second copy) keeps its key.
    s.append("INBOX", &[no_id.into_bytes()]).await.unwrap();
    let more = pull_all(&c, Some(pages.last().unwrap().1.clone())).await;
    assert_eq!(ids(&more), vec![recs[1].external_id.clone()]);
    c.close().await.unwrap();
}

/// The first-sync rate, printed as a BENCH line (run with `--ignored`;
/// no timed assertion).
#[tokio::test]
#[ignore = "measurement: cargo test -p synchub-imap --test dovecot -- --ignored --nocapture"]
async fn first_sync_rate_of_5000_messages() {
    let user = "frank";
    let mut s = reset(user, &[]).await;
    let started = Instant::now();
    let all: Vec<Vec<u8>> = (0..5000).map(|i| message(user, i)).collect();
    s.append("INBOX", &all).await.unwrap();
    let fill = started.elapsed().as_secs_f64();
    let dir = tempfile::tempdir().unwrap();
    let c = connector(user, &["INBOX"], 200, dir.path());
    let started = Instant::now();
    let pages = pull_all(&c, None).await;
    let secs = started.elapsed().as_secs_f64();
    let n = ids(&pages).len();
    assert_eq!(n, 5000);
    let started = Instant::now();
    let quiet = pull_all(&c, Some(pages.last().unwrap().1.clone())).await;
    let noop = started.elapsed().as_secs_f64();
    assert_eq!(ids(&quiet).len(), 0);
    println!(
        "BENCH name=imap_first_sync records={n} seconds={secs:.3} rate={:.0} fill_seconds={fill:.2} noop_pass_seconds={noop:.4}",
        n as f64 / secs
    );

    // The same mailbox through the engine into a SQLite store.
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("crm.db").display()))
        .await
        .unwrap();
    let engine = Engine::new(
        store.clone(),
        "imap-bench",
        vec![Connection {
            name: "mail".into(),
            connector: Arc::new(connector(user, &["INBOX"], 200, &dir.path().join("e"))),
            direction: Direction::Pull,
            objects: vec![ObjectKind::Activity],
            region: None,
        }],
        Default::default(),
        BTreeMap::new(),
    );
    let started = Instant::now();
    let r = engine.run(&RunOptions::default()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.streams["mail.activity"].created, 5000);
    println!(
        "BENCH name=imap_first_sync_sqlite records=5000 seconds={secs:.3} rate={:.0}",
        5000.0 / secs
    );
}
