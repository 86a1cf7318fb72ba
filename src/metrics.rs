//! The one Prometheus registry capstan serves on `/metrics` (health port), and the metric
//! families each part records into. Names follow Karpenter's where a counterpart exists.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodePoolReason {
    pub nodepool: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodePoolLabel {
    pub nodepool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodePoolResource {
    pub nodepool: String,
    pub resource_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudMethod {
    pub provider: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudErrorLabels {
    pub provider: String,
    pub method: String,
    pub error: String,
}

/// The controllers' metrics, under Karpenter's names so that its dashboards work.
#[derive(Clone)]
pub struct ControllerMetrics {
    pub nodeclaims_created: Family<NodePoolReason, Counter>,
    pub nodeclaims_terminated: Family<NodePoolReason, Counter>,
    pub nodes_created: Family<NodePoolLabel, Counter>,
    pub pods_startup_duration: Histogram,
    pub scheduling_duration: Family<ControllerLabel, Histogram>,
    pub cloudprovider_duration: Family<CloudMethod, Histogram>,
    pub cloudprovider_errors: Family<CloudErrorLabels, Counter>,
    pub nodepools_usage: Family<NodePoolResource, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub nodepools_limit: Family<NodePoolResource, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub nodeclaims_disrupted: Family<NodePoolReason, Counter>,
    pub disruption_decisions: Family<DecisionLabels, Counter>,
    pub disruption_eligible_nodes: Family<ReasonLabel, Gauge>,
    pub disruption_evaluation_duration: Family<MethodLabel, Histogram>,
    pub nodepools_allowed_disruptions: Family<NodePoolReason, Gauge>,
    pub interruption_received: Family<MessageTypeLabel, Counter>,
    pub interruption_deleted: Counter,
    pub interruption_queue_duration: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageTypeLabel {
    /// `spot_interrupted`, `rebalance_recommendation`, `scheduled_change`, `state_change`.
    pub message_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `delete` or `replace`.
    pub decision: String,
    /// Lower case, as Karpenter labels it: `empty`, `underutilized`, `drifted`, `expired`.
    pub reason: String,
    /// `empty`, `single`, `multi`, or empty outside consolidation.
    pub consolidation_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

impl ControllerMetrics {
    pub fn observe_cloud(&self, provider: &str, method: &str, took: Duration, error: Option<&str>) {
        self.cloudprovider_duration
            .get_or_create(&CloudMethod {
                provider: provider.to_string(),
                method: method.to_string(),
            })
            .observe(took.as_secs_f64());
        if let Some(error) = error {
            self.cloudprovider_errors
                .get_or_create(&CloudErrorLabels {
                    provider: provider.to_string(),
                    method: method.to_string(),
                    error: error.to_string(),
                })
                .inc();
        }
    }
}

// 1 ms .. ~130 s: a simulation takes milliseconds, a launch seconds, a pod start minutes.
fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

/// Shared handle: cloned into every server and controller.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub webhook: WebhookMetrics,
    pub controllers: ControllerMetrics,
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
        let mut registry = Registry::default();
        let webhook = WebhookMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(review_buckets),
        };
        registry.register(
            "capstan_webhook_requests",
            "Admission reviews answered, by endpoint and outcome",
            webhook.requests.clone(),
        );
        registry.register(
            "capstan_webhook_request_duration_seconds",
            "Time to decide an admission review, by endpoint",
            webhook.duration.clone(),
        );
        let controllers = ControllerMetrics {
            nodeclaims_created: Family::default(),
            nodeclaims_terminated: Family::default(),
            nodes_created: Family::default(),
            pods_startup_duration: seconds_buckets(),
            scheduling_duration: Family::new_with_constructor(seconds_buckets),
            cloudprovider_duration: Family::new_with_constructor(seconds_buckets),
            cloudprovider_errors: Family::default(),
            nodepools_usage: Family::default(),
            nodepools_limit: Family::default(),
            nodeclaims_disrupted: Family::default(),
            disruption_decisions: Family::default(),
            disruption_eligible_nodes: Family::default(),
            disruption_evaluation_duration: Family::new_with_constructor(seconds_buckets),
            nodepools_allowed_disruptions: Family::default(),
            interruption_received: Family::default(),
            interruption_deleted: Counter::default(),
            interruption_queue_duration: seconds_buckets(),
        };
        let c = &controllers;
        registry.register(
            "karpenter_nodeclaims_created",
            "NodeClaims created, by NodePool and reason",
            c.nodeclaims_created.clone(),
        );
        registry.register(
            "karpenter_nodeclaims_terminated",
            "NodeClaims terminated, by NodePool and reason",
            c.nodeclaims_terminated.clone(),
        );
        registry.register(
            "karpenter_nodes_created",
            "Nodes registered for NodeClaims, by NodePool",
            c.nodes_created.clone(),
        );
        registry.register(
            "karpenter_pods_startup_duration_seconds",
            "Time from a pod's creation until it runs",
            c.pods_startup_duration.clone(),
        );
        registry.register(
            "karpenter_scheduler_scheduling_duration_seconds",
            "Duration of one scheduling simulation",
            c.scheduling_duration.clone(),
        );
        registry.register(
            "karpenter_cloudprovider_duration_seconds",
            "Duration of cloud provider calls, by method",
            c.cloudprovider_duration.clone(),
        );
        registry.register(
            "karpenter_cloudprovider_errors",
            "Cloud provider call failures, by method and error",
            c.cloudprovider_errors.clone(),
        );
        registry.register(
            "karpenter_nodepools_usage",
            "Resources the NodePool's nodes provide, by resource type",
            c.nodepools_usage.clone(),
        );
        registry.register(
            "karpenter_nodepools_limit",
            "The NodePool's limits, by resource type",
            c.nodepools_limit.clone(),
        );
        registry.register(
            "karpenter_nodeclaims_disrupted",
            "NodeClaims disrupted, by NodePool and reason",
            c.nodeclaims_disrupted.clone(),
        );
        registry.register(
            "karpenter_voluntary_disruption_decisions",
            "Disruption decisions carried out, by decision and reason",
            c.disruption_decisions.clone(),
        );
        registry.register(
            "karpenter_voluntary_disruption_eligible_nodes",
            "Nodes each disruption method could act on, budgets aside, by reason",
            c.disruption_eligible_nodes.clone(),
        );
        registry.register(
            "karpenter_voluntary_disruption_decision_evaluation_duration_seconds",
            "Time to compute one disruption decision, by method",
            c.disruption_evaluation_duration.clone(),
        );
        registry.register(
            "karpenter_nodepools_allowed_disruptions",
            "Nodes the NodePool's budgets allow to disrupt now, by reason",
            c.nodepools_allowed_disruptions.clone(),
        );
        registry.register(
            "karpenter_interruption_received_messages",
            "Interruption messages received, by message type",
            c.interruption_received.clone(),
        );
        registry.register(
            "karpenter_interruption_deleted_messages",
            "Interruption messages deleted from the queue",
            c.interruption_deleted.clone(),
        );
        registry.register(
            "karpenter_interruption_message_queue_duration_seconds",
            "Time from an interruption event until it was handled",
            c.interruption_queue_duration.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            webhook,
            controllers,
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

#[cfg(test)]
#[path = "metrics_dashboard_tests.rs"]
mod dashboard_tests;
