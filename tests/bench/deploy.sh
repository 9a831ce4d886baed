#!/usr/bin/env bash
# Deploy engine benchmark against fakeaws (tests/support/fakeaws, 127.0.0.1):
# N independent stacks, each one resource that takes a fixed time to create
# (Metadata fake:duration-ms), deployed by lumu.deploy with its DEFAULT
# polling (2 s growing to 10 s, change sets from 1 s) and concurrency N.
# Prints:
#   * wall time of the whole `up` versus the sum of the per-stack times
#     (goal: close to the longest stack, not the sum);
#   * API calls per stack, from fakeaws's call log (what the server saw,
#     retries included), per operation (goal: no more polling than needed).
# A second pass (BENCH_SEQ=1) deploys the same stacks with concurrency 1 for
# contrast.  Asserts nothing.
# Usage: tests/bench/deploy.sh [path/to/lumu] [stacks] [seconds per stack]
#   env: BENCH_FAULTS="cloudformation:Describe*:throttle@p=0.3" adds faults;
#        BENCH_SEQ=1 also runs the sequential pass.
set -euo pipefail
LUMU=${1:-build/lumu}
N=${2:-8}
SECS=${3:-6}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY no_proxy NO_PROXY AWS_PROFILE AWS_ENDPOINT_URL

cat > "$WORK/bench.lua" <<'LUA'
local aws = require "lumu.aws"
local async = require "lumu.async"
local deploy = require "lumu.deploy"
local http = require "lumu.http"
local json = require "lumu.json"
local root, n, secs, faults, seq = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4] or "", arg[5] == "1"

local f = assert(io.popen("exec python3 " .. root .. "/tests/support/fakeaws --port 0 --idle 60", "r"))
local port = assert((f:read("l") or ""):match("^PORT (%d+)$"), "fakeaws did not start")
local pid = (f:read("l") or ""):match("^PID (%d+)$")
local base = "http://127.0.0.1:" .. port
local function control(path, doc)
  local r = assert(http.request { url = base .. "/__fake" .. path, method = doc and "POST" or "GET",
    body = doc and json.encode(doc) or nil, proxy = false })
  return json.decode(r.body)
end
local function client(service)
  return aws.client(service, { region = "us-east-1", endpoint_url = base, env = {},
    credentials = { access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" } })
end
local function stacks(prefix)
  local list = {}
  for i = 1, n do
    list[i] = { name = prefix .. i, kind = "bench", depends = {}, tags = { ["mu:type"] = "bench" },
      template = { Resources = { R = { Type = "AWS::SNS::Topic", Properties = {},
        Metadata = { ["fake:duration-ms"] = math.floor(secs * 1000) } } } } }
  end
  return list
end
local function sink() return { write = function(self) return self end } end

local function pass(label, prefix, conc)
  control("/calls/reset", {})
  if faults ~= "" then control("/faults", { spec = faults, seed = 1 }) end
  local eng = deploy.engine { client = client, yes = true, output = "lines", out = sink(), concurrency = conc,
    region = "us-east-1" }
  local t0 = async.now()
  local rep = eng:up(stacks(prefix))
  local wall = async.now() - t0
  control("/faults", { spec = "" })
  local sum, longest, ok = 0, 0, 0
  for _, r in pairs(rep.stacks) do
    sum = sum + (r.elapsed or 0)
    longest = math.max(longest, r.elapsed or 0)
    if r.status == "created" then ok = ok + 1 end
  end
  local calls = control("/calls")
  local per, total, throttled = {}, 0, 0
  for _, c in ipairs(calls) do
    per[c.operation] = (per[c.operation] or 0) + 1
    total = total + 1
    if c.error == "Throttling" then throttled = throttled + 1 end
  end
  print(string.format("%s: %d/%d stacks created, concurrency %d", label, ok, n, conc))
  print(string.format("  wall time            %6.1f s", wall))
  print(string.format("  sum of stack times   %6.1f s   (wall/sum %.2f; longest stack %.1f s; ideal >= %.1f s)",
    sum, wall / sum, longest, secs))
  print(string.format("  API calls            %d total, %.1f per stack%s", total, total / n,
    throttled > 0 and string.format(" (%d throttled)", throttled) or ""))
  local ops = {}
  for op in pairs(per) do ops[#ops + 1] = op end
  table.sort(ops)
  for _, op in ipairs(ops) do print(string.format("    %-24s %5.1f per stack", op, per[op] / n)) end
  return rep
end

print(string.format("deploy benchmark: %d independent stacks of one resource taking %.1f s, fakeaws, default polling%s",
  n, secs, faults ~= "" and (", faults " .. faults) or ""))
pass("parallel", "bench-par-", n)
if seq then pass("sequential", "bench-seq-", 1) end
pcall(control, "/shutdown", {})
f:close()
local _ = pid
LUA

"$LUMU" "$WORK/bench.lua" "$ROOT" "$N" "$SECS" "${BENCH_FAULTS:-}" "${BENCH_SEQ:-0}"
