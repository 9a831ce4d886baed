--- fuzz_json driver: lumu.json decode -> encode round trips (compact, and
-- one of pretty, unsorted, ASCII), decode with reject_duplicates, and
-- yaml.dump of the decoded value read back by yaml.load (convert.c's walk).
local util = dofile((...) .. "/util.lua")
local json = require "lumu.json"
local yaml = require "lumu.yaml"

local ENCODINGS = { {}, { pretty = true }, { pretty = 3, sort_keys = false }, { ascii = true } }

return function(s)
  local v, err = json.decode(s)
  local strict, serr = json.decode(s, { reject_duplicates = true })
  if v == nil then
    util.assert_string(err, "decode error")
    if strict ~= nil then error("reject_duplicates accepted what decode rejected: " .. err) end
    return
  end
  if strict == nil then
    if not serr:find("duplicate", 1, true) then error("strict decode failed otherwise: " .. serr) end
  else
    util.assert_same(v, strict, "strict decode")
  end
  -- compact, and one other encoding per input (chosen by its length)
  for _, opts in ipairs({ ENCODINGS[1], ENCODINGS[#s % (#ENCODINGS - 1) + 2] }) do
    local text = json.encode(v, opts) -- a decoded value always encodes
    local back, berr = json.decode(text)
    if back == nil then error("encode output does not decode: " .. berr) end
    util.assert_same(v, back, "json round trip")
  end
  local kind = json.kind(v)
  if kind == nil then error("decoded value has no kind") end
  local y = yaml.dump(v)
  local back, berr = yaml.load(y)
  if back == nil then error("yaml.dump output does not load: " .. berr .. "\n" .. y) end
  util.assert_same(v, back, "yaml round trip")
end
