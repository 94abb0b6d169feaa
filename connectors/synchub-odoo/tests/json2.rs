//! JSON-2 (Odoo 19+: `POST /json/2/<model>/<method>`, named arguments,
//! `Authorization: bearer <API key>`) against a small stateful sandbox built
//! from `shared/api-notes/odoo.md` §1–2 and its fixtures (copied to `tests/fixtures/`: `web_version.json`,
//! `json2_search_read_sale_orders.json`, `json2_error_401.json`). No Odoo 19
//! runs here; the real Odoo 11 tests cover the JSON-RPC path.
//!
//! The sandbox keeps `res.partner` and `sale.order` rows, evaluates the
//! domains the connector sends (`=`, `!=`, `<`, `<=`, `>`, `>=`, `in`,
//! `=ilike`, `active_test`), stamps `write_date` to the second, answers
//! `create` with `[id]`, and refuses every call without the key with the
//! fixture's 401 body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use synchub_core::connector::{Change, ChangeOp};
use synchub_core::{Connector, ConnectorError, Contact, ObjectKind, Record};
use synchub_http::Deps;
use synchub_odoo::{OdooConfig, OdooConnector};

const KEY: &str = "6578616d706c65206a736f6e20617069206b6579";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> Value {
    let path = format!("{FIXTURES}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// One request as the sandbox saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    database: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Odoo19 {
    version: Value,
    models: BTreeMap<String, BTreeMap<i64, Map<String, Value>>>,
    next_id: i64,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Odoo19>>;

fn now_text() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// A many2one field holds `[id, name]`; domains compare its id.
fn scalar(v: &Value) -> Value {
    match v {
        Value::Array(pair) if pair.len() == 2 && pair[0].is_i64() => pair[0].clone(),
        other => other.clone(),
    }
}

fn term_holds(row: &Map<String, Value>, term: &Value) -> bool {
    let Some([field, op, want]) = term.as_array().map(Vec::as_slice) else {
        panic!("the sandbox takes [field, op, value] terms, got {term}");
    };
    let have = scalar(
        row.get(field.as_str().unwrap())
            .unwrap_or(&Value::Bool(false)),
    );
    use std::cmp::Ordering::*;
    match op.as_str().unwrap() {
        "=" => compare(&have, want) == Some(Equal) || (have == *want),
        "!=" => have != *want,
        "<" => compare(&have, want) == Some(Less),
        "<=" => matches!(compare(&have, want), Some(Less | Equal)),
        ">" => compare(&have, want) == Some(Greater),
        ">=" => matches!(compare(&have, want), Some(Greater | Equal)),
        "in" => want
            .as_array()
            .unwrap()
            .iter()
            .any(|w| compare(&have, w) == Some(Equal)),
        "=ilike" => match (have.as_str(), want.as_str()) {
            (Some(h), Some(w)) => h.to_lowercase() == w.to_lowercase(),
            _ => false,
        },
        other => panic!("the sandbox does not know operator {other}"),
    }
}

fn select(state: &Odoo19, model: &str, body: &Value) -> Vec<Map<String, Value>> {
    let active_test = body["context"]["active_test"].as_bool().unwrap_or(true);
    let domain = body["domain"].as_array().cloned().unwrap_or_default();
    let mut rows: Vec<Map<String, Value>> = state
        .models
        .get(model)
        .map(|t| t.values().cloned().collect())
        .unwrap_or_default();
    rows.retain(|r| {
        (!active_test || r.get("active") != Some(&Value::Bool(false)))
            && domain.iter().all(|t| term_holds(r, t))
    });
    let order = body["order"].as_str().unwrap_or("id asc");
    assert!(
        order == "id asc" || order == "write_date asc, id asc",
        "the sandbox orders by id or write_date, id; got {order}"
    );
    rows.sort_by(|a, b| {
        let key = |r: &Map<String, Value>| {
            (
                if order.starts_with("write_date") {
                    r["write_date"].as_str().unwrap_or("").to_string()
                } else {
                    String::new()
                },
                r["id"].as_i64().unwrap_or(0),
            )
        };
        key(a).cmp(&key(b))
    });
    let offset = body["offset"].as_u64().unwrap_or(0) as usize;
    let mut rows: Vec<_> = rows.into_iter().skip(offset).collect();
    if let Some(limit) = body["limit"].as_u64() {
        rows.truncate(limit as usize);
    }
    rows
}

fn project(state: &Odoo19, model: &str, row: &Map<String, Value>, fields: &Value) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), row["id"].clone());
    for f in fields.as_array().cloned().unwrap_or_default() {
        let f = f.as_str().unwrap();
        let v = row.get(f).cloned().unwrap_or(Value::Bool(false));
        // res.partner keeps parent_id as an id; reads show [id, name].
        let v = match (model, f, &v) {
            ("res.partner", "parent_id", Value::Number(n)) => {
                let id = n.as_i64().unwrap();
                let name = state.models["res.partner"][&id]["name"].clone();
                json!([id, name])
            }
            _ => v,
        };
        out.insert(f.to_string(), v);
    }
    Value::Object(out)
}

fn error(status: u16, name: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(
            json!({"name": name, "message": message, "arguments": [message, status],
                          "context": {}, "debug": "Traceback (most recent call last): …"}),
        ),
    )
        .into_response()
}

async fn serve(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut st = shared.lock().unwrap();
    st.seen.push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        authorization: header("authorization"),
        database: header("x-odoo-database"),
        body: body.clone(),
    });
    if uri.path() == "/web/version" && method == Method::GET {
        return axum::Json(st.version.clone()).into_response();
    }
    let Some(rest) = uri.path().strip_prefix("/json/2/") else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    if header("authorization").as_deref() != Some(&format!("bearer {KEY}")) {
        let mut body = fixture("json2_error_401.json");
        if let Some(m) = body.as_object_mut() {
            m.retain(|k, _| !k.starts_with('_'));
        }
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let (model, call) = rest.rsplit_once('/').unwrap();
    let answer = match call {
        "context_get" => json!({"lang": "en_US", "tz": "Asia/Taipei", "uid": 2}),
        "search_read" => {
            let rows = select(&st, model, &body);
            Value::Array(
                rows.iter()
                    .map(|r| project(&st, model, r, &body["fields"]))
                    .collect(),
            )
        }
        "search" => Value::Array(
            select(&st, model, &body)
                .iter()
                .map(|r| r["id"].clone())
                .collect(),
        ),
        "search_count" => {
            let mut all = body.clone();
            all.as_object_mut().unwrap().remove("limit");
            json!(select(&st, model, &all).len())
        }
        "read" => {
            let ids = body["ids"].as_array().cloned().unwrap_or_default();
            let mut out = Vec::new();
            for id in ids {
                let id = id.as_i64().unwrap();
                match st.models.get(model).and_then(|t| t.get(&id)) {
                    Some(r) => out.push(project(&st, model, r, &body["fields"])),
                    None => {
                        return error(
                            404,
                            "odoo.exceptions.MissingError",
                            "Record does not exist or has been deleted.",
                        )
                    }
                }
            }
            Value::Array(out)
        }
        "create" => {
            let Some(list) = body["vals_list"].as_array().cloned() else {
                return error(422, "builtins.TypeError", "create() missing 'vals_list'");
            };
            let mut ids = Vec::new();
            for vals in list {
                let mut row = vals.as_object().cloned().unwrap();
                if row
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    return error(
                        422,
                        "odoo.exceptions.ValidationError",
                        "The field 'Name' is required.",
                    );
                }
                st.next_id += 1;
                let id = st.next_id;
                row.insert("id".into(), json!(id));
                row.entry("active").or_insert(json!(true));
                row.entry("type").or_insert(json!("contact"));
                row.entry("is_company").or_insert(json!(false));
                row.insert("write_date".into(), json!(now_text()));
                st.models.entry(model.into()).or_default().insert(id, row);
                ids.push(json!(id));
            }
            Value::Array(ids)
        }
        "write" => {
            let (Some(ids), Some(vals)) = (body["ids"].as_array(), body["vals"].as_object()) else {
                return error(422, "builtins.TypeError", "write() takes ids and vals");
            };
            let stamp = now_text();
            for id in ids {
                let id = id.as_i64().unwrap();
                let Some(row) = st.models.get_mut(model).and_then(|t| t.get_mut(&id)) else {
                    return error(
                        404,
                        "odoo.exceptions.MissingError",
                        "Record does not exist or has been deleted.",
                    );
                };
                for (k, v) in vals {
                    row.insert(k.clone(), v.clone());
                }
                row.insert("write_date".into(), json!(stamp));
            }
            json!(true)
        }
        other => return error(404, "werkzeug.exceptions.NotFound", other),
    };
    axum::Json(answer).into_response()
}

async fn sandbox(version: Value) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(Odoo19 {
        version,
        next_id: 100,
        ..Default::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(serve)
        .with_state(shared.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, shared)
}

fn seed_partners(shared: &Shared) -> (i64, i64, i64) {
    let mut st = shared.lock().unwrap();
    let stamp = now_text();
    let mut put = |id: i64, row: Value| {
        let mut row = row.as_object().cloned().unwrap();
        row.insert("id".into(), json!(id));
        row.insert("write_date".into(), json!(stamp));
        row.entry("active").or_insert(json!(true));
        row.entry("type").or_insert(json!("contact"));
        st.models
            .entry("res.partner".into())
            .or_default()
            .insert(id, row);
    };
    put(
        61,
        json!({"name": "台灣範例股份有限公司", "is_company": true, "parent_id": false}),
    );
    put(
        62,
        json!({"name": "王小明", "is_company": false, "parent_id": 61,
               "email": "ming@example.com.tw", "phone": "+886 2 2345 6789"}),
    );
    put(
        63,
        json!({"name": "陳美玲", "is_company": false, "parent_id": false,
               "email": "mei@example.com.tw", "phone": "+886 912 345 678"}),
    );
    (61, 62, 63)
}

fn connector(url: &str, key: &str) -> OdooConnector {
    let cfg: OdooConfig = serde_json::from_value(json!({
        "url": url, "database": "mycompany", "login": "bot@example.com.tw",
        "api": "json2", "api_key": key, "page_size": 1,
    }))
    .unwrap();
    OdooConnector::new(cfg, &Deps::new("erp", ".")).unwrap()
}

async fn pull_all(c: &OdooConnector, object: ObjectKind) -> Vec<Record> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..50 {
        let page = c.pull(object, cursor.as_ref()).await.unwrap();
        out.extend(page.records.into_iter().filter_map(|r| r.record));
        if page.next.is_some() {
            cursor = page.next;
        }
        if page.done {
            return out;
        }
    }
    panic!("the pull did not end in 50 pages");
}

#[tokio::test]
async fn json2_pulls_partners_with_a_bearer_key_and_named_arguments() {
    let (url, shared) = sandbox(fixture("web_version.json")).await;
    seed_partners(&shared);
    let c = connector(&url, KEY);
    let records = pull_all(&c, ObjectKind::Contact).await;
    let mut people: Vec<(String, Option<String>, Vec<String>)> = records
        .iter()
        .map(|r| match r {
            Record::Contact(c) => (
                c.full_name.clone().unwrap_or_default(),
                c.company.clone(),
                c.phones.clone(),
            ),
            other => panic!("not a contact: {other:?}"),
        })
        .collect();
    people.sort();
    assert_eq!(
        people,
        vec![
            (
                "王小明".to_string(),
                Some("台灣範例股份有限公司".to_string()),
                vec!["+886 2 2345 6789".to_string()]
            ),
            (
                "陳美玲".to_string(),
                None,
                vec!["+886 912 345 678".to_string()]
            ),
        ]
    );
    let seen = shared.lock().unwrap().seen.clone();
    assert!(
        seen.iter()
            .all(|s| s.path == "/web/version" || s.path.starts_with("/json/2/")),
        "only JSON-2: {seen:?}"
    );
    let calls: Vec<&Seen> = seen.iter().filter(|s| s.path != "/web/version").collect();
    assert!(!calls.is_empty());
    for s in &calls {
        assert_eq!(s.method, "POST");
        assert_eq!(s.authorization.as_deref(), Some(&*format!("bearer {KEY}")));
        assert_eq!(s.database.as_deref(), Some("mycompany"));
    }
    // The page request has the fixture's named arguments.
    let request = fixture("json2_search_read_sale_orders.json")["request"].clone();
    let allowed: Vec<&String> = request["body"].as_object().unwrap().keys().collect();
    let page = calls
        .iter()
        .find(|s| s.path == "/json/2/res.partner/search_read")
        .expect("a search_read");
    for key in page.body.as_object().unwrap().keys() {
        assert!(
            allowed.contains(&key),
            "`{key}` is not a JSON-2 argument of search_read"
        );
    }
    assert_eq!(page.body["limit"], json!(1));
    assert!(page.body["domain"].is_array() && page.body["fields"].is_array());
}

#[tokio::test]
async fn json2_pulls_the_fixture_sale_orders_with_exact_amounts() {
    let (url, shared) = sandbox(fixture("web_version.json")).await;
    seed_partners(&shared);
    {
        let mut st = shared.lock().unwrap();
        let stamp = now_text();
        for row in fixture("json2_search_read_sale_orders.json")["response"]
            .as_array()
            .unwrap()
        {
            let mut row = row.as_object().cloned().unwrap();
            // The fixture's rows, stamped now so the first pass reads them.
            row.insert("write_date".into(), json!(stamp));
            let id = row["id"].as_i64().unwrap();
            st.models
                .entry("sale.order".into())
                .or_default()
                .insert(id, row);
        }
        // The lines the fixture's orders name (`order_line`).
        for (id, order, qty, price) in [
            (101, json!([42, "S00042"]), 2, 4000.0),
            (102, json!([42, "S00042"]), 1, 2000.0),
            (103, json!([43, "S00043"]), 1, 1799.0),
        ] {
            let row = json!({"id": id, "order_id": order, "product_id": [7, "[TEA-1] 凍頂烏龍"],
                "name": "凍頂烏龍茶", "product_uom_qty": qty, "price_unit": price,
                "price_subtotal": price * f64::from(qty), "write_date": stamp});
            st.models
                .entry("sale.order.line".into())
                .or_default()
                .insert(id, row.as_object().cloned().unwrap());
        }
    }
    let c = connector(&url, KEY);
    let orders = pull_all(&c, ObjectKind::Order).await;
    let mut got: Vec<(Option<String>, String, String, usize)> = orders
        .iter()
        .map(|r| match r {
            Record::Order(o) => (
                o.number.clone(),
                o.total.normalize().to_string(),
                o.currency.clone(),
                o.lines.len(),
            ),
            other => panic!("not an order: {other:?}"),
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (Some("S00042".into()), "10500".into(), "TWD".into(), 2),
            (Some("S00043".into()), "2068.85".into(), "USD".into(), 1),
        ]
    );
}

#[tokio::test]
async fn json2_creates_once_and_updates_sparsely() {
    let (url, shared) = sandbox(fixture("web_version.json")).await;
    seed_partners(&shared);
    let c = connector(&url, KEY);
    let contact = Contact {
        full_name: Some("林志玲".into()),
        emails: vec!["chiling@example.com.tw".into()],
        phones: vec!["+886 933 123 456".into()],
        ..Default::default()
    };
    let change = Change {
        crm_id: "crm-json2-1".into(),
        op: ChangeOp::Create,
        external_id: None,
        base_version: None,
        base: None,
        record: Record::Contact(contact.clone()),
        idempotency_key: "k-json2-1".into(),
    };
    let first = c
        .push(ObjectKind::Contact, std::slice::from_ref(&change))
        .await
        .unwrap();
    let id = first[0]
        .result
        .as_ref()
        .expect("written")
        .external_id
        .clone();
    // A retry of the same create finds it (the CRM id in `ref`): one partner.
    let again = c.push(ObjectKind::Contact, &[change]).await.unwrap();
    assert_eq!(again[0].result.as_ref().unwrap().external_id, id);
    let id: i64 = id.parse().unwrap();
    {
        let st = shared.lock().unwrap();
        let created: Vec<_> = st.models["res.partner"]
            .values()
            .filter(|r| r.get("name") == Some(&json!("林志玲")))
            .collect();
        assert_eq!(created.len(), 1, "{created:?}");
        assert_eq!(created[0]["phone"], json!("+886 933 123 456"));
        assert_eq!(created[0]["ref"], json!("crm-json2-1"));
        let creates: Vec<&Seen> = st
            .seen
            .iter()
            .filter(|s| s.path == "/json/2/res.partner/create")
            .collect();
        assert_eq!(creates.len(), 1);
        assert!(
            creates[0].body["vals_list"].is_array(),
            "{:?}",
            creates[0].body
        );
    }
    // A sparse update: only the changed field is written, by ids + vals.
    let version = shared.lock().unwrap().models["res.partner"][&id]["write_date"].clone();
    let mut edited = contact.clone();
    edited.phones = vec!["+886 933 000 111".into()];
    let update = Change {
        crm_id: "crm-json2-1".into(),
        op: ChangeOp::Update,
        external_id: Some(id.to_string()),
        base_version: version.as_str().map(String::from),
        base: Some(Record::Contact(contact)),
        record: Record::Contact(edited),
        idempotency_key: "k-json2-2".into(),
    };
    let out = c.push(ObjectKind::Contact, &[update]).await.unwrap();
    assert!(out[0].result.is_ok(), "{:?}", out[0].result);
    let st = shared.lock().unwrap();
    assert_eq!(
        st.models["res.partner"][&id]["phone"],
        json!("+886 933 000 111")
    );
    assert_eq!(st.models["res.partner"][&id]["name"], json!("林志玲"));
    let write = st
        .seen
        .iter()
        .rfind(|s| s.path == "/json/2/res.partner/write")
        .expect("a write");
    assert_eq!(write.body["ids"], json!([id]));
    assert!(
        write.body["vals"].get("phone").is_some(),
        "{:?}",
        write.body
    );
    assert!(write.body["vals"].get("name").is_none(), "{:?}", write.body);
}

#[tokio::test]
async fn json2_wrong_key_is_one_auth_error_without_the_key() {
    let (url, shared) = sandbox(fixture("web_version.json")).await;
    let c = connector(&url, "wrong-key-123456");
    let err = c.pull(ObjectKind::Contact, None).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    assert!(
        text.contains("bot@example.com.tw") && text.contains("mycompany"),
        "{text}"
    );
    assert!(text.contains("Invalid apikey"), "{text}");
    assert!(!text.contains("wrong-key-123456"), "{text}");
    // One refused call, not a retry loop.
    let st = shared.lock().unwrap();
    assert_eq!(
        st.seen
            .iter()
            .filter(|s| s.path.starts_with("/json/2/"))
            .count(),
        1
    );
}

#[tokio::test]
async fn json2_is_refused_for_a_server_before_19_and_without_an_api_key() {
    let (url, _shared) =
        sandbox(json!({"version_info": [17, 0, 0, "final", 0, ""], "version": "17.0"})).await;
    let err = connector(&url, KEY)
        .pull(ObjectKind::Contact, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("version 17"), "{err}");
    let cfg: OdooConfig = serde_json::from_value(json!({
        "url": url, "database": "mycompany", "login": "bot", "api": "json2", "password": "p",
    }))
    .unwrap();
    let Err(err) = OdooConnector::new(cfg, &Deps::new("erp", ".")) else {
        panic!("json2 with a password was accepted");
    };
    assert!(err.to_string().contains("api_key"), "{err}");
}
