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

report() { # label rows seconds peak_kb baseline_seconds baseline_name
    awk -v label="$1" -v rows="$2" -v s="$3" -v kb="$4" -v base="$5" -v name="$6" 'BEGIN {
        printf "%-28s %9.0f rows/s  peak RSS %4.0f MB  %.2fx %s\n",
            label, rows / s, kb / 1024, base / s, name }'
}

# The schema's ceiling: the engine itself loads the contacts file into canvass's own tables
# (contacts with their two unique random keys, and one consent ledger row per topic) with one
# INSERT ... SELECT per table in one transaction, checking nothing. No importer on this schema
# can beat it; canvass also upserts, applies the consent rules and reports by line.
ceiling_sqlite_sql() {
    cat <<SQL
PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16384;
CREATE TEMP TABLE raw (email, name, postcode, date_of_birth, guardian_consent, topics, consent_at, consent_source);
.mode csv
.import --skip 1 $work/contacts.csv raw
BEGIN;
INSERT INTO contacts (public_id, email, email_hash, name, postcode, date_of_birth, source, created_at, updated_at)
SELECT lower(hex(randomblob(16))), email, sha3(lower(email), 256), name, postcode, date_of_birth, 'bench', 'now', 'now' FROM raw;
INSERT INTO consent_ledger (contact_id, topic_id, granted, source, at, recorded_at)
SELECT c.id, t.id, TRUE, 'bench', r.consent_at, 'now'
FROM raw r JOIN contacts c ON c.email_hash = sha3(lower(r.email), 256)
JOIN topics t ON instr(';' || r.topics || ';', ';' || t.slug || ';') > 0;
COMMIT;
SQL
}

ceiling_postgres_sql() {
    cat <<SQL
CREATE TEMP TABLE raw (email text, name text, postcode text, date_of_birth date, guardian_consent text, topics text, consent_at timestamptz, consent_source text);
\copy raw FROM '$work/contacts.csv' CSV HEADER
BEGIN;
INSERT INTO contacts (public_id, email, email_hash, name, postcode, date_of_birth, source, created_at, updated_at)
SELECT gen_random_uuid()::text, email, encode(sha256(convert_to(lower(email), 'UTF8')), 'hex'), name, postcode, date_of_birth, 'bench', now(), now() FROM raw;
INSERT INTO consent_ledger (contact_id, topic_id, granted, source, at, recorded_at)
SELECT c.id, t.id, TRUE, 'bench', r.consent_at, now()
FROM raw r JOIN contacts c ON c.email_hash = encode(sha256(convert_to(lower(r.email), 'UTF8')), 'hex')
JOIN topics t ON t.slug = ANY (string_to_array(r.topics, ';'));
COMMIT;
SQL
}

bench_backend() { # name url ceiling_url
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
    # The schema's ceiling, in a database of its own.
    local ceiling_url=$3
    CANVASS_DATABASE_URL=$ceiling_url "$canvass" migrate >/dev/null
    if [ "$name" = sqlite ]; then
        ceiling_sqlite_sql >"$work/ceiling.sql"
        read -r cc _ < <(measure sqlite3 "${ceiling_url#sqlite://}" <"$work/ceiling.sql")
    else
        ceiling_postgres_sql >"$work/ceiling.sql"
        read -r cc _ < <(measure psql -q -v ON_ERROR_STOP=1 "$ceiling_url" -f "$work/ceiling.sql")
    fi
    report "$name postcodes import" "$postcodes" "$pc_s" "$pc_kb" "$pb" "the bulk loader"
    report "$name contacts import" "$contacts" "$c_s" "$c_kb" "$cb" "the bulk loader"
    report "$name contacts import" "$contacts" "$c_s" "$c_kb" "$cc" "the schema's ceiling"
}

echo "== sqlite"
bench_backend sqlite "sqlite://$work/bench.db" "sqlite://$work/ceiling.db"

pg=${CANVASS_BENCH_POSTGRES_URL:-${CANVASS_TEST_POSTGRES_URL:-}}
if [ -n "$pg" ]; then
    echo "== postgres"
    db=canvass_bench_$$
    psql -q "$pg" -c "CREATE DATABASE $db" -c "CREATE DATABASE ${db}_ceiling"
    trap 'psql -q "$pg" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS ${db}_ceiling WITH (FORCE)"; rm -rf "$work"' EXIT
    bench_backend postgres "${pg%/*}/$db" "${pg%/*}/${db}_ceiling"
else
    echo "== postgres: skipped (set CANVASS_BENCH_POSTGRES_URL)"
fi
