//! Set-up shared by the connectors' conformance harnesses and their other
//! sandbox tests, written once: the dependencies of a connector under test
//! (its own quota registry, and for OAuth connectors a token vault holding
//! the sandbox's tokens), the contact every harness pushes, a webhook
//! delivery signed by the connector's declared [`HmacSignature`], and the
//! final assertion of a suite run.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use synchub_core::{Connector, Contact, Cursor, ObjectKind, Record, RemoteRecord};
use synchub_http::webhook::HmacSignature;
use synchub_http::{
    Deps, MemoryTokenStore, QuotaRegistry, SecretString, TokenCipher, TokenSet, TokenVault,
};

use crate::conformance::{Check, Outcome, Report};

/// The key a forged delivery is signed with: not any connection's secret.
pub const FORGED_KEY: &str = "someone-elses-webhook-secret";

/// Dependencies for `connection` with a quota registry of its own, so that
/// a harness's throttling and budgets touch no other test in the process.
pub fn isolated_deps(connection: &str) -> Deps {
    let mut deps = Deps::new(connection, ".");
    deps.quotas = Box::leak(Box::new(QuotaRegistry::new()));
    deps
}

/// A token cipher under a key made at test time (32 random bytes, hex).
pub fn fresh_cipher() -> Result<TokenCipher, String> {
    let key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    TokenCipher::from_key_material(&SecretString::from(key)).map_err(|e| e.to_string())
}

/// [`isolated_deps`] with an in-memory token vault that holds `access` and
/// `refresh` for `connection`, valid for an hour: an OAuth connector that
/// was authorised against its sandbox.
pub async fn oauth_deps(
    connection: &str,
    access: &str,
    refresh: &str,
    scopes: &[&str],
) -> Result<Deps, String> {
    let vault = TokenVault::new(Arc::new(MemoryTokenStore::default()), fresh_cipher()?);
    vault
        .save(
            connection,
            &TokenSet {
                access_token: SecretString::from(access.to_string()),
                refresh_token: Some(SecretString::from(refresh.to_string())),
                expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                extra: BTreeMap::new(),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(isolated_deps(connection).with_tokens(vault))
}

/// Pulls `object` from `from` until the connector says it is done (at most
/// 10,000 pages): every record read, the last cursor and the number of
/// pages. A failed page or a rejected item fails the test.
pub async fn pull_all<C: Connector + ?Sized>(
    conn: &C,
    object: ObjectKind,
    from: Option<&Cursor>,
) -> (Vec<RemoteRecord>, Cursor, usize) {
    let mut cursor = from.cloned();
    let mut records = Vec::new();
    let mut pages = 0;
    for _ in 0..10_000 {
        let page = conn
            .pull(object, cursor.as_ref())
            .await
            .unwrap_or_else(|e| panic!("page {}: {e}", pages + 1));
        assert!(page.rejected.is_empty(), "{:?}", page.rejected);
        pages += 1;
        records.extend(page.records);
        if let Some(next) = page.next {
            cursor = Some(next);
        }
        if page.done {
            break;
        }
    }
    let cursor = cursor.unwrap_or_else(|| panic!("no cursor after {pages} pages"));
    (records, cursor, pages)
}

/// The pages of one read, each with the cursor it was read from.
pub type Pages = Vec<(Option<Cursor>, Vec<RemoteRecord>)>;

/// Reads `object` from `from` to the end (at most 10,000 pages): every
/// page's records with the cursor it was read from, and the last cursor.
/// Every page must store a cursor; a rejected item fails the test.
pub async fn drain<C: Connector + ?Sized>(
    conn: &C,
    object: ObjectKind,
    from: Option<Cursor>,
) -> (Pages, Cursor) {
    let mut cursor = from;
    let mut pages = Vec::new();
    for _ in 0..10_000 {
        let page = conn
            .pull(object, cursor.as_ref())
            .await
            .unwrap_or_else(|e| panic!("page {}: {e}", pages.len() + 1));
        assert!(page.rejected.is_empty(), "{:?}", page.rejected);
        let next = page.next.clone().expect("every page stores a cursor");
        pages.push((cursor.take(), page.records));
        cursor = Some(next);
        if page.done {
            return (pages, cursor.expect("cursor"));
        }
    }
    panic!("no end after 10,000 pages");
}

/// A name no earlier run used: `tag`, the process id and the time in
/// nanoseconds (for records made on a shared real server).
pub fn unique(tag: &str) -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// A read resumed from a stored cursor after a first page: together they
/// hold `total` records, none read twice and none skipped.
pub fn assert_resumed_exactly(first: &[RemoteRecord], resumed: &[RemoteRecord], total: usize) {
    let ids = |rs: &[RemoteRecord]| -> std::collections::BTreeSet<String> {
        rs.iter().map(|r| r.external_id.clone()).collect()
    };
    let (before, after) = (ids(first), ids(resumed));
    assert_eq!(resumed.len(), after.len(), "repeats: {resumed:?}");
    assert!(before.is_disjoint(&after), "re-read: {before:?} {after:?}");
    assert_eq!(
        before.len() + after.len(),
        total,
        "skipped: {before:?} {after:?}"
    );
}

/// The `i`-th contact a harness creates through the connector.
pub fn new_contact(i: usize) -> Record {
    Record::Contact(Contact {
        given_name: Some(format!("New{i}")),
        family_name: Some("Conformance".into()),
        emails: vec![format!("new{i}@conformance.example")],
        ..Contact::default()
    })
}

/// A delivery of `body` as the provider sends it: signed under `key` by
/// `scheme` (under [`FORGED_KEY`] when `forged`), `delivery_id` in the
/// scheme's id header when it has one, plus the `extra` headers.
pub fn signed_delivery(
    scheme: &HmacSignature,
    key: &str,
    forged: bool,
    delivery_id: &str,
    body: Vec<u8>,
    extra: &[(&'static str, &str)],
) -> Result<(HeaderMap, Vec<u8>), String> {
    let key = if forged { FORGED_KEY } else { key };
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| -> Result<(), String> {
        let value = HeaderValue::from_str(value).map_err(|e| format!("{name}: {e}"))?;
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name}: {e}"))?;
        headers.insert(name, value);
        Ok(())
    };
    put(scheme.header, &scheme.sign(key.as_bytes(), &body))?;
    if let Some(id) = scheme.id_header {
        put(id, delivery_id)?;
    }
    for (name, value) in extra {
        put(name, value)?;
    }
    Ok((headers, body))
}

/// A suite run passed every check but `not_applicable`, each of which was
/// declared not applicable (with its reason) rather than skipped silently.
pub fn assert_conformant(report: &Report, not_applicable: &[Check]) {
    report.assert_passed();
    for check in not_applicable {
        assert!(
            matches!(report.outcome(*check), Some(Outcome::NotApplicable(_))),
            "{check:?} should be declared not applicable\n{report}"
        );
    }
    assert_eq!(
        report.passed(),
        Check::ALL.len() - not_applicable.len(),
        "{report}"
    );
}
