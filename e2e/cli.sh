#!/usr/bin/env bash
# End-to-end checks of the capstan CLI, run the way a person runs it: real files in, exit codes
# and messages out.
set -uo pipefail
cd "$(dirname "$0")/.."
# scripts/test.sh passes the binary `cargo test` just built (a plain `cargo build` would rebuild
# much of the tree: dev-dependencies unify features differently).
if [ -n "${CAPSTAN_BIN:-}" ] && [ -x "$CAPSTAN_BIN" ]; then
  CAPSTAN=$CAPSTAN_BIN
else
  cargo build --quiet --bin capstan || exit 1
  CAPSTAN="${CARGO_TARGET_DIR:-target}/debug/capstan"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

ok()   { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; shift; printf '     %s\n' "$@"; failed=$((failed + 1)); }

# expect NAME EXIT_CODE PATTERN -- CMD...: runs CMD, checks its exit code and that stdout+stderr match PATTERN.
expect() {
  local name=$1 code=$2 pattern=$3; shift 4
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$code" ]; then fail "$name" "exit $rc, wanted $code" "$(echo "$out" | tail -5)"; return; fi
  if ! grep -qE -- "$pattern" <<<"$out"; then fail "$name" "output lacks /$pattern/" "$(echo "$out" | tail -5)"; return; fi
  ok "$name"
}

expect "check accepts the examples" 0 "documents checked, 0 errors" -- $CAPSTAN check -f manifests/examples
expect "check accepts the install manifests" 0 "documents checked, 0 errors" -- $CAPSTAN check -f manifests
expect "check names file, line, document and path of a misspelled field" 1 \
  "broken-nodepool.yaml:17: document 2: spec.template.spec.requirments: unknown field" -- $CAPSTAN check -f e2e/fixtures/broken-nodepool.yaml
expect "check reports a wrong type with its path" 1 "spec.weight: invalid type" -- $CAPSTAN check -f e2e/fixtures/wrong-type.yaml
expect "check reports tab indentation with its line" 1 "tabs.yaml:5: .*tab" -- $CAPSTAN check -f e2e/fixtures/tabs.yaml
expect "check sends older APIs to convert" 1 "capstan convert" -- $CAPSTAN check -f e2e/fixtures/legacy/provisioner-v1alpha5.yaml
expect "check reports a missing file" 1 "no such file" -- $CAPSTAN check -f e2e/fixtures/nonexistent.yaml

# convert: v1 on stdout (which check then accepts), notes on stderr.
if $CAPSTAN convert -f e2e/fixtures/legacy >"$tmp/v1.yaml" 2>"$tmp/notes.txt"; then
  if grep -q "consolidationPolicy: WhenEmpty$" "$tmp/v1.yaml" && grep -q "consolidateAfter: 30s" "$tmp/v1.yaml" \
     && grep -q "ttlSecondsAfterEmpty" "$tmp/notes.txt"; then
    ok "convert maps ttlSecondsAfterEmpty and says so on stderr"
  else
    fail "convert maps ttlSecondsAfterEmpty and says so on stderr" "$(head -20 "$tmp/v1.yaml")" "$(cat "$tmp/notes.txt")"
  fi
  expect "converted output passes check" 0 "0 errors" -- $CAPSTAN check -f "$tmp/v1.yaml"
else
  fail "convert exits 0 on the legacy fixtures" "$(cat "$tmp/notes.txt")"
fi

expect "convert rejects a misspelled field with its line, and still prints the rest" 1 \
  "provisioner.yaml:8: document 1: spec.ttlSecondAfterEmpty: unknown field" -- $CAPSTAN convert -f e2e/fixtures/legacy-typo
expect "convert reports a wrong type with its path" 1 "spec.weight: expected an integer" -- \
  bash -c "sed 's/weight: 10/weight: high/' e2e/fixtures/legacy/provisioner-v1alpha5.yaml > $tmp/w.yaml && $CAPSTAN convert -f $tmp/w.yaml"

expect "crds output is what manifests/crds holds" 0 "^$" -- bash -c "diff <($CAPSTAN crds) manifests/crds/crds.yaml"

# certs: a Secret and the webhook configurations with the CA injected; the stream is valid Kubernetes.
if $CAPSTAN certs --san 127.0.0.1 --out "$tmp/certs" >"$tmp/certs.yaml" 2>"$tmp/certs.err"; then
  if grep -q "kubernetes.io/tls" "$tmp/certs.yaml" && ! grep -qE 'caBundle: (""|'"''"')?$' "$tmp/certs.yaml" \
     && [ -f "$tmp/certs/tls.key" ] && [ "$(stat -c %a "$tmp/certs/tls.key")" = 600 ]; then
    ok "certs prints the Secret and injects every caBundle; key file is 0600"
  else
    fail "certs prints the Secret and injects every caBundle; key file is 0600" "$(grep -n caBundle "$tmp/certs.yaml" | head)"
  fi
  if [ -x .venv/bin/kubernetes-validate ]; then
    expect "certs output passes kubernetes-validate" 0 "" -- .venv/bin/kubernetes-validate --strict "$tmp/certs.yaml"
  elif [ "${CI:-}" = "true" ]; then
    fail "certs output passes kubernetes-validate" "kubernetes-validate missing in CI (run scripts/venv.sh)"
  else
    echo "skip certs output validation: .venv/bin/kubernetes-validate missing (run scripts/venv.sh)"
  fi
else
  fail "certs exits 0" "$(cat "$tmp/certs.err")"
fi
expect "certs rejects a bad service name" 1 "service" -- $CAPSTAN certs --service "Bad_Name"

echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
