//! `synchub run` through the binary with a pipeline whose connection has
//! `kind = "odoo"`, against the real Odoo 11 of `deploy/peers/odoo.sh`
//! (http://127.0.0.1:18069, database `odoo`, admin/admin).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::{json, Value};
use synchub_testkit::TestDb;

const URL: &str = "http://127.0.0.1:18069";

fn synchub(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_DATABASE_URL", db)
        .env("ODOO_TEST_PASSWORD", "admin")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run synchub")
}

async fn odoo(client: &reqwest::Client, service: &str, method: &str, args: Value) -> Value {
    let answer: Value = client
        .post(format!("{URL}/jsonrpc"))
        .json(&json!({"jsonrpc":"2.0","method":"call","id":1,
            "params":{"service":service,"method":method,"args":args}}))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the real Odoo is not running on {URL} ({e}): start it with deploy/peers/odoo.sh"
            )
        })
        .json()
        .await
        .expect("json");
    assert!(answer.get("error").is_none(), "{answer}");
    answer["result"].clone()
}

fn pipeline(password: &str) -> String {
    format!(
        r#"version = 1
name = "erp"
region = "TW"

[[connections]]
name = "odoo"
kind = "odoo"
direction = "pull"
objects = ["company", "contact"]

[connections.config]
url = "{URL}"
database = "odoo"
login = "admin"
password = "{password}"
page_size = 50
"#
    )
}

fn report(o: &Output) -> Value {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "run failed: {err}");
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test]
async fn a_pipeline_with_kind_odoo_pulls_partners_into_the_crm() {
    let client = reqwest::Client::new();
    let uid = odoo(
        &client,
        "common",
        "authenticate",
        json!(["odoo", "admin", "admin", {}]),
    )
    .await;
    let tag = format!("run-{}-{}", std::process::id(), chrono_free_nanos());
    let company = odoo(
        &client,
        "object",
        "execute_kw",
        json!(["odoo", uid, "admin", "res.partner", "create",
               [{"name": format!("台北茶行 {tag}"), "is_company": true}], {}]),
    )
    .await;
    odoo(
        &client,
        "object",
        "execute_kw",
        json!(["odoo", uid, "admin", "res.partner", "create",
               [{"name": format!("李小龍 {tag}"), "parent_id": company,
                 "email": format!("{tag}@example.com.tw"), "phone": "+886 2 2345 6789"}], {}]),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("erp.toml");
    std::fs::write(&file, pipeline("${ODOO_TEST_PASSWORD}")).unwrap();
    let db = TestDb::sqlite();
    let path = file.to_str().unwrap();
    let first = report(&synchub(
        &db.url,
        &["run", "--once", "--report", "json", path],
    ));
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let contacts = &first["streams"]["odoo.contact"];
    let companies = &first["streams"]["odoo.company"];
    assert!(n(contacts, "read") >= 1, "{first}");
    assert!(n(companies, "read") >= 1, "{first}");
    assert!(
        n(contacts, "created") + n(contacts, "merged") >= 1,
        "{first}"
    );

    // Again: the overlap window is re-read but its unchanged rows are
    // dropped by the cursor, so (other tests aside) nothing is read.
    let second = report(&synchub(
        &db.url,
        &["run", "--once", "--report", "json", path],
    ));
    assert!(
        n(&second["streams"]["odoo.contact"], "read") < n(contacts, "read"),
        "{second}"
    );

    // A wrong password: one clear line naming the user and the host, not the secret.
    std::fs::write(&file, pipeline("hunter2-wrong")).unwrap();
    let o = synchub(&db.url, &["run", "--once", path]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("`admin`") && err.contains("127.0.0.1:18069"),
        "{err}"
    );
    assert!(!err.contains("hunter2-wrong"), "{err}");
}

fn chrono_free_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
