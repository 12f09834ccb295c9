//! Operations: the health check and the Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::AppState;
use crate::app::Unready;
use crate::metrics::{Metrics, RequestLabels};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether the worker `serve` runs beside the service is sending, as `/healthz` reports it.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    stopped: AtomicBool,
}

impl WorkerHealth {
    /// The worker has stopped on an error (and is being restarted, or has been given up).
    pub fn set_stopped(&self, stopped: bool) {
        self.stopped.store(stopped, Ordering::Relaxed);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// 200 while the database answers, the suppression journal can be written and, under
/// `serve`, the worker runs.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.app.readiness().await {
        Ok(()) => {}
        Err(error @ Unready::Database(_)) => {
            tracing::error!(%error, "health check");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response();
        }
        Err(Unready::JournalBroken(_)) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the suppression journal cannot be written; nothing is sent meanwhile\n",
            )
                .into_response();
        }
    }
    match state
        .worker
        .as_deref()
        .is_some_and(WorkerHealth::is_stopped)
    {
        true => (StatusCode::SERVICE_UNAVAILABLE, "the worker has stopped\n").into_response(),
        false => (StatusCode::OK, "ok\n").into_response(),
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

/// `/metrics` on the service's own address: only with the bearer token
/// (`CANVASS_METRICS_TOKEN`), and without one configured, not there at all (404).
pub async fn metrics_with_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = &state.metrics_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    // Compared as digests, in constant time: neither the time nor the length tells.
    let digest = |text: &str| Sha256::digest(text.as_bytes());
    if bool::from(digest(presented).ct_eq(&digest(token))) {
        return metrics(State(state.metrics.clone())).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is needed\n",
    )
        .into_response()
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
    // Any token is a method to HTTP: the label takes the known ones, so that made-up methods
    // cannot grow the series (and the memory they take) without bound.
    let method = match *request.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => request.method().as_str(),
        _ => "other",
    }
    .to_owned();
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
