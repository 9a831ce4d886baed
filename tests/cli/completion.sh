# `lumu completion bash|zsh|fish`: the scripts parse, and the bash one
# completes commands, options, option values and file names when its
# function is called with COMP_WORDS set; zsh and fish are checked when
# installed.
# Usage: bash tests/cli/completion.sh path/to/lumu
set -eu

LUMU=${1:?usage: completion.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
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
expect_err() {
  case $err in *"$3"*) if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi ;;
  *) bad "$1 (want stderr containing '$3')" ;; esac
}

cd "$TMP"

# usage -------------------------------------------------------------------------
run "$LUMU" completion; expect_err "no shell: exit 2" 2 "missing shell"
run "$LUMU" completion tcsh; expect_err "unknown shell: exit 2" 2 "unknown shell 'tcsh'"
run "$LUMU" completion bash zsh; expect_err "two shells: exit 2" 2 "unknown shell 'zsh'"
run "$LUMU" completion --bogus; expect_err "unknown option: exit 2" 2 "unknown option '--bogus'"

# bash --------------------------------------------------------------------------
run "$LUMU" completion bash
if [ "$rc" = 0 ]; then ok; else bad "completion bash: exit 0"; fi
cp "$TMP/out" lumu.bash
if bash -n lumu.bash 2>"$TMP/err"; then ok; else err=$(cat "$TMP/err") bad "bash -n"; fi

mkdir files && touch "files/script.lua" "files/with space.lua" "files/star*.lua" "files/other.txt"
# complete WORDS...: runs _lumu with the last word as the one being completed
# (in a fresh bash with set -eu, from ./files); prints COMPREPLY one per line
complete_() {
  bash -c 'set -eu; source "$1"; shift; cd files; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1));
           _lumu; printf "%s\n" "${COMPREPLY[@]+"${COMPREPLY[@]}"}" | LC_ALL=C sort' _ "$TMP/lumu.bash" "$@"
}
# check NAME EXPECTED WORDS...: COMPREPLY (sorted, one per line) is EXPECTED
check() {
  local name=$1 want=$2
  shift 2
  set +e
  out=$(complete_ "$@" 2>"$TMP/err")
  rc=$?
  set -e
  err=$(cat "$TMP/err")
  if [ "$rc" = 0 ] && [ "$out" = "$want" ]; then ok; else bad "bash: $name (want '$want')"; fi
}
check "command names" "version" lumu ver
check "command names or files" "repl
run" lumu r
# every registered command, whatever later versions add
check "all commands" "$("$LUMU" -e 'local cli = require("lumu.cli") local t = cli.names()
for a in pairs(cli.aliases) do t[#t + 1] = a end table.sort(t) for _, n in ipairs(t) do print(n) end')" lumu help ""
check "global options" "--debug" lumu --deb
check "a command's options" "--output" lumu version --o
check "option values from choices" "json" lumu version --output j
check "option=value" "json
text" lumu version --output = ""
check "positional words" "bash" lumu completion ba
check "file names, with spaces and globs" "script.lua
star*.lua" lumu run s
check "file names with spaces" "with space.lua" lumu run w
check "files after lua switches" "other.txt" lumu -i o
check "nothing after -e" "" lumu -e ""
check "options after --debug" "--output" lumu --debug version --outp
check "unknown command: files" "other.txt" lumu nosuchcmd o
check "test options" "--filter
--filter-out" lumu test --filt
check "the first word only" "" lumu help help zz

# zsh and fish ------------------------------------------------------------------
if command -v zsh >/dev/null 2>&1; then
  run "$LUMU" completion zsh
  cp "$TMP/out" _lumu
  if [ "$rc" = 0 ] && zsh -n _lumu 2>"$TMP/err"; then ok; else err=$(cat "$TMP/err") bad "zsh -n"; fi
  run zsh -fc 'autoload -U compinit && compinit -u -d "$1/zcompdump" && source "$1/_lumu" && print -r -- ${_comps[lumu]}' _ "$TMP"
  if [ "$out" = _lumu ]; then ok; else bad "zsh: sourcing registers _lumu for lumu"; fi
  case $(cat _lumu) in *"'version:print lumu'\\''s version'"*) ok ;; *) out= bad "zsh: quoted descriptions" ;; esac
else
  echo "zsh not installed: zsh checks skipped"
fi
if command -v fish >/dev/null 2>&1; then
  run "$LUMU" completion fish
  cp "$TMP/out" lumu.fish
  if [ "$rc" = 0 ] && fish -n lumu.fish 2>"$TMP/err"; then ok; else err=$(cat "$TMP/err") bad "fish -n"; fi
  run fish --no-config -c "source $TMP/lumu.fish; complete -C 'lumu ver'"
  case $out in "version"*"print lumu's version"*) ok ;; *) bad "fish: command names" ;; esac
  run fish --no-config -c "source $TMP/lumu.fish; complete -C 'lumu version --out'"
  case $out in "--output"*) ok ;; *) bad "fish: command options" ;; esac
  run fish --no-config -c "source $TMP/lumu.fish; complete -C 'lumu version --output '"
  case $out in *json*text*) ok ;; *) bad "fish: option values" ;; esac
  run fish --no-config -c "source $TMP/lumu.fish; complete -C 'lumu help re'"
  case $out in repl*) ok ;; *) bad "fish: help COMMAND" ;; esac
else
  echo "fish not installed: fish checks skipped"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
