//! Graph change notifications: the `validationToken` handshake, the
//! `clientState` check (constant time; Graph signs nothing else on basic
//! notifications), de-duplication, and subscriptions created and renewed
//! before their (under 7 days) expiry.
//! <https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks>

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use reqwest::header::HeaderMap;
use serde_json::Value;
use subtle::ConstantTimeEq;
use synchub_core::{ConnectorError, ObjectKind, WebhookAction};
use synchub_http::webhook::{ReplayGuard, VerifiedDelivery, WebhookError};
use synchub_http::{BodyCheck, ExposeSecret, Handshake, SecretString, WebhookSource};

use crate::connector::{subscription_body, OutlookConnector};

/// The longest body worth reading (Graph batches notifications).
pub const MAX_BODY: usize = 1 << 20;
/// Subscriptions are asked for this long (the Outlook maximum is 10,080 minutes).
pub const LIFETIME_MINUTES: i64 = 4_230;

/// The webhook side of one Outlook connection.
pub struct OutlookWebhooks {
    connector: Arc<OutlookConnector>,
    client_state: SecretString,
    /// (resource, subscription id) of the subscriptions made.
    subscriptions: Mutex<Vec<(String, String)>>,
}

impl std::fmt::Debug for OutlookWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutlookWebhooks").finish_non_exhaustive()
    }
}

/// A body that looks like Graph notifications (`{"value": [...]}`).
pub fn looks_like_notifications(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v["value"].is_array())
}

/// The URL-decoded `validationToken` of a handshake query.
pub fn validation_token(raw_query: &str) -> Option<String> {
    raw_query
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == "validationToken").then(|| percent_decode(v))
        })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl OutlookWebhooks {
    /// The webhook side of `connector`, when it has a `client_state`.
    pub fn for_connector(
        connector: &Arc<OutlookConnector>,
    ) -> Result<Option<Self>, ConnectorError> {
        let Some(state) = &connector.config.client_state else {
            return Ok(None);
        };
        let client_state = synchub_http::secret::expand_env(state)
            .map_err(|e| ConnectorError::Config(format!("setting `client_state`: {e}")))?;
        Ok(Some(OutlookWebhooks {
            connector: connector.clone(),
            client_state,
            subscriptions: Mutex::new(Vec::new()),
        }))
    }

    fn resources(&self) -> Vec<String> {
        let mut r: Vec<String> = self
            .connector
            .config
            .folders
            .iter()
            .map(|f| format!("me/mailFolders('{f}')/messages"))
            .collect();
        r.push("me/contacts".into());
        r
    }

    fn matches(&self, state: &str) -> bool {
        bool::from(
            state
                .as_bytes()
                .ct_eq(self.client_state.expose_secret().as_bytes()),
        )
    }

    /// The subscription ids made so far.
    pub fn subscription_ids(&self) -> Vec<String> {
        self.subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, id)| id.clone())
            .collect()
    }
}

#[async_trait]
impl WebhookSource for OutlookWebhooks {
    fn handshake(&self, raw_query: Option<&str>, _headers: &HeaderMap) -> Option<Handshake> {
        let token = validation_token(raw_query?)?;
        Some(Handshake {
            status: 200,
            content_type: "text/plain",
            body: token,
        })
    }

    fn begin(&self, _headers: &HeaderMap) -> Result<BodyCheck, WebhookError> {
        // Basic Graph notifications carry no signature header: the body's
        // clientState is the proof, checked in `classify`.
        Ok(BodyCheck::Unsigned {
            max: MAX_BODY,
            accept: looks_like_notifications,
        })
    }

    async fn classify(
        &self,
        delivery: &VerifiedDelivery,
        _headers: &HeaderMap,
        body: &[u8],
        guard: &dyn ReplayGuard,
    ) -> Result<WebhookAction, WebhookError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let items = v["value"]
            .as_array()
            .ok_or_else(|| WebhookError::Malformed("no `value` array".into()))?;
        // Notifications whose clientState is not ours are dropped, as the docs say.
        let ours: Vec<&Value> = items
            .iter()
            .filter(|n| self.matches(n["clientState"].as_str().unwrap_or("")))
            .collect();
        if ours.is_empty() {
            return Err(WebhookError::BadClientState);
        }
        if !guard.first_seen(&delivery.delivery.id).await {
            return Ok(WebhookAction::Nothing("duplicate"));
        }
        let object = ours
            .iter()
            .map(|n| {
                let resource = n["resource"].as_str().unwrap_or("").to_ascii_lowercase();
                if resource.contains("contacts") {
                    ObjectKind::Contact
                } else {
                    ObjectKind::Activity
                }
            })
            .min()
            .unwrap_or(ObjectKind::Activity);
        Ok(WebhookAction::Sync {
            object,
            deleted: None,
        })
    }

    async fn renew(&self, callback_url: &str) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        let c = self.connector.clients()?;
        let expires = Utc::now() + Duration::minutes(LIFETIME_MINUTES);
        let at = expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let known = self
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut made = Vec::new();
        for resource in self.resources() {
            if let Some((_, id)) = known.iter().find(|(r, _)| *r == resource) {
                let resp = c
                    .graph
                    .patch(&format!("subscriptions/{id}"))
                    .json(&serde_json::json!({"expirationDateTime": at}))
                    .idempotent()
                    .send()
                    .await?;
                if resp.status().is_success() {
                    made.push((resource, id.clone()));
                    continue;
                }
                if resp.status().as_u16() != 404 {
                    return Err(self
                        .connector
                        .fail(&resp, c.graph.host(), "subscriptions.update"));
                }
                // Removed by Graph: create it again below.
            }
            let body = subscription_body(
                &resource,
                callback_url,
                &at,
                self.client_state.expose_secret(),
            );
            let resp = c.graph.post("subscriptions").json(&body).send().await?;
            if !resp.status().is_success() {
                return Err(self.connector.fail(
                    &resp,
                    c.graph.host(),
                    &format!("subscriptions.create for {resource}"),
                ));
            }
            let v: Value = resp.json()?;
            let id = v["id"].as_str().ok_or_else(|| ConnectorError::Protocol {
                host: c.graph.host().into(),
                message: "subscriptions.create: no id".into(),
            })?;
            made.push((resource, id.to_string()));
        }
        *self.subscriptions.lock().unwrap_or_else(|p| p.into_inner()) = made;
        // Renew a day before expiry.
        Ok(Some(expires - Duration::days(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_tokens_are_url_decoded() {
        assert_eq!(
            validation_token("validationToken=Validation%3a+Testing%20client+application")
                .as_deref(),
            Some("Validation: Testing client application")
        );
        assert_eq!(validation_token("x=1"), None);
    }
}
