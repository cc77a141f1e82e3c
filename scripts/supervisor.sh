# shellcheck shell=bash
# A small process supervisor for `make dev` (scripts/dev.sh), behaving like a Deployment's
# pods: each supervised process that dies (crash, kill -9) is started again after a backoff
# while the others keep running; it stops only when the calling script exits (Ctrl-C, TERM),
# and then stops every process. Source it after lib.sh. Tested by scripts/test-supervisor.sh.
#
# The caller defines two functions, then calls `supervise NAME...`, which never returns:
#   sup_exec NAME       exec's the process of NAME (it runs in a background subshell, so
#                       `exec` makes the recorded PID the process itself);
#   sup_ready NAME PID  true once that process serves (polled until it is).
# and optionally sup_all_ready, called once, the first time every process is ready.
#
# Output: every line of a process is prefixed with [NAME]; the supervisor's own lines with
# [supervisor]. The current PID of NAME is in $PID_DIR/NAME.pid.

# Restart backoff: SUP_BACKOFF_MIN seconds, doubled at each restart up to SUP_BACKOFF_MAX, back
# to the minimum once a process has run SUP_BACKOFF_RESET seconds (kubelet does the same with
# 10 s, 5 min and 10 min; a dev loop wants it shorter).
: "${SUP_BACKOFF_MIN:=1}"
: "${SUP_BACKOFF_MAX:=30}"
: "${SUP_BACKOFF_RESET:=60}"
SUP_TICK=0.25

declare -A SUP_PID=() SUP_STATE=() SUP_T0=() SUP_DUE=() SUP_BACKOFF=() SUP_RESTARTS=()

sup_say() { printf '[supervisor] %s\n' "$*"; }

# How a process ended, from its wait status.
sup_status() {
    local rc=$1
    if ((rc > 128)); then
        printf 'killed by SIG%s\n' "$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
    else
        printf 'exited with status %s\n' "$rc"
    fi
}

sup_start() {
    local name=$1
    # The prefixer ignores Ctrl-C and TERM so it still forwards the process's last lines; it
    # ends when the process closes its output.
    sup_exec "$name" > >(trap '' INT TERM; exec sed -u "s/^/[$name] /") 2>&1 &
    SUP_PID[$name]=$!
    SUP_STATE[$name]=starting
    SUP_T0[$name]=$(now_us)
    mkdir -p "$PID_DIR"
    printf '%s\n' "${SUP_PID[$name]}" >"$PID_DIR/$name.pid"
}

# On exit (registered last, so it runs before the caller's earlier hooks, e.g. the stack's
# cleanup): stop the current process of every name, SIGTERM then SIGKILL after 10 s.
# shellcheck disable=SC2317  # called by the EXIT trap
sup_stop_all() {
    local name
    for name in "${!SUP_PID[@]}"; do
        if pid_alive "${SUP_PID[$name]}"; then
            sup_say "stopping $name (pid ${SUP_PID[$name]})"
            stop_pid "$name" "${SUP_PID[$name]}" TERM
        fi
        rm -f "$PID_DIR/$name.pid"
    done
}

supervise() {
    local name pid rc now lived backoff all_ready=false
    on_exit sup_stop_all
    for name in "$@"; do
        SUP_BACKOFF[$name]=$SUP_BACKOFF_MIN
        SUP_RESTARTS[$name]=0
        sup_start "$name"
        sup_say "$name started (pid ${SUP_PID[$name]})"
    done
    while :; do
        now=$(now_us)
        for name in "$@"; do
            pid=${SUP_PID[$name]}
            case ${SUP_STATE[$name]} in
                starting | running)
                    if ! pid_alive "$pid"; then
                        rc=0
                        wait "$pid" 2>/dev/null || rc=$?
                        lived=$(((now - SUP_T0[$name]) / 1000000))
                        ((lived < SUP_BACKOFF_RESET)) || SUP_BACKOFF[$name]=$SUP_BACKOFF_MIN
                        backoff=${SUP_BACKOFF[$name]}
                        sup_say "$name (pid $pid) $(sup_status "$rc") after ${lived}s; restarting it in ${backoff}s (restarts so far: ${SUP_RESTARTS[$name]}); the others keep serving"
                        SUP_STATE[$name]=backoff
                        SUP_DUE[$name]=$((now + backoff * 1000000))
                        SUP_BACKOFF[$name]=$((backoff * 2 > SUP_BACKOFF_MAX ? SUP_BACKOFF_MAX : backoff * 2))
                    elif [[ ${SUP_STATE[$name]} == starting ]] && sup_ready "$name" "$pid"; then
                        SUP_STATE[$name]=running
                        sup_say "$name ready (pid $pid, up in $(since "${SUP_T0[$name]}"), restarts: ${SUP_RESTARTS[$name]})"
                    fi
                    ;;
                backoff)
                    if ((now >= SUP_DUE[$name])); then
                        SUP_RESTARTS[$name]=$((SUP_RESTARTS[$name] + 1))
                        sup_start "$name"
                        sup_say "$name restarted (pid ${SUP_PID[$name]}, restart ${SUP_RESTARTS[$name]})"
                    fi
                    ;;
            esac
        done
        if ! $all_ready; then
            all_ready=true
            for name in "$@"; do
                [[ ${SUP_STATE[$name]} == running ]] || all_ready=false
            done
            if $all_ready && declare -F sup_all_ready >/dev/null; then
                sup_all_ready
            fi
        fi
        sleep "$SUP_TICK"
    done
}
