//! `synchub check` through the binary, against the shop sandboxes: a good
//! connection, a wrong token, a shop name that does not exist, a port
//! nothing listens on, and a file with a bad key — each one clear line,
//! all within seconds, with the exit code saying which.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use synchub_shopify::sandbox::{self as shop, SandboxOptions, SANDBOX_TOKEN};
use synchub_woocommerce::sandbox::{self as woo, SANDBOX_KEY, SANDBOX_SECRET};

fn shopify(name: &str, shop: &str, base_url: Option<&str>, token: &str) -> String {
    let base = base_url.map_or(String::new(), |u| format!("base_url = \"{u}\"\n"));
    format!(
        "[[connections]]\nname = \"{name}\"\nkind = \"shopify\"\ndirection = \"pull\"\n\n[connections.config]\nshop = \"{shop}\"\n{base}access_token = \"{token}\"\n\n"
    )
}

fn woocommerce(name: &str, base_url: &str, secret: &str) -> String {
    format!(
        "[[connections]]\nname = \"{name}\"\nkind = \"woocommerce\"\ndirection = \"pull\"\n\n[connections.config]\nbase_url = \"{base_url}\"\nconsumer_key = \"{SANDBOX_KEY}\"\nconsumer_secret = \"{secret}\"\n\n"
    )
}

fn check(dir: &std::path::Path, target: &std::path::Path) -> (i32, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("none.db").display()))
        .args(["check", "--timeout-seconds", "4"])
        .arg(target)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_each_broken_connection_in_one_line_within_seconds() {
    let shop = shop::spawn(SandboxOptions::default()).await.unwrap();
    let store = woo::spawn(woo::SandboxOptions::default()).await.unwrap();
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shops.toml");
    let mut text = String::from("version = 1\nname = \"shops\"\n\n");
    text += &shopify(
        "good_shop",
        "example-tw",
        Some(&shop.base_url),
        SANDBOX_TOKEN,
    );
    text += &shopify(
        "bad_token",
        "example-tw",
        Some(&shop.base_url),
        "shpat_wrong",
    );
    text += &shopify(
        "no_such_shop",
        "exampel-tw-no-such-shop",
        None,
        SANDBOX_TOKEN,
    );
    text += &woocommerce("good_woo", &store.base_url, SANDBOX_SECRET);
    text += &woocommerce("bad_secret", &store.base_url, "cs_wrong");
    text += &woocommerce("down_woo", &closed_url, SANDBOX_SECRET);
    std::fs::write(&file, text).unwrap();
    let db = dir.path().to_path_buf();

    let (code, out, took) = tokio::task::spawn_blocking(move || check(&db, &file))
        .await
        .unwrap();

    assert_eq!(code, 1, "a failed connection exits 1:\n{out}");
    assert!(took < Duration::from_secs(8), "took {took:?}:\n{out}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(&format!(" {name} (")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{out}"))
            .to_string()
    };
    assert!(line("good_shop").contains("ok "), "{out}");
    assert!(line("good_woo").contains("ok "), "{out}");
    let bad = line("bad_token");
    assert!(
        bad.contains("FAILED") && bad.to_lowercase().contains("auth"),
        "{bad}"
    );
    let missing = line("no_such_shop");
    assert!(
        missing.contains("FAILED") && missing.contains("does not exist"),
        "{missing}"
    );
    assert!(line("bad_secret").contains("FAILED"), "{out}");
    assert!(line("down_woo").contains("FAILED"), "{out}");
    assert!(out.contains("6 connection(s): 2 ok, 4 failed"), "{out}");
    // No secret is printed.
    assert!(
        !out.contains("shpat_wrong") && !out.contains("cs_wrong"),
        "{out}"
    );
    // The store was not created just to check.
    assert!(!dir.path().join("none.db").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_an_invalid_file_with_exit_2_and_contacts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "version = 1\nname = \"x\"\n\n[[connections]]\nname = \"s\"\nkind = \"shopfy\"\ndirection = \"pull\"\n[connections.config]\nshop = \"a\"\naccess_token = \"${NOT_SET_ANYWHERE_1}\"\n",
    )
    .unwrap();
    let db = dir.path().to_path_buf();
    let (code, out, _) =
        tokio::task::spawn_blocking(move || check(&db, &dir.path().join("bad.toml")))
            .await
            .unwrap();
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("INVALID"), "{out}");
    assert!(
        out.contains("NOT_SET_ANYWHERE_1") || out.contains("shopify"),
        "{out}"
    );
}
