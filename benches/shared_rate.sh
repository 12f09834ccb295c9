#!/usr/bin/env bash
# One rate for the whole installation: two `canvass worker --drain` processes on one database,
# each with CANVASS_SEND_RATE=R, send a campaign into an SMTP server that logs the moment it
# accepts each message (tests/support/smtpd.py, aiosmtpd). Printed: the rate measured at the
# server over the whole send, as a ratio to R (the target: within 10%), and, in the same run,
# one worker alone at the same setting (the same ratio, the baseline). Before the rate was kept
# in the database, two workers sent 2R together.
#
# usage: benches/shared_rate.sh [MESSAGES] [RATE]    (defaults 600 and 20: 30 s of sending)
# PostgreSQL is measured too when CANVASS_BENCH_POSTGRES_URL (or CANVASS_TEST_POSTGRES_URL) is
# set. KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."

/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-aiosmtpd >/dev/null; }

messages=${1:-600}
rate=${2:-20}
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    [ "${KEEP:-0}" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet
canvass=$PWD/target/release/canvass

# The server: every accepted message a line of JSON with its time.
echo "{\"host\": \"127.0.0.1\", \"port\": 0, \"log\": \"$work/accepted.jsonl\"}" >"$work/server.json"
coproc SERVER { exec /usr/bin/python3 tests/support/smtpd.py --config "$work/server.json"; }
server_pid=$SERVER_PID
read -r ready port <&"${SERVER[0]}"
[ "$ready" = READY ] || { echo "the SMTP server did not start"; exit 1; }

python3 - "$messages" >"$work/contacts.csv" <<'PY'
import csv, sys
postcodes = [row["postcode"] for row in csv.DictReader(open("examples/postcodes.csv"))]
print("email,name,postcode,topics,consent_at")
for i in range(int(sys.argv[1])):
    print(f"person{i}@example.org,Person {i},{postcodes[i % len(postcodes)]},news,2026-10-01T12:00:00Z")
PY

# Queues a fresh campaign on database URL $1.
queue() {
    export CANVASS_DATABASE_URL=$1 CANVASS_SIGNING_KEYS=bench:YmVuY2htYXJrLWJlbmNobWFyay1rZXk=
    export CANVASS_JOURNAL=$work/${1##*/}.journal
    "$canvass" migrate >/dev/null 2>&1
    "$canvass" postcodes import examples/postcodes.csv >/dev/null
    "$canvass" contacts import "$work/contacts.csv" --source bench >/dev/null 2>&1
    echo "<p>Dear {{contact.name}}</p>" >"$work/campaign.html"
    id=$("$canvass" campaign create --name bench --topic news --subject "Winter news" \
        --html "$work/campaign.html")
    "$canvass" campaign queue "$id" >/dev/null
}

# Sends the campaign queued on $1 with $2 workers; prints the rate measured at the server.
send_with() { # url workers
    local url=$1 workers=$2 pids=()
    : >"$work/accepted.jsonl"
    queue "$url"
    for _ in $(seq "$workers"); do
        CANVASS_SMTP_URL="smtp://127.0.0.1:$port" CANVASS_SEND_RATE=$rate \
            CANVASS_SEND_CONCURRENCY=4 "$canvass" worker --drain >/dev/null 2>"$work/worker.err" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    unset CANVASS_DATABASE_URL CANVASS_JOURNAL
    python3 - "$work/accepted.jsonl" <<'PY'
import json, sys
times = sorted(e["t"] for e in map(json.loads, open(sys.argv[1])) if e["event"] == "accepted")
print(len(times), (len(times) - 1) / (times[-1] - times[0]))
PY
}

bench() { # name url-maker
    local name=$1 make_url=$2 n1 r1 n2 r2
    read -r n1 r1 < <(send_with "$("$make_url" one)" 1)
    read -r n2 r2 < <(send_with "$("$make_url" two)" 2)
    awk -v name="$name" -v rate="$rate" -v n1="$n1" -v r1="$r1" -v n2="$n2" -v r2="$r2" 'BEGIN {
        printf "%-9s CANVASS_SEND_RATE=%s   one worker %6.2f msg/s (%d sent): ratio %.3f   two workers %6.2f msg/s (%d sent): ratio %.3f (target within 0.9-1.1)\n",
            name, rate, r1, n1, r1 / rate, r2, n2, r2 / rate }'
}

sqlite_url() { echo "sqlite://$work/$1.db"; }
bench sqlite sqlite_url

postgres=${CANVASS_BENCH_POSTGRES_URL:-${CANVASS_TEST_POSTGRES_URL:-}}
if [ -n "$postgres" ]; then
    postgres_url() {
        local name="canvass_rate_$1_$$"
        psql -q "$postgres" -c "CREATE DATABASE $name" >/dev/null
        echo "${postgres%/*}/$name"
    }
    bench postgres postgres_url
    for db in one two; do
        psql -q "$postgres" -c "DROP DATABASE IF EXISTS canvass_rate_${db}_$$ WITH (FORCE)" >/dev/null
    done
fi
