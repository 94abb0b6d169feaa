//! The connector conformance suite (`synchub_testkit::conformance`) against
//! the ERPNext sandbox, the connector built through its factory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use http::HeaderMap;
use serde_json::{json, Map, Value};
use synchub_core::{Contact, ObjectKind, Record};
use synchub_erpnext::sandbox::{
    self, SandboxHandle, SandboxOptions, SANDBOX_SECRET, WEBHOOK_SECRET,
};
use synchub_erpnext::ErpNextFactory;
use synchub_http::connect::{Built, ConnectorFactory, Deps};
use synchub_testkit::conformance::{self, Check, Fault, Harness};
use synchub_testkit::harness;

const PAGE: u32 = 3;

struct ErpHarness {
    site: Option<SandboxHandle>,
    seeded: usize,
}

impl ErpHarness {
    fn sb(&self) -> Result<&SandboxHandle, String> {
        self.site
            .as_ref()
            .ok_or_else(|| "no sandbox: fresh() first".to_string())
    }

    fn build(&self) -> Result<Built, String> {
        let mut cfg = self.sb()?.config();
        cfg.quota = Some(synchub_http::QuotaConfig::per_second(10_000, 10_000));
        cfg.page_size = PAGE;
        ErpNextFactory::build(cfg, &Deps::new("erp", ".")).map_err(|e| e.to_string())
    }
}

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[async_trait]
impl Harness for ErpHarness {
    fn name(&self) -> String {
        "erpnext".into()
    }

    fn object(&self) -> ObjectKind {
        ObjectKind::Contact
    }

    fn page_size(&self) -> usize {
        PAGE as usize
    }

    fn lacks(&self, check: Check) -> Option<String> {
        match check {
            Check::Refresh => Some(
                "token auth (`token KEY:SECRET`) does not expire: nothing to refresh".into(),
            ),
            Check::Resync => Some(
                "a `modified` watermark with a (modified, name) keyset does not expire: nothing to resync"
                    .into(),
            ),
            _ => None,
        }
    }

    async fn fresh(&mut self) -> Result<Built, String> {
        if let Some(old) = self.site.take() {
            old.shutdown().await;
        }
        let sb = sandbox::spawn(SandboxOptions::default())
            .await
            .map_err(|e| format!("spawn the sandbox: {e}"))?;
        self.site = Some(sb);
        self.build()
    }

    async fn rebuild(&mut self) -> Result<Built, String> {
        self.build()
    }

    async fn seed(&mut self, n: usize) -> Result<Vec<String>, String> {
        let mut ids = Vec::new();
        for _ in 0..n {
            self.seeded += 1;
            let i = self.seeded;
            let doc = self
                .sb()?
                .site()
                .insert(
                    "Contact",
                    map(json!({
                        "first_name": format!("客戶{i:03}"),
                        "email_ids": [{"email_id": format!("c{i}@example.com.tw"), "is_primary": 1}],
                        "phone_nos": [{"phone": format!("+886 912 000 {i:03}"), "is_primary_mobile_no": 1}]
                    })),
                )
                .map_err(|_| "the sandbox refused a seed contact".to_string())?;
            ids.push(doc["name"].as_str().unwrap_or_default().to_string());
        }
        Ok(ids)
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        self.sb()?
            .site()
            .update(
                "Contact",
                external_id,
                map(json!({"designation": "changed in ERPNext"})),
            )
            .map(|_| ())
            .map_err(|_| format!("no contact {external_id}"))
    }

    async fn delete(&mut self, external_id: &str) -> Result<(), String> {
        self.sb()?
            .site()
            .delete("Contact", external_id)
            .map_err(|_| format!("no contact {external_id}"))
    }

    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        let sb = self.sb()?;
        let mut site = sb.site();
        match fault {
            Fault::Throttle { retry_after } => {
                site.faults.throttle_next = Some(retry_after.as_secs().max(1))
            }
            Fault::RevokeCredentials => site.api_secret = "regenerated-elsewhere".into(),
            Fault::Down => site.faults.down = true,
            Fault::LoseNextResponse => site.faults.lose_next_write = true,
            Fault::ExpireToken => return Err("Frappe API keys do not expire".into()),
            Fault::Clear => {
                site.faults = Default::default();
                site.api_secret = SANDBOX_SECRET.into();
            }
        }
        Ok(())
    }

    async fn count(&mut self) -> Result<usize, String> {
        Ok(self.sb()?.site().count("Contact"))
    }

    fn new_record(&self, i: usize) -> Record {
        Record::Contact(Contact {
            given_name: Some(format!("美玲{i}")),
            family_name: Some("林".into()),
            emails: vec![format!("new{i}@conformance.example")],
            phones: vec![format!("+852 9123 45{i:02}")],
            ..Contact::default()
        })
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
        // Python json.dumps of the Webhook's selected fields.
        let body = br#"{"doctype": "Contact", "name": "\u9673\u5927\u6587", "modified": "2024-06-01 11:02:07.550120"}"#.to_vec();
        harness::signed_delivery(
            &synchub_erpnext::webhook::SIGNATURE,
            WEBHOOK_SECRET,
            forged,
            delivery_id,
            body,
            &[],
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erpnext_passes_the_conformance_suite() {
    let mut h = ErpHarness {
        site: None,
        seeded: 0,
    };
    let report = conformance::run(&mut h).await;
    println!("{report}");
    if let Some(sb) = h.site.take() {
        sb.shutdown().await;
    }
    harness::assert_conformant(&report, &[Check::Refresh, Check::Resync]);
}
