//! RFC 3463 enhanced status codes (`5.1.1`), as SMTP replies and bounce reports give them: one
//! reading of what is permanent, whoever reports it.

use std::fmt;
use std::str::FromStr;

/// `class.subject.detail`: class 2 is success, 4 a failure for now, 5 a failure for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryStatus {
    class: u8,
    subject: u16,
    detail: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a delivery status: 4.x.x or 5.x.x, e.g. 5.1.1")]
pub struct DeliveryStatusError(String);

impl FromStr for DeliveryStatus {
    type Err = DeliveryStatusError;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        let unreadable = || DeliveryStatusError(word.chars().take(20).collect());
        let mut parts = word.trim().split('.');
        let mut number = || -> Option<u16> {
            let part = parts.next()?;
            let short = !part.is_empty() && part.len() <= 3;
            short.then(|| part.parse().ok()).flatten()
        };
        let (class, subject, detail) = (number(), number(), number());
        match (class, subject, detail, parts.next()) {
            (Some(class @ (2 | 4 | 5)), Some(subject), Some(detail), None) => Ok(Self {
                class: class as u8,
                subject,
                detail,
            }),
            _ => Err(unreadable()),
        }
    }
}

impl DeliveryStatus {
    /// 5.x.x: the message will never be delivered as it is.
    pub fn is_permanent(self) -> bool {
        self.class == 5
    }

    /// 4.x.x: it may be delivered later.
    pub fn is_transient(self) -> bool {
        self.class == 4
    }

    /// 5.1.x: the address is bad (no such mailbox, bad domain...); 5.2.1: the mailbox is
    /// disabled and takes no mail.
    pub fn is_about_the_mailbox(self) -> bool {
        self.class == 5 && (self.subject == 1 || (self.subject == 2 && self.detail == 1))
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_classes_four_and_five_and_refuses_the_rest() {
        let status: DeliveryStatus = "5.1.1".parse().unwrap();
        assert!(status.is_permanent() && status.is_about_the_mailbox());
        assert!("4.2.2".parse::<DeliveryStatus>().unwrap().is_transient());
        assert!(
            !"5.7.1"
                .parse::<DeliveryStatus>()
                .unwrap()
                .is_about_the_mailbox()
        );
        assert!(
            "5.2.1"
                .parse::<DeliveryStatus>()
                .unwrap()
                .is_about_the_mailbox()
        );
        for bad in [
            "", "5", "5.1", "5.1.1.1", "6.0.0", "5.x.1", "5..1", "5.1.1234",
        ] {
            assert!(bad.parse::<DeliveryStatus>().is_err(), "{bad}");
        }
        assert_eq!(
            "5.1.10".parse::<DeliveryStatus>().unwrap().to_string(),
            "5.1.10"
        );
    }
}
