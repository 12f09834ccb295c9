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
use super::pages::PublicPage;
use crate::app::AppError;
use crate::app::signups::{self, ConfirmOutcome, Requested, SignupForm};
use crate::mail::token::Purpose;

/// IP addresses the sign-up limiter tracks before it forgets those back to full quota.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Sign-ups per IP address: 10 an hour, 5 at once.
pub fn signup_limiter() -> Arc<DefaultKeyedRateLimiter<IpAddr>> {
    let quota = Quota::per_hour(NonZeroU32::new(10).expect("10 is not 0"))
        .allow_burst(NonZeroU32::new(5).expect("5 is not 0"));
    Arc::new(RateLimiter::keyed(quota))
}

/// Reads JSON, or a form whose `topics` may repeat.
fn read_form(json: bool, body: &[u8]) -> Option<SignupForm> {
    #[derive(Deserialize)]
    struct JsonForm {
        email: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        postcode: String,
        #[serde(default)]
        topics: Vec<String>,
        #[serde(default)]
        wording: String,
    }
    if json {
        let JsonForm {
            email,
            name,
            postcode,
            topics,
            wording,
        } = serde_json::from_slice(body).ok()?;
        return Some(SignupForm {
            email,
            name,
            postcode,
            topics,
            wording,
        });
    }
    let mut form = SignupForm::default();
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

#[derive(Serialize)]
struct SignupAnswer<'a> {
    status: &'a str,
    message: &'a str,
}

/// Answers in the form the request came in: JSON or a page.
fn answer(
    state: &AppState,
    json: bool,
    status: StatusCode,
    page: PublicPage,
    message: &str,
) -> Response {
    if json {
        (
            status,
            Json(SignupAnswer {
                status: page.name(),
                message,
            }),
        )
            .into_response()
    } else {
        state.page_with_message(status, page, message)
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
            PublicPage::SignupRefused,
            "Too many sign-ups from here; try again in an hour.",
        );
    }
    let Some(form) = read_form(json, &body) else {
        return answer(
            &state,
            json,
            StatusCode::BAD_REQUEST,
            PublicPage::SignupRefused,
            "That was not a sign-up form.",
        );
    };
    match signups::request(&state.app, &state.keys, &form, client.0).await {
        // The same answer whether the link went or the address had its share this hour.
        Ok(Requested::Sent | Requested::Limited) => answer(
            &state,
            json,
            StatusCode::ACCEPTED,
            PublicPage::SignupSent,
            "Check your inbox: follow the link there to confirm.",
        ),
        Err(problem @ AppError::Invalid { .. }) => answer(
            &state,
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            PublicPage::SignupRefused,
            &problem.to_string(),
        ),
        Err(problem) => {
            tracing::error!("sign-up: {problem}");
            answer(
                &state,
                json,
                StatusCode::SERVICE_UNAVAILABLE,
                PublicPage::SignupRefused,
                "We could not take your sign-up just now; please try again later.",
            )
        }
    }
}

pub async fn confirm_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.keys.verify(&token, Purpose::Confirm, Utc::now()) {
        Ok(_) => state.page_with_message(StatusCode::OK, PublicPage::Confirm, ""),
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
    match signups::confirm(&state.app, &id, client).await {
        Ok(ConfirmOutcome::Confirmed | ConfirmOutcome::AlreadyConfirmed) => {
            state.page_with_message(StatusCode::OK, PublicPage::Confirmed, "")
        }
        Ok(ConfirmOutcome::NotFound) => {
            state.invalid_link(crate::mail::token::TokenError::UnknownKey)
        }
        Err(e) => {
            tracing::error!("confirming a sign-up: {e}");
            state.page_with_message(
                StatusCode::SERVICE_UNAVAILABLE,
                PublicPage::SignupRefused,
                "We could not confirm your sign-up just now; please try the link again later.",
            )
        }
    }
}
