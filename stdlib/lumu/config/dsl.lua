--- The lumu.lua front end of lumu.config (internal).
--
-- run(text, {filename=, dir=, getenv=}) -> doc (see lumu.config.build)
--
-- lumu.lua is plain Lua 5.4 run in its own environment (reads fall through
-- to the real globals, writes stay in the file's environment) with:
--   namespace "name"
--   environment { name=, provider=, cluster={...}, ... }   -> mu's environments[]
--   service { name=, port=, pipeline={...}, database={...}, ... }
--   database { service="name", name=, engine=, ... }   service= optional with one service
--   pipeline { service="name", source={...}, ... }      same
--   dynamodb { service="name", name="orders", ... }     appended to service.dynamodb (lumu)
--   catalog { iamUsers={...}, pipelines={...} }         several calls are merged
--   compliance { rules={...}, exclude={...}, recorder={...}, delivery={...} }
--                                                       AWS Config (lumu); merged alike
--   organization { units={...}, accounts={...}, guardrails={...}, policies={...} }
--                                                       (lumu) several calls merged: lists
--                                                       concatenated
--   tools { account=, profile=, role= }                 the pipelines' account (lumu)
--   profiles { ["111111111111"] = "profile" }           AWS profile per account (lumu); merged
--   devenv { environment=, members={...}, ... }         Cloud9 per member (lumu); appended
--   extension { url=, image= }  or  extension "path"
--   override { stack="regex", template={...}, parameters={...}, tags={...} }
--   rbac { role=, users={...}, environments={...}, services={...} }
--   roles { cloudFormation="arn:..." }
--   disableIAM(true)
-- Keys are mu's own (camelCase).  Each call returns its argument.
-- `require` loads team modules from the config's directory, its
-- lua_modules/share/lua/5.4 tree, then package.path, into the same
-- environment (so they can call the functions above); cycles are an error.
-- lumu.* and preloaded/C modules come from the ordinary `require`.
-- os.getenv reads opts.getenv; os.exit raises.
-- Misuse (a call with a wrong argument) is reported at the call site and
-- the script continues; an error raised by the script stops it.
local M = {}

local MAX_DEPTH = 100

local function quote(v) return require("lumu.config.schema").quote(v) end

local function source_name(info)
  local src = info.source or "?"
  if src:sub(1, 1) == "@" then
    src = src:sub(2)
    return (src:gsub("^%./", ""))
  end
  return info.short_src or src
end

-- file:line of the first Lua function below this module's frames.
local function call_site(level)
  for l = level + 1, level + 30 do
    local info = debug.getinfo(l, "Sl")
    if not info then break end
    if info.what ~= "C" and info.currentline and info.currentline > 0 then
      return source_name(info) .. ":" .. info.currentline
    end
  end
  return nil
end

local function describe(v)
  if v == nil then return "nothing" end
  if type(v) == "string" then return quote(v) end
  if type(v) == "table" then return "a table" end
  return (type(v) == "number" or type(v) == "boolean") and tostring(v) or ("a " .. type(v))
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

--- run(text, opts) -> doc
function M.run(text, opts)
  local filename = opts.filename or "lumu.lua"
  local dir = opts.dir or dirname(filename)
  local getenv = opts.getenv or os.getenv
  local problems = {}
  local site = setmetatable({}, { __mode = "k" })
  local merged = setmetatable({}, { __mode = "k" }) -- catalog lists built from several calls
  local state = {
    envs = {}, services = {}, dbs = {}, pipelines = {}, tables = {}, extensions = {}, rbac = {}, devenvs = {},
    overrides = { templates = {}, parameters = {}, tags = {} },
  }
  local main_where = filename

  local function problem(where, path, message, severity)
    problems[#problems + 1] = { where = where or main_where, path = path or "", message = message,
      severity = severity or "error" }
  end

  -- Every table reachable from a call's argument is located at the call.
  local function register(t, where, depth)
    if type(t) ~= "table" or site[t] or depth > MAX_DEPTH then return end
    site[t] = where
    for _, v in pairs(t) do register(v, where, depth + 1) end
  end

  local function expect_table(fname, arg, where)
    if type(arg) ~= "table" then
      problem(where, "", string.format("%s{...} expects a table, got %s", fname, describe(arg)))
      return false
    end
    return true
  end

  local env = {}
  local once = {}
  local function set_once(key, fname, value, where)
    if once[key] then
      problem(where, key, string.format("%s is called twice (first at %s)", fname, once[key].where))
      return
    end
    once[key] = { where = where, value = value }
  end

  function env.namespace(name)
    local where = call_site(2)
    if type(name) ~= "string" then
      problem(where, "namespace", "namespace expects a string, got " .. describe(name))
      return name
    end
    set_once("namespace", "namespace", name, where)
    return name
  end

  -- name{...} appends its table (or {t =, where =} when `located`) to
  -- state[list]; `convert` may turn another argument into a table first
  local function appender(name, list, located, convert)
    return function(t)
      local where = call_site(2)
      if convert then t = convert(t) end
      if expect_table(name, t, where) then
        register(t, where, 0)
        local l = state[list]
        l[#l + 1] = located and { t = t, where = where } or t
      end
      return t
    end
  end

  -- name{...} called several times merges into state[key]: the keys in
  -- `lists` concatenate their lists, other keys are replaced
  local function merger(name, key, lists, allow_nil)
    return function(t)
      local where = call_site(2)
      if t == nil and allow_nil then t = {} end
      if expect_table(name, t, where) then
        register(t, where, 0)
        if not state[key] then
          state[key] = {}
          site[state[key]] = where
        end
        local c = state[key]
        for k, v in pairs(t) do
          local listkey = lists[k] and type(v) == "table"
          if listkey and merged[c[k]] then
            table.move(v, 1, #v, #c[k] + 1, c[k])
          elseif listkey and c[k] == nil then
            c[k] = table.move(v, 1, #v, 1, {})
            merged[c[k]] = true
          else
            c[k] = v
          end
        end
      end
      return t
    end
  end

  -- name{...} may be called once
  local function single(name, key)
    return function(t)
      local where = call_site(2)
      if expect_table(name, t, where) then
        register(t, where, 0)
        set_once(key, name .. "{...}", t, where)
      end
      return t
    end
  end

  env.environment = appender("environment", "envs")
  env.service = appender("service", "services")
  env.database = appender("database", "dbs", true)
  env.pipeline = appender("pipeline", "pipelines", true)
  env.dynamodb = appender("dynamodb", "tables", true)
  env.devenv = appender("devenv", "devenvs")
  env.extension = appender("extension", "extensions", false, function(t)
    if type(t) == "string" then return { url = t } end
    return t
  end)
  env.rbac = appender("rbac", "rbac")
  env.catalog = merger("catalog", "catalog", { iamUsers = true, pipelines = true })
  env.compliance = merger("compliance", "compliance", { rules = true, exclude = true }, true)
  env.organization = merger("organization", "organization", { units = true, accounts = true, policies = true },
    true)
  env.tools = single("tools", "tools")
  env.roles = single("roles", "roles")

  function env.profiles(t)
    local where = call_site(2)
    if expect_table("profiles", t, where) then
      register(t, where, 0)
      if not state.profiles then
        state.profiles = {}
        site[state.profiles] = where
      end
      for k, v in pairs(t) do state.profiles[k] = v end
    end
    return t
  end

  function env.disableIAM(b)
    local where = call_site(2)
    if b == nil then b = true end
    set_once("disableIAM", "disableIAM(...)", b, where)
    return b
  end

  local OVERRIDE_KEYS = { stack = true, template = true, parameters = true, tags = true }
  function env.override(t)
    local where = call_site(2)
    if not expect_table("override", t, where) then return t end
    register(t, where, 0)
    local bad = false
    for k in pairs(t) do
      if not OVERRIDE_KEYS[k] then
        local build = require "lumu.config.build"
        local s = type(k) == "string" and build.suggest(k, { "stack", "template", "parameters", "tags" })
        problem(where, "override", "unknown key " .. describe(k) .. (s and (" (did you mean '" .. s .. "'?)") or ""))
        bad = true
      end
    end
    if type(t.stack) ~= "string" or t.stack == "" then
      problem(where, "override.stack", "expected the stack name pattern (a string), got " .. describe(t.stack))
      return t
    end
    if t.template == nil and t.parameters == nil and t.tags == nil and not bad then
      problem(where, "override", "needs template=, parameters= or tags=")
    end
    local kinds = { template = "templates", parameters = "parameters", tags = "tags" }
    for _, key in ipairs({ "template", "parameters", "tags" }) do
      if t[key] ~= nil then
        local kind = kinds[key]
        table.insert(state.overrides[kind], {
          stack = t.stack, value = t[key], where = where, path = kind .. string.format("[%q]", t.stack),
        })
      end
    end
    return t
  end

  -- require: team modules run in this environment.
  local base = dir == "." and "" or (dir:gsub("/$", "") .. "/")
  local search = table.concat({
    base .. "?.lua", base .. "?/init.lua",
    base .. "lua_modules/share/lua/5.4/?.lua", base .. "lua_modules/share/lua/5.4/?/init.lua",
  }, ";") .. ";" .. package.path
  local loaded, loading, chain = {}, {}, {}
  function env.require(name)
    if type(name) ~= "string" then
      error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
    end
    if loaded[name] ~= nil then return loaded[name] end
    if loading[name] then
      error(string.format("cyclic require: %s -> %s", table.concat(chain, " -> "), name), 2)
    end
    if name == "lumu" or name:match("^lumu%.") or package.preload[name] or package.loaded[name] then
      return require(name)
    end
    local path = package.searchpath(name, search)
    if not path then
      local ok, res = pcall(require, name) -- C modules, package.cpath
      if ok then return res end
      if tostring(res):find("module '" .. name .. "' not found", 1, true) then
        error(string.format("module '%s' not found (looked in %s, %slua_modules and package.path/cpath)",
          name, base == "" and "./" or base, base), 2)
      end
      error(res, 0)
    end
    local f, ferr = io.open(path, "rb")
    if not f then error("cannot read module '" .. name .. "': " .. tostring(ferr), 2) end
    local src = f:read("a")
    f:close()
    local chunk, lerr = load(src or "", "@" .. path:gsub("^%./", ""), "t", env)
    if not chunk then error(lerr, 0) end
    loading[name] = true
    chain[#chain + 1] = name
    local ok, res = pcall(chunk, name, path)
    chain[#chain] = nil
    loading[name] = nil
    if not ok then error(res, 0) end
    if res == nil then res = true end
    loaded[name] = res
    return res
  end

  env.os = setmetatable({
    getenv = function(name) return getenv(name) end,
    exit = function() error("os.exit is not allowed while loading the configuration", 2) end,
  }, { __index = os })
  env._G = env
  setmetatable(env, { __index = _G })

  local doc = {
    file = filename, kind = "lua", dir = dir, problems = problems, overrides = state.overrides,
  }

  local chunk, lerr = load(text, "@" .. filename, "t", env)
  if not chunk then
    local where, msg = tostring(lerr):match("^(.-:%d+): (.*)$")
    problem(where or filename, "", "Lua syntax: " .. (msg or tostring(lerr)))
    doc.fatal = true
    doc.root = {}
    return doc
  end
  local ok, err = xpcall(chunk, function(e)
    local msg
    if type(e) == "table" then
      local mt = getmetatable(e)
      msg = mt and mt.__tostring and tostring(e) or "error object is a table value"
    else
      msg = tostring(e)
    end
    if not msg:match("^[^\n]-:%d+: ") then
      local at = call_site(2) -- the Lua function that raised it
      if at then msg = at .. ": " .. msg end
    end
    return msg
  end)
  if not ok then
    local where, msg = err:match("^([^\n]-:%d+): (.*)$")
    problem(where or filename, "", msg or err)
    doc.fatal = true
    doc.root = {}
    return doc
  end

  -- Attach database{} and pipeline{} calls to their services.
  local services = {}
  for i, s in ipairs(state.services) do
    services[i] = s
  end
  local function target(call, fname)
    local name = call.t.service
    if name == nil then
      if #services == 1 then return 1 end
      problem(call.where, fname .. ".service", #services == 0
        and string.format("%s{...} needs a service, but no service{...} is defined", fname)
        or string.format("%s{...} needs service= to say which of the %d services it belongs to", fname, #services))
      return nil
    end
    local names = {}
    for i, s in ipairs(services) do
      if s.name == name then return i end
      if type(s.name) == "string" then names[#names + 1] = s.name end
    end
    local build = require "lumu.config.build"
    local sug = type(name) == "string" and build.suggest(name, names)
    problem(call.where, fname .. ".service", string.format("%s{...} is attached to unknown service %s%s%s",
      fname, describe(name), #names > 0 and (" (services: " .. table.concat(names, ", ") .. ")") or "",
      sug and (" (did you mean '" .. sug .. "'?)") or ""))
    return nil
  end
  local calls_of = { database = state.dbs, pipeline = state.pipelines, dynamodb = state.tables }
  for _, kind in ipairs({ "database", "pipeline", "dynamodb" }) do
    for _, call in ipairs(calls_of[kind]) do
      local i = target(call, kind)
      if i and kind == "dynamodb" then
        -- tables are appended to the service's dynamodb list
        local s = services[i]
        local attached = copy(call.t)
        attached.service = nil
        site[attached] = call.where
        local list = {}
        if type(s.dynamodb) == "table" then table.move(s.dynamodb, 1, #s.dynamodb, 1, list) end
        list[#list + 1] = attached
        site[list] = site[s.dynamodb] or call.where
        local s2 = copy(s)
        s2.dynamodb = list
        site[s2] = site[s]
        services[i] = s2
      elseif i then
        local s = services[i]
        if s[kind] ~= nil then
          problem(call.where, kind, string.format("service %s already has a %s (given at %s)",
            describe(s.name or ("#" .. i)), kind, site[s[kind]] or site[s] or filename))
        else
          local attached = copy(call.t)
          attached.service = nil
          site[attached] = call.where
          local s2 = copy(s)
          s2[kind] = attached
          site[s2] = site[s]
          services[i] = s2
        end
      end
    end
  end

  local root = {
    environments = state.envs, services = services, extensions = state.extensions, rbac = state.rbac,
    catalog = state.catalog, compliance = state.compliance,
    organization = state.organization, profiles = state.profiles,
    devenvs = #state.devenvs > 0 and state.devenvs or nil,
  }
  for _, key in ipairs({ "namespace", "roles", "disableIAM", "tools" }) do
    if once[key] then root[key] = once[key].value end
  end
  -- root-level lists and keys are located at their call sites
  local keysite = {}
  for key, o in pairs(once) do keysite[key] = o.where end
  doc.root = root
  doc.root_where = filename
  doc.locate = function(tbl, key)
    if tbl == root and key ~= nil and keysite[key] then return keysite[key] end
    if key ~= nil and type(tbl) == "table" then
      local v = rawget(tbl, key)
      local s = type(v) == "table" and site[v]
      if s then return s end
    end
    return site[tbl]
  end
  return doc
end

return M
