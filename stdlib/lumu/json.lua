--- JSON encoding and decoding (jansson).
--
-- local json = require "lumu.json"
--
-- json.encode(value [, opts]) -> string
--   Raises "json.encode: <path>: <why>" (path like `Resources.Web.Properties.Tags[2]`)
--   for what JSON cannot hold: functions, threads, userdata other than
--   json.null, NaN and infinities, cycles, sparse arrays, tables mixing key
--   kinds, non-string object keys, invalid UTF-8, nesting deeper than 1000.
--   opts.pretty    false (default): compact, no spaces; true: 2-space indent;
--                  an integer 1..31: that indent.  Pretty output ends with "\n".
--   opts.sort_keys true (default): object keys in byte order (deterministic);
--                  false: traversal order.
--   opts.ascii     true: escape non-ASCII characters as \uXXXX.
--   Tables: keys exactly 1..n (n > 0) make an array; only string keys (or no
--   keys) make an object, so an empty plain table is `{}`.  Integer keys are
--   never turned into strings: {[1]="a", [3]="b"} is a "sparse array" error and
--   {1, x=2} a "cannot encode a table with key 1" error.  A metatable with
--   `__jsontype = "array" | "object"` (json.array_mt / json.object_mt) forces
--   the kind, so empty ones encode as `[]` / `{}`.  A metatable's `__jsonorder`
--   list of key names puts those keys first in that order (see json.ordered).
--   nil (top level only) and json.null encode as null.  Integers stay integers;
--   floats are written with the smallest precision that round-trips every
--   float of the document (so 0.1 stays "0.1" unless another float needs 17
--   digits), and integral floats keep a ".0" (3.0 -> "3.0").
--
-- json.decode(string [, opts]) -> value | nil, "line:col: message"
--   Any JSON value is accepted at the top level.  null -> json.null; arrays and
--   objects get json.array_mt / json.object_mt, so json.encode(json.decode(s))
--   keeps null, [] and {}.  Integers become Lua integers, numbers with a
--   fraction or exponent floats ("1.0" -> 1.0); integers outside the 64-bit
--   range are an error ("too big integer").  "\u0000" in strings is kept.
--   Duplicate object keys: the last one wins, unless opts.reject_duplicates.
--   Malformed input, invalid UTF-8 and nesting deeper than 1000 return
--   nil, "line:col: message"; a non-string argument raises.
--
-- json.null                     the null sentinel (same value as yaml.null);
--                               tostring(json.null) == "null"
-- json.array_mt, json.object_mt the marker metatables (shared with lumu.yaml)
-- json.array([t]) -> t          marks t (default: a new table) as an array
-- json.object([t]) -> t         marks t (default: a new table) as an object
-- json.ordered(t, keys) -> t    marks t as an object whose keys listed in `keys`
--                               come first, in that order; the rest follow
--                               sorted (CloudFormation's section order)
-- json.is_null(v) -> boolean
-- json.kind(v) -> "null"|"array"|"object"|"string"|"number"|"boolean"|nil
--   what v encodes as (nil for values that cannot be encoded).  Tables without
--   a marker: "array" if they have keys 1..n, otherwise "object".
--
-- json.array/object/ordered raise if t has a metatable that is not a JSON
-- marker (its behaviour would be lost).
local core = require "lumu._json"

local M = {
  null = core.null,
  array_mt = core.array_mt,
  object_mt = core.object_mt,
  encode = core.encode,
  decode = core.decode,
}

local function check_mark(fname, t)
  if t == nil then return {} end
  if type(t) ~= "table" then
    error(string.format("bad argument #1 to '%s' (table expected, got %s)", fname, type(t)), 3)
  end
  local mt = getmetatable(t)
  if mt ~= nil and (type(mt) ~= "table" or rawget(mt, "__jsontype") == nil) then
    error(string.format("bad argument #1 to '%s' (table already has a metatable)", fname), 3)
  end
  return t
end

function M.array(t)
  return setmetatable(check_mark("array", t), core.array_mt)
end

function M.object(t)
  return setmetatable(check_mark("object", t), core.object_mt)
end

function M.ordered(t, keys)
  t = check_mark("ordered", t)
  if type(keys) ~= "table" then
    error(string.format("bad argument #2 to 'ordered' (table expected, got %s)", type(keys)), 2)
  end
  for i, k in ipairs(keys) do
    if type(k) ~= "string" then
      error(string.format("bad argument #2 to 'ordered' (key %d is a %s, string expected)", i, type(k)), 2)
    end
  end
  return setmetatable(t, { __jsontype = "object", __jsonorder = keys })
end

function M.is_null(v)
  return v == core.null
end

function M.kind(v)
  local t = type(v)
  if v == core.null then return "null" end
  if t == "string" or t == "boolean" then return t end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil end
    return t
  end
  if t ~= "table" then return nil end
  local mt = getmetatable(v)
  local jt = type(mt) == "table" and rawget(mt, "__jsontype") or nil
  if jt == "array" or jt == "object" then return jt end
  if next(v) ~= nil and rawlen(v) > 0 and rawget(v, 1) ~= nil then
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    if n == rawlen(v) then return "array" end
  end
  return "object"
end

return M
