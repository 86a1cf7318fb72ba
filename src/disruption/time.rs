//! Timestamps as the API carries them, read into `SystemTime` (what every decision compares).

use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub fn from_k8s(t: &Time) -> SystemTime {
    SystemTime::from(t.0)
}

/// An RFC 3339 string (conditions and `status.lastPodEventTime` are strings in our types).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    s.parse::<Timestamp>().ok().map(SystemTime::from)
}
