#!/usr/bin/env bash
# The soak as the README quotes it: release builds of marquee and the benchmark, then `marquee
# serve` (embedded profile) under a steady mixed load for 10 minutes, sampling its memory and the
# projection lag every 10 s. Extra arguments go to the program, e.g. `bench/soak.sh --seconds 60`
# for a short run or `--json soak.json`; `--help` lists them. Exits 1 on any error.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/marquee-target}"

cargo build --quiet --release -p marquee -p marquee-bench
exec "$CARGO_TARGET_DIR/release/soak" --marquee "$CARGO_TARGET_DIR/release/marquee" "$@"
