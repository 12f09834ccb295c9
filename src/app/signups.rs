//! Sign-up with double opt-in: a request is kept and a signed link emailed; following the link
//! makes the person a contact with consent. Sign-ups are limited per address in the database;
//! the public page limits them per IP address as well.

use std::net::IpAddr;

use super::{App, AppError, Result, contacts};
use crate::domain::{ContactDraft, PublicId};
use crate::mail::token::{Purpose, SigningKeys};
use crate::store::{NewSignup, SIGNUP_SOURCE};

pub use crate::store::ConfirmOutcome;

/// A sign-up as the public form sent it.
#[derive(Debug, Default)]
pub struct SignupForm {
    pub email: String,
    pub name: String,
    pub postcode: String,
    pub topics: Vec<String>,
    /// The wording (or form version) the person was shown.
    pub wording: String,
}

/// What became of a well-formed sign-up. The public answer is the same for both, whoever the
/// address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// The link was emailed.
    Sent,
    /// The address has had its share of sign-ups this hour: nothing was kept or sent.
    Limited,
}

/// Checks every field as any contact is checked, keeps the sign-up and emails its link, signed
/// with `keys`, from `ip`.
pub async fn request(
    app: &App,
    keys: &SigningKeys,
    form: &SignupForm,
    ip: IpAddr,
) -> Result<Requested> {
    let signup = parse(app, form, ip).await?;
    let Some(mailer) = &app.mailer else {
        return Err(AppError::Unsent(
            "no mail transport is configured for confirmations".to_owned(),
        ));
    };
    let Some(id) = app.store.create_signup(&signup).await? else {
        tracing::info!("sign-up limit reached for an address; no email sent");
        return Ok(Requested::Limited);
    };
    let letterhead = &mailer.letterhead;
    let sender = app.publisher.organisation.as_str();
    let link = format!(
        "{}/confirm/{}",
        letterhead.base_url,
        keys.sign(Purpose::Confirm, &id).as_str()
    );
    let text = format!(
        "Please confirm that you want emails from {sender}.\n\nFollow this link within seven \
         days:\n{link}\n\nIf you did not sign up, ignore this email: nothing will be sent to \
         you.\n"
    );
    let html = format!(
        "<p>Please confirm that you want emails from {sender}.</p>\
         <p><a href=\"{link}\">Confirm my sign-up</a> (the link works for seven days)</p>\
         <p>If you did not sign up, ignore this email: nothing will be sent to you.</p>",
        sender = handlebars::html_escape(sender),
        link = handlebars::html_escape(&link),
    );
    let subject = format!("Confirm your sign-up to {sender}");
    let (_, message) = letterhead
        .notice(&signup.email, &subject, text, html)
        .map_err(|e| AppError::Unsent(e.to_string()))?;
    let name = format!("signup-{}.eml", id.as_uuid().simple());
    mailer
        .send_one(&signup.email, &message, &name)
        .await
        .map_err(|e| AppError::Unsent(e.reason().to_owned()))?;
    Ok(Requested::Sent)
}

/// The sign-up as a contact would be saved, or the field at fault.
async fn parse(app: &App, form: &SignupForm, ip: IpAddr) -> Result<NewSignup> {
    let draft = ContactDraft {
        email: &form.email,
        name: &form.name,
        postcode: &form.postcode,
        topics: form.topics.iter().map(String::as_str).collect(),
        source: SIGNUP_SOURCE,
        ..ContactDraft::default()
    };
    let rules = contacts::rules(app, SIGNUP_SOURCE).await?;
    let contact = draft
        .parse(&rules)
        .map_err(|e| AppError::invalid(e.field, e.message))?;
    if contact.topics.is_empty() {
        return Err(AppError::invalid("topics", "choose at least one topic"));
    }
    let wording = form.wording.trim();
    if wording.is_empty() || wording.chars().count() > 200 {
        return Err(AppError::invalid(
            "wording",
            "the form must say which wording it showed",
        ));
    }
    Ok(NewSignup {
        email: contact.email,
        name: contact.name,
        postcode: contact.postcode,
        topics: contact.topics,
        wording: wording.to_owned(),
        ip: Some(ip.to_string()),
    })
}

/// Makes the person who followed the link (from `ip`) a contact with the consent they asked
/// for.
pub async fn confirm(app: &App, id: &PublicId, ip: IpAddr) -> Result<ConfirmOutcome> {
    let ip = ip.to_string();
    Ok(app.store.confirm_signup(id, Some(&ip)).await?)
}

/// Forgets the sign-ups whose links have expired; how many.
pub async fn purge_expired(app: &App) -> Result<u64> {
    Ok(app.store.purge_signups().await?)
}
