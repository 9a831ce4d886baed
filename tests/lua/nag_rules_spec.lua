-- Specs of the built-in nag rules: every rule has a failing fixture
-- (tests/fixtures/nag/rules/<ID>.fail.yaml|json, where each resource or
-- parameter named Bad* violates the rule and each Good* does not) and a
-- passing fixture (<ID>.pass.*, no violation of the rule at all).
local nag = require "lumu.nag"
local fs = require "lumu.fs"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local DIR = here .. "/../fixtures/nag/rules"

local function fixture(id, kind)
  for _, ext in ipairs({ "yaml", "json" }) do
    local p = DIR .. "/" .. id .. "." .. kind .. "." .. ext
    if fs.isfile(p) then return p end
  end
  return nil
end

local function subjects(tpl)
  local names = {}
  for _, section in ipairs({ "Resources", "Parameters" }) do
    for name in pairs(tpl[section] or {}) do names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

local RULES = nag.builtin_rules()

local function scan(path)
  local tpl, pos = nag.load_file(path)
  assert.is_truthy(tpl, pos)
  return tpl, nag.scan(tpl, { filename = path, positions = pos, rules = RULES })
end

describe("nag rule catalogue", function()
  it("has at least 40 rules with unique, well-formed ids", function()
    assert.is_true(#RULES >= 40)
    local seen = {}
    for _, r in ipairs(RULES) do
      assert.is_nil(seen[r.id], "duplicate " .. r.id)
      seen[r.id] = true
      assert.is_true(nag.validate_rule(r))
      assert.matches("^[FW]%d+$", r.id)
    end
  end)

  it("numbers failures F1..Fn and warnings W1..Wn without gaps", function()
    local f, w = {}, {}
    for _, r in ipairs(RULES) do
      local n = tonumber(r.id:sub(2))
      if r.id:sub(1, 1) == "F" then f[n] = true else w[n] = true end
    end
    for i = 1, #f do assert.is_true(f[i], "missing F" .. i) end
    for i = 1, #w do assert.is_true(w[i], "missing W" .. i) end
  end)

  it("lists failures first, then warnings, by number", function()
    local ids = {}
    for i, r in ipairs(RULES) do ids[i] = r.id end
    assert.are.equal("F1", ids[1])
    assert.are.equal("F2", ids[2])
    local failures = 0
    for _, r in ipairs(RULES) do
      if r.severity == "failure" then failures = failures + 1 end
    end
    assert.are.equal("F" .. failures, ids[failures])
    assert.are.equal("W1", ids[failures + 1])
  end)
end)

describe("nag built-in rule fixtures", function()
  for _, rule in ipairs(RULES) do
    it(rule.id .. " reports every Bad* subject of its failing fixture, with a position", function()
      local path = fixture(rule.id, "fail")
      assert.is_truthy(path, "no failing fixture for " .. rule.id)
      local tpl, res = scan(path)
      local hit = {}
      for _, v in ipairs(res.violations) do
        if v.rule == rule.id then
          hit[v.resource] = true
          assert.is_truthy(v.line, rule.id .. " on " .. v.resource .. " has no line")
          assert.is_true(v.line > 0 and v.column > 0)
          assert.is_truthy(v.path:find("^Resources%.") or v.path:find("^Parameters%."), v.path)
          assert.are.equal(rule.severity, v.severity)
          assert.are.equal(path, v.file)
        end
      end
      local bad = 0
      for _, name in ipairs(subjects(tpl)) do
        if name:find("^Bad") then
          bad = bad + 1
          assert.is_true(hit[name] == true, name .. " should violate " .. rule.id)
        end
      end
      assert.is_true(bad > 0, "the fixture has no Bad* subject")
      for name in pairs(hit) do
        assert.is_truthy(name:find("^Bad"), name .. " should not violate " .. rule.id)
      end
    end)

    it(rule.id .. " is silent on its passing fixture", function()
      local path = fixture(rule.id, "pass")
      assert.is_truthy(path, "no passing fixture for " .. rule.id)
      local _, res = scan(path)
      for _, v in ipairs(res.violations) do
        assert.are_not.equal(rule.id, v.rule, v.resource .. ": " .. v.message)
      end
    end)
  end
end)
