# `lumu synth`: writes templates/parameters/tags + README.txt for the bundled
# example (databases and a pipeline included, no warning); a broken
# configuration exits 2 and writes nothing (not even into an existing output
# directory); usage errors exit 2; --format yaml; stale files of an earlier
# run are removed, other files are kept, unchanged ones are not rewritten;
# --env limits the environments;
# --schemas runs the registry schema checker; the catalog's product
# templates go to assets/; a catalog-provision entry is listed without
# template; the pipelines' repository comes from the git checkout.
# Usage: bash tests/cli/synth.sh path/to/lumu
set -eu

LUMU=${1:?usage: synth.sh path/to/lumu}
case $LUMU in /*) ;; *) LUMU=$PWD/$LUMU ;; esac
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${LUMU_SHARED:-$SRC/../shared}
TMP=$(mktemp -d)
trap 'chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT
unset LUA_INIT LUA_INIT_5_4 LUA_PATH LUA_PATH_5_4 LUMU_DEBUG MU_NAMESPACE
pass=0 fail=0

run() {
  set +e
  "$@" >"$TMP/.stdout" 2>"$TMP/.stderr"
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
cp "$SRC/scripts/example/lumu.lua" "$SRC/scripts/example/mu.yml" "$TMP/"

# the bundled example ------------------------------------------------------------
run "$LUMU" synth -c lumu.lua -o out
expect_out "synth example: table header" 0 "stack"
expect_out "synth example: service row" 0 "mu-service-sample-service-acceptance"
expect_rc "synth example" 0
check "synth example: no warning" '[ -z "$err" ]'
expect_out "synth example: database row" 0 "mu-database-sample-service-production     database"
expect_out "synth example: pipeline row" 0 "mu-pipeline-sample-service"
check "synth example: template written" '[ -s out/mu-service-sample-service-acceptance.template.json ]'
check "synth example: parameters written" \
  'grep -q "\"ParameterKey\": \"ServiceName\"" out/mu-service-sample-service-acceptance.parameters.json'
check "synth example: tags written" 'grep -q "\"Key\": \"mu:type\"" out/mu-vpc-acceptance.tags.json'
check "synth example: README indexes the stacks" 'grep -q "mu-repo-sample-service (repo)" out/README.txt'
n=$(ls out | grep -c '\.template\.json$' || true)
check "synth example: 18 stacks" '[ "$n" = 18 ]'
check "synth example: no password value anywhere" '! grep -rqi "hunter\|\"MasterUserPassword\": \"" out'
check "synth example: no assets" '[ ! -e out/assets ]'
check "synth example: no temp dirs left" '[ -z "$(ls -A . | grep lumu-synth || true)" ]'

# mu.yml gives the same templates
run "$LUMU" synth -c mu.yml -o out-yml
expect_rc "synth mu.yml" 0
check "synth mu.yml == lumu.lua templates" \
  'for f in out/*.template.json out/*.parameters.json out/*.tags.json; do cmp -s "$f" "out-yml/${f#out/}" || exit 1; done'

# the config found in the current directory: lumu.lua first
run "$LUMU" synth -o out-default
expect_rc "synth without -c" 0
check "synth without -c reads lumu.lua" 'grep -q "lumu.lua" out-default/README.txt'

# a broken configuration: exit 2, nothing written ---------------------------------
printf 'environments:\n  - name: a\n    provider: nope\n' > broken.yml
run "$LUMU" synth -c broken.yml -o never
expect_rc "broken config exits 2" 2
expect_err "broken config: error line" 2 "broken.yml:3:"
check "broken config: no output dir" '[ ! -e never ]'
check "broken config: no temp dir" '[ -z "$(ls -A . | grep lumu-synth || true)" ]'
before=$(ls -l out | md5sum)
run "$LUMU" synth -c broken.yml -o out
expect_rc "broken config into an existing dir exits 2" 2
check "broken config: existing dir untouched" '[ "$(ls -l out | md5sum)" = "$before" ]'

# a configuration error found while generating: exit 2, nothing written
printf 'environments: [{name: a}]\nservice:\n  name: s\n  environment: {X: "${Nope}"}\n' > gen-error.yml
run "$LUMU" synth -c gen-error.yml -o never
expect_err "generation error names the key" 2 "service.environment.X"
check "generation error: nothing written" '[ ! -e never ]'

# an override naming a parameter the stack does not have
printf 'environments: [{name: a}]\nparameters:\n  mu-vpc-a:\n    NoSuchParameter: x\n' > param-error.yml
run "$LUMU" synth -c param-error.yml -o never
expect_err "unknown parameter override" 2 "has no parameter 'NoSuchParameter'"

# template problems: exit 1, reported per stack, nothing written
printf 'environments: [{name: a}]\ntemplates:\n  mu-vpc-a:\n    Resources:\n      Extra: {Type: "AWS::SNS::Topic", Properties: {TopicName: {Ref: Nowhere}}}\n' > bad-ref.yml
run "$LUMU" synth -c bad-ref.yml -o never
expect_err "an override with a dangling Ref exits 1" 1 "mu-vpc-a: Resources.Extra"
expect_err "template problems are counted" 1 "template problem"
check "template problems: nothing written" '[ ! -e never ]'
if [ -d "$SHARED/cfn/schemas" ]; then
  printf 'environments: [{name: a}]\ntemplates:\n  mu-vpc-a:\n    Resources:\n      Extra: {Type: "AWS::SNS::Topic", Properties: {NoSuchProperty: 1}}\n' > bad-prop.yml
  run "$LUMU" synth -c bad-prop.yml -o never
  expect_rc "an unknown property passes without --schemas" 0
  rm -rf never
  run "$LUMU" synth -c bad-prop.yml -o never --schemas "$SHARED/cfn"
  expect_err "--schemas catches an unknown property" 1 "NoSuchProperty"
  check "schema problems: nothing written" '[ ! -e never ]'
fi

# usage errors --------------------------------------------------------------------
run "$LUMU" synth -c lumu.lua --format xml -o never
expect_err "bad --format" 2 "--format must be json or yaml"
run "$LUMU" synth -c lumu.lua stray -o never
expect_err "stray argument" 2 "unexpected argument 'stray'"
run "$LUMU" synth -c lumu.lua --env nope -o never
expect_err "unknown --env" 2 "no environment named 'nope'"
check "usage errors write nothing" '[ ! -e never ]'
mkdir empty && cd empty
run "$LUMU" synth -o never
expect_err "no config in the directory" 2 "no lumu.lua or mu.yml"
cd ..

# --env, --format yaml, stale files -------------------------------------------------
touch out/keep-me.txt out/mu-gone.template.json
run "$LUMU" synth -c lumu.lua -o out --env production --format yaml
expect_rc "synth --env production --format yaml" 0
check "yaml templates written" '[ -s out/mu-service-sample-service-production.template.yaml ]'
check "--env: acceptance left out" '[ ! -e out/mu-vpc-acceptance.template.yaml ]'
check "stale outputs removed" '[ ! -e out/mu-gone.template.json ] && [ ! -e out/mu-vpc-acceptance.template.json ]'
check "other files kept" '[ -e out/keep-me.txt ]'
check "yaml is long-form" '! grep -q "!Ref" out/mu-service-sample-service-production.template.yaml'

# a rerun updates in place: unchanged files are not rewritten, a changed one
# is replaced whole, leftovers of a killed run are removed
f=out/mu-vpc-production.template.yaml
g=out/mu-service-sample-service-production.template.yaml
touch -d '2001-01-01 00:00:00' "$f" "$g"
ino=$(stat -c %i "$f")
printf 'edited\n' >"$g"
touch out/.lumu-synth-12345.tmp
run "$LUMU" synth -c lumu.lua -o out --env production --format yaml
expect_rc "rerun into the same directory" 0
check "rerun: an unchanged file is left alone (same inode, old mtime)" \
  '[ "$(stat -c %i "$f")" = "$ino" ] && [ "$(stat -c %Y "$f")" = "$(date -d "2001-01-01 00:00:00" +%s)" ]'
check "rerun: a changed file is rewritten" 'grep -q "AWS::ECS::Service" "$g"'
check "rerun: a leftover temporary file is removed" '[ ! -e out/.lumu-synth-12345.tmp ]'
check "rerun: other files kept" '[ -e out/keep-me.txt ]'

# the catalog: assets, and a pipeline provisioned from it ----------------------------
cat > catalog.yml <<'YML'
environments: [{name: acceptance}, {name: production}]
catalog:
  iamUsers: [alice]
  pipelines:
    - name: standard
      versions:
        v1: {source: {provider: GitHub}}
        v2: {source: {provider: CodeCommit}}
service:
  name: billing
  pipeline:
    catalog: {name: standard, version: v1}
    source:
      repo: acme/billing
      connectionArn: arn:aws:codestar-connections:us-east-1:111111111111:connection/0c4b0f7e-1a2b-4c3d-9e8f-001122334455
YML
mkdir -p cat-out/assets/products/old && touch cat-out/assets/products/old/stale.json
run "$LUMU" synth -c catalog.yml -o cat-out
expect_out "catalog: product row with its assets" 0 "2 assets (product templates)"
expect_out "catalog: provision row" 0 "no template: provisions standard v1 from Service Catalog"
n=$(find cat-out/assets -name 'pipeline-*.json' | wc -l)
check "catalog: two version templates under assets/" '[ "$n" = 2 ]'
check "catalog: stale assets removed" '[ ! -e cat-out/assets/products/old ]'
check "catalog: the version templates are JSON templates" \
  'grep -q "AWS::CodePipeline::Pipeline" cat-out/assets/products/standard/v1/pipeline-*.json'
check "catalog: README lists the provision entry" 'grep -q "mu-billing (catalog-provision).*no template" cat-out/README.txt'
check "catalog: README names the assets" 'grep -q "assets/products/standard/v2/pipeline-" cat-out/README.txt'
check "catalog: provision parameters written, no template" \
  '[ -s cat-out/mu-billing.parameters.json ] && [ ! -e cat-out/mu-billing.template.json ]'
run "$LUMU" synth -c lumu.lua -o cat-out
check "catalog: assets dropped when no longer produced" '[ ! -e cat-out/assets ]'

# git: the pipeline's repository from .git/config ------------------------------------
mkdir -p gitrepo/.git gitrepo/app
printf '[core]\n\tbare = false\n[remote "origin"]\n\turl = git@github.com:acme/shop.git\n' > gitrepo/.git/config
printf 'ref: refs/heads/release\n' > gitrepo/.git/HEAD
printf 'environments: [{name: acceptance}, {name: production}]\nservice:\n  name: shop\n  pipeline: {}\n' \
  > gitrepo/app/mu.yml
run "$LUMU" synth -c gitrepo/app/mu.yml -o git-out
expect_rc "git: a pipeline without source.repo" 0
check "git: repo from the remote" 'grep -A1 SourceRepo git-out/mu-pipeline-shop.parameters.json | grep -q "acme/shop"'
check "git: branch from HEAD" 'grep -A1 SourceBranch git-out/mu-pipeline-shop.parameters.json | grep -q release'
check "git: config directory relative to the root" 'grep -q "\"app\"" git-out/mu-pipeline-shop.template.json'
cp gitrepo/app/mu.yml nogit.yml
run "$LUMU" synth -c nogit.yml -o never
expect_err "no git: the missing repository is an error naming the key" 2 \
  "service.pipeline.source.repo: not set and no git remote was detected"

# --schemas -------------------------------------------------------------------------
if [ -d "$SHARED/cfn/schemas" ]; then
  run "$LUMU" synth -c lumu.lua -o out-schemas --schemas "$SHARED/cfn"
  expect_rc "synth --schemas: the example is clean" 0
  run "$LUMU" synth -c lumu.lua -o never --schemas "$TMP/no-such-dir"
  expect_err "synth --schemas with a bad dir" 2 "--schemas"
fi

# an unwritable output location: exit 1 ---------------------------------------------
mkdir ro && chmod 500 ro
if [ ! -w ro ]; then
  run "$LUMU" synth -c lumu.lua -o ro/out
  expect_err "unwritable output" 1 "cannot write"
fi

printf 'synth.sh: %d passed, %d failed\n' "$pass" "$fail"
[ "$fail" = 0 ]
