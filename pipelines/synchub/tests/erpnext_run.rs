//! `synchub run` through the binary with a pipeline whose connection has
//! `kind = "erpnext"`, against the ERPNext sandbox (fixture documents):
//! customers, their contact and the sales order reach the CRM; a second
//! run reads the overlap again but changes nothing; the API secret comes
//! from the environment and never appears in the output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::Value;
use synchub_core::{ObjectKind, Record};
use synchub_erpnext::sandbox::{self, SandboxOptions, SANDBOX_KEY, SANDBOX_SECRET, UTC_OFFSET};
use synchub_testkit::TestDb;

fn synchub(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_DATABASE_URL", db)
        .env("ERPNEXT_TEST_SECRET", SANDBOX_SECRET)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run synchub")
}

fn pipeline(url: &str) -> String {
    format!(
        r#"version = 1
name = "erp"
region = "TW"

[[connections]]
name = "erp"
kind = "erpnext"
direction = "pull"
objects = ["company", "contact", "order"]

[connections.config]
url = "{url}"
api_key = "{SANDBOX_KEY}"
api_secret = "${{ERPNEXT_TEST_SECRET}}"
utc_offset = "{UTC_OFFSET}"
page_size = 2
"#
    )
}

fn report(o: &Output) -> Value {
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "run failed: {err}");
    assert!(
        !err.contains(SANDBOX_SECRET) && !out.contains(SANDBOX_SECRET),
        "the API secret was printed"
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

// GIVEN the ERPNext sandbox with the fixture customers, a contact and a sales
// order WHEN `synchub run --once` runs a pipeline with an erpnext connection
// THEN the customers are CRM companies, the contact a CRM contact and the
// order a CRM order; a second run changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_with_kind_erpnext_brings_customers_in() {
    let sb = sandbox::spawn(SandboxOptions { fixtures: true })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("erp.toml");
    std::fs::write(&file, pipeline(&sb.url())).unwrap();
    let db = TestDb::sqlite();
    let (url, path) = (db.url.clone(), file.to_str().unwrap().to_string());
    let first = tokio::task::spawn_blocking(move || {
        report(&synchub(
            &url,
            &["run", "--once", "--report", "json", &path],
        ))
    })
    .await
    .unwrap();
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let companies = &first["streams"]["erp.company"];
    assert_eq!(n(companies, "read"), 3, "{first}");
    assert_eq!(
        n(companies, "created"),
        2,
        "two live customers, one disabled: {first}"
    );
    assert_eq!(n(&first["streams"]["erp.contact"], "created"), 1, "{first}");
    assert_eq!(n(&first["streams"]["erp.order"], "created"), 1, "{first}");

    let store = db.store().await;
    let mut names: Vec<String> = store
        .records(ObjectKind::Company, false)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.record {
            Record::Company(c) => Some(c.name),
            _ => None,
        })
        .collect();
    names.sort();
    assert_eq!(names, ["台灣範例股份有限公司", "陳大文"]);
    let contacts = store.records(ObjectKind::Contact, false).await.unwrap();
    let Record::Contact(p) = &contacts[0].record else {
        panic!()
    };
    assert_eq!(p.full_name.as_deref(), Some("陳大文"));
    assert!(p.phones.iter().any(|x| x.contains("9123")), "{p:?}");

    let (url, path) = (db.url.clone(), file.to_str().unwrap().to_string());
    let second = tokio::task::spawn_blocking(move || {
        report(&synchub(
            &url,
            &["run", "--once", "--report", "json", &path],
        ))
    })
    .await
    .unwrap();
    for stream in ["erp.company", "erp.contact", "erp.order"] {
        let s = &second["streams"][stream];
        assert_eq!(
            n(s, "created") + n(s, "updated") + n(s, "merged"),
            0,
            "{stream}: {second}"
        );
    }
    sb.shutdown().await;
}
