//! What became of a campaign's messages, as counted for its report: by delivery state, and by
//! constituency.

use super::CampaignState;

use serde::Serialize;

/// How a campaign's deliveries stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryCounts {
    pub queued: u64,
    pub sent: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// What a campaign's messages did, over some of its deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReportCounts {
    /// Waiting to be sent (or to be retried).
    pub queued: u64,
    /// Accepted by the mail server.
    pub sent: u64,
    pub failed: u64,
    /// Not sent: the person withdrew, was suppressed or restricted, or the campaign was
    /// cancelled.
    pub skipped: u64,
    /// Reported undeliverable, at once or later by a bounce report.
    pub bounced: u64,
    /// Reported as spam by the recipient.
    pub complaints: u64,
    /// People who unsubscribed through this campaign's links.
    pub unsubscribed: u64,
}

impl std::ops::AddAssign for ReportCounts {
    fn add_assign(&mut self, other: Self) {
        self.queued += other.queued;
        self.sent += other.sent;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.bounced += other.bounced;
        self.complaints += other.complaints;
        self.unsubscribed += other.unsubscribed;
    }
}

/// The counts of one constituency's recipients (where they lived when the campaign was queued).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConstituencyCounts {
    /// `None`: recipients whose postcode placed them in no constituency.
    pub code: Option<String>,
    pub name: Option<String>,
    #[serde(flatten)]
    pub counts: ReportCounts,
}

/// What a campaign did, in total and by constituency. canvass counts no opens and no clicks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CampaignReport {
    pub id: i64,
    pub name: String,
    #[schema(value_type = String)]
    pub state: CampaignState,
    /// In total: `queued`, `sent`, `failed`, `skipped`, `bounced`, `complaints`,
    /// `unsubscribed`.
    #[serde(flatten)]
    pub total: ReportCounts,
    /// Largest first.
    pub by_constituency: Vec<ConstituencyCounts>,
}
