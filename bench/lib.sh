# Shared by the benchmark scripts (sourced, not run): a fresh database, a company with an API
# token, and the release server started on loopback and stopped (database dropped) at exit.
#
# bench_server DB PORT [extra cargo build arguments…]
#   builds the release binary (and what the arguments add), then sets BIN, COMPANY, TOKEN, SERVER
#   and ROOT (http://127.0.0.1:PORT). The server's environment is the caller's plus DATABASE_URL,
#   KISS_APP_KEY (random unless set) and KISS_BIND.
bench_server() {
  local db=$1 port=$2
  shift 2
  BENCH_DB=$db
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
  export KISS_APP_KEY=${KISS_APP_KEY:-$(head -c 32 /dev/urandom | base64)}
  export KISS_BIND="127.0.0.1:$port"
  ROOT="http://127.0.0.1:$port"
  cargo build --release --quiet --bin kiss-auth "$@"
  BIN=target/release/kiss-auth
  psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  "$BIN" migrate >/dev/null
  COMPANY=$("$BIN" company create --name "Bench Storage" | sed -E 's/.*"id":"([^"]+)".*/\1/')
  TOKEN=$("$BIN" token create --company "$COMPANY" --name bench | sed -E 's/.*"token":"([^"]+)".*/\1/')
  "$BIN" serve >/dev/null &
  SERVER=$!
  trap bench_stop EXIT
  for _ in $(seq 1 50); do
    curl -s -o /dev/null "$ROOT/healthz" && break
    sleep 0.2
  done
  echo "kiss-auth $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores, $(date -u +%Y-%m-%d)"
}

# The server's memory in KiB: `bench_rss VmRSS` (now) or `bench_rss VmHWM` (peak so far).
bench_rss() {
  awk -v field="$1:" '$1 == field {print $2}' /proc/$SERVER/status
}

bench_stop() {
  kill -TERM "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1
}
