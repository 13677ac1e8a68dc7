#!/usr/bin/env bash
# The command-API benchmark as the README quotes it: release builds of marquee and the benchmark,
# POST /api/movies at 32 clients through `marquee serve` in the embedded and aws profiles, 5 s per
# run. Extra arguments go to the program, e.g. `bench/api.sh --json out.json`; `--help` lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/marquee-target}"

if ! mysqladmin -uroot -h127.0.0.1 ping >/dev/null 2>&1; then
    echo "api.sh: MariaDB does not answer on 127.0.0.1:3306 (mysqladmin -uroot -h127.0.0.1 ping)." >&2
    echo "Start it first, e.g. 'service mariadb start'." >&2
    exit 1
fi
if ! curl -s -o /dev/null --max-time 5 http://127.0.0.1:5000/; then
    echo "api.sh: moto (the S3 emulator) does not answer on http://127.0.0.1:5000." >&2
    echo "Start it first, e.g. 'moto_server -p 5000 &'." >&2
    exit 1
fi

cargo build --quiet --release -p marquee -p marquee-bench
exec "$CARGO_TARGET_DIR/release/api" --marquee "$CARGO_TARGET_DIR/release/marquee" "$@"
