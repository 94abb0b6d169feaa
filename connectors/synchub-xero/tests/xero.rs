//! The Xero connector against its sandbox.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use rust_decimal_macros::dec;
use serde_json::Value;
use sha2::{Digest, Sha256};
use synchub_core::model::{Contact, LineItem, Order, PartyRef, Record};
use synchub_core::{
    Change, ChangeOp, Connector, ConnectorError, Cursor, ObjectKind, Refusal, WebhookAction,
    Written,
};
use synchub_http::webhook::{MemoryReplayGuard, WebhookError};
use synchub_http::{
    BodyCheck, Deps, MemoryTokenStore, QuotaConfig, QuotaRegistry, SecretString, TokenCipher,
    TokenSet, TokenVault, WebhookSource,
};
use synchub_xero::sandbox::{spawn, Limits, SandboxHandle, TENANT_A, TENANT_B, WEBHOOK_KEY};
use synchub_xero::{InvoiceWhen, Xero, XeroWebhooks};

const CONNECTION: &str = "ledger";

struct Env {
    sandbox: SandboxHandle,
    vault: TokenVault,
    deps: Deps,
}

async fn env(contacts: usize) -> Result<Env> {
    let sandbox = spawn(contacts).await?;
    #[allow(clippy::disallowed_methods)]
    let seed = format!(
        "{:?}{:?}",
        std::time::SystemTime::now(),
        std::thread::current().id()
    );
    let key = hex::encode(Sha256::digest(seed.as_bytes()));
    let vault = TokenVault::new(
        Arc::new(MemoryTokenStore::default()),
        TokenCipher::from_key_material(&SecretString::from(key))?,
    );
    vault
        .save(
            CONNECTION,
            &TokenSet {
                access_token: SecretString::from(sandbox.state.access_token()),
                refresh_token: Some(SecretString::from(sandbox.state.refresh_token())),
                expires_at: Some(Utc::now() + chrono::Duration::minutes(30)),
                scopes: vec![],
                extra: Default::default(),
            },
        )
        .await?;
    let registry: &'static QuotaRegistry = Box::leak(Box::new(QuotaRegistry::new()));
    let mut deps = Deps::new(CONNECTION, ".").with_tokens(vault.clone());
    deps.quotas = registry;
    Ok(Env {
        sandbox,
        vault,
        deps,
    })
}

impl Env {
    fn xero(&self, tenant: &str, when: InvoiceWhen) -> Result<Xero> {
        let mut c = self.sandbox.config(tenant);
        c.invoice_when = when;
        c.quota = Some(QuotaConfig::per_second(100, 100));
        Ok(Xero::new(c, &self.deps)?)
    }
}

fn order(paid: bool) -> Order {
    Order {
        number: Some("#2001".into()),
        customer: Some(PartyRef {
            email: Some("kat.warren@clampett.com".into()),
            name: Some("Katherine Warren".into()),
            ..PartyRef::default()
        }),
        financial_status: Some(if paid { "paid" } else { "pending" }.into()),
        currency: "NZD".into(),
        lines: vec![LineItem {
            sku: Some("TEA-1".into()),
            description: "Oolong".into(),
            quantity: dec!(3),
            unit_price: dec!(12.50),
            tax: Some(dec!(5.63)),
            total: dec!(37.50),
        }],
        total: dec!(43.13),
        ..Order::default()
    }
}

fn change(
    crm_id: &str,
    key: &str,
    op: ChangeOp,
    external_id: Option<&str>,
    record: Record,
) -> Change {
    Change {
        crm_id: crm_id.into(),
        op,
        external_id: external_id.map(str::to_string),
        base_version: None,
        record,
        idempotency_key: key.into(),
        base: None,
    }
}

fn written(out: &[synchub_core::PushOutcome]) -> Result<Written> {
    match &out[0].result {
        Ok(w) => Ok(w.clone()),
        Err(r) => bail!("refused: {r}"),
    }
}

// GIVEN 252 contacts and pages of 100 WHEN read to the end THEN each once; resume from any cursor; a page replays identically.
#[tokio::test]
async fn pagination_to_the_end_and_resume_from_every_cursor() -> Result<()> {
    let e = env(250).await?;
    let x = e.xero(TENANT_A, InvoiceWhen::Paid)?;
    let mut cursors: Vec<Option<Cursor>> = vec![None];
    let mut pages: Vec<Vec<String>> = Vec::new();
    loop {
        let p = x
            .pull(
                ObjectKind::Contact,
                cursors.last().cloned().flatten().as_ref(),
            )
            .await?;
        pages.push(p.records.iter().map(|r| r.external_id.clone()).collect());
        cursors.push(p.next.clone());
        if p.done {
            break;
        }
        assert!(pages.len() < 10);
    }
    let all = pages.concat();
    assert_eq!(all.len(), 252);
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 252);
    assert_eq!(pages.len(), 3);
    for k in 0..pages.len() {
        let mut got: Vec<String> = pages[..k].concat();
        let mut c = cursors[k].clone();
        loop {
            let p = x.pull(ObjectKind::Contact, c.as_ref()).await?;
            got.extend(p.records.iter().map(|r| r.external_id.clone()));
            c = p.next;
            if p.done {
                break;
            }
        }
        assert_eq!(got, all, "resume from cursor {k}");
        let again = x.pull(ObjectKind::Contact, cursors[k].as_ref()).await?;
        assert_eq!(
            again
                .records
                .iter()
                .map(|r| r.external_id.clone())
                .collect::<Vec<_>>(),
            pages[k],
            "replay {k}"
        );
    }
    // Incremental: nothing new, then one archived contact comes as a deletion.
    let end = cursors.last().cloned().flatten();
    let p = x.pull(ObjectKind::Contact, end.as_ref()).await?;
    assert!(p.records.is_empty(), "{:?}", p.records.len());
    let victim = all[5].clone();
    let w = written(
        &x.push(
            ObjectKind::Contact,
            &[change(
                "c-5",
                "k-arch",
                ChangeOp::Delete,
                Some(&victim),
                Record::Contact(Contact::default()),
            )],
        )
        .await?,
    )?;
    assert_eq!(w.external_id, victim);
    let p = x.pull(ObjectKind::Contact, p.next.as_ref()).await?;
    assert_eq!(p.records.len(), 1);
    assert!(p.records[0].deleted, "ARCHIVED is a deletion");
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN a create whose answer is lost WHEN retried with the same Idempotency-Key, then pushed again by a new process with a new key THEN one invoice.
#[tokio::test]
async fn an_order_is_invoiced_exactly_once() -> Result<()> {
    let e = env(0).await?;
    let x = e.xero(TENANT_A, InvoiceWhen::Placed)?;
    e.sandbox.state.lose_create_answers(1);
    let c = change(
        "ord-1",
        "outbox-1",
        ChangeOp::Create,
        None,
        Record::Order(order(false)),
    );
    let first = written(&x.push(ObjectKind::Order, std::slice::from_ref(&c)).await?)?;
    let x2 = e.xero(TENANT_A, InvoiceWhen::Placed)?;
    let mut c2 = c.clone();
    c2.idempotency_key = "outbox-1-after-crash".into();
    let second = written(&x2.push(ObjectKind::Order, &[c2]).await?)?;
    assert_eq!(first.external_id, second.external_id);
    let invoices: Vec<Value> = e.sandbox.state.orgs()[TENANT_A].invoices.clone();
    assert_eq!(invoices.len(), 1, "exactly one invoice");
    assert_eq!(invoices[0]["Type"], "ACCREC");
    assert_eq!(invoices[0]["Reference"], "synchub order ord-1");
    assert_eq!(
        synchub_xero::map::decimal(invoices[0].get("Total")),
        Some(dec!(43.13))
    );
    // Tenant B never saw it.
    assert!(e.sandbox.state.orgs()[TENANT_B].invoices.is_empty());
    // A currency the organisation lacks is refused for that record.
    let mut twd = order(false);
    twd.currency = "TWD".into();
    let out = x
        .push(
            ObjectKind::Order,
            &[change(
                "ord-t",
                "k-t",
                ChangeOp::Create,
                None,
                Record::Order(twd),
            )],
        )
        .await?;
    let Err(Refusal::Rejected { reason }) = &out[0].result else {
        bail!("expected refusal: {:?}", out[0].result)
    };
    assert!(reason.contains("TWD"), "{reason}");
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN an invoice WHEN paid in Xero THEN the invoice stream brings AmountDue 0 and status paid, tied to the order.
#[tokio::test]
async fn payments_flow_back() -> Result<()> {
    let e = env(0).await?;
    let x = e.xero(TENANT_A, InvoiceWhen::Placed)?;
    let w = written(
        &x.push(
            ObjectKind::Order,
            &[change(
                "ord-p",
                "k-p",
                ChangeOp::Create,
                None,
                Record::Order(order(false)),
            )],
        )
        .await?,
    )?;
    e.sandbox
        .state
        .orgs()
        .get_mut(TENANT_A)
        .context("org")?
        .pay(&w.external_id, dec!(43.13))
        .map_err(anyhow::Error::msg)?;
    let p = x.pull(ObjectKind::Invoice, None).await?;
    let r = p
        .records
        .iter()
        .find(|r| r.external_id == w.external_id)
        .context("invoice")?;
    let Some(Record::Invoice(inv)) = &r.record else {
        bail!("invoice")
    };
    assert_eq!(inv.amount_due, Some(dec!(0)));
    assert_eq!(inv.status.as_deref(), Some("paid"));
    assert_eq!(inv.order_crm_id.as_deref(), Some("ord-p"));
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN tenant A at its day limit WHEN it is called THEN a retry error naming when it resumes; tenant B (same sign-in) goes on.
#[tokio::test]
async fn the_day_limit_pauses_one_tenant_and_others_go_on() -> Result<()> {
    let e = env(3).await?;
    e.sandbox.state.set_limits(
        TENANT_A,
        Limits {
            per_day: 2,
            ..Limits::default()
        },
    );
    let a = e.xero(TENANT_A, InvoiceWhen::Paid)?;
    let b = e.xero(TENANT_B, InvoiceWhen::Paid)?;
    a.check().await?;
    a.check().await?;
    let err = a
        .pull(ObjectKind::Contact, None)
        .await
        .expect_err("day limit");
    let ConnectorError::Unavailable {
        retry_after,
        message,
        ..
    } = &err
    else {
        bail!("{err}")
    };
    assert!(
        message.contains("day") && message.contains("resumes in"),
        "{message}"
    );
    assert!(
        retry_after.is_some_and(|d| d >= Duration::from_secs(3600)),
        "{retry_after:?}"
    );
    let p = b.pull(ObjectKind::Contact, None).await?;
    assert!(
        p.done && p.records.is_empty(),
        "tenant B has its own (empty) data and quota"
    );
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN a minute limit of 2 per second WHEN 5 calls THEN 429s are waited out per Retry-After.
#[tokio::test]
async fn the_minute_limit_is_waited_out() -> Result<()> {
    let e = env(0).await?;
    e.sandbox.state.set_limits(
        TENANT_A,
        Limits {
            per_minute: 2,
            minute: Duration::from_secs(1),
            per_day: 5000,
        },
    );
    let a = e.xero(TENANT_A, InvoiceWhen::Paid)?;
    for _ in 0..5 {
        a.check().await?;
    }
    assert!(e.sandbox.state.throttled() >= 1);
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN an expired access token WHEN called THEN one refresh, rotated token saved.
#[tokio::test]
async fn a_401_refreshes_once() -> Result<()> {
    let e = env(0).await?;
    let a = e.xero(TENANT_A, InvoiceWhen::Paid)?;
    e.sandbox.state.expire_access_token();
    a.check().await?;
    a.check().await?;
    assert_eq!(a.tokens().context("tokens")?.refresh_count(), 1);
    assert_eq!(e.sandbox.state.refreshes(), 1);
    use synchub_http::ExposeSecret;
    let saved = e.vault.load(CONNECTION).await?.context("saved")?;
    assert_eq!(
        saved.refresh_token.map(|t| t.expose_secret().to_string()),
        Some(e.sandbox.state.refresh_token())
    );
    e.sandbox.shutdown().await;
    Ok(())
}

async fn deliver(
    h: &XeroWebhooks,
    sig: &str,
    body: &[u8],
    guard: &MemoryReplayGuard,
) -> Result<WebhookAction, WebhookError> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-xero-signature",
        sig.parse().map_err(|_| WebhookError::BadSignature)?,
    );
    let BodyCheck::Signed(mut p) = h.begin(&headers)? else {
        return Err(WebhookError::Malformed("unsigned".into()));
    };
    p.update(body);
    let v = p.finish()?;
    h.classify(&v, &headers, body, guard).await
}

// GIVEN the fixture delivery and intent-to-receive payloads WHEN verified THEN classified; forgeries refused.
#[tokio::test]
async fn webhooks_and_intent_to_receive() -> Result<()> {
    let path = format!(
        "{}/tests/fixtures/webhook_contact_update.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let f: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let body = f["_signed_example"]["raw_body"]
        .as_str()
        .context("body")?
        .as_bytes()
        .to_vec();
    let sig = f["_signed_example"]["x-xero-signature"]
        .as_str()
        .context("sig")?;
    let h = XeroWebhooks::new(TENANT_A.into(), SecretString::from(WEBHOOK_KEY.to_string()));
    let guard = MemoryReplayGuard::new(Duration::from_secs(60), 10);
    assert_eq!(
        deliver(&h, sig, &body, &guard).await?,
        WebhookAction::Sync {
            object: ObjectKind::Contact,
            deleted: None
        }
    );
    assert_eq!(
        deliver(&h, sig, &body, &guard).await?,
        WebhookAction::Nothing("duplicate")
    );
    // Intent to receive: empty events, one signed right, one not.
    let itr = br#"{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"XYZ"}"#;
    let good = synchub_xero::webhook::sign(WEBHOOK_KEY, itr);
    assert_eq!(
        deliver(&h, &good, itr, &guard).await?,
        WebhookAction::Nothing("ping")
    );
    let bad = synchub_xero::webhook::sign("not-the-key", itr);
    assert_eq!(
        deliver(&h, &bad, itr, &guard).await,
        Err(WebhookError::BadSignature)
    );
    Ok(())
}

// GIVEN a contact changed in Xero since our base WHEN we update it THEN a conflict carrying the current record; with the current base THEN written.
#[tokio::test]
async fn a_changed_contact_is_a_conflict_then_written() -> Result<()> {
    let e = env(0).await?;
    let x = e.xero(TENANT_A, InvoiceWhen::Paid)?;
    let id = "5cc8cf28-567e-4d43-b287-687cfcaec47c";
    let c = Contact {
        full_name: Some("Katherine Warren".into()),
        emails: vec!["kat@new.example".into()],
        ..Contact::default()
    };
    let mut ch = change(
        "c-k",
        "k-upd-1",
        ChangeOp::Update,
        Some(id),
        Record::Contact(c.clone()),
    );
    ch.base_version = Some("/Date(1+0000)/".into());
    let out = x
        .push(ObjectKind::Contact, std::slice::from_ref(&ch))
        .await?;
    let Err(Refusal::Conflict {
        current: Some(current),
        ..
    }) = &out[0].result
    else {
        bail!("expected conflict: {:?}", out[0].result)
    };
    ch.base_version = current.version.clone();
    ch.idempotency_key = "k-upd-2".into();
    let w = written(&x.push(ObjectKind::Contact, &[ch]).await?)?;
    assert_eq!(w.external_id, id);
    let stored = e.sandbox.state.orgs()[TENANT_A]
        .contacts
        .iter()
        .find(|c| c["ContactID"] == id)
        .cloned()
        .context("contact")?;
    assert_eq!(stored["EmailAddress"], "kat@new.example");
    assert_ne!(w.version, current.version, "UpdatedDateUTC moved");
    e.sandbox.shutdown().await;
    Ok(())
}
