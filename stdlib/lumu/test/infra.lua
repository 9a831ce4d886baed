--- lumu.test.infra: infrastructure TDD for `lumu test` specs.  Loads the
-- project, synthesises it (lumu.synth.plan, no AWS) and answers questions
-- about the stacks and resources; live checks read deployed stacks through
-- lumu.aws and lumu.http (tag those tests #live: `lumu test --live`).
--
-- local infra = require "lumu.test.infra"
-- describe("the acceptance environment", function()
--   local p = infra.project()
--   it("will not allow all traffic on 22", function()
--     for _, sg in ipairs(p:resources{ type = "AWS::EC2::SecurityGroup" }) do
--       assert.security_group(sg).does_not_allow{ port = 22, cidr = "0.0.0.0/0" }
--     end
--   end)
-- end)
--
-- infra.project([where [, opts]]) -> project        (cached per config + options)
--   where: a config file, or a directory holding lumu.lua / mu.yml; default
--   infra.default_config (`lumu test -c FILE` sets it), else the directory
--   of the calling spec file, its parent (spec/ next to the config), then
--   the current directory.  opts: namespace, environments ({names}: --env),
--   git ({provider=, repo=, branch=}; default a placeholder GitHub repo so
--   pipelines synthesise), region, account (resolve AWS::Region /
--   AWS::AccountId; default unresolved), schemas (a cfn.schema checker).
--   Raises (the spec errors) when no config is found, the config has
--   errors, or synthesis reports errors; the message lists them.
-- project.model, project.config (path), project.warnings / project.errors
--   (synth diagnostics), project.plan (the descriptors)
-- project:stacks([filter]) -> {stack...}   filter {kind=, env=, service=,
--   name = Lua pattern}
-- project:stack(name) -> stack   the exact name, "<namespace>-"..name, else
--   the one stack whose name ends in "-"..name ("vpc-acceptance"); raises
--   when none or several
-- project:resources([filter]) -> {resource...}   filter {type=, stack=
--   (name as for :stack), kind=, env=, id=, where = function(r) -> bool,
--   all = true (also resources whose Condition is false)}; in plan order,
--   then by logical id
-- project:resource(stack, id) -> resource (raises when missing)
-- project:nag([opts]) -> lumu.nag results over every template (synth.nag)
-- project:live([opts]) -> live   (infra.live with the project's namespace)
--
-- stack.name, .kind, .env, .service, .template (raw table), .parameters
--   (values passed, defaults filled), .descriptor
-- stack:resources([filter]) / stack:resource(id) (nil when missing)
-- stack:output(name) -> resolved Value;  stack:parameter(name) -> value
--
-- resource.id, .type, .stack (a stack), .raw (the template's table),
--   .condition (name or nil), .properties (resolved, see below)
-- resource:prop("A.B[1].C") -> resolved value at a path (1-based indexes;
--   nil when absent)
-- resource:exists() -> true | false (its Condition is false) | nil (unknown)
--
-- Resolution ("where knowable"): Ref to a parameter (the value lumu passes,
-- else its Default) or to AWS::StackName/Region/AccountId/Partition/
-- URLSuffix/NoValue; Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::If
-- (conditions with Fn::Equals/Not/And/Or/Condition), Fn::FindInMap, and
-- Fn::ImportValue of an export of another stack of the project (its output
-- resolved there).  What cannot be known before deployment (Ref of a
-- resource, Fn::GetAtt, an unresolved parameter) stays as the intrinsic
-- table.  infra.resolve(value, stack) does it for any value.
--
-- infra.security_group(x) -> {ingress = {rule...}, egress = {rule...}}
--   x: a AWS::EC2::SecurityGroup resource (inline rules plus the stack's
--   AWS::EC2::SecurityGroupIngress/Egress resources pointing at it), a
--   SecurityGroupIngress/Egress resource, or a security group as
--   EC2 DescribeSecurityGroups returns it (IpPermissions...).
--   rule = {protocol = "tcp"|"udp"|"icmp"|"-1"|..., from=, to=, cidr=,
--   cidr6=, source= (security group), description=, origin= (resource id
--   or "IpPermissions[i]"), unknown = true when the CIDR is not knowable}
--
-- Assertions (registered with lumu.test; negate with assert.is_not.NAME):
--   assert.security_group(sg).does_not_allow{port = 22, cidr = "0.0.0.0/0"}
--   assert.security_group(sg).allows{port = 443, cidr = "0.0.0.0/0"}
--     spec: port (or from/to), protocol (default "tcp"), cidr (IPv4 network
--     or address) | cidr6; a rule allows it when its protocol and ports
--     cover the spec and its CIDR contains the spec's.  does_not_allow also
--     fails on a rule whose CIDR is not knowable.  Also allows_egress /
--     does_not_allow_egress.
--   assert.listener(l).redirects_to_https() / .uses_https() /
--     .uses_tls_policy([policy]) / .has_port(n)   (a Listener resource or
--     an ELBv2 DescribeListeners entry)
--   assert.http(response).has_status(n) / .is_healthy() (2xx or 3xx) /
--     .has_body_matching(pattern)
--   assert.nag_clean(project_or_results [, {warnings = true}])  no nag
--     failures (nor warnings)
--
-- Live checks (only with credentials; tag the tests #live):
-- infra.live([opts]) -> live   opts: region, profile, namespace, clients
--   ({cloudformation=, ec2=, elbv2=} objects with the lumu.aws client
--   methods; tests), request (function(opts) -> response like
--   lumu.http.request; tests)
-- live:stack(name) -> {name=, status=, outputs = {Key = value},
--   parameters = {Key = value}}     (DescribeStacks)
-- live:physical_id(stack, logical_id) -> id   (DescribeStackResource)
-- live:security_group(id | {stack=, id=}) -> DescribeSecurityGroups entry
-- live:listener(arn | {stack=, id=}) -> DescribeListeners entry
-- live:get(url [, opts]) -> response      lumu.http.request (GET)
-- live:health({stack=, output = "BaseUrl", path = "/health"} | url) -> response
-- Every AWS or HTTP failure raises "live: ..." (the test errors).
local config = require "lumu.config"
local synth = require "lumu.synth"
local test = require "lumu.test"
local json = require "lumu.json"

local M = {}

M.default_config = nil

-- ---------------------------------------------------------------------------
-- Resolution of intrinsics
-- ---------------------------------------------------------------------------

local NOVALUE = setmetatable({}, { __name = "lumu.test.infra.NoValue" })
M.NOVALUE = NOVALUE

local MAX_DEPTH = 64

local function is_intrinsic(t)
  if type(t) ~= "table" then return nil end
  local k, v = next(t)
  if k == nil or next(t, k) ~= nil then return nil end
  if k == "Ref" or (type(k) == "string" and k:match("^Fn::")) or k == "Condition" then return k, v end
  return nil
end

local function scalar(v) return type(v) == "string" or type(v) == "number" or type(v) == "boolean" end

local resolve

local function param_value(st, name)
  local v = st.parameters[name]
  if v ~= nil then return v end
  return nil
end

local PSEUDO = { ["AWS::Partition"] = "partition", ["AWS::Region"] = "region", ["AWS::AccountId"] = "account",
  ["AWS::URLSuffix"] = "urlsuffix" }

local function pseudo(st, name)
  if name == "AWS::StackName" then return st.name end
  if name == "AWS::NoValue" then return NOVALUE end
  local k = PSEUDO[name]
  if k then return st.project.opts[k] end
  return nil
end

local function eval_condition(st, expr, depth)
  if depth > MAX_DEPTH then return nil end
  local k, v = is_intrinsic(expr)
  if k == "Condition" then
    local c = type(st.template.Conditions) == "table" and st.template.Conditions[v]
    if c == nil then return nil end
    return eval_condition(st, c, depth + 1)
  elseif k == "Fn::Equals" and type(v) == "table" then
    local a, b = resolve(v[1], st, depth + 1), resolve(v[2], st, depth + 1)
    if not scalar(a) or not scalar(b) then return nil end
    return tostring(a) == tostring(b)
  elseif k == "Fn::Not" and type(v) == "table" then
    local x = eval_condition(st, v[1], depth + 1)
    if x == nil then return nil end
    return not x
  elseif (k == "Fn::And" or k == "Fn::Or") and type(v) == "table" then
    local unknown = false
    for _, c in ipairs(v) do
      local x = eval_condition(st, c, depth + 1)
      if x == nil then
        unknown = true
      elseif k == "Fn::And" and x == false then
        return false
      elseif k == "Fn::Or" and x == true then
        return true
      end
    end
    if unknown then return nil end
    return k == "Fn::And"
  end
  return nil
end

local function condition(st, name)
  return eval_condition(st, { Condition = name }, 0)
end

local function sub(st, v, depth)
  local text, vars = v, {}
  if type(v) == "table" then text, vars = v[1], type(v[2]) == "table" and v[2] or {} end
  if type(text) ~= "string" then return nil end
  local ok = true
  local out = text:gsub("%${([^}]*)}", function(name)
    if name:sub(1, 1) == "!" then return "${" .. name:sub(2) .. "}" end
    local x
    if vars[name] ~= nil then
      x = resolve(vars[name], st, depth + 1)
    elseif name:find(".", 1, true) then
      x = nil -- ${Resource.Attr}
    else
      x = param_value(st, name)
      if x == nil then x = pseudo(st, name) end
    end
    if not scalar(x) then ok = false; return "" end
    return tostring(x)
  end)
  return ok and out or nil
end

local function import(st, name)
  local p = st.project
  local e = p:_exports()[name]
  if not e then return nil end
  return resolve(e.value, e.stack, 0)
end

resolve = function(v, st, depth)
  depth = depth or 0
  if type(v) ~= "table" or depth > MAX_DEPTH then return v end
  local k, arg = is_intrinsic(v)
  if k == "Ref" then
    local x = param_value(st, arg)
    if x == nil then x = pseudo(st, arg) end
    if x ~= nil then return x end
    return v
  elseif k == "Fn::Sub" then
    return sub(st, arg, depth) or v
  elseif k == "Fn::Join" and type(arg) == "table" then
    local sep, list = arg[1], resolve(arg[2], st, depth + 1)
    if type(sep) ~= "string" or type(list) ~= "table" or is_intrinsic(list) then return v end
    local parts = {}
    for i, x in ipairs(list) do
      if not scalar(x) then return v end
      parts[i] = tostring(x)
    end
    return table.concat(parts, sep)
  elseif k == "Fn::Select" and type(arg) == "table" then
    local i, list = tonumber(resolve(arg[1], st, depth + 1)), resolve(arg[2], st, depth + 1)
    if not i or type(list) ~= "table" or is_intrinsic(list) or list[i + 1] == nil then return v end
    return list[i + 1]
  elseif k == "Fn::Split" and type(arg) == "table" then
    local sep, s = arg[1], resolve(arg[2], st, depth + 1)
    if type(sep) ~= "string" or sep == "" or type(s) ~= "string" then return v end
    local out, pos = {}, 1
    while true do
      local a, b = s:find(sep, pos, true)
      if not a then out[#out + 1] = s:sub(pos); break end
      out[#out + 1] = s:sub(pos, a - 1)
      pos = b + 1
    end
    return out
  elseif k == "Fn::If" and type(arg) == "table" then
    local c = condition(st, arg[1])
    if c == nil then return v end
    return resolve(c and arg[2] or arg[3], st, depth + 1)
  elseif k == "Fn::FindInMap" and type(arg) == "table" then
    local m = type(st.template.Mappings) == "table" and st.template.Mappings[arg[1]]
    local a, b = resolve(arg[2], st, depth + 1), resolve(arg[3], st, depth + 1)
    if type(m) ~= "table" or not scalar(a) or not scalar(b) then return v end
    local row = m[tostring(a)]
    if type(row) ~= "table" or row[tostring(b)] == nil then return v end
    return resolve(row[tostring(b)], st, depth + 1)
  elseif k == "Fn::ImportValue" then
    local name = resolve(arg, st, depth + 1)
    if type(name) ~= "string" then return v end
    local x = import(st, name)
    if x == nil or (type(x) == "table" and is_intrinsic(x)) then
      return { ["Fn::ImportValue"] = name }
    end
    return x
  elseif k then
    return v -- Fn::GetAtt, Fn::GetAZs, Fn::Base64, Condition...: not knowable here
  end
  local out = {}
  if v[1] ~= nil then
    for _, x in ipairs(v) do -- a list: NoValue items drop out
      local r = resolve(x, st, depth + 1)
      if r ~= NOVALUE then out[#out + 1] = r end
    end
    return out
  end
  for key, x in pairs(v) do
    local r = resolve(x, st, depth + 1)
    if r ~= NOVALUE then out[key] = r end
  end
  return out
end

function M.resolve(v, stack)
  if type(stack) ~= "table" or not stack.project then
    error("bad argument #2 to 'resolve' (infra stack expected)", 2)
  end
  local r = resolve(v, stack, 0)
  if r == NOVALUE then return nil end
  return r
end

-- ---------------------------------------------------------------------------
-- Resources and stacks
-- ---------------------------------------------------------------------------

local Resource = {}
Resource.__index = function(r, k)
  if k == "properties" then
    local p = resolve(r.raw.Properties or {}, r.stack, 0)
    rawset(r, "properties", p)
    return p
  end
  return Resource[k]
end
Resource.__tostring = function(r) return r.stack.name .. "/" .. r.id .. " (" .. r.type .. ")" end

local function path_segments(path)
  local segs = {}
  for part in tostring(path):gmatch("[^%.]+") do
    local name, rest = part:match("^([^%[]*)(.*)$")
    if name ~= "" then segs[#segs + 1] = name end
    for i in rest:gmatch("%[(%d+)%]") do segs[#segs + 1] = tonumber(i) end
  end
  return segs
end

function Resource:prop(path)
  local node = self.properties
  for _, seg in ipairs(path_segments(path)) do
    if type(node) ~= "table" then return nil end
    node = node[seg]
  end
  return node
end

function Resource:exists()
  if not self.condition then return true end
  return condition(self.stack, self.condition)
end

local Stack = {}
Stack.__index = Stack
Stack.__tostring = function(s) return "stack " .. s.name .. " (" .. tostring(s.kind) .. ")" end

local function new_resource(st, id, raw)
  return setmetatable({ id = id, type = raw.Type, raw = raw, stack = st, condition = raw.Condition,
    metadata = raw.Metadata }, Resource)
end

local function sorted_ids(t)
  local ids = {}
  for id, r in pairs(t or {}) do
    if type(r) == "table" and type(r.Type) == "string" then ids[#ids + 1] = id end
  end
  table.sort(ids)
  return ids
end

function Stack:resource(id)
  self._res = self._res or {}
  if self._res[id] then return self._res[id] end
  local raw = type(self.template.Resources) == "table" and self.template.Resources[id]
  if type(raw) ~= "table" then return nil end
  self._res[id] = new_resource(self, id, raw)
  return self._res[id]
end

local function matches(r, f)
  if f.type and r.type ~= f.type then return false end
  if f.id and r.id ~= f.id then return false end
  if not f.all and r:exists() == false then return false end
  if f.where and not f.where(r) then return false end
  return true
end

function Stack:resources(filter)
  filter = filter or {}
  local out = {}
  for _, id in ipairs(sorted_ids(self.template.Resources)) do
    local r = self:resource(id)
    if matches(r, filter) then out[#out + 1] = r end
  end
  return out
end

function Stack:parameter(name)
  return self.parameters[name]
end

function Stack:output(name)
  local o = type(self.template.Outputs) == "table" and self.template.Outputs[name]
  if type(o) ~= "table" then return nil end
  local v = resolve(o.Value, self, 0)
  if v == NOVALUE then return nil end
  return v
end

local function new_stack(project, d)
  local params = {}
  local decl = type(d.template.Parameters) == "table" and d.template.Parameters or {}
  for name, p in pairs(decl) do
    if type(p) == "table" and p.Default ~= nil and p.Default ~= json.null then params[name] = p.Default end
  end
  for name, v in pairs(d.parameters or {}) do params[name] = v end
  return setmetatable({ name = d.name, kind = d.kind, env = d.env, service = d.service, template = d.template,
    parameters = params, descriptor = d, project = project }, Stack)
end

-- ---------------------------------------------------------------------------
-- Projects
-- ---------------------------------------------------------------------------

local Project = {}
Project.__index = Project
Project.__tostring = function(p) return "lumu project " .. tostring(p.config) end

function Project:stacks(filter)
  filter = filter or {}
  local out = {}
  for _, st in ipairs(self._stacks) do
    if (not filter.kind or st.kind == filter.kind) and (not filter.env or st.env == filter.env)
        and (not filter.service or st.service == filter.service)
        and (not filter.name or st.name:find(filter.name)) then
      out[#out + 1] = st
    end
  end
  return out
end

local function names_of(list)
  local out = {}
  for _, s in ipairs(list) do out[#out + 1] = s.name end
  return table.concat(out, ", ")
end

-- name -> stack | nil, message: the exact name, "<namespace>-<name>", else
-- the one stack whose name ends in "-<name>"
local function find_stack(self, name)
  local full = self.model.namespace .. "-" .. name
  local found = {}
  for _, st in ipairs(self._stacks) do
    if st.name == name or st.name == full then return st end
    if st.name:sub(-#name - 1) == "-" .. name then found[#found + 1] = st end
  end
  if #found == 1 then return found[1] end
  if #found > 1 then return nil, "infra: stack '" .. name .. "' is ambiguous: " .. names_of(found) end
  return nil, "infra: no stack '" .. name .. "' in " .. tostring(self.config) .. " (stacks: " .. names_of(self._stacks)
    .. ")"
end

function Project:stack(name)
  if type(name) ~= "string" then error("bad argument #1 to 'stack' (stack name expected)", 2) end
  local st, err = find_stack(self, name)
  if not st then error(err, 2) end
  return st
end

function Project:resources(filter)
  filter = filter or {}
  local stacks = self._stacks
  if filter.stack then
    local st, err = find_stack(self, filter.stack)
    if not st then error(err, 2) end
    stacks = { st }
  end
  local out = {}
  for _, st in ipairs(stacks) do
    if (not filter.kind or st.kind == filter.kind) and (not filter.env or st.env == filter.env) then
      for _, r in ipairs(st:resources(filter)) do out[#out + 1] = r end
    end
  end
  return out
end

function Project:resource(stack, id)
  local st, err = find_stack(self, tostring(stack))
  if not st then error(err, 2) end
  local r = st:resource(id)
  if not r then error("infra: stack " .. st.name .. " has no resource '" .. tostring(id) .. "'", 2) end
  return r
end

-- export name -> {stack=, value=}
function Project:_exports()
  if self._export_map then return self._export_map end
  local map = {}
  self._export_map = map
  for _, st in ipairs(self._stacks) do
    for _, o in pairs(type(st.template.Outputs) == "table" and st.template.Outputs or {}) do
      if type(o) == "table" and type(o.Export) == "table" then
        local n = resolve(o.Export.Name, st, 0)
        if type(n) == "string" then map[n] = { stack = st, value = o.Value } end
      end
    end
  end
  return map
end

function Project:nag(opts)
  local r, err = synth.nag(self.plan, opts)
  if not r then error("infra: nag: " .. tostring(err), 2) end
  return r
end

function Project:live(opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.namespace = o.namespace or self.model.namespace
  return M.live(o)
end

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

-- The config to load: explicit, default, or near the calling spec.
local function find_config(where, level)
  local fs = require "lumu.fs"
  local function in_dir(dir)
    local f = config.find(dir)
    return f
  end
  if where ~= nil then
    if type(where) ~= "string" then error("bad argument #1 to 'project' (path expected)", level + 1) end
    if fs.isdir(where) then
      local f = in_dir(where)
      if not f then error("infra: no lumu.lua or mu.yml in " .. where, level + 1) end
      return f
    end
    if not fs.isfile(where) then error("infra: no such config: " .. where, level + 1) end
    return where
  end
  if M.default_config then return M.default_config end
  local candidates = {}
  for l = level + 1, level + 12 do
    local info = debug.getinfo(l, "S")
    if not info then break end
    local src = info.source
    if src:sub(1, 1) == "@" and src:match("_spec%.lua$") then
      local dir = dirname(src:sub(2))
      candidates[#candidates + 1] = dir
      candidates[#candidates + 1] = dirname(dir)
      break
    end
  end
  candidates[#candidates + 1] = "."
  for _, dir in ipairs(candidates) do
    local f = in_dir(dir)
    if f then return f end
  end
  error("infra: no lumu.lua or mu.yml next to the spec or in the current directory (give infra.project(PATH) "
    .. "or lumu test -c FILE)", level + 1)
end

local cache = {}

function M.project(where, opts)
  if type(where) == "table" and opts == nil then where, opts = nil, where end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #2 to 'project' (table expected)", 2) end
  opts = opts or {}
  local path = find_config(where, 2)
  local key = path .. "\0" .. tostring(opts.namespace) .. "\0" .. table.concat(opts.environments or {}, ",")
    .. "\0" .. tostring(opts.region) .. "\0" .. tostring(opts.account) .. "\0" .. tostring(opts.schemas)
    .. "\0" .. (opts.git and json.encode(opts.git) or "")
  if cache[key] then return cache[key] end
  local model, problems = config.load(path, { namespace = opts.namespace })
  if not model then
    local lines = {}
    for _, p in ipairs(problems or {}) do lines[#lines + 1] = config.format_error(p) end
    error("infra: " .. path .. " does not load:\n" .. table.concat(lines, "\n"), 2)
  end
  local git = opts.git or { provider = "GitHub", repo = "example/app", branch = "main", basedir = "." }
  local stacks, report = synth.plan(model, { environments = opts.environments, git = git, schemas = opts.schemas })
  if #report.errors > 0 then
    local lines = {}
    for _, e in ipairs(report.errors) do lines[#lines + 1] = synth.format_diag(e) end
    error("infra: " .. path .. " does not synthesise:\n" .. table.concat(lines, "\n"), 2)
  end
  local p = setmetatable({ model = model, config = path, plan = stacks, warnings = report.warnings,
    errors = report.errors, opts = { region = opts.region, account = opts.account,
      partition = opts.partition or "aws", urlsuffix = opts.urlsuffix or "amazonaws.com" }, _stacks = {} }, Project)
  for _, d in ipairs(stacks) do
    if d.template then p._stacks[#p._stacks + 1] = new_stack(p, d) end
  end
  cache[key] = p
  return p
end

--- Forgets the cached projects (after changing the config in a test).
function M.reset()
  cache = {}
end

-- ---------------------------------------------------------------------------
-- Security groups
-- ---------------------------------------------------------------------------

local PROTOCOLS = { ["6"] = "tcp", ["17"] = "udp", ["1"] = "icmp", ["58"] = "icmpv6", ["all"] = "-1" }

local function norm_protocol(p)
  if p == nil then return "-1" end
  p = tostring(p):lower()
  return PROTOCOLS[p] or p
end

local function rule_of(x, origin)
  if type(x) ~= "table" then return nil end
  local r = { protocol = norm_protocol(x.IpProtocol), from = tonumber(x.FromPort), to = tonumber(x.ToPort),
    description = x.Description, origin = origin }
  if r.protocol == "-1" or r.from == -1 then r.from, r.to = 0, 65535 end
  r.from = r.from or 0
  r.to = r.to or r.from
  if r.to == -1 then r.to = 65535 end
  local c = x.CidrIp or x.DestinationCidrIp
  local c6 = x.CidrIpv6 or x.DestinationCidrIpv6
  if type(c) == "string" then r.cidr = c elseif c ~= nil then r.unknown = true; r.raw_cidr = c end
  if type(c6) == "string" then r.cidr6 = c6 elseif c6 ~= nil then r.unknown = true; r.raw_cidr = c6 end
  r.source = x.SourceSecurityGroupId or x.SourceSecurityGroupName or x.DestinationSecurityGroupId
    or x.SourcePrefixListId or x.DestinationPrefixListId
  return r
end

local function targets(v, id)
  if type(v) ~= "table" then return false end
  if v.Ref == id then return true end
  local g = v["Fn::GetAtt"]
  return type(g) == "table" and g[1] == id
end

-- API shape: IpPermissions entries expand to one rule per range
local function api_rules(perms, prefix)
  local out = {}
  for i, p in ipairs(perms or {}) do
    local base = { IpProtocol = p.IpProtocol, FromPort = p.FromPort, ToPort = p.ToPort }
    local origin = prefix .. "[" .. i .. "]"
    local any = false
    for _, r in ipairs(p.IpRanges or {}) do
      any = true
      out[#out + 1] = rule_of({ IpProtocol = base.IpProtocol, FromPort = base.FromPort, ToPort = base.ToPort,
        CidrIp = r.CidrIp, Description = r.Description }, origin)
    end
    for _, r in ipairs(p.Ipv6Ranges or {}) do
      any = true
      out[#out + 1] = rule_of({ IpProtocol = base.IpProtocol, FromPort = base.FromPort, ToPort = base.ToPort,
        CidrIpv6 = r.CidrIpv6, Description = r.Description }, origin)
    end
    for _, g in ipairs(p.UserIdGroupPairs or {}) do
      any = true
      out[#out + 1] = rule_of({ IpProtocol = base.IpProtocol, FromPort = base.FromPort, ToPort = base.ToPort,
        SourceSecurityGroupId = g.GroupId, Description = g.Description }, origin)
    end
    if not any then out[#out + 1] = rule_of(base, origin) end
  end
  return out
end

function M.security_group(x)
  if type(x) ~= "table" then error("bad argument #1 to 'security_group' (security group expected)", 2) end
  if getmetatable(x) == Resource then
    local out = { ingress = {}, egress = {}, name = tostring(x) }
    if x.type == "AWS::EC2::SecurityGroupIngress" then
      out.ingress[1] = rule_of(x.properties, x.id)
      return out
    elseif x.type == "AWS::EC2::SecurityGroupEgress" then
      out.egress[1] = rule_of(x.properties, x.id)
      return out
    elseif x.type ~= "AWS::EC2::SecurityGroup" then
      error("bad argument #1 to 'security_group' (a security group resource expected, got " .. x.type .. ")", 2)
    end
    local p = x.properties
    for i, r in ipairs(p.SecurityGroupIngress or {}) do
      out.ingress[#out.ingress + 1] = rule_of(r, x.id .. ".SecurityGroupIngress[" .. i .. "]")
    end
    for i, r in ipairs(p.SecurityGroupEgress or {}) do
      out.egress[#out.egress + 1] = rule_of(r, x.id .. ".SecurityGroupEgress[" .. i .. "]")
    end
    for _, other in ipairs(x.stack:resources()) do
      local gid = type(other.raw.Properties) == "table" and other.raw.Properties.GroupId or nil
      if other.type == "AWS::EC2::SecurityGroupIngress" and targets(gid, x.id) then
        out.ingress[#out.ingress + 1] = rule_of(other.properties, other.id)
      elseif other.type == "AWS::EC2::SecurityGroupEgress" and targets(gid, x.id) then
        out.egress[#out.egress + 1] = rule_of(other.properties, other.id)
      end
    end
    return out
  end
  if x.IpPermissions or x.IpPermissionsEgress or x.GroupId then
    return { ingress = api_rules(x.IpPermissions, "IpPermissions"),
      egress = api_rules(x.IpPermissionsEgress, "IpPermissionsEgress"), name = x.GroupId or x.GroupName or "?" }
  end
  if x.ingress or x.egress then return x end
  error("bad argument #1 to 'security_group' (security group expected)", 2)
end

-- IPv4 helpers
local function parse4(s)
  local a, b, c, d, n = tostring(s):match("^(%d+)%.(%d+)%.(%d+)%.(%d+)/?(%d*)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  n = n ~= "" and tonumber(n) or 32
  if a > 255 or b > 255 or c > 255 or d > 255 or n > 32 then return nil end
  return ((a << 24) | (b << 16) | (c << 8) | d), n
end

local function mask(n) return n == 0 and 0 or ((0xffffffff << (32 - n)) & 0xffffffff) end

--- contains(net, sub): the IPv4 network net contains the network/address sub
function M.cidr_contains(net, sub)
  local na, nn = parse4(net)
  local sa, sn = parse4(sub)
  if not na or not sa or sn < nn then return false end
  return (na & mask(nn)) == (sa & mask(nn))
end

local function spec_of(spec, what)
  if type(spec) ~= "table" then error(what .. ": expected a table like {port = 22, cidr = \"0.0.0.0/0\"}", 4) end
  local s = { protocol = norm_protocol(spec.protocol or "tcp"), cidr = spec.cidr, cidr6 = spec.cidr6,
    from = tonumber(spec.from or spec.port), to = tonumber(spec.to or spec.port) }
  if not s.from or not s.to then error(what .. ": give port (or from and to)", 4) end
  if not s.cidr and not s.cidr6 then error(what .. ": give cidr (or cidr6)", 4) end
  if s.cidr and not parse4(s.cidr) then error(what .. ": bad cidr '" .. tostring(s.cidr) .. "'", 4) end
  return s
end

-- -> "yes" | "maybe" | nil
local function rule_allows(r, s)
  if r.protocol ~= "-1" and r.protocol ~= s.protocol then return nil end
  if s.from < r.from or s.to > r.to then return nil end
  if r.unknown then return "maybe" end
  if s.cidr and r.cidr and M.cidr_contains(r.cidr, s.cidr) then return "yes" end
  if s.cidr6 and r.cidr6 and (r.cidr6 == "::/0" or r.cidr6 == s.cidr6) then return "yes" end
  return nil
end

local function show_rule(r)
  local ports = r.from == r.to and tostring(r.from) or (r.from .. "-" .. r.to)
  local src = r.cidr or r.cidr6 or (r.unknown and json.encode(r.raw_cidr)) or tostring(r.source)
  return string.format("%s %s/%s from %s", tostring(r.origin), r.protocol == "-1" and "all" or r.protocol, ports, src)
end

local function show_spec(s)
  local ports = s.from == s.to and tostring(s.from) or (s.from .. "-" .. s.to)
  return s.protocol .. "/" .. ports .. " from " .. (s.cidr or s.cidr6)
end

local function sg_check(direction, want)
  return function(sg, spec)
    local view = M.security_group(sg)
    local s = spec_of(spec, "security_group")
    local yes, maybe = {}, {}
    for _, r in ipairs(view[direction]) do
      local a = rule_allows(r, s)
      if a == "yes" then yes[#yes + 1] = show_rule(r) elseif a == "maybe" then maybe[#maybe + 1] = show_rule(r) end
    end
    local what = direction == "ingress" and "allow " or "allow egress "
    if want then
      return #yes > 0, "Expected security group " .. view.name .. " to " .. what .. show_spec(s)
        .. (#maybe > 0 and ("; only rules it cannot resolve: " .. table.concat(maybe, "; ")) or "")
    end
    if #yes > 0 then
      return false, "Expected security group " .. view.name .. " not to " .. what .. show_spec(s) .. ", but "
        .. table.concat(yes, "; ") .. " does"
    end
    if #maybe > 0 then
      return false, "Cannot tell whether security group " .. view.name .. " allows " .. show_spec(s)
        .. ": " .. table.concat(maybe, "; ") .. " (a value known only at deploy time)"
    end
    return true, "Expected security group " .. view.name .. " to " .. what .. show_spec(s)
  end
end

test.register_subject("security_group", {
  allows = sg_check("ingress", true),
  does_not_allow = sg_check("ingress", false),
  allows_egress = sg_check("egress", true),
  does_not_allow_egress = sg_check("egress", false),
})

-- ---------------------------------------------------------------------------
-- Listeners, HTTP, nag
-- ---------------------------------------------------------------------------

local function listener_of(l)
  if getmetatable(l) == Resource then
    if l.type ~= "AWS::ElasticLoadBalancingV2::Listener" then
      error("assert.listener: a listener expected, got " .. l.type, 4)
    end
    local p = l.properties
    p = setmetatable({}, { __index = p })
    rawset(p, "_name", tostring(l))
    return p
  end
  if type(l) ~= "table" then error("assert.listener: a listener expected, got " .. type(l), 4) end
  return setmetatable({ _name = l.ListenerArn or "listener" }, { __index = l })
end

local WEAK_POLICIES = { ["ELBSecurityPolicy-2015-05"] = true, ["ELBSecurityPolicy-2016-08"] = true,
  ["ELBSecurityPolicy-TLS-1-0-2015-04"] = true, ["ELBSecurityPolicy-TLS-1-1-2017-01"] = true }

test.register_subject("listener", {
  redirects_to_https = function(l)
    local x = listener_of(l)
    for _, a in ipairs(x.DefaultActions or {}) do
      if type(a) == "table" and a.Type == "redirect" and type(a.RedirectConfig) == "table"
          and tostring(a.RedirectConfig.Protocol):upper() == "HTTPS" then
        return true, "Expected " .. x._name .. " to redirect to HTTPS"
      end
    end
    return false, "Expected " .. x._name .. " (" .. tostring(x.Protocol) .. ":" .. tostring(x.Port)
      .. ") to redirect to HTTPS, but its default actions are " .. json.encode(x.DefaultActions or {})
  end,
  uses_https = function(l)
    local x = listener_of(l)
    local p = tostring(x.Protocol)
    return p == "HTTPS" or p == "TLS", "Expected " .. x._name .. " to use HTTPS, but its protocol is " .. p
  end,
  uses_tls_policy = function(l, want)
    local x = listener_of(l)
    local p = x.SslPolicy
    if want then
      return p == want, "Expected " .. x._name .. " to use SSL policy " .. want .. ", got " .. tostring(p)
    end
    return p ~= nil and not WEAK_POLICIES[p], "Expected " .. x._name .. " to set a TLS 1.2+ SSL policy, got "
      .. tostring(p)
  end,
  has_port = function(l, port)
    local x = listener_of(l)
    return tonumber(x.Port) == tonumber(port), "Expected " .. x._name .. " on port " .. tostring(port) .. ", got "
      .. tostring(x.Port)
  end,
})

local function response_of(r)
  if type(r) ~= "table" or type(r.status) ~= "number" then
    error("assert.http: a lumu.http response expected", 4)
  end
  return r
end

test.register_subject("http", {
  has_status = function(r, want)
    r = response_of(r)
    return r.status == tonumber(want), "Expected HTTP status " .. tostring(want) .. ", got " .. r.status
  end,
  is_healthy = function(r)
    r = response_of(r)
    return r.status >= 200 and r.status < 400, "Expected a healthy answer (2xx or 3xx), got HTTP " .. r.status
      .. ": " .. tostring(r.body):sub(1, 200)
  end,
  has_body_matching = function(r, pattern)
    r = response_of(r)
    return tostring(r.body):find(pattern) ~= nil, "Expected the body to match " .. string.format("%q", pattern)
      .. ", got " .. string.format("%q", tostring(r.body):sub(1, 200))
  end,
})

test.register("nag_clean", function(x, opts)
  local results = x
  if getmetatable(x) == Project then results = x:nag() end
  if type(results) ~= "table" or type(results.violations) ~= "table" then
    return false, "Expected a lumu project or nag results, got " .. type(x)
  end
  local bad = {}
  for _, v in ipairs(results.violations) do
    if v.severity == "failure" or (opts and opts.warnings) then
      bad[#bad + 1] = v.file .. ": " .. v.resource .. ": " .. v.rule .. " " .. v.message
    end
  end
  return #bad == 0, "Expected no nag " .. ((opts and opts.warnings) and "findings" or "failures") .. ", got:\n"
    .. table.concat(bad, "\n")
end)

-- ---------------------------------------------------------------------------
-- Live checks
-- ---------------------------------------------------------------------------

local Live = {}
Live.__index = Live

function M.live(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'live' (table expected)", 2) end
  return setmetatable({ opts = opts, clients = opts.clients or {} }, Live)
end

function Live:_client(service)
  local c = self.clients[service]
  if c then return c end
  local aws = require "lumu.aws"
  local err
  c, err = aws.client(service, { region = self.opts.region, profile = self.opts.profile })
  if not c then error("live: " .. tostring(err), 3) end
  self.clients[service] = c
  return c
end

function Live:_call(service, op, params)
  local c = self:_client(service)
  local r, err = c:call(op, params)
  if not r then error("live: " .. tostring(err), 3) end
  return r
end

function Live:stack(name)
  local r = self:_call("cloudformation", "DescribeStacks", { StackName = name })
  local s = r.Stacks and r.Stacks[1]
  if not s then error("live: no stack " .. name, 2) end
  local out = { name = s.StackName, status = s.StackStatus, outputs = {}, parameters = {} }
  for _, o in ipairs(s.Outputs or {}) do out.outputs[o.OutputKey] = o.OutputValue end
  for _, p in ipairs(s.Parameters or {}) do out.parameters[p.ParameterKey] = p.ParameterValue end
  return out
end

function Live:physical_id(stack, logical)
  local r = self:_call("cloudformation", "DescribeStackResource", { StackName = stack, LogicalResourceId = logical })
  local d = r.StackResourceDetail
  if not d or not d.PhysicalResourceId then error("live: " .. stack .. " has no resource " .. logical, 2) end
  return d.PhysicalResourceId
end

local function id_of(self, x, what)
  if type(x) == "string" then return x end
  if type(x) == "table" and x.stack and x.id then return self:physical_id(x.stack, x.id) end
  error("bad argument #1 to '" .. what .. "' (an id or {stack=, id=} expected)", 3)
end

function Live:security_group(x)
  local id = id_of(self, x, "security_group")
  local r = self:_call("ec2", "DescribeSecurityGroups", { GroupIds = { id } })
  local g = r.SecurityGroups and r.SecurityGroups[1]
  if not g then error("live: no security group " .. id, 2) end
  return g
end

function Live:listener(x)
  local arn = id_of(self, x, "listener")
  local r = self:_call("elbv2", "DescribeListeners", { ListenerArns = { arn } })
  local l = r.Listeners and r.Listeners[1]
  if not l then error("live: no listener " .. arn, 2) end
  return l
end

function Live:get(url, opts)
  local req = { url = url, method = "GET", timeout = 30 }
  for k, v in pairs(opts or {}) do req[k] = v end
  local request = self.opts.request or require("lumu.http").request
  local r, err = request(req)
  if not r then error("live: GET " .. url .. ": " .. tostring(err), 2) end
  return r
end

function Live:health(x, opts)
  local url = x
  if type(x) == "table" then
    local st = self:stack(x.stack)
    local base = st.outputs[x.output or "BaseUrl"]
    if not base then error("live: stack " .. x.stack .. " has no output " .. (x.output or "BaseUrl"), 2) end
    url = base:gsub("/+$", "") .. (x.path or "/health")
  end
  return self:get(url, opts)
end

return M
