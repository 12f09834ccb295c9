//! canvass: a consent-first email mailer for political campaigns.
//!
//! Data flows one way: the command line (and later HTTP) parses input into [`domain`] types and
//! calls [`import`] or the [`store`]; nothing below reaches back up.
//!
//! - [`domain`]: emails, postcodes, constituencies, topics, the age rule; parsed once.
//! - [`store`]: every SQL statement, on SQLite or PostgreSQL behind one interface.
//! - [`import`]: streaming CSV imports of contacts and the postcode directory.
//! - [`config`]: flags, environment and `canvass.toml`, resolved once.
//! - [`cli`], [`progress`], [`demo`], [`telemetry`]: the program around them.

pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod feedback;
pub mod http;
pub mod import;
pub mod metrics;
pub mod progress;
pub mod render;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod worker;
