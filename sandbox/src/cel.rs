//! CRD validation rules (`x-kubernetes-validations`) evaluated with the `cel` crate, as the real
//! server does on create and update: `self` is the value at the rule's place in the schema,
//! `oldSelf` the value before an update (rules that mention `oldSelf` are transition rules and
//! are skipped on create), JSON integers are CEL `int`. Beyond the standard library and the
//! strings extension, Kubernetes' regex `find` is registered here (the only library function
//! capstan's CRDs use that `cel` lacks). A rule that fails to compile or to run is reported as
//! an invalid value, so a broken rule in our CRDs fails our tests rather than a user's install.
//! Not (yet) supported: `messageExpression` (the static `message` is used), `optionalOldSelf`,
//! cost limits, and the other Kubernetes libraries (quantity, url, ip/cidr, semver, sets).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cel::common::types::CelString;
use cel::{Context, Env, ExecutionError, Program, Value as Cel};
use serde_json::Value;

use crate::object::lock;
use crate::validation::Cause;

/// Kubernetes' `<string>.find(<regex>)`: the first match, or "" when none.
fn find(this: &CelString<'_>, re: &CelString<'_>) -> Result<CelString<'static>, ExecutionError> {
    let pattern: &str = re;
    let re = regex::Regex::new(pattern)
        .map_err(|e| ExecutionError::function_error("find", e.to_string()))?;
    let text: &str = this;
    Ok(re
        .find(text)
        .map(|m| m.as_str().to_string())
        .unwrap_or_default()
        .into())
}

fn build_env() -> Result<Env, String> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .map_err(|e| format!("{e:?}"))?;
    cel::add_member_overload!(env, fn find: (CelString, CelString) -> Result<CelString>)
        .map_err(|e| format!("{e:?}"))?;
    Ok(env)
}

fn env() -> Result<Arc<Env>, String> {
    static ENV: OnceLock<Result<Arc<Env>, String>> = OnceLock::new();
    ENV.get_or_init(|| build_env().map(Arc::new)).clone()
}

/// Compiled rules by source text; compilation errors are cached too.
type ProgramCache = Mutex<HashMap<String, Result<Arc<Program>, String>>>;

/// Compile a rule (cached: the same rules run on every write).
pub fn compile(rule: &str) -> Result<Arc<Program>, String> {
    static CACHE: OnceLock<ProgramCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(hit) = lock(cache).get(rule) {
        return hit.clone();
    }
    let compiled = env()?
        .compile(rule)
        .map(Arc::new)
        .map_err(|e| format!("compilation failed: {e}"));
    lock(cache).insert(rule.to_string(), compiled.clone());
    compiled
}

/// JSON as CEL sees it: integers are `int` (Kubernetes never hands CEL a `uint`).
pub fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::Int(i64::try_from(u).unwrap_or(i64::MAX)),
            _ => Cel::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(a) => Cel::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<String, Cel> = m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            Cel::from(map)
        }
    }
}

/// Evaluate one rule against `self` (and `oldSelf`): Ok(true) when it holds.
pub fn evaluate(rule: &str, this: &Value, old: Option<&Value>) -> Result<bool, String> {
    let program = compile(rule)?;
    let mut ctx = Context::with_env(env()?);
    ctx.add_variable_from_value("self", to_cel(this));
    if let Some(old) = old {
        ctx.add_variable_from_value("oldSelf", to_cel(old));
    }
    match program.execute(&ctx) {
        Ok(Cel::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("rule did not evaluate to a bool: {other:?}")),
        Err(e) => Err(format!("{e}")),
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

/// Whether a rule is a transition rule (needs `oldSelf`).
pub fn is_transition(rule: &str) -> bool {
    rule.contains("oldSelf")
}

/// The `x-kubernetes-validations` of `schema` at `path` against `v`; failures are phrased as
/// the real server phrases them (`spec.x: Invalid value: "object": <message>`).
pub fn check_rules(
    schema: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    out: &mut Vec<Cause>,
) {
    let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return;
    };
    for rule in rules {
        let Some(text) = rule.get("rule").and_then(Value::as_str) else {
            continue;
        };
        if is_transition(text) && old.is_none() {
            continue;
        }
        let field = match rule.get("fieldPath").and_then(Value::as_str) {
            Some(fp) if !fp.is_empty() => format!("{path}{fp}"),
            _ => path.to_string(),
        };
        match evaluate(text, v, old) {
            Ok(true) => {}
            Ok(false) => {
                let message = match rule.get("message").and_then(Value::as_str) {
                    Some(m) if !m.is_empty() => m.to_string(),
                    _ => format!("failed rule: {text}"),
                };
                let reason = match rule.get("reason").and_then(Value::as_str) {
                    Some("FieldValueForbidden") => "FieldValueForbidden",
                    Some("FieldValueRequired") => "FieldValueRequired",
                    Some("FieldValueDuplicate") => "FieldValueDuplicate",
                    _ => "FieldValueInvalid",
                };
                out.push((
                    field,
                    reason,
                    format!("Invalid value: \"{}\": {message}", type_name(v)),
                ));
            }
            Err(e) => out.push((
                field,
                "FieldValueInvalid",
                format!(
                    "Invalid value: \"{}\": rule evaluation error: {e} (rule: {text})",
                    type_name(v)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn find_and_transition_rules() {
        let rule = r#"self.find("^([^/]+)").endsWith("karpenter.sh")"#;
        assert_eq!(
            evaluate(rule, &json!("karpenter.sh/nodepool"), None),
            Ok(true)
        );
        assert_eq!(evaluate(rule, &json!("example.com/x"), None), Ok(false));
        assert_eq!(
            evaluate("self == oldSelf", &json!({"a": 1}), Some(&json!({"a": 1}))),
            Ok(true)
        );
        assert_eq!(
            evaluate("self == oldSelf", &json!({"a": 1}), Some(&json!({"a": 2}))),
            Ok(false)
        );
        assert_eq!(evaluate("self > 2", &json!(3), None), Ok(true));
        assert!(evaluate("self.nosuchfn()", &json!("x"), None).is_err());
    }
}
