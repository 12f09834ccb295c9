//! Suppressions and withdrawals: a bounce or a complaint recorded against an address, a
//! withdrawal made by phone or letter, and a wrong suppression lifted.

use super::{FeedbackAbout, UnsuppressOutcome, Withdrawal, WithdrawalOutcome};
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use crate::domain::{
    Actor, AuditAction, Email, EmailHash, SuppressionExport, SuppressionReason, TopicSlug,
};
use crate::store::{
    Audit, BeginWrite, Change, InTransaction, Result, Store, decode_error, latest_consent, now,
    on_pool, stored_hash,
};

impl Store {
    /// Puts an address on the suppression list. An erasure is never downgraded to a lesser
    /// reason.
    /// Suppresses the address a bounce or complaint is about: named directly, or by the
    /// Message-ID canvass gave the message. An address not held is suppressed all the same (by
    /// its hash), so that it is never imported and mailed. `false`, changing nothing, for a
    /// Message-ID no delivery has, one canvass gave a message to another address than the
    /// report names (a forged or mistaken report), or one whose contact was erased (which
    /// suppressed the address already).
    pub async fn record_feedback(
        &self,
        about: &FeedbackAbout<'_>,
        reason: SuppressionReason,
        detail: &str,
        actor: &Actor,
    ) -> Result<bool> {
        let found = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let (hash, contact): (EmailHash, Option<i64>) = match about {
                FeedbackAbout::Address(email) => {
                    let hash = email.hash();
                    let id = tx.contact_id(&hash).await?;
                    (hash, id)
                }
                FeedbackAbout::Message { id, to } => {
                    let found: Option<(i64, String, i64)> = sqlx::query_as(
                        "SELECT d.id, c.email_hash, c.id FROM deliveries d \
                         JOIN contacts c ON c.id = d.contact_id \
                         WHERE d.message_id = $1 AND ($2 IS NULL OR c.email_hash = $2)",
                    )
                    .bind(*id)
                    .bind(to.map(|email| email.hash().as_str().to_owned()))
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((delivery, hash, contact)) = found else {
                        return Ok(false);
                    };
                    tx.count_feedback(delivery, reason).await?;
                    (stored_hash(&hash)?, Some(contact))
                }
            };
            let journal = tx
                .suppress_for_feedback(&hash, contact, reason, detail, actor)
                .await?;
            self.journal_entries(journal).await?;
            tx.commit().await?;
            true
        });
        Ok(found)
    }

    /// Records a withdrawal the person made by phone, letter or email: each topic named (or
    /// every topic) withdrawn in the ledger unless already withdrawn, the address suppressed as
    /// unsubscribed when it is from everything, audited under `actor` with the note; a worker
    /// hears of it within a second.
    pub async fn record_withdrawal(
        &self,
        email: &Email,
        withdrawal: &Withdrawal<'_>,
        actor: &Actor,
    ) -> Result<WithdrawalOutcome> {
        let hash = email.hash();
        let now = now();
        let everything = withdrawal.topics.is_empty();
        let slugs: Vec<&str> = withdrawal.topics.iter().map(TopicSlug::as_str).collect();
        let detail = match withdrawal.note {
            Some(note) => format!("via {}: {note}", withdrawal.source),
            None => format!("via {}", withdrawal.source),
        };
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut topics = QueryBuilder::new("SELECT id FROM topics");
            if !everything {
                topics.push(" WHERE slug IN (");
                let mut list = topics.separated(", ");
                for slug in &slugs {
                    list.push_bind(*slug);
                }
                topics.push(")");
            }
            let topic_ids: Vec<i64> = topics
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            if topic_ids.len() < slugs.len() {
                return Ok(WithdrawalOutcome::UnknownTopic);
            }
            let journal = if everything {
                tx.upsert_suppression(&hash, SuppressionReason::Unsubscribed, now)
                    .await?
            } else {
                None
            };
            self.journal_entries(journal.into_iter().collect()).await?;
            let Some(contact) = tx.contact_id(&hash).await? else {
                tx.commit().await?;
                return Ok(WithdrawalOutcome::NotHeld);
            };
            let mut withdrawn = 0;
            for topic in topic_ids {
                withdrawn += sqlx::query(concat!(
                    "INSERT INTO consent_ledger \
                         (contact_id, topic_id, channel, granted, source, at, recorded_at) \
                     SELECT $1, $2, 'email', FALSE, $3, $4, $4 WHERE COALESCE(",
                    latest_consent!("$1", "$2"),
                    ", TRUE)"
                ))
                .bind(contact)
                .bind(topic)
                .bind(withdrawal.source)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            let action = if everything {
                AuditAction::ContactUnsubscribed
            } else {
                AuditAction::ConsentWithdrawn
            };
            tx.audit(Audit {
                actor,
                action,
                contact: Some(contact),
                detail: Some(detail.clone()),
                ip: None,
            })
            .await?;
            tx.note_changes(&[Change::Contact(contact)]).await?;
            tx.commit().await?;
            WithdrawalOutcome::Recorded(withdrawn)
        });
        Ok(outcome)
    }

    /// Lifts a `bounced` or `complaint` suppression that staff found wrong (a relay's answer
    /// taken for the mailbox's, a forged report), audited with their note. An `unsubscribed`
    /// or `erased` one stands.
    pub async fn unsuppress(
        &self,
        email: &Email,
        note: &str,
        actor: &Actor,
    ) -> Result<UnsuppressOutcome> {
        let hash = email.hash();
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            tx.lock_contact(&hash).await?;
            let reason: Option<String> =
                sqlx::query_scalar("SELECT reason FROM suppressions WHERE email_hash = $1")
                    .bind(hash.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(reason) = reason else {
                return Ok(UnsuppressOutcome::NotSuppressed);
            };
            let reason: SuppressionReason = reason
                .parse()
                .map_err(|e: String| decode_error("reason", e))?;
            if matches!(
                reason,
                SuppressionReason::Unsubscribed | SuppressionReason::Erased
            ) {
                return Ok(UnsuppressOutcome::Refused(reason));
            }
            sqlx::query("DELETE FROM suppressions WHERE email_hash = $1")
                .bind(hash.as_str())
                .execute(&mut *tx)
                .await?;
            let contact = tx.contact_id(&hash).await?;
            tx.audit(Audit {
                actor,
                action: AuditAction::SuppressionLifted,
                contact,
                detail: Some(format!("was {}: {note}", reason.as_str())),
                ip: None,
            })
            .await?;
            tx.commit().await?;
            UnsuppressOutcome::Lifted(reason)
        });
        if let UnsuppressOutcome::Lifted(_) = outcome {
            self.journal_lift(&hash).await;
        }
        Ok(outcome)
    }

    pub async fn suppress(&self, hash: &EmailHash, reason: SuppressionReason) -> Result<()> {
        let now = now();
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let journal = tx.upsert_suppression(hash, reason, now).await?;
            let suppressed: Vec<Change> = tx
                .contact_id(hash)
                .await?
                .map(Change::Contact)
                .into_iter()
                .collect();
            tx.note_changes(&suppressed).await?;
            self.journal_entries(journal.into_iter().collect()).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn suppression(&self, hash: &EmailHash) -> Result<Option<SuppressionExport>> {
        let row: Option<(String, DateTime<Utc>)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT reason, created_at FROM suppressions WHERE email_hash = $1")
                .bind(hash.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(|(reason, since)| {
            let reason = reason
                .parse()
                .map_err(|e: String| sqlx::Error::Decode(e.into()))?;
            Ok(SuppressionExport { reason, since })
        })
        .transpose()
    }
}
