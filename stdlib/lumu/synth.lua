--- Synthesis: a lumu model -> the ordered list of stacks to deploy, with
-- their template bodies, parameters and tags.  Pure Lua, no AWS calls.
--
-- local synth = require "lumu.synth"
--
-- synth.plan(model, opts) -> stacks, report
--   opts (all optional):
--     namespace     (default model.namespace)
--     environments  list of environment names to generate (--env); default
--                   all.  A name the file does not define is an error when
--                   the file defines environments; when it defines none, the
--                   name stands for an environment deployed from elsewhere
--                   (provider ecs, no HTTPS): only service stacks are
--                   generated for it.
--     format        "json" (default, 2-space pretty, keys in CloudFormation
--                   order) | "yaml" (long-form intrinsics)
--     schemas       a cfn.schema checker: also check every template against
--                   the resource schemas
--     generators    {environment = mod, services = mod} (tests)
--   stacks: list of descriptors (lumu.gen.common) in deployment order:
--     the environment stacks (lumu.gen.environment), then the service
--     stacks (lumu.gen.services), then topologically sorted on `depends`
--     (stable).  Each descriptor gets, after mu's overrides are applied
--     (lumu.gen.override):
--       body       the template text in opts.format
--       size       #body;  needs_s3 = size > 51,200 (CloudFormation's limit
--                  for a template given inline)
--       resources  number of resources
--       problems   cfn.check (and schema) problems, and cross-stack ones
--                  (synth.cross_check): {path=, message=}
--       overrides  {"templates", "parameters", "tags"} applied
--       notes      short strings for humans ("needs S3 upload", ...)
--   Also checked: subnets whose CIDR lies outside their VPC's (after the
--   overrides; synth.network_check), reported as errors naming the
--   templates override responsible.
--   report = { warnings = {diag...}, errors = {diag...},
--              problems = total number of template problems }
--     diag = {severity=, where=, key=, message=}; errors are config
--     problems found while generating (a bad secret, an override that names
--     a parameter the stack lacks, ...).  Warnings name what is not
--     generated yet (database, pipeline, catalog, extensions, EKS) and
--     overrides that matched nothing.
--   Raises only on misuse (bad arguments).  Deterministic: the same model
--   and options give byte-identical bodies.
-- synth.cross_check(stacks) -> list of {stack=, path=, message=}: every
--   Fn::ImportValue (of a literal name or of Fn::Sub over the stack's
--   parameter values) naming an export "<stack>-..." of a stack in the list
--   must be exported by that stack, deployed earlier.  Imports of stacks
--   outside the list (environments deployed from elsewhere) are skipped.
-- synth.format_diag(d) -> "where: key: message" (one line)
-- synth.parameters_json(desc) -> text   [{"ParameterKey":..,"ParameterValue":..}]
--   sorted by key, as `aws cloudformation create-stack --parameters file://`
-- synth.tags_json(desc) -> text          [{"Key":..,"Value":..}] sorted
-- synth.NEEDS_S3 = 51200
local json = require "lumu.json"
local cfn = require "lumu.cfn"
local override = require "lumu.gen.override"

local M = {}

M.NEEDS_S3 = 51200

local function diag(list, severity, where, key, message)
  list[#list + 1] = { severity = severity, where = where, key = key, message = message }
end

function M.format_diag(d)
  return override.format(d)
end

-- Stable topological sort on `depends` (names outside the list are
-- ignored): stacks keep their order, except that a stack's dependencies are
-- moved before it.  A cycle keeps the given order for the stacks in it.
local function order(stacks)
  local index = {}
  for i, d in ipairs(stacks) do index[d.name] = i end
  local out, state = {}, {}
  local function visit(i)
    if state[i] then return end -- done, or in progress (a cycle)
    state[i] = "visiting"
    for _, dep in ipairs(stacks[i].depends or {}) do
      local j = index[dep]
      if j and not state[j] then visit(j) end
    end
    state[i] = "done"
    out[#out + 1] = stacks[i]
  end
  for i = 1, #stacks do visit(i) end
  return out
end
M._order = order

local function count(t)
  local n = 0
  for _ in pairs(t or {}) do n = n + 1 end
  return n
end

local function selection(model, names, report)
  local envs = model.environments or {}
  if not names or #names == 0 then return envs, envs end
  local byname = {}
  for _, e in ipairs(envs) do byname[e.name:lower()] = e end
  local defined, all, seen = {}, {}, {}
  for _, n in ipairs(names) do
    local e = byname[n:lower()]
    if seen[n:lower()] then
      -- given twice: once is enough
    elseif e then
      defined[#defined + 1] = e
      all[#all + 1] = e
    elseif #envs > 0 then
      local list = {}
      for _, x in ipairs(envs) do list[#list + 1] = x.name end
      diag(report.errors, "error", "--env", n, "no environment named '" .. n .. "' (environments: "
        .. table.concat(list, ", ") .. ")")
    else
      diag(report.warnings, "warning", "--env", n, "not defined in this configuration: generating the service "
        .. "stacks for an existing ecs environment '" .. n .. "' (its stacks come from elsewhere)")
      all[#all + 1] = { name = n, provider = "ecs", loadbalancer = {}, cluster = {}, discovery = {}, roles = {},
        _external = true }
    end
    seen[n:lower()] = true
  end
  -- keep the file's order
  local pos = {}
  for i, e in ipairs(envs) do pos[e] = i end
  table.sort(defined, function(a, b) return pos[a] < pos[b] end)
  return defined, all
end

local function later(report, model)
  local function warn(where, key, what)
    diag(report.warnings, "warning", where, key, "not generated yet (" .. what .. " come with a later version)")
  end
  if model.catalog then warn(model.catalog._where, "catalog", "Service Catalog pipelines") end
  for i, ext in ipairs(model.extensions or {}) do
    warn(ext._where, ext._path or ("extensions[" .. i .. "]"), "extensions")
  end
  if model.rbac and #model.rbac > 0 then
    warn(model.rbac[1]._where, "rbac", "EKS role bindings")
  end
end

-- Cross-stack references: every Fn::ImportValue whose export name belongs
-- to a stack of this plan (the name starts with "<stack>-") must be
-- exported by that stack, which must come earlier.  Imports of stacks
-- outside the plan (environments deployed from elsewhere) are not checked.
local function param_value(d, name)
  if d.parameters[name] ~= nil then return d.parameters[name] end
  local p = type(d.template.Parameters) == "table" and d.template.Parameters[name]
  return type(p) == "table" and p.Default or nil
end

local function resolve(d, v)
  if type(v) == "string" then return v end
  local s = type(v) == "table" and v["Fn::Sub"]
  if type(s) ~= "string" then return nil end
  local ok = true
  local out = s:gsub("%${([^}!][^}]*)}", function(n)
    if n == "AWS::StackName" then return d.name end
    local pv = param_value(d, n)
    if type(pv) ~= "string" and type(pv) ~= "number" then ok = false; return "" end
    return tostring(pv)
  end)
  return ok and out or nil
end

local function imports(v, depth, fn)
  if type(v) ~= "table" or depth > 100 then return end
  if v["Fn::ImportValue"] ~= nil then fn(v["Fn::ImportValue"]) end
  for _, x in pairs(v) do imports(x, depth + 1, fn) end
end

function M.cross_check(stacks)
  local position, exports = {}, {}
  for i, d in ipairs(stacks) do
    position[d.name] = i
    exports[d.name] = {}
    for _, o in pairs(type(d.template.Outputs) == "table" and d.template.Outputs or {}) do
      local n = type(o) == "table" and type(o.Export) == "table" and resolve(d, o.Export.Name)
      if n then exports[d.name][n] = true end
    end
  end
  local found = {}
  for i, d in ipairs(stacks) do
    local seen = {}
    imports(d.template.Resources, 0, function(x)
      local name = resolve(d, x)
      if not name or seen[name] then return end
      seen[name] = true
      -- the producing stack: the longest stack name that prefixes the export
      local producer
      local cut = #name
      while cut > 1 do
        cut = name:sub(1, cut - 1):find("%-[^%-]*$")
        if not cut then break end
        if position[name:sub(1, cut - 1)] then producer = name:sub(1, cut - 1); break end
      end
      if producer and not exports[producer][name] then
        found[#found + 1] = { stack = d.name, path = "Fn::ImportValue", message = "imports " .. name
          .. ", which stack " .. producer .. " does not export" }
      elseif producer and position[producer] > i then
        found[#found + 1] = { stack = d.name, path = "Fn::ImportValue", message = "imports " .. name
          .. " from stack " .. producer .. ", which is deployed after it" }
      end
    end)
  end
  return found
end

-- IPv4 CIDR "a.b.c.d/n" -> address (integer), prefix | nil
local function parse_cidr(s)
  local a, b, c, d, n = tostring(s):match("^(%d+)%.(%d+)%.(%d+)%.(%d+)/(%d+)$")
  if not a then return nil end
  a, b, c, d, n = tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(n)
  if a > 255 or b > 255 or c > 255 or d > 255 or n > 32 then return nil end
  return ((a << 24) | (b << 16) | (c << 8) | d), n
end

local function inside(sub, net)
  local sa, sn = parse_cidr(sub)
  local na, nn = parse_cidr(net)
  if not sa or not na or sn < nn then return false end
  local mask = nn == 0 and 0 or ((0xffffffff << (32 - nn)) & 0xffffffff)
  return (sa & mask) == (na & mask)
end
M._inside = inside

-- A CidrBlock value -> cidr, parameter name (literal or Ref to a parameter).
local function cidr_value(d, v)
  if type(v) == "string" then return v, nil end
  if type(v) == "table" and type(v.Ref) == "string" then
    local pv = param_value(d, v.Ref)
    if type(pv) == "string" then return pv, v.Ref end
  end
  return nil
end

--- network_check(desc) -> list of messages: subnets whose CIDR (a literal
-- or a parameter) lies outside the CIDR of the VPC they are in (same
-- template; skipped when the VPC has secondary CIDR blocks).  A subnet
-- with an empty CIDR is not created (mu's conditions), so it is skipped.
function M.network_check(d)
  local res = type(d.template.Resources) == "table" and d.template.Resources or {}
  local vpcs, secondary = {}, {}
  for id, r in pairs(res) do
    if type(r) == "table" and r.Type == "AWS::EC2::VPC" and type(r.Properties) == "table" then
      local c, p = cidr_value(d, r.Properties.CidrBlock)
      if c then vpcs[id] = { cidr = c, param = p } end
    elseif type(r) == "table" and r.Type == "AWS::EC2::VPCCidrBlock" and type(r.Properties) == "table"
        and type(r.Properties.VpcId) == "table" and r.Properties.VpcId.Ref then
      secondary[r.Properties.VpcId.Ref] = true
    end
  end
  local out = {}
  local ids = {}
  for id in pairs(res) do ids[#ids + 1] = id end
  table.sort(ids)
  for _, id in ipairs(ids) do
    local r = res[id]
    if type(r) == "table" and r.Type == "AWS::EC2::Subnet" and type(r.Properties) == "table" then
      local vref = type(r.Properties.VpcId) == "table" and r.Properties.VpcId.Ref
      local vpc = vref and vpcs[vref]
      local c, p = cidr_value(d, r.Properties.CidrBlock)
      if vpc and c and c ~= "" and not secondary[vref] and parse_cidr(vpc.cidr) and not inside(c, vpc.cidr) then
        out[#out + 1] = string.format("subnet %s gets %s%s, outside the VPC's %s%s: it cannot be created; "
          .. "set %s to a block inside %s", id, c, p and (" (parameter " .. p .. ")") or "", vpc.cidr,
          vpc.param and (" (parameter " .. vpc.param .. ")") or "", p or ("Resources." .. id .. ".Properties.CidrBlock"),
          vpc.cidr)
      end
    end
  end
  return out
end

local function encode(tpl, format)
  if format == "yaml" then
    return require("lumu.yaml").dump(tpl, { cfn_short = false })
  end
  return json.encode(tpl, { pretty = true, sort_keys = true })
end

--- plan(model, opts) -> stacks, report
function M.plan(model, opts)
  if type(model) ~= "table" or type(model.environments) ~= "table" or type(model.services) ~= "table" then
    error("bad argument #1 to 'plan' (lumu model expected)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #2 to 'plan' (table expected)", 2) end
  opts = opts or {}
  local format = opts.format or "json"
  if format ~= "json" and format ~= "yaml" then
    error("bad argument #2 to 'plan' (format must be 'json' or 'yaml')", 2)
  end
  local report = { warnings = {}, errors = {}, problems = 0 }
  local gens = opts.generators or {}
  local envgen = gens.environment or require("lumu.gen.environment")
  local svcgen = gens.services or require("lumu.gen.services")

  local defined, all = selection(model, opts.environments, report)
  if #report.errors > 0 then return {}, report end

  local ns = opts.namespace or model.namespace or "mu"
  local version = require("lumu.version").version
  local diagnostics = {}
  local stacks = {}
  local names
  if opts.environments and #opts.environments > 0 then
    names = {}
    for _, e in ipairs(defined) do names[#names + 1] = e.name end
  end
  local envstacks, enverr = {}, nil
  if #defined > 0 then
    envstacks, enverr = envgen.stacks(model, { namespace = ns, version = version, diagnostics = diagnostics },
      { environments = names })
  end
  if not envstacks then
    diag(report.errors, "error", model.source and model.source.file, nil, tostring(enverr))
    return {}, report
  end
  for _, d in ipairs(envstacks) do stacks[#stacks + 1] = d end
  for _, d in ipairs(svcgen.stacks(model, { namespace = ns, version = version, environments = all,
    diagnostics = diagnostics })) do
    stacks[#stacks + 1] = d
  end
  later(report, model)
  stacks = order(stacks)

  local seen = {}
  for _, d in ipairs(stacks) do
    for _, x in ipairs(override.apply(d, model, seen)) do diagnostics[#diagnostics + 1] = x end
  end
  for _, x in ipairs(override.unmatched(model, seen)) do diagnostics[#diagnostics + 1] = x end
  for _, d in ipairs(stacks) do
    local msgs = M.network_check(d)
    if #msgs > 0 then
      -- name the templates override that made the mismatch, when there is one
      local e = d.override_entries and d.override_entries[#d.override_entries]
      for _, msg in ipairs(msgs) do
        diagnostics[#diagnostics + 1] = { severity = "error", where = e and e.where or nil,
          key = e and ("templates[" .. string.format("%q", e.stack) .. "]") or d.name, message = msg }
      end
    end
  end
  for _, x in ipairs(diagnostics) do
    local list = x.severity == "error" and report.errors or report.warnings
    list[#list + 1] = x
  end

  local xref = {}
  for _, p in ipairs(M.cross_check(stacks)) do
    xref[p.stack] = xref[p.stack] or {}
    table.insert(xref[p.stack], { path = p.path, message = p.message })
  end
  for _, d in ipairs(stacks) do
    d.body = encode(d.template, format)
    d.format = format
    d.size = #d.body
    d.needs_s3 = d.size > M.NEEDS_S3
    d.resources = count(d.template.Resources)
    local problems = cfn.check(d.template, { body = d.body, schemas = opts.schemas })
    local list = {}
    for i = 1, #problems do list[i] = problems[i] end
    for _, p in ipairs(xref[d.name] or {}) do list[#list + 1] = p end
    d.problems = list
    report.problems = report.problems + #list
    local notes = {}
    if d.needs_s3 then notes[#notes + 1] = "needs S3 upload (over 51,200 bytes)" end
    if #list > 0 then notes[#notes + 1] = #list .. " problem" .. (#list == 1 and "" or "s") end
    if d.overrides and #d.overrides > 0 then notes[#notes + 1] = "overrides: " .. table.concat(d.overrides, ", ") end
    d.notes = notes
  end
  return stacks, report
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- A JSON string, escaped as lumu.json (jansson) does.
local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }
local function quote(v)
  if not v:find('[%c"\\]') then return '"' .. v .. '"' end
  return '"' .. v:gsub('[%c"\\]', function(c)
    return ESC[c] or (c == "\127" and c or string.format("\\u%04X", c:byte()))
  end) .. '"'
end
M._quote = quote

-- A JSON list of {k1: key, k2: value} objects, sorted by key, written
-- directly (these files hold only strings; json.encode escapes them).
local function pairs_json(t, k1, k2)
  local keys = sorted_keys(t)
  if #keys == 0 then return "[]\n" end
  local enc = quote
  local parts = {}
  for i, k in ipairs(keys) do
    parts[i] = '  {\n    "' .. k1 .. '": ' .. enc(tostring(k)) .. ',\n    "' .. k2 .. '": ' .. enc(tostring(t[k]))
      .. "\n  }"
  end
  return "[\n" .. table.concat(parts, ",\n") .. "\n]\n"
end

function M.parameters_json(desc)
  return pairs_json(desc.parameters or {}, "ParameterKey", "ParameterValue")
end

function M.tags_json(desc)
  return pairs_json(desc.tags or {}, "Key", "Value")
end

return M
