//! The staff API, `/api/v1`: JSON in and out, every request carrying a staff bearer token
//! (`canvass staff token create`). A read-only token may read; writes are audited under the
//! token's name. Errors are JSON with a stable `code`, a `message`, and the `field` at fault
//! for validation errors. The OpenAPI document is generated from the handlers (utoipa) and
//! served at `/api/v1/openapi.json`.

mod campaigns;
mod contacts;
mod events;
mod postcodes;
mod topics;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::app::{self, Actor, AppError, Conflict};
use crate::domain::StaffMember;

#[derive(OpenApi)]
#[openapi(
    info(title = "canvass staff API", description = "Campaign staff's access to canvass."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Declares the bearer scheme every operation uses.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The API's routes behind the token check, and its OpenAPI document beside them.
pub fn router(state: AppState) -> Router<AppState> {
    let (api, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(topics::list, topics::create))
        .routes(routes!(postcodes::lookup))
        .routes(routes!(contacts::save))
        .routes(routes!(contacts::export, contacts::erase))
        .routes(routes!(contacts::restriction))
        .routes(routes!(contacts::withdraw))
        .routes(routes!(campaigns::list, campaigns::create))
        .routes(routes!(campaigns::status, campaigns::edit))
        .routes(routes!(campaigns::preview))
        .routes(routes!(campaigns::report))
        .routes(routes!(campaigns::test))
        .routes(routes!(campaigns::copy))
        .routes(routes!(campaigns::approve))
        .routes(routes!(campaigns::schedule, campaigns::unschedule))
        .routes(routes!(campaigns::act))
        .routes(routes!(events::record))
        .split_for_parts();
    let document = document.to_json().expect("the OpenAPI document serializes");
    api.route_layer(middleware::from_fn_with_state(state, require_staff))
        .route(
            "/api/v1/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    document.clone(),
                )
            }),
        )
}

/// What went wrong, as [`ApiError::code`] names it for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No token, or an unknown or revoked one.
    Unauthorized,
    /// A read-only token asked to change something.
    ReadOnly,
    /// Outside the caller's role.
    Forbidden,
    /// A request value does not parse; `field` names it.
    Invalid,
    /// The body is not JSON of the expected shape.
    InvalidJson,
    TooLarge,
    TooMany,
    NotFound,
    /// The mail server did not take a test message.
    Unsent,
    /// The database is unavailable.
    Unavailable,
    /// Not as things stand.
    Conflict(Conflict),
}

impl ErrorCode {
    /// Every code the API answers with.
    #[cfg(test)]
    fn all() -> impl Iterator<Item = Self> {
        [
            Self::Unauthorized,
            Self::ReadOnly,
            Self::Forbidden,
            Self::Invalid,
            Self::InvalidJson,
            Self::TooLarge,
            Self::TooMany,
            Self::NotFound,
            Self::Unsent,
            Self::Unavailable,
        ]
        .into_iter()
        .chain(Conflict::ALL.map(Self::Conflict))
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::ReadOnly => "read_only",
            Self::Forbidden => "forbidden",
            Self::Invalid => "invalid",
            Self::InvalidJson => "invalid_json",
            Self::TooLarge => "too_large",
            Self::TooMany => "too_many",
            Self::NotFound => "not_found",
            Self::Unsent => "unsent",
            Self::Unavailable => "unavailable",
            Self::Conflict(conflict) => conflict.code(),
        }
    }
}

/// An error as the API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// Stable, for programs: `unauthorized`, `read_only`, `forbidden` (outside the caller's
    /// role), `invalid`, `invalid_json`, `too_large`, `too_many`, `not_found`, `unsent` (the mail
    /// server did not take a test message), `unavailable`, and, as things stand, `refused` (not
    /// from this state), `erased`, `exists`, `unapproved`, `edited`, `no_imprint`.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

/// The refusals any read can answer, for the OpenAPI document.
#[derive(IntoResponses)]
#[allow(dead_code)] // documents responses; the values are built as `Failure`s
pub enum ReadRefusals {
    /// No token, or an unknown or revoked one.
    #[response(status = 401)]
    Unauthorized(ApiError),
    /// A request value does not parse; `field` names it.
    #[response(status = 422)]
    Invalid(ApiError),
    /// The database is unavailable.
    #[response(status = 503)]
    Unavailable(ApiError),
}

/// The refusals any write can answer, for the OpenAPI document.
#[derive(IntoResponses)]
#[allow(dead_code)] // documents responses; the values are built as `Failure`s
pub enum WriteRefusals {
    /// The body is not JSON of the expected shape (`invalid_json`).
    #[response(status = 400)]
    Malformed(ApiError),
    /// No token, or an unknown or revoked one.
    #[response(status = 401)]
    Unauthorized(ApiError),
    /// A read-only token.
    #[response(status = 403)]
    ReadOnly(ApiError),
    /// The body is over 4 MiB (`too_large`); a campaign's template may be 1 MiB.
    #[response(status = 413)]
    TooLarge(ApiError),
    /// The body is not sent as `application/json` (`invalid_json`).
    #[response(status = 415)]
    NotJson(ApiError),
    /// A request value does not parse; `field` names it.
    #[response(status = 422)]
    Invalid(ApiError),
    /// The database is unavailable.
    #[response(status = 503)]
    Unavailable(ApiError),
}

/// An error response: a status and its JSON body.
#[derive(Debug)]
pub struct Failure(StatusCode, ApiError);

impl Failure {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self(
            status,
            ApiError {
                code: code.code(),
                message: message.into(),
                field: None,
            },
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// A request value that does not parse: 422, naming the field.
    pub fn invalid(field: &'static str, message: impl ToString) -> Self {
        Self(
            StatusCode::UNPROCESSABLE_ENTITY,
            ApiError {
                code: ErrorCode::Invalid.code(),
                message: message.to_string(),
                field: Some(field),
            },
        )
    }

    /// The database failed: 503, without its details (they are logged).
    pub fn unavailable(error: &dyn std::fmt::Display) -> Self {
        tracing::error!("staff API: {error}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the database is unavailable; try again",
        )
    }
}

/// Every refusal of the application, as the API answers it.
impl From<AppError> for Failure {
    fn from(error: AppError) -> Self {
        let status = error.status();
        match error {
            AppError::Invalid { field, message } => Self::invalid(field, message),
            AppError::Import(error) => Self::invalid("file", error),
            AppError::NotFound(message) => Self::new(status, ErrorCode::NotFound, message),
            AppError::Conflict { code, message } => {
                Self::new(status, ErrorCode::Conflict(code), message)
            }
            AppError::Denied(message) => Self::new(status, ErrorCode::Forbidden, message),
            AppError::Limited(message) => Self::new(status, ErrorCode::TooMany, message),
            AppError::Unsent(message) => Self::new(
                status,
                ErrorCode::Unsent,
                format!("the mail server did not take the message: {message}"),
            ),
            AppError::Unavailable(error) => Self::unavailable(&error),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(self.1)).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"canvass\""),
            );
        }
        response
    }
}

/// A JSON request body, whose rejection is answered in the API's own error form.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Failure::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::TooLarge,
                    format!("the body is over {} bytes", super::API_BODY_LIMIT),
                ))
            }
            Err(rejection) => Err(Failure::new(
                rejection.status(),
                ErrorCode::InvalidJson,
                rejection.body_text(),
            )),
        }
    }
}

/// Path parameters, whose rejection (`/campaigns/abc`) is answered in the API's error form:
/// such a path names nothing, so 404.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(Failure::not_found(rejection.body_text())),
        }
    }
}

/// Who acts through a token: the member of staff it was made for.
fn actor(member: &StaffMember) -> Actor {
    Actor::Staff(member.clone())
}

/// Lets a request through only with a live staff token, and a write only with a read-write
/// one; the handler finds the member of staff in the request's extensions.
async fn require_staff(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, Failure> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        // RFC 9110 §11.1: the scheme's name is case-insensitive.
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            Failure::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "send a staff token: 'Authorization: Bearer TOKEN'",
            )
        })?;
    let member = app::staff::token_holder(&state.app, presented)
        .await?
        .ok_or_else(|| {
            Failure::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "the token is unknown or revoked",
            )
        })?;
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !member.role.writes() && !reads {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::ReadOnly,
            format!("the token of '{}' may read, not change", member.name),
        ));
    }
    request.extensions_mut().insert(member);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// The README lists the codes programs may meet: exactly those the API answers with.
    #[test]
    fn the_readme_lists_every_error_code_and_no_other() {
        let readme = include_str!("../../../README.md");
        let (_, list) = readme
            .split_once("with a stable `code` (")
            .expect("the README lists the API's error codes");
        let (list, _) = list.split_once(')').expect("the list ends");
        let mut listed: Vec<&str> = list
            .split(',')
            .map(|code| code.trim().trim_matches('`'))
            .collect();
        listed.sort_unstable();
        let mut codes: Vec<&str> = ErrorCode::all().map(ErrorCode::code).collect();
        codes.sort_unstable();
        assert_eq!(listed, codes);
    }
}
