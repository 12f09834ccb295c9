//! `/api/v1/events/{kind}`: bounces and complaints reported by a mail provider or a script,
//! naming the address or the Message-ID canvass gave the message.

use axum::Json;
use axum::extract::{Extension, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiPath, Failure, WriteRefusals, actor};
use crate::app::feedback::FeedbackAbout;
use crate::app::feedback::{self, Recorded};
use crate::domain::{Email, StaffMember};
use crate::http::AppState;
use crate::mail::feedback::Report;

/// What happened.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The message could not be delivered.
    Bounce,
    /// The recipient marked it as spam.
    Complaint,
}

/// Who it was about: an address, or a Message-ID canvass gave a message (with, optionally, the
/// address the report names, which must be the one the message went to).
#[derive(Debug, Deserialize, ToSchema)]
pub struct EventBody {
    pub email: Option<String>,
    /// As canvass wrote it, with the angle brackets: `<...@domain>`.
    pub message_id: Option<String>,
    /// For a bounce, the RFC 3463 status (`5.1.1`); a 4.x.x (temporary) bounce suppresses
    /// nobody. [default: 5.0.0]
    pub status: Option<String>,
}

/// What was done.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedBody {
    /// `suppressed`, or `temporary` for a 4.x.x bounce (nobody suppressed).
    pub outcome: &'static str,
}

/// Records a bounce or complaint: the address is suppressed for good (a complaint always; a
/// bounce when its status is permanent), and the audit log says who reported it.
#[utoipa::path(
    post,
    path = "/api/v1/events/{kind}",
    tag = "events",
    params(("kind" = inline(Kind), Path, description = "bounce or complaint")),
    request_body = EventBody,
    responses(
        (status = 200, description = "Recorded", body = RecordedBody),
        (status = 404, description = "canvass sent no message with that Message-ID (to that address)", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn record(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(kind): ApiPath<Kind>,
    ApiJson(body): ApiJson<EventBody>,
) -> Result<Json<RecordedBody>, Failure> {
    let email = body
        .email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|e| Failure::invalid("email", e))?;
    let about = match (&email, body.message_id.as_deref()) {
        (Some(email), None) => FeedbackAbout::Address(email),
        (to, Some(id)) if id.starts_with('<') && id.ends_with('>') && id.len() > 2 => {
            FeedbackAbout::Message {
                id,
                to: to.as_ref(),
            }
        }
        (_, Some(_)) => {
            return Err(Failure::invalid(
                "message_id",
                "a Message-ID is written <...@domain>",
            ));
        }
        _ => {
            return Err(Failure::invalid(
                "email",
                "name the address (email) or the message (message_id), one of the two",
            ));
        }
    };
    let report = match kind {
        Kind::Complaint => Report::Complaint,
        Kind::Bounce => Report::Bounce {
            status: body
                .status
                .as_deref()
                .unwrap_or("5.0.0")
                .parse()
                .map_err(|e| Failure::invalid("status", e))?,
        },
    };
    let outcome = match feedback::record(&state.app, &actor(&member), &about, &report).await? {
        Recorded::Suppressed(_) => "suppressed",
        Recorded::Temporary => "temporary",
    };
    Ok(Json(RecordedBody { outcome }))
}
