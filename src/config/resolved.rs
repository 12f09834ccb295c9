//! The settings resolved: every value parsed and checked once, defaults filled in, secrets read,
//! ready for the command that runs.

use super::{ConfigError, Settings, display_name};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;

use crate::app::DataProtection;
use crate::domain::{BankHolidays, Publisher};
use crate::store::DatabaseUrl;

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
    pub send_rate: Option<crate::domain::Rate>,
    /// Each recipient domain's cap (lower case).
    pub domain_rates: Vec<(String, crate::domain::Rate)>,
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
            .map(crate::domain::Rate::try_from)
            .transpose()
            .map_err(|e| invalid("send_rate", e))?;
        let mut domain_rates: Vec<(String, crate::domain::Rate)> = Vec::new();
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
