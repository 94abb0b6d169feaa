//! vtiger CRM 7 on a real MariaDB: a small hand-made database
//! (`tests/data/vtiger-mini.sql`) with soft deletes in `vtiger_crmentity`,
//! custom fields labelled in `vtiger_field`, and group owners.

use serde_json::json;
use sqlx::Executor;
use synchub_core::ObjectKind;
use synchub_legacy::build;

use crate::suitecrm::{admin, db_url};
use crate::{company, contact, data, drain, opts, order};

const DB: &str = "synchub_legacy_vtiger";

#[tokio::test]
async fn vtiger_database_migrates_with_labels_owners_and_soft_deletes() {
    // GIVEN a vtiger database
    let mut conn = admin().await;
    conn.execute(format!("DROP DATABASE IF EXISTS {DB}").as_str())
        .await
        .expect("drop");
    conn.execute(format!("CREATE DATABASE {DB} CHARACTER SET utf8mb4").as_str())
        .await
        .expect("create");
    conn.execute(format!("USE {DB}").as_str())
        .await
        .expect("use");
    let sql = std::fs::read_to_string(data("vtiger-mini.sql")).expect("sql");
    conn.execute(sqlx::raw_sql(&sql)).await.expect("load");
    let source = build("vtiger", &db_url(DB), opts(2)).expect("build");
    source.check().await.expect("check");

    // WHEN contacts and leads are pulled two rows a page
    let people = drain(source.as_ref(), ObjectKind::Contact, None).await;

    // THEN 5 contacts + 2 leads live, 2 soft-deleted, 1 row without a name, email or phone
    assert_eq!((people.live().len(), people.deleted()), (7, 2));
    assert_eq!(people.locations(), vec!["vtiger_contactdetails id 24"]);
    assert_eq!(
        people.rejected[0].reason,
        "contact has no name, email or phone"
    );
    let c = contact(people.get("21"));
    assert_eq!(c.full_name.as_deref(), Some("陳大文"));
    assert_eq!(c.emails, vec!["tai.man@example.com.tw"]);
    assert_eq!(c.phones, vec!["+886223456789", "+886912345678"]);
    assert_eq!(c.company.as_deref(), Some("鼎新科技股份有限公司"));
    assert_eq!(
        c.birth_date.map(|d| d.to_string()).as_deref(),
        Some("1980-02-29")
    );
    assert_eq!(c.custom["LINE ID"], json!("@taiman"));
    assert_eq!(c.custom["會員等級"], json!("金卡"));
    assert_eq!(c.custom["owner"], json!("mei.lin"));
    assert_eq!(c.custom["contact_no"], json!("CON1"));
    assert_eq!(
        people.get("21").version.as_deref(),
        Some("2024-05-15 09:30:00")
    );
    let nana = contact(people.get("22"));
    assert_eq!(nana.company, None, "its account is deleted");
    assert_eq!(nana.accepts_marketing, Some(false));
    assert_eq!(
        nana.emails,
        vec!["nana@example.hk", "nana@work.example.com"]
    );
    assert_eq!(nana.phones, vec!["+85291234567"]);
    assert_eq!(contact(people.get("25")).phones, vec!["+85291234567"]);
    let lead = contact(people.get("31"));
    assert_eq!(lead.tags, vec!["lead"]);
    assert_eq!(lead.custom["owner"], json!("Team Selling"));
    assert_eq!(lead.custom["lead_status"], json!("Hot"));
    // AND the converted lead names the contact its conversion created (same
    // e-mail, later crmid); a lead not converted names none, though a
    // contact has its e-mail
    let converted = contact(people.get("33"));
    assert_eq!(converted.custom["converted_contact_id"], json!("35"));
    assert_eq!(converted.tags, vec!["lead"]);
    assert!(
        !lead.custom.contains_key("converted_contact_id"),
        "{:?}",
        lead.custom
    );

    let accounts = drain(source.as_ref(), ObjectKind::Company, None).await;
    assert_eq!((accounts.live().len(), accounts.deleted()), (2, 1));
    let acc = company(accounts.get("11"));
    assert_eq!(acc.domain.as_deref(), Some("dingxin.example.com.tw"));
    assert_eq!(acc.custom["統一編號"], json!("12345678"));
    assert_eq!(acc.emails, vec!["info@dingxin.example.com.tw"]);

    let deals = drain(source.as_ref(), ObjectKind::Order, None).await;
    assert_eq!(deals.live().len(), 2);
    let won = order(deals.get("41"));
    assert_eq!(
        (won.status.as_deref(), won.total.normalize().to_string()),
        (Some("won"), "120000.5".into())
    );
    assert_eq!(
        won.customer.as_ref().and_then(|c| c.name.as_deref()),
        Some("鼎新科技股份有限公司")
    );
    assert_eq!(order(deals.get("42")).status.as_deref(), Some("open"));
}
