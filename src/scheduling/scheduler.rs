//! The scheduling simulation: pending pods onto existing nodes, then onto NodeClaims being planned,
//! then onto new NodeClaims from NodePools by weight, within limits, at the lowest cost.
//!
//! Karpenter's approach, kept: pods in decreasing size; each new claim keeps every instance type
//! that still fits all its pods (so a launch can fall back on capacity errors), and the cheapest
//! one is chosen when the claim is final. Preferences (preferred node affinity, preferred
//! anti-affinity, `ScheduleAnyway` spreads) are treated as required first and relaxed one by one
//! when a pod fits nowhere.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::apis::Taint;
use crate::apis::labels::{self, ZONE};

use super::instance::{InstanceOption, OfferingOption};
use super::lower_bound::{Candidate, Share, lp_lower_bound};
use super::pod::{AffinityTerm, PodInfo, PodKey, Spread, WhenUnsatisfiable};
use super::requirements::{Requirement, Requirements};
use super::resources::Resources;
use super::taints::{describe, first_untolerated};
use super::topology::{Probe, Slot, Topology};

/// Karpenter keeps at most this many instance types on a NodeClaim.
pub const MAX_INSTANCE_TYPES: usize = 60;

/// A claim may grow onto a larger instance type only if that type hosts the claim's pods at most
/// this much less efficiently than its current type hosts them (see [`efficient_growth`]): a claim
/// stops at the largest size that is still efficient (a c6a.48xlarge) instead of jumping to a
/// 12 TB u7i because it has more vCPUs. Of 1.05 to 1.25, 1.15 and 1.2 gave the cheapest plans of
/// the bench's generic mix on Karpenter's default pool at 1,000 to 20,000 pods.
const GROWTH_COST_LIMIT: f64 = 1.15;

/// A NodePool as the simulation needs it.
#[derive(Debug, Clone)]
pub struct PoolTemplate {
    pub name: String,
    pub weight: i32,
    /// The pool's requirements with its template labels added as `In [value]`.
    pub requirements: Requirements,
    pub taints: Vec<Taint>,
    pub instance_types: Vec<Arc<InstanceOption>>,
    /// `spec.limits`: only the resources named here are limited.
    pub limits: Option<Limits>,
    /// Capacity of the nodes and NodeClaims the pool already has.
    pub in_use: Resources,
}

/// A NodePool's `spec.limits`, in the units of [`Resources::get`] (CPU in millicores, bytes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits(pub BTreeMap<String, i64>);

impl Limits {
    pub fn from_resources(named: impl IntoIterator<Item = String>, values: &Resources) -> Self {
        Limits(
            named
                .into_iter()
                .map(|k| {
                    let v = values.get(&k);
                    (k, v)
                })
                .collect(),
        )
    }

    /// The limited resources `used + extra` would exceed, with Karpenter's message for each.
    pub fn exceeded(&self, pool: &str, used: &Resources, extra: &Resources) -> Vec<String> {
        let total = used + extra;
        self.0
            .iter()
            .filter(|(name, limit)| total.get(name) > **limit)
            .map(|(name, limit)| {
                let mut l = Resources::new();
                l.set_raw(name, *limit);
                format!(
                    "nodepool {pool}: {name} resource usage of {} exceeds limit of {}",
                    total.display_one(name),
                    l.display_one(name)
                )
            })
            .collect()
    }
}

/// A node (or an in-flight NodeClaim) that exists already.
#[derive(Debug, Clone)]
pub struct ExistingNode {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// Allocatable minus what the pods on it request.
    pub available: Resources,
    /// Pods bound to it (for topology and host ports).
    pub pods: Vec<PodInfo>,
}

#[derive(Debug, Clone, Default)]
pub struct Input {
    pub pods: Vec<PodInfo>,
    /// One template pod per DaemonSet: their requests are added to every new node they would land on.
    pub daemonsets: Vec<PodInfo>,
    pub existing: Vec<ExistingNode>,
    pub pools: Vec<PoolTemplate>,
}

/// An instance type a planned claim may launch, with its cheapest allowed offering.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceChoice {
    pub name: String,
    pub zone: String,
    pub capacity_type: String,
    pub price_per_hour: f64,
}

/// A pool's instance types compatible with some requirements, with their maxima (computed once
/// for every claim that opens with those requirements).
struct Compatible {
    types: Vec<Arc<InstanceOption>>,
    max_allocatable: Resources,
    max_capacity: Resources,
}

/// A NodeClaim the simulation would create.
#[derive(Debug, Clone)]
pub struct PlannedClaim {
    pub nodepool: String,
    pub requirements: Requirements,
    pub pods: Vec<PodKey>,
    /// Pod requests plus daemonset overhead.
    pub requests: Resources,
    /// The pods' requests alone.
    pub pod_requests: Resources,
    /// Every instance type that fits, cheapest first (at most [`MAX_INSTANCE_TYPES`]).
    pub instance_types: Vec<InstanceChoice>,
}

impl PlannedClaim {
    /// The claim's requirements as text, to group claims that launch from the same constraints.
    pub fn requirements_key(&self) -> String {
        requirements_text(&self.requirements)
    }

    /// The launch the claim would get: its cheapest instance type and offering.
    pub fn cheapest(&self) -> &InstanceChoice {
        &self.instance_types[0]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unschedulable {
    pub pod: PodKey,
    /// Why, per NodePool (and `existing nodes` where relevant).
    pub reasons: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// (pod, node) for pods that fit on existing nodes.
    pub existing: Vec<(PodKey, String)>,
    pub claims: Vec<PlannedClaim>,
    pub unschedulable: Vec<Unschedulable>,
    /// NodePool limit breaches, in Karpenter's words.
    pub limit_messages: Vec<String>,
}

fn requirements_text(reqs: &Requirements) -> String {
    reqs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Labels a new node gets from its instance type and the provider: a pod may require them even if
/// the NodePool does not mention them.
fn well_known(key: &str) -> bool {
    labels::WELL_KNOWN_AWS.contains(&key)
        || labels::WELL_KNOWN_KUBERNETES.contains(&key)
        || labels::WELL_KNOWN_KARPENTER.contains(&key)
}

struct Claim {
    pool: usize,
    reqs: Requirements,
    options: Vec<Arc<InstanceOption>>,
    requests: Resources,
    pods: Vec<usize>,
    host_ports: BTreeSet<(String, i32)>,
    /// Per resource, the most any option has left: a pod that does not fit here fits no option.
    headroom: Resources,
    /// Per resource, the most any option has: `headroom` plus `requests`.
    max_allocatable: Resources,
    /// The largest capacity among the options, counted against the pool's limits.
    reserved: Resources,
}

fn max_allocatable(options: &[Arc<InstanceOption>]) -> Resources {
    let mut max = Resources::new();
    for o in options {
        max.max_assign(&o.allocatable);
    }
    max
}

/// Maxima of allocatable and capacity, as a claim keeps them for its options.
struct Maxima<'a> {
    allocatable: &'a Resources,
    capacity: &'a Resources,
    /// Extended resources named in either, in a fixed order.
    extended: Vec<&'a String>,
}

impl<'a> Maxima<'a> {
    fn new(allocatable: &'a Resources, capacity: &'a Resources) -> Self {
        let extended = allocatable
            .extended
            .keys()
            .chain(capacity.extended.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Maxima {
            allocatable,
            capacity,
            extended,
        }
    }

    /// Whether the maxima fit a 64-bit set (30 extended resources would not).
    fn trackable(&self) -> bool {
        2 * (4 + self.extended.len()) <= 64
    }

    /// The maxima `o` reaches, as bits; a zero maximum is never reached (it stays zero whatever
    /// is removed).
    fn reached_by(&self, o: &InstanceOption) -> u64 {
        let reaches = |have: i64, max: i64| max > 0 && have >= max;
        let mut bits = 0u64;
        let mut set = |bit: usize, on: bool| {
            if on {
                bits |= 1 << bit;
            }
        };
        let pairs = [
            (&o.allocatable, self.allocatable),
            (&o.capacity, self.capacity),
        ];
        for (k, (have, max)) in pairs.into_iter().enumerate() {
            let base = k * (4 + self.extended.len());
            set(base, reaches(have.cpu_millis, max.cpu_millis));
            set(base + 1, reaches(have.memory_bytes, max.memory_bytes));
            set(
                base + 2,
                reaches(have.ephemeral_storage_bytes, max.ephemeral_storage_bytes),
            );
            set(base + 3, reaches(have.pods, max.pods));
            for (e, name) in self.extended.iter().enumerate() {
                set(base + 4 + e, reaches(have.get(name), max.get(name)));
            }
        }
        bits
    }

    /// Whether some type of `options` reaches each of the `wanted` maxima. Checked from the end:
    /// options are cheapest first, so the largest types, which hold the maxima, come last.
    fn held(&self, options: &[Arc<InstanceOption>], mut wanted: u64) -> bool {
        for o in options.iter().rev() {
            if wanted == 0 {
                break;
            }
            wanted &= !self.reached_by(o);
        }
        wanted == 0
    }

    /// Every non-zero maximum, as bits.
    fn all(&self) -> u64 {
        let nonzero = |r: &Resources| {
            let mut v = vec![
                r.cpu_millis,
                r.memory_bytes,
                r.ephemeral_storage_bytes,
                r.pods,
            ];
            v.extend(self.extended.iter().map(|n| r.get(n)));
            v
        };
        nonzero(self.allocatable)
            .into_iter()
            .chain(nonzero(self.capacity))
            .enumerate()
            .filter(|(_, v)| *v > 0)
            .fold(0, |bits, (i, _)| bits | 1 << i)
    }
}

/// Whether removing the types of `before` that are not in `kept` (an ordered subsequence of it)
/// lowers one of the claim's maxima, so that they must be counted again. Many types tie on a
/// maximum (110 pods, the branch ENIs of a family), so a maximum a removed type held is usually
/// still held by a kept one.
fn removed_holds_a_maximum(
    before: &[Arc<InstanceOption>],
    kept: &[Arc<InstanceOption>],
    claim: &Claim,
) -> bool {
    let maxima = Maxima::new(&claim.max_allocatable, &claim.reserved);
    if !maxima.trackable() {
        return before.len() != kept.len();
    }
    let mut lost = 0u64;
    let mut rest = kept.iter().peekable();
    for o in before {
        if rest.peek().is_some_and(|k| Arc::ptr_eq(k, o)) {
            rest.next();
        } else {
            lost |= maxima.reached_by(o);
        }
    }
    !maxima.held(kept, lost)
}

fn max_capacity(options: &[Arc<InstanceOption>]) -> Resources {
    let mut max = Resources::new();
    for o in options {
        max.max_assign(&o.capacity);
    }
    max
}

/// What hosting `requests` on instance type `o` costs if they could share it with copies of
/// themselves: its price times the largest fraction of any resource they take.
fn shared_cost(o: &InstanceOption, price: f64, requests: &Resources) -> f64 {
    let frac = |want: i64, have: i64| {
        if want <= 0 {
            0.0
        } else if have <= 0 {
            f64::INFINITY
        } else {
            want as f64 / have as f64
        }
    };
    let a = &o.allocatable;
    let share = frac(requests.cpu_millis, a.cpu_millis)
        .max(frac(requests.memory_bytes, a.memory_bytes))
        .max(frac(requests.pods, a.pods));
    price * share
}

/// Whether a claim whose options were `before` (cheapest first) for requests `old` may take
/// requests that leave `after`: yes unless its cheapest type changes to one that hosts them less
/// efficiently, by more than [`GROWTH_COST_LIMIT`], than the current type hosts `old`. Efficiency
/// is the cost on a type against the best cost on any type of `before` ([`shared_cost`]): small
/// types carry more reserved memory per vCPU, so a small claim is often a little inefficient, and
/// that must not stop it growing into the large type where it packs well.
fn efficient_growth(
    before: &[Arc<InstanceOption>],
    after: &[Arc<InstanceOption>],
    prices: &HashMap<*const InstanceOption, f64>,
    old: &Resources,
    requests: &Resources,
) -> bool {
    // Prices under the pool's requirements (a claim's zone narrowing rarely changes them, and
    // this is a heuristic): looked up, since finding offerings for every type is the hot spot.
    let price = |o: &Arc<InstanceOption>| {
        prices
            .get(&Arc::as_ptr(o))
            .copied()
            .unwrap_or(f64::INFINITY)
    };
    let (Some(current), Some(new)) = (before.first(), after.first()) else {
        return false;
    };
    if Arc::ptr_eq(current, new) {
        return true;
    }
    // The best cost of the old and of the new requests, in one pass (one price lookup a type).
    let (best_old, best_new) = before
        .iter()
        .fold((f64::INFINITY, f64::INFINITY), |(a, b), o| {
            let p = price(o);
            (
                a.min(shared_cost(o, p, old)),
                b.min(shared_cost(o, p, requests)),
            )
        });
    let now = shared_cost(current, price(current), old) / best_old;
    let then = shared_cost(new, price(new), requests) / best_new;
    // A claim with no requests yet (zero cost) is perfectly efficient.
    then <= GROWTH_COST_LIMIT * if now.is_finite() { now.max(1.0) } else { 1.0 }
}

/// The constraints of one attempt at placing a pod, after some relaxation.
#[derive(Clone)]
struct Attempt {
    reqs: Requirements,
    anti: Vec<AffinityTerm>,
    spreads: Vec<Spread>,
}

/// Each attempt, strictest first: all preferences, then dropping preferred node affinity terms
/// (lightest first), preferred anti-affinity, `ScheduleAnyway` spreads; per required term.
fn attempts(pod: &PodInfo) -> Vec<Attempt> {
    let mut out = Vec::new();
    for term in &pod.required_terms {
        let mut base = pod.node_selector.clone();
        base.add_all(term);
        let hard_spreads: Vec<Spread> = pod
            .spreads
            .iter()
            .filter(|s| s.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule)
            .cloned()
            .collect();
        let all_anti: Vec<AffinityTerm> = pod
            .anti_affinity
            .iter()
            .chain(&pod.preferred_anti_affinity)
            .cloned()
            .collect();
        for kept in (0..=pod.preferred_terms.len()).rev() {
            let mut reqs = base.clone();
            for (_, p) in &pod.preferred_terms[..kept] {
                reqs.add_all(p);
            }
            out.push(Attempt {
                reqs,
                anti: all_anti.clone(),
                spreads: pod.spreads.clone(),
            });
        }
        out.push(Attempt {
            reqs: base.clone(),
            anti: pod.anti_affinity.clone(),
            spreads: pod.spreads.clone(),
        });
        out.push(Attempt {
            reqs: base,
            anti: pod.anti_affinity.clone(),
            spreads: hard_spreads,
        });
    }
    out.dedup_by(|a, b| a.reqs == b.reqs && a.anti == b.anti && a.spreads == b.spreads);
    out
}

struct Scheduler<'a> {
    input: &'a Input,
    /// Per pool, its instance types cheapest first (under the pool's requirements).
    pool_types: Vec<Vec<Arc<InstanceOption>>>,
    /// Per pool, each type's cheapest price under the pool's requirements (by `Arc` address).
    pool_prices: Vec<HashMap<*const InstanceOption, f64>>,
    /// (pool, claim requirements as text) → the pool's types compatible with them.
    compatible_memo: HashMap<(usize, String), Compatible>,
    topology: Topology,
    nodes_available: Vec<Resources>,
    /// The component-wise smallest request of the pods to place: a node that can't hold it can't
    /// hold any of them.
    smallest_request: Resources,
    /// Every existing node before this one is full (first fit fills from the front, so skipping
    /// the full prefix keeps a large cluster's scan short).
    first_open: usize,
    node_ports: Vec<BTreeSet<(String, i32)>>,
    claims: Vec<Claim>,
    daemon_overhead: Vec<Resources>,
    pool_order: Vec<usize>,
    /// Per pool: capacity reserved by the claims planned so far.
    reserved: Vec<Resources>,
    limit_messages: BTreeSet<String>,
    /// At most this many new claims (consolidation asks for one); None: as many as needed.
    max_new_claims: Option<usize>,
    /// A pod needed a claim beyond `max_new_claims`: the rest need not be tried.
    exhausted: bool,
}

/// The component-wise minimum of the pods' requests (extended resources left out: a pod asking
/// for one only asks for more).
fn smallest_request(pods: &[PodInfo]) -> Resources {
    let mut it = pods.iter();
    let Some(first) = it.next() else {
        return Resources::new();
    };
    let mut min = Resources {
        extended: Default::default(),
        ..first.requests.clone()
    };
    for p in it {
        let r = &p.requests;
        min.cpu_millis = min.cpu_millis.min(r.cpu_millis);
        min.memory_bytes = min.memory_bytes.min(r.memory_bytes);
        min.ephemeral_storage_bytes = min.ephemeral_storage_bytes.min(r.ephemeral_storage_bytes);
        min.pods = min.pods.min(r.pods);
    }
    min
}

impl<'a> Scheduler<'a> {
    fn new(input: &'a Input) -> Self {
        let mut zones: BTreeSet<String> = input
            .pools
            .iter()
            .flat_map(|p| p.instance_types.iter())
            .flat_map(|o| o.offerings.iter().map(|of| of.zone.clone()))
            .collect();
        zones.extend(
            input
                .existing
                .iter()
                .filter_map(|n| n.labels.get(ZONE).cloned()),
        );
        let mut topology = Topology::new(zones);
        for p in input
            .pods
            .iter()
            .chain(input.existing.iter().flat_map(|n| &n.pods))
        {
            topology.register_pod(p);
        }
        for (i, n) in input.existing.iter().enumerate() {
            for p in &n.pods {
                topology.record(p, Slot::Node(i), n.labels.get(ZONE).map(String::as_str));
            }
        }
        let daemon_overhead = input
            .pools
            .iter()
            .map(|pool| {
                input
                    .daemonsets
                    .iter()
                    .filter(|ds| first_untolerated(&ds.tolerations, &pool.taints).is_none())
                    .filter(|ds| {
                        let mut r = ds.node_selector.clone();
                        r.add_all(&ds.required_terms[0]);
                        pool.requirements.compatible(&r, &well_known).is_ok()
                    })
                    .fold(Resources::new(), |acc, ds| &acc + &ds.requests)
            })
            .collect();
        let mut pool_order: Vec<usize> = (0..input.pools.len()).collect();
        pool_order.sort_by(|a, b| {
            let (pa, pb) = (&input.pools[*a], &input.pools[*b]);
            pb.weight
                .cmp(&pa.weight)
                .then_with(|| pa.name.cmp(&pb.name))
        });
        let pool_types = input
            .pools
            .iter()
            .map(|pool| {
                let mut types = pool.instance_types.clone();
                types.sort_by(|a, b| {
                    let price = |o: &InstanceOption| {
                        o.cheapest_offering(&pool.requirements)
                            .map_or(f64::INFINITY, |of| of.price_per_hour)
                    };
                    price(a)
                        .total_cmp(&price(b))
                        .then_with(|| a.name.cmp(&b.name))
                });
                types
            })
            .collect();
        let pool_prices = input
            .pools
            .iter()
            .zip(&pool_types)
            .map(
                |(pool, types): (&PoolTemplate, &Vec<Arc<InstanceOption>>)| {
                    types
                        .iter()
                        .filter_map(|o| {
                            o.cheapest_offering(&pool.requirements)
                                .map(|of| (Arc::as_ptr(o), of.price_per_hour))
                        })
                        .collect()
                },
            )
            .collect();
        Scheduler {
            input,
            pool_types,
            pool_prices,
            compatible_memo: HashMap::new(),
            topology,
            nodes_available: input.existing.iter().map(|n| n.available.clone()).collect(),
            smallest_request: smallest_request(&input.pods),
            first_open: 0,
            node_ports: input
                .existing
                .iter()
                .map(|n| n.pods.iter().flat_map(|p| p.host_ports.clone()).collect())
                .collect(),
            claims: Vec::new(),
            daemon_overhead,
            pool_order,
            reserved: vec![Resources::new(); input.pools.len()],
            limit_messages: BTreeSet::new(),
            max_new_claims: None,
            exhausted: false,
        }
    }

    /// Narrows `attempt` by zone rules (spread minimum, zone affinity, zone anti-affinity); true
    /// when the pod has such rules, so that where it lands must have a known zone.
    fn zone_rules(&self, pod: &PodInfo, attempt: &Attempt) -> Result<(Requirements, bool), String> {
        let mut reqs = attempt.reqs.clone();
        let mut allowed: BTreeSet<String> = self
            .topology
            .zones
            .iter()
            .filter(|z| reqs.get(ZONE).is_none_or(|r| r.has(z)))
            .cloned()
            .collect();
        let avoid = self.topology.anti_affinity_zones(pod, &attempt.anti);
        allowed.retain(|z| !avoid.contains(z));
        if let Some(zs) = self.topology.affinity_zones(pod)? {
            allowed.retain(|z| zs.contains(z));
        }
        for s in attempt.spreads.iter().filter(|s| s.topology_key == ZONE) {
            let counts = self.topology.zone_counts(pod, s);
            let min = allowed
                .iter()
                .map(|z| counts.get(z).copied().unwrap_or(0))
                .min()
                .unwrap_or(0);
            // Karpenter places the pod in the least-populated allowed zone.
            if let Some(z) = allowed
                .iter()
                .filter(|z| counts.get(*z).copied().unwrap_or(0) == min)
                .min()
                .cloned()
            {
                allowed = BTreeSet::from([z]);
            }
        }
        let constrained = !avoid.is_empty()
            || pod.affinity.iter().any(|t| t.topology_key == ZONE)
            || attempt.anti.iter().any(|t| t.topology_key == ZONE)
            || attempt.spreads.iter().any(|s| s.topology_key == ZONE);
        if constrained {
            if allowed.is_empty() {
                return Err(
                    "no zone satisfies the pod's zone affinity, anti-affinity and spread".into(),
                );
            }
            let zones: Vec<String> = allowed.into_iter().collect();
            reqs.add(Requirement::new(ZONE, "In", &zones).map_err(|e| e.to_string())?);
        }
        Ok((reqs, constrained))
    }

    fn try_existing(&self, pod: &PodInfo, probe: &Probe, reqs: &Requirements) -> Option<usize> {
        (self.first_open..self.input.existing.len()).find(|&i| {
            let node = &self.input.existing[i];
            // Cheapest test first: most nodes of a packed cluster fail on room.
            pod.requests.fits(&self.nodes_available[i])
                && first_untolerated(&pod.tolerations, &node.taints).is_none()
                && reqs.matches_labels(&node.labels).is_ok()
                && !pod
                    .host_ports
                    .iter()
                    .any(|hp| self.node_ports[i].contains(hp))
                && self.topology.blocks(probe, Slot::Node(i)).is_none()
        })
    }

    /// Options of `options` that satisfy `reqs` and hold `requests`, if they keep every `minValues`.
    fn narrow(
        options: &[Arc<InstanceOption>],
        reqs: &Requirements,
        requests: &Resources,
    ) -> Result<Vec<Arc<InstanceOption>>, String> {
        let kept: Vec<Arc<InstanceOption>> = options
            .iter()
            .filter(|o| requests.fits(&o.allocatable) && o.compatible(reqs))
            .cloned()
            .collect();
        if kept.is_empty() {
            return Err("no instance type fits".into());
        }
        Self::check_min_values(&kept, reqs)?;
        Ok(kept)
    }

    /// Whether `kept` still offers every requirement's `minValues` distinct values.
    fn check_min_values(kept: &[Arc<InstanceOption>], reqs: &Requirements) -> Result<(), String> {
        for r in reqs.iter() {
            if let Some(min) = r.min_values {
                let distinct: BTreeSet<String> = kept
                    .iter()
                    .flat_map(|o| o.values_for(&r.key, reqs))
                    .collect();
                if distinct.len() < min {
                    return Err(format!(
                        "minValues requirement is not met for {} ({} of {min} values remain)",
                        r.key,
                        distinct.len()
                    ));
                }
            }
        }
        Ok(())
    }

    fn try_claims(&mut self, pod: &PodInfo, probe: &Probe, reqs: &Requirements) -> Option<usize> {
        let start = self.topology.first_possible_claim(probe, self.claims.len());
        for j in start..self.claims.len() {
            let claim = &self.claims[j];
            let pool = &self.input.pools[claim.pool];
            if !pod.requests.fits(&claim.headroom)
                || pod
                    .host_ports
                    .iter()
                    .any(|hp| claim.host_ports.contains(hp))
                || first_untolerated(&pod.tolerations, &pool.taints).is_some()
                || claim.reqs.compatible(reqs, &well_known).is_err()
                || self.topology.blocks(probe, Slot::Claim(j)).is_some()
            {
                continue;
            }
            let requests = &claim.requests + &pod.requests;
            // Most pods add no requirement the claim lacks: then only room can drop options.
            let narrowed = if claim.reqs.implies(reqs) {
                if claim.options.iter().all(|o| requests.fits(&o.allocatable)) {
                    None
                } else {
                    let kept: Vec<Arc<InstanceOption>> = claim
                        .options
                        .iter()
                        .filter(|o| requests.fits(&o.allocatable))
                        .cloned()
                        .collect();
                    if Self::check_min_values(&kept, &claim.reqs).is_err() {
                        continue;
                    }
                    let prices = &self.pool_prices[claim.pool];
                    if !efficient_growth(&claim.options, &kept, prices, &claim.requests, &requests)
                    {
                        self.cap(j);
                        continue;
                    }
                    Some((None, kept))
                }
            } else {
                let mut new_reqs = claim.reqs.clone();
                new_reqs.add_all(reqs);
                match Self::narrow(&claim.options, &new_reqs, &requests) {
                    Ok(options)
                        if efficient_growth(
                            &claim.options,
                            &options,
                            &self.pool_prices[claim.pool],
                            &claim.requests,
                            &requests,
                        ) =>
                    {
                        Some((Some(new_reqs), options))
                    }
                    // Inefficient because of this pod's own requirements: others may still fit.
                    _ => continue,
                }
            };
            let claim = &mut self.claims[j];
            if let Some((new_reqs, options)) = narrowed {
                // Usually only small types drop out and the maxima stay: skip the recount then.
                if removed_holds_a_maximum(&claim.options, &options, claim) {
                    claim.max_allocatable = max_allocatable(&options);
                    let reserved = max_capacity(&options);
                    self.reserved[claim.pool] =
                        &(&self.reserved[claim.pool] - &claim.reserved) + &reserved;
                    claim.reserved = reserved;
                }
                claim.options = options;
                // None: the pod added no requirement (no need to clone the claim's).
                if let Some(r) = new_reqs {
                    claim.reqs = r;
                }
            }
            claim.headroom = &claim.max_allocatable - &requests;
            claim.requests = requests;
            claim.host_ports.extend(pod.host_ports.iter().cloned());
            return Some(j);
        }
        None
    }

    /// Opens a claim on the first pool (by weight) that can take the pod; else the reason per pool.
    fn try_new_claim(
        &mut self,
        pod: &PodInfo,
        reqs: &Requirements,
    ) -> Result<usize, BTreeMap<String, String>> {
        if let Some(max) = self.max_new_claims
            && self.claims.len() >= max
        {
            self.exhausted = true;
            return Err(BTreeMap::from([(
                "(all)".to_string(),
                too_many_claims(max),
            )]));
        }
        let mut reasons = BTreeMap::new();
        for &p in &self.pool_order {
            let pool = &self.input.pools[p];
            if let Some(t) = first_untolerated(&pod.tolerations, &pool.taints) {
                reasons.insert(
                    pool.name.clone(),
                    format!("did not tolerate {}", describe(t)),
                );
                continue;
            }
            if let Err(e) = pool.requirements.compatible(reqs, &well_known) {
                reasons.insert(pool.name.clone(), format!("incompatible requirements, {e}"));
                continue;
            }
            let mut claim_reqs = pool.requirements.clone();
            claim_reqs.add_all(reqs);
            let requests = &self.daemon_overhead[p] + &pod.requests;
            // Many claims open with the same requirements (each pod of a hostname anti-affinity
            // group, say): check the pool's types against them once.
            let memo_key = (p, requirements_text(&claim_reqs));
            let memo = self.compatible_memo.entry(memo_key).or_insert_with(|| {
                let types: Vec<Arc<InstanceOption>> = self.pool_types[p]
                    .iter()
                    .filter(|o| o.compatible(&claim_reqs))
                    .cloned()
                    .collect();
                Compatible {
                    max_allocatable: max_allocatable(&types),
                    max_capacity: max_capacity(&types),
                    types,
                }
            });
            let compatible = memo.types.clone();
            let all_maxima = (memo.max_allocatable.clone(), memo.max_capacity.clone());
            let all = compatible.len();
            let fitting: Vec<Arc<InstanceOption>> = compatible
                .into_iter()
                .filter(|o| requests.fits(&o.allocatable))
                .collect();
            if fitting.is_empty() {
                reasons.insert(
                    pool.name.clone(),
                    format!("no instance type has enough resources for requests {} (daemonset overhead included)", requests),
                );
                continue;
            }
            let within: Vec<Arc<InstanceOption>> = match &pool.limits {
                Some(limits) => {
                    let used = &pool.in_use + &self.reserved[p];
                    let ok: Vec<Arc<InstanceOption>> = fitting
                        .iter()
                        .filter(|o| limits.exceeded(&pool.name, &used, &o.capacity).is_empty())
                        .cloned()
                        .collect();
                    if ok.is_empty()
                        && let Some(smallest) = fitting.iter().min_by_key(|o| o.capacity.cpu_millis)
                    {
                        self.limit_messages.extend(limits.exceeded(
                            &pool.name,
                            &used,
                            &smallest.capacity,
                        ));
                    }
                    ok
                }
                None => fitting,
            };
            if within.is_empty() {
                reasons.insert(
                    pool.name.clone(),
                    format!(
                        "all available instance types exceed limits for nodepool: \"{}\"",
                        pool.name
                    ),
                );
                continue;
            }
            // `within` holds only compatible types that fit: what is left to check is minValues.
            if let Err(e) = Self::check_min_values(&within, &claim_reqs) {
                reasons.insert(pool.name.clone(), e);
                continue;
            }
            let options = within;
            // Usually the largest compatible types fit the first pod: the memo has their maxima.
            let (max_allocatable, reserved) = if options.len() == all || {
                let m = Maxima::new(&all_maxima.0, &all_maxima.1);
                m.trackable() && m.held(&options, m.all())
            } {
                all_maxima
            } else {
                (max_allocatable(&options), max_capacity(&options))
            };
            self.reserved[p] = &self.reserved[p] + &reserved;
            self.claims.push(Claim {
                pool: p,
                headroom: &max_allocatable - &requests,
                max_allocatable,
                reqs: claim_reqs,
                options,
                requests,
                pods: Vec::new(),
                host_ports: pod.host_ports.iter().cloned().collect(),
                reserved,
            });
            return Ok(self.claims.len() - 1);
        }
        if self.input.pools.is_empty() {
            reasons.insert("(none)".into(), "no NodePool exists".into());
        }
        Err(reasons)
    }

    /// Stops claim `j` growing past its cheapest type: growing was found inefficient once, and
    /// asking again for every later pod would cost a scan of its options each time.
    fn cap(&mut self, j: usize) {
        let claim = &mut self.claims[j];
        if let Some(first) = claim.options.first() {
            claim.max_allocatable = first.allocatable.clone();
            claim.headroom = &claim.max_allocatable - &claim.requests;
        }
    }

    /// Settles claim `j` in the zone of its cheapest offering, so that pods with zone rules that
    /// follow see where this one went (a zone-affinity group lands together).
    fn pin_zone(&mut self, j: usize) {
        let claim = &self.claims[j];
        if claim
            .reqs
            .get(ZONE)
            .and_then(|r| r.values())
            .is_some_and(|v| v.len() == 1)
        {
            return;
        }
        let Some(zone) = claim
            .options
            .iter()
            .filter_map(|o| o.cheapest_offering(&claim.reqs))
            .min_by(|a, b| a.price_per_hour.total_cmp(&b.price_per_hour))
            .map(|of| of.zone.clone())
        else {
            return;
        };
        let mut reqs = claim.reqs.clone();
        reqs.add(Requirement::single(ZONE, &zone));
        let Ok(options) = Self::narrow(&claim.options, &reqs, &claim.requests) else {
            return;
        };
        let claim = &mut self.claims[j];
        // The zone usually keeps the largest types, and with them the maxima.
        let kept = {
            let m = Maxima::new(&claim.max_allocatable, &claim.reserved);
            m.trackable() && m.held(&options, m.all())
        };
        if !kept {
            claim.max_allocatable = max_allocatable(&options);
            claim.headroom = &claim.max_allocatable - &claim.requests;
            let reserved = max_capacity(&options);
            self.reserved[claim.pool] = &(&self.reserved[claim.pool] - &claim.reserved) + &reserved;
            claim.reserved = reserved;
        }
        claim.options = options;
        claim.reqs = reqs;
    }

    fn place(&mut self, i: usize, outcome: &mut Outcome) {
        let pod = &self.input.pods[i];
        let mut last_reasons = BTreeMap::new();
        for attempt in attempts(pod) {
            let (reqs, zonal) = match self.zone_rules(pod, &attempt) {
                Ok(r) => r,
                Err(e) => {
                    last_reasons = BTreeMap::from([("(all)".to_string(), e)]);
                    continue;
                }
            };
            let probe = self.topology.probe(pod, &attempt.anti, &attempt.spreads);
            if let Some(n) = self.try_existing(pod, &probe, &reqs) {
                self.nodes_available[n] = &self.nodes_available[n] - &pod.requests;
                while self.first_open < self.nodes_available.len()
                    && !self
                        .smallest_request
                        .fits(&self.nodes_available[self.first_open])
                {
                    self.first_open += 1;
                }
                self.node_ports[n].extend(pod.host_ports.iter().cloned());
                let zone = self.input.existing[n].labels.get(ZONE).cloned();
                self.topology.record(pod, Slot::Node(n), zone.as_deref());
                outcome
                    .existing
                    .push((pod.key.clone(), self.input.existing[n].name.clone()));
                return;
            }
            let placed = match self.try_claims(pod, &probe, &reqs) {
                Some(j) => Ok(j),
                None => self.try_new_claim(pod, &reqs),
            };
            match placed {
                Ok(j) => {
                    if zonal {
                        self.pin_zone(j);
                    }
                    self.claims[j].pods.push(i);
                    self.topology.record(pod, Slot::Claim(j), None);
                    if let Some(z) = self.claims[j]
                        .reqs
                        .get(ZONE)
                        .and_then(|r| r.values())
                        .filter(|v| v.len() == 1)
                    {
                        let zone = z.iter().next().cloned().unwrap_or_default();
                        self.topology.set_zone(Slot::Claim(j), &zone);
                    }
                    return;
                }
                Err(reasons) => last_reasons = reasons,
            }
        }
        outcome.unschedulable.push(Unschedulable {
            pod: pod.key.clone(),
            reasons: last_reasons,
        });
    }

    fn finish(self, mut outcome: Outcome) -> Outcome {
        for claim in self.claims {
            // Options are in order of their price under the pool's requirements, a lower bound
            // of their price under the claim's: once that bound passes the most expensive of the
            // first MAX_INSTANCE_TYPES found, nothing later can make the cut.
            let prices = &self.pool_prices[claim.pool];
            let mut ranked: Vec<(&InstanceOption, &OfferingOption)> = Vec::new();
            let mut cut = f64::INFINITY;
            for o in &claim.options {
                let lower = prices
                    .get(&Arc::as_ptr(o))
                    .copied()
                    .unwrap_or(f64::INFINITY);
                if lower > cut {
                    break;
                }
                if let Some(of) = o.cheapest_offering(&claim.reqs) {
                    ranked.push((o.as_ref(), of));
                    if ranked.len() == MAX_INSTANCE_TYPES {
                        cut = ranked
                            .iter()
                            .map(|(_, of)| of.price_per_hour)
                            .fold(f64::NEG_INFINITY, f64::max);
                    }
                }
            }
            ranked.sort_by(|a, b| {
                a.1.price_per_hour
                    .total_cmp(&b.1.price_per_hour)
                    .then_with(|| a.0.name.cmp(&b.0.name))
            });
            let choices: Vec<InstanceChoice> = ranked
                .into_iter()
                .take(MAX_INSTANCE_TYPES)
                .map(|(o, of)| InstanceChoice {
                    name: o.name.clone(),
                    zone: of.zone.clone(),
                    capacity_type: of.capacity_type.clone(),
                    price_per_hour: of.price_per_hour,
                })
                .collect();
            if choices.is_empty() {
                continue;
            }
            outcome.claims.push(PlannedClaim {
                nodepool: self.input.pools[claim.pool].name.clone(),
                requirements: claim.reqs,
                pods: claim
                    .pods
                    .iter()
                    .map(|&i| self.input.pods[i].key.clone())
                    .collect(),
                pod_requests: claim.pods.iter().fold(Resources::new(), |acc, &i| {
                    &acc + &self.input.pods[i].requests
                }),
                requests: claim.requests,
                instance_types: choices,
            });
        }
        outcome.limit_messages = self.limit_messages.into_iter().collect();
        outcome
    }
}

/// The order pods are placed in: largest first (CPU, then memory), as Karpenter does, since big
/// pods shape the nodes; but CPU-heavy and memory-heavy pods interleaved so that every prefix asks
/// for CPU and memory in about the ratio of the whole. Claims fill in the order pods come, so each
/// then gets a mix that a balanced instance type packs tightly; in plain decreasing order the first
/// claims took all the CPU-heavy pods and the memory-heavy ones were left for half-empty
/// memory-optimised nodes (15% over the LP bound on the bench mix).
fn placement_order(input: &Input, s: &Scheduler, interleave: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..input.pods.len())
        .filter(|&i| !input.pods[i].owned_by_daemonset)
        .collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (&input.pods[a], &input.pods[b]);
        pb.requests
            .cpu_millis
            .cmp(&pa.requests.cpu_millis)
            .then(pb.requests.memory_bytes.cmp(&pa.requests.memory_bytes))
            .then_with(|| pa.key.cmp(&pb.key))
    });
    let (cpu_total, mem_total) = order.iter().fold((0i128, 0i128), |(c, m), &i| {
        let r = &input.pods[i].requests;
        (c + i128::from(r.cpu_millis), m + i128::from(r.memory_bytes))
    });
    if !interleave || cpu_total == 0 || mem_total == 0 {
        return order;
    }
    let (cpu_total, mem_total) = target_ratio(s, cpu_total, mem_total);
    // Memory per CPU above the target: mem * cpu_total > cpu * mem_total (exact integers).
    let memory_heavy = |i: usize| {
        let r = &input.pods[i].requests;
        i128::from(r.memory_bytes) * cpu_total > i128::from(r.cpu_millis) * mem_total
    };
    let (mem_heavy, cpu_heavy): (Vec<usize>, Vec<usize>) =
        order.iter().partition(|&&i| memory_heavy(i));
    let (mut m, mut c) = (
        mem_heavy.into_iter().peekable(),
        cpu_heavy.into_iter().peekable(),
    );
    let (mut cpu, mut mem) = (0i128, 0i128);
    let mut merged = Vec::with_capacity(order.len());
    loop {
        // Take from the memory-heavy side while the prefix is short of memory for its CPU.
        let want_memory = mem * cpu_total <= cpu * mem_total;
        let next = match (want_memory, m.peek(), c.peek()) {
            (_, None, None) => break,
            (true, Some(_), _) | (false, Some(_), None) => m.next(),
            _ => c.next(),
        };
        let Some(i) = next else { break };
        let r = &input.pods[i].requests;
        cpu += i128::from(r.cpu_millis);
        mem += i128::from(r.memory_bytes);
        merged.push(i);
    }
    merged
}

/// The memory-to-CPU ratio (as a CPU, memory pair) to mix pods in: that of the instance type the
/// LP lower bound spends most on, for the whole demand on the first NodePool by weight (at its
/// requirements' prices); the demand's own ratio when there is no such type.
fn target_ratio(s: &Scheduler, cpu_total: i128, mem_total: i128) -> (i128, i128) {
    let Some(&p) = s.pool_order.first() else {
        return (cpu_total, mem_total);
    };
    // The pool's types at the prices the simulation already looked up.
    let pool = &s.input.pools[p];
    let candidates: Vec<Candidate> = s.pool_types[p]
        .iter()
        .filter(|o| o.compatible(&pool.requirements))
        .filter_map(|o| {
            let price = s.pool_prices[p].get(&Arc::as_ptr(o))?;
            Some(Candidate {
                name: o.name.clone(),
                price_per_hour: *price,
                cpu_millis: o.allocatable.cpu_millis,
                memory_bytes: o.allocatable.memory_bytes,
            })
        })
        .collect();
    let demand = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    let Some(lb) = lp_lower_bound(&candidates, demand(cpu_total), demand(mem_total)) else {
        return (cpu_total, mem_total);
    };
    let spent = |share: &Share| {
        candidates
            .iter()
            .find(|c| c.name == share.name)
            .map(|c| (c, share.count * c.price_per_hour))
    };
    lb.mix
        .iter()
        .filter_map(spent)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or((cpu_total, mem_total), |(c, _)| {
            (i128::from(c.cpu_millis), i128::from(c.memory_bytes))
        })
}

/// Runs the simulation. Pure: the same input always gives the same outcome.
pub fn schedule(input: &Input) -> Outcome {
    schedule_limited(input, None)
}

fn too_many_claims(max: usize) -> String {
    format!("more than {max} new node(s) would be needed")
}

/// [`schedule`] that gives up once a pod would need more than `max_new_claims` new claims: the
/// pods not placed by then are unschedulable. For callers that only accept a plan within the
/// limit (consolidation: at most one replacement), this skips most of a plan that is refused.
pub fn schedule_limited(input: &Input, max_new_claims: Option<usize>) -> Outcome {
    let mut s = Scheduler::new(input);
    // Callers with a claim limit (consolidation: many small simulations, at most one new claim)
    // gain nothing from the mix and would pay for its LP each time: plain largest first.
    let order = placement_order(input, &s, max_new_claims.is_none());
    s.max_new_claims = max_new_claims;
    let split = max_new_claims.is_none();
    let mut outcome = Outcome::default();
    for (k, &i) in order.iter().enumerate() {
        s.place(i, &mut outcome);
        if s.exhausted {
            let why = too_many_claims(max_new_claims.unwrap_or_default());
            outcome
                .unschedulable
                .extend(order[k + 1..].iter().map(|&j| Unschedulable {
                    pod: input.pods[j].key.clone(),
                    reasons: BTreeMap::from([("(all)".to_string(), why.clone())]),
                }));
            break;
        }
    }
    let outcome = s.finish(outcome);
    if split {
        split_loose_claims(input, outcome)
    } else {
        outcome
    }
}

/// A planned claim costing more than this times the LP lower bound of its own requests is worth
/// trying as several smaller claims.
const SPLIT_ABOVE: f64 = 1.02;

/// Whether a pod takes part in any inter-pod rule (spread, affinity, anti-affinity): moving such
/// pods between nodes could break a rule decided against the plan as it was.
fn has_pod_rules(p: &PodInfo) -> bool {
    !p.spreads.is_empty()
        || !p.affinity.is_empty()
        || !p.anti_affinity.is_empty()
        || !p.preferred_anti_affinity.is_empty()
}

/// Claims grow one pod at a time, so the last claim of a group often ends on a type it half
/// fills (100 bench pods: one c6a.24xlarge where a c6a.16xlarge and a c6a.4xlarge cost 17% less).
/// Each such claim's pods are planned again on types cheaper than its own, and the parts kept if
/// they cost less. Only where no pod has inter-pod rules, and for pools without limits (the
/// parts' capacity is counted against nothing): the parts then satisfy all the pods' own
/// constraints, by the same simulation.
fn split_loose_claims(input: &Input, mut outcome: Outcome) -> Outcome {
    let existing_pods = input.existing.iter().flat_map(|n| &n.pods);
    if input.pods.iter().chain(existing_pods).any(has_pod_rules) {
        return outcome;
    }
    let by_key: HashMap<&PodKey, &PodInfo> = input.pods.iter().map(|p| (&p.key, p)).collect();
    let mut candidates: HashMap<(String, String), Vec<Candidate>> = HashMap::new();
    let claims = std::mem::take(&mut outcome.claims);
    for claim in claims {
        let Some(pool) = input.pools.iter().find(|p| p.name == claim.nodepool) else {
            outcome.claims.push(claim);
            continue;
        };
        let types = candidates
            .entry((claim.nodepool.clone(), claim.requirements_key()))
            .or_insert_with(|| Candidate::all_for(&pool.instance_types, &claim.requirements));
        let bound = lp_lower_bound(
            types,
            claim.requests.cpu_millis,
            claim.requests.memory_bytes,
        )
        .map_or(f64::INFINITY, |lb| lb.cost_per_hour);
        if claim.cheapest().price_per_hour <= SPLIT_ABOVE * bound {
            outcome.claims.push(claim);
            continue;
        }
        match split_claim(input, pool, &by_key, &claim) {
            Some(parts) => outcome.claims.extend(parts),
            None => outcome.claims.push(claim),
        }
    }
    outcome
}

fn split_claim(
    input: &Input,
    pool: &PoolTemplate,
    by_key: &HashMap<&PodKey, &PodInfo>,
    claim: &PlannedClaim,
) -> Option<Vec<PlannedClaim>> {
    let chosen = claim.cheapest();
    if pool.limits.is_some() || claim.pods.len() < 2 {
        return None;
    }
    let cheaper: Vec<Arc<InstanceOption>> = pool
        .instance_types
        .iter()
        .filter(|o| {
            o.cheapest_offering(&claim.requirements)
                .is_some_and(|of| of.price_per_hour < chosen.price_per_hour)
        })
        .cloned()
        .collect();
    let pods: Vec<PodInfo> = claim
        .pods
        .iter()
        .map(|k| by_key.get(k).map(|p| (*p).clone()))
        .collect::<Option<_>>()?;
    let sub = Input {
        pods,
        daemonsets: input.daemonsets.clone(),
        existing: Vec::new(),
        pools: vec![PoolTemplate {
            requirements: claim.requirements.clone(),
            instance_types: cheaper,
            limits: None,
            in_use: Resources::new(),
            ..pool.clone()
        }],
    };
    // Recursion ends: every level offers only types cheaper than the claim it splits.
    let parts = schedule(&sub);
    let cost: f64 = parts
        .claims
        .iter()
        .map(|c| c.cheapest().price_per_hour)
        .sum();
    (parts.unschedulable.is_empty() && cost < chosen.price_per_hour).then_some(parts.claims)
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "scheduler_props.rs"]
mod props;
