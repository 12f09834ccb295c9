//! `/api/v1/topics`: what people can consent to hear about.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, Failure, ReadRefusals, WriteRefusals};
use crate::domain::{Actor, StaffMember, Topic, TopicSlug};
use crate::http::AppState;
use crate::store::StoreError;

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
    let topics = state
        .store
        .list_topics()
        .await
        .map_err(|e| Failure::unavailable(&e))?;
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
    let slug = TopicSlug::parse(&body.slug).map_err(|e| Failure::invalid("slug", e))?;
    let topic = Topic::new(slug, &body.name).map_err(|e| Failure::invalid("name", e))?;
    match state
        .store
        .add_topic(&topic, &Actor::Staff(member.name.to_string()))
        .await
    {
        Ok(()) => Ok((
            StatusCode::CREATED,
            Json(TopicBody {
                slug: topic.slug.to_string(),
                name: topic.name,
            }),
        )),
        Err(StoreError::TopicExists(slug)) => Err(Failure::new(
            StatusCode::CONFLICT,
            "exists",
            format!("there is a topic '{slug}' already"),
        )),
        Err(e) => Err(Failure::unavailable(&e)),
    }
}
