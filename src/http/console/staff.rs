//! The staff (admins only): who may sign in, with their role and constituencies; adding a
//! person (their password link shown once), disabling one, a new link for one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::flash::Flash;
use super::session::{Posted, SessionForm, Signed};
use super::{Layout, Problem, Refusal, Section, Template, named, render};
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
    /// What a button just did, with a password link to give (shown this once).
    notice: Option<String>,
    link: Option<String>,
    link_for: Option<String>,
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
            notice: None,
            link: None,
            link_for: None,
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
        Template::Staff,
        Layout::new("Staff", Section::Staff, Some(signed)),
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
    /// The codes they are kept to that the form does not list (not in the directory, or
    /// outside the editing admin's own): kept as they are.
    unlisted: Vec<String>,
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
        return Problem::not_found("No one on the staff has that address.")
            .page(&state, Some(&signed));
    };
    let constituencies = match app::contacts::constituencies(&state.app, &actor).await {
        Ok(found) => found,
        Err(error) => return Problem::from(error).page(&state, Some(&signed)),
    };
    let kept = person.scope.constituencies().unwrap_or_default();
    let unlisted = kept
        .iter()
        .map(|code| code.as_str().to_owned())
        .filter(|code| !constituencies.iter().any(|(listed, _)| listed == code))
        .collect();
    let data = EditData {
        unlisted,
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
        Template::StaffEdit,
        Layout::new(&title, Section::Staff, Some(&signed)),
        data,
    )
}

/// What a staff button did.
enum Done {
    /// Said on the page it leads to.
    Said(String),
    /// Said, with a password link to give the person: shown on the page that answers.
    Link(String, String),
}

/// The constituencies the change form keeps a person to: those ticked, or (chosen as such)
/// all of them. None ticked without choosing all is refused: it would widen them by mistake.
fn edited_scope(posted: &Posted) -> Result<Vec<String>, AppError> {
    let ticked = posted.all("constituency");
    match (posted.one("reach"), ticked.is_empty()) {
        ("all", _) => Ok(Vec::new()),
        (_, false) => Ok(ticked),
        (_, true) => Err(AppError::invalid(
            "constituency",
            "tick the constituencies to keep them to, or choose all constituencies",
        )),
    }
}

/// A button on the staff page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Button {
    Add,
    Link,
    Enable,
    Edit,
    Disable,
}

/// Adds a person, changes one, disables one, or makes a new password link for one.
pub async fn act(
    State(state): State<AppState>,
    axum::extract::Path(action): axum::extract::Path<String>,
    SessionForm(signed, posted): SessionForm<Posted>,
) -> Response {
    let Some(button) = named::<Button>(&action) else {
        return Problem::not_found("no such action").page(&state, Some(&signed));
    };
    let (app, actor) = (&state.app, &signed.actor());
    let email = posted.one("email");
    let address = email.trim().to_lowercase();
    // A password link is a secret: shown on the page that answers its form, once, and never
    // carried in a cookie or a URL.
    let link = |added: app::staff::Added, said: String| Done::Link(said, added.link);
    let done = match button {
        Button::Add => app::staff::add(
            app,
            actor,
            email,
            posted.one("name"),
            posted.one("role"),
            &posted.all("constituency"),
        )
        .await
        .map(|added| link(added, format!("{address} is on the staff."))),
        Button::Link => app::staff::renew_password_link(app, actor, email)
            .await
            .map(|added| {
                link(
                    added,
                    format!("A new link for {address}; earlier ones stop working."),
                )
            }),
        Button::Enable => app::staff::enable(app, actor, email)
            .await
            .map(|added| link(added, format!("{address} may sign in again."))),
        Button::Edit => match edited_scope(&posted) {
            Ok(constituencies) => app::staff::edit(
                app,
                actor,
                email,
                Some(posted.one("role")),
                Some(&constituencies),
            )
            .await
            .map(|()| Done::Said(format!("Changed what {address} may do."))),
            Err(error) => Err(error),
        },
        Button::Disable => app::staff::disable(app, actor, email).await.map(|_| {
            Done::Said(format!(
                "{address} is disabled: signed out everywhere, their tokens refused."
            ))
        }),
    };
    let done = done.map(|done| match done {
        Done::Said(notice) => Ok(notice),
        Done::Link(said, link) => Err((said, link, address.clone())),
    });
    let done = match done {
        Ok(Err((notice, link, link_for))) => {
            let data = Data {
                notice: Some(notice),
                link: Some(link),
                link_for: Some(link_for),
                ..Data::empty()
            };
            let mut page = staff_page(&state, &signed, StatusCode::OK, data).await;
            page.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            return page;
        }
        Ok(Ok(notice)) => Ok(notice),
        Err(error) => Err(error),
    };
    let error = match done {
        Ok(notice) => return Flash::Notice(notice).redirect(&state, &signed, "/admin/staff"),
        Err(error) => error,
    };
    // Someone who may not see the staff page is refused with a page of its own.
    if matches!(error, AppError::Denied(_)) && !signed.session.member.role.manages_staff() {
        return Problem::from(error).page(&state, Some(&signed));
    }
    // A person refused as typed is shown again with the reason; a refused button is told on
    // the page it leads back to.
    match button {
        Button::Add => match Refusal::of_form(error) {
            Refusal::OnForm { status, message } => {
                let data = Data {
                    error: Some(message),
                    ..Data::empty()
                };
                staff_page(&state, &signed, status, data).await
            }
            Refusal::Page(problem) => problem.page(&state, Some(&signed)),
        },
        _ => Refusal::after_button(&state, &signed, "/admin/staff", Err(error)),
    }
}
