//! After a restore: what the suppression journal holds that the database lacks, put back; and
//! the consistent copy of an SQLite database that a backup takes while the service runs.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::contacts::Erasure;
use super::{
    BeginWrite, Change, Journal, JournalRead, Pool, Result, Standing, Store, StoreError, now,
    on_pool,
};
use crate::domain::{Actor, AuditAction, EmailHash, SuppressionReason};
use crate::store::{Audit, InTransaction};

/// What replaying the journal put back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Addresses erased again: what the database held on them from before their erasure, or
    /// their `erased` suppression entry.
    pub erasures: u64,
    /// Addresses suppressed again (unsubscribed, bounced, complaint).
    pub suppressions: u64,
    /// Journal lines that read as no entry (a line torn by a crash mid-write).
    pub unreadable: usize,
}

impl Replayed {
    pub fn is_empty(&self) -> bool {
        self.erasures == 0 && self.suppressions == 0
    }
}

/// Hashes per statement.
const BATCH: usize = 500;

impl Store {
    /// Puts back what the journal holds that the database lacks: each address erased since
    /// erased again (what was held on it from before the erasure deleted, as `contact erase`
    /// leaves it), each suppression missing added. Run at every start of the service, the worker
    /// and `migrate`, and by `restore`, before any mail can go.
    pub async fn replay_journal(&self) -> Result<Replayed> {
        let Some(journal) = self.journal() else {
            return Ok(Replayed::default());
        };
        let path = journal.path().to_owned();
        let read = tokio::task::spawn_blocking(move || Journal::read(&path))
            .await
            .map_err(|_| StoreError::Closed)??;
        if read.unreadable > 0 {
            tracing::warn!(
                "{} line(s) of the suppression journal read as no entry and were left out",
                read.unreadable
            );
        }
        self.replay(&read).await
    }

    /// Puts back what `read` holds that the database lacks.
    async fn replay(&self, read: &JournalRead) -> Result<Replayed> {
        let standings = read.standings();
        // What is put back was recorded already: it is not written to the journal again.
        let quiet = self.without_journal();
        let mut erased: HashSet<EmailHash> = HashSet::new();
        let now = now();
        // Each erasure's time, never later than now nor than a sign-up since: a clock that ran
        // ahead when the erasure was written must not take a record made after it.
        let to_erase: Vec<(&EmailHash, &Standing, DateTime<Utc>)> = standings
            .iter()
            .filter_map(|(hash, standing)| {
                let erased_at = standing.erased_at?.min(now);
                let erased_at = standing.lifted_at.map_or(erased_at, |at| erased_at.min(at));
                Some((hash, standing, erased_at))
            })
            .collect();
        for batch in to_erase.chunks(BATCH) {
            let held = self
                .held_since(batch.iter().map(|(hash, ..)| *hash))
                .await?;
            for &(hash, standing, erased_at) in batch {
                let from_before = held
                    .get(hash)
                    .is_some_and(|created| created.iter().any(|at| *at <= erased_at));
                if from_before {
                    let erasure = Erasure::Replayed {
                        held_before: erased_at,
                        suppressed: standing.suppressed.is_some(),
                    };
                    quiet.erase(hash, &Actor::Operator, erasure).await?;
                    erased.insert(hash.clone());
                }
            }
        }
        let mut suppressed: HashSet<EmailHash> = HashSet::new();
        let to_suppress: Vec<(&EmailHash, SuppressionReason, DateTime<Utc>)> = standings
            .iter()
            .filter_map(|(hash, standing)| standing.suppressed.map(|(r, at)| (hash, r, at)))
            .collect();
        for batch in to_suppress.chunks(BATCH) {
            for (hash, reason) in self.suppress_missing(batch).await? {
                match reason {
                    SuppressionReason::Erased => erased.insert(hash),
                    _ => suppressed.insert(hash),
                };
            }
        }
        let replayed = Replayed {
            erasures: erased.len() as u64,
            suppressions: suppressed.len() as u64,
            unreadable: read.unreadable,
        };
        if !replayed.is_empty() {
            let detail = format!(
                "re-applied {} erasure(s) and {} suppression(s) from the suppression journal",
                replayed.erasures, replayed.suppressions
            );
            on_pool!(self, |pool| {
                pool.acquire()
                    .await?
                    .audit(Audit::of(
                        &Actor::Operator,
                        AuditAction::JournalReplayed,
                        detail,
                    ))
                    .await?;
            });
        }
        Ok(replayed)
    }

    /// When each contact and sign-up at these addresses was first held.
    async fn held_since<'a>(
        &self,
        hashes: impl Iterator<Item = &'a EmailHash> + Clone,
    ) -> Result<HashMap<EmailHash, Vec<DateTime<Utc>>>> {
        let rows: Vec<(String, DateTime<Utc>)> = on_pool!(self, |pool| {
            let mut query = QueryBuilder::new(
                "SELECT email_hash, created_at FROM contacts WHERE email_hash IN (",
            );
            let mut list = query.separated(", ");
            for hash in hashes.clone() {
                list.push_bind(hash.as_str());
            }
            query.push(
                ") UNION ALL SELECT email_hash, created_at FROM signups WHERE email_hash IN (",
            );
            let mut list = query.separated(", ");
            for hash in hashes {
                list.push_bind(hash.as_str());
            }
            query.push(")");
            query
                .build_query_as()
                .persistent(false)
                .fetch_all(pool)
                .await?
        });
        let mut held: HashMap<EmailHash, Vec<DateTime<Utc>>> = HashMap::new();
        for (hash, created) in rows {
            if let Ok(hash) = hash.parse() {
                held.entry(hash).or_default().push(created);
            }
        }
        Ok(held)
    }

    /// Adds the suppressions the list lacks, and makes `erased` any that the journal says was
    /// erased; the addresses changed, with their reason. Contacts held at them are re-checked by
    /// any worker running, as for any suppression.
    async fn suppress_missing(
        &self,
        batch: &[(&EmailHash, SuppressionReason, DateTime<Utc>)],
    ) -> Result<Vec<(EmailHash, SuppressionReason)>> {
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut insert = QueryBuilder::new(
                "INSERT INTO suppressions (email_hash, reason, created_at, updated_at) ",
            );
            insert.push_values(batch, |mut row, (hash, reason, at)| {
                row.push_bind(hash.as_str())
                    .push_bind(reason.as_str())
                    .push_bind(*at)
                    .push_bind(now());
            });
            insert.push(
                " ON CONFLICT (email_hash) DO UPDATE SET reason = excluded.reason, \
                     updated_at = excluded.updated_at \
                 WHERE excluded.reason = 'erased' AND suppressions.reason <> 'erased' \
                 RETURNING email_hash, reason",
            );
            let rows: Vec<(String, String)> = insert
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            if !rows.is_empty() {
                let mut ids = QueryBuilder::new("SELECT id FROM contacts WHERE email_hash IN (");
                let mut list = ids.separated(", ");
                for (hash, _) in &rows {
                    list.push_bind(hash);
                }
                ids.push(")");
                let ids: Vec<i64> = ids
                    .build_query_scalar()
                    .persistent(false)
                    .fetch_all(&mut *tx)
                    .await?;
                let changed: Vec<Change> = ids.into_iter().map(Change::Contact).collect();
                tx.note_changes(&changed).await?;
            }
            tx.commit().await?;
            rows
        });
        Ok(rows
            .into_iter()
            .filter_map(|(hash, reason)| Some((hash.parse().ok()?, reason.parse().ok()?)))
            .collect())
    }

    /// Writes a consistent copy of an SQLite database to `dest` while others read and write it:
    /// `VACUUM INTO`, which copies the live rows alone, so that nothing erased lingers in free
    /// pages of the copy. `false` for PostgreSQL, which `pg_dump` copies.
    pub async fn vacuum_into(&self, dest: &Path) -> Result<bool> {
        let Pool::Sqlite(pool) = self.pool() else {
            return Ok(false);
        };
        sqlx::query("VACUUM INTO $1")
            .bind(dest.to_string_lossy().into_owned())
            .execute(pool)
            .await?;
        Ok(true)
    }
}
