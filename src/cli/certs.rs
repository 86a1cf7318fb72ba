//! `capstan certs`: certificates for the webhook, ready for `kubectl apply -f -`.

use std::path::PathBuf;

use super::CliResult;
use crate::certs;

#[derive(clap::Args)]
pub struct Args {
    /// The webhook Service's name.
    #[arg(long, default_value = "capstan")]
    pub service: String,
    /// The namespace capstan runs in.
    #[arg(long, default_value = "capstan")]
    pub namespace: String,
    /// Extra subject alternative names (DNS names or IP addresses, e.g. 127.0.0.1).
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// Validity of the certificates in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// The webhook configurations to inject the CA into.
    #[arg(long, default_value = "manifests/30-webhooks.yaml")]
    pub webhooks: PathBuf,
    /// Also write ca.crt, tls.crt and tls.key into this directory (keys mode 0600).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &Args) -> CliResult {
    let webhooks = std::fs::read_to_string(&args.webhooks)
        .map_err(|e| format!("cannot read {}: {e}", args.webhooks.display()))?;
    let bundle = certs::generate(&args.service, &args.namespace, &args.sans, args.days)?;
    if let Some(dir) = &args.out {
        certs::write_files(&bundle, dir)?;
        eprintln!("wrote ca.crt, tls.crt and tls.key to {}", dir.display());
    }
    print!(
        "{}",
        certs::render_install(&bundle, &args.service, &args.namespace, &webhooks)?
    );
    Ok(())
}
