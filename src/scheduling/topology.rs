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

/// Counts of the pods one selector (in some namespaces) matches.
#[derive(Debug, Clone)]
struct Counter {
    namespaces: BTreeSet<String>,
    selector: Selector,
    per_slot: HashMap<Slot, i64>,
    per_zone: HashMap<String, i64>,
    total: i64,
}

/// Where pods carrying one anti-affinity term sit (for the reverse check).
#[derive(Debug, Clone)]
struct AntiOwner {
    term: AffinityTerm,
    slots: HashMap<Slot, i64>,
    zones: HashMap<String, i64>,
}

#[derive(Debug, Default, Clone)]
pub struct Topology {
    counters: HashMap<String, Counter>,
    anti_owners: HashMap<String, AntiOwner>,
    slot_zone: HashMap<Slot, String>,
    /// Every zone a pod could land in, for spread minimums.
    pub zones: BTreeSet<String>,
}

fn key(namespaces: &BTreeSet<String>, selector: &Selector) -> String {
    format!("{namespaces:?}{selector:?}")
}

impl Topology {
    pub fn new(zones: BTreeSet<String>) -> Self {
        Topology {
            zones,
            ..Default::default()
        }
    }

    fn register(&mut self, namespaces: BTreeSet<String>, selector: &Selector) {
        self.counters
            .entry(key(&namespaces, selector))
            .or_insert_with(|| Counter {
                namespaces,
                selector: selector.clone(),
                per_slot: HashMap::new(),
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
            self.slot_zone.entry(slot).or_insert_with(|| z.to_string());
        }
        let zone = self.slot_zone.get(&slot).cloned();
        for c in self.counters.values_mut() {
            if c.namespaces.contains(&pod.namespace) && c.selector.matches(&pod.labels) {
                *c.per_slot.entry(slot).or_default() += 1;
                if let Some(z) = &zone {
                    *c.per_zone.entry(z.clone()).or_default() += 1;
                }
                c.total += 1;
            }
        }
        for term in &pod.anti_affinity {
            let owner = self
                .anti_owners
                .entry(format!(
                    "{}{}",
                    term.topology_key,
                    key(&term.namespaces, &term.selector)
                ))
                .or_insert_with(|| AntiOwner {
                    term: term.clone(),
                    slots: HashMap::new(),
                    zones: HashMap::new(),
                });
            *owner.slots.entry(slot).or_default() += 1;
            if let Some(z) = &zone {
                *owner.zones.entry(z.clone()).or_default() += 1;
            }
        }
    }

    /// A claim's zone became known: the pods placed there count in that zone from now on.
    pub fn set_zone(&mut self, slot: Slot, zone: &str) {
        if self.slot_zone.contains_key(&slot) {
            return;
        }
        self.slot_zone.insert(slot, zone.to_string());
        for c in self.counters.values_mut() {
            if let Some(n) = c.per_slot.get(&slot).copied() {
                *c.per_zone.entry(zone.to_string()).or_default() += n;
            }
        }
        for o in self.anti_owners.values_mut() {
            if let Some(n) = o.slots.get(&slot).copied() {
                *o.zones.entry(zone.to_string()).or_default() += n;
            }
        }
    }

    pub fn zone_of(&self, slot: Slot) -> Option<&str> {
        self.slot_zone.get(&slot).map(String::as_str)
    }

    fn counter(&self, namespaces: &BTreeSet<String>, selector: &Selector) -> Option<&Counter> {
        self.counters.get(&key(namespaces, selector))
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

    fn count_in(&self, namespaces: &BTreeSet<String>, selector: &Selector, slot: Slot) -> i64 {
        self.counter(namespaces, selector)
            .and_then(|c| c.per_slot.get(&slot).copied())
            .unwrap_or(0)
    }

    /// Why `pod` may not go to `slot`: hostname spread, anti-affinity (both directions, hostname
    /// and, where the slot's zone is known, zone) and hostname affinity.
    pub fn blocks(
        &self,
        pod: &PodInfo,
        slot: Slot,
        anti: &[AffinityTerm],
        spreads: &[Spread],
    ) -> Option<String> {
        let own_ns = BTreeSet::from([pod.namespace.clone()]);
        for s in spreads.iter().filter(|s| s.topology_key == HOSTNAME) {
            let count = self.count_in(&own_ns, &s.selector, slot);
            // A new, empty node is always possible, so the global minimum is 0.
            if count + 1 > s.max_skew {
                return Some(format!(
                    "topology spread on {HOSTNAME} (maxSkew {}): {count} matching pods already here",
                    s.max_skew
                ));
            }
        }
        let zone = self.zone_of(slot);
        for term in anti {
            let conflict = match term.topology_key.as_str() {
                HOSTNAME => self.count_in(&term.namespaces, &term.selector, slot) > 0,
                ZONE => zone.is_some_and(|z| {
                    self.counter(&term.namespaces, &term.selector)
                        .is_some_and(|c| c.per_zone.get(z).copied().unwrap_or(0) > 0)
                }),
                _ => false,
            };
            if conflict {
                return Some(format!(
                    "pod anti-affinity on {}: a matching pod is already there",
                    term.topology_key
                ));
            }
        }
        for owner in self.anti_owners.values() {
            let here = match owner.term.topology_key.as_str() {
                HOSTNAME => owner.slots.get(&slot).copied().unwrap_or(0) > 0,
                ZONE => zone.is_some_and(|z| owner.zones.get(z).copied().unwrap_or(0) > 0),
                _ => false,
            };
            if here && owner.term.selects(&pod.namespace, &pod.labels) {
                return Some(format!(
                    "a pod there has anti-affinity on {} against this pod",
                    owner.term.topology_key
                ));
            }
        }
        for term in pod.affinity.iter().filter(|t| t.topology_key == HOSTNAME) {
            let total = self
                .counter(&term.namespaces, &term.selector)
                .map_or(0, |c| c.total);
            let here = self.count_in(&term.namespaces, &term.selector, slot) > 0;
            // The first pod of a group that selects itself may go anywhere.
            if !here && (total > 0 || !term.selects(&pod.namespace, &pod.labels)) {
                return Some(format!("pod affinity on {HOSTNAME}: no matching pod here"));
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
            .values()
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
