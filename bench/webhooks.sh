#!/usr/bin/env bash
# Webhook delivery latency (docs/api.md, "Audit events and webhooks"): starts the release binary against a fresh database,
# registers a local receiver as a webhook, writes BENCH_EVENTS tenancies and prints how long each
# `tenancy.replaced` event took to reach the receiver (p50/p90/p99/max).
# Usage: bench/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export RUST_LOG=${RUST_LOG:-error}
export KISS_RATE_LIMIT_PMS_UNIT=10000000/60s KISS_RATE_LIMIT_PMS_BULK=10000000/60s

bench_server kiss_auth_webhooks "${BENCH_PORT:-18087}" --example webhooks
printf 'bench admin password\n' | "$BIN" admin create --email bench@example.com >/dev/null
ADMIN=$(curl -s -X POST "$ROOT/api/v2/admin/sign-in" -H 'Content-Type: application/json' \
  -d '{"email": "bench@example.com", "password": "bench admin password"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
BENCH_URL="$ROOT/api/v2" BENCH_TOKEN="$TOKEN" BENCH_ADMIN="$ADMIN" BENCH_COMPANY="$COMPANY" \
  target/release/examples/webhooks
