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

use sqlx::{
    Connection as _, Database, PgConnection, Postgres, QueryBuilder, Sqlite, SqliteConnection,
};

use super::{
    BeginWrite, BulkChange, Change, MAX_BIND_PARAMETERS, Pool, Result, Store, WriteTransaction,
    decode_error, note_changes, now,
};
use chrono::{DateTime, Utc};

use crate::domain::{
    Email, Name, NewContact, Postcode, PublicId, SuppressionReason, TopicSlug,
    latest_birth_date_to_mail, uk_date, uk_day,
};

/// New contacts after which the planner's statistics are first refreshed; then each time the
/// count doubles, so that a bulk load is planned for the tables it is making.
const STATISTICS_REFRESH_FIRST: u64 = 20_000;

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

/// The temporary tables rows are staged in, one row per contact (`idx` the caller's key for the
/// row, such as its line, which grows) and one per (row, topic): appended to in order, with no
/// index to write all over (the addresses staged together are distinct: [`ContactImport::add`]
/// sees to it). The column types differ between the engines; the statements that use the
/// tables do not.
const SQLITE_STAGING: &str = "\
    CREATE TEMP TABLE import_rows (idx INTEGER PRIMARY KEY, public_id TEXT NOT NULL, \
        email TEXT NOT NULL, email_hash TEXT NOT NULL, name TEXT, postcode TEXT, \
        date_of_birth TEXT, guardian_consent BOOLEAN, consent_at TEXT NOT NULL, \
        consent_dated BOOLEAN NOT NULL, consent_source TEXT NOT NULL, guardian TEXT, \
        guardian_relationship TEXT, guardian_at TEXT, guardian_method TEXT); \
    CREATE TEMP TABLE import_topics (idx INTEGER NOT NULL, slug TEXT NOT NULL)";

const POSTGRES_STAGING: &str = "\
    CREATE TEMP TABLE import_rows (idx BIGINT PRIMARY KEY, public_id TEXT NOT NULL, \
        email TEXT NOT NULL, email_hash TEXT NOT NULL, name TEXT, postcode TEXT, \
        date_of_birth DATE, guardian_consent BOOLEAN, consent_at TIMESTAMPTZ NOT NULL, \
        consent_dated BOOLEAN NOT NULL, consent_source TEXT NOT NULL, guardian TEXT, \
        guardian_relationship TEXT, guardian_at TIMESTAMPTZ, guardian_method TEXT); \
    CREATE TEMP TABLE import_topics (idx BIGINT NOT NULL, slug TEXT NOT NULL)";

/// Empties the staging tables, inside the transaction that applied them (PostgreSQL's
/// autovacuum never visits temporary tables: deleted rows would stay).
const SQLITE_CLEAR_STAGING: &str = "DELETE FROM import_rows; DELETE FROM import_topics";
const POSTGRES_CLEAR_STAGING: &str = "TRUNCATE import_rows, import_topics";

/// Drops the staging tables of a save made in one transaction, before it commits.
const DROP_STAGING: &str = "DROP TABLE import_rows; DROP TABLE import_topics";

/// Autovacuum never analyses temporary tables; without statistics PostgreSQL's planner takes
/// them for large and scans every contact for each batch.
const POSTGRES_ANALYZE: &str = "ANALYZE import_rows, import_topics";

/// Columns of `import_rows`, for the bind-parameter budget.
const STAGED_COLUMNS: usize = 15;

const REFUSE_ERASED: &str = "DELETE FROM import_rows WHERE EXISTS \
     (SELECT 1 FROM suppressions s \
      WHERE s.email_hash = import_rows.email_hash AND s.reason = 'erased') RETURNING idx";

/// Refuses the rows that would hold a child under 14 (born after `$1`) without a guardian's
/// consent and its evidence (who gave it), taking from the contact held what a row leaves
/// blank: a row that gives no date of birth, or no guardian's consent, for a child held is
/// judged by what is held. No door stores such a child; a guardian's withdrawal is recorded by
/// erasing the child.
const REFUSE_UNDERAGE: &str = "DELETE FROM import_rows \
     WHERE COALESCE(import_rows.date_of_birth, \
                    (SELECT c.date_of_birth FROM contacts c \
                     WHERE c.email_hash = import_rows.email_hash)) > $1 \
       AND NOT (COALESCE(import_rows.guardian_consent, \
                         (SELECT c.guardian_consent FROM contacts c \
                          WHERE c.email_hash = import_rows.email_hash), FALSE) \
                AND (import_rows.guardian IS NOT NULL \
                     OR EXISTS (SELECT 1 FROM guardian_consents g \
                                JOIN contacts c ON c.id = g.contact_id \
                                WHERE c.email_hash = import_rows.email_hash))) \
     RETURNING idx";

/// The highest contact id before a batch: the contacts it inserts come after it, and those
/// it changes before.
const LAST_CONTACT_ID: &str = "SELECT COALESCE(max(id), 0) FROM contacts";

/// Inserts new contacts and updates known ones. An empty cell keeps what is held, and a row
/// that changes nothing leaves the contact untouched, so that a re-import is idempotent.
const UPSERT_CONTACTS: &str = "\
    INSERT INTO contacts (public_id, email, email_hash, name, postcode, date_of_birth, \
                          guardian_consent, source, created_at, updated_at, constituency_code) \
    SELECT r.public_id, r.email, r.email_hash, r.name, r.postcode, r.date_of_birth, \
           r.guardian_consent, $1, $2, $2, \
           (SELECT p.constituency_code FROM postcodes p WHERE p.postcode = r.postcode) \
    FROM import_rows r WHERE TRUE \
    ON CONFLICT (email_hash) DO UPDATE SET \
        email = excluded.email, \
        name = COALESCE(excluded.name, contacts.name), \
        postcode = COALESCE(excluded.postcode, contacts.postcode), \
        constituency_code = CASE WHEN excluded.postcode IS NULL THEN contacts.constituency_code \
                                 ELSE excluded.constituency_code END, \
        date_of_birth = COALESCE(excluded.date_of_birth, contacts.date_of_birth), \
        guardian_consent = COALESCE(excluded.guardian_consent, contacts.guardian_consent), \
        updated_at = excluded.updated_at \
    WHERE contacts.email IS DISTINCT FROM excluded.email \
       OR COALESCE(excluded.name, contacts.name) IS DISTINCT FROM contacts.name \
       OR COALESCE(excluded.postcode, contacts.postcode) IS DISTINCT FROM contacts.postcode \
       OR COALESCE(excluded.date_of_birth, contacts.date_of_birth) \
              IS DISTINCT FROM contacts.date_of_birth \
       OR COALESCE(excluded.guardian_consent, contacts.guardian_consent) \
              IS DISTINCT FROM contacts.guardian_consent \
    RETURNING id";

/// Appends a grant for each (contact, topic) staged, unless the address is suppressed, or the
/// consent in force is a grant already, or a withdrawal that the row's evidence does not come
/// after: an undated row (its time is the import's own) or one dated no later than the
/// withdrawal never overrides it (the ledger's latest entry is the consent in force, so nothing
/// in the ledger is newer). The rule is in the statement that grants, so that a withdrawal
/// recorded while an import runs is never undone by it.
const GRANT_IMPORTED_CONSENTS: &str = "\
    INSERT INTO consent_ledger (contact_id, topic_id, channel, granted, source, at, recorded_at) \
    SELECT c.id, t.id, 'email', TRUE, r.consent_source, r.consent_at, $1 \
    FROM import_topics it \
    JOIN import_rows r ON r.idx = it.idx \
    JOIN contacts c ON c.email_hash = r.email_hash \
    JOIN topics t ON t.slug = it.slug \
    WHERE NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = r.email_hash) \
      AND NOT EXISTS (SELECT 1 FROM consents k \
                      WHERE k.contact_id = c.id AND k.topic_id = t.id \
                        AND (k.granted OR NOT r.consent_dated OR k.at >= r.consent_at)) \
    RETURNING contact_id";

/// The grants staged that a withdrawal keeps out, as the grant above decides: a topic withdrawn
/// from, or everything unsubscribed from or complained of. Read before the grant, in its
/// transaction.
const WITHHELD_GRANTS: &str = "\
    SELECT r.idx, it.slug, l.at, l.source, NULL AS everything \
    FROM import_topics it \
    JOIN import_rows r ON r.idx = it.idx \
    JOIN contacts c ON c.email_hash = r.email_hash \
    JOIN topics t ON t.slug = it.slug \
    JOIN consents k ON k.contact_id = c.id AND k.topic_id = t.id \
    JOIN consent_ledger l ON l.id = k.ledger_id \
    WHERE NOT k.granted AND (NOT r.consent_dated OR k.at >= r.consent_at) \
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = r.email_hash) \
    UNION ALL \
    SELECT r.idx, NULL, s.updated_at, NULL, s.reason \
    FROM import_rows r \
    JOIN suppressions s ON s.email_hash = r.email_hash \
    WHERE s.reason IN ('unsubscribed', 'complaint') \
      AND EXISTS (SELECT 1 FROM import_topics it WHERE it.idx = r.idx)";

/// Keeps the evidence of a guardian's consent that rows give, the latest over what was held.
const RECORD_GUARDIANS: &str = "\
    INSERT INTO guardian_consents (contact_id, guardian, relationship, given_at, method, \
                                   recorded_at) \
    SELECT c.id, r.guardian, r.guardian_relationship, r.guardian_at, r.guardian_method, $1 \
    FROM import_rows r JOIN contacts c ON c.email_hash = r.email_hash \
    WHERE r.guardian IS NOT NULL \
    ON CONFLICT (contact_id) DO UPDATE SET guardian = excluded.guardian, \
        relationship = excluded.relationship, given_at = excluded.given_at, \
        method = excluded.method, recorded_at = excluded.recorded_at \
    WHERE guardian_consents.guardian IS DISTINCT FROM excluded.guardian \
       OR guardian_consents.relationship IS DISTINCT FROM excluded.relationship \
       OR guardian_consents.given_at IS DISTINCT FROM excluded.given_at \
       OR guardian_consents.method IS DISTINCT FROM excluded.method";

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
enum Connection {
    Sqlite(Held<Sqlite>),
    Postgres(Held<Postgres>),
}

enum Held<DB: Database> {
    /// A bulk import's own connection, each apply a write transaction of its own. It is not
    /// one of the pool's: an import holds it throughout, and on SQLite waits on it for its
    /// turn to write, which a writer holding the turn may be waiting for a connection of the
    /// pool to use.
    Own(DB::Connection),
    /// A few rows saved at once (one contact): all in one write transaction on a connection of
    /// the pool's, which creates the staging tables and drops them before it commits.
    Once(WriteTransaction<DB>),
}

impl<DB: Database> Deref for Held<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        match self {
            Held::Own(conn) => conn,
            Held::Once(tx) => tx,
        }
    }
}

impl<DB: Database> DerefMut for Held<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match self {
            Held::Own(conn) => conn,
            Held::Once(tx) => tx,
        }
    }
}

/// A bulk import under way: [`ContactImport::add`] rows, then [`ContactImport::finish`]. A later
/// row for an address staged already is applied after the earlier one, as an update of it.
/// Dropped unfinished (an error), its connection closes, and the staged rows go with it.
pub struct ContactImport<'s> {
    store: &'s Store,
    connection: Connection,
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
            Pool::Sqlite(pool) => Connection::Sqlite(Held::Own(
                SqliteConnection::connect_with(&pool.connect_options()).await?,
            )),
            Pool::Postgres(pool) => Connection::Postgres(Held::Own(
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
            Pool::Sqlite(pool) => Connection::Sqlite(Held::Once(pool.begin_write().await?)),
            Pool::Postgres(pool) => Connection::Postgres(Held::Once(pool.begin_write().await?)),
        };
        let mut import = self.start_import(connection, source).await?;
        let keys: Vec<u64> = (0..batch.len() as u64).collect();
        let mut outcome = import.add(batch, &keys).await?;
        outcome.add(import.finish().await?);
        Ok(outcome)
    }

    async fn start_import<'s>(
        &'s self,
        connection: Connection,
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
        if let Connection::Sqlite(Held::Own(conn)) = &mut import.connection {
            import.sharing = Sharing::start(conn).await?;
        }
        Ok(import)
    }
}

impl ContactImport<'_> {
    /// Stages `rows` (`keys` the caller's key for each, such as its line, which refusals
    /// name), applying what is staged whenever enough is, or before a row for an address
    /// staged already. Says what the applying did.
    pub async fn add(&mut self, rows: &[NewContact], keys: &[u64]) -> Result<ContactImportOutcome> {
        let mut outcome = ContactImportOutcome::default();
        let mut start = 0;
        while start < rows.len() {
            let room = self.apply_rows.saturating_sub(self.staged.len());
            let distinct = rows[start..]
                .iter()
                .take(room)
                .take_while(|row| self.staged.insert(address_key(&row.email)))
                .count();
            let end = start + distinct;
            self.stage(&rows[start..end], &keys[start..end]).await?;
            start = end;
            if start < rows.len() || self.staged.len() >= self.apply_rows {
                outcome.add(self.apply().await?);
            }
        }
        Ok(outcome)
    }

    /// Applies what is left staged, brings the statistics up to date after a bulk change, and
    /// closes the import's connection with its staging tables (or, for a save in one
    /// transaction, drops them and commits).
    pub async fn finish(mut self) -> Result<ContactImportOutcome> {
        let outcome = self.apply().await?;
        let own = self.own_connection();
        if !own {
            self.run(DROP_STAGING).await?;
        } else if self.applied >= STATISTICS_REFRESH_FIRST {
            self.run(self.store.bulk_change_sql(BulkChange::Done))
                .await?;
        }
        match self.connection {
            Connection::Sqlite(Held::Own(conn)) => conn.close().await?,
            Connection::Postgres(Held::Own(conn)) => conn.close().await?,
            Connection::Sqlite(Held::Once(tx)) => tx.commit().await?,
            Connection::Postgres(Held::Once(tx)) => tx.commit().await?,
        }
        if !own {
            // What the save's triggers counted is folded in once it is committed.
            self.store.fold_counts().await?;
        }
        Ok(outcome)
    }

    /// Whether the import runs on a connection of its own, not in one transaction.
    fn own_connection(&self) -> bool {
        matches!(
            self.connection,
            Connection::Sqlite(Held::Own(_)) | Connection::Postgres(Held::Own(_))
        )
    }

    /// Runs statements on the import's connection: outside any transaction, or within the
    /// save's own for a save made in one.
    async fn run(&mut self, sql: &'static str) -> Result<()> {
        match &mut self.connection {
            Connection::Sqlite(conn) => {
                sqlx::raw_sql(sql).execute(&mut **conn).await?;
            }
            Connection::Postgres(conn) => {
                sqlx::raw_sql(sql).execute(&mut **conn).await?;
            }
        }
        Ok(())
    }

    /// Writes rows into the staging tables, outside any write transaction.
    async fn stage(&mut self, rows: &[NewContact], keys: &[u64]) -> Result<()> {
        let indexed: Vec<(u64, &NewContact)> = keys.iter().copied().zip(rows).collect();
        let topics: Vec<(u64, &TopicSlug)> = indexed
            .iter()
            .flat_map(|&(key, contact)| contact.topics.iter().map(move |topic| (key, topic)))
            .collect();
        match &mut self.connection {
            Connection::Sqlite(conn) => {
                for chunk in indexed.chunks(MAX_BIND_PARAMETERS / STAGED_COLUMNS) {
                    QueryBuilder::new(
                        "INSERT INTO import_rows (idx, public_id, email, email_hash, name, \
                         postcode, date_of_birth, guardian_consent, consent_at, consent_dated, \
                         consent_source, guardian, guardian_relationship, guardian_at, \
                         guardian_method) ",
                    )
                    .push_values(chunk, |mut row, &(key, contact)| {
                        let guardian = contact.guardian.as_ref();
                        row.push_bind(key as i64)
                            .push_bind(PublicId::generate().to_string())
                            .push_bind(contact.email.as_str())
                            .push_bind(contact.email.hash().as_str().to_owned())
                            .push_bind(contact.name.as_ref().map(Name::as_str))
                            .push_bind(contact.postcode.as_ref().map(Postcode::as_str))
                            .push_bind(contact.date_of_birth)
                            .push_bind(contact.guardian_consent)
                            .push_bind(contact.consent_at)
                            .push_bind(contact.consent_dated)
                            .push_bind(contact.consent_source.as_str())
                            .push_bind(guardian.map(|g| g.guardian.as_str()))
                            .push_bind(guardian.map(|g| g.relationship.as_str()))
                            .push_bind(guardian.map(|g| g.given_at))
                            .push_bind(guardian.map(|g| g.method.as_str()));
                    })
                    .build()
                    .persistent(false)
                    .execute(&mut **conn)
                    .await?;
                }
                for chunk in topics.chunks(MAX_BIND_PARAMETERS / 2) {
                    QueryBuilder::new("INSERT INTO import_topics (idx, slug) ")
                        .push_values(chunk, |mut row, &(key, topic)| {
                            row.push_bind(key as i64).push_bind(topic.as_str());
                        })
                        .build()
                        .persistent(false)
                        .execute(&mut **conn)
                        .await?;
                }
            }
            // PostgreSQL's own bulk path: the rows as COPY's text, sent in one stream.
            Connection::Postgres(conn) => {
                let mut text = String::new();
                for &(key, contact) in &indexed {
                    let guardian = contact.guardian.as_ref();
                    copy_row(
                        &mut text,
                        &[
                            Some(&key.to_string()),
                            Some(&PublicId::generate().to_string()),
                            Some(contact.email.as_str()),
                            Some(contact.email.hash().as_str()),
                            contact.name.as_ref().map(Name::as_str),
                            contact.postcode.as_ref().map(Postcode::as_str),
                            contact.date_of_birth.map(|d| d.to_string()).as_deref(),
                            contact.guardian_consent.map(|g| g.to_string()).as_deref(),
                            Some(&contact.consent_at.to_rfc3339()),
                            Some(&contact.consent_dated.to_string()),
                            Some(&contact.consent_source),
                            guardian.map(|g| g.guardian.as_str()),
                            guardian.map(|g| g.relationship.as_str()),
                            guardian.map(|g| g.given_at.to_rfc3339()).as_deref(),
                            guardian.map(|g| g.method.as_str()),
                        ],
                    );
                }
                copy_in(
                    conn,
                    "COPY import_rows (idx, public_id, email, email_hash, name, postcode, \
                     date_of_birth, guardian_consent, consent_at, consent_dated, consent_source, \
                     guardian, guardian_relationship, guardian_at, guardian_method) FROM STDIN",
                    text,
                )
                .await?;
                let mut text = String::new();
                for &(key, topic) in &topics {
                    copy_row(&mut text, &[Some(&key.to_string()), Some(topic.as_str())]);
                }
                copy_in(conn, "COPY import_topics (idx, slug) FROM STDIN", text).await?;
            }
        }
        Ok(())
    }

    /// Applies the staged rows in one write transaction and empties the staging tables.
    async fn apply(&mut self) -> Result<ContactImportOutcome> {
        if self.staged.is_empty() {
            return Ok(ContactImportOutcome::default());
        }
        let staged = std::mem::take(&mut self.staged).len();
        let now = now();
        let source = self.source.as_str();
        macro_rules! apply_in {
            ($tx:expr, $clear:expr) => {{
                let tx = $tx;
                let refused: Vec<i64> = sqlx::query_scalar(REFUSE_ERASED)
                    .fetch_all(&mut *tx)
                    .await?;
                let underage: Vec<i64> = sqlx::query_scalar(REFUSE_UNDERAGE)
                    .bind(latest_birth_date_to_mail(uk_day(now)))
                    .fetch_all(&mut *tx)
                    .await?;
                let last_id: i64 = sqlx::query_scalar(LAST_CONTACT_ID)
                    .fetch_one(&mut *tx)
                    .await?;
                let written: Vec<i64> = sqlx::query_scalar(UPSERT_CONTACTS)
                    .bind(source)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                sqlx::query(RECORD_GUARDIANS)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let withheld: Vec<WithheldRow> =
                    sqlx::query_as(WITHHELD_GRANTS).fetch_all(&mut *tx).await?;
                let granted: Vec<i64> = sqlx::query_scalar(GRANT_IMPORTED_CONSENTS)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                // People already held may have moved, or lost their guardian's consent: a
                // worker holding a message for them checks again before sending it.
                let (updated, inserted): (Vec<i64>, Vec<i64>) =
                    written.into_iter().partition(|&id| id <= last_id);
                // Someone held before whose details, or consents, the rows changed.
                let changed: std::collections::HashSet<i64> = updated
                    .iter()
                    .copied()
                    .chain(granted.iter().copied().filter(|&id| id <= last_id))
                    .collect();
                let updated: Vec<Change> = updated.into_iter().map(Change::Contact).collect();
                note_changes!(&mut *tx, &updated);
                sqlx::raw_sql($clear).execute(&mut *tx).await?;
                let keys = |rows: Vec<i64>| {
                    let mut keys: Vec<u64> = rows.into_iter().map(|key| key as u64).collect();
                    keys.sort_unstable();
                    keys
                };
                let (refused, underage) = (keys(refused), keys(underage));
                let held = staged - refused.len() - underage.len() - inserted.len();
                ContactImportOutcome {
                    inserted: inserted.len() as u64,
                    updated: changed.len() as u64,
                    unchanged: held.saturating_sub(changed.len()) as u64,
                    consents_recorded: granted.len() as u64,
                    refused_erased: refused,
                    refused_underage: underage,
                    withheld: withheld_grants(withheld)?,
                }
            }};
        }
        let outcome = match (&mut self.connection, self.store.pool()) {
            (Connection::Sqlite(Held::Own(conn)), Pool::Sqlite(pool)) => {
                let shared = self.sharing.before_apply(conn).await?;
                let turn = pool.write_turn().await?;
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                let held = Instant::now();
                let outcome = apply_in!(&mut *tx, SQLITE_CLEAR_STAGING);
                tx.commit().await?;
                drop(turn);
                self.apply_rows = next_apply_rows(self.apply_rows, staged, held.elapsed(), shared);
                self.sharing.after_commit();
                outcome
            }
            (Connection::Sqlite(Held::Once(tx)), _) => apply_in!(&mut **tx, SQLITE_CLEAR_STAGING),
            (Connection::Postgres(held), _) => {
                sqlx::query(POSTGRES_ANALYZE).execute(&mut **held).await?;
                match held {
                    Held::Own(conn) => {
                        let mut tx = conn.begin().await?;
                        let outcome = apply_in!(&mut *tx, POSTGRES_CLEAR_STAGING);
                        tx.commit().await?;
                        outcome
                    }
                    Held::Once(tx) => apply_in!(&mut **tx, POSTGRES_CLEAR_STAGING),
                }
            }
            _ => unreachable!("an import's connection is of its store's engine"),
        };
        self.applied += staged as u64;
        if !self.own_connection() {
            // Counts are folded, and statistics refreshed, once the transaction commits.
            return Ok(outcome);
        }
        self.store.fold_counts().await?;
        self.inserted += outcome.inserted;
        if self.inserted >= self.next_statistics_refresh {
            self.run(self.store.bulk_change_sql(BulkChange::UnderWay))
                .await?;
            self.next_statistics_refresh *= 2;
        }
        Ok(outcome)
    }
}

/// A withheld grant as [`WITHHELD_GRANTS`] reads it.
#[derive(sqlx::FromRow)]
struct WithheldRow {
    idx: i64,
    slug: Option<String>,
    at: DateTime<Utc>,
    source: Option<String>,
    everything: Option<String>,
}

/// The withheld grants read, in the order of their keys.
fn withheld_grants(rows: Vec<WithheldRow>) -> Result<Vec<WithheldGrant>> {
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
mod tests {
    use super::*;

    #[test]
    fn an_apply_grows_while_alone_and_holds_the_lock_briefly_while_others_write() {
        let ms = Duration::from_millis;
        assert_eq!(next_apply_rows(1_000, 1_000, ms(900), false), 2_000);
        assert_eq!(next_apply_rows(40_000, 40_000, ms(900), false), APPLY_ROWS);
        // 50,000 rows took a second: 30 ms is 1,500 of them.
        assert_eq!(next_apply_rows(50_000, 50_000, ms(1_000), true), 1_500);
        // Fast applies grow, but no more than twofold at a time.
        assert_eq!(next_apply_rows(1_000, 1_000, ms(1), true), 2_000);
        assert_eq!(next_apply_rows(1_000, 1_000, ms(10), true), 2_000);
        assert_eq!(next_apply_rows(1_000, 1_000, ms(60), true), 500);
        assert_eq!(next_apply_rows(200, 200, ms(5_000), true), APPLY_ROWS_LEAST);
        // An apply made early, for a repeated address, leaves the target as it was.
        assert_eq!(next_apply_rows(50_000, 1, ms(1), false), 50_000);
        assert_eq!(next_apply_rows(1_500, 3, ms(1), true), 1_500);
    }

    /// An import on SQLite notices another connection's commit (its own pool's, here) and
    /// leaves the lock free for a while after its own last commit; its own commits do not count.
    #[tokio::test]
    async fn an_import_notices_another_writer_and_takes_turns() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/canvass.db", dir.path().display());
        let store = Store::connect(&url.parse().unwrap()).await.unwrap();
        store.migrate().await.unwrap();
        let Pool::Sqlite(pool) = store.pool() else {
            unreachable!("the store was opened on SQLite")
        };
        let mut import = store.contact_import("test").await.unwrap();
        let Connection::Sqlite(Held::Own(conn)) = &mut import.connection else {
            unreachable!("an SQLite store imports on a connection of its own")
        };
        let sharing = &mut import.sharing;
        assert!(!sharing.before_apply(conn).await.unwrap());
        sqlx::raw_sql("BEGIN IMMEDIATE; COMMIT")
            .execute(&mut *conn)
            .await
            .unwrap();
        let committed = Instant::now();
        sharing.after_commit();
        assert!(!sharing.before_apply(conn).await.unwrap());

        sqlx::query("INSERT INTO topics (slug, name) VALUES ('other', 'Other')")
            .execute(pool)
            .await
            .unwrap();
        assert!(sharing.before_apply(conn).await.unwrap());
        assert!(committed.elapsed() >= SHARED_APPLY_GAP);
        drop(import);
        store.close().await;
    }

    #[test]
    fn copy_text_escapes_what_would_end_a_field_or_a_row() {
        let mut text = String::new();
        copy_row(
            &mut text,
            &[Some("a\\b\tc"), None, Some("d\ne\rf"), Some("")],
        );
        assert_eq!(text, "a\\\\b\\tc\t\\N\td\\ne\\rf\t\n");
    }
}
