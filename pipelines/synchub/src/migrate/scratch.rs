//! The private store a `synchub migrate --dry-run` really runs against, so
//! every count, merge and invalid row it prints is what the real run does:
//! a temporary copy of a SQLite file, or on PostgreSQL a database cloned
//! from the store with `CREATE DATABASE … TEMPLATE` (dropped afterwards,
//! also when the run fails). Nothing is created or written at the store.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::anyhow;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection as _;

/// Where a dry run writes instead of the store.
pub(super) enum Scratch {
    Sqlite(SqliteCopy),
    Postgres(Box<PgClone>),
}

impl Scratch {
    /// The scratch store for `db`; `None` where there is nothing to copy
    /// (an in-memory SQLite store, or a PostgreSQL database that does not
    /// exist: opening it fails exactly as the real run would).
    pub(super) async fn of(db: &str) -> anyhow::Result<Option<Scratch>> {
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return Ok(PgClone::of(db)
                .await?
                .map(|p| Scratch::Postgres(Box::new(p))));
        }
        Ok(SqliteCopy::of(db)?.map(Scratch::Sqlite))
    }

    /// The URL the dry run opens.
    pub(super) fn url(&self) -> &str {
        match self {
            Scratch::Sqlite(s) => &s.url,
            Scratch::Postgres(p) => &p.url,
        }
    }

    /// Removes the scratch store (call after its pool is closed).
    pub(super) async fn remove(self) {
        match self {
            Scratch::Sqlite(s) => drop(s),
            Scratch::Postgres(p) => p.remove().await,
        }
    }
}

/// A temporary copy of a SQLite store (removed on drop).
pub(super) struct SqliteCopy {
    url: String,
    _dir: tempfile::TempDir,
}

impl SqliteCopy {
    /// `None` for stores that are not SQLite files.
    fn of(db: &str) -> anyhow::Result<Option<SqliteCopy>> {
        let Some(rest) = db.strip_prefix("sqlite:") else {
            return Ok(None);
        };
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() || path.contains(":memory:") {
            return Ok(None);
        }
        let dir = tempfile::Builder::new()
            .prefix("synchub-dry-run-")
            .tempdir()
            .map_err(|e| anyhow!("--dry-run: cannot create a temporary folder: {e}"))?;
        let copy = dir.path().join("dry-run.db");
        let original = std::path::Path::new(path);
        if original.exists() {
            std::fs::copy(original, &copy).map_err(|e| {
                anyhow!(
                    "--dry-run: cannot copy the store {path} to {}: {e}",
                    copy.display()
                )
            })?;
            // Committed pages not yet checkpointed into the main file.
            let wal = PathBuf::from(format!("{path}-wal"));
            if wal.exists() {
                std::fs::copy(&wal, dir.path().join("dry-run.db-wal"))
                    .map_err(|e| anyhow!("--dry-run: cannot copy {}: {e}", wal.display()))?;
            }
        }
        Ok(Some(SqliteCopy {
            url: format!("sqlite://{}", copy.display()),
            _dir: dir,
        }))
    }
}

/// A PostgreSQL database cloned from the store for one dry run. Dropped by
/// [`PgClone::remove`]; if that is never reached (a panic), `Drop` drops it.
pub(super) struct PgClone {
    /// A connection target on the same server outside the clone.
    admin: PgConnectOptions,
    name: String,
    url: String,
    removed: bool,
}

/// Quotes an identifier for PostgreSQL.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` with its database name replaced by `name` (query kept).
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let after_scheme = head
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| anyhow!("--dry-run: cannot read the store URL"))?;
    let authority_end = head[after_scheme..]
        .find('/')
        .map_or(head.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &head[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

impl PgClone {
    async fn of(db: &str) -> anyhow::Result<Option<PgClone>> {
        let shown = synchub_store::redact_url(db);
        let options = PgConnectOptions::from_str(db)
            .map_err(|e| anyhow!("--dry-run: cannot read the store URL {shown}: {e}"))?;
        let source = options
            .get_database()
            .unwrap_or(options.get_username())
            .to_string();
        // The clone is made from a maintenance database of the same server.
        let mut last_error = None;
        let mut admin = None;
        for maintenance in ["postgres", "template1"] {
            let target = options.clone().database(maintenance);
            match PgConnection::connect_with(&target).await {
                Ok(conn) => {
                    admin = Some((target, conn));
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let Some((admin, mut conn)) = admin else {
            return Err(anyhow!(
                "--dry-run on PostgreSQL copies the store from the server's 'postgres' database, which {shown} cannot reach: {}",
                last_error.map(|e| e.to_string()).unwrap_or_default()
            ));
        };
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(&source)
                .fetch_optional(&mut conn)
                .await?;
        if exists.is_none() {
            conn.close().await.ok();
            return Ok(None);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("synchub_dry_run_{}_{:x}", std::process::id(), nanos);
        let created = sqlx::query(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            ident(&name),
            ident(&source)
        ))
        .execute(&mut conn)
        .await;
        if let Err(e) = created {
            // PostgreSQL copies a template only while nobody else is connected to it.
            let others: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&source)
            .fetch_one(&mut conn)
            .await
            .unwrap_or(0);
            conn.close().await.ok();
            let hint = if others > 0 {
                format!("{others} other session(s) are connected to '{source}' (a running daemon or `synchub run`?): stop them, or dry-run on a copy of the store")
            } else {
                "the user needs the CREATEDB privilege".to_string()
            };
            return Err(anyhow!(
                "--dry-run on PostgreSQL runs the migration on a copy of the store (CREATE DATABASE … TEMPLATE '{source}'), which failed: {e}; {hint}"
            ));
        }
        conn.close().await.ok();
        tracing::debug!(scratch = %name, "dry run on a clone of the store");
        Ok(Some(PgClone {
            admin,
            url: with_database(db, &name)?,
            name,
            removed: false,
        }))
    }

    async fn remove(mut self) {
        self.removed = true;
        if let Err(e) = drop_database(&self.admin, &self.name).await {
            tracing::warn!(database = %self.name, error = %e, "could not drop the dry run's copy of the store; drop it by hand");
            eprintln!(
                "warning: could not drop the dry run's copy of the store, database '{}': {e}",
                self.name
            );
        }
    }
}

async fn drop_database(admin: &PgConnectOptions, name: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect_with(admin).await?;
    // WITH (FORCE) (PostgreSQL 13+) ends sessions a failed run left behind.
    let forced = sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        ident(name)
    ))
    .execute(&mut conn)
    .await;
    if forced.is_err() {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {}", ident(name)))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await.ok();
    Ok(())
}

impl Drop for PgClone {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // Best effort, on a thread of its own: Drop may run inside a runtime.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(drop_database(&admin, &name));
            }
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_clone_url_keeps_credentials_host_and_query() {
        assert_eq!(
            with_database("postgres://u:p@db:5432/crm?sslmode=require", "x")
                .ok()
                .as_deref(),
            Some("postgres://u:p@db:5432/x?sslmode=require")
        );
        assert_eq!(
            with_database("postgresql://db", "x").ok().as_deref(),
            Some("postgresql://db/x")
        );
    }
}
