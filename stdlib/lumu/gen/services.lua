--- Service-side stacks of a lumu model (mu.md §4 rows 6-11).
--
-- local services = require "lumu.gen.services"
-- services.stacks(model, ctx) -> list of stack descriptors (lumu.gen.common)
--   ctx = { namespace = (default model.namespace), version = ...,
--           environments = list of environment tables (default
--             model.environments; lumu.synth passes the --env selection),
--           diagnostics = list to append {severity=, where=, key=, message=}
--             to (warnings about what is not generated, config problems
--             found while generating: a bad secret reference, a priority
--             clash, a database setting, ...),
--           production = as lumu.gen.database's ctx.production }.
--   Order: the shared stacks first (<ns>-bucket-codedeploy when an ec2
--   environment exists; per service <ns>-repo-<svc> unless imageRepository
--   is set, <ns>-app-<svc> for ec2), then per environment (model order), per
--   service (model order): <ns>-iam-service-<svc>-<env> (unless disableIAM),
--   <ns>-service-<svc>-<env> (ecs, ecs-fargate: lumu.gen.service; ec2:
--   the CodeDeploy variant), one <ns>-schedule-<svc>-<name>-<env> per
--   schedule (ECS only).  eks environments get a warning: not generated yet.
--   The database and DynamoDB stacks are lumu.gen.database's and
--   lumu.gen.dynamodb's (lumu.synth plans them); here each pair is wired to
--   them through their `bindings`.  Deterministic: same model -> same
--   descriptors.
-- services.context(model, svc, env, ctx, shared) -> sc   the values one
--   (service, environment) pair is generated from; used by lumu.gen.service,
--   lumu.gen.service_iam and lumu.gen.schedule.  From the bindings:
--   sc.db (lumu.gen.database.bindings, nil without a database here),
--   sc.tables (lumu.gen.dynamodb.bindings), sc.sub_vars (their exports as
--   Fn::Sub variables: ${DatabaseEndpointAddress}, ${TableOrdersName}, ...),
--   sc.db_secrets (ECS secrets {Name=, ValueFrom=} for the
--   ${DatabaseMasterPassword} values, never plain text), sc.db_statements
--   (the execution role's read of the password), sc.task_statements (the
--   task role's table access), sc.depends (the database / table stacks).
--   Database* values of a service without a database in that environment
--   stay mu's empty parameters.
-- services.priorities(model, diagnostics) -> { [service name] = {base=,
--   path={p...}, host={p...}} }   listener rule priorities: an explicit
--   `priority` is used as given (path rules first, then host rules, one per
--   3 patterns: ALB's limit of match values per condition); others get a
--   block of 10 from a hash of the service name (100, 110, ... 44990;
--   services with a catch-all pattern "/*", "*" get 45000 ... 49090 so they
--   are evaluated after the specific ones), probing to the next free block;
--   deterministic and stable when services are added.  Overlaps between
--   explicit priorities are errors.
-- services.fargate_size(cpu, memory) -> task_cpu, task_memory | nil, err
--   The smallest valid Fargate pair with cpu >= the container cpu and
--   memory >= the container memory (256/512 ... 16384/122880).
-- services.FARGATE: the table of valid pairs, {cpu=, memory={...}} rows.
-- services.secret_ref(v) -> ref | nil, err   one service.secrets value:
--   "ssm:NAME" or "/path/name" (SSM parameter of the stack's account and
--   region), "secretsmanager:NAME[:json-key]", or an SSM parameter /
--   Secrets Manager secret ARN (optionally with :json-key:stage:version).
-- services.log_retention(days) -> the smallest CloudWatch Logs retention
--   value >= days (default 30).
-- Service keys read beyond mu's (lumu.config checks them and fills the
-- defaults):
--   secrets = {VAR = ref | {env = ref}}   ECS `Secrets` (valueFrom), the
--     execution role may read exactly those; on ec2 fetched at boot (JSON
--     keys extracted with python3); a VAR also in environment is an error
--   logRetentionDays = 30                 the service log group's retention
--   repository = {scanOnPush=true, immutableTags=false, maxImages=100,
--     untaggedDays=14}                    (lumu.gen.repo)
--   dynamodb = {table, ...}               (lumu.gen.dynamodb)
local common = require "lumu.gen.common"

local M = {}

-- ---------------------------------------------------------------------------
-- Fargate sizes
-- ---------------------------------------------------------------------------

local function range(from, to, step)
  local t = {}
  for v = from, to, step do t[#t + 1] = v end
  return t
end

M.FARGATE = {
  { cpu = 256, memory = { 512, 1024, 2048 } },
  { cpu = 512, memory = range(1024, 4096, 1024) },
  { cpu = 1024, memory = range(2048, 8192, 1024) },
  { cpu = 2048, memory = range(4096, 16384, 1024) },
  { cpu = 4096, memory = range(8192, 30720, 1024) },
  { cpu = 8192, memory = range(16384, 61440, 4096) },
  { cpu = 16384, memory = range(32768, 122880, 8192) },
}

function M.fargate_size(cpu, memory)
  cpu, memory = math.tointeger(cpu) or 0, math.tointeger(memory) or 0
  for _, row in ipairs(M.FARGATE) do
    if row.cpu >= cpu then
      for _, m in ipairs(row.memory) do
        if m >= memory then return row.cpu, m end
      end
    end
  end
  return nil, string.format("no Fargate size has cpu >= %d and memory >= %d MiB (at most 16384 cpu units "
    .. "and 122880 MiB)", cpu, memory)
end

-- ---------------------------------------------------------------------------
-- Listener rule priorities
-- ---------------------------------------------------------------------------

M.PATTERNS_PER_RULE = 3

local function chunks(list)
  local out = {}
  for i = 1, #list, M.PATTERNS_PER_RULE do
    out[#out + 1] = table.move(list, i, math.min(i + M.PATTERNS_PER_RULE - 1, #list), 1, {})
  end
  return out
end
M.chunks = chunks

-- FNV-1a, 32 bits.
local function fnv1a(s)
  local h = 2166136261
  for i = 1, #s do
    h = h ~ s:byte(i)
    h = (h * 16777619) & 0xffffffff
  end
  return h
end

local BLOCKS, BLOCK0, BLOCK = 4900, 100, 10
local CATCH_ALL_SLOT = 4490 -- priorities 45000-49099 are for catch-all rules

local function catch_all(svc)
  for _, p in ipairs(svc.pathPatterns or {}) do
    if p == "/*" or p == "*" then return true end
  end
  for _, p in ipairs(svc.hostPatterns or {}) do
    if p == "*" then return true end
  end
  return false
end
M.catch_all = catch_all

function M.priorities(model, diagnostics)
  diagnostics = diagnostics or {}
  local out, used = {}, {}
  local function rules(svc)
    return #chunks(svc.pathPatterns or {}), #chunks(svc.hostPatterns or {})
  end
  local function assign(svc, base)
    local np, nh = rules(svc)
    local r = { base = base, path = {}, host = {} }
    for i = 1, np do r.path[i] = base + i - 1 end
    for i = 1, nh do r.host[i] = base + np + i - 1 end
    return r
  end
  -- explicit priorities first, in model order
  for _, svc in ipairs(model.services or {}) do
    local np, nh = rules(svc)
    if svc.priority and np + nh > 0 then
      local r = assign(svc, svc.priority)
      local last = svc.priority + np + nh - 1
      for p = svc.priority, last do
        if used[p] then
          diagnostics[#diagnostics + 1] = { severity = "error", where = svc._where,
            key = (svc._path or "service") .. ".priority", message = string.format(
              "listener rule priority %d of service '%s' is also used by service '%s' (each service takes one "
              .. "priority per rule: %d here)", p, svc.name, used[p], np + nh) }
        end
        used[p] = svc.name
      end
      if last > 50000 then
        diagnostics[#diagnostics + 1] = { severity = "error", where = svc._where,
          key = (svc._path or "service") .. ".priority", message = string.format(
            "the rules of service '%s' need priorities %d-%d, above ALB's maximum 50000", svc.name,
            svc.priority, last) }
      end
      out[svc.name] = r
    end
  end
  -- derived ones, by name so the result does not depend on model order
  local rest = {}
  for _, svc in ipairs(model.services or {}) do
    local np, nh = rules(svc)
    if not svc.priority and np + nh > 0 then rest[#rest + 1] = svc end
  end
  table.sort(rest, function(a, b) return a.name < b.name end)
  for _, svc in ipairs(rest) do
    local np, nh = rules(svc)
    local nblocks = (np + nh + BLOCK - 1) // BLOCK
    -- catch-all patterns go last (ALB evaluates lower priorities first)
    local lo, n = 0, CATCH_ALL_SLOT
    if catch_all(svc) then lo, n = CATCH_ALL_SLOT, BLOCKS - CATCH_ALL_SLOT end
    local slot = fnv1a(svc.name) % n
    local placed
    for _ = 1, n do
      local free = slot + nblocks <= n
      if free then
        for p = BLOCK0 + (lo + slot) * BLOCK, BLOCK0 + (lo + slot + nblocks) * BLOCK - 1 do
          if used[p] then free = false; break end
        end
      end
      if free then placed = lo + slot; break end
      slot = (slot + 1) % n
    end
    if not placed then
      diagnostics[#diagnostics + 1] = { severity = "error", where = svc._where,
        key = (svc._path or "service") .. ".priority",
        message = "no free listener rule priorities left for service '" .. svc.name .. "'; set priority" }
    else
      local base = BLOCK0 + placed * BLOCK
      for p = base, base + nblocks * BLOCK - 1 do used[p] = svc.name end
      out[svc.name] = assign(svc, base)
    end
  end
  return out
end

-- ---------------------------------------------------------------------------
-- Secrets and references
-- ---------------------------------------------------------------------------

-- A secret reference -> { value_from = string|intrinsic, ssm = bool,
-- resource = string|intrinsic (IAM), shell = ... } | nil, err
-- Forms: an SSM parameter ARN, a Secrets Manager secret ARN (optionally
-- with :json-key:stage:version), "ssm:NAME" / "/path/name" (SSM parameter
-- in the stack's account and region), "secretsmanager:NAME[:json-key]".
function M.secret_ref(v)
  if type(v) ~= "string" or v == "" then return nil, "expected an SSM parameter or Secrets Manager reference" end
  if v:find("%s") then return nil, "must not contain spaces: '" .. v .. "'" end
  local part, region, acct, rest = v:match("^arn:(aws[%w%-]*):ssm:([%w%-]+):(%d+):parameter(/.+)$")
  if part then
    return { value_from = v, service = "ssm", resource = v, name = rest, arn = true }
  end
  part, region, acct, rest = v:match("^arn:(aws[%w%-]*):secretsmanager:([%w%-]+):(%d+):secret:(.+)$")
  if part then
    local name = rest:match("^([^:]+)")
    local base = string.format("arn:%s:secretsmanager:%s:%s:secret:%s", part, region, acct, name)
    -- a full ARN ends in -XXXXXX (6 random characters); a partial one does not
    local resource = name:match("%-%w%w%w%w%w%w$") and base or (base .. "-??????")
    local jkey = rest:match("^[^:]+:([^:]+)")
    return { value_from = v, service = "secretsmanager", resource = resource, arn = true, secret_id = base,
      json_key = jkey }
  end
  if v:match("^arn:") then
    return nil, "'" .. v .. "' is neither an SSM parameter ARN nor a Secrets Manager secret ARN"
  end
  local name = v:match("^ssm:(.+)$") or (v:sub(1, 1) == "/" and v) or nil
  if name then
    local ok, err = require("lumu.gen.secrets").valid_ssm_name(name)
    if not ok then return nil, err end
    local path = name:gsub("^/", "")
    local arn = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/" .. path
    return { value_from = { ["Fn::Sub"] = arn }, service = "ssm", resource = { ["Fn::Sub"] = arn }, name = name }
  end
  local sname, jkey = v:match("^secretsmanager:([%w/_+=%.@%-]+):?(.*)$")
  if sname then
    local base = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:" .. sname
    local vf = base
    if jkey ~= "" then vf = base .. ":" .. jkey .. (select(2, jkey:gsub(":", "")) == 0 and "::" or "") end
    return { value_from = { ["Fn::Sub"] = vf }, service = "secretsmanager",
      resource = { ["Fn::Sub"] = base .. "-??????" }, secret_id = sname, json_key = jkey ~= "" and jkey or nil }
  end
  return nil, "expected ssm:NAME, /path/name, secretsmanager:NAME[:json-key] or an ARN, got '" .. v .. "'"
end

-- Database* parameters mu offers to service.environment values.
M.DATABASE_PARAMETERS = { "DatabaseName", "DatabaseMasterUsername", "DatabaseEndpointAddress",
  "DatabaseEndpointPort" }

-- ---------------------------------------------------------------------------
-- Context of one (service, environment)
-- ---------------------------------------------------------------------------

local function diag(ctx, severity, where, key, message)
  local list = ctx.diagnostics
  if list then list[#list + 1] = { severity = severity, where = where, key = key, message = message } end
end
M.diag = diag

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end
M.sorted_keys = sorted_keys

-- An ECR image reference in some account -> repository ARN (Fn::Sub) | nil
local function ecr_arn(image)
  local acct, region, name = image:match("^(%d+)%.dkr%.ecr%.([%w%-]+)%.amazonaws%.com[%w%.]*/([^:@]+)")
  if not acct then return nil end
  return string.format("arn:${AWS::Partition}:ecr:%s:%s:repository/%s", region, acct, name)
end
M.ecr_arn = ecr_arn

--- The name of a service's ECR repository (<ns>-repo-<svc> creates it).
function M.repo_name(ns, svc)
  return (ns .. "-" .. svc.name):lower()
end

--- The account holding the images of services in environment env when it is
-- not env's own: the tools account (tools{account=}), for an environment in
-- another account.  nil otherwise.
function M.image_account(model, env)
  local tools = model.tools
  local acct = type(tools) == "table" and tools.account
  if acct == nil or env == nil or env.account == nil then return nil end
  if tostring(env.account) == tostring(acct) then return nil end
  return tostring(acct)
end

function M.context(model, svc, env, ctx, shared)
  local config = require "lumu.config"
  local ns = ctx.namespace or model.namespace or "mu"
  local envname = env.name
  local provider = env.provider or "ecs"
  local spath = svc._path or "service"
  local sc = {
    model = model, ctx = ctx, ns = ns, svc = svc, env = env, envname = envname, name = svc.name,
    provider = provider, path = spath, where = svc._where,
    fargate = provider == "ecs-fargate", ec2 = provider == "ec2",
    https = env.loadbalancer ~= nil and env.loadbalancer.certificate ~= nil,
    external_env = env._external or false,
  }
  sc.network_mode = sc.ec2 and nil or config.network_mode(svc, env)
  sc.stack = {
    service = common.stack_name(ns, "service", svc.name, envname),
    iam = common.stack_name(ns, "iam-service", svc.name, envname),
    repo = common.stack_name(ns, "repo", svc.name),
    app = common.stack_name(ns, "app", svc.name),
    bucket = common.stack_name(ns, "bucket", "codedeploy"),
    environment = common.stack_name(ns, "environment", envname),
    loadbalancer = common.stack_name(ns, "loadbalancer", envname),
    common_iam = common.stack_name(ns, "iam-common"),
  }
  local envstack, lbstack = sc.stack.environment, sc.stack.loadbalancer
  sc.exports = {
    VpcId = common.export_name(envstack, "VpcId"),
    EcsCluster = common.export_name(envstack, "EcsCluster"),
    ServiceSubnetIds = common.export_name(envstack, "InstanceSubnetIds"),
    ServiceSecurityGroup = common.export_name(envstack, "InstanceSecurityGroup"),
    ElbSecurityGroup = common.export_name(lbstack, "InstanceSecurityGroup"),
    ElbHttpListenerArn = common.export_name(lbstack, "ElbHttpListenerArn"),
    ElbHttpsListenerArn = common.export_name(lbstack, "ElbHttpsListenerArn"),
    ServiceDiscoveryId = common.export_name(lbstack, "ServiceDiscoveryId"),
    ServiceDiscoveryName = common.export_name(lbstack, "ServiceDiscoveryName"),
    RepoUrl = common.export_name(sc.stack.repo, "RepoUrl"),
    RepoArn = common.export_name(sc.stack.repo, "RepoArn"),
    AppName = common.export_name(sc.stack.app, "ApplicationName"),
    RevisionBucket = common.export_name(sc.stack.bucket, "Bucket"),
    TaskDefinitionArn = common.export_name(sc.stack.service, "MicroserviceTaskDefinitionArn"),
  }
  -- image
  if svc.imageRepository then
    sc.image = { external = svc.imageRepository, ecr_arn = ecr_arn(svc.imageRepository) }
  elseif M.image_account(model, env) then
    -- the repository lives in the tools account (where the pipeline pushes):
    -- the service names it (its exports cannot cross accounts)
    sc.image = { repo = true, account = M.image_account(model, env), name = M.repo_name(ns, svc) }
  else
    sc.image = { repo = true }
  end
  sc.repo_stack = shared and shared.repo_stack or (not svc.imageRepository)
  -- deployment strategy (mu: ECS min healthy / max percent)
  local strategy = svc.deploymentStrategy or "blue_green"
  sc.strategy = strategy
  local pct = { blue_green = { 100, 200 }, rolling = { 50, 100 }, replace = { 0, 100 } }
  sc.min_percent, sc.max_percent = pct[strategy][1], pct[strategy][2]
  -- Fargate task size
  if sc.fargate then
    local c, m = M.fargate_size(svc.cpu, svc.memory)
    if not c then
      diag(ctx, "error", svc._where, spath .. ".cpu", m)
      c, m = 16384, 122880
    end
    sc.task_cpu, sc.task_memory = c, m
  end
  -- listener rules
  sc.path_chunks = chunks(svc.pathPatterns or {})
  sc.host_chunks = chunks(svc.hostPatterns or {})
  sc.has_tg = #sc.path_chunks + #sc.host_chunks > 0
  sc.priority = shared and shared.priorities and shared.priorities[svc.name]
  -- IAM: which roles come from the service IAM stack, which are given
  sc.disable_iam = model.disableIAM or false
  sc.roles = svc.roles or {}
  -- log retention
  sc.log_retention = M.log_retention(svc.logRetentionDays or 30)
  -- container environment and secrets
  local db = config.database_for(svc, envname)
  sc.database = db
  sc.environment, sc.secrets, sc.db_params, sc.db_secrets = {}, {}, {}, {}
  -- the database and the DynamoDB tables of this pair (lumu.gen.database /
  -- lumu.gen.dynamodb): Fn::Sub variables, secrets, IAM statements, stacks
  sc.sub_vars, sc.depends = {}, {}
  sc.exec_statements, sc.task_statements = {}, {}
  local bctx = { namespace = ns, production = ctx.production }
  local function note(list)
    for _, d in ipairs(list or {}) do
      diag(ctx, d.severity, d.where, d.key, d.message)
    end
  end
  if db then
    local b, bd = require("lumu.gen.database").bindings(model, svc, env, bctx)
    note(bd)
    sc.db = b
    if b then
      for k, v in pairs(b.values) do sc.sub_vars[k] = v end
      sc.depends[#sc.depends + 1] = b.stack
      sc.db_secrets = b.secrets
      for i, st in ipairs(b.statements) do
        st.Sid = i == 1 and "DatabasePassword" or ("DatabasePasswordDecrypt" .. (i > 2 and (i - 1) or ""))
      end
      sc.db_statements = b.statements
      if b.password.store == "rds" and #b.secrets > 0 and sc.ec2 then
        diag(ctx, "error", db._where or svc._where, spath .. ".database.manageMasterUserPassword",
          "the instances of the ec2 provider cannot read the RDS-managed password secret (environment '" .. envname
          .. "'); use masterPasswordSSMParam or masterPasswordSecretArn")
      end
    end
  end
  if #(svc.dynamodb or {}) > 0 then
    local b, bd = require("lumu.gen.dynamodb").bindings(model, svc, env, bctx)
    note(bd)
    if b then
      for k, v in pairs(b.values) do sc.sub_vars[k] = v end
      sc.depends[#sc.depends + 1] = b.stack
      for i, st in ipairs(b.statements) do
        st.Sid = "Tables" .. i
        sc.task_statements[#sc.task_statements + 1] = st
      end
      sc.tables = b
    end
  end
  for _, k in ipairs(sorted_keys(svc.environment)) do
    local v = config.env_value(svc.environment[k], envname)
    if type(v) ~= "string" then v = tostring(v) end
    local key = spath .. ".environment." .. k
    if v:find("${DatabaseMasterPassword}", 1, true) then
      -- lumu.gen.database.bindings turned it into an ECS secret (or reported
      -- a value that embeds it in other text)
      if not db then
        diag(ctx, "error", svc._where, key, "refers to ${DatabaseMasterPassword} but service '" .. svc.name
          .. "' has no database in environment '" .. envname .. "'")
      end
    else
      if not sc.db then
        for _, p in ipairs(M.DATABASE_PARAMETERS) do
          if v:find("${" .. p .. "}", 1, true) then sc.db_params[p] = true end
        end
      end
      sc.environment[#sc.environment + 1] = { name = k, value = v, key = key }
    end
  end
  -- the database password for the ec2 instances, fetched at boot
  if sc.db and sc.ec2 and sc.db.password.store ~= "rds" then
    local pw = sc.db.password
    for _, e in ipairs(sc.db_secrets) do
      sc.secrets[#sc.secrets + 1] = { env = e.Name, value_from = pw.value_from, service = pw.service,
        resource = pw.resource, name = pw.name, secret_id = pw.id,
        json_key = pw.store == "secretsmanager" and "password" or nil, database = true }
    end
  end
  for _, k in ipairs(sorted_keys(svc.secrets)) do
    local v = config.env_value(svc.secrets[k], envname)
    local key = spath .. ".secrets." .. k
    if svc.environment and svc.environment[k] ~= nil then
      diag(ctx, "error", svc._where, key, k .. " is also set in environment: a container variable is either a "
        .. "plain value or a secret")
    elseif v ~= "" then
      local ref, err = M.secret_ref(v)
      if not ref then
        diag(ctx, "error", svc._where, key, err)
      else
        ref.env = k
        sc.secrets[#sc.secrets + 1] = ref
      end
    end
  end
  table.sort(sc.secrets, function(a, b) return a.env < b.env end)
  -- roles lumu does not create must already allow what the bindings need
  local given_task = sc.disable_iam or (sc.ec2 and sc.roles.ec2Instance) or (not sc.ec2 and sc.roles.ecsTask)
  if #sc.task_statements > 0 and given_task then
    diag(ctx, "warning", svc._where, spath .. ".dynamodb", "the " .. (sc.ec2 and "instance" or "task")
      .. " role of service '" .. svc.name .. "' is not created by lumu here (environment '" .. envname
      .. "'): it must allow reading and writing the tables of stack " .. sc.tables.stack .. " itself")
  end
  if #sc.db_secrets > 0 and sc.disable_iam then
    diag(ctx, "warning", svc._where, spath .. ".database", "disableIAM: the given role of service '" .. svc.name
      .. "' must be allowed to read the database password (environment '" .. envname .. "')")
  end
  return sc
end

-- CloudWatch Logs retention: the smallest allowed value >= days.
M.RETENTION = { 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
  2922, 3288, 3653 }
function M.log_retention(days)
  days = math.tointeger(days) or 30
  for _, d in ipairs(M.RETENTION) do
    if d >= days then return d end
  end
  return 3653
end

-- ---------------------------------------------------------------------------
-- Stacks
-- ---------------------------------------------------------------------------

function M.stacks(model, ctx)
  ctx = ctx or {}
  ctx.namespace = ctx.namespace or model.namespace or "mu"
  local envs = ctx.environments or model.environments or {}
  local svcs = model.services or {}
  local repo = require "lumu.gen.repo"
  local service = require "lumu.gen.service"
  local service_iam = require "lumu.gen.service_iam"
  local schedule = require "lumu.gen.schedule"
  local out = {}
  local shared = { priorities = M.priorities(model, ctx.diagnostics) }

  for _, svc in ipairs(svcs) do
    local spath = svc._path or "service"
    if #envs == 0 then
      diag(ctx, "warning", svc._where, spath, "no environments in this configuration, so service '" .. svc.name
        .. "' is not deployed anywhere (lumu synth --env NAME generates it for an environment defined elsewhere)")
    end
  end

  local any_ec2, any_container = false, false
  for _, env in ipairs(envs) do
    if env.provider == "ec2" then any_ec2 = true
    elseif env.provider ~= "eks" and env.provider ~= "eks-fargate" then any_container = true end
  end
  if #svcs > 0 and any_ec2 then out[#out + 1] = service.bucket_stack(model, ctx) end
  for _, svc in ipairs(svcs) do
    if any_container and not svc.imageRepository then
      out[#out + 1] = repo.stack(model, svc, ctx)
    end
    if any_ec2 then out[#out + 1] = service.app_stack(model, svc, ctx) end
  end

  for _, env in ipairs(envs) do
    for _, svc in ipairs(svcs) do
      local spath = svc._path or "service"
      if env.provider == "eks" or env.provider == "eks-fargate" then
        local with = {}
        if svc.database then with[#with + 1] = "database" end
        if #(svc.dynamodb or {}) > 0 then with[#with + 1] = "tables" end
        diag(ctx, "warning", svc._where, spath, "service '" .. svc.name .. "' on eks environment '" .. env.name
          .. "': not generated yet (EKS services" .. (#with > 0 and (" and their " .. table.concat(with, " and "))
          or "") .. " come with a later version)")
      else
        local sc = M.context(model, svc, env, ctx, {
          priorities = shared.priorities,
          repo_stack = any_container and not svc.imageRepository,
        })
        if not sc.disable_iam then out[#out + 1] = service_iam.stack(sc) end
        out[#out + 1] = service.stack(sc)
        if #(svc.schedules or {}) > 0 then
          if sc.ec2 then
            diag(ctx, "warning", svc._where, spath .. ".schedules", "scheduled tasks run on ECS; environment '"
              .. env.name .. "' uses the ec2 provider, so its schedules are not generated")
          else
            for _, s in ipairs(svc.schedules) do out[#out + 1] = schedule.stack(sc, s) end
          end
        end
      end
    end
  end
  return out
end

return M
