//! `labelSelector` and `fieldSelector` query parameters: parsing (bad syntax is a 400, as on the
//! real server) and matching against stored objects.

use serde_json::{Map, Value};

use crate::errors::ApiError;
use crate::object::{labels, lookup_path};

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; all requirements must hold (AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// Split on commas that are not inside `in (...)` value lists.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn bad_label(term: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {why} in label selector term {term:?}"
    ))
}

fn check_token(term: &str, what: &str, s: &str, allow_empty: bool) -> Result<String, ApiError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    if (!allow_empty && s.is_empty()) || !s.chars().all(ok_char) {
        return Err(bad_label(term, &format!("invalid {what} {s:?}")));
    }
    Ok(s.to_string())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for raw in split_top_level(s) {
            let term = raw.trim();
            if term.is_empty() {
                return Err(bad_label(s, "empty requirement"));
            }
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement {
                    key: check_token(term, "key", key.trim(), false)?,
                    op: Op::NotExists,
                }
            } else if let Some(open) = term.find('(') {
                let head = term[..open].trim();
                let (key, word) = head
                    .rsplit_once(char::is_whitespace)
                    .ok_or_else(|| bad_label(term, "expected `key in (values)`"))?;
                let body = term[open + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| bad_label(term, "missing `)`"))?;
                let values = body
                    .split(',')
                    .map(|v| check_token(term, "value", v.trim(), true))
                    .collect::<Result<Vec<_>, _>>()?;
                let key = check_token(term, "key", key.trim(), false)?;
                match word {
                    "in" => Requirement {
                        key,
                        op: Op::In(values),
                    },
                    "notin" => Requirement {
                        key,
                        op: Op::NotIn(values),
                    },
                    other => return Err(bad_label(term, &format!("unknown operator {other:?}"))),
                }
            } else if let Some((k, v)) = term.split_once("!=") {
                Requirement {
                    key: check_token(term, "key", k.trim(), false)?,
                    op: Op::NotEq(check_token(term, "value", v.trim(), true)?),
                }
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement {
                    key: check_token(term, "key", k.trim(), false)?,
                    op: Op::Eq(check_token(term, "value", v.trim(), true)?),
                }
            } else if let Some((k, v)) = term.split_once('>') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| bad_label(term, "`>` needs an integer"))?;
                Requirement {
                    key: check_token(term, "key", k.trim(), false)?,
                    op: Op::Gt(n),
                }
            } else if let Some((k, v)) = term.split_once('<') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| bad_label(term, "`<` needs an integer"))?;
                Requirement {
                    key: check_token(term, "key", k.trim(), false)?,
                    op: Op::Lt(n),
                }
            } else {
                Requirement {
                    key: check_token(term, "key", term, false)?,
                    op: Op::Exists,
                }
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches_labels(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.0.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match (&r.op, value) {
                (Op::Eq(want), Some(v)) => v == want,
                (Op::Eq(_), None) => false,
                (Op::NotEq(want), v) => v != Some(want.as_str()),
                (Op::In(set), Some(v)) => set.iter().any(|s| s == v),
                (Op::In(_), None) => false,
                (Op::NotIn(set), v) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
                (Op::Exists, v) => v.is_some(),
                (Op::NotExists, v) => v.is_none(),
                (Op::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > *n),
                (Op::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < *n),
                (Op::Gt(_) | Op::Lt(_), None) => false,
            }
        })
    }
}

/// A `metav1.LabelSelector` object (`matchLabels` and `matchExpressions`, ANDed) against a
/// label set. An empty selector matches everything; an unknown operator matches nothing.
pub fn matches_label_selector(sel: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    let match_exprs = sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|es| {
            es.iter().all(|e| {
                let key = e.get("key").and_then(Value::as_str).unwrap_or("");
                let values: Vec<&str> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                match e.get("operator").and_then(Value::as_str) {
                    Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                    Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                    Some("Exists") => get(key).is_some(),
                    Some("DoesNotExist") => get(key).is_none(),
                    _ => false,
                }
            })
        });
    match_labels && match_exprs
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`, ANDed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// `supported` lists the kind's field labels beyond `metadata.name` / `metadata.namespace`.
    pub fn parse(s: &str, supported: &[String]) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(terms));
        }
        for raw in s.split(',') {
            let term = raw.trim();
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace")
                && !supported.iter().any(|f| f == field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same selector with its field labels renamed (an alias's labels name the fields of
    /// its storage's shape).
    pub fn relabel(&self, rename: impl Fn(&str) -> String) -> Self {
        Self(
            self.0
                .iter()
                .map(|(field, equal, want)| (rename(field), *equal, want.clone()))
                .collect(),
        )
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, equal, want)| {
            // Core Events' `source` label means `source.component`.
            let path = if field == "source" {
                "source.component"
            } else {
                field
            };
            let actual = match lookup_path(obj, path) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                // Absent fields compare as "" (so `spec.nodeName=` finds unscheduled pods).
                _ => String::new(),
            };
            (actual == *want) == *equal
        })
    }
}

/// Both selectors of a list or watch request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_labels(labels(obj)) && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "labels": labels}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_operators() {
        let p = pod(json!({"app": "web", "tier": "front", "n": "7"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (db, web)", true),
            ("app notin (db,web)", false),
            ("missing notin (a)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier in (front),!missing", true),
            ("n>5", true),
            ("n<5", false),
            ("", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).expect(sel);
            assert_eq!(s.matches_labels(labels(&p)), want, "{sel}");
        }
    }

    #[test]
    fn bad_label_selectors_are_400() {
        for sel in ["app in (a", "a b c", "=x", "app,,x", "app in [a]"] {
            let err = LabelSelector::parse(sel).expect_err(sel);
            assert_eq!(err.code, 400, "{sel}");
        }
    }

    #[test]
    fn field_selectors() {
        let p = pod(json!({}));
        let fields = vec!["spec.nodeName".to_string(), "status.phase".to_string()];
        let ok = |s: &str| FieldSelector::parse(s, &fields).expect(s).matches(&p);
        assert!(ok("spec.nodeName=n1"));
        assert!(!ok("spec.nodeName!=n1"));
        assert!(ok("metadata.name=p,status.phase==Running"));
        assert!(!ok("metadata.namespace=x"));
        assert!(ok("metadata.namespace="));
        let err = FieldSelector::parse("spec.foo=x", &fields).expect_err("unsupported");
        assert_eq!(err.message, "field label not supported: spec.foo");
    }
}
