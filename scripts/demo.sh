#!/usr/bin/env bash
# The main job, as far as capstan goes today: build, then walk through what a platform team does
# first — check their manifests, convert older ones, generate CRDs and webhook certificates.
# (`capstan sandbox --demo`, the whole system on one machine, replaces this once it exists.)
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
