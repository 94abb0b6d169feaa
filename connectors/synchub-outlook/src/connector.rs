//! The Outlook connector: mail folders and contacts by delta query,
//! contacts written back.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use synchub_core::{
    Change, ChangeOp, Connector, ConnectorError, Cursor, ErrorClass, ObjectKind, ObjectSpec, Page,
    PushOutcome, Record, Refusal, Rejected, RemoteRecord, Written,
};
use synchub_http::{Auth, Built, ConnectorFactory, Deps, HttpClient, Response, TokenManager};

use crate::config::OutlookConfig;
use crate::map;
use crate::policy::{self, GraphPolicy};
use crate::webhook::OutlookWebhooks;

/// The `outlook` connector kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutlookFactory;

impl ConnectorFactory for OutlookFactory {
    const KIND: &'static str = "outlook";
    type Config = OutlookConfig;

    fn build(config: OutlookConfig, deps: &Deps) -> Result<Built, ConnectorError> {
        let connector = Arc::new(OutlookConnector::build(config, deps)?);
        let webhooks = OutlookWebhooks::for_connector(&connector)?;
        Ok(Built {
            connector,
            webhooks: webhooks.map(|w| Arc::new(w) as Arc<dyn synchub_http::WebhookSource>),
        })
    }

    fn sign_in(config: &OutlookConfig) -> Result<Option<synchub_http::SignIn>, ConnectorError> {
        config
            .oauth
            .sign_in(&crate::config::OAUTH)
            .map(Some)
            .map_err(|e| ConnectorError::Config(format!("setting {e}")))
    }
}

pub(crate) struct Clients {
    pub(crate) graph: HttpClient,
    tokens: Arc<TokenManager>,
}

/// One Outlook mailbox and its contacts.
pub struct OutlookConnector {
    pub(crate) name: String,
    pub(crate) config: OutlookConfig,
    pub(crate) clients: Option<Clients>,
}

impl std::fmt::Debug for OutlookConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutlookConnector")
            .field("name", &self.name)
            .field("folders", &self.config.folders)
            .finish_non_exhaustive()
    }
}

/// The extended property that carries a create's idempotency key
/// (a named string property in the PS_PUBLIC_STRINGS set).
pub const IDEMPOTENCY_PROPERTY: &str =
    "String {00020329-0000-0000-C000-000000000046} Name SynchubIdempotencyKey";

/// Where the mail stream stands: the folder being read and, per folder,
/// the link to follow (a `nextLink` mid-round, a `deltaLink` between rounds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailCursor {
    /// Index into the configured folders.
    pub folder: usize,
    /// Folder name → link.
    pub links: BTreeMap<String, String>,
}

/// Where the contacts stream stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactCursor {
    /// The `nextLink` or `deltaLink` to follow.
    pub link: Option<String>,
}

impl OutlookConnector {
    /// Builds from checked settings; no IO.
    pub fn build(config: OutlookConfig, deps: &Deps) -> Result<Self, ConnectorError> {
        config.validate()?;
        let oauth = config
            .oauth
            .oauth_config(&crate::config::OAUTH)
            .map_err(|e| ConnectorError::Config(format!("setting {e}")))?;
        let clients = match &deps.tokens {
            None => None,
            Some(vault) => {
                let http = synchub_http::new_reqwest_client()?;
                let tokens = Arc::new(
                    TokenManager::new(&deps.connection, oauth, vault.clone(), http.clone())
                        .with_clock(deps.clock.clone()),
                );
                let base = format!("{}/", config.graph_url.trim_end_matches('/'));
                let graph = deps.http(
                    HttpClient::builder(base)
                        .credential(format!("outlook:{}", deps.connection))
                        .quota(config.quota.clone().unwrap_or_else(policy::outlook_quota))
                        .policy(Arc::new(GraphPolicy))
                        .auth(Auth::OAuth(tokens.clone()))
                        .reqwest_client(http),
                )?;
                Some(Clients { graph, tokens })
            }
        };
        Ok(OutlookConnector {
            name: deps.connection.clone(),
            config,
            clients,
        })
    }

    /// How many times the access token was refreshed.
    pub fn refresh_count(&self) -> u64 {
        self.clients
            .as_ref()
            .map_or(0, |c| c.tokens.refresh_count())
    }

    pub(crate) fn clients(&self) -> Result<&Clients, ConnectorError> {
        self.clients.as_ref().ok_or_else(|| ConnectorError::Auth {
            host: "login.microsoftonline.com".into(),
            message: format!(
                "no token store is open for `{0}`; run `synchub auth {0}`",
                self.name
            ),
        })
    }

    /// Turns a non-success answer into an error naming what was asked.
    pub(crate) fn fail(&self, resp: &Response, host: &str, what: &str) -> ConnectorError {
        let status = resp.status().as_u16();
        let code = policy::error_code(resp.body()).unwrap_or_default();
        let message = policy::error_message(resp.body());
        match status {
            401 | 403 => ConnectorError::Auth {
                host: host.into(),
                message: format!(
                    "{what}: {status} {code} ({message}); run `synchub auth {}`",
                    self.name
                ),
            },
            429 | 500..=599 => ConnectorError::Unavailable {
                host: host.into(),
                message: format!("{what}: HTTP {status} {code} ({message})"),
                retry_after: None,
            },
            _ => ConnectorError::Protocol {
                host: host.into(),
                message: format!("{what}: HTTP {status} {code} ({message})"),
            },
        }
    }

    fn prefer(&self) -> String {
        format!(
            "odata.maxpagesize={}, IdType=\"ImmutableId\"",
            self.config.page_size
        )
    }

    async fn get(&self, url: &str, what: &str) -> Result<Value, ConnectorError> {
        let c = self.clients()?;
        let resp = c
            .graph
            .get(url)
            .header("Prefer", &self.prefer())
            .send()
            .await?;
        if resp.status().is_success() {
            return resp.json().map_err(ConnectorError::from);
        }
        if policy::is_resync(resp.status().as_u16(), resp.body()) {
            return Err(ConnectorError::Resync {
                host: c.graph.host().into(),
                message: format!(
                    "{what}: the delta token of `{}` is no longer known ({})",
                    self.name,
                    policy::error_message(resp.body())
                ),
            });
        }
        Err(self.fail(&resp, c.graph.host(), what))
    }

    async fn full_message(&self, id: &str) -> Result<Option<Value>, ConnectorError> {
        let c = self.clients()?;
        let resp = c
            .graph
            .get(&format!("me/messages/{id}"))
            .query(&[("$select", map::MESSAGE_SELECT)])
            .header("Prefer", &self.prefer())
            .send()
            .await?;
        match resp.status().as_u16() {
            200 => Ok(Some(resp.json()?)),
            404 => Ok(None),
            _ => Err(self.fail(&resp, c.graph.host(), "messages.get")),
        }
    }

    fn cursor<T: for<'de> Deserialize<'de> + Default>(
        &self,
        from: Option<&Cursor>,
        what: &str,
    ) -> Result<T, ConnectorError> {
        match from {
            None => Ok(T::default()),
            Some(c) => serde_json::from_value(c.0.clone()).map_err(|e| ConnectorError::Protocol {
                host: self.name.clone(),
                message: format!("the stored {what} cursor is not an Outlook cursor: {e}"),
            }),
        }
    }

    async fn pull_mail(&self, from: Option<&Cursor>) -> Result<Page, ConnectorError> {
        let mut cursor: MailCursor = self.cursor(from, "mail")?;
        let folder_count = self.config.folders.len();
        if cursor.folder >= folder_count {
            cursor.folder = 0;
        }
        let folder = self.config.folders[cursor.folder].clone();
        let url = cursor.links.get(&folder).cloned().unwrap_or_else(|| {
            format!(
                "me/mailFolders/{folder}/messages/delta?$select={}",
                map::MESSAGE_SELECT
            )
        });
        let what = format!("messages delta of folder `{folder}`");
        let body = self.get(&url, &what).await?;
        let mut page = Page::default();
        for item in body["value"].as_array().into_iter().flatten() {
            let item = if map::is_partial_message(item) {
                let Some(id) = item["id"].as_str() else {
                    continue;
                };
                match self.full_message(id).await? {
                    Some(full) => full,
                    None => {
                        page.records.push(map::removed(id, item.clone()));
                        continue;
                    }
                }
            } else {
                item.clone()
            };
            match map::message_record(&item, &folder) {
                Ok(r) => page.records.push(r),
                Err(reason) => page.rejected.push(Rejected {
                    external_id: item["id"].as_str().map(str::to_string),
                    location: Some(what.clone()),
                    reason,
                    raw: item,
                }),
            }
        }
        if let Some(next) = body["@odata.nextLink"].as_str() {
            cursor.links.insert(folder, next.to_string());
        } else if let Some(delta) = body["@odata.deltaLink"].as_str() {
            cursor.links.insert(folder, delta.to_string());
            if cursor.folder + 1 < folder_count {
                cursor.folder += 1;
            } else {
                cursor.folder = 0;
                page.done = true;
            }
        } else {
            return Err(ConnectorError::Protocol {
                host: self.clients()?.graph.host().into(),
                message: format!(
                    "{what}: a page with neither @odata.nextLink nor @odata.deltaLink"
                ),
            });
        }
        page.next = Some(Cursor(serde_json::to_value(&cursor).unwrap_or_default()));
        Ok(page)
    }

    async fn pull_contacts(&self, from: Option<&Cursor>) -> Result<Page, ConnectorError> {
        let mut cursor: ContactCursor = self.cursor(from, "contacts")?;
        let url = cursor
            .link
            .clone()
            .unwrap_or_else(|| "me/contacts/delta".to_string());
        let what = "contacts delta";
        let body = self.get(&url, what).await?;
        let mut page = Page::default();
        for item in body["value"].as_array().into_iter().flatten() {
            match map::contact_record(item) {
                Ok(r) => page.records.push(r),
                Err(reason) => page.rejected.push(Rejected {
                    external_id: item["id"].as_str().map(str::to_string),
                    location: Some(what.into()),
                    reason,
                    raw: item.clone(),
                }),
            }
        }
        if let Some(next) = body["@odata.nextLink"].as_str() {
            cursor.link = Some(next.to_string());
        } else if let Some(delta) = body["@odata.deltaLink"].as_str() {
            cursor.link = Some(delta.to_string());
            page.done = true;
        } else {
            return Err(ConnectorError::Protocol {
                host: self.clients()?.graph.host().into(),
                message: format!(
                    "{what}: a page with neither @odata.nextLink nor @odata.deltaLink"
                ),
            });
        }
        page.next = Some(Cursor(serde_json::to_value(&cursor).unwrap_or_default()));
        Ok(page)
    }

    /// The contact an earlier attempt of the create with `key` made, if any.
    async fn created_with(&self, key: &str) -> Result<Option<RemoteRecord>, ConnectorError> {
        let c = self.clients()?;
        let filter = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{IDEMPOTENCY_PROPERTY}' and ep/value eq '{}')",
            key.replace('\'', "''")
        );
        let resp = c
            .graph
            .get("me/contacts")
            .query(&[("$filter", filter.as_str())])
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(self.fail(&resp, c.graph.host(), "contacts.list by idempotency key"));
        }
        let v: Value = resp.json()?;
        Ok(v["value"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|x| map::contact_record(x).ok()))
    }

    async fn current_contact(&self, id: &str) -> Result<Option<RemoteRecord>, ConnectorError> {
        let c = self.clients()?;
        let resp = c.graph.get(&format!("me/contacts/{id}")).send().await?;
        match resp.status().as_u16() {
            200 => Ok(map::contact_record(&resp.json()?).ok()),
            404 => Ok(None),
            _ => Err(self.fail(&resp, c.graph.host(), "contacts.get")),
        }
    }

    async fn write_contact(
        &self,
        change: &Change,
    ) -> Result<Result<Written, Refusal>, ConnectorError> {
        let c = self.clients()?;
        let host = c.graph.host().to_string();
        let Record::Contact(contact) = &change.record else {
            return Ok(Err(Refusal::rejected(
                "outlook contacts accept only contact records",
            )));
        };
        let (resp, what) = match change.op {
            ChangeOp::Create => {
                // Graph has no idempotency key: the change's key is stored
                // in an extended property, and a retried create finds the
                // contact the first attempt made instead of making another.
                if let Some(done) = self.created_with(&change.idempotency_key).await? {
                    return Ok(Ok(Written {
                        external_id: done.external_id,
                        version: done.version,
                        record: done.record,
                    }));
                }
                let mut body = map::contact_body(contact, None);
                body["singleValueExtendedProperties"] =
                    json!([{"id": IDEMPOTENCY_PROPERTY, "value": change.idempotency_key}]);
                (
                    c.graph.post("me/contacts").json(&body).send().await?,
                    "contacts.create".to_string(),
                )
            }
            ChangeOp::Update | ChangeOp::Delete => {
                let Some(id) = &change.external_id else {
                    return Ok(Err(Refusal::rejected("an update without the contact's id")));
                };
                let path = format!("me/contacts/{id}");
                if change.op == ChangeOp::Delete {
                    let resp = c.graph.delete(&path).idempotent().send().await?;
                    if resp.status().is_success() || resp.status().as_u16() == 404 {
                        return Ok(Ok(Written {
                            external_id: id.clone(),
                            version: None,
                            record: None,
                        }));
                    }
                    (resp, format!("contacts.delete {id}"))
                } else {
                    let fields = change.changed_fields();
                    let body = map::contact_body(contact, Some(&fields));
                    if body.as_object().is_some_and(|o| o.is_empty()) {
                        return Ok(Ok(Written {
                            external_id: id.clone(),
                            version: change.base_version.clone(),
                            record: None,
                        }));
                    }
                    let mut req = c.graph.patch(&path).json(&body).idempotent();
                    if let Some(etag) = &change.base_version {
                        req = req.header("If-Match", etag);
                    }
                    (req.send().await?, format!("contacts.update {id}"))
                }
            }
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            let v: Value = resp.json()?;
            let r = map::contact_record(&v).map_err(|m| ConnectorError::Protocol {
                host: host.clone(),
                message: format!("{what}: {m}"),
            })?;
            return Ok(Ok(Written {
                external_id: r.external_id,
                version: r.version,
                record: r.record,
            }));
        }
        if status == 412
            || policy::error_code(resp.body()).as_deref() == Some("ErrorIrresolvableConflict")
        {
            let current = match &change.external_id {
                Some(id) => self.current_contact(id).await?,
                None => None,
            };
            return Ok(Err(Refusal::conflict(
                format!("{what}: {}", policy::error_message(resp.body())),
                current,
            )));
        }
        if status == 404 {
            return Ok(Err(Refusal::rejected(format!(
                "{what}: the contact no longer exists"
            ))));
        }
        let e = self.fail(&resp, &host, &what);
        match e.class() {
            ErrorClass::Fatal => Ok(Err(Refusal::rejected(e.to_string()))),
            _ => Err(e),
        }
    }
}

#[async_trait]
impl Connector for OutlookConnector {
    fn kind(&self) -> &'static str {
        OutlookFactory::KIND
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        vec![
            ObjectSpec {
                kind: ObjectKind::Contact,
                can_read: true,
                incremental: true,
                can_write: true,
            },
            ObjectSpec {
                kind: ObjectKind::Activity,
                can_read: true,
                incremental: true,
                can_write: false,
            },
        ]
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        let c = self.clients()?;
        let resp = c
            .graph
            .get("me/mailFolders/inbox")
            .query(&[("$select", "id,totalItemCount")])
            .send()
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.fail(&resp, c.graph.host(), "mailFolders.get inbox"))
        }
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        match object {
            ObjectKind::Activity => self.pull_mail(from).await,
            ObjectKind::Contact => self.pull_contacts(from).await,
            other => Err(ConnectorError::Unsupported(format!(
                "outlook cannot read {other}"
            ))),
        }
    }

    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        if object != ObjectKind::Contact {
            return Err(ConnectorError::Unsupported(format!(
                "outlook cannot write {object}"
            )));
        }
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            match self.write_contact(change).await {
                Ok(Ok(w)) => out.push(PushOutcome::written(&change.crm_id, w)),
                Ok(Err(r)) => out.push(PushOutcome::refused(&change.crm_id, r)),
                Err(e) if matches!(e.class(), ErrorClass::Reauth | ErrorClass::Config) => {
                    return Err(e)
                }
                Err(e @ ConnectorError::Cancelled(_)) => return Err(e),
                Err(e) => out.push(PushOutcome::refused(
                    &change.crm_id,
                    Refusal::from_error(&e),
                )),
            }
        }
        Ok(out)
    }
}

/// The JSON of a subscription request.
pub(crate) fn subscription_body(resource: &str, url: &str, expires: &str, state: &str) -> Value {
    json!({"changeType": "created,updated,deleted", "notificationUrl": url,
           "lifecycleNotificationUrl": url, "resource": resource,
           "expirationDateTime": expires, "clientState": state})
}
