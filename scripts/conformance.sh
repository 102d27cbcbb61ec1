#!/usr/bin/env bash
# Schema conformance: fuzz a demo node with schemathesis against the OpenAPI
# document it serves (GET /api/openapi.json), so that the document says
# exactly what the server does.
#
#   ./scripts/conformance.sh
#
# Starts `voelgoed demo` on a free loopback port with a fresh data dir, runs
# schemathesis (configuration: scripts/conformance/schemathesis.toml, hooks:
# scripts/conformance/hooks.py) and exits non-zero on any failure. Bounded:
# schemathesis spends CONFORMANCE_MAX_TIME seconds (about two minutes in all
# on 2 cores, once the binary is built), and is stopped if it overruns that
# by two more minutes.
#
# Environment:
#   VOELGOED_BIN        the binary to run (default: build the debug one)
#   CARGO_TARGET_DIR    where cargo builds it (default: ./target)
#   CONFORMANCE_SEED    pin schemathesis' seed (default: a fresh one, printed)
#   CONFORMANCE_EXAMPLES  test cases per operation and phase (default: 40)
#   CONFORMANCE_MAX_TIME  time budget in seconds for the whole run (default: 120)
#   CONFORMANCE_REPORT_DIR  keep schemathesis' JUnit report and the node's log here
#   CONFORMANCE_REPORTS   schemathesis' reports (default: junit; junit,har keeps
#                         every request and reply)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,positive_data_acceptance
examples=${CONFORMANCE_EXAMPLES:-40}
max_time=${CONFORMANCE_MAX_TIME:-120}

# Run as a module: right after `pip install` a version manager's shims may
# not know the `st` script yet.
st() { python3 -m schemathesis.cli "$@"; }
if ! python3 -c 'import schemathesis' >/dev/null 2>&1; then
    echo "conformance: installing schemathesis 4.32.5" >&2
    python3 -m pip install --quiet schemathesis==4.32.5
fi
if ! st --version | grep -q ' 4\.32\.5$'; then
    echo "conformance: warning: $(st --version), the configuration is written for 4.32.5" >&2
fi

if [[ -n "${VOELGOED_BIN:-}" ]]; then
    bin=$VOELGOED_BIN
else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
    cargo build --quiet -p voelgoed
    bin=$CARGO_TARGET_DIR/debug/voelgoed
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/voelgoed-conformance.XXXXXX")
node_pid=
cleanup() {
    local rc=$?
    if [[ -n "$node_pid" ]] && kill -0 "$node_pid" 2>/dev/null; then
        kill "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
    fi
    if [[ -n "${CONFORMANCE_REPORT_DIR:-}" ]]; then
        mkdir -p "$CONFORMANCE_REPORT_DIR"
        cp -r "$work/report/." "$CONFORMANCE_REPORT_DIR/" 2>/dev/null || true
        cp "$work/node.log" "$CONFORMANCE_REPORT_DIR/" 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

# Rate limits off (storefront) or out of reach (sign-up, pairing): a 429 is
# documented where it can happen, but it would make the run depend on timing.
# Holds last a minute, so the demo event's tickets come back during the run.
# Webhook targets may be private here: whether a generated URL's host is
# private is a fact of DNS, not of the schema, so positive data must pass.
VOELGOED_WEBHOOKS_ALLOW_PRIVATE=true \
VOELGOED_LOG=warn \
VOELGOED_STOREFRONT_PER_MINUTE=0 \
VOELGOED_SENSITIVE_PER_MINUTE=100000 \
VOELGOED_HOLD_TTL_SECS=60 \
    "$bin" demo --addr "127.0.0.1:$port" --data-dir "$work/data" >"$work/node.log" 2>&1 &
node_pid=$!

healthy() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/healthz" 2>/dev/null
}
for _ in $(seq 1 300); do
    if ! kill -0 "$node_pid" 2>/dev/null; then
        echo "conformance: the node did not start:" >&2
        cat "$work/node.log" >&2
        exit 1
    fi
    if [[ -s "$work/data/demo.json" ]] && healthy; then
        break
    fi
    sleep 0.2
done
if ! healthy; then
    echo "conformance: the node did not answer /healthz in 60 s" >&2
    cat "$work/node.log" >&2
    exit 1
fi

# Credentials and ids of the demo data, for the config file and the hooks.
eval "$(python3 - "$work/data/demo.json" <<'EOF'
import json, shlex, sys
demo = json.load(open(sys.argv[1]))
for var, key in [("VG_API_KEY", "api_key"), ("VG_DEVICE_TOKEN", "device_token"),
                 ("VG_EVENT_ID", "event_id")]:
    print(f"export {var}={shlex.quote(demo[key])}")
EOF
)"
export VG_BASE_URL=$base
export VG_WORK_DIR=$work
export HYPOTHESIS_STORAGE_DIRECTORY=$work/hypothesis
export PYTHONDONTWRITEBYTECODE=1

seed_args=()
if [[ -n "${CONFORMANCE_SEED:-}" ]]; then
    seed_args=(--seed "$CONFORMANCE_SEED")
fi

echo "conformance: node on $base (pid $node_pid), checks $checks, $examples examples per operation, at most ${max_time}s"
started=$(date +%s)
# One worker: CPython 3.11's ast.parse is not safe across threads, and
# hypothesis calls it while describing strategies, so two workers now and
# then die of "AST constructor recursion depth mismatch" (a tool error that
# says nothing about the API).
set +e
timeout --kill-after=10 $((max_time + 120)) \
    python3 -m schemathesis.cli --config-file scripts/conformance/schemathesis.toml --no-color run "$base/api/openapi.json" \
    --checks "$checks" \
    --max-examples "$examples" \
    --max-time "$max_time" \
    --workers 1 \
    --report "${CONFORMANCE_REPORTS:-junit}" --report-dir "$work/report" \
    "${seed_args[@]}" \
    2>&1 | tee "$work/st.log"
st_rc=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - started))

# A server error the fuzzer did not see in a reply (a panic in a task, an
# internal error logged) fails the run too.
server_errors=$(grep -cE 'panicked|internal error' "$work/node.log" || true)

echo
echo "=== conformance summary ==="
grep -E '^\s*(Selected|Tested):|generated,|^=+ .* in [0-9.]+s =+$' "$work/st.log" | sed 's/^ */  /' || true
echo "  schemathesis exit code: $st_rc, ${elapsed}s"
echo "  server errors in the node's log: $server_errors"
if [[ "$server_errors" != 0 ]]; then
    grep -E 'panicked|internal error' "$work/node.log" | head -20 >&2
fi
if [[ "$st_rc" != 0 || "$server_errors" != 0 ]]; then
    echo "conformance: FAILED" >&2
    exit 1
fi
echo "conformance: passed"
