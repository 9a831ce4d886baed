# Start-up cost: lazily loaded libraries (lua/lazylib.h) and the bytecode
# stdlib.  lumu must not be linked against libcurl, libarchive,
# libcrypto/libssl or libedit, must not export its shims of their functions,
# must load them only when used, and must report a missing library (or
# symbol) as a clear Lua error.  The embedded stdlib is bytecode that keeps
# chunk names and line numbers.
# Usage: bash tests/cli/lazylib.sh path/to/lumu
set -eu

LUMU=${1:?usage: lazylib.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
unset LUA_INIT LUA_INIT_5_4 LUMU_DEBUG LUMU_LAZY_DISABLE LD_LIBRARY_PATH
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
SRC=$PWD # the repository root (ctest's working directory)
cd "$TMP"

# --- the binary ---------------------------------------------------------------
rc=0
needed=$(readelf -d "$LUMU" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
out=$needed err=
case " $needed " in *" libc.so.6 "*) ok ;; *) bad "readelf -d lists NEEDED entries (libc.so.6)" ;; esac
for lib in libcurl libarchive libcrypto libssl libedit libreadline libgnutls libxml2; do
  case " $needed" in *" $lib."*) bad "$lib must not be NEEDED (load it lazily, lua/lazylib.h)" ;; *) ok ;; esac
done

# the shims are hidden: exported, they would interpose on the libraries' own calls
exported=$(nm -D --defined-only "$LUMU" | awk '{print $3}')
out=$(printf '%s\n' "$exported" | grep -cE '^(curl_|archive_|EVP_|HMAC$|BN_|OSSL_|RAND_bytes$|readline$|rl_|add_history$)' || :)
[ "$out" = 0 ] && ok || bad "shim symbols must not be exported (found $out)"
case $'\n'"$exported"$'\n' in *$'\n'lua_pcallk$'\n'*) ok ;; *) bad "lua_* stays exported for C rocks" ;; esac

# --- loaded on first use, not at start-up -------------------------------------
maps='local f = assert(io.open("/proc/self/maps")) local m = f:read("a") f:close()
local function has(n) return m:find(n, 1, true) and "yes" or "no" end'
run "$LUMU" -e "$maps print(has('libcurl'), has('libarchive'), has('libcrypto'), has('libedit'))"
expect "nothing loaded by lumu -e" 0 "no	no	no	no"
run "$LUMU" -e "require 'lumu.http' require 'lumu.crypto' require 'lumu.aws' $maps print(has('libcurl'), has('libcrypto'))"
expect "requiring lumu.http / lumu.crypto / lumu.aws loads nothing" 0 "no	no"
run "$LUMU" -e "assert(require('lumu._http').version():match('^libcurl/')) $maps print(has('libcurl.so.4'))"
expect "libcurl loaded by the first use" 0 "yes"
run "$LUMU" -e "local c = require 'lumu.crypto' assert(c.hex(c.sha256('abc')):sub(1, 8) == 'ba7816bf') $maps print(has('libcrypto.so.3'), has('libcurl'))"
expect "libcrypto loaded by sha256, libcurl still not" 0 "yes	no"
run "$LUMU" -e "assert(require('lumu._archive').version():match('libarchive')) $maps print(has('libarchive.so.13'))"
expect "libarchive loaded by require lumu._archive" 0 "yes"
run "$LUMU" -e "require('lumu._repl').add_history('x') $maps print(has('libedit.so.2'))"
expect "libedit loaded by require lumu._repl" 0 "yes"

# timers in lumu.async poll without libcurl
run "$LUMU" -e "local a = require 'lumu.async'
print(a.run(function() a.sleep(0.01) return 'slept' end)) $maps print(has('libcurl'))"
expect "async sleep does not load libcurl" 0 "slept
no"
run env LUMU_LAZY_DISABLE=curl "$LUMU" -e "local a = require 'lumu.async'
print(a.run(function() a.sleep(0.01) return 'ok' end), require('lumu._http').pending())"
expect "async sleep works without libcurl" 0 "ok	0"

# --- LUMU_LAZY_DISABLE: clear errors ------------------------------------------
why="not available: disabled by LUMU_LAZY_DISABLE"
run env LUMU_LAZY_DISABLE=curl "$LUMU" -e "require('lumu.http').request{url = 'http://127.0.0.1:9/'}"
expect_err "http.request without libcurl" 1 "libcurl.so.4 $why"
case $err in *"(command line):1: libcurl.so.4"*) ok ;; *) bad "the error points at the caller" ;; esac
run env LUMU_LAZY_DISABLE=curl "$LUMU" -e "print(pcall(require('lumu._http').version))"
expect "_http.version without libcurl" 0 "false	libcurl.so.4 $why"

run env LUMU_LAZY_DISABLE=crypto "$LUMU" -e "local c = require 'lumu.crypto'
print(c.hex('AB'), c.base64_encode('hi'), c.unhex('4142'), c.base64_decode('aGk='))
for _, f in ipairs{'sha256', 'sha1', 'md5'} do print(pcall(c[f], 'x')) end
print(pcall(c.digest, 'sha256', 'x'))
print(pcall(c.hmac_sha256, 'k', 'm'))
print(pcall(c.hmac, 'sha1', 'k', 'm'))
print(pcall(c.equals, 'a', 'a'))
print(pcall(c.random_bytes, 4))
print(pcall(c.hasher, 'sha256'))"
expect "lumu.crypto without libcrypto: encodings work, the rest raises" 0 "4142	aGk=	AB	hi
false	libcrypto.so.3 $why
false	libcrypto.so.3 $why
false	libcrypto.so.3 $why
false	libcrypto.so.3 $why
false	libcrypto.so.3 $why
false	libcrypto.so.3 $why
false	libcrypto.so.3 $why
false	libcrypto.so.3 $why
false	libcrypto.so.3 $why"
run env LUMU_LAZY_DISABLE=crypto "$LUMU" -e "print(pcall(require('lumu._awscore').sign,
  {method = 'GET', url = 'https://sts.amazonaws.com/'},
  {access_key = 'AKID', secret_key = 'secret', region = 'us-east-1', service = 'sts', time = 0}))"
expect "SigV4 without libcrypto: an aws_error, not a crash" 0 "false	sign: libcrypto.so.3 $why"

run env LUMU_LAZY_DISABLE=archive "$LUMU" -e "print(pcall(require, 'lumu._archive'))"
expect "require lumu._archive without libarchive" 0 "false	libarchive.so.13 $why"
run env LUMU_LAZY_DISABLE=edit "$LUMU" -e "print(pcall(require, 'lumu._repl'))"
expect "require lumu._repl without libedit" 0 "false	libedit.so.2 $why"
run env LUMU_LAZY_DISABLE="edit, all" "$LUMU" -e "print((select(2, pcall(require('lumu._http').version))))"
expect "LUMU_LAZY_DISABLE=all" 0 "libcurl.so.4 $why"
run env LUMU_LAZY_DISABLE=curlx,xcurl "$LUMU" -e "print(require('lumu._http').version():match('^libcurl') ~= nil)"
expect "LUMU_LAZY_DISABLE matches whole words" 0 "true"

# --- a library dlopen cannot load, a library without the symbols -------------
mkdir bogus wrong
printf 'not an ELF file\n' >bogus/libcurl.so.4
zlib=$(ldconfig -p | awk '$1 == "libz.so.1" && /x86-64/ {print $NF; exit}')
ln -s "${zlib:-/lib/x86_64-linux-gnu/libz.so.1}" wrong/libarchive.so.13
run env LD_LIBRARY_PATH="$TMP/bogus" "$LUMU" -e "print(pcall(require('lumu._http').version))"
expect_err "a broken libcurl.so.4: dlerror's text" 0 ""
case $out in "false	libcurl.so.4 not available: $TMP/bogus/libcurl.so.4: "*) ok ;;
  *) bad "a broken libcurl.so.4 gives dlerror's text (got '$out')" ;; esac
run env LD_LIBRARY_PATH="$TMP/wrong" "$LUMU" -e "print(pcall(require, 'lumu._archive'))"
case $out in "false	libarchive.so.13 not available: "*"undefined symbol: archive_"*) ok ;;
  *) bad "a libarchive.so.13 without the symbols names one (got '$out')" ;; esac
run env LD_LIBRARY_PATH="$TMP/wrong" "$LUMU" -e "pcall(require, 'lumu._archive')
print(require('lumu.crypto').hex(require('lumu.crypto').md5('')))"
expect "other libraries unaffected" 0 "d41d8cd98f00b204e9800998ecf8427e"

# --- the embedded stdlib is bytecode with debug information --------------------
run "$LUMU" -e "local h = require 'lumu._host' print(h.embedded_source('lumu.cli'):sub(1, 4) == '\27Lua')"
expect "stdlib embedded as bytecode (cmake/embedgen.c)" 0 "true"
run "$LUMU" -e "require('lumu.cli').register(1)"
case $err in *"stdlib/lumu/cli.lua:"[0-9]*": register(name, modname)"*) ok ;;
  *) bad "errors in the embedded stdlib keep chunk name and line" ;; esac
run "$LUMU" -e "local i = debug.getinfo(require('lumu.cli').register, 'S') print(i.source, i.linedefined > 0)"
expect "debug info of embedded functions" 0 "@stdlib/lumu/cli.lua	true"
run env LUMU_STDLIB="$SRC/stdlib" "$LUMU" -e "print(debug.getinfo(require('lumu.cli').register, 'S').source:match('/stdlib/lumu/cli.lua$') ~= nil)"
expect "LUMU_STDLIB still loads the source from disk" 0 "true"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
