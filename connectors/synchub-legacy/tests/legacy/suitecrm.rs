//! SuiteCRM 7 on a real MariaDB: the schema and generated data from
//! `tests/data/suitecrm/` (copies of shared/real-peers/legacy-crm) are loaded
//! into a database of their own; the counts come from the generator's truth file.
//!
//! Needs MariaDB on 127.0.0.1:3306 (root, no password; override the server
//! with `SYNCHUB_TEST_MYSQL_URL=mysql://USER:PASS@HOST:PORT`) and `python3`.
//! Fails, never skips, without them.

use std::collections::HashSet;

use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use synchub_core::ObjectKind;
use synchub_legacy::{build, LegacyOptions};
use tokio::sync::OnceCell;

use crate::{company, contact, data, drain, opts, order};

const DB: &str = "synchub_legacy_suitecrm";

/// The URL of the test server (no database).
pub fn admin_url() -> String {
    std::env::var("SYNCHUB_TEST_MYSQL_URL")
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// The URL of database `db` on the test server.
pub fn db_url(db: &str) -> String {
    format!("{}/{db}", admin_url())
}

/// Connects to the admin database or fails with what to do.
pub async fn admin() -> sqlx::MySqlConnection {
    sqlx::MySqlConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "MariaDB is required for this test at {} ({e}); start it (deploy/test.sh does) \
             or set SYNCHUB_TEST_MYSQL_URL",
                synchub_legacy::redact_url(&admin_url())
            )
        })
}

static TRUTH: OnceCell<Value> = OnceCell::const_new();

/// Creates the database once per test binary; returns the generator's truth file.
async fn load() -> &'static Value {
    TRUTH
        .get_or_init(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let (sql, truth) = (dir.path().join("data.sql"), dir.path().join("truth.json"));
            let status = std::process::Command::new("python3")
                .arg(data("suitecrm/gen_suitecrm_data.py"))
                .args([
                    "--out".as_ref(),
                    sql.as_os_str(),
                    "--truth".as_ref(),
                    truth.as_os_str(),
                ])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("python3 is required to generate the SuiteCRM data");
            assert!(status.success(), "gen_suitecrm_data.py failed");
            let mut conn = admin().await;
            conn.execute(format!("DROP DATABASE IF EXISTS {DB}").as_str())
                .await
                .expect("drop");
            conn.execute(format!("CREATE DATABASE {DB} CHARACTER SET utf8mb3").as_str())
                .await
                .expect("create");
            conn.execute(format!("USE {DB}").as_str())
                .await
                .expect("use");
            let schema =
                std::fs::read_to_string(data("suitecrm/suitecrm7-core.sql")).expect("schema");
            conn.execute(sqlx::raw_sql(&schema))
                .await
                .expect("load schema");
            let rows = std::fs::read_to_string(&sql).expect("data.sql");
            conn.execute(sqlx::raw_sql(&rows)).await.expect("load data");
            serde_json::from_str(&std::fs::read_to_string(&truth).expect("truth"))
                .expect("truth json")
        })
        .await
}

fn count(truth: &Value, which: &str, table: &str) -> usize {
    truth["counts"][which][table].as_u64().expect("count") as usize
}

async fn scalar(sql: &str) -> usize {
    let mut conn = sqlx::MySqlConnection::connect(&db_url(DB))
        .await
        .expect("connect");
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect(sql);
    n as usize
}

#[tokio::test]
async fn suitecrm_database_migrates_with_emails_custom_fields_and_soft_deletes() {
    // GIVEN a SuiteCRM database with ~10k messy rows
    let truth = load().await;
    let conn = build("suitecrm", &db_url(DB), opts(400)).expect("build");
    conn.check().await.expect("check");

    // WHEN contacts (contacts, then leads), accounts and opportunities are pulled
    let contacts = drain(conn.as_ref(), ObjectKind::Contact, None).await;
    let accounts = drain(conn.as_ref(), ObjectKind::Company, None).await;
    let opps = drain(conn.as_ref(), ObjectKind::Order, None).await;

    // THEN every live row is a record, every deleted=1 row a deletion, nothing rejected
    assert!(
        contacts.rejected.is_empty(),
        "{:?}",
        contacts.rejected.first()
    );
    let live_people = count(truth, "live_rows", "contacts") + count(truth, "live_rows", "leads");
    let all_people = count(truth, "rows", "contacts") + count(truth, "rows", "leads");
    assert_eq!(contacts.live().len(), live_people);
    assert_eq!(contacts.records.len(), all_people);
    assert_eq!(
        contacts
            .live()
            .iter()
            .filter(|r| contact(r).tags.contains(&"lead".into()))
            .count(),
        count(truth, "live_rows", "leads")
    );
    assert_eq!(
        (accounts.live().len(), accounts.records.len()),
        (
            count(truth, "live_rows", "accounts"),
            count(truth, "rows", "accounts")
        )
    );
    assert!(
        accounts.rejected.is_empty(),
        "{:?}",
        accounts.rejected.first()
    );
    assert_eq!(
        (opps.live().len(), opps.records.len()),
        (
            count(truth, "live_rows", "opportunities"),
            count(truth, "rows", "opportunities")
        )
    );
    assert!(opps.rejected.is_empty(), "{:?}", opps.rejected.first());

    // Emails come from email_addr_bean_rel → email_addresses (live links, valid addresses only).
    let with_email = scalar(
        "SELECT COUNT(DISTINCT c.id) FROM contacts c \
         JOIN email_addr_bean_rel r ON r.bean_id = c.id AND r.deleted = 0 AND r.bean_module = 'Contacts' \
         JOIN email_addresses e ON e.id = r.email_address_id AND e.deleted = 0 AND e.invalid_email = 0 \
         WHERE c.deleted = 0",
    )
    .await;
    let live_contacts: Vec<_> = contacts
        .live()
        .into_iter()
        .filter(|r| !contact(r).tags.contains(&"lead".into()))
        .collect();
    assert_eq!(
        live_contacts
            .iter()
            .filter(|r| !contact(r).emails.is_empty())
            .count(),
        with_email
    );
    for r in &live_contacts {
        for e in &contact(r).emails {
            assert!(e == &e.trim().to_lowercase() && e.contains('@'), "{e}");
        }
    }
    // Duplicates typed with other casing share a normalized email (input for dedup).
    let pairs = truth["contacts"].as_array().expect("pairs");
    let shared = pairs
        .iter()
        .filter(|p| {
            let emails = |i: usize| -> HashSet<String> {
                contacts
                    .records
                    .iter()
                    .find(|r| r.external_id == p[i].as_str().unwrap_or_default())
                    .and_then(|r| r.record.as_ref())
                    .and_then(|r| r.as_contact())
                    .map(|c| c.emails.iter().cloned().collect())
                    .unwrap_or_default()
            };
            !emails(0).is_disjoint(&emails(1))
        })
        .count();
    assert!(
        shared * 2 > pairs.len(),
        "{shared} of {} duplicate pairs share an email",
        pairs.len()
    );

    // Custom fields from contacts_cstm / accounts_cstm are kept.
    let with_line = scalar(
        "SELECT COUNT(*) FROM contacts c JOIN contacts_cstm x ON x.id_c = c.id \
         WHERE c.deleted = 0 AND TRIM(x.line_id_c) <> ''",
    )
    .await;
    assert_eq!(
        live_contacts
            .iter()
            .filter(|r| contact(r).custom.contains_key("line_id_c"))
            .count(),
        with_line
    );
    let with_tax = scalar(
        "SELECT COUNT(*) FROM accounts a JOIN accounts_cstm x ON x.id_c = a.id \
         WHERE a.deleted = 0 AND TRIM(x.tax_id_c) <> ''",
    )
    .await;
    assert_eq!(
        accounts
            .live()
            .iter()
            .filter(|r| company(r).tax_id.is_some())
            .count(),
        with_tax
    );
    let vip = accounts
        .live()
        .iter()
        .filter(|r| company(r).custom.contains_key("vip_level_c"))
        .count();
    assert!(vip > 100, "{vip} accounts keep vip_level_c");

    // HTML entities SuiteCRM stored are undone; owners resolve to user names.
    assert!(accounts
        .live()
        .iter()
        .all(|r| !company(r).name.contains("&amp;")));
    let owners: HashSet<&Value> = live_contacts
        .iter()
        .filter_map(|r| contact(r).custom.get("owner"))
        .collect();
    assert!(owners.contains(&json!("admin")), "{owners:?}");
    // Contacts linked to a live account carry its name.
    assert!(
        live_contacts
            .iter()
            .filter(|r| contact(r).company.is_some())
            .count()
            > 300
    );
    // Opportunities: stage → status, DOUBLE amount → decimal, account → customer.
    let won = opps
        .live()
        .iter()
        .filter(|r| order(r).status.as_deref() == Some("won"))
        .count();
    assert!(won > 0);
    assert!(opps.live().iter().any(|r| order(r)
        .customer
        .as_ref()
        .and_then(|c| c.name.clone())
        .is_some()));
}

#[tokio::test]
async fn suitecrm_paging_resumes_exactly_and_can_skip_deleted() {
    let truth = load().await;
    let url = db_url(DB);
    let whole = drain(
        build("suitecrm", &url, opts(5000)).expect("build").as_ref(),
        ObjectKind::Contact,
        None,
    )
    .await;
    let paged = drain(
        build("suitecrm", &url, opts(97)).expect("build").as_ref(),
        ObjectKind::Contact,
        None,
    )
    .await;
    assert_eq!(paged.records, whole.records);
    assert_eq!(paged.cursors[0].0["table"], json!("contacts"));
    assert!(paged.cursors[0].0["after_id"].is_string());
    // A new connector resumes from a cursor in the middle of the leads.
    let mid = paged
        .cursors
        .iter()
        .find(|c| c.0["table"] == json!("leads") && c.0["after_id"].is_string())
        .expect("leads cursor");
    let rest = drain(
        build("suitecrm", &url, opts(97)).expect("build").as_ref(),
        ObjectKind::Contact,
        Some(mid.clone()),
    )
    .await;
    let n = rest.records.len();
    assert!(n > 0);
    assert_eq!(rest.records[..], whole.records[whole.records.len() - n..]);

    let skip = LegacyOptions {
        skip_deleted: true,
        ..opts(500)
    };
    let live = drain(
        build("suitecrm", &url, skip).expect("build").as_ref(),
        ObjectKind::Company,
        None,
    )
    .await;
    assert_eq!(live.records.len(), count(truth, "live_rows", "accounts"));
}

#[tokio::test]
async fn wrong_password_and_missing_tables_are_clear_errors() {
    load().await;
    let url = db_url(DB).replacen("mysql://root@", "mysql://root:wrong-secret@", 1);
    let conn = build("suitecrm", &url, LegacyOptions::default()).expect("build");
    let e = conn.check().await.expect_err("wrong password").to_string();
    assert!(
        e.contains("mysql://root@127.0.0.1:3306/") && e.contains("access denied"),
        "{e}"
    );
    assert!(!e.contains("wrong-secret"), "{e}");
    // A database without the SuiteCRM tables.
    let empty = "synchub_legacy_empty";
    let mut admin = admin().await;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {empty}").as_str())
        .await
        .expect("drop");
    admin
        .execute(format!("CREATE DATABASE {empty}").as_str())
        .await
        .expect("create");
    let conn = build("suitecrm", &db_url(empty), LegacyOptions::default()).expect("build");
    let e = conn.check().await.expect_err("not suitecrm").to_string();
    assert!(
        e.contains("has no table 'contacts'") && e.contains("suitecrm"),
        "{e}"
    );
    // Nobody listening.
    let conn = build(
        "vtiger",
        "mysql://root:pw@127.0.0.1:9/x",
        LegacyOptions::default(),
    )
    .expect("build");
    let e = conn.check().await.expect_err("refused").to_string();
    assert!(
        e.contains("mysql://root@127.0.0.1:9/x") && e.contains("cannot connect"),
        "{e}"
    );
    assert!(e.contains("refused") && !e.contains(":pw@"), "{e}");
}
