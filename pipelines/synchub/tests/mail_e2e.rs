//! Issue 15 end to end through the `synchub` binary: one mail thread seen by
//! Gmail (its sandbox), Outlook (the Graph sandbox) and IMAP (the real
//! Dovecot of `deploy/peers/dovecot.sh`, user `grace`, folder `MailE2E`).
//!
//! GIVEN a three-message thread whose customer writes as `=?Big5?B?...?=`
//!       (陳大文) from `Tai.Man@Example.com.HK`, held by all three mailboxes,
//!       and that customer as an Outlook contact (`tai.man@example.com.hk`)
//! WHEN `synchub run --once` runs the three connections into one store
//! THEN there is one activity per message, linked from each mailbox, with
//!      the decoded name, on 陳大文's timeline in `synchub contacts show`,
//!      and the Outlook contact reached Gmail's contacts;
//! WHEN a fourth message arrives everywhere, Gmail's history id expires,
//!      Graph evicts its delta links, the IMAP folder is recreated (a new
//!      UIDVALIDITY), Gmail's access token dies mid-run and the contact's
//!      job title is edited in Outlook
//! THEN the next run resyncs all three with no duplicate activity, refreshes
//!      the token once and goes on, and the new title reaches the CRM and
//!      Gmail's contacts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use synchub_core::model::Record;
use synchub_core::ObjectKind;
use synchub_http::{SecretString, TokenCipher, TokenSet, TokenVault};
use synchub_imap::client::{Endpoint, Security, Session};
use synchub_store::tokens::SqlTokenStore;
use synchub_store::Store;
use synchub_testkit::TestDb;

const IMAP_PORT: u16 = 10143;
const IMAP_USER: &str = "grace";
const IMAP_PASSWORD: &str = "secret-grace";
const FOLDER: &str = "MailE2E";
const GMAIL_ACCESS: &str = "ya29.e2e-initial";
const GMAIL_REFRESH: &str = "1//e2e-refresh";
const GRAPH_ACCESS: &str = "graph-e2e-initial";
const GRAPH_REFRESH: &str = "graph-e2e-refresh";

/// A vault key made at test time (no key material in the source).
fn secret_key() -> String {
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(seed.as_bytes()))
}

/// `陳大文` as an RFC 2047 Big5 encoded word.
fn big5_name() -> String {
    let (bytes, _, bad) = encoding_rs::BIG5.encode("陳大文");
    assert!(!bad);
    format!(
        "=?Big5?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    )
}

/// One message of the thread: (Message-ID, from, to, cc, subject, minute).
struct Mail {
    id: &'static str,
    from: String,
    to: &'static str,
    cc: &'static str,
    subject: &'static str,
    minute: u32,
}

fn thread() -> Vec<Mail> {
    let customer = format!("{} <Tai.Man@Example.com.HK>", big5_name());
    vec![
        Mail {
            id: "<t1.m1@mail.example.com.hk>",
            from: customer.clone(),
            to: "sales@example.com.tw",
            cc: "",
            subject: "報價 Q-2024-001",
            minute: 1,
        },
        Mail {
            id: "<t1.m2@example.com.tw>",
            from: "Sales <sales@example.com.tw>".into(),
            to: "tai.man@example.com.hk",
            cc: "",
            subject: "Re: 報價 Q-2024-001",
            minute: 2,
        },
        Mail {
            id: "<t1.m3@mail.example.com.hk>",
            from: customer.clone(),
            to: "sales@example.com.tw",
            cc: "meiling.lin@example.com.tw",
            subject: "Re: 報價 Q-2024-001",
            minute: 3,
        },
        Mail {
            id: "<t1.m4@example.com.tw>",
            from: "Sales <sales@example.com.tw>".into(),
            to: "TAI.MAN@example.com.hk",
            cc: "",
            subject: "Re: 報價 Q-2024-001",
            minute: 4,
        },
    ]
}

fn rfc5322(m: &Mail) -> Vec<u8> {
    let cc = if m.cc.is_empty() {
        String::new()
    } else {
        format!("Cc: {}\r\n", m.cc)
    };
    let refs = if m.id.contains("m1@") {
        String::new()
    } else {
        "References: <t1.m1@mail.example.com.hk>\r\nIn-Reply-To: <t1.m1@mail.example.com.hk>\r\n"
            .into()
    };
    format!(
        "From: {}\r\nTo: {}\r\n{cc}Subject: =?UTF-8?B?{}?=\r\nDate: Mon, 1 Jan 2024 09:{:02}:00 +0000\r\nMessage-ID: {}\r\n{refs}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n您好 {}\r\n",
        m.from,
        m.to,
        base64::engine::general_purpose::STANDARD.encode(m.subject),
        m.minute,
        m.id,
        m.minute
    )
    .into_bytes()
}

async fn imap() -> Session {
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port: IMAP_PORT,
        security: Security::Plain,
        timeout: Duration::from_secs(60),
    };
    let mut s = Session::connect(&ep).await.unwrap_or_else(|e| {
        panic!("Dovecot is not answering on 127.0.0.1:{IMAP_PORT} ({e}): run deploy/peers/dovecot.sh first")
    });
    s.login(IMAP_USER, IMAP_PASSWORD).await.unwrap();
    s
}

/// Recreates the folder (a new UIDVALIDITY) holding `mails`; returns the UIDVALIDITY.
async fn imap_folder(mails: &[Mail]) -> String {
    let mut s = imap().await;
    let _ = s.command(&format!("DELETE {FOLDER}")).await;
    s.command(&format!("CREATE {FOLDER}")).await.unwrap();
    s.append(FOLDER, &mails.iter().map(rfc5322).collect::<Vec<_>>())
        .await
        .unwrap();
    let r = s.command(&format!("SELECT {FOLDER}")).await.unwrap();
    let validity = r
        .untagged
        .iter()
        .map(|t| format!("{t:?}"))
        .find(|t| t.contains("UIDVALIDITY"))
        .expect("SELECT reports UIDVALIDITY");
    s.command("LOGOUT").await.unwrap();
    validity
}

fn add_gmail(sb: &synchub_gmail::sandbox::SandboxHandle, m: &Mail, thread: &str) -> String {
    let label = if m.from.starts_with("Sales") {
        "SENT"
    } else {
        "INBOX"
    };
    let mut headers = vec![
        ("From", m.from.clone()),
        ("To", m.to.to_string()),
        (
            "Subject",
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(m.subject)
            ),
        ),
        ("Message-ID", m.id.to_string()),
    ];
    if !m.cc.is_empty() {
        headers.push(("Cc", m.cc.to_string()));
    }
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sb.account().add_message(
        Some(thread),
        &[label],
        &h,
        "您好",
        1_704_099_600_000 + i64::from(m.minute) * 60_000,
    )
}

fn add_outlook(sb: &synchub_outlook::sandbox::SandboxHandle, m: &Mail) {
    let (folder, from) = if m.from.starts_with("Sales") {
        ("sentitems", ("Sales", "sales@example.com.tw"))
    } else {
        ("inbox", ("陳大文", "Tai.Man@Example.com.HK"))
    };
    let at = chrono::DateTime::parse_from_rfc3339(&format!("2024-01-01T09:{:02}:00Z", m.minute))
        .unwrap()
        .to_utc();
    let mut mb = sb.mailbox();
    let id = mb.add_message(folder, from, &[("", m.to)], m.subject, at);
    let item = mb.messages.get_mut(&id).unwrap();
    // Graph gives the RFC 5322 Message-ID as `internetMessageId`.
    item.body["internetMessageId"] = json!(m.id);
    item.body["conversationId"] = json!("AAQkAGI2-thread-1");
    if !m.cc.is_empty() {
        item.body["ccRecipients"] = json!([{"emailAddress": {"name": "林美玲", "address": m.cc}}]);
    }
}

fn pipeline(dir: &Path, gmail: &str, graph: &str, graph_token: &str) -> PathBuf {
    let p = dir.join("mail.toml");
    std::fs::write(
        &p,
        format!(
            r#"version = 1
name = "mail"

[[connections]]
name = "gmail"
kind = "gmail"
direction = "two-way"
objects = ["contact", "activity"]

[connections.config]
gmail_url = "{gmail}"
people_url = "{gmail}"
page_size = 2

[connections.config.oauth]
provider = "generic"
client_id = "cid"
client_secret = "csecret"
auth_url = "{gmail}/auth"
token_url = "{gmail}/token"

[[connections]]
name = "outlook"
kind = "outlook"
direction = "two-way"
objects = ["contact", "activity"]

[connections.config]
graph_url = "{graph}"
page_size = 2

[connections.config.oauth]
provider = "generic"
client_id = "cid"
client_secret = "csecret"
auth_url = "{graph_token}/auth"
token_url = "{graph_token}/token"

[[connections]]
name = "mailbox"
kind = "imap"
direction = "pull"
objects = ["activity"]

[connections.config]
host = "127.0.0.1"
port = {IMAP_PORT}
user = "{IMAP_USER}"
password = "${{SYNCHUB_TEST_IMAP_PASSWORD}}"
tls = false
folders = ["{FOLDER}"]
page_size = 2
"#
        ),
    )
    .unwrap();
    p
}

async fn save_token(store: &Store, key: &str, name: &str, access: &str, refresh: &str) {
    let cipher = TokenCipher::from_key_material(&SecretString::from(key.to_string())).unwrap();
    let vault = TokenVault::new(Arc::new(SqlTokenStore::new(store.clone())), cipher);
    let set = TokenSet {
        access_token: SecretString::from(access.to_string()),
        refresh_token: Some(SecretString::from(refresh.to_string())),
        expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        scopes: vec![],
        extra: BTreeMap::new(),
    };
    vault.save(name, &set).await.unwrap();
}

fn synchub(db: &str, key: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_DATABASE_URL", db)
        .env("SYNCHUB_SECRET_KEY", key)
        .env("SYNCHUB_TEST_IMAP_PASSWORD", IMAP_PASSWORD)
        .output()
        .expect("run synchub")
}

fn json_out(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "synchub failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = text.find('{').expect("json output");
    serde_json::from_str(text[start..].trim()).expect("json")
}

fn run(db: &str, key: &str, p: &Path) -> Value {
    let report = json_out(&synchub(
        db,
        key,
        &["run", "--once", "--report", "json", p.to_str().unwrap()],
    ));
    let errors = &report["errors"];
    assert!(
        errors.is_null() || errors.as_object().is_some_and(|e| e.is_empty()),
        "the run reported errors: {report}"
    );
    report
}

/// Live activities, by Message-ID: (crm id, record, the connections linking it).
async fn activities(store: &Store) -> BTreeMap<String, (String, Value, Vec<String>)> {
    let mut out = BTreeMap::new();
    for r in store.records(ObjectKind::Activity, false).await.unwrap() {
        let Record::Activity(a) = &r.record else {
            panic!("not an activity: {:?}", r.record)
        };
        let mid = a
            .message_id
            .clone()
            .expect("every activity has a Message-ID");
        let mut systems: Vec<String> = store
            .links_of(&r.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|l| !l.deleted)
            .map(|l| l.connection)
            .collect();
        systems.sort();
        let data = serde_json::to_value(a).unwrap();
        assert!(
            out.insert(mid.clone(), (r.id.clone(), data, systems))
                .is_none(),
            "two activities for {mid}"
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thread_in_three_mailboxes_is_one_activity_per_message() {
    let mails = thread();
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let store = db.store().await;
    let key = secret_key();

    // GIVEN the first three messages in all three mailboxes
    let gmail = synchub_gmail::sandbox::spawn("sales@example.com.tw", GMAIL_ACCESS, GMAIL_REFRESH)
        .await
        .unwrap();
    let graph = synchub_outlook::sandbox::spawn(GRAPH_ACCESS, GRAPH_REFRESH)
        .await
        .unwrap();
    let first_validity = imap_folder(&mails[..3]).await;
    for m in &mails[..3] {
        add_gmail(&gmail, m, "18c0thread1");
        add_outlook(&graph, m);
    }
    // AND the customer as an Outlook contact, in lower case
    let chen = graph.mailbox().add_contact(json!({
        "givenName": "大文", "surname": "陳", "displayName": "陳大文",
        "emailAddresses": [{"name": "陳大文", "address": "tai.man@example.com.hk"}],
        "companyName": "大文貿易"
    }));
    save_token(&store, &key, "gmail", GMAIL_ACCESS, GMAIL_REFRESH).await;
    save_token(&store, &key, "outlook", GRAPH_ACCESS, GRAPH_REFRESH).await;
    let p = pipeline(
        dir.path(),
        &gmail.base_url,
        &graph.graph_url(),
        &graph.base_url,
    );

    // WHEN the pipeline runs
    let first = run(&db.url, &key, &p);

    // THEN one activity per message, each linked from all three mailboxes
    let acts = activities(&store).await;
    assert_eq!(acts.len(), 3, "{first}\n{acts:#?}");
    for m in &mails[..3] {
        let (_, data, systems) = acts.get(m.id).unwrap_or_else(|| panic!("{} missing", m.id));
        assert_eq!(systems, &["gmail", "mailbox", "outlook"], "{}", m.id);
        let from = &data["participants"][0];
        assert_eq!(from["role"], "from", "{data}");
        if m.from.contains("Big5") {
            // the Big5 encoded word decoded, the address in lower case
            assert_eq!(from["name"], "陳大文", "{data}");
            assert_eq!(from["email"], "tai.man@example.com.hk", "{data}");
        }
        assert_eq!(data["subject"], m.subject, "{data}");
    }
    // AND the three are on the customer's timeline, whatever case the address had
    let shown = json_out(&synchub(
        &db.url,
        &key,
        &[
            "contacts",
            "show",
            "tai.man@example.com.hk",
            "--format",
            "json",
        ],
    ));
    assert_eq!(shown["record"]["full_name"], "陳大文", "{shown}");
    let on_timeline: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "activity")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = acts.values().map(|(id, _, _)| id.as_str()).collect();
    expected.sort();
    let mut got = on_timeline.clone();
    got.sort();
    assert_eq!(got, expected, "{shown}");
    // AND the Outlook contact reached Gmail's contacts
    let gmail_has = |title: Option<&str>| {
        gmail.account().people.values().any(|p| {
            !p.deleted
                && p.body.to_string().contains("tai.man@example.com.hk")
                && title.is_none_or(|t| p.body.to_string().contains(t))
        })
    };
    assert!(gmail_has(None), "{:#?}", gmail.account().people);

    // WHEN a fourth message arrives everywhere, every cursor expires, the
    // IMAP folder is recreated, the contact is edited in Outlook and
    // Gmail's access token dies after two more requests
    {
        add_gmail(&gmail, &mails[3], "18c0thread1");
        let mut acc = gmail.account();
        acc.expire_history();
        acc.expire_tokens_after = Some(2);
    }
    add_outlook(&graph, &mails[3]);
    {
        let mut mb = graph.mailbox();
        assert!(mb.edit_contact(&chen, |c| c["jobTitle"] = json!("採購經理")));
        mb.expire_delta_tokens();
    }
    let second_validity = imap_folder(&mails).await;
    assert_ne!(
        first_validity, second_validity,
        "the folder has a new UIDVALIDITY"
    );
    let gmail_log_start = gmail.account().log.len();
    let graph_log_start = graph.mailbox().log.len();
    let second = run(&db.url, &key, &p);

    // THEN each mailbox was read again from the start, and nothing doubled
    let streams = &second["streams"];
    assert_eq!(streams["gmail.activity"]["read"], 4, "{second}");
    assert_eq!(streams["outlook.activity"]["read"], 4, "{second}");
    assert_eq!(streams["mailbox.activity"]["read"], 4, "{second}");
    for stream in ["gmail.activity", "outlook.activity", "mailbox.activity"] {
        assert_eq!(streams[stream]["resyncs"], 1, "{stream}: {second}");
    }
    let acts = activities(&store).await;
    assert_eq!(acts.len(), 4, "{second}\n{acts:#?}");
    for (mid, (_, _, systems)) in &acts {
        assert_eq!(systems, &["gmail", "mailbox", "outlook"], "{mid}");
    }
    let glog: Vec<String> = gmail.account().log[gmail_log_start..].to_vec();
    assert!(
        glog.iter().any(|l| l.contains("/history"))
            && glog.iter().any(|l| l.contains("/messages?")),
        "gmail: a history read, then a full listing: {glog:#?}"
    );
    let dlog: Vec<String> = graph.mailbox().log[graph_log_start..].to_vec();
    assert!(
        dlog.iter().any(|l| l.contains("deltatoken"))
            && dlog
                .iter()
                .any(|l| l.contains("messages/delta") && !l.contains("token=")),
        "graph: an evicted delta link, then a fresh delta: {dlog:#?}"
    );
    // AND the dead token was refreshed once and the run went on
    assert_eq!(gmail.account().refreshes, 1);
    assert_eq!(graph.mailbox().refreshes, 0);
    // AND the Outlook edit reached the CRM and Gmail's contacts
    let shown = json_out(&synchub(
        &db.url,
        &key,
        &["contacts", "show", "陳大文", "--format", "json"],
    ));
    assert_eq!(shown["record"]["title"], "採購經理", "{shown}");
    assert!(gmail_has(Some("採購經理")), "{:#?}", gmail.account().people);
    let on_timeline = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "activity")
        .count();
    assert_eq!(on_timeline, 4, "{shown}");

    // AND a third run with nothing new creates nothing
    let third = run(&db.url, &key, &p);
    assert_eq!(activities(&store).await.len(), 4, "{third}");
    assert_eq!(gmail.account().refreshes, 1);
}
