//! The connector conformance suite (`synchub_testkit::conformance`) against
//! the Microsoft Graph sandbox, the connector built through its factory:
//! once for contacts (two-way, with change notifications) and once for
//! mail (read-only activities, delta per folder).
//! The API calls pass through the test kit's fault proxy, which answers
//! 429/503 and loses answers in the sandbox's place; tokens, expiry and
//! revocation are the sandbox's own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue};
use serde_json::json;
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_http::{Built, ConnectorFactory, Deps};
use synchub_outlook::sandbox::{self, SandboxHandle};
use synchub_outlook::{OutlookConfig, OutlookFactory};
use synchub_testkit::conformance::{self, Check, Fault, Harness, Position, WebhookAuth};
use synchub_testkit::harness;
use synchub_testkit::proxy::FaultProxy;

const ACCESS: &str = "eyJ0eXAiOiJKV1Qi.initial";
const REFRESH: &str = "0.AAAA-refresh";
const CLIENT_STATE: &str = "secretClientValue";
const PAGE: usize = 3;

struct Env {
    sandbox: SandboxHandle,
    proxy: FaultProxy,
    deps: Deps,
}

struct OutlookHarness {
    object: ObjectKind,
    env: Option<Env>,
    seq: usize,
}

impl OutlookHarness {
    fn new(object: ObjectKind) -> Self {
        OutlookHarness {
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
        let cfg: OutlookConfig = serde_json::from_value(json!({
            "graph_url": format!("{}/v1.0", env.proxy.base_url),
            "page_size": PAGE,
            "client_state": CLIENT_STATE,
            "quota": {"requests": 10_000, "per_secs": 1, "burst": 10_000},
            "oauth": {"provider": "microsoft", "client_id": "cid", "tenant": "common",
                      "token_url": format!("{base}/token")}
        }))
        .map_err(|e| format!("config: {e}"))?;
        OutlookFactory::build(cfg, &env.deps).map_err(|e| e.to_string())
    }

    fn shutdown(&mut self) {
        if let Some(env) = self.env.take() {
            env.proxy.shutdown();
            env.sandbox.shutdown();
        }
    }
}

#[async_trait]
impl Harness for OutlookHarness {
    fn name(&self) -> String {
        format!("outlook ({})", self.object)
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
            _ => None,
        }
    }

    fn expiring_position(&self) -> Position {
        // Graph evicts the sync state behind a delta link (410); the
        // sandbox evicts skip and delta tokens alike, so the position a
        // full read ends with is the one the check expires.
        Position::EndOfRead
    }

    fn webhook_auth(&self) -> WebhookAuth {
        WebhookAuth::SecretInBody
    }

    async fn fresh(&mut self) -> Result<Built, String> {
        self.shutdown();
        let sandbox = sandbox::spawn(ACCESS, REFRESH)
            .await
            .map_err(|e| format!("spawn the sandbox: {e}"))?;
        let proxy = FaultProxy::spawn(&sandbox.base_url)
            .await
            .map_err(|e| format!("spawn the proxy: {e}"))?;
        let deps = harness::oauth_deps("outlook", ACCESS, REFRESH, &[]).await?;
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
            let mut mb = env.sandbox.mailbox();
            let id = if self.object == ObjectKind::Contact {
                mb.add_contact(json!({
                    "givenName": format!("大文{i}"), "surname": "陳",
                    "emailAddresses": [{"address": format!("tai.man.{i}@example.com.hk"), "name": format!("陳大文{i}")}],
                    "businessPhones": [format!("+886 2 2345 {i:04}")],
                }))
            } else {
                let addr = format!("tai.man.{i}@example.com.hk");
                let name = format!("陳大文{i}");
                mb.add_message(
                    "inbox",
                    (name.as_str(), addr.as_str()),
                    &[("Sales", "sales@example.com.tw")],
                    &format!("報價單 Q-{i:03}"),
                    chrono::Utc::now() - chrono::Duration::minutes(100 - i as i64),
                )
            };
            ids.push(id);
        }
        Ok(ids)
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        let env = self.env()?;
        let mut mb = env.sandbox.mailbox();
        let done = if self.object == ObjectKind::Contact {
            mb.edit_contact(external_id, |c| c["surname"] = json!("林"))
        } else {
            mb.mark_read(external_id)
        };
        done.then_some(())
            .ok_or_else(|| format!("no record {external_id}"))
    }

    async fn delete(&mut self, external_id: &str) -> Result<(), String> {
        let env = self.env()?;
        let mut mb = env.sandbox.mailbox();
        if self.object == ObjectKind::Activity {
            return mb
                .delete_message(external_id)
                .then_some(())
                .ok_or_else(|| format!("no message {external_id}"));
        }
        mb.seq += 1;
        let seq = mb.seq;
        match mb.contacts.get_mut(external_id) {
            Some(c) => {
                c.deleted = true;
                c.seq = seq;
                Ok(())
            }
            None => Err(format!("no contact {external_id}")),
        }
    }

    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        let env = self.env()?;
        match fault {
            Fault::ExpireToken => env.sandbox.mailbox().expire_access_tokens(),
            Fault::RevokeCredentials => {
                let mut mb = env.sandbox.mailbox();
                mb.expire_access_tokens();
                mb.refresh_token = "0.AAAA-revoked".into();
            }
            Fault::Clear => {
                env.sandbox.mailbox().refresh_token = REFRESH.into();
                env.proxy.inject(Fault::Clear)?;
            }
            other => env.proxy.inject(other)?,
        }
        Ok(())
    }

    async fn token_grants(&mut self) -> Result<u64, String> {
        Ok(u64::from(self.env()?.sandbox.mailbox().refreshes))
    }

    async fn expire_positions(&mut self) -> Result<(), String> {
        self.env()?.sandbox.mailbox().expire_delta_tokens();
        Ok(())
    }

    async fn count(&mut self) -> Result<usize, String> {
        let env = self.env()?;
        let mb = env.sandbox.mailbox();
        let store = if self.object == ObjectKind::Contact {
            &mb.contacts
        } else {
            &mb.messages
        };
        Ok(store.values().filter(|i| !i.deleted).count())
    }

    fn new_record(&self, i: usize) -> Record {
        harness::new_contact(i)
    }

    fn invalid_record(&self) -> Option<Record> {
        // Outlook keeps at most three email addresses per contact (400).
        Some(Record::Contact(Contact {
            given_name: Some("Bad".into()),
            emails: (1..=4)
                .map(|i| format!("bad{i}@conformance.example"))
                .collect(),
            ..Contact::default()
        }))
    }

    async fn webhook(
        &mut self,
        delivery_id: &str,
        forged: bool,
    ) -> Result<(HeaderMap, Vec<u8>), String> {
        let state = if forged { "someone-else" } else { CLIENT_STATE };
        let resource = if self.object == ObjectKind::Contact {
            "Users/u1/Contacts/AAMkAGI2THVSAAA="
        } else {
            "Users/u1/Messages/AAMkADNkNAAASqAAA="
        };
        let body = serde_json::to_vec(&json!({"value": [{
            "subscriptionId": format!("7f105c7d-2dc5-4530-97cd-{delivery_id}"),
            "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
            "changeType": "updated", "resource": resource,
            "clientState": state, "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
            "resourceData": {"@odata.type": "#Microsoft.Graph.Contact", "id": "AAMkAGI2THVSAAA="}
        }]}))
        .map_err(|e| e.to_string())?;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Ok((headers, body))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlook_contacts_pass_the_conformance_suite() {
    let mut h = OutlookHarness::new(ObjectKind::Contact);
    let report = conformance::run(&mut h).await;
    println!("{report}");
    h.shutdown();
    harness::assert_conformant(&report, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlook_mail_passes_the_conformance_suite() {
    let mut h = OutlookHarness::new(ObjectKind::Activity);
    let report = conformance::run(&mut h).await;
    println!("{report}");
    h.shutdown();
    harness::assert_conformant(
        &report,
        &[
            Check::IdempotentPush,
            Check::EchoSuppression,
            Check::Refusals,
        ],
    );
}
