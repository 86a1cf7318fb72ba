//! Shared vocabulary of the validators: field-path errors, verdicts, and the syntax checks
//! (durations, label keys and values, quantities) several resources need.

use std::fmt;

use serde_json::Value;

use crate::apis::duration::parse_go_duration;
use crate::scheduling::resources::{Quantity, parse_quantity};

/// One invalid field: `spec.template.spec.requirements[0].operator: unsupported value "Foo"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What a validator decided: errors deny, warnings are advice shown by kubectl.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub errors: Vec<FieldError>,
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// All errors as one message, the form the API server shows after "denied the request: ".
    pub fn message(&self) -> String {
        self.errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn extend(&mut self, other: Verdict) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }
}

/// Decodes `value` as `T`, reporting a type mistake with its path below `prefix`.
pub fn decode<T: serde::de::DeserializeOwned>(
    value: &Value,
    prefix: &str,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." || inner.is_empty() {
            prefix.to_string()
        } else if prefix.is_empty() {
            inner
        } else {
            format!("{prefix}.{inner}")
        };
        FieldError::new(path, e.into_inner().to_string())
    })
}

/// Go duration syntax restricted to the units Karpenter's CRDs allow (`s`, `m`, `h`, e.g. `1h30m`),
/// optionally `Never`. Returns seconds, or None for `Never`.
pub fn check_duration(s: &str, allow_never: bool) -> Result<Option<u64>, String> {
    if s == "Never" {
        return if allow_never {
            Ok(None)
        } else {
            Err("\"Never\" is not allowed here".into())
        };
    }
    let expect = if allow_never {
        "expected a duration such as 30s, 10m, 1h30m or Never"
    } else {
        "expected a duration such as 30s, 10m or 1h30m"
    };
    if !units_only(s, &['s', 'm', 'h']) {
        return Err(format!("invalid duration {s:?}: {expect}"));
    }
    // Go's own grammar; the unit check above narrows it to the CRD's.
    match parse_go_duration(s) {
        Ok(nanos) if nanos >= 0 => Ok(Some((nanos / 1_000_000_000) as u64)),
        _ => Err(format!("invalid duration {s:?}: {expect}")),
    }
}

/// `s` is one or more `<digits><unit>` groups with units from `units`.
pub fn units_only(s: &str, units: &[char]) -> bool {
    let mut digits = 0;
    let mut groups = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits += 1;
        } else if units.contains(&c) && digits > 0 {
            digits = 0;
            groups += 1;
        } else {
            return false;
        }
    }
    digits == 0 && groups > 0
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
pub fn check_name_part(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name part must not be empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "name part {name:?} must be no more than 63 characters"
        ));
    }
    let first = name.chars().next().is_some_and(is_alnum);
    let last = name.chars().last().is_some_and(is_alnum);
    if !first
        || !last
        || !name
            .chars()
            .all(|c| is_alnum(c) || c == '-' || c == '_' || c == '.')
    {
        return Err(format!(
            "name part {name:?} must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// A lowercase RFC 1123 subdomain, at most 253 characters.
pub fn check_dns_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "prefix {s:?} must be a lowercase DNS subdomain (e.g. example.com)"
        ))
    }
}

/// A qualified name as label keys and taint keys are: `[prefix/]name`.
pub fn check_qualified_name(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            check_dns_subdomain(prefix)?;
            name
        }
        None => key,
    };
    check_name_part(name)
}

/// A label value: empty, or a name part.
pub fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    check_name_part(v).map_err(|e| e.replacen("name part", "value", 1))
}

/// A valid, non-negative quantity.
pub fn check_quantity(s: &str) -> Result<Quantity, String> {
    let q = parse_quantity(s).map_err(|e| e.to_string())?;
    if q.nanos() < 0 {
        return Err(format!("quantity {s:?} must not be negative"));
    }
    Ok(q)
}

/// A JSON value that should hold a quantity (the API server keeps `cpu: 2` as a number).
pub fn quantity_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Escapes a key for a JSON Pointer (RFC 6901).
pub fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        type Case<'a> = (&'a str, bool, Result<Option<u64>, ()>);
        let cases: &[Case] = &[
            ("30s", false, Ok(Some(30))),
            ("1h30m", false, Ok(Some(5400))),
            ("720h", true, Ok(Some(2_592_000))),
            ("Never", true, Ok(None)),
            ("Never", false, Err(())),
            ("500ms", false, Err(())),
            ("1d", false, Err(())),
            ("", false, Err(())),
            ("h", false, Err(())),
            ("-1h", false, Err(())),
            ("1.5h", false, Err(())),
        ];
        for (s, never, want) in cases {
            let got = check_duration(s, *never).map_err(|_| ());
            assert_eq!(&got, want, "{s}");
        }
    }

    #[test]
    fn qualified_names() {
        for ok in [
            "team",
            "example.com/team",
            "a_b.c-d",
            "node.kubernetes.io/x",
        ] {
            assert!(check_qualified_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Example.com/x",
            "a/b/c",
            "x/",
            &"a".repeat(64),
        ] {
            assert!(check_qualified_name(bad).is_err(), "{bad}");
        }
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("a b").is_err());
    }

    #[test]
    fn quantities() {
        assert!(check_quantity("100m").is_ok());
        assert!(check_quantity("-1").is_err());
        assert!(check_quantity("1Gb").is_err());
        assert_eq!(quantity_text(&serde_json::json!(2)), Some("2".into()));
    }
}
