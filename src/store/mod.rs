//! The store: every SQL statement canvass runs, on SQLite or PostgreSQL.
//!
//! [`Store`] is one interface over two backends. The SQL is written once, in the dialect both
//! engines share (`$1` parameters, `ON CONFLICT`, `RETURNING`, `IS DISTINCT FROM`), and the
//! [`on_pool!`] macro runs the same code against whichever pool the store holds, so that the
//! compiler checks it for both. Where the engines really differ (DDL types, bulk loading) the
//! difference is spelled out beside the shared statement.

mod audit;
mod backups;
mod budget;
mod campaigns;
mod changes;
mod consent;
mod contact_import;
mod contact_lists;
mod contacts;
mod counts;
mod deliveries;
mod directory;
mod hooks;
mod inbox;
mod journal;
mod preferences;
mod proof;
mod registers;
mod relays;
mod retention;
mod sign_in_attempts;
mod signups;
mod staff;
mod topics;

use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};
use tokio::sync::OwnedMutexGuard;

use crate::domain::EmailHash;

pub use audit::{AUDIT_PAGE, AuditQuery};
pub use backups::Replayed;
pub use budget::Draw;
pub use campaigns::{
    ApproveOutcome, Campaign, DraftOutcome, Imprint, QueueOutcome, Recipient, RetryOutcome,
    StateChange, StateChangeOutcome, SubmitOutcome,
};
pub(crate) use changes::note_changes;
pub use changes::{Change, Changes, Recheck};
pub use consent::ConsentChange;
pub use contact_import::{ContactImport, ContactImportOutcome, WithdrawnFrom, WithheldGrant};
pub use contact_lists::{
    CONTACTS_PAGE, ConsentFilter, ContactLine, ContactPage, ContactQuery, ContactSearch, Matches,
    RecentSuppression, SEARCH_COUNTED, Unsavable,
};
pub use contacts::{
    ErasureOutcome, FeedbackAbout, RestrictionOutcome, SaveOutcome, UnsuppressOutcome, Withdrawal,
    WithdrawalOutcome,
};
pub use counts::Mailable;
pub use deliveries::{Backlog, Claim, ClaimedDelivery, DeliveryResult};
pub use directory::{ConstituencySummary, DirectoryEntry, DirectoryImport, PostcodeLookup};
pub use hooks::{Effect, Heard, ProviderEvent};
pub use journal::{Journal, JournalEntry, JournalError, JournalEvent, JournalRead, Standing};
pub use preferences::{
    MAX_UNSUBSCRIBE_BATCH, PreferenceUpdate, Preferences, Request, TopicChoice, UnsubscribeOutcome,
    UnsubscribeRequest, UpdateOutcome,
};
pub use proof::{CampaignProof, MessageProof, RecipientProof};
pub use registers::{Complaint, NewComplaint, NewRequest, RightsRequest};
pub use retention::{RetentionApplied, RetentionDue};
pub use signups::{ConfirmOutcome, NewSignup, SIGNUP_SOURCE};
pub use staff::{
    AlertRecipient, DisableOutcome, NewStaffUser, PasswordLink, RevokeOutcome, SignInRecord,
    StaffEditOutcome, StaffSession, StaffTokenSummary, StaffUser,
};

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
                        let value = match key.eq_ignore_ascii_case("password") {
                            true => "***".to_owned(),
                            false => value.into_owned(),
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("no topic '{0}'; see `canvass topics list`")]
    UnknownTopic(String),
    #[error(
        "the postcode directory gives no place for {0}, so no distance can be measured from it \
         (import the ONS Postcode Directory with its lat and long columns)"
    )]
    VenueUnplaced(String),
    #[error("the database schema is older than this canvass; run `canvass migrate`")]
    NotMigrated,
    #[error("the store has shut down")]
    Closed,
    #[error("the database failed; nothing was changed")]
    Unavailable,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}; nothing was changed")]
    Journal(#[from] JournalError),
    #[error(
        "there is no suppression journal at {}: `canvass migrate` starts one",
        .0.display()
    )]
    NoJournal(PathBuf),
    #[error(
        "the suppression journal {} is missing, though this database has written to it since \
         {since}: copy it back from where it is kept. If it is truly lost, `canvass migrate \
         --new-journal` starts a new one, and erasures and unsubscribes recorded only in the \
         lost one will not be re-applied after a restore",
        path.display()
    )]
    JournalLost { path: PathBuf, since: DateTime<Utc> },
}

impl StoreError {
    /// Whether the database could not be used for a while (restarting, failing over, too many
    /// connections, SQLite busy), rather than refusing what was asked: trying again later may
    /// well succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable => true,
            Self::Database(error) => database_unavailable(error),
            _ => false,
        }
    }
}

/// Whether sqlx's error is the database's passing trouble.
fn database_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(error) => error.code().is_some_and(|code| {
            // PostgreSQL: a connection exception (class 08), the server shutting down or
            // starting (57P01-57P03), too many connections (53300). SQLite: busy or locked
            // (5, 6, and their extended codes).
            code.starts_with("08")
                || matches!(
                    &*code,
                    "57P01" | "57P02" | "57P03" | "53300" | "5" | "6" | "261" | "262" | "517"
                )
        }),
        _ => false,
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The storage interface, on one of its two backends, with the suppression journal that every
/// erasure and suppression is also written to, when there is one.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    journal: Option<Arc<Journal>>,
}

/// The connections to one of the two backends.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same sqlx code on whichever pool `$store` holds: the body is compiled once per
/// backend, so a statement that one engine would not take fails to build rather than at run time.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store.pool() {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Appends to the audit log inside the caller's transaction.
macro_rules! insert_audit {
    ($executor:expr, actor: $actor:expr, action: $action:expr, contact: $contact_id:expr, detail: $detail:expr, ip: $ip:expr $(,)?) => {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, contact_id, detail, ip) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($crate::store::now())
        .bind($actor.to_string())
        .bind($action)
        .bind($contact_id)
        .bind($detail)
        .bind($ip)
        .execute($executor)
        .await
    };
}
pub(crate) use insert_audit;

/// Whether the email consent in force for `$contact` and `$topic` (two SQL expressions) is a
/// grant: the `consents` row that the ledger's trigger keeps (its latest entry); NULL when the
/// ledger holds nothing. The `current_consent` view says the same for whole tables; this is the
/// form for one pair inside a larger statement.
macro_rules! latest_consent {
    ($contact:literal, $topic:literal) => {
        concat!(
            "(SELECT k_.granted FROM consents k_ WHERE k_.contact_id = ",
            $contact,
            " AND k_.topic_id = ",
            $topic,
            ")"
        )
    };
}
pub(crate) use latest_consent;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    fn new(pool: Pool) -> Self {
        Self {
            pool,
            journal: None,
        }
    }

    /// The connections, for code that differs between the engines.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// This store, writing every erasure and suppression to `journal` as well.
    pub fn with_journal(self, journal: Journal) -> Self {
        Self {
            journal: Some(Arc::new(journal)),
            ..self
        }
    }

    /// This store with the journal at `path`, checked against what the database remembers of
    /// it: a journal missing where this database has written to one (on this host) was lost
    /// or moved, and only `start` [`JournalStart::Anew`] starts another there.
    pub async fn with_journal_at(self, path: &Path, start: JournalStart) -> Result<Self> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let host = host_name();
        let shown = path.display().to_string();
        let started: Option<DateTime<Utc>> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT started_at FROM journals WHERE host = $1 AND path = $2")
                .bind(&host)
                .bind(&shown)
                .fetch_optional(pool)
                .await?
        });
        let create = match (start, started) {
            (JournalStart::Anew, _) => true,
            (JournalStart::IfNew, None) => true,
            (JournalStart::IfNew | JournalStart::Never, Some(_)) | (JournalStart::Never, None) => {
                false
            }
        };
        let journal = match Journal::open(&path, create) {
            Err(error) if error.is_missing() => {
                return Err(match started {
                    Some(since) => StoreError::JournalLost { path, since },
                    None => StoreError::NoJournal(path),
                });
            }
            opened => opened?,
        };
        let now = now();
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO journals (host, path, started_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (host, path) DO NOTHING",
            )
            .bind(&host)
            .bind(&shown)
            .bind(now)
            .execute(pool)
            .await?;
            if let (JournalStart::Anew, Some(_)) = (start, started) {
                sqlx::query("UPDATE journals SET started_at = $3 WHERE host = $1 AND path = $2")
                    .bind(&host)
                    .bind(&shown)
                    .bind(now)
                    .execute(pool)
                    .await?;
                insert_audit!(pool, actor: crate::domain::Actor::Operator,
                    action: "journal.started_anew", contact: None::<i64>,
                    detail: Some(format!("{shown} on {host}")), ip: None::<String>)?;
            }
        });
        Ok(self.with_journal(journal))
    }

    /// Whether the journal's last write failed: the worker sends nothing meanwhile. It is
    /// tried again here.
    pub async fn journal_is_broken(&self) -> bool {
        let Some(journal) = self.journal.clone() else {
            return false;
        };
        if !journal.is_broken() {
            return false;
        }
        tokio::task::spawn_blocking(move || !journal.probe())
            .await
            .unwrap_or(true)
    }

    /// The journal this store writes to, if any.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_deref()
    }

    /// This store writing to no journal: for putting back what the journal holds.
    fn without_journal(&self) -> Self {
        Self::new(self.pool.clone())
    }

    /// Writes entries to the journal and syncs them to disk: called before the transaction
    /// that makes the change commits, for erasures and suppressions, and after it for lifts.
    async fn journal_entries(&self, entries: Vec<JournalEntry>) -> Result<()> {
        let Some(journal) = self.journal.clone() else {
            return Ok(());
        };
        if entries.is_empty() {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || journal.append(&entries))
            .await
            .map_err(|_| StoreError::Closed)??;
        Ok(())
    }

    /// Writes entries to the journal, or holds them for its next write when it cannot be
    /// written: for a change that must go ahead regardless (a bounce recorded with the
    /// messages the server took, which must not be sent again).
    async fn journal_or_hold(&self, entries: Vec<JournalEntry>) {
        if let Some(journal) = self.journal.clone()
            && !entries.is_empty()
        {
            let _ = tokio::task::spawn_blocking(move || journal.append_or_hold(&entries)).await;
        }
    }

    /// Writes to the journal that a suppression was lifted, once the lift has committed. A lift
    /// is not worth failing for: a journal without it keeps the address suppressed after a
    /// restore, the safe way to be wrong, and says so in the log.
    async fn journal_lift(&self, hash: &EmailHash) {
        let lift = JournalEntry {
            at: now(),
            event: JournalEvent::Lifted,
            hash: hash.clone(),
        };
        if let Err(error) = self.journal_entries(vec![lift]).await {
            tracing::warn!("a lifted suppression was not written to the journal: {error}");
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

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
    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
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
    async fn applied_migrations(&self) -> Result<u64, sqlx::Error> {
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

    /// A contact's postcode (`c.postcode`) as SQL that compares in byte order, the order of a
    /// prefix's range: PostgreSQL compares text by the database's collation unless told
    /// otherwise, and `contacts_postcode_bytes` holds byte order.
    pub(crate) fn postcode_bytes(&self) -> &'static str {
        match self.pool() {
            Pool::Sqlite(_) => "c.postcode",
            Pool::Postgres(_) => "(c.postcode COLLATE \"C\")",
        }
    }

    /// After a bulk change: the statistics, and on PostgreSQL a vacuum, which marks the pages
    /// just written as visible to all so that counting the contacts reads an index alone rather
    /// than every row (autovacuum would, minutes later).
    pub async fn settle_after_bulk_change(&self) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::raw_sql(self.bulk_change_sql(BulkChange::Done))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// What brings the planner's statistics up to date during (`Under way`) or after (`Done`) a
    /// bulk change. PostgreSQL's autovacuum analyses a growing table only now and then; in
    /// between, the planner takes a table of a million contacts for the few thousand it last
    /// counted and scans it whole for every batch. SQLite's `optimize` analyses, within a
    /// bounded effort (`0x10`), the tables whose size has changed much since they were last
    /// analysed (`0x02`): checking all of them (`0x10000`), not only those that the running
    /// connection's own queries used, which on a connection fresh from the pool are none.
    pub(crate) fn bulk_change_sql(&self, stage: BulkChange) -> &'static str {
        match (self.pool(), stage) {
            (Pool::Sqlite(_), _) => "PRAGMA optimize = 0x10012",
            (Pool::Postgres(_), BulkChange::UnderWay) => {
                "ANALYZE contacts, consent_ledger, suppressions, postcodes, mailable_postcode_counts"
            }
            // The counts' changes too: folded as they come, they leave a table of dead rows.
            (Pool::Postgres(_), BulkChange::Done) => {
                "VACUUM (ANALYZE) contacts, consent_ledger, consents, suppressions, postcodes, \
                 mailable_count_changes, mailable_postcode_counts"
            }
        }
    }

    /// Makes sure that what was just deleted is nowhere in the database's files: `secure_delete`
    /// zeroes it in the pages, and a checkpoint copies those pages into the database file and
    /// empties the WAL, which still held the pages as they were. A reader in the middle of a
    /// transaction can hold the checkpoint back for a moment: it is tried again. PostgreSQL
    /// keeps its files to itself; its vacuum reclaims deleted rows.
    pub async fn scrub_files(&self) -> Result<()> {
        let Pool::Sqlite(pool) = self.pool() else {
            return Ok(());
        };
        // Each try waits a tenth of a second at most for readers, holding writers back that
        // long; between tries they go ahead.
        let mut connection = pool.acquire().await?;
        sqlx::query("PRAGMA busy_timeout = 100")
            .execute(&mut *connection)
            .await?;
        let mut emptied = false;
        for _ in 0..20 {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut *connection)
                .await?;
            if busy == 0 {
                emptied = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA busy_timeout = {}",
            WRITE_TURN_TIMEOUT.as_millis()
        )))
        .execute(&mut *connection)
        .await?;
        if emptied {
            return Ok(());
        }
        tracing::warn!(
            "the WAL could not be emptied after an erasure (a long reader?); it will be at the \
             next checkpoint"
        );
        Ok(())
    }

    /// How many transactions that write are worth running at once: SQLite has one writer per
    /// database; PostgreSQL commits side by side.
    pub fn concurrent_writers(&self) -> usize {
        match self.pool() {
            Pool::Sqlite(_) => 1,
            Pool::Postgres(_) => 4,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self.pool() {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }
}

/// Whether a journal may be started where none is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalStart {
    /// Only where this database has written to none (on this host): `migrate`, `demo`.
    IfNew,
    /// Never: it must be there.
    Never,
    /// Even where one was lost (`migrate --new-journal`), saying so in the audit log.
    Anew,
}

/// This machine's name, which tells the journals of several hosts on one database apart.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
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

/// Starting a transaction that will write. SQLite must take its write lock at `BEGIN`: a
/// transaction that reads first and upgrades later can fail at once with "database is locked"
/// instead of waiting its turn.
///
/// SQLite has one writer per database file. Left to the engine, connections that find the lock
/// taken sleep in its busy handler (1, 2, 5, 10... ms) and retry, so that under concurrent
/// requests most of the time goes in sleeping. Writers in this process queue on an async lock
/// per file instead and each starts the moment the previous one commits; other processes (an
/// import running beside the server) still meet SQLite's busy timeout.
trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<WriteTransaction<Self::Db>, sqlx::Error>;
    /// The turn to write without a transaction, for one statement that commits by itself;
    /// held until dropped.
    async fn write_turn(&self) -> Result<Option<OwnedMutexGuard<()>>, sqlx::Error>;
}

/// A transaction that writes. It dereferences to the connection, as sqlx's `Transaction` does.
pub struct WriteTransaction<DB: sqlx::Database> {
    tx: Transaction<'static, DB>,
    /// SQLite: this process's turn to write, held until commit or rollback.
    _turn: Option<OwnedMutexGuard<()>>,
}

impl<DB: sqlx::Database> WriteTransaction<DB> {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Undoes the transaction now, before SQLite's turn to write is handed on.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl<DB: sqlx::Database> Deref for WriteTransaction<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> DerefMut for WriteTransaction<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// What SQLite may allocate in one process, in bytes, before its page caches recycle pages
/// rather than take more: two connections' caches in full.
const SQLITE_HEAP_LIMIT: &str = "33554432";

/// The write turn for each SQLite file this process has open.
static SQLITE_WRITERS: LazyLock<std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

/// How long a writer waits for its turn: in this process on the write lock, and as SQLite's
/// busy timeout for writers in other processes.
const WRITE_TURN_TIMEOUT: Duration = Duration::from_secs(10);

impl BeginWrite for SqlitePool {
    type Db = Sqlite;
    async fn begin_write(&self) -> Result<WriteTransaction<Sqlite>, sqlx::Error> {
        let turn = self.write_turn().await?;
        Ok(WriteTransaction {
            tx: self.begin_with("BEGIN IMMEDIATE").await?,
            _turn: turn,
        })
    }

    async fn write_turn(&self) -> Result<Option<OwnedMutexGuard<()>>, sqlx::Error> {
        let file = self.connect_options().get_filename().to_owned();
        let turn = SQLITE_WRITERS
            .lock()
            .expect("the writers map is never left half-updated")
            .entry(file)
            .or_default()
            .clone();
        let turn = tokio::time::timeout(WRITE_TURN_TIMEOUT, turn.lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        Ok(Some(turn))
    }
}

impl BeginWrite for PgPool {
    type Db = Postgres;
    async fn begin_write(&self) -> Result<WriteTransaction<Postgres>, sqlx::Error> {
        Ok(WriteTransaction {
            tx: self.begin().await?,
            _turn: None,
        })
    }

    async fn write_turn(&self) -> Result<Option<OwnedMutexGuard<()>>, sqlx::Error> {
        Ok(None)
    }
}

/// Where a bulk change is, for [`Store::bulk_change_sql`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum BulkChange {
    UnderWay,
    Done,
}

/// An address's hash as the database holds it (a `RETURNING email_hash`).
fn stored_hash(hash: &str) -> Result<EmailHash> {
    hash.parse().map_err(|e| decode_error("email_hash", e))
}

/// A stored value that does not parse as its domain type: the database holds something canvass
/// never wrote.
fn decode_error(what: &str, error: impl fmt::Display) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(format!("{what}: {error}").into()))
}

/// The name (or, without one, the code) of contact `c`'s constituency, through the directory.
const CONSTITUENCY_OF_CONTACT: &str = "\
    (SELECT COALESCE(n.name, p.constituency_code) FROM postcodes p \
     LEFT JOIN constituencies n ON n.code = p.constituency_code \
     WHERE p.postcode = c.postcode)";

/// The time as the store records it: UTC, to the microsecond, the precision both engines keep,
/// so that what is written reads back equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The most bind parameters one statement may carry on either engine (SQLite allows 32,766,
/// PostgreSQL 65,535), with room to spare.
const MAX_BIND_PARAMETERS: usize = 30_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_chooses_the_backend() {
        assert!(matches!(
            "sqlite://canvass.db".parse(),
            Ok(DatabaseUrl::Sqlite(_))
        ));
        assert!(matches!(
            "sqlite::memory:".parse(),
            Ok(DatabaseUrl::Sqlite(_))
        ));
        assert!(matches!(
            "postgres://u@localhost/db".parse(),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert_eq!("mysql://x".parse::<DatabaseUrl>(), Err(DatabaseUrlError));
    }

    #[test]
    fn database_url_display_hides_the_password() {
        let url: DatabaseUrl = "postgres://canvass:hunter2@db.example.org:5432/canvass"
            .parse()
            .unwrap();
        let shown = url.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown, "postgres://canvass:***@db.example.org:5432/canvass");
        for url in [
            "postgres://canvass:hun@ter2@db.example.org/canvass",
            "postgres://canvass@db.example.org/canvass?password=hunter2&sslmode=require",
        ] {
            let shown = url.parse::<DatabaseUrl>().unwrap().to_string();
            assert!(
                !shown.contains("ter2") && !shown.contains("hunter2"),
                "{shown}"
            );
            assert!(shown.contains("db.example.org/canvass"), "{shown}");
        }
        let no_password: DatabaseUrl = "postgres://postgres@127.0.0.1/test".parse().unwrap();
        assert_eq!(
            no_password.to_string(),
            "postgres://postgres@127.0.0.1/test"
        );
    }
}
