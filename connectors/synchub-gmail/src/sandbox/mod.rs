//! A stateful fake of the Gmail API v1 and the People API v1 contacts
//! methods, served by axum on a loopback port (tests, demo). It follows
//! `shared/api-notes/gmail.md` and its fixtures: see [`state`] for the
//! rules it enforces.

// Handlers return the HTTP answer as the error of a failed check, by design.
#![allow(clippy::result_large_err)]

pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use state::google_error;
pub use state::{Event, Fault, GmailState, Person};

type Shared = Arc<Mutex<GmailState>>;
type Pairs = Vec<(String, String)>;

/// The router over a shared account.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/token", post(token))
        .fallback(api)
        .with_state(state)
}

/// A running sandbox.
#[derive(Debug)]
pub struct SandboxHandle {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    state: Shared,
    stop: Option<oneshot::Sender<()>>,
}

/// Serves a fresh account for `email` on an ephemeral loopback port.
pub async fn spawn(
    email: &str,
    access_token: &str,
    refresh_token: &str,
) -> std::io::Result<SandboxHandle> {
    let state = Arc::new(Mutex::new(GmailState::new(
        email,
        access_token,
        refresh_token,
    )));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let app = router(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "gmail sandbox stopped");
        }
    });
    Ok(SandboxHandle {
        base_url,
        state,
        stop: Some(stop),
    })
}

impl SandboxHandle {
    /// Locks the account (never hold across an await).
    pub fn account(&self) -> MutexGuard<'_, GmailState> {
        lock(&self.state)
    }

    /// Stops serving.
    pub fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn lock(s: &Shared) -> MutexGuard<'_, GmailState> {
    match s.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn not_found() -> Response {
    let m = "Requested entity was not found.";
    reply(
        StatusCode::NOT_FOUND,
        google_error(404, "NOT_FOUND", m, Some("notFound")),
    )
}

fn bad_request(message: &str) -> Response {
    reply(
        StatusCode::BAD_REQUEST,
        google_error(400, "INVALID_ARGUMENT", message, Some("invalidArgument")),
    )
}

fn param<'a>(q: &'a Pairs, name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn params<'a>(q: &'a Pairs, name: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn page_size(q: &Pairs, name: &str, default: usize, max: usize) -> Result<usize, Response> {
    match param(q, name) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad_request(&format!("Invalid {name}: {v}"))),
        },
    }
}

/// The OAuth token endpoint (refresh grant only).
async fn token(State(s): State<Shared>, Form(form): Form<Pairs>) -> Response {
    let mut st = lock(&s);
    st.log.push("POST /token".into());
    let grant = param(&form, "grant_type").unwrap_or("");
    let refresh = param(&form, "refresh_token").unwrap_or("");
    if grant != "refresh_token" {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        );
    }
    match st.refresh(refresh) {
        Some(t) => reply(
            StatusCode::OK,
            json!({"access_token": t, "expires_in": 3599, "token_type": "Bearer",
                   "scope": "https://www.googleapis.com/auth/gmail.readonly https://www.googleapis.com/auth/contacts"}),
        ),
        None => reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        ),
    }
}

async fn api(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<Pairs>,
    body: Bytes,
) -> Response {
    let mut st = lock(&s);
    st.log.push(format!(
        "{method} {}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
    ));
    if let Some(n) = st.expire_tokens_after.as_mut() {
        // The access token dies between two requests of a run.
        if *n == 0 {
            st.expire_tokens_after = None;
            st.access_tokens.clear();
        } else {
            *n -= 1;
        }
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if !st.authorized(auth) {
        let mut r = reply(
            StatusCode::UNAUTHORIZED,
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                Some("authError"),
            ),
        );
        r.headers_mut().insert(
            "www-authenticate",
            axum::http::HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
        );
        return r;
    }
    if let Some(fault) = st.faults.pop_front() {
        return match fault {
            Fault::UserRateLimit => reply(
                StatusCode::FORBIDDEN,
                json!({"error": {"code": 403, "message": "User Rate Limit Exceeded",
                    "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded", "message": "User Rate Limit Exceeded"}]}}),
            ),
            Fault::TooMany => reply(
                StatusCode::TOO_MANY_REQUESTS,
                google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Too many concurrent requests for user",
                    Some("rateLimitExceeded"),
                ),
            ),
            Fault::Backend => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                google_error(503, "UNAVAILABLE", "Backend Error", Some("backendError")),
            ),
        };
    }
    let path = uri.path().to_string();
    if let Some(rest) = path.strip_prefix("/gmail/v1/users/") {
        let (user, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if user != "me" && !user.eq_ignore_ascii_case(&st.email) {
            return reply(
                StatusCode::FORBIDDEN,
                google_error(
                    403,
                    "PERMISSION_DENIED",
                    "Delegation denied",
                    Some("forbidden"),
                ),
            );
        }
        if method != Method::GET {
            return not_found();
        }
        return gmail(&mut st, rest, &q);
    }
    if let Some(rest) = path.strip_prefix("/v1/") {
        return people(&mut st, &method, rest, &q, &body);
    }
    not_found()
}

fn charge(st: &mut GmailState, units: u32) -> Option<Response> {
    (!st.charge(units)).then(|| {
        reply(
            StatusCode::FORBIDDEN,
            json!({"error": {"code": 403, "message": "User Rate Limit Exceeded",
                "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded", "message": "User Rate Limit Exceeded"}]}}),
        )
    })
}

fn gmail(st: &mut GmailState, rest: &str, q: &Pairs) -> Response {
    match rest {
        "profile" => {
            if let Some(r) = charge(st, 1) {
                return r;
            }
            reply(
                StatusCode::OK,
                json!({"emailAddress": st.email, "messagesTotal": st.messages.len(),
                       "threadsTotal": st.messages.values().map(|m| &m.thread_id).collect::<std::collections::HashSet<_>>().len(),
                       "historyId": st.history_id.to_string()}),
            )
        }
        "messages" => {
            if let Some(r) = charge(st, 5) {
                return r;
            }
            list_messages(st, q)
        }
        "history" => {
            if let Some(r) = charge(st, 2) {
                return r;
            }
            list_history(st, q)
        }
        _ => match rest.strip_prefix("messages/") {
            Some(id) if !id.contains('/') => {
                if let Some(r) = charge(st, 5) {
                    return r;
                }
                let format = param(q, "format").unwrap_or("full");
                if !matches!(format, "minimal" | "metadata" | "full" | "raw") {
                    return bad_request(&format!("Invalid format: {format}"));
                }
                let wanted: Vec<String> = params(q, "metadataHeaders")
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                match st.messages.get(id) {
                    Some(m) => reply(StatusCode::OK, st.render_message(m, format, &wanted)),
                    None => not_found(),
                }
            }
            _ => not_found(),
        },
    }
}

/// A page token bound to the query it continues.
fn bound_token(prefix: &str, offset: usize, binding: &str) -> String {
    format!("{prefix}{offset}-{:016x}", fnv(binding))
}

fn read_token(token: &str, prefix: &str, binding: &str) -> Option<usize> {
    let rest = token.strip_prefix(prefix)?;
    let (offset, hash) = rest.split_once('-')?;
    (hash == format!("{:016x}", fnv(binding)))
        .then(|| offset.parse().ok())
        .flatten()
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn list_messages(st: &GmailState, q: &Pairs) -> Response {
    let size = match page_size(q, "maxResults", 100, 500) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let labels = params(q, "labelIds");
    let spam_trash = param(q, "includeSpamTrash") == Some("true");
    let binding = format!("{labels:?}|{spam_trash}");
    let offset = match param(q, "pageToken") {
        None => 0,
        Some(t) => match read_token(t, "m", &binding) {
            Some(o) => o,
            None => return bad_request("Invalid pageToken"),
        },
    };
    let mut all: Vec<&state::Message> = st
        .messages
        .values()
        .filter(|m| labels.iter().all(|l| m.labels.iter().any(|x| x == l)))
        .filter(|m| spam_trash || !m.labels.iter().any(|l| l == "SPAM" || l == "TRASH"))
        .collect();
    // Newest first, as Gmail lists.
    all.sort_by(|a, b| (b.internal_date, &b.id).cmp(&(a.internal_date, &a.id)));
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(size)
        .map(|m| json!({"id": m.id, "threadId": m.thread_id}))
        .collect();
    let mut out = json!({"resultSizeEstimate": all.len()});
    if !page.is_empty() {
        out["messages"] = json!(page);
    }
    if offset + size < all.len() {
        out["nextPageToken"] = json!(bound_token("m", offset + size, &binding));
    }
    reply(StatusCode::OK, out)
}

fn list_history(st: &GmailState, q: &Pairs) -> Response {
    let Some(start) = param(q, "startHistoryId") else {
        return bad_request("Required parameter: startHistoryId");
    };
    let Ok(start) = start.parse::<u64>() else {
        return bad_request(&format!("Invalid startHistoryId: {start}"));
    };
    // Out of retention (or 0): the documented 404.
    if start == 0 || start < st.history_floor || start > st.history_id {
        return not_found();
    }
    let size = match page_size(q, "maxResults", 100, 500) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let types = params(q, "historyTypes");
    let label = param(q, "labelId");
    let binding = format!("{start}|{types:?}|{label:?}");
    let offset = match param(q, "pageToken") {
        None => 0,
        Some(t) => match read_token(t, "h", &binding) {
            Some(o) => o,
            None => return bad_request("Invalid pageToken"),
        },
    };
    let kind = |e: &Event| match e {
        Event::Added => "messageAdded",
        Event::Deleted => "messageDeleted",
        Event::LabelsAdded(_) => "labelAdded",
        Event::LabelsRemoved(_) => "labelRemoved",
    };
    let matching: Vec<&state::History> = st
        .history
        .iter()
        .filter(|h| h.id > start)
        .filter(|h| types.is_empty() || types.contains(&kind(&h.event)))
        .filter(|h| match label {
            None => true,
            Some(l) => st
                .messages
                .get(&h.message_id)
                .is_some_and(|m| m.labels.iter().any(|x| x == l)),
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(size)
        .map(|h| {
            let labels = st
                .messages
                .get(&h.message_id)
                .map(|m| m.labels.clone())
                .unwrap_or_default();
            let msg = json!({"id": h.message_id, "threadId": h.thread_id, "labelIds": labels});
            let bare = json!({"id": h.message_id, "threadId": h.thread_id});
            let mut rec = json!({"id": h.id.to_string(), "messages": [bare.clone()]});
            match &h.event {
                Event::Added => rec["messagesAdded"] = json!([{"message": msg}]),
                Event::Deleted => rec["messagesDeleted"] = json!([{"message": bare}]),
                Event::LabelsAdded(l) => {
                    rec["labelsAdded"] = json!([{"message": msg, "labelIds": l}])
                }
                Event::LabelsRemoved(l) => {
                    rec["labelsRemoved"] = json!([{"message": msg, "labelIds": l}])
                }
            }
            rec
        })
        .collect();
    let mut out = json!({"historyId": st.history_id.to_string()});
    if !page.is_empty() {
        out["history"] = json!(page);
    }
    if offset + size < matching.len() {
        out["nextPageToken"] = json!(bound_token("h", offset + size, &binding));
    }
    reply(StatusCode::OK, out)
}

const PERSON_FIELDS: [&str; 7] = [
    "clientData",
    "names",
    "emailAddresses",
    "phoneNumbers",
    "organizations",
    "addresses",
    "metadata",
];

fn field_mask(q: &Pairs, name: &str) -> Result<Vec<String>, Response> {
    let Some(v) = param(q, name) else {
        return Err(bad_request(&format!(
            "{name} mask is required. Please specify one or more valid paths."
        )));
    };
    let fields: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(bad) = fields.iter().find(|f| !PERSON_FIELDS.contains(&f.as_str())) {
        return Err(bad_request(&format!("Invalid {name} mask path: \"{bad}\"")));
    }
    Ok(fields)
}

fn people(st: &mut GmailState, method: &Method, rest: &str, q: &Pairs, body: &[u8]) -> Response {
    if rest == "people/me/connections" && method == Method::GET {
        return list_connections(st, q);
    }
    if rest == "people:searchContacts" && method == Method::GET {
        if let Err(r) = field_mask(q, "readMask") {
            return r;
        }
        let Some(query) = param(q, "query").map(str::to_lowercase) else {
            return bad_request("query is required");
        };
        // Prefix match on names and email addresses, as the API documents.
        let hits: Vec<Value> = st
            .people
            .values()
            .filter(|p| !p.deleted)
            .filter(|p| {
                let mut words: Vec<String> = Vec::new();
                for n in p.body["names"].as_array().into_iter().flatten() {
                    for k in ["unstructuredName", "givenName", "familyName", "displayName"] {
                        words.extend(n[k].as_str().map(str::to_lowercase));
                    }
                }
                for e in p.body["emailAddresses"].as_array().into_iter().flatten() {
                    words.extend(e["value"].as_str().map(str::to_lowercase));
                }
                words.iter().any(|w| w.starts_with(&query))
            })
            .map(|p| json!({"person": st.render_person(p)}))
            .collect();
        return reply(StatusCode::OK, json!({"results": hits}));
    }
    if rest == "people:createContact" && method == Method::POST {
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return bad_request("Invalid JSON payload received.");
        };
        // People refuses a person without any contact field (400).
        let has_field = [
            "names",
            "emailAddresses",
            "phoneNumbers",
            "organizations",
            "addresses",
        ]
        .iter()
        .any(|k| body[*k].as_array().is_some_and(|a| !a.is_empty()));
        if !has_field {
            return bad_request("Must specify a non-metadata contact field on the person.");
        }
        let name = st.add_person(strip_server_fields(body));
        let p = &st.people[&name];
        return reply(StatusCode::OK, st.render_person(p));
    }
    let Some(rest) = rest.strip_prefix("people/") else {
        return not_found();
    };
    let (id, action) = rest.split_once(':').unwrap_or((rest, ""));
    let name = format!("people/{id}");
    let live = st.people.get(&name).filter(|p| !p.deleted).cloned();
    let Some(current) = live else {
        return not_found();
    };
    match (method.as_str(), action) {
        ("GET", "") => {
            if let Err(r) = field_mask(q, "personFields") {
                return r;
            }
            reply(StatusCode::OK, st.render_person(&current))
        }
        ("PATCH", "updateContact") => {
            let fields = match field_mask(q, "updatePersonFields") {
                Ok(f) => f,
                Err(r) => return r,
            };
            let Ok(body) = serde_json::from_slice::<Value>(body) else {
                return bad_request("Invalid JSON payload received.");
            };
            let Some(etag) = body["etag"].as_str() else {
                return bad_request("Request must set person.etag.");
            };
            if etag != current.etag {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"code": 400, "status": "FAILED_PRECONDITION",
                        "message": "Request person.etag is different than the current person.etag. Clear local cache and get the latest person.",
                        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "FAILED_PRECONDITION", "domain": "people.googleapis.com"}]}}),
                );
            }
            let mut next = current.body.clone();
            for f in &fields {
                next[f.as_str()] = body.get(f.as_str()).cloned().unwrap_or(json!([]));
            }
            st.write_person(&name, strip_server_fields(next), false);
            let p = &st.people[&name];
            reply(StatusCode::OK, st.render_person(p))
        }
        ("DELETE", "deleteContact") => {
            st.write_person(&name, json!({}), true);
            reply(StatusCode::OK, json!({}))
        }
        _ => not_found(),
    }
}

fn strip_server_fields(mut body: Value) -> Value {
    if let Some(o) = body.as_object_mut() {
        o.remove("etag");
        o.remove("resourceName");
        o.remove("metadata");
    }
    body
}

fn list_connections(st: &GmailState, q: &Pairs) -> Response {
    if let Err(r) = field_mask(q, "personFields") {
        return r;
    }
    let size = match page_size(q, "pageSize", 100, 1000) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let request_sync = param(q, "requestSyncToken") == Some("true");
    let since = match param(q, "syncToken") {
        None => None,
        Some(t) => match t.strip_prefix("st").and_then(|s| s.parse::<u64>().ok()) {
            Some(seq) if seq < st.sync_floor => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"code": 400,
                        "message": "Sync token is expired. Clear local cache and retry call without the sync token.",
                        "status": "FAILED_PRECONDITION",
                        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "EXPIRED_SYNC_TOKEN", "domain": "people.googleapis.com"}]}}),
                )
            }
            Some(seq) => Some(seq),
            None => return bad_request("Invalid sync token"),
        },
    };
    // A page token pins the snapshot and the first call's parameters.
    let binding = format!("{size}|{since:?}|{request_sync}");
    let (offset, snapshot) = match param(q, "pageToken") {
        None => (0, st.people_seq),
        Some(t) => {
            let parsed = t
                .split_once('.')
                .and_then(|(a, b)| Some((read_token(a, "pp", &binding)?, b.parse::<u64>().ok()?)));
            match parsed {
                Some(p) => p,
                None => {
                    return bad_request(
                        "Parameters of a paged request must match the first call (pageToken)",
                    )
                }
            }
        }
    };
    let mut items: Vec<&Person> = st
        .people
        .values()
        .filter(|p| p.seq <= snapshot)
        .filter(|p| match since {
            None => !p.deleted,
            Some(s) => p.seq > s,
        })
        .collect();
    items.sort_by_key(|p| p.seq);
    let page: Vec<Value> = items
        .iter()
        .skip(offset)
        .take(size)
        .map(|p| st.render_person(p))
        .collect();
    let mut out = json!({"totalItems": items.len()});
    if !page.is_empty() {
        out["connections"] = json!(page);
    }
    if offset + size < items.len() {
        out["nextPageToken"] = json!(format!(
            "{}.{snapshot}",
            bound_token("pp", offset + size, &binding)
        ));
    } else if request_sync {
        out["nextSyncToken"] = json!(format!("st{snapshot}"));
    }
    reply(StatusCode::OK, out)
}
