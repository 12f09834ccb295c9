#!/usr/bin/env bash
# One-click unsubscribe throughput: `POST /u/{token}` requests/s, each unsubscribing a different
# person (committed before the 200 is sent), against `GET /healthz` on the same server in the
# same run, so that the ratio compares across noisy machines.
#
# usage: benches/one_click.sh [CONTACTS] [SECONDS] [CONNECTIONS]   (defaults 200000 10 32)
#        benches/one_click.sh --under-load [CONTACTS] [RATE]       (defaults 1000000 100)
# Runs on SQLite; on PostgreSQL too when CANVASS_BENCH_POSTGRES_URL (or CANVASS_TEST_POSTGRES_URL)
# is set.
#
# --under-load is target 5 of issue 13: unsubscribes keep their latency while the machine is
# busiest. A campaign to CONTACTS people is queued; then `canvass serve` sends it into Postfix's
# smtp-sink while `canvass contacts import` loads CONTACTS other people and a stream of RATE
# one-click unsubscribes a second comes in from the campaign's recipients (benches/click_stream.py:
# open loop, so a stall is charged to every click that waits). The stream runs until the import
# ends. The same stream against the idle server first is the baseline. Then every 200 is checked:
# the person is suppressed, and no message went to them more than a second (the worker's promise
# for a withdrawal mid-send) after their unsubscribe.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v curl >/dev/null || missing+=(curl)
command -v bc >/dev/null || missing+=(bc)
command -v psql >/dev/null || missing+=(postgresql-client)
[ -x /usr/sbin/smtp-sink ] || missing+=(postfix)
if ((${#missing[@]})); then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

under_load=
if [ "${1:-}" = --under-load ]; then
    under_load=1
    shift
    contacts=${1:-1000000}
    rate=${2:-100}
else
    contacts=${1:-200000}
    seconds=${2:-10}
    connections=${3:-32}
fi
work=$(mktemp -d)
server=
sink=
stream=
cleanup() {
    [ -n "$stream" ] && kill "$stream" 2>/dev/null
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [ -n "$sink" ] && kill "$sink" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$work"; echo "$work"
}
trap cleanup EXIT

cargo build --release --quiet
canvass=$PWD/target/release/canvass
if [ -n "$under_load" ]; then
    python3 benches/generate.py "$work" 100000 "$contacts" news >/dev/null
else
    python3 benches/generate.py "$work" 1000 "$contacts" >/dev/null
fi
export CANVASS_SIGNING_KEYS="bench:$(head -c 32 /dev/urandom | base64 -w0)"
# A TCP port free on loopback.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
export CANVASS_LISTEN=127.0.0.1:$(free_port)

# Signs an unsubscribe token for each public id on stdin, as canvass does (src/token.rs).
sign_tokens() {
    python3 -c '
import base64, hashlib, hmac, os, struct, sys, time, uuid
kid, secret = os.environ["CANVASS_SIGNING_KEYS"].split(":", 1)
secret = base64.b64decode(secret)
issued = struct.pack(">I", int(time.time()))
for line in sys.stdin:
    body = b"u" + bytes([len(kid)]) + kid.encode() + uuid.UUID(line.strip()).bytes + issued
    tag = hmac.new(secret, b"canvass-link-v1" + body, hashlib.sha256).digest()[:16]
    print(base64.urlsafe_b64encode(body + tag).decode().rstrip("="))
'
}

# Runs `FUNCTION postgres URL` on a database of its own, dropped at exit, when a PostgreSQL URL
# is set.
on_postgres() { # function
    pg=${CANVASS_BENCH_POSTGRES_URL:-${CANVASS_TEST_POSTGRES_URL:-}}
    if [ -z "$pg" ]; then
        echo "postgres: skipped (set CANVASS_BENCH_POSTGRES_URL)"
        return
    fi
    db=canvass_bench_click_$$
    psql -q "$pg" -c "CREATE DATABASE $db"
    trap 'cleanup; psql -q "$pg" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
    "$1" postgres "${pg%/*}/$db"
}

# Starts `canvass serve` with the given arguments and waits until it answers.
start_server() {
    "$canvass" serve "$@" 2>"$work/serve.log" &
    server=$!
    for _ in $(seq 100); do
        curl -sf "http://$CANVASS_LISTEN/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
}
stop_server() {
    kill "$server"
    wait "$server" || true
    server=
}

# Runs the SQL on stdin on the benchmark's database; prints the rows, columns separated by "|".
run_sql() { # name url
    if [ "$1" = sqlite ]; then sqlite3 "${2#sqlite://}"; else psql -qAt "$2"; fi
}
query() { # name url sql
    run_sql "$1" "$2" <<<"$3"
}

# Target 5: a stream of unsubscribes while the server sends a campaign and an import runs.
under_load_backend() { # name url
    local name=$1 url=$2 id
    export CANVASS_DATABASE_URL=$url
    "$canvass" migrate >/dev/null
    "$canvass" postcodes import "$work/onspd.csv" >/dev/null 2>&1
    "$canvass" contacts import "$work/contacts.csv" --source bench >/dev/null 2>&1
    id=$("$canvass" campaign create --name load --topic news --subject "Winter news" \
        --html benches/newsletter-10k.html)
    "$canvass" campaign queue "$id" >/dev/null
    # Recipients who click, in random order, enough for half an hour: the first ten seconds'
    # worth for the baseline.
    query "$name" "$url" "SELECT public_id FROM contacts ORDER BY random() LIMIT $((rate * 1800))" >"$work/ids"
    sign_tokens <"$work/ids" | paste -d' ' "$work/ids" - >"$work/tokens"
    local idle=$((rate * 10))
    head -n "$idle" "$work/tokens" >"$work/tokens-idle"
    tail -n +"$((idle + 1))" "$work/tokens" >"$work/tokens-load"

    start_server --no-worker
    local idle_summary
    idle_summary=$(python3 benches/click_stream.py "$CANVASS_LISTEN" "$work/tokens-idle" "$rate" \
        "$work/stop-idle" "$work/clicks-idle")
    stop_server

    CANVASS_SMTP_URL="smtp://127.0.0.1:$sink_port" CANVASS_SEND_CONCURRENCY=8 start_server
    rm -f "$work/stop"
    python3 benches/click_stream.py "$CANVASS_LISTEN" "$work/tokens-load" "$rate" "$work/stop" \
        "$work/clicks-load" >"$work/load-summary" &
    stream=$!
    local start end sent_before sent_after
    sent_before=$(query "$name" "$url" "SELECT count(*) FROM deliveries WHERE state = 'sent'")
    start=$(date +%s.%N)
    "$canvass" contacts import "$work/members.csv" --source bench >/dev/null 2>"$work/import.err" ||
        { cat "$work/import.err"; exit 1; }
    end=$(date +%s.%N)
    touch "$work/stop"
    wait "$stream"
    stream=
    sent_after=$(query "$name" "$url" "SELECT count(*) FROM deliveries WHERE state = 'sent'")
    stop_server

    # Every click answered 200: the person is suppressed, and nothing was sent to them more
    # than a second after it.
    awk '$2 == 200 { print $1 }' "$work/clicks-load" "$work/clicks-idle" >"$work/clicked"
    local clicked honoured late load later
    clicked=$(wc -l <"$work/clicked")
    if [ "$name" = sqlite ]; then
        load=".import $work/clicked clicked"
        later="(julianday(d.sent_at) - julianday(s.created_at)) * 86400 > 1"
    else
        load="\\copy clicked FROM '$work/clicked'"
        later="d.sent_at > s.created_at + interval '1 second'"
    fi
    run_sql "$name" "$url" <<SQL >"$work/checks"
CREATE TEMP TABLE clicked (public_id TEXT PRIMARY KEY);
$load
SELECT count(*) FROM clicked k JOIN contacts c ON c.public_id = k.public_id
    JOIN suppressions s ON s.email_hash = c.email_hash AND s.reason = 'unsubscribed';
SELECT count(*) FROM clicked k JOIN contacts c ON c.public_id = k.public_id
    JOIN suppressions s ON s.email_hash = c.email_hash
    JOIN deliveries d ON d.contact_id = c.id AND d.state = 'sent'
    WHERE $later;
SQL
    read -r honoured late < <(tr '\n' ' ' <"$work/checks"; echo)
    read -r _ clicks _ failed _ p50 _ p99 _ max <"$work/load-summary"
    read -r _ _ _ _ _ idle_p50 _ idle_p99 _ _ <<<"$idle_summary"
    awk -v name="$name" -v n="$contacts" -v s="$(echo "$end - $start" | bc)" -v sent=$((sent_after - sent_before)) \
        -v clicks="$clicks" -v failed="$failed" -v p50="$p50" -v p99="$p99" -v max="$max" \
        -v ip50="$idle_p50" -v ip99="$idle_p99" -v clicked="$clicked" -v honoured="$honoured" -v late="$late" \
        -v rate="$rate" 'BEGIN {
        printf "%-8s under load: import of %d contacts in %.1f s (%.0f rows/s) while sending %.0f msg/s\n",
            name, n, s, n / s, sent / s
        printf "%-8s %d clicks: p50 %.1f ms  p99 %.1f ms  max %.1f ms  (idle: p50 %.1f ms  p99 %.1f ms); %d not answered 200\n",
            name, clicks, p50, p99, max, ip50, ip99, failed
        if (clicks < 0.9 * rate * s) print "         WARNING: the stream ran out of recipients before the import ended"
        ok = clicks > 0 && p99 < 100 && failed == 0 && honoured == clicked && late == 0
        printf "target 5 (%s): p99 %.1f ms (goal < 100 ms), %d of %d unsubscribes honoured, %d messages sent to them more than 1 s after: %s\n",
            name, p99, honoured, clicked, late, ok ? "met" : "MISSED" }'
    unset CANVASS_DATABASE_URL
}

under_load() {
    sed '1!s/^person/member/' "$work/contacts.csv" >"$work/members.csv"
    sink_port=$(free_port)
    local sink_user=()
    [ "$(id -u)" = 0 ] && sink_user=(-u nobody)
    /usr/sbin/smtp-sink "${sink_user[@]}" "127.0.0.1:$sink_port" 1024 &
    sink=$!
    echo "== one-click unsubscribes, $rate a second, while $contacts are sent and $contacts imported"
    under_load_backend sqlite "sqlite://$work/load.db"
    on_postgres under_load_backend
}

if [ -n "$under_load" ]; then
    under_load
    exit 0
fi

cat >"$work/one_click.lua" <<'LUA'
-- Each wrk thread has its own Lua state: thread k of n takes tokens k+1, k+1+n, ... so that no
-- two requests name the same person.
local threads = {}
function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end
function init(args)
    tokens, step, i = {}, tonumber(os.getenv("THREADS")), id
    for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
end
wrk.method = "POST"
wrk.body = "List-Unsubscribe=One-Click"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
    local token = tokens[i % #tokens + 1]
    i = i + step
    return wrk.format(nil, "/u/" .. token)
end
LUA

# Runs wrk; prints requests/s.
threads=2
rate() {
    wrk -t"$threads" -c"$connections" -d"${seconds}s" "$@" | tee -a "$work/wrk.log" |
        awk '/Requests\/sec/ { print $2 }'
}

bench_backend() { # name url
    local name=$1 url=$2
    export CANVASS_DATABASE_URL=$url
    "$canvass" migrate >/dev/null
    "$canvass" contacts import "$work/contacts.csv" --source bench >/dev/null 2>&1
    query "$name" "$url" "SELECT public_id FROM contacts ORDER BY random()" | sign_tokens >"$work/tokens"
    start_server --no-worker
    local health one_click
    health=$(rate "http://$CANVASS_LISTEN/healthz")
    one_click=$(THREADS=$threads TOKENS=$work/tokens rate -s "$work/one_click.lua" "http://$CANVASS_LISTEN")
    [ "$name" = sqlite ] && sqlite_one_click=$one_click
    stop_server
    local unsubscribed
    unsubscribed=$(query "$name" "$url" "SELECT count(*) FROM suppressions")
    awk -v name="$name" -v h="$health" -v u="$one_click" -v n="$unsubscribed" \
        -v total="$contacts" -v s="$seconds" 'BEGIN {
        printf "%-8s GET /healthz %8.0f req/s   POST /u/{token} %7.0f req/s   %.2fx the health check\n",
            name, h, u, u / h
        printf "%-8s %d people unsubscribed (each request a different person; %d available)\n",
            name, n, total
        if (u * s > total) print "         WARNING: more requests than people; raise CONTACTS"
    }'
}

bench_backend sqlite "sqlite://$work/bench.db"

# The engine's ceiling for the same writes: sqlite3 itself applies canvass's unsubscribe
# statements (src/store/preferences.rs: the outcome, an audit entry, a withdrawal per topic, the
# suppression) for 6,000 people not yet unsubscribed, in random order as clicks come, in
# transactions of 30 as the batching server makes them under this load, with no HTTP, no Rust
# and no driver in between.
sqlite3 "$work/bench.db" "SELECT public_id FROM contacts c WHERE NOT EXISTS \
    (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash) ORDER BY random() LIMIT 6000" \
    >"$work/free"
python3 - "$work/free" >"$work/ceiling.sql" <<'PY'
import sys
ids = [line.strip() for line in open(sys.argv[1])]
now = "'2026-01-01T00:00:00.000000+00:00'"
pending = ("(EXISTS (SELECT 1 FROM topics t WHERE COALESCE((SELECT l.granted FROM consent_ledger l "
           "WHERE l.contact_id = c.id AND l.topic_id = t.id AND l.channel = 'email' "
           "ORDER BY l.at DESC, l.id DESC LIMIT 1), TRUE)) OR NOT EXISTS (SELECT 1 FROM suppressions s "
           "WHERE s.email_hash = c.email_hash AND s.reason IN ('erased', 'unsubscribed')))")
print("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384;")
print(".output /dev/null")
for k in range(0, len(ids), 30):
    group = ids[k:k + 30]
    values = ", ".join(f"('{i}', 'unsubscribe-link', '127.0.0.1')" for i in group)
    listed = ", ".join(f"'{i}'" for i in group)
    print(f"""BEGIN IMMEDIATE;
SELECT c.public_id, {pending} FROM contacts c WHERE c.public_id IN ({listed});
INSERT INTO audit_log (at, actor, action, contact_id, detail, ip) SELECT {now}, 'contact', 'contact.unsubscribed', c.id, 'via ' || b.column2, b.column3 FROM (VALUES {values}) AS b JOIN contacts c ON c.public_id = b.column1 WHERE {pending};
INSERT INTO consent_ledger (contact_id, topic_id, channel, granted, source, at, ip, recorded_at) SELECT c.id, t.id, 'email', FALSE, b.column2, {now}, b.column3, {now} FROM (VALUES {values}) AS b JOIN contacts c ON c.public_id = b.column1 CROSS JOIN topics t WHERE COALESCE((SELECT l.granted FROM consent_ledger l WHERE l.contact_id = c.id AND l.topic_id = t.id AND l.channel = 'email' ORDER BY l.at DESC, l.id DESC LIMIT 1), TRUE);
INSERT INTO suppressions (email_hash, reason, created_at, updated_at) SELECT email_hash, 'unsubscribed', {now}, {now} FROM contacts WHERE public_id IN ({listed}) ON CONFLICT (email_hash) DO UPDATE SET reason = excluded.reason, updated_at = excluded.updated_at WHERE suppressions.reason NOT IN ('erased', 'unsubscribed');
COMMIT;""")
PY
people=$(wc -l <"$work/free")
start=$(date +%s.%N)
sqlite3 "$work/bench.db" <"$work/ceiling.sql"
end=$(date +%s.%N)
awk -v n="$people" -v s="$(echo "$end - $start" | bc)" -v u="$sqlite_one_click" 'BEGIN {
    printf "sqlite   the engine alone, same writes in transactions of 30: %.0f people/s; canvass at %.2fx that\n",
        n / s, u / (n / s) }'

on_postgres bench_backend
