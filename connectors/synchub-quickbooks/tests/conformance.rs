//! The connector conformance suite (`synchub_testkit::conformance`) against
//! the QuickBooks Online sandbox, customers as the stream, the connector
//! built through its factory. API calls pass through the test kit's fault
//! proxy (429 with `Retry-After`, 503); lost answers, token expiry and
//! revocation are the sandbox's own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use chrono::Utc;
use http::HeaderMap;
use serde_json::json;
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_http::{Built, ConnectorFactory, Deps, QuotaConfig};
use synchub_quickbooks::sandbox::{spawn, SandboxHandle, SandboxOptions, SANDBOX_VERIFIER};
use synchub_quickbooks::QuickBooksFactory;
use synchub_testkit::conformance::{self, Check, Fault, Harness};
use synchub_testkit::harness;
use synchub_testkit::proxy::FaultProxy;

const CONNECTION: &str = "books";
const PAGE: u32 = 3;

struct Env {
    sandbox: SandboxHandle,
    proxy: FaultProxy,
    deps: Deps,
}

struct QboHarness {
    env: Option<Env>,
    seq: usize,
}

impl QboHarness {
    fn env(&self) -> Result<&Env, String> {
        self.env
            .as_ref()
            .ok_or_else(|| "no sandbox: fresh() first".to_string())
    }

    fn build(&self) -> Result<Built, String> {
        let env = self.env()?;
        let mut cfg = env.sandbox.config();
        cfg.base_url = Some(env.proxy.base_url.clone());
        cfg.page_size = PAGE;
        cfg.quota = Some(QuotaConfig::per_second(10_000, 10_000));
        QuickBooksFactory::build(cfg, &env.deps).map_err(|e| e.to_string())
    }

    async fn shutdown(&mut self) {
        if let Some(env) = self.env.take() {
            env.proxy.shutdown();
            env.sandbox.shutdown().await;
        }
    }
}

#[async_trait]
impl Harness for QboHarness {
    fn name(&self) -> String {
        "quickbooks".into()
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
                "no QuickBooks position expires: a cursor older than the 30-day CDC window \
                 falls back to a query pass from its time, by design"
                    .into(),
            ),
            _ => None,
        }
    }

    async fn fresh(&mut self) -> Result<Built, String> {
        self.shutdown().await;
        let sandbox = spawn(SandboxOptions {
            rate_limit: None,
            ..SandboxOptions::default()
        })
        .await
        .map_err(|e| format!("spawn the sandbox: {e}"))?;
        // An empty company: the fixture customers go.
        sandbox.state.company().objects.remove("Customer");
        let proxy = FaultProxy::spawn(&sandbox.url())
            .await
            .map_err(|e| format!("spawn the proxy: {e}"))?;
        let deps = harness::oauth_deps(
            CONNECTION,
            &sandbox.state.access_token(),
            &sandbox.state.refresh_token(),
            &["com.intuit.quickbooks.accounting"],
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
            let env = self.env()?;
            let mut company = env.sandbox.state.company();
            let at = company.tick();
            let id = company.seed(
                "Customer",
                json!({"DisplayName": format!("陳大文 {i:03}"), "GivenName": "大文", "FamilyName": "陳",
                       "PrimaryEmailAddr": {"Address": format!("tai.man.{i}@example.com.hk")},
                       "Balance": 0, "BalanceWithJobs": 0}),
                at,
            );
            ids.push(id);
        }
        Ok(ids)
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        let env = self.env()?;
        let mut company = env.sandbox.state.company();
        let token = company
            .get("Customer", external_id)
            .and_then(|c| c["SyncToken"].as_str().map(str::to_string))
            .ok_or_else(|| format!("no customer {external_id}"))?;
        company
            .write(
                "Customer",
                json!({"Id": external_id, "SyncToken": token, "sparse": true,
                       "Notes": "changed in QuickBooks"}),
            )
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }

    async fn delete(&mut self, external_id: &str) -> Result<(), String> {
        // Customers are never deleted in QuickBooks, only made inactive.
        let env = self.env()?;
        let mut company = env.sandbox.state.company();
        let token = company
            .get("Customer", external_id)
            .and_then(|c| c["SyncToken"].as_str().map(str::to_string))
            .ok_or_else(|| format!("no customer {external_id}"))?;
        company
            .write(
                "Customer",
                json!({"Id": external_id, "SyncToken": token, "sparse": true, "Active": false}),
            )
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
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
        let company = env.sandbox.state.company();
        Ok(company
            .all("Customer")
            .filter(|c| c["Active"].as_bool() != Some(false))
            .count())
    }

    fn new_record(&self, i: usize) -> Record {
        harness::new_contact(i)
    }

    fn invalid_record(&self) -> Option<Record> {
        // No DisplayName and no name part: QuickBooks answers 6000.
        Some(Record::Contact(Contact::default()))
    }

    async fn webhook(
        &mut self,
        delivery_id: &str,
        forged: bool,
    ) -> Result<(HeaderMap, Vec<u8>), String> {
        // Intuit sends no delivery id: deliveries differ by their content.
        self.seq += 1;
        let realm = self.env()?.sandbox.config().realm_id;
        let body = serde_json::to_vec(&json!({"eventNotifications": [{"realmId": realm,
            "dataChangeEvent": {"entities": [{"name": "Customer", "id": self.seq.to_string(),
                "operation": "Update", "lastUpdated": Utc::now().to_rfc3339()}]}}]}))
        .map_err(|e| e.to_string())?;
        harness::signed_delivery(
            &synchub_quickbooks::webhook::SIGNATURE,
            SANDBOX_VERIFIER,
            forged,
            delivery_id,
            body,
            &[("content-type", "application/json")],
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickbooks_passes_the_conformance_suite() {
    let mut h = QboHarness { env: None, seq: 0 };
    let report = conformance::run(&mut h).await;
    println!("{report}");
    h.shutdown().await;
    harness::assert_conformant(&report, &[Check::Resync]);
}
