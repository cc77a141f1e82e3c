#!/usr/bin/env bash
# Load test: release build of palaverd and palaver-bench, two release pods on
# loopback, one palaver-bench run with BENCH_ARGS. The pods, and what this run
# started of the stack, are stopped afterwards, also on failure or Ctrl-C.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${PALAVER_DEV_JWT_SECRET:=palaver-dev-secret-change-me}"
: "${BENCH_WORKSPACE:=bench}"
: "${BENCH_PARTITIONS:=3}"
: "${BENCH_LISTEN_A:=127.0.0.1:8091}"
: "${BENCH_LISTEN_B:=127.0.0.1:8092}"
: "${BENCH_ARGS:=--pods ws://$BENCH_LISTEN_A,ws://$BENCH_LISTEN_B --workspace $BENCH_WORKSPACE --rate 2000 --duration 60 --channels 50 --members 10}"
: "${RUST_LOG:=warn}"
export PALAVER_DEV_JWT_SECRET RUST_LOG

cd "$REPO_ROOT"
bash "$REPO_ROOT/scripts/web.sh" build
info "bench: cargo build --release (palaverd, palaver-operator, palaver-bench)"
"$CARGO" build --release --bin palaverd --bin palaver-operator --bin palaver-bench
bin_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"

for listen in "$BENCH_LISTEN_A" "$BENCH_LISTEN_B"; do
    ! tcp_open "${listen%:*}" "${listen##*:}" || die "$listen is already in use"
done

stack_run_begin

# make up's PostgreSQL runs with fsync, synchronous_commit and full_page_writes off (cheap
# throwaway test data, scripts/up.sh). A benchmark measures what a user runs: PostgreSQL's
# defaults, durable commits. All three take effect on a reload; the dev settings come back when
# the run ends, also on failure.
DURABLE_SETTINGS=(fsync synchronous_commit full_page_writes)
pg_alter_system() {
    local args=() setting
    # One -c each: ALTER SYSTEM refuses to run in the transaction of a multi-statement -c.
    for setting in "${DURABLE_SETTINGS[@]}"; do
        args+=(-c "ALTER SYSTEM $1 $setting$2")
    done
    psql -q -X "$PALAVER_DATABASE_URL" -v ON_ERROR_STOP=1 "${args[@]}" -c "SELECT pg_reload_conf()" >/dev/null
}
# shellcheck disable=SC2317  # called by the EXIT trap
pg_dev_settings() { pg_alter_system RESET ""; }
if pg_alter_system SET " = on"; then
    on_exit pg_dev_settings
    info "bench: PostgreSQL is durable for this run (${DURABLE_SETTINGS[*]} on)"
else
    warn "bench: could not turn on ${DURABLE_SETTINGS[*]} (ALTER SYSTEM needs a superuser); measuring with the server's settings"
fi

info "bench: provisioning workspace $BENCH_WORKSPACE"
"$bin_dir/palaver-operator" provision --name "$BENCH_WORKSPACE" --partitions "$BENCH_PARTITIONS"

# Pods log to files: the terminal is for palaver-bench's report. They get the stack's addresses
# (PALAVER_DATABASE_URL, PALAVER_REDIS_URL, PALAVER_KAFKA_BROKERS, PALAVER_S3_*) from the
# environment lib.sh exports.
start_pod() {
    local name=$1 listen=$2 log="$DEV_DIR/$1.log"
    info "bench: $name on $listen (log $log)"
    # Senders pipeline up to rate/senders messages per second each: lift the per-connection
    # send limit (and the search scenario's per-user search limit) so the benchmark measures
    # the system, not the limiter.
    PALAVER_LISTEN=$listen PALAVER_POD_ID=$name PALAVER_SEND_RATE=100000 PALAVER_SEND_BURST=100000 PALAVER_SEARCH_RATE_PER_MINUTE=1000000 \
        "$bin_dir/palaverd" serve >"$log" 2>&1 </dev/null &
    RUN_POD_PIDS+=($!)
    wait_for "$name on $listen" "$log" "$!" tcp_open "${listen%:*}" "${listen##*:}"
}
start_pod bench-a "$BENCH_LISTEN_A"
start_pod bench-b "$BENCH_LISTEN_B"

read -r -a bench_args <<<"$BENCH_ARGS"
info "bench: palaver-bench ${bench_args[*]}"
"$bin_dir/palaver-bench" "${bench_args[@]}"
