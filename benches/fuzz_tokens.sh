#!/usr/bin/env bash
# A long fuzzing run of the token parser: the property tests in src/token.rs with many more
# cases than `cargo test` runs (256). Any input must be refused or name a contact, never panic;
# any single changed byte or character of a real token must be refused.
#
# usage: benches/fuzz_tokens.sh [CASES]    (default 1000000 per property)
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-1000000}
export PROPTEST_CASES=$cases
start=$(date +%s)
cargo test --release --quiet --lib -- --exact \
    token::tests::the_parser_never_panics \
    token::tests::any_single_byte_change_is_refused \
    token::tests::any_single_character_change_is_refused \
    token::tests::sign_then_verify_round_trips
echo "fuzzed the token parser with $cases cases per property in $(( $(date +%s) - start ))s"
