//! Who is signed in, and the checks every form passes.
//!
//! A session is a random secret in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` and
//! `__Host-` when the console is served over https); the database keeps only its hash, with the
//! person, a form token and when it was last used ([`crate::app::staff::StaffSession`]). A request
//! that changes anything must come from the console's own pages: a browser's `Sec-Fetch-Site`
//! or `Origin` naming another site is refused before routing, and a signed-in form must carry
//! its session's form token.

use axum::body::Bytes;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::super::AppState;
use super::flash::Flash;
use super::{Problem, see_other};
use crate::app;
use crate::app::Actor;
use crate::app::staff::StaffSession;
use crate::domain::SessionUse;
use crate::http::ClientIp;

/// The cookie's name: with `__Host-`, a browser takes it only over https, for the whole host,
/// from the host itself.
fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-canvass_session"
    } else {
        "canvass_session"
    }
}

/// Whether the console is served over https (`CANVASS_BASE_URL`), so that its cookie is
/// `Secure`.
pub fn secure(state: &AppState) -> bool {
    state.app.base_url.starts_with("https://")
}

/// The session secret a request's cookie carries.
pub fn presented(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(secure(state));
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` that opens a session in the browser; no `Max-Age`, so that it ends with the
/// browser, while the server ends it when idle.
pub fn open_cookie(state: &AppState, secret: &str) -> HeaderValue {
    let secure = secure(state);
    let attributes = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={secret}; Path=/; HttpOnly; SameSite=Strict{attributes}",
        cookie_name(secure)
    ))
    .expect("a session secret is URL-safe")
}

/// The `Set-Cookie` that forgets it.
pub fn closing_cookie(state: &AppState) -> HeaderValue {
    let secure = secure(state);
    let attributes = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{attributes}",
        cookie_name(secure)
    ))
    .expect("a fixed cookie")
}

/// The person signed in, for the handlers behind [`require_session`].
#[derive(Clone)]
pub struct Signed {
    pub session: StaffSession,
    /// The cookie's secret, to end the session with.
    pub secret: String,
    /// What the form that led here did, for this page to show.
    pub flash: Option<Flash>,
}

impl Signed {
    /// The person, as the application knows them.
    pub fn actor(&self) -> Actor {
        Actor::Staff(self.session.member.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Signed {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Signed>()
            .cloned()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// Lets a request through with a live session, and sends anyone else to sign in.
pub async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(secret) = presented(&state, request.headers()) else {
        return to_sign_in(&request);
    };
    match app::staff::session(&state.app, &secret, used_by(request.headers())).await {
        Ok(Some(session)) => {
            let headers = request.headers();
            // A page the person asked for shows the message; the page's own refreshes and
            // partials leave it for the page.
            let shows = Flash::carried(headers, secure(&state))
                && !headers.contains_key("hx-request")
                && used_by(headers) == SessionUse::Person;
            let flash = Flash::presented(headers, &secret, secure(&state)).filter(|_| shows);
            request.extensions_mut().insert(Signed {
                session,
                secret,
                flash,
            });
            let mut response = next.run(request).await;
            let page = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|kind| kind.as_bytes().starts_with(b"text/html"));
            if shows && page && !response.status().is_redirection() {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, Flash::shown(&state));
            }
            response
        }
        Ok(None) => {
            let mut response = to_sign_in(&request);
            response
                .headers_mut()
                .insert(header::SET_COOKIE, closing_cookie(&state));
            response
        }
        Err(error) => Problem::from(error).page(&state, None),
    }
}

/// Who made a request: a page's live stream (an `EventSource`, which accepts only
/// `text/event-stream`) and its timed refreshes (which send `X-Canvass-Refresh`) are the page's
/// own; anything else is the person's.
fn used_by(headers: &HeaderMap) -> SessionUse {
    let streams = headers
        .get(header::ACCEPT)
        .is_some_and(|accept| accept.as_bytes() == b"text/event-stream");
    if streams || headers.contains_key("x-canvass-refresh") {
        SessionUse::Page
    } else {
        SessionUse::Person
    }
}

/// To the sign-in page; htmx follows `HX-Redirect` rather than swapping the page in.
fn to_sign_in(request: &Request) -> Response {
    if request.headers().contains_key("hx-request") {
        return (
            StatusCode::UNAUTHORIZED,
            [("hx-redirect", HeaderValue::from_static("/admin/login"))],
        )
            .into_response();
    }
    see_other("/admin/login")
}

/// Refuses, before routing, a request that would change something and that a browser says
/// comes from another site: `Sec-Fetch-Site` other than `same-origin`, or an `Origin` other
/// than the console's own (the scheme asked with, as [`ClientIp::scheme`] tells it, and the
/// host and port asked). A client that sends neither (a script) is not a browser tricked into
/// it; the form token still stands in its way.
pub async fn same_origin_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
    let scheme = ClientIp::scheme(peer, request.headers(), &state.trusted_proxies);
    if reads || from_same_origin(request.headers(), scheme) {
        return next.run(request).await;
    }
    tracing::warn!("console: a cross-site request was refused");
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Refused: this request came from another site. Use the console's own pages.",
    )
        .into_response()
}

fn from_same_origin(headers: &HeaderMap, scheme: &str) -> bool {
    let text = |name| headers.get(name).and_then(|value| value.to_str().ok());
    // A browser that sends Sec-Fetch-Site says exactly where the request comes from, and no
    // page can forge it; its Origin may be "null" for the console's own forms (no referrer).
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin";
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else {
        return true;
    };
    let Some(host) = text(header::HOST.as_str()) else {
        return false;
    };
    // `Origin` is scheme://host[:port]; the request's Host is host[:port]. "null" (an opaque
    // origin: a sandboxed frame, a data: page) matches nothing, and a page served over the
    // other scheme is another origin.
    origin.split_once("://").is_some_and(|(theirs, authority)| {
        theirs.eq_ignore_ascii_case(scheme) && authority.eq_ignore_ascii_case(host)
    })
}

/// A form's fields as posted, in order, a repeated one (ticked boxes) kept whole: for forms
/// whose fields vary with the button pressed.
#[derive(serde::Deserialize)]
#[serde(transparent)]
pub struct Posted(Vec<(String, String)>);

impl Posted {
    /// The first value of field `name`, or blank.
    pub fn one(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_default()
    }

    /// Every value of field `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }
}

/// A form posted by the signed-in person, carrying their session's form token; its fields
/// besides the token as `T`.
pub struct SessionForm<T>(pub Signed, pub T);

/// The field every signed-in form carries.
pub const FORM_TOKEN: &str = "form_token";

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for SessionForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let signed = request
            .extensions()
            .get::<Signed>()
            .cloned()
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let posted: Posted = serde_urlencoded::from_bytes(&body)
            .map_err(|_| (StatusCode::BAD_REQUEST, "the form could not be read").into_response())?;
        let expected = signed.session.form_token.as_bytes();
        if !bool::from(posted.one(FORM_TOKEN).as_bytes().ct_eq(expected)) {
            return Err((
                StatusCode::FORBIDDEN,
                "Refused: the form is out of date or not from this console. Go back, reload \
                 the page and try again.",
            )
                .into_response());
        }
        let form = serde_urlencoded::from_bytes(&body)
            .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response())?;
        Ok(Self(signed, form))
    }
}
