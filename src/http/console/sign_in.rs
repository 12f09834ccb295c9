//! Signing in and out, and setting a password through a one-time link.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::session::{self, SessionForm};
use super::{Layout, Problem, Section, Template, render, see_other};
use crate::app::{self, AppError};
use crate::domain::{MIN_PASSWORD_CHARS, SessionUse};
use crate::http::AppState;
use crate::http::client_ip::ClientIp;

#[derive(Default, Serialize)]
struct LoginData {
    email: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    /// Set after a password was set or a session signed out.
    done: Option<String>,
}

/// The sign-in form; someone signed in already goes to the dashboard.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    if let Some(secret) = session::presented(&state, &headers)
        && let Ok(Some(_)) = app::staff::session(&state.app, &secret, SessionUse::Person).await
    {
        return see_other("/admin");
    }
    let notice = match query.done.as_deref() {
        Some("password") => Some("Your password is set. Sign in with it."),
        Some("out") => Some("You have signed out."),
        _ => None,
    };
    login_page(
        &state,
        StatusCode::OK,
        LoginData {
            notice,
            ..LoginData::default()
        },
    )
}

fn login_page(state: &AppState, status: StatusCode, data: LoginData) -> Response {
    render(
        state,
        status,
        Template::Login,
        Layout::new("Sign in", Section::Elsewhere, None),
        data,
    )
}

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
    /// The second factor's code, for those who turned it on.
    #[serde(default)]
    code: String,
}

/// Checks the address and password; on success a new session (any session the browser had
/// ends: the cookie is never reused across a sign-in) and the dashboard.
pub async fn sign_in(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    Form(form): Form<Credentials>,
) -> Response {
    let signed_in = app::staff::sign_in(
        &state.app,
        &form.email,
        &form.password,
        &form.code,
        client.limit_key(),
    )
    .await;
    match signed_in {
        Ok(signed_in) => {
            if let Some(old) = session::presented(&state, &headers) {
                let _ = app::staff::sign_out(&state.app, &old).await;
            }
            let mut response = see_other("/admin");
            response.headers_mut().insert(
                header::SET_COOKIE,
                session::open_cookie(&state, signed_in.session.expose()),
            );
            response
        }
        Err(error) => {
            // A refused sign-in names no field and is 401: which of the address, the
            // password or the code was wrong is not for a stranger to learn.
            let status = match &error {
                AppError::Limited(_) => error.status(),
                AppError::Invalid { .. } => StatusCode::UNAUTHORIZED,
                _ => return Problem::from(error).page(&state, None),
            };
            let message = match error {
                AppError::Invalid { message, .. } => message,
                other => other.to_string(),
            };
            login_page(
                &state,
                status,
                LoginData {
                    email: form.email.chars().take(254).collect(),
                    error: Some(message),
                    notice: None,
                },
            )
        }
    }
}

#[derive(Deserialize)]
pub struct Nothing {}

/// Ends the session, here and in the browser.
pub async fn sign_out(
    State(state): State<AppState>,
    SessionForm(signed, Nothing {}): SessionForm<Nothing>,
) -> Response {
    if let Err(error) = app::staff::sign_out(&state.app, &signed.secret).await {
        return Problem::from(error).page(&state, Some(&signed));
    }
    let mut response = see_other("/admin/login?done=out");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::closing_cookie(&state));
    response
}

#[derive(Default, Serialize)]
struct PasswordData {
    email: String,
    name: String,
    min_chars: usize,
    error: Option<String>,
    field: Option<&'static str>,
}

/// The form to set a password, while the link works.
pub async fn password_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match app::staff::password_link_holder(&state.app, &token).await {
        Ok((email, name)) => password_form(&state, StatusCode::OK, email, name, None),
        Err(error) => Problem::from(error).page(&state, None),
    }
}

fn password_form(
    state: &AppState,
    status: StatusCode,
    email: String,
    name: String,
    error: Option<(&'static str, String)>,
) -> Response {
    let (field, error) = error.unzip();
    render(
        state,
        status,
        Template::Password,
        Layout::new("Set your password", Section::Elsewhere, None),
        PasswordData {
            email,
            name,
            min_chars: MIN_PASSWORD_CHARS,
            error,
            field,
        },
    )
}

#[derive(Deserialize)]
pub struct NewPassword {
    password: String,
    repeat: String,
}

/// Sets the password and sends the person to sign in with it.
pub async fn set_password(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
    Form(form): Form<NewPassword>,
) -> Response {
    match app::staff::set_password(
        &state.app,
        &token,
        &form.password,
        &form.repeat,
        Some(client),
    )
    .await
    {
        Ok(()) => see_other("/admin/login?done=password"),
        Err(AppError::Invalid { field, message }) => {
            match app::staff::password_link_holder(&state.app, &token).await {
                Ok((email, name)) => password_form(
                    &state,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    email,
                    name,
                    Some((field, message)),
                ),
                Err(error) => Problem::from(error).page(&state, None),
            }
        }
        Err(error) => Problem::from(error).page(&state, None),
    }
    .into_response()
}
