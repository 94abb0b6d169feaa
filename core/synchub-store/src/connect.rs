//! Opening the pool and running the migrations of the right backend.

use std::str::FromStr;
use std::sync::Once;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

use crate::{Store, StoreError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The URL as it may be printed: the userinfo password and password-like
/// query parameters replaced by `***` (the one routine of
/// [`synchub_http::secret::redact_url`]).
pub fn redact_url(url: &str) -> String {
    synchub_http::secret::redact_url(url)
}

/// Refuses, at once and naming the file, a SQLite file the store could not
/// write: SQLite would open it read-only and every connection of the pool
/// would fail its set-up until the acquire timeout.
fn check_sqlite_path(path: &str, shown: &str) -> Result<(), StoreError> {
    use std::io::ErrorKind;
    let db_path = path.split('?').next().unwrap_or(path);
    if db_path.is_empty() || db_path == ":memory:" || path.contains("mode=memory") {
        return Ok(());
    }
    let fail = |message: String| StoreError::Connect {
        url: shown.to_string(),
        message,
    };
    let file = std::path::Path::new(db_path);
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_dir() => Err(fail(format!(
            "{db_path} is a folder, not a database file (name a file, e.g. sqlite://{db_path}/synchub.db)"
        ))),
        Ok(meta) => {
            let read_only = meta.permissions().readonly()
                || matches!(
                    std::fs::OpenOptions::new().write(true).open(file),
                    Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem)
                );
            if read_only {
                return Err(fail(format!(
                    "database file {db_path} is read-only (make it writable, e.g. chmod u+w {db_path}, or use a writable copy)"
                )));
            }
            // WAL mode keeps `-wal` and `-shm` files beside the database.
            let folder = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => std::path::Path::new("."),
            };
            let wal = std::path::PathBuf::from(format!("{db_path}-wal"));
            if !wal.exists()
                && std::fs::metadata(folder).is_ok_and(|m| m.permissions().readonly())
            {
                return Err(fail(format!(
                    "the folder {} of database file {db_path} is read-only; SQLite must create {db_path}-wal beside it (make the folder writable)",
                    folder.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let parent = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => std::path::Path::new("."),
            };
            match std::fs::metadata(parent) {
                Err(_) => Err(fail(format!(
                    "cannot create database file {db_path}: the folder {} does not exist (create it first)",
                    parent.display()
                ))),
                Ok(m) if m.permissions().readonly() => Err(fail(format!(
                    "cannot create database file {db_path}: the folder {} is read-only",
                    parent.display()
                ))),
                Ok(_) => Ok(()),
            }
        }
        Err(e) => Err(fail(format!("cannot read database file {db_path}: {e}"))),
    }
}

pub(crate) async fn open(url: &str) -> Result<(AnyPool, Backend), StoreError> {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);

    synchub_http::secret::register_url(url);
    let shown = redact_url(url);
    let (backend, url) = if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err(StoreError::BadUrl { url: shown });
        }
        check_sqlite_path(path, &shown)?;
        let full = if path.contains('?') {
            format!("sqlite://{path}")
        } else {
            format!("sqlite://{path}?mode=rwc")
        };
        (Backend::Sqlite, full)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (Backend::Postgres, url.to_string())
    } else {
        return Err(StoreError::BadUrl { url: shown });
    };
    let options = AnyConnectOptions::from_str(&url).map_err(|e| StoreError::Connect {
        url: shown.clone(),
        message: synchub_http::secret::redact(&e.to_string()).into_owned(),
    })?;
    let pool_options = match backend {
        Backend::Sqlite => AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            }),
        Backend::Postgres => AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // The engine's statements are prepared once per connection
                    // and run with IN-lists of a page's keys. A generic plan
                    // cached while the tables were empty (the start of a bulk
                    // import, before any ANALYZE) stays a sequential scan as
                    // they grow to millions of rows; plan every execution.
                    conn.execute("SET plan_cache_mode = force_custom_plan")
                        .await?;
                    Ok(())
                })
            }),
    };
    if backend == Backend::Postgres {
        probe_tcp(&url, &shown).await?;
    }
    let pool = pool_options
        .acquire_timeout(std::time::Duration::from_secs(15))
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Connect {
            url: shown.clone(),
            message: describe_connect_error(&e, backend == Backend::Sqlite),
        })?;
    Ok((pool, backend))
}

/// Fails at once, naming host and port, when nothing listens there (the
/// pool would otherwise retry until its acquire timeout).
async fn probe_tcp(url: &str, shown: &str) -> Result<(), StoreError> {
    let Ok(opts) = sqlx::postgres::PgConnectOptions::from_str(url) else {
        return Ok(()); // the pool reports the URL problem
    };
    let host = opts.get_host().to_string();
    if host.starts_with('/') {
        return Ok(()); // a Unix socket
    }
    let port = opts.get_port();
    let attempt = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await;
    let message = match attempt {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => format!(
            "cannot reach {host}:{port}: {e} (is the server running and the host and port right?)"
        ),
        Err(_) => format!("no answer from {host}:{port} within 10s (is it reachable?)"),
    };
    Err(StoreError::Connect {
        url: shown.to_string(),
        message,
    })
}

fn describe_connect_error(e: &sqlx::Error, sqlite: bool) -> String {
    let text = match e {
        sqlx::Error::Io(io) => format!("{io} (is the server running and the host and port right?)"),
        sqlx::Error::PoolTimedOut if sqlite => {
            "timed out after 15s waiting for the database file (is another synchub process holding it locked?)".to_string()
        }
        sqlx::Error::PoolTimedOut => {
            "timed out after 15s (is the server running and reachable?)".to_string()
        }
        other => other.to_string(),
    };
    synchub_http::secret::redact(&text).into_owned()
}

pub(crate) async fn migrate(store: &Store) -> Result<(), StoreError> {
    let migrator = match store.backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    };
    let failed = |e: sqlx::migrate::MigrateError| StoreError::Migrate {
        url: store.display_url(),
        message: synchub_http::secret::redact(&e.to_string()).into_owned(),
    };
    let mut result = migrator.run(&store.pool).await;
    // sqlx's migrator takes an advisory lock on PostgreSQL but none on
    // SQLite: two processes starting at once on a fresh file both see an
    // empty migration table and the second fails on `table … already
    // exists` (or on the first one's write lock). Each migration commits
    // with its row in the migration table, so running again applies only
    // what the other process has not finished; retry while that is the cause.
    if store.backend == Backend::Sqlite {
        let mut waited = std::time::Duration::ZERO;
        while waited < MIGRATION_RACE_LIMIT {
            match &result {
                Err(e) if is_concurrent_migration(e) => {
                    tracing::debug!(error = %e, "another process is migrating this store; waiting for it");
                }
                _ => break,
            }
            tokio::time::sleep(MIGRATION_RACE_STEP).await;
            waited += MIGRATION_RACE_STEP;
            result = migrator.run(&store.pool).await;
        }
    }
    result.map_err(failed)
}

const MIGRATION_RACE_STEP: std::time::Duration = std::time::Duration::from_millis(100);
const MIGRATION_RACE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The error another migrator of the same SQLite file causes.
fn is_concurrent_migration(e: &sqlx::migrate::MigrateError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("already exists")
        || text.contains("duplicate column")
        || text.contains("database is locked")
        || text.contains("busy")
        || text.contains("unique constraint failed: _sqlx_migrations")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_printed_without_credentials() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db/crm?password=hunter3&sslmode=disable"),
            "postgres://app:***@db/crm?password=***&sslmode=disable"
        );
    }

    #[test]
    fn a_read_only_database_file_is_named() {
        let dir = std::env::temp_dir().join(format!("synchub-ro-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ro.db");
        std::fs::write(&file, b"").unwrap();
        let mut perms = std::fs::metadata(&file).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&file, perms).unwrap();
        let path = file.to_str().unwrap();
        let err = check_sqlite_path(path, "sqlite://ro.db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is read-only") && err.contains(path), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_read_only_folder_is_named_before_sqlite_needs_its_wal_file() {
        let dir = std::env::temp_dir().join(format!("synchub-rodir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s.db");
        std::fs::write(&file, b"").unwrap();
        let mut perms = std::fs::metadata(&dir).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&dir, perms.clone()).unwrap();
        let path = file.to_str().unwrap();
        let err = check_sqlite_path(path, "sqlite://s.db")
            .unwrap_err()
            .to_string();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&dir, perms).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            err.contains("is read-only") && err.contains("-wal"),
            "{err}"
        );
    }
}
