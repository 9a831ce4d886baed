#!/usr/bin/env bash
# Start-up benchmark: `lumu -e ''` next to `lua5.4 -e ''`: wall time, CPU time
# (user+sys of the child: steadier than wall time on a busy machine), peak RSS,
# shared libraries mapped at start-up, binary size.
# Prints figures; asserts nothing.  Usage: tests/bench/startup.sh [path/to/lumu] [runs]
set -euo pipefail
LUMU=${1:-build/lumu}
RUNS=${2:-300}
exec python3 - "$LUMU" "$RUNS" <<'PY'
import os, resource, statistics, subprocess, sys, time
lumu, runs = sys.argv[1], int(sys.argv[2])

def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def measure(cmd):
    times = []
    c0 = cpu_children()
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    cpu = (cpu_children() - c0) * 1000 / runs
    return statistics.median(times), statistics.mean(times), min(times), cpu

# Shared objects mapped once start-up is done (the program reads its own maps).
MAPS = ('local n, seen = 0, {} for l in io.lines("/proc/self/maps") do '
        'local p = l:match("%s(/%S+%.so[%.%d]*)$") '
        'if p and not seen[p] then seen[p] = true n = n + 1 end end print(n)')

def libs_mapped(exe):
    out = subprocess.run([exe, "-e", MAPS], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True)
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip().isdigit() else -1

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
cpus = {}
for name, cmd in cases:
    med, mean, best, cpu = measure(cmd)
    results[name] = med
    cpus[name] = cpu
    rows.append((name, med, mean, best, cpu, peak_rss_kib(cmd)))
print(f"start-up over {runs} runs each (ms; CPU = user+sys per run; peak RSS KiB)")
print(f"  {'command':<16} {'median':>8} {'mean':>8} {'min':>8} {'CPU':>8} {'peakRSS':>9}")
for name, med, mean, best, cpu, rss in rows:
    print(f"  {name:<16} {med:8.3f} {mean:8.3f} {best:8.3f} {cpu:8.3f} {rss:9d}")
if "lua5.4 -e ''" in results:
    ratio = results["lumu -e ''"] / results["lua5.4 -e ''"]
    cratio = cpus["lumu -e ''"] / cpus["lua5.4 -e ''"] if cpus["lua5.4 -e ''"] > 0 else 0
    print(f"  ratio lumu/lua5.4: {ratio:.2f}x median wall time (goal <= 2x), {cratio:.2f}x CPU time")
    print(f"  shared libraries mapped: lumu {libs_mapped(lumu)}, lua5.4 {libs_mapped(lua)}")
st = os.stat(lumu)
print(f"binary size: {st.st_size} bytes ({st.st_size/1024/1024:.2f} MiB) {lumu}")
PY
