//! Where messages go: a `file://` outbox folder, or an SMTP server over one connection per
//! sender task. lettre speaks the SMTP dialogue; the connections are ours, so that every socket
//! has TCP_NODELAY set (lettre's own pool leaves Nagle on, which costs ~40 ms a message).

use std::fmt;
use std::future::Future;
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
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;

use crate::domain::DeliveryStatus;

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
enum Step {
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
    fn failure(self, error: &lettre::transport::smtp::Error) -> SendFailure {
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

    fn timed_out(self, after: Duration) -> SendFailure {
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
fn describe(error: &lettre::transport::smtp::Error) -> String {
    match (error.status(), std::error::Error::source(error)) {
        (Some(code), Some(words)) => format!("{code} {words}"),
        (Some(code), None) => code.to_string(),
        _ => error.to_string(),
    }
}

/// An RFC 3463 enhanced status code (`class.subject.detail`), which a reply carries as the first
/// word of its text.
/// The enhanced status of a negative reply, if it gave one.
fn enhanced_status(error: &lettre::transport::smtp::Error) -> Option<DeliveryStatus> {
    let words = std::error::Error::source(error)?.to_string();
    words.split_whitespace().next()?.parse().ok()
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

/// One sender's way out: its own SMTP connection, opened when first needed and again after
/// any failure.
pub struct Connection {
    transport: Transport,
    smtp: Option<(AsyncSmtpConnection, Instant)>,
    /// The server has said 354 to a message whose content has not gone yet: until it has,
    /// anything written is taken for the message.
    awaiting_content: bool,
    /// The server takes MAIL FROM, RCPT TO and DATA in one go (RFC 2920 PIPELINING).
    pipelining: bool,
}

impl Connection {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            smtp: None,
            awaiting_content: false,
            pipelining: false,
        }
    }

    /// Makes sure a message can go at once: opens the connection when there is none, or when
    /// the one held has been idle long enough for the server to have dropped it.
    pub async fn ready(&mut self) -> Result<(), SendFailure> {
        let Transport::Smtp(server) = &self.transport else {
            return Ok(());
        };
        let server = server.clone();
        if std::mem::take(&mut self.awaiting_content) {
            // A message begun and left unfinished: the connection cannot carry another.
            self.smtp = None;
        }
        match self.smtp.take() {
            Some((connection, last)) if last.elapsed() < MAX_IDLE && !connection.has_broken() => {
                self.smtp = Some((connection, last));
            }
            stale => {
                if let Some((connection, _)) = stale {
                    quit(connection, server.timeouts.quit).await;
                }
                let (connection, pipelining) =
                    tokio::time::timeout(server.timeouts.connect, server.connect())
                        .await
                        .map_err(|_| Step::Connect.timed_out(server.timeouts.connect))??;
                self.smtp = Some((connection, Instant::now()));
                self.pipelining = pipelining;
            }
        }
        Ok(())
    }

    /// Hands one message over; returns the server's answer (or where the file went).
    /// `name` names the outbox file.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        name: &str,
    ) -> Result<String, SendFailure> {
        self.begin(envelope, message).await?;
        self.finish(message, name).await
    }

    /// The first half of sending a message: MAIL FROM, RCPT TO and DATA, so that only the
    /// message itself is left to go ([`Connection::finish`]), and nothing is accepted before.
    pub async fn begin(&mut self, envelope: &Envelope, message: &[u8]) -> Result<(), SendFailure> {
        let Transport::Smtp(server) = &self.transport else {
            return Ok(());
        };
        let server = server.clone();
        self.ready().await?;
        let (mut connection, _) = self.smtp.take().expect("ready leaves a connection");
        let steps = envelope_steps(
            &mut connection,
            envelope,
            message,
            self.pipelining,
            &server.timeouts,
        );
        match steps.await {
            Ok(()) => {
                self.smtp = Some((connection, Instant::now()));
                self.awaiting_content = true;
                Ok(())
            }
            Err((failure, answered)) => Err(self
                .after_refusal(connection, answered, &server, failure)
                .await),
        }
    }

    /// The second half: the message itself, after [`Connection::begin`]; returns the server's
    /// answer (or where the file went). `name` names the outbox file.
    pub async fn finish(&mut self, message: &[u8], name: &str) -> Result<String, SendFailure> {
        let server = match &self.transport {
            Transport::Outbox(dir) => return write_to_outbox(dir, name, message).await,
            Transport::Smtp(server) => server.clone(),
        };
        self.awaiting_content = false;
        let (mut connection, _) = self
            .smtp
            .take()
            .expect("finish follows a begin, which leaves a connection");
        match step(
            server.timeouts.message,
            Step::Message,
            connection.message(message),
        )
        .await
        {
            Ok(response) => {
                let answer = format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                );
                self.smtp = Some((connection, Instant::now()));
                Ok(answer)
            }
            Err((failure, answered)) => Err(self
                .after_refusal(connection, answered, &server, failure)
                .await),
        }
    }

    /// After a refusal the server still talks: RSET clears the transaction and the connection
    /// serves the next message. After anything else its state is unknown, and it is dropped.
    async fn after_refusal(
        &mut self,
        mut connection: AsyncSmtpConnection,
        answered: bool,
        server: &SmtpServer,
        failure: SendFailure,
    ) -> SendFailure {
        if answered
            && step(
                server.timeouts.command,
                Step::Data,
                connection.command(Rset),
            )
            .await
            .is_ok()
        {
            self.smtp = Some((connection, Instant::now()));
        }
        failure
    }

    /// Says goodbye to the server, if connected, waiting for its answer a few seconds at most.
    pub async fn close(&mut self) {
        if let (Some((connection, _)), Transport::Smtp(server)) =
            (self.smtp.take(), &self.transport)
        {
            // A message begun and not finished is dropped with the connection: a QUIT would
            // be taken for its content.
            if !std::mem::take(&mut self.awaiting_content) {
                quit(connection, server.timeouts.quit).await;
            }
        }
    }
}

/// The start of one message's transaction on an open connection: MAIL FROM, RCPT TO, DATA,
/// written in one go when the server takes them so (`pipelining`). A failure says whether the
/// server answered it (a refusal), after which the connection can carry on; after anything
/// else its state is unknown.
async fn envelope_steps(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    message: &[u8],
    pipelining: bool,
    timeouts: &Timeouts,
) -> Result<(), (SendFailure, bool)> {
    let mut options = Vec::new();
    // As lettre's own `send`: SMTPUTF8 for an address beyond ASCII, 8BITMIME for a body.
    let addresses = envelope.from().into_iter().chain(envelope.to());
    if addresses.map(AsRef::<str>::as_ref).any(|a| !a.is_ascii()) {
        if !connection
            .server_info()
            .supports_feature(Extension::SmtpUtfEight)
        {
            let reason = "the server does not take addresses beyond ASCII (no SMTPUTF8)";
            return Err((SendFailure::Refused(reason.into()), true));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(envelope.from().cloned(), options);
    if pipelining {
        return pipelined(connection, mail, envelope, timeouts).await;
    }
    step(timeouts.command, Step::MailFrom, connection.command(mail)).await?;
    for to in envelope.to() {
        let rcpt = Rcpt::new(to.clone(), Vec::new());
        step(timeouts.command, Step::RcptTo, connection.command(rcpt)).await?;
    }
    step(timeouts.command, Step::Data, connection.command(Data)).await?;
    Ok(())
}

/// MAIL FROM, RCPT TO and DATA written as one group (RFC 2920), then their answers read in
/// order. Every answer is read even after a refusal, so that the connection can carry on; the
/// first refusal is the failure. A DATA answered 354 after a refusal leaves the server waiting
/// for a message: that connection is not used again.
async fn pipelined(
    connection: &mut AsyncSmtpConnection,
    mail: Mail,
    envelope: &Envelope,
    timeouts: &Timeouts,
) -> Result<(), (SendFailure, bool)> {
    let mut group = mail.to_string();
    let mut steps = vec![Step::MailFrom];
    for to in envelope.to() {
        group.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
        steps.push(Step::RcptTo);
    }
    group.push_str(&Data.to_string());
    steps.push(Step::Data);
    let mut refused = None;
    for (i, &step_of) in steps.iter().enumerate() {
        let answer = match i {
            0 => step(timeouts.command, step_of, connection.command(&group)).await,
            _ => step(timeouts.command, step_of, connection.read_response()).await,
        };
        match answer {
            Ok(_) => {
                if step_of == Step::Data
                    && let Some((failure, _)) = refused
                {
                    return Err((failure, false));
                }
            }
            Err((failure, true)) => {
                refused.get_or_insert((failure, true));
            }
            Err(unanswered) => return Err(unanswered),
        }
    }
    refused.map_or(Ok(()), Err)
}

/// Runs one step of the dialogue within `limit`; a failure is sorted by the step, and says
/// whether the server answered.
async fn step(
    limit: Duration,
    step: Step,
    exchange: impl Future<Output = Result<Response, lettre::transport::smtp::Error>>,
) -> Result<Response, (SendFailure, bool)> {
    match tokio::time::timeout(limit, exchange).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err((step.failure(&error), error.status().is_some())),
        Err(_) => Err((step.timed_out(limit), false)),
    }
}

/// Sends QUIT and closes, waiting `limit` at most for the server's answer: a server that has
/// gone quiet costs that, not a hang.
async fn quit(mut connection: AsyncSmtpConnection, limit: Duration) {
    let _ = tokio::time::timeout(limit, connection.quit()).await;
}

impl SmtpServer {
    /// Connects, greets, says EHLO, starts TLS and logs in, as the URL asks.
    /// Says whether the server takes commands in groups (PIPELINING) too.
    async fn connect(&self) -> Result<(AsyncSmtpConnection, bool), SendFailure> {
        let failed_with =
            |trouble, what: &str, error: &dyn fmt::Display| SendFailure::Unavailable {
                reason: format!("{what} {}:{}: {error}", self.host, self.port),
                trouble,
            };
        let failed =
            |what: &str, error: &dyn fmt::Display| failed_with(Trouble::Connection, what, error);
        // A handshake that rustls refused (a certificate it cannot verify, a protocol it will
        // not speak) needs a person; one the network cut short does not.
        let tls_failed = |error: std::io::Error| {
            let refused = error
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
            match refused {
                true => failed_with(Trouble::Tls, "TLS with", &error),
                false => failed("TLS with", &error),
            }
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| failed("connecting to", &e))?;
        tcp.set_nodelay(true)
            .map_err(|e| failed("setting TCP_NODELAY for", &e))?;
        let stream: Box<dyn AsyncTokioStream> = match self.security {
            Security::Tls => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| failed_with(Trouble::Tls, "TLS name of", &e))?;
                let tls = TlsConnector::from(self.tls_config())
                    .connect(name, Capped::new(tcp))
                    .await
                    .map_err(tls_failed)?;
                Box::new(TlsTcp(tls))
            }
            Security::None | Security::StartTls => Box::new(Capped::new(tcp)),
        };
        let mut connection = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|e| Step::Connect.failure(&e))?;
        if self.security == Security::StartTls {
            if !connection.can_starttls() {
                return Err(failed_with(
                    Trouble::Tls,
                    "STARTTLS refused: the server does not offer it, and smtp+starttls:// \
                     sends nothing in clear;",
                    &"use smtps:// or smtp:// if that is meant",
                ));
            }
            let mut parameters = TlsParameters::builder(self.host.clone());
            for root in &self.extra_roots {
                let root = Certificate::from_der(root.to_vec())
                    .map_err(|e| failed_with(Trouble::Tls, "TLS parameters for", &e))?;
                parameters = parameters.add_root_certificate(root);
            }
            let parameters = parameters
                .build_rustls()
                .map_err(|e| failed_with(Trouble::Tls, "TLS parameters for", &e))?;
            connection
                .starttls(parameters, &self.hello)
                .await
                .map_err(|e| {
                    let trouble = match e.is_tls() {
                        true => Trouble::Tls,
                        false => Trouble::Connection,
                    };
                    failed_with(trouble, "STARTTLS with", &describe(&e))
                })?;
        }
        // lettre keeps only the EHLO keywords it acts on, and PIPELINING is not one of them:
        // EHLO is said again to read it (before AUTH, which a later EHLO may undo).
        let ehlo = connection
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(|e| Step::Connect.failure(&e))?;
        let pipelining = ehlo.message().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
        });
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| Step::Auth.failure(&e))?;
        }
        Ok((connection, pipelining))
    }

    /// A TLS client trusting the Mozilla roots and any extra ones.
    fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        super::tls::client(&self.extra_roots)
    }
}

/// A socket that refuses to read more than [`MAX_READ_BETWEEN_WRITES`] bytes between two
/// writes: lettre reads a reply line until its end, and a server sending an endless line
/// would otherwise grow that line until memory runs out.
struct Capped<S> {
    inner: S,
    read_since_write: usize,
}

impl<S> Capped<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            read_since_write: 0,
        }
    }
}

impl<S> fmt::Debug for Capped<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Capped")
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read_since_write >= MAX_READ_BETWEEN_WRITES {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the server sent over {MAX_READ_BETWEEN_WRITES} bytes without a turn"),
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.read_since_write += buf.filled().len() - before;
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.read_since_write = 0;
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Capped<TcpStream> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

/// Implicit TLS over a socket we opened (with TCP_NODELAY), in the form lettre takes.
struct TlsTcp(tokio_rustls::client::TlsStream<Capped<TcpStream>>);

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
        self.0.get_ref().0.inner.peer_addr()
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
        // A full disk or a missing permission: nothing to gain from retrying each message; the
        // campaign pauses and the admins are told.
        Err(e) => Err(SendFailure::Unavailable {
            reason: format!("writing {}: {e}", path.display()),
            trouble: Trouble::Outbox,
        }),
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
