#!/usr/bin/env bash
# Import benchmark: rows/s and peak RSS for `canvass postcodes import` and `canvass contacts
# import` on SQLite and PostgreSQL, each against the engine's own bulk loader on the same file in
# the same run (sqlite3 .import, psql \copy) so that the figures compare across noisy machines.
#
# usage: benches/import.sh [POSTCODES] [CONTACTS]    (defaults 2700000 and 1000000)
# PostgreSQL is measured when CANVASS_BENCH_POSTGRES_URL (or CANVASS_TEST_POSTGRES_URL) is set.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sqlite3 >/dev/null || missing+=(sqlite3)
[ -x /usr/bin/time ] || missing+=(time)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

postcodes=${1:-2700000}
contacts=${2:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
canvass=$PWD/target/release/canvass
echo "generating $postcodes postcodes and $contacts contacts in $work"
python3 benches/generate.py "$work" "$postcodes" "$contacts"
ls -l "$work"

# Runs a command; prints "SECONDS PEAK_KB".
measure() {
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
        cat "$work/out" "$work/err"; exit 1; }
    cat "$work/time"
}

report() { # label rows seconds peak_kb baseline_seconds
    awk -v label="$1" -v rows="$2" -v s="$3" -v kb="$4" -v base="$5" 'BEGIN {
        printf "%-34s %9.0f rows/s  peak RSS %4.0f MB  %.2fx the bulk loader\n",
            label, rows / s, kb / 1024, base / s }'
}

bench_backend() { # name url
    local name=$1 url=$2
    CANVASS_DATABASE_URL=$url "$canvass" migrate >/dev/null
    read -r s kb < <(CANVASS_DATABASE_URL=$url measure "$canvass" postcodes import "$work/onspd.csv")
    tail -1 "$work/out"
    local pc_s=$s pc_kb=$kb
    read -r s kb < <(CANVASS_DATABASE_URL=$url measure "$canvass" contacts import "$work/contacts.csv" --source bench)
    tail -1 "$work/out"
    local c_s=$s c_kb=$kb
    # The baselines: the engine's own loader, into tables of the same shape.
    if [ "$name" = sqlite ]; then
        local db=${url#sqlite://}
        sqlite3 "$db" "CREATE TABLE bulk_postcodes (pcd, pcd2, pcds PRIMARY KEY, dointr, doterm, oscty, ced, oslaua, osward, parish, usertype, oseast1m, osnrth1m, osgrdind, ctry, rgn, pcon, eer, ttwa, lat, long, imd) WITHOUT ROWID; CREATE TABLE bulk_contacts (email PRIMARY KEY, name, postcode, date_of_birth, guardian_consent, topics, consent_at, consent_source);"
        read -r pb _ < <(measure sqlite3 "$db" ".mode csv" ".import --skip 1 $work/onspd.csv bulk_postcodes")
        read -r cb _ < <(measure sqlite3 "$db" ".mode csv" ".import --skip 1 $work/contacts.csv bulk_contacts")
    else
        psql -q "$url" -c "CREATE TABLE bulk_postcodes (pcd text, pcd2 text, pcds text PRIMARY KEY, dointr text, doterm text, oscty text, ced text, oslaua text, osward text, parish text, usertype text, oseast1m text, osnrth1m text, osgrdind text, ctry text, rgn text, pcon text, eer text, ttwa text, lat text, long text, imd text); CREATE TABLE bulk_contacts (email text PRIMARY KEY, name text, postcode text, date_of_birth text, guardian_consent text, topics text, consent_at text, consent_source text);"
        read -r pb _ < <(measure psql -q "$url" -c "\\copy bulk_postcodes FROM '$work/onspd.csv' CSV HEADER")
        read -r cb _ < <(measure psql -q "$url" -c "\\copy bulk_contacts FROM '$work/contacts.csv' CSV HEADER")
    fi
    report "$name postcodes import" "$postcodes" "$pc_s" "$pc_kb" "$pb"
    report "$name contacts import" "$contacts" "$c_s" "$c_kb" "$cb"
}

echo "== sqlite"
bench_backend sqlite "sqlite://$work/bench.db"

pg=${CANVASS_BENCH_POSTGRES_URL:-${CANVASS_TEST_POSTGRES_URL:-}}
if [ -n "$pg" ]; then
    echo "== postgres"
    db=canvass_bench_$$
    psql -q "$pg" -c "CREATE DATABASE $db"
    trap 'psql -q "$pg" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; rm -rf "$work"' EXIT
    bench_backend postgres "${pg%/*}/$db"
else
    echo "== postgres: skipped (set CANVASS_BENCH_POSTGRES_URL)"
fi
