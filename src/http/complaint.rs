//! `/complaint`: the public page that takes a complaint about how the party uses personal data,
//! without an account or JavaScript, and acknowledges it by email at once. Limited as sign-ups
//! are: per IP address in this process, per email address in the database.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::AppState;
use super::client_ip::ClientIp;
use super::pages::PublicPage;
use crate::app::{AppError, registers};

/// The form's fields, echoed back when it is refused.
#[derive(Debug, Default, Serialize)]
struct Form {
    email: String,
    summary: String,
    message_id: String,
    sender: String,
    message: Option<String>,
}

impl Form {
    fn read(body: &[u8]) -> Self {
        let mut form = Self::default();
        for (key, value) in url::form_urlencoded::parse(body) {
            match &*key {
                "email" => form.email = value.into_owned(),
                "summary" => form.summary = value.into_owned(),
                "message_id" => form.message_id = value.into_owned(),
                _ => {}
            }
        }
        form
    }
}

pub async fn page(State(state): State<AppState>) -> Response {
    let form = Form {
        sender: state.sender.to_string(),
        ..Form::default()
    };
    state.page_with(StatusCode::OK, PublicPage::Complaint, &form)
}

pub async fn complain(
    State(state): State<AppState>,
    client: ClientIp,
    body: axum::body::Bytes,
) -> Response {
    let mut form = Form::read(&body);
    form.sender = state.sender.to_string();
    if !state.allows_form_from(&client) {
        form.message = Some("Too many complaints from here; please try again in an hour.".into());
        return state.page_with(StatusCode::TOO_MANY_REQUESTS, PublicPage::Complaint, &form);
    }
    let message_id = Some(form.message_id.as_str());
    match registers::complain(&state.app, &form.email, &form.summary, message_id).await {
        // The same answer whether it was logged or the address had had its share this hour:
        // the acknowledgement email carries the reference.
        Ok(_) => state.page_with_message(
            StatusCode::OK,
            PublicPage::ComplaintReceived,
            "Thank you: your complaint is recorded. If the address you gave can receive email, \
             an acknowledgement with its reference is on its way there; we will look into it and \
             answer you.",
        ),
        Err(AppError::Invalid { field, message }) => {
            form.message = Some(match field {
                "email" => format!("Your email address: {message}"),
                "message_id" => format!("The Message-ID: {message}"),
                _ => format!("What went wrong: {message}"),
            });
            state.page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                PublicPage::Complaint,
                &form,
            )
        }
        Err(error) => {
            tracing::error!("a complaint from the public page: {error}");
            form.message = Some(
                "We could not take your complaint just now; please try again later, or write \
                 to us."
                    .into(),
            );
            state.page_with(
                StatusCode::SERVICE_UNAVAILABLE,
                PublicPage::Complaint,
                &form,
            )
        }
    }
}
