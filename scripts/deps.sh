#!/usr/bin/env bash
# Install what the local stack and the tests need, skipping what is present:
# PostgreSQL and Redis (Debian packages), tansu $TANSU_VERSION (cargo install, into
# TANSU_ROOT outside the repo so every clone on the machine shares one build),
# cargo-nextest, and the chart-check tools (a Python venv in CHART_TOOLS_ROOT, also
# outside the repo).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v "$CARGO" >/dev/null || die "$CARGO not found: install the Rust toolchain (rustup) first"

# --- Debian packages --------------------------------------------------------

pkgs=()
if command -v psql >/dev/null && command -v pg_isready >/dev/null && [[ -n $(pg_bin_dir) ]]; then
    info "deps: postgresql present ($(pg_bin_dir))"
else
    pkgs+=(postgresql)
fi
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    info "deps: redis present ($(redis-server --version | cut -d' ' -f3))"
else
    pkgs+=(redis-server)
fi
# Building tansu (and the project's -sys crates) compiles C.
if command -v cc >/dev/null && command -v make >/dev/null; then
    info "deps: C toolchain present"
else
    pkgs+=(build-essential pkg-config)
fi
# The chart check runs in a Python venv (scripts/chart-tools.txt).
if python_ok; then
    info "deps: python3 with venv present ($(python3 --version))"
else
    pkgs+=(python3 python3-venv)
fi
# setsid, runuser and flock come from util-linux, which Debian always has.
for tool in setsid runuser flock timeout; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian packages util-linux / coreutils)"
done

if ((${#pkgs[@]})); then
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to apt-get install: ${pkgs[*]}"
        sudo=(sudo)
    fi
    info "deps: apt-get install ${pkgs[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"

    # Where no policy-rc.d forbids it, the package starts its own cluster on 5432,
    # whose pg_hba asks for a password over TCP; our URLs have none. A cluster this
    # install just created holds nothing: stop it and keep it from starting on its
    # own, so `make up` runs the project-local trust-auth server on 5432 instead.
    if [[ " ${pkgs[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null; then
        while read -r ver cluster _port status _; do
            [[ $ver =~ ^[0-9]+$ ]] || continue
            info "deps: the new Debian cluster $ver/$cluster ($status) is set to start manually only"
            echo manual | "${sudo[@]}" tee "/etc/postgresql/$ver/$cluster/start.conf" >/dev/null
            if [[ $status == online* ]]; then
                info "deps: stopping the new Debian cluster $ver/$cluster"
                "${sudo[@]}" pg_ctlcluster "$ver" "$cluster" stop || warn "could not stop cluster $ver/$cluster"
            fi
        done < <(pg_lsclusters --no-header 2>/dev/null)
    fi
fi

# --- tansu --------------------------------------------------------------------

# PIDs of a `cargo install tansu ... --root $TANSU_ROOT` started outside this script
# (e.g. by hand): building a second copy next to it would only halve the speed of both.
foreign_tansu_builds() {
    local dir pid cmd
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        [[ $pid != "$$" ]] || continue
        cmd=$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null) || continue
        [[ $cmd == *" install "* && $cmd == *" tansu "* && $cmd == *"$TANSU_ROOT"* && $cmd != *deps.sh* ]] || continue
        [[ $cmd == *cargo* ]] && printf '%s\n' "$pid"
    done
}

if tansu_ok; then
    info "deps: tansu $TANSU_VERSION present ($PALAVER_TANSU_BIN)"
else
    mkdir -p "$(dirname "$TANSU_ROOT")"
    # One build per machine at a time, even from several clones.
    exec 9>"$TANSU_ROOT.lock"
    if ! flock -n 9; then
        info "deps: another make deps is building tansu; waiting for it"
        flock 9
    fi
    while read -r pid; do
        [[ -n $pid ]] || continue
        info "deps: a tansu build is already running (pid $pid): waiting for it, this can take up to an hour"
        start=$SECONDS
        while pid_alive "$pid"; do
            sleep 30
            if (((SECONDS - start) % 300 < 30)); then
                info "deps: still waiting for tansu build pid $pid ($(((SECONDS - start) / 60)) min)"
            fi
        done
    done < <(foreign_tansu_builds)

    if tansu_ok; then
        info "deps: tansu $TANSU_VERSION present ($PALAVER_TANSU_BIN)"
    else
        force=()
        if [[ -x $PALAVER_TANSU_BIN ]]; then
            warn "$PALAVER_TANSU_BIN does not report version $TANSU_VERSION: rebuilding it"
            force=(--force)
        fi
        info "deps: building tansu $TANSU_VERSION into $TANSU_ROOT — this takes up to an hour on 2 cores"
        # A target dir that survives an interrupted build, so a retry resumes it.
        "$CARGO" install tansu --version "$TANSU_VERSION" --locked --features libsql \
            --root "$TANSU_ROOT" --target-dir "$TANSU_ROOT.build" "${force[@]}"
        tansu_ok || die "tansu was built but $PALAVER_TANSU_BIN --version does not report $TANSU_VERSION"
        rm -rf "$TANSU_ROOT.build"
        info "deps: tansu $TANSU_VERSION installed ($PALAVER_TANSU_BIN)"
    fi
    exec 9>&-
fi

# --- cargo-nextest ------------------------------------------------------------

if "$CARGO" nextest --version >/dev/null 2>&1; then
    info "deps: cargo-nextest present ($("$CARGO" nextest --version 2>/dev/null | head -n 1))"
else
    info "deps: cargo install cargo-nextest --locked (a few minutes)"
    "$CARGO" install cargo-nextest --locked
fi

# --- chart-check tools ---------------------------------------------------------

if chart_tools_ok; then
    info "deps: chart tools present ($CHART_TOOLS_ROOT)"
else
    python_ok || die "python3 >= 3.10 with the venv module is needed for the chart tools"
    mkdir -p "$(dirname "$CHART_TOOLS_ROOT")"
    exec 9>"$CHART_TOOLS_ROOT.lock"
    flock 9
    if ! chart_tools_ok; then
        info "deps: installing the chart tools (scripts/chart-tools.txt) into $CHART_TOOLS_ROOT"
        rm -rf "$CHART_TOOLS_ROOT"
        python3 -m venv "$CHART_TOOLS_ROOT"
        # Wheels only: a source build of a native package (rpds-py, PyYAML) would need
        # compilers and is not what was tested.
        "$CHART_TOOLS_ROOT/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
            --only-binary=:all: --requirement "$REPO_ROOT/scripts/chart-tools.txt"
        # Recorded last: a venv without it is an interrupted install and is rebuilt.
        chart_tools_pins >"$CHART_TOOLS_ROOT/palaver-pins.txt"
        info "deps: chart tools installed ($CHART_TOOLS_ROOT)"
    fi
    exec 9>&-
fi

info "deps: all present"
