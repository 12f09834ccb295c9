//! Why a message was not handed over, judged by the step of the dialogue it failed in and
//! lettre's typed error (never its text), and what that asks of the worker.

use std::time::Duration;

use crate::domain::DeliveryStatus;

/// Why a message was not handed over, sorted by where in the dialogue it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// Nothing was handed over, for a reason of the server's or of our settings: connecting,
    /// TLS, the greeting, EHLO, AUTH, MAIL FROM, or a connection lost before the data went. The
    /// message can go as it is once the server is right; no delivery is to blame. `trouble`
    /// says whether waiting mends it.
    Unavailable { reason: String, trouble: Trouble },
    /// The server put this message off (a 4xx answer to RCPT, DATA or the data), or the
    /// connection was lost while waiting for its answer to the data, so that nobody knows
    /// whether it took it: try again later.
    Deferred(String),
    /// RCPT refused with a mailbox status (RFC 3463 5.1.x or 5.2.1): the address takes no mail.
    Mailbox(String),
    /// Refused for good for another reason (a 5xx to RCPT, DATA or the data): this message
    /// fails, and nobody is suppressed for it.
    Refused(String),
}

/// Why the server could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// No connection, no greeting, no answer in time, or the connection lost: a relay
    /// restarting, a network blip. Waiting mends it.
    Connection,
    /// A 4xx to MAIL FROM or AUTH: a quota, a throttle, the server's passing trouble.
    Throttled,
    /// The outbox folder could not be written (full, or not ours).
    Outbox,
    /// The server refused our user name or password, or offers no mechanism we can use.
    Login,
    /// TLS could not be set up as the URL asks: a certificate that cannot be verified, no
    /// STARTTLS offered, a handshake refused.
    Tls,
    /// A 5xx to MAIL FROM: the server will not take mail from our sender.
    Sender,
}

impl Trouble {
    /// Whether it needs a person (the settings, the relay's account): the campaign pauses and
    /// the admins are told. Otherwise the worker waits and tries again.
    pub fn needs_a_person(self) -> bool {
        matches!(self, Self::Login | Self::Tls | Self::Sender | Self::Outbox)
    }

    /// Its name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Throttled => "throttled",
            Self::Outbox => "outbox",
            Self::Login => "login",
            Self::Tls => "tls",
            Self::Sender => "sender",
        }
    }
}

impl SendFailure {
    /// What kind of failure it is, as metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable { trouble, .. } => trouble.as_str(),
            Self::Deferred(_) => "deferred",
            Self::Mailbox(_) => "mailbox",
            Self::Refused(_) => "refused",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Unavailable { reason, .. }
            | Self::Deferred(reason)
            | Self::Mailbox(reason)
            | Self::Refused(reason) => reason,
        }
    }
}

/// The steps of the SMTP dialogue, each judged on its own when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Connect,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    /// The message itself, and the answer after its final dot.
    Message,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Self::Connect => "connecting",
            Self::Auth => "AUTH",
            Self::MailFrom => "MAIL FROM",
            Self::RcptTo => "RCPT TO",
            Self::Data => "DATA",
            Self::Message => "the message",
        }
    }

    /// Sorts a failure of this step from lettre's typed error: its kind (a reply, the network,
    /// TLS, the client), the reply code, and the reply's RFC 3463 enhanced status.
    pub(super) fn failure(self, error: &lettre::transport::smtp::Error) -> SendFailure {
        let reason = format!("{}: {}", self.name(), describe(error));
        let code = error.status();
        let permanent = error.is_permanent();
        let answered = code.is_some();
        let unavailable = |trouble| SendFailure::Unavailable {
            reason: reason.clone(),
            trouble,
        };
        match self {
            Self::Connect if error.is_tls() => unavailable(Trouble::Tls),
            // A 4xx to the greeting or EHLO (421 too busy) is passing too.
            Self::Connect => unavailable(Trouble::Connection),
            Self::MailFrom if permanent => unavailable(Trouble::Sender),
            // A daily quota or a throttle (454 4.7.0, 451 4.7.1): the server's to lift.
            Self::MailFrom if answered => unavailable(Trouble::Throttled),
            Self::MailFrom => unavailable(Trouble::Connection),
            // A 5xx to AUTH (535 bad credentials, 534 mechanism too weak), or no mechanism we
            // can use: the settings are wrong. A 454 is the server's passing trouble.
            Self::Auth if permanent || error.is_client() => unavailable(Trouble::Login),
            Self::Auth if answered => unavailable(Trouble::Throttled),
            Self::Auth => unavailable(Trouble::Connection),
            Self::RcptTo if permanent => match enhanced_status(error) {
                Some(status) if status.is_about_the_mailbox() => SendFailure::Mailbox(reason),
                _ => SendFailure::Refused(reason),
            },
            // lettre refused to send it (an address or body the server cannot carry): trying
            // again would do the same.
            _ if error.is_client() => SendFailure::Refused(reason),
            _ if permanent => SendFailure::Refused(reason),
            // A 4xx to RCPT, DATA or the data.
            _ if answered => SendFailure::Deferred(reason),
            // The connection failed before the data went: nothing was handed over.
            Self::RcptTo | Self::Data => unavailable(Trouble::Connection),
            // Lost while the server had the data: it may have taken it.
            Self::Message => SendFailure::Deferred(reason),
        }
    }

    pub(super) fn timed_out(self, after: Duration) -> SendFailure {
        let reason = format!("{}: no answer within {} s", self.name(), after.as_secs());
        match self {
            Self::Message => SendFailure::Deferred(reason),
            _ => SendFailure::Unavailable {
                reason,
                trouble: Trouble::Connection,
            },
        }
    }
}

/// What a lettre error says, without lettre's wrapping: the server's own words for a reply.
pub(super) fn describe(error: &lettre::transport::smtp::Error) -> String {
    match (error.status(), std::error::Error::source(error)) {
        (Some(code), Some(words)) => format!("{code} {words}"),
        (Some(code), None) => code.to_string(),
        _ => error.to_string(),
    }
}

/// An RFC 3463 enhanced status code (`class.subject.detail`), which a reply carries as the first
/// word of its text.
/// The enhanced status of a negative reply, if it gave one.
pub(super) fn enhanced_status(error: &lettre::transport::smtp::Error) -> Option<DeliveryStatus> {
    let words = std::error::Error::source(error)?.to_string();
    words.split_whitespace().next()?.parse().ok()
}
