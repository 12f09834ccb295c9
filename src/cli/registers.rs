//! `canvass requests ...` and `canvass complaints ...`: the registers a data protection officer
//! keeps, with their clocks.

use anyhow::bail;
use clap::Subcommand;

use super::refused;
use crate::app::registers::{self, ComplaintLine, Due, RequestLine};
use crate::app::{self, Actor, App, AppError};
use crate::domain::{day_name, days_left, uk_date, uk_time};

#[derive(Subcommand)]
pub enum RequestsCommand {
    /// Record a rights request; prints its reference (REQ-2026-0001)
    Open {
        /// access, rectification, erasure, restriction, portability or objection
        #[arg(long)]
        right: String,
        /// The address of the person it is about (kept only as a hash)
        #[arg(long)]
        email: String,
        /// The day it reached the party (YYYY-MM-DD): the clock starts then
        #[arg(long)]
        received: String,
        /// phone, email, letter, web or in-person
        #[arg(long, default_value = "email")]
        channel: String,
    },
    /// Stop the clock: waiting for the person's identity or clarification
    Pause {
        reference: String,
        /// The day the party asked them (YYYY-MM-DD)
        #[arg(long)]
        from: String,
    },
    /// Start the clock again: what was waited for came
    Resume {
        reference: String,
        /// The day it came (YYYY-MM-DD)
        #[arg(long)]
        on: String,
    },
    /// Two months more, for a complex request (only within the first month)
    Extend {
        reference: String,
        /// Why it needs longer
        #[arg(long)]
        reason: String,
        /// The day the person was told (YYYY-MM-DD)
        #[arg(long)]
        notified: String,
    },
    /// Close the request today
    Close {
        reference: String,
        /// What was done
        #[arg(long)]
        outcome: String,
    },
    /// The requests, open ones first by when they were received (all with --all)
    List {
        #[arg(long)]
        all: bool,
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// What is due within DAYS or overdue (requests and complaints' acknowledgements); exits 1
    /// when there is any, for cron
    Due {
        #[arg(long, default_value_t = 7, value_name = "DAYS")]
        within: u32,
    },
}

#[derive(Subcommand)]
pub enum ComplaintsCommand {
    /// Record a data protection complaint; prints its reference (CMP-2026-0001)
    Log {
        /// The day it reached the party (YYYY-MM-DD)
        #[arg(long)]
        received: String,
        /// phone, email, letter, web or in-person
        #[arg(long)]
        channel: String,
        /// What it is about
        #[arg(long)]
        summary: String,
        /// The complainant's address, to answer them
        #[arg(long)]
        email: Option<String>,
        /// The Message-ID of the email complained of
        #[arg(long)]
        message_id: Option<String>,
    },
    /// Record that the complaint was acknowledged
    Acknowledge {
        reference: String,
        /// The day (YYYY-MM-DD)
        #[arg(long)]
        on: String,
    },
    /// Close the complaint today
    Close {
        reference: String,
        /// How it was resolved
        #[arg(long)]
        outcome: String,
    },
    /// The complaints, open ones (all with --all)
    List {
        #[arg(long)]
        all: bool,
        /// As JSON
        #[arg(long)]
        json: bool,
    },
}

pub async fn requests(app: &App, command: RequestsCommand) -> anyhow::Result<()> {
    let me = &Actor::Operator;
    match command {
        RequestsCommand::Open {
            right,
            email,
            received,
            channel,
        } => {
            let reference = registers::open_request(app, me, &right, &email, &received, &channel)
                .await
                .map_err(flagged)?;
            let line = registers::request(app, me, &reference.to_string())
                .await
                .map_err(refused)?;
            println!("{reference}");
            eprintln!("due on {}", day_name(line.due));
        }
        RequestsCommand::Pause { reference, from } => {
            let line = registers::pause(app, me, &reference, &from)
                .await
                .map_err(refused)?;
            println!(
                "{}: paused; the clock stands at {} days left",
                line.reference, line.days_left
            );
        }
        RequestsCommand::Resume { reference, on } => {
            let line = registers::resume(app, me, &reference, &on)
                .await
                .map_err(refused)?;
            println!(
                "{}: the clock runs again; due on {}",
                line.reference,
                day_name(line.due)
            );
        }
        RequestsCommand::Extend {
            reference,
            reason,
            notified,
        } => {
            let line = registers::extend(app, me, &reference, &reason, &notified)
                .await
                .map_err(refused)?;
            println!(
                "{}: extended; due on {}",
                line.reference,
                day_name(line.due)
            );
        }
        RequestsCommand::Close { reference, outcome } => {
            let line = registers::close(app, me, &reference, &outcome)
                .await
                .map_err(refused)?;
            println!("{}: closed", line.reference);
        }
        RequestsCommand::List { all, json } => {
            let lines = registers::requests(app, me, all).await.map_err(refused)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&lines)?)
            } else {
                lines.iter().for_each(print_request)
            }
        }
        RequestsCommand::Due { within } => {
            let due = registers::due(app, me, within).await.map_err(refused)?;
            print_due(&due, within);
            if !due.is_empty() {
                bail!(
                    "{} requests and {} complaints are due within {within} days or overdue",
                    due.requests.len(),
                    due.complaints.len()
                );
            }
        }
    }
    Ok(())
}

pub async fn complaints(app: &App, command: ComplaintsCommand) -> anyhow::Result<()> {
    let me = &Actor::Operator;
    match command {
        ComplaintsCommand::Log {
            received,
            channel,
            summary,
            email,
            message_id,
        } => {
            let reference = registers::log_complaint(
                app,
                me,
                &received,
                &channel,
                &summary,
                email.as_deref(),
                message_id.as_deref(),
            )
            .await
            .map_err(flagged)?;
            println!("{reference}");
        }
        ComplaintsCommand::Acknowledge { reference, on } => {
            let line = registers::acknowledge(app, me, &reference, &on)
                .await
                .map_err(refused)?;
            println!("{}: acknowledged", line.reference);
        }
        ComplaintsCommand::Close { reference, outcome } => {
            let line = registers::close_complaint(app, me, &reference, &outcome)
                .await
                .map_err(refused)?;
            println!("{}: closed", line.reference);
        }
        ComplaintsCommand::List { all, json } => {
            let lines = registers::complaints(app, me, all).await.map_err(refused)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&lines)?)
            } else {
                lines.iter().for_each(print_complaint)
            }
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// What is past the retention period: contacts to erase, IP addresses to blank; exits 1
    /// when there is any
    Check,
    /// Erase the contacts past it and blank the old IP addresses, and say what was done
    Apply,
}

pub async fn retention(app: &App, command: RetentionCommand) -> anyhow::Result<()> {
    let me = &Actor::Operator;
    let now = chrono::Utc::now();
    let cutoff = app::retention::cutoff(app, now).map_err(refused)?;
    match command {
        RetentionCommand::Check => {
            let due = app::retention::check(app, me, now).await.map_err(refused)?;
            for contact in &due.contacts {
                println!(
                    "{contact}\tnothing in force or done since {}",
                    uk_date(cutoff)
                );
            }
            println!(
                "{} contacts to erase and {} IP addresses to blank (recorded before {})",
                due.contacts.len(),
                due.ip_addresses,
                uk_date(cutoff)
            );
            if !due.is_empty() {
                bail!("retention is overdue: `canvass retention apply` erases and blanks them");
            }
        }
        RetentionCommand::Apply => {
            let done = app::retention::apply(app, me, now).await.map_err(refused)?;
            println!(
                "erased {} contacts and blanked {} IP addresses (recorded before {})",
                done.erased,
                done.ip_addresses,
                uk_date(cutoff)
            );
        }
    }
    Ok(())
}

/// `canvass proof MESSAGE-ID`: why that message went to whom it went.
pub async fn proof(app: &App, message_id: &str, json: bool) -> anyhow::Result<()> {
    let proof = registers::proof(app, &Actor::Operator, message_id)
        .await
        .map_err(flagged)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&proof)?);
        return Ok(());
    }
    let campaign = &proof.campaign;
    println!("message {}", proof.message_id);
    match proof.sent_at {
        Some(at) => println!("sent {} ({})", uk_time(at), proof.state),
        None => println!("not sent ({})", proof.state),
    }
    println!(
        "campaign {} \"{}\" (topic {}), subject \"{}\", version {}",
        campaign.id,
        campaign.name,
        campaign.topic,
        campaign.subject,
        campaign.version.map_or("-".into(), |v| v.to_string())
    );
    println!("written by {}", campaign.created_by);
    match (&campaign.approved_by, campaign.approved_at) {
        (Some(by), Some(at)) => println!("approved by {by} on {}", uk_time(at)),
        _ => println!("not approved by a second person (queued by the operator, or approval off)"),
    }
    if campaign.election_material {
        println!("election material: carried the imprint");
    }
    let Some(recipient) = &proof.recipient else {
        println!(
            "the recipient was erased since: only the anonymised delivery remains (that a \
             message went, not to whom)"
        );
        return Ok(());
    };
    println!("to contact {}", recipient.public_id);
    match &recipient.consent {
        Some(consent) if consent.granted => {
            println!(
                "allowed by their consent to {} given {} ({}), recorded {}{}{}",
                consent.topic,
                uk_time(consent.at),
                consent.source,
                uk_time(consent.recorded_at),
                consent
                    .wording
                    .as_deref()
                    .map(|w| format!(", wording \"{w}\""))
                    .unwrap_or_default(),
                consent
                    .ip
                    .as_deref()
                    .map(|ip| format!(", from {ip}"))
                    .unwrap_or_default()
            );
            println!(
                "no withdrawal of {} was recorded before it was sent",
                consent.topic
            );
        }
        Some(consent) => println!(
            "NOT allowed: their consent to {} was withdrawn {} ({})",
            consent.topic,
            uk_time(consent.at),
            consent.source
        ),
        None => println!("NOT allowed: no consent to {} was recorded", campaign.topic),
    }
    for later in &recipient.recorded_later {
        println!(
            "recorded after it was sent, dated before: {} {} ({}), recorded {}",
            if later.granted { "grant" } else { "withdrawal" },
            uk_time(later.at),
            later.source,
            uk_time(later.recorded_at)
        );
    }
    if let Some(now) = &recipient.now {
        println!(
            "since then: {} {} ({})",
            if now.granted {
                "given again"
            } else {
                "withdrawn"
            },
            uk_time(now.at),
            now.source
        );
    }
    Ok(())
}

/// One line a request: reference, right, received, due, status, days left.
fn print_request(line: &RequestLine) {
    println!(
        "{}\t{}\treceived {}\tdue {}\t{}\t{}",
        line.reference,
        line.right,
        day_name(line.received),
        day_name(line.due),
        line.status.as_str(),
        days_left(line.days_left)
    );
}

fn print_complaint(line: &ComplaintLine) {
    println!(
        "{}\treceived {}\tacknowledge by {}\t{}\t{}",
        line.reference,
        day_name(line.received),
        day_name(line.acknowledge_by),
        line.status.as_str(),
        line.days_left.map(days_left).unwrap_or_default()
    );
}

fn print_due(due: &Due, within: u32) {
    if due.is_empty() {
        println!("nothing is due within {within} days or overdue");
        return;
    }
    due.requests.iter().for_each(print_request);
    due.complaints.iter().for_each(print_complaint);
}

/// An error naming the flag, `--email` included (which elsewhere is a command's argument).
fn flagged(error: AppError) -> anyhow::Error {
    match error {
        AppError::Invalid {
            field: "email",
            message,
        } => anyhow::anyhow!("--email: {message}"),
        error => refused(error),
    }
}
