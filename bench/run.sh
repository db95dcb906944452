#!/usr/bin/env bash
# Load benchmark: builds the release binary, starts it on loopback against a fresh database,
# drives it with bench/loadgen.rs and prints a table, then the server's peak memory.
# Usage: bench/run.sh            (BENCH_SECONDS=10 BENCH_CONCURRENCY=32 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export RUST_LOG=${RUST_LOG:-warn}
# The benchmark measures throughput, not the limiter: lift the PMS limits far above the load
# (the OTP scenario uses a phone of its own per login, so the per-phone limits stay as they are).
export KISS_RATE_LIMIT_PMS_UNIT=10000000/60s KISS_RATE_LIMIT_PMS_BULK=10000000/60s
# Every client is on one loopback address: lift the per-address OTP limits too.
export KISS_RATE_LIMIT_OTP_SEND_IP=10000000/3600s KISS_RATE_LIMIT_OTP_VERIFY_IP=10000000/3600s
# OTP codes go to the load generator's webhook sink, standing in for an SMS provider.
export KISS_SMS_PROVIDER=webhook KISS_SMS_WEBHOOK_URL="http://127.0.0.1:${BENCH_SMS_PORT:-18081}/sms"

bench_server kiss_auth_bench "${BENCH_PORT:-18080}" --example loadgen
BENCH_URL="$ROOT/api/v2" BENCH_TOKEN="$TOKEN" target/release/examples/loadgen
echo
echo "server peak memory (VmHWM): $(bench_rss VmHWM) kB"
