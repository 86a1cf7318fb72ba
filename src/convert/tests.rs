use kube::CustomResourceExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::*;
use crate::apis::{EC2NodeClass, NodePool};

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).expect("test YAML parses")
}

fn convert(text: &str) -> Converted {
    match convert_document(&yaml(text)) {
        Ok(c) => c,
        Err(e) => panic!("conversion failed: {e}"),
    }
}

/// Decodes into our type and encodes back: equal only if no field was lost or invented.
fn round_trip<T: DeserializeOwned + Serialize>(obj: &Value) {
    let typed: T = serde_json::from_value(obj.clone()).expect("decodes into the v1 type");
    let again = serde_json::to_value(&typed).expect("encodes");
    assert_eq!(&again, obj, "decoding and re-encoding changed the object");
}

/// The CRD's OpenAPI schema (patterns, enums, required fields, item counts); CEL rules aside.
fn schema_errors<T: CustomResourceExt>(obj: &Value) -> Vec<String> {
    let crd = serde_json::to_value(T::crd()).expect("CRD encodes");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let validator = jsonschema::validator_for(schema).expect("schema compiles");
    validator
        .iter_errors(obj)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Every produced object must be a strict, schema-valid v1 object (or, when `complete` is
/// false, one the user still has to finish: strict, but the schema may reject it).
fn check_v1(obj: &Value, complete: bool) {
    let errors = match (obj["apiVersion"].as_str(), obj["kind"].as_str()) {
        (Some("karpenter.sh/v1"), Some("NodePool")) => {
            round_trip::<NodePool>(obj);
            schema_errors::<NodePool>(obj)
        }
        (Some("karpenter.k8s.aws/v1"), Some("EC2NodeClass")) => {
            round_trip::<EC2NodeClass>(obj);
            schema_errors::<EC2NodeClass>(obj)
        }
        other => panic!("not a v1 Karpenter object: {other:?}"),
    };
    if complete {
        assert!(errors.is_empty(), "schema rejects {obj:#}: {errors:?}");
    } else {
        assert!(
            !errors.is_empty(),
            "expected an incomplete object, schema accepts {obj:#}"
        );
    }
}

/// Notes go to stderr as they are: each starts with the input path and, but for the kubelet
/// block to copy, is one line.
fn check_notes(notes: &[String]) {
    for n in notes {
        let (path, rest) = n
            .split_once(": ")
            .unwrap_or_else(|| panic!("no path in note {n:?}"));
        assert!(
            !path.is_empty() && !path.contains(' '),
            "note does not start with a path: {n:?}"
        );
        assert!(!rest.is_empty(), "{n:?}");
        assert!(
            !n.contains('\n') || n.contains("\n  kubelet:\n"),
            "multi-line note: {n:?}"
        );
    }
}

const ABSENT: &str = "<absent>";

struct Case {
    name: &'static str,
    input: &'static str,
    /// JSON pointer into the produced object, and the value there (YAML) or ABSENT.
    expect: &'static [(&'static str, &'static str)],
    /// Each must be part of some note.
    notes: &'static [&'static str],
    /// False when the output still needs the user's hand (the schema is expected to reject it).
    complete: bool,
}

fn run(cases: &[Case]) {
    for case in cases {
        let out = convert(case.input);
        assert_eq!(out.objects.len(), 1, "{}: one object expected", case.name);
        let obj = &out.objects[0];
        check_v1(obj, case.complete);
        check_notes(&out.notes);
        for (pointer, want) in case.expect {
            let got = obj.pointer(pointer);
            if *want == ABSENT {
                assert!(
                    got.is_none(),
                    "{}: {pointer} should be absent, is {got:?}",
                    case.name
                );
            } else {
                assert_eq!(
                    got,
                    Some(&yaml(want)),
                    "{}: {pointer} in {obj:#}",
                    case.name
                );
            }
        }
        for want in case.notes {
            assert!(
                out.notes.iter().any(|n| n.contains(want)),
                "{}: no note contains {want:?}; notes: {:#?}",
                case.name,
                out.notes
            );
        }
    }
}

const PROVISIONER: &str = r#"
apiVersion: karpenter.sh/v1alpha5
kind: Provisioner
metadata:
  name: default
  resourceVersion: "123"
  uid: 0b3f8d2e-1111-2222-3333-444455556666
  creationTimestamp: "2023-05-01T10:00:00Z"
  generation: 4
  managedFields: [{manager: kubectl, operation: Apply}]
  labels: {team: platform}
  annotations:
    owner: infra
    kubectl.kubernetes.io/last-applied-configuration: '{"apiVersion":"karpenter.sh/v1alpha5"}'
    karpenter.sh/provisioner-hash: "1234"
spec:
  requirements:
    - key: karpenter.sh/capacity-type
      operator: In
      values: [spot, on-demand]
    - key: kubernetes.io/arch
      operator: NotIn
      values: [arm64]
    - key: karpenter.k8s.aws/instance-generation
      operator: Gt
      values: ["4"]
  labels:
    workload: general
  annotations:
    example.com/cost-center: "42"
  taints:
    - key: dedicated
      value: general
      effect: NoSchedule
  startupTaints:
    - key: node.cilium.io/agent-not-ready
      value: "true"
      effect: NoExecute
  providerRef:
    name: default
  limits:
    resources:
      cpu: 1000
      memory: 1000Gi
  weight: 10
  ttlSecondsAfterEmpty: 30
  ttlSecondsUntilExpired: 2592000
status:
  resources: {cpu: "12"}
"#;

#[test]
fn provisioner_ttl_after_empty_example_from_the_issue() {
    let out = convert(PROVISIONER);
    assert!(
        out.notes.iter().any(|n| n
            == "spec.ttlSecondsAfterEmpty: 30 became disruption.consolidationPolicy: WhenEmpty, \
                consolidateAfter: 30s"),
        "{:#?}",
        out.notes
    );
    let obj = &out.objects[0];
    assert_eq!(
        obj["spec"]["disruption"],
        yaml("{consolidationPolicy: WhenEmpty, consolidateAfter: 30s}")
    );
}

#[test]
fn provisioner_is_a_nodepool() {
    let out = convert(PROVISIONER);
    let obj = &out.objects[0];
    check_v1(obj, true);
    check_notes(&out.notes);
    let want = yaml(
        r#"
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: default
  labels: {team: platform}
  annotations: {owner: infra}
spec:
  template:
    metadata:
      labels: {workload: general}
      annotations: {example.com/cost-center: "42"}
    spec:
      requirements:
        - {key: karpenter.sh/capacity-type, operator: In, values: [spot, on-demand]}
        - {key: kubernetes.io/arch, operator: NotIn, values: [arm64]}
        - {key: karpenter.k8s.aws/instance-generation, operator: Gt, values: ["4"]}
      taints:
        - {key: dedicated, value: general, effect: NoSchedule}
      startupTaints:
        - {key: node.cilium.io/agent-not-ready, value: "true", effect: NoExecute}
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}
      expireAfter: 2592000s
  disruption: {consolidationPolicy: WhenEmpty, consolidateAfter: 30s}
  limits: {cpu: "1000", memory: 1000Gi}
  weight: 10
"#,
    );
    assert_eq!(obj, &want, "got {obj:#}");
    // Server-set metadata and status go without a word; the two conversions are reported.
    assert_eq!(out.notes.len(), 2, "{:#?}", out.notes);
    assert!(out.notes[1].starts_with(
        "spec.ttlSecondsUntilExpired: 2592000 became template.spec.expireAfter: 2592000s"
    ));
}

#[test]
fn provisioner_rules() {
    run(&[
        Case {
            name: "consolidation enabled, no expiry",
            input: r#"
apiVersion: karpenter.sh/v1alpha5
kind: Provisioner
metadata: {name: spot}
spec:
  consolidation: {enabled: true}
  providerRef: {name: spot-template}
"#,
            expect: &[
                (
                    "/spec/disruption",
                    "{consolidationPolicy: WhenEmptyOrUnderutilized, consolidateAfter: 0s}",
                ),
                ("/spec/template/spec/expireAfter", ABSENT),
                ("/spec/template/spec/nodeClassRef/name", "spot-template"),
                ("/spec/template/spec/requirements", "[]"),
            ],
            notes: &[
                "spec.consolidation.enabled: true became disruption.consolidationPolicy: WhenEmptyOrUnderutilized, consolidateAfter: 0s",
                "spec.ttlSecondsUntilExpired: not set, so nodes never expired in v1alpha5; v1's default expireAfter of 720h now applies",
            ],
            complete: true,
        },
        Case {
            name: "neither ttl nor consolidation: never consolidated",
            input: r#"
apiVersion: karpenter.sh/v1alpha5
kind: Provisioner
metadata: {name: steady}
spec:
  consolidation: {enabled: false}
  providerRef: {name: default, kind: AWSNodeTemplate, apiVersion: karpenter.k8s.aws/v1alpha1}
  ttlSecondsUntilExpired: 604800
"#,
            expect: &[
                (
                    "/spec/disruption",
                    "{consolidationPolicy: WhenEmpty, consolidateAfter: Never}",
                ),
                ("/spec/template/spec/expireAfter", "604800s"),
            ],
            notes: &["kept with disruption.consolidateAfter: Never"],
            complete: true,
        },
        Case {
            name: "inline provider cannot be carried",
            input: r#"
apiVersion: karpenter.sh/v1alpha5
kind: Provisioner
metadata: {name: legacy}
spec:
  provider:
    subnetSelector: {karpenter.sh/discovery: my-cluster}
    securityGroupSelector: {karpenter.sh/discovery: my-cluster}
    instanceProfile: KarpenterNodeInstanceProfile
  ttlSecondsAfterEmpty: 60
"#,
            expect: &[
                (
                    "/spec/template/spec/nodeClassRef",
                    "{group: karpenter.k8s.aws, kind: EC2NodeClass, name: legacy}",
                ),
                ("/spec/disruption/consolidateAfter", "60s"),
            ],
            notes: &[
                "spec.provider: inline AWS settings cannot be carried into a NodePool; write them as an EC2NodeClass named \"legacy\"",
            ],
            complete: true,
        },
        Case {
            name: "no providerRef at all",
            input: r#"
apiVersion: karpenter.sh/v1alpha5
kind: Provisioner
metadata: {name: bare}
spec: {ttlSecondsAfterEmpty: 0}
"#,
            expect: &[
                ("/spec/template/spec/nodeClassRef/name", "bare"),
                ("/spec/disruption/consolidateAfter", "0s"),
            ],
            notes: &[
                "spec.providerRef: not set; spec.template.spec.nodeClassRef names EC2NodeClass \"bare\"",
            ],
            complete: true,
        },
        Case {
            name: "kubelet configuration goes into a note",
            input: r#"
apiVersion: karpenter.sh/v1alpha5
kind: Provisioner
metadata: {name: kube}
spec:
  providerRef: {name: big-pods}
  ttlSecondsAfterEmpty: 30
  kubeletConfiguration:
    containerRuntime: dockerd
    clusterDNS: ["10.0.1.100"]
    maxPods: 110
    podsPerCore: 2
    systemReserved: {cpu: 100m, memory: 100Mi, ephemeral-storage: 1Gi}
    kubeReserved: {cpu: 1, memory: 200Mi}
    evictionHard: {memory.available: 5%}
    evictionSoft: {memory.available: 500Mi}
    evictionSoftGracePeriod: {memory.available: 1m}
    evictionMaxPodGracePeriod: 60
    imageGCHighThresholdPercent: 85
    imageGCLowThresholdPercent: 80
    cpuCFSQuota: true
"#,
            expect: &[("/spec/template/spec/nodeClassRef/name", "big-pods")],
            notes: &[
                "spec.kubeletConfiguration: kubelet settings live on the EC2NodeClass in v1, not on the NodePool; add this to the spec of EC2NodeClass \"big-pods\"",
                "\n  kubelet:\n",
                "maxPods: 110",
                "podsPerCore: 2",
                "clusterDNS:",
                "evictionMaxPodGracePeriod: 60",
                "imageGCHighThresholdPercent: 85",
                "imageGCLowThresholdPercent: 80",
                "cpuCFSQuota: true",
                "evictionSoftGracePeriod:",
                "spec.kubeletConfiguration.containerRuntime: \"dockerd\" dropped; v1 nodes always run containerd",
            ],
            complete: true,
        },
        Case {
            name: "provisioner-name requirement and restricted labels are dropped",
            input: r#"
apiVersion: karpenter.sh/v1alpha5
kind: Provisioner
metadata: {name: gpu}
spec:
  providerRef: {name: gpu}
  ttlSecondsAfterEmpty: 30
  labels:
    karpenter.sh/provisioner-name: gpu
    gpu: "true"
  annotations:
    karpenter.sh/do-not-consolidate: "true"
  requirements:
    - key: karpenter.sh/provisioner-name
      operator: In
      values: [gpu]
    - key: node.kubernetes.io/instance-type
      operator: In
      values: [g5.xlarge, g5.2xlarge]
"#,
            expect: &[
                (
                    "/spec/template/spec/requirements",
                    "[{key: node.kubernetes.io/instance-type, operator: In, values: [g5.xlarge, g5.2xlarge]}]",
                ),
                ("/spec/template/metadata/labels", "{gpu: \"true\"}"),
                (
                    "/spec/template/metadata/annotations",
                    "{karpenter.sh/do-not-disrupt: \"true\"}",
                ),
            ],
            notes: &[
                "spec.requirements[0]: karpenter.sh/provisioner-name is karpenter.sh/nodepool in v1, which a NodePool may not name in its requirements",
                "spec.labels[\"karpenter.sh/provisioner-name\"]: label domain \"karpenter.sh\" is restricted in v1; dropped",
                "spec.annotations[\"karpenter.sh/do-not-consolidate\"]: became karpenter.sh/do-not-disrupt",
            ],
            complete: true,
        },
        Case {
            name: "unknown fields are reported, not dropped silently",
            input: r#"
apiVersion: karpenter.sh/v1alpha5
kind: Provisioner
metadata: {name: typos, namespace: karpenter}
spec:
  providerRef: {name: default}
  ttlSecondsAfterEmpty: 30
  foo: bar
  requirements:
    - key: kubernetes.io/os
      operator: In
      values: [linux]
      value: linux
  consolidation: {enabled: false, aggressive: true}
  limits: {resources: {cpu: 10}, hard: true}
extra: 1
"#,
            expect: &[
                ("/spec/limits", "{cpu: \"10\"}"),
                ("/spec/foo", ABSENT),
                ("/metadata/namespace", ABSENT),
            ],
            notes: &[
                "spec.foo: not known in v1alpha5 Provisioner; dropped",
                "spec.requirements[0].value: not known in v1alpha5 Provisioner; dropped",
                "spec.consolidation.aggressive: not known in v1alpha5 Provisioner; dropped",
                "spec.limits.hard: not known in v1alpha5 Provisioner; dropped",
                "extra: not known in v1alpha5 Provisioner; dropped",
                "metadata.namespace: karpenter dropped",
            ],
            complete: true,
        },
    ]);
}

#[test]
fn aws_node_template_rules() {
    run(&[
        Case {
            name: "tags and ids selectors, AL2 alias",
            input: r#"
apiVersion: karpenter.k8s.aws/v1alpha1
kind: AWSNodeTemplate
metadata:
  name: default
  annotations: {karpenter.k8s.aws/nodetemplate-hash: "99"}
spec:
  subnetSelector:
    karpenter.sh/discovery: my-cluster
  securityGroupSelector:
    aws-ids: "sg-0123abc, sg-0456def"
  amiFamily: AL2
  instanceProfile: KarpenterNodeInstanceProfile-my-cluster
  userData: |
    #!/bin/bash
    echo hello
  tags:
    team: platform
  metadataOptions:
    httpEndpoint: enabled
    httpProtocolIPv6: disabled
    httpPutResponseHopLimit: 1
    httpTokens: required
  blockDeviceMappings:
    - deviceName: /dev/xvda
      ebs:
        volumeSize: 100Gi
        volumeType: gp3
        iops: 3000
        throughput: 125
        encrypted: true
        deleteOnTermination: true
  detailedMonitoring: true
"#,
            expect: &[
                ("/apiVersion", "karpenter.k8s.aws/v1"),
                ("/metadata", "{name: default}"),
                (
                    "/spec/subnetSelectorTerms",
                    "[{tags: {karpenter.sh/discovery: my-cluster}}]",
                ),
                (
                    "/spec/securityGroupSelectorTerms",
                    "[{id: sg-0123abc}, {id: sg-0456def}]",
                ),
                ("/spec/amiSelectorTerms", "[{alias: al2@latest}]"),
                ("/spec/amiFamily", "AL2"),
                (
                    "/spec/instanceProfile",
                    "KarpenterNodeInstanceProfile-my-cluster",
                ),
                ("/spec/userData", "\"#!/bin/bash\\necho hello\\n\""),
                ("/spec/tags", "{team: platform}"),
                ("/spec/metadataOptions/httpPutResponseHopLimit", "1"),
                (
                    "/spec/blockDeviceMappings/0/ebs",
                    "{volumeSize: 100Gi, volumeType: gp3, iops: 3000, throughput: 125, encrypted: true, deleteOnTermination: true}",
                ),
                ("/spec/detailedMonitoring", "true"),
            ],
            notes: &[
                "spec.amiFamily: AL2 with no spec.amiSelector became amiSelectorTerms: [{alias: al2@latest}]",
            ],
            complete: true,
        },
        Case {
            name: "security group Name stays a tag; AL2023 alias",
            input: r#"
apiVersion: karpenter.k8s.aws/v1alpha1
kind: AWSNodeTemplate
metadata: {name: al2023}
spec:
  subnetSelector: {aws-ids: "subnet-0aaa,subnet-0bbb"}
  securityGroupSelector: {Name: my-cluster-node}
  amiFamily: AL2023
  instanceProfile: nodes
  metadataOptions: {httpTokens: required}
"#,
            expect: &[
                (
                    "/spec/subnetSelectorTerms",
                    "[{id: subnet-0aaa}, {id: subnet-0bbb}]",
                ),
                (
                    "/spec/securityGroupSelectorTerms",
                    "[{tags: {Name: my-cluster-node}}]",
                ),
                ("/spec/amiSelectorTerms", "[{alias: al2023@latest}]"),
                (
                    "/spec/metadataOptions",
                    "{httpTokens: required, httpPutResponseHopLimit: 2}",
                ),
            ],
            notes: &[
                "spec.metadataOptions.httpPutResponseHopLimit: not set; the old default 2 was written out",
            ],
            complete: true,
        },
        Case {
            name: "Bottlerocket alias; metadataOptions default written out",
            input: r#"
apiVersion: karpenter.k8s.aws/v1alpha1
kind: AWSNodeTemplate
metadata: {name: br}
spec:
  subnetSelector: {karpenter.sh/discovery: c}
  securityGroupSelector: {karpenter.sh/discovery: c}
  amiFamily: Bottlerocket
  instanceProfile: nodes
"#,
            expect: &[
                ("/spec/amiSelectorTerms", "[{alias: bottlerocket@latest}]"),
                (
                    "/spec/metadataOptions",
                    "{httpEndpoint: enabled, httpProtocolIPv6: disabled, httpPutResponseHopLimit: 2, httpTokens: required}",
                ),
            ],
            notes: &["spec.metadataOptions: not set; the old default (httpPutResponseHopLimit: 2"],
            complete: true,
        },
        Case {
            name: "image ids, Custom family",
            input: r#"
apiVersion: karpenter.k8s.aws/v1alpha1
kind: AWSNodeTemplate
metadata: {name: custom}
spec:
  subnetSelector: {karpenter.sh/discovery: c}
  securityGroupSelector: {karpenter.sh/discovery: c}
  amiSelector: {aws-ids: "ami-0123456789abcdef0,ami-0fedcba9876543210"}
  amiFamily: Custom
  instanceProfile: nodes
  userData: |
    #!/bin/bash
    /etc/eks/bootstrap.sh c
"#,
            expect: &[
                (
                    "/spec/amiSelectorTerms",
                    "[{id: ami-0123456789abcdef0}, {id: ami-0fedcba9876543210}]",
                ),
                ("/spec/amiFamily", "Custom"),
            ],
            notes: &[
                "spec.amiFamily: Custom: in v1 your userData must register the node with the taint karpenter.sh/unregistered:NoExecute",
            ],
            complete: true,
        },
        Case {
            name: "image name, owners and tags; family defaults to AL2",
            input: r#"
apiVersion: karpenter.k8s.aws/v1alpha1
kind: AWSNodeTemplate
metadata: {name: named}
spec:
  subnetSelector: {karpenter.sh/discovery: c}
  securityGroupSelector: {karpenter.sh/discovery: c}
  amiSelector:
    aws::name: my-ami-*
    aws::owners: "self,123456789012"
    team: platform
  instanceProfile: nodes
"#,
            expect: &[
                (
                    "/spec/amiSelectorTerms",
                    "[{name: my-ami-*, owner: self, tags: {team: platform}}, {name: my-ami-*, owner: '123456789012', tags: {team: platform}}]",
                ),
                ("/spec/amiFamily", "AL2"),
            ],
            notes: &[
                "spec.amiFamily: not set, so AL2 applied; written out",
                "spec.amiSelector[\"aws::owners\"]: each owner became its own term",
            ],
            complete: true,
        },
        Case {
            name: "comma-separated tag values become several terms; ids win over tags",
            input: r#"
apiVersion: karpenter.k8s.aws/v1alpha1
kind: AWSNodeTemplate
metadata: {name: multi}
spec:
  subnetSelector: {Name: "private-a,private-b", tier: private}
  securityGroupSelector: {aws-ids: sg-0123abc, Name: nodes}
  amiFamily: AL2
  instanceProfile: nodes
"#,
            expect: &[
                (
                    "/spec/subnetSelectorTerms",
                    "[{tags: {Name: private-a, tier: private}}, {tags: {Name: private-b, tier: private}}]",
                ),
                ("/spec/securityGroupSelectorTerms", "[{id: sg-0123abc}]"),
            ],
            notes: &[
                "spec.subnetSelector: comma-separated values (any of which matched) became 2 terms",
                "spec.securityGroupSelector: ids were combined with Name; a v1 id term cannot carry other filters",
            ],
            complete: true,
        },
        Case {
            name: "Ubuntu without amiSelector needs terms written",
            input: r#"
apiVersion: karpenter.k8s.aws/v1alpha1
kind: AWSNodeTemplate
metadata: {name: ubuntu}
spec:
  subnetSelector: {karpenter.sh/discovery: c}
  securityGroupSelector: {karpenter.sh/discovery: c}
  amiFamily: Ubuntu
  instanceProfile: nodes
"#,
            expect: &[
                ("/spec/amiSelectorTerms", "[]"),
                ("/spec/amiFamily", "Ubuntu"),
            ],
            notes: &[
                "spec.amiFamily: Ubuntu has no image alias in v1 and spec.amiSelector is empty; amiSelectorTerms must be written",
            ],
            complete: false,
        },
        Case {
            name: "launch template, old spellings, unknown block device field",
            input: r#"
apiVersion: karpenter.k8s.aws/v1alpha1
kind: AWSNodeTemplate
metadata: {name: lt}
spec:
  subnetSelector: {karpenter.sh/discovery: c}
  launchTemplate: my-launch-template
  associatePublicIpAddress: false
  amiFamily: AL2
  context: ctx-1
  blockDeviceMappings:
    - deviceName: /dev/xvdb
      virtualName: ephemeral0
      ebs: {volumeSize: 20Gi}
"#,
            expect: &[
                ("/spec/associatePublicIPAddress", "false"),
                ("/spec/context", "ctx-1"),
                ("/spec/securityGroupSelectorTerms", "[]"),
                (
                    "/spec/blockDeviceMappings",
                    "[{deviceName: /dev/xvdb, ebs: {volumeSize: 20Gi}}]",
                ),
            ],
            notes: &[
                "spec.launchTemplate: my-launch-template cannot be carried",
                "spec.securityGroupSelector: not set; securityGroupSelectorTerms must be written",
                "spec.instanceProfile: not set",
                "spec.blockDeviceMappings[0].virtualName: not known in v1alpha1 AWSNodeTemplate; dropped",
            ],
            complete: false,
        },
    ]);
}

#[test]
fn v1beta1_node_pool_rules() {
    run(&[
        Case {
            name: "WhenUnderutilized, expireAfter and kubelet",
            input: r#"
apiVersion: karpenter.sh/v1beta1
kind: NodePool
metadata: {name: default}
spec:
  template:
    metadata:
      labels: {team: a}
    spec:
      nodeClassRef:
        apiVersion: karpenter.k8s.aws/v1beta1
        kind: EC2NodeClass
        name: default
      requirements:
        - key: karpenter.k8s.aws/instance-category
          operator: In
          values: [c, m, r]
          minValues: 2
      taints: [{key: a, effect: NoSchedule}]
      kubelet:
        maxPods: 58
        systemReserved: {cpu: 1, memory: 1Gi}
      resources:
        requests: {cpu: "1"}
  disruption:
    consolidationPolicy: WhenUnderutilized
    expireAfter: 720h
    budgets:
      - nodes: "10%"
      - nodes: "0"
        schedule: "0 9 * * mon-fri"
        duration: 8h
  limits: {cpu: 1000, memory: 1000Gi}
  weight: 50
"#,
            expect: &[
                ("/apiVersion", "karpenter.sh/v1"),
                (
                    "/spec/template/spec/nodeClassRef",
                    "{group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}",
                ),
                ("/spec/template/spec/expireAfter", "720h"),
                ("/spec/template/spec/requirements/0/minValues", "2"),
                ("/spec/template/spec/kubelet", ABSENT),
                ("/spec/template/spec/resources", ABSENT),
                (
                    "/spec/disruption",
                    "{consolidationPolicy: WhenEmptyOrUnderutilized, consolidateAfter: 0s, budgets: [{nodes: 10%}, {nodes: '0', schedule: 0 9 * * mon-fri, duration: 8h}]}",
                ),
                ("/spec/limits", "{cpu: '1000', memory: 1000Gi}"),
                ("/spec/weight", "50"),
            ],
            notes: &[
                "spec.disruption.consolidationPolicy: WhenUnderutilized became WhenEmptyOrUnderutilized with consolidateAfter: 0s",
                "spec.disruption.expireAfter: 720h moved to spec.template.spec.expireAfter",
                "spec.template.spec.kubelet: kubelet settings live on the EC2NodeClass in v1",
                "maxPods: 58",
                "spec.template.spec.resources: dropped",
            ],
            complete: true,
        },
        Case {
            name: "WhenEmpty kept, nodeClassRef defaults",
            input: r#"
apiVersion: karpenter.sh/v1beta1
kind: NodePool
metadata: {name: batch}
spec:
  template:
    spec:
      nodeClassRef: {name: batch}
      requirements: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]
  disruption:
    consolidationPolicy: WhenEmpty
    consolidateAfter: 5m
    expireAfter: Never
"#,
            expect: &[
                (
                    "/spec/template/spec/nodeClassRef",
                    "{group: karpenter.k8s.aws, kind: EC2NodeClass, name: batch}",
                ),
                ("/spec/template/spec/expireAfter", "Never"),
                (
                    "/spec/disruption",
                    "{consolidationPolicy: WhenEmpty, consolidateAfter: 5m}",
                ),
            ],
            notes: &[],
            complete: true,
        },
        Case {
            name: "unknown fields inside the template and disruption",
            input: r#"
apiVersion: karpenter.sh/v1beta1
kind: NodePool
metadata: {name: odd}
spec:
  template:
    spec:
      nodeClassRef: {name: odd, kind: EC2NodeClass}
      requirements: []
      kubeletConfiguration: {maxPods: 10}
  disruption:
    utilizationThreshold: 50
"#,
            expect: &[("/spec/disruption", ABSENT)],
            notes: &[
                "spec.template.spec.kubeletConfiguration: not known in v1beta1 NodePool; dropped",
                "spec.disruption.utilizationThreshold: not known in v1beta1 NodePool; dropped",
            ],
            complete: true,
        },
    ]);
}

#[test]
fn v1beta1_ec2_node_class_rules() {
    run(&[
        Case {
            name: "selector terms, role and extras kept",
            input: r#"
apiVersion: karpenter.k8s.aws/v1beta1
kind: EC2NodeClass
metadata: {name: default}
spec:
  amiFamily: AL2023
  amiSelectorTerms:
    - name: my-al2023-*
      owner: self
    - id: ami-0123456789abcdef0
  role: KarpenterNodeRole-my-cluster
  subnetSelectorTerms:
    - tags: {karpenter.sh/discovery: my-cluster}
    - id: subnet-0abc
  securityGroupSelectorTerms:
    - name: my-cluster-nodes
  associatePublicIPAddress: false
  instanceStorePolicy: RAID0
  detailedMonitoring: false
  tags: {team: platform}
  userData: |
    [settings.kubernetes]
    max-pods = 110
  metadataOptions:
    httpEndpoint: enabled
    httpProtocolIPv6: disabled
    httpPutResponseHopLimit: 2
    httpTokens: required
  blockDeviceMappings:
    - deviceName: /dev/xvda
      rootVolume: true
      ebs: {volumeSize: 50Gi, volumeType: gp3, kmsKeyID: "arn:aws:kms:eu-west-1:123456789012:key/abc", snapshotID: snap-0123}
status:
  amis: [{id: ami-0123456789abcdef0, name: x}]
"#,
            expect: &[
                ("/apiVersion", "karpenter.k8s.aws/v1"),
                ("/spec/amiFamily", "AL2023"),
                (
                    "/spec/amiSelectorTerms",
                    "[{name: my-al2023-*, owner: self}, {id: ami-0123456789abcdef0}]",
                ),
                ("/spec/role", "KarpenterNodeRole-my-cluster"),
                (
                    "/spec/subnetSelectorTerms",
                    "[{tags: {karpenter.sh/discovery: my-cluster}}, {id: subnet-0abc}]",
                ),
                (
                    "/spec/securityGroupSelectorTerms",
                    "[{name: my-cluster-nodes}]",
                ),
                ("/spec/associatePublicIPAddress", "false"),
                ("/spec/instanceStorePolicy", "RAID0"),
                ("/spec/detailedMonitoring", "false"),
                ("/spec/blockDeviceMappings/0/rootVolume", "true"),
                (
                    "/spec/blockDeviceMappings/0/ebs/kmsKeyID",
                    "\"arn:aws:kms:eu-west-1:123456789012:key/abc\"",
                ),
                ("/spec/metadataOptions/httpPutResponseHopLimit", "2"),
                ("/status", ABSENT),
            ],
            notes: &[],
            complete: true,
        },
        Case {
            name: "Bottlerocket without terms becomes an alias",
            input: r#"
apiVersion: karpenter.k8s.aws/v1beta1
kind: EC2NodeClass
metadata: {name: br}
spec:
  amiFamily: Bottlerocket
  role: nodes
  subnetSelectorTerms: [{tags: {karpenter.sh/discovery: c}}]
  securityGroupSelectorTerms: [{tags: {karpenter.sh/discovery: c}}]
"#,
            expect: &[
                ("/spec/amiSelectorTerms", "[{alias: bottlerocket@latest}]"),
                ("/spec/amiFamily", "Bottlerocket"),
            ],
            notes: &[
                "spec.amiFamily: Bottlerocket with no spec.amiSelectorTerms became amiSelectorTerms: [{alias: bottlerocket@latest}]",
            ],
            complete: true,
        },
        Case {
            name: "Windows2022 alias",
            input: r#"
apiVersion: karpenter.k8s.aws/v1beta1
kind: EC2NodeClass
metadata: {name: win}
spec:
  amiFamily: Windows2022
  instanceProfile: nodes
  subnetSelectorTerms: [{tags: {karpenter.sh/discovery: c}}]
  securityGroupSelectorTerms: [{tags: {karpenter.sh/discovery: c}}]
  metadataOptions: {httpPutResponseHopLimit: 1}
"#,
            expect: &[
                ("/spec/amiSelectorTerms", "[{alias: windows2022@latest}]"),
                ("/spec/metadataOptions", "{httpPutResponseHopLimit: 1}"),
            ],
            notes: &["windows2022@latest"],
            complete: true,
        },
        Case {
            name: "Custom without terms, unknown field",
            input: r#"
apiVersion: karpenter.k8s.aws/v1beta1
kind: EC2NodeClass
metadata: {name: custom}
spec:
  amiFamily: Custom
  role: nodes
  subnetSelectorTerms: [{tags: {karpenter.sh/discovery: c}}]
  securityGroupSelectorTerms: [{tags: {karpenter.sh/discovery: c}, owner: me}]
  kubelet: {maxPods: 10}
"#,
            expect: &[("/spec/amiSelectorTerms", "[]"), ("/spec/kubelet", ABSENT)],
            notes: &[
                "spec.amiFamily: Custom has no image alias in v1",
                "spec.securityGroupSelectorTerms[0].owner: not known in v1beta1 EC2NodeClass; dropped",
                "spec.kubelet: not known in v1beta1 EC2NodeClass; dropped",
            ],
            complete: false,
        },
    ]);
}

#[test]
fn v1_and_foreign_objects_pass_through_unchanged() {
    let inputs = [
        r#"
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: default, resourceVersion: "7"}
spec:
  template:
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}
      requirements: []
      kubelet: {maxPods: 1}
"#,
        r#"
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: default}
spec:
  amiSelectorTerms: [{alias: al2023@latest}]
  role: nodes
  subnetSelectorTerms: [{tags: {a: b}}]
  securityGroupSelectorTerms: [{tags: {a: b}}]
"#,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: y}\nspec: {replicas: 1}\n",
    ];
    for input in inputs {
        let doc = yaml(input);
        let out = convert(input);
        assert_eq!(out.objects, vec![doc], "{input}");
        assert!(out.notes.is_empty(), "{:?}", out.notes);
    }
}

#[test]
fn list_items_are_converted_each() {
    let input = r#"
apiVersion: v1
kind: List
items:
  - apiVersion: karpenter.sh/v1alpha5
    kind: Provisioner
    metadata: {name: default}
    spec: {providerRef: {name: default}, ttlSecondsAfterEmpty: 30, ttlSecondsUntilExpired: 3600}
  - apiVersion: karpenter.k8s.aws/v1alpha1
    kind: AWSNodeTemplate
    metadata: {name: default}
    spec:
      subnetSelector: {karpenter.sh/discovery: c}
      securityGroupSelector: {karpenter.sh/discovery: c}
      instanceProfile: nodes
      metadataOptions: {httpPutResponseHopLimit: 2}
      amiSelector: {aws-ids: ami-0123}
      amiFamily: AL2
"#;
    let out = convert(input);
    let typed_list = input.replace(
        "apiVersion: v1\nkind: List",
        "apiVersion: karpenter.sh/v1alpha5\nkind: ProvisionerList",
    );
    assert_eq!(
        convert(&typed_list),
        out,
        "a typed list converts like a List"
    );
    let kinds: Vec<&str> = out
        .objects
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["NodePool", "EC2NodeClass"]);
    for obj in &out.objects {
        check_v1(obj, true);
    }
    assert_eq!(
        out.notes,
        [
            "items[0].spec.ttlSecondsAfterEmpty: 30 became disruption.consolidationPolicy: WhenEmpty, consolidateAfter: 30s",
            "items[0].spec.ttlSecondsUntilExpired: 3600 became template.spec.expireAfter: 3600s; v1 expiry is forceful (an expired node drains without waiting for a replacement)",
        ]
    );
}

#[test]
fn bad_input_is_an_error_naming_the_path() {
    let provisioner = |spec: &str| {
        format!(
            "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {{name: p}}\nspec: {spec}\n"
        )
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("unknown apiVersion", "apiVersion: karpenter.sh/v1alpha4\nkind: Provisioner\nmetadata: {name: p}\nspec: {}\n".into(), "apiVersion", "\"karpenter.sh/v1alpha4\" is not a Karpenter API version"),
        ("unknown aws apiVersion", "apiVersion: karpenter.k8s.aws/v1alpha5\nkind: AWSNodeTemplate\nmetadata: {name: p}\nspec: {}\n".into(), "apiVersion", "is not a Karpenter API version"),
        ("wrong type for weight", provisioner("{weight: high}"), "spec.weight", "spec.weight: expected an integer, got string \"high\""),
        ("weight out of range", provisioner("{weight: 500}"), "spec.weight", "500 is out of range"),
        ("values not a list", provisioner("{requirements: [{key: kubernetes.io/arch, operator: In, values: amd64}]}"), "spec.requirements[0].values", "invalid type"),
        ("unknown operator", provisioner("{requirements: [{key: kubernetes.io/arch, operator: Equals, values: [amd64]}]}"), "spec.requirements[0].operator", "unknown operator"),
        ("negative ttl", provisioner("{ttlSecondsAfterEmpty: -1}"), "spec.ttlSecondsAfterEmpty", "negative"),
        ("ttl with consolidation", provisioner("{ttlSecondsAfterEmpty: 30, consolidation: {enabled: true}}"), "spec.ttlSecondsAfterEmpty", "cannot be set with"),
        ("limit of the wrong type", provisioner("{limits: {resources: {cpu: [1]}}}"), "spec.limits.resources.cpu", "invalid type"),
        ("taints not a list", provisioner("{taints: {key: a}}"), "spec.taints", "invalid type"),
        ("spec not a map", provisioner("[]"), "spec", "expected a map, got a list"),
        ("providerRef without name", provisioner("{providerRef: {kind: AWSNodeTemplate}}"), "spec.providerRef.name", "required but missing"),
        ("no name", "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {labels: {a: b}}\nspec: {}\n".into(), "metadata.name", "required"),
        ("label value not a string", "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {name: p, labels: {a: [1]}}\nspec: {}\n".into(), "metadata.labels.a", "expected a string"),
        ("machines are not converted", "apiVersion: karpenter.sh/v1alpha5\nkind: Machine\nmetadata: {name: m}\nspec: {}\n".into(), "kind", "cannot be converted"),
        ("nodeclaims are not converted", "apiVersion: karpenter.sh/v1beta1\nkind: NodeClaim\nmetadata: {name: m}\nspec: {}\n".into(), "kind", "cannot be converted"),
        ("no apiVersion", "kind: Provisioner\nmetadata: {name: p}\n".into(), "apiVersion", "required but missing"),
        ("not an object", "- a\n- b\n".into(), "", "expected a Kubernetes object (a map), got a list"),
        ("unknown policy", "apiVersion: karpenter.sh/v1beta1\nkind: NodePool\nmetadata: {name: p}\nspec: {template: {spec: {nodeClassRef: {name: x}}}, disruption: {consolidationPolicy: Sometimes}}\n".into(), "spec.disruption.consolidationPolicy", "unknown policy"),
        ("nodeClassRef missing", "apiVersion: karpenter.sh/v1beta1\nkind: NodePool\nmetadata: {name: p}\nspec: {template: {spec: {requirements: []}}}\n".into(), "spec.template.spec.nodeClassRef", "required but missing"),
        ("unknown AMI family", "apiVersion: karpenter.k8s.aws/v1beta1\nkind: EC2NodeClass\nmetadata: {name: c}\nspec: {amiFamily: Windows2016, role: r, subnetSelectorTerms: [{id: subnet-1}], securityGroupSelectorTerms: [{id: sg-1}]}\n".into(), "spec.amiFamily", "unknown AMI family"),
        ("selector value not a string", "apiVersion: karpenter.k8s.aws/v1alpha1\nkind: AWSNodeTemplate\nmetadata: {name: t}\nspec: {subnetSelector: {tier: 1}}\n".into(), "spec.subnetSelector.tier", "expected a string, got number 1"),
        ("list item error", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n- apiVersion: karpenter.sh/v1alpha5\n  kind: Provisioner\n  metadata: {name: p}\n  spec: {weight: high}\n".into(), "items[1].spec.weight", "items[1].spec.weight: expected an integer"),
    ];
    for (name, input, path, message) in cases {
        let err = match convert_document(&yaml(&input)) {
            Ok(out) => panic!("{name}: expected an error, got {:?}", out.objects),
            Err(e) => e,
        };
        assert_eq!(err.path(), path, "{name}: {err}");
        let text = err.to_string();
        assert!(text.contains(message), "{name}: {text:?} lacks {message:?}");
        if !path.is_empty() {
            assert!(text.starts_with(&format!("{path}: ")), "{name}: {text:?}");
        }
    }
}
