//! `synchub demo`: run the bundled example pipelines against built-in
//! sample sources into the configured database and explain what happened.
//!
//! Part 1 pulls a legacy contacts CSV export. Part 2 starts the Shopify and
//! WooCommerce sandboxes in-process and runs `shops-two-way.toml` against
//! them both ways: the same people in both shops become one contact each,
//! orders attach to them, a shop edit reaches the CRM and the other shop,
//! and a round without changes writes nothing anywhere.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{json, Value};
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Engine, RunReport};
use synchub_shopify::sandbox as shopify_sandbox;
use synchub_store::Store;
use synchub_woocommerce::sandbox as woo_sandbox;

use crate::commands::{build_engine, open_store, run_engine};
use crate::pipeline;

const CSV_PIPELINE: &str = include_str!("../../examples/csv-contacts.toml");
const CSV_DATA: &str = include_str!("../../examples/data/contacts.csv");
const SHOPS_PIPELINE: &str = include_str!("../../examples/shops-two-way.toml");

/// Connection names in `shops-two-way.toml`.
const SHOPIFY: &str = "shopify_tw";
const WOO: &str = "woo_tw";

/// The database the demo uses when none was chosen: a fresh one of its own.
const DEMO_DIR: &str = "synchub-demo";

pub async fn run(db: &str) -> anyhow::Result<ExitCode> {
    // Unless a database was chosen (--database-url or SYNCHUB_DATABASE_URL),
    // the demo starts from a fresh store of its own, and keeps its files
    // beside it so the dead letters it shows point at files that exist.
    let chosen = db != crate::cli::DEFAULT_DATABASE_URL;
    let (db, dir, _temp) = if chosen {
        let temp =
            tempfile::tempdir().context("cannot create a temporary folder for the demo files")?;
        (db.to_string(), temp.path().to_path_buf(), Some(temp))
    } else {
        let dir = std::path::PathBuf::from(DEMO_DIR);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear the demo folder {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the demo folder {}", dir.display()))?;
        (format!("sqlite://{DEMO_DIR}/crm.db"), dir, None)
    };
    println!(
        "synchub demo: two example pipelines run into the CRM at {}.",
        synchub_store::redact_url(&db)
    );
    if chosen {
        println!("(the database you chose; the demo adds its records to what it holds)\n");
    } else {
        println!("(a fresh store of the demo's own, recreated on every demo run; pass");
        println!("--database-url to run it into another)\n");
    }
    let store = open_store(&db).await?;
    csv_part(&store, &dir).await?;
    shops_part(&store, &dir).await?;
    let open = store.conflicts(false).await?.len();
    let shown = if chosen {
        String::new()
    } else {
        format!(" --database-url sqlite://{DEMO_DIR}/crm.db")
    };
    println!("\nWhat the counts mean: `new` contacts were created; `recognised` (merged) rows");
    println!("matched a contact already in the CRM by email, or phone and name, and were folded");
    println!("into it — record linkage, not a later merge of two CRM contacts, which is what");
    println!("`synchub merges list` shows; `conflicted` fields changed differently in two places");
    println!("and wait for a person; dead letters are records kept aside with their payload.");
    println!("\nThe store now holds {open} open conflict(s). See what the demo did:");
    println!("  synchub{shown} status");
    println!("  synchub{shown} runs list");
    println!("  synchub{shown} conflicts list");
    println!("  synchub{shown} merges list");
    println!("or in a browser, the ops console (docs/console.md) after adding a user:");
    println!("  synchub{shown} users add admin --role admin");
    println!("  synchub{shown} console --listen 127.0.0.1:8750");
    println!("Then check and run your own pipeline: `synchub check pipelines/examples/csv-contacts.toml`,");
    println!("`synchub run pipelines/examples/csv-contacts.toml --once --report json`;");
    println!("`pipelines/examples/shops-two-way.toml` runs against real shops once its");
    println!("environment variables (shop, tokens, secrets) are set (docs/connectors/).");
    Ok(ExitCode::SUCCESS)
}

async fn csv_part(store: &Store, dir: &std::path::Path) -> anyhow::Result<()> {
    println!("PART 1 — a legacy contacts export (Hong Kong, Taiwan, mainland China and more)");
    println!("is pulled into the CRM (pipelines/examples/csv-contacts.toml).\n");
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::write(dir.join("csv-contacts.toml"), CSV_PIPELINE)?;
    std::fs::write(dir.join("data/contacts.csv"), CSV_DATA)?;
    let loaded = pipeline::load(&dir.join("csv-contacts.toml"))?;
    let engine = build_engine(store.clone(), &loaded)?;

    println!("1. First run: every row is read, normalized (E.164 phones, NFKC names, lower-case");
    println!("   emails), matched against the CRM by email and phone+name, and written.");
    let first = run_engine(&engine, false, false).await?;
    print!("{}", indent(&first.to_table()));
    let t = first.total();
    println!(
        "   {} rows read: {} new contacts, {} rows recognised as someone already in the CRM,",
        t.read, t.created, t.merged
    );
    println!(
        "   {} unchanged, {} rows kept as dead letters with their payload and reason.\n",
        t.unchanged, t.dead_lettered
    );

    println!(
        "2. Second run: the stored cursor says the file was read to its end, so nothing is read."
    );
    let second = run_engine(&engine, false, false).await?;
    print!("{}", indent(&second.to_table()));
    println!();

    println!("3. Full refresh: everything is read again and nothing changes (already in step).");
    let third = run_engine(&engine, true, false).await?;
    print!("{}", indent(&third.to_table()));
    println!("   writes: {}\n", third.writes());

    println!("4. A merged contact — two rows of the export, one person:");
    for rec in store.records(ObjectKind::Contact, false).await? {
        let links = store.links_of(&rec.id).await?;
        if links.len() > 1 && links.iter().all(|l| l.connection == "legacy_export") {
            let ids: Vec<String> = links
                .iter()
                .map(|l| format!("{}:{}", l.connection, l.external_id))
                .collect();
            println!("   {} ← {}", rec.id, ids.join(" + "));
            println!("   {}", serde_json::to_string(&rec.record)?);
            break;
        }
    }
    println!("\n5. Dead letters (nothing is dropped silently):");
    for d in store.dead_letters(100).await? {
        if d.connection == "legacy_export" {
            println!(
                "   {}: {}",
                d.location.or(d.external_id).unwrap_or_default(),
                d.reason
            );
        }
    }
    Ok(())
}

/// The two sandboxes and what they have been asked to write.
struct Shops {
    shopify: shopify_sandbox::SandboxHandle,
    woo: woo_sandbox::SandboxHandle,
}

impl Shops {
    fn writes(&self) -> (u64, u64) {
        (self.shopify.shop().writes, self.woo.store().writes)
    }
}

/// Runs a round and prints its table, the CRM writes and the shop write requests.
async fn round(engine: &Engine, shops: &Shops, full_refresh: bool) -> anyhow::Result<RunReport> {
    let before = shops.writes();
    let report = run_engine(engine, full_refresh, false).await?;
    let after = shops.writes();
    print!("{}", indent(&report.to_table()));
    println!(
        "   CRM records written: {}; write requests sent: Shopify {}, WooCommerce {}",
        report.total().created + report.total().updated + report.total().deleted,
        after.0 - before.0,
        after.1 - before.1
    );
    Ok(report)
}

async fn shops_part(store: &Store, dir: &std::path::Path) -> anyhow::Result<()> {
    println!("\nPART 2 — a Shopify shop and a WooCommerce store, kept in step both ways through");
    println!("the CRM (pipelines/examples/shops-two-way.toml). Both are built-in sandboxes that");
    println!("speak the real APIs (Admin GraphQL with cost throttling; REST v3 with batches),");
    println!("started in this process. Several customers shop in both under other spellings");
    println!("and phone formats (陳大文 / +886 932-111-222 in one, Tai Man Chan / 0932111222 in");
    println!("the other), and some records are messy.\n");
    let shopify = shopify_sandbox::spawn(shopify_sandbox::SandboxOptions::default())
        .await
        .context("cannot start the Shopify sandbox on 127.0.0.1")?;
    let woo = woo_sandbox::spawn(woo_sandbox::SandboxOptions::default())
        .await
        .context("cannot start the WooCommerce sandbox on 127.0.0.1")?;
    shopify.add_unusable_customer();
    woo.add_unusable_order();
    let shops = Shops { shopify, woo };

    let text = SHOPS_PIPELINE
        .replace("${SHOPIFY_SHOP}", "synchub-sandbox")
        .replace("${SHOPIFY_ACCESS_TOKEN}", shopify_sandbox::SANDBOX_TOKEN)
        .replace(
            "${SHOPIFY_WEBHOOK_SECRET}",
            shopify_sandbox::SANDBOX_WEBHOOK_SECRET,
        )
        .replace("${WOO_URL}", &shops.woo.base_url)
        .replace("${WOO_KEY}", woo_sandbox::SANDBOX_KEY)
        .replace("${WOO_SECRET}", woo_sandbox::SANDBOX_SECRET)
        .replace("${WOO_WEBHOOK_SECRET}", woo_sandbox::SANDBOX_WEBHOOK_SECRET);
    let path = dir.join("shops-two-way.toml");
    std::fs::write(&path, text)?;
    let mut loaded = pipeline::load(&path)?;
    for c in &mut loaded.config.connections {
        if c.kind == "shopify" {
            c.config["base_url"] = json!(shops.shopify.base_url);
        }
    }
    let engine = build_engine(store.clone(), &loaded)?;

    // The customers as the shops hold them before synchub runs.
    let originals = seeded_customers(&shops);
    let earlier = store
        .link_counts()
        .await?
        .iter()
        .any(|(conn, _, n)| (conn == SHOPIFY || conn == WOO) && *n > 0);
    if earlier {
        println!("   (This database already holds an earlier demo's shop data, and the sandboxes");
        println!("   start fresh each time, so most records below show as unchanged. Use a new");
        println!("   store — run `synchub demo` without --database-url — for the full story.)\n");
    }

    println!("6. First two-way run: customers, then orders, are read from both shops, matched,");
    println!("   merged and written; then each shop receives the customers it lacks.");
    let first = round(&engine, &shops, earlier).await?;
    let s = |name: &str| first.streams.get(name).cloned().unwrap_or_default();
    let (sc, wc) = (s("shopify_tw.contact"), s("woo_tw.contact"));
    let (so, wo) = (s("shopify_tw.order"), s("woo_tw.order"));
    println!(
        "   Customers read: {} from Shopify, {} from WooCommerce; {} new contacts, {} recognised",
        sc.read,
        wc.read,
        sc.created + wc.created,
        sc.merged + wc.merged
    );
    println!(
        "   as someone already in the CRM. Orders read: {} + {}, each attached to its buyer.",
        so.read, wo.read
    );
    println!(
        "   Written back: {} customers to Shopify, {} to WooCommerce ({} refused).\n",
        sc.pushed,
        wc.pushed,
        sc.push_failed + wc.push_failed
    );

    println!("7. The same people in both shops, now one CRM contact each, with all their orders:");
    let orders = orders_by_buyer(store).await?;
    for rec in store.records(ObjectKind::Contact, false).await? {
        let links = store.links_of(&rec.id).await?;
        let as_seeded = |conn: &str| {
            links
                .iter()
                .filter(|l| l.connection == conn)
                .find_map(|l| originals.get(&(conn.to_string(), l.external_id.clone())))
        };
        if let (Some(a), Some(b)) = (as_seeded(SHOPIFY), as_seeded(WOO)) {
            println!("   Shopify {a}");
            println!("   = WooCommerce {b}");
            let list = orders.get(&rec.id).cloned().unwrap_or_default();
            println!(
                "      → CRM {} {} ({} orders: {})",
                rec.id,
                rec.record
                    .as_contact()
                    .and_then(|c| c.display_name())
                    .unwrap_or_default(),
                list.len(),
                list.join(", ")
            );
        }
    }

    println!("\n8. Messy records:");
    for d in store.dead_letters(100).await? {
        if d.connection == SHOPIFY || d.connection == WOO {
            println!(
                "   dead letter {}.{} {}: {}",
                d.connection,
                d.object,
                d.external_id.unwrap_or_default(),
                d.reason
            );
        }
    }
    for rec in store.records(ObjectKind::Contact, false).await? {
        let Some(c) = rec.record.as_contact() else {
            continue;
        };
        let from_shops = store
            .links_of(&rec.id)
            .await?
            .iter()
            .any(|l| l.connection == SHOPIFY || l.connection == WOO);
        if !from_shops {
            continue;
        }
        if c.emails.is_empty() && !c.phones.is_empty() {
            println!(
                "   valid contact without email: {} {} (kept; WooCommerce requires an email,",
                c.display_name().unwrap_or_default(),
                c.phones.join(" ")
            );
            println!("      so it stays in Shopify and the CRM, and the refusal is reported)");
        } else if c.phones.iter().any(|p| !p.starts_with('+')) {
            println!(
                "   valid contact with a phone synchub could not normalize: {} `{}` (kept as written",
                c.display_name().unwrap_or_default(),
                c.phones.join(" ")
            );
            println!("      for a person to fix; not sent to Shopify, which accepts E.164 only)");
        }
    }
    for rec in store.records(ObjectKind::Order, false).await? {
        if let Record::Order(o) = &rec.record {
            if o.lines.is_empty() {
                println!(
                    "   valid order with no lines: {} {} {} {} (a voided or cancelled order)",
                    o.number.as_deref().unwrap_or("?"),
                    o.status.as_deref().unwrap_or("?"),
                    o.total,
                    o.currency
                );
            }
        }
    }

    println!("\n9. Second run, nothing changed in either shop: the echoes of our own writes are");
    println!("   recognised by their version, so nothing is written anywhere.");
    round(&engine, &shops, false).await?;

    println!("\n10. Tai Man Chan (陳大文 in Shopify) changes his phone in the WooCommerce store");
    println!("    to 0911-555-666:");
    let chan_woo = woo_sandbox::data::FIRST_CUSTOMER_ID;
    shops.woo.edit_customer(chan_woo, |c| {
        c["billing"]["phone"] = json!("0911-555-666");
    });
    round(&engine, &shops, false).await?;
    let shopify_phone = shops
        .shopify
        .shop()
        .customers
        .get(shopify_sandbox::FIRST_CUSTOMER_ID)
        .and_then(|c| c.phone);
    let crm_phone = crm_phones_of(store, "tai.man.chan@example.com.tw").await?;
    println!(
        "   CRM contact now has {}; the Shopify customer's phone is {}.",
        crm_phone,
        shopify_phone.as_deref().unwrap_or("(none)")
    );

    println!("\n11. Another run without changes: nothing is written anywhere.");
    round(&engine, &shops, false).await?;
    shops.shopify.shutdown().await;
    shops.woo.shutdown().await;
    Ok(())
}

/// `(connection, external id)` → `name <email> phone` of every seeded
/// customer of both sandboxes, as the shops hold them at the start.
fn seeded_customers(shops: &Shops) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let seed = shopify_sandbox::SandboxOptions::default().customers;
    {
        let shop = shops.shopify.shop();
        for i in 0..seed {
            if let Some(c) = shop.customers.get(shopify_sandbox::FIRST_CUSTOMER_ID + i) {
                let name = synchub_shopify::map::full_name(
                    c.first_name.as_deref(),
                    c.last_name.as_deref(),
                );
                out.insert(
                    (
                        SHOPIFY.to_string(),
                        format!("gid://shopify/Customer/{}", c.id),
                    ),
                    format!(
                        "{} <{}> {}",
                        name.unwrap_or_default(),
                        c.email.unwrap_or_default(),
                        c.phone.unwrap_or_default()
                    ),
                );
            }
        }
    }
    for (id, c) in &shops.woo.store().customers {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        out.insert(
            (WOO.to_string(), id.to_string()),
            format!(
                "{} {} <{}> {}",
                text(&c["first_name"]),
                text(&c["last_name"]),
                text(&c["email"]),
                text(&c["billing"]["phone"])
            ),
        );
    }
    out
}

/// CRM order numbers by buyer contact id.
async fn orders_by_buyer(store: &Store) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rec in store.records(ObjectKind::Order, false).await? {
        let Record::Order(o) = &rec.record else {
            continue;
        };
        if let Some(buyer) = o.customer.as_ref().and_then(|c| c.crm_id.clone()) {
            let source = store
                .links_of(&rec.id)
                .await?
                .first()
                .map(|l| l.connection.clone())
                .unwrap_or_default();
            out.entry(buyer).or_default().push(format!(
                "{source} {} {} {}",
                o.number.as_deref().unwrap_or("?"),
                o.total,
                o.currency
            ));
        }
    }
    Ok(out)
}

async fn crm_phones_of(store: &Store, email: &str) -> anyhow::Result<String> {
    for rec in store.records(ObjectKind::Contact, false).await? {
        if let Some(c) = rec.record.as_contact() {
            if c.emails.iter().any(|e| e == email) {
                return Ok(c.phones.join(", "));
            }
        }
    }
    Ok("(no contact)".into())
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("   {l}\n")).collect()
}
