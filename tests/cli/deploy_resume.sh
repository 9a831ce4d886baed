# End to end against tests/support/fakeaws, the bundled example through the
# CLI, each scenario in its own namespace:
#   * a failure in one environment (production) while the other finishes,
#     then the failed create (ROLLBACK_COMPLETE) re-created on the next run
#     (exit 4 without --yes and without a terminal);
#   * an interrupted run resumed: Ctrl-C (SIGINT: exit 130), and a hard kill
#     (SIGKILL: stacks left in progress are waited for), then a re-run
#     finishing everything with one stack per name;
#   * a throttling storm (with dropped connections and paged events)
#     survived: no duplicate stacks, every stack event emitted exactly once
#     in the --output json lines;
#   * the CloudFormation service role (LUMU_CFN_ROLE_ARN) on the stacks,
#     --outputs-file, -F/--skip-version-check against a stack tagged by a
#     newer lumu, `svc push -p s3` uploading a zip CodeDeploy can use.
# Usage: bash tests/cli/deploy_resume.sh path/to/lumu
set -u

LUMU=${1:?usage: deploy_resume.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
FAKEPID=
BGPID=
cleanup() {
  if [ -n "$BGPID" ]; then kill -9 "$BGPID" 2>/dev/null; wait "$BGPID" 2>/dev/null; fi
  if [ -n "$FAKEPID" ]; then kill "$FAKEPID" 2>/dev/null; wait "$FAKEPID" 2>/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
unset LUA_INIT LUA_INIT_5_4 LUA_PATH LUA_PATH_5_4 LUMU_DEBUG MU_NAMESPACE LUMU_REVISION AWS_PROFILE \
  CODEBUILD_RESOLVED_SOURCE_VERSION LUMU_CONTAINER_ENGINE AWS_SESSION_TOKEN AWS_DEFAULT_REGION CI \
  LUMU_CFN_ROLE_ARN http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY NO_PROXY='*'
pass=0 fail=0

NAME=deploy_resume.sh
BAD_TAIL_OUT=10 BAD_ERR_DROP='^[0-9][0-9]:'
. "$SRC/tests/cli/lib/fakeaws.sh"
fakeaws_start

# checks through botocore
cat > "$TMP/aws.py" <<'EOF'
import json, os, sys, zipfile, io
import botocore.session
def client(name):
    return botocore.session.get_session().create_client(name, endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name="us-east-1", aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
cfn = client("cloudformation")
def stacks(prefix, all_states=False):
    out, tok = [], None
    while True:
        r = cfn.list_stacks(**({"NextToken": tok} if tok else {}))
        out += [s for s in r["StackSummaries"] if s["StackName"].startswith(prefix)]
        tok = r.get("NextToken")
        if not tok:
            return [s for s in out if all_states or s["StackStatus"] != "DELETE_COMPLETE"]
def events(ref):
    out, tok = [], None
    while True:
        r = cfn.describe_stack_events(StackName=ref, **({"NextToken": tok} if tok else {}))
        out += r["StackEvents"]
        tok = r.get("NextToken")
        if not tok:
            return out
cmd, arg = sys.argv[1], sys.argv[2]
if cmd == "summary":      # name:status of the live stacks of a namespace, sorted
    print(" ".join(sorted(s["StackName"] + ":" + s["StackStatus"] for s in stacks(arg + "-"))))
elif cmd == "unique":     # every live stack name once, and all *_COMPLETE
    live = stacks(arg + "-")
    names = [s["StackName"] for s in live]
    bad = [s["StackName"] + ":" + s["StackStatus"] for s in live
           if s["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE")]
    print("ok %d" % len(names) if len(names) == len(set(names)) and not bad and names else
          "dup-or-bad %s %s" % (sorted(names), bad))
elif cmd == "events":     # JSON lines on stdin: every event of every stack exactly once
    seen, dup = {}, []
    for line in sys.stdin:
        if not line.strip():
            continue
        o = json.loads(line)
        if o.get("event_id"):
            k = (o["stack"], o["event_id"])
            if k in seen: dup.append(k)
            seen[k] = True
    lost = []
    for s in stacks(arg + "-"):
        for e in events(s["StackId"]):
            if e["ResourceStatus"] != "REVIEW_IN_PROGRESS" and (s["StackName"], e["EventId"]) not in seen:
                lost.append((s["StackName"], e["EventId"], e["ResourceStatus"]))
    print("ok %d" % len(seen) if not dup and not lost and seen else "dup %s lost %s" % (dup[:5], lost[:5]))
elif cmd == "roles":      # the RoleARN of every live stack of a namespace, distinct values
    vals = set()
    for s in stacks(arg + "-"):
        vals.add(cfn.describe_stacks(StackName=s["StackId"])["Stacks"][0].get("RoleARN", "none"))
    print(" ".join(sorted(vals)))
elif cmd == "retag":      # retag STACK KEY=VALUE: an update that only changes one tag
    st = cfn.describe_stacks(StackName=arg)["Stacks"][0]
    key, value = sys.argv[3].split("=", 1)
    tags = [t for t in st["Tags"] if t["Key"] != key] + [{"Key": key, "Value": value}]
    params = [{"ParameterKey": p["ParameterKey"], "UsePreviousValue": True} for p in st.get("Parameters", [])]
    cfn.update_stack(StackName=arg, UsePreviousTemplate=True, Parameters=params, Tags=tags,
                     Capabilities=st.get("Capabilities", []))
    cfn.get_waiter("stack_update_complete").wait(StackName=arg, WaiterConfig={"Delay": 1})
    print("ok")
elif cmd == "tag":        # tag STACK KEY
    st = cfn.describe_stacks(StackName=arg)["Stacks"][0]
    print({t["Key"]: t["Value"] for t in st["Tags"]}.get(sys.argv[3], "-"))
elif cmd == "bundle":     # bundle s3://bucket/key: metadata and the zip's names, checked
    bucket, key = arg[5:].split("/", 1)
    obj = client("s3").get_object(Bucket=bucket, Key=key)
    z = zipfile.ZipFile(io.BytesIO(obj["Body"].read()))
    assert z.testzip() is None
    modes = {i.filename: oct((i.external_attr >> 16) & 0o777) for i in z.infolist()}
    print(obj["Metadata"].get("lumu-revision"), " ".join(sorted(modes)), modes.get("scripts/start.sh"))
EOF
aws() { "$PY" "$TMP/aws.py" "$@"; }

cd "$TMP"
cp "$SRC/scripts/example/lumu.lua" lumu.lua

# 1. one environment fails, the other finishes; the next run re-creates ---------------------------
{ cat lumu.lua; cat <<'EOF'
override { stack = ".*-environment-production", template = { Resources = {
  FakeFailWidget = { Type = "AWS::CloudFormation::WaitConditionHandle",
    Metadata = { ["fake:fail"] = "Resource limit exceeded: widgets (simulated)" } } } } }
EOF
} > failing.lua
run "$LUMU" up --yes -c failing.lua -n one
expect_rc "up with production failing: exit 1" 1
check "the failure and its reason are in the summary" \
  'printf "%s" "$err" | grep -Eq "failed +one-[a-z-]*environment-production +ROLLBACK_COMPLETE: FakeFailWidget .*Resource limit exceeded: widgets"'
check "production's dependants were skipped" \
  'printf "%s" "$err" | grep -Eq "(skipped +one-service-sample-service-production|one-service-sample-service-production: skipped)"'
S=$(aws summary one)
check "acceptance finished (its service too)" 'case $S in *one-service-sample-service-acceptance:CREATE_COMPLETE*) true ;; *) false ;; esac'
check "acceptance's database got its password and stack" 'case $S in *one-database-sample-service-acceptance:CREATE_COMPLETE*) true ;; *) false ;; esac'
check "production's failed create is left in ROLLBACK_COMPLETE" 'case $S in *production:ROLLBACK_COMPLETE*) true ;; *) false ;; esac'
check "production's service was never created" 'case $S in *one-service-sample-service-production*) false ;; *) true ;; esac'
run "$LUMU" up -n one
expect_err "the fixed run without --yes and without a terminal asks nothing: exit 4" 4 "re-run with --yes"
check "exit 4: the re-create is announced" 'printf "%s" "$err" | grep -q "re-create: the failed create (ROLLBACK_COMPLETE) is deleted first"'
run "$LUMU" up --yes -n one
expect_rc "the fixed run with --yes: exit 0" 0
check "every stack complete, one per name" '[ "$(aws unique one)" = "ok 18" ]'

# 2. interrupted runs resumed -----------------------------------------------------------------------
# (every VPC stack takes 4 s more, so stacks are surely in progress when the signal comes and
# still are when the re-run looks; 40 s under valgrind, where starting lumu alone takes seconds)
SLOW_MS=4000
[ -n "${LUMU_UNDER_VALGRIND:-}" ] && SLOW_MS=40000
{ cat lumu.lua; cat <<EOF
override { stack = ".*-vpc-.*", template = { Resources = {
  SlowWidget = { Type = "AWS::CloudFormation::WaitConditionHandle", Metadata = { ["fake:duration-ms"] = $SLOW_MS } } } } }
EOF
} > slow.lua
interrupt() { # interrupt NS SIGNAL: start lumu up, send SIGNAL once stacks execute; sets rc
  fake_control /calls/reset '{}' >/dev/null
  "$LUMU" up --yes -c slow.lua -n "$1" >"$TMP/bg.out" 2>"$TMP/bg.err" </dev/null &
  BGPID=$!
  for _ in $(seq 1 300); do
    [ "$(fake_calls cloudformation ExecuteChangeSet)" -ge 3 ] && break
    sleep 0.1
  done
  kill "-$2" "$BGPID"
  wait "$BGPID"
  rc=$?
  BGPID=
  out=$(cat "$TMP/bg.out")
  err=$(cat "$TMP/bg.err")
}
interrupt three KILL
run "$LUMU" up --yes -c slow.lua -n three
expect_rc "resume after SIGKILL: exit 0" 0
check "resume after SIGKILL: the stacks left in progress were waited for" \
  'printf "%s" "$err" | grep -q "waiting for CREATE_IN_PROGRESS (started earlier) to finish"'
check "resume after SIGKILL: one complete stack per name" '[ "$(aws unique three)" = "ok 18" ]'
interrupt two INT
expect_err "Ctrl-C: exit 130 after the stacks settle" 130 "interrupted: "
check "Ctrl-C: the creates in flight were waited for" 'printf "%s" "$err" | grep -q "two-vpc-acceptance  -  CREATE_COMPLETE"'
check "Ctrl-C: nothing left changing" '! aws summary two | grep -Eq "(CREATE|UPDATE|DELETE)_IN_PROGRESS"'
check "Ctrl-C: no change set stack left behind" '! aws summary two | grep -q REVIEW_IN_PROGRESS'
run "$LUMU" up --yes -c slow.lua -n two
expect_rc "resume after Ctrl-C: exit 0" 0
check "resume after Ctrl-C: one complete stack per name" '[ "$(aws unique two)" = "ok 18" ]'

# 3. a throttling storm ------------------------------------------------------------------------------
fake_control /config '{"page_sizes": {"DescribeStackEvents": 4}}' >/dev/null
fake_control /faults '{"spec": "cloudformation:Describe*:throttle@p=0.35,cloudformation:*:throttle@p=0.1,cloudformation:CreateChangeSet:reset@4,cloudformation:ExecuteChangeSet:reset@2,ssm:*:500@1,sts:*:throttle@1", "seed": 11}' >/dev/null
run "$LUMU" up --yes --output json -n storm
FIRED=$(fake_control /faults | "$PY" -c 'import json,sys; print(sum(r["fired"] for r in json.load(sys.stdin)["rules"]))')
fake_control /faults '{"spec": ""}' >/dev/null
fake_control /config '{"page_sizes": {}}' >/dev/null
expect_rc "the storm: exit 0" 0
check "the storm: faults fired ($FIRED)" '[ "$FIRED" -ge 30 ]'
check "the storm: stdout is JSON lines only" \
  'printf "%s\n" "$out" | "$PY" -c "import json,sys; [json.loads(l) for l in sys.stdin if l.strip()]"'
check "the storm: no duplicate stacks" '[ "$(aws unique storm)" = "ok 18" ]'
EV=$(printf '%s\n' "$out" | aws events storm)
check "the storm: every event exactly once ($EV)" 'case $EV in "ok "*) true ;; *) false ;; esac'

# 4. service role, outputs file, version guard, S3 bundles -----------------------------------------------
ROLE=arn:aws:iam::123456789012:role/role-cloudformation-common-us-east-1
run env LUMU_CFN_ROLE_ARN=$ROLE "$LUMU" env up acceptance --yes -n role --outputs-file "$TMP/outputs.json"
expect_rc "env up with LUMU_CFN_ROLE_ARN" 0
check "every stack has the service role" '[ "$(aws roles role)" = "$ROLE" ]'
check "--outputs-file: the VPC's outputs" \
  '"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"role-vpc-acceptance\"][\"VpcId\"].startswith(\"vpc-\")" "$TMP/outputs.json"'
run env LUMU_CFN_ROLE_ARN=not-a-role "$LUMU" env up acceptance --yes -n role
expect_err "a bad LUMU_CFN_ROLE_ARN is refused" 1 "LUMU_CFN_ROLE_ARN must be an IAM role ARN"
check "retag: a newer lumu wrote the VPC stack" '[ "$(aws retag role-vpc-acceptance lumu:version=99.0.0)" = ok ]'
run "$LUMU" env up acceptance --yes -n role
expect_err "the version guard refuses the newer stack" 1 "last deployed by lumu 99.0.0, newer than this lumu"
check "its dependants were skipped" 'printf "%s" "$err" | grep -Eq "skipped +role-loadbalancer-acceptance"'
run "$LUMU" env up acceptance --yes -n role -F
expect_err "-F updates it anyway" 0 "updating it anyway (-F/--skip-version-check)"
check "the tag is this lumu's again" '[ "$(aws tag role-vpc-acceptance lumu:version)" != 99.0.0 ]'
mkdir -p app/scripts app/.git
cp failing.lua app/lumu.lua
printf 'version: 0.0\nos: linux\n' > app/appspec.yml
printf '#!/bin/sh\nexec nginx\n' > app/scripts/start.sh
chmod 755 app/scripts/start.sh
printf 'ref: refs/heads/main\n' > app/.git/HEAD
run "$LUMU" svc push -p s3 -t rev42 --yes -n role -c app/lumu.lua
expect_out "svc push -p s3 prints the bundle's URL" 0 "s3://role-codedeploy-us-east-1-123456789012/sample-service/rev42.zip"
B=$(aws bundle "$out")
check "the bundle: revision, files (no .git) and modes ($B)" \
  '[ "$B" = "rev42 appspec.yml lumu.lua scripts/ scripts/start.sh 0o755" ]'

printf 'deploy_resume.sh: %d passed, %d failed\n' "$pass" "$fail"
[ "$fail" = 0 ]
