//! The interruption queue: where EventBridge delivers spot interruption warnings, rebalance
//! recommendations, scheduled changes and instance state changes. Implemented by SQS
//! (`aws::sqs::SqsQueue`) and in memory ([`SimQueue`], for the sandbox and tests).
//!
//! Methods return boxed futures so that the controller holds an `Arc<dyn InterruptionQueue>`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

/// One received message; `receipt` deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub id: String,
    pub receipt: String,
    pub body: String,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct QueueError {
    pub operation: String,
    pub message: String,
}

pub trait InterruptionQueue: Send + Sync {
    /// `sqs` or `sim`, for logs.
    fn name(&self) -> &'static str;

    /// The next messages; may wait (long polling) and return none.
    fn receive(&self) -> BoxFuture<'_, Result<Vec<QueueMessage>, QueueError>>;

    /// Deletes a handled message so that it is not delivered again.
    fn delete<'a>(&'a self, receipt: &'a str) -> BoxFuture<'a, Result<(), QueueError>>;
}

impl std::fmt::Debug for dyn InterruptionQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InterruptionQueue({})", self.name())
    }
}

/// In memory: `push` enqueues a body; a received message stays until deleted, but is not handed
/// out again (as SQS hides it for its visibility timeout).
#[derive(Default)]
pub struct SimQueue {
    state: Mutex<SimState>,
}

#[derive(Default)]
struct SimState {
    next: u64,
    ready: VecDeque<QueueMessage>,
    in_flight: Vec<QueueMessage>,
}

impl SimQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Enqueues a body; returns its message id.
    pub fn push(&self, body: impl Into<String>) -> String {
        let mut s = self.lock();
        s.next += 1;
        let id = format!("sim-{}", s.next);
        s.ready.push_back(QueueMessage {
            id: id.clone(),
            receipt: format!("receipt-{id}"),
            body: body.into(),
        });
        id
    }

    /// Messages not yet deleted, received or not.
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.ready.len() + s.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl InterruptionQueue for SimQueue {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn receive(&self) -> BoxFuture<'_, Result<Vec<QueueMessage>, QueueError>> {
        async move {
            let batch: Vec<QueueMessage> = {
                let mut s = self.lock();
                let n = s.ready.len().min(10);
                let batch: Vec<QueueMessage> = s.ready.drain(..n).collect();
                s.in_flight.extend(batch.iter().cloned());
                batch
            };
            if batch.is_empty() {
                // A short stand-in for SQS's long poll, so that the loop does not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(batch)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, receipt: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        async move {
            self.lock().in_flight.retain(|m| m.receipt != receipt);
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn received_messages_stay_until_deleted() {
        let q = SimQueue::new();
        for i in 0..12 {
            q.push(format!("m{i}"));
        }
        let first = q.receive().await.unwrap();
        assert_eq!(first.len(), 10);
        assert_eq!(first[0].body, "m0");
        let second = q.receive().await.unwrap();
        assert_eq!(second.len(), 2);
        assert_eq!(q.len(), 12);
        for m in first.iter().chain(&second) {
            q.delete(&m.receipt).await.unwrap();
        }
        assert!(q.is_empty());
        assert!(q.receive().await.unwrap().is_empty());
    }
}
