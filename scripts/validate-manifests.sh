#!/usr/bin/env bash
# Validates the YAML under manifests/ (or the directory given as $1) as kubectl and the API server
# would see it, without a cluster:
#   - every document parses, has no duplicate keys, no plain scalar that YAML 1.1 (kubectl) and
#     YAML 1.2 read differently (0440, yes/on), and has apiVersion, kind and metadata.name;
#   - built-in kinds are checked with `kubernetes-validate --strict` against the Kubernetes
#     OpenAPI schemas (version $KUBE_VERSION, default 1.37, else the newest the tool knows):
#     unknown fields, wrong types and missing required fields fail;
#   - the install manifests (the YAML files directly in the directory) are namespaced in
#     `capstan`, and hold together: bindings name roles and service accounts that exist, the
#     Service and the PDB select the Deployment's pods, every webhook calls an existing Service
#     port and serves one of the paths capstan serves; pod webhooks fail open; no RBAC rule
#     uses a wildcard (tests/rbac.rs proves each rule is needed).
# Not checked here: manifests/crds/ (generated), and documents of capstan's custom resources
# (NodePool, NodeClaim, EC2NodeClass, RequestPolicy), which a Rust test checks against our CRDs.
#
# Uses the virtualenv .venv at the repository root, creating it and installing
# kubernetes-validate into it when needed. Prints one line per file and `N passed, N failed`;
# exits non-zero if any file fails. If the tool cannot be installed it skips (exit 0), except
# with CI=true, where it fails.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${1:-$repo/manifests}
venv=$repo/.venv
kube_version=${KUBE_VERSION:-1.37}

unavailable() {
    if [ "${CI:-}" = true ]; then
        echo "validate-manifests: FAIL: $1" >&2
        exit 1
    fi
    echo "validate-manifests: SKIP: $1"
    exit 0
}

[ -d "$root" ] || { echo "validate-manifests: no directory $root" >&2; exit 2; }
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >/dev/null 2>&1 || unavailable "cannot create the virtualenv $venv (python3 -m venv failed)"
fi
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    "$venv/bin/python" -m pip install -q kubernetes-validate >/dev/null 2>&1 ||
        unavailable "cannot install kubernetes-validate into $venv (pip install failed)"
fi

exec "$venv/bin/python" - "$root" "$repo" "$kube_version" "$venv/bin/kubernetes-validate" <<'PY'
import os
import re
import subprocess
import sys
import tempfile

import yaml
import kubernetes_validate.utils as kv_utils
from kubernetes_validate.version import __version__ as kv_version

root, repo, want_version, kv_cli = sys.argv[1:5]
root = os.path.abspath(root)

NAMESPACE = "capstan"
# Custom resources: API group -> kinds. Checked by the CRD schema test, not here.
CUSTOM = {
    "karpenter.sh": {"NodePool", "NodeClaim"},
    "karpenter.k8s.aws": {"EC2NodeClass"},
    "capstan.dev": {"RequestPolicy"},
}
CUSTOM_KINDS = set().union(*CUSTOM.values())
NAMESPACED = {
    "ServiceAccount", "Role", "RoleBinding", "Deployment", "DaemonSet", "StatefulSet", "Service",
    "PodDisruptionBudget", "Secret", "ConfigMap", "Pod", "Job", "CronJob", "Lease",
    "NetworkPolicy", "ServiceMonitor", "PodMonitor", "ResourceQuota", "LimitRange",
}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "CustomResourceDefinition", "PriorityClass",
    "StorageClass", "Node",
} | CUSTOM_KINDS
WEBHOOK_KINDS = {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
# The paths capstan's webhook server serves (the contract with src/webhook).
WEBHOOK_PATHS = {
    "/mutate/nodepool", "/validate/nodepool", "/mutate/ec2nodeclass", "/validate/ec2nodeclass",
    "/validate/requestpolicy", "/mutate/pod", "/validate/pod",
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


class Loader(yaml.SafeLoader):
    """SafeLoader that, like kubectl, refuses a key given twice in one mapping."""


def _mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            dup = key in seen
            seen.add(key)
        except TypeError:
            continue
        if dup:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)

# Plain scalars that YAML 1.1 (kubectl, this loader) and YAML 1.2 (serde_saphyr in capstan, many
# editors) read differently: 0440 is octal 288 or decimal 440, `on` a bool or a string.
AMBIGUOUS_INT = re.compile(r"^[-+]?(0[0-9_]+|0b[01_]+|[0-9][0-9_]*(:[0-5]?[0-9])+|[1-9][0-9]*_[0-9_]*)$")
ambiguous = []  # (line, value) of the file being loaded


def _checked(construct, pattern):
    def constructor(loader, node):
        if node.style is None and pattern.match(node.value):
            ambiguous.append((node.start_mark.line + 1, node.value))
        return construct(loader, node)
    return constructor


Loader.add_constructor("tag:yaml.org,2002:int", _checked(yaml.SafeLoader.construct_yaml_int, AMBIGUOUS_INT))
Loader.add_constructor("tag:yaml.org,2002:bool",
                       _checked(yaml.SafeLoader.construct_yaml_bool, re.compile(r"^(?i:yes|no|on|off)$")))
# As kubernetes-validate does: a plain `=` scalar is a string (pyyaml issue 89).
Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: str(node.value))


def show(path):
    rel = os.path.relpath(path, repo)
    return path if rel.startswith("..") else rel


def group_of(api_version):
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def ident(doc):
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def selects(selector, labels):
    """Whether a LabelSelector selects a set of labels."""
    if not isinstance(selector, dict) or not selector:
        return False  # an empty selector selecting everything is never what we mean here
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class File:
    def __init__(self, path, install):
        self.path = path
        self.install = install  # directly in root: an install manifest
        self.docs = []  # (doc, custom: bool)
        self.errors = []

    def error(self, doc, message):
        self.errors.append(f"{ident(doc)}: {message}" if doc is not None else message)


def load(f):
    ambiguous.clear()
    try:
        with open(f.path) as fh:
            raw = list(yaml.load_all(fh, Loader=Loader))
    except (OSError, yaml.YAMLError) as e:
        f.error(None, f"cannot parse: {' '.join(str(e).split())}")
        return
    for line, value in ambiguous:
        f.error(None, f"line {line}: {value!r} reads differently in YAML 1.1 (kubectl) and YAML 1.2; write a plain decimal or true/false, or quote it if a string is meant")
    for doc in raw:
        if doc is None:
            continue  # an empty document, as between two `---`
        if not isinstance(doc, dict):
            f.error(None, f"a document is a {type(doc).__name__}, not a mapping")
            continue
        check_document(f, doc)


def check_document(f, doc):
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    meta = doc.get("metadata")
    if not isinstance(api_version, str) or not api_version:
        f.error(doc, "no apiVersion")
    if not isinstance(kind, str) or not kind:
        f.error(doc, "no kind")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta.get("name"):
        f.error(doc, "no metadata.name (kubectl apply needs one; generateName is not applied)")
        meta = meta if isinstance(meta, dict) else {}
    elif kind not in RBAC_KINDS and not DNS_SUBDOMAIN.match(meta["name"]):
        f.error(doc, f"metadata.name {meta['name']!r} is not a DNS subdomain (lowercase letters, digits, '-', '.')")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return
    group = group_of(api_version)
    custom = group in CUSTOM or kind in CUSTOM_KINDS
    if custom and kind not in CUSTOM.get(group, set()):
        f.error(doc, f"kind {kind} is not served by {api_version} (custom kinds: "
                     + ", ".join(f"{k} in {g}" for g, ks in sorted(CUSTOM.items()) for k in sorted(ks)) + ")")
    namespace = meta.get("namespace")
    if kind in CLUSTER_SCOPED and namespace is not None:
        f.error(doc, f"{kind} is cluster-scoped but has metadata.namespace {namespace!r}")
    if f.install:
        if kind in NAMESPACED and namespace != NAMESPACE:
            f.error(doc, f"install manifests must set metadata.namespace: {NAMESPACE} (has {namespace or 'none'})")
        elif kind not in NAMESPACED and kind not in CLUSTER_SCOPED:
            f.error(doc, f"unknown scope of kind {kind}: add it to NAMESPACED or CLUSTER_SCOPED in scripts/validate-manifests.sh")
    rules = (doc.get("rules") or []) if kind in ("Role", "ClusterRole") else []
    for i, rule in enumerate(rules):
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            if "*" in (rule.get(field) or []):
                f.error(doc, f"rules[{i}].{field} has a wildcard; name what is needed")
        if rule.get("nonResourceURLs"):
            f.error(doc, f"rules[{i}] grants nonResourceURLs; capstan needs none")
    f.docs.append((doc, custom))


def cross_check(files):
    """References between the install manifests, as the cluster would resolve them."""
    objs = {}
    for f in files:
        if f.install:
            for doc, _ in f.docs:
                meta = doc.get("metadata") or {}
                objs.setdefault(doc.get("kind"), []).append((f, doc, meta.get("namespace"), meta.get("name")))

    def find(kind, name, namespace=None):
        return [d for _, d, ns, n in objs.get(kind, []) if n == name and (namespace is None or ns == namespace)]

    deployments = [(f, d) for f, d, _, _ in objs.get("Deployment", [])]
    pod_labels = [((d.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
                  for _, d in deployments]
    ports = {}  # (namespace, pod port name or number) for the pods' containers
    for _, d in deployments:
        ns = d["metadata"].get("namespace")
        for c in (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []:
            for p in c.get("ports") or []:
                ports[(ns, p.get("name"))] = p.get("containerPort")
                ports[(ns, p.get("containerPort"))] = p.get("containerPort")

    for f, d, ns, name in objs.get("RoleBinding", []) + objs.get("ClusterRoleBinding", []):
        ref = d.get("roleRef") or {}
        if not find(ref.get("kind"), ref.get("name"), ns if ref.get("kind") == "Role" else None):
            f.error(d, f"roleRef {ref.get('kind')}/{ref.get('name')} is not in the install manifests")
        for s in d.get("subjects") or []:
            if s.get("kind") == "ServiceAccount" and not find("ServiceAccount", s.get("name"), s.get("namespace")):
                f.error(d, f"subject ServiceAccount {s.get('namespace')}/{s.get('name')} is not in the install manifests")
    for f, d in deployments:
        pod = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
        sa = pod.get("serviceAccountName", "default")
        if not find("ServiceAccount", sa, d["metadata"].get("namespace")):
            f.error(d, f"serviceAccountName {sa} is not in the install manifests")
        if not selects((d.get("spec") or {}).get("selector"), (d["spec"].get("template") or {}).get("metadata", {}).get("labels")):
            f.error(d, "spec.selector does not select the pod template's labels")
    for kind in ("Service", "PodDisruptionBudget"):
        for f, d, ns, name in objs.get(kind, []):
            spec = d.get("spec") or {}
            sel = spec.get("selector")
            sel = {"matchLabels": sel} if kind == "Service" else sel
            if not any(selects(sel, labels) for labels in pod_labels):
                f.error(d, "selector matches no Deployment's pods")
            for p in spec.get("ports") or []:
                target = p.get("targetPort", p.get("port"))
                if (ns, target) not in ports:
                    f.error(d, f"port {p.get('name') or p.get('port')}: targetPort {target!r} is no container port")
    paths = set()
    for kind in sorted(WEBHOOK_KINDS):
        for f, d, ns, name in objs.get(kind, []):
            for w in d.get("webhooks") or []:
                wid = f"webhook {w.get('name')}"
                svc = (w.get("clientConfig") or {}).get("service") or {}
                port = svc.get("port", 443)
                service = find("Service", svc.get("name"), svc.get("namespace"))
                if not service:
                    f.error(d, f"{wid}: Service {svc.get('namespace')}/{svc.get('name')} is not in the install manifests")
                elif port not in [p.get("port") for p in (service[0].get("spec") or {}).get("ports") or []]:
                    f.error(d, f"{wid}: Service {svc.get('name')} has no port {port}")
                if svc.get("path") not in WEBHOOK_PATHS:
                    f.error(d, f"{wid}: path {svc.get('path')!r} is not one capstan serves: {sorted(WEBHOOK_PATHS)}")
                paths.add(svc.get("path"))
                if "caBundle" not in (w.get("clientConfig") or {}):
                    f.error(d, f"{wid}: clientConfig.caBundle missing (leave it \"\" for `capstan certs`)")
                if w.get("failurePolicy") not in ("Fail", "Ignore"):
                    f.error(d, f"{wid}: state failurePolicy (Fail or Ignore) explicitly")
                if w.get("sideEffects") != "None":
                    f.error(d, f"{wid}: sideEffects must be None")
                if "v1" not in (w.get("admissionReviewVersions") or []):
                    f.error(d, f"{wid}: admissionReviewVersions must include v1")
                on_pods = any("pods" in (r.get("resources") or []) or "*" in (r.get("resources") or [])
                              for r in w.get("rules") or [])
                if on_pods:
                    if w.get("failurePolicy") != "Ignore":
                        f.error(d, f"{wid}: a webhook on pods must be failurePolicy Ignore (an outage must not block pods)")
                    exprs = ((w.get("namespaceSelector") or {}).get("matchExpressions") or [])
                    excluded = {v for e in exprs if e.get("key") == "kubernetes.io/metadata.name"
                                and e.get("operator") == "NotIn" for v in e.get("values") or []}
                    if not {"kube-system", NAMESPACE} <= excluded:
                        f.error(d, f"{wid}: namespaceSelector must exclude kube-system and {NAMESPACE}")
    if objs.get("MutatingWebhookConfiguration") or objs.get("ValidatingWebhookConfiguration"):
        missing = WEBHOOK_PATHS - paths
        if missing:
            f = next(f for f in files if f.install and any(d.get("kind") in WEBHOOK_KINDS for d, _ in f.docs))
            f.error(None, f"no webhook calls {sorted(missing)}")


def pick_version(want):
    known = kv_utils.all_versions()
    for v in known:
        if kv_utils.major_minor(v) == kv_utils.major_minor(want):
            return kv_utils.major_minor(v), ""
    newest = kv_utils.major_minor(known[-1])
    return newest, f" (no schemas for {want}; newest known)"


def validate_builtin(f, version, tmpdir):
    builtin = [d for d, custom in f.docs if not custom]
    if not builtin:
        return 0
    tmp = os.path.join(tmpdir, "doc.yaml")
    with open(tmp, "w") as fh:
        yaml.safe_dump_all(builtin, fh, sort_keys=False)
    run = subprocess.run([kv_cli, "--strict", "-k", version, tmp], capture_output=True, text=True)
    passed = 0
    for line in (run.stdout + run.stderr).splitlines():
        line = line.replace(tmp, show(f.path))
        if line.startswith("INFO ") and " passed for resource " in line:
            passed += 1
        elif line.strip():
            # WARN is a kind kubernetes-validate has no schema for: a typo in apiVersion or kind.
            f.errors.append(line.strip())
    if run.returncode != 0 and not f.errors:
        f.errors.append(f"kubernetes-validate exited {run.returncode}")
    if passed != len(builtin) and not f.errors:
        f.errors.append(f"kubernetes-validate passed {passed} of {len(builtin)} documents")
    return len(builtin)


def main():
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "crds" and not d.startswith("."))
        paths += [os.path.join(dirpath, n) for n in filenames if n.endswith((".yaml", ".yml"))]
    files = [File(p, os.path.dirname(p) == root) for p in sorted(paths)]
    version, note = pick_version(want_version)
    print(f"validate-manifests: kubernetes-validate {kv_version}, Kubernetes {version} schemas, strict{note}")
    if not files:
        print(f"validate-manifests: no YAML files under {show(root)}")
        print("manifests: 0 passed, 1 failed")
        return 1
    for f in files:
        load(f)
    cross_check(files)
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="validate-manifests.") as tmpdir:
        for f in files:
            checked = validate_builtin(f, version, tmpdir)
            custom = [ident(d) for d, c in f.docs if c]
            if f.errors:
                failed += 1
                print(f"FAIL {show(f.path)}")
                for e in f.errors:
                    print(f"     {e}")
                continue
            passed += 1
            parts = [f"{checked} document{'s' if checked != 1 else ''} valid"] if checked else []
            if custom:
                parts.append(f"{len(custom)} custom resource{'s' if len(custom) != 1 else ''} left to the CRD schema test"
                             f" ({', '.join(custom)})")
            what = "; ".join(parts) or "no documents"
            print(f"PASS {show(f.path)}: {what}")
    print(f"manifests: {passed} passed, {failed} failed")
    return 1 if failed else 0


sys.exit(main())
PY
