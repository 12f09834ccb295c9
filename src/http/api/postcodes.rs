//! `/api/v1/postcodes/{postcode}`: which constituency a postcode is in.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiPath, Failure, ReadRefusals};
use crate::app::directory;
use crate::http::AppState;

/// A postcode and its Westminster constituency.
#[derive(Debug, Serialize, ToSchema)]
pub struct PostcodeBody {
    /// Normalised: upper case, one space (`SG13 8EQ`).
    pub postcode: String,
    pub constituency_code: String,
    pub constituency_name: Option<String>,
}

/// Looks a postcode up in the directory.
#[utoipa::path(
    get,
    path = "/api/v1/postcodes/{postcode}",
    tag = "postcodes",
    params(("postcode" = String, Path, description = "A UK postcode, any spacing or case")),
    responses(
        (status = 200, description = "Found", body = PostcodeBody),
        (status = 404, description = "Not in the directory", body = ApiError),
        ReadRefusals,
    )
)]
pub async fn lookup(
    State(state): State<AppState>,
    ApiPath(postcode): ApiPath<String>,
) -> Result<Json<PostcodeBody>, Failure> {
    let (postcode, found) = directory::lookup(&state.app, &postcode).await?;
    Ok(Json(PostcodeBody {
        postcode: postcode.to_string(),
        constituency_code: found.constituency.to_string(),
        constituency_name: found.constituency_name,
    }))
}
