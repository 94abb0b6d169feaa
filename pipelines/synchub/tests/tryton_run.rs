//! `synchub run` through the binary with a pipeline whose connection has
//! `kind = "tryton"`, against the real Tryton 8.2 of `deploy/peers/tryton.sh`
//! (http://127.0.0.1:18000, database `synchub`, admin / admin-pass).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::{json, Value};
use synchub_testkit::TestDb;

const URL: &str = "http://127.0.0.1:18000";

fn synchub(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_DATABASE_URL", db)
        .env("TRYTON_TEST_PASSWORD", "admin-pass")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run synchub")
}

async fn rpc(client: &reqwest::Client, auth: Option<&str>, method: &str, params: Value) -> Value {
    let mut req = client
        .post(format!("{URL}/synchub/rpc/"))
        .json(&json!({"id": 1, "method": method, "params": params}));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let answer: Value = req
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!("the real Tryton is not running on {URL} ({e}): start it with deploy/peers/tryton.sh")
        })
        .json()
        .await
        .expect("json");
    assert!(
        matches!(answer.get("error"), None | Some(Value::Null)),
        "{answer}"
    );
    answer["result"].clone()
}

fn report(o: &Output) -> Value {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "run failed: {err}");
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test]
async fn a_pipeline_with_kind_tryton_pulls_parties_into_the_crm() {
    use base64::Engine as _;
    let client = reqwest::Client::new();
    let login = rpc(
        &client,
        None,
        "common.db.login",
        json!(["admin", {"password": "admin-pass"}, "en"]),
    )
    .await;
    let auth = format!(
        "Session {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "admin:{}:{}",
            login[0].as_i64().unwrap(),
            login[1].as_str().unwrap()
        ))
    );
    let tag = format!(
        "run-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    rpc(
        &client,
        Some(&auth),
        "model.party.party.create",
        json!([[{"name": format!("吳建豪 {tag}"),
                 "contact_mechanisms": [["create", [{"type": "email", "value": format!("{tag}@example.com.tw")},
                                                    {"type": "phone", "value": "+886 2 2345 6789"}]]]}], {}]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("erp.toml");
    std::fs::write(
        &file,
        format!(
            r#"version = 1
name = "erp"
region = "TW"

[[connections]]
name = "tryton"
kind = "tryton"
direction = "pull"
objects = ["contact", "order"]

[connections.config]
url = "{URL}"
database = "synchub"
login = "admin"
password = "${{TRYTON_TEST_PASSWORD}}"
page_size = 50
"#
        ),
    )
    .unwrap();
    let db = TestDb::sqlite();
    let path = file.to_str().unwrap();
    let first = report(&synchub(
        &db.url,
        &["run", "--once", "--report", "json", path],
    ));
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let contacts = &first["streams"]["tryton.contact"];
    assert!(n(contacts, "read") >= 1, "{first}");
    assert!(
        n(contacts, "created") + n(contacts, "merged") >= 1,
        "{first}"
    );
    let second = report(&synchub(
        &db.url,
        &["run", "--once", "--report", "json", path],
    ));
    assert!(
        n(&second["streams"]["tryton.contact"], "read") < n(contacts, "read"),
        "{second}"
    );
}
