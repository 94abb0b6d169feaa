//! Stream leases with fencing: one process at a time per (pipeline,
//! connection, object).
//!
//! A run claims the stream's lease row before reading it. The row carries a
//! fencing token that only ever grows: each grant adds one, and a release
//! keeps the row (it only ends the lease's time), so a token is never
//! handed out twice. Every page commit calls [`fence`] in its own
//! transaction; it fails when the token is no longer the row's, so a holder
//! that stalled past its lease and was taken over cannot commit a page. A
//! lease is granted only when the row is free (released or expired), in one
//! statement: PostgreSQL locks the row for `ON CONFLICT … DO UPDATE`, SQLite
//! runs it under its writer lock.
//!
//! Times are compared as the fixed-width UTC text every timestamp column
//! uses, taken from the clock of the process that writes them (instances
//! sharing a store are expected to run NTP; a lease's TTL should be far
//! larger than their skew).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};
use synchub_core::ObjectKind;

use crate::{QueryContext, Store, StoreError};

/// The stream a lease covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// Pipeline name.
    pub pipeline: String,
    /// Connection name.
    pub connection: String,
    /// Object kind.
    pub object: ObjectKind,
}

impl std::fmt::Display for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}.{}", self.pipeline, self.connection, self.object)
    }
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The stream.
    pub key: StreamKey,
    /// Unique id of this grant's holder (`host:pid:uuid`).
    pub holder: String,
    /// The fencing token of this grant.
    pub token: i64,
    /// When it was granted.
    pub acquired_at: String,
}

/// Who holds a lease, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRow {
    /// The stream.
    pub key: StreamKey,
    /// Unique id of the holder.
    pub holder: String,
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: i64,
    /// Current fencing token.
    pub token: i64,
    /// When the holder was granted the lease.
    pub acquired_at: String,
    /// When the lease ends unless renewed (an empty text once released).
    pub expires_at: String,
}

impl LeaseRow {
    /// True when the lease is held at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.as_str() >= time_text(now).as_str()
    }
}

impl std::fmt::Display for LeaseRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stream {} is held by host {} pid {} since {} (fencing token {}, lease expires {})",
            self.key, self.host, self.pid, self.acquired_at, self.token, self.expires_at
        )
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The lease is ours.
    Granted(Lease),
    /// Another process holds it.
    Held(LeaseRow),
}

/// The name of this host, for lease rows and messages.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown-host".into())
}

/// A new holder id naming this process: `host:pid:uuid`.
pub fn new_holder() -> String {
    format!(
        "{}:{}:{}",
        host_name(),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// True when `row`'s holder is a process of this host that has ended
/// (Linux: no `/proc/PID`; elsewhere never assumed).
fn holder_is_dead(row: &LeaseRow) -> bool {
    process_has_ended(&row.host, row.pid)
}

/// True when `holder` (an id made by [`new_holder`], `host:pid:uuid`) names
/// a process of this host that has ended. Anything else — another host, a
/// live or reused pid, a claim that is not a process's (such as a deferral
/// marker) — is never assumed dead: its claim runs out with its TTL.
pub fn holder_id_is_dead(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (Some(uuid), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<i64>() else {
        return false;
    };
    uuid.len() == 32 && uuid.chars().all(|c| c.is_ascii_hexdigit()) && process_has_ended(host, pid)
}

fn process_has_ended(host: &str, pid: i64) -> bool {
    cfg!(target_os = "linux")
        && pid > 0
        && host == host_name()
        && pid != i64::from(std::process::id())
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn plus(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::days(365))
}

/// The stored text of a released lease's end: before every time.
const RELEASED: &str = "";

/// Checks, inside the page's transaction, that `lease` is still the
/// stream's, extends it by `ttl` from `now` and logs the page under its
/// token in [`LeaseEvent`]s (the row commits or rolls back with the page).
/// Returns false when another holder took the stream over: the caller must
/// roll the page back. Run it first in the transaction: on PostgreSQL it
/// locks the lease row until the commit (a takeover waits for the page;
/// a holder that stalls inside the transaction for longer than `ttl` has
/// its session ended by the server, which frees the row), on SQLite it
/// takes the writer lock for the whole page.
pub async fn fence(
    conn: &mut AnyConnection,
    lease: &Lease,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<bool, StoreError> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT set_config('idle_in_transaction_session_timeout', $1, true)")
            .bind(millis(ttl).to_string())
            .fetch_one(&mut *conn)
            .await
            .ctx("bounding a page transaction's idle time")?;
    }
    if !check_token(conn, lease, now, ttl).await? {
        tracing::warn!(
            stream = %lease.key,
            token = lease.token,
            holder = %lease.holder,
            "page refused: the stream's fencing token moved on (the lease was taken over)"
        );
        return Ok(false);
    }
    log_event(conn, &lease.key, "page", &lease.holder, lease.token, now).await?;
    Ok(true)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Extends `lease` by `ttl` from `now` when its token is still the row's.
async fn check_token(
    conn: &mut AnyConnection,
    lease: &Lease,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE stream_lease SET expires_at = $1 \
         WHERE pipeline = $2 AND connection = $3 AND object = $4 AND token = $5 AND holder = $6",
    )
    .bind(time_text(plus(now, ttl)))
    .bind(&lease.key.pipeline)
    .bind(&lease.key.connection)
    .bind(lease.key.object.as_str())
    .bind(lease.token)
    .bind(&lease.holder)
    .execute(conn)
    .await
    .ctx("checking a stream lease's fencing token")?;
    Ok(done.rows_affected() == 1)
}

async fn log_event(
    conn: &mut AnyConnection,
    key: &StreamKey,
    event: &str,
    holder: &str,
    token: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO lease_log (pipeline, connection, object, event, holder, token, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&key.pipeline)
    .bind(&key.connection)
    .bind(key.object.as_str())
    .bind(event)
    .bind(holder)
    .bind(token)
    .bind(time_text(now))
    .execute(conn)
    .await
    .ctx("logging a stream lease event")?;
    Ok(())
}

/// How long lease history is kept.
const LOG_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// One line of a stream's lease history.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseEvent {
    /// Order of the events (per stream, the order they committed in).
    pub id: i64,
    /// The stream.
    pub key: StreamKey,
    /// `grant` (a lease was granted), `page` (a page committed under it)
    /// or `release` (its holder ended it).
    pub event: String,
    /// The holder it names.
    pub holder: String,
    /// The fencing token of the grant, or the one the page committed under.
    pub token: i64,
    /// When, by the writer's clock.
    pub at: String,
}

/// True for PostgreSQL's `lock_not_available` (a `lock_timeout` ran out).
fn lock_not_available(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "55P03")
}

fn row_of(r: &sqlx::any::AnyRow) -> Result<LeaseRow, StoreError> {
    const CTX: &str = "reading a stream lease";
    let object: String = r.try_get("object").ctx(CTX)?;
    Ok(LeaseRow {
        key: StreamKey {
            pipeline: r.try_get("pipeline").ctx(CTX)?,
            connection: r.try_get("connection").ctx(CTX)?,
            object: ObjectKind::parse(&object)
                .ok_or_else(|| crate::corrupt(CTX, format!("unknown object `{object}`")))?,
        },
        holder: r.try_get("holder").ctx(CTX)?,
        host: r.try_get("host").ctx(CTX)?,
        pid: r.try_get("pid").ctx(CTX)?,
        token: r.try_get("token").ctx(CTX)?,
        acquired_at: r.try_get("acquired_at").ctx(CTX)?,
        expires_at: r.try_get("expires_at").ctx(CTX)?,
    })
}

impl Store {
    /// Claims a stream's lease for `ttl` from `now` if it is free
    /// (never granted, released, or expired); otherwise names its holder.
    pub async fn try_acquire_lease_at(
        &self,
        key: &StreamKey,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Claim, StoreError> {
        const CTX: &str = "claiming a stream lease";
        let host = host_name();
        let pid = i64::from(std::process::id());
        let holder = format!("{host}:{pid}:{}", uuid::Uuid::new_v4().simple());
        let at = time_text(now);
        let mut tx = self.pool.begin().await.ctx(CTX)?;
        if self.backend == crate::Backend::Postgres {
            // A holder stalled inside a page's transaction keeps the row
            // locked: name it as the holder instead of waiting behind it.
            sqlx::query("SELECT set_config('lock_timeout', '2000', true)")
                .fetch_one(&mut *tx)
                .await
                .ctx(CTX)?;
        }
        let granted = sqlx::query(
            "INSERT INTO stream_lease \
             (pipeline, connection, object, holder, host, pid, token, acquired_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8) \
             ON CONFLICT (pipeline, connection, object) DO UPDATE SET \
             holder = excluded.holder, host = excluded.host, pid = excluded.pid, \
             token = stream_lease.token + 1, acquired_at = excluded.acquired_at, \
             expires_at = excluded.expires_at \
             WHERE stream_lease.expires_at < excluded.acquired_at \
             RETURNING token",
        )
        .bind(&key.pipeline)
        .bind(&key.connection)
        .bind(key.object.as_str())
        .bind(&holder)
        .bind(&host)
        .bind(pid)
        .bind(&at)
        .bind(time_text(plus(now, ttl)))
        .fetch_optional(&mut *tx)
        .await;
        let granted = match granted {
            Err(e) if lock_not_available(&e) => None,
            other => other.ctx(CTX)?,
        };
        if let Some(row) = granted {
            let token: i64 = row.try_get("token").ctx(CTX)?;
            log_granted(&mut tx, key, &holder, token, now).await?;
            tx.commit().await.ctx(CTX)?;
            tracing::info!(stream = %key, token, %holder, "stream lease granted");
            return Ok(Claim::Granted(Lease {
                key: key.clone(),
                holder,
                token,
                acquired_at: at,
            }));
        }
        drop(tx);
        match self.lease(key).await? {
            Some(row) => Ok(Claim::Held(row)),
            // Released and deleted by hand between the two statements.
            None => Err(crate::corrupt(
                CTX,
                format!("the lease row of {key} vanished while it was claimed"),
            )),
        }
    }

    /// Takes over a lease whose holder is known to be gone, if its token
    /// is still `token` (compare-and-set: of two processes doing this, one
    /// wins).
    pub async fn take_over_lease_at(
        &self,
        key: &StreamKey,
        token: i64,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        const CTX: &str = "taking over a stream lease";
        let host = host_name();
        let pid = i64::from(std::process::id());
        let holder = new_holder();
        let at = time_text(now);
        let mut tx = self.pool.begin().await.ctx(CTX)?;
        let row = sqlx::query(
            "UPDATE stream_lease SET holder = $1, host = $2, pid = $3, token = token + 1, \
             acquired_at = $4, expires_at = $5 \
             WHERE pipeline = $6 AND connection = $7 AND object = $8 AND token = $9 \
             RETURNING token",
        )
        .bind(&holder)
        .bind(&host)
        .bind(pid)
        .bind(&at)
        .bind(time_text(plus(now, ttl)))
        .bind(&key.pipeline)
        .bind(&key.connection)
        .bind(key.object.as_str())
        .bind(token)
        .fetch_optional(&mut *tx)
        .await
        .ctx(CTX)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let token: i64 = row.try_get("token").ctx(CTX)?;
        log_granted(&mut tx, key, &holder, token, now).await?;
        tx.commit().await.ctx(CTX)?;
        tracing::info!(stream = %key, token, %holder, "stream lease taken over");
        Ok(Some(Lease {
            key: key.clone(),
            holder,
            token,
            acquired_at: at,
        }))
    }

    /// Claims a stream's lease, asking again every quarter second for up to
    /// `wait` while another process holds it. A lease held by a process of
    /// this host that no longer runs (killed) is taken over at once instead
    /// of after its TTL.
    pub async fn acquire_lease(
        &self,
        key: &StreamKey,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Claim, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut claim = self.try_acquire_lease_at(key, Utc::now(), ttl).await?;
            if let Claim::Held(row) = &claim {
                if holder_is_dead(row) {
                    tracing::info!(stream = %key, pid = row.pid, "the lease holder no longer runs on this host; taking the stream over");
                    if let Some(lease) = self
                        .take_over_lease_at(key, row.token, Utc::now(), ttl)
                        .await?
                    {
                        claim = Claim::Granted(lease);
                    }
                }
            }
            let now = tokio::time::Instant::now();
            if matches!(claim, Claim::Granted(_)) || now >= deadline {
                return Ok(claim);
            }
            tokio::time::sleep(Duration::from_millis(250).min(deadline - now)).await;
        }
    }

    /// Extends a lease by `ttl` from `now`; false when it was taken over.
    pub async fn renew_lease_at(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .ctx("acquiring a connection to renew a lease")?;
        check_token(&mut conn, lease, now, ttl).await
    }

    /// Ends a lease (when it is still ours): the stream is free at once,
    /// and its token stays for the next grant to count from.
    pub async fn release_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        const CTX: &str = "releasing a stream lease";
        let mut tx = self.pool.begin().await.ctx(CTX)?;
        let done = sqlx::query(
            "UPDATE stream_lease SET expires_at = $1 \
             WHERE pipeline = $2 AND connection = $3 AND object = $4 AND token = $5 AND holder = $6",
        )
        .bind(RELEASED)
        .bind(&lease.key.pipeline)
        .bind(&lease.key.connection)
        .bind(lease.key.object.as_str())
        .bind(lease.token)
        .bind(&lease.holder)
        .execute(&mut *tx)
        .await
        .ctx(CTX)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        log_event(
            &mut tx,
            &lease.key,
            "release",
            &lease.holder,
            lease.token,
            Utc::now(),
        )
        .await?;
        tx.commit().await.ctx(CTX)?;
        Ok(true)
    }

    /// The lease row of one stream.
    pub async fn lease(&self, key: &StreamKey) -> Result<Option<LeaseRow>, StoreError> {
        let row = sqlx::query(
            "SELECT pipeline, connection, object, holder, host, pid, token, acquired_at, expires_at \
             FROM stream_lease WHERE pipeline = $1 AND connection = $2 AND object = $3",
        )
        .bind(&key.pipeline)
        .bind(&key.connection)
        .bind(key.object.as_str())
        .fetch_optional(&self.pool)
        .await
        .ctx("reading a stream lease")?;
        row.as_ref().map(row_of).transpose()
    }

    /// Every lease row, by stream.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT pipeline, connection, object, holder, host, pid, token, acquired_at, expires_at \
             FROM stream_lease ORDER BY pipeline, connection, object",
        )
        .fetch_all(&self.pool)
        .await
        .ctx("listing stream leases")?;
        rows.iter().map(row_of).collect()
    }
    /// The lease history, in the order it committed (per stream), oldest
    /// first.
    pub async fn lease_log(&self) -> Result<Vec<LeaseEvent>, StoreError> {
        const CTX: &str = "reading the lease history";
        let rows = sqlx::query(
            "SELECT id, pipeline, connection, object, event, holder, token, at \
             FROM lease_log ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        rows.iter()
            .map(|r| {
                let object: String = r.try_get("object").ctx(CTX)?;
                Ok(LeaseEvent {
                    id: r.try_get("id").ctx(CTX)?,
                    key: StreamKey {
                        pipeline: r.try_get("pipeline").ctx(CTX)?,
                        connection: r.try_get("connection").ctx(CTX)?,
                        object: ObjectKind::parse(&object).ok_or_else(|| {
                            crate::corrupt(CTX, format!("unknown object `{object}`"))
                        })?,
                    },
                    event: r.try_get("event").ctx(CTX)?,
                    holder: r.try_get("holder").ctx(CTX)?,
                    token: r.try_get("token").ctx(CTX)?,
                    at: r.try_get("at").ctx(CTX)?,
                })
            })
            .collect()
    }
}

/// Logs a grant and prunes the stream's history older than [`LOG_KEPT`].
async fn log_granted(
    conn: &mut AnyConnection,
    key: &StreamKey,
    holder: &str,
    token: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM lease_log WHERE pipeline = $1 AND connection = $2 AND object = $3 AND at < $4",
    )
    .bind(&key.pipeline)
    .bind(&key.connection)
    .bind(key.object.as_str())
    .bind(time_text(
        now - chrono::Duration::from_std(LOG_KEPT).unwrap_or(chrono::Duration::days(7)),
    ))
    .execute(&mut *conn)
    .await
    .ctx("pruning the lease history")?;
    log_event(conn, key, "grant", holder, token, now).await
}
