#!/usr/bin/env bash
# Run the whole test suite against the local stack: start what is missing, run
# cargo nextest once for the workspace (one build shared by every test), then stop
# only what this run started. Run `make up` first to keep the stack between runs.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${NEXTEST_PROFILE:=default}"
stack_run_begin

# Every run starts from an empty test database: tests provision throwaway workspaces, and
# every test pod sweeps every registered one, so leftovers would slow each later run.
test_db=$(pg_url_dbname "$PALAVER_TEST_DATABASE_URL")
[[ $test_db =~ ^[A-Za-z0-9_]+$ ]] || die "PALAVER_TEST_DATABASE_URL: expected a plain database name, got '$test_db'"
test_admin=$(pg_admin_url "$PALAVER_TEST_DATABASE_URL")
step "recreate the test database" "make test"
info "test: recreating database $test_db (and dropping private test databases left by failed runs)"
leftovers=$(psql "$test_admin" -XAtq -v ON_ERROR_STOP=1 -c "SELECT datname FROM pg_database WHERE datname LIKE 'palaver\_t\_%'")
for db in "$test_db" $leftovers; do
    psql "$test_admin" -Xq -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
done
psql "$test_admin" -Xq -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$test_db\""

# The operator tests start private kube-apiservers from `make deps-test`'s install.
kube_tools_ok || die "the Kubernetes test tools are missing or stale in $KUBE_TOOLS_ROOT: run 'make deps-test'"
# Fault tests start private S3 servers (PrivateS3) from `make deps`' versitygw, also when the
# shared one is not make up's.
versitygw_ok || die "versitygw $VERSITYGW_VERSION is missing in $VERSITYGW_ROOT: run 'make deps'"

cd "$REPO_ROOT"
# The SDK's unit tests; they build the clients, which palaverd embeds and the SDK and browser
# tests (e2e/tests/sdk.rs, web.rs) run, so this comes before cargo.
step_end
bash "$REPO_ROOT/scripts/web.sh" test
# The end-to-end tests spawn palaverd as a process: build every binary (same profile,
# so nextest reuses the artifacts).
step "cargo build --workspace --bins" "make build"
"$CARGO" build --workspace --bins
step "make dev's pod supervisor (scripts/test-supervisor.sh)" "bash scripts/test-supervisor.sh"
timeout 120 bash "$REPO_ROOT/scripts/test-supervisor.sh"
step "Helm chart and alert rules (scripts/chart-check.sh)" "bash scripts/chart-check.sh"
bash "$REPO_ROOT/scripts/chart-check.sh"
step "cargo nextest run --workspace --no-fail-fast --profile $NEXTEST_PROFILE" "make test"
info "test: PALAVER_TEST_DATABASE_URL=$PALAVER_TEST_DATABASE_URL PALAVER_REDIS_URL=$PALAVER_REDIS_URL PALAVER_KAFKA_BROKERS=$PALAVER_KAFKA_BROKERS PALAVER_S3_ENDPOINT=$PALAVER_S3_ENDPOINT PALAVER_S3_BUCKET=$PALAVER_S3_BUCKET KAFKA_ROOT=$KAFKA_ROOT VERSITYGW_ROOT=$VERSITYGW_ROOT KUBE_TOOLS_ROOT=$KUBE_TOOLS_ROOT"
# Tests get the test database only: without PALAVER_DATABASE_URL a test cannot
# reach the dev database by accident. The PALAVER_S3_* settings (lib.sh exports them) reach
# them, and the pods they start, as they are.
env -u PALAVER_DATABASE_URL \
    "$CARGO" nextest run --workspace --no-fail-fast --profile "$NEXTEST_PROFILE"
