-- Golden test of the landing-zone example (scripts/org-example/lumu.lua):
-- `lumu synth` must write exactly the files under tests/golden/org-example/
-- (templates, parameters, tags, assets/, README.txt, synth.stdout and
-- synth.stderr), byte for byte, plus accounts.txt: where each stack is
-- deployed (descriptor.account, profile, role).  lumu's version is pinned to
-- a marker and stored as @VERSION@; git detection is off.  The mu.yml form
-- of the example must give the same files.
--
-- After a deliberate change, regenerate from the repository root:
--   LUMU_GOLDEN_UPDATE=1 build/lumu test tests/lua/org_golden_spec.lua
-- (tests/lua/synth_golden_spec.lua owns the other goldens).
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local golden = dofile(HERE .. "/golden.lua")
local sink, esc, tree = golden.sink, golden.esc, golden.tree
local fs = require "lumu.fs"
local json = require "lumu.json"
local cmd = require "lumu.cli.synth"
local config = require "lumu.config"
local synth = require "lumu.synth"

local MARKER = "0.0.0-golden"
local GOLDEN = "tests/golden/org-example"
local CONFIG = "scripts/org-example/lumu.lua"

-- stack -> account/profile/role, one line each, in plan order
local function accounts(path)
  local m = assert(config.load(path, { getenv = function() end }))
  local lines = {}
  for _, d in ipairs((synth.plan(m, {}))) do
    lines[#lines + 1] = string.format("%-34s %-12s %-16s %s", d.name, d.account or "-", d.profile or "-",
      d.role or "-")
  end
  return table.concat(lines, "\n") .. "\n"
end

local function synthesise(path)
  local version = require "lumu.version"
  local real = version.version
  local dir = assert(fs.tmpdir("lumu-org-golden-"))
  local out, err = sink(), sink()
  version.version = MARKER
  local ok, rc, msg = pcall(cmd.run, { stdout = out, stderr = err, git = false }, {},
    { config = path, output = dir .. "/out" })
  local acc = ok and accounts(path) or ""
  version.version = real
  local files = {}
  if fs.isdir(dir .. "/out") then
    for _, name in ipairs(tree(dir .. "/out")) do
      files[name] = (assert(fs.read(dir .. "/out/" .. name)):gsub(esc(MARKER), "@VERSION@"))
    end
  end
  fs.rmtree(dir)
  if not ok then error(rc, 0) end
  files["synth.stdout"] = out.text():gsub(esc(MARKER), "@VERSION@")
  files["synth.stderr"] = err.text():gsub(esc(MARKER), "@VERSION@")
  files["accounts.txt"] = acc
  return files, rc, msg
end

describe("golden: org-example (" .. CONFIG .. ")", function()
  local files, rc, msg = synthesise(CONFIG)

  if os.getenv("LUMU_GOLDEN_UPDATE") == "1" then
    it("regenerates " .. GOLDEN, function()
      assert.are.equal(0, rc, msg)
      golden.regenerate(GOLDEN, files)
    end)
    return
  end

  it("synth succeeds without a warning", function()
    assert.are.equal(0, rc, msg)
    assert.are.equal("", files["synth.stderr"])
  end)

  it("writes exactly the golden file set, byte for byte", function()
    local got = {}
    for name in pairs(files) do got[#got + 1] = name end
    table.sort(got)
    assert.are.same(tree(GOLDEN), got)
    golden.compare(GOLDEN, files, "tests/lua/org_golden_spec.lua")
  end)

  it("the mu.yml form gives the same files", function()
    local yml = synthesise("scripts/org-example/mu.yml")
    local n = 0
    for name, text in pairs(files) do
      if name:match("%.json$") or name == "accounts.txt" then
        n = n + 1
        assert.are.equal(text, yml[name], name)
      end
    end
    assert.is_true(n > 70)
  end)

  it("every stack has an account; the organization, tools and environments where they belong", function()
    local where = {}
    for line in files["accounts.txt"]:gmatch("[^\n]+") do
      local name, acct = line:match("^(%S+)%s+(%S+)")
      where[name] = acct
      assert.are_not.equal("-", acct, name)
    end
    assert.are.equal("100000000000", where["acme-org"])
    assert.are.equal("100000000000", where["acme-product-account-vending"])
    assert.are.equal("200000000000", where["acme-org-logarchive"])
    assert.are.equal("300000000000", where["acme-pipeline-orders"])
    assert.are.equal("400000000000", where["acme-environment-acceptance"])
    assert.are.equal("400000000000", where["acme-pipeline-orders-acceptance"])
    assert.are.equal("400000000000", where["acme-devenv-acceptance"])
    assert.are.equal("500000000000", where["acme-service-orders-production"])
  end)

  it("no template holds a NoEcho value or a password", function()
    for name, text in pairs(files) do
      if name:match("%.json$") then
        assert.is_nil(text:find('"NoEcho"', 1, true), name)
        assert.is_nil(text:find("Password\": \"", 1, true), name)
      end
    end
    assert.is_table(json.decode(files["acme-org.template.json"]).Resources.GuardrailRootUser)
  end)
end)
