#!/usr/bin/env bash
# One-click unsubscribe throughput: `POST /u/{token}` requests/s, each unsubscribing a different
# person (committed before the 200 is sent), against `GET /healthz` on the same server in the
# same run, so that the ratio compares across noisy machines.
#
# usage: benches/one_click.sh [CONTACTS] [SECONDS] [CONNECTIONS]   (defaults 200000 10 32)
# Runs on SQLite; on PostgreSQL too when CANVASS_BENCH_POSTGRES_URL (or CANVASS_TEST_POSTGRES_URL)
# is set.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v curl >/dev/null || missing+=(curl)
command -v bc >/dev/null || missing+=(bc)
command -v psql >/dev/null || missing+=(postgresql-client)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

contacts=${1:-200000}
seconds=${2:-10}
connections=${3:-32}
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$work"; echo "$work"
}
trap cleanup EXIT

cargo build --release --quiet
canvass=$PWD/target/release/canvass
python3 benches/generate.py "$work" 1000 "$contacts" >/dev/null
export CANVASS_SIGNING_KEYS="bench:$(head -c 32 /dev/urandom | base64 -w0)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CANVASS_LISTEN=127.0.0.1:$port

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
    if [ "$name" = sqlite ]; then
        sqlite3 "${url#sqlite://}" "SELECT public_id FROM contacts ORDER BY random()"
    else
        psql -qAt "$url" -c "SELECT public_id FROM contacts ORDER BY random()"
    fi | sign_tokens >"$work/tokens"
    "$canvass" serve --no-worker 2>"$work/serve.log" &
    server=$!
    for _ in $(seq 100); do
        curl -sf "http://$CANVASS_LISTEN/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    local health one_click
    health=$(rate "http://$CANVASS_LISTEN/healthz")
    one_click=$(THREADS=$threads TOKENS=$work/tokens rate -s "$work/one_click.lua" "http://$CANVASS_LISTEN")
    [ "$name" = sqlite ] && sqlite_one_click=$one_click
    kill "$server"
    wait "$server" || true
    server=
    local unsubscribed
    if [ "$name" = sqlite ]; then
        unsubscribed=$(sqlite3 "${url#sqlite://}" "SELECT count(*) FROM suppressions")
    else
        unsubscribed=$(psql -qAt "$url" -c "SELECT count(*) FROM suppressions")
    fi
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

pg=${CANVASS_BENCH_POSTGRES_URL:-${CANVASS_TEST_POSTGRES_URL:-}}
if [ -n "$pg" ]; then
    db=canvass_bench_click_$$
    psql -q "$pg" -c "CREATE DATABASE $db"
    trap 'cleanup; psql -q "$pg" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
    bench_backend postgres "${pg%/*}/$db"
else
    echo "postgres: skipped (set CANVASS_BENCH_POSTGRES_URL)"
fi
