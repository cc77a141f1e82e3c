#!/usr/bin/env bash
# Run the whole test suite against the local stack: start what is missing, run
# cargo nextest once for the workspace (one build shared by every test), then stop
# only what this run started. Run `make up` first to keep the stack between runs.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${NEXTEST_PROFILE:=default}"
started_file=$(mktemp)
cleanup() {
    local names=()
    mapfile -t names <"$started_file"
    rm -f "$started_file"
    if ((${#names[@]})); then
        bash "$REPO_ROOT/scripts/down.sh" "${names[@]}" || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

UP_STARTED_FILE=$started_file bash "$REPO_ROOT/scripts/up.sh"

cd "$REPO_ROOT"
# The end-to-end tests spawn palaverd as a process: build every binary (same profile,
# so nextest reuses the artifacts).
info "test: cargo build --workspace --bins"
"$CARGO" build --workspace --bins
info "test: cargo nextest run --workspace --no-fail-fast --profile $NEXTEST_PROFILE"
info "test: PALAVER_TEST_DATABASE_URL=$PALAVER_TEST_DATABASE_URL PALAVER_REDIS_URL=$PALAVER_REDIS_URL PALAVER_KAFKA_BROKERS=$PALAVER_KAFKA_BROKERS PALAVER_TANSU_BIN=$PALAVER_TANSU_BIN"
# Tests get the test database only: without PALAVER_DATABASE_URL a test cannot
# reach the dev database by accident.
env -u PALAVER_DATABASE_URL \
    "$CARGO" nextest run --workspace --no-fail-fast --profile "$NEXTEST_PROFILE"
