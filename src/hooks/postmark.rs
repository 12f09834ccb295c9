//! Postmark's webhooks: one JSON record per request (`Bounce`, `SpamComplaint`, `Delivery`),
//! behind HTTP basic authentication with the user and password set in the webhook's URL
//! (`CANVASS_POSTMARK_WEBHOOK_AUTH=user:password`). Postmark signs nothing else; a record is
//! acted on once by its own id, so a replayed one changes nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{CARRIED_AS, Event, HookError, Kind, message_id, recipient, status_in};

/// The user and password Postmark sends (`user:password`), secret.
#[derive(Clone)]
pub struct BasicAuth(String);

impl BasicAuth {
    /// `user:password`; `None` without the colon or with an empty password.
    pub fn new(pair: &str) -> Option<Self> {
        let (user, password) = pair.trim().split_once(':')?;
        (!user.is_empty() && !password.is_empty()).then(|| Self(format!("{user}:{password}")))
    }

    /// Whether an `Authorization` header carries these credentials.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let given = authorization
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| STANDARD.decode(encoded.trim()).ok())
            .unwrap_or_default();
        given.ct_eq(self.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicAuth(***)")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Record {
    record_type: String,
    #[serde(default, rename = "ID")]
    id: Option<serde_json::Value>,
    #[serde(default, rename = "Type")]
    bounce_type: Option<String>,
    #[serde(default, rename = "MessageID")]
    message_id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    recipient: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
}

/// Reads one (authenticated) record; `None` for one canvass does not act on (opens, clicks,
/// subscription changes).
pub fn read(body: &[u8]) -> Result<Option<Event>, HookError> {
    let record: Record = serde_json::from_slice(body).map_err(HookError::malformed)?;
    let id = |what: &str| match &record.id {
        Some(serde_json::Value::Number(n)) => Ok(format!("{what}:{n}")),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(format!("{what}:{s}")),
        _ => Err(HookError::malformed("the record has no ID")),
    };
    let (key, kind, to) = match record.record_type.as_str() {
        "Bounce" => {
            // Postmark's own judgement: these two say the address will never take mail.
            let permanent = matches!(
                record.bounce_type.as_deref(),
                Some("HardBounce" | "BadEmailAddress")
            );
            let status = record.details.as_deref().and_then(status_in);
            (
                id("bounce")?,
                Kind::Bounce { permanent, status },
                &record.email,
            )
        }
        "SpamComplaint" => (id("complaint")?, Kind::Complaint, &record.email),
        "Delivery" => {
            let postmark_id = record
                .message_id
                .as_deref()
                .filter(|id| !id.is_empty())
                .ok_or_else(|| HookError::malformed("the delivery names no MessageID"))?;
            (
                format!("delivery:{postmark_id}"),
                Kind::Delivered,
                &record.recipient,
            )
        }
        _ => return Ok(None),
    };
    let carried = record
        .metadata
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(CARRIED_AS))
        .and_then(|(_, value)| value.as_str());
    Ok(Some(Event {
        key,
        message_id: carried.and_then(message_id),
        recipient: to.as_deref().and_then(recipient),
        kind,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_credentials_are_admitted() {
        let auth = BasicAuth::new("postmark:s3cret").unwrap();
        let header = format!("Basic {}", STANDARD.encode("postmark:s3cret"));
        assert!(auth.admits(Some(&header)));
        assert!(auth.admits(Some(&header.replace("Basic", "BASIC"))));
        let wrong = format!("Basic {}", STANDARD.encode("postmark:guess"));
        assert!(!auth.admits(Some(&wrong)));
        assert!(!auth.admits(Some("Bearer s3cret")));
        assert!(!auth.admits(None));
        assert!(BasicAuth::new("nocolon").is_none());
    }

    #[test]
    fn a_hard_bounce_from_the_documentation_is_permanent() {
        // Postmark's example bounce webhook, with our metadata.
        let body = br#"{"RecordType":"Bounce","ID":4323372036854775807,"Type":"HardBounce","TypeCode":1,"Name":"Hard bounce","Tag":"Test","MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Metadata":{"canvass_delivery":"<c1@example.org>"},"ServerID":23,"MessageStream":"outbound","Description":"The server was unable to deliver your message (ex: unknown user, mailbox not found).","Details":"Test bounce details","Email":"john@example.com","From":"sender@example.com","BouncedAt":"2019-11-05T16:33:54.9070259Z","DumpAvailable":true,"Inactive":true,"CanActivate":true,"Subject":"Test subject","Content":"<Full dump of bounce>"}"#;
        let event = read(body).unwrap().unwrap();
        assert_eq!(event.key, "bounce:4323372036854775807");
        assert_eq!(event.message_id.as_deref(), Some("<c1@example.org>"));
        assert!(matches!(
            event.kind,
            Kind::Bounce {
                permanent: true,
                ..
            }
        ));
        let soft = String::from_utf8_lossy(body).replace("HardBounce", "SoftBounce");
        let event = read(soft.as_bytes()).unwrap().unwrap();
        assert!(matches!(
            event.kind,
            Kind::Bounce {
                permanent: false,
                ..
            }
        ));
    }

    #[test]
    fn opens_are_not_read() {
        let open = br#"{"RecordType":"Open","MessageID":"x","Recipient":"a@example.com"}"#;
        assert_eq!(read(open).unwrap(), None);
        assert!(matches!(read(b"{}"), Err(HookError::Malformed(_))));
    }
}
