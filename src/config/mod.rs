//! Configuration: every setting has a flag, an environment variable and a key in an optional
//! TOML file. Flags beat the environment (clap resolves those two), and both beat the file.

use std::path::{Path, PathBuf};

use lettre::message::Mailbox;
use serde::Deserialize;

use crate::domain::PrivacyText;

mod resolved;

pub use resolved::{Config, DkimSettings, WebhookSettings};

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
mod tests;
