//! What the audit log records: each kind of entry has one name, the one its `action` column
//! holds and the console's audit page filters on.

use std::fmt;

use super::SuppressionReason;

/// One kind of audit-log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    CampaignCreated,
    CampaignEdited,
    CampaignTested,
    CampaignSubmitted,
    CampaignApproved,
    CampaignQueued,
    CampaignScheduled,
    CampaignUnscheduled,
    CampaignRetried,
    CampaignPaused,
    CampaignCancelled,
    ContactCreated,
    ContactUpdated,
    ContactExported,
    ContactErased,
    ContactRestricted,
    ContactUnrestricted,
    ContactUnsubscribed,
    ContactsImported,
    ConsentGranted,
    ConsentWithdrawn,
    PreferencesUpdated,
    /// An address put on the suppression list for a bounce or a complaint.
    Suppressed(SuppressionReason),
    SuppressionLifted,
    PostcodesReplaced,
    TopicAdded,
    JournalStartedAnew,
    JournalReplayed,
    RetentionApplied,
    RequestOpened,
    RequestPaused,
    RequestResumed,
    RequestExtended,
    RequestActed,
    RequestClosed,
    ComplaintLogged,
    ComplaintAcknowledged,
    ComplaintClosed,
    StaffUserCreated,
    StaffUserEdited,
    StaffUserEnabled,
    StaffUserDisabled,
    StaffUserSignedIn,
    StaffUserPasswordSet,
    StaffUserPasswordLink,
    StaffUserTwoFactorOn,
    StaffUserTwoFactorOff,
    StaffTokenCreated,
    StaffTokenRevoked,
}

impl AuditAction {
    /// The name the log keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CampaignCreated => "campaign.created",
            Self::CampaignEdited => "campaign.edited",
            Self::CampaignTested => "campaign.tested",
            Self::CampaignSubmitted => "campaign.submitted",
            Self::CampaignApproved => "campaign.approved",
            Self::CampaignQueued => "campaign.queued",
            Self::CampaignScheduled => "campaign.scheduled",
            Self::CampaignUnscheduled => "campaign.unscheduled",
            Self::CampaignRetried => "campaign.retried",
            Self::CampaignPaused => "campaign.paused",
            Self::CampaignCancelled => "campaign.cancelled",
            Self::ContactCreated => "contact.created",
            Self::ContactUpdated => "contact.updated",
            Self::ContactExported => "contact.exported",
            Self::ContactErased => "contact.erased",
            Self::ContactRestricted => "contact.restricted",
            Self::ContactUnrestricted => "contact.unrestricted",
            Self::ContactUnsubscribed => "contact.unsubscribed",
            Self::ContactsImported => "contacts.imported",
            Self::ConsentGranted => "consent.granted",
            Self::ConsentWithdrawn => "consent.withdrawn",
            Self::PreferencesUpdated => "preferences.updated",
            Self::Suppressed(SuppressionReason::Bounced) => "suppressed.bounced",
            Self::Suppressed(SuppressionReason::Complaint) => "suppressed.complaint",
            Self::Suppressed(SuppressionReason::Unsubscribed) => "suppressed.unsubscribed",
            Self::Suppressed(SuppressionReason::Erased) => "suppressed.erased",
            Self::SuppressionLifted => "suppression.lifted",
            Self::PostcodesReplaced => "postcodes.replaced",
            Self::TopicAdded => "topic.added",
            Self::JournalStartedAnew => "journal.started_anew",
            Self::JournalReplayed => "journal.replayed",
            Self::RetentionApplied => "retention.applied",
            Self::RequestOpened => "request.opened",
            Self::RequestPaused => "request.paused",
            Self::RequestResumed => "request.resumed",
            Self::RequestExtended => "request.extended",
            Self::RequestActed => "request.acted",
            Self::RequestClosed => "request.closed",
            Self::ComplaintLogged => "complaint.logged",
            Self::ComplaintAcknowledged => "complaint.acknowledged",
            Self::ComplaintClosed => "complaint.closed",
            Self::StaffUserCreated => "staff_user.created",
            Self::StaffUserEdited => "staff_user.edited",
            Self::StaffUserEnabled => "staff_user.enabled",
            Self::StaffUserDisabled => "staff_user.disabled",
            Self::StaffUserSignedIn => "staff_user.signed_in",
            Self::StaffUserPasswordSet => "staff_user.password_set",
            Self::StaffUserPasswordLink => "staff_user.password_link",
            Self::StaffUserTwoFactorOn => "staff_user.two_factor_on",
            Self::StaffUserTwoFactorOff => "staff_user.two_factor_off",
            Self::StaffTokenCreated => "staff_token.created",
            Self::StaffTokenRevoked => "staff_token.revoked",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
