//! One SMTP connection of one sender task: opened with TCP_NODELAY, TLS as the settings say,
//! AUTH when given, kept while it is used and closed when it idles; each message's envelope
//! sent pipelined where the server offers it.

use super::failure::{Step, describe};
use super::outbox::write_to_outbox;
use super::stream::{Capped, TlsTcp};
use super::{MAX_IDLE, Security, SendFailure, SmtpServer, Timeouts, Transport, Trouble};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

/// One sender's way out: its own SMTP connection, opened when first needed and again after
/// any failure.
pub struct Connection {
    transport: Transport,
    state: State,
}

/// Where the SMTP conversation stands.
enum State {
    /// No connection: the next message opens one.
    Closed,
    /// Open between messages, last used at the instant it holds.
    Idle(Open, Instant),
    /// The server has said 354 to a message whose content has not gone yet: until it has,
    /// anything written is taken for the message.
    AwaitingContent(Open),
}

/// An open SMTP connection.
struct Open {
    smtp: AsyncSmtpConnection,
    /// The server takes MAIL FROM, RCPT TO and DATA in one go (RFC 2920 PIPELINING).
    pipelining: bool,
}

impl Connection {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            state: State::Closed,
        }
    }

    /// Makes sure a message can go at once: opens the connection when there is none, or when
    /// the one held has been idle long enough for the server to have dropped it.
    pub async fn ready(&mut self) -> Result<(), SendFailure> {
        let Transport::Smtp(server) = &self.transport else {
            return Ok(());
        };
        let server = server.clone();
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Idle(open, last) if last.elapsed() < MAX_IDLE && !open.smtp.has_broken() => {
                self.state = State::Idle(open, last);
                return Ok(());
            }
            State::Idle(stale, _) => quit(stale.smtp, server.timeouts.quit).await,
            // A message begun and left unfinished: the connection cannot carry another.
            State::AwaitingContent(_) | State::Closed => {}
        }
        let (smtp, pipelining) = tokio::time::timeout(server.timeouts.connect, server.connect())
            .await
            .map_err(|_| Step::Connect.timed_out(server.timeouts.connect))??;
        self.state = State::Idle(Open { smtp, pipelining }, Instant::now());
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
        let State::Idle(mut open, _) = std::mem::replace(&mut self.state, State::Closed) else {
            unreachable!("ready leaves an idle connection");
        };
        let steps = envelope_steps(
            &mut open.smtp,
            envelope,
            message,
            open.pipelining,
            &server.timeouts,
        );
        match steps.await {
            Ok(()) => {
                self.state = State::AwaitingContent(open);
                Ok(())
            }
            Err((failure, answered)) => {
                Err(self.after_refusal(open, answered, &server, failure).await)
            }
        }
    }

    /// The second half: the message itself, after [`Connection::begin`]; returns the server's
    /// answer (or where the file went). `name` names the outbox file.
    pub async fn finish(&mut self, message: &[u8], name: &str) -> Result<String, SendFailure> {
        let server = match &self.transport {
            Transport::Outbox(dir) => return write_to_outbox(dir, name, message).await,
            Transport::Smtp(server) => server.clone(),
        };
        let State::AwaitingContent(mut open) = std::mem::replace(&mut self.state, State::Closed)
        else {
            unreachable!("finish follows a begin, which leaves a connection awaiting content");
        };
        match step(
            server.timeouts.message,
            Step::Message,
            open.smtp.message(message),
        )
        .await
        {
            Ok(response) => {
                let answer = format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                );
                self.state = State::Idle(open, Instant::now());
                Ok(answer)
            }
            Err((failure, answered)) => {
                Err(self.after_refusal(open, answered, &server, failure).await)
            }
        }
    }

    /// After a refusal the server still talks: RSET clears the transaction and the connection
    /// serves the next message. After anything else its state is unknown, and it is dropped.
    async fn after_refusal(
        &mut self,
        mut open: Open,
        answered: bool,
        server: &SmtpServer,
        failure: SendFailure,
    ) -> SendFailure {
        if answered
            && step(server.timeouts.command, Step::Data, open.smtp.command(Rset))
                .await
                .is_ok()
        {
            self.state = State::Idle(open, Instant::now());
        }
        failure
    }

    /// Says goodbye to the server, if connected, waiting for its answer a few seconds at most.
    pub async fn close(&mut self) {
        let state = std::mem::replace(&mut self.state, State::Closed);
        if let (State::Idle(open, _), Transport::Smtp(server)) = (state, &self.transport) {
            quit(open.smtp, server.timeouts.quit).await;
        }
        // A message begun and not finished is dropped with the connection: a QUIT would be
        // taken for its content.
    }
}

/// The start of one message's transaction on an open connection: MAIL FROM, RCPT TO, DATA,
/// written in one go when the server takes them so (`pipelining`). A failure says whether the
/// server answered it (a refusal), after which the connection can carry on; after anything
/// else its state is unknown.
pub(super) async fn envelope_steps(
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
pub(super) async fn pipelined(
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
pub(super) async fn step(
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
pub(super) async fn quit(mut connection: AsyncSmtpConnection, limit: Duration) {
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
            if refused {
                failed_with(Trouble::Tls, "TLS with", &error)
            } else {
                failed("TLS with", &error)
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
                    let trouble = if e.is_tls() {
                        Trouble::Tls
                    } else {
                        Trouble::Connection
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
        crate::mail::tls::client(&self.extra_roots)
    }
}
