--- The database stack of a service in an environment:
-- <ns>-database-<svc>-<env> (mu.md §3.5, §4 row 12, §5.9).
--
-- local database = require "lumu.gen.database"
--
-- database.stacks(model, ctx) -> descriptors, diagnostics
--   One descriptor (lumu.gen.common) per service with a database x
--   environment, environments in model order (ctx.environments: a list of
--   environment tables, or of names, replaces model.environments, e.g. for
--   `db up ENV` with an environment defined elsewhere).  A pair whose
--   settings are wrong gets no descriptor and one error in diagnostics.
--   ctx = { namespace = (default model.namespace or "mu"),
--           environments = (see above),
--           diagnostics = list to append to (also returned),
--           production = set {name=true} or function(name) -> bool: which
--             environments are production-like (default below) }.
--   diagnostics: {severity = "error"|"warning", where = "mu.yml:24:7",
--   key = "service.database.kmsKey", path = (same as key), message = ...};
--   config.format_error() formats them.  Deterministic.
-- database.stack(model, svc, env, ctx) -> descriptor | nil, diagnostics
--   One pair (env: an environment table or a name); nil without error
--   diagnostics when the service has no database in that environment.
-- database.settings(model, svc, env, ctx) -> s | nil, diagnostics
--   The resolved settings one template is generated from (engine, mode,
--   sizes, key, password source, names of the stacks involved).
-- database.bindings(model, svc, env, ctx) -> b | nil, diagnostics
--   What a service stack needs to use its database (nil when none):
--   b.stack     the database stack name (add it to the service's depends)
--   b.exports   {DatabaseName=, DatabaseMasterUsername=,
--               DatabaseEndpointAddress=, DatabaseEndpointPort=,
--               DatabaseIdentifier=, DatabaseSecurityGroup=} export names,
--               "<ns>-database-<svc>-<env>-<Output>"
--   b.values    the same keys -> {["Fn::ImportValue"] = export name}: the
--               variable map of an Fn::Sub that renders `${DatabaseName}`,
--               `${DatabaseEndpointAddress}`, ... in service.environment
--   b.password  secrets.password_source() of this database, with
--               value_from set (an ECS `ValueFrom`: SSM parameter ARN, or
--               Secrets Manager ARN + ":password::")
--   b.secrets   { {Name = VAR, ValueFrom = ...}, ... } for every
--               service.environment VAR whose value in this environment is
--               exactly "${DatabaseMasterPassword}" (sorted by Name); the
--               password is never rendered as plain text
--   b.statements IAM statements for the ECS task EXECUTION role (empty
--               when b.secrets is): read the parameter/secret, kms:Decrypt
--               through SSM/Secrets Manager for that one resource
--   An environment value that embeds ${DatabaseMasterPassword} inside other
--   text is an error diagnostic (it cannot be an ECS secret).
-- database.template(s) -> cfn template builder, {parameter = value}   (s from
--   database.settings)
-- database.kms_key_kind(v) -> "arn" | "alias-arn" | "id" | "alias" | nil
-- database.production_like(model, envname [, ctx]) -> boolean
-- database.ENGINES: engine name -> {port=, cluster=, family=, ...}
--
-- Decisions:
-- * Engines: RDS instances for mysql, mariadb, postgres, sqlserver-ex/-web/
--   -se/-ee, oracle-se2/-ee; Aurora clusters for aurora-mysql and
--   aurora-postgresql; mu's `aurora` means aurora-mysql (the MySQL 5.6
--   "aurora" engine is retired).  Names are case-insensitive.
-- * engineMode serverless = Aurora Serverless v2 (AWS ended v1 on
--   2025-03-31: new EngineMode=serverless clusters are refused): a
--   provisioned-mode cluster with ServerlessV2ScalingConfiguration and one
--   db.serverless instance.  minSize/maxSize are ACUs (at most 256);
--   secondsUntilAutoPause > 0 (mu's default 300) means auto-pause: v2 then
--   needs MinCapacity 0 and at least 300 seconds.  `serverlessVersion: 1`
--   renders mu's v1 shape (EngineMode serverless + ScalingConfiguration)
--   with a warning, for partitions/accounts where AWS still allows it.
--   A non-Aurora engine with engineMode serverless (the seed's `engine:
--   mysql`) uses the Aurora engine of its family (aurora-mysql,
--   aurora-postgresql) with a warning; sqlserver/oracle cannot.
-- * mu's default instance class db.t2.small cannot be created any more
--   (Aurora needs db.t3.medium or larger; db.t2 is retired): when the
--   user did not write instanceClass, lumu picks db.t4g.medium (Aurora),
--   db.t4g.micro (mysql, mariadb, postgres), db.t3.small (sqlserver-ex,
--   -web), db.m5.xlarge (sqlserver-se, -ee), db.m5.large (oracle).
-- * Storage gp3, at least 20 GiB (instances); StorageEncrypted always;
--   KmsKeyId: the kmsKey (key ARN, alias ARN, key id or alias/NAME; anything
--   else is an error naming the key and its position), else the service IAM
--   stack's DatabaseKey (export <ns>-iam-service-<svc>-<env>-DatabaseKeyArn),
--   else (disableIAM) alias/aws/rds.
-- * iamAuthentication -> EnableIAMDatabaseAuthentication (mysql, mariadb,
--   postgres, Aurora; an error for sqlserver/oracle); no post-stack call.
-- * Backups: BackupRetentionPeriod = backupRetentionDays (default 7;
--   Aurora needs >= 1); DeletionPolicy and UpdateReplacePolicy Snapshot on
--   the cluster or the standalone instance; CopyTagsToSnapshot.
-- * DeletionProtection = deletionProtection, else true for production-like
--   environments: a name with a token prod/production/prd/live
--   (split at - _ .) or the production environment of a service pipeline.
-- * Network: a subnet group of the environment's instance subnets; a
--   security group allowing only the engine's port, only from the
--   environment's instance security group (mu opened 5432, 3306, 1433 and
--   1521 whatever the engine), egress to nothing (127.0.0.1/32 as mu).
-- * Master password (lumu.gen.secrets): never a template or stack
--   parameter value.  MasterUserPassword is built with Fn::Sub from plain
--   parameters DatabaseMasterSecretParameter (the SSM name) and
--   DatabaseMasterSecretVersion (default "" = latest; `db up` passes the
--   version it stored, so a new password updates the database) into
--   "{{resolve:ssm-secure:NAME:VERSION}}", or "{{resolve:secretsmanager:
--   ARN:SecretString:password}}" (masterPasswordSecretArn), or
--   ManageMasterUserPassword (manageMasterUserPassword: true).
--   descriptor.password = {store=, name=|id=, managed=, kms_key=,
--   version_parameter=} tells `db up` what to create before deploying
--   (kms_key: the kmsKey, or {stack=, output="DatabaseKeyArn", export=},
--   or nil for alias/aws/ssm).
-- Parameters keep mu's names where mu had them (DatabaseName,
-- DatabaseMasterUsername, DatabaseInstanceClass, DatabaseStorage,
-- ScalingMinCapacity, ScalingMaxCapacity, SecondsUntilAutoPause, VpcId,
-- InstanceSubnetIds, InstanceSecurityGroup (export names of the environment
-- stack), DatabaseKeyArn) and resources mu's logical ids (DBSubnetsGroup,
-- DBSecurityGroup, DBCluster, DBInstanceClustered, DBInstanceStandalone), so
-- mu's `parameters:` and `templates:` overrides keep working.
-- Outputs, each exported as <stack>-<Output>: DatabaseIdentifier,
-- DatabaseName, DatabaseMasterUsername, DatabaseEndpointAddress,
-- DatabaseEndpointPort, DatabaseSecurityGroup (+ DatabaseMasterUserSecretArn
-- with manageMasterUserPassword).
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"
local secrets = require "lumu.gen.secrets"

local M = {}

M.ENGINES = {
  ["aurora-mysql"] = { port = 3306, cluster = true, family = "mysql", iam = true, user_max = 16,
    name_max = 64, class = "db.t4g.medium" },
  ["aurora-postgresql"] = { port = 5432, cluster = true, family = "postgres", iam = true, user_max = 63,
    name_max = 63, class = "db.t4g.medium" },
  mysql = { port = 3306, family = "mysql", iam = true, user_max = 32, name_max = 64, class = "db.t4g.micro",
    serverless = "aurora-mysql" },
  mariadb = { port = 3306, family = "mysql", iam = true, user_max = 16, name_max = 64, class = "db.t4g.micro",
    serverless = "aurora-mysql" },
  postgres = { port = 5432, family = "postgres", iam = true, user_max = 63, name_max = 63,
    class = "db.t4g.micro", serverless = "aurora-postgresql" },
  ["sqlserver-ex"] = { port = 1433, family = "sqlserver", user_max = 128, no_dbname = true,
    license = "license-included", class = "db.t3.small" },
  ["sqlserver-web"] = { port = 1433, family = "sqlserver", user_max = 128, no_dbname = true,
    license = "license-included", class = "db.t3.small" },
  ["sqlserver-se"] = { port = 1433, family = "sqlserver", user_max = 128, no_dbname = true,
    license = "license-included", class = "db.m5.xlarge" },
  ["sqlserver-ee"] = { port = 1433, family = "sqlserver", user_max = 128, no_dbname = true,
    license = "license-included", class = "db.m5.xlarge" },
  ["oracle-se2"] = { port = 1521, family = "oracle", user_max = 30, name_max = 8,
    license = "license-included", class = "db.m5.large" },
  ["oracle-ee"] = { port = 1521, family = "oracle", user_max = 30, name_max = 8,
    license = "bring-your-own-license", class = "db.m5.large" },
}
M.ALIASES = { aurora = "aurora-mysql" }
M.MU_DEFAULT_CLASS = "db.t2.small"
M.V2_MAX_ACU = 256
M.V1_CAPACITY = {
  ["aurora-mysql"] = { 1, 2, 4, 8, 16, 32, 64, 128, 256 },
  ["aurora-postgresql"] = { 2, 4, 8, 16, 32, 64, 192, 384 },
}
M.OUTPUTS = { "DatabaseIdentifier", "DatabaseName", "DatabaseMasterUsername", "DatabaseEndpointAddress",
  "DatabaseEndpointPort", "DatabaseSecurityGroup" }

local function engine_names()
  local names = {}
  for k in pairs(M.ENGINES) do names[#names + 1] = k end
  names[#names + 1] = "aurora"
  table.sort(names)
  return names
end

-- ---------------------------------------------------------------------------
-- KMS keys
-- ---------------------------------------------------------------------------

local ACCT = string.rep("%d", 12)
local ARN_HEAD = "^arn:aws[%w%-]*:kms:[a-z][a-z0-9%-]+:" .. ACCT .. ":"
local UUID = "%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x"
local MRK = "mrk%-" .. string.rep("%x", 32)

function M.kms_key_kind(v)
  if type(v) ~= "string" or #v > 2048 then return nil end
  if v:match(ARN_HEAD .. "key/" .. UUID .. "$") or v:match(ARN_HEAD .. "key/" .. MRK .. "$") then return "arn" end
  if v:match(ARN_HEAD .. "alias/[%w/_%-]+$") then return "alias-arn" end
  if v:match("^" .. UUID .. "$") or v:match("^" .. MRK .. "$") then return "id" end
  if v:match("^alias/[%w/_%-]+$") and #v <= 256 then return "alias" end
  return nil
end

-- ---------------------------------------------------------------------------
-- Environments
-- ---------------------------------------------------------------------------

local PROD_TOKENS = { prod = true, production = true, prd = true, live = true }

function M.production_like(model, envname, ctx)
  local p = ctx and ctx.production
  if type(p) == "function" then return p(envname) and true or false end
  if type(p) == "table" then return p[envname] and true or false end
  for token in envname:lower():gmatch("[^%-_%.]+") do
    if PROD_TOKENS[token] then return true end
  end
  for _, svc in ipairs(model and model.services or {}) do
    local pl = svc.pipeline
    local prod = pl and pl.production
    if prod and not prod.disabled and type(prod.environment) == "string"
        and prod.environment:lower() == envname:lower() then
      return true
    end
  end
  return false
end

local function env_name(env)
  if type(env) == "table" then return env.name end
  return env
end

-- ---------------------------------------------------------------------------
-- Diagnostics
-- ---------------------------------------------------------------------------

local function diag_list() return {} end

local function add(diags, severity, where, key, message)
  diags[#diags + 1] = { severity = severity, where = where, key = key, path = key, message = message }
end

local function has_error(diags)
  for _, d in ipairs(diags) do
    if d.severity == "error" then return true end
  end
  return false
end

-- Where a database key of (svc, env) was written, and its path.
local function locate(svc, envname, key)
  local db = svc.database or {}
  local dbpath = db._path or ((svc._path or "service") .. ".database")
  local ov = db.environmentConfig and db.environmentConfig[envname]
  if ov and ov[key] ~= nil then
    local where = (ov._keys and ov._keys[key]) or ov._where or db._where
    return where, dbpath .. ".environmentConfig." .. envname .. "." .. key
  end
  local where = (db._keys and db._keys[key]) or db._where
  return where, dbpath .. "." .. key
end

local function written(svc, envname, key)
  local db = svc.database or {}
  local ov = db.environmentConfig and db.environmentConfig[envname]
  if ov and ov[key] ~= nil then return true end
  if db._keys then return db._keys[key] ~= nil end
  return db[key] ~= nil -- a hand-built model: everything given was written
end

-- ---------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------

local function quote(v) return "'" .. tostring(v) .. "'" end

local function as_int(v)
  if type(v) == "string" then v = tonumber(v) end
  return math.tointeger(v)
end

local function as_bool(v)
  if v == true or v == false then return v end
  if type(v) == "string" then
    local l = v:lower()
    if l == "true" or l == "yes" or l == "on" then return true end
    if l == "false" or l == "no" or l == "off" then return false end
  end
  return nil
end

function M.settings(model, svc, env, ctx)
  ctx = ctx or {}
  local diags = diag_list()
  local config = require "lumu.config"
  local envname = env_name(env)
  if type(svc) ~= "table" or type(svc.name) ~= "string" then
    error("bad argument #2 to 'settings' (service table expected)", 2)
  end
  if type(envname) ~= "string" or envname == "" then
    error("bad argument #3 to 'settings' (environment table or name expected)", 2)
  end
  local db = config.database_for(svc, envname)
  if not db then return nil, diags end
  local ns = ctx.namespace or model.namespace or "mu"
  local function err(key, msg)
    local where, path = locate(svc, envname, key)
    add(diags, "error", where, path, msg)
  end
  local function warn(key, msg)
    local where, path = locate(svc, envname, key)
    add(diags, "warning", where, path, msg)
  end

  local s = {
    ns = ns, service = svc.name, env = envname,
    stack = common.stack_name(ns, "database", svc.name, envname),
    env_stack = common.stack_name(ns, "environment", envname),
    iam_stack = common.stack_name(ns, "iam-service", svc.name, envname),
    dbname = db.name, production = M.production_like(model, envname, ctx),
  }

  if #s.stack > 128 then
    local spath = (svc._path or "service") .. ".name"
    add(diags, "error", svc._where, spath, "stack name " .. quote(s.stack) .. " is longer than 128 characters "
      .. "(CloudFormation's limit); shorten the service or environment name")
    return nil, diags
  end

  -- engine and mode
  local engine_given = tostring(db.engine or "aurora")
  local engine = engine_given:lower()
  engine = M.ALIASES[engine] or engine
  local info = M.ENGINES[engine]
  if not info then
    err("engine", "unknown engine " .. quote(engine_given) .. " (engines: " .. table.concat(engine_names(), ", ") .. ")")
    return nil, diags
  end
  local mode = tostring(db.engineMode or "provisioned"):lower()
  if mode ~= "provisioned" and mode ~= "serverless" then
    err("engineMode", "expected provisioned or serverless, got " .. quote(db.engineMode))
    return nil, diags
  end
  if mode == "serverless" and not info.cluster then
    if not info.serverless then
      err("engineMode", "engine " .. quote(engine) .. " has no serverless mode (serverless needs aurora-mysql or "
        .. "aurora-postgresql)")
      return nil, diags
    end
    warn("engineMode", "engine " .. quote(engine_given) .. " has no serverless mode: environment '" .. envname
      .. "' gets " .. info.serverless .. " (Aurora Serverless v2, " .. info.family .. "-compatible)")
    engine = info.serverless
    info = M.ENGINES[engine]
  end
  s.engine, s.info, s.port, s.cluster = engine, info, info.port, info.cluster and true or false
  if mode == "serverless" then
    local version = as_int(db.serverlessVersion or 2)
    if version ~= 1 and version ~= 2 then
      err("serverlessVersion", "expected 1 or 2, got " .. quote(db.serverlessVersion))
      return nil, diags
    end
    s.serverless = version
    if version == 1 then
      warn("serverlessVersion", "Aurora Serverless v1 reached end of life on 2025-03-31 and AWS refuses new v1 "
        .. "clusters; use serverlessVersion 2 unless your partition still allows v1")
    end
  end

  -- names
  local name_max = info.name_max or 64
  if not info.no_dbname and #s.dbname > name_max then
    err("name", "database name " .. quote(s.dbname) .. " is longer than " .. name_max .. " characters, the limit "
      .. "of " .. engine)
  end
  if info.no_dbname then
    warn("name", engine .. " cannot create a database at launch: the instance starts without " .. quote(s.dbname)
      .. " (DatabaseName is still exported); the application must create it")
  end
  s.username = tostring(db.masterUsername or "admin")
  if not s.username:match("^[A-Za-z][A-Za-z0-9_]*$") or #s.username > info.user_max then
    err("masterUsername", "expected a letter then letters, digits or _, at most " .. info.user_max
      .. " characters for " .. engine .. ", got " .. quote(s.username))
  end

  -- sizes
  if s.serverless == nil then
    if written(svc, envname, "instanceClass") or db.instanceClass ~= M.MU_DEFAULT_CLASS then
      s.instance_class = tostring(db.instanceClass or info.class)
      if s.instance_class == "db.serverless" then
        err("instanceClass", "db.serverless is the Aurora Serverless v2 class: use engineMode serverless"
          .. (s.cluster and "" or (" (engine " .. engine .. " needs a provisioned class)")))
      elseif not s.instance_class:match("^db%.[%w%-]+%.[%w%-]+$") then
        err("instanceClass", "expected an instance class like db.t4g.medium, got " .. quote(s.instance_class))
      elseif s.instance_class:match("^db%.t2%.") then
        warn("instanceClass", s.instance_class .. " is a retired db.t2 class that current " .. engine
          .. " versions do not offer; consider " .. info.class)
      end
    else
      s.instance_class = info.class
    end
  end
  if not s.cluster then
    s.storage = as_int(db.allocatedStorage or 100)
    if not s.storage or s.storage < 20 or s.storage > 65536 then
      err("allocatedStorage", "gp3 storage is 20 to 65536 GiB, got " .. quote(db.allocatedStorage))
    end
  end
  if s.serverless then
    local min, max = as_int(db.minSize or 2), as_int(db.maxSize or 256)
    local pause = as_int(db.secondsUntilAutoPause or 300)
    if not min or not max or min < 0 or max < 1 or min > max then
      err("minSize", "expected 0 <= minSize <= maxSize and maxSize >= 1, got " .. quote(db.minSize) .. " and "
        .. quote(db.maxSize))
      return nil, diags
    end
    if not pause or pause < 0 or pause > 86400 then
      err("secondsUntilAutoPause", "expected 0 to 86400 seconds, got " .. quote(db.secondsUntilAutoPause))
      return nil, diags
    end
    if s.serverless == 2 then
      if max > M.V2_MAX_ACU then
        err("maxSize", "Aurora Serverless v2 scales to at most " .. M.V2_MAX_ACU .. " ACUs, got " .. max)
      end
      if pause > 0 then
        if pause < 300 then
          warn("secondsUntilAutoPause", "Aurora Serverless v2 pauses after at least 300 seconds; using 300")
          pause = 300
        end
        s.min_capacity, s.auto_pause = 0, pause
      else
        s.min_capacity = min
      end
      s.max_capacity = max
    else
      local allowed = M.V1_CAPACITY[engine]
      for _, pair in ipairs({ { "minSize", min }, { "maxSize", max } }) do
        local ok = false
        for _, a in ipairs(allowed) do if a == pair[2] then ok = true end end
        if not ok then
          err(pair[1], "Aurora Serverless v1 " .. engine .. " capacity must be one of "
            .. table.concat(allowed, ", ") .. ", got " .. pair[2])
        end
      end
      if pause > 0 and pause < 300 then
        err("secondsUntilAutoPause", "Aurora Serverless v1 pauses after 300 to 86400 seconds, got " .. pause)
      end
      s.min_capacity, s.max_capacity = min, max
      s.auto_pause = pause > 0 and pause or nil
    end
  end

  -- IAM database authentication
  local iam = as_bool(db.iamAuthentication)
  if iam then
    if not info.iam then
      err("iamAuthentication", engine .. " does not support IAM database authentication")
    elseif s.serverless == 1 then
      warn("iamAuthentication", "Aurora Serverless v1 does not support IAM database authentication; not enabled")
      iam = false
    end
  end
  s.iam_auth = iam and true or false

  -- KMS key
  local key = db.kmsKey
  if key ~= nil and key ~= "" then
    local kind = M.kms_key_kind(key)
    if not kind then
      err("kmsKey", quote(key) .. " is not a KMS key: use a key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID), an alias "
        .. "ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME), a key id or alias/NAME")
    end
    s.kms = { kind = "given", value = key, form = kind }
  elseif model.disableIAM then
    s.kms = { kind = "aws", value = "alias/aws/rds" }
  else
    s.kms = { kind = "service", export = common.export_name(s.iam_stack, "DatabaseKeyArn") }
  end

  -- backups and protection
  local days = db.backupRetentionDays
  if days == nil then days = 7 end
  s.backup_days = as_int(days)
  if not s.backup_days or s.backup_days < (s.cluster and 1 or 0) or s.backup_days > 35 then
    err("backupRetentionDays", "expected " .. (s.cluster and 1 or 0) .. " to 35 days for " .. engine .. ", got "
      .. quote(days))
  end
  local dp = db.deletionProtection
  if dp == nil then
    s.deletion_protection = s.production
  else
    s.deletion_protection = as_bool(dp)
    if s.deletion_protection == nil then err("deletionProtection", "expected true or false, got " .. quote(dp)) end
  end

  -- password
  local src, perr, pkey = secrets.password_source(ns, svc.name, envname, db)
  if not src then
    err(pkey or "masterPasswordSSMParam", perr)
  elseif src.store == "rds" and s.serverless == 1 then
    err("manageMasterUserPassword", "Aurora Serverless v1 cannot manage the master password in Secrets Manager")
  end
  s.password = src

  if has_error(diags) then return nil, diags end
  return s, diags
end

-- ---------------------------------------------------------------------------
-- Template
-- ---------------------------------------------------------------------------

local res = common.resource

local function import(param) return common.import(param) end

--- database.template(s) -> cfn template builder, parameter values
function M.template(s)
  local t = cfn.template({ description = "lumu: " .. s.engine .. " database of service " .. s.service
    .. " in environment " .. s.env })
  local values = {}
  local function param(name, def, value)
    def.Default = def.Default or value
    t:parameter(name, def)
    values[name] = tostring(value)
  end
  param("Namespace", { Type = "String", Description = "Namespace for stack prefixes" }, s.ns)
  param("EnvironmentName", { Type = "String", Description = "Name of environment used for resource namespace" }, s.env)
  param("ServiceName", { Type = "String", Description = "Name of the service that owns the database" }, s.service)
  param("DatabaseName", { Type = "String", Description = "Name of database", AllowedPattern = "^[A-Za-z][A-Za-z0-9_]*$",
    MaxLength = s.info.name_max or 128 }, s.dbname)
  param("DatabaseMasterUsername", { Type = "String", Description = "Username of the master user",
    AllowedPattern = "^[A-Za-z][A-Za-z0-9_]*$", MaxLength = s.info.user_max }, s.username)
  if s.instance_class then
    param("DatabaseInstanceClass", { Type = "String", Description = "Instance class for database" }, s.instance_class)
  end
  if s.storage then
    param("DatabaseStorage", { Type = "Number", Description = "Allocated storage for DB (GiB, gp3)", MinValue = 20,
      MaxValue = 65536 }, s.storage)
  end
  if s.serverless then
    param("ScalingMinCapacity", { Type = "Number", Description = "Min number of database capacity units",
      MinValue = 0 }, s.min_capacity)
    param("ScalingMaxCapacity", { Type = "Number", Description = "Max number of database capacity units",
      MinValue = 1 }, s.max_capacity)
    if s.auto_pause then
      param("SecondsUntilAutoPause", { Type = "Number", Description = "Seconds before auto pause", MinValue = 300,
        MaxValue = 86400 }, s.auto_pause)
    end
  end
  param("BackupRetentionPeriod", { Type = "Number", Description = "Days of automated backups",
    MinValue = s.cluster and 1 or 0, MaxValue = 35 }, s.backup_days)
  param("VpcId", { Type = "String", Description = "Name of the value to import for the VpcId" },
    common.export_name(s.env_stack, "VpcId"))
  param("InstanceSubnetIds", { Type = "String", Description = "Name of the value to import for the subnet ids" },
    common.export_name(s.env_stack, "InstanceSubnetIds"))
  param("InstanceSecurityGroup", { Type = "String",
    Description = "Name of the value to import for the security group id" },
    common.export_name(s.env_stack, "InstanceSecurityGroup"))

  local key
  if s.kms.kind == "given" then
    param("DatabaseKeyArn", { Type = "String", Description = "KMS key for the database storage" }, s.kms.value)
    key = cfn.Ref("DatabaseKeyArn")
  elseif s.kms.kind == "service" then
    param("DatabaseKeyExport", { Type = "String",
      Description = "Name of the value to import for the KMS key (service IAM stack)" }, s.kms.export)
    key = import("DatabaseKeyExport")
  else
    key = s.kms.value
  end

  -- the master password, by reference only
  local pw = s.password
  local password, manage
  if pw.store == "ssm" then
    param("DatabaseMasterSecretParameter", { Type = "String",
      Description = "SSM SecureString parameter holding the master password (the name, not the value)" }, pw.name)
    t:parameter("DatabaseMasterSecretVersion", { Type = "String", Default = "", AllowedPattern = "^[0-9]*$",
      Description = "Version of that parameter (empty: the latest)" })
    t:condition("HasSecretVersion", cfn.Not(cfn.Equals(cfn.Ref("DatabaseMasterSecretVersion"), "")))
    password = cfn.If("HasSecretVersion",
      cfn.Sub("{{resolve:ssm-secure:${DatabaseMasterSecretParameter}:${DatabaseMasterSecretVersion}}}"),
      cfn.Sub("{{resolve:ssm-secure:${DatabaseMasterSecretParameter}}}"))
  elseif pw.store == "secretsmanager" then
    param("DatabaseMasterSecretArn", { Type = "String",
      Description = "Secrets Manager secret holding the master password under the key 'password'" }, pw.id)
    password = cfn.Sub("{{resolve:secretsmanager:${DatabaseMasterSecretArn}:SecretString:password}}")
  else
    manage = true
  end

  local name_tag = { { Key = "Name", Value = cfn.Ref("DatabaseName") } }
  local subnets = res(t, "DBSubnetsGroup", "AWS::RDS::DBSubnetGroup", "the environment's instance subnets", {
    DBSubnetGroupDescription = "lumu " .. s.stack .. " subnets",
    SubnetIds = cfn.Split(",", import("InstanceSubnetIds")),
  })
  local sg = res(t, "DBSecurityGroup", "AWS::EC2::SecurityGroup",
    "port " .. s.port .. " from the environment's instances only", {
      GroupDescription = "lumu " .. s.stack .. ": " .. s.engine .. " port " .. s.port .. " from the instances",
      VpcId = import("VpcId"),
      SecurityGroupIngress = { {
        IpProtocol = "tcp", FromPort = s.port, ToPort = s.port,
        SourceSecurityGroupId = import("InstanceSecurityGroup"),
        Description = s.engine .. " from the environment's instance security group",
      } },
      SecurityGroupEgress = { { IpProtocol = "-1", CidrIp = "127.0.0.1/32", Description = "no egress" } },
      Tags = { { Key = "Name", Value = s.stack } },
    })
  local keep = { DeletionPolicy = "Snapshot", UpdateReplacePolicy = "Snapshot" }
  local db_res
  if s.cluster then
    local props = {
      Engine = s.engine,
      DatabaseName = cfn.Ref("DatabaseName"),
      DBSubnetGroupName = subnets.ref,
      VpcSecurityGroupIds = { sg.ref },
      StorageEncrypted = true,
      KmsKeyId = key,
      MasterUsername = cfn.Ref("DatabaseMasterUsername"),
      MasterUserPassword = password,
      BackupRetentionPeriod = cfn.Ref("BackupRetentionPeriod"),
      CopyTagsToSnapshot = true,
      DeletionProtection = s.deletion_protection,
      Tags = name_tag,
    }
    if manage then
      props.ManageMasterUserPassword = true
      -- alias/aws/rds cannot encrypt a secret: Secrets Manager then uses aws/secretsmanager
      if s.kms.kind ~= "aws" then props.MasterUserSecret = { KmsKeyId = key } end
    end
    if s.serverless ~= 1 then props.EnableIAMDatabaseAuthentication = s.iam_auth end
    if s.serverless == 1 then
      props.EngineMode = "serverless"
      props.ScalingConfiguration = {
        MinCapacity = cfn.Ref("ScalingMinCapacity"), MaxCapacity = cfn.Ref("ScalingMaxCapacity"),
        AutoPause = s.auto_pause ~= nil,
        SecondsUntilAutoPause = s.auto_pause and cfn.Ref("SecondsUntilAutoPause") or nil,
      }
    elseif s.serverless == 2 then
      props.ServerlessV2ScalingConfiguration = {
        MinCapacity = cfn.Ref("ScalingMinCapacity"), MaxCapacity = cfn.Ref("ScalingMaxCapacity"),
        SecondsUntilAutoPause = s.auto_pause and cfn.Ref("SecondsUntilAutoPause") or nil,
      }
    end
    local mode = s.serverless == 1 and "Aurora Serverless v1" or s.serverless == 2 and "Aurora Serverless v2"
      or "Aurora provisioned"
    db_res = res(t, "DBCluster", "AWS::RDS::DBCluster", mode .. " cluster", props, keep)
    if s.serverless ~= 1 then
      res(t, "DBInstanceClustered", "AWS::RDS::DBInstance", "the writer instance of the cluster", {
        DBClusterIdentifier = db_res.ref,
        DBInstanceClass = s.serverless == 2 and "db.serverless" or cfn.Ref("DatabaseInstanceClass"),
        DBSubnetGroupName = subnets.ref,
        Engine = s.engine,
        PubliclyAccessible = false,
        Tags = name_tag,
      })
    end
  else
    local props = {
      Engine = s.engine,
      DBName = (not s.info.no_dbname) and cfn.Ref("DatabaseName") or nil,
      DBInstanceClass = cfn.Ref("DatabaseInstanceClass"),
      AllocatedStorage = cfn.Ref("DatabaseStorage"),
      StorageType = "gp3",
      StorageEncrypted = true,
      KmsKeyId = key,
      MasterUsername = cfn.Ref("DatabaseMasterUsername"),
      MasterUserPassword = password,
      DBSubnetGroupName = subnets.ref,
      VPCSecurityGroups = { sg.ref },
      PubliclyAccessible = false,
      BackupRetentionPeriod = cfn.Ref("BackupRetentionPeriod"),
      CopyTagsToSnapshot = true,
      DeletionProtection = s.deletion_protection,
      LicenseModel = s.info.license,
      Tags = name_tag,
    }
    if manage then
      props.ManageMasterUserPassword = true
      -- alias/aws/rds cannot encrypt a secret: Secrets Manager then uses aws/secretsmanager
      if s.kms.kind ~= "aws" then props.MasterUserSecret = { KmsKeyId = key } end
    end
    if s.info.iam then props.EnableIAMDatabaseAuthentication = s.iam_auth end
    db_res = res(t, "DBInstanceStandalone", "AWS::RDS::DBInstance", s.engine .. " instance", props, keep)
  end

  local function out(name, value, desc)
    t:output(name, value, { description = desc, export = common.export_name(s.stack, name) })
  end
  out("DatabaseIdentifier", db_res.ref, "DB Identifier")
  out("DatabaseName", cfn.Ref("DatabaseName"), "DB Name")
  out("DatabaseMasterUsername", cfn.Ref("DatabaseMasterUsername"), "DB Username")
  out("DatabaseEndpointAddress", db_res:getatt("Endpoint.Address"), "DB Endpoint Address")
  out("DatabaseEndpointPort", db_res:getatt("Endpoint.Port"), "DB Endpoint Port")
  out("DatabaseSecurityGroup", sg:getatt("GroupId"), "Security group of the database")
  if manage then
    out("DatabaseMasterUserSecretArn", db_res:getatt("MasterUserSecret.SecretArn"),
      "Secrets Manager secret that RDS manages for the master user")
  end
  return t, values
end

local function password_info(s)
  local pw = s.password
  local info = { store = pw.store, managed = pw.managed, name = pw.name, id = pw.id }
  if pw.store == "ssm" then
    info.version_parameter = "DatabaseMasterSecretVersion"
    if pw.managed then
      if s.kms.kind == "given" then
        info.kms_key = s.kms.value
      elseif s.kms.kind == "service" then
        info.kms_key = { stack = s.iam_stack, output = "DatabaseKeyArn", export = s.kms.export }
      end
    end
  end
  return info
end

local function descriptor(s)
  local t, values = M.template(s)
  local depends = { s.env_stack }
  if s.kms.kind == "service" then depends[#depends + 1] = s.iam_stack end
  local mode = s.serverless and ("serverless v" .. s.serverless) or (s.cluster and "provisioned cluster" or "instance")
  return common.stack({
    name = s.stack, kind = "database", env = s.env, service = s.service,
    template = t:to_table({ consume = true }), parameters = values,
    tags = common.tags("database", { environment = s.env, service = s.service }),
    depends = depends,
    description = s.engine .. " " .. mode .. " '" .. s.dbname .. "' of service " .. s.service .. " in " .. s.env,
    password = password_info(s),
    database = { engine = s.engine, serverless = s.serverless, cluster = s.cluster, port = s.port,
      deletion_protection = s.deletion_protection, iam_auth = s.iam_auth },
  })
end

function M.stack(model, svc, env, ctx)
  local s, diags = M.settings(model, svc, env, ctx)
  if not s then return nil, diags end
  return descriptor(s), diags
end

local function environments(model, ctx)
  local envs = ctx.environments or model.environments or {}
  local out = {}
  for _, e in ipairs(envs) do out[#out + 1] = env_name(e) end
  return out
end

function M.stacks(model, ctx)
  ctx = ctx or {}
  local out, diags = {}, ctx.diagnostics or {}
  local seen = {}
  local function note(list)
    for _, d in ipairs(list) do
      local k = table.concat({ d.severity, tostring(d.where), d.key, d.message }, "\0")
      if not seen[k] then
        seen[k] = true
        diags[#diags + 1] = d
      end
    end
  end
  local envs = environments(model, ctx)
  for _, svc in ipairs(model.services or {}) do
    if svc.database and #envs == 0 then
      local where, path = locate(svc, "", "name")
      note({ { severity = "warning", where = where, key = path, path = path, message = "no environments in this "
        .. "configuration, so the database of service '" .. svc.name .. "' is not generated (lumu synth --env NAME)" } })
    end
  end
  for _, envname in ipairs(envs) do
    for _, svc in ipairs(model.services or {}) do
      if svc.database then
        local d, list = M.stack(model, svc, envname, ctx)
        note(list)
        if d then out[#out + 1] = d end
      end
    end
  end
  return out, diags
end

-- ---------------------------------------------------------------------------
-- Bindings for the service stack
-- ---------------------------------------------------------------------------

local PASSWORD_VAR = "${DatabaseMasterPassword}"

function M.bindings(model, svc, env, ctx)
  local s, diags = M.settings(model, svc, env, ctx)
  if not s then return nil, diags end
  local config = require "lumu.config"
  local b = { stack = s.stack, exports = {}, values = {}, secrets = {}, statements = {} }
  for _, o in ipairs(M.OUTPUTS) do
    local e = common.export_name(s.stack, o)
    b.exports[o] = e
    b.values[o] = { ["Fn::ImportValue"] = e }
  end
  local pw = {}
  for k, v in pairs(s.password) do pw[k] = v end
  if pw.store == "rds" then
    local e = common.export_name(s.stack, "DatabaseMasterUserSecretArn")
    b.exports.DatabaseMasterUserSecretArn = e
    pw.resource = { ["Fn::ImportValue"] = e }
    pw.value_from = { ["Fn::Join"] = { "", { { ["Fn::ImportValue"] = e }, ":password::" } } }
    pw.kms_context = { key = "kms:EncryptionContext:SecretARN", value = { ["Fn::ImportValue"] = e } }
  end
  b.password = pw
  local keys = {}
  for k in pairs(svc.environment or {}) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local spath = svc._path or "service"
  for _, k in ipairs(keys) do
    local v = config.env_value(svc.environment[k], s.env)
    if type(v) == "string" and v:find(PASSWORD_VAR, 1, true) then
      if v == PASSWORD_VAR then
        b.secrets[#b.secrets + 1] = { Name = k, ValueFrom = pw.value_from }
      else
        add(diags, "error", svc._where, spath .. ".environment." .. k, PASSWORD_VAR .. " must be the whole value: "
          .. "the password is injected as an ECS secret, never as plain text inside another string")
      end
    end
  end
  if #b.secrets > 0 then b.statements = secrets.read_statements(pw) end
  if has_error(diags) then return nil, diags end
  return b, diags
end

return M
