# Multi-account deploy against tests/support/fakeaws: `lumu org up` (the
# organization in the management account = the caller's, the log archive
# stack in its account), `lumu up --env acceptance` and `lumu env up
# production` (each environment in its own account, reached by assuming its
# deploy role; the image repository in the tools account), `lumu pipeline up` (the pipeline in the tools account, the
# cross-account stages' projects in the environments' accounts).  fakeaws's
# STS hands out credentials bound to the role's account and its
# CloudFormation records, per stack, the account of the credentials that
# created it: every stack must have landed in the right account, created by
# the right principal.  Also: org diff (exit 0 after up), org show (JSON), an
# AssumeRole refused (the stack fails, nothing lands elsewhere) and org
# without an organization (exit 2).
# Usage: bash tests/cli/org_accounts.sh path/to/lumu
set -u

LUMU=${1:?usage: org_accounts.sh path/to/lumu}
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
  CODEBUILD_RESOLVED_SOURCE_VERSION AWS_SESSION_TOKEN AWS_DEFAULT_REGION CI LUMU_CFN_ROLE_ARN \
  http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY NO_PROXY='*'
pass=0 fail=0

NAME=org_accounts.sh
. "$SRC/tests/cli/lib/fakeaws.sh"
fakeaws_start

post() { # post PATH JSON
  "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST", headers={"Content-Type": "application/json"}))' "$E$1" "$2"
}

# where: every stack of fakeaws as "account name status created-by-account created-by-arn"
where() {
  "$PY" - "$E" <<'EOF'
import json, sys, urllib.request
st = json.load(urllib.request.urlopen(sys.argv[1] + "/__fake/state"))
for acct, regions in sorted(st["accounts"].items()):
    for region, services in sorted(regions.items()):
        for s in services.get("cloudformation", {}).get("stacks", {}).values():
            c = s.get("_created_by") or {}
            print(acct, s["StackName"], s["StackStatus"], c.get("account"), c.get("arn"))
EOF
}
# landed STACK ACCOUNT: the live stack STACK exists in ACCOUNT only, created there by credentials of ACCOUNT
landed() {
  where >"$TMP/where.txt"
  awk -v n="$1" -v a="$2" '
    $2 == n && $3 != "DELETE_COMPLETE" { live++; if ($1 == a && $4 == a) good++ }
    END { exit !(live == 1 && good == 1) }' "$TMP/where.txt"
}

# `lumu org` until the lead registers it in lumu.cli: the same dispatcher
cat >"$TMP/lumu-org.lua" <<'EOF'
local cli = require "lumu.cli"
if not cli.commands.org then cli.register("org", "lumu.cli.org", { aliases = { "organization" } }) end
local argv = { [0] = "lumu" }
for i = 1, #arg do argv[i] = arg[i] end
os.exit(cli.main(argv))
EOF
L() { "$LUMU" "$TMP/lumu-org.lua" "$@"; }

mkdir "$TMP/project"
cd "$TMP/project"
cat >lumu.lua <<'EOF'
namespace "acme"
organization {
  account = "123456789012",            -- the caller's own account (fakeaws's AKIDEXAMPLE)
  rootId = "r-a1b2",
  units = { { name = "Workloads" } },
  accounts = { { name = "log-archive", id = "200000000000" },
    { name = "sandbox", email = "sandbox@example.com", unit = "Workloads" } },
  guardrails = { regions = { "us-east-1" } },
  logArchive = "log-archive",
  vending = { unit = "Workloads" },
}
tools { account = "300000000000", role = "arn:aws:iam::300000000000:role/OrganizationAccountAccessRole" }
environment { name = "acceptance", provider = "ecs-fargate", account = "400000000000" }
environment { name = "production", provider = "ecs-fargate", account = "500000000000",
  role = "arn:aws:iam::500000000000:role/prod-deploy" }
service { name = "orders", port = 8080, pathPatterns = { "/orders/*" } }
pipeline { source = { repo = "acme/orders", branch = "main" } }
devenv { environment = "acceptance", members = { { name = "alice", ownerArn = "arn:aws:iam::400000000000:user/alice" } } }
EOF

# org up: management account (the caller) and the log archive account -----------------------
run L org up --yes
expect_rc "org up" 0
check "org up: acme-org in the management account" 'landed acme-org 123456789012'
check "org up: log archive stack in 200000000000" 'landed acme-org-logarchive 200000000000'
check "org up: log archive created by the assumed OrganizationAccountAccessRole" \
  'grep -q "^200000000000 acme-org-logarchive CREATE_COMPLETE 200000000000 arn:aws:sts::200000000000:assumed-role/OrganizationAccountAccessRole/" "$TMP/where.txt"'
check "org up: vending product in the management account" 'landed acme-product-account-vending 123456789012'
check "org up: catalog portfolio in the management account" 'landed acme-portfolio-common 123456789012'
run L org diff
expect_rc "org diff after up: no changes (exit 0)" 0
run L org show --output json
expect_out "org show: the log archive's account" 0 '"account": "200000000000"'
expect_out "org show: the guardrails" 0 '"name": "acme-region-allow-list"'
run L org show
expect_out "org show (text): status" 0 "CREATE_COMPLETE"

# an AssumeRole refused: the production stacks fail, nothing lands anywhere ------------------
post /__fake/config '{"deny_assume": ["arn:aws:iam::500000000000:role/*"]}'
run L env up production --yes
expect_rc "env up production with AssumeRole refused fails" 1
check "refused: the reason is shown" 'case "$out$err" in *AccessDenied*|*"not authorized"*) true ;; *) false ;; esac'
check "refused: no production stack anywhere" '! where | grep -q "acme-environment-production"'
post /__fake/config '{"deny_assume": []}'

# the acceptance environment and everything in it: account 400000000000 ------------------------
run L up --env acceptance --yes
expect_rc "up --env acceptance" 0
for s in acme-iam-common acme-vpc-acceptance acme-loadbalancer-acceptance acme-environment-acceptance \
  acme-iam-service-orders-acceptance acme-service-orders-acceptance acme-devenv-acceptance; do
  check "up --env acceptance: $s in 400000000000" "landed $s 400000000000"
done
check "up --env acceptance: the image repository acme-repo-orders in the tools account" \
  'landed acme-repo-orders 300000000000'
check "acceptance: created with the deploy role acme-deploy" \
  'grep -q "^400000000000 acme-environment-acceptance CREATE_COMPLETE 400000000000 arn:aws:sts::400000000000:assumed-role/acme-deploy/" "$TMP/where.txt"'

# production: account 500000000000 with its own role ----------------------------------------------
run L env up production --yes
expect_rc "env up production" 0
check "production: environment in 500000000000" 'landed acme-environment-production 500000000000'
check "production: created with the given role prod-deploy" \
  'grep -q "^500000000000 acme-environment-production CREATE_COMPLETE 500000000000 arn:aws:sts::500000000000:assumed-role/prod-deploy/" "$TMP/where.txt"'

# the pipeline: tools account, its cross-account stages in the environments' accounts -----------
run L pipeline up --yes
expect_rc "pipeline up" 0
check "pipeline in the tools account" 'landed acme-pipeline-orders 300000000000'
check "pipeline IAM in the tools account" 'landed acme-iam-pipeline-orders 300000000000'
check "acceptance projects in 400000000000" 'landed acme-pipeline-orders-acceptance 400000000000'
check "production projects in 500000000000" 'landed acme-pipeline-orders-production 500000000000'
check "every stack was created by credentials of its own account" \
  'where | awk "\$3 != \"DELETE_COMPLETE\" && \$1 != \$4 { bad = 1 } END { exit bad }"'
check "no stack of the project in an account it does not belong to" \
  '! where | awk "\$3 != \"DELETE_COMPLETE\"" | grep -Eq "^(123456789012|300000000000) acme-(environment|vpc)-"'
run L diff
expect_rc "lumu diff of the pipeline and environments after all: runs per account" 2
run L pipeline terminate --yes
expect_err "pipeline terminate: production's stage stack is protected" 1 \
  "acme-pipeline-orders-production  termination protection is on"
run L pipeline terminate --yes --allow-data-loss
expect_rc "pipeline terminate --allow-data-loss" 0
where >"$TMP/where.txt"
for st in acme-pipeline-orders acme-iam-pipeline-orders acme-pipeline-orders-acceptance acme-pipeline-orders-production; do
  check "pipeline terminate: $st deleted" '! grep -E "^[0-9]+ $st " "$TMP/where.txt" | grep -vq DELETE_COMPLETE'
done
check "pipeline terminate: the environments stay" 'landed acme-environment-production 500000000000'

# misuse -----------------------------------------------------------------------------------------
mkdir "$TMP/plain"
cd "$TMP/plain"
printf 'environment { name = "a" }\n' >lumu.lua
run L org up --yes
expect_err "org without an organization: exit 2" 2 "the configuration has no organization"
run L org up extra
expect_err "org up with an argument: exit 2" 2 "unexpected argument 'extra'"

echo "org_accounts.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
