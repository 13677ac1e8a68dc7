#!/usr/bin/env bash
# The pipeline benchmarks as the README quotes them: release builds of marquee and the benchmark,
# then (1) end-to-end lag, command accepted → visible in the read model, at 200 commands/s in the
# embedded and aws profiles, and (2) the replay rate of the read models over 1,000,000 events on
# MariaDB against a raw stream of the same rows. `bench/pipeline.sh lag ARGS…` or
# `bench/pipeline.sh replay ARGS…` runs one of them with its own arguments (`lag --help`,
# `replay --help` list them, e.g. `replay --rounds 3 --breakdown always --json replay.json`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/marquee-target}"

if ! mysqladmin -uroot -h127.0.0.1 ping >/dev/null 2>&1; then
    echo "pipeline.sh: MariaDB does not answer on 127.0.0.1:3306 (mysqladmin -uroot -h127.0.0.1 ping)." >&2
    echo "Start it first, e.g. 'service mariadb start'." >&2
    exit 1
fi
if ! curl -s -o /dev/null --max-time 5 http://127.0.0.1:5000/; then
    echo "pipeline.sh: moto (the AWS emulator) does not answer on http://127.0.0.1:5000." >&2
    echo "Start it first, e.g. 'moto_server -H 127.0.0.1 -p 5000 &'." >&2
    exit 1
fi

cargo build --quiet --release -p marquee -p marquee-bench
pipeline="$CARGO_TARGET_DIR/release/pipeline"
marquee="$CARGO_TARGET_DIR/release/marquee"
case "${1:-}" in
    lag) shift; exec "$pipeline" lag --marquee "$marquee" "$@" ;;
    replay) shift; exec "$pipeline" replay "$@" ;;
    "") "$pipeline" lag --marquee "$marquee"; exec "$pipeline" replay ;;
    *) echo "usage: bench/pipeline.sh [lag|replay [ARGS…]]" >&2; exit 2 ;;
esac
