//! The counters canvass exposes at `/metrics`: the HTTP service's and the worker's. One registry
//! per process (per application in tests), so that services started side by side count apart.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// The route's pattern (`/u/{token}`), never the path itself, which holds the token.
    pub(crate) route: String,
    pub(crate) method: String,
    pub(crate) status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: &'static str,
}

/// The counters the service exposes. One registry per application, so that tests running
/// several in one process count apart.
pub struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub unsubscribes: Counter,
    pub preference_changes: Counter,
    pub erasures: Counter,
    /// Messages the server (or the outbox) accepted.
    pub sent: Counter,
    /// Deliveries skipped at send time: the person no longer qualifies.
    pub skipped: Counter,
    /// Deliveries given up: refused for good, or out of retries.
    pub failed: Counter,
    /// Attempts deferred to be tried again later.
    pub retried: Counter,
    /// Messages accepted per second, over the last few seconds of sending.
    pub send_rate: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Attempts put back because the server could not be used or put the message off, by why.
    pub(crate) deferred: Family<ReasonLabels, Counter>,
    /// Deliveries queued in campaigns being sent, due or waiting for a retry.
    pub queue_depth: Gauge,
    /// How long the oldest delivery due has waited, in seconds (0 when none is).
    pub oldest_due_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Campaigns paused (by staff, or by the worker for what needs a person).
    pub paused_campaigns: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("canvass");
        let requests = Family::<RequestLabels, Counter>::default();
        let unsubscribes = Counter::default();
        let preference_changes = Counter::default();
        let erasures = Counter::default();
        let sent = Counter::default();
        let skipped = Counter::default();
        let failed = Counter::default();
        let retried = Counter::default();
        let send_rate = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let deferred = Family::<ReasonLabels, Counter>::default();
        let queue_depth = Gauge::default();
        let oldest_due_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let paused_campaigns = Gauge::default();
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
        registry.register(
            "deliveries_sent",
            "Messages handed over and accepted",
            sent.clone(),
        );
        registry.register(
            "deliveries_skipped",
            "Deliveries skipped because the person no longer qualified when it was their turn",
            skipped.clone(),
        );
        registry.register(
            "deliveries_failed",
            "Deliveries given up: refused for good by the server, or out of retries",
            failed.clone(),
        );
        registry.register(
            "deliveries_retried",
            "Send attempts deferred to be retried later",
            retried.clone(),
        );
        registry.register(
            "send_rate",
            "Messages accepted per second over the last few seconds",
            send_rate.clone(),
        );
        registry.register(
            "deliveries_deferred",
            "Send attempts put back, by reason: the server could not be used (connection, \
             throttled, outbox, login, tls, sender) or put the message off (deferred)",
            deferred.clone(),
        );
        registry.register(
            "queue_depth",
            "Deliveries queued in campaigns being sent, due now or waiting for a retry",
            queue_depth.clone(),
        );
        registry.register(
            "oldest_due_delivery_seconds",
            "How long the oldest delivery due has waited to go, in seconds",
            oldest_due_seconds.clone(),
        );
        registry.register(
            "paused_campaigns",
            "Campaigns paused, by staff or by the worker for what needs a person",
            paused_campaigns.clone(),
        );
        Self {
            registry,
            requests,
            unsubscribes,
            preference_changes,
            erasures,
            sent,
            skipped,
            failed,
            retried,
            send_rate,
            deferred,
            queue_depth,
            oldest_due_seconds,
            paused_campaigns,
        }
    }

    /// The counter of attempts put back for `reason`.
    pub fn deferred(&self, reason: &'static str) -> Counter {
        self.deferred
            .get_or_create(&ReasonLabels { reason })
            .clone()
    }

    /// The counters in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
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
