//! SendGrid's Event Webhook: a JSON array of events, signed with ECDSA P-256 over the
//! timestamp header followed by the body; the verification key (`CANVASS_SENDGRID_VERIFICATION_KEY`)
//! is the base64 public key SendGrid shows when signing is turned on. Each event is acted on
//! once by its `sg_event_id`, so a replayed request changes nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::Deserialize;
use x509_cert::der::Decode;
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::{Event, HookError, Kind, message_id, recipient, status_in};

/// The header with the signature, and the one with the timestamp it covers.
pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

/// How far a signature's timestamp may be from now: SendGrid retries a failed delivery for a
/// day; each event is acted on once by its id however often it comes within it.
const FRESH_FOR: u64 = 24 * 60 * 60;

/// id-ecPublicKey and prime256v1, the key's algorithm and curve.
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";

/// SendGrid's public key: the uncompressed point.
#[derive(Debug, Clone)]
pub struct VerificationKey(Vec<u8>);

impl VerificationKey {
    /// The base64 of the key's SubjectPublicKeyInfo, as SendGrid shows it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let der = STANDARD
            .decode(text.trim())
            .map_err(|_| "not base64".to_owned())?;
        let info = SubjectPublicKeyInfoRef::from_der(&der)
            .map_err(|_| "not a public key (SubjectPublicKeyInfo)".to_owned())?;
        let curve = info
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok());
        if info.algorithm.oid.to_string() != EC_PUBLIC_KEY
            || curve.map(|c| c.to_string()).as_deref() != Some(P256)
        {
            return Err("not an ECDSA P-256 key".into());
        }
        let point = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| "the key's bits are not whole bytes".to_owned())?;
        Ok(Self(point.to_vec()))
    }
}

#[derive(Deserialize)]
struct Raw {
    event: String,
    #[serde(default)]
    sg_event_id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default, rename = "type")]
    bounce_type: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    response: Option<String>,
    #[serde(default, rename = "smtp-id")]
    smtp_id: Option<String>,
    #[serde(default, rename = "canvass_delivery")]
    carried: Option<String>,
}

/// Verifies one request (its two headers and body) and reads the events canvass acts on.
pub fn read(
    key: &VerificationKey,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Event>, HookError> {
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(HookError::unverified(
            "the signature or its timestamp is missing",
        ));
    };
    let signature = STANDARD
        .decode(signature.trim())
        .map_err(|_| HookError::unverified("the signature is not base64"))?;
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key.0)
        .verify(&signed, &signature)
        .map_err(|_| HookError::unverified("the signature does not match"))?;
    let fresh = timestamp
        .trim()
        .parse::<i64>()
        .is_ok_and(|at| now.timestamp().abs_diff(at) <= FRESH_FOR);
    if !fresh {
        return Err(HookError::unverified(
            "the signature is more than a day old, or from the future",
        ));
    }
    // One event of an unexpected shape is left out, not the whole batch.
    let raw: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(HookError::malformed)?;
    Ok(raw
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Raw>(value).ok())
        .filter_map(event)
        .collect())
}

fn event(raw: Raw) -> Option<Event> {
    let kind = match raw.event.as_str() {
        // "bounce" is a refusal for good; "blocked", the receiving server refusing for now
        // (often the sender's reputation, not the address).
        "bounce" => Kind::Bounce {
            permanent: raw.bounce_type.as_deref() != Some("blocked"),
            status: raw.status.as_deref().and_then(status_in),
        },
        // SendGrid's own lists (an address that bounced or complained there): recorded,
        // nobody suppressed here for it.
        "deferred" | "dropped" => Kind::Bounce {
            permanent: false,
            status: raw
                .response
                .as_deref()
                .or(raw.reason.as_deref())
                .and_then(status_in),
        },
        "spamreport" => Kind::Complaint,
        "delivered" => Kind::Delivered,
        _ => return None,
    };
    let carried = raw.carried.or(raw.smtp_id);
    Some(Event {
        key: raw.sg_event_id?,
        message_id: carried.as_deref().and_then(message_id),
        recipient: raw.email.as_deref().and_then(recipient),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    /// A key pair, and its public half as SendGrid shows it.
    fn keys() -> (EcdsaKeyPair, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut spki = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        spki.extend_from_slice(pair.public_key().as_ref());
        (pair, STANDARD.encode(spki))
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn sign(pair: &EcdsaKeyPair, timestamp: &str, body: &[u8]) -> String {
        let signed = [timestamp.as_bytes(), body].concat();
        STANDARD.encode(pair.sign(&SystemRandom::new(), &signed).unwrap())
    }

    const BODY: &[u8] = br#"[{"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"bounce","category":"cat facts","sg_event_id":"6g4ZI7SA-xmRDv57GoPIPw==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","reason":"500 unknown recipient","status":"5.0.0","type":"bounce","canvass_delivery":"<c1@example.org>"},{"email":"example@test.com","timestamp":1513299569,"event":"open","sg_event_id":"o1"}]"#;

    #[test]
    fn a_signed_batch_is_read_and_opens_left_out() {
        let (pair, public) = keys();
        let key = VerificationKey::parse(&public).unwrap();
        let now = chrono::Utc::now();
        let at = now.timestamp().to_string();
        let signature = sign(&pair, &at, BODY);
        let events = read(&key, Some(&signature), Some(&at), BODY, now).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].key, "6g4ZI7SA-xmRDv57GoPIPw==");
        assert_eq!(events[0].message_id.as_deref(), Some("<c1@example.org>"));
        assert!(matches!(
            events[0].kind,
            Kind::Bounce {
                permanent: true,
                ..
            }
        ));
    }

    #[test]
    fn another_timestamp_body_or_key_is_refused() {
        let (pair, public) = keys();
        let key = VerificationKey::parse(&public).unwrap();
        let now = chrono::Utc::now();
        let at = now.timestamp().to_string();
        let signature = sign(&pair, &at, BODY);
        let refused = |r: Result<Vec<Event>, HookError>| matches!(r, Err(HookError::Unverified(_)));
        let later = (now.timestamp() + 1).to_string();
        assert!(refused(read(
            &key,
            Some(&signature),
            Some(&later),
            BODY,
            now
        )));
        assert!(refused(read(&key, Some(&signature), Some(&at), b"[]", now)));
        assert!(refused(read(&key, None, Some(&at), BODY, now)));
        let (_, other) = keys();
        let other = VerificationKey::parse(&other).unwrap();
        assert!(refused(read(
            &other,
            Some(&signature),
            Some(&at),
            BODY,
            now
        )));
        // Signed two days ago: a captured request sent again much later.
        let old = (now.timestamp() - 2 * 86_400).to_string();
        let signature = sign(&pair, &old, BODY);
        assert!(refused(read(&key, Some(&signature), Some(&old), BODY, now)));
        assert!(VerificationKey::parse("bm90IGEga2V5").is_err());
    }
}
