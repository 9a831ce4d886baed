# Allocation-failure sweep: runs representative commands with
# LUMU_FAIL_ALLOC=N (the Nth allocation of the tracking allocator fails, see
# lua/host.c) and checks that every run ends with an ordinary exit status
# (0-3: the failure was absorbed or reported), never a signal, a sanitizer
# report, a Lua panic or a leak.  Commands: `-e ''`, `version`, `synth` of
# scripts/example, `nag` of a JSON and a YAML template, and an `aws` call
# (model load, credentials, signing; the endpoint refuses the connection).
#
# By default FAILALLOC_SAMPLES (60) values of N spread evenly over each
# command's allocation count (about 360 runs: ~10 s release, ~90 s ASan);
# FAILALLOC_SAMPLES=0 sweeps every N (about 150,000 runs, hours: see
# tests/fuzz/README.md).
# FAILALLOC_OFFSET shifts the sampled points (default 0).
# Usage: bash tests/cli/failalloc.sh path/to/lumu
set -u

LUMU=${1:?usage: failalloc.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SAMPLES=${FAILALLOC_SAMPLES:-60}
OFFSET=${FAILALLOC_OFFSET:-0}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
unset LUA_INIT LUA_INIT_5_4 LUA_PATH LUA_PATH_5_4 LUMU_DEBUG MU_NAMESPACE LUMU_STDLIB
# aws: fixed credentials, no config files, no instance metadata, one attempt
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG AWS_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  AWS_MAX_ATTEMPTS=1
export LUMU_TRACK_ALLOC=1
cd "$SRC" || exit 2

COMMANDS=(
  "-e ''"
  "version"
  "synth -c scripts/example/lumu.lua -o $TMP/out"
  "nag tests/fixtures/cfn/service.json"
  "nag tests/fixtures/cfn/service.yaml"
  "aws cloudformation describe-stacks --endpoint-url http://127.0.0.1:1"
)

fail=0 runs=0
start=$(date +%s)
for cmd in "${COMMANDS[@]}"; do
  eval "set -- $cmd"
  # the allocation count of a run without failure
  total=$(LUMU_MEMSTATS=1 "$LUMU" "$@" 2>&1 >/dev/null | sed -n 's/.*peak [0-9]* bytes, \([0-9]*\) allocations.*/\1/p')
  if [ -z "$total" ]; then
    echo "not ok - $cmd: no allocation count (LUMU_MEMSTATS)"
    fail=$((fail + 1))
    continue
  fi
  if [ "$SAMPLES" -eq 0 ] || [ "$SAMPLES" -ge "$total" ]; then
    step=1 first=1
  else
    step=$((total / SAMPLES))
    first=$((1 + (OFFSET + step / 2) % step))
  fi
  bad=0 n=$first
  while [ "$n" -le "$total" ]; do
    rm -rf "$TMP/out"
    LUMU_FAIL_ALLOC=$n timeout 60 "$LUMU" "$@" >/dev/null 2>"$TMP/err"
    rc=$?
    runs=$((runs + 1))
    why=
    if [ "$rc" -gt 3 ]; then
      why="exit $rc"
    elif grep -q "AddressSanitizer\|LeakSanitizer\|runtime error:\|unprotected error\|lumu: leak:" "$TMP/err"; then
      why=$(grep -m1 "AddressSanitizer\|LeakSanitizer\|runtime error:\|unprotected error\|lumu: leak:" "$TMP/err")
    fi
    if [ -n "$why" ]; then
      echo "not ok - LUMU_FAIL_ALLOC=$n lumu $cmd: $why"
      head -5 "$TMP/err" | sed 's/^/#   /'
      bad=$((bad + 1))
      [ "$bad" -ge 5 ] && { echo "# (stopping this command after 5 failures)"; break; }
    fi
    n=$((n + step))
  done
  [ "$bad" -eq 0 ] && echo "ok - lumu $cmd: $total allocations, every ${step}th failed in turn"
  fail=$((fail + bad))
done
echo "# $runs runs in $(($(date +%s) - start)) s, $fail failures"
[ "$fail" -eq 0 ]
