-- Specs of lumu.nag's engine: intrinsic evaluation helpers, scanning,
-- suppressions, team rules, positions, output formats and hostile input.
local nag = require "lumu.nag"
local util = require "lumu.nag.util"
local json = require "lumu.json"
local yaml = require "lumu.yaml"
local fs = require "lumu.fs"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIXTURES = here .. "/../fixtures/nag"

local function Y(text)
  local v, err = yaml.load(text)
  assert(v, err)
  return v
end

local function ids_of(list, resource)
  local out = {}
  for _, v in ipairs(list) do
    if resource == nil or v.resource == resource then out[#out + 1] = v.rule end
  end
  return out
end

local function has(list, rule, resource)
  for _, v in ipairs(list) do
    if v.rule == rule and (resource == nil or v.resource == resource) then return v end
  end
  return nil
end

local BUCKET = [[
Resources:
  Logs:
    Type: AWS::S3::Bucket
    Metadata:
      lumu_nag:
        rules_to_suppress:
          - {id: W11, reason: "log objects are never overwritten"}
      cfn_nag:
        rules_to_suppress:
          - {id: W35, reason: "this is the log bucket"}
          - {id: W12, reason: "cfn_nag's W12 is about IAM, it must not hide lumu W12"}
    Properties:
      AccessControl: Private
]]

describe("lumu.nag.util evaluation", function()
  local T = Y([[
Parameters:
  Env: {Type: String, AllowedValues: [dev, prod]}
  Port: {Type: Number, Default: 22}
  Free: {Type: String}
  Secret: {Type: String, NoEcho: true}
  SecretDefault: {Type: String, NoEcho: true, Default: x}
Mappings:
  Net:
    dev: {cidr: 10.0.0.0/16}
    prod: {cidr: 0.0.0.0/0}
Resources: {}
]])
  local ctx = util.context(T)

  local function vals(v, keys)
    local out = {}
    local r = ctx:values(v, keys)
    for i, e in ipairs(r) do out[i] = e.v end
    return out, r.unknown
  end

  it("evaluates literals, parameter defaults and allowed values", function()
    assert.are.same({ "a" }, (vals("a")))
    assert.are.same({ 22 }, (vals({ Ref = "Port" })))
    assert.are.same({ "dev", "prod" }, (vals({ Ref = "Env" })))
    local v, unknown = vals({ Ref = "Free" })
    assert.are.same({}, v)
    assert.are.same({ "parameter Free has no default" }, unknown)
  end)

  it("takes both branches of Fn::If and maps NoValue and null to ABSENT", function()
    assert.are.same({ 1, util.ABSENT }, (vals({ ["Fn::If"] = { "C", 1, { Ref = "AWS::NoValue" } } })))
    assert.are.same({ util.ABSENT }, (vals(json.null)))
    assert.are.same({ util.ABSENT }, (vals(nil)))
  end)

  it("evaluates FindInMap, Sub, Join and Select over knowable parts", function()
    assert.are.same({ "10.0.0.0/16", "0.0.0.0/0" },
      (vals({ ["Fn::FindInMap"] = { "Net", { Ref = "Env" }, "cidr" } })))
    assert.are.same({ "10.0.0.0/16", "0.0.0.0/0" },
      (vals({ ["Fn::FindInMap"] = { "Net", { Ref = "AWS::Region" }, "cidr" } })))
    assert.are.same({ "port-22-dev", "port-22-prod" }, (vals({ ["Fn::Sub"] = "port-${Port}-${Env}" })))
    assert.are.same({ "x=1" }, (vals({ ["Fn::Sub"] = { "x=${v}", { v = 1 } } })))
    assert.are.same({ "${literal}" }, (vals({ ["Fn::Sub"] = "${!literal}" })))
    assert.are.same({ "a-22" }, (vals({ ["Fn::Join"] = { "-", { "a", { Ref = "Port" } } } })))
    assert.are.same({ "b" }, (vals({ ["Fn::Select"] = { 1, { "a", "b" } } })))
  end)

  it("reports what cannot be known before deploy", function()
    local _, u = vals({ ["Fn::GetAtt"] = { "Db", "Endpoint.Address" } })
    assert.are.same({ "Fn::GetAtt Db.Endpoint.Address" }, u)
    _, u = vals({ ["Fn::ImportValue"] = "x" })
    assert.are.same({ "Fn::ImportValue" }, u)
    _, u = vals({ ["Fn::Sub"] = "${AWS::Region}-x" })
    assert.matches("AWS::Region", u[1], 1, true)
  end)

  it("digs through nested keys and Fn::If between levels", function()
    local v = { Opts = { ["Fn::If"] = { "C", { Enabled = true }, { Enabled = false } } } }
    assert.are.same({ true, false }, (vals(v, { "Opts", "Enabled" })))
    assert.are.same({ util.ABSENT }, (vals({}, { "Opts", "Enabled" })))
  end)

  it("bounds nesting depth and the number of values", function()
    local deep = 1
    for _ = 1, 200 do deep = { ["Fn::If"] = { "C", deep, deep } } end
    local v, u = vals(deep)
    assert.is_true(#v <= util.MAX_VALUES)
    assert.is_true(#u > 0)
    local chain = "x"
    for _ = 1, 100 do chain = { ["Fn::If"] = { "C", chain, "y" } } end
    local _, u2 = vals(chain)
    assert.contains(u2, "nested too deeply")
  end)

  it("explains why a value is not surely true", function()
    assert.are.same({ false, "is not set" }, { ctx:surely(nil, util.truthy) })
    assert.are.same({ false, "is false (when Prod is false)" },
      { ctx:surely({ ["Fn::If"] = { "Prod", true, false } }, util.truthy) })
    local ok, why = ctx:surely({ ["Fn::ImportValue"] = "x" }, util.truthy)
    assert.is_false(ok)
    assert.matches("cannot be evaluated before deploy (Fn::ImportValue); assumed unsafe", why, 1, true)
    assert.is_true(ctx:surely("true", util.truthy))
  end)

  it("tells plaintext secrets from references", function()
    assert.are.equal("a literal value", ctx:plaintext("hunter2"))
    assert.is_nil(ctx:plaintext("{{resolve:secretsmanager:s:SecretString:p}}"))
    assert.is_nil(ctx:plaintext("{{resolve:ssm-secure:/p}}"))
    assert.matches("plain String", ctx:plaintext("{{resolve:ssm:/p}}"))
    assert.are.equal("parameter Free is not NoEcho", ctx:plaintext({ Ref = "Free" }))
    assert.is_nil(ctx:plaintext({ Ref = "Secret" }))
    assert.are.equal("parameter SecretDefault has a Default value", ctx:plaintext({ Ref = "SecretDefault" }))
    assert.is_nil(ctx:plaintext({ ["Fn::GetAtt"] = { "Gen", "Password" } }))
    assert.are.equal("a literal value", ctx:plaintext({ ["Fn::If"] = { "C", { Ref = "Secret" }, "pw" } }))
    assert.is_nil(ctx:plaintext({ ["Fn::Sub"] = "{{resolve:secretsmanager:${Free}}}" }))
  end)

  it("recognises secret-looking names", function()
    for _, n in ipairs({ "DB_PASSWORD", "dbPassword", "ApiToken", "SECRET_KEY", "API_KEY", "github_token",
      "MasterUserPassword", "apikey" }) do
      assert.is_true(util.secret_name(n), n)
    end
    for _, n in ipairs({ "PWD", "KeyName", "KMS_KEY_ID", "SECRET_ARN", "DB_HOST", "TOKEN_URL", "MONKEY",
      "SecretName", "", "PasswordParameter" }) do
      assert.is_false(util.secret_name(n), n)
    end
  end)

  it("matches IAM wildcards case-insensitively", function()
    assert.is_true(util.glob_match("iam:Pass*", "iam:PassRole"))
    assert.is_true(util.glob_match("IAM:*", "iam:PassRole"))
    assert.is_true(util.glob_match("iam:?assRole", "iam:PassRole"))
    assert.is_false(util.glob_match("iam:Get*", "iam:PassRole"))
    assert.is_false(util.glob_match("iam.PassRole", "iamXPassRole"))
  end)

  it("renders text for pattern matching", function()
    assert.are.equal("arn:aws:iam::aws:policy/AdministratorAccess",
      ctx:text({ ["Fn::Sub"] = "arn:${AWS::Partition}:iam::aws:policy/AdministratorAccess" }))
    assert.are.equal("a:?:b", ctx:text({ ["Fn::Join"] = { ":", { "a", { Ref = "AWS::Region" }, "b" } } }))
  end)
end)

describe("nag.scan", function()
  it("rejects bad arguments", function()
    assert.error_matches(function() nag.scan(nil) end, "bad argument #1 to 'scan'")
    assert.error_matches(function() nag.scan({}, "x") end, "bad argument #2 to 'scan'")
    assert.error_matches(function() nag.scan({}, { only = { "F999" } }) end, "unknown rule id 'F999'")
    assert.error_matches(function() nag.scan({}, { skip = { "W1O" } }) end, "did you mean 'W1")
  end)

  it("scans an empty template and a template without Resources", function()
    local r = nag.scan({})
    assert.are.same({}, r.violations)
    r = nag.scan({ Resources = {} }, { filename = "x.json" })
    assert.are.same({ "x.json" }, r.files)
  end)

  it("scans builder templates from lumu.cfn", function()
    local cfn = require "lumu.cfn"
    local t = cfn.template()
    t:resource("Vol", "AWS::EC2::Volume", { AvailabilityZone = "us-east-1a", Size = 8 })
    local r = nag.scan(t:to_table(), { filename = "built" })
    local v = has(r.violations, "F29", "Vol")
    assert.is_truthy(v)
    assert.are.equal("Resources.Vol.Properties.Encrypted", v.path)
    assert.are.equal("EBS volume is not encrypted: Encrypted is not set", v.message)
    assert.is_nil(v.line)
  end)

  it("orders findings by resource, failures first", function()
    local r = nag.scan(Y(BUCKET .. [[
  AVolume:
    Type: AWS::EC2::Volume
]]), { no_suppress = true })
    assert.are.equal("AVolume", r.violations[1].resource)
    local seen_warning = false
    for _, v in ipairs(r.violations) do
      if v.resource == "Logs" then
        if v.severity == "warning" then seen_warning = true else assert.is_false(seen_warning) end
      end
    end
    assert.is_true(seen_warning)
  end)

  it("runs only the --deny rules and skips the --allow ones", function()
    local t = Y(BUCKET)
    assert.are.same({ "F16" }, ids_of(nag.scan(t, { only = { "F16" } }).violations))
    local skipped = ids_of(nag.scan(t, { skip = { "F14", "F15" } }).violations)
    assert.is_false(has(nag.scan(t, { skip = { "F14", "F15" } }).violations, "F14") ~= nil)
    assert.contains(skipped, "F16")
  end)

  it("raises when a rule fails, naming the rule and its source", function()
    local bad = { id = "W1001", severity = "warning", message = "m", reason = "r", types = { "*" },
      check = function() error("boom") end, source = "team.lua" }
    assert.error_matches(function() nag.scan(Y(BUCKET), { rules = { bad } }) end,
      "nag: rule W1001 %(team%.lua%) failed on Logs: .*boom")
    bad.check = function() return "oops" end
    assert.error_matches(function() nag.scan(Y(BUCKET), { rules = { bad } }) end,
      "rule W1001 %(team.lua%) returned a string")
    bad.check = function() return { 42 } end
    assert.error_matches(function() nag.scan(Y(BUCKET), { rules = { bad } }) end, "not a table")
  end)

  it("survives cyclic Lua tables and deep values", function()
    local props = { AccessControl = "Private" }
    props.Self = props
    local deep = {}
    local cur = deep
    for _ = 1, 5000 do
      cur.Fn = {}
      cur = cur.Fn
    end
    props.Deep = deep
    local r = nag.scan({ Resources = { B = { Type = "AWS::S3::Bucket", Properties = props } } })
    assert.is_truthy(has(r.violations, "F14", "B"))
  end)

  it("treats values it cannot evaluate conservatively, and says so", function()
    local r = nag.scan(Y([[
Resources:
  Db:
    Type: AWS::RDS::DBInstance
    Properties: {Engine: postgres, DBSubnetGroupName: private, StorageEncrypted: !ImportValue encrypt-flag}
  Sg:
    Type: AWS::EC2::SecurityGroupIngress
    Properties: {GroupId: sg-1, IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: !GetAtt Vpc.CidrBlock}
]]))
    local f17 = has(r.violations, "F17", "Db")
    assert.are.equal("Database storage is not encrypted: StorageEncrypted cannot be evaluated before deploy "
      .. "(Fn::ImportValue); assumed unsafe", f17.message)
    assert.is_nil(has(r.violations, "F1", "Sg"))
  end)

  it("never raises on malformed resources, properties, metadata or parameters", function()
    local garbage = { "x", 5, -1, 1.5, true, {}, { "a", 2 }, json.null, { Ref = 5 }, { Ref = "Nope" },
      { ["Fn::If"] = { 1 } }, { ["Fn::If"] = { "C", { Ref = "AWS::NoValue" }, "x" } }, { ["Fn::GetAtt"] = "A" },
      { ["Fn::Sub"] = { 1, 2 } }, { ["Fn::Join"] = { 1 } }, { ["Fn::Select"] = { "x", {} } },
      { ["Fn::FindInMap"] = { "M" } }, { Statement = "x" }, { Statement = { 5, { Effect = 1 } } } }
    local types = {}
    for _, r in ipairs(nag.builtin_rules()) do
      for _, t in ipairs(r.types) do
        if t:find("::") then types[t] = true end
      end
    end
    local n = 0
    for i, g in ipairs(garbage) do
      local resources = {}
      for t in pairs(types) do
        n = n + 1
        resources["R" .. n] = { Type = t, Properties = g, Metadata = g }
        n = n + 1
        -- every property read returns the garbage value
        resources["R" .. n] = { Type = t, Properties = setmetatable({}, { __index = function() return g end }),
          Metadata = { lumu_nag = g, cfn_nag = { rules_to_suppress = g } } }
      end
      local t = { Resources = resources, Metadata = g, Mappings = g,
        Parameters = { P = g, DbPassword = { Default = g, NoEcho = g, Type = g } } }
      local ok, err = pcall(nag.scan, t)
      assert.is_true(ok, "garbage #" .. i .. ": " .. tostring(err))
    end
    assert.is_true(n > 100)
  end)

  it("scans a template with 2000 resources", function()
    local res = {}
    for i = 1, 2000 do
      res["Sg" .. i] = { Type = "AWS::EC2::SecurityGroup", Properties = { GroupDescription = "x",
        SecurityGroupIngress = { { IpProtocol = "tcp", FromPort = 22, ToPort = 22, CidrIp = "0.0.0.0/0" } } } }
    end
    local r = nag.scan({ Resources = res })
    local n = 0
    for _, v in ipairs(r.violations) do
      if v.rule == "F1" then n = n + 1 end
    end
    assert.are.equal(2000, n)
  end)
end)

describe("nag suppressions", function()
  it("honours lumu_nag and cfn_nag (through aliases) and lists what it suppressed", function()
    local r = nag.scan(Y(BUCKET), { filename = "b.yaml" })
    local w11 = has(r.suppressed, "W11", "Logs")
    assert.is_truthy(w11)
    assert.are.same({ reason = "log objects are never overwritten", source = "lumu_nag", id = "W11" }, w11.suppressed)
    local w12 = has(r.suppressed, "W12", "Logs")
    assert.are.same({ reason = "this is the log bucket", source = "cfn_nag", id = "W35" }, w12.suppressed)
    assert.is_nil(has(r.violations, "W11"))
    assert.is_nil(has(r.violations, "W12"))
    assert.is_nil(has(r.violations, "F37"))
  end)

  it("reads cfn_nag ids as cfn_nag ids, never as lumu ids", function()
    local t = Y(BUCKET)
    t.Resources.Logs.Metadata = { cfn_nag = { rules_to_suppress = { { id = "W12", reason = "cfn_nag W12 is IAM" } } } }
    local r = nag.scan(t)
    assert.is_truthy(has(r.violations, "W12", "Logs"))
    assert.are.same({}, r.suppressed)
  end)

  it("turns a suppression without a reason into F37 and does not apply it", function()
    local t = Y(BUCKET)
    t.Resources.Logs.Metadata.lumu_nag.rules_to_suppress[1].reason = nil
    local r = nag.scan(t)
    local f37 = has(r.violations, "F37", "Logs")
    assert.is_truthy(f37)
    assert.matches("suppression of W11 has no reason", f37.message, 1, true)
    assert.are.equal("Resources.Logs.Metadata.lumu_nag.rules_to_suppress[0]", f37.path)
    assert.is_truthy(has(r.violations, "W11", "Logs"))
  end)

  it("reports misspelt keys and unknown rule ids with a hint", function()
    local r = nag.scan(Y([[
Resources:
  T:
    Type: AWS::SNS::Topic
    Metadata:
      lumu_nag:
        rules_to_supress: [{id: W21, reason: x}]
  U:
    Type: AWS::SNS::Topic
    Metadata:
      lumu_nag:
        rules_to_suppress: [{id: W211, reason: x}]
]]))
    assert.matches("did you mean 'rules_to_suppress'", has(r.violations, "F37", "T").message, 1, true)
    assert.matches("unknown rule id 'W211' %(did you mean 'W%d+'%?%)", has(r.violations, "F37", "U").message)
  end)

  it("cannot suppress F37 itself", function()
    local r = nag.scan(Y([[
Resources:
  T:
    Type: AWS::SNS::Topic
    Metadata:
      lumu_nag:
        rules_to_suppress: [{id: F37, reason: "hide the next one"}, {id: W21}]
]]))
    assert.is_truthy(has(r.violations, "F37", "T"))
  end)

  it("applies template-level suppressions to resources and parameters", function()
    local r = nag.scan(Y([[
Metadata:
  lumu_nag:
    rules_to_suppress:
      - {id: F34, reason: "filled in by the pipeline"}
      - {id: W21, reason: "no sensitive topics here"}
Parameters:
  GithubToken: {Type: String}
Resources:
  T: {Type: AWS::SNS::Topic}
]]))
    assert.is_truthy(has(r.suppressed, "F34", "GithubToken"))
    assert.is_truthy(has(r.suppressed, "W21", "T"))
    assert.are.same({}, r.violations)
  end)

  it("reports malformed template-level suppressions on Metadata", function()
    local r = nag.scan(Y([[
Metadata:
  lumu_nag: [{id: W21}]
Resources: {}
]]))
    local v = has(r.violations, "F37", "Metadata")
    assert.is_truthy(v)
    assert.are.equal("Template", v.type)
    assert.are.equal("Metadata.lumu_nag", v.path)
  end)

  it("ignores suppressions with no_suppress (and still validates them)", function()
    local t = Y(BUCKET)
    local r = nag.scan(t, { no_suppress = true })
    assert.are.same({}, r.suppressed)
    assert.is_truthy(has(r.violations, "W11", "Logs"))
    assert.is_truthy(has(r.violations, "W12", "Logs"))
    t.Resources.Logs.Metadata.lumu_nag.rules_to_suppress[1].reason = ""
    assert.is_truthy(has(nag.scan(t, { no_suppress = true }).violations, "F37"))
  end)

  it("accepts suppressions of rules that --deny filtered out", function()
    local r = nag.scan(Y(BUCKET), { only = { "F14" } })
    assert.are.same({ "F14" }, ids_of(r.violations))
  end)
end)

describe("nag team rules", function()
  local dir
  before_each(function()
    dir = assert(fs.tmpdir("nag-rules-"))
  end)
  after_each(function()
    if dir then fs.rmtree(dir) end
  end)

  local GOOD = [[
local util = require "lumu.nag.util"
return {
  id = "W1001", severity = "warning",
  message = "Topics must be named", reason = "naming convention of the team",
  types = { "AWS::SNS::Topic" },
  check = function(r, id, tpl, ctx)
    if util.props(r).TopicName == nil then return { { path = { "Properties", "TopicName" }, detail = id } } end
  end,
}
]]

  local function write(name, text)
    assert(fs.write(dir .. "/" .. name, text))
  end

  it("loads a directory of rule files and runs them", function()
    write("topic.lua", GOOD)
    write("README.txt", "not a rule")
    local list = assert(nag.load_rules(dir))
    assert.are.equal(1, #list)
    assert.are.equal(dir .. "/topic.lua", list[1].source)
    local all = assert(nag.combine({ nag.builtin_rules(), list }))
    local r = nag.scan(Y("Resources: {T: {Type: AWS::SNS::Topic}}"), { rules = all })
    local v = has(r.violations, "W1001", "T")
    assert.are.equal("Topics must be named: T", v.message)
    assert.are.equal("Resources.T.Properties.TopicName", v.path)
  end)

  it("loads a list of rules from one file, and a file path directly", function()
    write("two.lua", [[return {
      { id = "ACME-1", severity = "failure", message = "a", reason = "b", types = { "*" }, check = function() end },
      { id = "ACME-2", severity = "warning", message = "a", reason = "b", types = { "Parameter" }, check = function() end },
    }]])
    local list = assert(nag.load_rules(dir .. "/two.lua"))
    assert.are.same({ "ACME-1", "ACME-2" }, { list[1].id, list[2].id })
  end)

  local cases = {
    { "no reason", [[return { id = "W1002", severity = "warning", message = "m", types = { "*" }, check = function() end }]],
      "rule #1 %(W1002%): 'reason' must be a non%-empty string" },
    { "F id as warning", [[return { id = "F1002", severity = "warning", message = "m", reason = "r", types = { "*" }, check = function() end }]],
      "id F1002 does not match severity" },
    { "bad severity", [[return { id = "X1", severity = "fatal", message = "m", reason = "r", types = { "*" }, check = function() end }]],
      "'severity' must be" },
    { "bad type", [[return { id = "W1003", severity = "warning", message = "m", reason = "r", types = { "S3 bucket" }, check = function() end }]],
      "types%[1%] is not a resource type" },
    { "no check", [[return { id = "W1004", severity = "warning", message = "m", reason = "r", types = { "*" } }]],
      "'check' must be a function" },
    { "returns nothing", [[local x = 1]], "must return a rule table" },
    { "syntax error", [[return {]], "rule%.lua:1:" },
    { "raises", [[error("no way")]], "error while loading: .*no way" },
  }
  for _, c in ipairs(cases) do
    it("rejects a rule file that " .. c[1] .. ", naming the file", function()
      write("rule.lua", c[2])
      local list, err = nag.load_rules(dir)
      assert.is_nil(list)
      assert.matches(dir .. "/rule.lua", err, 1, true)
      assert.matches(c[3], err)
    end)
  end

  it("rejects ids that clash with built-in rules, and empty directories", function()
    write("clash.lua", [[return { id = "W11", severity = "warning", message = "m", reason = "r", types = { "*" }, check = function() end }]])
    local list = assert(nag.load_rules(dir))
    local all, err = nag.combine({ nag.builtin_rules(), list })
    assert.is_nil(all)
    assert.matches("duplicate rule id W11 %(builtin and .*clash%.lua%)", err)
    fs.remove(dir .. "/clash.lua")
    list, err = nag.load_rules(dir)
    assert.is_nil(list)
    assert.matches("no %*%.lua rule files", err)
    assert.is_nil((nag.load_rules(dir .. "/missing")))
  end)

  it("discovers lumu.nag.rules.* modules on package.path", function()
    assert(fs.mkdir(dir .. "/lumu/nag/rules"))
    assert(fs.write(dir .. "/lumu/nag/rules/acme_topics.lua", GOOD))
    local saved = package.path
    package.path = dir .. "/?.lua;" .. saved
    local ok, err = pcall(function()
    local all = assert(nag.rules())
    local found
    for _, r in ipairs(all) do
      if r.id == "W1001" then found = r end
    end
    assert.is_truthy(found)
    assert.are.equal("module lumu.nag.rules.acme_topics", found.source)
    local r = nag.scan(Y("Resources: {T: {Type: AWS::SNS::Topic}}"))
    assert.is_truthy(has(r.violations, "W1001", "T"))
    -- and by module name
    local list = assert(nag.load_rules("lumu.nag.rules.acme_topics"))
    assert.are.equal("W1001", list[1].id)
    local none, lerr = nag.load_rules("lumu.nag.rules.nope")
    assert.is_nil(none)
    assert.matches("module lumu.nag.rules.nope", lerr, 1, true)
    end)
    package.path = saved
    package.loaded["lumu.nag.rules.acme_topics"] = nil
    if not ok then error(err, 0) end
    assert.is_nil((nag.rules() or {})[1].source:find("acme"))
  end)
end)

describe("nag positions", function()
  it("gives YAML lines and columns of the offending key", function()
    local text = "Resources:\n  Vol:\n    Type: AWS::EC2::Volume\n    Properties:\n      Encrypted: false\n"
    local v, pos = yaml.load(text, { positions = true })
    local r = nag.scan(v, { positions = pos, only = { "F29" } })
    assert.are.equal(5, r.violations[1].line)
    assert.are.equal(7, r.violations[1].column)
  end)

  it("gives JSON lines, and the nearest ancestor for absent properties", function()
    local path = FIXTURES .. "/rules/F29.fail.json"
    local t, pos = assert(nag.load_file(path))
    local r = nag.scan(t, { positions = pos, only = { "F29" }, filename = path })
    local lines = {}
    for line in (fs.read(path) .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
    for _, v in ipairs(r.violations) do
      -- BadFalse: the Encrypted key; BadVolume (no Encrypted): its Properties
      local want = v.resource == "BadFalse" and '"Encrypted"' or '"Properties"'
      assert.matches(want, lines[v.line], 1, true)
      assert.are.equal(lines[v.line]:find('"', 1, true), v.column)
    end
  end)

  it("parses .template files as JSON or YAML and reports parse errors with file:line:col", function()
    local dir = assert(fs.tmpdir("nag-pos-"))
    local ok, err = pcall(function()
    assert(fs.write(dir .. "/a.template", '{"Resources": {"V": {"Type": "AWS::EC2::Volume"}}}'))
    assert(fs.write(dir .. "/b.template", "Resources:\n  V: {Type: AWS::EC2::Volume}\n"))
    assert.is_truthy(nag.is_template((nag.load_file(dir .. "/a.template"))))
    assert.is_truthy(nag.is_template((nag.load_file(dir .. "/b.template"))))
    assert(fs.write(dir .. "/bad.json", '{"Resources": {\n  "V": tru }'))
    local t, err = nag.load_file(dir .. "/bad.json")
    assert.is_nil(t)
    assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/bad%.json:2:%d+: ", err)
    assert(fs.write(dir .. "/bad.yaml", "Resources:\n  V: [\n"))
    t, err = nag.load_file(dir .. "/bad.yaml")
    assert.is_nil(t)
    assert.matches("bad%.yaml:%d+:%d+: ", err)
    assert(fs.write(dir .. "/bytes.json", '{"Resources": {"\255\254": 1}}'))
    t, err = nag.load_file(dir .. "/bytes.json")
    assert.is_nil(t)
    assert.matches("bytes%.json:1:%d+:", err)
    assert(fs.write(dir .. "/bytes.yaml", "Resources:\n  V: {Type: \255}\n"))
    t, err = nag.load_file(dir .. "/bytes.yaml")
    assert.is_nil(t)
    assert.matches("bytes%.yaml:%d+:%d+:", err)
    t, err = nag.load_file(dir .. "/none.yaml")
    assert.is_nil(t)
    assert.matches("none%.yaml: No such file or directory", err)
    end)
    fs.rmtree(dir)
    if not ok then error(err, 0) end
  end)

  it("handles deeply nested and aliased YAML", function()
    local parts = { "Resources:\n  V:\n    Type: AWS::EC2::Volume\n    Properties:\n      Tags: " }
    parts[#parts + 1] = string.rep("[", 900) .. string.rep("]", 900) .. "\n"
    local t, pos = yaml.load(table.concat(parts), { positions = true })
    assert.is_truthy(t)
    local r = nag.scan(t, { positions = pos })
    assert.is_truthy(has(r.violations, "F29", "V"))
    local aliased = Y([[
Resources:
  A: &sg
    Type: AWS::EC2::SecurityGroup
    Properties: {GroupDescription: x, SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 0.0.0.0/0}]}
  B: *sg
]])
    r = nag.scan(aliased, { only = { "F1" } })
    assert.are.same({ "F1", "F1" }, ids_of(r.violations))
  end)
end)

describe("nag.format", function()
  local results
  before_each(function()
    local path = FIXTURES .. "/rules/F1.fail.yaml"
    local t, pos = assert(nag.load_file(path))
    local a = nag.scan(t, { positions = pos, filename = path })
    local b = nag.scan(Y(BUCKET), { filename = "dir with space/b.yaml" })
    results = nag.merge({ a, b })
  end)

  it("writes one text line per finding, then a summary", function()
    local text = nag.format(results, "text")
    local lines = {}
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
    local f, w, s = nag.counts(results)
    assert.are.equal(f + w + s + 1, #lines)
    for i = 1, f + w do
      assert.matches("^[^:]+: [%w]+: [FW]%d+ %[[FAILWRN]+%] .+", lines[i])
    end
    assert.matches(": BadSsh: F1 [FAIL] Security group allows SSH (22) or RDP (3389) from the whole internet: "
      .. "port 22 open to the world (line ", text, 1, true)
    assert.matches("dir with space/b.yaml: Logs: W11 [SUPPRESSED] ", text, 1, true)
    assert.are.equal(string.format("2 templates scanned: %d failures, %d warnings, %d suppressed", f, w, s),
      lines[#lines])
  end)

  it("writes JSON with a summary and the findings", function()
    local doc = assert(json.decode(nag.format(results, "json")))
    local f, w, s = nag.counts(results)
    assert.are.same({ templates = 2, failures = f, warnings = w, suppressed = s }, doc.summary)
    assert.are.equal(f + w, #doc.violations)
    assert.are.equal("lumu_nag", doc.suppressed[1].suppression.source)
    assert.is_truthy(doc.violations[1].line)
  end)

  it("writes structurally valid SARIF 2.1.0", function()
    local doc = assert(json.decode(nag.format(results, "sarif")))
    assert.are.equal("2.1.0", doc.version)
    assert.matches("sarif%-2%.1%.0", doc["$schema"])
    assert.are.equal(1, #doc.runs)
    local run = doc.runs[1]
    local driver = run.tool.driver
    assert.are.equal("lumu-nag", driver.name)
    assert.is_string(driver.version)
    local index = {}
    for i, r in ipairs(driver.rules) do
      assert.is_nil(index[r.id])
      index[r.id] = i - 1
      assert.is_string(r.shortDescription.text)
      assert.is_string(r.fullDescription.text)
      assert.is_truthy(r.defaultConfiguration.level == "error" or r.defaultConfiguration.level == "warning")
    end
    local f, w, s = nag.counts(results)
    assert.are.equal(f + w + s, #run.results)
    local suppressed = 0
    for _, res in ipairs(run.results) do
      assert.is_string(res.ruleId)
      assert.are.equal(index[res.ruleId], res.ruleIndex)
      assert.is_truthy(res.level == "error" or res.level == "warning")
      assert.is_string(res.message.text)
      local loc = res.locations[1]
      assert.is_string(loc.physicalLocation.artifactLocation.uri)
      assert.is_nil(loc.physicalLocation.artifactLocation.uri:find(" ", 1, true))
      if loc.physicalLocation.region then assert.is_true(loc.physicalLocation.region.startLine >= 1) end
      assert.is_string(loc.logicalLocations[1].name)
      if res.suppressions then
        suppressed = suppressed + 1
        assert.are.equal("inSource", res.suppressions[1].kind)
        assert.is_string(res.suppressions[1].justification)
      end
    end
    assert.are.equal(s, suppressed)
    assert.are.equal(2, #run.artifacts)
    assert.matches("dir%%20with%%20space/b%.yaml", json.encode(run.artifacts))
  end)

  it("writes valid SARIF with no findings", function()
    local doc = assert(json.decode(nag.format(nag.scan({ Resources = {} }), "sarif")))
    assert.are.same({}, doc.runs[1].results)
    assert.is_true(#doc.runs[1].tool.driver.rules >= 40)
  end)

  it("rejects unknown formats", function()
    assert.error_matches(function() nag.format(results, "xml") end, "bad argument #2 to 'format'")
  end)

  it("lists the rules as text and JSON", function()
    local rules = nag.builtin_rules()
    local text = nag.list(rules, "text")
    assert.matches("^F1   %[FAIL%] ", text)
    assert.matches("\nW11  %[WARN%] S3 bucket versioning", text)
    local list = assert(json.decode(nag.list(rules, "json")))
    assert.are.equal(#rules, #list)
    assert.are.equal("F1", list[1].id)
    assert.is_string(list[1].reason)
  end)
end)
