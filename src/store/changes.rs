//! The change feed: what a sending worker must hear about within a second. Every transaction
//! that can stop a queued delivery (a withdrawal, an erasure, a restriction, a suppression, a
//! contact's move, an import, a campaign paused or cancelled) notes it here just before it
//! commits; the worker polls [`Store::changes_since`] a few times a second and checks again any
//! message it holds whose recipient or campaign has changed since it was claimed.

use chrono::{DateTime, Utc};

use super::campaigns::ELIGIBLE;
use super::{BeginWrite, Result, Store, now, on_pool};
use crate::domain::latest_birth_date_to_mail;

/// One change, as noted and as the worker reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Something about this contact: consent, suppression, restriction, postcode, erasure.
    Contact(i64),
    /// A campaign's state (paused, cancelled).
    Campaign(i64),
    /// Anyone may have changed: the postcode directory was replaced.
    Anyone,
}

impl Change {
    pub(crate) fn columns(self) -> (Option<i64>, Option<i64>) {
        match self {
            Self::Contact(id) => (Some(id), None),
            Self::Campaign(id) => (None, Some(id)),
            Self::Anyone => (None, None),
        }
    }
}

/// What the feed held past a point.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The feed's position now: every change up to it is in `changes` (or was before `since`).
    pub position: u64,
    pub changes: Vec<(u64, Change)>,
}

/// Where one claimed delivery stands now, checked again just before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// Still to send: the campaign is being sent and the recipient still qualifies.
    Send,
    /// The recipient no longer qualifies: mark it skipped.
    Skip,
    /// The campaign is paused or cancelled, or the row is no longer this worker's: give it back.
    Hold,
}

impl Store {
    /// The changes committed after position `since`, and the feed's position now.
    pub async fn changes_since(&self, since: u64) -> Result<Changes> {
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        // One statement, so that the clock and the rows come from one snapshot: every row up
        // to the clock's number has committed.
        // The clock, then each change's number, contact and campaign.
        type Row = (i64, Option<i64>, Option<i64>, Option<i64>);
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT k.seq, c.seq, c.contact_id, c.campaign_id FROM change_clock k \
                 LEFT JOIN changes c ON c.seq > $1 AND c.seq <= k.seq \
                 ORDER BY c.seq",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
        });
        let position = rows.first().map_or(0, |row| row.0 as u64);
        let changes = rows
            .into_iter()
            .filter_map(|(_, seq, contact, campaign)| {
                let change = match (contact, campaign) {
                    (Some(id), _) => Change::Contact(id),
                    (None, Some(id)) => Change::Campaign(id),
                    (None, None) => Change::Anyone,
                };
                Some((seq? as u64, change))
            })
            .collect();
        Ok(Changes { position, changes })
    }

    /// Forgets changes noted before `before`: a worker only needs those since its claims.
    pub async fn prune_changes(&self, before: DateTime<Utc>) -> Result<u64> {
        let pruned = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let pruned = sqlx::query("DELETE FROM changes WHERE at < $1")
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            pruned
        });
        Ok(pruned)
    }

    /// Checks again, now, whether delivery `id` (leased by `owner`) is still to be sent.
    pub async fn recheck_delivery(&self, id: i64, owner: &str) -> Result<Recheck> {
        let bound = latest_birth_date_to_mail(now().date_naive());
        let found: Option<(String, String, bool)> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT d.state, k.state, \
                        CASE WHEN c.id IS NULL THEN FALSE ELSE ({ELIGIBLE}) END \
                 FROM deliveries d JOIN campaigns k ON k.id = d.campaign_id \
                 LEFT JOIN contacts c ON c.id = d.contact_id \
                 WHERE d.id = $1 AND d.lease_owner = $3"
            )))
            .bind(id)
            .bind(bound)
            .bind(owner)
            .fetch_optional(pool)
            .await?
        });
        Ok(match found {
            Some((delivery, campaign, _)) if delivery != "queued" || campaign != "queued" => {
                Recheck::Hold
            }
            Some((_, _, true)) => Recheck::Send,
            Some((_, _, false)) => Recheck::Skip,
            None => Recheck::Hold,
        })
    }
}
