//! Go's `time.ParseDuration`, the syntax of every duration in Karpenter's CRDs (`expireAfter`,
//! `consolidateAfter`, budget `duration`, `terminationGracePeriod`).
//!
//! Our own rather than the go-parse-duration crate's: that one indexes characters by byte
//! position (`chars().nth(i)` for `i < len()`), which panics on a multi-byte unit (`1é`) and is
//! quadratic on a long one (a 260 KB unit took minutes), and its running sum overflows (a panic
//! in debug builds) before its overflow check. Found by `capstan fuzz duration`.

/// Nanoseconds, as Go's `time.Duration`: `[-+]?([0-9]*(\.[0-9]*)?[a-zµμ]+)+`, units `ns`, `us`
/// (`µs`, `μs`), `ms`, `s`, `m`, `h`; `0` alone needs no unit. Linear in the input, never panics.
pub fn parse_go_duration(input: &str) -> Result<i64, String> {
    let invalid = || format!("invalid duration {input:?}");
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Go accumulates in a u64 bounded by 2^63, so that "-9223372036854775808ns" still reads.
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = digits(rest);
        let mut value: u64 = 0;
        for d in rest[..int_len].bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .filter(|v| *v <= LIMIT)
                .ok_or_else(invalid)?;
        }
        rest = &rest[int_len..];
        let (mut fraction, mut scale, mut frac_len) = (0u64, 1f64, 0);
        if let Some(after_dot) = rest.strip_prefix('.') {
            frac_len = digits(after_dot);
            // Digits beyond what a u64 holds only refine nanoseconds: Go ignores them.
            for d in after_dot[..frac_len].bytes() {
                let next = fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(d - b'0')));
                match next {
                    Some(f) if f <= LIMIT => {
                        fraction = f;
                        scale *= 10.0;
                    }
                    _ => break,
                }
            }
            rest = &after_dot[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit_name, after) = rest.split_at(unit_len);
        rest = after;
        let unit: u64 = match unit_name {
            "" => return Err(format!("missing unit in duration {input:?}")),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("unknown unit {unit_name:?} in duration {input:?}")),
        };
        if value > LIMIT / unit {
            return Err(invalid());
        }
        value *= unit;
        if fraction > 0 {
            // At most one unit (3.6e12 ns) more: no u64 overflow.
            value += (fraction as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(value)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(invalid)?;
    }
    if negative {
        // total ≤ 2^63, so its negation fits.
        Ok((-i128::from(total)) as i64)
    } else {
        i64::try_from(total).map_err(|_| invalid())
    }
}

/// Length of the leading ASCII digits.
fn digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn reads_what_go_reads() {
        for (s, want) in [
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600_000_000),
            ("5.s", 5 * S),
            (".5s", S / 2),
            ("1.004s", S + 4_000_000),
            ("100.00100s", 100 * S + 1_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("12μs", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14 * S),
            ("15m", 15 * 60 * S),
            ("16h", 16 * 3600 * S),
            ("3h30m", (3 * 3600 + 30 * 60) * S),
            ("10.5s4m", 4 * 60 * S + 10 * S + S / 2),
            ("-2m3.4s", -(2 * 60 * S + 3 * S + 400_000_000)),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 20 * 60 * S),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("0.100000000000000000000h", 6 * 60 * S),
            ("0.830103483285477580700h", 2_988_372_539_827),
            ("720h", 720 * 3600 * S),
        ] {
            assert_eq!(parse_go_duration(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for s in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "\u{85}\u{85}",
            "\u{FFFD}",
            "hello \u{FFFF}world",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "-9223372036854775809ns",
            "9223372036854ms775us808ns",
            "-9223372036854775808ns1ns",
        ] {
            assert!(parse_go_duration(s).is_err(), "{s:?}");
        }
    }

    /// Inputs that broke the go-parse-duration crate (found by `capstan fuzz duration`).
    #[test]
    fn regressions_from_the_fuzzer() {
        // A multi-byte unit: a panic (`unwrap` on None).
        assert!(parse_go_duration("1é").is_err());
        assert!(parse_go_duration("1hé").is_err());
        // A running sum past i64::MAX: an overflow panic in debug builds.
        assert!(
            parse_go_duration("4611686018427387903ns4611686018427387903ns4611686018427387903ns")
                .is_err()
        );
        // A long unit: quadratic, minutes for this one.
        let long = format!("1h1{}", "a".repeat(300_000));
        let started = std::time::Instant::now();
        assert!(parse_go_duration(&long).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
