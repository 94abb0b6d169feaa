//! The conformance suite checked against itself: a small in-memory source
//! that follows the contract passes every check; the same source with one
//! deliberate bug (a cursor that skips a record, a push that creates twice)
//! fails the suite with a message naming the bug.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderMap;
use serde_json::json;
use synchub_core::connector::{ObjectSpec, Written};
use synchub_core::{
    push_each, Change, Connector, ConnectorError, Contact, Cursor, ObjectKind, Page, PushOutcome,
    Record, RemoteRecord, WebhookAction,
};
use synchub_http::connect::{BodyCheck, Built, WebhookSource};
use synchub_http::webhook::{HmacSignature, ReplayGuard, VerifiedDelivery, WebhookError};
use synchub_http::SecretString;
use synchub_testkit::conformance::{self, Check, Fault, Harness, Outcome};
use synchub_testkit::harness;

const PAGE: usize = 3;
const SECRET: &str = "toy-webhook-secret";
const HOST: &str = "toy.test";

/// A deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    None,
    /// The cursor of a full page points one record too far.
    SkipOnPageBoundary,
    /// Pushes ignore the idempotency key.
    CreateTwice,
}

#[derive(Debug, Clone)]
struct Row {
    record: Record,
    seq: u64,
    deleted: bool,
}

/// The remote: a change feed ordered by sequence number.
#[derive(Default)]
struct Remote {
    rows: BTreeMap<String, Row>,
    seq: u64,
    next_id: u64,
    by_key: HashMap<String, String>,
    epoch: u64,
    token: u64,
    grants: u64,
    revoked: bool,
    expired: bool,
    throttle: Option<Duration>,
    down: bool,
    lose_next: bool,
}

enum Answer {
    Throttled(Duration),
    Unauthorized,
    Down,
}

impl Remote {
    /// The gate every request passes, as an HTTP server would.
    fn gate(&mut self, token: u64) -> Result<(), Answer> {
        if let Some(d) = self.throttle.take() {
            return Err(Answer::Throttled(d));
        }
        if self.down {
            return Err(Answer::Down);
        }
        if self.revoked || self.expired || token != self.token {
            return Err(Answer::Unauthorized);
        }
        Ok(())
    }

    fn grant(&mut self) -> Option<u64> {
        if self.revoked {
            return None;
        }
        self.grants += 1;
        self.token += 1;
        self.expired = false;
        Some(self.token)
    }

    fn insert(&mut self, record: Record) -> String {
        self.next_id += 1;
        self.seq += 1;
        let id = format!("toy-{}", self.next_id);
        self.rows.insert(
            id.clone(),
            Row {
                record,
                seq: self.seq,
                deleted: false,
            },
        );
        id
    }
}

#[derive(Clone)]
struct Toy {
    remote: Arc<Mutex<Remote>>,
    token: Arc<Mutex<u64>>,
    bug: Bug,
}

fn err(answer: Answer) -> ConnectorError {
    match answer {
        Answer::Throttled(d) => ConnectorError::Unavailable {
            host: HOST.into(),
            message: "429 Too Many Requests".into(),
            retry_after: Some(d),
        },
        Answer::Down => ConnectorError::Unavailable {
            host: HOST.into(),
            message: "503 Service Unavailable".into(),
            retry_after: None,
        },
        Answer::Unauthorized => ConnectorError::Auth {
            host: HOST.into(),
            message: "401 Unauthorized".into(),
        },
    }
}

impl Toy {
    /// Runs `f` behind the gate; a 401 refreshes the token once.
    fn call<T>(&self, mut f: impl FnMut(&mut Remote) -> T) -> Result<T, ConnectorError> {
        let mut remote = self.remote.lock().unwrap();
        let mut token = self.token.lock().unwrap();
        match remote.gate(*token) {
            Ok(()) => Ok(f(&mut remote)),
            Err(Answer::Unauthorized) => {
                let Some(new) = remote.grant() else {
                    return Err(err(Answer::Unauthorized));
                };
                *token = new;
                remote.gate(*token).map_err(err)?;
                Ok(f(&mut remote))
            }
            Err(a) => Err(err(a)),
        }
    }
}

fn valid(record: &Record) -> Result<(), String> {
    match record {
        Record::Contact(c) if !c.emails.is_empty() => Ok(()),
        _ => Err("email: can't be blank".into()),
    }
}

#[async_trait]
impl Connector for Toy {
    fn kind(&self) -> &'static str {
        "toy"
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        vec![ObjectSpec {
            kind: ObjectKind::Contact,
            can_read: true,
            incremental: true,
            can_write: true,
        }]
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.call(|_| ())
    }

    async fn pull(&self, _: ObjectKind, from: Option<&Cursor>) -> Result<Page, ConnectorError> {
        let (epoch, after) = match from {
            None => (None, 0),
            Some(c) => (c.0["epoch"].as_u64(), c.0["after"].as_u64().unwrap_or(0)),
        };
        let bug = self.bug;
        self.call(|remote| {
            if epoch.is_some_and(|e| e != remote.epoch) {
                return Err(ConnectorError::Resync {
                    host: HOST.into(),
                    message: "the change feed position expired".into(),
                });
            }
            let mut rows: Vec<(&String, &Row)> =
                remote.rows.iter().filter(|(_, r)| r.seq > after).collect();
            rows.sort_by_key(|(_, r)| r.seq);
            let more = rows.len() > PAGE;
            rows.truncate(PAGE);
            let mut last = rows.last().map_or(after, |(_, r)| r.seq);
            if bug == Bug::SkipOnPageBoundary && more {
                last += 1;
            }
            let records = rows
                .iter()
                .map(|(id, r)| RemoteRecord {
                    external_id: (*id).clone(),
                    version: Some(r.seq.to_string()),
                    updated_at: None,
                    deleted: r.deleted,
                    record: (!r.deleted).then(|| r.record.clone()),
                    raw: json!({ "id": id }),
                })
                .collect();
            Ok(Page {
                records,
                rejected: vec![],
                next: Some(Cursor(json!({ "epoch": remote.epoch, "after": last }))),
                done: !more,
            })
        })?
    }

    async fn push(
        &self,
        _: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        push_each(changes, |change| async move {
            let bug = self.bug;
            self.call(|remote| {
                valid(&change.record).map_err(|m| ConnectorError::Protocol {
                    host: HOST.into(),
                    message: format!("422 {m}"),
                })?;
                let key = change.idempotency_key.clone();
                let id = match remote.by_key.get(&key) {
                    Some(id) if bug != Bug::CreateTwice => id.clone(),
                    _ => {
                        let id = remote.insert(change.record.clone());
                        remote.by_key.insert(key, id.clone());
                        id
                    }
                };
                if std::mem::take(&mut remote.lose_next) {
                    return Err(ConnectorError::Unavailable {
                        host: HOST.into(),
                        message: "connection reset before the answer".into(),
                        retry_after: None,
                    });
                }
                let seq = remote.rows.get(&id).map(|r| r.seq);
                Ok(Written {
                    external_id: id,
                    version: seq.map(|s| s.to_string()),
                    record: None,
                })
            })?
        })
        .await
    }
}

struct ToyHooks;

const TOY_SIGNATURE: HmacSignature =
    HmacSignature::base64("x-toy-signature", Some("x-toy-delivery"));

#[async_trait]
impl WebhookSource for ToyHooks {
    fn begin(&self, headers: &HeaderMap) -> Result<BodyCheck, WebhookError> {
        TOY_SIGNATURE
            .begin(headers, &[SecretString::from(SECRET.to_string())])
            .map(BodyCheck::Signed)
    }

    async fn classify(
        &self,
        delivery: &VerifiedDelivery,
        _: &HeaderMap,
        _: &[u8],
        guard: &dyn ReplayGuard,
    ) -> Result<WebhookAction, WebhookError> {
        if guard.first_seen(&delivery.delivery.id).await {
            Ok(WebhookAction::Sync {
                object: ObjectKind::Contact,
                deleted: None,
            })
        } else {
            Ok(WebhookAction::Nothing("duplicate"))
        }
    }
}

struct ToyHarness {
    bug: Bug,
    remote: Arc<Mutex<Remote>>,
    no_refresh: bool,
}

impl ToyHarness {
    fn new(bug: Bug) -> Self {
        ToyHarness {
            bug,
            remote: Arc::default(),
            no_refresh: false,
        }
    }

    fn build(&self) -> Built {
        let token = self.remote.lock().unwrap().token;
        Built {
            connector: Arc::new(Toy {
                remote: self.remote.clone(),
                token: Arc::new(Mutex::new(token)),
                bug: self.bug,
            }),
            webhooks: Some(Arc::new(ToyHooks)),
        }
    }
}

fn contact(name: &str) -> Record {
    Record::Contact(Contact {
        given_name: Some(name.into()),
        emails: vec![format!(
            "{}@example.com",
            name.to_lowercase().replace(' ', ".")
        )],
        ..Contact::default()
    })
}

#[async_trait]
impl Harness for ToyHarness {
    fn name(&self) -> String {
        format!("toy ({:?})", self.bug)
    }

    fn object(&self) -> ObjectKind {
        ObjectKind::Contact
    }

    fn page_size(&self) -> usize {
        PAGE
    }

    fn lacks(&self, check: Check) -> Option<String> {
        (self.no_refresh && check == Check::Refresh)
            .then(|| "static access tokens: nothing to refresh".to_string())
    }

    async fn fresh(&mut self) -> Result<Built, String> {
        self.remote = Arc::default();
        Ok(self.build())
    }

    async fn rebuild(&mut self) -> Result<Built, String> {
        Ok(self.build())
    }

    async fn seed(&mut self, n: usize) -> Result<Vec<String>, String> {
        let mut remote = self.remote.lock().unwrap();
        Ok((0..n)
            .map(|i| remote.insert(contact(&format!("Seed {i}"))))
            .collect())
    }

    async fn modify(&mut self, external_id: &str) -> Result<(), String> {
        let mut remote = self.remote.lock().unwrap();
        remote.seq += 1;
        let seq = remote.seq;
        let row = remote
            .rows
            .get_mut(external_id)
            .ok_or_else(|| format!("no record {external_id}"))?;
        row.seq = seq;
        Ok(())
    }

    async fn delete(&mut self, external_id: &str) -> Result<(), String> {
        let mut remote = self.remote.lock().unwrap();
        remote.seq += 1;
        let seq = remote.seq;
        let row = remote
            .rows
            .get_mut(external_id)
            .ok_or_else(|| format!("no record {external_id}"))?;
        row.seq = seq;
        row.deleted = true;
        Ok(())
    }

    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        let mut r = self.remote.lock().unwrap();
        match fault {
            Fault::Throttle { retry_after } => r.throttle = Some(retry_after),
            Fault::ExpireToken => r.expired = true,
            Fault::RevokeCredentials => r.revoked = true,
            Fault::Down => r.down = true,
            Fault::LoseNextResponse => r.lose_next = true,
            Fault::Clear => {
                r.throttle = None;
                r.revoked = false;
                r.down = false;
                r.lose_next = false;
            }
        }
        Ok(())
    }

    async fn token_grants(&mut self) -> Result<u64, String> {
        Ok(self.remote.lock().unwrap().grants)
    }

    async fn expire_positions(&mut self) -> Result<(), String> {
        self.remote.lock().unwrap().epoch += 1;
        Ok(())
    }

    async fn count(&mut self) -> Result<usize, String> {
        Ok(self
            .remote
            .lock()
            .unwrap()
            .rows
            .values()
            .filter(|r| !r.deleted)
            .count())
    }

    fn new_record(&self, i: usize) -> Record {
        contact(&format!("New {i}"))
    }

    fn invalid_record(&self) -> Option<Record> {
        Some(Record::Contact(Contact {
            given_name: Some("No Email".into()),
            ..Contact::default()
        }))
    }

    async fn webhook(
        &mut self,
        delivery_id: &str,
        forged: bool,
    ) -> Result<(HeaderMap, Vec<u8>), String> {
        let body = serde_json::to_vec(&json!({ "topic": "contacts/update", "id": 1 }))
            .map_err(|e| e.to_string())?;
        harness::signed_delivery(&TOY_SIGNATURE, SECRET, forged, delivery_id, body, &[])
    }
}

#[tokio::test]
async fn a_conforming_connector_passes_every_check() {
    let mut h = ToyHarness::new(Bug::None);
    let report = conformance::run(&mut h).await;
    report.assert_passed();
    assert_eq!(report.passed(), Check::ALL.len(), "{report}");
}

#[tokio::test]
async fn a_declared_lack_is_reported_not_applicable_not_passed() {
    let mut h = ToyHarness::new(Bug::None);
    h.no_refresh = true;
    let report = conformance::run(&mut h).await;
    report.assert_passed();
    assert_eq!(
        report.outcome(Check::Refresh),
        Some(&Outcome::NotApplicable(
            "static access tokens: nothing to refresh".into()
        ))
    );
    assert_eq!(report.passed(), Check::ALL.len() - 1);
    assert!(report.to_string().contains("n/a   401 -> refresh once"));
}

#[tokio::test]
async fn a_cursor_that_skips_a_record_fails_pagination_and_resume() {
    let mut h = ToyHarness::new(Bug::SkipOnPageBoundary);
    let report = conformance::run(&mut h).await;
    let failures = report.failures();
    let failed: Vec<Check> = failures.iter().map(|(c, _)| *c).collect();
    assert!(failed.contains(&Check::Pagination), "{report}");
    assert!(failed.contains(&Check::Resume), "{report}");
    let (_, msg) = failures
        .iter()
        .find(|(c, _)| *c == Check::Pagination)
        .unwrap();
    // Record 4 sits just after the first full page.
    assert!(
        msg.contains("skipped [\"toy-4\"]"),
        "unclear message: {msg}"
    );
    let panic = std::panic::catch_unwind(|| report.assert_passed()).unwrap_err();
    let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        text.contains("toy (SkipOnPageBoundary) fails the connector conformance suite")
            && text.contains("FAIL  pagination to the end: a full read from no cursor: skipped"),
        "{text}"
    );
}

#[tokio::test]
async fn a_push_that_creates_twice_fails_idempotent_push() {
    let mut h = ToyHarness::new(Bug::CreateTwice);
    let report = conformance::run(&mut h).await;
    let failures = report.failures();
    assert_eq!(
        failures.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        vec![Check::IdempotentPush],
        "{report}"
    );
    assert!(
        failures[0]
            .1
            .contains("a create retried with the same idempotency key made 2 remote record(s)"),
        "unclear message: {}",
        failures[0].1
    );
}

#[tokio::test]
async fn a_harness_that_cannot_do_what_it_claims_fails_the_check_naming_the_call() {
    struct NoWebhooks(ToyHarness);
    #[async_trait]
    impl Harness for NoWebhooks {
        fn name(&self) -> String {
            "toy without webhooks".into()
        }
        fn object(&self) -> ObjectKind {
            ObjectKind::Contact
        }
        fn page_size(&self) -> usize {
            PAGE
        }
        fn lacks(&self, check: Check) -> Option<String> {
            (check != Check::Webhooks).then(|| "only webhooks are checked here".into())
        }
        async fn fresh(&mut self) -> Result<Built, String> {
            let mut built = self.0.fresh().await?;
            built.webhooks = None;
            Ok(built)
        }
        async fn rebuild(&mut self) -> Result<Built, String> {
            self.0.rebuild().await
        }
        async fn seed(&mut self, n: usize) -> Result<Vec<String>, String> {
            self.0.seed(n).await
        }
        async fn modify(&mut self, id: &str) -> Result<(), String> {
            self.0.modify(id).await
        }
        async fn inject(&mut self, fault: Fault) -> Result<(), String> {
            self.0.inject(fault).await
        }
        async fn count(&mut self) -> Result<usize, String> {
            self.0.count().await
        }
        fn new_record(&self, i: usize) -> Record {
            self.0.new_record(i)
        }
    }
    let report = conformance::run(&mut NoWebhooks(ToyHarness::new(Bug::None))).await;
    assert_eq!(report.passed(), 0);
    match report.outcome(Check::Webhooks) {
        Some(Outcome::Failed(m)) => assert!(m.contains("built no webhook source"), "{m}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}
