-- lumu.synth.plan: ordering, environment selection, sizes (needs_s3),
-- formats, parameter/tag files, the subnet-in-VPC check, hostile input.
local config = require "lumu.config"
local synth = require "lumu.synth"
local json = require "lumu.json"

local function model(yml)
  local m, p = config.load_string(yml)
  if not m then error(config.format_error(p[1])) end
  return m
end

local function names(stacks)
  local out = {}
  for _, d in ipairs(stacks) do out[#out + 1] = d.name end
  return out
end

local BASIC = [[
environments: [{name: a, provider: ecs-fargate}, {name: b}]
service: {name: s, pathPatterns: [/s/*]}
]]

describe("synth.plan", function()
  it("orders environment stacks first and every stack after what it depends on", function()
    local stacks, report = synth.plan(model(BASIC))
    assert.are.same({}, report.errors)
    assert.are.equal(0, report.problems)
    local pos = {}
    for i, d in ipairs(stacks) do pos[d.name] = i end
    assert.are.equal(1, pos["mu-iam-common"])
    for i, d in ipairs(stacks) do
      for _, dep in ipairs(d.depends) do
        if pos[dep] then assert.is_true(pos[dep] < i, d.name .. " after " .. dep) end
      end
    end
    assert.is_true(pos["mu-environment-b"] < pos["mu-repo-s"])
  end)

  it("the stable topological sort keeps the given order when it can and breaks cycles", function()
    local function d(name, deps) return { name = name, depends = deps or {} } end
    assert.are.same({ "x", "y", "z" }, names(synth._order({ d("y", { "x" }), d("x"), d("z", { "y" }) })))
    assert.are.same({ "a", "b" }, names(synth._order({ d("a"), d("b", { "missing" }) })))
    local cyc = names(synth._order({ d("p", { "q" }), d("q", { "p" }), d("r", { "p" }) }))
    assert.are.equal(3, #cyc) -- every stack once, r after p
    assert.are.equal("r", cyc[3])
  end)

  it("--env keeps the named environments; unknown names are errors", function()
    local stacks, report = synth.plan(model(BASIC), { environments = { "B" } })
    assert.are.same({}, report.errors)
    for _, d in ipairs(stacks) do
      assert.is_nil(d.name:find("%-a$"), d.name)
    end
    assert.is_truthy(names(stacks)[1] == "mu-iam-common")
    local _, r2 = synth.plan(model(BASIC), { environments = { "nope" } })
    assert.are.equal(1, #r2.errors)
    assert.matches("no environment named 'nope' %(environments: a, b%)", r2.errors[1].message)
  end)

  it("an environment the file does not define stands for one deployed elsewhere", function()
    local stacks, report = synth.plan(model("service: {name: s}\n"), { environments = { "prod" } })
    assert.are.same({}, report.errors)
    assert.are.same({ "mu-repo-s", "mu-iam-service-s-prod", "mu-service-s-prod" }, names(stacks))
    assert.are.equal("prod", report.warnings[1].key)
  end)

  it("measures bodies and flags templates over 51,200 bytes", function()
    local yml = { "environments: [{name: a}]\nservice: {name: s}\ntemplates:\n  mu-service-s-a:\n    Resources:\n" }
    for i = 1, 200 do
      yml[#yml + 1] = string.format("      Topic%d: {Type: 'AWS::SNS::Topic', Properties: {TopicName: %s}}\n", i,
        string.rep("t", 200))
    end
    local stacks = synth.plan(model(table.concat(yml)))
    for _, d in ipairs(stacks) do
      assert.are.equal(#d.body, d.size)
      assert.are.equal(d.size > synth.NEEDS_S3, d.needs_s3)
      if d.name == "mu-service-s-a" then
        assert.is_true(d.needs_s3)
        assert.matches("needs S3", table.concat(d.notes, ";"))
      end
    end
  end)

  it("writes YAML in long form on request, the same template as JSON", function()
    local m = model(BASIC)
    local j = synth.plan(m)
    local y = synth.plan(m, { format = "yaml" })
    local yaml = require "lumu.yaml"
    for i, d in ipairs(y) do
      assert.is_nil(d.body:find("!Ref", 1, true))
      assert.are.same(json.decode(j[i].body), json.decode(json.encode(assert(yaml.load(d.body)))))
    end
  end)

  it("is deterministic", function()
    local a = synth.plan(model(BASIC))
    local b = synth.plan(model(BASIC))
    for i = 1, #a do assert.are.equal(a[i].body, b[i].body) end
  end)

  it("raises on misuse", function()
    assert.has_error(function() synth.plan(nil) end)
    assert.has_error(function() synth.plan(model(BASIC), { format = "xml" }) end)
    assert.has_error(function() synth.plan(model(BASIC), 42) end)
  end)
end)

describe("parameter and tag files", function()
  it("are the AWS CLI's lists, sorted by key, values as strings", function()
    local d = { parameters = { B = "2", A = "1" }, tags = { ["mu:type"] = "x", Z = "z" } }
    assert.are.same({ { ParameterKey = "A", ParameterValue = "1" }, { ParameterKey = "B", ParameterValue = "2" } },
      json.decode(synth.parameters_json(d)))
    local text = synth.tags_json(d)
    assert.are.same({ { Key = "Z", Value = "z" }, { Key = "mu:type", Value = "x" } }, json.decode(text))
    assert.is_truthy(text:find('"Key": "Z",\n    "Value": "z"', 1, true)) -- Key before Value
    assert.are.equal("[]", synth.parameters_json({ parameters = {} }):gsub("%s", ""))
  end)
end)

describe("JSON strings of the parameter and tag files", function()
  it("are escaped exactly as lumu.json does", function()
    for _, v in ipairs({ "plain", "", "a\1b\31\"\\/\n\t\b\f\r\127é", "x\0y", string.rep("q\"", 100) }) do
      assert.are.equal(json.encode(v), synth._quote(v))
    end
  end)
end)

describe("synth.network_check", function()
  local function vpc(vpc_cidr, subnet)
    return { name = "v", parameters = { C = subnet }, template = {
      Parameters = { C = { Type = "String", Default = "x" } },
      Resources = {
        VPC = { Type = "AWS::EC2::VPC", Properties = { CidrBlock = vpc_cidr } },
        Sub = { Type = "AWS::EC2::Subnet", Properties = { VpcId = { Ref = "VPC" }, CidrBlock = { Ref = "C" } } },
      } } }
  end
  it("accepts subnets inside the VPC and skips empty ones", function()
    assert.are.same({}, synth.network_check(vpc("10.0.0.0/16", "10.0.5.0/24")))
    assert.are.same({}, synth.network_check(vpc("10.0.0.0/16", "")))
    assert.are.same({}, synth.network_check(vpc("0.0.0.0/0", "192.168.1.0/24")))
  end)
  it("reports subnets outside the VPC, naming the parameter", function()
    local msgs = synth.network_check(vpc("10.200.0.0/16", "10.0.100.0/24"))
    assert.are.equal(1, #msgs)
    assert.matches("subnet Sub gets 10.0.100.0/24 %(parameter C%), outside the VPC's 10.200.0.0/16", msgs[1])
    assert.are.equal(1, #synth.network_check(vpc("10.0.0.0/16", "10.0.0.0/8")))
  end)
  it("containment arithmetic", function()
    assert.is_true(synth._inside("10.1.2.0/24", "10.1.0.0/16"))
    assert.is_false(synth._inside("10.2.2.0/24", "10.1.0.0/16"))
    assert.is_false(synth._inside("bad", "10.1.0.0/16"))
    assert.is_true(synth._inside("255.255.255.255/32", "0.0.0.0/0"))
  end)
end)

describe("hostile overrides", function()
  it("a deeply nested fragment is merged and encoded", function()
    local lines = { "environments: [{name: a}]\ntemplates:\n  mu-vpc-a:\n    Metadata:\n" }
    local ind = "      "
    for i = 1, 90 do
      lines[#lines + 1] = ind .. "k" .. i .. ":\n"
      ind = ind .. " "
    end
    lines[#lines + 1] = ind .. "leaf: 1\n"
    local m = assert(config.load_string(table.concat(lines)))
    local stacks, report = synth.plan(m)
    assert.are.same({}, report.errors)
    for _, d in ipairs(stacks) do
      if d.name == "mu-vpc-a" then assert.is_truthy(d.body:find('"leaf": 1', 1, true)) end
    end
  end)
end)
