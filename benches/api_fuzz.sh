#!/usr/bin/env bash
# The staff API under schemathesis (from PyPI): every operation in /api/v1/openapi.json is
# called with generated requests, valid and not, on a fresh SQLite database holding the sample
# data, with a read-write staff token; a 5xx anywhere fails the run.
#
# usage: benches/api_fuzz.sh [MAX_EXAMPLES] [CHECKS]
#   MAX_EXAMPLES per operation (default 100); CHECKS for schemathesis's -c (default
#   not_a_server_error; "all" adds the schema-conformance checks).
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${1:-100}
checks=${2:-not_a_server_error}
work=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet schemathesis
cargo build --release --quiet
canvass=$PWD/target/release/canvass

export CANVASS_DATABASE_URL="sqlite://$work/api.db"
export CANVASS_SIGNING_KEYS=fuzz:ZnV6ei1mdXp6LWZ1enotZnV6ei1mdXp6
"$canvass" migrate >/dev/null
"$canvass" postcodes import examples/postcodes.csv >/dev/null
"$canvass" contacts import examples/contacts.csv --source fuzz >/dev/null 2>&1
token=$("$canvass" staff token create --name schemathesis 2>/dev/null)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CANVASS_LISTEN="127.0.0.1:$port" "$canvass" serve --no-worker 2>"$work/serve.log" &
server=$!
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

# Run from the work folder: schemathesis keeps a cache where it runs.
(cd "$work" && "$work/venv/bin/st" run "http://127.0.0.1:$port/api/v1/openapi.json" \
    --url "http://127.0.0.1:$port" \
    --header "Authorization: Bearer $token" \
    --checks "$checks" \
    --max-examples "$examples" \
    --no-color)
if grep -q " 5[0-9][0-9] " "$work/serve.log"; then
    echo "the service logged a server error:"; grep " 5[0-9][0-9] " "$work/serve.log"; exit 1
fi
