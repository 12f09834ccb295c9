#!/usr/bin/env bash
# Contact import, two builds alternating: each round imports the same contacts into a fresh
# database (already holding the same postcodes) with one build, then the other, so that the
# machine's drift falls on both alike. benches/import.sh runs each build once, against the
# engine's ceiling; this one compares two builds directly, which a noisy machine needs.
#
# usage: benches/import_ab.sh BEFORE AFTER [ROUNDS] [POSTCODES] [CONTACTS]
#        (defaults 3 rounds, 300000 postcodes, 200000 contacts)
# BEFORE and AFTER are canvass binaries (build an earlier commit in a worktree with its own
# CARGO_TARGET_DIR). SQLite always; PostgreSQL too when CANVASS_BENCH_POSTGRES_URL (or
# CANVASS_TEST_POSTGRES_URL) is set. Prints each round's rows/s, each build's mean and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

before=${1:?usage: benches/import_ab.sh BEFORE AFTER [ROUNDS] [POSTCODES] [CONTACTS]}
after=${2:?usage: benches/import_ab.sh BEFORE AFTER [ROUNDS] [POSTCODES] [CONTACTS]}
rounds=${3:-3}
postcodes=${4:-300000}
contacts=${5:-200000}
pg=${CANVASS_BENCH_POSTGRES_URL:-${CANVASS_TEST_POSTGRES_URL:-}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 benches/generate.py "$work" "$postcodes" "$contacts" >/dev/null

# Imports the contacts with binary $1 into a fresh database at URL $2; prints rows/s.
import_once() {
    local bin=$1 url=$2 journal="$work/journal.$RANDOM"
    export CANVASS_DATABASE_URL=$url CANVASS_JOURNAL=$journal
    local log="$work/log" start end
    {
        "$bin" migrate && "$bin" postcodes import "$work/onspd.csv"
    } >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    start=$(date +%s.%N)
    "$bin" contacts import "$work/contacts.csv" --source bench >"$log" 2>&1 ||
        { cat "$log" >&2; exit 1; }
    end=$(date +%s.%N)
    rm -f "$journal"
    python3 -c "print(round($contacts / ($end - $start)))"
}

# Runs the rounds on one engine: $1 its name, $2 a function making a fresh database's URL.
compare() {
    local engine=$1 fresh=$2 b a sum_b=0 sum_a=0
    for round in $(seq "$rounds"); do
        b=$(import_once "$before" "$($fresh before)")
        a=$(import_once "$after" "$($fresh after)")
        echo "$engine round $round: before $b rows/s, after $a rows/s"
        sum_b=$((sum_b + b))
        sum_a=$((sum_a + a))
    done
    python3 -c "b, a = $sum_b / $rounds, $sum_a / $rounds; \
print(f'$engine contacts import: before {b:.0f} rows/s, after {a:.0f} rows/s, ratio {a / b:.2f}')"
}

sqlite_db() {
    rm -rf "$work/$1" && mkdir -p "$work/$1"
    echo "sqlite://$work/$1/canvass.db"
}
compare sqlite sqlite_db

if [ -n "$pg" ]; then
    postgres_db() {
        local db="canvass_import_ab_$1"
        psql -q "$pg" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" \
            >/dev/null 2>&1
        echo "${pg%/*}/$db"
    }
    trap 'rm -rf "$work"; for d in before after; do psql -q "$pg" \
        -c "DROP DATABASE IF EXISTS canvass_import_ab_$d WITH (FORCE)" >/dev/null 2>&1; done' EXIT
    compare postgres postgres_db
fi
