#!/usr/bin/env python3
"""Fault-injection driver: lumu up / env terminate / purge of the bundled
example (scripts/example/lumu.lua) against fakeaws in chaos mode, seed by
seed, then the same without faults.

  python3 tests/faults/run.py --lumu build/lumu [--seeds 1-200] [--jobs 4]
          [--limit 300] [--out DIR] [--keep] [--json FILE] [--quiet]

For each seed (each with its own fakeaws, HOME, TMPDIR and work directory):
  faulted  fakeaws --chaos SEED (tests/support/fakeaws/faults.py chaos_spec:
           throttling, 500, 503, connection resets mid-body, truncated and
           cut (malformed) XML/JSON bodies, responses slower than lumu's
           2 s read timeout, ExpiredToken), then
             lumu up --yes
             lumu env terminate acceptance production --yes --allow-data-loss
             lumu purge --confirm --allow-data-loss
  clean    faults off, then lumu up --yes; lumu purge --confirm --allow-data-loss
Each command runs under a hard wall-clock limit (--limit seconds, then
SIGKILL) with LUMU_TRACK_ALLOC=1.  A seed passes when
  * no command crashed (signal, ASan/UBSan/LeakSanitizer report, "PANIC"),
    hung past the limit, leaked (exit 3 "leak"), or failed internally
    (exit 3, "internal error");
  * every faulted command exited 0 or 1, and every exit 1 printed a cause:
    a line naming a stack (mu-...) or an operation ("cloudformation
    CreateChangeSet") together with an error (an AWS error code, an HTTP
    status, a timeout/reset/truncation/malformed-body message);
  * fakeaws never held two live stacks of one name (GET /__fake/stacks);
    exit 0 means done: after a faulted up every stack of the example is
    *_COMPLETE, after env terminate no environment stack is left, after
    purge no stack at all;
  * the clean rerun converges: up exits 0 with exactly the stacks of the
    example (`lumu up --dryrun` names them), every one *_COMPLETE, both
    database passwords in SSM; purge exits 0 and leaves no stack, SSM
    parameter, change set or template bucket.
Prints one line per seed and a summary: faults injected per kind (rules'
`fired` counters), outcomes per command, error codes seen in causes.
Exit status: 0 all seeds passed, 1 otherwise, 2 usage.
"""
import argparse
import collections
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PYTHON = None
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
FAKEAWS = os.path.join(SRC, "tests", "support", "fakeaws")
EXAMPLE = os.path.join(SRC, "scripts", "example", "lumu.lua")
KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
READ_TIMEOUT = 2  # lumu's per-attempt timeout here; chaos `slow` waits 3 s


def python_with_botocore():
    """fakeaws needs botocore: this interpreter, else Debian's python3."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if exe and subprocess.run([exe, "-c", "import botocore"], capture_output=True).returncode == 0:
            return exe
    return None

FAULTED = [["up", "--yes"],
           ["env", "terminate", "acceptance", "production", "--yes", "--allow-data-loss"],
           ["purge", "--confirm", "--allow-data-loss"]]
CLEAN_UP = ["up", "--yes"]
CLEAN_PURGE = ["purge", "--confirm", "--allow-data-loss"]

SANITIZER = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |"
                       r"UndefinedBehaviorSanitizer|PANIC: unprotected error|Segmentation fault")
NAMED = re.compile(r"\bmu-[a-z0-9-]+|\b(?:cloudformation|ssm|sts|s3|ecr|ecs) [A-Z][A-Za-z]+\b")
CODE = re.compile(r"\b[A-Z][A-Za-z]*(?:Exception|Error|Failure|Unavailable|Token|Throttling|"
                  r"Exceeded|Denied|NotFound|Status|Exists)\b|\bThrottling\b|\bSlowDown\b")
TRANSPORT = re.compile(r"HTTP [45]\d\d|: [45]\d\d: |timed out|timeout|reset|closed|not valid (?:XML|JSON)|"
                       r"partial|transfer|empty reply|malformed|truncated|unexpected end", re.I)
BAD = {"crash", "hang", "asan", "leak", "internal", "no-cause", "bad-exit"}


def parse_seeds(text):
    text = text.strip()
    if text.isdigit():
        return list(range(1, int(text) + 1))
    seeds = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return seeds


class Fake:
    """One fakeaws process."""

    def __init__(self, workdir, chaos):
        self.log = open(os.path.join(workdir, "fakeaws.err"), "wb")
        self.proc = subprocess.Popen(
            [PYTHON, FAKEAWS, "--port", "0", "--resource-ms", "5", "--idle", "1800",
             "--chaos", str(chaos)], stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"PORT (\d+)", line)
        if not m:
            self.close()
            raise RuntimeError("fakeaws did not start: " + line)
        self.url = f"http://127.0.0.1:{m.group(1)}"

    def get(self, path):
        with urllib.request.urlopen(self.url + "/__fake/" + path, timeout=30) as r:
            return json.load(r)

    def post(self, path, obj):
        req = urllib.request.Request(self.url + "/__fake/" + path, data=json.dumps(obj).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_lumu(lumu, args, env, cwd, limit, logbase):
    """Runs one lumu command; returns {args, rc, secs, hang, out, err}."""
    t0 = time.monotonic()
    with open(logbase + ".out", "wb") as o, open(logbase + ".err", "wb") as e:
        p = subprocess.Popen([lumu] + args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                             stdout=o, stderr=e, start_new_session=True)
        hang = False
        try:
            rc = p.wait(limit)
        except subprocess.TimeoutExpired:
            hang = True
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
    secs = time.monotonic() - t0
    with open(logbase + ".out", "rb") as f:
        out = f.read().decode("utf-8", "replace")
    with open(logbase + ".err", "rb") as f:
        err = f.read().decode("utf-8", "replace")
    return {"args": args, "rc": rc, "secs": round(secs, 1), "hang": hang, "out": out, "err": err}


def classify(r, clean=False):
    """Outcome of one command: ok, failed (with a cause) or one of BAD."""
    text = r["out"] + "\n" + r["err"]
    if r["hang"]:
        return "hang", []
    if r["rc"] < 0 or r["rc"] >= 128:
        return "crash", []
    if SANITIZER.search(text):
        return "asan", []
    if r["rc"] == 3 and "leak" in r["err"]:
        return "leak", []
    if r["rc"] == 3 or "internal error" in r["err"] or "stack traceback" in r["err"]:
        return "internal", []
    if r["rc"] == 0:
        return "ok", []
    if r["rc"] != 1 or clean:
        return "bad-exit", []
    causes = []
    lines = r["err"].splitlines()
    for i, line in enumerate(lines):
        # a message may run over a few lines (an unparsable error body)
        block = " ".join(lines[i:i + 4])
        if NAMED.search(line) and (CODE.search(block) or TRANSPORT.search(block)):
            causes.append(line.strip())
    if not causes:
        return "no-cause", []
    return "failed", causes


def codes_of(lines):
    seen = set()
    for line in lines:
        for m in CODE.finditer(line):
            seen.add(m.group(0))
        if not CODE.search(line):
            m = TRANSPORT.search(line)
            if m:
                seen.add("transport:" + m.group(0).lower())
    return seen


def expected_stacks(lumu, env, workdir, limit):
    d = os.path.join(workdir, "dry")
    r = run_lumu(lumu, ["up", "--dryrun", "-O", d], env, workdir, limit,
                 os.path.join(workdir, "dryrun"))
    if r["rc"] != 0:
        raise RuntimeError("lumu up --dryrun failed: " + r["err"][-2000:])
    return sorted(f[:-len(".template.json")] for f in os.listdir(d) if f.endswith(".template.json"))


def live_duplicates(stacks):
    live = collections.Counter(s["name"] for s in stacks if s["status"] != "DELETE_COMPLETE")
    return sorted(n for n, c in live.items() if c > 1)


def run_seed(seed, opts):
    work = tempfile.mkdtemp(prefix=f"lumu-faults-{seed}-")
    home, tmp, proj = (os.path.join(work, d) for d in ("home", "tmp", "proj"))
    for d in (home, tmp, proj):
        os.mkdir(d)
    shutil.copy(EXAMPLE, os.path.join(proj, "lumu.lua"))
    cfg, clean_cfg = os.path.join(work, "aws-config"), os.path.join(work, "aws-config-clean")
    with open(cfg, "w") as f:
        f.write(f"[default]\nregion = us-east-1\ncli_read_timeout = {READ_TIMEOUT}\n"
                f"cli_connect_timeout = {READ_TIMEOUT}\n")
    with open(clean_cfg, "w") as f:  # no faults: a loaded machine must not time out
        f.write("[default]\nregion = us-east-1\ncli_read_timeout = 60\n")
    res = {"seed": seed, "problems": [], "commands": [], "fired": {}, "spec": None, "codes": []}
    fake = None
    try:
        fake = Fake(work, seed)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TMPDIR": tmp,
               "LANG": "C.UTF-8", "AWS_CONFIG_FILE": cfg, "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
               "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
               "AWS_ENDPOINT_URL": fake.url, "NO_PROXY": "*", "LUMU_TRACK_ALLOC": "1",
               "LUMU_REVISION": "faults"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "LUMU_STDLIB"):
            if os.environ.get(k):
                env[k] = os.environ[k]
        expected = opts.expected
        if expected is None:
            expected = expected_stacks(opts.lumu, env, proj, opts.limit)
        res["spec"] = fake.get("faults")["spec"]

        def step(phase, i, args):
            r = run_lumu(opts.lumu, args, env, proj, opts.limit,
                         os.path.join(work, f"{phase}{i}-{args[0]}"))
            outcome, causes = classify(r, clean=phase == "clean")
            if outcome != "ok" and phase == "clean" and outcome not in BAD:
                outcome = "bad-exit"
            entry = {"phase": phase, "cmd": " ".join(args[:2] if args[0] == "env" else args[:1]),
                     "rc": r["rc"], "secs": r["secs"], "outcome": outcome, "causes": causes[:3]}
            res["commands"].append(entry)
            res["codes"].extend(sorted(codes_of(causes)))
            if outcome in BAD:
                res["problems"].append(f"{phase} `lumu {' '.join(args)}`: {outcome} (rc={r['rc']}, "
                                       f"{r['secs']}s)")
            stacks = fake.get("stacks")
            dups = live_duplicates(stacks)
            if dups:
                res["problems"].append(f"after {phase} {args[0]}: duplicated live stacks {dups}")
            return r, outcome

        for i, args in enumerate(FAULTED):
            r, outcome = step("faulted", i, args)
            if outcome != "ok":
                continue
            # exit 0 must mean done: deployed, terminated, purged
            live = {s["name"]: s["status"] for s in fake.get("inventory")["stacks"]}
            if args[0] == "up":
                bad = [n for n in expected if live.get(n) not in ("CREATE_COMPLETE", "UPDATE_COMPLETE")]
                if bad:
                    res["problems"].append(f"faulted up exited 0 but these stacks are not deployed: "
                                           f"{[(n, live.get(n)) for n in bad]}")
            elif args[0] == "env":
                left = [n for n in live if n.endswith(("-acceptance", "-production"))]
                if left:
                    res["problems"].append(f"faulted env terminate exited 0 but left {left}")
            elif live:
                res["problems"].append(f"faulted purge exited 0 but left stacks {sorted(live)}")
        for rule in fake.get("faults")["rules"]:
            res["fired"][rule["kind"]] = res["fired"].get(rule["kind"], 0) + rule["fired"]
        res["rules"] = [{"rule": x["rule"], "calls": x["calls"], "fired": x["fired"]}
                        for x in fake.get("faults")["rules"]]
        fake.post("faults", {"spec": ""})
        env["AWS_CONFIG_FILE"] = clean_cfg

        r, outcome = step("clean", 0, CLEAN_UP)
        inv = fake.get("inventory")
        names = sorted(s["name"] for s in inv["stacks"])
        if outcome == "ok":
            if names != expected:
                extra = sorted(set(names) - set(expected))
                missing = sorted(set(expected) - set(names))
                res["problems"].append(f"clean up: stacks differ: extra {extra} missing {missing}")
            bad = [f"{s['name']}={s['status']}" for s in inv["stacks"]
                   if s["status"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE")]
            if bad:
                res["problems"].append(f"clean up: stacks not complete: {bad}")
            if len(inv["ssm"]) != 2:
                res["problems"].append(f"clean up: SSM parameters {inv['ssm']} (want the 2 passwords)")
        r, outcome = step("clean", 1, CLEAN_PURGE)
        inv = fake.get("inventory")
        # buckets with DeletionPolicy Retain and the fake's ECS clusters
        # outlive their stacks by design; lumu's own template bucket does not
        left = {"stacks": [f"{s['name']}={s['status']}" for s in inv["stacks"]], "ssm": inv["ssm"],
                "buckets": [b for b in inv["buckets"] if "lumu-templates" in b]}
        left = {k: v for k, v in left.items() if v}
        if left:
            res["problems"].append(f"clean purge: left behind {json.dumps(left)[:600]}")
    except Exception as e:  # the driver's own trouble counts as a problem
        res["problems"].append(f"driver: {type(e).__name__}: {e}")
    finally:
        if fake:
            fake.close()
        res["ok"] = not res["problems"]
        if res["ok"] and not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            res["logs"] = work
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lumu", required=True)
    ap.add_argument("--seeds", default="1-200", help="N (1..N), A-B, or a comma list")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--limit", type=float, default=300, help="seconds per command")
    ap.add_argument("--keep", action="store_true", help="keep the logs of passing seeds")
    ap.add_argument("--json", help="write every seed's result here")
    ap.add_argument("--quiet", action="store_true")
    opts = ap.parse_args(argv)
    opts.lumu = os.path.abspath(opts.lumu)
    if not os.access(opts.lumu, os.X_OK):
        print(f"run.py: {opts.lumu}: not an executable", file=sys.stderr)
        return 2
    try:
        seeds = parse_seeds(opts.seeds)
    except ValueError:
        print("run.py: --seeds: N, A-B or a comma list", file=sys.stderr)
        return 2
    global PYTHON
    PYTHON = python_with_botocore()
    if not PYTHON:
        print("run.py: no python3 with botocore for fakeaws (install python3-botocore)", file=sys.stderr)
        return 1
    opts.expected = None
    t0 = time.monotonic()
    results = []
    lock = threading.Lock()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        futs = [pool.submit(run_seed, s, opts) for s in seeds]
        for fut in concurrent.futures.as_completed(futs):
            r = fut.result()
            with lock:
                results.append(r)
                if not opts.quiet or not r["ok"]:
                    cmds = " ".join(f"{c['cmd']}={c['outcome']}({c['rc']},{c['secs']}s)"
                                    for c in r["commands"])
                    print(f"seed {r['seed']:>4} {'ok  ' if r['ok'] else 'FAIL'} {r['spec']}  {cmds}",
                          flush=True)
                    for p in r["problems"]:
                        print(f"    {p}", flush=True)
                    if not r["ok"]:
                        print(f"    logs: {r.get('logs')}", flush=True)
    results.sort(key=lambda r: r["seed"])
    wall = time.monotonic() - t0
    fired = collections.Counter()
    seeds_with = collections.Counter()
    outcomes = collections.Counter()
    codes = collections.Counter()
    for r in results:
        for k, n in r["fired"].items():
            fired[k] += n
            if n:
                seeds_with[k] += 1
        for c in r["commands"]:
            outcomes[(c["phase"], c["cmd"], c["outcome"])] += 1
        codes.update(r["codes"])
    npass = sum(1 for r in results if r["ok"])
    print(f"\n{len(results)} seeds, {npass} passed, {len(results) - npass} failed, "
          f"{wall / 60:.1f} min wall")
    print("faults injected (calls hit / seeds where the kind fired):")
    for k in sorted(fired):
        print(f"  {k:<9} {fired[k]:>6} / {seeds_with[k]}")
    print("outcomes:")
    for (phase, cmd, out), n in sorted(outcomes.items()):
        print(f"  {phase:<8} {cmd:<14} {out:<9} {n}")
    if codes:
        print("errors named in the causes of failed runs:")
        for k, n in codes.most_common():
            print(f"  {k:<40} {n}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"results": results, "wall_seconds": wall}, f, indent=1)
    return 0 if npass == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
