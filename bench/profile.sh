#!/usr/bin/env bash
# Where the server's CPU goes under one wrk scenario: starts the release binary as bench/run.sh
# does, records it with `perf` (Debian's linux-perf) while wrk runs, and prints the share of its
# samples by library (kernel, libc, kiss-auth), kiss-auth's by crate, and the busiest functions.
# Usage: bench/profile.sh [patch|keyed|access]   (BENCH_SECONDS=10 BENCH_CONCURRENCY=32;
#        PROFILE_DATA=file keeps perf's recording; PROFILE_TOP=n functions, default 25)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SCENARIO=${1:-patch}
SECONDS_EACH=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONCURRENCY:-32}
export RUST_LOG=${RUST_LOG:-warn}
export KISS_RATE_LIMIT_PMS_UNIT=10000000/60s KISS_RATE_LIMIT_PMS_BULK=10000000/60s
export KISS_RATE_LIMIT_OTP_SEND_IP=10000000/3600s KISS_RATE_LIMIT_OTP_VERIFY_IP=10000000/3600s
export KISS_SMS_PROVIDER=webhook KISS_SMS_WEBHOOK_URL="http://127.0.0.1:${BENCH_SMS_PORT:-18081}/sms"

bench_server kiss_auth_profile "${BENCH_PORT:-18082}" --example loadgen
TOKENS_FILE=$(mktemp)
BENCH_URL="$ROOT/api/v2" BENCH_TOKEN="$TOKEN" BENCH_SEED_TOKENS="$TOKENS_FILE" BENCH_PHONES=1000 \
  target/release/examples/loadgen >/dev/null
case $SCENARIO in
  patch) SCRIPT=bench/wrk/patch.lua KEYED=0 ;;
  keyed) SCRIPT=bench/wrk/patch.lua KEYED=1 ;;
  access) SCRIPT=bench/wrk/access.lua KEYED=0 ;;
  *) echo "unknown scenario: $SCENARIO" >&2; exit 2 ;;
esac
DATA=${PROFILE_DATA:-$(mktemp)}
perf record -q -F 1999 -p "$SERVER" -o "$DATA" -- sleep "$SECONDS_EACH" 2>/dev/null &
PERF=$!
BENCH_TOKEN="$TOKEN" BENCH_TOKENS_FILE="$TOKENS_FILE" BENCH_KEYED=$KEYED \
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$SCRIPT" "$ROOT" | grep -E 'Requests/sec'
wait $PERF
echo "== by library"
perf report -i "$DATA" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -8
echo "== kiss-auth's own samples by crate (share of all samples)"
perf report -i "$DATA" --no-children --dsos kiss-auth --sort symbol --stdio 2>/dev/null \
  | awk '/^ +[0-9]/ { share = $1; sub("%", "", share); $1 = $2 = ""; sub(/^ +<?/, "")
                      split($0, path, "::"); by_crate[path[1]] += share }
         END { for (crate in by_crate) printf "%6.2f%%  %s\n", by_crate[crate], crate }' \
  | sort -rn | head -12
echo "== busiest functions"
perf report -i "$DATA" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' \
  | cut -c1-140 | head -"${PROFILE_TOP:-25}"
rm -f "$TOKENS_FILE"
[[ -n ${PROFILE_DATA:-} ]] || rm -f "$DATA"
