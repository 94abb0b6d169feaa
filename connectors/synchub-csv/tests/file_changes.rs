//! The CSV source against a file edited between runs, repeated ids and
//! values too long for an index: nothing is skipped without a word, and
//! nothing is made up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use synchub_core::{Connector, Cursor, ObjectKind, Rejected};
use synchub_csv::{CsvConfig, CsvSource};

fn source(path: &Path, page_size: usize) -> CsvSource {
    CsvSource::build(
        CsvConfig {
            path: path.to_path_buf(),
            id_column: Some("id".into()),
            map: BTreeMap::from([
                ("name".to_string(), "full_name".to_string()),
                ("email".to_string(), "email".to_string()),
            ]),
            delimiter: None,
            page_size: Some(page_size),
            date_region: None,
            encoding: None,
        },
        None,
    )
    .unwrap()
}

fn rows(n: u64) -> String {
    let mut s = String::from("id,name,email\n");
    for i in 1..=n {
        s.push_str(&format!("{i},Person {i:03},p{i}@example.com\n"));
    }
    s
}

/// Every page from `from` to the end: (id, name) served, rejects, cursor.
async fn read_all(
    src: &CsvSource,
    from: Option<Cursor>,
) -> (Vec<(String, String)>, Vec<Rejected>, Option<Cursor>) {
    let mut cursor = from;
    let mut served = Vec::new();
    let mut rejected = Vec::new();
    loop {
        let page = src
            .pull(ObjectKind::Contact, cursor.as_ref())
            .await
            .unwrap();
        for r in &page.records {
            let name = r
                .record
                .as_ref()
                .and_then(|x| x.as_contact())
                .and_then(|c| c.full_name.clone())
                .unwrap_or_default();
            served.push((r.external_id.clone(), name));
        }
        rejected.extend(page.rejected);
        if page.next.is_some() {
            cursor = page.next;
        }
        if page.done {
            return (served, rejected, cursor);
        }
    }
}

/// GIVEN a file read to the end
/// WHEN a row already read is edited without changing the file's length
/// THEN the next read from the stored cursor reads the file again and
///      serves the edit (it used to read nothing: the edit was lost).
#[tokio::test]
async fn same_length_edit_of_a_read_row_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    std::fs::write(&path, rows(30)).unwrap();
    let (served, _, cursor) = read_all(&source(&path, 7), None).await;
    assert_eq!(served.len(), 30);

    let edited = rows(30).replace("Person 012", "Persan 012");
    assert_eq!(edited.len(), rows(30).len());
    std::fs::write(&path, edited).unwrap();
    // A new process (a new source) resumes from the stored cursor.
    let (served, rejected, _) = read_all(&source(&path, 7), cursor).await;
    assert!(rejected.is_empty(), "{rejected:?}");
    assert!(
        served.contains(&("12".to_string(), "Persan 012".to_string())),
        "{served:?}"
    );
}

/// GIVEN a file read to the end
/// WHEN a row already read grows by 3 bytes
/// THEN the next read serves the edit and rejects nothing (it used to reject
///      a made-up row: "invalid UTF-8" at an offset now inside a row).
#[tokio::test]
async fn growing_edit_of_a_read_row_makes_no_false_reject() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    std::fs::write(&path, rows(60)).unwrap();
    let src = source(&path, 25);
    let (_, _, cursor) = read_all(&src, None).await;
    std::fs::write(&path, rows(60).replace("Person 003", "Person 003 陳")).unwrap();
    let (served, rejected, _) = read_all(&src, cursor).await;
    assert!(rejected.is_empty(), "{rejected:?}");
    assert!(
        served.contains(&("3".to_string(), "Person 003 陳".to_string())),
        "{served:?}"
    );
    assert_eq!(served.len(), 60, "the whole file is served again");
}

/// GIVEN a file read to the end
/// WHEN rows are appended (the read prefix unchanged), or nothing changes
/// THEN only the new rows are read; an untouched file reads nothing.
#[tokio::test]
async fn appended_rows_are_read_alone_and_an_untouched_file_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    std::fs::write(&path, rows(20)).unwrap();
    let (_, _, cursor) = read_all(&source(&path, 6), None).await;
    let (served, _, cursor) = read_all(&source(&path, 6), cursor).await;
    assert!(served.is_empty(), "{served:?}");
    std::fs::write(&path, rows(23)).unwrap();
    let (served, rejected, _) = read_all(&source(&path, 6), cursor).await;
    assert!(rejected.is_empty(), "{rejected:?}");
    let ids: Vec<&str> = served.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["21", "22", "23"]);
}

/// GIVEN a file where row 9 repeats the id of row 2, on another page
/// WHEN it is read in one go, and when a new process resumes between them
/// THEN the later row is rejected naming both rows, and the first person
///      is served untouched.
#[tokio::test]
async fn a_repeated_id_is_rejected_naming_both_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    let mut text = rows(8);
    text.push_str("2,Someone Else,else@example.com\n");
    std::fs::write(&path, text).unwrap();
    let check = |served: &[(String, String)], rejected: &[Rejected]| {
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        let r = &rejected[0];
        assert_eq!(r.external_id.as_deref(), Some("2"));
        assert!(
            r.location.as_deref().unwrap().ends_with("people.csv row 9"),
            "{r:?}"
        );
        assert!(
            r.reason.contains("duplicate id `2`") && r.reason.contains("row 2 has it too"),
            "{}",
            r.reason
        );
        assert!(served.contains(&("2".to_string(), "Person 002".to_string())));
        assert!(!served.iter().any(|(_, n)| n == "Someone Else"));
    };
    let (served, rejected, _) = read_all(&source(&path, 4), None).await;
    check(&served, &rejected);

    // Resumed by a new process after the first page.
    let first = source(&path, 4);
    let page = first.pull(ObjectKind::Contact, None).await.unwrap();
    let (mut more, rejected, _) = read_all(&source(&path, 4), page.next).await;
    more.push(("2".to_string(), "Person 002".to_string()));
    check(&more, &rejected);
}

/// GIVEN a row whose id and another whose email is 5 MB long
/// WHEN the file is read
/// THEN each is rejected with its row and column, and the others are served.
#[tokio::test]
async fn values_too_long_for_an_index_are_rejected_with_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    let huge = "x".repeat(5 * 1024 * 1024);
    let text = format!(
        "id,name,email\n1,A,a@example.com\n{huge},B,b@example.com\n3,C,{huge}@example.com\n4,D,d@example.com\n"
    );
    std::fs::write(&path, text).unwrap();
    let (served, rejected, _) = read_all(&source(&path, 10), None).await;
    let ids: Vec<&str> = served.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["1", "4"]);
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected[0].location.as_deref().unwrap().ends_with("row 2"));
    assert!(
        rejected[0]
            .reason
            .starts_with("column `id`: a value of 5242880 bytes"),
        "{}",
        rejected[0].reason
    );
    assert!(rejected[1].location.as_deref().unwrap().ends_with("row 3"));
    assert!(
        rejected[1].reason.starts_with("column `email`"),
        "{}",
        rejected[1].reason
    );
}

/// Birth dates as Taiwanese exports write them: a 民國 year (`74/05/06` is
/// 1985-05-06) read by the row's own country or the source's
/// `date_region`; an ambiguous one without either is refused, naming the
/// row, the column and the forms accepted.
#[tokio::test]
async fn roc_and_regional_birth_dates_are_read_or_refused_with_the_row_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    std::fs::write(
        &path,
        "id,name,country,birthday\n\
         1,陳大文,TW,74/05/06\n\
         2,林小美,,民國79年5月12日\n\
         3,Chan Tai Man,HK,06/05/1985\n\
         4,No Country,,06/05/1985\n\
         5,Bad,,19xx-01-01\n",
    )
    .unwrap();
    let build = |region: Option<&str>| {
        CsvSource::build(
            CsvConfig {
                path: path.clone(),
                id_column: Some("id".into()),
                map: BTreeMap::from([
                    ("name".to_string(), "full_name".to_string()),
                    ("country".to_string(), "country".to_string()),
                    ("birthday".to_string(), "birth_date".to_string()),
                ]),
                delimiter: None,
                page_size: Some(100),
                date_region: region.map(str::to_string),
                encoding: None,
            },
            None,
        )
        .unwrap()
    };
    let birth = |page: &synchub_core::Page, id: &str| {
        page.records
            .iter()
            .find(|r| r.external_id == id)
            .and_then(|r| r.record.as_ref())
            .and_then(|r| r.as_contact())
            .and_then(|c| c.birth_date)
            .map(|d| d.to_string())
    };
    let page = build(None).pull(ObjectKind::Contact, None).await.unwrap();
    assert_eq!(birth(&page, "1").as_deref(), Some("1985-05-06"));
    assert_eq!(birth(&page, "2").as_deref(), Some("1990-05-12"));
    assert_eq!(birth(&page, "3").as_deref(), Some("1985-05-06"));
    let refused: Vec<&Rejected> = page.rejected.iter().collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    let four = refused
        .iter()
        .find(|r| r.external_id.as_deref() == Some("4"))
        .unwrap();
    assert!(
        four.reason.contains("birthday") && four.reason.contains("date_region"),
        "{}",
        four.reason
    );
    assert!(refused
        .iter()
        .any(|r| r.external_id.as_deref() == Some("5")));
    // With a default region the day-first date reads.
    let page = build(Some("GB"))
        .pull(ObjectKind::Contact, None)
        .await
        .unwrap();
    assert_eq!(birth(&page, "4").as_deref(), Some("1985-05-06"));
    // A region that is not one is a configuration error.
    let bad = CsvSource::build(
        CsvConfig {
            path: path.clone(),
            id_column: None,
            map: BTreeMap::new(),
            delimiter: None,
            page_size: None,
            date_region: Some("Taiwan".into()),
            encoding: None,
        },
        None,
    )
    .unwrap_err();
    assert!(bad.to_string().contains("date_region"), "{bad}");
}

/// A Big5 export (as Taiwanese Excel writes it) read with `encoding =
/// "big5"` and with `encoding = "auto"`; without it, the rows are refused
/// naming the setting to use, not mangled.
#[tokio::test]
async fn a_big5_file_reads_with_its_encoding_or_auto_and_is_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big5.csv");
    let text = "id,姓名,電話\n1,陳大文,0912-345-678\n2,林小美,02-2345-6789\n";
    let (bytes, _, bad) = encoding_rs::BIG5.encode(text);
    assert!(!bad);
    std::fs::write(&path, &bytes).unwrap();
    let build = |encoding: Option<&str>| {
        CsvSource::build(
            CsvConfig {
                path: path.clone(),
                id_column: Some("id".into()),
                map: BTreeMap::from([
                    ("姓名".to_string(), "full_name".to_string()),
                    ("電話".to_string(), "phone".to_string()),
                ]),
                delimiter: None,
                page_size: Some(10),
                date_region: None,
                encoding: encoding.map(str::to_string),
            },
            None,
        )
        .unwrap()
    };
    for setting in ["big5", "auto"] {
        let (served, rejected, _) = read_all(&build(Some(setting)), None).await;
        assert!(rejected.is_empty(), "{setting}: {rejected:?}");
        assert_eq!(
            served,
            vec![
                ("1".to_string(), "陳大文".to_string()),
                ("2".to_string(), "林小美".to_string())
            ],
            "{setting}"
        );
    }
    // Read as UTF-8 the header itself does not decode: one clear error.
    let err = build(None)
        .pull(ObjectKind::Contact, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not valid UTF-8") && err.contains("encoding"),
        "{err}"
    );
    // An encoding that is not ASCII-compatible is refused with the way out.
    let e = CsvSource::build(
        CsvConfig {
            path: path.clone(),
            id_column: None,
            map: BTreeMap::new(),
            delimiter: None,
            page_size: None,
            date_region: None,
            encoding: Some("utf-16le".into()),
        },
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("migrate"), "{e}");
}
