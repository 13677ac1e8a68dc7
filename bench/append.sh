#!/usr/bin/env bash
# The append benchmark as the README quotes it: release build, MariaDB and SQLite, 1, 8 and 32
# writers, 5 s per run. Extra arguments go to the program, e.g. `bench/append.sh --json out.json`;
# `--help` lists them all.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! mysqladmin -uroot -h127.0.0.1 ping >/dev/null 2>&1; then
    echo "append.sh: MariaDB does not answer on 127.0.0.1:3306 (mysqladmin -uroot -h127.0.0.1 ping)." >&2
    echo "Start it first, e.g. 'service mariadb start'." >&2
    exit 1
fi

exec cargo run --quiet --release -p marquee-bench --bin append -- "$@"
