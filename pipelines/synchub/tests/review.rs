//! The probabilistic tier after `synchub migrate`: a person exported twice
//! with no exact key in common (another email, another phone, the name
//! written two ways) but the same street address and birth date becomes one
//! contact through the matcher,
//! with the merge and its evidence kept; the review queue can be listed,
//! inspected and decided from the command line; a second run changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use synchub_core::{ObjectKind, Record};
use synchub_testkit::TestDb;

const GIVEN: &[&str] = &[
    "Wei", "Mei", "Jun", "Hao", "Ling", "Yu", "Ting", "Kai", "Xin", "Min", "Anna", "David",
    "Grace", "Kevin", "Iris", "Oscar",
];
const FAMILY: &[&str] = &[
    "Lin", "Wang", "Huang", "Zhang", "Liu", "Yang", "Wu", "Cai", "Xu", "Zheng", "Smith", "Garcia",
    "Kim", "Nguyen",
];
const CITY: &[&str] = &[
    "Taipei",
    "Taichung",
    "Kaohsiung",
    "Hong Kong",
    "Shenzhen",
    "Tainan",
];

fn write_export(path: &Path) {
    let mut csv =
        String::from("id,first_name,last_name,email,phone,company,street,city,country,birthday\n");
    for i in 0..400u32 {
        let g = GIVEN[(i as usize * 7) % GIVEN.len()];
        let f = FAMILY[(i as usize * 11 + i as usize / 5) % FAMILY.len()];
        writeln!(
            csv,
            "L{i},{g},{f},{}.{}{i}@mail{}.example,+8869{:08},Company {},,{},TW,",
            g.to_lowercase(),
            f.to_lowercase(),
            i % 9,
            10_000_000 + i * 7919,
            i % 37,
            CITY[i as usize % CITY.len()]
        )
        .unwrap();
    }
    // The same person twice: another email and another phone (a work and a
    // private contact), but the name (written two ways), the street address
    // and the birth date agree.
    csv.push_str("D1,Chih-Hao,Kuo,chihhao.kuo@formosa-trading.tw,+886 2 2700 1234,Formosa Trading Co,\"No. 5, Sec. 1, Xinyi Rd.\",Taipei,TW,1979-03-14\n");
    csv.push_str(
        "D2,Chihhao,Kuo,ck.kuo@gmail.example,0933-456-789,Formosa Trading Co.,\"No. 5, Sec. 1, Xinyi Rd.\",Taipei,TW,1979-03-14\n",
    );
    // Likely the same (the name, the city; the second row has no phone, no
    // birth date and another email) but not sure: a person decides.
    csv.push_str("R1,Mei-Ling,Tsai,ml.tsai@a.example,+886 912 000 111,Sunrise Bakery,,Tainan,TW,1985-07-02\n");
    csv.push_str("R2,Meiling,Tsai,meiling@b.example,,,,Tainan,TW,\n");
    // Same name, different everything else: kept apart. (With a different
    // email and a different phone and nothing strong in common, a shared
    // name is not even a question: issue 13's two Tai Man Chans.)
    csv.push_str("R3,Yi-Ting,Hsu,yt.hsu@c.example,+886 918 000 333,Blue Harbor Ltd,,Keelung,TW,\n");
    csv.push_str("R4,Yiting,Hsu,hsu.yt@d.example,+886 919 000 444,Green Field Ltd,,Hsinchu,TW,\n");
    std::fs::write(path, csv).unwrap();
}

fn synchub(db: &str, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_DATABASE_URL", db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "synchub {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn scenario(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    write_export(&csv);
    let db = TestDb::of(backend).await;
    let out = synchub(&db.url, &["migrate", "csv", csv.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("read 406 rows: 406 new records"), "{text}");
    assert!(
        text.contains("probabilistic matching over 406 contacts"),
        "{text}"
    );

    // D1 and D2 are one contact now; the other 400 people stay apart.
    let store = db.store().await;
    let live = store.records(ObjectKind::Contact, false).await.unwrap();
    let kuo: Vec<_> = live
        .iter()
        .filter(|r| match &r.record {
            Record::Contact(c) => c.family_name.as_deref() == Some("Kuo"),
            _ => false,
        })
        .collect();
    assert_eq!(
        kuo.len(),
        1,
        "the two Kuo rows should be one contact:\n{text}"
    );
    let Record::Contact(golden) = &kuo[0].record else {
        unreachable!()
    };
    // Every source value stays on the golden record.
    assert_eq!(golden.emails.len(), 2, "{golden:?}");
    assert_eq!(golden.phones.len(), 2, "{golden:?}");
    assert!(
        live.len() >= 399,
        "{} contacts: the matcher merged distinct people",
        live.len()
    );
    let merges = store.merges(false).await.unwrap();
    assert!(!merges.is_empty());
    assert!(
        merges.iter().any(|m| m.detail.survivor == kuo[0].id),
        "the merge history names the survivor"
    );

    // The review queue holds the Tsai pair, with evidence, and is decided
    // from the command line.
    let family = |id: &str| {
        live.iter()
            .find(|r| r.id == id)
            .and_then(|r| match &r.record {
                Record::Contact(c) => c.family_name.clone(),
                _ => None,
            })
            .unwrap_or_default()
    };
    let open = store.reviews(false).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        (family(&open[0].left_id), family(&open[0].right_id)),
        ("Tsai".to_string(), "Tsai".to_string())
    );
    assert!(open[0].probability > 0.5 && open[0].probability < 0.99);
    let id = open[0].id.to_string();
    let listed = String::from_utf8_lossy(&synchub(&db.url, &["review", "list"]).stdout).to_string();
    assert!(
        listed.contains(&format!("#{id}")) && listed.contains("Mei-Ling Tsai"),
        "{listed}"
    );
    let json = synchub(&db.url, &["review", "list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("review list json");
    assert_eq!(v["reviews"][0]["id"].to_string(), id, "{v}");
    assert!(v["reviews"][0]["probability"].as_f64().is_some(), "{v}");
    let shown =
        String::from_utf8_lossy(&synchub(&db.url, &["review", "show", &id]).stdout).to_string();
    assert!(
        shown.contains("evidence") && shown.contains("name"),
        "{shown}"
    );
    synchub(&db.url, &["review", "merge", &id]);
    assert!(store.reviews(false).await.unwrap().is_empty());
    let tsai = store
        .records(ObjectKind::Contact, false)
        .await
        .unwrap()
        .into_iter()
        .filter(
            |r| matches!(&r.record, Record::Contact(c) if c.family_name.as_deref() == Some("Tsai")),
        )
        .count();
    assert_eq!(tsai, 1, "the reviewed pair is one contact now");
    let decided = store.reviews(true).await.unwrap();
    assert_eq!(decided[0].status, "merged");

    // A second run of the same migration changes nothing.
    let before = store.canonical_dump().await.unwrap();
    let merges_before = store.merges(true).await.unwrap().len();
    let again = synchub(&db.url, &["migrate", "csv", csv.to_str().unwrap()]);
    let again = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.contains("0 new records"), "{again}");
    assert!(again.contains("0 merged as the same person"), "{again}");
    let after = store.canonical_dump().await.unwrap();
    let data = |d: &[String]| -> Vec<String> {
        d.iter()
            .filter(|l| !l.starts_with("sync_cursor|"))
            .cloned()
            .collect()
    };
    assert_eq!(data(&before), data(&after));
    assert_eq!(store.merges(true).await.unwrap().len(), merges_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn fuzzy_duplicate_is_merged_after_migration_sqlite() {
    scenario("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fuzzy_duplicate_is_merged_after_migration_postgres() {
    scenario("postgres").await;
}
