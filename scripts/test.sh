#!/usr/bin/env bash
# Runs every test: unit and property tests, the integration tests over real
# HTTP on SQLite and on PostgreSQL + Redis, the headless-Chromium page test,
# the soak test, and the schema conformance run (schemathesis against the
# OpenAPI document).
# Installs what is missing (Debian packages) and starts PostgreSQL and Redis
# when they are down; fails loudly when either cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/voelgoed-target}"
export VOELGOED_TEST_DATABASE_URL="${VOELGOED_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export VOELGOED_TEST_REDIS_URL="${VOELGOED_TEST_REDIS_URL:-redis://127.0.0.1:6379/}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v pg_isready >/dev/null 2>&1 || need+=(postgresql postgresql-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
command -v node >/dev/null 2>&1 || need+=(nodejs)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p 5432 || { echo "FATAL: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "FATAL: Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
psql "$VOELGOED_TEST_DATABASE_URL" -qtAc "SELECT 1" >/dev/null \
  || { echo "FATAL: cannot log in to $VOELGOED_TEST_DATABASE_URL" >&2; exit 1; }

# The webhook tests check signatures with the reference library.
python3 -c "import standardwebhooks" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check standardwebhooks==1.1.0 \
  || python3 -m pip install -q --disable-pip-version-check --break-system-packages standardwebhooks==1.1.0 \
  || { echo "FATAL: cannot install the standardwebhooks Python package" >&2; exit 1; }

# The Stripe stand-in is checked with Stripe's own Python library.
python3 -c "import stripe, sys; sys.exit(stripe.VERSION != '16.1.0')" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check stripe==16.1.0 \
  || python3 -m pip install -q --disable-pip-version-check --break-system-packages stripe==16.1.0 \
  || { echo "FATAL: cannot install the stripe Python package" >&2; exit 1; }

# The mail tests deliver to a real SMTP server on loopback (aiosmtpd).
# (Debian's package serves Debian's python3 only: check again after it.)
python3 -c "import aiosmtpd" 2>/dev/null \
  || { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-aiosmtpd >/dev/null 2>&1 \
       && python3 -c "import aiosmtpd" 2>/dev/null; } \
  || python3 -m pip install -q --disable-pip-version-check aiosmtpd==1.4.6 \
  || python3 -m pip install -q --disable-pip-version-check --break-system-packages aiosmtpd==1.4.6 \
  || { echo "FATAL: cannot install the aiosmtpd Python package" >&2; exit 1; }
python3 -c "import aiosmtpd" || { echo "FATAL: aiosmtpd is not importable" >&2; exit 1; }

# Databases left by an interrupted earlier run.
psql "$VOELGOED_TEST_DATABASE_URL" -qtAc "SELECT datname FROM pg_database WHERE datname LIKE 'vg\_test\_%' OR datname LIKE 'vg\_bench\_%'" |
  while read -r db; do [ -n "$db" ] && psql "$VOELGOED_TEST_DATABASE_URL" -qtAc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; done

# The gate rules' shared table, through the scanner app's evaluator
# (json-logic-js) — the Rust evaluator runs it in `cargo test`.
node scripts/rules_table.js

cargo test --workspace --locked "$@"

# The OpenAPI document says exactly what the server does (the debug binary
# the integration tests just built).
VOELGOED_BIN="$CARGO_TARGET_DIR/debug/voelgoed" ./scripts/conformance.sh
