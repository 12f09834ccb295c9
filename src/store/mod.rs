//! The store: every SQL statement canvass runs, on SQLite or PostgreSQL.
//!
//! [`Store`] is one interface over two backends. The SQL is written once, in the dialect both
//! engines share (`$1` parameters, `ON CONFLICT`, `RETURNING`, `IS DISTINCT FROM`), and the
//! [`on_pool!`] macro runs the same code against whichever pool the store holds, so that the
//! compiler checks it for both. The statements that several methods run inside their own
//! transactions are [`InTransaction`]'s methods, written once for either engine's connection.
//! Where the engines really differ (DDL types, bulk loading) the difference is spelled out
//! beside the shared statement.

mod audit;
mod backups;
mod budget;
mod campaigns;
mod changes;
mod connection;
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
mod journaling;
mod preferences;
mod proof;
mod registers;
mod relays;
mod retention;
mod sign_in_attempts;
mod signups;
mod staff;
mod statements;
mod topics;

use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Postgres, Sqlite, Transaction};
use tokio::sync::OwnedMutexGuard;

use crate::domain::EmailHash;
pub(crate) use statements::{Audit, InTransaction};

pub use audit::{AUDIT_PAGE, AuditQuery};
pub use backups::Replayed;
pub use budget::Draw;
pub use campaigns::{
    ApproveOutcome, Campaign, DraftOutcome, Imprint, QueueOutcome, Recipient, RetryOutcome,
    StateChange, StateChangeOutcome, SubmitOutcome,
};
pub use changes::{Change, Changes, Recheck};
pub use connection::{DatabaseUrl, DatabaseUrlError, Migrated};
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
pub use journaling::JournalStart;
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

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
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
