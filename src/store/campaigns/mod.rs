//! Campaigns and their delivery ledger: creating, queueing (set-based, in the database), and the
//! state changes staff make. Here: who may be mailed ([`ELIGIBLE`], the one rule every send
//! uses) and the types; beside it:
//!
//! - `drafts`: creating a campaign or a copy, and changing a draft.
//! - `read`: one campaign whole, and the list within a person's scope.
//! - `audience`: the live counts of who a campaign reaches, and a sample recipient.
//! - `lifecycle`: submitting, approving, queueing, scheduling, retrying, pausing, cancelling.
//! - `report`: what became of a campaign's messages.

use chrono::{DateTime, Utc};

use super::latest_consent;
use crate::domain::{Actor, Approval, CampaignState, LinkTag, NewCampaign, PublicId, Scope};

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
        if imprint.is_some_and(|text| !text.trim().is_empty()) {
            Self::Set
        } else {
            Self::Missing
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

// After the macros above, which they use.
mod audience;
mod drafts;
pub(super) use drafts::audience_rows;
mod lifecycle;
mod read;
mod report;
