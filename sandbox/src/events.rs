//! Events are one resource seen through two APIs, as on the real server: core/v1 `Event` (what
//! `kubectl get events` and `kubectl describe` read) and events.k8s.io/v1 `Event` (what
//! kube-rs's `Recorder` and client-go's newer recorder write). They are stored once, in the
//! core shape (the registry marks events.k8s.io Events as an alias of core Events), and
//! converted at the API boundary with the renames of k8s.io/kubernetes
//! `pkg/apis/events/v1/conversion.go`: `regarding` ↔ `involvedObject`, `note` ↔ `message`,
//! `reportingController` ↔ `reportingComponent`, `deprecatedSource` ↔ `source`,
//! `deprecated{First,Last}Timestamp` ↔ `{first,last}Timestamp`, `deprecatedCount` ↔ `count`.
//!
//! Beyond the real server: an events.k8s.io Event without the deprecated fields gets the core
//! fields older readers rely on, derived from the new ones (`source` from the reporting
//! controller and instance, the first and last timestamps from `eventTime` and `series`,
//! `count` from `series` or 1). The way back leaves out a core field equal to what would be
//! derived, so a round trip returns what was written, and a patch of `series` through
//! events.k8s.io (the Recorder's repeat) moves `count` and `lastTimestamp` along.
//!
//! Admission webhooks see writes through either API as core/v1 Events (the real server sends
//! the version a webhook asks for).

use serde_json::{Map, Value, json};

const KIND: &str = "Event";
const CORE: &str = "v1";
const EVENTS_V1: &str = "events.k8s.io/v1";

/// (events.k8s.io/v1 field, core/v1 field) for the fields that are renamed.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// `obj` as an Event of `to_api_version`, when it is an Event of the other events API;
/// `None` for anything else (other kinds, or already at that version).
pub fn convert(obj: &Value, to_api_version: &str) -> Option<Value> {
    if obj.get("kind").and_then(Value::as_str) != Some(KIND) {
        return None;
    }
    match (
        obj.get("apiVersion").and_then(Value::as_str)?,
        to_api_version,
    ) {
        (EVENTS_V1, CORE) => Some(to_core(obj)),
        (CORE, EVENTS_V1) => Some(to_events_v1(obj)),
        _ => None,
    }
}

/// An events.k8s.io/v1 field selector label as it reads a stored (core) Event: the real
/// server's field label conversion for events.k8s.io.
pub fn core_field_label(label: &str) -> String {
    if let Some(rest) = label.strip_prefix("regarding.") {
        return format!("involvedObject.{rest}");
    }
    match RENAMES.iter().find(|(v1, _)| *v1 == label) {
        Some((_, core)) => (*core).to_string(),
        None => label.to_string(),
    }
}

/// Go's zero values, which the real server omits (`omitempty`) and treats as unset.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// An RFC 3339 time (a MicroTime such as `eventTime`) at second precision, as a `Time`.
fn to_seconds(t: &Value) -> Option<Value> {
    let ts: jiff::Timestamp = t.as_str()?.parse().ok()?;
    Some(json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// The core fields an events.k8s.io Event implies when it does not carry them.
struct Derived {
    source: Option<Value>,
    first: Option<Value>,
    last: Option<Value>,
    count: Value,
}

impl Derived {
    /// From an Event of either shape; `controller` names its reporting controller field.
    fn of(event: &Map<String, Value>, controller: &str) -> Self {
        let text = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("");
        let mut source = Map::new();
        for (key, value) in [
            ("component", text(controller)),
            ("host", text("reportingInstance")),
        ] {
            if !value.is_empty() {
                source.insert(key.into(), json!(value));
            }
        }
        let event_time = event.get("eventTime");
        let series = event.get("series").filter(|s| !is_zero(s));
        let observed = series.and_then(|s| s.get("lastObservedTime"));
        Self {
            source: (!source.is_empty()).then_some(Value::Object(source)),
            first: event_time.and_then(to_seconds),
            last: observed.or(event_time).and_then(to_seconds),
            count: series
                .and_then(|s| s.get("count"))
                .filter(|c| !is_zero(c))
                .cloned()
                .unwrap_or_else(|| json!(1)),
        }
    }

    /// The derived value of a core field, if it has one.
    fn get(&self, core_field: &str) -> Option<&Value> {
        match core_field {
            "source" => self.source.as_ref(),
            "firstTimestamp" => self.first.as_ref(),
            "lastTimestamp" => self.last.as_ref(),
            "count" => Some(&self.count),
            _ => None,
        }
    }
}

/// events.k8s.io/v1 → core/v1.
pub fn to_core(event: &Value) -> Value {
    let Some(src) = event.as_object() else {
        return event.clone();
    };
    let mut out = Map::new();
    for (key, value) in src {
        // Core-only names are unknown fields in events.k8s.io (the real server prunes them).
        let key = key.as_str();
        if is_zero(value) || RENAMES.iter().any(|(_, core)| *core == key) {
            continue;
        }
        let key = RENAMES
            .iter()
            .find(|(v1, _)| *v1 == key)
            .map_or(key, |(_, core)| core);
        out.insert(key.to_string(), value.clone());
    }
    let derived = Derived::of(src, "reportingController");
    for field in ["source", "firstTimestamp", "lastTimestamp", "count"] {
        if !out.contains_key(field)
            && let Some(v) = derived.get(field)
        {
            out.insert(field.to_string(), v.clone());
        }
    }
    // Never absent in the core shape (kube-rs's core Event requires it).
    out.entry("involvedObject").or_insert_with(|| json!({}));
    out.insert("apiVersion".into(), json!(CORE));
    out.insert("kind".into(), json!(KIND));
    Value::Object(out)
}

/// core/v1 → events.k8s.io/v1.
pub fn to_events_v1(event: &Value) -> Value {
    let Some(src) = event.as_object() else {
        return event.clone();
    };
    let derived = Derived::of(src, "reportingComponent");
    let mut out = Map::new();
    for (key, value) in src {
        let key = key.as_str();
        if is_zero(value)
            || RENAMES.iter().any(|(v1, _)| *v1 == key)
            || derived.get(key) == Some(value)
        {
            continue;
        }
        let key = RENAMES
            .iter()
            .find(|(_, core)| *core == key)
            .map_or(key, |(v1, _)| v1);
        out.insert(key.to_string(), value.clone());
    }
    out.insert("apiVersion".into(), json!(EVENTS_V1));
    out.insert("kind".into(), json!(KIND));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Value {
        json!({"name": "web-0.17f", "namespace": "default", "uid": "u-1", "resourceVersion": "42"})
    }

    /// What kube-rs's `Recorder` creates.
    fn recorded() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": meta(),
            "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "namespace": "default", "uid": "p-1"},
            "related": {"kind": "Node", "name": "n1"},
            "note": "Pod should schedule on node n1",
            "reason": "Nominated",
            "action": "Scheduling",
            "type": "Normal",
            "eventTime": "2025-03-01T10:00:05.123456Z",
            "reportingController": "capstan",
            "reportingInstance": "capstan-7f",
        })
    }

    /// What client-go's legacy (core) recorder creates.
    fn legacy() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": meta(),
            "involvedObject": {"kind": "Node", "name": "n1", "uid": "n-1"},
            "message": "Node n1 status is now: NodeReady",
            "reason": "NodeReady",
            "type": "Normal",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2025-03-01T09:00:00Z",
            "lastTimestamp": "2025-03-01T10:00:00Z",
            "count": 3,
        })
    }

    #[test]
    fn events_v1_to_core() {
        let core = convert(&recorded(), "v1").expect("an events.k8s.io Event");
        assert_eq!(
            core,
            json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": meta(),
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "namespace": "default", "uid": "p-1"},
                "related": {"kind": "Node", "name": "n1"},
                "message": "Pod should schedule on node n1",
                "reason": "Nominated",
                "action": "Scheduling",
                "type": "Normal",
                "eventTime": "2025-03-01T10:00:05.123456Z",
                "reportingComponent": "capstan",
                "reportingInstance": "capstan-7f",
                // Derived for older readers:
                "source": {"component": "capstan", "host": "capstan-7f"},
                "firstTimestamp": "2025-03-01T10:00:05Z",
                "lastTimestamp": "2025-03-01T10:00:05Z",
                "count": 1,
            })
        );
    }

    #[test]
    fn core_to_events_v1() {
        let v1 = convert(&legacy(), "events.k8s.io/v1").expect("a core Event");
        assert_eq!(
            v1,
            json!({
                "apiVersion": "events.k8s.io/v1",
                "kind": "Event",
                "metadata": meta(),
                "regarding": {"kind": "Node", "name": "n1", "uid": "n-1"},
                "note": "Node n1 status is now: NodeReady",
                "reason": "NodeReady",
                "type": "Normal",
                "deprecatedSource": {"component": "kubelet", "host": "n1"},
                "deprecatedFirstTimestamp": "2025-03-01T09:00:00Z",
                "deprecatedLastTimestamp": "2025-03-01T10:00:00Z",
                "deprecatedCount": 3,
            })
        );
    }

    #[test]
    fn round_trips() {
        for v1 in [
            recorded(),
            // Explicit deprecated fields that differ from the derived ones survive.
            {
                let mut e = recorded();
                e["deprecatedSource"] = json!({"component": "old"});
                e["deprecatedFirstTimestamp"] = json!("2025-03-01T09:00:00Z");
                e["deprecatedLastTimestamp"] = json!("2025-03-01T09:30:00Z");
                e["deprecatedCount"] = json!(7);
                e["series"] =
                    json!({"count": 2, "lastObservedTime": "2025-03-01T10:10:00.000001Z"});
                e
            },
        ] {
            assert_eq!(to_events_v1(&to_core(&v1)), v1);
        }
        let mut modern_core = to_core(&recorded());
        modern_core["count"] = json!(4);
        for core in [legacy(), modern_core] {
            assert_eq!(to_core(&to_events_v1(&core)), core);
        }
    }

    #[test]
    fn series_moves_count_and_last_seen() {
        // The Recorder's repeat: a merge patch of `series` onto the events.k8s.io view.
        let mut view = to_events_v1(&to_core(&recorded()));
        view["series"] = json!({"count": 2, "lastObservedTime": "2025-03-01T10:03:00.5Z"});
        let core = to_core(&view);
        assert_eq!(core["count"], json!(2));
        assert_eq!(core["lastTimestamp"], json!("2025-03-01T10:03:00Z"));
        assert_eq!(core["firstTimestamp"], json!("2025-03-01T10:00:05Z"));
    }

    #[test]
    fn zero_values_are_unset() {
        // client-go sends the zero values of the fields it does not use.
        let mut e = recorded();
        e["deprecatedSource"] = json!({});
        e["deprecatedCount"] = json!(0);
        e["deprecatedFirstTimestamp"] = Value::Null;
        e["series"] = Value::Null;
        assert_eq!(to_core(&e), to_core(&recorded()));
        let bare = to_core(
            &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta()}),
        );
        assert_eq!(bare["involvedObject"], json!({}));
        assert_eq!(bare["count"], json!(1));
        assert!(bare.get("source").is_none() && bare.get("firstTimestamp").is_none());
    }

    #[test]
    fn only_events_of_the_other_api_convert() {
        assert!(convert(&recorded(), "events.k8s.io/v1").is_none());
        assert!(convert(&legacy(), "v1").is_none());
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta()});
        assert!(convert(&pod, "events.k8s.io/v1").is_none());
        let custom = json!({"apiVersion": "example.com/v1", "kind": "Event"});
        assert!(convert(&custom, "v1").is_none());
    }

    #[test]
    fn field_labels() {
        assert_eq!(core_field_label("regarding.name"), "involvedObject.name");
        assert_eq!(core_field_label("regarding.uid"), "involvedObject.uid");
        assert_eq!(
            core_field_label("reportingController"),
            "reportingComponent"
        );
        for same in ["reason", "type", "metadata.name", "involvedObject.kind"] {
            assert_eq!(core_field_label(same), same);
        }
    }
}
