//! Salesforce and HubSpot export folders (UTF-8 with and without BOM),
//! resume from every cursor, and the benchmark file helper.

use serde_json::json;
use synchub_core::ObjectKind;
use synchub_legacy::{build, write_sample_contacts_csv, LegacyOptions};

use crate::{company, contact, data, drain, opts, order};

#[tokio::test]
async fn salesforce_export_maps_contacts_leads_accounts_and_opportunities() {
    // GIVEN a Salesforce Data Export folder (Contact.csv has a UTF-8 BOM and a multi-line value)
    let conn = build(
        "salesforce",
        data("salesforce").to_str().expect("utf-8 path"),
        opts(1000),
    )
    .expect("build");
    conn.check().await.expect("check");
    let kinds: Vec<ObjectKind> = conn.objects().iter().map(|o| o.kind).collect();
    assert_eq!(
        kinds,
        vec![ObjectKind::Contact, ObjectKind::Company, ObjectKind::Order]
    );

    // WHEN contacts are pulled (Contact.csv then Lead.csv)
    let contacts = drain(conn.as_ref(), ObjectKind::Contact, None).await;

    // THEN 9 live, 2 soft-deleted, 2 bad rows reported with row and line numbers
    assert_eq!(contacts.live().len(), 9);
    assert_eq!(contacts.deleted(), 2);
    assert_eq!(
        contacts.locations(),
        vec!["Contact.csv row 5 (line 7)", "Contact.csv row 6 (line 8)"]
    );
    assert_eq!(
        contacts.rejected[0].reason,
        "row has 6 columns, the header has 24"
    );
    assert_eq!(
        contacts.rejected[1].reason,
        "contact has no name, email or phone"
    );
    assert_eq!(
        contacts.rejected[1].external_id.as_deref(),
        Some("0035g00000AbC006AAA")
    );

    let r = contacts.get("0035g00000AbC001AAA");
    let c = contact(r);
    assert_eq!(c.given_name.as_deref(), Some("大文"));
    assert_eq!(c.family_name.as_deref(), Some("陳"));
    assert_eq!(c.full_name.as_deref(), Some("陳大文"));
    assert_eq!(c.phones, vec!["+886223456789", "+886912345678"]);
    assert_eq!(c.emails, vec!["tai.man@example.com.tw"]);
    assert_eq!(
        c.birth_date.map(|d| d.to_string()).as_deref(),
        Some("1980-02-29")
    );
    assert_eq!(c.accepts_marketing, Some(true));
    assert_eq!(c.custom["Line_ID__c"], json!("@taiman"));
    assert_eq!(c.custom["VIP_Level__c"], json!("gold"));
    assert_eq!(c.custom["Description"], json!("VIP\nprefers LINE"));
    assert_eq!(c.custom["owner"], json!("0055g00000Own01AAA"));
    assert_eq!(c.custom["AccountId"], json!("0015g00000Acc01AAA"));
    assert!(!c.custom.contains_key("IsDeleted") && !c.custom.contains_key("Id"));
    assert_eq!(r.version.as_deref(), Some("2024-05-15T09:30:00.000Z"));
    assert_eq!(
        r.updated_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2024-05-15T09:30:00+00:00")
    );

    // Phones take the region of the record's own country (HK, CN), full-width digits too.
    let hk = contact(contacts.get("0035g00000AbC002AAA"));
    assert_eq!(hk.phones, vec!["+85223456789", "+85291234567"]);
    assert_eq!(hk.emails, vec!["tai.man@example.com.tw"]);
    let nana = contact(contacts.get("0035g00000AbC004AAA"));
    assert_eq!(
        (nana.family_name.as_deref(), nana.given_name.as_deref()),
        (Some("歐陽"), Some("娜娜"))
    );
    assert_eq!(nana.phones, vec!["+8613800138000"]);
    assert_eq!(nana.accepts_marketing, Some(false));
    assert_eq!(
        contact(contacts.get("0035g00000AbC007AAA")).phones,
        vec!["+85291234567"]
    );
    assert_eq!(
        contact(contacts.get("0035g00000AbC008AAA")).phones,
        vec!["+886423456789", "+886922333444"]
    );
    // A date that does not parse is kept, not dropped.
    assert_eq!(
        contact(contacts.get("0035g00000AbC009AAA")).custom["Birthdate"],
        json!("not a date")
    );

    let lead = contact(contacts.get("00Q5g00000Led01AAA"));
    assert_eq!(lead.tags, vec!["lead"]);
    assert_eq!(lead.company.as_deref(), Some("鼎新科技"));
    assert_eq!(lead.custom["lead_status"], json!("Closed - Converted"));
    assert_eq!(lead.custom["Budget__c"], json!("NT$120,000"));
    assert_eq!(lead.custom["legacy_object"], json!("Lead"));

    // Accounts: 2 live, 1 deleted, 1 without a name.
    let accounts = drain(conn.as_ref(), ObjectKind::Company, None).await;
    assert_eq!((accounts.live().len(), accounts.deleted()), (2, 1));
    assert_eq!(accounts.locations(), vec!["Account.csv row 4 (line 5)"]);
    assert_eq!(accounts.rejected[0].reason, "company has no name");
    let acc = company(accounts.get("0015g00000Acc01AAA"));
    assert_eq!(acc.name, "鼎新科技股份有限公司");
    assert_eq!(acc.domain.as_deref(), Some("dingxin.example.com.tw"));
    assert_eq!(acc.phones, vec!["+886227123456"]);
    assert_eq!(acc.addresses[0].city.as_deref(), Some("台北市"));
    assert_eq!(acc.custom["CustomerPriority__c"], json!("High"));
    assert_eq!(acc.custom["Tax_ID__c"], json!("12345678"));

    // Opportunities become orders; a non-numeric amount is a bad row.
    let opps = drain(conn.as_ref(), ObjectKind::Order, None).await;
    assert_eq!((opps.live().len(), opps.deleted()), (2, 1));
    assert_eq!(opps.locations(), vec!["Opportunity.csv row 3 (line 4)"]);
    assert_eq!(
        opps.rejected[0].reason,
        "amount 'about 1M' in column 'Amount' is not a number"
    );
    let won = order(opps.get("0065g00000Opp01AAA"));
    assert_eq!(won.status.as_deref(), Some("won"));
    assert_eq!(won.total.to_string(), "120000.50");
    assert_eq!(won.currency, "TWD");
    assert_eq!(won.number.as_deref(), Some("年度採購 2024"));
    assert_eq!(won.custom["stage"], json!("Closed Won"));
    assert_eq!(
        won.customer.as_ref().and_then(|c| c.external_id.as_deref()),
        Some("0015g00000Acc01AAA")
    );
    let open = order(opps.get("0065g00000Opp02AAA"));
    assert_eq!(
        (open.status.as_deref(), open.currency.as_str()),
        (Some("open"), "HKD")
    );
    assert_eq!(open.custom["amount_missing"], json!(true));
}

#[tokio::test]
async fn every_cursor_resumes_exactly() {
    // GIVEN a full read of the Salesforce contacts
    let path = data("salesforce");
    let path = path.to_str().expect("utf-8 path");
    let full = drain(
        build("salesforce", path, opts(1000))
            .expect("build")
            .as_ref(),
        ObjectKind::Contact,
        None,
    )
    .await;
    // WHEN read 2 rows a page, and resumed from each cursor by a NEW connector
    let paged = drain(
        build("salesforce", path, opts(2)).expect("build").as_ref(),
        ObjectKind::Contact,
        None,
    )
    .await;
    assert_eq!(paged.records, full.records);
    assert_eq!(paged.rejected, full.rejected);
    assert!(paged.cursors.len() >= 7, "{} pages", paged.cursors.len());
    assert_eq!(paged.cursors[0].0["file"], json!("Contact.csv"));
    assert!(paged.cursors[0].0["offset"].as_u64().is_some());
    let mut seen = 0;
    for cursor in &paged.cursors {
        let fresh = build("salesforce", path, opts(2)).expect("build");
        let rest = drain(fresh.as_ref(), ObjectKind::Contact, Some(cursor.clone())).await;
        // THEN the rest after each cursor is exactly the tail of the full read
        let n = rest.records.len();
        assert_eq!(rest.records[..], full.records[full.records.len() - n..]);
        seen += 1;
    }
    assert_eq!(seen, paged.cursors.len());
}

#[tokio::test]
async fn hubspot_export_maps_labels_and_lists() {
    let conn = build(
        "hubspot",
        data("hubspot").to_str().expect("utf-8 path"),
        opts(1000),
    )
    .expect("build");
    let contacts = drain(conn.as_ref(), ObjectKind::Contact, None).await;
    assert_eq!(contacts.live().len(), 4);
    assert_eq!(
        contacts.locations(),
        vec!["hubspot-crm-exports-all-contacts-2024-05-15.csv row 3 (line 4)"]
    );
    let c = contact(contacts.get("101"));
    assert_eq!(c.phones, vec!["+886223456789", "+886912345678"]);
    assert_eq!(c.custom["Favourite Tea"], json!("烏龍"));
    assert_eq!(c.custom["owner"], json!("mei.lin@example.com.tw"));
    assert_eq!(
        contact(contacts.get("104")).emails,
        vec!["nana@example.cn", "nana.oy@example.cn"]
    );
    assert_eq!(contact(contacts.get("104")).phones, vec!["+8613800138000"]);
    assert_eq!(contact(contacts.get("105")).phones, vec!["+85298765432"]);
    assert!(
        contacts.get("102").updated_at.is_some(),
        "US-style date parsed"
    );

    let companies = drain(conn.as_ref(), ObjectKind::Company, None).await;
    assert_eq!(companies.live().len(), 2);
    assert_eq!(
        company(companies.get("501")).custom["統一編號"],
        json!("12345678")
    );
    let deals = drain(conn.as_ref(), ObjectKind::Order, None).await;
    assert_eq!(deals.live().len(), 2);
    assert_eq!(order(deals.get("9001")).status.as_deref(), Some("won"));
    assert_eq!(order(deals.get("9002")).total.to_string(), "35000.75");
    assert_eq!(order(deals.get("9002")).status.as_deref(), Some("open"));
}

#[test]
fn errors_name_what_is_wrong() {
    let e = build("dynamics", "/tmp", LegacyOptions::default())
        .err()
        .expect("unknown kind");
    assert!(
        e.to_string().contains("unknown migration kind 'dynamics'"),
        "{e}"
    );
    let e = build(
        "salesforce",
        "/nonexistent/export",
        LegacyOptions::default(),
    )
    .err()
    .expect("missing");
    assert!(e.to_string().contains("/nonexistent/export"), "{e}");
    let e = build(
        "pipedrive",
        data("salesforce").to_str().expect("path"),
        LegacyOptions::default(),
    )
    .err()
    .expect("no pipedrive files");
    assert!(e.to_string().contains("*people*.csv"), "{e}");
    let e = build(
        "suitecrm",
        "mysql://root:hunter2@127.0.0.1:1/x",
        LegacyOptions::default(),
    );
    assert!(e.is_ok(), "building does not connect");
    let e = build("suitecrm", "/tmp/dump.sql", LegacyOptions::default())
        .err()
        .expect("not a url");
    assert!(e.to_string().contains("mysql://"), "{e}");
}

#[tokio::test]
async fn sample_file_for_the_benchmark_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("contacts.csv");
    let summary = write_sample_contacts_csv(&path, 5000, 7).expect("write");
    assert_eq!(summary.rows, 5000);
    assert!(
        summary.duplicates > 100 && summary.duplicates < 400,
        "{summary:?}"
    );
    let again = dir.path().join("again.csv");
    write_sample_contacts_csv(&again, 5000, 7).expect("write");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        std::fs::read(&again).expect("read")
    );

    let conn = build("csv", path.to_str().expect("path"), opts(1000)).expect("build");
    let all = drain(conn.as_ref(), ObjectKind::Contact, None).await;
    assert_eq!(all.records.len(), 5000, "{:?}", all.rejected.first());
    assert!(all.rejected.is_empty());
    // Duplicates differ only in formatting: normalized, they share email and phone.
    let people: std::collections::HashSet<(String, String)> = all
        .records
        .iter()
        .map(|r| (contact(r).emails[0].clone(), contact(r).phones[0].clone()))
        .collect();
    assert_eq!(people.len() as u64, summary.rows - summary.duplicates);
    let first = contact(&all.records[0]);
    assert!(first.phones[0].starts_with('+'), "{:?}", first.phones);
    assert!(first.custom.contains_key("line_id"));
}
