//! Topics: what a person can agree to hear about by email.

use std::fmt;

const MAX_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a topic slug (lower-case letters, digits and single hyphens, starting with a letter, at most {MAX_LEN} characters)"
)]
pub struct TopicSlugError(String);

/// A topic's stable identifier, such as `events` or `door-knocking`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TopicSlug(String);

impl TopicSlug {
    pub fn parse(input: &str) -> Result<Self, TopicSlugError> {
        let slug = input.trim().to_ascii_lowercase();
        let valid = (1..=MAX_LEN).contains(&slug.len())
            && slug.starts_with(|c: char| c.is_ascii_lowercase())
            && !slug.ends_with('-')
            && !slug.contains("--")
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(slug))
        } else {
            Err(TopicSlugError(input.trim().chars().take(48).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A topic as staff see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Topic {
    pub slug: TopicSlug,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a topic name is one line of 1 to 100 characters")]
pub struct TopicNameError;

impl Topic {
    /// A topic with its name checked: one line, 1 to 100 characters, trimmed.
    pub fn new(slug: TopicSlug, name: &str) -> Result<Self, TopicNameError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(TopicNameError);
        }
        Ok(Self {
            slug,
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_lower_cases_slugs() {
        assert_eq!(TopicSlug::parse(" News ").unwrap().as_str(), "news");
        assert_eq!(
            TopicSlug::parse("door-knocking-2").unwrap().as_str(),
            "door-knocking-2"
        );
    }

    #[test]
    fn refuses_malformed_slugs() {
        let too_long = "a".repeat(MAX_LEN + 1);
        for bad in [
            "",
            "-news",
            "news-",
            "door--knocking",
            "2news",
            "news letter",
            "néws",
            "a;b",
            &too_long,
        ] {
            assert!(TopicSlug::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
