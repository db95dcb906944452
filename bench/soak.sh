#!/usr/bin/env bash
# Soak test (docs/api.md, "Hardening"): the release binary under mixed load (PMS writes, logins, tenant reads,
# some bad input) for BENCH_SOAK_SECONDS (default 600), with its RSS sampled every second.
# Prints the answers by kind and status, the 5xx count, and the RSS curve's start, end and peak.
# Usage: bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export RUST_LOG=${RUST_LOG:-error}
SMS_PORT=${BENCH_SMS_PORT:-18084}
export KISS_SMS_PROVIDER=webhook KISS_SMS_WEBHOOK_URL="http://127.0.0.1:$SMS_PORT/sms"
# Writes at full speed are the point; the per-phone OTP limits stay as they are.
export KISS_RATE_LIMIT_PMS_UNIT=10000000/60s KISS_RATE_LIMIT_PMS_BULK=10000000/60s
# Every client is on one loopback address: lift the per-address OTP limits too.
export KISS_RATE_LIMIT_OTP_SEND_IP=10000000/3600s KISS_RATE_LIMIT_OTP_VERIFY_IP=10000000/3600s
SECONDS_TO_RUN=${BENCH_SOAK_SECONDS:-600}

bench_server kiss_auth_soak "${BENCH_PORT:-18083}" --example loadgen
SAMPLES=$(mktemp)
( while kill -0 "$SERVER" 2>/dev/null; do bench_rss VmRSS >>"$SAMPLES"; sleep 1; done ) &
SAMPLER=$!

echo "soak: ${SECONDS_TO_RUN} s"
BENCH_URL="$ROOT/api/v2" BENCH_TOKEN="$TOKEN" BENCH_SMS_PORT=$SMS_PORT \
  BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-16} BENCH_SOAK_SECONDS=$SECONDS_TO_RUN target/release/examples/loadgen
kill $SAMPLER 2>/dev/null || true
# The curve after a one-minute warm-up: the first and the last minute's mean, and the peak.
awk -v warm=60 '
  { rss[NR] = $1; if ($1 > peak) peak = $1 }
  END {
    n = NR; if (n <= warm + 60) { print "too few samples: " n; exit }
    for (i = 1; i <= 60; i++) { first += rss[warm + i]; last += rss[n - 60 + i] }
    printf "server RSS: at start %.1f MiB; after warm-up, first minute %.1f MiB, last minute %.1f MiB (means); peak %.1f MiB; %d samples\n",
      rss[1] / 1024, first / 60 / 1024, last / 60 / 1024, peak / 1024, n
  }' "$SAMPLES"
rm -f "$SAMPLES"
