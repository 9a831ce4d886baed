--- fuzz_nag driver: the CloudFormation template reader of `lumu nag`
-- (lumu.nag.load: JSON or YAML by sniffing, positions) and nag.scan with the
-- built-in rules, formatted as text, json and sarif.
local nag = require "lumu.nag"
local load = require "lumu.nag.load"
local json = require "lumu.json"

local RULES = nag.builtin_rules()

local function scan(t, map, name)
  local results = nag.scan(t, { filename = name, positions = map, rules = RULES })
  local f, w, sup = nag.counts(results)
  if math.type(f) ~= "integer" or math.type(w) ~= "integer" or math.type(sup) ~= "integer" then
    error("counts are not integers")
  end
  for _, fmt in ipairs({ "text", "json", "sarif" }) do
    local out = nag.format(results, fmt)
    if type(out) ~= "string" then error("format " .. fmt .. " returned " .. type(out)) end
    if fmt ~= "text" and json.decode(out) == nil then error("format " .. fmt .. " is not JSON") end
  end
end

return function(s)
  local names = { "template.template" }
  if s:match("^%s*{") then names[2] = "template.yaml" end -- JSON is YAML too
  for _, name in ipairs(names) do
    local t, map = load.parse(s, name)
    if t == nil then
      if type(map) ~= "string" then error("parse failed without a message") end
    elseif nag.is_template(t) then
      scan(t, map, name)
    end
  end
end
