-- Specs of lumu.cfn.schema: templates against the real CloudFormation
-- registry schemas in $LUMU_SHARED/cfn (default ../shared/cfn from the repo
-- root).
local cfn = require "lumu.cfn"
local json = require "lumu.json"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIXTURES = here .. "/../fixtures/cfn"
local SHARED = os.getenv("LUMU_SHARED")
if not SHARED or SHARED == "" then SHARED = here .. "/../../../shared" end
local DIR = SHARED .. "/cfn"

do
  local f = io.open(DIR .. "/types.tsv", "rb")
  if not f then
    error("cfn_schema_spec: the CloudFormation schemas are missing: " .. DIR .. "/types.tsv not found. "
      .. "../shared (next to the repository, or $LUMU_SHARED) is missing; CI always has it.", 0)
  end
  f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

local checker = assert(cfn.schema.open(DIR))
local GOOD = json.decode(read(FIXTURES .. "/service.json"))

-- The single problem of `t`, at `path`, with exactly `message`.
local function only(t, path, message)
  local p = checker:check_template(t)
  assert.are.same({ { path = path, message = message } }, p)
end

local function none(t)
  assert.are.same({}, checker:check_template(t))
end

-- Mutates a fresh copy of the good template.
local function mutated(fn)
  local t = copy(GOOD)
  fn(t.Resources, t)
  return t
end

describe("cfn.schema.open", function()
  it("opens a schema folder and knows its types", function()
    assert.are.equal(1665, #checker:types())
    assert.is_true(checker:has_type("AWS::S3::Bucket"))
    assert.is_false(checker:has_type("AWS::S3::Buckets"))
    assert.is_true(checker:in_region("AWS::S3::Bucket", "us-east-1"))
    assert.matches("cfn schema checker", tostring(checker))
    local s = assert(checker:schema("AWS::SQS::Queue"))
    assert.are.equal("AWS::SQS::Queue", s.typeName)
    local none_, err = checker:schema("AWS::Nope::Nope")
    assert.is_nil(none_)
    assert.matches("unknown resource type", err)
  end)

  it("returns nil, err for a folder without schemas and raises on misuse", function()
    local c, err = cfn.schema.open(FIXTURES)
    assert.is_nil(c)
    assert.matches("types.tsv", err)
    assert.error_matches(function() cfn.schema.open(42) end, "bad argument #1 to 'open'")
    assert.error_matches(function() checker.check_template({}) end, "on bad self")
    assert.error_matches(function() checker:check_template("x") end, "template table expected")
  end)

  it("finds the default folder through LUMU_SHARED", function()
    local d = cfn.schema.default_dir()
    if os.getenv("LUMU_SHARED") then
      assert.are.equal(os.getenv("LUMU_SHARED") .. "/cfn", d)
    else
      assert.is_nil(d)
    end
  end)
end)

describe("schema checks of the known-good service template", function()
  it("finds no problems (VPC, subnets, SG, ALB, ECS service, IAM roles)", function()
    none(GOOD)
    assert.are.same({}, (cfn.check(GOOD, { schemas = checker })))
  end)

  it("reports an unknown resource type", function()
    only(mutated(function(r) r.Cluster.Type = "AWS::ECS::Clustr" end),
      "Resources.Cluster.Type", "unknown resource type 'AWS::ECS::Clustr' (did you mean 'AWS::ECS::Cluster'?)")
  end)

  it("reports an unknown top-level property", function()
    only(mutated(function(r) r.Service.Properties.LaunchTyp = "FARGATE" end),
      "Resources.Service.Properties.LaunchTyp", "unknown property 'LaunchTyp' (did you mean 'LaunchType'?)")
  end)

  it("reports an unknown property inside a definition", function()
    only(mutated(function(r) r.TaskDefinition.Properties.ContainerDefinitions[1].Memry = 512 end),
      "Resources.TaskDefinition.Properties.ContainerDefinitions[0].Memry",
      "unknown property 'Memry' (did you mean 'Memory'?)")
  end)

  it("reports a missing required property", function()
    only(mutated(function(r) r.LoadBalancerSecurityGroup.Properties.GroupDescription = nil end),
      "Resources.LoadBalancerSecurityGroup.Properties", "missing required property 'GroupDescription'")
  end)

  it("reports a missing required property of a definition", function()
    only(mutated(function(r) r.TaskDefinition.Properties.ContainerDefinitions[1].Image = nil end),
      "Resources.TaskDefinition.Properties.ContainerDefinitions[0]", "missing required property 'Image'")
  end)

  it("reports a wrong enum value", function()
    only(mutated(function(r) r.Service.Properties.LaunchType = "LAMBDA" end),
      "Resources.Service.Properties.LaunchType", "expected one of EC2, FARGATE, EXTERNAL, got 'LAMBDA'")
    only(mutated(function(r) r.Service.Properties.NetworkConfiguration.AwsvpcConfiguration.AssignPublicIp = "YES" end),
      "Resources.Service.Properties.NetworkConfiguration.AwsvpcConfiguration.AssignPublicIp",
      "expected one of DISABLED, ENABLED, got 'YES'")
  end)

  it("checks both branches of Fn::If and skips AWS::NoValue", function()
    only(mutated(function(r) r.LogGroup.Properties.RetentionInDays["Fn::If"][3] = 8 end),
      "Resources.LogGroup.Properties.RetentionInDays",
      "expected one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, "
        .. "2922, 3288, 3653, got 8")
    none(mutated(function(r) r.LogGroup.Properties.RetentionInDays["Fn::If"][3] = { Ref = "AWS::NoValue" } end))
  end)

  it("reports wrong literal types", function()
    only(mutated(function(r) r.Service.Properties.HealthCheckGracePeriodSeconds = "sixty" end),
      "Resources.Service.Properties.HealthCheckGracePeriodSeconds", "expected integer, got string 'sixty'")
    only(mutated(function(r) r.Vpc.Properties.EnableDnsSupport = "yes" end),
      "Resources.Vpc.Properties.EnableDnsSupport", "expected boolean, got string 'yes'")
    only(mutated(function(r) r.Service.Properties.DeploymentConfiguration = "fast" end),
      "Resources.Service.Properties.DeploymentConfiguration", "expected object, got string 'fast'")
    only(mutated(function(r) r.Service.Properties.LoadBalancers = { ContainerName = "web" } end),
      "Resources.Service.Properties.LoadBalancers", "expected array, got an object")
    only(mutated(function(r) r.Service.Properties.HealthCheckGracePeriodSeconds = 1.5 end),
      "Resources.Service.Properties.HealthCheckGracePeriodSeconds", "expected integer, got number 1.5")
  end)

  it("accepts numeric strings, boolean strings and scalars for strings, like CloudFormation", function()
    none(mutated(function(r)
      r.Service.Properties.HealthCheckGracePeriodSeconds = "60"
      r.Vpc.Properties.EnableDnsSupport = "true"
      r.TargetGroup.Properties.Port = 80.0
      r.LoadBalancer.Properties.LoadBalancerAttributes[1].Value = 60
    end))
  end)

  it("reports a plain empty table where a list is expected", function()
    only(mutated(function(r) r.Service.Properties.LoadBalancers = {} end),
      "Resources.Service.Properties.LoadBalancers",
      "expected array, got an empty table (encodes as {}; use json.array() for [])")
    none(mutated(function(r) r.Service.Properties.LoadBalancers = json.array() end))
  end)

  it("reports string lengths, numeric ranges and item counts", function()
    only(mutated(function(r) r.LogGroup.Properties.LogGroupName = string.rep("g", 513) end),
      "Resources.LogGroup.Properties.LogGroupName", "expected at most 512 characters, got 513")
    only(mutated(function(r) r.LogGroup.Properties.LogGroupName = "" end),
      "Resources.LogGroup.Properties.LogGroupName", "expected at least 1 characters, got 0")
    only(mutated(function(r) r.Service.Properties.DeploymentConfiguration.BakeTimeInMinutes = 2000 end),
      "Resources.Service.Properties.DeploymentConfiguration.BakeTimeInMinutes", "expected a value <= 1440, got 2000")
    only(mutated(function(r) r.Service.Properties.DeploymentConfiguration.BakeTimeInMinutes = "-1" end),
      "Resources.Service.Properties.DeploymentConfiguration.BakeTimeInMinutes", "expected a value >= 0, got -1")
    only(mutated(function(r) r.Service.Properties.Monitoring = { MetricConfigurations = json.array() } end),
      "Resources.Service.Properties.Monitoring.MetricConfigurations", "expected at least 1 items, got 0")
  end)

  it("reports read-only properties that are set", function()
    only(mutated(function(r) r.Vpc.Properties.VpcId = "vpc-123" end),
      "Resources.Vpc.Properties.VpcId", "read-only property 'VpcId' cannot be set (it is returned by CloudFormation)")
    only(mutated(function(r) r.Cluster.Properties.Arn = "arn:aws:ecs:x" end),
      "Resources.Cluster.Properties.Arn", "read-only property 'Arn' cannot be set (it is returned by CloudFormation)")
  end)

  it("treats intrinsic functions as wildcards, also a Ref where a list is expected", function()
    none(mutated(function(r)
      r.LoadBalancer.Properties.Subnets = { Ref = "PublicSubnet1" }
      r.Service.Properties.LaunchType = { Ref = "Image" }
      r.Vpc.Properties.EnableDnsSupport = { ["Fn::Equals"] = { 1, 1 } }
      r.Service.Properties.DeploymentConfiguration = { ["Fn::If"] = { "IsProd", { MaximumPercent = 200 },
        { Ref = "AWS::NoValue" } } }
    end))
  end)

  it("reports a bad Fn::GetAtt attribute", function()
    only(mutated(function(r) r.TaskDefinition.Properties.TaskRoleArn["Fn::GetAtt"][2] = "Arnn" end),
      "Resources.TaskDefinition.Properties.TaskRoleArn",
      "Fn::GetAtt: 'Arnn' is not an attribute of AWS::IAM::Role (did you mean 'Arn'?); valid: Arn, RoleId")
  end)

  it("reports a bad attribute in Fn::Sub ${Res.Attr}", function()
    local p = checker:check_template(mutated(function(_, t)
      t.Outputs.Url.Value["Fn::Sub"] = "http://${LoadBalancer.DNSNam}/"
    end))
    assert.are.equal(1, #p)
    assert.are.equal("Outputs.Url.Value", p[1].path)
    assert.matches("Fn::Sub '${LoadBalancer.DNSNam}': 'DNSNam' is not an attribute of "
      .. "AWS::ElasticLoadBalancingV2::LoadBalancer (did you mean 'DNSName'?); valid: CanonicalHostedZoneID, DNSName, ",
      p[1].message, 1, true)
  end)
end)

describe("schema checks of other templates", function()
  local function one(res) return { Resources = { R = res } } end

  it("GetAtt rules: all-properties types, extra properties, nested names", function()
    local t = { Resources = {
      V = { Type = "AWS::EC2::VPC", Properties = { CidrBlock = "10.0.0.0/16" } },
      D = { Type = "AWS::DocDB::DBCluster", Properties = {} },
      Db = { Type = "AWS::RDS::DBInstance", Properties = { DBInstanceClass = "db.t3.micro", Engine = "postgres",
        AllocatedStorage = "20", MasterUsername = "u", ManageMasterUserPassword = true } },
      O = { Type = "AWS::SNS::Topic", Properties = {
        DisplayName = { ["Fn::Join"] = { "", { { ["Fn::GetAtt"] = { "V", "CidrBlock" } },
          { ["Fn::GetAtt"] = { "D", "Port" } }, { ["Fn::GetAtt"] = "Db.Endpoint.Address" },
          { ["Fn::Sub"] = "${V.DefaultSecurityGroup}${Db.Endpoint.Port}" } } } } } },
    } }
    none(t)
  end)

  it("custom resources accept any attribute and need a ServiceToken", function()
    none({ Resources = {
      C = { Type = "Custom::Thing", Properties = { ServiceToken = "arn:aws:lambda:x" } },
      T = { Type = "AWS::SNS::Topic", Properties = { TopicName = { ["Fn::GetAtt"] = { "C", "Whatever.You.Like" } } } },
    } })
    only(one({ Type = "AWS::CloudFormation::CustomResource", Properties = {} }),
      "Resources.R.Properties", "missing required property 'ServiceToken'")
  end)

  it("nested stacks give Outputs.<Name> only", function()
    local t = { Resources = {
      S = { Type = "AWS::CloudFormation::Stack", Properties = { TemplateURL = "https://s3/x" } },
      T = { Type = "AWS::SNS::Topic", Properties = { TopicName = { ["Fn::GetAtt"] = { "S", "Outputs.Name" } } } },
    } }
    none(t)
    t.Resources.T.Properties.TopicName["Fn::GetAtt"][2] = "Arn"
    only(t, "Resources.T.Properties.TopicName",
      "Fn::GetAtt: 'Arn' is not an attribute of AWS::CloudFormation::Stack; valid: Outputs.<Name>")
  end)

  it("oneOf: one of several property sets is required", function()
    only(one({ Type = "AWS::CloudFormation::StackSet", Properties = { StackSetName = "s", PermissionModel = "SELF_MANAGED" } }),
      "Resources.R.Properties", "expected one of these forms: with TemplateURL | with TemplateBody "
        .. "(closest: missing required property 'TemplateURL')")
    none(one({ Type = "AWS::CloudFormation::StackSet", Properties = { StackSetName = "s",
      PermissionModel = "SELF_MANAGED", TemplateBody = "{}" } }))
  end)

  it("missing Properties still need the required ones", function()
    assert.are.same({
      { path = "Resources.R.Properties", message = "missing required property 'PolicyDocument'" },
      { path = "Resources.R.Properties", message = "missing required property 'Queues'" },
    }, checker:check_template(one({ Type = "AWS::SQS::QueuePolicy" })))
  end)

  it("skips SAM resources under the SAM transform, and module/CDK types", function()
    none({ Transform = "AWS::Serverless-2016-10-31", Resources = {
      F = { Type = "AWS::Serverless::Function", Properties = { Anything = 1 } } } })
    only({ Resources = { F = { Type = "AWS::Serverless::Function" } } },
      "Resources.F.Type", "unknown resource type 'AWS::Serverless::Function' (needs the AWS::Serverless-2016-10-31 transform)")
    none({ Resources = { M = { Type = "My::Org::Thing::MODULE", Properties = { X = 1 } },
      C = { Type = "AWS::CDK::Metadata", Properties = { Analytics = "x" } } } })
  end)

  it("copes with hostile values", function()
    local deep = {}
    local cur = deep
    for _ = 1, 3000 do cur[1] = {}; cur = cur[1] end
    local p = checker:check_template({ Resources = { R = { Type = "AWS::ECS::Service", Properties = {
      LoadBalancers = deep } } } })
    local found = false
    for _, x in ipairs(p) do
      if x.message:find("nested too deeply", 1, true) or x.message:find("expected object", 1, true) then found = true end
    end
    assert.is_true(found)
    none({ Resources = { R = "x", S = { Type = 5 }, [1] = {} } })
    none({ Resources = "x" })
    only({ Resources = { R = { Type = "AWS::SNS::Topic", Properties = { "x" } } } },
      "Resources.R.Properties", "expected an object, got a list")
  end)
end)

describe("schema checker caching", function()
  it("reads each schema file once, however many resources use it", function()
    local c = assert(cfn.schema.open(DIR))
    local res = {}
    local types = { "AWS::SNS::Topic", "AWS::SQS::Queue", "AWS::S3::Bucket", "AWS::IAM::Role" }
    for i = 1, 200 do
      local ty = types[i % #types + 1]
      local props = ty == "AWS::IAM::Role" and { AssumeRolePolicyDocument = { Version = "2012-10-17" } } or {}
      res["R" .. i] = { Type = ty, Properties = props }
    end
    res.Out = { Type = "AWS::SNS::Topic", Properties = { TopicName = { ["Fn::GetAtt"] = { "R1", "QueueName" } } } }
    local t = { Resources = res }
    assert.are.same({}, c:check_template(t))
    assert.are.equal(4, c.stats.reads)
    c:check_template(t)
    c:check_template(GOOD)
    local after = c.stats.reads
    c:check_template(GOOD)
    assert.are.equal(after, c.stats.reads)
  end)
end)
