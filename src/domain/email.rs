//! An email address as canvass holds it: trimmed, checked by lettre's parser, and compared
//! case-insensitively, with the hash that keys the suppression list.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The longest address SMTP can carry (RFC 5321 path limit, less the angle brackets).
const MAX_LEN: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email is empty")]
    Empty,
    #[error("email is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("email is not a valid address")]
    Invalid,
    #[error(
        "email has characters beyond ASCII, which mail servers carry only when every one on the \
         way takes SMTPUTF8"
    )]
    NotAscii,
    #[error(
        "email's domain is not an internet mail domain (an IP address, or a name without a dot)"
    )]
    NotAMailDomain,
    #[error("email's part before the @ is quoted, which few mail systems take")]
    Quoted,
}

/// A valid email address. Equality and hashing ignore case, because people type their address
/// in any case and expect to be one person.
#[derive(Clone)]
pub struct Email {
    /// The address as the person gave it (trimmed), used to send.
    address: lettre::Address,
    /// The lower-cased address, the identity used for uniqueness and suppression.
    normalized: String,
}

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().count() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let address = lettre::Address::from_str(trimmed).map_err(|_| EmailError::Invalid)?;
        // lettre takes what RFC 5322 allows; SMTP relays carry less.
        if !trimmed.is_ascii() {
            return Err(EmailError::NotAscii);
        }
        if address.user().starts_with('"') {
            return Err(EmailError::Quoted);
        }
        let domain = address.domain();
        if domain.starts_with('[') || !domain.contains('.') || domain.ends_with('.') {
            return Err(EmailError::NotAMailDomain);
        }
        let normalized = AsRef::<str>::as_ref(&address).to_lowercase();
        Ok(Self {
            address,
            normalized,
        })
    }

    /// The address as given, for the To header.
    pub fn as_str(&self) -> &str {
        self.address.as_ref()
    }

    pub fn address(&self) -> &lettre::Address {
        &self.address
    }

    /// The case-folded address that identifies the person.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The key of this address in the contacts and suppression tables.
    pub fn hash(&self) -> EmailHash {
        EmailHash::of_normalized(&self.normalized)
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for Email {}

impl Hash for Email {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Addresses are personal data: a `Debug` print (in a log line or a panic) shows only the hash
/// prefix, enough to correlate, not enough to read.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email(#{})", &self.hash().as_str()[..12])
    }
}

/// SHA-256 of the normalised address, in lower-case hex. It is what stays of an erased person
/// on the suppression list, so that they are never mailed again. It is the common convention for
/// exchanging suppression lists, and it can be recomputed from an address but not read back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailHash(String);

impl EmailHash {
    fn of_normalized(normalized: &str) -> Self {
        Self(format!("{:x}", Sha256::digest(normalized.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A hash as written down elsewhere (the suppression journal): 64 lower-case hex digits.
impl FromStr for EmailHash {
    type Err = String;

    fn from_str(hex: &str) -> Result<Self, Self::Err> {
        let lower_hex = hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if hex.len() == 64 && lower_hex {
            Ok(Self(hex.to_owned()))
        } else {
            Err(format!("'{hex}' is not a SHA-256 hash in lower-case hex"))
        }
    }
}

/// A Message-ID as a person pastes it (with or without its angle brackets, as a header or a
/// complaint quotes it), in the form canvass's ledger holds it: `<local@domain>`.
pub fn parse_message_id(text: &str) -> Result<String, String> {
    let text = text.trim();
    let text = text
        .strip_prefix("Message-ID:")
        .or_else(|| text.strip_prefix("Message-Id:"))
        .unwrap_or(text)
        .trim();
    let bare = text.trim_start_matches('<').trim_end_matches('>');
    match bare.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && bare.len() <= 250
                && bare
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>')) =>
        {
            Ok(format!("<{bare}>"))
        }
        _ => Err(format!(
            "'{}' is not a Message-ID like <0190...@example.org>",
            text.chars().take(60).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids_take_the_ledger_s_form() {
        for pasted in [
            "<a1@example.org>",
            "a1@example.org",
            " Message-ID: <a1@example.org> ",
        ] {
            assert_eq!(super::parse_message_id(pasted).unwrap(), "<a1@example.org>");
        }
        for bad in ["", "<>", "no-at-sign", "a b@example.org", "<a@>"] {
            assert!(super::parse_message_id(bad).is_err(), "{bad}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_trims_a_plain_address() {
        let email = Email::parse("  Jo.Bloggs@Example.org \n").unwrap();
        assert_eq!(email.as_str(), "Jo.Bloggs@Example.org");
        assert_eq!(email.normalized(), "jo.bloggs@example.org");
    }

    #[test]
    fn compares_case_insensitively() {
        let a = Email::parse("JO@EXAMPLE.ORG").unwrap();
        let b = Email::parse("jo@example.org").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn hash_is_sha256_of_the_lower_cased_address() {
        let email = Email::parse("Jo@Example.org").unwrap();
        assert_eq!(
            email.hash().as_str(),
            format!("{:x}", Sha256::digest(b"jo@example.org"))
        );
    }

    #[test]
    fn debug_does_not_reveal_the_address() {
        let email = Email::parse("secret.person@example.org").unwrap();
        let shown = format!("{email:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn refuses_hostile_and_malformed_input() {
        for bad in [
            "",
            "   ",
            "no-at-sign",
            "@example.org",
            "jo@",
            "jo@@example.org",
            "jo bloggs@example.org",
            "jo@exa mple.org",
            "<jo@example.org>",
            "Jo <jo@example.org>",
            "jo@example.org\r\nBcc: everyone@example.org",
            "jo@example.org,other@example.org",
            "jo\0@example.org",
            "\"jo bloggs\"@example.org",
            "jo@[127.0.0.1]",
            "jo@localhost",
            "jo@example.org.",
            "jö@example.org",
            "jo@exämple.org",
        ] {
            assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert_eq!(Email::parse(&long).unwrap_err(), EmailError::TooLong);
    }

    proptest! {
        #[test]
        fn round_trips_through_its_display(
            local in "[a-zA-Z0-9+_-]{1,10}(\\.[a-zA-Z0-9+_-]{1,10}){0,2}",
            domain in "[a-z][a-z0-9-]{0,15}[a-z0-9]\\.(org|co\\.uk|com)",
        ) {
            let input = format!("{local}@{domain}");
            let email = Email::parse(&input).unwrap();
            prop_assert_eq!(email.as_str(), input.as_str());
            let again = Email::parse(&email.to_string()).unwrap();
            prop_assert_eq!(&again, &email);
            prop_assert_eq!(again.hash(), email.hash());
        }

        #[test]
        fn never_panics_on_arbitrary_input(input in any::<String>()) {
            let _ = Email::parse(&input);
        }
    }
}
