//! How the console says no. [`Refusal`]: what the person can mend is told beside the form they
//! sent, or on the page its button leads back to; what they cannot (nothing there, the
//! database down, a form their role does not open) is a [`Problem`] page of its own. Both take the status from
//! [`AppError::status`], and a field is named one way everywhere ([`field_label`]).

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::flash::Flash;
use super::{Layout, Section, Signed, Template, render};
use crate::app::AppError;
use crate::http::AppState;

/// Why a console request was not served, as a page of its own.
#[derive(Debug)]
pub(super) struct Problem {
    status: StatusCode,
    message: String,
}

impl Problem {
    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub(super) fn denied(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    pub(super) fn page(self, state: &AppState, signed: Option<&Signed>) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::TOO_MANY_REQUESTS => "Too many tries",
            StatusCode::SERVICE_UNAVAILABLE => "Try again",
            _ => "Not done",
        };
        #[derive(Serialize)]
        struct Data {
            message: String,
        }
        render(
            state,
            self.status,
            Template::Problem,
            Layout::new(title, Section::Elsewhere, signed),
            Data {
                message: self.message,
            },
        )
    }
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        let status = error.status();
        let message = match error {
            AppError::Unavailable(error) => {
                tracing::error!("console: {error}");
                "The database did not answer; nothing was changed. Try again in a moment.".into()
            }
            other => Refusal::words(other),
        };
        Self { status, message }
    }
}

/// A request the application refused.
#[derive(Debug)]
pub(super) enum Refusal {
    /// Told beside the form, or on the page its button leads back to, with this status: a
    /// field at fault, a clash with what is there, a rule of the person's role, a mail server
    /// that said no.
    OnForm { status: StatusCode, message: String },
    /// Nothing is there to mend: a page of its own.
    Page(Problem),
}

impl Refusal {
    /// The refusal in the console's words: a field at fault begins with its label.
    pub(super) fn words(error: AppError) -> String {
        match error {
            AppError::Invalid { field, message } => format!("{}: {message}", field_label(field)),
            other => other.to_string(),
        }
    }
}

impl Refusal {
    /// What a button did: its notice, or its refusal, told on `page` (a redirect there); a
    /// problem page where nothing is there to tell it on.
    pub(super) fn after_button(
        state: &AppState,
        signed: &Signed,
        page: &str,
        done: Result<String, AppError>,
    ) -> Response {
        match done.map_err(Self::of_button) {
            Ok(notice) => Flash::Notice(notice).redirect(state, signed, page),
            Err(Self::OnForm { message, .. }) => {
                Flash::Refusal(message).redirect(state, signed, page)
            }
            Err(Self::Page(problem)) => problem.page(state, Some(signed)),
        }
    }

    /// A form refused: what its sender can mend is told beside it; what their role forbids,
    /// or what is not there, is a page of its own.
    pub(super) fn of_form(error: AppError) -> Self {
        match error {
            AppError::Denied(_) | AppError::NotFound(_) | AppError::Unavailable(_) => {
                Self::Page(error.into())
            }
            AppError::Invalid { .. }
            | AppError::Conflict { .. }
            | AppError::Limited(_)
            | AppError::Unsent(_)
            | AppError::Import(_) => Self::on_form(error),
        }
    }

    /// A button refused: told on the page it leads back to, unless nothing is there.
    fn of_button(error: AppError) -> Self {
        match error {
            AppError::NotFound(_) | AppError::Unavailable(_) => Self::Page(error.into()),
            AppError::Invalid { .. }
            | AppError::Conflict { .. }
            | AppError::Denied(_)
            | AppError::Limited(_)
            | AppError::Unsent(_)
            | AppError::Import(_) => Self::on_form(error),
        }
    }

    fn on_form(error: AppError) -> Self {
        Self::OnForm {
            status: error.status(),
            message: Self::words(error),
        }
    }
}

/// What the console's forms call a field the application names: the campaign form's own
/// labels, or the name itself in words (`guardian_consent`: "Guardian consent").
pub(super) fn field_label(field: &str) -> Cow<'static, str> {
    Cow::Borrowed(match field {
        "html_template" | "markdown" | "text_template" => "Message",
        "constituencies" => "Constituencies",
        "postcodes" => "Postcode areas",
        "postcodes_within_constituencies" => "Who",
        "event_title" => "Event",
        "event_starts_at" => "Event date and time",
        "event_venue" => "Venue",
        "event_postcode" => "Venue postcode",
        "within_miles" => "Distance from the venue",
        "reply_to" => "Reply-To",
        "from" => "From",
        other => {
            let words = other.replace('_', " ");
            let mut letters = words.chars();
            return Cow::Owned(match letters.next() {
                Some(first) => first.to_uppercase().chain(letters).collect(),
                None => words,
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_named_in_words() {
        assert_eq!(field_label("event_postcode"), "Venue postcode");
        assert_eq!(field_label("guardian_consent"), "Guardian consent");
        assert_eq!(field_label("email"), "Email");
        assert_eq!(field_label("subject"), "Subject");
    }
}
