-- Accounts and guardrails as code (issue #9): organization{...} /
-- organization:, tools, profiles, environment account/role/profile and
-- devenv{...} -> the model (checks with file:line and did-you-mean) ->
-- `<ns>-org` (units, accounts, service control policies with the default
-- guardrails), `<ns>-org-logarchive`, the account vending product (launch
-- role, product, its template asset and the StackSet baseline), the
-- cross-account pipeline stacks and `<ns>-devenv-<env>` (Cloud9).  Every
-- template passes cfn.check, the registry schemas (LUMU_SHARED/cfn) and lumu
-- nag with no failure and no warning.  Also: where each stack is deployed
-- (descriptor.account/profile/role), the deploy engine's per-stack client
-- and the session's per-account credentials.
local config = require "lumu.config"
local synth = require "lumu.synth"
local cfn = require "lumu.cfn"
local nag = require "lumu.nag"
local json = require "lumu.json"
local fs = require "lumu.fs"
local org = require "lumu.gen.org"
local vending = require "lumu.gen.vending"
local devenv = require "lumu.gen.devenv"

local SHARED = os.getenv("LUMU_SHARED") or "../shared"
local checker = assert(cfn.schema.open(SHARED .. "/cfn"))
local EXAMPLE = "scripts/org-example/lumu.lua"

local function load(text, name)
  name = name or "mu.yml"
  local m, p = config.load_string(text, { filename = name, dir = ".", dirname = "app", getenv = function() end })
  if not m then error(config.format_error(p[1]), 2) end
  return m, p
end

local function problems(text, name)
  local m, p = config.load_string(text, { filename = name or "mu.yml", dir = ".", dirname = "app",
    getenv = function() end })
  assert.is_nil(m, "expected configuration errors")
  local out = {}
  for i, x in ipairs(p) do out[i] = config.format_error(x) end
  return out
end

local function has(list, needle)
  for _, l in ipairs(list) do
    if l:find(needle, 1, true) then return true end
  end
  return false, "no line contains '" .. needle .. "' in:\n" .. table.concat(list, "\n")
end

local function plan(text, opts, name)
  local m = load(text, name)
  opts = opts or {}
  opts.schemas = checker
  local stacks, report = synth.plan(m, opts)
  local by = {}
  for _, d in ipairs(stacks) do by[d.name] = d end
  return stacks, report, by, m
end

local function of_type(tpl, typ)
  local out = {}
  for id, r in pairs(tpl.Resources) do
    if r.Type == typ then out[#out + 1] = id end
  end
  table.sort(out)
  return out
end

-- cfn.check + schemas + nag: no problem, no failure, no warning
local function clean(tpl, what)
  local p = cfn.check(tpl, { schemas = checker })
  assert.are.same({}, p, what .. ": " .. cfn.format(p))
  require("lumu.gen.nag").annotate(tpl)
  local r = nag.scan(tpl)
  local f, w = nag.counts(r)
  assert.are.equal(0, f, what)
  assert.are.equal(0, w, what)
end

local ORG = [[
namespace: acme
organization:
  account: "100000000000"
  rootId: r-a1b2
  units:
    - name: Security
    - name: Workloads
    - name: Production
      parent: Workloads
  accounts:
    - name: log-archive
      id: "200000000000"
    - name: sandbox
      email: sandbox@example.com
      unit: Workloads
      tags: {team: platform}
  guardrails:
    regions: [eu-west-1]
  logArchive: log-archive
]]

describe("organization in the model", function()
  it("is nil without the key; defaults: every guardrail on, attached to the root", function()
    assert.is_nil(load("environments: []\n").organization)
    local o = load(ORG).organization
    local g = o.guardrails
    for _, k in ipairs({ "leaveOrganization", "cloudTrail", "config", "guardDuty", "rootUser" }) do
      assert.is_true(g[k], k)
    end
    assert.are.same({ "Root" }, g.targets)
    assert.are.same({ "eu-west-1" }, g.regions)
    assert.are.same({}, g.exemptRoles)
    assert.are.equal("Workloads", o.units[3].parent)
    assert.are.same({ team = "platform" }, o.accounts[2].tags)
    assert.is_nil(o.vending)
  end)

  it("lumu.lua gives the same model and stacks as mu.yml, several organization{} calls merged", function()
    local lua = [[
namespace "acme"
organization { account = "100000000000", rootId = "r-a1b2", units = { { name = "Security" } } }
organization { units = { { name = "Workloads" }, { name = "Production", parent = "Workloads" } },
  accounts = { { name = "log-archive", id = "200000000000" } } }
organization { accounts = { { name = "sandbox", email = "sandbox@example.com", unit = "Workloads",
  tags = { team = "platform" } } }, guardrails = { regions = { "eu-west-1" } }, logArchive = "log-archive" }
]]
    local a = org.stacks(load(lua, "lumu.lua"), {})
    local b = org.stacks(load(ORG), {})
    assert.are.equal(#b, #a)
    for i = 1, #a do
      assert.are.equal(json.encode(b[i].template), json.encode(a[i].template), b[i].name)
    end
  end)

  it("environment account/role/profile, tools and profiles", function()
    local m = load([[
tools: {account: "300000000000", profile: tools}
profiles: {"400000000000": acme-acceptance}
environments:
  - name: acceptance
    account: "400000000000"
  - name: production
    account: "500000000000"
    role: arn:aws:iam::500000000000:role/deployer
    profile: prod
]])
    assert.are.equal("400000000000", m.environments[1].account)
    assert.is_nil(m.environments[1].role)
    assert.are.equal("arn:aws:iam::500000000000:role/deployer", m.environments[2].role)
    assert.are.equal("prod", m.environments[2].profile)
    assert.are.same({ account = "300000000000", profile = "tools" },
      { account = m.tools.account, profile = m.tools.profile })
    assert.are.same({ ["400000000000"] = "acme-acceptance" }, m.profiles)
  end)

  it("reports every mistake with file:line and did-you-mean", function()
    local p = problems([[
environments:
  - name: acceptance
    account: "4000"
    role: arn:aws:iam::111111111111:role/x
organization:
  units:
    - name: Security
      parent: Nope
    - name: Security
  accounts:
    - name: sandbox
    - name: other
      email: a@example.com
    - name: third
      email: A@example.com
  guardrails:
    regionz: [eu-west-1]
    regions: [moon]
  policies:
    - name: p
      statements: [{Effect: Maybe}]
      targets: [Secrity]
  logArchive: sandbx
devenvs:
  - environment: acceptanse
    members:
      - name: alice
        ownerArn: not-an-arn
profiles: {"12": x}
]])
    assert(has(p, "mu.yml:3:5: environments[1].account: expected a 12-digit AWS account id, got '4000'"))
    assert(has(p, "environments[1].role: the role is in account 111111111111, not in the environment's account 4000"))
    assert(has(p, "mu.yml:8:7: organization.units[1].parent: parent 'Nope' is not an organizational unit"))
    assert(has(p, "organization.units[2].name: duplicate organizational unit 'Security'"))
    assert(has(p, "organization.accounts[1]: a new account needs email (or give id: an existing account)"))
    assert(has(p, "organization.accounts[3].email: email 'A@example.com' is used by two accounts"))
    assert(has(p, "organization.guardrails: unknown key 'regionz' (did you mean 'regions'?)"))
    assert(has(p, "organization.guardrails.regions[1]: expected an AWS region like eu-west-1, got 'moon'"))
    assert(has(p, "organization.policies[1].statements[1]: expected a statement mapping with Effect Allow or Deny"))
    assert(has(p, "target 'Secrity' is not Root, a unit, an account or an account id (did you mean 'Security'?)"))
    assert(has(p, "organization.logArchive: 'sandbx' is not in organization.accounts (did you mean 'sandbox'?)"))
    assert(has(p, "organization.rootId: needed"))
    assert(has(p, "devenvs[1].environment: environment 'acceptanse' is not defined (environments: acceptance) "
      .. "(did you mean 'acceptance'?)"))
    assert(has(p, "devenvs[1].members[1].ownerArn: expected an IAM user or role ARN"))
    assert(has(p, "profiles[\"12\"]: bad name: expected a 12-digit AWS account id"))
  end)

  it("lumu.lua mistakes name the line of the call", function()
    local p = problems([[
environment { name = "acceptance" }

organization { rootId = "r-a1b2", unitz = {} }
devenv { environment = "acceptance", members = { { name = "bob" } } }
tools { account = "1" }
]], "lumu.lua")
    assert(has(p, "lumu.lua:3: organization: unknown key 'unitz' (did you mean 'units'?)"))
    assert(has(p, "lumu.lua:4: devenvs[1].members[1]: missing required key 'ownerArn'"))
    assert(has(p, "lumu.lua:5: tools.account: expected a 12-digit AWS account id"))
  end)

  it("a unit cycle, vending without a trail bucket, role without account are errors", function()
    local p = problems([[
environments:
  - name: a
    role: arn:aws:iam::111111111111:role/x
organization:
  rootId: r-a1b2
  units:
    - {name: A, parent: B}
    - {name: B, parent: A}
  vending: {}
]])
    assert(has(p, "organizational units form a cycle of parents"))
    assert(has(p, "organization.vending.trailBucket: needed"))
    assert(has(p, "environments[1].role: role needs account"))
  end)

  it("hostile input: deep statements, many units and odd bytes fail cleanly or work", function()
    -- a statement nested deeper than the model copies: an error, not a crash
    local chunk = "organization { rootId = 'r-a1b2', policies = { { name = 'p', targets = { 'Root' }, "
      .. "statements = { { Effect = 'Deny', Action = '*', Resource = '*', Condition = " .. string.rep("{ x = ", 150)
      .. "1" .. string.rep(" }", 150) .. " } } } } }"
    local pm, pp = config.load_string(chunk, { filename = "lumu.lua", getenv = function() end })
    assert.is_nil(pm)
    assert(has((function() local o = {} for i, x in ipairs(pp) do o[i] = config.format_error(x) end return o end)(),
      "nested more than 100 levels deep"))
    -- 300 units: fine (one resource each)
    local units = {}
    for i = 1, 300 do units[i] = string.format("{ name = 'u%d' }", i) end
    local big = load("organization { rootId = 'r-a1b2', units = { " .. table.concat(units, ", ") .. " } }", "lumu.lua")
    local tpl = org.template(big, { namespace = "acme" })
    assert.are.equal(300, #of_type(tpl, "AWS::Organizations::OrganizationalUnit"))
    -- bad bytes in names are refused
    local bad = problems("organization:\n  rootId: r-a1b2\n  units:\n    - name: \"a\\u0001b\"\n")
    assert(has(bad, "organization.units[1].name: must start with a letter or digit"))
  end)
end)

describe("the <ns>-org stack", function()
  local m = load(ORG)
  local stacks = assert(org.stacks(m, {}))
  local d = stacks[1]
  local r = d.template.Resources

  it("units under their parents, accounts kept on delete, in the management account", function()
    assert.are.equal("acme-org", d.name)
    assert.are.equal("org", d.kind)
    assert.are.equal("100000000000", d.account)
    assert.are.same({ Namespace = "acme", RootId = "r-a1b2" }, d.parameters)
    assert.are.same({ Ref = "RootId" }, r.UnitSecurity.Properties.ParentId)
    assert.are.same({ ["Fn::GetAtt"] = { "UnitWorkloads", "Id" } }, r.UnitProduction.Properties.ParentId)
    local a = r.AccountSandbox
    assert.are.equal("AWS::Organizations::Account", a.Type)
    assert.are.equal("Retain", a.DeletionPolicy)
    assert.are.equal("Retain", a.UpdateReplacePolicy)
    assert.are.same({ { ["Fn::GetAtt"] = { "UnitWorkloads", "Id" } } }, a.Properties.ParentIds)
    assert.are.equal("OrganizationAccountAccessRole", a.Properties.RoleName)
    assert.are.same({ Key = "team", Value = "platform" }, a.Properties.Tags[2])
    assert.is_nil(r.AccountLogArchive) -- an existing account: not created
    assert.is_table(d.template.Outputs.UnitProductionId.Export)
    assert.is_table(d.template.Outputs.AccountSandboxId)
    clean(d.template, d.name)
  end)

  it("the default guardrails: leave, audit services, root user, regions; attached to the root", function()
    local pols = of_type(d.template, "AWS::Organizations::Policy")
    assert.are.same({ "GuardrailAuditServices", "GuardrailLeaveOrganization", "GuardrailRegionAllowList",
      "GuardrailRootUser" }, pols)
    for _, id in ipairs(pols) do
      local p = r[id].Properties
      assert.are.equal("SERVICE_CONTROL_POLICY", p.Type)
      assert.are.same({ { Ref = "RootId" } }, p.TargetIds)
      assert.is_true(#json.encode(p.Content) <= org.MAX_POLICY, id)
    end
    local leave = r.GuardrailLeaveOrganization.Properties.Content.Statement[1]
    assert.are.same({ "organizations:LeaveOrganization" }, leave.Action)
    assert.are.equal("Deny", leave.Effect)
    local audit = r.GuardrailAuditServices.Properties.Content.Statement
    assert.are.same({ "ProtectCloudTrail", "ProtectConfig", "ProtectGuardDuty" }, { audit[1].Sid, audit[2].Sid, audit[3].Sid })
    assert.contains(audit[1].Action, "cloudtrail:StopLogging")
    assert.contains(audit[1].Action, "cloudtrail:DeleteTrail")
    assert.contains(audit[1].Action, "cloudtrail:UpdateTrail")
    assert.contains(audit[2].Action, "config:StopConfigurationRecorder")
    assert.contains(audit[2].Action, "config:DeleteConfigurationRecorder")
    assert.contains(audit[3].Action, "guardduty:DeleteDetector")
    assert.contains(audit[3].Action, "guardduty:DisassociateFromMasterAccount")
    assert.contains(audit[3].Action, "guardduty:UpdateDetector")
    assert.are.same({ "arn:aws:iam::*:role/stacksets-exec-*" }, audit[1].Condition.ArnNotLike["aws:PrincipalArn"])
    local root = r.GuardrailRootUser.Properties.Content.Statement[1]
    assert.are.same({ "*" }, root.Action)
    assert.are.same({ ["aws:PrincipalArn"] = "arn:aws:iam::*:root" }, root.Condition.ArnLike)
    local reg = r.GuardrailRegionAllowList.Properties.Content.Statement[1]
    assert.is_nil(reg.Action)
    assert.contains(reg.NotAction, "iam:*")
    assert.contains(reg.NotAction, "sts:*")
    assert.contains(reg.NotAction, "organizations:*")
    assert.contains(reg.NotAction, "cloudfront:*")
    assert.contains(reg.NotAction, "route53:*")
    assert.contains(reg.NotAction, "support:*")
    assert.are.same({ ["aws:RequestedRegion"] = { "eu-west-1" } }, reg.Condition.StringNotEquals)
  end)

  it("each guardrail can be turned off; exempt roles; other targets; custom policies", function()
    local m2 = load([[
organization:
  rootId: r-a1b2
  units: [{name: Workloads}]
  accounts: [{name: legacy, id: "222222222222"}, {name: team, email: t@example.com}]
  guardrails:
    leaveOrganization: false
    cloudTrail: false
    guardDuty: false
    rootUser: off
    exemptRoles: [break-glass, "admin-*"]
    targets: [Workloads, legacy, "333333333333"]
  policies:
    - name: no-public-amis
      statements:
        - {Effect: Deny, Action: ec2:ModifyImageAttribute, Resource: "*"}
      targets: [team, Root]
]])
    local t = org.template(m2, { namespace = "x" })
    local rr = t.Resources
    assert.are.same({ "GuardrailAuditServices", "PolicyNoPublicAmis" }, of_type(t, "AWS::Organizations::Policy"))
    local st = rr.GuardrailAuditServices.Properties.Content.Statement
    assert.are.equal(1, #st)
    assert.are.equal("ProtectConfig", st[1].Sid)
    assert.are.same({ "arn:aws:iam::*:role/stacksets-exec-*", "arn:aws:iam::*:role/break-glass",
      "arn:aws:iam::*:role/admin-*" }, st[1].Condition.ArnNotLike["aws:PrincipalArn"])
    assert.are.same({ { ["Fn::GetAtt"] = { "UnitWorkloads", "Id" } }, "222222222222", "333333333333" },
      rr.GuardrailAuditServices.Properties.TargetIds)
    assert.are.same({ { ["Fn::GetAtt"] = { "AccountTeam", "AccountId" } }, { Ref = "RootId" } },
      rr.PolicyNoPublicAmis.Properties.TargetIds)
    assert.are.equal("x-no-public-amis", rr.PolicyNoPublicAmis.Properties.Name)
    assert.are.equal("ec2:ModifyImageAttribute", rr.PolicyNoPublicAmis.Properties.Content.Statement[1].Action)
    clean(t, "guardrails off")
    -- every guardrail off and nothing else: a placeholder keeps the stack valid
    local m3 = load("organization:\n  guardrails: {leaveOrganization: false, cloudTrail: false, config: false, "
      .. "guardDuty: false, rootUser: false, targets: []}\n")
    local t3 = org.template(m3, { namespace = "x" })
    assert.are.same({ "Placeholder" }, (function() local k = {} for id in pairs(t3.Resources) do k[#k + 1] = id end
      return k end)())
    assert.is_nil(t3.Parameters.RootId)
    clean(t3, "empty organization")
  end)

  it("a policy over 5,120 characters is a generation error naming it", function()
    local st = {}
    for i = 1, 120 do st[i] = string.format("{ Sid = 'S%d', Effect = 'Deny', Action = 'ec2:RunInstances', "
      .. "Resource = 'arn:aws:ec2:*:*:instance/%s' }", i, string.rep("x", 20)) end
    local big = load("organization { rootId = 'r-a1b2', policies = { { name = 'huge', targets = { 'Root' }, "
      .. "statements = { " .. table.concat(st, ", ") .. " } } } }", "lumu.lua")
    local s, err = org.stacks(big, {})
    assert.is_nil(s)
    assert.matches("^organization%.policies%[1%]: the policy mu%-huge is %d+ characters; service control policies "
      .. "hold at most 5120", err)
    local _, report = synth.plan(big, {})
    assert.are.equal(1, #report.errors)
    assert.are.equal("organization.policies[1]", report.errors[1].key)
    assert.are.equal("lumu.lua:1", report.errors[1].where)
  end)

  it("the log archive stack: the trail bucket in its account, writable by the baseline trails", function()
    local la = stacks[2]
    assert.are.equal("acme-org-logarchive", la.name)
    assert.are.equal("200000000000", la.account)
    assert.are.equal("arn:aws:iam::200000000000:role/OrganizationAccountAccessRole", la.role)
    assert.are.same({ "acme-org" }, la.depends)
    local b = la.template.Resources.TrailBucket
    assert.are.equal("acme-org-trail-200000000000", b.Properties.BucketName)
    assert.are.equal("Retain", b.DeletionPolicy)
    local st = la.template.Resources.TrailBucketPolicy.Properties.PolicyDocument.Statement
    assert.are.equal("Deny", st[1].Effect)
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:cloudtrail:*:*:trail/acme-baseline" },
      st[3].Condition.ArnLike["aws:SourceArn"])
    clean(la.template, la.name)
    -- with the organization id, every service statement is scoped to it
    local m2 = load((ORG:gsub("rootId: r%-a1b2", "rootId: r-a1b2\n  id: o-a1b2c3d4e5")))
    local st2 = assert(org.stacks(m2, {}))[2].template.Resources.TrailBucketPolicy.Properties.PolicyDocument.Statement
    for i = 2, 5 do
      assert.are.equal("o-a1b2c3d4e5", st2[i].Condition.StringEquals["aws:SourceOrgID"], st2[i].Sid)
    end
  end)
end)

describe("account vending", function()
  local text = ORG .. "  vending: {unit: Workloads, regions: [eu-west-1, eu-central-1]}\ntools: {account: \"300000000000\"}\n"
  local _, report, by, m = plan(text)

  it("a product in the catalog portfolio (made when there is no catalog), in the management account", function()
    assert.are.same({}, report.errors)
    for _, n in ipairs({ "acme-bucket-servicecatalog", "acme-iam-portfolio-common", "acme-portfolio-common",
      "acme-iam-vending", "acme-product-account-vending" }) do
      assert.is_table(by[n], n)
      assert.are.equal("100000000000", by[n].account, n)
      assert.are.same({}, by[n].problems, n)
    end
    local p = by["acme-product-account-vending"]
    assert.are.equal("product", p.kind)
    assert.are.same({ PortfolioId = "acme-portfolio-common-PortfolioId", VendingRoleArn = "acme-iam-vending-VendingRoleArn",
      CatalogBucket = "acme-bucket-servicecatalog-Bucket" }, p.parameters)
    assert.contains(p.depends, "acme-org")
    assert.matches("^products/account%-vending/v1/vending%-%x+%.json$", p.assets[1].key)
    local lc = p.template.Resources.LaunchConstraint.Properties
    assert.are.same({ ["Fn::ImportValue"] = { ["Fn::Sub"] = "${VendingRoleArn}" } }, lc.RoleArn)
    local role = by["acme-iam-vending"].template.Resources.VendingLaunchRole
    local actions = {}
    for _, s in ipairs(role.Properties.Policies[1].PolicyDocument.Statement) do
      for _, a in ipairs(s.Action) do actions[a] = true end
    end
    assert.is_true(actions["organizations:CreateAccount"])
    assert.is_true(actions["cloudformation:CreateStackSet"])
    assert.is_true(actions["cloudformation:CreateStackInstances"])
    clean(by["acme-iam-vending"].template, "acme-iam-vending")
    clean(p.template, p.name)
  end)

  it("the product template: an account in its unit and a SERVICE_MANAGED StackSet on exactly it", function()
    local t = json.decode(by["acme-product-account-vending"].assets[1].body)
    clean(t, "vending product template")
    local a = t.Resources.Account
    assert.are.equal("AWS::Organizations::Account", a.Type)
    assert.are.equal("Retain", a.DeletionPolicy)
    local parent = { ["Fn::ImportValue"] = "acme-org-UnitWorkloadsId" }
    assert.are.same({ parent }, a.Properties.ParentIds)
    assert.are.equal("300000000000", t.Parameters.ToolsAccount.Default)
    assert.are.equal("acme-org-trail-200000000000", t.Parameters.TrailBucket.Default)
    assert.are.equal("acme-deploy", t.Parameters.DeployRoleName.Default)
    local s = t.Resources.Baseline.Properties
    assert.are.equal("SERVICE_MANAGED", s.PermissionModel)
    assert.are.same({ "CAPABILITY_NAMED_IAM" }, s.Capabilities)
    local g = s.StackInstancesGroup[1]
    assert.are.same({ parent }, g.DeploymentTargets.OrganizationalUnitIds)
    assert.are.same({ { ["Fn::GetAtt"] = { "Account", "AccountId" } } }, g.DeploymentTargets.Accounts)
    assert.are.equal("INTERSECTION", g.DeploymentTargets.AccountFilterType)
    assert.are.same({ "eu-west-1", "eu-central-1" }, g.Regions)
    assert.is_string(s.TemplateBody)
    assert.are.same(vending.baseline_template("acme"), json.decode(s.TemplateBody))
  end)

  it("the baseline: trail to the log archive, Config recorder, a deploy role trusting the tools pipelines", function()
    local b = vending.baseline_template("acme")
    clean(b, "baseline")
    local tr = b.Resources.Trail.Properties
    assert.are.same({ Ref = "TrailBucket" }, tr.S3BucketName)
    assert.is_true(tr.IsMultiRegionTrail)
    assert.is_true(tr.EnableLogFileValidation)
    assert.are.equal("acme-baseline", tr.TrailName)
    assert.are.equal("AWS::Config::ConfigurationRecorder", b.Resources.ConfigRecorder.Type)
    assert.are.equal("config", b.Resources.DeliveryChannel.Properties.S3KeyPrefix)
    local trust = b.Resources.DeployRole.Properties.AssumeRolePolicyDocument.Statement[1]
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:iam::${ToolsAccount}:root" }, trust.Principal.AWS)
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:iam::${ToolsAccount}:role/${Namespace}/pipeline/*" },
      trust.Condition.ArnLike["aws:PrincipalArn"])
    assert.are.same({ Ref = "DeployRoleName" }, b.Resources.DeployRole.Properties.RoleName)
  end)

  it("a given trail bucket and the root; no vending: no stacks", function()
    local m2 = load("organization:\n  rootId: r-a1b2\n  vending: {trailBucket: my-trails, name: accounts}\n")
    local s = assert(vending.stacks(m2, { namespace = "x" }))
    local product = s[#s]
    assert.are.equal("x-product-accounts", product.name)
    local t = json.decode(product.assets[1].body)
    assert.are.equal("my-trails", t.Parameters.TrailBucket.Default)
    assert.are.same({ "r-a1b2" }, t.Resources.Account.Properties.ParentIds)
    assert.is_nil(t.Parameters.ToolsAccount.Default)
    assert.are.same({}, vending.stacks(load(ORG), {}))
    assert.is_table(m.organization.vending)
  end)
end)

describe("cross-account delivery", function()
  local PIPE = [[
namespace: acme
tools: {account: "300000000000"}
environments:
  - name: acceptance
    account: "400000000000"
  - name: production
    account: "500000000000"
    role: arn:aws:iam::500000000000:role/prod-deploy
    profile: prod
service:
  name: orders
  pipeline:
    source: {repo: acme/orders, branch: main}
]]
  local stacks, report, by = plan(PIPE)

  it("the stage actions assume the environments' deploy roles (action RoleArn)", function()
    assert.are.same({}, report.errors)
    local p = by["acme-pipeline-orders"].template.Resources.Pipeline.Properties
    local roles = {}
    for _, st in ipairs(p.Stages) do
      for _, a in ipairs(st.Actions) do roles[st.Name .. "/" .. a.Name] = a.RoleArn or false end
    end
    assert.are.equal("arn:aws:iam::400000000000:role/acme-deploy", roles["Acceptance/Deploy"])
    assert.are.equal("arn:aws:iam::400000000000:role/acme-deploy", roles["Acceptance/Test"])
    assert.are.equal("arn:aws:iam::500000000000:role/prod-deploy", roles["Production/Deploy"])
    assert.are.equal("arn:aws:iam::500000000000:role/prod-deploy", roles["Production/Test"])
    assert.is_false(roles["Production/Approve"])
    assert.is_false(roles["Build/Artifact"])
    assert.are.same({ ["Fn::Sub"] = "${Namespace}-pipeline-${ServiceName}-deploy-acceptance" },
      p.Stages[3].Actions[1].Configuration.ProjectName)
  end)

  it("artifact bucket and key grant exactly those accounts; the pipeline role may assume exactly those roles",
    function()
      local r = by["acme-iam-pipeline-orders"].template.Resources
      local roots = { { ["Fn::Sub"] = "arn:${AWS::Partition}:iam::400000000000:root" },
        { ["Fn::Sub"] = "arn:${AWS::Partition}:iam::500000000000:root" } }
      local ks = r.PipelineKey.Properties.KeyPolicy.Statement
      assert.are.equal("OtherAccountsArtifacts", ks[3].Sid)
      assert.are.same(roots, ks[3].Principal.AWS)
      local bs = r.ArtifactBucketPolicy.Properties.PolicyDocument.Statement
      assert.are.same(roots, bs[2].Principal.AWS)
      assert.are.same(roots, bs[3].Principal.AWS)
      assert.are.equal("acme-orders-artifacts-300000000000", r.ArtifactBucket.Properties.BucketName)
      local assume
      for _, s in ipairs(r.CodePipelineRole.Properties.Policies[1].PolicyDocument.Statement) do
        if s.Sid == "AssumeOtherAccountsDeployRoles" then assume = s end
      end
      assert.are.same({ "sts:AssumeRole" }, assume.Action)
      assert.are.same({ "arn:aws:iam::400000000000:role/acme-deploy", "arn:aws:iam::500000000000:role/prod-deploy" },
        assume.Resource)
      -- no deploy role of those stages in the tools account
      assert.is_nil(r.CodeBuildCDAcptRole)
      assert.is_nil(r.CodeBuildCDProdRole)
      clean(by["acme-iam-pipeline-orders"].template, "iam-pipeline")
      clean(by["acme-pipeline-orders"].template, "pipeline")
    end)

  it("each cross-account stage's projects live in a stack in that account", function()
    local a = by["acme-pipeline-orders-acceptance"]
    assert.are.equal("pipeline", a.kind)
    assert.are.equal("acceptance", a.env)
    assert.are.equal("400000000000", a.account)
    assert.are.equal("arn:aws:iam::400000000000:role/acme-deploy", a.role)
    local pr = by["acme-pipeline-orders-production"]
    assert.are.same({ "500000000000", "prod", "arn:aws:iam::500000000000:role/prod-deploy" },
      { pr.account, pr.profile, pr.role })
    local r = a.template.Resources
    assert.are.same({ ["Fn::Sub"] = "${Namespace}-pipeline-${ServiceName}-deploy-acceptance" },
      r.DeployProject.Properties.Name)
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:kms:${AWS::Region}:300000000000:alias/${Namespace}-"
      .. "pipeline-${ServiceName}" }, r.DeployProject.Properties.EncryptionKey)
    local st = r.CodeBuildDeployRole.Properties.Policies[1].PolicyDocument.Statement
    local by_sid = {}
    for _, s in ipairs(st) do by_sid[s.Sid] = s end
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:s3:::acme-orders-artifacts-300000000000/*" },
      by_sid.ArtifactObjects.Resource)
    assert.is_table(by_sid.ArtifactKey.Condition["ForAnyValue:StringEquals"])
    assert.is_table(by_sid.DeployWithServiceRoleOnly)
    assert.contains(by["acme-pipeline-orders"].depends, "acme-pipeline-orders-acceptance")
    -- the tools stacks go to the tools account
    assert.are.equal("300000000000", by["acme-pipeline-orders"].account)
    assert.are.equal("300000000000", by["acme-iam-pipeline-orders"].account)
    clean(a.template, a.name)
    clean(pr.template, pr.name)
    assert.is_table(stacks)
  end)

  it("environment stacks go to their accounts; the common stacks of a one-account selection too", function()
    assert.are.equal("400000000000", by["acme-environment-acceptance"].account)
    assert.are.equal("arn:aws:iam::400000000000:role/acme-deploy", by["acme-environment-acceptance"].role)
    assert.are.equal("prod", by["acme-vpc-production"].profile)
    assert.are.equal("300000000000", by["acme-iam-common"].account) -- all environments: the tools account
    local _, _, sel = plan(PIPE, { environments = { "production" } })
    assert.are.equal("500000000000", sel["acme-iam-common"].account)
    -- the image repository stays where the pipeline pushes, whichever environment is deployed
    assert.are.equal("300000000000", sel["acme-repo-orders"].account)
    assert.are.equal("300000000000", by["acme-repo-orders"].account)
  end)

  it("services in other accounts run the tools account's images: named, not imported; pull granted", function()
    local ecr = { "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer" }
    for _, env in ipairs({ "acceptance", "production" }) do
      local svc = by["acme-service-orders-" .. env]
      local acct = env == "acceptance" and "400000000000" or "500000000000"
      assert.are.equal(acct, svc.account)
      local t = svc.template
      -- exports do not cross accounts: no RepoUrl/RepoArn import anywhere
      assert.is_nil(t.Parameters.RepoUrl)
      assert.are.equal("300000000000", svc.parameters.ImageAccount)
      local c = t.Resources.MicroserviceTaskDefinition.Properties.ContainerDefinitions[1]
      assert.are.same({ ["Fn::Sub"] = "${ImageAccount}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/acme-orders:${ImageTag}" },
        c.Image)
      local iam = by["acme-iam-service-orders-" .. env]
      assert.is_nil(iam.template.Parameters.RepoArn)
      local pull
      for _, st in ipairs(iam.template.Resources.EcsExecutionRole.Properties.Policies[1].PolicyDocument.Statement) do
        if st.Sid == "EcrPull" then pull = st end
      end
      assert.are.same(ecr, pull.Action)
      assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:ecr:${AWS::Region}:300000000000:repository/acme-orders" },
        pull.Resource)
      assert.is_nil(json.encode(svc.parameters):find("acme-repo-orders", 1, true))
      clean(t, svc.name)
      clean(iam.template, iam.name)
    end
    local policy = by["acme-repo-orders"].template.Resources.Repo.Properties.RepositoryPolicyText
    assert.are.same({ { ["Fn::Sub"] = "arn:${AWS::Partition}:iam::400000000000:root" },
      { ["Fn::Sub"] = "arn:${AWS::Partition}:iam::500000000000:root" } }, policy.Statement[1].Principal.AWS)
    assert.are.same(ecr, policy.Statement[1].Action)
    clean(by["acme-repo-orders"].template, "repo")
    -- an environment in the tools account itself imports as before; no policy without other accounts
    local _, _, same = plan((PIPE:gsub("400000000000", "300000000000"):gsub("500000000000", "300000000000")))
    assert.are.equal("acme-repo-orders-RepoUrl", same["acme-service-orders-acceptance"].parameters.RepoUrl)
    assert.is_nil(same["acme-service-orders-acceptance"].parameters.ImageAccount)
    assert.is_nil(same["acme-repo-orders"].template.Resources.Repo.Properties.RepositoryPolicyText)
  end)

  it("needs tools.account; the same account as tools is not cross-account; goldens without accounts", function()
    local m, p = config.load_string((PIPE:gsub("tools: {account: \"300000000000\"}\n", "")),
      { filename = "mu.yml", getenv = function() end, dirname = "x" })
    assert.is_table(m, p and p[1] and config.format_error(p[1]))
    local _, rep = synth.plan(m, {})
    assert.are.equal(1, #rep.errors)
    assert.matches("environment 'acceptance' lives in account 400000000000; set tools.account", rep.errors[1].message)
    assert.are.equal("service.pipeline.acceptance.environment", rep.errors[1].key)
    local _, _, same = plan((PIPE:gsub("300000000000", "400000000000")))
    assert.is_nil(same["acme-pipeline-orders-acceptance"])
    assert.is_table(same["acme-pipeline-orders-production"])
    assert.is_table(same["acme-iam-pipeline-orders"].template.Resources.CodeBuildCDAcptRole)
  end)
end)

describe("devenv", function()
  local DEV = [[
namespace: acme
environments:
  - name: acceptance
    account: "400000000000"
devenvs:
  - environment: acceptance
    automaticStopTimeMinutes: 45
    members:
      - name: alice
        ownerArn: arn:aws:iam::400000000000:user/alice
      - name: bob-smith
        ownerArn: arn:aws:sts::400000000000:assumed-role/dev/bob
        instanceType: t3.large
service:
  name: web
  pipeline:
    source: {provider: CodeCommit, repo: web}
    production: {disabled: true}
]]

  it("one Cloud9 per member in the environment's VPC, auto-stop, owner, the repository cloned", function()
    local _, report, by = plan(DEV, { environments = { "acceptance" } })
    assert.are.same({}, report.errors)
    local d = by["acme-devenv-acceptance"]
    assert.are.equal("devenv", d.kind)
    assert.are.equal("acceptance", d.env)
    assert.are.equal("400000000000", d.account)
    assert.are.same({ "acme-environment-acceptance" }, d.depends)
    assert.are.same({ InstanceSubnetIds = "acme-environment-acceptance-InstanceSubnetIds" }, d.parameters)
    local r = d.template.Resources
    local a, b = r.Cloud9Alice.Properties, r.Cloud9BobSmith.Properties
    assert.are.equal("acme-acceptance-alice", a.Name)
    assert.are.equal("t3.small", a.InstanceType)
    assert.are.equal("t3.large", b.InstanceType)
    assert.are.equal(45, a.AutomaticStopTimeMinutes)
    assert.are.equal("arn:aws:iam::400000000000:user/alice", a.OwnerArn)
    assert.are.equal("CONNECT_SSM", a.ConnectionType)
    assert.are.equal("amazonlinux-2023-x86_64", a.ImageId)
    assert.are.same({ ["Fn::Select"] = { 0, { ["Fn::Split"] = { ",", { ["Fn::ImportValue"] = {
      ["Fn::Sub"] = "${InstanceSubnetIds}" } } } } } }, a.SubnetId)
    assert.are.same({ { PathComponent = "/web", RepositoryUrl = { ["Fn::Sub"] =
      "https://git-codecommit.${AWS::Region}.${AWS::URLSuffix}/v1/repos/web" } } }, a.Repositories)
    assert.are.same({}, d.problems)
    clean(d.template, d.name)
  end)

  it("the repository: given, from GitHub, from git; none is an error located at the devenv", function()
    local gh = (DEV:gsub("{provider: CodeCommit, repo: web}", "{repo: acme/web}"))
    local s = assert(devenv.stacks(load(gh), {}))
    assert.are.equal("https://github.com/acme/web.git", s[1].template.Resources.Cloud9Alice.Properties
      .Repositories[1].RepositoryUrl)
    local given = (DEV:gsub("    automaticStopTimeMinutes: 45\n",
      "    repository: https://git.example.com/team/app.git\n    path: /src\n"))
    local r = assert(devenv.stacks(load(given), {}))[1].template.Resources.Cloud9Alice.Properties.Repositories[1]
    assert.are.same({ PathComponent = "/src", RepositoryUrl = "https://git.example.com/team/app.git" }, r)
    local nopipe = (DEV:gsub("service:.*$", ""))
    local fromgit = assert(devenv.stacks(load(nopipe), { git = { provider = "GitHub", repo = "o/r" } }))
    assert.are.equal("https://github.com/o/r.git",
      fromgit[1].template.Resources.Cloud9Alice.Properties.Repositories[1].RepositoryUrl)
    local none, err = devenv.stacks(load(nopipe), {})
    assert.is_nil(none)
    assert.matches("^devenvs%[1%]%.repository: no pipeline source", err)
    local _, report = synth.plan(load(nopipe), { environments = { "acceptance" } })
    assert.are.equal("devenvs[1].repository", report.errors[1].key)
    assert.are.equal("mu.yml:6:5", report.errors[1].where)
  end)

  it("lumu.lua devenv{} matches devenvs:; no members: no stack", function()
    local lua = [[
namespace "acme"
environment { name = "acceptance", account = "400000000000" }
devenv { environment = "acceptance", automaticStopTimeMinutes = 45, members = {
  { name = "alice", ownerArn = "arn:aws:iam::400000000000:user/alice" },
  { name = "bob-smith", ownerArn = "arn:aws:sts::400000000000:assumed-role/dev/bob", instanceType = "t3.large" } } }
service { name = "web", pipeline = { source = { provider = "CodeCommit", repo = "web" },
  production = { disabled = true } } }
]]
    local a = devenv.stacks(load(lua, "lumu.lua"), {})
    local b = devenv.stacks(load(DEV), {})
    assert.are.equal(json.encode(b[1].template), json.encode(a[1].template))
    local empty = load("environments: [{name: a}]\ndevenvs: [{environment: a}]\n")
    assert.are.same({}, devenv.stacks(empty, {}))
  end)
end)

describe("the per-stack credentials", function()
  it("the deploy engine asks for a client per stack account and uses it for that stack's calls", function()
    local deploy = require "lumu.deploy"
    local asked, calls = {}, {}
    local function client(service, desc)
      local acct = desc and desc.account or "base"
      asked[#asked + 1] = service .. "@" .. acct
      return setmetatable({ region = "us-east-1" }, { __index = function(_, op)
        return function(_, params)
          calls[#calls + 1] = { acct = acct, op = op, stack = params.StackName }
          if op == "DescribeStacks" then
            return nil, { code = "ValidationError", message = "Stack with id " .. tostring(params.StackName)
              .. " does not exist" }
          elseif op == "CreateChangeSet" then
            return { Id = "cs-" .. params.StackName, StackId = params.StackName }
          elseif op == "DescribeChangeSet" then
            return { Status = "FAILED", StatusReason = "The submitted information didn't contain changes." }
          end
          return {}
        end
      end })
    end
    local out = { write = function(self) return self end }
    local eng = deploy.engine({ client = client, out = out, data = out, poll = { changeset = 0.001, min = 0.001 } })
    local tpl = { Resources = { H = { Type = "AWS::CloudFormation::WaitConditionHandle" } } }
    local report = eng:diff({ { name = "a", template = tpl, account = "111111111111" },
      { name = "b", template = tpl, account = "222222222222" }, { name = "c", template = tpl } })
    assert.is_true(report.ok)
    table.sort(asked)
    assert.are.same({ "cloudformation@111111111111", "cloudformation@222222222222", "cloudformation@base" }, asked)
    local where = {}
    for _, c in ipairs(calls) do
      if c.stack then
        where[c.stack] = where[c.stack] or {}
        where[c.stack][c.acct] = true
      end
    end
    assert.are.same({ a = { ["111111111111"] = true }, b = { ["222222222222"] = true }, c = { base = true } }, where)
  end)

  it("the session reaches an account by profile, the profiles mapping, its own credentials or the role", function()
    local fakes = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/cmd_fakes.lua")
    local project = require "lumu.project"
    local dir = assert(fs.tmpdir("lumu-org-"))
    finally(function() fs.rmtree(dir) end)
    assert(fs.write(dir .. "/lumu.lua", "environment { name = 'a' }\nprofiles { ['222222222222'] = 'mapped' }\n"))
    local assumed = {}
    local aws = fakes.aws(fakes.handlers({}, { sts = { AssumeRole = function(p)
      assumed[#assumed + 1] = p.RoleArn
      return { Credentials = { AccessKeyId = "ASIA", SecretAccessKey = "s", SessionToken = "t" } }
    end } }))
    local ctx = fakes.ctx({ aws = aws })
    local s = assert(project.session(ctx, { config = dir .. "/lumu.lua" }))
    assert(s:client("cloudformation", { name = "x", account = "111111111111", profile = "given" }))
    assert.are.equal("given", aws.opts.cloudformation.profile)
    assert(s:client("cloudformation", { name = "y", account = "222222222222" }))
    assert.are.equal("mapped", aws.opts.cloudformation.profile)
    assert(s:client("cloudformation", { name = "z", account = "123456789012", role = "arn:aws:iam::123456789012:role/r" }))
    assert.is_nil(aws.opts.cloudformation.credentials) -- the session's own account: its own credentials
    local c = assert(s:client("cloudformation", { name = "w", account = "333333333333",
      role = "arn:aws:iam::333333333333:role/deploy" }))
    assert.is_table(c)
    local creds = assert(aws.opts.cloudformation.credentials:get())
    assert.are.equal("ASIA", creds.access_key_id)
    assert.are.same({ "arn:aws:iam::333333333333:role/deploy" }, assumed)
    assert(s:client("cloudformation", { name = "u", profile = "only-a-profile" }))
    assert.are.equal("only-a-profile", aws.opts.cloudformation.profile)
    local none, err = s:client("cloudformation", { name = "v", account = "444444444444" })
    assert.is_nil(none)
    assert.matches("stack v lives in account 444444444444, but the credentials are account 123456789012's", err)
  end)
end)

describe("the org example (scripts/org-example)", function()
  it("synthesises cleanly: no error, no template problem, nag clean, every stack placed", function()
    local m = assert(config.load(EXAMPLE, { getenv = function() end }))
    local stacks, report = synth.plan(m, { schemas = checker })
    assert.are.same({}, report.errors)
    assert.are.equal(0, report.problems)
    local results = assert(synth.nag(stacks))
    local f, w = nag.counts(results)
    assert.are.equal(0, f)
    assert.are.equal(0, w)
    for _, d in ipairs(stacks) do
      assert.is_string(d.account, d.name .. " has no account")
    end
  end)

  it("mu.yml gives the same stacks as lumu.lua", function()
    local a = assert(config.load(EXAMPLE, { getenv = function() end }))
    local b = assert(config.load("scripts/org-example/mu.yml", { getenv = function() end }))
    local sa = synth.plan(a, {})
    local sb = synth.plan(b, {})
    assert.are.equal(#sa, #sb)
    for i = 1, #sa do
      assert.are.equal(sa[i].name, sb[i].name)
      assert.are.equal(sa[i].body, sb[i].body, sa[i].name)
      assert.are.same(sa[i].parameters, sb[i].parameters, sa[i].name)
      assert.are.same({ sa[i].account, sa[i].profile, sa[i].role }, { sb[i].account, sb[i].profile, sb[i].role })
    end
  end)

  it("lumu validate --schemas checks every template of it, and lumu synth writes them nag-clean", function()
    local fakes = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/cmd_fakes.lua")
    local ctx = fakes.ctx()
    local rc = require("lumu.cli.validate").run(ctx, {}, { config = EXAMPLE, schemas = SHARED .. "/cfn" })
    assert.are.equal(0, rc or 0, ctx.stderr:text())
    assert.matches("ok %(namespace acme, 2 environments, 1 service, 1 pipeline, 26 stacks%)", ctx.stdout:text())
    local dir = assert(fs.tmpdir("lumu-org-synth-"))
    finally(function() fs.rmtree(dir) end)
    local out = fakes.buffer()
    local src = assert(fs.read(EXAMPLE))
    assert(fs.write(dir .. "/lumu.lua", src))
    rc = require("lumu.cli.synth").run({ stdout = out, stderr = out, git = false }, {},
      { config = dir .. "/lumu.lua", output = dir .. "/out", schemas = SHARED .. "/cfn" })
    assert.are.equal(0, rc, out:text())
    local r = nag.scan((nag.load_file(dir .. "/out/acme-org.template.json")))
    assert.are.equal(0, (nag.counts(r)))
    local assets = assert(fs.list(dir .. "/out/assets/products/account-vending/v1"))
    assert.are.equal(1, #assets)
    assert.matches("^vending%-%x+%.json$", assets[1])
  end)

  it("lumu org picks the organization, log archive and vending stacks", function()
    local m = assert(config.load(EXAMPLE, { getenv = function() end }))
    local stacks = synth.plan(m, {})
    local names = {}
    for _, d in ipairs(require("lumu.cli.org").pick(stacks, m, "acme")) do names[#names + 1] = d.name end
    assert.are.same({ "acme-org", "acme-org-logarchive", "acme-bucket-servicecatalog", "acme-iam-portfolio-common",
      "acme-portfolio-common", "acme-iam-vending", "acme-product-account-vending" }, names)
  end)
end)
