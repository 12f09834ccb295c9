//! Configuration: every setting has a flag, an environment variable and a key in an optional
//! TOML file. Flags beat the environment (clap resolves those two), and both beat the file.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use serde::Deserialize;

use crate::app::DataProtection;
use crate::domain::{BankHolidays, PrivacyText, Publisher};
use crate::store::DatabaseUrl;

/// A mailbox's display name, or its address when it has none.
fn display_name(mailbox: &Mailbox) -> String {
    mailbox
        .name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| mailbox.email.to_string())
}

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "canvass.toml";

/// Settings as given, before defaults: the flags and environment variables, or the file.
/// `--help` shows them under a heading of their own, apart from each command's flags.
#[derive(clap::Args, Clone, Default, Deserialize)]
#[command(next_help_heading = "Settings")]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Database: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://canvass.db]
    #[arg(
        long,
        env = "CANVASS_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Where mail goes: smtp://, smtps://, smtp+starttls:// or file://DIR [default: file://outbox]
    #[arg(long, env = "CANVASS_SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Public base of every link in an email [default: http://127.0.0.1:8080]
    #[arg(long, env = "CANVASS_BASE_URL", global = true)]
    pub base_url: Option<String>,
    /// Address the HTTP service binds [default: 127.0.0.1:8080]
    #[arg(long, env = "CANVASS_LISTEN", global = true)]
    pub listen: Option<String>,
    /// From mailbox, e.g. "Hertford & Stortford Labour <news@example.org>" (given before the
    /// command: after `campaign create`, --from is the campaign's own)
    #[arg(long, env = "CANVASS_FROM")]
    pub from: Option<String>,
    /// Comma-separated kid:base64secret; the first signs, all verify
    #[arg(
        long,
        env = "CANVASS_SIGNING_KEYS",
        global = true,
        hide_env_values = true
    )]
    pub signing_keys: Option<String>,
    /// Messages per second, every worker on the database together, on every host; fractions
    /// allowed (0.5) [default: unlimited]
    #[arg(long, env = "CANVASS_SEND_RATE", global = true)]
    pub send_rate: Option<f64>,
    /// Messages per second to each recipient domain named, every worker together, e.g.
    /// gmail.com:20,outlook.com:10 [default: none]
    #[arg(long, env = "CANVASS_DOMAIN_RATES", global = true, value_name = "LIST")]
    pub domain_rates: Option<String>,
    /// SMTP connections in flight [default: 8]
    #[arg(long, env = "CANVASS_SEND_CONCURRENCY", global = true)]
    pub send_concurrency: Option<usize>,
    /// An address that takes unsubscribe requests by email, offered in List-Unsubscribe beside
    /// the link [default: none]
    #[arg(long, env = "CANVASS_UNSUBSCRIBE_MAILTO", global = true)]
    pub unsubscribe_mailto: Option<String>,
    /// Seconds a worker's claim holds unrenewed: a crashed worker's messages go to another
    /// after this [default: 60]
    #[arg(long, env = "CANVASS_LEASE_SECONDS", global = true)]
    pub lease_seconds: Option<u64>,
    /// Send failures in a row that pause the campaign being sent [default: 25]
    #[arg(long, env = "CANVASS_PAUSE_AFTER_FAILURES", global = true)]
    pub pause_after_failures: Option<u32>,
    /// DKIM signing domain (with the selector and key file)
    #[arg(long, env = "CANVASS_DKIM_DOMAIN", global = true)]
    pub dkim_domain: Option<String>,
    /// DKIM selector
    #[arg(long, env = "CANVASS_DKIM_SELECTOR", global = true)]
    pub dkim_selector: Option<String>,
    /// DKIM private key file (PEM)
    #[arg(long, env = "CANVASS_DKIM_KEY_FILE", global = true)]
    pub dkim_key_file: Option<PathBuf>,
    /// One DKIM key per sending domain, comma-separated `domain:selector:keyfile`: each message
    /// is signed with its From domain's key [default: the three settings above, if given]
    #[arg(long, env = "CANVASS_DKIM_KEYS", global = true, value_name = "LIST")]
    pub dkim_keys: Option<String>,
    /// The envelope sender (where bounces go) at the From domain; a message from another
    /// domain goes out from bounces@ that domain [default: bounces@ the From domain]
    #[arg(
        long,
        env = "CANVASS_RETURN_PATH",
        global = true,
        value_name = "ADDRESS"
    )]
    pub return_path: Option<String>,
    /// PEM certificates trusted for SMTP TLS besides the built-in roots (an internal relay's
    /// CA) [default: none]
    #[arg(long, env = "CANVASS_SMTP_CA_FILE", global = true)]
    pub smtp_ca_file: Option<PathBuf>,
    /// Comma-separated IPs or CIDR networks of reverse proxies whose X-Forwarded-For gives the
    /// client's address [default: none]
    #[arg(long, env = "CANVASS_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    /// The sender's name, in every email footer and page [default: the From display name]
    #[arg(long, env = "CANVASS_ORGANISATION", global = true)]
    pub organisation: Option<String>,
    /// The sender's postal address, in every email footer
    #[arg(long, env = "CANVASS_POSTAL_ADDRESS", global = true)]
    pub postal_address: Option<String>,
    /// The digital imprint ("Promoted by ... on behalf of ..., both at ..."), in every email and
    /// page footer
    #[arg(long, env = "CANVASS_IMPRINT", global = true)]
    pub imprint: Option<String>,
    /// The privacy notice's address, linked from every email, page and sign-up form
    #[arg(long, env = "CANVASS_PRIVACY_URL", global = true)]
    pub privacy_url: Option<String>,
    /// Reply-To mailbox for every email [default: none] (given before the command: after
    /// `campaign create`, --reply-to is the campaign's own)
    #[arg(long, env = "CANVASS_REPLY_TO")]
    pub reply_to: Option<String>,
    /// Other domains a campaign's own From may be at, comma-separated (CANVASS_FROM's always
    /// may); each needs its own SPF and DKIM [default: none]
    #[arg(
        long,
        env = "CANVASS_SENDER_DOMAINS",
        global = true,
        value_name = "DOMAINS"
    )]
    pub sender_domains: Option<String>,
    /// Whether a campaign made by staff is queued or scheduled only once another organiser or
    /// admin has approved it (the command line needs no approval) [default: true]
    #[arg(
        long,
        env = "CANVASS_REQUIRE_APPROVAL",
        global = true,
        value_name = "BOOL",
        action = clap::ArgAction::Set
    )]
    pub require_approval: Option<bool>,
    /// A bearer token that reads /metrics on the service's own address [default: none; without
    /// it or --metrics-listen, /metrics answers 404]
    #[arg(
        long,
        env = "CANVASS_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// An address of its own for /metrics, without a token (a port alone: on loopback)
    /// [default: none]
    #[arg(long, env = "CANVASS_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<String>,
    /// Whether campaign content may load images from elsewhere (their servers learn who opens
    /// each message) [default: false]
    #[arg(
        long,
        env = "CANVASS_REMOTE_IMAGES",
        global = true,
        value_name = "BOOL",
        action = clap::ArgAction::Set
    )]
    pub remote_images: Option<bool>,
    /// The suppression journal: every erasure and suppression, hashed, kept outside the
    /// database so that no restore undoes one [default: beside an SQLite database, its name
    /// with .journal; none for PostgreSQL, where sending over SMTP needs one]
    #[arg(long, env = "CANVASS_JOURNAL", global = true, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Whose bank holidays move a rights request's due date to the next working day:
    /// england-and-wales, scotland or northern-ireland [default: england-and-wales]
    #[arg(
        long,
        env = "CANVASS_BANK_HOLIDAYS",
        global = true,
        value_name = "REGION"
    )]
    pub bank_holidays: Option<String>,
    /// Contacts with no consent in force, no open request and no activity for this many months
    /// are erased, and older IP addresses blanked (`canvass retention apply`, and `serve`
    /// daily) [default: unset, nothing automatic]
    #[arg(
        long,
        env = "CANVASS_RETENTION_MONTHS",
        global = true,
        value_name = "MONTHS"
    )]
    pub retention_months: Option<u32>,
    /// Amazon SNS topics (ARNs, comma-separated) whose SES notifications /hooks/ses takes
    /// [default: none, /hooks/ses off]
    #[arg(long, env = "CANVASS_SES_TOPICS", global = true, value_name = "ARNS")]
    pub ses_topics: Option<String>,
    /// Mailgun's webhook signing key, for /hooks/mailgun [default: none, off]
    #[arg(
        long,
        env = "CANVASS_MAILGUN_SIGNING_KEY",
        global = true,
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub mailgun_signing_key: Option<String>,
    /// user:password that Postmark's webhook URL carries, for /hooks/postmark [default: none,
    /// off]
    #[arg(
        long,
        env = "CANVASS_POSTMARK_WEBHOOK_AUTH",
        global = true,
        hide_env_values = true,
        value_name = "USER:PASSWORD"
    )]
    pub postmark_webhook_auth: Option<String>,
    /// SendGrid's Event Webhook verification key (base64), for /hooks/sendgrid [default: none,
    /// off]
    #[arg(
        long,
        env = "CANVASS_SENDGRID_VERIFICATION_KEY",
        global = true,
        value_name = "KEY"
    )]
    pub sendgrid_verification_key: Option<String>,
    /// The bounce mailbox, read every minute by serve: imaps://USER:PASS@HOST/INBOX (or
    /// imap:// with STARTTLS) [default: none]
    #[arg(
        long,
        env = "CANVASS_INBOX_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    pub inbox_url: Option<String>,
    /// Tests only: where SNS certificates and subscription confirmations are fetched from,
    /// instead of https://sns.<region>.amazonaws.com/
    #[arg(long, env = "CANVASS_TEST_SNS_BASE", global = true, hide = true)]
    pub test_sns_base: Option<String>,
    /// Several relays as `[[relay]]` tables (url, rate, hourly, daily, weight), in the file
    /// only, instead of smtp_url
    #[arg(skip)]
    pub relay: Option<Vec<crate::mail::RelaySettings>>,
    /// What every access pack says of the processing: a `[privacy]` table, in the file only
    #[arg(skip)]
    pub privacy: Option<PrivacyText>,
    /// A file holding the database URL (a systemd credential: %d/database_url), instead of
    /// CANVASS_DATABASE_URL
    #[arg(
        long,
        env = "CANVASS_DATABASE_URL_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub database_url_file: Option<PathBuf>,
    /// A file holding the SMTP URL, instead of CANVASS_SMTP_URL
    #[arg(
        long,
        env = "CANVASS_SMTP_URL_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub smtp_url_file: Option<PathBuf>,
    /// A file holding the signing keys, instead of CANVASS_SIGNING_KEYS
    #[arg(
        long,
        env = "CANVASS_SIGNING_KEYS_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub signing_keys_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

/// A DKIM key of one sending domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSettings {
    /// Lower case.
    pub domain: String,
    pub selector: String,
    pub key_file: PathBuf,
}

impl DkimSettings {
    /// `domain:selector:keyfile,...`, as `CANVASS_DKIM_KEYS` gives them.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let mut parts = entry.splitn(3, ':');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(domain), Some(selector), Some(key_file))
                        if !domain.trim().is_empty()
                            && !selector.trim().is_empty()
                            && !key_file.trim().is_empty() =>
                    {
                        Ok(Self {
                            domain: domain.trim().to_ascii_lowercase(),
                            selector: selector.trim().to_owned(),
                            key_file: PathBuf::from(key_file.trim()),
                        })
                    }
                    _ => Err(format!(
                        "'{}' is not domain:selector:keyfile",
                        entry.chars().take(60).collect::<String>()
                    )),
                }
            })
            .collect()
    }
}

/// The configuration in force, every value parsed.
#[derive(Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    /// Parsed by the transport when mail is sent (one relay or a list); it may hold a password.
    pub smtp_url: String,
    /// `[[relay]]` tables, instead of the list in `smtp_url` (none: `smtp_url`).
    pub relays: Vec<crate::mail::RelaySettings>,
    /// Without a trailing slash.
    pub base_url: String,
    pub listen: SocketAddr,
    pub from: Mailbox,
    /// Secret; parsed by the token module.
    pub signing_keys: Option<String>,
    pub send_rate: Option<crate::worker::Rate>,
    /// Each recipient domain's cap (lower case).
    pub domain_rates: Vec<(String, crate::worker::Rate)>,
    pub send_concurrency: NonZeroUsize,
    pub unsubscribe_mailto: Option<lettre::Address>,
    pub lease: Duration,
    pub pause_after_failures: NonZeroU32,
    /// The DKIM keys, one per sending domain (none: messages go unsigned).
    pub dkim: Vec<DkimSettings>,
    /// The envelope sender at the From domain, if set.
    pub return_path: Option<lettre::Address>,
    pub smtp_ca_file: Option<PathBuf>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub publisher: Publisher,
    pub reply_to: Option<Mailbox>,
    /// The domains a campaign's own From may be at, lower case: CANVASS_FROM's first.
    pub sender_domains: Vec<String>,
    /// Whether staff campaigns need a second person's approval.
    pub require_approval: bool,
    /// Who may read `/metrics`.
    pub metrics: crate::http::MetricsAccess,
    /// Whether campaign content may load images from elsewhere.
    pub remote_images: bool,
    /// The suppression journal's file, if there is one.
    pub journal: Option<PathBuf>,
    /// The registers' calendar, retention and the access pack's information.
    pub data_protection: DataProtection,
    /// The provider webhooks set up.
    pub webhooks: WebhookSettings,
    /// The bounce mailbox read over IMAP, if one is set.
    pub inbox: Option<crate::mail::imap::MailboxUrl>,
}

/// The provider webhooks set up, each with what verifies it.
#[derive(Clone, Default)]
pub struct WebhookSettings {
    /// SNS topic ARNs whose messages `/hooks/ses` takes (none: off).
    pub ses_topics: Vec<String>,
    /// Where SNS certificates come from: Amazon's hosts, or the tests' own base.
    pub sns_host: crate::hooks::ses::TrustedHost,
    pub mailgun: Option<crate::hooks::mailgun::SigningKey>,
    pub postmark: Option<crate::hooks::postmark::BasicAuth>,
    pub sendgrid: Option<crate::hooks::sendgrid::VerificationKey>,
}

impl WebhookSettings {
    /// The webhooks, ready to verify.
    pub fn build(&self) -> crate::app::hooks::Webhooks {
        crate::app::hooks::Webhooks {
            ses: (!self.ses_topics.is_empty()).then(|| {
                crate::hooks::ses::Ses::new(self.ses_topics.clone(), self.sns_host.clone())
            }),
            mailgun: self.mailgun.clone(),
            postmark: self.postmark.clone(),
            sendgrid: self.sendgrid.clone(),
        }
    }

    /// Which are on, for the start-up line.
    pub fn names(&self) -> Vec<&'static str> {
        let mut on = Vec::new();
        if !self.ses_topics.is_empty() {
            on.push("/hooks/ses");
        }
        if self.mailgun.is_some() {
            on.push("/hooks/mailgun");
        }
        if self.postmark.is_some() {
            on.push("/hooks/postmark");
        }
        if self.sendgrid.is_some() {
            on.push("/hooks/sendgrid");
        }
        on
    }
}

/// Shows what is configured without the secrets.
impl Config {
    /// How pages and emails name the sender: `CANVASS_ORGANISATION`, else the From display
    /// name, else its address.
    pub fn sender_name(&self) -> String {
        self.publisher.organisation.clone()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url)
            .field("base_url", &self.base_url)
            .field("listen", &self.listen)
            .field("from", &self.from.to_string())
            .field("signing_keys", &self.signing_keys.as_ref().map(|_| "***"))
            .field("send_rate", &self.send_rate)
            .field("send_concurrency", &self.send_concurrency)
            .field("unsubscribe_mailto", &self.unsubscribe_mailto)
            .field("lease", &self.lease)
            .field("pause_after_failures", &self.pause_after_failures)
            .field("dkim", &self.dkim)
            .field("smtp_ca_file", &self.smtp_ca_file)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("publisher", &self.publisher)
            .field("reply_to", &self.reply_to.as_ref().map(ToString::to_string))
            .field("require_approval", &self.require_approval)
            .field("metrics_listen", &self.metrics.listen)
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads the TOML file named by `--config` (or `CANVASS_CONFIG`), or `canvass.toml` if
    /// present. Relative paths in it are taken from the file's folder, wherever the command
    /// runs.
    pub fn from_file(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match explicit {
            Some(path) => path,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => Path::new(DEFAULT_CONFIG_FILE),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let settings: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let folder = path.parent().unwrap_or(Path::new(""));
        settings.relative_to(folder)
    }

    /// These settings with each relative path in them (files, an SQLite database, an outbox)
    /// taken from `folder`, and the secrets they keep in files read, so that a URL read from a
    /// file is taken from the folder too.
    fn relative_to(self, folder: &Path) -> Result<Self, ConfigError> {
        let path = |given: Option<PathBuf>| given.map(|p| folder.join(p));
        let url = |given: Option<String>, schemes: &[&str]| {
            given.map(|url| {
                for scheme in schemes {
                    if let Some(rest) = url.strip_prefix(scheme)
                        && !rest.is_empty()
                        && !rest.starts_with(['/', ':', '?'])
                    {
                        return format!("{scheme}{}", folder.join(rest).display());
                    }
                }
                url
            })
        };
        let read = Self {
            database_url_file: path(self.database_url_file),
            smtp_url_file: path(self.smtp_url_file),
            signing_keys_file: path(self.signing_keys_file),
            ..self
        }
        .with_secrets_read()?;
        Ok(Self {
            database_url: url(read.database_url, &["sqlite://", "sqlite:"]),
            smtp_url: url(read.smtp_url, &["file://"]),
            dkim_key_file: path(read.dkim_key_file),
            dkim_keys: read.dkim_keys.map(|keys| {
                DkimSettings::parse_list(&keys)
                    .map(|list| {
                        list.into_iter()
                            .map(|key| {
                                let key_file = folder.join(key.key_file);
                                format!("{}:{}:{}", key.domain, key.selector, key_file.display())
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    // Left as written: resolving reports the mistake.
                    .unwrap_or(keys)
            }),
            smtp_ca_file: path(read.smtp_ca_file),
            journal: path(read.journal),
            ..read
        })
    }

    /// These settings with the secrets they keep in files (`database_url_file` and the rest)
    /// read in. Done on each level (the flags and environment, the file) before the levels are
    /// merged, so that a secret given in a file beats a lower level's value as the value itself
    /// would; giving both on one level is an error.
    pub fn with_secrets_read(self) -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: secret(
                "database_url",
                self.database_url,
                self.database_url_file.as_deref(),
            )?,
            smtp_url: secret("smtp_url", self.smtp_url, self.smtp_url_file.as_deref())?,
            signing_keys: secret(
                "signing_keys",
                self.signing_keys,
                self.signing_keys_file.as_deref(),
            )?,
            database_url_file: None,
            smtp_url_file: None,
            signing_keys_file: None,
            ..self
        })
    }

    /// These settings, with `fallback` filling what they leave out.
    pub fn or(self, fallback: Self) -> Self {
        Self {
            database_url: self.database_url.or(fallback.database_url),
            smtp_url: self.smtp_url.or(fallback.smtp_url),
            base_url: self.base_url.or(fallback.base_url),
            listen: self.listen.or(fallback.listen),
            from: self.from.or(fallback.from),
            signing_keys: self.signing_keys.or(fallback.signing_keys),
            send_rate: self.send_rate.or(fallback.send_rate),
            domain_rates: self.domain_rates.or(fallback.domain_rates),
            send_concurrency: self.send_concurrency.or(fallback.send_concurrency),
            unsubscribe_mailto: self.unsubscribe_mailto.or(fallback.unsubscribe_mailto),
            lease_seconds: self.lease_seconds.or(fallback.lease_seconds),
            pause_after_failures: self.pause_after_failures.or(fallback.pause_after_failures),
            dkim_domain: self.dkim_domain.or(fallback.dkim_domain),
            dkim_selector: self.dkim_selector.or(fallback.dkim_selector),
            dkim_key_file: self.dkim_key_file.or(fallback.dkim_key_file),
            dkim_keys: self.dkim_keys.or(fallback.dkim_keys),
            return_path: self.return_path.or(fallback.return_path),
            smtp_ca_file: self.smtp_ca_file.or(fallback.smtp_ca_file),
            trusted_proxies: self.trusted_proxies.or(fallback.trusted_proxies),
            organisation: self.organisation.or(fallback.organisation),
            postal_address: self.postal_address.or(fallback.postal_address),
            imprint: self.imprint.or(fallback.imprint),
            privacy_url: self.privacy_url.or(fallback.privacy_url),
            reply_to: self.reply_to.or(fallback.reply_to),
            sender_domains: self.sender_domains.or(fallback.sender_domains),
            require_approval: self.require_approval.or(fallback.require_approval),
            metrics_token: self.metrics_token.or(fallback.metrics_token),
            metrics_listen: self.metrics_listen.or(fallback.metrics_listen),
            remote_images: self.remote_images.or(fallback.remote_images),
            journal: self.journal.or(fallback.journal),
            bank_holidays: self.bank_holidays.or(fallback.bank_holidays),
            retention_months: self.retention_months.or(fallback.retention_months),
            privacy: self.privacy.or(fallback.privacy),
            relay: self.relay.or(fallback.relay),
            ses_topics: self.ses_topics.or(fallback.ses_topics),
            mailgun_signing_key: self.mailgun_signing_key.or(fallback.mailgun_signing_key),
            postmark_webhook_auth: self
                .postmark_webhook_auth
                .or(fallback.postmark_webhook_auth),
            sendgrid_verification_key: self
                .sendgrid_verification_key
                .or(fallback.sendgrid_verification_key),
            test_sns_base: self.test_sns_base.or(fallback.test_sns_base),
            inbox_url: self.inbox_url.or(fallback.inbox_url),
            database_url_file: self.database_url_file.or(fallback.database_url_file),
            smtp_url_file: self.smtp_url_file.or(fallback.smtp_url_file),
            signing_keys_file: self.signing_keys_file.or(fallback.signing_keys_file),
        }
    }

    /// Applies the defaults and parses every value.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let invalid =
            |setting: &'static str, reason: String| ConfigError::Invalid { setting, reason };
        // Read already on each level when the levels were merged; here for settings that come
        // from one level alone.
        let settings = self.with_secrets_read()?;
        let database_url: DatabaseUrl = settings
            .database_url
            .as_deref()
            .unwrap_or("sqlite://canvass.db")
            .parse()
            .map_err(|e: crate::store::DatabaseUrlError| invalid("database_url", e.to_string()))?;
        let mut base_url = settings
            .base_url
            .unwrap_or_else(|| "http://127.0.0.1:8080".into())
            .trim()
            .trim_end_matches('/')
            .to_owned();
        // A URL's scheme is case-insensitive: HTTPS:// is https://.
        if let Some((scheme, rest)) = base_url.split_once("://") {
            base_url = format!("{}://{rest}", scheme.to_ascii_lowercase());
        }
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(invalid(
                "base_url",
                "must start with https:// or http://".into(),
            ));
        }
        let bank_holidays = match settings.bank_holidays.as_deref() {
            None => BankHolidays::default(),
            Some(region) => region.parse().map_err(|e| invalid("bank_holidays", e))?,
        };
        let listen = settings
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|e| invalid("listen", format!("{e}")))?;
        let from: Mailbox = settings
            .from
            .as_deref()
            .unwrap_or("canvass <canvass@localhost>")
            .parse()
            .map_err(|e| invalid("from", format!("{e}")))?;
        let send_rate = settings
            .send_rate
            .map(crate::worker::Rate::try_from)
            .transpose()
            .map_err(|e| invalid("send_rate", e))?;
        let mut domain_rates: Vec<(String, crate::worker::Rate)> = Vec::new();
        for entry in settings
            .domain_rates
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (domain, rate) = entry.rsplit_once(':').ok_or_else(|| {
                invalid(
                    "domain_rates",
                    format!("'{entry}' is not domain:rate (gmail.com:20)"),
                )
            })?;
            let domain = domain.trim().to_ascii_lowercase();
            if !domain.contains('.') || domain_rates.iter().any(|(d, _)| *d == domain) {
                return Err(invalid(
                    "domain_rates",
                    format!("'{domain}' is not a domain, or is named twice"),
                ));
            }
            let rate = rate
                .parse()
                .map_err(|e| invalid("domain_rates", format!("{domain}: {e}")))?;
            domain_rates.push((domain, rate));
        }
        let send_concurrency = NonZeroUsize::new(settings.send_concurrency.unwrap_or(8))
            .ok_or_else(|| invalid("send_concurrency", "must be above 0".into()))?;
        let unsubscribe_mailto = settings
            .unsubscribe_mailto
            .map(|address| address.parse())
            .transpose()
            .map_err(|e| invalid("unsubscribe_mailto", format!("{e}")))?;
        let lease = match settings.lease_seconds.unwrap_or(60) {
            seconds @ 1..=3600 => Duration::from_secs(seconds),
            _ => return Err(invalid("lease_seconds", "must be 1 to 3600".into())),
        };
        let pause_after_failures = NonZeroU32::new(settings.pause_after_failures.unwrap_or(25))
            .ok_or_else(|| invalid("pause_after_failures", "must be above 0".into()))?;
        let mut dkim = match (
            settings.dkim_domain,
            settings.dkim_selector,
            settings.dkim_key_file,
        ) {
            (None, None, None) => Vec::new(),
            (Some(domain), Some(selector), Some(key_file)) => vec![DkimSettings {
                domain: domain.trim().to_ascii_lowercase(),
                selector,
                key_file,
            }],
            _ => {
                return Err(invalid(
                    "dkim",
                    "set all three of dkim_domain, dkim_selector and dkim_key_file, or none".into(),
                ));
            }
        };
        if let Some(keys) = &settings.dkim_keys {
            for key in DkimSettings::parse_list(keys).map_err(|e| invalid("dkim_keys", e))? {
                if dkim.iter().any(|k| k.domain == key.domain) {
                    return Err(invalid(
                        "dkim_keys",
                        format!("{} has two keys: give one per domain", key.domain),
                    ));
                }
                dkim.push(key);
            }
        }
        let return_path = settings
            .return_path
            .as_deref()
            .map(|address| address.trim().parse::<lettre::Address>())
            .transpose()
            .map_err(|e| invalid("return_path", format!("{e}")))?;
        let text =
            |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let privacy_url = text(settings.privacy_url);
        if let Some(url) = &privacy_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(invalid(
                "privacy_url",
                "must start with https:// or http://".into(),
            ));
        }
        let reply_to = text(settings.reply_to)
            .map(|mailbox| mailbox.parse::<Mailbox>())
            .transpose()
            .map_err(|e| invalid("reply_to", format!("{e}")))?;
        let mut sender_domains = vec![from.email.domain().to_ascii_lowercase()];
        for domain in text(settings.sender_domains)
            .iter()
            .flat_map(|d| d.split(','))
        {
            let domain = domain.trim().to_ascii_lowercase();
            let valid = domain.contains('.')
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(invalid(
                    "sender_domains",
                    format!("'{domain}' is not a domain name"),
                ));
            }
            if !sender_domains.contains(&domain) {
                sender_domains.push(domain);
            }
        }
        // Replies go to the party, never to a stranger's domain under the party's name.
        if let Some(mailbox) = &reply_to
            && !sender_domains.contains(&mailbox.email.domain().to_ascii_lowercase())
        {
            return Err(invalid(
                "reply_to",
                format!(
                    "must be at {} (CANVASS_FROM's domain, or CANVASS_SENDER_DOMAINS)",
                    sender_domains.join(" or ")
                ),
            ));
        }
        let organisation = text(settings.organisation).unwrap_or_else(|| display_name(&from));
        let publisher = Publisher {
            organisation,
            postal_address: text(settings.postal_address),
            imprint: text(settings.imprint),
            privacy_url,
        };
        let trusted_proxies =
            crate::http::parse_trusted_proxies(settings.trusted_proxies.as_deref().unwrap_or(""))
                .map_err(|e| invalid("trusted_proxies", e))?;
        let metrics_listen = text(settings.metrics_listen)
            .map(|given| match given.parse::<u16>() {
                Ok(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
                Err(_) => given.parse::<SocketAddr>(),
            })
            .transpose()
            .map_err(|e| {
                invalid(
                    "metrics_listen",
                    format!("{e} (an address:port, or a port)"),
                )
            })?;
        let metrics = crate::http::MetricsAccess {
            token: text(settings.metrics_token).map(Into::into),
            listen: metrics_listen,
        };
        // Beside an SQLite database, named after it: `canvass.db` keeps `canvass.journal`.
        let journal = settings.journal.or_else(|| {
            database_url
                .sqlite_file()
                .map(|file| file.with_extension("journal"))
        });
        if let (Some(journal), Some(database)) = (&journal, database_url.sqlite_file()) {
            let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
            let database = absolute(&database).display().to_string();
            let journal = absolute(journal).display().to_string();
            if journal == database || journal.starts_with(&format!("{database}-")) {
                return Err(invalid(
                    "journal",
                    "is the database's own file: name a file of its own".into(),
                ));
            }
        }
        let ses_topics: Vec<String> = text(settings.ses_topics)
            .iter()
            .flat_map(|topics| topics.split(','))
            .map(|arn| arn.trim().to_owned())
            .filter(|arn| !arn.is_empty())
            .collect();
        if let Some(arn) = ses_topics
            .iter()
            .find(|arn| !arn.starts_with("arn:") || arn.split(':').count() != 6)
        {
            return Err(invalid(
                "ses_topics",
                format!("'{arn}' is not a topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"),
            ));
        }
        let webhooks = WebhookSettings {
            ses_topics,
            sns_host: match text(settings.test_sns_base) {
                Some(base) => crate::hooks::ses::TrustedHost::Test(base),
                None => crate::hooks::ses::TrustedHost::Amazon,
            },
            mailgun: text(settings.mailgun_signing_key)
                .map(|key| crate::hooks::mailgun::SigningKey::new(&key).expect("not empty")),
            postmark: text(settings.postmark_webhook_auth)
                .map(|pair| {
                    crate::hooks::postmark::BasicAuth::new(&pair).ok_or_else(|| {
                        invalid(
                            "postmark_webhook_auth",
                            "give user:password, as in the webhook's URL".into(),
                        )
                    })
                })
                .transpose()?,
            sendgrid: text(settings.sendgrid_verification_key)
                .map(|key| {
                    crate::hooks::sendgrid::VerificationKey::parse(&key)
                        .map_err(|e| invalid("sendgrid_verification_key", e))
                })
                .transpose()?,
        };
        let relays = settings.relay.unwrap_or_default();
        if !relays.is_empty() && settings.smtp_url.is_some() {
            return Err(invalid(
                "relay",
                "give the relays in smtp_url or as [[relay]] tables, not both".into(),
            ));
        }
        let inbox = text(settings.inbox_url)
            .map(|url| url.parse())
            .transpose()
            .map_err(|e: crate::mail::imap::ImapError| invalid("inbox_url", e.to_string()))?;
        Ok(Config {
            inbox,
            domain_rates,
            relays,
            database_url,
            smtp_url: settings.smtp_url.unwrap_or_else(|| "file://outbox".into()),
            base_url,
            listen,
            from,
            signing_keys: settings.signing_keys,
            send_rate,
            send_concurrency,
            unsubscribe_mailto,
            lease,
            pause_after_failures,
            dkim,
            return_path,
            smtp_ca_file: settings.smtp_ca_file,
            trusted_proxies,
            publisher,
            reply_to,
            sender_domains,
            require_approval: settings.require_approval.unwrap_or(true),
            metrics,
            remote_images: settings.remote_images.unwrap_or(false),
            journal,
            data_protection: DataProtection {
                bank_holidays,
                retention_months: match settings.retention_months {
                    Some(0) => {
                        return Err(invalid(
                            "retention_months",
                            "at least 1 (leave it unset to keep contacts until erased)".into(),
                        ));
                    }
                    months => months,
                },
                privacy: settings.privacy.unwrap_or_default(),
            },
            webhooks,
        })
    }
}

/// A secret given directly or in a file (`CANVASS_..._FILE`, a systemd credential), so that it
/// need sit neither in a unit file nor in the environment. The file's last line break is not
/// part of it.
fn secret(
    setting: &'static str,
    given: Option<String>,
    file: Option<&Path>,
) -> Result<Option<String>, ConfigError> {
    let Some(file) = file else {
        return Ok(given);
    };
    if given.is_some() {
        return Err(ConfigError::Invalid {
            setting,
            reason: format!("given both directly and in a file ({setting}_file): choose one"),
        });
    }
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::Invalid {
        setting,
        reason: format!("cannot read {}: {e}", file.display()),
    })?;
    Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let config = Settings::default().resolve().unwrap();
        assert_eq!(config.database_url, "sqlite://canvass.db".parse().unwrap());
        assert_eq!(config.smtp_url, "file://outbox");
        assert_eq!(config.base_url, "http://127.0.0.1:8080");
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.from.to_string(), "canvass <canvass@localhost>");
        assert_eq!(config.send_concurrency.get(), 8);
        assert!(config.send_rate.is_none() && config.dkim.is_empty());
    }

    #[test]
    fn given_settings_beat_the_fallback() {
        let given = Settings {
            database_url: Some("postgres://localhost/a".into()),
            ..Settings::default()
        };
        let file: Settings = toml::from_str(
            "database_url = \"sqlite://file.db\"\nbase_url = \"https://canvass.example.org/\"",
        )
        .unwrap();
        let config = given.or(file).resolve().unwrap();
        assert_eq!(
            config.database_url,
            "postgres://localhost/a".parse().unwrap()
        );
        assert_eq!(config.base_url, "https://canvass.example.org");
    }

    #[test]
    fn a_secret_file_given_here_beats_a_value_in_the_config_file_and_the_journal_is_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("smtp_url");
        std::fs::write(&secret, "smtps://news:pw@relay.example.org\r\n").unwrap();
        let given = Settings {
            smtp_url_file: Some(secret),
            ..Settings::default()
        };
        let file: Settings =
            toml::from_str("smtp_url = \"file:///var/lib/canvass/outbox\"").unwrap();
        let config = given
            .with_secrets_read()
            .unwrap()
            .or(file)
            .resolve()
            .unwrap();
        assert_eq!(config.smtp_url, "smtps://news:pw@relay.example.org");

        let same = Settings {
            database_url: Some("sqlite://canvass.db".into()),
            journal: Some("canvass.db-wal".into()),
            ..Settings::default()
        };
        assert!(same.resolve().unwrap_err().to_string().contains("journal"));
    }

    #[test]
    fn the_privacy_table_and_the_data_protection_settings_are_read_and_checked() {
        let file: Settings = toml::from_str(
            "retention_months = 24\nbank_holidays = \"scotland\"\n\
             [privacy]\ncontroller = \"Hertford CLP\"\nrecipients = [\"Mailgun\"]\n\
             [privacy.purposes]\nevents = \"Local events\"\n",
        )
        .unwrap();
        let config = file.resolve().unwrap();
        let data = &config.data_protection;
        assert_eq!(data.retention_months, Some(24));
        assert_eq!(data.bank_holidays, BankHolidays::Scotland);
        assert_eq!(data.privacy.controller.as_deref(), Some("Hertford CLP"));
        assert_eq!(data.privacy.purposes["events"], "Local events");
        let typo = toml::from_str::<Settings>("[privacy]\ncontroler = \"x\"\n");
        assert!(typo.is_err(), "an unknown key in [privacy] is an error");
        let wales = Settings {
            bank_holidays: Some("wales-and-england".into()),
            ..Settings::default()
        };
        assert!(
            wales
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("bank_holidays")
        );
        let never = Settings {
            retention_months: Some(0),
            ..Settings::default()
        };
        assert!(never.resolve().is_err());
    }

    #[test]
    fn dkim_keys_are_one_per_domain_and_the_return_path_an_address() {
        let settings = Settings {
            dkim_domain: Some("Hertford.example.org".into()),
            dkim_selector: Some("s1".into()),
            dkim_key_file: Some("main.pem".into()),
            dkim_keys: Some("stevenage.example.org:s2:/keys/stevenage.pem, ".into()),
            return_path: Some("returns@hertford.example.org".into()),
            ..Settings::default()
        };
        let config = settings.clone().resolve().unwrap();
        let domains: Vec<&str> = config.dkim.iter().map(|k| k.domain.as_str()).collect();
        assert_eq!(domains, ["hertford.example.org", "stevenage.example.org"]);
        assert_eq!(
            config.dkim[1].key_file,
            PathBuf::from("/keys/stevenage.pem")
        );
        assert_eq!(
            config.return_path.unwrap().to_string(),
            "returns@hertford.example.org"
        );
        let twice = Settings {
            dkim_keys: Some("hertford.example.org:s3:other.pem".into()),
            ..settings.clone()
        };
        assert!(
            twice
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("two keys")
        );
        let garbled = Settings {
            dkim_keys: Some("stevenage.example.org:s2".into()),
            ..settings.clone()
        };
        assert!(
            garbled
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("dkim_keys")
        );
        let not_an_address = Settings {
            return_path: Some("bounces".into()),
            ..settings
        };
        assert!(not_an_address.resolve().is_err());
        // In the file, a relative key file is the file's folder's.
        let file: Settings = toml::from_str("dkim_keys = \"example.org:s:keys/k.pem\"").unwrap();
        let file = file.relative_to(Path::new("/etc/canvass")).unwrap();
        assert_eq!(
            file.dkim_keys.as_deref(),
            Some("example.org:s:/etc/canvass/keys/k.pem")
        );
    }

    #[test]
    fn file_with_an_unknown_key_is_refused() {
        assert!(toml::from_str::<Settings>("databse_url = \"x\"").is_err());
    }

    #[test]
    fn a_reply_to_is_held_to_the_sending_domains() {
        let settings = |reply_to: &str| Settings {
            from: Some("Hertford Labour <news@hertford.example.org>".into()),
            sender_domains: Some("stevenage.example.org".into()),
            reply_to: Some(reply_to.into()),
            ..Settings::default()
        };
        let refused = settings("Phisher <phish@evil.example>")
            .resolve()
            .unwrap_err();
        assert!(refused.to_string().contains("reply_to"), "{refused}");
        for fine in [
            "Office <office@hertford.example.org>",
            "office@Stevenage.example.org",
        ] {
            assert!(settings(fine).resolve().is_ok(), "{fine}");
        }
    }

    #[test]
    fn partial_dkim_is_refused() {
        let settings = Settings {
            dkim_domain: Some("example.org".into()),
            ..Settings::default()
        };
        assert!(settings.resolve().is_err());
    }

    #[test]
    fn debug_hides_the_signing_keys() {
        let settings = Settings {
            signing_keys: Some("k1:c2VjcmV0LXNlY3JldA==".into()),
            ..Settings::default()
        };
        let shown = format!("{:?}", settings.resolve().unwrap());
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
    }
}
