//! The delivery ledger as the worker uses it: claim a batch under a lease, re-check each
//! recipient, record what the server said.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use super::campaigns::Recipient;
use super::campaigns::{ELIGIBLE, SQUARED_MILES_OF_CONTACT};
use super::{
    BeginWrite, CONSTITUENCY_OF_CONTACT, Change, JournalEntry, Pool, Result, Store, decode_error,
    now, on_pool, stored_hash,
};
use crate::domain::{Actor, AuditAction, Email, SuppressionReason, latest_birth_date_to_mail};
use crate::store::{Audit, InTransaction};

/// One delivery a worker holds the lease on, with what its message shows.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub campaign_id: i64,
    pub contact_id: i64,
    /// Earlier attempts that failed for a reason worth retrying.
    pub attempts: u32,
    pub email: Email,
    pub recipient: Recipient,
}

/// What became of one claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The server accepted the message; `answer` is what it said.
    Sent {
        message_id: String,
        answer: String,
        at: DateTime<Utc>,
    },
    /// Try again at `at`: the server deferred it or could not be reached.
    Retry { reason: String, at: DateTime<Utc> },
    /// Given up. `bounced`: the server said the address does not take mail, so it is
    /// suppressed for good.
    Failed { reason: String, bounced: bool },
    /// Not attempted (the worker is stopping, the campaign was paused, or the server could not
    /// take it for a reason of its own): back to the queue, no attempt counted.
    Released,
    /// Not sent: the recipient stopped qualifying after the claim.
    Skipped,
    /// Not attempted: its recipient's domain is slowing us down (or at its cap) until `at`.
    /// Back to the queue until then, no attempt counted.
    Postponed { at: DateTime<Utc> },
}

/// Deliveries still to send, over campaigns being sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Due now, whether or not a worker holds them.
    pub due: u64,
    /// Waiting to be retried later.
    pub waiting: u64,
    /// When the first of those is due.
    pub next_retry: Option<DateTime<Utc>>,
    /// Since when the oldest delivery due has waited: its campaign's queueing, or its retry's
    /// time.
    pub oldest_due_since: Option<DateTime<Utc>>,
    /// Campaigns paused, by staff or by the worker.
    pub paused_campaigns: u64,
}

/// What a claim did.
#[derive(Debug, Default)]
pub struct Claim {
    /// Recipients still eligible, to send to now.
    pub deliveries: Vec<ClaimedDelivery>,
    /// Claimed rows whose recipient no longer qualifies, marked `skipped`.
    pub skipped: u64,
}

/// Only queued rows are claimed, and every result recorded clears the lease, so the statements
/// below find a worker's rows by `lease_owner` alone, through the small index of leased rows.
/// (Cancelling a campaign skips its queued rows but leaves a worker's lease in place, so that a
/// message that went out before the worker heard of it is still recorded as sent.)
///
/// Picks the rows to claim: queued, of a campaign being sent, due, and not under another
/// worker's lease. Nor under the claimer's own, even run out: such a row is still in its hands
/// (being sent, or its result waiting for a database that stalled), and claimed again it would
/// go twice; a worker gives back what it holds when it stops. PostgreSQL locks them and passes over rows another worker is claiming
/// (`SKIP LOCKED`); SQLite has one writer at a time, so its claim is one `UPDATE` anyway.
///
/// The campaigns come first (`CROSS JOIN` fixes that order in SQLite, whose planner would
/// otherwise walk the whole ledger, sent rows and all) and each one's queued rows are found by
/// `deliveries_by_state`; no ORDER BY, which would sort every queued row for each claim.
const CLAIMABLE: &str = "\
    SELECT d.id FROM campaigns k CROSS JOIN deliveries d \
    WHERE d.campaign_id = k.id AND k.state = 'queued' AND d.state = 'queued' \
      AND (d.lease_until IS NULL OR d.lease_until < $2) \
      AND (d.lease_owner IS NULL OR d.lease_owner <> $1) \
      AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= $2) \
    LIMIT $3";

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    campaign_id: i64,
    contact_id: i64,
    attempts: i32,
    email: String,
    public_id: String,
    name: Option<String>,
    postcode: Option<String>,
    constituency: Option<String>,
    squared_miles: Option<f64>,
}

impl Store {
    /// Claims up to `limit` due deliveries for `owner` until `lease` from now. Recipients who no
    /// longer qualify under the contract's rule (consent withdrawn, suppressed, restricted,
    /// erased, too young today, moved out of the audience) are marked skipped, not sent.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Claim> {
        let now = now();
        let until = now + lease;
        let bound = latest_birth_date_to_mail(now.date_naive());
        let lock = match self.pool() {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => " FOR UPDATE OF d SKIP LOCKED",
        };
        let claim = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let claimed = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE deliveries SET lease_owner = $1, lease_until = $4 \
                 WHERE id IN ({CLAIMABLE}{lock})"
            )))
            .bind(owner)
            .bind(now)
            .bind(i64::from(limit))
            .bind(until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                return Ok(Claim::default());
            }
            // The batch just claimed is the owner's rows under this very lease.
            let skipped = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE deliveries SET state = 'skipped', outcome = 'no longer eligible', \
                     lease_owner = NULL, lease_until = NULL, updated_at = $1 \
                 WHERE lease_owner = $3 AND lease_until = $4 \
                   AND NOT EXISTS (SELECT 1 FROM campaigns k, contacts c \
                                   WHERE k.id = deliveries.campaign_id \
                                     AND c.id = deliveries.contact_id AND {ELIGIBLE})"
            )))
            .bind(now)
            .bind(bound)
            .bind(owner)
            .bind(until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let rows: Vec<ClaimedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT d.id, d.campaign_id, d.contact_id, d.attempts, c.email, c.public_id, c.name, c.postcode, \
                        {CONSTITUENCY_OF_CONTACT} AS constituency, \
                        {SQUARED_MILES_OF_CONTACT} AS squared_miles \
                 FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
                 JOIN campaigns k ON k.id = d.campaign_id \
                 WHERE d.lease_owner = $1 AND d.lease_until = $2 \
                 ORDER BY d.id"
            )))
            .bind(owner)
            .bind(until)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            (rows, skipped)
        });
        let (rows, skipped) = claim;
        let deliveries = rows
            .into_iter()
            .map(|row| {
                Ok(ClaimedDelivery {
                    id: row.id,
                    campaign_id: row.campaign_id,
                    contact_id: row.contact_id,
                    attempts: u32::try_from(row.attempts).unwrap_or(0),
                    email: Email::parse(&row.email).map_err(|e| decode_error("email", e))?,
                    recipient: Recipient {
                        public_id: row
                            .public_id
                            .parse()
                            .map_err(|e: uuid::Error| decode_error("public id", e))?,
                        name: row.name,
                        postcode: row.postcode,
                        constituency: row.constituency,
                        miles_from_venue: Recipient::miles(row.squared_miles),
                    },
                })
            })
            .collect::<Result<_>>()?;
        Ok(Claim {
            deliveries,
            skipped,
        })
    }

    /// Records what became of claimed deliveries, all in one transaction: the worker's senders
    /// hand their results over together, so one commit covers many messages. A result counts
    /// only while `owner` still holds the lease (a worker that stalled past it has lost the row
    /// to another); the answer says, per result, whether it was recorded.
    pub async fn record_results(
        &self,
        owner: &str,
        results: &[(i64, DeliveryResult)],
    ) -> Result<Vec<bool>> {
        let now = now();
        let sent: Vec<_> = results
            .iter()
            .filter_map(|(delivery, result)| match result {
                DeliveryResult::Sent {
                    message_id,
                    answer,
                    at,
                } => Some((*delivery, message_id.as_str(), answer.as_str(), *at)),
                _ => None,
            })
            .collect();
        // Only messages sent, the common case: one statement, which commits by itself.
        if sent.len() == results.len() {
            let ids: Vec<i64> = on_pool!(self, |pool| {
                let _turn = pool.write_turn().await?;
                pool.acquire().await?.record_sent(owner, &sent).await?
            });
            let ids: HashSet<i64> = ids.into_iter().collect();
            return Ok(sent.iter().map(|(id, ..)| ids.contains(id)).collect());
        }
        let recorded = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let recorded_sent: HashSet<i64> = if sent.is_empty() {
                HashSet::new()
            } else {
                tx.record_sent(owner, &sent).await?.into_iter().collect()
            };
            let mut recorded = Vec::with_capacity(results.len());
            let mut bounced = Vec::new();
            let mut journal = Vec::new();
            for (delivery, result) in results {
                let query = match result {
                    DeliveryResult::Sent { .. } => {
                        recorded.push(recorded_sent.contains(delivery));
                        continue;
                    }
                    DeliveryResult::Retry { reason, at } => sqlx::query(
                        "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $3, \
                             outcome = $4, updated_at = $5, lease_owner = NULL, lease_until = NULL \
                         WHERE id = $1 AND lease_owner = $2",
                    )
                    .bind(*delivery)
                    .bind(owner)
                    .bind(*at)
                    .bind(reason.as_str())
                    .bind(now),
                    DeliveryResult::Failed { reason, bounced } => sqlx::query(
                        "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, \
                             outcome = $3, updated_at = $4, bounced = $5, \
                             lease_owner = NULL, lease_until = NULL \
                         WHERE id = $1 AND lease_owner = $2",
                    )
                    .bind(*delivery)
                    .bind(owner)
                    .bind(reason.as_str())
                    .bind(now)
                    .bind(*bounced),
                    DeliveryResult::Skipped => sqlx::query(
                        "UPDATE deliveries SET state = 'skipped', outcome = 'no longer eligible', \
                             updated_at = $3, lease_owner = NULL, lease_until = NULL \
                         WHERE id = $1 AND lease_owner = $2",
                    )
                    .bind(*delivery)
                    .bind(owner)
                    .bind(now),
                    DeliveryResult::Released => sqlx::query(
                        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL \
                         WHERE id = $1 AND lease_owner = $2",
                    )
                    .bind(*delivery)
                    .bind(owner),
                    DeliveryResult::Postponed { at } => sqlx::query(
                        "UPDATE deliveries SET next_attempt_at = $3, \
                             lease_owner = NULL, lease_until = NULL \
                         WHERE id = $1 AND lease_owner = $2",
                    )
                    .bind(*delivery)
                    .bind(owner)
                    .bind(*at),
                };
                let applied = query.execute(&mut *tx).await?.rows_affected() > 0;
                if applied
                    && let DeliveryResult::Failed {
                        reason,
                        bounced: true,
                    } = result
                {
                    // The address is suppressed by its hash, like an unsubscribe; an earlier
                    // reason (unsubscribed, erased) stands. The audit keeps only the status
                    // code: the server's words may quote the address.
                    let contact: Option<i64> =
                        sqlx::query_scalar("SELECT contact_id FROM deliveries WHERE id = $1")
                            .bind(*delivery)
                            .fetch_one(&mut *tx)
                            .await?;
                    let suppressed: Option<String> = sqlx::query_scalar(
                        "INSERT INTO suppressions (email_hash, reason, created_at, updated_at) \
                         SELECT email_hash, 'bounced', $2, $2 FROM contacts WHERE id = $1 \
                         ON CONFLICT (email_hash) DO NOTHING RETURNING email_hash",
                    )
                    .bind(contact)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(hash) = suppressed {
                        let bounced = SuppressionReason::Bounced;
                        journal.push(JournalEntry::suppressed(now, bounced, stored_hash(&hash)?));
                    }
                    let code: String = reason
                        .chars()
                        .filter(|c| c.is_ascii_digit())
                        .take(3)
                        .collect();
                    tx.audit(Audit {
                        actor: &Actor::Worker,
                        action: AuditAction::Suppressed(SuppressionReason::Bounced),
                        contact,
                        detail: Some(format!("delivery {delivery}: SMTP {code}")),
                        ip: None,
                    })
                    .await?;
                    bounced.extend(contact.map(Change::Contact));
                }
                recorded.push(applied);
            }
            tx.note_changes(&bounced).await?;
            // The messages the server took must be recorded whatever the journal says: held
            // for its next write when it cannot be written now.
            self.journal_or_hold(journal).await;
            tx.commit().await?;
            recorded
        });
        Ok(recorded)
    }

    /// Extends every lease `owner` holds on rows still to send, so that a slow batch is not
    /// taken over while its worker is alive. Returns how many.
    pub async fn renew_leases(&self, owner: &str, lease: Duration) -> Result<u64> {
        let until = now() + lease;
        let renewed = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let renewed = sqlx::query(
                "UPDATE deliveries SET lease_until = $2 \
                 WHERE lease_owner = $1",
            )
            .bind(owner)
            .bind(until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            renewed
        });
        Ok(renewed)
    }

    /// Gives back every row `owner` holds but has not sent, for another worker to take at once.
    pub async fn release_leases(&self, owner: &str) -> Result<u64> {
        let released = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let released = sqlx::query(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL \
                 WHERE lease_owner = $1",
            )
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            released
        });
        Ok(released)
    }

    /// What is left to send over all campaigns being sent.
    pub async fn backlog(&self) -> Result<Backlog> {
        let now = now();
        type Row = (i64, i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>, i64);
        let (due, waiting, next_retry, oldest_due_since, paused): Row = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) FILTER (WHERE d.next_attempt_at IS NULL OR d.next_attempt_at <= $1), \
                        COUNT(*) FILTER (WHERE d.next_attempt_at > $1), \
                        MIN(d.next_attempt_at) FILTER (WHERE d.next_attempt_at > $1), \
                        MIN(COALESCE(d.next_attempt_at, k.queued_at)) \
                            FILTER (WHERE d.next_attempt_at IS NULL OR d.next_attempt_at <= $1), \
                        (SELECT COUNT(*) FROM campaigns WHERE state = 'paused') \
                 FROM deliveries d JOIN campaigns k ON k.id = d.campaign_id \
                 WHERE d.state = 'queued' AND k.state = 'queued'",
            )
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        Ok(Backlog {
            due: u64::try_from(due).unwrap_or(0),
            waiting: u64::try_from(waiting).unwrap_or(0),
            next_retry,
            oldest_due_since,
            paused_campaigns: u64::try_from(paused).unwrap_or(0),
        })
    }

    /// Pauses a campaign being sent because sending it keeps failing, saying why. Returns
    /// `false` when it was not being sent (staff paused or cancelled it meanwhile).
    pub async fn pause_failing_campaign(&self, id: i64, reason: &str) -> Result<bool> {
        let now = now();
        let paused = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let paused = sqlx::query(
                "UPDATE campaigns SET state = 'paused', paused_reason = $2, updated_at = $3 \
                 WHERE id = $1 AND state = 'queued'",
            )
            .bind(id)
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if paused {
                tx.audit(Audit::of(
                    &Actor::Worker,
                    AuditAction::CampaignPaused,
                    format!("campaign {id}: {reason}"),
                ))
                .await?;
                tx.note_changes(&[Change::Campaign(id)]).await?;
            }
            tx.commit().await?;
            paused
        });
        Ok(paused)
    }

    /// Marks campaigns with nothing left to send as done. Returns how many.
    pub async fn finish_campaigns(&self) -> Result<u64> {
        let now = now();
        let done = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE campaigns SET state = 'done', updated_at = $1 \
                 WHERE state = 'queued' AND NOT EXISTS \
                     (SELECT 1 FROM deliveries d WHERE d.campaign_id = campaigns.id \
                      AND d.state = 'queued')",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            done
        });
        Ok(done)
    }
}
