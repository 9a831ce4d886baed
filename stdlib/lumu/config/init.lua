--- lumu's configuration: lumu.lua or mu.yml -> one validated model.
--
-- local config = require "lumu.config"
--
-- config.find(dir) -> path | nil, message
--   The config file in dir: "lumu.lua" if present, else "mu.yml", else
--   "mu.yaml".  dir "." gives bare names ("mu.yml").
-- config.load(path [, opts]) -> model, warnings | nil, problems
--   Reads the file (and environment variables through opts.getenv), nothing
--   else.  Kind by extension: *.lua -> the Lua DSL, anything else -> mu.yml.
--   opts.namespace  the --namespace flag (wins over MU_NAMESPACE, then the
--                   file's namespace, then "mu")
--   opts.getenv     function(name) -> string|nil (default os.getenv); used for
--                   ${env:NAME}, MU_NAMESPACE and os.getenv in lumu.lua
--   opts.kind       "yaml" | "lua" to override the extension
--   opts.dirname    the default service name (default: the config
--                   directory's name)
--   problems/warnings: lists of {where=, path=, message=, severity=
--   "error"|"warning"}, sorted by position.  A failed load reports every
--   problem found, warnings included.  Bad arguments raise.
-- config.load_string(text [, opts]) -> same; opts.kind (default "yaml" unless
--   opts.filename ends in .lua), opts.filename (default "mu.yml"/"lumu.lua"),
--   opts.dir (default "."), and the load options above.
-- config.format_error(problem) -> "mu.yml:12:7: environments[1].cluster.maxSize: message"
--   (warnings read "...: warning: message"); always one line.
--
-- Model helpers (mu semantics, so generators need not re-implement them):
-- config.env_value(v, envname) -> string   a service.environment value: a
--   per-environment map gives its entry for envname, or "" (as mu does)
-- config.database_for(service, envname) -> table | nil   service.database
--   with environmentConfig[envname] applied; nil when there is no database
--   or its name is empty for that environment
-- config.network_mode(service, env) -> string   "awsvpc" on ecs-fargate,
--   else service.networkMode
-- config.stack_matches(entry, stackname) -> boolean   whether a templates/
--   parameters/tags entry applies to a stack (mu: Go regex ^key$)
-- config.overrides_for(model, stackname) -> {templates={fragment...},
--   parameters={k=v}, tags={k=v}}   every matching entry, in file order
--   (later entries win for parameters and tags)
-- config.environment(model, name) / config.service(model, name) -> table | nil
--   (environment names match case-insensitively, like mu)
-- See docs/model.md for the model itself.
local build = require "lumu.config.build"

local M = {}

local MAX_SIZE = 16 * 1024 * 1024

local function argcheck(cond, n, fname, msg)
  if not cond then error(string.format("bad argument #%d to '%s' (%s)", n, fname, msg), 3) end
end

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

local function readable(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local _, err = f:read(0) -- a directory opens but fails to read
  f:close()
  return err == nil
end

-- Normalises a path: removes "." and resolves ".." lexically.
local function normalize(path)
  local abs = path:sub(1, 1) == "/"
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      if #parts > 0 and parts[#parts] ~= ".." then
        parts[#parts] = nil
      elseif not abs then
        parts[#parts + 1] = ".."
      end
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  local s = table.concat(parts, "/")
  if abs then return "/" .. s end
  return s == "" and "." or s
end

-- The name of the config directory (default service name).
local function dir_name(dir)
  local abs = dir
  if dir:sub(1, 1) ~= "/" then
    local ok, fs = pcall(require, "lumu.fs")
    local cwd = ok and fs.cwd() or nil
    if not cwd then return nil end
    abs = cwd .. "/" .. dir
  end
  abs = normalize(abs)
  return abs:match("([^/]+)$")
end

--- find(dir) -> path | nil, message
function M.find(dir)
  dir = dir or "."
  argcheck(type(dir) == "string", 1, "find", "string expected, got " .. type(dir))
  local prefix = (dir == "." or dir == "") and "" or (dir:gsub("/+$", "") .. "/")
  if dir:match("^/+$") then prefix = "/" end
  for _, name in ipairs({ "lumu.lua", "mu.yml", "mu.yaml" }) do
    local path = prefix .. name
    if readable(path) then return path end
  end
  return nil, string.format("no lumu.lua or mu.yml in %s", dir == "" and "." or dir)
end

local function problem(where, message)
  return { { where = where, path = "", message = message, severity = "error" } }
end

local function run(text, opts, filename, kind, dir)
  local getenv = opts.getenv or os.getenv
  if #text > MAX_SIZE then
    return nil, problem(filename, string.format("configuration file too large (%d bytes, at most %d)", #text, MAX_SIZE))
  end
  local doc
  if kind == "lua" then
    doc = require("lumu.config.dsl").run(text, { filename = filename, dir = dir, getenv = getenv })
  else
    doc = require("lumu.config.muyml").parse(text, { filename = filename, dir = dir, getenv = getenv })
  end
  local dirname_opt = opts.dirname
  if dirname_opt == nil then dirname_opt = dir_name(dir) end
  if doc.fatal then
    return nil, build.sort_problems(doc.problems)
  end
  return build.build(doc, { namespace = opts.namespace, getenv = getenv, dirname = dirname_opt })
end

local function check_opts(opts, fname)
  argcheck(opts == nil or type(opts) == "table", 2, fname, "table expected, got " .. type(opts))
  opts = opts or {}
  argcheck(opts.getenv == nil or type(opts.getenv) == "function", 2, fname, "opts.getenv must be a function")
  argcheck(opts.namespace == nil or type(opts.namespace) == "string", 2, fname, "opts.namespace must be a string")
  argcheck(opts.kind == nil or opts.kind == "yaml" or opts.kind == "lua", 2, fname,
    "opts.kind must be 'yaml' or 'lua'")
  return opts
end

local function kind_of(path, opts)
  if opts.kind then return opts.kind end
  return path:match("%.lua$") and "lua" or "yaml"
end

--- load(path [, opts]) -> model, warnings | nil, problems
function M.load(path, opts)
  argcheck(type(path) == "string", 1, "load", "string expected, got " .. type(path))
  opts = check_opts(opts, "load")
  local display = path:gsub("^%./", "")
  local f, err = io.open(path, "rb")
  if not f then return nil, problem(display, "cannot read the configuration: " .. tostring(err)) end
  local text, rerr = f:read(MAX_SIZE + 1)
  f:close()
  if text == nil and rerr then return nil, problem(display, "cannot read the configuration: " .. tostring(rerr)) end
  return run(text or "", opts, display, kind_of(path, opts), dirname(display))
end

--- load_string(text [, opts]) -> model, warnings | nil, problems
function M.load_string(text, opts)
  argcheck(type(text) == "string", 1, "load_string", "string expected, got " .. type(text))
  opts = check_opts(opts, "load_string")
  local kind = opts.kind or ((opts.filename or ""):match("%.lua$") and "lua") or "yaml"
  local filename = opts.filename or (kind == "lua" and "lumu.lua" or "mu.yml")
  return run(text, opts, filename, kind, opts.dir or dirname(filename))
end

--- format_error(problem) -> one line
function M.format_error(e)
  argcheck(type(e) == "table", 1, "format_error", "table expected, got " .. type(e))
  local parts = { e.where or "?" }
  if e.path and e.path ~= "" then parts[#parts + 1] = e.path end
  local msg = tostring(e.message or "")
  if e.severity == "warning" then msg = "warning: " .. msg end
  parts[#parts + 1] = msg
  return (table.concat(parts, ": "):gsub("[\r\n]+%s*", " "))
end

-- ---------------------------------------------------------------------------
-- Model helpers
-- ---------------------------------------------------------------------------

function M.env_value(v, envname)
  if type(v) == "table" then
    local x = v[envname]
    if x == nil then return "" end
    return x
  end
  return v
end

function M.database_for(service, envname)
  local db = service and service.database
  if not db then return nil end
  local out = {}
  for k, v in pairs(db) do
    if k ~= "environmentConfig" and not (type(k) == "string" and k:sub(1, 1) == "_") then out[k] = v end
  end
  local ov = db.environmentConfig and db.environmentConfig[envname]
  if ov then
    for k, v in pairs(ov) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" then out[k] = v end
    end
  end
  if out.name == nil or out.name == "" then return nil end
  out._where, out._path = db._where, db._path
  if db._keys or (ov and ov._keys) then
    out._keys = {}
    for k, w in pairs(db._keys or {}) do out._keys[k] = w end
    for k, w in pairs(ov and ov._keys or {}) do out._keys[k] = w end
  end
  return out
end

function M.network_mode(service, env)
  if env and env.provider == "ecs-fargate" then return "awsvpc" end
  return service.networkMode or "bridge"
end

local compiled = setmetatable({}, { __mode = "k" })

function M.stack_matches(entry, stackname)
  argcheck(type(entry) == "table", 1, "stack_matches", "table expected, got " .. type(entry))
  argcheck(type(stackname) == "string", 2, "stack_matches", "string expected, got " .. type(stackname))
  if entry.pattern then return stackname:match(entry.pattern) ~= nil end
  local re = compiled[entry]
  if re == nil then
    re = require("lumu.config.regex").compile(entry.stack) or false
    compiled[entry] = re
  end
  return re and re:match(stackname) or false
end

function M.overrides_for(model, stackname)
  local out = { templates = {}, parameters = {}, tags = {} }
  for _, e in ipairs(model.templates or {}) do
    if M.stack_matches(e, stackname) then out.templates[#out.templates + 1] = e.fragment end
  end
  for _, kind in ipairs({ "parameters", "tags" }) do
    for _, e in ipairs(model[kind] or {}) do
      if M.stack_matches(e, stackname) then
        for k, v in pairs(e.values) do out[kind][k] = v end
      end
    end
  end
  return out
end

function M.environment(model, name)
  for _, e in ipairs(model.environments) do
    if e.name and name and e.name:lower() == name:lower() then return e end
  end
  return nil
end

function M.service(model, name)
  if name == nil and #model.services == 1 then return model.services[1] end
  for _, s in ipairs(model.services) do
    if s.name == name then return s end
  end
  return nil
end

return M
