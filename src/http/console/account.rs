//! The signed-in person's own account: who they are to canvass, and their second factor
//! (TOTP, as authenticator apps make it), turned on with a code from the app and off with one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use qrcodegen::{QrCode, QrCodeEcc};
use serde::{Deserialize, Serialize};

use super::flash::Flash;
use super::session::{SessionForm, Signed};
use super::{Layout, Problem, Refusal, Section, Template, render};
use crate::app::{self, AppError};
use crate::http::AppState;

#[derive(Serialize, Default)]
struct Data {
    email: String,
    role: &'static str,
    constituencies: String,
    two_factor: bool,
    /// While turning it on: the secret to type, and its QR code to scan.
    secret: Option<String>,
    qr: Option<String>,
    error: Option<String>,
}

async fn page(state: &AppState, signed: &Signed, status: StatusCode, mut data: Data) -> Response {
    let member = &signed.session.member;
    data.two_factor = match app::staff::has_totp(&state.app, signed.session.user).await {
        Ok(on) => on,
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    data.email = member.name.clone();
    data.role = member.role.as_str();
    data.constituencies = match app::contacts::constituency_names(&state.app).await {
        Ok(names) => names
            .of_scope(&member.scope)
            .unwrap_or_else(|| "all".into()),
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    render(
        state,
        status,
        Template::Account,
        Layout::new("Your account", Section::Account, Some(signed)),
        data,
    )
}

pub async fn show(State(state): State<AppState>, signed: Signed) -> Response {
    page(&state, &signed, StatusCode::OK, Data::default()).await
}

/// The page with a new key to turn the second factor on with: nothing is kept until a code
/// from the app confirms it.
pub async fn enrol(State(state): State<AppState>, signed: Signed) -> Response {
    match app::staff::start_totp(&signed.session.member.name) {
        Ok(enrolment) => {
            let data = Data {
                qr: Some(qr_image(&enrolment.uri)),
                secret: Some(enrolment.secret),
                ..Data::default()
            };
            page(&state, &signed, StatusCode::OK, data).await
        }
        Err(error) => Problem::from(error).page(&state, Some(&signed)),
    }
}

#[derive(Deserialize)]
pub struct TwoFactor {
    #[serde(default)]
    secret: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

/// Confirms or turns off the second factor.
pub async fn two_factor(
    State(state): State<AppState>,
    axum::extract::Path(step): axum::extract::Path<String>,
    SessionForm(signed, form): SessionForm<TwoFactor>,
) -> Response {
    let (app, actor, user) = (&state.app, &signed.actor(), signed.session.user);
    let mut data = Data::default();
    let done = match step.as_str() {
        "confirm" => {
            app::staff::confirm_totp(app, actor, user, &form.secret, &form.code, &form.password)
                .await
                .map(|()| "Two-factor sign-in is on: you will be asked for a code.")
        }
        "off" => app::staff::turn_off_totp(app, actor, user, &form.code)
            .await
            .map(|()| "Two-factor sign-in is off."),
        _ => Err(AppError::NotFound("no such step".into())),
    };
    match done {
        Ok(notice) => Flash::Notice(notice.into()).redirect(&state, &signed, "/admin/account"),
        Err(error) => {
            let (status, message) = match Refusal::of_form(error) {
                Refusal::OnForm { status, message } => (status, message),
                Refusal::Page(problem) => return problem.page(&state, Some(&signed)),
            };
            if step == "confirm" && status == StatusCode::UNPROCESSABLE_ENTITY {
                // The same secret again, to try another code.
                if let Ok(uri) =
                    app::staff::enrolment_uri(&form.secret, &signed.session.member.name)
                {
                    data.qr = Some(qr_image(&uri));
                    data.secret = Some(form.secret.clone());
                }
            }
            data.error = Some(message);
            page(&state, &signed, status, data).await
        }
    }
}

/// `text` as a QR code: an SVG image in a `data:` URL (the console's policy takes those).
fn qr_image(text: &str) -> String {
    let Ok(code) = QrCode::encode_text(text, QrCodeEcc::Medium) else {
        return String::new();
    };
    let size = code.size();
    let border = 4;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if code.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    let full = size + 2 * border;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {full} {full}\" \
         shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>"
    );
    format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg))
}
