//! The connector conformance suite (`synchub_testkit::conformance`) against
//! the real Odoo 11 started by `deploy/peers/odoo.sh` (http://127.0.0.1:18069,
//! database `odoo`), contacts (`res.partner`) as the stream, the connector
//! built through its factory.
//!
//! The connector logs in as a user made for this test, so that revoking
//! its password is a real revocation that touches no other test. Its calls
//! pass through the test kit's fault proxy, which answers 429/503 or loses
//! the answer to a `create` the real server carried out. The database is
//! shared: a "full read" starts at a watermark taken when the check began,
//! and only partners made after that point (by id) are compared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use synchub_core::{Contact, Cursor, ObjectKind, Record, Watermark};
use synchub_http::{Built, ConnectorFactory};
use synchub_odoo::{OdooConfig, OdooCursor, OdooFactory};
use synchub_testkit::conformance::{self, Check, Fault, Harness};
use synchub_testkit::harness;
use synchub_testkit::proxy::FaultProxy;

const URL: &str = "http://127.0.0.1:18069";
const DB: &str = "odoo";
const PAGE: u32 = 3;

/// The admin side: what a person does in Odoo, over the same JSON-RPC.
struct Admin {
    http: reqwest::Client,
    uid: i64,
}

impl Admin {
    async fn connect() -> Result<Admin, String> {
        let http = reqwest::Client::new();
        let mut admin = Admin { http, uid: 0 };
        admin.uid = admin
            .call("common", "authenticate", json!([DB, "admin", "admin", {}]))
            .await
            .map_err(|e| {
                format!(
                    "the real Odoo does not answer on {URL} ({e}): start it with deploy/peers/odoo.sh"
                )
            })?
            .as_i64()
            .ok_or("admin/admin does not log in")?;
        Ok(admin)
    }

    async fn call(&self, service: &str, method: &str, args: Value) -> Result<Value, String> {
        let answer: Value = self
            .http
            .post(format!("{URL}/jsonrpc"))
            .json(&json!({"jsonrpc":"2.0","method":"call","id":1,
                "params":{"service":service,"method":method,"args":args}}))
            .timeout(StdDuration::from_secs(60))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if let Some(e) = answer.get("error") {
            return Err(format!("{method}: {e}"));
        }
        Ok(answer["result"].clone())
    }

    async fn x(
        &self,
        model: &str,
        method: &str,
        args: Value,
        kwargs: Value,
    ) -> Result<Value, String> {
        self.call(
            "object",
            "execute_kw",
            json!([DB, self.uid, "admin", model, method, args, kwargs]),
        )
        .await
    }
}

struct OdooHarness {
    admin: Option<Admin>,
    proxy: Option<FaultProxy>,
    user: Option<(i64, String)>,
    password: String,
    /// Partners with a larger id were made after the check began.
    floor: i64,
    origin: Option<Cursor>,
    seq: usize,
}

impl OdooHarness {
    fn admin(&self) -> Result<&Admin, String> {
        self.admin.as_ref().ok_or_else(|| "fresh() first".into())
    }

    fn build(&self) -> Result<Built, String> {
        let proxy = self.proxy.as_ref().ok_or("fresh() first")?;
        let (_, login) = self.user.as_ref().ok_or("fresh() first")?;
        let cfg: OdooConfig = serde_json::from_value(json!({
            "url": proxy.base_url, "database": DB, "login": login, "password": self.password,
            "page_size": PAGE, "overlap_seconds": 2,
        }))
        .map_err(|e| e.to_string())?;
        let deps = harness::isolated_deps("erp");
        OdooFactory::build(cfg, &deps).map_err(|e| e.to_string())
    }

    /// The user the connector logs in as, made once.
    async fn ensure_user(&mut self) -> Result<(), String> {
        if self.user.is_some() {
            return Ok(());
        }
        let admin = self.admin()?;
        let mut groups = Vec::new();
        for xml_id in ["base.group_user", "base.group_partner_manager"] {
            let (module, name) = xml_id.split_once('.').unwrap_or(("base", xml_id));
            let found = admin
                .x(
                    "ir.model.data",
                    "search_read",
                    json!([[["module", "=", module], ["name", "=", name]]]),
                    json!({"fields": ["res_id"]}),
                )
                .await?;
            groups.push(found[0]["res_id"].clone());
        }
        let login = format!(
            "conformance-{}-{}",
            std::process::id(),
            Utc::now().timestamp_millis()
        );
        let id = admin
            .x(
                "res.users",
                "create",
                json!([{"name": "Conformance Suite", "login": login, "password": self.password,
                        "email": format!("{login}@synchub.test"),
                        "groups_id": [[6, 0, groups]]}]),
                json!({}),
            )
            .await?
            .as_i64()
            .ok_or("res.users.create returned no id")?;
        self.user = Some((id, login));
        Ok(())
    }

    async fn set_password(&self, password: &str) -> Result<(), String> {
        let (id, _) = self.user.as_ref().ok_or("fresh() first")?;
        self.admin()?
            .x(
                "res.users",
                "write",
                json!([[id], {"password": password}]),
                json!({}),
            )
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Harness for OdooHarness {
    fn name(&self) -> String {
        "odoo (real Odoo 11)".into()
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
                "execute_kw carries the password (or API key) on every call: there is no \
                 access token to expire or refresh"
                    .into(),
            ),
            Check::Resync => Some(
                "a write_date watermark with an id tie-break does not expire at the server: \
                 nothing to resync"
                    .into(),
            ),
            Check::Webhooks => Some(
                "Odoo 11 sends no webhooks (nor signed deliveries of any kind); changes are \
                 read by write_date"
                    .into(),
            ),
            _ => None,
        }
    }

    fn origin(&self) -> Option<Cursor> {
        self.origin.clone()
    }

    fn in_scope(&self, external_id: &str) -> bool {
        external_id.parse::<i64>().is_ok_and(|id| id > self.floor)
    }

    async fn fresh(&mut self) -> Result<Built, String> {
        if self.admin.is_none() {
            self.admin = Some(Admin::connect().await?);
        }
        self.ensure_user().await?;
        self.set_password(&self.password.clone()).await?;
        let admin = self.admin()?;
        // Earlier runs' partners made from the suite's CRM ids would be
        // found by the connector's lookup before a create: they lose the id.
        let old = admin
            .x(
                "res.partner",
                "search",
                json!([[["ref", "=like", "conformance-crm-%"]]]),
                json!({"context": {"active_test": false}}),
            )
            .await?;
        if old.as_array().is_some_and(|a| !a.is_empty()) {
            admin
                .x(
                    "res.partner",
                    "write",
                    json!([old, {"ref": false}]),
                    json!({}),
                )
                .await?;
        }
        let last = admin
            .x(
                "res.partner",
                "search",
                json!([[]]),
                json!({"limit": 1, "order": "id desc", "context": {"active_test": false}}),
            )
            .await?;
        self.floor = last[0].as_i64().unwrap_or(0);
        // Odoo stores write_date to the second: start a little before now.
        let start = OdooCursor {
            wm: Watermark {
                watermark: Some(Utc::now() - Duration::seconds(1)),
                ..Watermark::default()
            },
            known: None,
        };
        self.origin = Some(Cursor(
            serde_json::to_value(start).map_err(|e| e.to_string())?,
        ));
        if self.proxy.is_none() {
            self.proxy = Some(
                FaultProxy::spawn(URL)
                    .await
                    .map_err(|e| format!("spawn the proxy: {e}"))?,
            );
        }
        if let Some(p) = &self.proxy {
            p.inject(Fault::Clear)?;
        }
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
            let id = self
                .admin()?
                .x(
                    "res.partner",
                    "create",
                    json!([{"name": format!("陳大文 {i:03}"), "email": format!("tai.man.{i}@example.com.hk"),
                            "phone": format!("+886 2 2345 {i:04}"), "is_company": false, "type": "contact"}]),
                    json!({}),
                )
                .await?
                .as_i64()
                .ok_or("res.partner.create returned no id")?;
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        let id: i64 = external_id.parse().map_err(|_| "not an id".to_string())?;
        self.admin()?
            .x(
                "res.partner",
                "write",
                json!([[id], {"function": "採購經理"}]),
                json!({}),
            )
            .await
            .map(|_| ())
    }

    async fn delete(&mut self, external_id: &str) -> Result<(), String> {
        // Archiving is how a partner leaves Odoo (active = false).
        let id: i64 = external_id.parse().map_err(|_| "not an id".to_string())?;
        self.admin()?
            .x(
                "res.partner",
                "write",
                json!([[id], {"active": false}]),
                json!({}),
            )
            .await
            .map(|_| ())
    }

    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        let proxy = self.proxy.as_ref().ok_or("fresh() first")?;
        match fault {
            Fault::RevokeCredentials => self.set_password("revoked-by-the-suite").await,
            Fault::Clear => {
                proxy.inject(Fault::Clear)?;
                self.set_password(&self.password.clone()).await
            }
            // The create is carried out; its answer is lost on the way back.
            Fault::LoseNextResponse => {
                proxy.lose_next_matching("\"create\",[");
                Ok(())
            }
            other => proxy.inject(other),
        }
    }

    async fn count(&mut self) -> Result<usize, String> {
        let n = self
            .admin()?
            .x(
                "res.partner",
                "search_count",
                json!([[
                    ["id", ">", self.floor],
                    ["is_company", "=", false],
                    ["type", "=", "contact"]
                ]]),
                json!({}),
            )
            .await?;
        n.as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| format!("search_count returned {n}"))
    }

    fn new_record(&self, i: usize) -> Record {
        harness::new_contact(i)
    }

    fn invalid_record(&self) -> Option<Record> {
        // A contact without a name: Odoo requires one.
        Some(Record::Contact(Contact {
            emails: vec!["nameless@conformance.example".into()],
            ..Contact::default()
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odoo_passes_the_conformance_suite_against_the_real_server() {
    let mut h = OdooHarness {
        admin: None,
        proxy: None,
        user: None,
        password: format!(
            "conformance-{}",
            Utc::now().timestamp_nanos_opt().unwrap_or(7)
        ),
        floor: 0,
        origin: None,
        seq: 0,
    };
    let report = conformance::run(&mut h).await;
    println!("{report}");
    if let Some(p) = h.proxy.take() {
        println!("proxy: {:?}", p.stats());
    }
    harness::assert_conformant(&report, &[Check::Refresh, Check::Resync, Check::Webhooks]);
}
