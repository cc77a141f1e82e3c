#!/usr/bin/env bash
# Local development: start the stack, provision the "demo" workspace and run two palaverd
# pods, pod-a and pod-b, in the foreground with prefixed output, supervised the way a
# Deployment would run them: a pod that dies (kill -9 it to watch clients fail over) is
# restarted after a short backoff while the other keeps serving (scripts/supervisor.sh).
# Only Ctrl-C stops everything: the pods, then whatever this run started of the stack.
# Expects the debug binaries (make dev builds them).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/supervisor.sh
source "$REPO_ROOT/scripts/supervisor.sh"

: "${PALAVER_DEV_JWT_SECRET:=palaver-dev-secret-change-me}"
: "${DEV_WORKSPACE:=demo}"
: "${DEV_LISTEN_A:=127.0.0.1:8081}"
: "${DEV_LISTEN_B:=127.0.0.1:8082}"
: "${RUST_LOG:=info}"
export PALAVER_DEV_JWT_SECRET RUST_LOG

step "check the binaries and ports" "make dev"
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
step "provision workspace $DEV_WORKSPACE" "make dev"
info "dev: provisioning workspace $DEV_WORKSPACE ($manifest)"
"$bin_dir/palaver-operator" provision -f "$manifest"

# The supervised pods (scripts/supervisor.sh). Each gets the stack's addresses from the
# environment lib.sh exports (PALAVER_DATABASE_URL, PALAVER_REDIS_URL, PALAVER_KAFKA_BROKERS,
# the PALAVER_S3_* settings of the attachments' object storage).
declare -A POD_LISTEN=([pod-a]=$DEV_LISTEN_A [pod-b]=$DEV_LISTEN_B)
sup_exec() {
    PALAVER_LISTEN=${POD_LISTEN[$1]} PALAVER_POD_ID=$1 exec "$bin_dir/palaverd" serve
}
# Ready as a Deployment's readiness probe sees it: GET /readyz answers 200.
sup_ready() {
    local listen=${POD_LISTEN[$1]}
    http_ok "${listen%:*}" "${listen##*:}" /readyz
}

bin_shown=${bin_dir#"$REPO_ROOT"/}
pid_shown=${PID_DIR#"$REPO_ROOT"/}
secret_shown=$PALAVER_DEV_JWT_SECRET
[[ $PALAVER_DEV_JWT_SECRET == palaver-dev-secret-change-me ]] || secret_shown='<your PALAVER_DEV_JWT_SECRET>'
s3_secret_shown=$PALAVER_S3_SECRET_ACCESS_KEY
[[ $PALAVER_S3_SECRET_ACCESS_KEY == palaver-dev-secret-key ]] || s3_secret_shown='<your PALAVER_S3_SECRET_ACCESS_KEY>'
web_note=
[[ -r $REPO_ROOT/clients/web/dist/index.html ]] ||
    web_note="            (not built here: Node.js 20.19+ is missing, so the page says the web client was not built)
"
sup_all_ready() {
    step_end
    local since_make=
    # PALAVER_MAKE_T0: when `make` started (the Makefile sets it), so deps and build count too.
    if [[ ${PALAVER_MAKE_T0:-} =~ ^[0-9]+$ ]]; then
        since_make=" $(($(date +%s) - PALAVER_MAKE_T0))s after make started,"
    fi
    cat <<BANNER

  Palaver dev ready,$since_make $(since "$SCRIPT_T0") after dev.sh started.

  Open http://$DEV_LISTEN_A   (the web app: sign in with any user name; pod-b: http://$DEV_LISTEN_B)
$web_note
  pod-a ws://$DEV_LISTEN_A   pod-b ws://$DEV_LISTEN_B   workspace $DEV_WORKSPACE
  S3:       $PALAVER_S3_ENDPOINT   bucket $PALAVER_S3_BUCKET   region $PALAVER_S3_REGION   (attachments)
            access key $PALAVER_S3_ACCESS_KEY_ID   secret key $s3_secret_shown   (dev-only values)

  Token:    TOKEN=\$(PALAVER_DEV_JWT_SECRET='$secret_shown' $bin_shown/palaverd token --workspace $DEV_WORKSPACE --user alice)
  Connect:  websocat "ws://$DEV_LISTEN_A/v1/ws?token=\$TOKEN"
  Failover: kill -9 \$(cat $pid_shown/pod-a.pid)   (restarted after a backoff; clients resume on pod-b)

  Ctrl-C stops both pods and what this run started.

BANNER
}

step "start pods" "make dev"
supervise pod-a pod-b
