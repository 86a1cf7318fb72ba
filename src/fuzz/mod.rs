//! `capstan fuzz`: a small mutation fuzzer that runs on stable Rust (cargo-fuzz needs nightly and
//! a sanitizer build), for the parsers that read what others write: AdmissionReviews, manifests,
//! cron schedules, durations, quantities and SQS messages.
//!
//! Coverage-less: an input joins the pool when it produces an error message (or outcome) not seen
//! before, so distinct messages stand in for the paths reached. Each input runs under
//! `catch_unwind`; a panic is a crash, written to the crash directory and counted. Inputs slower
//! than [`Options::slow`] are saved and counted too, and one still running after
//! [`Options::hang`] ends the run (the target thread is left behind: it cannot be stopped).
//! Everything follows from the printed seed, so a failure reproduces with `--seed`.

pub mod mutate;
pub mod rng;
pub mod targets;

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use serde::Serialize;

use rng::Rng;

/// Runs one input; reports what the code under test said about it through [`Seen::note`].
/// Panics (including failed assertions of the target's own invariants) are crashes.
pub type Harness = Box<dyn FnMut(&[u8], &mut Seen)>;

/// A fuzz target: the entry point and what to start from.
pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    /// Words worth splicing into inputs: field names, enum values, units.
    pub dictionary: &'static [&'static str],
    /// The stack the code under test gets in production ([`WORKER_STACK`] or [`MAIN_STACK`]):
    /// deep input must fail cleanly within it.
    pub stack_bytes: usize,
    /// Mutated inputs are cut to this many bytes: far beyond real input, short of making every
    /// input slow (a debug build on a busy CI machine still has to keep under [`Options::slow`]).
    pub max_len: usize,
    /// Built at the start of a run, on the thread that runs the inputs (state such as a
    /// catalog or a webhook cache is made once, not per input).
    pub harness: fn() -> Harness,
}

/// The messages seen so far, reduced to their shape (quoted text and numbers elided) so that
/// "invalid quantity \"1x\"" and "invalid quantity \"2y\"" count once.
#[derive(Default)]
pub struct Seen {
    shapes: HashSet<String>,
    fresh: bool,
}

/// More distinct shapes than this are not remembered (memory stays bounded).
const MAX_SHAPES: usize = 100_000;

impl Seen {
    pub fn note(&mut self, message: &str) {
        if self.shapes.len() < MAX_SHAPES && self.shapes.insert(shape(message)) {
            self.fresh = true;
        }
    }

    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }
}

/// The message with quoted strings replaced by `"…"` and digit runs by `N`, at most 200 chars.
pub fn shape(message: &str) -> String {
    let mut out = String::new();
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push_str("\"…\"");
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
            }
            c if c.is_ascii_digit() => {
                if !out.ends_with('N') {
                    out.push('N');
                }
            }
            c => out.push(c),
        }
        if out.len() >= 200 {
            break;
        }
    }
    out
}

#[derive(Debug, Clone)]
pub struct Options {
    /// How long to generate inputs for (the seeds always run, however short this is).
    pub duration: Duration,
    pub seed: u64,
    /// `<corpus>/<target>/*` are the seeds, besides the empty input.
    pub corpus: PathBuf,
    /// Where crashing, slow and hanging inputs are written.
    pub crash_dir: PathBuf,
    /// An input taking longer than this is reported.
    pub slow: Duration,
    /// An input still running after this ends the run.
    pub hang: Duration,
    /// Write each input to `<crash_dir>/<target>-current` before running it: a stack overflow
    /// aborts the process, past any `catch_unwind`, and this keeps the input that did it (rerun
    /// with the same seed).
    pub save_current: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration: Duration::from_secs(10),
            seed: 0,
            corpus: default_corpus(),
            crash_dir: PathBuf::from(
                std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
            )
            .join("fuzz-crashes"),
            slow: Duration::from_secs(1),
            hang: Duration::from_secs(20),
            save_current: false,
        }
    }
}

/// `fuzz/corpus` from the current directory, else from the source tree this was built from.
pub fn default_corpus() -> PathBuf {
    let here = PathBuf::from("fuzz/corpus");
    if here.is_dir() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
    }
}

/// An input that failed: where it was written and why.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub seed: u64,
    pub seconds: f64,
    pub seeds: usize,
    pub inputs: u64,
    pub distinct_messages: usize,
    /// Inputs kept because they said something new.
    pub pool: usize,
    pub crashes: u64,
    /// The first crashes, one per distinct panic message.
    pub crash_examples: Vec<Finding>,
    pub slow: Vec<Finding>,
    pub hang: Option<Finding>,
    pub slowest_ms: f64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.crashes == 0 && self.slow.is_empty() && self.hang.is_none()
    }
}

/// tokio's worker threads' stack: the webhooks and controllers run there.
pub const WORKER_STACK: usize = 2 << 20;
/// The main thread's (Linux default): the CLI commands run there.
pub const MAIN_STACK: usize = 8 << 20;
/// The pool of inputs to mutate stays this small, so each gets mutated often.
const MAX_POOL: usize = 2_000;
const MAX_CRASH_EXAMPLES: usize = 10;
const MAX_SLOW: usize = 10;

/// What the watchdog sees of the running input.
#[derive(Default)]
struct Progress {
    inputs: AtomicU64,
    /// The input being run and when it started; None between inputs.
    current: Mutex<Option<(Instant, Vec<u8>)>>,
}

/// Runs `target` for `opts.duration`: its seeds first, then mutations of the pool.
pub fn run(target: &Target, opts: &Options) -> std::io::Result<Report> {
    install_panic_hook();
    let seeds = load_seeds(&opts.corpus.join(target.name))?;
    let progress = Arc::new(Progress::default());
    let worker = {
        let (progress, opts, seeds) = (progress.clone(), opts.clone(), seeds.clone());
        let (name, dictionary, harness) = (target.name, target.dictionary, target.harness);
        let max_len = target.max_len;
        std::thread::Builder::new()
            .name(format!("fuzz-{name}"))
            .stack_size(target.stack_bytes)
            .spawn(move || fuzz_loop(name, dictionary, max_len, harness, seeds, &opts, &progress))?
    };
    let started = Instant::now();
    loop {
        if worker.is_finished() {
            return worker
                .join()
                .map_err(|_| std::io::Error::other("the fuzz loop itself panicked"))?;
        }
        let stuck = progress
            .current
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|(t, input)| (t.elapsed(), input.clone())))
            .filter(|(elapsed, _)| *elapsed > opts.hang);
        if let Some((elapsed, input)) = stuck {
            let n = progress.inputs.load(Ordering::Relaxed);
            let path = save(opts, target.name, "hang", n, &input)?;
            return Ok(Report {
                target: target.name.into(),
                seed: opts.seed,
                seconds: started.elapsed().as_secs_f64(),
                seeds: seeds.len(),
                inputs: n,
                distinct_messages: 0,
                pool: 0,
                crashes: 0,
                crash_examples: Vec::new(),
                slow: Vec::new(),
                hang: Some(Finding {
                    path,
                    message: format!("still running after {:.1} s", elapsed.as_secs_f64()),
                }),
                slowest_ms: elapsed.as_secs_f64() * 1e3,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fuzz_loop(
    name: &'static str,
    dictionary: &'static [&'static str],
    max_len: usize,
    harness: fn() -> Harness,
    seeds: Vec<Vec<u8>>,
    opts: &Options,
    progress: &Progress,
) -> std::io::Result<Report> {
    let mut run_one = harness();
    let mut rng = Rng::new(opts.seed);
    let mut seen = Seen::default();
    let mut pool = seeds.clone();
    let mut report = Report {
        target: name.into(),
        seed: opts.seed,
        seconds: 0.0,
        seeds: seeds.len(),
        inputs: 0,
        distinct_messages: 0,
        pool: 0,
        crashes: 0,
        crash_examples: Vec::new(),
        slow: Vec::new(),
        hang: None,
        slowest_ms: 0.0,
    };
    let mut crash_messages = HashSet::new();
    let started = Instant::now();
    let mut next_seed = 0;
    while next_seed < seeds.len() || started.elapsed() < opts.duration {
        let input = if next_seed < seeds.len() {
            next_seed += 1;
            seeds[next_seed - 1].clone()
        } else {
            let parent = rng.below(pool.len());
            let other = rng.below(pool.len());
            mutate::mutate(&mut rng, &pool[parent], &pool[other], dictionary, max_len)
        };
        if opts.save_current {
            std::fs::create_dir_all(&opts.crash_dir)?;
            std::fs::write(opts.crash_dir.join(format!("{name}-current")), &input)?;
        }
        if let Ok(mut c) = progress.current.lock() {
            *c = Some((Instant::now(), input.clone()));
        }
        seen.fresh = false;
        let t = Instant::now();
        let outcome = catch(|| run_one(&input, &mut seen));
        let elapsed = t.elapsed();
        if let Ok(mut c) = progress.current.lock() {
            *c = None;
        }
        report.inputs += 1;
        progress.inputs.store(report.inputs, Ordering::Relaxed);
        report.slowest_ms = report.slowest_ms.max(elapsed.as_secs_f64() * 1e3);
        if let Err(message) = outcome {
            report.crashes += 1;
            if report.crash_examples.len() < MAX_CRASH_EXAMPLES
                && crash_messages.insert(shape(&message))
            {
                let path = save(opts, name, "crash", report.inputs, &input)?;
                report.crash_examples.push(Finding { path, message });
            }
            continue;
        }
        if elapsed > opts.slow && report.slow.len() < MAX_SLOW {
            let path = save(opts, name, "slow", report.inputs, &input)?;
            report.slow.push(Finding {
                path,
                message: format!("took {:.2} s", elapsed.as_secs_f64()),
            });
        }
        if seen.fresh {
            if pool.len() < MAX_POOL {
                pool.push(input);
            } else if seeds.len() < MAX_POOL {
                // Keep the seeds; replace a random later find.
                let i = seeds.len() + rng.below(MAX_POOL - seeds.len());
                pool[i] = input;
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.distinct_messages = seen.len();
    report.pool = pool.len();
    Ok(report)
}

/// Runs one input outside the loop, as `--replay` does: a panic propagates with its backtrace.
pub fn replay(target: &Target, input: &[u8]) -> Vec<String> {
    let mut seen = Seen::default();
    (target.harness)()(input, &mut seen);
    let mut messages: Vec<String> = seen.shapes.into_iter().collect();
    messages.sort();
    messages
}

fn load_seeds(dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let mut seeds = vec![Vec::new()];
    if dir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            seeds.push(std::fs::read(f)?);
        }
    }
    Ok(seeds)
}

fn save(
    opts: &Options,
    target: &str,
    kind: &str,
    n: u64,
    input: &[u8],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(&opts.crash_dir)?;
    let path = opts
        .crash_dir
        .join(format!("{target}-{kind}-{:x}-{n}", opts.seed));
    std::fs::write(&path, input)?;
    Ok(path)
}

thread_local! {
    /// Set while this thread runs a fuzz input: its panics are recorded here, not printed.
    static CAUGHT: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// One hook for the process, installed once: quiet for fuzz inputs, the previous hook otherwise
/// (other tests in the same binary still print their panics).
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let recorded = CAUGHT.with(|c| {
                let mut c = c.borrow_mut();
                match c.as_mut() {
                    Some(slot) => {
                        let payload = info
                            .payload()
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| info.payload().downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "panic".into());
                        let at = info
                            .location()
                            .map(|l| format!(" at {}:{}", l.file(), l.line()))
                            .unwrap_or_default();
                        *slot = Some(format!("{payload}{at}"));
                        true
                    }
                    None => false,
                }
            });
            if !recorded {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic becomes `Err(message at file:line)`.
fn catch(f: impl FnOnce()) -> Result<(), String> {
    CAUGHT.with(|c| *c.borrow_mut() = Some(None));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let message = CAUGHT.with(|c| c.borrow_mut().take().flatten());
    result.map_err(|_| message.unwrap_or_else(|| "panic".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_elide_quoted_text_and_numbers() {
        assert_eq!(
            shape(r#"invalid quantity "1\"x": at line 12 column 3"#),
            r#"invalid quantity "…": at line N column N"#
        );
        assert_eq!(shape("a"), "a");
    }

    fn panicky() -> Harness {
        Box::new(|input: &[u8], seen: &mut Seen| {
            seen.note(&format!("len {}", input.len()));
            assert!(!input.contains(&b'!'), "bang");
        })
    }

    #[test]
    fn crashes_are_caught_saved_and_reproduce_from_the_seed() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("corpus");
        std::fs::create_dir_all(corpus.join("panicky")).unwrap();
        std::fs::write(corpus.join("panicky/seed"), b"hello").unwrap();
        let target = Target {
            name: "panicky",
            about: "panics on '!'",
            dictionary: &["!"],
            stack_bytes: WORKER_STACK,
            max_len: 64,
            harness: panicky,
        };
        let opts = Options {
            duration: Duration::from_millis(300),
            seed: 9,
            corpus,
            crash_dir: dir.path().join("crashes"),
            ..Options::default()
        };
        let report = run(&target, &opts).unwrap();
        assert!(report.inputs > 10, "{report:?}");
        assert!(report.crashes > 0, "{report:?}");
        assert!(!report.passed());
        let example = &report.crash_examples[0];
        assert!(
            example.message.starts_with("bang at src/fuzz/mod.rs"),
            "{example:?}"
        );
        assert!(std::fs::read(&example.path).unwrap().contains(&b'!'));
    }

    #[test]
    fn a_hang_ends_the_run_with_the_input_saved() {
        fn sleepy() -> Harness {
            Box::new(|input: &[u8], _: &mut Seen| {
                if input == b"zz" {
                    std::thread::sleep(Duration::from_secs(3));
                }
            })
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sleepy")).unwrap();
        std::fs::write(dir.path().join("sleepy/seed"), b"zz").unwrap();
        let target = Target {
            name: "sleepy",
            about: "sleeps on zz",
            dictionary: &[],
            stack_bytes: WORKER_STACK,
            max_len: 64,
            harness: sleepy,
        };
        let opts = Options {
            duration: Duration::from_millis(100),
            corpus: dir.path().to_path_buf(),
            crash_dir: dir.path().join("crashes"),
            hang: Duration::from_millis(500),
            ..Options::default()
        };
        let report = run(&target, &opts).unwrap();
        let hang = report.hang.expect("hang reported");
        assert_eq!(std::fs::read(hang.path).unwrap(), b"zz");
    }
}
