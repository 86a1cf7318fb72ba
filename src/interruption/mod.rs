//! Interruption messages, pure: EventBridge envelopes (as they arrive in the SQS queue's message
//! bodies) parsed into a typed [`Message`] with the instance ids it is about, and what to do
//! about each kind. No kube, no tokio, no AWS: the controller (`controllers::interruption`)
//! receives, looks NodeClaims up and acts.
//!
//! The kinds and actions are Karpenter's: a spot interruption warning, an AWS Health scheduled
//! change for EC2 instances, and an instance stopping / stopped / shutting down / terminated all
//! mean cordon and drain now; a rebalance recommendation is only worth an Event.

#[cfg(test)]
mod tests;

use serde_json::Value;

pub const SPOT_INTERRUPTION: &str = "EC2 Spot Instance Interruption Warning";
pub const REBALANCE_RECOMMENDATION: &str = "EC2 Instance Rebalance Recommendation";
pub const HEALTH_EVENT: &str = "AWS Health Event";
pub const STATE_CHANGE: &str = "EC2 Instance State-change Notification";

/// What a message says is happening to its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    SpotInterruption,
    RebalanceRecommendation,
    /// An AWS Health scheduled change (retirement, maintenance) of EC2 instances.
    ScheduledChange,
    /// The instance's new state, e.g. `stopping`.
    StateChange(String),
}

/// What the controller does with a message's NodeClaims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Taint, launch replacements, delete the NodeClaim (termination drains it).
    CordonAndDrain,
    /// Only an Event: the instance keeps running.
    NoAction,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: Kind,
    /// EC2 instance ids (`i-...`) the message is about.
    pub instance_ids: Vec<String>,
    /// The envelope's `id`.
    pub id: String,
    /// The envelope's `time` (RFC 3339), when the event happened.
    pub time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("missing or malformed field {0}")]
    Missing(&'static str),
    /// A well-formed event of a kind (or a Health event of a service / category) not handled.
    #[error("unsupported event: {0}")]
    Unsupported(String),
}

impl Kind {
    /// The `message_type` label of Karpenter's interruption metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Kind::SpotInterruption => "spot_interrupted",
            Kind::RebalanceRecommendation => "rebalance_recommendation",
            Kind::ScheduledChange => "scheduled_change",
            Kind::StateChange(_) => "state_change",
        }
    }

    pub fn action(&self) -> Action {
        match self {
            Kind::SpotInterruption | Kind::ScheduledChange => Action::CordonAndDrain,
            Kind::StateChange(s)
                if matches!(
                    s.as_str(),
                    "stopping" | "stopped" | "shutting-down" | "terminated"
                ) =>
            {
                Action::CordonAndDrain
            }
            Kind::StateChange(_) | Kind::RebalanceRecommendation => Action::NoAction,
        }
    }

    /// Event reason and message, Karpenter's words.
    pub fn event(&self) -> (&'static str, &'static str) {
        match self {
            Kind::SpotInterruption => {
                ("SpotInterrupted", "Spot interruption warning was triggered")
            }
            Kind::RebalanceRecommendation => (
                "SpotRebalanceRecommendation",
                "Spot rebalance recommendation was triggered",
            ),
            Kind::ScheduledChange => (
                "InstanceUnhealthy",
                "An unhealthy warning was triggered for the instance",
            ),
            Kind::StateChange(s) if s == "stopping" || s == "stopped" => {
                ("InstanceStopping", "Instance is stopping")
            }
            Kind::StateChange(_) => ("InstanceTerminating", "Instance is terminating"),
        }
    }
}

/// Parses one SQS message body. Never panics: anything else is a [`ParseError`].
pub fn parse(body: &str) -> Result<Message, ParseError> {
    let v: Value = serde_json::from_str(body).map_err(|e| ParseError::Json(e.to_string()))?;
    let detail_type = str_field(&v, "detail-type").ok_or(ParseError::Missing("detail-type"))?;
    let detail = v
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or(ParseError::Missing("detail"))?;
    let (kind, instance_ids) = match detail_type {
        SPOT_INTERRUPTION => (Kind::SpotInterruption, vec![instance_id(detail)?]),
        REBALANCE_RECOMMENDATION => (Kind::RebalanceRecommendation, vec![instance_id(detail)?]),
        STATE_CHANGE => {
            let state = str_field(detail, "state").ok_or(ParseError::Missing("detail.state"))?;
            (
                Kind::StateChange(state.to_string()),
                vec![instance_id(detail)?],
            )
        }
        HEALTH_EVENT => (Kind::ScheduledChange, scheduled_change(detail)?),
        other => return Err(ParseError::Unsupported(other.to_string())),
    };
    Ok(Message {
        kind,
        instance_ids,
        id: str_field(&v, "id").unwrap_or_default().to_string(),
        time: str_field(&v, "time").map(str::to_string),
    })
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn instance_id(detail: &Value) -> Result<String, ParseError> {
    str_field(detail, "instance-id")
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or(ParseError::Missing("detail.instance-id"))
}

/// The instances of an EC2 scheduled change; other Health events are not ours.
fn scheduled_change(detail: &Value) -> Result<Vec<String>, ParseError> {
    let service = str_field(detail, "service").unwrap_or_default();
    let category = str_field(detail, "eventTypeCategory").unwrap_or_default();
    if service != "EC2" || category != "scheduledChange" {
        return Err(ParseError::Unsupported(format!(
            "{HEALTH_EVENT} of {service}/{category}"
        )));
    }
    let ids: Vec<String> = detail
        .get("affectedEntities")
        .and_then(Value::as_array)
        .ok_or(ParseError::Missing("detail.affectedEntities"))?
        .iter()
        .filter_map(|e| str_field(e, "entityValue"))
        .filter(|id| id.starts_with("i-"))
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Err(ParseError::Missing("detail.affectedEntities[].entityValue"));
    }
    Ok(ids)
}
