#!/usr/bin/env bash
# Synthesis benchmark: wall time, CPU time (user + system) and peak RSS of
# `lumu synth` (nag included) for the bundled example
# (scripts/example/lumu.lua) and for a generated platform of 3 environments x
# 200 services (600 service stacks), plus the CPU time of lumu.synth.plan
# alone (config load + plan, with the suppression step; no file writing) and
# of lumu.synth.nag after it.
# Goals: `lumu synth` of the example < 20 ms, of the platform < 2 s on one core.
# Each case runs twice: "fresh" writes into a directory that does not exist
# yet (every output file is a new inode, which costs what the file system
# charges), "rerun" into an up-to-date directory from an earlier run (synth
# then rewrites nothing).  Prints figures; asserts nothing.
# Usage: tests/bench/synth.sh [path/to/lumu] [runs]
set -euo pipefail
LUMU=${1:-build/lumu}
RUNS=${2:-10}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# the generated platform
{
  echo 'environment { name = "acceptance", provider = "ecs-fargate" }'
  echo 'environment { name = "staging", provider = "ecs" }'
  echo 'environment { name = "production", provider = "ecs", cluster = { maxSize = 10 } }'
  for i in $(seq -w 1 200); do
    echo "service { name = \"svc$i\", pathPatterns = { \"/svc$i/*\" }, environment = {" \
      "LOG_LEVEL = \"info\", STAGE = { acceptance = \"a\", staging = \"s\", production = \"p\" } } }"
  done
} > "$TMP/platform.lua"
cp "$SRC/scripts/example/lumu.lua" "$TMP/example.lua"

cat > "$TMP/plan.lua" <<'EOF'
local config = require "lumu.config"
local synth = require "lumu.synth"
local path, runs = arg[1], tonumber(arg[2])
local best, best_nag, n = math.huge, math.huge, 0
for _ = 1, runs do
  local t0 = os.clock()
  local m = assert(config.load(path))
  local stacks = synth.plan(m)
  local t1 = os.clock()
  assert(synth.nag(stacks))
  local t2 = os.clock()
  if t1 - t0 < best then best = t1 - t0 end
  if t2 - t1 < best_nag then best_nag = t2 - t1 end
  n = #stacks
end
io.write(string.format("%d %.1f %.1f\n", n, best * 1000, best_nag * 1000))
EOF

exec python3 - "$LUMU" "$RUNS" "$TMP" <<'PY'
import os, statistics, subprocess, sys, time
lumu, runs, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def wall(cmd, n, mode):
    """fresh: each run writes a directory that does not exist yet (removed
    only after the case, so no run pays for the deletion of the one before:
    ext4 makes creating files right after deleting many of them slow);
    rerun: every run writes into the same, already up-to-date directory."""
    times, cpus, syss = [], [], []
    made = []
    if mode == "rerun":
        out = os.path.join(tmp, "out-rerun")
        subprocess.run(cmd + ["-o", out], cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        made.append(out)
    for i in range(n):
        if mode == "fresh":
            out = os.path.join(tmp, f"out-{i}")
            made.append(out)
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd + ["-o", out], cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 0:
            sys.exit(f"{cmd} failed")
        cpus.append((ru.ru_utime + ru.ru_stime) * 1000)
        syss.append(ru.ru_stime * 1000)
    subprocess.run(["rm", "-rf"] + made, check=True)
    return statistics.median(times), min(times), min(cpus), min(syss)

def peak_rss_kib(cmd):
    if not os.path.exists("/usr/bin/time"):
        return -1
    out = os.path.join(tmp, "out")
    subprocess.run(["rm", "-rf", out], check=True)
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd + ["-o", out], cwd=tmp, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    return int(r.stderr.strip().splitlines()[-1])

def plan_cpu(path, n):
    r = subprocess.run([lumu, "run", os.path.join(tmp, "plan.lua"), path, str(n)], cwd=tmp,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
    stacks, ms, nag_ms = r.stdout.split()
    return int(stacks), float(ms), float(nag_ms)

print(f"lumu synth ({lumu}); wall ms over runs, CPU ms (best; user+sys, and sys), peak RSS KiB, in-process"
      " CPU ms (best; no writing) of plan and of nag.  fresh: into a new directory; rerun: into an"
      " up-to-date one")
print(f"  {'case':<28} {'stacks':>6} {'median':>9} {'min':>9} {'cpu':>9} {'sys':>7} {'peakRSS':>9} {'plan':>9}"
      f" {'nag':>7}  goal (cpu)")
for name, cfg, n, goal in (("example", "example.lua", runs, "< 20 ms"),
                           ("3 envs x 200 services", "platform.lua", max(1, runs // 3), "< 2000 ms")):
    cmd = [lumu, "synth", "-c", cfg]
    rss = peak_rss_kib(cmd)
    stacks, plan, nag = plan_cpu(cfg, n)
    for mode in ("fresh", "rerun"):
        med, best, cpu, sysms = wall(cmd, n, mode)
        label = f"{name}, {mode}"
        print(f"  {label:<28} {stacks:>6} {med:>9.1f} {best:>9.1f} {cpu:>9.1f} {sysms:>7.1f} {rss:>9} {plan:>9.1f}"
              f" {nag:>7.1f}  {goal}")
PY
