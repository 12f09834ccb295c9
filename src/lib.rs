//! canvass: a consent-first email mailer for political campaigns.
//!
//! Data flows one way: the adapters (the command line, the staff API, the public pages, the
//! demo) call the [`app`], one function per use-case, which parses their input into [`domain`]
//! types and acts through the [`store`], [`import`] and [`mail`]; the [`worker`] sends through
//! [`mail`]; nothing below reaches back up.
//!
//! - [`app`]: the use-cases (campaigns, contacts, imports, feedback, topics), each taking the
//!   acting identity and naming the field at fault when it refuses.
//! - [`domain`]: emails, postcodes, constituencies, topics, the age rule, a contact and a
//!   campaign as people write them; parsed once.
//! - [`store`]: every SQL statement, on SQLite or PostgreSQL behind one interface.
//! - [`import`]: streaming CSV imports of contacts and the postcode directory.
//! - [`mail`]: building messages (MIME, footer, DKIM; a campaign's bodies, compiled and
//!   checked once; the signed links in every message) and sending them (SMTP, outbox), and
//!   reading what comes back by email (bounces, complaints, unsubscribe requests).
//! - [`hooks`]: what hosted mail providers report through their webhooks, verified.
//! - [`worker`]: claims, senders and the recorder, sending through [`mail`].
//! - [`database`]: the database as the operator keeps it: opened with its journal, migrated,
//!   backed up, and restored keeping every erasure.
//! - [`config`]: flags, environment and `canvass.toml`, resolved once.
//! - [`http`]: adapters: the public pages, the links, the staff API, the staff console, the
//!   providers' webhooks, health and metrics.
//! - [`cli`], [`progress`], [`demo`], [`telemetry`], [`metrics`]: the program around them.

pub mod app;
pub mod cli;
pub mod config;
pub mod database;
pub mod demo;
pub mod domain;
pub mod hooks;
pub mod http;
pub mod import;
pub mod mail;
pub mod metrics;
pub mod progress;
pub mod store;
pub mod telemetry;
pub mod worker;

#[cfg(test)]
mod layers;
