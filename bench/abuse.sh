#!/usr/bin/env bash
# Abuse benchmark (docs/api.md, "Hardening"): starts the release binary against a fresh database, then
# bench/abuse.rs sends 50 concurrent 16 MiB bodies to each public route, opens 1,000 half-open
# connections and sends 10,000 requests with random methods and paths, while a legitimate client
# keeps reading. Prints the server's idle and peak memory and what every client got.
# Usage: bench/abuse.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export RUST_LOG=${RUST_LOG:-error}
ulimit -n 65536 2>/dev/null || true

bench_server kiss_auth_abuse "${BENCH_PORT:-18082}" --example abuse
# Warm up the paths the legitimate client uses, then read the idle footprint.
for _ in $(seq 1 20); do curl -s -o /dev/null "$ROOT/api/v2/units" -H "Authorization: Bearer $TOKEN"; done
IDLE=$(bench_rss VmRSS)
BENCH_ROOT="$ROOT" BENCH_TOKEN="$TOKEN" target/release/examples/abuse
PEAK=$(bench_rss VmHWM)
AFTER=$(bench_rss VmRSS)
echo "server RSS: idle $((IDLE / 1024)) MiB, peak $((PEAK / 1024)) MiB ($(((PEAK - IDLE) / 1024)) MiB above idle), after $((AFTER / 1024)) MiB"
