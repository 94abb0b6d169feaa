//! synchub-http knows no provider by name: every provider's endpoints,
//! limits, headers and signature schemes belong to that connector's crate.
//! This reads every file under `src/` and `Cargo.toml` as they are on disk
//! and names the file and line of any provider name it finds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Matched case-insensitively anywhere in a line (comments included).
const PROVIDER_NAMES: &[&str] = &[
    "shopify",
    "woocommerce",
    "woo_",
    "xero",
    "quickbooks",
    "intuit",
    "qbo",
    "gmail",
    "google",
    "outlook",
    "msgraph",
    "microsoft",
    "odoo",
    "tryton",
    "erpnext",
    "frappe",
];

/// `file:line: name` for every provider name in `text`.
fn findings(file: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lower = line.to_lowercase();
        for name in PROVIDER_NAMES {
            if lower.contains(name) {
                out.push(format!("{file}:{}: `{name}` in: {}", i + 1, line.trim()));
            }
        }
    }
    out
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn the_runtime_names_no_provider() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    files_under(&root.join("src"), &mut files);
    files.push(root.join("Cargo.toml"));
    // The walk really found the sources (a wrong path would pass vacuously).
    assert!(
        files.iter().any(|f| f.ends_with("src/lib.rs")) && files.len() > 10,
        "{files:?}"
    );
    let mut found = Vec::new();
    for file in &files {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        found.extend(findings(&shown, &text));
    }
    assert!(
        found.is_empty(),
        "synchub-http names providers; move these into the connector's crate:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_provider_name_is_reported_with_its_file_and_line() {
    let text =
        "//! generic\nconst H: &str = \"X-Shopify-Hmac-Sha256\";\nfn ok() {}\n// Microsoft Graph\n";
    let got = findings("src/example.rs", text);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("src/example.rs:2: `shopify`"), "{got:?}");
    assert!(
        got[1].starts_with("src/example.rs:4: `microsoft`"),
        "{got:?}"
    );
    assert!(findings("src/clean.rs", "pub fn verify() {}\n").is_empty());
}
