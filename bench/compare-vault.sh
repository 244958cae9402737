#!/usr/bin/env bash
# donjon's Vault-compatible API against a real OpenBao 2.7.2 (integrated Raft storage), same load, same run:
# KV v2 write (a new path per request), KV v2 read (round-robin over a seeded read set), transit encrypt
# (aes256-gcm96, 32 bytes). Both sides get the very same requests (the shared harness's OpenBao Lua scripts;
# bench/wrk/transit_encrypt.lua): only the URL and the token differ. The side that goes first swaps every round.
# Starts donjon from this checkout (fresh data dir, SQLite, dev mode: the Vault token names the project,
# every default on, audit fail-closed) and OpenBao through the shared harness ($SHARED_BENCH/openbao/start.sh:
# durable, 1 key share, unsealed; transit mounted here). Prints one table and the ratios donjon / OpenBao.
# Usage: bench/compare-vault.sh [--close|--keepalive]
# Env: DURATION (s per workload and side, default 10), CONCURRENCY (16), ROUNDS (2), READ_SET (1000),
#      PORT (donjon, default 19312), WORKERS (2), BAO_PORT (18200), SHARED_BENCH (default ../shared/bench),
#      OUT_DIR (results; default a new temp dir).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
[[ -x $SHARED/openbao/start.sh ]] || { echo "no shared bench harness at $SHARED (set SHARED_BENCH)" >&2; exit 2; }
. "$SHARED/lib.sh"
KEEPALIVE=0
case ${1:-} in --keepalive) KEEPALIVE=1 ;; --close|"") ;; *) echo "usage: $0 [--close|--keepalive]" >&2; exit 2 ;; esac
DUR=${DURATION:-10}; CONC=${CONCURRENCY:-16}; ROUNDS=${ROUNDS:-2}; NREAD=${READ_SET:-1000}; PORT=${PORT:-19312}
need_cmd wrk wrk; need_cmd curl curl
[[ -x $ROOT/.venv/bin/donjon ]] || { python3 -m venv "$ROOT/.venv" && "$ROOT/.venv/bin/pip" install -q -e "$ROOT"; }
OUT=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/compare-vault.XXXXXX")}; mkdir -p "$OUT"
export OPENBAO_STATE=${OPENBAO_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/donjon-bench/openbao} BAO_PORT=${BAO_PORT:-18200}
export LOAD_DIR=$SHARED/load CONN_CLOSE=$((1 - KEEPALIVE))
TAG=$(date +%s)-$RANDOM

DATA=$(mktemp -d "${TMPDIR:-/tmp}/donjon-bench.XXXXXX")
"$ROOT/.venv/bin/donjon" server --dev --port "$PORT" --workers "${WORKERS:-2}" --data-dir "$DATA" >"$DATA/server.log" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"
  "$SHARED/openbao/stop.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM
DONJON=http://127.0.0.1:$PORT
for _ in $(seq 1 100); do curl -s -o /dev/null "$DONJON/" && break; sleep 0.1; done
BAO=$("$SHARED/openbao/start.sh" | tail -1)
BAO_ROOT=$(cat "$OPENBAO_STATE/run/root-token")
DONJON_TOKEN=bench-$TAG   # dev mode: the Vault token names the caller's project
echo "== donjon $(git -C "$ROOT" rev-parse --short HEAD) on $DONJON vs OpenBao 2.7.2 on $BAO" \
     "($([[ $KEEPALIVE == 1 ]] && echo keep-alive || echo Connection: close), ${DUR}s, c=$CONC, $ROUNDS rounds)"

post() {  # post URL TOKEN PATH BODY: expect a 2xx
  local code
  code=$(curl -s -o "$OUT/last-body" -w '%{http_code}' -X POST -H "X-Vault-Token: $2" -H 'Content-Type: application/json' \
         -d "$4" "$1$3")
  [[ $code == 2* ]] || { echo "POST $3 on $1: $code $(cat "$OUT/last-body")" >&2; exit 1; }
}
post "$BAO" "$BAO_ROOT" /v1/sys/mounts/transit '{"type": "transit"}'
for side in "$BAO $BAO_ROOT" "$DONJON $DONJON_TOKEN"; do
  set -- $side
  post "$1" "$2" /v1/transit/keys/bench '{"type": "aes256-gcm96"}'
  BAO_TOKEN=$2 python3 "$SHARED/load/seed_read_set.py" openbao "$1" "bench-$TAG/read" "$NREAD" \
    "$OUT/$([[ $1 == "$BAO" ]] && echo openbao || echo donjon).read-set" >/dev/null
done

run_one() {  # run_one ROUND WORKLOAD SIDE
  local url token script
  if [[ $3 == donjon ]]; then url=$DONJON token=$DONJON_TOKEN; else url=$BAO token=$BAO_ROOT; fi
  case $2 in
    kv-write) script=$SHARED/load/openbao_kv_put.lua ;;
    kv-read) script=$SHARED/load/openbao_kv_get.lua ;;
    transit-encrypt) script=$ROOT/bench/wrk/transit_encrypt.lua ;;
  esac
  BAO_TOKEN=$token BAO_PREFIX=bench-$TAG/write-r$1 READ_SET_FILE=$OUT/$3.read-set \
    wrk -t1 -c"$CONC" -d"${DUR}s" --timeout 10s --latency -s "$script" "$url" >"$OUT/r$1-$2-$3.txt" 2>&1 || true
  echo "$2 $3 $(grep '^RESULT' "$OUT/r$1-$2-$3.txt" | sed 's/^RESULT //')" >>"$OUT/results"
  sleep 2
}
: >"$OUT/results"
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then order="donjon openbao"; else order="openbao donjon"; fi
  for wl in kv-write kv-read transit-encrypt; do
    for side in $order; do run_one "$r" "$wl" "$side"; done
  done
done

python3 - "$OUT/results" "$ROUNDS" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    wl, side, js = line.split(" ", 2)
    if js.strip():
        rows.setdefault((wl, side), []).append(json.loads(js))
def agg(rs):
    return (statistics.mean(r["rps_2xx"] for r in rs), statistics.median(r["p50_ms"] for r in rs),
            statistics.median(r["p99_ms"] for r in rs), sum(r["non2xx"] + r["socket_errors"] for r in rs))
print("| workload | OpenBao ok/s | p50 ms | p99 ms | errors | donjon ok/s | p50 ms | p99 ms | errors | donjon/OpenBao |")
print("|---|---|---|---|---|---|---|---|---|---|")
for wl in ("kv-write", "kv-read", "transit-encrypt"):
    b, d = rows.get((wl, "openbao")), rows.get((wl, "donjon"))
    if not b or not d or len(b) != int(sys.argv[2]) or len(d) != int(sys.argv[2]):
        print(f"| {wl} | (incomplete) |"); continue
    (bo, bp, bq, be), (do, dp, dq, de) = agg(b), agg(d)
    print(f"| {wl} | {bo:.1f} | {bp:.1f} | {bq:.1f} | {be} | {do:.1f} | {dp:.1f} | {dq:.1f} | {de} | **{do / bo:.2f}×** |")
PY
echo "raw results in $OUT"
