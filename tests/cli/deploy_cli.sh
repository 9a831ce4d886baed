# The deploy command surface without AWS: help and usage errors of env, svc,
# db, pipeline, catalog, up, diff, purge, init; mu's global flags before the
# command; aliases; `lumu init` writing a project whose spec passes under
# `lumu test`; dry runs writing files; `svc push` without a container
# engine; `db set-password` without a terminal.  No network: every AWS
# endpoint is an unroutable URL and no command here may reach it.
# Usage: bash tests/cli/deploy_cli.sh path/to/lumu
set -eu

LUMU=${1:?usage: deploy_cli.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
unset LUA_INIT LUA_INIT_5_4 LUA_PATH LUA_PATH_5_4 LUMU_DEBUG MU_NAMESPACE LUMU_REVISION \
  CODEBUILD_RESOLVED_SOURCE_VERSION LUMU_CONTAINER_ENGINE AWS_PROFILE
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=not-used AWS_ENDPOINT_URL=http://192.0.2.1:9 \
  AWS_MAX_ATTEMPTS=1 NO_PROXY='*'
pass=0 fail=0

run() {
  set +e
  "$@" >"$TMP/.stdout" 2>"$TMP/.stderr" </dev/null
  rc=$?
  set -e
  out=$(cat "$TMP/.stdout")
  err=$(cat "$TMP/.stderr")
}
ok() { pass=$((pass + 1)); }
bad() {
  fail=$((fail + 1))
  printf 'FAIL: %s\n  rc=%s\n  stdout: %s\n  stderr: %s\n' "$1" "$rc" "$out" "$err" >&2
}
expect_rc() { if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi; }
expect_out() {
  case $out in *"$3"*) if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi ;;
  *) bad "$1 (want stdout containing '$3')" ;; esac
}
expect_err() {
  case $err in *"$3"*) if [ "$rc" = "$2" ]; then ok; else bad "$1 (want rc=$2)"; fi ;;
  *) bad "$1 (want stderr containing '$3')" ;; esac
}
check() { if eval "$2"; then ok; else bad "$1"; fi; }

cd "$TMP"
cp "$SRC/scripts/example/lumu.lua" lumu.lua

# help and the command list ---------------------------------------------------------
run "$LUMU" help
for c in env svc db pipeline catalog init purge up diff; do
  case $out in *"  $c "*) ok ;; *) bad "help lists $c" ;; esac
done
run "$LUMU" help env
expect_out "help env: subcommands" 0 "terminate (term)"
run "$LUMU" env --help
expect_out "env --help" 0 "up (upsert)"
run "$LUMU" env up --help
expect_out "env up --help: its own option" 0 "-A, --all"
expect_out "env up --help: the shared flags" 0 "--assume-role"
run "$LUMU" environment up --help
expect_out "alias environment" 0 "Usage: lumu env up"
run "$LUMU" service deploy --help
expect_out "alias service" 0 "Usage: lumu svc deploy"
run "$LUMU" database gp --help
expect_out "alias database + gp" 0 "Usage: lumu db get-password"
run "$LUMU" cat up --help
expect_out "alias cat" 0 "Usage: lumu catalog up"
run "$LUMU" diff --help
expect_out "diff --help: exit codes" 0 "2 changes"

# usage errors: one line, exit 2 (diff: 1) ---------------------------------------------
run "$LUMU" env
expect_err "env without subcommand" 2 "lumu: env: missing subcommand"
run "$LUMU" env upp
expect_err "env: did you mean" 2 "did you mean 'up'"
run "$LUMU" env up --bogus
expect_err "env up: unknown option" 2 "lumu: env up: unknown option '--bogus'"
run "$LUMU" env up qa
expect_err "env up: unknown environment" 2 "unknown environment 'qa'"
check "usage errors are one line" '[ "$(printf "%s\n" "$err" | wc -l)" = 1 ]'
run "$LUMU" env up acceptance --output yaml
expect_err "--output checked" 2 "--output must be text or json"
run "$LUMU" env up acceptance --concurrency 0
expect_err "--concurrency checked" 2 "--concurrency"
run "$LUMU" diff --bogus
expect_err "diff: usage errors exit 1" 1 "unknown option '--bogus'"
run "$LUMU" up extra
expect_err "up: no positional argument" 2 "use --env NAME"
run "$LUMU" svc push -p gcr
expect_err "svc push: bad provider" 2 "--provider must be ecr or s3"

# global flags before the command (mu's syntax) -----------------------------------------
run "$LUMU" -n other -d -O "$TMP/dry-ns" env up acceptance
expect_rc "global flags before the command" 0
check "namespace from the global flag" '[ -f dry-ns/other-vpc-acceptance.template.json ]'
run "$LUMU" env -n other2 -d -O "$TMP/dry-ns2" up acceptance
check "global flags before the subcommand" '[ -f dry-ns2/other2-vpc-acceptance.template.json ]'
run "$LUMU" -n ns bogus
expect_err "global flags need a known command" 2 "unknown command 'bogus'"
run "$LUMU" -n
expect_err "global flag without its value" 2 "needs a value"
run "$LUMU" -n ns
expect_err "global flags alone" 2 "need a command"

# dry runs: files, no AWS ------------------------------------------------------------------
run "$LUMU" up --dryrun -O "$TMP/dry-all"
expect_err "up --dryrun" 0 "18 stacks written"
check "up --dryrun: README" 'grep -q "mu-service-sample-service-production (service)" dry-all/README.txt'
check "up --dryrun: parameters" '[ -s dry-all/mu-database-sample-service-production.parameters.json ]'
run "$LUMU" svc deploy acceptance -d -O "$TMP/dry-svc"
expect_rc "svc deploy --dryrun" 0
check "svc deploy --dryrun: only the service side" '[ "$(ls dry-svc/*.template.json | wc -l)" = 3 ]'
run "$LUMU" env terminate acceptance -d
expect_err "env terminate --dryrun lists" 0 "would delete mu-vpc-acceptance"
run "$LUMU" db up production -d -O "$TMP/dry-db"
expect_err "db up --dryrun: the password step is named" 0 "would create SSM SecureString"
run "$LUMU" purge -d
expect_err "purge --dryrun refused" 2 "cannot list"

# svc push: no container engine -----------------------------------------------------------
printf 'FROM scratch\n' > Dockerfile
run env PATH=/nonexistent "$LUMU" svc push
expect_err "svc push without docker or podman" 1 "no container engine: install docker or podman"

# db set-password: no terminal --------------------------------------------------------------
run "$LUMU" db set-password acceptance
expect_err "set-password without a terminal" 2 "pipe the password with --password-stdin"
check "set-password: no prompt was written" '[ "$(printf "%s" "$err" | grep -c "password for")" = 0 ]'

# init ----------------------------------------------------------------------------------------
mkdir fresh
run "$LUMU" init fresh -e
expect_out "init writes lumu.lua" 0 "wrote fresh/lumu.lua"
expect_out "init writes the buildspecs" 0 "wrote fresh/buildspec-prod.yml"
run "$LUMU" synth -c fresh/lumu.lua -o fresh-out
expect_rc "the starter project synthesizes" 0
(cd fresh && "$LUMU" test spec/lumu_spec.lua >"$TMP/.spec" 2>&1) && ok || bad "the starter spec passes: $(cat "$TMP/.spec")"
run "$LUMU" init fresh
expect_err "init never overwrites" 1 "exists: nothing written"
run "$LUMU" init mu-style --mu
expect_out "init --mu" 0 "wrote mu-style/mu.yml"
run "$LUMU" validate -c mu-style/mu.yml
expect_rc "the starter mu.yml validates" 0

printf 'deploy_cli.sh: %d passed, %d failed\n' "$pass" "$fail"
[ "$fail" = 0 ]
