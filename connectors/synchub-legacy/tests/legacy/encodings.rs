//! Big5, GBK and UTF-16 exports generated from UTF-8 sources at test time,
//! each with one row whose bytes cannot be decoded.

use std::path::Path;

use serde_json::json;
use synchub_core::ObjectKind;
use synchub_legacy::encoding::{encode_text, FileEncoding};
use synchub_legacy::{build, EncodingChoice, LegacyOptions};

use crate::{contact, data, drain, opts};

/// Encodes a UTF-8 source file, replacing `bad` (ASCII) by bytes invalid in the target.
fn write_encoded(
    src: &str,
    dest: &Path,
    encoding: FileEncoding,
    bom: &[u8],
    bad: &str,
    invalid: &[u8],
) {
    let text = std::fs::read_to_string(data(src)).expect("source");
    let mut bytes = bom.to_vec();
    let encoded = encode_text(&text, encoding).expect("encodable");
    let needle = encode_text(bad, encoding).expect("encodable");
    let at = encoded
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("marker");
    bytes.extend_from_slice(&encoded[..at]);
    bytes.extend_from_slice(invalid);
    bytes.extend_from_slice(&encoded[at + needle.len()..]);
    std::fs::write(dest, bytes).expect("write");
}

#[tokio::test]
async fn big5_csv_with_mapping_file_reports_the_undecodable_row() {
    // GIVEN a Big5 customer list with Chinese headers, a mapping file, and one row with bytes that are not Big5
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("customers.csv");
    write_encoded(
        "src/big5-customers.csv",
        &file,
        FileEncoding::Ascii(encoding_rs::BIG5),
        &[],
        "BAD",
        &[0xFF, 0x41],
    );
    let mut o = opts(3);
    o.map_file = Some(data("customers-map.toml"));
    // WHEN it is read with encoding detection
    let conn = build("csv", file.to_str().expect("path"), o).expect("build");
    let all = drain(conn.as_ref(), ObjectKind::Contact, None).await;
    // THEN 5 customers, the bad row and the row without an id are reported
    assert_eq!(all.records.len(), 5);
    assert_eq!(
        all.locations(),
        vec![
            "customers.csv row 4 (line 5)",
            "customers.csv row 6 (line 8)"
        ]
    );
    assert!(
        all.rejected[0]
            .reason
            .starts_with("column '姓名' is not valid big5"),
        "{}",
        all.rejected[0].reason
    );
    assert_eq!(all.rejected[1].reason, "empty id column '客戶編號'");
    let c = contact(all.get("C001"));
    assert_eq!(
        (c.family_name.as_deref(), c.given_name.as_deref()),
        (Some("陳"), Some("大文"))
    );
    assert_eq!(c.phones, vec!["+886912345678"]);
    assert_eq!(c.custom["tier"], json!("gold"));
    assert_eq!(c.custom["備註"], json!("老客戶"));
    assert_eq!(c.tags, vec!["legacy-pos"]);
    let nana = contact(all.get("C002"));
    assert_eq!(
        (nana.family_name.as_deref(), nana.given_name.as_deref()),
        (Some("歐陽"), Some("娜娜"))
    );
    let sima = contact(all.get("C003"));
    assert_eq!(
        (sima.family_name.as_deref(), sima.given_name.as_deref()),
        (Some("司馬"), Some("光"))
    );
    assert_eq!(contact(all.get("C005")).custom["備註"], json!("多行\n備註"));
    assert_eq!(contact(all.get("C007")).family_name.as_deref(), Some("陳"));
}

#[tokio::test]
async fn gbk_zoho_export_is_detected_and_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("Contacts_2024_05_15.csv");
    write_encoded(
        "src/zoho-contacts.csv",
        &file,
        FileEncoding::Ascii(encoding_rs::GB18030),
        &[],
        "BAD",
        &[0xFF],
    );
    for choice in [EncodingChoice::Auto, EncodingChoice::Gbk] {
        let o = LegacyOptions {
            encoding: choice,
            ..opts(2)
        };
        let conn = build("zoho", dir.path().to_str().expect("path"), o).expect("build");
        let all = drain(conn.as_ref(), ObjectKind::Contact, None).await;
        assert_eq!(all.records.len(), 4, "{choice:?}");
        assert_eq!(
            all.locations(),
            vec!["Contacts_2024_05_15.csv row 3 (line 4)"]
        );
        assert!(
            all.rejected[0].reason.contains("is not valid gb18030"),
            "{}",
            all.rejected[0].reason
        );
        let c = contact(all.get("zcrm_4000001"));
        assert_eq!(c.company.as_deref(), Some("华为技术有限公司"));
        assert_eq!(c.phones, vec!["+862162345678", "+8613800138000"]);
        assert_eq!(c.custom["客戶等級"], json!("VIP"));
        assert_eq!(
            contact(all.get("zcrm_4000002")).accepts_marketing,
            Some(false)
        );
        assert_eq!(
            contact(all.get("zcrm_4000004")).phones,
            vec!["+85261234567"]
        );
    }
}

#[tokio::test]
async fn utf16_pipedrive_export_with_a_lone_surrogate() {
    // GIVEN a UTF-16LE (BOM) Pipedrive people export; row 4 holds an unpaired surrogate
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("people-export.csv");
    write_encoded(
        "src/pipedrive-people.csv",
        &file,
        FileEncoding::Utf16Le,
        &[0xFF, 0xFE],
        "BAD",
        &[0x00, 0xD8],
    );
    let conn = build("pipedrive", dir.path().to_str().expect("path"), opts(2)).expect("build");
    let all = drain(conn.as_ref(), ObjectKind::Contact, None).await;
    assert_eq!(all.records.len(), 3);
    assert_eq!(all.locations(), vec!["people-export.csv row 4 (line 5)"]);
    assert!(
        all.rejected[0].reason.contains("is not valid utf-16le"),
        "{}",
        all.rejected[0].reason
    );
    let c = contact(all.get("1"));
    assert_eq!(
        (c.family_name.as_deref(), c.given_name.as_deref()),
        (Some("陳"), Some("大文"))
    );
    assert_eq!(c.tags, vec!["Hot lead", "VIP"]);
    assert_eq!(c.custom["Person - 生日"], json!("1980-02-29"));
    let chan = contact(all.get("2"));
    assert_eq!(
        (chan.family_name.as_deref(), chan.given_name.as_deref()),
        (Some("Man"), Some("Chan Tai"))
    );
    // Resume in the middle of a UTF-16 file is exact too.
    let rest = drain(
        conn.as_ref(),
        ObjectKind::Contact,
        Some(all.cursors[0].clone()),
    )
    .await;
    assert_eq!(rest.records[..], all.records[2..]);
}
