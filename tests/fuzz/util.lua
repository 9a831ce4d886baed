--- Helpers shared by the fuzz drivers (tests/fuzz/*.lua).
-- A driver file returns function(input); it raises only for a finding.
local M = {}

--- Deep comparison of two decoded values: same types, math types, values
-- (NaN equals NaN), marker metatables and keys.  -> true | false, "path: why"
function M.same(a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then
    return false, string.format("%s: %s vs %s", path, type(a), type(b))
  end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then
      return false, string.format("%s: %s %s vs %s %s", path, math.type(a), a, math.type(b), b)
    end
    if a ~= a and b ~= b then return true end
    if a ~= b then return false, string.format("%s: %.17g vs %.17g", path, a, b) end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, string.format("%s: %q vs %q", path, tostring(a), tostring(b)) end
    return true
  end
  if getmetatable(a) ~= getmetatable(b) then
    return false, path .. ": different marker metatables"
  end
  for k, v in pairs(a) do
    local ok, why = M.same(v, rawget(b, k), path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if rawget(a, k) == nil then return false, path .. "." .. tostring(k) .. ": missing on the left" end
  end
  return true
end

--- Raises a finding unless a and b are the same.
function M.assert_same(a, b, what)
  local ok, why = M.same(a, b)
  if not ok then error(what .. ": " .. why, 2) end
end

--- Raises a finding unless v is a string.
function M.assert_string(v, what)
  if type(v) ~= "string" then error(what .. ": string expected, got " .. type(v), 2) end
  return v
end

--- Splits s at NUL bytes: "a\0b" -> {"a", "b"}; "" -> {}.
function M.split0(s)
  local out = {}
  if s == "" then return out end
  for piece in (s .. "\0"):gmatch("([^%z]*)%z") do out[#out + 1] = piece end
  return out
end

--- A file-like object that swallows writes (io.stdout/io.stderr stand-in).
M.sink = setmetatable({}, { __index = function(t, k)
  if k == "write" then return function(self) return self end end
  if k == "flush" or k == "close" or k == "setvbuf" then return function() return true end end
  if k == "lines" then return function() return function() return nil end end end
  if k == "read" then return function() return nil end end
  if k == "seek" then return function() return 0 end end
  return rawget(t, k)
end, __name = "FILE*" })

return M
