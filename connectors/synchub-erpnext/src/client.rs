//! The Frappe REST resource API of one site (`/api/resource/{DocType}`):
//! list with `fields` / `filters` / `or_filters` (JSON in the query string),
//! `order_by`, `limit_start` / `limit_page_length`; get, insert, update and
//! delete one document; and the site's naive local times.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use synchub_core::ConnectorError;
use synchub_http::HttpClient;

use crate::policy::{ErrorKind, FrappeError};

/// A document as JSON.
pub type Doc = Map<String, Value>;

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// The site answered an error (`exc_type`, status).
    Frappe(FrappeError),
    /// Transport, throttling after retries, decoding.
    Connector(ConnectorError),
}

impl CallError {
    /// The connector error a failed read amounts to, naming `what`.
    pub fn into_connector(self, host: &str, what: &str) -> ConnectorError {
        match self {
            CallError::Connector(e) => e,
            CallError::Frappe(f) => match f.kind {
                ErrorKind::Auth => ConnectorError::Auth {
                    host: host.to_string(),
                    message: format!(
                        "{what}: {f}; check `api_key` and `api_secret` (regenerate them on the \
                         user's API Access section if they were reset)"
                    ),
                },
                ErrorKind::Forbidden => ConnectorError::Auth {
                    host: host.to_string(),
                    message: format!(
                        "{what}: {f}; give the API user a role that may read it (see \
                         docs/connectors/erpnext.md)"
                    ),
                },
                ErrorKind::Transient => ConnectorError::Unavailable {
                    host: host.to_string(),
                    message: format!("{what}: {f}"),
                    retry_after: None,
                },
                _ => ConnectorError::Protocol {
                    host: host.to_string(),
                    message: format!("{what}: {f}"),
                },
            },
        }
    }
}

/// One list request.
#[derive(Debug, Clone)]
pub struct ListQuery<'a> {
    /// The DocType, e.g. `Customer`.
    pub doctype: &'a str,
    /// Columns (`["*"]` for every column of the main table).
    pub fields: Value,
    /// AND filters: `[[field, op, value]]` or `[[child doctype, field, op, value]]`.
    pub filters: Value,
    /// OR filters, ANDed with `filters` as a group.
    pub or_filters: Option<Value>,
    /// `modified asc, name asc`.
    pub order_by: &'a str,
    /// Offset.
    pub start: u32,
    /// Page length (never 0, which Frappe reads as "all").
    pub length: u32,
}

/// A Frappe site.
#[derive(Debug, Clone)]
pub struct Site {
    http: HttpClient,
    offset: FixedOffset,
}

/// Encodes one path segment (DocType names hold spaces, document names may
/// hold `/`, `#` or CJK text).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Site {
    /// A site behind `http` whose local times are at `offset`.
    pub fn new(http: HttpClient, offset: FixedOffset) -> Self {
        Site { http, offset }
    }

    /// The host, as named in errors.
    pub fn host(&self) -> &str {
        self.http.host()
    }

    /// A site-local naive time (`2024-06-01 10:15:42.123456`) as UTC.
    pub fn parse_time(&self, v: Option<&Value>) -> Option<DateTime<Utc>> {
        let s = v?.as_str()?;
        let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok()?;
        self.offset
            .from_local_datetime(&naive)
            .single()
            .map(|t| t.with_timezone(&Utc))
    }

    /// A UTC time as the site writes it (naive, local, microseconds).
    pub fn local_text(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.offset)
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string()
    }

    async fn answer(
        &self,
        req: synchub_http::RequestBuilder<'_>,
    ) -> Result<(u16, Value), CallError> {
        let resp = req
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| CallError::Connector(e.into()))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(CallError::Frappe(FrappeError::from_response(
                status,
                resp.body(),
            )));
        }
        let v: Value = serde_json::from_slice(resp.body()).map_err(|e| {
            CallError::Connector(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("HTTP {status} without a JSON body: {e}"),
            })
        })?;
        Ok((status, v))
    }

    fn data(&self, v: Value, what: &str) -> Result<Value, CallError> {
        match v {
            Value::Object(mut m) if m.contains_key("data") => {
                Ok(m.remove("data").unwrap_or(Value::Null))
            }
            other => Err(CallError::Connector(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!(
                    "{what}: the answer has no `data`: {}",
                    other.to_string().chars().take(200).collect::<String>()
                ),
            })),
        }
    }

    /// One page of a list.
    pub async fn list(&self, q: &ListQuery<'_>) -> Result<Vec<Doc>, CallError> {
        let path = format!("/api/resource/{}", segment(q.doctype));
        let fields = q.fields.to_string();
        let filters = q.filters.to_string();
        let start = q.start.to_string();
        let length = q.length.max(1).to_string();
        let or_filters = q.or_filters.as_ref().map(Value::to_string);
        let mut pairs: Vec<(&str, &str)> = vec![
            ("fields", &fields),
            ("filters", &filters),
            ("order_by", q.order_by),
            ("limit_start", &start),
            ("limit_page_length", &length),
        ];
        if let Some(o) = &or_filters {
            pairs.push(("or_filters", o));
        }
        let (_, v) = self.answer(self.http.get(&path).query(&pairs)).await?;
        let data = self.data(v, &format!("listing {}", q.doctype))?;
        match data {
            Value::Array(rows) => Ok(rows
                .into_iter()
                .filter_map(|r| match r {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .collect()),
            _ => Err(CallError::Connector(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("listing {}: `data` is not a list", q.doctype),
            })),
        }
    }

    /// One document with its child tables; `None` when it does not exist.
    pub async fn get(&self, doctype: &str, name: &str) -> Result<Option<Doc>, CallError> {
        let path = format!("/api/resource/{}/{}", segment(doctype), segment(name));
        match self.answer(self.http.get(&path)).await {
            Ok((_, v)) => match self.data(v, &format!("reading {doctype} {name}"))? {
                Value::Object(m) => Ok(Some(m)),
                _ => Ok(None),
            },
            Err(CallError::Frappe(f)) if f.kind == ErrorKind::Missing => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Inserts a document; the document as saved. Not retried after an
    /// ambiguous failure: the caller looks it up by its reference first.
    pub async fn insert(&self, doctype: &str, body: &Value) -> Result<Doc, CallError> {
        let path = format!("/api/resource/{}", segment(doctype));
        let (_, v) = self.answer(self.http.post(&path).json(body)).await?;
        self.doc(v, &format!("creating a {doctype}"))
    }

    /// Updates a document with a sparse body (child tables given are
    /// replaced whole); with `modified` in the body, Frappe refuses a stale
    /// base with `TimestampMismatchError`. Retry-safe: the same body twice
    /// gives the same document (the second is refused as stale at worst).
    pub async fn update(&self, doctype: &str, name: &str, body: &Value) -> Result<Doc, CallError> {
        let path = format!("/api/resource/{}/{}", segment(doctype), segment(name));
        let (_, v) = self
            .answer(self.http.put(&path).json(body).idempotent())
            .await?;
        self.doc(v, &format!("updating {doctype} {name}"))
    }

    /// Deletes a document (HTTP 202 `{"data": "ok"}`).
    pub async fn delete(&self, doctype: &str, name: &str) -> Result<(), CallError> {
        let path = format!("/api/resource/{}/{}", segment(doctype), segment(name));
        self.answer(self.http.delete(&path).idempotent())
            .await
            .map(|_| ())
    }

    fn doc(&self, v: Value, what: &str) -> Result<Doc, CallError> {
        match self.data(v, what)? {
            Value::Object(m) => Ok(m),
            other => Err(CallError::Connector(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("{what}: `data` is not a document: {other}"),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("Sales Order"), "Sales%20Order");
        assert_eq!(segment("陳"), "%E9%99%B3");
        assert_eq!(segment("A/B#1"), "A%2FB%231");
    }
}
