//! Fresh databases per test: a SQLite file in a temp dir, or a new
//! PostgreSQL database (dropped when the guard is dropped), so tests run in
//! parallel without sharing state.

use sqlx::Connection;
use synchub_store::Store;

/// The PostgreSQL server tests use (override with `SYNCHUB_TEST_POSTGRES`).
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var("SYNCHUB_TEST_POSTGRES").unwrap_or_else(|_| POSTGRES_ADMIN_URL.to_string())
}

/// A database that exists for one test.
pub struct TestDb {
    /// URL to pass to `Store::connect` or `--database-url`.
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new SQLite database file.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("synchub.db").display());
        TestDb {
            url,
            pg_name: None,
            _dir: Some(dir),
        }
    }

    /// A new PostgreSQL database. Panics with a clear message when the
    /// server is not reachable: these tests never skip silently.
    pub async fn postgres() -> TestDb {
        let admin = admin_url();
        let name = format!("synchub_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::postgres::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for this test and {admin} is not reachable: {e}; run deploy/test.sh, which starts it")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or(admin);
        TestDb {
            url: format!("{base}/{name}"),
            pg_name: Some(name),
            _dir: None,
        }
    }

    /// A database of the named backend (`sqlite` or `postgres`).
    pub async fn of(backend: &str) -> TestDb {
        match backend {
            "postgres" => TestDb::postgres().await,
            _ => TestDb::sqlite(),
        }
    }

    /// Opens (and migrates) the store.
    pub async fn store(&self) -> Store {
        Store::connect(&self.url).await.expect("open test store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Best effort, on a thread of its own: Drop may run inside a runtime.
            let admin = admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async move {
                        if let Ok(mut c) = sqlx::postgres::PgConnection::connect(&admin).await {
                            let _ = sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .execute(&mut c)
                            .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}
