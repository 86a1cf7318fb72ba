//! `meta.k8s.io/v1 Table` responses for `kubectl get`: kubectl asks for them in Accept
//! (`application/json;as=Table;v=v1;g=meta.k8s.io`) and prints the server's columns as they come,
//! so cells are preformatted here (ages as "5m", pod readiness as "1/1"). Built-in kinds get the
//! columns the real server's printers produce; custom resources get `additionalPrinterColumns`
//! (evaluated with a small JSONPath subset), or NAME / AGE when the CRD declares none.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::Api;
use crate::object::{labels, meta, name};
use crate::registry::ResourceType;

/// Whether an Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.iter().any(|p| p.starts_with("g=meta.k8s.io"))
    })
}

/// Go's `duration.HumanDuration`, which kubectl uses for every AGE column.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of an RFC 3339 timestamp, `<unknown>` when absent or unparsable (as kubectl).
pub fn age(ts: Option<&str>) -> String {
    match ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn creation_age(obj: &Value) -> String {
    age(obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str))
}

fn s<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.to_string()
    }
}

fn int(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn col(name: &str, ty: &str, priority: i64) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": "", "priority": priority})
}

type Cells = fn(&Value) -> Vec<Value>;

fn pod_cells(p: &Value) -> Vec<Value> {
    let total = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let statuses = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
        .sum();
    let waiting = statuses
        .iter()
        .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str));
    let status = if p.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".to_string()
    } else if let Some(w) = waiting {
        w.to_string()
    } else if !s(p, "/status/reason").is_empty() {
        s(p, "/status/reason").to_string()
    } else {
        or_none(s(p, "/status/phase"))
    };
    vec![
        json!(name(p)),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        json!(creation_age(p)),
        json!(or_none(s(p, "/status/podIP"))),
        json!(or_none(s(p, "/spec/nodeName"))),
        json!(or_none(s(p, "/status/nominatedNodeName"))),
        json!("<none>"),
    ]
}

fn node_cells(n: &Value) -> Vec<Value> {
    let ready = n
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str));
    let mut status = match ready {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<&str> = labels(n)
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .collect()
        })
        .unwrap_or_default();
    let address = |ty: &str| {
        n.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("type").and_then(Value::as_str) == Some(ty))
            })
            .and_then(|x| x.get("address").and_then(Value::as_str))
            .unwrap_or("")
            .to_string()
    };
    vec![
        json!(name(n)),
        json!(status),
        json!(or_none(&roles.join(","))),
        json!(creation_age(n)),
        json!(s(n, "/status/nodeInfo/kubeletVersion")),
        json!(or_none(&address("InternalIP"))),
        json!(or_none(&address("ExternalIP"))),
        json!(or_none(s(n, "/status/nodeInfo/osImage"))),
        json!(or_none(s(n, "/status/nodeInfo/kernelVersion"))),
        json!(or_none(s(n, "/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

fn count_keys(v: &Value, ptr: &str) -> usize {
    v.pointer(ptr)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

fn deployment_cells(d: &Value) -> Vec<Value> {
    let containers = d
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let join = |key: &str| {
        containers
            .iter()
            .filter_map(|c| c.get(key).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(",")
    };
    let selector = d
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    vec![
        json!(name(d)),
        json!(format!(
            "{}/{}",
            int(d, "/status/readyReplicas"),
            d.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        )),
        json!(int(d, "/status/updatedReplicas")),
        json!(int(d, "/status/availableReplicas")),
        json!(creation_age(d)),
        json!(join("name")),
        json!(join("image")),
        json!(or_none(&selector)),
    ]
}

/// As the real server's event printer, which also serves events written through
/// events.k8s.io: `eventTime` when the first timestamp is unset, `series` for the last one and
/// the count, the reporting controller and instance when `source` is unset.
fn event_cells(e: &Value) -> Vec<Value> {
    let created = s(e, "/metadata/creationTimestamp");
    let first = [s(e, "/firstTimestamp"), s(e, "/eventTime"), created]
        .into_iter()
        .find(|t| !t.is_empty());
    let (last, count) = match e.get("series").filter(|v| v.is_object()) {
        Some(series) => (
            Some(s(series, "/lastObservedTime"))
                .filter(|t| !t.is_empty())
                .or(first),
            int(series, "/count"),
        ),
        None => (
            Some(s(e, "/lastTimestamp"))
                .filter(|t| !t.is_empty())
                .or(first),
            int(e, "/count"),
        ),
    };
    let kind = s(e, "/involvedObject/kind").to_lowercase();
    let object = match s(e, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let first_non_empty = |a: &'static str, b: &'static str| match s(e, a) {
        "" => s(e, b),
        v => v,
    };
    let component = first_non_empty("/source/component", "/reportingComponent");
    let source = match first_non_empty("/source/host", "/reportingInstance") {
        "" => component.to_string(),
        host => format!("{component}, {host}"),
    };
    vec![
        json!(age(last)),
        json!(s(e, "/type")),
        json!(s(e, "/reason")),
        json!(object),
        json!(s(e, "/message").trim()),
        json!(s(e, "/involvedObject/fieldPath")),
        json!(source),
        json!(age(first)),
        json!(if count == 0 { 1 } else { count }),
        json!(name(e)),
    ]
}

fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    }
}

fn pdb_cells(p: &Value) -> Vec<Value> {
    vec![
        json!(name(p)),
        json!(int_or_string(p.pointer("/spec/minAvailable"))),
        json!(int_or_string(p.pointer("/spec/maxUnavailable"))),
        json!(int(p, "/status/disruptionsAllowed")),
        json!(creation_age(p)),
    ]
}

/// Columns and the row function of a built-in kind; `None` means NAME / AGE.
fn built_in(rt: &ResourceType) -> Option<(Vec<Value>, Cells)> {
    let cols = |specs: &[(&str, &str, i64)]| -> Vec<Value> {
        specs.iter().map(|(n, t, p)| col(n, t, *p)).collect()
    };
    Some(match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => (
            cols(&[
                ("Name", "string", 0),
                ("Ready", "string", 0),
                ("Status", "string", 0),
                ("Restarts", "string", 0),
                ("Age", "string", 0),
                ("IP", "string", 1),
                ("Node", "string", 1),
                ("Nominated Node", "string", 1),
                ("Readiness Gates", "string", 1),
            ]),
            pod_cells,
        ),
        ("", "Node") => (
            cols(&[
                ("Name", "string", 0),
                ("Status", "string", 0),
                ("Roles", "string", 0),
                ("Age", "string", 0),
                ("Version", "string", 0),
                ("Internal-IP", "string", 1),
                ("External-IP", "string", 1),
                ("OS-Image", "string", 1),
                ("Kernel-Version", "string", 1),
                ("Container-Runtime", "string", 1),
            ]),
            node_cells,
        ),
        ("", "Namespace") => (
            cols(&[
                ("Name", "string", 0),
                ("Status", "string", 0),
                ("Age", "string", 0),
            ]),
            |n| {
                vec![
                    json!(name(n)),
                    json!(s(n, "/status/phase")),
                    json!(creation_age(n)),
                ]
            },
        ),
        ("", "ConfigMap") => (
            cols(&[
                ("Name", "string", 0),
                ("Data", "string", 0),
                ("Age", "string", 0),
            ]),
            |c| {
                vec![
                    json!(name(c)),
                    json!(count_keys(c, "/data") + count_keys(c, "/binaryData")),
                    json!(creation_age(c)),
                ]
            },
        ),
        ("", "Secret") => (
            cols(&[
                ("Name", "string", 0),
                ("Type", "string", 0),
                ("Data", "string", 0),
                ("Age", "string", 0),
            ]),
            |c| {
                vec![
                    json!(name(c)),
                    json!(s(c, "/type")),
                    json!(count_keys(c, "/data")),
                    json!(creation_age(c)),
                ]
            },
        ),
        ("apps", "Deployment") => (
            cols(&[
                ("Name", "string", 0),
                ("Ready", "string", 0),
                ("Up-to-date", "string", 0),
                ("Available", "string", 0),
                ("Age", "string", 0),
                ("Containers", "string", 1),
                ("Images", "string", 1),
                ("Selector", "string", 1),
            ]),
            deployment_cells,
        ),
        ("", "Event") => (
            cols(&[
                ("Last Seen", "string", 0),
                ("Type", "string", 0),
                ("Reason", "string", 0),
                ("Object", "string", 0),
                ("Message", "string", 0),
                ("Subobject", "string", 1),
                ("Source", "string", 1),
                ("First Seen", "string", 1),
                ("Count", "string", 1),
                ("Name", "string", 1),
            ]),
            event_cells,
        ),
        ("coordination.k8s.io", "Lease") => (
            cols(&[
                ("Name", "string", 0),
                ("Holder", "string", 0),
                ("Age", "string", 0),
            ]),
            |l| {
                vec![
                    json!(name(l)),
                    json!(s(l, "/spec/holderIdentity")),
                    json!(creation_age(l)),
                ]
            },
        ),
        ("policy", "PodDisruptionBudget") => (
            cols(&[
                ("Name", "string", 0),
                ("Min Available", "string", 0),
                ("Max Unavailable", "string", 0),
                ("Allowed Disruptions", "integer", 0),
                ("Age", "string", 0),
            ]),
            pdb_cells,
        ),
        _ => return None,
    })
}

/// One parsed step of a printer column's JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.a.b=="x")]`: the path below `@` and the wanted string.
    Filter(Vec<String>, String),
}

/// The JSONPath subset CRDs use in `additionalPrinterColumns`: `.a.b`, escaped dots
/// (`.metadata.labels.node\.kubernetes\.io/instance-type`), `[0]`, `[*]`, `['key']` and
/// `[?(@.type=="Ready")]`. `None` for anything else (the cell is then empty).
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut field = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    field.push(chars[i]);
                    i += 1;
                }
                if !field.is_empty() {
                    steps.push(Step::Field(field));
                }
            }
            '[' => {
                let end = (i..chars.len()).find(|&j| chars[j] == ']')?;
                let inner: String = chars[i + 1..end].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    steps.push(Step::Index(n));
                } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
                {
                    let (lhs, rhs) = f.split_once("==")?;
                    let want = rhs.trim().trim_matches('"').trim_matches('\'').to_string();
                    steps.push(Step::Filter(
                        lhs.trim().split('.').map(str::to_string).collect(),
                        want,
                    ));
                } else {
                    steps.push(Step::Field(
                        inner.trim_matches('\'').trim_matches('"').to_string(),
                    ));
                }
                i = end + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// All values `path` selects in `obj`.
pub fn jsonpath<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse_path(path) else {
        return Vec::new();
    };
    let mut current = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(f) => next.extend(v.get(f.as_str())),
                Step::Index(n) => next.extend(v.get(*n)),
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(sub, want) => {
                    if let Value::Array(a) = v {
                        next.extend(a.iter().filter(|item| {
                            sub.iter()
                                .try_fold(*item, |x, k| x.get(k.as_str()))
                                .is_some_and(|x| match x {
                                    Value::String(s) => s == want,
                                    other => {
                                        *other == Value::String(want.clone())
                                            || want.parse::<Value>().is_ok_and(|w| w == *other)
                                    }
                                })
                        }));
                    }
                }
            }
        }
        current = next;
    }
    current
}

/// A printer column's cell, formatted as the real server's CRD table convertor does.
fn custom_cell(obj: &Value, column: &Value) -> Value {
    let path = column.get("jsonPath").and_then(Value::as_str).unwrap_or("");
    let ty = column
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let Some(v) = jsonpath(obj, path).into_iter().next() else {
        return Value::Null;
    };
    match (ty, v) {
        ("date", Value::String(t)) => json!(age(Some(t))),
        ("string", Value::String(s)) => json!(s),
        ("string", other) => json!(other.to_string()),
        (_, other) => other.clone(),
    }
}

/// What a row carries as `object`, per `includeObject` (`Metadata` by default, as the real
/// server): kubectl takes the namespace for `-A` and labels for `--show-labels` from it.
fn row_object(rt: &ResourceType, obj: &Arc<Value>, include: &str) -> Option<Value> {
    match include {
        "None" => None,
        "Object" => Some((*Api::at_version(rt, obj)).clone()),
        _ => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta(obj).cloned().unwrap_or_default(),
        })),
    }
}

/// The Table for stored `items` of `rt`. An alias prints as its storage (the real server's
/// printers work on the stored type too); embedded objects are at `rt`'s version.
pub fn table(rt: &ResourceType, items: &[Arc<Value>], rv: u64, include: &str) -> Value {
    let served = rt;
    let rt = rt.stored_as();
    let custom_cols = rt
        .custom
        .as_ref()
        .map(|c| c.printer_columns.clone())
        .filter(|c| !c.is_empty());
    let (columns, rows): (Vec<Value>, Vec<Vec<Value>>) = if let Some(pcs) = custom_cols {
        let mut columns = vec![col("Name", "string", 0)];
        columns.extend(pcs.iter().map(|c| {
            json!({
                "name": c.get("name").cloned().unwrap_or_else(|| json!("")),
                "type": c.get("type").cloned().unwrap_or_else(|| json!("string")),
                "format": c.get("format").cloned().unwrap_or_else(|| json!("")),
                "description": c.get("description").cloned().unwrap_or_else(|| json!("")),
                "priority": c.get("priority").cloned().unwrap_or_else(|| json!(0)),
            })
        }));
        let rows = items
            .iter()
            .map(|o| {
                let mut cells = vec![json!(name(o))];
                cells.extend(pcs.iter().map(|c| custom_cell(o, c)));
                cells
            })
            .collect();
        (columns, rows)
    } else if let Some((columns, cells)) = built_in(rt) {
        (columns, items.iter().map(|o| cells(o)).collect())
    } else {
        (
            vec![col("Name", "string", 0), col("Age", "string", 0)],
            items
                .iter()
                .map(|o| vec![json!(name(o)), json!(creation_age(o))])
                .collect(),
        )
    };
    let rows: Vec<Value> = rows
        .into_iter()
        .zip(items)
        .map(|(cells, obj)| {
            let mut row = json!({ "cells": cells });
            if let Some(o) = row_object(served, obj, include) {
                row["object"] = o;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(3600 * 5 + 60), "5h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }

    #[test]
    fn jsonpath_subset() {
        let o = json!({"metadata": {"labels": {"node.kubernetes.io/instance-type": "m5.large"}},
            "status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let v = jsonpath(&o, r".metadata.labels.node\.kubernetes\.io/instance-type");
        assert_eq!(v, vec![&json!("m5.large")]);
        let v = jsonpath(&o, r#".status.conditions[?(@.type=="Ready")].status"#);
        assert_eq!(v, vec![&json!("True")]);
        assert!(jsonpath(&o, ".spec.nothing").is_empty());
    }

    #[test]
    fn event_columns_from_either_api() {
        let recorded = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web-0.1", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "regarding": {"kind": "Pod", "name": "web-0"},
            "note": "Pod should schedule on node n1 ", "reason": "Nominated", "type": "Normal",
            "eventTime": jiff::Timestamp::now().to_string(),
            "reportingController": "capstan", "reportingInstance": "capstan-7f",
        });
        let stored = crate::events::to_core(&recorded);
        let cells = event_cells(&stored);
        assert_eq!(
            cells[1..5],
            [
                json!("Normal"),
                json!("Nominated"),
                json!("pod/web-0"),
                json!("Pod should schedule on node n1")
            ]
        );
        assert!(
            cells[0].as_str().is_some_and(|a| a.ends_with('s')),
            "{cells:?}"
        );
        assert_eq!(cells[6], json!("capstan, capstan-7f"));
        assert_eq!(cells[8], json!(1));
        // A bare new-style event: derived values only from series and eventTime.
        let mut bare = stored.clone();
        for k in ["source", "firstTimestamp", "lastTimestamp", "count"] {
            bare.as_object_mut().expect("object").remove(k);
        }
        bare["series"] =
            json!({"count": 4, "lastObservedTime": jiff::Timestamp::now().to_string()});
        let cells = event_cells(&bare);
        assert_eq!(cells[6], json!("capstan, capstan-7f"));
        assert_eq!(cells[8], json!(4));
        assert_ne!(cells[7], json!("<unknown>"));
    }

    #[test]
    fn accept_header() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
