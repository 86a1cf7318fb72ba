# Common tasks. Every recipe is a plain script underneath, so nothing here needs `just` itself.

# Run every test, as CI does.
test:
    ./scripts/test.sh

# The main job (today: the CLI walk-through; later: the sandbox with a demo workload).
demo:
    ./scripts/demo.sh

# Install into the cluster of the current kubeconfig: CRDs, then capstan with fresh webhook certs.
install:
    kubectl apply -f manifests/crds/
    kubectl apply -f manifests/00-namespace.yaml -f manifests/10-rbac.yaml -f manifests/20-deployment.yaml
    cargo run --quiet -- certs | kubectl apply -f -

# Regenerate manifests/crds from the API types.
crds:
    cargo run --quiet -- crds > manifests/crds/crds.yaml

# Fuzz the parsers of outside input (AdmissionReviews, manifests, cron, durations, quantities,
# SQS messages): every target, or one, for SECONDS each (CI runs 10 s each). E.g.
# `just fuzz plan 600 --seed 42`; crashing inputs go to target/fuzz-crashes. Release speed, but
# with overflow checks and debug assertions: an overflow is a crash, as in CI's debug build.
fuzz TARGET="all" SECONDS="300" *ARGS:
    CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true cargo run --release --quiet -- fuzz {{TARGET}} --seconds {{SECONDS}} {{ARGS}}

# Benchmarks (criterion).
bench:
    cargo bench

# Webhook latency under load: the real server over TLS on loopback, 2,000 req/s for 10 s
# (prints p50 / p90 / p99 / max and errors; goal p99 < 2 ms, 0 errors).
bench-webhooks *ARGS:
    cargo run --release --quiet -- bench webhooks {{ARGS}}

# The chaos soak, long: churn and faults in the sandbox for SECONDS (CI runs 60 s of it), with
# every invariant checked continuously; SOAK_SEED=N replays a run's choices.
soak SECONDS="600":
    SOAK_SECONDS={{SECONDS}} cargo test --test integration soak -- --nocapture
