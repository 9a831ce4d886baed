-- Every config in ../shared/corpus (seed-examples and mu-examples) loads to a
-- model, or fails with the decided, specific error.  LUMU_SHARED names the
-- shared folder (ctest sets it); the default is ../shared from the repo root.
local config = require "lumu.config"
local fs = require "lumu.fs"

local SHARED = os.getenv("LUMU_SHARED") or "../shared"
if not fs.isdir(SHARED .. "/corpus/seed-examples") or not fs.isdir(SHARED .. "/corpus/mu-examples") then
  error("shared corpus not found at '" .. SHARED .. "/corpus': set LUMU_SHARED to the shared folder", 0)
end

-- No real environment leaks in: only what a test gives.
local function env(vars)
  return function(name) return vars and vars[name] end
end

local function load(rel, vars)
  return config.load(SHARED .. "/corpus/" .. rel, { getenv = env(vars) })
end

local function messages(problems)
  local out = {}
  for _, p in ipairs(problems or {}) do out[#out + 1] = config.format_error(p) end
  return table.concat(out, "\n")
end

local function ok(rel, vars)
  local m, p = load(rel, vars)
  assert(m, rel .. " did not load:\n" .. messages(p))
  return m, p
end

local function find(problems, severity, path)
  for _, p in ipairs(problems) do
    if p.severity == severity and p.path == path then return p end
  end
  return nil
end

describe("seed-examples", function()
  it("has exactly the ten folders this spec knows", function()
    local names = {}
    for _, n in ipairs(fs.list(SHARED .. "/corpus/seed-examples")) do
      if fs.isdir(SHARED .. "/corpus/seed-examples/" .. n) then names[#names + 1] = n end
    end
    assert.are.same({ "basic", "catalog", "compute-fargate", "database", "discovery", "dns", "extensions",
      "https", "services", "vpc-cidr" }, names)
  end)

  it("basic: two ECS environments, one service, a GitHub pipeline", function()
    local m, w = ok("seed-examples/basic/mu.yml")
    assert.are.same({}, w)
    assert.are.equal("mu", m.namespace)
    assert.are.equal(2, #m.environments)
    assert.are.equal(2, m.environments[1].cluster.maxSize)
    assert.are.equal(5, m.environments[2].cluster.maxSize)
    local s = m.services[1]
    assert.are.equal("basic", s.name) -- the directory name, as mu does
    assert.are.equal(80, s.port)
    assert.are.equal("/", s.healthEndpoint)
    assert.are.same({ "/*" }, s.pathPatterns)
    assert.are.equal("cplee/aftp-mu", s.pipeline.source.repo)
    assert.are.equal("acceptance", s.pipeline.acceptance.environment)
    assert.are.equal("production", s.pipeline.production.environment)
  end)

  it("catalog: two products with versions; unknown environments only warn", function()
    local m, w = ok("seed-examples/catalog/mu.yml")
    assert.are.same({ "casey.lee" }, m.catalog.iamUsers)
    assert.are.equal(2, #m.catalog.pipelines)
    local basic = m.catalog.pipelines[1]
    assert.are.equal("basic-pipeline", basic.name)
    assert.are.equal("1.5.3", basic.versions.v1.muVersion)
    assert.is_true(basic.versions.v2.acceptance.disabled)
    assert.are.equal("prod-ec2", basic.versions.v1.production.environment)
    assert.are.equal("GitHub", basic.versions.v1.source.provider)
    assert.are.equal("aws/codebuild/java:openjdk-8", m.catalog.pipelines[2].versions.v1.build.image)
    assert.are.equal(4, #w)
    local p = find(w, "warning", "catalog.pipelines[1].versions.v1.production.environment")
    assert.truthy(p)
    assert.are.equal("catalog/mu.yml:29:11", p.where:match("catalog/mu%.yml:%d+:%d+$"))
  end)

  it("compute-fargate: awsvpc networking by default", function()
    local m = ok("seed-examples/compute-fargate/mu.yml")
    assert.are.equal("ecs-fargate", m.environments[1].provider)
    assert.are.equal("awsvpc", m.services[1].networkMode)
    assert.are.equal("ecs-fargate-example", m.services[1].name)
  end)

  it("database: mysql + serverless kept as given, aliases, per-env overrides, placeholder KMS warned", function()
    local m, w = ok("seed-examples/database/mu.yml")
    local s = m.services[1]
    local db = s.database
    assert.are.equal("mydbname", db.name)
    assert.are.equal("mysql", db.engine)
    assert.are.equal("serverless", db.engineMode)
    assert.are.equal(300, db.secondsUntilAutoPause) -- from autoPauseSeconds
    assert.is_nil(db.autoPauseSeconds)
    assert.is_true(db.iamAuthentication)
    assert.are.equal(100, db.allocatedStorage)
    assert.are.equal("arn:aws....", db.kmsKey) -- kept; a later stage reports it
    local prod = config.database_for(s, "production")
    assert.are.equal("provisioned", prod.engineMode)
    assert.are.equal(8, prod.minSize)
    assert.are.equal(0, prod.secondsUntilAutoPause)
    assert.are.equal("mydbname", prod.name)
    assert.are.equal(2, config.database_for(s, "acceptance").maxSize)
    assert.are.equal(16, config.database_for(s, "staging").maxSize)
    assert.are.equal("${DatabaseMasterUsername}", s.environment.SPRING_DATASOURCE_USERNAME)
    local p = find(w, "warning", "service.database.kmsKey")
    assert.truthy(p)
    assert.matches("KMS key ARN", p.message)
  end)

  it("discovery: a route53 provider is accepted, the name kept", function()
    local m = ok("seed-examples/discovery/mu.yml")
    assert.are.equal("route53", m.environments[1].discovery.provider)
    assert.are.equal("acceptance.mu.local", m.environments[1].discovery.name)
  end)

  it("dns: the load balancer name defaults to the environment name", function()
    local m = ok("seed-examples/dns/mu.yml")
    assert.are.equal("example-default", m.environments[1].loadbalancer.name)
    assert.are.equal("foo", m.environments[2].loadbalancer.name)
    assert.are.equal("casey.elasticoperations.com", m.environments[2].loadbalancer.hostedzone)
  end)

  it("extensions: a remote zip and a local folder, kept for the fetcher", function()
    local m = ok("seed-examples/extensions/mu.yml")
    assert.are.equal("https://github.com/stelligent/mu-cfn_nag/archive/v0.2.zip", m.extensions[1].url)
    assert.are.equal("application", m.extensions[2].url)
  end)

  it("https: the partial certificate id is kept", function()
    local m = ok("seed-examples/https/mu.yml")
    assert.are.equal("973c1a2f-e1c6-4f65-8d43-0000000000", m.environments[1].loadbalancer.certificate)
    assert.is_nil(m.environments[1].loadbalancer.name) -- no hosted zone, no name
  end)

  it("services: every service key, lowercase protocol normalised", function()
    local m, w = ok("seed-examples/services/mu.yml")
    assert.are.same({}, w)
    local s = m.services[1]
    assert.are.equal("HTTP", s.protocol)
    assert.are.equal(4, s.desiredCount)
    assert.are.equal("./Dockerfile", s.dockerfile)
    assert.are.equal("tutum/hello-world", s.imageRepository)
    assert.are.equal(20, s.cpu)
    assert.are.equal(400, s.memory)
    assert.are.equal("bridge", s.networkMode)
    assert.are.equal(80, s.targetCPUUtilization)
    assert.are.equal(25, s.priority)
    assert.are.same({ "/bananas", "/apples" }, s.pathPatterns)
    assert.are.same({ "my-service.*" }, s.hostPatterns)
    assert.are.equal("mysql", config.env_value(s.environment.DB_TYPE, "production"))
    assert.are.equal("10.0.100.5:3306", config.env_value(s.environment.DB_URL, "production"))
    assert.are.equal("", config.env_value(s.environment.DB_URL, "staging"))
  end)

  it("vpc-cidr: a templates override compiled to a stack matcher", function()
    local m = ok("seed-examples/vpc-cidr/mu.yml")
    assert.are.equal(1, #m.templates)
    local t = m.templates[1]
    assert.are.equal("mu-vpc-acceptance", t.stack)
    assert.are.equal("^mu%-vpc%-acceptance$", t.pattern)
    assert.are.equal("10.200.0.0/16", t.fragment.Parameters.VpcCidrBlock.Default)
    assert.are.equal("10.200.2.0/24", t.fragment.Parameters.ElbSubnetAZ3CidrBlock.Default)
    assert.is_true(config.stack_matches(t, "mu-vpc-acceptance"))
    assert.is_false(config.stack_matches(t, "mu-vpc-acceptance2"))
    assert.matches("vpc%-cidr/mu%.yml:%d+:%d+$", t.where)
  end)
end)

describe("mu-examples", function()
  local expected_ok = {
    "basic", "catalog", "custom-cidr", "custom-cloudformation", "database-serveless", "database",
    "db-param-group", "ec2-provider", "ecs-fargate", "eks", "elb-dns", "elb-https", "elb-sticky-session",
    "extension", "pipeline-notification", "scheduled-tasks", "service-env-vars", "vpc-target", "vpn",
  }

  it("has exactly the 21 examples this spec knows", function()
    local names = {}
    for _, n in ipairs(fs.list(SHARED .. "/corpus/mu-examples")) do
      if fs.isfile(SHARED .. "/corpus/mu-examples/" .. n .. "/mu.yml") then names[#names + 1] = n end
    end
    assert.are.equal(21, #names)
  end)

  for _, name in ipairs(expected_ok) do
    it(name .. " loads", function()
      local m = ok("mu-examples/" .. name .. "/mu.yml")
      assert.are.equal("mu", m.namespace)
      assert.are.equal("table", type(m.services))
    end)
  end

  it("mu-yml-env-variables: ${env:LOGNAME} substituted before parsing", function()
    local m = ok("mu-examples/mu-yml-env-variables/mu.yml", { LOGNAME = "casey" })
    assert.are.equal("mu-casey", m.namespace)
    assert.are.equal("acceptance.mu-casey.local", m.environments[1].discovery.name)
  end)

  it("mu-yml-env-variables: an unset variable is an error naming line and column", function()
    local m, p = load("mu-examples/mu-yml-env-variables/mu.yml", {})
    assert.is_nil(m)
    assert.are.equal(1, #p)
    assert.matches("mu%-yml%-env%-variables/mu%.yml:2:15: environment variable LOGNAME is not set",
      config.format_error(p[1]))
  end)

  it("pipeline-newman: the acceptance stage names an environment the file lacks (mu fails there too)", function()
    local m, p = load("mu-examples/pipeline-newman/mu.yml")
    assert.is_nil(m)
    local e = find(p, "error", "service.pipeline.acceptance.environment")
    assert.truthy(e, messages(p))
    assert.are.equal("environment 'acceptance' is not defined (environments: dev, production)", e.message)
    assert.matches("pipeline%-newman/mu%.yml:21:5$", e.where)
  end)

  it("custom-cloudformation: short-form intrinsics become long form, parameters and tags kept", function()
    local m = ok("mu-examples/custom-cloudformation/mu.yml")
    local frag = m.templates[1].fragment
    assert.are.same({ ["Fn::Sub"] = "${VpcId}" }, frag.Resources.ExtraSG.Properties.VpcId["Fn::ImportValue"])
    assert.are.same({ Ref = "SshAllow" }, frag.Resources.ExtraSG.Properties.SecurityGroupIngress[1].CidrIp)
    assert.are.same({ ImageId = "ami-xxx" }, m.parameters[1].values)
    assert.are.same({ CostCenter = "research" }, m.tags[1].values)
    local o = config.overrides_for(m, "mu-environment-acceptance")
    assert.are.same({ ImageId = "ami-xxx" }, o.parameters)
    assert.are.equal(0, #o.templates)
  end)

  it("eks: providers, the t2.medium/3 EKS defaults, rbac, a local extension", function()
    local m = ok("mu-examples/eks/mu.yml")
    local e = m.environments[1]
    assert.are.equal("eks", e.provider)
    assert.are.equal("t2.medium", e.cluster.instanceType)
    assert.are.equal(3, e.cluster.maxSize)
    assert.are.equal(3, #m.rbac)
    assert.are.equal("deploy", m.rbac[3].role)
    assert.are.same({ "foo", "bar", "baz" }, m.rbac[3].services)
    assert.are.same({}, m.rbac[1].environments)
    assert.are.equal("custom-ingress", m.extensions[1].url)
    assert.are.equal("$(DatabaseEndpointAddress)", m.services[1].environment.DB_HOST)
    assert.are.equal("mu-environment-acceptance-ConfigMap-aws-auth", m.templates[1].stack)
  end)

  it("vpc-target: an existing VPC and its subnets", function()
    local m = ok("mu-examples/vpc-target/mu.yml")
    local vt = m.environments[1].vpcTarget
    assert.are.equal("vpc-xxxxx", vt.vpcId)
    assert.are.same({ "subnet-xxxxx", "subnet-xxxxy", "subnet-xxxxz" }, vt.instanceSubnetIds)
  end)

  it("database-serveless: environmentConfig switches acceptance to serverless", function()
    local m = ok("mu-examples/database-serveless/mu.yml")
    local s = m.services[1]
    assert.are.equal("serverless", config.database_for(s, "acceptance").engineMode)
    assert.are.equal("provisioned", config.database_for(s, "production").engineMode)
  end)

  it("scheduled-tasks: schedules with their commands", function()
    local m = ok("mu-examples/scheduled-tasks/mu.yml")
    local sch = m.services[1].schedules
    assert.are.equal(2, #sch)
    assert.are.equal("cron(* * * * ? *)", sch[1].expression)
    assert.are.same({ "curl", "http://webhook.example.com/hour-cron" }, sch[2].command)
  end)

  it("vpn: a regex-free key matches only its own stack", function()
    local m = ok("mu-examples/vpn/mu.yml")
    assert.is_true(config.stack_matches(m.templates[1], "mu-vpc-prod"))
    assert.is_false(config.stack_matches(m.templates[1], "mu-vpc-production"))
    assert.are.equal(65000, m.templates[1].fragment.Resources.CustomerGateway.Properties.BgpAsn)
  end)
end)
