//! What scheduling needs to know about a pod, read once from its spec: requests (as the API
//! server and kubelet count them), node constraints, tolerations, topology and affinity terms.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, Pod, PodAffinityTerm, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::requirements::{Requirement, RequirementError, Requirements};
use super::resources::{ResourceError, Resources};

/// A pod's identity for results and messages: `namespace/name`.
pub type PodKey = String;

/// A label selector, pre-read: equality labels and expressions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    match_labels: BTreeMap<String, String>,
    expressions: Vec<(String, String, Vec<String>)>,
    /// A selector that was absent (nil) selects nothing; an empty one selects everything.
    nothing: bool,
}

impl Selector {
    pub fn from_label_selector(s: Option<&LabelSelector>) -> Self {
        let Some(s) = s else {
            return Selector {
                nothing: true,
                ..Default::default()
            };
        };
        Selector {
            match_labels: s.match_labels.clone().unwrap_or_default(),
            expressions: s
                .match_expressions
                .iter()
                .flatten()
                .map(|e| {
                    (
                        e.key.clone(),
                        e.operator.clone(),
                        e.values.clone().unwrap_or_default(),
                    )
                })
                .collect(),
            nothing: false,
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.nothing {
            return false;
        }
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|(k, op, values)| {
                let v = labels.get(k);
                match op.as_str() {
                    "In" => v.is_some_and(|v| values.contains(v)),
                    "NotIn" => v.is_none_or(|v| !values.contains(v)),
                    "Exists" => v.is_some(),
                    "DoesNotExist" => v.is_none(),
                    _ => false,
                }
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenUnsatisfiable {
    DoNotSchedule,
    ScheduleAnyway,
}

/// A topology spread constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub topology_key: String,
    pub max_skew: i64,
    pub when_unsatisfiable: WhenUnsatisfiable,
    pub selector: Selector,
}

/// A pod affinity or anti-affinity term: pods matching `selector` in `namespaces` share (or must
/// not share) a `topology_key` domain with this pod.
#[derive(Debug, Clone, PartialEq)]
pub struct AffinityTerm {
    pub topology_key: String,
    pub selector: Selector,
    pub namespaces: BTreeSet<String>,
}

impl AffinityTerm {
    fn from_k8s(term: &PodAffinityTerm, own_namespace: &str) -> Self {
        let namespaces: BTreeSet<String> = match &term.namespaces {
            Some(ns) if !ns.is_empty() => ns.iter().cloned().collect(),
            _ => BTreeSet::from([own_namespace.to_string()]),
        };
        AffinityTerm {
            topology_key: term.topology_key.clone(),
            selector: Selector::from_label_selector(term.label_selector.as_ref()),
            namespaces,
        }
    }

    /// Whether a pod with `labels` in `namespace` is one this term is about.
    pub fn selects(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespaces.contains(namespace) && self.selector.matches(labels)
    }
}

/// The scheduling view of one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub key: PodKey,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub requests: Resources,
    /// `nodeSelector` as requirements.
    pub node_selector: Requirements,
    /// Required node affinity: alternatives (nodeSelectorTerms are ORed); one empty set if none.
    pub required_terms: Vec<Requirements>,
    /// Preferred node affinity, heaviest first; tried as if required, then dropped one by one.
    pub preferred_terms: Vec<(i32, Requirements)>,
    pub tolerations: Vec<Toleration>,
    pub spreads: Vec<Spread>,
    pub affinity: Vec<AffinityTerm>,
    pub anti_affinity: Vec<AffinityTerm>,
    /// Preferred anti-affinity, kept as required until relaxation drops it (as Karpenter does).
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    /// (protocol, port) pairs bound on the host.
    pub host_ports: Vec<(String, i32)>,
    pub owned_by_daemonset: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PodError {
    #[error("pod {pod}: {source}")]
    Requirement {
        pod: String,
        source: RequirementError,
    },
    #[error("pod {pod}: container {container}: {source}")]
    Resource {
        pod: String,
        container: String,
        source: ResourceError,
    },
}

fn container_requests(c: &Container) -> Result<Resources, ResourceError> {
    let Some(res) = &c.resources else {
        return Ok(Resources::new());
    };
    let mut out = match &res.limits {
        // A container with only limits is given requests equal to them by the API server.
        Some(limits) => Resources::from_k8s(limits)?,
        None => Resources::new(),
    };
    if let Some(requests) = &res.requests {
        let req = Resources::from_k8s(requests)?;
        for name in requests.keys() {
            out.set_raw(name, req.get(name));
        }
    }
    Ok(out)
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> Result<Self, PodError> {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let key = format!("{namespace}/{name}");
        let spec = pod.spec.clone().unwrap_or_default();
        let res_err = |c: &Container| {
            let key = key.clone();
            let container = c.name.clone();
            move |source| PodError::Resource {
                pod: key,
                container,
                source,
            }
        };

        // Requests as the scheduler counts them: max(sum of containers + sidecars, each init
        // container + the sidecars started before it), plus overhead.
        let mut containers = Resources::new();
        for c in &spec.containers {
            containers += &container_requests(c).map_err(res_err(c))?;
        }
        let mut sidecars = Resources::new();
        let mut init_peak = Resources::new();
        for c in spec.init_containers.iter().flatten() {
            let r = container_requests(c).map_err(res_err(c))?;
            if c.restart_policy.as_deref() == Some("Always") {
                sidecars += &r;
                init_peak = init_peak.max(&sidecars);
            } else {
                init_peak = init_peak.max(&(&sidecars + &r));
            }
        }
        let mut requests = (&containers + &sidecars).max(&init_peak);
        if let Some(overhead) = &spec.overhead {
            let o = Resources::from_k8s(overhead).map_err(|source| PodError::Resource {
                pod: key.clone(),
                container: "(overhead)".into(),
                source,
            })?;
            requests += &o;
        }
        requests.pods = 1;

        let req_err = |source| PodError::Requirement {
            pod: key.clone(),
            source,
        };
        let node_selector = Requirements::from_labels(spec.node_selector.iter().flatten());
        let node_affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        let mut required_terms = Vec::new();
        if let Some(req) = node_affinity.and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        }) {
            for term in &req.node_selector_terms {
                let mut r = Requirements::from_node_selector(
                    term.match_expressions.as_deref().unwrap_or_default(),
                )
                .map_err(req_err)?;
                for f in term.match_fields.iter().flatten() {
                    // Only metadata.name exists as a field; treat it as the hostname label.
                    if f.key == "metadata.name" {
                        r.add(
                            Requirement::new(
                                crate::apis::labels::HOSTNAME,
                                &f.operator,
                                f.values.as_deref().unwrap_or_default(),
                            )
                            .map_err(req_err)?,
                        );
                    }
                }
                required_terms.push(r);
            }
        }
        if required_terms.is_empty() {
            required_terms.push(Requirements::new());
        }
        let mut preferred_terms = Vec::new();
        for p in node_affinity
            .and_then(|n| {
                n.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
        {
            let r = Requirements::from_node_selector(
                p.preference
                    .match_expressions
                    .as_deref()
                    .unwrap_or_default(),
            )
            .map_err(req_err)?;
            preferred_terms.push((p.weight, r));
        }
        preferred_terms.sort_by_key(|t| std::cmp::Reverse(t.0));

        let spreads = spec
            .topology_spread_constraints
            .iter()
            .flatten()
            .map(|t| Spread {
                topology_key: t.topology_key.clone(),
                max_skew: i64::from(t.max_skew.max(1)),
                when_unsatisfiable: if t.when_unsatisfiable == "ScheduleAnyway" {
                    WhenUnsatisfiable::ScheduleAnyway
                } else {
                    WhenUnsatisfiable::DoNotSchedule
                },
                selector: Selector::from_label_selector(t.label_selector.as_ref()),
            })
            .collect();
        let pod_affinity = spec.affinity.as_ref().and_then(|a| a.pod_affinity.as_ref());
        let pod_anti = spec
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref());
        let terms = |t: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            t.into_iter()
                .flatten()
                .map(|t| AffinityTerm::from_k8s(t, &namespace))
                .collect()
        };
        let affinity = terms(pod_affinity.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let anti_affinity = terms(pod_anti.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_anti_affinity = pod_anti
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|w| AffinityTerm::from_k8s(&w.pod_affinity_term, &namespace))
            .collect();
        let host_ports = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                p.host_port
                    .filter(|hp| *hp > 0)
                    .map(|hp| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), hp))
            })
            .collect();
        let owned_by_daemonset = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "DaemonSet");

        Ok(PodInfo {
            key,
            namespace,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            requests,
            node_selector,
            required_terms,
            preferred_terms,
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            spreads,
            affinity,
            anti_affinity,
            preferred_anti_affinity,
            host_ports,
            owned_by_daemonset,
        })
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
