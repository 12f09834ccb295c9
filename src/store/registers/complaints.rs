//! The complaints register: each complaint logged with its reference, acknowledged and closed,
//! each change audited by its reference.

use super::{NUMBER_TRIES, Value, number_of, reference};
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{
    Actor, AuditAction, Channel, ComplaintStatus, Email, EmailHash, Reference, Register,
};
use crate::store::{Result, Store, decode_error, now, on_pool};

/// A complaint as the register holds it.
#[derive(Debug, Clone)]
pub struct Complaint {
    pub reference: Reference,
    pub received: NaiveDate,
    pub channel: Channel,
    pub summary: String,
    /// The complainant's address, until they are erased.
    pub email: Option<String>,
    pub message_id: Option<String>,
    pub acknowledged_on: Option<NaiveDate>,
    pub closed_on: Option<NaiveDate>,
    pub outcome: Option<String>,
    pub logged_at: DateTime<Utc>,
}

impl Complaint {
    pub fn status(&self) -> ComplaintStatus {
        match (self.closed_on, self.acknowledged_on) {
            (Some(_), _) => ComplaintStatus::Closed,
            (None, Some(_)) => ComplaintStatus::Acknowledged,
            (None, None) => ComplaintStatus::Received,
        }
    }
}

/// A complaint as it is logged.
#[derive(Debug, Clone)]
pub struct NewComplaint<'a> {
    pub received: NaiveDate,
    pub channel: Channel,
    pub summary: &'a str,
    pub email: Option<&'a Email>,
    /// Whether the address is kept to answer to, or only its hash (someone erased).
    pub keep_address: bool,
    pub message_id: Option<&'a str>,
}

#[derive(sqlx::FromRow)]
pub(super) struct ComplaintRow {
    year: i32,
    number: i32,
    received: NaiveDate,
    channel: String,
    summary: String,
    email: Option<String>,
    message_id: Option<String>,
    acknowledged_on: Option<NaiveDate>,
    closed_on: Option<NaiveDate>,
    outcome: Option<String>,
    logged_at: DateTime<Utc>,
}

pub(super) const SELECT_COMPLAINTS: &str = "\
    SELECT year, number, received, channel, summary, email, message_id, acknowledged_on, \
           closed_on, outcome, logged_at \
    FROM complaints";

impl Store {
    /// Logs a complaint, numbered next in the year of its receipt, and audits it; `None` when
    /// the complainant has made `limit` complaints in the hour (the public page's limit,
    /// checked by the statement that inserts: two at once cannot both pass it, since they race
    /// for one number and the loser counts again).
    pub async fn log_complaint(
        &self,
        complaint: &NewComplaint<'_>,
        limit: Option<u64>,
        actor: &Actor,
    ) -> Result<Option<Reference>> {
        let hash = complaint.email.map(Email::hash);
        let now = now();
        let hour_ago = now - chrono::Duration::hours(1);
        let values = [
            Value::Date(complaint.received),
            Value::Text(complaint.channel.as_str()),
            Value::Text(complaint.summary),
            Value::Maybe(
                complaint
                    .email
                    .filter(|_| complaint.keep_address)
                    .map(Email::as_str),
            ),
            Value::Maybe(hash.as_ref().map(EmailHash::as_str)),
            Value::Maybe(complaint.message_id),
            Value::Time(now),
            Value::Count(limit.map(|n| n as i64)),
            Value::Time(hour_ago),
        ];
        let audit = (
            AuditAction::ComplaintLogged,
            format!("received {} by {}", complaint.received, complaint.channel),
        );
        for _ in 0..NUMBER_TRIES {
            let logged = self.numbered_once(
                Register::Complaints,
                complaint.received,
                "INSERT INTO complaints (year, number, received, channel, summary, email, \
                                         email_hash, message_id, logged_at) \
                 SELECT $1, (SELECT COALESCE(MAX(number), 0) + 1 FROM complaints \
                             WHERE year = $1), \
                        $2, $3, $4, $5, $6, $7, $8 \
                 WHERE $9 IS NULL \
                    OR (SELECT count(*) FROM complaints \
                        WHERE email_hash = $6 AND logged_at >= $10) < $9 \
                 ON CONFLICT (year, number) DO NOTHING RETURNING number",
                &values,
                &audit,
                actor,
            );
            if let Some(reference) = logged.await? {
                return Ok(Some(reference));
            }
            if let (Some(limit), Some(hash)) = (limit, &hash)
                && self.complaints_since(Some(hash), hour_ago).await? >= limit
            {
                return Ok(None);
            }
        }
        Err(crate::store::StoreError::Unavailable)
    }

    /// The complaint with that reference.
    pub async fn complaint(&self, reference: &Reference) -> Result<Option<Complaint>> {
        let (year, number) = number_of(reference);
        let row: Option<ComplaintRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_COMPLAINTS} WHERE year = $1 AND number = $2"
            )))
            .bind(year)
            .bind(number)
            .fetch_optional(pool)
            .await?
        });
        row.map(complaint_of).transpose()
    }

    /// The complaints, open ones only unless `all`, oldest first.
    pub async fn complaints(&self, all: bool) -> Result<Vec<Complaint>> {
        let rows: Vec<ComplaintRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_COMPLAINTS} WHERE $1 OR closed_on IS NULL ORDER BY received, id"
            )))
            .bind(all)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(complaint_of).collect()
    }

    /// How many complaints the address at `hash` made since `since`; or, with no address, how
    /// many the public page took.
    pub async fn complaints_since(
        &self,
        hash: Option<&EmailHash>,
        since: DateTime<Utc>,
    ) -> Result<u64> {
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT count(*) FROM complaints WHERE logged_at >= $2 \
                 AND (email_hash = $1 OR ($1 IS NULL AND channel = 'web'))",
            )
            .bind(hash.map(EmailHash::as_str))
            .bind(since)
            .fetch_one(pool)
            .await?
        });
        Ok(count as u64)
    }

    /// The complaints made by the person at `hash`, oldest first.
    pub async fn complaints_by(&self, hash: &EmailHash) -> Result<Vec<Complaint>> {
        let rows: Vec<ComplaintRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_COMPLAINTS} WHERE email_hash = $1 ORDER BY received, id"
            )))
            .bind(hash.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(complaint_of).collect()
    }

    /// Records the acknowledgement sent on `on`; `false` when it was acknowledged already or is
    /// closed.
    pub async fn acknowledge_complaint(
        &self,
        reference: &Reference,
        on: NaiveDate,
        actor: &Actor,
    ) -> Result<bool> {
        self.change(
            reference,
            actor,
            (
                AuditAction::ComplaintAcknowledged,
                format!("acknowledged on {on}"),
            ),
            "UPDATE complaints SET acknowledged_on = $3 \
             WHERE year = $1 AND number = $2 AND acknowledged_on IS NULL AND closed_on IS NULL \
               AND received <= $3",
            &[Value::Date(on)],
        )
        .await
    }

    /// Closes a complaint on `on` with its outcome (an answer acknowledges it, if nothing did
    /// before); `false` when it is closed already.
    pub async fn close_complaint(
        &self,
        reference: &Reference,
        on: NaiveDate,
        outcome: &str,
        actor: &Actor,
    ) -> Result<bool> {
        self.change(
            reference,
            actor,
            (
                AuditAction::ComplaintClosed,
                format!("closed on {on}: {outcome}"),
            ),
            "UPDATE complaints SET closed_on = $3, outcome = $4, \
                 acknowledged_on = COALESCE(acknowledged_on, $3) \
             WHERE year = $1 AND number = $2 AND closed_on IS NULL AND received <= $3",
            &[Value::Date(on), Value::Text(outcome)],
        )
        .await
    }
}

pub(super) fn complaint_of(row: ComplaintRow) -> Result<Complaint> {
    Ok(Complaint {
        reference: reference(Register::Complaints, row.year, row.number),
        received: row.received,
        channel: row
            .channel
            .parse()
            .map_err(|e| decode_error("channel", e))?,
        summary: row.summary,
        email: row.email,
        message_id: row.message_id,
        acknowledged_on: row.acknowledged_on,
        closed_on: row.closed_on,
        outcome: row.outcome,
        logged_at: row.logged_at,
    })
}
