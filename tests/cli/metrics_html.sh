# `lumu metrics -o html`: the report of the recorded histories in
# tests/fixtures/metrics is one self-contained file (no scripts, no links,
# no URLs in attributes; every SVG well-formed for Python's XML parser too),
# and headless Chromium renders its charts: the dumped DOM holds the SVG
# charts with their bars and points, and a screenshot shows the chart
# colours (decoded with Python's zlib: not a blank page).  The Chromium part
# is skipped, with a message, when chromium is not installed (Debian
# package `chromium`).
# Usage: bash tests/cli/metrics_html.sh path/to/lumu
set -eu

LUMU=${1:?usage: metrics_html.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
FIX=$SRC/tests/fixtures/metrics
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
unset LUA_INIT LUA_INIT_5_4 LUA_PATH LUA_PATH_5_4 LUMU_DEBUG
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); printf 'FAIL: %s\n' "$*" >&2; }
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok; else bad "$what"; fi
}

# `lumu metrics`, or the same command through the dispatcher while the
# command is not registered yet in lumu.cli.
metrics() {
  if "$LUMU" help metrics >/dev/null 2>&1; then
    "$LUMU" metrics "$@"
  else
    cat >"$TMP/metrics.lua" <<'EOF'
local cli = require "lumu.cli"
if not cli.commands.metrics then cli.register("metrics", "lumu.cli.metrics") end
os.exit(cli.main({ [0] = "lumu", "metrics", table.unpack(arg) }), true)
EOF
    "$LUMU" "$TMP/metrics.lua" "$@"
  fi
}

HTML=$TMP/report.html
set +e
metrics --history "$FIX/account.json" --since 14d --until 2024-03-18T00:00:00Z -o html --file "$HTML" svc web \
  >"$TMP/out" 2>"$TMP/err"
rc=$?
set -e
check "html report exits 0 (rc=$rc: $(cat "$TMP/err"))" test "$rc" = 0
check "html report written" test -s "$HTML"
check "nothing on stdout with --file" test ! -s "$TMP/out"

# Self-contained: no scripts, external resources or URLs in attributes.
for pat in '<script' '<link' '<img' '<iframe' '@import' 'url(' ' href=' ' src=' 'http://' 'https://'; do
  check "no '$pat' in the report" sh -c "! grep -qiF -- '$pat' '$HTML'"
done

# Every SVG fragment is well-formed XML (Python's parser, independent of lumu.xml).
check "SVGs parse with xml.etree" python3 - "$HTML" <<'EOF'
import re, sys, xml.etree.ElementTree as ET
html = open(sys.argv[1], encoding="utf-8").read()
frags = re.findall(r"<svg\b.*?</svg>", html, re.S)
assert len(frags) == 12, len(frags)   # all pipelines, svc and web: 4 charts each
for f in frags:
    root = ET.fromstring(f)
    assert root.tag == "svg", root.tag
EOF

if ! command -v chromium >/dev/null 2>&1; then
  echo "SKIP: chromium not installed (Debian package 'chromium'): browser rendering not checked"
  echo "metrics_html: $pass passed, $fail failed (chromium checks skipped)"
  [ "$fail" = 0 ]
  exit
fi

chrome() {
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d "$TMP/profile.XXXXXX")" --window-size=1200,900 "$@" 2>>"$TMP/chromium.log"
}

# The DOM as Chromium parsed it: the charts with their bars and points.
chrome --dump-dom "file://$HTML" >"$TMP/dom.html" || true
check "chromium dumped the DOM" grep -q '</html>' "$TMP/dom.html"
check "DOM: charts, bars and points" python3 - "$TMP/dom.html" <<'EOF'
import re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
count = lambda pat: len(re.findall(pat, dom))
assert count(r'<svg class="chart ') == 12, count(r'<svg class="chart ')
# deployments bars: svc 2 weeks, web 1 week, all pipelines 2 weeks
assert count(r'<rect class="bar ok"') == 5, count(r'<rect class="bar ok"')
assert count(r'<rect class="bar fail"') == 5, count(r'<rect class="bar fail"')
# lead time points: svc 4, web 2; restore points: svc 3, web 1
assert count(r'<circle class="point lead"') == 6, count(r'<circle class="point lead"')
assert count(r'<circle class="point restore"') == 4, count(r'<circle class="point restore"')
assert "Time to restore service" in dom
EOF

# A screenshot: the charts' colours are on the page (decoded PNG pixels).
chrome --screenshot="$TMP/shot.png" "file://$HTML" >/dev/null || true
check "chromium wrote a screenshot" test -s "$TMP/shot.png"
check "screenshot shows the charts" python3 - "$TMP/shot.png" <<'EOF'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, ihdr = 8, [], None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT": idat.append(body)
    pos += 12 + n
w, h, depth, ctype, _, _, interlace = ihdr
assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
bpp = 4 if ctype == 6 else 3
raw = zlib.decompress(b"".join(idat))
stride = w * bpp
prev = bytearray(stride)
colours = {}
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    if f == 1:
        for i in range(bpp, stride): line[i] = (line[i] + line[i - bpp]) & 255
    elif f == 2:
        line = bytearray((a + b) & 255 for a, b in zip(line, prev))
    elif f == 3:
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
    elif f == 4:
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + pr) & 255
    for x in range(0, stride, bpp):
        px = bytes(line[x:x + 3])
        colours[px] = colours.get(px, 0) + 1
    prev = line
assert len(colours) > 50, "a blank page: %d colours" % len(colours)
def n(hexrgb): return colours.get(bytes.fromhex(hexrgb), 0)
# bar fills (distinct from the band badges): deployments, failures, change failure rate
for name, hexrgb in (("deployments", "388e3c"), ("failures", "d32f2f"), ("change failure rate", "f57c00")):
    assert n(hexrgb) > 1500, "%s bars: %d pixels of #%s" % (name, n(hexrgb), hexrgb)
print("screenshot: %dx%d, %d colours, bar pixels ok=%d fail=%d rate=%d" % (w, h, len(colours), n("388e3c"), n("d32f2f"), n("f57c00")))
EOF

echo "metrics_html: $pass passed, $fail failed"
[ "$fail" = 0 ]
