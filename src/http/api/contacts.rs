//! `/api/v1/contacts/{contact}`: one person's rights requests, as `canvass contact ...` makes
//! them: access (the export), restriction and erasure. `{contact}` is an email address or the
//! person's public id.

use axum::Json;
use axum::extract::{Extension, Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, Failure, ReadRefusals, WriteRefusals};
use crate::domain::{Actor, ContactExport, Email, PublicId, StaffMember};
use crate::http::AppState;
use crate::store::{ErasureOutcome, RestrictionOutcome};

/// The address a path names: itself, or the address of the contact with that public id.
async fn address(state: &AppState, contact: &str) -> Result<Email, Failure> {
    if let Ok(id) = contact.parse::<PublicId>() {
        return match state.store.preferences(&id).await {
            Ok(Some(held)) => Ok(held.email),
            Ok(None) => Err(Failure::not_found("no contact has that public id")),
            Err(e) => Err(Failure::unavailable(&e)),
        };
    }
    Email::parse(contact).map_err(|e| Failure::invalid("contact", e))
}

fn actor(member: &StaffMember) -> Actor {
    Actor::Staff(member.name.to_string())
}

/// Everything held on the person (a subject access request; the portable copy of their data).
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{contact}",
    tag = "contacts",
    params(("contact" = String, Path, description = "An email address or a public id")),
    responses(
        (status = 200, description = "Everything held, as `canvass contact export` prints it"),
        (status = 404, description = "Nothing is held", body = ApiError),
        ReadRefusals,
    )
)]
pub async fn export(
    State(state): State<AppState>,
    Path(contact): Path<String>,
) -> Result<Json<ContactExport>, Failure> {
    let email = address(&state, &contact).await?;
    match state.store.export_contact(&email).await {
        Ok(Some(export)) => Ok(Json(export)),
        Ok(None) => Err(Failure::not_found("nothing is held on that contact")),
        Err(e) => Err(Failure::unavailable(&e)),
    }
}

/// What a restriction or erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    /// `restricted`, `unrestricted`, `already_restricted`, `already_unrestricted`, `erased`,
    /// `nothing_held` (the address is suppressed all the same).
    pub outcome: &'static str,
}

/// What `PUT .../restriction` sets.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Restriction {
    /// `true`: keep the person's data but never mail them; `false`: lift that.
    pub restricted: bool,
}

/// Restricts the person (keeps their data, never mails them) or lifts the restriction.
#[utoipa::path(
    put,
    path = "/api/v1/contacts/{contact}/restriction",
    tag = "contacts",
    params(("contact" = String, Path, description = "An email address or a public id")),
    request_body = Restriction,
    responses(
        (status = 200, description = "Done, or it was so already", body = Done),
        (status = 404, description = "Nothing is held", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn restriction(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    Path(contact): Path<String>,
    ApiJson(Restriction { restricted }): ApiJson<Restriction>,
) -> Result<Json<Done>, Failure> {
    let email = address(&state, &contact).await?;
    let outcome = state
        .store
        .set_restricted(&email, restricted, &actor(&member))
        .await
        .map_err(|e| Failure::unavailable(&e))?;
    let outcome = match (outcome, restricted) {
        (RestrictionOutcome::Changed, true) => "restricted",
        (RestrictionOutcome::Changed, false) => "unrestricted",
        (RestrictionOutcome::AlreadySo, true) => "already_restricted",
        (RestrictionOutcome::AlreadySo, false) => "already_unrestricted",
        (RestrictionOutcome::NotFound, _) => {
            return Err(Failure::not_found("nothing is held on that contact"));
        }
    };
    Ok(Json(Done { outcome }))
}

/// Erases the person: their data goes, and the address stays only as a hash on the
/// suppression list so that it is never imported or mailed again.
#[utoipa::path(
    delete,
    path = "/api/v1/contacts/{contact}",
    tag = "contacts",
    params(("contact" = String, Path, description = "An email address or a public id")),
    responses(
        (status = 200, description = "Erased, or nothing was held (the address is suppressed all the same)", body = Done),
        (status = 404, description = "No contact has that public id", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn erase(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    Path(contact): Path<String>,
) -> Result<Json<Done>, Failure> {
    let email = address(&state, &contact).await?;
    let outcome = state
        .store
        .erase_contact(&email, &actor(&member))
        .await
        .map_err(|e| Failure::unavailable(&e))?;
    Ok(Json(Done {
        outcome: match outcome {
            ErasureOutcome::Erased => "erased",
            ErasureOutcome::NothingHeld => "nothing_held",
        },
    }))
}
