//! One mapping vocabulary (issue 20): a pipeline's csv `map` and a
//! `synchub migrate --map` file take the same field names — the canonical
//! ones (`given_name`, `emails`, `address.city`, the names `[merge] fields`
//! uses) and the older spellings as deprecated aliases (`first_name`,
//! `email`, `city`) — and store the same contact from the same row either
//! way. Through the binary, both paths, both spellings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use synchub_core::{Contact, ObjectKind, Record};
use synchub_store::Store;

const CSV: &str = "Id,First,Last,Mail,Mobile,Town,Nation,Zip,Street\n\
                   1,大文,陳,tai.man@example.com.tw,0912-345-678,台北市,TW,100,忠孝東路一段1號\n";

/// Column → field, in one of the two spellings.
fn columns(canonical: bool) -> Vec<(&'static str, &'static str)> {
    let names = if canonical {
        [
            "given_name",
            "family_name",
            "emails",
            "phones",
            "address.city",
            "address.country",
            "address.postal_code",
            "address.line1",
        ]
    } else {
        [
            "first_name",
            "last_name",
            "email",
            "phone",
            "city",
            "country",
            "postal_code",
            "address_line1",
        ]
    };
    [
        "First", "Last", "Mail", "Mobile", "Town", "Nation", "Zip", "Street",
    ]
    .into_iter()
    .zip(names)
    .collect()
}

fn synchub(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env(
            "SYNCHUB_DATABASE_URL",
            format!("sqlite://{}", dir.join("store.db").display()),
        )
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "synchub {args:?} failed:\n{text}");
    text
}

async fn the_contact(dir: &Path) -> Contact {
    let store = Store::connect(&format!("sqlite://{}", dir.join("store.db").display()))
        .await
        .unwrap();
    let all = store.records(ObjectKind::Contact, false).await.unwrap();
    store.close().await;
    let mut contacts: Vec<Contact> = all
        .into_iter()
        .filter_map(|r| match r.record {
            Record::Contact(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    contacts.remove(0)
}

/// What both paths must have stored from the row.
fn assert_mapped(c: &Contact, how: &str) {
    assert_eq!(c.given_name.as_deref(), Some("大文"), "{how}: {c:?}");
    assert_eq!(c.family_name.as_deref(), Some("陳"), "{how}: {c:?}");
    assert_eq!(c.emails, ["tai.man@example.com.tw"], "{how}: {c:?}");
    assert_eq!(c.phones, ["+886912345678"], "{how}: {c:?}");
    let a = c
        .addresses
        .first()
        .unwrap_or_else(|| panic!("{how}: {c:?}"));
    assert_eq!(a.city.as_deref(), Some("台北市"), "{how}: {c:?}");
    assert_eq!(a.postal_code.as_deref(), Some("100"), "{how}: {c:?}");
    assert_eq!(a.line1.as_deref(), Some("忠孝東路一段1號"), "{how}: {c:?}");
    assert!(a.country.is_some(), "{how}: {c:?}");
}

async fn through_pipeline(canonical: bool) -> (Contact, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), CSV).unwrap();
    let map: String = columns(canonical)
        .iter()
        .map(|(col, field)| format!("\"{col}\" = \"{field}\"\n"))
        .collect();
    let pipeline = format!(
        "version = 1\nname = \"vocab\"\n\n[[connections]]\nname = \"people\"\nkind = \"csv\"\n\
         direction = \"pull\"\nregion = \"TW\"\n\n[connections.config]\npath = \"people.csv\"\n\
         id_column = \"Id\"\n\n[connections.config.map]\n{map}"
    );
    std::fs::write(dir.path().join("vocab.toml"), pipeline).unwrap();
    let dir_path = dir.path().to_path_buf();
    let checked = tokio::task::spawn_blocking(move || {
        let out = synchub(&dir_path, &["check", "vocab.toml"]);
        synchub(&dir_path, &["run", "--once", "vocab.toml"]);
        out
    })
    .await
    .unwrap();
    (the_contact(dir.path()).await, checked)
}

async fn through_migrate(canonical: bool) -> Contact {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), CSV).unwrap();
    let cols: String = columns(canonical)
        .iter()
        .map(|(col, field)| format!("\"{col}\" = \"{field}\"\n"))
        .collect();
    let map = format!(
        "default_region = \"TW\"\nreplace = true\n\n[[object]]\nsource = \"people.csv\"\n\
         object = \"contact\"\nid = \"Id\"\n[object.columns]\n{cols}"
    );
    std::fs::write(dir.path().join("map.toml"), map).unwrap();
    let dir_path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        synchub(
            &dir_path,
            &["migrate", "csv", "people.csv", "--map", "map.toml"],
        )
    })
    .await
    .unwrap();
    the_contact(dir.path()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_csv_map_takes_the_canonical_names_and_the_old_ones() {
    let (canonical, notes) = through_pipeline(true).await;
    assert_mapped(&canonical, "csv map, canonical names");
    assert!(!notes.contains("deprecated"), "{notes}");
    let (old, notes) = through_pipeline(false).await;
    assert_mapped(&old, "csv map, old names");
    // `synchub check` names the canonical spelling of each old one
    assert!(
        notes.contains("`city` is a deprecated alias of `address.city`"),
        "{notes}"
    );
    assert!(
        notes.contains("`email` is a deprecated alias of `emails`"),
        "{notes}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migrate_map_takes_the_same_names() {
    assert_mapped(&through_migrate(true).await, "migrate map, canonical names");
    assert_mapped(&through_migrate(false).await, "migrate map, old names");
}

#[test]
fn every_name_of_the_vocabulary_is_taken_by_both_parsers() {
    let contact = |field: &str| {
        format!(
            "[[object]]\nsource = \"x.csv\"\nobject = \"contact\"\nid = \"Id\"\n\
             [object.columns]\n\"Column\" = {field:?}\n"
        )
    };
    let names = synchub_csv::CANONICAL
        .iter()
        .copied()
        .filter(|n| *n != "id")
        .chain(synchub_csv::ALIASES.iter().map(|(alias, _)| *alias));
    for name in names {
        assert!(
            synchub_csv::ContactField::parse(name).is_some(),
            "csv map refuses `{name}`"
        );
        assert!(
            synchub_legacy::Mapping::parse(&contact(name), "test").is_ok(),
            "migrate map refuses `{name}`"
        );
    }
    // and an alias maps to the field its canonical name does
    for (alias, canonical) in synchub_csv::ALIASES {
        assert_eq!(
            synchub_csv::ContactField::parse(alias),
            synchub_csv::ContactField::parse(canonical),
            "{alias}"
        );
    }
    assert!(synchub_csv::ContactField::parse("emial").is_none());
    assert!(synchub_legacy::Mapping::parse(&contact("emial"), "test").is_err());
}
