#!/usr/bin/env bash
# Local development: start the stack, provision the "demo" workspace and run two
# palaverd pods in the foreground with prefixed output. Ctrl-C stops the pods and
# whatever this run started. Expects the debug binaries (make dev builds them).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${PALAVER_DEV_JWT_SECRET:=palaver-dev-secret-change-me}"
: "${DEV_WORKSPACE:=demo}"
: "${DEV_LISTEN_A:=127.0.0.1:8081}"
: "${DEV_LISTEN_B:=127.0.0.1:8082}"
: "${RUST_LOG:=info}"
export PALAVER_DEV_JWT_SECRET RUST_LOG

bin_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
for b in palaverd palaver-operator; do
    [[ -x $bin_dir/$b ]] || die "$bin_dir/$b not found: run \`make build\` (make dev does)"
done
for listen in "$DEV_LISTEN_A" "$DEV_LISTEN_B"; do
    ! tcp_open "${listen%:*}" "${listen##*:}" || die "$listen is already in use (another make dev?)"
done

stack_run_begin

# The same Workspace manifest a cluster would get, provisioned by the same code the operator
# runs, without Kubernetes.
manifest="$DEV_DIR/workspace-$DEV_WORKSPACE.yaml"
mkdir -p "$DEV_DIR"
cat >"$manifest" <<EOF
apiVersion: palaver.dev/v1alpha1
kind: Workspace
metadata:
  name: $DEV_WORKSPACE
spec:
  clusterRef: dev
  displayName: $DEV_WORKSPACE (make dev)
  partitions: 3
  defaultChannels: [general, random]
EOF
info "dev: provisioning workspace $DEV_WORKSPACE ($manifest)"
"$bin_dir/palaver-operator" provision -f "$manifest"

# start_pod NAME LISTEN: palaverd in the background, each output line prefixed with
# NAME. The prefixer ignores Ctrl-C so it still forwards the pod's last lines.
start_pod() {
    local name=$1 listen=$2
    PALAVER_LISTEN=$listen PALAVER_POD_ID=$name "$bin_dir/palaverd" serve \
        > >(trap '' INT TERM; exec sed -u "s/^/[$name] /") 2>&1 &
    RUN_POD_PIDS+=($!)
}
start_pod pod-a "$DEV_LISTEN_A"
start_pod pod-b "$DEV_LISTEN_B"
wait_for "pod-a on $DEV_LISTEN_A" "" "${RUN_POD_PIDS[0]}" tcp_open "${DEV_LISTEN_A%:*}" "${DEV_LISTEN_A##*:}"
wait_for "pod-b on $DEV_LISTEN_B" "" "${RUN_POD_PIDS[1]}" tcp_open "${DEV_LISTEN_B%:*}" "${DEV_LISTEN_B##*:}"

bin_shown=${bin_dir#"$REPO_ROOT"/}
secret_shown=$PALAVER_DEV_JWT_SECRET
[[ $PALAVER_DEV_JWT_SECRET == palaver-dev-secret-change-me ]] || secret_shown='<your PALAVER_DEV_JWT_SECRET>'
cat <<BANNER

  Palaver dev: pod-a ws://$DEV_LISTEN_A   pod-b ws://$DEV_LISTEN_B   workspace $DEV_WORKSPACE

  Token:   TOKEN=\$(PALAVER_DEV_JWT_SECRET='$secret_shown' $bin_shown/palaverd token --workspace $DEV_WORKSPACE --user alice)
  Connect: websocat "ws://$DEV_LISTEN_A/v1/ws?token=\$TOKEN"

  Ctrl-C stops both pods and what this run started.

BANNER

# Run until Ctrl-C or until a pod exits on its own (then stop the other one too).
status=0
wait -n "${RUN_POD_PIDS[@]}" || status=$?
warn "a pod exited (status $status): stopping"
exit "$((status == 0 ? 1 : status))"
