//! capstan: a Helm-free, all-in-one Kubernetes node autoscaler for AWS.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use capstan::cli;

#[derive(Parser)]
#[command(
    name = "capstan",
    version,
    about = "Kubernetes node autoscaler for AWS that reads Karpenter v1 manifests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run in the cluster (the Deployment's entry point): serve the admission webhooks, fed by
    /// watches of RequestPolicies and Namespaces, and, with CLUSTER_NAME and AWS_REGION set, the
    /// controllers on the leader replica. Until SIGTERM or Ctrl-C, then in-flight reviews finish
    /// and the Lease is released.
    Run(cli::run::Args),
    /// Print every CustomResourceDefinition capstan serves (YAML).
    Crds,
    /// Decode manifests strictly and check them against capstan's schemas and each other.
    Check {
        /// Files or directories of YAML / JSON manifests.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Convert older Karpenter manifests (v1alpha5, v1beta1) to v1. Notes on what could not be
    /// carried go to stderr.
    Convert {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Make a CA and webhook serving certificate; print the TLS Secret and the webhook
    /// configurations with the caBundle injected (pipe into `kubectl apply -f -`).
    Certs(cli::certs::Args),
    /// Show the NodeClaims capstan would launch for these NodePools and workloads, with cost,
    /// utilisation and the pods that cannot be scheduled (no cluster needed).
    Plan(cli::plan::Args),
    /// The live nodes with type, zone, capacity type, CPU / memory requested vs allocatable,
    /// pods and $/hour, and cluster totals (like eks-node-viewer); --watch redraws.
    Nodes(cli::nodes::Args),
    /// Run the sandbox API server with capstan's CRDs (and, with --demo, the examples applied).
    Sandbox(cli::sandbox::Args),
    /// Measure capstan's servers under load (in-process, on loopback).
    #[command(subcommand)]
    Bench(cli::bench::Command),
    /// Fuzz the parsers of outside input (AdmissionReviews, manifests, cron schedules,
    /// durations, quantities, SQS messages) for a bounded time; exits non-zero on any crash,
    /// hang or input slower than --slow-ms.
    Fuzz(cli::fuzz::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli::run::run(&args),
        Command::Crds => cli::crds::run(),
        Command::Check { files } => cli::check::run(&files),
        Command::Convert { files } => cli::convert::run(&files),
        Command::Certs(args) => cli::certs::run(&args),
        Command::Plan(args) => cli::plan::run(&args),
        Command::Nodes(args) => cli::nodes::run(&args),
        Command::Sandbox(args) => cli::sandbox::run(&args),
        Command::Bench(command) => cli::bench::run(&command),
        Command::Fuzz(args) => cli::fuzz::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
