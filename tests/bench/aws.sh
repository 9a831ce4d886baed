#!/usr/bin/env bash
# AWS client benchmark: lumu.aws next to Debian's python3-boto3, same run,
# same local endpoint, one core each (they run one after the other).
#   1. DescribeStacks requests serialised + signed per second (no network):
#      lumu client:prepare() vs botocore's serialize -> create_request (signs)
#   2. the same plus parsing a recorded response, in process (no network):
#      lumu with an injected transport vs boto3 with a before-send hook
#   3. sequential DescribeStacks calls per second against a local keep-alive
#      endpoint (a minimal asyncio HTTP/1.1 server answering a recorded
#      DescribeStacks response, so the server is not the bottleneck)
# The no-network figures count CPU time (os.clock / time.process_time), so a
# busy machine does not skew them; the network figure is wall-clock time.
# Prints figures and the lumu/boto3 ratios (goal >= 5x); asserts nothing and
# installs nothing (boto3 comes from the python3-boto3 package).
# Usage: tests/bench/aws.sh [path/to/lumu] [seconds per measurement]
set -euo pipefail
LUMU=${1:-build/lumu}
SECS=${2:-2}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
PIN=${BENCH_PIN:-}   # e.g. BENCH_PIN="taskset -c 1" on a quiet machine
WORK=$(mktemp -d)
trap 'kill $SERVER_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY no_proxy NO_PROXY AWS_PROFILE AWS_ENDPOINT_URL
export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_EC2_METADATA_DISABLED=true

cat > "$WORK/body.xml" <<'XML'
<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member><StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/web/5a6b7c80-1111-11ee-9f00-0a1b2c3d4e5f</StackId><StackName>web</StackName><Description>lumu bench stack</Description><Parameters><member><ParameterKey>Env</ParameterKey><ParameterValue>prod</ParameterValue></member></Parameters><CreationTime>2023-06-20T10:15:30.123Z</CreationTime><StackStatus>CREATE_COMPLETE</StackStatus><DisableRollback>false</DisableRollback><NotificationARNs/><Capabilities><member>CAPABILITY_IAM</member></Capabilities><Outputs><member><OutputKey>Url</OutputKey><OutputValue>https://example.com</OutputValue></member></Outputs><Tags><member><Key>team</Key><Value>infra</Value></member></Tags><EnableTerminationProtection>false</EnableTerminationProtection><DriftInformation><StackDriftStatus>NOT_CHECKED</StackDriftStatus></DriftInformation></member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>b9b4c8a2-1f0e-4d2c-9a8e-2f6f5d7e0c11</RequestId></ResponseMetadata></DescribeStacksResponse>
XML

cat > "$WORK/server.py" <<'PY'
import asyncio, os, sys
body = open(sys.argv[1], "rb").read().strip()
resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nx-amzn-RequestId: "
        b"b9b4c8a2-1f0e-4d2c-9a8e-2f6f5d7e0c11\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
class Proto(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.buf = t, b""
    def data_received(self, data):
        self.buf += data
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            n = 0
            for line in self.buf[:i].split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    n = int(v)
            if len(self.buf) < i + 4 + n:
                return
            self.buf = self.buf[i + 4 + n:]
            self.t.write(resp)
async def main():
    srv = await asyncio.get_running_loop().create_server(Proto, "127.0.0.1", 0)
    print("PORT", srv.sockets[0].getsockname()[1], flush=True)
    ppid = os.getppid()
    while os.getppid() == ppid:
        await asyncio.sleep(0.5)
asyncio.run(main())
PY
$PY "$WORK/server.py" "$WORK/body.xml" > "$WORK/port" &
SERVER_PID=$!
for _ in $(seq 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(awk '/PORT/{print $2}' "$WORK/port")
URL="http://127.0.0.1:$PORT"

cat > "$WORK/bench.lua" <<'LUA'
local aws = require "lumu.aws"
local async = require "lumu.async"
local url, secs, body = arg[1], tonumber(arg[2]), arg[3]
local creds = { access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
local f = assert(io.open(body, "rb")); local xml = f:read("a"):gsub("%s+$", ""); f:close()
local function rate(fn, clock)
  clock = clock or os.clock
  for _ = 1, 200 do fn() end -- warm up
  local n, t0 = 0, clock()
  local deadline = t0 + secs
  repeat
    for _ = 1, 100 do fn() end
    n = n + 100
  until clock() >= deadline
  return n / (clock() - t0)
end
local c = assert(aws.client("cloudformation", { region = "us-east-1", endpoint_url = url, credentials = creds, env = {} }))
local params = { StackName = "web" }
local prep = rate(function() assert(c:prepare("DescribeStacks", params)) end)
local canned = { status = 200, headers = { ["x-amzn-requestid"] = "b9b4c8a2" }, body = xml }
local stub = assert(aws.client("cloudformation", { region = "us-east-1", endpoint_url = url, credentials = creds,
  env = {}, http = function() return canned end }))
local inproc = rate(function() assert(stub:DescribeStacks(params).Stacks[1].StackName == "web") end)
local cpu0, n0 = os.clock(), 0
local net = rate(function() n0 = n0 + 1 assert(c:DescribeStacks(params).Stacks[1].StackName == "web") end, async.now)
local cpu_us = (os.clock() - cpu0) / n0 * 1e6
print(string.format("%.1f %.1f %.1f %.1f", prep, inproc, net, cpu_us))
LUA

cat > "$WORK/bench.py" <<'PY'
import sys, time
import boto3, botocore
from botocore.awsrequest import AWSResponse
url, secs, body = sys.argv[1], float(sys.argv[2]), open(sys.argv[3], "rb").read().strip()
def rate(fn, clock=time.process_time):
    for _ in range(50):
        fn()
    n, t0 = 0, clock()
    while clock() - t0 < secs:
        for _ in range(20):
            fn()
        n += 20
    return n / (clock() - t0)
kw = dict(region_name="us-east-1", endpoint_url=url, aws_access_key_id="AKIDEXAMPLE",
          aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
c = boto3.client("cloudformation", **kw)
op = c.meta.service_model.operation_model("DescribeStacks")
ctx = {"client_region": "us-east-1", "client_config": c.meta.config, "has_streaming_input": False,
       "auth_type": None}
def prepare():
    rd = c._serializer.serialize_to_request({"StackName": "web"}, op)
    botocore.awsrequest.prepare_request_dict(rd, endpoint_url=url, context=dict(ctx),
                                             user_agent=c._client_config.user_agent)
    req = c._endpoint.create_request(rd, op)   # emits request-created: SigV4 signs here
    assert "Authorization" in req.headers
prep = rate(prepare)
stub = boto3.client("cloudformation", **kw)
class Raw:
    def stream(self, **kw):
        yield body
def canned(request, **kw):
    return AWSResponse(request.url, 200, {"x-amzn-requestid": "b9b4c8a2"}, Raw())
stub.meta.events.register("before-send.cloudformation", canned)
inproc = rate(lambda: stub.describe_stacks(StackName="web"))
calls = [0]
def call():
    calls[0] += 1
    return c.describe_stacks(StackName="web")["Stacks"][0]["StackName"]
cpu0 = time.process_time()
net = rate(call, time.perf_counter)
cpu_us = (time.process_time() - cpu0) / calls[0] * 1e6
print("%.1f %.1f %.1f %.1f %s %s" % (prep, inproc, net, cpu_us, boto3.__version__, botocore.__version__))
PY

read -r L_PREP L_INPROC L_NET L_CPU < <($PIN "$LUMU" "$WORK/bench.lua" "$URL" "$SECS" "$WORK/body.xml")
read -r B_PREP B_INPROC B_NET B_CPU B_VER BC_VER < <($PIN $PY "$WORK/bench.py" "$URL" "$SECS" "$WORK/body.xml")

echo "AWS client benchmark (DescribeStacks; ${SECS}s per figure; ${PIN:-no pinning}; boto3 $B_VER / botocore $BC_VER)"
printf "  %-44s %12s %12s %8s\n" "requests per second" "lumu" "boto3" "ratio"
row() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "  %-44s %12.0f %12.0f %7.1fx\n", n, a, b, a / b }'; }
row "serialised + signed (no network, per CPU s)" "$L_PREP" "$B_PREP"
row "+ parse, in process (no network, per CPU s)" "$L_INPROC" "$B_INPROC"
row "sequential calls, local keep-alive endpoint" "$L_NET" "$B_NET"
awk -v a="$L_CPU" -v b="$B_CPU" 'BEGIN { printf "  %-44s %10.0fus %10.0fus %7.1fx\n", \
  "  client CPU per call (same run)", a, b, b / a }'
echo "  goal: >= 5x boto3   (load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs)"
