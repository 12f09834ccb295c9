//! The data protection officer's registers: rights requests and complaints, each numbered from
//! 1 each year, each change audited in its own transaction. The audit entries name the entry by
//! its reference, not the person's contact: erasing the person leaves the register's trail.
//!
//! The rules of a request's clock are the domain's ([`RequestClock`]); each statement here that
//! changes a clock also carries the part of them that a concurrent change could break (one open
//! pause, one extension, nothing after closing), so that two staff acting at once cannot both
//! succeed.

use chrono::{DateTime, NaiveDate, Utc};

use super::{BeginWrite, Result, Store, decode_error, now, on_pool, stored_hash};
use crate::domain::{
    Actor, AuditAction, Channel, Email, EmailHash, Pause, Reference, Register, RequestClock, Right,
};

/// How many times a new entry tries for the year's next number when another took it first
/// (PostgreSQL: two staff opening requests at once).
mod complaints;

pub use complaints::{Complaint, NewComplaint};

const NUMBER_TRIES: usize = 20;

/// A rights request as the register holds it.
#[derive(Debug, Clone)]
pub struct RightsRequest {
    pub reference: Reference,
    pub right: Right,
    pub channel: Channel,
    pub clock: RequestClock,
    pub extension_reason: Option<String>,
    pub outcome: Option<String>,
    pub opened_at: DateTime<Utc>,
    /// The public id of the contact the request is about, while one is held at that address.
    pub subject: Option<String>,
    /// The hash of the subject's address: who it is about, after their erasure too.
    pub subject_hash: EmailHash,
}

/// A request as staff record it.
#[derive(Debug, Clone)]
pub struct NewRequest<'a> {
    pub right: Right,
    pub email: &'a Email,
    pub received: NaiveDate,
    pub channel: Channel,
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: i64,
    year: i32,
    number: i32,
    kind: String,
    email_hash: String,
    received: NaiveDate,
    channel: String,
    extended_on: Option<NaiveDate>,
    extension_reason: Option<String>,
    closed_on: Option<NaiveDate>,
    outcome: Option<String>,
    opened_at: DateTime<Utc>,
    subject: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PauseRow {
    request_id: i64,
    from_date: NaiveDate,
    until_date: Option<NaiveDate>,
}

const SELECT_REQUESTS: &str = "\
    SELECT r.id, r.year, r.number, r.kind, r.email_hash, r.received, r.channel, r.extended_on, \
           r.extension_reason, r.closed_on, r.outcome, r.opened_at, \
           (SELECT c.public_id FROM contacts c WHERE c.email_hash = r.email_hash) AS subject \
    FROM rights_requests r";

/// A year and number as the database holds them.
fn number_of(reference: &Reference) -> (i32, i32) {
    (reference.year, reference.number as i32)
}

impl Store {
    /// Opens a request, numbered next in the year of its receipt, and audits it.
    pub async fn open_request(&self, request: &NewRequest<'_>, actor: &Actor) -> Result<Reference> {
        let hash = request.email.hash();
        self.numbered(
            Register::Requests,
            request.received,
            "INSERT INTO rights_requests (year, number, kind, email_hash, received, channel, \
                                          opened_at) \
             SELECT $1, COALESCE(MAX(number), 0) + 1, $2, $3, $4, $5, $6 \
             FROM rights_requests WHERE year = $1 \
             ON CONFLICT (year, number) DO NOTHING RETURNING number",
            &[
                Value::Text(request.right.as_str()),
                Value::Text(hash.as_str()),
                Value::Date(request.received),
                Value::Text(request.channel.as_str()),
                Value::Time(now()),
            ],
            (
                AuditAction::RequestOpened,
                format!(
                    "{} received {} by {}",
                    request.right, request.received, request.channel
                ),
            ),
            actor,
        )
        .await
    }

    /// Inserts an entry numbered next in its register for the year of `received` (`statement`,
    /// its `$1` the year, `$2` on the `values`, returning the number), and audits it, in one
    /// transaction. Tries again when another entry
    /// took the number first.
    async fn numbered(
        &self,
        register: Register,
        received: NaiveDate,
        statement: &'static str,
        values: &[Value<'_>],
        audit: (AuditAction, String),
        actor: &Actor,
    ) -> Result<Reference> {
        for _ in 0..NUMBER_TRIES {
            let once = self.numbered_once(register, received, statement, values, &audit, actor);
            if let Some(reference) = once.await? {
                return Ok(reference);
            }
        }
        Err(super::StoreError::Unavailable)
    }

    /// One try of [`Store::numbered`]: `None` when another entry took the number first (or the
    /// statement's own guard refused it).
    async fn numbered_once(
        &self,
        register: Register,
        received: NaiveDate,
        statement: &'static str,
        values: &[Value<'_>],
        (action, detail): &(AuditAction, String),
        actor: &Actor,
    ) -> Result<Option<Reference>> {
        let year = chrono::Datelike::year(&received);
        let number: Option<i32> = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut query = sqlx::query_scalar(statement).bind(year);
            for value in values {
                query = bind!(query, value);
            }
            let number: Option<i32> = query.fetch_optional(&mut *tx).await?;
            if let Some(number) = number {
                let detail = format!("{}: {detail}", reference(register, year, number));
                tx.audit(Audit::of(actor, *action, detail)).await?;
                tx.commit().await?;
            }
            number
        });
        Ok(number.map(|number| reference(register, year, number)))
    }

    /// The request with that reference.
    pub async fn rights_request(&self, reference: &Reference) -> Result<Option<RightsRequest>> {
        let (year, number) = number_of(reference);
        let rows: Vec<RequestRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_REQUESTS} WHERE r.year = $1 AND r.number = $2"
            )))
            .bind(year)
            .bind(number)
            .fetch_all(pool)
            .await?
        });
        Ok(self.with_pauses(rows).await?.pop())
    }

    /// The requests, open ones only unless `all`, oldest first.
    pub async fn rights_requests(&self, all: bool) -> Result<Vec<RightsRequest>> {
        let rows: Vec<RequestRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_REQUESTS} WHERE $1 OR r.closed_on IS NULL ORDER BY r.received, r.id"
            )))
            .bind(all)
            .fetch_all(pool)
            .await?
        });
        self.with_pauses(rows).await
    }

    /// The requests about the person at `hash`, oldest first.
    pub async fn rights_requests_about(&self, hash: &EmailHash) -> Result<Vec<RightsRequest>> {
        let rows: Vec<RequestRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_REQUESTS} WHERE r.email_hash = $1 ORDER BY r.received, r.id"
            )))
            .bind(hash.as_str())
            .fetch_all(pool)
            .await?
        });
        self.with_pauses(rows).await
    }

    async fn with_pauses(&self, rows: Vec<RequestRow>) -> Result<Vec<RightsRequest>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let (least, most) = (ids.iter().min().copied(), ids.iter().max().copied());
        let pauses: Vec<PauseRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT request_id, from_date, until_date FROM request_pauses \
                 WHERE request_id BETWEEN $1 AND $2 ORDER BY request_id, from_date",
            )
            .bind(least)
            .bind(most)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|row| {
                let pauses = pauses
                    .iter()
                    .filter(|p| p.request_id == row.id)
                    .map(|p| Pause {
                        from: p.from_date,
                        until: p.until_date,
                    })
                    .collect();
                Ok(RightsRequest {
                    reference: reference(Register::Requests, row.year, row.number),
                    right: row.kind.parse().map_err(|e| decode_error("kind", e))?,
                    channel: row
                        .channel
                        .parse()
                        .map_err(|e| decode_error("channel", e))?,
                    clock: RequestClock {
                        received: row.received,
                        extended_on: row.extended_on,
                        pauses,
                        closed_on: row.closed_on,
                    },
                    extension_reason: row.extension_reason,
                    outcome: row.outcome,
                    opened_at: row.opened_at,
                    subject: row.subject,
                    subject_hash: stored_hash(&row.email_hash)?,
                })
            })
            .collect()
    }

    /// Stops a request's clock from `from`; `false` when it is closed or paused already, or
    /// `from` falls within a pause before.
    pub async fn pause_request(
        &self,
        reference: &Reference,
        from: NaiveDate,
        actor: &Actor,
    ) -> Result<bool> {
        self.change(
            reference,
            actor,
            (AuditAction::RequestPaused, format!("waiting from {from}")),
            "INSERT INTO request_pauses (request_id, from_date) \
             SELECT id, $3 FROM rights_requests \
             WHERE year = $1 AND number = $2 AND closed_on IS NULL \
               AND NOT EXISTS (SELECT 1 FROM request_pauses p \
                               WHERE p.request_id = rights_requests.id \
                                 AND (p.until_date IS NULL OR p.until_date > $3)) \
             ON CONFLICT DO NOTHING",
            &[Value::Date(from)],
        )
        .await
    }

    /// Starts a request's clock again on `on`; `false` when it is not paused.
    pub async fn resume_request(
        &self,
        reference: &Reference,
        on: NaiveDate,
        actor: &Actor,
    ) -> Result<bool> {
        self.change(
            reference,
            actor,
            (
                AuditAction::RequestResumed,
                format!("the clock runs again from {on}"),
            ),
            "UPDATE request_pauses SET until_date = $3 \
             WHERE until_date IS NULL AND from_date <= $3 \
               AND request_id = (SELECT id FROM rights_requests \
                                 WHERE year = $1 AND number = $2 AND closed_on IS NULL)",
            &[Value::Date(on)],
        )
        .await
    }

    /// Records that the person was told on `notified` of two months more, and why; `false`
    /// when the request is closed or was extended already.
    pub async fn extend_request(
        &self,
        reference: &Reference,
        notified: NaiveDate,
        reason: &str,
        actor: &Actor,
    ) -> Result<bool> {
        self.change(
            reference,
            actor,
            (
                AuditAction::RequestExtended,
                format!("two months more, told on {notified}: {reason}"),
            ),
            "UPDATE rights_requests SET extended_on = $3, extension_reason = $4 \
             WHERE year = $1 AND number = $2 AND closed_on IS NULL AND extended_on IS NULL",
            &[Value::Date(notified), Value::Text(reason)],
        )
        .await
    }

    /// Closes a request on `on` with its outcome, ending a pause still open; `false` when it is
    /// closed already.
    pub async fn close_request(
        &self,
        reference: &Reference,
        on: NaiveDate,
        outcome: &str,
        actor: &Actor,
    ) -> Result<bool> {
        let closed = self
            .change(
                reference,
                actor,
                (
                    AuditAction::RequestClosed,
                    format!("closed on {on}: {outcome}"),
                ),
                "UPDATE rights_requests SET closed_on = $3, outcome = $4 \
                 WHERE year = $1 AND number = $2 AND closed_on IS NULL",
                &[Value::Date(on), Value::Text(outcome)],
            )
            .await?;
        // A pause still open ends with the request (in a statement of its own: the clock of a
        // closed request stands still whatever it says).
        let (year, number) = number_of(reference);
        on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            sqlx::query(
                "UPDATE request_pauses SET until_date = \
                     CASE WHEN from_date > $3 THEN from_date ELSE $3 END \
                 WHERE until_date IS NULL AND request_id = \
                     (SELECT id FROM rights_requests WHERE year = $1 AND number = $2)",
            )
            .bind(year)
            .bind(number)
            .bind(on)
            .execute(pool)
            .await?;
        });
        Ok(closed)
    }

    /// Audits an act done for a request (`contact.erased` for REQ-2026-0001...).
    pub async fn note_request_act(
        &self,
        reference: &Reference,
        act: &str,
        actor: &Actor,
    ) -> Result<()> {
        self.change(
            reference,
            actor,
            (AuditAction::RequestActed, act.to_owned()),
            "SELECT 1 FROM rights_requests WHERE year = $1 AND number = $2",
            &[],
        )
        .await
        .map(drop)
    }

    /// Runs a guarded change of one entry of a register (`statement`, its `$1` and `$2` the
    /// reference's year and number, `$3` on the `values`) and audits it in the same
    /// transaction; `false`, changing nothing, when no row was changed.
    async fn change(
        &self,
        reference: &Reference,
        actor: &Actor,
        (action, detail): (AuditAction, String),
        statement: &'static str,
        values: &[Value<'_>],
    ) -> Result<bool> {
        let (year, number) = number_of(reference);
        let detail = format!("{reference}: {detail}");
        let changed = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut query = sqlx::query(statement).bind(year).bind(number);
            for value in values {
                query = bind!(query, value);
            }
            let changed = if statement.starts_with("SELECT") {
                query.fetch_optional(&mut *tx).await?.is_some()
            } else {
                query.execute(&mut *tx).await?.rows_affected() > 0
            };
            if changed {
                tx.audit(Audit::of(actor, action, detail)).await?;
                tx.commit().await?;
            }
            changed
        });
        Ok(changed)
    }
}

/// A value bound after a register entry's year (and number).
enum Value<'a> {
    Date(NaiveDate),
    Text(&'a str),
    Maybe(Option<&'a str>),
    Time(DateTime<Utc>),
    Count(Option<i64>),
}

/// Binds a [`Value`] to a query of either engine.
macro_rules! bind {
    ($query:expr, $value:expr) => {
        match *$value {
            Value::Date(date) => $query.bind(date),
            Value::Text(text) => $query.bind(text),
            Value::Maybe(text) => $query.bind(text),
            Value::Time(at) => $query.bind(at),
            Value::Count(n) => $query.bind(n),
        }
    };
}
use crate::store::{Audit, InTransaction};
use bind;

/// A reference from the database's year and number.
fn reference(register: Register, year: i32, number: i32) -> Reference {
    Reference {
        register,
        year,
        number: number.max(0) as u32,
    }
}
