#!/usr/bin/env bash
# Measures one server node under a simulated fleet, as BENCHMARKS.md records it:
#   examples/loadgen/bench.sh DEVICES [extra nerveshub-loadgen flags…]
# Builds the release binaries, starts nerveshub-server on a fresh data directory (SQLite, or
# PostgreSQL when NERVESHUB_DATABASE_URL is set), makes an org, a product and a product
# shared secret through the API, runs nerveshub-loadgen (cold start all at once, one storm),
# and samples the server: RSS before and after, CPU while the fleet sits idle, and the
# latency of GET /api/users/me during the cold start and the storm.
# Output: the loadgen's JSON summary and the server figures, in $OUT (default ./loadgen-out).
set -euo pipefail
cd "$(dirname "$0")/../.."

DEVICES="${1:?usage: bench.sh DEVICES [loadgen flags…]}"
shift
OUT="${OUT:-$PWD/loadgen-out}"
IDLE_SECS="${IDLE_SECS:-60}"
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$OUT"

# NO_BUILD=1 measures the binaries already built.
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --locked -p nerveshub-examples --bin nerveshub-server --bin nerveshub-loadgen
fi
SERVER="$TARGET/release/nerveshub-server"
LOADGEN="$TARGET/release/nerveshub-loadgen"

DATA="$(mktemp -d)"
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"' EXIT
"$SERVER" --data-dir "$DATA" --api-addr 127.0.0.1:4700 --device-addr 127.0.0.1:4701 \
  >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
API=http://127.0.0.1:4700/api
for _ in $(seq 100); do
  [ -s "$DATA/admin-token" ] && curl -fs "$API/../health" >/dev/null 2>&1 && break
  sleep 0.1
done
TOKEN="$(cat "$DATA/admin-token")"
call() { curl -fsS -H "authorization: token $TOKEN" -H 'content-type: application/json' "$@"; }
call -X POST "$API/orgs" -d '{"name":"bench"}' >/dev/null
call -X POST "$API/orgs/bench/products" -d '{"name":"fleet"}' >/dev/null
SECRET_JSON="$(call -X POST "$API/orgs/bench/products/fleet/shared_secrets" -d '{}')"
KEY="$(jq -r .data.key <<<"$SECRET_JSON")"
SECRET="$(jq -r .data.secret <<<"$SECRET_JSON")"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }

# GET /api/users/me once every 50 ms while the loadgen runs: its latency in ms, one per line.
probe_api() {
  while kill -0 "$LOADGEN_PID" 2>/dev/null; do
    curl -s -o /dev/null -w '%{time_total}\n' -H "authorization: token $TOKEN" "$API/users/me" \
      | awk '{printf "%.1f\n", $1 * 1000}' >>"$OUT/api-latency-ms.txt"
    sleep 0.05
  done
}

echo "server RSS before: $(rss_kib) KiB" | tee "$OUT/server.txt"
: >"$OUT/api-latency-ms.txt"
"$LOADGEN" --server wss://localhost:4701 --ca "$DATA/tls/ca.pem" \
  --shared-key "$KEY" --shared-secret "$SECRET" --devices "$DEVICES" \
  --storms 1 --hold-secs "$IDLE_SECS" --summary "$OUT/summary.json" "$@" \
  >/dev/null 2>"$OUT/loadgen.log" &
LOADGEN_PID=$!
probe_api &
PROBE_PID=$!
# The idle window: after the cold start's hold begins, CPU over IDLE_SECS - 10 seconds.
until grep -q "phase cold_start complete" "$OUT/loadgen.log" 2>/dev/null; do
  kill -0 "$LOADGEN_PID" 2>/dev/null || break
  sleep 0.2
done
sleep 5
echo "server RSS with $DEVICES devices joined: $(rss_kib) KiB" | tee -a "$OUT/server.txt"
TICKS0="$(cpu_ticks)"
sleep $((IDLE_SECS - 10))
TICKS1="$(cpu_ticks)"
HZ="$(getconf CLK_TCK)"
awk -v t=$((TICKS1 - TICKS0)) -v hz="$HZ" -v s=$((IDLE_SECS - 10)) \
  'BEGIN {printf "server CPU while idle: %.2f %% of a core\n", 100 * t / hz / s}' | tee -a "$OUT/server.txt"
until grep -q "phase storm_1 complete\|phase storm_1: timed out" "$OUT/loadgen.log" 2>/dev/null; do
  kill -0 "$LOADGEN_PID" 2>/dev/null || break
  sleep 0.2
done
sleep 5
echo "server RSS after the storm: $(rss_kib) KiB" | tee -a "$OUT/server.txt"
wait "$LOADGEN_PID" || echo "loadgen exited with $?" | tee -a "$OUT/server.txt"
wait "$PROBE_PID" 2>/dev/null || true
sort -n "$OUT/api-latency-ms.txt" | awk '{a[NR]=$1} END {
  if (NR) {
    p50 = int(NR * 0.50 + 0.999); if (p50 < 1) p50 = 1
    p99 = int(NR * 0.99 + 0.999); if (p99 < 1) p99 = 1
    printf "GET /api/users/me during the run: %d calls, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
      NR, a[p50], a[p99], a[NR]
  }}' | tee -a "$OUT/server.txt"
jq -c '.phases[] | {name, joins, failed_attempts, time_to_last_join_ms, p99: .connect_to_join_ms.p99}' \
  "$OUT/summary.json"
