//! What comes back by email: delivery status notifications (RFC 3464, a bounce), abuse reports
//! (ARF, RFC 5965, a complaint), and unsubscribe requests sent to the List-Unsubscribe
//! `mailto:` address (its subject carries the signed token), read from `.eml` files for
//! `canvass inbox import`. MIME is parsed by mail-parser; the report fields themselves are
//! header-like blocks, read here.

use mail_parser::{Message, MessageParser, MimeHeaders};

use crate::domain::{DeliveryStatus, Email};

/// What a report says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Not delivered; `status` is the RFC 3463 code (`5.1.1`: for good; `4.2.2`: for now).
    Bounce { status: DeliveryStatus },
    /// The recipient reported the message as abuse.
    Complaint,
    /// Someone asked to unsubscribe by email; `token` is the signed unsubscribe token the
    /// `mailto:` link put in the subject, still to be verified.
    Unsubscribe { token: String },
}

impl Report {
    /// Whether the address is to be suppressed for good: a complaint, or a permanent bounce.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Bounce { status } => status.is_permanent(),
            Self::Complaint | Self::Unsubscribe { .. } => true,
        }
    }
}

/// One recipient a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub report: Report,
    pub recipient: Option<Email>,
    /// The returned message's Message-ID, when the report includes it.
    pub message_id: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("not a MIME message")]
    NotMime,
    #[error("neither a delivery status notification, an abuse report nor an unsubscribe request")]
    NotAReport,
}

/// Reads one report: every recipient it is about.
pub fn read(bytes: &[u8]) -> Result<Vec<Finding>, ReportError> {
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or(ReportError::NotMime)?;
    let message_id = returned_message_id(&message);
    let part_of = |subtype: &str| {
        message.parts.iter().find(|part| {
            part.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct
                        .subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
            })
        })
    };
    if let Some(status) = part_of("delivery-status") {
        let blocks = field_blocks(&String::from_utf8_lossy(status.contents()));
        let findings = blocks
            .iter()
            .skip(1) // the per-message fields
            .filter_map(|fields| {
                let status = field(fields, "status")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()?;
                let recipient = field(fields, "final-recipient")
                    .or_else(|| field(fields, "original-recipient"))
                    .and_then(address_of);
                Some(Finding {
                    report: Report::Bounce { status },
                    recipient,
                    message_id: message_id.clone(),
                })
            })
            .collect::<Vec<_>>();
        return if findings.is_empty() {
            Err(ReportError::NotAReport)
        } else {
            Ok(findings)
        };
    }
    if let Some(report) = part_of("feedback-report") {
        let blocks = field_blocks(&String::from_utf8_lossy(report.contents()));
        let fields = blocks.first().cloned().unwrap_or_default();
        let recipient = field(&fields, "original-rcpt-to")
            .and_then(address_of)
            .or_else(|| returned_recipient(&message));
        return Ok(vec![Finding {
            report: Report::Complaint,
            recipient,
            message_id,
        }]);
    }
    // An unsubscribe request: "unsubscribe TOKEN" in the subject, as the mailto: link sets it
    // (a mail client may add "Re:" or the like before it).
    let subject = message.subject().unwrap_or_default().trim();
    let words: Vec<&str> = subject.split_whitespace().collect();
    if let Some(at) = words
        .iter()
        .position(|word| word.eq_ignore_ascii_case("unsubscribe"))
        && let Some(token) = words.get(at + 1)
    {
        return Ok(vec![Finding {
            report: Report::Unsubscribe {
                token: (*token).to_owned(),
            },
            recipient: None,
            message_id: None,
        }]);
    }
    Err(ReportError::NotAReport)
}

/// The returned message, whole (`message/rfc822`) or its header (`text/rfc822-headers`).
fn returned(message: &Message<'_>) -> Option<Message<'static>> {
    message.parts.iter().find_map(|part| {
        if let Some(nested) = part.message() {
            return Some(nested.clone().into_owned());
        }
        let headers = part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("text")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
        });
        headers
            .then(|| MessageParser::default().parse(part.contents()))
            .flatten()
            .map(Message::into_owned)
    })
}

fn returned_message_id(message: &Message<'_>) -> Option<String> {
    returned(message)?
        .message_id()
        .map(|id| format!("<{}>", id.trim_matches(['<', '>'])))
}

fn returned_recipient(message: &Message<'_>) -> Option<Email> {
    let returned = returned(message)?;
    let address = returned.to()?.first()?.address()?.to_owned();
    Email::parse(&address).ok()
}

/// `rfc822; someone@example.org` → the address.
fn address_of(value: &str) -> Option<Email> {
    let address = value.split_once(';').map_or(value, |(_, a)| a);
    Email::parse(address.trim().trim_matches(['<', '>'])).ok()
}

/// Header-like fields in blocks separated by blank lines, names lower-cased, folded lines
/// joined.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        let current = blocks.last_mut().expect("there is always a block");
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(Vec::new());
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    blocks.retain(|block| !block.is_empty());
    blocks
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/dsn/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn a_hard_bounce_names_the_recipient_status_and_message() {
        let findings = read(&fixture("hard-5.1.1.eml")).unwrap();
        assert_eq!(
            findings,
            [Finding {
                report: Report::Bounce {
                    status: "5.1.1".parse().unwrap()
                },
                recipient: Some(Email::parse("ben@example.org").unwrap()),
                message_id: Some("<aaaa1111@hertford.example.org>".into()),
            }]
        );
        assert!(findings[0].report.is_permanent());
    }

    #[test]
    fn a_soft_bounce_is_not_permanent() {
        let findings = read(&fixture("soft-4.2.2.eml")).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].report,
            Report::Bounce {
                status: "4.2.2".parse().unwrap()
            }
        );
        assert!(!findings[0].report.is_permanent());
        assert_eq!(
            findings[0].recipient,
            Some(Email::parse("amira@example.org").unwrap())
        );
    }

    #[test]
    fn an_abuse_report_is_a_complaint_about_the_returned_message() {
        let findings = read(&fixture("complaint-arf.eml")).unwrap();
        assert_eq!(
            findings,
            [Finding {
                report: Report::Complaint,
                recipient: Some(Email::parse("dev@example.org").unwrap()),
                message_id: Some("<m-complaint@hertford.example.org>".into()),
            }]
        );
    }

    #[test]
    fn other_mail_is_not_a_report() {
        let plain = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello\r\n";
        assert_eq!(read(plain), Err(ReportError::NotAReport));
    }
}
