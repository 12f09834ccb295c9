//! The staff console, `/admin`: server-rendered pages over the application, for campaign staff
//! and volunteers in a browser. Every page works without JavaScript.
//!
//! - [`session`]: the session cookie, who is signed in, and the checks every form passes
//!   (same origin, the session's form token).
//! - [`sign_in`]: signing in and out, and setting a password through a one-time link.
//! - [`flash`]: what a button did, told on the page its redirect leads to.
//! - [`refusal`]: how the console says no: beside the form, or as a page of its own.
//! - [`home`], [`contacts`], [`imports`], [`campaigns`], [`records`], [`registers`], [`staff`],
//!   [`account`]: the pages, each a thin adapter over `crate::app`.
//!
//! What a page shows comes from the application within the signed-in person's role and
//! constituencies; no template decides who sees what.

mod account;
mod campaigns;
mod contacts;
mod flash;
mod home;
mod imports;
mod records;
mod refusal;
mod registers;
mod session;
mod sign_in;
mod staff;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde::Serialize;

use super::AppState;
use super::pages::templates;
pub use campaigns::trials::Trials;
use flash::Flash;
pub use imports::Imports;
use refusal::{Problem, Refusal};
pub use session::{Signed, same_origin_only};

templates! {
    /// A template of the console's: a page, or a part that a page or a poll renders.
    Template in "../../../templates/console/" {
        Layout => "layout",
        Login => "login",
        Password => "password",
        Problem => "problem",
        Home => "home",
        Contacts => "contacts",
        Contact => "contact",
        Campaigns => "campaigns",
        Campaign => "campaign",
        CampaignForm => "campaign_form",
        CampaignConfirm => "campaign_confirm",
        Import => "import",
        ImportJob => "import_job",
        Topics => "topics",
        Suppressions => "suppressions",
        Audit => "audit",
        Staff => "staff",
        StaffEdit => "staff_edit",
        Account => "account",
        InFlight => "in_flight",
        CampaignTrial => "campaign_trial",
        HomeStats => "home_stats",
        Stats => "stats",
        Requests => "requests",
        Request => "request",
        Complaints => "complaints",
        Complaint => "complaint",
        Proof => "proof",
    }
}

/// The console's stylesheet and htmx (2.x, vendored by `scripts/vendor.sh`), served from
/// `/admin/static/`.
const STYLESHEET: &str = include_str!("../../../templates/console/console.css");
const HTMX: &str = include_str!("../../../templates/console/vendor/htmx.min.js");
const HTMX_SSE: &str = include_str!("../../../templates/console/vendor/sse.js");

/// Pages hold personal data and act at once: nothing from elsewhere, no framing, no inline
/// script or style.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/admin", get(home::page))
        .route("/admin/", get(home::page))
        .route("/admin/events", get(home::events))
        .route("/admin/stats", get(home::stats))
        .route("/admin/contacts", get(contacts::list))
        .route("/admin/contacts/{id}", get(contacts::details))
        .route("/admin/contacts/{id}/export.json", get(contacts::download))
        .route("/admin/contacts/{id}/{action}", post(contacts::act))
        .route(
            "/admin/campaigns",
            get(campaigns::list).post(campaigns::form::create),
        )
        .route("/admin/campaigns/new", get(campaigns::form::new))
        .route("/admin/campaigns/try", post(campaigns::trials::try_draft))
        .route(
            "/admin/campaigns/trial/{key}",
            get(campaigns::trials::trial_message),
        )
        .route(
            "/admin/campaigns/{id}",
            get(campaigns::page::show).post(campaigns::form::update),
        )
        .route("/admin/campaigns/{id}/edit", get(campaigns::form::edit))
        .route(
            "/admin/campaigns/{id}/message",
            get(campaigns::page::message),
        )
        .route(
            "/admin/campaigns/{id}/{action}",
            get(campaigns::page::confirm).post(campaigns::page::act),
        )
        .route(
            "/admin/import",
            get(imports::page)
                .post(imports::upload)
                .layer(DefaultBodyLimit::max(imports::UPLOAD_LIMIT)),
        )
        .route("/admin/import/{id}", get(imports::job))
        .route("/admin/import/{id}/rejected.csv", get(imports::rejected))
        .route(
            "/admin/topics",
            get(records::topics).post(records::add_topic),
        )
        .route("/admin/suppressions", get(records::suppressions))
        .route("/admin/audit", get(records::audit))
        .route(
            "/admin/requests",
            get(registers::requests).post(registers::open_request),
        )
        .route("/admin/requests/{reference}", get(registers::request))
        .route(
            "/admin/requests/{reference}/{action}",
            post(registers::act_on_request),
        )
        .route(
            "/admin/complaints",
            get(registers::complaints).post(registers::log_complaint),
        )
        .route("/admin/complaints/{reference}", get(registers::complaint))
        .route(
            "/admin/complaints/{reference}/{action}",
            post(registers::act_on_complaint),
        )
        .route("/admin/proof", get(registers::proof))
        .route("/admin/staff", get(staff::page))
        .route("/admin/staff/person", get(staff::edit))
        .route("/admin/staff/{action}", post(staff::act))
        .route("/admin/account", get(account::show))
        .route("/admin/account/two-factor", get(account::enrol))
        .route(
            "/admin/account/two-factor/{step}",
            post(account::two_factor),
        )
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
        .route("/admin/static/console.css", get(stylesheet))
        .route("/admin/static/htmx.min.js", get(|| script(HTMX)))
        .route("/admin/static/sse.js", get(|| script(HTMX_SSE)));
    Router::new()
        .merge(signed_in)
        .merge(open)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            session::same_origin_only,
        ))
        .layer(middleware::map_response(with_policy))
}

/// The console's policy, unless a response brings its own (a campaign's message, framed). Its
/// URLs carry no secret, so its forms send their origin (browsers send `Origin: null` under
/// the public pages' `no-referrer`).
async fn with_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
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

async fn script(source: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        source,
    )
        .into_response()
}

async fn not_found(
    signed: Signed,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Response {
    Problem::not_found("There is no such page.").page(&state, Some(&signed))
}

/// What every console page's layout shows: who is signed in, and the form token for the
/// sign-out button.
/// The console's sections, as its navigation names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Section {
    /// A page outside the navigation: signing in, a problem.
    #[serde(rename = "")]
    Elsewhere,
    Home,
    Contacts,
    Campaigns,
    Import,
    Topics,
    Suppressions,
    Audit,
    Staff,
    Requests,
    Complaints,
    Account,
}

#[derive(Serialize)]
struct Layout<'a> {
    title: &'a str,
    /// The navigation entry to mark as current.
    section: Section,
    user: Option<&'a str>,
    role: Option<&'a str>,
    form_token: Option<&'a str>,
    admin: bool,
    writes: bool,
    /// The page reloads itself every few seconds (an import under way), with or without
    /// JavaScript.
    refresh: bool,
    /// What the form that led here did.
    flash: Option<&'a Flash>,
}

impl<'a> Layout<'a> {
    fn new(title: &'a str, section: Section, signed: Option<&'a Signed>) -> Self {
        Self {
            title,
            section,
            user: signed.map(|s| s.session.display_name.as_str()),
            role: signed.map(|s| s.session.member.role.as_str()),
            form_token: signed.map(|s| s.session.form_token.as_str()),
            admin: signed.is_some_and(|s| s.session.member.role.manages_staff()),
            writes: signed.is_some_and(|s| s.session.member.role.writes()),
            refresh: false,
            flash: signed.and_then(|s| s.flash.as_ref()),
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
    template: Template,
    layout: Layout<'_>,
    data: T,
) -> Response {
    let name = template.name();
    match state.console.try_render(name, &Page { layout, data }) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, page = name, "rendering a console page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><html lang=\"en-GB\"><title>Error</title><p>Something went wrong."),
            )
                .into_response()
        }
    }
}

/// The one of `T` that `name` names, as serde spells it: the button a console POST's path
/// names, say. `None` for a name it does not know.
fn named<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    use serde::de::IntoDeserializer;
    let named: Result<T, serde::de::value::Error> = T::deserialize(name.into_deserializer());
    named.ok()
}

/// Where a finished form goes: 303, so that reloading the next page does not post again.
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every button a template posts to is one its handler knows, and a name it does not know
    /// is none: the templates and the handlers' enums of buttons cannot drift apart.
    #[test]
    fn every_button_a_template_posts_to_is_one_its_handler_knows() {
        let known = |area: &str, name: &str| match area {
            "campaigns" => name.parse::<campaigns::page::Button>().is_ok(),
            "contacts" => named::<contacts::Button>(name).is_some(),
            "staff" => named::<staff::Button>(name).is_some(),
            "requests" => named::<registers::RequestButton>(name).is_some(),
            "complaints" => named::<registers::ComplaintButton>(name).is_some(),
            _ => panic!("no buttons known for {area}"),
        };
        let mut seen = 0;
        for entry in std::fs::read_dir("templates/console").unwrap() {
            let path = entry.unwrap().path();
            let Ok(template) = std::fs::read_to_string(&path) else {
                continue; // a folder of partials
            };
            for form in template
                .split("<form method=\"post\" action=\"/admin/")
                .skip(1)
            {
                let path = &form[..form.find('"').unwrap()];
                // The staff page's buttons follow the area; the others follow whose page it is.
                let (area, name) = match path.split_once('/') {
                    Some(("staff", name)) => ("staff", name),
                    Some((area, rest)) => (area, rest.split_once('/').map_or("", |(_, n)| n)),
                    None => continue, // a form of its own, such as `/admin/requests`
                };
                if area == "account" {
                    continue;
                }
                let names: &[&str] = match name {
                    "{{#if restricted}}unrestrict{{else}}restrict{{/if}}" => {
                        &["unrestrict", "restrict"]
                    }
                    // The confirmation page's button: the one it was asked about.
                    "{{action}}" => &["queue", "cancel"],
                    name => &[name],
                };
                for name in names {
                    assert!(
                        known(area, name),
                        "{area}/{name} is a button no handler knows"
                    );
                    seen += 1;
                }
            }
        }
        assert!(seen >= 25, "found only {seen} buttons in the templates");
        for area in ["campaigns", "contacts", "staff", "requests", "complaints"] {
            assert!(
                !known(area, "launch"),
                "{area} took a button it has not got"
            );
        }
    }

    /// Every page renders from a bare layout (strict mode catches a misspelt helper or a
    /// missing partial).
    #[test]
    fn every_console_page_renders() {
        let publisher = crate::domain::Publisher {
            organisation: "Org".into(),
            postal_address: None,
            imprint: None,
            privacy_url: None,
        };
        let registry = super::super::pages::Pages::new(&publisher, Template::sources()).unwrap();
        let data = serde_json::json!({"layout": {"title": "t", "user": "u", "form_token": "x"}});
        for (name, _) in Template::sources().filter(|(name, _)| *name != "layout") {
            let out = registry.try_render(name, &data);
            assert!(out.is_ok(), "{name}: {out:?}");
        }
    }
}
