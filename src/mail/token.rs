//! Signed links: the tokens in every email's unsubscribe and preference-centre links.
//!
//! A token is the URL-safe base64 (no padding) of
//!
//! ```text
//! purpose (1 byte) | key id length (1) | key id | contact public id (16) | issued at (4, unix s)
//!     | [campaign link tag (8)] | tag (16)
//! ```
//!
//! The campaign's link tag is there in the links of a campaign's messages, so that what people
//! do with them (an unsubscribe) is counted for the campaign; it is random, not the campaign's
//! id.
//!
//! where the tag is HMAC-SHA256 under the named key over the domain label `canvass-link-v1` and
//! every byte before it, truncated to 128 bits (RFC 2104 §5 allows truncation to half the output;
//! 128 bits is far beyond guessing). With a four-character key id a token is 56 characters.
//!
//! The token carries the public id, never the address or the database id. Keys come from
//! `CANVASS_SIGNING_KEYS` (`kid:base64secret,...`): the first signs, all verify, so that a key
//! can be rotated in while links signed with the old one keep working until it is listed no more.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, TimeZone, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::{LinkTag, PublicId};
use crate::store::{Store, StoreError};

/// Separates these tags from any other use of the same key.
const DOMAIN_LABEL: &[u8] = b"canvass-link-v1";
const TAG_LEN: usize = 16;
const ID_LEN: usize = 16;
const ISSUED_LEN: usize = 4;
const MAX_KID_LEN: usize = 16;
/// Longer input is refused before it is decoded.
pub const MAX_TOKEN_LEN: usize = 100;
/// The shortest secret accepted: 128 bits.
const MIN_SECRET_LEN: usize = 16;
/// How long a preference-centre link works. The page can download and erase the person's data,
/// so a link forwarded with an old email should not open it for ever; every email carries a
/// fresh one. Unsubscribe links never expire.
pub const PREFERENCES_LIFETIME: Duration = Duration::days(180);

/// How long a sign-up's confirmation link works: long enough to find the email, short enough
/// that an old one does not subscribe anyone.
pub const CONFIRMATION_LIFETIME: Duration = Duration::days(7);

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Unsubscribe,
    Preferences,
    /// Confirm a sign-up: the token carries the pending sign-up's id, not a contact's.
    Confirm,
}

impl Purpose {
    fn code(self) -> u8 {
        match self {
            Self::Unsubscribe => b'u',
            Self::Preferences => b'p',
            Self::Confirm => b'c',
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            b'u' => Some(Self::Unsubscribe),
            b'p' => Some(Self::Preferences),
            b'c' => Some(Self::Confirm),
            _ => None,
        }
    }

    fn lifetime(self) -> Option<Duration> {
        match self {
            Self::Unsubscribe => None,
            Self::Preferences => Some(PREFERENCES_LIFETIME),
            Self::Confirm => Some(CONFIRMATION_LIFETIME),
        }
    }
}

/// Why a token was refused. The reasons are for logs and tests; a visitor sees one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is too long")]
    TooLong,
    #[error("the token is not well formed")]
    Malformed,
    #[error("the token was signed with a key that is not configured")]
    UnknownKey,
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token is for another purpose")]
    WrongPurpose,
    #[error("the link has expired")]
    Expired,
}

/// One HMAC key with its id.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}:***)", self.kid)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("signing keys are written kid:base64secret, separated by commas")]
    Format,
    #[error("a signing key id is 1 to {MAX_KID_LEN} letters, digits, '-' or '_'")]
    KeyId,
    #[error("signing key '{0}' is not valid base64")]
    Base64(String),
    #[error("signing key '{0}' is shorter than {MIN_SECRET_LEN} bytes")]
    TooShort(String),
    #[error("signing key id '{0}' is listed twice")]
    Duplicate(String),
}

impl SigningKey {
    /// A new random 256-bit key.
    pub fn generate(kid: &str) -> Self {
        let mut secret = vec![0; 32];
        rand::rng().fill_bytes(&mut secret);
        Self {
            kid: kid.to_owned(),
            secret,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `kid:base64secret` form, for keeping a generated key. It holds the secret.
    pub fn to_setting(&self) -> String {
        format!("{}:{}", self.kid, STANDARD.encode(&self.secret))
    }

    fn mac(&self, signed: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(DOMAIN_LABEL);
        mac.update(signed);
        mac
    }
}

impl FromStr for SigningKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kid, secret) = s.trim().split_once(':').ok_or(KeyError::Format)?;
        let valid_kid = !kid.is_empty()
            && kid.len() <= MAX_KID_LEN
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_kid {
            return Err(KeyError::KeyId);
        }
        let secret = STANDARD
            .decode(secret.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(secret.trim().trim_end_matches('=')))
            .map_err(|_| KeyError::Base64(kid.to_owned()))?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::TooShort(kid.to_owned()));
        }
        Ok(Self {
            kid: kid.to_owned(),
            secret,
        })
    }
}

/// What a verified link names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub contact: PublicId,
    /// The campaign whose message carried the link.
    pub campaign: Option<LinkTag>,
}

/// The keys in force: the first signs, all verify.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    keys: Vec<SigningKey>,
}

impl SigningKeys {
    pub fn new(first: SigningKey) -> Self {
        Self { keys: vec![first] }
    }

    /// The key that signs new links.
    pub fn signing(&self) -> &SigningKey {
        &self.keys[0]
    }

    fn find(&self, kid: &[u8]) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid.as_bytes() == kid)
    }

    /// Signs a link for the contact, issued now.
    pub fn sign(&self, purpose: Purpose, contact: &PublicId) -> Token {
        self.sign_at(purpose, contact, Utc::now())
    }

    pub fn sign_at(&self, purpose: Purpose, contact: &PublicId, issued: DateTime<Utc>) -> Token {
        self.sign_link(purpose, contact, None, issued)
    }

    /// Signs a link in one of a campaign's messages: it names the campaign by its link tag.
    pub fn sign_link(
        &self,
        purpose: Purpose,
        contact: &PublicId,
        campaign: Option<&LinkTag>,
        issued: DateTime<Utc>,
    ) -> Token {
        let key = self.signing();
        let issued = u32::try_from(issued.timestamp()).unwrap_or(u32::MAX);
        let mut bytes =
            Vec::with_capacity(2 + key.kid.len() + ID_LEN + ISSUED_LEN + LinkTag::LEN + TAG_LEN);
        bytes.push(purpose.code());
        bytes.push(key.kid.len() as u8);
        bytes.extend_from_slice(key.kid.as_bytes());
        bytes.extend_from_slice(contact.as_uuid().as_bytes());
        bytes.extend_from_slice(&issued.to_be_bytes());
        if let Some(campaign) = campaign {
            bytes.extend_from_slice(campaign.as_bytes());
        }
        let tag = key.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Checks a token from a link and returns the contact it names.
    pub fn verify(
        &self,
        token: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<PublicId, TokenError> {
        self.verify_link(token, purpose, now)
            .map(|link| link.contact)
    }

    /// Checks a token from a link and returns what it names. The signature is checked (in
    /// constant time) before anything it says is believed.
    pub fn verify_link(
        &self,
        token: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<Link, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        let (&code, rest) = bytes.split_first().ok_or(TokenError::Malformed)?;
        let (&kid_len, rest) = rest.split_first().ok_or(TokenError::Malformed)?;
        let kid_len = usize::from(kid_len);
        let plain = kid_len + ID_LEN + ISSUED_LEN + TAG_LEN;
        if kid_len == 0
            || kid_len > MAX_KID_LEN
            || (rest.len() != plain && rest.len() != plain + LinkTag::LEN)
        {
            return Err(TokenError::Malformed);
        }
        let (kid, rest) = rest.split_at(kid_len);
        let (id, rest) = rest.split_at(ID_LEN);
        let (issued, rest) = rest.split_at(ISSUED_LEN);
        let (campaign, tag) = rest.split_at(rest.len() - TAG_LEN);
        let key = self.find(kid).ok_or(TokenError::UnknownKey)?;
        key.mac(&bytes[..bytes.len() - TAG_LEN])
            .verify_truncated_left(tag)
            .map_err(|_| TokenError::BadSignature)?;
        if Purpose::from_code(code) != Some(purpose) {
            return Err(TokenError::WrongPurpose);
        }
        if let Some(lifetime) = purpose.lifetime() {
            let issued = u32::from_be_bytes(issued.try_into().expect("split at ISSUED_LEN"));
            let issued = Utc
                .timestamp_opt(i64::from(issued), 0)
                .single()
                .ok_or(TokenError::Malformed)?;
            if now - issued > lifetime {
                return Err(TokenError::Expired);
            }
        }
        let id = uuid::Uuid::from_slice(id).map_err(|_| TokenError::Malformed)?;
        Ok(Link {
            contact: PublicId::from_uuid(id),
            campaign: <[u8; LinkTag::LEN]>::try_from(campaign)
                .ok()
                .map(LinkTag::from_bytes),
        })
    }
}

impl FromStr for SigningKeys {
    type Err = KeyError;

    /// Parses `kid:base64secret,kid:base64secret,...`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut keys: Vec<SigningKey> = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let key: SigningKey = part.parse()?;
            if keys.iter().any(|k| k.kid == key.kid) {
                return Err(KeyError::Duplicate(key.kid));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyError::Format);
        }
        Ok(Self { keys })
    }
}

/// The setting that holds the key generated when none is configured.
const GENERATED_KEY_SETTING: &str = "signing_key";

#[derive(Debug, thiserror::Error)]
pub enum LoadKeysError {
    #[error("CANVASS_SIGNING_KEYS: {0}")]
    Configured(#[source] KeyError),
    #[error("the signing key kept in the database is damaged: {0}")]
    Kept(#[source] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SigningKeys {
    /// The configured keys; with none configured, the key kept in the database, generated on
    /// first use. Links signed with a generated key stop working if the database is lost, so
    /// its generation is announced once.
    pub async fn load(configured: Option<&str>, store: &Store) -> Result<Self, LoadKeysError> {
        if let Some(configured) = configured {
            return configured.parse().map_err(LoadKeysError::Configured);
        }
        let fresh = SigningKey::generate("gen1");
        let (kept, generated) = store
            .setting_or_insert(GENERATED_KEY_SETTING, &fresh.to_setting())
            .await?;
        if generated {
            tracing::warn!(
                "no CANVASS_SIGNING_KEYS configured: generated a signing key and kept it in the \
                 database. Set CANVASS_SIGNING_KEYS to manage keys yourself."
            );
        }
        let key: SigningKey = kept.parse().map_err(LoadKeysError::Kept)?;
        Ok(Self::new(key))
    }
}

/// A signed token, ready for a URL path segment.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Tokens open someone's preferences: they are kept out of logs.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn keys(spec: &str) -> SigningKeys {
        spec.parse().unwrap()
    }

    const K1: &str = "k1:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0";
    const K2: &str = "k2:YW5vdGhlci1zZWNyZXQtYW5vdGhlci1zZWNyZXQ=";

    #[test]
    fn a_token_is_compact_and_url_safe() {
        let token = keys(K1).sign(Purpose::Unsubscribe, &PublicId::generate());
        assert!(token.as_str().len() < 60, "{}", token.as_str().len());
        assert!(
            token
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn a_token_verifies_for_its_purpose_only() {
        let keys = keys(K1);
        let id = PublicId::generate();
        let token = keys.sign(Purpose::Unsubscribe, &id);
        assert_eq!(
            keys.verify(token.as_str(), Purpose::Unsubscribe, Utc::now()),
            Ok(id)
        );
        assert_eq!(
            keys.verify(token.as_str(), Purpose::Preferences, Utc::now()),
            Err(TokenError::WrongPurpose)
        );
    }

    #[test]
    fn a_campaign_link_names_its_campaign_and_cannot_be_moved_to_another() {
        let keys = keys(K1);
        let (id, campaign) = (PublicId::generate(), LinkTag::random());
        let token = keys.sign_link(Purpose::Unsubscribe, &id, Some(&campaign), Utc::now());
        assert!(token.as_str().len() <= 70, "{}", token.as_str().len());
        let link = keys.verify_link(token.as_str(), Purpose::Unsubscribe, Utc::now());
        assert_eq!(
            link,
            Ok(Link {
                contact: id,
                campaign: Some(campaign)
            })
        );
        // Another campaign's tag in its place breaks the signature.
        let mut bytes = URL_SAFE_NO_PAD.decode(token.as_str()).unwrap();
        let at = bytes.len() - TAG_LEN - LinkTag::LEN;
        bytes[at..at + LinkTag::LEN].copy_from_slice(LinkTag::random().as_bytes());
        let moved = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            keys.verify_link(&moved, Purpose::Unsubscribe, Utc::now()),
            Err(TokenError::BadSignature)
        );
        // A link from before campaigns were named still works, naming none.
        let plain = keys.sign(Purpose::Unsubscribe, &id);
        let link = keys.verify_link(plain.as_str(), Purpose::Unsubscribe, Utc::now());
        assert_eq!(link.map(|l| l.campaign), Ok(None));
    }

    #[test]
    fn rotation_keeps_old_links_working_while_their_key_is_listed() {
        let old = keys(K1);
        let id = PublicId::generate();
        let token = old.sign(Purpose::Unsubscribe, &id);
        let rotated = keys(&format!("{K2},{K1}"));
        assert_eq!(rotated.signing().kid(), "k2");
        assert_eq!(
            rotated.verify(token.as_str(), Purpose::Unsubscribe, Utc::now()),
            Ok(id)
        );
        assert_eq!(
            keys(K2).verify(token.as_str(), Purpose::Unsubscribe, Utc::now()),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn a_key_with_the_same_id_but_another_secret_is_refused() {
        let token = keys(K1).sign(Purpose::Unsubscribe, &PublicId::generate());
        let impostor = keys("k1:YW5vdGhlci1zZWNyZXQtYW5vdGhlci1zZWNyZXQ=");
        assert_eq!(
            impostor.verify(token.as_str(), Purpose::Unsubscribe, Utc::now()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn preference_links_expire_and_unsubscribe_links_do_not() {
        let keys = keys(K1);
        let id = PublicId::generate();
        let long_ago = Utc::now() - Duration::days(400);
        let preferences = keys.sign_at(Purpose::Preferences, &id, long_ago);
        assert_eq!(
            keys.verify(preferences.as_str(), Purpose::Preferences, Utc::now()),
            Err(TokenError::Expired)
        );
        let unsubscribe = keys.sign_at(Purpose::Unsubscribe, &id, long_ago);
        assert_eq!(
            keys.verify(unsubscribe.as_str(), Purpose::Unsubscribe, Utc::now()),
            Ok(id)
        );
    }

    #[test]
    fn oversized_and_malformed_tokens_are_refused() {
        let keys = keys(K1);
        let now = Utc::now();
        let token = keys.sign(Purpose::Unsubscribe, &PublicId::generate());
        let long = token.as_str().repeat(3);
        assert_eq!(
            keys.verify(&long, Purpose::Unsubscribe, now),
            Err(TokenError::TooLong)
        );
        let truncated = &token.as_str()[..token.as_str().len() - 2];
        assert!(keys.verify(truncated, Purpose::Unsubscribe, now).is_err());
        for bad in ["", "a", "!!!!", "dQ", &"A".repeat(56)] {
            assert!(
                keys.verify(bad, Purpose::Unsubscribe, now).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn key_settings_are_checked() {
        assert_eq!("k1".parse::<SigningKeys>().unwrap_err(), KeyError::Format);
        assert_eq!("".parse::<SigningKeys>().unwrap_err(), KeyError::Format);
        assert_eq!(
            "bad kid:c2VjcmV0LXNlY3JldC1zZWNyZXQ="
                .parse::<SigningKeys>()
                .unwrap_err(),
            KeyError::KeyId
        );
        assert_eq!(
            "k1:c2hvcnQ=".parse::<SigningKeys>().unwrap_err(),
            KeyError::TooShort("k1".into())
        );
        assert_eq!(
            format!("{K1},{K1}").parse::<SigningKeys>().unwrap_err(),
            KeyError::Duplicate("k1".into())
        );
        let generated = SigningKey::generate("auto");
        let parsed: SigningKey = generated.to_setting().parse().unwrap();
        assert_eq!(parsed.secret, generated.secret);
        assert!(!format!("{generated:?}").contains(&STANDARD.encode(&generated.secret)));
    }

    fn any_key() -> impl Strategy<Value = SigningKeys> {
        (
            "[A-Za-z0-9_-]{1,16}",
            proptest::collection::vec(any::<u8>(), 16..64),
        )
            .prop_map(|(kid, secret)| SigningKeys::new(SigningKey { kid, secret }))
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(keys in any_key(), id in any::<u128>(), unsubscribe in any::<bool>()) {
            let id = PublicId::from_uuid(uuid::Uuid::from_u128(id));
            let purpose = if unsubscribe { Purpose::Unsubscribe } else { Purpose::Preferences };
            let token = keys.sign(purpose, &id);
            prop_assert_eq!(keys.verify(token.as_str(), purpose, Utc::now()), Ok(id));
        }

        #[test]
        fn any_single_byte_change_is_refused(keys in any_key(), id in any::<u128>(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let id = PublicId::from_uuid(uuid::Uuid::from_u128(id));
            let token = keys.sign(Purpose::Unsubscribe, &id);
            let mut bytes = URL_SAFE_NO_PAD.decode(token.as_str()).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            let tampered = URL_SAFE_NO_PAD.encode(&bytes);
            prop_assert!(keys.verify(&tampered, Purpose::Unsubscribe, Utc::now()).is_err());
        }

        #[test]
        fn any_single_character_change_is_refused(keys in any_key(), at in any::<prop::sample::Index>(), shift in 1usize..64) {
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let token = keys.sign(Purpose::Unsubscribe, &PublicId::generate());
            let i = at.index(token.as_str().len());
            let original = ALPHABET.iter().position(|&b| b == token.as_str().as_bytes()[i]).unwrap();
            // Another character of the alphabet, never the same one.
            let replacement = ALPHABET[(original + shift) % ALPHABET.len()] as char;
            let mut tampered = token.as_str().to_owned();
            tampered.replace_range(i..=i, &replacement.to_string());
            prop_assert!(keys.verify(&tampered, Purpose::Unsubscribe, Utc::now()).is_err());
        }

        /// The parser's fuzz target: any input is refused or names a contact, and never panics.
        /// `benches/fuzz_tokens.sh` runs it for millions of cases.
        #[test]
        fn the_parser_never_panics(input in ".{0,120}", bytes in proptest::collection::vec(any::<u8>(), 0..90)) {
            let keys = SigningKeys::new(SigningKey { kid: "k1".into(), secret: vec![7; 32] });
            let _ = keys.verify(&input, Purpose::Unsubscribe, Utc::now());
            let _ = keys.verify(&URL_SAFE_NO_PAD.encode(&bytes), Purpose::Preferences, Utc::now());
        }
    }
}
