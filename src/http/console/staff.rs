//! The staff (admins only): who may sign in, with their role and constituencies; adding a
//! person (their password link shown once), disabling one, a new link for one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::session::{Posted, SessionForm, Signed};
use super::{Layout, Problem, render};
use crate::app::{self, AppError};
use crate::http::AppState;

#[derive(Serialize)]
struct Person {
    email: String,
    name: String,
    role: &'static str,
    constituencies: String,
    state: String,
    active: bool,
}

#[derive(Serialize)]
struct Choice {
    value: String,
    label: String,
}

#[derive(Serialize)]
struct Data {
    people: Vec<Person>,
    constituencies: Vec<Choice>,
    /// A password link just made, shown this once.
    link: Option<String>,
    link_for: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

pub async fn page(State(state): State<AppState>, signed: Signed) -> Response {
    staff_page(&state, &signed, StatusCode::OK, Data::empty()).await
}

impl Data {
    fn empty() -> Self {
        Self {
            people: Vec::new(),
            constituencies: Vec::new(),
            link: None,
            link_for: None,
            notice: None,
            error: None,
        }
    }
}

async fn staff_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    mut data: Data,
) -> Response {
    let actor = signed.actor();
    let people = match app::staff::list(&state.app, &actor).await {
        Ok(people) => people,
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    let constituencies = match app::contacts::constituencies(&state.app, &actor).await {
        Ok(found) => found,
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    data.people = people
        .into_iter()
        .map(|p| Person {
            active: p.disabled_at.is_none(),
            state: match (p.disabled_at, p.has_password, p.has_totp) {
                (Some(at), _, _) => format!("disabled {}", at.format("%-d %b %Y")),
                (None, false, _) => "no password yet".into(),
                (None, true, true) => "active, two-factor".into(),
                (None, true, false) => "active".into(),
            },
            constituencies: p.scope.as_list().unwrap_or_else(|| "all".into()),
            email: p.email,
            name: p.name,
            role: p.role.as_str(),
        })
        .collect();
    data.constituencies = constituencies
        .into_iter()
        .map(|(code, name)| Choice {
            label: name.unwrap_or_else(|| code.clone()),
            value: code,
        })
        .collect();
    render(
        state,
        status,
        "staff",
        Layout::new("Staff", "staff", Some(signed)),
        data,
    )
}

/// Adds a person, disables one, or makes a new password link for one.
pub async fn act(
    State(state): State<AppState>,
    axum::extract::Path(action): axum::extract::Path<String>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let (app, actor) = (&state.app, &signed.actor());
    let email = posted.one("email");
    let mut data = Data::empty();
    let done = match action.as_str() {
        "add" => {
            let added = app::staff::add(
                app,
                actor,
                email,
                posted.one("name"),
                posted.one("role"),
                &posted.all("constituency"),
            )
            .await;
            added.map(|added| {
                data.link = Some(added.link);
                data.link_for = Some(email.trim().to_lowercase());
            })
        }
        "link" => app::staff::renew_password_link(app, actor, email)
            .await
            .map(|added| {
                data.link = Some(added.link);
                data.link_for = Some(email.trim().to_lowercase());
            }),
        "enable" => app::staff::enable(app, actor, email).await.map(|added| {
            data.link = Some(added.link);
            data.link_for = Some(email.trim().to_lowercase());
            data.notice = Some(format!("{email} may sign in again, with the link below."));
        }),
        "disable" => app::staff::disable(app, actor, email).await.map(|_| {
            data.notice = Some(format!(
                "{email} is disabled: signed out everywhere, their tokens refused."
            ));
        }),
        _ => Err(AppError::NotFound("no such action".into())),
    };
    match done {
        Ok(()) => staff_page(&state, &signed, StatusCode::OK, data).await,
        Err(AppError::Invalid { field, message }) => {
            data.error = Some(format!("{field}: {message}"));
            staff_page(&state, &signed, StatusCode::UNPROCESSABLE_ENTITY, data).await
        }
        Err(error @ AppError::Conflict { .. }) => {
            data.error = Some(error.to_string());
            staff_page(&state, &signed, StatusCode::CONFLICT, data).await
        }
        Err(AppError::Denied(message)) if signed.session.member.role.manages_staff() => {
            data.error = Some(message);
            staff_page(&state, &signed, StatusCode::FORBIDDEN, data).await
        }
        Err(error) => Problem::from(error).page(&state, Some(&signed)),
    }
}
