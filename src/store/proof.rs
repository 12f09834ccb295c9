//! "Why did I get this?": from a message's Message-ID, the consent that allowed it and the
//! approval of what it said, as the ledger and the campaign hold them.

use chrono::{DateTime, Utc};

use super::{Result, Store, on_pool};
use crate::domain::ConsentEntry;

/// What the records say of one message sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageProof {
    pub message_id: String,
    pub sent_at: Option<DateTime<Utc>>,
    /// `sent` for a message the server accepted.
    pub state: String,
    pub campaign: CampaignProof,
    /// The person it went to, while they are held: `None` once they were erased, when only the
    /// anonymised delivery remains.
    pub recipient: Option<RecipientProof>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct CampaignProof {
    pub id: i64,
    pub name: String,
    pub subject: String,
    pub topic: String,
    /// The version queued, and so sent.
    pub version: Option<i64>,
    pub created_by: String,
    /// Who approved that version and when (none: the operator queued it, or approval was off).
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub election_material: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecipientProof {
    pub public_id: String,
    /// The ledger's entry in force for the campaign's topic when the message was sent, as
    /// canvass knew it then: a grant, or the message should not have gone.
    pub consent: Option<ConsentEntry>,
    /// Entries for the topic recorded after the message went though dated before it (a
    /// withdrawal by letter, entered later): what canvass could not have known.
    pub recorded_later: Vec<ConsentEntry>,
    /// The consent in force now, if it changed since.
    pub now: Option<ConsentEntry>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    campaign_id: i64,
    contact_id: Option<i64>,
    state: String,
    sent_at: Option<DateTime<Utc>>,
    public_id: Option<String>,
    topic_id: i64,
}

const LEDGER_ENTRY: &str = "\
    SELECT t.slug AS topic, l.channel, l.granted, l.source, l.at, l.wording, l.ip, l.recorded_at \
    FROM consent_ledger l JOIN topics t ON t.id = l.topic_id \
    WHERE l.contact_id = $1 AND l.topic_id = $2";

impl Store {
    /// What the records say of the message with that Message-ID (as the ledger holds it, in
    /// angle brackets); `None` when canvass sent no such message.
    pub async fn message_proof(&self, message_id: &str) -> Result<Option<MessageProof>> {
        let proof = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let delivery: Option<DeliveryRow> = sqlx::query_as(
                "SELECT d.campaign_id, d.contact_id, d.state, d.sent_at, c.public_id, k.topic_id \
                 FROM deliveries d \
                 JOIN campaigns k ON k.id = d.campaign_id \
                 LEFT JOIN contacts c ON c.id = d.contact_id \
                 WHERE d.message_id = $1",
            )
            .bind(message_id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(delivery) = delivery else {
                return Ok(None);
            };
            let campaign: CampaignProof = sqlx::query_as(
                "SELECT k.id, k.name, k.subject, t.slug AS topic, \
                        CAST(k.queued_version AS BIGINT) AS version, k.created_by, \
                        CASE WHEN k.approved_version = k.queued_version THEN k.approved_by END \
                            AS approved_by, \
                        CASE WHEN k.approved_version = k.queued_version THEN k.approved_at END \
                            AS approved_at, \
                        k.queued_at, k.election_material \
                 FROM campaigns k JOIN topics t ON t.id = k.topic_id WHERE k.id = $1",
            )
            .bind(delivery.campaign_id)
            .fetch_one(&mut *conn)
            .await?;
            let recipient = match (delivery.contact_id, delivery.public_id) {
                (Some(contact), Some(public_id)) => {
                    let sent_at = delivery.sent_at.unwrap_or_else(super::now);
                    let consent: Option<ConsentEntry> =
                        sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "{LEDGER_ENTRY} AND l.at <= $3 AND l.recorded_at <= $3 \
                         ORDER BY l.at DESC, l.id DESC LIMIT 1"
                        )))
                        .bind(contact)
                        .bind(delivery.topic_id)
                        .bind(sent_at)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let recorded_later: Vec<ConsentEntry> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "{LEDGER_ENTRY} AND l.at <= $3 AND l.recorded_at > $3 ORDER BY l.at, l.id"
                    )))
                    .bind(contact)
                    .bind(delivery.topic_id)
                    .bind(sent_at)
                    .fetch_all(&mut *conn)
                    .await?;
                    let now: Option<ConsentEntry> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "{LEDGER_ENTRY} ORDER BY l.at DESC, l.id DESC LIMIT 1"
                    )))
                    .bind(contact)
                    .bind(delivery.topic_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                    Some(RecipientProof {
                        public_id,
                        now: now.filter(|now| Some(now) != consent.as_ref()),
                        consent,
                        recorded_later,
                    })
                }
                _ => None,
            };
            Some(MessageProof {
                message_id: message_id.to_owned(),
                sent_at: delivery.sent_at,
                state: delivery.state,
                campaign,
                recipient,
            })
        });
        Ok(proof)
    }
}
