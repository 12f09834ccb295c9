//! The HTTP service: the public pages (one-click unsubscribe, the preference centre, sign-up,
//! complaints), the staff API (`api`, `/api/v1`), the staff console (`console`, `/admin`), the
//! mail providers' webhooks (`hooks`), and health and metrics (`ops`).
//!
//! [`Application::build`] binds the listener and assembles the router, so that tests start the
//! real service on port 0 and talk to it over HTTP. Request logs name the route pattern
//! (`/u/{token}`), never the path: the token in it opens someone's preferences.

mod api;
mod client_ip;
mod complaint;
mod console;
mod hooks;
mod links;
mod ops;
mod pages;
mod serve;
mod signup;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::routing::get;
use axum::{Router, middleware};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use crate::metrics::Metrics;
pub use client_ip::{ClientIp, parse_trusted_proxies};
pub use ops::WorkerHealth;

use crate::app::{App, AppError};
use crate::mail::token::SigningKeys;
use pages::Pages;

/// The largest request body the public pages take: the preference form is a few hundred bytes.
const BODY_LIMIT: usize = 16 * 1024;
/// The largest the staff API takes: a campaign of 1 MiB of HTML, escaped in JSON.
const API_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// A request that takes longer is answered 408 and abandoned.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Pages hold personal data and the forms act at once: no caching, no framing, no scripts.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The use-cases every handler calls.
    app: App,
    keys: Arc<SigningKeys>,
    pages: Arc<Pages>,
    /// The staff console's pages.
    console: Arc<Pages>,
    /// The console's contact imports under way or done.
    imports: Arc<console::Imports>,
    /// Drafts tried in the console's composer.
    trials: Arc<console::Trials>,
    metrics: Arc<Metrics>,
    /// Who the emails come from, as the pages name them.
    sender: Arc<str>,
    signup_limiter: Arc<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
    /// Proxies whose `X-Forwarded-For` names the client.
    trusted_proxies: Arc<[ipnet::IpNet]>,
    /// The worker beside the service, when there is one.
    worker: Option<Arc<WorkerHealth>>,
    /// The bearer token that reads `/metrics` here; `None`: it answers 404.
    metrics_token: Option<Arc<str>>,
}

/// Who may read `/metrics`: what it counts (sign-in failures, operations) is not for the
/// public. With neither, `/metrics` answers 404.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    /// Read on the service's own address with `Authorization: Bearer` this token.
    pub token: Option<Arc<str>>,
    /// Served alone, without a token, on this address (`CANVASS_METRICS_LISTEN`).
    pub listen: Option<SocketAddr>,
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

/// The service's settings, resolved by the caller.
pub struct ServiceSettings {
    /// The use-cases, and who sends: the pages name the organisation, and their footers carry the
    /// imprint and the privacy notice.
    pub app: App,
    /// Verify the links.
    pub keys: SigningKeys,
    pub listen: SocketAddr,
    pub metrics: Arc<Metrics>,
    /// Proxies whose `X-Forwarded-For` names the client (`CANVASS_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The worker beside the service, for `/healthz`; `None` without one.
    pub worker: Option<Arc<WorkerHealth>>,
    /// Who may read `/metrics`.
    pub metrics_access: MetricsAccess,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `/metrics` alone, on an address of its own.
    metrics_listener: Option<TcpListener>,
    metrics: Arc<Metrics>,
    limits: serve::Limits,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the router.
    pub async fn build(settings: ServiceSettings) -> std::io::Result<Self> {
        let app = settings.app;
        let pages = Pages::new(&app.publisher, pages::PublicPage::sources())
            .map_err(std::io::Error::other)?;
        let console = Pages::new(&app.publisher, console::Template::sources())
            .map_err(std::io::Error::other)?;
        let state = AppState {
            keys: Arc::new(settings.keys),
            pages: Arc::new(pages),
            console: Arc::new(console),
            imports: Arc::default(),
            trials: Arc::default(),
            metrics: settings.metrics,
            sender: app.publisher.organisation.as_str().into(),
            app,
            signup_limiter: signup::signup_limiter(),
            trusted_proxies: settings.trusted_proxies.into(),
            worker: settings.worker,
            metrics_token: settings.metrics_access.token,
        };
        let listener = TcpListener::bind(settings.listen).await?;
        let metrics_listener = match settings.metrics_access.listen {
            Some(address) => Some(TcpListener::bind(address).await?),
            None => None,
        };
        Ok(Self {
            listener,
            metrics: state.metrics.clone(),
            router: router(state),
            metrics_listener,
            limits: serve::Limits::for_this_process(),
        })
    }

    /// Where `/metrics` is served alone, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Some(metrics_listener) = self.metrics_listener else {
            return serve::serve(self.listener, self.router, self.limits, shutdown).await;
        };
        let (stop, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let stopped = |mut stopping: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let metrics = Router::new()
            .route("/metrics", get(ops::metrics))
            .with_state(self.metrics);
        let (service, metrics) = tokio::join!(
            serve::serve(
                self.listener,
                self.router,
                self.limits,
                stopped(stopping.clone())
            ),
            serve::serve(
                metrics_listener,
                metrics,
                serve::Limits { connections: 64 },
                stopped(stopping)
            ),
        );
        service.and(metrics)
    }
}

/// Which status answers which refusal, for every door that speaks HTTP.
impl AppError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } | Self::Import(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Denied(_) => StatusCode::FORBIDDEN,
            Self::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            // The mail server, not canvass, said no.
            Self::Unsent(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

fn router(state: AppState) -> Router {
    let on_every_response = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    let public = Router::new()
        .merge(links::router())
        .route("/subscribe", axum::routing::post(signup::subscribe))
        .route(
            "/complaint",
            get(complaint::page)
                .post(complaint::complain)
                // The form is canvass's own page: another site cannot make its visitors send
                // complaints (and acknowledgements) in their name.
                .route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    console::same_origin_only,
                )),
        )
        .route(
            "/confirm/{token}",
            get(signup::confirm_page).post(signup::confirm),
        )
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics_with_token))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT));
    let api = api::router(state.clone()).layer(DefaultBodyLimit::max(API_BODY_LIMIT));
    let console = console::router(state.clone()).layer(DefaultBodyLimit::max(API_BODY_LIMIT));
    // Providers batch their events (SendGrid's up to a few hundred kilobytes).
    let hooks = hooks::router().layer(DefaultBodyLimit::max(API_BODY_LIMIT));
    Router::new()
        .merge(public)
        .merge(hooks)
        .merge(api)
        .merge(console)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            ops::count_requests,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                tracing::info_span!("request", method = %request.method(), route)
            }),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(on_every_response(header::CACHE_CONTROL, "no-store"))
        .layer(on_every_response(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .with_state(state)
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
