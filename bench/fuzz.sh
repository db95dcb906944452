#!/usr/bin/env bash
# Fuzzes a running kiss-auth with schemathesis (from PyPI) against its own OpenAPI document:
# no request may produce a 5xx, an undocumented status, or a body that contradicts the document.
# Usage: bench/fuzz.sh            (FUZZ_EXAMPLES=100 per operation by default)
set -euo pipefail
cd "$(dirname "$0")/.."

st --version 2>/dev/null | grep -q "4\.32\." || pip install --quiet "schemathesis==4.32.5"
PORT=${FUZZ_PORT:-18090}
DB=kiss_auth_fuzz
BASE="http://127.0.0.1:$PORT"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export KISS_APP_KEY=$(head -c 32 /dev/urandom | base64)
export KISS_BIND="127.0.0.1:$PORT" RUST_LOG=${RUST_LOG:-info}
# Fuzzing is about answers, not the limiter: lift every limit, and keep codes in the log.
for scope in OTP_SEND OTP_VERIFY OTP_SEND_IP OTP_VERIFY_IP OTP_SEND_DAILY PMS_BULK PMS_UNIT ADMIN_SIGN_IN; do
  export KISS_RATE_LIMIT_$scope=1000000/60s
done
export KISS_OTP_MAX_FAILED_PER_DAY=1000000
export KISS_OTP_RESEND_COOLDOWN_SECS=1

cargo build --quiet --bin kiss-auth
BIN=target/debug/kiss-auth
LOG=$(mktemp)
psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
"$BIN" migrate >/dev/null
COMPANY=$("$BIN" company create --name "Fuzz Storage" | jq -r .id)
API_TOKEN=$("$BIN" token create --company "$COMPANY" --name fuzz | jq -r .token)
printf 'fuzzing admin password\n' | "$BIN" admin create --email fuzz@example.com >/dev/null

"$BIN" serve 2>"$LOG" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 50); do curl -s -o /dev/null "$BASE/healthz" && break; sleep 0.2; done

api() { curl -s -X "$1" "$BASE/api/v2$2" -H "Authorization: Bearer $3" -H 'Content-Type: application/json' ${4:+-d "$4"}; }
api PATCH /units "$API_TOKEN" '{"units": [{"crm_unit_id": "A-1", "crm_location_id": "dt", "location_name": "Downtown"}]}' >/dev/null
api PUT /units/A-1/tenancy "$API_TOKEN" '{"crm_tenant_id": "T-1", "name": "Jane", "phone": "+15551234567", "access_code": "1234"}' >/dev/null
ADMIN_TOKEN=$(curl -s -X POST "$BASE/api/v2/admin/sign-in" -H 'Content-Type: application/json' \
  -d '{"email": "fuzz@example.com", "password": "fuzzing admin password"}' | jq -r .data.token)
curl -s -o /dev/null -X POST "$BASE/api/v2/auth/phone" -H 'Content-Type: application/json' -d '{"country_code": "1", "phone_number": "5551234567"}'
sleep 0.3
CODE=$(grep -o 'code is [0-9]*' "$LOG" | tail -1 | awk '{print $3}')
TENANT_TOKEN=$(curl -s -X POST "$BASE/api/v2/auth/verify-otp" -H 'Content-Type: application/json' \
  -d "{\"country_code\": \"1\", \"phone_number\": \"5551234567\", \"otp\": \"$CODE\"}" | jq -r .data.token)

# Every tag of the document must be fuzzed below: a new tag without a pass is a failure here.
FUZZED_TAGS=("operations" "tenant" "tenant login" "pms" "administration" "audit")
while IFS= read -r tag; do
  printf '%s\n' "${FUZZED_TAGS[@]}" | grep -qxF "$tag" || { echo "fuzz: no pass for tag '$tag'" >&2; exit 1; }
done < <(curl -s "$BASE/api/v2/openapi.json" | jq -r '[.paths[][] | objects | .tags[]?] | unique[]')

FAILED=0
run() { # label, extra schemathesis arguments…
  echo "== $1"
  shift
  st run "$BASE/api/v2/openapi.json" --url "$BASE" --checks all \
    --max-examples "${FUZZ_EXAMPLES:-150}" --generation-deterministic "$@" || FAILED=1
}
# Every check runs everywhere, except one where the answer depends on state (or numbering-plan rules)
# the document cannot describe: positive_data_acceptance (a request the schema allows must not be refused) on
#   POST /auth/phone       a phone with no tenant, or not a valid number for its country code (422)
#   POST /auth/verify-otp  a code that is wrong, expired or used (422)
#   PATCH /units           a new unit (one the database does not have yet) without crm_location_id (422)
#   GET /units             a cursor that no earlier page returned (422)
#   PUT /units/{id}/tenancy  a phone the schema's pattern allows but its country's numbering plan
#                          does not (e.g. +1 000000: too short, or an impossible area code) (422)
#   POST /admin/password   a current password that is not the admin's (422)
#   POST /admins           a company_id no company has (422)
#   GET /events, GET /companies/{id}/events  a cursor that no earlier page returned (422)
# Each of those operations gets every other check in a pass of its own. (Schemathesis joins
# --include-* options with "or", so a pass names its operations one way only.)
TENANT_LOGIN_STATEFUL=("POST /api/v2/auth/phone" "POST /api/v2/auth/verify-otp")
PMS_STATEFUL=("PATCH /api/v2/units" "GET /api/v2/units" "PUT /api/v2/units/{crm_unit_id}/tenancy")
ADMIN_STATEFUL=("POST /api/v2/admin/password" "POST /api/v2/admins")
AUDIT_STATEFUL=("GET /api/v2/events" "GET /api/v2/companies/{company_id}/events")
# `--include-name` or `--exclude-name` (the first argument) before each operation name.
names() { local flag=$1 name; shift; for name in "$@"; do printf -- '%s\0%s\0' "$flag" "$name"; done; }
# A tag's operations but its state-dependent ones with every check, then those without the one.
# SKIP_PATH: a path left out of both (one that ends the token, run last).
tag_passes() { # label, tag, bearer token, state-dependent operation names…
  local label=$1 tag=$2 auth=(-H "Authorization: Bearer $3") except=() only=()
  shift 3
  [[ -n ${SKIP_PATH:-} ]] && except+=(--exclude-path "$SKIP_PATH")
  mapfile -d '' -t -O "${#except[@]}" except < <(names --exclude-name "$@")
  mapfile -d '' -t only < <(names --include-name "$@")
  run "$label" --include-tag "$tag" "${except[@]}" "${auth[@]}"
  run "$label: state-dependent refusals allowed" "${only[@]}" \
    --exclude-checks positive_data_acceptance "${auth[@]}"
}
# Order matters: the PMS pass may vacate the tenant's unit (ending its token), and the
# token-ending operations run last.
run "operations" --include-tag operations
run "tenant (tenant token)" --include-tag tenant -H "Authorization: Bearer $TENANT_TOKEN"
run "tenant login: state-dependent refusals allowed" --exclude-checks positive_data_acceptance \
  --include-name "${TENANT_LOGIN_STATEFUL[0]}" --include-name "${TENANT_LOGIN_STATEFUL[1]}"
tag_passes "PMS (API token)" pms "$API_TOKEN" "${PMS_STATEFUL[@]}"
SKIP_PATH=/api/v2/admin/sign-out \
  tag_passes "administration (admin token)" administration "$ADMIN_TOKEN" "${ADMIN_STATEFUL[@]}"
tag_passes "audit events and webhooks (admin token)" audit "$ADMIN_TOKEN" "${AUDIT_STATEFUL[@]}"
run "tenant logout" --include-path /api/v2/auth/logout -H "Authorization: Bearer $TENANT_TOKEN"
run "admin sign-out" --include-path /api/v2/admin/sign-out -H "Authorization: Bearer $ADMIN_TOKEN"
exit $FAILED
