//! Importing contacts in bulk: a list's rows are staged in temporary tables on a connection of
//! the import's own as they are read, outside any write transaction, then applied to the
//! contacts many thousands at a time, set by set, in one write transaction each.
//!
//! Applying many rows at once is what makes a bulk load fast: the indexes of the contacts (the
//! address's hash, the postcode, the date of birth) are written all over, and a page of them
//! is written to the log once per transaction however many of its rows change. Staging on disk
//! keeps the rows waiting for their turn out of memory, so that memory stays flat whatever the
//! size of the list.
//!
//! On SQLite an apply locks every other writer out, one-click unsubscribes among them: while
//! others write, an import applies what it can in about 30 ms at a time, and leaves the lock
//! free between them (see [`Sharing`]). It learns that others write from their commits, so a
//! writer who comes after two quiet seconds may wait for one apply of a lone import's size (up
//! to about a second) before the import takes turns with it. PostgreSQL locks only the rows
//! written.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use sqlx::{Connection as _, Database, PgConnection, Postgres, Sqlite, SqliteConnection};

use super::{BeginWrite, Pool, Result, Store, WriteTransaction, decode_error};
use chrono::{DateTime, Utc};

use crate::domain::{Email, NewContact, SuppressionReason, uk_date};

/// New contacts after which the planner's statistics are first refreshed; then each time the
/// count doubles, so that a bulk load is planned for the tables it is making.
const STATISTICS_REFRESH_FIRST: u64 = 20_000;

mod applying;
pub(in crate::store) mod statements;

use statements::{
    DROP_STAGING, POSTGRES_ANALYZE, POSTGRES_CLEAR_STAGING, POSTGRES_STAGING, SQLITE_CLEAR_STAGING,
    SQLITE_STAGING,
};

/// Staged rows applied in one write transaction at most. Larger writes each index page fewer
/// times per row (benches/import.sh); on SQLite it is also how long other writers wait, so
/// there an import applies this many only while nobody else is writing.
const APPLY_ROWS: usize = 50_000;

/// Staged rows applied in the first write transaction; each one after, while nobody else
/// writes, applies twice as many, up to [`APPLY_ROWS`].
const APPLY_ROWS_FIRST: usize = 1_000;

/// How long an import holds SQLite's write lock at a time while others write too: a one-click
/// unsubscribe or a send's result waits for it (issue 13, target 5: unsubscribes answered within
/// 100 ms at the 99th percentile under an import and a send).
const SHARED_APPLY_HOLD: Duration = Duration::from_millis(30);

/// How long an import leaves SQLite's write lock free after an apply while others write too. A
/// writer in another process waiting for the lock does not queue: it sleeps and tries again,
/// at intervals of 25 ms at most for its first 128 ms, so a gap this long lets in a writer that
/// began waiting during the last apply wherever its tries fall, rather than leaving it to
/// chance that one lands in a short gap. (One that has waited longer tries every 50 to 100 ms.)
const SHARED_APPLY_GAP: Duration = Duration::from_millis(30);

/// Others count as writing for this long after a commit of theirs was last seen: while they
/// wait for the lock they commit nothing, so a quiet moment is not a sign that they are gone.
const SHARED_FOR: Duration = Duration::from_secs(2);

/// The fewest rows an apply takes, however slow: each apply has a cost of its own.
const APPLY_ROWS_LEAST: usize = 100;

/// Columns of `import_rows`, for the bind-parameter budget.
const STAGED_COLUMNS: usize = 15;

/// What applying staged rows did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ContactImportOutcome {
    /// New contacts.
    pub inserted: u64,
    /// Contacts already held, matched by address, whose details or consents the rows changed.
    pub updated: u64,
    /// Contacts already held whose rows changed nothing.
    pub unchanged: u64,
    /// Grants appended to the consent ledger.
    pub consents_recorded: u64,
    /// The keys of rows refused because the person asked to be erased, in order.
    pub refused_erased: Vec<u64>,
    /// The keys of rows refused because they would hold a child under 14 without a guardian's
    /// consent, in order.
    pub refused_underage: Vec<u64>,
    /// Grants that rows asked for and a withdrawal kept out (their other details were saved),
    /// in the order of their keys.
    pub withheld: Vec<WithheldGrant>,
}

/// A grant a row asked for that the person's withdrawal keeps out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithheldGrant {
    /// The row's key.
    pub key: u64,
    pub withdrawal: WithdrawnFrom,
    pub at: DateTime<Utc>,
}

/// What a withheld grant says: `withdrew from events on 3 Nov 2026 (phone); not subscribed
/// again`.
impl std::fmt::Display for WithheldGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = uk_date(self.at);
        match &self.withdrawal {
            WithdrawnFrom::Topic { slug, source } => {
                write!(
                    f,
                    "withdrew from {slug} on {on} ({source}); not subscribed again"
                )
            }
            WithdrawnFrom::Everything(SuppressionReason::Complaint) => write!(
                f,
                "complained of an email on {on}; not subscribed again (only their own \
                 confirmed sign-up does)"
            ),
            WithdrawnFrom::Everything(_) => write!(
                f,
                "unsubscribed from everything on {on}; not subscribed again (only their own \
                 confirmed sign-up does)"
            ),
        }
    }
}

/// What the person withdrew from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WithdrawnFrom {
    /// A topic, and how they said so (the withdrawal's source: `phone`, `preference-centre`...).
    Topic { slug: String, source: String },
    /// Every email: unsubscribed, or complained of one.
    Everything(SuppressionReason),
}

impl ContactImportOutcome {
    fn add(&mut self, other: ContactImportOutcome) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.consents_recorded += other.consents_recorded;
        // Keys grow from one apply to the next: the lists stay in order.
        self.refused_erased.extend(other.refused_erased);
        self.refused_underage.extend(other.refused_underage);
        self.withheld.extend(other.withheld);
    }
}

/// Where an import stages its rows and applies them.
enum Stage {
    Sqlite(Staging<Sqlite>),
    Postgres(Staging<Postgres>),
}

enum Staging<DB: Database> {
    /// A bulk import's own connection, each apply a write transaction of its own. It is not
    /// one of the pool's: an import holds it throughout, and on SQLite waits on it for its
    /// turn to write, which a writer holding the turn may be waiting for a connection of the
    /// pool to use.
    Own(DB::Connection),
    /// A few rows saved at once (one contact): all in one write transaction on a connection of
    /// the pool's, which creates the staging tables and drops them before it commits.
    Once(WriteTransaction<DB>),
}

impl<DB: Database> Deref for Staging<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        match self {
            Staging::Own(conn) => conn,
            Staging::Once(tx) => tx,
        }
    }
}

impl<DB: Database> DerefMut for Staging<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match self {
            Staging::Own(conn) => conn,
            Staging::Once(tx) => tx,
        }
    }
}

/// A bulk import under way: [`ContactImport::add`] rows, then [`ContactImport::finish`]. A later
/// row for an address staged already is applied after the earlier one, as an update of it.
/// Dropped unfinished (an error), its connection closes, and the staged rows go with it.
pub struct ContactImport<'s> {
    store: &'s Store,
    connection: Stage,
    /// The import's default source, of contacts it creates.
    source: String,
    /// The addresses staged and not yet applied, as hashes of 64 bits: two addresses with the
    /// same would only apply the first's batch early.
    staged: HashSet<u64>,
    /// Rows applied so far, and of them contacts created, and how many it takes to refresh the
    /// planner's statistics next.
    applied: u64,
    inserted: u64,
    next_statistics_refresh: u64,
    /// Rows staged before they are applied: on SQLite, where an apply locks out every other
    /// writer, fewer while others write (see [`next_apply_rows`]).
    apply_rows: usize,
    /// On SQLite, whether others are writing too.
    sharing: Sharing,
}

/// What an import on SQLite knows of other writers, to leave them their turns.
#[derive(Default)]
struct Sharing {
    /// PRAGMA data_version, which changes when another connection commits, as this import last
    /// read it, and when it last saw it change.
    others_commits: i64,
    others_seen: Option<Instant>,
    /// When this import last committed.
    committed: Option<Instant>,
}

impl Sharing {
    /// At the start of an import: nobody seen writing yet.
    async fn start(conn: &mut SqliteConnection) -> Result<Self> {
        Ok(Self {
            others_commits: data_version(conn).await?,
            ..Self::default()
        })
    }

    /// Before an apply: whether others are writing too, and if they are, a wait until the lock
    /// has been free for [`SHARED_APPLY_GAP`] since this import's last commit.
    async fn before_apply(&mut self, conn: &mut SqliteConnection) -> Result<bool> {
        self.look(conn).await?;
        let shared = self
            .others_seen
            .is_some_and(|seen| seen.elapsed() < SHARED_FOR);
        if shared && let Some(committed) = self.committed {
            tokio::time::sleep_until((committed + SHARED_APPLY_GAP).into()).await;
        }
        Ok(shared)
    }

    /// After an apply's commit. (Others cannot commit while this import holds the lock; any
    /// commit of theirs since it last looked is seen before its next apply.)
    fn after_commit(&mut self) {
        self.committed = Some(Instant::now());
    }

    /// Reads PRAGMA data_version, noting when it has changed.
    async fn look(&mut self, conn: &mut SqliteConnection) -> Result<()> {
        let commits = data_version(conn).await?;
        if commits != self.others_commits {
            self.others_commits = commits;
            self.others_seen = Some(Instant::now());
        }
        Ok(())
    }
}

/// SQLite's PRAGMA data_version: it changes when another connection commits.
async fn data_version(conn: &mut SqliteConnection) -> Result<i64> {
    Ok(sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(conn)
        .await?)
}

impl Store {
    /// Starts a bulk import of contacts whose default source is `source`.
    pub async fn contact_import(&self, source: &str) -> Result<ContactImport<'_>> {
        let connection = match self.pool() {
            Pool::Sqlite(pool) => Stage::Sqlite(Staging::Own(
                SqliteConnection::connect_with(&pool.connect_options()).await?,
            )),
            Pool::Postgres(pool) => Stage::Postgres(Staging::Own(
                PgConnection::connect_with(&pool.connect_options()).await?,
            )),
        };
        self.start_import(connection, source).await
    }

    /// Imports a few contacts at once (each row keyed by its position in `batch`), in one write
    /// transaction.
    pub async fn import_contacts(
        &self,
        batch: &[NewContact],
        source: &str,
    ) -> Result<ContactImportOutcome> {
        let connection = match self.pool() {
            Pool::Sqlite(pool) => Stage::Sqlite(Staging::Once(pool.begin_write().await?)),
            Pool::Postgres(pool) => Stage::Postgres(Staging::Once(pool.begin_write().await?)),
        };
        let mut import = self.start_import(connection, source).await?;
        let keys: Vec<u64> = (0..batch.len() as u64).collect();
        let mut outcome = import.add(batch, &keys).await?;
        outcome.add(import.finish().await?);
        Ok(outcome)
    }

    async fn start_import<'s>(
        &'s self,
        connection: Stage,
        source: &str,
    ) -> Result<ContactImport<'s>> {
        let mut import = ContactImport {
            store: self,
            connection,
            source: source.to_owned(),
            staged: HashSet::new(),
            applied: 0,
            inserted: 0,
            next_statistics_refresh: STATISTICS_REFRESH_FIRST,
            apply_rows: match self.pool() {
                Pool::Sqlite(_) => APPLY_ROWS_FIRST,
                Pool::Postgres(_) => APPLY_ROWS,
            },
            sharing: Sharing::default(),
        };
        import
            .run(match self.pool() {
                Pool::Sqlite(_) => SQLITE_STAGING,
                Pool::Postgres(_) => POSTGRES_STAGING,
            })
            .await?;
        if let Stage::Sqlite(Staging::Own(conn)) = &mut import.connection {
            import.sharing = Sharing::start(conn).await?;
        }
        Ok(import)
    }
}

/// A withheld grant as [`WITHHELD_GRANTS`] reads it.
#[derive(sqlx::FromRow)]
pub(in crate::store) struct WithheldRow {
    idx: i64,
    slug: Option<String>,
    at: DateTime<Utc>,
    source: Option<String>,
    everything: Option<String>,
}

/// The withheld grants read, in the order of their keys.
pub(in crate::store) fn withheld_grants(rows: Vec<WithheldRow>) -> Result<Vec<WithheldGrant>> {
    let mut grants = rows
        .into_iter()
        .map(|row| {
            let withdrawal = match (row.everything, row.slug) {
                (Some(reason), _) => WithdrawnFrom::Everything(
                    reason
                        .parse()
                        .map_err(|e| decode_error("suppressions.reason", e))?,
                ),
                (None, slug) => WithdrawnFrom::Topic {
                    slug: slug.unwrap_or_default(),
                    source: row.source.unwrap_or_default(),
                },
            };
            Ok(WithheldGrant {
                key: row.idx as u64,
                withdrawal,
                at: row.at,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    grants.sort_by_key(|grant| grant.key);
    Ok(grants)
}

/// How many rows to stage for SQLite's next apply, after one of `rows` (of `target` staged for)
/// that held the write lock for `held`: while nobody else writes, twice as many (up to
/// [`APPLY_ROWS`]), so that a lone import soon applies in large sets; when somebody else wrote
/// in the meantime (`shared`), as many as take [`SHARED_APPLY_HOLD`] at the last apply's pace
/// (growing at most twofold), so that they wait no longer than that for their turn. An apply
/// made early, before a repeated address, says little of the pace: the target stays.
fn next_apply_rows(target: usize, rows: usize, held: Duration, shared: bool) -> usize {
    if rows < target {
        return target;
    }
    let grown = (target * 2).clamp(APPLY_ROWS_LEAST, APPLY_ROWS);
    if !shared {
        return grown;
    }
    let paced = rows as f64 * SHARED_APPLY_HOLD.as_secs_f64() / held.as_secs_f64().max(1e-6);
    (paced as usize).clamp(APPLY_ROWS_LEAST, grown)
}

/// Sends `text` to a `COPY ... FROM STDIN`.
async fn copy_in(conn: &mut PgConnection, statement: &str, text: String) -> Result<()> {
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(text.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// Appends a row in COPY's text format to `text`: fields between tabs, `\\N` for none, and a
/// backslash before a backslash or a tab, line feed or carriage return within a field.
fn copy_row(text: &mut String, fields: &[Option<&str>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            text.push('\t');
        }
        match field {
            None => text.push_str("\\N"),
            Some(value) => {
                for c in value.chars() {
                    match c {
                        '\\' => text.push_str("\\\\"),
                        '\t' => text.push_str("\\t"),
                        '\n' => text.push_str("\\n"),
                        '\r' => text.push_str("\\r"),
                        c => text.push(c),
                    }
                }
            }
        }
    }
    text.push('\n');
}

/// A short key for an address, to tell whether it is staged already.
fn address_key(email: &Email) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    Hash::hash(email, &mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests;
