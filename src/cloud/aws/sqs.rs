//! The interruption queue on SQS: the queue's URL looked up once by name (GetQueueUrl), long
//! polling (20 s, the most SQS allows) for up to 10 messages at a time, delete by receipt handle.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::DisplayErrorContext;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::cloud::queue::{InterruptionQueue, QueueError, QueueMessage};

use super::StaticCredentials;

/// SQS's longest receive wait: one request per 20 s when the queue is idle.
const WAIT_SECONDS: i32 = 20;
/// SQS's most messages per receive.
const MAX_MESSAGES: i32 = 10;

#[derive(Debug, Clone)]
pub struct SqsSettings {
    pub region: String,
    /// The queue's name (Karpenter's `INTERRUPTION_QUEUE`), not its URL.
    pub queue_name: String,
    /// Another SQS endpoint (a VPC endpoint, moto); None: the region's public one.
    pub endpoint_url: Option<String>,
    pub credentials: Option<StaticCredentials>,
}

pub struct SqsQueue {
    client: Client,
    url: String,
}

fn error(operation: &str, e: impl std::error::Error) -> QueueError {
    QueueError {
        operation: operation.into(),
        message: DisplayErrorContext(e).to_string(),
    }
}

impl SqsQueue {
    /// Connects and resolves the queue's URL; fails if the queue does not exist.
    pub async fn new(settings: &SqsSettings) -> Result<SqsQueue, QueueError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()));
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(c) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                None,
                None,
                "capstan-static",
            ));
        }
        let client = Client::new(&loader.load().await);
        let url = client
            .get_queue_url()
            .queue_name(&settings.queue_name)
            .send()
            .await
            .map_err(|e| error("GetQueueUrl", e))?
            .queue_url
            .ok_or_else(|| QueueError {
                operation: "GetQueueUrl".into(),
                message: format!("no URL for queue {}", settings.queue_name),
            })?;
        Ok(SqsQueue { client, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn receive_impl(&self) -> Result<Vec<QueueMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(MAX_MESSAGES)
            .wait_time_seconds(WAIT_SECONDS)
            .send()
            .await
            .map_err(|e| error("ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            // A message without a receipt handle could never be deleted; SQS always sends one.
            .filter_map(|m| {
                Some(QueueMessage {
                    id: m.message_id.unwrap_or_default(),
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn delete_impl(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| error("DeleteMessage", e))?;
        Ok(())
    }
}

impl InterruptionQueue for SqsQueue {
    fn name(&self) -> &'static str {
        "sqs"
    }

    fn receive(&self) -> BoxFuture<'_, Result<Vec<QueueMessage>, QueueError>> {
        self.receive_impl().boxed()
    }

    fn delete<'a>(&'a self, receipt: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        self.delete_impl(receipt).boxed()
    }
}
