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
#
#   scripts/bench.sh postgres --flash --buyers 50000 --tickets 10000
#
# runs the flash sale instead (waiting room → hold → checkout, free and by
# card through the provider stand-in this script starts), with PostgreSQL's
# TPC-B (pgbench) and a Redis guarded-decrement EVAL measured first as the
# ceilings.
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
extra=()
standin=""
tpcb_db=""
if [[ " $* " == *" --flash "* ]]; then
  # The flash sale pays by card through the provider stand-in, and reports
  # against the ceilings measured here, in the same run: PostgreSQL's TPC-B
  # (pgbench, on a database of its own) and a Redis guarded-decrement EVAL.
  sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$BIN" stripe-standin --addr "127.0.0.1:$sport" \
    --webhook-url "http://127.0.0.1:$port/api/v1/payments/stripe/webhook" >"$data/standin.log" 2>&1 &
  standin=$!
  node_env+=(VOELGOED_STRIPE_API_BASE="http://127.0.0.1:$sport" VOELGOED_STRIPE_SECRET_KEY=sk_test_standin
    VOELGOED_STRIPE_PUBLISHABLE_KEY=pk_test_standin VOELGOED_STRIPE_WEBHOOK_SECRET=whsec_standin)
  extra+=(--standin "http://127.0.0.1:$sport")
  if [ "$mode" = postgres ]; then
    tpcb_db="vg_tpcb_$(date +%s)_$$"
    psql "$admin" -qtAc "CREATE DATABASE $tpcb_db" >/dev/null
    pgbench -i -q -s 10 "${admin%/*}/$tpcb_db" >/dev/null 2>&1
    tps=$(pgbench -n -c 32 -j 2 -T 10 "${admin%/*}/$tpcb_db" 2>/dev/null | awk '/^tps/ {print $3; exit}')
    psql "$admin" -qtAc "DROP DATABASE IF EXISTS $tpcb_db WITH (FORCE)" >/dev/null || true
    echo "ceiling: PostgreSQL TPC-B (pgbench -s 10 -c 32 -j 2 -T 10): $tps tps" >&2
    extra+=(--tpcb "$tps")
    rhost=$(python3 -c 'import sys, urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p.hostname or "127.0.0.1", p.port or 6379)' "$redis")
    read -r rh rp <<<"$rhost"
    redis-cli -h "$rh" -p "$rp" SET vg:bench:ceiling 1000000000 >/dev/null
    eval_rps=$(redis-benchmark -h "$rh" -p "$rp" -c 32 -n 200000 -q \
      EVAL "local v = tonumber(redis.call('GET', KEYS[1])) if v >= tonumber(ARGV[1]) then redis.call('DECRBY', KEYS[1], ARGV[1]) return 0 end return 1" 1 vg:bench:ceiling 1 \
      | tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) v = $i} END {print v}')
    redis-cli -h "$rh" -p "$rp" DEL vg:bench:ceiling >/dev/null
    echo "ceiling: Redis guarded-decrement EVAL (redis-benchmark -c 32): $eval_rps/s" >&2
    extra+=(--redis-eval "$eval_rps")
  fi
fi
env "${node_env[@]}" "$BIN" serve --addr "127.0.0.1:$port" >"$data/node.log" 2>&1 &
node=$!
cleanup() {
  kill "$node" 2>/dev/null || true
  wait "$node" 2>/dev/null || true
  [ -n "${standin:-}" ] && kill "$standin" 2>/dev/null || true
  [ -n "$db" ] && psql "$admin" -qtAc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
env "${bench_env[@]}" "$BIN" bench --target "http://127.0.0.1:$port" "$@" "${extra[@]}"
