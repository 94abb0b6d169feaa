//! Odoo's external JSON-RPC API (`POST /jsonrpc`, services `common` and
//! `object`), with the provider's reading of answers: errors arrive with
//! HTTP 200 and an `error` member whose `data.name` is the Python exception,
//! so [`OdooPolicy`] classifies them for the HTTP runtime and [`Fault`]
//! classifies them for the connector.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use synchub_core::ConnectorError;
use synchub_http::{Assessment, HttpClient, ResponsePolicy, Verdict};
use tokio::sync::Mutex;

/// What an Odoo error (`error.data.name`) means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Bad login, password or API key (`odoo.exceptions.AccessDenied`).
    Denied,
    /// The user may not do this (`AccessError`): permanent for the record.
    Forbidden,
    /// The record is gone (`MissingError`).
    Missing,
    /// A business rule refused the values (`ValidationError`, `UserError`,
    /// `except_orm`, a database constraint): permanent.
    Invalid,
    /// A concurrent transaction touched the same rows (serialization
    /// failure, lock not available): re-read and try again.
    Concurrency,
    /// Anything else the server reported (a bug, a missing method).
    Server,
}

/// Classifies an exception name and message from an error envelope.
pub fn classify(name: &str, message: &str) -> FaultKind {
    let n = name.rsplit('.').next().unwrap_or(name);
    match n {
        "AccessDenied" => FaultKind::Denied,
        "AccessError" => FaultKind::Forbidden,
        "MissingError" => FaultKind::Missing,
        "ValidationError" | "UserError" | "Warning" | "except_orm" | "RedirectWarning"
        | "IntegrityError" => FaultKind::Invalid,
        "TransactionRollbackError"
        | "SerializationFailure"
        | "LockNotAvailable"
        | "DeadlockDetected" => FaultKind::Concurrency,
        _ if message.contains("could not serialize access")
            || message.contains("concurrent update") =>
        {
            FaultKind::Concurrency
        }
        _ => FaultKind::Server,
    }
}

/// An error envelope from Odoo.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What it means.
    pub kind: FaultKind,
    /// The exception name, e.g. `odoo.exceptions.ValidationError`.
    pub name: String,
    /// The server's message (never the traceback).
    pub message: String,
}

impl Fault {
    /// Reads the `error` member of a JSON-RPC answer.
    pub fn from_error(error: &Value) -> Fault {
        let data = error.get("data");
        let name = data
            .and_then(|d| d.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let message = data
            .and_then(|d| d.get("message"))
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .or_else(|| error.get("message").and_then(Value::as_str))
            .unwrap_or("no message")
            .trim()
            .to_string();
        Fault {
            kind: classify(&name, &message),
            name,
            message,
        }
    }
}

impl Fault {
    /// Reads a JSON-2 error body (`{"name", "message", "arguments", …}`,
    /// sent with a 4xx/5xx status).
    pub fn from_json2(status: u16, body: &Value) -> Fault {
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(if status == 401 {
                "werkzeug.exceptions.Unauthorized"
            } else {
                "unknown"
            })
            .to_string();
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or("no message")
            .trim()
            .to_string();
        let kind = match status {
            401 => FaultKind::Denied,
            _ => classify(&name, &message),
        };
        Fault {
            kind,
            name,
            message,
        }
    }
}

/// Which of Odoo's external APIs a connection speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum Api {
    /// `POST /jsonrpc`, `execute_kw` with positional arguments (every
    /// release; deprecated since 19).
    #[default]
    #[serde(rename = "jsonrpc")]
    JsonRpc,
    /// `POST /json/2/<model>/<method>` with named arguments and
    /// `Authorization: bearer <API key>` (19+).
    #[serde(rename = "json2")]
    Json2,
}

/// The JSON-2 body of a call the connector makes with `execute_kw`'s
/// positional `args` and `kwargs`; `None` for a method it has no names for.
pub fn json2_body(method: &str, args: &Value, kwargs: &Value) -> Option<Value> {
    let positional = args.as_array()?;
    let names: &[&str] = match method {
        "search_read" | "search" | "search_count" => &["domain"],
        "read" | "unlink" => &["ids"],
        "write" => &["ids", "vals"],
        "create" => &["vals_list"],
        "context_get" => &[],
        _ => return None,
    };
    if positional.len() > names.len() {
        return None;
    }
    let mut body = kwargs.as_object().cloned().unwrap_or_default();
    for (name, value) in names.iter().zip(positional) {
        let value = match (*name, value) {
            // `create(vals)` over JSON-RPC; JSON-2 always takes a list.
            ("vals_list", Value::Object(_)) => Value::Array(vec![value.clone()]),
            _ => value.clone(),
        };
        body.insert((*name).to_string(), value);
    }
    Some(Value::Object(body))
}

/// The policy for Odoo answers: throttling by status (Odoo Online answers
/// 429/503 under load), and the HTTP-200 error envelope read for access
/// denials (auth) and serialization failures (transient, retried for reads).
#[derive(Debug, Clone, Copy, Default)]
pub struct OdooPolicy;

impl ResponsePolicy for OdooPolicy {
    fn assess(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Assessment {
        let verdict = match status {
            429 | 503 => Verdict::Throttled { wait: None },
            502 | 504 => Verdict::Transient,
            401 => Verdict::Auth,
            200 => match serde_json::from_slice::<Value>(body)
                .ok()
                .as_ref()
                .and_then(|v| v.get("error"))
                .map(|e| Fault::from_error(e).kind)
            {
                Some(FaultKind::Denied) => Verdict::Auth,
                Some(FaultKind::Concurrency) => Verdict::Transient,
                Some(_) => Verdict::Permanent,
                None => Verdict::Ok,
            },
            _ => Verdict::Ok,
        };
        Assessment {
            verdict,
            cost: None,
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// Odoo answered with an error envelope.
    Fault(Fault),
    /// Transport, throttling, decoding or login trouble.
    Connector(ConnectorError),
}

impl CallError {
    /// The connector error this amounts to, naming `host` and `what`.
    pub fn into_connector(self, host: &str, what: &str) -> ConnectorError {
        match self {
            CallError::Connector(e) => e,
            CallError::Fault(f) => match f.kind {
                FaultKind::Denied => ConnectorError::Auth {
                    host: host.to_string(),
                    message: format!("{what}: {} ({})", f.message, f.name),
                },
                FaultKind::Concurrency => ConnectorError::Unavailable {
                    host: host.to_string(),
                    message: format!("{what}: {} ({})", f.message, f.name),
                    retry_after: None,
                },
                _ => ConnectorError::Protocol {
                    host: host.to_string(),
                    message: format!("{what}: {} ({})", f.message, f.name),
                },
            },
        }
    }
}

/// How to log in.
#[derive(Clone)]
pub struct Login {
    /// The database name.
    pub db: String,
    /// The user's login.
    pub login: String,
    /// The password or API key (used the same way over JSON-RPC).
    pub secret: SecretString,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("db", &self.db)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// The server's version, from `common.version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    /// The major release, e.g. 11 or 17.
    pub major: u32,
}

/// A JSON-RPC session with one Odoo database: logs in once (lazily) and
/// calls `execute_kw`.
#[derive(Debug)]
pub struct OdooRpc {
    http: HttpClient,
    login: Login,
    state: Mutex<Option<(i64, ServerVersion)>>,
    ids: AtomicU64,
    api: Api,
}

impl OdooRpc {
    /// A session over `http` (whose base URL is the Odoo server).
    pub fn new(http: HttpClient, login: Login) -> Self {
        OdooRpc {
            http,
            login,
            state: Mutex::new(None),
            ids: AtomicU64::new(1),
            api: Api::JsonRpc,
        }
    }

    /// The same session speaking `api`.
    pub fn with_api(mut self, api: Api) -> Self {
        self.api = api;
        self
    }

    /// The API this session speaks.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The host, as named in errors.
    pub fn host(&self) -> &str {
        self.http.host()
    }

    /// The login name.
    pub fn login_name(&self) -> &str {
        &self.login.login
    }

    /// One JSON-RPC call; `read_only` calls are retried after ambiguous
    /// failures, writes are not (the caller checks whether they landed).
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        args: Value,
        read_only: bool,
    ) -> Result<Value, CallError> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "jsonrpc": "2.0", "method": "call", "id": id,
            "params": {"service": service, "method": method, "args": args}
        });
        let mut req = self
            .http
            .post("/jsonrpc")
            .json(&body)
            .timeout(Duration::from_secs(120));
        if read_only {
            req = req.idempotent();
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Connector(e.into()))?;
        let status = resp.status().as_u16();
        let host = self.host().to_string();
        let answer: Value = serde_json::from_slice(resp.body()).map_err(|e| {
            // A gateway or a busy server answering in Odoo's place: the call
            // may be retried later (a write's outcome is unknown, and the
            // caller looks it up before writing again); not a refusal.
            if matches!(status, 429 | 502..=504) {
                return CallError::Connector(ConnectorError::Unavailable {
                    host: host.clone(),
                    message: format!("{service}.{method} answered HTTP {status}"),
                    retry_after: None,
                });
            }
            CallError::Connector(ConnectorError::Protocol {
                host: host.clone(),
                message: format!(
                    "{service}.{method} answered HTTP {status} with no JSON-RPC body: {e}"
                ),
            })
        })?;
        if let Some(error) = answer.get("error") {
            return Err(CallError::Fault(Fault::from_error(error)));
        }
        if status != 200 {
            return Err(CallError::Connector(ConnectorError::Protocol {
                host,
                message: format!("{service}.{method} answered HTTP {status}"),
            }));
        }
        answer.get("result").cloned().ok_or_else(|| {
            CallError::Connector(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("{service}.{method}: the answer has neither result nor error"),
            })
        })
    }

    /// Logs in (once) and returns the user id and server version.
    pub async fn session(&self) -> Result<(i64, ServerVersion), ConnectorError> {
        let mut state = self.state.lock().await;
        if let Some(s) = *state {
            return Ok(s);
        }
        let host = self.host().to_string();
        if self.api == Api::Json2 {
            let s = (0, self.json2_login(&host).await?);
            *state = Some(s);
            return Ok(s);
        }
        let version = self
            .call("common", "version", json!([]), true)
            .await
            .map_err(|e| e.into_connector(&host, "asking the server version"))?;
        let major = version
            .get("server_version_info")
            .and_then(|v| v.get(0))
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| ConnectorError::Protocol {
                host: host.clone(),
                message: format!("common.version has no server_version_info: {version}"),
            })?;
        let who = format!(
            "login `{}` on database `{}` at {host}",
            self.login.login, self.login.db
        );
        let uid = self
            .call(
                "common",
                "authenticate",
                json!([
                    self.login.db,
                    self.login.login,
                    self.login.secret.expose_secret(),
                    {}
                ]),
                true,
            )
            .await
            .map_err(|e| match e {
                CallError::Fault(f) => ConnectorError::Auth {
                    host: host.clone(),
                    message: format!("{who} failed: {} ({})", f.message, f.name),
                },
                CallError::Connector(e) => e,
            })?;
        let uid = match uid {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| ConnectorError::Auth {
            host: host.clone(),
            message: format!("{who} was refused: wrong login, password or API key"),
        })?;
        let s = (uid, ServerVersion { major });
        *state = Some(s);
        Ok(s)
    }

    /// `execute_kw(db, uid, secret, model, method, args, kwargs)`.
    pub async fn execute_kw(
        &self,
        model: &str,
        method: &str,
        args: Value,
        kwargs: Value,
        read_only: bool,
    ) -> Result<Value, CallError> {
        let (uid, _) = self.session().await.map_err(CallError::Connector)?;
        if self.api == Api::Json2 {
            let single_create = method == "create" && args.get(0).is_some_and(Value::is_object);
            let answer = self
                .json2_call(model, method, &args, &kwargs, read_only)
                .await?;
            // `create(vals)` answers an id over JSON-RPC, `[id]` over JSON-2.
            return Ok(match answer {
                Value::Array(mut ids) if single_create && ids.len() == 1 => ids.remove(0),
                other => other,
            });
        }
        self.call(
            "object",
            "execute_kw",
            json!([
                self.login.db,
                uid,
                self.login.secret.expose_secret(),
                model,
                method,
                args,
                kwargs
            ]),
            read_only,
        )
        .await
    }

    /// The server's version (`GET /web/version`), then one authenticated
    /// call (`res.users/context_get`) so that a wrong key is one auth error
    /// naming the login, database and host.
    async fn json2_login(&self, host: &str) -> Result<ServerVersion, ConnectorError> {
        let resp = self
            .http
            .get("/web/version")
            .idempotent()
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        let version: Value =
            serde_json::from_slice(resp.body()).map_err(|e| ConnectorError::Protocol {
                host: host.to_string(),
                message: format!(
                    "GET /web/version answered HTTP {} without JSON: {e}",
                    resp.status().as_u16()
                ),
            })?;
        let major = version
            .get("version_info")
            .and_then(|v| v.get(0))
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| ConnectorError::Protocol {
                host: host.to_string(),
                message: format!("GET /web/version has no version_info: {version}"),
            })?;
        if major < 19 {
            return Err(ConnectorError::Config(format!(
                "`api = \"json2\"`: the Odoo at {host} is version {major}; JSON-2 needs 19 or later \
                 (use the default `jsonrpc`)"
            )));
        }
        let who = format!(
            "API key of login `{}` on database `{}` at {host}",
            self.login.login, self.login.db
        );
        self.json2_call("res.users", "context_get", &json!([]), &json!({}), true)
            .await
            .map_err(|e| match e {
                CallError::Fault(f) if f.kind == FaultKind::Denied => ConnectorError::Auth {
                    host: host.to_string(),
                    message: format!("{who} was refused: {} ({})", f.message, f.name),
                },
                other => other.into_connector(host, "res.users/context_get"),
            })?;
        Ok(ServerVersion { major })
    }

    /// One JSON-2 call: `POST /json/2/<model>/<method>` with named
    /// arguments; errors arrive as 4xx/5xx with a JSON error body.
    async fn json2_call(
        &self,
        model: &str,
        method: &str,
        args: &Value,
        kwargs: &Value,
        read_only: bool,
    ) -> Result<Value, CallError> {
        let host = self.host().to_string();
        let body = json2_body(method, args, kwargs).ok_or_else(|| {
            CallError::Connector(ConnectorError::Protocol {
                host: host.clone(),
                message: format!("{model}.{method}: no JSON-2 form for these arguments"),
            })
        })?;
        let mut req = self
            .http
            .post(&format!("/json/2/{model}/{method}"))
            .header(
                "Authorization",
                &format!("bearer {}", self.login.secret.expose_secret()),
            )
            .header("X-Odoo-Database", &self.login.db)
            .json(&body)
            .timeout(Duration::from_secs(120));
        if read_only {
            req = req.idempotent();
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Connector(e.into()))?;
        let status = resp.status().as_u16();
        let answer: Result<Value, _> = serde_json::from_slice(resp.body());
        match (status, answer) {
            (200, Ok(v)) => Ok(v),
            (429 | 502..=504, _) => Err(CallError::Connector(ConnectorError::Unavailable {
                host,
                message: format!("{model}/{method} answered HTTP {status}"),
                retry_after: None,
            })),
            (400..=599, Ok(v)) if v.get("name").is_some() || status == 401 => {
                Err(CallError::Fault(Fault::from_json2(status, &v)))
            }
            (401, Err(_)) => Err(CallError::Fault(Fault::from_json2(status, &Value::Null))),
            (_, Ok(_)) => Err(CallError::Connector(ConnectorError::Protocol {
                host,
                message: format!("{model}/{method} answered HTTP {status}"),
            })),
            (_, Err(e)) => Err(CallError::Connector(ConnectorError::Protocol {
                host,
                message: format!("{model}/{method} answered HTTP {status} without JSON: {e}"),
            })),
        }
    }

    /// A read call whose faults all become connector errors naming `model.method`.
    pub async fn read(
        &self,
        model: &str,
        method: &str,
        args: Value,
        kwargs: Value,
    ) -> Result<Value, ConnectorError> {
        self.execute_kw(model, method, args, kwargs, true)
            .await
            .map_err(|e| e.into_connector(self.host(), &format!("{model}.{method}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_classified_by_exception_name() {
        let denied = json!({"code":200,"message":"Odoo Server Error","data":{"name":"odoo.exceptions.AccessDenied","message":"Access denied","arguments":[],"debug":"Traceback"}});
        assert_eq!(Fault::from_error(&denied).kind, FaultKind::Denied);
        let invalid = json!({"code":200,"message":"Odoo Server Error","data":{"name":"odoo.exceptions.ValidationError","message":"The e-mail is invalid"}});
        let f = Fault::from_error(&invalid);
        assert_eq!(f.kind, FaultKind::Invalid);
        assert_eq!(f.message, "The e-mail is invalid");
        let busy = json!({"data":{"name":"psycopg2.extensions.TransactionRollbackError","message":"could not serialize access due to concurrent update"}});
        assert_eq!(Fault::from_error(&busy).kind, FaultKind::Concurrency);
        let gone = json!({"data":{"name":"odoo.exceptions.MissingError","message":"Record does not exist or has been deleted."}});
        assert_eq!(Fault::from_error(&gone).kind, FaultKind::Missing);
    }

    #[test]
    fn the_policy_reads_errors_in_200_bodies() {
        let p = OdooPolicy;
        let h = HeaderMap::new();
        let denied = br#"{"jsonrpc":"2.0","id":1,"error":{"code":200,"data":{"name":"odoo.exceptions.AccessDenied","message":"Access denied"}}}"#;
        assert_eq!(p.assess(200, &h, denied).verdict, Verdict::Auth);
        let busy = br#"{"jsonrpc":"2.0","id":1,"error":{"code":200,"data":{"name":"psycopg2.extensions.TransactionRollbackError","message":"x"}}}"#;
        assert_eq!(p.assess(200, &h, busy).verdict, Verdict::Transient);
        let ok = br#"{"jsonrpc":"2.0","id":1,"result":[]}"#;
        assert_eq!(p.assess(200, &h, ok).verdict, Verdict::Ok);
        assert_eq!(
            p.assess(429, &h, b"").verdict,
            Verdict::Throttled { wait: None }
        );
    }
}
