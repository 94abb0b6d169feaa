//! `synchub migrate` on the exports people actually have (issue 21), run as
//! the binary: header spellings and layouts of each CRM, separators, ZIPs,
//! map files, converted leads, encodings past the first page, truncated and
//! garbage files, dry runs that predict the real run, soft deletes and phone
//! extensions. Every export is written by the test in the spelling the
//! vendor uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use synchub_core::{Contact, ObjectKind, Record};
use synchub_store::Store;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The one-line summary: `read N rows: …`.
    fn summary(&self) -> String {
        self.stdout
            .lines()
            .find(|l| l.starts_with("read "))
            .unwrap_or_else(|| panic!("no summary in\n{}\n{}", self.stdout, self.stderr))
            .to_string()
    }

    fn expect_ok(self) -> Run {
        assert!(self.ok, "migrate failed:\n{}\n{}", self.stdout, self.stderr);
        self
    }
}

fn migrate(db: &str, kind: &str, path: &Path, extra: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["migrate", kind])
        .arg(path)
        .args(extra)
        .env("SYNCHUB_DATABASE_URL", db)
        .output()
        .expect("run synchub");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn db_in(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("store.db").display())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Live (not merged, not deleted) contacts in the store.
async fn contacts(db: &str) -> Vec<Contact> {
    let store = Store::connect(db).await.unwrap();
    let all = store.records(ObjectKind::Contact, false).await.unwrap();
    store.close().await;
    all.into_iter()
        .filter(|r| r.merged_into.is_none())
        .filter_map(|r| match r.record {
            Record::Contact(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn by_email<'a>(all: &'a [Contact], email: &str) -> &'a Contact {
    all.iter()
        .find(|c| c.emails.iter().any(|e| e == email))
        .unwrap_or_else(|| panic!("no contact with {email} in {all:#?}"))
}

/// The real run's summary, after a dry run that left no file behind and
/// printed the same summary.
fn dry_then_real(dir: &Path, kind: &str, path: &Path, extra: &[&str]) -> Run {
    let db = db_in(dir);
    let mut args = extra.to_vec();
    args.push("--dry-run");
    let dry = migrate(&db, kind, path, &args).expect_ok();
    assert!(
        !dir.join("store.db").exists(),
        "--dry-run created the store file"
    );
    let real = migrate(&db, kind, path, extra).expect_ok();
    assert_eq!(
        dry.summary(),
        real.summary(),
        "{}\n---\n{}",
        dry.stdout,
        real.stdout
    );
    real
}

// --- 1. header spellings and layouts ---------------------------------------

#[tokio::test]
async fn hubspot_export_with_internal_property_names() {
    // GIVEN a HubSpot export headed by internal names (hs_object_id, firstname …)
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "hubspot-crm-exports-all-contacts-2024-05-15.csv",
        "hs_object_id,firstname,lastname,email,phone,lastmodifieddate\n\
         501,Mei,Lin,mei.lin@example.com.tw,+886 912 345 678,2024-05-15T09:30:00Z\n\
         502,Wei,Chen,wei.chen@example.com,+852 9123 4567,2024-05-15T09:31:00Z\n",
    );
    // WHEN it is migrated (dry run first)
    let run = dry_then_real(dir.path(), "hubspot", &file, &[]);
    // THEN both rows are contacts with their names, emails and phones
    assert!(
        run.summary().starts_with("read 2 rows: 2 new records"),
        "{}",
        run.stdout
    );
    let all = contacts(&db_in(dir.path())).await;
    let mei = by_email(&all, "mei.lin@example.com.tw");
    assert_eq!(mei.given_name.as_deref(), Some("Mei"));
    assert_eq!(mei.phones, ["+886912345678"]);
}

#[tokio::test]
async fn hubspot_export_from_a_traditional_chinese_portal() {
    // GIVEN a zh-TW HubSpot export: 記錄 ID, 名字, 姓氏, 電子郵件 …
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "hubspot-crm-exports-all-contacts-2024-05-15.csv",
        "記錄 ID,名字,姓氏,電子郵件,電話號碼,公司名稱,城市,國家/地區,上次修改日期\n\
         701,大文,陳,tai.man@example.com.hk,9123 4567,大文貿易,香港,Hong Kong,2024-05-15 09:14\n\
         702,志明,歐陽,zhiming@example.com.tw,0912-345-678,,台北,Taiwan,2024-05-15 09:15\n",
    );
    let run = dry_then_real(dir.path(), "hubspot", &file, &[]);
    assert!(
        run.summary().starts_with("read 2 rows: 2 new records"),
        "{}",
        run.stdout
    );
    // THEN the labels map to the same fields as English ones
    let all = contacts(&db_in(dir.path())).await;
    let chan = by_email(&all, "tai.man@example.com.hk");
    assert_eq!(chan.family_name.as_deref(), Some("陳"));
    assert_eq!(chan.given_name.as_deref(), Some("大文"));
    assert_eq!(chan.company.as_deref(), Some("大文貿易"));
    assert_eq!(chan.phones, ["+85291234567"]);
    let ouyang = by_email(&all, "zhiming@example.com.tw");
    assert_eq!(ouyang.family_name.as_deref(), Some("歐陽"));
    assert_eq!(ouyang.phones, ["+886912345678"]);
}

#[tokio::test]
async fn hubspot_export_from_a_simplified_chinese_portal() {
    // GIVEN a zh-CN HubSpot export: 记录 ID, 名字, 姓氏, 电子邮件, 电话号码
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "hubspot-crm-exports-all-contacts-2024-05-15.csv",
        "\u{FEFF}记录 ID,名字,姓氏,电子邮件,电话号码,职位,国家/地区\n\
         801,大文,陈,dawen@example.cn,138 0013 8000,经理,China\n",
    );
    let run = dry_then_real(dir.path(), "hubspot", &file, &[]);
    assert!(
        run.summary().starts_with("read 1 rows: 1 new records"),
        "{}",
        run.stdout
    );
    let all = contacts(&db_in(dir.path())).await;
    let chen = by_email(&all, "dawen@example.cn");
    assert_eq!(chen.family_name.as_deref(), Some("陈"));
    assert_eq!(chen.title.as_deref(), Some("经理"));
    assert_eq!(chen.phones, ["+8613800138000"]);
}

#[tokio::test]
async fn zoho_export_separated_by_semicolons_with_id_column() {
    // GIVEN a semicolon-separated Zoho export with `Id` (not `Record Id`) and
    // a quoted value holding the separator
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "Contacts_2024_05_15.csv",
        "Id;First Name;Last Name;Email;Phone;Mailing Street;Mailing Country;Modified Time\n\
         zcrm_4001;Hui;Wong;\"hui.wong@example.hk\";\"+852 2345 6789\";\"Flat A; 12/F\";Hong Kong;2024-05-15 10:00:00\n\
         zcrm_4002;小明;王;xm.wang@example.cn;138 0013 8000;;China;2024-05-15 10:01:00\n",
    );
    let run = dry_then_real(dir.path(), "zoho", &file, &[]);
    assert!(
        run.summary().starts_with("read 2 rows: 2 new records"),
        "{}",
        run.stdout
    );
    assert!(run.summary().ends_with(" 0 invalid"), "{}", run.stdout);
    let all = contacts(&db_in(dir.path())).await;
    let wong = by_email(&all, "hui.wong@example.hk");
    assert_eq!(wong.addresses[0].line1.as_deref(), Some("Flat A; 12/F"));
    assert_eq!(wong.phones, ["+85223456789"]);
    assert_eq!(
        by_email(&all, "xm.wang@example.cn").phones,
        ["+8613800138000"]
    );
}

#[tokio::test]
async fn salesforce_export_separated_by_tabs() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Contact.csv",
        "Id\tIsDeleted\tFirstName\tLastName\tEmail\tPhone\tLastModifiedDate\n\
         0035g00000AAAAAAA1\tfalse\tMei\tLin\tmei@example.com\t02 2345 6789\t2024-05-15T09:30:00.000Z\n",
    );
    let run = dry_then_real(dir.path(), "salesforce", dir.path(), &[]);
    assert!(
        run.summary().starts_with("read 1 rows: 1 new records"),
        "{}",
        run.stdout
    );
    let all = contacts(&db_in(dir.path())).await;
    assert_eq!(
        by_email(&all, "mei@example.com").family_name.as_deref(),
        Some("Lin")
    );
}

#[tokio::test]
async fn pipedrive_persons_export_without_prefix_and_map_region() {
    // GIVEN `persons-export.csv` with bare headers (no `Person - `) and no
    // country column, and a map file that only says default_region = "TW"
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    write(
        &export,
        "persons-export.csv",
        "ID,Name,Email,Phone,Organization,Update time\n\
         11,陳美玲,meiling@example.com.tw,0912-345-678,美玲企業,2024-05-15 09:00:00\n\
         12,Chan Tai Man,taiman@example.com,02 2345 6789 #123,,2024-05-15 09:01:00\n",
    );
    let map = write(dir.path(), "map.toml", "default_region = \"TW\"\n");
    let run = dry_then_real(
        dir.path(),
        "pipedrive",
        &export,
        &["--map", map.to_str().unwrap()],
    );
    assert!(
        run.summary().starts_with("read 2 rows: 2 new records"),
        "{}",
        run.stdout
    );
    // THEN the names split, the phones are Taiwanese, the extension is kept
    let all = contacts(&db_in(dir.path())).await;
    let mei = by_email(&all, "meiling@example.com.tw");
    assert_eq!(mei.family_name.as_deref(), Some("陳"));
    assert_eq!(mei.phones, ["+886912345678"]);
    let chan = by_email(&all, "taiman@example.com");
    assert_eq!(chan.phones, ["+886223456789"]);
    assert_eq!(
        chan.custom["phone_extensions"],
        serde_json::json!("+886223456789;ext=123")
    );
}

#[tokio::test]
async fn salesforce_report_export_with_labels_under_any_name() {
    // GIVEN a Contacts report exported with field labels, saved as report….csv
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "report1715770000000.csv",
        "\"Contact ID\",\"First Name\",\"Last Name\",\"Email\",\"Mobile\",\"Account Name\",\"Mailing City\",\"Mailing Country\"\n\
         \"0035g00000BBBBBBB1\",\"Ka Yan\",\"Lee\",\"kayan@example.hk\",\"9876 5432\",\"Lee & Co\",\"Kowloon\",\"Hong Kong\"\n",
    );
    let run = dry_then_real(dir.path(), "salesforce", &file, &[]);
    assert!(
        run.summary().starts_with("read 1 rows: 1 new records"),
        "{}",
        run.stdout
    );
    let all = contacts(&db_in(dir.path())).await;
    let lee = by_email(&all, "kayan@example.hk");
    assert_eq!(lee.company.as_deref(), Some("Lee & Co"));
    assert_eq!(lee.phones, ["+85298765432"]);
    assert_eq!(lee.addresses[0].city.as_deref(), Some("Kowloon"));
}

#[tokio::test]
async fn salesforce_zip_export_as_downloaded() {
    // GIVEN the weekly export ZIP, unopened
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("WE_00D5g000000XXXXX_1.zip");
    {
        use std::io::Write;
        let file = std::fs::File::create(&zip_path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("Contact.csv", opts).unwrap();
        zip.write_all(
            b"\"Id\",\"IsDeleted\",\"AccountId\",\"FirstName\",\"LastName\",\"Email\"\n\
              \"0035g00000CCCCCCC1\",\"false\",\"0015g00000AAAAAAA1\",\"Yi\",\"Zhang\",\"yi@example.cn\"\n",
        )
        .unwrap();
        zip.start_file("Account.csv", opts).unwrap();
        zip.write_all(
            b"\"Id\",\"IsDeleted\",\"Name\",\"Phone\"\n\
              \"0015g00000AAAAAAA1\",\"false\",\"Zhang Trading\",\"+86 21 5555 1234 ext. 8\"\n",
        )
        .unwrap();
        zip.start_file("Attachment.csv", opts).unwrap();
        zip.write_all(b"\"Id\",\"Name\"\n\"00P1\",\"a.pdf\"\n")
            .unwrap();
        zip.finish().unwrap();
    }
    // WHEN the .zip itself is passed
    let run = dry_then_real(dir.path(), "salesforce", &zip_path, &[]);
    // THEN its contacts and accounts are read
    assert!(
        run.summary().starts_with("read 2 rows: 2 new records"),
        "{}",
        run.stdout
    );
    let all = contacts(&db_in(dir.path())).await;
    assert_eq!(
        by_email(&all, "yi@example.cn").family_name.as_deref(),
        Some("Zhang")
    );
    // AND a company phone keeps its extension the same way a contact's does
    let store = Store::connect(&db_in(dir.path())).await.unwrap();
    let companies = store.records(ObjectKind::Company, false).await.unwrap();
    let Record::Company(co) = &companies[0].record else {
        panic!("not a company")
    };
    assert_eq!(co.phones, ["+862155551234"]);
    assert_eq!(
        co.custom["phone_extensions"],
        serde_json::json!("+862155551234;ext=8")
    );
    // AND a folder holding the ZIP reads the same
    let again = tempfile::tempdir().unwrap();
    let folder = again.path().join("export");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(&zip_path, folder.join("WE_00D5g000000XXXXX_1.zip")).unwrap();
    let run = migrate(&db_in(again.path()), "salesforce", &folder, &[]).expect_ok();
    assert!(
        run.summary().starts_with("read 2 rows: 2 new records"),
        "{}",
        run.stdout
    );
}

// --- 2. converted leads ----------------------------------------------------

#[tokio::test]
async fn converted_salesforce_lead_merges_with_its_contact() {
    // GIVEN a lead converted to a contact, with another email and phone
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    write(
        &export,
        "Contact.csv",
        "Id,IsDeleted,FirstName,LastName,Email,Phone,LastModifiedDate,Preferred_Language__c\n\
         0035g00000DDDDDDD1,false,Siu Ming,Cheung,siuming@corp.example.hk,+852 2111 2222,2024-05-15T09:30:00.000Z,zh_HK\n",
    );
    write(
        &export,
        "Lead.csv",
        "Id,IsDeleted,FirstName,LastName,Email,Phone,Company,IsConverted,ConvertedContactId,LastModifiedDate,Preferred_Language__c\n\
         00Q5g00000EEEEEEE1,false,Siu-Ming,Cheung,sm.cheung@gmail.example,+852 9333 4444,Corp,true,0035g00000DDDDDDD1,2024-04-01T09:30:00.000Z,en\n\
         00Q5g00000EEEEEEE2,false,Ah,Ngan,ngan@example.hk,,,false,,2024-04-01T09:30:00.000Z,\n",
    );
    let run = dry_then_real(dir.path(), "salesforce", &export, &[]);
    assert!(
        run.stdout
            .contains("converted leads: 1 merged with the contact"),
        "{}",
        run.stdout
    );
    // THEN one person holds both emails and both phones
    let all = contacts(&db_in(dir.path())).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    let cheung = by_email(&all, "siuming@corp.example.hk");
    assert!(
        cheung
            .emails
            .contains(&"sm.cheung@gmail.example".to_string()),
        "{cheung:#?}"
    );
    // AND a re-run finds them already one record
    let again = migrate(&db_in(dir.path()), "salesforce", &export, &[]).expect_ok();
    assert!(
        again.summary().starts_with("read 3 rows: 0 new records"),
        "{}",
        again.stdout
    );
    assert!(
        again.stdout.contains("converted leads: 0 merged with the contact they were converted to, 1 already one record"),
        "{}",
        again.stdout
    );
}

// --- 3. encodings ----------------------------------------------------------

fn big5(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::BIG5.encode(text);
    assert!(!unmappable, "{text}");
    bytes.into_owned()
}

#[tokio::test]
async fn big5_rows_after_300_kb_of_ascii_are_read_as_big5() {
    // GIVEN a Salesforce Contact.csv whose first 300+ KB are ASCII
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("Id,IsDeleted,FirstName,LastName,Email\n");
    let mut n = 0;
    while text.len() < 320 * 1024 {
        n += 1;
        text.push_str(&format!(
            "0035g0000{n:09},false,Person{n},Ascii,person{n}@example.com\n"
        ));
    }
    let cjk = [("志明", "歐陽"), ("婉兒", "上官"), ("大文", "陳")];
    for (i, (given, family)) in cjk.iter().enumerate() {
        text.push_str(&format!(
            "0035g1000{i:09},false,{given},{family},cjk{i}@example.tw\n"
        ));
    }
    std::fs::write(dir.path().join("Contact.csv"), big5(&text)).unwrap();
    let run = migrate(&db_in(dir.path()), "salesforce", dir.path(), &[]).expect_ok();
    // THEN nothing is invalid and the names are exact
    assert!(run.summary().ends_with(" 0 invalid"), "{}", run.stdout);
    let all = contacts(&db_in(dir.path())).await;
    assert_eq!(all.len(), n + 3);
    assert_eq!(
        by_email(&all, "cjk0@example.tw").family_name.as_deref(),
        Some("歐陽")
    );
    assert_eq!(
        by_email(&all, "cjk1@example.tw").family_name.as_deref(),
        Some("上官")
    );
}

#[tokio::test]
async fn a_forced_wrong_encoding_counts_garbled_rows_invalid() {
    // GIVEN a Big5 file read with --encoding gbk
    let dir = tempfile::tempdir().unwrap();
    let text = "Id,IsDeleted,FirstName,LastName,Email\n\
                0035g00000FFFFFF01,false,志明,歐陽,a@example.tw\n\
                0035g00000FFFFFF02,false,小明,王,b@example.tw\n\
                0035g00000FFFFFF03,false,Mary,Lee,c@example.tw\n";
    std::fs::write(dir.path().join("Contact.csv"), big5(text)).unwrap();
    let run = migrate(
        &db_in(dir.path()),
        "salesforce",
        dir.path(),
        &["--encoding", "gbk"],
    )
    .expect_ok();
    // THEN the two garbled rows are invalid, named, and the ASCII one imports
    assert!(
        run.summary().starts_with("read 3 rows: 1 new records")
            && run.summary().ends_with(" 2 invalid"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Contact.csv row 1 (line 2)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("private-use"), "{}", run.stdout);
}

// --- 4. truncation ---------------------------------------------------------

#[tokio::test]
async fn a_file_cut_inside_its_last_quoted_value_has_an_invalid_last_row() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Contact.csv",
        "\"Id\",\"IsDeleted\",\"LastName\",\"Email\",\"Preferred_Language__c\"\n\
         \"0035g00000GGGGGG01\",\"false\",\"Lin\",\"lin@example.tw\",\"zh_TW\"\n\
         \"0035g00000GGGGGG02\",\"false\",\"Wu\",\"wu@example.tw\",\"zh_",
    );
    let run = dry_then_real(dir.path(), "salesforce", dir.path(), &[]);
    assert!(
        run.summary().starts_with("read 2 rows: 1 new records")
            && run.summary().ends_with(" 1 invalid"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Contact.csv row 2 (line 3): the file ends inside a quoted value"),
        "{}",
        run.stdout
    );
}

// --- 5. map files ----------------------------------------------------------

#[tokio::test]
async fn a_map_file_extends_the_builtin_mapping_and_catches_typos() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    write(
        &export,
        "Contact.csv",
        "Id,IsDeleted,FirstName,LastName,Email,Phone,Preferred_Language__c\n\
         0035g00000HHHHHH01,false,Mei,Lin,mei@example.tw,02 2345 6789,zh_TW\n",
    );
    // GIVEN a map entry for Contact.csv naming one extra column
    let map = write(
        dir.path(),
        "map.toml",
        "default_region = \"TW\"\n[[object]]\nsource = \"Contact.csv\"\nobject = \"contact\"\nid = \"Id\"\n\
         [object.columns]\nPreferred_Language__c = \"custom.language\"\n",
    );
    let db = db_in(dir.path());
    migrate(
        &db,
        "salesforce",
        &export,
        &["--map", map.to_str().unwrap()],
    )
    .expect_ok();
    // THEN the built-in columns still map (emails, phones) and the new one too
    let all = contacts(&db).await;
    let mei = by_email(&all, "mei@example.tw");
    assert_eq!(mei.phones, ["+886223456789"]);
    assert_eq!(mei.custom["language"], serde_json::json!("zh_TW"));

    // GIVEN a typo in a map column
    let typo = write(
        dir.path(),
        "typo.toml",
        "[[object]]\nsource = \"Contact.csv\"\nobject = \"contact\"\nid = \"Id\"\n\
         [object.columns]\nEmial = \"emails\"\n",
    );
    let run = migrate(
        &db,
        "salesforce",
        &export,
        &["--map", typo.to_str().unwrap()],
    );
    // THEN the run stops with the file, the column and a suggestion
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr.contains("typo.toml")
            && run.stderr.contains("'Emial'")
            && run.stderr.contains("did you mean 'Email'?"),
        "{}",
        run.stderr
    );

    // GIVEN `replace = true`: only the map file's columns apply
    let replace = write(
        dir.path(),
        "replace.toml",
        "replace = true\n[[object]]\nsource = \"Contact.csv\"\nobject = \"contact\"\nid = \"Id\"\n\
         [object.columns]\nLastName = \"family_name\"\nEmail = \"emails\"\n",
    );
    let other = tempfile::tempdir().unwrap();
    migrate(
        &db_in(other.path()),
        "salesforce",
        &export,
        &["--map", replace.to_str().unwrap()],
    )
    .expect_ok();
    let all = contacts(&db_in(other.path())).await;
    let mei = by_email(&all, "mei@example.tw");
    assert!(
        mei.phones.is_empty() && mei.given_name.is_none(),
        "{mei:#?}"
    );
    assert_eq!(mei.custom["Phone"], serde_json::json!("02 2345 6789"));
}

// --- 6. garbage ------------------------------------------------------------

#[tokio::test]
async fn garbage_is_not_a_csv_export() {
    let dir = tempfile::tempdir().unwrap();
    // Deterministic pseudo-random bytes.
    let mut x: u32 = 2463534242;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(dir.path().join("Contact.csv"), bytes).unwrap();
    let run = migrate(&db_in(dir.path()), "salesforce", dir.path(), &[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("Contact.csv") && run.stderr.contains("this is not a CSV/text export"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("id column"), "{}", run.stderr);
}

// --- 7. soft deletes, dry runs ---------------------------------------------

#[tokio::test]
async fn soft_deleted_rows_are_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Contact.csv",
        "Id,IsDeleted,LastName,Email\n\
         0035g00000JJJJJJ01,false,Lin,lin@example.tw\n\
         0035g00000JJJJJJ02,true,Wu,wu@example.tw\n",
    );
    let run = dry_then_real(dir.path(), "salesforce", dir.path(), &[]);
    assert_eq!(
        run.summary(),
        "read 2 rows: 1 new records, 0 duplicates merged into existing contacts, 0 already imported, 1 soft-deleted in the source (not imported), 0 invalid"
    );
    let again = migrate(&db_in(dir.path()), "salesforce", dir.path(), &[]).expect_ok();
    assert!(
        again
            .summary()
            .contains("1 already imported, 1 soft-deleted"),
        "{}",
        again.stdout
    );
}

#[tokio::test]
async fn dry_run_on_an_existing_store_predicts_the_next_run() {
    // GIVEN a store holding a first export, and a second export with one
    // new person and one duplicate (same email, another id) spread over pages
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    write(
        &first,
        "people.csv",
        "id,name,email\n1,陳大文,tai@example.hk\n",
    );
    let mut rows = String::from("id,name,email\n");
    for i in 0..30 {
        rows.push_str(&format!("{},Person {i},p{}@example.com\n", 100 + i, i % 20));
    }
    rows.push_str("2,陳大文,tai@example.hk\n");
    write(&second, "people.csv", &rows);
    let db = db_in(dir.path());
    migrate(&db, "csv", &first.join("people.csv"), &[]).expect_ok();
    // WHEN the second is dry-run with small pages, then run
    let csv = second.join("people.csv");
    let dry = migrate(&db, "csv", &csv, &["--dry-run", "--page-size", "7"]).expect_ok();
    let before = contacts(&db).await.len();
    let real = migrate(&db, "csv", &csv, &["--page-size", "7"]).expect_ok();
    // THEN the dry run wrote nothing and said exactly what the run did
    assert_eq!(before, 1);
    assert_eq!(dry.summary(), real.summary());
    assert!(
        real.summary()
            .starts_with("read 31 rows: 20 new records, 11 duplicates merged"),
        "{}",
        real.stdout
    );
}

// --- SuiteCRM: dry run = real run; converted leads (leads.contact_id) ------

/// Loads SuiteCRM 7 with data from a seed of this test's own into a MariaDB
/// database of its own; returns its URL and the generator's truth file.
async fn load_suitecrm() -> (String, serde_json::Value) {
    use sqlx::{Connection, Executor};
    const DB: &str = "synchub_migrate_exports_suitecrm";
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../connectors/synchub-legacy/tests/data/suitecrm");
    let dir = tempfile::tempdir().unwrap();
    let (sql, truth) = (dir.path().join("data.sql"), dir.path().join("truth.json"));
    let status = Command::new("python3")
        .arg(data.join("gen_suitecrm_data.py"))
        .args(["--seed", "2117", "--out"])
        .arg(&sql)
        .arg("--truth")
        .arg(&truth)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 is required to generate the SuiteCRM data");
    assert!(status.success(), "gen_suitecrm_data.py failed");
    let admin = std::env::var("SYNCHUB_TEST_MYSQL_URL")
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let mut conn = sqlx::MySqlConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("MariaDB is required for this test ({e})"));
    for stmt in [
        format!("DROP DATABASE IF EXISTS {DB}"),
        format!("CREATE DATABASE {DB} CHARACTER SET utf8mb3"),
        format!("USE {DB}"),
    ] {
        conn.execute(stmt.as_str()).await.unwrap();
    }
    let schema = std::fs::read_to_string(data.join("suitecrm7-core.sql")).unwrap();
    conn.execute(sqlx::raw_sql(&schema)).await.unwrap();
    let rows = std::fs::read_to_string(&sql).unwrap();
    conn.execute(sqlx::raw_sql(&rows)).await.unwrap();
    let truth = serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    (format!("{admin}/{DB}"), truth)
}

async fn surviving(store: &Store, crm_id: &str) -> String {
    let mut id = crm_id.to_string();
    while let Some(next) = store.record(&id).await.unwrap().and_then(|r| r.merged_into) {
        id = next;
    }
    id
}

#[tokio::test]
async fn suitecrm_dry_run_counts_equal_the_real_run_and_converted_leads_merge() {
    // GIVEN a SuiteCRM database from an unseen seed
    let (url, truth) = load_suitecrm().await;
    let dir = tempfile::tempdir().unwrap();
    // WHEN it is dry-run, then run: the same summary, no file from the dry run
    let run = dry_then_real(dir.path(), "suitecrm", Path::new(&url), &[]);
    assert!(
        run.summary().contains(" soft-deleted in the source"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("converted leads: "), "{}", run.stdout);
    // THEN every converted lead whose contact was imported is that contact
    let db = db_in(dir.path());
    let store = Store::connect(&db).await.unwrap();
    let pairs = truth["converted_leads"].as_array().unwrap();
    assert!(!pairs.is_empty());
    let ids: Vec<String> = pairs
        .iter()
        .flat_map(|p| {
            p.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    let links = synchub_store::links::by_external_ids(
        &mut tx,
        "migrate_suitecrm",
        ObjectKind::Contact,
        &ids,
    )
    .await
    .unwrap();
    drop(tx);
    let mut checked = 0;
    for pair in pairs {
        let (contact, lead) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        let (Some(c), Some(l)) = (links.get(contact), links.get(lead)) else {
            continue; // a soft-deleted contact or lead is not imported
        };
        if c.deleted || l.deleted {
            continue;
        }
        assert_eq!(
            surviving(&store, &c.crm_id).await,
            surviving(&store, &l.crm_id).await,
            "lead {lead} converted to contact {contact} is a separate person"
        );
        checked += 1;
    }
    assert!(
        checked * 2 > pairs.len(),
        "{checked} of {} pairs checked",
        pairs.len()
    );
    store.close().await;
    // AND a re-run imports and merges nothing new
    let again = migrate(&db, "suitecrm", Path::new(&url), &[]).expect_ok();
    assert!(
        again.summary().contains(": 0 new records, 0 duplicates"),
        "{}",
        again.stdout
    );
    assert!(
        again
            .stdout
            .contains("converted leads: 0 merged with the contact"),
        "{}",
        again.stdout
    );
}

// --- a re-run leaves unchanged legacy-id links as they were ----------------

async fn link_times(db: &str) -> Vec<(String, String)> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(db).await.unwrap();
    sqlx::query_as("SELECT external_id, updated_at FROM id_link ORDER BY external_id")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rerun_does_not_rewrite_unchanged_legacy_id_links() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "people.csv",
        "id,name,email,phone\n1,陳大文,tai@example.hk,+852 9123 4567\n2,Mei Lin,mei@example.tw,\n",
    );
    let db = db_in(dir.path());
    migrate(&db, "csv", &file, &[]).expect_ok();
    let before = link_times(&db).await;
    assert_eq!(before.len(), 2);
    // (link timestamps have microseconds: any rewrite shows)
    let again = migrate(&db, "csv", &file, &[]).expect_ok();
    assert!(
        again.summary().contains("2 already imported"),
        "{}",
        again.stdout
    );
    assert_eq!(link_times(&db).await, before);
}

// --- PostgreSQL: a dry run is a real run on a clone of the store -----------

/// Rows in every table of the store's schema.
async fn pg_counts(url: &str) -> Vec<(String, i64)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut counts = Vec::new();
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        counts.push((table, n));
    }
    // (closed, not dropped: cloning the store needs no session on it)
    conn.close().await.unwrap();
    counts
}

async fn pg_dry_run_clones(url: &str) -> Vec<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let names = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'synchub\\_dry\\_run\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    names
}

#[tokio::test]
async fn postgres_dry_run_predicts_the_real_run_and_leaves_the_store_untouched() {
    // GIVEN a PostgreSQL store holding a first import, and a second export
    // whose duplicates (same email, another id) fall on different pages
    let pg = synchub_testkit::db::TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let first = write(
        dir.path(),
        "first.csv",
        "id,name,email\n1,陳大文,tai@example.hk\n",
    );
    let mut rows = String::from("id,name,email\n");
    for i in 0..30 {
        rows.push_str(&format!("{},Person {i},p{}@example.com\n", 100 + i, i % 20));
    }
    rows.push_str("2,陳大文,tai@example.hk\n");
    let second = write(dir.path(), "second.csv", &rows);
    migrate(&pg.url, "csv", &first, &[]).expect_ok();
    let before = pg_counts(&pg.url).await;
    assert!(
        before.iter().any(|(t, n)| t == "crm_record" && *n == 1),
        "{before:?}"
    );

    // WHEN the second is dry-run with small pages
    let dry = migrate(&pg.url, "csv", &second, &["--dry-run", "--page-size", "7"]).expect_ok();

    // THEN the store is untouched, row for row, and no clone is left behind
    assert_eq!(pg_counts(&pg.url).await, before, "{}", dry.stdout);
    assert_eq!(pg_dry_run_clones(&pg.url).await, Vec::<String>::new());
    assert!(
        dry.stdout.contains("run on a temporary copy of the store"),
        "{}",
        dry.stdout
    );
    // AND the real run that follows prints the same summary: duplicates
    // across pages are merged in both, not counted as new
    let real = migrate(&pg.url, "csv", &second, &["--page-size", "7"]).expect_ok();
    assert_eq!(
        dry.summary(),
        real.summary(),
        "{}\n---\n{}",
        dry.stdout,
        real.stdout
    );
    assert!(
        real.summary()
            .starts_with("read 31 rows: 20 new records, 11 duplicates merged"),
        "{}",
        real.stdout
    );
    let leads = |run: &Run| {
        run.stdout
            .lines()
            .find(|l| l.starts_with("converted leads: "))
            .map(str::to_string)
    };
    assert_eq!(leads(&dry), leads(&real));
    assert_ne!(pg_counts(&pg.url).await, before, "the real run writes");
}

#[tokio::test]
async fn postgres_dry_run_with_another_session_on_the_store_says_so_and_writes_nothing() {
    use sqlx::Connection;
    // GIVEN a PostgreSQL store with a first import and a session held open on it
    let pg = synchub_testkit::db::TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "people.csv",
        "id,name,email\n1,陳大文,tai@example.hk\n",
    );
    migrate(&pg.url, "csv", &file, &[]).expect_ok();
    let before = pg_counts(&pg.url).await;
    let other = sqlx::PgConnection::connect(&pg.url).await.unwrap();
    // WHEN a dry run is asked for
    let dry = migrate(&pg.url, "csv", &file, &["--dry-run"]);
    other.close().await.unwrap();
    // THEN it fails naming the reason (the clone needs no other session)
    // and writes nothing (no clone was made: the CREATE DATABASE failed)
    assert!(!dry.ok, "{}", dry.stdout);
    assert!(
        dry.stderr.contains("other session(s) are connected"),
        "{}",
        dry.stderr
    );
    assert_eq!(pg_counts(&pg.url).await, before);
}

// --- vtiger: a converted lead is its contact --------------------------------

#[tokio::test]
async fn vtiger_converted_lead_and_its_contact_become_one_record() {
    use sqlx::{Connection, Executor};
    const DB: &str = "synchub_migrate_exports_vtiger";
    // GIVEN the small vtiger database: lead 33 (converted = 1) and contact 35,
    // which its conversion created (vtiger keeps no link, only the e-mail)
    let admin = std::env::var("SYNCHUB_TEST_MYSQL_URL")
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let mut conn = sqlx::MySqlConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("MariaDB is required for this test ({e})"));
    for stmt in [
        format!("DROP DATABASE IF EXISTS {DB}"),
        format!("CREATE DATABASE {DB} CHARACTER SET utf8mb4"),
        format!("USE {DB}"),
    ] {
        conn.execute(stmt.as_str()).await.unwrap();
    }
    let sql = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../connectors/synchub-legacy/tests/data/vtiger-mini.sql"),
    )
    .unwrap();
    conn.execute(sqlx::raw_sql(&sql)).await.unwrap();
    conn.close().await.unwrap();
    let url = format!("{admin}/{DB}");
    let dir = tempfile::tempdir().unwrap();

    // WHEN it is dry-run, then run, two rows a page
    let run = dry_then_real(dir.path(), "vtiger", Path::new(&url), &["--page-size", "2"]);

    // THEN the lead and its contact are one record
    assert!(run.stdout.contains("converted leads: "), "{}", run.stdout);
    let store = Store::connect(&db_in(dir.path())).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let links = synchub_store::links::by_external_ids(
        &mut tx,
        "migrate_vtiger",
        ObjectKind::Contact,
        &["33".to_string(), "35".to_string()],
    )
    .await
    .unwrap();
    drop(tx);
    let (lead, contact) = (&links["33"], &links["35"]);
    let survivor = surviving(&store, &contact.crm_id).await;
    assert_eq!(surviving(&store, &lead.crm_id).await, survivor);
    let record = store.record(&survivor).await.unwrap().unwrap();
    let Record::Contact(person) = record.record else {
        panic!("record {survivor} is not a contact")
    };
    assert_eq!(person.emails, ["mei.ling@dingxin.example.com.tw"]);
    assert_eq!(person.full_name.as_deref(), Some("林美玲"));
    store.close().await;
}
