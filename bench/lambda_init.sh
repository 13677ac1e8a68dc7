#!/usr/bin/env bash
# The Lambda init benchmark: release builds of the `projector` and `scheduler` Lambdas and of the
# program, then 50 cold starts of each through the Runtime API emulator, timed from process spawn
# to the first Runtime API request (p50/p99). Needs no database or AWS emulator. Extra arguments
# go to the program, e.g. `bench/lambda_init.sh --runs 200`; `--help` lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/marquee-target}"

cargo build --quiet --release -p lambdas
cargo build --quiet --release -p marquee-bench --bin lambda_init
exec "$CARGO_TARGET_DIR/release/lambda_init" \
    --projector "$CARGO_TARGET_DIR/release/projector" \
    --scheduler "$CARGO_TARGET_DIR/release/scheduler" "$@"
