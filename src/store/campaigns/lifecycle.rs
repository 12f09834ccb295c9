//! A campaign's life after its draft: submitted, approved, queued (set-based, in the database),
//! scheduled, retried, paused, resumed and cancelled, each change checked in the statement that
//! makes it.

use super::{
    ApproveOutcome, DraftOutcome, ELIGIBLE, Imprint, LARGE_CAMPAIGN, QueueOutcome, RetryOutcome,
    StateChange, StateChangeOutcome, SubmitOutcome, cleared,
};

use chrono::{DateTime, Utc};

use crate::domain::{Actor, AuditAction, CampaignState, Scope, latest_birth_date_to_mail};
use crate::store::{Audit, BeginWrite, Change, InTransaction, Pool, Result, Store, now, on_pool};

impl Store {
    /// Marks a draft as waiting for someone's approval of the version it is at: once, and only
    /// when it needs one it has not got, decided by the statement that marks it.
    pub async fn submit_campaign(&self, id: i64, actor: &Actor) -> Result<SubmitOutcome> {
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            match tx.campaign_state(id).await? {
                None => return Ok(SubmitOutcome::NotFound),
                Some(CampaignState::Draft) => {}
                Some(state) => return Ok(SubmitOutcome::Refused(state)),
            }
            let marked = sqlx::query(
                "UPDATE campaigns SET submitted_at = $2 \
                 WHERE id = $1 AND needs_approval AND submitted_at IS NULL \
                   AND approved_version IS DISTINCT FROM version",
            )
            .bind(id)
            .bind(now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                let (needed, submitted, approved): (bool, Option<DateTime<Utc>>, bool) =
                    sqlx::query_as(
                        "SELECT needs_approval, submitted_at, \
                                approved_version IS NOT DISTINCT FROM version \
                         FROM campaigns WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                return Ok(match (needed, approved, submitted) {
                    (false, _, _) => SubmitOutcome::NotNeeded,
                    (true, true, _) => SubmitOutcome::Approved,
                    (true, false, Some(since)) => SubmitOutcome::Waiting(since),
                    (true, false, None) => SubmitOutcome::NotFound,
                });
            }
            tx.audit(Audit::of(
                actor,
                AuditAction::CampaignSubmitted,
                format!("campaign {id}"),
            ))
            .await?;
            tx.commit().await?;
            SubmitOutcome::Submitted
        });
        Ok(outcome)
    }

    /// Approves version `version` of a draft, cutting what it may reach to `limit`; refused
    /// when it has been edited since, when the approver wrote any version of it, or when the
    /// approver is not an enabled person of the staff (a token without an owner is no second
    /// person). All are checked by the statement that records the approval.
    pub async fn approve_campaign(
        &self,
        id: i64,
        version: i64,
        limit: &Scope,
        actor: &Actor,
    ) -> Result<ApproveOutcome> {
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let approved = sqlx::query(
                "UPDATE campaigns SET approved_version = $2, approved_by = $3, approved_at = $4 \
                 WHERE id = $1 AND state = 'draft' AND version = $2 \
                   AND NOT EXISTS (SELECT 1 FROM campaign_authors a \
                                   WHERE a.campaign_id = $1 AND a.author = $3) \
                   AND EXISTS (SELECT 1 FROM staff_users u \
                               WHERE 'staff:' || u.email = $3 AND u.disabled_at IS NULL)",
            )
            .bind(id)
            .bind(version)
            .bind(actor.to_string())
            .bind(now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if approved == 0 {
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM campaigns WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let person: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM staff_users u \
                     WHERE 'staff:' || u.email = $1 AND u.disabled_at IS NULL)",
                )
                .bind(actor.to_string())
                .fetch_one(&mut *tx)
                .await?;
                let why: DraftOutcome<()> = tx.why_draft_unchanged(id).await?;
                return Ok(match why {
                    DraftOutcome::NotFound => ApproveOutcome::NotFound,
                    DraftOutcome::NotDraft(state) => ApproveOutcome::Refused(state),
                    _ if current != Some(version) => ApproveOutcome::Edited,
                    _ if !person => ApproveOutcome::NotAPerson,
                    _ => ApproveOutcome::Authored,
                });
            }
            tx.write_limit(id, limit).await?;
            tx.audit(Audit::of(
                actor,
                AuditAction::CampaignApproved,
                format!("campaign {id} version {version}"),
            ))
            .await?;
            tx.commit().await?;
            ApproveOutcome::Approved
        });
        Ok(outcome)
    }

    /// Snapshots the audience into the delivery ledger, one row per recipient, in one
    /// set-based statement, and marks the campaign queued, at the version it is now. Only a
    /// draft cleared for `actor` ([`cleared`]) is queued: the statement that marks it queued
    /// checks both, and holds the row until commit, so no edit comes between. A draft has no
    /// deliveries, so the insert needs no conflict handling (which costs PostgreSQL a
    /// speculative insertion per row).
    pub async fn queue_campaign(
        &self,
        id: i64,
        actor: &Actor,
        imprint: Imprint,
    ) -> Result<QueueOutcome> {
        let now = now();
        let bound = latest_birth_date_to_mail(now.date_naive());
        let cleared = format!("({}) AND {}", cleared(actor, "$2"), imprint.clears());
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let version: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "UPDATE campaigns SET state = 'queued', queued_at = $2, updated_at = $2, \
                     scheduled_at = NULL, scheduled_version = NULL, queued_version = version \
                 WHERE id = $1 AND state = 'draft' AND {cleared} RETURNING version"
            )))
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(version) = version else {
                return tx.why_draft_unchanged(id).await;
            };
            let queued = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO deliveries \
                     (campaign_id, contact_id, state, attempts, updated_at, constituency) \
                 SELECT k.id, c.id, 'queued', 0, $3, c.constituency_code \
                 FROM campaigns k, contacts c \
                 WHERE k.id = $1 AND {ELIGIBLE}"
            )))
            .bind(id)
            .bind(bound)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // The campaign's counts, kept from here on by the deliveries' trigger.
            sqlx::query(
                "INSERT INTO campaign_counts (campaign_id, state, constituency_code, bounced, \
                     complained, unsubscribed, deliveries) \
                 SELECT campaign_id, state, COALESCE(constituency, ''), bounced, complained, \
                     unsubscribed, count(*) \
                 FROM deliveries WHERE campaign_id = $1 GROUP BY 1, 2, 3, 4, 5, 6",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.audit(Audit {
                actor,
                action: AuditAction::CampaignQueued,
                contact: None,
                detail: Some(format!(
                    "campaign {id} version {version}: {queued} deliveries"
                )),
                ip: None,
            })
            .await?;
            tx.commit().await?;
            QueueOutcome::Done(queued)
        });
        // A large campaign changes the ledger's shape: PostgreSQL's planner learns of it now,
        // not at autovacuum's next round, so that reports and claims are planned for it.
        if let (Pool::Postgres(pool), QueueOutcome::Done(n)) = (self.pool(), outcome)
            && n >= LARGE_CAMPAIGN
        {
            sqlx::query("ANALYZE deliveries").execute(pool).await?;
        }
        Ok(outcome)
    }

    /// Counts `messages` test messages of campaign `id` against `per_minute` and, when they fit,
    /// records them (and the audit entry) and answers true; false, recording nothing, when they
    /// do not. Campaign `id` exists (the caller has read it).
    pub async fn allow_test_messages(
        &self,
        id: i64,
        messages: u64,
        per_minute: u64,
        actor: &Actor,
    ) -> Result<bool> {
        let now = now();
        let allowed = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // The campaign's row, locked: requests for the same campaign count one by one.
            sqlx::query("UPDATE campaigns SET updated_at = updated_at WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let a_minute_ago = now - chrono::Duration::minutes(1);
            sqlx::query("DELETE FROM test_messages WHERE campaign_id = $1 AND sent_at < $2")
                .bind(id)
                .bind(a_minute_ago)
                .execute(&mut *tx)
                .await?;
            let sent: i64 =
                sqlx::query_scalar("SELECT count(*) FROM test_messages WHERE campaign_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            if sent as u64 + messages > per_minute {
                return Ok(false);
            }
            for _ in 0..messages {
                sqlx::query("INSERT INTO test_messages (campaign_id, sent_at) VALUES ($1, $2)")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.audit(Audit::of(
                actor,
                AuditAction::CampaignTested,
                format!("campaign {id}: {messages} test messages"),
            ))
            .await?;
            tx.commit().await?;
            true
        });
        Ok(allowed)
    }

    /// Queues again the deliveries that failed for a reason other than the recipient's address
    /// (a relay's refusal, a server that kept putting them off). A finished campaign is sent
    /// again; a paused one waits for its resume. Each recipient is checked again when sent.
    pub async fn retry_campaign(&self, id: i64, actor: &Actor) -> Result<RetryOutcome> {
        let now = now();
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let Some(state) = tx.campaign_state(id).await? else {
                return Ok(RetryOutcome::NotFound);
            };
            if matches!(state, CampaignState::Draft | CampaignState::Cancelled) {
                return Ok(RetryOutcome::Refused(state));
            }
            let requeued = sqlx::query(
                "UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_at = NULL, \
                     outcome = NULL, updated_at = $2 \
                 WHERE campaign_id = $1 AND state = 'failed' AND NOT bounced",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if requeued > 0 {
                sqlx::query(
                    "UPDATE campaigns SET state = 'queued', updated_at = $2 \
                     WHERE id = $1 AND state = 'done'",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.audit(Audit::of(
                    actor,
                    AuditAction::CampaignRetried,
                    format!("campaign {id}: {requeued}"),
                ))
                .await?;
                tx.commit().await?;
            }
            RetryOutcome::Requeued(requeued)
        });
        Ok(outcome)
    }

    /// Schedules a draft to be queued by itself at `at` (`None`: unschedules it), at the
    /// version it is now: only a draft cleared for `actor` ([`cleared`]), checked by the
    /// statement that schedules it. The time is checked by the caller
    /// ([`crate::domain::parse_schedule`]).
    pub async fn schedule_campaign(
        &self,
        id: i64,
        at: Option<DateTime<Utc>>,
        actor: &Actor,
        imprint: Imprint,
    ) -> Result<DraftOutcome<()>> {
        let now = now();
        let cleared = match at {
            Some(_) => format!("({}) AND {}", cleared(actor, "$3"), imprint.clears()),
            None => "TRUE".to_owned(),
        };
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let scheduled = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE campaigns SET scheduled_at = $2, updated_at = $3, scheduled_by = $4, \
                     scheduled_version = CASE WHEN $2 IS NULL THEN NULL ELSE version END \
                 WHERE id = $1 AND state = 'draft' AND {cleared}"
            )))
            .bind(id)
            .bind(at)
            .bind(now)
            .bind(at.map(|_| actor.to_string()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if scheduled == 0 {
                return tx.why_draft_unchanged(id).await;
            }
            let (action, detail) = match at {
                Some(at) => (
                    AuditAction::CampaignScheduled,
                    format!("campaign {id} for {}", at.to_rfc3339()),
                ),
                None => (AuditAction::CampaignUnscheduled, format!("campaign {id}")),
            };
            tx.audit(Audit::of(actor, action, detail)).await?;
            tx.commit().await?;
            DraftOutcome::Done(())
        });
        Ok(outcome)
    }

    /// When the next scheduled draft is due, if any is scheduled.
    pub async fn next_scheduled(&self) -> Result<Option<DateTime<Utc>>> {
        let next = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT scheduled_at FROM campaigns WHERE scheduled_at IS NOT NULL \
                 AND state = 'draft' AND scheduled_version = version \
                 ORDER BY scheduled_at LIMIT 1",
            )
            .fetch_optional(pool)
            .await?
        });
        Ok(next)
    }

    /// Queues every scheduled draft whose time has come, taking its audience now; the ids
    /// queued, with how many deliveries each.
    pub async fn queue_due_campaigns(&self, imprint: Imprint) -> Result<Vec<(i64, u64)>> {
        let due: Vec<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM campaigns WHERE scheduled_at IS NOT NULL \
                 AND scheduled_at <= $1 AND state = 'draft' AND scheduled_version = version \
                 ORDER BY scheduled_at",
            )
            .bind(now())
            .fetch_all(pool)
            .await?
        });
        let mut queued = Vec::new();
        for id in due {
            // Another worker may have queued it first, or someone changed it since: the
            // statement that queues it checks it is still due, at the version scheduled.
            if let QueueOutcome::Done(n) = self.queue_campaign(id, &Actor::Worker, imprint).await? {
                queued.push((id, n));
            }
        }
        Ok(queued)
    }

    /// Pauses, resumes or cancels a campaign. Cancelling skips every delivery not yet sent.
    pub async fn change_campaign_state(
        &self,
        id: i64,
        change: StateChange,
        actor: &Actor,
    ) -> Result<StateChangeOutcome> {
        use CampaignState::{Cancelled, Draft, Paused, Queued};
        let now = now();
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let Some(state) = tx.campaign_state(id).await? else {
                return Ok(StateChangeOutcome::NotFound);
            };
            let next = match (change, state) {
                (StateChange::Pause, Queued) => Paused,
                // A queued campaign "resumed" sends what waits for a retry at once.
                (StateChange::Resume, Paused | Queued) => Queued,
                (StateChange::Cancel, Draft | Queued | Paused) => Cancelled,
                _ => return Ok(StateChangeOutcome::Refused(state)),
            };
            sqlx::query(
                "UPDATE campaigns SET state = $2, paused_reason = NULL, updated_at = $3 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(next.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if next == Cancelled {
                // A row a worker holds keeps its lease: should the message go out before the
                // worker hears of the cancel, its result is still recorded as what happened.
                sqlx::query(
                    "UPDATE deliveries SET state = 'skipped', outcome = 'campaign cancelled', \
                         updated_at = $2 \
                     WHERE campaign_id = $1 AND state = 'queued'",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            let action = match change {
                StateChange::Pause => AuditAction::CampaignPaused,
                StateChange::Resume => AuditAction::CampaignQueued,
                StateChange::Cancel => AuditAction::CampaignCancelled,
            };
            tx.audit(Audit::of(actor, action, format!("campaign {id}")))
                .await?;
            if next == Queued {
                // Resumed: whatever waits for a retry goes now, not after its backoff.
                sqlx::query(
                    "UPDATE deliveries SET next_attempt_at = NULL \
                     WHERE campaign_id = $1 AND state = 'queued' AND next_attempt_at IS NOT NULL",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.note_changes(&[Change::Campaign(id)]).await?;
            tx.commit().await?;
            StateChangeOutcome::Changed(next)
        });
        Ok(outcome)
    }
}
