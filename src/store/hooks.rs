//! What mail providers report through their webhooks, each event once: the event's own id is
//! written in the transaction that acts on it, so that a retried or replayed webhook changes
//! nothing twice, however many copies arrive at once.

use super::{BeginWrite, InTransaction, Result, Store, now, on_pool};
use crate::domain::{Actor, Email, SuppressionReason};

/// One event a provider reported, as the store keeps it.
#[derive(Debug, Clone, Copy)]
pub struct ProviderEvent<'a> {
    /// `ses`, `mailgun`, `postmark`, `sendgrid`.
    pub provider: &'static str,
    /// The provider's own id for the event.
    pub key: &'a str,
    /// A one-time token the request carried, accepted once.
    pub nonce: Option<&'a str>,
    /// The Message-ID canvass gave the message, and the address the provider names: both must
    /// be those of one of canvass's deliveries.
    pub message: Option<(&'a str, &'a Email)>,
    /// The RFC 3463 status the provider gave, when it gave one.
    pub status: Option<&'a str>,
    pub effect: Effect<'a>,
}

/// What the event does to the recipient.
#[derive(Debug, Clone, Copy)]
pub enum Effect<'a> {
    /// A permanent bounce or a complaint: the address is suppressed for good.
    Suppress {
        reason: SuppressionReason,
        detail: &'a str,
    },
    /// A temporary bounce (`temporary`) or a delivery (`delivered`): recorded, nobody
    /// suppressed.
    Note { kind: &'a str },
}

/// What hearing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// The request's one-time token was used before: nothing done.
    Replayed,
    /// The event was heard before: nothing done again.
    AlreadyHeard,
    /// No message canvass sent to that address carries what the event names: nothing done.
    NotOurs,
    Suppressed,
    Recorded,
}

impl Store {
    /// Hears one event: its one-time token spent, the event written by its id, and, when it is
    /// about one of canvass's own messages, acted on; all in one transaction.
    pub async fn hear_from_provider(&self, event: &ProviderEvent<'_>) -> Result<Heard> {
        let actor = Actor::Provider(event.provider);
        let heard = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(nonce) = event.nonce {
                let fresh = sqlx::query(
                    "INSERT INTO hook_nonces (provider, nonce, seen_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (provider, nonce) DO NOTHING",
                )
                .bind(event.provider)
                .bind(nonce)
                .bind(now())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if fresh == 0 {
                    tx.rollback().await?;
                    return Ok(Heard::Replayed);
                }
            }
            let kind = match event.effect {
                Effect::Suppress {
                    reason: SuppressionReason::Complaint,
                    ..
                } => "complaint",
                Effect::Suppress { .. } => "bounce",
                Effect::Note { kind } => kind,
            };
            let first = sqlx::query(
                "INSERT INTO hook_events \
                     (provider, event_key, kind, outcome, status, received_at) \
                 VALUES ($1, $2, $3, 'not ours', $4, $5) \
                 ON CONFLICT (provider, event_key) DO NOTHING",
            )
            .bind(event.provider)
            .bind(event.key)
            .bind(kind)
            .bind(event.status)
            .bind(now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if first == 0 {
                tx.commit().await?;
                return Ok(Heard::AlreadyHeard);
            }
            let found: Option<(i64, i64, i64, String)> = match event.message {
                Some((message_id, to)) => {
                    sqlx::query_as(
                        "SELECT d.id, d.campaign_id, c.id, c.email_hash FROM deliveries d \
                         JOIN contacts c ON c.id = d.contact_id \
                         WHERE d.message_id = $1 AND c.email_hash = $2",
                    )
                    .bind(message_id)
                    .bind(to.hash().as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                }
                None => None,
            };
            let Some((delivery, campaign, contact, hash)) = found else {
                tx.commit().await?;
                return Ok(Heard::NotOurs);
            };
            let heard = match event.effect {
                Effect::Suppress { reason, detail } => {
                    tx.count_feedback(delivery, reason).await?;
                    let hash = super::stored_hash(&hash)?;
                    let contact = Some(contact);
                    let journal = tx
                        .suppress_for_feedback(&hash, contact, reason, detail, &actor)
                        .await?;
                    self.journal_entries(journal).await?;
                    Heard::Suppressed
                }
                Effect::Note { .. } => Heard::Recorded,
            };
            sqlx::query(
                "UPDATE hook_events SET outcome = $1, campaign_id = $2 \
                 WHERE provider = $3 AND event_key = $4",
            )
            .bind(match heard {
                Heard::Suppressed => "suppressed",
                _ => "recorded",
            })
            .bind(campaign)
            .bind(event.provider)
            .bind(event.key)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            heard
        });
        Ok(heard)
    }

    /// Spends a request's one-time token when none of its events is to be kept; `false` when
    /// it was spent before.
    pub async fn spend_hook_nonce(&self, provider: &str, nonce: &str) -> Result<bool> {
        let fresh = on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            sqlx::query(
                "INSERT INTO hook_nonces (provider, nonce, seen_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (provider, nonce) DO NOTHING",
            )
            .bind(provider)
            .bind(nonce)
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(fresh == 1)
    }

    /// Forgets the events heard before `before`: no provider sends one again so late (their
    /// signatures have expired), and their ids lead back to the provider's own records.
    pub async fn prune_hook_events(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        Ok(on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            sqlx::query("DELETE FROM hook_events WHERE received_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Forgets one-time tokens seen before `before`: their signatures have expired.
    pub async fn prune_hook_nonces(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        Ok(on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            sqlx::query("DELETE FROM hook_nonces WHERE seen_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
