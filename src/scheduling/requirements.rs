//! The requirements algebra: sets of allowed label values per key, as node selector requirements
//! describe them, with intersection and compatibility (Karpenter's `scheduling.Requirements`).
//!
//! A requirement is a set of values: finite (`In`, `DoesNotExist` = the empty set) or the
//! complement of a finite set (`NotIn`, `Exists` = the complement of nothing), optionally cut by
//! integer bounds (`Gt`, `Lt`, and the inclusive `Gte`, `Lte`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::NodeSelectorRequirement;

use crate::apis::NodeSelectorRequirementWithMinValues;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    /// When true the allowed set is everything *but* `values`.
    complement: bool,
    values: BTreeSet<String>,
    /// Exclusive integer bounds: allowed values parse as integers strictly inside them.
    greater_than: Option<i64>,
    less_than: Option<i64>,
    /// The least number of distinct values the set must keep (Karpenter's `minValues`).
    pub min_values: Option<usize>,
}

/// Why a requirement could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequirementError {
    #[error("requirement {key}: unknown operator {operator:?}")]
    UnknownOperator { key: String, operator: String },
    #[error(
        "requirement {key}: operator {operator} needs exactly one integer value, got {values:?}"
    )]
    NotAnInteger {
        key: String,
        operator: String,
        values: Vec<String>,
    },
}

impl Requirement {
    /// The requirement for `key` with `operator` and `values`, as a node selector writes it.
    pub fn new(key: &str, operator: &str, values: &[String]) -> Result<Self, RequirementError> {
        let mut r = Requirement {
            key: key.to_string(),
            complement: true,
            values: BTreeSet::new(),
            greater_than: None,
            less_than: None,
            min_values: None,
        };
        let int = || -> Result<i64, RequirementError> {
            match values {
                [v] => v.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| RequirementError::NotAnInteger {
                key: key.to_string(),
                operator: operator.to_string(),
                values: values.to_vec(),
            })
        };
        match operator {
            "In" => {
                r.complement = false;
                r.values = values.iter().cloned().collect();
            }
            "NotIn" => r.values = values.iter().cloned().collect(),
            "Exists" => {}
            "DoesNotExist" => r.complement = false,
            "Gt" => r.greater_than = Some(int()?),
            "Gte" => r.greater_than = Some(int()?.saturating_sub(1)),
            "Lt" => r.less_than = Some(int()?),
            "Lte" => r.less_than = Some(int()?.saturating_add(1)),
            _ => {
                return Err(RequirementError::UnknownOperator {
                    key: key.to_string(),
                    operator: operator.to_string(),
                });
            }
        }
        Ok(r)
    }

    /// `key In [value]`.
    pub fn single(key: &str, value: &str) -> Self {
        Requirement {
            key: key.to_string(),
            complement: false,
            values: BTreeSet::from([value.to_string()]),
            greater_than: None,
            less_than: None,
            min_values: None,
        }
    }

    /// `key Exists`: any value, but the label must be there.
    pub fn exists(key: &str) -> Self {
        Requirement {
            key: key.to_string(),
            complement: true,
            values: BTreeSet::new(),
            greater_than: None,
            less_than: None,
            min_values: None,
        }
    }

    fn within_bounds(&self, value: &str) -> bool {
        if self.greater_than.is_none() && self.less_than.is_none() {
            return true;
        }
        match value.parse::<i64>() {
            Ok(n) => {
                self.greater_than.is_none_or(|g| n > g) && self.less_than.is_none_or(|l| n < l)
            }
            Err(_) => false,
        }
    }

    /// Whether `value` is allowed.
    pub fn has(&self, value: &str) -> bool {
        self.within_bounds(value) && (self.values.contains(value) != self.complement)
    }

    /// Whether no value at all is allowed (the label must be absent: `DoesNotExist`, or an
    /// intersection that emptied out).
    pub fn is_empty(&self) -> bool {
        if self.complement {
            // Integer bounds that leave no integer, e.g. Gt 5 and Lt 6.
            matches!((self.greater_than, self.less_than), (Some(g), Some(l)) if l.saturating_sub(g) <= 1)
        } else {
            self.values.is_empty()
        }
    }

    /// True for `DoesNotExist`-like requirements: the label must not be present.
    pub fn forbids_label(&self) -> bool {
        !self.complement && self.values.is_empty()
    }

    /// The allowed values when the set is finite.
    pub fn values(&self) -> Option<&BTreeSet<String>> {
        (!self.complement).then_some(&self.values)
    }

    /// How many values are allowed (`usize::MAX` for an infinite set).
    pub fn len(&self) -> usize {
        if self.complement {
            usize::MAX
        } else {
            self.values.len()
        }
    }

    /// The values both allow.
    pub fn intersect(&self, other: &Requirement) -> Requirement {
        let greater_than = max_opt(self.greater_than, other.greater_than);
        let less_than = min_opt(self.less_than, other.less_than);
        let (complement, values) = match (self.complement, other.complement) {
            (false, false) => (
                false,
                self.values.intersection(&other.values).cloned().collect(),
            ),
            (false, true) => (
                false,
                self.values.difference(&other.values).cloned().collect(),
            ),
            (true, false) => (
                false,
                other.values.difference(&self.values).cloned().collect(),
            ),
            (true, true) => (true, self.values.union(&other.values).cloned().collect()),
        };
        let mut r = Requirement {
            key: self.key.clone(),
            complement,
            values,
            greater_than,
            less_than,
            min_values: max_opt(self.min_values, other.min_values),
        };
        if !r.complement {
            // A finite set under bounds keeps only the integers inside them.
            let bounded = r.clone();
            r.values.retain(|v| bounded.within_bounds(v));
            r.greater_than = None;
            r.less_than = None;
        }
        r
    }

    /// How many values both allow (`usize::MAX` when infinitely many), without building the
    /// intersection: the scheduler asks this for every claim a pod is tried against.
    fn overlap(&self, other: &Requirement) -> usize {
        match (self.complement, other.complement) {
            (true, true) => {
                let g = max_opt(self.greater_than, other.greater_than);
                let l = min_opt(self.less_than, other.less_than);
                match (g, l) {
                    (Some(g), Some(l)) if l.saturating_sub(g) <= 1 => 0,
                    _ => usize::MAX,
                }
            }
            (false, _) => self
                .values
                .iter()
                .filter(|v| self.has(v) && other.has(v))
                .count(),
            (true, false) => other
                .values
                .iter()
                .filter(|v| self.has(v) && other.has(v))
                .count(),
        }
    }

    /// The operator that best describes this set (for messages and for writing NodeClaims).
    pub fn operator(&self) -> &'static str {
        match (
            self.complement,
            self.values.is_empty(),
            self.greater_than,
            self.less_than,
        ) {
            (false, false, _, _) => "In",
            (false, true, _, _) => "DoesNotExist",
            (true, _, Some(_), _) => "Gt",
            (true, _, None, Some(_)) => "Lt",
            (true, true, None, None) => "Exists",
            (true, false, None, None) => "NotIn",
        }
    }

    /// Back into node selector requirements (one, or two when both bounds are set).
    pub fn to_node_selector(&self) -> Vec<NodeSelectorRequirementWithMinValues> {
        let min_values = self.min_values.and_then(|m| i32::try_from(m).ok());
        let req = |operator: &str, values: Vec<String>| NodeSelectorRequirementWithMinValues {
            key: self.key.clone(),
            operator: operator.to_string(),
            values: (!values.is_empty()).then_some(values),
            min_values,
        };
        let mut out = Vec::new();
        if !self.complement {
            out.push(req(
                if self.values.is_empty() {
                    "DoesNotExist"
                } else {
                    "In"
                },
                self.values.iter().cloned().collect(),
            ));
            return out;
        }
        if let Some(g) = self.greater_than {
            out.push(req("Gt", vec![g.to_string()]));
        }
        if let Some(l) = self.less_than {
            out.push(req("Lt", vec![l.to_string()]));
        }
        if !self.values.is_empty() {
            out.push(req("NotIn", self.values.iter().cloned().collect()));
        }
        if out.is_empty() {
            out.push(req("Exists", Vec::new()));
        }
        out
    }
}

fn max_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = |v: &BTreeSet<String>| v.iter().cloned().collect::<Vec<_>>().join(", ");
        match self.operator() {
            "In" => write!(f, "{} In [{}]", self.key, vals(&self.values)),
            "NotIn" => write!(f, "{} NotIn [{}]", self.key, vals(&self.values)),
            op @ ("Exists" | "DoesNotExist") => write!(f, "{} {op}", self.key),
            _ => {
                write!(f, "{}", self.key)?;
                if let Some(g) = self.greater_than {
                    write!(f, " Gt {g}")?;
                }
                if let Some(l) = self.less_than {
                    write!(f, " Lt {l}")?;
                }
                if !self.values.is_empty() {
                    write!(f, " NotIn [{}]", vals(&self.values))?;
                }
                Ok(())
            }
        }
    }
}

/// Requirements on several keys; a key absent means "no constraint".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements(BTreeMap<String, Requirement>);

impl Requirements {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a requirement, intersecting with what is there for the same key.
    pub fn add(&mut self, r: Requirement) {
        let merged = match self.0.get(&r.key) {
            Some(existing) => existing.intersect(&r),
            None => r,
        };
        self.0.insert(merged.key.clone(), merged);
    }

    pub fn get(&self, key: &str) -> Option<&Requirement> {
        self.0.get(key)
    }

    pub fn has_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Requirement> {
        self.0.values()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// From node selector terms as NodePools and NodeClaims write them.
    pub fn from_nodepool(
        reqs: &[NodeSelectorRequirementWithMinValues],
    ) -> Result<Self, RequirementError> {
        let mut out = Requirements::new();
        for r in reqs {
            let mut req = Requirement::new(&r.key, &r.operator, r.values())?;
            req.min_values = r.min_values.and_then(|m| usize::try_from(m).ok());
            out.add(req);
        }
        Ok(out)
    }

    /// From a pod's node affinity term or a node selector term.
    pub fn from_node_selector(reqs: &[NodeSelectorRequirement]) -> Result<Self, RequirementError> {
        let mut out = Requirements::new();
        for r in reqs {
            out.add(Requirement::new(
                &r.key,
                &r.operator,
                r.values.as_deref().unwrap_or_default(),
            )?);
        }
        Ok(out)
    }

    /// `key In [value]` for each label (a pod's nodeSelector, a NodePool's template labels).
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        let mut out = Requirements::new();
        for (k, v) in labels {
            out.add(Requirement::single(k, v));
        }
        out
    }

    /// Adds every requirement of `other`.
    pub fn add_all(&mut self, other: &Requirements) {
        for r in other.iter() {
            self.add(r.clone());
        }
    }

    /// [`Self::compatible`] without the messages (and so without allocating).
    fn quickly_compatible(
        &self,
        other: &Requirements,
        allow_undefined: &dyn Fn(&str) -> bool,
    ) -> bool {
        other.iter().all(|theirs| match self.0.get(&theirs.key) {
            None => {
                allow_undefined(&theirs.key)
                    || matches!(theirs.operator(), "NotIn" | "DoesNotExist")
            }
            Some(mine) => {
                let n = mine.overlap(theirs);
                let min = max_opt(mine.min_values, theirs.min_values).unwrap_or(0);
                (n > 0 || (mine.forbids_label() && theirs.forbids_label())) && n >= min
            }
        })
    }

    /// Whether every requirement of `other` already holds for any labels these allow, so that
    /// adding `other` would change nothing.
    pub fn implies(&self, other: &Requirements) -> bool {
        other.iter().all(|theirs| {
            self.0.get(&theirs.key).is_some_and(|mine| {
                mine == theirs
                    || (!mine.complement
                        && theirs.min_values.is_none_or(|m| mine.min_values >= Some(m))
                        && mine.values.iter().all(|v| theirs.has(v)))
            })
        })
    }

    /// The keys whose allowed sets are empty after intersection, with a reason each.
    fn conflicts(&self, other: &Requirements) -> Vec<String> {
        let mut out = Vec::new();
        for (key, mine) in &self.0 {
            let Some(theirs) = other.0.get(key) else {
                continue;
            };
            let both = mine.intersect(theirs);
            // Both forbidding the label is agreement, not a conflict.
            if both.is_empty() && !(mine.forbids_label() && theirs.forbids_label()) {
                out.push(format!("{theirs} conflicts with {mine}"));
            } else if let Some(min) = both.min_values.filter(|m| both.len() < *m) {
                out.push(format!(
                    "{key}: minValues {min} needs {min} values, only {} remain",
                    both.len()
                ));
            }
        }
        out
    }

    /// Whether a pod (or anything else asking, `other`) can be satisfied by these requirements.
    /// Keys in `allow_undefined` (well-known labels the provider will set) may be absent here;
    /// any other key the asker requires with In / Exists must be defined here, since nothing
    /// would put that label on the node.
    pub fn compatible(
        &self,
        other: &Requirements,
        allow_undefined: &dyn Fn(&str) -> bool,
    ) -> Result<(), String> {
        if self.quickly_compatible(other, allow_undefined) {
            return Ok(());
        }
        let mut errors = Vec::new();
        for r in other.iter() {
            if self.has_key(&r.key) || allow_undefined(&r.key) {
                continue;
            }
            let op = r.operator();
            if op != "NotIn" && op != "DoesNotExist" {
                errors.push(format!("label \"{}\" does not have known values", r.key));
            }
        }
        errors.extend(self.conflicts(other));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Whether a node with `labels` satisfies every requirement.
    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> Result<(), String> {
        for r in self.iter() {
            match labels.get(&r.key) {
                Some(v) if r.has(v) => {}
                None if r.forbids_label()
                    || (r.complement
                        && r.greater_than.is_none()
                        && r.less_than.is_none()
                        && !r.values.is_empty()) => {}
                Some(v) => return Err(format!("label {}={v} does not satisfy {r}", r.key)),
                None => return Err(format!("label {} is missing, required {r}", r.key)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "requirements_tests.rs"]
mod tests;
