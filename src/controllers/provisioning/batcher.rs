//! Karpenter's batching window: the first trigger opens a batch; each further trigger extends
//! it by `idle`, up to `max` from its start. Pods created in a burst are then simulated together
//! (fewer, better-packed NodeClaims) instead of one claim per pod.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

pub struct Batcher {
    trigger: Arc<Notify>,
    idle: Duration,
    max: Duration,
    recheck: Duration,
}

impl Batcher {
    pub fn new(trigger: Arc<Notify>, idle: Duration, max: Duration, recheck: Duration) -> Self {
        Batcher {
            trigger,
            idle,
            max,
            recheck,
        }
    }

    /// Returns when a batch has closed (or `recheck` passed with no trigger at all).
    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.trigger.notified() => {}
            _ = tokio::time::sleep(self.recheck) => return,
        }
        let start = Instant::now();
        let hard = start + self.max;
        loop {
            let idle_end = (Instant::now() + self.idle).min(hard);
            tokio::select! {
                _ = self.trigger.notified() => {
                    if Instant::now() >= hard {
                        return;
                    }
                }
                _ = sleep_until(idle_end) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn closes_after_idle_and_never_after_max() {
        let n = Arc::new(Notify::new());
        let mut b = Batcher::new(
            n.clone(),
            Duration::from_secs(1),
            Duration::from_secs(10),
            Duration::from_secs(60),
        );
        // One trigger: the batch closes 1 s later.
        n.notify_one();
        let t0 = Instant::now();
        b.wait().await;
        assert_eq!(t0.elapsed().as_millis(), 1000);

        // A trigger every 500 ms keeps it open until the 10 s maximum.
        let n2 = n.clone();
        let feeder = tokio::spawn(async move {
            for _ in 0..40 {
                n2.notify_one();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let t1 = Instant::now();
        b.wait().await;
        let took = t1.elapsed().as_millis();
        assert!((10_000..10_600).contains(&took), "{took} ms");
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn recheck_without_trigger() {
        let n = Arc::new(Notify::new());
        let mut b = Batcher::new(
            n,
            Duration::from_secs(1),
            Duration::from_secs(10),
            Duration::from_secs(5),
        );
        let t0 = Instant::now();
        b.wait().await;
        assert_eq!(t0.elapsed().as_secs(), 5);
    }
}
