//! The connector conformance suite (`synchub_testkit::conformance`) against
//! the Gmail sandbox, the connector built through its factory: once for
//! contacts (People API, two-way) and once for mail (read-only activities).
//! The API calls pass through the test kit's fault proxy, which answers
//! 429/503 and loses answers in the sandbox's place; tokens, expiry and
//! revocation are the sandbox's own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use serde_json::json;
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_gmail::sandbox::{self, SandboxHandle};
use synchub_gmail::{GmailConfig, GmailFactory};
use synchub_http::{Built, ConnectorFactory, Deps};
use synchub_testkit::conformance::{self, Check, Fault, Harness, Position};
use synchub_testkit::harness;
use synchub_testkit::proxy::FaultProxy;

const ACCESS: &str = "ya29.initial";
const REFRESH: &str = "1//refresh-sandbox";
const PAGE: usize = 3;

struct Env {
    sandbox: SandboxHandle,
    proxy: FaultProxy,
    deps: Deps,
}

struct GmailHarness {
    object: ObjectKind,
    env: Option<Env>,
    seq: usize,
}

impl GmailHarness {
    fn new(object: ObjectKind) -> Self {
        GmailHarness {
            object,
            env: None,
            seq: 0,
        }
    }

    fn env(&self) -> Result<&Env, String> {
        self.env
            .as_ref()
            .ok_or_else(|| "no sandbox: fresh() first".to_string())
    }

    fn build(&self) -> Result<Built, String> {
        let env = self.env()?;
        let base = &env.sandbox.base_url;
        let cfg: GmailConfig = serde_json::from_value(json!({
            "gmail_url": env.proxy.base_url,
            "people_url": env.proxy.base_url,
            "page_size": PAGE,
            "people_page_size": PAGE,
            "quota": {"requests": 10_000, "per_secs": 1, "burst": 10_000},
            "oauth": {"provider": "generic", "client_id": "cid", "client_secret": "csecret",
                      "auth_url": format!("{base}/auth"), "token_url": format!("{base}/token")}
        }))
        .map_err(|e| format!("config: {e}"))?;
        GmailFactory::build(cfg, &env.deps).map_err(|e| e.to_string())
    }

    fn shutdown(&mut self) {
        if let Some(env) = self.env.take() {
            env.proxy.shutdown();
            env.sandbox.shutdown();
        }
    }
}

#[async_trait]
impl Harness for GmailHarness {
    fn name(&self) -> String {
        format!("gmail ({})", self.object)
    }

    fn object(&self) -> ObjectKind {
        self.object
    }

    fn page_size(&self) -> usize {
        PAGE
    }

    fn lacks(&self, check: Check) -> Option<String> {
        let mail = self.object == ObjectKind::Activity;
        match check {
            Check::IdempotentPush | Check::EchoSuppression | Check::Refusals if mail => {
                Some("mail is read-only: the connector writes contacts, never messages".into())
            }
            Check::Webhooks => Some(
                "Gmail notifies through Cloud Pub/Sub push (unsigned, pulled by history id), \
                 not signed webhooks; the connector has no webhook source"
                    .into(),
            ),
            _ => None,
        }
    }

    fn expiring_position(&self) -> Position {
        // A listing's page tokens are bound to their query; what expires
        // is the history id (mail) and the sync token (contacts) a full
        // read ends with.
        Position::EndOfRead
    }

    async fn fresh(&mut self) -> Result<Built, String> {
        self.shutdown();
        let sandbox = sandbox::spawn("sales@example.com.tw", ACCESS, REFRESH)
            .await
            .map_err(|e| format!("spawn the sandbox: {e}"))?;
        let proxy = FaultProxy::spawn(&sandbox.base_url)
            .await
            .map_err(|e| format!("spawn the proxy: {e}"))?;
        let deps = harness::oauth_deps("mail", ACCESS, REFRESH, &[]).await?;
        self.env = Some(Env {
            sandbox,
            proxy,
            deps,
        });
        self.build()
    }

    async fn rebuild(&mut self) -> Result<Built, String> {
        self.build()
    }

    async fn seed(&mut self, n: usize) -> Result<Vec<String>, String> {
        let mut ids = Vec::new();
        for _ in 0..n {
            self.seq += 1;
            let i = self.seq;
            let env = self.env()?;
            let mut acc = env.sandbox.account();
            let id = if self.object == ObjectKind::Contact {
                acc.add_person(json!({
                    "names": [{"givenName": format!("大文{i}"), "familyName": "陳"}],
                    "emailAddresses": [{"value": format!("tai.man.{i}@example.com.hk")}],
                    "phoneNumbers": [{"value": format!("+886 2 2345 {i:04}")}],
                }))
            } else {
                let from = format!("\"陳大文{i}\" <Tai.Man.{i}@Example.com.HK>");
                let subject = format!("報價單 Q-{i:03}");
                let mid = format!("<conf{i}@mail.example.com.hk>");
                acc.add_message(
                    None,
                    &["INBOX"],
                    &[
                        ("From", from.as_str()),
                        ("To", "sales@example.com.tw"),
                        ("Subject", subject.as_str()),
                        ("Message-ID", mid.as_str()),
                    ],
                    "您好，附上報價單。",
                    1_700_640_000_000 + i as i64 * 60_000,
                )
            };
            ids.push(id);
        }
        Ok(ids)
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        let env = self.env()?;
        let mut acc = env.sandbox.account();
        let done = if self.object == ObjectKind::Contact {
            acc.edit_person(external_id, |p| {
                p["names"][0]["familyName"] = json!("林");
            })
        } else {
            acc.add_labels(external_id, &["IMPORTANT"])
        };
        done.then_some(())
            .ok_or_else(|| format!("no record {external_id}"))
    }

    async fn delete(&mut self, external_id: &str) -> Result<(), String> {
        let env = self.env()?;
        let mut acc = env.sandbox.account();
        if self.object == ObjectKind::Contact {
            if !acc.people.contains_key(external_id) {
                return Err(format!("no person {external_id}"));
            }
            acc.write_person(external_id, json!({}), true);
            Ok(())
        } else if acc.delete_message(external_id) {
            Ok(())
        } else {
            Err(format!("no message {external_id}"))
        }
    }

    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        let env = self.env()?;
        match fault {
            Fault::ExpireToken => env.sandbox.account().expire_access_tokens(),
            Fault::RevokeCredentials => {
                let mut acc = env.sandbox.account();
                acc.expire_access_tokens();
                acc.refresh_token = "1//revoked".into();
            }
            Fault::Clear => {
                env.sandbox.account().refresh_token = REFRESH.into();
                env.proxy.inject(Fault::Clear)?;
            }
            other => env.proxy.inject(other)?,
        }
        Ok(())
    }

    async fn token_grants(&mut self) -> Result<u64, String> {
        Ok(u64::from(self.env()?.sandbox.account().refreshes))
    }

    async fn expire_positions(&mut self) -> Result<(), String> {
        let env = self.env()?;
        let mut acc = env.sandbox.account();
        if self.object == ObjectKind::Contact {
            acc.expire_sync_tokens();
        } else {
            // Days of mailbox activity pass, then the records before it
            // fall out of retention (the latest history id alone would
            // stay valid, as in Gmail).
            let some = acc.messages.keys().next().cloned();
            if let Some(id) = some {
                acc.add_labels(&id, &["STARRED"]);
            }
            acc.expire_history();
        }
        Ok(())
    }

    async fn count(&mut self) -> Result<usize, String> {
        let env = self.env()?;
        let acc = env.sandbox.account();
        Ok(if self.object == ObjectKind::Contact {
            acc.people.values().filter(|p| !p.deleted).count()
        } else {
            acc.messages.len()
        })
    }

    fn new_record(&self, i: usize) -> Record {
        harness::new_contact(i)
    }

    fn invalid_record(&self) -> Option<Record> {
        // No contact field at all: People answers 400 INVALID_ARGUMENT.
        Some(Record::Contact(Contact::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_contacts_pass_the_conformance_suite() {
    let mut h = GmailHarness::new(ObjectKind::Contact);
    let report = conformance::run(&mut h).await;
    println!("{report}");
    h.shutdown();
    harness::assert_conformant(&report, &[Check::Webhooks]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_mail_passes_the_conformance_suite() {
    let mut h = GmailHarness::new(ObjectKind::Activity);
    let report = conformance::run(&mut h).await;
    println!("{report}");
    h.shutdown();
    harness::assert_conformant(
        &report,
        &[
            Check::IdempotentPush,
            Check::EchoSuppression,
            Check::Refusals,
            Check::Webhooks,
        ],
    );
}
