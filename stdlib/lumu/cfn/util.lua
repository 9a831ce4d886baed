--- Internal helpers shared by the lumu.cfn modules (not a public API).
local M = {}

-- Nesting limit for walking user data (builder copies, checks): hostile or
-- cyclic tables stop here instead of exhausting the stack.
M.MAX_DEPTH = 200

-- The JSON module is optional for the pure-table parts (builder, checks).
local json_ok, json = pcall(require, "lumu.json")
if not json_ok then json = nil end
M.json = json

function M.require_json(what)
  if not json then
    error(what .. ": the lumu.json module is not available", 3)
  end
  return json
end

M.null = json and json.null or nil

-- C helpers (lumu._cfn: the common cases of freeze, copy and the check
-- walk), when the binary has them.
local core_ok, core = pcall(require, "lumu._cfn")
if not core_ok or type(core) ~= "table" then core = nil end
M.core = core
local c_freeze = core and core.freeze
local c_copy = core and core.copy
local c_intrinsic = core and core.intrinsic
M.use_c = core ~= nil -- false: the Lua versions only (tests compare the two)

-- Handles returned by the template builder (resources, parameters,
-- conditions): a value position holding a handle means "Ref to it".
-- The handle's fields live outside it (weak table), so handles are
-- read-only and pairs() over one finds nothing to encode.
M.Handle = {}
local HANDLES = setmetatable({}, { __mode = "k" })

function M.new_handle(kind, name, typ)
  local h = setmetatable({}, M.Handle)
  HANDLES[h] = { kind = kind, name = name, type = typ }
  return h
end

function M.is_handle(v)
  return v ~= nil and HANDLES[v] ~= nil
end

-- A field (kind, name, type) of a handle.
function M.hget(h, field)
  return HANDLES[h][field]
end

-- A resource/parameter/condition name given as a string or a handle.
function M.name_of(v)
  if type(v) == "string" then return v end
  if M.is_handle(v) then return M.hget(v, "name") end
  return nil
end

-- Logical ids, parameter, output, mapping and condition names.  The same
-- few hundred names are checked over and over (every Ref and GetAtt):
-- the valid ones are remembered.
local VALID_NAMES = {}
function M.valid_name(s)
  if VALID_NAMES[s] then return true end
  if type(s) == "string" and #s > 0 and #s <= 255 and s:find("^%w+$") ~= nil then
    VALID_NAMES[s] = true
    return true
  end
  return false
end

-- The error level of the first stack frame outside the lumu.cfn modules, as
-- seen from the function calling user_level's caller: errors then point at
-- the user's line however deep inside lumu.cfn they are raised.
local OURS = {}
local function is_ours(src)
  return OURS[src] == true
end

-- Each lumu.cfn module registers its chunk name here.
function M.own(source)
  OURS[source] = true
end
M.own(debug.getinfo(1, "S").source)

function M.user_level()
  local level = 3 -- 1 = user_level, 2 = its caller (raises with the result)
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return 1 end
    if not is_ours(info.source) then return level - 1 end
    level = level + 1
  end
end

-- Raise `msg` at the user's line.
function M.raise(msg)
  error(msg, M.user_level())
end

-- "bad argument #n to 'fname' (msg)" raised at the user's line.
function M.argerr(n, fname, msg)
  error(string.format("bad argument #%d to '%s' (%s)", n, fname, msg), M.user_level())
end

-- What a value encodes as: "null", "array", "object", "string", "number",
-- "boolean", or the Lua type for things JSON cannot hold. An empty table
-- without a marker is "empty" (it may stand for [] or {}).
function M.kind(v)
  local t = type(v)
  if t ~= "table" then
    if v ~= nil and v == M.null then return "null" end
    return t
  end
  local mt = getmetatable(v)
  local jt = type(mt) == "table" and rawget(mt, "__jsontype") or nil
  if jt == "array" or jt == "object" then return jt end
  if next(v) == nil then return "empty" end
  local n = rawlen(v)
  if n > 0 and rawget(v, 1) ~= nil then
    local c = 0
    for _ in pairs(v) do c = c + 1 end
    if c == n then return "array" end
  end
  return "object"
end

-- Path building: "Resources.X.Properties.Tags[0].Key" (array indexes are
-- 0-based, like the JSON document they point into).
function M.join(path, key)
  if type(key) == "number" then
    return path .. "[" .. (key - 1) .. "]"
  end
  if path == "" then return tostring(key) end
  return path .. "." .. tostring(key)
end

-- Keys of a table in a deterministic order: numbers first, then strings.
local function key_lt(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    if ta == "number" then return true end
    if tb == "number" then return false end
    return ta < tb
  end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local sort = table.sort
function M.sorted_keys(t)
  local keys, n, mixed = {}, 0, false
  for k in pairs(t) do
    n = n + 1
    keys[n] = k
    if type(k) ~= "string" then mixed = true end
  end
  if n > 1 then
    -- only strings: key_lt is a < b, which sort does without calling Lua
    if mixed then sort(keys, key_lt) else sort(keys) end
  end
  return keys
end

-- Short, quoted rendering of a scalar for messages.
function M.show(v)
  local t = type(v)
  if t == "string" then
    if #v > 60 then v = v:sub(1, 57) .. "..." end
    return "'" .. v .. "'"
  elseif t == "table" then
    local k = M.kind(v)
    if k == "array" then return "a list" end
    if k == "empty" then return "an empty table" end
    return "an object"
  elseif v ~= nil and v == M.null then
    return "null"
  end
  return tostring(v)
end

-- Is `v` a table holding exactly one key that names an intrinsic function
-- ("Ref" or "Fn::..."); returns the key and its argument. `with_condition`
-- also accepts {Condition = name} (valid inside Fn::And/Or/Not and Conditions).
local byte = string.byte
function M.intrinsic(v, with_condition)
  if HANDLES[v] ~= nil then return nil end
  if c_intrinsic and M.use_c then return c_intrinsic(v, with_condition) end
  if type(v) ~= "table" then return nil end
  local k, arg = next(v)
  if type(k) ~= "string" or next(v, k) ~= nil then return nil end
  if k == "Ref" or (with_condition and k == "Condition") then return k, arg end
  local a, b, c, d = byte(k, 1, 4)
  if a == 70 and b == 110 and c == 58 and d == 58 then return k, arg end -- "Fn::"
  return nil
end

-- Edit distance between a and b if it is at most 2, else 3 (a banded
-- Levenshtein: only cells within 2 of the diagonal are computed).
local function distance(a, b)
  local la, lb = #a, #b
  if math.abs(la - lb) > 2 then return 3 end
  local prev = {}
  for j = 0, math.min(lb, 2) do prev[j] = j end
  for i = 1, la do
    local cur = {}
    local lo, hi = math.max(0, i - 2), math.min(lb, i + 2)
    local ca = a:byte(i)
    local rowmin = 3
    for j = lo, hi do
      local v
      if j == 0 then
        v = i
      else
        local cost = (ca == b:byte(j)) and 0 or 1
        v = (prev[j - 1] or 3) + cost
        local up = (prev[j] or 3) + 1
        local left = (cur[j - 1] or 3) + 1
        if up < v then v = up end
        if left < v then v = left end
      end
      if v > 3 then v = 3 end
      cur[j] = v
      if v < rowmin then rowmin = v end
    end
    if rowmin > 2 then return 3 end
    prev = cur
  end
  return prev[lb] or 3
end
M.distance = distance

-- Lower-cased copies of candidate lists, computed once per list.
local lowered = setmetatable({}, { __mode = "k" })

-- The closest candidate to `name` (case-insensitive equality wins, else an
-- edit distance of at most 2), or nil.
function M.suggest(name, candidates)
  if type(name) ~= "string" or #name > 100 then return nil end
  local low = lowered[candidates]
  if not low then
    low = {}
    for i, c in ipairs(candidates) do low[i] = type(c) == "string" and c:lower() or "" end
    lowered[candidates] = low
  end
  local lname = name:lower()
  local best, bestd
  for i, c in ipairs(candidates) do
    local lc = low[i]
    if lc == lname and type(c) == "string" then return c end
    if lc ~= "" then
      local d = distance(lname, lc)
      if d <= 2 and (not bestd or d < bestd or (d == bestd and c < best)) then
        best, bestd = c, d
      end
    end
  end
  return best
end

function M.did_you_mean(name, candidates)
  local s = M.suggest(name, candidates)
  return s and (" (did you mean '" .. s .. "'?)") or ""
end

-- A JSON marker metatable (json.array_mt / object_mt / json.ordered)?
local function is_marker(mt)
  return type(mt) == "table" and rawget(mt, "__jsontype") ~= nil
end
M.is_marker = is_marker

-- Mark `t` as an object whose `keys` come first, in that order: the
-- metatable json.ordered sets (without its argument checks: our callers pass
-- fresh tables and lists of strings).
function M.ordered(t, keys)
  return setmetatable(t, { __jsontype = "object", __jsonorder = keys })
end

function M.array(t)
  if json then return json.array(t) end
  return setmetatable(t, { __jsontype = "array" })
end

-- Copy user data into the template: handles of resources and parameters
-- become Refs, JSON marker metatables are kept, and anything JSON cannot
-- hold (functions, cycles, NaN, other metatables, odd keys, nesting deeper
-- than MAX_DEPTH) raises "bad argument #n to 'fname' (<path>: why)".
local huge = math.huge
function M.freeze(v, n, fname, path)
  if c_freeze and M.use_c then
    local r = c_freeze(v, HANDLES, M.MAX_DEPTH)
    if r ~= nil then return r end
  end
  local onpath = {}
  -- keys[d] is the key under which the table at depth d + 1 sits; the path
  -- string is only built for an error message.
  local keys = {}
  local function fail(depth, why)
    local p = path or ""
    for i = 1, depth - 1 do p = M.join(p, keys[i]) end
    M.argerr(n, fname, (p ~= "" and (p .. ": ") or "") .. why)
  end
  local null = M.null
  local copy
  -- x: any value (at depth `depth`); returns its frozen copy
  local function value(x, depth)
    local t = type(x)
    if t == "string" or t == "boolean" then return x end
    if t == "number" then
      if x ~= x or x == huge or x == -huge then fail(depth, "NaN or infinity cannot be encoded") end
      return x
    end
    if x ~= nil and x == null then return x end
    if t ~= "table" then fail(depth, t .. " values cannot be encoded") end
    return copy(x, depth)
  end
  function copy(x, depth)
    local h = HANDLES[x]
    if h then
      local kind = h.kind
      if kind ~= "resource" and kind ~= "parameter" then
        fail(depth, "a " .. kind .. " handle cannot be used as a value")
      end
      return { Ref = h.name }
    end
    if onpath[x] then fail(depth, "cycle in table") end
    if depth > M.MAX_DEPTH then fail(depth, "nested too deeply (more than " .. M.MAX_DEPTH .. " levels)") end
    local mt = getmetatable(x)
    if mt ~= nil and not is_marker(mt) then fail(depth, "tables with a metatable cannot be encoded") end
    onpath[x] = true
    local out = {}
    local d1 = depth + 1
    for k, val in pairs(x) do
      if type(k) ~= "string" and math.type(k) ~= "integer" then
        fail(depth, "key " .. M.show(k) .. " cannot be encoded (string or integer keys only)")
      end
      local tv = type(val)
      if tv == "string" or tv == "boolean" then
        out[k] = val
      else
        keys[depth] = k
        if tv == "table" then
          out[k] = copy(val, d1)
        else
          out[k] = value(val, d1)
        end
      end
    end
    onpath[x] = nil
    if mt ~= nil then setmetatable(out, mt) end
    return out
  end
  return value(v, 1)
end

-- Plain structural copy of frozen data (keeps marker metatables).
local function copy(x)
  local out = {}
  for k, v in next, x do
    if type(v) == "table" then v = copy(v) end
    out[k] = v
  end
  local mt = getmetatable(x)
  if mt ~= nil then setmetatable(out, mt) end
  return out
end

function M.copy(x)
  if type(x) ~= "table" then return x end
  if c_copy and M.use_c then return c_copy(x) end
  return copy(x)
end

-- Template parameter types.
local AWS_PARAM_TYPES = {}
for s in ([[AWS::EC2::AvailabilityZone::Name AWS::EC2::Image::Id AWS::EC2::Instance::Id
  AWS::EC2::KeyPair::KeyName AWS::EC2::SecurityGroup::GroupName AWS::EC2::SecurityGroup::Id
  AWS::EC2::Subnet::Id AWS::EC2::Volume::Id AWS::EC2::VPC::Id AWS::Route53::HostedZone::Id]]):gmatch("%S+") do
  AWS_PARAM_TYPES[s] = true
end

function M.valid_param_type(t)
  if type(t) ~= "string" then return false end
  if t == "String" or t == "Number" or t == "List<Number>" or t == "CommaDelimitedList"
      or t == "AWS::SSM::Parameter::Name" or AWS_PARAM_TYPES[t] then
    return true
  end
  local inner = t:match("^List<(.+)>$")
  if inner then return AWS_PARAM_TYPES[inner] == true end
  inner = t:match("^AWS::SSM::Parameter::Value<(.+)>$")
  if inner then
    local li = inner:match("^List<(.+)>$")
    return inner == "String" or inner == "CommaDelimitedList" or li == "String"
      or AWS_PARAM_TYPES[inner] == true or AWS_PARAM_TYPES[li or ""] == true
  end
  return false
end

-- Resource type names: "Org::Service::Resource" (optionally "::MODULE"),
-- "Custom::Name".
local VALID_TYPES = {} -- the valid ones seen (a template uses a few types many times)
function M.valid_resource_type(t)
  if VALID_TYPES[t] then return true end
  if type(t) ~= "string" or #t > 204 then return false end
  local ok = t:find("^%w+::%w+::%w+$") or t:find("^%w+::%w+::%w+::MODULE$")
  if not ok then
    local custom = t:match("^Custom::(.+)$")
    ok = custom ~= nil and #custom <= 60 and custom:find("^[%w_@%-]+$") ~= nil
  end
  if ok then VALID_TYPES[t] = true end
  return ok and true or false
end

return M
