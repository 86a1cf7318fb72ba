//! `capstan bench ...`: load measurements against capstan's own servers, in-process.

use std::time::Duration;

use super::CliResult;
use crate::bench::provisioning;
use crate::bench::webhooks::{self, Options, Report};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Admission webhook latency under load: the real webhook server on 127.0.0.1 over TLS,
    /// driven open-loop at a fixed rate with a mix of example AdmissionReviews (pod mutate,
    /// NodePool validate and mutate, EC2NodeClass validate). Latency counts from each request's
    /// due time. Exits non-zero only when requests fail; the latency goal is reported, not
    /// enforced.
    Webhooks(WebhooksArgs),
    /// Pending-pod → NodeClaim-created latency, as a client of a running capstan (start
    /// `capstan sandbox` first): bursts of pods only the bench's own NodePool can host; one
    /// sample per burst, from its last pod to its first NodeClaim. Goal: p50 ≤ 1.1 s with the
    /// default 1 s idle batch.
    Provisioning(ProvisioningArgs),
}

#[derive(clap::Args)]
pub struct ProvisioningArgs {
    /// The API server to use (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 10)]
    pub bursts: usize,
    #[arg(long, default_value_t = 20)]
    pub pods: usize,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct WebhooksArgs {
    /// Requests per second.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Keep-alive TLS connections to spread the requests over.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

pub fn run(command: &Command) -> CliResult {
    match command {
        Command::Webhooks(args) => run_webhooks(args),
        Command::Provisioning(args) => run_provisioning(args),
    }
}

fn run_provisioning(args: &ProvisioningArgs) -> CliResult {
    if args.bursts == 0 || args.pods == 0 {
        return Err("--bursts and --pods must be at least 1".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let config = match &args.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
            }
            None => kube::Config::infer().await?,
        };
        let client = kube::Client::try_from(config)?;
        let opts = provisioning::Options {
            bursts: args.bursts,
            pods_per_burst: args.pods,
            timeout: Duration::from_secs(30),
        };
        Ok::<_, Box<dyn std::error::Error>>(provisioning::run(client, &opts).await?)
    })?;
    match args.output {
        Output::Table => {
            println!(
                "pending pod -> NodeClaim created, {} bursts of {} pods (from each burst's last pod)",
                report.bursts, report.pods_per_burst
            );
            println!("p50       {:.3} s", report.p50_s);
            println!("p90       {:.3} s", report.p90_s);
            println!("max       {:.3} s", report.max_s);
            println!("timeouts  {}", report.timeouts);
            println!(
                "goal p50 <= 1.1 s: {}",
                if report.p50_s <= 1.1 {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    if report.timeouts > 0 {
        return Err(format!("{} bursts got no NodeClaim within 30 s", report.timeouts).into());
    }
    Ok(())
}

fn run_webhooks(args: &WebhooksArgs) -> CliResult {
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err(format!("--duration {} must be > 0", args.duration).into());
    }
    let opts = Options {
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration),
        connections: args.connections,
        ..Options::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(webhooks::run(&opts))?;
    match args.output {
        Output::Table => print!("{}", table(&report)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    if report.errors > 0 {
        return Err(format!("{} of {} requests failed", report.errors, report.sent).into());
    }
    Ok(())
}

fn table(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "webhooks over TLS at {} ({} req/s for {} s on {} connections, open-loop)",
        r.server, r.target_rate, r.duration_s, r.connections
    );
    let _ = writeln!(out, "sent        {}", r.sent);
    let _ = writeln!(out, "completed   {}", r.completed);
    let _ = writeln!(out, "errors      {}", r.errors);
    for (failure, n) in &r.failures {
        let _ = writeln!(out, "  {failure:?}: {n}");
    }
    for e in &r.error_examples {
        let _ = writeln!(out, "  e.g. {e}");
    }
    let _ = writeln!(out, "achieved    {:.1} req/s", r.achieved_rate);
    let _ = writeln!(
        out,
        "latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  (pacer lag max {:.3})",
        r.latency.p50_ms, r.latency.p90_ms, r.latency.p99_ms, r.latency.max_ms, r.pacer_lag_max_ms
    );
    let _ = writeln!(
        out,
        "\n{:<22} {:>8} {:>7} {:>8} {:>8} {:>8}",
        "endpoint", "requests", "errors", "p50 ms", "p99 ms", "max ms"
    );
    for k in &r.per_kind {
        let _ = writeln!(
            out,
            "{:<22} {:>8} {:>7} {:>8.3} {:>8.3} {:>8.3}",
            k.label, k.sent, k.errors, k.latency.p50_ms, k.latency.p99_ms, k.latency.max_ms
        );
    }
    let _ = writeln!(
        out,
        "\ngoal (p99 < {} ms, 0 errors): {}",
        r.goal_p99_ms,
        if r.goal_met { "met" } else { "NOT met" }
    );
    out
}
