//! `/api/v1/campaigns`: campaign and event mailings, through the same use-cases as
//! `canvass campaign ...`.

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson, ApiPath, Failure, ReadRefusals, WriteRefusals, actor};
use crate::app::campaigns;
use crate::app::campaigns::{Action, ActionOutcome};
use crate::domain::{
    Approval, CampaignChanges, CampaignDraft, CampaignReport, CampaignState, DeliveryCounts,
    StaffMember,
};
use crate::http::AppState;

/// A campaign and how its deliveries stand.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignBody {
    pub id: i64,
    pub name: String,
    pub topic: String,
    pub subject: String,
    /// `draft`, `queued`, `paused`, `cancelled` or `done`.
    #[schema(value_type = String)]
    pub state: CampaignState,
    /// Why the worker paused it by itself, while it stays paused.
    pub paused_reason: Option<String>,
    /// When a draft is to be queued by itself.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Its version (every edit makes a new one), and who approved this version.
    pub approval: Approval,
    #[schema(value_type = Object)]
    pub deliveries: DeliveryCounts,
}

/// Every campaign, newest first (as `campaign list`).
#[utoipa::path(
    operation_id = "list_campaigns",
    get,
    path = "/api/v1/campaigns",
    tag = "campaigns",
    responses(
        (status = 200, description = "The campaigns: id, name, topic, subject, state, created_at, queued_at, scheduled_at"),
        ReadRefusals,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
) -> Result<Json<Vec<crate::domain::CampaignSummary>>, Failure> {
    Ok(Json(campaigns::list(&state.app, &actor(&member)).await?))
}

/// Creates a draft campaign. Its templates are compiled and rendered with sample values here:
/// a syntax error or an unknown variable is refused now, not found mid-send.
#[utoipa::path(
    operation_id = "create_campaign",
    post,
    path = "/api/v1/campaigns",
    tag = "campaigns",
    request_body = CampaignDraft,
    responses(
        (status = 201, description = "Created, as a draft", body = CampaignBody),
        WriteRefusals,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiJson(draft): ApiJson<CampaignDraft>,
) -> Result<(StatusCode, Json<CampaignBody>), Failure> {
    let id = campaigns::create(&state.app, &actor(&member), draft).await?;
    Ok((
        StatusCode::CREATED,
        Json(status_of(&state, &member, id).await?),
    ))
}

/// Changes a draft: each field given replaces what it has (as `campaign edit`).
#[utoipa::path(
    operation_id = "edit_campaign",
    patch,
    path = "/api/v1/campaigns/{id}",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign")),
    request_body = CampaignChanges,
    responses(
        (status = 200, description = "Changed", body = CampaignBody),
        (status = 404, description = "No such campaign", body = ApiError),
        (status = 409, description = "Not a draft: copy it instead", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn edit(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(changes): ApiJson<CampaignChanges>,
) -> Result<Json<CampaignBody>, Failure> {
    campaigns::edit(&state.app, &actor(&member), id, changes).await?;
    Ok(Json(status_of(&state, &member, id).await?))
}

/// The version of a campaign its approver checked.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct ApprovalBody {
    /// `approval.version` as the approver read it: an edit since refuses the approval.
    pub version: i64,
}

/// Approves a draft someone else made, as it is at `version`: staff may then queue or
/// schedule it. It is cut to the approver's constituencies, which must hold everyone it would
/// reach.
#[utoipa::path(
    post,
    path = "/api/v1/campaigns/{id}/approval",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign")),
    request_body = ApprovalBody,
    responses(
        (status = 200, description = "Approved", body = CampaignBody),
        (status = 403, description = "The approver wrote it, or does not cover its audience (`forbidden`)", body = ApiError),
        (status = 404, description = "No such campaign", body = ApiError),
        (status = 409, description = "Edited since that version (`edited`), or not a draft", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn approve(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ApprovalBody>,
) -> Result<Json<CampaignBody>, Failure> {
    campaigns::approve(&state.app, &actor(&member), id, body.version).await?;
    Ok(Json(status_of(&state, &member, id).await?))
}

/// Whom a copy is for.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct CopyQuery {
    /// Only the people who have not had it (as `campaign copy --only-not-sent`).
    #[serde(default)]
    only_not_sent: bool,
}

/// Makes a new draft from any campaign, its name ending "(copy)" (as `campaign copy`).
#[utoipa::path(
    operation_id = "copy_campaign",
    post,
    path = "/api/v1/campaigns/{id}/copy",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign to copy"), CopyQuery),
    responses(
        (status = 201, description = "The new draft", body = CampaignBody),
        (status = 404, description = "No such campaign", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn copy(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(id): ApiPath<i64>,
    Query(query): Query<CopyQuery>,
) -> Result<(StatusCode, Json<CampaignBody>), Failure> {
    let copy_for = if query.only_not_sent {
        campaigns::CopyFor::NotYetSent
    } else {
        campaigns::CopyFor::Everyone
    };
    let copy = campaigns::copy(&state.app, &actor(&member), id, copy_for).await?;
    Ok((
        StatusCode::CREATED,
        Json(status_of(&state, &member, copy).await?),
    ))
}

async fn status_of(
    state: &AppState,
    member: &StaffMember,
    id: i64,
) -> Result<CampaignBody, Failure> {
    let status = campaigns::status(&state.app, &actor(member), id).await?;
    let campaign = status.campaign;
    Ok(CampaignBody {
        id,
        name: campaign.spec.name,
        topic: campaign.spec.topic.to_string(),
        subject: campaign.spec.subject,
        state: campaign.state,
        paused_reason: campaign.paused_reason,
        scheduled_at: campaign.scheduled_at,
        approval: campaign.approval,
        deliveries: status.deliveries,
    })
}

/// A campaign and its deliveries by state (as `campaign status`).
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign")),
    responses(
        (status = 200, description = "The campaign", body = CampaignBody),
        (status = 404, description = "No such campaign", body = ApiError),
        ReadRefusals,
    )
)]
pub async fn status(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CampaignBody>, Failure> {
    Ok(Json(status_of(&state, &member, id).await?))
}

/// Who would receive a campaign today, and its message rendered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    pub audience_size: u64,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Whose values a preview shows.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PreviewParams {
    /// A contact's address [default: the first person the campaign would reach, or sample
    /// values].
    #[serde(rename = "as")]
    #[param(rename = "as")]
    pub as_contact: Option<String>,
}

/// The audience size today and the message rendered for one person, its links leading to a
/// page that says it was a test (as `campaign preview`).
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}/preview",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign"), PreviewParams),
    responses(
        (status = 200, description = "The preview", body = Preview),
        (status = 404, description = "No such campaign", body = ApiError),
        ReadRefusals,
    )
)]
pub async fn preview(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(id): ApiPath<i64>,
    Query(params): Query<PreviewParams>,
) -> Result<Json<Preview>, Failure> {
    let actor = actor(&member);
    let preview = campaigns::preview(&state.app, &actor, id, params.as_contact.as_deref()).await?;
    Ok(Json(Preview {
        audience_size: preview.audience_size,
        subject: preview.subject,
        text: preview.bodies.text,
        html: preview.bodies.html,
    }))
}

/// What a campaign did: its deliveries by state, and the bounces, complaints and unsubscribes
/// its messages brought, in total and by constituency (as `campaign report --json`). canvass
/// counts no opens and no clicks.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}/report",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign")),
    responses(
        (status = 200, description = "The report", body = CampaignReport),
        (status = 404, description = "No such campaign", body = ApiError),
        ReadRefusals,
    )
)]
pub async fn report(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CampaignReport>, Failure> {
    Ok(Json(
        campaigns::report(&state.app, &actor(&member), id).await?,
    ))
}

/// A test send.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TestSend {
    /// Who gets it: 1 to 5 addresses.
    pub to: Vec<String>,
    /// Render it with this contact's values [default: sample values].
    #[serde(rename = "as")]
    #[schema(rename = "as")]
    pub as_contact: Option<String>,
}

/// What a test send did.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestSent {
    pub sent: usize,
}

/// Sends the campaign's message as a test (as `campaign test`): "[Test] " before its subject,
/// its links leading to a page that says so. It never enters the ledger; a campaign sends at
/// most 5 test messages a minute (429 `too_many` beyond).
#[utoipa::path(
    operation_id = "test_campaign",
    post,
    path = "/api/v1/campaigns/{id}/test",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign")),
    request_body = TestSend,
    responses(
        (status = 200, description = "Sent", body = TestSent),
        (status = 404, description = "No such campaign", body = ApiError),
        (status = 429, description = "Over 5 test messages a minute for the campaign", body = ApiError),
        (status = 502, description = "The mail server did not take a message", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn test(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<TestSend>,
) -> Result<Json<TestSent>, Failure> {
    let sent = campaigns::test(
        &state.app,
        &actor(&member),
        id,
        &body.to,
        body.as_contact.as_deref(),
    )
    .await?;
    Ok(Json(TestSent { sent }))
}

/// When a draft is to be queued.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    /// RFC 3339, or `YYYY-MM-DD HH:MM` read as UK time; in the future.
    pub at: String,
}

/// Schedules a draft to be queued by itself, taking its audience then (as `campaign schedule`).
#[utoipa::path(
    operation_id = "schedule_campaign",
    put,
    path = "/api/v1/campaigns/{id}/schedule",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign")),
    request_body = Schedule,
    responses(
        (status = 200, description = "Scheduled", body = CampaignBody),
        (status = 404, description = "No such campaign", body = ApiError),
        (status = 409, description = "Not a draft", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn schedule(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(Schedule { at }): ApiJson<Schedule>,
) -> Result<Json<CampaignBody>, Failure> {
    campaigns::schedule(&state.app, &actor(&member), id, &at).await?;
    Ok(Json(status_of(&state, &member, id).await?))
}

/// Takes a draft's schedule off (as `campaign unschedule`).
#[utoipa::path(
    operation_id = "unschedule_campaign",
    delete,
    path = "/api/v1/campaigns/{id}/schedule",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign")),
    responses(
        (status = 200, description = "Not scheduled", body = CampaignBody),
        (status = 404, description = "No such campaign", body = ApiError),
        (status = 409, description = "Not a draft", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn unschedule(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CampaignBody>, Failure> {
    campaigns::unschedule(&state.app, &actor(&member), id).await?;
    Ok(Json(status_of(&state, &member, id).await?))
}

/// What an action did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Acted {
    /// The campaign's state now.
    #[schema(value_type = String)]
    pub state: CampaignState,
    /// For `queue` and `retry`: the deliveries queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
}

/// Queues, pauses, resumes, cancels or retries a campaign (as `campaign queue|pause|resume|
/// cancel|retry`).
#[utoipa::path(
    post,
    path = "/api/v1/campaigns/{id}/{action}",
    tag = "campaigns",
    params(
        ("id" = i64, Path, description = "The campaign"),
        ("action" = inline(Action), Path, description = "queue, pause, resume, cancel or retry"),
    ),
    responses(
        (status = 200, description = "Done", body = Acted),
        (status = 404, description = "No such campaign", body = ApiError),
        (status = 409, description = "Not allowed from the campaign's state", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn act(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath((id, action)): ApiPath<(i64, Action)>,
) -> Result<Json<Acted>, Failure> {
    let (app, actor) = (&state.app, &actor(&member));
    let acted = match campaigns::act(app, actor, id, action).await? {
        ActionOutcome::Queued(queued) => Acted {
            state: CampaignState::Queued,
            queued: Some(queued),
        },
        ActionOutcome::Retried(queued) => Acted {
            state: campaigns::status(app, actor, id).await?.campaign.state,
            queued: Some(queued),
        },
        ActionOutcome::Submitted(_) => Acted {
            state: CampaignState::Draft,
            queued: None,
        },
        ActionOutcome::Changed(state) => Acted {
            state,
            queued: None,
        },
    };
    Ok(Json(acted))
}
