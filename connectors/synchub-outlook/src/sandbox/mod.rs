//! A stateful fake of the Graph endpoints the Outlook connector uses: mail
//! folder and contact delta queries (tokens bound to a snapshot, evicted
//! tokens answering 410 `syncStateNotFound`, partial updates carrying only
//! the changed properties, `Prefer: odata.maxpagesize`), contacts with
//! `If-Match` (412), bearer tokens that expire, 429 with `Retry-After`, and
//! subscriptions whose creation runs the validation handshake against the
//! notification URL. Follows `shared/api-notes/msgraph.md` and its fixtures.

// Handlers return the HTTP answer as the error of a failed check, by design.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use tokio::sync::oneshot;

type Shared = Arc<Mutex<GraphState>>;
type Pairs = Vec<(String, String)>;

/// A fault to answer the next request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: 1` (the fixture's body).
    TooMany,
    /// 503 with `Retry-After: 1`.
    Unavailable,
}

/// One stored item (message or contact).
#[derive(Debug, Clone)]
pub struct Item {
    /// The folder (messages) or `contacts`.
    pub folder: String,
    /// The properties.
    pub body: Value,
    /// Sequence of the last change.
    pub seq: u64,
    /// Sequence of the creation.
    pub created: u64,
    /// Properties changed by the last edit (sent alone in delta).
    pub changed: Option<Vec<String>>,
    /// Deleted (kept for delta).
    pub deleted: bool,
}

/// The fake mailbox.
#[derive(Debug)]
pub struct GraphState {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Messages by id.
    pub messages: BTreeMap<String, Item>,
    /// Contacts by id.
    pub contacts: BTreeMap<String, Item>,
    /// Change sequence.
    pub seq: u64,
    /// Delta tokens issued below this sequence were evicted (410).
    pub token_floor: u64,
    /// Valid access tokens.
    pub access_tokens: HashSet<String>,
    /// The accepted refresh token.
    pub refresh_token: String,
    /// Refreshes served.
    pub refreshes: u32,
    /// Faults for the next requests.
    pub faults: VecDeque<Fault>,
    /// Subscriptions by id.
    pub subscriptions: BTreeMap<String, Value>,
    /// Requests served (`METHOD path?query` and the Prefer header).
    pub log: Vec<String>,
    ids: u64,
}

impl GraphState {
    fn new(access: &str, refresh: &str) -> Self {
        GraphState {
            base_url: String::new(),
            messages: BTreeMap::new(),
            contacts: BTreeMap::new(),
            seq: 0,
            token_floor: 0,
            access_tokens: HashSet::from([access.to_string()]),
            refresh_token: refresh.to_string(),
            refreshes: 0,
            faults: VecDeque::new(),
            subscriptions: BTreeMap::new(),
            log: Vec::new(),
            ids: 0,
        }
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}{:08}AAA=", self.ids * 7919)
    }

    /// Delivers a message into `folder`.
    pub fn add_message(
        &mut self,
        folder: &str,
        from: (&str, &str),
        to: &[(&str, &str)],
        subject: &str,
        received: DateTime<Utc>,
    ) -> String {
        let id = self.next_id("AAMkADNkNAAASq");
        self.seq += 1;
        let who = |(n, a): (&str, &str)| json!({"emailAddress": {"name": n, "address": a}});
        let body = json!({
            "id": id, "subject": subject, "bodyPreview": format!("{subject}…"),
            "receivedDateTime": received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "sentDateTime": (received - Duration::seconds(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "lastModifiedDateTime": received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "internetMessageId": format!("<{id}@outlook.example>"),
            "conversationId": format!("conv-{}", subject.trim_start_matches("Re: ")),
            "parentFolderId": folder, "isRead": false, "hasAttachments": false,
            "from": who(from), "sender": who(from),
            "toRecipients": to.iter().map(|r| who(*r)).collect::<Vec<_>>(),
            "ccRecipients": [],
        });
        self.messages.insert(
            id.clone(),
            Item {
                folder: folder.into(),
                body,
                seq: self.seq,
                created: self.seq,
                changed: None,
                deleted: false,
            },
        );
        id
    }

    /// Marks a message read (a partial update in delta).
    pub fn mark_read(&mut self, id: &str) -> bool {
        self.seq += 1;
        let seq = self.seq;
        match self.messages.get_mut(id).filter(|m| !m.deleted) {
            Some(m) => {
                m.body["isRead"] = json!(true);
                m.seq = seq;
                m.changed = Some(vec!["isRead".into()]);
                true
            }
            None => false,
        }
    }

    /// Deletes a message.
    pub fn delete_message(&mut self, id: &str) -> bool {
        self.seq += 1;
        let seq = self.seq;
        match self.messages.get_mut(id) {
            Some(m) => {
                m.deleted = true;
                m.seq = seq;
                true
            }
            None => false,
        }
    }

    /// Adds a contact; returns its id.
    pub fn add_contact(&mut self, mut body: Value) -> String {
        let id = self.next_id("AAMkAGI2THVS");
        self.seq += 1;
        body["id"] = json!(id);
        self.contacts.insert(
            id.clone(),
            Item {
                folder: "contacts".into(),
                body,
                seq: self.seq,
                created: self.seq,
                changed: None,
                deleted: false,
            },
        );
        id
    }

    /// Edits a contact as a user would in Outlook.
    pub fn edit_contact(&mut self, id: &str, edit: impl FnOnce(&mut Value)) -> bool {
        self.seq += 1;
        let seq = self.seq;
        match self.contacts.get_mut(id).filter(|c| !c.deleted) {
            Some(c) => {
                edit(&mut c.body);
                c.seq = seq;
                true
            }
            None => false,
        }
    }

    /// Evicts every delta token issued so far.
    pub fn expire_delta_tokens(&mut self) {
        self.seq += 1;
        self.token_floor = self.seq;
    }

    /// Expires every access token.
    pub fn expire_access_tokens(&mut self) {
        self.access_tokens.clear();
    }

    fn render_contact(&self, c: &Item) -> Value {
        let mut v = c.body.clone();
        // Extended properties are returned only when expanded.
        if let Some(o) = v.as_object_mut() {
            o.remove("singleValueExtendedProperties");
        }
        let key = format!("EQAAABYAAAAHx8xHv9bDQ6Lrmc1uvWMJ{:08}", c.seq);
        v["@odata.etag"] = json!(format!("W/\"{key}\""));
        v["changeKey"] = json!(key);
        v["lastModifiedDateTime"] = json!(format!(
            "2023-11-19T11:{:02}:{:02}Z",
            (c.seq / 60) % 60,
            c.seq % 60
        ));
        v["createdDateTime"] = json!("2023-10-02T03:12:45Z");
        v
    }

    fn render_message(&self, m: &Item) -> Value {
        let mut v = m.body.clone();
        v["@odata.etag"] = json!(format!("W/\"CQAAABYAAAARn2vdzPFjSbaPPxzjlz{:08}\"", m.seq));
        v
    }
}

/// A running sandbox.
#[derive(Debug)]
pub struct SandboxHandle {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    state: Shared,
    stop: Option<oneshot::Sender<()>>,
}

impl SandboxHandle {
    /// Locks the mailbox (never across an await).
    pub fn mailbox(&self) -> MutexGuard<'_, GraphState> {
        lock(&self.state)
    }

    /// The Graph root to configure (`…/v1.0`).
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url)
    }

    /// Stops serving.
    pub fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn lock(s: &Shared) -> MutexGuard<'_, GraphState> {
    match s.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Serves an empty mailbox on an ephemeral loopback port.
pub async fn spawn(access: &str, refresh: &str) -> std::io::Result<SandboxHandle> {
    let state = Arc::new(Mutex::new(GraphState::new(access, refresh)));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    lock(&state).base_url = base_url.clone();
    let app = Router::new()
        .route("/token", post(token))
        .fallback(api)
        .with_state(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "graph sandbox stopped");
        }
    });
    Ok(SandboxHandle {
        base_url,
        state,
        stop: Some(stop),
    })
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message,
            "innerError": {"date": "2023-11-22T03:00:00", "request-id": "5f0e8c5a-1b1c-4a5e-9f0e-2b5c3f9d8e71",
                           "client-request-id": "5f0e8c5a-1b1c-4a5e-9f0e-2b5c3f9d8e71"}}})),
    )
        .into_response()
}

fn param<'a>(q: &'a Pairs, name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn token(State(s): State<Shared>, Form(form): Form<Pairs>) -> Response {
    let mut st = lock(&s);
    st.log.push("POST /token".into());
    if param(&form, "grant_type") != Some("refresh_token")
        || param(&form, "refresh_token") != Some(st.refresh_token.as_str())
    {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant",
            "error_description": "AADSTS70000: The provided value for the 'refresh_token' is not valid."}))).into_response();
    }
    st.refreshes += 1;
    let t = format!("eyJ0eXAiOiJKV1Qi.sandbox-{}", st.refreshes);
    st.access_tokens.insert(t.clone());
    (
        StatusCode::OK,
        Json(
            json!({"token_type": "Bearer", "expires_in": 4517, "access_token": t,
        "scope": "Mail.Read Contacts.ReadWrite"}),
        ),
    )
        .into_response()
}

fn page_size(headers: &HeaderMap) -> usize {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("odata.maxpagesize=")?.parse().ok())
        .filter(|n: &usize| (1..=1000).contains(n))
        .unwrap_or(10)
}

async fn api(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<Pairs>,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_start_matches("/v1.0/").to_string();
    {
        let mut st = lock(&s);
        let prefer = headers
            .get("prefer")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        st.log.push(format!(
            "{method} {} prefer={prefer}",
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
        ));
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        let ok = auth
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| st.access_tokens.contains(t));
        if !ok {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            );
        }
        if let Some(f) = st.faults.pop_front() {
            let (status, body) = match f {
                Fault::TooMany => (
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"error": {"code": "TooManyRequests",
                    "innerError": {"code": "429", "date": "2020-08-18T12:51:51", "message": "Please retry after",
                                   "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2", "status": "429"},
                    "message": "Please retry again later."}}),
                ),
                Fault::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": {"code": "ServiceUnavailable", "message": "Service Unavailable"}}),
                ),
            };
            let mut r = (status, Json(body)).into_response();
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            return r;
        }
    }
    if path == "subscriptions" && method == Method::POST {
        return create_subscription(&s, &body).await;
    }
    let mut st = lock(&s);
    let size = page_size(&headers);
    let lower = path.to_ascii_lowercase();
    if lower.ends_with("/messages/delta") && lower.starts_with("me/mailfolders") {
        let folder = path["me/mailFolders".len()..path.len() - "/messages/delta".len()]
            .trim_start_matches('/')
            .trim_start_matches("('")
            .trim_end_matches("')")
            .to_string();
        return delta(&mut st, &folder, &q, size, true);
    }
    if path == "me/contacts/delta" && method == Method::GET {
        return delta(&mut st, "contacts", &q, size, false);
    }
    if let Some(f) = path.strip_prefix("me/mailFolders/") {
        return (StatusCode::OK, Json(json!({"id": f, "displayName": f,
            "totalItemCount": st.messages.values().filter(|m| m.folder == f && !m.deleted).count()}))).into_response();
    }
    if let Some(id) = path.strip_prefix("me/messages/") {
        return match st.messages.get(id).filter(|m| !m.deleted) {
            Some(m) => (StatusCode::OK, Json(st.render_message(m))).into_response(),
            None => graph_error(
                StatusCode::NOT_FOUND,
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            ),
        };
    }
    if path == "me/contacts" && method == Method::GET {
        return list_contacts(&st, &q);
    }
    if path == "me/contacts" && method == Method::POST {
        let Ok(b) = serde_json::from_slice::<Value>(&body) else {
            return graph_error(StatusCode::BAD_REQUEST, "RequestBodyRead", "Invalid JSON");
        };
        if let Some(r) = over_limit(&b) {
            return r;
        }
        let id = st.add_contact(b);
        let c = &st.contacts[&id];
        return (StatusCode::CREATED, Json(st.render_contact(c))).into_response();
    }
    if let Some(id) = path.strip_prefix("me/contacts/") {
        let Some(current) = st.contacts.get(id).filter(|c| !c.deleted).cloned() else {
            return graph_error(
                StatusCode::NOT_FOUND,
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            );
        };
        let etag = st.render_contact(&current)["@odata.etag"].clone();
        return match method {
            Method::GET => (StatusCode::OK, Json(st.render_contact(&current))).into_response(),
            Method::DELETE => {
                st.seq += 1;
                let seq = st.seq;
                if let Some(c) = st.contacts.get_mut(id) {
                    c.deleted = true;
                    c.seq = seq;
                }
                StatusCode::NO_CONTENT.into_response()
            }
            Method::PATCH => {
                if let Some(m) = headers.get("if-match").and_then(|v| v.to_str().ok()) {
                    if Some(m) != etag.as_str() && m != "*" {
                        return graph_error(StatusCode::PRECONDITION_FAILED, "ErrorIrresolvableConflict",
                            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.");
                    }
                }
                let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(&body) else {
                    return graph_error(StatusCode::BAD_REQUEST, "RequestBodyRead", "Invalid JSON");
                };
                if let Some(r) = over_limit(&Value::Object(b.clone())) {
                    return r;
                }
                st.edit_contact(id, |c| {
                    for (k, v) in b {
                        c[k.as_str()] = v;
                    }
                });
                let c = &st.contacts[id];
                (StatusCode::OK, Json(st.render_contact(c))).into_response()
            }
            _ => graph_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "BadRequest",
                "method not allowed",
            ),
        };
    }
    if let Some(id) = path.strip_prefix("subscriptions/") {
        if method == Method::PATCH {
            let Ok(b) = serde_json::from_slice::<Value>(&body) else {
                return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", "Invalid JSON");
            };
            if let Err(r) = check_expiry(&b) {
                return r;
            }
            return match st.subscriptions.get_mut(id) {
                Some(sub) => {
                    sub["expirationDateTime"] = b["expirationDateTime"].clone();
                    (StatusCode::OK, Json(sub.clone())).into_response()
                }
                None => graph_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    "The object was not found.",
                ),
            };
        }
    }
    graph_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!("Resource not found for the segment '{path}'."),
    )
}

/// Outlook's limits on a contact's multi-value properties (undocumented,
/// answered as a 400: at most 3 email addresses, 2 business and 2 home
/// phones).
fn over_limit(b: &Value) -> Option<Response> {
    for (key, name, max) in [
        ("emailAddresses", "EmailAddresses", 3),
        ("businessPhones", "BusinessPhones", 2),
        ("homePhones", "HomePhones", 2),
    ] {
        let n = b[key].as_array().map_or(0, Vec::len);
        if n > max {
            return Some(graph_error(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidProperty",
                &format!(
                    "The multi value property {name} has {n} entries, that exceeds the max allowed value of {max}"
                ),
            ));
        }
    }
    None
}

fn check_expiry(b: &Value) -> Result<(), Response> {
    let at = b["expirationDateTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    match at {
        Some(t) if t > Utc::now() && t <= Utc::now() + Duration::minutes(10_080) => Ok(()),
        _ => Err(graph_error(
            StatusCode::BAD_REQUEST,
            "ExtensionError",
            "Subscription expiration can only be 10080 minutes in the future.",
        )),
    }
}

/// `GET …/delta`: the initial round, a `$skiptoken` page, or a `$deltatoken` round.
fn delta(st: &mut GraphState, folder: &str, q: &Pairs, size: usize, messages: bool) -> Response {
    // Tokens: d{snapshot} and s{offset}.{since}.{snapshot}, bound to the folder.
    let (offset, since, snapshot) = if let Some(t) = param(q, "$skiptoken") {
        let parts: Vec<&str> = t.trim_start_matches('s').split('.').collect();
        match (
            parts.first().and_then(|x| x.parse().ok()),
            parts.get(1),
            parts.get(2).and_then(|x| x.parse().ok()),
            parts.get(3),
        ) {
            (Some(o), Some(since), Some(snap), Some(f)) if *f == folder => {
                (o, since.parse::<u64>().ok(), snap)
            }
            _ => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid skip token."),
        }
    } else if let Some(t) = param(q, "$deltatoken") {
        match t.trim_start_matches('d').split_once('.') {
            Some((n, f)) if f == folder => match n.parse::<u64>() {
                Ok(n) => (0, Some(n), st.seq),
                Err(_) => {
                    return graph_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "Invalid delta token.",
                    )
                }
            },
            _ => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "Invalid delta token.",
                )
            }
        }
    } else {
        (0, None, st.seq)
    };
    if since.is_some_and(|s| s < st.token_floor) || snapshot < st.token_floor {
        let mut r = graph_error(
            StatusCode::GONE,
            "syncStateNotFound",
            "The sync state generation is not found.",
        );
        let fresh = format!(
            "{}/v1.0/me/mailFolders('{folder}')/messages/delta",
            st.base_url
        );
        if let Ok(v) = HeaderValue::from_str(&fresh) {
            r.headers_mut().insert("location", v);
        }
        return r;
    }
    let store = if messages { &st.messages } else { &st.contacts };
    let mut items: Vec<&Item> = store
        .values()
        .filter(|i| i.folder == folder && i.seq <= snapshot)
        .filter(|i| match since {
            None => !i.deleted,
            Some(s) => i.seq > s && !(i.deleted && i.created > s),
        })
        .collect();
    items.sort_by_key(|i| i.seq);
    let page: Vec<Value> = items
        .iter()
        .skip(offset)
        .take(size)
        .map(|i| {
            let kind = if messages {
                "#microsoft.graph.message"
            } else {
                "#microsoft.graph.contact"
            };
            let id = i.body["id"].clone();
            if i.deleted {
                return json!({"@odata.type": kind, "id": id, "@removed": {"reason": "deleted"}});
            }
            let full = if messages {
                st.render_message(i)
            } else {
                st.render_contact(i)
            };
            match (&i.changed, since) {
                // Only the changed properties for an update of a known item.
                (Some(keys), Some(s)) if messages && i.created <= s => {
                    let mut v =
                        json!({"@odata.type": kind, "id": id, "@odata.etag": full["@odata.etag"]});
                    for k in keys {
                        v[k.as_str()] = full[k.as_str()].clone();
                    }
                    v
                }
                _ => {
                    let mut v = full;
                    v["@odata.type"] = json!(kind);
                    v
                }
            }
        })
        .collect();
    let base = if messages {
        format!(
            "{}/v1.0/me/mailfolders('{folder}')/messages/delta",
            st.base_url
        )
    } else {
        format!("{}/v1.0/me/contacts/delta", st.base_url)
    };
    let mut out = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)", "value": page});
    if offset + size < items.len() {
        let since = since.map_or("-".to_string(), |s| s.to_string());
        out["@odata.nextLink"] = json!(format!(
            "{base}?$skiptoken=s{}.{since}.{snapshot}.{folder}",
            offset + size
        ));
    } else {
        out["@odata.deltaLink"] = json!(format!("{base}?$deltatoken=d{snapshot}.{folder}"));
    }
    let mut r = (StatusCode::OK, Json(out)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={size}")) {
        r.headers_mut().insert("preference-applied", v);
    }
    r
}

/// `POST /subscriptions`: validates the request, runs the validation
/// handshake against `notificationUrl`, then stores the subscription.
async fn create_subscription(s: &Shared, body: &[u8]) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(body) else {
        return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", "Invalid JSON");
    };
    if let Err(r) = check_expiry(&b) {
        return r;
    }
    let state_len = b["clientState"].as_str().map_or(0, str::len);
    if state_len > 128 {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "clientState is longer than 128 characters.",
        );
    }
    let Some(url) = b["notificationUrl"].as_str() else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "notificationUrl is required.",
        );
    };
    let challenge = format!("Validation: Testing client application {}", lock(s).ids + 1);
    let encoded: String = challenge
        .bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    let answered = match synchub_http::new_reqwest_client() {
        Ok(client) => client
            .post(format!("{url}{sep}validationToken={encoded}"))
            .header("content-type", "text/plain; charset=utf-8")
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .ok(),
        Err(_) => None,
    };
    let valid = match answered {
        Some(r)
            if r.status() == reqwest::StatusCode::OK
                && r.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|c| c.starts_with("text/plain")) =>
        {
            r.text().await.ok().as_deref() == Some(challenge.as_str())
        }
        _ => false,
    };
    if !valid {
        return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest",
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.");
    }
    let mut st = lock(s);
    let id = format!("7f105c7d-2dc5-4530-97cd-{:012}", st.ids + 1);
    st.ids += 1;
    let mut sub = b.clone();
    sub["id"] = json!(id);
    if let Some(o) = sub.as_object_mut() {
        o.remove("clientState");
    }
    sub["clientState"] = b["clientState"].clone();
    st.subscriptions.insert(id, sub.clone());
    (StatusCode::CREATED, Json(sub)).into_response()
}

/// Text between `start` and the next `'` (OData string literal, `''` unescaped).
fn literal_after(filter: &str, start: &str) -> Option<String> {
    let from = filter.find(start)? + start.len();
    let rest = &filter[from..];
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\'' {
            if chars.peek() == Some(&'\'') {
                out.push('\'');
                chars.next();
                continue;
            }
            return Some(out);
        }
        out.push(ch);
    }
    None
}

/// `GET /me/contacts`, with the one `$filter` form the connector uses: a
/// single-value extended property equal to a value.
fn list_contacts(st: &GraphState, q: &Pairs) -> Response {
    let wanted = match param(q, "$filter") {
        None => None,
        Some(f) => match (
            literal_after(f, "ep/id eq '"),
            literal_after(f, "ep/value eq '"),
        ) {
            (Some(id), Some(value)) if f.starts_with("singleValueExtendedProperties/Any(") => {
                Some((id, value))
            }
            _ => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "ErrorInvalidUrlQueryFilter",
                    "The query filter contains one or more invalid nodes.",
                )
            }
        },
    };
    let value: Vec<Value> = st
        .contacts
        .values()
        .filter(|c| !c.deleted)
        .filter(|c| match &wanted {
            None => true,
            Some((id, value)) => c.body["singleValueExtendedProperties"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(id))
                        && p["value"] == json!(value)
                }),
        })
        .map(|c| st.render_contact(c))
        .collect();
    (StatusCode::OK, Json(json!({"value": value}))).into_response()
}
