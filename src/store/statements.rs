//! The statements that several of the store's methods share, written once for both engines:
//! most run inside the caller's transaction, a few alone on a connection of their own.
//!
//! [`on_pool!`](super::on_pool) compiles a whole public method once per engine; these are the
//! pieces such methods share. They are default methods of [`InTransaction`], a trait of either
//! engine's connection whose bounds say, once, what the statements need of an engine: the
//! bounds hold inside the trait's own methods, and each call names a connection whose engine is
//! known, so nothing else has to repeat them.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::database::HasStatementCache;
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, PgConnection, QueryBuilder,
    SqliteConnection, Type,
};

use super::campaigns::audience_rows;
use super::contact_import::statements::{
    GRANT_IMPORTED_CONSENTS, LAST_CONTACT_ID, RECORD_GUARDIANS, REFUSE_ERASED, REFUSE_UNDERAGE,
    UPSERT_CONTACTS, WITHHELD_GRANTS,
};
use super::contact_import::{ContactImportOutcome, WithheldRow, withheld_grants};
use super::{
    Change, DraftOutcome, JournalEntry, MAX_BIND_PARAMETERS, Result, StoreError, decode_error, now,
};
use crate::domain::{
    Actor, AuditAction, CampaignState, Coordinates, EmailHash, NewCampaign, Postcode, Scope,
    StaffTokenHash, SuppressionReason, TopicSlug, latest_birth_date_to_mail, uk_day,
};

/// One audit-log entry to append.
pub(crate) struct Audit<'a> {
    /// Who did it: an [`Actor`](crate::domain::Actor), or a person not yet signed in, by their address.
    pub actor: &'a (dyn fmt::Display + Sync),
    pub action: AuditAction,
    /// The contact it is about, while the contact is held.
    pub contact: Option<i64>,
    pub detail: Option<String>,
    pub ip: Option<&'a str>,
}

impl<'a> Audit<'a> {
    /// An entry about no contact, from no address.
    pub fn of(
        actor: &'a (dyn fmt::Display + Sync),
        action: AuditAction,
        detail: impl Into<Option<String>>,
    ) -> Self {
        Self {
            actor,
            action,
            contact: None,
            detail: detail.into(),
            ip: None,
        }
    }
}

/// What a value is to an engine: written into a statement and read out of a row.
pub(crate) trait Value<'q, DB: sqlx::Database>:
    Encode<'q, DB> + Decode<'q, DB> + Type<DB>
{
}
impl<'q, DB: sqlx::Database, T: Encode<'q, DB> + Decode<'q, DB> + Type<DB>> Value<'q, DB> for T {}

/// A connection of either engine: inside a transaction of its caller's, or, for a statement
/// that stands alone (`record_sent` when every message went, one audit entry), on its own.
pub(crate) trait InTransaction: sqlx::Connection
where
    Self::Database: HasStatementCache,
    for<'c> &'c mut Self: Executor<'c, Database = Self::Database>,
    <Self::Database as sqlx::Database>::Arguments: IntoArguments<Self::Database>,
    usize: ColumnIndex<<Self::Database as sqlx::Database>::Row>,
    for<'s> &'s str: ColumnIndex<<Self::Database as sqlx::Database>::Row>,
    for<'q> String: Value<'q, Self::Database>,
    for<'q> &'q str: Encode<'q, Self::Database> + Type<Self::Database>,
    for<'q> i64: Value<'q, Self::Database>,
    for<'q> bool: Value<'q, Self::Database>,
    for<'q> f64: Value<'q, Self::Database>,
    for<'q> DateTime<Utc>: Value<'q, Self::Database>,
    for<'q> NaiveDate: Value<'q, Self::Database>,
    for<'q> Option<String>: Value<'q, Self::Database>,
    for<'q> Option<&'q str>: Encode<'q, Self::Database> + Type<Self::Database>,
    for<'q> Option<i64>: Value<'q, Self::Database>,
    for<'q> Option<f64>: Value<'q, Self::Database>,
    for<'q> Option<DateTime<Utc>>: Value<'q, Self::Database>,
{
    /// Appends `entry` to the audit log.
    async fn audit(&mut self, entry: Audit<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, contact_id, detail, ip) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now())
        .bind(entry.actor.to_string())
        .bind(entry.action.as_str())
        .bind(entry.contact)
        .bind(entry.detail)
        .bind(entry.ip)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    /// Notes `changes` in the feed, just before the caller commits: it takes the next number
    /// of the feed's clock, whose row stays locked until the transaction ends. Nothing is noted
    /// for none.
    async fn note_changes(&mut self, changes: &[Change]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let seq: i64 = sqlx::query_scalar("UPDATE change_clock SET seq = seq + 1 RETURNING seq")
            .fetch_one(&mut *self)
            .await?;
        let at = now();
        for chunk in changes.chunks(MAX_BIND_PARAMETERS / 4) {
            QueryBuilder::new("INSERT INTO changes (seq, contact_id, campaign_id, at) ")
                .push_values(chunk, |mut row, change| {
                    let (contact, campaign) = change.columns();
                    row.push_bind(seq)
                        .push_bind(contact)
                        .push_bind(campaign)
                        .push_bind(at);
                })
                .build()
                .persistent(false)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }

    // Campaigns.

    /// Campaign `id`'s state, read inside the caller's write transaction; `None` when there is
    /// no such campaign.
    async fn campaign_state(&mut self, id: i64) -> Result<Option<CampaignState>> {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM campaigns WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self)
            .await?;
        state
            .map(|s| s.parse().map_err(|e| decode_error("state", e)))
            .transpose()
    }

    /// Why a compare-and-set on draft `id` changed nothing, read inside the caller's write
    /// transaction: no such campaign, not a draft, or a draft not cleared.
    async fn why_draft_unchanged<T>(&mut self, id: i64) -> Result<DraftOutcome<T>> {
        Ok(match self.campaign_state(id).await? {
            None => DraftOutcome::NotFound,
            Some(CampaignState::Draft) => DraftOutcome::Uncleared,
            Some(state) => DraftOutcome::NotDraft(state),
        })
    }

    /// The id of topic `slug`; an unknown one is [`StoreError::UnknownTopic`].
    async fn topic_id(&mut self, slug: &TopicSlug) -> Result<i64> {
        let topic: Option<i64> = sqlx::query_scalar("SELECT id FROM topics WHERE slug = $1")
            .bind(slug.as_str())
            .fetch_optional(&mut *self)
            .await?;
        topic.ok_or_else(|| StoreError::UnknownTopic(slug.to_string()))
    }

    /// Writes every field of `campaign` and its audience over campaign `id`, inside the
    /// caller's write transaction; a topic that does not exist is [`StoreError::UnknownTopic`].
    async fn write_campaign(&mut self, id: i64, campaign: &NewCampaign) -> Result<()> {
        let event = campaign.event.as_ref();
        let topic = self.topic_id(&campaign.topic).await?;
        // The venue's place, kept for `{{distance_miles}}` and a distance rule: a rule cannot
        // be measured from a venue the directory does not place.
        let near = campaign.audience.near.as_ref();
        let venue = match event.and_then(|e| e.postcode.as_ref()) {
            None => None,
            Some(postcode) => {
                let place: Option<(Option<f64>, Option<f64>)> =
                    sqlx::query_as("SELECT latitude, longitude FROM postcodes WHERE postcode = $1")
                        .bind(postcode.as_str())
                        .fetch_optional(&mut *self)
                        .await?;
                match place {
                    Some((Some(latitude), Some(longitude))) => Some(Coordinates {
                        latitude,
                        longitude,
                    }),
                    _ => None,
                }
            }
        };
        if let (Some(near), None) = (near, venue) {
            return Err(StoreError::VenueUnplaced(near.venue.as_str().to_owned()));
        }
        sqlx::query(
            "UPDATE campaigns SET name = $2, topic_id = $3, subject = $4, html_template = $5, \
                     text_template = $6, event_title = $7, event_starts_at = $8, event_venue = $9, \
                     event_postcode = $10, updated_at = $11, markdown = $12, from_address = $13, \
                     reply_to = $14, election_material = $15, postcodes_within = $16, \
                     within_miles = $17, venue_latitude = $18, venue_longitude = $19, \
                     venue_miles_east = $20 \
                 WHERE id = $1",
        )
        .bind(id)
        .bind(&campaign.name)
        .bind(topic)
        .bind(&campaign.subject)
        .bind(&campaign.html_template)
        .bind(campaign.text_template.as_deref())
        .bind(event.map(|e| e.title.as_str()))
        .bind(event.map(|e| e.starts_at))
        .bind(event.map(|e| e.venue.as_str()))
        .bind(
            event
                .and_then(|e| e.postcode.as_ref())
                .map(Postcode::as_str),
        )
        .bind(now())
        .bind(campaign.markdown.as_deref())
        .bind(campaign.from.as_ref().map(ToString::to_string))
        .bind(campaign.reply_to.as_ref().map(ToString::to_string))
        .bind(campaign.election_material)
        .bind(campaign.audience.postcodes_within)
        .bind(near.map(|near| i64::from(near.miles)))
        .bind(venue.map(|v| v.latitude))
        .bind(venue.map(|v| v.longitude))
        .bind(venue.map(|v| v.miles_per_degree_east()))
        .execute(&mut *self)
        .await?;
        sqlx::query("DELETE FROM campaign_audience WHERE campaign_id = $1")
            .bind(id)
            .execute(&mut *self)
            .await?;
        sqlx::query("DELETE FROM campaign_exclusions WHERE campaign_id = $1")
            .bind(id)
            .execute(&mut *self)
            .await?;
        for excluded in &campaign.audience.excluding {
            sqlx::query(
                "INSERT INTO campaign_exclusions (campaign_id, excluded_campaign_id) \
                     VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(*excluded)
            .execute(&mut *self)
            .await?;
        }
        for (kind, value) in audience_rows(&campaign.audience) {
            sqlx::query(
                "INSERT INTO campaign_audience (campaign_id, kind, value) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(kind)
            .bind(value)
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }

    /// Sets the contacts campaign `id` may reach at most to `scope`, inside the caller's write
    /// transaction.
    async fn write_limit(&mut self, id: i64, scope: &Scope) -> Result<()> {
        sqlx::query("UPDATE campaigns SET limited = $2 WHERE id = $1")
            .bind(id)
            .bind(scope.constituencies().is_some())
            .execute(&mut *self)
            .await?;
        sqlx::query("DELETE FROM campaign_limits WHERE campaign_id = $1")
            .bind(id)
            .execute(&mut *self)
            .await?;
        for code in scope.constituencies().unwrap_or_default() {
            sqlx::query(
                "INSERT INTO campaign_limits (campaign_id, constituency_code) VALUES ($1, $2)",
            )
            .bind(id)
            .bind(code.as_str())
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }

    /// Records `actor` as an author of campaign `id`, inside the caller's write transaction.
    async fn add_author(&mut self, id: i64, actor: &Actor) -> Result<()> {
        sqlx::query(
            "INSERT INTO campaign_authors (campaign_id, author) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(actor.to_string())
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    // Contacts.

    /// The id of the contact whose address has this hash.
    async fn contact_id(&mut self, hash: &EmailHash) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM contacts WHERE email_hash = $1")
                .bind(hash.as_str())
                .fetch_optional(&mut *self)
                .await?,
        )
    }

    /// Takes the row lock that every change of a contact's standing takes first (PostgreSQL's
    /// triggers take it on the way into the consent ledger and the suppression list): a
    /// statement that would lock a suppression before its contact, such as a `DELETE`, takes it
    /// here first so that two changes never wait for each other. SQLite has one writer at a
    /// time.
    async fn lock_contact(&mut self, hash: &EmailHash) -> Result<()> {
        sqlx::query(Self::LOCK_CONTACT)
            .bind(hash.as_str())
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    /// The statement of [`InTransaction::lock_contact`] on this engine.
    const LOCK_CONTACT: &'static str;

    /// Puts the address with `hash` on the suppression list for `reason`, or changes the
    /// reason it is there for, unless it was erased; what the list gained, for the journal.
    async fn upsert_suppression(
        &mut self,
        hash: &EmailHash,
        reason: SuppressionReason,
        now: DateTime<Utc>,
    ) -> Result<Option<JournalEntry>> {
        let written: Option<String> = sqlx::query_scalar(
            "INSERT INTO suppressions (email_hash, reason, created_at, updated_at) \
             VALUES ($1, $2, $3, $3) \
             ON CONFLICT (email_hash) DO UPDATE SET reason = excluded.reason, \
                 updated_at = excluded.updated_at \
             WHERE suppressions.reason <> 'erased' \
             RETURNING reason",
        )
        .bind(hash.as_str())
        .bind(reason.as_str())
        .bind(now)
        .fetch_optional(&mut *self)
        .await?;
        Ok(written.map(|_| JournalEntry::suppressed(now, reason, hash.clone())))
    }

    /// Counts a bounce or complaint against the delivery it is about (its campaign's report
    /// shows it).
    async fn count_feedback(&mut self, delivery: i64, reason: SuppressionReason) -> Result<()> {
        let column = match reason {
            SuppressionReason::Complaint => "complained",
            _ => "bounced",
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE deliveries SET {column} = TRUE WHERE id = $1"
        )))
        .bind(delivery)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    /// Suppresses the address with `hash` for a bounce or complaint: the suppression list, the
    /// audit log (with `detail`) and the change feed (a worker holds the contact's messages
    /// within a second). What the journal is to be given before the caller commits.
    async fn suppress_for_feedback(
        &mut self,
        hash: &EmailHash,
        contact: Option<i64>,
        reason: SuppressionReason,
        detail: &str,
        actor: &Actor,
    ) -> Result<Vec<JournalEntry>> {
        let journal = self.upsert_suppression(hash, reason, now()).await?;
        self.audit(Audit {
            actor,
            action: AuditAction::Suppressed(reason),
            contact,
            detail: Some(detail.to_owned()),
            ip: None,
        })
        .await?;
        let suppressed: Vec<Change> = contact.map(Change::Contact).into_iter().collect();
        self.note_changes(&suppressed).await?;
        Ok(journal.into_iter().collect())
    }

    // Deliveries.

    /// Marks the messages sent (`(id, message_id, answer, at)` each) while `owner` still holds
    /// their lease, in one statement; the ids it marked. The rows are padded with id 0 (which
    /// no delivery has) to a power of two, so that the statement takes a dozen shapes that each
    /// connection prepares once, instead of being parsed again for every group.
    async fn record_sent(
        &mut self,
        owner: &str,
        sent: &[(i64, &str, &str, DateTime<Utc>)],
    ) -> Result<Vec<i64>> {
        let mut update = QueryBuilder::new(
            "UPDATE deliveries SET state = 'sent', message_id = v.column2, \
                 outcome = v.column3, sent_at = v.column4, updated_at = v.column4, \
                 lease_owner = NULL, lease_until = NULL FROM (",
        );
        let padding = (sent.len().next_power_of_two() - sent.len()).min(sent.len());
        let rows = sent
            .iter()
            .copied()
            .chain(std::iter::repeat_n((0, "", "", sent[0].3), padding));
        update.push_values(rows, |mut row, (delivery, message_id, answer, at)| {
            row.push_bind(delivery)
                .push_bind(message_id)
                .push_bind(answer)
                .push_bind(at);
        });
        update
            .push(") AS v WHERE deliveries.id = v.column1 AND deliveries.lease_owner = ")
            .push_bind(owner)
            .push(" RETURNING deliveries.id");
        Ok(update.build_query_scalar().fetch_all(&mut *self).await?)
    }

    // Sign-ups and staff.

    /// Deletes the sign-ups made before `before`.
    async fn purge_signups(
        &mut self,
        before: DateTime<Utc>,
    ) -> Result<<Self::Database as sqlx::Database>::QueryResult> {
        Ok(sqlx::query("DELETE FROM signups WHERE created_at < $1")
            .bind(before)
            .execute(&mut *self)
            .await?)
    }

    /// The enabled admins' ids, locked (on PostgreSQL) until the caller commits, so that the
    /// last of them is neither disabled nor made something else while it is decided.
    async fn enabled_admins(&mut self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(Self::ENABLED_ADMINS)
            .fetch_all(&mut *self)
            .await?)
    }

    /// The statement of [`InTransaction::enabled_admins`] on this engine (SQLite has one
    /// writer at a time).
    const ENABLED_ADMINS: &'static str;

    /// Keeps staff member `user` (who is kept to none yet) to the constituencies of `scope`.
    async fn keep_to_scope(&mut self, user: i64, scope: &Scope) -> Result<()> {
        for code in scope.constituencies().unwrap_or_default() {
            sqlx::query(
                "INSERT INTO staff_user_constituencies (user_id, constituency_code) \
                 VALUES ($1, $2)",
            )
            .bind(user)
            .bind(code.as_str())
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }

    /// Stores a link (by its token's hash) for staff member `user` to set a password with,
    /// until `expires`.
    async fn insert_password_link(
        &mut self,
        link: &StaffTokenHash,
        user: i64,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO staff_password_links (token_hash, user_id, expires_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(link.as_str())
        .bind(user)
        .bind(expires)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    // Contact imports.

    /// Applies the `staged` rows of an import from `source` at `now`: refuses the erased and
    /// the under-age, writes the contacts and their guardians, grants the consents the rows
    /// give (withholding any given before a later withdrawal), notes who changed, then empties
    /// the staging tables with `clear`.
    async fn apply_staged(
        &mut self,
        staged: usize,
        source: &str,
        now: DateTime<Utc>,
        clear: &'static str,
    ) -> Result<ContactImportOutcome> {
        let refused: Vec<i64> = sqlx::query_scalar(REFUSE_ERASED)
            .fetch_all(&mut *self)
            .await?;
        let underage: Vec<i64> = sqlx::query_scalar(REFUSE_UNDERAGE)
            .bind(latest_birth_date_to_mail(uk_day(now)))
            .fetch_all(&mut *self)
            .await?;
        let last_id: i64 = sqlx::query_scalar(LAST_CONTACT_ID)
            .fetch_one(&mut *self)
            .await?;
        let written: Vec<i64> = sqlx::query_scalar(UPSERT_CONTACTS)
            .bind(source)
            .bind(now)
            .fetch_all(&mut *self)
            .await?;
        sqlx::query(RECORD_GUARDIANS)
            .bind(now)
            .execute(&mut *self)
            .await?;
        let withheld: Vec<WithheldRow> = sqlx::query_as(WITHHELD_GRANTS)
            .fetch_all(&mut *self)
            .await?;
        let granted: Vec<i64> = sqlx::query_scalar(GRANT_IMPORTED_CONSENTS)
            .bind(now)
            .fetch_all(&mut *self)
            .await?;
        // People already held may have moved, or lost their guardian's consent: a
        // worker holding a message for them checks again before sending it.
        let (updated, inserted): (Vec<i64>, Vec<i64>) =
            written.into_iter().partition(|&id| id <= last_id);
        // Someone held before whose details, or consents, the rows changed.
        let changed: std::collections::HashSet<i64> = updated
            .iter()
            .copied()
            .chain(granted.iter().copied().filter(|&id| id <= last_id))
            .collect();
        let updated: Vec<Change> = updated.into_iter().map(Change::Contact).collect();
        self.note_changes(&updated).await?;
        sqlx::raw_sql(clear).execute(&mut *self).await?;
        let keys = |rows: Vec<i64>| {
            let mut keys: Vec<u64> = rows.into_iter().map(|key| key as u64).collect();
            keys.sort_unstable();
            keys
        };
        let (refused, underage) = (keys(refused), keys(underage));
        let held = staged - refused.len() - underage.len() - inserted.len();
        Ok(ContactImportOutcome {
            inserted: inserted.len() as u64,
            updated: changed.len() as u64,
            unchanged: held.saturating_sub(changed.len()) as u64,
            consents_recorded: granted.len() as u64,
            refused_erased: refused,
            refused_underage: underage,
            withheld: withheld_grants(withheld)?,
        })
    }
}

impl InTransaction for SqliteConnection {
    const LOCK_CONTACT: &'static str = "SELECT 1 FROM contacts WHERE email_hash = $1";
    const ENABLED_ADMINS: &'static str =
        "SELECT id FROM staff_users WHERE role = 'admin' AND disabled_at IS NULL ORDER BY id";
}

impl InTransaction for PgConnection {
    const LOCK_CONTACT: &'static str =
        "SELECT 1 FROM contacts WHERE email_hash = $1 FOR NO KEY UPDATE";
    const ENABLED_ADMINS: &'static str = "SELECT id FROM staff_users \
         WHERE role = 'admin' AND disabled_at IS NULL ORDER BY id FOR UPDATE";
}
