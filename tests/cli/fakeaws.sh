# fakeaws (tests/support/fakeaws): runs its own python tests, which drive a
# real server process on 127.0.0.1 with botocore clients.  The lumu binary
# given as $1 is not used; the test prints "N passed, M failed".
# Usage: bash tests/cli/fakeaws.sh [path/to/lumu]
set -u

SRC=$(cd "$(dirname "$0")/../.." && pwd)
cd "$SRC" || exit 1
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION \
  AWS_DEFAULT_REGION AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE http_proxy https_proxy \
  HTTP_PROXY HTTPS_PROXY
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null NO_PROXY='*'

# a python3 that has botocore: the one on PATH, else Debian's
PY=
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import botocore' 2>/dev/null; then
    PY=$p
    break
  fi
done
if [ -z "$PY" ]; then
  echo "fakeaws.sh: no python3 with botocore (install python3-botocore)" >&2
  echo "fakeaws.sh: 0 passed, 1 failed"
  exit 1
fi

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
"$PY" -m unittest tests.support.fakeaws_test >"$OUT" 2>&1
rc=$?
ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$OUT" | tail -n 1)
failures=$(sed -n 's/.*failures=\([0-9]*\).*/\1/p' "$OUT" | tail -n 1)
errors=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$OUT" | tail -n 1)
ran=${ran:-0} failures=${failures:-0} errors=${errors:-0}
failed=$((failures + errors))
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
  failed=1  # the run itself broke (import error, crash)
fi
if [ "$failed" != 0 ]; then
  cat "$OUT" >&2
fi
printf 'fakeaws.sh: %d passed, %d failed\n' "$((ran - failures - errors))" "$failed"
[ "$failed" = 0 ]
