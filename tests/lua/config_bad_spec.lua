-- The bad-input corpus: every file in tests/fixtures/config/bad/ must fail to
-- load, and each "# expect: LINE" / "-- expect: LINE" at its top must be one
-- of the formatted problem lines exactly.  Plus hostile inputs built here.
local config = require "lumu.config"
local fs = require "lumu.fs"

local DIR = "tests/fixtures/config/bad"

local function no_env() return nil end

local function lines(problems)
  local out = {}
  for _, p in ipairs(problems or {}) do out[#out + 1] = config.format_error(p) end
  return out
end

local function expectations(text)
  local exp = {}
  for line in text:gmatch("[^\n]*") do
    local e = line:match("^# expect: (.*)$") or line:match("^%-%- expect: (.*)$")
    if not e then break end
    exp[#exp + 1] = e
  end
  return exp
end

describe("bad configs", function()
  local names = {}
  for _, name in ipairs(assert(fs.list(DIR))) do
    if fs.isfile(DIR .. "/" .. name) then names[#names + 1] = name end
  end

  it("has at least 40 fixtures, YAML and Lua", function()
    local yml, lua = 0, 0
    for _, n in ipairs(names) do
      if n:match("%.yml$") then yml = yml + 1 elseif n:match("%.lua$") then lua = lua + 1 end
    end
    assert.is_true(yml + lua >= 40, "only " .. (yml + lua) .. " fixtures")
    assert.is_true(yml >= 20 and lua >= 10)
  end)

  for _, name in ipairs(names) do
    it(name, function()
      local text = assert(fs.read(DIR .. "/" .. name))
      local exp = expectations(text)
      assert.is_true(#exp > 0, name .. " has no expect line")
      local model, problems = config.load_string(text, {
        filename = name, dir = DIR, dirname = "fixture", getenv = no_env,
      })
      assert.is_nil(model, name .. " loaded")
      assert.is_table(problems)
      local got = lines(problems)
      for _, e in ipairs(exp) do
        assert.contains(got, e)
      end
      for _, l in ipairs(got) do
        assert.is_nil(l:find("\n", 1, true)) -- one line each
      end
    end)
  end
end)

describe("hostile input", function()
  local function fails(text, opts)
    opts = opts or {}
    opts.getenv = opts.getenv or no_env
    opts.dirname = "fixture"
    local m, p = config.load_string(text, opts)
    assert.is_nil(m)
    return lines(p)
  end

  it("YAML nested deeper than the parser allows", function()
    local got = fails(string.rep("[", 5000) .. string.rep("]", 5000))
    assert.are.equal(1, #got)
    assert.matches("^mu%.yml:1:%d+: YAML syntax: ", got[1])
  end)

  it("a huge file is refused before parsing", function()
    local got = fails("# " .. string.rep("x", 17 * 1024 * 1024))
    assert.matches("too large", got[1])
  end)

  it("NUL bytes", function()
    local got = fails("service:\n  name: a\0b\n")
    assert.matches("^mu%.yml:2:%d+: YAML syntax: ", got[1])
  end)

  it("a deeply nested template fragment", function()
    local src = "templates:\n  mu-x:\n" .. string.rep("  ", 2) .. "a: " .. string.rep("[", 300) .. string.rep("]", 300) .. "\n"
    local got = fails(src)
    assert.matches("nested more than 100 levels deep", table.concat(got, "\n"))
  end)

  it("every problem is reported, not just the first", function()
    local got = fails([[
environments:
  - name: a b
    provider: x
    cluster:
      maxSize: many
      minSize: -1
service:
  port: 0
  priority: 0
  protocol: udp
  bogus: 1
]])
    assert.are.equal(8, #got)
    assert.matches("^mu%.yml:2:5: environments%[1%]%.name:", got[1])
    assert.matches("^mu%.yml:6:7: environments%[1%]%.cluster%.minSize: must be at least 0, got %-1$", got[4])
    assert.matches("^mu%.yml:11:3: service: unknown key 'bogus'$", got[8])
  end)

  it("many env variables on one line, and a value with YAML syntax in it", function()
    local m = config.load_string("namespace: " .. string.rep("${env:A}", 50) .. "\n", {
      getenv = function(n) return n == "A" and "x" or nil end, dirname = "fixture",
    })
    assert.are.equal(string.rep("x", 50), m.namespace)
    local got = fails("namespace: ${env:A}\n", { getenv = function(n) return n == "A" and "[" or nil end })
    assert.matches("YAML syntax", got[1])
  end)

  it("a catastrophic stack regex does not hang", function()
    local m = assert(config.load_string("templates:\n  '(a*)*b':\n    Resources: {}\n", { dirname = "fixture", getenv = no_env }))
    assert.is_false(config.stack_matches(m.templates[1], string.rep("a", 40)))
    assert.is_true(config.stack_matches(m.templates[1], "aab"))
  end)

  it("a Lua config with a self-referencing table", function()
    local got = fails([[
local t = {}
t.cluster = t
environment { name = "a", cluster = t }
]], { kind = "lua" })
    assert.are.same({ "lumu.lua:3: environments[1].cluster: unknown key 'cluster'" }, got)
  end)

  it("a Lua config with bad bytes and a binary chunk", function()
    local got = fails("environment { name = '\255' }", { kind = "lua" })
    assert.matches("environments%[1%]%.name: must contain only letters", got[1])
    got = fails(string.dump(function() end), { kind = "lua" })
    assert.matches("Lua syntax: attempt to load a binary chunk", got[1])
  end)
end)
