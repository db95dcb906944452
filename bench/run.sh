#!/usr/bin/env bash
# Load benchmark: builds the release binary, starts it on loopback against a fresh database and
# prints, in one run:
#   1. bulk PATCH timings (bench/loadgen.rs, BENCH_ONLY=bulk);
#   2. wrk (a load generator in C, so its CPU does not hide the server's) on the single-unit PATCH
#      with and without an Idempotency-Key and on GET /tenant/access, at BENCH_CONCURRENCY
#      connections for BENCH_SECONDS each, with the CPU the server and Postgres spent per request;
#   3. the pgbench floor of kiss-auth's own SQL for the same two requests;
#   4. the server's peak memory.
# Needs wrk and pgbench (apt-get install wrk postgresql-contrib).
# Usage: bench/run.sh            (BENCH_SECONDS=10 BENCH_CONCURRENCY=32 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export RUST_LOG=${RUST_LOG:-warn}
SECONDS_EACH=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONCURRENCY:-32}
# The benchmark measures throughput, not the limiter: lift the PMS limits far above the load.
export KISS_RATE_LIMIT_PMS_UNIT=10000000/60s KISS_RATE_LIMIT_PMS_BULK=10000000/60s
# Every client is on one loopback address: lift the per-address OTP limits too.
export KISS_RATE_LIMIT_OTP_SEND_IP=10000000/3600s KISS_RATE_LIMIT_OTP_VERIFY_IP=10000000/3600s
# OTP codes go to the load generator's webhook sink, standing in for an SMS provider.
export KISS_SMS_PROVIDER=webhook KISS_SMS_WEBHOOK_URL="http://127.0.0.1:${BENCH_SMS_PORT:-18081}/sms"

bench_server kiss_auth_bench "${BENCH_PORT:-18080}" --example loadgen
BENCH_URL="$ROOT/api/v2" BENCH_TOKEN="$TOKEN" BENCH_ONLY=bulk target/release/examples/loadgen

TOKENS_FILE=$(mktemp)
BENCH_URL="$ROOT/api/v2" BENCH_TOKEN="$TOKEN" BENCH_SEED_TOKENS="$TOKENS_FILE" BENCH_PHONES=1000 \
  target/release/examples/loadgen >/dev/null

TICK_US=$((1000000 / $(getconf CLK_TCK)))
# utime + stime of a process, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "pid ticks" of every Postgres process (backends, WAL writer, checkpointer…).
postgres_ticks() {
  local pid
  for pid in $(pgrep -x postgres); do echo "$pid $(ticks "$pid")"; done
}
# CPU ticks Postgres spent between two postgres_ticks snapshots: per process, counting processes
# that started in between from zero and leaving out those that ended.
postgres_delta() {
  awk 'NR == FNR {before[$1] = $2; next} {total += $2 - ($1 in before ? before[$1] : 0)} END {print total + 0}' \
    <(echo "$1") <(echo "$2")
}

echo
echo "| scenario (wrk, $CONNECTIONS connections, ${SECONDS_EACH} s) | requests | non-2xx | req/s | p50 ms | p99 ms | server µs CPU/req | Postgres µs CPU/req |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
scenario() { # name, wrk script, extra environment…
  local name=$1 script=$2
  shift 2
  local server0 pg0 out
  server0=$(ticks "$SERVER"); pg0=$(postgres_ticks)
  out=$(env "$@" BENCH_TOKEN="$TOKEN" BENCH_TOKENS_FILE="$TOKENS_FILE" \
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "$script" "$ROOT")
  local server_ticks=$(( $(ticks "$SERVER") - server0 )) pg_ticks
  pg_ticks=$(postgres_delta "$pg0" "$(postgres_ticks)")
  local requests non2xx rps p50 p99
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  printf '| %s | %s | %s | %s | %s | %s | %.0f | %.0f |\n' "$name" "$requests" "$non2xx" "$rps" "$p50" "$p99" \
    "$(bc -l <<<"$server_ticks * $TICK_US / $requests")" "$(bc -l <<<"$pg_ticks * $TICK_US / $requests")"
}
scenario "single-unit PATCH" bench/wrk/patch.lua BENCH_KEYED=0
scenario "single-unit PATCH, Idempotency-Key" bench/wrk/patch.lua BENCH_KEYED=1
scenario "GET /tenant/access" bench/wrk/access.lua

# The floor: Postgres alone running kiss-auth's statements for the same requests.
TOKEN_ID=$(sed -E 's/^kat_([0-9a-f]{32})\..*/\1/' <<<"$TOKEN")
TOKEN_COUNT=$(psql -h 127.0.0.1 -U postgres -d "$BENCH_DB" -tAc "SELECT max(id) FROM tenant_tokens")
floor() { # name, script, pgbench -D variables…
  local name=$1 script=$2
  shift 2
  local tps
  tps=$(pgbench -h 127.0.0.1 -U postgres -n -M prepared -c "$CONNECTIONS" -j 2 -T "$SECONDS_EACH" "$@" \
    -f "$script" "$BENCH_DB" 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}')
  echo "| $name | $tps |"
}
echo
echo "| pgbench floor of kiss-auth's SQL ($CONNECTIONS connections) | transactions/s |"
echo "| --- | ---: |"
floor "single-unit PATCH (BEGIN, the update checking the token, COMMIT)" bench/sql/single_patch.sql \
  -D token_id="$TOKEN_ID" -D company_id="$COMPANY"
floor "GET /tenant/access (one statement checking the token)" bench/sql/tenant_access.sql -D tokens="$TOKEN_COUNT"
rm -f "$TOKENS_FILE"

echo
echo "server peak memory (VmHWM): $(bench_rss VmHWM) kB"
