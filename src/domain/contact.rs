//! A contact and what is recorded about them: details, consent, suppression, audit.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{Email, Postcode, Scope, StaffMember, TopicSlug};

/// The longest name canvass keeps.
const MAX_NAME_LEN: usize = 200;

/// A UUIDv7: 48 bits of milliseconds, then 74 random bits. Ids made one after another sort
/// one after another, so that their index is appended to rather than written all over.
pub fn time_ordered_uuid() -> uuid::Uuid {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid()
}

/// A contact's public identifier, what links and exports carry: a UUID of version 7, the
/// millisecond it was made followed by 74 random bits. It reveals neither the address nor how
/// many contacts there are, and cannot be guessed (links are signed besides); being in the order
/// contacts are made, a bulk import appends to its index instead of writing all over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PublicId(uuid::Uuid);

impl PublicId {
    pub fn generate() -> Self {
        Self(time_ordered_uuid())
    }

    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl FromStr for PublicId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("name contains control characters")]
    ControlCharacters,
}

/// A person's name as they gave it: trimmed, single line, of reasonable length.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Parses a name; an empty one is no name at all.
    pub fn parse(input: &str) -> Result<Option<Self>, NameError> {
        let name = input.trim();
        if name.is_empty() {
            return Ok(None);
        }
        if name.chars().count() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::ControlCharacters);
        }
        Ok(Some(Self(name.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Name(..)")
    }
}

/// Why an address is never to be mailed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SuppressionReason {
    Unsubscribed,
    Erased,
    Bounced,
    Complaint,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsubscribed => "unsubscribed",
            Self::Erased => "erased",
            Self::Bounced => "bounced",
            Self::Complaint => "complaint",
        }
    }
}

impl FromStr for SuppressionReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unsubscribed" => Ok(Self::Unsubscribed),
            "erased" => Ok(Self::Erased),
            "bounced" => Ok(Self::Bounced),
            "complaint" => Ok(Self::Complaint),
            other => Err(format!("unknown suppression reason '{other}'")),
        }
    }
}

/// Who acts, and so what they may see and change; the audit log records them by name (never
/// a contact's address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Someone at the command line of the server: everything, no approval needed.
    Operator,
    /// A member of staff, through the console or an API token: their role and constituencies.
    Staff(StaffMember),
    /// The contact themselves, through a signed link.
    Contact,
    /// The delivery worker, acting on what a mail server said (a bounce, a run of failures).
    Worker,
    /// The retention period running out (`CANVASS_RETENTION_MONTHS`), under `serve`.
    Retention,
    /// A mail provider's verified webhook (`ses`, `mailgun`, `postmark`, `sendgrid`).
    Provider(&'static str),
}

impl Actor {
    /// The contacts this actor may see and act on.
    pub fn scope(&self) -> &Scope {
        static EVERYONE: Scope = Scope::Everyone;
        match self {
            Self::Staff(member) => &member.scope,
            _ => &EVERYONE,
        }
    }

    /// Whether this actor may change anything.
    pub fn writes(&self) -> bool {
        match self {
            Self::Staff(member) => member.role.writes(),
            _ => true,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operator => f.write_str("operator"),
            Self::Staff(member) => write!(f, "staff:{}", member.name),
            Self::Contact => f.write_str("contact"),
            Self::Worker => f.write_str("worker"),
            Self::Retention => f.write_str("retention"),
            Self::Provider(name) => write!(f, "provider:{name}"),
        }
    }
}

/// One contact as an import supplies it, already parsed.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub email: Email,
    pub name: Option<Name>,
    pub postcode: Option<Postcode>,
    pub date_of_birth: Option<NaiveDate>,
    /// `None` when the source says nothing, which keeps what is held (false for a new contact).
    pub guardian_consent: Option<bool>,
    /// The evidence of that consent, when the source gives it (required for a child under 14).
    pub guardian: Option<GuardianConsent>,
    /// Topics the person agreed to hear about by email.
    pub topics: Vec<TopicSlug>,
    /// When they agreed.
    pub consent_at: DateTime<Utc>,
    /// Whether `consent_at` is evidence the source gave (the row's own date, or the date of the
    /// whole list), rather than the moment it was saved. Only a dated grant later than a
    /// withdrawal of the same topic overrides it: an old list never subscribes again someone who
    /// has since withdrawn.
    pub consent_dated: bool,
    /// Where the agreement was given (a form, an event sign-up sheet...).
    pub consent_source: String,
}

/// A guardian's consent for a child, as evidence: who gave it, how they are related to the
/// child, when and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct GuardianConsent {
    pub guardian: String,
    pub relationship: String,
    pub given_at: DateTime<Utc>,
    /// A signed form, a phone call...
    pub method: String,
}

/// Everything canvass holds on one person: the answer to a subject access request, and the
/// portable copy of their data.
#[derive(Debug, Clone, Serialize)]
pub struct ContactExport {
    pub public_id: PublicId,
    pub email: String,
    pub name: Option<String>,
    pub postcode: Option<String>,
    pub constituency: Option<ConstituencyExport>,
    pub date_of_birth: Option<NaiveDate>,
    pub guardian_consent: bool,
    /// The evidence of the guardian's consent, when one was given.
    pub guardian: Option<GuardianConsent>,
    pub restricted: bool,
    pub source: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The consent in force for each topic the person has ever been asked about.
    pub consents: Vec<CurrentConsent>,
    /// Every grant and withdrawal, oldest first.
    pub consent_history: Vec<ConsentEntry>,
    pub suppression: Option<SuppressionExport>,
    pub audit: Vec<AuditEntry>,
    /// Sign-ups for the address waiting for (or recently given) their confirmation; they are
    /// forgotten after seven days.
    pub signups: Vec<SignupExport>,
    /// Every message sent to the person, oldest first.
    pub messages: Vec<MessageExport>,
}

/// A message canvass sent to the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MessageExport {
    pub campaign: String,
    pub subject: String,
    /// The topic it was sent under: what the person had agreed to hear about.
    pub topic: String,
    pub sent_at: DateTime<Utc>,
    /// The Message-ID header it carried, to match a complaint or a bounce with it.
    pub message_id: Option<String>,
}

/// A public sign-up as held until it is purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SignupExport {
    pub created_at: DateTime<Utc>,
    pub name: Option<String>,
    pub postcode: Option<String>,
    /// Topic slugs, comma-separated.
    pub topics: String,
    pub wording: String,
    pub ip: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConstituencyExport {
    pub code: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CurrentConsent {
    pub topic: String,
    pub granted: bool,
    pub at: DateTime<Utc>,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ConsentEntry {
    pub topic: String,
    pub channel: String,
    pub granted: bool,
    pub source: String,
    pub at: DateTime<Utc>,
    pub wording: Option<String>,
    pub ip: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuppressionExport {
    pub reason: SuppressionReason,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub detail: Option<String>,
    pub ip: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_trimmed_and_empty_means_none() {
        assert_eq!(
            Name::parse("  Jo Bloggs ").unwrap().unwrap().as_str(),
            "Jo Bloggs"
        );
        assert!(Name::parse("   ").unwrap().is_none());
    }

    #[test]
    fn name_refuses_control_characters_and_excess_length() {
        assert_eq!(
            Name::parse("Jo\nBcc: x").unwrap_err(),
            NameError::ControlCharacters
        );
        assert_eq!(
            Name::parse(&"x".repeat(201)).unwrap_err(),
            NameError::TooLong
        );
    }

    #[test]
    fn public_ids_are_random_and_round_trip() {
        let a = PublicId::generate();
        assert_ne!(a, PublicId::generate());
        assert_eq!(a.to_string().parse::<PublicId>().unwrap(), a);
    }

    #[test]
    fn suppression_reasons_round_trip() {
        for reason in [
            SuppressionReason::Unsubscribed,
            SuppressionReason::Erased,
            SuppressionReason::Bounced,
            SuppressionReason::Complaint,
        ] {
            assert_eq!(
                reason.as_str().parse::<SuppressionReason>().unwrap(),
                reason
            );
        }
    }
}
