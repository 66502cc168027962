//! Runs the store tests against every backend: SQLite in a temporary folder, and Postgres in a
//! fresh database per test on the server `FACTORY_TEST_POSTGRES_URL` names (any database on it;
//! the user needs CREATEDB). `.ci/run` starts a throwaway cluster and sets it.
//!
//! Without that variable the Postgres variants skip with a note, except under CI (`CI` set, or
//! `FACTORY_REQUIRE_POSTGRES_TESTS` set, as `.ci/run` does), where they fail: CI must not pass by
//! skipping them.
#![allow(dead_code)]

use connector_factory::store::{PostgresStore, SqliteStore, Store};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

pub const POSTGRES_URL_ENV: &str = "FACTORY_TEST_POSTGRES_URL";
pub const REQUIRE_ENV: &str = "FACTORY_REQUIRE_POSTGRES_TESTS";

/// Declares `sqlite::NAME` and `postgres::NAME` tests for each `async fn NAME(db: &TestDb)` in
/// the calling file (which has `#[macro_use] mod store_backends;`).
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::store_backends::TestDb::sqlite();
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::store_backends::TestDb::postgres(stringify!($name)).await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

enum Where {
    Sqlite { dir: tempfile::TempDir },
    Postgres { admin: String, database: String },
}

enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// One test's database. Every store opened on it is one "replica" (its own connection pool);
/// [`TestDb::close_all`] closes them all, as a restart would.
pub struct TestDb {
    at: Where,
    pools: Mutex<Vec<Pool>>,
}

/// The Postgres server for tests, or `None` (after a note) when the Postgres variants may skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
            assert!(
                !(ci || required),
                "{POSTGRES_URL_ENV} is not set, so the Postgres store tests cannot run, and under CI they must \
                 not be skipped. .ci/run starts a local PostgreSQL and sets it; elsewhere point it at a server \
                 whose user may create databases, e.g. postgres://postgres@127.0.0.1:5432/postgres"
            );
            eprintln!("note: {POSTGRES_URL_ENV} is not set: skipping this Postgres store test");
            None
        }
    }
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        TestDb { at: Where::Sqlite { dir: tempfile::tempdir().unwrap() }, pools: Mutex::new(Vec::new()) }
    }

    /// A fresh database on the test server, or `None` when the test should skip.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let admin = postgres_url()?;
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let mut database = format!(
            "factory_test_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst),
            test.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
        );
        database.truncate(63);
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL_ENV}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{database}\"")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("creating the test database {database}: {e}"));
        conn.close().await.unwrap();
        Some(TestDb { at: Where::Postgres { admin, database }, pools: Mutex::new(Vec::new()) })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.at, Where::Postgres { .. })
    }

    /// The SQLite file, for SQLite.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match &self.at {
            Where::Sqlite { dir } => Some(dir.path().join("nested/folder/factory.db")),
            Where::Postgres { .. } => None,
        }
    }

    /// A store on this database with its own connection pool (a replica).
    pub async fn open(&self) -> Arc<dyn Store> {
        self.open_with(None).await
    }

    pub async fn open_with_max_attempts(&self, max_attempts: u32) -> Arc<dyn Store> {
        self.open_with(Some(max_attempts)).await
    }

    async fn open_with(&self, max_attempts: Option<u32>) -> Arc<dyn Store> {
        match &self.at {
            Where::Sqlite { .. } => {
                let url = format!("sqlite://{}", self.sqlite_file().unwrap().display());
                let mut store = SqliteStore::connect(&url).await.unwrap();
                if let Some(n) = max_attempts {
                    store = store.with_max_attempts(n);
                }
                self.pools.lock().unwrap().push(Pool::Sqlite(store.pool().clone()));
                Arc::new(store)
            }
            Where::Postgres { .. } => {
                let mut store = self.open_postgres().await;
                if let Some(n) = max_attempts {
                    store = store.with_max_attempts(n);
                }
                Arc::new(store)
            }
        }
    }

    /// The URL of this test's Postgres database (with the server's password, if any).
    pub fn postgres_database_url(&self) -> String {
        let Where::Postgres { admin, database } = &self.at else { panic!("not a Postgres test database") };
        let mut url = url::Url::parse(admin).unwrap();
        url.set_path(&format!("/{database}"));
        url.to_string()
    }

    /// A Postgres replica as its own type. Panics for SQLite.
    pub async fn open_postgres(&self) -> PostgresStore {
        let Where::Postgres { admin, database } = &self.at else { panic!("not a Postgres test database") };
        let options = PgConnectOptions::from_str(admin).unwrap().database(database);
        let store = PostgresStore::connect_with(options).await.unwrap();
        self.pools.lock().unwrap().push(Pool::Postgres(store.pool().clone()));
        store
    }

    /// Closes every store opened so far, as stopping the process would.
    pub async fn close_all(&self) {
        let pools: Vec<Pool> = std::mem::take(&mut *self.pools.lock().unwrap());
        for pool in pools {
            match pool {
                Pool::Sqlite(p) => p.close().await,
                Pool::Postgres(p) => p.close().await,
            }
        }
    }

    /// Closes the stores and drops the Postgres database. A failed test leaves its database
    /// behind (on CI's throwaway cluster that costs nothing).
    pub async fn cleanup(self) {
        self.close_all().await;
        if let Where::Postgres { admin, database } = &self.at {
            let mut conn = PgConnection::connect(admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)")))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}
