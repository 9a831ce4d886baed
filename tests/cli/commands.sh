# lumu's own commands and dispatcher: help, help COMMAND, version, usage
# errors with "did you mean" (exit 2), internal errors (exit 3, traceback
# only with --debug), a project-local LuaRocks tree (lua_modules) and
# LUMU_STDLIB loading the stdlib from disk.
# Usage: bash tests/cli/commands.sh path/to/lumu
set -eu

LUMU=${1:?usage: commands.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
unset LUA_INIT LUA_INIT_5_4 LUA_PATH LUA_PATH_5_4 LUMU_DEBUG LUMU_STDLIB
pass=0 fail=0

run() {
  set +e
  "$@" >"$TMP/out" 2>"$TMP/err"
  rc=$?
  set -e
  out=$(cat "$TMP/out")
  err=$(cat "$TMP/err")
}
ok() { pass=$((pass + 1)); }
bad() {
  fail=$((fail + 1))
  printf 'FAIL: %s\n  rc=%s\n  stdout: %s\n  stderr: %s\n' "$1" "$rc" "$out" "$err" >&2
}
expect() { if [ "$rc" = "$2" ] && [ "$out" = "$3" ]; then ok; else bad "$1 (want rc=$2 stdout='$3')"; fi; }
expect_out() {
  case $out in *"$3"*) if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi ;;
  *) bad "$1 (want stdout containing '$3')" ;; esac
}
expect_err() {
  case $err in *"$3"*) if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi ;;
  *) bad "$1 (want stderr containing '$3')" ;; esac
}
yes_() { if [ "$2" = 0 ]; then ok; else bad "$1"; fi; }

cd "$TMP"

# help ------------------------------------------------------------------------
run "$LUMU" help; expect_out "lumu help" 0 "Commands:"
for c in completion help repl run test version; do
  case $out in *"  $c "*) ok ;; *) bad "lumu help lists '$c'" ;; esac
done
case $out in *"failed to load"*) bad "every command loads" ;; *) ok ;; esac
run "$LUMU" --help; expect_out "lumu --help" 0 "Commands:"
run "$LUMU" -h; expect_out "lumu -h" 0 "Exit codes:"
run "$LUMU" help run; expect_out "lumu help run" 0 "Usage: lumu run FILE [args...]"
case $out in *"LUA_INIT"*) ok ;; *) bad "help run explains LUA_INIT" ;; esac
run "$LUMU" help repl; expect_out "lumu help repl" 0 "Usage: lumu repl"
run "$LUMU" help completion; expect_out "lumu help completion: install" 0 "source <(lumu completion bash)"
run "$LUMU" help version; expect_out "lumu help version: options" 0 "--output FORMAT"
run "$LUMU" version --help; expect_out "COMMAND --help" 0 "Usage: lumu version"
run "$LUMU" help nosuch; expect_err "help unknown command" 2 "help: unknown command 'nosuch'"
run "$LUMU" help verison; expect_err "help: did you mean" 2 "did you mean 'version'?"

# version ---------------------------------------------------------------------
run "$LUMU" version
case $out in "lumu "[0-9]*" (Lua 5.4)") [ "$rc" = 0 ] && ok || bad "lumu version: exit 0" ;; *) bad "lumu version" ;; esac
text=$out
run "$LUMU" --version; expect "--version = lumu version" 0 "$text"
run "$LUMU" version -o json
case $out in '{"version":"'*'","lua":"Lua 5.4"}') ok ;; *) bad "lumu version -o json" ;; esac
run "$LUMU" version --output=json
case $out in '{"version":'*) ok ;; *) bad "lumu version --output=json" ;; esac
run "$LUMU" version -o xml; expect_err "version -o xml: usage error" 2 "--output must be text or json"
run "$LUMU" version --outptu json; expect_err "unknown option: did you mean" 2 "unknown option '--outptu' (did you mean '--output'?)"
run "$LUMU" version -o; expect_err "option without its value" 2 "option '-o' needs a value"

# usage errors ------------------------------------------------------------------
run "$LUMU" verson; expect_err "unknown command: exit 2" 2 "unknown command 'verson' (did you mean 'version'?)"
run "$LUMU" zzzzzzzz; expect_err "unknown command, nothing close" 2 "unknown command 'zzzzzzzz' (see 'lumu help')"
case $err in *"did you mean"*) bad "no suggestion when nothing is close" ;; *) ok ;; esac
run "$LUMU" --no-such-flag; expect_err "unknown global option: exit 2" 2 "unrecognized option '--no-such-flag'"
run "$LUMU" run; expect_err "run without FILE: exit 2" 2 "run: missing FILE"
run "$LUMU" completion; expect_err "completion without shell: exit 2" 2 "missing shell"
run "$LUMU" repl extra </dev/null; expect_err "repl with an argument: exit 2" 2 "unexpected argument 'extra'"

# LUMU_STDLIB and internal errors (exit 3) ------------------------------------
cp -RL "$SRC/stdlib" "$TMP/stdlib"  # -L: never write through a symlinked stdlib
printf 'return { version = "9.9.9-from-disk", lua = _VERSION }\n' >"$TMP/stdlib/lumu/version.lua"
run env LUMU_STDLIB="$TMP/stdlib" "$LUMU" version; expect "LUMU_STDLIB loads modules from disk" 0 "lumu 9.9.9-from-disk (Lua 5.4)"
run "$LUMU" version
case $out in *9.9.9*) bad "without LUMU_STDLIB the embedded stdlib is used" ;; *) ok ;; esac
run env LUMU_STDLIB="$TMP/stdlib" "$LUMU" -e 'print(package.searchpath("lumu.version", package.path))'
expect "LUMU_STDLIB is first on package.path" 0 "$TMP/stdlib/lumu/version.lua"

cat >"$TMP/stdlib/lumu/cli/version.lua" <<'EOF'
return { summary = "broken on purpose", run = function() local t = nil; return t.field end }
EOF
run env LUMU_STDLIB="$TMP/stdlib" "$LUMU" version
expect_err "a raising command: exit 3" 3 "lumu: internal error in 'version':"
expect_err "internal error: hint about --debug" 3 "run again with --debug"
case $err in *"stack traceback"*) bad "internal error: no traceback without --debug" ;; *) ok ;; esac
run env LUMU_STDLIB="$TMP/stdlib" "$LUMU" --debug version
expect_err "internal error with --debug: traceback" 3 "stack traceback:"

cat >"$TMP/stdlib/lumu/cli/version.lua" <<'EOF'
return { summary = "fails on purpose", run = function() return nil, "version: it failed", 4 end }
EOF
run env LUMU_STDLIB="$TMP/stdlib" "$LUMU" version; expect_err "nil, message, code" 4 "lumu: version: it failed"
[ "$(printf '%s\n' "$err" | wc -l)" = 1 ]; yes_ "expected failure: one line" $?

# project-local LuaRocks tree ---------------------------------------------------
mkdir -p proj/lua_modules/share/lua/5.4/team proj/src/deeper
printf 'return "team.mod from the project tree"\n' >proj/lua_modules/share/lua/5.4/team/mod.lua
printf 'return "team from init.lua"\n' >proj/lua_modules/share/lua/5.4/team/init.lua
printf 'print((require "team.mod"))\n' >proj/main.lua
cd "$TMP/proj"
run "$LUMU" -e 'print((require "team.mod"))'; expect "lua_modules in the current directory" 0 "team.mod from the project tree"
run "$LUMU" -e 'print((require "team"))'; expect "lua_modules: ?/init.lua" 0 "team from init.lua"
run "$LUMU" main.lua; expect "a script in the project" 0 "team.mod from the project tree"
run "$LUMU" -e 'print(package.lumu_modules_tree)'; expect "package.lumu_modules_tree" 0 "$TMP/proj/lua_modules"
cd "$TMP/proj/src/deeper"
run "$LUMU" -e 'print((require "team.mod"))'; expect "lua_modules in a parent directory" 0 "team.mod from the project tree"
cd /
run "$LUMU" -e 'print((pcall(require, "team.mod")))'; expect "no lua_modules outside the project" 0 false
cd "$TMP"

# no core files (a crashed lumu's memory holds credentials) unless LUMU_CORE_DUMPS=1
limits='for l in io.lines("/proc/self/limits") do local v = l:match("^Max core file size%s+(%S+)") if v then print(v) end end'
if [ -r /proc/self/limits ]; then
  run bash -c "ulimit -S -c unlimited 2>/dev/null || ulimit -S -c 1000; exec \"\$0\" -e '$limits'" "$LUMU"
  expect "core dumps off by default" 0 0
  # (ASan sets the limit to 0 itself unless told not to)
  run bash -c "ulimit -S -c 1000; LUMU_CORE_DUMPS=1 ASAN_OPTIONS=\"\${ASAN_OPTIONS:-}:disable_coredump=0\" exec \"\$0\" -e '$limits'" "$LUMU"
  case $out in 0) bad "LUMU_CORE_DUMPS=1 keeps the shell's limit (got $out)" ;; *) ok ;; esac
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
