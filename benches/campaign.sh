#!/usr/bin/env bash
# Campaign life-cycle benchmark on a 1,000,000-contact audience, on SQLite and (when a
# PostgreSQL URL is set) PostgreSQL:
#  - scheduling: a campaign is scheduled a few seconds ahead while `canvass worker` runs; the
#    time from its scheduled moment until it is seen queued (all its deliveries committed) is
#    measured from outside, by polling the database. Beside it, the same queueing run at once
#    by `campaign queue` on a copy, the engine's work without the wait for the schedule.
#  - the report: `campaign report ID --json` over its 1,000,000 deliveries, best of three, the
#    process's start included; beside it, the engine's own ceiling for the same work: the
#    report's GROUP BY run by sqlite3 or psql directly, and a bare count of the deliveries.
#
# usage: benches/campaign.sh [CONTACTS]    (default 1000000)
# PostgreSQL is measured when CANVASS_BENCH_POSTGRES_URL (or CANVASS_TEST_POSTGRES_URL) is set.
# KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v sqlite3 >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
}

contacts=${1:-1000000}
work=$(mktemp -d)
cleanup() { [ "${KEEP:-0}" = 1 ] && echo "kept $work" || rm -rf "$work"; }
trap cleanup EXIT

cargo build --release --quiet
canvass=$PWD/target/release/canvass
python3 benches/generate.py "$work/data" 100000 "$contacts" news

now_ms() { date +%s%3N; }

# Seconds (3 decimals) that a command takes, best of three.
best_of_three() {
    local best=
    for _ in 1 2 3; do
        local start end
        start=$(now_ms)
        "$@" >"$work/out"
        end=$(now_ms)
        local ms=$((end - start))
        if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
    done
    printf '%d.%03d' $((best / 1000)) $((best % 1000))
}

# The report's statement, as the store runs it (the store adds the groups up by constituency),
# for the engine's own client.
report_sql="SELECT state, constituency, bounced, complained, unsubscribed, count(*)
 FROM deliveries WHERE campaign_id = 1
 GROUP BY state, constituency, bounced, complained, unsubscribed"

bench_backend() { # name url query-command...
    local name=$1 url=$2
    shift 2
    local query=("$@")
    export CANVASS_DATABASE_URL=$url CANVASS_SIGNING_KEYS=bench:YmVuY2htYXJrLWJlbmNobWFyay1rZXk=
    "$canvass" migrate >/dev/null
    "$canvass" postcodes import "$work/data/onspd.csv" >/dev/null 2>&1
    "$canvass" contacts import "$work/data/contacts.csv" --source bench >/dev/null 2>&1
    for copy in 1 2; do
        "$canvass" campaign create --name "big $copy" --topic news --subject "Winter news" \
            --html benches/newsletter-10k.html >/dev/null
    done

    # Campaign 2, queued at once: the engine's work alone.
    local start end
    start=$(now_ms)
    "$canvass" campaign queue 2 >"$work/out"
    end=$(now_ms)
    echo "$name: campaign queue of $(cat "$work/out") deliveries: $((end - start)) ms"

    # Campaign 1, scheduled 5 s ahead while a worker runs (sending one message a second to a
    # port nobody listens on, so that the clock is spent on queueing).
    local at at_ms
    at_ms=$(($(now_ms) + 5000))
    at=$(date -u -d "@$((at_ms / 1000))" +%Y-%m-%dT%H:%M:%SZ)
    at_ms=$(($(date -u -d "$at" +%s) * 1000))
    "$canvass" campaign schedule 1 --at "$at" >/dev/null
    CANVASS_SEND_RATE=1 CANVASS_SMTP_URL=smtp://127.0.0.1:9 "$canvass" worker \
        >/dev/null 2>&1 &
    local worker=$!
    until [ "$("${query[@]}" "SELECT state FROM campaigns WHERE id = 1")" = queued ]; do
        sleep 0.05
    done
    local seen
    seen=$(now_ms)
    kill -TERM "$worker"
    wait "$worker" || true
    echo "$name: scheduled campaign seen queued $((seen - at_ms)) ms after its time" \
        "($("${query[@]}" "SELECT count(*) FROM deliveries WHERE campaign_id = 1") deliveries)"

    echo "$name: campaign report --json over $contacts deliveries: best $(best_of_three \
        "$canvass" campaign report 1 --json) s"
    echo "$name: the engine's own client, the same GROUP BY: best $(best_of_three \
        "${query[@]}" "$report_sql") s; a bare count: best $(best_of_three \
        "${query[@]}" "SELECT count(*) FROM deliveries WHERE campaign_id = 1") s"
    unset CANVASS_DATABASE_URL
}

db=$work/campaign.db
bench_backend sqlite "sqlite://$db" sqlite3 "$db"

pg=${CANVASS_BENCH_POSTGRES_URL:-${CANVASS_TEST_POSTGRES_URL:-}}
if [ -n "$pg" ]; then
    name=canvass_campaign_$$
    psql -q "$pg" -c "CREATE DATABASE $name" >/dev/null
    [ "${KEEP:-0}" = 1 ] && echo "keeping the database ${pg%/*}/$name" ||
        trap 'psql -q "$pg" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null; cleanup' EXIT
    bench_backend postgres "${pg%/*}/$name" psql -Atq "${pg%/*}/$name" -c
fi
