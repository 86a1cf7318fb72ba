#!/usr/bin/env bash
# Regenerates the embedded instance-type catalog in data/catalog/ (instance-types.json,
# on-demand-prices.json, instance-type-offerings.json) with data/catalog/build_dataset.py.
#
# Not run by the build, the tests or CI: it needs sources on disk that the repo does not carry.
#   KARPENTER_GIT  a git checkout (or bare git dir) of github.com/aws/karpenter-provider-aws;
#                  its HEAD is read with `git show` (pricing, ENI limits, bandwidth, docs tables)
#   MOTO_WHEEL     a moto wheel from PyPI, e.g. `pip download --no-deps moto==5.2.5`
#                  (DescribeInstanceTypes data and per-zone offerings)
#   MOTO_WHEEL_OLD optional older moto wheel (e.g. 5.0.28) for retired types the new one lacks
#
# Usage: scripts/refresh-catalog.sh KARPENTER_GIT MOTO_WHEEL [MOTO_WHEEL_OLD]
# Then review `git diff --stat data/catalog`, run `cargo test --lib cloud::`, and update the
# source commits and dates in data/catalog/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
karpenter_git=$1
moto_wheel=$2
moto_wheel_old=${3:-}

[ -d "$karpenter_git" ] || { echo "refresh-catalog: $karpenter_git is not a directory" >&2; exit 1; }
[ -f "$moto_wheel" ] || { echo "refresh-catalog: $moto_wheel not found" >&2; exit 1; }
command -v python3 >/dev/null || { echo "refresh-catalog: python3 not found" >&2; exit 1; }

# Build into a scratch directory first so that a failed run leaves data/catalog untouched.
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=(--karpenter-git "$karpenter_git" --moto-wheel "$moto_wheel" --out "$out")
if [ -n "$moto_wheel_old" ]; then
  [ -f "$moto_wheel_old" ] || { echo "refresh-catalog: $moto_wheel_old not found" >&2; exit 1; }
  args+=(--moto-wheel-old "$moto_wheel_old")
fi
python3 data/catalog/build_dataset.py "${args[@]}"

for f in instance-types.json on-demand-prices.json instance-type-offerings.json; do
  [ -s "$out/$f" ] || { echo "refresh-catalog: $f was not produced" >&2; exit 1; }
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$out/$f"
  cp "$out/$f" "data/catalog/$f"
done
echo "refresh-catalog: data/catalog updated; now run: git diff --stat data/catalog && cargo test --lib cloud::"
