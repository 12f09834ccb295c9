//! The domain: the types every other layer speaks in, each parsed once at the edge.
//!
//! Nothing here knows about storage, HTTP or the command line.

mod access;
mod age;
mod audit;
mod calendar;
mod campaign;
mod constituency;
mod contact;
mod contact_draft;
mod delivery_status;
mod email;
mod place;
mod postcode;
mod privacy;
mod publisher;
mod rate;
mod registers;
mod remote_images;
mod report;
mod schedule;
mod sender;
mod staff;
mod topic;
mod words;

pub use access::{
    MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Password, PasswordError, Role, RoleError, SESSION_IDLE,
    SESSION_LONGEST, Scope, SessionUse, StaffMember,
};
pub use age::{AGE_OF_CONSENT, latest_birth_date_to_mail, old_enough_to_mail};
pub use audit::AuditAction;
pub use calendar::{BankHolidays, day_name, days_after, months_after, uk_date, uk_day, uk_time};
pub use campaign::{
    Approval, Audience, CampaignChanges, CampaignDraft, CampaignDraftError, CampaignState,
    CampaignSummary, DraftStage, Event, LinkTag, NewCampaign,
};
pub use constituency::{ConstituencyCode, ConstituencyCodeError};
pub use contact::{
    Actor, AuditEntry, ConsentEntry, ConstituencyExport, ContactExport, CurrentConsent,
    GuardianConsent, MessageExport, Name, NameError, NewContact, PublicId, SignupExport,
    SuppressionExport, SuppressionReason, time_ordered_uuid,
};
pub use contact_draft::{
    CONSENT_CLOCK_SKEW, ContactDraft, ContactDraftError, ContactRules, MAX_SOURCE_LEN, parse_source,
};
pub use delivery_status::{DeliveryStatus, DeliveryStatusError};
pub use email::{Email, EmailError, EmailHash, parse_message_id};
pub use place::{Coordinates, MILES_PER_DEGREE_NORTH, Near, WITHIN_MILES};
pub use postcode::{Postcode, PostcodeError, PostcodePrefix};
pub use privacy::{ICO_COMPLAINTS, Information, InformationFor, PrivacyText, Purpose};
pub use publisher::Publisher;
pub use rate::Rate;
pub use registers::{
    ACKNOWLEDGE_WITHIN_DAYS, Channel, ClockError, ComplaintStatus, Pause, Reference, Register,
    RequestClock, RequestStatus, Right, acknowledge_by, days_left,
};
pub use remote_images::first_remote_resource;
pub use report::{CampaignReport, ConstituencyCounts, DeliveryCounts, ReportCounts};
pub use schedule::{ScheduleError, parse_schedule};
pub use sender::Sender;
pub use staff::{StaffName, StaffNameError, StaffSecret, StaffTokenHash};
pub use topic::{Topic, TopicNameError, TopicSlug, TopicSlugError};
pub use words::{counted, listed, thousands};
