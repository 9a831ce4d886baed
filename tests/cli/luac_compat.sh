# lua(1) conformance of lumu's command line: -e, -l, -l g=mod, -, --, the
# arg table and `...`, LUA_INIT(_5_4), -E, LUA_PATH(_5_4) with ';;', -v, -W,
# exit codes and the error format.  Where Debian's lua5.4 is installed, the
# same invocations are compared with it.
# Usage: bash tests/cli/luac_compat.sh path/to/lumu
set -eu

LUMU=${1:?usage: luac_compat.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
unset LUA_INIT LUA_INIT_5_4 LUA_PATH LUA_PATH_5_4 LUA_CPATH LUA_CPATH_5_4 LUMU_DEBUG
pass=0 fail=0

# run CMD... [< input]: sets $out, $err (stdout/stderr, trailing newlines cut) and $rc
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
# expect NAME RC STDOUT: exact status and stdout
expect() { if [ "$rc" = "$2" ] && [ "$out" = "$3" ]; then ok; else bad "$1 (want rc=$2 stdout='$3')"; fi; }
# expect_err NAME RC SUBSTRING: status and a substring of stderr
expect_err() {
  case $err in *"$3"*) if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi ;;
  *) bad "$1 (want stderr containing '$3')" ;; esac
}
# yes NAME CONDITION-STATUS
yes_() { if [ "$2" = 0 ]; then ok; else bad "$1"; fi; }

cd "$TMP"
printf 'return { v = 42 }\n' >mymod.lua
mkdir lib
printf 'return { v = 42 }\n' >lib/libmod.lua
# prints arg from its lowest index (the interpreter, shown as PROG) to #arg
cat >args.lua <<'EOF'
local lo = 0
while arg[lo - 1] ~= nil do lo = lo - 1 end
local t = { "PROG" }
for i = lo + 1, #arg do t[#t + 1] = tostring(arg[i]) end
print(table.concat(t, ","), "#" .. #arg, "n=" .. select("#", ...), ...)
EOF

# -e ------------------------------------------------------------------------
run "$LUMU" -e 'print(1 + 1)'; expect "-e CHUNK" 0 2
run "$LUMU" '-eprint(3)'; expect "-eCHUNK (attached)" 0 3
run "$LUMU" -e 'x = 1' -e 'print(x + 1)'; expect "-e twice, in order" 0 2
run "$LUMU" -e; expect_err "-e without chunk" 2 "'-e' needs an argument"

# -l ------------------------------------------------------------------------
export LUA_PATH="$TMP/?.lua;;"
run "$LUMU" -l mymod -e 'print(mymod.v)'; expect "-l MOD" 0 42
run "$LUMU" -l g=mymod -e 'print(g.v, mymod)'; expect "-l G=MOD" 0 "42	nil"
run "$LUMU" '-lmymod' -e 'print(mymod.v)'; expect "-lMOD (attached)" 0 42
run "$LUMU" -e 'mymod = 1' -l mymod -e 'print(type(mymod))'; expect "-l after -e, in order" 0 table
run "$LUMU" -l nosuchmod; expect_err "-l missing module" 1 "lumu: module 'nosuchmod' not found"
run "$LUMU" -l string <<<'print("stdin after -l")'; expect "-l does not stop stdin (lua.c)" 0 "stdin after -l"
unset LUA_PATH

# scripts, arg and ... --------------------------------------------------------
run "$LUMU" -e 'x = 1' args.lua a b
expect "arg table and ..." 0 "PROG,-e,x = 1,args.lua,a,b	#2	n=2	a	b"
run "$LUMU" -e 'x = 1' -- args.lua x
expect "-- then script" 0 "PROG,-e,x = 1,--,args.lua,x	#1	n=1	x"
run "$LUMU" -e 'arg[1] = "changed"' args.lua a
expect "... comes from arg after -e (lua.c)" 0 "PROG,-e,arg[1] = \"changed\",args.lua,changed	#1	n=1	changed"
run "$LUMU" args.lua; expect "no arguments" 0 "PROG,args.lua	#0	n=0"
run "$LUMU" - x y <<<'print(arg[0], #arg, ...)'; expect "- reads stdin" 0 "-	2	x	y"
run "$LUMU" <<<'print(arg[0] ~= nil, #arg, ...)'; expect "stdin without a tty" 0 "true	0"
run "$LUMU" -- <<<'print(#arg, arg[1])'; expect "-- alone: stdin (lua.c)" 0 "1	--"
printf 'print("file named dash")\n' >./-
run "$LUMU" -- -; expect "-- - runs a file named '-' (lua.c)" 0 "file named dash"
rm ./-
printf '#!/usr/bin/env lumu\nprint("shebang skipped")\n' >shebang.lua
run "$LUMU" shebang.lua; expect "#! line skipped (file)" 0 "shebang skipped"
run "$LUMU" - <shebang.lua; expect "#! line skipped (stdin)" 0 "shebang skipped"
run "$LUMU" run args.lua q; expect "lumu run FILE" 0 "PROG,run,args.lua,q	#1	n=1	q"

# LUA_INIT --------------------------------------------------------------------
run env LUA_INIT='y = 5' "$LUMU" -e 'print(y)'; expect "LUA_INIT chunk" 0 5
run env LUA_INIT='y = 5' LUA_INIT_5_4='y = 6' "$LUMU" -e 'print(y)'; expect "LUA_INIT_5_4 wins" 0 6
printf 'z = "from file"\n' >init.lua
run env LUA_INIT="@$TMP/init.lua" "$LUMU" -e 'print(z)'; expect "LUA_INIT=@file" 0 "from file"
run env LUA_INIT='print(arg[0])' "$LUMU" args.lua; expect "arg exists during LUA_INIT (lua.c)" 0 "args.lua
PROG,args.lua	#0	n=0"
run env LUA_INIT='error("bad init")' "$LUMU" -e 'print("not reached")'
expect_err "LUA_INIT error" 1 "lumu: LUA_INIT:1: bad init"
[ -z "$out" ]; yes_ "LUA_INIT error stops everything" $?
run env LUA_INIT='@/nonexistent/init.lua' "$LUMU" -e 'print(1)'; expect_err "LUA_INIT=@missing" 1 "cannot open /nonexistent/init.lua"

# -E ----------------------------------------------------------------------------
run env LUA_INIT='print("init ran")' LUA_PATH="$TMP/?.lua" "$LUMU" -E -e 'print(package.path:find(os.getenv("PWD"), 1, true) == nil)'
expect "-E ignores LUA_INIT and LUA_PATH" 0 true
run env LUA_PATH="$TMP/lib/?.lua" "$LUMU" -l libmod -e 'print(libmod.v)'; expect "LUA_PATH finds a module" 0 42
run env LUA_PATH="$TMP/lib/?.lua" "$LUMU" -E -l libmod; expect_err "-E: LUA_PATH ignored" 1 "module 'libmod' not found"

# LUA_PATH ----------------------------------------------------------------------
run env LUA_PATH="$TMP/?.lua" "$LUMU" -e 'print((package.path:gsub("^.-;" .. os.getenv("PWD"), os.getenv("PWD"))))'
case $out in *"$TMP/?.lua"*) ok ;; *) bad "LUA_PATH used" ;; esac
case $out in *"/usr/share/lua/5.4/?.lua"*) bad "LUA_PATH without ;; has no default" ;; *) ok ;; esac
run env LUA_PATH="$TMP/?.lua;;" "$LUMU" -e 'print(package.path)'
case $out in *"$TMP/?.lua;"*"/usr/share/lua/5.4/?.lua"*) ok ;; *) bad "LUA_PATH ;; adds the default path" ;; esac
run env LUA_PATH="/from/plain/?.lua" LUA_PATH_5_4="/from/versioned/?.lua" "$LUMU" -e 'print(package.path)'
case $out in *"/from/versioned/?.lua"*) case $out in *"/from/plain/"*) bad "LUA_PATH_5_4 wins" ;; *) ok ;; esac ;;
*) bad "LUA_PATH_5_4 used" ;; esac

# -v, -W ------------------------------------------------------------------------
run "$LUMU" -v <<<'print("stdin must not run")'
case $out in "lumu "*"(Lua 5.4)") ok ;; *) bad "-v prints the version only" ;; esac
run "$LUMU" -v -e 'print("after")'
case $out in "lumu "*"(Lua 5.4)"$'\n'"after") ok ;; *) bad "-v then -e" ;; esac
run "$LUMU" -W -e 'warn("hello")'; expect_err "-W turns warnings on" 0 "Lua warning: hello"
run "$LUMU" -e 'warn("hidden")'
[ -z "$err" ]; yes_ "warnings off without -W" $?

# exit codes and error format ---------------------------------------------------
printf 'local function f()\n  error("boom")\nend\nf()\n' >boom.lua
run "$LUMU" boom.lua; expect_err "script error: exit 1" 1 "lumu: boom.lua:2: boom"
[ "$(printf '%s\n' "$err" | wc -l)" = 1 ]; yes_ "script error: one line without --debug" $?
run "$LUMU" --debug boom.lua; expect_err "--debug: traceback" 1 "stack traceback:"
case $err in *"boom.lua:4: in main chunk"*) ok ;; *) bad "--debug: traceback names the script line" ;; esac
run env LUMU_DEBUG=1 "$LUMU" boom.lua; expect_err "LUMU_DEBUG=1: traceback" 1 "stack traceback:"
printf 'x = = 1\n' >syntax.lua
run "$LUMU" syntax.lua; expect_err "syntax error: exit 1" 1 "lumu: syntax.lua:1: unexpected symbol near '='"
run "$LUMU" nosuch.lua; expect_err "missing script: exit 1" 1 "lumu: cannot open nosuch.lua"
run "$LUMU" -e 'error({})'; expect_err "non-string error" 1 "lumu: (error object is a table value)"
run "$LUMU" -e 'error(setmetatable({}, {__tostring = function() return "custom text" end}))'
expect_err "error with __tostring" 1 "lumu: custom text"
run "$LUMU" -e 'os.exit(7)'; expect "os.exit(7)" 7 ""
run "$LUMU" -e 'os.exit(false)'; expect "os.exit(false)" 1 ""
run "$LUMU" -e 'os.exit(true)'; expect "os.exit(true)" 0 ""
run "$LUMU" -x; expect_err "unknown switch: exit 2" 2 "lumu: unrecognized option '-x'"
run "$LUMU" --verison; expect_err "unknown option: did you mean" 2 "did you mean '--version'?"
run "$LUMU" versoin; expect_err "unknown command: did you mean" 2 "lumu: unknown command 'versoin' (did you mean 'version'?)"
# Ctrl-C once the chunk runs (a fixed delay races a slow start under load)
rm -f "$TMP/ready"
set +e
READY="$TMP/ready" "$LUMU" -e 'io.open(os.getenv("READY"), "w"):close() while true do end' \
  >"$TMP/out" 2>"$TMP/err" &
pid=$!
for _ in $(seq 300); do [ -e "$TMP/ready" ] && break; sleep 0.1; done
kill -INT "$pid"
wait "$pid"
rc=$?
set -e
out=$(cat "$TMP/out")
err=$(cat "$TMP/err")
expect_err "Ctrl-C: exit 130" 130 "lumu: interrupted"

# the same invocations under Debian's lua5.4 ------------------------------------
if command -v lua5.4 >/dev/null 2>&1; then
  compare() { # compare NAME ARGS... : same stdout and status as lua5.4
    local name=$1
    shift
    run lua5.4 "$@" <"$TMP/stdin"
    local lout=$out lrc=$rc
    run "$LUMU" "$@" <"$TMP/stdin"
    if [ "$out" = "$lout" ] && [ "$rc" = "$lrc" ]; then ok; else bad "same as lua5.4: $name (lua5.4: rc=$lrc '$lout')"; fi
  }
  printf 'print("stdin:", ...)\n' >"$TMP/stdin"
  compare "-e and script args" -e 'x = 1' args.lua a b
  compare "-- script" -e 'x = 1' -- args.lua x
  compare "- with args" - a b
  compare "stdin" 
  compare "-l then stdin" -l string
  compare "-e modifies arg" -e 'arg[1] = "changed"' args.lua a
  compare "no script args" args.lua
  printf '' >"$TMP/stdin"
  compare "os.exit(3)" -e 'os.exit(3)'
  compare "script error status" boom.lua
else
  echo "lua5.4 not installed: comparison skipped"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
