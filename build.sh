#!/usr/bin/env bash
# lumu's one set-up script.  On a fresh Debian machine, as root:
#   ./build.sh example   install what is missing, build, run the bundled example into ./out
#   ./build.sh test      install what is missing, build, run every test (also under ASan+UBSan)
#   ./build.sh bench     build, print the benchmarks' figures
#   ./build.sh build     install what is missing and build build/lumu
#   ./build.sh memcheck  every test under valgrind memcheck (slow: ~20 min on 2 cores)
#   ./build.sh faults    200 seeded fault-injection runs against fakeaws (SEEDS=1-200)
#   ./build.sh fuzz [S]  every libFuzzer harness for S seconds (default 60), clang-14
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

PACKAGES=(
  build-essential cmake pkg-config          # compiler and build
  liblua5.4-dev libyaml-dev libjansson-dev  # Lua, YAML, JSON (linked statically)
  libexpat1-dev                             # XML (linked statically)
  libcurl4-openssl-dev libssl-dev           # HTTP and crypto
  libedit-dev                               # REPL line editing
  zlib1g-dev                                # the embedded AWS API models are zlib-compressed
  libarchive-dev                            # extension archives (.zip, .tar.gz)
  libcmocka-dev                             # C tests
  python3 python3-botocore                  # local test servers; AWS API models
  lua5.4                                    # the start-up benchmark's reference
  tmux zsh fish                             # REPL terminal tests, completion script checks
  chromium                                  # renders the metrics HTML report in a test
)
SANITIZER_PACKAGES=(dpkg-dev)               # apt-get source for an APICHECK Lua

log() { printf '==> %s\n' "$*" >&2; }

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
  done
}

install_packages() {
  local missing
  missing=$(missing_packages "$@")
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "build.sh: missing Debian packages: $missing (run as root to install them)" >&2
    exit 1
  fi
  log "installing: $missing"
  if [ -z "${LUMU_APT_UPDATED:-}" ]; then
    apt-get update -qq
    export LUMU_APT_UPDATED=1
  fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

build() { # build DIR [cmake args...]
  local dir=$1
  shift
  cmake -S "$ROOT" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

# The Debian source of Lua 5.4, so the sanitizer build compiles Lua itself
# with LUA_USE_APICHECK.  Prints its src/ directory, or nothing when the
# source cannot be had (then the system liblua5.4.a is used).
lua_source() {
  local dest=$ROOT/build-asan/_lua
  if [ -d "$dest" ] && ls "$dest"/lua5.4-*/src/lapi.c >/dev/null 2>&1; then
    dirname "$(ls "$dest"/lua5.4-*/src/lapi.c | head -1)"
    return
  fi
  install_packages "${SANITIZER_PACKAGES[@]}" >&2 || return 0
  mkdir -p "$dest"
  if ! (cd "$dest" && apt-get source -qq lua5.4 >/dev/null 2>&1); then
    if [ "$(id -u)" = 0 ] && ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      log "adding a deb-src entry for Debian's Lua source"
      . /etc/os-release
      cat >/etc/apt/sources.list.d/lumu-deb-src.sources <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME:-bookworm}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
      apt-get update -qq >&2 || true
      (cd "$dest" && apt-get source -qq lua5.4 >/dev/null 2>&1) || true
    fi
  fi
  ls "$dest"/lua5.4-*/src/lapi.c >/dev/null 2>&1 && dirname "$(ls "$dest"/lua5.4-*/src/lapi.c | head -1)"
  return 0
}

cmd=${1:-}
case "$cmd" in
  build)
    install_packages "${PACKAGES[@]}"
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ;;
  example)
    install_packages "${PACKAGES[@]}"
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF
    log "lumu synth of the bundled example (scripts/example/lumu.lua) -> out/"
    rm -rf out
    build/lumu synth -c scripts/example/lumu.lua -o out
    log "done: open out/ (index: out/README.txt)"
    ;;
  test)
    install_packages "${PACKAGES[@]}"
    [ -d ../shared ] || echo "build.sh: note: ../shared is absent; conformance tests will fail" >&2
    log "release build + tests"
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ctest --test-dir build --output-on-failure -j "$JOBS"
    log "ASan+UBSan build + tests"
    src=$(lua_source)
    if [ -n "$src" ]; then
      log "Lua from Debian's source with LUA_USE_APICHECK: $src"
    else
      log "warning: Debian's Lua source unavailable; sanitizers cover lumu's code only"
    fi
    build build-asan -DCMAKE_BUILD_TYPE=Debug -DLUMU_SANITIZE=ON -DLUMU_LUA_SOURCE_DIR="$src"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --test-dir build-asan --output-on-failure -j "$JOBS" -LE faults
    ;;
  memcheck)
    install_packages "${PACKAGES[@]}" valgrind
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ctest --test-dir build -T memcheck -LE faults -j "$JOBS" --output-on-failure
    ;;
  faults)
    install_packages "${PACKAGES[@]}"
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    python3 tests/faults/run.py --lumu build/lumu --seeds "${SEEDS:-1-200}" --jobs 6
    ;;
  fuzz)
    install_packages "${PACKAGES[@]}" "${SANITIZER_PACKAGES[@]}" clang-14 libclang-rt-14-dev
    LUMU_LUA_SOURCE_DIR="$(lua_source)" bash tests/fuzz/run.sh "${2:-60}"
    ;;
  bench)
    install_packages "${PACKAGES[@]}" time python3-boto3
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF
    for b in tests/bench/*.sh; do bash "$b" build/lumu; done
    ;;
  *)
    echo "usage: ./build.sh example|test|bench|build|memcheck|faults|fuzz [SECONDS]" >&2
    exit 2
    ;;
esac
