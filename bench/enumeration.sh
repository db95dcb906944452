#!/usr/bin/env bash
# Anti-enumeration timing (docs/api.md, "SMS and OTP abuse controls", KISS_OTP_HIDE_UNKNOWN_PHONES): starts the release binary
# with the mode on and SMS going to a local webhook sink that answers after a provider-like delay,
# then bench/enumeration.rs compares the answers and latencies of /auth/phone for phones with and
# without accounts (BENCH_PHONES of each, default 200).
# Usage: bench/enumeration.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export RUST_LOG=${RUST_LOG:-error}
SMS_PORT=${BENCH_SMS_PORT:-18085}
export KISS_OTP_HIDE_UNKNOWN_PHONES=true
export KISS_SMS_PROVIDER=webhook KISS_SMS_WEBHOOK_URL="http://127.0.0.1:$SMS_PORT/sms"
# Every request comes from one loopback address: lift the per-address limits above the run.
export KISS_RATE_LIMIT_OTP_SEND_IP=1000000/3600s KISS_RATE_LIMIT_OTP_VERIFY_IP=1000000/3600s

bench_server kiss_auth_enumeration "${BENCH_PORT:-18086}" --example enumeration
BENCH_URL="$ROOT/api/v2" BENCH_TOKEN="$TOKEN" BENCH_SMS_PORT=$SMS_PORT target/release/examples/enumeration
