//! `synchub check` through the binary, for what an operator meets first
//! with a real shop: a wrong token, a wrong shop name and a token missing a
//! scope each end within 5 s with one line naming the cause; then
//! `--register-webhooks` subscribes the shops to the topics the daemon
//! syncs, and a second run registers nothing new.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use synchub_shopify::sandbox::{self as shop, SandboxOptions, SANDBOX_TOKEN};
use synchub_woocommerce::sandbox::{self as woo, SANDBOX_KEY, SANDBOX_SECRET};

fn shopify(name: &str, direction: &str, objects: &str, shop: &str, base: Option<&str>) -> String {
    shopify_with_token(name, direction, objects, shop, base, SANDBOX_TOKEN)
}

fn shopify_with_token(
    name: &str,
    direction: &str,
    objects: &str,
    shop: &str,
    base: Option<&str>,
    token: &str,
) -> String {
    let base = base.map_or(String::new(), |u| format!("base_url = \"{u}\"\n"));
    format!(
        "[[connections]]\nname = \"{name}\"\nkind = \"shopify\"\ndirection = \"{direction}\"\n\
         objects = {objects}\n\n[connections.config]\nshop = \"{shop}\"\n{base}\
         access_token = \"{token}\"\nwebhook_secrets = [\"shpss_check\"]\n\n"
    )
}

fn woocommerce(name: &str, base_url: &str, objects: &str) -> String {
    format!(
        "[[connections]]\nname = \"{name}\"\nkind = \"woocommerce\"\ndirection = \"pull\"\n\
         objects = {objects}\n\n[connections.config]\nbase_url = \"{base_url}\"\n\
         consumer_key = \"{SANDBOX_KEY}\"\nconsumer_secret = \"{SANDBOX_SECRET}\"\n\
         webhook_secret = \"wc_check_secret\"\n\n"
    )
}

fn write(dir: &Path, name: &str, connections: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(
        &file,
        format!("version = 1\nname = \"{name}\"\n\n{connections}"),
    )
    .unwrap();
    file
}

/// Runs `synchub check ARGS… FILE`; exit code, stdout+stderr, wall time.
async fn check(dir: &Path, file: &Path, args: &[&str]) -> (i32, String, Duration) {
    let db = format!("sqlite://{}", dir.join("none.db").display());
    let file = file.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
            .args(["--database-url", &db, "check", "--timeout-seconds", "4"])
            .args(&args)
            .arg(&file)
            .env("NO_COLOR", "1")
            .env_remove("SYNCHUB_PUBLIC_URL")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text, started.elapsed())
    })
    .await
    .unwrap()
}

/// The line of connection `name` (table output).
fn line_of(out: &str, name: &str) -> String {
    out.lines()
        .find(|l| l.contains(&format!(" {name} (")))
        .unwrap_or_else(|| panic!("no line for {name}:\n{out}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_token_wrong_shop_and_missing_scope_each_fail_in_one_line_under_5_seconds() {
    // GIVEN a shop whose token was granted read scopes only
    let sandbox = shop::spawn(SandboxOptions::default()).await.unwrap();
    sandbox.set_scopes(&["read_customers", "read_orders"]);
    let base = sandbox.base_url.clone();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "wrong_token",
            shopify_with_token(
                "wrong_token",
                "pull",
                "[\"contact\"]",
                "example-tw",
                Some(&base),
                "shpat_wrong",
            ),
            "auth",
        ),
        (
            "wrong_shop",
            shopify(
                "wrong_shop",
                "pull",
                "[\"contact\"]",
                "exampel-tw-no-such-shop",
                None,
            ),
            "does not exist",
        ),
        (
            "missing_scope",
            shopify(
                "missing_scope",
                "two-way",
                "[\"contact\"]",
                "example-tw",
                Some(&base),
            ),
            "lacks the `write_customers` scope",
        ),
    ];
    let mut timings = Vec::new();
    for (name, entry, expected) in cases {
        let file = write(dir.path(), &format!("{name}.toml"), &entry);
        // WHEN each is checked on its own
        let (code, out, took) = check(dir.path(), &file, &[]).await;
        // THEN it fails with exit 1, in one FAILED line saying why, in < 5 s
        assert_eq!(code, 1, "{name}:\n{out}");
        let line = line_of(&out, name);
        assert!(line.contains("FAILED"), "{name}: {line}");
        assert!(
            line.to_lowercase().contains(expected),
            "{name}: expected `{expected}` in: {line}\n{out}"
        );
        assert_eq!(
            out.lines().filter(|l| l.contains("FAILED")).count(),
            1,
            "{name}: one failed line:\n{out}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{name} took {took:?}:\n{out}"
        );
        assert!(!out.contains("shpat_wrong"), "{out}");
        timings.push(format!("{name}={} ms", took.as_millis()));
    }
    // the figures for the report
    eprintln!("check timings: {}", timings.join(", "));
    // AND the fix names the scope and where to grant it
    let file = dir.path().join("missing_scope.toml");
    let (_, out, _) = check(dir.path(), &file, &[]).await;
    assert!(
        out.contains("fix: in the Shopify admin") && out.contains("tick `write_customers`"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_are_compared_with_what_each_connection_needs() {
    // GIVEN a token with read_customers only, used by three connections
    let sandbox = shop::spawn(SandboxOptions::default()).await.unwrap();
    sandbox.set_scopes(&["read_customers"]);
    let base = sandbox.base_url.clone();
    let dir = tempfile::tempdir().unwrap();
    let entries = shopify("contacts_in", "pull", "[\"contact\"]", "s", Some(&base))
        + &shopify("orders_in", "pull", "[\"order\"]", "s", Some(&base))
        + &shopify("everything", "two-way", "[]", "s", Some(&base));
    let file = write(dir.path(), "scopes.toml", &entries);
    // WHEN checked
    let (code, out, _) = check(dir.path(), &file, &[]).await;
    // THEN the pull of contacts passes, the others name what they lack
    assert_eq!(code, 1, "{out}");
    assert!(line_of(&out, "contacts_in").contains("ok "), "{out}");
    let orders = line_of(&out, "orders_in");
    assert!(orders.contains("lacks the `read_orders` scope"), "{orders}");
    let all = line_of(&out, "everything");
    assert!(
        all.contains("`write_customers` and `read_orders` scopes"),
        "{all}"
    );
    // AND with every scope granted, all pass (read_all_orders noted when absent)
    sandbox.set_scopes(&["write_customers", "read_orders"]);
    let (code, out, _) = check(dir.path(), &file, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("note: without `read_all_orders`"), "{out}");
    // AND the GraphQL side refuses what the token may not do, as Shopify does
    sandbox.set_scopes(&["read_customers"]);
    let mut paged = sandbox.config();
    paged.bulk_backfill = false;
    let conn = synchub_shopify::ShopifyConnector::new(paged).unwrap();
    let err = synchub_core::Connector::pull(&conn, synchub_core::ObjectKind::Order, None)
        .await
        .expect_err("orders without read_orders");
    assert!(err.to_string().contains("read_orders"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn register_webhooks_subscribes_the_synced_topics_once() {
    // GIVEN a shop and a store, and a store whose key is read-only
    let sandbox = shop::spawn(SandboxOptions::default()).await.unwrap();
    let store = woo::spawn(woo::SandboxOptions::default()).await.unwrap();
    let readonly = woo::spawn(woo::SandboxOptions::default()).await.unwrap();
    readonly.set_key_permissions("read");
    let dir = tempfile::tempdir().unwrap();
    let entries = shopify("shop_tw", "two-way", "[]", "s", Some(&sandbox.base_url))
        + &woocommerce("woo_tw", &store.base_url, "[\"contact\"]");
    let file = write(dir.path(), "shops.toml", &entries);
    let public = "https://sync.example.com.tw";
    let args = ["--register-webhooks", "--public-url", public];

    // WHEN only the public address is given
    let (code, out, _) = check(dir.path(), &file, &["--public-url", public]).await;
    // THEN the missing topics are named and nothing is created
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("webhooks shop_tw: 9 topic(s) not registered at"),
        "{out}"
    );
    assert!(
        out.contains("webhooks woo_tw: 3 topic(s) not registered"),
        "{out}"
    );
    assert!(sandbox.subscriptions().is_empty() && store.webhooks().is_empty());

    // WHEN registered
    let (code, out, _) = check(dir.path(), &file, &args).await;

    // THEN every topic the daemon syncs is subscribed at /webhooks/<name>
    assert_eq!(code, 0, "{out}");
    let mut shop_topics: Vec<String> = sandbox
        .subscriptions()
        .into_iter()
        .map(|(topic, address)| {
            assert_eq!(address, format!("{public}/webhooks/shop_tw"));
            topic
        })
        .collect();
    shop_topics.sort();
    assert_eq!(
        shop_topics,
        [
            "customers/create",
            "customers/delete",
            "customers/update",
            "orders/cancelled",
            "orders/create",
            "orders/delete",
            "orders/fulfilled",
            "orders/paid",
            "orders/updated",
        ],
        "{out}"
    );
    let mut woo_hooks = store.webhooks();
    woo_hooks.sort();
    assert_eq!(
        woo_hooks,
        [
            (
                "customer.created".to_string(),
                format!("{public}/webhooks/woo_tw")
            ),
            (
                "customer.deleted".to_string(),
                format!("{public}/webhooks/woo_tw")
            ),
            (
                "customer.updated".to_string(),
                format!("{public}/webhooks/woo_tw")
            ),
        ],
        "contacts only, as the connection syncs:\n{out}"
    );
    assert!(
        out.contains("webhooks shop_tw: registered customers/create"),
        "{out}"
    );
    assert!(!out.contains("wc_check_secret"), "{out}");

    // WHEN run again
    let (code, out, _) = check(dir.path(), &file, &args).await;
    // THEN nothing new is registered
    assert_eq!(code, 0, "{out}");
    assert_eq!(sandbox.subscriptions().len(), 9, "{out}");
    assert_eq!(store.webhooks().len(), 3, "{out}");
    assert!(
        out.contains("webhooks shop_tw: nothing new; 9 topic(s) already registered"),
        "{out}"
    );
    assert!(
        out.contains("webhooks woo_tw: nothing new; 3 topic(s) already registered"),
        "{out}"
    );

    let (_, out, _) = check(dir.path(), &file, &["--public-url", public]).await;
    assert!(
        out.contains("webhooks shop_tw: all 9 topic(s) registered"),
        "{out}"
    );

    // AND a read-only WooCommerce key is named as the cause, exit 1
    let file = write(
        dir.path(),
        "readonly.toml",
        &woocommerce("woo_ro", &readonly.base_url, "[]"),
    );
    let (code, out, _) = check(dir.path(), &file, &args).await;
    assert_eq!(code, 1, "{out}");
    assert!(line_of(&out, "woo_ro").contains("ok "), "{out}");
    assert!(
        out.contains("FAILED  woo_ro webhooks: the consumer key is read-only"),
        "{out}"
    );
    assert!(readonly.webhooks().is_empty());

    // AND the flag without a public address is refused by the command line
    let (code, out, _) = check(dir.path(), &file, &["--register-webhooks"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--public-url"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_missing_variable_is_named_at_once_and_nothing_is_contacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "vars.toml",
        &shopify_with_token(
            "shop",
            "pull",
            "[]",
            "${SYNCHUB_TEST_UNSET_SHOP_20}",
            None,
            "${SYNCHUB_TEST_UNSET_TOKEN_20}",
        ),
    );
    let (code, out, took) = check(dir.path(), &file, &[]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("SYNCHUB_TEST_UNSET_SHOP_20") && out.contains("SYNCHUB_TEST_UNSET_TOKEN_20"),
        "both missing variables in one report:\n{out}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// `synchub run --once FILE`: exit code, stdout+stderr, wall time.
async fn run_once(dir: &Path, file: &Path) -> (i32, String, Duration) {
    let db = format!("sqlite://{}", dir.join("run.db").display());
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
            .args(["--database-url", &db, "run", "--once"])
            .arg(&file)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text, started.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_fails_fast_on_a_wrong_shop_name_and_a_refused_token() {
    // GIVEN pipelines a first run cannot serve: a shop that does not exist,
    // a token the shop refuses
    let sandbox = shop::spawn(SandboxOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "wrong_shop",
            shopify(
                "wrong_shop",
                "pull",
                "[\"contact\"]",
                "exampel-tw-no-such-shop",
                None,
            ),
            "does not exist",
        ),
        (
            "wrong_token",
            shopify_with_token(
                "wrong_token",
                "pull",
                "[\"contact\"]",
                "example-tw",
                Some(&sandbox.base_url),
                "shpat_wrong",
            ),
            "auth",
        ),
    ];
    for (name, entry, expected) in cases {
        let file = write(dir.path(), &format!("{name}.toml"), &entry);
        // WHEN run once
        let (code, out, took) = run_once(dir.path(), &file).await;
        // THEN it stops within seconds, exit 1, the error naming the cause,
        // without pages of retries
        assert_eq!(code, 1, "{name}:\n{out}");
        assert!(
            took < Duration::from_secs(10),
            "{name} took {took:?}:\n{out}"
        );
        let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error:")).collect();
        assert!(
            errors.iter().any(|l| l.to_lowercase().contains(expected)),
            "{name}: expected `{expected}` in an error line:\n{out}"
        );
        assert!(
            out.lines().count() < 30,
            "{name}: {} lines:\n{out}",
            out.lines().count()
        );
        assert!(!out.contains("shpat_wrong"), "{out}");
        eprintln!("run {name}: {} ms", took.as_millis());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_version_past_its_end_of_support_is_named() {
    // GIVEN a shop that serves 2024-10 and later, and a pipeline on 2024-01
    let sandbox = shop::spawn(SandboxOptions::default()).await.unwrap();
    sandbox.set_oldest_version("2024-10");
    let dir = tempfile::tempdir().unwrap();
    let old = shopify(
        "old_version",
        "pull",
        "[\"contact\"]",
        "s",
        Some(&sandbox.base_url),
    )
    .replace(
        "shop = \"s\"\n",
        "shop = \"s\"\napi_version = \"2024-01\"\n",
    );
    let current = shopify(
        "default_version",
        "pull",
        "[\"contact\"]",
        "s",
        Some(&sandbox.base_url),
    );
    let file = write(dir.path(), "versions.toml", &(old + &current));
    // WHEN checked
    let (code, out, _) = check(dir.path(), &file, &[]).await;
    // THEN the old one fails naming both versions; the default passes
    assert_eq!(code, 1, "{out}");
    let line = line_of(&out, "old_version");
    assert!(
        line.contains("`api_version` 2024-01 is no longer served: Shopify answered as 2024-10"),
        "{line}"
    );
    assert!(line_of(&out, "default_version").contains("ok "), "{out}");
}
