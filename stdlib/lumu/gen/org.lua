--- Accounts and guardrails as code: the `<ns>-org` stack (organizational
-- units, member accounts, service control policies) and the log archive
-- stack, from `organization{...}` / `organization:`.  Pure Lua, no AWS calls.
--
-- local org = require "lumu.gen.org"
-- org.stacks(model, ctx) -> list of descriptors (lumu.gen.common) | nil, err
--   ctx = {namespace=}.  No model.organization: {}.  In deploy order:
--   1. `<ns>-org` (kind "org"), in the management account: one
--      AWS::Organizations::OrganizationalUnit per unit (parent: another unit
--      or the root, parameter RootId), one AWS::Organizations::Account per
--      account without an `id` (ParentIds its unit or the root; RoleName;
--      tags; kept on stack deletion: DeletionPolicy Retain, since deleting
--      the resource would close the account), and one
--      AWS::Organizations::Policy (SERVICE_CONTROL_POLICY) per guardrail and
--      per `policies` entry, attached (TargetIds) to its targets: "Root" (the
--      RootId parameter), unit names, account names (created: their
--      AccountId; existing: their id) or 12-digit account ids.  Outputs, all
--      exported as `<ns>-org-<Output>`: Unit<Name>Id, Account<Name>Id (created
--      accounts), Policy<Name>Id.
--   2. `<ns>-org-logarchive` (kind "org"), only with `logArchive` naming an
--      account with an `id`, in that account: the organization's trail
--      bucket `<ns>-org-trail-<id>` (SSE-S3, versioned, private, owner
--      enforced, TLS only, retained) that CloudTrail trails named
--      `<ns>-baseline` and AWS Config of the organization (aws:SourceOrgID =
--      organization.id when given) may write to.  Export TrailBucket.
--   descriptor.account/profile/role say where the stack is deployed
--   (lumu.deploy's per-stack credentials): organization.account, profile and
--   role for `<ns>-org`; the log archive account reached with the
--   OrganizationAccountAccessRole (its roleName) for the log archive stack.
-- org.guardrails(o) -> list of {key=, name=, description=, statements=}: the
--   default guardrail policies that organization.guardrails leaves on:
--     leave-organization  deny organizations:LeaveOrganization
--     audit-services      deny cloudtrail StopLogging/DeleteTrail/UpdateTrail/
--                         PutEventSelectors (cloudTrail), config Stop/Delete
--                         (config), guardduty Delete/Disassociate/Update
--                         (guardDuty); one statement per service, the policy
--                         is left out when all three are off
--     root-user           deny every action of an account's root user
--     region-allow-list   deny everything outside guardrails.regions except
--                         the global services (org.GLOBAL_ACTIONS)
--   Every deny except root-user spares the roles of guardrails.exemptRoles
--   plus org.DEFAULT_EXEMPT (the service-managed StackSet execution roles
--   the vending baseline deploys with), matched as
--   arn:<partition>:iam::*:role/<name>.
-- org.plan(model, ctx) -> {first=, catalog=, other=}, errors   what lumu.synth
--   adds to its plan: `first` the organization stacks (deployed before
--   everything), `catalog` the account vending stacks (lumu.gen.vending),
--   `other` the dev environments (lumu.gen.devenv).  ctx = {namespace=,
--   environments = names | nil (an --env selection: no organization or
--   vending), git=, generators = {org=, vending=, devenv=} (tests)}.
--   errors: "key: message" strings of the generators.
-- org.place(model, stacks, environments) places every descriptor that has
--   none yet: stacks of an environment with `account` go there (its
--   profile; role default arn:aws:iam::<account>:role/<ns>-deploy); the
--   catalog stacks (and catalog-provisioned pipelines) go to the
--   management account with vending, else to tools.*; stacks of no
--   environment (common IAM, repositories, ...) go to the account of the
--   selected environments when they all share one, else to tools.*.
-- org.template(model, ctx) -> template table   (tests)
-- org.placement(rec, model) -> {account=, profile=, role=} | nil   where the
--   stacks of a record with account/profile/role keys go
-- org.logical(name) -> "SecurityTeam" for "security-team" (logical ids)
-- org.MAX_POLICY = 5120 (characters of an SCP): a policy over it is an error
--   "organization.policies[i]: ..." (or organization.guardrails)
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"
local json = require "lumu.json"

local M = {}

M.MAX_POLICY = 5120
M.DEFAULT_EXEMPT = { "stacksets-exec-*" }
M.DEFAULT_ROLE_NAME = "OrganizationAccountAccessRole"

-- Actions of global services (or global endpoints) the region allow-list
-- never denies: without them IAM, Organizations, billing, CloudFront,
-- Route 53 and support stop working outside us-east-1.
M.GLOBAL_ACTIONS = {
  "a4b:*", "access-analyzer:*", "account:*", "acm:*", "aws-marketplace:*", "aws-portal:*", "budgets:*",
  "ce:*", "chatbot:*", "chime:*", "cloudfront:*", "config:*", "cur:*", "directconnect:*",
  "ec2:DescribeRegions", "ec2:DescribeTransitGateways", "ec2:DescribeVpnGateways", "fms:*",
  "globalaccelerator:*", "health:*", "iam:*", "importexport:*", "kms:*", "networkmanager:*",
  "organizations:*", "pricing:*", "route53:*", "route53domains:*", "route53-recovery-cluster:*",
  "route53-recovery-control-config:*", "route53-recovery-readiness:*", "s3:GetAccountPublic*",
  "s3:ListAllMyBuckets", "s3:ListMultiRegionAccessPoints", "s3:PutAccountPublic*", "shield:*", "sts:*",
  "support:*", "trustedadvisor:*", "waf-regional:*", "waf:*", "wafv2:*", "wellarchitected:*",
}

local arr = common.array

local res = common.resource

--- "security-team" / "log archive" -> "SecurityTeam" / "LogArchive"
function M.logical(name)
  local s = tostring(name):gsub("[^%w]+(%w?)", function(c) return c:upper() end)
  s = s:gsub("^%l", string.upper)
  return s
end

function M.placement(rec, _)
  if type(rec) ~= "table" then return nil end
  if not (rec.account or rec.profile or rec.role) then return nil end
  return { account = rec.account, profile = rec.profile, role = rec.role }
end

local function place(d, where)
  if where then
    d.account, d.profile, d.role = where.account, where.profile, where.role
  end
  return d
end
M._place = place

local function exempt_condition(g)
  local names = {}
  for _, n in ipairs(M.DEFAULT_EXEMPT) do names[#names + 1] = n end
  for _, n in ipairs(g.exemptRoles or {}) do
    local dup = false
    for _, x in ipairs(names) do if x == n then dup = true end end
    if not dup then names[#names + 1] = n end
  end
  local arns = {}
  for i, n in ipairs(names) do arns[i] = "arn:aws:iam::*:role/" .. n end
  return { ArnNotLike = { ["aws:PrincipalArn"] = arr(arns) } }
end

local function deny(sid, actions, condition)
  return { Sid = sid, Effect = "Deny", Action = arr(actions), Resource = "*", Condition = condition }
end

function M.guardrails(o)
  local g = (o and o.guardrails) or {}
  local function on(k) return g[k] ~= false end
  local out = {}
  if on("leaveOrganization") then
    out[#out + 1] = { key = "leave-organization", name = "deny-leave-organization",
      description = "lumu guardrail: member accounts cannot leave the organization",
      statements = { deny("DenyLeaveOrganization", { "organizations:LeaveOrganization" }, exempt_condition(g)) } }
  end
  local audit = {}
  if on("cloudTrail") then
    audit[#audit + 1] = deny("ProtectCloudTrail", { "cloudtrail:DeleteTrail", "cloudtrail:PutEventSelectors",
      "cloudtrail:StopLogging", "cloudtrail:UpdateTrail" }, exempt_condition(g))
  end
  if on("config") then
    audit[#audit + 1] = deny("ProtectConfig", { "config:DeleteConfigRule", "config:DeleteConfigurationRecorder",
      "config:DeleteDeliveryChannel", "config:DeleteRetentionConfiguration", "config:StopConfigurationRecorder" },
      exempt_condition(g))
  end
  if on("guardDuty") then
    audit[#audit + 1] = deny("ProtectGuardDuty", { "guardduty:DeleteDetector", "guardduty:DeleteMembers",
      "guardduty:DisassociateFromAdministratorAccount", "guardduty:DisassociateFromMasterAccount",
      "guardduty:DisassociateMembers", "guardduty:StopMonitoringMembers", "guardduty:UpdateDetector" },
      exempt_condition(g))
  end
  if #audit > 0 then
    out[#out + 1] = { key = "audit-services", name = "protect-audit-services",
      description = "lumu guardrail: CloudTrail, AWS Config and GuardDuty cannot be stopped or removed",
      statements = audit }
  end
  if on("rootUser") then
    out[#out + 1] = { key = "root-user", name = "deny-root-user",
      description = "lumu guardrail: the root user of member accounts can do nothing",
      statements = { deny("DenyRootUser", { "*" }, { ArnLike = { ["aws:PrincipalArn"] = "arn:aws:iam::*:root" } }) } }
  end
  if g.regions and #g.regions > 0 then
    local cond = exempt_condition(g)
    cond.StringNotEquals = { ["aws:RequestedRegion"] = arr({ table.unpack(g.regions) }) }
    out[#out + 1] = { key = "region-allow-list", name = "region-allow-list",
      description = "lumu guardrail: only " .. table.concat(g.regions, ", ") .. " (global services excepted)",
      statements = { { Sid = "DenyOtherRegions", Effect = "Deny", NotAction = arr({ table.unpack(M.GLOBAL_ACTIONS) }),
        Resource = "*", Condition = cond } } }
  end
  return out
end

-- A copy of a user statement without lumu's underscore keys.
local function clean(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if not (type(k) == "string" and k:sub(1, 1) == "_") then out[k] = clean(x) end
  end
  return setmetatable(out, getmetatable(v))
end

local function lower_index(list)
  local idx = {}
  for _, x in ipairs(list or {}) do
    if type(x.name) == "string" then idx[x.name:lower()] = x end
  end
  return idx
end

-- The template of <ns>-org.  Returns template, info {outputs=} | nil, err.
local function org_template(model, ns)
  local o = model.organization
  local t = cfn.template({ description = "lumu organization " .. ns
    .. ": organizational units, accounts and service control policies" })
  t:parameter("Namespace", { Type = "String", Default = ns, Description = "Namespace for stack prefixes" })
  local root_used = false
  local function root()
    root_used = true
    return cfn.Ref("RootId")
  end
  local units = lower_index(o.units)
  local accounts = lower_index(o.accounts)
  local handles = {}
  -- units, parents first
  local done = {}
  local function unit(u, depth)
    if done[u] or depth > 64 then return handles[u] end
    done[u] = true
    local parent
    if u.parent and u.parent ~= "Root" and units[u.parent:lower()] then
      parent = unit(units[u.parent:lower()], depth + 1):getatt("Id")
    else
      parent = root()
    end
    handles[u] = res(t, "Unit" .. M.logical(u.name), "AWS::Organizations::OrganizationalUnit",
      "organizational unit " .. u.name, {
        Name = u.name, ParentId = parent,
        Tags = arr({ { Key = "lumu:namespace", Value = ns } }),
      })
    return handles[u]
  end
  for _, u in ipairs(o.units or {}) do unit(u, 0) end
  local function unit_id(name)
    if name == nil or name == "Root" then return root() end
    local u = units[name:lower()]
    return u and handles[u]:getatt("Id") or root()
  end
  local outputs = {}
  for _, u in ipairs(o.units or {}) do
    outputs[#outputs + 1] = { "Unit" .. M.logical(u.name) .. "Id", handles[u]:getatt("Id"), "organizational unit "
      .. u.name }
  end
  for _, a in ipairs(o.accounts or {}) do
    if not a.id then
      local tags = { { Key = "lumu:namespace", Value = ns } }
      local keys = {}
      for k in pairs(a.tags or {}) do if type(k) == "string" and k:sub(1, 1) ~= "_" then keys[#keys + 1] = k end end
      table.sort(keys)
      for _, k in ipairs(keys) do tags[#tags + 1] = { Key = k, Value = tostring(a.tags[k]) } end
      handles[a] = res(t, "Account" .. M.logical(a.name), "AWS::Organizations::Account", "member account " .. a.name, {
        AccountName = a.name, Email = a.email, ParentIds = arr({ unit_id(a.unit) }),
        RoleName = a.roleName or M.DEFAULT_ROLE_NAME, Tags = arr(tags),
      }, { DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain" })
      outputs[#outputs + 1] = { "Account" .. M.logical(a.name) .. "Id", handles[a]:getatt("AccountId"),
        "account id of " .. a.name }
    end
  end
  local function target_id(name)
    if name == "Root" then return root() end
    if name:match("^" .. string.rep("%d", 12) .. "$") then return name end
    local u = units[name:lower()]
    if u then return handles[u]:getatt("Id") end
    local a = accounts[name:lower()]
    if a and a.id then return a.id end
    if a then return handles[a]:getatt("AccountId") end
    return nil
  end
  local function targets(list, path)
    local out, seen = {}, {}
    for _, name in ipairs(list or {}) do
      local id = target_id(name)
      if id == nil then return nil, path .. ": unknown target '" .. tostring(name) .. "'" end
      local key = json.encode(id)
      if not seen[key] then
        seen[key] = true
        out[#out + 1] = id
      end
    end
    return out
  end
  local policies = {}
  local g = o.guardrails or {}
  for _, gr in ipairs(M.guardrails(o)) do
    policies[#policies + 1] = { id = "Guardrail" .. M.logical(gr.key), name = ns .. "-" .. gr.name,
      description = gr.description, statements = gr.statements, targets = g.targets or { "Root" },
      path = "organization.guardrails" }
  end
  for i, p in ipairs(o.policies or {}) do
    local st = {}
    for j, x in ipairs(p.statements or {}) do st[j] = clean(x) end
    policies[#policies + 1] = { id = "Policy" .. M.logical(p.name), name = ns .. "-" .. p.name,
      description = p.description or ("lumu service control policy " .. p.name), statements = st,
      targets = p.targets, path = (p._path or ("organization.policies[" .. i .. "]")) }
  end
  local ids = {}
  for _, p in ipairs(policies) do
    if ids[p.id] then return nil, p.path .. ": policy '" .. p.name .. "' has the same logical id as another (" .. p.id
      .. "); rename one" end
    ids[p.id] = true
    local content = { Version = "2012-10-17", Statement = arr(p.statements) }
    local size = #json.encode(content)
    if size > M.MAX_POLICY then
      return nil, string.format("%s: the policy %s is %d characters; service control policies hold at most %d",
        p.path, p.name, size, M.MAX_POLICY)
    end
    local tids, terr = targets(p.targets, p.path .. ".targets")
    if not tids then return nil, terr end
    local props = { Name = p.name, Type = "SERVICE_CONTROL_POLICY", Description = p.description, Content = content,
      Tags = arr({ { Key = "lumu:namespace", Value = ns } }) }
    if #tids > 0 then props.TargetIds = arr(tids) end
    local h = res(t, p.id, "AWS::Organizations::Policy", "service control policy " .. p.name, props)
    outputs[#outputs + 1] = { p.id .. "Id", h:getatt("Id"), "service control policy " .. p.name }
  end
  if root_used then
    t:parameter("RootId", { Type = "String", AllowedPattern = "^r-[0-9a-z]{4,32}$",
      Description = "Id of the organization's root (aws organizations list-roots)" })
  end
  if #outputs == 0 then
    res(t, "Placeholder", "AWS::CloudFormation::WaitConditionHandle", "Nothing to create yet", {})
  end
  for _, out in ipairs(outputs) do
    t:output(out[1], out[2], { description = out[3], export = cfn.Sub("${AWS::StackName}-" .. out[1]) })
  end
  return t:to_table({ consume = true }), { root = root_used }
end

function M.template(model, ctx)
  ctx = ctx or {}
  return org_template(model, ctx.namespace or model.namespace or "mu")
end

--- The name of the organization's trail bucket in the log archive account.
function M.trail_bucket(ns, account_id)
  return (ns:lower() .. "-org-trail-" .. account_id)
end

local function logarchive_template(ns, o, bucket_name)
  local t = cfn.template({ description = "lumu log archive: the organization's CloudTrail and AWS Config bucket" })
  local b = res(t, "TrailBucket", "AWS::S3::Bucket", "CloudTrail and AWS Config logs of the organization's accounts", {
    BucketName = bucket_name,
    BucketEncryption = { ServerSideEncryptionConfiguration = arr({ {
      ServerSideEncryptionByDefault = { SSEAlgorithm = "AES256" } } }) },
    PublicAccessBlockConfiguration = { BlockPublicAcls = true, BlockPublicPolicy = true, IgnorePublicAcls = true,
      RestrictPublicBuckets = true },
    OwnershipControls = { Rules = arr({ { ObjectOwnership = "BucketOwnerEnforced" } }) },
    VersioningConfiguration = { Status = "Enabled" },
    LifecycleConfiguration = { Rules = arr({ { Id = "expire-old-versions", Status = "Enabled",
      NoncurrentVersionExpiration = { NoncurrentDays = 365 } } }) },
  }, { DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain" })
  local barn = b:getatt("Arn")
  local scope
  if o.id then
    scope = { StringEquals = { ["aws:SourceOrgID"] = o.id } }
  end
  local trail_source = { ArnLike = { ["aws:SourceArn"] = cfn.Sub("arn:${AWS::Partition}:cloudtrail:*:*:trail/"
    .. ns .. "-baseline") } }
  local function with(cond)
    local c = {}
    for k, v in pairs(cond) do c[k] = v end
    for k, v in pairs(scope or {}) do c[k] = v end
    return c
  end
  res(t, "TrailBucketPolicy", "AWS::S3::BucketPolicy",
    "TLS only; CloudTrail trails <ns>-baseline and AWS Config may write the accounts' logs", {
      Bucket = b,
      PolicyDocument = { Version = "2012-10-17", Statement = arr({
        { Sid = "DenyInsecureTransport", Effect = "Deny", Principal = "*", Action = "s3:*",
          Resource = arr({ barn, cfn.Sub("${B}/*", { B = barn }) }),
          Condition = { Bool = { ["aws:SecureTransport"] = "false" } } },
        { Sid = "CloudTrailAclCheck", Effect = "Allow", Principal = { Service = "cloudtrail.amazonaws.com" },
          Action = "s3:GetBucketAcl", Resource = barn, Condition = with(trail_source) },
        { Sid = "CloudTrailWrite", Effect = "Allow", Principal = { Service = "cloudtrail.amazonaws.com" },
          Action = "s3:PutObject", Resource = cfn.Sub("${B}/AWSLogs/*", { B = barn }), Condition = with(trail_source) },
        { Sid = "ConfigBucketCheck", Effect = "Allow", Principal = { Service = "config.amazonaws.com" },
          Action = arr({ "s3:GetBucketAcl", "s3:ListBucket" }), Resource = barn,
          Condition = scope and with({}) or nil },
        { Sid = "ConfigWrite", Effect = "Allow", Principal = { Service = "config.amazonaws.com" },
          Action = "s3:PutObject", Resource = cfn.Sub("${B}/config/AWSLogs/*", { B = barn }),
          Condition = scope and with({}) or nil },
      }) },
    })
  t:output("TrailBucket", b, { description = "The organization's CloudTrail and AWS Config bucket",
    export = cfn.Sub("${AWS::StackName}-TrailBucket") })
  return t:to_table({ consume = true })
end

function M.plan(model, ctx)
  ctx = ctx or {}
  local gens = ctx.generators or {}
  local out, errors = { first = {}, catalog = {}, other = {} }, {}
  local opts = { namespace = ctx.namespace, environments = ctx.environments, git = ctx.git }
  local function run(gen, list)
    local stacks, err = gen.stacks(model, opts)
    if not stacks then
      errors[#errors + 1] = err
      return
    end
    for _, d in ipairs(stacks) do list[#list + 1] = d end
  end
  if ctx.environments == nil then
    run(gens.org or M, out.first)
    if gens.vending or (model.organization and model.organization.vending) then
      run(gens.vending or require("lumu.gen.vending"), out.catalog)
    end
  end
  if gens.devenv or next(model.devenvs or {}) then
    run(gens.devenv or require("lumu.gen.devenv"), out.other)
  end
  return out, errors
end

local CATALOG_KINDS = { product = true, portfolio = true, ["catalog-provision"] = true }

function M.place(model, stacks, environments)
  local ns = model.namespace or "mu"
  local envs = {}
  for _, e in ipairs(model.environments or {}) do
    if type(e.name) == "string" then envs[e.name:lower()] = e end
  end
  local function env_place(e)
    if not e or not e.account then return nil end
    return { account = e.account, profile = e.profile,
      role = e.role or ("arn:aws:iam::" .. e.account .. ":role/" .. ns .. "-deploy") }
  end
  -- the one account of the selected environments, if they share one
  local shared
  if environments and #environments > 0 then
    local accts = {}
    for _, n in ipairs(environments) do
      local e = envs[n:lower()]
      accts[(e and e.account) or ""] = e
    end
    local k = next(accts)
    if next(accts, k) == nil and k ~= "" then shared = env_place(accts[k]) end
  end
  local o = model.organization
  local catalog_place = (o and o.vending and M.placement(o, model)) or M.placement(model.tools, model)
  local cat_names = {}
  for _, n in pairs(common.catalog_names(ns)) do cat_names[n] = true end
  for _, d in ipairs(stacks) do
    if d.account == nil and d.profile == nil and d.role == nil then
      local where
      if d.env then
        where = env_place(envs[tostring(d.env):lower()])
      elseif CATALOG_KINDS[d.kind] or cat_names[d.name] then
        where = catalog_place
      elseif d.kind == "repo" and M.placement(model.tools, model) then
        -- images live where the pipelines push them, whichever environment is deployed
        where = M.placement(model.tools, model)
      else
        where = shared or M.placement(model.tools, model)
      end
      place(d, where)
    end
  end
end

function M.stacks(model, ctx)
  if type(model) ~= "table" then error("bad argument #1 to 'stacks' (model table expected)", 2) end
  local o = model.organization
  if not o then return {} end
  ctx = ctx or {}
  local ns = ctx.namespace or model.namespace or "mu"
  local tpl, info = org_template(model, ns)
  if not tpl then return nil, info end
  local name = common.stack_name(ns, "org")
  local out = {}
  local params = { Namespace = ns }
  if info.root then params.RootId = o.rootId end
  local d = common.stack({
    name = name, kind = "org", template = tpl, parameters = params,
    tags = common.tags("org"),
    description = "Organization: units, accounts and service control policies",
  })
  place(d, M.placement(o, model))
  out[#out + 1] = d
  local la = nil
  for _, a in ipairs(o.accounts or {}) do
    if o.logArchive and a.name and a.name:lower() == o.logArchive:lower() then la = a end
  end
  if la and la.id then
    local bucket = M.trail_bucket(ns, la.id)
    local ld = common.stack({
      name = common.stack_name(ns, "org", "logarchive"), kind = "org",
      template = logarchive_template(ns, o, bucket), tags = common.tags("org", { name = "logarchive" }),
      depends = { name },
      description = "Log archive: the organization's trail bucket (account " .. la.id .. ")",
    })
    ld.account = la.id
    ld.role = "arn:aws:iam::" .. la.id .. ":role/" .. (la.roleName or M.DEFAULT_ROLE_NAME)
    out[#out + 1] = ld
  end
  return out
end

return M
