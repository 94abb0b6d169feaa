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
}

impl OdooRpc {
    /// A session over `http` (whose base URL is the Odoo server).
    pub fn new(http: HttpClient, login: Login) -> Self {
        OdooRpc {
            http,
            login,
            state: Mutex::new(None),
            ids: AtomicU64::new(1),
        }
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
