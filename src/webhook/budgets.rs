//! Disruption budget validation: `nodes` as a count or 0-100%, `schedule` as a 5-field cron (as
//! Kubernetes' CronJobs and Karpenter read it) always paired with a `duration`, `reasons` from the
//! enum. Works on JSON so that every mistake in the list is reported, not just the first.

use croner::parser::CronParser;
use serde_json::Value;

use super::common::{Verdict, units_only};
use crate::apis::duration::parse_go_duration;
use crate::apis::nodepool::DISRUPTION_REASONS;

const MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Validates `budgets` (the value of `spec.disruption.budgets`) found at `path`.
pub fn validate_budgets(budgets: &Value, path: &str) -> Verdict {
    let mut v = Verdict::default();
    let Some(items) = budgets.as_array() else {
        v.error(path, "must be a list of budgets");
        return v;
    };
    if items.len() > 50 {
        v.error(
            path,
            format!("must have at most 50 items, has {}", items.len()),
        );
    }
    for (i, b) in items.iter().enumerate() {
        validate_budget(b, &format!("{path}[{i}]"), &mut v);
    }
    v
}

fn validate_budget(b: &Value, path: &str, v: &mut Verdict) {
    let Some(obj) = b.as_object() else {
        v.error(
            path,
            "must be an object with nodes, and optionally schedule, duration, reasons",
        );
        return;
    };
    let nodes = match obj.get("nodes") {
        None => Some("10%".to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            v.error(
                format!("{path}.nodes"),
                "must be a string: a count (\"5\") or a percent (\"10%\")",
            );
            None
        }
    };
    let nodes_zero = match nodes.as_deref().map(check_nodes) {
        Some(Ok(zero)) => zero,
        Some(Err(e)) => {
            v.error(format!("{path}.nodes"), e);
            false
        }
        None => false,
    };

    let schedule = text_field(obj, "schedule", path, v);
    let duration = text_field(obj, "duration", path, v);
    if let Some(s) = &schedule
        && let Err(e) = check_schedule(s)
    {
        v.error(format!("{path}.schedule"), e);
    }
    if let Some(d) = &duration
        && let Err(e) = check_budget_duration(d)
    {
        v.error(format!("{path}.duration"), e);
    }
    match (&schedule, &duration) {
        (Some(_), None) => v.error(
            format!("{path}.duration"),
            "required when schedule is set: how long the budget is active after each firing, e.g. 8h or 1h30m",
        ),
        (None, Some(_)) => v.error(
            format!("{path}.schedule"),
            "required when duration is set: when the budget becomes active, e.g. \"0 9 * * mon-fri\"",
        ),
        _ => {}
    }

    let mut reasons = Vec::new();
    match obj.get("reasons") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (j, r) in items.iter().enumerate() {
                match r.as_str() {
                    Some(s) if DISRUPTION_REASONS.contains(&s) => reasons.push(s.to_string()),
                    _ => v.error(
                        format!("{path}.reasons[{j}]"),
                        format!(
                            "unsupported value {r}: supported values: {}",
                            DISRUPTION_REASONS.join(", ")
                        ),
                    ),
                }
            }
        }
        Some(_) => v.error(format!("{path}.reasons"), "must be a list of reasons"),
    }

    // Zero nodes with no schedule is in force all the time: legal (a freeze), but worth saying.
    if nodes_zero && schedule.is_none() && duration.is_none() {
        let what = if reasons.is_empty() {
            "all disruption".to_string()
        } else {
            format!("disruption for {}", reasons.join(", "))
        };
        v.warn(format!(
            "{path}: nodes is 0 with no schedule, so this budget blocks {what} of this NodePool forever"
        ));
    }
}

fn text_field(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    path: &str,
    v: &mut Verdict,
) -> Option<String> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            v.error(format!("{path}.{name}"), "must be a string");
            None
        }
    }
}

/// A count or a percentage 0-100%; Ok(true) when it allows no node at all.
pub fn check_nodes(s: &str) -> Result<bool, String> {
    if let Some(p) = s.strip_suffix('%') {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "invalid value {s:?}: expected a count (\"5\") or a percent 0-100% (\"10%\")"
            ));
        }
        let n: u64 = p.parse().unwrap_or(u64::MAX);
        if n > 100 {
            return Err(format!(
                "invalid value {s:?}: a percent must be between 0% and 100%"
            ));
        }
        return Ok(n == 0);
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid value {s:?}: expected a count (\"5\") or a percent 0-100% (\"10%\")"
        ));
    }
    Ok(s.bytes().all(|b| b == b'0'))
}

/// A budget duration as Karpenter's CRD allows it: hours and/or minutes (`8h`, `30m`, `1h30m`).
pub fn check_budget_duration(s: &str) -> Result<(), String> {
    let trimmed = s.strip_suffix("0s").filter(|t| !t.is_empty()).unwrap_or(s);
    let ok = units_only(trimmed, &['h', 'm'])
        && trimmed.matches('h').count() <= 1
        && trimmed.matches('m').count() <= 1
        && trimmed.ends_with('h') != trimmed.contains('m')
        && parse_go_duration(s).is_ok();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid duration {s:?}: expected hours and/or minutes, e.g. 8h, 30m or 1h30m"
        ))
    }
}

/// A 5-field cron (minute hour day-of-month month day-of-week, names like `mon-fri` and `jan`,
/// ranges, steps) or a macro (`@daily`, `@hourly`, ...). Quartz extensions (`L`, `W`, `#`) and a
/// seconds or year field are rejected, as Kubernetes' parser does.
pub fn check_schedule(s: &str) -> Result<(), String> {
    let t = s.trim();
    if t.starts_with('@') {
        return if MACROS.contains(&t.to_ascii_lowercase().as_str()) {
            Ok(())
        } else {
            Err(format!(
                "invalid schedule {s:?}: unknown macro, expected one of {}",
                MACROS.join(", ")
            ))
        };
    }
    let fields: Vec<&str> = t.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "invalid schedule {s:?}: expected 5 fields (minute hour day-of-month month day-of-week), got {}",
            fields.len()
        ));
    }
    if let Some(c) = t
        .chars()
        .find(|c| matches!(c.to_ascii_uppercase(), 'L' | 'W' | '#') && !is_in_name(t, *c))
    {
        return Err(format!(
            "invalid schedule {s:?}: unsupported character {c:?}"
        ));
    }
    let cron = CronParser::new()
        .parse(&fields.join(" "))
        .map_err(|e| format!("invalid schedule {s:?}: {e}"))?;
    // A date that never comes (`0 0 31 2 *`) parses, but the disruption controller could never
    // tell whether the budget is in force and would hold the pool's nodes (found by
    // `capstan fuzz cron`). From 2000-01-01, a leap year, every real date comes within 4 years.
    let from = k8s_openapi::jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0);
    cron.find_next_occurrence(&from, false)
        .map(|_| ())
        .map_err(|_| format!("invalid schedule {s:?}: it never fires (no such date)"))
}

/// Whether `c` only occurs inside month or weekday names (`jul`, `wed`), where it is fine.
fn is_in_name(t: &str, c: char) -> bool {
    const NAMES: &[&str] = &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", "SUN",
        "MON", "TUE", "WED", "THU", "FRI", "SAT",
    ];
    let upper = t.to_ascii_uppercase();
    let mut rest = upper.clone();
    for n in NAMES {
        rest = rest.replace(n, "");
    }
    !rest.contains(c.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schedules() {
        for ok in [
            "0 9 * * mon-fri",
            "0 9 * * MON-FRI",
            "*/15 * * * *",
            "0 0 1 jan,jul *",
            "0 22 * * 1-5",
            "30 2 1-15/2 * sun",
            "@daily",
            "@hourly",
            "@midnight",
            "@weekly",
            "@yearly",
            "@annually",
            "@monthly",
            // Once in four years, and on the 31st of the months that have one.
            "0 0 29 2 *",
            "0 0 31 * *",
            // Day-of-month or day-of-week, as cron reads both: fires every Monday.
            "0 0 31 2 mon",
        ] {
            assert_eq!(check_schedule(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "* * * *",
            "0 0 * * * *",
            "61 * * * *",
            "0 25 * * *",
            "0 0 * * funday",
            "@every 5m",
            "@reboot",
            "0 0 L * *",
            "0 0 * * 5#3",
            "0 0 15W * *",
            // Dates that never come: admitted, they held the pool's nodes forever (fuzzer).
            "0 0 31 2 *",
            "0 0 30 feb *",
            "0 0 31 4,6,9,11 *",
        ] {
            assert!(check_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nodes_and_durations() {
        assert_eq!(check_nodes("10%"), Ok(false));
        assert_eq!(check_nodes("0"), Ok(true));
        assert_eq!(check_nodes("0%"), Ok(true));
        assert_eq!(check_nodes("100%"), Ok(false));
        for bad in ["101%", "150%", "-1", "1.5", "%", "ten", ""] {
            assert!(check_nodes(bad).is_err(), "{bad}");
        }
        for ok in ["8h", "30m", "1h30m", "10h0m0s", "1h0s"] {
            assert_eq!(check_budget_duration(ok), Ok(()), "{ok}");
        }
        for bad in ["30s", "1d", "", "m", "1m1h", "1h1h"] {
            assert!(check_budget_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn budget_table() {
        // (budgets, expected error path or "", expects a warning)
        let cases = [
            (json!([{"nodes": "10%"}]), "", false),
            (json!([{"nodes": "150%"}]), "b[0].nodes", false),
            (
                json!([{"nodes": "5", "schedule": "0 9 * * mon-fri"}]),
                "b[0].duration",
                false,
            ),
            (
                json!([{"nodes": "5", "duration": "8h"}]),
                "b[0].schedule",
                false,
            ),
            (
                json!([{"nodes": "5", "schedule": "0 9 * * mon-fri", "duration": "8h"}]),
                "",
                false,
            ),
            (
                json!([{"nodes": "5", "schedule": "0 9 * * xyz", "duration": "8h"}]),
                "b[0].schedule",
                false,
            ),
            (
                json!([{"nodes": "5", "schedule": "@daily", "duration": "1d"}]),
                "b[0].duration",
                false,
            ),
            (
                json!([{"nodes": "1"}, {"nodes": "1", "reasons": ["Empty", "Bored"]}]),
                "b[1].reasons[1]",
                false,
            ),
            (json!([{"nodes": 3}]), "b[0].nodes", false),
            (json!({"nodes": "1"}), "b", false),
            (json!([{"nodes": "0"}]), "", true),
            (json!([{"nodes": "0%", "reasons": ["Drifted"]}]), "", true),
            (
                json!([{"nodes": "0", "schedule": "@daily", "duration": "1h"}]),
                "",
                false,
            ),
        ];
        for (budgets, path, warns) in cases {
            let v = validate_budgets(&budgets, "b");
            if path.is_empty() {
                assert!(v.is_allowed(), "{budgets}: {:?}", v.errors);
            } else {
                assert!(
                    v.errors.iter().any(|e| e.path == path),
                    "{budgets}: want {path}, got {:?}",
                    v.errors
                );
                assert!(v.message().contains(path));
            }
            assert_eq!(!v.warnings.is_empty(), warns, "{budgets}: {:?}", v.warnings);
        }
    }
}
