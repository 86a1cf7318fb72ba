//! `capstan check`: strict decoding plus the cross-references a single object cannot see.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::CliResult;
use crate::manifest::{self, ManifestErrors, Object};

pub fn run(files: &[PathBuf]) -> CliResult {
    let docs = manifest::read_paths(files)?;
    let mut errors = Vec::new();
    let mut objects = Vec::new();
    for doc in &docs {
        match manifest::decode_object(doc) {
            Ok(o) => objects.push((doc, o)),
            Err(ManifestErrors(mut e)) => errors.append(&mut e),
        }
    }
    let classes: BTreeSet<&str> = objects
        .iter()
        .filter_map(|(_, o)| match o {
            Object::EC2NodeClass(c) => c.metadata.name.as_deref(),
            _ => None,
        })
        .collect();
    for (doc, o) in &objects {
        match o {
            Object::NodePool(p) => {
                let r = &p.spec.template.spec.node_class_ref;
                let note = if classes.contains(r.name.as_str()) {
                    String::new()
                } else {
                    format!(
                        " (EC2NodeClass {} not in these files; it must exist in the cluster)",
                        r.name
                    )
                };
                println!(
                    "{}: NodePool {} weight {} nodeClass {}{} requirements {} budgets {}",
                    doc.file.display(),
                    doc.name(),
                    p.weight(),
                    r.name,
                    note,
                    p.spec.template.spec.requirements.len(),
                    p.budgets().len()
                );
            }
            _ => println!("{}: {} {} ok", doc.file.display(), doc.kind(), doc.name()),
        }
    }
    if errors.is_empty() {
        println!("{} documents checked, 0 errors", docs.len());
        Ok(())
    } else {
        Err(Box::new(ManifestErrors(errors)))
    }
}
