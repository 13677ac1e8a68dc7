#!/usr/bin/env bash
# The GraphQL benchmark as the README quotes it: release builds of marquee and the benchmark, the
# Apollo Server contender's npm packages (npm ci, from bench/apollo/package-lock.json), then
# movies(first: 20, filter: {search: …}) over 100,000 movies on MariaDB at 64 clients through
# `marquee serve`, a bare axum handler (the limit) and Apollo Server, 10 s each. Extra arguments go
# to the program, e.g. `bench/graphql.sh --json out.json`; `--help` lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/marquee-target}"

if ! mysqladmin -uroot -h127.0.0.1 ping >/dev/null 2>&1; then
    echo "graphql.sh: MariaDB does not answer on 127.0.0.1:3306 (mysqladmin -uroot -h127.0.0.1 ping)." >&2
    echo "Start it first, e.g. 'service mariadb start'." >&2
    exit 1
fi
if ! curl -s -o /dev/null --max-time 5 http://127.0.0.1:5000/; then
    echo "graphql.sh: moto (the AWS emulator the aws profile talks to) does not answer on http://127.0.0.1:5000." >&2
    echo "Start it first, e.g. 'moto_server -H 127.0.0.1 -p 5000 &'." >&2
    exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "graphql.sh: Node.js and npm are needed for the Apollo Server contender." >&2
    exit 1
fi

# Only when the lock file changed since the last install: npm ci starts from scratch each time.
if [ ! -f bench/apollo/node_modules/.package-lock.json ] ||
   [ bench/apollo/package-lock.json -nt bench/apollo/node_modules/.package-lock.json ]; then
    (cd bench/apollo && npm ci --no-audit --no-fund --loglevel=error)
fi
cargo build --quiet --release -p marquee -p marquee-bench
exec "$CARGO_TARGET_DIR/release/graphql" --marquee "$CARGO_TARGET_DIR/release/marquee" \
    --apollo bench/apollo "$@"
