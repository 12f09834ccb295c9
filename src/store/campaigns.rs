//! Campaigns and their delivery ledger: creating, queueing (set-based, in the database), and the
//! state changes staff make.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};

use super::{
    BeginWrite, CONSTITUENCY_OF_CONTACT, Change, Pool, Result, Store, StoreError, decode_error,
    insert_audit, latest_consent, note_changes, now, on_pool,
};
use crate::domain::{
    Actor, Approval, Audience, CampaignState, CampaignSummary, ConstituencyCode,
    ConstituencyCounts, Coordinates, DeliveryCounts, DraftStage, Email, Event, LinkTag, Near,
    NewCampaign, Postcode, PostcodePrefix, PublicId, ReportCounts, Scope, Sender, TopicSlug,
    latest_birth_date_to_mail,
};

/// Whether audience row `a` names contact `c`'s constituency.
macro_rules! in_constituency {
    () => {
        "(a.kind = 'constituency' AND a.value = c.constituency_code)"
    };
}

/// Whether audience row `a` is a postcode prefix (area, district or sector) contact `c`'s
/// postcode lies under, on whole parts only.
macro_rules! under_prefix {
    () => {
        "((a.kind = 'district' AND c.postcode LIKE a.value || ' %') \
          OR (a.kind = 'sector' AND c.postcode LIKE a.value || '%') \
          OR (a.kind = 'area' AND substr(c.postcode, 1, length(a.value)) = a.value \
              AND substr(c.postcode, length(a.value) + 1, 1) BETWEEN '0' AND '9'))"
    };
}

/// The square of the miles from campaign `k`'s venue to postcode `g`, on the map scaled at the
/// venue ([`crate::domain::Coordinates::miles_to`]): 4773.842649 is
/// [`crate::domain::MILES_PER_DEGREE_NORTH`] squared. NULL where either place is unknown.
macro_rules! squared_miles_from_venue {
    () => {
        "((g.latitude - k.venue_latitude) * (g.latitude - k.venue_latitude) * 4773.842649 \
          + (g.longitude - k.venue_longitude) * (g.longitude - k.venue_longitude) \
            * k.venue_miles_east * k.venue_miles_east)"
    };
}

/// The square of the miles from campaign `k`'s venue to contact `c`'s postcode; NULL without a
/// venue placed, or a postcode.
pub(crate) const SQUARED_MILES_OF_CONTACT: &str = concat!(
    "(SELECT ",
    squared_miles_from_venue!(),
    " FROM postcodes g WHERE g.postcode = c.postcode)"
);

/// Whether contact `c` is one the kept counts count for campaign `k`'s topic: neither
/// restricted nor suppressed, holding the consent in force.
macro_rules! counted {
    () => {
        concat!(
            "c.restricted_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash) \
             AND COALESCE(",
            latest_consent!("c.id", "k.topic_id"),
            ", FALSE)"
        )
    };
}

/// Whether contact `c` is old enough for mail on the send date (`$2`: the latest date of
/// birth of a person old enough then), or has a guardian's consent.
macro_rules! old_enough {
    () => {
        "(c.date_of_birth IS NULL OR c.guardian_consent OR c.date_of_birth <= $2)"
    };
}

/// Whether campaign `k` reaches where `c` lives, from `c.postcode` and `c.constituency_code`
/// alone (a contact, or a postcode of the directory standing in for its people).
///
/// The audience: everyone when it names no one; else anyone in a constituency it names or under
/// a postcode prefix it names; or, narrowed (`postcodes_within`), only those under a prefix who
/// are in a constituency it names. Within the campaign's limit. With a distance rule, only
/// those of them whose postcode lies within its miles of the venue.
macro_rules! reached_where_they_live {
    () => {
        concat!(
            "(NOT EXISTS (SELECT 1 FROM campaign_audience a WHERE a.campaign_id = k.id) \
              OR (NOT k.postcodes_within \
                  AND EXISTS (SELECT 1 FROM campaign_audience a WHERE a.campaign_id = k.id AND (",
            in_constituency!(),
            " OR ",
            under_prefix!(),
            "))) \
              OR (k.postcodes_within \
                  AND EXISTS (SELECT 1 FROM campaign_audience a WHERE a.campaign_id = k.id AND ",
            in_constituency!(),
            ") \
                  AND EXISTS (SELECT 1 FROM campaign_audience a WHERE a.campaign_id = k.id AND (",
            under_prefix!(),
            ")))) \
             AND (NOT k.limited OR EXISTS (SELECT 1 FROM campaign_limits z \
                  WHERE z.campaign_id = k.id AND z.constituency_code = c.constituency_code)) \
             AND (k.within_miles IS NULL OR EXISTS (SELECT 1 FROM postcodes g \
                  WHERE g.postcode = c.postcode AND ",
            squared_miles_from_venue!(),
            " <= k.within_miles * k.within_miles))"
        )
    };
}

/// Who may receive campaign `k` now, for contact `c`: the contract's rule. `$1` is the
/// campaign, `$2` the latest date of birth of a person old enough on the send date. The same
/// text decides the queue and (at claim time) each send: someone the kept counts count, old
/// enough, where the campaign reaches, and never anyone a campaign it excludes was sent to.
pub(crate) const ELIGIBLE: &str = concat!(
    counted!(),
    " AND ",
    old_enough!(),
    " AND ",
    reached_where_they_live!(),
    // Asked first whether the campaign excludes anyone at all: PostgreSQL would otherwise
    // turn the exclusion into an anti-join and read every delivery that was sent to find
    // the first person a campaign reaches (287 ms on a million, 0.9 ms so).
    " AND (NOT EXISTS (SELECT 1 FROM campaign_exclusions e WHERE e.campaign_id = k.id) \
          OR NOT EXISTS (SELECT 1 FROM campaign_exclusions e, deliveries x \
              WHERE e.campaign_id = k.id AND x.campaign_id = e.excluded_campaign_id \
                AND x.contact_id = c.id AND x.state = 'sent'))"
);

/// Deliveries from which a queued campaign has the planner's statistics refreshed.
const LARGE_CAMPAIGN: u64 = 100_000;

/// A campaign as stored.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: i64,
    /// The topic's name, as a message's footer gives it.
    pub topic_name: String,
    pub state: CampaignState,
    /// Why the worker paused it by itself, while it stays paused.
    pub paused_reason: Option<String>,
    /// When a draft is to be queued by itself.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// What its messages' links carry to name it (none for campaigns made before links did).
    pub link_tag: Option<LinkTag>,
    /// The contacts it may reach at most: its maker's constituencies, cut to its approver's.
    pub limit: Scope,
    pub approval: Approval,
    pub spec: NewCampaign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproveOutcome {
    Approved,
    /// It was edited since the approver looked: that version is gone.
    Edited,
    /// The approver wrote a version of it: someone else must approve it.
    Authored,
    /// The approver is not an enabled person of the staff (a token without an owner).
    NotAPerson,
    Refused(CampaignState),
    NotFound,
}

/// What queueing or scheduling a draft did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftOutcome<T> {
    Done(T),
    /// The draft is not cleared for it: this version is not approved (or, for the worker's
    /// scheduled queueing, not the version scheduled, or not due).
    Uncleared,
    /// Only a draft can be queued or scheduled.
    NotDraft(CampaignState),
    NotFound,
}

/// What queueing a draft did: the audience snapshotted, this many deliveries.
pub type QueueOutcome = DraftOutcome<u64>;

/// Whether the digital imprint is set (`CANVASS_IMPRINT`): election material is queued or
/// scheduled only while it is, in the statement that queues or schedules it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imprint {
    Set,
    Missing,
}

impl Imprint {
    pub fn of(imprint: Option<&str>) -> Self {
        match imprint.is_some_and(|text| !text.trim().is_empty()) {
            true => Self::Set,
            false => Self::Missing,
        }
    }

    /// The condition on the `campaigns` row.
    fn clears(self) -> &'static str {
        match self {
            Self::Set => "TRUE",
            Self::Missing => "NOT election_material",
        }
    }
}

/// A change of state staff can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    Pause,
    Resume,
    Cancel,
}

/// What `campaign retry` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// This many failed deliveries are queued again.
    Requeued(u64),
    /// A draft has nothing to retry; a cancelled campaign stays cancelled.
    Refused(CampaignState),
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChangeOutcome {
    Changed(CampaignState),
    /// Not allowed from the campaign's state.
    Refused(CampaignState),
    NotFound,
}

/// What asking for an approval did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// It now waits for an approval of this version.
    Submitted,
    /// It waits already, since then.
    Waiting(DateTime<Utc>),
    /// This version is approved already.
    Approved,
    /// It needs no approval (made at the command line, or approvals are off).
    NotNeeded,
    /// Not a draft.
    Refused(CampaignState),
    NotFound,
}

/// What a message to one recipient shows of them.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub public_id: PublicId,
    pub name: Option<String>,
    pub postcode: Option<String>,
    pub constituency: Option<String>,
    /// How far their postcode is from an event's venue, in miles, where both are placed.
    pub miles_from_venue: Option<f64>,
}

impl Recipient {
    /// Miles from the square of them, as the database gives it.
    pub(crate) fn miles(squared: Option<f64>) -> Option<f64> {
        squared
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(f64::sqrt)
    }
}

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: i64,
    name: String,
    topic: String,
    topic_name: String,
    subject: String,
    html_template: String,
    text_template: Option<String>,
    event_title: Option<String>,
    event_starts_at: Option<DateTime<Utc>>,
    event_venue: Option<String>,
    event_postcode: Option<String>,
    state: String,
    paused_reason: Option<String>,
    scheduled_at: Option<DateTime<Utc>>,
    link_tag: Option<String>,
    markdown: Option<String>,
    from_address: Option<String>,
    reply_to: Option<String>,
    limited: bool,
    version: i64,
    needs_approval: bool,
    created_by: String,
    submitted_at: Option<DateTime<Utc>>,
    approved_version: Option<i64>,
    approved_by: Option<String>,
    approved_at: Option<DateTime<Utc>>,
    election_material: bool,
    postcodes_within: bool,
    within_miles: Option<i64>,
}

/// A campaign's state, read inside the caller's write transaction; `None` when there is no such
/// campaign.
macro_rules! locked_state {
    ($executor:expr, $id:expr) => {{
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM campaigns WHERE id = $1")
            .bind($id)
            .fetch_optional($executor)
            .await?;
        state
            .map(|s| {
                s.parse::<CampaignState>()
                    .map_err(|e| decode_error("state", e))
            })
            .transpose()?
    }};
}

/// Returns `$not_found`, or `$refused(state)`, from the caller unless campaign `$id` is a draft
/// (read inside the caller's write transaction).
macro_rules! require_draft {
    ($conn:expr, $id:expr, $not_found:expr, $refused:expr) => {
        match locked_state!($conn, $id) {
            None => return Ok($not_found),
            Some(CampaignState::Draft) => {}
            Some(state) => return Ok($refused(state)),
        }
    };
}

/// Why a compare-and-set on draft `$id` changed nothing, read inside the caller's write
/// transaction: no such campaign, not a draft, or a draft not cleared.
macro_rules! unchanged_draft {
    ($conn:expr, $id:expr) => {
        match locked_state!($conn, $id) {
            None => DraftOutcome::NotFound,
            Some(CampaignState::Draft) => DraftOutcome::Uncleared,
            Some(state) => DraftOutcome::NotDraft(state),
        }
    };
}

/// What clears a draft to be queued or scheduled by `actor`: a condition on the `campaigns`
/// row, put in the very statement that changes its state, so that no edit or approval can
/// come between the check and the change. Staff need this version approved (when the campaign
/// needs an approval at all). The worker queues a due schedule (`now` is the placeholder of the
/// time now) only at the version it was scheduled for, and only while that version is
/// approved, unless the operator scheduled it. The operator at the command line needs nothing.
fn cleared(actor: &Actor, now: &str) -> String {
    const APPROVED: &str = "(NOT needs_approval OR approved_version = version)";
    match actor {
        Actor::Operator => "TRUE".to_owned(),
        Actor::Staff(_) => APPROVED.to_owned(),
        Actor::Worker => format!(
            "scheduled_at <= {now} AND scheduled_version = version \
             AND ({APPROVED} OR scheduled_by = 'operator')"
        ),
        Actor::Contact | Actor::Retention | Actor::Provider(_) => "FALSE".to_owned(),
    }
}

/// The id of topic `$slug`, read inside the caller's transaction; an unknown one returns
/// [`StoreError::UnknownTopic`] from the caller.
macro_rules! topic_id {
    ($conn:expr, $slug:expr) => {{
        let topic: Option<i64> = sqlx::query_scalar("SELECT id FROM topics WHERE slug = $1")
            .bind($slug.as_str())
            .fetch_optional($conn)
            .await?;
        match topic {
            Some(topic) => topic,
            None => return Err(StoreError::UnknownTopic($slug.to_string())),
        }
    }};
}

/// Where the people [`Store::placed_audience`] counts live.
#[derive(Debug, Clone, Copy)]
enum Area<'a> {
    /// Within so many miles of the venue at this place, from the counts kept by postcode:
    /// everyone the kept counts count there, whatever their age.
    Near(Coordinates, u32),
    /// Within so many miles of the venue at this place, those of [`Area::Near`] whom the age
    /// rule keeps from mail on the day.
    UnderAgeNear(Coordinates, u32),
    /// In postcodes the directory holds with no place.
    Unplaced,
    /// Wherever they are, those these campaigns were sent to (within the campaign's own
    /// distance rule, given with its venue's place).
    SentBy(&'a [i64], Option<(Coordinates, u32)>),
}

/// A `campaign_exclusions` standing in for a campaign not saved: none, for statements that
/// count whom a campaign reaches before taking out whom its exclusions leave out.
const NO_EXCLUSIONS: &str = "campaign_exclusions (campaign_id, excluded_campaign_id) AS \
     (SELECT CAST(0 AS BIGINT), CAST(0 AS BIGINT) WHERE 1 = 0)";

/// The rows of a table standing in for one of a saved campaign's (`campaign_audience`,
/// `campaign_limits`) in a statement about a campaign not saved: `n` rows of campaign 0 and
/// `width` values each, bound from `$next` on (which it moves past them); none at all (of
/// the right width) when `n` is 0.
fn stand_in_rows(n: usize, width: usize, next: &mut usize) -> String {
    let mut rows = vec![format!(
        "SELECT CAST(0 AS BIGINT){} WHERE 1 = 0",
        ", ''".repeat(width)
    )];
    for _ in 0..n {
        let values: Vec<String> = (*next..*next + width).map(|i| format!("${i}")).collect();
        rows.push(format!("SELECT CAST(0 AS BIGINT), {}", values.join(", ")));
        *next += width;
    }
    rows.join(" UNION ALL ")
}

/// Takes `people`, counted by constituency code, out of `counts`.
fn take_out(counts: &mut HashMap<String, u64>, people: Vec<(String, u64)>) {
    for (code, n) in people {
        let held = counts.entry(code).or_default();
        *held = held.saturating_sub(n);
    }
}

/// A campaign's audience as the rows of `campaign_audience`: (kind, value).
fn audience_rows(audience: &Audience) -> Vec<(&'static str, &str)> {
    let constituencies = audience
        .constituencies
        .iter()
        .map(|c| ("constituency", c.as_str()));
    let postcodes = audience.postcodes.iter().map(|p| {
        let kind = match p {
            PostcodePrefix::Area(_) => "area",
            PostcodePrefix::District(_) => "district",
            PostcodePrefix::Sector(_) => "sector",
        };
        (kind, p.as_str())
    });
    constituencies.chain(postcodes).collect()
}

/// Writes every field of `$campaign` and its audience over campaign `$id`, inside the caller's
/// write transaction; a topic that does not exist is [`StoreError::UnknownTopic`].
macro_rules! write_campaign {
    ($conn:expr, $id:expr, $campaign:expr) => {{
        let conn = $conn;
        let campaign: &NewCampaign = $campaign;
        let event = campaign.event.as_ref();
        let topic = topic_id!(&mut *conn, campaign.topic);
        // The venue's place, kept for `{{distance_miles}}` and a distance rule: a rule cannot
        // be measured from a venue the directory does not place.
        let near = campaign.audience.near.as_ref();
        let venue = match event.and_then(|e| e.postcode.as_ref()) {
            None => None,
            Some(postcode) => {
                let place: Option<(Option<f64>, Option<f64>)> =
                    sqlx::query_as("SELECT latitude, longitude FROM postcodes WHERE postcode = $1")
                        .bind(postcode.as_str())
                        .fetch_optional(&mut *conn)
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
        .bind($id)
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
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM campaign_audience WHERE campaign_id = $1")
            .bind($id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM campaign_exclusions WHERE campaign_id = $1")
            .bind($id)
            .execute(&mut *conn)
            .await?;
        for excluded in &campaign.audience.excluding {
            sqlx::query(
                "INSERT INTO campaign_exclusions (campaign_id, excluded_campaign_id) \
                 VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind($id)
            .bind(*excluded)
            .execute(&mut *conn)
            .await?;
        }
        for (kind, value) in audience_rows(&campaign.audience) {
            sqlx::query(
                "INSERT INTO campaign_audience (campaign_id, kind, value) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind($id)
            .bind(kind)
            .bind(value)
            .execute(&mut *conn)
            .await?;
        }
    }};
}

/// Records `$actor` as an author of campaign `$id`, inside the caller's write transaction.
macro_rules! add_author {
    ($conn:expr, $id:expr, $actor:expr) => {
        sqlx::query(
            "INSERT INTO campaign_authors (campaign_id, author) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind($id)
        .bind($actor.to_string())
        .execute($conn)
        .await?
    };
}

/// Sets the contacts campaign `$id` may reach at most to `$scope`, inside the caller's write
/// transaction.
macro_rules! write_limit {
    ($conn:expr, $id:expr, $scope:expr) => {{
        let conn = $conn;
        let scope: &Scope = $scope;
        sqlx::query("UPDATE campaigns SET limited = $2 WHERE id = $1")
            .bind($id)
            .bind(scope.constituencies().is_some())
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM campaign_limits WHERE campaign_id = $1")
            .bind($id)
            .execute(&mut *conn)
            .await?;
        for code in scope.constituencies().unwrap_or_default() {
            sqlx::query(
                "INSERT INTO campaign_limits (campaign_id, constituency_code) VALUES ($1, $2)",
            )
            .bind($id)
            .bind(code.as_str())
            .execute(&mut *conn)
            .await?;
        }
    }};
}

/// Campaigns `scope` sees: all of them for everyone; else those limited to constituencies all
/// within it. `$n` is the first placeholder free for the codes.
fn campaigns_within(scope: &Scope, first: usize) -> String {
    match scope.constituencies() {
        None => "TRUE".to_owned(),
        Some(codes) => {
            let placeholders: Vec<String> = (0..codes.len())
                .map(|i| format!("${}", first + i))
                .collect();
            let outside = match placeholders.is_empty() {
                true => String::new(),
                false => format!(
                    " AND z.constituency_code NOT IN ({})",
                    placeholders.join(", ")
                ),
            };
            format!(
                "k.limited AND NOT EXISTS (SELECT 1 FROM campaign_limits z \
                 WHERE z.campaign_id = k.id{outside})"
            )
        }
    }
}

impl Store {
    /// Stores a draft campaign, reaching no one outside `limit`, and returns its id.
    pub async fn create_campaign(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        needs_approval: bool,
        actor: &Actor,
    ) -> Result<i64> {
        self.insert_campaign(campaign, limit, needs_approval, actor, None)
            .await
    }

    /// Stores a copy of campaign `source` (given as `campaign`) as a new draft, as
    /// [`Store::create_campaign`] does. Whoever wrote any version of the source is an author of
    /// the copy too, in the same transaction: copying someone's words does not let them approve
    /// them.
    pub async fn create_campaign_copy(
        &self,
        source: i64,
        campaign: &NewCampaign,
        limit: &Scope,
        needs_approval: bool,
        actor: &Actor,
    ) -> Result<i64> {
        self.insert_campaign(campaign, limit, needs_approval, actor, Some(source))
            .await
    }

    async fn insert_campaign(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        needs_approval: bool,
        actor: &Actor,
        source: Option<i64>,
    ) -> Result<i64> {
        let id = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let topic = topic_id!(&mut *tx, campaign.topic);
            // A row to write the campaign over, as an edit writes over a draft.
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO campaigns (name, topic_id, subject, html_template, state, \
                     created_by, created_at, updated_at, link_tag) \
                 VALUES ('', $1, '', '', 'draft', $2, $3, $3, $4) RETURNING id",
            )
            .bind(topic)
            .bind(actor.to_string())
            .bind(now())
            .bind(LinkTag::random().to_string())
            .fetch_one(&mut *tx)
            .await?;
            write_campaign!(&mut *tx, id, campaign);
            write_limit!(&mut *tx, id, limit);
            add_author!(&mut *tx, id, actor);
            sqlx::query(
                "INSERT INTO campaign_authors (campaign_id, author) \
                 SELECT $1, author FROM campaign_authors WHERE campaign_id = $2 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(source)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE campaigns SET needs_approval = $2 WHERE id = $1")
                .bind(id)
                .bind(needs_approval)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, actor: actor, action: "campaign.created", contact: None::<i64>,
                detail: Some(format!("campaign {id}")), ip: None::<String>)?;
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Changes a draft: every field and its audience, as `campaign`. It is a new version: any
    /// approval of the old one is withdrawn, and a campaign that needs one is unscheduled (one
    /// that does not stays scheduled, at the new version). The new version is made by the
    /// statement that checks the campaign is still a draft, which on PostgreSQL holds its row
    /// until commit: an edit never lands on a campaign queued meanwhile.
    pub async fn update_draft(
        &self,
        id: i64,
        campaign: &NewCampaign,
        actor: &Actor,
    ) -> Result<StateChangeOutcome> {
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let edited = sqlx::query(
                "UPDATE campaigns SET version = version + 1, edited_by = $2, \
                     submitted_at = NULL, approved_version = NULL, approved_by = NULL, \
                     approved_at = NULL, \
                     scheduled_at = CASE WHEN needs_approval THEN NULL ELSE scheduled_at END, \
                     scheduled_version = CASE WHEN needs_approval OR scheduled_at IS NULL \
                         THEN NULL ELSE version + 1 END \
                 WHERE id = $1 AND state = 'draft'",
            )
            .bind(id)
            .bind(actor.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if edited == 0 {
                let why: DraftOutcome<()> = unchanged_draft!(&mut *tx, id);
                return Ok(match why {
                    DraftOutcome::NotDraft(state) => StateChangeOutcome::Refused(state),
                    _ => StateChangeOutcome::NotFound,
                });
            }
            write_campaign!(&mut *tx, id, campaign);
            add_author!(&mut *tx, id, actor);
            insert_audit!(&mut *tx, actor: actor, action: "campaign.edited", contact: None::<i64>,
                detail: Some(format!("campaign {id}")), ip: None::<String>)?;
            tx.commit().await?;
            StateChangeOutcome::Changed(CampaignState::Draft)
        });
        Ok(outcome)
    }

    pub async fn campaign(&self, id: i64) -> Result<Option<Campaign>> {
        let found = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let row: Option<CampaignRow> = sqlx::query_as(
                "SELECT k.id, k.name, t.slug AS topic, t.name AS topic_name, k.subject, \
                        k.html_template, \
                        k.text_template, k.event_title, k.event_starts_at, k.event_venue, \
                        k.event_postcode, k.state, k.paused_reason, k.scheduled_at, k.link_tag, \
                        k.markdown, k.from_address, k.reply_to, k.limited, k.version, \
                        k.needs_approval, k.created_by, k.submitted_at, \
                        k.approved_version, k.approved_by, k.approved_at, k.election_material, \
                        k.postcodes_within, k.within_miles \
                 FROM campaigns k JOIN topics t ON t.id = k.topic_id WHERE k.id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                None => None,
                Some(row) => {
                    let audience: Vec<(String, String)> = sqlx::query_as(
                        "SELECT kind, value FROM campaign_audience WHERE campaign_id = $1 \
                         ORDER BY kind, value",
                    )
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?;
                    let limits: Vec<String> = sqlx::query_scalar(
                        "SELECT constituency_code FROM campaign_limits WHERE campaign_id = $1",
                    )
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?;
                    let authors: Vec<String> = sqlx::query_scalar(
                        "SELECT author FROM campaign_authors WHERE campaign_id = $1 \
                         ORDER BY author",
                    )
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?;
                    let excluding: Vec<i64> = sqlx::query_scalar(
                        "SELECT excluded_campaign_id FROM campaign_exclusions \
                         WHERE campaign_id = $1 ORDER BY excluded_campaign_id",
                    )
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?;
                    Some((row, audience, limits, authors, excluding))
                }
            }
        });
        let Some((row, rows, limits, authors, excluding)) = found else {
            return Ok(None);
        };
        let limits = limits
            .iter()
            .map(|code| ConstituencyCode::parse(code).map_err(|e| decode_error("limit", e)))
            .collect::<Result<Vec<_>>>()?;
        let limit = match row.limited {
            false => Scope::Everyone,
            true if limits.is_empty() => Scope::nobody(),
            true => Scope::of(limits),
        };
        let approved = row.approved_version == Some(row.version);
        let approval = Approval {
            needed: row.needs_approval,
            version: row.version,
            created_by: row.created_by,
            authors,
            submitted_at: row.submitted_at,
            approved_by: row.approved_by.filter(|_| approved),
            approved_at: row.approved_at.filter(|_| approved),
        };
        let venue = row
            .event_postcode
            .as_deref()
            .map(Postcode::parse)
            .transpose()
            .map_err(|e| decode_error("event postcode", e))?;
        let near = match (row.within_miles, venue) {
            (Some(miles), Some(venue)) => Some(Near {
                miles: u32::try_from(miles).map_err(|e| decode_error("within miles", e))?,
                venue,
            }),
            _ => None,
        };
        let mut audience = Audience {
            postcodes_within: row.postcodes_within,
            near,
            excluding,
            ..Audience::default()
        };
        for (kind, value) in rows {
            if kind == "constituency" {
                let code =
                    ConstituencyCode::parse(&value).map_err(|e| decode_error("audience", e))?;
                audience.constituencies.push(code);
            } else {
                let prefix =
                    PostcodePrefix::parse(&value).map_err(|e| decode_error("audience", e))?;
                audience.postcodes.push(prefix);
            }
        }
        let sender = |held: Option<String>| {
            held.map(|s| Sender::parse(&s))
                .transpose()
                .map_err(|e| decode_error("sender", e))
        };
        let event = match (row.event_title, row.event_starts_at, row.event_venue) {
            (Some(title), Some(starts_at), Some(venue)) => Some(Event {
                title,
                starts_at,
                venue,
                postcode: row
                    .event_postcode
                    .map(|p| Postcode::parse(&p))
                    .transpose()
                    .map_err(|e| decode_error("event postcode", e))?,
            }),
            _ => None,
        };
        Ok(Some(Campaign {
            id: row.id,
            topic_name: row.topic_name,
            state: row.state.parse().map_err(|e| decode_error("state", e))?,
            paused_reason: row.paused_reason,
            scheduled_at: row.scheduled_at,
            link_tag: row
                .link_tag
                .map(|tag| tag.parse())
                .transpose()
                .map_err(|e| decode_error("link tag", e))?,
            limit,
            approval,
            spec: NewCampaign {
                name: row.name,
                topic: TopicSlug::parse(&row.topic).map_err(|e| decode_error("topic", e))?,
                subject: row.subject,
                html_template: row.html_template,
                text_template: row.text_template,
                markdown: row.markdown,
                from: sender(row.from_address)?,
                reply_to: sender(row.reply_to)?,
                audience,
                event,
                election_material: row.election_material,
            },
        }))
    }

    /// The campaigns `scope` sees, oldest first.
    pub async fn list_campaigns(&self, scope: &Scope) -> Result<Vec<CampaignSummary>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            name: String,
            topic: String,
            topic_name: String,
            subject: String,
            state: String,
            created_at: DateTime<Utc>,
            queued_at: Option<DateTime<Utc>>,
            scheduled_at: Option<DateTime<Utc>>,
            needs_approval: bool,
            submitted_at: Option<DateTime<Utc>>,
            approved: bool,
        }
        let sql = format!(
            "SELECT k.id, k.name, t.slug AS topic, t.name AS topic_name, k.subject, k.state, \
                    k.created_at, k.queued_at, k.scheduled_at, k.needs_approval, \
                    k.submitted_at, (k.approved_version IS NOT DISTINCT FROM k.version) AS approved \
             FROM campaigns k JOIN topics t ON t.id = k.topic_id WHERE {} ORDER BY k.id",
            campaigns_within(scope, 1)
        );
        let authors_sql = format!(
            "SELECT a.campaign_id, a.author FROM campaign_authors a \
             JOIN campaigns k ON k.id = a.campaign_id WHERE {} \
             ORDER BY a.campaign_id, a.author",
            campaigns_within(scope, 1)
        );
        let codes = scope.constituencies().unwrap_or_default();
        let (rows, authors): (Vec<Row>, Vec<(i64, String)>) = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for code in codes {
                query = query.bind(code.as_str());
            }
            let rows: Vec<Row> = query.fetch_all(&mut *conn).await?;
            let mut authors = sqlx::query_as(sqlx::AssertSqlSafe(authors_sql));
            for code in codes {
                authors = authors.bind(code.as_str());
            }
            (rows, authors.fetch_all(&mut *conn).await?)
        });
        let mut authors_of: HashMap<i64, Vec<String>> = HashMap::new();
        for (campaign, author) in authors {
            authors_of.entry(campaign).or_default().push(author);
        }
        rows.into_iter()
            .map(|row| {
                let state: CampaignState =
                    row.state.parse().map_err(|e| decode_error("state", e))?;
                Ok(CampaignSummary {
                    stage: (state == CampaignState::Draft).then(|| {
                        DraftStage::of(row.needs_approval, row.submitted_at.is_some(), row.approved)
                    }),
                    awaiting_approval: state == CampaignState::Draft
                        && row.needs_approval
                        && !row.approved,
                    authors: authors_of.remove(&row.id).unwrap_or_default(),
                    id: row.id,
                    name: row.name,
                    topic: row.topic,
                    topic_name: row.topic_name,
                    subject: row.subject,
                    state,
                    created_at: row.created_at,
                    queued_at: row.queued_at,
                    scheduled_at: row.scheduled_at,
                    submitted_at: row.submitted_at,
                })
            })
            .collect()
    }

    /// Who a campaign, saved or not, would reach on `on`, by constituency (code and name;
    /// `None` for those the directory places nowhere), largest first, read from the counts the
    /// database keeps rather than by reading every contact: the people who may be mailed its
    /// topic in the constituencies it names (in all, when it names none) within `limit`; then,
    /// for its postcode prefixes, those [`ELIGIBLE`] finds there outside those constituencies.
    /// The same people as [`Store::audience_size`] counts one by one, and as queueing takes.
    pub async fn audience_counts(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        on: NaiveDate,
    ) -> Result<Vec<(Option<String>, Option<String>, u64)>> {
        let audience = &campaign.audience;
        let named: Vec<&str> = audience
            .constituencies
            .iter()
            .map(ConstituencyCode::as_str)
            .collect();
        let chosen = |code: &str| {
            (audience.is_everyone() || named.contains(&code))
                && limit.covers((!code.is_empty()).then_some(code))
        };
        // The venue's place, for a distance rule: looked up once, for whom it reaches and for
        // whom its exclusions leave out.
        let rule = match &audience.near {
            Some(near) => self.place_of(&near.venue).await?.map(|v| (v, near.miles)),
            None => None,
        };
        let mut counts: HashMap<String, u64> = match rule {
            Some((venue, miles)) => {
                self.near_audience(campaign, venue, miles, limit, on)
                    .await?
            }
            None => HashMap::new(),
        };
        // Narrowed, only the prefixes count, within the constituencies named.
        if audience.near.is_none() && !audience.postcodes_within {
            for ((code, _), n) in self.mailable(Some(&campaign.topic), on).await? {
                if chosen(&code) {
                    *counts.entry(code).or_default() += n;
                }
            }
        }
        if audience.near.is_none() && !audience.postcodes.is_empty() {
            let prefixes = self
                .prefix_audience(campaign, limit, on, &named, audience.postcodes_within)
                .await?;
            for (code, n) in prefixes {
                *counts.entry(code).or_default() += n;
            }
        }
        // Those its exclusions leave out, counted as the rest are, then taken out.
        if !audience.excluding.is_empty() {
            let area = Area::SentBy(&audience.excluding, rule);
            take_out(
                &mut counts,
                self.placed_audience(campaign, limit, on, &area).await?,
            );
        }
        let names: HashMap<String, Option<String>> =
            self.constituency_names().await?.into_iter().collect();
        let mut rows: Vec<(Option<String>, Option<String>, u64)> = counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(code, n)| {
                let name = names.get(&code).cloned().flatten();
                ((!code.is_empty()).then_some(code), name, n)
            })
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        Ok(rows)
    }

    /// Who a campaign with a distance rule reaches on `on`, by constituency code ('' for none):
    /// the counts kept for the postcodes in the box around the venue that the rule reaches
    /// ([`Area::Near`]), less the people there under the age of consent
    /// ([`Area::UnderAgeNear`]). The same people as [`ELIGIBLE`] finds one by one there.
    async fn near_audience(
        &self,
        campaign: &NewCampaign,
        venue: Coordinates,
        miles: u32,
        limit: &Scope,
        on: NaiveDate,
    ) -> Result<HashMap<String, u64>> {
        // The counts by postcode are read as folded (PostgreSQL), not with the changes.
        self.fold_counts_now().await?;
        let area = Area::Near(venue, miles);
        let mut counts: HashMap<String, u64> = self
            .placed_audience(campaign, limit, on, &area)
            .await?
            .into_iter()
            .collect();
        let area = Area::UnderAgeNear(venue, miles);
        take_out(
            &mut counts,
            self.placed_audience(campaign, limit, on, &area).await?,
        );
        Ok(counts)
    }

    /// How many people a campaign would reach on `on` but for its distance rule, whose
    /// postcode has no place on the map, so that the rule leaves them out: those whose
    /// postcode the directory does not hold (or who have none), from the counts kept, and
    /// those in postcodes it holds without a place.
    pub async fn unplaced_audience(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        on: NaiveDate,
    ) -> Result<u64> {
        let mut anywhere = campaign.clone();
        anywhere.audience.near = None;
        let outside: u64 = self
            .audience_counts(&anywhere, limit, on)
            .await?
            .iter()
            .filter(|(code, _, _)| code.is_none())
            .map(|(_, _, n)| n)
            .sum();
        let unplaced: u64 = self
            .placed_audience(&anywhere, limit, on, &Area::Unplaced)
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum();
        Ok(outside + unplaced)
    }

    /// Whom a campaign, saved or not, reaches on `on` among the people whose postcode lies in
    /// `area`, by constituency code ('' for none): the rule ([`ELIGIBLE`]) over the campaign
    /// as it is written, given to the statement as common table expressions standing in for
    /// the tables of a saved campaign, read from the postcodes in the area (a range of the
    /// index of their places), then their contacts.
    async fn placed_audience(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        on: NaiveDate,
        area: &Area<'_>,
    ) -> Result<Vec<(String, u64)>> {
        let rows = audience_rows(&campaign.audience);
        // Only the people left out for want of a place are counted less the campaign's
        // exclusions in the statement; every other area's are taken out by its caller (or,
        // for `SentBy`, are what it counts).
        let excluding: &[i64] = match area {
            Area::Unplaced => &campaign.audience.excluding,
            Area::Near(..) | Area::UnderAgeNear(..) | Area::SentBy(..) => &[],
        };
        let limits: Vec<&str> = limit
            .constituencies()
            .unwrap_or_default()
            .iter()
            .map(ConstituencyCode::as_str)
            .collect();
        // $1 the campaign (0), $2 the birth date, $3 the topic, $4 limited, $5 narrowed,
        // $6 the miles, $7 to $9 the venue; then the values, then the box.
        let mut next = 10;
        let audience = stand_in_rows(rows.len(), 2, &mut next);
        let limit_rows = stand_in_rows(limits.len(), 1, &mut next);
        let mut exclusions =
            vec!["SELECT CAST(0 AS BIGINT), CAST(0 AS BIGINT) WHERE 1 = 0".to_owned()];
        for _ in excluding {
            exclusions.push(format!("SELECT CAST(0 AS BIGINT), CAST(${next} AS BIGINT)"));
            next += 1;
        }
        let exclusions = exclusions.join(" UNION ALL ");
        let (near, venue) = match *area {
            Area::Near(venue, miles)
            | Area::UnderAgeNear(venue, miles)
            | Area::SentBy(_, Some((venue, miles))) => (Some(i64::from(miles)), Some(venue)),
            Area::Unplaced | Area::SentBy(_, None) => (None, None),
        };
        const PLACED: &str = "postcodes b JOIN contacts c ON c.postcode = b.postcode";
        const PEOPLE: &str = "count(*)";
        // The box around the venue, on the postcodes named `postcodes`.
        let in_box = |postcodes: &str| {
            format!(
                "{postcodes}.latitude BETWEEN ${} AND ${} AND {postcodes}.longitude BETWEEN ${} AND ${}",
                next,
                next + 1,
                next + 2,
                next + 3
            )
        };
        let (counted, from, within, rule) = match area {
            // The counts stand in for their people: `c` is a count of the people in one
            // postcode with one constituency kept on them.
            Area::Near(..) => (
                "CAST(sum(c.contacts) AS BIGINT)",
                "postcodes b JOIN mailable_postcode_counts c ON c.postcode = b.postcode",
                format!("{} AND c.topic_id = k.topic_id", in_box("b")),
                reached_where_they_live!(),
            ),
            Area::UnderAgeNear(..) => (
                PEOPLE,
                PLACED,
                format!(
                    "{} AND c.date_of_birth > $2 AND NOT COALESCE(c.guardian_consent, FALSE)",
                    in_box("b")
                ),
                concat!(counted!(), " AND ", reached_where_they_live!()),
            ),
            Area::Unplaced => (PEOPLE, PLACED, "b.latitude IS NULL".to_owned(), ELIGIBLE),
            Area::SentBy(campaigns, _) => {
                let ids: Vec<String> = (next..next + campaigns.len())
                    .map(|i| format!("${i}"))
                    .collect();
                (
                    PEOPLE,
                    "contacts c",
                    format!(
                        "c.id IN (SELECT x.contact_id FROM deliveries x \
                                  WHERE x.state = 'sent' AND x.campaign_id IN ({}))",
                        ids.join(", ")
                    ),
                    ELIGIBLE,
                )
            }
        };
        let sql = format!(
            "WITH campaign_audience (campaign_id, kind, value) AS ({audience}), \
                  campaign_limits (campaign_id, constituency_code) AS ({limit_rows}), \
                  campaign_exclusions (campaign_id, excluded_campaign_id) AS ({exclusions}), \
                  campaigns (id, topic_id, limited, postcodes_within, within_miles, \
                             venue_latitude, venue_longitude, venue_miles_east) AS \
                      (SELECT CAST($1 AS BIGINT), t.id, $4, $5, CAST($6 AS BIGINT), \
                              CAST($7 AS DOUBLE PRECISION), CAST($8 AS DOUBLE PRECISION), \
                              CAST($9 AS DOUBLE PRECISION) \
                       FROM topics t WHERE t.slug = $3) \
             SELECT COALESCE(c.constituency_code, ''), {counted} \
             FROM campaigns k, {from} \
             WHERE k.id = $1 AND {within} AND {rule} \
             GROUP BY c.constituency_code"
        );
        let found: Vec<(String, i64)> = on_pool!(self, |pool| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(0_i64)
                .bind(latest_birth_date_to_mail(on))
                .bind(campaign.topic.as_str())
                .bind(limit.constituencies().is_some())
                .bind(campaign.audience.postcodes_within)
                .bind(near)
                .bind(venue.map(|v| v.latitude))
                .bind(venue.map(|v| v.longitude))
                .bind(venue.map(|v| v.miles_per_degree_east()));
            for (kind, value) in &rows {
                query = query.bind(*kind).bind(*value);
            }
            for code in &limits {
                query = query.bind(*code);
            }
            for excluded in excluding {
                query = query.bind(*excluded);
            }
            if let Area::SentBy(campaigns, _) = area {
                for campaign in campaigns.iter() {
                    query = query.bind(*campaign);
                }
            }
            if let Area::Near(venue, miles) | Area::UnderAgeNear(venue, miles) = *area {
                // A hair wider than the circle: the box only narrows, the exact rule decides.
                let miles = f64::from(miles) * 1.001;
                let north = miles / crate::domain::MILES_PER_DEGREE_NORTH;
                let east = miles / venue.miles_per_degree_east();
                query = query
                    .bind(venue.latitude - north)
                    .bind(venue.latitude + north)
                    .bind(venue.longitude - east)
                    .bind(venue.longitude + east);
            }
            query.fetch_all(pool).await?
        });
        Ok(found
            .into_iter()
            .map(|(code, n)| (code, n.max(0) as u64))
            .collect())
    }

    /// Where the directory places `postcode`, if it does.
    pub async fn place_of(&self, postcode: &Postcode) -> Result<Option<Coordinates>> {
        let place: Option<(Option<f64>, Option<f64>)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT latitude, longitude FROM postcodes WHERE postcode = $1")
                .bind(postcode.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(match place {
            Some((Some(latitude), Some(longitude))) => Some(Coordinates {
                latitude,
                longitude,
            }),
            _ => None,
        })
    }

    /// Who a campaign's postcode prefixes reach on `on` outside the constituencies `named` (or,
    /// `within`, inside them only), by constituency code ('' for none): the rule
    /// ([`ELIGIBLE`]) over the campaign's topic,
    /// prefixes and limit, given to the statement as common table expressions that stand in for
    /// the tables of a saved campaign, and read through the contacts' postcode index, one range
    /// of it per prefix.
    async fn prefix_audience(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        on: NaiveDate,
        named: &[&str],
        within: bool,
    ) -> Result<Vec<(String, u64)>> {
        let prefixes = Audience {
            constituencies: Vec::new(),
            postcodes: campaign.audience.postcodes.clone(),
            postcodes_within: false,
            near: None,
            excluding: Vec::new(),
        };
        let audience = audience_rows(&prefixes);
        let limits: Vec<&str> = limit
            .constituencies()
            .unwrap_or_default()
            .iter()
            .map(ConstituencyCode::as_str)
            .collect();
        let postcode = self.postcode_bytes();
        // $1 the campaign (0), $2 the birth date, $3 the topic, $4 limited; then the values.
        let mut next = 5;
        let rows = stand_in_rows(audience.len(), 2, &mut next);
        let mut ranges = Vec::new();
        for _ in &audience {
            ranges.push(format!(
                "({postcode} >= ${} AND {postcode} < ${})",
                next,
                next + 1
            ));
            next += 2;
        }
        let limit_rows = stand_in_rows(limits.len(), 1, &mut next);
        let mut outside = vec!["''".to_owned()];
        for _ in named {
            outside.push(format!("${next}"));
            next += 1;
        }
        let placed = match within {
            true => format!("p.constituency_code IN ({})", outside.join(", ")),
            false => format!(
                "(p.constituency_code IS NULL OR p.constituency_code NOT IN ({}))",
                outside.join(", ")
            ),
        };
        let sql = format!(
            "WITH campaign_audience (campaign_id, kind, value) AS ({}), \
                  campaign_limits (campaign_id, constituency_code) AS ({}), \
                  {NO_EXCLUSIONS}, \
                  campaigns (id, topic_id, limited, postcodes_within, within_miles, \
                             venue_latitude, venue_longitude, venue_miles_east) AS \
                      (SELECT CAST($1 AS BIGINT), t.id, $4, FALSE, CAST(NULL AS BIGINT), \
                              CAST(NULL AS DOUBLE PRECISION), CAST(NULL AS DOUBLE PRECISION), \
                              CAST(NULL AS DOUBLE PRECISION) \
                       FROM topics t WHERE t.slug = $3) \
             SELECT COALESCE(p.constituency_code, ''), count(*) \
             FROM campaigns k, contacts c \
             LEFT JOIN postcodes p ON p.postcode = c.postcode \
             WHERE k.id = $1 AND ({}) \
               AND {placed} \
               AND {ELIGIBLE} \
             GROUP BY p.constituency_code",
            rows,
            limit_rows,
            ranges.join(" OR "),
        );
        let found: Vec<(String, i64)> = on_pool!(self, |pool| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(0_i64)
                .bind(latest_birth_date_to_mail(on))
                .bind(campaign.topic.as_str())
                .bind(limit.constituencies().is_some());
            for (kind, value) in &audience {
                query = query.bind(*kind).bind(*value);
            }
            // Postcodes are ASCII: everything that starts with the prefix sorts before it
            // followed by DEL.
            for (_, value) in &audience {
                query = query.bind(*value).bind(format!("{value}\u{7f}"));
            }
            for code in &limits {
                query = query.bind(*code);
            }
            for code in named {
                query = query.bind(*code);
            }
            query.fetch_all(pool).await?
        });
        Ok(found
            .into_iter()
            .map(|(code, n)| (code, n as u64))
            .collect())
    }

    /// Marks a draft as waiting for someone's approval of the version it is at: once, and only
    /// when it needs one it has not got, decided by the statement that marks it.
    pub async fn submit_campaign(&self, id: i64, actor: &Actor) -> Result<SubmitOutcome> {
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            require_draft!(
                &mut *tx,
                id,
                SubmitOutcome::NotFound,
                SubmitOutcome::Refused
            );
            let marked = sqlx::query(
                "UPDATE campaigns SET submitted_at = $2 \
                 WHERE id = $1 AND needs_approval AND submitted_at IS NULL \
                   AND approved_version IS DISTINCT FROM version",
            )
            .bind(id)
            .bind(now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                let (needed, submitted, approved): (bool, Option<DateTime<Utc>>, bool) =
                    sqlx::query_as(
                        "SELECT needs_approval, submitted_at, \
                                approved_version IS NOT DISTINCT FROM version \
                         FROM campaigns WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                return Ok(match (needed, approved, submitted) {
                    (false, _, _) => SubmitOutcome::NotNeeded,
                    (true, true, _) => SubmitOutcome::Approved,
                    (true, false, Some(since)) => SubmitOutcome::Waiting(since),
                    (true, false, None) => SubmitOutcome::NotFound,
                });
            }
            insert_audit!(&mut *tx, actor: actor, action: "campaign.submitted",
                contact: None::<i64>, detail: Some(format!("campaign {id}")),
                ip: None::<String>)?;
            tx.commit().await?;
            SubmitOutcome::Submitted
        });
        Ok(outcome)
    }

    /// Approves version `version` of a draft, cutting what it may reach to `limit`; refused
    /// when it has been edited since, when the approver wrote any version of it, or when the
    /// approver is not an enabled person of the staff (a token without an owner is no second
    /// person). All are checked by the statement that records the approval.
    pub async fn approve_campaign(
        &self,
        id: i64,
        version: i64,
        limit: &Scope,
        actor: &Actor,
    ) -> Result<ApproveOutcome> {
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let approved = sqlx::query(
                "UPDATE campaigns SET approved_version = $2, approved_by = $3, approved_at = $4 \
                 WHERE id = $1 AND state = 'draft' AND version = $2 \
                   AND NOT EXISTS (SELECT 1 FROM campaign_authors a \
                                   WHERE a.campaign_id = $1 AND a.author = $3) \
                   AND EXISTS (SELECT 1 FROM staff_users u \
                               WHERE 'staff:' || u.email = $3 AND u.disabled_at IS NULL)",
            )
            .bind(id)
            .bind(version)
            .bind(actor.to_string())
            .bind(now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if approved == 0 {
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM campaigns WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let person: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM staff_users u \
                     WHERE 'staff:' || u.email = $1 AND u.disabled_at IS NULL)",
                )
                .bind(actor.to_string())
                .fetch_one(&mut *tx)
                .await?;
                let why: DraftOutcome<()> = unchanged_draft!(&mut *tx, id);
                return Ok(match why {
                    DraftOutcome::NotFound => ApproveOutcome::NotFound,
                    DraftOutcome::NotDraft(state) => ApproveOutcome::Refused(state),
                    _ if current != Some(version) => ApproveOutcome::Edited,
                    _ if !person => ApproveOutcome::NotAPerson,
                    _ => ApproveOutcome::Authored,
                });
            }
            write_limit!(&mut *tx, id, limit);
            insert_audit!(&mut *tx, actor: actor, action: "campaign.approved",
                contact: None::<i64>, detail: Some(format!("campaign {id} version {version}")),
                ip: None::<String>)?;
            tx.commit().await?;
            ApproveOutcome::Approved
        });
        Ok(outcome)
    }

    /// How many people would receive the campaign if it were sent on `on`.
    pub async fn audience_size(&self, id: i64, on: NaiveDate) -> Result<u64> {
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM campaigns k, contacts c WHERE k.id = $1 AND {ELIGIBLE}"
            )))
            .bind(id)
            .bind(latest_birth_date_to_mail(on))
            .fetch_one(pool)
            .await?
        });
        Ok(count as u64)
    }

    /// Whose values a preview or a test send shows: the contact at `address`, or else the first
    /// person (by id); either way someone the campaign would reach on `on`, so that a test never
    /// shows the details of a person it could not be sent to.
    pub async fn sample_recipient(
        &self,
        id: i64,
        address: Option<&Email>,
        on: NaiveDate,
    ) -> Result<Option<Recipient>> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<f64>,
        );
        let row: Option<Row> = on_pool!(self, |pool| {
            match address {
                Some(address) => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT c.public_id, c.name, c.postcode, {CONSTITUENCY_OF_CONTACT}, \
                                {SQUARED_MILES_OF_CONTACT} \
                         FROM campaigns k, contacts c \
                         WHERE k.id = $1 AND c.email_hash = $3 AND {ELIGIBLE}"
                    )))
                    .bind(id)
                    .bind(latest_birth_date_to_mail(on))
                    .bind(address.hash().as_str().to_owned())
                    .fetch_optional(pool)
                    .await?
                }
                None => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT c.public_id, c.name, c.postcode, {CONSTITUENCY_OF_CONTACT}, \
                                {SQUARED_MILES_OF_CONTACT} \
                         FROM campaigns k, contacts c WHERE k.id = $1 AND {ELIGIBLE} \
                         ORDER BY c.id LIMIT 1"
                    )))
                    .bind(id)
                    .bind(latest_birth_date_to_mail(on))
                    .fetch_optional(pool)
                    .await?
                }
            }
        });
        row.map(|(public_id, name, postcode, constituency, squared)| {
            Ok(Recipient {
                public_id: public_id
                    .parse()
                    .map_err(|e| decode_error("public id", e))?,
                name,
                postcode,
                constituency,
                miles_from_venue: Recipient::miles(squared),
            })
        })
        .transpose()
    }

    /// Snapshots the audience into the delivery ledger, one row per recipient, in one
    /// set-based statement, and marks the campaign queued, at the version it is now. Only a
    /// draft cleared for `actor` ([`cleared`]) is queued: the statement that marks it queued
    /// checks both, and holds the row until commit, so no edit comes between. A draft has no
    /// deliveries, so the insert needs no conflict handling (which costs PostgreSQL a
    /// speculative insertion per row).
    pub async fn queue_campaign(
        &self,
        id: i64,
        actor: &Actor,
        imprint: Imprint,
    ) -> Result<QueueOutcome> {
        let now = now();
        let bound = latest_birth_date_to_mail(now.date_naive());
        let cleared = format!("({}) AND {}", cleared(actor, "$2"), imprint.clears());
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let version: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "UPDATE campaigns SET state = 'queued', queued_at = $2, updated_at = $2, \
                     scheduled_at = NULL, scheduled_version = NULL, queued_version = version \
                 WHERE id = $1 AND state = 'draft' AND {cleared} RETURNING version"
            )))
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(version) = version else {
                return Ok(unchanged_draft!(&mut *tx, id));
            };
            let queued = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO deliveries \
                     (campaign_id, contact_id, state, attempts, updated_at, constituency) \
                 SELECT k.id, c.id, 'queued', 0, $3, c.constituency_code \
                 FROM campaigns k, contacts c \
                 WHERE k.id = $1 AND {ELIGIBLE}"
            )))
            .bind(id)
            .bind(bound)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // The campaign's counts, kept from here on by the deliveries' trigger.
            sqlx::query(
                "INSERT INTO campaign_counts (campaign_id, state, constituency_code, bounced, \
                     complained, unsubscribed, deliveries) \
                 SELECT campaign_id, state, COALESCE(constituency, ''), bounced, complained, \
                     unsubscribed, count(*) \
                 FROM deliveries WHERE campaign_id = $1 GROUP BY 1, 2, 3, 4, 5, 6",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            insert_audit!(&mut *tx, actor: actor, action: "campaign.queued", contact: None::<i64>,
                detail: Some(format!("campaign {id} version {version}: {queued} deliveries")),
                ip: None::<String>)?;
            tx.commit().await?;
            QueueOutcome::Done(queued)
        });
        // A large campaign changes the ledger's shape: PostgreSQL's planner learns of it now,
        // not at autovacuum's next round, so that reports and claims are planned for it.
        if let (Pool::Postgres(pool), QueueOutcome::Done(n)) = (self.pool(), outcome)
            && n >= LARGE_CAMPAIGN
        {
            sqlx::query("ANALYZE deliveries").execute(pool).await?;
        }
        Ok(outcome)
    }

    /// Counts `messages` test messages of campaign `id` against `per_minute` and, when they fit,
    /// records them (and the audit entry) and answers true; false, recording nothing, when they
    /// do not. Campaign `id` exists (the caller has read it).
    pub async fn allow_test_messages(
        &self,
        id: i64,
        messages: u64,
        per_minute: u64,
        actor: &Actor,
    ) -> Result<bool> {
        let now = now();
        let allowed = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // The campaign's row, locked: requests for the same campaign count one by one.
            sqlx::query("UPDATE campaigns SET updated_at = updated_at WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let a_minute_ago = now - chrono::Duration::minutes(1);
            sqlx::query("DELETE FROM test_messages WHERE campaign_id = $1 AND sent_at < $2")
                .bind(id)
                .bind(a_minute_ago)
                .execute(&mut *tx)
                .await?;
            let sent: i64 =
                sqlx::query_scalar("SELECT count(*) FROM test_messages WHERE campaign_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            if sent as u64 + messages > per_minute {
                return Ok(false);
            }
            for _ in 0..messages {
                sqlx::query("INSERT INTO test_messages (campaign_id, sent_at) VALUES ($1, $2)")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            insert_audit!(&mut *tx, actor: actor, action: "campaign.tested", contact: None::<i64>,
                detail: Some(format!("campaign {id}: {messages} test messages")),
                ip: None::<String>)?;
            tx.commit().await?;
            true
        });
        Ok(allowed)
    }

    /// What a campaign's deliveries did, by the constituency of their recipients when it was
    /// queued, largest first: from the counts the database keeps (`campaign_totals`), added up
    /// by constituency here.
    pub async fn campaign_report(&self, id: i64) -> Result<Vec<ConstituencyCounts>> {
        type Group = (String, Option<String>, bool, bool, bool, i64);
        self.fold_counts().await?;
        let (groups, names): (Vec<Group>, Vec<(String, Option<String>)>) = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let groups = sqlx::query_as(
                "SELECT state, NULLIF(constituency_code, ''), bounced, complained, unsubscribed, \
                     deliveries \
                 FROM campaign_totals WHERE campaign_id = $1 AND deliveries <> 0",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
            let names = sqlx::query_as("SELECT code, name FROM constituencies")
                .fetch_all(&mut *conn)
                .await?;
            (groups, names)
        });
        let mut by_code: BTreeMap<Option<String>, ReportCounts> = BTreeMap::new();
        for (state, code, bounced, complained, unsubscribed, n) in groups {
            let n = n as u64;
            let counts = by_code.entry(code).or_default();
            match state.as_str() {
                "queued" => counts.queued += n,
                "sent" => counts.sent += n,
                "failed" => counts.failed += n,
                _ => counts.skipped += n,
            }
            counts.bounced += u64::from(bounced) * n;
            counts.complaints += u64::from(complained) * n;
            counts.unsubscribed += u64::from(unsubscribed) * n;
        }
        let names: HashMap<String, Option<String>> = names.into_iter().collect();
        let mut report: Vec<ConstituencyCounts> = by_code
            .into_iter()
            .map(|(code, counts)| ConstituencyCounts {
                name: code
                    .as_ref()
                    .and_then(|code| names.get(code).cloned().flatten()),
                code,
                counts,
            })
            .collect();
        let size = |c: &ReportCounts| c.queued + c.sent + c.failed + c.skipped;
        report.sort_by(|a, b| {
            size(&b.counts)
                .cmp(&size(&a.counts))
                .then(a.code.cmp(&b.code))
        });
        Ok(report)
    }

    pub async fn delivery_counts(&self, id: i64) -> Result<DeliveryCounts> {
        self.fold_counts().await?;
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT state, CAST(sum(deliveries) AS BIGINT) FROM campaign_totals \
                 WHERE campaign_id = $1 \
                 GROUP BY state",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        let mut counts = DeliveryCounts::default();
        for (state, n) in rows {
            let n = n as u64;
            match state.as_str() {
                "queued" => counts.queued = n,
                "sent" => counts.sent = n,
                "failed" => counts.failed = n,
                "skipped" => counts.skipped = n,
                other => return Err(decode_error("delivery state", other)),
            }
        }
        Ok(counts)
    }

    /// Queues again the deliveries that failed for a reason other than the recipient's address
    /// (a relay's refusal, a server that kept putting them off). A finished campaign is sent
    /// again; a paused one waits for its resume. Each recipient is checked again when sent.
    pub async fn retry_campaign(&self, id: i64, actor: &Actor) -> Result<RetryOutcome> {
        let now = now();
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let Some(state) = locked_state!(&mut *tx, id) else {
                return Ok(RetryOutcome::NotFound);
            };
            if matches!(state, CampaignState::Draft | CampaignState::Cancelled) {
                return Ok(RetryOutcome::Refused(state));
            }
            let requeued = sqlx::query(
                "UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_at = NULL, \
                     outcome = NULL, updated_at = $2 \
                 WHERE campaign_id = $1 AND state = 'failed' AND NOT bounced",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if requeued > 0 {
                sqlx::query(
                    "UPDATE campaigns SET state = 'queued', updated_at = $2 \
                     WHERE id = $1 AND state = 'done'",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                insert_audit!(&mut *tx, actor: actor, action: "campaign.retried",
                    contact: None::<i64>, detail: Some(format!("campaign {id}: {requeued}")),
                    ip: None::<String>)?;
                tx.commit().await?;
            }
            RetryOutcome::Requeued(requeued)
        });
        Ok(outcome)
    }

    /// Schedules a draft to be queued by itself at `at` (`None`: unschedules it), at the
    /// version it is now: only a draft cleared for `actor` ([`cleared`]), checked by the
    /// statement that schedules it. The time is checked by the caller
    /// ([`crate::domain::parse_schedule`]).
    pub async fn schedule_campaign(
        &self,
        id: i64,
        at: Option<DateTime<Utc>>,
        actor: &Actor,
        imprint: Imprint,
    ) -> Result<DraftOutcome<()>> {
        let now = now();
        let cleared = match at {
            Some(_) => format!("({}) AND {}", cleared(actor, "$3"), imprint.clears()),
            None => "TRUE".to_owned(),
        };
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let scheduled = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE campaigns SET scheduled_at = $2, updated_at = $3, scheduled_by = $4, \
                     scheduled_version = CASE WHEN $2 IS NULL THEN NULL ELSE version END \
                 WHERE id = $1 AND state = 'draft' AND {cleared}"
            )))
            .bind(id)
            .bind(at)
            .bind(now)
            .bind(at.map(|_| actor.to_string()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if scheduled == 0 {
                return Ok(unchanged_draft!(&mut *tx, id));
            }
            let (action, detail) = match at {
                Some(at) => (
                    "campaign.scheduled",
                    format!("campaign {id} for {}", at.to_rfc3339()),
                ),
                None => ("campaign.unscheduled", format!("campaign {id}")),
            };
            insert_audit!(&mut *tx, actor: actor, action: action, contact: None::<i64>,
                detail: Some(detail), ip: None::<String>)?;
            tx.commit().await?;
            DraftOutcome::Done(())
        });
        Ok(outcome)
    }

    /// When the next scheduled draft is due, if any is scheduled.
    pub async fn next_scheduled(&self) -> Result<Option<DateTime<Utc>>> {
        let next = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT scheduled_at FROM campaigns WHERE scheduled_at IS NOT NULL \
                 AND state = 'draft' AND scheduled_version = version \
                 ORDER BY scheduled_at LIMIT 1",
            )
            .fetch_optional(pool)
            .await?
        });
        Ok(next)
    }

    /// Queues every scheduled draft whose time has come, taking its audience now; the ids
    /// queued, with how many deliveries each.
    pub async fn queue_due_campaigns(&self, imprint: Imprint) -> Result<Vec<(i64, u64)>> {
        let due: Vec<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM campaigns WHERE scheduled_at IS NOT NULL \
                 AND scheduled_at <= $1 AND state = 'draft' AND scheduled_version = version \
                 ORDER BY scheduled_at",
            )
            .bind(now())
            .fetch_all(pool)
            .await?
        });
        let mut queued = Vec::new();
        for id in due {
            // Another worker may have queued it first, or someone changed it since: the
            // statement that queues it checks it is still due, at the version scheduled.
            if let QueueOutcome::Done(n) = self.queue_campaign(id, &Actor::Worker, imprint).await? {
                queued.push((id, n));
            }
        }
        Ok(queued)
    }

    /// Pauses, resumes or cancels a campaign. Cancelling skips every delivery not yet sent.
    pub async fn change_campaign_state(
        &self,
        id: i64,
        change: StateChange,
        actor: &Actor,
    ) -> Result<StateChangeOutcome> {
        use CampaignState::{Cancelled, Draft, Paused, Queued};
        let now = now();
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let Some(state) = locked_state!(&mut *tx, id) else {
                return Ok(StateChangeOutcome::NotFound);
            };
            let next = match (change, state) {
                (StateChange::Pause, Queued) => Paused,
                // A queued campaign "resumed" sends what waits for a retry at once.
                (StateChange::Resume, Paused | Queued) => Queued,
                (StateChange::Cancel, Draft | Queued | Paused) => Cancelled,
                _ => return Ok(StateChangeOutcome::Refused(state)),
            };
            sqlx::query(
                "UPDATE campaigns SET state = $2, paused_reason = NULL, updated_at = $3 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(next.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if next == Cancelled {
                // A row a worker holds keeps its lease: should the message go out before the
                // worker hears of the cancel, its result is still recorded as what happened.
                sqlx::query(
                    "UPDATE deliveries SET state = 'skipped', outcome = 'campaign cancelled', \
                         updated_at = $2 \
                     WHERE campaign_id = $1 AND state = 'queued'",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            let action = format!("campaign.{}", next.as_str());
            insert_audit!(&mut *tx, actor: actor, action: action.as_str(), contact: None::<i64>,
                detail: Some(format!("campaign {id}")), ip: None::<String>)?;
            if next == Queued {
                // Resumed: whatever waits for a retry goes now, not after its backoff.
                sqlx::query(
                    "UPDATE deliveries SET next_attempt_at = NULL \
                     WHERE campaign_id = $1 AND state = 'queued' AND next_attempt_at IS NOT NULL",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            note_changes!(&mut *tx, &[Change::Campaign(id)]);
            tx.commit().await?;
            StateChangeOutcome::Changed(next)
        });
        Ok(outcome)
    }
}
