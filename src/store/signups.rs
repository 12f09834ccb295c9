//! Public sign-ups and their confirmation (double opt-in). A sign-up is only a request until the
//! person follows the link emailed to them: then, and only then, they become a contact with
//! consent, recorded with the time, the IP address of the confirmation and the wording they saw.

use chrono::{DateTime, Utc};

use super::{BeginWrite, ConsentChange, Pool, Result, Store, decode_error, now, on_pool};
use crate::domain::{
    Actor, AuditAction, Email, Name, NewContact, Postcode, PublicId, SignupExport, TopicSlug,
};
use crate::store::{Audit, InTransaction};

/// How long a sign-up is kept: its confirmation link lasts as long, and then it is deleted,
/// confirmed or not (a confirmed one lives on as the contact).
pub const SIGNUP_KEPT_DAYS: i64 = 7;

/// The source every confirmed sign-up's consent carries.
pub const SIGNUP_SOURCE: &str = "signup";

/// A sign-up as the form gives it, parsed.
#[derive(Debug, Clone)]
pub struct NewSignup {
    pub email: Email,
    pub name: Option<Name>,
    pub postcode: Option<Postcode>,
    pub topics: Vec<TopicSlug>,
    /// The wording or form version the person was shown.
    pub wording: String,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// Now a contact with consent for the topics asked for.
    Confirmed,
    /// Confirmed before; nothing changed.
    AlreadyConfirmed,
    NotFound,
}

#[derive(sqlx::FromRow)]
struct SignupRow {
    id: i64,
    email: String,
    name: Option<String>,
    postcode: Option<String>,
    topics: String,
    wording: String,
    confirmed_at: Option<DateTime<Utc>>,
}

/// Sign-ups (so confirmation emails) one address may have in an hour: enough for a typo and a
/// retry, too few to flood someone's inbox with confirmations.
pub const SIGNUPS_PER_ADDRESS_PER_HOUR: i64 = 3;

impl Store {
    /// Keeps a sign-up until it is confirmed; the id its confirmation link carries. `None`,
    /// keeping nothing, when the address has had [`SIGNUPS_PER_ADDRESS_PER_HOUR`] this hour:
    /// the count and the insert are one step, so that requests in parallel cannot pass it.
    pub async fn create_signup(&self, signup: &NewSignup) -> Result<Option<PublicId>> {
        let id = PublicId::generate();
        let hash = signup.email.hash();
        let an_hour_ago = now() - chrono::Duration::hours(1);
        // SQLite has one writer at a time; PostgreSQL's concurrent writers queue per address.
        let per_address = match self.pool() {
            Pool::Sqlite(_) => None,
            Pool::Postgres(_) => Some("SELECT pg_advisory_xact_lock(hashtext($1))::text"),
        };
        let topics = signup
            .topics
            .iter()
            .map(TopicSlug::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let created = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(lock) = per_address {
                sqlx::query(lock)
                    .bind(hash.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            let recent: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM signups WHERE email_hash = $1 AND created_at >= $2",
            )
            .bind(hash.as_str())
            .bind(an_hour_ago)
            .fetch_one(&mut *tx)
            .await?;
            if recent >= SIGNUPS_PER_ADDRESS_PER_HOUR {
                return Ok(None);
            }
            sqlx::query(
                "INSERT INTO signups (public_id, email, email_hash, name, postcode, topics, \
                     wording, ip, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id.to_string())
            .bind(signup.email.as_str())
            .bind(hash.as_str())
            .bind(signup.name.as_ref().map(Name::as_str))
            .bind(signup.postcode.as_ref().map(Postcode::as_str))
            .bind(topics)
            .bind(&signup.wording)
            .bind(signup.ip.as_deref())
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.purge_signups(now() - chrono::Duration::days(SIGNUP_KEPT_DAYS))
                .await?;
            tx.commit().await?;
            Some(id)
        });
        Ok(created)
    }

    /// Deletes the sign-ups older than [`SIGNUP_KEPT_DAYS`]; how many. Every new sign-up does
    /// this too; `serve` also does it now and then, for the days nobody signs up.
    pub async fn purge_signups(&self) -> Result<u64> {
        let before = now() - chrono::Duration::days(SIGNUP_KEPT_DAYS);
        let purged = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let purged = tx.purge_signups(before).await?.rows_affected();
            tx.commit().await?;
            purged
        });
        Ok(purged)
    }

    /// The sign-ups held for this address, oldest first.
    pub async fn signups_of(&self, email: &Email) -> Result<Vec<SignupExport>> {
        let signups = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT created_at, name, postcode, topics, wording, ip, confirmed_at \
                 FROM signups WHERE email_hash = $1 ORDER BY id",
            )
            .bind(email.hash().as_str())
            .fetch_all(pool)
            .await?
        });
        Ok(signups)
    }

    /// Sign-ups for this address since `since`, confirmed or not: the per-address limit.
    pub async fn recent_signups(&self, email: &Email, since: DateTime<Utc>) -> Result<u64> {
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM signups WHERE email_hash = $1 AND created_at >= $2",
            )
            .bind(email.hash().as_str())
            .bind(since)
            .fetch_one(pool)
            .await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Confirms a sign-up: the person's own fresh, confirmed consent lifts any suppression of
    /// the address (the audit log and the ledger keep both the old refusal and the new grant),
    /// the contact is created or updated, and each topic's consent is recorded with source
    /// `signup`, the time, the IP address of the confirmation and the wording shown. The
    /// sign-up is marked confirmed last, so that a confirmation cut short can be repeated.
    pub async fn confirm_signup(&self, id: &PublicId, ip: Option<&str>) -> Result<ConfirmOutcome> {
        let row: Option<SignupRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, email, name, postcode, topics, wording, confirmed_at FROM signups \
                 WHERE public_id = $1",
            )
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?
        });
        let Some(row) = row else {
            return Ok(ConfirmOutcome::NotFound);
        };
        if row.confirmed_at.is_some() {
            return Ok(ConfirmOutcome::AlreadyConfirmed);
        }
        let email = Email::parse(&row.email).map_err(|e| decode_error("email", e))?;
        let topics = row
            .topics
            .split(',')
            .filter(|slug| !slug.is_empty())
            .map(|slug| TopicSlug::parse(slug).map_err(|e| decode_error("topic", e)))
            .collect::<Result<Vec<_>>>()?;
        let now = now();
        self.lift_suppression(&email).await?;
        let contact = NewContact {
            email: email.clone(),
            name: row
                .name
                .as_deref()
                .map(Name::parse)
                .transpose()
                .map_err(|e| decode_error("name", e))?
                .flatten(),
            postcode: row
                .postcode
                .as_deref()
                .map(Postcode::parse)
                .transpose()
                .map_err(|e| decode_error("postcode", e))?,
            date_of_birth: None,
            guardian_consent: None,
            guardian: None,
            topics: Vec::new(),
            consent_at: now,
            consent_dated: true,
            consent_source: SIGNUP_SOURCE.to_owned(),
        };
        self.save_contact(&contact, SIGNUP_SOURCE, &Actor::Contact)
            .await?;
        for topic in &topics {
            let change = ConsentChange {
                topic,
                granted: true,
                source: SIGNUP_SOURCE,
                at: now,
                wording: Some(&row.wording),
                ip,
            };
            self.record_consent(&email, &change, &Actor::Contact)
                .await?;
        }
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE signups SET confirmed_at = $2 WHERE id = $1")
                .bind(row.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(ConfirmOutcome::Confirmed)
    }

    /// Takes the address off the suppression list, saying in the audit log what it was there
    /// for.
    async fn lift_suppression(&self, email: &Email) -> Result<()> {
        let hash = email.hash();
        let lifted = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            tx.lock_contact(&hash).await?;
            let reason: Option<String> = sqlx::query_scalar(
                "DELETE FROM suppressions WHERE email_hash = $1 RETURNING reason",
            )
            .bind(hash.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(reason) = &reason {
                let contact: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM contacts WHERE email_hash = $1")
                        .bind(hash.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.audit(Audit {
                    actor: &Actor::Contact,
                    action: AuditAction::SuppressionLifted,
                    contact,
                    detail: Some(format!("was {reason}; confirmed sign-up")),
                    ip: None,
                })
                .await?;
            }
            tx.commit().await?;
            reason
        });
        if lifted.is_some() {
            self.journal_lift(&hash).await;
        }
        Ok(())
    }
}
