//! EC2NodeClass defaulting (metadata options) and validation: selector terms, AMI family and
//! aliases, role xor instance profile, tags, kubelet settings, block devices.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::common::{Verdict, check_duration, check_quantity, decode};
use crate::apis::EC2NodeClassSpec;
use crate::apis::ec2nodeclass::{AMI_ALIAS_FAMILIES, AMI_FAMILIES, KubeletConfiguration};

const RESERVED_KEYS: &[&str] = &["cpu", "memory", "ephemeral-storage", "pid"];
const EVICTION_SIGNALS: &[&str] = &[
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "pid.available",
];
const VOLUME_TYPES: &[&str] = &["standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"];
const RESTRICTED_TAGS: &[&str] = &[
    "karpenter.sh/nodepool",
    "karpenter.sh/nodeclaim",
    "karpenter.k8s.aws/ec2nodeclass",
    "eks:eks-cluster-name",
];

/// Fills `metadataOptions` with Karpenter's defaults (IMDSv2 required, hop limit 1), field by field.
pub fn default_ec2nodeclass(obj: &Value) -> Value {
    let mut out = obj.clone();
    let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) else {
        return out;
    };
    let mo = spec.entry("metadataOptions").or_insert_with(|| json!({}));
    if let Some(m) = mo.as_object_mut() {
        m.entry("httpEndpoint").or_insert_with(|| json!("enabled"));
        m.entry("httpProtocolIPv6")
            .or_insert_with(|| json!("disabled"));
        m.entry("httpPutResponseHopLimit")
            .or_insert_with(|| json!(1));
        m.entry("httpTokens").or_insert_with(|| json!("required"));
    }
    out
}

/// Validates an EC2NodeClass, and on update the transition from `old`.
pub fn validate_ec2nodeclass(obj: &Value, old: Option<&Value>) -> Verdict {
    let mut v = Verdict::default();
    let Some(spec_value) = obj.get("spec").filter(|s| s.is_object()) else {
        v.error("spec", "required");
        return v;
    };
    let spec: EC2NodeClassSpec = match decode(spec_value, "spec") {
        Ok(s) => s,
        Err(e) => {
            v.errors.push(e);
            return v;
        }
    };
    selector_terms(&spec, &mut v);
    ami(&spec, &mut v);
    identity(&spec, old, &mut v);
    tags(&spec, &mut v);
    if let Some(k) = &spec.kubelet {
        kubelet(k, &mut v);
    }
    block_devices(&spec, &mut v);
    metadata_options(&spec, &mut v);
    if let Some(p) = &spec.instance_store_policy
        && p != "RAID0"
    {
        v.error(
            "spec.instanceStorePolicy",
            format!("unsupported value {p:?}: supported values: RAID0"),
        );
    }
    v
}

fn tags_ok(tags: &BTreeMap<String, String>, path: &str, v: &mut Verdict) {
    if tags.is_empty() {
        v.error(path, "must not be empty");
    }
    for (k, val) in tags {
        if k.is_empty() || val.is_empty() {
            v.error(
                format!("{path}[{k}]"),
                "empty tag keys or values aren't supported",
            );
        }
    }
}

fn selector_terms(spec: &EC2NodeClassSpec, v: &mut Verdict) {
    let p = "spec.subnetSelectorTerms";
    if spec.subnet_selector_terms.is_empty() {
        v.error(p, "at least one term is required (tags or id)");
    }
    for (i, t) in spec.subnet_selector_terms.iter().enumerate() {
        let set = [t.tags.is_some(), t.id.is_some()];
        exactly_one(&format!("{p}[{i}]"), &set, &["tags", "id"], v);
        if let Some(tags) = &t.tags {
            tags_ok(tags, &format!("{p}[{i}].tags"), v);
        }
    }
    let p = "spec.securityGroupSelectorTerms";
    if spec.security_group_selector_terms.is_empty() {
        v.error(p, "at least one term is required (tags, id or name)");
    }
    for (i, t) in spec.security_group_selector_terms.iter().enumerate() {
        let set = [t.tags.is_some(), t.id.is_some(), t.name.is_some()];
        exactly_one(&format!("{p}[{i}]"), &set, &["tags", "id", "name"], v);
        if let Some(tags) = &t.tags {
            tags_ok(tags, &format!("{p}[{i}].tags"), v);
        }
    }
    for (i, t) in spec
        .capacity_reservation_selector_terms
        .iter()
        .flatten()
        .enumerate()
    {
        let p = format!("spec.capacityReservationSelectorTerms[{i}]");
        exactly_one(&p, &[t.tags.is_some(), t.id.is_some()], &["tags", "id"], v);
    }
}

fn exactly_one(path: &str, set: &[bool], names: &[&str], v: &mut Verdict) {
    let n = set.iter().filter(|b| **b).count();
    if n != 1 {
        v.error(
            path,
            format!("must set exactly one of {}, has {n}", names.join(", ")),
        );
    }
}

fn ami(spec: &EC2NodeClassSpec, v: &mut Verdict) {
    let p = "spec.amiSelectorTerms";
    let terms = &spec.ami_selector_terms;
    if terms.is_empty() {
        v.error(
            p,
            "at least one term is required (alias, tags, id, name or ssmParameter)",
        );
    }
    let has_alias = terms.iter().any(|t| t.alias.is_some());
    if has_alias && terms.len() != 1 {
        v.error(p, "a term with alias must be the only term");
    }
    for (i, t) in terms.iter().enumerate() {
        let tp = format!("{p}[{i}]");
        let any = t.tags.is_some()
            || t.id.is_some()
            || t.name.is_some()
            || t.alias.is_some()
            || t.ssm_parameter.is_some();
        if !any {
            v.error(&tp, "must set one of alias, tags, id, name, ssmParameter");
        }
        if t.id.is_some()
            && (t.alias.is_some() || t.tags.is_some() || t.name.is_some() || t.owner.is_some())
        {
            v.error(
                format!("{tp}.id"),
                "id cannot be combined with other fields of the term",
            );
        }
        if let Some(alias) = &t.alias {
            if t.tags.is_some()
                || t.name.is_some()
                || t.owner.is_some()
                || t.ssm_parameter.is_some()
            {
                v.error(
                    format!("{tp}.alias"),
                    "alias cannot be combined with other fields of the term",
                );
            }
            match alias.split_once('@') {
                Some((family, version))
                    if AMI_ALIAS_FAMILIES.contains(&family) && !version.is_empty() =>
                {
                    if version != "latest" && !version.starts_with('v') {
                        v.error(format!("{tp}.alias"), format!("invalid version {version:?}: expected latest or a version such as v20240807"));
                    }
                }
                _ => v.error(
                    format!("{tp}.alias"),
                    format!(
                        "invalid alias {alias:?}: expected family@version with family one of {}",
                        AMI_ALIAS_FAMILIES.join(", ")
                    ),
                ),
            }
        }
        if let Some(tags) = &t.tags {
            tags_ok(tags, &format!("{tp}.tags"), v);
        }
    }
    match &spec.ami_family {
        Some(f) if !AMI_FAMILIES.contains(&f.as_str()) => v.error(
            "spec.amiFamily",
            format!(
                "unsupported value {f:?}: supported values: {}",
                AMI_FAMILIES.join(", ")
            ),
        ),
        None if !has_alias => v.error(
            "spec.amiFamily",
            "required when amiSelectorTerms has no alias",
        ),
        _ => {}
    }
}

fn identity(spec: &EC2NodeClassSpec, old: Option<&Value>, v: &mut Verdict) {
    match (&spec.role, &spec.instance_profile) {
        (Some(_), Some(_)) => v.error(
            "spec",
            "must specify exactly one of role, instanceProfile; both are set",
        ),
        (None, None) => v.error(
            "spec.role",
            "must specify exactly one of role, instanceProfile; neither is set",
        ),
        _ => {}
    }
    let Some(old) = old else { return };
    let old_role = old.pointer("/spec/role");
    let new_role = spec.role.as_ref().map(|r| json!(r));
    if let (Some(o), Some(n)) = (old_role, &new_role)
        && o != n
    {
        v.error("spec.role", format!("is immutable: was {o}, now {n}"));
    }
    if old.pointer("/spec/instanceProfile").is_some() && spec.role.is_some() {
        v.error("spec.role", "changing from instanceProfile to role is not supported; delete and recreate the EC2NodeClass");
    }
}

fn tags(spec: &EC2NodeClassSpec, v: &mut Verdict) {
    for (k, val) in spec.tags.iter().flatten() {
        let p = format!("spec.tags[{k}]");
        if k.is_empty() || val.is_empty() {
            v.error(&p, "empty tag keys or values aren't supported");
        }
        if RESTRICTED_TAGS.contains(&k.as_str()) || k.starts_with("kubernetes.io/cluster") {
            v.error(
                &p,
                format!("tag {k:?} is restricted: capstan sets it itself"),
            );
        }
    }
}

fn kubelet(k: &KubeletConfiguration, v: &mut Verdict) {
    const P: &str = "spec.kubelet";
    if let (Some(high), Some(low)) = (
        k.image_gc_high_threshold_percent,
        k.image_gc_low_threshold_percent,
    ) && high <= low
    {
        v.error(
            format!("{P}.imageGCHighThresholdPercent"),
            format!("must be greater than imageGCLowThresholdPercent ({high} <= {low})"),
        );
    }
    for (name, value) in [
        (
            "imageGCHighThresholdPercent",
            k.image_gc_high_threshold_percent,
        ),
        (
            "imageGCLowThresholdPercent",
            k.image_gc_low_threshold_percent,
        ),
    ] {
        if value.is_some_and(|x| !(0..=100).contains(&x)) {
            v.error(format!("{P}.{name}"), "must be from 0 to 100");
        }
    }
    for (name, value) in [
        ("maxPods", k.max_pods),
        ("podsPerCore", k.pods_per_core),
        ("evictionMaxPodGracePeriod", k.eviction_max_pod_grace_period),
    ] {
        if value.is_some_and(|x| x < 0) {
            v.error(format!("{P}.{name}"), "must not be negative");
        }
    }
    for (name, list) in [
        ("systemReserved", &k.system_reserved),
        ("kubeReserved", &k.kube_reserved),
    ] {
        for (key, q) in list.iter().flatten() {
            let p = format!("{P}.{name}[{key}]");
            if !RESERVED_KEYS.contains(&key.as_str()) {
                v.error(
                    &p,
                    format!(
                        "unsupported key: supported keys: {}",
                        RESERVED_KEYS.join(", ")
                    ),
                );
            } else if let Err(e) = check_quantity(q) {
                v.error(&p, e);
            }
        }
    }
    for (name, list) in [
        ("evictionHard", &k.eviction_hard),
        ("evictionSoft", &k.eviction_soft),
    ] {
        for (key, threshold) in list.iter().flatten() {
            let p = format!("{P}.{name}[{key}]");
            if !EVICTION_SIGNALS.contains(&key.as_str()) {
                v.error(
                    &p,
                    format!(
                        "unsupported signal: supported signals: {}",
                        EVICTION_SIGNALS.join(", ")
                    ),
                );
            } else if let Err(e) = check_threshold(threshold) {
                v.error(&p, e);
            }
        }
    }
    let soft = k.eviction_soft.clone().unwrap_or_default();
    let grace = k.eviction_soft_grace_period.clone().unwrap_or_default();
    for key in soft.keys() {
        if !grace.contains_key(key) {
            v.error(
                format!("{P}.evictionSoftGracePeriod[{key}]"),
                format!("required: evictionSoft {key} needs a grace period"),
            );
        }
    }
    for (key, d) in &grace {
        let p = format!("{P}.evictionSoftGracePeriod[{key}]");
        if !soft.contains_key(key) {
            v.error(&p, format!("has no matching evictionSoft {key}"));
        }
        if let Err(e) = check_duration(d, false) {
            v.error(&p, e);
        }
    }
}

/// An eviction threshold: a quantity (`100Mi`) or a percentage (`10%`).
fn check_threshold(s: &str) -> Result<(), String> {
    if let Some(p) = s.strip_suffix('%') {
        return match p.parse::<f64>() {
            Ok(x) if (0.0..=100.0).contains(&x) => Ok(()),
            _ => Err(format!(
                "invalid threshold {s:?}: a percentage must be from 0% to 100%"
            )),
        };
    }
    check_quantity(s).map(|_| ())
}

fn block_devices(spec: &EC2NodeClassSpec, v: &mut Verdict) {
    let Some(list) = &spec.block_device_mappings else {
        return;
    };
    if list.iter().filter(|b| b.root_volume == Some(true)).count() > 1 {
        v.error(
            "spec.blockDeviceMappings",
            "at most one mapping may be the rootVolume",
        );
    }
    for (i, b) in list.iter().enumerate() {
        let p = format!("spec.blockDeviceMappings[{i}].ebs");
        let Some(ebs) = &b.ebs else { continue };
        if ebs.snapshot_id.is_none() && ebs.volume_size.is_none() {
            v.error(&p, "snapshotID or volumeSize must be set");
        }
        if let Some(size) = &ebs.volume_size {
            match check_quantity(&size.0) {
                Err(e) => v.error(format!("{p}.volumeSize"), e),
                Ok(q) => {
                    let bytes = q.value();
                    if !(1 << 30..=64i64 << 40).contains(&bytes) {
                        v.error(
                            format!("{p}.volumeSize"),
                            format!("{:?} is out of range: must be from 1Gi to 64Ti", size.0),
                        );
                    }
                }
            }
        }
        if let Some(t) = &ebs.volume_type
            && !VOLUME_TYPES.contains(&t.as_str())
        {
            v.error(
                format!("{p}.volumeType"),
                format!(
                    "unsupported value {t:?}: supported values: {}",
                    VOLUME_TYPES.join(", ")
                ),
            );
        }
        for (name, value) in [("iops", ebs.iops), ("throughput", ebs.throughput)] {
            if value.is_some_and(|x| x < 0) {
                v.error(format!("{p}.{name}"), "must not be negative");
            }
        }
    }
}

fn metadata_options(spec: &EC2NodeClassSpec, v: &mut Verdict) {
    let Some(m) = &spec.metadata_options else {
        return;
    };
    const P: &str = "spec.metadataOptions";
    for (name, value, allowed) in [
        ("httpEndpoint", &m.http_endpoint, &["enabled", "disabled"]),
        (
            "httpProtocolIPv6",
            &m.http_protocol_ipv6,
            &["enabled", "disabled"],
        ),
        ("httpTokens", &m.http_tokens, &["required", "optional"]),
    ] {
        if let Some(val) = value
            && !allowed.contains(&val.as_str())
        {
            v.error(
                format!("{P}.{name}"),
                format!(
                    "unsupported value {val:?}: supported values: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
    if m.http_put_response_hop_limit
        .is_some_and(|h| !(1..=64).contains(&h))
    {
        v.error(
            format!("{P}.httpPutResponseHopLimit"),
            "must be from 1 to 64",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class() -> Value {
        json!({
            "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "default"},
            "spec": {
                "role": "KarpenterNodeRole-demo",
                "amiSelectorTerms": [{"alias": "al2023@latest"}],
                "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "demo"}}],
                "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "demo"}}],
                "tags": {"team": "a"},
                "kubelet": {"maxPods": 110, "systemReserved": {"cpu": "100m", "memory": "100Mi"},
                            "evictionSoft": {"memory.available": "5%"}, "evictionSoftGracePeriod": {"memory.available": "1m"},
                            "imageGCHighThresholdPercent": 85, "imageGCLowThresholdPercent": 80},
                "blockDeviceMappings": [{"deviceName": "/dev/xvda", "rootVolume": true, "ebs": {"volumeSize": "100Gi", "volumeType": "gp3"}}]
            }
        })
    }

    fn set(pointer: &str, value: Value) -> Value {
        let mut c = class();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let m = c.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        if value.is_null() {
            m.remove(key);
        } else {
            m.insert(key.into(), value);
        }
        c
    }

    #[test]
    fn valid_class() {
        let v = validate_ec2nodeclass(&class(), None);
        assert!(v.is_allowed(), "{:?}", v.errors);
    }

    #[test]
    fn invalid_cases_name_their_field() {
        let cases = [
            (
                set("/spec/subnetSelectorTerms", json!([])),
                "spec.subnetSelectorTerms",
            ),
            (
                set(
                    "/spec/subnetSelectorTerms",
                    json!([{"tags": {"a": "b"}, "id": "subnet-1"}]),
                ),
                "spec.subnetSelectorTerms[0]",
            ),
            (
                set("/spec/subnetSelectorTerms", json!([{"tags": {"a": ""}}])),
                "spec.subnetSelectorTerms[0].tags[a]",
            ),
            (
                set(
                    "/spec/securityGroupSelectorTerms",
                    json!([{"id": "sg-1", "name": "x"}]),
                ),
                "spec.securityGroupSelectorTerms[0]",
            ),
            (
                set("/spec/securityGroupSelectorTerms", json!([{}])),
                "spec.securityGroupSelectorTerms[0]",
            ),
            (
                set(
                    "/spec/amiSelectorTerms",
                    json!([{"alias": "al2023@latest"}, {"id": "ami-1"}]),
                ),
                "spec.amiSelectorTerms",
            ),
            (
                set(
                    "/spec/amiSelectorTerms",
                    json!([{"alias": "centos@latest"}]),
                ),
                "spec.amiSelectorTerms[0].alias",
            ),
            (
                set("/spec/amiSelectorTerms", json!([{"id": "ami-1"}])),
                "spec.amiFamily",
            ),
            (set("/spec/amiFamily", json!("Gentoo")), "spec.amiFamily"),
            (set("/spec/instanceProfile", json!("profile")), "spec"),
            (set("/spec/role", json!(null)), "spec.role"),
            (
                set("/spec/tags", json!({"kubernetes.io/cluster/demo": "owned"})),
                "spec.tags[kubernetes.io/cluster/demo]",
            ),
            (
                set("/spec/tags", json!({"karpenter.sh/nodepool": "x"})),
                "spec.tags[karpenter.sh/nodepool]",
            ),
            (
                set(
                    "/spec/kubelet",
                    json!({"imageGCHighThresholdPercent": 50, "imageGCLowThresholdPercent": 60}),
                ),
                "spec.kubelet.imageGCHighThresholdPercent",
            ),
            (
                set(
                    "/spec/kubelet",
                    json!({"evictionSoft": {"memory.available": "5%"}}),
                ),
                "spec.kubelet.evictionSoftGracePeriod[memory.available]",
            ),
            (
                set(
                    "/spec/kubelet",
                    json!({"evictionSoftGracePeriod": {"memory.available": "1m"}}),
                ),
                "spec.kubelet.evictionSoftGracePeriod[memory.available]",
            ),
            (
                set(
                    "/spec/kubelet",
                    json!({"evictionHard": {"memory.free": "1Gi"}}),
                ),
                "spec.kubelet.evictionHard[memory.free]",
            ),
            (
                set(
                    "/spec/kubelet",
                    json!({"evictionHard": {"memory.available": "150%"}}),
                ),
                "spec.kubelet.evictionHard[memory.available]",
            ),
            (
                set("/spec/kubelet", json!({"kubeReserved": {"cpu": "lots"}})),
                "spec.kubelet.kubeReserved[cpu]",
            ),
            (
                set("/spec/kubelet", json!({"kubeReserved": {"gpu": "1"}})),
                "spec.kubelet.kubeReserved[gpu]",
            ),
            (
                set(
                    "/spec/blockDeviceMappings",
                    json!([{"ebs": {"volumeSize": "1Mi"}}]),
                ),
                "spec.blockDeviceMappings[0].ebs.volumeSize",
            ),
            (
                set(
                    "/spec/blockDeviceMappings",
                    json!([{"ebs": {"encrypted": true}}]),
                ),
                "spec.blockDeviceMappings[0].ebs",
            ),
            (
                set(
                    "/spec/blockDeviceMappings",
                    json!([{"rootVolume": true, "ebs": {"volumeSize": "20Gi"}}, {"rootVolume": true, "ebs": {"volumeSize": "20Gi"}}]),
                ),
                "spec.blockDeviceMappings",
            ),
            (
                set(
                    "/spec/metadataOptions",
                    json!({"httpPutResponseHopLimit": 0}),
                ),
                "spec.metadataOptions.httpPutResponseHopLimit",
            ),
            (
                set("/spec/metadataOptions", json!({"httpTokens": "sometimes"})),
                "spec.metadataOptions.httpTokens",
            ),
            (
                set("/spec/kubelet", json!({"maxPods": "many"})),
                "spec.kubelet.maxPods",
            ),
        ];
        for (obj, path) in cases {
            let v = validate_ec2nodeclass(&obj, None);
            assert!(
                v.errors.iter().any(|e| e.path == path),
                "want {path}, got {:?}",
                v.errors
            );
            assert!(v.message().contains(path));
        }
    }

    #[test]
    fn role_is_immutable_and_cannot_replace_an_instance_profile() {
        let v = validate_ec2nodeclass(&set("/spec/role", json!("Other")), Some(&class()));
        assert!(
            v.errors.iter().any(|e| e.path == "spec.role"),
            "{:?}",
            v.errors
        );
        let old = set("/spec/role", json!(null));
        let old = {
            let mut o = old;
            o["spec"]["instanceProfile"] = json!("p");
            o
        };
        let v = validate_ec2nodeclass(&class(), Some(&old));
        assert!(
            v.errors.iter().any(|e| e.path == "spec.role"),
            "{:?}",
            v.errors
        );
    }

    #[test]
    fn metadata_defaults_fill_only_missing_fields() {
        let c = set("/spec/metadataOptions", json!({"httpTokens": "optional"}));
        let d = default_ec2nodeclass(&c);
        assert_eq!(
            d["spec"]["metadataOptions"],
            json!({"httpTokens": "optional", "httpEndpoint": "enabled", "httpProtocolIPv6": "disabled", "httpPutResponseHopLimit": 1})
        );
        assert!(validate_ec2nodeclass(&d, None).is_allowed());
    }
}
