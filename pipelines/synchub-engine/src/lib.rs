//! The synchub engine: for every pulling connection, read pages after the
//! stored cursor and apply each page in ONE transaction (identity map, match,
//! three-way merge, CRM rows, snapshots, outbox, dead letters, cursor); then
//! drain the outbox of every pushing connection.
//!
//! A crash at any point leaves the store as if a page was never read or as
//! if it was fully applied; CRM ids of new records are derived from the
//! source id, so a replayed page writes exactly what the first attempt would
//! have.

mod apply;
pub mod config;
pub mod fuzzy;
pub mod invoices;
pub mod local;
pub mod merges;
mod plan;
mod push;
mod remote;
pub mod report;
pub mod scheduler;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use synchub_core::merge::MergePolicy;
use synchub_core::{Connector, ConnectorError, ErrorClass, ObjectKind};
use synchub_store::leases::{Claim, Lease, LeaseRow, StreamKey};
use synchub_store::{cursors, Store, StoreError};

pub use config::{DeletePolicy, Direction, PipelineConfig};
pub use report::{RunReport, StreamReport};
pub use scheduler::{Scheduler, Tick};

/// True when a run changed nothing and failed nothing (the run log
/// collapses consecutive such runs into one row).
fn is_noop(report: &RunReport) -> bool {
    report.errors.is_empty()
        && report.streams.values().all(|s| {
            s.created
                + s.updated
                + s.merged
                + s.conflicted
                + s.dead_lettered
                + s.deleted
                + s.pushed
                + s.push_failed
                == 0
        })
}

/// An error that stops a stream or a run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A connector failed (after the runtime's retries).
    #[error("connection `{connection}` ({object}): {source}")]
    Connector {
        /// Connection name.
        connection: String,
        /// Object kind.
        object: ObjectKind,
        /// The connector error.
        source: ConnectorError,
    },
    /// A request that cannot be carried out (bad value, missing record).
    #[error("{0}")]
    Invalid(String),
    /// Another process holds the stream's lease.
    #[error("{0}; another `synchub run` or daemon is syncing it: wait for it to finish or stop it (an abandoned lease is taken over once it expires)")]
    LeaseHeld(Box<LeaseRow>),
    /// The stream's lease was taken over while a page was being applied:
    /// the page was rolled back.
    #[error("stream {stream}: lost its lease (fencing token {token}) to another process; the page was rolled back and the stream stopped")]
    LeaseLost {
        /// The stream.
        stream: String,
        /// The token that was ours.
        token: i64,
    },
    /// A page's cursor would move the stream backwards.
    #[error("connection `{connection}` ({object}): page {seq} would move the stored cursor backwards (another run committed further on); the page was rolled back")]
    CursorBackwards {
        /// Connection name.
        connection: String,
        /// Object kind.
        object: ObjectKind,
        /// The page's sequence number.
        seq: i64,
    },
    /// The connector broke its contract.
    #[error("connection `{connection}` ({object}): {message}")]
    Contract {
        /// Connection name.
        connection: String,
        /// Object kind.
        object: ObjectKind,
        /// What it did wrong.
        message: String,
    },
}

/// A built connector instance taking part in a pipeline.
#[derive(Clone)]
pub struct Connection {
    /// Instance name.
    pub name: String,
    /// The connector.
    pub connector: Arc<dyn Connector>,
    /// Flow direction.
    pub direction: Direction,
    /// Objects to sync (already narrowed to what the connector supports).
    pub objects: Vec<ObjectKind>,
    /// Default phone region for its records.
    pub region: Option<String>,
}

impl Connection {
    fn can_push(&self, object: ObjectKind) -> bool {
        self.direction.pushes()
            && self.objects.contains(&object)
            && self
                .connector
                .objects()
                .iter()
                .any(|s| s.kind == object && s.can_write)
    }
}

/// A progress callback: (stream, records read so far in this run).
pub type Progress = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// Options of one run.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Ignore stored cursors and read everything.
    pub full_refresh: bool,
    /// Apply every page in a transaction that is rolled back; push nothing.
    pub dry_run: bool,
    /// Called after every page.
    pub progress: Option<Progress>,
    /// With `full_refresh`: a linked record that a complete read no longer
    /// returns was deleted there (sources such as Shopify drop deleted
    /// customers from every listing); its delete policy applies.
    pub reconcile_deletes: bool,
    /// Cancelled on shutdown: the run stops between pages (the page being
    /// applied commits; no further page is read and nothing is pushed).
    pub cancel: tokio_util::sync::CancellationToken,
    /// How streams are leased (dry runs take no lease: they commit nothing).
    pub lease: LeaseOptions,
}

/// How a run leases its streams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaseOptions {
    /// How long a lease lasts unless renewed; a live run renews it every
    /// third of this, and a dead one's streams are taken over after it.
    pub ttl: Duration,
    /// How long to wait for a stream another process holds before giving
    /// up on it (zero: give up at once).
    pub wait: Duration,
}

impl Default for LeaseOptions {
    fn default() -> LeaseOptions {
        LeaseOptions {
            ttl: Duration::from_secs(30),
            wait: Duration::from_secs(3),
        }
    }
}

/// A lease held for a stream while it is pulled.
pub(crate) struct Held<'a> {
    pub(crate) lease: &'a Lease,
    pub(crate) ttl: Duration,
    /// Cancelled when a renewal finds the lease taken over.
    pub(crate) lost: tokio_util::sync::CancellationToken,
}

/// Renews a lease in the background until dropped.
struct Renewer {
    task: tokio::task::JoinHandle<()>,
}

impl Renewer {
    fn start(
        store: Store,
        lease: Lease,
        ttl: Duration,
        lost: tokio_util::sync::CancellationToken,
    ) -> Renewer {
        let task = tokio::spawn(async move {
            let every = (ttl / 3).max(Duration::from_millis(10));
            loop {
                tokio::time::sleep(every).await;
                match store.renew_lease_at(&lease, chrono::Utc::now(), ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(stream = %lease.key, token = lease.token, "stream lease taken over by another process; stopping the stream");
                        lost.cancel();
                        return;
                    }
                    // The next renewal or the page's fencing check decides.
                    Err(e) => {
                        tracing::warn!(stream = %lease.key, error = %e, "renewing a stream lease failed")
                    }
                }
            }
        });
        Renewer { task }
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The run-report error key of a run stopped by [`RunOptions::cancel`].
pub const STOPPED: &str = "shutdown";

/// The engine for one pipeline.
pub struct Engine {
    store: Store,
    pipeline: String,
    connections: Vec<Connection>,
    policy: MergePolicy,
    deletes: BTreeMap<ObjectKind, DeletePolicy>,
    /// Ids read so far in this run, per stream (repeats are reported).
    run_ids: std::sync::Mutex<apply::RunIds>,
    /// Whether a pulled contact no exact key places is matched by fuzzy
    /// evidence in its page (off for a one-shot migration, which runs the
    /// whole-set probabilistic pass after the import instead).
    pull_matching: bool,
    /// Which orders each accounting connection invoices.
    invoice_rules: invoices::InvoiceRules,
}

/// How often a page read is retried when the connector says "later".
const PULL_ATTEMPTS: u32 = 5;

impl Engine {
    /// An engine over built connections.
    pub fn new(
        store: Store,
        pipeline: impl Into<String>,
        connections: Vec<Connection>,
        policy: MergePolicy,
        deletes: BTreeMap<ObjectKind, DeletePolicy>,
    ) -> Engine {
        Engine {
            store,
            pipeline: pipeline.into(),
            connections,
            policy,
            deletes,
            run_ids: Default::default(),
            pull_matching: true,
            invoice_rules: Default::default(),
        }
    }

    /// Sets which orders each accounting connection invoices (see
    /// [`invoices`]).
    pub fn with_invoice_rules(mut self, rules: invoices::InvoiceRules) -> Engine {
        self.invoice_rules = rules;
        self
    }

    /// Turns fuzzy matching on pulls off (a migration: its whole-set pass
    /// after the import blocks and fits over every record at once).
    pub fn without_pull_matching(mut self) -> Engine {
        self.pull_matching = false;
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The connections.
    pub fn connections(&self) -> &[Connection] {
        &self.connections
    }

    /// One full round: pull every pulling stream, then push every pushing one.
    /// Stream failures are reported in the run report and do not stop others.
    pub async fn run(&self, opts: &RunOptions) -> Result<RunReport, EngineError> {
        let started = Instant::now();
        let started_at = synchub_store::now_text();
        apply::RunIds::reset(&self.run_ids);
        let mut report = RunReport {
            pipeline: self.pipeline.clone(),
            dry_run: opts.dry_run,
            ..RunReport::default()
        };
        // Streams that could not be read to the end: writing to them now
        // could overwrite edits the engine has not seen, so they wait.
        let mut unread: std::collections::HashSet<(String, ObjectKind)> = Default::default();
        for object in ObjectKind::ALL {
            for conn in self.connections.iter().filter(|c| c.direction.pulls()) {
                if !conn.objects.contains(&object) || !invoices::readable(conn, object) {
                    continue;
                }
                if opts.cancel.is_cancelled() {
                    break;
                }
                if let Err(e) = self.pull_stream(conn, object, opts, &mut report).await {
                    if matches!(e, EngineError::Store(_)) {
                        return Err(e);
                    }
                    unread.insert((conn.name.clone(), object));
                    tracing::error!(connection = %conn.name, %object, error = %e, "stream failed");
                    report
                        .errors
                        .insert(format!("{}.{object}", conn.name), e.to_string());
                }
            }
        }
        let stopped = opts.cancel.is_cancelled();
        if stopped {
            tracing::info!(pipeline = %self.pipeline, "run stopped by shutdown; the next run resumes from the committed cursors");
            report.errors.insert(
                STOPPED.into(),
                "stopped between pages by shutdown; the next run resumes from the committed cursors"
                    .into(),
            );
        }
        if !opts.dry_run && !stopped {
            for conn in &self.connections {
                for object in ObjectKind::ALL {
                    if !conn.can_push(object) {
                        continue;
                    }
                    if unread.contains(&(conn.name.clone(), object)) {
                        tracing::warn!(connection = %conn.name, %object, "push held: the stream was not read to the end");
                        continue;
                    }
                    if let Err(e) = push::drain(self, conn, object, &mut report).await {
                        if matches!(e, EngineError::Store(_)) {
                            return Err(e);
                        }
                        tracing::error!(connection = %conn.name, %object, error = %e, "push failed");
                        report
                            .errors
                            .insert(format!("{}.{object}.push", conn.name), e.to_string());
                    }
                }
            }
        }
        for conn in &self.connections {
            // Sessions (an IMAP login) end with the run.
            if let Err(e) = conn.connector.close().await {
                tracing::warn!(connection = %conn.name, error = %e, "closing the connection failed");
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        if !opts.dry_run {
            let json = serde_json::to_string(&report).unwrap_or_default();
            self.store
                .record_run(&self.pipeline, &started_at, &json, is_noop(&report))
                .await?;
        }
        Ok(report)
    }

    /// Reads one stream page by page from its stored cursor, holding the
    /// stream's lease (see [`LeaseOptions`]) unless the run is dry.
    pub async fn pull_stream(
        &self,
        conn: &Connection,
        object: ObjectKind,
        opts: &RunOptions,
        report: &mut RunReport,
    ) -> Result<(), EngineError> {
        if opts.dry_run {
            return self.pull_leased(conn, object, opts, report, None).await;
        }
        let key = StreamKey {
            pipeline: self.pipeline.clone(),
            connection: conn.name.clone(),
            object,
        };
        let lease = match self
            .store
            .acquire_lease(&key, opts.lease.ttl, opts.lease.wait)
            .await?
        {
            Claim::Granted(lease) => lease,
            Claim::Held(row) => return Err(EngineError::LeaseHeld(Box::new(row))),
        };
        tracing::debug!(stream = %key, token = lease.token, "stream lease granted");
        let held = Held {
            lease: &lease,
            ttl: opts.lease.ttl,
            lost: tokio_util::sync::CancellationToken::new(),
        };
        let renewer = Renewer::start(
            self.store.clone(),
            lease.clone(),
            opts.lease.ttl,
            held.lost.clone(),
        );
        let result = self
            .pull_leased(conn, object, opts, report, Some(&held))
            .await;
        drop(renewer);
        if let Err(e) = self.store.release_lease(&lease).await {
            // It expires on its own after the TTL.
            tracing::warn!(stream = %key, error = %e, "releasing a stream lease failed");
        }
        result
    }

    async fn pull_leased(
        &self,
        conn: &Connection,
        object: ObjectKind,
        opts: &RunOptions,
        report: &mut RunReport,
        lease: Option<&Held<'_>>,
    ) -> Result<(), EngineError> {
        let started = Instant::now();
        let stream_name = format!("{}.{object}", conn.name);
        let stored = {
            let mut tx = self.store.begin().await?;
            let c = cursors::load(&mut tx, &conn.name, object).await?;
            tx.commit().await.map_err(|e| StoreError::Query {
                context: "reading a cursor",
                source: e,
            })?;
            c
        };
        let mut seq = stored.as_ref().map(|c| c.seq).unwrap_or(0);
        let mut cursor = if opts.full_refresh {
            None
        } else {
            stored.and_then(|c| c.cursor)
        };
        // Ids a complete read returned, for delete reconciliation.
        let mut seen: Option<std::collections::HashSet<String>> =
            (opts.full_refresh && opts.reconcile_deletes && !opts.dry_run)
                .then(std::collections::HashSet::new);
        let mut resynced = false;
        loop {
            if opts.cancel.is_cancelled() {
                // Stopped between pages: everything read so far is committed.
                return Ok(());
            }
            if let Some(held) = lease.filter(|h| h.lost.is_cancelled()) {
                return Err(EngineError::LeaseLost {
                    stream: held.lease.key.to_string(),
                    token: held.lease.token,
                });
            }
            let page = match self
                .pull_with_retry(conn, object, cursor.as_ref(), &opts.cancel)
                .await
            {
                Ok(page) => page,
                // The source says our position is gone (an expired history
                // id, a changed UIDVALIDITY): read the stream again from
                // the start, once per run; the records already held are
                // matched by their links, so nothing is duplicated.
                Err(EngineError::Connector { source, .. })
                    if source.class() == ErrorClass::Resync && cursor.is_some() && !resynced =>
                {
                    tracing::warn!(connection = %conn.name, %object, reason = %source, "the source asks for a full resync; reading the stream from the start");
                    report.stream(&conn.name, object).resyncs += 1;
                    resynced = true;
                    cursor = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if page.rejected.iter().any(|r| r.external_id.is_none()) {
                // An item without an id could be any record: no absence
                // can be trusted in this read.
                seen = None;
            }
            if let Some(ids) = seen.as_mut() {
                ids.extend(page.records.iter().map(|r| r.external_id.clone()));
                ids.extend(page.rejected.iter().filter_map(|r| r.external_id.clone()));
            }
            if page.next.is_none() && !page.done {
                return Err(EngineError::Contract {
                    connection: conn.name.clone(),
                    object,
                    message: "page has no cursor and is not the last; refusing to loop".into(),
                });
            }
            seq += 1;
            let counts =
                apply::apply_page(self, conn, object, &page, seq, opts.dry_run, lease).await?;
            let s = report.stream(&conn.name, object);
            s.absorb(&counts);
            s.pages += 1;
            let read = s.read;
            if let Some(p) = &opts.progress {
                p(&stream_name, read);
            }
            if page.next.is_some() {
                cursor = page.next;
            }
            if page.done {
                break;
            }
        }
        if let Some(seen) = seen {
            let counts = self.reconcile(conn, object, &seen, lease).await?;
            report.stream(&conn.name, object).absorb(&counts);
        }
        report.stream(&conn.name, object).seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Applies a delete for every live link of the stream that a complete
    /// read did not return. An empty read deletes nothing: a source that
    /// suddenly lists no records at all is more likely broken than empty.
    async fn reconcile(
        &self,
        conn: &Connection,
        object: ObjectKind,
        seen: &std::collections::HashSet<String>,
        lease: Option<&Held<'_>>,
    ) -> Result<report::StreamReport, EngineError> {
        let mut counts = report::StreamReport::default();
        let gone: Vec<String> = self
            .store
            .live_external_ids(&conn.name, object)
            .await?
            .into_iter()
            .filter(|id| !seen.contains(id))
            .collect();
        if gone.is_empty() {
            return Ok(counts);
        }
        if seen.is_empty() {
            tracing::warn!(connection = %conn.name, %object, linked = gone.len(), "a complete read returned nothing; no deletes inferred");
            return Ok(counts);
        }
        tracing::info!(connection = %conn.name, %object, gone = gone.len(), "records no longer in the source: applying deletes");
        for chunk in gone.chunks(500) {
            let page = synchub_core::Page {
                records: chunk
                    .iter()
                    .map(|id| synchub_core::RemoteRecord {
                        external_id: id.clone(),
                        version: None,
                        updated_at: None,
                        deleted: true,
                        record: None,
                        raw: serde_json::json!({ "reconciled": "absent from a complete read" }),
                    })
                    .collect(),
                done: true,
                ..Default::default()
            };
            let c = apply::apply_page(self, conn, object, &page, 0, false, lease).await?;
            counts.deleted += c.deleted;
            counts.dead_lettered += c.dead_lettered;
        }
        Ok(counts)
    }

    async fn pull_with_retry(
        &self,
        conn: &Connection,
        object: ObjectKind,
        cursor: Option<&synchub_core::Cursor>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<synchub_core::Page, EngineError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match conn.connector.pull(object, cursor).await {
                Ok(page) => return Ok(page),
                Err(e) if e.class() == ErrorClass::Retry && attempt < PULL_ATTEMPTS => {
                    let wait = match &e {
                        ConnectorError::Unavailable {
                            retry_after: Some(d),
                            ..
                        } => *d,
                        _ => Duration::from_millis(200 * 2u64.pow(attempt)),
                    };
                    tracing::warn!(connection = %conn.name, %object, attempt, error = %e, ?wait, "pull will be retried");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = cancel.cancelled() => return Err(EngineError::Connector {
                            connection: conn.name.clone(),
                            object,
                            source: e,
                        }),
                    }
                }
                Err(source) => {
                    return Err(EngineError::Connector {
                        connection: conn.name.clone(),
                        object,
                        source,
                    })
                }
            }
        }
    }

    pub(crate) fn delete_policy(&self, object: ObjectKind) -> DeletePolicy {
        self.deletes.get(&object).copied().unwrap_or_default()
    }
}
