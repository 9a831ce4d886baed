--- Environment stacks: the entry point of lumu's environment-side generators.
--
-- local environment = require "lumu.gen.environment"
-- environment.stacks(model [, ctx [, opts]]) -> list of stack descriptors |
--     nil, err
--   model: the lumu.config model (hand-built tables work too: missing keys
--   take mu's defaults). ctx = {namespace = (default model.namespace or "mu"),
--   version = (unused; tags carry lumu's version), az_count = n (optional:
--   the region's AZ count, sets the VPC/target AZCount parameter; without it
--   the template default 3 applies), diagnostics = list (optional: gets
--   {severity="warning", where=, key=, message=} for settings lumu accepts
--   but cannot apply, e.g. cluster.httpProxy on EKS)}. opts.kinds: set of kinds to keep
--   ({vpc=true, ...}; default all). opts.environments: list of environment
--   names to keep (case-insensitive; default all).
--   Returns `<ns>-iam-common` first (unless model.disableIAM; only when there
--   is an environment), then per environment, in dependency order:
--     <ns>-iam-environment-<env>   (unless disableIAM)
--     <ns>-vpc-<env> | <ns>-target-<env> | nothing (vpcTarget.environment)
--     <ns>-loadbalancer-<env>      (ecs, ecs-fargate, ec2)
--     <ns>-environment-<env>
--   Environments whose VPC comes from another environment are listed after
--   it. Each descriptor follows lumu.gen.common (name, kind, env, template,
--   parameters, tags, depends, description).
--   err (a string "environments[2].vpcTarget.instanceSubnetIds: ...") for a
--   model lumu cannot turn into stacks: unknown provider, a vpcTarget
--   without subnets, a cycle of vpcTarget.environment, names too long for
--   the IAM role names. Bad argument types raise.
-- environment.settings(model, index [, ctx]) -> info | raises
--   The normalised settings of model.environments[index] that the stack
--   modules (lumu.gen.vpc, target, iam, loadbalancer, cluster) take:
--   {ns, name, index, path, provider, eks, cluster = {...mu defaults},
--   lb = {...}, discovery_name, vpc_target, roles, az_count, disable_iam,
--   names = {iam_common, iam_environment, network (stack whose exports give
--   VpcId/ElbSubnetIds/InstanceSubnetIds), network_kind ("vpc"|"target"|
--   "shared"), network_stack (that stack when this model creates it),
--   loadbalancer, environment}}.
--   A raised error from a bad model is a table {message = "..."} with
--   __tostring; environment.stacks converts it to nil, message.
-- environment.PROVIDERS: the supported providers (all five of mu's).
local common = require "lumu.gen.common"

local M = {}

M.PROVIDERS = { ecs = true, ["ecs-fargate"] = true, ec2 = true, eks = true, ["eks-fargate"] = true }
local LB_PROVIDERS = { ecs = true, ["ecs-fargate"] = true, ec2 = true }

local ModelError = { __tostring = function(e) return e.message end }

local function fail(path, msg)
  error(setmetatable({ message = path .. ": " .. msg }, ModelError), 0)
end

local function nonempty(v) return v ~= nil and v ~= "" end

local function warn(ctx, where, key, message)
  if type(ctx.diagnostics) == "table" then
    ctx.diagnostics[#ctx.diagnostics + 1] = { severity = "warning", where = where, key = key, message = message }
  end
end

local function list_of_strings(v)
  local out = {}
  if type(v) == "table" then
    for _, s in ipairs(v) do
      if nonempty(s) then out[#out + 1] = tostring(s) end
    end
  end
  return out
end

-- mu's defaults (the config module fills them; hand-built models may not).
local function cluster_settings(c, provider)
  c = c or {}
  local eks = provider == "eks" or provider == "eks-fargate"
  local function num(v, d) return tonumber(v) or d end
  return {
    instanceType = nonempty(c.instanceType) and c.instanceType or (eks and "t2.medium" or "t3.micro"),
    imageId = nonempty(c.imageId) and c.imageId or nil,
    osType = nonempty(c.osType) and c.osType or "amazon",
    instanceTenancy = nonempty(c.instanceTenancy) and c.instanceTenancy or "default",
    desiredCapacity = num(c.desiredCapacity, 1),
    minSize = num(c.minSize, 1),
    maxSize = num(c.maxSize, eks and 3 or 2),
    keyName = nonempty(c.keyName) and c.keyName or nil,
    sshAllow = nonempty(c.sshAllow) and c.sshAllow or nil, -- nil: vpc.SSH_DEFAULT (mu: 0.0.0.0/0)
    targetCPUReservation = num(c.targetCPUReservation, 75),
    targetMemoryReservation = num(c.targetMemoryReservation, 75),
    httpProxy = nonempty(c.httpProxy) and c.httpProxy or nil,
    extraUserData = nonempty(c.extraUserData) and c.extraUserData or nil,
  }
end

local function lb_settings(lb)
  lb = lb or {}
  local logs = lb.accessLogs or {}
  return {
    hostedzone = nonempty(lb.hostedzone) and lb.hostedzone or nil,
    name = nonempty(lb.name) and lb.name or nil,
    certificate = nonempty(lb.certificate) and lb.certificate or nil,
    internal = lb.internal == true or lb.internal == "true",
    accessLogs = {
      s3BucketName = nonempty(logs.s3BucketName) and logs.s3BucketName or nil,
      s3Prefix = logs.s3Prefix ~= nil and tostring(logs.s3Prefix) or "access-logs",
    },
  }
end

local function namespace_of(model, ctx)
  local ns = ctx.namespace
  if not nonempty(ns) then ns = model.namespace end
  if not nonempty(ns) then ns = "mu" end
  return ns
end

local function find_env(model, name)
  for i, e in ipairs(model.environments or {}) do
    if type(e) == "table" and type(e.name) == "string" and e.name:lower() == name:lower() then return e, i end
  end
  return nil
end

-- The stack that exports VpcId/ElbSubnetIds/InstanceSubnetIds for env i.
local function network_of(model, ns, env, path, seen)
  local vt = env.vpcTarget or {}
  if nonempty(vt.environment) then
    local tenv = tostring(vt.environment)
    local tns = nonempty(vt.namespace) and tostring(vt.namespace) or ns
    local other = tns == ns and find_env(model, tenv) or nil
    if other == nil then
      -- another namespace, or an environment this file does not define: mu's vpc stack name
      return common.stack_name(tns, "vpc", tenv), "shared", nil
    end
    if seen[other] then
      fail(path .. ".vpcTarget.environment", "environments reuse each other's VPC in a cycle ('"
        .. tenv .. "')")
    end
    seen[other] = true
    local name, kind = network_of(model, ns, other, path, seen)
    if kind == "shared" then return name, "shared", nil end
    return name, "shared", name
  elseif nonempty(vt.vpcId) then
    local name = common.stack_name(ns, "target", env.name)
    return name, "target", name
  end
  local name = common.stack_name(ns, "vpc", env.name)
  return name, "vpc", name
end

--- The normalised settings of model.environments[index].
function M.settings(model, index, ctx)
  assert(type(model) == "table", "settings: model table expected")
  ctx = ctx or {}
  local env = (model.environments or {})[index]
  local path = "environments[" .. tostring(index) .. "]"
  if type(env) ~= "table" then fail(path, "environment table expected") end
  local ns = namespace_of(model, ctx)
  if not ns:match("^[A-Za-z][A-Za-z0-9-]*$") then
    fail("namespace", "'" .. ns .. "' cannot start a stack name (letters, digits and '-', starting with a letter)")
  end
  local name = env.name
  if not nonempty(name) or type(name) ~= "string" then fail(path .. ".name", "an environment needs a name") end
  if not name:match("^[A-Za-z0-9][A-Za-z0-9-]*$") then
    fail(path .. ".name", "'" .. name .. "' cannot be part of a stack name (letters, digits and '-')")
  end
  local provider = nonempty(env.provider) and env.provider or "ecs"
  if not M.PROVIDERS[provider] then
    fail(path .. ".provider", "unknown provider '" .. tostring(provider)
      .. "' (ecs, ecs-fargate, ec2, eks, eks-fargate)")
  end
  local eks = provider == "eks" or provider == "eks-fargate"
  local disable_iam = model.disableIAM == true

  local names = {
    iam_common = (not disable_iam) and common.stack_name(ns, "iam", "common") or nil,
    iam_environment = (not disable_iam) and common.stack_name(ns, "iam", "environment", name) or nil,
    loadbalancer = LB_PROVIDERS[provider] and common.stack_name(ns, "loadbalancer", name) or nil,
    environment = common.stack_name(ns, "environment", name),
  }
  names.network, names.network_kind, names.network_stack = network_of(model, ns, env, path, { [env] = true })
  for _, n in pairs(names) do
    if type(n) == "string" and #n > 128 then fail(path .. ".name", "stack name '" .. n .. "' is longer than 128") end
  end

  local vt
  if names.network_kind == "target" then
    local src = env.vpcTarget
    vt = { vpcId = src.vpcId, instanceSubnetIds = list_of_strings(src.instanceSubnetIds),
      elbSubnetIds = list_of_strings(src.elbSubnetIds) }
    if #vt.instanceSubnetIds == 0 then
      fail(path .. ".vpcTarget.instanceSubnetIds", "vpcTarget.vpcId needs the subnets for the instances")
    end
    if LB_PROVIDERS[provider] and #vt.elbSubnetIds == 0 then
      fail(path .. ".vpcTarget.elbSubnetIds", "vpcTarget.vpcId needs the subnets for the load balancer")
    end
  end

  local roles = {}
  for k, v in pairs(env.roles or {}) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" and nonempty(v) then roles[k] = v end
  end
  -- the roles taken from the environment IAM stack have fixed names: they must fit
  local iam = require "lumu.gen.iam"
  local defaults = {}
  if eks and not nonempty(roles.eksService) then defaults[#defaults + 1] = "eks_service" end
  if provider == "eks-fargate" then defaults[#defaults + 1] = "eks_pods" end
  if (provider == "ecs" and not nonempty(roles.instance))
      or (provider == "eks" and not (nonempty(roles.instance) and tostring(roles.instance):match(":role/"))) then
    defaults[#defaults + 1] = "instance"
  end
  for _, kind in ipairs(defaults) do
    local fits, pattern = iam.names_fit(ns, name, kind)
    if not fits then
      fail(path .. ".name", string.format("the IAM role name '%s' would be longer than 64 characters; "
        .. "use a shorter environment name or namespace", pattern))
    end
  end

  -- settings lumu accepts but cannot apply: warnings (ctx.diagnostics)
  local c = type(env.cluster) == "table" and env.cluster or {}
  local function where(tbl, key) return (tbl._keys and tbl._keys[key]) or tbl._where or env._where end
  if eks and nonempty(c.httpProxy) then
    warn(ctx, where(c, "httpProxy"), path .. ".cluster.httpProxy",
      "not applied to EKS nodes or Fargate pods (configure the proxy in cluster.extraUserData)")
  end
  if (provider == "ecs" or provider == "ec2") and nonempty(c.osType) and c.osType ~= "amazon" then
    warn(ctx, where(c, "osType"), path .. ".cluster.osType",
      "'" .. tostring(c.osType) .. "' is passed as ImageOsType only: lumu's instance setup targets Amazon Linux")
  end
  if provider == "eks" and nonempty(roles.instance) and not tostring(roles.instance):match(":role/") then
    warn(ctx, where(env.roles, "instance"), path .. ".roles.instance",
      "ignored on EKS: a managed node group needs a role ARN, not an instance profile")
  end

  local discovery = env.discovery or {}
  local az = ctx.az_count
  return {
    ns = ns, name = name, index = index, path = path, provider = provider, eks = eks,
    cluster = cluster_settings(env.cluster, provider),
    lb = lb_settings(env.loadbalancer),
    discovery_name = nonempty(discovery.name) and discovery.name or (name .. "." .. ns .. ".local"),
    vpc_target = vt, roles = roles, az_count = az, disable_iam = disable_iam,
    names = names,
  }
end

-- The users' own database password parameters/secrets (mu.yml's
-- masterPasswordSSMParam, lumu's masterPasswordSecretArn) that the database
-- stacks resolve with the CloudFormation role.
local function secret_reads(model, ns)
  local reads = { ssm = {}, secretsmanager = {} }
  local okc, config = pcall(require, "lumu.config")
  local oks, secrets = pcall(require, "lumu.gen.secrets")
  if not (okc and oks) then return reads end
  local services = type(model.services) == "table" and model.services or {}
  for _, svc in ipairs(services) do
    if type(svc) == "table" and type(svc.name) == "string" and type(svc.database) == "table" then
      for _, e in ipairs(model.environments or {}) do
        if type(e) == "table" and type(e.name) == "string" then
          local db = config.database_for(svc, e.name)
          local ok, src = pcall(secrets.password_source, ns, svc.name, e.name, db or {})
          if db and ok and type(src) == "table" and not src.managed and src.resource ~= nil
              and reads[src.service] then
            table.insert(reads[src.service], src.resource)
          end
        end
      end
    end
  end
  return reads
end

local function check_args(model, ctx, opts)
  if type(model) ~= "table" then error("bad argument #1 to 'stacks' (model table expected)", 3) end
  if ctx ~= nil and type(ctx) ~= "table" then error("bad argument #2 to 'stacks' (ctx table expected)", 3) end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #3 to 'stacks' (options table expected)", 3) end
  ctx = ctx or {}
  if ctx.namespace ~= nil and type(ctx.namespace) ~= "string" then
    error("bad argument #2 to 'stacks' (ctx.namespace must be a string)", 3)
  end
  if ctx.az_count ~= nil and (math.type(ctx.az_count) ~= "integer" or ctx.az_count < 2) then
    error("bad argument #2 to 'stacks' (ctx.az_count must be an integer >= 2)", 3)
  end
  if model.environments ~= nil and type(model.environments) ~= "table" then
    error("bad argument #1 to 'stacks' (model.environments must be a list)", 3)
  end
end

local function build(model, ctx, opts)
  local envs = model.environments or {}
  local keep_env
  if opts.environments then
    keep_env = {}
    for _, n in ipairs(opts.environments) do keep_env[tostring(n):lower()] = true end
  end
  local infos, seen = {}, {}
  for i = 1, #envs do
    local info = M.settings(model, i, ctx)
    local key = info.name:lower()
    if seen[key] then
      fail(info.path .. ".name", "duplicate environment name '" .. info.name .. "' (also " .. seen[key] .. ")")
    end
    seen[key] = info.path
    if not keep_env or keep_env[info.name:lower()] then infos[#infos + 1] = info end
  end
  -- environments providing a VPC first (stable otherwise)
  local ordered, done, by_network = {}, {}, {}
  for _, info in ipairs(infos) do
    if info.names.network_kind ~= "shared" then by_network[info.names.network] = info end
  end
  local function emit(info)
    if done[info] then return end
    done[info] = true
    if info.names.network_kind == "shared" and info.names.network_stack then
      local owner = by_network[info.names.network_stack]
      if owner then emit(owner) end
    end
    ordered[#ordered + 1] = info
  end
  for _, info in ipairs(infos) do emit(info) end

  local kinds = opts.kinds
  local function want(kind) return kinds == nil or kinds[kind] end
  local iam = require "lumu.gen.iam"
  local out = {}
  if #ordered > 0 and model.disableIAM ~= true and want("iam") then
    -- role ARNs from every environment's `roles:` (not only the selected
    -- ones, so the common stack is the same whichever environment is deployed)
    local extra = {}
    for _, e in ipairs(envs) do
      for k, arn in pairs(type(e.roles) == "table" and e.roles or {}) do
        if type(k) == "string" and type(arn) == "string" and arn:match("^arn:[^:]+:iam::%d+:role/") then
          extra[#extra + 1] = arn
        end
      end
    end
    out[#out + 1] = iam.common_stack(ordered[1].ns, extra, secret_reads(model, ordered[1].ns))
  end
  for _, info in ipairs(ordered) do
    if info.names.iam_environment and want("iam") then out[#out + 1] = iam.environment_stack(info) end
    if info.names.network_kind == "vpc" and want("vpc") then
      out[#out + 1] = require("lumu.gen.vpc").stack(info)
    elseif info.names.network_kind == "target" and want("target") then
      out[#out + 1] = require("lumu.gen.target").stack(info)
    end
    if info.names.loadbalancer and want("loadbalancer") then
      out[#out + 1] = require("lumu.gen.loadbalancer").stack(info)
    end
    if want("environment") then out[#out + 1] = require("lumu.gen.cluster").stack(info) end
  end
  return out
end

function M.stacks(model, ctx, opts)
  check_args(model, ctx, opts)
  local ok, res = pcall(build, model, ctx or {}, opts or {})
  if ok then return res end
  if getmetatable(res) == ModelError then return nil, res.message end
  error(res, 0)
end

return M
