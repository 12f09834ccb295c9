//! `/api/v1/campaigns`: campaign and event mailings, as `canvass campaign ...` makes them, with
//! the same validation.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiPath, Failure, ReadRefusals, WriteRefusals};
use crate::domain::{Actor, CampaignDraft, CampaignState, DeliveryCounts, StaffMember};
use crate::http::AppState;
use crate::render::{Footer, MessageVars, TemplateError, Templates};
use crate::store::{Campaign, QueueOutcome, StateChange, StateChangeOutcome, StoreError};

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
    #[schema(value_type = Object)]
    pub deliveries: DeliveryCounts,
}

fn template_failure(error: TemplateError) -> Failure {
    let TemplateError::Invalid { part, .. } = &error;
    let field = match *part {
        "text" => "text_template",
        _ => "html_template",
    };
    Failure::invalid(field, error)
}

/// Every campaign, newest first (as `campaign list`).
#[utoipa::path(
    operation_id = "list_campaigns",
    get,
    path = "/api/v1/campaigns",
    tag = "campaigns",
    responses(
        (status = 200, description = "The campaigns: id, name, topic, subject, state, created_at, queued_at"),
        ReadRefusals,
    )
)]
pub async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<crate::domain::CampaignSummary>>, Failure> {
    let campaigns = state
        .store
        .list_campaigns()
        .await
        .map_err(|e| Failure::unavailable(&e))?;
    Ok(Json(campaigns))
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
    ApiJson(mut draft): ApiJson<CampaignDraft>,
) -> Result<(StatusCode, Json<CampaignBody>), Failure> {
    draft.constituencies = state
        .store
        .constituency_codes(&draft.constituencies)
        .await
        .map_err(|e| Failure::unavailable(&e))?
        .map_err(|e| Failure::invalid("constituencies", e))?;
    let campaign = draft
        .parse(Utc::now())
        .map_err(|e| Failure::invalid(e.field, e.message))?;
    Templates::compile_in_background(&campaign)
        .await
        .map_err(template_failure)?;
    let actor = Actor::Staff(member.name.to_string());
    let id = match state.store.create_campaign(&campaign, &actor).await {
        Ok(id) => id,
        Err(StoreError::UnknownTopic(topic)) => {
            return Err(Failure::invalid(
                "topic",
                format!("there is no topic '{topic}'"),
            ));
        }
        Err(e) => return Err(Failure::unavailable(&e)),
    };
    Ok((StatusCode::CREATED, Json(status_of(&state, id).await?)))
}

async fn campaign(state: &AppState, id: i64) -> Result<Campaign, Failure> {
    state
        .store
        .campaign(id)
        .await
        .map_err(|e| Failure::unavailable(&e))?
        .ok_or_else(|| Failure::not_found(format!("no campaign {id}")))
}

async fn status_of(state: &AppState, id: i64) -> Result<CampaignBody, Failure> {
    let campaign = campaign(state, id).await?;
    let deliveries = state
        .store
        .delivery_counts(id)
        .await
        .map_err(|e| Failure::unavailable(&e))?;
    Ok(CampaignBody {
        id,
        name: campaign.spec.name,
        topic: campaign.spec.topic.to_string(),
        subject: campaign.spec.subject,
        state: campaign.state,
        paused_reason: campaign.paused_reason,
        deliveries,
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
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CampaignBody>, Failure> {
    Ok(Json(status_of(&state, id).await?))
}

/// Who would receive a campaign today, and its message rendered with sample values.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    pub audience_size: u64,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The audience size today and a sample rendering (as `campaign preview`).
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}/preview",
    tag = "campaigns",
    params(("id" = i64, Path, description = "The campaign")),
    responses(
        (status = 200, description = "The preview", body = Preview),
        (status = 404, description = "No such campaign", body = ApiError),
        ReadRefusals,
    )
)]
pub async fn preview(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Preview>, Failure> {
    let campaign = campaign(&state, id).await?;
    let audience_size = state
        .store
        .audience_size(id, Utc::now().date_naive())
        .await
        .map_err(|e| Failure::unavailable(&e))?;
    let bodies = Templates::compile_in_background(&campaign.spec)
        .await
        .and_then(|templates| {
            let footer = Footer {
                publisher: &state.publisher,
                topic: &campaign.topic_name,
            };
            templates.render(&MessageVars::sample(campaign.spec.event.as_ref()), &footer)
        })
        .map_err(template_failure)?;
    Ok(Json(Preview {
        audience_size,
        subject: campaign.spec.subject,
        text: bodies.text,
        html: bodies.html,
    }))
}

/// What a campaign can be told to do.
#[derive(Debug, Clone, Copy, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Snapshot the audience into deliveries (a draft only).
    Queue,
    /// Stop sending until resumed.
    Pause,
    Resume,
    /// Stop for good: deliveries not yet sent are skipped.
    Cancel,
}

/// What an action did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Acted {
    /// The campaign's state now.
    #[schema(value_type = String)]
    pub state: CampaignState,
    /// For `queue`: the deliveries queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
}

/// Queues, pauses, resumes or cancels a campaign (as `campaign queue|pause|resume|cancel`).
#[utoipa::path(
    post,
    path = "/api/v1/campaigns/{id}/{action}",
    tag = "campaigns",
    params(
        ("id" = i64, Path, description = "The campaign"),
        ("action" = inline(Action), Path, description = "queue, pause, resume or cancel"),
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
    let actor = Actor::Staff(member.name.to_string());
    let refused = |from: CampaignState| {
        Failure::new(
            StatusCode::CONFLICT,
            "refused",
            format!("campaign {id} is {from}; that cannot change it"),
        )
    };
    let no_campaign = || Failure::not_found(format!("no campaign {id}"));
    let change = match action {
        Action::Queue => {
            return match state.store.queue_campaign(id, &actor).await {
                Ok(QueueOutcome::Queued(n)) => Ok(Json(Acted {
                    state: CampaignState::Queued,
                    queued: Some(n),
                })),
                Ok(QueueOutcome::NotDraft(from)) => Err(refused(from)),
                Ok(QueueOutcome::NotFound) => Err(no_campaign()),
                Err(e) => Err(Failure::unavailable(&e)),
            };
        }
        Action::Pause => StateChange::Pause,
        Action::Resume => StateChange::Resume,
        Action::Cancel => StateChange::Cancel,
    };
    match state.store.change_campaign_state(id, change, &actor).await {
        Ok(StateChangeOutcome::Changed(now)) => Ok(Json(Acted {
            state: now,
            queued: None,
        })),
        Ok(StateChangeOutcome::Refused(from)) => Err(refused(from)),
        Ok(StateChangeOutcome::NotFound) => Err(no_campaign()),
        Err(e) => Err(Failure::unavailable(&e)),
    }
}
