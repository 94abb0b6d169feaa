//! Tests for the CSV dedupe driver.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

fn read(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn links_across_sources_and_keeps_every_row() {
    // GIVEN two sources describing 陳大文 differently, and a bad row
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(
        dir.path(),
        "crm.csv",
        "id,Name,Email,Mobile,Birthday\nA1,陳大文,TaiMan@Example.com,0912-345-678,1980-02-03\nA2,Jane Doe,jane@doe.org,,\nA3,,,,not-a-date\n",
    );
    let b = write(
        dir.path(),
        "shop.csv",
        "first,last,mail,tel\nTai Man,Chan,taiman@example.com,+886 912 345 678\nJohn,Doe,john@doe.org,\n\"broken,row\n",
    );
    let out = dir.path().join("out.csv");
    let opts = DedupeOptions {
        inputs: vec![
            DedupeInput {
                path: a.clone(),
                source: None,
            },
            DedupeInput {
                path: b,
                source: Some("shop".into()),
            },
        ],
        map: vec![],
        region: Some("tw".into()),
        output: out.clone(),
        config: MatchConfig::default(),
    };
    // WHEN deduped
    let summary = dedupe_csv(&opts).expect("dedupe");
    // THEN every row appears once, with its id or row number
    let rows = read(&out);
    assert_eq!(rows[0], vec!["source", "source_id", "cluster_id"]);
    let ids: Vec<(String, String)> = rows[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(summary.rows, rows.len() - 1);
    let report = summary
        .matcher
        .as_ref()
        .expect("fitted parameters in the summary");
    assert_eq!(report.candidate_pairs, summary.candidate_pairs);
    assert_eq!(report.review_pairs, summary.review_pairs);
    assert!(ids.contains(&("crm".into(), "A1".into())));
    assert!(ids.contains(&("shop".into(), "1".into())));
    assert!(
        ids.contains(&("shop".into(), "3".into())),
        "the broken row is kept: {ids:?}"
    );
    // and 陳大文 = Chan Tai Man across sources, Jane and John Doe apart
    let cluster = |s: &str, id: &str| {
        rows.iter()
            .find(|r| r[0] == s && r[1] == id)
            .map(|r| r[2].clone())
    };
    assert_eq!(cluster("crm", "A1"), cluster("shop", "1"));
    assert_ne!(cluster("crm", "A2"), cluster("shop", "2"));
    // and the bad rows are reported with file and row number
    assert!(
        summary.bad_rows.iter().any(|r| r.file == a && r.row == 3),
        "{:?}",
        summary.bad_rows
    );
    assert!(
        summary
            .bad_rows
            .iter()
            .any(|r| r.row == 3 && r.file.ends_with("shop.csv")),
        "{:?}",
        summary.bad_rows
    );
}

#[test]
fn map_selects_columns_and_reports_missing_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(dir.path(), "x.csv", "Key,Who\n7,Jane Doe\n");
    let out = dir.path().join("out.csv");
    let mut opts = DedupeOptions {
        inputs: vec![DedupeInput {
            path: a,
            source: None,
        }],
        map: vec!["Key=id".into(), "Who=full_name".into()],
        region: None,
        output: out.clone(),
        config: MatchConfig::default(),
    };
    dedupe_csv(&opts).expect("dedupe");
    assert_eq!(read(&out)[1], vec!["x", "7", "1"]);
    opts.map = vec!["Nope=email".into()];
    assert!(matches!(
        dedupe_csv(&opts),
        Err(DedupeError::MissingColumn { .. })
    ));
    opts.inputs.clear();
    assert!(matches!(dedupe_csv(&opts), Err(DedupeError::NoInputs)));
}

#[test]
fn parses_year_first_dates() {
    let d = NaiveDate::from_ymd_opt(1980, 2, 3);
    assert_eq!(parse_date("1980-02-03"), d);
    assert_eq!(parse_date("1980/2/3"), d);
    assert_eq!(parse_date("19800203"), d);
    assert_eq!(parse_date("１９８０年２月３日"), d);
    assert_eq!(
        parse_date("03/02/1980"),
        None,
        "ambiguous day/month order is refused"
    );
}
