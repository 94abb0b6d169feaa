//! The IMAP connector: one long-lived session, one folder pass at a time.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use synchub_core::{Connector, ConnectorError, Cursor, ObjectKind, ObjectSpec, Page, Rejected};
use synchub_http::ExposeSecret;

use crate::client::{Endpoint, ImapError, Reply, Session};
use crate::config::{Changes, Settings};
use crate::cursor::{FolderState, ImapCursor, Pass};
use crate::index::UidIndex;
use crate::map::{self, HEADER_FIELDS, SNIPPET_BYTES};
use crate::proto::{self, Token};
use crate::utf7;

/// A logged-in session and what it has selected.
struct Live {
    session: Session,
    selected: Option<String>,
    qresync: bool,
    condstore: bool,
}

struct State {
    live: Option<Live>,
    index: UidIndex,
}

/// What SELECT said about a folder.
#[derive(Debug, Clone, Copy)]
struct Selected {
    uidvalidity: u32,
    uidnext: u32,
    modseq: u64,
}

/// An IMAP mailbox as a source of email activities.
pub struct ImapConnector {
    settings: Settings,
    state: tokio::sync::Mutex<State>,
    logins: AtomicU64,
}

impl std::fmt::Debug for ImapConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapConnector")
            .field("host", &self.settings.host)
            .field("user", &self.settings.user)
            .finish_non_exhaustive()
    }
}

impl ImapConnector {
    /// A connector for checked settings; the uid index lives in `state_dir`.
    pub fn new(settings: Settings, state_dir: PathBuf) -> Self {
        ImapConnector {
            settings,
            state: tokio::sync::Mutex::new(State {
                live: None,
                index: UidIndex::new(state_dir),
            }),
            logins: AtomicU64::new(0),
        }
    }

    /// How many times this connector logged in (one per run when healthy).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    fn host(&self) -> String {
        format!("{}:{}", self.settings.host, self.settings.port)
    }

    fn err(&self, e: ImapError, doing: &str) -> ConnectorError {
        let user = &self.settings.user;
        match e {
            ImapError::Login(text) => ConnectorError::Auth {
                host: self.host(),
                message: format!(
                    "user `{user}` could not log in ({text}); check `user` and `password`"
                ),
            },
            ImapError::Resolve(m) => ConnectorError::Config(format!(
                "key `host`: {m} (user `{user}`); check the host name"
            )),
            ImapError::Trust(m) => ConnectorError::Config(format!("key `ca_file`: {m}")),
            ImapError::Io(m) => ConnectorError::Unavailable {
                host: self.host(),
                message: format!("{doing} as user `{user}`: {m}"),
                retry_after: None,
            },
            ImapError::Refused { command, text } => ConnectorError::Protocol {
                host: self.host(),
                message: format!("{doing} as user `{user}`: {command} refused: {text}"),
            },
            ImapError::Protocol(m) => ConnectorError::Protocol {
                host: self.host(),
                message: format!("{doing} as user `{user}`: {m}"),
            },
        }
    }

    async fn live<'a>(&self, st: &'a mut State) -> Result<&'a mut Live, ConnectorError> {
        if st.live.is_none() {
            let s = &self.settings;
            let ep = Endpoint {
                host: s.host.clone(),
                port: s.port,
                security: s.security,
                timeout: s.timeout,
            };
            let mut session = Session::connect_trusting(&ep, s.ca_file.as_deref())
                .await
                .map_err(|e| self.err(e, "connecting"))?;
            session
                .login(&s.user, s.password.expose_secret())
                .await
                .map_err(|e| self.err(e, "logging in"))?;
            self.logins.fetch_add(1, Ordering::Relaxed);
            let qresync =
                s.changes >= Changes::Qresync && session.has("QRESYNC") && session.has("ENABLE");
            let condstore = qresync
                || (s.changes >= Changes::Condstore
                    && (session.has("CONDSTORE") || session.has("QRESYNC")));
            if qresync {
                session
                    .command("ENABLE QRESYNC")
                    .await
                    .map_err(|e| self.err(e, "enabling QRESYNC"))?;
            }
            tracing::debug!(host = %self.host(), user = %s.user, qresync, condstore, "imap session open");
            st.live = Some(Live {
                session,
                selected: None,
                qresync,
                condstore,
            });
        }
        st.live.as_mut().ok_or_else(|| ConnectorError::Protocol {
            host: self.host(),
            message: "the session closed while opening".into(),
        })
    }

    async fn select(&self, live: &mut Live, folder: &str) -> Result<Selected, ConnectorError> {
        let wire = proto::quote(&utf7::encode(folder));
        let extra = if live.condstore && !live.qresync {
            " (CONDSTORE)"
        } else {
            ""
        };
        live.selected = None;
        let reply = match live.session.command(&format!("SELECT {wire}{extra}")).await {
            Ok(r) => r,
            Err(ImapError::Refused { text, .. }) => {
                return Err(ConnectorError::Config(format!(
                "folder `{folder}` cannot be opened for user `{}` at {} ({text}); check `folders`",
                self.settings.user,
                self.host()
            )))
            }
            Err(e) => return Err(self.err(e, &format!("opening folder `{folder}`"))),
        };
        let mut sel = Selected {
            uidvalidity: 0,
            uidnext: 0,
            modseq: 0,
        };
        for r in &reply.untagged {
            if r.first().and_then(Token::atom) != Some("OK") {
                continue;
            }
            let Some(code) = r.get(1).and_then(Token::atom) else {
                continue;
            };
            let code = code.trim_start_matches('[').trim_end_matches(']');
            let mut parts = code.split_whitespace();
            let (Some(key), Some(val)) = (parts.next(), parts.next()) else {
                continue;
            };
            match key.to_ascii_uppercase().as_str() {
                "UIDVALIDITY" => sel.uidvalidity = val.parse().unwrap_or(0),
                "UIDNEXT" => sel.uidnext = val.parse().unwrap_or(0),
                "HIGHESTMODSEQ" => sel.modseq = val.parse().unwrap_or(0),
                _ => {}
            }
        }
        if sel.uidvalidity == 0 {
            return Err(ConnectorError::Protocol {
                host: self.host(),
                message: format!("SELECT of `{folder}` returned no UIDVALIDITY"),
            });
        }
        if sel.uidnext == 0 {
            // UIDNEXT is optional in RFC 3501 responses: ask STATUS.
            let reply = live
                .session
                .command(&format!("STATUS {wire} (UIDNEXT)"))
                .await
                .map_err(|e| self.err(e, &format!("reading the status of `{folder}`")))?;
            sel.uidnext = status_value(&reply, "UIDNEXT").unwrap_or(1) as u32;
        }
        live.selected = Some(folder.to_string());
        Ok(sel)
    }

    fn resync(&self, folder: &str, was: u32, now: u32) -> ConnectorError {
        ConnectorError::Resync {
            host: format!("{}@{}/{folder}", self.settings.user, self.host()),
            message: format!("UIDVALIDITY of `{folder}` changed from {was} to {now}"),
        }
    }

    /// Selects a folder and works out what its pass has to read.
    async fn begin(
        &self,
        st: &mut State,
        prior: Option<FolderState>,
        folder: &str,
    ) -> Result<Pass, ConnectorError> {
        let live = self.live(st).await?;
        let sel = self.select(live, folder).await?;
        let mut target = FolderState {
            uidvalidity: sel.uidvalidity,
            modseq: sel.modseq,
            uidnext: sel.uidnext,
            gone: String::new(),
        };
        let in_range = |u: &u32| *u < sel.uidnext;
        let mut pending = BTreeSet::new();
        let mut vanished = Vec::new();
        let doing = format!("listing changes in `{folder}`");
        match prior {
            Some(p) if p.uidvalidity != sel.uidvalidity => {
                return Err(self.resync(folder, p.uidvalidity, sel.uidvalidity))
            }
            Some(p) => {
                let unchanged = p.modseq > 0 && p.modseq == sel.modseq && p.uidnext == sel.uidnext;
                if p.uidnext > 1 && !(unchanged && live.qresync) {
                    let range = format!("1:{}", p.uidnext - 1);
                    if live.qresync && p.modseq > 0 && sel.modseq > 0 {
                        let r = live
                            .session
                            .command(&format!(
                                "UID FETCH {range} (UID) (CHANGEDSINCE {} VANISHED)",
                                p.modseq
                            ))
                            .await
                            .map_err(|e| self.err(e, &doing))?;
                        for resp in &r.untagged {
                            if resp.first().and_then(Token::atom) == Some("VANISHED") {
                                if let Some(set) = resp.last().and_then(Token::atom) {
                                    vanished.extend(proto::parse_uid_set(set).unwrap_or_default());
                                }
                            } else if let Some(f) = map::parse_fetch(resp) {
                                pending.extend(f.uid);
                            }
                        }
                    } else {
                        if live.condstore && p.modseq > 0 && sel.modseq > 0 {
                            let r = live
                                .session
                                .command(&format!(
                                    "UID FETCH {range} (UID) (CHANGEDSINCE {})",
                                    p.modseq
                                ))
                                .await
                                .map_err(|e| self.err(e, &doing))?;
                            pending.extend(
                                r.untagged
                                    .iter()
                                    .filter_map(|x| map::parse_fetch(x))
                                    .filter_map(|f| f.uid),
                            );
                        }
                        // Without QRESYNC, an expunge is a UID we knew that
                        // the server no longer lists.
                        let present: BTreeSet<u32> = self
                            .search(live, &format!("UID {range}"), &doing)
                            .await?
                            .into_iter()
                            .collect();
                        // The expunges the last pass reported are committed
                        // with its cursor: forget them now.
                        let gone = proto::parse_uid_set(&p.gone).unwrap_or_default();
                        st.index
                            .forget(folder, sel.uidvalidity, &gone)
                            .map_err(|m| ConnectorError::Io {
                                path: st_dir(&st.index),
                                message: m,
                            })?;
                        let known = st_index_uids(&mut st.index, folder, sel.uidvalidity)?;
                        vanished.extend(
                            known
                                .into_iter()
                                .filter(|u| *u < p.uidnext && !present.contains(u)),
                        );
                        target.gone = proto::uid_set(&vanished);
                    }
                }
                if sel.uidnext > p.uidnext {
                    let live = self.live(st).await?;
                    let new = self
                        .search(live, &format!("UID {}:*", p.uidnext), &doing)
                        .await?;
                    pending.extend(new.into_iter().filter(|u| *u >= p.uidnext).filter(in_range));
                }
            }
            None => {
                let all = self
                    .search(live, "ALL", &format!("listing `{folder}`"))
                    .await?;
                pending.extend(all.into_iter().filter(in_range));
            }
        }
        vanished.sort_unstable();
        vanished.dedup();
        let pending: Vec<u32> = pending.into_iter().collect();
        tracing::debug!(
            folder,
            fetch = pending.len(),
            vanished = vanished.len(),
            "imap folder pass"
        );
        Ok(Pass {
            folder: folder.to_string(),
            target,
            vanished: proto::uid_set(&vanished),
            pending: proto::uid_set(&pending),
        })
    }

    async fn search(
        &self,
        live: &mut Live,
        criteria: &str,
        doing: &str,
    ) -> Result<Vec<u32>, ConnectorError> {
        let r = live
            .session
            .command(&format!("UID SEARCH {criteria}"))
            .await
            .map_err(|e| self.err(e, doing))?;
        Ok(r.untagged
            .iter()
            .filter(|x| x.first().and_then(Token::atom) == Some("SEARCH"))
            .flat_map(|x| x.iter().skip(1).filter_map(Token::number))
            .filter_map(|n| u32::try_from(n).ok())
            .collect())
    }

    /// Fetches `uids` of the selected folder and maps them.
    async fn fetch(
        &self,
        live: &mut Live,
        pass: &Pass,
        uids: &[u32],
        page: &mut Page,
    ) -> Result<Vec<(u32, String)>, ConnectorError> {
        let mut items = String::from("UID FLAGS");
        if live.condstore {
            items.push_str(" MODSEQ");
        }
        items.push_str(&format!(" BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})]"));
        if self.settings.snippet {
            items.push_str(&format!(" BODY.PEEK[TEXT]<0.{SNIPPET_BYTES}>"));
        }
        let r = live
            .session
            .command(&format!("UID FETCH {} ({items})", proto::uid_set(uids)))
            .await
            .map_err(|e| self.err(e, &format!("reading messages of `{}`", pass.folder)))?;
        let mut got: HashMap<u32, map::Fetched> = HashMap::new();
        for resp in &r.untagged {
            if let Some(f) = map::parse_fetch(resp) {
                if let (Some(uid), true) = (f.uid, f.header.is_some()) {
                    got.insert(uid, f);
                }
            }
        }
        let mut seen = Vec::new();
        for uid in uids {
            // A message expunged since the pass began is simply gone.
            let Some(f) = got.get(uid) else { continue };
            match map::to_remote(&pass.folder, pass.target.uidvalidity, f) {
                Ok(rec) => {
                    seen.push((*uid, rec.external_id.clone()));
                    page.records.push(rec);
                }
                Err(reason) => page.rejected.push(Rejected {
                    external_id: None,
                    location: Some(format!("folder `{}` uid {uid}", pass.folder)),
                    reason,
                    raw: serde_json::json!({ "folder": pass.folder, "uid": uid }),
                }),
            }
        }
        Ok(seen)
    }

    async fn pull_locked(
        &self,
        st: &mut State,
        cur: &mut ImapCursor,
    ) -> Result<Page, ConnectorError> {
        let folders = &self.settings.folders;
        let size = self.settings.page_size;
        let mut page = Page::default();
        loop {
            let mut pass = match cur.pass.take() {
                Some(p) if folders.contains(&p.folder) => p,
                _ => {
                    let folder = cur
                        .next_folder
                        .take()
                        .filter(|f| folders.contains(f))
                        .or_else(|| folders.first().cloned())
                        .ok_or_else(|| {
                            ConnectorError::Config("key `folders`: names no folder".into())
                        })?;
                    let prior = cur.folders.get(&folder).cloned();
                    self.begin(st, prior, &folder).await?
                }
            };
            let live = self.live(st).await?;
            if live.selected.as_deref() != Some(pass.folder.as_str()) {
                // A pass resumed in a new session: the folder must still be
                // the one the pass began on.
                let sel = self.select(live, &pass.folder).await?;
                if sel.uidvalidity != pass.target.uidvalidity {
                    return Err(self.resync(
                        &pass.folder,
                        pass.target.uidvalidity,
                        sel.uidvalidity,
                    ));
                }
            }
            let mut vanished = proto::parse_uid_set(&pass.vanished).unwrap_or_default();
            let take = vanished.len().min(size.saturating_sub(page.records.len()));
            for uid in vanished.drain(..take) {
                match st.index.lookup(&pass.folder, pass.target.uidvalidity, uid) {
                    Ok(Some(id)) => page.records.push(map::deleted(&pass.folder, uid, id)),
                    Ok(None) => {
                        tracing::warn!(folder = %pass.folder, uid, "an expunged message was never read here; nothing to delete")
                    }
                    Err(m) => {
                        return Err(ConnectorError::Io {
                            path: st_dir(&st.index),
                            message: m,
                        })
                    }
                }
            }
            pass.vanished = proto::uid_set(&vanished);
            let mut pending = proto::parse_uid_set(&pass.pending).unwrap_or_default();
            let take = pending.len().min(size.saturating_sub(page.records.len()));
            if take > 0 {
                let batch: Vec<u32> = pending.drain(..take).collect();
                let live = self.live(st).await?;
                let seen = self.fetch(live, &pass, &batch, &mut page).await?;
                st.index
                    .record(&pass.folder, pass.target.uidvalidity, &seen)
                    .map_err(|m| ConnectorError::Io {
                        path: st_dir(&st.index),
                        message: m,
                    })?;
            }
            pass.pending = proto::uid_set(&pending);
            if pass.vanished.is_empty() && pass.pending.is_empty() {
                cur.folders.insert(pass.folder.clone(), pass.target.clone());
                let at = folders
                    .iter()
                    .position(|f| *f == pass.folder)
                    .unwrap_or(folders.len());
                match folders.get(at + 1) {
                    Some(next) => cur.next_folder = Some(next.clone()),
                    None => {
                        page.next = Some(cur.to_cursor());
                        page.done = true;
                        return Ok(page);
                    }
                }
            } else {
                cur.pass = Some(pass);
            }
            if page.records.len() + page.rejected.len() >= size {
                page.next = Some(cur.to_cursor());
                return Ok(page);
            }
        }
    }
}

fn st_index_uids(
    index: &mut UidIndex,
    folder: &str,
    uidvalidity: u32,
) -> Result<Vec<u32>, ConnectorError> {
    index
        .uids(folder, uidvalidity)
        .map_err(|m| ConnectorError::Io {
            path: st_dir(index),
            message: m,
        })
}

fn st_dir(index: &UidIndex) -> String {
    index.dir().display().to_string()
}

fn status_value(reply: &Reply, key: &str) -> Option<u64> {
    reply
        .untagged
        .iter()
        .filter(|r| r.first().and_then(Token::atom) == Some("STATUS"))
        .filter_map(|r| r.get(2).and_then(Token::list))
        .find_map(|l| {
            l.iter()
                .position(|t| t.atom().is_some_and(|a| a.eq_ignore_ascii_case(key)))
                .and_then(|i| l.get(i + 1))
                .and_then(Token::number)
        })
}

#[async_trait]
impl Connector for ImapConnector {
    fn kind(&self) -> &'static str {
        "imap"
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        vec![ObjectSpec {
            kind: ObjectKind::Activity,
            can_read: true,
            incremental: true,
            can_write: false,
        }]
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        let mut st = self.state.lock().await;
        let live = self.live(&mut st).await?;
        for folder in &self.settings.folders {
            let wire = proto::quote(&utf7::encode(folder));
            if let Err(e) = live
                .session
                .command(&format!("STATUS {wire} (MESSAGES)"))
                .await
            {
                return Err(match e {
                    ImapError::Refused { text, .. } => ConnectorError::Config(format!(
                        "folder `{folder}` cannot be opened for user `{}` at {} ({text}); check `folders`",
                        self.settings.user,
                        self.host()
                    )),
                    e => self.err(e, "checking folders"),
                });
            }
        }
        Ok(())
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        if object != ObjectKind::Activity {
            return Err(ConnectorError::Unsupported(format!(
                "imap cannot read {object}"
            )));
        }
        let mut cur = ImapCursor::from_cursor(from)?;
        let mut st = self.state.lock().await;
        let reused = st.live.is_some();
        let mut res = self.pull_locked(&mut st, &mut cur).await;
        if matches!(res, Err(ConnectorError::Unavailable { .. })) {
            // The connection broke: the next call logs in again.
            st.live = None;
            if reused {
                // A session kept from an earlier call was closed by the
                // server (idle autologout, its folder deleted or renamed, a
                // restart): that is not an outage; one new session, once.
                tracing::info!(host = %self.host(), "imap session closed by the server; logging in again");
                let mut cur = ImapCursor::from_cursor(from)?;
                res = self.pull_locked(&mut st, &mut cur).await;
                if matches!(res, Err(ConnectorError::Unavailable { .. })) {
                    st.live = None;
                }
            }
        }
        res
    }

    async fn estimate(&self, object: ObjectKind) -> Option<u64> {
        if object != ObjectKind::Activity {
            return None;
        }
        let mut st = self.state.lock().await;
        let live = self.live(&mut st).await.ok()?;
        let mut total = 0;
        for folder in &self.settings.folders {
            let wire = proto::quote(&utf7::encode(folder));
            let r = live
                .session
                .command(&format!("STATUS {wire} (MESSAGES)"))
                .await
                .ok()?;
            total += status_value(&r, "MESSAGES")?;
        }
        Some(total)
    }

    async fn close(&self) -> Result<(), ConnectorError> {
        let mut st = self.state.lock().await;
        if let Some(mut live) = st.live.take() {
            live.session
                .command("LOGOUT")
                .await
                .map_err(|e| self.err(e, "logging out"))?;
        }
        Ok(())
    }
}
