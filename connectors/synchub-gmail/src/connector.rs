//! The Gmail connector: reading mail and contacts, writing contacts.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use synchub_core::{
    Change, ChangeOp, Connector, ConnectorError, Cursor, ErrorClass, ObjectKind, ObjectSpec, Page,
    PushOutcome, Record, Refusal, Rejected, RemoteRecord, Written,
};
use synchub_http::{Auth, Built, ConnectorFactory, Deps, HttpClient, Response, TokenManager};

use crate::config::GmailConfig;
use crate::map;
use crate::policy::{self, GooglePolicy};

/// The `gmail` connector kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct GmailFactory;

impl ConnectorFactory for GmailFactory {
    const KIND: &'static str = "gmail";
    type Config = GmailConfig;

    fn build(config: GmailConfig, deps: &Deps) -> Result<Built, ConnectorError> {
        Ok(Built::connector(Arc::new(GmailConnector::build(
            config, deps,
        )?)))
    }

    fn sign_in(config: &GmailConfig) -> Result<Option<synchub_http::SignIn>, ConnectorError> {
        config
            .oauth
            .sign_in(&crate::config::OAUTH)
            .map(Some)
            .map_err(|e| ConnectorError::Config(format!("setting {e}")))
    }
}

/// The person fields read and written.
const PERSON_FIELDS: &str = "names,emailAddresses,phoneNumbers,organizations,addresses,metadata";
/// The clientData key holding a create's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "synchubIdempotencyKey";
/// The headers `format=metadata` asks for.
const HEADERS: [&str; 6] = ["From", "To", "Cc", "Subject", "Date", "Message-ID"];

struct Clients {
    gmail: HttpClient,
    people: HttpClient,
    tokens: Arc<TokenManager>,
}

/// One Gmail mailbox and its contacts.
pub struct GmailConnector {
    name: String,
    config: GmailConfig,
    clients: Option<Clients>,
}

impl std::fmt::Debug for GmailConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GmailConnector")
            .field("name", &self.name)
            .field("user_id", &self.config.user_id)
            .finish_non_exhaustive()
    }
}

/// Where a mail stream stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum MailCursor {
    /// A full listing in progress; `baseline` is the history id taken
    /// before it started, from where the incremental reads continue.
    Full {
        /// History id before the listing.
        baseline: String,
        /// Which configured label is being listed.
        label: usize,
        /// `messages.list` page token.
        page: Option<String>,
    },
    /// Following history from `start`.
    History {
        /// The `startHistoryId`.
        start: String,
        /// `history.list` page token within this start.
        page: Option<String>,
    },
}

/// Where the contacts stream stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeopleCursor {
    /// The sync token of the last complete read (`None`: a full read).
    pub sync_token: Option<String>,
    /// The page token within the current read.
    pub page: Option<String>,
}

impl GmailConnector {
    /// Builds from checked settings; no IO.
    pub fn build(config: GmailConfig, deps: &Deps) -> Result<Self, ConnectorError> {
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
                let quota = config.quota.clone().unwrap_or_else(policy::gmail_quota);
                let gmail = deps.http(
                    HttpClient::builder(&config.gmail_url)
                        .credential(format!("gmail:{}:{}", deps.connection, config.user_id))
                        .quota(quota)
                        .policy(Arc::new(GooglePolicy))
                        .auth(Auth::OAuth(tokens.clone()))
                        .reqwest_client(http.clone()),
                )?;
                let people = deps.http(
                    HttpClient::builder(&config.people_url)
                        .credential(format!("google-people:{}", deps.connection))
                        .quota(policy::people_quota())
                        .policy(Arc::new(GooglePolicy))
                        .auth(Auth::OAuth(tokens.clone()))
                        .reqwest_client(http),
                )?;
                Some(Clients {
                    gmail,
                    people,
                    tokens,
                })
            }
        };
        Ok(GmailConnector {
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

    fn clients(&self) -> Result<&Clients, ConnectorError> {
        self.clients.as_ref().ok_or_else(|| ConnectorError::Auth {
            host: "accounts.google.com".into(),
            message: format!(
                "no token store is open for `{0}`; run `synchub auth {0}`",
                self.name
            ),
        })
    }

    fn user_path(&self, rest: &str) -> String {
        format!("/gmail/v1/users/{}/{rest}", self.config.user_id)
    }

    /// Turns a non-success answer into an error naming what was asked.
    fn fail(&self, resp: &Response, host: &str, what: &str) -> ConnectorError {
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("no error message")
            .chars()
            .take(300)
            .collect::<String>();
        let reasons = policy::error_reasons(resp.body());
        match status {
            401 => ConnectorError::Auth {
                host: host.into(),
                message: format!(
                    "{what}: the access token was refused after a refresh ({message}); run `synchub auth {}`",
                    self.name
                ),
            },
            403 if reasons.iter().any(|r| policy::is_rate_reason(r)) => {
                ConnectorError::Unavailable {
                    host: host.into(),
                    message: format!("{what}: rate limit ({message})"),
                    retry_after: None,
                }
            }
            403 => ConnectorError::Auth {
                host: host.into(),
                message: format!(
                    "{what}: permission denied ({message}); grant the scopes and run `synchub auth {}`",
                    self.name
                ),
            },
            429 | 500..=599 => ConnectorError::Unavailable {
                host: host.into(),
                message: format!("{what}: HTTP {status} ({message})"),
                retry_after: None,
            },
            _ => ConnectorError::Protocol {
                host: host.into(),
                message: format!("{what}: HTTP {status} ({message})"),
            },
        }
    }

    async fn get_json(
        &self,
        client: &HttpClient,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<Result<Value, Response>, ConnectorError> {
        let resp = client.get(path).query(query).send().await?;
        if !resp.status().is_success() {
            return Ok(Err(resp));
        }
        Ok(Ok(resp.json::<Value>().map_err(|e| {
            ConnectorError::Protocol {
                host: client.host().to_string(),
                message: format!("{what}: {e}"),
            }
        })?))
    }

    async fn fetch_message(&self, id: &str) -> Result<Option<Value>, ConnectorError> {
        let c = self.clients()?;
        let mut query = vec![("format", self.config.format.as_str())];
        if self.config.format == crate::config::MessageFormat::Metadata {
            query.extend(HEADERS.iter().map(|h| ("metadataHeaders", *h)));
        }
        let what = format!("messages.get {id}");
        match self
            .get_json(
                &c.gmail,
                &self.user_path(&format!("messages/{id}")),
                &query,
                &what,
            )
            .await?
        {
            Ok(v) => Ok(Some(v)),
            // Deleted between the listing and the read.
            Err(r) if r.status().as_u16() == 404 => Ok(None),
            Err(r) => Err(self.fail(&r, c.gmail.host(), &what)),
        }
    }

    fn wanted(&self, msg: &Value) -> bool {
        let labels = map::labels(msg);
        self.config.labels.is_empty() || self.config.labels.iter().any(|l| labels.contains(l))
    }

    fn map_message(&self, msg: Value, page: &mut Page) {
        match map::message_record(&msg) {
            Ok(r) => page.records.push(r),
            Err(reason) => page.rejected.push(Rejected {
                external_id: msg["id"].as_str().map(str::to_string),
                location: Some("messages.get".into()),
                reason,
                raw: msg,
            }),
        }
    }

    async fn pull_mail(&self, from: Option<&Cursor>) -> Result<Page, ConnectorError> {
        let c = self.clients()?;
        let cursor = match from {
            None => {
                // The baseline comes first: anything that changes while we
                // list is in the history after it.
                let what = "users.getProfile";
                let profile = match self
                    .get_json(&c.gmail, &self.user_path("profile"), &[], what)
                    .await?
                {
                    Ok(v) => v,
                    Err(r) => return Err(self.fail(&r, c.gmail.host(), what)),
                };
                let baseline = profile["historyId"]
                    .as_str()
                    .ok_or_else(|| ConnectorError::Protocol {
                        host: c.gmail.host().into(),
                        message: "users.getProfile: no historyId".into(),
                    })?
                    .to_string();
                MailCursor::Full {
                    baseline,
                    label: 0,
                    page: None,
                }
            }
            Some(c) => {
                serde_json::from_value(c.0.clone()).map_err(|e| ConnectorError::Protocol {
                    host: self.name.clone(),
                    message: format!("the stored mail cursor is not a Gmail cursor: {e}"),
                })?
            }
        };
        match cursor {
            MailCursor::Full {
                baseline,
                label,
                page,
            } => self.pull_listing(baseline, label, page).await,
            MailCursor::History { start, page } => self.pull_history(start, page).await,
        }
    }

    async fn pull_listing(
        &self,
        baseline: String,
        label: usize,
        page_token: Option<String>,
    ) -> Result<Page, ConnectorError> {
        let c = self.clients()?;
        let size = self.config.page_size.to_string();
        let mut query = vec![("maxResults", size.as_str())];
        if let Some(l) = self.config.labels.get(label) {
            query.push(("labelIds", l.as_str()));
        }
        if let Some(t) = &page_token {
            query.push(("pageToken", t.as_str()));
        }
        let what = "messages.list";
        let listing = match self
            .get_json(&c.gmail, &self.user_path("messages"), &query, what)
            .await?
        {
            Ok(v) => v,
            Err(r) => return Err(self.fail(&r, c.gmail.host(), what)),
        };
        let mut page = Page::default();
        for item in listing["messages"].as_array().into_iter().flatten() {
            let Some(id) = item["id"].as_str() else {
                continue;
            };
            if let Some(msg) = self.fetch_message(id).await? {
                self.map_message(msg, &mut page);
            }
        }
        let next = listing["nextPageToken"].as_str().map(str::to_string);
        let cursor = match next {
            Some(p) => MailCursor::Full {
                baseline,
                label,
                page: Some(p),
            },
            None if label + 1 < self.config.labels.len() => MailCursor::Full {
                baseline,
                label: label + 1,
                page: None,
            },
            None => {
                page.done = true;
                MailCursor::History {
                    start: baseline,
                    page: None,
                }
            }
        };
        page.next = Some(cursor_of(&cursor));
        Ok(page)
    }

    async fn pull_history(
        &self,
        start: String,
        page_token: Option<String>,
    ) -> Result<Page, ConnectorError> {
        let c = self.clients()?;
        let size = self.config.page_size.to_string();
        let mut query = vec![
            ("startHistoryId", start.as_str()),
            ("maxResults", size.as_str()),
            ("historyTypes", "messageAdded"),
            ("historyTypes", "messageDeleted"),
            ("historyTypes", "labelAdded"),
            ("historyTypes", "labelRemoved"),
        ];
        if let Some(t) = &page_token {
            query.push(("pageToken", t.as_str()));
        }
        let what = "history.list";
        let resp = match self
            .get_json(&c.gmail, &self.user_path("history"), &query, what)
            .await?
        {
            Ok(v) => v,
            Err(r) if r.status().as_u16() == 404 => {
                return Err(ConnectorError::Resync {
                    host: c.gmail.host().into(),
                    message: format!(
                        "history id {start} of `{}` is out of Gmail's retention (404)",
                        self.name
                    ),
                })
            }
            Err(r) => return Err(self.fail(&r, c.gmail.host(), what)),
        };
        // The last event per message wins; order of first appearance is kept.
        let mut order: Vec<String> = Vec::new();
        let mut deleted: std::collections::HashMap<String, bool> = Default::default();
        for h in resp["history"].as_array().into_iter().flatten() {
            for (key, gone) in [
                ("messagesAdded", false),
                ("labelsAdded", false),
                ("labelsRemoved", false),
                ("messagesDeleted", true),
            ] {
                for item in h[key].as_array().into_iter().flatten() {
                    let Some(id) = item["message"]["id"].as_str() else {
                        continue;
                    };
                    if !deleted.contains_key(id) {
                        order.push(id.to_string());
                    }
                    deleted.insert(id.to_string(), gone);
                }
            }
        }
        let mut page = Page::default();
        for id in order {
            if deleted.get(&id) == Some(&true) {
                page.records.push(map::deleted_message(
                    &id,
                    json!({"id": id, "deleted": true}),
                ));
                continue;
            }
            match self.fetch_message(&id).await? {
                Some(msg) if self.wanted(&msg) => self.map_message(msg, &mut page),
                Some(_) => {}
                None => page.records.push(map::deleted_message(
                    &id,
                    json!({"id": id, "deleted": true}),
                )),
            }
        }
        let cursor = match resp["nextPageToken"].as_str() {
            Some(p) => MailCursor::History {
                start,
                page: Some(p.to_string()),
            },
            None => {
                page.done = true;
                let latest = resp["historyId"].as_str().unwrap_or(&start).to_string();
                MailCursor::History {
                    start: latest,
                    page: None,
                }
            }
        };
        page.next = Some(cursor_of(&cursor));
        Ok(page)
    }

    async fn pull_contacts(&self, from: Option<&Cursor>) -> Result<Page, ConnectorError> {
        let c = self.clients()?;
        let cursor: PeopleCursor = match from {
            None => PeopleCursor::default(),
            Some(c) => {
                serde_json::from_value(c.0.clone()).map_err(|e| ConnectorError::Protocol {
                    host: self.name.clone(),
                    message: format!("the stored contacts cursor is not a People cursor: {e}"),
                })?
            }
        };
        let size = self.config.people_page_size.to_string();
        let mut query = vec![
            ("personFields", PERSON_FIELDS),
            ("pageSize", size.as_str()),
            ("requestSyncToken", "true"),
        ];
        if let Some(t) = &cursor.sync_token {
            query.push(("syncToken", t.as_str()));
        }
        if let Some(p) = &cursor.page {
            query.push(("pageToken", p.as_str()));
        }
        let what = "people.connections.list";
        let resp = match self
            .get_json(&c.people, "/v1/people/me/connections", &query, what)
            .await?
        {
            Ok(v) => v,
            Err(r)
                if policy::error_reasons(r.body())
                    .iter()
                    .any(|x| x == "EXPIRED_SYNC_TOKEN") =>
            {
                return Err(ConnectorError::Resync {
                    host: c.people.host().into(),
                    message: format!("the contacts sync token of `{}` expired", self.name),
                })
            }
            Err(r) => return Err(self.fail(&r, c.people.host(), what)),
        };
        let mut page = Page::default();
        for p in resp["connections"].as_array().into_iter().flatten() {
            match map::person_record(p) {
                Ok(r) => page.records.push(r),
                Err(reason) => page.rejected.push(Rejected {
                    external_id: p["resourceName"].as_str().map(str::to_string),
                    location: Some(what.into()),
                    reason,
                    raw: p.clone(),
                }),
            }
        }
        let next = match resp["nextPageToken"].as_str() {
            Some(t) => PeopleCursor {
                sync_token: cursor.sync_token,
                page: Some(t.to_string()),
            },
            None => {
                page.done = true;
                let token = resp["nextSyncToken"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ConnectorError::Protocol {
                        host: c.people.host().into(),
                        message: format!("{what}: the last page has no nextSyncToken"),
                    })?;
                PeopleCursor {
                    sync_token: Some(token),
                    page: None,
                }
            }
        };
        page.next = Some(Cursor(serde_json::to_value(&next).unwrap_or_default()));
        Ok(page)
    }

    /// The person an earlier attempt of the create with `key` made, if any.
    async fn created_with(
        &self,
        contact: &synchub_core::model::Contact,
        key: &str,
    ) -> Result<Option<RemoteRecord>, ConnectorError> {
        let c = self.clients()?;
        let Some(query) = contact.emails.first().or(contact.full_name.as_ref()) else {
            return Ok(None);
        };
        let what = "people.searchContacts";
        let mask = format!("{PERSON_FIELDS},clientData");
        let found = match self
            .get_json(
                &c.people,
                "/v1/people:searchContacts",
                &[
                    ("query", query.as_str()),
                    ("readMask", mask.as_str()),
                    ("pageSize", "30"),
                ],
                what,
            )
            .await?
        {
            Ok(v) => v,
            Err(r) => return Err(self.fail(&r, c.people.host(), what)),
        };
        let hit = found["results"].as_array().into_iter().flatten().find(|r| {
            r["person"]["clientData"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["key"] == IDEMPOTENCY_KEY && d["value"] == key)
        });
        Ok(hit.and_then(|r| map::person_record(&r["person"]).ok()))
    }

    async fn current_person(&self, name: &str) -> Result<Option<RemoteRecord>, ConnectorError> {
        let c = self.clients()?;
        let what = format!("people.get {name}");
        match self
            .get_json(
                &c.people,
                &format!("/v1/{name}"),
                &[("personFields", PERSON_FIELDS)],
                &what,
            )
            .await?
        {
            Ok(v) => Ok(map::person_record(&v).ok()),
            Err(r) if r.status().as_u16() == 404 => Ok(None),
            Err(r) => Err(self.fail(&r, c.people.host(), &what)),
        }
    }

    async fn write_contact(
        &self,
        change: &Change,
    ) -> Result<Result<Written, Refusal>, ConnectorError> {
        let c = self.clients()?;
        let Record::Contact(contact) = &change.record else {
            return Ok(Err(Refusal::rejected(
                "gmail contacts accept only contact records",
            )));
        };
        let host = c.people.host().to_string();
        let (resp, what) = match change.op {
            ChangeOp::Create => {
                let what = "people.createContact".to_string();
                // The People API has no idempotency key: the change's key is
                // kept in the person's clientData, and a retried create finds
                // the person its first attempt made (searchContacts is
                // eventually consistent: a retry within seconds may miss it).
                if let Some(done) = self.created_with(contact, &change.idempotency_key).await? {
                    return Ok(Ok(Written {
                        external_id: done.external_id,
                        version: done.version,
                        record: done.record,
                    }));
                }
                let mut body = map::person_body(contact);
                body["clientData"] =
                    json!([{"key": IDEMPOTENCY_KEY, "value": change.idempotency_key}]);
                let resp = c
                    .people
                    .post("/v1/people:createContact")
                    .query(&[("personFields", PERSON_FIELDS)])
                    .json(&body)
                    .send()
                    .await?;
                (resp, what)
            }
            ChangeOp::Update => {
                let Some(name) = &change.external_id else {
                    return Ok(Err(Refusal::rejected(
                        "an update without the person's resourceName",
                    )));
                };
                let fields = map::person_fields_for(&change.changed_fields());
                if fields.is_empty() {
                    return Ok(Ok(Written {
                        external_id: name.clone(),
                        version: change.base_version.clone(),
                        record: None,
                    }));
                }
                let etag = match &change.base_version {
                    Some(e) => e.clone(),
                    None => match self.current_person(name).await? {
                        Some(p) => p.version.unwrap_or_default(),
                        None => {
                            return Ok(Err(Refusal::rejected(format!("{name} no longer exists"))))
                        }
                    },
                };
                let mut body = map::person_body(contact);
                body["etag"] = json!(etag);
                let mask = fields.join(",");
                let what = format!("people.updateContact {name}");
                let resp = c
                    .people
                    .patch(&format!("/v1/{name}:updateContact"))
                    .query(&[
                        ("updatePersonFields", mask.as_str()),
                        ("personFields", PERSON_FIELDS),
                    ])
                    .json(&body)
                    .idempotent()
                    .send()
                    .await?;
                (resp, what)
            }
            ChangeOp::Delete => {
                let Some(name) = &change.external_id else {
                    return Ok(Err(Refusal::rejected(
                        "a delete without the person's resourceName",
                    )));
                };
                let what = format!("people.deleteContact {name}");
                let resp = c
                    .people
                    .delete(&format!("/v1/{name}:deleteContact"))
                    .idempotent()
                    .send()
                    .await?;
                if resp.status().is_success() || resp.status().as_u16() == 404 {
                    return Ok(Ok(Written {
                        external_id: name.clone(),
                        version: None,
                        record: None,
                    }));
                }
                (resp, what)
            }
        };
        if resp.status().is_success() {
            let v: Value = resp.json().map_err(ConnectorError::from)?;
            let r = map::person_record(&v).map_err(|m| ConnectorError::Protocol {
                host: host.clone(),
                message: format!("{what}: {m}"),
            })?;
            return Ok(Ok(Written {
                external_id: r.external_id,
                version: r.version,
                record: r.record,
            }));
        }
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or("").to_string();
        if status == 400
            && body["error"]["status"] == "FAILED_PRECONDITION"
            && message.contains("etag")
        {
            let current = match &change.external_id {
                Some(n) => self.current_person(n).await?,
                None => None,
            };
            return Ok(Err(Refusal::conflict(
                format!("{what}: {message}"),
                current,
            )));
        }
        if status == 404 {
            return Ok(Err(Refusal::rejected(format!(
                "{what}: the person no longer exists"
            ))));
        }
        let e = self.fail(&resp, &host, &what);
        match e.class() {
            ErrorClass::Fatal => Ok(Err(Refusal::rejected(e.to_string()))),
            _ => Err(e),
        }
    }
}

fn cursor_of(c: &MailCursor) -> Cursor {
    Cursor(serde_json::to_value(c).unwrap_or_default())
}

#[async_trait]
impl Connector for GmailConnector {
    fn kind(&self) -> &'static str {
        GmailFactory::KIND
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
        let what = "users.getProfile";
        match self
            .get_json(&c.gmail, &self.user_path("profile"), &[], what)
            .await?
        {
            Ok(_) => Ok(()),
            Err(r) => Err(self.fail(&r, c.gmail.host(), what)),
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
                "gmail cannot read {other}"
            ))),
        }
    }

    async fn estimate(&self, object: ObjectKind) -> Option<u64> {
        if object != ObjectKind::Activity {
            return None;
        }
        let c = self.clients().ok()?;
        let v = self
            .get_json(
                &c.gmail,
                &self.user_path("profile"),
                &[],
                "users.getProfile",
            )
            .await
            .ok()?
            .ok()?;
        v["messagesTotal"].as_u64()
    }

    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        if object != ObjectKind::Contact {
            return Err(ConnectorError::Unsupported(format!(
                "gmail cannot write {object}"
            )));
        }
        // Google asks for one user's mutations to be sent sequentially.
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            match self.write_contact(change).await {
                Ok(Ok(w)) => out.push(PushOutcome::written(&change.crm_id, w)),
                Ok(Err(refusal)) => out.push(PushOutcome::refused(&change.crm_id, refusal)),
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
