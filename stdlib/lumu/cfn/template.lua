--- The CloudFormation template builder (documented in lumu.cfn).
local util = require "lumu.cfn.util"
util.own(debug.getinfo(1, "S").source)
local fn = require "lumu.cfn.intrinsics"

local argerr, show, freeze = util.argerr, util.show, util.freeze

local M = {}

M.TOP_ORDER = { "AWSTemplateFormatVersion", "Description", "Metadata", "Transform", "Parameters",
  "Mappings", "Conditions", "Rules", "Resources", "Outputs" }
M.RESOURCE_ORDER = { "Type", "Condition", "DependsOn", "Metadata", "Properties", "CreationPolicy",
  "UpdatePolicy", "DeletionPolicy", "UpdateReplacePolicy" }
M.PARAMETER_ORDER = { "Type", "Description", "Default", "AllowedValues", "AllowedPattern",
  "ConstraintDescription", "MinLength", "MaxLength", "MinValue", "MaxValue", "NoEcho" }
M.OUTPUT_ORDER = { "Description", "Condition", "Value", "Export" }

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local PARAMETER_KEYS = set_of(M.PARAMETER_ORDER)
local RESOURCE_OPTS = set_of({ "DependsOn", "Condition", "DeletionPolicy", "UpdateReplacePolicy",
  "UpdatePolicy", "CreationPolicy", "Metadata" })
local OUTPUT_OPTS = set_of({ "description", "export", "condition" })
local DELETION_POLICIES = { "Delete", "Retain", "RetainExceptOnCreate", "Snapshot" }
local REPLACE_POLICIES = { "Delete", "Retain", "Snapshot" }
local CONDITION_FNS = set_of({ "Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not", "Condition" })
local RESOURCE_OPT_NAMES = {}
for k in pairs(RESOURCE_OPTS) do RESOURCE_OPT_NAMES[#RESOURCE_OPT_NAMES + 1] = k end
table.sort(RESOURCE_OPT_NAMES)
local RESOURCE_TABLE_OPTS = { "UpdatePolicy", "CreationPolicy", "Metadata" }
local PARAMETER_STRINGS = { "Description", "AllowedPattern", "ConstraintDescription" }
local PARAMETER_NUMBERS = { "MinLength", "MaxLength", "MinValue", "MaxValue" }

-- ---------------------------------------------------------------------------
-- Handles
-- ---------------------------------------------------------------------------

local Handle = util.Handle
local handle_methods = {}

function handle_methods.getatt(h, attr)
  if not util.is_handle(h) then argerr(1, "getatt", "handle expected (use h:getatt(...))") end
  if util.hget(h, "kind") ~= "resource" then
    argerr(1, "getatt", "Fn::GetAtt needs a resource, not a " .. util.hget(h, "kind"))
  end
  return fn.GetAtt(util.hget(h, "name"), attr)
end

Handle.__index = function(h, k)
  if k == "ref" then
    local kind = util.hget(h, "kind")
    if kind == "resource" or kind == "parameter" then return { Ref = util.hget(h, "name") } end
    return nil
  elseif k == "condition" and util.hget(h, "kind") == "condition" then
    return { Condition = util.hget(h, "name") }
  elseif k == "name" or k == "type" or k == "kind" then
    return util.hget(h, k)
  end
  return handle_methods[k]
end
Handle.__newindex = function()
  util.raise("cfn handles are read-only")
end
Handle.__tostring = function(h)
  local s = "cfn " .. util.hget(h, "kind") .. " " .. util.hget(h, "name")
  if util.hget(h, "type") then s = s .. " (" .. util.hget(h, "type") .. ")" end
  return s
end

local new_handle = util.new_handle

-- ---------------------------------------------------------------------------
-- Template
-- ---------------------------------------------------------------------------

local Template = {}
Template.__index = Template
Template.__name = "lumu.cfn.Template"

local function check_self(self, fname)
  if getmetatable(self) ~= Template then
    util.raise("calling '" .. fname .. "' on bad self (cfn template expected; use t:" .. fname .. "(...))")
  end
end

-- A section: values by name plus the declaration order.
local function section()
  return { values = {}, order = {} }
end

local function add(sec, name, v)
  sec.values[name] = v
  sec.order[#sec.order + 1] = name
end

local function check_name(self, fname, name, sec, what)
  if not util.valid_name(name) then
    argerr(1, fname, what .. " name must be 1-255 alphanumeric characters, got " .. show(name))
  end
  if sec.values[name] ~= nil then
    argerr(1, fname, "duplicate " .. what .. " name '" .. name .. "'")
  end
end

--- cfn.template([opts]) -> template
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    argerr(1, "template", "table expected, got " .. show(opts))
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "description" and k ~= "version" then
      argerr(1, "template", "unknown option " .. show(k) .. " (description, version)")
    end
  end
  local d = opts.description
  if d ~= nil and (type(d) ~= "string" or #d > 1024) then
    argerr(1, "template", "description must be a string of at most 1024 bytes")
  end
  local v = opts.version or "2010-09-09"
  if v ~= "2010-09-09" then
    argerr(1, "template", "version must be '2010-09-09', got " .. show(v))
  end
  return setmetatable({
    _description = d, _version = v, _metadata = section(), _transforms = {},
    _parameters = section(), _mappings = section(), _conditions = section(),
    _rules = section(), _resources = section(), _outputs = section(),
  }, Template)
end

function Template:description(d)
  check_self(self, "description")
  if type(d) ~= "string" or #d > 1024 then
    argerr(1, "description", "string of at most 1024 bytes expected, got " .. show(d))
  end
  self._description = d
  return self
end

-- Ref namespace: parameters and resources share it.
local function check_ref_name(self, fname, name)
  if self._parameters.values[name] ~= nil then
    argerr(1, fname, "'" .. name .. "' is already a parameter")
  end
  if self._resources.values[name] ~= nil then
    argerr(1, fname, "'" .. name .. "' is already a resource")
  end
end

local function is_number_like(v)
  return type(v) == "number" or (type(v) == "string" and tonumber(v) ~= nil)
end

--- t:parameter(name, {Type=, Default=, ...}) -> handle
function Template:parameter(name, def)
  check_self(self, "parameter")
  check_name(self, "parameter", name, self._parameters, "parameter")
  check_ref_name(self, "parameter", name)
  if type(def) ~= "table" then argerr(2, "parameter", "table expected, got " .. show(def)) end
  for k in pairs(def) do
    if not PARAMETER_KEYS[k] then
      argerr(2, "parameter", "unknown parameter attribute " .. show(k)
        .. util.did_you_mean(k, M.PARAMETER_ORDER))
    end
  end
  if not util.valid_param_type(def.Type) then
    argerr(2, "parameter", "Type must be a CloudFormation parameter type, got " .. show(def.Type))
  end
  local dv = def.Default
  if dv ~= nil and type(dv) ~= "string" and type(dv) ~= "number" and type(dv) ~= "boolean" then
    argerr(2, "parameter", "Default must be a string or number, got " .. show(dv))
  end
  for i = 1, #PARAMETER_STRINGS do
    local k = PARAMETER_STRINGS[i]
    if def[k] ~= nil and type(def[k]) ~= "string" then
      argerr(2, "parameter", k .. " must be a string, got " .. show(def[k]))
    end
  end
  if def.Description and #def.Description > 4000 then
    argerr(2, "parameter", "Description is longer than 4000 bytes")
  end
  for i = 1, #PARAMETER_NUMBERS do
    local k = PARAMETER_NUMBERS[i]
    if def[k] ~= nil and not is_number_like(def[k]) then
      argerr(2, "parameter", k .. " must be a number, got " .. show(def[k]))
    end
  end
  local ne = def.NoEcho
  if ne ~= nil and type(ne) ~= "boolean" and ne ~= "true" and ne ~= "false" then
    argerr(2, "parameter", "NoEcho must be a boolean, got " .. show(ne))
  end
  local av = def.AllowedValues
  if av ~= nil then
    if type(av) ~= "table" or util.kind(av) ~= "array" then
      argerr(2, "parameter", "AllowedValues must be a non-empty list, got " .. show(av))
    end
    if dv ~= nil and not def.Type:find("List") then
      local found = false
      for _, a in ipairs(av) do
        if tostring(a) == tostring(dv) then found = true break end
      end
      if not found then
        argerr(2, "parameter", "Default " .. show(dv) .. " is not one of AllowedValues")
      end
    end
  end
  add(self._parameters, name, freeze(def, 2, "parameter"))
  return new_handle("parameter", name, def.Type)
end

--- t:mapping(name, {TopKey = {SecondKey = value}}) -> handle
function Template:mapping(name, tbl)
  check_self(self, "mapping")
  check_name(self, "mapping", name, self._mappings, "mapping")
  if type(tbl) ~= "table" or util.kind(tbl) ~= "object" then
    argerr(2, "mapping", "non-empty table of tables expected, got " .. show(tbl))
  end
  for top, inner in pairs(tbl) do
    if type(top) ~= "string" or top == "" then
      argerr(2, "mapping", "keys must be non-empty strings, got " .. show(top))
    end
    if type(inner) ~= "table" or util.kind(inner) ~= "object" then
      argerr(2, "mapping", top .. ": non-empty table expected, got " .. show(inner))
    end
    for k, v in pairs(inner) do
      if type(k) ~= "string" or k == "" then
        argerr(2, "mapping", top .. ": keys must be non-empty strings, got " .. show(k))
      end
      local vt = type(v)
      if vt == "table" then
        if util.kind(v) ~= "array" and util.kind(v) ~= "empty" then
          argerr(2, "mapping", top .. "." .. k .. ": string, number or list expected, got " .. show(v))
        end
      elseif vt ~= "string" and vt ~= "number" and vt ~= "boolean" then
        argerr(2, "mapping", top .. "." .. k .. ": string, number or list expected, got " .. show(v))
      end
    end
  end
  add(self._mappings, name, freeze(tbl, 2, "mapping"))
  return new_handle("mapping", name)
end

--- t:condition(name, expr) -> handle (usable with cfn.If, resource Condition=)
function Template:condition(name, expr)
  check_self(self, "condition")
  check_name(self, "condition", name, self._conditions, "condition")
  if util.is_handle(expr) and util.hget(expr, "kind") == "condition" then
    expr = { Condition = util.hget(expr, "name") }
  end
  local k = util.intrinsic(expr, true)
  if not CONDITION_FNS[k] then
    argerr(2, "condition", "condition function expected (Equals, And, Or, Not, Condition), got " .. show(expr))
  end
  add(self._conditions, name, freeze(expr, 2, "condition"))
  return new_handle("condition", name)
end

--- t:metadata(key, value)
function Template:metadata(key, value)
  check_self(self, "metadata")
  if type(key) ~= "string" or key == "" then argerr(1, "metadata", "non-empty string expected, got " .. show(key)) end
  if self._metadata.values[key] ~= nil then argerr(1, "metadata", "duplicate metadata key '" .. key .. "'") end
  if value == nil then argerr(2, "metadata", "value expected, got nil") end
  add(self._metadata, key, freeze(value, 2, "metadata"))
  return self
end

--- t:transform(name) (e.g. "AWS::Serverless-2016-10-31", "AWS::LanguageExtensions")
function Template:transform(name)
  check_self(self, "transform")
  if type(name) ~= "string" or name == "" then argerr(1, "transform", "non-empty string expected, got " .. show(name)) end
  for _, t in ipairs(self._transforms) do
    if t == name then argerr(1, "transform", "duplicate transform '" .. name .. "'") end
  end
  self._transforms[#self._transforms + 1] = name
  return self
end

--- t:rule(name, {RuleCondition=, Assertions={{Assert=, AssertDescription=}, ...}})
function Template:rule(name, def)
  check_self(self, "rule")
  check_name(self, "rule", name, self._rules, "rule")
  if type(def) ~= "table" then argerr(2, "rule", "table expected, got " .. show(def)) end
  for k in pairs(def) do
    if k ~= "RuleCondition" and k ~= "Assertions" then
      argerr(2, "rule", "unknown rule attribute " .. show(k) .. " (RuleCondition, Assertions)")
    end
  end
  if type(def.Assertions) ~= "table" or util.kind(def.Assertions) ~= "array" then
    argerr(2, "rule", "Assertions must be a non-empty list")
  end
  add(self._rules, name, freeze(def, 2, "rule"))
  return self
end

local function one_of(v, list)
  for _, x in ipairs(list) do
    if v == x then return true end
  end
  return false
end

-- DependsOn: a name, a handle, or a list of them -> string or list.
local function depends_on(id, v)
  local function one(x, i)
    local name = util.name_of(x)
    if util.is_handle(x) and util.hget(x, "kind") ~= "resource" then name = nil end
    if not util.valid_name(name) then
      argerr(4, "resource", "DependsOn" .. (i and ("[" .. i .. "]") or "")
        .. ": resource name or handle expected, got " .. show(x))
    end
    if name == id then argerr(4, "resource", "DependsOn: '" .. id .. "' cannot depend on itself") end
    return name
  end
  if type(v) == "table" and not util.is_handle(v) then
    if util.kind(v) ~= "array" then argerr(4, "resource", "DependsOn: name or list of names expected") end
    local out = {}
    for i, x in ipairs(v) do out[i] = one(x, i) end
    return util.array(out)
  end
  return one(v)
end

local function policy(v, list, what)
  if type(v) == "table" and util.intrinsic(v) then return freeze(v, 4, "resource") end
  if not one_of(v, list) then
    argerr(4, "resource", what .. " must be one of " .. table.concat(list, ", ") .. ", got " .. show(v))
  end
  return v
end

--- t:resource(id, type [, props [, opts]]) -> handle
function Template:resource(id, typ, props, opts)
  check_self(self, "resource")
  check_name(self, "resource", id, self._resources, "resource")
  check_ref_name(self, "resource", id)
  if not util.valid_resource_type(typ) then
    argerr(2, "resource", "resource type like 'AWS::Service::Resource' or 'Custom::Name' expected, got " .. show(typ))
  end
  local res = { Type = typ }
  if props ~= nil then
    if type(props) ~= "table" or util.is_handle(props)
        or (util.kind(props) == "array" and not util.intrinsic(props)) then
      argerr(3, "resource", "table of properties expected, got " .. show(props))
    end
    if next(props) ~= nil then res.Properties = freeze(props, 3, "resource") end
  end
  if opts ~= nil then
    if type(opts) ~= "table" then argerr(4, "resource", "table of options expected, got " .. show(opts)) end
    for k in pairs(opts) do
      if not RESOURCE_OPTS[k] then
        argerr(4, "resource", "unknown option " .. show(k) .. util.did_you_mean(k, RESOURCE_OPT_NAMES))
      end
    end
    if opts.DependsOn ~= nil then res.DependsOn = depends_on(id, opts.DependsOn) end
    if opts.Condition ~= nil then
      local c = opts.Condition
      if util.is_handle(c) and util.hget(c, "kind") ~= "condition" then c = nil end
      local name = util.name_of(c)
      if not util.valid_name(name) then
        argerr(4, "resource", "Condition: condition name or handle expected, got " .. show(opts.Condition))
      end
      res.Condition = name
    end
    if opts.DeletionPolicy ~= nil then
      res.DeletionPolicy = policy(opts.DeletionPolicy, DELETION_POLICIES, "DeletionPolicy")
    end
    if opts.UpdateReplacePolicy ~= nil then
      res.UpdateReplacePolicy = policy(opts.UpdateReplacePolicy, REPLACE_POLICIES, "UpdateReplacePolicy")
    end
    for i = 1, #RESOURCE_TABLE_OPTS do
      local k = RESOURCE_TABLE_OPTS[i]
      local v = opts[k]
      if v ~= nil then
        if type(v) ~= "table" or util.kind(v) == "array" then
          argerr(4, "resource", k .. ": table expected, got " .. show(v))
        end
        res[k] = freeze(v, 4, "resource", k)
      end
    end
  end
  add(self._resources, id, res)
  return new_handle("resource", id, typ)
end

--- t:output(name, value [, {description=, export=, condition=}])
function Template:output(name, value, opts)
  check_self(self, "output")
  check_name(self, "output", name, self._outputs, "output")
  if value == nil then argerr(2, "output", "value expected, got nil") end
  if type(value) == "table" and not util.is_handle(value) and not util.intrinsic(value) then
    argerr(2, "output", "string, number or intrinsic function expected, got " .. show(value))
  end
  local out = { Value = freeze(value, 2, "output") }
  if opts ~= nil then
    if type(opts) ~= "table" then argerr(3, "output", "table of options expected, got " .. show(opts)) end
    for k in pairs(opts) do
      if not OUTPUT_OPTS[k] then
        argerr(3, "output", "unknown option " .. show(k) .. " (description, export, condition)")
      end
    end
    if opts.description ~= nil then
      if type(opts.description) ~= "string" or #opts.description > 1024 then
        argerr(3, "output", "description must be a string of at most 1024 bytes")
      end
      out.Description = opts.description
    end
    if opts.export ~= nil then
      local e = opts.export
      if not ((type(e) == "string" and e ~= "") or (type(e) == "table" and util.intrinsic(e))) then
        argerr(3, "output", "export must be a name or an intrinsic function, got " .. show(e))
      end
      out.Export = { Name = freeze(e, 3, "output") }
    end
    if opts.condition ~= nil then
      local c = opts.condition
      if util.is_handle(c) and util.hget(c, "kind") ~= "condition" then c = nil end
      local cname = util.name_of(c)
      if not util.valid_name(cname) then
        argerr(3, "output", "condition: condition name or handle expected, got " .. show(opts.condition))
      end
      out.Condition = cname
    end
  end
  add(self._outputs, name, out)
  return self
end

-- ---------------------------------------------------------------------------
-- Output
-- ---------------------------------------------------------------------------

local function same(v) return v end

local function ordered_section(sec, each, copy)
  if #sec.order == 0 then return nil end
  local out = {}
  local values = sec.values
  local names = sec.order
  for i = 1, #names do
    local name = names[i]
    out[name] = each(copy(values[name]))
  end
  return util.ordered(out, sec.order)
end

local function ordered_parameter(p) return util.ordered(p, M.PARAMETER_ORDER) end
local function ordered_rule(r) return util.ordered(r, { "RuleCondition", "Assertions" }) end
local function ordered_resource(r) return util.ordered(r, M.RESOURCE_ORDER) end
local function ordered_output(o) return util.ordered(o, M.OUTPUT_ORDER) end

-- A template whose tables were handed over by to_table({consume = true}).
local Spent = { __name = "lumu.cfn.Template" }
Spent.__index = function(_, k)
  if type(k) == "string" and Template[k] ~= nil then
    return function()
      util.raise("calling '" .. k .. "' on a cfn template that to_table({consume = true}) used up")
    end
  end
  return nil
end
Spent.__tostring = function() return "cfn template (used up)" end

--- t:to_table([{consume = true}]) -> a fresh template table (ordered for
-- lumu.json/lumu.yaml).  consume: hand over the template's own tables
-- instead of copies, and make t unusable.
function Template:to_table(opts)
  check_self(self, "to_table")
  local copy = util.copy
  if opts ~= nil then
    if type(opts) ~= "table" then argerr(1, "to_table", "table expected, got " .. show(opts)) end
    for k in pairs(opts) do
      if k ~= "consume" then argerr(1, "to_table", "unknown option " .. show(k) .. " (consume)") end
    end
    if opts.consume then copy = same end
  end
  local t = { AWSTemplateFormatVersion = self._version, Description = self._description }
  t.Metadata = ordered_section(self._metadata, same, copy)
  local tr = self._transforms
  if #tr == 1 then
    t.Transform = tr[1]
  elseif #tr > 1 then
    t.Transform = util.array(table.move(tr, 1, #tr, 1, {}))
  end
  t.Parameters = ordered_section(self._parameters, ordered_parameter, copy)
  t.Mappings = ordered_section(self._mappings, same, copy)
  t.Conditions = ordered_section(self._conditions, same, copy)
  t.Rules = ordered_section(self._rules, ordered_rule, copy)
  t.Resources = ordered_section(self._resources, ordered_resource, copy) or util.ordered({}, {})
  t.Outputs = ordered_section(self._outputs, ordered_output, copy)
  if copy == same then
    for k in pairs(self) do rawset(self, k, nil) end
    setmetatable(self, Spent)
  end
  return util.ordered(t, M.TOP_ORDER)
end

--- t:to_json([{pretty = true|false|n}]) -> string (default pretty, 2 spaces)
function Template:to_json(opts)
  check_self(self, "to_json")
  if opts ~= nil and type(opts) ~= "table" then argerr(1, "to_json", "table expected, got " .. show(opts)) end
  opts = opts or {}
  local json = util.require_json("to_json")
  local pretty = opts.pretty
  if pretty == nil then pretty = true end
  return json.encode(self:to_table(), { pretty = pretty, sort_keys = true })
end

--- t:to_yaml([{cfn_short = true}]) -> string
function Template:to_yaml(opts)
  check_self(self, "to_yaml")
  if opts ~= nil and type(opts) ~= "table" then argerr(1, "to_yaml", "table expected, got " .. show(opts)) end
  opts = opts or {}
  local ok, yaml = pcall(require, "lumu.yaml")
  if not ok then util.raise("to_yaml: the lumu.yaml module is not available") end
  return yaml.dump(self:to_table(), { cfn_short = opts.cfn_short and true or false })
end

--- t:check([opts]) -> problems (see cfn.check)
function Template:check(opts)
  check_self(self, "check")
  return require("lumu.cfn.check").check(self:to_table(), opts)
end

--- t:get(section, name) -> a copy of a declared entry, or nil
-- section: "resource", "parameter", "output", "condition", "mapping".
function Template:get(kind, name)
  check_self(self, "get")
  local sec = ({ resource = self._resources, parameter = self._parameters, output = self._outputs,
    condition = self._conditions, mapping = self._mappings })[kind]
  if not sec then argerr(1, "get", "resource, parameter, output, condition or mapping expected, got " .. show(kind)) end
  return util.copy(sec.values[name])
end

Template.__tostring = function(t)
  return "cfn template (" .. #t._resources.order .. " resources)"
end

return M
