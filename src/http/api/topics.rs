//! `/api/v1/topics`: what people can consent to hear about.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, Failure, ReadRefusals, WriteRefusals, actor};
use crate::app::topics;
use crate::domain::StaffMember;
use crate::http::AppState;

/// A topic.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopicBody {
    /// Lower-case letters, digits and single hyphens, e.g. `door-knocking`.
    pub slug: String,
    /// What people see, e.g. "Door knocking".
    pub name: String,
}

/// The topics, oldest first.
#[utoipa::path(
    operation_id = "list_topics",
    get,
    path = "/api/v1/topics",
    tag = "topics",
    responses(
        (status = 200, description = "The topics", body = [TopicBody]),
        ReadRefusals,
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<TopicBody>>, Failure> {
    let topics = topics::list(&state.app).await?;
    Ok(Json(
        topics
            .into_iter()
            .map(|topic| TopicBody {
                slug: topic.slug.to_string(),
                name: topic.name,
            })
            .collect(),
    ))
}

/// Adds a topic.
#[utoipa::path(
    operation_id = "create_topic",
    post,
    path = "/api/v1/topics",
    tag = "topics",
    request_body = TopicBody,
    responses(
        (status = 201, description = "Added", body = TopicBody),
        (status = 409, description = "The slug is taken", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiJson(body): ApiJson<TopicBody>,
) -> Result<(StatusCode, Json<TopicBody>), Failure> {
    let topic = topics::add(&state.app, &actor(&member), &body.slug, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(TopicBody {
            slug: topic.slug.to_string(),
            name: topic.name,
        }),
    ))
}
