#!/usr/bin/env bash
# Runs every test of the project, from a fresh Debian 12 machine (as root) to
# a summary: setup (Debian packages, the python venv for the interop peers),
# then fmt, clippy, the workspace tests, the pyzmq interop suite and a bounded
# fuzz run. A failing step does not stop the later ones; the script exits
# non-zero if any step failed.
#
# Knobs (environment):
#   FUZZ_SECONDS   seconds per fuzz target (default 30)
#   SKIP_FUZZ=1    skip the fuzz step (local iteration only; CI runs it)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

# Debian packages the tests need. Add to this list; setup installs what is
# missing (one `apt-get update`, only when something is missing).
# openssh-server: the sshd (and ssh-keygen) the SSH transport test starts.
APT_PACKAGES=(openssh-server)

# ---------------------------------------------------------------- reporting

SUMMARY=()
FAILED=0
START=$SECONDS

banner() {
    printf '\n======== %s ========\n' "$*"
}

print_summary() {
    local rc=$?
    printf '\n======== summary (%ss) ========\n' "$((SECONDS - START))"
    local line
    for line in "${SUMMARY[@]}"; do
        printf '  %s\n' "$line"
    done
    if [[ $rc -ne 0 && $FAILED -eq 0 ]]; then
        printf '  ABORTED (exit %s) during setup\n' "$rc"
    elif [[ $FAILED -ne 0 ]]; then
        printf '  RESULT: FAILED\n'
    else
        printf '  RESULT: all steps succeeded\n'
    fi
}
trap print_summary EXIT

# step NAME COMMAND...: runs COMMAND in a subshell with `set -e` in force,
# records PASS/FAIL and its duration, and carries on either way.
step() {
    local name=$1
    shift
    banner "$name"
    local t0=$SECONDS rc
    set +e
    (
        set -euo pipefail
        "$@"
    )
    rc=$?
    set -e
    if [[ $rc -eq 0 ]]; then
        SUMMARY+=("PASS  $name ($((SECONDS - t0))s)")
    else
        SUMMARY+=("FAIL  $name (exit $rc, $((SECONDS - t0))s)")
        FAILED=1
    fi
}

# ------------------------------------------------------------------- setup

APT_UPDATED=0

is_installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

# apt_install PKG...: installs the packages that are not installed yet.
apt_install() {
    local missing=() p
    for p in "$@"; do
        is_installed "$p" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $APT_UPDATED -eq 0 ]]; then
        echo "apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
    echo "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

setup_python() {
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        apt_install python3 python3-venv
    fi
    if [[ -x $VENV/bin/python ]] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        echo "removing broken $VENV"
        rm -rf "$VENV"
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        echo "creating $VENV"
        python3 -m venv "$VENV"
    fi
    # Reinstall only when interop/requirements.txt changed.
    local stamp=$VENV/.requirements.sha256 want
    want=$(sha256sum interop/requirements.txt | cut -d' ' -f1)
    if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
        echo "pip install -r interop/requirements.txt"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r interop/requirements.txt
        echo "$want" >"$stamp"
    fi
    "$VENV/bin/python" -c 'import zmq; print("pyzmq", zmq.pyzmq_version(), "libzmq", zmq.zmq_version(), "curve", zmq.has("curve"))'
}

banner "setup"
if [[ ${#APT_PACKAGES[@]} -gt 0 ]]; then
    apt_install "${APT_PACKAGES[@]}"
fi
setup_python
cargo --version
SUMMARY+=("PASS  setup ($((SECONDS - START))s)")

# ------------------------------------------------------------------- steps

run_clippy() {
    cargo clippy --workspace --all-targets -- -D warnings
    # The interop suite only builds with its feature on; lint it too.
    cargo clippy -p ironhouse-cli --features interop --all-targets -- -D warnings
    cargo clippy -p ironhouse --features ssh-interop --all-targets -- -D warnings
    cargo clippy -p ironhouse-relay --features interop --all-targets -- -D warnings
}

run_interop() {
    IRONHOUSE_PYTHON=$VENV/bin/python \
        cargo test -p ironhouse-cli --features interop --test interop_pyzmq
    IRONHOUSE_PYTHON=$VENV/bin/python cargo test -p ironhouse-cli --features interop --test interop_pyzmq_security
    IRONHOUSE_PYTHON=$VENV/bin/python cargo test -p ironhouse-cli --features interop --test interop_python_tls
    # The relay: the native protocol from pyzmq + msgpack, and real tlspyo endpoints.
    IRONHOUSE_PYTHON=$VENV/bin/python cargo test -p ironhouse-relay --features interop
    IRONHOUSE_PYTHON=$VENV/bin/python cargo test -p ironhouse-cli --features interop --test interop_netgear
    IRONHOUSE_PYTHON=$VENV/bin/python cargo test -p ironhouse-cli --features interop --test interop_sqlite_rx
}

run_ssh() {
    # Starts Debian's sshd on 127.0.0.1 with throwaway keys; fails if missing.
    cargo test -p ironhouse --features ssh-interop --test ssh
}

run_fuzz() {
    local cargo_fuzz=(cargo +nightly fuzz)
    if ! cargo +nightly --version >/dev/null 2>&1; then
        echo "no nightly toolchain; using the stable one with RUSTC_BOOTSTRAP=1"
        export RUSTC_BOOTSTRAP=1
        cargo_fuzz=(cargo fuzz)
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        cargo install cargo-fuzz --locked
    fi
    local targets
    targets=$("${cargo_fuzz[@]}" list)
    if [[ -z $targets ]]; then
        echo "fuzz/ has no targets"
        return 1
    fi
    "${cargo_fuzz[@]}" build
    local t failed=0
    for t in $targets; do
        banner "fuzz $t (${FUZZ_SECONDS}s)"
        # timeout: a hard stop in case the fuzzer ignores its own limit.
        if ! timeout --kill-after=10 $((FUZZ_SECONDS + 300)) \
            "${cargo_fuzz[@]}" run "$t" -- -max_total_time="$FUZZ_SECONDS"; then
            echo "fuzz target $t FAILED"
            failed=1
        fi
    done
    return $failed
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" run_clippy
step "cargo test --workspace" cargo test --workspace
step "interop: pyzmq" run_interop
step "interop: OpenSSH sshd" run_ssh
if [[ -d fuzz && ${SKIP_FUZZ:-0} != 1 ]]; then
    step "fuzz (${FUZZ_SECONDS}s per target)" run_fuzz
elif [[ -d fuzz ]]; then
    SUMMARY+=("SKIP  fuzz (SKIP_FUZZ=1)")
fi

exit $FAILED
