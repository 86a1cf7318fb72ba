//! Custom resources against their CRD's structural `openAPIV3Schema`, as the real server does:
//! 1. [`prune`]: fields the schema does not declare are dropped (unless
//!    `x-kubernetes-preserve-unknown-fields`), and reported per `fieldValidation`: `Strict` →
//!    400 `strict decoding error: unknown field "spec.x"`, `Warn` (the server's default) → a
//!    `Warning:` header, `Ignore` → silently.
//! 2. [`validate`]: types, enum, pattern, required, bounds, lengths, item and property counts,
//!    nullable, `x-kubernetes-int-or-string`, `anyOf` / `allOf` / `oneOf` / `not`, and the CEL
//!    rules of `x-kubernetes-validations` (see [`crate::cel`]), with `oldSelf` on updates.
//!    Failures become one 422 Invalid whose causes carry the field paths and the real server's
//!    wording (`spec.weight in body should be less than or equal to 100`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};

use crate::errors::ApiError;
use crate::object::lock;

/// `?fieldValidation=`: what happens to fields the schema does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    /// The real server's default when the parameter is absent.
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(v: Option<&str>) -> Result<Self, ApiError> {
        match v {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}: must be one of Ignore, Warn or Strict"
            ))),
        }
    }
}

/// Per-request write checks: the directives in, warnings (for `Warning:` headers) out.
#[derive(Debug, Default)]
pub struct WriteChecks {
    pub field_validation: FieldValidation,
    pub warnings: Vec<String>,
    /// `dryRun=All`: everything but the store write.
    pub dry_run: bool,
    /// `fieldManager`, as the webhooks' `options` report it.
    pub field_manager: Option<String>,
    /// The requesting user (an AdmissionReview `userInfo`); `None` for writes no webhook
    /// reviews.
    pub user: Option<Value>,
}

/// One failed check: (field path, machine reason, message), as [`ApiError::invalid`] takes.
pub type Cause = (String, &'static str, String);

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Drop undeclared fields from a custom resource, returning their paths. The root's
/// `apiVersion`, `kind` and `metadata` are the server's and always kept.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_at(schema, obj, "", true, &mut unknown);
    unknown
}

fn prune_at(schema: &Value, v: &mut Value, path: &str, root: bool, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let embedded = root
                || schema
                    .get("x-kubernetes-embedded-resource")
                    .and_then(Value::as_bool)
                    == Some(true);
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                if !preserves(schema) {
                    map.retain(|k, _| {
                        let keep = props.contains_key(k)
                            || (embedded
                                && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
                        if !keep {
                            out.push(child(path, k));
                        }
                        keep
                    });
                }
                for (k, sub) in props {
                    if let Some(val) = map.get_mut(k) {
                        prune_at(sub, val, &child(path, k), false, out);
                    }
                }
            } else if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for (k, val) in map.iter_mut() {
                    prune_at(sub, val, &child(path, k), false, out);
                }
            } else if !preserves(schema)
                && schema.get("type").and_then(Value::as_str) == Some("object")
            {
                // An object with neither properties nor additionalProperties holds nothing.
                for k in map.keys() {
                    out.push(child(path, k));
                }
                map.retain(|k, _| {
                    embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                });
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(sub, item, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

/// Pruning per the request's `fieldValidation`: Strict → 400, Warn → warnings.
pub fn prune_checked(
    schema: &Value,
    kind: &str,
    version: &str,
    obj: &mut Value,
    checks: &mut WriteChecks,
) -> Result<(), ApiError> {
    let unknown = prune(schema, obj);
    if unknown.is_empty() {
        return Ok(());
    }
    match checks.field_validation {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            checks
                .warnings
                .extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
            Ok(())
        }
        FieldValidation::Strict => {
            let fields: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                fields.join(", ")
            )))
        }
    }
}

/// Go-style rendering of a value in `Invalid value: ...`.
fn show(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    match want {
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "number" => v.is_number(),
        other => type_name(v) == other,
    }
}

fn regex(pattern: &str) -> Option<regex::Regex> {
    // Schemas are validated on every write: compile each pattern once.
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    lock(cache)
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

fn num(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// Validate `v` (the new value at `path`) against `schema`; `old` is the value at the same
/// place before the update, when there is one (for CEL transition rules).
pub fn validate(schema: &Value, v: &Value, old: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    let display = if path.is_empty() { "<root>" } else { path };
    let invalid = |out: &mut Vec<Cause>, msg: String| {
        out.push((
            path.to_string(),
            "FieldValueInvalid",
            format!("Invalid value: {}: {msg}", show(v)),
        ));
    };
    if v.is_null() {
        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
        if !nullable && let Some(t) = schema.get("type").and_then(Value::as_str) {
            out.push((
                path.to_string(),
                "FieldValueInvalid",
                format!("Invalid value: \"null\": {display} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if int_or_string {
        if !(v.is_string() || type_ok("integer", v)) {
            out.push((
                path.to_string(),
                "FieldValueInvalid",
                format!(
                    "Invalid value: \"{}\": {display} in body must be of type integer,string: \"{}\"",
                    type_name(v),
                    type_name(v)
                ),
            ));
            return;
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_ok(t, v)
    {
        out.push((
            path.to_string(),
            "FieldValueTypeInvalid",
            format!(
                "Invalid value: \"{}\": {display} in body must be of type {t}: \"{}\"",
                type_name(v),
                type_name(v)
            ),
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        let supported: Vec<String> = options.iter().map(Value::to_string).collect();
        out.push((
            path.to_string(),
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {}: supported values: {}",
                v,
                supported.join(", ")
            ),
        ));
    }
    match v {
        Value::String(s) => {
            let len = s.chars().count() as f64;
            if let Some(max) = num(schema, "maxLength")
                && len > max
            {
                out.push((
                    path.to_string(),
                    "FieldValueTooLong",
                    format!("Too long: may not be more than {} bytes", fmt_num(max)),
                ));
            }
            if let Some(min) = num(schema, "minLength")
                && len < min
            {
                invalid(
                    out,
                    format!(
                        "{display} in body should be at least {} chars long",
                        fmt_num(min)
                    ),
                );
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && regex(p).is_some_and(|re| !re.is_match(s))
            {
                invalid(out, format!("{display} in body should match '{p}'"));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let excl = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
            if let Some(max) = num(schema, "maximum") {
                if excl("exclusiveMaximum") && x >= max {
                    invalid(
                        out,
                        format!("{display} in body should be less than {}", fmt_num(max)),
                    );
                } else if x > max {
                    invalid(
                        out,
                        format!(
                            "{display} in body should be less than or equal to {}",
                            fmt_num(max)
                        ),
                    );
                }
            }
            if let Some(min) = num(schema, "minimum") {
                if excl("exclusiveMinimum") && x <= min {
                    invalid(
                        out,
                        format!("{display} in body should be greater than {}", fmt_num(min)),
                    );
                } else if x < min {
                    invalid(
                        out,
                        format!(
                            "{display} in body should be greater than or equal to {}",
                            fmt_num(min)
                        ),
                    );
                }
            }
            if let Some(m) = num(schema, "multipleOf")
                && m != 0.0
                && (x / m).fract() != 0.0
            {
                invalid(
                    out,
                    format!("{display} in body should be a multiple of {}", fmt_num(m)),
                );
            }
        }
        Value::Array(items) => {
            let len = items.len() as f64;
            if let Some(max) = num(schema, "maxItems")
                && len > max
            {
                out.push((
                    path.to_string(),
                    "FieldValueTooMany",
                    format!(
                        "Too many: {}: must have at most {} items",
                        items.len(),
                        fmt_num(max)
                    ),
                ));
            }
            if let Some(min) = num(schema, "minItems")
                && len < min
            {
                invalid(
                    out,
                    format!(
                        "{display} in body should have at least {} items",
                        fmt_num(min)
                    ),
                );
            }
            if let Some(sub) = schema.get("items") {
                let old_items = old.and_then(Value::as_array);
                let keys: Vec<&str> = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let is_map =
                    schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map");
                for (i, item) in items.iter().enumerate() {
                    // Only list-type=map items correlate with old ones (by their keys).
                    let old_item = if is_map && !keys.is_empty() {
                        old_items.and_then(|o| {
                            o.iter()
                                .find(|x| keys.iter().all(|k| x.get(*k) == item.get(*k)))
                        })
                    } else {
                        None
                    };
                    validate(sub, item, old_item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => {
            let len = map.len() as f64;
            if let Some(max) = num(schema, "maxProperties")
                && len > max
            {
                out.push((
                    path.to_string(),
                    "FieldValueTooMany",
                    format!(
                        "Too many: {}: must have at most {} items",
                        map.len(),
                        fmt_num(max)
                    ),
                ));
            }
            if let Some(min) = num(schema, "minProperties")
                && len < min
            {
                invalid(
                    out,
                    format!(
                        "{display} in body should have at least {} properties",
                        fmt_num(min)
                    ),
                );
            }
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        out.push((
                            child(path, r),
                            "FieldValueRequired",
                            "Required value".into(),
                        ));
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|s| s.is_object());
            for (k, val) in map {
                let sub = props.and_then(|p| p.get(k)).or(additional);
                if let Some(sub) = sub {
                    let old_val = old.and_then(|o| o.get(k));
                    validate(sub, val, old_val, &child(path, k), out);
                }
            }
        }
        _ => {}
    }
    combinators(schema, v, old, path, out);
    crate::cel::check_rules(schema, v, old, path, out);
}

fn combinators(schema: &Value, v: &Value, old: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    let display = if path.is_empty() { "<root>" } else { path };
    let passes = |s: &Value| {
        let mut errs = Vec::new();
        // Branches only constrain values (structural schemas forbid rules in them).
        validate(s, v, old, path, &mut errs);
        errs
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            out.extend(passes(s));
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let results: Vec<Vec<Cause>> = any.iter().map(passes).collect();
        if !results.iter().any(Vec::is_empty) {
            out.extend(results.into_iter().flatten());
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = one.iter().filter(|s| passes(s).is_empty()).count();
        if ok != 1 {
            out.push((
                path.to_string(),
                "FieldValueInvalid",
                format!("Invalid value: {}: {display} in body must validate one and only one schema (oneOf)", show(v)),
            ));
        }
    }
    if let Some(not) = schema.get("not")
        && passes(not).is_empty()
    {
        out.push((
            path.to_string(),
            "FieldValueInvalid",
            format!(
                "Invalid value: {}: {display} in body must not validate the schema (not)",
                show(v)
            ),
        ));
    }
}

/// The whole check of a custom resource on create (`old` = None) or update.
pub fn validate_object(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    // Of metadata only name / namespace / generateName are checked against the schema (as the
    // real server allows a CRD to constrain just those); the server validates the rest itself.
    let stripped = strip_meta(obj);
    let old = old.map(strip_meta);
    validate(schema, &stripped, old.as_ref(), "", &mut out);
    out
}

fn strip_meta(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        let meta = m.remove("metadata");
        // CEL rules may read `self.metadata.name`: keep name and namespace only.
        if let Some(meta) = meta {
            let mut keep = Map::new();
            for k in ["name", "namespace", "generateName"] {
                if let Some(v) = meta.get(k) {
                    keep.insert(k.into(), v.clone());
                }
            }
            m.insert("metadata".into(), Value::Object(keep));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_unknown_fields() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}}}}}});
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"a": "1", "b": 2, "free": {"y": 1}, "list": [{"x": 1, "z": 2}]}, "extra": true});
        let unknown = prune(&schema, &mut obj);
        assert_eq!(unknown, vec!["extra", "spec.b", "spec.list[0].z"]);
        assert_eq!(
            obj["spec"],
            json!({"a": "1", "free": {"y": 1}, "list": [{"x": 1}]})
        );
        assert_eq!(obj["metadata"]["name"], "n");
    }

    #[test]
    fn structural_errors_read_like_the_api_server() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "required": ["name"],
        "properties": {
            "weight": {"type": "integer", "minimum": 1, "maximum": 100},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
            "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
            "qty": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true,
                    "pattern": "^[0-9]+m?$"}
        }}}});
        let ok =
            json!({"spec": {"weight": 10, "mode": "a", "name": "abc", "tags": ["x"], "qty": 3}});
        assert!(validate_object(&schema, &ok, None).is_empty());
        let bad = json!({"spec": {"weight": 101, "mode": "c", "tags": ["x", "y"], "qty": "x"}});
        let errs: Vec<String> = validate_object(&schema, &bad, None)
            .into_iter()
            .map(|(f, _, m)| format!("{f}: {m}"))
            .collect();
        assert!(
            errs.contains(&"spec.name: Required value".to_string()),
            "{errs:?}"
        );
        assert!(errs.contains(&"spec.weight: Invalid value: 101: spec.weight in body should be less than or equal to 100".to_string()), "{errs:?}");
        assert!(
            errs.contains(
                &"spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"".to_string()
            ),
            "{errs:?}"
        );
        assert!(
            errs.contains(&"spec.tags: Too many: 2: must have at most 1 items".to_string()),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.qty: Invalid value: \"x\"")),
            "{errs:?}"
        );
        let wrong_type = json!({"spec": {"name": "a", "weight": "heavy"}});
        let errs = validate_object(&schema, &wrong_type, None);
        assert_eq!(
            errs[0].2,
            "Invalid value: \"string\": spec.weight in body must be of type integer: \"string\""
        );
    }
}
