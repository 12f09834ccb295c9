//! The store's side of the suppression journal: started beside a database, written with each
//! erasure and suppression, and probed again while it is broken.

use super::{Journal, JournalEntry, JournalEvent, Result, Store, StoreError, now, on_pool};

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::{AuditAction, EmailHash};
use crate::store::{Audit, InTransaction};

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
pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Store {
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
                pool.acquire()
                    .await?
                    .audit(Audit::of(
                        &crate::domain::Actor::Operator,
                        AuditAction::JournalStartedAnew,
                        format!("{shown} on {host}"),
                    ))
                    .await?;
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
    pub(super) fn without_journal(&self) -> Self {
        Self::new(self.pool.clone())
    }

    /// Writes entries to the journal and syncs them to disk: called before the transaction
    /// that makes the change commits, for erasures and suppressions, and after it for lifts.
    pub(super) async fn journal_entries(&self, entries: Vec<JournalEntry>) -> Result<()> {
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
    pub(super) async fn journal_or_hold(&self, entries: Vec<JournalEntry>) {
        if let Some(journal) = self.journal.clone()
            && !entries.is_empty()
        {
            let _ = tokio::task::spawn_blocking(move || journal.append_or_hold(&entries)).await;
        }
    }

    /// Writes to the journal that a suppression was lifted, once the lift has committed. A lift
    /// is not worth failing for: a journal without it keeps the address suppressed after a
    /// restore, the safe way to be wrong, and says so in the log.
    pub(super) async fn journal_lift(&self, hash: &EmailHash) {
        let lift = JournalEntry {
            at: now(),
            event: JournalEvent::Lifted,
            hash: hash.clone(),
        };
        if let Err(error) = self.journal_entries(vec![lift]).await {
            tracing::warn!("a lifted suppression was not written to the journal: {error}");
        }
    }
}
