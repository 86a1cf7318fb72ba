//! `FEATURE_GATES` as Karpenter reads it: `Name=true,Other=false`. The gates capstan implements
//! change what it does; Karpenter's other gates are accepted with a warning, so that a team's
//! existing settings never stop the binary; anything else is an error naming the known gates.

/// The gates capstan acts on, with Karpenter's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureGates {
    /// A spot node may be replaced by a cheaper spot node (with at least 15 cheaper types).
    pub spot_to_spot_consolidation: bool,
}

/// Karpenter v1's gates that capstan does not implement (yet).
const KARPENTER_ONLY: &[&str] = &[
    "NodeRepair",
    "ReservedCapacity",
    "StaticCapacity",
    "NodeOverlay",
];

const KNOWN: &[&str] = &["SpotToSpotConsolidation"];

/// The gates, and warnings for gates accepted but ignored.
pub fn parse(s: &str) -> Result<(FeatureGates, Vec<String>), String> {
    let mut gates = FeatureGates::default();
    let mut warnings = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((name, value)) = item.split_once('=') else {
            return Err(format!(
                "FEATURE_GATES: {item:?} is not Name=true or Name=false"
            ));
        };
        let (name, value) = (name.trim(), value.trim());
        let on = match value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(format!(
                    "FEATURE_GATES: {name}={value:?}: the value must be true or false"
                ));
            }
        };
        match name {
            "SpotToSpotConsolidation" => gates.spot_to_spot_consolidation = on,
            n if KARPENTER_ONLY.contains(&n) => warnings.push(format!(
                "FEATURE_GATES: {n} is a Karpenter gate capstan does not implement; ignored"
            )),
            n => {
                return Err(format!(
                    "FEATURE_GATES: unknown gate {n:?} (known: {})",
                    KNOWN.join(", ")
                ));
            }
        }
    }
    Ok((gates, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_karpenters_defaults() {
        assert_eq!(parse(""), Ok((FeatureGates::default(), vec![])));
        assert_eq!(parse(" , "), Ok((FeatureGates::default(), vec![])));
    }

    #[test]
    fn spot_to_spot_is_read_case_insensitively_in_its_value() {
        let (g, w) = parse("SpotToSpotConsolidation=True").expect("valid");
        assert!(g.spot_to_spot_consolidation);
        assert!(w.is_empty());
        let (g, _) =
            parse("SpotToSpotConsolidation=true,SpotToSpotConsolidation=false").expect("valid");
        assert!(!g.spot_to_spot_consolidation, "the last one wins");
    }

    #[test]
    fn karpenters_other_gates_warn_and_are_ignored() {
        let (g, w) = parse("NodeRepair=true, SpotToSpotConsolidation=true").expect("valid");
        assert!(g.spot_to_spot_consolidation);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("NodeRepair"), "{w:?}");
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        let e = parse("SpotToSpot=true").expect_err("unknown");
        assert!(
            e.contains("unknown gate \"SpotToSpot\" (known: SpotToSpotConsolidation)"),
            "{e}"
        );
        let e = parse("SpotToSpotConsolidation").expect_err("no value");
        assert!(e.contains("is not Name=true or Name=false"), "{e}");
        let e = parse("SpotToSpotConsolidation=yes").expect_err("bad value");
        assert!(e.contains("must be true or false"), "{e}");
    }
}
