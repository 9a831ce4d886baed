-- Specs of `lumu nag` (lumu.cli.nag): paths, options, exit codes, team rules,
-- output formats; the shared corpus; a real process through LUMU_BIN; and,
-- when `lumu synth` exists, the generated stacks of the seed examples.
local cli = require "lumu.cli"
local cmd = require "lumu.cli.nag"
local json = require "lumu.json"
local fs = require "lumu.fs"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIXTURES = here .. "/../fixtures/nag"
local SHARED = os.getenv("LUMU_SHARED") or (here .. "/../../../shared")

local function buffer()
  local parts = {}
  return {
    write = function(self, ...)
      for _, s in ipairs({ ... }) do parts[#parts + 1] = tostring(s) end
      return self
    end,
    text = function() return table.concat(parts) end,
  }
end

-- Runs `lumu nag ARGV...` in-process, like the dispatcher: -> code, stdout, stderr
local function nag(...)
  local argv = { ... }
  local out, err = buffer(), buffer()
  local opts, pos = cli.parse(cmd.options, argv)
  if not opts then return 2, "", pos end
  local r1, r2, r3 = cmd.run({ stdout = out, stderr = err }, pos, opts)
  local code
  if r1 == nil and r2 ~= nil then
    err:write("lumu: ", r2, "\n")
    code = r3 or 1
  elseif math.type(r1) == "integer" then
    code = r1
  else
    code = 0
  end
  return code, out:text(), err:text()
end

local TMP
local function write(name, text)
  local p = TMP .. "/" .. name
  assert(fs.mkdir(fs.dirname(p)))
  assert(fs.write(p, text))
  return p
end

local CLEAN = [[
Resources:
  Topic:
    Type: AWS::SNS::Topic
    Properties: {KmsMasterKeyId: alias/aws/sns}
]]
local WARN_ONLY = [[
Resources:
  Topic:
    Type: AWS::SNS::Topic
]]
local FAILING = [[
Resources:
  Volume:
    Type: AWS::EC2::Volume
    Properties: {AvailabilityZone: us-east-1a, Size: 8}
]]
local SUPPRESSED = [[
Resources:
  Volume:
    Type: AWS::EC2::Volume
    Metadata:
      lumu_nag:
        rules_to_suppress:
          - {id: F29, reason: "scratch volume, wiped at boot"}
    Properties: {AvailabilityZone: us-east-1a, Size: 8}
]]

describe("lumu nag", function()
  before_each(function()
    TMP = assert(fs.tmpdir("nag-cli-"))
  end)
  after_each(function()
    if TMP then fs.rmtree(TMP) end
  end)

  it("has a command table with the documented options", function()
    assert.is_string(cmd.summary)
    assert.matches("lumu nag", cmd.usage, 1, true)
    local names = {}
    for _, o in ipairs(cmd.options) do
      for _, n in ipairs(o) do names[n] = o end
    end
    for _, n in ipairs({ "-o", "--output", "--fail-on-warnings", "--no-suppress", "--rules", "--list-rules",
      "--deny", "--allow", "--help" }) do
      assert.is_truthy(names[n], n)
    end
    assert.are.same({ "text", "json", "sarif" }, names["-o"].choices)
  end)

  it("exits 2 with the usage when no path is given", function()
    local code, out, err = nag()
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("lumu: nag: no template given (usage: lumu nag ", err, 1, true)
  end)

  it("exits 0 on a clean template", function()
    local code, out = nag(write("clean.yaml", CLEAN))
    assert.are.equal(0, code)
    assert.are.equal("1 template scanned: 0 failures, 0 warnings, 0 suppressed\n", out)
  end)

  it("exits 0 on warnings, 1 with --fail-on-warnings", function()
    local p = write("warn.yaml", WARN_ONLY)
    local code, out = nag(p)
    assert.are.equal(0, code)
    assert.matches(p .. ": Topic: W21 [WARN] SNS topic is not encrypted with a KMS key: KmsMasterKeyId is not set (line 2,",
      out, 1, true)
    assert.are.equal(1, (nag("--fail-on-warnings", p)))
  end)

  it("exits 1 on failures", function()
    local p = write("fail.yaml", FAILING)
    local code, out = nag(p)
    assert.are.equal(1, code)
    assert.matches(p .. ": Volume: F29 [FAIL] EBS volume is not encrypted", out, 1, true)
  end)

  it("honours suppressions, and ignores them with --no-suppress", function()
    local p = write("sup.yaml", SUPPRESSED)
    local code, out = nag(p)
    assert.are.equal(0, code)
    assert.matches("Volume: F29 [SUPPRESSED] EBS volume is not encrypted", out, 1, true)
    assert.matches("reason (lumu_nag): scratch volume, wiped at boot", out, 1, true)
    code, out = nag("--no-suppress", p)
    assert.are.equal(1, code)
    assert.matches("Volume: F29 [FAIL]", out, 1, true)
    assert.matches("0 suppressed", out, 1, true)
  end)

  it("fails a suppression without a reason", function()
    local p = write("noreason.yaml", (SUPPRESSED:gsub(', reason: "scratch volume, wiped at boot"', "")))
    local code, out = nag(p)
    assert.are.equal(1, code)
    assert.matches("Volume: F37 [FAIL] Suppression is malformed or has no reason: suppression of F29 has no reason", out, 1, true)
    assert.matches("Volume: F29 [FAIL]", out, 1, true)
  end)

  it("exits 2 on a missing path, a bad format or a bad rule id", function()
    local code, _, err = nag(TMP .. "/missing.yaml")
    assert.are.equal(2, code)
    assert.matches("missing.yaml: No such file or directory", err, 1, true)
    code, _, err = nag("-o", "xml", write("a.yaml", CLEAN))
    assert.are.equal(2, code)
    assert.matches("unknown output format 'xml' (text, json or sarif)", err, 1, true)
    code, _, err = nag("--deny", "F1,F999", TMP .. "/a.yaml")
    assert.are.equal(2, code)
    assert.matches("unknown rule id 'F999'", err, 1, true)
    code, _, err = nag("--bogus")
    assert.are.equal(2, code)
    assert.matches("unknown option '--bogus'", err, 1, true)
  end)

  it("exits 2 on an unreadable template, with file:line:col", function()
    local p = write("broken.yaml", "Resources:\n  A: [\n")
    local code, out, err = nag(p)
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("^lumu: nag: " .. p:gsub("%p", "%%%0") .. ":%d+:%d+: ", err)
    p = write("broken.json", '{"Resources": {"A": }}')
    code, _, err = nag(p)
    assert.are.equal(2, code)
    assert.matches("broken.json:1:%d+: ", err)
  end)

  it("exits 2 on a file that is not a template, when named explicitly", function()
    local p = write("buildspec.yml", "version: 0.2\nphases: {}\n")
    local code, _, err = nag(p)
    assert.are.equal(2, code)
    assert.matches("not a CloudFormation template (no Resources section)", err, 1, true)
  end)

  it("searches directories recursively, skipping non-templates and hidden entries", function()
    write("stacks/a.yaml", FAILING)
    write("stacks/deep/b.template", '{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}')
    write("stacks/c.json", '{"Resources": {"T": {"Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": "k"}}}}')
    write("stacks/buildspec.yml", "version: 0.2\n")
    write("stacks/k8s.yml", "? [a, b]\n: c\n")
    write("stacks/.hidden/x.yaml", FAILING)
    write("stacks/node_modules/y.yaml", FAILING)
    write("stacks/notes.txt", "Resources: no")
    local code, out, err = nag(TMP .. "/stacks")
    assert.are.equal(1, code)
    assert.matches("3 templates scanned: 1 failure, 1 warning, 0 suppressed", out, 1, true)
    assert.matches("stacks/a.yaml: Volume: F29", out, 1, true)
    assert.matches("stacks/deep/b.template: T: W21", out, 1, true)
    assert.is_nil(out:find(".hidden", 1, true))
    assert.is_nil(out:find("node_modules", 1, true))
    assert.matches("warning: skipped " .. TMP .. "/stacks/k8s.yml:", err, 1, true)
  end)

  it("reports a broken template in a directory but still scans the others", function()
    write("d/good.yaml", FAILING)
    write("d/bad.yaml", "AWSTemplateFormatVersion: '2010-09-09'\nResources: [\n")
    local code, out, err = nag(TMP .. "/d")
    assert.are.equal(2, code)
    assert.matches("d/good.yaml: Volume: F29", out, 1, true)
    assert.matches("lumu: nag: " .. TMP .. "/d/bad.yaml:", err, 1, true)
  end)

  it("exits 2 for a directory without templates", function()
    write("empty/buildspec.yml", "version: 0.2\n")
    local code, _, err = nag(TMP .. "/empty")
    assert.are.equal(2, code)
    assert.matches("no CloudFormation templates found", err, 1, true)
    assert(fs.mkdir(TMP .. "/nothing"))
    code, _, err = nag(TMP .. "/nothing")
    assert.are.equal(2, code)
    assert.matches("no templates (*.json, *.yaml, *.yml, *.template) found", err, 1, true)
  end)

  it("runs only --deny rules and skips --allow rules", function()
    local p = FIXTURES .. "/rules/F1.fail.yaml"
    local code, out = nag("--deny", "F1", p)
    assert.are.equal(1, code)
    for line in out:gmatch("[^\n]+") do
      if not line:find("templates? scanned") then assert.matches(": F1 %[FAIL%]", line) end
    end
    code, out = nag("--allow", "F1,W3", "--allow", "W4", p)
    assert.is_nil(out:find(": F1 [", 1, true))
    assert.is_nil(out:find(": W3 [", 1, true))
    assert.is_nil(out:find(": W4 [", 1, true))
    assert.are.equal(0, code)
  end)

  it("loads team rules with --rules and lists them", function()
    write("rules/owner.lua", [[
return {
  id = "W1001", severity = "warning", message = "Topic has no Owner tag",
  reason = "every resource needs an owner", types = { "AWS::SNS::Topic" },
  check = function(r)
    local tags = r.Properties and r.Properties.Tags or {}
    for _, t in ipairs(tags) do if t.Key == "Owner" then return nil end end
    return { { path = { "Properties", "Tags" } } }
  end,
}]])
    local p = write("clean.yaml", CLEAN)
    local code, out = nag("--rules", TMP .. "/rules", p)
    assert.are.equal(0, code)
    assert.matches("Topic: W1001 [WARN] Topic has no Owner tag", out, 1, true)
    assert.are.equal(1, (nag("--rules", TMP .. "/rules", "--fail-on-warnings", p)))
    code, out = nag("--rules", TMP .. "/rules", "--list-rules")
    assert.are.equal(0, code)
    assert.matches("W1001 [WARN] Topic has no Owner tag (AWS::SNS::Topic; from " .. TMP .. "/rules/owner.lua)", out, 1, true)
    -- a broken rule file is a usage error naming the file
    write("badrules/x.lua", "return { id = 'W1002' }")
    local err
    code, _, err = nag("--rules", TMP .. "/badrules", p)
    assert.are.equal(2, code)
    assert.matches(TMP .. "/badrules/x.lua: rule #1 (W1002): 'severity' must be", err, 1, true)
    -- a rule that raises while checking is reported, not a crash
    write("crash/c.lua", [[return { id = "W1003", severity = "warning", message = "m", reason = "r",
      types = { "*" }, check = function() error("kaputt") end }]])
    code, _, err = nag("--rules", TMP .. "/crash", p)
    assert.are.equal(2, code)
    assert.matches("nag: rule W1003 (" .. TMP .. "/crash/c.lua) failed on Topic:", err, 1, true)
  end)

  it("lists the rules as text and JSON", function()
    local code, out = nag("--list-rules")
    assert.are.equal(0, code)
    local n = select(2, out:gsub("\n", ""))
    assert.is_true(n >= 40)
    assert.matches("^F1 ", out)
    code, out = nag("--list-rules", "-o", "json")
    local list = assert(json.decode(out))
    assert.are.equal(n, #list)
    code, out = nag("--list-rules", "--deny", "F1,W1")
    assert.are.equal(2, select(2, out:gsub("\n", "")))
  end)

  it("writes JSON and SARIF reports", function()
    local p = FIXTURES .. "/rules/W14.fail.json"
    local code, out = nag("-o", "json", p)
    assert.are.equal(0, code)
    local doc = assert(json.decode(out))
    assert.are.equal(1, doc.summary.templates)
    assert.is_true(doc.summary.warnings > 0)
    code, out = nag("--output=sarif", p, FIXTURES .. "/rules/F1.fail.yaml")
    assert.are.equal(1, code)
    doc = assert(json.decode(out))
    assert.are.equal("2.1.0", doc.version)
    local levels = {}
    for _, r in ipairs(doc.runs[1].results) do levels[r.level] = true end
    assert.is_true(levels.error and levels.warning)
  end)

  it("scans the templates of the shared corpus", function()
    if not fs.isdir(SHARED .. "/corpus") then
      pending("no shared corpus at " .. SHARED)
      return
    end
    local code, out, err = nag(SHARED .. "/corpus")
    assert.are.equal(1, code)
    assert.matches("extension/bucket/env-ecs.yml: ExtraBucket: F14 [FAIL]", out, 1, true)
    assert.matches("extension/security-group/env-ecs.yml: ExtraSG: W3 [WARN]", out, 1, true)
    assert.matches("2 templates scanned", out, 1, true)
    -- the k8s manifest is YAML lumu.yaml cannot read: skipped with a warning
    assert.matches("warning: skipped .*ingress%.yml", err)
    -- the registry schemas are JSON but not templates
    code, _, err = nag(SHARED .. "/cfn/meta-schema")
    assert.are.equal(2, code)
    assert.matches("no CloudFormation templates found", err, 1, true)
  end)

  local bin = os.getenv("LUMU_BIN")
  local it_bin = bin and it or function(name) pending(name .. " (needs LUMU_BIN; run through ctest)") end

  -- argv prefix running `nag` in a real process, registered or not
  local function process(args)
    local prefix
    if cli.commands.nag then
      prefix = bin .. " nag"
    else
      local script = write("run-nag.lua", [[
local cli = require "lumu.cli"
cli.register("nag", "lumu.cli.nag")
local a = { [0] = "lumu", "nag" }
for i = 1, #arg do a[#a + 1] = arg[i] end
os.exit(cli.main(a))
]])
      prefix = bin .. " " .. script
    end
    local p = assert(io.popen(prefix .. " " .. args .. " 2>&1; echo rc=$?"))
    local out = p:read("a")
    p:close()
    return tonumber(out:match("rc=(%d+)%s*$")), out
  end

  it_bin("exits 0, 1 and 2 as a real process", function()
    local clean, failing = write("c.yaml", CLEAN), write("f.yaml", FAILING)
    assert.are.equal(0, (process(clean)))
    assert.are.equal(1, (process(failing)))
    local code, out = process("")
    assert.are.equal(2, code)
    assert.matches("no template given", out, 1, true)
    code, out = process("-o sarif " .. failing)
    assert.are.equal(1, code)
    assert.matches('"version": "2.1.0"', out, 1, true)
    code, out = process("--help")
    assert.are.equal(0, code)
    assert.matches("--fail-on-warnings", out, 1, true)
  end)

  it_bin("checks the stacks `lumu synth` generates for the seed examples", function()
    local ok = pcall(require, "lumu.synth")
    if not ok or not cli.commands.synth then
      pending("lumu synth is not registered yet")
      return
    end
    local src = SHARED .. "/corpus/seed-examples/basic/mu.yml"
    if not fs.isfile(src) then
      pending("no seed examples")
      return
    end
    assert(fs.write(TMP .. "/mu.yml", assert(fs.read(src))))
    local p = assert(io.popen(bin .. " synth -c " .. TMP .. "/mu.yml -o " .. TMP .. "/out 2>&1; echo rc=$?"))
    local log = p:read("a")
    p:close()
    if log:match("rc=(%d+)%s*$") ~= "0" then error("lumu synth failed:\n" .. log, 0) end
    local code, out = process("-o json " .. TMP .. "/out")
    assert.is_true(code == 0 or code == 1)
    local doc = assert(json.decode((out:gsub("rc=%d+%s*$", ""))))
    assert.is_true(doc.summary.templates > 0)
  end)
end)
