//! The LP lower bound on cost that `capstan plan` reports next to its plan.
//!
//! For one group of pods that can share instance types, the bound is the optimum of
//! `min Σ pᵢxᵢ  s.t.  Σ cpuᵢxᵢ ≥ C,  Σ memᵢxᵢ ≥ M,  x ≥ 0` (fractional nodes, no bin packing).
//! With two constraints an optimal basic solution uses one type (one constraint tight) or two
//! types (both tight). Per dollar, type i buys the point `(cpuᵢ/pᵢ, memᵢ/pᵢ)`; the optimum lies on
//! the upper-right convex hull of those points, so only single types and pairs of adjacent hull
//! vertices need evaluating: O(n log n) for the sort, O(n) after it.

use std::sync::Arc;

use serde::Serialize;

use super::instance::InstanceOption;
use super::requirements::Requirements;

/// One instance type as the bound sees it: on-demand (or chosen) price and allocatable resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub price_per_hour: f64,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

impl Candidate {
    /// The types of `types` compatible with `reqs`, each at its cheapest offering under them.
    pub fn all_for(types: &[Arc<InstanceOption>], reqs: &Requirements) -> Vec<Candidate> {
        types
            .iter()
            .filter(|o| o.compatible(reqs))
            .filter_map(|o| {
                o.cheapest_offering(reqs).map(|of| Candidate {
                    name: o.name.clone(),
                    price_per_hour: of.price_per_hour,
                    cpu_millis: o.allocatable.cpu_millis,
                    memory_bytes: o.allocatable.memory_bytes,
                })
            })
            .collect()
    }
}

/// A fractional count of one instance type in the optimal mix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    pub name: String,
    pub count: f64,
}

/// The optimum: its cost per hour and the mix (at most two types) that attains it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LowerBound {
    pub cost_per_hour: f64,
    pub mix: Vec<Share>,
}

/// Cheapest fractional mix of `candidates` covering `cpu_millis` and `memory_bytes`.
///
/// Zero (or negative) demand costs 0 with an empty mix. Candidates without both resources > 0,
/// or with a negative or non-finite price, cannot be part of a node and are ignored; `None` when
/// none is left and there is demand.
pub fn lp_lower_bound(
    candidates: &[Candidate],
    cpu_millis: i64,
    memory_bytes: i64,
) -> Option<LowerBound> {
    let (c, m) = (cpu_millis.max(0) as f64, memory_bytes.max(0) as f64);
    if c == 0.0 && m == 0.0 {
        return Some(LowerBound {
            cost_per_hour: 0.0,
            mix: Vec::new(),
        });
    }
    let usable = candidates.iter().filter(|k| {
        k.cpu_millis > 0
            && k.memory_bytes > 0
            && k.price_per_hour.is_finite()
            && k.price_per_hour >= 0.0
    });

    // Nodes of type k needed alone: enough for the scarcer resource.
    let alone = |k: &Candidate| (c / k.cpu_millis as f64).max(m / k.memory_bytes as f64);

    let mut points: Vec<Point> = Vec::new();
    for k in usable {
        if k.price_per_hour == 0.0 {
            // A free type covers any demand at no cost (a point at infinity in per-dollar space).
            return Some(LowerBound {
                cost_per_hour: 0.0,
                mix: vec![Share {
                    name: k.name.clone(),
                    count: alone(k),
                }],
            });
        }
        points.push(Point {
            a: k.cpu_millis as f64 / k.price_per_hour,
            b: k.memory_bytes as f64 / k.price_per_hour,
            k,
        });
    }
    if points.is_empty() {
        return None;
    }

    // Pareto frontier: by CPU per dollar descending, keep points that add memory per dollar.
    // Ties broken by name so the chosen mix does not depend on input order.
    points.sort_by(|x, y| {
        y.a.total_cmp(&x.a)
            .then(y.b.total_cmp(&x.b))
            .then_with(|| x.k.name.cmp(&y.k.name))
    });
    let mut frontier: Vec<Point> = Vec::with_capacity(points.len());
    for p in points {
        if frontier.last().is_none_or(|q| p.b > q.b) {
            frontier.push(p);
        }
    }

    // Concave chain over the frontier (a strictly decreasing, b strictly increasing): drop a
    // middle point when it lies on or below the segment joining its neighbours.
    let mut hull: Vec<Point> = Vec::with_capacity(frontier.len());
    for p in frontier {
        while hull.len() >= 2 {
            let (o, q) = (&hull[hull.len() - 2], &hull[hull.len() - 1]);
            // With a decreasing along the chain, q lies strictly outside (away from the origin)
            // the segment o–p exactly when this cross product is positive.
            let cross = (q.a - o.a) * (p.b - o.b) - (q.b - o.b) * (p.a - o.a);
            if cross <= 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(p);
    }

    let mut best: Option<LowerBound> = None;
    let mut consider = |cost: f64, mix: Vec<Share>| {
        if cost.is_finite() && best.as_ref().is_none_or(|b| cost < b.cost_per_hour) {
            best = Some(LowerBound {
                cost_per_hour: cost,
                mix,
            });
        }
    };
    for p in &hull {
        let n = alone(p.k);
        consider(
            n * p.k.price_per_hour,
            vec![Share {
                name: p.k.name.clone(),
                count: n,
            }],
        );
    }
    for w in hull.windows(2) {
        let (i, j) = (w[0].k, w[1].k);
        let (ci, mi) = (i.cpu_millis as f64, i.memory_bytes as f64);
        let (cj, mj) = (j.cpu_millis as f64, j.memory_bytes as f64);
        // Both constraints tight: Cramer's rule. A negative count means the demand ray misses
        // this edge; a zero count is the single type, already considered.
        let det = ci * mj - cj * mi;
        if det == 0.0 {
            continue;
        }
        let xi = (c * mj - m * cj) / det;
        let xj = (ci * m - mi * c) / det;
        if xi > 0.0 && xj > 0.0 {
            consider(
                xi * i.price_per_hour + xj * j.price_per_hour,
                vec![
                    Share {
                        name: i.name.clone(),
                        count: xi,
                    },
                    Share {
                        name: j.name.clone(),
                        count: xj,
                    },
                ],
            );
        }
    }
    best
}

/// Sum of the per-group bounds; `None` when any group with demand has no usable candidate, since
/// then no plan can place that group and a bound would mislead.
pub fn grouped_lower_bound(groups: &[(Vec<Candidate>, i64, i64)]) -> Option<f64> {
    groups
        .iter()
        .map(|(cands, cpu, mem)| lp_lower_bound(cands, *cpu, *mem).map(|b| b.cost_per_hour))
        .sum()
}

/// A candidate as resources bought per dollar.
struct Point<'a> {
    a: f64,
    b: f64,
    k: &'a Candidate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GI: i64 = 1 << 30;

    fn cand(name: &str, price: f64, cpu: i64, mem_gi: i64) -> Candidate {
        Candidate {
            name: name.into(),
            price_per_hour: price,
            cpu_millis: cpu,
            memory_bytes: mem_gi * GI,
        }
    }

    fn close(x: f64, y: f64) -> bool {
        (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
    }

    /// Every single type and every pair with both constraints tight: the exact LP optimum.
    fn brute(cands: &[Candidate], c: i64, m: i64) -> Option<f64> {
        let (c, m) = (c as f64, m as f64);
        let ok: Vec<&Candidate> = cands
            .iter()
            .filter(|k| k.cpu_millis > 0 && k.memory_bytes > 0)
            .collect();
        let mut best: Option<f64> = None;
        let mut take = |v: f64| best = Some(best.map_or(v, |b: f64| b.min(v)));
        for k in &ok {
            take(k.price_per_hour * (c / k.cpu_millis as f64).max(m / k.memory_bytes as f64));
        }
        for i in &ok {
            for j in &ok {
                let (ci, mi, cj, mj) = (
                    i.cpu_millis as f64,
                    i.memory_bytes as f64,
                    j.cpu_millis as f64,
                    j.memory_bytes as f64,
                );
                let det = ci * mj - cj * mi;
                if det == 0.0 {
                    continue;
                }
                let xi = (c * mj - m * cj) / det;
                let xj = (ci * m - mi * c) / det;
                if xi >= 0.0 && xj >= 0.0 {
                    take(xi * i.price_per_hour + xj * j.price_per_hour);
                }
            }
        }
        best
    }

    #[test]
    fn table() {
        struct Case {
            what: &'static str,
            cands: Vec<Candidate>,
            cpu: i64,
            mem: i64,
            cost: Option<f64>,
            mix: Vec<(&'static str, f64)>,
        }
        let cases = vec![
            Case {
                what: "single type optimal: balanced demand, balanced type is cheapest per unit",
                // m: 2 CPU / 8 Gi at 0.10; c: 4 CPU / 8 Gi at 0.18; r: 2 CPU / 16 Gi at 0.13.
                // Demand 4 CPU / 16 Gi: m alone 2 × 0.10 = 0.20; c alone 2 × 0.18 = 0.36;
                // r alone 2 × 0.13 = 0.26; c+r tight: 2/3 c + 2/3 r = 0.2067; m+c, m+r tight
                // need a zero or negative count of c or r.
                cands: vec![
                    cand("m", 0.10, 2000, 8),
                    cand("c", 0.18, 4000, 8),
                    cand("r", 0.13, 2000, 16),
                ],
                cpu: 4000,
                mem: 16 * GI,
                cost: Some(0.20),
                mix: vec![("m", 2.0)],
            },
            Case {
                what: "CPU-heavy + memory-heavy pair beats any single type",
                // c: 4 CPU / 4 Gi at 0.10; r: 1 CPU / 16 Gi at 0.10. Demand 10 CPU / 40 Gi.
                // Alone: c needs 10 nodes (1.00), r needs 10 nodes (1.00).
                // Tight: 4x + y = 10, 4x + 16y = 40 → y = 2, x = 2 → 0.40.
                cands: vec![cand("c", 0.10, 4000, 4), cand("r", 0.10, 1000, 16)],
                cpu: 10_000,
                mem: 40 * GI,
                cost: Some(0.40),
                mix: vec![("c", 2.0), ("r", 2.0)],
            },
            Case {
                what: "dominated candidates are ignored",
                // d has less of both at a higher price than m; e is m at twice the price.
                cands: vec![
                    cand("d", 0.20, 1000, 4),
                    cand("m", 0.10, 2000, 8),
                    cand("e", 0.20, 2000, 8),
                ],
                cpu: 3000,
                mem: 8 * GI,
                cost: Some(0.15),
                mix: vec![("m", 1.5)],
            },
            Case {
                what: "a hull-interior type is never in the mix",
                // c and r as above; b: 2 CPU / 8 Gi at 0.10 is below the c–r segment
                // (c+r per dollar midpoint = 25 CPU / 100 Gi, b = 20 CPU / 80 Gi).
                cands: vec![
                    cand("c", 0.10, 4000, 4),
                    cand("b", 0.10, 2000, 8),
                    cand("r", 0.10, 1000, 16),
                ],
                cpu: 10_000,
                mem: 40 * GI,
                cost: Some(0.40),
                mix: vec![("c", 2.0), ("r", 2.0)],
            },
            Case {
                what: "CPU-only demand uses the most CPU per dollar",
                cands: vec![cand("c", 0.10, 4000, 4), cand("r", 0.10, 1000, 16)],
                cpu: 8000,
                mem: 0,
                cost: Some(0.20),
                mix: vec![("c", 2.0)],
            },
            Case {
                what: "zero demand costs nothing, even without candidates",
                cands: vec![],
                cpu: 0,
                mem: 0,
                cost: Some(0.0),
                mix: vec![],
            },
            Case {
                what: "no usable candidate",
                cands: vec![cand("x", 0.10, 0, 4), cand("y", f64::NAN, 1000, 4)],
                cpu: 1000,
                mem: 0,
                cost: None,
                mix: vec![],
            },
        ];
        for case in cases {
            let got = lp_lower_bound(&case.cands, case.cpu, case.mem);
            match (case.cost, &got) {
                (None, None) => {}
                (Some(want), Some(b)) => {
                    assert!(
                        close(b.cost_per_hour, want),
                        "{}: cost {} != {want}",
                        case.what,
                        b.cost_per_hour
                    );
                    let mix: Vec<(&str, f64)> =
                        b.mix.iter().map(|s| (s.name.as_str(), s.count)).collect();
                    assert_eq!(mix.len(), case.mix.len(), "{}: {mix:?}", case.what);
                    for ((gn, gc), (wn, wc)) in mix.iter().zip(&case.mix) {
                        assert!(gn == wn && close(*gc, *wc), "{}: {mix:?}", case.what);
                    }
                }
                _ => panic!("{}: got {got:?}, want {:?}", case.what, case.cost),
            }
        }
    }

    #[test]
    fn grouped_sums_and_fails_on_an_unplaceable_group() {
        let c = vec![cand("c", 0.10, 4000, 4), cand("r", 0.10, 1000, 16)];
        let g = vec![(c.clone(), 10_000, 40 * GI), (c.clone(), 8000, 0)];
        let total = grouped_lower_bound(&g).expect("both groups placeable");
        assert!(close(total, 0.60), "{total}");
        let g = vec![(c, 8000, 0), (vec![], 1000, GI)];
        assert_eq!(grouped_lower_bound(&g), None);
        assert_eq!(grouped_lower_bound(&[]), Some(0.0));
    }

    fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec((1u32..10_000, 1i64..200_000, 1i64..1_000_000), 1..40).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (cents, cpu, mem_mi))| Candidate {
                    name: format!("t{i}"),
                    price_per_hour: f64::from(cents) / 1000.0,
                    cpu_millis: cpu,
                    memory_bytes: mem_mi << 20,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn bound_is_below_integer_single_type_plans(
            cands in candidates(),
            cpu in 0i64..2_000_000,
            mem_mi in 0i64..20_000_000,
        ) {
            let mem = mem_mi << 20;
            let b = lp_lower_bound(&cands, cpu, mem).expect("all candidates usable");
            prop_assert!(b.cost_per_hour >= 0.0);
            prop_assert!(b.mix.len() <= 2);
            for k in &cands {
                let n = (cpu as f64 / k.cpu_millis as f64)
                    .max(mem as f64 / k.memory_bytes as f64)
                    .ceil();
                prop_assert!(b.cost_per_hour <= n * k.price_per_hour * (1.0 + 1e-12));
            }
            // The mix covers the demand at the stated cost.
            let by_name = |n: &str| cands.iter().find(|k| k.name == n).expect("named candidate");
            let (mut c, mut m, mut p) = (0.0, 0.0, 0.0);
            for s in &b.mix {
                let k = by_name(&s.name);
                prop_assert!(s.count >= 0.0);
                c += s.count * k.cpu_millis as f64;
                m += s.count * k.memory_bytes as f64;
                p += s.count * k.price_per_hour;
            }
            prop_assert!(c >= cpu as f64 * (1.0 - 1e-9));
            prop_assert!(m >= mem as f64 * (1.0 - 1e-9));
            prop_assert!(close(p, b.cost_per_hour));
            // And it is the exact optimum over all basic solutions.
            let want = brute(&cands, cpu, mem).expect("feasible");
            prop_assert!(close(b.cost_per_hour, want), "{} vs brute {want}", b.cost_per_hour);
        }
    }
}
