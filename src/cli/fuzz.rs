//! `capstan fuzz [TARGET|all]`: runs the fuzz targets one after the other and prints, per target,
//! the inputs run, the distinct messages seen and the crashes.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::CliResult;
use crate::fuzz::{self, Options, Report, targets};

#[derive(clap::Args)]
pub struct Args {
    /// A target name, or `all`; `--list` shows them.
    #[arg(default_value = "all")]
    pub target: String,
    /// Seconds of generated inputs per target (the seeds always run).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// PRNG seed; the default takes one from the clock and prints it.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seed inputs: `<corpus>/<target>/*` (default fuzz/corpus).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Where failing inputs are written (default $CARGO_TARGET_DIR or target, /fuzz-crashes).
    #[arg(long)]
    pub crash_dir: Option<PathBuf>,
    /// An input slower than this fails the run.
    #[arg(long, default_value_t = 1000)]
    pub slow_ms: u64,
    /// Write each input to <crash-dir>/<target>-current before running it, to keep the one
    /// that aborts the process (a stack overflow cannot be caught); rerun with the same --seed.
    #[arg(long)]
    pub save_current: bool,
    /// Run this one input (a file written by a crash) without catching its panic.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// List the targets and exit.
    #[arg(long)]
    pub list: bool,
}

pub fn run(args: &Args) -> CliResult {
    if args.list {
        for t in targets::TARGETS {
            println!("{:<10} {}", t.name, t.about);
        }
        return Ok(());
    }
    let chosen: Vec<_> = if args.target == "all" {
        targets::TARGETS.iter().collect()
    } else {
        let names: Vec<_> = targets::TARGETS.iter().map(|t| t.name).collect();
        vec![targets::find(&args.target).ok_or_else(|| {
            format!(
                "unknown target {:?}; one of: all, {}",
                args.target,
                names.join(", ")
            )
        })?]
    };
    if let Some(file) = &args.replay {
        let [target] = chosen[..] else {
            return Err("--replay needs one target".into());
        };
        for m in fuzz::replay(target, &std::fs::read(file)?) {
            println!("{m}");
        }
        println!("no crash");
        return Ok(());
    }
    if !(args.seconds.is_finite() && args.seconds >= 0.0) {
        return Err(format!("--seconds {} must be >= 0", args.seconds).into());
    }
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut opts = Options {
        duration: Duration::from_secs_f64(args.seconds),
        seed,
        slow: Duration::from_millis(args.slow_ms),
        save_current: args.save_current,
        ..Options::default()
    };
    if let Some(c) = &args.corpus {
        opts.corpus = c.clone();
    }
    if let Some(c) = &args.crash_dir {
        opts.crash_dir = c.clone();
    }
    println!(
        "fuzzing with --seed {seed} for {} s per target",
        args.seconds
    );
    println!(
        "{:<10} {:>9} {:>7} {:>9} {:>6} {:>8} {:>5} {:>11}",
        "target", "inputs", "seeds", "messages", "pool", "crashes", "slow", "slowest ms"
    );
    let mut failed = Vec::new();
    for target in chosen {
        let report = fuzz::run(target, &opts)?;
        print_row(&report);
        if !report.passed() {
            failed.push(report.target.clone());
        }
        if report.hang.is_some() {
            // The hung input's thread cannot be stopped; it would slow every later target.
            println!("stopping: a hung input is still running");
            break;
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} failed (reproduce with --seed {seed}; replay a file with `capstan fuzz TARGET --replay FILE`)",
            failed.join(", ")
        )
        .into())
    }
}

fn print_row(r: &Report) {
    println!(
        "{:<10} {:>9} {:>7} {:>9} {:>6} {:>8} {:>5} {:>11.1}",
        r.target,
        r.inputs,
        r.seeds,
        r.distinct_messages,
        r.pool,
        r.crashes,
        r.slow.len(),
        r.slowest_ms
    );
    for f in &r.crash_examples {
        println!("  crash: {} ({})", f.path.display(), f.message);
    }
    for f in &r.slow {
        println!("  slow: {} ({})", f.path.display(), f.message);
    }
    if let Some(f) = &r.hang {
        println!("  hang: {} ({})", f.path.display(), f.message);
    }
}
