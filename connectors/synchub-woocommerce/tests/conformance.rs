//! The connector conformance suite (`synchub_testkit::conformance`) against
//! the WooCommerce sandbox, the connector built through its factory.

#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use http::HeaderMap;
use serde_json::json;
use synchub_core::{Contact, ObjectKind, Record};
use synchub_http::connect::{Built, ConnectorFactory, Deps};
use synchub_testkit::conformance::{self, Check, Fault, Harness};
use synchub_testkit::harness;
use synchub_woocommerce::sandbox::{self, data, SandboxHandle, SandboxOptions};
use synchub_woocommerce::WooFactory;

const PAGE: u32 = 3;

struct WooHarness {
    store: Option<SandboxHandle>,
}

impl WooHarness {
    fn store(&self) -> Result<&SandboxHandle, String> {
        self.store
            .as_ref()
            .ok_or_else(|| "no sandbox: fresh() first".to_string())
    }

    fn build(&self) -> Result<Built, String> {
        let mut cfg = self.store()?.config();
        cfg.quota = Some(synchub_http::QuotaConfig::per_second(10_000, 10_000));
        cfg.per_page = PAGE;
        WooFactory::build(cfg, &Deps::new("store", ".")).map_err(|e| e.to_string())
    }
}

fn numeric(id: &str) -> Result<u64, String> {
    id.parse().map_err(|_| format!("not a customer id: {id}"))
}

#[async_trait]
impl Harness for WooHarness {
    fn name(&self) -> String {
        "woocommerce".into()
    }

    fn object(&self) -> ObjectKind {
        ObjectKind::Contact
    }

    fn page_size(&self) -> usize {
        PAGE as usize
    }

    fn lacks(&self, check: Check) -> Option<String> {
        match check {
            Check::Deletions => Some(
                "WooCommerce lists no deleted customers; deletions arrive by the customer.deleted webhook"
                    .into(),
            ),
            Check::Refresh => Some("REST API keys do not expire: nothing to refresh".into()),
            Check::Resync => Some("page numbers and a modified watermark do not expire: nothing to resync".into()),
            _ => None,
        }
    }

    async fn fresh(&mut self) -> Result<Built, String> {
        if let Some(old) = self.store.take() {
            old.shutdown().await;
        }
        let store = sandbox::spawn(SandboxOptions {
            customers: 0,
            orders: 0,
            ..SandboxOptions::default()
        })
        .await
        .map_err(|e| format!("spawn the sandbox: {e}"))?;
        self.store = Some(store);
        self.build()
    }

    async fn rebuild(&mut self) -> Result<Built, String> {
        self.build()
    }

    async fn seed(&mut self, n: usize) -> Result<Vec<String>, String> {
        let handle = self.store()?;
        let base_url = handle.base_url.clone();
        let mut store = handle.store();
        let mut ids = Vec::new();
        for i in 0..n as u64 {
            let mut row = data::seed_customer(100 + i, &base_url);
            let id = store.allocate_id();
            row["id"] = json!(id);
            store.save_customer(row, "customer.created");
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        let id = numeric(external_id)?;
        if self
            .store()?
            .edit_customer(id, |c| c["last_name"] = json!("Changed"))
        {
            Ok(())
        } else {
            Err(format!("no customer {external_id}"))
        }
    }

    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        let mut store = self.store()?.store();
        match fault {
            Fault::Throttle { retry_after } => {
                store.faults.throttle_next = Some(retry_after.as_secs().max(1))
            }
            Fault::RevokeCredentials => store.consumer_secret = "cs_revoked".into(),
            Fault::Down => store.faults.down = true,
            Fault::LoseNextResponse => store.faults.lose_next_write = true,
            Fault::ExpireToken => return Err("WooCommerce keys do not expire".into()),
            Fault::Clear => {
                store.faults = Default::default();
                store.consumer_secret = sandbox::SANDBOX_SECRET.into();
            }
        }
        Ok(())
    }

    async fn count(&mut self) -> Result<usize, String> {
        Ok(self.store()?.store().customers.len())
    }

    fn new_record(&self, i: usize) -> Record {
        harness::new_contact(i)
    }

    fn invalid_record(&self) -> Option<Record> {
        Some(Record::Contact(Contact {
            given_name: Some("Bad".into()),
            emails: vec!["not an email".into()],
            ..Contact::default()
        }))
    }

    async fn webhook(
        &mut self,
        delivery_id: &str,
        forged: bool,
    ) -> Result<(HeaderMap, Vec<u8>), String> {
        let body = serde_json::to_vec(&json!({"id": 2001, "email": "a@example.com"}))
            .map_err(|e| e.to_string())?;
        let secret = self.store()?.store().webhook_secret.clone();
        harness::signed_delivery(
            &synchub_woocommerce::webhook::SIGNATURE,
            &secret,
            forged,
            delivery_id,
            body,
            &[
                ("x-wc-webhook-topic", "customer.updated"),
                ("x-wc-webhook-resource", "customer"),
                ("x-wc-webhook-event", "updated"),
            ],
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woocommerce_passes_the_conformance_suite() {
    let mut h = WooHarness { store: None };
    let report = conformance::run(&mut h).await;
    println!("{report}");
    if let Some(store) = h.store.take() {
        store.shutdown().await;
    }
    harness::assert_conformant(&report, &[Check::Deletions, Check::Refresh, Check::Resync]);
}
