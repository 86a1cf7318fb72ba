//! Topology bookkeeping for spread constraints and pod (anti-)affinity: how many pods a selector
//! matches per node / claim and per zone. Counters are kept per distinct (namespaces, selector)
//! so that a check costs a map look-up, not a scan of every placed pod.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::pod::{AffinityTerm, PodInfo, Selector, Spread};
use crate::apis::labels::{HOSTNAME, ZONE};

/// Where a pod was placed: an existing node or a new claim, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    Node(usize),
    Claim(usize),
}

/// A value per slot, in two vectors indexed by node and claim number: the scheduler asks about
/// slots millions of times, and an index beats hashing.
#[derive(Debug, Clone)]
struct SlotMap<T> {
    nodes: Vec<T>,
    claims: Vec<T>,
}

impl<T: Clone + Default> Default for SlotMap<T> {
    fn default() -> Self {
        SlotMap {
            nodes: Vec::new(),
            claims: Vec::new(),
        }
    }
}

impl<T: Clone + Default> SlotMap<T> {
    fn get(&self, slot: Slot) -> Option<&T> {
        match slot {
            Slot::Node(i) => self.nodes.get(i),
            Slot::Claim(i) => self.claims.get(i),
        }
    }

    fn get_mut(&mut self, slot: Slot) -> &mut T {
        let (v, i) = match slot {
            Slot::Node(i) => (&mut self.nodes, i),
            Slot::Claim(i) => (&mut self.claims, i),
        };
        if v.len() <= i {
            v.resize(i + 1, T::default());
        }
        &mut v[i]
    }
}

impl SlotMap<i64> {
    fn count(&self, slot: Slot) -> i64 {
        self.get(slot).copied().unwrap_or(0)
    }
}

/// Counts of the pods one selector (in some namespaces) matches.
#[derive(Debug, Clone)]
struct Counter {
    namespaces: BTreeSet<String>,
    selector: Selector,
    per_slot: SlotMap<i64>,
    per_zone: HashMap<String, i64>,
    total: i64,
}

/// Where pods carrying one anti-affinity term sit (for the reverse check).
#[derive(Debug, Clone)]
struct AntiOwner {
    term: AffinityTerm,
    slots: SlotMap<i64>,
    zones: HashMap<String, i64>,
}

#[derive(Debug, Default, Clone)]
pub struct Topology {
    counters: Vec<Counter>,
    counter_ids: HashMap<String, usize>,
    anti_owners: Vec<AntiOwner>,
    anti_owner_ids: HashMap<String, usize>,
    slot_zone: SlotMap<Option<String>>,
    /// (counter, threshold) → no claim below this index has fewer than `threshold` matches.
    claim_cursors: HashMap<(usize, i64), usize>,
    /// Every zone a pod could land in, for spread minimums.
    pub zones: BTreeSet<String>,
}

fn key(namespaces: &BTreeSet<String>, selector: &Selector) -> String {
    format!("{namespaces:?}{selector:?}")
}

/// Which domain a term is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    Host,
    Zone,
    Other,
}

impl Domain {
    fn of(topology_key: &str) -> Self {
        match topology_key {
            HOSTNAME => Domain::Host,
            ZONE => Domain::Zone,
            _ => Domain::Other,
        }
    }
}

/// One pod's topology questions with their counters looked up once, so that trying the pod
/// against thousands of slots costs a few map look-ups each (see [`Topology::probe`]).
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Hostname spreads: counter and maxSkew.
    host_spreads: Vec<(Option<usize>, i64)>,
    /// The pod's own anti-affinity terms.
    anti: Vec<(Domain, Option<usize>)>,
    /// Anti-affinity owners whose term selects this pod.
    reverse: Vec<usize>,
    /// Hostname affinity: counter, and whether a slot without a match is refused.
    host_affinity: Vec<(Option<usize>, bool)>,
}

/// Why a slot is refused; shown in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    HostSpread { max_skew: i64, count: i64 },
    AntiAffinity(&'static str),
    ReverseAntiAffinity(&'static str),
    HostAffinity,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::HostSpread { max_skew, count } => write!(
                f,
                "topology spread on {HOSTNAME} (maxSkew {max_skew}): {count} matching pods already here"
            ),
            Blocked::AntiAffinity(k) => {
                write!(
                    f,
                    "pod anti-affinity on {k}: a matching pod is already there"
                )
            }
            Blocked::ReverseAntiAffinity(k) => {
                write!(f, "a pod there has anti-affinity on {k} against this pod")
            }
            Blocked::HostAffinity => write!(f, "pod affinity on {HOSTNAME}: no matching pod here"),
        }
    }
}

impl Topology {
    pub fn new(zones: BTreeSet<String>) -> Self {
        Topology {
            zones,
            ..Default::default()
        }
    }

    fn register(&mut self, namespaces: BTreeSet<String>, selector: &Selector) {
        let k = key(&namespaces, selector);
        if self.counter_ids.contains_key(&k) {
            return;
        }
        self.counter_ids.insert(k, self.counters.len());
        self.counters.push(Counter {
            namespaces,
            selector: selector.clone(),
            per_slot: SlotMap::default(),
            per_zone: HashMap::new(),
            total: 0,
        });
    }

    /// Declares the selectors `pod` will ask about. Call for every pending pod before recording
    /// any placement, so counts include pods placed earlier.
    pub fn register_pod(&mut self, pod: &PodInfo) {
        for s in &pod.spreads {
            self.register(BTreeSet::from([pod.namespace.clone()]), &s.selector);
        }
        for t in pod
            .affinity
            .iter()
            .chain(&pod.anti_affinity)
            .chain(&pod.preferred_anti_affinity)
        {
            self.register(t.namespaces.clone(), &t.selector);
        }
    }

    pub fn record(&mut self, pod: &PodInfo, slot: Slot, zone: Option<&str>) {
        if let Some(z) = zone {
            self.slot_zone
                .get_mut(slot)
                .get_or_insert_with(|| z.to_string());
        }
        let zone = self.zone_of(slot).map(str::to_string);
        for c in &mut self.counters {
            if c.namespaces.contains(&pod.namespace) && c.selector.matches(&pod.labels) {
                *c.per_slot.get_mut(slot) += 1;
                if let Some(z) = &zone {
                    *c.per_zone.entry(z.clone()).or_default() += 1;
                }
                c.total += 1;
            }
        }
        for term in &pod.anti_affinity {
            let k = format!(
                "{}{}",
                term.topology_key,
                key(&term.namespaces, &term.selector)
            );
            let id = match self.anti_owner_ids.get(&k) {
                Some(id) => *id,
                None => {
                    self.anti_owner_ids.insert(k, self.anti_owners.len());
                    self.anti_owners.push(AntiOwner {
                        term: term.clone(),
                        slots: SlotMap::default(),
                        zones: HashMap::new(),
                    });
                    self.anti_owners.len() - 1
                }
            };
            let owner = &mut self.anti_owners[id];
            *owner.slots.get_mut(slot) += 1;
            if let Some(z) = &zone {
                *owner.zones.entry(z.clone()).or_default() += 1;
            }
        }
    }

    /// A claim's zone became known: the pods placed there count in that zone from now on.
    pub fn set_zone(&mut self, slot: Slot, zone: &str) {
        let known = self.slot_zone.get_mut(slot);
        if known.is_some() {
            return;
        }
        *known = Some(zone.to_string());
        for c in &mut self.counters {
            if let Some(n) = c.per_slot.get(slot).copied() {
                *c.per_zone.entry(zone.to_string()).or_default() += n;
            }
        }
        for o in &mut self.anti_owners {
            if let Some(n) = o.slots.get(slot).copied() {
                *o.zones.entry(zone.to_string()).or_default() += n;
            }
        }
    }

    pub fn zone_of(&self, slot: Slot) -> Option<&str> {
        self.slot_zone.get(slot).and_then(Option::as_deref)
    }

    fn counter_id(&self, namespaces: &BTreeSet<String>, selector: &Selector) -> Option<usize> {
        self.counter_ids.get(&key(namespaces, selector)).copied()
    }

    fn counter(&self, namespaces: &BTreeSet<String>, selector: &Selector) -> Option<&Counter> {
        self.counter_id(namespaces, selector)
            .map(|id| &self.counters[id])
    }

    /// Matching pods per zone (every known zone present, zero where none).
    pub fn zone_counts(&self, pod: &PodInfo, spread: &Spread) -> BTreeMap<String, i64> {
        let mut counts: BTreeMap<String, i64> = self.zones.iter().map(|z| (z.clone(), 0)).collect();
        if let Some(c) = self.counter(&BTreeSet::from([pod.namespace.clone()]), &spread.selector) {
            for (z, n) in &c.per_zone {
                counts.insert(z.clone(), *n);
            }
        }
        counts
    }

    fn count_in(&self, id: Option<usize>, slot: Slot) -> i64 {
        id.map_or(0, |id| self.counters[id].per_slot.count(slot))
    }

    /// Looks up, once, the counters `pod` will be checked against with `anti` and `spreads`.
    pub fn probe(&self, pod: &PodInfo, anti: &[AffinityTerm], spreads: &[Spread]) -> Probe {
        let own_ns = BTreeSet::from([pod.namespace.clone()]);
        Probe {
            host_spreads: spreads
                .iter()
                .filter(|s| s.topology_key == HOSTNAME)
                .map(|s| (self.counter_id(&own_ns, &s.selector), s.max_skew))
                .collect(),
            anti: anti
                .iter()
                .map(|t| {
                    (
                        Domain::of(&t.topology_key),
                        self.counter_id(&t.namespaces, &t.selector),
                    )
                })
                .collect(),
            reverse: (0..self.anti_owners.len())
                .filter(|&i| {
                    Domain::of(&self.anti_owners[i].term.topology_key) != Domain::Other
                        && self.anti_owners[i]
                            .term
                            .selects(&pod.namespace, &pod.labels)
                })
                .collect(),
            host_affinity: pod
                .affinity
                .iter()
                .filter(|t| t.topology_key == HOSTNAME)
                .map(|t| {
                    let id = self.counter_id(&t.namespaces, &t.selector);
                    let total = id.map_or(0, |id| self.counters[id].total);
                    // The first pod of a group that selects itself may go anywhere.
                    (id, total > 0 || !t.selects(&pod.namespace, &pod.labels))
                })
                .collect(),
        }
    }

    /// Claims below the returned index are all refused to the probed pod by a hostname spread or
    /// hostname anti-affinity, so a scan may start there. Counts only grow, so each cursor only
    /// moves forward: over a whole run this costs one pass over the claims per selector.
    pub fn first_possible_claim(&mut self, probe: &Probe, claims: usize) -> usize {
        let limits = probe
            .host_spreads
            .iter()
            .map(|&(id, skew)| (id, skew))
            .chain(
                probe
                    .anti
                    .iter()
                    .filter(|(d, _)| *d == Domain::Host)
                    .map(|&(_, id)| (id, 1)),
            );
        let mut start = 0;
        for (id, threshold) in limits {
            let Some(id) = id else { continue };
            let cursor = self.claim_cursors.entry((id, threshold)).or_insert(0);
            let per_slot = &self.counters[id].per_slot;
            while *cursor < claims && per_slot.count(Slot::Claim(*cursor)) >= threshold {
                *cursor += 1;
            }
            start = start.max(*cursor);
        }
        start
    }

    /// Why the probed pod may not go to `slot`: hostname spread, anti-affinity (both directions,
    /// hostname and, where the slot's zone is known, zone) and hostname affinity.
    pub fn blocks(&self, probe: &Probe, slot: Slot) -> Option<Blocked> {
        for &(id, max_skew) in &probe.host_spreads {
            let count = self.count_in(id, slot);
            // A new, empty node is always possible, so the global minimum is 0.
            if count + 1 > max_skew {
                return Some(Blocked::HostSpread { max_skew, count });
            }
        }
        // The slot's zone matters only to zone terms; most probes have none.
        let zone = || self.zone_of(slot);
        for &(domain, id) in &probe.anti {
            let conflict = match domain {
                Domain::Host => self.count_in(id, slot) > 0,
                Domain::Zone => zone().is_some_and(|z| {
                    id.is_some_and(|id| self.counters[id].per_zone.get(z).copied().unwrap_or(0) > 0)
                }),
                Domain::Other => false,
            };
            if conflict {
                return Some(Blocked::AntiAffinity(domain_name(domain)));
            }
        }
        for &i in &probe.reverse {
            let owner = &self.anti_owners[i];
            let domain = Domain::of(&owner.term.topology_key);
            let here = match domain {
                Domain::Host => owner.slots.count(slot) > 0,
                Domain::Zone => {
                    zone().is_some_and(|z| owner.zones.get(z).copied().unwrap_or(0) > 0)
                }
                Domain::Other => false,
            };
            if here {
                return Some(Blocked::ReverseAntiAffinity(domain_name(domain)));
            }
        }
        for &(id, refuse_when_absent) in &probe.host_affinity {
            if refuse_when_absent && self.count_in(id, slot) == 0 {
                return Some(Blocked::HostAffinity);
            }
        }
        None
    }

    /// Zones `pod` must stay in because of zone affinity (None: no constraint).
    pub fn affinity_zones(&self, pod: &PodInfo) -> Result<Option<BTreeSet<String>>, String> {
        let mut allowed: Option<BTreeSet<String>> = None;
        for term in pod.affinity.iter().filter(|t| t.topology_key == ZONE) {
            let zones: BTreeSet<String> = self
                .counter(&term.namespaces, &term.selector)
                .map(|c| {
                    c.per_zone
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(z, _)| z.clone())
                        .collect()
                })
                .unwrap_or_default();
            if zones.is_empty() {
                let total = self
                    .counter(&term.namespaces, &term.selector)
                    .map_or(0, |c| c.total);
                if total == 0 && term.selects(&pod.namespace, &pod.labels) {
                    continue;
                }
                return Err(format!(
                    "pod affinity on {ZONE}: no matching pod is placed in a known zone"
                ));
            }
            allowed = Some(match allowed {
                Some(a) => a.intersection(&zones).cloned().collect(),
                None => zones,
            });
        }
        Ok(allowed)
    }

    /// Zones `pod` must avoid because of zone anti-affinity, in either direction.
    pub fn anti_affinity_zones(&self, pod: &PodInfo, anti: &[AffinityTerm]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for term in anti.iter().filter(|t| t.topology_key == ZONE) {
            if let Some(c) = self.counter(&term.namespaces, &term.selector) {
                out.extend(
                    c.per_zone
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(z, _)| z.clone()),
                );
            }
        }
        for owner in self
            .anti_owners
            .iter()
            .filter(|o| o.term.topology_key == ZONE)
        {
            if owner.term.selects(&pod.namespace, &pod.labels) {
                out.extend(
                    owner
                        .zones
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(z, _)| z.clone()),
                );
            }
        }
        out
    }
}

fn domain_name(d: Domain) -> &'static str {
    match d {
        Domain::Host => HOSTNAME,
        Domain::Zone => ZONE,
        Domain::Other => "another topology key",
    }
}
