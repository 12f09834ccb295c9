//! Logging, set up once per process. Log lines carry ids, never addresses, names or tokens.

use std::io::IsTerminal;

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The filter when `CANVASS_LOG` is not set.
const DEFAULT_FILTER: &str = "warn,canvass=info,sqlx=error";

/// Crates that log the data they handle at debug and trace level (handlebars the values a
/// template is given, names among them; the parsers the mail and HTML they read, character by
/// character): silent whatever `CANVASS_LOG` says, since no log line may carry a name or an
/// address.
const SILENT: [&str; 7] = [
    "handlebars",
    "html2text",
    "html5ever",
    "markup5ever",
    "mail_parser",
    // The IMAP client logs every command (LOGIN with its password) and the messages it reads.
    "async_imap",
    "imap_proto",
];

pub fn init() {
    let configured = std::env::var("CANVASS_LOG").ok();
    let format = std::env::var("CANVASS_LOG_FORMAT").ok();
    let json = match format.as_deref().map(str::trim) {
        None | Some("" | "text") => false,
        Some("json") => true,
        Some(other) => {
            eprintln!("canvass: CANVASS_LOG_FORMAT is '{other}': text or json; logging text");
            false
        }
    };
    let format = if json {
        Format::Json
    } else {
        // Colour only for a person at a terminal, not in a log file or journal.
        Format::Text {
            ansi: std::io::stderr().is_terminal(),
        }
    };
    let subscriber = subscriber(configured.as_deref(), std::io::stderr, format);
    // With the `log` records (handlebars logs through `log`) passed on to it, filtered alike.
    let _ = subscriber.try_init();
}

/// How log lines are written.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// A line of text each, for a person or journald.
    Text { ansi: bool },
    /// A JSON object each (`CANVASS_LOG_FORMAT=json`), for log collectors.
    Json,
}

/// The subscriber for `CANVASS_LOG` (`None`: the default) writing to `writer`. What
/// `CANVASS_LOG` asks for is filtered afterwards by [`guarded`], so that no directive, however
/// specific, opens the crates that see personal data: a directive added to the user's would
/// lose to a more specific one of theirs (`handlebars::render=debug` beats `handlebars=off`).
///
/// Both filters are global, not per layer: filtered per layer, a warning logged on a thread
/// where sqlx had just run a PostgreSQL statement was dropped whatever its level (the restore
/// tests caught the replay's warning missing on PostgreSQL alone).
fn subscriber<W>(
    configured: Option<&str>,
    writer: W,
    format: Format,
) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let asked = configured
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false);
    let lines = match format {
        Format::Text { ansi } => lines.with_ansi(ansi).boxed(),
        Format::Json => lines.json().with_span_list(false).boxed(),
    };
    tracing_subscriber::registry()
        .with(asked)
        .with(filter_fn(guarded))
        .with(lines)
}

/// Whether a span or event may be logged at all: nothing from the [`SILENT`] crates, and only
/// errors from sqlx, which logs its statements (and their values) at lower levels.
fn guarded(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    let of = |krate: &str| {
        target
            .strip_prefix(krate)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    };
    if SILENT.iter().any(|krate| of(krate)) {
        return false;
    }
    !of("sqlx") || *metadata.level() <= Level::ERROR
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Everything logged, kept for the test to read.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Kept {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Kept {
        type Writer = Kept;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn no_spelling_of_canvass_log_opens_the_crates_that_see_personal_data() {
        for configured in [
            None,
            Some("trace"),
            Some("info,handlebars::render=debug"),
            Some("error,handlebars=trace"),
            Some("error,handlebars::render=trace,mail_parser=trace,sqlx=trace"),
            Some("error,[render]=trace"),
            Some("debug,handlebars::render[render{template=x}]=trace"),
        ] {
            let kept = Kept::default();
            let subscriber = subscriber(configured, kept.clone(), Format::Text { ansi: false });
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!(target: "handlebars::render", "rendering for Amira Hassan");
                tracing::trace!(target: "handlebars", "Amira Hassan");
                tracing::trace!(target: "mail_parser::parsers", "amira@example.org");
                tracing::debug!(target: "sqlx::query", "SELECT 'amira@example.org'");
                tracing::error!(target: "canvass::worker", "a line that may be logged");
            });
            let logged = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
            assert!(!logged.contains("Amira"), "{configured:?}: {logged}");
            assert!(!logged.contains("amira@"), "{configured:?}: {logged}");
            assert!(
                logged.contains("a line that may be logged"),
                "{configured:?}: the guard lets the rest through: {logged}"
            );
        }
    }

    #[test]
    fn each_format_logs_the_message_and_json_is_one_object_a_line() {
        for format in [Format::Text { ansi: false }, Format::Json] {
            let kept = Kept::default();
            let subscriber = subscriber(None, kept.clone(), format);
            tracing::subscriber::with_default(subscriber, || {
                tracing::warn!(target: "canvass::cli", "re-applied 1 erasure");
            });
            let logged = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
            assert!(
                logged.contains("re-applied 1 erasure"),
                "{format:?}: {logged}"
            );
            if let Format::Json = format {
                let line: serde_json::Value = serde_json::from_str(logged.trim()).unwrap();
                assert_eq!(line["level"], "WARN", "{logged}");
                assert_eq!(
                    line["fields"]["message"], "re-applied 1 erasure",
                    "{logged}"
                );
            }
        }
    }
}
