//! `SqsQueue` against moto's SQS: the queue's URL found by name, an EventBridge-shaped body
//! received (long polling, up to 10 at a time), parsed, and deleted; and envelopes that moto's
//! EventBridge itself delivers to the queue through a rule, as Karpenter's CloudFormation sets
//! it up. Without moto this prints why and passes, except under `CI=true`.

use crate::common;

use capstan::cloud::aws::StaticCredentials;
use capstan::cloud::aws::sqs::{SqsQueue, SqsSettings};
use capstan::cloud::queue::InterruptionQueue;
use capstan::interruption::{Kind, parse};
use common::moto::{self, Moto};
use serde_json::json;

fn settings(url: &str, queue: &str) -> SqsSettings {
    SqsSettings {
        region: moto::REGION.into(),
        queue_name: queue.into(),
        endpoint_url: Some(url.into()),
        credentials: Some(StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
        }),
    }
}

#[tokio::test]
async fn sqs_queue_receives_and_deletes_eventbridge_messages() {
    let Some(server) = Moto::start() else {
        return;
    };
    let client = moto::sqs(&server.url).await;
    client
        .create_queue()
        .queue_name("capstan-interruption")
        .send()
        .await
        .expect("create queue");
    let settings = settings(&server.url, "capstan-interruption");
    let queue = SqsQueue::new(&settings).await.expect("SqsQueue");
    assert!(
        queue.url().ends_with("/capstan-interruption"),
        "{}",
        queue.url()
    );

    let body = json!({
        "version": "0",
        "id": "1e5527d7-bb36-4607-3370-4164db56a40e",
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-11-26T03:00:00Z",
        "region": moto::REGION,
        "resources": ["arn:aws:ec2:us-west-2a:instance/i-0b662ef9931388ba0"],
        "detail": {"instance-id": "i-0b662ef9931388ba0", "instance-action": "terminate"}
    })
    .to_string();
    client
        .send_message()
        .queue_url(queue.url())
        .message_body(&body)
        .send()
        .await
        .expect("send");

    let received = queue.receive().await.expect("receive");
    assert_eq!(received.len(), 1, "{received:?}");
    let m = &received[0];
    assert_eq!(m.body, body);
    let parsed = parse(&m.body).expect("parse");
    assert_eq!(parsed.kind, Kind::SpotInterruption);
    assert_eq!(parsed.instance_ids, vec!["i-0b662ef9931388ba0"]);
    queue.delete(&m.receipt).await.expect("delete");

    // Gone for good: not even after its visibility timeout.
    let attrs = client
        .get_queue_attributes()
        .queue_url(queue.url())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let count = |name: aws_sdk_sqs::types::QueueAttributeName| {
        attrs
            .attributes()
            .and_then(|a| a.get(&name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
        "0"
    );
    assert_eq!(
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        "0"
    );

    // A queue that does not exist is an error, not a panic.
    let missing = SqsSettings {
        queue_name: "no-such-queue".into(),
        ..settings
    };
    assert!(SqsQueue::new(&missing).await.is_err());
}

#[tokio::test]
async fn eventbridge_envelopes_reach_the_queue_and_parse() {
    let Some(server) = Moto::start() else {
        return;
    };
    let sqs = moto::sqs(&server.url).await;
    let url = sqs
        .create_queue()
        .queue_name("interruptions")
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue arn");
    // boto3's EventBridge client (in moto's venv): moto's bus then writes the envelopes into SQS
    // as EventBridge does; one Rust SDK less to build for a test.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/eventbridge.py");
    let out = std::process::Command::new(moto::python())
        .args([script, &server.url, &arn])
        .output()
        .expect("run tests/common/eventbridge.py");
    assert!(
        out.status.success(),
        "eventbridge.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let queue = SqsQueue::new(&settings(&server.url, "interruptions"))
        .await
        .expect("SqsQueue");
    let mut kinds = Vec::new();
    for _ in 0..3 {
        for m in queue.receive().await.expect("receive") {
            let parsed = parse(&m.body).unwrap_or_else(|e| panic!("{e}: {}", m.body));
            kinds.push((parsed.kind, parsed.instance_ids));
            queue.delete(&m.receipt).await.expect("delete");
        }
        if kinds.len() == 3 {
            break;
        }
    }
    kinds.sort_by_key(|(_, ids)| ids.clone());
    assert_eq!(
        kinds,
        vec![
            (
                Kind::SpotInterruption,
                vec!["i-0123456789abcdef0".to_string()]
            ),
            (
                Kind::StateChange("stopping".into()),
                vec!["i-0123456789abcdef1".to_string()]
            ),
            (
                Kind::ScheduledChange,
                vec!["i-0123456789abcdef2".to_string()]
            ),
        ]
    );
}
