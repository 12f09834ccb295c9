//! `/api/v1/contacts/{contact}`: one person's rights requests, as `canvass contact ...` makes
//! them: access (the export), restriction and erasure. `{contact}` is an email address or the
//! person's public id.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiPath, Failure, ReadRefusals, WriteRefusals, actor};
use crate::app::contacts::ErasureOutcome;
use crate::app::contacts::{self, AccessPack, Withdrawn};
use crate::domain::{ContactDraft, ContactExport, StaffMember};
use crate::http::AppState;

/// A contact to create, or to update when the address is held.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactBody {
    pub email: String,
    pub name: Option<String>,
    /// A UK postcode; the constituency follows from it.
    pub postcode: Option<String>,
    /// `YYYY-MM-DD`. A child under 14 is refused unless `guardian_consent` is true and the
    /// guardian is named, with their relationship.
    #[schema(format = Date)]
    pub date_of_birth: Option<String>,
    pub guardian_consent: Option<bool>,
    /// Who gave the guardian's consent.
    pub guardian_name: Option<String>,
    /// How they are related to the child: mother, father, legal guardian...
    pub guardian_relationship: Option<String>,
    /// When the guardian agreed [default: `consent_at`].
    pub guardian_consent_at: Option<String>,
    /// How they agreed: a signed form, a phone call [default: `source`].
    pub guardian_method: Option<String>,
    /// Topics the person agreed to hear about by email (grants only; withdrawals go through
    /// the person's own links).
    #[serde(default)]
    pub topics: Vec<String>,
    /// When they agreed [default: now]: RFC 3339, or a date alone, read as midnight UK
    /// time; never in the future.
    pub consent_at: Option<String>,
    /// Where they agreed: a form's name, an event's sign-up sheet (one line, 200 characters
    /// at most).
    pub source: String,
}

impl ContactBody {
    fn draft(&self) -> ContactDraft<'_> {
        fn text(value: &Option<String>) -> &str {
            value.as_deref().unwrap_or("")
        }
        ContactDraft {
            email: &self.email,
            name: text(&self.name),
            postcode: text(&self.postcode),
            date_of_birth: text(&self.date_of_birth),
            guardian_consent: self.guardian_consent,
            guardian_name: text(&self.guardian_name),
            guardian_relationship: text(&self.guardian_relationship),
            guardian_consent_at: text(&self.guardian_consent_at),
            guardian_method: text(&self.guardian_method),
            topics: self.topics.iter().map(String::as_str).collect(),
            consent_at: text(&self.consent_at),
            source: &self.source,
        }
    }
}

/// Creates or updates a contact, granting the topics given, as an import row would.
#[utoipa::path(
    post,
    path = "/api/v1/contacts",
    tag = "contacts",
    request_body = ContactBody,
    responses(
        (status = 201, description = "Created; everything now held"),
        (status = 200, description = "Updated; everything now held"),
        (status = 409, description = "The address was erased: only the person's own sign-up brings it back", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn save(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiJson(body): ApiJson<ContactBody>,
) -> Result<(StatusCode, Json<ContactExport>), Failure> {
    let saved = contacts::save(&state.app, &actor(&member), &body.draft()).await?;
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(*saved.export)))
}

/// Everything held on the person (a subject access request; the portable copy of their data).
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{contact}",
    tag = "contacts",
    params(("contact" = String, Path, description = "An email address or a public id")),
    responses(
        (status = 200, description = "Everything held, as `canvass contact export` prints it: the contact, or only the sign-ups awaiting confirmation"),
        (status = 404, description = "Nothing is held", body = ApiError),
        ReadRefusals,
    )
)]
pub async fn export(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(contact): ApiPath<String>,
) -> Result<Json<AccessPack>, Failure> {
    Ok(Json(
        contacts::export(&state.app, &actor(&member), &contact).await?,
    ))
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
    ApiPath(contact): ApiPath<String>,
    ApiJson(Restriction { restricted }): ApiJson<Restriction>,
) -> Result<Json<Done>, Failure> {
    let changed = contacts::restrict(&state.app, &actor(&member), &contact, restricted).await?;
    let outcome = match (changed, restricted) {
        (true, true) => "restricted",
        (true, false) => "unrestricted",
        (false, true) => "already_restricted",
        (false, false) => "already_unrestricted",
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
    ApiPath(contact): ApiPath<String>,
) -> Result<Json<Done>, Failure> {
    let outcome = contacts::erase(&state.app, &actor(&member), &contact).await?;
    Ok(Json(Done {
        outcome: match outcome {
            ErasureOutcome::Erased => "erased",
            ErasureOutcome::NothingHeld => "nothing_held",
        },
    }))
}

/// A withdrawal the person made by phone, letter or email, recorded by staff.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WithdrawalBody {
    /// Topic slugs withdrawn from; none or empty: from everything, and the address suppressed
    /// as unsubscribed, as the one-click link does.
    #[serde(default)]
    pub topics: Vec<String>,
    /// How the person said it: `phone`, `letter`, `email`...
    pub source: String,
    /// Anything worth keeping with it, for the audit log.
    pub note: Option<String>,
}

/// What a withdrawal did.
#[derive(Debug, Serialize, ToSchema)]
pub struct WithdrawnBody {
    /// `unsubscribed` (from everything), `withdrawn` (from the topics named), or
    /// `suppressed` (nobody held: the address is suppressed so that no import adds it).
    pub outcome: &'static str,
}

/// Records a withdrawal the person made by phone, letter or email; a sending worker hears of
/// it within a second. Audited under the token's name.
#[utoipa::path(
    post,
    path = "/api/v1/contacts/{contact}/withdrawal",
    tag = "contacts",
    params(("contact" = String, Path, description = "An email address or a public id")),
    request_body = WithdrawalBody,
    responses(
        (status = 200, description = "Recorded", body = WithdrawnBody),
        (status = 404, description = "Nothing is held, and topics were named", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn withdraw(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(contact): ApiPath<String>,
    ApiJson(body): ApiJson<WithdrawalBody>,
) -> Result<Json<WithdrawnBody>, Failure> {
    let withdrawn = contacts::withdraw(
        &state.app,
        &actor(&member),
        &contact,
        &body.topics,
        &body.source,
        body.note.as_deref(),
    )
    .await?;
    Ok(Json(WithdrawnBody {
        outcome: match withdrawn {
            Withdrawn::Unsubscribed => "unsubscribed",
            Withdrawn::Topics(_) => "withdrawn",
            Withdrawn::Suppressed => "suppressed",
        },
    }))
}
