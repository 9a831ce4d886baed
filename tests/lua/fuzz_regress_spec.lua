--- Replays the saved findings of the Lua fuzz harnesses in the normal build:
-- every file of tests/fuzz/regress/<harness>/ (json, yaml, xml, nag, cli)
-- goes once through the same driver libFuzzer runs (tests/fuzz/<harness>.lua),
-- which raises on a broken invariant.  Run from the repository root (ctest
-- does).  The C harnesses' findings: tests/c/test_fuzzregress.c.
local fs = require "lumu.fs"

local DIR = "tests/fuzz"
local HARNESSES = { "json", "yaml", "xml", "nag", "cli" }
local util = dofile(DIR .. "/util.lua")

local drivers = {}

-- Loads a driver once, keeping the globals it replaces (the cli driver
-- silences io.stdout, io.stderr and print for the fuzzer).
local function driver(h)
  if not drivers[h] then
    local saved_out, saved_err, saved_print, saved_default = io.stdout, io.stderr, print, io.output()
    drivers[h] = assert(loadfile(DIR .. "/" .. h .. ".lua"))(DIR)
    io.stdout, io.stderr, print = saved_out, saved_err, saved_print
    io.output(saved_default)
  end
  return drivers[h]
end

-- Runs f(input) with output silenced (help texts of the cli driver).
local function quietly(f, input)
  local saved_out, saved_err, saved_print = io.stdout, io.stderr, print
  io.stdout, io.stderr, print = util.sink, util.sink, function() end
  local ok, err = pcall(f, input)
  io.stdout, io.stderr, print = saved_out, saved_err, saved_print
  return ok, err
end

-- One ordinary input per driver: keeps the drivers in step with the stdlib.
local SMOKE = {
  json = '{"a":[1,2.5,null,"\\u00e9"],"b":{}}',
  yaml = "namespace: fuzz\nservice:\n  name: web\n  port: 8080\n",
  xml = '<a x="1">t<b>&amp;</b></a>',
  nag = '{"Resources":{"B":{"Type":"AWS::S3::Bucket","Properties":{}}}}',
  cli = "synth\0--help",
}

describe("fuzz drivers", function()
  for _, h in ipairs(HARNESSES) do
    it(h .. " runs on an ordinary input", function()
      local ok, err = quietly(driver(h), SMOKE[h])
      if not ok then error(h .. ": " .. tostring(err), 0) end
      assert.is_true(ok)
    end)
  end
  it("a driver's check raises on a broken invariant", function()
    assert.has_error(function() util.assert_same({ 1 }, { 2 }, "same") end)
  end)
end)

describe("fuzz regressions", function()
  for _, h in ipairs(HARNESSES) do
    local files = fs.list(DIR .. "/regress/" .. h) or {}
    if #files == 0 then pending(h .. ": no saved findings") end
    for _, name in ipairs(files) do
      it(h .. "/" .. name .. " passes the driver's checks", function()
        local input = assert(fs.read(DIR .. "/regress/" .. h .. "/" .. name))
        local ok, err = quietly(driver(h), input)
        if not ok then error(h .. "/" .. name .. ": " .. tostring(err), 0) end
        assert.is_true(ok)
      end)
    end
  end
end)
