#!/usr/bin/env bash
# donjon vs a real Barbican 23 on this machine, same load, same run.
# Starts donjon from this checkout (fresh data dir, SQLite, 2 workers, 127.0.0.1:$PORT), runs the shared
# harness ../shared/bench/compare.sh against it (which installs and starts Barbican from PyPI itself), and
# stops donjon. Arguments go to the shared compare.sh (e.g. --keepalive).
# Env: PORT (default 19311), WORKERS (default 2), DURATION (s per workload, default 20), CONCURRENCY (16),
#      SHARED_BENCH (default: ../shared/bench beside the checkout), OUT_DIR (results).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
PORT=${PORT:-19311}
[[ -x $SHARED/compare.sh ]] || { echo "no shared bench harness at $SHARED (set SHARED_BENCH)" >&2; exit 2; }
[[ -x $ROOT/.venv/bin/donjon ]] || { python3 -m venv "$ROOT/.venv" && "$ROOT/.venv/bin/pip" install -q -e "$ROOT"; }
DATA=$(mktemp -d "${TMPDIR:-/tmp}/donjon-bench.XXXXXX")
"$ROOT/.venv/bin/donjon" server --dev --port "$PORT" --workers "${WORKERS:-2}" --data-dir "$DATA" \
  >"$DATA/server.log" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$DATA/server.log" >&2; exit 1; }
  sleep 0.1
done
children=$(cat /proc/"$SERVER"/task/*/children 2>/dev/null | tr '\n' ' ')
echo "donjon $(git -C "$ROOT" rev-parse --short HEAD) on http://127.0.0.1:$PORT (pids $SERVER $children)"
TEST_SERVER_PIDS="$SERVER $children" "$SHARED/compare.sh" "$@" "http://127.0.0.1:$PORT"
