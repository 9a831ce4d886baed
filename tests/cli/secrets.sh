# Secret hygiene: canary credentials (access key, secret key, session token,
# from the environment and from a credentials-file profile), a canary
# database master password (db set-password, kept in fakeaws's SSM), a
# canary GitHub token (pipeline up -t, $GITHUB_TOKEN read by lumu.lua) and
# the ECR password fakeaws hands out go through every command -- synth,
# validate, nag, up, diff, env/svc/db/pipeline subcommands, aws, -e / repl,
# error paths (bad signature, expired token, model validation, a secret in
# the configuration), an internal error and failed allocations -- in each
# mode (plain, --verbose, --debug, --output json, LUMU_AWS_DEBUG=1).  None
# may appear on stdout/stderr (the only exception: `db get-password` prints
# the password on stdout), in the synth / dry-run files, or in any file lumu
# left in $HOME, the project directory or $TMPDIR; $TMPDIR must be left
# empty; the docker credentials directory of `svc push` is private (0700)
# and removed.  TLS: lumu.http refuses verify=false for AWS endpoints, no
# flag or environment variable turns verification off (an https endpoint
# with an unknown certificate fails).
# Usage: bash tests/cli/secrets.sh path/to/lumu
set -u

LUMU=${1:?usage: secrets.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
FAKEPID= TLSPID=
cleanup() {
  for p in $FAKEPID $TLSPID; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
unset LUA_INIT LUA_INIT_5_4 LUA_PATH LUA_PATH_5_4 LUMU_DEBUG MU_NAMESPACE LUMU_REVISION AWS_PROFILE \
  CODEBUILD_RESOLVED_SOURCE_VERSION LUMU_CONTAINER_ENGINE AWS_DEFAULT_REGION CI LUMU_AWS_DEBUG \
  http_proxy https_proxy HTTP_PROXY HTTPS_PROXY AWS_CA_BUNDLE LUMU_STDLIB LUMU_HISTORY
pass=0 fail=0 runs=0

PY=
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import botocore' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
  echo "secrets.sh: no python3 with botocore (install python3-botocore)" >&2
  echo "secrets.sh: 0 passed, 1 failed"
  exit 1
fi

# the canaries ---------------------------------------------------------------------------------
AK=AKIACANARY7Q3Z9X2W1V
SK=CanarySecretKey/7Q3Z9X2W1VwJalrXUtnFEMI+K
ST=CanarySessionToken/IQoJb3JpZ2luX2VjEOz//////////wEaCXVzLWVhc3QtMSJHMEUCIQ7Q3Z9X2W1V
AK2=AKIACANARYPROFILE0001
SK2=CanaryProfileSecret/7Q3Z9X2W1VwJalrXUtnFEM
DBPW=CanaryDbPassw0rd7Q3Z9X2W1VxYzQ
GH=ghp_CanaryGitHubToken7Q3Z9X2W1VabcdefABCD
CANARIES="$AK $SK $ST $AK2 $SK2 $DBPW $GH"
ECRPW=  # learnt from the stand-in docker's stdin

H=$TMP/home P=$TMP/proj T=$TMP/tmp BAD=$TMP/badproj
mkdir -p "$H/.aws" "$P" "$T" "$BAD" "$TMP/bin" "$TMP/fake"
export HOME=$H TMPDIR=$T
cat >"$H/.aws/credentials" <<EOF
[canary]
aws_access_key_id = $AK2
aws_secret_access_key = $SK2
EOF
chmod 600 "$H/.aws/credentials"
printf '[profile canary]\nregion = us-east-1\n' >"$H/.aws/config"
cat >"$TMP/fake/creds.json" <<EOF
{"$AK": {"secret": "$SK", "token": "$ST"}, "$AK2": {"secret": "$SK2"}}
EOF

"$PY" "$SRC/tests/support/fakeaws" --port 0 --resource-ms 5 --idle 900 --credentials "$TMP/fake/creds.json" \
  >"$TMP/fake/out" 2>"$TMP/fake/err" &
FAKEPID=$!
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$TMP/fake/out")
  [ -n "$PORT" ] && break
  sleep 0.1
done
if [ -z "$PORT" ]; then
  echo "secrets.sh: fakeaws did not start: $(cat "$TMP/fake/err")" >&2
  echo "secrets.sh: 0 passed, 1 failed"
  exit 1
fi
E=http://127.0.0.1:$PORT
export AWS_ENDPOINT_URL=$E AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK \
  AWS_SESSION_TOKEN=$ST GITHUB_TOKEN=$GH NO_PROXY='*' LUMU_REVISION=abc1234

ok() { pass=$((pass + 1)); }
bad() {
  fail=$((fail + 1))
  printf 'FAIL: %s\n  rc=%s\n  stdout: %s\n  stderr: %s\n' "$1" "${rc:-}" "$(printf '%s' "${out:-}" | tail -n 5)" \
    "$(printf '%s' "${err:-}" | tail -n 10)" >&2
}
check() { if eval "$2"; then ok; else bad "$1"; fi; }

# The canaries found in a text (one word each), or nothing.
found_in() {
  local c text=$1
  for c in $CANARIES ${ECRPW:+$ECRPW}; do
    case $text in *"$c"*) printf '%s ' "${c:0:14}..." ;; esac
  done
}

# run LABEL CMD...: runs in $P (stdin /dev/null), then no canary on stdout/stderr
run() {
  local label=$1
  shift
  (cd "${RUNDIR:-$P}" && "$@") >"$TMP/.stdout" 2>"$TMP/.stderr" </dev/null
  rc=$?
  out=$(cat "$TMP/.stdout")
  err=$(cat "$TMP/.stderr")
  runs=$((runs + 1))
  local leaks scan=$out
  # db get-password: the password alone on stdout is its job
  if [ -n "${ALLOW_ON_STDOUT:-}" ] && [ "$out" = "$ALLOW_ON_STDOUT" ]; then scan=; fi
  leaks=$(found_in "$scan$err")
  if [ -n "$leaks" ]; then bad "$label: canary in the output: $leaks"; else ok; fi
  case $err in *"internal error"*) [ "${EXPECT_INTERNAL:-}" = 1 ] || bad "$label: internal error" ;; esac
}
want_rc() { if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi; }

MODES=("" "--verbose" "--debug" "--output json")
# every mode of a read-only command: run_modes LABEL lumu ARGS...
run_modes() {
  local label=$1 m
  shift
  for m in "${MODES[@]}"; do
    # shellcheck disable=SC2086
    run "$label $m" "$@" $m
  done
  run "$label LUMU_AWS_DEBUG=1" env LUMU_AWS_DEBUG=1 "$@" --verbose --debug
}

cp "$SRC/scripts/example/lumu.lua" "$P/lumu.lua"
printf 'FROM scratch\n' >"$P/Dockerfile"
cat >"$TMP/bin/docker" <<'EOF'
#!/bin/sh
# stand-in docker: records its arguments, the mode of $DOCKER_CONFIG, and
# writes the login password where the real one would (config.json)
echo "$*" >>"$DOCKER_LOG"
case $1 in
  login)
    stat -c %a "$DOCKER_CONFIG" >"$DOCKER_LOG.mode"
    echo "$DOCKER_CONFIG" >"$DOCKER_LOG.dir"
    pw=$(cat)
    printf '%s' "$pw" >"$DOCKER_LOG.stdin"
    printf '{"auths":{"x":{"auth":"%s"}}}\n' "$pw" >"$DOCKER_CONFIG/config.json"
    ;;
esac
exit 0
EOF
chmod +x "$TMP/bin/docker"
export DOCKER_LOG=$TMP/docker.log

# offline commands ---------------------------------------------------------------------------------
run_modes "validate" "$LUMU" validate
run "synth" "$LUMU" synth -o "$P/synth-out"
want_rc "synth" 0
run "synth --format yaml" "$LUMU" synth -o "$P/synth-yaml" --format yaml
run "nag" "$LUMU" nag "$P/synth-out"
run "nag -o json" "$LUMU" nag -o json "$P/synth-out"
run "up --dryrun" "$LUMU" up --dryrun -O "$P/dry-up" --verbose --debug
want_rc "up --dryrun" 0
run "pipeline up -t --dryrun" "$LUMU" pipeline up -t "$GH" --dryrun -O "$P/dry-pipeline" --verbose
want_rc "pipeline up -t --dryrun" 0

# deploy, then the canary password (its KMS key is a stack output) ---------------------------------------
run "up --yes (verbose, debug, json)" "$LUMU" up --yes --verbose --debug --output json --outputs-file "$P/outputs.json"
want_rc "up --yes" 0
printf '%s\n' "$DBPW" >"$TMP/pw"
run "db set-password --password-stdin" sh -c "'$LUMU' db set-password acceptance --password-stdin --verbose <'$TMP/pw'"
want_rc "db set-password" 0
run "db up (verbose)" "$LUMU" db up acceptance --yes --verbose
want_rc "db up" 0
ALLOW_ON_STDOUT=$DBPW run "db get-password" "$LUMU" db get-password acceptance
check "db get-password prints the canary password (and only it) on stdout" '[ "$(cat "$TMP/.stdout")" = "$DBPW" ]'
run_modes "diff" "$LUMU" diff
run_modes "env list" "$LUMU" env list
run_modes "env show" "$LUMU" env show acceptance
run_modes "db list" "$LUMU" db list
run_modes "pipeline list" "$LUMU" pipeline list
# (fakeaws has no CodePipeline: these wait out its 501s once, in one mode)
run "pipeline show (verbose, debug)" "$LUMU" pipeline show --verbose --debug
run "svc show (verbose, debug, json)" "$LUMU" svc show --verbose --debug --output json
run "env up (verbose, debug)" "$LUMU" env up acceptance --yes --verbose --debug
run "pipeline up -t TOKEN (verbose, debug)" "$LUMU" pipeline up -t "$GH" --yes --verbose --debug
want_rc "pipeline up -t" 0
run "svc push (verbose)" env PATH="$TMP/bin:$PATH" "$LUMU" svc push --yes --verbose
want_rc "svc push" 0
ECRPW=$(cat "$DOCKER_LOG.stdin" 2>/dev/null)
check "svc push: the stand-in docker got the ECR password" '[ -n "$ECRPW" ]'
check "svc push: docker credentials directory is 0700" '[ "$(cat "$DOCKER_LOG.mode" 2>/dev/null)" = 700 ]'
check "svc push: docker credentials directory removed" '[ ! -e "$(cat "$DOCKER_LOG.dir")" ]'
check "svc push: the ECR password never on a command line" '! grep -q -F -- "$ECRPW" "$DOCKER_LOG"'
run "svc deploy (verbose, debug)" "$LUMU" svc deploy acceptance --yes --verbose --debug
run "svc show after deploy (verbose, debug)" "$LUMU" svc show --verbose --debug

# the aws command and scripts ------------------------------------------------------------------------
run "aws sts get-caller-identity --debug" "$LUMU" aws sts get-caller-identity --debug
want_rc "aws sts get-caller-identity" 0
run "aws --profile canary --debug" "$LUMU" aws sts get-caller-identity --profile canary --debug
want_rc "aws --profile canary" 0
run "aws cloudformation describe-stacks --debug -o yaml" "$LUMU" aws cloudformation describe-stacks --debug -o yaml
run "aws ssm put-parameter (a secret in the body) --debug" "$LUMU" aws ssm put-parameter --debug \
  --json-args "{\"Name\": \"/canary/x\", \"Value\": \"$DBPW\", \"Type\": \"SecureString\"}"
want_rc "aws ssm put-parameter" 0
run "aws ssm put-parameter: a model error next to a secret" "$LUMU" aws ssm put-parameter --debug \
  --json-args "{\"Name\": \"/canary/y\", \"Value\": \"$DBPW\", \"Type\": \"SecureString\", \"Overwrite\": \"yes\"}"
want_rc "model error: exit 2" 2
run "aws ssm get-parameter (no decryption) --debug" "$LUMU" aws ssm get-parameter --debug \
  --json-args '{"Name": "/canary/x"}'
run "aws with LUMU_AWS_DEBUG=1" env LUMU_AWS_DEBUG=1 "$LUMU" aws sts get-caller-identity
run "-e: a client, the credentials, a signed request's error" "$LUMU" -e '
  local aws = require "lumu.aws"
  local c = assert(aws.client("sts"))
  print(c)
  local chain = require("lumu.aws.credentials").chain { config = c.config }
  local creds = assert(chain:get())
  print(creds, chain)
  local _, err = aws.client("sts", { credentials = { access_key_id = os.getenv("AWS_ACCESS_KEY_ID"),
    secret_access_key = "wrong" } }):GetCallerIdentity {}
  print(err)
  error(err)'
run "repl (stdin)" sh -c "printf '%s\n' 'c = require(\"lumu.aws\").client(\"sts\")' 'c' 'c:GetCallerIdentity{}' \
  'require(\"lumu.aws.credentials\").chain{config = c.config}:get()' | '$LUMU' repl"

# error paths ---------------------------------------------------------------------------------------
run "wrong secret key: SignatureDoesNotMatch" env AWS_SECRET_ACCESS_KEY="$SK2" "$LUMU" env list --verbose --debug
want_rc "wrong secret: exit 1" 1
check "wrong secret: the error is named" 'case $err in *SignatureDoesNotMatch*) true ;; *) false ;; esac'
run "wrong secret key: aws --debug" env AWS_SECRET_ACCESS_KEY="$SK2" "$LUMU" aws cloudformation describe-stacks --debug
run "wrong session token" env AWS_SESSION_TOKEN="$ST-x" "$LUMU" diff --verbose --output json
"$PY" - "$E" "$AK" <<'EOF'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/__fake/credentials",
                             data=json.dumps({sys.argv[2]: {"expiration": 1}}).encode(), method="POST")
urllib.request.urlopen(req)
EOF
run "expired token: ExpiredToken" "$LUMU" up --yes --verbose --debug
want_rc "expired token: exit 1" 1
check "expired token: the error is named" 'case $err in *ExpiredToken*) true ;; *) false ;; esac'
run "expired token: aws --debug" "$LUMU" aws sts get-caller-identity --debug
"$PY" - "$E" "$AK" <<'EOF'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/__fake/credentials",
                             data=json.dumps({sys.argv[2]: {"expiration": None}}).encode(), method="POST")
urllib.request.urlopen(req)
EOF

# a GitHub token pasted into the configuration: refused, not echoed
cp "$SRC/scripts/example/lumu.lua" "$BAD/lumu.lua"
cat >>"$BAD/lumu.lua" <<'EOF'
pipeline {
  name = "token-in-config",
  source = { repo = "cplee/aftp-mu", branch = "main", tokenSecret = os.getenv("GITHUB_TOKEN") },
}
EOF
RUNDIR=$BAD run "validate: a token as tokenSecret" "$LUMU" validate --debug
check "validate: a token as tokenSecret is an error" '[ "$rc" != 0 ]'
RUNDIR=$BAD run "synth: a token as tokenSecret" "$LUMU" synth -o "$BAD/out"
RUNDIR=$BAD run "up: a token as tokenSecret" "$LUMU" up --yes --verbose --debug

# an internal error in the middle of a deploy, with and without --debug
cp -RL "$SRC/stdlib" "$TMP/stdlib"
"$PY" - "$TMP/stdlib/lumu/deploy/render.lua" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read()
# wrap render.new so each renderer raises from its first event
assert s.rstrip().endswith("return M")
s = s.rstrip()[:-len("return M")] + "return M\n"
s = s.replace("\nreturn M\n", "\nlocal _new = M.new\nfunction M.new(...)\n  local r = _new(...)\n"
              "  r.event = function() local t = nil; return t.boom end\n  return r\nend\nreturn M\n")
open(p, "w").write(s)
EOF
EXPECT_INTERNAL=1 run "internal error during up" env LUMU_STDLIB="$TMP/stdlib" "$LUMU" up --yes --verbose
want_rc "internal error: exit 3" 3
EXPECT_INTERNAL=1 run "internal error during up --debug" env LUMU_STDLIB="$TMP/stdlib" "$LUMU" up --yes --verbose --debug
check "internal error --debug: a traceback" 'case $err in *"stack traceback"*) true ;; *) false ;; esac'
EXPECT_INTERNAL=1 run "internal error during env terminate --debug" env LUMU_STDLIB="$TMP/stdlib" "$LUMU" \
  env terminate acceptance --yes --debug
# out of memory at assorted points (the allocator fails the Nth allocation)
for n in 2000 20000 60000 120000; do
  EXPECT_INTERNAL=1 run "failed allocation $n in aws --debug" env LUMU_TRACK_ALLOC=1 LUMU_FAIL_ALLOC=$n \
    "$LUMU" aws sts get-caller-identity --debug
  EXPECT_INTERNAL=1 run "failed allocation $n in diff --verbose" env LUMU_TRACK_ALLOC=1 LUMU_FAIL_ALLOC=$n \
    "$LUMU" diff --verbose --debug
done

# TLS verification cannot be turned off for AWS ---------------------------------------------------
run "http: verify=false for an AWS endpoint raises" "$LUMU" -e '
  local http = require "lumu.http"
  for _, u in ipairs { "https://sts.amazonaws.com/", "https://cloudformation.us-east-1.amazonaws.com:443/",
    "HTTPS://s3.cn-north-1.amazonaws.com.cn/x", "https://sts.us-east-1.api.aws/" } do
    local ok, e = pcall(http.get, u, { verify = false, timeout = 1 })
    assert(not ok and tostring(e):find("cannot be turned off", 1, true), u .. ": " .. tostring(e))
  end
  print("refused")'
check "http: verify=false refused for every AWS host" '[ "$rc" = 0 ] && [ "$out" = refused ]'
run "aws --no-verify-ssl does not exist" "$LUMU" aws sts get-caller-identity --no-verify-ssl
want_rc "--no-verify-ssl: usage error" 2
run "up --no-verify-ssl does not exist" "$LUMU" up --yes --no-verify-ssl
want_rc "up --no-verify-ssl: usage error" 2
if command -v openssl >/dev/null 2>&1; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TMP/key.pem" \
    -out "$TMP/cert.pem" -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
  "$PY" "$SRC/tests/support/httpd.py" --tls "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/tls.out" 2>/dev/null &
  TLSPID=$!
  TPORT=
  for _ in $(seq 1 100); do
    TPORT=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$TMP/tls.out")
    [ -n "$TPORT" ] && break
    sleep 0.1
  done
  for v in CURL_INSECURE=1 CURLOPT_SSL_VERIFYPEER=0 AWS_CLI_SSL_NO_VERIFY=1 PYTHONHTTPSVERIFY=0 \
      SSL_NO_VERIFY=1 GIT_SSL_NO_VERIFY=1 NODE_TLS_REJECT_UNAUTHORIZED=0; do
    run "https endpoint, unknown certificate, $v" env "$v" "$LUMU" aws sts get-caller-identity \
      --endpoint-url "https://127.0.0.1:$TPORT"
    check "$v: still verified (TLS error, exit 1)" '[ "$rc" = 1 ] && case $err in *tls*|*certificate*|*SSL*) true ;; *) false ;; esac'
  done
else
  echo "secrets.sh: no openssl: TLS endpoint checks skipped" >&2
fi

# tear down (with secrets in play), then the files -------------------------------------------------------
run "env terminate --debug" "$LUMU" env terminate acceptance --yes --verbose --debug
run "pipeline terminate --debug" "$LUMU" pipeline terminate --yes --verbose --debug
run "db terminate production --debug" "$LUMU" db terminate production --yes --verbose --debug --allow-data-loss
run "purge --debug" "$LUMU" purge --confirm --allow-data-loss --verbose --debug --output json
want_rc "purge" 0

# every file left in $HOME, the projects and $TMPDIR (our own credentials file aside)
scan_leaks=
while IFS= read -r -d '' f; do
  [ "$f" = "$H/.aws/credentials" ] && continue
  for c in $CANARIES ${ECRPW:+$ECRPW}; do
    if grep -q -F -- "$c" "$f" 2>/dev/null; then scan_leaks="$scan_leaks $f(${c:0:14}...)"; fi
  done
done < <(find "$H" "$P" "$BAD" "$T" -type f -print0)
check "no canary in any file lumu wrote (HOME, projects, TMPDIR, synth and dry-run output):$scan_leaks" \
  '[ -z "$scan_leaks" ]'
check "synth and dry-run output exist (the scan saw them)" \
  '[ -s "$P/synth-out/README.txt" ] && [ -n "$(ls "$P/dry-up")" ] && [ -n "$(ls "$P/dry-pipeline")" ]'
check "TMPDIR left empty: $(ls -A "$T" | head -5 | tr '\n' ' ')" '[ -z "$(ls -A "$T")" ]'
lumu_files=$(find "$H" -newer "$TMP/fake/creds.json" -type f ! -path "$H/.aws/*" | head -5)
check "nothing written in HOME: $lumu_files" '[ -z "$lumu_files" ]'

printf 'secrets.sh: %d runs (commands x modes) checked; %d passed, %d failed\n' "$runs" "$pass" "$fail"
[ "$fail" = 0 ]
