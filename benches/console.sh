#!/usr/bin/env bash
# Staff console latency on a database of CONTACTS contacts (default 1,000,000) and a campaign
# queued to all of them, on SQLite and (when a PostgreSQL URL is set) PostgreSQL: every page,
# as an admin (who sees everyone) and as an organiser kept to one constituency, SAMPLES
# requests each (after one to warm), one at a time; p50 and p95 in milliseconds. Beside them,
# in the same run: /healthz (the HTTP floor) and the engine's own client counting the contacts
# (the floor of any page that counts them).
#
# The substring searches (the trigram indexes) and the live count of an event's distance rule
# (campaigns 3 and 4: within 5 and 25 miles of a venue) are to answer within 200 ms at the
# 95th percentile on a million contacts.
#
# usage: benches/console.sh [CONTACTS] [SAMPLES]    (defaults 1000000 20)
# POSTCODES=N sets the directory's size (default 100,000: people live in half of them, about 20
# to a postcode; from 400,000 up, in 200,000 of them, about 5 to a postcode).
# PostgreSQL is measured when CANVASS_BENCH_POSTGRES_URL (or CANVASS_TEST_POSTGRES_URL) is set.
# KEEP=1 keeps the work folder; PAGES=REGEX measures only the pages it matches.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v sqlite3 >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
}

contacts=${1:-1000000}
samples=${2:-20}
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet
canvass=$PWD/target/release/canvass
python3 benches/generate.py "$work/data" "${POSTCODES:-100000}" "$contacts" news
port=18$((RANDOM % 900 + 100))
base=http://127.0.0.1:$port
password="correct horse battery staple"

now_ms() { date +%s%3N; }

# p50 and p95 (ms) of SAMPLES GETs of a path with the cookie jar $1, after one to warm (a page
# slower than two seconds gets three samples: the service gives up on a request at 15 s, 408).
latency() { # jar path
    local jar=$1 path=$2
    local warm status n=$samples
    warm=$(curl -s -o /dev/null -b "$jar" -w '%{time_total} %{http_code}' "$base$path")
    status=${warm#* }
    python3 -c "import sys; sys.exit(0 if float('${warm% *}') < 2 else 1)" || n=3
    for _ in $(seq "$n"); do
        curl -s -o /dev/null -b "$jar" -w '%{time_total}\n' "$base$path"
    done | python3 -c '
import sys
times = sorted(float(line) * 1000 for line in sys.stdin)
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"p50 {pick(0.5):7.1f}   p95 {pick(0.95):7.1f}   ({len(times)} samples, HTTP '"$status"')")'
}

# Signs in as $1 into the cookie jar $2, setting the password through the link first.
sign_in() { # email jar link
    local email=$1 jar=$2 link=$3
    local path=${link#*127.0.0.1:8080}
    curl -s -o /dev/null -X POST --data-urlencode "password=$password" \
        --data-urlencode "repeat=$password" "$base$path"
    curl -s -o /dev/null -c "$jar" -X POST --data-urlencode "email=$email" \
        --data-urlencode "password=$password" "$base/admin/login"
}

bench_backend() { # name url count-command...
    local name=$1 url=$2
    shift 2
    local count=("$@")
    export CANVASS_DATABASE_URL=$url CANVASS_SIGNING_KEYS=bench:YmVuY2htYXJrLWJlbmNobWFyay1rZXk=
    export CANVASS_LISTEN=127.0.0.1:$port
    "$canvass" migrate >/dev/null
    "$canvass" postcodes import "$work/data/onspd.csv" >/dev/null 2>&1
    local start end
    start=$(now_ms)
    "$canvass" contacts import "$work/data/contacts.csv" --source bench >/dev/null 2>&1
    end=$(now_ms)
    echo "$name: imported $contacts contacts in $((end - start)) ms"
    "$canvass" campaign create --name "Winter news" --topic news --subject "Winter news" \
        --html benches/newsletter-10k.html >/dev/null
    "$canvass" campaign create --name "Spring news" --topic news --subject "Spring news" \
        --html benches/newsletter-10k.html >/dev/null
    local venue starts
    venue=$("${count[@]}" "SELECT postcode FROM contacts ORDER BY id LIMIT 1")
    starts=$(date -u -d '+30 days' +%Y-%m-%dT18:00:00Z)
    for miles in 5 25; do
        "$canvass" campaign create --name "Stall, $miles miles" --topic news \
            --subject "Come to the stall" --html benches/newsletter-10k.html \
            --event-title "Stall" --event-starts-at "$starts" --event-venue "Market" \
            --event-postcode "$venue" --within-miles "$miles" >/dev/null
    done
    start=$(now_ms)
    "$canvass" campaign queue 1 >/dev/null
    end=$(now_ms)
    echo "$name: queued campaign 1 to every contact in $((end - start)) ms"
    local constituency
    constituency=$("${count[@]}" "SELECT p.constituency_code FROM contacts c JOIN postcodes p \
        ON p.postcode = c.postcode GROUP BY p.constituency_code ORDER BY count(*) DESC LIMIT 1")
    local admin_link organiser_link
    admin_link=$("$canvass" staff user create --email admin@bench.example --name Admin \
        --role admin 2>/dev/null)
    organiser_link=$("$canvass" staff user create --email olu@bench.example --name Olu \
        --role organiser --constituency "$constituency" 2>/dev/null)
    "$canvass" serve --no-worker >"$work/serve.log" 2>&1 &
    server=$!
    until curl -s -o /dev/null "$base/healthz"; do sleep 0.2; done
    sign_in admin@bench.example "$work/admin.jar" "$admin_link"
    sign_in olu@bench.example "$work/olu.jar" "$organiser_link"
    local someone
    someone=$("${count[@]}" "SELECT public_id FROM contacts c JOIN postcodes p \
        ON p.postcode = c.postcode WHERE p.constituency_code = '$constituency' LIMIT 1")

    echo "$name: floor: /healthz $(latency "$work/admin.jar" /healthz)"
    start=$(now_ms)
    "${count[@]}" "SELECT count(*) FROM contacts" >/dev/null
    end=$(now_ms)
    echo "$name: floor: the engine's own client counting the contacts: $((end - start)) ms"
    local pages=(
        /admin
        /admin/stats
        /admin/contacts
        "/admin/contacts?q=ashworth"
        "/admin/contacts?q=amira+ash"
        "/admin/contacts?q=son4242"
        "/admin/contacts?q=jo"
        "/admin/contacts?q=person500000%40example.org"
        "/admin/contacts?q=AL12"
        "/admin/contacts?constituency=$constituency"
        "/admin/contacts?topic=news&consent=granted"
        "/admin/contacts?page=2000"
        "/admin/contacts/$someone"
        /admin/campaigns
        /admin/campaigns/1
        /admin/campaigns/2
        /admin/campaigns/3
        /admin/campaigns/4
        /admin/campaigns/new
        /admin/import
        /admin/topics
        "/admin/suppressions?email=someone%40example.org"
        /admin/audit
        /admin/staff
        /admin/account
    )
    for who in admin olu; do
        for page in "${pages[@]}"; do
            [[ -n "${PAGES:-}" && ! "$page" =~ $PAGES ]] && continue
            printf '%s: %-6s %-52s %s\n' "$name" "$who" "$page" \
                "$(latency "$work/$who.jar" "$page")"
        done
    done
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=
    unset CANVASS_DATABASE_URL
}

db=$work/console.db
bench_backend sqlite "sqlite://$db" sqlite3 "$db"

pg=${CANVASS_BENCH_POSTGRES_URL:-${CANVASS_TEST_POSTGRES_URL:-}}
if [ -n "$pg" ]; then
    name=canvass_console_$$
    psql -q "$pg" -c "CREATE DATABASE $name" >/dev/null
    [ "${KEEP:-0}" = 1 ] && echo "keeping the database ${pg%/*}/$name" ||
        trap 'psql -q "$pg" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null; cleanup' EXIT
    bench_backend postgres "${pg%/*}/$name" psql -Atq "${pg%/*}/$name" -c
fi
