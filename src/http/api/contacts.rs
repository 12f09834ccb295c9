//! `/api/v1/contacts/{contact}`: one person's rights requests, as `canvass contact ...` makes
//! them: access (the export), restriction and erasure. `{contact}` is an email address or the
//! person's public id.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiPath, Failure, ReadRefusals, WriteRefusals};
use crate::domain::{
    Actor, ContactExport, Email, Name, NewContact, Postcode, PublicId, StaffMember, TopicSlug,
    chosen_topics,
};
use crate::http::AppState;
use crate::store::{ErasureOutcome, RestrictionOutcome, Withdrawal, WithdrawalOutcome};

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

/// A contact to create, or to update when the address is held.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactBody {
    pub email: String,
    pub name: Option<String>,
    /// A UK postcode; the constituency follows from it.
    pub postcode: Option<String>,
    /// `YYYY-MM-DD`; under 14s are mailed only with guardian consent.
    #[schema(value_type = Option<String>, format = Date)]
    pub date_of_birth: Option<NaiveDate>,
    pub guardian_consent: Option<bool>,
    /// Topics the person agreed to hear about by email (grants only; withdrawals go through
    /// the person's own links).
    #[serde(default)]
    pub topics: Vec<String>,
    /// When they agreed [default: now]; never in the future.
    pub consent_at: Option<DateTime<Utc>>,
    /// Where they agreed: a form's name, an event's sign-up sheet.
    pub source: String,
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
    let email = Email::parse(&body.email).map_err(|e| Failure::invalid("email", e))?;
    let name =
        Name::parse(body.name.as_deref().unwrap_or("")).map_err(|e| Failure::invalid("name", e))?;
    let postcode = body
        .postcode
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(Postcode::parse)
        .transpose()
        .map_err(|e| Failure::invalid("postcode", e))?;
    let now = Utc::now();
    if body
        .date_of_birth
        .is_some_and(|born| born > now.date_naive())
    {
        return Err(Failure::invalid(
            "date_of_birth",
            "a date of birth in the future",
        ));
    }
    let consent_at = body.consent_at.unwrap_or(now);
    if consent_at > now {
        return Err(Failure::invalid(
            "consent_at",
            "consent given in the future",
        ));
    }
    let source = body.source.trim();
    if source.is_empty() || source.chars().count() > 100 || source.chars().any(char::is_control) {
        return Err(Failure::invalid(
            "source",
            "a source is one line of 1 to 100 characters",
        ));
    }
    let known = state
        .store
        .list_topics()
        .await
        .map_err(|e| Failure::unavailable(&e))?;
    let topics = chosen_topics(&known, &body.topics).map_err(|e| Failure::invalid("topics", e))?;
    let contact = NewContact {
        email,
        name,
        postcode,
        date_of_birth: body.date_of_birth,
        guardian_consent: body.guardian_consent,
        topics,
        consent_at,
        consent_source: source.to_owned(),
    };
    let saved = state
        .store
        .save_contact(&contact, source, &actor(&member))
        .await
        .map_err(|e| Failure::unavailable(&e))?
        .ok_or_else(|| {
            Failure::new(
                StatusCode::CONFLICT,
                "erased",
                "the person asked to be erased; only their own confirmed sign-up brings them back",
            )
        })?;
    let export = state
        .store
        .export_contact(&contact.email)
        .await
        .map_err(|e| Failure::unavailable(&e))?
        .ok_or_else(|| Failure::not_found("the contact was not saved"))?;
    let status = match saved.inserted {
        0 => StatusCode::OK,
        _ => StatusCode::CREATED,
    };
    Ok((status, Json(export)))
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
    ApiPath(contact): ApiPath<String>,
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
    ApiPath(contact): ApiPath<String>,
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
    ApiPath(contact): ApiPath<String>,
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
pub struct Withdrawn {
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
        (status = 200, description = "Recorded", body = Withdrawn),
        (status = 404, description = "Nothing is held, and topics were named", body = ApiError),
        WriteRefusals,
    )
)]
pub async fn withdraw(
    State(state): State<AppState>,
    Extension(member): Extension<StaffMember>,
    ApiPath(contact): ApiPath<String>,
    ApiJson(body): ApiJson<WithdrawalBody>,
) -> Result<Json<Withdrawn>, Failure> {
    let email = match contact.parse::<PublicId>() {
        Ok(_) => address(&state, &contact).await?,
        Err(_) => Email::parse(&contact).map_err(|e| Failure::invalid("contact", e))?,
    };
    let topics = body
        .topics
        .iter()
        .map(|slug| TopicSlug::parse(slug))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::invalid("topics", e))?;
    let source = body.source.trim();
    if source.is_empty() || source.chars().count() > 100 {
        return Err(Failure::invalid(
            "source",
            "say how the person asked (phone, letter, email...), in 100 characters at most",
        ));
    }
    let withdrawal = Withdrawal {
        topics: &topics,
        source,
        note: body.note.as_deref(),
    };
    let outcome = state
        .store
        .record_withdrawal(&email, &withdrawal, &actor(&member))
        .await
        .map_err(|e| Failure::unavailable(&e))?;
    let outcome = match outcome {
        WithdrawalOutcome::Recorded(_) if topics.is_empty() => "unsubscribed",
        WithdrawalOutcome::Recorded(_) => "withdrawn",
        WithdrawalOutcome::NotHeld if topics.is_empty() => "suppressed",
        WithdrawalOutcome::NotHeld => return Err(Failure::not_found("nothing is held")),
        WithdrawalOutcome::UnknownTopic => {
            return Err(Failure::invalid("topics", "no such topic"));
        }
    };
    Ok(Json(Withdrawn { outcome }))
}
