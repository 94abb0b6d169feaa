//! The QuickBooks connector against its sandbox: fixtures replayed against
//! the sandbox, pagination and resume, CDC and its window, exactly-once
//! invoicing, SyncToken conflicts, items, currency, payments back, 429,
//! 401 refresh, webhooks.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use synchub_core::model::{Contact, LineItem, Order, PartyRef, Record};
use synchub_core::{Change, ChangeOp, Connector, Cursor, ErrorClass, ObjectKind, Refusal, Written};
use synchub_http::webhook::{MemoryReplayGuard, WebhookError};
use synchub_http::{
    BodyCheck, Deps, DynFactory, Factory, MemoryTokenStore, QuotaRegistry, SecretString,
    TokenCipher, TokenSet, TokenVault, WebhookSource,
};
use synchub_quickbooks::sandbox::{
    spawn, SandboxHandle, SandboxOptions, SANDBOX_REALM, SANDBOX_VERIFIER,
};
use synchub_quickbooks::{QuickBooks, QuickBooksConfig, QuickBooksFactory, QuickBooksWebhooks};

const CONNECTION: &str = "books";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).expect("fixture json")
}

fn vault() -> TokenVault {
    // A key made at test time, never written in the source.
    #[allow(clippy::disallowed_methods)]
    let seed = format!(
        "{:?}{:?}",
        std::time::SystemTime::now(),
        std::thread::current().id()
    );
    let key = hex::encode(Sha256::digest(seed.as_bytes()));
    let cipher = TokenCipher::from_key_material(&SecretString::from(key)).expect("key");
    TokenVault::new(Arc::new(MemoryTokenStore::default()), cipher)
}

struct Env {
    sandbox: SandboxHandle,
    vault: TokenVault,
    deps: Deps,
}

async fn env(opts: SandboxOptions) -> Result<Env> {
    let sandbox = spawn(opts).await.context("start the sandbox")?;
    let vault = vault();
    vault
        .save(
            CONNECTION,
            &TokenSet {
                access_token: SecretString::from(sandbox.state.access_token()),
                refresh_token: Some(SecretString::from(sandbox.state.refresh_token())),
                expires_at: Some(Utc::now() + chrono::Duration::hours(1)),
                scopes: vec!["com.intuit.quickbooks.accounting".into()],
                extra: Default::default(),
            },
        )
        .await?;
    // A registry per test: quotas are not shared between tests.
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
    fn connector(&self, tweak: impl FnOnce(&mut QuickBooksConfig)) -> Result<QuickBooks> {
        let mut cfg = self.sandbox.config();
        tweak(&mut cfg);
        Ok(QuickBooks::new(cfg, &self.deps)?)
    }
}

fn order(number: &str, paid: bool, skus: &[&str], currency: &str) -> Order {
    Order {
        number: Some(number.into()),
        customer: Some(PartyRef {
            email: Some("Birds@Intuit.com".into()),
            name: Some("Amy's Bird Sanctuary".into()),
            ..PartyRef::default()
        }),
        status: Some("closed".into()),
        financial_status: Some(if paid { "paid" } else { "pending" }.into()),
        currency: currency.into(),
        lines: skus
            .iter()
            .map(|s| LineItem {
                sku: Some((*s).into()),
                description: format!("{s} item"),
                quantity: dec!(2),
                unit_price: dec!(19.99),
                total: dec!(39.98),
                ..LineItem::default()
            })
            .collect(),
        tax_total: Some(dec!(4.00)),
        total: dec!(39.98) * rust_decimal::Decimal::from(skus.len()) + dec!(4.00),
        ..Order::default()
    }
}

fn create(crm_id: &str, key: &str, record: Record) -> Change {
    Change {
        crm_id: crm_id.into(),
        op: ChangeOp::Create,
        external_id: None,
        base_version: None,
        record,
        idempotency_key: key.into(),
        base: None,
    }
}

fn written(outcomes: &[synchub_core::PushOutcome]) -> Result<Written> {
    match &outcomes[0].result {
        Ok(w) => Ok(w.clone()),
        Err(r) => bail!("refused: {r}"),
    }
}

async fn drain(
    qb: &QuickBooks,
    object: ObjectKind,
    from: Option<Cursor>,
) -> Result<(Vec<String>, Cursor, usize)> {
    let mut ids = Vec::new();
    let mut cursor = from;
    for pages in 1..1000 {
        let page = qb.pull(object, cursor.as_ref()).await?;
        ids.extend(page.records.iter().map(|r| r.external_id.clone()));
        cursor = page.next.or(cursor);
        if page.done {
            return Ok((ids, cursor.context("a cursor")?, pages));
        }
    }
    bail!("no end")
}

// GIVEN the recorded fixtures WHEN the same requests go to the sandbox THEN its answers have their shapes.
#[tokio::test]
async fn sandbox_answers_have_the_fixture_shapes() -> Result<()> {
    let e = env(SandboxOptions::default()).await?;
    let http = synchub_http::new_reqwest_client()?;
    let base = format!("{}/v3/company/{SANDBOX_REALM}", e.sandbox.url());
    let token = e.sandbox.state.access_token();
    let get = |url: String, q: Vec<(&'static str, String)>| {
        let http = http.clone();
        let token = token.clone();
        async move {
            let r = http.get(url).query(&q).bearer_auth(token).send().await?;
            let status = r.status().as_u16();
            Ok::<_, anyhow::Error>((status, r.json::<Value>().await?))
        }
    };
    // Query: the official sample query returns the fixture customers, field for field.
    let (status, v) = get(
        format!("{base}/query"),
        vec![(
            "query",
            "select * from Customer Where Metadata.LastUpdatedTime > '2015-03-01'".into(),
        )],
    )
    .await?;
    assert_eq!(status, 200);
    let want = fixture("query_customers.json");
    let got = &v["QueryResponse"];
    assert_eq!(got["startPosition"], want["QueryResponse"]["startPosition"]);
    assert_eq!(got["maxResults"], want["QueryResponse"]["maxResults"]);
    for (g, w) in got["Customer"].as_array().context("customers")?.iter().zip(
        want["QueryResponse"]["Customer"]
            .as_array()
            .context("fixture")?,
    ) {
        for key in [
            "Id",
            "SyncToken",
            "DisplayName",
            "PrimaryEmailAddr",
            "BillAddr",
            "Balance",
            "Active",
            "domain",
        ] {
            assert_eq!(g[key], w[key], "Customer.{key}");
        }
    }
    // An empty result has no entity key.
    let (_, v) = get(
        format!("{base}/query"),
        vec![(
            "query",
            "select * from Customer where DisplayName = 'nobody'".into(),
        )],
    )
    .await?;
    assert_eq!(
        v["QueryResponse"],
        fixture("query_empty.json")["QueryResponse"]
    );
    // CDC: the nesting of the fixture.
    let since = (Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    let (_, v) = get(
        format!("{base}/cdc"),
        vec![
            ("entities", "Customer,Invoice".into()),
            ("changedSince", since),
        ],
    )
    .await?;
    assert!(
        v["CDCResponse"][0]["QueryResponse"][0]["Customer"].is_array(),
        "{v}"
    );
    assert!(
        v["CDCResponse"][0]["QueryResponse"][1]["Invoice"].is_array(),
        "{v}"
    );
    assert!(v["time"].is_string());
    // Faults: 401 and stale object as recorded.
    let r = http
        .get(format!("{base}/customer/1"))
        .bearer_auth("wrong")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await?;
    assert_eq!(
        v["Fault"]["type"],
        fixture("fault_auth_401.json")["Fault"]["type"]
    );
    assert_eq!(v["Fault"]["Error"][0]["code"], "3200");
    let r = http
        .post(format!("{base}/customer"))
        .bearer_auth(&token)
        .json(&json!({"Id": "1", "SyncToken": "0", "sparse": true, "Notes": "x"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await?;
    let want = fixture("fault_stale_object.json");
    assert_eq!(v["Fault"]["type"], want["Fault"]["type"]);
    assert_eq!(
        v["Fault"]["Error"][0]["code"],
        want["Fault"]["Error"][0]["code"]
    );
    assert_eq!(
        v["Fault"]["Error"][0]["Message"],
        want["Fault"]["Error"][0]["Message"]
    );
    // OR is refused with a parser error, as Intuit does.
    let (status, v) = get(
        format!("{base}/query"),
        vec![(
            "query",
            "select * from Customer where Id = '1' or Id = '29'".into(),
        )],
    )
    .await?;
    assert_eq!(status, 400);
    assert_eq!(v["Fault"]["Error"][0]["code"], "4000");
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN 27 customers and pages of 10 WHEN read to the end THEN each once; resuming from any cursor finishes the set; a page replays identically.
#[tokio::test]
async fn pagination_to_the_end_and_resume_from_every_cursor() -> Result<()> {
    let e = env(SandboxOptions {
        customers: 25,
        ..SandboxOptions::default()
    })
    .await?;
    let qb = e.connector(|c| c.page_size = 10)?;
    let mut cursors: Vec<Option<Cursor>> = vec![None];
    let mut pages: Vec<Vec<String>> = Vec::new();
    loop {
        let from = cursors.last().cloned().flatten();
        let page = qb.pull(ObjectKind::Contact, from.as_ref()).await?;
        pages.push(page.records.iter().map(|r| r.external_id.clone()).collect());
        cursors.push(page.next.clone());
        if page.done {
            break;
        }
        assert!(pages.len() < 10, "never ends");
    }
    let all: Vec<String> = pages.concat();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 27, "{all:?}");
    assert_eq!(unique.len(), 27, "no record twice");
    assert_eq!(pages.len(), 3);
    for k in 0..pages.len() {
        let (rest, _, _) = drain(&qb, ObjectKind::Contact, cursors[k].clone()).await?;
        let mut got: Vec<String> = pages[..k].concat();
        got.extend(rest);
        assert_eq!(got, all, "resume from cursor {k}");
        // Replay of a page: the same cursor gives the same page.
        let again = qb.pull(ObjectKind::Contact, cursors[k].as_ref()).await?;
        let ids: Vec<String> = again
            .records
            .iter()
            .map(|r| r.external_id.clone())
            .collect();
        assert_eq!(ids, pages[k], "replay of page {k}");
    }
    // The pass ends in CDC mode; an unchanged company gives nothing.
    let end = cursors.last().cloned().flatten().context("end cursor")?;
    assert_eq!(end.0["mode"], "cdc");
    let page = qb.pull(ObjectKind::Contact, Some(&end)).await?;
    assert!(page.records.is_empty(), "{:?}", page.records);
    // A change comes through CDC.
    e.sandbox
        .state
        .company()
        .write(
            "Customer",
            json!({"Id": "29", "SyncToken": "0", "sparse": true, "Notes": "vip"}),
        )
        .map_err(|f| anyhow::anyhow!("{f:?}"))?;
    let page = qb.pull(ObjectKind::Contact, page.next.as_ref()).await?;
    let ids: Vec<&str> = page
        .records
        .iter()
        .map(|r| r.external_id.as_str())
        .collect();
    assert_eq!(ids, vec!["29"]);
    assert_eq!(page.records[0].version.as_deref(), Some("1"));
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN a cursor older than the 30-day CDC window, or a saturated CDC answer WHEN pulled THEN the connector reads by query instead.
#[tokio::test]
async fn cdc_window_and_saturation_fall_back_to_query() -> Result<()> {
    let e = env(SandboxOptions {
        customers: 1005,
        ..SandboxOptions::default()
    })
    .await?;
    let qb = e.connector(|_| {})?;
    let old = Cursor(
        json!({"mode": "cdc", "since": (Utc::now() - chrono::Duration::days(40)).to_rfc3339()}),
    );
    let (ids, end, _) = drain(&qb, ObjectKind::Contact, Some(old)).await?;
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 1007);
    assert_eq!(end.0["mode"], "cdc");
    // Inside the window but with more than 1,000 changes: saturated.
    let recent = Cursor(
        json!({"mode": "cdc", "since": (Utc::now() - chrono::Duration::days(3)).to_rfc3339()}),
    );
    let page = qb.pull(ObjectKind::Contact, Some(&recent)).await?;
    assert!(page.records.is_empty() && !page.done);
    let next = page.next.context("fallback cursor")?;
    assert_eq!(next.0["mode"], "query", "{next:?}");
    let (ids, _, _) = drain(&qb, ObjectKind::Contact, Some(next)).await?;
    assert_eq!(ids.len(), 1007);
    e.sandbox.shutdown().await;
    Ok(())
}

fn invoices(e: &Env, entity: &str) -> Vec<Value> {
    e.sandbox.state.company().all(entity).cloned().collect()
}

// GIVEN the create's answer is lost after the server committed it WHEN the runtime retries (same requestid) and a later run pushes again THEN one document exists.
#[tokio::test]
async fn an_order_is_invoiced_exactly_once_across_a_lost_answer_and_a_crash() -> Result<()> {
    let e = env(SandboxOptions::default()).await?;
    let qb = e.connector(|c| c.invoice_when = synchub_quickbooks::InvoiceWhen::Closed)?;
    let change = create(
        "ord-1",
        "outbox-1",
        Record::Order(order("#1001", false, &["Services"], "USD")),
    );
    // The server commits the create, the answer is lost: the retry carries the same requestid.
    e.sandbox.state.lose_create_answers(1);
    let first = written(
        &qb.push(ObjectKind::Order, std::slice::from_ref(&change))
            .await?,
    )?;
    assert!(first.external_id.starts_with("Invoice:"), "{first:?}");
    assert_eq!(invoices(&e, "Invoice").len(), 1);
    // The process dies before the engine records the link; a new process
    // pushes the same order, with the same key and with a key it never sent.
    let qb2 = e.connector(|c| c.invoice_when = synchub_quickbooks::InvoiceWhen::Closed)?;
    let again = written(
        &qb2.push(ObjectKind::Order, std::slice::from_ref(&change))
            .await?,
    )?;
    let mut other_key = change.clone();
    other_key.idempotency_key = "outbox-1-regenerated".into();
    let third = written(&qb2.push(ObjectKind::Order, &[other_key]).await?)?;
    assert_eq!(again.external_id, first.external_id);
    assert_eq!(third.external_id, first.external_id);
    let all = invoices(&e, "Invoice");
    assert_eq!(all.len(), 1, "exactly one invoice: {all:?}");
    let inv = &all[0];
    assert_eq!(inv["PrivateNote"], "synchub order ord-1");
    // 2 x 19.99 + tax 4.00, exactly.
    assert_eq!(
        synchub_quickbooks::map::decimal(inv.get("TotalAmt")),
        Some(dec!(43.98))
    );
    assert_eq!(
        synchub_quickbooks::map::decimal(inv.get("Balance")),
        Some(dec!(43.98))
    );
    // A paid order becomes a SalesReceipt.
    let paid = create(
        "ord-2",
        "outbox-2",
        Record::Order(order("#1002", true, &["Services"], "USD")),
    );
    let w = written(&qb.push(ObjectKind::Order, &[paid]).await?)?;
    assert!(w.external_id.starts_with("SalesReceipt:"), "{w:?}");
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN a stale SyncToken WHEN a customer update is pushed THEN a conflict with the current version; retried on it THEN written sparsely.
#[tokio::test]
async fn stale_sync_token_is_a_conflict_then_a_retry_succeeds() -> Result<()> {
    let e = env(SandboxOptions::default()).await?;
    let qb = e.connector(|_| {})?;
    let base = Contact {
        full_name: Some("Amy's Bird Sanctuary".into()),
        title: None,
        ..Contact::default()
    };
    let mut now = base.clone();
    now.title = Some("Director".into());
    let mut change = Change {
        crm_id: "c-1".into(),
        op: ChangeOp::Update,
        external_id: Some("1".into()),
        base_version: Some("4".into()),
        record: Record::Contact(now),
        idempotency_key: "upd-1".into(),
        base: Some(Record::Contact(base)),
    };
    let out = qb
        .push(ObjectKind::Contact, std::slice::from_ref(&change))
        .await?;
    let Err(Refusal::Conflict {
        current: Some(current),
        ..
    }) = &out[0].result
    else {
        bail!("expected a conflict, got {:?}", out[0].result);
    };
    assert_eq!(current.version.as_deref(), Some("5"));
    change.base_version = current.version.clone();
    change.idempotency_key = "upd-2".into();
    let w = written(&qb.push(ObjectKind::Contact, &[change]).await?)?;
    assert_eq!(w.version.as_deref(), Some("6"));
    let c = e
        .sandbox
        .state
        .company()
        .get("Customer", "1")
        .cloned()
        .context("customer 1")?;
    assert_eq!(c["Title"], "Director");
    assert_eq!(
        c["PrimaryEmailAddr"]["Address"], "Birds@Intuit.com",
        "sparse: untouched fields kept"
    );
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN an unknown SKU WHEN items may not be created THEN a clear per-record refusal; WHEN allowed THEN the item is created and the order invoiced.
#[tokio::test]
async fn a_missing_item_is_refused_or_created_as_configured() -> Result<()> {
    let e = env(SandboxOptions::default()).await?;
    let strict = e.connector(|c| c.invoice_when = synchub_quickbooks::InvoiceWhen::Placed)?;
    let ok = create(
        "ord-ok",
        "k-ok",
        Record::Order(order("#1", false, &["Services"], "USD")),
    );
    let missing = create(
        "ord-9",
        "k-9",
        Record::Order(order("#9", false, &["TEA-OOLONG-100G"], "USD")),
    );
    let out = strict
        .push(ObjectKind::Order, &[missing.clone(), ok])
        .await?;
    let Err(Refusal::Rejected { reason }) = &out[0].result else {
        bail!("expected a refusal, got {:?}", out[0].result);
    };
    assert!(
        reason.contains("TEA-OOLONG-100G") && reason.contains("create_items"),
        "{reason}"
    );
    assert!(
        out[1].result.is_ok(),
        "the next order goes on: {:?}",
        out[1].result
    );
    assert_eq!(invoices(&e, "Invoice").len(), 1);
    let lenient = e.connector(|c| {
        c.invoice_when = synchub_quickbooks::InvoiceWhen::Placed;
        c.create_items = true;
        c.item_income_account = Some("79".into());
    })?;
    written(&lenient.push(ObjectKind::Order, &[missing]).await?)?;
    let items: Vec<Value> = invoices(&e, "Item");
    assert!(items
        .iter()
        .any(|i| i["Name"] == "TEA-OOLONG-100G" && i["IncomeAccountRef"]["value"] == "79"));
    assert_eq!(invoices(&e, "Invoice").len(), 2);
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN a company in USD only WHEN an order in TWD is pushed THEN refused naming the currency.
#[tokio::test]
async fn a_currency_the_ledger_lacks_is_refused() -> Result<()> {
    let e = env(SandboxOptions::default()).await?;
    let qb = e.connector(|c| c.invoice_when = synchub_quickbooks::InvoiceWhen::Placed)?;
    let out = qb
        .push(
            ObjectKind::Order,
            &[create(
                "ord-t",
                "k-t",
                Record::Order(order("#T", false, &["Services"], "TWD")),
            )],
        )
        .await?;
    let Err(Refusal::Rejected { reason }) = &out[0].result else {
        bail!("expected a refusal, got {:?}", out[0].result);
    };
    assert!(reason.contains("TWD"), "{reason}");
    assert!(invoices(&e, "Invoice").is_empty());
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN an invoiced order WHEN payments are recorded in QuickBooks THEN the invoice stream brings its balance and status back, tied to the CRM order.
#[tokio::test]
async fn payments_flow_back_to_the_crm_invoice() -> Result<()> {
    let e = env(SandboxOptions::default()).await?;
    let qb = e.connector(|c| c.invoice_when = synchub_quickbooks::InvoiceWhen::Placed)?;
    let (_, cursor, _) = drain(&qb, ObjectKind::Invoice, None).await?;
    let w = written(
        &qb.push(
            ObjectKind::Order,
            &[create(
                "ord-p",
                "k-p",
                Record::Order(order("#P", false, &["Services"], "USD")),
            )],
        )
        .await?,
    )?;
    let inv_id = w.external_id.trim_start_matches("Invoice:").to_string();
    let pay = |amount: &str| json!({"CustomerRef": {"value": "1"}, "TotalAmt": amount.parse::<f64>().unwrap_or(0.0), "Line": [{"Amount": amount.parse::<f64>().unwrap_or(0.0), "LinkedTxn": [{"TxnId": inv_id, "TxnType": "Invoice"}]}]});
    e.sandbox
        .state
        .company()
        .write("Payment", pay("20.00"))
        .map_err(|f| anyhow::anyhow!("{f:?}"))?;
    let page = qb.pull(ObjectKind::Invoice, Some(&cursor)).await?;
    let r = page
        .records
        .iter()
        .find(|r| r.external_id == w.external_id)
        .context("invoice in CDC")?;
    let Some(Record::Invoice(inv)) = &r.record else {
        bail!("not an invoice")
    };
    assert_eq!(inv.order_crm_id.as_deref(), Some("ord-p"));
    assert_eq!(inv.amount_due, Some(dec!(23.98)));
    assert_eq!(inv.status.as_deref(), Some("partially_paid"));
    e.sandbox
        .state
        .company()
        .write("Payment", pay("23.98"))
        .map_err(|f| anyhow::anyhow!("{f:?}"))?;
    let page = qb.pull(ObjectKind::Invoice, page.next.as_ref()).await?;
    let r = page
        .records
        .iter()
        .find(|r| r.external_id == w.external_id)
        .context("paid invoice")?;
    let Some(Record::Invoice(inv)) = &r.record else {
        bail!("not an invoice")
    };
    assert_eq!(inv.amount_due, Some(dec!(0)));
    assert_eq!(inv.status.as_deref(), Some("paid"));
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN a realm limit of 3 requests a second WHEN 6 calls are made THEN 429s are answered and waited out; every call succeeds.
#[tokio::test]
async fn throttled_answers_are_waited_out() -> Result<()> {
    let e = env(SandboxOptions {
        rate_limit: Some((3, Duration::from_secs(1))),
        ..SandboxOptions::default()
    })
    .await?;
    let qb = e.connector(|c| {
        c.throttle_wait_seconds = 1;
        // Our own quota allows more than the server: the server's 429 decides.
        c.quota = Some(synchub_http::QuotaConfig::per_second(100, 100));
    })?;
    for _ in 0..6 {
        qb.check().await?;
    }
    assert!(e.sandbox.state.throttled() >= 1, "the sandbox throttled");
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN an expired access token WHEN a call gets 401 THEN one refresh, the rotated refresh token saved, the call succeeds; no tokens THEN "run synchub auth".
#[tokio::test]
async fn a_401_refreshes_once_and_the_rotated_token_is_saved() -> Result<()> {
    let e = env(SandboxOptions::default()).await?;
    let qb = e.connector(|_| {})?;
    qb.check().await?;
    e.sandbox.state.expire_access_token();
    qb.check().await?;
    qb.check().await?;
    assert_eq!(qb.tokens().context("tokens")?.refresh_count(), 1);
    assert_eq!(e.sandbox.state.refreshes(), 1);
    let saved = e.vault.load(CONNECTION).await?.context("saved")?;
    use synchub_http::ExposeSecret;
    assert_eq!(
        saved
            .refresh_token
            .as_ref()
            .map(|r| r.expose_secret().to_string()),
        Some(e.sandbox.state.refresh_token())
    );
    // A new process reads the rotated token from the vault and goes on.
    let qb2 = e.connector(|_| {})?;
    qb2.check().await?;
    // Without stored tokens: an auth error naming the command.
    let mut deps = e.deps.clone();
    deps.connection = "other".into();
    let lonely = QuickBooks::new(e.sandbox.config(), &deps)?;
    let err = lonely.check().await.expect_err("no tokens");
    assert_eq!(err.class(), ErrorClass::Reauth);
    assert!(err.to_string().contains("synchub auth other"), "{err}");
    e.sandbox.shutdown().await;
    Ok(())
}

async fn deliver(
    hooks: &QuickBooksWebhooks,
    sig: Option<&str>,
    body: &[u8],
    guard: &MemoryReplayGuard,
) -> Result<synchub_core::WebhookAction, WebhookError> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(s) = sig {
        headers.insert(
            "intuit-signature",
            s.parse().map_err(|_| WebhookError::BadSignature)?,
        );
    }
    let BodyCheck::Signed(mut pending) = hooks.begin(&headers)? else {
        return Err(WebhookError::Malformed("unsigned".into()));
    };
    for chunk in body.chunks(7) {
        pending.update(chunk);
    }
    let verified = pending.finish()?;
    hooks.classify(&verified, &headers, body, guard).await
}

// GIVEN the fixture deliveries and the sandbox's own WHEN verified THEN classified; a replay is a duplicate; a forgery or a missing signature is refused.
#[tokio::test]
async fn webhooks_are_verified_classified_and_replays_dropped() -> Result<()> {
    let hooks = QuickBooksWebhooks::new(
        "9130350000000001".into(),
        SecretString::from(SANDBOX_VERIFIER.to_string()),
    );
    let guard = MemoryReplayGuard::new(Duration::from_secs(3600), 100);
    for (name, want) in [
        ("webhook_legacy.json", ObjectKind::Invoice),
        ("webhook_cloudevents.json", ObjectKind::Invoice),
    ] {
        let f = fixture(name);
        let body = f["raw_body"].as_str().context("body")?.as_bytes().to_vec();
        let sig = f["headers"]["intuit-signature"].as_str().context("sig")?;
        let action = deliver(&hooks, Some(sig), &body, &guard).await?;
        assert_eq!(
            action,
            synchub_core::WebhookAction::Sync {
                object: want,
                deleted: None
            },
            "{name}"
        );
        assert_eq!(
            deliver(&hooks, Some(sig), &body, &guard).await?,
            synchub_core::WebhookAction::Nothing("duplicate")
        );
        let mut forged = body.clone();
        forged[10] ^= 1;
        assert_eq!(
            deliver(&hooks, Some(sig), &forged, &guard).await,
            Err(WebhookError::BadSignature)
        );
    }
    assert_eq!(
        deliver(&hooks, None, b"{}", &guard).await,
        Err(WebhookError::MissingHeader("intuit-signature"))
    );
    // A customer-only delivery from the sandbox.
    let e = env(SandboxOptions::default()).await?;
    let qb = e.connector(|_| {})?;
    written(
        &qb.push(
            ObjectKind::Contact,
            &[create(
                "c-9",
                "k-c9",
                Record::Contact(Contact {
                    full_name: Some("陳大文".into()),
                    emails: vec!["tai.man@example.hk".into()],
                    ..Contact::default()
                }),
            )],
        )
        .await?,
    )?;
    let (sig, body) = e.sandbox.state.webhooks().pop().context("a delivery")?;
    let action = deliver(&hooks, Some(&sig), body.as_bytes(), &guard).await?;
    assert_eq!(
        action,
        synchub_core::WebhookAction::Sync {
            object: ObjectKind::Contact,
            deleted: None
        }
    );
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN a lost create answer for a customer WHEN retried THEN one customer; a duplicate name of another person is refused.
#[tokio::test]
async fn customer_creates_are_idempotent_and_duplicate_names_refused() -> Result<()> {
    let e = env(SandboxOptions::default()).await?;
    let qb = e.connector(|_| {})?;
    e.sandbox.state.lose_create_answers(1);
    let c = Contact {
        full_name: Some("林小美".into()),
        emails: vec!["mei@example.tw".into()],
        ..Contact::default()
    };
    let w = written(
        &qb.push(
            ObjectKind::Contact,
            &[create("c-1", "k-1", Record::Contact(c))],
        )
        .await?,
    )?;
    let named: Vec<Value> = invoices(&e, "Customer")
        .into_iter()
        .filter(|c| c["DisplayName"] == "林小美")
        .collect();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0]["Id"], w.external_id.as_str());
    let stranger = Contact {
        full_name: Some("林小美".into()),
        emails: vec!["other@example.tw".into()],
        ..Contact::default()
    };
    let out = qb
        .push(
            ObjectKind::Contact,
            &[create("c-2", "k-2", Record::Contact(stranger))],
        )
        .await?;
    let Err(Refusal::Rejected { reason }) = &out[0].result else {
        bail!("expected refusal: {:?}", out[0].result)
    };
    assert!(reason.contains("6240"), "{reason}");
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN settings in a pipeline WHEN built through the erased factory THEN unknown keys are named with their path.
#[tokio::test]
async fn the_factory_names_bad_keys() -> Result<()> {
    let f: Factory<QuickBooksFactory> = Factory::new();
    assert_eq!(f.kind(), "quickbooks");
    let deps = Deps::new(CONNECTION, ".");
    let err = f
        .build(
            "connections[1].config",
            &json!({"realm_id": "1", "client_id": "x", "page_sise": 5}),
            &deps,
        )
        .err()
        .context("unknown key refused")?;
    assert!(
        err.to_string().contains("connections[1].config") && err.to_string().contains("page_sise"),
        "{err}"
    );
    let built = f.build(
        "connections[1].config",
        &json!({"realm_id": "1", "client_id": "x", "webhook_verifier_token": "v"}),
        &deps,
    )?;
    assert_eq!(built.connector.kind(), "quickbooks");
    assert!(built.webhooks.is_some());
    // The `oauth` table `synchub auth` reads is accepted and supplies the client.
    let with_table = json!({"realm_id": "1", "oauth": {"provider": "quickbooks", "client_id": "abc",
        "client_secret": "s", "redirect_uri": "http://127.0.0.1:8749/callback"}});
    f.build("connections[1].config", &with_table, &deps)?;
    let neither = json!({"realm_id": "1"});
    let err = f
        .build("connections[1].config", &neither, &deps)
        .err()
        .context("no client")?;
    assert!(err.to_string().contains("client_id"), "{err}");
    Ok(())
}

// GIVEN 3 invoices and 2 sales receipts WHEN the invoice stream is read in pages of 2 THEN both entities, each document once, then CDC.
#[tokio::test]
async fn the_invoice_stream_pages_across_invoices_and_receipts() -> Result<()> {
    let e = env(SandboxOptions::default()).await?;
    let qb = e.connector(|c| {
        c.invoice_when = synchub_quickbooks::InvoiceWhen::Placed;
        c.page_size = 2;
    })?;
    for i in 0..5 {
        let paid = i >= 3;
        let o = order(&format!("#{i}"), paid, &["Services"], "USD");
        written(
            &qb.push(
                ObjectKind::Order,
                &[create(
                    &format!("ord-{i}"),
                    &format!("k-{i}"),
                    Record::Order(o),
                )],
            )
            .await?,
        )?;
    }
    let (ids, end, pages) = drain(&qb, ObjectKind::Invoice, None).await?;
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 5, "{ids:?}");
    assert_eq!(ids.len(), 5, "no document twice: {ids:?}");
    assert_eq!(
        ids.iter()
            .filter(|i| i.starts_with("SalesReceipt:"))
            .count(),
        2
    );
    assert!(pages >= 4, "{pages} pages");
    assert_eq!(end.0["mode"], "cdc");
    e.sandbox.shutdown().await;
    Ok(())
}

// GIVEN a linked customer WHEN the CRM deletes it THEN it is made inactive (customers cannot be deleted) and reads back as a deletion.
#[tokio::test]
async fn a_deleted_contact_is_inactivated_and_reads_back_deleted() -> Result<()> {
    let e = env(SandboxOptions::default()).await?;
    let qb = e.connector(|_| {})?;
    let (_, cursor, _) = drain(&qb, ObjectKind::Contact, None).await?;
    let del = Change {
        crm_id: "c-29".into(),
        op: ChangeOp::Delete,
        external_id: Some("29".into()),
        base_version: Some("0".into()),
        record: Record::Contact(Contact::default()),
        idempotency_key: "del-29".into(),
        base: None,
    };
    let w = written(&qb.push(ObjectKind::Contact, &[del]).await?)?;
    assert_eq!(w.version.as_deref(), Some("1"));
    let c = e
        .sandbox
        .state
        .company()
        .get("Customer", "29")
        .cloned()
        .context("kept")?;
    assert_eq!(c["Active"], false);
    let page = qb.pull(ObjectKind::Contact, Some(&cursor)).await?;
    let r = page
        .records
        .iter()
        .find(|r| r.external_id == "29")
        .context("in CDC")?;
    assert!(r.deleted, "inactive = deleted");
    e.sandbox.shutdown().await;
    Ok(())
}
