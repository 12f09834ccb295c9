//! The delivery ledger as the worker uses it: claim a batch under a lease, re-check each
//! recipient, record what the server said.

use chrono::{DateTime, Duration, Utc};

use super::campaigns::ELIGIBLE;
use super::campaigns::Recipient;
use super::{BeginWrite, CONSTITUENCY_OF_CONTACT, Result, Store, decode_error, now, on_pool};
use crate::domain::{Email, latest_birth_date_to_mail};

/// One delivery a worker holds the lease on, with what its message shows.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub campaign_id: i64,
    pub email: Email,
    pub recipient: Recipient,
}

/// What a claim did.
#[derive(Debug, Default)]
pub struct Claim {
    /// Recipients still eligible, to send to now.
    pub deliveries: Vec<ClaimedDelivery>,
    /// Claimed rows whose recipient no longer qualifies, marked `skipped`.
    pub skipped: u64,
}

/// Picks the rows to claim: queued, of a campaign being sent, due, and not under another
/// worker's lease. PostgreSQL locks them and passes over rows another worker is claiming
/// (`SKIP LOCKED`); SQLite has one writer at a time, so its claim is one `UPDATE` anyway.
const CLAIMABLE: &str = "\
    SELECT d.id FROM deliveries d JOIN campaigns k ON k.id = d.campaign_id \
    WHERE k.state = 'queued' AND d.state = 'queued' \
      AND (d.lease_until IS NULL OR d.lease_until < $2) \
      AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= $2) \
    ORDER BY d.id LIMIT $3";

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    campaign_id: i64,
    email: String,
    public_id: String,
    name: Option<String>,
    postcode: Option<String>,
    constituency: Option<String>,
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
        let lock = match self {
            Store::Sqlite(_) => "",
            Store::Postgres(_) => " FOR UPDATE OF d SKIP LOCKED",
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
                 WHERE lease_owner = $3 AND lease_until = $4 AND state = 'queued' \
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
                "SELECT d.id, d.campaign_id, c.email, c.public_id, c.name, c.postcode, \
                        {CONSTITUENCY_OF_CONTACT} AS constituency \
                 FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
                 WHERE d.lease_owner = $1 AND d.lease_until = $2 AND d.state = 'queued' \
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
                    email: Email::parse(&row.email).map_err(|e| decode_error("email", e))?,
                    recipient: Recipient {
                        public_id: row
                            .public_id
                            .parse()
                            .map_err(|e: uuid::Error| decode_error("public id", e))?,
                        name: row.name,
                        postcode: row.postcode,
                        constituency: row.constituency,
                    },
                })
            })
            .collect::<Result<_>>()?;
        Ok(Claim {
            deliveries,
            skipped,
        })
    }

    /// Records that the server accepted the message, as soon as it has. Returns `false` when
    /// the lease was lost (another worker reclaimed the row after it expired).
    pub async fn mark_sent(
        &self,
        delivery: i64,
        owner: &str,
        message_id: &str,
        answer: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let updated = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE deliveries SET state = 'sent', message_id = $3, outcome = $4, \
                     sent_at = $5, updated_at = $5, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'queued'",
            )
            .bind(delivery)
            .bind(owner)
            .bind(message_id)
            .bind(answer)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            updated > 0
        });
        Ok(updated)
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
