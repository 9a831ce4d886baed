# The REPL: piped input (lua.c without readline: prompts on stdout, no echo)
# and a real terminal session in tmux (line editing, TAB completion, Ctrl-C
# interrupting a running chunk and abandoning a line, history, Ctrl-D).
# Usage: bash tests/cli/repl.sh path/to/lumu
set -eu

LUMU=${1:?usage: repl.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
TMP=$(mktemp -d)
SOCK=lumu-repl-test-$$
cleanup() {
  if command -v tmux >/dev/null 2>&1; then tmux -L "$SOCK" kill-server 2>/dev/null || :; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
unset LUA_INIT LUA_INIT_5_4 LUMU_DEBUG _PROMPT
export LUMU_HISTORY=
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
expect_err() {
  case $err in *"$3"*) if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi ;;
  *) bad "$1 (want stderr containing '$3')" ;; esac
}

cd "$TMP"
VERSION=$("$LUMU" version)

# piped input -------------------------------------------------------------------
run "$LUMU" -i <<<'1+1'; expect "lumu -i: version, prompt, value" 0 "$VERSION
> 2
> "
run "$LUMU" repl <<<'1+1'; expect "lumu repl: prompt and value on stdout" 0 "> 2
> "
case $err in "lumu "*"Ctrl-D"*) [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && ok || bad "banner: one line" ;;
*) bad "lumu repl: banner on stderr" ;; esac

cat >session.txt <<'EOF'
x = 10
x * 2
function sq(n)
  return n * n
end
sq(x)
error("boom")
x + 1
{1, 2, k = "v"}
nil
1, "a", nil
print("printed")
=x
local y = 5
y
"tab\tand \"quote\""
setmetatable({}, {__tostring = function() return "<custom>" end})
EOF
run "$LUMU" repl <session.txt
expect "statements, expressions, multi-line function, error then more" 0 '> > 20
> >> >> > 100
> > 11
> { 1, 2, k = "v" }
> nil
> 1	a	nil
> printed
> 10
> > nil
> tab	and "quote"
> <custom>
> '
expect_err "error message" 0 "lumu: stdin:1: boom"
[ "$(printf '%s\n' "$err" | grep -c '^lumu: ')" = 1 ] && ok || bad "one error line"
case $err in *traceback*) bad "no traceback without --debug" ;; *) ok ;; esac

run "$LUMU" --debug repl <<<'error("deep")'; expect_err "--debug: traceback" 0 "stack traceback:"
run "$LUMU" repl <<<'for i = 1, 2 do'; expect_err "incomplete chunk at end of input" 0 "lumu: stdin:1: 'end' expected near <eof>"
run "$LUMU" repl <<<'x = = 1'; expect_err "syntax error" 0 "lumu: stdin:1: unexpected symbol near '='"
printf '_PROMPT = "lua$ "\n_PROMPT2 = "...  "\nif true then\nend\n1\n' >prompts.txt
run "$LUMU" repl <prompts.txt; expect "_PROMPT and _PROMPT2" 0 '> lua$ lua$ ...  lua$ 1
lua$ '
run "$LUMU" repl <<<'setmetatable({}, {__tostring = function() error("no text") end})'
expect_err "a failing __tostring" 0 "lumu: error printing the result:"
run "$LUMU" repl <<<'_PROMPT = setmetatable({}, {__tostring = function() error("x") end})'
expect "a failing _PROMPT falls back to the default" 0 "> > "
printf 'greeting = "from the script"\n' >script.lua
run "$LUMU" -i script.lua <<<'greeting'; expect "-i after a script keeps its globals" 0 "$VERSION
> from the script
> "
printf 'error("script failed")\n' >fail.lua
run "$LUMU" -i fail.lua <<<'print("no REPL")'; expect_err "-i: no REPL after a failed script" 1 "script failed"
run "$LUMU" repl </dev/null; expect "empty input: exit 0" 0 "> "
head -c 3000 /dev/zero | tr '\0' '(' >deep.txt
printf '\n"still here"\n' >>deep.txt
run "$LUMU" repl <deep.txt; expect "deeply nested input: an error, then the next line" 0 "> > still here
> "
expect_err "deeply nested input: the error" 0 "stack overflow"
run env LUMU_HISTORY= "$LUMU" -e 'print(require("lumu.repl").history_path())'; expect "LUMU_HISTORY= : no history" 0 nil
run env -u LUMU_HISTORY HOME=/home/someone "$LUMU" -e 'print(require("lumu.repl").history_path())'
expect "default history file" 0 /home/someone/.lumu_history
run env -u LUMU_HISTORY -u HOME "$LUMU" -e 'print(require("lumu.repl").history_path())'; expect "no HOME: no history" 0 nil
run env LUMU_HISTORY=/x/h "$LUMU" -e 'print(require("lumu.repl").history_path())'; expect "LUMU_HISTORY=FILE" 0 /x/h

# a terminal session (tmux) -------------------------------------------------------
if ! command -v tmux >/dev/null 2>&1; then
  echo "tmux not installed: terminal tests skipped"
else
  T() { tmux -L "$SOCK" "$@"; }
  pane() { T capture-pane -p -t repl -S -100 2>/dev/null || :; }
  # type TEXT...: each TEXT literally (tmux would read "end" as the End key)
  type_() { local s; for s in "$@"; do T send-keys -t repl -l "$s"; done; }
  # seen TEXT [TENTHS]: the pane shows TEXT within TENTHS/10 s (default 10 s)
  seen() {
    local i
    for i in $(seq "${2:-100}"); do
      case $(pane) in *"$1"*) return 0 ;; esac
      sleep 0.1
    done
    return 1
  }
  # wait_for NAME TEXT: a check that the pane shows TEXT within 10 s
  wait_for() {
    if seen "$2"; then ok; else out=$(pane) err="" rc="-" bad "tty: $1 (want the screen to show '$2')"; fi
  }
  start() { # [HISTORY-FILE]
    rm -f "$TMP/tty.rc"
    T new-session -d -s repl -x 120 -y 50 \
      "cd '$TMP' && env LUMU_HISTORY='${1:-$TMP/history}' '$LUMU'; echo \$? >'$TMP/tty.rc'; sleep 30"
  }
  start
  wait_for "banner and prompt" "$VERSION"
  type_ '1+1'; T send-keys -t repl Enter
  wait_for "an expression" "> 1+1
2
>"
  type_ 'while true do end'; T send-keys -t repl Enter
  sleep 0.5
  T send-keys -t repl C-c
  # a ^C that arrives before the chunk starts is a key for the next prompt:
  # on a loaded machine, press it again
  seen "lumu: interrupted" 30 || T send-keys -t repl C-c
  wait_for "Ctrl-C interrupts a running chunk" "lumu: interrupted
>"
  type_ '40+2'; T send-keys -t repl Enter
  wait_for "the prompt works after Ctrl-C" "> 40+2
42"
  type_ 'error("abandoned line ran")'; T send-keys -t repl C-c
  type_ '6*7+1'; T send-keys -t repl Enter
  wait_for "Ctrl-C abandons the line being typed" "43"
  case $(pane) in *"lumu: stdin:1: abandoned line ran"*) out=$(pane) rc=- err= bad "tty: the abandoned line did not run" ;; *) ok ;; esac
  type_ 'string.reve'; T send-keys -t repl Tab
  type_ '("abc")'; T send-keys -t repl Enter
  wait_for "TAB completes a library field" 'string.reverse("abc")
cba'
  for line in 'function f()' 'return "multi" .. "line"' 'end' 'f()'; do type_ "$line"; T send-keys -t repl Enter; done
  wait_for "a multi-line definition" ">> end
> f()
multiline"
  type_ '"hist" .. "ory"'; T send-keys -t repl Enter
  wait_for "last line" "history"
  T send-keys -t repl C-d
  for i in $(seq 100); do [ -s "$TMP/tty.rc" ] && break; sleep 0.1; done
  if [ "$(cat "$TMP/tty.rc" 2>/dev/null)" = 0 ]; then ok; else out=$(pane) rc=- err= bad "tty: Ctrl-D exits 0"; fi
  T kill-session -t repl 2>/dev/null || :
  if [ -f "$TMP/history" ] && [ "$(stat -c %a "$TMP/history")" = 600 ]; then ok; else rc=- out= err= bad "tty: history file written, mode 600"; fi
  if grep -q '^1+1$' "$TMP/history" 2>/dev/null; then ok; else rc=- out=$(cat "$TMP/history" 2>/dev/null || :) err= bad "tty: history holds the lines"; fi

  start
  wait_for "second session" "$VERSION"
  T send-keys -t repl Up Enter
  wait_for "history from the previous session (Up)" "> \"hist\" .. \"ory\"
history"
  T send-keys -t repl C-d
  T kill-session -t repl 2>/dev/null || :

  start "$TMP/no/such/dir/history"
  wait_for "third session" "$VERSION"
  type_ '1'; T send-keys -t repl Enter
  type_ '2'; T send-keys -t repl Enter
  wait_for "an unwritable history file: a warning" "lumu: warning: cannot save the history: $TMP/no/such"
  wait_for "an unwritable history file: the REPL goes on" "> 2
2"
  [ "$(pane | grep -c 'cannot save the history')" = 1 ] && ok || { out=$(pane) rc=- err= bad "tty: one warning only"; }
  T send-keys -t repl C-d
  T kill-session -t repl 2>/dev/null || :
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
