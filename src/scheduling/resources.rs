//! Kubernetes quantities and resource lists as plain integers.
//!
//! [`parse_quantity`] follows apimachinery's `ParseQuantity` grammar (sign, decimal number, then a
//! binary suffix `Ki`..`Ei`, a decimal suffix `n u m k M G T P E`, or an exponent `e3`/`E-2`) and
//! keeps the value exactly, in nano units; like the API server it rounds finer precision up (away
//! from zero). [`Resources`] holds what scheduling compares: CPU in millicores, memory and
//! ephemeral storage in bytes, pods, and extended resources (`nvidia.com/gpu`, ...) as integers.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::str::FromStr;

use thiserror::Error;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub const PODS: &str = "pods";

const NANOS_PER_UNIT: u128 = 1_000_000_000;
/// Largest magnitude we hold, so that [`Quantity::value`] always fits an `i64`.
const MAX_NANOS: u128 = i64::MAX as u128 * NANOS_PER_UNIT;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("invalid quantity {0:?}: expected a number such as 100m, 1.5, 512Mi or 1e3")]
    InvalidNumber(String),
    #[error(
        "invalid quantity {input:?}: unknown suffix {suffix:?} (expected Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent such as e3)"
    )]
    UnknownSuffix { input: String, suffix: String },
    #[error("quantity {0:?} is out of range")]
    OutOfRange(String),
}

/// A parsed quantity, exact to 10^-9 of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    pub const ZERO: Quantity = Quantity { nanos: 0 };

    pub fn from_nanos(nanos: i128) -> Self {
        Quantity { nanos }
    }

    pub fn nanos(self) -> i128 {
        self.nanos
    }

    /// Whole units, rounded up in magnitude as apimachinery's `Value()` does (`0.1` → 1,
    /// `1500m` → 2).
    pub fn value(self) -> i64 {
        round_away_to_i64(self.nanos, NANOS_PER_UNIT)
    }

    /// Thousandths, rounded up in magnitude as `MilliValue()` does (CPU `0.0001` → 1m).
    pub fn milli_value(self) -> i64 {
        round_away_to_i64(self.nanos, 1_000_000)
    }

    pub fn as_f64(self) -> f64 {
        self.nanos as f64 / NANOS_PER_UNIT as f64
    }
}

fn round_away_to_i64(n: i128, d: u128) -> i64 {
    // Parsed quantities stay within MAX_NANOS; `from_nanos` values may not, so saturate.
    let q = n.unsigned_abs().div_ceil(d).min(i64::MAX as u128) as i64;
    if n < 0 { -q } else { q }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_quantity(s)
    }
}

/// Parses a Kubernetes quantity: `100m`, `1.5`, `512Mi`, `1Gi`, `1e3`, `1k`, `-2`, `.5`.
pub fn parse_quantity(input: &str) -> Result<Quantity, QuantityError> {
    if input.is_empty() {
        return Err(QuantityError::Empty);
    }
    let invalid = || QuantityError::InvalidNumber(input.to_string());
    let out_of_range = || QuantityError::OutOfRange(input.to_string());

    let (negative, rest) = match input.as_bytes()[0] {
        b'-' => (true, &input[1..]),
        b'+' => (false, &input[1..]),
        _ => (false, input),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return Err(invalid());
    }
    // Trailing fraction zeros carry no value; dropping them keeps long inputs like `1.000…` exact.
    let frac_part = frac_part.trim_end_matches('0');

    let mut mantissa: u128 = 0;
    for digit in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit - b'0')))
            .ok_or_else(out_of_range)?;
    }

    let (exp10, exp2): (i64, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => (parse_exponent(&s[1..]).ok_or_else(invalid)?, 0),
        s => {
            return Err(QuantityError::UnknownSuffix {
                input: input.to_string(),
                suffix: s.to_string(),
            });
        }
    };
    if mantissa == 0 {
        return Ok(Quantity::ZERO);
    }

    let scaled = mantissa.checked_shl(exp2).ok_or_else(out_of_range)?;
    if scaled >> exp2 != mantissa {
        return Err(out_of_range());
    }
    // nanos = scaled * 10^(9 + exp10 - fraction digits)
    let power = 9 + exp10 - frac_part.len() as i64;
    let magnitude = if power >= 0 {
        u32::try_from(power)
            .ok()
            .and_then(|p| 10u128.checked_pow(p))
            .and_then(|f| scaled.checked_mul(f))
            .ok_or_else(out_of_range)?
    } else {
        // Finer than a nano: round the magnitude up, as the API server does.
        match u32::try_from(-power)
            .ok()
            .and_then(|p| 10u128.checked_pow(p))
        {
            Some(d) => scaled.div_ceil(d),
            None => 1,
        }
    };
    if magnitude > MAX_NANOS {
        return Err(out_of_range());
    }
    let nanos = magnitude as i128;
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
    })
}

fn parse_exponent(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Beyond ±1000 the result is either out of range or rounds to one nano anyway.
    let exp: i64 = digits.parse::<i64>().unwrap_or(i64::MAX).min(1000);
    Some(if s.starts_with('-') { -exp } else { exp })
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("resource {name:?}: {source}")]
pub struct ResourceError {
    pub name: String,
    #[source]
    pub source: QuantityError,
}

/// Amounts of the resources scheduling compares. Signed, so that differences may go negative.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub ephemeral_storage_bytes: i64,
    pub pods: i64,
    /// Extended resources (`nvidia.com/gpu`, `hugepages-2Mi`, ...) in whole units; zero entries
    /// are not stored.
    pub extended: BTreeMap<String, i64>,
}

impl Resources {
    pub fn new() -> Self {
        Self::default()
    }

    /// A resource list (`cpu: 100m`, `memory: 1Gi`, ...), e.g. from kubelet settings.
    pub fn from_strings<'a, I>(list: I) -> Result<Self, ResourceError>
    where
        I: IntoIterator<Item = (&'a String, &'a String)>,
    {
        let mut out = Resources::new();
        for (name, value) in list {
            let q = parse_quantity(value).map_err(|source| ResourceError {
                name: name.clone(),
                source,
            })?;
            out.set(name, q);
        }
        Ok(out)
    }

    /// A resource list as the Kubernetes API types carry it (container requests, node capacity).
    pub fn from_k8s(
        list: &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    ) -> Result<Self, ResourceError> {
        Self::from_strings(list.iter().map(|(k, v)| (k, &v.0)))
    }

    /// Sets one resource by its Kubernetes name, in that resource's unit.
    pub fn set(&mut self, name: &str, q: Quantity) {
        match name {
            CPU => self.cpu_millis = q.milli_value(),
            MEMORY => self.memory_bytes = q.value(),
            EPHEMERAL_STORAGE => self.ephemeral_storage_bytes = q.value(),
            PODS => self.pods = q.value(),
            _ => self.set_extended(name, q.value()),
        }
    }

    /// Sets one resource by its Kubernetes name to a value already in this type's units (CPU in
    /// millicores, memory in bytes), e.g. one taken from another `Resources` with [`Self::get`].
    pub fn set_raw(&mut self, name: &str, value: i64) {
        match name {
            CPU => self.cpu_millis = value,
            MEMORY => self.memory_bytes = value,
            EPHEMERAL_STORAGE => self.ephemeral_storage_bytes = value,
            PODS => self.pods = value,
            _ => self.set_extended(name, value),
        }
    }

    pub fn set_extended(&mut self, name: &str, value: i64) {
        if value == 0 {
            self.extended.remove(name);
        } else {
            self.extended.insert(name.to_string(), value);
        }
    }

    /// One resource by its Kubernetes name (CPU in millicores, memory in bytes).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.cpu_millis,
            MEMORY => self.memory_bytes,
            EPHEMERAL_STORAGE => self.ephemeral_storage_bytes,
            PODS => self.pods,
            _ => self.extended.get(name).copied().unwrap_or(0),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.cpu_millis == 0
            && self.memory_bytes == 0
            && self.ephemeral_storage_bytes == 0
            && self.pods == 0
            && self.extended.is_empty()
    }

    /// Whether these requests fit in `available`: every resource requested is at most what is
    /// available (an extended resource missing from `available` counts as zero).
    pub fn fits(&self, available: &Resources) -> bool {
        self.cpu_millis <= available.cpu_millis
            && self.memory_bytes <= available.memory_bytes
            && self.ephemeral_storage_bytes <= available.ephemeral_storage_bytes
            && self.pods <= available.pods
            && self
                .extended
                .iter()
                .all(|(name, v)| *v <= available.get(name))
    }

    /// The names of resources requested here that `available` cannot cover (for messages).
    pub fn exceeding(&self, available: &Resources) -> Vec<String> {
        let mut out = Vec::new();
        for (name, v) in [
            (CPU, self.cpu_millis),
            (MEMORY, self.memory_bytes),
            (EPHEMERAL_STORAGE, self.ephemeral_storage_bytes),
            (PODS, self.pods),
        ] {
            if v > available.get(name) {
                out.push(name.to_string());
            }
        }
        for (name, v) in &self.extended {
            if *v > available.get(name) {
                out.push(name.clone());
            }
        }
        out
    }

    /// Component-wise maximum (e.g. init containers against the sum of app containers).
    /// `*self = self.max(other)` without building a new value (hot in the scheduler).
    pub fn max_assign(&mut self, other: &Resources) {
        self.cpu_millis = self.cpu_millis.max(other.cpu_millis);
        self.memory_bytes = self.memory_bytes.max(other.memory_bytes);
        self.ephemeral_storage_bytes = self
            .ephemeral_storage_bytes
            .max(other.ephemeral_storage_bytes);
        self.pods = self.pods.max(other.pods);
        // One map lookup per entry (this runs over every instance type of every new claim).
        for (name, v) in &other.extended {
            match self.extended.get_mut(name) {
                Some(have) => *have = (*have).max(*v),
                None if *v > 0 => {
                    self.extended.insert(name.clone(), *v);
                }
                None => {}
            }
        }
    }

    pub fn max(&self, other: &Resources) -> Resources {
        let mut out = Resources {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
            ephemeral_storage_bytes: self
                .ephemeral_storage_bytes
                .max(other.ephemeral_storage_bytes),
            pods: self.pods.max(other.pods),
            extended: self.extended.clone(),
        };
        for (name, v) in &other.extended {
            let merged = out.get(name).max(*v);
            out.set_extended(name, merged);
        }
        out
    }

    /// Negative amounts raised to zero (an overhead larger than a tiny instance leaves nothing).
    pub fn clamp_non_negative(mut self) -> Resources {
        self.cpu_millis = self.cpu_millis.max(0);
        self.memory_bytes = self.memory_bytes.max(0);
        self.ephemeral_storage_bytes = self.ephemeral_storage_bytes.max(0);
        self.pods = self.pods.max(0);
        self.extended.retain(|_, v| *v > 0);
        self
    }

    /// As a Kubernetes resource list (`cpu: 1930m`, `memory: 6903Mi`), e.g. for NodeClaim status.
    pub fn to_strings(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert(CPU.to_string(), format_millis(self.cpu_millis));
        out.insert(MEMORY.to_string(), format_bytes(self.memory_bytes));
        out.insert(
            EPHEMERAL_STORAGE.to_string(),
            format_bytes(self.ephemeral_storage_bytes),
        );
        out.insert(PODS.to_string(), self.pods.to_string());
        for (name, v) in &self.extended {
            out.insert(name.clone(), v.to_string());
        }
        out
    }

    fn zip_with(&self, other: &Resources, f: impl Fn(i64, i64) -> i64) -> Resources {
        let mut out = Resources {
            cpu_millis: f(self.cpu_millis, other.cpu_millis),
            memory_bytes: f(self.memory_bytes, other.memory_bytes),
            ephemeral_storage_bytes: f(self.ephemeral_storage_bytes, other.ephemeral_storage_bytes),
            pods: f(self.pods, other.pods),
            extended: BTreeMap::new(),
        };
        let names = self.extended.keys().chain(other.extended.keys());
        for name in names {
            out.set_extended(name, f(self.get(name), other.get(name)));
        }
        out
    }
}

/// `1930m`, or `2` when whole.
pub fn format_millis(millis: i64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// The largest binary suffix that states the value exactly (`6903Mi`, `17Gi`, `1536`).
pub fn format_bytes(bytes: i64) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    for (suffix, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        let unit = 1i64 << shift;
        if bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

impl Resources {
    /// One resource formatted as Kubernetes writes it (`1004`, `1500m`, `64Gi`); `0` when absent.
    pub fn display_one(&self, name: &str) -> String {
        self.to_strings().remove(name).unwrap_or_else(|| "0".into())
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .to_strings()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Add<&Resources> for &Resources {
    type Output = Resources;
    fn add(self, rhs: &Resources) -> Resources {
        self.zip_with(rhs, i64::saturating_add)
    }
}

impl Sub<&Resources> for &Resources {
    type Output = Resources;
    fn sub(self, rhs: &Resources) -> Resources {
        self.zip_with(rhs, i64::saturating_sub)
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, rhs: Resources) -> Resources {
        &self + &rhs
    }
}

impl Sub for Resources {
    type Output = Resources;
    fn sub(self, rhs: Resources) -> Resources {
        &self - &rhs
    }
}

impl AddAssign<&Resources> for Resources {
    fn add_assign(&mut self, rhs: &Resources) {
        *self = &*self + rhs;
    }
}

impl SubAssign<&Resources> for Resources {
    fn sub_assign(&mut self, rhs: &Resources) {
        *self = &*self - rhs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KI: i128 = 1 << 10;
    const MI: i128 = 1 << 20;
    const GI: i128 = 1 << 30;
    const N: i128 = 1_000_000_000;

    #[test]
    fn parses_quantities() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("1", N),
            ("100m", 100_000_000),
            ("1.5", 1_500_000_000),
            ("512Mi", 512 * MI * N),
            ("1Gi", GI * N),
            ("1.5Gi", 3 * GI / 2 * N),
            ("0.5Ki", 512 * N),
            ("1e3", 1000 * N),
            ("1E3", 1000 * N),
            ("1e+3", 1000 * N),
            ("1e-3", 1_000_000),
            ("1k", 1000 * N),
            ("2M", 2_000_000 * N),
            ("1G", 1_000_000_000 * N),
            ("1T", 1_000_000_000_000 * N),
            ("1P", 1_000_000_000_000_000 * N),
            ("1E", 1_000_000_000_000_000_000 * N),
            ("1Ti", (1 << 40) * N),
            ("1Pi", (1 << 50) * N),
            ("1Ei", (1 << 60) * N),
            ("5n", 5),
            ("5u", 5_000),
            (".5", 500_000_000),
            ("5.", 5 * N),
            ("+7", 7 * N),
            ("-7", -7 * N),
            ("-100m", -100_000_000),
            ("007", 7 * N),
            ("1.000000000000000000000000000000000000000000000", N),
            ("0.1Mi", MI * N / 10),
            // Below a nano, the API server rounds up.
            ("0.1n", 1),
            ("1e-20", 1),
            ("1e-2000", 1),
            ("-0.1n", -1),
            ("0e99999", 0),
            ("0.0", 0),
        ];
        for (input, nanos) in cases {
            assert_eq!(
                parse_quantity(input).map(Quantity::nanos),
                Ok(*nanos),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_malformed_quantities() {
        use QuantityError::*;
        let unknown = |input: &str, suffix: &str| UnknownSuffix {
            input: input.into(),
            suffix: suffix.into(),
        };
        let cases: Vec<(&str, QuantityError)> = vec![
            ("", Empty),
            ("m", InvalidNumber("m".into())),
            (".", InvalidNumber(".".into())),
            ("-", InvalidNumber("-".into())),
            ("1.2.3", InvalidNumber("1.2.3".into())),
            ("1e", InvalidNumber("1e".into())),
            ("1e+", InvalidNumber("1e+".into())),
            ("1e1.5", InvalidNumber("1e1.5".into())),
            ("1Ki5", unknown("1Ki5", "Ki5")),
            ("1K", unknown("1K", "K")),
            ("1mi", unknown("1mi", "mi")),
            ("1 Gi", unknown("1 Gi", " Gi")),
            (" 1", InvalidNumber(" 1".into())),
            ("1Gib", unknown("1Gib", "Gib")),
            ("abc", InvalidNumber("abc".into())),
            ("1e30", OutOfRange("1e30".into())),
            ("16Ei", OutOfRange("16Ei".into())),
            (
                "99999999999999999999999999999999999999999",
                OutOfRange("99999999999999999999999999999999999999999".into()),
            ),
        ];
        for (input, err) in cases {
            assert_eq!(parse_quantity(input), Err(err), "{input}");
        }
        // Messages name the input and say what is accepted.
        let msg = parse_quantity("1K").unwrap_err().to_string();
        assert!(msg.contains("\"1K\"") && msg.contains("Ki Mi Gi"), "{msg}");
    }

    #[test]
    fn rounds_values_up() {
        let cases: &[(&str, i64, i64)] = &[
            // input, value(), milli_value()
            ("1", 1, 1000),
            ("100m", 1, 100),
            ("1500m", 2, 1500),
            ("0.0001", 1, 1),
            ("1.5Gi", 1_610_612_736, 1_610_612_736_000),
            ("-1500m", -2, -1500),
            ("0", 0, 0),
        ];
        for (input, value, milli) in cases {
            let q: Quantity = input.parse().unwrap();
            assert_eq!((q.value(), q.milli_value()), (*value, *milli), "{input}");
        }
    }

    #[test]
    fn resources_from_lists() {
        let list: BTreeMap<String, String> = [
            ("cpu", "1.5"),
            ("memory", "512Mi"),
            ("ephemeral-storage", "1Gi"),
            ("pods", "3"),
            ("nvidia.com/gpu", "2"),
            ("example.com/zero", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let r = Resources::from_strings(&list).unwrap();
        assert_eq!(r.cpu_millis, 1500);
        assert_eq!(r.memory_bytes, 512 << 20);
        assert_eq!(r.ephemeral_storage_bytes, 1 << 30);
        assert_eq!(r.pods, 3);
        assert_eq!(r.get("nvidia.com/gpu"), 2);
        assert!(!r.extended.contains_key("example.com/zero"));

        let bad: BTreeMap<String, String> = [("memory".to_string(), "1GB".to_string())].into();
        let err = Resources::from_strings(&bad).unwrap_err();
        assert_eq!(err.name, "memory");
        assert!(
            err.to_string()
                .starts_with("resource \"memory\": invalid quantity \"1GB\"")
        );

        let k8s: BTreeMap<_, _> = [(
            "cpu".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("250m".into()),
        )]
        .into();
        assert_eq!(Resources::from_k8s(&k8s).unwrap().cpu_millis, 250);
    }

    fn res(cpu: i64, mem_mi: i64, pods: i64, gpus: i64) -> Resources {
        let mut r = Resources {
            cpu_millis: cpu,
            memory_bytes: mem_mi << 20,
            pods,
            ..Resources::default()
        };
        r.set_extended("nvidia.com/gpu", gpus);
        r
    }

    #[test]
    fn arithmetic_and_fit() {
        let a = res(1000, 1024, 2, 1);
        let b = res(500, 512, 1, 0);
        assert_eq!(&a + &b, res(1500, 1536, 3, 1));
        assert_eq!(&a - &b, res(500, 512, 1, 1));
        assert_eq!(&b - &a, res(-500, -512, -1, -1));
        assert_eq!((&b - &a).clamp_non_negative(), Resources::default());
        let mut c = a.clone();
        c += &b;
        c -= &b;
        assert_eq!(c, a);
        // Subtracting to exactly zero drops the extended entry.
        assert!((&a - &a).is_zero());
        assert_eq!(a.max(&res(2000, 0, 0, 3)), res(2000, 1024, 2, 3));

        let cases = [
            // requests, available, fits
            (res(1000, 1024, 1, 0), res(1000, 1024, 1, 0), true),
            (res(1001, 1024, 1, 0), res(1000, 1024, 1, 0), false),
            (res(0, 1025, 1, 0), res(1000, 1024, 1, 0), false),
            (res(0, 0, 2, 0), res(1000, 1024, 1, 0), false),
            (res(0, 0, 0, 1), res(1000, 1024, 1, 0), false),
            (res(0, 0, 0, 1), res(1000, 1024, 1, 1), true),
            (Resources::default(), Resources::default(), true),
        ];
        for (req, avail, fits) in cases {
            assert_eq!(req.fits(&avail), fits, "{req} in {avail}");
        }
        assert_eq!(
            res(2000, 0, 0, 1).exceeding(&res(1000, 1024, 1, 0)),
            vec!["cpu".to_string(), "nvidia.com/gpu".to_string()]
        );
    }

    #[test]
    fn formats_lists() {
        let mut r = res(1930, 6903, 29, 1);
        r.ephemeral_storage_bytes = 17 * GI as i64;
        let list = r.to_strings();
        assert_eq!(list["cpu"], "1930m");
        assert_eq!(list["memory"], "6903Mi");
        assert_eq!(list["ephemeral-storage"], "17Gi");
        assert_eq!(list["pods"], "29");
        assert_eq!(list["nvidia.com/gpu"], "1");
        assert_eq!(format_millis(2000), "2");
        assert_eq!(format_bytes(1536), "1536");
        assert_eq!(format_bytes(KI as i64 * 3), "3Ki");
        // Round trip through the parser.
        let back = Resources::from_strings(&list).unwrap();
        assert_eq!(back, r);
    }
}
