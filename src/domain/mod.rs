//! The domain: the types every other layer speaks in, each parsed once at the edge.
//!
//! Nothing here knows about storage, HTTP or the command line.

mod age;
mod campaign;
mod constituency;
mod contact;
mod email;
mod postcode;
mod publisher;
mod schedule;
mod staff;
mod topic;

pub use age::{AGE_OF_CONSENT, latest_birth_date_to_mail, old_enough_to_mail};
pub use campaign::{
    Audience, CampaignDraft, CampaignDraftError, CampaignState, CampaignSummary, DeliveryCounts,
    Event, NewCampaign,
};
pub use constituency::{ConstituencyCode, ConstituencyCodeError};
pub use contact::{
    Actor, AuditEntry, ConsentEntry, ConstituencyExport, ContactExport, CurrentConsent, Name,
    NameError, NewContact, PublicId, SignupExport, SuppressionExport, SuppressionReason,
};
pub use email::{Email, EmailError, EmailHash};
pub use postcode::{Postcode, PostcodeError, PostcodePrefix};
pub use publisher::Publisher;
pub use schedule::{ScheduleError, parse_schedule};
pub use staff::{StaffMember, StaffName, StaffNameError, StaffSecret, StaffTokenHash};
pub use topic::{
    ChosenTopicError, Topic, TopicNameError, TopicSlug, TopicSlugError, chosen_topics,
};
