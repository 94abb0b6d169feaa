//! The synchub store: one API over SQLite (the embedded default) and
//! PostgreSQL (production), through sqlx's `Any` driver. This crate is the
//! only code that speaks SQL; every statement here is written once, in the
//! common dialect of both (`$1` placeholders, `ON CONFLICT … DO UPDATE`).
//!
//! All state that describes a page — records, identity links with their
//! snapshots, outbox rows, dead letters, conflicts and the stream cursor — is
//! written through a [`Tx`], so a page is applied whole or not at all.

pub mod audit;
pub mod budget;
pub mod conflicts;
mod connect;
pub mod cursors;
pub mod dead_letters;
pub mod deliveries;
pub mod leases;
pub mod links;
pub mod match_pass;
pub mod merges;
pub mod outbox;
pub mod page;
pub mod records;
pub mod relations;
pub mod reviews;
pub mod runs;
mod sql;
pub mod tokens;
pub mod users;

use sqlx::AnyPool;

pub use connect::{redact_url, Backend};

/// A database transaction; commit it with [`Tx::commit`].
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// An error from the store. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not one we support.
    #[error("unsupported database URL `{url}`: use sqlite://PATH or postgres://USER@HOST/DB (set --database-url or SYNCHUB_DATABASE_URL)")]
    BadUrl {
        /// The URL, password removed.
        url: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot open database {url}: {message}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// What the driver said.
        message: String,
    },
    /// Migrations failed.
    #[error("cannot migrate database {url}: {message}")]
    Migrate {
        /// The URL, password removed.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A query failed.
    #[error("database error while {context}: {source}")]
    Query {
        /// What the store was doing.
        context: &'static str,
        /// The driver error.
        source: sqlx::Error,
    },
    /// A stored value could not be decoded.
    #[error("corrupt stored value while {context}: {message}")]
    Corrupt {
        /// What the store was doing.
        context: &'static str,
        /// What was wrong.
        message: String,
    },
}

pub(crate) trait QueryContext<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { context, source })
    }
}

pub(crate) fn corrupt(context: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        context,
        message: e.to_string(),
    }
}

/// UTC now in the fixed-width text form every timestamp column uses.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The store: a pool plus the backend it talks to.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
    /// Rows written through this handle, and when to refresh the planner's
    /// statistics next (PostgreSQL).
    growth: std::sync::Arc<Growth>,
}

#[derive(Debug)]
struct Growth {
    written: std::sync::atomic::AtomicU64,
    next_analyze: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl Store {
    /// Opens (creating a SQLite file on first use) and migrates the store.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let (pool, backend) = connect::open(url).await?;
        let store = Store {
            pool,
            backend,
            url: url.to_string(),
            growth: std::sync::Arc::new(Growth {
                written: 0.into(),
                next_analyze: 1_000.into(),
            }),
        };
        connect::migrate(&store).await?;
        Ok(store)
    }

    /// Notes `rows` committed rows. On PostgreSQL, each time the rows
    /// written by this process double, the hot tables are analyzed: a bulk
    /// load into fresh tables otherwise runs on the planner's empty-table
    /// estimates (where autovacuum is off or behind), and an identity-link
    /// lookup scans a whole connection's links instead of probing the key
    /// (cost growing with the table).
    pub async fn note_writes(&self, rows: u64) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.backend != Backend::Postgres || rows == 0 {
            return Ok(());
        }
        let total = self.growth.written.fetch_add(rows, SeqCst) + rows;
        let next = self.growth.next_analyze.load(SeqCst);
        if total < next
            || self
                .growth
                .next_analyze
                .compare_exchange(next, total.saturating_mul(2), SeqCst, SeqCst)
                .is_err()
        {
            return Ok(());
        }
        tracing::debug!(rows = total, "refreshing planner statistics");
        sqlx::query("ANALYZE crm_record, match_key, id_link")
            .execute(&self.pool)
            .await
            .ctx("refreshing planner statistics")?;
        Ok(())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL, password removed.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The pool, for modules of this crate added by other features.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        match self.backend {
            // SQLite: take the write lock at the start. A deferred
            // transaction that reads, then writes after another writer
            // committed fails at once with SQLITE_BUSY_SNAPSHOT (two
            // pipelines of one daemon did); an immediate one waits its turn
            // under busy_timeout instead.
            Backend::Sqlite => self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .ctx("starting a transaction"),
            _ => self.pool.begin().await.ctx("starting a transaction"),
        }
    }

    /// Closes the pool, waiting (up to five seconds) for every connection
    /// to finish and close.
    pub async fn close(&self) {
        self.pool.close().await;
        // sqlx's close can return while a connection that was being handed
        // back (its user dropped mid-query) is still alive, and on SQLite it
        // keeps the file's locks. Drain again until none is left.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.pool.size() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            self.pool.close().await;
        }
    }
}
