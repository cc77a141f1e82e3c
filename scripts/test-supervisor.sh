#!/usr/bin/env bash
# Test of scripts/supervisor.sh, the restart loop of `make dev`, with two stand-in pods (sleep
# processes), no stack needed: both start; one killed with SIGKILL is restarted after the
# backoff while the other keeps its PID; SIGINT to the whole process group (a terminal's
# Ctrl-C) stops the supervisor and every pod, leaving nothing behind. Bounded: every wait has a
# deadline and the supervisor runs under `timeout`. Run by scripts/test.sh (make test).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

work=$(mktemp -d)
sup_pgid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    # Whatever the outcome, leave no process of the test behind.
    [[ -z $sup_pgid ]] || kill -KILL -- "-$sup_pgid" 2>/dev/null || true
    rm -rf "$work"
}
on_exit cleanup

fail() {
    printf 'FAIL supervisor: %s\n' "$*" >&2
    log_tail "$work/out.log"
    exit 1
}

# until_ok SECONDS DESC CMD...: poll CMD every 0.1 s, fail after SECONDS.
until_ok() {
    local secs=$1 desc=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || fail "not after $secs s: $desc"
        sleep 0.1
    done
}

pid_of() { cat "$work/pids/$1.pid" 2>/dev/null; }
running() { pid_alive "$(pid_of "$1")" && [[ -e $work/ready.$(pid_of "$1") ]]; }
logged() { grep -q -- "$1" "$work/out.log"; }
gone() { ! pid_alive "$1"; }
pid_changed() { [[ -n $(pid_of "$1") && $(pid_of "$1") != "$2" ]]; }

# The supervised side, in its own process group (setsid) like a `make dev` in a terminal, and
# under a hard timeout.
cat >"$work/run.sh" <<'EOF'
set -euo pipefail
source "$1/lib.sh"
source "$1/supervisor.sh"
PID_DIR=$2/pids
SUP_BACKOFF_MIN=1
# A pod: says it is ready by a file named after its PID, then sleeps.
sup_exec() { exec bash -c 'touch "$0/ready.$$"; echo "pod $1 up"; exec sleep 600' "$WORK" "$1"; }
sup_ready() { [[ -e $WORK/ready.$2 ]]; }
sup_all_ready() { echo "ALL READY"; }
WORK=$2
supervise pod-a pod-b
EOF
t0=$(now_us)
setsid timeout 60 bash "$work/run.sh" "$REPO_ROOT/scripts" "$work" >"$work/out.log" 2>&1 &
sup_pid=$!
sup_pgid=$sup_pid

until_ok 10 "both pods ready" logged "ALL READY"
running pod-a || fail "pod-a is not running"
running pod-b || fail "pod-b is not running"
a1=$(pid_of pod-a) b1=$(pid_of pod-b)
info "supervisor: pod-a (pid $a1) and pod-b (pid $b1) ready"

kill -KILL "$a1"
until_ok 10 "pod-a restarted after kill -9" pid_changed pod-a "$a1"
until_ok 10 "restarted pod-a ready" running pod-a
a2=$(pid_of pod-a)
logged "pod-a (pid $a1) killed by SIGKILL" || fail "the supervisor did not report pod-a's SIGKILL"
if [[ $(pid_of pod-b) != "$b1" ]] || ! pid_alive "$b1"; then
    fail "pod-b was disturbed by pod-a's restart"
fi
info "supervisor: pod-a restarted (pid $a1 -> $a2), pod-b kept pid $b1"

# Ctrl-C: SIGINT to the whole process group, as a terminal sends it.
kill -INT -- "-$sup_pgid"
until_ok 15 "the supervisor to exit on SIGINT" gone "$sup_pid"
rc=0
wait "$sup_pid" || rc=$?
((rc == 130)) || fail "the supervisor exited with $rc on SIGINT, want 130"
for pid in "$a2" "$b1"; do
    until_ok 5 "pod pid $pid to be gone" gone "$pid"
done
# No live process in the supervisor's process group (read from /proc: no procps needed).
group_empty() {
    local f stat state pgrp
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        read -r state _ pgrp _ <<<"${stat##*) }"
        [[ $pgrp != "$sup_pgid" || $state == Z ]] || return 1
    done
}
until_ok 5 "no process left in the process group after Ctrl-C" group_empty
[[ ! -e $work/pids/pod-a.pid && ! -e $work/pids/pod-b.pid ]] || fail "pid files left behind"
sup_pgid=
info "supervisor: restart and Ctrl-C behave (in $(since "$t0"))"
