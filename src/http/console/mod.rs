//! The staff console, `/admin`: server-rendered pages over the application, for campaign staff
//! and volunteers in a browser. Every page works without JavaScript.
//!
//! - [`session`]: the session cookie, who is signed in, and the checks every form passes
//!   (same origin, the session's form token).
//! - [`sign_in`]: signing in and out, and setting a password through a one-time link.
//! - [`home`], [`contacts`], [`campaigns`]: the pages, each a thin adapter over `crate::app`.
//!
//! What a page shows comes from the application within the signed-in person's role and
//! constituencies; no template decides who sees what.

mod campaigns;
mod contacts;
mod home;
mod session;
mod sign_in;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde::Serialize;

use super::AppState;
use crate::app::AppError;
pub use session::Signed;

/// The console's pages by name, each beside its source.
pub const PAGES: &[(&str, &str)] = &[
    (
        "layout",
        include_str!("../../../templates/console/layout.hbs"),
    ),
    (
        "login",
        include_str!("../../../templates/console/login.hbs"),
    ),
    (
        "password",
        include_str!("../../../templates/console/password.hbs"),
    ),
    ("home", include_str!("../../../templates/console/home.hbs")),
    (
        "contacts",
        include_str!("../../../templates/console/contacts.hbs"),
    ),
    (
        "contact",
        include_str!("../../../templates/console/contact.hbs"),
    ),
    (
        "campaigns",
        include_str!("../../../templates/console/campaigns.hbs"),
    ),
    (
        "campaign",
        include_str!("../../../templates/console/campaign.hbs"),
    ),
    (
        "campaign_form",
        include_str!("../../../templates/console/campaign_form.hbs"),
    ),
    (
        "problem",
        include_str!("../../../templates/console/problem.hbs"),
    ),
];

/// The console's stylesheet, served from `/admin/static/`.
const STYLESHEET: &str = include_str!("../../../templates/console/console.css");

/// Pages hold personal data and act at once: nothing from elsewhere, no framing, no inline
/// script or style.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/admin", get(home::page))
        .route("/admin/", get(home::page))
        .route("/admin/contacts", get(contacts::list))
        .route("/admin/contacts/{id}", get(contacts::details))
        .route(
            "/admin/campaigns",
            get(campaigns::list).post(campaigns::create),
        )
        .route("/admin/campaigns/new", get(campaigns::new))
        .route(
            "/admin/campaigns/{id}",
            get(campaigns::show).post(campaigns::update),
        )
        .route("/admin/campaigns/{id}/edit", get(campaigns::edit))
        .route("/admin/campaigns/{id}/message", get(campaigns::message))
        .route("/admin/campaigns/{id}/{action}", post(campaigns::act))
        .route("/admin/logout", post(sign_in::sign_out))
        .route("/admin/{*rest}", get(not_found).post(not_found))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::require_session,
        ));
    let open = Router::new()
        .route("/admin/login", get(sign_in::page).post(sign_in::sign_in))
        .route(
            "/admin/password/{token}",
            get(sign_in::password_page).post(sign_in::set_password),
        )
        .route("/admin/static/console.css", get(stylesheet));
    Router::new()
        .merge(signed_in)
        .merge(open)
        .layer(middleware::from_fn(session::same_origin_only))
        .layer(middleware::map_response(with_policy))
}

/// The console's policy, unless a response brings its own (a campaign's message, framed).
async fn with_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

async fn not_found(
    signed: Signed,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Response {
    Problem::NotFound("There is no such page.".into()).page(&state, Some(&signed))
}

/// What every console page's layout shows: who is signed in, and the form token for the
/// sign-out button.
#[derive(Serialize)]
struct Layout<'a> {
    title: &'a str,
    /// The navigation entry to mark as current.
    section: &'a str,
    user: Option<&'a str>,
    role: Option<&'a str>,
    form_token: Option<&'a str>,
    admin: bool,
}

impl<'a> Layout<'a> {
    fn new(title: &'a str, section: &'a str, signed: Option<&'a Signed>) -> Self {
        Self {
            title,
            section,
            user: signed.map(|s| s.session.display_name.as_str()),
            role: signed.map(|s| s.session.member.role.as_str()),
            form_token: signed.map(|s| s.session.form_token.as_str()),
            admin: signed.is_some_and(|s| s.session.member.role.manages_staff()),
        }
    }
}

/// A page: its layout and its own values side by side.
#[derive(Serialize)]
struct Page<'a, T: Serialize> {
    layout: Layout<'a>,
    #[serde(flatten)]
    data: T,
}

fn render<T: Serialize>(
    state: &AppState,
    status: StatusCode,
    name: &str,
    layout: Layout<'_>,
    data: T,
) -> Response {
    let html = state.console.render(name, &Page { layout, data });
    (status, Html(html)).into_response()
}

/// Why a console request was not served, as a page.
#[derive(Debug)]
enum Problem {
    NotFound(String),
    Denied(String),
    Limited(String),
    Unavailable,
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        match error {
            AppError::NotFound(message) => Self::NotFound(message),
            AppError::Denied(message) => Self::Denied(message),
            AppError::Limited(message) => Self::Limited(message),
            AppError::Store(error) => {
                tracing::error!("console: {error}");
                Self::Unavailable
            }
            other => Self::Denied(other.to_string()),
        }
    }
}

impl Problem {
    fn page(self, state: &AppState, signed: Option<&Signed>) -> Response {
        let (status, title, message) = match self {
            Self::NotFound(message) => (StatusCode::NOT_FOUND, "Not found", message),
            Self::Denied(message) => (StatusCode::FORBIDDEN, "Not allowed", message),
            Self::Limited(message) => (StatusCode::TOO_MANY_REQUESTS, "Too many tries", message),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "The database did not answer; nothing was changed. Try again in a moment.".into(),
            ),
        };
        #[derive(Serialize)]
        struct Data {
            message: String,
        }
        render(
            state,
            status,
            "problem",
            Layout::new(title, "", signed),
            Data { message },
        )
    }
}

/// Where a finished form goes: 303, so that reloading the next page does not post again.
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
