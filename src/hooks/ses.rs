//! Amazon SES's notifications, through an SNS topic subscribed to `/hooks/ses` over HTTPS.
//!
//! Each SNS message is signed (signature version 1: SHA1withRSA; 2: SHA256withRSA) with the key
//! of the certificate at its `SigningCertURL`, which is fetched only from
//! `https://sns.<region>.amazonaws.com/` (its TLS certificate vouches for the host) and cached.
//! A message is accepted only from a topic in `CANVASS_SES_TOPICS` and at most an hour old; a
//! subscription confirmation is followed (its `SubscribeURL`, on the same host) only for those
//! topics. SES replaces the Message-ID, so a message is known by the [`super::DELIVERY_HEADER`]
//! it carried, which SES returns when the notifications include the original headers.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use serde::Deserialize;
use x509_cert::Certificate;
use x509_cert::der::DecodePem;

use super::{DELIVERY_HEADER, Event, HookError, Kind, message_id, recipient, status_in};

/// How old a message may be.
const FRESH_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// Certificates kept at once; SNS uses a handful. The oldest goes first.
const CACHED: usize = 8;
/// How far ahead of this clock a message's timestamp may be.
const AHEAD: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// The largest certificate read.
const LARGEST_CERTIFICATE: usize = 64 * 1024;

/// Where signing certificates and subscription confirmations may be fetched from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TrustedHost {
    /// `https://sns.<region>.amazonaws.com/`: in production, always.
    #[default]
    Amazon,
    /// A base URL of the tests' own (`CANVASS_TEST_SNS_BASE`), instead.
    Test(String),
}

impl TrustedHost {
    /// Whether `url` is a signing certificate SNS would name:
    /// `https://sns.REGION.amazonaws.com/SimpleNotificationService-HEX.pem`.
    fn admits_certificate(&self, url: &str) -> bool {
        self.admits(url, |parsed| {
            let name = parsed
                .path()
                .strip_prefix("/SimpleNotificationService-")
                .and_then(|rest| rest.strip_suffix(".pem"));
            name.is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                && parsed.query().is_none()
        })
    }

    /// Whether `url` is a subscription confirmation SNS would name:
    /// `https://sns.REGION.amazonaws.com/?Action=ConfirmSubscription&...`.
    fn admits_confirmation(&self, url: &str) -> bool {
        self.admits(url, |parsed| {
            parsed.path() == "/"
                && parsed
                    .query_pairs()
                    .any(|(name, value)| name == "Action" && value == "ConfirmSubscription")
        })
    }

    /// Whether `url` is on SNS's own host (or the tests' base), with no user, password, port
    /// or fragment, and `shape` holds of it.
    fn admits(&self, url: &str, shape: impl Fn(&url::Url) -> bool) -> bool {
        let Ok(parsed) = url::Url::parse(url) else {
            return false;
        };
        let clean = parsed.username().is_empty()
            && parsed.password().is_none()
            && parsed.fragment().is_none();
        match self {
            Self::Amazon => {
                let on_sns = parsed
                    .host_str()
                    .and_then(|host| host.strip_prefix("sns.")?.strip_suffix(".amazonaws.com"))
                    .is_some_and(is_region);
                parsed.scheme() == "https"
                    && on_sns
                    && parsed.port().is_none()
                    && clean
                    && shape(&parsed)
            }
            Self::Test(base) => {
                url.starts_with(&format!("{}/", base.trim_end_matches('/'))) && clean
            }
        }
    }
}

/// An AWS region's name: `eu-west-2`, `us-gov-west-1`, `ap-southeast-4`; never another
/// service's label (`s3`, `s3-accelerate`), whose hosts serve anyone's files.
fn is_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let letters = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [area, middle @ .., number] => {
            area.len() == 2
                && letters(area)
                && !middle.is_empty()
                && middle.len() <= 2
                && middle.iter().all(|part| letters(part))
                && !number.is_empty()
                && number.len() <= 2
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// A signing certificate's RSA public key (PKCS#1).
type PublicKey = Arc<Vec<u8>>;

/// The `/hooks/ses` settings and the certificates fetched so far.
pub struct Ses {
    topics: Vec<String>,
    trusted: TrustedHost,
    client: reqwest::Client,
    /// Each certificate's key, oldest first.
    certificates: Mutex<Vec<(String, PublicKey)>>,
    /// One fetch at a time: a stranger's messages cannot make canvass fetch in parallel.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Ses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ses")
            .field("topics", &self.topics)
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

/// What a verified SNS message was.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A notification from SES: the events canvass acts on.
    Notification(Vec<Event>),
    /// A subscription of one of our topics, now confirmed.
    Subscribed,
    /// Anything else SNS says (an unsubscription confirmed): nothing to do.
    Nothing,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "MessageId")]
    message_id: String,
    #[serde(rename = "TopicArn")]
    topic: String,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "SignatureVersion")]
    version: String,
    #[serde(rename = "Signature")]
    signature: String,
    #[serde(rename = "SigningCertURL")]
    certificate: String,
    #[serde(rename = "Subject", default)]
    subject: Option<String>,
    #[serde(rename = "SubscribeURL", default)]
    subscribe: Option<String>,
    #[serde(rename = "Token", default)]
    token: Option<String>,
}

impl Envelope {
    /// The text SNS signs: each field's name and value on lines of their own, in this order.
    fn signed_text(&self) -> Result<String, HookError> {
        let mut fields: Vec<(&str, &str)> = vec![("Message", &self.message)];
        fields.push(("MessageId", &self.message_id));
        match self.kind.as_str() {
            "Notification" => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let missing = || HookError::unverified("the confirmation lacks its URL or token");
                fields.push((
                    "SubscribeURL",
                    self.subscribe.as_deref().ok_or_else(missing)?,
                ));
                fields.push(("Timestamp", &self.timestamp));
                fields.push(("Token", self.token.as_deref().ok_or_else(missing)?));
                fields.push(("TopicArn", &self.topic));
                fields.push(("Type", &self.kind));
                return Ok(lines(&fields));
            }
            _ => return Err(HookError::unverified("not an SNS message type")),
        }
        fields.push(("Timestamp", &self.timestamp));
        fields.push(("TopicArn", &self.topic));
        fields.push(("Type", &self.kind));
        Ok(lines(&fields))
    }
}

fn lines(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{name}\n{value}\n"))
        .collect()
}

impl Ses {
    /// Accepts the topics named (ARNs); certificates from `trusted` only.
    pub fn new(topics: Vec<String>, trusted: TrustedHost) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds with its defaults");
        Self {
            topics,
            trusted,
            client,
            certificates: Mutex::default(),
            fetching: tokio::sync::Mutex::default(),
        }
    }

    /// Verifies one SNS message and reads it; confirms a subscription of our topics.
    pub async fn receive(&self, body: &[u8], now: DateTime<Utc>) -> Result<Received, HookError> {
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|_| HookError::unverified("not an SNS message"))?;
        if !self.topics.contains(&envelope.topic) {
            return Err(HookError::unverified(
                "its topic is not one of CANVASS_SES_TOPICS",
            ));
        }
        let sent = DateTime::parse_from_rfc3339(&envelope.timestamp)
            .map_err(|_| HookError::unverified("its timestamp is not a time"))?;
        let age = now.signed_duration_since(sent);
        if age > FRESH_FOR || age < -AHEAD {
            return Err(HookError::unverified(
                "it is more than an hour old, or from the future",
            ));
        }
        let algorithm: &'static dyn ring::signature::VerificationAlgorithm =
            match envelope.version.as_str() {
                "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                "2" => &RSA_PKCS1_2048_8192_SHA256,
                _ => return Err(HookError::unverified("an unknown signature version")),
            };
        if !self.trusted.admits_certificate(&envelope.certificate) {
            return Err(HookError::unverified(
                "its signing certificate is not on Amazon SNS's host",
            ));
        }
        let signature = STANDARD
            .decode(envelope.signature.trim())
            .map_err(|_| HookError::unverified("the signature is not base64"))?;
        let text = envelope.signed_text()?;
        let key = self.public_key(&envelope.certificate, now).await?;
        UnparsedPublicKey::new(algorithm, key.as_slice())
            .verify(text.as_bytes(), &signature)
            .map_err(|_| HookError::unverified("the signature does not match"))?;
        match envelope.kind.as_str() {
            "Notification" => notification(&envelope).map(Received::Notification),
            "SubscriptionConfirmation" => {
                let url = envelope.subscribe.as_deref().unwrap_or_default();
                if !self.trusted.admits_confirmation(url) {
                    return Err(HookError::unverified(
                        "its SubscribeURL is not on Amazon SNS's host",
                    ));
                }
                let confirmed = self
                    .client
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status);
                match confirmed {
                    Ok(_) => Ok(Received::Subscribed),
                    Err(e) => Err(HookError::Unavailable(format!(
                        "confirming the subscription: {}",
                        e.without_url()
                    ))),
                }
            }
            _ => Ok(Received::Nothing),
        }
    }

    /// The RSA public key (PKCS#1) of the certificate at `url`, fetched once.
    async fn public_key(&self, url: &str, now: DateTime<Utc>) -> Result<PublicKey, HookError> {
        let cached = |certificates: &Mutex<Vec<(String, PublicKey)>>| {
            certificates
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|(at, _)| at == url)
                .map(|(_, key)| key.clone())
        };
        if let Some(key) = cached(&self.certificates) {
            return Ok(key);
        }
        let _turn = self.fetching.lock().await;
        // Fetched meanwhile by the request that had the turn.
        if let Some(key) = cached(&self.certificates) {
            return Ok(key);
        }
        let unavailable = |e: reqwest::Error| {
            HookError::Unavailable(format!("fetching the certificate: {}", e.without_url()))
        };
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?;
        let mut pem = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            pem.extend_from_slice(&chunk);
            if pem.len() > LARGEST_CERTIFICATE {
                return Err(HookError::unverified("the certificate is too large"));
            }
        }
        let certificate = Certificate::from_pem(&pem)
            .map_err(|_| HookError::unverified("the signing certificate is not PEM X.509"))?;
        let validity = &certificate.tbs_certificate.validity;
        let at = now.timestamp().max(0) as u64;
        if validity.not_before.to_unix_duration().as_secs() > at
            || validity.not_after.to_unix_duration().as_secs() < at
        {
            return Err(HookError::unverified(
                "the signing certificate is not valid now",
            ));
        }
        let key = certificate
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| HookError::unverified("the certificate's key is not whole bytes"))?
            .to_vec();
        let key = Arc::new(key);
        let mut certificates = self
            .certificates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if certificates.len() >= CACHED {
            certificates.remove(0);
        }
        certificates.push((url.to_owned(), key.clone()));
        Ok(key)
    }
}

/// An SES notification (or event, from a configuration set): `Bounce`, `Complaint`, `Delivery`.
#[derive(Deserialize)]
struct Notification {
    #[serde(alias = "eventType", rename = "notificationType")]
    kind: String,
    #[serde(default)]
    mail: Mail,
    #[serde(default)]
    bounce: Option<Bounce>,
    #[serde(default)]
    complaint: Option<Complaint>,
    #[serde(default)]
    delivery: Option<Delivery>,
}

#[derive(Deserialize, Default)]
struct Mail {
    #[serde(default)]
    headers: Vec<Header>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    #[serde(default)]
    bounced_recipients: Vec<Recipient>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    #[serde(default)]
    complained_recipients: Vec<Recipient>,
    #[serde(default)]
    complaint_feedback_type: Option<String>,
}

#[derive(Deserialize)]
struct Delivery {
    #[serde(default)]
    recipients: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    diagnostic_code: Option<String>,
}

/// The events in a notification: one per recipient, each keyed by the SNS message and its place.
fn notification(envelope: &Envelope) -> Result<Vec<Event>, HookError> {
    let notification: Notification =
        serde_json::from_str(&envelope.message).map_err(HookError::malformed)?;
    let carried = notification
        .mail
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(DELIVERY_HEADER))
        .and_then(|h| message_id(&h.value));
    let mut found: Vec<(Option<&str>, Kind)> = Vec::new();
    match notification.kind.as_str() {
        "Bounce" => {
            let bounce = notification
                .bounce
                .as_ref()
                .ok_or_else(|| HookError::malformed("a bounce without its details"))?;
            let permanent = bounce.bounce_type == "Permanent";
            for r in &bounce.bounced_recipients {
                let status = r
                    .status
                    .as_deref()
                    .and_then(status_in)
                    .or_else(|| r.diagnostic_code.as_deref().and_then(status_in));
                found.push((Some(&r.email_address), Kind::Bounce { permanent, status }));
            }
        }
        "Complaint" => {
            let complaint = notification
                .complaint
                .as_ref()
                .ok_or_else(|| HookError::malformed("a complaint without its details"))?;
            // A "not spam" report takes a complaint back: nobody is suppressed for it.
            if complaint.complaint_feedback_type.as_deref() != Some("not-spam") {
                for r in &complaint.complained_recipients {
                    found.push((Some(&r.email_address), Kind::Complaint));
                }
            }
        }
        "Delivery" => {
            for to in notification.delivery.iter().flat_map(|d| &d.recipients) {
                found.push((Some(to), Kind::Delivered));
            }
        }
        _ => {}
    }
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(at, (to, kind))| Event {
            key: format!("{}#{at}", envelope.message_id),
            message_id: carried.clone(),
            recipient: to.and_then(recipient),
            kind,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_come_only_from_amazon_sns_over_https() {
        let amazon = TrustedHost::Amazon;
        let name = "SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem";
        for region in ["eu-west-2", "us-east-1", "us-gov-west-1", "ap-southeast-4"] {
            let url = format!("https://sns.{region}.amazonaws.com/{name}");
            assert!(amazon.admits_certificate(&url), "{url}");
        }
        for forged in [
            format!("http://sns.eu-west-2.amazonaws.com/{name}"),
            format!("https://sns.eu-west-2.amazonaws.com.evil.example/{name}"),
            format!("https://evil.example/sns.eu-west-2.amazonaws.com/{name}"),
            format!("https://sns.eu-west-2.amazonaws.com:8443/{name}"),
            format!("https://user@sns.eu-west-2.amazonaws.com/{name}"),
            format!("https://:pw@sns.eu-west-2.amazonaws.com/{name}"),
            // Buckets named `sns` on S3 serve anyone's files under Amazon's certificate.
            format!("https://sns.s3.amazonaws.com/{name}"),
            format!("https://sns.s3-us-west-2.amazonaws.com/{name}"),
            format!("https://sns.s3-accelerate.amazonaws.com/{name}"),
            format!("https://sns..amazonaws.com/{name}"),
            "https://sns.eu-west-2.amazonaws.com/mine.pem".into(),
            format!("https://sns.eu-west-2.amazonaws.com/{name}?Action=Publish"),
            "https://sns.eu-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x".into(),
        ] {
            assert!(!amazon.admits_certificate(&forged), "{forged}");
        }
        assert!(amazon.admits_confirmation(
            "https://sns.eu-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=a&Token=b"
        ));
        assert!(
            !amazon.admits_confirmation(
                "https://sns.eu-west-2.amazonaws.com/?Action=Publish&TopicArn=a"
            )
        );
        let test = TrustedHost::Test("http://127.0.0.1:9".into());
        assert!(test.admits_certificate("http://127.0.0.1:9/cert.pem"));
        assert!(!test.admits_certificate("http://127.0.0.1:99/cert.pem"));
    }

    #[test]
    fn the_signed_text_follows_the_field_order_sns_signs() {
        let envelope: Envelope = serde_json::from_value(serde_json::json!({
            "Type": "Notification", "MessageId": "m1", "TopicArn": "arn:t", "Message": "hi",
            "Timestamp": "2026-12-07T10:00:00.000Z", "SignatureVersion": "1",
            "Signature": "x", "SigningCertURL": "u"
        }))
        .unwrap();
        assert_eq!(
            envelope.signed_text().unwrap(),
            "Message\nhi\nMessageId\nm1\nTimestamp\n2026-12-07T10:00:00.000Z\nTopicArn\narn:t\nType\nNotification\n"
        );
    }
}
