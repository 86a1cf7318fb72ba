//! Taints and tolerations, with Kubernetes' matching rules.

use k8s_openapi::api::core::v1::Toleration;

use crate::apis::Taint;

/// Whether `toleration` tolerates `taint` (k8s.io/api core/v1 `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// The first taint that keeps a pod with `tolerations` off the node, if any. `PreferNoSchedule`
/// taints are preferences and never keep a pod off.
pub fn first_untolerated<'a>(tolerations: &[Toleration], taints: &'a [Taint]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect != "PreferNoSchedule")
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// `key=value:Effect`, the form kubectl and Karpenter's messages use.
pub fn describe(taint: &Taint) -> String {
    match taint.value.as_deref() {
        Some(v) if !v.is_empty() => format!("{}={v}:{}", taint.key, taint.effect),
        _ => format!("{}:{}", taint.key, taint.effect),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: None,
        }
    }

    #[test]
    fn matching_rules() {
        let gpu = taint("nvidia.com/gpu", Some("true"), "NoSchedule");
        let cases = [
            (
                tol(
                    Some("nvidia.com/gpu"),
                    Some("Equal"),
                    Some("true"),
                    Some("NoSchedule"),
                ),
                true,
            ),
            (tol(Some("nvidia.com/gpu"), None, Some("true"), None), true),
            (
                tol(Some("nvidia.com/gpu"), Some("Equal"), Some("false"), None),
                false,
            ),
            (
                tol(Some("nvidia.com/gpu"), Some("Exists"), None, None),
                true,
            ),
            (
                tol(
                    Some("nvidia.com/gpu"),
                    Some("Exists"),
                    None,
                    Some("NoExecute"),
                ),
                false,
            ),
            (tol(None, Some("Exists"), None, None), true),
            (tol(Some("other"), Some("Exists"), None, None), false),
        ];
        for (t, want) in cases {
            assert_eq!(tolerates(&t, &gpu), want, "{t:?}");
        }
    }

    #[test]
    fn prefer_no_schedule_never_blocks() {
        let taints = [
            taint("soft", None, "PreferNoSchedule"),
            taint("hard", Some("x"), "NoExecute"),
        ];
        assert_eq!(
            first_untolerated(&[], &taints).map(describe),
            Some("hard=x:NoExecute".to_string())
        );
        let tolerated = [tol(Some("hard"), Some("Exists"), None, None)];
        assert_eq!(first_untolerated(&tolerated, &taints), None);
    }
}
