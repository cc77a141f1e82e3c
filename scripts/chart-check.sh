#!/usr/bin/env bash
# Check the Helm chart charts/palaver offline, with the pinned tools `make deps` installs into
# CHART_TOOLS_ROOT (scripts/chart-tools.txt) and the helm and promtool binaries of `make
# deps-test`: `helm lint --strict` and `helm template` with the default values and with
# ci/all-on-values.yaml; validate every rendered built-in object and the CRDs against the
# Kubernetes 1.33 schemas; shape-check the ServiceMonitor/PrometheusRule; parse every alert and
# dashboard query as PromQL; `promtool check rules` and `promtool test rules` (files/alerts/tests:
# every alert fires once and stays quiet once); chart crds/ equal to crds/manifests/ byte for
# byte; and values.schema.json rejecting bad values. No cluster, no network. Details:
# scripts/chart_check.py.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

chart_tools_ok || die "chart tools missing or stale in $CHART_TOOLS_ROOT: run 'make deps'"
go_tool_ok helm "$HELM_ROOT" "$HELM_VERSION" || die "helm $HELM_VERSION missing in $HELM_ROOT: run 'make deps-test'"
go_tool_ok promtool "$PROMTOOL_ROOT" "$PROMTOOL_VERSION" ||
    die "promtool $PROMTOOL_VERSION missing in $PROMTOOL_ROOT: run 'make deps-test'"
info "chart: checking charts/palaver (helm $HELM_VERSION, promtool $PROMTOOL_VERSION)"
HELM="$HELM_ROOT/bin/helm" PROMTOOL="$PROMTOOL_ROOT/bin/promtool" \
    "$CHART_TOOLS_ROOT/bin/python" "$REPO_ROOT/scripts/chart_check.py" "$REPO_ROOT"
