//! Where messages go: a `file://` outbox folder, or an SMTP server over one connection per
//! sender task. lettre speaks the SMTP dialogue; the connections are ours, so that every socket
//! has TCP_NODELAY set (lettre's own pool leaves Nagle on, which costs ~40 ms a message).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use tokio_rustls::rustls::pki_types::CertificateDer;

mod connection;
mod failure;
mod outbox;
mod stream;

pub use connection::Connection;
pub use failure::{SendFailure, Trouble};

/// A connection idle longer than this is closed and opened again: servers drop idle clients
/// (Postfix after 300 s), and a message sent into a dead connection would wait for a retry.
const MAX_IDLE: Duration = Duration::from_secs(30);

/// The most a server may send between two things we write (a reply, or a greeting): enough
/// for any honest multi-line answer and a TLS handshake, and a bound on a server that never
/// stops talking.
const MAX_READ_BETWEEN_WRITES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "{0}: not a mail destination; use smtp://HOST[:PORT], smtp+starttls://USER:PASS@HOST[:PORT], \
         smtps://USER:PASS@HOST[:PORT] or file://DIR"
    )]
    Unsupported(String),
    #[error("{0}: {1}")]
    Invalid(String, &'static str),
    #[error("CANVASS_SMTP_CA_FILE {0}: {1}")]
    CaFile(PathBuf, String),
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: plain text, for a relay on this machine or a private network.
    None,
    /// `smtp+starttls://`: STARTTLS required before anything is sent.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
}

/// An SMTP server and how to reach it.
#[derive(Clone)]
pub struct SmtpServer {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    user: Option<String>,
    hello: ClientId,
    timeouts: Timeouts,
    /// Certificates trusted besides the Mozilla roots: an internal relay's private CA.
    extra_roots: Vec<CertificateDer<'static>>,
}

/// Where messages go.
#[derive(Clone)]
pub enum Transport {
    /// A folder: one `.eml` file per message.
    Outbox(PathBuf),
    Smtp(Arc<SmtpServer>),
}

impl Transport {
    /// The mail provider that runs this relay, if it is one canvass knows (its messages then
    /// carry their Message-ID the way its webhooks return it).
    pub fn providers(&self) -> crate::hooks::Providers {
        match self {
            Self::Outbox(_) => crate::hooks::Providers::default(),
            Self::Smtp(server) => crate::hooks::Providers::of_relay(&server.host),
        }
    }

    /// Parses `file://DIR`, `smtp://HOST[:PORT]`, `smtp+starttls://[USER:PASS@]HOST[:PORT]` or
    /// `smtps://[USER:PASS@]HOST[:PORT]`. The user name and password are percent-decoded.
    pub fn from_url(url: &str) -> Result<Self, TransportError> {
        if let Some(dir) = url.strip_prefix("file://") {
            return if dir.is_empty() {
                Err(TransportError::Invalid(
                    url.into(),
                    "name the outbox folder, e.g. file://outbox",
                ))
            } else {
                Ok(Self::Outbox(PathBuf::from(dir)))
            };
        }
        let unsupported = || TransportError::Unsupported(redact(url));
        let parsed = url::Url::parse(url).map_err(|_| unsupported())?;
        let (security, default_port) = match parsed.scheme() {
            "smtp" => (Security::None, 25),
            "smtp+starttls" => (Security::StartTls, 587),
            "smtps" => (Security::Tls, 465),
            _ => return Err(unsupported()),
        };
        let host = parsed
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| TransportError::Invalid(redact(url), "the URL names no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let decode = |part: &str| {
            percent_decode(part).ok_or_else(|| {
                TransportError::Invalid(redact(url), "the user or password is not valid UTF-8")
            })
        };
        let user = decode(parsed.username())?;
        let credentials = match (user.is_empty(), parsed.password()) {
            (true, None) => None,
            (_, password) => Some(Credentials::new(
                user.clone(),
                decode(password.unwrap_or(""))?,
            )),
        };
        if credentials.is_some() && security == Security::None && !is_loopback(&host) {
            return Err(TransportError::Invalid(
                redact(url),
                "a password would cross the network in clear; use smtps:// or smtp+starttls://",
            ));
        }
        Ok(Self::Smtp(Arc::new(SmtpServer {
            port: parsed.port().unwrap_or(default_port),
            host,
            security,
            user: credentials.as_ref().map(|_| user),
            credentials,
            hello: ClientId::default(),
            timeouts: Timeouts::default(),
            extra_roots: Vec::new(),
        })))
    }

    /// Trusts the certificates of the PEM file at `path` besides the Mozilla roots, for a relay
    /// whose certificate comes from a private CA.
    pub fn trusting(self, path: &std::path::Path) -> Result<Self, TransportError> {
        let certificates = super::tls::read_roots(path)
            .map_err(|reason| TransportError::CaFile(path.to_owned(), reason))?;
        Ok(self.with_server(|server| server.extra_roots = certificates))
    }

    /// Waits at most these long for each step of the SMTP dialogue.
    pub fn with_timeouts(self, timeouts: Timeouts) -> Self {
        self.with_server(|server| server.timeouts = timeouts)
    }

    /// The same server, without logging in: as mail to the server's own domains arrives from
    /// anywhere, for telling the admins that it refused our login.
    pub fn anonymous(self) -> Self {
        self.with_server(|server| {
            server.credentials = None;
            server.user = None;
        })
    }

    fn with_server(self, change: impl FnOnce(&mut SmtpServer)) -> Self {
        match self {
            Self::Smtp(server) => {
                let mut server = Arc::unwrap_or_clone(server);
                change(&mut server);
                Self::Smtp(Arc::new(server))
            }
            outbox => outbox,
        }
    }
}

impl Transport {
    /// How logs and the database name it: `host:port`, or `outbox`.
    pub fn name(&self) -> String {
        match self {
            Self::Outbox(_) => "outbox".into(),
            Self::Smtp(server) => format!("{}:{}", server.host, server.port),
        }
    }

    /// Whether mail goes over SMTP to another machine (not this one's loopback).
    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Smtp(server) if !is_loopback(&server.host))
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Shows where mail goes, without the password.
impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Outbox(dir) => write!(f, "file://{}", dir.display()),
            Self::Smtp(server) => {
                let scheme = match server.security {
                    Security::None => "smtp",
                    Security::StartTls => "smtp+starttls",
                    Security::Tls => "smtps",
                };
                let user = server
                    .user
                    .as_ref()
                    .map(|user| format!("{user}@"))
                    .unwrap_or_default();
                write!(f, "{scheme}://{user}{}:{}", server.host, server.port)
            }
        }
    }
}

/// A URL with any password replaced, for error messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Not even a URL: hide whatever precedes an @.
        Err(_) => match (url.split_once("://"), url.rfind('@')) {
            (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &url[at..]),
            _ => url.to_owned(),
        },
    }
}

fn percent_decode(part: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("x={}", part.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How long each step of the dialogue may take. A server that stops answering costs one of
/// these, never a hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting, TLS, the greeting, EHLO, STARTTLS and AUTH together.
    pub connect: Duration,
    /// Each command: MAIL FROM, RCPT TO, DATA, RSET.
    pub command: Duration,
    /// Writing the message and reading the answer after its final dot (RFC 5321 §4.5.3.2
    /// allows ten minutes for that answer alone; a stuck server should not hold a connection
    /// that long).
    pub message: Duration,
    /// QUIT, when closing.
    pub quit: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(60),
            message: Duration::from_secs(120),
            quit: Duration::from_secs(5),
        }
    }
}

/// The envelope sender and recipient of one message.
pub fn envelope(from: &Address, to: &Address) -> Envelope {
    Envelope::new(Some(from.clone()), vec![to.clone()])
        .expect("an envelope with one recipient is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_transports() {
        let shown = |url: &str| Transport::from_url(url).unwrap().to_string();
        assert_eq!(shown("file://outbox"), "file://outbox");
        assert_eq!(shown("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
        assert_eq!(
            shown("smtp://mail.example.org"),
            "smtp://mail.example.org:25"
        );
        assert_eq!(
            shown("smtp+starttls://news%40example.org:p%40ss@mail.example.org"),
            "smtp+starttls://news@example.org@mail.example.org:587"
        );
        assert_eq!(
            shown("smtps://user:secret@mail.example.org"),
            "smtps://user@mail.example.org:465"
        );
        let Transport::Smtp(server) = Transport::from_url("smtps://a%2Bb:p%2Bq%3A@h").unwrap()
        else {
            panic!("not smtp")
        };
        assert_eq!(server.user.as_deref(), Some("a+b"));
        assert_eq!(
            server.credentials,
            Some(Credentials::new("a+b".into(), "p+q:".into()))
        );
    }

    #[test]
    fn bad_urls_are_refused_without_showing_the_password() {
        for url in [
            "http://example.org",
            "outbox",
            "file://",
            "smtp://",
            "smtps://u:pw@",
        ] {
            let error = Transport::from_url(url).unwrap_err().to_string();
            assert!(!error.contains(":pw@"), "{error}");
        }
        let error = Transport::from_url("smtp://user:secret@mail.example.org")
            .unwrap_err()
            .to_string();
        assert!(error.contains("in clear"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        // Over loopback a password in clear is the operator's own business.
        Transport::from_url("smtp://user:secret@127.0.0.1:2525").unwrap();
    }
}
