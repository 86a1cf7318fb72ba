//! The examples from Karpenter's own v1 documentation must decode strictly and re-encode to the
//! same JSON: nothing lost, nothing added.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::manifest::parse_documents;

/// The NodePool reference example of Karpenter's docs (concepts/nodepools), with the
/// `720h | Never` style alternatives resolved to one value each.
const DOCS_NODEPOOL: &str = r#"
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: default
spec:
  template:
    metadata:
      labels:
        billing-team: my-team
      annotations:
        example.com/owner: "my-team"
    spec:
      nodeClassRef:
        group: karpenter.k8s.aws
        kind: EC2NodeClass
        name: default
      taints:
        - key: example.com/special-taint
          effect: NoSchedule
      startupTaints:
        - key: example.com/another-taint
          effect: NoSchedule
      expireAfter: 720h
      terminationGracePeriod: 48h
      requirements:
        - key: "karpenter.k8s.aws/instance-category"
          operator: In
          values: ["c", "m", "r"]
          minValues: 2
        - key: "karpenter.k8s.aws/instance-family"
          operator: In
          values: ["m5","m5d","c5","c5d","c4","r4"]
          minValues: 5
        - key: "karpenter.k8s.aws/instance-cpu"
          operator: In
          values: ["4", "8", "16", "32"]
        - key: "karpenter.k8s.aws/instance-hypervisor"
          operator: In
          values: ["nitro"]
        - key: "karpenter.k8s.aws/instance-generation"
          operator: Gt
          values: ["2"]
        - key: "topology.kubernetes.io/zone"
          operator: In
          values: ["us-west-2a", "us-west-2b"]
        - key: "kubernetes.io/arch"
          operator: In
          values: ["arm64", "amd64"]
        - key: "karpenter.sh/capacity-type"
          operator: In
          values: ["spot", "on-demand", "reserved"]
  disruption:
    consolidationPolicy: WhenEmptyOrUnderutilized
    consolidateAfter: 1m
    budgets:
    - nodes: 10%
    - schedule: "0 9 * * mon-fri"
      duration: 8h
      nodes: "0"
  limits:
    cpu: "1000"
    memory: 1000Gi
  weight: 10
status:
  conditions:
    - type: Initialized
      status: "False"
      observedGeneration: 1
      lastTransitionTime: "2024-02-02T19:54:34Z"
      reason: NodeClaimNotLaunched
      message: "NodeClaim hasn't succeeded launch"
  resources:
    cpu: "20"
    memory: "8192Mi"
    ephemeral-storage: "100Gi"
"#;

/// The EC2NodeClass reference example of Karpenter's docs (concepts/nodeclasses).
const DOCS_EC2NODECLASS: &str = r#"
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata:
  name: default
spec:
  kubelet:
    podsPerCore: 2
    maxPods: 20
    systemReserved:
        cpu: 100m
        memory: 100Mi
        ephemeral-storage: 1Gi
    kubeReserved:
        cpu: 200m
        memory: 100Mi
        ephemeral-storage: 3Gi
    evictionHard:
        memory.available: 5%
        nodefs.available: 10%
        nodefs.inodesFree: 10%
    evictionSoft:
        memory.available: 500Mi
        nodefs.available: 15%
        nodefs.inodesFree: 15%
    evictionSoftGracePeriod:
        memory.available: 1m
        nodefs.available: 1m30s
        nodefs.inodesFree: 2m
    evictionMaxPodGracePeriod: 60
    imageGCHighThresholdPercent: 85
    imageGCLowThresholdPercent: 80
    cpuCFSQuota: true
    clusterDNS: ["10.0.1.100"]
  amiFamily: AL2
  subnetSelectorTerms:
    - tags:
        karpenter.sh/discovery: "${CLUSTER_NAME}"
        environment: test
    - id: subnet-09fa4a0a8f233a921
  securityGroupSelectorTerms:
    - tags:
        karpenter.sh/discovery: "${CLUSTER_NAME}"
        environment: test
    - id: sg-063d7acfb4b06c82c
  capacityReservationSelectorTerms:
    - tags:
        karpenter.sh/discovery: ${CLUSTER_NAME}
    - id: cr-123
  role: "KarpenterNodeRole-${CLUSTER_NAME}"
  amiSelectorTerms:
    - tags:
        karpenter.sh/discovery: "${CLUSTER_NAME}"
        environment: test
    - name: my-ami-name
    - id: ami-123
  tags:
    team: team-a
    app: team-a-app
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
        iops: 10000
        encrypted: true
        kmsKeyID: "1234abcd-12ab-34cd-56ef-1234567890ab"
        deleteOnTermination: true
        throughput: 125
        snapshotID: snap-0123456789
  instanceStorePolicy: RAID0
  userData: |
    echo "Hello world"
  detailedMonitoring: true
  associatePublicIPAddress: true
status:
  subnets:
    - id: subnet-0a462d98193ff9fac
      zone: us-east-2b
      zoneID: use2-az2
    - id: subnet-00c99aeafe2a70304
      zone: us-east-2a
      zoneID: use2-az1
  securityGroups:
    - id: sg-041513b454818610b
      name: ClusterSharedNodeSecurityGroup
  capacityReservations:
    - availabilityZone: us-west-2a
      id: cr-01234567890123456
      instanceMatchCriteria: targeted
      instanceType: g6.48xlarge
      ownerID: "012345678901"
      reservationType: capacity-block
      state: expiring
  amis:
    - id: ami-01234567890123456
      name: custom-ami-amd64
      requirements:
        - key: kubernetes.io/arch
          operator: In
          values:
            - amd64
  instanceProfile: "${CLUSTER_NAME}-0123456778901234567789"
  conditions:
    - lastTransitionTime: "2024-02-02T19:54:34Z"
      status: "True"
      type: InstanceProfileReady
    - lastTransitionTime: "2024-02-02T19:54:34Z"
      status: "True"
      type: Ready
"#;

/// A NodeClaim as Karpenter writes one (concepts/nodeclaims).
const DOCS_NODECLAIM: &str = r#"
apiVersion: karpenter.sh/v1
kind: NodeClaim
metadata:
  name: default-sfpsl
  labels:
    karpenter.sh/nodepool: default
spec:
  expireAfter: 720h
  nodeClassRef:
    group: karpenter.k8s.aws
    kind: EC2NodeClass
    name: default
  requirements:
  - key: kubernetes.io/arch
    operator: In
    values:
    - amd64
  - key: karpenter.sh/nodepool
    operator: In
    values:
    - default
  - key: node.kubernetes.io/instance-type
    operator: In
    values:
    - c5.large
    - m5.large
  resources:
    requests:
      cpu: 3150m
      pods: "6"
status:
  allocatable:
    cpu: 1930m
    memory: 3055Mi
    pods: "29"
  capacity:
    cpu: "2"
    memory: 3788Mi
    pods: "29"
  conditions:
  - lastTransitionTime: "2024-08-07T22:21:12Z"
    message: ""
    reason: Launched
    status: "True"
    type: Launched
  imageID: ami-08946d4d49fc3f27b
  nodeName: ip-192-168-71-87.us-west-2.compute.internal
  providerID: aws:///us-west-2b/i-0967c3c6d3ab1d43e
"#;

fn round_trip<T: DeserializeOwned + Serialize>(text: &str) -> T {
    let docs = parse_documents(Path::new("docs.yaml"), text).expect("the example parses");
    let typed: T = docs[0]
        .decode_strict()
        .unwrap_or_else(|e| panic!("decodes strictly: {e}"));
    let back = serde_json::to_value(&typed).expect("encodes");
    assert_eq!(
        back, docs[0].value,
        "re-encoding must give back exactly what was read"
    );
    typed
}

#[test]
fn karpenter_docs_nodepool_round_trips() {
    let pool: NodePool = round_trip(DOCS_NODEPOOL);
    assert_eq!(pool.weight(), 10);
    assert_eq!(pool.consolidate_after(), "1m");
    assert_eq!(pool.budgets().len(), 2);
    assert_eq!(
        pool.budgets()[1].schedule.as_deref(),
        Some("0 9 * * mon-fri")
    );
    assert_eq!(pool.spec.template.spec.requirements[0].min_values, Some(2));
}

#[test]
fn karpenter_docs_ec2nodeclass_round_trips() {
    let class: EC2NodeClass = round_trip(DOCS_EC2NODECLASS);
    let kubelet = class.spec.kubelet.as_ref().expect("kubelet");
    assert_eq!(kubelet.max_pods, Some(20));
    assert_eq!(class.spec.ami_selector_terms.len(), 3);
    assert_eq!(class.status.as_ref().map(|s| s.subnets.len()), Some(2));
}

#[test]
fn karpenter_docs_nodeclaim_round_trips() {
    let claim: NodeClaim = round_trip(DOCS_NODECLAIM);
    assert!(claim.is_condition_true("Launched"));
    assert_eq!(
        claim.status.as_ref().and_then(|s| s.provider_id.as_deref()),
        Some("aws:///us-west-2b/i-0967c3c6d3ab1d43e")
    );
}

#[test]
fn defaults_apply_when_fields_are_absent() {
    let minimal = r#"
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: minimal}
spec:
  template:
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}
      requirements: []
"#;
    let pool: NodePool = round_trip(minimal);
    assert_eq!(pool.consolidation_policy(), "WhenEmptyOrUnderutilized");
    assert_eq!(pool.consolidate_after(), "0s");
    assert_eq!(pool.expire_after(), "720h");
    assert_eq!(
        pool.budgets(),
        vec![Budget {
            nodes: "10%".into(),
            ..Default::default()
        }]
    );
    assert_eq!(pool.weight(), 0);
}

#[test]
fn crd_generation_is_deterministic() {
    let a = crds_yaml().expect("renders");
    let b = crds_yaml().expect("renders");
    assert_eq!(a, b);
}

/// The CRDs' defaults are the ones the accessors fall back to, so code and API server agree.
#[test]
fn crd_defaults_match_accessors() {
    let crds = serde_json::to_value(all_crds()).expect("json");
    let spec = &crds[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(
        spec["disruption"]["properties"]["consolidationPolicy"]["default"],
        "WhenEmptyOrUnderutilized"
    );
    assert_eq!(
        spec["disruption"]["properties"]["consolidateAfter"]["default"],
        "0s"
    );
    assert_eq!(
        spec["disruption"]["properties"]["budgets"]["default"],
        serde_json::json!([{"nodes": "10%"}])
    );
    assert_eq!(
        spec["template"]["properties"]["spec"]["properties"]["expireAfter"]["default"],
        "720h"
    );
    // JSONSchemaProps holds bounds as f64, as the API server does.
    assert_eq!(spec["weight"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(spec["weight"]["maximum"].as_f64(), Some(100.0));
}
