//! Campaigns: what is sent, about which topic, to whom.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    ConstituencyCode, Near, Postcode, PostcodePrefix, ScheduleError, Sender, TopicSlug,
    parse_schedule,
};

/// Who a campaign is for: anyone in any listed constituency or under any listed postcode prefix;
/// or, narrowed, only those under the prefixes within the constituencies. Empty: everyone who
/// consented to the topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    pub constituencies: Vec<ConstituencyCode>,
    pub postcodes: Vec<PostcodePrefix>,
    /// Only the people under the postcodes who are within the constituencies (both are given),
    /// instead of everyone in either.
    pub postcodes_within: bool,
    /// Only the people within some miles of the event's venue, besides the rules above (an
    /// event mailing with a venue postcode only).
    pub near: Option<Near>,
    /// Campaigns whose recipients it leaves out (those whose message the relay took): a copy
    /// for the people who have not had one.
    pub excluding: Vec<i64>,
}

impl Audience {
    pub fn is_everyone(&self) -> bool {
        self.constituencies.is_empty() && self.postcodes.is_empty()
    }

    /// Whether everyone it reaches lies in a constituency: it names constituencies, and any
    /// postcodes it names are only within them.
    pub fn everyone_placed(&self) -> bool {
        !self.constituencies.is_empty() && (self.postcodes.is_empty() || self.postcodes_within)
    }

    /// Who it is, in words, the constituencies named by `name_of`: "everyone in Stevenage, and
    /// everyone in SG13 and SG14 wherever they are", "people in SG13 and SG14 within
    /// Stevenage".
    pub fn in_words(&self, name_of: impl Fn(&ConstituencyCode) -> String) -> String {
        let places: Vec<String> = self.constituencies.iter().map(name_of).collect();
        let areas: Vec<&str> = self.postcodes.iter().map(PostcodePrefix::as_str).collect();
        let (places, areas) = (super::listed(&places), super::listed(&areas));
        let rules = match (places.is_empty(), areas.is_empty(), self.postcodes_within) {
            (true, true, _) if self.near.is_some() => "everyone".to_owned(),
            (true, true, _) => "everyone who agreed to hear about its topic".to_owned(),
            (false, true, _) => format!("everyone in {places}"),
            (true, false, _) => format!("everyone in {areas}"),
            (false, false, false) => {
                format!("everyone in {places}, and everyone in {areas} wherever they are")
            }
            (false, false, true) => format!("only people in {areas} within {places}"),
        };
        match &self.near {
            Some(near) if self.is_everyone() => format!("{rules} {near}"),
            Some(near) => format!("{rules}; of them, only those {near}"),
            None => rules,
        }
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
    /// The Markdown the HTML template is made from, when staff wrote it so (the application
    /// makes the template: canvass's layout around the rendered Markdown).
    pub markdown: Option<String>,
    pub audience: Audience,
    pub event: Option<Event>,
    /// Its own From, instead of the configured one.
    pub from: Option<Sender>,
    /// Its own Reply-To, instead of the configured one.
    pub reply_to: Option<Sender>,
    /// Material promoting a party or candidate to people who are not only members: it carries
    /// the digital imprint, and is never queued while none is set (Elections Act 2022).
    pub election_material: bool,
}

/// A campaign as staff write it, before parsing: from the command line's flags and files, or
/// from the staff API's JSON (whose document its schema describes). One parse, so both refuse
/// the same things.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct CampaignDraft {
    pub name: String,
    pub topic: String,
    pub subject: String,
    /// Handlebars HTML; or write `markdown` instead.
    #[serde(default)]
    pub html_template: String,
    pub text_template: Option<String>,
    /// Markdown (raw HTML in it is escaped), placed in canvass's email layout; instead of
    /// `html_template`.
    pub markdown: Option<String>,
    /// `Name <address>`: a From of its own, at the configured From's domain or one of
    /// `CANVASS_SENDER_DOMAINS`.
    pub from: Option<String>,
    /// `Name <address>`: a Reply-To of its own.
    pub reply_to: Option<String>,
    #[serde(default)]
    pub constituencies: Vec<String>,
    #[serde(default)]
    pub postcodes: Vec<String>,
    /// With both constituencies and postcodes: only the people under the postcodes who are
    /// within the constituencies (`false`: everyone in either).
    #[serde(default)]
    pub postcodes_within_constituencies: bool,
    /// Only the people within this many miles (1 to 100) of the event's postcode, besides the
    /// rules above: an event mailing with a postcode only.
    pub within_miles: Option<u32>,
    /// Campaigns whose recipients it leaves out: set by copying a campaign for the people who
    /// have not had it, never by a draft's author.
    #[serde(skip)]
    pub excluding: Vec<i64>,
    pub event_title: Option<String>,
    /// RFC 3339.
    pub event_starts_at: Option<String>,
    pub event_venue: Option<String>,
    pub event_postcode: Option<String>,
    /// Promotes a party or candidate to people who are not only members: it must carry the
    /// digital imprint (`CANVASS_IMPRINT`), and is not queued or scheduled without one.
    #[serde(default)]
    pub election_material: bool,
}

/// A stored campaign as a draft again, to be changed and parsed anew.
impl From<&NewCampaign> for CampaignDraft {
    fn from(campaign: &NewCampaign) -> Self {
        let event = campaign.event.as_ref();
        Self {
            name: campaign.name.clone(),
            topic: campaign.topic.to_string(),
            subject: campaign.subject.clone(),
            // A Markdown campaign's template is made from its Markdown, not edited.
            html_template: match campaign.markdown {
                Some(_) => String::new(),
                None => campaign.html_template.clone(),
            },
            text_template: campaign.text_template.clone(),
            markdown: campaign.markdown.clone(),
            from: campaign.from.as_ref().map(ToString::to_string),
            reply_to: campaign.reply_to.as_ref().map(ToString::to_string),
            constituencies: campaign
                .audience
                .constituencies
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            postcodes: campaign
                .audience
                .postcodes
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            postcodes_within_constituencies: campaign.audience.postcodes_within,
            within_miles: campaign.audience.near.as_ref().map(|near| near.miles),
            excluding: campaign.audience.excluding.clone(),
            event_title: event.map(|e| e.title.clone()),
            event_starts_at: event.map(|e| e.starts_at.to_rfc3339()),
            event_venue: event.map(|e| e.venue.clone()),
            event_postcode: event
                .and_then(|e| e.postcode.as_ref())
                .map(|p| p.as_str().to_owned()),
            election_material: campaign.election_material,
        }
    }
}

/// What staff change in a campaign: each field given replaces what the campaign has (the
/// command line's flags to `campaign edit`, the staff API's `PATCH`).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct CampaignChanges {
    pub name: Option<String>,
    pub topic: Option<String>,
    pub subject: Option<String>,
    /// Replaces the Markdown, if any.
    pub html_template: Option<String>,
    pub text_template: Option<String>,
    /// Replaces the HTML template, if any.
    pub markdown: Option<String>,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    /// Replaces the constituencies (codes or unique names).
    pub constituencies: Option<Vec<String>>,
    /// Replaces the postcode prefixes.
    pub postcodes: Option<Vec<String>>,
    /// Only the people under the postcodes within the constituencies, or everyone in either.
    pub postcodes_within_constituencies: Option<bool>,
    /// Only the people within this many miles of the event's postcode; 0 takes the distance
    /// rule away.
    pub within_miles: Option<u32>,
    pub event_title: Option<String>,
    /// RFC 3339.
    pub event_starts_at: Option<String>,
    pub event_venue: Option<String>,
    pub event_postcode: Option<String>,
    /// Whether it is election material.
    pub election_material: Option<bool>,
}

impl CampaignChanges {
    /// The draft these changes make of `base`.
    pub fn over(self, mut base: CampaignDraft) -> CampaignDraft {
        fn given<T>(change: Option<T>, held: &mut T) {
            if let Some(value) = change {
                *held = value;
            }
        }
        given(self.name, &mut base.name);
        given(self.topic, &mut base.topic);
        given(self.subject, &mut base.subject);
        if let Some(html) = self.html_template {
            base.html_template = html;
            base.markdown = None;
        }
        if let Some(markdown) = self.markdown {
            base.markdown = Some(markdown);
            base.html_template = String::new();
        }
        base.from = self.from.or(base.from);
        base.reply_to = self.reply_to.or(base.reply_to);
        given(self.constituencies, &mut base.constituencies);
        given(self.postcodes, &mut base.postcodes);
        given(
            self.postcodes_within_constituencies,
            &mut base.postcodes_within_constituencies,
        );
        if let Some(miles) = self.within_miles {
            base.within_miles = (miles > 0).then_some(miles);
        }
        base.text_template = self.text_template.or(base.text_template);
        base.event_title = self.event_title.or(base.event_title);
        base.event_starts_at = self.event_starts_at.or(base.event_starts_at);
        base.event_venue = self.event_venue.or(base.event_venue);
        given(self.election_material, &mut base.election_material);
        base.event_postcode = self.event_postcode.or(base.event_postcode);
        base
    }
}

/// What is wrong with a draft, and in which field (named as in [`CampaignDraft`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CampaignDraftError {
    pub field: &'static str,
    pub message: String,
}

impl CampaignDraft {
    /// Parses every field before anything is stored. The templates are checked separately
    /// (`Templates::compile`), against the parsed campaign.
    /// An event that has already begun by `now` is refused: nobody can come to it.
    pub fn parse(self, now: DateTime<Utc>) -> Result<NewCampaign, CampaignDraftError> {
        let wrong = |field: &'static str, message: String| CampaignDraftError { field, message };
        let one_line = |field: &'static str, value: &str| {
            let value = value.trim();
            if value.is_empty() {
                return Err(wrong(field, "is required".into()));
            }
            if value.chars().any(char::is_control) {
                Err(wrong(field, "must be one line of text".into()))
            } else {
                Ok(value.to_owned())
            }
        };
        let name = one_line("name", &self.name)?;
        let topic = match self.topic.trim() {
            "" => return Err(wrong("topic", "is required".into())),
            topic => TopicSlug::parse(topic).map_err(|e| wrong("topic", e.to_string()))?,
        };
        let subject = one_line("subject", &self.subject)?;
        let markdown = self.markdown.filter(|m| !m.trim().is_empty());
        match (self.html_template.trim().is_empty(), &markdown) {
            (true, None) => {
                return Err(wrong(
                    "html_template",
                    "is required (or markdown instead)".into(),
                ));
            }
            (false, Some(_)) => {
                return Err(wrong(
                    "markdown",
                    "give html_template or markdown, not both".into(),
                ));
            }
            _ => {}
        }
        let sender = |field: &'static str, value: Option<String>| {
            value
                .filter(|v| !v.trim().is_empty())
                .map(|v| Sender::parse(&v).map_err(|e| wrong(field, e)))
                .transpose()
        };
        let from = sender("from", self.from)?;
        let reply_to = sender("reply_to", self.reply_to)?;
        let audience = Audience {
            constituencies: self
                .constituencies
                .iter()
                .map(|c| {
                    ConstituencyCode::parse(c).map_err(|e| wrong("constituencies", e.to_string()))
                })
                .collect::<Result<_, _>>()?,
            postcodes: self
                .postcodes
                .iter()
                .map(|p| PostcodePrefix::parse(p).map_err(|e| wrong("postcodes", e.to_string())))
                .collect::<Result<_, _>>()?,
            postcodes_within: self.postcodes_within_constituencies,
            near: None,
            excluding: self.excluding,
        };
        if audience.postcodes_within
            && (audience.constituencies.is_empty() || audience.postcodes.is_empty())
        {
            return Err(wrong(
                "postcodes_within_constituencies",
                "takes both constituencies and postcode areas: only the people under the \
                 postcodes who are within the constituencies"
                    .into(),
            ));
        }
        let event = match (self.event_title, self.event_starts_at, self.event_venue) {
            (None, None, None) if self.event_postcode.is_none() => None,
            (Some(title), Some(starts_at), Some(venue)) => Some(Event {
                title: one_line("event_title", &title)?,
                // RFC 3339, or a UK time as staff write it (`2026-12-05 19:30`).
                starts_at: parse_schedule(&starts_at, now).map_err(|e| {
                    let why = match e {
                        ScheduleError::InThePast(at) => {
                            format!("{at} has passed: an event mailing is for an event to come")
                        }
                        other => other.to_string(),
                    };
                    wrong("event_starts_at", why)
                })?,
                venue: one_line("event_venue", &venue)?,
                postcode: self
                    .event_postcode
                    .as_deref()
                    .map(Postcode::parse)
                    .transpose()
                    .map_err(|e| wrong("event_postcode", e.to_string()))?,
            }),
            _ => {
                return Err(wrong(
                    "event_title",
                    "an event mailing needs event_title, event_starts_at and event_venue".into(),
                ));
            }
        };
        let mut audience = audience;
        if let Some(miles) = self.within_miles {
            let venue = event.as_ref().and_then(|e| e.postcode.as_ref());
            audience.near = Some(Near::parse(miles, venue).map_err(|e| wrong("within_miles", e))?);
        }
        Ok(NewCampaign {
            name,
            topic,
            subject,
            html_template: self.html_template,
            text_template: self.text_template,
            markdown,
            audience,
            event,
            from,
            reply_to,
            election_material: self.election_material,
        })
    }
}

/// What a campaign's links carry to name it: random, so that it tells nobody how many
/// campaigns there are or which came when. 8 bytes, written as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkTag([u8; LinkTag::LEN]);

impl LinkTag {
    pub const LEN: usize = 8;

    pub fn random() -> Self {
        let mut bytes = [0; Self::LEN];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Display for LinkTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl FromStr for LinkTag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wrong = || format!("'{s}' is not a link tag");
        if s.len() != 2 * Self::LEN || !s.is_ascii() {
            return Err(wrong());
        }
        let mut bytes = [0; Self::LEN];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| wrong())?;
        }
        Ok(Self(bytes))
    }
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

/// Where a campaign made by staff stands with its second person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Approval {
    /// Whether it waits for an approval before staff may queue or schedule it.
    pub needed: bool,
    /// Moves on with every edit.
    pub version: i64,
    /// Who made it, as the audit log names them.
    pub created_by: String,
    /// Everyone who wrote any version of it, as the audit log names them: none may approve it.
    pub authors: Vec<String>,
    /// When its author asked for an approval of this version.
    pub submitted_at: Option<DateTime<Utc>>,
    /// Who approved this version, and when; `None` once an edit made a new one.
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
}

impl Approval {
    /// Whether staff may queue or schedule it now.
    pub fn cleared(&self) -> bool {
        !self.needed || self.approved_by.is_some()
    }

    /// Whether `name` (as the audit log has it) wrote any version of it.
    pub fn written_by(&self, name: &str) -> bool {
        self.authors.iter().any(|author| author == name)
    }
}

/// A campaign as listed.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignSummary {
    pub id: i64,
    pub name: String,
    /// Its topic's short name (slug), and the name people read.
    pub topic: String,
    pub topic_name: String,
    pub subject: String,
    pub state: CampaignState,
    pub created_at: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    /// When a draft is to be queued by itself.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Where a draft stands with its approval; `None` past the draft.
    pub stage: Option<DraftStage>,
    /// A draft that waits for an approval it does not have (asked for or not).
    pub awaiting_approval: bool,
    /// When its author asked for an approval of the version there is now.
    pub submitted_at: Option<DateTime<Utc>>,
    /// Everyone who wrote any version of it, as the audit log names them.
    pub authors: Vec<String>,
}

/// Where a draft stands with the second person who must approve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftStage {
    /// Being written: no approval asked for (or none needed).
    Draft,
    /// Its author asked for an approval of this version, not yet given.
    WaitingForApproval,
    /// This version is approved: it may be scheduled or sent.
    Approved,
}

impl DraftStage {
    pub fn of(needs_approval: bool, submitted: bool, approved: bool) -> Self {
        match (needs_approval, approved, submitted) {
            (false, _, _) => Self::Draft,
            (true, true, _) => Self::Approved,
            (true, false, true) => Self::WaitingForApproval,
            (true, false, false) => Self::Draft,
        }
    }

    /// As staff read it.
    pub fn words(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::WaitingForApproval => "waiting for approval",
            Self::Approved => "approved",
        }
    }
}
