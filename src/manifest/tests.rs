use std::path::Path;

use super::*;
use crate::apis::NodePool;

const POOL: &str = "\
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: default
spec:
  template:
    spec:
      nodeClassRef:
        group: karpenter.k8s.aws
        kind: EC2NodeClass
        name: default
      requirments:
        - key: kubernetes.io/arch
          operator: In
          values: [amd64]
";

#[test]
fn documents_are_numbered_as_in_the_file() {
    let text = "---\n# only a comment\n---\na: 1\n---\nb: 2\n";
    let docs = parse_documents(Path::new("x.yaml"), text).expect("parses");
    let indices: Vec<usize> = docs.iter().map(|d| d.index).collect();
    // The leading `---` opens the first document, the comment-only one is the second... skipped.
    assert_eq!(docs.len(), 2);
    assert!(indices.windows(2).all(|w| w[0] < w[1]), "{indices:?}");
    assert_eq!(docs[0].value, serde_json::json!({"a": 1}));
}

#[test]
fn unknown_field_is_reported_with_path_and_line() {
    let docs = parse_documents(Path::new("pool.yaml"), POOL).expect("parses");
    let err = docs[0]
        .decode_strict::<NodePool>()
        .expect_err("misspelled field must fail");
    let msgs: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    // The missing `requirements` is a type error; the misspelled key is an unknown field at line 12.
    let unknown = err
        .0
        .iter()
        .find(|e| e.message.contains("unknown field"))
        .expect("unknown field reported");
    assert_eq!(unknown.path, "spec.template.spec.requirments", "{msgs:?}");
    assert_eq!(unknown.line, Some(12), "{msgs:?}");
    assert_eq!(unknown.document, Some(1));
    assert!(
        unknown
            .to_string()
            .starts_with("pool.yaml:12: document 1: spec.template.spec.requirments: unknown field")
    );
}

#[test]
fn wrong_type_is_reported_with_path_and_line() {
    let text = POOL.replace("requirments:", "requirements:").replace(
        "      nodeClassRef:",
        "      expireAfter: [1]\n      nodeClassRef:",
    );
    let docs = parse_documents(Path::new("pool.yaml"), &text).expect("parses");
    let err = docs[0]
        .decode_strict::<NodePool>()
        .expect_err("wrong type must fail");
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].path, "spec.template.spec.expireAfter");
    assert_eq!(err.0[0].line, Some(8));
    assert!(
        err.0[0].message.contains("invalid type"),
        "{}",
        err.0[0].message
    );
}

#[test]
fn valid_manifest_decodes() {
    let text = POOL.replace("requirments:", "requirements:");
    let docs = parse_documents(Path::new("pool.yaml"), &text).expect("parses");
    let pool: NodePool = docs[0].decode_strict().expect("valid");
    assert_eq!(pool.spec.template.spec.requirements[0].values(), ["amd64"]);
}

#[test]
fn tabs_are_rejected_with_line() {
    let err = parse_documents(Path::new("t.yaml"), "a:\n\tb: 1\n").expect_err("tabs");
    assert_eq!(err.line, Some(2));
    assert!(err.message.contains("tab"));
}

#[test]
fn broken_indentation_is_rejected_with_line() {
    let err =
        parse_documents(Path::new("b.yaml"), "a:\n  b: 1\n c: 2\n").expect_err("bad indentation");
    assert!(err.line.is_some(), "{err}");
}

#[test]
fn duplicate_keys_are_rejected() {
    let err = parse_documents(Path::new("d.yaml"), "a: 1\na: 2\n").expect_err("duplicate");
    assert!(err.message.contains("duplicate"), "{err}");
}

#[test]
fn missing_files_are_reported() {
    let err = read_paths(&["/nonexistent/x.yaml".into()]).expect_err("missing");
    assert!(err.to_string().contains("no such file"));
}

#[test]
fn paths_print_and_parse_back() {
    for p in [
        "spec.template.spec.requirements[0].key",
        "a",
        "items[2].spec.x[0][1]",
        "",
    ] {
        assert_eq!(path_string(&parse_path(p)), p);
    }
    assert_eq!(
        parse_path("a[1]"),
        vec![PathSeg::Key("a".into()), PathSeg::Index(1)]
    );
}
