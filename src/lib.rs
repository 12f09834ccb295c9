//! canvass: a consent-first email mailer for political campaigns.
//!
//! Data flows one way: the command line and the HTTP service parse input into [`domain`] types
//! and call [`import`] or the [`store`]; the [`worker`] sends through [`mail`]; nothing below
//! reaches back up.
//!
//! - [`domain`]: emails, postcodes, constituencies, topics, the age rule; parsed once.
//! - [`store`]: every SQL statement, on SQLite or PostgreSQL behind one interface.
//! - [`import`]: streaming CSV imports of contacts and the postcode directory.
//! - [`mail`]: building messages (MIME, footer, DKIM) and sending them (SMTP, outbox).
//! - [`worker`]: claims, senders and the recorder, sending through [`mail`].
//! - [`config`]: flags, environment and `canvass.toml`, resolved once.
//! - [`http`]: the public pages, the links, the staff API.
//! - [`cli`], [`progress`], [`demo`], [`telemetry`]: the program around them.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod feedback;
pub mod http;
pub mod import;
pub mod mail;
pub mod metrics;
pub mod progress;
pub mod render;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod worker;
