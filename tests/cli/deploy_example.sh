# End to end against tests/support/fakeaws (a local SigV4-checking AWS
# endpoint): `lumu up --yes` of the bundled example, `lumu diff` after it
# (exit 0), `db up` keeping the SSM password it made once, `svc push` with a
# stand-in docker (the ECR password only on its stdin), `env terminate`,
# `diff` exit 2, no prompt and exit 4 without a terminal, a dry run making
# no AWS call (fakeaws's call log), `purge --confirm`.
# Usage: bash tests/cli/deploy_example.sh path/to/lumu
set -u

LUMU=${1:?usage: deploy_example.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
FAKEPID=
cleanup() {
  if [ -n "$FAKEPID" ]; then kill "$FAKEPID" 2>/dev/null; wait "$FAKEPID" 2>/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
unset LUA_INIT LUA_INIT_5_4 LUA_PATH LUA_PATH_5_4 LUMU_DEBUG MU_NAMESPACE LUMU_REVISION AWS_PROFILE \
  CODEBUILD_RESOLVED_SOURCE_VERSION LUMU_CONTAINER_ENGINE AWS_SESSION_TOKEN AWS_DEFAULT_REGION CI \
  http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY NO_PROXY='*'
pass=0 fail=0

NAME=deploy_example.sh
RUN_LOG=$TMP/all-output
. "$SRC/tests/cli/lib/fakeaws.sh"
fakeaws_start

cd "$TMP"
cp "$SRC/scripts/example/lumu.lua" lumu.lua

# lumu up --yes: the whole example ---------------------------------------------------------
run "$LUMU" up --yes
expect_rc "up --yes of the example" 0
check "up: every create went through a change set" '[ "$(fake_calls cloudformation ExecuteChangeSet)" -ge 18 ]'
check "up: no direct CreateStack/UpdateStack" '[ "$(fake_calls cloudformation CreateStack)" = 0 ] && [ "$(fake_calls cloudformation UpdateStack)" = 0 ]'
check "up: one SSM password per database" '[ "$(fake_calls ssm PutParameter)" = 2 ]'
run "$LUMU" env list
expect_out "env list: acceptance" 0 "mu-environment-acceptance"
expect_out "env list: production" 0 "mu-environment-production"
run "$LUMU" db list --output json
expect_out "db list --output json" 0 '"stack": "mu-database-sample-service-production"'

# lumu diff after it: no changes ---------------------------------------------------------------
run "$LUMU" diff
expect_rc "diff after up: no changes (exit 0)" 0

# the password: created once, kept, printed only by get-password -------------------------------
run "$LUMU" db up acceptance --yes
expect_rc "db up again" 0
check "db up again keeps the password" '[ "$(fake_calls ssm PutParameter)" = 2 ]'
run "$LUMU" db get-password acceptance
expect_rc "db get-password" 0
PW=$out
check "the password: 32 alphanumerics" 'printf "%s" "$PW" | grep -Eq "^[A-Za-z0-9]{32}$"'
check "the password never appeared in other output" '[ "$(grep -c -F -- "$PW" all-output)" = 1 ]'

# env show --------------------------------------------------------------------------------------------
run "$LUMU" env show acceptance --format shell
expect_out "env show -f shell" 0 "export BASE_URL="
run "$LUMU" env show production
expect_out "env show: provider" 0 "Provider:    ecs"

# svc push with a stand-in docker -----------------------------------------------------------------------
mkdir bin
cat > bin/docker <<'EOF'
#!/bin/sh
echo "$*" >> "$DOCKER_LOG"
case $1 in
  login) cat > "$DOCKER_LOG.stdin" ;;
esac
exit 0
EOF
chmod +x bin/docker
printf 'FROM scratch\n' > Dockerfile
export DOCKER_LOG=$TMP/docker.log
run env PATH="$TMP/bin:$PATH" LUMU_REVISION=abc1234 "$LUMU" svc push --yes
expect_out "svc push prints the image" 0 ":abc1234"
check "svc push: login, build, push" '[ "$(cut -d" " -f1 docker.log | tr "\n" " ")" = "login build push " ]'
check "svc push: the ECR password went over stdin" '[ -s docker.log.stdin ]'
check "svc push: never on a command line" '! grep -q -F -- "$(cat docker.log.stdin)" docker.log'
check "svc push: ECR token asked once" '[ "$(fake_calls ecr GetAuthorizationToken)" = 1 ]'

# env terminate ------------------------------------------------------------------------------------------
run "$LUMU" env terminate acceptance --yes
expect_rc "env terminate acceptance" 0
run "$LUMU" env list
check "terminate: acceptance gone" 'case $out in *mu-environment-acceptance*) false ;; *) true ;; esac'
expect_out "terminate: production kept" 0 "mu-environment-production"
run "$LUMU" db get-password acceptance
expect_err "terminate: the managed password is deleted too" 1 "does not exist"

# diff with changes; no prompt without a terminal -----------------------------------------------------------
run "$LUMU" diff
expect_rc "diff with stacks missing: exit 2" 2
fake_calls_reset
run "$LUMU" env up acceptance
expect_rc "env up without --yes and without a terminal: exit 4" 4
check "exit 4: nothing executed" '[ "$(fake_calls cloudformation ExecuteChangeSet)" = 0 ]'
run "$LUMU" env list
check "exit 4: acceptance still absent" 'case $out in *mu-environment-acceptance*) false ;; *) true ;; esac'

# a dry run makes no AWS call --------------------------------------------------------------------------------
fake_calls_reset
run "$LUMU" up --dryrun -O "$TMP/dry"
expect_err "up --dryrun" 0 "nothing deployed"
check "dry run: files written" '[ -s dry/mu-vpc-acceptance.template.json ]'
check "dry run: no AWS call" '[ "$(fake_calls)" = 0 ]'

# purge --------------------------------------------------------------------------------------------------------
run "$LUMU" purge
expect_err "purge without --confirm and without a terminal: exit 4" 4 "--confirm"
run "$LUMU" purge --confirm --allow-data-loss
expect_rc "purge --confirm" 0
run "$LUMU" env list --output json
expect_out "purge: nothing left" 0 "[]"

printf 'deploy_example.sh: %d passed, %d failed\n' "$pass" "$fail"
[ "$fail" = 0 ]
