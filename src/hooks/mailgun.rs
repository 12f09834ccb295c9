//! Mailgun's webhooks: a JSON body whose `signature` holds a timestamp, a one-time token and
//! the HMAC-SHA256 of the two under the account's webhook signing key. Refused when the
//! signature does not match or the timestamp is more than five minutes away; the token is
//! spent by the store, so a captured request is never accepted twice.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{CARRIED_AS, Event, HookError, Kind, message_id, recipient, status_in};

/// How far a signature's timestamp may be from now.
const FRESH_FOR: u64 = 5 * 60;

/// The webhook signing key (`CANVASS_MAILGUN_SIGNING_KEY`), secret.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn new(key: &str) -> Option<Self> {
        let key = key.trim();
        (!key.is_empty()).then(|| Self(key.as_bytes().to_vec()))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// A verified webhook: its one-time token, and the event (none for one canvass does not act on:
/// opens, clicks).
#[derive(Debug)]
pub struct Verified {
    pub token: String,
    pub event: Option<Event>,
}

#[derive(Deserialize)]
struct Body {
    signature: Signature,
    #[serde(rename = "event-data")]
    event: serde_json::Value,
}

#[derive(Deserialize)]
struct Signature {
    timestamp: String,
    token: String,
    signature: String,
}

#[derive(Deserialize)]
struct EventData {
    id: String,
    event: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    recipient: Option<String>,
    #[serde(default, rename = "delivery-status")]
    delivery_status: Option<DeliveryStatus>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default, rename = "user-variables")]
    user_variables: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct DeliveryStatus {
    #[serde(default, rename = "enhanced-code")]
    enhanced_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    headers: serde_json::Map<String, serde_json::Value>,
}

/// Verifies one webhook request and reads its event.
pub fn read(key: &SigningKey, body: &[u8], now: DateTime<Utc>) -> Result<Verified, HookError> {
    let body: Body = serde_json::from_slice(body)
        .map_err(|_| HookError::unverified("not a signed Mailgun webhook"))?;
    let Signature {
        timestamp,
        token,
        signature,
    } = body.signature;
    let at: i64 = timestamp
        .parse()
        .map_err(|_| HookError::unverified("the timestamp is not a number"))?;
    if now.timestamp().abs_diff(at) > FRESH_FOR {
        return Err(HookError::unverified(
            "the signature is more than five minutes old (or ahead)",
        ));
    }
    let expected = hex_decode(&signature)
        .ok_or_else(|| HookError::unverified("the signature is not hexadecimal"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&expected)
        .map_err(|_| HookError::unverified("the signature does not match"))?;
    let data: EventData = serde_json::from_value(body.event).map_err(HookError::malformed)?;
    Ok(Verified {
        token,
        event: event(data),
    })
}

fn event(data: EventData) -> Option<Event> {
    let kind = match data.event.as_str() {
        "failed" => {
            let status = data.delivery_status.as_ref().and_then(|s| {
                s.enhanced_code
                    .as_deref()
                    .and_then(status_in)
                    .or_else(|| s.message.as_deref().and_then(status_in))
                    .or_else(|| s.description.as_deref().and_then(status_in))
            });
            match data.reason.as_deref() {
                // Mailgun's own list says the person complained before.
                Some("suppress-complaint") => Kind::Complaint,
                // The address refused it (now, or before: Mailgun's bounce list). Other
                // permanent failures (`old`: retries ran out; `espblock`: the receiver blocked
                // Mailgun; `suppress-unsubscribe`) say nothing about the address.
                Some("bounce" | "suppress-bounce") | None => Kind::Bounce {
                    permanent: data.severity.as_deref() == Some("permanent"),
                    status,
                },
                Some(_) => Kind::Bounce {
                    permanent: false,
                    status,
                },
            }
        }
        "complained" => Kind::Complaint,
        "delivered" => Kind::Delivered,
        _ => return None,
    };
    let carried = data
        .user_variables
        .get(CARRIED_AS)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| {
            data.message.as_ref().and_then(|m| {
                m.headers
                    .get("message-id")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
        });
    Some(Event {
        key: data.id,
        message_id: carried.as_deref().and_then(message_id),
        recipient: data.recipient.as_deref().and_then(recipient),
        kind,
    })
}

/// Lower- or upper-case hexadecimal to bytes.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 256 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in Mailgun's documentation of a permanent failure, signed with our key.
    fn signed(key: &str, timestamp: i64, token: &str, event: serde_json::Value) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{timestamp}{token}").as_bytes());
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "signature": {"timestamp": timestamp.to_string(), "token": token, "signature": signature},
            "event-data": event,
        }))
        .unwrap()
    }

    fn failed() -> serde_json::Value {
        serde_json::json!({
            "id": "G9Bn5sl1TC6nu79C8C0bwg",
            "timestamp": 1521233195.375624,
            "log-level": "error",
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "envelope": {"sender": "bounces@example.org", "transport": "smtp", "targets": "alice@example.com"},
            "recipient": "alice@example.com",
            "recipient-domain": "example.com",
            "message": {"headers": {"to": "Alice <alice@example.com>", "message-id": "20130503192659.13651.20287@example.org", "from": "Bob <bob@example.org>", "subject": "Test permanent_fail webhook"}, "attachments": [], "size": 111},
            "delivery-status": {"attempt-no": 1, "message": "", "code": 605, "description": "Not delivering to previously bounced address", "session-seconds": 0},
            "user-variables": {"canvass_delivery": "<c1@example.org>"}
        })
    }

    #[test]
    fn a_signed_failure_is_read_with_the_message_id_it_carries() {
        let key = SigningKey::new("key-abc").unwrap();
        let now = Utc::now();
        let verified = read(
            &key,
            &signed("key-abc", now.timestamp(), "tok1", failed()),
            now,
        )
        .unwrap();
        assert_eq!(verified.token, "tok1");
        let event = verified.event.unwrap();
        assert_eq!(event.message_id.as_deref(), Some("<c1@example.org>"));
        assert_eq!(event.key, "G9Bn5sl1TC6nu79C8C0bwg");
        assert!(matches!(
            event.kind,
            Kind::Bounce {
                permanent: true,
                ..
            }
        ));
    }

    #[test]
    fn a_wrong_key_an_old_timestamp_or_a_changed_body_is_refused() {
        let key = SigningKey::new("key-abc").unwrap();
        let now = Utc::now();
        let wrong = signed("key-xyz", now.timestamp(), "t", failed());
        assert!(matches!(
            read(&key, &wrong, now),
            Err(HookError::Unverified(_))
        ));
        let old = signed("key-abc", now.timestamp() - 301, "t", failed());
        assert!(matches!(
            read(&key, &old, now),
            Err(HookError::Unverified(_))
        ));
        let good = signed("key-abc", now.timestamp(), "t", failed());
        let changed = String::from_utf8(good).unwrap().replace("\"t\"", "\"u\"");
        assert!(matches!(
            read(&key, changed.as_bytes(), now),
            Err(HookError::Unverified(_))
        ));
        assert!(matches!(
            read(&key, b"[]", now),
            Err(HookError::Unverified(_))
        ));
        let far = signed("key-abc", i64::MIN, "t", failed());
        assert!(matches!(
            read(&key, &far, now),
            Err(HookError::Unverified(_))
        ));
    }

    #[test]
    fn only_a_failure_of_the_address_itself_is_permanent() {
        let key = SigningKey::new("key-abc").unwrap();
        let now = Utc::now();
        let kind = |reason: &str, token: &str| {
            let mut event = failed();
            event["reason"] = reason.into();
            let body = signed("key-abc", now.timestamp(), token, event);
            read(&key, &body, now).unwrap().event.unwrap().kind
        };
        assert!(matches!(
            kind("suppress-bounce", "a"),
            Kind::Bounce {
                permanent: true,
                ..
            }
        ));
        // Retries ran out, or the receiver blocked Mailgun: nothing about the address.
        assert!(matches!(
            kind("old", "b"),
            Kind::Bounce {
                permanent: false,
                ..
            }
        ));
        assert!(matches!(
            kind("espblock", "c"),
            Kind::Bounce {
                permanent: false,
                ..
            }
        ));
        assert_eq!(kind("suppress-complaint", "d"), Kind::Complaint);
    }
}
