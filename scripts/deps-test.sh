#!/usr/bin/env bash
# Install the tools only the tests need (`make deps-test`; `make test` runs it first), each
# once per machine and skipped when present: cargo-nextest; the chart check's Python venv
# (scripts/chart-tools.txt, in CHART_TOOLS_ROOT); helm $HELM_VERSION and promtool (Prometheus'
# Go module $PROMTOOL_VERSION), built from their pinned Go modules into HELM_ROOT and
# PROMTOOL_ROOT; kube-apiserver, kube-controller-manager, kubectl and etcd of the operator tests
# (scripts/kube-tools.sh, into KUBE_TOOLS_ROOT); the Gateway API's HTTPRoute CRD of the operator
# tests (Go module sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION, into GATEWAY_API_ROOT); nginx
# for the ingress tests (Debian's nginx-light, at NGINX_BIN); Chromium for the browser tests
# (Debian's chromium, at CHROMIUM_BIN).
# Everything outside the repository, shared by every clone on the machine (CI's too). `make dev`
# needs none of it. Each step prints its time; a failed step says how to retry.
#
# One step per tool: a new tool is one more `step NAME RETRY` line and its install command.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The -ldflags of Helm's own release build (its Makefile): the version `helm version` prints,
# and the default Kubernetes version of lint/template, which Helm derives from its client-go
# (v0.N.x -> 1.N). Without them a `go install` build prints "v3.22" and assumes Kubernetes 1.20.
helm_ldflags() {
    local go gomod minor
    go=$(go_cmd)
    [[ -n $go ]] || die "go not found (on PATH or /usr/local/go/bin): helm is built from its Go module"
    gomod=$(cd / && GOFLAGS=-mod=mod GOTOOLCHAIN=local "$go" mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    [[ -n $gomod && -r $gomod ]] || die "go mod download helm.sh/helm/v3@$HELM_VERSION failed (no such version, or no network?)"
    minor=$(sed -n 's|^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*|\1|p' "$gomod")
    [[ $minor =~ ^[0-9]+$ ]] || die "cannot read helm $HELM_VERSION's client-go version from $gomod"
    local x=-X p=helm.sh/helm/v3
    printf '%s\n' "$x $p/internal/version.version=$HELM_VERSION" \
        "$x $p/pkg/lint/rules.k8sVersionMajor=1 $x $p/pkg/lint/rules.k8sVersionMinor=$minor" \
        "$x $p/pkg/chartutil.k8sVersionMajor=1 $x $p/pkg/chartutil.k8sVersionMinor=$minor" | tr '\n' ' '
}

step cargo-nextest "make deps-test"
if "$CARGO" nextest --version >/dev/null 2>&1; then
    info "cargo-nextest present ($("$CARGO" nextest --version 2>/dev/null | head -n 1))"
else
    command -v "$CARGO" >/dev/null || die "$CARGO not found: install the Rust toolchain (rustup) first"
    install_lock "$HOME/.local/share/palaver/cargo-nextest.lock" cargo-nextest
    if ! "$CARGO" nextest --version >/dev/null 2>&1; then
        info "cargo install cargo-nextest --locked (a few minutes)"
        "$CARGO" install cargo-nextest --locked
    fi
    exec 9>&-
fi

step "chart tools (Python venv)" "make deps-test"
if chart_tools_ok; then
    info "chart tools present ($CHART_TOOLS_ROOT)"
else
    python_ok || apt_install python3 python3-venv
    python_ok || die "python3 >= 3.10 with the venv module is needed for the chart tools"
    install_lock "$CHART_TOOLS_ROOT.lock" "the chart tools"
    if ! chart_tools_ok; then
        info "installing the chart tools (scripts/chart-tools.txt) into $CHART_TOOLS_ROOT"
        rm -rf "$CHART_TOOLS_ROOT"
        python3 -m venv "$CHART_TOOLS_ROOT"
        # Wheels only: a source build of a native package (rpds-py, PyYAML) would need
        # compilers and is not what was tested.
        "$CHART_TOOLS_ROOT/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
            --only-binary=:all: --requirement "$REPO_ROOT/scripts/chart-tools.txt"
        # Recorded last: a venv without it is an interrupted install and is rebuilt.
        chart_tools_pins >"$CHART_TOOLS_ROOT/palaver-pins.txt"
        info "chart tools installed ($CHART_TOOLS_ROOT)"
    fi
    exec 9>&-
fi

step "helm $HELM_VERSION" "make deps-test"
if go_tool_ok helm "$HELM_ROOT" "$HELM_VERSION"; then
    info "helm $HELM_VERSION present ($HELM_ROOT/bin/helm)"
else
    # Assigned first, so a failure in helm_ldflags stops the script (set -e).
    ldflags=$(helm_ldflags)
    CGO_ENABLED=0 go_tool_install helm "$HELM_ROOT" helm.sh/helm/v3/cmd/helm "$HELM_VERSION" -ldflags "$ldflags"
fi

# Prometheus publishes release 3.N.P as Go module version v0.3NN.P; its release build sets the
# version `promtool --version` prints the same way.
prom_release() {
    local v=${PROMTOOL_VERSION#v0.}
    printf '%d.%d.%s\n' $((${v%%.*} / 100)) $((${v%%.*} % 100)) "${v#*.}"
}
step "promtool $PROMTOOL_VERSION" "make deps-test"
go_tool_install promtool "$PROMTOOL_ROOT" github.com/prometheus/prometheus/cmd/promtool "$PROMTOOL_VERSION" \
    -ldflags "-X github.com/prometheus/common/version.Version=$(prom_release)"

step "Kubernetes $KUBE_VERSION test tools (kube-apiserver, kube-controller-manager, kubectl, etcd)" "make deps-test"
bash "$REPO_ROOT/scripts/kube-tools.sh"

# The HTTPRoute CRD as the Gateway API release publishes it (standard channel), so the operator
# tests apply HTTPRoutes against its real schema and CEL rules. The Go module holds the release's
# config/ tree; `go mod download` verifies it against the checksum database.
gateway_api_crd() {
    local go dir crd=$GATEWAY_API_ROOT/httproutes.yaml
    go=$(go_cmd)
    [[ -n $go ]] || die "go not found (on PATH or /usr/local/go/bin): the Gateway API CRD comes from its Go module"
    dir=$(cd / && GOFLAGS=-mod=mod GOTOOLCHAIN=local "$go" mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
    [[ -n $dir && -d $dir ]] || die "go mod download sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION failed (no such version, or no network?)"
    local src=$dir/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml
    [[ -r $src ]] || die "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION has no $src"
    mkdir -p "$GATEWAY_API_ROOT"
    # Copied next to its place and renamed: an interrupted copy never looks complete.
    install -m 0644 "$src" "$crd.tmp"
    mv "$crd.tmp" "$crd"
    info "Gateway API $GATEWAY_API_VERSION HTTPRoute CRD installed ($crd)"
}
step "Gateway API $GATEWAY_API_VERSION HTTPRoute CRD" "make deps-test"
if [[ -s $GATEWAY_API_ROOT/httproutes.yaml ]]; then
    info "Gateway API $GATEWAY_API_VERSION HTTPRoute CRD present ($GATEWAY_API_ROOT/httproutes.yaml)"
else
    gateway_api_crd
fi

# The ingress tests (e2e/tests/ingress.rs) put a private nginx on loopback in front of pods, as
# an ingress controller would be. Debian's package also enables a system nginx on port 80:
# the tests never use it, so a fresh install leaves it stopped.
step "nginx (ingress tests)" "make deps-test"
if [[ -x ${NGINX_BIN:-/usr/sbin/nginx} ]]; then
    info "nginx present ($("${NGINX_BIN:-/usr/sbin/nginx}" -v 2>&1))"
else
    apt_install nginx-light
    if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
        "${SUDO[@]}" systemctl disable --now nginx >/dev/null 2>&1 || info "could not stop the system nginx service (harmless)"
    fi
    [[ -x ${NGINX_BIN:-/usr/sbin/nginx} ]] || die "nginx-light installed but ${NGINX_BIN:-/usr/sbin/nginx} is missing"
fi

# The browser tests (e2e/tests/web.rs) drive Debian's Chromium with playwright-core, an npm
# package that brings no browser (browser-download installers do not work on these machines).
# The emoji font makes reactions visible in the tests' screenshots (Chromium draws nothing
# without one).
step "chromium (browser tests)" "make deps-test"
browser_pkgs=()
if [[ -x ${CHROMIUM_BIN:-/usr/bin/chromium} ]]; then
    info "chromium present ($("${CHROMIUM_BIN:-/usr/bin/chromium}" --version 2>/dev/null | head -n 1))"
else
    browser_pkgs+=(chromium)
fi
dpkg-query -W -f='${Status}' fonts-noto-color-emoji 2>/dev/null | grep -q 'install ok installed' || browser_pkgs+=(fonts-noto-color-emoji)
if ((${#browser_pkgs[@]})); then
    apt_install "${browser_pkgs[@]}"
    [[ -x ${CHROMIUM_BIN:-/usr/bin/chromium} ]] || die "chromium installed but ${CHROMIUM_BIN:-/usr/bin/chromium} is missing"
fi
