#!/usr/bin/env bash
# Builds the libFuzzer harnesses (build-fuzz), seeds them and runs each one.
#
#   tests/fuzz/run.sh SECONDS [harness...]     (default: every tests/fuzz/fuzz_*.c)
#
# Per harness: -max_total_time=SECONDS -rss_limit_mb=2048, corpus in
# build-fuzz/fuzz/corpus/<h> (kept between runs; the seeds from seed.py in
# build-fuzz/fuzz/seeds/<h> are read too), crash/leak/timeout/oom inputs in
# build-fuzz/fuzz/artifacts/<h>/, the log in build-fuzz/fuzz/logs/<h>.log.
# Prints one line per harness: executions, exec/s, cov (code edges), ft
# (features, including the Lua line pairs of the Lua harnesses), corpus size
# and crashes.  Exit status 1 when any harness found something.
#
# Environment: CC (default clang-14), JOBS (build, default 2), FUZZ_PARALLEL
# (harnesses run at once, default 1), FUZZ_TIMEOUT (seconds per input before
# libFuzzer calls it a timeout, default 25), FUZZ_NICE (default 10),
# LUMU_LUA_SOURCE_DIR (Lua's src/; default build-asan's or build-fuzz's copy
# of Debian's source, fetched with apt-get source when absent), LUMU_SHARED
# (default ../shared), FUZZ_ARGS (more libFuzzer flags).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${LUMU_FUZZ_BUILD:-$ROOT/build-fuzz}
SECONDS_PER=${1:?usage: tests/fuzz/run.sh SECONDS [harness...]}
shift
JOBS=${JOBS:-2}
PARALLEL=${FUZZ_PARALLEL:-1}
NICE=${FUZZ_NICE:-10}
TIMEOUT=${FUZZ_TIMEOUT:-25}
SHARED=${LUMU_SHARED:-$ROOT/../shared}
LUA_HARNESSES=" json yaml xml nag cli " # Lua state kept across inputs: no per-input LSan

log() { printf '==> %s\n' "$*" >&2; }

lua_source() {
  local d
  for d in "${LUMU_LUA_SOURCE_DIR:-}" "$ROOT"/build-asan/_lua/lua5.4-*/src "$BUILD"/_lua/lua5.4-*/src; do
    [ -n "$d" ] && [ -f "$d/lapi.c" ] && { echo "$d"; return; }
  done
  mkdir -p "$BUILD/_lua"
  (cd "$BUILD/_lua" && apt-get source -qq lua5.4 >/dev/null 2>&1) || true
  for d in "$BUILD"/_lua/lua5.4-*/src; do
    [ -f "$d/lapi.c" ] && { echo "$d"; return; }
  done
}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  src=$(lua_source)
  [ -n "$src" ] || log "warning: no Lua source (apt-get source lua5.4 failed): Lua is not instrumented"
  log "configuring $BUILD (clang, libFuzzer, ASan+UBSan${src:+, Lua from $src})"
  CC=${CC:-clang-14} cmake -S "$ROOT" -B "$BUILD" -DLUMU_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLUMU_LUA_SOURCE_DIR="$src" >/dev/null
fi
log "building the harnesses"
nice -n "$NICE" cmake --build "$BUILD" -j "$JOBS" --target fuzz >/dev/null

if [ $# -eq 0 ]; then
  set -- $(cd "$ROOT/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
fi
W=$BUILD/fuzz
mkdir -p "$W/logs"
log "seeding"
python3 "$ROOT/tests/fuzz/seed.py" "$W/seeds" "$SHARED" "$@" >&2

run_one() { # harness
  local h=$1 extra=()
  mkdir -p "$W/corpus/$h" "$W/artifacts/$h" "$W/seeds/$h"
  [[ $LUA_HARNESSES == *" $h "* ]] && extra+=(-detect_leaks=0)
  [ -f "$W/seeds/$h.dict" ] && extra+=(-dict="$W/seeds/$h.dict") # written by seed.py
  [ "$h" = cli ] && extra+=(-max_len=512) # argv; longer only slows the suggestions down
  # shellcheck disable=SC2086
  (cd "$ROOT" && ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    nice -n "$NICE" "$BUILD/fuzz_$h" -max_total_time="$SECONDS_PER" -rss_limit_mb=2048 \
      -timeout="$TIMEOUT" -print_final_stats=1 -artifact_prefix="$W/artifacts/$h/" \
      "${extra[@]}" ${FUZZ_ARGS:-} "$W/corpus/$h" "$W/seeds/$h") >"$W/logs/$h.log" 2>&1 || true
}

report() { # harness
  local h=$1 f=$W/logs/$1.log last execs eps cov ft corp crashes
  last=$(grep -E '^#[0-9]+' "$f" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$f" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$f" | tail -1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(find "$W/artifacts/$h" -type f -newer "$W/logs/.start" | wc -l)
  printf '%-10s %6ss %12s %8s %7s %8s %7s %8s\n' "$h" "$SECONDS_PER" "${execs:-?}" "${eps:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes"
  [ "$crashes" -eq 0 ]
}

touch "$W/logs/.start"
log "fuzzing $* for ${SECONDS_PER}s each, $PARALLEL at a time (logs: $W/logs)"
running=0
for h in "$@"; do
  [ -x "$BUILD/fuzz_$h" ] || { echo "run.sh: no harness fuzz_$h" >&2; exit 2; }
  run_one "$h" &
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

status=0
printf '%-10s %7s %12s %8s %7s %8s %7s %8s\n' harness time executions exec/s cov ft corpus crashes
for h in "$@"; do
  report "$h" || status=1
done
if [ "$status" -ne 0 ]; then
  echo "findings in $W/artifacts/<harness>/ (reproduce: $BUILD/fuzz_<harness> FILE)" >&2
fi
exit "$status"
