#!/usr/bin/env bash
# Start-up benchmark: `lumu -e ''` next to `lua5.4 -e ''`, binary size, peak RSS.
# Prints figures; asserts nothing.  Usage: tests/bench/startup.sh [path/to/lumu] [runs]
set -euo pipefail
LUMU=${1:-build/lumu}
RUNS=${2:-300}
exec python3 - "$LUMU" "$RUNS" <<'PY'
import os, resource, statistics, subprocess, sys, time
lumu, runs = sys.argv[1], int(sys.argv[2])

def measure(cmd):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), statistics.mean(times), min(times)

def peak_rss_kib(cmd):
    # GNU time forks from a ~1 MiB process, so the child's peak is its own
    # (a fork from python would count python's pages in ru_maxrss).
    if not os.path.exists("/usr/bin/time"):
        return -1
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    return int(out.stderr.strip().splitlines()[-1])

rows = []
lua = "/usr/bin/lua5.4"
cases = [("lumu -e ''", [lumu, "-e", ""])]
if os.path.exists(lua):
    cases.append(("lua5.4 -e ''", [lua, "-e", ""]))
cases.append(("lumu version", [lumu, "version"]))
results = {}
for name, cmd in cases:
    med, mean, best = measure(cmd)
    results[name] = med
    rows.append((name, med, mean, best, peak_rss_kib(cmd)))
print(f"start-up over {runs} runs each (ms; peak RSS KiB)")
print(f"  {'command':<16} {'median':>8} {'mean':>8} {'min':>8} {'peakRSS':>9}")
for name, med, mean, best, rss in rows:
    print(f"  {name:<16} {med:8.3f} {mean:8.3f} {best:8.3f} {rss:9d}")
if "lua5.4 -e ''" in results:
    ratio = results["lumu -e ''"] / results["lua5.4 -e ''"]
    print(f"  ratio lumu/lua5.4 (median): {ratio:.2f}x (goal <= 2x)")
st = os.stat(lumu)
print(f"binary size: {st.st_size} bytes ({st.st_size/1024/1024:.2f} MiB) {lumu}")
PY
