-- Specs of lumu.cfn's template builder and intrinsic function helpers.
local cfn = require "lumu.cfn"
local json = require "lumu.json"
local yaml = require "lumu.yaml"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIXTURES = here .. "/../fixtures/cfn"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Calls f, which must raise; returns the message.
local function raised(f)
  local ok, e = pcall(f)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

-- The message must name this spec file and `line` (the caller's line).
local function assert_at(e, line)
  assert.matches("cfn_builder_spec%.lua:" .. line .. ": ", e)
end

local function this_line() return debug.getinfo(2, "l").currentline end

describe("lumu.cfn intrinsics", function()
  it("Ref takes names and handles", function()
    assert.are.same({ Ref = "X" }, cfn.Ref("X"))
    local t = cfn.template()
    local p = t:parameter("P", { Type = "String" })
    assert.are.same({ Ref = "P" }, cfn.Ref(p))
  end)

  it("GetAtt has a two-argument and a dotted form", function()
    assert.are.same({ ["Fn::GetAtt"] = { "Db", "Endpoint.Address" } }, cfn.GetAtt("Db", "Endpoint.Address"))
    assert.are.same({ ["Fn::GetAtt"] = { "Db", "Endpoint.Address" } }, cfn.GetAtt("Db.Endpoint.Address"))
    assert.are.same({ ["Fn::GetAtt"] = { "Db", { Ref = "Attr" } } }, cfn.GetAtt("Db", cfn.Ref("Attr")))
  end)

  it("Sub takes a string or a string and variables", function()
    assert.are.same({ ["Fn::Sub"] = "${AWS::Region}-x" }, cfn.Sub("${AWS::Region}-x"))
    local t = cfn.template()
    local b = t:resource("B", "AWS::S3::Bucket")
    assert.are.same({ ["Fn::Sub"] = { "${N}-${Id}", { N = "a", Id = { Ref = "B" } } } },
      cfn.Sub("${N}-${Id}", { N = "a", Id = b }))
  end)

  it("Join, Select, Split", function()
    assert.are.same({ ["Fn::Join"] = { ",", { "a", { Ref = "B" } } } }, cfn.Join(",", { "a", cfn.Ref("B") }))
    assert.are.same({ ["Fn::Join"] = { "", { Ref = "L" } } }, cfn.Join("", cfn.Ref("L")))
    assert.are.same({ ["Fn::Select"] = { 0, { "a", "b" } } }, cfn.Select(0, { "a", "b" }))
    assert.are.same({ ["Fn::Select"] = { "1", { Ref = "L" } } }, cfn.Select("1", cfn.Ref("L")))
    assert.are.same({ ["Fn::Split"] = { ",", { Ref = "S" } } }, cfn.Split(",", cfn.Ref("S")))
  end)

  it("GetAZs defaults to the stack's region", function()
    assert.are.same({ ["Fn::GetAZs"] = "" }, cfn.GetAZs())
    assert.are.same({ ["Fn::GetAZs"] = "eu-west-1" }, cfn.GetAZs("eu-west-1"))
    assert.are.same({ ["Fn::GetAZs"] = { Ref = "AWS::Region" } }, cfn.GetAZs(cfn.Region))
  end)

  it("If, Equals, And, Or, Not, Condition", function()
    local t = cfn.template()
    local c = t:condition("IsProd", cfn.Equals(cfn.Ref("Env"), "prod"))
    assert.are.same({ ["Fn::If"] = { "IsProd", 1, { Ref = "AWS::NoValue" } } }, cfn.If(c, 1, cfn.NoValue))
    assert.are.same({ ["Fn::Equals"] = { { Ref = "Env" }, "prod" } }, cfn.Equals(cfn.Ref("Env"), "prod"))
    assert.are.same({ ["Fn::And"] = { { Condition = "A" }, { Condition = "IsProd" } } }, cfn.And("A", c))
    assert.are.same({ ["Fn::Or"] = { { Condition = "A" }, { ["Fn::Equals"] = { 1, 1 } } } },
      cfn.Or({ "A", cfn.Equals(1, 1) }))
    assert.are.same({ ["Fn::Not"] = { { Condition = "A" } } }, cfn.Not("A"))
    assert.are.same({ Condition = "IsProd" }, cfn.Condition(c))
    assert.are.same({ Condition = "IsProd" }, c.condition)
  end)

  it("ImportValue, FindInMap, Base64, Cidr", function()
    assert.are.same({ ["Fn::ImportValue"] = { ["Fn::Sub"] = "${Net}-VpcId" } },
      cfn.ImportValue(cfn.Sub("${Net}-VpcId")))
    assert.are.same({ ["Fn::FindInMap"] = { "M", { Ref = "AWS::Region" }, "Ami" } },
      cfn.FindInMap("M", cfn.Region, "Ami"))
    assert.are.same({ ["Fn::FindInMap"] = { "M", "a", "b", { DefaultValue = "x" } } },
      cfn.FindInMap("M", "a", "b", { DefaultValue = "x" }))
    assert.are.same({ ["Fn::Base64"] = "#!/bin/sh" }, cfn.Base64("#!/bin/sh"))
    assert.are.same({ ["Fn::Cidr"] = { "10.0.0.0/16", 6, 8 } }, cfn.Cidr("10.0.0.0/16", 6, 8))
  end)

  it("Length, ToJsonString, Transform", function()
    assert.are.same({ ["Fn::Length"] = { 1, 2 } }, cfn.Length({ 1, 2 }))
    assert.are.same({ ["Fn::ToJsonString"] = { a = 1 } }, cfn.ToJsonString({ a = 1 }))
    assert.are.same({ ["Fn::Transform"] = { Name = "AWS::Include", Parameters = { Location = "s3://b/k" } } },
      cfn.Transform("AWS::Include", { Location = "s3://b/k" }))
  end)

  it("pseudo parameters are fresh tables", function()
    local names = { AccountId = "AWS::AccountId", Region = "AWS::Region", StackName = "AWS::StackName",
      StackId = "AWS::StackId", Partition = "AWS::Partition", URLSuffix = "AWS::URLSuffix",
      NoValue = "AWS::NoValue", NotificationARNs = "AWS::NotificationARNs" }
    for short, full in pairs(names) do
      assert.are.same({ Ref = full }, cfn[short])
    end
    local r = cfn.Region
    r.Ref = "changed"
    assert.are.same({ Ref = "AWS::Region" }, cfn.Region)
    assert.are_not.equal(cfn.Region, cfn.Region)
    assert.are.equal(8, #cfn.PSEUDO_PARAMETERS)
  end)

  it("misuse raises at the caller's line", function()
    local e, l = raised(function() cfn.Sub(42) end), this_line()
    assert_at(e, l)
    assert.matches("bad argument #1 to 'Sub' %(string expected, got 42%)", e)
    e, l = raised(function() cfn.Join(",", "a,b") end), this_line()
    assert_at(e, l)
    assert.matches("bad argument #2 to 'Join'", e)
    e, l = raised(function() cfn.Select(-1, { 1 }) end), this_line()
    assert_at(e, l)
    e, l = raised(function() cfn.Cidr("10.0.0.0/16", 300, 8) end), this_line()
    assert_at(e, l)
    assert.matches("integer in 1..256 expected, got 300", e)
    e, l = raised(function() cfn.Ref("") end), this_line()
    assert_at(e, l)
    e, l = raised(function() cfn.GetAtt("NoDot") end), this_line()
    assert_at(e, l)
    e, l = raised(function() cfn.Equals(1, nil) end), this_line()
    assert_at(e, l)
    e, l = raised(function() cfn.Sub("x", { [1] = "a" }) end), this_line()
    assert_at(e, l)
    e, l = raised(function() cfn.FindInMap("M", "a", "b", { Default = 1 }) end), this_line()
    assert_at(e, l)
  end)

  it("And/Or need 2 to 10 conditions; Not rejects values", function()
    assert.error_matches(function() cfn.And("A") end, "2 to 10 conditions expected, got 1")
    local eleven = {}
    for i = 1, 11 do eleven[i] = "C" .. i end
    assert.error_matches(function() cfn.Or(eleven) end, "got 11")
    assert.error_matches(function() cfn.Not(42) end, "condition expected")
    local t = cfn.template()
    local r = t:resource("R", "AWS::S3::Bucket")
    assert.error_matches(function() cfn.Not(r) end, "got a resource handle")
  end)

  it("sub_refs parses ${Name}, ${Res.Attr}, skips ${!Literal}", function()
    assert.are.same({ "AWS::Region", "Db.Endpoint.Address", "X" },
      cfn.sub_refs("${AWS::Region} ${!NotMe} ${Db.Endpoint.Address}-${ X }"))
    assert.are.same({}, cfn.sub_refs("no refs, ${ unterminated"))
    assert.are.same({ "A" }, cfn.sub_refs("${!}${A}"))
    assert.are.same({ "", "", "A B", "C", "D" }, cfn.sub_refs("${}${ \t }${\n A B\r}${C\f}${\vD}x"))
    assert.are.same({ "A.B.C", ".A", "A." }, cfn.sub_refs("${A.B.C}${.A}${A.}"))
  end)

  it("is_intrinsic recognises single-key function tables", function()
    assert.are.equal("Ref", cfn.is_intrinsic({ Ref = "X" }))
    assert.are.equal("Fn::Sub", cfn.is_intrinsic(cfn.Sub("x")))
    assert.is_nil(cfn.is_intrinsic({ Ref = "X", Other = 1 }))
    assert.is_nil(cfn.is_intrinsic({ Name = "x" }))
    assert.is_nil(cfn.is_intrinsic("Ref"))
  end)

  it("is_intrinsic answers the same in C and in Lua, and so does lumu.nag.util's", function()
    local util = require "lumu.cfn.util"
    local nagutil = require "lumu.nag.util"
    local t = cfn.template()
    local handle = t:parameter("P", { Type = "String" })
    local arg = { "a", "b" }
    local cases = { { Ref = "X" }, { ["Fn::Join"] = arg }, { Condition = "C" }, { Ref = "X", Other = 1 },
      { Name = "x" }, { ["Fn:"] = 1 }, { ["Fn::"] = 1 }, { Re = 1 }, { Refs = 1 }, { [1] = "Ref" }, {}, "Ref", 7,
      false, json.null, handle, setmetatable({ Ref = "X" }, { __pairs = function() return next, {} end }) }
    local use_c = util.use_c
    for i = 1, #cases + 1 do -- and nil
      local v = cases[i]
      for _, cond in ipairs({ false, true }) do
        util.use_c = true
        local ck, ca = util.intrinsic(v, cond)
        util.use_c = false
        local lk, la = util.intrinsic(v, cond)
        util.use_c = use_c
        assert.are.equal(lk, ck, "case " .. i)
        assert.are.equal(la, ca, "case " .. i)
      end
      -- nag's: Condition always, the key only (one value)
      local want = type(v) == "table" and v ~= handle and util.intrinsic(v, true) or nil
      if v == handle then want = nil end
      assert.are.equal(want, nagutil.intrinsic(v), "nag case " .. i)
      assert.are.equal(1, select("#", nagutil.intrinsic(v)))
    end
    assert.are.equal(arg, select(2, util.intrinsic(cases[2])))
  end)
end)

-- Position of `needle` in `s` (must be there).
local function pos(s, needle)
  local p = s:find(needle, 1, true)
  assert.is_truthy(p, "missing " .. needle)
  return p
end

describe("lumu.cfn template builder", function()
  it("orders the top-level sections", function()
    local t = cfn.template{ description = "d" }
    t:output("O", "v")
    t:resource("R", "AWS::SNS::Topic")
    t:condition("C", cfn.Equals(1, 1))
    t:rule("Ru", { Assertions = { { Assert = cfn.Equals(1, 1) } } })
    t:mapping("M", { a = { b = "c" } })
    t:parameter("P", { Type = "String" })
    t:transform("AWS::LanguageExtensions")
    t:metadata("K", "v")
    local s = t:to_json({ pretty = false })
    local order = { "AWSTemplateFormatVersion", "Description", "Metadata", "Transform", "Parameters",
      "Mappings", "Conditions", "Rules", "Resources", "Outputs" }
    for i = 2, #order do
      assert.is_true(pos(s, '"' .. order[i - 1] .. '"') < pos(s, '"' .. order[i] .. '"'), order[i])
    end
    assert.are.equal("AWS::LanguageExtensions", t:to_table().Transform)
  end)

  it("orders resource attributes and keeps declaration order of resources", function()
    local t = cfn.template()
    local c = t:condition("C", cfn.Equals(1, 1))
    t:resource("Zeta", "AWS::SNS::Topic")
    t:resource("Alpha", "AWS::S3::Bucket", { BucketName = "b" }, {
      UpdateReplacePolicy = "Retain", DeletionPolicy = "Retain", Metadata = { m = 1 },
      DependsOn = "Zeta", Condition = c, UpdatePolicy = { x = 1 }, CreationPolicy = { y = 1 } })
    local s = t:to_json({ pretty = false })
    assert.is_true(pos(s, '"Zeta"') < pos(s, '"Alpha"'))
    local a = s:sub(pos(s, '"Alpha"'))
    local attrs = { "Type", "Condition", "DependsOn", "Metadata", "Properties", "CreationPolicy",
      "UpdatePolicy", "DeletionPolicy", "UpdateReplacePolicy" }
    for i = 2, #attrs do
      assert.is_true(pos(a, '"' .. attrs[i - 1] .. '"') < pos(a, '"' .. attrs[i] .. '"'), attrs[i])
    end
  end)

  it("orders parameter and output attributes", function()
    local t = cfn.template()
    t:parameter("P", { NoEcho = true, MaxLength = 9, Default = "x", Description = "d", Type = "String" })
    t:resource("R", "AWS::SNS::Topic")
    t:output("O", "v", { export = "E", description = "d", condition = "C" })
    local s = t:to_json({ pretty = false })
    assert.matches('"P":{"Type":"String","Description":"d","Default":"x","MaxLength":9,"NoEcho":true}', s, 1, true)
    assert.matches('"O":{"Description":"d","Condition":"C","Value":"v","Export":{"Name":"E"}}', s, 1, true)
  end)

  it("is deterministic: the same script gives the same bytes", function()
    local build = dofile(FIXTURES .. "/service.lua")
    local a, b = build(cfn), build(cfn)
    assert.are.equal(a:to_json(), b:to_json())
    assert.are.equal(a:to_yaml(), b:to_yaml())
    assert.are.equal(a:to_json(), a:to_json())
  end)

  it("does not depend on the order tables were filled in", function()
    local keys = {}
    for i = 1, 40 do keys[i] = string.format("Key%02d", i) end
    local outputs = {}
    for round = 1, 6 do
      -- a different insertion order each round (deterministic shuffle)
      local order = table.move(keys, 1, #keys, 1, {})
      for i = #order, 2, -1 do
        local j = (i * 7 + round * 13) % i + 1
        order[i], order[j] = order[j], order[i]
      end
      local props, tags = {}, {}
      for _, k in ipairs(order) do props[k] = { [k .. "a"] = 1, [k .. "b"] = { x = k } } end
      for _, k in ipairs(order) do tags[k] = k end
      local t = cfn.template()
      t:mapping("M", { top = tags })
      t:resource("R", "Custom::Thing", props)
      outputs[round] = t:to_json() .. t:to_yaml({ cfn_short = true })
    end
    for round = 2, #outputs do assert.are.equal(outputs[1], outputs[round]) end
  end)

  it("matches the golden JSON and YAML of the service fixture", function()
    local t = dofile(FIXTURES .. "/service.lua")(cfn)
    assert.are.equal(read(FIXTURES .. "/service.json"), t:to_json())
    assert.are.equal(read(FIXTURES .. "/service.yaml"), t:to_yaml({ cfn_short = true }))
  end)

  it("round-trips through JSON and YAML", function()
    local t = dofile(FIXTURES .. "/service.lua")(cfn)
    local plain = json.decode(t:to_json())
    assert.are.same(plain, json.decode(t:to_json({ pretty = false })))
    assert.are.same(plain, yaml.load(t:to_yaml({ cfn_short = true })))
    assert.are.same(plain, yaml.load(t:to_yaml()))
  end)

  it("returns handles with ref, getatt, name and type", function()
    local t = cfn.template()
    local v = t:resource("Vpc", "AWS::EC2::VPC", { CidrBlock = "10.0.0.0/16" })
    assert.are.same({ Ref = "Vpc" }, v.ref)
    assert.are.same({ ["Fn::GetAtt"] = { "Vpc", "CidrBlock" } }, v:getatt("CidrBlock"))
    assert.are.equal("Vpc", v.name)
    assert.are.equal("AWS::EC2::VPC", v.type)
    assert.are.equal("cfn resource Vpc (AWS::EC2::VPC)", tostring(v))
    assert.error_matches(function() v.name = "x" end, "read%-only")
    local p = t:parameter("P", { Type = "String" })
    assert.error_matches(function() p:getatt("X") end, "needs a resource, not a parameter")
  end)

  it("turns resource and parameter handles into Refs inside values", function()
    local t = cfn.template()
    local p = t:parameter("Name", { Type = "String" })
    local v = t:resource("Vpc", "AWS::EC2::VPC")
    t:resource("S", "AWS::EC2::Subnet", { VpcId = v, Tags = { { Key = "n", Value = p } } })
    local props = t:to_table().Resources.S.Properties
    assert.are.same({ Ref = "Vpc" }, props.VpcId)
    assert.are.same({ Ref = "Name" }, props.Tags[1].Value)
    local c = t:condition("C", cfn.Equals(p, "x"))
    local e, l = raised(function() t:resource("T", "AWS::SNS::Topic", { TopicName = c }) end), this_line()
    assert_at(e, l)
    assert.matches("TopicName: a condition handle cannot be used as a value", e)
  end)

  it("rejects duplicate and invalid logical ids at the call site", function()
    local t = cfn.template()
    t:resource("Web", "AWS::SNS::Topic")
    local e, l = raised(function() t:resource("Web", "AWS::SNS::Topic") end), this_line()
    assert_at(e, l)
    assert.matches("duplicate resource name 'Web'", e)
    e, l = raised(function() t:resource("web-1", "AWS::SNS::Topic") end), this_line()
    assert_at(e, l)
    assert.matches("1%-255 alphanumeric", e)
    assert.error_matches(function() t:resource("", "AWS::SNS::Topic") end, "alphanumeric")
    assert.error_matches(function() t:resource(string.rep("a", 256), "AWS::SNS::Topic") end, "alphanumeric")
    assert.error_matches(function() t:resource(42, "AWS::SNS::Topic") end, "alphanumeric")
    t:resource(string.rep("a", 255), "AWS::SNS::Topic")
    assert.error_matches(function() t:output("Bad.Name", "x") end, "alphanumeric")
    assert.error_matches(function() t:parameter("Bad Name", { Type = "String" }) end, "alphanumeric")
  end)

  it("keeps parameters and resources in one namespace", function()
    local t = cfn.template()
    t:parameter("Name", { Type = "String" })
    assert.error_matches(function() t:resource("Name", "AWS::SNS::Topic") end, "'Name' is already a parameter")
    t:resource("Topic", "AWS::SNS::Topic")
    assert.error_matches(function() t:parameter("Topic", { Type = "String" }) end, "'Topic' is already a resource")
    -- outputs and conditions have their own namespaces
    t:output("Topic", "x")
    t:condition("Topic", cfn.Equals(1, 1))
  end)

  it("checks resource types and options", function()
    local t = cfn.template()
    local e, l = raised(function() t:resource("A", "S3Bucket") end), this_line()
    assert_at(e, l)
    assert.matches("bad argument #2 to 'resource'", e)
    t:resource("C", "Custom::My-Thing_1")
    t:resource("M", "My::Org::Thing::MODULE")
    assert.error_matches(function() t:resource("D", "Custom::" .. string.rep("x", 61)) end, "#2")
    e, l = raised(function() t:resource("B", "AWS::S3::Bucket", {}, { DependOn = "C" }) end), this_line()
    assert_at(e, l)
    assert.matches("unknown option 'DependOn' %(did you mean 'DependsOn'%?%)", e)
    assert.error_matches(function() t:resource("B", "AWS::S3::Bucket", {}, { DependsOn = "B" }) end,
      "cannot depend on itself")
    assert.error_matches(function() t:resource("B", "AWS::S3::Bucket", {}, { DeletionPolicy = "Keep" }) end,
      "DeletionPolicy must be one of Delete, Retain, RetainExceptOnCreate, Snapshot, got 'Keep'")
    assert.error_matches(function() t:resource("B", "AWS::S3::Bucket", { "a" }) end, "table of properties expected")
    assert.error_matches(function() t:resource("B", "AWS::S3::Bucket", {}, { DependsOn = { 1 } }) end,
      "DependsOn%[1%]")
    local b = t:resource("B", "AWS::S3::Bucket", {}, { DependsOn = { "C", t:resource("X", "AWS::SNS::Topic") } })
    assert.are.same({ "C", "X" }, t:get("resource", b.name).DependsOn)
    assert.is_nil(t:get("resource", "B").Properties) -- empty props are left out
  end)

  it("validates parameters", function()
    local t = cfn.template()
    assert.error_matches(function() t:parameter("P", { Default = "x" }) end, "Type must be a CloudFormation parameter type, got nil")
    assert.error_matches(function() t:parameter("P", { Type = "Strin" }) end, "got 'Strin'")
    assert.error_matches(function() t:parameter("P", { Type = "String", Defualt = "x" }) end,
      "unknown parameter attribute 'Defualt' %(did you mean 'Default'%?%)")
    local e, l = raised(function() t:parameter("P", { Type = "String", Default = "c", AllowedValues = { "a", "b" } }) end), this_line()
    assert_at(e, l)
    assert.matches("Default 'c' is not one of AllowedValues", e)
    assert.error_matches(function() t:parameter("P", { Type = "String", NoEcho = "yes" }) end, "NoEcho")
    assert.error_matches(function() t:parameter("P", { Type = "Number", MinValue = "low" }) end, "MinValue")
    for _, ty in ipairs({ "Number", "List<Number>", "CommaDelimitedList", "AWS::EC2::VPC::Id",
      "List<AWS::EC2::Subnet::Id>", "AWS::SSM::Parameter::Value<String>",
      "AWS::SSM::Parameter::Value<List<AWS::EC2::Image::Id>>", "AWS::SSM::Parameter::Name" }) do
      t:parameter("P" .. ty:gsub("%W", ""), { Type = ty })
    end
  end)

  it("validates mappings, conditions, rules, metadata and transforms", function()
    local t = cfn.template()
    assert.error_matches(function() t:mapping("M", { a = "b" }) end, "a: non%-empty table expected")
    assert.error_matches(function() t:mapping("M", {}) end, "non%-empty table of tables")
    assert.error_matches(function() t:mapping("M", { a = { b = { c = 1 } } }) end, "a.b: string, number or list")
    local m = t:mapping("M", { ["us-east-1"] = { Ami = "ami-1", Zones = { "a", "b" } } })
    assert.are.same({ ["Fn::FindInMap"] = { "M", "x", "y" } }, cfn.FindInMap(m, "x", "y"))
    assert.error_matches(function() t:condition("C", { Ref = "X" }) end, "condition function expected")
    assert.error_matches(function() t:condition("C", "Other") end, "condition function expected")
    t:condition("C", cfn.Not("D"))
    assert.error_matches(function() t:condition("C", cfn.Not("D")) end, "duplicate condition name 'C'")
    assert.error_matches(function() t:rule("R", { Assertions = "x" }) end, "Assertions must be a non%-empty list")
    assert.error_matches(function() t:metadata("", 1) end, "non%-empty string")
    t:metadata("K", { a = 1 })
    assert.error_matches(function() t:metadata("K", 2) end, "duplicate metadata key")
    t:transform("AWS::Serverless-2016-10-31")
    t:transform("AWS::LanguageExtensions")
    assert.error_matches(function() t:transform("AWS::LanguageExtensions") end, "duplicate transform")
    t:resource("R", "AWS::SNS::Topic")
    assert.are.same({ "AWS::Serverless-2016-10-31", "AWS::LanguageExtensions" }, t:to_table().Transform)
  end)

  it("builds outputs with description, export and condition", function()
    local t = cfn.template()
    local c = t:condition("C", cfn.Equals(1, 1))
    local r = t:resource("R", "AWS::SNS::Topic")
    t:output("Arn", r, { description = "topic", export = cfn.Sub("${AWS::StackName}-Arn"), condition = c })
    t:output("Name", r:getatt("TopicName"), { export = "TopicName" })
    local o = t:to_table().Outputs
    assert.are.same({ Description = "topic", Condition = "C", Value = { Ref = "R" },
      Export = { Name = { ["Fn::Sub"] = "${AWS::StackName}-Arn" } } }, o.Arn)
    assert.are.same({ Value = { ["Fn::GetAtt"] = { "R", "TopicName" } }, Export = { Name = "TopicName" } }, o.Name)
    assert.error_matches(function() t:output("X", nil) end, "value expected, got nil")
    assert.error_matches(function() t:output("X", { "a", "b" }) end, "string, number or intrinsic function expected")
    assert.error_matches(function() t:output("X", "v", { Description = "d" }) end, "unknown option 'Description'")
    assert.error_matches(function() t:output("X", "v", { export = 5 }) end, "export must be a name")
    assert.error_matches(function() t:output("X", "v", { description = string.rep("d", 1025) }) end, "1024")
  end)

  it("rejects values JSON cannot hold, with the path", function()
    local t = cfn.template()
    local e, l = raised(function() t:resource("A", "Custom::X", { Fn = print }) end), this_line()
    assert_at(e, l)
    assert.matches("bad argument #3 to 'resource' %(Fn: function values cannot be encoded%)", e)
    local cyc = { a = {} }
    cyc.a.back = cyc
    assert.error_matches(function() t:resource("A", "Custom::X", cyc) end, "a.back: cycle in table")
    assert.error_matches(function() t:resource("A", "Custom::X", { List = { 1, 0 / 0 } }) end, "List%[1%]: NaN")
    assert.error_matches(function() t:resource("A", "Custom::X", { O = setmetatable({}, {}) }) end, "metatable")
    assert.error_matches(function() t:resource("A", "Custom::X", { [true] = 1 }) end, "key true cannot be encoded")
    local deep = {}
    local cur = deep
    for _ = 1, 300 do cur.x = {}; cur = cur.x end
    assert.error_matches(function() t:resource("A", "Custom::X", deep) end, "nested too deeply")
    -- shared (non-cyclic) subtables are fine
    local tags = { { Key = "a", Value = "b" } }
    t:resource("A", "Custom::X", { T1 = tags, T2 = tags })
  end)

  it("copies values in and out", function()
    local t = cfn.template()
    local props = { Name = "a", List = { 1, 2 } }
    t:resource("R", "Custom::X", props)
    props.Name = "changed"
    props.List[1] = 99
    local out = t:to_table()
    assert.are.same({ Name = "a", List = { 1, 2 } }, out.Resources.R.Properties)
    out.Resources.R.Properties.Name = "mutated"
    assert.are.equal("a", t:to_table().Resources.R.Properties.Name)
  end)

  it("to_table({consume = true}) hands over its tables and uses the template up", function()
    local function build()
      local t = cfn.template({ description = "d" })
      local p = t:parameter("P", { Type = "String", Default = "x", AllowedValues = { "x", "y" } })
      t:mapping("M", { A = { B = "c" } })
      t:condition("C", cfn.Equals(p, "x"))
      local r = t:resource("R", "AWS::S3::Bucket", { BucketName = p, Tags = { { Key = "k", Value = cfn.Sub("${P}") } } },
        { Condition = "C", DeletionPolicy = "Retain", Metadata = { Note = json.null } })
      t:output("O", r.ref, { export = cfn.Sub("${AWS::StackName}-o"), condition = "C" })
      t:metadata("Meta", { 1, 2 })
      t:transform("AWS::LanguageExtensions")
      return t, r
    end
    local t1 = build()
    local t2, r2 = build()
    local copied = t1:to_table()
    local consumed = t2:to_table({ consume = true })
    assert.are.same(copied, consumed)
    assert.are.equal(json.encode(copied, { pretty = true }), json.encode(consumed, { pretty = true }))
    assert.are.equal(yaml.dump(copied), yaml.dump(consumed))
    assert.are.equal("cfn template (used up)", tostring(t2))
    local e, l = raised(function() t2:resource("X", "AWS::SNS::Topic") end), this_line()
    assert_at(e, l)
    assert.matches("calling 'resource' on a cfn template that to_table%({consume = true}%) used up", e)
    assert.error_matches(function() t2:to_table() end, "used up")
    assert.error_matches(function() t2:to_json() end, "used up")
    assert.are.same({ Ref = "R" }, r2.ref) -- handles keep working
    assert.error_matches(function() t1:to_table({ copy = false }) end, "unknown option 'copy'")
    assert.error_matches(function() t1:to_table(true) end, "table expected")
    assert.are.same(copied, t1:to_table({ consume = false }))
  end)

  it("freezes and copies values the same way in C and in Lua", function()
    local util = require "lumu.cfn.util"
    local cfn_ = require "lumu.cfn" -- the instance using this util
    local use_c = util.use_c
    local function both(f)
      util.use_c = false
      local ok1, a = pcall(f)
      util.use_c = use_c
      local ok2, b = pcall(f)
      assert.are.equal(ok1, ok2)
      if ok1 then assert.are.same(a, b) else assert.are.equal(a, b) end
      return ok1, b
    end
    local t = cfn_.template()
    local p = t:parameter("P", { Type = "String" })
    local r = t:resource("R", "AWS::SNS::Topic")
    local cond = t:condition("C", cfn_.Equals("a", "b"))
    local shared = { 1, "two", json.null }
    local cyc = {}
    cyc.self = cyc
    local deep, cur = {}, nil
    cur = deep
    for _ = 1, 250 do cur.x = {}; cur = cur.x end
    local values = {
      "s", 1, 2.5, -0.0, math.mininteger, true, false, json.null, p, r,
      { p, r, { r } }, { a = { b = { c = shared }, d = shared }, e = json.array(), f = json.object() },
      json.ordered({ z = 1, a = { x = p } }, { "z" }), { [1] = "a", [2] = "b" }, { [3] = "sparse" },
      { n = 1e300, m = -5e-324, ["ü"] = "\0" },
      -- what the C version leaves to Lua, which raises with the path
      { f = print }, { x = { 0 / 0 } }, { math.huge }, setmetatable({}, {}), { [true] = 1 }, { [1.5] = 1 },
      cyc, { a = { cond } }, { io.stdout }, setmetatable({}, { __jsontype = "array", __metatable = "no" }),
      deep, nil,
    }
    local ok_count = 0
    for i = 1, 28 do
      local v = values[i]
      local ok, frozen = both(function() return util.freeze(v, 3, "resource", "Props") end)
      if ok then
        ok_count = ok_count + 1
        if type(v) == "table" then
          assert.are_not.equal(v, frozen)
          if v ~= p and v ~= r then assert.are.equal(getmetatable(v), getmetatable(frozen)) end
        end
        both(function() return util.copy(frozen) end)
        if type(frozen) == "table" then
          local c = util.copy(frozen)
          assert.are_not.equal(frozen, c)
          assert.are.equal(getmetatable(frozen), getmetatable(c))
        end
      end
    end
    assert.are.equal(16, ok_count)
    local _, e = both(function() return util.freeze({ a = { { x = print } } }, 3, "resource") end)
    assert.matches("bad argument #3 to 'resource' %(a%[0%]%.x: function values cannot be encoded%)", e)
    _, e = both(function() return util.freeze({ a = { cond } }, 2, "output", "Value") end)
    assert.matches("Value%.a%[0%]: a condition handle cannot be used as a value", e)
  end)

  it("keeps json.array/json.object markers", function()
    local t = cfn.template()
    t:resource("Sg", "AWS::EC2::SecurityGroup", { GroupDescription = "d", SecurityGroupIngress = json.array(),
      Tags = json.array({}), Extra = json.object() })
    local s = t:to_json({ pretty = false })
    assert.matches('"SecurityGroupIngress":[]', s, 1, true)
    assert.matches('"Extra":{}', s, 1, true)
  end)

  it("writes compact JSON on request and an empty Resources object", function()
    local t = cfn.template()
    assert.are.equal('{"AWSTemplateFormatVersion":"2010-09-09","Resources":{}}', t:to_json({ pretty = false }))
    assert.are.equal(0, #t:to_json():match("^(.-){"))
    assert.is_truthy(t:to_json():find("\n  \"Resources\": {}\n", 1, true))
  end)

  it("t:check finds references that were never declared", function()
    local t = cfn.template()
    t:resource("R", "AWS::SNS::Topic", { TopicName = cfn.Ref("Missing") }, { DependsOn = "Later", Condition = "Nope" })
    local problems = t:check()
    assert.are.same({
      { path = "Resources.R.Condition", message = "unknown condition 'Nope'" },
      { path = "Resources.R.DependsOn", message = "unknown resource 'Later'" },
      { path = "Resources.R.Properties.TopicName", message = "Ref: unknown parameter or resource 'Missing'" },
    }, problems)
  end)

  it("rejects methods called with a dot and bad template options", function()
    local t = cfn.template()
    local e, l = raised(function() t.resource("R", "AWS::SNS::Topic") end), this_line()
    assert_at(e, l)
    assert.matches("calling 'resource' on bad self", e)
    assert.error_matches(function() cfn.template({ descr = "x" }) end, "unknown option 'descr'")
    assert.error_matches(function() cfn.template({ description = string.rep("x", 1025) }) end, "1024")
    assert.error_matches(function() cfn.template({ version = "2011-01-01" }) end, "2010%-09%-09")
    assert.error_matches(function() cfn.template("x") end, "table expected")
  end)
end)
