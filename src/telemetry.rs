//! Logging, set up once per process. Log lines carry ids, never addresses, names or tokens.

use tracing_subscriber::EnvFilter;

/// The filter when `CANVASS_LOG` is not set. sqlx's own statement logging would print
/// parameters, which may be personal data, so it is kept to errors.
const DEFAULT_FILTER: &str = "warn,canvass=info,sqlx=error";

pub fn init() {
    let filter =
        EnvFilter::try_from_env("CANVASS_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
