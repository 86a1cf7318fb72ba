//! `SqsQueue` against moto's SQS: the queue's URL found by name, an EventBridge-shaped body
//! received (long polling, up to 10 at a time), parsed, and deleted. Without moto this prints
//! why and passes, except under `CI=true`.

mod common;

use capstan::cloud::aws::StaticCredentials;
use capstan::cloud::aws::sqs::{SqsQueue, SqsSettings};
use capstan::cloud::queue::InterruptionQueue;
use capstan::interruption::{Kind, parse};
use common::moto::{self, Moto};
use serde_json::json;

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
    let settings = SqsSettings {
        region: moto::REGION.into(),
        queue_name: "capstan-interruption".into(),
        endpoint_url: Some(server.url.clone()),
        credentials: Some(StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
        }),
    };
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
