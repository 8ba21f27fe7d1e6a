#!/usr/bin/env bash
# Measures one server node under a simulated fleet, as BENCHMARKS.md records it:
#   examples/loadgen/bench.sh DEVICES [extra nerveshub-loadgen flags…]
# Builds the release binaries, starts nerveshub-server on a fresh data directory (SQLite, or
# PostgreSQL when NERVESHUB_DATABASE_URL names an empty database), makes an org and a product
# through the API, runs nerveshub-loadgen and samples the server: RSS before and after, CPU
# while the fleet sits idle, and the latency of GET /api/users/me all through the run.
#
# Modes (environment):
#   MODE=nh1     (default) devices sign NH1 headers with a product shared secret; the cold
#                start all at once, IDLE_SECS connected, then STORMS reconnect storms (1).
#   MODE=jitp    devices present certificates from a Device CA registered with a JITP
#                profile (made with the nerveshub CLI), so each is created on first connect:
#                the cold start's join rate is the JITP rate. No storm unless STORMS is set.
#   UPDATE=1     the devices run firmware 1.0.0 in a deployment; after the storms the
#                deployment moves to 2.0.0 for all of them at once, and the loadgen reports
#                when the `update` reached the first and the last device (`updates.spread_ms`).
#   SERVER_FLAGS extra nerveshub-server flags; SERVER_BIN another server binary (e.g. one
#                built with --features mimalloc).
# Output: the loadgen's JSON summary and the server figures, in $OUT (default ./loadgen-out).
set -euo pipefail
cd "$(dirname "$0")/../.."

DEVICES="${1:?usage: bench.sh DEVICES [loadgen flags…]}"
shift
OUT="${OUT:-$PWD/loadgen-out}"
IDLE_SECS="${IDLE_SECS:-60}"
MODE="${MODE:-nh1}"
TARGET="${CARGO_TARGET_DIR:-target}"
if [ "$MODE" = jitp ]; then STORMS="${STORMS:-0}"; else STORMS="${STORMS:-1}"; fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# NO_BUILD=1 measures the binaries already built.
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --locked -p nerveshub-examples --bin nerveshub-server \
    --bin nerveshub-loadgen --bin nerveshub --bin fwup-rs
fi
SERVER="${SERVER_BIN:-$TARGET/release/nerveshub-server}"
LOADGEN="$TARGET/release/nerveshub-loadgen"
CLI="$(cd "$TARGET/release" && pwd)/nerveshub"
FWUP="$(cd "$TARGET/release" && pwd)/fwup-rs"

DATA="$(mktemp -d)"
WORK="$(mktemp -d)"
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA" "$WORK"' EXIT
# shellcheck disable=SC2086
"$SERVER" --data-dir "$DATA" --api-addr 127.0.0.1:4700 --device-addr 127.0.0.1:4701 \
  ${SERVER_FLAGS:-} >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
API=http://127.0.0.1:4700/api
for _ in $(seq 300); do
  [ -s "$DATA/admin-token" ] && curl -fs "$API/../health" >/dev/null 2>&1 && break
  sleep 0.1
done
TOKEN="$(cat "$DATA/admin-token")"
call() { curl -fsS -H "authorization: token $TOKEN" -H 'content-type: application/json' "$@"; }
call -X POST "$API/orgs" -d '{"name":"bench"}' >/dev/null
call -X POST "$API/orgs/bench/products" -d '{"name":"fleet"}' >/dev/null
P="$API/orgs/bench/products/fleet"

LOADGEN_ARGS=(--server wss://localhost:4701 --ca "$DATA/tls/ca.pem" --devices "$DEVICES"
  --storms "$STORMS" --hold-secs "$IDLE_SECS" --summary "$OUT/summary.json")
case "$MODE" in
  nh1)
    SECRET_JSON="$(call -X POST "$P/shared_secrets" -d '{}')"
    LOADGEN_ARGS+=(--shared-key "$(jq -r .data.key <<<"$SECRET_JSON")"
      --shared-secret "$(jq -r .data.secret <<<"$SECRET_JSON")")
    ;;
  jitp)
    # The CLI makes the CA, fetches the proof-of-possession token and registers it.
    printf 'url = "http://127.0.0.1:4700"\ntoken = "%s"\norg = "bench"\n' "$TOKEN" >"$WORK/cli.toml"
    (cd "$WORK" && NERVESHUB_CONFIG="$WORK/cli.toml" "$CLI" ca create --name bench-devices >/dev/null &&
      NERVESHUB_CONFIG="$WORK/cli.toml" "$CLI" ca register devca.pem --key ca-key.pem \
        --jitp-product fleet >/dev/null)
    LOADGEN_ARGS+=(--device-ca-cert "$WORK/devca.pem" --device-ca-key "$WORK/ca-key.pem")
    ;;
  *) echo "MODE is nh1 or jitp" >&2; exit 2 ;;
esac

# Two signed firmware versions and a deployment of the first, which every device runs.
firmware() {
  printf 'meta-product = "fleet"\nmeta-version = "%s"\nmeta-platform = "host"\nmeta-architecture = "x86_64"\n%s\n' \
    "$1" 'file-resource data { host-path = "data.bin" }
task complete { on-resource data { raw_write(0) } }' >"$WORK/fw-$1.conf"
  (cd "$WORK" && "$FWUP" -c -f "fw-$1.conf" -o "fw-$1.fw" -s fwup-key.priv)
  curl -fsS -H "authorization: token $TOKEN" -F firmware=@"$WORK/fw-$1.fw" "$P/firmwares" |
    jq -r .data.uuid
}
if [ -n "${UPDATE:-}" ]; then
  (cd "$WORK" && "$FWUP" -g >/dev/null && head -c 4096 /dev/urandom >data.bin)
  call -X POST "$API/orgs/bench/keys" \
    -d "$(jq -n --rawfile key "$WORK/fwup-key.pub" '{name: "bench", key: $key}')" >/dev/null
  V1="$(firmware 1.0.0)"
  V2="$(firmware 2.0.0)"
  call -X POST "$P/deployments" -d "$(jq -n --arg fw "$V1" --argjson n "$DEVICES" \
    '{name: "everyone", firmware: $fw, is_active: true, concurrent_updates: $n}')" >/dev/null
  LOADGEN_ARGS+=(--firmware-product fleet --firmware-version 1.0.0 --firmware-uuid "$V1"
    --updates ignore --wait-updates "$DEVICES")
fi

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
wait_for_log() {
  until grep -q "$1" "$OUT/loadgen.log" 2>/dev/null; do
    kill -0 "$LOADGEN_PID" 2>/dev/null || return 0
    sleep 0.2
  done
}

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
"$LOADGEN" "${LOADGEN_ARGS[@]}" "$@" >/dev/null 2>"$OUT/loadgen.log" &
LOADGEN_PID=$!
probe_api &
PROBE_PID=$!
# The idle window: after the cold start's hold begins, CPU over IDLE_SECS - 10 seconds.
wait_for_log "phase cold_start complete"
sleep 5
echo "server RSS with $DEVICES devices joined: $(rss_kib) KiB" | tee -a "$OUT/server.txt"
if [ "$IDLE_SECS" -gt 10 ]; then
  TICKS0="$(cpu_ticks)"
  sleep $((IDLE_SECS - 10))
  TICKS1="$(cpu_ticks)"
  HZ="$(getconf CLK_TCK)"
  awk -v t=$((TICKS1 - TICKS0)) -v hz="$HZ" -v s=$((IDLE_SECS - 10)) \
    'BEGIN {printf "server CPU while idle: %.2f %% of a core\n", 100 * t / hz / s}' | tee -a "$OUT/server.txt"
fi
if [ "$STORMS" -gt 0 ]; then
  wait_for_log "phase storm_$STORMS complete\|phase storm_$STORMS: timed out"
  sleep 5
  echo "server RSS after the storm: $(rss_kib) KiB" | tee -a "$OUT/server.txt"
fi
if [ -n "${UPDATE:-}" ]; then
  wait_for_log "phase updates: waiting for updates"
  date +%s%3N >"$OUT/deployed-at-ms.txt"
  call -X PUT "$P/deployments/everyone" -d "$(jq -n --arg fw "$V2" '{deployment: {firmware: $fw}}')" >/dev/null
fi
wait "$LOADGEN_PID" || echo "loadgen exited with $?" | tee -a "$OUT/server.txt"
wait "$PROBE_PID" 2>/dev/null || true
# Every disconnection recorded: the loadgen has closed every device, so a device the API still
# shows online lost its disconnection (the PostgreSQL baseline lost 2,034 in a storm).
sleep "${SETTLE_SECS:-10}"
ONLINE="$(call "$P/devices?online=true&page_size=1" | jq .pagination.total_entries)"
echo "devices still shown online ${SETTLE_SECS:-10} s after the loadgen closed them all: $ONLINE" | tee -a "$OUT/server.txt"
sort -n "$OUT/api-latency-ms.txt" | awk '{a[NR]=$1} END {
  if (NR) {
    p50 = int(NR * 0.50 + 0.999); if (p50 < 1) p50 = 1
    p99 = int(NR * 0.99 + 0.999); if (p99 < 1) p99 = 1
    printf "GET /api/users/me during the run: %d calls, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
      NR, a[p50], a[p99], a[NR]
  }}' | tee -a "$OUT/server.txt"
jq -c '.phases[] | {name, joins, failed_attempts, time_to_last_join_ms, joins_per_second, p99: .connect_to_join_ms.p99}' \
  "$OUT/summary.json"
jq -c '{updates, resumed_tls_handshakes, loadgen_peak_rss_kib}' "$OUT/summary.json"
