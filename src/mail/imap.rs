//! The bounce mailbox over IMAP (`CANVASS_INBOX_URL=imaps://user:pass@host/INBOX`, or
//! `imap://` with STARTTLS required): its messages read one at a time, each then moved to
//! `canvass/processed` or `canvass/ignored` (made when missing), never deleted; a message left
//! behind by a crash between reading and moving is read again, which changes nothing (the
//! reader keeps each message's digest).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// The largest message read: a bounce quoting a whole newsletter is well under it.
const LARGEST_MESSAGE: u32 = 10 * 1024 * 1024;
/// Each step (connecting, logging in, each command) may take at most this long.
const STEP: Duration = Duration::from_secs(60);

/// Where the bounce mailbox is, and how to log in.
#[derive(Clone)]
pub struct MailboxUrl {
    host: String,
    port: u16,
    /// `imaps://`: TLS from the first byte; `imap://`: STARTTLS, required.
    implicit_tls: bool,
    user: String,
    password: String,
    folder: String,
}

impl fmt::Display for MailboxUrl {
    /// Where it is, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.implicit_tls { "imaps" } else { "imap" };
        write!(
            f,
            "{scheme}://{}@{}:{}/{}",
            self.user, self.host, self.port, self.folder
        )
    }
}

impl fmt::Debug for MailboxUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("CANVASS_INBOX_URL: {0}")]
    Url(&'static str),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: no answer within {1} s")]
    Timeout(String, u64),
    #[error("the mailbox refused our login: {0}")]
    Login(String),
    #[error("{0}: {1}")]
    Imap(String, async_imap::error::Error),
}

impl std::str::FromStr for MailboxUrl {
    type Err = ImapError;

    /// `imaps://USER:PASS@HOST[:993][/FOLDER]` or `imap://USER:PASS@HOST[:143][/FOLDER]`; the
    /// user and password percent-decoded; the folder INBOX when none is named.
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let parsed = url::Url::parse(url.trim())
            .map_err(|_| ImapError::Url("not a URL: imaps://user:password@host/INBOX"))?;
        let (implicit_tls, port) = match parsed.scheme() {
            "imaps" => (true, 993),
            "imap" => (false, 143),
            _ => return Err(ImapError::Url("use imaps:// (or imap:// with STARTTLS)")),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(ImapError::Url("the URL names no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ImapError::Url("the user or password is not valid UTF-8"))
        };
        let user = decode(parsed.username())?;
        let password = decode(parsed.password().unwrap_or_default())?;
        if user.is_empty() || password.is_empty() {
            return Err(ImapError::Url("give the mailbox's user and password"));
        }
        let folder = decode(parsed.path().trim_start_matches('/'))?;
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(port),
            implicit_tls,
            user,
            password,
            folder: if folder.is_empty() {
                "INBOX".into()
            } else {
                folder
            },
        })
    }
}

/// Where a message read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filed {
    /// Acted on (or read before).
    Processed,
    /// Not a report about canvass's mail, unreadable, or too large.
    Ignored,
}

/// An open session on the mailbox's folder.
pub struct Mailbox {
    session: Session<TlsStream<TcpStream>>,
    processed: String,
    ignored: String,
    can_move: bool,
    /// UID EXPUNGE (RFC 4315): without it, EXPUNGE (the mailbox is canvass's alone).
    uidplus: bool,
    label: String,
}

/// Runs one step within [`STEP`], naming it in any error.
async fn step<T, E>(
    what: &str,
    future: impl Future<Output = Result<T, E>>,
    error: impl FnOnce(String, E) -> ImapError,
) -> Result<T, ImapError> {
    match tokio::time::timeout(STEP, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(error(what.to_owned(), e)),
        Err(_) => Err(ImapError::Timeout(what.to_owned(), STEP.as_secs())),
    }
}

impl Mailbox {
    /// Connects (TLS from the start, or STARTTLS), logs in, selects the folder, and makes the
    /// two folders messages are moved to.
    pub async fn open(url: &MailboxUrl, tls: Arc<rustls::ClientConfig>) -> Result<Self, ImapError> {
        let label = url.to_string();
        let tcp = step(
            "connecting",
            TcpStream::connect((url.host.as_str(), url.port)),
            ImapError::Io,
        )
        .await?;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|_| ImapError::Url("the host is not a valid name for TLS"))?;
        let connector = TlsConnector::from(tls);
        let tls_stream = if url.implicit_tls {
            step("TLS", connector.connect(name, tcp), ImapError::Io).await?
        } else {
            let mut plain = Client::new(tcp);
            step("the greeting", greeting(&mut plain), ImapError::Imap).await?;
            step(
                "STARTTLS",
                plain.run_command_and_check_ok("STARTTLS", None),
                ImapError::Imap,
            )
            .await?;
            step(
                "TLS",
                connector.connect(name, plain.into_inner()),
                ImapError::Io,
            )
            .await?
        };
        let mut client = Client::new(tls_stream);
        if url.implicit_tls {
            step("the greeting", greeting(&mut client), ImapError::Imap).await?;
        }
        let mut session =
            match tokio::time::timeout(STEP, client.login(&url.user, &url.password)).await {
                Ok(Ok(session)) => session,
                Ok(Err((e, _))) => return Err(ImapError::Login(e.to_string())),
                Err(_) => return Err(ImapError::Timeout("logging in".into(), STEP.as_secs())),
            };
        let capabilities = step("CAPABILITY", session.capabilities(), ImapError::Imap).await?;
        let (can_move, uidplus) = (
            capabilities.has_str("MOVE"),
            capabilities.has_str("UIDPLUS"),
        );
        // The hierarchy's separator, from the server: canvass/processed or canvass.processed.
        let separator = step(
            "LIST",
            async {
                let names: Vec<_> = session
                    .list(Some(""), Some(""))
                    .await?
                    .try_collect()
                    .await?;
                Ok::<_, async_imap::error::Error>(
                    names
                        .first()
                        .and_then(|name| name.delimiter().map(str::to_owned))
                        .unwrap_or_else(|| "/".into()),
                )
            },
            ImapError::Imap,
        )
        .await?;
        let processed = format!("canvass{separator}processed");
        let ignored = format!("canvass{separator}ignored");
        for folder in [&processed, &ignored] {
            // Made the first time; "already exists" every time after. Anything else is said,
            // and the move into it will say again what is wrong.
            if let Err(e) = step("CREATE", session.create(folder), ImapError::Imap).await
                && !e.to_string().to_ascii_lowercase().contains("exist")
            {
                tracing::warn!(mailbox = %label, "making {folder}: {e}");
            }
        }
        step("SELECT", session.select(&url.folder), ImapError::Imap).await?;
        Ok(Self {
            session,
            processed,
            ignored,
            can_move,
            uidplus,
            label,
        })
    }

    /// The UIDs of every message in the folder, oldest first.
    pub async fn waiting(&mut self) -> Result<Vec<u32>, ImapError> {
        let mut uids: Vec<u32> = step(
            "SEARCH",
            self.session.uid_search("UNDELETED"),
            ImapError::Imap,
        )
        .await?
        .into_iter()
        .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The message with `uid`, whole; `None` when it is larger than canvass reads (or gone).
    pub async fn read(&mut self, uid: u32) -> Result<Option<Vec<u8>>, ImapError> {
        let size = self
            .fetch(uid, "(UID RFC822.SIZE)".into(), |f| f.size)
            .await?;
        if size.is_none_or(|size| size > LARGEST_MESSAGE) {
            return Ok(None);
        }
        let body = format!("(UID BODY.PEEK[]<0.{LARGEST_MESSAGE}>)");
        self.fetch(uid, body, |f| f.body().map(<[u8]>::to_vec))
            .await
    }

    /// What `take` finds in the server's answer to a UID FETCH of `uid` for `items`. The server
    /// may add other messages' news (their flags): this one's is found by its UID.
    async fn fetch<T>(
        &mut self,
        uid: u32,
        items: String,
        take: impl Fn(&async_imap::types::Fetch) -> Option<T>,
    ) -> Result<Option<T>, ImapError> {
        step(
            "FETCH",
            async {
                let fetched: Vec<_> = self
                    .session
                    .uid_fetch(uid.to_string(), items)
                    .await?
                    .try_collect()
                    .await?;
                Ok::<_, async_imap::error::Error>(
                    fetched.iter().find(|f| f.uid == Some(uid)).and_then(take),
                )
            },
            ImapError::Imap,
        )
        .await
    }

    /// Moves the message with `uid` to `canvass/processed` or `canvass/ignored`.
    pub async fn file(&mut self, uid: u32, filed: Filed) -> Result<(), ImapError> {
        let folder = match filed {
            Filed::Processed => self.processed.clone(),
            Filed::Ignored => self.ignored.clone(),
        };
        let set = uid.to_string();
        if self.can_move {
            return step("MOVE", self.session.uid_mv(&set, &folder), ImapError::Imap).await;
        }
        // Without MOVE (RFC 6851): copy, mark deleted, expunge.
        step(
            "COPY",
            self.session.uid_copy(&set, &folder),
            ImapError::Imap,
        )
        .await?;
        step(
            "STORE",
            async {
                let _: Vec<_> = self
                    .session
                    .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                    .await?
                    .try_collect()
                    .await?;
                Ok::<_, async_imap::error::Error>(())
            },
            ImapError::Imap,
        )
        .await?;
        let uidplus = self.uidplus;
        step(
            "EXPUNGE",
            async {
                let _: Vec<_> = if uidplus {
                    self.session.uid_expunge(&set).await?.try_collect().await?
                } else {
                    self.session.expunge().await?.try_collect().await?
                };
                Ok::<_, async_imap::error::Error>(())
            },
            ImapError::Imap,
        )
        .await
    }

    /// Logs out.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(STEP, self.session.logout()).await;
    }

    /// Where it is, for messages (never the password).
    pub fn label(&self) -> &str {
        &self.label
    }
}

async fn greeting<T>(client: &mut Client<T>) -> Result<(), async_imap::error::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + fmt::Debug + Send,
{
    match client.read_response().await? {
        Some(_) => Ok(()),
        None => Err(async_imap::error::Error::ConnectionLost),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_urls_name_tls_user_and_folder_and_never_show_the_password() {
        let url: MailboxUrl = "imaps://bounces%40example.org:p%40ss@mail.example.org/Bounces"
            .parse()
            .unwrap();
        assert_eq!(url.user, "bounces@example.org");
        assert_eq!(url.password, "p@ss");
        assert_eq!((url.port, url.implicit_tls), (993, true));
        assert_eq!(url.folder, "Bounces");
        assert!(!url.to_string().contains("p@ss"));
        let plain: MailboxUrl = "imap://u:p@mail.example.org".parse().unwrap();
        assert_eq!(
            (plain.port, plain.implicit_tls, plain.folder.as_str()),
            (143, false, "INBOX")
        );
        for bad in [
            "pop3://u:p@h",
            "imaps://h/INBOX",
            "imaps://u@h",
            "not a url",
        ] {
            assert!(bad.parse::<MailboxUrl>().is_err(), "{bad}");
        }
    }
}
