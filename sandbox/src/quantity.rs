//! Kubernetes resource quantities (`500m`, `1.5`, `2Gi`, `1e9`) as numbers, for the scheduler's
//! arithmetic. `f64` is exact enough for comparing requests with allocatable amounts (integers
//! up to 2^53, i.e. 8 PiB of memory, are exact; millicores are never that large).

use serde_json::Value;

/// The value of a quantity in base units (cores, bytes, count); `None` when malformed.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let n: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp => {
            let e: i32 = exp.strip_prefix(['e', 'E'])?.parse().ok()?;
            10f64.powi(e)
        }
    };
    let v = n * scale;
    v.is_finite().then_some(v)
}

/// A quantity as it appears in JSON: a string, or (leniently) a number.
pub fn of(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        let cases = [
            ("500m", 0.5),
            ("2", 2.0),
            ("1.5", 1.5),
            ("1Gi", 1073741824.0),
            ("512Mi", 536870912.0),
            ("1G", 1e9),
            ("1e3", 1000.0),
            ("100k", 1e5),
        ];
        for (q, want) in cases {
            assert_eq!(parse(q), Some(want), "{q}");
        }
        assert_eq!(parse("abc"), None);
        assert_eq!(parse("1Zi"), None);
        assert_eq!(of(&serde_json::json!(3)), Some(3.0));
    }
}
