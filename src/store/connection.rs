//! Opening the database: where it is ([`DatabaseUrl`]), the pool each engine gets, and its
//! schema brought up to date by the migrations of its engine.

use super::{
    POSTGRES_MIGRATIONS, Pool, Result, SQLITE_HEAP_LIMIT, SQLITE_MIGRATIONS, Store, StoreError,
    WRITE_TURN_TIMEOUT, on_pool,
};

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("database URL must start with sqlite:// or postgres://")]
pub struct DatabaseUrlError;

impl FromStr for DatabaseUrl {
    type Err = DatabaseUrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let url = url.trim();
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(url.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else {
            Err(DatabaseUrlError)
        }
    }
}

impl DatabaseUrl {
    /// Whether the database is PostgreSQL's.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// The SQLite database's file; `None` in memory or on PostgreSQL.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let Self::Sqlite(url) = self else {
            return None;
        };
        if url.contains(":memory:") || url.contains("mode=memory") {
            return None;
        }
        let options = SqliteConnectOptions::from_str(url).ok()?;
        Some(options.get_filename().to_owned())
    }
}

/// Shows the URL without its password, which may sit in a PostgreSQL URL.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(url) => f.write_str(url),
            Self::Postgres(url) => {
                // Parsed, not split: a password may hold an `@` of its own, or sit in the
                // query (`?password=`).
                let Ok(mut parsed) = url::Url::parse(url) else {
                    return f.write_str("postgres://(a URL that does not parse)");
                };
                if parsed.password().is_some() {
                    let _ = parsed.set_password(Some("***"));
                }
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(key, value)| {
                        let value = if key.eq_ignore_ascii_case("password") {
                            "***".to_owned()
                        } else {
                            value.into_owned()
                        };
                        (key.into_owned(), value)
                    })
                    .collect();
                if !pairs.is_empty() {
                    parsed.query_pairs_mut().clear().extend_pairs(pairs);
                }
                f.write_str(parsed.as_str())
            }
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// What `migrate` did to the schema (counting migrations: the versions this build knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrated {
    /// On an empty database: every migration.
    Created(u64),
    Upgraded {
        from: u64,
        to: u64,
    },
    UpToDate(u64),
}

impl fmt::Display for Migrated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created(n) => write!(f, "created the schema (version {n})"),
            Self::Upgraded { from, to } => {
                write!(f, "upgraded the schema from version {from} to {to}")
            }
            Self::UpToDate(n) => write!(f, "the schema is up to date (version {n}); nothing to do"),
        }
    }
}

impl Store {
    /// Opens the database, creating an SQLite file on first use.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self> {
        match url {
            DatabaseUrl::Sqlite(url) => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(WRITE_TURN_TIMEOUT)
                    // Erased data is overwritten on disk, not just unlinked from the b-tree.
                    .pragma("secure_delete", "on")
                    // Statement journals (the undo copy of every page a bulk statement touches)
                    // and import staging tables spill to temporary files: the bundled SQLite keeps
                    // them in memory by default, and a large import then grows without bound.
                    .pragma("temp_store", "file")
                    .pragma("cache_size", "-16384")
                    // All of this process's connections together: past it, their page caches
                    // recycle pages rather than grow, so that the caches stay within it whatever
                    // the size of the database or the campaign (the worker within 64 MB). A
                    // transaction's own changes, sorts and statement journals are not bound.
                    .pragma("soft_heap_limit", SQLITE_HEAP_LIMIT);
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    // A connection to a local file does not go stale; checking it before each
                    // use is a round trip to its thread for nothing.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?;
                Ok(Self::new(Pool::Sqlite(pool)))
            }
            DatabaseUrl::Postgres(url) => {
                let options = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Ok(Self::new(Pool::Postgres(pool)))
            }
        }
    }

    /// The migrations this build knows for this store's engine.
    pub(super) fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.pool() {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Creates or upgrades the schema, saying which it did.
    pub async fn migrate(&self) -> Result<Migrated> {
        let before = self.applied_migrations().await.unwrap_or(0);
        on_pool!(self, |pool| self.migrator().run(pool).await?);
        let known = self.migrator().iter().count() as u64;
        Ok(match before {
            0 => Migrated::Created(known),
            n if n < known => Migrated::Upgraded { from: n, to: known },
            n => Migrated::UpToDate(n),
        })
    }

    /// The latest schema version this build knows for the engine `url` names.
    pub fn latest_schema(url: &DatabaseUrl) -> i64 {
        let migrations = match url {
            DatabaseUrl::Sqlite(_) => &SQLITE_MIGRATIONS,
            DatabaseUrl::Postgres(_) => &POSTGRES_MIGRATIONS,
        };
        migrations.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// How many migrations the database has had; an error where it has none at all.
    pub(super) async fn applied_migrations(&self) -> Result<u64, sqlx::Error> {
        let applied: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await?
        });
        Ok(applied as u64)
    }

    /// Fails with [`StoreError::NotMigrated`] unless every migration this build knows is applied.
    pub async fn check_schema(&self) -> Result<()> {
        let known = self.migrator().iter().count();
        match self.applied_migrations().await {
            Ok(applied) if applied as usize >= known => Ok(()),
            _ => Err(StoreError::NotMigrated),
        }
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}
