//! The application: one function per use-case, whatever the door it is asked through.
//!
//! Each use-case takes the [`App`] (the store and the settings messages need), the acting
//! identity ([`Actor`]: the operator at the command line, a member of staff by their token, the
//! contact through a signed link) and the input as people wrote it; it parses that input once,
//! acts, and answers with a typed outcome or an [`AppError`] that names the field at fault. The
//! command line, the staff API, the public pages and the demo only translate in and out.
//!
//! - [`audit`]: the audit log, for admins.
//! - [`campaigns`]: create, edit, copy, preview, schedule, queue, pause, resume, cancel, retry.
//! - [`contacts`]: save, export, withdraw, restrict, erase, unsuppress.
//! - [`directory`]: where a postcode lies, and the constituencies.
//! - [`imports`]: the contacts list and the postcode directory, from any reader, with progress.
//! - [`feedback`]: bounces and complaints reported about canvass's own mail.
//! - [`hooks`]: what mail providers report through their webhooks, verified their own way.
//! - [`inbox`]: what the bounce and unsubscribe mailboxes received, each message acted on once.
//! - [`preferences`]: what a person does through the links in every email: their topics and
//!   postcode, and unsubscribing from everything.
//! - [`registers`]: the rights requests and complaints registers, with their legal clocks.
//! - [`retention`]: erasing what is kept past its purpose.
//! - [`signups`]: the public sign-up, confirmed by a link emailed to the address.
//! - [`topics`]: what people can consent to hear about.
//! - [`staff`]: the people who sign in to the console, their passwords, sessions and tokens.

pub mod audit;
pub mod campaigns;
pub mod contacts;
pub mod directory;
pub mod feedback;
pub mod hooks;
pub mod imports;
pub mod inbox;
pub mod preferences;
pub mod registers;
pub mod retention;
pub mod signups;
pub mod staff;
pub mod topics;
mod unsubscriber;

use std::sync::{Arc, OnceLock};

use crate::domain::{BankHolidays, PrivacyText, Publisher};
use crate::import::ImportError;
use crate::mail::Mailer;
use crate::mail::token::{LoadKeysError, SigningKeys};
use crate::store::{Store, StoreError};

pub use crate::domain::Actor;

/// What every use-case can reach: the store, and what messages and links are made with.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    /// Who sends, as every footer says.
    pub publisher: Arc<Publisher>,
    /// Where the links in messages point (`CANVASS_BASE_URL`).
    pub base_url: Arc<str>,
    /// Sends sign-up confirmations and test messages; `None`: those are refused.
    pub mailer: Option<Arc<Mailer>>,
    /// The domains a campaign's own From may be at (lower case): CANVASS_FROM's, and
    /// CANVASS_SENDER_DOMAINS.
    pub sender_domains: Arc<[String]>,
    /// Whether a campaign made by staff waits for another person's approval
    /// (`CANVASS_REQUIRE_APPROVAL`).
    pub require_approval: bool,
    /// Whether campaign content may load images from elsewhere (`CANVASS_REMOTE_IMAGES`).
    pub remote_images: bool,
    /// What the data protection officer set: the registers' calendar, retention, the
    /// information every access pack carries.
    pub data_protection: Arc<DataProtection>,
    /// The mail providers' webhooks this installation takes, with what verifies each.
    pub webhooks: Arc<hooks::Webhooks>,
    /// The writers that apply unsubscribes in batches, started with the first.
    unsubscriber: Arc<OnceLock<unsubscriber::Unsubscriber>>,
}

/// The data protection settings.
#[derive(Debug, Clone, Default)]
pub struct DataProtection {
    /// The bank holidays that move a rights request's due date (`CANVASS_BANK_HOLIDAYS`).
    pub bank_holidays: BankHolidays,
    /// Contacts with nothing in force for this long are erased (`CANVASS_RETENTION_MONTHS`).
    pub retention_months: Option<u32>,
    /// What the access pack says of the processing (`[privacy]`).
    pub privacy: PrivacyText,
}

impl App {
    pub fn new(store: Store, publisher: Publisher, base_url: &str) -> Self {
        Self {
            store,
            publisher: Arc::new(publisher),
            base_url: base_url.trim_end_matches('/').into(),
            mailer: None,
            sender_domains: Arc::new([]),
            require_approval: true,
            remote_images: false,
            data_protection: Arc::default(),
            webhooks: Arc::default(),
            unsubscriber: Arc::default(),
        }
    }

    /// The same application, its links under `base_url`.
    pub fn with_base_url(mut self, base_url: &str) -> Self {
        self.base_url = base_url.trim_end_matches('/').into();
        self
    }

    /// Closes the database's connections, waiting for those in use.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Whether the application can do its work: the database answers and the suppression
    /// journal, when there is one, can be written.
    pub async fn readiness(&self) -> std::result::Result<(), Unready> {
        self.store.ping().await.map_err(Unready::Database)?;
        if self.store.journal_is_broken().await
            && let Some(journal) = self.store.journal()
        {
            return Err(Unready::JournalBroken(journal.path().to_owned()));
        }
        Ok(())
    }

    /// The keys that sign and verify the links in messages: `configured`
    /// (`CANVASS_SIGNING_KEYS`), or else the one kept in the database, made on first use.
    pub async fn signing_keys(
        &self,
        configured: Option<&str>,
    ) -> std::result::Result<SigningKeys, LoadKeysError> {
        SigningKeys::load(configured, &self.store).await
    }

    /// The writers unsubscribes go through, started on first use (from within the runtime).
    fn unsubscriber(&self) -> &unsubscriber::Unsubscriber {
        self.unsubscriber
            .get_or_init(|| unsubscriber::Unsubscriber::start(self.store.clone()))
    }

    /// The application keeping the registers, retention and the access pack's information as
    /// `settings` say.
    pub fn with_data_protection(mut self, settings: DataProtection) -> Self {
        self.data_protection = Arc::new(settings);
        self
    }

    /// The application taking a campaign's own From at these domains.
    pub fn with_sender_domains(mut self, domains: Vec<String>) -> Self {
        self.sender_domains = domains.into();
        self
    }

    /// The application letting staff queue their own campaigns, unapproved, when `required` is
    /// false.
    pub fn with_approval(mut self, required: bool) -> Self {
        self.require_approval = required;
        self
    }

    /// The application taking campaign content that loads images from elsewhere, when
    /// `allowed`.
    pub fn with_remote_images(mut self, allowed: bool) -> Self {
        self.remote_images = allowed;
        self
    }

    /// The application sending its own messages through `mailer`.
    pub fn with_mailer(mut self, mailer: Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }
}

/// Why the application cannot do its work just now.
#[derive(Debug, thiserror::Error)]
pub enum Unready {
    #[error("the database is unreachable: {0}")]
    Database(StoreError),
    /// Nothing is sent while an unsubscribe could not be recorded in it.
    #[error("the suppression journal {} cannot be written", .0.display())]
    JournalBroken(std::path::PathBuf),
}

/// Why something cannot be done as things stand; the staff API answers with its [`code`].
///
/// [`code`]: Conflict::code
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Not from the state it is in: a campaign's, a request's, a suppression's.
    Refused,
    /// The person asked to be erased: only their own confirmed sign-up brings them back.
    Erased,
    /// The name is taken.
    Exists,
    /// The campaign waits for another person's approval.
    Unapproved,
    /// The campaign changed since the version the approver read.
    Edited,
    /// Election material without the digital imprint the law asks for.
    NoImprint,
}

impl Conflict {
    pub const ALL: [Self; 6] = [
        Self::Refused,
        Self::Erased,
        Self::Exists,
        Self::Unapproved,
        Self::Edited,
        Self::NoImprint,
    ];

    /// The stable code programs read.
    pub fn code(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Erased => "erased",
            Self::Exists => "exists",
            Self::Unapproved => "unapproved",
            Self::Edited => "edited",
            Self::NoImprint => "no_imprint",
        }
    }
}

/// Why a use-case did not do what it was asked. Every adapter shows these in its own way:
/// the command line names the flag, the API answers with a status and the field.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A value that does not parse; `field` names it as the staff API's JSON does.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// What was named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Not allowed as things stand.
    #[error("{message}")]
    Conflict { code: Conflict, message: String },
    /// The actor may not do this: a viewer asked to change something, or someone asked for
    /// what lies outside their role.
    #[error("{0}")]
    Denied(String),
    /// Asked too often; try again later.
    #[error("{0}")]
    Limited(String),
    /// The mail server did not take a message.
    #[error("the message was not sent: {0}")]
    Unsent(String),
    /// An import refused as a whole: the file unreadable, or its rows mostly wrong.
    #[error(transparent)]
    Import(ImportError),
    /// The database failed.
    #[error(transparent)]
    Unavailable(#[from] StoreError),
}

impl From<ImportError> for AppError {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::Store(error) => Self::Unavailable(error),
            error => Self::Import(error),
        }
    }
}

impl AppError {
    pub fn invalid(field: &'static str, message: impl ToString) -> Self {
        Self::Invalid {
            field,
            message: message.to_string(),
        }
    }

    fn conflict(code: Conflict, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// Refuses anyone but the operator and admins.
fn must_be_admin(actor: &Actor) -> Result<()> {
    match actor {
        Actor::Staff(member) if !member.role.manages_staff() => {
            Err(AppError::Denied("only an admin may do this".to_owned()))
        }
        _ => Ok(()),
    }
}

/// Refuses an actor who may only read.
fn may_write(actor: &Actor) -> Result<()> {
    if actor.writes() {
        Ok(())
    } else {
        Err(AppError::Denied(
            "you may read but not change anything; ask an organiser or admin".to_owned(),
        ))
    }
}
