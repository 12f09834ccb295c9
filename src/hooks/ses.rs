//! Amazon SES's notifications, through an SNS topic subscribed to `/hooks/ses` over HTTPS.
//!
//! Each SNS message is signed (signature version 1: SHA1withRSA; 2: SHA256withRSA) with the key
//! of the certificate at its `SigningCertURL`, which is fetched only from
//! `https://sns.<region>.amazonaws.com/` (its TLS certificate vouches for the host) and cached.
//! A message is accepted only from a topic in `CANVASS_SES_TOPICS` and at most an hour old; a
//! subscription confirmation is followed (its `SubscribeURL`, on the same host) only for those
//! topics. SES replaces the Message-ID, so a message is known by the [`super::DELIVERY_HEADER`]
//! it carried, which SES returns when the notifications include the original headers.

use std::collections::HashMap;
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
/// Certificates kept at once; SNS uses a handful.
const CACHED: usize = 16;
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
    /// Whether `url` is one SNS would send.
    fn admits(&self, url: &str) -> bool {
        match self {
            Self::Amazon => {
                let Ok(parsed) = url::Url::parse(url) else {
                    return false;
                };
                let region_host = parsed.host_str().and_then(|host| {
                    host.strip_prefix("sns.")?
                        .strip_suffix(".amazonaws.com")
                        .map(|region| {
                            !region.is_empty()
                                && region.bytes().all(|b| {
                                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
                                })
                        })
                });
                parsed.scheme() == "https"
                    && region_host == Some(true)
                    && parsed.port().is_none()
                    && parsed.username().is_empty()
            }
            Self::Test(base) => url.starts_with(&format!("{}/", base.trim_end_matches('/'))),
        }
    }
}

/// The `/hooks/ses` settings and the certificates fetched so far.
pub struct Ses {
    topics: Vec<String>,
    trusted: TrustedHost,
    client: reqwest::Client,
    certificates: Mutex<HashMap<String, Arc<Vec<u8>>>>,
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
        if now.signed_duration_since(sent) > FRESH_FOR {
            return Err(HookError::unverified("it is more than an hour old"));
        }
        let algorithm: &'static dyn ring::signature::VerificationAlgorithm =
            match envelope.version.as_str() {
                "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                "2" => &RSA_PKCS1_2048_8192_SHA256,
                _ => return Err(HookError::unverified("an unknown signature version")),
            };
        if !self.trusted.admits(&envelope.certificate) {
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
                if !self.trusted.admits(url) {
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
    async fn public_key(&self, url: &str, now: DateTime<Utc>) -> Result<Arc<Vec<u8>>, HookError> {
        if let Some(key) = self
            .certificates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
        {
            return Ok(key.clone());
        }
        let unavailable = |e: reqwest::Error| {
            HookError::Unavailable(format!("fetching the certificate: {}", e.without_url()))
        };
        let response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?;
        if response.content_length().unwrap_or(0) > LARGEST_CERTIFICATE as u64 {
            return Err(HookError::unverified("the certificate is too large"));
        }
        let pem = response.bytes().await.map_err(unavailable)?;
        if pem.len() > LARGEST_CERTIFICATE {
            return Err(HookError::unverified("the certificate is too large"));
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
        let mut cache = self
            .certificates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHED {
            cache.clear();
        }
        cache.insert(url.to_owned(), key.clone());
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
        assert!(amazon.admits(
            "https://sns.eu-west-2.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
        ));
        for forged in [
            "http://sns.eu-west-2.amazonaws.com/x.pem",
            "https://sns.eu-west-2.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.eu-west-2.amazonaws.com/x.pem",
            "https://sns.eu-west-2.amazonaws.com:8443/x.pem",
            "https://user@sns.eu-west-2.amazonaws.com/x.pem",
            "https://s3.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
        ] {
            assert!(!amazon.admits(forged), "{forged}");
        }
        let test = TrustedHost::Test("http://127.0.0.1:9".into());
        assert!(test.admits("http://127.0.0.1:9/cert.pem"));
        assert!(!test.admits("http://127.0.0.1:99/cert.pem"));
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
