#!/usr/bin/env bash
# Load benchmark: builds the release binary, starts it on loopback against a fresh database,
# drives it with bench/loadgen.rs and prints a table, then the server's peak memory.
# Usage: bench/run.sh            (BENCH_SECONDS=10 BENCH_CONCURRENCY=32 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${BENCH_PORT:-18080}
DB=kiss_auth_bench
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export KISS_APP_KEY=${KISS_APP_KEY:-$(head -c 32 /dev/urandom | base64)}
export KISS_BIND="127.0.0.1:$PORT"
export RUST_LOG=${RUST_LOG:-warn}
# The benchmark measures throughput, not the limiter: lift the PMS limits far above the load
# (the OTP scenario uses a phone of its own per login, so the per-phone limits stay as they are).
export KISS_RATE_LIMIT_PMS_UNIT=10000000/60s KISS_RATE_LIMIT_PMS_BULK=10000000/60s
# OTP codes go to the load generator's webhook sink, standing in for an SMS provider.
export KISS_SMS_PROVIDER=webhook KISS_SMS_WEBHOOK_URL="http://127.0.0.1:${BENCH_SMS_PORT:-18081}/sms"

cargo build --release --quiet --bin kiss-auth --example loadgen
BIN=target/release/kiss-auth

psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
"$BIN" migrate >/dev/null
COMPANY=$("$BIN" company create --name "Bench Storage" | sed -E 's/.*"id":"([^"]+)".*/\1/')
TOKEN=$("$BIN" token create --company "$COMPANY" --name bench | sed -E 's/.*"token":"([^"]+)".*/\1/')

"$BIN" serve &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/api/v2/units" && break
  sleep 0.2
done

echo "kiss-auth $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores, $(date -u +%Y-%m-%d)"
BENCH_URL="http://127.0.0.1:$PORT/api/v2" BENCH_TOKEN="$TOKEN" target/release/examples/loadgen
echo
echo "server peak memory (VmHWM): $(awk '/VmHWM/ {print $2, $3}' /proc/$SERVER/status)"
kill -TERM $SERVER
wait $SERVER 2>/dev/null || true
psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
