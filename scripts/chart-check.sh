#!/usr/bin/env bash
# Check the Helm chart charts/palaver offline, with the pinned tools `make deps` installs into
# CHART_TOOLS_ROOT (scripts/chart-tools.txt): helm lint; render with the default values and
# with ci/all-on-values.yaml; validate every rendered built-in object and the CRDs against the
# Kubernetes 1.33 schemas; shape-check the ServiceMonitor/PrometheusRule; parse every alert and
# dashboard query as PromQL; chart crds/ equal to crds/manifests/ byte for byte; and
# values.schema.json rejecting bad values. No cluster, no network. Details: scripts/chart_check.py.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

chart_tools_ok || die "chart tools missing or stale in $CHART_TOOLS_ROOT: run 'make deps'"
info "chart: checking charts/palaver"
"$CHART_TOOLS_ROOT/bin/python" "$REPO_ROOT/scripts/chart_check.py" "$REPO_ROOT"
