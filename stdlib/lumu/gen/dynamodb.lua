--- DynamoDB tables of a service in an environment: <ns>-dynamodb-<svc>-<env>
-- (mu never had them; mu.md §3 "Not in the schema").
--
-- local dynamodb = require "lumu.gen.dynamodb"
--
-- Config shape (proposed for lumu.config; mu.yml and lumu.lua alike):
--   service.dynamodb = { table, ... }     -- a list; lumu.lua: dynamodb{...}
--   table = {
--     name = "orders",            -- required; TableName <ns>-<svc>-<env>-<name>
--     partitionKey = "id" | "id:N" | {name = "id", type = "S"|"N"|"B"},
--     sortKey = (same forms, optional),
--     billingMode = "PAY_PER_REQUEST" (default; "on-demand") | "PROVISIONED",
--     readCapacity = 5, writeCapacity = 5,   -- PROVISIONED only (default 5)
--     globalSecondaryIndexes = { {name=, partitionKey=, sortKey=,
--       projection = "ALL" (default) | "KEYS_ONLY" | {"attr", ...},
--       readCapacity=, writeCapacity=}, ... },        -- at most 20
--     localSecondaryIndexes = { {name=, sortKey=, projection=}, ... }, -- at most 5
--     ttl = "expiresAt",          -- TimeToLiveSpecification
--     pointInTimeRecovery = true, -- default true
--     encryption = "aws-owned" (default) | "aws-managed" | "customer",
--     kmsKey = "arn:aws:kms:...", -- a customer key (implies "customer")
--     stream = "NEW_IMAGE" | "OLD_IMAGE" | "NEW_AND_OLD_IMAGES" | "KEYS_ONLY",
--     tableClass = "STANDARD" | "STANDARD_INFREQUENT_ACCESS",
--     deletionProtection = bool,  -- default: true in production-like envs
--     access = "read-write" (default) | "read",   -- what the task role gets
--     environmentConfig = { <env> = {any key above but name} },
--   }
--   Enum values are case-insensitive.  Records may carry _where/_path/_keys
--   (lumu.config); errors point at them.
--
-- dynamodb.stacks(model, ctx) -> descriptors, diagnostics
--   One descriptor per service with tables x environment (ctx.environments
--   / ctx.diagnostics / ctx.namespace / ctx.production as
--   lumu.gen.database).  A (service, environment) with any error gets no
--   descriptor.
-- dynamodb.stack(model, svc, env, ctx) -> descriptor | nil, diagnostics
-- dynamodb.tables(model, svc, env, ctx) -> list of resolved tables | nil, diagnostics
-- dynamodb.bindings(model, svc, env, ctx) -> b | nil, diagnostics
--   b.stack; b.tables = { [name] = {logical=, name_export=, arn_export=,
--   stream_export=} }; b.values = { <Logical>Name = ImportValue, <Logical>Arn
--   = ImportValue, ... } (Fn::Sub variables for service.environment, e.g.
--   "${TableOrdersName}"); b.statements: IAM statements for the ECS TASK
--   role (item reads/writes on the tables and their indexes, stream reads,
--   kms through DynamoDB for customer keys).  nil without errors when the
--   service has no tables.
-- dynamodb.logical_id(name) -> "Table" .. CamelCase(name)  ("orders-v2" ->
--   "TableOrdersV2")
--
-- Template: one AWS::DynamoDB::Table per table with DeletionPolicy and
-- UpdateReplacePolicy Retain (DynamoDB has no snapshot policy; a named table
-- also cannot be replaced by accident), AttributeDefinitions = the key
-- attributes of the table and its indexes (a type conflict is an error),
-- SSESpecification, PointInTimeRecoverySpecification, TimeToLiveSpecification,
-- StreamSpecification, DeletionProtectionEnabled, Tags.  Outputs exported as
-- <stack>-<Logical>Name, -<Logical>Arn, -<Logical>StreamArn (with a stream).
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"

local M = {}

M.MAX_GSI = 20
M.MAX_LSI = 5
M.DEFAULT_CAPACITY = 5
M.STREAM_TYPES = { "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY" }
M.TABLE_CLASSES = { "STANDARD", "STANDARD_INFREQUENT_ACCESS" }
M.READ_ACTIONS = { "dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable",
  "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan" }
M.WRITE_ACTIONS = { "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem" }
M.STREAM_ACTIONS = { "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
  "dynamodb:ListStreams" }

local KEYS = {
  name = true, partitionKey = true, sortKey = true, billingMode = true, readCapacity = true,
  writeCapacity = true, globalSecondaryIndexes = true, localSecondaryIndexes = true, ttl = true,
  pointInTimeRecovery = true, encryption = true, kmsKey = true, stream = true, tableClass = true,
  deletionProtection = true, access = true, environmentConfig = true,
}

local function quote(v) return "'" .. tostring(v) .. "'" end

local function env_name(env)
  if type(env) == "table" then return env.name end
  return env
end

function M.logical_id(name)
  local parts = {}
  for w in tostring(name):gmatch("[%w]+") do
    parts[#parts + 1] = w:sub(1, 1):upper() .. w:sub(2)
  end
  return "Table" .. table.concat(parts)
end

local function enum(v, list, aliases)
  if type(v) ~= "string" then return nil end
  local u = v:upper():gsub("%-", "_")
  if aliases and aliases[u] then return aliases[u] end
  for _, x in ipairs(list) do
    if x == u then return x end
  end
  return nil
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

-- A key "id" | "id:N" | {name=, type=} -> {name=, type=} | nil, err
local function parse_key(v)
  local name, typ
  if type(v) == "string" then
    name, typ = v:match("^([^:]+):(%a)$")
    if not name then name, typ = v, "S" end
  elseif type(v) == "table" then
    name, typ = v.name, v.type or "S"
  else
    return nil, "expected an attribute name, \"name:TYPE\" or {name=, type=}, got " .. type(v)
  end
  if type(name) ~= "string" or name == "" or #name > 255 then
    return nil, "attribute names are 1 to 255 characters, got " .. quote(name)
  end
  typ = type(typ) == "string" and typ:upper() or typ
  if typ ~= "S" and typ ~= "N" and typ ~= "B" then
    return nil, "attribute type must be S, N or B, got " .. quote(typ)
  end
  return { name = name, type = typ }
end

-- ---------------------------------------------------------------------------
-- Resolving one table for one environment
-- ---------------------------------------------------------------------------

local function merged(tbl, envname)
  local out = {}
  for k, v in pairs(tbl) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" and k ~= "environmentConfig" then out[k] = v end
  end
  local ov = type(tbl.environmentConfig) == "table" and tbl.environmentConfig[envname] or nil
  if type(ov) == "table" then
    for k, v in pairs(ov) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" then out[k] = v end
    end
  end
  return out, ov
end

local function resolve(model, svc, tbl, index, envname, ctx, diags)
  local base = (svc._path or "service") .. ".dynamodb[" .. index .. "]"
  local path = tbl._path or base
  local t, ov = merged(tbl, envname)
  local ok = true
  local function at(key)
    if ov and ov[key] ~= nil then
      return (ov._keys and ov._keys[key]) or ov._where or tbl._where,
        path .. ".environmentConfig." .. envname .. "." .. key
    end
    return (tbl._keys and tbl._keys[key]) or tbl._where or svc._where, path .. "." .. key
  end
  local function err(key, msg)
    local where, p = at(key)
    diags[#diags + 1] = { severity = "error", where = where, key = p, path = p, message = msg }
    ok = false
  end
  local unknown = {}
  for k in pairs(t) do
    if not KEYS[k] then unknown[#unknown + 1] = k end
  end
  table.sort(unknown)
  for _, k in ipairs(unknown) do err(k, "unknown DynamoDB table key " .. quote(k)) end
  if tbl.environmentConfig ~= nil and type(tbl.environmentConfig) ~= "table" then
    err("environmentConfig", "expected a map of environment name to settings")
  end
  if ov ~= nil and type(ov) ~= "table" then
    ov = nil
    err("environmentConfig", "settings of environment " .. quote(envname) .. " must be a map")
  end
  if ov and ov.name ~= nil then err("name", "a table's name cannot change per environment") end

  local ns = ctx.namespace or model.namespace or "mu"
  local r = { name = t.name, logical = M.logical_id(t.name or "") }
  if type(t.name) ~= "string" or not t.name:match("^[%w_%.%-]+$") then
    err("name", "expected a table name of letters, digits, _ . -, got " .. quote(t.name))
    return nil
  end
  r.table_name = ns .. "-" .. svc.name .. "-" .. envname .. "-" .. t.name
  if #r.table_name > 255 then
    err("name", "table name " .. quote(r.table_name) .. " is longer than 255 characters")
  end

  -- keys and attributes
  local attrs, order = {}, {}
  local function attr(k, key)
    if attrs[k.name] and attrs[k.name] ~= k.type then
      err(key, "attribute " .. quote(k.name) .. " is used as type " .. attrs[k.name] .. " and as type " .. k.type)
    elseif not attrs[k.name] then
      attrs[k.name] = k.type
      order[#order + 1] = k.name
    end
  end
  local function key_of(v, key, required)
    if v == nil then
      if required then err(key, "is required") end
      return nil
    end
    local k, e = parse_key(v)
    if not k then err(key, e) return nil end
    attr(k, key)
    return k
  end
  r.pk = key_of(t.partitionKey, "partitionKey", true)
  r.sk = key_of(t.sortKey, "sortKey", false)

  -- billing
  local billing = t.billingMode == nil and "PAY_PER_REQUEST"
    or enum(t.billingMode, { "PAY_PER_REQUEST", "PROVISIONED" }, { ON_DEMAND = "PAY_PER_REQUEST", ONDEMAND = "PAY_PER_REQUEST" })
  if not billing then err("billingMode", "expected PAY_PER_REQUEST or PROVISIONED, got " .. quote(t.billingMode)) end
  r.billing = billing
  local function capacity(holder, key, where_key)
    local v = holder[key]
    if billing ~= "PROVISIONED" then
      if v ~= nil then err(where_key or key, key .. " needs billingMode PROVISIONED (on-demand tables have no capacity)") end
      return nil
    end
    if v == nil then return M.DEFAULT_CAPACITY end
    local n = math.tointeger(tonumber(v))
    if not n or n < 1 or n > 40000 then
      err(where_key or key, "expected 1 to 40000 capacity units, got " .. quote(v))
      return nil
    end
    return n
  end
  r.read, r.write = capacity(t, "readCapacity"), capacity(t, "writeCapacity")

  -- indexes
  local index_names = {}
  local function index_name(ix, key)
    if type(ix.name) ~= "string" or not ix.name:match("^[%w_%.%-]+$") or #ix.name < 3 or #ix.name > 255 then
      err(key, "index names are 3 to 255 letters, digits, _ . -, got " .. quote(ix.name))
      return nil
    end
    if index_names[ix.name] then err(key, "duplicate index name " .. quote(ix.name)) end
    index_names[ix.name] = true
    return ix.name
  end
  local function projection(v, key)
    if v == nil then return { ProjectionType = "ALL" } end
    if type(v) == "table" then
      local list = {}
      for i, a in ipairs(v) do
        if type(a) ~= "string" or a == "" then err(key, "projection attribute " .. i .. " is not a name") end
        list[#list + 1] = a
      end
      if #list == 0 or #list > 100 then err(key, "an INCLUDE projection lists 1 to 100 attributes") end
      return { ProjectionType = "INCLUDE", NonKeyAttributes = list }
    end
    local p = enum(v, { "ALL", "KEYS_ONLY" })
    if not p then err(key, "expected ALL, KEYS_ONLY or a list of attributes, got " .. quote(v)) end
    return { ProjectionType = p or "ALL" }
  end
  local function list_of(key)
    local v = t[key]
    if v == nil then return {} end
    if type(v) ~= "table" then err(key, "expected a list") return {} end
    return v
  end
  r.gsi = {}
  local gsis = list_of("globalSecondaryIndexes")
  if #gsis > M.MAX_GSI then err("globalSecondaryIndexes", "at most " .. M.MAX_GSI .. " global secondary indexes") end
  for i, ix in ipairs(gsis) do
    local key = "globalSecondaryIndexes"
    if type(ix) ~= "table" then
      err(key, "index " .. i .. " is not a table")
    else
      local g = { name = index_name(ix, key) }
      g.pk = key_of(ix.partitionKey, key, true)
      g.sk = key_of(ix.sortKey, key, false)
      g.projection = projection(ix.projection, key)
      g.read, g.write = capacity(ix, "readCapacity", key), capacity(ix, "writeCapacity", key)
      r.gsi[#r.gsi + 1] = g
    end
  end
  r.lsi = {}
  local lsis = list_of("localSecondaryIndexes")
  if #lsis > M.MAX_LSI then err("localSecondaryIndexes", "at most " .. M.MAX_LSI .. " local secondary indexes") end
  if #lsis > 0 and not r.sk then
    err("localSecondaryIndexes", "local secondary indexes need a table sortKey")
  end
  for i, ix in ipairs(lsis) do
    local key = "localSecondaryIndexes"
    if type(ix) ~= "table" then
      err(key, "index " .. i .. " is not a table")
    else
      if ix.partitionKey ~= nil then
        err(key, "a local secondary index uses the table's partitionKey; remove partitionKey from " .. quote(ix.name))
      end
      local l = { name = index_name(ix, key) }
      l.sk = key_of(ix.sortKey, key, true)
      l.projection = projection(ix.projection, key)
      r.lsi[#r.lsi + 1] = l
    end
  end
  r.attrs, r.attr_order = attrs, order

  -- options
  if t.ttl ~= nil then
    if type(t.ttl) ~= "string" or t.ttl == "" or #t.ttl > 255 then
      err("ttl", "expected the name of the expiry attribute, got " .. quote(t.ttl))
    end
    r.ttl = t.ttl
  end
  local pitr = t.pointInTimeRecovery
  if pitr == nil then pitr = true end
  r.pitr = as_bool(pitr)
  if r.pitr == nil then err("pointInTimeRecovery", "expected true or false, got " .. quote(pitr)) end
  if t.kmsKey ~= nil then
    if not require("lumu.gen.database").kms_key_kind(t.kmsKey) then
      err("kmsKey", quote(t.kmsKey) .. " is not a KMS key: use a key ARN, an alias ARN, a key id or alias/NAME")
    end
    r.kms_key = t.kmsKey
  end
  local enc = t.encryption
  if enc == nil then enc = r.kms_key and "customer" or "aws-owned" end
  enc = type(enc) == "string" and enc:lower():gsub("_", "-") or enc
  if enc ~= "aws-owned" and enc ~= "aws-managed" and enc ~= "customer" then
    err("encryption", "expected aws-owned, aws-managed or customer, got " .. quote(t.encryption))
  elseif enc == "customer" and not r.kms_key then
    err("encryption", "customer encryption needs kmsKey")
  elseif enc ~= "customer" and r.kms_key then
    err("kmsKey", "kmsKey needs encryption 'customer' (or no encryption key), got " .. quote(t.encryption))
  end
  r.encryption = enc
  if t.stream ~= nil then
    r.stream = enum(t.stream, M.STREAM_TYPES)
    if not r.stream then err("stream", "expected one of " .. table.concat(M.STREAM_TYPES, ", ") .. ", got " .. quote(t.stream)) end
  end
  if t.tableClass ~= nil then
    r.table_class = enum(t.tableClass, M.TABLE_CLASSES)
    if not r.table_class then
      err("tableClass", "expected STANDARD or STANDARD_INFREQUENT_ACCESS, got " .. quote(t.tableClass))
    end
  end
  local dp = t.deletionProtection
  if dp == nil then
    r.deletion_protection = require("lumu.gen.database").production_like(model, envname, ctx)
  else
    r.deletion_protection = as_bool(dp)
    if r.deletion_protection == nil then err("deletionProtection", "expected true or false, got " .. quote(dp)) end
  end
  local access = t.access == nil and "read-write" or (type(t.access) == "string" and t.access:lower())
  if access ~= "read-write" and access ~= "read" then
    err("access", "expected read-write or read, got " .. quote(t.access))
  end
  r.access = access
  r.where = tbl._where
  if not ok then return nil end
  return r
end

function M.tables(model, svc, env, ctx)
  ctx = ctx or {}
  local diags = {}
  local envname = env_name(env)
  if type(svc) ~= "table" or type(svc.name) ~= "string" then
    error("bad argument #2 to 'tables' (service table expected)", 2)
  end
  if type(envname) ~= "string" or envname == "" then
    error("bad argument #3 to 'tables' (environment table or name expected)", 2)
  end
  local list = svc.dynamodb
  if list == nil then return nil, diags end
  local spath = (svc._path or "service") .. ".dynamodb"
  if type(list) ~= "table" then
    diags[1] = { severity = "error", where = svc._where, key = spath, path = spath, message = "expected a list of tables" }
    return nil, diags
  end
  local out, names, logicals, failed = {}, {}, {}, false
  for i, tbl in ipairs(list) do
    if type(tbl) ~= "table" then
      local p = spath .. "[" .. i .. "]"
      diags[#diags + 1] = { severity = "error", where = svc._where, key = p, path = p, message = "expected a table record" }
      failed = true
    else
      local r = resolve(model, svc, tbl, i, envname, ctx, diags)
      if not r then
        failed = true
      else
        local p = (tbl._path or (spath .. "[" .. i .. "]")) .. ".name"
        local where = (tbl._keys and tbl._keys.name) or tbl._where or svc._where
        if names[r.name] then
          diags[#diags + 1] = { severity = "error", where = where, key = p, path = p,
            message = "duplicate table name " .. quote(r.name) }
          failed = true
        elseif logicals[r.logical] then
          diags[#diags + 1] = { severity = "error", where = where, key = p, path = p,
            message = "table names " .. quote(logicals[r.logical]) .. " and " .. quote(r.name)
              .. " both become the resource " .. r.logical }
          failed = true
        end
        names[r.name], logicals[r.logical] = true, r.name
        out[#out + 1] = r
      end
    end
  end
  if failed then return nil, diags end
  if #out == 0 then return nil, diags end
  return out, diags
end

-- ---------------------------------------------------------------------------
-- Template
-- ---------------------------------------------------------------------------

local function key_schema(pk, sk)
  local ks = { { AttributeName = pk.name, KeyType = "HASH" } }
  if sk then ks[2] = { AttributeName = sk.name, KeyType = "RANGE" } end
  return ks
end

local function throughput(read, write)
  if not read then return nil end
  return { ReadCapacityUnits = read, WriteCapacityUnits = write }
end

function M.template(model, svc, envname, tables, ctx)
  local ns = ctx.namespace or model.namespace or "mu"
  local stack = common.stack_name(ns, "dynamodb", svc.name, envname)
  local t = cfn.template({ description = "lumu: DynamoDB tables of service " .. svc.name .. " in environment "
    .. envname })
  for _, r in ipairs(tables) do
    local defs = {}
    for _, a in ipairs(r.attr_order) do defs[#defs + 1] = { AttributeName = a, AttributeType = r.attrs[a] } end
    local props = {
      TableName = r.table_name,
      AttributeDefinitions = defs,
      KeySchema = key_schema(r.pk, r.sk),
      BillingMode = r.billing,
      ProvisionedThroughput = throughput(r.read, r.write),
      PointInTimeRecoverySpecification = { PointInTimeRecoveryEnabled = r.pitr },
      DeletionProtectionEnabled = r.deletion_protection,
      TableClass = r.table_class,
      Tags = { { Key = "Name", Value = r.table_name } },
    }
    if #r.gsi > 0 then
      props.GlobalSecondaryIndexes = {}
      for _, g in ipairs(r.gsi) do
        props.GlobalSecondaryIndexes[#props.GlobalSecondaryIndexes + 1] = {
          IndexName = g.name, KeySchema = key_schema(g.pk, g.sk), Projection = g.projection,
          ProvisionedThroughput = throughput(g.read, g.write),
        }
      end
    end
    if #r.lsi > 0 then
      props.LocalSecondaryIndexes = {}
      for _, l in ipairs(r.lsi) do
        props.LocalSecondaryIndexes[#props.LocalSecondaryIndexes + 1] = {
          IndexName = l.name, KeySchema = key_schema(r.pk, l.sk), Projection = l.projection,
        }
      end
    end
    if r.ttl then props.TimeToLiveSpecification = { AttributeName = r.ttl, Enabled = true } end
    if r.encryption == "aws-managed" then
      props.SSESpecification = { SSEEnabled = true, SSEType = "KMS" }
    elseif r.encryption == "customer" then
      props.SSESpecification = { SSEEnabled = true, SSEType = "KMS", KMSMasterKeyId = r.kms_key }
    end
    if r.stream then props.StreamSpecification = { StreamViewType = r.stream } end
    local h = t:resource(r.logical, "AWS::DynamoDB::Table", props, {
      DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain",
      Metadata = { ["lumu:description"] = "table " .. r.name },
    })
    t:output(r.logical .. "Name", h.ref, { description = "name of table " .. r.name,
      export = common.export_name(stack, r.logical .. "Name") })
    t:output(r.logical .. "Arn", h:getatt("Arn"), { description = "ARN of table " .. r.name,
      export = common.export_name(stack, r.logical .. "Arn") })
    if r.stream then
      t:output(r.logical .. "StreamArn", h:getatt("StreamArn"), { description = "stream of table " .. r.name,
        export = common.export_name(stack, r.logical .. "StreamArn") })
    end
  end
  return t, stack
end

function M.stack(model, svc, env, ctx)
  ctx = ctx or {}
  local tables, diags = M.tables(model, svc, env, ctx)
  if not tables then return nil, diags end
  local envname = env_name(env)
  local ns = ctx.namespace or model.namespace or "mu"
  local name = common.stack_name(ns, "dynamodb", svc.name, envname)
  if #name > 128 then
    local p = (svc._path or "service") .. ".name"
    diags[#diags + 1] = { severity = "error", where = svc._where, key = p, path = p, message = "stack name "
      .. quote(name) .. " is longer than 128 characters (CloudFormation's limit)" }
    return nil, diags
  end
  local t, stack = M.template(model, svc, envname, tables, ctx)
  local names = {}
  for _, r in ipairs(tables) do names[#names + 1] = r.name end
  return common.stack({
    name = stack, kind = "dynamodb", env = envname, service = svc.name,
    template = t:to_table({ consume = true }), parameters = {},
    tags = common.tags("dynamodb", { environment = envname, service = svc.name }),
    depends = {},
    description = "DynamoDB tables " .. table.concat(names, ", ") .. " of service " .. svc.name .. " in " .. envname,
  }), diags
end

function M.stacks(model, ctx)
  ctx = ctx or {}
  local out, diags = {}, ctx.diagnostics or {}
  local seen = {}
  local envs = {}
  for _, e in ipairs(ctx.environments or model.environments or {}) do envs[#envs + 1] = env_name(e) end
  for _, envname in ipairs(envs) do
    for _, svc in ipairs(model.services or {}) do
      if svc.dynamodb ~= nil then
        local d, list = M.stack(model, svc, envname, ctx)
        for _, x in ipairs(list) do
          local k = table.concat({ x.severity, tostring(x.where), x.key, x.message }, "\0")
          if not seen[k] then
            seen[k] = true
            diags[#diags + 1] = x
          end
        end
        if d then out[#out + 1] = d end
      end
    end
  end
  return out, diags
end

-- ---------------------------------------------------------------------------
-- Bindings
-- ---------------------------------------------------------------------------

local function import(name) return { ["Fn::ImportValue"] = name } end

function M.bindings(model, svc, env, ctx)
  ctx = ctx or {}
  local tables, diags = M.tables(model, svc, env, ctx)
  if not tables then return nil, diags end
  local ns = ctx.namespace or model.namespace or "mu"
  local stack = common.stack_name(ns, "dynamodb", svc.name, env_name(env))
  local b = { stack = stack, tables = {}, values = {}, statements = {} }
  local rw, ro, streams, kms = {}, {}, {}, false
  for _, r in ipairs(tables) do
    local e = {
      logical = r.logical,
      name_export = common.export_name(stack, r.logical .. "Name"),
      arn_export = common.export_name(stack, r.logical .. "Arn"),
      stream_export = r.stream and common.export_name(stack, r.logical .. "StreamArn") or nil,
    }
    b.tables[r.name] = e
    b.values[r.logical .. "Name"] = import(e.name_export)
    b.values[r.logical .. "Arn"] = import(e.arn_export)
    local list = r.access == "read" and ro or rw
    list[#list + 1] = import(e.arn_export)
    if #r.gsi + #r.lsi > 0 then
      list[#list + 1] = { ["Fn::Join"] = { "", { import(e.arn_export), "/index/*" } } }
    end
    if e.stream_export then
      b.values[r.logical .. "StreamArn"] = import(e.stream_export)
      streams[#streams + 1] = import(e.stream_export)
    end
    if r.encryption == "customer" then kms = true end
  end
  local all_read = {}
  for _, v in ipairs(rw) do all_read[#all_read + 1] = v end
  for _, v in ipairs(ro) do all_read[#all_read + 1] = v end
  if #all_read > 0 then
    b.statements[#b.statements + 1] = { Effect = "Allow", Action = M.READ_ACTIONS, Resource = all_read }
  end
  if #rw > 0 then
    b.statements[#b.statements + 1] = { Effect = "Allow", Action = M.WRITE_ACTIONS, Resource = rw }
  end
  if #streams > 0 then
    b.statements[#b.statements + 1] = { Effect = "Allow", Action = M.STREAM_ACTIONS, Resource = streams }
  end
  if kms then
    b.statements[#b.statements + 1] = {
      Effect = "Allow", Action = { "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*",
        "kms:ReEncrypt*" },
      Resource = "*",
      Condition = { StringEquals = { ["kms:ViaService"] = { ["Fn::Sub"] = "dynamodb.${AWS::Region}.amazonaws.com" } } },
    }
  end
  return b, diags
end

return M
