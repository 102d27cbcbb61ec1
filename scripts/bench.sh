#!/usr/bin/env bash
# The benchmark of docs/performance.md: a node started on its own (its own
# process, fresh data), driven over loopback by `voelgoed bench --target`.
#
#   scripts/bench.sh sqlite   [bench options]   embedded SQLite
#   scripts/bench.sh postgres [bench options]   PostgreSQL + Redis (a fresh database)
#
# Options after the mode go to `voelgoed bench` (e.g. --connections 32
# --tickets 5000 --seconds 3). BIN overrides the binary (default: the
# release build, built first). Extra environment (e.g.
# VOELGOED_SQLITE_SYNC_FULL=true) reaches the node.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-sqlite}"
shift || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/voelgoed-target}"
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -p voelgoed >&2
  BIN="$CARGO_TARGET_DIR/release/voelgoed"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d /tmp/voelgoed-bench-node.XXXXXX)
node_env=(VOELGOED_LOG=warn VOELGOED_STOREFRONT_PER_MINUTE=0 VOELGOED_BUYER_PER_MINUTE=0 VOELGOED_DATA_DIR="$data")
bench_env=(VOELGOED_LOG=warn VOELGOED_DATA_DIR="$data")
db=""
if [ "$mode" = postgres ]; then
  admin="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
  db="vg_bench_$(date +%s)_$$"
  psql "$admin" -qtAc "CREATE DATABASE $db" >/dev/null
  url="${admin%/*}/$db"
  redis="${REDIS_URL:-redis://127.0.0.1:6379/}"
  node_env+=(DATABASE_URL="$url" REDIS_URL="$redis" VOELGOED_DB_MAX_CONNECTIONS=16)
  bench_env+=(DATABASE_URL="$url")
fi
env "${node_env[@]}" "$BIN" serve --addr "127.0.0.1:$port" >"$data/node.log" 2>&1 &
node=$!
cleanup() {
  kill "$node" 2>/dev/null || true
  wait "$node" 2>/dev/null || true
  [ -n "$db" ] && psql "$admin" -qtAc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
env "${bench_env[@]}" "$BIN" bench --target "http://127.0.0.1:$port" "$@"
