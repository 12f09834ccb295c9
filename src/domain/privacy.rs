//! The information a subject access response must carry besides the data (UK GDPR Article
//! 15(1)): the purposes, the recipients, how long the data is kept, where it came from, the
//! person's rights and their right to complain to the ICO. Built from the settings (a
//! `[privacy]` table in the config file, with plain defaults for what it leaves out) so that
//! every export, from every door, says the same.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Publisher, Topic};

/// What the party says of its processing, as `[privacy]` in the config file gives it; each
/// field left out has a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyText {
    /// Who decides what is done with the data [default: CANVASS_ORGANISATION].
    pub controller: Option<String>,
    /// How to reach the data protection officer or whoever answers for the data.
    pub contact: Option<String>,
    /// Why the data is processed, per topic slug [default: the topic's emails].
    pub purposes: BTreeMap<String, String>,
    /// The lawful basis.
    pub lawful_basis: Option<String>,
    /// Who else receives the data: processors (the email service), other parts of the party.
    pub recipients: Vec<String>,
    /// How long the data is kept [default: from CANVASS_RETENTION_MONTHS].
    pub retention: Option<String>,
    /// Where the data comes from, when not from the person [default: their sign-up, or the
    /// list they were imported from].
    pub sources: Option<String>,
}

/// The information block of an access pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Information {
    pub controller: String,
    pub contact: Option<String>,
    pub privacy_notice: Option<String>,
    pub purposes: Vec<Purpose>,
    pub lawful_basis: String,
    pub recipients: Vec<String>,
    pub retention: String,
    pub source: String,
    pub rights: Vec<String>,
    pub complaints: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Purpose {
    pub topic: String,
    pub purpose: String,
}

/// What the information is built from besides the text.
pub struct InformationFor<'a> {
    pub publisher: &'a Publisher,
    pub topics: &'a [Topic],
    pub retention_months: Option<u32>,
    /// The public page taking complaints.
    pub complaint_url: &'a str,
    /// Where this person's data came from, as their record says (a list's name, `signup`).
    pub source: Option<&'a str>,
}

/// Where the ICO takes complaints.
pub const ICO_COMPLAINTS: &str = "https://ico.org.uk/make-a-complaint/ (0303 123 1113), Information Commissioner's Office, \
     Wycliffe House, Water Lane, Wilmslow, Cheshire SK9 5AF";

impl PrivacyText {
    pub fn information(&self, about: &InformationFor<'_>) -> Information {
        let controller = self
            .controller
            .clone()
            .unwrap_or_else(|| about.publisher.organisation.clone());
        let purposes = about
            .topics
            .iter()
            .map(|topic| Purpose {
                topic: topic.slug.as_str().to_owned(),
                purpose: self
                    .purposes
                    .get(topic.slug.as_str())
                    .cloned()
                    .unwrap_or_else(|| {
                        format!(
                            "To email you about {} from {controller}, if you agreed to it",
                            topic.name
                        )
                    }),
            })
            .collect();
        let retention = self.retention.clone().unwrap_or_else(|| {
            let kept = match about.retention_months {
                Some(months) => format!(
                    "Your details are kept while you agree to hear from us, and erased {months} \
                     months after your consent ends and nothing else has happened"
                ),
                None => "Your details are kept while you agree to hear from us, until you ask \
                         for them to be erased"
                    .to_owned(),
            };
            format!(
                "{kept}. When you unsubscribe or are erased, your address is kept only as a \
                 one-way hash, so that you are never emailed again."
            )
        });
        let source = self.sources.clone().unwrap_or_else(|| match about.source {
            Some("signup") | None => "You gave them to us, on our sign-up form".to_owned(),
            Some(list) => format!("You gave them to us; they came to this system from: {list}"),
        });
        Information {
            controller,
            contact: self.contact.clone(),
            privacy_notice: about.publisher.privacy_url.clone(),
            purposes,
            lawful_basis: self.lawful_basis.clone().unwrap_or_else(|| {
                "Your consent (UK GDPR Article 6(1)(a)), which the Privacy and Electronic \
                 Communications Regulations require for marketing email"
                    .to_owned()
            }),
            recipients: self.recipients.clone(),
            retention,
            source,
            rights: [
                "to a copy of your data (access)",
                "to have it corrected (rectification)",
                "to have it erased (erasure)",
                "to have its use restricted (restriction)",
                "to object to its use, and to any marketing, at any time (objection)",
                "to have it in a form you can take elsewhere (portability)",
                "to withdraw your consent at any time, with the link in every email",
            ]
            .map(str::to_owned)
            .to_vec(),
            complaints: format!(
                "You can complain to us at {}, and to the Information Commissioner's Office: {}",
                about.complaint_url, ICO_COMPLAINTS
            ),
        }
    }
}
