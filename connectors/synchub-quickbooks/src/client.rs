//! The QuickBooks API client of one realm: paths, `minorversion`, the
//! query language's quoting, and the reading of answers into values or
//! classified errors (faults keep their codes for the caller to act on).

use serde_json::Value;
use synchub_core::ConnectorError;
use synchub_http::{HttpClient, IdempotencyKey, Response};

use crate::policy::Fault;

/// What a call can end in besides success.
#[derive(Debug)]
pub enum CallError {
    /// The API answered with a `Fault` (validation, stale object, …).
    Fault {
        /// HTTP status.
        status: u16,
        /// The fault.
        fault: Fault,
        /// What was being done (`create invoice`).
        what: String,
    },
    /// Anything else, already classified.
    Other(ConnectorError),
}

impl From<ConnectorError> for CallError {
    fn from(e: ConnectorError) -> Self {
        CallError::Other(e)
    }
}

/// The API of one realm.
#[derive(Debug, Clone)]
pub struct Api {
    pub(crate) http: HttpClient,
    pub(crate) realm: String,
    pub(crate) minor_version: String,
    pub(crate) connection: String,
    /// Set when no token store was opened: every call fails with this.
    pub(crate) no_tokens: bool,
}

/// Quotes a string literal of the query language (`'` escaped as `\'`).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Api {
    /// The host, as named in errors.
    pub fn host(&self) -> &str {
        self.http.host()
    }

    fn path(&self, tail: &str) -> String {
        format!("/v3/company/{}/{tail}", self.realm)
    }

    fn guard(&self) -> Result<(), ConnectorError> {
        if self.no_tokens {
            return Err(ConnectorError::Auth {
                host: self.host().to_string(),
                message: format!(
                    "no token store is open for {0}; run `synchub auth {0}`",
                    self.connection
                ),
            });
        }
        Ok(())
    }

    fn read(&self, what: &str, resp: Response) -> Result<Value, CallError> {
        let status = resp.status().as_u16();
        if status == 200 {
            return serde_json::from_slice(resp.body()).map_err(|e| {
                CallError::Other(ConnectorError::Protocol {
                    host: self.host().to_string(),
                    message: format!("{what}: the answer is not JSON: {e}"),
                })
            });
        }
        let fault = Fault::parse(resp.body());
        if status == 401 || status == 403 {
            let detail = fault.map(|f| f.describe()).unwrap_or_default();
            return Err(CallError::Other(ConnectorError::Auth {
                host: self.host().to_string(),
                message: format!(
                    "{what}: HTTP {status} {detail}; run `synchub auth {}`",
                    self.connection
                ),
            }));
        }
        match fault {
            Some(fault) => Err(CallError::Fault {
                status,
                fault,
                what: what.to_string(),
            }),
            None => Err(CallError::Other(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("{what}: HTTP {status} without a Fault body"),
            })),
        }
    }

    /// Runs a query; returns the `QueryResponse` object and the answer's `time`.
    pub async fn query(&self, q: &str) -> Result<(Value, Option<String>), CallError> {
        self.guard()?;
        let resp = self
            .http
            .get(&self.path("query"))
            .query(&[("query", q), ("minorversion", &self.minor_version)])
            .send()
            .await
            .map_err(ConnectorError::from)?;
        let v = self.read("query", resp)?;
        let time = v.get("time").and_then(Value::as_str).map(str::to_string);
        let qr = v.get("QueryResponse").cloned().ok_or_else(|| {
            CallError::Other(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: "query: the answer has no QueryResponse".into(),
            })
        })?;
        Ok((qr, time))
    }

    /// Runs a query and returns the rows of `entity` (an empty result has no key).
    pub async fn query_rows(&self, entity: &str, q: &str) -> Result<Vec<Value>, CallError> {
        let (qr, _) = self.query(q).await?;
        Ok(qr
            .get(entity)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `GET cdc?entities=…&changedSince=…`.
    pub async fn cdc(&self, entities: &[&str], since: &str) -> Result<Value, CallError> {
        self.guard()?;
        let resp = self
            .http
            .get(&self.path("cdc"))
            .query(&[
                ("entities", &entities.join(",")),
                ("changedSince", since),
                ("minorversion", &self.minor_version),
            ])
            .send()
            .await
            .map_err(ConnectorError::from)?;
        self.read("change data capture", resp)
    }

    /// Reads one entity by id; returns the object.
    pub async fn read_entity(&self, entity: &str, id: &str) -> Result<Value, CallError> {
        self.guard()?;
        let lower = entity.to_ascii_lowercase();
        let resp = self
            .http
            .get(&self.path(&format!("{lower}/{id}")))
            .query(&[("minorversion", &self.minor_version)])
            .send()
            .await
            .map_err(ConnectorError::from)?;
        let v = self.read(&format!("read {entity} {id}"), resp)?;
        v.get(entity).cloned().ok_or_else(|| {
            CallError::Other(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("read {entity} {id}: the answer has no {entity}"),
            })
        })
    }

    /// Creates or updates (`body` with `Id` + `SyncToken`) an entity, with
    /// `requestid` so a repeat returns the first answer; returns the object.
    pub async fn write(
        &self,
        entity: &str,
        body: &Value,
        request_id: &str,
    ) -> Result<Value, CallError> {
        self.guard()?;
        let lower = entity.to_ascii_lowercase();
        let resp = self
            .http
            .post(&self.path(&lower))
            .query(&[("minorversion", &self.minor_version)])
            .idempotency_key(IdempotencyKey::query("requestid", request_id))
            .json(body)
            .send()
            .await
            .map_err(ConnectorError::from)?;
        let what = if body.get("Id").is_some() {
            format!("update {entity}")
        } else {
            format!("create {entity}")
        };
        let v = self.read(&what, resp)?;
        v.get(entity).cloned().ok_or_else(|| {
            CallError::Other(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("{what}: the answer has no {entity}"),
            })
        })
    }

    /// A fault as a connector error naming the host and the operation.
    pub fn fault_error(&self, e: CallError) -> ConnectorError {
        match e {
            CallError::Other(e) => e,
            CallError::Fault {
                status,
                fault,
                what,
            } => {
                let message = format!("{what}: HTTP {status} {}", fault.describe());
                if status >= 500 || fault.kind == "SystemFault" {
                    ConnectorError::Unavailable {
                        host: self.host().to_string(),
                        message,
                        retry_after: None,
                    }
                } else {
                    ConnectorError::Protocol {
                        host: self.host().to_string(),
                        message,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_single_quotes() {
        assert_eq!(quote("Amy's"), r"'Amy\'s'");
    }
}
