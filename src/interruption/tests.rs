//! Bodies shaped exactly as EventBridge delivers them to an SQS target (the envelope itself,
//! no SNS wrapper), from the AWS documentation's examples.

use super::*;

const SPOT: &str = r#"{
  "version": "0",
  "id": "1e5527d7-bb36-4607-3370-4164db56a40e",
  "detail-type": "EC2 Spot Instance Interruption Warning",
  "source": "aws.ec2",
  "account": "123456789012",
  "time": "1970-01-01T00:00:00Z",
  "region": "us-east-1",
  "resources": ["arn:aws:ec2:us-east-1b:instance/i-0b662ef9931388ba0"],
  "detail": {"instance-id": "i-0b662ef9931388ba0", "instance-action": "terminate"}
}"#;

const REBALANCE: &str = r#"{
  "version": "0",
  "id": "5f0c2a4f-3d0c-4b3f-a3c0-1234567890ab",
  "detail-type": "EC2 Instance Rebalance Recommendation",
  "source": "aws.ec2",
  "account": "123456789012",
  "time": "2026-11-26T03:00:00Z",
  "region": "us-east-1",
  "resources": ["arn:aws:ec2:us-east-1b:instance/i-0b662ef9931388ba0"],
  "detail": {"instance-id": "i-0b662ef9931388ba0"}
}"#;

const HEALTH: &str = r#"{
  "version": "0",
  "id": "7bf73129-1428-4cd3-a780-95db273d1602",
  "detail-type": "AWS Health Event",
  "source": "aws.health",
  "account": "123456789012",
  "time": "2026-11-26T03:00:00Z",
  "region": "us-east-1",
  "resources": ["i-0abc1111111111111", "i-0abc2222222222222"],
  "detail": {
    "eventArn": "arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED_1",
    "service": "EC2",
    "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
    "eventTypeCategory": "scheduledChange",
    "startTime": "Wed, 02 Dec 2026 03:00:00 GMT",
    "endTime": "Wed, 02 Dec 2026 04:00:00 GMT",
    "eventDescription": [{"language": "en_US", "latestDescription": "EC2 has detected degradation"}],
    "affectedEntities": [{"entityValue": "i-0abc1111111111111"}, {"entityValue": "i-0abc2222222222222"}]
  }
}"#;

fn state_change(state: &str) -> String {
    format!(
        r#"{{
  "version": "0",
  "id": "7bf73129-1428-4cd3-a780-95db273d1602",
  "detail-type": "EC2 Instance State-change Notification",
  "source": "aws.ec2",
  "account": "123456789012",
  "time": "2026-11-26T03:00:00Z",
  "region": "us-east-1",
  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
  "detail": {{"instance-id": "i-abcd1111", "state": "{state}"}}
}}"#
    )
}

#[test]
fn spot_interruption_cordons_and_drains() {
    let m = parse(SPOT).expect("parse");
    assert_eq!(m.kind, Kind::SpotInterruption);
    assert_eq!(m.instance_ids, vec!["i-0b662ef9931388ba0"]);
    assert_eq!(m.id, "1e5527d7-bb36-4607-3370-4164db56a40e");
    assert_eq!(m.time.as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(m.kind.action(), Action::CordonAndDrain);
    assert_eq!(m.kind.metric_label(), "spot_interrupted");
    assert_eq!(m.kind.event().0, "SpotInterrupted");
}

#[test]
fn rebalance_recommendation_is_only_an_event() {
    let m = parse(REBALANCE).expect("parse");
    assert_eq!(m.kind, Kind::RebalanceRecommendation);
    assert_eq!(m.instance_ids, vec!["i-0b662ef9931388ba0"]);
    assert_eq!(m.kind.action(), Action::NoAction);
    assert_eq!(m.kind.metric_label(), "rebalance_recommendation");
}

#[test]
fn scheduled_change_names_every_affected_instance() {
    let m = parse(HEALTH).expect("parse");
    assert_eq!(m.kind, Kind::ScheduledChange);
    assert_eq!(
        m.instance_ids,
        vec!["i-0abc1111111111111", "i-0abc2222222222222"]
    );
    assert_eq!(m.kind.action(), Action::CordonAndDrain);
}

#[test]
fn health_events_of_other_services_or_categories_are_unsupported() {
    let other = HEALTH.replace("\"service\": \"EC2\"", "\"service\": \"RDS\"");
    assert!(matches!(parse(&other), Err(ParseError::Unsupported(_))));
    let issue = HEALTH.replace("scheduledChange", "issue");
    assert!(matches!(parse(&issue), Err(ParseError::Unsupported(_))));
    let none = HEALTH.replace("i-0abc", "vol-0abc");
    assert!(matches!(parse(&none), Err(ParseError::Missing(_))));
}

#[test]
fn state_changes_drain_when_the_instance_stops_or_terminates() {
    for s in ["stopping", "stopped", "shutting-down", "terminated"] {
        let m = parse(&state_change(s)).expect("parse");
        assert_eq!(m.kind, Kind::StateChange(s.into()));
        assert_eq!(m.instance_ids, vec!["i-abcd1111"]);
        assert_eq!(m.kind.action(), Action::CordonAndDrain, "{s}");
    }
    for s in ["pending", "running"] {
        let m = parse(&state_change(s)).expect("parse");
        assert_eq!(m.kind.action(), Action::NoAction, "{s}");
    }
    assert_eq!(
        Kind::StateChange("stopped".into()).event().0,
        "InstanceStopping"
    );
    assert_eq!(
        Kind::StateChange("terminated".into()).event().0,
        "InstanceTerminating"
    );
}

#[test]
fn malformed_and_unknown_bodies_are_errors() {
    assert!(matches!(parse("not json"), Err(ParseError::Json(_))));
    assert!(matches!(
        parse("[]"),
        Err(ParseError::Missing("detail-type"))
    ));
    assert!(matches!(
        parse(r#"{"detail-type": "EC2 Spot Instance Interruption Warning"}"#),
        Err(ParseError::Missing("detail"))
    ));
    assert!(matches!(
        parse(r#"{"detail-type": "EC2 Spot Instance Interruption Warning", "detail": {}}"#),
        Err(ParseError::Missing("detail.instance-id"))
    ));
    assert!(matches!(
        parse(
            r#"{"detail-type": "EC2 Instance State-change Notification", "detail": {"instance-id": "i-1"}}"#
        ),
        Err(ParseError::Missing("detail.state"))
    ));
    assert!(matches!(
        parse(r#"{"detail-type": "Something Else", "detail": {}}"#),
        Err(ParseError::Unsupported(_))
    ));
}
