-- Shared by the golden specs (synth_golden_spec, org_golden_spec) and
-- nag_generated_spec (sink):
-- dofile(HERE .. "/golden.lua") -> M.
--   M.sink()                 an output stream collecting text (:text())
--   M.esc(s)                 s as a literal Lua pattern
--   M.tree(dir)              every file below dir, relative, sorted
--   M.first_difference(a, b) -> line, line of a, line of b
--   M.regenerate(dir, files) rewrite dir as exactly files {relpath -> text}
--   M.compare(dir, files, spec)  raises naming the first differing file and
--                            line, and how to regenerate with spec
local fs = require "lumu.fs"

local M = {}

function M.sink()
  local buf = {}
  return { write = function(self, ...)
    for _, s in ipairs({ ... }) do buf[#buf + 1] = tostring(s) end
    return self
  end, text = function() return table.concat(buf) end }
end

function M.esc(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

function M.tree(dir)
  local out = {}
  for p, kind in fs.walk(dir) do
    if kind ~= "directory" then out[#out + 1] = p:sub(#dir + 2) end
  end
  table.sort(out)
  return out
end

function M.first_difference(a, b)
  local line, ia, ib = 1, 1, 1
  while true do
    local ea = a:find("\n", ia, true) or #a + 1
    local eb = b:find("\n", ib, true) or #b + 1
    local la, lb = a:sub(ia, ea - 1), b:sub(ib, eb - 1)
    if la ~= lb or ea > #a or eb > #b then return line, la, lb end
    ia, ib, line = ea + 1, eb + 1, line + 1
  end
end

function M.regenerate(dir, files)
  if fs.isdir(dir) then assert(fs.rmtree(dir)) end
  for name, text in pairs(files) do
    assert(fs.mkdir(fs.dirname(dir .. "/" .. name)))
    assert(fs.write(dir .. "/" .. name, text))
  end
end

function M.compare(dir, files, spec)
  for _, name in ipairs(M.tree(dir)) do
    local want = assert(fs.read(dir .. "/" .. name))
    local have = files[name] or ""
    if want ~= have then
      local line, w, g = M.first_difference(want, have)
      error(string.format("%s/%s differs at line %d:\n  golden: %s\n  synth:  %s\n(if intended, regenerate: "
        .. "LUMU_GOLDEN_UPDATE=1 build/lumu test %s)", dir, name, line, w, g, spec), 0)
    end
  end
end

return M
