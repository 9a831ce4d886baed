--- Human-readable rendering of Lua values (REPL output, test failures).
--
-- pretty.format(value [, opts]) -> string
--   opts.depth  (default 6)    nesting shown before "{...}"
--   opts.indent (default "  ") indentation; false renders on one line
--   opts.width  (default 72)   tables shorter than this stay on one line
-- Keys are sorted (numbers first, then strings, then the rest by type), array
-- parts are shown without keys, cycles print as "<cycle>", strings are quoted
-- with %q so control characters are visible.
local M = {}

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not
  or repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    if ta == "number" then return true end
    if tb == "number" then return false end
    return ta < tb
  end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function scalar(v)
  local t = type(v)
  if t == "string" then
    return (string.format("%q", v):gsub("\\\n", "\\n"))
  elseif t == "number" then
    if math.type(v) == "float" and v == math.floor(v) and v > -1e15 and v < 1e15 then
      return string.format("%.1f", v)
    end
    return tostring(v)
  end
  return tostring(v)
end

local function render(v, opts, level, seen)
  if type(v) ~= "table" then return scalar(v) end
  if seen[v] then return "<cycle>" end
  local mt = getmetatable(v)
  if mt and mt.__tostring and not mt.__pretty_raw then return tostring(v) end
  if level >= opts.depth then return "{...}" end
  seen[v] = true
  local n = #v
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_order)
  local parts = {}
  for i = 1, n do parts[#parts + 1] = render(v[i], opts, level + 1, seen) end
  for _, k in ipairs(keys) do
    local ks
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then
      ks = k
    else
      ks = "[" .. render(k, opts, level + 1, seen) .. "]"
    end
    parts[#parts + 1] = ks .. " = " .. render(v[k], opts, level + 1, seen)
  end
  seen[v] = nil
  if #parts == 0 then return "{}" end
  local flat = "{ " .. table.concat(parts, ", ") .. " }"
  if not opts.indent or (#flat <= opts.width and not flat:find("\n")) then return flat end
  local pad = string.rep(opts.indent, level + 1)
  return "{\n" .. pad .. table.concat(parts, ",\n" .. pad) .. "\n" .. string.rep(opts.indent, level) .. "}"
end

function M.format(v, opts)
  opts = opts or {}
  local o = {
    depth = opts.depth or 6,
    indent = opts.indent == nil and "  " or opts.indent,
    width = opts.width or 72,
  }
  return render(v, o, 0, {})
end

return M
