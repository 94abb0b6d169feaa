//! Tryton 8 JSON-RPC: `POST /<db>/rpc/` with `{"id", "method", "params"}`,
//! a session from `common.db.login` sent as
//! `Authorization: Session base64(login:user_id:token)`, errors in HTTP
//! 200 bodies as `{"error": [name, args]}`, and tagged values
//! (`{"__class__": "Decimal", "decimal": "2400"}`, datetimes, dates).

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use reqwest::header::HeaderMap;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use synchub_core::ConnectorError;
use synchub_http::{Assessment, HttpClient, ResponsePolicy, Verdict};
use tokio::sync::Mutex;

/// What a Tryton error means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `ConcurrencyException`: the record changed since its `_timestamp`.
    Concurrency,
    /// `UserError`, `UserWarning`, `AccessError`, a domain validation:
    /// the values are refused for good.
    Invalid,
    /// The database is busy (SQLite locked, a serialization failure).
    Busy,
    /// Anything else (a server bug shown as its exception text).
    Server,
}

/// An error envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What it means.
    pub kind: FaultKind,
    /// The exception name (or the exception text for unnamed errors).
    pub name: String,
    /// The message.
    pub message: String,
}

impl Fault {
    /// Reads `error` (`[name, args]`).
    pub fn from_error(error: &Value) -> Fault {
        let name = error
            .get(0)
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let message = match error.get(1) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": "),
            _ => String::new(),
        };
        let kind = match name.as_str() {
            "ConcurrencyException" => FaultKind::Concurrency,
            "UserError"
            | "UserWarning"
            | "AccessError"
            | "DomainValidationError"
            | "RequiredValidationError"
            | "SizeValidationError"
            | "SelectionValidationError"
            | "DigitsValidationError"
            | "ForbiddenCharValidationError"
            | "ImportDataError"
            | "SQLConstraintError"
            | "RequiredValidationError " => FaultKind::Invalid,
            n if n.contains("ValidationError") => FaultKind::Invalid,
            n if n.contains("database is locked")
                || n.contains("could not serialize")
                || n == "DatabaseOperationalError" =>
            {
                FaultKind::Busy
            }
            _ => FaultKind::Server,
        };
        Fault {
            kind,
            name,
            message,
        }
    }

    /// One line naming the exception.
    pub fn describe(&self) -> String {
        if self.message.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.message, self.name)
        }
    }
}

/// The policy for Tryton answers: 429 (login rate limit) and 503
/// throttled, 401 (no or expired session) auth, and a busy database in a
/// 200 body transient.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrytonPolicy;

impl ResponsePolicy for TrytonPolicy {
    fn assess(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Assessment {
        let verdict = match status {
            429 | 503 => Verdict::Throttled { wait: None },
            502 | 504 => Verdict::Transient,
            401 | 403 => Verdict::Auth,
            200 => match serde_json::from_slice::<Value>(body)
                .ok()
                .as_ref()
                .and_then(|v| v.get("error"))
                .filter(|e| !e.is_null())
                .map(|e| Fault::from_error(e).kind)
            {
                Some(FaultKind::Busy) => Verdict::Transient,
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
    /// Tryton answered with an error envelope.
    Fault(Fault),
    /// Transport, throttling, login or decoding trouble.
    Connector(ConnectorError),
}

impl CallError {
    /// As a connector error naming `host` and `what`.
    pub fn into_connector(self, host: &str, what: &str) -> ConnectorError {
        match self {
            CallError::Connector(e) => e,
            CallError::Fault(f) if f.kind == FaultKind::Busy => ConnectorError::Unavailable {
                host: host.to_string(),
                message: format!("{what}: {}", f.describe()),
                retry_after: None,
            },
            CallError::Fault(f) => ConnectorError::Protocol {
                host: host.to_string(),
                message: format!("{what}: {}", f.describe()),
            },
        }
    }
}

/// A Tryton session: logs in lazily, again once when the session expired.
pub struct TrytonRpc {
    http: HttpClient,
    db: String,
    login: String,
    password: SecretString,
    session: Mutex<Option<(SecretString, Value)>>,
    ids: AtomicU64,
}

impl std::fmt::Debug for TrytonRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrytonRpc")
            .field("host", &self.http.host())
            .field("db", &self.db)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl TrytonRpc {
    /// A session for `login` on database `db` over `http`.
    pub fn new(http: HttpClient, db: String, login: String, password: SecretString) -> Self {
        TrytonRpc {
            http,
            db,
            login,
            password,
            session: Mutex::new(None),
            ids: AtomicU64::new(1),
        }
    }

    /// The host, as named in errors.
    pub fn host(&self) -> &str {
        self.http.host()
    }

    async fn post(
        &self,
        method: &str,
        params: Value,
        auth: Option<&SecretString>,
        read_only: bool,
    ) -> Result<(u16, Value), ConnectorError> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let mut req = self
            .http
            .post(&format!("{}/rpc/", self.db))
            .json(&json!({"id": id, "method": method, "params": params}))
            .timeout(Duration::from_secs(120));
        if let Some(a) = auth {
            req = req.header("Authorization", a.expose_secret());
        }
        if read_only {
            req = req.idempotent();
        }
        let resp = req.send().await.map_err(ConnectorError::from)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Ok((status, Value::Null));
        }
        let body: Value =
            serde_json::from_slice(resp.body()).map_err(|e| ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("{method} answered without a JSON-RPC body: {e}"),
            })?;
        Ok((status, body))
    }

    async fn login(&self) -> Result<(SecretString, Value), ConnectorError> {
        let host = self.host().to_string();
        let who = format!("login `{}` on database `{}` at {host}", self.login, self.db);
        let (status, body) = self
            .post(
                "common.db.login",
                json!([self.login, {"password": self.password.expose_secret()}, "en"]),
                None,
                true,
            )
            .await?;
        if status == 401 || status == 403 {
            return Err(ConnectorError::Auth {
                host,
                message: format!("{who} was refused: wrong login or password"),
            });
        }
        if status != 200 {
            return Err(ConnectorError::Protocol {
                host,
                message: format!("{who}: HTTP {status}"),
            });
        }
        if let Some(e) = body.get("error").filter(|e| !e.is_null()) {
            return Err(ConnectorError::Auth {
                host,
                message: format!("{who} failed: {}", Fault::from_error(e).describe()),
            });
        }
        let r = body.get("result");
        let uid = r.and_then(|r| r.get(0)).and_then(Value::as_i64);
        let token = r.and_then(|r| r.get(1)).and_then(Value::as_str);
        let (Some(uid), Some(token)) = (uid, token) else {
            return Err(ConnectorError::Auth {
                host,
                message: format!("{who} was refused: wrong login or password"),
            });
        };
        let raw = format!("{}:{uid}:{token}", self.login);
        let header = SecretString::from(format!(
            "Session {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ));
        // The company context: company-scoped fields need it.
        let (status, prefs) = self
            .post(
                "model.res.user.get_preferences",
                json!([true, {}]),
                Some(&header),
                true,
            )
            .await?;
        let prefs = prefs.get("result").cloned().unwrap_or(Value::Null);
        let mut ctx = serde_json::Map::new();
        if status == 200 {
            for k in ["company", "companies", "language"] {
                if let Some(v) = prefs.get(k).filter(|v| !v.is_null()) {
                    ctx.insert(k.into(), v.clone());
                }
            }
        }
        Ok((header, Value::Object(ctx)))
    }

    async fn current(&self, stale: bool) -> Result<(SecretString, Value), ConnectorError> {
        let mut s = self.session.lock().await;
        if stale {
            *s = None;
        }
        if let Some((h, c)) = &*s {
            return Ok((h.clone(), c.clone()));
        }
        let fresh = self.login().await?;
        *s = Some(fresh.clone());
        Ok(fresh)
    }

    /// Logs in (once) and checks the session.
    pub async fn check(&self) -> Result<(), ConnectorError> {
        self.current(false).await.map(|_| ())
    }

    /// `model.<model>.<method>` with `args` followed by the context
    /// (`extra` merged over the session's company context). An expired
    /// session is renewed once.
    pub async fn model(
        &self,
        model: &str,
        method: &str,
        args: Vec<Value>,
        extra: Option<&Value>,
        read_only: bool,
    ) -> Result<Value, CallError> {
        let full = format!("model.{model}.{method}");
        for attempt in 0..2 {
            let (header, mut ctx) = self
                .current(attempt > 0)
                .await
                .map_err(CallError::Connector)?;
            if let (Some(Value::Object(extra)), Value::Object(c)) = (extra, &mut ctx) {
                for (k, v) in extra {
                    c.insert(k.clone(), v.clone());
                }
            }
            let mut params = args.clone();
            params.push(ctx);
            let (status, body) = self
                .post(&full, Value::Array(params), Some(&header), read_only)
                .await
                .map_err(CallError::Connector)?;
            if status == 401 || status == 403 {
                if attempt == 0 {
                    tracing::info!(host = %self.host(), "tryton session expired; logging in again");
                    continue;
                }
                return Err(CallError::Connector(ConnectorError::Auth {
                    host: self.host().to_string(),
                    message: format!(
                        "{full}: the session of `{}` was refused twice (HTTP {status})",
                        self.login
                    ),
                }));
            }
            // A gateway or a busy server answering in Tryton's place: try
            // again later (a write's outcome is unknown; the caller looks it
            // up before writing again), never a refusal of the record.
            if matches!(status, 429 | 502..=504) {
                return Err(CallError::Connector(ConnectorError::Unavailable {
                    host: self.host().to_string(),
                    message: format!("{full}: HTTP {status}"),
                    retry_after: None,
                }));
            }
            if status != 200 {
                return Err(CallError::Connector(ConnectorError::Protocol {
                    host: self.host().to_string(),
                    message: format!("{full}: HTTP {status}"),
                }));
            }
            if let Some(e) = body.get("error").filter(|e| !e.is_null()) {
                return Err(CallError::Fault(Fault::from_error(e)));
            }
            return Ok(body.get("result").cloned().unwrap_or(Value::Null));
        }
        Err(CallError::Connector(ConnectorError::Auth {
            host: self.host().to_string(),
            message: format!("{full}: no session"),
        }))
    }

    /// A read whose faults become connector errors naming the method.
    pub async fn read(
        &self,
        model: &str,
        method: &str,
        args: Vec<Value>,
        extra: Option<&Value>,
    ) -> Result<Value, ConnectorError> {
        self.model(model, method, args, extra, true)
            .await
            .map_err(|e| e.into_connector(self.host(), &format!("model.{model}.{method}")))
    }
}

/// A tagged datetime for domains.
pub fn datetime_value(t: DateTime<Utc>) -> Value {
    json!({"__class__": "datetime", "year": t.year(), "month": t.month(), "day": t.day(),
           "hour": t.hour(), "minute": t.minute(), "second": t.second(),
           "microsecond": t.timestamp_subsec_micros()})
}

/// A tagged decimal.
pub fn decimal_value(d: Decimal) -> Value {
    json!({"__class__": "Decimal", "decimal": d.normalize().to_string()})
}

/// Reads a tagged datetime (naive UTC).
pub fn datetime(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let v = v?;
    if v.get("__class__").and_then(Value::as_str) != Some("datetime") {
        return None;
    }
    let n = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|x| u32::try_from(x).ok())
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(v.get("year")?.as_i64()?).ok()?,
        n("month")?,
        n("day")?,
    )?;
    let t = date.and_hms_micro_opt(
        n("hour")?,
        n("minute")?,
        n("second")?,
        n("microsecond").unwrap_or(0),
    )?;
    Some(NaiveDateTime::and_utc(&t))
}

/// Reads a tagged date.
pub fn date(v: Option<&Value>) -> Option<NaiveDate> {
    let v = v?;
    let n = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|x| u32::try_from(x).ok())
    };
    NaiveDate::from_ymd_opt(
        i32::try_from(v.get("year")?.as_i64()?).ok()?,
        n("month")?,
        n("day")?,
    )
}

/// Reads a tagged decimal (or a plain number).
pub fn decimal(v: Option<&Value>) -> Option<Decimal> {
    match v? {
        Value::Object(o) => o
            .get("decimal")
            .and_then(Value::as_str)
            .and_then(|s| Decimal::from_str(s).ok()),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let f = Fault::from_error(&json!([
            "ConcurrencyException",
            "Records were modified in the meanwhile"
        ]));
        assert_eq!(f.kind, FaultKind::Concurrency);
        let f = Fault::from_error(&json!([
            "UserError",
            [
                "You are trying to write to records \"9\" of \"Party\" that don't exist.",
                "",
                null
            ]
        ]));
        assert_eq!(f.kind, FaultKind::Invalid);
        assert!(f.describe().contains("don't exist"));
        let f = Fault::from_error(&json!(["database is locked", "Traceback"]));
        assert_eq!(f.kind, FaultKind::Busy);
        let p = TrytonPolicy;
        let h = HeaderMap::new();
        assert_eq!(
            p.assess(200, &h, br#"{"id":1,"error":["database is locked",""]}"#)
                .verdict,
            Verdict::Transient
        );
        assert_eq!(
            p.assess(200, &h, br#"{"id":1,"result":[]}"#).verdict,
            Verdict::Ok
        );
        assert_eq!(p.assess(401, &h, b"").verdict, Verdict::Auth);
    }

    #[test]
    fn tagged_values_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-12-04T18:16:09.753949Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        let v = t.map(datetime_value);
        assert_eq!(datetime(v.as_ref()), t);
        assert_eq!(
            decimal(Some(&json!({"__class__":"Decimal","decimal":"450.50"}))),
            Decimal::from_str("450.50").ok()
        );
        assert_eq!(
            date(Some(
                &json!({"__class__":"date","year":2026,"month":12,"day":4})
            )),
            NaiveDate::from_ymd_opt(2026, 12, 4)
        );
    }
}
