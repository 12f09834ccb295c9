//! Campaigns: what is sent, about which topic, to whom.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ConstituencyCode, Postcode, PostcodePrefix, TopicSlug};

/// Who a campaign is for: anyone in any listed constituency or under any listed postcode prefix.
/// Empty: everyone who consented to the topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    pub constituencies: Vec<ConstituencyCode>,
    pub postcodes: Vec<PostcodePrefix>,
}

impl Audience {
    pub fn is_everyone(&self) -> bool {
        self.constituencies.is_empty() && self.postcodes.is_empty()
    }
}

/// An event mailing's event, which its templates can show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub venue: String,
    pub postcode: Option<Postcode>,
}

/// A campaign as staff describe it, parsed.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub topic: TopicSlug,
    pub subject: String,
    pub html_template: String,
    /// `None`: the text part is derived from the HTML.
    pub text_template: Option<String>,
    pub audience: Audience,
    pub event: Option<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    /// Created, not yet queued: its audience is not fixed.
    Draft,
    /// Its deliveries are being sent.
    Queued,
    Paused,
    Cancelled,
    /// Nothing left to send.
    Done,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Queued => "queued",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Done => "done",
        }
    }
}

impl FromStr for CampaignState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "draft" => Self::Draft,
            "queued" => Self::Queued,
            "paused" => Self::Paused,
            "cancelled" => Self::Cancelled,
            "done" => Self::Done,
            other => return Err(format!("unknown campaign state '{other}'")),
        })
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a campaign's deliveries stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryCounts {
    pub queued: u64,
    pub sent: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// A campaign as listed.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignSummary {
    pub id: i64,
    pub name: String,
    pub topic: String,
    pub subject: String,
    pub state: CampaignState,
    pub created_at: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
}
