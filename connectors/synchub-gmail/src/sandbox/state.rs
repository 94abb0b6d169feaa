//! The sandbox's mailbox and address book, and the rules the real APIs
//! enforce: bearer tokens that expire, history ids that grow with gaps and
//! fall out of retention (404), page tokens bound to their query, per-user
//! quota units (403 `userRateLimitExceeded`), People sync tokens that
//! expire (400 `EXPIRED_SYNC_TOKEN`) and etags that must match on update.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One stored message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Immutable id.
    pub id: String,
    /// Thread id.
    pub thread_id: String,
    /// Label ids.
    pub labels: Vec<String>,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Snippet.
    pub snippet: String,
    /// Epoch ms.
    pub internal_date: i64,
    /// Last history id that touched it.
    pub history_id: u64,
}

/// What a history record says happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// messagesAdded.
    Added,
    /// messagesDeleted.
    Deleted,
    /// labelsAdded.
    LabelsAdded(Vec<String>),
    /// labelsRemoved.
    LabelsRemoved(Vec<String>),
}

/// One history record.
#[derive(Debug, Clone)]
pub struct History {
    /// The record's id.
    pub id: u64,
    /// The message.
    pub message_id: String,
    /// Its thread.
    pub thread_id: String,
    /// What happened.
    pub event: Event,
}

/// One contact of the address book.
#[derive(Debug, Clone)]
pub struct Person {
    /// `people/c…`.
    pub resource_name: String,
    /// The person body (names, emailAddresses, …), without etag/metadata.
    pub body: Value,
    /// Bumped on every write.
    pub etag: String,
    /// The change sequence of the last write.
    pub seq: u64,
    /// Deleted (kept as a tombstone for sync tokens).
    pub deleted: bool,
}

/// A fault to answer with instead of serving a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 403 `userRateLimitExceeded` (Gmail's per-user throttle).
    UserRateLimit,
    /// 429 without `Retry-After` (Google gives none).
    TooMany,
    /// 503 backend error.
    Backend,
}

/// The whole fake account.
#[derive(Debug)]
pub struct GmailState {
    /// The mailbox address.
    pub email: String,
    /// Messages by id.
    pub messages: BTreeMap<String, Message>,
    /// History records, ascending.
    pub history: Vec<History>,
    /// The mailbox's current history id.
    pub history_id: u64,
    /// Start ids below this are out of retention (404).
    pub history_floor: u64,
    /// Deterministic generator for history gaps and ids.
    rng: u64,
    /// Valid access tokens.
    pub access_tokens: HashSet<String>,
    /// The refresh token the token endpoint accepts.
    pub refresh_token: String,
    /// Token endpoint calls that issued a new access token.
    pub refreshes: u32,
    /// Contacts by resource name.
    pub people: BTreeMap<String, Person>,
    /// People change sequence.
    pub people_seq: u64,
    /// Sync tokens issued at a sequence below this are expired.
    pub sync_floor: u64,
    /// Per-user unit budget per window (`None`: unlimited).
    pub unit_limit: Option<u32>,
    /// The quota window.
    pub unit_window: Duration,
    window: (Instant, u32),
    /// Units charged in total.
    pub units_spent: u64,
    /// Faults to answer the next requests with.
    pub faults: VecDeque<Fault>,
    /// Every request served, as `METHOD path?query` (for assertions).
    pub log: Vec<String>,
    /// Serve this many more API requests, then expire every access token
    /// (a token that dies in the middle of a run).
    pub expire_tokens_after: Option<u32>,
}

impl GmailState {
    /// An empty account for `email`, accepting `access_token`/`refresh_token`.
    pub fn new(email: &str, access_token: &str, refresh_token: &str) -> Self {
        GmailState {
            email: email.to_string(),
            messages: BTreeMap::new(),
            history: Vec::new(),
            history_id: 1_180_000,
            history_floor: 0,
            rng: 0x5eed_1234_abcd,
            access_tokens: HashSet::from([access_token.to_string()]),
            refresh_token: refresh_token.to_string(),
            refreshes: 0,
            people: BTreeMap::new(),
            people_seq: 0,
            sync_floor: 0,
            unit_limit: None,
            unit_window: Duration::from_secs(60),
            window: (Instant::now(), 0),
            units_spent: 0,
            faults: VecDeque::new(),
            log: Vec::new(),
            expire_tokens_after: None,
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64: deterministic gaps and ids.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Advances the history id by a random, non-contiguous step.
    fn bump_history(&mut self) -> u64 {
        self.history_id += 1 + self.next_rand() % 40;
        self.history_id
    }

    fn record(&mut self, message_id: &str, thread_id: &str, event: Event) -> u64 {
        let id = self.bump_history();
        self.history.push(History {
            id,
            message_id: message_id.to_string(),
            thread_id: thread_id.to_string(),
            event,
        });
        id
    }

    /// Delivers a message (a `messagesAdded` record); returns its id.
    pub fn add_message(
        &mut self,
        thread_id: Option<&str>,
        labels: &[&str],
        headers: &[(&str, &str)],
        snippet: &str,
        internal_date: i64,
    ) -> String {
        let id = format!("18c{:013x}", self.next_rand() >> 12);
        let thread_id = thread_id.map_or_else(|| id.clone(), str::to_string);
        let hid = self.record(&id, &thread_id, Event::Added);
        self.messages.insert(
            id.clone(),
            Message {
                id: id.clone(),
                thread_id,
                labels: labels.iter().map(|l| l.to_string()).collect(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                snippet: snippet.to_string(),
                internal_date,
                history_id: hid,
            },
        );
        id
    }

    /// Adds labels to a message (a `labelsAdded` record).
    pub fn add_labels(&mut self, id: &str, labels: &[&str]) -> bool {
        let Some(thread) = self.messages.get(id).map(|m| m.thread_id.clone()) else {
            return false;
        };
        let added: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        let hid = self.record(id, &thread, Event::LabelsAdded(added.clone()));
        if let Some(m) = self.messages.get_mut(id) {
            for l in added {
                if !m.labels.contains(&l) {
                    m.labels.push(l);
                }
            }
            m.history_id = hid;
        }
        true
    }

    /// Deletes a message for good (a `messagesDeleted` record).
    pub fn delete_message(&mut self, id: &str) -> bool {
        let Some(m) = self.messages.remove(id) else {
            return false;
        };
        self.record(id, &m.thread_id, Event::Deleted);
        true
    }

    /// Expires every history id issued so far (as Google does after days, or hours).
    pub fn expire_history(&mut self) {
        // The current id stays valid: a start at it simply has no history yet.
        self.history_floor = self.history_id;
        self.history.clear();
    }

    /// Revokes every access token (they expired).
    pub fn expire_access_tokens(&mut self) {
        self.access_tokens.clear();
    }

    /// Checks a bearer header.
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| self.access_tokens.contains(t))
    }

    /// The token endpoint: a refresh grant with the right refresh token
    /// issues a new access token.
    pub fn refresh(&mut self, refresh_token: &str) -> Option<String> {
        if refresh_token != self.refresh_token {
            return None;
        }
        self.refreshes += 1;
        let token = format!("ya29.sandbox-{}", self.refreshes);
        self.access_tokens.insert(token.clone());
        Some(token)
    }

    /// Charges `units` to the user; false when the window's budget is spent.
    pub fn charge(&mut self, units: u32) -> bool {
        let Some(limit) = self.unit_limit else {
            self.units_spent += u64::from(units);
            return true;
        };
        let now = Instant::now();
        if now.duration_since(self.window.0) >= self.unit_window {
            self.window = (now, 0);
        }
        if self.window.1 + units > limit {
            return false;
        }
        self.window.1 += units;
        self.units_spent += u64::from(units);
        true
    }

    /// A message as `messages.get` renders it.
    pub fn render_message(&self, m: &Message, format: &str, wanted: &[String]) -> Value {
        let headers: Vec<Value> = m
            .headers
            .iter()
            .filter(|(k, _)| {
                format != "metadata"
                    || wanted.is_empty()
                    || wanted.iter().any(|w| w.eq_ignore_ascii_case(k))
            })
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        let mut v = json!({
            "id": m.id,
            "threadId": m.thread_id,
            "labelIds": m.labels,
            "snippet": m.snippet,
            "historyId": m.history_id.to_string(),
            "internalDate": m.internal_date.to_string(),
            "sizeEstimate": 1024 + m.snippet.len(),
        });
        match format {
            "minimal" => {}
            _ => {
                v["payload"] = json!({
                    "partId": "", "mimeType": "text/plain", "filename": "",
                    "headers": headers, "body": {"size": m.snippet.len()}
                });
            }
        }
        v
    }

    /// Adds a contact; returns its resource name.
    pub fn add_person(&mut self, body: Value) -> String {
        let name = format!(
            "people/c{}",
            1_000_000_000_000 + self.next_rand() % 1_000_000_000
        );
        self.write_person(&name, body, false);
        name
    }

    /// Writes a contact (bumping its etag and sequence).
    pub fn write_person(&mut self, name: &str, body: Value, deleted: bool) {
        self.people_seq += 1;
        let seq = self.people_seq;
        let etag = format!("%EgUBAi43PRoE{seq:06}");
        self.people.insert(
            name.to_string(),
            Person {
                resource_name: name.to_string(),
                body,
                etag,
                seq,
                deleted,
            },
        );
    }

    /// Edits a live contact as a user would in Google Contacts.
    pub fn edit_person(&mut self, name: &str, edit: impl FnOnce(&mut Value)) -> bool {
        let Some(p) = self.people.get(name).filter(|p| !p.deleted) else {
            return false;
        };
        let mut body = p.body.clone();
        edit(&mut body);
        self.write_person(name, body, false);
        true
    }

    /// Expires every sync token issued so far (7 days passed).
    pub fn expire_sync_tokens(&mut self) {
        self.sync_floor = self.people_seq + 1;
    }

    /// A person as the API renders it.
    pub fn render_person(&self, p: &Person) -> Value {
        let mut v = if p.deleted { json!({}) } else { p.body.clone() };
        v["resourceName"] = json!(p.resource_name);
        v["etag"] = json!(p.etag);
        let mut meta = json!({
            "sources": [{"type": "CONTACT", "id": &p.resource_name[8..], "etag": p.etag,
                         "updateTime": format!("2023-11-20T08:{:02}:{:02}Z", (p.seq / 60) % 60, p.seq % 60)}],
            "objectType": "PERSON"
        });
        if p.deleted {
            meta["deleted"] = json!(true);
        }
        v["metadata"] = meta;
        // Field metadata as the API adds it: the first item is primary.
        let source_id = p.resource_name.trim_start_matches("people/c").to_string();
        for key in [
            "names",
            "emailAddresses",
            "phoneNumbers",
            "organizations",
            "addresses",
        ] {
            if let Some(items) = v[key].as_array_mut() {
                for (i, item) in items.iter_mut().enumerate() {
                    item["metadata"] =
                        json!({"primary": i == 0, "source": {"type": "CONTACT", "id": source_id}});
                    if let Some(t) = item["type"].as_str() {
                        let mut shown: Vec<char> = t.chars().collect();
                        if let Some(c) = shown.first_mut() {
                            *c = c.to_ascii_uppercase();
                        }
                        item["formattedType"] = json!(shown.into_iter().collect::<String>());
                    }
                }
            }
        }
        if let Some(names) = v["names"].as_array_mut() {
            for n in names {
                if n.get("displayName").is_none() {
                    let shown = n["unstructuredName"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            format!(
                                "{}{}",
                                n["familyName"].as_str().unwrap_or(""),
                                n["givenName"].as_str().unwrap_or("")
                            )
                        });
                    n["displayName"] = json!(shown);
                }
                let last_first = format!(
                    "{}{}",
                    n["familyName"].as_str().unwrap_or(""),
                    n["givenName"].as_str().unwrap_or("")
                );
                if !last_first.is_empty() {
                    n["displayNameLastFirst"] = json!(last_first);
                }
            }
        }
        v
    }
}

/// The Google error envelope.
pub fn google_error(code: u16, status: &str, message: &str, reason: Option<&str>) -> Value {
    let mut e = json!({"error": {"code": code, "message": message, "status": status}});
    if let Some(r) = reason {
        e["error"]["errors"] = json!([{"message": message, "domain": "global", "reason": r}]);
    }
    e
}
