//! The one Prometheus registry capstan serves on `/metrics` (health port), and the metric
//! families each part records into. Names follow Karpenter's where a counterpart exists.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// The endpoint path, e.g. `/validate/nodepool`.
    pub endpoint: String,
    /// `allowed`, `denied`, `patched`, or `error` (a malformed review, answered 400).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

/// Admission review counts and latencies.
#[derive(Clone)]
pub struct WebhookMetrics {
    pub requests: Family<WebhookLabels, Counter>,
    pub duration: Family<EndpointLabel, Histogram>,
}

impl WebhookMetrics {
    pub fn observe(&self, endpoint: &str, outcome: &str, took: Duration) {
        self.requests
            .get_or_create(&WebhookLabels {
                endpoint: endpoint.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.to_string(),
            })
            .observe(took.as_secs_f64());
    }
}

// 50 µs .. ~0.8 s: reviews are sub-millisecond; the tail is what matters.
fn review_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, 15))
}

/// Shared handle: cloned into every server and controller.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub webhook: WebhookMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("capstan");
        let webhook = WebhookMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(review_buckets),
        };
        registry.register(
            "webhook_requests",
            "Admission reviews answered, by endpoint and outcome",
            webhook.requests.clone(),
        );
        registry.register(
            "webhook_request_duration_seconds",
            "Time to decide an admission review, by endpoint",
            webhook.duration.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            webhook,
        }
    }

    /// The text exposition format (OpenMetrics), as `/metrics` serves it.
    pub fn render(&self) -> String {
        let registry = match self.registry.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_observations_are_rendered() {
        let m = Metrics::new();
        m.webhook
            .observe("/validate/nodepool", "denied", Duration::from_micros(300));
        m.webhook
            .observe("/validate/nodepool", "denied", Duration::from_micros(700));
        let text = m.render();
        assert!(
            text.contains(
                "capstan_webhook_requests_total{endpoint=\"/validate/nodepool\",outcome=\"denied\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "capstan_webhook_request_duration_seconds_count{endpoint=\"/validate/nodepool\"} 2"
            ),
            "{text}"
        );
    }
}
