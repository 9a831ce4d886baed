-- mu's MapApply semantics (lumu.gen.override.merge) and applying a model's
-- templates / parameters / tags entries to stack descriptors.
local override = require "lumu.gen.override"
local config = require "lumu.config"
local json = require "lumu.json"
local cfn = require "lumu.cfn"

local function merge(dest, src)
  local v, err = override.merge(dest, src)
  assert(err == nil, err)
  return v
end

local function arr(t) return json.array(t) end

describe("override.merge (mu MapApply)", function()
  it("merges maps recursively and replaces scalars", function()
    local d = { a = 1, m = { x = "1", y = { z = true } } }
    merge(d, { a = 2, m = { y = { w = "new" }, v = "v" }, n = "added" })
    assert.are.same({ a = 2, m = { x = "1", y = { z = true, w = "new" }, v = "v" }, n = "added" }, d)
  end)

  it("appends lists", function()
    local d = { Tags = arr { { Key = "a", Value = "1" } } }
    merge(d, { Tags = arr { { Key = "b", Value = "2" }, { Key = "c", Value = "3" } } })
    assert.are.same({ { Key = "a", Value = "1" }, { Key = "b", Value = "2" }, { Key = "c", Value = "3" } }, d.Tags)
    assert.are.equal("array", json.kind(d.Tags))
  end)

  it("Fn::Replace replaces a map or a list outright", function()
    local d = { P = { a = 1, b = 2 }, L = arr { 1, 2, 3 } }
    merge(d, { P = { ["Fn::Replace"] = { c = 3 } }, L = { ["Fn::Replace"] = arr { 9 } } })
    assert.are.same({ c = 3 }, d.P)
    assert.are.same({ 9 }, d.L)
  end)

  it("Fn::Splice inserts, merges the first `count` overlapping items and deletes", function()
    local d = { L = arr { { n = "a" }, { n = "b" }, { n = "c" } } }
    merge(d, { L = { ["Fn::Splice"] = arr { 1, 1, arr { { extra = true }, { n = "new" } } } } })
    assert.are.same({ { n = "a" }, { n = "b", extra = true }, { n = "new" }, { n = "c" } }, d.L)

    local e = { L = arr { "a", "b", "c" } }
    merge(e, { L = { ["Fn::Splice"] = arr { 1, 1, arr {} } } })
    assert.are.same({ "a", "c" }, e.L) -- deletes the second element

    local f = { L = arr { "a" } }
    merge(f, { L = { ["Fn::Splice"] = arr { 10, 0, arr { "z" } } } })
    assert.are.same({ "a", "z" }, f.L) -- start is clamped to the length

    local g = {}
    merge(g, { L = { ["Fn::Splice"] = arr { 0, 0, arr { "only" } } } })
    assert.are.same({ "only" }, g.L) -- no list yet: the items
  end)

  it("resolves Fn::Replace / Fn::Splice inside new subtrees", function()
    local d = {}
    merge(d, { R = { Type = "AWS::SNS::Topic", Properties = { ["Fn::Replace"] = { TopicName = "t" } } } })
    assert.are.same({ Type = "AWS::SNS::Topic", Properties = { TopicName = "t" } }, d.R)
  end)

  it("deletes a key given null, and replaces a scalar given a map", function()
    local d = { a = 1, b = "x" }
    merge(d, { a = json.null, b = { Ref = "P" } })
    assert.is_nil(d.a)
    assert.are.same({ Ref = "P" }, d.b)
  end)

  it("returns errors for bad Fn::Splice, deep nesting and cycles (never raises)", function()
    local _, err = override.merge({ L = arr { 1 } }, { L = { ["Fn::Splice"] = arr { "x", 0, arr {} } } })
    assert.matches("Fn::Splice start and count", err)
    _, err = override.merge({ L = arr { 1 } }, { L = { ["Fn::Splice"] = arr { 0, 0 } } })
    assert.matches("Fn::Splice needs", err)
    _, err = override.merge({ M = { a = 1 } }, { M = { ["Fn::Splice"] = arr { 0, 0, arr { 1 } } } })
    assert.matches("needs a list here", err)
    local deep = {}
    local cur = deep
    for _ = 1, 500 do cur.x = {}; cur = cur.x end
    _, err = override.merge({}, deep)
    assert.matches("nested more than", err)
    local cyc = {}
    cyc.self = cyc
    _, err = override.merge({ self = {} }, cyc)
    assert.matches("refers to itself", err)
  end)
end)

-- A small descriptor: a template with one parameter and one resource.
local function descriptor(name)
  local t = cfn.template()
  t:parameter("VpcCidrBlock", { Type = "String", Default = "10.0.0.0/16" })
  t:parameter("ImageId", { Type = "String", Default = "ami-1" })
  t:resource("ElbTargetGroup", "AWS::ElasticLoadBalancingV2::TargetGroup", {
    TargetGroupAttributes = { { Key = "deregistration_delay.timeout_seconds", Value = "60" } },
  })
  return { name = name, kind = "x", template = t:to_table(),
    parameters = { VpcCidrBlock = "10.0.0.0/16", ImageId = "ami-1" }, tags = { ["mu:type"] = "x" } }
end

local function model(yml)
  local m, p = config.load_string(yml)
  if not m then error(config.format_error(p[1])) end
  return m
end

describe("override.apply", function()
  it("matches keys as ^regex$ against stack names and merges in file order", function()
    local m = model([[
templates:
  mu-vpc-.*:
    Resources:
      ElbTargetGroup:
        Properties:
          TargetGroupAttributes:
          - Key: stickiness.enabled
            Value: true
  mu-vpc:
    Resources:
      Other: {Type: "AWS::SNS::Topic"}
]])
    local d = descriptor("mu-vpc-acceptance")
    local seen = {}
    assert.are.same({}, override.apply(d, m, seen))
    local attrs = d.template.Resources.ElbTargetGroup.Properties.TargetGroupAttributes
    assert.are.equal(2, #attrs)
    assert.are.equal("stickiness.enabled", attrs[2].Key)
    assert.is_nil(d.template.Resources.Other) -- "mu-vpc" must match the whole name
    assert.are.same({ "templates" }, d.overrides)
    local un = override.unmatched(m, seen)
    assert.are.equal(1, #un)
    assert.matches('templates%["mu%-vpc"%]', un[1].key)
    assert.matches("matches no generated stack", un[1].message)
  end)

  it("a changed parameter Default also changes the value passed to the stack", function()
    local m = model([[
templates:
  mu-vpc-acceptance:
    Parameters:
      VpcCidrBlock:
        Default: 10.200.0.0/16
]])
    local d = descriptor("mu-vpc-acceptance")
    override.apply(d, m)
    assert.are.equal("10.200.0.0/16", d.template.Parameters.VpcCidrBlock.Default)
    assert.are.equal("10.200.0.0/16", d.parameters.VpcCidrBlock)
  end)

  it("skips, with a warning, fragments for resources the stack does not have", function()
    local m = model([[
templates:
  mu-service-x-y:
    Resources:
      Missing:
        Properties: {A: 1}
      New:
        Type: AWS::SNS::Topic
]])
    local d = descriptor("mu-service-x-y")
    local diags = override.apply(d, m)
    assert.are.equal(1, #diags)
    assert.are.equal("warning", diags[1].severity)
    assert.matches("Resources%.Missing", diags[1].key)
    assert.is_nil(d.template.Resources.Missing)
    assert.are.equal("AWS::SNS::Topic", d.template.Resources.New.Type)
  end)

  it("parameters and tags overrides win; unknown parameters are errors; empty tags are dropped", function()
    local m = model([[
parameters:
  mu-env-.*:
    ImageId: ami-override
    Nope: x
tags:
  'mu-.*':
    CostCenter: research
    mu:type: ""
]])
    local d = descriptor("mu-env-a")
    local diags = override.apply(d, m)
    assert.are.equal("ami-override", d.parameters.ImageId)
    assert.is_nil(d.parameters.Nope)
    assert.are.equal(1, #diags)
    assert.are.equal("error", diags[1].severity)
    assert.matches("has no parameter 'Nope'", diags[1].message)
    assert.are.equal("research", d.tags.CostCenter)
    assert.is_nil(d.tags["mu:type"])
    assert.are.same({ "parameters", "tags" }, d.overrides)
  end)

  it("reports a bad Fn::Splice as an error naming the key", function()
    local m = model([=[
templates:
  s:
    Resources:
      ElbTargetGroup:
        Properties:
          TargetGroupAttributes: {Fn::Splice: [0, x, []]}
]=])
    local d = descriptor("s")
    local diags = override.apply(d, m)
    assert.are.equal(1, #diags)
    assert.are.equal("error", diags[1].severity)
    assert.matches("Fn::Splice", override.format(diags[1]))
  end)

  it("runs Lua override functions from lumu.lua on the template table", function()
    local m, p = config.load_string([[
override { stack = "mu-vpc-.*", template = function(t, stack)
  t.Resources.ElbTargetGroup.Properties.Port = 8443
  t.Metadata = { editedFor = stack.name }
end }
override { stack = "other", template = function() end }
]], { kind = "lua", filename = "lumu.lua" })
    assert.is_truthy(m, p and p[1] and config.format_error(p[1]))
    local d = descriptor("mu-vpc-acceptance")
    local diags = override.apply(d, m)
    assert.are.same({}, diags)
    assert.are.equal(8443, d.template.Resources.ElbTargetGroup.Properties.Port)
    assert.are.equal("mu-vpc-acceptance", d.template.Metadata.editedFor)
    local untouched = descriptor("mu-service-x")
    override.apply(untouched, m)
    assert.is_nil(untouched.template.Resources.ElbTargetGroup.Properties.Port)
  end)

  it("a Lua override may return a replacement, and its errors name the override", function()
    local m = assert(config.load_string([[
override { stack = "a", template = function(t) return { Resources = t.Resources, Description = "new" } end }
override { stack = "b", template = function(t) error("boom") end }
override { stack = "c", template = function(t) return 42 end }
]], { kind = "lua", filename = "lumu.lua" }))
    local a = descriptor("a")
    assert.are.same({}, override.apply(a, m))
    assert.are.equal("new", a.template.Description)
    local b = descriptor("b")
    local db = override.apply(b, m)
    assert.are.equal("error", db[1].severity)
    assert.matches("override function failed on b: .*boom", db[1].message)
    assert.matches("lumu.lua:2: templates[\"b\"]", override.format(db[1]), 1, true)
    local dc = override.apply(descriptor("c"), m)
    assert.matches("must edit the template or return a table, got number", dc[1].message)
  end)
end)
