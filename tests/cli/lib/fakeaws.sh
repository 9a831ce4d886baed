# Sourced by the CLI tests that run lumu against fakeaws (tests/support/fakeaws):
# the python check, starting fakeaws, its control endpoints, and the
# run/expect/check helpers the tests share.
#
# The sourcing script sets first: NAME (its name, for messages), SRC (the
# repository root), TMP (its scratch directory), LUMU, pass=0 fail=0, and a
# cleanup trap that kills $FAKEPID.  Optional: RUN_LOG (a file every run's
# stdout and stderr are appended to), BAD_TAIL_OUT / BAD_TAIL_ERR (lines of
# stdout/stderr a failure shows; 20 and 30), BAD_ERR_DROP (an extended
# regex: stderr lines a failure leaves out).
#
#   fakeaws_python            PY=a python3 with botocore, or the test ends failed
#   fakeaws_start [ARGS...]   start fakeaws (--port 0 --resource-ms 5 --idle 600
#                             ARGS); sets FAKEPID, PORT, E; exports AWS_ENDPOINT_URL
#   fake_control PATH [JSON]  GET (or POST JSON to) E/__fake/PATH, prints the reply
#   fake_calls [SVC [OP]]     how many calls fakeaws logged (of SVC, of OP)
#   fake_calls_reset          empty the call log
#   run CMD...                sets rc, out, err (stdin: /dev/null)
#   expect_rc / expect_out / expect_err / check   count a pass or show a failure

fakeaws_give_up() { # message
  echo "$NAME: $1" >&2
  echo "$NAME: $pass passed, $((fail + 1)) failed"
  exit 1
}

fakeaws_python() {
  PY=
  local p
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import botocore' 2>/dev/null; then PY=$p; break; fi
  done
  [ -n "$PY" ] || fakeaws_give_up "no python3 with botocore (install python3-botocore)"
}

fakeaws_start() {
  [ -n "${PY:-}" ] || fakeaws_python
  "$PY" "$SRC/tests/support/fakeaws" --port 0 --resource-ms 5 --idle 600 "$@" \
    >"$TMP/fake.out" 2>"$TMP/fake.err" &
  FAKEPID=$!
  PORT=
  local _
  for _ in $(seq 1 100); do
    PORT=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$TMP/fake.out")
    [ -n "$PORT" ] && break
    sleep 0.1
  done
  [ -n "$PORT" ] || fakeaws_give_up "fakeaws did not start: $(cat "$TMP/fake.err")"
  E=http://127.0.0.1:$PORT
  export AWS_ENDPOINT_URL=$E
}

fake_control() {
  "$PY" - "$E" "$1" "${2:-}" <<'EOF'
import sys, urllib.request
url, path, body = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url + "/__fake" + path, data=body.encode() if body else None,
                             method="POST" if body else "GET")
print(urllib.request.urlopen(req).read().decode())
EOF
}

fake_calls() {
  "$PY" - "$E" "${1:-}" "${2:-}" <<'EOF'
import json, sys, urllib.request
url, svc, op = sys.argv[1], sys.argv[2], sys.argv[3]
log = json.load(urllib.request.urlopen(url + "/__fake/calls"))
print(sum(1 for c in log if (not svc or c["service"] == svc) and (not op or c["operation"] == op)))
EOF
}

fake_calls_reset() { fake_control /calls/reset '{}' >/dev/null; }

run() {
  "$@" >"$TMP/.stdout" 2>"$TMP/.stderr" </dev/null
  rc=$?
  out=$(cat "$TMP/.stdout")
  err=$(cat "$TMP/.stderr")
  if [ -n "${RUN_LOG:-}" ]; then cat "$TMP/.stdout" "$TMP/.stderr" >>"$RUN_LOG"; fi
}
ok() { pass=$((pass + 1)); }
bad() {
  fail=$((fail + 1))
  local e=$err
  [ -n "${BAD_ERR_DROP:-}" ] && e=$(printf '%s' "$err" | grep -Ev "$BAD_ERR_DROP")
  printf 'FAIL: %s\n  rc=%s\n  stdout: %s\n  stderr: %s\n' "$1" "$rc" \
    "$(printf '%s' "$out" | tail -n "${BAD_TAIL_OUT:-20}")" "$(printf '%s' "$e" | tail -n "${BAD_TAIL_ERR:-30}")" >&2
}
expect_rc() { if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi; }
expect_out() {
  case $out in *"$3"*) if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi ;;
  *) bad "$1 (want stdout containing '$3')" ;; esac
}
expect_err() {
  case $err in *"$3"*) if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi ;;
  *) bad "$1 (want stderr containing '$3')" ;; esac
}
check() { if eval "$2"; then ok; else bad "$1"; fi; }
