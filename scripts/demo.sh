#!/usr/bin/env bash
# The main job, as far as capstan goes today: build, walk through what a platform team does first
# (check manifests, plan, convert older ones, CRDs and certificates), then run the whole system on
# this machine: `capstan sandbox --demo` (API server + capstan's webhooks + controllers on a
# simulated cloud + the example workload) and look at it with kubectl: nodes arrive for the
# pending pods and every pod runs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first"; exit 1; }
cargo build --quiet --bin capstan
capstan="${CARGO_TARGET_DIR:-target}/debug/capstan"

echo "== capstan check -f manifests/examples   (strict decoding, cross-references)"
$capstan check -f manifests/examples
echo
echo "== capstan plan -f manifests/examples   (the NodeClaims capstan would launch, with cost)"
$capstan plan -f manifests/examples
echo
echo "== capstan check on a manifest with a typo: the error names file, line, document and field"
$capstan check -f e2e/fixtures/broken-nodepool.yaml || true
echo
echo "== capstan convert -f e2e/fixtures/legacy   (v1alpha5 Provisioner + AWSNodeTemplate -> v1)"
$capstan convert -f e2e/fixtures/legacy
echo
echo "== capstan crds | grep 'name:' -m4   (the CRDs manifests/crds/ holds)"
$capstan crds | grep -E '^  name: ' | head -4
echo
mkdir -p .capstan/certs
echo "== capstan certs --san 127.0.0.1 --out .capstan/certs   (Secret + webhook configs with caBundle)"
$capstan certs --san 127.0.0.1 --out .capstan/certs | grep -E '^(kind|  name):|caBundle' | cut -c1-80
echo
echo "== capstan sandbox --demo   (API server, webhooks, controllers on a simulated cloud, examples applied)"
./scripts/venv.sh >/dev/null
kubectl=.venv/bin/kubectl
dir=.capstan/sandbox
rm -f "$dir/kubeconfig"
$capstan sandbox --demo --dir "$dir" --exit-after 60 > .capstan/sandbox.log 2>&1 &
sandbox=$!
trap 'kill $sandbox 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do grep -q "^demo: every pod is running" .capstan/sandbox.log 2>/dev/null && break; sleep 0.2; done
grep -E '^(api|kubeconfig|webhooks|metrics|controllers|demo):' .capstan/sandbox.log
if [ -x "$kubectl" ]; then
  export KUBECONFIG="$dir/kubeconfig"
  echo
  echo "== kubectl get nodepools,ec2nodeclasses   (defaulted by capstan's webhook)"
  $kubectl get nodepools,ec2nodeclasses
  echo
  echo "== kubectl get nodeclaims,nodes   (launched on the simulated cloud for the pending pods)"
  $kubectl get nodeclaims,nodes -o wide
  echo
  echo "== kubectl get pods -A -o wide | head   (all Running on those nodes)"
  $kubectl get pods -A -o wide | head -8
  echo
  echo "== capstan nodes   (what they cost and how full they are)"
  $capstan nodes --kubeconfig "$KUBECONFIG"
  echo
  echo "== a NodePool budget with a schedule but no duration is rejected at apply time"
  printf '%s\n' 'apiVersion: karpenter.sh/v1' 'kind: NodePool' 'metadata: {name: broken}' 'spec:' \
    '  template: {spec: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}, requirements: []}}' \
    '  disruption: {budgets: [{nodes: "10%", schedule: "0 9 * * mon-fri"}]}' | $kubectl apply -f - || true
else
  echo "(kubectl not installed in .venv; skipping the kubectl part)"
fi
kill $sandbox 2>/dev/null || true
