//! `/hooks/{provider}`: the mail providers' webhooks. Each handler hands the raw body (and the
//! headers its provider signs with) to the use-case, which verifies and acts
//! ([`crate::app::hooks`]). Answers: 200 with what was done (an event already heard, or about
//! another sender's mail, is a success: the provider must not retry it), 401 for anything not
//! verified, 400 for a verified body canvass cannot read, 404 for a webhook not set up, 503 when
//! it cannot be acted on now (the provider tries again).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::AppState;
use crate::app::AppError;
use crate::app::hooks::{self, Refused, Summary};
use crate::hooks::{HookError, sendgrid};

/// The largest SNS message: 256 KiB of notification, escaped in its envelope.
const SNS_BODY_LIMIT: usize = 640 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/hooks/ses",
            post(ses).layer(axum::extract::DefaultBodyLimit::max(SNS_BODY_LIMIT)),
        )
        .route("/hooks/mailgun", post(mailgun))
        .route("/hooks/postmark", post(postmark))
        .route("/hooks/sendgrid", post(sendgrid))
}

async fn ses(State(state): State<AppState>, body: Bytes) -> Response {
    answer("ses", hooks::ses(&state.app, &body).await)
}

async fn mailgun(State(state): State<AppState>, body: Bytes) -> Response {
    answer("mailgun", hooks::mailgun(&state.app, &body).await)
}

async fn postmark(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    answer(
        "postmark",
        hooks::postmark(&state.app, authorization, &body).await,
    )
}

async fn sendgrid(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    answer(
        "sendgrid",
        hooks::sendgrid(
            &state.app,
            header(sendgrid::SIGNATURE_HEADER),
            header(sendgrid::TIMESTAMP_HEADER),
            &body,
        )
        .await,
    )
}

/// The answer, and a line in the log for what was refused (never the body: it names people).
fn answer(provider: &str, heard: Result<Summary, Refused>) -> Response {
    let refused = |status: StatusCode, why: String| {
        (status, Json(serde_json::json!({ "error": why }))).into_response()
    };
    match heard {
        Ok(summary) => {
            tracing::info!(
                provider,
                suppressed = summary.suppressed,
                recorded = summary.recorded,
                not_ours = summary.not_ours,
                repeated = summary.repeated,
                "webhook heard"
            );
            Json(summary).into_response()
        }
        Err(Refused::Off) => refused(
            StatusCode::NOT_FOUND,
            "this webhook is not set up here".into(),
        ),
        Err(Refused::Hook(error)) => {
            tracing::warn!(provider, "webhook refused: {error}");
            let status = match error {
                HookError::Unverified(_) => StatusCode::UNAUTHORIZED,
                HookError::Malformed(_) => StatusCode::BAD_REQUEST,
                HookError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            // The reason is in the log; the caller learns only that it was refused (which
            // topics or keys are set up is not for strangers to probe).
            let said = match error {
                HookError::Unverified(_) => "not verified".to_owned(),
                other => other.to_string(),
            };
            refused(status, said)
        }
        Err(Refused::App(error)) => {
            tracing::error!(provider, "webhook not acted on: {error}");
            let status = match error {
                AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            refused(status, "it could not be recorded just now".into())
        }
    }
}
