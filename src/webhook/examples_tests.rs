//! The shipped examples go through defaulting and validation as the API server would send them.

use std::path::Path;

use super::ec2nodeclass::{default_ec2nodeclass, validate_ec2nodeclass};
use super::nodepool::{default_instance_options, default_nodepool, validate_nodepool};
use super::requestpolicy::validate_requestpolicy;
use crate::manifest::parse_documents;

#[test]
fn shipped_examples_are_admitted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
    let mut checked = 0;
    for name in [
        "default.yaml",
        "gpu.yaml",
        "team.yaml",
        "requestpolicy.yaml",
    ] {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in parse_documents(&path, &text).unwrap() {
            let v = match doc.value["kind"].as_str() {
                Some("NodePool") => validate_nodepool(
                    &default_nodepool(&doc.value),
                    None,
                    &default_instance_options(),
                ),
                Some("EC2NodeClass") => {
                    validate_ec2nodeclass(&default_ec2nodeclass(&doc.value), None)
                }
                Some("RequestPolicy") => validate_requestpolicy(&doc.value),
                _ => continue,
            };
            checked += 1;
            assert!(v.is_allowed(), "{name}#{}: {}", doc.index, v.message());
            assert!(
                v.warnings.is_empty(),
                "{name}#{}: {:?}",
                doc.index,
                v.warnings
            );
        }
    }
    assert!(checked >= 4, "{checked}");
}
