//! What hosted mail providers report through their webhooks, each verified the provider's own
//! way: Amazon SES through SNS ([`ses`], RSA signatures against Amazon's certificate), Mailgun
//! ([`mailgun`], HMAC-SHA256 with a one-time token), Postmark ([`postmark`], HTTP basic
//! authentication) and SendGrid ([`sendgrid`], ECDSA P-256).
//!
//! Every message canvass sends carries the Message-ID it gave it in [`DELIVERY_HEADER`], which
//! SES returns; SES and Postmark replace the Message-ID itself with their own. Through a relay
//! of Mailgun, Postmark or SendGrid it carries it too where that provider returns what the
//! sender attached ([`Providers::carriers`]). An event acts only when the Message-ID it carries
//! is one canvass gave a message to the very address the event names.

pub mod mailgun;
pub mod postmark;
pub mod sendgrid;
pub mod ses;

use crate::domain::{DeliveryStatus, Email};

/// The header that carries the Message-ID canvass gave a message, whatever the relay does to
/// the Message-ID itself.
pub const DELIVERY_HEADER: &str = "X-Canvass-Delivery";

/// The name of the value the provider returns with its events (Mailgun's user variables,
/// Postmark's metadata, SendGrid's unique arguments).
const CARRIED_AS: &str = "canvass_delivery";

/// What a provider reported about one message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The provider's own id for the event: the same event delivered again has the same one.
    pub key: String,
    /// The Message-ID canvass gave the message (`<...>`), as the event carries it back.
    pub message_id: Option<String>,
    /// The address the event is about.
    pub recipient: Option<Email>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Not delivered: for good (the provider says so: a hard bounce) or for now.
    Bounce {
        permanent: bool,
        /// The RFC 3463 status, when the provider gives one.
        status: Option<DeliveryStatus>,
    },
    /// The recipient marked it as spam.
    Complaint,
    Delivered,
}

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HookError {
    /// Not signed (or authenticated) as the provider signs: answered 401, nothing changed.
    #[error("not verified: {0}")]
    Unverified(String),
    /// Verified, but not a payload canvass can read: answered 400.
    #[error("not readable: {0}")]
    Malformed(String),
    /// What verifying needs cannot be had just now (Amazon's certificate): answered 503, and
    /// the provider tries again.
    #[error("cannot verify just now: {0}")]
    Unavailable(String),
}

impl HookError {
    fn unverified(why: impl Into<String>) -> Self {
        Self::Unverified(why.into())
    }

    /// A body that is not the provider's shape. Never the parser's own words: they quote
    /// the value at fault, which may be an address.
    fn malformed(_: impl std::fmt::Display) -> Self {
        Self::Malformed("the payload is not in the provider's documented shape".into())
    }
}

/// The providers whose relays carry this installation's mail, so that each message carries
/// its Message-ID the way each returns it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Providers {
    pub mailgun: bool,
    pub postmark: bool,
    pub sendgrid: bool,
}

impl Providers {
    /// Which provider, if any, runs the relay at `host` (as their set-up pages name it).
    pub fn of_relay(host: &str) -> Self {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let at = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        Self {
            mailgun: at("mailgun.org"),
            postmark: at("postmarkapp.com"),
            sendgrid: at("sendgrid.net"),
        }
    }

    /// Both sets together.
    pub fn and(self, other: Self) -> Self {
        Self {
            mailgun: self.mailgun || other.mailgun,
            postmark: self.postmark || other.postmark,
            sendgrid: self.sendgrid || other.sendgrid,
        }
    }

    /// The headers that carry `message_id` back in each provider's events: canvass's own,
    /// always, and the provider's where its relay is used. The providers take theirs off
    /// before the message goes on.
    pub fn carriers(self, message_id: &str) -> Vec<(&'static str, String)> {
        let json = serde_json::Value::String(message_id.to_owned());
        let mut headers = vec![(DELIVERY_HEADER, message_id.to_owned())];
        if self.mailgun {
            headers.push((
                "X-Mailgun-Variables",
                format!(r#"{{"{CARRIED_AS}":{json}}}"#),
            ));
        }
        if self.postmark {
            headers.push(("X-PM-Metadata-canvass_delivery", message_id.to_owned()));
        }
        if self.sendgrid {
            headers.push((
                "X-SMTPAPI",
                format!(r#"{{"unique_args":{{"{CARRIED_AS}":{json}}}}}"#),
            ));
        }
        headers
    }
}

/// A Message-ID as canvass stores it, `<...>`, from a provider's form of it (with or without
/// the brackets); `None` for anything else.
fn message_id(given: &str) -> Option<String> {
    let bare = given.trim().trim_start_matches('<').trim_end_matches('>');
    let plausible = bare.contains('@')
        && bare.len() <= 250
        && bare
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>\\\"".contains(&b));
    plausible.then(|| format!("<{bare}>"))
}

/// An address as a provider names it (`Name <a@b>` or `a@b`).
fn recipient(given: &str) -> Option<Email> {
    let given = given.trim();
    let address = match (given.rfind('<'), given.rfind('>')) {
        (Some(start), Some(end)) if start < end => &given[start + 1..end],
        _ => given,
    };
    Email::parse(address).ok()
}

/// A status as a provider gives it (`5.1.1`, or inside a text such as `smtp; 550 5.1.1 ...`).
fn status_in(text: &str) -> Option<DeliveryStatus> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|word| word.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_are_known_by_their_hosts() {
        assert!(Providers::of_relay("smtp.sendgrid.net").sendgrid);
        assert!(Providers::of_relay("smtp.eu.mailgun.org").mailgun);
        assert!(Providers::of_relay("SMTP.POSTMARKAPP.COM.").postmark);
        assert_eq!(
            Providers::of_relay("mail.notsendgrid.net"),
            Providers::default()
        );
        assert_eq!(
            Providers::of_relay("postfix.internal"),
            Providers::default()
        );
    }

    #[test]
    fn each_provider_carries_the_message_id_its_own_way() {
        let all = Providers {
            mailgun: true,
            postmark: true,
            sendgrid: true,
        };
        let headers = all.carriers("<a1@example.org>");
        assert_eq!(headers[0], (DELIVERY_HEADER, "<a1@example.org>".into()));
        assert_eq!(
            headers[1].1,
            r#"{"canvass_delivery":"<a1@example.org>"}"#.to_owned()
        );
        assert_eq!(
            headers[3].1,
            r#"{"unique_args":{"canvass_delivery":"<a1@example.org>"}}"#.to_owned()
        );
        assert_eq!(Providers::default().carriers("<a1@example.org>").len(), 1);
    }

    #[test]
    fn message_ids_and_statuses_are_read_from_providers_forms() {
        assert_eq!(
            message_id("a1@example.org").as_deref(),
            Some("<a1@example.org>")
        );
        assert_eq!(
            message_id("<a1@example.org>").as_deref(),
            Some("<a1@example.org>")
        );
        assert_eq!(message_id("no at sign"), None);
        assert_eq!(
            status_in("smtp; 550 5.1.1 user unknown"),
            "5.1.1".parse().ok()
        );
        assert_eq!(status_in("bad"), None);
        assert_eq!(
            recipient("Amira <amira@example.org>"),
            Email::parse("amira@example.org").ok()
        );
    }
}
