//! Operations: the health check and the Prometheus metrics.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's pattern (`/u/{token}`), never the path itself, which holds the token.
    route: String,
    method: String,
    status: u16,
}

/// The counters the service exposes. One registry per application, so that tests running
/// several in one process count apart.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    pub unsubscribes: Counter,
    pub preference_changes: Counter,
    pub erasures: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("canvass");
        let requests = Family::<RequestLabels, Counter>::default();
        let unsubscribes = Counter::default();
        let preference_changes = Counter::default();
        let erasures = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "unsubscribes",
            "People unsubscribed from everything through a link",
            unsubscribes.clone(),
        );
        registry.register(
            "preference_changes",
            "Preference-centre saves that changed something",
            preference_changes.clone(),
        );
        registry.register(
            "erasures",
            "People who erased their data through the preference centre",
            erasures.clone(),
        );
        Self {
            registry,
            requests,
            unsubscribes,
            preference_changes,
            erasures,
        }
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(error) => {
            tracing::error!(%error, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response()
        }
    }
}

pub async fn metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Counts every answer by route pattern, method and status.
pub async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
