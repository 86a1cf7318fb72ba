#!/usr/bin/env bash
# Every test capstan has, as CI runs them: formatting, lints, unit and integration tests, the
# manifest validator and the end-to-end CLI checks. Installs what it needs (Python venv with the
# validator) on a fresh machine. With CI=true a missing tool fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# CI builds once from clean: incremental caches would only take disk (GBs) and time.
[ "${CI:-}" = "true" ] && export CARGO_INCREMENTAL=0

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo --version

step "python venv (.venv): kubernetes-validate, kubectl"
scripts/venv.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
# Benches are not run here (they are timed runs: `just bench`); clippy still checks them.
cargo test --workspace --lib --bins --tests 2>&1 | tee "$results"
# Count what cargo ran, for the closing line.
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p+0, f+0 }' "$results")

# Bad input: every fuzz target for FUZZ_SECONDS (a fresh seed each run, printed so that a
# failure reproduces with --seed); crashing, slow and hanging inputs land in
# ${CARGO_TARGET_DIR:-target}/fuzz-crashes. Longer runs: `just fuzz`.
step "fuzz: every target for ${FUZZ_SECONDS:=10} s"
"${CARGO_TARGET_DIR:-target}/debug/capstan" fuzz all --seconds "$FUZZ_SECONDS"

step "manifests against the Kubernetes schemas"
scripts/validate-manifests.sh

step "end-to-end: the CLI as a user runs it"
CAPSTAN_BIN="${CARGO_TARGET_DIR:-target}/debug/capstan" e2e/cli.sh

step "end-to-end: capstan sandbox with kubectl (provisioning, drain, bench)"
CAPSTAN_BIN="${CARGO_TARGET_DIR:-target}/debug/capstan" e2e/sandbox.sh

echo
echo "all checks passed in $(( $(date +%s) - start ))s (cargo: ${passed} passed, ${failed} failed)"
