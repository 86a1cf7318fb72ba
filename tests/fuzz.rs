//! Every fuzz target for about a second through the library API, with a fixed seed: the seeds
//! and a few thousand mutations run, and nothing crashes or hangs. (CI runs them longer with a
//! fresh seed each time: scripts/test.sh, `capstan fuzz all`.)

use std::time::Duration;

use capstan::fuzz::{self, Options, targets::TARGETS};

#[test]
fn every_target_runs_without_crashing() {
    let crash_dir = tempfile::tempdir().expect("temp dir");
    let opts = Options {
        duration: Duration::from_secs(1),
        seed: 20261126,
        crash_dir: crash_dir.path().to_path_buf(),
        // Other tests share the machine: only a real hang should fail this.
        slow: Duration::from_secs(10),
        ..Options::default()
    };
    assert_eq!(TARGETS.len(), 8);
    for target in TARGETS {
        let report = fuzz::run(target, &opts).expect("fuzz run");
        assert!(
            report.seeds > 1,
            "{}: no seed corpus found under {}",
            target.name,
            opts.corpus.display()
        );
        assert!(report.inputs > report.seeds as u64, "{report:#?}");
        assert!(report.distinct_messages > 0, "{report:#?}");
        assert_eq!(report.crashes, 0, "{report:#?}");
        assert!(report.passed(), "{report:#?}");
    }
}
