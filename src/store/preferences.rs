//! What a person does through the signed links in their emails: see their preferences, change
//! them, unsubscribe from everything. The contact is named by its public id, as in the link.

use std::collections::BTreeSet;

use sqlx::QueryBuilder;

use super::{
    BeginWrite, Change, JournalEntry, Result, Store, decode_error, latest_consent, now, on_pool,
    stored_hash,
};
use crate::domain::{
    Actor, AuditAction, Email, LinkTag, Postcode, PublicId, SuppressionReason, TopicSlug,
};
use crate::store::{Audit, InTransaction};

/// What the preference centre shows.
#[derive(Debug, Clone)]
pub struct Preferences {
    pub public_id: PublicId,
    pub email: Email,
    pub name: Option<String>,
    pub postcode: Option<String>,
    /// The constituency's name (or code, when the directory has no name), from the postcode.
    pub constituency: Option<String>,
    pub suppressed: Option<SuppressionReason>,
    /// Every topic, with whether the person hears about it now.
    pub topics: Vec<TopicChoice>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicChoice {
    pub slug: TopicSlug,
    pub name: String,
    pub subscribed: bool,
}

/// A change asked for in the preference centre.
#[derive(Debug, Clone)]
pub struct PreferenceUpdate {
    /// The topics the person wants; every other topic is withdrawn.
    pub topics: BTreeSet<TopicSlug>,
    /// The postcode they gave; `None` removes it.
    pub postcode: Option<Postcode>,
}

/// Where a change came from, for the ledger and the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The consent ledger's source: `unsubscribe-link`, `preference-centre`.
    pub source: &'a str,
    pub ip: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated {
        granted: Vec<TopicSlug>,
        withdrawn: Vec<TopicSlug>,
        postcode_changed: bool,
    },
    /// The address is suppressed: topics can be withdrawn but not granted here; the person
    /// signs up again to hear from the party (issue: double opt-in).
    GrantsRefused,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeOutcome {
    Unsubscribed,
    /// Nothing left to change: repeating an unsubscribe is harmless.
    AlreadyUnsubscribed,
    /// No contact has that id: erased, or never held.
    NotFound,
}

#[derive(sqlx::FromRow)]
struct PreferencesRow {
    id: i64,
    email: String,
    name: Option<String>,
    postcode: Option<String>,
    constituency: Option<String>,
    suppressed: Option<String>,
}

/// One person's request to hear nothing more.
#[derive(Debug, Clone)]
pub struct UnsubscribeRequest {
    pub contact: PublicId,
    /// The consent ledger's source: `unsubscribe-link`, `preference-centre`.
    pub source: &'static str,
    pub ip: Option<String>,
    /// The campaign whose message carried the link, which counts the unsubscribe.
    pub campaign: Option<LinkTag>,
}

/// The most requests applied in one transaction: four bind parameters each, well inside both
/// engines' limits.
pub const MAX_UNSUBSCRIBE_BATCH: usize = 1_000;

impl Store {
    pub async fn preferences(&self, id: &PublicId) -> Result<Option<Preferences>> {
        let found = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let row: Option<PreferencesRow> = sqlx::query_as(
                "SELECT c.id, c.email, c.name, c.postcode, \
                        COALESCE(k.name, p.constituency_code) AS constituency, \
                        s.reason AS suppressed \
                 FROM contacts c \
                 LEFT JOIN postcodes p ON p.postcode = c.postcode \
                 LEFT JOIN constituencies k ON k.code = p.constituency_code \
                 LEFT JOIN suppressions s ON s.email_hash = c.email_hash \
                 WHERE c.public_id = $1",
            )
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                None => None,
                Some(row) => {
                    let topics: Vec<(String, String, bool)> = sqlx::query_as(
                        "SELECT t.slug, t.name, COALESCE(cc.granted, FALSE) \
                         FROM topics t \
                         LEFT JOIN current_consent cc ON cc.topic_id = t.id \
                              AND cc.contact_id = $1 AND cc.channel = 'email' \
                         ORDER BY t.id",
                    )
                    .bind(row.id)
                    .fetch_all(&mut *conn)
                    .await?;
                    Some((row, topics))
                }
            }
        });
        let Some((row, topics)) = found else {
            return Ok(None);
        };
        let suppressed = row
            .suppressed
            .map(|r| r.parse::<SuppressionReason>())
            .transpose()
            .map_err(|e| decode_error("suppression reason", e))?;
        let topics = topics
            .into_iter()
            .map(|(slug, name, subscribed)| {
                Ok(TopicChoice {
                    slug: TopicSlug::parse(&slug).map_err(|e| decode_error("topic", e))?,
                    name,
                    subscribed,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Some(Preferences {
            public_id: *id,
            email: Email::parse(&row.email).map_err(|e| decode_error("email", e))?,
            name: row.name,
            postcode: row.postcode,
            constituency: row.constituency,
            suppressed,
            topics,
        }))
    }

    /// Withdraws consent for every topic and suppresses the address of each person, at once and
    /// for good: an import never resubscribes them. The requests are applied together, set by
    /// set, in one transaction (concurrent one-click requests share its commit); the answer
    /// holds one outcome per request, in order.
    pub async fn unsubscribe(
        &self,
        requests: &[UnsubscribeRequest],
    ) -> Result<Vec<UnsubscribeOutcome>> {
        assert!(requests.len() <= MAX_UNSUBSCRIBE_BATCH, "batch too large");
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let now = now();
        let public_ids: Vec<String> = requests.iter().map(|r| r.contact.to_string()).collect();
        let held = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // One row per person held, saying whether anything is left to do for them.
            let mut find = QueryBuilder::new(concat!(
                "SELECT c.public_id, c.id, \
                    (EXISTS (SELECT 1 FROM topics t WHERE COALESCE(",
                latest_consent!("c.id", "t.id"),
                ", TRUE)) \
                     OR NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash \
                                    AND s.reason IN ('erased', 'unsubscribed'))) AS pending \
                 FROM contacts c WHERE c.public_id IN (",
            ));
            let mut ids = find.separated(", ");
            for public_id in &public_ids {
                ids.push_bind(public_id);
            }
            find.push(")");
            let held: Vec<(String, i64, bool)> = find
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            // Each person with something to do, once, with the first request's evidence.
            let mut pending: Vec<(i64, &UnsubscribeRequest)> = Vec::new();
            for (request, public_id) in requests.iter().zip(&public_ids) {
                let found = held.iter().find(|(held_id, _, _)| held_id == public_id);
                if let Some(&(_, id, true)) = found
                    && !pending.iter().any(|&(seen, _)| seen == id)
                {
                    pending.push((id, request));
                }
            }
            if !pending.is_empty() {
                let mut withdraw = QueryBuilder::new(
                    "INSERT INTO consent_ledger \
                         (contact_id, topic_id, channel, granted, source, at, ip, recorded_at) \
                     SELECT p.column1, t.id, 'email', FALSE, p.column2, ",
                );
                withdraw
                    .push_bind(now)
                    .push(", p.column3, ")
                    .push_bind(now)
                    .push(" FROM (");
                withdraw.push_values(&pending, |mut row, &(id, request)| {
                    row.push_bind(id)
                        .push_bind(request.source)
                        .push_bind(request.ip.as_deref());
                });
                // Unless the latest entry for the topic is already a withdrawal.
                withdraw.push(concat!(
                    ") AS p CROSS JOIN topics t WHERE COALESCE(",
                    latest_consent!("p.column1", "t.id"),
                    ", TRUE)"
                ));
                withdraw.build().persistent(false).execute(&mut *tx).await?;

                let mut suppress = QueryBuilder::new(
                    "INSERT INTO suppressions (email_hash, reason, created_at, updated_at) \
                     SELECT email_hash, 'unsubscribed', ",
                );
                suppress
                    .push_bind(now)
                    .push(", ")
                    .push_bind(now)
                    .push(" FROM contacts WHERE id IN (");
                let mut ids = suppress.separated(", ");
                for &(id, _) in &pending {
                    ids.push_bind(id);
                }
                suppress.push(
                    ") ON CONFLICT (email_hash) DO UPDATE SET reason = excluded.reason, \
                         updated_at = excluded.updated_at \
                     WHERE suppressions.reason NOT IN ('erased', 'unsubscribed') \
                     RETURNING email_hash",
                );
                let suppressed: Vec<String> = suppress
                    .build_query_scalar()
                    .persistent(false)
                    .fetch_all(&mut *tx)
                    .await?;
                let journal = suppressed
                    .into_iter()
                    .map(|hash| {
                        let unsubscribed = SuppressionReason::Unsubscribed;
                        Ok(JournalEntry::suppressed(
                            now,
                            unsubscribed,
                            stored_hash(&hash)?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;

                let mut audit = QueryBuilder::new(
                    "INSERT INTO audit_log (at, actor, action, contact_id, detail, ip) ",
                );
                audit.push_values(&pending, |mut row, &(id, request)| {
                    row.push_bind(now)
                        .push_bind(Actor::Contact.to_string())
                        .push_bind(AuditAction::ContactUnsubscribed.as_str())
                        .push_bind(id)
                        .push_bind(format!("via {}", request.source))
                        .push_bind(request.ip.as_deref());
                });
                audit.build().persistent(false).execute(&mut *tx).await?;
                for &(id, request) in &pending {
                    let Some(campaign) = &request.campaign else {
                        continue;
                    };
                    sqlx::query(
                        "UPDATE deliveries SET unsubscribed = TRUE WHERE contact_id = $1 \
                         AND campaign_id = (SELECT id FROM campaigns WHERE link_tag = $2)",
                    )
                    .bind(id)
                    .bind(campaign.to_string())
                    .execute(&mut *tx)
                    .await?;
                }
                let changed: Vec<Change> =
                    pending.iter().map(|&(id, _)| Change::Contact(id)).collect();
                tx.note_changes(&changed).await?;
                self.journal_entries(journal).await?;
                tx.commit().await?;
            }
            held
        });
        Ok(public_ids
            .iter()
            .map(
                |public_id| match held.iter().find(|(id, _, _)| id == public_id) {
                    None => UnsubscribeOutcome::NotFound,
                    Some((_, _, true)) => UnsubscribeOutcome::Unsubscribed,
                    Some((_, _, false)) => UnsubscribeOutcome::AlreadyUnsubscribed,
                },
            )
            .collect())
    }

    /// Applies the preference centre's form: grants and withdrawals in the ledger, the new
    /// postcode (the constituency follows from it), one audit entry. Nothing changes when a grant
    /// is asked for on a suppressed address.
    pub async fn update_preferences(
        &self,
        id: &PublicId,
        update: &PreferenceUpdate,
        request: Request<'_>,
    ) -> Result<UpdateOutcome> {
        let now = now();
        let postcode = update.postcode.as_ref().map(Postcode::as_str);
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let contact: Option<(i64, bool)> = sqlx::query_as(
                "SELECT c.id, s.email_hash IS NOT NULL FROM contacts c \
                 LEFT JOIN suppressions s ON s.email_hash = c.email_hash \
                 WHERE c.public_id = $1",
            )
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((contact_id, suppressed)) = contact else {
                return Ok(UpdateOutcome::NotFound);
            };
            let current: Vec<(i64, String, bool)> = sqlx::query_as(
                "SELECT t.id, t.slug, COALESCE(cc.granted, FALSE) FROM topics t \
                 LEFT JOIN current_consent cc ON cc.topic_id = t.id \
                      AND cc.contact_id = $1 AND cc.channel = 'email' \
                 ORDER BY t.id",
            )
            .bind(contact_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut granted = Vec::new();
            let mut withdrawn = Vec::new();
            for (topic_id, slug, subscribed) in current {
                let Ok(slug) = TopicSlug::parse(&slug) else {
                    continue;
                };
                let wanted = update.topics.contains(&slug);
                if wanted == subscribed {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO consent_ledger \
                         (contact_id, topic_id, channel, granted, source, at, ip, recorded_at) \
                     VALUES ($1, $2, 'email', $3, $4, $5, $6, $5)",
                )
                .bind(contact_id)
                .bind(topic_id)
                .bind(wanted)
                .bind(request.source)
                .bind(now)
                .bind(request.ip)
                .execute(&mut *tx)
                .await?;
                if wanted {
                    granted.push(slug);
                } else {
                    withdrawn.push(slug);
                }
            }
            if suppressed && !granted.is_empty() {
                // Dropping the transaction rolls back the withdrawals too: nothing changes.
                return Ok(UpdateOutcome::GrantsRefused);
            }
            let postcode_changed = sqlx::query(
                "UPDATE contacts SET postcode = $2, updated_at = $3, \
                     constituency_code = (SELECT p.constituency_code FROM postcodes p \
                                          WHERE p.postcode = $2) \
                 WHERE id = $1 AND postcode IS DISTINCT FROM $2",
            )
            .bind(contact_id)
            .bind(postcode)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if !granted.is_empty() || !withdrawn.is_empty() || postcode_changed {
                let mut detail = Vec::new();
                if !granted.is_empty() {
                    detail.push(format!("granted {}", join(&granted)));
                }
                if !withdrawn.is_empty() {
                    detail.push(format!("withdrawn {}", join(&withdrawn)));
                }
                if postcode_changed {
                    detail.push("postcode changed".to_owned());
                }
                tx.audit(Audit {
                    actor: &Actor::Contact,
                    action: AuditAction::PreferencesUpdated,
                    contact: Some(contact_id),
                    detail: Some(detail.join("; ")),
                    ip: request.ip,
                })
                .await?;
                tx.note_changes(&[Change::Contact(contact_id)]).await?;
                tx.commit().await?;
            }
            UpdateOutcome::Updated {
                granted,
                withdrawn,
                postcode_changed,
            }
        });
        Ok(outcome)
    }

    /// The value of a setting, storing `value` first if there is none. Returns the value in
    /// force and whether it is the one just stored.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<(String, bool)> {
        let held = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            let held: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            (held, inserted)
        });
        Ok(held)
    }
}

fn join(topics: &[TopicSlug]) -> String {
    topics
        .iter()
        .map(TopicSlug::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
