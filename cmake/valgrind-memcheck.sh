#!/usr/bin/env bash
# ctest -T memcheck's MEMORYCHECK_COMMAND (set by cmake/valgrind.cmake).
# ctest calls it as valgrind:  --log-file=LOG [options] -- COMMAND ARGS...
# (its name contains "valgrind", so ctest treats it as valgrind and parses
# LOG afterwards).  With --trace-children=yes every traced process would
# reopen LOG and overwrite the others' reports, so each process writes
# LOG.<pid> here; they are joined into LOG at the end.  A memcheck error or
# definite leak in any traced process (the lumu a CLI test script starts,
# whose exit status the script may not check) makes the exit status 97.
set -u
VALGRIND=${LUMU_VALGRIND_BIN:-valgrind}
log=
opts=()
while [ $# -gt 0 ]; do
  case $1 in
    --log-file=*) log=${1#--log-file=} ;;
    --) shift; break ;;
    -*) opts+=("$1") ;;
    *) break ;;
  esac
  shift
done
if [ -z "$log" ]; then
  exec "$VALGRIND" "${opts[@]}" "$@"
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/lumu-memcheck.XXXXXX") || exit 1
# tests that race a running lumu against a clock (a fake stack that takes N
# seconds) stretch the clock under valgrind's 20-50x slowdown, and lumu
# allocates each Lua block with malloc instead of its pool (lua/pool.h), so
# memcheck sees every one
export LUMU_UNDER_VALGRIND=1
"$VALGRIND" --log-file="$dir/vg.%p.log" "${opts[@]}" "$@"
rc=$?
: >"$log"
bad=0
for f in "$dir"/vg.*.log; do
  [ -e "$f" ] || continue
  cat "$f" >>"$log"
  # "ERROR SUMMARY: N errors" counts memcheck errors and, with
  # --errors-for-leak-kinds=definite, definite leaks
  if grep -q "ERROR SUMMARY: [1-9]" "$f"; then bad=1; fi
done
rm -rf "$dir"
if [ "$bad" = 1 ] && [ "$rc" = 0 ]; then
  echo "valgrind-memcheck.sh: memcheck errors in a child process (see $log)" >&2
  rc=97
fi
exit "$rc"
