//! The staff (admins only): who may sign in, with their role and constituencies; adding a
//! person (their password link shown once), disabling one, a new link for one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::flash::Flash;
use super::session::{Posted, SessionForm, Signed};
use super::{Layout, Problem, render};
use crate::app::{self, AppError};
use crate::domain::{Role, uk_date};
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
    let names = match app::contacts::constituency_names(&state.app).await {
        Ok(names) => names,
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    data.people = people
        .into_iter()
        .map(|p| Person {
            active: p.disabled_at.is_none(),
            state: match (p.disabled_at, p.has_password, p.has_totp) {
                (Some(at), _, _) => format!("disabled {}", uk_date(at)),
                (None, false, _) => "no password yet".into(),
                (None, true, true) => "active, two-factor".into(),
                (None, true, false) => "active".into(),
            },
            constituencies: names.of_scope(&p.scope).unwrap_or_else(|| "all".into()),
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

#[derive(serde::Deserialize)]
pub struct Whom {
    #[serde(default)]
    email: String,
}

#[derive(Serialize)]
struct EditData {
    email: String,
    name: String,
    roles: Vec<Picked>,
    constituencies: Vec<Picked>,
    everyone: bool,
}

#[derive(Serialize)]
struct Picked {
    value: String,
    label: String,
    picked: bool,
}

/// The form to change a person's role and constituencies.
pub async fn edit(
    State(state): State<AppState>,
    signed: Signed,
    axum::extract::Query(whom): axum::extract::Query<Whom>,
) -> Response {
    let actor = signed.actor();
    let people = match app::staff::list(&state.app, &actor).await {
        Ok(people) => people,
        Err(error) => return Problem::from(error).page(&state, Some(&signed)),
    };
    let Some(person) = people.into_iter().find(|p| p.email == whom.email) else {
        return Problem::NotFound("No one on the staff has that address.".into())
            .page(&state, Some(&signed));
    };
    let constituencies = match app::contacts::constituencies(&state.app, &actor).await {
        Ok(found) => found,
        Err(error) => return Problem::from(error).page(&state, Some(&signed)),
    };
    let kept = person.scope.constituencies().unwrap_or_default();
    let data = EditData {
        roles: [
            (Role::Viewer, "Viewer (reads)"),
            (Role::Organiser, "Organiser (imports, sends, approves)"),
            (Role::Admin, "Admin (everything, and the staff)"),
        ]
        .into_iter()
        .map(|(role, label)| Picked {
            value: role.as_str().to_owned(),
            label: label.to_owned(),
            picked: role == person.role,
        })
        .collect(),
        constituencies: constituencies
            .into_iter()
            .map(|(code, name)| Picked {
                picked: kept.iter().any(|k| k.as_str() == code),
                label: name.unwrap_or_else(|| code.clone()),
                value: code,
            })
            .collect(),
        everyone: person.scope.constituencies().is_none(),
        email: person.email,
        name: person.name,
    };
    let title = format!("Change {}", data.name);
    render(
        &state,
        StatusCode::OK,
        "staff_edit",
        Layout::new(&title, "staff", Some(&signed)),
        data,
    )
}

/// Adds a person, changes one, disables one, or makes a new password link for one.
pub async fn act(
    State(state): State<AppState>,
    axum::extract::Path(action): axum::extract::Path<String>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let (app, actor) = (&state.app, &signed.actor());
    let email = posted.one("email");
    let address = email.trim().to_lowercase();
    let link_for = |link: String| {
        format!(
            "Give this link to {address}, privately. It sets their password once, within 24 \
             hours; it is not shown again: {link}"
        )
    };
    let done = match action.as_str() {
        "add" => app::staff::add(
            app,
            actor,
            email,
            posted.one("name"),
            posted.one("role"),
            &posted.all("constituency"),
        )
        .await
        .map(|added| link_for(added.link)),
        "link" => app::staff::renew_password_link(app, actor, email)
            .await
            .map(|added| link_for(added.link)),
        "enable" => app::staff::enable(app, actor, email)
            .await
            .map(|added| format!("{address} may sign in again. {}", link_for(added.link))),
        "edit" => {
            let constituencies = posted.all("constituency");
            app::staff::edit(
                app,
                actor,
                email,
                Some(posted.one("role")),
                Some(&constituencies),
            )
            .await
            .map(|()| format!("Changed what {address} may do."))
        }
        "disable" => app::staff::disable(app, actor, email).await.map(|_| {
            format!("{address} is disabled: signed out everywhere, their tokens refused.")
        }),
        _ => Err(AppError::NotFound("no such action".into())),
    };
    let (status, message) = match done {
        Ok(notice) => return Flash::Notice(notice).redirect(&state, "/admin/staff"),
        Err(AppError::Invalid { field, message }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: {message}"),
        ),
        Err(error @ AppError::Conflict { .. }) => (StatusCode::CONFLICT, error.to_string()),
        Err(AppError::Denied(message)) if signed.session.member.role.manages_staff() => {
            (StatusCode::FORBIDDEN, message)
        }
        Err(error) => return Problem::from(error).page(&state, Some(&signed)),
    };
    // A person refused as typed is shown again with the reason; a refused button is told on
    // the page it leads back to.
    match action.as_str() {
        "add" => {
            let data = Data {
                error: Some(message),
                ..Data::empty()
            };
            staff_page(&state, &signed, status, data).await
        }
        _ => Flash::Refusal(message).redirect(&state, "/admin/staff"),
    }
}
