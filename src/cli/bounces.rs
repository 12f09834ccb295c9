//! `canvass bounces import DIR`: reads the delivery status notifications and abuse reports
//! saved in a folder (`.eml` files) and suppresses the addresses they condemn.

use std::path::Path;

use anyhow::Context;

use crate::domain::{Actor, SuppressionReason};
use crate::feedback::{self, Finding, Report};
use crate::store::{FeedbackAbout, Store};

#[derive(Default)]
struct Tally {
    bounced: u64,
    complaints: u64,
    temporary: u64,
    unmatched: u64,
    unreadable: u64,
}

pub async fn import(store: &Store, dir: &Path) -> anyhow::Result<()> {
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
                    let said = apply(store, &finding, &mut tally).await?;
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
        "read {} files: {} suppressed as bounced, {} as complaints, {} temporary (nobody \
         suppressed), {} not about a message canvass sent (ignored), {} not reports",
        files.len(),
        tally.bounced,
        tally.complaints,
        tally.temporary,
        tally.unmatched,
        tally.unreadable
    );
    Ok(())
}

/// Suppresses what one finding condemns; says what it did.
async fn apply(store: &Store, finding: &Finding, tally: &mut Tally) -> anyhow::Result<String> {
    let (reason, detail) = match &finding.report {
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
