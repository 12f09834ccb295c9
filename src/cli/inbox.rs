//! `canvass inbox import DIR` (or `bounces import`): reads what the bounce, feedback-loop and
//! unsubscribe mailboxes received, saved in a folder (`.eml` files): suppresses the addresses
//! that delivery status notifications and abuse reports about our own mail condemn, and
//! unsubscribes the people whose signed token an unsubscribe request carries.

use std::path::Path;

use anyhow::Context;
use chrono::Utc;

use crate::domain::{Actor, SuppressionReason};
use crate::feedback::{self, Finding, Report};
use crate::store::{FeedbackAbout, Store, UnsubscribeOutcome, UnsubscribeRequest};
use crate::token::{Purpose, SigningKeys};

/// The consent ledger's source for an unsubscribe request sent by email.
const UNSUBSCRIBE_EMAIL_SOURCE: &str = "unsubscribe-email";

#[derive(Default)]
struct Tally {
    bounced: u64,
    complaints: u64,
    unsubscribed: u64,
    temporary: u64,
    unmatched: u64,
    unreadable: u64,
}

pub async fn import(store: &Store, keys: &SigningKeys, dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("eml"))
        })
        .collect();
    files.sort();
    let mut tally = Tally::default();
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        match feedback::read(&bytes) {
            Ok(findings) => {
                for finding in findings {
                    let said = apply(store, keys, &finding, &mut tally).await?;
                    println!("{name}: {said}");
                }
            }
            Err(e) => {
                tally.unreadable += 1;
                println!("{name}: skipped: {e}");
            }
        }
    }
    println!(
        "read {} files: {} suppressed as bounced, {} as complaints, {} unsubscribed, {} \
         temporary (nobody suppressed), {} not about a message canvass sent (ignored), {} not \
         reports",
        files.len(),
        tally.bounced,
        tally.complaints,
        tally.unsubscribed,
        tally.temporary,
        tally.unmatched,
        tally.unreadable
    );
    Ok(())
}

/// Suppresses what one finding condemns; says what it did.
async fn apply(
    store: &Store,
    keys: &SigningKeys,
    finding: &Finding,
    tally: &mut Tally,
) -> anyhow::Result<String> {
    let (reason, detail) = match &finding.report {
        Report::Unsubscribe { token } => return unsubscribe(store, keys, token, tally).await,
        Report::Bounce { status } if !finding.report.is_permanent() => {
            tally.temporary += 1;
            return Ok(format!("temporary bounce {status}: nobody suppressed"));
        }
        Report::Bounce { status } => (SuppressionReason::Bounced, format!("bounce {status}")),
        Report::Complaint => (SuppressionReason::Complaint, "complaint report".to_owned()),
    };
    // Only a report about a message canvass sent, to the address it names, acts: anyone can
    // write a report, and a suppression silences a person for good.
    let Some(id) = &finding.message_id else {
        tally.unmatched += 1;
        return Ok(format!(
            "{detail}: not ours (names no Message-ID canvass gave): ignored"
        ));
    };
    let about = FeedbackAbout::Message {
        id,
        to: finding.recipient.as_ref(),
    };
    match store
        .record_feedback(&about, reason, &detail, &Actor::Operator)
        .await?
    {
        true => {
            match reason {
                SuppressionReason::Complaint => tally.complaints += 1,
                _ => tally.bounced += 1,
            }
            Ok(format!("{detail}: suppressed"))
        }
        false => {
            tally.unmatched += 1;
            Ok(format!(
                "{detail}: not ours (canvass sent no message {id} to that address): ignored"
            ))
        }
    }
}

/// Unsubscribes the person whose signed token the request carries, as the one-click link does.
async fn unsubscribe(
    store: &Store,
    keys: &SigningKeys,
    token: &str,
    tally: &mut Tally,
) -> anyhow::Result<String> {
    let Ok(contact) = keys.verify(token, Purpose::Unsubscribe, Utc::now()) else {
        tally.unmatched += 1;
        return Ok("unsubscribe request: not ours (its token does not verify): ignored".into());
    };
    let request = UnsubscribeRequest {
        contact,
        source: UNSUBSCRIBE_EMAIL_SOURCE,
        ip: None,
    };
    let outcome = store.unsubscribe(std::slice::from_ref(&request)).await?;
    Ok(match outcome.first() {
        Some(UnsubscribeOutcome::Unsubscribed) => {
            tally.unsubscribed += 1;
            "unsubscribe request: unsubscribed".into()
        }
        Some(UnsubscribeOutcome::AlreadyUnsubscribed) => {
            "unsubscribe request: already unsubscribed".into()
        }
        _ => "unsubscribe request: nobody is held for it (erased?)".into(),
    })
}
