#!/usr/bin/env bash
# Import benchmark: rows/s and peak RSS for `canvass postcodes import` and `canvass contacts
# import` on SQLite and PostgreSQL, each against the engine's own bulk loader on the same file in
# the same run (sqlite3 .import, psql \copy) so that the figures compare across noisy machines.
#
# usage: benches/import.sh [POSTCODES] [CONTACTS]    (defaults 2700000 and 1000000)
# PostgreSQL is measured when CANVASS_BENCH_POSTGRES_URL (or CANVASS_TEST_POSTGRES_URL) is set.
# CANVASS=PATH measures another canvass binary (an earlier build) instead of building this tree:
# compare two builds by their ratios to the bulk loader, measured in each run.
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

canvass=${CANVASS:-}
if [ -z "$canvass" ]; then
    cargo build --release --quiet
    canvass=$PWD/target/release/canvass
fi
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

# The schema's ceiling: the engine itself loads the contacts file into canvass's own tables, with
# canvass's keys (a time-ordered public id, the address's SHA-256 in hex) and each contact's
# constituency, and one consent ledger row per topic (the triggers keeping the consents in force
# and the counts fire as they do for canvass), by its own bulk loader (.import, \copy) and one
# INSERT ... SELECT per table in one transaction, checking nothing. It runs with the settings
# canvass's connections have (src/store/mod.rs: WAL, synchronous NORMAL, the page cache, secure
# delete, temporary files on disk): the best the engine does with them. No importer on this
# schema can beat it; canvass also upserts, refuses erased addresses, applies the consent rules,
# reports by line and commits as it goes. `SQLITE_CACHE` is canvass's page cache (KiB, negative).
SQLITE_CACHE=${SQLITE_CACHE:--16384}
ceiling_sqlite_sql() { # pragmas
    cat <<SQL
$1
CREATE TEMP TABLE raw (email, name, postcode, date_of_birth, guardian_consent, topics, consent_at, consent_source);
.mode csv
.import --skip 1 $work/contacts.csv raw
BEGIN;
INSERT INTO contacts (public_id, email, email_hash, name, postcode, date_of_birth, source, created_at, updated_at, constituency_code)
SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(x, 1, 3) || '-' || substr(x, 4, 4) || '-' || substr(x, 8, 12),
       email, lower(hex(sha3(lower(email), 256))), name, postcode, date_of_birth, 'bench', 'now', 'now',
       (SELECT p.constituency_code FROM postcodes p WHERE p.postcode = r.postcode)
FROM (SELECT printf('%012x', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) + rowid) AS h,
             lower(hex(randomblob(10))) AS x, * FROM raw) r;
INSERT INTO consent_ledger (contact_id, topic_id, granted, source, at, recorded_at)
SELECT c.id, t.id, TRUE, 'bench', r.consent_at, 'now'
FROM raw r JOIN contacts c ON c.email_hash = lower(hex(sha3(lower(r.email), 256)))
JOIN topics t ON instr(';' || r.topics || ';', ';' || t.slug || ';') > 0;
COMMIT;
SQL
}
# canvass's settings, and the engine's fastest: all in memory, nothing synced.
sqlite_settings="PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
PRAGMA secure_delete = ON; PRAGMA temp_store = FILE; PRAGMA cache_size = $SQLITE_CACHE;"
sqlite_unbounded="PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = ON;
PRAGMA temp_store = MEMORY; PRAGMA cache_size = -1048576;"

ceiling_postgres_sql() {
    cat <<SQL
CREATE TEMP TABLE raw (email text, name text, postcode text, date_of_birth date, guardian_consent text, topics text, consent_at timestamptz, consent_source text);
\copy raw FROM '$work/contacts.csv' CSV HEADER
BEGIN;
INSERT INTO contacts (public_id, email, email_hash, name, postcode, date_of_birth, source, created_at, updated_at, constituency_code)
SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || substr(gen_random_uuid()::text, 14),
       email, encode(sha256(convert_to(lower(email), 'UTF8')), 'hex'), name, postcode, date_of_birth, 'bench', now(), now(),
       (SELECT p.constituency_code FROM postcodes p WHERE p.postcode = r.postcode)
FROM (SELECT lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint
                         + row_number() OVER ()), 12, '0') AS h, * FROM raw) r;
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
    # The schema's ceiling, in a database of its own (with the directory, as canvass's has).
    local ceiling_url=$3 cu=
    CANVASS_DATABASE_URL=$ceiling_url "$canvass" migrate >/dev/null
    CANVASS_DATABASE_URL=$ceiling_url "$canvass" postcodes import "$work/onspd.csv" >/dev/null
    if [ "$name" = sqlite ]; then
        local ceiling_db=${ceiling_url#sqlite://}
        cp "$ceiling_db" "$work/empty.db"
        ceiling_sqlite_sql "$sqlite_settings" >"$work/ceiling.sql"
        read -r cc _ < <(measure sqlite3 "$ceiling_db" <"$work/ceiling.sql")
        # The engine unbounded, for scale: a gigabyte of cache, no journal, nothing synced.
        mv "$work/empty.db" "$ceiling_db"
        rm -f "$ceiling_db-wal" "$ceiling_db-shm"
        ceiling_sqlite_sql "$sqlite_unbounded" >"$work/ceiling.sql"
        read -r cu _ < <(measure sqlite3 "$ceiling_db" <"$work/ceiling.sql")
    else
        ceiling_postgres_sql >"$work/ceiling.sql"
        read -r cc _ < <(measure psql -q -v ON_ERROR_STOP=1 "$ceiling_url" -f "$work/ceiling.sql")
    fi
    report "$name postcodes import" "$postcodes" "$pc_s" "$pc_kb" "$pb" "the bulk loader"
    report "$name contacts import" "$contacts" "$c_s" "$c_kb" "$cb" "the bulk loader"
    report "$name contacts import" "$contacts" "$c_s" "$c_kb" "$cc" "the schema's ceiling"
    [ -n "$cu" ] && report "$name contacts import" "$contacts" "$c_s" "$c_kb" "$cu" \
        "the engine unbounded (1 GB cache, no journal)"
    awk -v c="$c_s" -v cc="$cc" -v kb="$c_kb" -v name="$name" 'BEGIN {
        printf "target 1 (%s): import at %.2f of the schema ceiling (wanted 0.80) %s; peak RSS %.0f MB (wanted < 100) %s\n",
            name, cc / c, (cc / c >= 0.8 ? "met" : "MISSED"), kb / 1024, (kb < 102400 ? "met" : "MISSED") }'
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
