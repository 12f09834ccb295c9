//! Bounces and complaints: a permanent bounce or a complaint about canvass's own mail
//! suppresses the address for good; a temporary bounce suppresses nobody.

use super::{Actor, App, AppError, Result};
use crate::domain::SuppressionReason;
use crate::mail::feedback::Report;
pub use crate::store::FeedbackAbout;

/// What recording a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Suppressed(SuppressionReason),
    /// A 4.x.x bounce: the message may yet arrive, and nobody is suppressed.
    Temporary,
}

/// Records a bounce or a complaint about a message canvass sent (or, from a trusted reporter,
/// about an address). A report naming a message canvass did not send to that address is
/// refused: anyone can write a report, and a suppression silences a person for good.
pub async fn record(
    app: &App,
    actor: &Actor,
    about: &FeedbackAbout<'_>,
    report: &Report,
) -> Result<Recorded> {
    super::may_write(actor)?;
    // A suppression silences a person for good: staff kept to some constituencies report only
    // about their own contacts, named by address.
    let scope = actor.scope();
    if scope.constituencies().is_some() {
        let FeedbackAbout::Address(email) = about else {
            return Err(AppError::Denied(
                "name the address: you may report only about contacts in your constituencies"
                    .into(),
            ));
        };
        if !app.store.contact_in_scope(email, scope).await? {
            return Err(AppError::NotFound(
                "nothing is held on that address in your constituencies".into(),
            ));
        }
    }
    let (reason, detail) = match report {
        Report::Bounce { status } if !status.is_permanent() => return Ok(Recorded::Temporary),
        Report::Bounce { status } => (SuppressionReason::Bounced, format!("bounce {status}")),
        Report::Complaint => (
            SuppressionReason::Complaint,
            "complaint reported".to_owned(),
        ),
        Report::Unsubscribe { .. } => {
            return Err(AppError::invalid(
                "kind",
                "an unsubscribe request is a withdrawal, not a bounce or a complaint",
            ));
        }
    };
    match app
        .store
        .record_feedback(about, reason, &detail, actor)
        .await?
    {
        true => Ok(Recorded::Suppressed(reason)),
        false => Err(AppError::NotFound(
            "canvass sent no message with that Message-ID to that address".into(),
        )),
    }
}
