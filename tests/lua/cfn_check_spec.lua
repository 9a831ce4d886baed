-- Specs of cfn.check: structure, reference targets, cycles, names, limits.
-- Every cfn.check below runs twice, with the C fast path (lumu._cfn.check_ok)
-- and without it, and both must give the same problems and info: a template
-- the C code passes is one the Lua code finds nothing wrong with.
local real_cfn = require "lumu.cfn"
local util = require "lumu.cfn.util"
local json = require "lumu.json"
local yaml = require "lumu.yaml"

local C_OK = util.use_c and util.core and util.core.check_ok
local fast = { yes = 0, no = 0 } -- what check_ok answered (C builds)

-- cfn.check in both ways -> the problems and info (compared)
local function check_both(t, opts)
  local use_c = util.use_c
  util.use_c = false
  local ok_lua, lua_p, lua_info = pcall(real_cfn.check, t, opts)
  util.use_c = use_c
  local ok_c, c_p, c_info = pcall(real_cfn.check, t, opts)
  assert.are.equal(ok_lua, ok_c, "one way raised: " .. tostring(ok_lua and c_p or lua_p))
  if not ok_c then error(c_p, 0) end
  assert.are.same(lua_p, c_p)
  assert.are.same(lua_info, c_info)
  return c_p, c_info
end

local cfn = setmetatable({ check = check_both }, { __index = real_cfn })

if C_OK then
  util.core.check_ok = function(...)
    local r = C_OK(...)
    if r then fast.yes = fast.yes + 1 else fast.no = fast.no + 1 end
    return r
  end
end

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIXTURES = here .. "/../fixtures/cfn"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- A deep copy of a decoded template, for mutations.
local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

local GOOD = json.decode(read(FIXTURES .. "/service.json"))

-- Exactly one problem, at `path`, whose message contains `text` (plain).
local function only(problems, path, text)
  assert.are.equal(1, #problems, "expected one problem, got:\n" .. cfn.format(problems))
  assert.are.equal(path, problems[1].path)
  assert.matches(text, problems[1].message, 1, true)
end

-- Some problem at `path` whose message contains `text`.
local function has(problems, path, text)
  for _, p in ipairs(problems) do
    if p.path == path and p.message:find(text, 1, true) then return end
  end
  error("no problem at " .. path .. " with '" .. text .. "' in:\n" .. cfn.format(problems), 2)
end

local function tpl(resources, extra)
  local t = { AWSTemplateFormatVersion = "2010-09-09", Resources = resources }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local TOPIC = { Type = "AWS::SNS::Topic" }

describe("cfn.check on good templates", function()
  it("finds nothing wrong with the service fixture (JSON file)", function()
    local problems, info = cfn.check(GOOD)
    assert.are.same({}, problems)
    assert.is_false(info.needs_s3)
    assert.is_false(problems.needs_s3)
    assert.are.equal(#json.encode(GOOD), info.size)
  end)

  it("finds nothing wrong with the YAML fixture (short forms)", function()
    local t = assert(yaml.load(read(FIXTURES .. "/service.yaml")))
    assert.are.same({}, (cfn.check(t)))
  end)

  it("accepts pseudo parameters, Sub literals and Sub variables", function()
    local t = tpl({ T = { Type = "AWS::SNS::Topic", Properties = {
      TopicName = { ["Fn::Sub"] = { "${AWS::StackName}-${!Literal}-${Var}-${U.TopicName}", { Var = "x" } } },
      DisplayName = { Ref = "AWS::Region" } } }, U = TOPIC })
    assert.are.same({}, (cfn.check(t)))
  end)

  it("measures opts.body and returns problems as a JSON array", function()
    local problems, info = cfn.check(tpl({ T = TOPIC }), { body = "{}" })
    assert.are.equal(2, info.size)
    assert.are.equal("[]", json.encode(problems))
  end)

  it("formats problems as path: message lines", function()
    assert.are.equal("A.B: one\ntwo", cfn.format({ { path = "A.B", message = "one" }, { path = "", message = "two" } }))
  end)
end)

describe("cfn.check finds", function()
  it("unknown sections, bad version and description", function()
    local t = tpl({ T = TOPIC }, { Output = {}, AWSTemplateFormatVersion = "2010-09-10", Description = string.rep("d", 1025) })
    local p = cfn.check(t)
    has(p, "Output", "unknown top-level section 'Output' (did you mean 'Outputs'?)")
    has(p, "AWSTemplateFormatVersion", "expected '2010-09-09'")
    has(p, "Description", "1025 bytes, more than the limit of 1024")
    assert.are.equal(3, #p)
  end)

  it("a missing or empty Resources section", function()
    only(cfn.check({}), "Resources", "the Resources section is required")
    only(cfn.check(tpl({})), "Resources", "at least one resource")
    only(cfn.check(tpl("x")), "Resources", "expected an object")
  end)

  it("invalid logical ids", function()
    only(cfn.check(tpl({ ["my-topic"] = TOPIC })), "Resources.my-topic", "must be 1-255 alphanumeric")
    only(cfn.check(tpl({ [string.rep("A", 256)] = TOPIC })), "Resources." .. string.rep("A", 256), "alphanumeric")
    assert.are.same({}, (cfn.check(tpl({ [string.rep("A", 255)] = TOPIC }))))
  end)

  it("missing Type, bad Type and unknown attributes", function()
    only(cfn.check(tpl({ T = {} })), "Resources.T", "Type is required")
    only(cfn.check(tpl({ T = { Type = "SNS Topic" } })), "Resources.T.Type", "invalid resource type")
    only(cfn.check(tpl({ T = { Type = "AWS::SNS::Topic", Propertys = {} } })), "Resources.T.Propertys",
      "unknown resource attribute 'Propertys' (did you mean 'Properties'?)")
    only(cfn.check(tpl({ T = { Type = "AWS::SNS::Topic", Properties = { 1, 2 } } })), "Resources.T.Properties",
      "expected an object")
    only(cfn.check(tpl({ T = { Type = "AWS::SNS::Topic", DeletionPolicy = "Keep" } })), "Resources.T.DeletionPolicy",
      "expected one of Delete, Retain, RetainExceptOnCreate, Snapshot, got 'Keep'")
  end)

  it("Ref to an unknown name, with a hint", function()
    local t = copy(GOOD)
    t.Resources.Service.Properties.Cluster = { Ref = "Clustr" }
    only(cfn.check(t), "Resources.Service.Properties.Cluster", "Ref: unknown parameter or resource 'Clustr' (did you mean 'Cluster'?)")
    t.Resources.Service.Properties.Cluster = { Ref = { "Cluster" } }
    only(cfn.check(t), "Resources.Service.Properties.Cluster", "Ref expects a name")
  end)

  it("Fn::GetAtt of an unknown resource or of a parameter", function()
    local t = copy(GOOD)
    t.Resources.TaskDefinition.Properties.TaskRoleArn = { ["Fn::GetAtt"] = { "TaskRol", "Arn" } }
    only(cfn.check(t), "Resources.TaskDefinition.Properties.TaskRoleArn", "Fn::GetAtt: unknown resource 'TaskRol' (did you mean 'TaskRole'?)")
    t.Resources.TaskDefinition.Properties.TaskRoleArn = { ["Fn::GetAtt"] = "Image.Arn" }
    only(cfn.check(t), "Resources.TaskDefinition.Properties.TaskRoleArn", "Fn::GetAtt: 'Image' is not a resource")
    t.Resources.TaskDefinition.Properties.TaskRoleArn = { ["Fn::GetAtt"] = { "TaskRole" } }
    only(cfn.check(t), "Resources.TaskDefinition.Properties.TaskRoleArn", "Fn::GetAtt expects [resource, attribute]")
  end)

  it("Fn::Sub references to unknown names", function()
    local t = copy(GOOD)
    t.Outputs.Url.Value = { ["Fn::Sub"] = "http://${LoadBalancr.DNSName}/${Stage}" }
    local p = cfn.check(t)
    has(p, "Outputs.Url.Value", "Fn::Sub '${LoadBalancr.DNSName}': unknown resource 'LoadBalancr' (did you mean 'LoadBalancer'?)")
    has(p, "Outputs.Url.Value", "Fn::Sub '${Stage}': unknown parameter or resource 'Stage'")
    assert.are.equal(2, #p)
    t.Outputs.Url.Value = { ["Fn::Sub"] = { "${Stage}", { Stage = { Ref = "Nope" } } } }
    only(cfn.check(t), "Outputs.Url.Value.Stage", "Ref: unknown parameter or resource 'Nope'")
    t.Outputs.Url.Value = { ["Fn::Sub"] = { "x" } }
    only(cfn.check(t), "Outputs.Url.Value", "Fn::Sub expects a string or [string, {variables}]")
  end)

  it("DependsOn targets", function()
    local t = copy(GOOD)
    t.Resources.Service.DependsOn = { "Listener", "Listner" }
    only(cfn.check(t), "Resources.Service.DependsOn[1]", "unknown resource 'Listner' (did you mean 'Listener'?)")
    t.Resources.Service.DependsOn = "Service"
    only(cfn.check(t), "Resources.Service.DependsOn", "'Service' cannot depend on itself")
    t.Resources.Service.DependsOn = { a = 1 }
    only(cfn.check(t), "Resources.Service.DependsOn", "expected a resource name or a list of them")
  end)

  it("Condition targets on resources, outputs and in Fn::If", function()
    local t = copy(GOOD)
    t.Resources.LogGroup.Condition = "IsPrd"
    only(cfn.check(t), "Resources.LogGroup.Condition", "unknown condition 'IsPrd' (did you mean 'IsProd'?)")
    t = copy(GOOD)
    t.Outputs.TaskRoleArn.Condition = "Nope"
    only(cfn.check(t), "Outputs.TaskRoleArn.Condition", "unknown condition 'Nope'")
    t = copy(GOOD)
    t.Resources.LogGroup.Properties.RetentionInDays["Fn::If"][1] = "IsProdd"
    only(cfn.check(t), "Resources.LogGroup.Properties.RetentionInDays", "Fn::If: unknown condition 'IsProdd'")
    t.Resources.LogGroup.Properties.RetentionInDays["Fn::If"] = { "IsProd", 1 }
    only(cfn.check(t), "Resources.LogGroup.Properties.RetentionInDays", "Fn::If expects [condition, value_if_true, value_if_false]")
  end)

  it("conditions that reference resources, bad expressions and unknown conditions", function()
    local t = copy(GOOD)
    t.Conditions.HasVpc = { ["Fn::Equals"] = { { Ref = "Vpc" }, "" } }
    only(cfn.check(t), "Conditions.HasVpc", "Ref: Conditions can only reference parameters, not resource 'Vpc'")
    t.Conditions.HasVpc = { Ref = "Environment" }
    only(cfn.check(t), "Conditions.HasVpc", "expected a condition function")
    t.Conditions.HasVpc = { ["Fn::And"] = { { Condition = "IsProd" }, { Condition = "Other" } } }
    only(cfn.check(t), "Conditions.HasVpc[1]", "Condition: unknown condition 'Other'")
    t.Conditions.HasVpc = { ["Fn::Or"] = { { Condition = "IsProd" } } }
    only(cfn.check(t), "Conditions.HasVpc", "Fn::Or expects a list of 2 to 10 conditions")
  end)

  it("condition functions outside Conditions", function()
    local t = copy(GOOD)
    t.Resources.Cluster.Properties.ClusterSettings[1].Value = { ["Fn::Equals"] = { 1, 1 } }
    only(cfn.check(t), "Resources.Cluster.Properties.ClusterSettings[0].Value", "Fn::Equals can only be used in Conditions")
  end)

  it("circular condition references", function()
    local t = tpl({ T = TOPIC }, { Conditions = {
      A = { ["Fn::Not"] = { { Condition = "B" } } },
      B = { ["Fn::And"] = { { Condition = "A" }, { Condition = "A" } } },
    } })
    only(cfn.check(t), "Conditions.A", "circular condition reference: A -> B -> A")
  end)

  it("Fn::FindInMap with unknown maps and keys", function()
    local t = copy(GOOD)
    local cpu = t.Resources.TaskDefinition.Properties.Cpu
    cpu["Fn::FindInMap"][1] = "Size"
    only(cfn.check(t), "Resources.TaskDefinition.Properties.Cpu", "Fn::FindInMap: unknown mapping 'Size' (did you mean 'Sizes'?)")
    cpu["Fn::FindInMap"] = { "Sizes", "test", "Cpu" }
    only(cfn.check(t), "Resources.TaskDefinition.Properties.Cpu", "mapping 'Sizes' has no key 'test'")
    cpu["Fn::FindInMap"] = { "Sizes", "dev", "Cpus" }
    only(cfn.check(t), "Resources.TaskDefinition.Properties.Cpu", "mapping 'Sizes' has no key 'dev.Cpus'")
    cpu["Fn::FindInMap"] = { "Sizes", "dev", "Cpus", { DefaultValue = "256" } }
    only(cfn.check(t), "Resources.TaskDefinition.Properties.Cpu", "needs the AWS::LanguageExtensions transform")
    t.Transform = "AWS::LanguageExtensions"
    assert.are.same({}, (cfn.check(t)))
  end)

  it("unknown intrinsic functions and bad shapes", function()
    local t = copy(GOOD)
    t.Resources.Cluster.Properties.ClusterName = { ["Fn::Subb"] = "x" }
    only(cfn.check(t), "Resources.Cluster.Properties.ClusterName", "unknown intrinsic function 'Fn::Subb' (did you mean 'Fn::Sub'?)")
    t.Resources.Cluster.Properties.ClusterName = { ["Fn::Join"] = { ",", "a" } }
    only(cfn.check(t), "Resources.Cluster.Properties.ClusterName", "Fn::Join: list expected")
    t.Resources.Cluster.Properties.ClusterName = { ["Fn::Select"] = { 3, { "a", "b" } } }
    only(cfn.check(t), "Resources.Cluster.Properties.ClusterName", "Fn::Select: index 3 is out of range for a list of 2")
    t.Resources.Cluster.Properties.ClusterName = { ["Fn::Length"] = { "a" } }
    only(cfn.check(t), "Resources.Cluster.Properties.ClusterName", "Fn::Length needs the AWS::LanguageExtensions transform")
  end)

  it("null values", function()
    local t = copy(GOOD)
    t.Resources.Cluster.Properties.ClusterName = json.null
    only(cfn.check(t), "Resources.Cluster.Properties.ClusterName", "null values are not allowed")
  end)

  it("dependency cycles through Ref, GetAtt, Sub and DependsOn, with the path", function()
    local t = tpl({
      A = { Type = "Custom::X", Properties = { ServiceToken = "arn", B = { Ref = "B" } } },
      B = { Type = "Custom::X", Properties = { ServiceToken = "arn", C = { ["Fn::GetAtt"] = { "C", "Out" } } } },
      C = { Type = "Custom::X", Properties = { ServiceToken = { ["Fn::Sub"] = "${D.Arn}" } } },
      D = { Type = "Custom::X", DependsOn = "A", Properties = { ServiceToken = "arn" } },
      E = { Type = "Custom::X", Properties = { ServiceToken = "arn", A = { Ref = "A" } } },
    })
    only(cfn.check(t), "Resources.A", "circular dependency: A -> B -> C -> D -> A")
  end)

  it("a resource referring to itself", function()
    local t = tpl({ Q = { Type = "AWS::SQS::Queue", Properties = { QueueName = { ["Fn::GetAtt"] = { "Q", "QueueName" } } } } })
    only(cfn.check(t), "Resources.Q", "circular dependency: Q -> Q")
  end)

  it("two separate cycles", function()
    local t = tpl({
      A = { Type = "AWS::SNS::Topic", DependsOn = "B" }, B = { Type = "AWS::SNS::Topic", DependsOn = "A" },
      X = { Type = "AWS::SNS::Topic", DependsOn = { "Y" } }, Y = { Type = "AWS::SNS::Topic", DependsOn = { "X" } },
    })
    local p = cfn.check(t)
    assert.are.same({
      { path = "Resources.A", message = "circular dependency: A -> B -> A" },
      { path = "Resources.X", message = "circular dependency: X -> Y -> X" },
    }, p)
  end)

  it("parameter problems", function()
    local t = tpl({ T = TOPIC }, { Parameters = {
      A = { Type = "Strng" },
      B = { Type = "String", Default = "c", AllowedValues = { "a", "b" } },
      C = {},
      D = { Type = "String", Defualt = "x" },
      E = { Type = "Number", Default = 20, MaxValue = 10 },
      F = { Type = "String", Default = "abc", MaxLength = 2 },
      ["G-1"] = { Type = "String" },
      T = { Type = "String" },
    } })
    local p = cfn.check(t)
    has(p, "Parameters.A.Type", "unknown parameter type 'Strng'")
    has(p, "Parameters.B.Default", "expected one of a, b, got 'c'")
    has(p, "Parameters.C", "Type is required")
    has(p, "Parameters.D.Defualt", "unknown parameter attribute 'Defualt' (did you mean 'Default'?)")
    has(p, "Parameters.E.Default", "greater than MaxValue 10")
    has(p, "Parameters.F.Default", "longer than MaxLength 2")
    has(p, "Parameters.G-1", "alphanumeric")
    has(p, "Parameters.T", "'T' is both a parameter and a resource")
    assert.are.equal(8, #p)
  end)

  it("output problems", function()
    local t = tpl({ T = TOPIC }, { Outputs = {
      A = { Description = "no value" },
      B = { Value = { "a", "b" } },
      C = { Value = "x", Export = { Name = "Dup" } },
      D = { Value = "x", Export = { Name = "Dup" } },
      E = { Value = "x", Export = "Name" },
      F = { Value = "x", Exports = {} },
      ["G_1"] = { Value = "x" },
    } })
    local p = cfn.check(t)
    has(p, "Outputs.A", "Value is required")
    has(p, "Outputs.B.Value", "expected a string or an intrinsic function")
    has(p, "Outputs.D.Export.Name", "export name 'Dup' is also used by output C")
    has(p, "Outputs.E.Export", "expected {Name = ...}")
    has(p, "Outputs.F.Exports", "unknown output attribute 'Exports' (did you mean 'Export'?)")
    has(p, "Outputs.G_1", "alphanumeric")
    assert.are.equal(6, #p)
  end)

  it("mapping problems", function()
    local t = tpl({ T = TOPIC }, { Mappings = { M = { a = "b" }, N = {}, O = { a = { b = { c = 1 } } } } })
    local p = cfn.check(t)
    has(p, "Mappings.M.a", "a mapping entry must be an object")
    has(p, "Mappings.N", "a mapping needs at least one key")
    has(p, "Mappings.O.a.b", "mapping values must be strings, numbers or lists")
    assert.are.equal(3, #p)
  end)
end)

describe("cfn.check problem order", function()
  it("lists problems in key order, whatever order the tables were filled in", function()
    local function make(flip)
      local props = { z = { Ref = "Nope1" } }
      local a = { j = json.null }
      a.k = { ["Fn::GetAtt"] = { "Missing", "Arn" } }
      if flip then props = { a = a }; props.z = { Ref = "Nope1" } else props.a = a end
      props.m = { { Ref = "Nope2" }, "ok", { ["Fn::Sub"] = "${Nope3} ${A.Arn} ${!Skip}" } }
      return tpl({
        B = { Type = "AWS::X::Y", Properties = props, DependsOn = "A" },
        A = { Type = "AWS::X::Y", Properties = { Q = { Ref = "B" }, R = { ["Fn::If"] = { "NoCond", 1, json.null } } },
          Metadata = { x = json.null } },
      })
    end
    local want = table.concat({
      "Resources.A.Properties.R: Fn::If: unknown condition 'NoCond'",
      "Resources.A.Properties.R: null values are not allowed in templates",
      "Resources.A.Metadata.x: null values are not allowed in templates",
      "Resources.B.Properties.a.j: null values are not allowed in templates",
      "Resources.B.Properties.a.k: Fn::GetAtt: unknown resource 'Missing'",
      "Resources.B.Properties.m[0]: Ref: unknown parameter or resource 'Nope2'",
      "Resources.B.Properties.m[2]: Fn::Sub '${Nope3}': unknown parameter or resource 'Nope3'",
      "Resources.B.Properties.z: Ref: unknown parameter or resource 'Nope1'",
      "Resources.A: circular dependency: A -> B -> A",
    }, "\n")
    assert.are.equal(want, cfn.format((cfn.check(make(false)))))
    assert.are.equal(want, cfn.format((cfn.check(make(true)))))
  end)
end)

describe("cfn.check limits", function()
  local function many(n, make)
    local t = {}
    for i = 1, n do t["N" .. i] = make(i) end
    return t
  end

  it("more than 500 resources", function()
    only(cfn.check(tpl(many(501, function() return TOPIC end))), "Resources", "501 resources, more than the limit of 500")
    assert.are.same({}, (cfn.check(tpl(many(500, function() return TOPIC end)))))
  end)

  it("more than 200 parameters, outputs and mappings", function()
    local t = tpl({ T = TOPIC }, {
      Parameters = many(201, function() return { Type = "String" } end),
      Outputs = many(201, function() return { Value = "x" } end),
      Mappings = many(201, function() return { a = { b = "c" } } end),
    })
    local p = cfn.check(t)
    has(p, "Parameters", "201 parameters, more than the limit of 200")
    has(p, "Outputs", "201 outputs, more than the limit of 200")
    has(p, "Mappings", "201 mappings, more than the limit of 200")
    assert.are.equal(3, #p)
    local ok = tpl({ T = TOPIC }, { Parameters = many(200, function() return { Type = "String" } end) })
    assert.are.same({}, (cfn.check(ok)))
  end)

  it("bodies over 51,200 bytes need S3 but are no error", function()
    local t = tpl({ T = { Type = "AWS::SNS::Topic", Metadata = { pad = string.rep("x", 52000) } } })
    local p, info = cfn.check(t)
    assert.are.same({}, p)
    assert.is_true(info.needs_s3)
    assert.is_true(p.needs_s3)
    assert.is_true(info.size > 51200)
    local _, small = cfn.check(t, { body = string.rep(" ", 51200) })
    assert.is_false(small.needs_s3)
  end)

  it("bodies over 1 MB are an error", function()
    local p, info = cfn.check(tpl({ T = TOPIC }), { body = string.rep(" ", 1048577) })
    only(p, "", "template body is 1048577 bytes, more than the limit of 1048576 (1 MB)")
    assert.is_true(info.needs_s3)
  end)
end)

describe("cfn.check on hostile input", function()
  it("raises on a non-table template or bad options", function()
    assert.error_matches(function() cfn.check("x") end, "bad argument #1 to 'check' %(template table expected")
    assert.error_matches(function() cfn.check({}, 5) end, "bad argument #2 to 'check'")
    assert.error_matches(function() cfn.check({}, { body = 5 }) end, "opts.body must be a string")
  end)

  it("reports deep nesting and cycles instead of crashing", function()
    local deep = {}
    local cur = deep
    for _ = 1, 5000 do cur.x = {}; cur = cur.x end
    local p = cfn.check(tpl({ T = { Type = "Custom::X", Properties = { ServiceToken = "a", D = deep } } }))
    has(p, "", "cannot be encoded as JSON")
    local found = false
    for _, x in ipairs(p) do
      if x.message:find("nested too deeply", 1, true) then found = true end
    end
    assert.is_true(found)
    local cyc = { ServiceToken = "a" }
    cyc.self = cyc
    p = cfn.check(tpl({ T = { Type = "Custom::X", Properties = cyc } }))
    assert.is_true(#p >= 2)
  end)

  it("copes with wrong kinds everywhere", function()
    local t = { Resources = { A = "x", B = { Type = 5 } }, Parameters = { P = "x" }, Outputs = 7,
      Conditions = { C = 1 }, Mappings = { M = 2 }, Transform = 3, [1] = "x" }
    local p = cfn.check(t)
    has(p, "Resources.A", "a resource must be an object")
    has(p, "Resources.B.Type", "invalid resource type")
    has(p, "Parameters.P", "a parameter must be an object")
    has(p, "Outputs", "expected an object")
    has(p, "Conditions.C", "expected a condition function")
    has(p, "Mappings.M", "a mapping must be an object")
    has(p, "Transform", "expected a transform name")
    has(p, "1", "unknown top-level section 1")
  end)

  it("tolerates names a macro transform may create", function()
    local t = tpl({ F = { Type = "AWS::Serverless::Function", Properties = { Role = { ["Fn::GetAtt"] = { "FRole", "Arn" } } } } },
      { Transform = "AWS::Serverless-2016-10-31" })
    assert.are.same({}, (cfn.check(t)))
    t.Transform = nil
    only(cfn.check(t), "Resources.F.Properties.Role", "unknown resource 'FRole'")
  end)
end)

describe("cfn.check in C and in Lua", function()
  local config = require "lumu.config"
  local synth = require "lumu.synth"
  local EXAMPLE = here .. "/../../scripts/example/lumu.lua"

  -- The example's templates, and the service fixture.
  local function templates()
    local list = { copy(GOOD) }
    for _, d in ipairs((synth.plan(assert(config.load(EXAMPLE))))) do
      if d.template then list[#list + 1] = json.decode(json.encode(d.template)) end
    end
    return list
  end

  it("passes the generated templates in C", function()
    if not C_OK then pending("no lumu._cfn.check_ok in this build") return end
    local list = templates()
    local before = fast.yes
    for _, t in ipairs(list) do assert.are.same({}, (cfn.check(t))) end
    assert.are.equal(19, fast.yes - before)
  end)

  it("agrees on 1500 seeded mutations of them", function()
    local list = templates()
    math.randomseed(20261126)
    local function pick(t) return t[math.random(#t)] end
    local function keys(t)
      local out = {}
      for k in pairs(t) do out[#out + 1] = k end
      table.sort(out, function(a, b) return tostring(a) < tostring(b) end)
      return out
    end
    -- every table in t with its parent and key, in a fixed order
    local function nodes(t)
      local out = {}
      local function visit(v, parent, key)
        out[#out + 1] = { v = v, parent = parent, key = key }
        for _, k in ipairs(keys(v)) do
          if type(v[k]) == "table" then visit(v[k], v, k) end
        end
      end
      visit(t)
      return out
    end
    local function names(t, section)
      local s = type(t[section]) == "table" and keys(t[section]) or {}
      return #s > 0 and s or { "Nothing" }
    end
    local function value(t)
      local res, par, cond = pick(names(t, "Resources")), pick(names(t, "Parameters")), pick(names(t, "Conditions"))
      local map = pick(names(t, "Mappings"))
      local values = {
        json.null, "x", 7, -1, 1.5, true, {}, json.array({}), json.object({}), { "a", "b" }, res, cond, "Retain",
        "Keep", { Ref = "Nope" }, { Ref = res }, { Ref = par }, { Ref = "AWS::Region" }, { Ref = 1 },
        { Ref = res, Other = 1 }, { ["Fn::GetAtt"] = { res, "Arn" } }, { ["Fn::GetAtt"] = res .. ".Arn" },
        { ["Fn::GetAtt"] = "Nope.Arn" }, { ["Fn::GetAtt"] = { res } }, { ["Fn::GetAtt"] = { res, { Ref = par } } },
        { ["Fn::Sub"] = "${Nope}" }, { ["Fn::Sub"] = "${" .. res .. "}-${!Lit}" }, { ["Fn::Sub"] = "${ " .. par .. " }" },
        { ["Fn::Sub"] = "${" .. res .. ".Arn}" }, { ["Fn::Sub"] = "${}" }, { ["Fn::Sub"] = { "${A}", { A = "x" } } },
        { ["Fn::Sub"] = { "${A}", { B = json.null } } }, { ["Fn::Sub"] = { "${A}" } },
        { ["Fn::If"] = { cond, "a", "b" } }, { ["Fn::If"] = { "NoCond", "a", "b" } }, { ["Fn::If"] = { cond, "a" } },
        { ["Fn::Select"] = { "5", { "a" } } }, { ["Fn::Select"] = { 0, { "a" } } }, { ["Fn::Select"] = { "0", { Ref = par } } },
        { ["Fn::Select"] = { -1, { "a" } } }, { ["Fn::Select"] = { 1.5, { "a" } } }, { ["Fn::Select"] = { "x", { "a" } } },
        { ["Fn::Join"] = { ",", { "a", { Ref = res } } } }, { ["Fn::Join"] = { 1, "x" } }, { ["Fn::Join"] = { ",", "x" } },
        { ["Fn::Split"] = { ",", "a,b" } }, { ["Fn::Split"] = { 1, "a" } },
        { ["Fn::FindInMap"] = { map, "a", "b" } }, { ["Fn::FindInMap"] = { "NoMap", "a", "b" } },
        { ["Fn::FindInMap"] = { map, "a", "b", "default" } }, { ["Fn::FindInMap"] = { { Ref = par }, "a", "b" } },
        { ["Fn::ImportValue"] = "x" }, { ["Fn::ImportValue"] = { ["Fn::Sub"] = "${AWS::StackName}-X" } },
        { ["Fn::Base64"] = { Ref = par } }, { ["Fn::GetAZs"] = "" }, { ["Fn::GetAZs"] = 3 },
        { ["Fn::Cidr"] = { "10.0.0.0/16", 4, 8 } }, { ["Fn::Cidr"] = { "10.0.0.0/16", 4 } },
        { ["Fn::Length"] = { 1 } }, { ["Fn::Bogus"] = 1 }, { ["Fn::ForEach::X"] = {} }, { Condition = cond },
        { ["Fn::Equals"] = { "a", "b" } }, { ["Fn::Not"] = { { Condition = cond } } },
        { ["Fn::And"] = { { Condition = cond }, { ["Fn::Equals"] = { { Ref = par }, "x" } } } },
        { ["Fn::Or"] = { { Condition = "Nope" }, { Condition = cond } } },
        setmetatable({ a = 1 }, { __index = function() return 1 end }), string.rep("d", 1100),
      }
      return pick(values)
    end
    local SECTIONS = { "Parameters", "Resources", "Conditions", "Mappings", "Outputs", "Metadata",
      "Transform", "Rules", "Description", "AWSTemplateFormatVersion", "Bogus" }
    local KEYS = { "Bogus", "Type", "DependsOn", "Condition", "Properties", "Metadata", "DeletionPolicy",
      "UpdateReplacePolicy", "Value", "Export", "Name", "Default", "AllowedValues", "MinLength", "MaxValue",
      "NoEcho", "Ref", "Fn::Sub" }
    local problems, clean = 0, 0
    for i = 1, 1500 do
      local t = copy(list[(i - 1) % #list + 1])
      for _ = 1, math.random(3) do
        local all = nodes(t)
        local n = pick(all)
        local op = math.random(6)
        if op == 1 and n.parent then
          n.parent[n.key] = nil
        elseif op == 2 and n.parent then
          n.parent[n.key] = value(t)
        elseif op == 3 then
          n.v[pick(KEYS)] = value(t)
        elseif op == 4 then
          t[pick(SECTIONS)] = math.random(4) == 1 and value(t) or nil
        elseif op == 5 and type(t.Resources) == "table" then
          -- a dependency on another (or the same) resource: cycles
          local r = t.Resources[pick(names(t, "Resources"))]
          if type(r) == "table" then r.DependsOn = pick(names(t, "Resources")) end
        else
          local k = pick(keys(n.v))
          if k ~= nil and type(n.v[k]) ~= "table" then n.v[k] = value(t) end
        end
      end
      local ok, p = pcall(cfn.check, t)
      if not ok then error("mutation " .. i .. ": " .. tostring(p), 0) end
      if #p > 0 then problems = problems + 1 else clean = clean + 1 end
    end
    -- both outcomes were exercised
    assert.is_true(problems > 500, "mutations with problems: " .. problems)
    assert.is_true(clean > 100, "mutations without problems: " .. clean)
    print(string.format("    %d mutations with problems, %d without; C passed %d", problems, clean, fast.yes))
  end)
end)
