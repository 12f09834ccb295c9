//! A contact as someone wrote it: a row of a contacts file, the staff API's JSON, a sign-up
//! form. One parse, so that every door takes and refuses the same things.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, SubsecRound, Utc};

use super::{
    AGE_OF_CONSENT, Email, GuardianConsent, Name, NewContact, Postcode, TopicSlug,
    old_enough_to_mail, uk_day,
};

/// How far in the future a consent time may lie before it is taken for a mistake: clocks
/// differ, and a form's server may run a little ahead.
pub const CONSENT_CLOCK_SKEW: Duration = Duration::minutes(5);

/// The longest a consent source may be: a form's or an event's name.
pub const MAX_SOURCE_LEN: usize = 200;

/// The fields as written; an empty string is a field left blank.
#[derive(Debug, Clone, Default)]
pub struct ContactDraft<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub postcode: &'a str,
    /// `YYYY-MM-DD`.
    pub date_of_birth: &'a str,
    /// `None`: the source says nothing, which keeps what is held (false for a new contact).
    pub guardian_consent: Option<bool>,
    /// Who gave the guardian's consent, and how they are related to the child: required with
    /// it for a child under 14.
    pub guardian_name: &'a str,
    pub guardian_relationship: &'a str,
    /// When the guardian agreed (as `consent_at`); blank: when the child's consent was given.
    pub guardian_consent_at: &'a str,
    /// How they agreed (a signed form, a phone call); blank: the consent's source.
    pub guardian_method: &'a str,
    /// Slugs of topics the person agreed to hear about; blanks are passed over.
    pub topics: Vec<&'a str>,
    /// RFC 3339, or a date alone read as the start of that day in the UK; blank: now.
    pub consent_at: &'a str,
    /// Where they agreed; blank: the rules' default.
    pub source: &'a str,
}

/// What a draft is checked against.
#[derive(Debug, Clone)]
pub struct ContactRules {
    /// The topics that exist.
    pub topics: HashSet<TopicSlug>,
    pub now: DateTime<Utc>,
    /// The source of a draft that gives none (an import's `--source`); empty: one is required.
    pub default_source: String,
    /// When a draft that says nothing consented (the date a list was made); `None`: now.
    pub default_consent_at: Option<DateTime<Utc>>,
}

impl ContactRules {
    /// Consent given at `text` (a date, read as midnight UK time, or RFC 3339) for drafts that
    /// give no time: refused in the future.
    pub fn consented_at(mut self, text: &str) -> Result<Self, ContactDraftError> {
        let at = parse_consent_time(text.trim()).ok_or_else(|| ContactDraftError {
            field: "consent_at",
            message: format!(
                "'{}' is neither a date (YYYY-MM-DD) nor a time in RFC 3339",
                short(text)
            ),
        })?;
        if at > self.now + CONSENT_CLOCK_SKEW {
            return Err(ContactDraftError {
                field: "consent_at",
                message: format!("{} is in the future", short(text)),
            });
        }
        self.default_consent_at = Some(at.trunc_subsecs(6));
        Ok(self)
    }
}

/// What is wrong with a draft, and in which field (named as in the staff API's JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ContactDraftError {
    pub field: &'static str,
    pub message: String,
}

impl ContactDraft<'_> {
    /// Parses every field; the first at fault is named.
    pub fn parse(&self, rules: &ContactRules) -> Result<NewContact, ContactDraftError> {
        let wrong = |field: &'static str, message: String| ContactDraftError { field, message };
        let email = Email::parse(self.email).map_err(|e| wrong("email", e.to_string()))?;
        let name = Name::parse(self.name).map_err(|e| wrong("name", e.to_string()))?;
        let postcode = match self.postcode.trim() {
            "" => None,
            text => Some(Postcode::parse(text).map_err(|e| wrong("postcode", e.to_string()))?),
        };
        let date_of_birth = match self.date_of_birth.trim() {
            "" => None,
            text => {
                let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                    wrong(
                        "date_of_birth",
                        format!("'{}' is not a date: YYYY-MM-DD", short(text)),
                    )
                })?;
                if date > rules.now.date_naive() {
                    return Err(wrong("date_of_birth", format!("{text} is in the future")));
                }
                Some(date)
            }
        };
        let mut topics = Vec::new();
        for slug in self.topics.iter().map(|slug| slug.trim()) {
            if slug.is_empty() {
                continue;
            }
            let topic = TopicSlug::parse(slug)
                .ok()
                .filter(|topic| rules.topics.contains(topic))
                .ok_or_else(|| {
                    let hint = if slug.contains(',') {
                        ": in a file, topics are separated by ';', as in news;events"
                    } else {
                        ""
                    };
                    wrong(
                        "topics",
                        format!("there is no topic '{}'{hint}", short(slug)),
                    )
                })?;
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        let consent_dated =
            !self.consent_at.trim().is_empty() || rules.default_consent_at.is_some();
        let consent_at = match self.consent_at.trim() {
            "" => rules.default_consent_at.unwrap_or(rules.now),
            text => {
                let at = parse_consent_time(text).ok_or_else(|| {
                    wrong(
                        "consent_at",
                        format!(
                            "'{}' is neither a date (YYYY-MM-DD, read as midnight UK time) nor \
                             a time in RFC 3339",
                            short(text)
                        ),
                    )
                })?;
                if at > rules.now + CONSENT_CLOCK_SKEW {
                    return Err(wrong("consent_at", format!("{text} is in the future")));
                }
                at.trunc_subsecs(6)
            }
        };
        let source = match self.source.trim() {
            "" => rules.default_source.as_str(),
            text => text,
        };
        if source.is_empty() {
            return Err(wrong(
                "source",
                "is required: where the person agreed (a form, an event's sign-up sheet)".into(),
            ));
        }
        let source = parse_source(source).map_err(|e| wrong("source", e))?;
        let guardian = self.guardian(consent_at, source, rules)?;
        let today = uk_day(rules.now);
        if let Some(born) = date_of_birth
            && !old_enough_to_mail(Some(born), false, today)
        {
            // UK GDPR Article 8: a child's details are not kept on their own word.
            if self.guardian_consent != Some(true) {
                return Err(wrong(
                    "date_of_birth",
                    format!(
                        "born {born}, under {AGE_OF_CONSENT}, and no guardian's consent \
                         (guardian_consent true, with guardian_name and \
                         guardian_relationship): not stored"
                    ),
                ));
            }
            if guardian.is_none() {
                return Err(wrong(
                    "guardian_name",
                    format!(
                        "under {AGE_OF_CONSENT}: say who gave the guardian's consent \
                         (guardian_name) and how they are related (guardian_relationship)"
                    ),
                ));
            }
        }
        Ok(NewContact {
            email,
            name,
            postcode,
            date_of_birth,
            guardian_consent: self.guardian_consent,
            guardian,
            topics,
            consent_at,
            consent_dated,
            consent_source: source.to_owned(),
        })
    }
}

impl ContactDraft<'_> {
    /// The evidence of a guardian's consent, when the draft gives any: both who and how
    /// related, with the consent itself.
    fn guardian(
        &self,
        consent_at: DateTime<Utc>,
        source: &str,
        rules: &ContactRules,
    ) -> Result<Option<GuardianConsent>, ContactDraftError> {
        let wrong = |field: &'static str, message: String| ContactDraftError { field, message };
        let (name, relationship) = (self.guardian_name.trim(), self.guardian_relationship.trim());
        if name.is_empty() && relationship.is_empty() {
            return Ok(None);
        }
        if self.guardian_consent != Some(true) {
            return Err(wrong(
                "guardian_consent",
                "a guardian is named: say guardian_consent true (or leave the guardian out)".into(),
            ));
        }
        let name = parse_source(name).map_err(|e| wrong("guardian_name", e))?;
        let relationship =
            parse_source(relationship).map_err(|e| wrong("guardian_relationship", e))?;
        let given_at = match self.guardian_consent_at.trim() {
            "" => consent_at,
            text => {
                let at = parse_consent_time(text).ok_or_else(|| {
                    wrong(
                        "guardian_consent_at",
                        format!(
                            "'{}' is neither a date (YYYY-MM-DD) nor a time in RFC 3339",
                            short(text)
                        ),
                    )
                })?;
                if at > rules.now + CONSENT_CLOCK_SKEW {
                    return Err(wrong(
                        "guardian_consent_at",
                        format!("{text} is in the future"),
                    ));
                }
                at.trunc_subsecs(6)
            }
        };
        let method = match self.guardian_method.trim() {
            "" => source,
            text => parse_source(text).map_err(|e| wrong("guardian_method", e))?,
        };
        Ok(Some(GuardianConsent {
            guardian: name.to_owned(),
            relationship: relationship.to_owned(),
            given_at,
            method: method.to_owned(),
        }))
    }
}

/// Where something came from or how it was said (a form, an event's sheet, a phone call):
/// one line of 1 to [`MAX_SOURCE_LEN`] characters, trimmed.
pub fn parse_source(text: &str) -> Result<&str, String> {
    let text = text.trim();
    match text.is_empty()
        || text.chars().count() > MAX_SOURCE_LEN
        || text.chars().any(char::is_control)
    {
        true => Err(format!(
            "must be one line of 1 to {MAX_SOURCE_LEN} characters"
        )),
        false => Ok(text),
    }
}

/// An RFC 3339 time, or a date alone (as spreadsheets write it), read as the start of that day
/// in the UK: a form filled in on 1 July said yes from 00:00 BST.
fn parse_consent_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    ContactRules::day_start(NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?)
}

impl ContactRules {
    /// The start of `date` in the UK, as a date alone in a consent time is read.
    pub fn day_start(date: NaiveDate) -> Option<DateTime<Utc>> {
        let midnight = date.and_hms_opt(0, 0, 0)?;
        // `earliest`: the UK's clocks never change at midnight, but be defined whatever happens.
        midnight
            .and_local_timezone(chrono_tz::Europe::London)
            .earliest()
            .map(|at| at.with_timezone(&Utc))
    }
}

/// Echoes at most a short piece of a bad value.
fn short(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ContactRules {
        ContactRules {
            default_consent_at: None,
            topics: [TopicSlug::parse("news").unwrap()].into_iter().collect(),
            now: "2026-07-01T12:00:00Z".parse().unwrap(),
            default_source: String::new(),
        }
    }

    fn draft() -> ContactDraft<'static> {
        ContactDraft {
            email: "jo@example.org",
            topics: vec!["news"],
            source: "a form",
            ..ContactDraft::default()
        }
    }

    #[test]
    fn a_date_alone_is_midnight_uk_time() {
        let contact = ContactDraft {
            consent_at: "2026-07-01",
            ..draft()
        }
        .parse(&rules())
        .unwrap();
        assert_eq!(contact.consent_at.to_rfc3339(), "2026-06-30T23:00:00+00:00");
    }

    #[test]
    fn consent_a_little_ahead_is_taken_and_further_is_refused() {
        let at = |consent_at| {
            ContactDraft {
                consent_at,
                ..draft()
            }
            .parse(&rules())
        };
        assert!(at("2026-07-01T12:04:00Z").is_ok());
        assert_eq!(at("2026-07-01T12:06:00Z").unwrap_err().field, "consent_at");
    }

    #[test]
    fn the_source_falls_back_to_the_default_and_is_bounded() {
        let mut rules = rules();
        let blank = ContactDraft {
            source: "",
            ..draft()
        };
        assert_eq!(blank.parse(&rules).unwrap_err().field, "source");
        rules.default_source = "import".into();
        assert_eq!(blank.parse(&rules).unwrap().consent_source, "import");
        let long = "x".repeat(MAX_SOURCE_LEN + 1);
        let too_long = ContactDraft {
            source: &long,
            ..draft()
        };
        assert_eq!(too_long.parse(&rules).unwrap_err().field, "source");
    }

    #[test]
    fn a_child_under_fourteen_needs_a_named_guardian_s_consent() {
        // On 1 July 2026, someone born on 2 July 2012 is 13.
        let child = ContactDraft {
            date_of_birth: "2012-07-02",
            ..draft()
        };
        let error = child.parse(&rules()).unwrap_err();
        assert_eq!(error.field, "date_of_birth");
        assert!(error.message.contains("not stored"), "{error}");
        let bare_yes = ContactDraft {
            guardian_consent: Some(true),
            ..child.clone()
        };
        assert_eq!(bare_yes.parse(&rules()).unwrap_err().field, "guardian_name");
        let evidenced = ContactDraft {
            guardian_name: "Ann Lee",
            guardian_relationship: "mother",
            guardian_method: "signed form",
            ..bare_yes.clone()
        };
        let contact = evidenced.parse(&rules()).unwrap();
        let guardian = contact.guardian.unwrap();
        assert_eq!(
            (guardian.guardian.as_str(), guardian.relationship.as_str()),
            ("Ann Lee", "mother")
        );
        assert_eq!(guardian.method, "signed form");
        assert_eq!(guardian.given_at, contact.consent_at);
        // Fourteen on the day: their own consent suffices.
        let fourteen = ContactDraft {
            date_of_birth: "2012-07-01",
            ..draft()
        };
        assert!(fourteen.parse(&rules()).is_ok());
        // A guardian named without a yes is a contradiction, refused.
        let unsure = ContactDraft {
            guardian_consent: None,
            ..evidenced
        };
        assert_eq!(
            unsure.parse(&rules()).unwrap_err().field,
            "guardian_consent"
        );
    }

    #[test]
    fn topics_must_exist_and_repeat_once() {
        let twice = ContactDraft {
            topics: vec!["news", " News ", ""],
            ..draft()
        };
        assert_eq!(twice.parse(&rules()).unwrap().topics.len(), 1);
        let unknown = ContactDraft {
            topics: vec!["news,events"],
            ..draft()
        };
        let error = unknown.parse(&rules()).unwrap_err();
        assert_eq!(error.field, "topics");
        assert!(error.message.contains("';'"), "{error}");
    }
}
