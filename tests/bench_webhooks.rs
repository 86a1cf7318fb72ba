//! The `capstan bench webhooks` machinery at a gentle rate: every request is answered with 200,
//! its own uid and the expected decision. A correctness test of the load generator and the server
//! under concurrent keep-alive traffic; the latencies it measures are not asserted.

use std::time::Duration;

use capstan::bench::webhooks::{Kind, Options, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_answered_correctly() {
    let opts = Options {
        rate: 200.0,
        duration: Duration::from_secs(1),
        connections: 4,
        // Debug builds on a busy machine: generous, since this is not a timing test.
        request_timeout: Duration::from_secs(30),
    };
    let report = run(&opts).await.unwrap();
    assert_eq!(report.sent, 200);
    assert_eq!(report.completed, 200, "{report:#?}");
    assert_eq!(report.errors, 0, "{report:#?}");
    assert!(report.failures.is_empty(), "{report:#?}");
    for kind in Kind::ALL {
        let k = report.per_kind.iter().find(|k| k.kind == kind).unwrap();
        assert!(k.sent > 0 && k.errors == 0, "{k:?}");
    }
    assert_eq!(report.per_kind.iter().map(|k| k.sent).sum::<u64>(), 200);
    assert!(report.latency.max_ms > 0.0);
}
