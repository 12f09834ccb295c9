//! Public sign-up with double opt-in: `POST /subscribe` (a form or JSON) keeps the request and
//! emails a signed link that works for seven days; `GET /confirm/{token}` shows one button and
//! `POST /confirm/{token}` makes the person a contact with consent. The answer to a sign-up is
//! the same, byte for byte, whoever the address belongs to; sign-ups are limited per IP address
//! (in this process) and per email address (in the database).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::client_ip::ClientIp;
use crate::app::contacts;
use crate::domain::ContactDraft;
use crate::store::{ConfirmOutcome, NewSignup, SIGNUP_SOURCE};
use crate::token::Purpose;

/// IP addresses the sign-up limiter tracks before it forgets those back to full quota.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Sign-ups per IP address: 10 an hour, 5 at once.
pub fn signup_limiter() -> Arc<DefaultKeyedRateLimiter<IpAddr>> {
    let quota = Quota::per_hour(NonZeroU32::new(10).expect("10 is not 0"))
        .allow_burst(NonZeroU32::new(5).expect("5 is not 0"));
    Arc::new(RateLimiter::keyed(quota))
}

/// What the sign-up form sends.
#[derive(Debug, Default, Deserialize)]
struct SignupForm {
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    topics: Vec<String>,
    /// The wording (or form version) the person was shown.
    #[serde(default)]
    wording: String,
}

impl SignupForm {
    /// JSON, or a form whose `topics` may repeat.
    fn read(json: bool, body: &[u8]) -> Option<Self> {
        if json {
            return serde_json::from_slice(body).ok();
        }
        let mut form = Self::default();
        for (key, value) in url::form_urlencoded::parse(body) {
            match &*key {
                "email" => form.email = value.into_owned(),
                "name" => form.name = value.into_owned(),
                "postcode" => form.postcode = value.into_owned(),
                "topics" => form.topics.push(value.into_owned()),
                "wording" => form.wording = value.into_owned(),
                _ => {}
            }
        }
        Some(form)
    }
}

#[derive(Serialize)]
struct SignupAnswer<'a> {
    status: &'a str,
    message: &'a str,
}

/// Answers in the form the request came in: JSON or a page.
fn answer(state: &AppState, json: bool, status: StatusCode, page: &str, message: &str) -> Response {
    match json {
        true => (
            status,
            Json(SignupAnswer {
                status: page,
                message,
            }),
        )
            .into_response(),
        false => state.page_with_message(status, page, message),
    }
}

impl AppState {
    /// Whether a public form (a sign-up, a complaint) from `client` is within the limit: 10
    /// an hour, 5 at once, per IP address.
    pub(super) fn allows_form_from(&self, client: &ClientIp) -> bool {
        // The limiter keeps a cell per address it has seen; forget the ones back to full quota
        // so that a crowd of addresses cannot grow it without bound.
        if self.signup_limiter.len() > MAX_TRACKED_ADDRESSES {
            self.signup_limiter.retain_recent();
        }
        self.signup_limiter.check_key(&client.limit_key()).is_ok()
    }
}

pub async fn subscribe(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !state.allows_form_from(&client) {
        return answer(
            &state,
            json,
            StatusCode::TOO_MANY_REQUESTS,
            "signup_refused",
            "Too many sign-ups from here; try again in an hour.",
        );
    }
    let Some(form) = SignupForm::read(json, &body) else {
        return answer(
            &state,
            json,
            StatusCode::BAD_REQUEST,
            "signup_refused",
            "That was not a sign-up form.",
        );
    };
    let signup = match parse(&state, form, client.0).await {
        Ok(signup) => signup,
        Err(problem) => {
            return answer(
                &state,
                json,
                StatusCode::UNPROCESSABLE_ENTITY,
                "signup_refused",
                &problem,
            );
        }
    };
    match request_confirmation(&state, &signup).await {
        Ok(()) => answer(
            &state,
            json,
            StatusCode::ACCEPTED,
            "signup_sent",
            "Check your inbox: follow the link there to confirm.",
        ),
        Err(problem) => {
            tracing::error!("sign-up: {problem}");
            answer(
                &state,
                json,
                StatusCode::SERVICE_UNAVAILABLE,
                "signup_refused",
                "We could not take your sign-up just now; please try again later.",
            )
        }
    }
}

/// Checks every field as any contact is checked; the problem in words a person can act on.
async fn parse(state: &AppState, form: SignupForm, ip: IpAddr) -> Result<NewSignup, String> {
    let draft = ContactDraft {
        email: &form.email,
        name: &form.name,
        postcode: &form.postcode,
        topics: form.topics.iter().map(String::as_str).collect(),
        source: SIGNUP_SOURCE,
        ..ContactDraft::default()
    };
    let rules = contacts::rules(&state.app, SIGNUP_SOURCE)
        .await
        .map_err(|e| e.to_string())?;
    let contact = draft.parse(&rules).map_err(|e| e.to_string())?;
    if contact.topics.is_empty() {
        return Err("topics: choose at least one topic".into());
    }
    let wording = form.wording.trim();
    if wording.is_empty() || wording.chars().count() > 200 {
        return Err("wording: the form must say which wording it showed".into());
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

/// Keeps the sign-up and emails its link, unless the address has had its share this hour:
/// then nothing happens, and the answer says the same as ever.
async fn request_confirmation(state: &AppState, signup: &NewSignup) -> Result<(), String> {
    let Some(mailer) = &state.app.mailer else {
        return Err("no mail transport is configured for confirmations".into());
    };
    let created = state
        .store
        .create_signup(signup)
        .await
        .map_err(|e| e.to_string())?;
    let Some(id) = created else {
        tracing::info!("sign-up limit reached for an address; no email sent");
        return Ok(());
    };
    let letterhead = &mailer.letterhead;
    let link = format!(
        "{}/confirm/{}",
        letterhead.base_url,
        state.keys.sign(Purpose::Confirm, &id).as_str()
    );
    let text = format!(
        "Please confirm that you want emails from {sender}.\n\nFollow this link within seven \
         days:\n{link}\n\nIf you did not sign up, ignore this email: nothing will be sent to \
         you.\n",
        sender = state.sender
    );
    let html = format!(
        "<p>Please confirm that you want emails from {sender}.</p>\
         <p><a href=\"{link}\">Confirm my sign-up</a> (the link works for seven days)</p>\
         <p>If you did not sign up, ignore this email: nothing will be sent to you.</p>",
        sender = handlebars::html_escape(&state.sender),
        link = handlebars::html_escape(&link),
    );
    let subject = format!("Confirm your sign-up to {}", state.sender);
    let (_, message) = letterhead
        .notice(&signup.email, &subject, text, html)
        .map_err(|e| e.to_string())?;
    let name = format!("signup-{}.eml", id.as_uuid().simple());
    mailer
        .send_one(&signup.email, &message, &name)
        .await
        .map_err(|e| e.reason().to_owned())
}

pub async fn confirm_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.keys.verify(&token, Purpose::Confirm, Utc::now()) {
        Ok(_) => state.page_with_message(StatusCode::OK, "confirm", ""),
        Err(error) => state.invalid_link(error),
    }
}

pub async fn confirm(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
) -> Response {
    let id = match state.keys.verify(&token, Purpose::Confirm, Utc::now()) {
        Ok(id) => id,
        Err(error) => return state.invalid_link(error),
    };
    let ip = client.to_string();
    match state.store.confirm_signup(&id, Some(&ip)).await {
        Ok(ConfirmOutcome::Confirmed | ConfirmOutcome::AlreadyConfirmed) => {
            state.page_with_message(StatusCode::OK, "confirmed", "")
        }
        Ok(ConfirmOutcome::NotFound) => state.invalid_link(crate::token::TokenError::UnknownKey),
        Err(e) => {
            tracing::error!("confirming a sign-up: {e}");
            state.page_with_message(
                StatusCode::SERVICE_UNAVAILABLE,
                "signup_refused",
                "We could not confirm your sign-up just now; please try the link again later.",
            )
        }
    }
}
