--- The `lumu nag` suppressions lumu writes into its own templates: every
-- warning lumu's design makes on purpose gets a Metadata suppression with the
-- reason, the rest stays visible.
--
-- local gennag = require "lumu.gen.nag"
--
-- gennag.annotate(template [, opts]) -> added
--   Scans the template table with the built-in nag rules and, for each
--   subject (resource or parameter) whose findings of a rule are ALL
--   justified below, adds {id=, reason=} to the resource's
--   Metadata.lumu_nag.rules_to_suppress (parameter findings: the template's
--   Metadata, which CloudFormation parameters cannot carry).  Changes the
--   template in place.  Only resources lumu generated are touched (they carry
--   Metadata["lumu:description"], lumu.gen.common.resource); resources added
--   by overrides or extensions, and findings nothing justifies, stay as
--   nag reports them.  Because it judges the final content, an override that
--   widens a lumu resource (another "*" statement, another open port) makes
--   the finding reappear.  Idempotent: findings already suppressed are not
--   seen again.  opts.rules: the rule list (default the built-in rules
--   that JUSTIFY knows, the only ones whose findings can be suppressed);
--   opts.parameters: the stack's parameter values (judged instead of the
--   parameters' Defaults, as they will be deployed).
--   added = list of {resource= (logical id, or "Metadata" for parameters),
--   rule=, reason=} in scan order.
-- gennag.annotate_pass(template [, opts]) -> added, pass   the same, plus
--   what the scan found before the suppressions were added (opaque;
--   lumu.synth hands it to lumu.nag.scan as opts.reuse so that these rules
--   do not run twice on the template)
-- gennag.justify(rule_id, violation, template) -> reason | nil   (one finding)
-- gennag.effective(template, values) -> template   a shallow copy whose
--   Parameters' Defaults are the given stack parameter values (what nag
--   should judge: a Ref resolves to its Default); the template itself when
--   values is empty
-- gennag.NOT_SECRET_PARAMETERS: parameter name -> what it holds (F34/F35)
-- gennag.NO_RESOURCE_ACTIONS: IAM actions that take no resource ARN
--
-- Justified (see JUSTIFY): W1 HTTP/HTTPS from anywhere to a load
-- balancer's security group; W2 TCP egress of the instance/node security
-- groups; W3 EKS node security group default egress; W5 Resource "*" on
-- statements whose actions take no resource (ecr:GetAuthorizationToken,
-- ecs:DiscoverPollEndpoint, kms:CreateKey, ...), are read-only Describe/List,
-- are limited by a Condition, belong to the CloudFormation service role
-- (mu's iam-common design: it creates resources whose ARNs do not exist
-- yet), or are CodeDeploy's launch-template needs; W11 the load balancer's
-- access-log bucket; W12 private (public access blocked) lumu buckets; W13
-- databases without deletion protection that keep a snapshot on delete;
-- W14 the HTTP listener of a load balancer without certificate; W34 public
-- subnets (routed to an internet gateway); F34/F35 parameters named like
-- secrets that are not (NOT_SECRET_PARAMETERS).
local nag = require "lumu.nag"
local engine = require "lumu.nag.engine"

local M = {}

M.NOT_SECRET_PARAMETERS = {
  DatabaseKeyExport = "the name of the export holding the database's KMS key ARN",
  RevisionKey = "the S3 object key of the CodeDeploy revision",
}

-- IAM actions without resource-level permissions (AWS Service Authorization
-- Reference: no resource type): they need Resource "*".
M.NO_RESOURCE_ACTIONS = {
  ["ecr:GetAuthorizationToken"] = true, ["ecs:DiscoverPollEndpoint"] = true,
  ["ecs:CreateCluster"] = true, ["ecs:RegisterTaskDefinition"] = true,
  ["ecs:DeregisterTaskDefinition"] = true, ["cloudformation:ValidateTemplate"] = true,
  ["cloudformation:GetTemplateSummary"] = true, ["cloudformation:ListExports"] = true,
  ["cloudformation:ListStacks"] = true, ["kms:CreateKey"] = true, ["sts:GetCallerIdentity"] = true,
  ["logs:DescribeLogGroups"] = true, ["cloudwatch:PutMetricData"] = true,
  ["xray:PutTraceSegments"] = true, ["xray:PutTelemetryRecords"] = true,
}

-- Read-only metadata actions (Describe*, List* but not s3:ListBucket*, which
-- lists objects).
local function read_only(action)
  local svc, verb = action:match("^([%w%-]+):(%a+)")
  if not svc then return false end
  if verb:match("^Describe") then return true end
  if verb:match("^List") then return not (svc == "s3" and verb:match("^ListBucket")) end
  return false
end

-- Actions a service principal's role needs on "*", with why.
local SERVICE_ACTIONS = {
  ["codedeploy.amazonaws.com"] = {
    actions = { ["ec2:RunInstances"] = true, ["ec2:CreateTags"] = true },
    reason = "CodeDeploy blue/green copies the Auto Scaling group's launch template, which needs "
      .. "ec2:RunInstances and ec2:CreateTags on instances that do not exist yet",
  },
}

-- ---------------------------------------------------------------------------
-- Template helpers
-- ---------------------------------------------------------------------------

-- "Resources.X.Properties.A[2].B" -> the node, its parent
local function at(tpl, path)
  local node, parent = tpl, nil
  for seg in tostring(path):gmatch("[^%.]+") do
    local name, rest = seg:match("^([^%[]*)(.*)$")
    if name ~= "" then
      if type(node) ~= "table" then return nil end
      parent, node = node, node[name]
    end
    for i in rest:gmatch("%[(%d+)%]") do
      if type(node) ~= "table" then return nil end
      parent, node = node, node[tonumber(i) + 1]
    end
  end
  return node, parent
end
M._at = at

local function resources(tpl)
  return type(tpl.Resources) == "table" and tpl.Resources or {}
end

-- The logical id a value points at: {Ref=X}, {"Fn::GetAtt": [X, ...]},
-- {"Fn::GetAtt": "X.Attr"}.
local function target(v)
  if type(v) ~= "table" then return nil end
  if type(v.Ref) == "string" then return v.Ref end
  local g = v["Fn::GetAtt"]
  if type(g) == "table" and type(g[1]) == "string" then return g[1] end
  if type(g) == "string" then return (g:match("^([^%.]+)")) end
  return nil
end

local function list(v)
  if type(v) ~= "table" then return { v } end
  if v[1] ~= nil or next(v) == nil then return v end
  return { v }
end

local function props(r)
  return type(r) == "table" and type(r.Properties) == "table" and r.Properties or {}
end

-- Resources of a type whose property (a list) points at id.
local function referenced_by(tpl, typ, prop, id)
  for _, r in pairs(resources(tpl)) do
    if type(r) == "table" and r.Type == typ then
      for _, x in ipairs(list(props(r)[prop])) do
        if target(x) == id then return true end
      end
    end
  end
  return false
end

local function has_type(tpl, typ)
  for _, r in pairs(resources(tpl)) do
    if type(r) == "table" and r.Type == typ then return true end
  end
  return false
end

local function number(v) return tonumber(v) end

-- ---------------------------------------------------------------------------
-- IAM (W5)
-- ---------------------------------------------------------------------------

local function strings(v)
  local out = {}
  for _, x in ipairs(list(v)) do
    if type(x) == "string" then out[#out + 1] = x end
  end
  return out
end

-- The service principals of a role's trust policy.
local function trusted_services(role)
  local out = {}
  local doc = props(role).AssumeRolePolicyDocument
  for _, st in ipairs(list(type(doc) == "table" and doc.Statement or nil)) do
    if type(st) == "table" and type(st.Principal) == "table" then
      for _, s in ipairs(strings(st.Principal.Service)) do out[s] = true end
    end
  end
  return out
end

-- The roles a policy resource applies to: the role itself (inline
-- Policies) or the Roles it is attached to.
local function roles_of(tpl, id, r)
  local res = resources(tpl)
  if r.Type == "AWS::IAM::Role" then return { r } end
  local out = {}
  for _, x in ipairs(list(props(r).Roles)) do
    local rid = target(x)
    if rid and type(res[rid]) == "table" and res[rid].Type == "AWS::IAM::Role" then out[#out + 1] = res[rid] end
  end
  for _, other in pairs(res) do
    -- a role listing this managed policy in ManagedPolicyArns
    if type(other) == "table" and other.Type == "AWS::IAM::Role" then
      for _, x in ipairs(list(props(other).ManagedPolicyArns)) do
        if target(x) == id then out[#out + 1] = other end
      end
    end
  end
  return out
end

local function condition_keys(stmt)
  local keys = {}
  if type(stmt.Condition) ~= "table" then return keys end
  for _, block in pairs(stmt.Condition) do
    if type(block) == "table" then
      for k in pairs(block) do
        if type(k) == "string" then keys[#keys + 1] = k end
      end
    end
  end
  table.sort(keys)
  return keys
end

local function w5(v, tpl)
  local stmt_path = v.path:gsub("%.Resource$", "")
  local stmt = at(tpl, stmt_path)
  local r = resources(tpl)[v.resource]
  if type(stmt) ~= "table" or type(r) ~= "table" then return nil end
  local actions = strings(stmt.Action)
  if #actions == 0 then return nil end
  local keys = condition_keys(stmt)
  if #keys > 0 then
    return table.concat(actions, ", ") .. " on '*' is limited by the condition " .. table.concat(keys, ", ")
  end
  local all_none, all_read = true, true
  for i = 1, #actions do
    local a = actions[i]
    if a:find("*", 1, true) then return nil end -- a wildcard action on '*' is never justified here
    if not M.NO_RESOURCE_ACTIONS[a] then all_none = false end
    if not M.NO_RESOURCE_ACTIONS[a] and not read_only(a) then all_read = false end
  end
  if all_none then
    return table.concat(actions, ", ") .. " take no resource ARN (AWS requires '*')"
  end
  if all_read then
    return "read-only Describe/List calls (" .. #actions .. " action" .. (#actions == 1 and "" or "s")
      .. "), several without resource-level permissions"
  end
  for _, role in ipairs(roles_of(tpl, v.resource, r)) do
    local svcs = trusted_services(role)
    if svcs["cloudformation.amazonaws.com"] then
      return "policy of the CloudFormation service role, which creates the environments' resources: their "
        .. "ARNs do not exist before the stacks create them (mu's iam-common design); only CloudFormation "
        .. "can assume the role"
    end
    for svc, spec in pairs(SERVICE_ACTIONS) do
      if svcs[svc] then
        local ok = true
        for _, a in ipairs(actions) do
          if not spec.actions[a] then ok = false end
        end
        if ok then return spec.reason end
      end
    end
  end
  return nil
end

-- ---------------------------------------------------------------------------
-- Network
-- ---------------------------------------------------------------------------

-- The security group an ingress/egress finding is about, and the rule.
local function sg_rule(v, tpl)
  local r = resources(tpl)[v.resource]
  if type(r) ~= "table" then return nil end
  if r.Type == "AWS::EC2::SecurityGroupIngress" or r.Type == "AWS::EC2::SecurityGroupEgress" then
    return target(props(r).GroupId), props(r)
  end
  if r.Type == "AWS::EC2::SecurityGroup" then
    local _, parent = at(tpl, v.path)
    return v.resource, type(parent) == "table" and parent or nil
  end
  return nil
end

local function w1(v, tpl)
  local sg, rule = sg_rule(v, tpl)
  if not sg or not rule then return nil end
  local from, to = number(rule.FromPort), number(rule.ToPort)
  if from ~= to or (from ~= 80 and from ~= 443) then return nil end
  if not referenced_by(tpl, "AWS::ElasticLoadBalancingV2::LoadBalancer", "SecurityGroups", sg) then return nil end
  return "port " .. from .. " of the application load balancer: clients connect from anywhere to an "
    .. "internet-facing load balancer (an internal one is reachable only from the VPC)"
end

local function w2(v, tpl)
  local sg, rule = sg_rule(v, tpl)
  if not sg or not rule or tostring(rule.IpProtocol) ~= "tcp" then return nil end
  if sg ~= "InstanceSecurityGroup" and sg ~= "NodeSecurityGroup" then return nil end
  return "the instances and tasks reach ECR, container registries, AWS APIs and package mirrors (through "
    .. "the NAT gateway); TCP only"
end

local function w3(v, tpl)
  if v.resource ~= "NodeSecurityGroup" or not has_type(tpl, "AWS::EKS::Nodegroup") then return nil end
  return "EKS nodes need outbound access to the cluster endpoint, ECR and AWS APIs, so the default egress stays"
end

local function w34(v, tpl)
  local res = resources(tpl)
  -- the subnet's route tables, and whether one routes to an internet gateway
  for _, a in pairs(res) do
    if type(a) == "table" and a.Type == "AWS::EC2::SubnetRouteTableAssociation"
        and target(props(a).SubnetId) == v.resource then
      local rt = target(props(a).RouteTableId)
      for _, route in pairs(res) do
        if type(route) == "table" and route.Type == "AWS::EC2::Route" and target(props(route).RouteTableId) == rt then
          local gw = target(props(route).GatewayId)
          if gw and type(res[gw]) == "table" and res[gw].Type == "AWS::EC2::InternetGateway" then
            return "public subnet (routed to the internet gateway) for the load balancer, the NAT gateway and "
              .. "the bastion host; instances and tasks run in the private instance subnets"
          end
        end
      end
    end
  end
  return nil
end

-- ---------------------------------------------------------------------------
-- Storage, load balancers, databases
-- ---------------------------------------------------------------------------

local function log_bucket(tpl, id)
  for _, r in pairs(resources(tpl)) do
    if type(r) == "table" and r.Type == "AWS::ElasticLoadBalancingV2::LoadBalancer" then
      for _, a in ipairs(list(props(r).LoadBalancerAttributes)) do
        if type(a) == "table" and a.Key == "access_logs.s3.bucket" and target(a.Value) == id then return true end
      end
    end
  end
  return false
end

local function w11(v, tpl)
  if not log_bucket(tpl, v.resource) then return nil end
  return "access-log bucket: the load balancer writes each log object once; versioning would only keep "
    .. "deleted logs"
end

local function private_bucket(r)
  local b = props(r).PublicAccessBlockConfiguration
  return type(b) == "table" and b.BlockPublicAcls == true and b.BlockPublicPolicy == true
    and b.IgnorePublicAcls == true and b.RestrictPublicBuckets == true
end

local function w12(v, tpl)
  local r = resources(tpl)[v.resource]
  if type(r) ~= "table" or not private_bucket(r) or type(props(r).BucketEncryption) ~= "table" then return nil end
  return "private, encrypted bucket lumu keeps for itself (pipeline artifacts, CodeDeploy revisions, catalog "
    .. "templates or AWS Config history), used only by lumu's roles and AWS services; CloudTrail records the "
    .. "API calls (server access logs would need one more bucket)"
end

local function w13(v, tpl)
  local r = resources(tpl)[v.resource]
  if type(r) ~= "table" or r.DeletionPolicy ~= "Snapshot" then return nil end
  return "not a production-like environment: lumu turns deletion protection on for production-like "
    .. "environments (or with database.deletionProtection); the stack keeps a final snapshot on delete"
end

local function w14(v, tpl)
  local r = resources(tpl)[v.resource]
  if type(r) ~= "table" or r.Type ~= "AWS::ElasticLoadBalancingV2::Listener" then return nil end
  local lb = target(props(r).LoadBalancerArn)
  for _, other in pairs(resources(tpl)) do
    if type(other) == "table" and other.Type == "AWS::ElasticLoadBalancingV2::Listener"
        and target(props(other).LoadBalancerArn) == lb and props(other).Protocol == "HTTPS" then
      return nil -- there is HTTPS: HTTP must redirect
    end
  end
  return "no certificate is configured (loadbalancer.certificate), so HTTP is the only listener; with "
    .. "one, lumu adds HTTPS and redirects HTTP to it"
end

-- Parameters named like secrets that are not.
local function not_secret(v)
  if v.type ~= "Parameter" then return nil end
  local what = M.NOT_SECRET_PARAMETERS[v.resource]
  return what and (v.resource .. " is " .. what .. ", not a secret") or nil
end

local JUSTIFY = {
  W1 = w1, W2 = w2, W3 = w3, W5 = w5, W11 = w11, W12 = w12, W13 = w13, W14 = w14, W34 = w34,
  F34 = not_secret, F35 = not_secret,
}

function M.justify(rule, v, tpl)
  local f = JUSTIFY[rule]
  if not f then return nil end
  return f(v, tpl)
end

-- ---------------------------------------------------------------------------
-- annotate
-- ---------------------------------------------------------------------------

local function lumus(r)
  return type(r) == "table" and type(r.Metadata) == "table" and r.Metadata["lumu:description"] ~= nil
end

local function add_suppression(holder, id, reason)
  holder.Metadata = type(holder.Metadata) == "table" and holder.Metadata or {}
  local section = holder.Metadata.lumu_nag
  if type(section) ~= "table" then
    section = {}
    holder.Metadata.lumu_nag = section
  end
  section.rules_to_suppress = type(section.rules_to_suppress) == "table" and section.rules_to_suppress or {}
  table.insert(section.rules_to_suppress, { id = id, reason = reason })
end

function M.effective(tpl, values)
  if type(values) ~= "table" or next(values) == nil or type(tpl.Parameters) ~= "table" then return tpl end
  local out = {}
  for k, v in pairs(tpl) do out[k] = v end
  local params = {}
  for name, p in pairs(tpl.Parameters) do
    if type(p) == "table" and values[name] ~= nil then
      local q = {}
      for k, v in pairs(p) do q[k] = v end
      q.Default = values[name]
      params[name] = q
    else
      params[name] = p
    end
  end
  out.Parameters = params
  return out
end

-- A scanner with the rules something here can justify (only they need to
-- run; any built-in id may be suppressed), compiled once.
local builtin_scan
local function scanner(opts)
  if opts.rules then return engine.scanner(opts.rules) end
  if not builtin_scan then
    local ids = {}
    for id in pairs(JUSTIFY) do ids[#ids + 1] = id end
    table.sort(ids)
    local builtin = nag.builtin_rules()
    builtin_scan = engine.scanner(assert(nag.select(builtin, { only = ids })), builtin)
  end
  return builtin_scan
end

function M.annotate_pass(tpl, opts)
  if type(tpl) ~= "table" then error("bad argument #1 to 'annotate' (template table expected)", 2) end
  opts = opts or {}
  local results, pass = scanner(opts)(M.effective(tpl, opts.parameters))
  -- (subject, rule) -> {reasons (unique, in order), all justified?}
  local groups, order = {}, {}
  for _, v in ipairs(results.violations) do
    local subject = v.type == "Parameter" and "Metadata" or v.resource
    local key = subject .. "\0" .. v.rule
    local g = groups[key]
    if not g then
      g = { subject = subject, rule = v.rule, reasons = {}, seen = {}, ok = true }
      groups[key] = g
      order[#order + 1] = g
    end
    local reason = JUSTIFY[v.rule] and JUSTIFY[v.rule](v, tpl) or nil
    if v.type ~= "Parameter" and not lumus(resources(tpl)[v.resource]) then reason = nil end
    if not reason then
      g.ok = false
    elseif not g.seen[reason] then
      g.seen[reason] = true
      g.reasons[#g.reasons + 1] = reason
    end
  end
  local added = {}
  for _, g in ipairs(order) do
    if g.ok then
      local reason = table.concat(g.reasons, "; ")
      local holder = g.subject == "Metadata" and tpl or resources(tpl)[g.subject]
      add_suppression(holder, g.rule, reason)
      added[#added + 1] = { resource = g.subject, rule = g.rule, reason = reason }
    end
  end
  return added, pass
end

function M.annotate(tpl, opts)
  if type(tpl) ~= "table" then error("bad argument #1 to 'annotate' (template table expected)", 2) end
  return (M.annotate_pass(tpl, opts))
end

return M
