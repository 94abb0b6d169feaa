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

/// The URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((auth, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match auth.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

pub(crate) async fn open(url: &str) -> Result<(AnyPool, Backend), StoreError> {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);

    let shown = redact_url(url);
    let (backend, url) = if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err(StoreError::BadUrl { url: shown });
        }
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
        message: e.to_string(),
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
            message: describe_connect_error(&e),
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

fn describe_connect_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => format!("{io} (is the server running and the host and port right?)"),
        sqlx::Error::PoolTimedOut => {
            "timed out after 15s (is the server running and reachable?)".to_string()
        }
        other => other.to_string(),
    }
}

pub(crate) async fn migrate(store: &Store) -> Result<(), StoreError> {
    let migrator = match store.backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    };
    migrator
        .run(&store.pool)
        .await
        .map_err(|e| StoreError::Migrate {
            url: store.display_url(),
            message: e.to_string(),
        })
}
