#!/usr/bin/env bash
# Stop what `make up` started, by the PIDs it recorded in $DEV_DIR/pids; never
# anything else (a Postgres or Redis that was already running is left alone).
#
# Usage: down.sh [NAME...]   NAME: s3, kafka, redis, postgres (default: all recorded)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Reverse start order: clients of Postgres/Redis stop first. The S3 server (versitygw, its data
# a plain directory) depends on none of them.
order=(s3 kafka redis postgres)
if (($#)); then
    names=("$@")
else
    names=()
    for name in "${order[@]}"; do
        [[ -e $(pid_file "$name") ]] && names+=("$name")
    done
fi

if ((${#names[@]} == 0)); then
    info "nothing to stop: make up started nothing that is recorded in $PID_DIR"
    exit 0
fi

for name in "${names[@]}"; do
    pidf=$(pid_file "$name")
    pid=$(read_pid "$name")
    if [[ -z $pid ]]; then
        info "$name: not started by make up, left alone"
        continue
    fi
    if ! pid_is "$pid" "$(service_program "$name")"; then
        info "$name: pid $pid is gone; removing the stale pid file"
        rm -f "$pidf"
        continue
    fi
    # Postgres: SIGINT is its "fast" shutdown (SIGTERM would wait for every client).
    sig=TERM
    [[ $name == postgres ]] && sig=INT
    STOP_TIMEOUT=${STOP_TIMEOUT:-30} stop_pid "$name" "$pid" "$sig"
    rm -f "$pidf"
    info "$name: stopped (pid $pid)"
done
