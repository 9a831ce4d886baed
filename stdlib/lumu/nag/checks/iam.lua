--- Built-in nag rules: IAM identity policies, trust policies and resource
-- policies (S3, SQS, SNS, KMS, Secrets Manager, ECR, OpenSearch, EFS, Logs).
local util = require "lumu.nag.util"

local props, path = util.props, util.path

local ROLE, USER, GROUP = "AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"

local function concat(...)
  local out = {}
  for _, l in ipairs({ ... }) do
    for _, x in ipairs(l) do out[#out + 1] = x end
  end
  return out
end

local IDENTITY = util.IDENTITY_TYPES
local RESOURCE = util.RESOURCE_POLICY_TYPES
local ALL_POLICY = concat(IDENTITY, RESOURCE)

local function is_star(a) return a == "*" or a == "*:*" end
local function service_star(a)
  return type(a) == "string" and a:byte(-1) == 42 and a:find("^[%w%-]+:%*$") ~= nil -- 42: "*"
end

-- Runs fn(ctx, stmt, doc_kind) over the Allow statements of the policies of
-- r whose kind is in `kinds`; fn returns the key of the statement at fault
-- ("Action", "Principal", ...) and a detail, or nil.  -> violations
local function each_statement(ctx, r, kinds, fn)
  local found = {}
  local list = ctx:allowed_statements(r)
  for i = 1, #list do
    local e = list[i]
    if kinds[e.kind] then
      local key, detail = fn(ctx, e.stmt, e.kind)
      if key then
        local p = path(e.path)
        p[#p + 1] = key
        found[#found + 1] = { path = p, detail = detail }
      end
    end
  end
  return found
end

local IDENTITY_DOC = { identity = true }
local RESOURCE_DOC = { resource = true }
local TRUST_DOC = { trust = true }
local RESOURCE_OR_TRUST = { resource = true, trust = true }
local RESOURCE_OR_IDENTITY = { resource = true, identity = true }
local ANY_DOC = { resource = true, trust = true, identity = true }

local function action_check(kinds, pred, what)
  local function fn(ctx, stmt)
    local actions = ctx:strings(stmt.Action)
    for i = 1, #actions do
      local a = actions[i]
      if pred(a) then return "Action", what .. " '" .. a .. "'" end
    end
  end
  return function(r, _, _, ctx)
    return each_statement(ctx, r, kinds, fn)
  end
end

-- A check reporting `key` of each Allow statement (in documents of `kinds`)
-- for which fn(ctx, stmt) is true.
local function statement_check(kinds, key, fn)
  local function test(ctx, stmt)
    if fn(ctx, stmt) then return key end
  end
  return function(r, _, _, ctx)
    return each_statement(ctx, r, kinds, test)
  end
end

local function has_condition(stmt)
  return type(stmt.Condition) == "table" and next(stmt.Condition) ~= nil
end

-- Some value of a Resource is "*".
local function any_star(ctx, v)
  for _, res in ipairs(ctx:strings(v)) do
    if res == "*" then return true end
  end
  return false
end

local rules = {
  {
    id = "F4", severity = "failure",
    message = "IAM policy allows every action ('*')",
    reason = "Action '*' grants full administrator rights over the resources it names; list the "
      .. "actions the workload needs.",
    types = IDENTITY, aliases = { "F3" },
    check = action_check(IDENTITY_DOC, is_star, "Allow with Action"),
  },
  {
    id = "F5", severity = "failure",
    message = "Resource policy allows every action ('*')",
    reason = "A bucket, queue, topic or key policy allowing '*' lets the named principals do anything "
      .. "to the resource, including deleting it or changing its policy.",
    types = RESOURCE, aliases = { "F15" },
    check = action_check(RESOURCE_DOC, is_star, "Allow with Action"),
  },
  {
    id = "F6", severity = "failure",
    message = "IAM role trust policy allows every action ('*' or 'sts:*')",
    reason = "A trust policy should allow sts:AssumeRole (or the web-identity/SAML variant) only; "
      .. "wildcards also allow tagging sessions and setting source identity.",
    types = { ROLE }, aliases = { "F2" },
    check = action_check(TRUST_DOC, function(a) return is_star(a) or a:lower() == "sts:*" end,
      "Allow with Action"),
  },
  {
    id = "F7", severity = "failure",
    message = "Policy allows any principal ('*') without a Condition",
    reason = "Principal '*' on an Allow makes the resource (or role) usable by every AWS account and, "
      .. "for S3/SNS/SQS, by anonymous callers.",
    types = concat(RESOURCE, { ROLE }), aliases = { "F16" },
    check = statement_check(RESOURCE_OR_TRUST, "Principal", function(ctx, stmt)
      return not has_condition(stmt) and ctx:wildcard_principal(stmt.Principal)
    end),
  },
  {
    id = "F8", severity = "failure",
    message = "Policy combines Allow with NotPrincipal",
    reason = "Allow + NotPrincipal grants access to every principal except the listed ones, "
      .. "including anonymous users; name the allowed principals instead.",
    types = concat(RESOURCE, { ROLE }), aliases = { "F6" },
    check = statement_check(ANY_DOC, "NotPrincipal", function(_, stmt) return stmt.NotPrincipal ~= nil end),
  },
  {
    id = "F9", severity = "failure",
    message = "IAM user has inline policies",
    reason = "Permissions attached to users are hard to audit and outlive people's roles; grant "
      .. "them through groups or roles.",
    types = { USER },
    check = function(r, _, _, ctx)
      for _, item in ipairs(ctx:items(props(r).Policies)) do
        if type(item.v) == "table" then return { { path = { "Properties", "Policies" } } } end
      end
    end,
  },
  {
    id = "F10", severity = "failure",
    message = "IAM policy is attached directly to users",
    reason = "Attach policies to groups (or roles) so that permissions follow job functions rather "
      .. "than individuals.",
    types = { "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::UserPolicy", USER },
    aliases = { "F11", "F12" },
    check = function(r, _, _, ctx)
      local p = props(r)
      if r.Type == USER then
        if #ctx:items(p.ManagedPolicyArns) > 0 then
          return { { path = { "Properties", "ManagedPolicyArns" }, detail = "user has managed policies attached" } }
        end
        return nil
      end
      if r.Type == "AWS::IAM::UserPolicy" then return { { path = { "Properties", "UserName" } } } end
      if #ctx:items(p.Users) > 0 then return { { path = { "Properties", "Users" } } } end
    end,
  },
  {
    id = "F11", severity = "failure",
    message = "IAM policy allows iam:PassRole on any resource",
    reason = "iam:PassRole on '*' lets the holder hand any role - including administrator roles - "
      .. "to a service it controls, which is a privilege escalation path.",
    types = IDENTITY,
    check = statement_check(IDENTITY_DOC, "Resource", function(ctx, stmt)
      local passes = false
      local actions = ctx:strings(stmt.Action)
      for i = 1, #actions do
        local a = actions[i]
        -- only a pattern starting with i, I, * or ? can match (byte values)
        local c = a:byte(1)
        if (c == 105 or c == 73 or c == 42 or c == 63) and not is_star(a) and util.glob_match(a, "iam:PassRole") then
          passes = true
        end
      end
      return passes and any_star(ctx, stmt.Resource)
    end),
  },
  {
    id = "F12", severity = "failure",
    message = "AdministratorAccess managed policy is attached",
    reason = "AdministratorAccess grants every permission in the account; a workload or person "
      .. "rarely needs it, and a leaked credential then compromises everything.",
    types = { ROLE, USER, GROUP },
    check = function(r, _, _, ctx)
      local found = {}
      for _, item in ipairs(ctx:items(props(r).ManagedPolicyArns)) do
        local s = ctx:text(item.v)
        if s:find(":policy/AdministratorAccess$") then
          found[#found + 1] = { path = { "Properties", "ManagedPolicyArns", item.index } }
        end
      end
      return found
    end,
  },
  {
    id = "W5", severity = "warning",
    message = "IAM policy allows actions on any resource ('*')",
    reason = "Resource '*' applies the allowed actions to every resource of the account; scope "
      .. "statements to ARNs (some List/Describe actions genuinely need '*').",
    types = IDENTITY, aliases = { "W11", "W12", "W13" },
    check = statement_check(IDENTITY_DOC, "Resource", function(ctx, stmt) return any_star(ctx, stmt.Resource) end),
  },
  {
    id = "W6", severity = "warning",
    message = "Policy combines Allow with NotAction",
    reason = "Allow + NotAction grants every action except the listed ones, including actions AWS "
      .. "adds later; list the allowed actions instead.",
    types = ALL_POLICY, aliases = { "W14", "W15", "W16", "W17", "W18", "W19", "W20" },
    check = statement_check(ANY_DOC, "NotAction", function(_, stmt) return stmt.NotAction ~= nil end),
  },
  {
    id = "W7", severity = "warning",
    message = "Policy combines Allow with NotResource",
    reason = "Allow + NotResource applies to every resource except the listed ones, including "
      .. "resources created later.",
    types = ALL_POLICY, aliases = { "W21", "W22", "W23" },
    check = statement_check(RESOURCE_OR_IDENTITY, "NotResource", function(_, stmt) return stmt.NotResource ~= nil end),
  },
  {
    id = "W8", severity = "warning",
    message = "IAM policy allows every action of a service ('service:*')",
    reason = "Service-wide wildcards such as 's3:*' include destructive and policy-changing "
      .. "actions; list the actions the workload uses.",
    types = IDENTITY,
    check = action_check(IDENTITY_DOC, service_star, "Allow with Action"),
  },
  {
    id = "W9", severity = "warning",
    message = "Policy allows any principal ('*'), limited only by a Condition",
    reason = "Principal '*' with a Condition is only as safe as the condition; check that it pins "
      .. "the caller (aws:SourceArn, aws:SourceAccount, aws:PrincipalOrgID, aws:SourceVpce).",
    types = concat(RESOURCE, { ROLE }),
    check = statement_check(RESOURCE_OR_TRUST, "Principal", function(ctx, stmt)
      return has_condition(stmt) and ctx:wildcard_principal(stmt.Principal)
    end),
  },
}

return rules
