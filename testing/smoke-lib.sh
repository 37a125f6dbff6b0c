# Helpers shared by the smoke tests of the test servers in this folder (each
# <server>/smoke.sh). Not meant to run on its own: a smoke.sh sets HERE to its own
# folder, sources this file, sets SERVER_CMD to the command that runs its server
# and then makes its own checks.
#
# Sourcing it creates WORK, a temporary folder that is removed on exit, when every
# server still running is stopped too. Every network call and every wait below is
# bounded.

# need_tools TOOL... : exits with status 2 when one of them is not on PATH.
need_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
  done
}

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# Checks. A failure shows the last lines of the server's stderr and ends the run.

CURL=(curl -sS --max-time 5)
PASSED=0
ok()   { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { echo "FAIL $*" >&2; [ -n "${SERVER_LOG:-}" ] && tail -n 20 "$SERVER_LOG" >&2; exit 1; }
expect_eq() { [ "$1" == "$2" ] || fail "$3: expected '$2', got '$1'"; ok "$3"; }
expect_ne() { [ "$1" != "$2" ] || fail "$3: both are '$1'"; ok "$3"; }

# ---------------------------------------------------------------------------
# HTTP

# call ARGS... : any curl request; prints "<status> <body>" on one line (the body's
# own newlines dropped).
call() {
  "${CURL[@]}" -o "$WORK/body" -w '%{http_code}' "$@" >"$WORK/status" || true
  echo "$(cat "$WORK/status") $(tr -d '\n' <"$WORK/body")"
}
status_of() { echo "${1%% *}"; }
body_of() { echo "${1#* }"; }

# uri VALUE: VALUE percent-encoded for a query string.
uri() { jq -rn --arg v "$1" '$v|@uri'; }
# qparam URL NAME: the first value of the query parameter NAME in URL, as it stands.
qparam() { tr '&' '\n' <<<"${1#*\?}" | sed -n "s/^$2=//p" | head -n 1; }

# ---------------------------------------------------------------------------
# The server under test

# start_server NAME ARGS... : runs "${SERVER_CMD[@]}" ARGS... with stdout in
# $WORK/NAME.out and stderr in SERVER_LOG ($WORK/NAME.err). Its stdin is the FIFO
# $WORK/NAME.stdin, whose write end this shell holds open (the fd is in
# SERVER_STDIN_FD), as a test holds a pipe: the server also stops when this script
# ends. Waits up to READY_SECONDS (default 10) for the `ready URL` line, which must
# be all the server prints on stdout; sets ISSUER to URL and SERVER_PID.
start_server() {
  local name="$1"; shift
  local fifo="$WORK/$name.stdin" out="$WORK/$name.out" wait_for="${READY_SECONDS:-10}" i
  SERVER_LOG="$WORK/$name.err"
  mkfifo "$fifo"
  "${SERVER_CMD[@]}" "$@" <"$fifo" >"$out" 2>"$SERVER_LOG" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  exec {SERVER_STDIN_FD}>"$fifo"
  for i in $(seq 1 $((wait_for * 10))); do
    grep -q '^ready ' "$out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server $name exited before it was ready"
    sleep 0.1
  done
  ISSUER="$(sed -n 's/^ready //p' "$out")"
  [ -n "$ISSUER" ] || fail "server $name did not say ready within $wait_for s"
  [ "$(wc -l <"$out")" -eq 1 ] || fail "server $name printed more than the ready line"
  echo "---- server $name: $ISSUER ($*)"
}

# wait_gone PID: true once the process has ended (it is given at most 5 s).
wait_gone() {
  local i
  for i in $(seq 1 50); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# stop_server PID: sends SIGTERM and gives the server 5 s to end, else the run
# fails. Sets SERVER_RC to its exit status.
stop_server() {
  local pid="$1" kept=() p
  kill -TERM "$pid"
  wait_gone "$pid" || fail "server still running 5 s after SIGTERM"
  SERVER_RC=0
  wait "$pid" 2>/dev/null || SERVER_RC=$?
  for p in "${PIDS[@]}"; do [ "$p" == "$pid" ] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}
