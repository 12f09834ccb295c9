//! Logging, set up once per process. Log lines carry ids, never addresses, names or tokens.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter when `CANVASS_LOG` is not set.
const DEFAULT_FILTER: &str = "warn,canvass=info,sqlx=error";

/// Kept whatever `CANVASS_LOG` says: these crates log the data they handle at debug and trace
/// level (handlebars the values a template is given, names among them; sqlx its statements;
/// the parsers the mail and HTML they read, character by character), and no log line may carry
/// a name or an address.
const ALWAYS: [&str; 6] = [
    "handlebars=off",
    "html2text=off",
    "html5ever=off",
    "markup5ever=off",
    "mail_parser=off",
    "sqlx=error",
];

pub fn init() {
    let mut filter =
        EnvFilter::try_from_env("CANVASS_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    for directive in ALWAYS {
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in a log file or journal.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
