//! Where messages go: a `file://` outbox folder, or an SMTP server over one connection per
//! sender task. lettre speaks the SMTP dialogue; the connections are ours, so that every socket
//! has TCP_NODELAY set (lettre's own pool leaves Nagle on, which costs ~40 ms a message).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

/// How long connecting and greeting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one message may take, from MAIL to the answer after the final dot (RFC 5321
/// §4.5.3.2 allows the server ten minutes for that answer alone; a stuck server should not
/// hold a connection that long).
const SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// A connection idle longer than this is closed and opened again: servers drop idle clients
/// (Postfix after 300 s), and a message sent into a dead connection would wait for a retry.
const MAX_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "{0}: not a mail destination; use smtp://HOST[:PORT], smtp+starttls://USER:PASS@HOST[:PORT], \
         smtps://USER:PASS@HOST[:PORT] or file://DIR"
    )]
    Unsupported(String),
    #[error("{0}: {1}")]
    Invalid(String, &'static str),
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
}

/// Where messages go.
#[derive(Clone)]
pub enum Transport {
    /// A folder: one `.eml` file per message.
    Outbox(PathBuf),
    Smtp(Arc<SmtpServer>),
}

impl Transport {
    /// Parses `file://DIR`, `smtp://HOST[:PORT]`, `smtp+starttls://[USER:PASS@]HOST[:PORT]` or
    /// `smtps://[USER:PASS@]HOST[:PORT]`. The user name and password are percent-decoded.
    pub fn from_url(url: &str) -> Result<Self, TransportError> {
        if let Some(dir) = url.strip_prefix("file://") {
            return match dir.is_empty() {
                true => Err(TransportError::Invalid(
                    url.into(),
                    "name the outbox folder, e.g. file://outbox",
                )),
                false => Ok(Self::Outbox(PathBuf::from(dir))),
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
        })))
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

/// Why a message was not handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// Worth trying again later: a 4xx answer, a dropped connection, a timeout.
    Transient(String),
    /// The server refused this recipient for good (5.1.x: no such mailbox, bad address).
    Recipient(String),
    /// The server refused the message for good, for a reason not about the recipient.
    Permanent(String),
}

impl SendFailure {
    pub fn reason(&self) -> &str {
        match self {
            Self::Transient(reason) | Self::Recipient(reason) | Self::Permanent(reason) => reason,
        }
    }

    /// Sorts lettre's errors with its transient/permanent distinction; among permanent
    /// answers, the enhanced status code (RFC 3463) picks out the recipient's own: 5.1.x is
    /// about the address. Without an enhanced code, 550, 551 and 553 are the answers to RCPT.
    fn from_smtp(error: &lettre::transport::smtp::Error) -> Self {
        let reason = error.to_string();
        if error.is_permanent() {
            let answer = reason.split_once("): ").map_or("", |(_, answer)| answer);
            let enhanced = answer
                .split_whitespace()
                .next()
                .filter(|code| code.len() >= 5 && code.as_bytes()[1] == b'.');
            let about_recipient = match enhanced {
                Some(code) => code.starts_with("5.1."),
                None => error
                    .status()
                    .is_some_and(|code| matches!(code.to_string().as_str(), "550" | "551" | "553")),
            };
            match about_recipient {
                true => Self::Recipient(reason),
                false => Self::Permanent(reason),
            }
        } else if error.is_client() {
            // lettre refused to send it (e.g. an address the server cannot take): a retry
            // would do the same.
            Self::Permanent(reason)
        } else {
            Self::Transient(reason)
        }
    }
}

/// One sender's way out: its own SMTP connection, opened when first needed and again after
/// any failure.
pub struct Connection {
    transport: Transport,
    smtp: Option<(AsyncSmtpConnection, Instant)>,
}

impl Connection {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            smtp: None,
        }
    }

    /// Hands one message over; returns the server's answer (or where the file went).
    /// `name` names the outbox file.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        name: &str,
    ) -> Result<String, SendFailure> {
        let server = match &self.transport {
            Transport::Outbox(dir) => return write_to_outbox(dir, name, message).await,
            Transport::Smtp(server) => server.clone(),
        };
        let mut connection = match self.smtp.take() {
            Some((connection, last)) if last.elapsed() < MAX_IDLE && !connection.has_broken() => {
                connection
            }
            stale => {
                if let Some((mut connection, _)) = stale {
                    connection.abort().await;
                }
                tokio::time::timeout(CONNECT_TIMEOUT, server.connect())
                    .await
                    .map_err(|_| {
                        SendFailure::Transient(format!(
                            "connecting to {}:{} timed out",
                            server.host, server.port
                        ))
                    })??
            }
        };
        match tokio::time::timeout(SEND_TIMEOUT, connection.send(envelope, message)).await {
            Ok(Ok(response)) => {
                let answer = format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                );
                self.smtp = Some((connection, Instant::now()));
                Ok(answer)
            }
            // The connection is not reused after a failure: lettre has already closed it after
            // a negative answer, and after a timeout its state is unknown.
            Ok(Err(error)) => Err(SendFailure::from_smtp(&error)),
            Err(_) => Err(SendFailure::Transient(format!(
                "no answer from {}:{} within {} s",
                server.host,
                server.port,
                SEND_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Says goodbye to the server, if connected.
    pub async fn close(&mut self) {
        if let Some((mut connection, _)) = self.smtp.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), connection.quit()).await;
        }
    }
}

impl SmtpServer {
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendFailure> {
        let failed = |what: &str, error: &dyn fmt::Display| {
            SendFailure::Transient(format!("{what} {}:{}: {error}", self.host, self.port))
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| failed("connecting to", &e))?;
        tcp.set_nodelay(true)
            .map_err(|e| failed("setting TCP_NODELAY for", &e))?;
        let stream: Box<dyn AsyncTokioStream> = match self.security {
            Security::Tls => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| failed("TLS name of", &e))?;
                let tls = tls_connector()
                    .connect(name, tcp)
                    .await
                    .map_err(|e| failed("TLS with", &e))?;
                Box::new(TlsTcp(tls))
            }
            Security::None | Security::StartTls => Box::new(tcp),
        };
        let mut connection = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|e| SendFailure::from_smtp(&e))?;
        if self.security == Security::StartTls {
            let parameters = TlsParameters::new(self.host.clone())
                .map_err(|e| failed("TLS parameters for", &e))?;
            connection
                .starttls(parameters, &self.hello)
                .await
                .map_err(|e| failed("STARTTLS with", &e))?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| SendFailure::from_smtp(&e))?;
        }
        Ok(connection)
    }
}

/// A TLS client trusting the Mozilla roots, made once.
fn tls_connector() -> TlsConnector {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    });
    TlsConnector::from(config.clone())
}

/// Implicit TLS over a socket we opened (with TCP_NODELAY), in the form lettre takes.
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl fmt::Debug for TlsTcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTcp")
    }
}

impl AsyncRead for TlsTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// Writes the message whole to a hidden file, then renames it into place: a crash never
/// leaves half a message in the outbox.
async fn write_to_outbox(dir: &PathBuf, name: &str, message: &[u8]) -> Result<String, SendFailure> {
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    let written = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(&partial, message).await?;
        tokio::fs::rename(&partial, &path).await
    };
    match written.await {
        Ok(()) => Ok(format!("written to {}", path.display())),
        // A full disk or a missing permission: nothing to gain from retrying each message,
        // so these count towards pausing the campaign like a server that refuses everything.
        Err(e) => Err(SendFailure::Transient(format!(
            "writing {}: {e}",
            path.display()
        ))),
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
