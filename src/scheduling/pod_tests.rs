use super::*;

fn pod(yaml: &str) -> PodInfo {
    let pod: Pod = serde_saphyr::from_str(yaml).expect("valid pod yaml");
    PodInfo::from_pod(&pod).expect("valid pod")
}

#[test]
fn requests_count_init_containers_sidecars_and_overhead() {
    let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ns}
spec:
  overhead: {cpu: 100m}
  initContainers:
    - {name: sidecar, image: x, restartPolicy: Always, resources: {requests: {cpu: 200m, memory: 64Mi}}}
    - {name: migrate, image: x, resources: {requests: {cpu: "2", memory: 128Mi}}}
  containers:
    - {name: a, image: x, resources: {requests: {cpu: 500m, memory: 1Gi}}}
    - {name: b, image: x, resources: {limits: {cpu: 250m, memory: 256Mi}}}
"#);
    // Containers + sidecar: 950m / 1344Mi. Init peak: sidecar 200m + migrate 2 = 2200m, 192Mi.
    // max → 2200m / 1344Mi, plus 100m overhead.
    assert_eq!(p.requests.cpu_millis, 2300);
    assert_eq!(p.requests.memory_bytes, 1344 * 1024 * 1024);
    assert_eq!(p.requests.pods, 1);
    assert_eq!(p.key, "ns/p");
}

#[test]
fn node_constraints_are_read() {
    let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: web}}
spec:
  nodeSelector: {team: a}
  containers: [{name: a, image: x, ports: [{containerPort: 80, hostPort: 8080}]}]
  tolerations: [{key: team, operator: Equal, value: a, effect: NoSchedule}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [arm64]}]
          - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 1
          preference: {matchExpressions: [{key: karpenter.sh/capacity-type, operator: In, values: [spot]}]}
        - weight: 50
          preference: {matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [us-west-2a]}]}
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app: web}}
  topologySpreadConstraints:
    - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
"#);
    assert_eq!(p.namespace, "default");
    assert!(p.node_selector.get("team").is_some_and(|r| r.has("a")));
    assert_eq!(p.required_terms.len(), 2);
    assert_eq!(
        p.preferred_terms.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![50, 1],
        "heaviest first"
    );
    assert_eq!(p.host_ports, vec![("TCP".to_string(), 8080)]);
    assert_eq!(p.anti_affinity.len(), 1);
    assert!(p.anti_affinity[0].selects("default", &p.labels));
    assert!(
        !p.anti_affinity[0].selects("other", &p.labels),
        "terms default to the pod's namespace"
    );
    assert_eq!(
        p.spreads[0].when_unsatisfiable,
        WhenUnsatisfiable::DoNotSchedule
    );
}

#[test]
fn selectors() {
    let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let sel = |yaml: &str| {
        Selector::from_label_selector(Some(
            &serde_saphyr::from_str::<LabelSelector>(yaml).expect("selector"),
        ))
    };
    assert!(sel("{}").matches(&labels), "empty selects all");
    assert!(
        !Selector::from_label_selector(None).matches(&labels),
        "nil selects none"
    );
    assert!(sel("{matchLabels: {app: web}}").matches(&labels));
    assert!(!sel("{matchLabels: {app: db}}").matches(&labels));
    assert!(
        sel("{matchExpressions: [{key: tier, operator: In, values: [front, back]}]}")
            .matches(&labels)
    );
    assert!(sel("{matchExpressions: [{key: zone, operator: DoesNotExist}]}").matches(&labels));
    assert!(
        !sel("{matchExpressions: [{key: app, operator: NotIn, values: [web]}]}").matches(&labels)
    );
}

#[test]
fn bad_quantities_name_the_container() {
    let p: Pod = serde_saphyr::from_str(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: x, resources: {requests: {cpu: lots}}}]\n",
    )
    .expect("yaml");
    let err = PodInfo::from_pod(&p).expect_err("bad quantity");
    assert!(err.to_string().contains("container app"), "{err}");
}
