use super::*;
use crate::apis::nodepool::DisruptionReason;
use crate::disruption::testkit::{budget, nodepool};
use k8s_openapi::jiff::Timestamp;

fn t(rfc3339: &str) -> SystemTime {
    SystemTime::from(rfc3339.parse::<Timestamp>().expect("time"))
}

fn pool_with(budgets: Vec<Budget>) -> NodePool {
    let mut p = nodepool("default");
    p.spec.disruption = Some(crate::apis::Disruption {
        budgets: Some(budgets),
        ..Default::default()
    });
    p
}

#[test]
fn default_is_ten_percent_rounded_up() {
    let p = nodepool("default");
    let now = t("2026-01-05T10:00:00Z");
    for (total, want) in [(0, 0), (1, 1), (9, 1), (10, 1), (11, 2), (25, 3), (100, 10)] {
        assert_eq!(
            allowed_disruptions(&p, total, 0, now, Reason::Underutilized),
            want,
            "{total} nodes"
        );
    }
}

#[test]
fn counts_and_percents() {
    let now = t("2026-01-05T10:00:00Z");
    for (nodes, total, disrupting, want) in [
        ("5", 3, 0, 5),
        ("5", 10, 2, 3),
        ("5", 10, 7, 0), // saturating
        ("0", 10, 0, 0),
        ("50%", 3, 0, 2),
        ("34%", 3, 0, 2),
        ("33%", 3, 0, 1),
        ("100%", 7, 1, 6),
        ("0%", 7, 0, 0),
        ("1%", 1, 0, 1),
        // Past what the webhook admits (a pool stored without it): scaled, never overflowing
        // (9223372036854775808% of 3 overflowed usize; found by `capstan fuzz budget`).
        ("150%", 10, 0, 15),
        ("9223372036854775808%", 3, 0, 276_701_161_105_643_275),
        ("18446744073709551615%", 1000, 0, usize::MAX),
    ] {
        let p = pool_with(vec![budget(nodes, None, None, None)]);
        assert_eq!(
            allowed_disruptions(&p, total, disrupting, now, Reason::Empty),
            want,
            "nodes {nodes} of {total}, {disrupting} disrupting"
        );
    }
}

#[test]
fn scheduled_budget_over_time() {
    // Business hours freeze, 09:00-17:00 UTC on weekdays, plus 10% at all times.
    let p = pool_with(vec![
        budget("10%", None, None, None),
        budget("0", Some("0 9 * * mon-fri"), Some("8h"), None),
    ]);
    // 2026-01-05 is a Monday.
    for (when, want) in [
        ("2026-01-05T08:59:59Z", 2),
        ("2026-01-05T09:00:00Z", 0),
        ("2026-01-05T10:00:00Z", 0),
        ("2026-01-05T16:59:59Z", 0),
        ("2026-01-05T17:00:00Z", 2),
        ("2026-01-09T12:00:00Z", 0), // Friday
        ("2026-01-10T10:00:00Z", 2), // Saturday
        ("2026-01-11T10:00:00Z", 2), // Sunday
    ] {
        assert_eq!(
            allowed_disruptions(&p, 20, 0, t(when), Reason::Drifted),
            want,
            "{when}"
        );
    }
}

#[test]
fn macros_and_minutes() {
    let daily = pool_with(vec![budget("0", Some("@daily"), Some("1h30m"), None)]);
    for (when, want) in [
        ("2026-01-05T00:00:00Z", 0),
        ("2026-01-05T01:29:00Z", 0),
        ("2026-01-05T01:30:00Z", usize::MAX),
        ("2026-01-05T23:59:00Z", usize::MAX),
    ] {
        assert_eq!(
            allowed_disruptions(&daily, 10, 0, t(when), Reason::Empty),
            want,
            "{when}"
        );
    }
}

#[test]
fn unreadable_schedule_fails_closed() {
    for (schedule, duration) in [
        (Some("0 9 * *"), Some("8h")),
        (Some("not a cron"), Some("8h")),
        (Some("0 9 * * mon"), Some("eight hours")),
        (Some("0 9 * * mon"), None),
    ] {
        let p = pool_with(vec![budget("100%", schedule, duration, None)]);
        assert_eq!(
            allowed_disruptions(&p, 10, 0, t("2026-01-05T10:00:00Z"), Reason::Empty),
            0,
            "{schedule:?} {duration:?}"
        );
    }
}

#[test]
fn reasons_filter_and_most_restrictive_wins() {
    let p = pool_with(vec![
        budget("0", None, None, Some(vec![DisruptionReason::Drifted])),
        budget(
            "3",
            None,
            None,
            Some(vec![DisruptionReason::Empty, DisruptionReason::Drifted]),
        ),
        budget("50%", None, None, None),
    ]);
    let now = t("2026-01-05T10:00:00Z");
    assert_eq!(allowed_disruptions(&p, 10, 0, now, Reason::Drifted), 0);
    assert_eq!(allowed_disruptions(&p, 10, 0, now, Reason::Empty), 3);
    assert_eq!(
        allowed_disruptions(&p, 10, 0, now, Reason::Underutilized),
        5
    );
    // Expiration is forceful: no budget applies.
    assert_eq!(
        allowed_disruptions(&p, 10, 0, now, Reason::Expired),
        usize::MAX
    );
}

#[test]
fn allowance_names_the_limiting_budget() {
    let p = pool_with(vec![budget("0", Some("0 9 * * mon-fri"), Some("8h"), None)]);
    let a = allowance(&p, 3, 0, t("2026-01-05T10:00:00Z"), Reason::Underutilized);
    assert_eq!(a.allowed, 0);
    let msg = a.limiting.expect("message");
    assert!(
        msg.contains("budget 0 of 3") && msg.contains("0 9 * * mon-fri"),
        "{msg}"
    );
}
