//! The signed links in every email: `/u/{token}` (one-click unsubscribe, RFC 8058) and
//! `/p/{token}` (the preference centre). A token is verified before anything else happens; one
//! that fails changes nothing and touches no table.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use chrono::Utc;
use serde::Serialize;

use super::AppState;
use super::client_ip::ClientIp;
use super::pages::PublicPage;
use crate::app::AppError;
use crate::app::contacts;
use crate::app::preferences::{
    self, PreferenceForm, Preferences, UnsubscribeOutcome, UnsubscribeVia, UpdateOutcome,
};
use crate::domain::{Actor, PublicId};
use crate::mail::render::TRIAL_LINK_PATH;
use crate::mail::token::{Link, Purpose, TokenError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .route("/p/{token}", get(preferences_page).post(preferences_action))
        .route(
            &format!("/{TRIAL_LINK_PATH}"),
            get(test_link).post(test_link),
        )
}

/// Where a preview's or a test message's links lead, the one-click unsubscribe included: a
/// page that says so, and nothing changed.
async fn test_link(State(state): State<AppState>) -> Response {
    state.sender_page(PublicPage::TestLink)
}

/// A request the handlers could not serve.
enum LinkFailure {
    /// The token failed verification: nothing was looked up.
    Link(TokenError),
    /// The database failed; the transaction was rolled back.
    Unavailable(AppError),
}

impl From<AppError> for LinkFailure {
    fn from(error: AppError) -> Self {
        Self::Unavailable(error)
    }
}

type Answer = Result<Response, LinkFailure>;

#[derive(Serialize)]
struct SenderOnly<'a> {
    sender: &'a str,
}

#[derive(Serialize)]
struct InvalidLink<'a> {
    sender: &'a str,
    expired: bool,
}

/// The preference centre's page data.
#[derive(Serialize)]
struct PreferencesPage<'a> {
    sender: &'a str,
    name: Option<&'a str>,
    email: &'a str,
    postcode: Option<&'a str>,
    constituency: Option<&'a str>,
    suppressed: bool,
    topics: Vec<TopicView<'a>>,
    saved: bool,
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct TopicView<'a> {
    slug: &'a str,
    name: &'a str,
    subscribed: bool,
}

impl AppState {
    fn verify(&self, token: &str, purpose: Purpose) -> Result<Link, LinkFailure> {
        self.keys
            .verify_link(token, purpose, Utc::now())
            .map_err(LinkFailure::Link)
    }

    fn page(&self, status: StatusCode, page: PublicPage, data: &impl Serialize) -> Response {
        (status, Html(self.pages.render(page.name(), data))).into_response()
    }

    /// A public page with its own values.
    pub(super) fn page_with(
        &self,
        status: StatusCode,
        page: PublicPage,
        data: &impl Serialize,
    ) -> Response {
        self.page(status, page, data)
    }

    fn sender_page(&self, page: PublicPage) -> Response {
        self.page(
            StatusCode::OK,
            page,
            &SenderOnly {
                sender: &self.sender,
            },
        )
    }

    fn preferences_page(
        &self,
        status: StatusCode,
        held: &Preferences,
        saved: bool,
        error: Option<&str>,
    ) -> Response {
        let page = PreferencesPage {
            sender: &self.sender,
            name: held.name.as_deref(),
            email: held.email.as_str(),
            postcode: held.postcode.as_deref(),
            constituency: held.constituency.as_deref(),
            suppressed: held.suppressed.is_some(),
            topics: held
                .topics
                .iter()
                .map(|t| TopicView {
                    slug: t.slug.as_str(),
                    name: &t.name,
                    subscribed: t.subscribed,
                })
                .collect(),
            saved,
            error,
        };
        self.page(status, PublicPage::Preferences, &page)
    }

    /// Unsubscribes the person from everything, counts it, and answers with the page to show.
    async fn unsubscribe(&self, link: Link, via: UnsubscribeVia, ip: std::net::IpAddr) -> Answer {
        let id = link.contact;
        Ok(
            match preferences::unsubscribe(&self.app, &link, via, Some(ip)).await? {
                UnsubscribeOutcome::Unsubscribed => {
                    self.metrics.unsubscribes.inc();
                    tracing::info!(contact = %id, "unsubscribed");
                    self.sender_page(PublicPage::Unsubscribed)
                }
                UnsubscribeOutcome::AlreadyUnsubscribed => {
                    self.sender_page(PublicPage::Unsubscribed)
                }
                UnsubscribeOutcome::NotFound => self.sender_page(PublicPage::NothingHeld),
            },
        )
    }

    /// The page for a link that failed verification.
    pub(super) fn invalid_link(&self, reason: TokenError) -> Response {
        self.answer(Err(LinkFailure::Link(reason)))
    }

    /// A page that names the sender and says one thing.
    pub(super) fn page_with_message(
        &self,
        status: StatusCode,
        page: PublicPage,
        message: &str,
    ) -> Response {
        #[derive(Serialize)]
        struct WithMessage<'a> {
            sender: &'a str,
            message: &'a str,
        }
        let data = WithMessage {
            sender: &self.sender,
            message,
        };
        self.page(status, page, &data)
    }

    fn answer(&self, result: Answer) -> Response {
        match result {
            Ok(response) => response,
            Err(LinkFailure::Link(reason)) => {
                tracing::info!(%reason, "link refused");
                let status = match reason {
                    TokenError::TooLong | TokenError::Malformed => StatusCode::BAD_REQUEST,
                    TokenError::Expired => StatusCode::GONE,
                    TokenError::UnknownKey
                    | TokenError::BadSignature
                    | TokenError::WrongPurpose => StatusCode::NOT_FOUND,
                };
                let page = InvalidLink {
                    sender: &self.sender,
                    expired: reason == TokenError::Expired,
                };
                self.page(status, PublicPage::InvalidLink, &page)
            }
            Err(LinkFailure::Unavailable(error)) => {
                tracing::error!(%error, "database error answering a link");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Html(
                        "<!doctype html><html lang=\"en-GB\"><title>Try again</title>\
                         <p>Something went wrong and nothing was changed. Please try again in \
                         a few minutes.",
                    ),
                )
                    .into_response()
            }
        }
    }
}

/// Shows what the button will do, and changes nothing: link scanners fetch this page.
async fn unsubscribe_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let result = async {
        let id = state.verify(&token, Purpose::Unsubscribe)?.contact;
        Ok(match preferences::held(&state.app, &id).await? {
            Some(_) => state.sender_page(PublicPage::Unsubscribe),
            None => state.sender_page(PublicPage::NothingHeld),
        })
    }
    .await;
    state.answer(result)
}

/// Unsubscribes at once. The body is RFC 8058's `List-Unsubscribe=One-Click` from a mail client
/// or the page's own form; the signed token is what authorises it, so the body is not needed.
async fn unsubscribe(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
) -> Response {
    let result = async {
        let link = state.verify(&token, Purpose::Unsubscribe)?;
        state.unsubscribe(link, UnsubscribeVia::Link, client).await
    }
    .await;
    state.answer(result)
}

async fn preferences_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let result = async {
        let id = state.verify(&token, Purpose::Preferences)?.contact;
        Ok(match preferences::held(&state.app, &id).await? {
            Some(held) => state.preferences_page(StatusCode::OK, &held, false, None),
            None => state.sender_page(PublicPage::NothingHeld),
        })
    }
    .await;
    state.answer(result)
}

/// The preference form's buttons.
enum Action {
    Save,
    Unsubscribe,
    Download,
    Erase,
    EraseConfirmed,
    Cancel,
}

impl Action {
    fn parse(value: Option<&str>) -> Option<Self> {
        Some(match value.unwrap_or("save") {
            "save" => Self::Save,
            "unsubscribe" => Self::Unsubscribe,
            "download" => Self::Download,
            "erase" => Self::Erase,
            "erase-confirmed" => Self::EraseConfirmed,
            "cancel" => Self::Cancel,
            _ => return None,
        })
    }
}

async fn preferences_action(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Path(token): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let result =
        async {
            let link = state.verify(&token, Purpose::Preferences)?;
            let id = link.contact;
            let Some(held) = preferences::held(&state.app, &id).await? else {
                return Ok(state.sender_page(PublicPage::NothingHeld));
            };
            let value = |name: &str| {
                fields
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, v)| v.as_str())
            };
            let Some(action) = Action::parse(value("action")) else {
                return Ok(state.preferences_page(
                    StatusCode::BAD_REQUEST,
                    &held,
                    false,
                    Some("That button is not recognised; nothing was changed."),
                ));
            };
            match action {
                Action::Save => save(&state, &id, &held, &fields, client).await,
                Action::Unsubscribe => {
                    state
                        .unsubscribe(link, UnsubscribeVia::PreferenceCentre, client)
                        .await
                }
                Action::Download => {
                    let export =
                        match contacts::export(&state.app, &Actor::Contact, held.email.as_str())
                            .await
                        {
                            Ok(export) => export,
                            Err(e @ AppError::Unavailable(_)) => return Err(e.into()),
                            Err(_) => return Ok(state.sender_page(PublicPage::NothingHeld)),
                        };
                    let json = serde_json::to_string_pretty(&export)
                        .expect("the export is plain data and always serialises");
                    Ok((
                        [
                            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
                            (
                                header::CONTENT_DISPOSITION,
                                "attachment; filename=\"my-data.json\"",
                            ),
                        ],
                        json,
                    )
                        .into_response())
                }
                Action::Erase => Ok(state.sender_page(PublicPage::EraseConfirm)),
                Action::EraseConfirmed => {
                    match contacts::erase(&state.app, &Actor::Contact, held.email.as_str()).await {
                        Ok(_) => {}
                        Err(e @ AppError::Unavailable(_)) => return Err(e.into()),
                        Err(_) => return Ok(state.sender_page(PublicPage::NothingHeld)),
                    }
                    state.metrics.erasures.inc();
                    tracing::info!("a contact erased their data");
                    Ok(state.sender_page(PublicPage::Erased))
                }
                Action::Cancel => Ok(state.preferences_page(StatusCode::OK, &held, false, None)),
            }
        }
        .await;
    state.answer(result)
}

async fn save(
    state: &AppState,
    id: &PublicId,
    held: &Preferences,
    fields: &[(String, String)],
    client: std::net::IpAddr,
) -> Answer {
    let form = PreferenceForm {
        postcode: fields
            .iter()
            .find(|(key, _)| key == "postcode")
            .map_or("", |(_, v)| v.as_str()),
        topics: fields
            .iter()
            .filter(|(key, _)| key == "topic")
            .map(|(_, slug)| slug.as_str())
            .collect(),
    };
    let updated = match preferences::update(&state.app, id, &form, client).await {
        Ok(updated) => updated,
        Err(AppError::Invalid { .. }) => {
            return Ok(state.preferences_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                held,
                false,
                Some(
                    "That postcode is not one we recognise, so nothing was changed. \
                      Check it, or leave it empty.",
                ),
            ));
        }
        Err(error) => return Err(error.into()),
    };
    match updated {
        UpdateOutcome::NotFound => Ok(state.sender_page(PublicPage::NothingHeld)),
        UpdateOutcome::GrantsRefused => Ok(state.preferences_page(
            StatusCode::CONFLICT,
            held,
            false,
            Some(
                "You unsubscribed from all our emails, so topics cannot be turned back on \
                  here. Sign up again on our website and we will ask you to confirm. Nothing \
                  was changed.",
            ),
        )),
        UpdateOutcome::Updated {
            granted,
            withdrawn,
            postcode_changed,
        } => {
            if !granted.is_empty() || !withdrawn.is_empty() || postcode_changed {
                state.metrics.preference_changes.inc();
                tracing::info!(contact = %id, "preferences changed");
            }
            let Some(now_held) = preferences::held(&state.app, id).await? else {
                return Ok(state.sender_page(PublicPage::NothingHeld));
            };
            Ok(state.preferences_page(StatusCode::OK, &now_held, true, None))
        }
    }
}
