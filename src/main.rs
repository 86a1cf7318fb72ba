//! capstan: a Helm-free, all-in-one Kubernetes node autoscaler for AWS.

use std::process::ExitCode;

fn main() -> ExitCode {
    for crd in capstan::apis::all_crds() {
        println!("{}", serde_json::to_string(&crd).unwrap_or_default());
    }
    ExitCode::SUCCESS
}
