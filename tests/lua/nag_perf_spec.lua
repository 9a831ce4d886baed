-- Specs of what makes `lumu nag` cheap inside `lumu synth`, and that it
-- changes no result: nag.scanner (rules compiled once), the reuse of the
-- findings lumu.gen.nag.annotate computed (synth.nag does not run those
-- rules again, and runs them again when the template changed), the
-- compiled-rule cache (a list changed in place is compiled again), the
-- per-scan caches of the rule context, and the bounded name caches.
local nag = require "lumu.nag"
local engine = require "lumu.nag.engine"
local util = require "lumu.nag.util"
local gennag = require "lumu.gen.nag"
local synth = require "lumu.synth"
local config = require "lumu.config"
local json = require "lumu.json"
local yaml = require "lumu.yaml"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local EXAMPLE = here .. "/../../scripts/example/lumu.lua"

local function Y(text)
  local v, err = yaml.load(text)
  assert(v, err)
  return v
end

-- results -> comparable text (violations and suppressed, in order)
local function text(results)
  return nag.format(results, "json")
end

local function example_plan()
  local m = assert(config.load(EXAMPLE, { getenv = function(n) return ({ LOGNAME = "tester" })[n] end }))
  local stacks, report = synth.plan(m, { git = { provider = "GitHub", repo = "acme/app", branch = "main" } })
  assert.are.same({}, report.errors)
  return stacks
end

-- Counts the calls of built-in rule `id`'s check while fn runs.
local function calls_of(id, fn)
  local rule
  for _, r in ipairs(engine.builtin()) do
    if r.id == id then rule = r end
  end
  local orig, n = rule.check, 0
  rule.check = function(...)
    n = n + 1
    return orig(...)
  end
  local ok, err = pcall(fn)
  rule.check = orig
  assert(ok, err)
  return n
end

local TEMPLATE = [[
Parameters:
  DbPassword: {Type: String, Default: hunter2}
  Env: {Type: String, AllowedValues: [dev, prod]}
Resources:
  Role:
    Type: AWS::IAM::Role
    Metadata:
      lumu_nag:
        rules_to_suppress:
          - {id: W5, reason: "describe calls need '*'"}
    Properties:
      AssumeRolePolicyDocument:
        Statement:
          - {Effect: Allow, Principal: {Service: ecs-tasks.amazonaws.com}, Action: sts:AssumeRole}
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
              - {Effect: Allow, Action: ["ec2:Describe*", "s3:*"], Resource: "*"}
              - {Effect: Allow, Action: "iam:PassRole", Resource: "*"}
              - Fn::If: [IsProd, {Effect: Allow, Action: "*", Resource: "*"}, {Ref: "AWS::NoValue"}]
  Open:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: open
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 0.0.0.0/0}
  Bucket:
    Type: AWS::S3::Bucket
    Metadata:
      lumu_nag:
        rules_to_suppress:
          - {id: W99, reason: "no such rule"}
Conditions:
  IsProd: {"Fn::Equals": [{Ref: Env}, prod]}
]]

describe("nag.scanner", function()
  it("gives what nag.scan gives, template after template", function()
    local scan = nag.scanner()
    for _, t in ipairs({ Y(TEMPLATE), Y(TEMPLATE), Y("Resources: {B: {Type: AWS::S3::Bucket}}") }) do
      assert.are.equal(text(nag.scan(t)), text(scan(t)))
    end
    local r = scan(Y(TEMPLATE), { filename = "t.yaml" })
    assert.are.same({ "t.yaml" }, r.files)
    assert.is_truthy(#r.violations > 0 and #r.suppressed > 0)
  end)

  it("takes only/skip and no_suppress defaults, per-template options win", function()
    local scan = nag.scanner({ only = { "W5", "F37" }, no_suppress = true, filename = "x" })
    local r = scan(Y(TEMPLATE))
    assert.are.equal(text(nag.scan(Y(TEMPLATE), { only = { "W5", "F37" }, no_suppress = true, filename = "x" })),
      text(r))
    assert.are.same({}, r.suppressed)
    local r2 = scan(Y(TEMPLATE), { no_suppress = false, filename = "y" })
    assert.are.same({ "y" }, r2.files)
    assert.are.equal("W5", r2.suppressed[1].rule)
  end)

  it("raises on misuse", function()
    assert.error_matches(function() nag.scanner("x") end, "bad argument #1 to 'scanner'")
    assert.error_matches(function() nag.scanner({ only = { "W999" } }) end, "unknown rule id 'W999'")
    local scan = nag.scanner()
    assert.error_matches(function() scan("x") end, "bad argument #1 to 'scan'")
    assert.error_matches(function() scan({}, 5) end, "bad argument #2 to 'scan'")
    assert.error_matches(function() scan({}, { reuse = {} }) end, "reuse must be the pass of an earlier scan")
    assert.error_matches(function() nag.scan({}, { reuse = "x" }) end, "reuse must be the pass of an earlier scan")
  end)
end)

describe("reusing the findings of an earlier scan", function()
  it("gives the same results as a scan from scratch, with and without suppressions", function()
    local all = nag.builtin_rules()
    local some = assert(nag.select(all, { only = { "W5", "F1", "F34", "F35" } }))
    local t = Y(TEMPLATE)
    local _, pass = engine.scan(t, { rules = some, all_rules = all })
    for _, ns in ipairs({ false, true }) do
      local fresh = nag.scan(Y(TEMPLATE), { rules = all, no_suppress = ns })
      local reused = nag.scan(t, { rules = all, no_suppress = ns, reuse = pass })
      assert.are.equal(text(fresh), text(reused))
    end
  end)

  it("does not run the reused rules again, and runs them when the list has other rule objects", function()
    local all = nag.builtin_rules()
    local t = Y(TEMPLATE)
    local _, pass = engine.scan(t, { rules = assert(nag.select(all, { only = { "W5" } })), all_rules = all })
    assert.are.equal(0, calls_of("W5", function() nag.scan(t, { rules = all, reuse = pass }) end))
    -- a W5 that is another table (same id): run, and the reused finding dropped
    local copy = {}
    for i, r in ipairs(all) do
      if r.id == "W5" then
        local c = {}
        for k, v in pairs(r) do c[k] = v end
        c.check = function() return { { path = "Properties", detail = "the copy" } } end
        copy[i] = c
      else
        copy[i] = r
      end
    end
    local r = nag.scan(t, { rules = copy, reuse = pass, no_suppress = true })
    local w5 = {}
    for _, v in ipairs(r.violations) do
      if v.rule == "W5" then w5[#w5 + 1] = v.message end
    end
    assert.are.same({ "IAM policy allows actions on any resource ('*'): the copy" }, w5)
  end)

  it("keeps the rules a selection leaves out out, even when they were reused", function()
    local all = nag.builtin_rules()
    local t = Y(TEMPLATE)
    local _, pass = engine.scan(t, { rules = all })
    local r = nag.scan(t, { rules = all, skip = { "W5" }, reuse = pass, no_suppress = true })
    for _, v in ipairs(r.violations) do assert.are_not.equal("W5", v.rule) end
    assert.are.equal(text(nag.scan(Y(TEMPLATE), { rules = all, skip = { "W5" }, no_suppress = true })), text(r))
  end)
end)

describe("lumu.gen.nag.annotate_pass", function()
  it("adds what annotate adds, and its pass makes a later scan skip the rules it ran", function()
    local a, b = Y(TEMPLATE), Y(TEMPLATE)
    assert.are.equal(1, select("#", gennag.annotate(a)))
    local added, pass = gennag.annotate_pass(b)
    assert.are.same(gennag.annotate(Y(TEMPLATE)), added)
    assert.are.same(a, b)
    assert.are.equal(0, calls_of("W5", function() nag.scan(b, { reuse = pass }) end))
    assert.are.equal(text(nag.scan(a)), text(nag.scan(b, { reuse = pass })))
    assert.error_matches(function() gennag.annotate_pass(nil) end, "template table expected")
  end)
end)

describe("synth.nag after synth.plan", function()
  it("does not run the annotate step's rules again and finds what a fresh scan finds", function()
    local stacks = example_plan()
    local results
    local n = calls_of("W5", function() results = assert(synth.nag(stacks)) end)
    assert.are.equal(0, n)
    -- the same as scanning every written body from scratch
    local all = {}
    for _, d in ipairs(stacks) do
      if d.body then
        all[#all + 1] = nag.scan(gennag.effective(json.decode(d.body), d.parameters),
          { filename = d.name .. ".template.json" })
      end
      for _, a in ipairs(d.assets or {}) do
        all[#all + 1] = nag.scan(json.decode(a.body), { filename = "assets/" .. a.key })
      end
    end
    assert.are.equal(text(nag.merge(all)), text(results))
    assert.is_truthy(#results.suppressed > 0)
  end)

  it("runs them again for a stack whose body or parameters changed", function()
    local stacks = example_plan()
    local d
    for _, s in ipairs(stacks) do
      if s.template and s.template.Resources and next(s.template.Resources) then
        for _, r in pairs(s.template.Resources) do
          if r.Type == "AWS::IAM::Role" then d = d or s end
        end
      end
    end
    assert.is_table(d)
    -- an edit, encoded again: a new statement with Resource "*" is found
    local id, role = next(d.template.Resources)
    while role.Type ~= "AWS::IAM::Role" do id, role = next(d.template.Resources, id) end
    role.Properties.Policies = role.Properties.Policies or json.array({})
    table.insert(role.Properties.Policies, { PolicyName = "extra", PolicyDocument = { Statement = {
      { Effect = "Allow", Action = "s3:PutObject", Resource = "*" } } } })
    d.body = json.encode(d.template, { pretty = true, sort_keys = true })
    local results
    local n = calls_of("W5", function() results = assert(synth.nag({ d })) end)
    assert.is_truthy(n > 0)
    local found = false
    for _, list in ipairs({ results.violations, results.suppressed }) do
      for _, v in ipairs(list) do
        if v.rule == "W5" and v.resource == id and v.path:find("Policies%[" .. (#role.Properties.Policies - 1) .. "%]") then
          found = true
        end
      end
    end
    assert.is_true(found)
    -- parameters changed: run again too
    local other
    for _, s in ipairs(stacks) do
      if s ~= d and s.template and type(s.template.Parameters) == "table" and next(s.template.Parameters) then
        other = other or s
      end
    end
    assert.are.equal(0, calls_of("F34", function() assert(synth.nag({ other })) end))
    other.parameters = other.parameters or {}
    other.parameters.SomethingNew = "x"
    assert.is_truthy(calls_of("F34", function() assert(synth.nag({ other })) end) > 0)
  end)
end)

describe("the compiled rule cache", function()
  it("compiles a list again when a rule in it is replaced in place", function()
    local rules = { {
      id = "W1001", severity = "warning", message = "first", reason = "r", types = { "AWS::S3::Bucket" },
      check = function() return { { path = "Properties" } } end,
    } }
    local t = Y("Resources: {B: {Type: AWS::S3::Bucket}}")
    assert.are.equal("first", nag.scan(t, { rules = rules }).violations[1].message)
    rules[1] = {
      id = "W1002", severity = "warning", message = "second", reason = "r", types = { "AWS::S3::Bucket" },
      check = function() return { { path = "Properties" } } end,
    }
    local r = nag.scan(t, { rules = rules })
    assert.are.equal(1, #r.violations)
    assert.are.equal("second", r.violations[1].message)
    rules[2] = rules[1]
    rules[1] = { id = "W1003", severity = "warning", message = "third", reason = "r", types = { "*" },
      check = function() return nil end }
    assert.are.equal(1, #nag.scan(t, { rules = rules }).violations)
  end)

  it("shares one compiled set between lists of the same rules", function()
    assert.are.equal(engine.compile(nag.rules()), engine.compile(nag.rules()))
    assert.are_not.equal(engine.compile(nag.builtin_rules()), engine.compile({ nag.builtin_rules()[1] }))
  end)
end)

describe("rule context caches", function()
  it("answer the same (and the same table) for the same value within a scan", function()
    local t = Y(TEMPLATE)
    local ctx = util.context(t)
    local role = t.Resources.Role
    local p1 = ctx:policies(role)
    assert.are.equal(p1, ctx:policies(role))
    local st = ctx:statements(p1[1].doc)
    assert.are.equal(st, ctx:statements(p1[1].doc))
    assert.are.equal(3, #st) -- two statements, and the Fn::If one (NoValue on the other side)
    local actions = st[1].stmt.Action
    assert.are.same({ "ec2:Describe*", "s3:*", unknown = {} }, ctx:strings(actions))
    assert.are.equal(ctx:strings(actions), ctx:strings(actions))
    assert.is_true(ctx:allows(st[1].stmt))
    -- a fresh context computes the same
    local fresh = util.context(t)
    fresh._strings, fresh._statements, fresh._policies, fresh._allows = nil, nil, nil, nil
    assert.are.same(ctx:strings(actions), fresh:strings(actions))
    assert.are.same(#ctx:statements(p1[1].doc), #fresh:statements(p1[1].doc))
  end)

  it("list a resource's Allow statements with their kind and path", function()
    local role = {
      Type = "AWS::IAM::Role",
      Properties = {
        AssumeRolePolicyDocument = { Statement = { { Effect = "Allow", Principal = { Service = "ecs.amazonaws.com" },
          Action = "sts:AssumeRole" } } },
        Policies = {
          { PolicyName = "a", PolicyDocument = { Statement = {
            { Effect = "Deny", Action = "s3:*", Resource = "*" },
            { Effect = "Allow", Action = "s3:GetObject", Resource = "*" },
            { Effect = { ["Fn::If"] = { "C", "Allow", "Deny" } }, Action = "sqs:*", Resource = "*" },
            { Effect = { Ref = "Eff" }, Action = "sns:*", Resource = "*" },
          } } },
        },
      },
    }
    local ctx = util.context({ Parameters = { Eff = { Type = "String", Default = "Deny" } },
      Resources = { Role = role } })
    local got = ctx:allowed_statements(role)
    assert.are.equal(got, ctx:allowed_statements(role)) -- cached
    local summary = {}
    for i, e in ipairs(got) do summary[i] = { kind = e.kind, path = e.path, action = e.stmt.Action } end
    assert.are.same({
      { kind = "identity", path = { "Properties", "Policies", 1, "PolicyDocument", "Statement", 2 }, action = "s3:GetObject" },
      { kind = "identity", path = { "Properties", "Policies", 1, "PolicyDocument", "Statement", 3 }, action = "sqs:*" },
      { kind = "trust", path = { "Properties", "AssumeRolePolicyDocument", "Statement", 1 }, action = "sts:AssumeRole" },
    }, summary)
    assert.are.same({}, ctx:allowed_statements({ Type = "AWS::S3::Bucket" }))
  end)

  it("evaluate intrinsic lists as before (Fn::If items, NoValue, unknown parts)", function()
    local t = Y([[
Parameters:
  A: {Type: String, AllowedValues: [x, y]}
Resources: {}
]])
    local ctx = util.context(t)
    local v = { "a", { Ref = "A" }, { ["Fn::GetAtt"] = { "R", "Arn" } }, { Ref = "AWS::NoValue" } }
    local s = ctx:strings(v)
    assert.are.same({ "a", "x", "y" }, { s[1], s[2], s[3] })
    assert.are.equal(3, #s)
    assert.are.same({ "Fn::GetAtt R.Arn" }, s.unknown)
    local items = ctx:items(v)
    assert.are.equal(4, #items) -- a, x, y (index 2 twice) and the unknown GetAtt kept raw
    assert.is_true(items[4].unknown)
  end)
end)

describe("bounded name caches", function()
  it("judge secret-looking names the same past the cache size", function()
    local first = {}
    for i = 1, 5000 do
      first[i] = { util.secret_name("DbPassword" .. i), util.secret_name("Db" .. i .. "PasswordArn") }
      assert.are.same({ true, false }, first[i])
    end
    for i = 1, 5000 do
      assert.are.same(first[i], { util.secret_name("DbPassword" .. i), util.secret_name("Db" .. i .. "PasswordArn") })
    end
    assert.is_true(util.secret_name("ApiToken"))
    assert.is_false(util.secret_name("TokenUrl"))
  end)

  it("match IAM wildcards the same past the cache size", function()
    for i = 1, 5000 do
      assert.is_true(util.glob_match("s3:Get*" .. i, "S3:GETOBJECT" .. i))
      assert.is_false(util.glob_match("s3:Put" .. i .. "?", "s3:Put" .. i))
    end
    assert.is_true(util.glob_match("iam:Pass*", "iam:PassRole"))
    assert.is_true(util.glob_match("i?m:*", "iam:PassRole"))
    assert.is_false(util.glob_match("iam:Pass.ole", "iam:PassRole")) -- "." is literal
  end)

  it("scan a template with thousands of secret-looking parameters", function()
    local params = {}
    for i = 1, 3000 do params["Secret" .. i .. "Password"] = { Type = "String", Default = "x" } end
    local r = nag.scan({ Parameters = params, Resources = { B = { Type = "AWS::SNS::Topic" } } },
      { only = { "F34", "F35" } })
    assert.are.equal(6000, #r.violations)
    assert.are.equal("Secret1000Password", r.violations[1].resource)
  end)
end)
