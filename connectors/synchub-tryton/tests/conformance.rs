//! The connector conformance suite (`synchub_testkit::conformance`) against
//! the real Tryton 8 started by `deploy/peers/tryton.sh` (http://127.0.0.1:18000,
//! database `synchub`), parties as the stream, the connector built through
//! its factory.
//!
//! The connector logs in as a user made for this test (Party
//! Administration), so that changing its password — which makes Tryton drop
//! the user's sessions — is a real session expiry or revocation that
//! touches no other test. Its calls pass through the test kit's fault
//! proxy, which answers 429/503, loses the answer to a `create` the real
//! server carried out, and counts the logins. The database is shared: a
//! "full read" starts at a watermark taken when the check began, and only
//! parties made after that point (by id) are compared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use synchub_core::{Contact, Cursor, ObjectKind, Record, Watermark};
use synchub_http::{Built, ConnectorFactory};
use synchub_testkit::conformance::{self, Check, Fault, Harness};
use synchub_testkit::harness;
use synchub_testkit::proxy::FaultProxy;
use synchub_tryton::{TrytonConfig, TrytonCursor, TrytonFactory};

const URL: &str = "http://127.0.0.1:18000";
const DB: &str = "synchub";
const PAGE: u32 = 3;

/// The admin side: what a person does in Tryton, over the same JSON-RPC.
struct Admin {
    http: reqwest::Client,
    auth: String,
}

impl Admin {
    async fn connect() -> Result<Admin, String> {
        let http = reqwest::Client::new();
        let body: Value = http
            .post(format!("{URL}/{DB}/rpc/"))
            .json(&json!({"id": 1, "method": "common.db.login", "params": ["admin", {"password": "admin-pass"}, "en"]}))
            .timeout(StdDuration::from_secs(30))
            .send()
            .await
            .map_err(|e| {
                format!("the real Tryton does not answer on {URL} ({e}): start it with deploy/peers/tryton.sh")
            })?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let uid = body["result"][0].as_i64().ok_or("admin does not log in")?;
        let token = body["result"][1].as_str().ok_or("admin does not log in")?;
        let auth = format!(
            "Session {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{uid}:{token}"))
        );
        Ok(Admin { http, auth })
    }

    async fn m(&self, model: &str, method: &str, mut args: Vec<Value>) -> Result<Value, String> {
        args.push(json!({"company": 1, "companies": [1]}));
        let body: Value = self
            .http
            .post(format!("{URL}/{DB}/rpc/"))
            .header("Authorization", &self.auth)
            .json(&json!({"id": 1, "method": format!("model.{model}.{method}"), "params": args}))
            .timeout(StdDuration::from_secs(60))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| format!("model.{model}.{method}: {e}"))?;
        if let Some(e) = body.get("error").filter(|e| !e.is_null()) {
            return Err(format!("model.{model}.{method}: {e}"));
        }
        Ok(body["result"].clone())
    }
}

struct TrytonHarness {
    admin: Option<Admin>,
    proxy: Option<FaultProxy>,
    user: Option<(i64, String)>,
    password: String,
    /// Partners with a larger id were made after the check began.
    floor: i64,
    origin: Option<Cursor>,
    seq: usize,
}

impl TrytonHarness {
    fn admin(&self) -> Result<&Admin, String> {
        self.admin.as_ref().ok_or_else(|| "fresh() first".into())
    }

    fn build(&self) -> Result<Built, String> {
        let proxy = self.proxy.as_ref().ok_or("fresh() first")?;
        let (_, login) = self.user.as_ref().ok_or("fresh() first")?;
        let cfg: TrytonConfig = serde_json::from_value(json!({
            "url": proxy.base_url, "database": DB, "login": login, "password": self.password,
            "page_size": PAGE, "overlap_seconds": 2,
        }))
        .map_err(|e| e.to_string())?;
        let deps = harness::isolated_deps("erp");
        TrytonFactory::build(cfg, &deps).map_err(|e| e.to_string())
    }

    /// The user the connector logs in as, made once: Party Administration
    /// in company 1.
    async fn ensure_user(&mut self) -> Result<(), String> {
        if self.user.is_some() {
            return Ok(());
        }
        let admin = self.admin()?;
        let group = admin
            .m(
                "res.group",
                "search",
                vec![
                    json!([["name", "=", "Party Administration"]]),
                    json!(0),
                    json!(1),
                    Value::Null,
                ],
            )
            .await?;
        let login = format!(
            "conformance-{}-{}",
            std::process::id(),
            Utc::now().timestamp_millis()
        );
        let ids = admin
            .m(
                "res.user",
                "create",
                vec![json!([{"name": "Conformance Suite", "login": login, "password": self.password,
                             "groups": [["add", group]], "companies": [["add", [1]]], "company": 1}])],
            )
            .await?;
        let id = ids[0].as_i64().ok_or("res.user.create returned no id")?;
        self.user = Some((id, login));
        Ok(())
    }

    /// Sets the user's password; Tryton drops the user's sessions with it.
    async fn set_password(&self, password: &str) -> Result<(), String> {
        let (id, _) = self.user.as_ref().ok_or("fresh() first")?;
        self.admin()?
            .m(
                "res.user",
                "write",
                vec![json!([id]), json!({"password": password})],
            )
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Harness for TrytonHarness {
    fn name(&self) -> String {
        "tryton (real Tryton 8)".into()
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
                "a last-modified watermark with an id tie-break does not expire at the \
                 server: nothing to resync"
                    .into(),
            ),
            Check::Webhooks => Some(
                "Tryton sends no webhooks (nor signed deliveries of any kind); changes are \
                 read by their last modification time"
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
        // Earlier runs' parties made from the suite's CRM ids would be
        // found by the connector's identifier lookup before a create.
        let old = admin
            .m(
                "party.identifier",
                "search",
                vec![json!([["code", "like", "synchub:conformance-crm-%"]])],
            )
            .await?;
        if old.as_array().is_some_and(|a| !a.is_empty()) {
            admin.m("party.identifier", "delete", vec![old]).await?;
        }
        let last = admin
            .m(
                "party.party",
                "search",
                vec![
                    json!([["active", "in", [true, false]]]),
                    json!(0),
                    json!(1),
                    json!([["id", "DESC"]]),
                ],
            )
            .await?;
        self.floor = last[0].as_i64().unwrap_or(0);
        let start = TrytonCursor {
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
            let made = self
                .admin()?
                .m(
                    "party.party",
                    "create",
                    vec![json!([{"name": format!("陳大文 {i:03}"),
                        "contact_mechanisms": [["create", [
                            {"type": "email", "value": format!("tai.man.{i}@example.com.hk")},
                            {"type": "phone", "value": format!("+886 2 2345 {i:04}")}]]]}])],
                )
                .await?;
            let id = made[0]
                .as_i64()
                .ok_or("party.party.create returned no id")?;
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        let id: i64 = external_id.parse().map_err(|_| "not an id".to_string())?;
        self.admin()?
            .m(
                "party.party",
                "write",
                vec![json!([id]), json!({"name": format!("陳大文（改） {id}")})],
            )
            .await
            .map(|_| ())
    }

    async fn delete(&mut self, external_id: &str) -> Result<(), String> {
        // Archiving is how a party leaves Tryton (active = false).
        let id: i64 = external_id.parse().map_err(|_| "not an id".to_string())?;
        self.admin()?
            .m(
                "party.party",
                "write",
                vec![json!([id]), json!({"active": false})],
            )
            .await
            .map(|_| ())
    }

    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        let proxy = self.proxy.as_ref().ok_or("fresh() first")?;
        match fault {
            // Tryton drops a user's sessions when the password is written.
            Fault::ExpireToken => self.set_password(&self.password.clone()).await,
            Fault::RevokeCredentials => self.set_password("revoked-by-the-suite").await,
            Fault::Clear => {
                proxy.inject(Fault::Clear)?;
                self.set_password(&self.password.clone()).await
            }
            // The create is carried out; its answer is lost on the way back.
            Fault::LoseNextResponse => {
                proxy.lose_next_matching("model.party.party.create");
                Ok(())
            }
            other => proxy.inject(other),
        }
    }

    async fn token_grants(&mut self) -> Result<u64, String> {
        let proxy = self.proxy.as_ref().ok_or("fresh() first")?;
        Ok(proxy.count_requests("\"common.db.login\"") as u64)
    }

    async fn count(&mut self) -> Result<usize, String> {
        let n = self
            .admin()?
            .m(
                "party.party",
                "search_count",
                vec![json!([["id", ">", self.floor]])],
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
        // A party without a name.
        Some(Record::Contact(Contact {
            emails: vec!["nameless@conformance.example".into()],
            ..Contact::default()
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryton_passes_the_conformance_suite_against_the_real_server() {
    let mut h = TrytonHarness {
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
    harness::assert_conformant(&report, &[Check::Resync, Check::Webhooks]);
}
