#!/usr/bin/env bash
# Run the store tests against a real Milvus 2.3.5 server, isolated on loopback.
#
#   bash scripts/test_server.sh [--bench [BENCH_ARGS...]] [-- PYTEST_ARGS...]
#
# 1. Creates (or refreshes) .venv-milvus-server holding the PyPI package milvus==2.3.5, which
#    bundles the real standalone binary with embedded etcd.
# 2. Inside `unshare --net`, a network namespace whose only interface is loopback, starts the
#    server on a fresh temporary data directory (scripts/milvus_server.py), waits until it
#    answers, and runs `.venv/bin/python -m pytest tests/test_milvus_server.py` with
#    LC_MILVUS_SERVER_URI set. The server's ports bind every address, and the namespace is what
#    keeps them off any real network.
# 3. Stops the server on every exit path (trap) and removes its data.
#
# More tests (e.g. notebook 05): add them after `--`, or in LC_SERVER_PYTEST_ARGS; both are
# appended to the pytest command, e.g.
#   bash scripts/test_server.sh -- tests/test_notebooks.py -k 05
# --bench also runs benchmarks/bench_milvus.py in the namespace (Lite and server, same data);
# arguments after --bench up to `--` go to it, e.g. `--bench --chunks 20000`.
#
# Where no network namespace can be made (no root, no user namespaces), it prints a SKIP line
# with the reason, shows the server tests skipping, and exits 0; set
# LC_MILVUS_SERVER_REQUIRED=1 to make that a failure instead. It never starts the server
# outside a namespace.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEST_PYTHON="$ROOT/.venv/bin/python"
SERVER_VENV="${LC_MILVUS_SERVER_VENV:-$ROOT/.venv-milvus-server}"
MILVUS_VERSION="2.3.5"
READY_TIMEOUT="${LC_MILVUS_READY_TIMEOUT:-180}"

say() { printf 'test_server: %s\n' "$*"; }

inside_namespace() {
    ip link set lo up
    local interfaces
    interfaces="$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')"
    if [[ "$interfaces" != "lo " ]]; then
        say "FAIL: the namespace shows interfaces [$interfaces], not only lo; refusing to start"
        return 1
    fi
    # Globals, not locals: the EXIT trap runs after this function has returned.
    launcher_pid=""
    data="$(mktemp -d "${TMPDIR:-/tmp}/lc-milvus-server.XXXXXX")"
    stop_server() {
        local status=0
        if [[ -n "$launcher_pid" ]] && kill -0 "$launcher_pid" 2>/dev/null; then
            kill -TERM "$launcher_pid"
            wait "$launcher_pid" || status=$?
            if [[ $status -ne 0 ]]; then
                # The test results stand: the data directory is thrown away either way.
                say "WARNING: the server had to be killed (launcher status $status); see above"
            fi
        fi
        launcher_pid=""
        if [[ "${LC_KEEP_SERVER_DATA:-0}" == 1 ]]; then
            say "server data and logs kept in $data"
        else
            rm -rf "$data"
        fi
    }
    trap stop_server EXIT
    trap 'exit 130' INT TERM

    "$SERVER_VENV/bin/python" "$ROOT/scripts/milvus_server.py" \
        --data-dir "$data/milvus" --ready-file "$data/ready" \
        --bin-cache "$SERVER_VENV/milvus-bin" &
    launcher_pid=$!
    local waited=0
    while [[ ! -s "$data/ready" ]]; do
        if ! kill -0 "$launcher_pid" 2>/dev/null; then
            wait "$launcher_pid" || true
            launcher_pid=""
            say "FAIL: the Milvus server exited before it was ready (see its output above)"
            return 1
        fi
        if (( waited >= READY_TIMEOUT * 2 )); then
            say "FAIL: the Milvus server was not ready after ${READY_TIMEOUT} s"
            return 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    export LC_MILVUS_SERVER_URI
    LC_MILVUS_SERVER_URI="$(cat "$data/ready")"
    say "server at $LC_MILVUS_SERVER_URI (loopback only); running pytest"

    local status=0
    # shellcheck disable=SC2086  # LC_SERVER_PYTEST_ARGS is a word list on purpose
    "$TEST_PYTHON" -m pytest -rs tests/test_milvus_server.py ${LC_SERVER_PYTEST_ARGS:-} \
        "${PYTEST_EXTRA[@]}" || status=$?
    if [[ "$RUN_BENCH" == 1 ]]; then
        say "running benchmarks/bench_milvus.py against Lite and $LC_MILVUS_SERVER_URI"
        "$TEST_PYTHON" benchmarks/bench_milvus.py "${BENCH_EXTRA[@]}" || status=$?
    fi
    return "$status"
}

RUN_BENCH=0
BENCH_EXTRA=()
PYTEST_EXTRA=()
INSIDE=0
while (($#)); do
    case "$1" in
        --inside-namespace) INSIDE=1; shift ;;
        --bench)
            RUN_BENCH=1; shift
            while (($#)) && [[ "$1" != "--" ]]; do BENCH_EXTRA+=("$1"); shift; done ;;
        --) shift; PYTEST_EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) say "unknown argument '$1'; see: bash scripts/test_server.sh --help"; exit 2 ;;
    esac
done

if [[ "$INSIDE" == 1 ]]; then
    inside_namespace
    exit $?
fi

if [[ ! -x "$TEST_PYTHON" ]]; then
    say "FAIL: $TEST_PYTHON is missing; run 'make venv' first"
    exit 1
fi

skip() {
    say "SKIP: real Milvus server tests: $1"
    if [[ "${LC_MILVUS_SERVER_REQUIRED:-0}" == 1 ]]; then
        say "FAIL: LC_MILVUS_SERVER_REQUIRED=1, so a skip is a failure"
        exit 1
    fi
    LC_MILVUS_SERVER_UNAVAILABLE="$1" "$TEST_PYTHON" -m pytest -rs -q tests/test_milvus_server.py
    exit 0
}

# Plain `unshare --net` needs root (CAP_SYS_ADMIN); a user namespace mapping us to root is the
# unprivileged fallback.
UNSHARE=()
for candidate in "unshare --net" "unshare --net --map-root-user"; do
    if errors="$($candidate true 2>&1)"; then
        read -r -a UNSHARE <<<"$candidate"
        break
    fi
done
if ((${#UNSHARE[@]} == 0)); then
    skip "cannot create a network namespace (${errors:-unshare not found}); the server binds \
every address, so it only runs where loopback can be isolated"
fi
if ! command -v ip >/dev/null; then
    skip "the 'ip' command (iproute2) is missing, so loopback cannot be brought up"
fi

if ! "$SERVER_VENV/bin/python" -c \
    "import milvus, sys; sys.exit(milvus.__version__ != '$MILVUS_VERSION')" 2>/dev/null; then
    say "creating $SERVER_VENV with milvus==$MILVUS_VERSION"
    "${PYTHON:-python3}" -m venv --clear "$SERVER_VENV"
    if ! bash "$ROOT/scripts/with_heartbeat.sh" "installing milvus==$MILVUS_VERSION" \
        "$SERVER_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "milvus==$MILVUS_VERSION"; then
        say "FAIL: could not install milvus==$MILVUS_VERSION into $SERVER_VENV (see pip above)"
        exit 1
    fi
fi

say "entering a network namespace: ${UNSHARE[*]}"
args=(--inside-namespace)
if [[ "$RUN_BENCH" == 1 ]]; then args+=(--bench "${BENCH_EXTRA[@]}"); fi
exec "${UNSHARE[@]}" bash "$0" "${args[@]}" -- "${PYTEST_EXTRA[@]}"
