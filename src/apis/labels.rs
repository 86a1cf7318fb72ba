//! Well-known labels, annotations and taints, and which label keys a NodePool may not set.
//! Names are Karpenter's, so that existing selectors, dashboards and tooling keep working.

use kube::core::{Message, Rule};

pub const NODEPOOL: &str = "karpenter.sh/nodepool";
pub const CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";
pub const REGISTERED: &str = "karpenter.sh/registered";
pub const INITIALIZED: &str = "karpenter.sh/initialized";
pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
pub const NODEPOOL_HASH: &str = "karpenter.sh/nodepool-hash";
pub const NODEPOOL_HASH_VERSION: &str = "karpenter.sh/nodepool-hash-version";
pub const TERMINATION_FINALIZER: &str = "karpenter.sh/termination";
pub const DISRUPTED_TAINT_KEY: &str = "karpenter.sh/disrupted";
pub const UNREGISTERED_TAINT_KEY: &str = "karpenter.sh/unregistered";
pub const EC2NODECLASS: &str = "karpenter.k8s.aws/ec2nodeclass";

pub const CAPACITY_TYPE_SPOT: &str = "spot";
pub const CAPACITY_TYPE_ON_DEMAND: &str = "on-demand";
pub const CAPACITY_TYPE_RESERVED: &str = "reserved";

pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const ARCH: &str = "kubernetes.io/arch";
pub const OS: &str = "kubernetes.io/os";
pub const ZONE: &str = "topology.kubernetes.io/zone";
pub const REGION: &str = "topology.kubernetes.io/region";
pub const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
pub const WINDOWS_BUILD: &str = "node.kubernetes.io/windows-build";

pub const INSTANCE_CATEGORY: &str = "karpenter.k8s.aws/instance-category";
pub const INSTANCE_FAMILY: &str = "karpenter.k8s.aws/instance-family";
pub const INSTANCE_GENERATION: &str = "karpenter.k8s.aws/instance-generation";
pub const INSTANCE_SIZE: &str = "karpenter.k8s.aws/instance-size";
pub const INSTANCE_CPU: &str = "karpenter.k8s.aws/instance-cpu";
pub const INSTANCE_MEMORY: &str = "karpenter.k8s.aws/instance-memory";
pub const INSTANCE_GPU_COUNT: &str = "karpenter.k8s.aws/instance-gpu-count";
pub const INSTANCE_GPU_NAME: &str = "karpenter.k8s.aws/instance-gpu-name";
pub const INSTANCE_GPU_MANUFACTURER: &str = "karpenter.k8s.aws/instance-gpu-manufacturer";
pub const INSTANCE_GPU_MEMORY: &str = "karpenter.k8s.aws/instance-gpu-memory";
pub const INSTANCE_LOCAL_NVME: &str = "karpenter.k8s.aws/instance-local-nvme";
pub const INSTANCE_HYPERVISOR: &str = "karpenter.k8s.aws/instance-hypervisor";

/// Labels outside the restricted domains that a NodePool may still use (they are well known
/// and Karpenter sets them itself on every node).
pub const WELL_KNOWN_KUBERNETES: &[&str] = &[
    "beta.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "failure-domain.beta.kubernetes.io/zone",
    ZONE,
    REGION,
    INSTANCE_TYPE,
    ARCH,
    OS,
    WINDOWS_BUILD,
];

/// `karpenter.sh/*` labels a NodePool may select on.
pub const WELL_KNOWN_KARPENTER: &[&str] = &[CAPACITY_TYPE, NODEPOOL];

/// `karpenter.k8s.aws/*` labels a NodePool may select on (the instance facts the provider sets).
pub const WELL_KNOWN_AWS: &[&str] = &[
    EC2NODECLASS,
    "karpenter.k8s.aws/instance-encryption-in-transit-supported",
    INSTANCE_CATEGORY,
    INSTANCE_HYPERVISOR,
    INSTANCE_FAMILY,
    INSTANCE_GENERATION,
    INSTANCE_LOCAL_NVME,
    INSTANCE_SIZE,
    INSTANCE_CPU,
    "karpenter.k8s.aws/instance-cpu-manufacturer",
    "karpenter.k8s.aws/instance-cpu-sustained-clock-speed-mhz",
    INSTANCE_MEMORY,
    "karpenter.k8s.aws/instance-ebs-bandwidth",
    "karpenter.k8s.aws/instance-network-bandwidth",
    INSTANCE_GPU_NAME,
    INSTANCE_GPU_MANUFACTURER,
    INSTANCE_GPU_COUNT,
    INSTANCE_GPU_MEMORY,
    "karpenter.k8s.aws/instance-accelerator-name",
    "karpenter.k8s.aws/instance-accelerator-manufacturer",
    "karpenter.k8s.aws/instance-accelerator-count",
    "karpenter.k8s.aws/instance-capability-flex",
];

/// The domain part of a label key (`a.b/c` → `a.b`; no slash → empty).
pub fn domain(key: &str) -> &str {
    key.split_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Why a NodePool may not use this label key in requirements or template labels, if it may not.
/// Mirrors the CEL rules in the CRD (see [`restricted_key_rules`]); the webhook uses this one.
pub fn restricted_reason(key: &str) -> Option<String> {
    if key == HOSTNAME || key == NODEPOOL {
        return Some(format!("label \"{key}\" is restricted"));
    }
    let d = domain(key);
    let allowed_k8s = WELL_KNOWN_KUBERNETES.contains(&key)
        || d.ends_with("node.kubernetes.io")
        || d.ends_with("node-restriction.kubernetes.io");
    if d.ends_with("kubernetes.io") && !allowed_k8s {
        return Some("label domain \"kubernetes.io\" is restricted".into());
    }
    if d.ends_with("k8s.io") && !d.ends_with("kops.k8s.io") {
        return Some("label domain \"k8s.io\" is restricted".into());
    }
    if d.ends_with("karpenter.sh") && !WELL_KNOWN_KARPENTER.contains(&key) {
        return Some("label domain \"karpenter.sh\" is restricted".into());
    }
    if d.ends_with("karpenter.k8s.aws") && !WELL_KNOWN_AWS.contains(&key) {
        return Some("label domain \"karpenter.k8s.aws\" is restricted".into());
    }
    None
}

fn cel_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// CEL rules on a label key (`self` is the key), as Karpenter's CRDs carry them. `find` is
/// Kubernetes' regex extension; it returns "" when nothing matches. One function per rule because
/// the schema derive takes one rule per attribute.
const DOMAIN: &str = r#"self.find("^([^/]+)")"#;

pub fn rule_kubernetes_io() -> Rule {
    Rule::new(format!(
        "self in {} || {DOMAIN}.endsWith(\"node.kubernetes.io\") || {DOMAIN}.endsWith(\"node-restriction.kubernetes.io\") || !{DOMAIN}.endsWith(\"kubernetes.io\")",
        cel_list(WELL_KNOWN_KUBERNETES)
    ))
    .message("label domain \"kubernetes.io\" is restricted")
}

pub fn rule_k8s_io() -> Rule {
    Rule::new(format!(
        "{DOMAIN}.endsWith(\"kops.k8s.io\") || !{DOMAIN}.endsWith(\"k8s.io\")"
    ))
    .message("label domain \"k8s.io\" is restricted")
}

pub fn rule_karpenter_sh() -> Rule {
    Rule::new(format!(
        "self in {} || !{DOMAIN}.endsWith(\"karpenter.sh\")",
        cel_list(WELL_KNOWN_KARPENTER)
    ))
    .message("label domain \"karpenter.sh\" is restricted")
}

pub fn rule_karpenter_aws() -> Rule {
    Rule::new(format!(
        "self in {} || !{DOMAIN}.endsWith(\"karpenter.k8s.aws\")",
        cel_list(WELL_KNOWN_AWS)
    ))
    .message("label domain \"karpenter.k8s.aws\" is restricted")
}

pub fn rule_not_hostname() -> Rule {
    Rule::new(format!("self != \"{HOSTNAME}\"")).message(Message::Message(format!(
        "label \"{HOSTNAME}\" is restricted"
    )))
}

/// The same restrictions over a map of labels (`self` is the map; CEL iterates its keys).
pub fn rule_labels_not(key: &str) -> Rule {
    Rule::new(format!("self.all(x, x != \"{key}\")"))
        .message(Message::Message(format!("label \"{key}\" is restricted")))
}

/// The NodePool-only rule on requirements: the NodePool label is set by capstan itself.
pub fn rule_requirements_not_nodepool() -> Rule {
    Rule::new(format!("self.all(x, x.key != \"{NODEPOOL}\")")).message(Message::Message(format!(
        "label \"{NODEPOOL}\" is restricted"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_keys() {
        let cases = [
            ("kubernetes.io/hostname", true),
            ("karpenter.sh/nodepool", true),
            ("kubernetes.io/arch", false),
            ("topology.kubernetes.io/zone", false),
            ("node.kubernetes.io/instance-type", false),
            ("example.node.kubernetes.io/x", false),
            ("kubernetes.io/foo", true),
            ("foo.k8s.io/bar", true),
            ("kops.k8s.io/instancegroup", false),
            ("karpenter.sh/capacity-type", false),
            ("karpenter.sh/custom", true),
            ("karpenter.k8s.aws/instance-family", false),
            ("karpenter.k8s.aws/made-up", true),
            ("team", false),
            ("example.com/team", false),
        ];
        for (key, restricted) in cases {
            assert_eq!(restricted_reason(key).is_some(), restricted, "{key}");
        }
    }
}
