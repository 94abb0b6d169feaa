//! The connector conformance suite (`synchub_testkit::conformance`) against
//! the Shopify sandbox, the connector built through its factory.

#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use http::HeaderMap;
use serde_json::json;
use synchub_core::{Contact, ObjectKind, Record};
use synchub_http::connect::{Built, ConnectorFactory, Deps};
use synchub_shopify::sandbox::{self, data, SandboxHandle, SandboxOptions};
use synchub_shopify::ShopifyFactory;
use synchub_testkit::conformance::{self, Check, Fault, Harness};
use synchub_testkit::harness;

const PAGE: u32 = 3;

struct ShopifyHarness {
    shop: Option<SandboxHandle>,
}

impl ShopifyHarness {
    fn shop(&self) -> Result<&SandboxHandle, String> {
        self.shop
            .as_ref()
            .ok_or_else(|| "no sandbox: fresh() first".to_string())
    }

    fn build(&self) -> Result<Built, String> {
        let mut cfg = self.shop()?.config();
        cfg.quota = Some(synchub_http::QuotaConfig::per_second(10_000, 10_000));
        cfg.bulk_backfill = false;
        cfg.customers_page_size = Some(PAGE);
        ShopifyFactory::build(cfg, &Deps::new("shop", ".")).map_err(|e| e.to_string())
    }
}

fn numeric(gid: &str) -> Result<u64, String> {
    gid.rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("not a customer gid: {gid}"))
}

#[async_trait]
impl Harness for ShopifyHarness {
    fn name(&self) -> String {
        "shopify".into()
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
                "Shopify lists no deleted customers; deletions arrive by the customers/delete webhook"
                    .into(),
            ),
            Check::Refresh => Some("custom-app access tokens do not expire: nothing to refresh".into()),
            Check::Resync => Some(
                "an updated_at watermark and keyset cursors do not expire: nothing to resync".into(),
            ),
            _ => None,
        }
    }

    async fn fresh(&mut self) -> Result<Built, String> {
        if let Some(old) = self.shop.take() {
            old.shutdown().await;
        }
        let shop = sandbox::spawn(SandboxOptions {
            customers: 0,
            orders: 0,
            ..SandboxOptions::default()
        })
        .await
        .map_err(|e| format!("spawn the sandbox: {e}"))?;
        self.shop = Some(shop);
        self.build()
    }

    async fn rebuild(&mut self) -> Result<Built, String> {
        self.build()
    }

    async fn seed(&mut self, n: usize) -> Result<Vec<String>, String> {
        let mut shop = self.shop()?.shop();
        let mut ids = Vec::new();
        for i in 0..n as u64 {
            let mut row = data::seed_customer(data::STORY_CUSTOMERS + 1 + i);
            row.id = shop.customers.allocate_id();
            let row = shop.save_customer(row, "customers/create");
            ids.push(format!("gid://shopify/Customer/{}", row.id));
        }
        Ok(ids)
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        let id = numeric(external_id)?;
        if self
            .shop()?
            .edit_customer(id, |c| c.note = Some("changed in the shop".into()))
        {
            Ok(())
        } else {
            Err(format!("no customer {external_id}"))
        }
    }

    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        let mut shop = self.shop()?.shop();
        match fault {
            Fault::Throttle { retry_after } => {
                shop.faults.throttle_next = Some(retry_after.as_secs().max(1))
            }
            Fault::RevokeCredentials => shop.access_token = "shpat_revoked".into(),
            Fault::Down => shop.faults.down = true,
            Fault::LoseNextResponse => shop.faults.lose_next_write = true,
            Fault::ExpireToken => return Err("Shopify tokens do not expire".into()),
            Fault::Clear => {
                shop.faults = Default::default();
                shop.access_token = sandbox::SANDBOX_TOKEN.into();
            }
        }
        Ok(())
    }

    async fn count(&mut self) -> Result<usize, String> {
        Ok(self.shop()?.shop().customers.len() as usize)
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
        let body = serde_json::to_vec(&json!({"id": 7_001_000_001_u64, "email": "a@example.com"}))
            .map_err(|e| e.to_string())?;
        let secret = self.shop()?.shop().webhook_secret.clone();
        harness::signed_delivery(
            &synchub_shopify::webhook::SIGNATURE,
            &secret,
            forged,
            delivery_id,
            body,
            &[
                ("x-shopify-topic", "customers/update"),
                ("x-shopify-shop-domain", "synchub-sandbox.myshopify.com"),
            ],
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_passes_the_conformance_suite() {
    let mut h = ShopifyHarness { shop: None };
    let report = conformance::run(&mut h).await;
    println!("{report}");
    if let Some(shop) = h.shop.take() {
        shop.shutdown().await;
    }
    harness::assert_conformant(&report, &[Check::Deletions, Check::Refresh, Check::Resync]);
}
