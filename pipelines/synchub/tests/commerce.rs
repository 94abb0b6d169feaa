//! Issue 6, end to end: the Shopify and WooCommerce sandboxes run two-way
//! through the engine into the CRM, on SQLite and PostgreSQL.
//!
//! The same people shop in both (other spellings, other phone formats) and
//! must become one contact each holding both shops' orders; a CRM edit
//! reaches both shops; a shop edit reaches the CRM and the other shop; a
//! round with no changes sends no write request to either shop; a forced
//! throttle and a webhook burst (verified, repeats dropped by webhook id,
//! each delivery triggering an incremental sync) lose and double nothing;
//! messy records land as dead letters or as valid records, as appropriate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};
use synchub_core::merge::MergePolicy;
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions, RunReport};
use synchub_shopify::sandbox as shopify_sandbox;
use synchub_shopify::sandbox::{CustomerRow, FIRST_CUSTOMER_ID};
use synchub_shopify::ShopifyConnector;
use synchub_store::records::StoredRecord;
use synchub_store::Store;
use synchub_testkit::TestDb;
use synchub_woocommerce::sandbox as woo_sandbox;
use synchub_woocommerce::WooConnector;

const SHOPIFY: &str = "shopify";
const WOO: &str = "woo";
/// The WooCommerce sandbox's first customer id (`Tai Man Chan`).
const WOO_FIRST: u64 = 25;

struct Shops {
    shopify: shopify_sandbox::SandboxHandle,
    woo: woo_sandbox::SandboxHandle,
    shopify_conn: Arc<ShopifyConnector>,
    woo_conn: Arc<WooConnector>,
    engine: Engine,
    store: Store,
}

impl Shops {
    async fn start(store: Store) -> Shops {
        let shopify = shopify_sandbox::spawn(shopify_sandbox::SandboxOptions::default())
            .await
            .unwrap();
        let woo = woo_sandbox::spawn(woo_sandbox::SandboxOptions::default())
            .await
            .unwrap();
        let shopify_conn = Arc::new(ShopifyConnector::new(shopify.config()).unwrap());
        let woo_conn = Arc::new(WooConnector::new(woo.config()).unwrap());
        let conn = |name: &str, connector: Arc<dyn synchub_core::Connector>| Connection {
            name: name.into(),
            connector,
            direction: Direction::TwoWay,
            objects: vec![ObjectKind::Contact, ObjectKind::Order],
            region: Some("TW".into()),
        };
        let engine = Engine::new(
            store.clone(),
            "shops",
            vec![
                conn(SHOPIFY, shopify_conn.clone()),
                conn(WOO, woo_conn.clone()),
            ],
            MergePolicy::default(),
            BTreeMap::new(),
        );
        Shops {
            shopify,
            woo,
            shopify_conn,
            woo_conn,
            engine,
            store,
        }
    }

    /// Write requests each sandbox has served: (shopify, woocommerce).
    fn shop_writes(&self) -> (u64, u64) {
        (self.shopify.shop().writes, self.woo.store().writes)
    }

    async fn round(&self) -> RunReport {
        let r = self.engine.run(&RunOptions::default()).await.unwrap();
        assert!(r.errors.is_empty(), "{:?}\n{}", r.errors, r.to_table());
        r
    }

    /// A round that must change nothing and send nothing anywhere.
    async fn quiet_round(&self, what: &str) {
        let before = self.shop_writes();
        let r = self.round().await;
        assert_eq!(r.writes(), 0, "{what}: CRM writes\n{}", r.to_table());
        assert_eq!(
            self.shop_writes(),
            before,
            "{what}: write requests to the shops\n{}",
            r.to_table()
        );
    }

    async fn contacts(&self) -> Vec<StoredRecord> {
        self.store
            .records(ObjectKind::Contact, false)
            .await
            .unwrap()
    }

    /// The one live CRM contact with this email.
    async fn contact_by_email(&self, email: &str) -> StoredRecord {
        let mut hits: Vec<StoredRecord> = self
            .contacts()
            .await
            .into_iter()
            .filter(|r| contact(r).emails.iter().any(|e| e == email))
            .collect();
        assert_eq!(hits.len(), 1, "one contact with {email}: {hits:#?}");
        hits.remove(0)
    }

    /// Connection → external ids linked to a CRM record.
    async fn links(&self, crm_id: &str) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in self.store.links_of(crm_id).await.unwrap() {
            if !l.deleted {
                out.entry(l.connection).or_default().push(l.external_id);
            }
        }
        out
    }

    /// The CRM orders whose buyer is this contact, as `connection:external id`.
    async fn orders_of(&self, crm_id: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for o in self.store.records(ObjectKind::Order, false).await.unwrap() {
            let Record::Order(order) = &o.record else {
                panic!("not an order: {o:?}")
            };
            if order.customer.as_ref().and_then(|c| c.crm_id.as_deref()) == Some(crm_id) {
                for (conn, ids) in self.links(&o.id).await {
                    for id in ids {
                        out.insert(format!("{conn}:{id}"));
                    }
                }
            }
        }
        out
    }

    fn shopify_customer(&self, i: u64) -> CustomerRow {
        self.shopify
            .shop()
            .customers
            .get(FIRST_CUSTOMER_ID + i)
            .unwrap()
    }

    fn woo_customer(&self, id: u64) -> Value {
        self.woo.store().customers.get(&id).cloned().unwrap()
    }

    /// Delivers webhooks to the connectors as the daemon would: verify,
    /// drop repeats, and run an incremental sync of the stream each
    /// accepted delivery names. Returns (synced, duplicates).
    async fn deliver(&self, shopify: &[Delivery], woo: &[Delivery]) -> (u64, u64) {
        let (mut synced, mut duplicates) = (0, 0);
        let opts = RunOptions::default();
        for (is_shopify, d) in shopify
            .iter()
            .map(|d| (true, d))
            .chain(woo.iter().map(|d| (false, d)))
        {
            let headers = header_map(&d.headers);
            let object = if is_shopify {
                match self
                    .shopify_conn
                    .handle_webhook(&headers, &d.body)
                    .await
                    .unwrap()
                {
                    synchub_core::WebhookAction::Sync { object, .. } => Some(object),
                    synchub_core::WebhookAction::Nothing("duplicate") => None,
                    other => panic!("unexpected {other:?}"),
                }
            } else {
                match self
                    .woo_conn
                    .handle_webhook(&headers, &d.body)
                    .await
                    .unwrap()
                {
                    synchub_core::WebhookAction::Sync { object, .. } => Some(object),
                    synchub_core::WebhookAction::Nothing("duplicate") => None,
                    other => panic!("unexpected {other:?}"),
                }
            };
            let Some(object) = object else {
                duplicates += 1;
                continue;
            };
            synced += 1;
            let name = if is_shopify { SHOPIFY } else { WOO };
            let conn = self
                .engine
                .connections()
                .iter()
                .find(|c| c.name == name)
                .unwrap();
            let mut report = RunReport::default();
            self.engine
                .pull_stream(conn, object, &opts, &mut report)
                .await
                .unwrap();
        }
        (synced, duplicates)
    }
}

/// A webhook as a shop sent it.
#[derive(Clone)]
struct Delivery {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn header_map(pairs: &[(String, String)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn contact(r: &StoredRecord) -> &Contact {
    r.record.as_contact().unwrap()
}

async fn shops_two_way(backend: &str) {
    let db = TestDb::of(backend).await;
    let shops = Shops::start(db.store().await).await;
    // A customer an app created with only a note, and an order whose total
    // a plugin wrote with a decimal comma: nothing can make them usable.
    let bare_id = shops.shopify.add_unusable_customer();
    let bad_order = shops.woo.add_unusable_order();

    // GIVEN both sandboxes (20 customers and 10 orders each; the first
    // people shop in both under other spellings) WHEN the first round runs
    let first = shops.round().await;
    let t = first.total();
    let open = shops.store.conflicts(false).await.unwrap();
    assert!(open.is_empty(), "{open:#?}\n{}", first.to_table());

    // THEN each person in both shops is ONE contact linked to both...
    let chan = shops.contact_by_email("tai.man.chan@example.com.tw").await;
    let links = shops.links(&chan.id).await;
    assert_eq!(
        links.get(SHOPIFY),
        Some(&vec![format!("gid://shopify/Customer/{FIRST_CUSTOMER_ID}")])
    );
    assert_eq!(links.get(WOO), Some(&vec![WOO_FIRST.to_string()]));
    for email in [
        "meiling.lin@example.com.tw",
        "siuming.wong@example.hk",
        "zhang.wei@example.cn",
    ] {
        let c = shops.contact_by_email(email).await;
        let l = shops.links(&c.id).await;
        assert_eq!(
            (l.get(SHOPIFY).map(Vec::len), l.get(WOO).map(Vec::len)),
            (Some(1), Some(1)),
            "{email}: {l:?}"
        );
    }
    assert_eq!(
        t.merged,
        4,
        "four people shop in both\n{}",
        first.to_table()
    );
    // ...holding both shops' orders: Shopify #1001, Woo 727 and the guest
    // checkout 728 made with the same email in other case.
    assert_eq!(
        shops.orders_of(&chan.id).await,
        BTreeSet::from([
            format!("{SHOPIFY}:gid://shopify/Order/5001000000"),
            format!("{WOO}:727"),
            format!("{WOO}:728"),
        ])
    );
    // 陳大文 (Shopify) and Tai Man Chan (Woo): the phone formats agree once normalized.
    assert!(contact(&chan).phones.contains(&"+886932111222".to_string()));

    // Messy records. Unusable ones are dead letters, with a reason:
    let dead = shops.store.dead_letters(100).await.unwrap();
    let reasons: BTreeMap<String, String> = dead
        .iter()
        .map(|d| {
            (
                format!(
                    "{}:{}",
                    d.connection,
                    d.external_id.clone().unwrap_or_default()
                ),
                d.reason.clone(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:#?}");
    assert!(
        reasons[&format!("{SHOPIFY}:gid://shopify/Customer/{bare_id}")]
            .contains("no name, email or phone")
    );
    assert!(reasons[&format!("{WOO}:{bad_order}")].contains("12,50"));
    assert_eq!(t.dead_lettered, 2);
    // A customer without an email (黃志明) is a valid contact; WooCommerce
    // cannot hold him (email is mandatory there), which is reported, and no
    // request is sent for it.
    let huang = shops
        .contacts()
        .await
        .into_iter()
        .find(|r| contact(r).phones == ["+886922333444"])
        .expect("黃志明 is a contact");
    assert!(contact(&huang).emails.is_empty());
    assert_eq!(
        shops.links(&huang.id).await.keys().collect::<Vec<_>>(),
        [SHOPIFY]
    );
    assert_eq!(first.streams[&format!("{WOO}.contact")].push_failed, 1);
    // An invalid phone (Amy Ho's `n/a`) keeps the contact valid; the CRM
    // keeps the text for a person to fix, and Shopify gets her without it.
    let amy = shops.contact_by_email("amy.ho@example.com").await;
    assert_eq!(contact(&amy).phones, ["n/a"]);
    let amy_gid = shops.links(&amy.id).await[SHOPIFY][0].clone();
    let amy_row = shops
        .shopify
        .shop()
        .customers
        .get(gid_number(&amy_gid))
        .unwrap();
    assert_eq!(
        (amy_row.email.as_deref(), amy_row.phone),
        (Some("amy.ho@example.com"), None)
    );
    // 0-line orders (Shopify #1004 voided, Woo 729 cancelled) are valid orders.
    for (conn, ext) in [(SHOPIFY, "gid://shopify/Order/5001000003"), (WOO, "729")] {
        let order = order_by_link(&shops, conn, ext).await;
        assert!(order.lines.is_empty() && order.total.is_zero(), "{order:?}");
    }

    // Every customer exists in both shops afterwards (except the one
    // without email, which WooCommerce cannot hold).
    let contacts = shops.contacts().await.len();
    assert_eq!(contacts, 20 + 20 - 4, "{}", first.to_table());
    assert_eq!(shops.shopify.shop().customers.len(), 20 + 1 + 15 + 1);
    assert_eq!(shops.woo.store().customers.len(), 20 + 15);

    // WHEN a second round runs with no changes (the echoes of our own
    // writes come back) THEN nothing is written anywhere.
    shops.quiet_round("second round").await;

    // WHEN a person edits 陳大文's mobile in the CRM
    let mut record = chan.record.clone();
    if let Record::Contact(c) = &mut record {
        c.phones = vec!["+886911222333".into()];
    }
    synchub_engine::local::apply_local_edit(&shops.store, &chan.id, record)
        .await
        .unwrap();
    let r = shops.round().await;
    // THEN both shops get it, once each.
    assert_eq!(
        (
            r.streams[&format!("{SHOPIFY}.contact")].pushed,
            r.streams[&format!("{WOO}.contact")].pushed
        ),
        (1, 1),
        "{}",
        r.to_table()
    );
    assert_eq!(
        shops.shopify_customer(0).phone.as_deref(),
        Some("+886911222333")
    );
    assert_eq!(
        shops.woo_customer(WOO_FIRST)["billing"]["phone"],
        "+886911222333"
    );
    shops.quiet_round("after the CRM edit").await;

    // WHEN 林美玲 corrects her given name and adds her company in WooCommerce
    // (a phone edit is the subject of the engine-bug test below)
    let woo_meiling = WOO_FIRST + 1;
    assert!(shops.woo.edit_customer(woo_meiling, |c| {
        c["first_name"] = json!("美齡");
        c["billing"]["first_name"] = json!("美齡");
        c["billing"]["company"] = json!("林記茶行");
    }));
    let r = shops.round().await;
    // THEN the CRM has both...
    let meiling = shops.contact_by_email("meiling.lin@example.com.tw").await;
    let c = contact(&meiling);
    assert_eq!(
        (
            c.given_name.as_deref(),
            c.full_name.as_deref(),
            c.company.as_deref()
        ),
        (Some("美齡"), Some("林美齡"), Some("林記茶行"))
    );
    // ...and Shopify gets the name (it keeps a company on addresses, which
    // synchub does not write), in one write. WooCommerce is written back
    // once too, without losing its edit: the CRM also holds Shopify's
    // address phone, which WooCommerce cannot store, so the merged record
    // differs from WooCommerce's (a redundant write; see the report).
    assert_eq!(
        shops.shopify_customer(1).first_name.as_deref(),
        Some("美齡")
    );
    let woo_row = shops.woo_customer(woo_meiling);
    assert_eq!(
        (&woo_row["first_name"], &woo_row["billing"]["company"]),
        (&json!("美齡"), &json!("林記茶行"))
    );
    assert_eq!(
        (
            r.streams[&format!("{SHOPIFY}.contact")].pushed,
            r.streams[&format!("{WOO}.contact")].pushed
        ),
        (1, 1),
        "{}",
        r.to_table()
    );
    shops.quiet_round("after the shop edit").await;

    // WHEN Shopify throttles (empty cost bucket) while a shop edit waits
    shops.shopify.set_throttle(Some((1000.0, 2000.0)));
    shops.shopify.set_available(0.0);
    assert!(shops.shopify.edit_customer(FIRST_CUSTOMER_ID + 2, |c| {
        c.tags = vec!["throttled".into()];
    }));
    let r = shops.round().await;
    // THEN the connector waits it out: the edit arrives once.
    assert!(
        shops.shopify.shop().throttled > 0,
        "a THROTTLED answer was served"
    );
    assert_eq!(
        r.streams[&format!("{SHOPIFY}.contact")].updated,
        1,
        "{}",
        r.to_table()
    );
    let wong = shops.contact_by_email("siuming.wong@example.hk").await;
    assert_eq!(contact(&wong).tags, ["throttled"]);
    shops.quiet_round("after the throttled round").await;

    // WHEN a burst of edits in both shops arrives as webhooks, each sent
    // twice (retries carry the same webhook id), plus a forged one
    shops.shopify.take_webhooks();
    shops.woo.take_webhooks();
    let count_before = shops.contacts().await.len();
    for i in 8..16 {
        assert!(shops.shopify.edit_customer(FIRST_CUSTOMER_ID + i, |c| {
            c.note = Some(format!("burst {i}"));
        }));
    }
    for id in WOO_FIRST + 5..WOO_FIRST + 10 {
        assert!(shops.woo.edit_customer(id, |c| {
            c["billing"]["company"] = json!(format!("Burst Co {id}"));
        }));
    }
    let shopify_hooks: Vec<Delivery> = shops
        .shopify
        .take_webhooks()
        .into_iter()
        .map(|d| Delivery {
            headers: d.headers,
            body: d.body,
        })
        .collect();
    let woo_hooks: Vec<Delivery> = shops
        .woo
        .take_webhooks()
        .into_iter()
        .map(|d| Delivery {
            headers: d.headers,
            body: d.body,
        })
        .collect();
    assert_eq!((shopify_hooks.len(), woo_hooks.len()), (8, 5));
    let mut forged = shopify_hooks[0].clone();
    forged.body = br#"{"id": 1, "note": "forged"}"#.to_vec();
    assert!(shops
        .shopify_conn
        .handle_webhook(&header_map(&forged.headers), &forged.body)
        .await
        .is_err());
    let twice = |hooks: &[Delivery]| -> Vec<Delivery> {
        hooks.iter().flat_map(|d| [d.clone(), d.clone()]).collect()
    };
    let (synced, duplicates) = shops
        .deliver(&twice(&shopify_hooks), &twice(&woo_hooks))
        .await;
    // THEN each delivery syncs once, the repeats are ignored...
    assert_eq!((synced, duplicates), (13, 13));
    let r = shops.round().await;
    // ...the pushes go out once per edited record, nothing is created...
    assert_eq!(shops.contacts().await.len(), count_before);
    assert_eq!(
        (
            r.streams[&format!("{SHOPIFY}.contact")].pushed,
            r.streams[&format!("{WOO}.contact")].pushed
        ),
        (5, 8),
        "{}",
        r.to_table()
    );
    // ...and every edit is in the CRM and in the other shop.
    for i in 8..16 {
        let row = shops.shopify_customer(i);
        let email = row.email.clone().unwrap();
        let c = shops.contact_by_email(&email).await;
        assert_eq!(
            contact(&c).custom.get("note"),
            Some(&json!(format!("burst {i}")))
        );
    }
    for id in WOO_FIRST + 5..WOO_FIRST + 10 {
        let email = shops.woo_customer(id)["email"]
            .as_str()
            .unwrap()
            .to_string();
        let c = shops.contact_by_email(&email).await;
        assert_eq!(contact(&c).company, Some(format!("Burst Co {id}")));
        let gid = shops.links(&c.id).await[SHOPIFY][0].clone();
        let row = shops
            .shopify
            .shop()
            .customers
            .get(gid_number(&gid))
            .unwrap();
        assert_eq!(
            row.address.and_then(|a| a.company),
            None,
            "Shopify's company lives on an address, which synchub does not write"
        );
    }
    shops.quiet_round("after the webhook burst").await;
}

/// ENGINE BUG (core/synchub-core/src/merge.rs, `merge_sets`): a list field
/// is merged as a set whose order "follows local, then remote additions", so
/// when a shop REPLACES a contact's only phone, the new number is appended
/// after the CRM's other phones instead of taking the old one's place. Here
/// 林美玲 has her mobile and (from Shopify's default address) a landline; she
/// changes the mobile in WooCommerce; the CRM ends up with [landline, new
/// mobile] and Shopify, which holds one phone (the first), is sent the
/// landline; worse, the merged record differs from WooCommerce's, so the
/// engine pushes it back and WooCommerce's fresh number is overwritten with
/// the landline too. Expected: [new mobile, landline], WooCommerce keeps its
/// number, Shopify gets the mobile.
async fn shop_phone_edit_stays_the_primary_phone(backend: &str) {
    let db = TestDb::of(backend).await;
    let shops = Shops::start(db.store().await).await;
    shops.round().await;
    shops.quiet_round("second round").await;
    assert!(shops.woo.edit_customer(WOO_FIRST + 1, |c| {
        c["billing"]["phone"] = json!("0911-555-666");
    }));
    shops.round().await;
    let woo_phone = shops.woo_customer(WOO_FIRST + 1)["billing"]["phone"].clone();
    assert!(
        woo_phone == "0911-555-666" || woo_phone == "+886911555666",
        "WooCommerce keeps the number it was just given, not the landline: {woo_phone}"
    );
    let meiling = shops.contact_by_email("meiling.lin@example.com.tw").await;
    assert_eq!(
        contact(&meiling).phones,
        ["+886911555666", "+886227208889"],
        "the replaced phone keeps its place"
    );
    assert_eq!(
        shops.shopify_customer(1).phone.as_deref(),
        Some("+886911555666"),
        "Shopify is sent the new mobile, not the landline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_bug_shop_phone_edit_stays_the_primary_phone_sqlite() {
    shop_phone_edit_stays_the_primary_phone("sqlite").await;
}

fn gid_number(gid: &str) -> u64 {
    gid.rsplit('/').next().unwrap().parse().unwrap()
}

async fn order_by_link(shops: &Shops, conn: &str, ext: &str) -> synchub_core::model::Order {
    for o in shops.store.records(ObjectKind::Order, false).await.unwrap() {
        if shops
            .links(&o.id)
            .await
            .get(conn)
            .is_some_and(|ids| ids.iter().any(|i| i == ext))
        {
            let Record::Order(order) = o.record else {
                panic!("not an order")
            };
            return order;
        }
    }
    panic!("no CRM order linked to {conn}:{ext}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shops_two_way_sqlite() {
    shops_two_way("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shops_two_way_postgres() {
    shops_two_way("postgres").await;
}
