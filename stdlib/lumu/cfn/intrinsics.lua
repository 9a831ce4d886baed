--- CloudFormation intrinsic function helpers and pseudo parameters.
-- Part of lumu.cfn (documented there); every helper returns a fresh plain
-- table and raises "bad argument ..." at the caller's line on misuse.
local util = require "lumu.cfn.util"
util.own(debug.getinfo(1, "S").source)

local argerr, is_handle, intrinsic = util.argerr, util.is_handle, util.intrinsic

local M = {}

-- Pseudo parameter names, by the short name lumu.cfn exposes them under.
M.PSEUDO = {
  AccountId = "AWS::AccountId",
  NotificationARNs = "AWS::NotificationARNs",
  NoValue = "AWS::NoValue",
  Partition = "AWS::Partition",
  Region = "AWS::Region",
  StackId = "AWS::StackId",
  StackName = "AWS::StackName",
  URLSuffix = "AWS::URLSuffix",
}
M.PSEUDO_SET = {}
for _, v in pairs(M.PSEUDO) do M.PSEUDO_SET[v] = true end

-- Handle kinds usable where a value is expected (as a Ref).
local REFABLE = { resource = true, parameter = true }

-- A value argument: any JSON-able Lua value; handles of resources and
-- parameters become Refs. `n`, `fname` for messages. Level: argerr raises at
-- the caller of the API function, so this is called directly from it.
local function value(v, n, fname)
  if v == nil then argerr(n, fname, "value expected, got nil") end
  if is_handle(v) then
    if not REFABLE[util.hget(v, "kind")] then
      argerr(n, fname, "a " .. util.hget(v, "kind") .. " handle cannot be used as a value")
    end
    return { Ref = util.hget(v, "name") }
  end
  local t = type(v)
  if t == "function" or t == "thread" or (t == "userdata" and v ~= util.null) then
    argerr(n, fname, "value expected, got " .. t)
  end
  return v
end

-- A string, or an intrinsic function table (a Ref to a parameter, ...).
local function str_or_fn(v, n, fname)
  if type(v) == "string" then return v end
  if is_handle(v) then return value(v, n, fname) end
  if intrinsic(v) then return v end
  argerr(n, fname, "string or intrinsic function expected, got " .. util.show(v))
end

-- A list (array table) or an intrinsic function that yields one.
local function list_or_fn(v, n, fname)
  if is_handle(v) then return value(v, n, fname) end
  if type(v) == "table" then
    if intrinsic(v) then return v end
    local k = util.kind(v)
    if k == "array" or k == "empty" then return v end
  end
  argerr(n, fname, "list or intrinsic function expected, got " .. util.show(v))
end

-- A name (non-empty string or a handle of the wanted kind).
local function name_arg(v, n, fname, kind)
  if type(v) == "string" then
    if v == "" then argerr(n, fname, "non-empty name expected") end
    return v
  end
  if is_handle(v) and (kind == nil or util.hget(v, "kind") == kind) then
    return util.hget(v, "name")
  end
  argerr(n, fname, (kind or "name") .. " name expected, got " .. util.show(v))
end

-- An integer (or numeric string, or intrinsic) within [lo, hi].
local function int_arg(v, n, fname, lo, hi)
  if type(v) == "table" and intrinsic(v) then return v end
  local i = v
  if type(v) == "string" then i = math.tointeger(tonumber(v)) end
  if math.type(i) == "float" then i = math.tointeger(i) end
  if math.type(i) ~= "integer" then
    argerr(n, fname, "integer expected, got " .. util.show(v))
  end
  if i < lo or (hi and i > hi) then
    argerr(n, fname, string.format("integer in %d..%s expected, got %d", lo, hi or "", i))
  end
  return v
end

-- A condition: a condition function table, {Condition = name}, a condition
-- name (string) or a condition handle.
local function cond_arg(v, n, fname)
  if type(v) == "string" then
    if v == "" then argerr(n, fname, "non-empty condition name expected") end
    return { Condition = v }
  end
  if is_handle(v) then
    if util.hget(v, "kind") ~= "condition" then
      argerr(n, fname, "condition expected, got a " .. util.hget(v, "kind") .. " handle")
    end
    return { Condition = util.hget(v, "name") }
  end
  if intrinsic(v, true) then return v end
  argerr(n, fname, "condition expected, got " .. util.show(v))
end

function M.Ref(name)
  return { Ref = name_arg(name, 1, "Ref") }
end

-- GetAtt(resource, attribute) or GetAtt("Resource.Attribute").
function M.GetAtt(res, attr)
  if attr == nil and type(res) == "string" then
    local r, a = res:match("^([^.]+)%.(.+)$")
    if not r then argerr(1, "GetAtt", "'Resource.Attribute' expected, got " .. util.show(res)) end
    return { ["Fn::GetAtt"] = { r, a } }
  end
  local r = name_arg(res, 1, "GetAtt", is_handle(res) and "resource" or nil)
  if type(attr) == "string" then
    if attr == "" then argerr(2, "GetAtt", "non-empty attribute name expected") end
  elseif not intrinsic(attr) then
    argerr(2, "GetAtt", "attribute name expected, got " .. util.show(attr))
  end
  return { ["Fn::GetAtt"] = { r, attr } }
end

-- Sub(template) or Sub(template, {Var = value, ...}).
function M.Sub(s, vars)
  if type(s) ~= "string" then argerr(1, "Sub", "string expected, got " .. util.show(s)) end
  if vars == nil then return { ["Fn::Sub"] = s } end
  if type(vars) ~= "table" or is_handle(vars) or intrinsic(vars) then
    argerr(2, "Sub", "table of variables expected, got " .. util.show(vars))
  end
  local copy = {}
  for k, v in pairs(vars) do
    if type(k) ~= "string" or k == "" then
      argerr(2, "Sub", "variable names must be non-empty strings, got " .. util.show(k))
    end
    copy[k] = value(v, 2, "Sub")
  end
  return { ["Fn::Sub"] = { s, copy } }
end

function M.Join(delim, list)
  if type(delim) ~= "string" then argerr(1, "Join", "string expected, got " .. util.show(delim)) end
  return { ["Fn::Join"] = { delim, list_or_fn(list, 2, "Join") } }
end

-- Select(index, list): index is 0-based, as in CloudFormation.
function M.Select(index, list)
  return { ["Fn::Select"] = { int_arg(index, 1, "Select", 0), list_or_fn(list, 2, "Select") } }
end

function M.Split(delim, source)
  if type(delim) ~= "string" then argerr(1, "Split", "string expected, got " .. util.show(delim)) end
  return { ["Fn::Split"] = { delim, str_or_fn(source, 2, "Split") } }
end

function M.GetAZs(region)
  if region == nil then region = "" end
  return { ["Fn::GetAZs"] = str_or_fn(region, 1, "GetAZs") }
end

function M.If(cond, a, b)
  return { ["Fn::If"] = { name_arg(cond, 1, "If", is_handle(cond) and "condition" or nil),
    value(a, 2, "If"), value(b, 3, "If") } }
end

function M.Equals(a, b)
  return { ["Fn::Equals"] = { value(a, 1, "Equals"), value(b, 2, "Equals") } }
end

local function conditions(fname, ...)
  local args = table.pack(...)
  if args.n == 1 and type(args[1]) == "table" and not is_handle(args[1])
      and not intrinsic(args[1], true) and util.kind(args[1]) == "array" then
    args = table.pack(table.unpack(args[1]))
  end
  if args.n < 2 or args.n > 10 then
    argerr(1, fname, "2 to 10 conditions expected, got " .. args.n)
  end
  local out = {}
  for i = 1, args.n do out[i] = cond_arg(args[i], i, fname) end
  return out
end

function M.And(...)
  return { ["Fn::And"] = conditions("And", ...) }
end

function M.Or(...)
  return { ["Fn::Or"] = conditions("Or", ...) }
end

function M.Not(c)
  return { ["Fn::Not"] = { cond_arg(c, 1, "Not") } }
end

function M.Condition(name)
  return { Condition = name_arg(name, 1, "Condition", is_handle(name) and "condition" or nil) }
end

function M.ImportValue(name)
  return { ["Fn::ImportValue"] = str_or_fn(name, 1, "ImportValue") }
end

-- FindInMap(map, top, second [, {DefaultValue = v}]) (DefaultValue needs
-- the AWS::LanguageExtensions transform).
function M.FindInMap(map, top, second, opts)
  local m = name_arg(map, 1, "FindInMap", is_handle(map) and "mapping" or nil)
  local args = { m, str_or_fn(top, 2, "FindInMap"), str_or_fn(second, 3, "FindInMap") }
  if opts ~= nil then
    if type(opts) ~= "table" or opts.DefaultValue == nil or next(opts, next(opts)) ~= nil then
      argerr(4, "FindInMap", "{DefaultValue = value} expected")
    end
    args[4] = { DefaultValue = value(opts.DefaultValue, 4, "FindInMap") }
  end
  return { ["Fn::FindInMap"] = args }
end

function M.Base64(v)
  return { ["Fn::Base64"] = str_or_fn(v, 1, "Base64") }
end

-- Cidr(ipBlock, count, cidrBits): count 1..256, cidrBits 1..128.
function M.Cidr(ip, count, bits)
  return { ["Fn::Cidr"] = { str_or_fn(ip, 1, "Cidr"), int_arg(count, 2, "Cidr", 1, 256),
    int_arg(bits, 3, "Cidr", 1, 128) } }
end

-- Length(list) and ToJsonString(value) need AWS::LanguageExtensions.
function M.Length(list)
  return { ["Fn::Length"] = list_or_fn(list, 1, "Length") }
end

function M.ToJsonString(v)
  if type(v) ~= "table" then
    argerr(1, "ToJsonString", "table or intrinsic function expected, got " .. util.show(v))
  end
  return { ["Fn::ToJsonString"] = value(v, 1, "ToJsonString") }
end

-- Transform(name [, parameters]) -> {"Fn::Transform": {Name=, Parameters=}}
function M.Transform(name, params)
  if type(name) ~= "string" or name == "" then
    argerr(1, "Transform", "macro name expected, got " .. util.show(name))
  end
  if params ~= nil and (type(params) ~= "table" or util.kind(params) == "array") then
    argerr(2, "Transform", "table of parameters expected, got " .. util.show(params))
  end
  return { ["Fn::Transform"] = { Name = name, Parameters = params } }
end

--- sub_refs(s) -> list of the names referenced by an Fn::Sub string, in
-- order of appearance: "${Name}" -> "Name", "${Res.Attr}" -> "Res.Attr";
-- "${!Literal}" is skipped, surrounding blanks are trimmed, and a "${" with
-- no closing "}" is literal text.
local find, sub, byte, match = string.find, string.sub, string.byte, string.match
-- bytes %s matches
local SPACE = { [9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [32] = true }
function M.sub_refs(s)
  local out = {}
  local pos = 1
  while true do
    local a = find(s, "${", pos, true)
    if not a then break end
    if byte(s, a + 2) == 33 then -- "!"
      pos = a + 3
    else
      local b = find(s, "}", a + 2, true)
      if not b then break end
      local name = sub(s, a + 2, b - 1)
      if SPACE[byte(name, 1)] or SPACE[byte(name, -1)] then name = match(name, "^%s*(.-)%s*$") end
      out[#out + 1] = name
      pos = b + 1
    end
  end
  return out
end

return M
