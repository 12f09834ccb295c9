//! `canvass inbox import DIR` (or `bounces import`): reads what the bounce, feedback-loop and
//! unsubscribe mailboxes received, saved in a folder: `.eml` files, or a Maildir (its `new` and
//! `cur`). Each message is acted on once, however often the folder is imported. `canvass inbox
//! fetch` reads the mailbox over IMAP once.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::app::App;
use crate::app::inbox::{self, Heard, MessageRead};
use crate::domain::SuppressionReason;
use crate::mail::token::SigningKeys;

#[derive(Default)]
struct Tally {
    bounced: u64,
    complaints: u64,
    unsubscribed: u64,
    temporary: u64,
    unmatched: u64,
    unreadable: u64,
    again: u64,
}

pub async fn import(app: &App, keys: &SigningKeys, dir: &Path) -> anyhow::Result<()> {
    let files = messages_in(dir)?;
    let mut tally = Tally::default();
    for path in &files {
        let name = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        match inbox::read_message(app, keys, &bytes).await? {
            MessageRead::AlreadyRead => {
                tally.again += 1;
                println!("{name}: read before: nothing done again");
            }
            MessageRead::Unreadable(why) => {
                tally.unreadable += 1;
                println!("{name}: skipped: {why}");
            }
            MessageRead::Read(reports) => {
                for report in reports {
                    match report.heard {
                        Heard::Suppressed(SuppressionReason::Complaint) => tally.complaints += 1,
                        Heard::Suppressed(_) => tally.bounced += 1,
                        Heard::Unsubscribed => tally.unsubscribed += 1,
                        Heard::Temporary => tally.temporary += 1,
                        Heard::NotOurs => tally.unmatched += 1,
                        Heard::AlreadyUnsubscribed | Heard::NobodyHeld => {}
                    }
                    println!("{name}: {}", report.said);
                }
            }
        }
    }
    println!(
        "read {} files: {} suppressed as bounced, {} as complaints, {} unsubscribed, {} \
         temporary (nobody suppressed), {} not about a message canvass sent (ignored), {} not \
         reports, {} read before",
        files.len(),
        tally.bounced,
        tally.complaints,
        tally.unsubscribed,
        tally.temporary,
        tally.unmatched,
        tally.unreadable,
        tally.again
    );
    Ok(())
}

/// The messages in `dir`, in order: its `.eml` files, and when it is a Maildir, the messages in
/// its `new` and `cur` folders (never `tmp`, where a delivery is still being written).
fn messages_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let listed = |folder: &Path, all: bool| -> anyhow::Result<Vec<PathBuf>> {
        Ok(std::fs::read_dir(folder)
            .with_context(|| format!("reading {}", folder.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_file())
            .filter(|path| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if all {
                    !name.starts_with('.')
                } else {
                    path.extension()
                        .is_some_and(|x| x.eq_ignore_ascii_case("eml"))
                }
            })
            .collect())
    };
    let mut files = listed(dir, false)?;
    for maildir in ["new", "cur"] {
        let folder = dir.join(maildir);
        if folder.is_dir() {
            files.extend(listed(&folder, true)?);
        }
    }
    files.sort();
    Ok(files)
}

/// `canvass inbox fetch`: the bounce mailbox, read once.
pub async fn fetch(
    app: &App,
    keys: &SigningKeys,
    url: &crate::mail::imap::MailboxUrl,
    tls: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
) -> anyhow::Result<()> {
    let fetched = inbox::fetch(app, keys, url, tls)
        .await
        .with_context(|| format!("reading {url}"))?;
    println!(
        "read {} messages from {url}: {} acted on and {} read before (moved to \
         canvass/processed), {} not about canvass's mail (moved to canvass/ignored), {} left \
         for next time (see the log)",
        fetched.acted + fetched.ignored + fetched.read_before + fetched.failed,
        fetched.acted,
        fetched.read_before,
        fetched.ignored,
        fetched.failed
    );
    Ok(())
}
