#!/usr/bin/env bash
# End-to-end: `capstan sandbox` driven with kubectl as a user would. A NodePool, an EC2NodeClass
# and a Deployment of 30 pods are applied; nodes appear and every pod runs; `capstan nodes` shows
# them with their cost; scaled to zero, the empty nodes are disrupted and go. Then
# `capstan bench provisioning` runs against it.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${CAPSTAN_BIN:-}" ] && [ -x "$CAPSTAN_BIN" ]; then
  CAPSTAN=$CAPSTAN_BIN
else
  cargo build --quiet --bin capstan || exit 1
  CAPSTAN="${CARGO_TARGET_DIR:-target}/debug/capstan"
fi
KUBECTL=.venv/bin/kubectl
if [ ! -x "$KUBECTL" ]; then
  if [ "${CI:-}" = "true" ]; then echo "FAIL e2e/sandbox.sh: $KUBECTL missing in CI (run scripts/venv.sh)"; exit 1; fi
  echo "skip e2e/sandbox.sh: $KUBECTL missing (run scripts/venv.sh)"; exit 0
fi
tmp=$(mktemp -d)
passed=0 failed=0
ok()   { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; shift; printf '     %s\n' "$@"; failed=$((failed + 1)); }

$CAPSTAN sandbox --dir "$tmp/sbx" --exit-after 300 >"$tmp/sandbox.log" 2>&1 &
sandbox=$!
trap 'kill $sandbox 2>/dev/null; wait $sandbox 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 300); do grep -q '^controllers:' "$tmp/sandbox.log" && break; sleep 0.1; done
export KUBECONFIG="$tmp/sbx/kubeconfig"
k() { "$KUBECTL" "$@"; }

# wait_until SECONDS CMD...: retries CMD every 0.5 s until it succeeds.
wait_until() {
  local secs=$1; shift
  local end=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}
all_running() {
  local phases
  phases=$(k get pods -l app=inflate -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}')
  [ "$(grep -c '^Running$' <<<"$phases")" -eq 30 ]
}
no_nodes() { [ -z "$(k get nodes -o name)" ]; }

if k apply -f manifests/examples/default.yaml -f e2e/fixtures/inflate.yaml >"$tmp/apply.txt" 2>&1; then
  ok "kubectl apply: NodePool, EC2NodeClass, Deployment of 30 pods"
else
  fail "kubectl apply: NodePool, EC2NodeClass, Deployment of 30 pods" "$(cat "$tmp/apply.txt")"
fi
if wait_until 60 all_running; then
  ok "nodes appear and all 30 pods run ($(k get nodes -o name | wc -l) nodes)"
else
  fail "nodes appear and all 30 pods run" "$(k get nodeclaims,nodes 2>&1 | head)" "$(tail -5 "$tmp/sandbox.log")"
fi
claims=$(k get nodeclaims -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
if [ -n "$claims" ] && ! grep -qv '^True$' <<<"$claims"; then
  ok "every NodeClaim is Ready (kubectl get nodeclaims)"
else
  fail "every NodeClaim is Ready" "$(k get nodeclaims 2>&1)"
fi
if $CAPSTAN nodes --kubeconfig "$KUBECONFIG" >"$tmp/nodes.txt" 2>&1 \
   && grep -qE '^ip-10-.*(on-demand|spot)' "$tmp/nodes.txt" && grep -q '30 pods' "$tmp/nodes.txt" \
   && grep -qE '^cost \$[0-9.]+/hour, \$[0-9.]+/month' "$tmp/nodes.txt"; then
  ok "capstan nodes: $(grep '^cost' "$tmp/nodes.txt")"
else
  fail "capstan nodes shows the nodes, 30 pods and the cost" "$(cat "$tmp/nodes.txt")"
fi
# Scale to zero: the empty nodes go once consolidateAfter (shortened here from the example's 1m)
# has passed, through disruption and termination.
k patch nodepool default --type merge -p '{"spec":{"disruption":{"consolidateAfter":"2s"}}}' >"$tmp/patch.txt" 2>&1
k scale deployment inflate --replicas=0 >>"$tmp/patch.txt" 2>&1
if wait_until 60 no_nodes && [ -z "$(k get nodeclaims -o name)" ]; then
  ok "scale to 0: empty nodes removed by disruption"
else
  fail "scale to 0: empty nodes removed by disruption" "$(cat "$tmp/patch.txt")" "$(k get nodeclaims,nodes 2>&1)" "$(k get events -A 2>&1 | tail -5)"
fi
if $CAPSTAN bench provisioning --kubeconfig "$KUBECONFIG" --bursts 3 --pods 10 >"$tmp/bench.txt" 2>&1; then
  ok "capstan bench provisioning: $(grep '^p50' "$tmp/bench.txt" | tr -s ' ')"
else
  fail "capstan bench provisioning" "$(cat "$tmp/bench.txt")"
fi

echo "e2e sandbox: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
