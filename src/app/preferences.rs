//! What a person does through the signed links in every email: see what is held on them,
//! change their topics and postcode, and unsubscribe from everything. Unsubscribes from the
//! link, the preference centre and the unsubscribe mailbox all go through [`unsubscribe`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{App, AppError, Result};
use crate::domain::{Postcode, PublicId, TopicSlug};
use crate::mail::token::Link;
use crate::store::{PreferenceUpdate, Request, UnsubscribeRequest};

pub use crate::store::{Preferences, UnsubscribeOutcome, UpdateOutcome};

/// Where an unsubscribe came from, as the consent ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeVia {
    /// The one-click link in the message's header or footer (RFC 8058).
    Link,
    /// The preference centre's button.
    PreferenceCentre,
    /// An email to the `mailto:` unsubscribe address.
    Email,
}

impl UnsubscribeVia {
    /// The consent ledger's source.
    fn source(self) -> &'static str {
        match self {
            Self::Link => "unsubscribe-link",
            Self::PreferenceCentre => PREFERENCES_SOURCE,
            Self::Email => "unsubscribe-email",
        }
    }
}

/// The consent ledger's source for a change made in the preference centre.
const PREFERENCES_SOURCE: &str = "preference-centre";

/// What is held on the person the link was made for; `None`: nothing (erased, or never held).
pub async fn held(app: &App, id: &PublicId) -> Result<Option<Preferences>> {
    Ok(app.store.preferences(id).await?)
}

/// The preference centre's form, as sent.
#[derive(Debug, Default)]
pub struct PreferenceForm<'a> {
    /// Empty removes the postcode.
    pub postcode: &'a str,
    /// The topics ticked; unknown slugs are ignored: only the topics shown can change.
    pub topics: Vec<&'a str>,
}

/// Withdraws every topic not ticked, grants those ticked (unless the person unsubscribed from
/// everything) and sets the postcode, as asked from `ip`.
pub async fn update(
    app: &App,
    id: &PublicId,
    form: &PreferenceForm<'_>,
    ip: IpAddr,
) -> Result<UpdateOutcome> {
    let postcode = match form.postcode.trim() {
        "" => None,
        given => Some(Postcode::parse(given).map_err(|e| AppError::invalid("postcode", e))?),
    };
    let topics: BTreeSet<TopicSlug> = form
        .topics
        .iter()
        .filter_map(|slug| TopicSlug::parse(slug).ok())
        .collect();
    let ip = ip.to_string();
    let request = Request {
        source: PREFERENCES_SOURCE,
        ip: Some(&ip),
    };
    let update = PreferenceUpdate { topics, postcode };
    Ok(app.store.update_preferences(id, &update, request).await?)
}

/// Unsubscribes the person the link was made for from everything, and counts it against the
/// campaign whose message carried the link; returns once it is committed. Concurrent requests
/// share a transaction.
pub async fn unsubscribe(
    app: &App,
    link: &Link,
    via: UnsubscribeVia,
    ip: Option<IpAddr>,
) -> Result<UnsubscribeOutcome> {
    let request = UnsubscribeRequest {
        contact: link.contact,
        source: via.source(),
        ip: ip.map(|ip| ip.to_string()),
        campaign: link.campaign,
    };
    Ok(app.unsubscriber().unsubscribe(request).await?)
}
