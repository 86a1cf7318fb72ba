//! `capstan convert`: v1 YAML on stdout, notes and errors on stderr.

use std::path::PathBuf;

use super::CliResult;
use crate::apis::{EC2NodeClass, NodePool};
use crate::convert::convert_document;
use crate::manifest::{self, ManifestErrors, PathSeg};

pub fn run(files: &[PathBuf]) -> CliResult {
    let docs = manifest::read_paths(files)?;
    let mut errors = Vec::new();
    let mut out = String::new();
    for doc in &docs {
        let converted = match convert_document(&doc.value) {
            Ok(c) => c,
            Err(e) => {
                let path: Vec<PathSeg> = e
                    .path()
                    .split('.')
                    .filter(|s| !s.is_empty())
                    .map(|s| PathSeg::Key(s.into()))
                    .collect();
                errors.push(doc.error(&path, e.to_string()));
                continue;
            }
        };
        for note in &converted.notes {
            eprintln!("{}: document {}: {note}", doc.file.display(), doc.index);
        }
        for object in &converted.objects {
            // The output must itself decode as v1: a conversion bug is caught here, not at apply.
            if let Err(e) = check_v1(object) {
                errors.push(doc.error(
                    &[],
                    format!("converted object does not decode as v1 (a capstan bug): {e}"),
                ));
                continue;
            }
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(object)?);
        }
    }
    print!("{out}");
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Box::new(ManifestErrors(errors)))
    }
}

fn check_v1(object: &serde_json::Value) -> Result<(), serde_json::Error> {
    match (object["apiVersion"].as_str(), object["kind"].as_str()) {
        (Some("karpenter.sh/v1"), Some("NodePool")) => {
            serde_json::from_value::<NodePool>(object.clone()).map(drop)
        }
        (Some("karpenter.k8s.aws/v1"), Some("EC2NodeClass")) => {
            serde_json::from_value::<EC2NodeClass>(object.clone()).map(drop)
        }
        _ => Ok(()),
    }
}
