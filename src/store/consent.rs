//! The consent ledger: grants and withdrawals, appended one by one.

use chrono::{DateTime, Utc};

use super::{BeginWrite, Change, Result, Store, on_pool};
use crate::domain::{Actor, AuditAction, Email, TopicSlug};
use crate::store::{Audit, InTransaction};

/// One grant or withdrawal, with its evidence.
#[derive(Debug, Clone)]
pub struct ConsentChange<'a> {
    pub topic: &'a TopicSlug,
    pub granted: bool,
    /// Where it was given: `preference-centre`, `signup`, a form's name...
    pub source: &'a str,
    pub at: DateTime<Utc>,
    /// The wording or form version the person saw.
    pub wording: Option<&'a str>,
    pub ip: Option<&'a str>,
}

impl Store {
    /// Appends a change to the ledger and the audit log. Returns `false`, changing nothing, when
    /// there is no such contact or topic.
    pub async fn record_consent(
        &self,
        email: &Email,
        change: &ConsentChange<'_>,
        actor: &Actor,
    ) -> Result<bool> {
        let hash = email.hash();
        let now = super::now();
        let action = if change.granted {
            AuditAction::ConsentGranted
        } else {
            AuditAction::ConsentWithdrawn
        };
        let recorded = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let ids: Option<(i64, i64)> = sqlx::query_as(
                "SELECT c.id, t.id FROM contacts c, topics t \
                 WHERE c.email_hash = $1 AND t.slug = $2",
            )
            .bind(hash.as_str())
            .bind(change.topic.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((contact_id, topic_id)) = ids else {
                return Ok(false);
            };
            sqlx::query(
                "INSERT INTO consent_ledger \
                     (contact_id, topic_id, channel, granted, source, at, wording, ip, recorded_at) \
                 VALUES ($1, $2, 'email', $3, $4, $5, $6, $7, $8)",
            )
            .bind(contact_id)
            .bind(topic_id)
            .bind(change.granted)
            .bind(change.source)
            .bind(change.at)
            .bind(change.wording)
            .bind(change.ip)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let detail = format!("topic {}", change.topic);
            tx.audit(Audit {
                actor,
                action,
                contact: Some(contact_id),
                detail: Some(detail),
                ip: change.ip,
            })
            .await?;
            if !change.granted {
                tx.note_changes(&[Change::Contact(contact_id)]).await?;
            }
            tx.commit().await?;
            true
        });
        Ok(recorded)
    }
}
