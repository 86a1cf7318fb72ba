#!/usr/bin/env bash
# End-to-end: `capstan sandbox` driven with kubectl as a user would. A NodePool, an EC2NodeClass
# and a Deployment of 30 pods are applied; nodes appear and every pod runs; `capstan nodes` shows
# them with their cost; a spot interruption warning sent to an SQS queue (moto) replaces a node
# before the old one goes; scaled to 3, the node is consolidated onto cheaper capacity; scaled to
# zero, the empty nodes are disrupted and go. Then
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

# The interruption queue is a real SQS queue on moto's server, as EventBridge would fill it.
MOTO=.venv/bin/moto_server
if [ ! -x "$MOTO" ]; then
  if [ "${CI:-}" = "true" ]; then echo "FAIL e2e/sandbox.sh: $MOTO missing in CI (run scripts/venv.sh)"; exit 1; fi
  echo "skip e2e/sandbox.sh: $MOTO missing (run scripts/venv.sh)"; exit 0
fi
moto_port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$MOTO" -H 127.0.0.1 -p "$moto_port" >"$tmp/moto.log" 2>&1 &
moto=$!
export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$moto_port" AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
sqs() { .venv/bin/python e2e/sqs.py "$@"; }
for _ in $(seq 1 100); do sqs create capstan-e2e 2>/dev/null && break; sleep 0.2; done

# SpotToSpotConsolidation: the example pool runs spot, and a lone spot node is replaced by a
# cheaper spot node only with this gate (Karpenter's rule).
$CAPSTAN sandbox --dir "$tmp/sbx" --exit-after 400 --feature-gates SpotToSpotConsolidation=true \
  --interruption-queue capstan-e2e --sqs-endpoint "$AWS_ENDPOINT_URL_SQS" >"$tmp/sandbox.log" 2>&1 &
sandbox=$!
watcher=
trap 'kill $sandbox $moto $watcher 2>/dev/null; wait $sandbox $moto 2>/dev/null; rm -rf "$tmp"' EXIT
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
# Ready follows the pods by a moment (the lifecycle controller sees the Node after the scheduler).
all_claims_ready() {
  local claims
  claims=$(k get nodeclaims -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
  [ -n "$claims" ] && ! grep -qv '^True$' <<<"$claims"
}
if wait_until 20 all_claims_ready; then
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
# A spot interruption warning on the SQS queue for one spot node: a replacement NodeClaim is
# created before the interrupted one is deleted (kubectl's own watch shows the order), every pod
# runs again, and the message is deleted from the queue.
claim_of() {
  k get nodeclaims -o jsonpath='{range .items[*]}{.metadata.name} {.status.providerID}{"\n"}{end}' \
    | awk -v p="$1" '$2 == p { print $1 }'
}
spot_pid=$(k get nodes -l karpenter.sh/capacity-type=spot -o jsonpath='{.items[0].spec.providerID}' 2>/dev/null)
if [ -z "$spot_pid" ]; then
  spot_pid=$(k get nodes -o jsonpath='{.items[0].spec.providerID}')
fi
victim=$(claim_of "$spot_pid")
initial=$(k get nodeclaims -o name)
k get nodeclaims --watch --output-watch-events -o json >"$tmp/watch.json" 2>&1 &
watcher=$!
sleep 1
sqs spot-warning capstan-e2e "${spot_pid##*/}"
victim_gone() { [ -n "$victim" ] && ! k get nodeclaim "$victim" >/dev/null 2>&1; }
queue_empty() { [ "$(sqs depth capstan-e2e)" = "0" ]; }
if wait_until 60 victim_gone && wait_until 60 all_running && wait_until 30 queue_empty; then
  kill $watcher 2>/dev/null
  # In kubectl's watch stream: the position of the first ADDED of a NodeClaim we did not have
  # before, and of the DELETED of the interrupted one.
  order=$(.venv/bin/python - "$tmp/watch.json" "$victim" "$initial" <<'PY'
import json, sys
text, victim, initial = open(sys.argv[1]).read(), sys.argv[2], set(sys.argv[3].split())
dec, pos, events = json.JSONDecoder(), 0, []
while True:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        break
    ev, pos = dec.raw_decode(text, pos)
    events.append((ev["type"], ev["object"]["metadata"]["name"]))
added = next(((i + 1, n) for i, (t, n) in enumerate(events)
              if t == "ADDED" and "nodeclaim.karpenter.sh/" + n not in initial), (0, ""))
deleted = next((i + 1 for i, (t, n) in enumerate(events) if t == "DELETED" and n == victim), 0)
print(deleted, added[0], added[1])
PY
)
  if awk '{ exit !($1 > 0 && $2 > 0 && $2 < $1) }' <<<"$order"; then
    ok "spot interruption from SQS: $victim replaced by ${order##* } before it was deleted; all 30 pods run"
  else
    fail "spot interruption: a replacement is created before the interrupted NodeClaim is deleted" "order: $order" "$(head -c 2000 "$tmp/watch.json")"
  fi
else
  fail "spot interruption from SQS: $victim ($spot_pid) replaced, pods running, message deleted" \
    "$(k get nodeclaims 2>&1)" "queue depth: $(sqs depth capstan-e2e 2>&1)" "$(grep -i interrupt "$tmp/sandbox.log" | tail -5)"
fi

# Scale from 30 to 3: the underutilized capacity is consolidated (replaced by a cheaper node, or
# removed) once consolidateAfter (shortened here from the example's 1m) and the 15 s settle have
# passed; the 3 pods keep running. The example's business-hours budget (no Underutilized
# consolidation 09:00-17:00 UTC on weekdays) is dropped here, or the result would depend on the
# hour the test runs; only its 10% budget stays.
hourly() { $CAPSTAN nodes --kubeconfig "$KUBECONFIG" 2>/dev/null | sed -n 's/^cost \$\([0-9.]*\)\/hour.*/\1/p'; }
cost_30=$(hourly)
k patch nodepool default --type merge -p '{"spec":{"disruption":{"consolidateAfter":"2s","budgets":[{"nodes":"10%"}]}}}' >"$tmp/patch.txt" 2>&1
k scale deployment inflate --replicas=3 >>"$tmp/patch.txt" 2>&1
three_running() {
  [ "$(k get pods -l app=inflate -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Running$')" -eq 3 ]
}
cheaper() { three_running && awk -v a="$(hourly)" -v b="$cost_30" 'BEGIN { exit !(a != "" && a + 0 < b + 0) }'; }
if wait_until 90 cheaper; then
  ok "scale 30 -> 3: consolidated from \$$cost_30/hour to \$$(hourly)/hour, 3 pods running ($(k get events -A 2>/dev/null | grep -c DisruptionTerminating) DisruptionTerminating events)"
else
  fail "scale 30 -> 3: cheaper capacity with 3 pods running" "before \$$cost_30/hour, now \$$(hourly)/hour" "$(k get nodeclaims,nodes 2>&1)" "$(k get events -A 2>&1 | tail -8)"
fi

# Scale to zero: the empty nodes go, through disruption and termination.
k scale deployment inflate --replicas=0 >>"$tmp/patch.txt" 2>&1
# Nodes go before their NodeClaims (termination removes the claim's finalizer last): wait for both.
all_gone() { no_nodes && [ -z "$(k get nodeclaims -o name 2>/dev/null)" ]; }
if wait_until 60 all_gone; then
  ok "scale to 0: empty nodes removed by disruption"
else
  fail "scale to 0: empty nodes removed by disruption" "$(cat "$tmp/patch.txt")" "$(k get nodeclaims,nodes 2>&1)" "$(k get events -A 2>&1 | tail -5)"
fi
# The controllers' metrics as Prometheus reads them, through a real OpenMetrics parser: the
# families Karpenter's dashboards use, with counts from what happened above.
metrics_url=$(sed -n 's/^metrics: //p' "$tmp/sandbox.log" | head -1)
if .venv/bin/python e2e/metrics.py "$metrics_url" \
    karpenter_nodeclaims_created=counter karpenter_nodeclaims_terminated=counter \
    karpenter_nodes_created=counter karpenter_nodeclaims_disrupted=counter \
    karpenter_pods_startup_duration_seconds=histogram \
    karpenter_scheduler_scheduling_duration_seconds=histogram \
    karpenter_cloudprovider_duration_seconds=histogram \
    karpenter_nodepools_usage=gauge karpenter_nodepools_limit=gauge \
    karpenter_voluntary_disruption_decisions=counter \
    karpenter_voluntary_disruption_eligible_nodes=gauge \
    karpenter_voluntary_disruption_decision_evaluation_duration_seconds=histogram \
    karpenter_nodepools_allowed_disruptions=gauge \
    karpenter_interruption_received_messages=counter karpenter_interruption_deleted_messages=counter \
    capstan_webhook_requests=counter capstan_webhook_request_duration_seconds=histogram \
    --min 'karpenter_nodes_created_total=2' \
    --min 'karpenter_interruption_received_messages_total{message_type=spot_interrupted}=1' \
    --min 'karpenter_interruption_deleted_messages_total=1' \
    --min 'karpenter_nodeclaims_disrupted_total{reason=Empty}=1' \
    --min 'karpenter_voluntary_disruption_decisions_total{decision=delete,reason=empty}=1' \
    --min 'karpenter_pods_startup_duration_seconds_count=30' \
    >"$tmp/metrics.txt" 2>&1; then
  ok "metrics: $(tail -1 "$tmp/metrics.txt")"
else
  fail "metrics parsed by prometheus_client's OpenMetrics parser" "$(grep -v '^ok' "$tmp/metrics.txt")"
fi
if $CAPSTAN bench provisioning --kubeconfig "$KUBECONFIG" --bursts 3 --pods 10 >"$tmp/bench.txt" 2>&1; then
  ok "capstan bench provisioning: $(grep '^p50' "$tmp/bench.txt" | tr -s ' ')"
else
  fail "capstan bench provisioning" "$(cat "$tmp/bench.txt")"
fi

echo "e2e sandbox: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
