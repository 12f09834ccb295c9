//! Operations: the health check and the Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::AppState;
use crate::metrics::{Metrics, RequestLabels};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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

/// 200 while the database answers and, under `serve`, the worker runs.
pub async fn healthz(State(state): State<AppState>) -> Response {
    if let Err(error) = state.store.ping().await {
        tracing::error!(%error, "health check: database unreachable");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response();
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
