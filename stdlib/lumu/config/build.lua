--- Builds the validated lumu model from a front end's document.
--
-- Internal to lumu.config.  A front end (lumu.config.muyml, lumu.config.dsl)
-- hands over
--   doc = { file=, kind=, dir=, root=<mu.yml-shaped table>,
--           overrides = { templates={entry...}, parameters={...}, tags={...} },
--           locate = function(tbl, key) -> "file:line[:col]" | nil,
--           problems = {problem...} }   -- front-end problems found so far
-- where entry = { stack=<regex key>, value=<fragment | map>, where=, path= }.
-- build(doc, opts) -> model, warnings | nil, problems
-- problem = { where=, path=, message=, severity="error"|"warning" }.
local schema = require "lumu.config.schema"

local M = {}

local MAX_DEPTH = 100

local function load_json()
  local ok, json = pcall(require, "lumu.json")
  if ok and type(json) == "table" then return json end
  return nil
end

-- ---------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------

local function fmtnum(n)
  if math.type(n) == "integer" then return string.format("%d", n) end
  if n ~= n or n == math.huge or n == -math.huge then return tostring(n) end
  local i = math.tointeger(n)
  if i then return string.format("%d", i) end
  return string.format("%.14g", n)
end
M.fmtnum = fmtnum

local function is_ident(k) return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil end

local idents, nidents = {}, 0 -- key -> is_ident(key), for the keys seen (bounded)

local function join(path, key)
  local tk = type(key)
  if tk == "number" and math.type(key) == "integer" then return path .. "[" .. key .. "]" end
  if tk ~= "string" then key = tostring(key) end
  local ident = idents[key]
  if ident == nil then
    if nidents >= 4096 then idents, nidents = {}, 0 end
    ident = is_ident(key)
    idents[key] = ident
    nidents = nidents + 1
  end
  if ident then
    if path == "" then return key end
    return path .. "." .. key
  end
  return path .. string.format("[%q]", key)
end
M.join = join

-- Edit distance with adjacent transpositions (optimal string alignment),
-- case-insensitive, for "did you mean".
local function distance(a, b)
  a, b = a:lower(), b:lower()
  if a == b then return 0 end
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 1, #b do d[0][j] = j end
  for i = 1, #a do
    local ai = a:byte(i)
    for j = 1, #b do
      local cost = ai == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and ai == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end
M.distance = distance

local function suggest(word, candidates)
  if #word > 80 then return nil end
  local best, bestd
  local limit = math.max(1, #word // 3)
  for _, c in ipairs(candidates) do
    local d = distance(word, c)
    if d == 0 and word ~= c then d = 0.5 end -- differs only in case
    if d <= limit and (not bestd or d < bestd or (d == bestd and c < best)) then
      best, bestd = c, d
    end
  end
  return best
end
M.suggest = suggest

local function did_you_mean(word, candidates)
  local s = suggest(word, candidates)
  return s and (" (did you mean '" .. s .. "'?)") or ""
end

-- ---------------------------------------------------------------------------
-- Context: problems and locations
-- ---------------------------------------------------------------------------

local Ctx = {}
Ctx.__index = Ctx

local function new_ctx(doc)
  local json = load_json()
  return setmetatable({
    doc = doc,
    file = doc.file or "?",
    problems = {},
    null = json and json.null,
    array_mt = json and json.array_mt,
    object_mt = json and json.object_mt,
  }, Ctx)
end

function Ctx:add(severity, where, path, message)
  path = path or ""
  if #path > 120 then path = path:sub(1, 60) .. "..." .. path:sub(-50) end
  self.problems[#self.problems + 1] = {
    where = where or self.file, path = path, message = message, severity = severity,
  }
end
function Ctx:error(where, path, message) self:add("error", where, path, message) end
function Ctx:warn(where, path, message) self:add("warning", where, path, message) end

-- Location of tbl[key] (or of tbl); fallback when the front end has none.
function Ctx:at(tbl, key, fallback)
  local locate = self.doc.locate
  return (locate and locate(tbl, key)) or fallback or self.file
end

function Ctx:is_null(v) return self.null ~= nil and v == self.null end

-- "list", "map" or "empty" for a table.
function Ctx:shape(t)
  local mt = getmetatable(t)
  if mt ~= nil and mt == self.array_mt then return "list" end
  if mt ~= nil and mt == self.object_mt then return "map" end
  local n, max = 0, 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return "map" end
    n = n + 1
    if k > max then max = k end
  end
  if n == 0 then return "empty" end
  return max == n and "list" or "map"
end

function Ctx:describe(v)
  if v == nil then return "nothing" end
  if self:is_null(v) then return "null" end
  local t = type(v)
  if t == "string" then return schema.quote(v) end
  if t == "number" then return fmtnum(v) end
  if t == "boolean" then return tostring(v) end
  if t == "table" then
    local s = self:shape(v)
    return s == "list" and "a list" or s == "map" and "a mapping" or "an empty table"
  end
  return "a " .. t
end

-- ---------------------------------------------------------------------------
-- The checker: value + schema node -> normalized value
-- ---------------------------------------------------------------------------

local check, check_record

local function default_of(node, ctx, path, where)
  local t = node.t
  if t == "record" then
    if node.fill then return check(node, nil, ctx, path, where) end
    return nil
  elseif t == "list" or t == "map" then
    return {}
  elseif t == "envvalue" then
    return ""
  end
  return node.default
end

local function check_string(node, v, ctx, path, where)
  local s
  local tv = type(v)
  if tv == "string" then
    s = v
  elseif tv == "number" then
    s = fmtnum(v)
  elseif tv == "boolean" then
    s = tostring(v)
  else
    ctx:error(where, path, "expected a string, got " .. ctx:describe(v))
    return node.default
  end
  if node.normalize then s = node.normalize(s) end
  if node.enum then
    local found
    for _, e in ipairs(node.enum) do
      if e == s then found = e break end
    end
    if not found then
      for _, e in ipairs(node.enum) do
        if e:lower() == s:lower() then found = e break end
      end
    end
    if not found then
      ctx:error(where, path, string.format("must be one of %s; got %s%s",
        table.concat(node.enum, ", "), schema.quote(s), did_you_mean(s, node.enum)))
      return node.default
    end
    s = found
  end
  if node.check then
    local e = node.check(s)
    if e then
      ctx:error(where, path, e)
      return s
    end
  end
  if node.warn then
    local w = node.warn(s)
    if w then ctx:warn(where, path, w) end
  end
  return s
end

local function check_int(node, v, ctx, path, where)
  local n
  if math.type(v) == "integer" then
    n = v
  elseif math.type(v) == "float" then
    n = math.tointeger(v)
  elseif type(v) == "string" then
    local digits = v:match("^%s*([+-]?%d+)%s*$")
    if digits and #digits <= 18 then n = math.tointeger(tonumber(digits)) end
  end
  if n == nil then
    ctx:error(where, path, "expected an integer, got " .. ctx:describe(v))
    return node.default
  end
  local min, max = node.min, node.max
  if (min and n < min) or (max and n > max) then
    local range
    if min and max then
      range = string.format("must be between %d and %d", min, max)
    elseif min then
      range = string.format("must be at least %d", min)
    else
      range = string.format("must be at most %d", max)
    end
    ctx:error(where, path, range .. ", got " .. n)
  elseif node.allowed then
    local ok = false
    for _, a in ipairs(node.allowed) do if a == n then ok = true break end end
    if not ok then
      local list = {}
      for i, a in ipairs(node.allowed) do list[i] = fmtnum(a) end
      ctx:error(where, path, (node.allowed_what or "must be one of") .. " " .. table.concat(list, ", ") .. ", got " .. n)
    end
  end
  return n
end

local BOOL_WORDS = { ["true"] = true, yes = true, on = true, ["false"] = false, no = false, off = false }

local function check_bool(node, v, ctx, path, where)
  if type(v) == "boolean" then return v end
  if type(v) == "string" then
    local b = BOOL_WORDS[v:lower()]
    if b ~= nil then return b end
  end
  ctx:error(where, path, "expected true or false, got " .. ctx:describe(v))
  return node.default
end

local function check_list(node, v, ctx, path, where)
  if type(v) ~= "table" or ctx:shape(v) == "map" then
    ctx:error(where, path, "expected a list, got " .. ctx:describe(v))
    return {}
  end
  local out = {}
  for i = 1, #v do
    out[i] = check(node.of, v[i], ctx, join(path, i), ctx:at(v, i, where))
  end
  return out
end

local function map_key(k, v, ctx, path, where)
  if type(k) == "string" then return k end
  if math.type(k) == "integer" then return string.format("%d", k) end
  ctx:error(ctx:at(v, k, where), path, "keys must be strings, got " .. ctx:describe(k))
  return nil
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return keys
end
M.sorted_keys = sorted_keys

local function check_map(node, v, ctx, path, where)
  if type(v) ~= "table" or ctx:shape(v) == "list" then
    ctx:error(where, path, "expected a mapping, got " .. ctx:describe(v))
    return {}
  end
  local out = {}
  for _, k in ipairs(sorted_keys(v)) do
    local key = map_key(k, v, ctx, path, where)
    if key then
      local kwhere = ctx:at(v, k, where)
      local kpath = join(path, key)
      if node.key then
        local e = node.key(key)
        if e then ctx:error(kwhere, kpath, "bad name: " .. e) end
      end
      if out[key] ~= nil then
        ctx:error(kwhere, kpath, "given twice")
      end
      local val = v[k]
      if ctx:is_null(val) then val = nil end
      if val == nil then
        if node.of.t == "record" then
          out[key] = check_record(node.of, nil, ctx, kpath, kwhere)
        else
          out[key] = default_of(node.of, ctx, kpath, kwhere)
        end
      else
        out[key] = check(node.of, val, ctx, kpath, kwhere)
      end
    end
  end
  return out
end

local function scalar_string(v, ctx)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" then return fmtnum(v) end
  if tv == "boolean" then return tostring(v) end
  if v == nil or ctx:is_null(v) then return "" end
  return nil
end

-- node.check (optional) checks each string: the value itself, or each
-- per-environment value that is not empty ("" = nothing in that environment).
local function check_envvalue(node, v, ctx, path, where)
  local s = scalar_string(v, ctx)
  if s then
    local e = node.check and node.check(s)
    if e then ctx:error(where, path, e) end
    return s
  end
  if type(v) == "table" and ctx:shape(v) ~= "list" then
    local out = {}
    for _, k in ipairs(sorted_keys(v)) do
      local key = map_key(k, v, ctx, path, where)
      if key then
        local vs = scalar_string(v[k], ctx)
        if vs == nil then
          ctx:error(ctx:at(v, k, where), join(path, key), "expected a string, got " .. ctx:describe(v[k]))
        else
          local e = node.check and vs ~= "" and node.check(vs)
          if e then ctx:error(ctx:at(v, k, where), join(path, key), e) end
          out[key] = vs
        end
      end
    end
    return out
  end
  ctx:error(where, path, "expected a string or a mapping of environment name to string, got " .. ctx:describe(v))
  return ""
end

-- Deep copy of a template fragment; keeps lumu.json's null and markers.
local function copy_any(v, ctx, path, where, depth, onpath)
  local tv = type(v)
  if tv == "string" or tv == "boolean" or ctx:is_null(v) then return v end
  if tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      ctx:error(where, path, "not a finite number: " .. tostring(v))
    end
    return v
  end
  if tv ~= "table" then
    ctx:error(where, path, "cannot be used in a template: " .. ctx:describe(v))
    return nil
  end
  if depth > MAX_DEPTH then
    ctx:error(where, path, "nested more than " .. MAX_DEPTH .. " levels deep")
    return nil
  end
  if onpath[v] then
    ctx:error(where, path, "table refers to itself (cycle)")
    return nil
  end
  onpath[v] = true
  local out = {}
  for _, k in ipairs(sorted_keys(v)) do
    if type(k) ~= "string" and math.type(k) ~= "integer" then
      ctx:error(ctx:at(v, k, where), path, "keys must be strings, got " .. ctx:describe(k))
    else
      out[k] = copy_any(v[k], ctx, join(path, k), ctx:at(v, k, where), depth + 1, onpath)
    end
  end
  onpath[v] = nil
  local mt = getmetatable(v)
  if mt ~= nil and (mt == ctx.array_mt or mt == ctx.object_mt) then setmetatable(out, mt) end
  return out
end
M.copy_any = copy_any

-- A record node's field names, sorted (cached: schema nodes do not change
-- once built, and every record of a config is checked against one).
local names_of = setmetatable({}, { __mode = "k" })
local function field_names(node)
  local names = names_of[node]
  if names and names.fields == node.fields then return names end
  names = { fields = node.fields }
  for k in pairs(node.fields) do names[#names + 1] = k end
  table.sort(names)
  names_of[node] = names
  return names
end

check_record = function(node, v, ctx, path, where)
  local given = {}
  local bad = false
  if v ~= nil then
    if type(v) ~= "table" or ctx:shape(v) == "list" then
      ctx:error(where, path, "expected a mapping, got " .. ctx:describe(v))
      v, bad = nil, true
    end
  end
  if v ~= nil then
    local names
    for _, k in ipairs(sorted_keys(v)) do
      if type(k) ~= "string" then
        ctx:error(ctx:at(v, k, where), path, math.type(k) == "integer"
          and string.format("unexpected list item [%d]: expected key = value fields", k)
          or "keys must be strings, got " .. ctx:describe(k))
      else
        local fname = (node.aliases and node.aliases[k]) or k
        if not node.fields[fname] then
          names = names or field_names(node)
          ctx:error(ctx:at(v, k, where), path, "unknown key '" .. k .. "'" .. did_you_mean(k, names))
        elseif given[fname] then
          ctx:error(ctx:at(v, k, where), path, string.format(
            "'%s' and '%s' are the same setting; give only one", given[fname], k))
        else
          given[fname] = k
        end
      end
    end
  end
  local out = { _where = where, _path = path, _keys = {} }
  local fnames = field_names(node)
  for i = 1, #fnames do
    local fname = fnames[i]
    local fnode = node.fields[fname]
    local key = given[fname]
    local val = key and v[key]
    if ctx:is_null(val) then val = nil end
    if val == nil then
      if fnode.required and not bad then ctx:error(where, path, "missing required key '" .. fname .. "'") end
      -- the path only matters to a record default that is checked
      local fpath = fnode.t == "record" and fnode.fill and join(path, key or fname) or path
      out[fname] = default_of(fnode, ctx, fpath, where)
    else
      local fpath = join(path, key or fname)
      local fwhere = key and ctx:at(v, key, where) or where
      out._keys[fname] = fwhere
      out[fname] = check(fnode, val, ctx, fpath, fwhere)
    end
  end
  return out
end

-- A mapping whose fields a generator checks: copied, located, named.
local function check_open(node, v, ctx, path, where)
  if type(v) ~= "table" or ctx:shape(v) == "list" then
    ctx:error(where, path, "expected a mapping, got " .. ctx:describe(v))
    return { _where = where, _path = path, _keys = {} }
  end
  local out = copy_any(v, ctx, path, where, 0, {})
  if type(out) ~= "table" then out = {} end
  setmetatable(out, nil)
  out._where, out._path, out._keys = where, path, {}
  for k in pairs(v) do
    if type(k) == "string" then out._keys[k] = ctx:at(v, k, where) end
  end
  local req = node.required
  if req then
    local name = out[req]
    if name == nil or ctx:is_null(name) then
      ctx:error(where, path, "missing required key '" .. req .. "'")
    elseif type(name) ~= "string" then
      ctx:error(out._keys[req], join(path, req), "expected a string, got " .. ctx:describe(name))
    elseif node.check_name then
      local e = node.check_name(name)
      if e then ctx:error(out._keys[req], join(path, req), e) end
    end
  end
  return out
end

local CHECKERS = {
  string = check_string, int = check_int, bool = check_bool, list = check_list,
  map = check_map, record = check_record, envvalue = check_envvalue,
  any = function(_, v, ctx, path, where) return copy_any(v, ctx, path, where, 0, {}) end,
  skip = function() return nil end,
  open = check_open,
}

check = function(node, v, ctx, path, where)
  if ctx:is_null(v) then v = nil end
  if v == nil and node.t ~= "record" then return default_of(node, ctx, path, where) end
  if v == nil and not node.fill then return nil end
  return CHECKERS[node.t](node, v, ctx, path, where)
end
M.check = check

-- ---------------------------------------------------------------------------
-- Finalisation: provider-dependent defaults and cross-object checks
-- ---------------------------------------------------------------------------

local function kw(rec, key) return (rec._keys and rec._keys[key]) or rec._where end

local function env_index(envs)
  local idx, names = {}, {}
  for _, e in ipairs(envs) do
    if e.name then
      idx[e.name:lower()] = e
      names[#names + 1] = e.name
    end
  end
  return idx, names
end

-- Reports a reference to an environment: an error when the project defines
-- environments and none matches (mu matches names case-insensitively), a
-- warning when it defines none.
local function check_env_ref(ctx, envs, name, where, path, what)
  if not name then return end
  local idx, names = env_index(envs)
  if idx[name:lower()] then return end
  if #names > 0 then
    ctx:error(where, path, string.format("%s '%s' is not defined (environments: %s)%s",
      what or "environment", name, table.concat(names, ", "), did_you_mean(name, names)))
  else
    ctx:warn(where, path, string.format("%s '%s' is not defined in this file", what or "environment", name))
  end
end

local function finish_environment(ctx, env, ns)
  local path = env._path
  local provider = env.provider
  local eks = provider == "eks" or provider == "eks-fargate"
  local c = env.cluster
  c.instanceType = c.instanceType or (eks and "t2.medium" or "t3.micro")
  c.maxSize = c.maxSize or (eks and 3 or 2)
  if c.minSize and c.maxSize and c.minSize > c.maxSize then
    ctx:error(kw(c, "minSize"), path .. ".cluster.minSize",
      string.format("minSize (%d) is greater than maxSize (%d)", c.minSize, c.maxSize))
  elseif c.desiredCapacity and c.maxSize and (c.desiredCapacity > c.maxSize or c.desiredCapacity < c.minSize) then
    ctx:error(kw(c, "desiredCapacity"), path .. ".cluster.desiredCapacity",
      string.format("desiredCapacity (%d) must be between minSize (%d) and maxSize (%d)",
        c.desiredCapacity, c.minSize, c.maxSize))
  end
  local lb = env.loadbalancer
  if lb.hostedzone and not lb.name and env.name then
    lb.name = env.name
    if #lb.name > 32 then
      ctx:error(kw(env, "name"), path .. ".loadbalancer.name", string.format(
        "defaults to the environment name, which is longer than 32 characters (%d); set loadbalancer.name",
        #env.name))
    end
  end
  local d = env.discovery
  if d.provider and d.provider:lower() == "consul" then
    ctx:error(kw(d, "provider"), path .. ".discovery.provider",
      "consul service discovery is no longer supported by mu; remove discovery.provider")
  end
  if not d.name and env.name then d.name = env.name .. "." .. ns .. ".local" end
  local vt = env.vpcTarget
  if vt then
    local vpath = path .. ".vpcTarget"
    if vt.vpcId and vt.environment then
      ctx:error(vt._where, vpath,
        "give either vpcId (an existing VPC) or environment (another mu environment's VPC), not both")
    elseif vt.vpcId then
      if #vt.instanceSubnetIds == 0 then
        ctx:error(vt._where, vpath .. ".instanceSubnetIds", "needs at least one subnet when vpcId is set")
      end
      if #vt.elbSubnetIds == 0 then
        ctx:error(vt._where, vpath .. ".elbSubnetIds", "needs at least one subnet when vpcId is set")
      end
      if vt.namespace then
        ctx:warn(kw(vt, "namespace"), vpath .. ".namespace", "ignored: only used with vpcTarget.environment")
      end
    elseif vt.environment then
      vt.namespace = vt.namespace or ns
      if #vt.instanceSubnetIds > 0 or #vt.elbSubnetIds > 0 then
        ctx:warn(vt._where, vpath, "subnet ids are ignored with vpcTarget.environment (that environment's VPC stack provides them)")
      end
    else
      ctx:error(vt._where, vpath, "needs vpcId (an existing VPC) or environment (another mu environment)")
    end
  end
end

local function finish_pipeline(ctx, p, envs)
  local path = p._path
  for _, stage in ipairs({ "acceptance", "production" }) do
    local s = p[stage]
    if not s.disabled then
      check_env_ref(ctx, envs, s.environment, kw(s, "environment"), path .. "." .. stage .. ".environment")
    end
  end
  local src = p.source
  if src.repo then
    local rwhere, rpath = kw(src, "repo"), path .. ".source.repo"
    if src.provider == "GitHub" and not src.repo:match("^[%w%._%-]+/[%w%._%-]+$") then
      ctx:error(rwhere, rpath, "a GitHub repo is owner/name, got " .. schema.quote(src.repo))
    elseif src.provider == "S3" and not src.repo:match("^[%w%._%-]+/.+$") then
      ctx:error(rwhere, rpath, "an S3 source is bucket/key, got " .. schema.quote(src.repo))
    elseif src.provider == "CodeCommit" and not src.repo:match("^[%w%._%-]+$") then
      ctx:error(rwhere, rpath, "a CodeCommit repository name has no '/', got " .. schema.quote(src.repo))
    end
  end
  if p.catalog and (not p.catalog.name) ~= (not p.catalog.version) then
    ctx:warn(p.catalog._where, path .. ".catalog",
      "ignored unless both catalog.name and catalog.version are set")
  end
end

local function check_db_sizes(ctx, cfg, where, path)
  if cfg.minSize and cfg.maxSize and cfg.minSize > cfg.maxSize then
    ctx:error(where, path, string.format("minSize (%d) is greater than maxSize (%d)", cfg.minSize, cfg.maxSize))
  end
end

local function finish_database(ctx, db, envs)
  local path = db._path
  local any_name = db.name ~= nil
  local idx, names = env_index(envs)
  for envname, ov in pairs(db.environmentConfig) do
    if ov.name then any_name = true end
    if #names > 0 and not idx[envname:lower()] then
      ctx:warn(ov._where, join(path .. ".environmentConfig", envname),
        "no environment named '" .. envname .. "' (environments: " .. table.concat(names, ", ") .. ")")
    end
    local merged = {}
    for k, v in pairs(db) do merged[k] = v end
    for k, v in pairs(ov) do if type(k) == "string" and k:sub(1, 1) ~= "_" then merged[k] = v end end
    check_db_sizes(ctx, merged, ov._where, join(path .. ".environmentConfig", envname))
  end
  check_db_sizes(ctx, db, kw(db, "minSize"), path)
  if not any_name then
    ctx:warn(db._where, path, "has no name, so no database is created (set database.name)")
  end
end

local function basename(dir)
  dir = (dir or ""):gsub("/+$", "")
  return dir:match("([^/]+)$")
end

local function finish_service(ctx, svc, envs, dirname)
  local path = svc._path
  if not svc.name then
    local name = dirname
    if not name then
      ctx:error(svc._where, path .. ".name", "missing, and no directory name to default to; set name")
    else
      local e = schema.name(63)(name)
      if e then
        ctx:error(svc._where, path .. ".name", string.format(
          "missing, and the directory name '%s' is not a valid service name (%s); set name", name, e))
      end
      svc.name = name
    end
  end
  if svc.name and svc.name:find("%u") then
    ctx:warn(kw(svc, "name"), path .. ".name", "has upper-case letters, but ECR repository names ('<namespace>-"
      .. svc.name .. "') must be lower case")
  end
  local fargate_all, fargate_any = #envs > 0, false
  for _, e in ipairs(envs) do
    if e.provider == "ecs-fargate" then fargate_any = true else fargate_all = false end
  end
  if not svc.networkMode then
    svc.networkMode = fargate_all and "awsvpc" or "bridge"
  elseif fargate_any and svc.networkMode ~= "awsvpc" then
    ctx:warn(kw(svc, "networkMode"), path .. ".networkMode",
      "'" .. svc.networkMode .. "' is replaced by 'awsvpc' on Fargate environments")
  end
  if svc.minSize > svc.maxSize then
    ctx:error(kw(svc, "minSize"), path .. ".minSize",
      string.format("minSize (%d) is greater than maxSize (%d)", svc.minSize, svc.maxSize))
  end
  -- per-environment values: warn about names that match no environment
  local idx, names = env_index(envs)
  if #names > 0 then
    for _, field in ipairs({ "environment", "secrets" }) do
      for _, var in ipairs(sorted_keys(svc[field] or {})) do
        local v = svc[field][var]
        if type(v) == "table" then
          for _, envname in ipairs(sorted_keys(v)) do
            if not idx[envname:lower()] then
              ctx:warn(kw(svc, field), join(join(path .. "." .. field, var), envname),
                "no environment named '" .. envname .. "' (environments: " .. table.concat(names, ", ") .. ")")
            end
          end
        end
      end
    end
  end
  if svc.database then finish_database(ctx, svc.database, envs) end
  if svc.pipeline then finish_pipeline(ctx, svc.pipeline, envs) end
  for _, list in ipairs({ svc.schedules, svc.dynamodb }) do
    local seen = {}
    for _, s in ipairs(list) do
      if type(s.name) == "string" then
        if seen[s.name] then
          ctx:error(kw(s, "name"), s._path .. ".name", "duplicate name '" .. s.name .. "' (also at " .. seen[s.name] .. ")")
        end
        seen[s.name] = kw(s, "name")
      end
    end
  end
end

-- compliance (lumu): environment references, rule sources and names, the
-- recorder's environments, exclusions of default rules.
local function finish_compliance(ctx, c, envs)
  local path = c._path
  local _, names = env_index(envs)
  if c._keys.environments == nil then
    c.environments = table.move(names, 1, #names, 1, {})
  else
    for i, e in ipairs(c.environments) do
      check_env_ref(ctx, envs, e, kw(c, "environments"), path .. ".environments[" .. i .. "]")
    end
  end
  local r = c.recorder
  if r._keys.environments == nil then
    r.environments = c.environments[1] and { c.environments[1] } or {}
  else
    local chosen = {}
    for _, e in ipairs(c.environments) do chosen[e:lower()] = true end
    for i, e in ipairs(r.environments) do
      local p = path .. ".recorder.environments[" .. i .. "]"
      if not chosen[e:lower()] then
        ctx:error(kw(r, "environments"), p, string.format(
          "environment '%s' has no compliance stack (compliance.environments: %s)", e,
          #c.environments > 0 and table.concat(c.environments, ", ") or "none"))
      end
    end
  end
  if r.allSupported and #r.resourceTypes > 0 then
    ctx:error(kw(r, "resourceTypes"), path .. ".recorder.resourceTypes",
      "resourceTypes needs allSupported: false (all supported types are recorded otherwise)")
  elseif not r.allSupported and #r.resourceTypes == 0 then
    ctx:error(kw(r, "allSupported"), path .. ".recorder.allSupported",
      "allSupported: false needs recorder.resourceTypes (the types to record)")
  end
  local ok, gen = pcall(require, "lumu.gen.compliance")
  local defaults = ok and gen.DEFAULT_RULES or {}
  local seen = {}
  for _, rule in ipairs(c.rules) do
    local rp = rule._path
    if rule.identifier and rule.lambdaArn then
      ctx:error(kw(rule, "lambdaArn"), rp, "give identifier (an AWS managed rule) or lambdaArn (a custom rule), "
        .. "not both")
    elseif not rule.identifier and not rule.lambdaArn then
      ctx:error(rule._where, rp, "a rule needs identifier (an AWS managed rule) or lambdaArn (a custom rule)")
    end
    if not rule.name then
      if rule.identifier then
        rule.name = rule.identifier:lower():gsub("_", "-")
      elseif rule.lambdaArn then
        rule.name = rule.lambdaArn:match(":function:([^:]+)")
      end
      if rule.name and #rule.name > 64 then rule.name = rule.name:sub(1, 64) end
    end
    if rule.name then
      local k = rule.name:lower()
      if seen[k] then
        ctx:error(kw(rule, "name"), rp .. ".name", string.format("duplicate compliance rule name '%s' (also at %s)",
          rule.name, seen[k]))
      else
        seen[k] = kw(rule, "name")
      end
    end
  end
  local known = {}
  for _, d in ipairs(defaults) do
    known[#known + 1] = d.identifier
    known[#known + 1] = d.name
  end
  for i, x in ipairs(c.exclude) do
    local found = false
    for _, d in ipairs(defaults) do
      if x == d.identifier or x:lower() == d.name then found = true end
    end
    if not found and ok then
      ctx:error(kw(c, "exclude"), path .. ".exclude[" .. i .. "]", "'" .. x .. "' is not a default compliance rule"
        .. did_you_mean(x, known))
    end
  end
  if not c.defaults and #c.exclude > 0 then
    ctx:warn(kw(c, "exclude"), path .. ".exclude", "ignored: defaults is false, so no default rule is deployed")
  end
end

-- organization (lumu): unit parents, account units and emails, policy and
-- guardrail targets, the root id when something hangs at the root, the log
-- archive account and vending.
local function finish_organization(ctx, o)
  local path = o._path
  local units, unames = {}, {}
  for i, u in ipairs(o.units) do
    if u.name then
      local k = u.name:lower()
      if units[k] then
        ctx:error(kw(u, "name"), path .. ".units[" .. i .. "].name", string.format(
          "duplicate organizational unit '%s' (also at %s)", u.name, units[k]._keys.name or units[k]._where))
      else
        units[k] = u
        unames[#unames + 1] = u.name
      end
    end
  end
  local at_root = false
  local function unit_ref(name, where, p, what)
    if name == nil then at_root = true; return end
    if name == "Root" then at_root = true; return end
    if not units[name:lower()] then
      ctx:error(where, p, string.format("%s '%s' is not an organizational unit (units: %s)%s", what, name,
        #unames > 0 and table.concat(unames, ", ") or "none", did_you_mean(name, unames)))
    end
  end
  for i, u in ipairs(o.units) do
    unit_ref(u.parent, kw(u, "parent"), path .. ".units[" .. i .. "].parent", "parent")
    -- a cycle of parents
    local seen, cur, steps = {}, u, 0
    while cur and cur.parent and steps <= #o.units do
      if seen[cur] then
        ctx:error(kw(u, "parent"), path .. ".units[" .. i .. "].parent", "organizational units form a cycle of parents")
        break
      end
      seen[cur] = true
      cur = units[cur.parent:lower()]
      steps = steps + 1
    end
  end
  local accounts, anames = {}, {}
  local emails = {}
  for i, a in ipairs(o.accounts) do
    local ap = path .. ".accounts[" .. i .. "]"
    if a.name then
      local k = a.name:lower()
      if accounts[k] then
        ctx:error(kw(a, "name"), ap .. ".name", "duplicate account name '" .. a.name .. "'")
      else
        accounts[k] = a
        anames[#anames + 1] = a.name
      end
    end
    if not a.id then
      if not a.email then
        ctx:error(a._where, ap, "a new account needs email (or give id: an existing account)")
      end
      unit_ref(a.unit, kw(a, "unit"), ap .. ".unit", "unit")
    elseif a.unit then
      unit_ref(a.unit, kw(a, "unit"), ap .. ".unit", "unit")
      ctx:warn(kw(a, "unit"), ap .. ".unit", "ignored: existing accounts (id) are not moved")
    end
    if a.email then
      local k = a.email:lower()
      if emails[k] then ctx:error(kw(a, "email"), ap .. ".email", "email '" .. a.email .. "' is used by two accounts") end
      emails[k] = true
    end
  end
  local function target_ref(name, where, p)
    if name == "Root" then at_root = true; return end
    if name:match("^" .. string.rep("%d", 12) .. "$") then return end
    if units[name:lower()] or accounts[name:lower()] then return end
    local all = { "Root" }
    for _, n in ipairs(unames) do all[#all + 1] = n end
    for _, n in ipairs(anames) do all[#all + 1] = n end
    ctx:error(where, p, string.format("target '%s' is not Root, a unit, an account or an account id%s", name,
      did_you_mean(name, all)))
  end
  local g = o.guardrails
  if g._keys.targets == nil then g.targets = { "Root" } end
  for i, t in ipairs(g.targets) do target_ref(t, kw(g, "targets"), path .. ".guardrails.targets[" .. i .. "]") end
  local pnames = {}
  for i, pol in ipairs(o.policies) do
    local pp = path .. ".policies[" .. i .. "]"
    if pol.name then
      if pnames[pol.name:lower()] then ctx:error(kw(pol, "name"), pp .. ".name", "duplicate policy name '" .. pol.name .. "'") end
      pnames[pol.name:lower()] = true
    end
    local st = pol.statements
    if st == nil then
      ctx:error(pol._where, pp, "a service control policy needs statements (a list of IAM policy statements)")
    elseif type(st) ~= "table" or ctx:shape(st) ~= "list" then
      ctx:error(kw(pol, "statements"), pp .. ".statements", "expected a list of IAM policy statements, got "
        .. ctx:describe(st))
    else
      for j, x in ipairs(st) do
        if type(x) ~= "table" or ctx:shape(x) == "list" or (x.Effect ~= "Allow" and x.Effect ~= "Deny") then
          ctx:error(kw(pol, "statements"), pp .. ".statements[" .. j .. "]",
            "expected a statement mapping with Effect Allow or Deny")
        end
      end
    end
    if #pol.targets == 0 then
      ctx:warn(pol._where, pp .. ".targets", "the policy is attached nowhere (no targets)")
    end
    for j, t in ipairs(pol.targets) do target_ref(t, kw(pol, "targets"), pp .. ".targets[" .. j .. "]") end
  end
  if at_root and not o.rootId then
    ctx:error(o._where, path .. ".rootId", "needed: units, accounts or policies hang at the organization's root "
      .. "(aws organizations list-roots gives it, like r-ab12)")
  end
  if o.logArchive and not accounts[o.logArchive:lower()] then
    ctx:error(kw(o, "logArchive"), path .. ".logArchive", "'" .. o.logArchive .. "' is not in organization.accounts"
      .. did_you_mean(o.logArchive, anames))
  end
  local v = o.vending
  if v then
    if v.unit then unit_ref(v.unit, kw(v, "unit"), path .. ".vending.unit", "unit") end
    local la = o.logArchive and accounts[o.logArchive:lower()]
    if not v.trailBucket and not (la and la.id) then
      ctx:error(v._where, path .. ".vending.trailBucket", "needed: the vended accounts' CloudTrail goes to the "
        .. "log archive bucket; give trailBucket, or logArchive naming an account with an id")
    end
  end
end

-- environments living in other accounts (lumu): role and account agree.
local function finish_accounts(ctx, envs, top)
  for _, env in ipairs(envs) do
    local p = env._path
    if env.role and not env.account then
      ctx:error(kw(env, "role"), p .. ".role", "role needs account (the account the environment lives in)")
    elseif env.role and env.account and env.role:match("^arn:[^:]+:iam::(%d+):") ~= env.account then
      ctx:error(kw(env, "role"), p .. ".role", string.format("the role is in account %s, not in the environment's "
        .. "account %s", env.role:match("^arn:[^:]+:iam::(%d+):"), env.account))
    end
    if env.profile and not env.account then
      ctx:warn(kw(env, "profile"), p .. ".profile", "ignored without account")
    end
  end
  local t = top.tools
  if t and t.role and t.account and t.role:match("^arn:[^:]+:iam::(%d+):") ~= t.account then
    ctx:error(kw(t, "role"), "tools.role", "the role is not in the tools account " .. t.account)
  end
  local o = top.organization
  if o and o.role and o.account and o.role:match("^arn:[^:]+:iam::(%d+):") ~= o.account then
    ctx:error(kw(o, "role"), "organization.role", "the role is not in the management account " .. o.account)
  end
end

-- devenv (lumu): the environment exists, member names are unique.
local function finish_devenvs(ctx, list, envs)
  local seen_env = {}
  for _, d in ipairs(list) do
    local p = d._path
    check_env_ref(ctx, envs, d.environment, kw(d, "environment"), p .. ".environment")
    if d.environment then
      local k = d.environment:lower()
      if seen_env[k] then
        ctx:error(kw(d, "environment"), p .. ".environment", "a second devenv for environment '" .. d.environment
          .. "' (also at " .. seen_env[k] .. "); list every member in one")
      end
      seen_env[k] = kw(d, "environment")
    end
    local names = {}
    for i, m in ipairs(d.members) do
      if m.name then
        if names[m.name:lower()] then
          ctx:error(kw(m, "name"), p .. ".members[" .. i .. "].name", "duplicate member name '" .. m.name .. "'")
        end
        names[m.name:lower()] = true
      end
    end
    if #d.members == 0 then ctx:warn(d._where, p .. ".members", "no members: no environment is created") end
  end
end

local function check_extension(ctx, ext)
  local path = ext._path
  if ext.image then
    ctx:warn(kw(ext, "image"), path .. ".image", "Docker image extensions are not supported (mu ignores them too)")
  end
  if not ext.url then
    if not ext.image then ctx:error(ext._where, path, "missing required key 'url'") end
    return
  end
  local url, where = ext.url, kw(ext, "url")
  local scheme = url:match("^(%a[%w+.-]*)://")
  local archive = url:match("%.zip$") or url:match("%.tar%.gz$") or url:match("%.tgz$")
  if scheme then
    scheme = scheme:lower()
    if scheme == "http" or scheme == "https" or scheme == "s3" then
      if not archive then
        ctx:error(where, path .. ".url", scheme .. ":// extensions must be a .zip, .tar.gz or .tgz archive, got "
          .. schema.quote(url))
      end
    elseif scheme ~= "file" then
      ctx:error(where, path .. ".url", "unsupported scheme '" .. scheme
        .. "://' (use a relative path, file://, http(s):// or s3://)")
    end
  end
end

local OVERRIDE_KINDS = { "templates", "parameters", "tags" }

local function build_overrides(ctx, overrides)
  local out = { templates = {}, parameters = {}, tags = {} }
  for _, kind in ipairs(OVERRIDE_KINDS) do
    for _, e in ipairs(overrides and overrides[kind] or {}) do
      local where, path = e.where or ctx.file, e.path or kind
      local stack = e.stack
      if type(stack) == "number" then stack = fmtnum(stack) end
      if type(stack) ~= "string" or stack == "" then
        ctx:error(where, path, "the stack name pattern must be a non-empty string, got " .. ctx:describe(stack))
      else
        local re, err = require("lumu.config.regex").compile(stack) -- loaded when there are overrides
        if not re then
          ctx:error(where, path, "bad stack name pattern " .. schema.quote(stack) .. ": " .. err)
        end
        local entry = { stack = stack, pattern = re and re.lua_pattern or nil, where = where, _where = where }
        local v = e.value
        if ctx:is_null(v) then v = nil end
        if kind == "templates" and type(v) == "function" then
          -- lumu.lua only: override{stack=, template=function(t, stack) ... end}
          -- edits the generated template table in place (or returns a new one)
          entry.edit = v
        elseif kind == "templates" then
          if type(v) ~= "table" or ctx:shape(v) == "list" then
            ctx:error(where, path, "expected a mapping (a CloudFormation template fragment), got " .. ctx:describe(v))
          else
            entry.fragment = copy_any(v, ctx, path, where, 0, {})
          end
        else
          local values = check(schema.MAP(schema.S {}), v or {}, ctx, path, where)
          if kind == "tags" then
            for k, tv in pairs(values) do
              local kwhere = type(v) == "table" and ctx:at(v, k, where) or where
              if k:lower():sub(1, 4) == "aws:" then
                ctx:error(kwhere, join(path, k), "tag keys starting with 'aws:' are reserved by AWS")
              elseif #k > 128 then
                ctx:error(kwhere, join(path, k), "tag keys are at most 128 characters")
              elseif #tv > 256 then
                ctx:error(kwhere, join(path, k), "tag values are at most 256 characters")
              end
            end
          end
          entry.values = values
        end
        table.insert(out[kind], entry)
      end
    end
  end
  return out
end

-- Sort problems by file position (line, col), then path and message.
local function sort_problems(problems)
  for i, p in ipairs(problems) do p._i = i end
  local function key(p)
    local file, line, col = p.where:match("^(.-):(%d+):?(%d*)$")
    return file or p.where, tonumber(line) or 0, tonumber(col) or 0
  end
  local files, nfiles = {}, 0
  for _, p in ipairs(problems) do
    local f = key(p)
    if not files[f] then nfiles = nfiles + 1; files[f] = nfiles end
  end
  table.sort(problems, function(a, b)
    local fa, la, ca = key(a)
    local fb, lb, cb = key(b)
    if files[fa] ~= files[fb] then return files[fa] < files[fb] end
    if la ~= lb then return la < lb end
    if ca ~= cb then return ca < cb end
    if a.path ~= b.path then return a.path < b.path end
    if a.message ~= b.message then return a.message < b.message end
    return a._i < b._i
  end)
  for _, p in ipairs(problems) do p._i = nil end
  return problems
end
M.sort_problems = sort_problems

--- build(doc, opts) -> model, warnings | nil, problems
-- opts: namespace= (the --namespace flag), getenv= (default os.getenv),
-- dirname= (directory name used as the default service name).
function M.build(doc, opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local ctx = new_ctx(doc)
  for _, p in ipairs(doc.problems or {}) do ctx.problems[#ctx.problems + 1] = p end

  local root = doc.root
  if root == nil or ctx:is_null(root) then root = {} end
  local top = check(schema.Top, root, ctx, "", doc.root_where or ctx.file)

  -- namespace: --namespace > MU_NAMESPACE > file > "mu"
  local ns, ns_where, ns_from_file = "mu", ctx.file, false
  if top.namespace then ns, ns_where, ns_from_file = top.namespace, kw(top, "namespace"), true end
  local env_ns = getenv("MU_NAMESPACE")
  if env_ns and env_ns ~= "" then ns, ns_where, ns_from_file = env_ns, "MU_NAMESPACE", false end
  if opts.namespace and opts.namespace ~= "" then ns, ns_where, ns_from_file = opts.namespace, "--namespace", false end
  if not ns_from_file then
    local e = schema.namespace(ns)
    if e then ctx:error(ns_where, "namespace", e) end
  end

  local envs = top.environments
  local seen = {}
  for _, env in ipairs(envs) do
    if env.name then
      local k = env.name:lower()
      if seen[k] then
        ctx:error(kw(env, "name"), env._path .. ".name", string.format(
          "duplicate environment name '%s' (also at %s)", env.name, seen[k]))
      else
        seen[k] = kw(env, "name")
      end
    end
    finish_environment(ctx, env, ns)
  end
  for _, env in ipairs(envs) do
    local vt = env.vpcTarget
    if vt and vt.environment and vt.namespace == ns then
      check_env_ref(ctx, envs, vt.environment, kw(vt, "environment"), env._path .. ".vpcTarget.environment")
      if env.name and vt.environment:lower() == env.name:lower() then
        ctx:error(kw(vt, "environment"), env._path .. ".vpcTarget.environment", "an environment cannot use its own VPC")
      end
    end
  end

  local services = {}
  if top.service then services[#services + 1] = top.service end
  for _, s in ipairs(top.services) do services[#services + 1] = s end
  local dirname = opts.dirname or basename(doc.dir)
  seen = {}
  local priorities = {}
  for _, svc in ipairs(services) do
    finish_service(ctx, svc, envs, dirname)
    if svc.name then
      local k = svc.name:lower()
      if seen[k] then
        ctx:error(kw(svc, "name"), svc._path .. ".name",
          string.format("duplicate service name '%s' (also at %s)", svc.name, seen[k]))
      else
        seen[k] = kw(svc, "name")
      end
    end
    if svc.priority then
      local other = priorities[svc.priority]
      if other then
        ctx:error(kw(svc, "priority"), svc._path .. ".priority", string.format(
          "priority %d is also used by service '%s'; listener rule priorities must be unique", svc.priority,
          other.name or "?"))
      else
        priorities[svc.priority] = svc
      end
    end
  end

  for _, b in ipairs(top.rbac) do
    for i, e in ipairs(b.environments) do
      check_env_ref(ctx, envs, e, kw(b, "environments"), b._path .. ".environments[" .. i .. "]")
    end
  end

  if top.catalog then
    seen = {}
    for _, cp in ipairs(top.catalog.pipelines) do
      if cp.name then
        if seen[cp.name] then
          ctx:error(kw(cp, "name"), cp._path .. ".name", "duplicate catalog pipeline name '" .. cp.name .. "'")
        end
        seen[cp.name] = true
      end
      for _, version in ipairs(sorted_keys(cp.versions)) do
        finish_pipeline(ctx, cp.versions[version], envs)
      end
    end
  end

  -- `compliance:` given empty (YAML null) means the defaults
  if top.compliance == nil and type(root) == "table" and root.compliance ~= nil and ctx:is_null(root.compliance) then
    top.compliance = check(schema.Compliance, {}, ctx, "compliance", ctx:at(root, "compliance", ctx.file))
  end
  if top.compliance then finish_compliance(ctx, top.compliance, envs) end
  if top.organization == nil and type(root) == "table" and root.organization ~= nil and ctx:is_null(root.organization) then
    top.organization = check(schema.Organization, {}, ctx, "organization", ctx:at(root, "organization", ctx.file))
  end
  if top.organization then finish_organization(ctx, top.organization) end
  finish_accounts(ctx, envs, top)
  finish_devenvs(ctx, top.devenvs, envs)

  for _, ext in ipairs(top.extensions) do check_extension(ctx, ext) end

  local ov = build_overrides(ctx, doc.overrides)

  local problems = sort_problems(ctx.problems)
  local errors, warnings = 0, {}
  for _, p in ipairs(problems) do
    if p.severity == "warning" then warnings[#warnings + 1] = p else errors = errors + 1 end
  end
  if errors > 0 then return nil, problems end

  local model = {
    namespace = ns,
    source = { file = doc.file, kind = doc.kind, dir = doc.dir },
    environments = envs,
    services = services,
    catalog = top.catalog,
    compliance = top.compliance,
    organization = top.organization,
    tools = top.tools,
    profiles = top.profiles,
    devenvs = top.devenvs,
    templates = ov.templates,
    parameters = ov.parameters,
    tags = ov.tags,
    extensions = top.extensions,
    disableIAM = top.disableIAM,
    roles = top.roles,
    rbac = top.rbac,
    _where = doc.file,
    _warnings = warnings,
  }
  return model, warnings
end

return M
