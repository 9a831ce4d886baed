--- Checks templates against the CloudFormation registry resource schemas
-- (documented in lumu.cfn, section "Schema checker").
--
-- Value rules (lenient where CloudFormation itself converts values):
--   string  accepts strings, numbers and booleans (CloudFormation passes
--           scalars to handlers as strings);
--   integer accepts integers, integral floats and integer strings ("80");
--   number  accepts numbers and numeric strings ("1.5");
--   boolean accepts booleans and "true"/"false" (any case).
-- An intrinsic function ({Ref=...}, {["Fn::..."]=...}) matches any schema;
-- the branches of Fn::If are checked (AWS::NoValue skipped). `pattern`,
-- `format` and `uniqueItems` are not checked; oneOf is checked like anyOf
-- (at least one branch must match).
local util = require "lumu.cfn.util"
util.own(debug.getinfo(1, "S").source)
local fn = require "lumu.cfn.intrinsics"

local show, join, kind, sorted_keys = util.show, util.join, util.kind, util.sorted_keys

local M = {}

-- Where a registry schema is stricter than CloudFormation templates are
-- (the registry describes Cloud Control), these corrections apply.
M.PATCHES = {
  -- CloudFormation names nested stacks itself; templates never set StackName.
  ["AWS::CloudFormation::Stack"] = { not_required = { StackName = true } },
}

local Checker = {}
Checker.__index = Checker
Checker.__name = "lumu.cfn.SchemaChecker"

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s, rerr = f:read("a")
  f:close()
  if not s then return nil, path .. ": " .. tostring(rerr) end
  return s
end

--- schema.default_dir() -> "$LUMU_SHARED/cfn" or nil when LUMU_SHARED is unset
function M.default_dir()
  local shared = os.getenv("LUMU_SHARED")
  if shared and shared ~= "" then return shared .. "/cfn" end
  return nil
end

--- schema.open(dir) -> checker | nil, err
function M.open(dir)
  if type(dir) ~= "string" or dir == "" then
    util.argerr(1, "open", "directory name expected, got " .. show(dir))
  end
  local json = util.require_json("schema.open")
  local tsv, err = read_file(dir .. "/types.tsv")
  if not tsv then return nil, "cannot read " .. dir .. "/types.tsv: " .. tostring(err) end
  local files, regions, names = {}, {}, {}
  local lineno = 0
  for line in tsv:gmatch("[^\n]+") do
    lineno = lineno + 1
    line = line:gsub("\r$", "")
    if line:sub(1, 1) ~= "#" and line ~= "" then
      local tname, file, east, west = line:match("^([^\t]+)\t([^\t]+)\t?([^\t]*)\t?([^\t]*)$")
      if not tname or not file:find("^[%w%-%._]+%.json$") or file:find("..", 1, true) then
        return nil, dir .. "/types.tsv:" .. lineno .. ": malformed line"
      end
      files[tname] = file
      regions[tname] = { ["us-east-1"] = east == "yes", ["us-west-2"] = west == "yes" }
      names[#names + 1] = tname
    end
  end
  if #names == 0 then return nil, dir .. "/types.tsv: no types" end
  table.sort(names)
  local rtext, rerr = read_file(dir .. "/getatt-rules.json")
  if not rtext then return nil, "cannot read " .. dir .. "/getatt-rules.json: " .. tostring(rerr) end
  local rules, derr = json.decode(rtext)
  if type(rules) ~= "table" then return nil, dir .. "/getatt-rules.json: " .. tostring(derr) end
  local all_props, extra = {}, {}
  for _, t in ipairs(rules.all_properties_getattable or {}) do all_props[t] = true end
  for t, list in pairs(rules.extra_getatt_properties or {}) do extra[t] = list end
  return setmetatable({
    dir = dir,
    _files = files,
    _regions = regions,
    _names = names,
    _all_props = all_props,
    _extra = extra,
    _any_prefixes = rules.any_attribute_type_prefixes or {},
    _schemas = {},   -- type -> schema | false
    _errors = {},    -- type -> load error
    _getatts = {},   -- type -> attribute info
    _sorted = setmetatable({}, { __mode = "k" }), -- schema node -> sorted property names
    stats = { reads = 0 },
  }, Checker)
end

local function check_self(self, fname)
  if getmetatable(self) ~= Checker then
    util.raise("calling '" .. fname .. "' on bad self (schema checker expected; use c:" .. fname .. "(...))")
  end
end

--- c:has_type(type) -> boolean (the type has a schema file)
function Checker:has_type(tname)
  check_self(self, "has_type")
  return self._files[tname] ~= nil
end

--- c:types() -> sorted list of the type names with a schema
function Checker:types()
  check_self(self, "types")
  return table.move(self._names, 1, #self._names, 1, {})
end

--- c:in_region(type, region) -> boolean|nil (types.tsv region columns;
-- nil for a region the table does not list)
function Checker:in_region(tname, region)
  check_self(self, "in_region")
  local r = self._regions[tname]
  if not r then return false end
  return r[region]
end

--- c:schema(type) -> schema table | nil, err (loaded once, then cached)
function Checker:schema(tname)
  check_self(self, "schema")
  local s = self._schemas[tname]
  if s then return s end
  if s == false then return nil, self._errors[tname] end
  local file = self._files[tname]
  if not file then return nil, "unknown resource type '" .. tostring(tname) .. "'" end
  self.stats.reads = self.stats.reads + 1
  local text, err = read_file(self.dir .. "/schemas/" .. file)
  local schema
  if text then
    schema, err = util.json.decode(text)
    if type(schema) ~= "table" then
      schema, err = nil, file .. ": " .. tostring(err or "not a JSON object")
    end
  end
  if not schema then
    self._schemas[tname], self._errors[tname] = false, err
    return nil, err
  end
  schema.handlers = nil -- not needed, and the largest part of many files
  local patch = M.PATCHES[tname]
  if patch and type(schema.required) == "table" then
    local keep = {}
    for _, r in ipairs(schema.required) do
      if not patch.not_required[r] then keep[#keep + 1] = r end
    end
    schema.required = keep
  end
  self._schemas[tname] = schema
  return schema
end

-- ---------------------------------------------------------------------------
-- Schema walking helpers
-- ---------------------------------------------------------------------------

-- Resolve "#/definitions/X" (any "#/a/b" pointer) inside `root`.
local function resolve(root, ref)
  if type(ref) ~= "string" then return nil end
  local ptr = ref:match("^[^#]*#(.*)$")
  if not ptr then return nil end
  local node = root
  for seg in ptr:gmatch("[^/]+") do
    seg = seg:gsub("~1", "/"):gsub("~0", "~")
    if type(node) ~= "table" then return nil end
    node = node[seg]
  end
  return node
end

-- Follow $ref chains (bounded).
local function deref(root, s)
  local hops = 0
  while type(s) == "table" and s["$ref"] ~= nil do
    hops = hops + 1
    if hops > 32 then return nil end
    s = resolve(root, s["$ref"])
  end
  return s
end

local function sorted_props(self, s)
  local list = self._sorted[s]
  if not list then
    list = sorted_keys(s.properties or {})
    self._sorted[s] = list
  end
  return list
end

local function types_of(s)
  local t = s.type
  if type(t) == "string" then return { t } end
  if type(t) == "table" then return t end
  return nil
end

local function scalar_string(v)
  if type(v) == "number" then
    local i = math.tointeger(v)
    return i and tostring(i) or tostring(v)
  end
  return tostring(v)
end

local function integer_like(v)
  if type(v) == "number" then return math.tointeger(v) ~= nil end
  return type(v) == "string" and v:find("^%s*[-+]?%d+%s*$") ~= nil
end

local function number_like(v)
  if type(v) == "number" then return true end
  return type(v) == "string" and (v:find("^%s*[-+]?%d+%.?%d*[eE]?[-+]?%d*%s*$") ~= nil
    or v:find("^%s*[-+]?%.%d+%s*$") ~= nil) and tonumber(v) ~= nil
end

-- Does value `v` (of kind `k`) satisfy JSON type `t`, CloudFormation-style?
local function type_ok(t, v, k)
  if t == "string" then return k == "string" or k == "number" or k == "boolean" end
  if t == "integer" then return integer_like(v) end
  if t == "number" then return number_like(v) end
  if t == "boolean" then
    if k == "boolean" then return true end
    if k ~= "string" then return false end
    local l = v:lower()
    return l == "true" or l == "false"
  end
  if t == "array" then return k == "array" end -- a plain {} encodes as an object
  if t == "object" then return k == "object" or k == "empty" end
  if t == "null" then return k == "null" end
  return true
end

local function describe_kind(v, k)
  if k == "string" then return "string " .. show(v) end
  if k == "number" then return (math.type(v) == "integer" and "integer " or "number ") .. tostring(v) end
  if k == "boolean" then return "boolean " .. tostring(v) end
  if k == "array" then return "a list" end
  if k == "object" then return "an object" end
  if k == "empty" then return "an empty table (encodes as {}; use json.array() for [])" end
  return show(v)
end

local function list_text(list, max)
  local out = {}
  for i, x in ipairs(list) do
    if i > max then
      out[#out + 1] = "... (" .. (#list - max) .. " more)"
      break
    end
    out[#out + 1] = scalar_string(x)
  end
  return table.concat(out, ", ")
end

-- A short description of a oneOf/anyOf branch, for messages.
local function branch_text(root, b)
  local name = type(b) == "table" and type(b["$ref"]) == "string" and b["$ref"]:match("([^/]+)$")
  b = deref(root, b)
  if type(b) ~= "table" then return "?" end
  if type(b.required) == "table" and #b.required > 0 then
    return "with " .. table.concat(b.required, " and ")
  end
  if name then return name end
  if b.title then return tostring(b.title) end
  if type(b.type) == "string" then return b.type end
  if b.enum then return "one of " .. list_text(b.enum, 5) end
  return "another form"
end

-- ---------------------------------------------------------------------------
-- Validation
-- ---------------------------------------------------------------------------

local validate

local function problem(ctx, path, message)
  ctx.problems[#ctx.problems + 1] = { path = path, message = message }
end

local function is_novalue(v)
  local k, arg = util.intrinsic(v)
  return k == "Ref" and arg == "AWS::NoValue"
end

local function validate_object(ctx, v, s, path, depth)
  local props = s.properties
  local addl = s.additionalProperties
  local pprops = s.patternProperties
  local single_pattern
  if type(pprops) == "table" then
    local k1 = next(pprops)
    if k1 ~= nil and next(pprops, k1) == nil then single_pattern = pprops[k1] end
  end
  for _, key in ipairs(sorted_keys(v)) do
    local val = v[key]
    local p = join(path, key)
    local ps = type(props) == "table" and props[key] or nil
    if type(key) ~= "string" then
      problem(ctx, path, "property names must be strings, got " .. show(key))
    elseif ps ~= nil then
      validate(ctx, val, ps, p, depth + 1)
    elseif type(pprops) == "table" and next(pprops) ~= nil then
      if single_pattern then validate(ctx, val, single_pattern, p, depth + 1) end
    elseif addl == false then
      local hint = util.did_you_mean(key, sorted_props(ctx.checker, s))
      problem(ctx, p, "unknown property '" .. key .. "'" .. hint)
    elseif type(addl) == "table" then
      validate(ctx, val, addl, p, depth + 1)
    end
  end
  if type(s.required) == "table" then
    for _, r in ipairs(s.required) do
      if v[r] == nil then
        problem(ctx, path, "missing required property '" .. tostring(r) .. "'")
      end
    end
  end
  if type(s.dependencies) == "table" then
    for _, a in ipairs(sorted_keys(s.dependencies)) do
      local dep = s.dependencies[a]
      if v[a] ~= nil then
        if kind(dep) == "array" then
          for _, b in ipairs(dep) do
            if v[b] == nil then
              problem(ctx, path, "property '" .. a .. "' requires '" .. tostring(b) .. "'")
            end
          end
        elseif type(dep) == "table" then
          validate(ctx, v, dep, path, depth + 1)
        end
      end
    end
  end
end

local function validate_scalar(ctx, v, s, path, k, types)
  if s.enum ~= nil and kind(s.enum) == "array" then
    local sv = scalar_string(v)
    local ok = false
    for _, e in ipairs(s.enum) do
      if scalar_string(e) == sv then ok = true break end
    end
    if not ok then
      problem(ctx, path, "expected one of " .. list_text(s.enum, 25) .. ", got " .. show(v))
      return
    end
  end
  if k == "string" then
    local len = utf8.len(v) or #v
    if type(s.minLength) == "number" and len < s.minLength then
      problem(ctx, path, string.format("expected at least %d characters, got %d", s.minLength, len))
    end
    if type(s.maxLength) == "number" and len > s.maxLength then
      problem(ctx, path, string.format("expected at most %d characters, got %d", s.maxLength, len))
    end
  end
  local numeric = k == "number"
  if not numeric and types then
    for _, t in ipairs(types) do
      if t == "number" or t == "integer" then numeric = true end
    end
  end
  if numeric then
    local n = tonumber(v)
    if n then
      if type(s.minimum) == "number" and n < s.minimum then
        problem(ctx, path, "expected a value >= " .. scalar_string(s.minimum) .. ", got " .. scalar_string(v))
      end
      if type(s.maximum) == "number" and n > s.maximum then
        problem(ctx, path, "expected a value <= " .. scalar_string(s.maximum) .. ", got " .. scalar_string(v))
      end
      if type(s.exclusiveMinimum) == "number" and n <= s.exclusiveMinimum then
        problem(ctx, path, "expected a value > " .. scalar_string(s.exclusiveMinimum) .. ", got " .. scalar_string(v))
      end
      if type(s.exclusiveMaximum) == "number" and n >= s.exclusiveMaximum then
        problem(ctx, path, "expected a value < " .. scalar_string(s.exclusiveMaximum) .. ", got " .. scalar_string(v))
      end
    end
  end
end

-- Validate into a scratch list; returns its problems.
local function trial(ctx, v, s, path, depth)
  local saved = ctx.problems
  ctx.problems = {}
  validate(ctx, v, s, path, depth)
  local got = ctx.problems
  ctx.problems = saved
  return got
end

function validate(ctx, v, s, path, depth)
  if depth > util.MAX_DEPTH then
    problem(ctx, path, "nested too deeply (more than " .. util.MAX_DEPTH .. " levels)")
    return
  end
  s = deref(ctx.root, s)
  if type(s) ~= "table" then return end
  local fk, arg = util.intrinsic(v)
  if fk then
    if fk == "Fn::If" and kind(arg) == "array" and #arg == 3 then
      for i = 2, 3 do
        if not is_novalue(arg[i]) then validate(ctx, arg[i], s, path, depth + 1) end
      end
    end
    return
  end
  local k = kind(v)
  local types = types_of(s)
  if types then
    local ok = false
    for _, t in ipairs(types) do
      if type_ok(t, v, k) then ok = true break end
    end
    if not ok then
      problem(ctx, path, "expected " .. table.concat(types, " or ") .. ", got " .. describe_kind(v, k))
      return
    end
  end
  if k == "object" or k == "empty" then
    validate_object(ctx, v, s, path, depth)
  elseif k == "array" then
    local n = #v
    if type(s.minItems) == "number" and n < s.minItems then
      problem(ctx, path, string.format("expected at least %d items, got %d", s.minItems, n))
    end
    if type(s.maxItems) == "number" and n > s.maxItems then
      problem(ctx, path, string.format("expected at most %d items, got %d", s.maxItems, n))
    end
    if type(s.items) == "table" and kind(s.items) ~= "array" then
      for i, item in ipairs(v) do validate(ctx, item, s.items, join(path, i), depth + 1) end
    end
  elseif k == "string" or k == "number" or k == "boolean" then
    validate_scalar(ctx, v, s, path, k, types)
  end
  if kind(s.allOf) == "array" then
    for _, b in ipairs(s.allOf) do validate(ctx, v, b, path, depth + 1) end
  end
  for _, comb in ipairs({ "anyOf", "oneOf" }) do
    local branches = s[comb]
    if kind(branches) == "array" and #branches > 0 then
      local best
      for _, b in ipairs(branches) do
        local got = trial(ctx, v, b, path, depth + 1)
        if #got == 0 then best = nil break end
        if not best or #got < #best then best = got end
      end
      if best then
        local forms = {}
        for i, b in ipairs(branches) do forms[i] = branch_text(ctx.root, b) end
        local detail = best[1] and (" (closest: " .. (best[1].path ~= path and (best[1].path .. ": ") or "")
          .. best[1].message .. ")") or ""
        problem(ctx, path, "expected " .. (comb == "oneOf" and "one of these forms" or "any of these forms")
          .. ": " .. table.concat(forms, " | ") .. detail)
      end
    end
  end
end

-- ---------------------------------------------------------------------------
-- Read-only properties and Fn::GetAtt attributes
-- ---------------------------------------------------------------------------

local function pointer_segments(ptr)
  local rest = type(ptr) == "string" and ptr:match("^/properties/(.+)$")
  if not rest then return nil end
  local segs = {}
  for seg in rest:gmatch("[^/]+") do segs[#segs + 1] = (seg:gsub("~1", "/"):gsub("~0", "~")) end
  return segs
end

local function check_read_only(ctx, schema, props, path)
  if type(props) ~= "table" or util.intrinsic(props) then return end
  for _, ptr in ipairs(schema.readOnlyProperties or {}) do
    local segs = pointer_segments(ptr)
    if segs and not ptr:find("/*", 1, true) then
      local cur, p, present = props, path, true
      for _, seg in ipairs(segs) do
        if type(cur) ~= "table" or util.intrinsic(cur) or kind(cur) ~= "object" or cur[seg] == nil then
          present = false
          break
        end
        cur, p = cur[seg], join(p, seg)
      end
      if present then
        problem(ctx, p, "read-only property '" .. table.concat(segs, ".")
          .. "' cannot be set (it is returned by CloudFormation)")
      end
    end
  end
end

-- Every property of a schema as GetAtt names: objects are entered with
-- '.', arrays are not.
local function all_property_names(root, s, prefix, out, depth, seen)
  s = deref(root, s)
  if type(s) ~= "table" or type(s.properties) ~= "table" or depth > 8 or seen[s] then return end
  seen[s] = true
  for name, ps in pairs(s.properties) do
    local full = prefix and (prefix .. "." .. name) or name
    out[full] = true
    local d = deref(root, ps)
    if type(d) == "table" and type(d.properties) == "table" then
      all_property_names(root, d, full, out, depth + 1, seen)
    end
  end
  seen[s] = nil
end

local function starts_with(s, prefix)
  return s:sub(1, #prefix) == prefix
end

--- c:attributes(type) -> info: {any = true} | {outputs = bool, names = {sorted}, set = {...}}
-- | nil, err
function Checker:attributes(tname)
  check_self(self, "attributes")
  local info = self._getatts[tname]
  if info then return info end
  for _, prefix in ipairs(self._any_prefixes) do
    if starts_with(tname, prefix) then
      info = { any = true }
      self._getatts[tname] = info
      return info
    end
  end
  if tname:find("::MODULE$") then
    info = { any = true }
    self._getatts[tname] = info
    return info
  end
  local schema, err = self:schema(tname)
  if not schema then return nil, err end
  local set = {}
  local stack = tname == "AWS::CloudFormation::Stack"
  local outputs = stack or tname == "AWS::ServiceCatalog::CloudFormationProvisionedProduct"
  if not stack then
    for _, ptr in ipairs(schema.readOnlyProperties or {}) do
      local segs = pointer_segments(ptr)
      if segs and not ptr:find("/*", 1, true) then set[table.concat(segs, ".")] = true end
    end
    if self._all_props[tname] then all_property_names(schema, schema, nil, set, 1, {}) end
    for _, a in ipairs(self._extra[tname] or {}) do set[a] = true end
    if outputs then set.Outputs = nil end
  end
  info = { outputs = outputs, set = set, names = sorted_keys(set) }
  self._getatts[tname] = info
  return info
end

--- c:getatt_ok(type, attribute) -> true | false, why | nil, err (no schema)
function Checker:getatt_ok(tname, attr)
  check_self(self, "getatt_ok")
  local info, err = self:attributes(tname)
  if not info then return nil, err end
  if info.any or info.set[attr] then return true end
  if info.outputs and attr:find("^Outputs%.[^.]") then return true end
  local names = table.move(info.names, 1, #info.names, 1, {})
  if info.outputs then table.insert(names, 1, "Outputs.<Name>") end
  local why = "'" .. attr .. "' is not an attribute of " .. tname
  if #names == 0 then
    why = why .. " (it has no Fn::GetAtt attributes)"
  else
    why = why .. util.did_you_mean(attr, names) .. "; valid: " .. list_text(names, 20)
  end
  return false, why
end

-- Collect Fn::GetAtt uses (including Fn::Sub "${Res.Attr}") with paths.
local function collect_getatts(v, path, depth, out)
  if type(v) ~= "table" or depth > util.MAX_DEPTH then return end
  local k, arg = util.intrinsic(v)
  if k == "Fn::GetAtt" then
    local res, attr
    if type(arg) == "string" then
      res, attr = arg:match("^([^.]+)%.(.+)$")
    elseif kind(arg) == "array" then
      res, attr = arg[1], arg[2]
    end
    if type(res) == "string" and type(attr) == "string" then
      out[#out + 1] = { path = path, res = res, attr = attr, via = "Fn::GetAtt" }
    end
    if type(arg) == "table" then collect_getatts(arg, path, depth + 1, out) end
    return
  elseif k == "Fn::Sub" then
    local s, vars = arg, {}
    if kind(arg) == "array" then s, vars = arg[1], arg[2] end
    if type(vars) ~= "table" then vars = {} end
    if type(s) == "string" then
      for _, name in ipairs(fn.sub_refs(s)) do
        local res, attr = name:match("^([^.]+)%.(.+)$")
        if res and vars[name] == nil then
          out[#out + 1] = { path = path, res = res, attr = attr, via = "Fn::Sub '${" .. name .. "}'" }
        end
      end
    end
    for _, key in ipairs(sorted_keys(vars)) do collect_getatts(vars[key], join(path, key), depth + 1, out) end
    return
  elseif k then
    return collect_getatts(arg, path, depth + 1, out)
  end
  for _, key in ipairs(sorted_keys(v)) do
    collect_getatts(v[key], join(path, key), depth + 1, out)
  end
end

-- ---------------------------------------------------------------------------
-- Templates
-- ---------------------------------------------------------------------------

local SAM = "AWS::Serverless-2016-10-31"
local NO_SCHEMA = { ["AWS::CDK::Metadata"] = true }

local function transforms_of(tpl)
  local set = {}
  local tr = tpl.Transform
  if type(tr) == "string" then set[tr] = true end
  if type(tr) == "table" then
    for _, t in ipairs(tr) do
      if type(t) == "string" then set[t] = true end
    end
  end
  return set
end

--- c:check_resource(id, resource [, path]) -> problems (one resource's
-- Type and Properties; path defaults to "Resources.<id>")
function Checker:check_resource(id, r, path, transforms)
  check_self(self, "check_resource")
  path = path or join("Resources", id)
  local ctx = { problems = {}, checker = self }
  if type(r) ~= "table" or type(r.Type) ~= "string" then return ctx.problems end
  local tname = r.Type
  local props = r.Properties
  local ppath = join(path, "Properties")
  if starts_with(tname, "Custom::") or tname == "AWS::CloudFormation::CustomResource" then
    if type(props) ~= "table" or (not util.intrinsic(props) and props.ServiceToken == nil) then
      problem(ctx, ppath, "missing required property 'ServiceToken'")
    end
    return ctx.problems
  end
  if tname:find("::MODULE$") or NO_SCHEMA[tname] then return ctx.problems end
  if starts_with(tname, "AWS::Serverless::") and transforms and transforms[SAM] then return ctx.problems end
  if not self._files[tname] then
    local hint = util.did_you_mean(tname, self._names)
    if hint == "" and starts_with(tname, "AWS::Serverless::") then
      hint = " (needs the " .. SAM .. " transform)"
    end
    problem(ctx, join(path, "Type"), "unknown resource type '" .. tname .. "'" .. hint)
    return ctx.problems
  end
  local schema, err = self:schema(tname)
  if not schema then
    problem(ctx, join(path, "Type"), "cannot load the schema of " .. tname .. ": " .. tostring(err))
    return ctx.problems
  end
  ctx.root = schema
  if props == nil then props = {} end
  if not util.intrinsic(props) and kind(props) ~= "object" and kind(props) ~= "empty" then
    problem(ctx, ppath, "expected an object, got " .. describe_kind(props, kind(props)))
    return ctx.problems
  end
  validate(ctx, props, schema, ppath, 1)
  check_read_only(ctx, schema, props, ppath)
  return ctx.problems
end

--- c:check_template(template) -> problems
function Checker:check_template(tpl)
  check_self(self, "check_template")
  if type(tpl) ~= "table" then util.argerr(1, "check_template", "template table expected, got " .. show(tpl)) end
  local problems = {}
  local resources = tpl.Resources
  if type(resources) ~= "table" then return problems end
  local transforms = transforms_of(tpl)
  local ids = {}
  for id in pairs(resources) do
    if type(id) == "string" then ids[#ids + 1] = id end
  end
  table.sort(ids)
  for _, id in ipairs(ids) do
    for _, p in ipairs(self:check_resource(id, resources[id], nil, transforms)) do
      problems[#problems + 1] = p
    end
  end
  -- Fn::GetAtt attributes
  local uses = {}
  for _, id in ipairs(ids) do collect_getatts(resources[id], join("Resources", id), 1, uses) end
  if type(tpl.Outputs) == "table" then collect_getatts(tpl.Outputs, "Outputs", 1, uses) end
  for _, u in ipairs(uses) do
    local r = resources[u.res]
    if type(r) == "table" and type(r.Type) == "string" then
      local tname = r.Type
      local skip = NO_SCHEMA[tname] or (starts_with(tname, "AWS::Serverless::") and transforms[SAM])
      if not skip and (self._files[tname] or starts_with(tname, "Custom::") or tname:find("::MODULE$")) then
        local ok, why = self:getatt_ok(tname, u.attr)
        if ok == false then
          problems[#problems + 1] = { path = u.path, message = u.via .. ": " .. why }
        end
      end
    end
  end
  return problems
end

Checker.__tostring = function(c)
  return "cfn schema checker (" .. c.dir .. ", " .. #c._names .. " types)"
end

return M
