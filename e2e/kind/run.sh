#!/usr/bin/env bash
# Palaver end to end on a real Kubernetes (kind): build the palaverd, operator and palaver-bench
# images, install the chart, run examples/ against in-cluster Postgres, Redis and Kafka, and check
# what `make test` cannot (README.md next to this file). Prints PASS on success.
#
#   e2e/kind/run.sh [--keep]
#
# --keep   keep the kind cluster afterwards (default: delete it, also after a failure).
#
# Environment (defaults in brackets):
#   CLUSTER          kind cluster name [palaver-e2e]; an existing one is reused
#   KIND_NODE_IMAGE  node image for a new cluster, e.g. a kindest/node v1.33 image [kind's default]
#   TAG              tag of the images built here [e2e]
#   LOCAL_PORT       local port of the gateway port-forward [18080]
#   OPERATOR_PORT    local port of the operator port-forward [18081]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/e2e/kind"
CLUSTER=${CLUSTER:-palaver-e2e}
CTX="kind-$CLUSTER"
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-}
TAG=${TAG:-e2e}
LOCAL_PORT=${LOCAL_PORT:-18080}
OPERATOR_PORT=${OPERATOR_PORT:-18081}
PALAVERD_IMAGE="palaver/palaverd:$TAG"
OPERATOR_REPO="palaver/palaver-operator"
BENCH_IMAGE="palaver/palaver-bench:$TAG"
RELEASE=palaver        # the chart's full name is then "palaver" too
OPNS=palaver-system
NS=chat CC=main WS=acme  # what examples/ create
# Test only: an HS256 secret the gateways accept besides the ChatCluster's public key, so
# `palaverd token` and palaver-bench can mint tokens (README.md: "Tokens").
DEV_SECRET=palaver-e2e-dev-secret
DSN="postgres://postgres@postgres.palaver-deps.svc.cluster.local:5432/palaver"
REDIS_URL="redis://redis.palaver-deps.svc.cluster.local:6379"

KEEP=0
for arg in "$@"; do
    case $arg in
        --keep) KEEP=1 ;;
        -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

info() { printf '\n==> %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
k() { kubectl --context "$CTX" "$@"; }

WORK=$(mktemp -d)
FORWARDS=()
CLUSTER_IN_USE=0

diagnostics() {
    info "diagnostics"
    k get nodes -o wide || true
    k get pods -A -o wide || true
    k -n "$NS" get chatclusters,workspaces,deployments,services,configmaps,hpa,pdb || true
    k -n "$NS" describe chatcluster "$CC" || true
    k -n "$NS" describe workspace "$WS" || true
    k -n "$NS" get events --sort-by=.lastTimestamp | tail -n 60 || true
    k -n "$OPNS" get lease "$RELEASE" -o yaml || true
    k -n "$OPNS" logs -l app.kubernetes.io/component=operator --prefix --tail=200 || true
    k -n "$NS" logs -l app.kubernetes.io/component=gateway --prefix --tail=100 || true
    k -n "$NS" logs palaver-bench --tail=50 || true
}

cleanup() {
    local rc=$?
    for pid in ${FORWARDS[@]+"${FORWARDS[@]}"}; do
        kill "$pid" 2>/dev/null || true
    done
    if ((rc != 0 && CLUSTER_IN_USE)); then
        diagnostics
    fi
    if ((CLUSTER_IN_USE)); then
        if ((KEEP)); then
            echo "kept: kind cluster $CLUSTER (kubectl --context $CTX ...; delete: kind delete cluster --name $CLUSTER)"
        else
            info "deleting kind cluster $CLUSTER (--keep keeps it)"
            kind delete cluster --name "$CLUSTER" || true
        fi
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

# wait_until SECONDS DESCRIPTION COMMAND...: retry COMMAND every 2 s until it succeeds.
wait_until() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
        sleep 2
    done
}

gone() { ! k "$@" >/dev/null 2>&1; }

# port_forward LOCAL_PORT TARGET_PORT RESOURCE NAMESPACE: background port-forward, waits for it.
port_forward() {
    local lport=$1 tport=$2 resource=$3 ns=$4
    # kubectl itself in the background (not the k function, whose subshell would hide its pid).
    kubectl --context "$CTX" -n "$ns" port-forward "$resource" "$lport:$tport" >"$WORK/pf-$lport.log" 2>&1 &
    FORWARDS+=($!)
    wait_until 30 "port-forward to $resource" curl -s -o /dev/null "http://127.0.0.1:$lport/healthz"
}

# expect_refused DESCRIPTION MESSAGE COMMAND...: COMMAND must fail and print MESSAGE.
expect_refused() {
    local what=$1 message=$2
    shift 2
    if "$@" >"$WORK/refused.out" 2>&1; then
        die "the API server accepted $what"
    fi
    grep -qF "$message" "$WORK/refused.out" || die "$what refused, but not with \"$message\": $(cat "$WORK/refused.out")"
    echo "ok: $what refused ($message)"
}

info "checking tools"
for tool in docker kind kubectl helm openssl curl; do
    command -v "$tool" >/dev/null || die "$tool not found on PATH"
done
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"

info "kind cluster $CLUSTER"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    echo "reusing the existing cluster"
else
    create=(kind create cluster --name "$CLUSTER" --wait 120s)
    if [[ -n $KIND_NODE_IMAGE ]]; then
        create+=(--image "$KIND_NODE_IMAGE")
    fi
    "${create[@]}"
fi
CLUSTER_IN_USE=1
k version

info "building images ($PALAVERD_IMAGE, $OPERATOR_REPO:$TAG, $BENCH_IMAGE)"
docker build -f "$ROOT/Dockerfile.palaverd" -t "$PALAVERD_IMAGE" "$ROOT"
docker build -f "$ROOT/Dockerfile.operator" -t "$OPERATOR_REPO:$TAG" "$ROOT"
docker build -f "$HERE/Dockerfile.bench" -t "$BENCH_IMAGE" "$ROOT"
kind load docker-image --name "$CLUSTER" "$PALAVERD_IMAGE" "$OPERATOR_REPO:$TAG" "$BENCH_IMAGE"

info "Postgres, Redis and Kafka (e2e/kind/manifests)"
k apply -f "$HERE/manifests/"
k -n palaver-deps rollout status deployment/postgres --timeout=300s
k -n palaver-deps rollout status deployment/redis --timeout=300s
k -n kafka rollout status deployment/kafka --timeout=300s

info "Secrets of examples/chatcluster.yaml (namespace $NS)"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/jwt.key"
openssl ec -in "$WORK/jwt.key" -pubout -out "$WORK/public.pem" 2>/dev/null
apply_generated() { k -n "$NS" create "$@" --dry-run=client -o yaml | k apply -f -; }
apply_generated secret generic palaver-postgres --from-literal=dsn="$DSN"
apply_generated secret generic palaver-redis --from-literal=url="$REDIS_URL"
apply_generated secret generic palaver-jwt --from-file=public.pem="$WORK/public.pem"
# The operator server-side-applies its own keys into this ConfigMap and leaves this one (owned by
# another field manager) alone: the gateways then also accept HS256 tokens of the dev secret.
apply_generated configmap "$CC-config" --from-literal=PALAVER_DEV_JWT_SECRET="$DEV_SECRET"

info "helm upgrade --install $RELEASE charts/palaver (2 replicas)"
helm --kube-context "$CTX" upgrade --install "$RELEASE" "$ROOT/charts/palaver" \
    --namespace "$OPNS" --create-namespace \
    --set image.repository="$OPERATOR_REPO" --set image.tag="$TAG" \
    --set replicaCount=2 --wait --timeout 5m
lease_holder() { k -n "$OPNS" get lease "$RELEASE" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
has_leader() { [[ -n $(lease_holder) ]]; }
wait_until 60 "an operator replica to hold Lease $OPNS/$RELEASE" has_leader
LEADER=$(lease_holder)
echo "leader: $LEADER"

info "CEL rules are enforced by the API server"
expect_refused "a Workspace named bad--name" "workspace names are 2-41 of a-z" \
    k -n "$NS" create --dry-run=server -f - <<<"apiVersion: palaver.dev/v1alpha1
kind: Workspace
metadata: { name: bad--name, namespace: $NS }
spec: { clusterRef: $CC }"
k patch --local -f "$ROOT/examples/chatcluster.yaml" --type merge -o yaml \
    -p '{"metadata":{"name":"cel-check"},"spec":{"autoscaling":{"minReplicas":5,"maxReplicas":3}}}' \
    >"$WORK/bad-autoscaling.yaml"
expect_refused "autoscaling.minReplicas > maxReplicas" "minReplicas must not exceed maxReplicas" \
    k create --dry-run=server -f "$WORK/bad-autoscaling.yaml"

info "applying examples/ (ChatCluster: image $PALAVERD_IMAGE, issuer palaver, 100m CPU request)"
k patch --local -f "$ROOT/examples/chatcluster.yaml" --type merge -o yaml \
    -p "{\"spec\":{\"image\":\"$PALAVERD_IMAGE\",\"auth\":{\"issuer\":\"palaver\"},\"resources\":{\"requests\":{\"cpu\":\"100m\"}}}}" \
    | k apply -f -
k apply -f "$ROOT/examples/workspace.yaml"
[[ $(k -n "$NS" get chatcluster "$CC" -o jsonpath='{.spec.image}') == "$PALAVERD_IMAGE" ]] \
    || die "the ChatCluster does not carry the image built here"

info "waiting for ChatCluster $CC and Workspace $WS to be Ready"
k -n "$NS" wait --for=condition=Ready "workspace/$WS" --timeout=300s
k -n "$NS" wait --for=condition=Ready "chatcluster/$CC" --timeout=300s
k -n "$NS" rollout status "deployment/$CC-gateway" --timeout=300s
k -n "$NS" get chatcluster,workspace
[[ $(k -n "$NS" get workspace "$WS" -o jsonpath='{.status.partitions}') == 6 ]] \
    || die "Workspace $WS: status.partitions is not 6"
if gone get crd servicemonitors.monitoring.coreos.com; then
    reason=$(k -n "$NS" get chatcluster "$CC" -o jsonpath='{.status.conditions[?(@.type=="Degraded")].reason}')
    [[ $reason == MonitoringUnavailable ]] || die "ChatCluster Degraded reason is '$reason', want MonitoringUnavailable (no Prometheus Operator CRDs)"
    echo "ok: monitoring asked for without its CRDs: Degraded=MonitoringUnavailable, still Ready"
fi
k -n "$NS" get configmap "$CC-dashboards" >/dev/null || die "no dashboards ConfigMap $CC-dashboards"

info "partitions may only grow (CEL rule, real API server)"
expect_refused "shrinking spec.partitions" "partitions may only grow" \
    k -n "$NS" patch workspace "$WS" --type merge -p '{"spec":{"partitions":3}}' --dry-run=server
expect_refused "changing spec.clusterRef" "clusterRef is immutable" \
    k -n "$NS" patch workspace "$WS" --type merge -p '{"spec":{"clusterRef":"other"}}' --dry-run=server

info "server-side apply: the operator owns its fields, another manager's stay"
[[ $(k -n "$NS" get configmap "$CC-config" -o jsonpath='{.metadata.managedFields[?(@.manager=="palaver-operator")].operation}') == Apply ]] \
    || die "ConfigMap $CC-config has no Apply entry of field manager palaver-operator"
[[ $(k -n "$NS" get configmap "$CC-config" -o jsonpath='{.data.PALAVER_JWT_ISSUER}') == palaver ]] \
    || die "ConfigMap $CC-config lacks the operator's PALAVER_JWT_ISSUER"
[[ -n $(k -n "$NS" get configmap "$CC-config" -o jsonpath='{.data.PALAVER_DEV_JWT_SECRET}') ]] \
    || die "the operator's apply removed a key it does not own"

info "drift repair: a deleted child comes back"
k -n "$NS" delete service "$CC-headless" --wait=true
wait_until 60 "Service $CC-headless to be recreated" k -n "$NS" get service "$CC-headless"
echo "ok: Service $CC-headless recreated"

info "REST through the client Service (port-forward 127.0.0.1:$LOCAL_PORT -> svc/$CC:80)"
port_forward "$LOCAL_PORT" 80 "svc/$CC" "$NS"
BASE="http://127.0.0.1:$LOCAL_PORT"
curl -fsS "$BASE/readyz"
echo
TOKEN=$(docker run --rm -e PALAVER_DEV_JWT_SECRET="$DEV_SECRET" "$PALAVERD_IMAGE" token --workspace "$WS" --user alice)
auth=(-H "Authorization: Bearer $TOKEN")
# Responses are read whole before grep: under pipefail an early `grep -q` exit could fail curl.
channels=$(curl -fsS "${auth[@]}" "$BASE/v1/channels")
grep -q c_general <<<"$channels" || die "alice does not see #general: $channels"
text="hello from kind $RANDOM$RANDOM"
curl -fsS "${auth[@]}" -H 'content-type: application/json' \
    -d "{\"cmid\":\"e2e-$RANDOM$RANDOM\",\"text\":\"$text\"}" "$BASE/v1/channels/c_general/messages"
echo
history=$(curl -fsS "${auth[@]}" "$BASE/v1/channels/c_general/events?limit=200")
grep -qF "$text" <<<"$history" || die "the message sent over REST is not in the history"
metrics=$(curl -fsS "$BASE/metrics")
grep -q '^palaver_connections' <<<"$metrics" || die "palaverd /metrics lacks palaver_connections"
echo "ok: token, channels, send, history, metrics"

info "WebSocket: palaver-bench against every gateway pod"
PODS=$(k -n "$NS" get pods -l "app.kubernetes.io/instance=$CC,app.kubernetes.io/component=gateway" \
    -o jsonpath='{range .items[*]}ws://{.status.podIP}:8080,{end}')
PODS=${PODS%,}
[[ -n $PODS ]] || die "no gateway pods"
echo "pods: $PODS"
k -n "$NS" delete pod palaver-bench --ignore-not-found --wait=true
k -n "$NS" run palaver-bench --image="$BENCH_IMAGE" --image-pull-policy=IfNotPresent --restart=Never \
    --env="PALAVER_DEV_JWT_SECRET=$DEV_SECRET" -- \
    --pods "$PODS" --workspace "$WS" --users 20 --channels 4 --members 5 --senders 4 \
    --rate 20 --duration 10 --drain 20
bench_done() {
    local phase
    phase=$(k -n "$NS" get pod palaver-bench -o jsonpath='{.status.phase}')
    [[ $phase == Succeeded || $phase == Failed ]]
}
wait_until 300 "palaver-bench to finish" bench_done
k -n "$NS" logs palaver-bench
[[ $(k -n "$NS" get pod palaver-bench -o jsonpath='{.status.phase}') == Succeeded ]] \
    || die "palaver-bench reported lost, reordered or refused messages"
k -n "$NS" delete pod palaver-bench --wait=false

info "growing partitions and changing retention against real Kafka (CreatePartitions, AlterConfigs)"
k -n "$NS" patch workspace "$WS" --type merge -p '{"spec":{"partitions":8,"retentionHours":72}}'
GEN=$(k -n "$NS" get workspace "$WS" -o jsonpath='{.metadata.generation}')
ws_caught_up() {
    [[ $(k -n "$NS" get workspace "$WS" \
        -o jsonpath='{.status.observedGeneration}/{.status.partitions}/{.status.conditions[?(@.type=="Ready")].status}') \
        == "$GEN/8/True" ]]
}
wait_until 120 "Workspace $WS to be provisioned at generation $GEN with 8 partitions" ws_caught_up
topic=$(k -n kafka exec deploy/kafka -- /opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9092 \
    --describe --topic "palaver.$WS.events")
grep -q 'PartitionCount: 8' <<<"$topic" || die "topic palaver.$WS.events does not have 8 partitions: $topic"
grep -q 'retention.ms=259200000' <<<"$topic" || die "topic palaver.$WS.events does not keep 72 h: $topic"
pg_query() { k -n palaver-deps exec deploy/postgres -- psql -U postgres -d palaver -XAtc "$1"; }
[[ $(pg_query "SELECT partitions || '/' || retention_hours FROM palaver_control.workspaces WHERE name = '$WS'") == 8/72 ]] \
    || die "the registry row of $WS does not record 8 partitions and 72 h"
echo "ok: 8 partitions, retention.ms=259200000, registry updated"

info "operator metrics (leader $LEADER)"
port_forward "$OPERATOR_PORT" 8080 "pod/$LEADER" "$OPNS"
curl -fsS "http://127.0.0.1:$OPERATOR_PORT/metrics" >"$WORK/operator.metrics"
grep -q '^palaver_operator_leader 1' "$WORK/operator.metrics" || die "the Lease holder does not report palaver_operator_leader 1"
grep -q "^palaver_operator_resource_ready{.*name=\"$WS\".*} 1" "$WORK/operator.metrics" \
    || die "palaver_operator_resource_ready of Workspace $WS is not 1"
curl -fsS "http://127.0.0.1:$OPERATOR_PORT/readyz" >/dev/null
echo "ok: leader 1, Workspace ready 1, /readyz 200"

info "leader election: deleting the leader pod hands the Lease to the other replica"
k -n "$OPNS" delete pod "$LEADER" --wait=false
new_leader() { local h; h=$(lease_holder); [[ -n $h && $h != "$LEADER" ]]; }
wait_until 90 "another replica to take the Lease" new_leader
echo "ok: new leader $(lease_holder)"

info "deleting Workspace $WS (deletionPolicy Retain): the finalizer is released"
k -n "$NS" delete workspace "$WS" --wait=false
wait_until 120 "Workspace $WS to be deleted" gone -n "$NS" get workspace "$WS"
[[ -n $(k -n "$NS" get events --field-selector reason=Deprovisioned -o name) ]] || die "no Deprovisioned event"
[[ $(pg_query "SELECT count(*) FROM palaver_control.workspaces WHERE name = '$WS'") == 0 ]] || die "$WS is still registered"
[[ $(pg_query "SELECT count(*) FROM pg_namespace WHERE nspname = 'ws_$WS'") == 1 ]] || die "Retain dropped schema ws_$WS"
echo "ok: deregistered, schema ws_$WS retained, Deprovisioned event"

info "deleting ChatCluster $CC: the garbage collector removes what it owned"
k -n "$NS" delete chatcluster "$CC" --wait=true --timeout=120s
wait_until 120 "Deployment $CC-gateway to be garbage-collected" gone -n "$NS" get deployment "$CC-gateway"
wait_until 60 "Service $CC to be garbage-collected" gone -n "$NS" get service "$CC"
wait_until 60 "ConfigMap $CC-config to be garbage-collected" gone -n "$NS" get configmap "$CC-config"
echo "ok: Deployment, Service, ConfigMap collected"

printf '\nPASS\n'
