//! Contacts and what is recorded about them: import, export, erasure, restriction, suppression.

use chrono::{DateTime, NaiveDate, Utc};

use super::{
    BeginWrite, Change, ContactImportOutcome, JournalEntry, Result, Store, decode_error, now,
    on_pool,
};
use crate::domain::{
    Actor, AuditAction, AuditEntry, ConsentEntry, ConstituencyExport, ContactExport,
    CurrentConsent, Email, EmailHash, GuardianConsent, MessageExport, NewContact,
    SuppressionReason, TopicSlug,
};
use crate::store::{Audit, InTransaction};

/// What a bounce or complaint names.
#[derive(Debug, Clone, Copy)]
pub enum FeedbackAbout<'a> {
    /// An address alone: only a trusted reporter (a staff token) may name one.
    Address(&'a Email),
    /// A message canvass sent: the Message-ID it gave it (with its angle brackets) and, when
    /// the report names one, the address it went to, which must be the same.
    Message { id: &'a str, to: Option<&'a Email> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureOutcome {
    /// The contact's data was deleted and the address suppressed.
    Erased,
    /// Nothing was held on the address; it is suppressed all the same, so that it is never
    /// imported or mailed.
    NothingHeld,
}

/// Why an address is erased.
#[derive(Debug, Clone, Copy)]
pub(super) enum Erasure {
    /// The person asked (or staff did, for them): written to the journal.
    Requested,
    /// The journal says it was, and a restored database holds what was held before: only that
    /// is erased, and the address suppressed unless a confirmed sign-up lifted it since.
    Replayed {
        held_before: DateTime<Utc>,
        suppressed: bool,
    },
    /// The retention period is over: erased only while still nothing is in force and nothing
    /// happened since `cutoff` (checked in the statement that picks the contact), then as if
    /// asked for.
    Retention { cutoff: DateTime<Utc> },
}

impl Erasure {
    fn suppresses(self) -> bool {
        match self {
            Self::Requested | Self::Retention { .. } => true,
            Self::Replayed { suppressed, .. } => suppressed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestrictionOutcome {
    Changed,
    AlreadySo,
    NotFound,
}

/// A withdrawal staff record on the person's behalf (by phone, by letter, by email).
#[derive(Debug, Clone)]
pub struct Withdrawal<'a> {
    /// The topics withdrawn from; none: from everything, and the address suppressed as
    /// unsubscribed, as the one-click link does.
    pub topics: &'a [TopicSlug],
    /// How the person said it: `phone`, `letter`, `email`...
    pub source: &'a str,
    pub note: Option<&'a str>,
}

/// What recording a withdrawal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithdrawalOutcome {
    /// Recorded: this many topics' consents withdrawn (and suppressed, for everything).
    Recorded(u64),
    /// Nobody is held at that address; for a withdrawal from everything the address is
    /// suppressed all the same, so that no import brings it back.
    NotHeld,
    /// A topic named is not one of canvass's.
    UnknownTopic,
}

/// What lifting a suppression did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsuppressOutcome {
    /// A `bounced` or `complaint` suppression found wrong was lifted.
    Lifted(SuppressionReason),
    /// The person's own choice (unsubscribed) or erasure: only their confirmed sign-up lifts it.
    Refused(SuppressionReason),
    NotSuppressed,
}

/// What saving one contact did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved(ContactImportOutcome),
    /// The address was erased: only the person's own confirmed sign-up brings it back.
    Erased,
    /// It would hold a child under 14 without a guardian's consent: nothing was stored.
    UnderAge,
}

/// A contact row as the export reads it.
#[derive(sqlx::FromRow)]
struct ContactRow {
    id: i64,
    public_id: String,
    email: String,
    name: Option<String>,
    postcode: Option<String>,
    date_of_birth: Option<NaiveDate>,
    guardian_consent: Option<bool>,
    restricted_at: Option<DateTime<Utc>>,
    source: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    constituency_code: Option<String>,
    constituency_name: Option<String>,
}

// After the macros above, which it uses.
mod suppressions;

impl Store {
    /// Creates or updates one contact (as an import row would) and audits it under `actor`.
    pub async fn save_contact(
        &self,
        contact: &NewContact,
        source: &str,
        actor: &Actor,
    ) -> Result<SaveOutcome> {
        let outcome = self
            .import_contacts(std::slice::from_ref(contact), source)
            .await?;
        if !outcome.refused_erased.is_empty() {
            return Ok(SaveOutcome::Erased);
        }
        if !outcome.refused_underage.is_empty() {
            return Ok(SaveOutcome::UnderAge);
        }
        let action = match outcome.inserted {
            0 => AuditAction::ContactUpdated,
            _ => AuditAction::ContactCreated,
        };
        let detail = format!("source {source}");
        self.record_audit_about(actor, action, &contact.email, Some(detail))
            .await?;
        Ok(SaveOutcome::Saved(outcome))
    }

    /// Adds an entry to the audit log that is about no one contact.
    pub async fn record_audit(
        &self,
        actor: &Actor,
        action: AuditAction,
        detail: &str,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            pool.acquire()
                .await?
                .audit(Audit::of(actor, action, detail.to_owned()))
                .await?;
        });
        Ok(())
    }

    /// Adds an entry to the audit log about the contact at `email` (erased with them).
    pub async fn record_audit_about(
        &self,
        actor: &Actor,
        action: AuditAction,
        email: &Email,
        detail: Option<String>,
    ) -> Result<()> {
        let hash = email.hash();
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let id = tx.contact_id(&hash).await?;
            tx.audit(Audit {
                actor,
                action,
                contact: id,
                detail,
                ip: None,
            })
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Everything held on the person, or `None` when no contact is (their sign-ups, if any, are
    /// in [`Store::signups_of`]).
    pub async fn export_contact(&self, email: &Email) -> Result<Option<ContactExport>> {
        let hash = email.hash();
        let suppression = self.suppression(&hash).await?;
        let signups = self.signups_of(email).await?;
        let export = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let row: Option<ContactRow> = sqlx::query_as(
                "SELECT c.id, c.public_id, c.email, c.name, c.postcode, c.date_of_birth, \
                        c.guardian_consent, c.restricted_at, c.source, c.created_at, \
                        c.updated_at, p.constituency_code, k.name AS constituency_name \
                 FROM contacts c \
                 LEFT JOIN postcodes p ON p.postcode = c.postcode \
                 LEFT JOIN constituencies k ON k.code = p.constituency_code \
                 WHERE c.email_hash = $1",
            )
            .bind(hash.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let consents: Vec<CurrentConsent> = sqlx::query_as(
                "SELECT t.slug AS topic, cc.granted, cc.at, cc.source \
                 FROM current_consent cc JOIN topics t ON t.id = cc.topic_id \
                 WHERE cc.contact_id = $1 ORDER BY t.id",
            )
            .bind(row.id)
            .fetch_all(&mut *conn)
            .await?;
            let consent_history: Vec<ConsentEntry> = sqlx::query_as(
                "SELECT t.slug AS topic, l.channel, l.granted, l.source, l.at, l.wording, l.ip, \
                        l.recorded_at \
                 FROM consent_ledger l JOIN topics t ON t.id = l.topic_id \
                 WHERE l.contact_id = $1 ORDER BY l.at, l.id",
            )
            .bind(row.id)
            .fetch_all(&mut *conn)
            .await?;
            let messages: Vec<MessageExport> = sqlx::query_as(
                "SELECT k.name AS campaign, k.subject, t.slug AS topic, \
                        COALESCE(d.sent_at, d.updated_at) AS sent_at, d.message_id \
                 FROM deliveries d \
                 JOIN campaigns k ON k.id = d.campaign_id \
                 JOIN topics t ON t.id = k.topic_id \
                 WHERE d.contact_id = $1 AND d.state = 'sent' \
                 ORDER BY d.sent_at, d.id",
            )
            .bind(row.id)
            .fetch_all(&mut *conn)
            .await?;
            let guardian: Option<GuardianConsent> = sqlx::query_as(
                "SELECT guardian, relationship, given_at, method FROM guardian_consents \
                 WHERE contact_id = $1",
            )
            .bind(row.id)
            .fetch_optional(&mut *conn)
            .await?;
            let audit: Vec<AuditEntry> = sqlx::query_as(
                "SELECT at, actor, action, detail, ip FROM audit_log \
                 WHERE contact_id = $1 ORDER BY id",
            )
            .bind(row.id)
            .fetch_all(&mut *conn)
            .await?;
            ContactExport {
                public_id: row
                    .public_id
                    .parse()
                    .map_err(|e| decode_error("contact public id", e))?,
                email: row.email,
                name: row.name,
                postcode: row.postcode,
                constituency: row.constituency_code.map(|code| ConstituencyExport {
                    code,
                    name: row.constituency_name,
                }),
                date_of_birth: row.date_of_birth,
                guardian_consent: row.guardian_consent.unwrap_or(false),
                guardian,
                restricted: row.restricted_at.is_some(),
                source: row.source,
                created_at: row.created_at,
                updated_at: row.updated_at,
                consents,
                consent_history,
                suppression,
                audit,
                signups,
                messages,
            }
        });
        Ok(Some(export))
    }

    /// Deletes everything held on the person and keeps only the hashed suppression entry, so
    /// that they are never imported or mailed again, and an audit entry that names no one.
    pub async fn erase_contact(&self, email: &Email, actor: &Actor) -> Result<ErasureOutcome> {
        self.erase(&email.hash(), actor, Erasure::Requested).await
    }

    /// Erases what is held on the address, as asked for or as the journal says it was.
    pub(super) async fn erase(
        &self,
        hash: &EmailHash,
        actor: &Actor,
        erasure: Erasure,
    ) -> Result<ErasureOutcome> {
        let now = now();
        let (held_before, cutoff, detail) = match erasure {
            Erasure::Requested => (None, None, None),
            Erasure::Replayed { held_before, .. } => (
                Some(held_before),
                None,
                Some("re-applied from the suppression journal"),
            ),
            // Only what was there before the period began: a sign-up since is not its to take.
            Erasure::Retention { cutoff } => (
                Some(cutoff),
                Some(cutoff),
                Some("the retention period was over"),
            ),
        };
        let erased = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // The contact's row lock first (PostgreSQL), which every change of their standing
            // takes: a grant committed meanwhile is seen by the check below, not overrun.
            tx.lock_contact(hash).await?;
            // What was held before the erasure: a person who signed up again since is not the
            // erasure's to take.
            let id: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT c.id FROM contacts c WHERE c.email_hash = $1 \
                 AND ($2 IS NULL OR c.created_at <= $2) AND ($3 IS NULL OR {})",
                super::retention::retention_over("$3")
            )))
            .bind(hash.as_str())
            .bind(held_before)
            .bind(cutoff)
            .fetch_optional(&mut *tx)
            .await?;
            if id.is_none() && cutoff.is_some() {
                // Something happened since the list was drawn up: they stay.
                return Ok(ErasureOutcome::NothingHeld);
            }
            if let Some(id) = id {
                // A server's answer to a delivery may quote the address; the ledger keeps
                // that a message went, not to whom (PostgreSQL's ledger has no foreign key
                // to do this, for the speed of queueing).
                sqlx::query(
                    "UPDATE deliveries SET outcome = NULL, contact_id = NULL WHERE contact_id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                // The person's audit entries hold their IP addresses and what they changed.
                sqlx::query("DELETE FROM audit_log WHERE contact_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM contacts WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            // A sign-up not yet confirmed (or confirmed lately) holds the address in full.
            sqlx::query(
                "DELETE FROM signups WHERE email_hash = $1 AND ($2 IS NULL OR created_at <= $2)",
            )
            .bind(hash.as_str())
            .bind(held_before)
            .execute(&mut *tx)
            .await?;
            // A complaint they made keeps its reference, dates and outcome for the register,
            // and who made it only as the hash; what they wrote goes with their address.
            sqlx::query(
                "UPDATE complaints SET email = NULL, \
                     summary = 'erased with the complainant''s data' \
                 WHERE email_hash = $1 AND ($2 IS NULL OR logged_at <= $2)",
            )
            .bind(hash.as_str())
            .bind(held_before)
            .execute(&mut *tx)
            .await?;
            if erasure.suppresses() {
                tx.upsert_suppression(hash, SuppressionReason::Erased, now)
                    .await?;
            }
            tx.audit(Audit::of(
                actor,
                AuditAction::ContactErased,
                detail.map(str::to_owned),
            ))
            .await?;
            let erased: Vec<Change> = id.map(Change::Contact).into_iter().collect();
            tx.note_changes(&erased).await?;
            // Every erasure asked for, even of an address already suppressed as erased: its
            // time is what a restored database is checked against.
            if let Erasure::Requested | Erasure::Retention { .. } = erasure {
                let erased = JournalEntry::suppressed(now, SuppressionReason::Erased, hash.clone());
                self.journal_entries(vec![erased]).await?;
            }
            tx.commit().await?;
            id.is_some()
        });
        // PostgreSQL's counts by postcode forget the postcode now, not at the next fold.
        self.fold_counts_now().await?;
        if !matches!(erasure, Erasure::Retention { .. }) {
            self.scrub_files().await?;
        }
        Ok(if erased {
            ErasureOutcome::Erased
        } else {
            ErasureOutcome::NothingHeld
        })
    }

    /// Restricts processing (kept, never mailed) or lifts the restriction.
    pub async fn set_restricted(
        &self,
        email: &Email,
        restricted: bool,
        actor: &Actor,
    ) -> Result<RestrictionOutcome> {
        let hash = email.hash();
        let now = now();
        let action = if restricted {
            AuditAction::ContactRestricted
        } else {
            AuditAction::ContactUnrestricted
        };
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let current: Option<(i64, Option<DateTime<Utc>>)> =
                sqlx::query_as("SELECT id, restricted_at FROM contacts WHERE email_hash = $1")
                    .bind(hash.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            match current {
                None => RestrictionOutcome::NotFound,
                Some((_, since)) if since.is_some() == restricted => RestrictionOutcome::AlreadySo,
                Some((id, _)) => {
                    sqlx::query(
                        "UPDATE contacts SET restricted_at = $2, updated_at = $3 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(restricted.then_some(now))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.audit(Audit {
                        actor,
                        action,
                        contact: Some(id),
                        detail: None,
                        ip: None,
                    })
                    .await?;
                    tx.note_changes(&[Change::Contact(id)]).await?;
                    tx.commit().await?;
                    RestrictionOutcome::Changed
                }
            }
        });
        Ok(outcome)
    }
}
