//! The connector conformance suite (`synchub_testkit::conformance`) against
//! the Xero sandbox (the second tenant, which starts empty), contacts as
//! the stream, the connector built through its factory. API calls pass
//! through the test kit's fault proxy (429 with `Retry-After`, 503); lost
//! answers, token expiry and revocation are the sandbox's own. Records are
//! made and changed through the sandbox's own API, as a user of Xero would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use chrono::Utc;
use http::HeaderMap;
use serde_json::{json, Value};
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_http::{Built, ConnectorFactory, Deps, QuotaConfig};
use synchub_testkit::conformance::{self, Check, Fault, Harness};
use synchub_testkit::harness;
use synchub_testkit::proxy::FaultProxy;
use synchub_xero::sandbox::{spawn, Limits, SandboxHandle, TENANT_B, WEBHOOK_KEY};
use synchub_xero::XeroFactory;

const CONNECTION: &str = "ledger";
const PAGE: u32 = 3;

struct Env {
    sandbox: SandboxHandle,
    proxy: FaultProxy,
    deps: Deps,
}

struct XeroHarness {
    env: Option<Env>,
    seq: usize,
}

impl XeroHarness {
    fn env(&self) -> Result<&Env, String> {
        self.env
            .as_ref()
            .ok_or_else(|| "no sandbox: fresh() first".to_string())
    }

    fn build(&self) -> Result<Built, String> {
        let env = self.env()?;
        let mut cfg = env.sandbox.config(TENANT_B);
        cfg.base_url = Some(format!("{}/api.xro/2.0/", env.proxy.base_url));
        cfg.page_size = PAGE;
        cfg.quota = Some(QuotaConfig::per_second(10_000, 10_000));
        XeroFactory::build(cfg, &env.deps).map_err(|e| e.to_string())
    }

    /// A call to the sandbox's API as a Xero user's other app would make it.
    async fn api(&self, path: &str, body: Value) -> Result<Value, String> {
        let env = self.env()?;
        let url = format!("{}/api.xro/2.0/{path}", env.sandbox.url());
        let answer = reqwest::Client::new()
            .post(url)
            .bearer_auth(env.sandbox.state.access_token())
            .header("xero-tenant-id", TENANT_B)
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        let v: Value = answer.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {v}"));
        }
        Ok(v)
    }

    async fn shutdown(&mut self) {
        if let Some(env) = self.env.take() {
            env.proxy.shutdown();
            env.sandbox.shutdown().await;
        }
    }
}

#[async_trait]
impl Harness for XeroHarness {
    fn name(&self) -> String {
        "xero".into()
    }

    fn object(&self) -> ObjectKind {
        ObjectKind::Contact
    }

    fn page_size(&self) -> usize {
        PAGE as usize
    }

    fn lacks(&self, check: Check) -> Option<String> {
        match check {
            Check::Resync => Some(
                "an UpdatedDateUTC watermark with page numbers (If-Modified-Since) does not \
                 expire: nothing to resync"
                    .into(),
            ),
            _ => None,
        }
    }

    async fn fresh(&mut self) -> Result<Built, String> {
        self.shutdown().await;
        let sandbox = spawn(0)
            .await
            .map_err(|e| format!("spawn the sandbox: {e}"))?;
        sandbox.state.set_limits(
            TENANT_B,
            Limits {
                per_minute: 100_000,
                per_day: 1_000_000,
                ..Limits::default()
            },
        );
        let proxy = FaultProxy::spawn(&sandbox.url())
            .await
            .map_err(|e| format!("spawn the proxy: {e}"))?;
        let deps = harness::oauth_deps(
            CONNECTION,
            &sandbox.state.access_token(),
            &sandbox.state.refresh_token(),
            &[],
        )
        .await?;
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
            let v = self
                .api(
                    "Contacts",
                    json!({"Contacts": [{"Name": format!("陳大文 {i:03}"), "FirstName": "大文",
                        "LastName": "陳", "EmailAddress": format!("tai.man.{i}@example.com.hk")}]}),
                )
                .await?;
            let id = v["Contacts"][0]["ContactID"]
                .as_str()
                .ok_or_else(|| format!("no ContactID in {v}"))?;
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        self.api(
            &format!("Contacts/{external_id}"),
            json!({"Contacts": [{"ContactID": external_id, "LastName": "林"}]}),
        )
        .await
        .map(|_| ())
    }

    async fn delete(&mut self, external_id: &str) -> Result<(), String> {
        // Xero never deletes a contact: it archives it.
        self.api(
            &format!("Contacts/{external_id}"),
            json!({"Contacts": [{"ContactID": external_id, "ContactStatus": "ARCHIVED"}]}),
        )
        .await
        .map(|_| ())
    }

    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        let env = self.env()?;
        match fault {
            Fault::ExpireToken => env.sandbox.state.expire_access_token(),
            Fault::RevokeCredentials => env.sandbox.state.revoke_tokens(),
            Fault::LoseNextResponse => env.sandbox.state.lose_create_answers(1),
            Fault::Clear => {
                env.sandbox.state.lose_create_answers(0);
                env.proxy.inject(Fault::Clear)?;
            }
            other => env.proxy.inject(other)?,
        }
        Ok(())
    }

    async fn token_grants(&mut self) -> Result<u64, String> {
        Ok(self.env()?.sandbox.state.refreshes())
    }

    async fn count(&mut self) -> Result<usize, String> {
        let env = self.env()?;
        let orgs = env.sandbox.state.orgs();
        Ok(orgs.get(TENANT_B).map_or(0, |o| {
            o.contacts
                .iter()
                .filter(|c| c["ContactStatus"] == "ACTIVE")
                .count()
        }))
    }

    fn new_record(&self, i: usize) -> Record {
        harness::new_contact(i)
    }

    fn invalid_record(&self) -> Option<Record> {
        // No name at all: Xero answers "The contact name must be specified".
        Some(Record::Contact(Contact::default()))
    }

    async fn webhook(
        &mut self,
        delivery_id: &str,
        forged: bool,
    ) -> Result<(HeaderMap, Vec<u8>), String> {
        let body = serde_json::to_vec(&json!({"events": [{
            "resourceUrl": "https://api.xero.com/api.xro/2.0/Contacts/717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
            "resourceId": "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
            "eventDateUtc": Utc::now().to_rfc3339(), "eventType": "UPDATE", "eventCategory": "CONTACT",
            "tenantId": TENANT_B, "tenantType": "ORGANISATION"}],
            "firstEventSequence": 1, "lastEventSequence": 1, "entropy": delivery_id}))
        .map_err(|e| e.to_string())?;
        harness::signed_delivery(
            &synchub_xero::webhook::SIGNATURE,
            WEBHOOK_KEY,
            forged,
            delivery_id,
            body,
            &[("content-type", "application/json")],
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xero_passes_the_conformance_suite() {
    let mut h = XeroHarness { env: None, seq: 0 };
    let report = conformance::run(&mut h).await;
    println!("{report}");
    h.shutdown().await;
    harness::assert_conformant(&report, &[Check::Resync]);
}
