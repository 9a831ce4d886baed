--- fuzz_yaml driver: lumu.yaml load (first document with positions, all
-- documents) -> dump -> load round trip (block, indented/folded or
-- CloudFormation short forms: one per input), then the bytes as mu.yml
-- through lumu.config (parse + validation into the model), formatting every
-- problem reported.
local util = dofile((...) .. "/util.lua")
local yaml = require "lumu.yaml"
local config = require "lumu.config"

local ENV = { FUZZ = "from-env", MU_NAMESPACE = nil }
local function getenv(name) return ENV[name] end

local DUMPS = {
  { nil, "yaml round trip" },
  { { indent = 4, width = 20 }, "yaml round trip (indent 4, width 20)" },
  { { cfn_short = true }, "yaml round trip (cfn_short)" },
}

local function round_trip(v, opts, what)
  local text = yaml.dump(v, opts) -- a loaded value always dumps
  local back, err = yaml.load(text)
  if back == nil then error(what .. ": dump output does not load: " .. err .. "\n" .. text) end
  util.assert_same(v, back, what)
end

return function(s)
  local v, pos = yaml.load(s, { positions = true, filename = "mu.yml" })
  if v == nil then
    util.assert_string(pos, "load error")
    if not pos:find("^mu%.yml:%d+:%d+: ") then error("load error without position: " .. pos) end
  else
    if type(pos) ~= "table" then error("positions missing") end
    -- one dump variant per input (chosen by its length): keeps exec/s up
    local variant = DUMPS[#s % #DUMPS + 1]
    round_trip(v, variant[1], variant[2])
  end
  local docs, derr = yaml.load(s, { all = true })
  if docs == nil then
    util.assert_string(derr, "load all error")
  elseif v ~= nil then
    util.assert_same(v, docs[1] == nil and yaml.null or docs[1], "first of all documents")
  end

  local model, problems = config.load_string(s, { filename = "mu.yml", dir = "/nonexistent/app",
    getenv = getenv, dirname = "app" })
  if model == nil then
    if type(problems) ~= "table" or #problems == 0 then error("config failed without problems") end
  elseif type(model) ~= "table" then
    error("config returned a " .. type(model))
  end
  for _, p in ipairs(problems or {}) do
    local line = config.format_error(p)
    if line:find("\n") then error("multi-line problem: " .. line) end
  end
end
