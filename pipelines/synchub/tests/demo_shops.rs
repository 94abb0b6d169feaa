//! `synchub demo` with the shop sandboxes: it runs the CSV example and the
//! two-shop pipeline into the database it is given and explains the result;
//! the quiet rounds it shows write nothing anywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use synchub_core::ObjectKind;
use synchub_testkit::TestDb;

/// The line after `heading` that starts with `prefix`.
fn line_after<'a>(out: &'a str, heading: &str, prefix: &str) -> &'a str {
    let at = out
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}` in:\n{out}"));
    out[at..]
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` after `{heading}` in:\n{out}"))
}

async fn demo_runs_both_shops_two_way(backend: &str) {
    let db = TestDb::of(backend).await;
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .arg("demo")
        .env("SYNCHUB_DATABASE_URL", &db.url)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run synchub demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The summary names the streams, the cross-shop matches and the edit.
    for needle in [
        "PART 1",
        "PART 2",
        "shopify_tw.contact",
        "woo_tw.contact",
        "shopify_tw.order",
        "woo_tw.order",
        "Shopify 陳大文",
        "WooCommerce Tai Man Chan",
        "dead letter shopify_tw.contact",
        "dead letter woo_tw.order",
        "valid order with no lines",
        "+886911555666",
    ] {
        assert!(
            stdout.contains(needle),
            "`{needle}` missing from:\n{stdout}"
        );
    }
    // The rounds without changes write nothing, in the CRM or the shops.
    for heading in ["9. Second run", "11. Another run"] {
        assert_eq!(
            line_after(&stdout, heading, "CRM records written"),
            "CRM records written: 0; write requests sent: Shopify 0, WooCommerce 0",
            "{stdout}"
        );
    }
    // The shop edit reached the CRM and the other shop.
    let edit = line_after(&stdout, "10. Tai Man Chan", "CRM contact now has");
    assert!(
        edit.contains("+886911555666")
            && edit.ends_with("the Shopify customer's phone is +886911555666."),
        "{edit}"
    );

    // The CRM holds the people of both shops, linked to both.
    let store = db.store().await;
    let mut both = 0;
    for rec in store.records(ObjectKind::Contact, false).await.unwrap() {
        let links = store.links_of(&rec.id).await.unwrap();
        if links.iter().any(|l| l.connection == "shopify_tw")
            && links.iter().any(|l| l.connection == "woo_tw")
        {
            both += 1;
        }
    }
    assert!(
        both >= 30,
        "contacts in both shops after the two-way run: {both}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_both_shops_two_way_sqlite() {
    demo_runs_both_shops_two_way("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_both_shops_two_way_postgres() {
    demo_runs_both_shops_two_way("postgres").await;
}

/// Without a chosen database the demo uses a fresh store of its own beside
/// its files: run twice in one folder, it tells the same story both times,
/// and the files its dead letters name exist after it ends.
#[test]
fn demo_without_a_database_uses_a_fresh_store_of_its_own_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
            .arg("demo")
            .current_dir(dir.path())
            .env_remove("SYNCHUB_DATABASE_URL")
            .output()
            .expect("run synchub demo");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = run();
    let second = run();
    let shape = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| {
                l.split_whitespace()
                    .filter(|w| w.parse::<f64>().is_err())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    assert_eq!(
        shape(&first),
        shape(&second),
        "the second demo told another story"
    );
    assert!(!first.contains("already holds an earlier demo"), "{first}");
    assert!(dir.path().join("synchub-demo/crm.db").exists());
    assert!(
        first.contains("synchub --database-url sqlite://synchub-demo/crm.db status"),
        "{first}"
    );
    // Every file a dead letter names is still there.
    for line in first.lines().filter(|l| l.contains("synchub-demo/")) {
        for word in line
            .split_whitespace()
            .filter(|w| w.contains("synchub-demo/") && !w.contains("sqlite:"))
        {
            let path = word
                .trim_matches(|c: char| c == '(' || c == ')' || c == ',' || c == ':' || c == '`');
            let path = path.split(':').next().unwrap_or(path);
            assert!(
                dir.path().join(path).exists() || std::path::Path::new(path).exists(),
                "{path} named in: {line}"
            );
        }
    }
}
