//! `capstan plan`: what capstan would launch for these manifests, without a cluster.

use std::path::PathBuf;
use std::time::SystemTime;

use super::CliResult;
use crate::cloud::catalog::{Catalog, PriceSource};
use crate::manifest::{self, ManifestErrors, Object};
use crate::plan::{pools::pool_templates, report, workload};
use crate::scheduling::pod::PodInfo;
use crate::scheduling::scheduler::{Input, schedule};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// Files or directories with NodePools, EC2NodeClasses and workloads (Pods, Deployments,
    /// StatefulSets, ReplicaSets, Jobs, DaemonSets).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// AWS region whose instance types, zones and prices to use.
    #[arg(long, default_value = "us-west-2")]
    pub region: String,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

pub fn run(args: &Args) -> CliResult {
    let docs = manifest::read_paths(&args.files)?;
    let mut errors = Vec::new();
    let mut objects = Vec::new();
    for doc in &docs {
        match manifest::decode_object(doc) {
            Ok(o) => objects.push(o),
            Err(ManifestErrors(mut e)) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(Box::new(ManifestErrors(errors)));
    }
    let pools: Vec<_> = objects
        .iter()
        .filter_map(|o| {
            if let Object::NodePool(p) = o {
                Some((**p).clone())
            } else {
                None
            }
        })
        .collect();
    let classes: Vec<_> = objects
        .iter()
        .filter_map(|o| {
            if let Object::EC2NodeClass(c) = o {
                Some((**c).clone())
            } else {
                None
            }
        })
        .collect();
    if pools.is_empty() {
        return Err("no NodePool in the manifests: capstan plans nodes only from NodePools".into());
    }
    let workloads = workload::expand(&objects)?;
    let to_info = |pods: &[k8s_openapi::api::core::v1::Pod]| -> Result<Vec<PodInfo>, String> {
        pods.iter()
            .map(|p| PodInfo::from_pod(p).map_err(|e| e.to_string()))
            .collect()
    };
    let pods = to_info(&workloads.pods)?;
    let daemonsets = to_info(&workloads.daemonsets)?;

    let catalog = Catalog::for_region(&args.region, None);
    if catalog.is_empty() {
        return Err(format!("no instance types known for region {:?}", args.region).into());
    }
    let now = SystemTime::now();
    let (templates, warnings) = pool_templates(&pools, &classes, &catalog, now)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let outcome = schedule(&Input {
        pods,
        daemonsets,
        existing: Vec::new(),
        pools: templates.clone(),
    });
    let region_estimated = catalog
        .price_sources()
        .contains_key(&PriceSource::EstimatedFromUsEast1);
    let plan = report::build(&args.region, region_estimated, &outcome, &templates);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Output::Table => print!("{}", report::table(&plan)),
    }
    Ok(())
}
