-- The model contract: the same project as mu.yml and lumu.lua gives the same
-- model; mu's defaults per provider; normalisation; namespace precedence.
local config = require "lumu.config"

local FIX = "tests/fixtures/config"

local function no_env() return nil end

-- Drops underscore keys and the `where` of override entries (positions).
local function public(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if not (type(k) == "string" and (k:sub(1, 1) == "_" or k == "where")) then out[k] = public(x) end
  end
  return out
end

local function yaml(text, opts)
  opts = opts or {}
  opts.getenv = opts.getenv or no_env
  opts.dirname = opts.dirname or "proj"
  local m, p = config.load_string(text, opts)
  if not m then
    local l = {}
    for _, e in ipairs(p) do l[#l + 1] = config.format_error(e) end
    error("did not load:\n" .. table.concat(l, "\n"), 2)
  end
  return m, p
end

local function lua(text, opts)
  opts = opts or {}
  opts.kind = "lua"
  return yaml(text, opts)
end

describe("mu.yml and lumu.lua", function()
  it("give the same model for the same project", function()
    local a = assert(config.load(FIX .. "/equiv/mu.yml", { getenv = no_env }))
    local b = assert(config.load(FIX .. "/equiv/lumu.lua", { getenv = no_env }))
    assert.are.equal("yaml", a.source.kind)
    assert.are.equal("lua", b.source.kind)
    assert.are.equal(FIX .. "/equiv", b.source.dir)
    a.source, b.source = nil, nil
    assert.are.same(public(a), public(b))
    -- and the model is the rich one the fixture describes
    assert.are.equal("acme", a.namespace)
    assert.are.equal(3, #a.environments)
    assert.are.equal(2, #a.templates)
    assert.are.equal("4", a.parameters[1].values.MaxSize)
    assert.are.equal("true", a.services[1].environment.DEBUG)
  end)

  it("carry positions: file:line:col for YAML, file:line for Lua", function()
    local a = assert(config.load(FIX .. "/equiv/mu.yml", { getenv = no_env }))
    local b = assert(config.load(FIX .. "/equiv/lumu.lua", { getenv = no_env }))
    assert.are.equal(FIX .. "/equiv/mu.yml:4:5", a.environments[1]._where)
    assert.are.equal(FIX .. "/equiv/mu.yml:8:7", a.environments[1].cluster._keys.maxSize)
    -- the first environment is made by a team module: its call site is there
    assert.are.equal(FIX .. "/equiv/team/platform.lua:7", b.environments[1]._where)
    assert.are.equal(FIX .. "/equiv/lumu.lua:7", b.environments[2]._where)
    assert.are.equal(FIX .. "/equiv/lumu.lua:26", b.services[1].database._where)
    assert.are.equal("environments[2]", b.environments[2]._path)
  end)
end)

describe("defaults", function()
  local function env_of(provider)
    local m = yaml("environments:\n  - name: e\n    provider: " .. provider .. "\nservice:\n  name: s\n")
    return m.environments[1], m.services[1], m
  end

  it("ecs: t3.micro, max 2, bridge networking", function()
    local e, s = env_of("ecs")
    assert.are.equal("t3.micro", e.cluster.instanceType)
    assert.are.equal(2, e.cluster.maxSize)
    assert.are.equal(1, e.cluster.minSize)
    assert.are.equal(1, e.cluster.desiredCapacity)
    assert.are.equal("bridge", s.networkMode)
    assert.are.equal("bridge", config.network_mode(s, e))
  end)

  it("ecs-fargate: awsvpc networking", function()
    local e, s = env_of("ecs-fargate")
    assert.are.equal("awsvpc", s.networkMode)
    assert.are.equal("t3.micro", e.cluster.instanceType)
    assert.are.equal("awsvpc", config.network_mode({ networkMode = "bridge" }, e))
  end)

  it("ec2: like ecs", function()
    local e, s = env_of("ec2")
    assert.are.equal("t3.micro", e.cluster.instanceType)
    assert.are.equal(2, e.cluster.maxSize)
    assert.are.equal("bridge", s.networkMode)
  end)

  it("eks: t2.medium, max 3", function()
    local e = env_of("eks")
    assert.are.equal("t2.medium", e.cluster.instanceType)
    assert.are.equal(3, e.cluster.maxSize)
  end)

  it("mixed providers: bridge, with a warning when set explicitly", function()
    local m = yaml("environments:\n  - name: a\n  - name: b\n    provider: ecs-fargate\nservice:\n  name: s\n")
    assert.are.equal("bridge", m.services[1].networkMode)
    local _, w = yaml("environments:\n  - name: a\n  - name: b\n    provider: ecs-fargate\nservice:\n  networkMode: host\n")
    assert.are.equal(1, #w)
    assert.are.equal("mu.yml:6:3: service.networkMode: warning: 'host' is replaced by 'awsvpc' on Fargate environments",
      config.format_error(w[1]))
  end)

  it("every mu default for an environment", function()
    local m = yaml("environments:\n  - name: acceptance\n")
    local e = public(m.environments[1])
    assert.are.same({
      name = "acceptance", provider = "ecs",
      loadbalancer = { internal = false, accessLogs = { s3Prefix = "access-logs" } },
      cluster = {
        instanceType = "t3.micro", osType = "amazon", instanceTenancy = "default", desiredCapacity = 1,
        minSize = 1, maxSize = 2, targetCPUReservation = 75,
        targetMemoryReservation = 75,
      },
      discovery = { name = "acceptance.mu.local" },
      roles = {},
    }, e)
  end)

  it("every mu default for a service, its database and its pipeline", function()
    local m = yaml("service:\n  database:\n    name: db\n  pipeline: {}\n")
    local s = public(m.services[1])
    local db, p = s.database, s.pipeline
    s.database, s.pipeline = nil, nil
    assert.are.same({
      name = "proj", deploymentStrategy = "blue_green", desiredCount = 2, minSize = 1, maxSize = 2,
      dockerfile = "Dockerfile", port = 8080, protocol = "HTTP", healthEndpoint = "/health", cpu = 10,
      memory = 300, networkMode = "bridge", assignPublicIp = false, links = {}, environment = {},
      pathPatterns = {}, hostPatterns = {}, schedules = {}, targetCPUUtilization = 75, discoveryTTL = 60,
      roles = {}, secrets = {}, dynamodb = {}, logRetentionDays = 30,
      repository = { scanOnPush = true, immutableTags = false, maxImages = 100, untaggedDays = 14 },
    }, s)
    assert.are.same({
      name = "db", engine = "aurora", engineMode = "provisioned", instanceClass = "db.t2.small",
      allocatedStorage = 100, masterUsername = "admin", iamAuthentication = false, minSize = 2,
      maxSize = 256, secondsUntilAutoPause = 300, environmentConfig = {},
    }, db)
    local stage = { type = "LINUX_CONTAINER", computeType = "BUILD_GENERAL1_SMALL",
      image = "aws/codebuild/ubuntu-base:14.04" }
    assert.are.same({
      source = {},
      build = { disabled = false, type = stage.type, computeType = stage.computeType, image = stage.image, timeout = 30 },
      acceptance = { disabled = false, environment = "acceptance", type = stage.type,
        computeType = stage.computeType, image = stage.image, roles = {}, timeout = 30 },
      production = { disabled = false, environment = "production", roles = {}, timeout = 30 },
      roles = {}, notify = {},
    }, p)
  end)

  it("top level: namespace mu, IAM on, empty lists, no catalog", function()
    local m = yaml("")
    assert.are.equal("mu", m.namespace)
    assert.is_false(m.disableIAM)
    assert.are.same({}, m.environments)
    assert.are.same({}, m.services)
    assert.are.same({}, public(m.roles))
    assert.are.same({}, m.rbac)
    assert.are.same({}, m.extensions)
    assert.are.same({}, m.templates)
    assert.is_nil(m.catalog)
  end)

  it("discovery name and load balancer name follow environment and namespace", function()
    local m = yaml("namespace: acme\nenvironments:\n  - name: dev\n    loadbalancer:\n      hostedzone: example.com\n")
    assert.are.equal("dev.acme.local", m.environments[1].discovery.name)
    assert.are.equal("dev", m.environments[1].loadbalancer.name)
  end)

  it("vpcTarget.environment reuses another environment's VPC in the current namespace", function()
    local m = yaml("namespace: acme\nenvironments:\n  - name: a\n  - name: b\n    vpcTarget:\n      environment: a\n")
    assert.are.equal("acme", m.environments[2].vpcTarget.namespace)
    assert.is_nil(m.environments[1].vpcTarget)
  end)
end)

describe("normalisation", function()
  it("strings to booleans and numbers, case of enums, certificate ARNs to ids", function()
    local m = yaml([[
environments:
  - name: a
    provider: ECS
    loadbalancer:
      internal: "yes"
      certificate: arn:aws:acm:us-east-1:123456789012:certificate/abc-123
    cluster:
      maxSize: "4"
      desiredCapacity: 2.0
service:
  port: " 8080 "
  protocol: https
  deploymentStrategy: Rolling
  assignPublicIp: "false"
  database:
    name: db
    iamAuthentication: "TRUE"
    allocatedStorage: "20"
  pipeline:
    source:
      provider: codecommit
      repo: web
    build:
      computeType: build_general1_large
      timeout: "60"
    acceptance:
      disabled: "on"
    production:
      disabled: true
]])
    local e, s = m.environments[1], m.services[1]
    assert.are.equal("ecs", e.provider)
    assert.is_true(e.loadbalancer.internal)
    assert.are.equal("abc-123", e.loadbalancer.certificate)
    assert.are.equal(4, e.cluster.maxSize)
    assert.are.equal("integer", math.type(e.cluster.desiredCapacity))
    assert.are.equal(8080, s.port)
    assert.are.equal("HTTPS", s.protocol)
    assert.are.equal("rolling", s.deploymentStrategy)
    assert.is_false(s.assignPublicIp)
    assert.is_true(s.database.iamAuthentication)
    assert.are.equal(20, s.database.allocatedStorage)
    assert.are.equal("CodeCommit", s.pipeline.source.provider)
    assert.are.equal("BUILD_GENERAL1_LARGE", s.pipeline.build.computeType)
    assert.are.equal(60, s.pipeline.build.timeout)
    assert.is_true(s.pipeline.acceptance.disabled)
  end)

  it("scalars in string fields become strings; environment values too", function()
    local m = yaml("service:\n  name: 123\n  environment:\n    A: 1\n    B: 1.5\n    C: false\n    D:\n    E:\n      a: 2\n")
    local s = m.services[1]
    assert.are.equal("123", s.name)
    assert.are.same({ A = "1", B = "1.5", C = "false", D = "", E = { a = "2" } }, s.environment)
  end)
end)

describe("namespace precedence", function()
  local text = "namespace: file-ns\n"
  it("--namespace > MU_NAMESPACE > file > mu", function()
    local env = function(n) return n == "MU_NAMESPACE" and "env-ns" or nil end
    assert.are.equal("flag-ns", yaml(text, { namespace = "flag-ns", getenv = env }).namespace)
    assert.are.equal("env-ns", yaml(text, { getenv = env }).namespace)
    assert.are.equal("file-ns", yaml(text).namespace)
    assert.are.equal("mu", yaml("").namespace)
    assert.are.equal("env-ns", lua('namespace "file-ns"', { getenv = env }).namespace)
  end)

  it("a bad namespace from the flag or the environment is reported as such", function()
    local m, p = config.load_string("", { namespace = "bad_ns", getenv = no_env })
    assert.is_nil(m)
    assert.matches("^%-%-namespace: namespace: must contain only", config.format_error(p[1]))
    m, p = config.load_string("", { getenv = function(n) return n == "MU_NAMESPACE" and "9x" or nil end })
    assert.is_nil(m)
    assert.matches("^MU_NAMESPACE: namespace: must start with a letter", config.format_error(p[1]))
  end)
end)

describe("lumu extensions (keys mu does not have)", function()
  it("service secrets, dynamodb tables, repository, log retention and database extras", function()
    local m = yaml([[
service:
  name: web
  logRetentionDays: 90
  repository: {scanOnPush: true, maxImages: 50}
  secrets:
    API_KEY: ssm:/web/api-key
    TOKEN: {production: "secretsmanager:web-token"}
  dynamodb:
    - name: orders
      partitionKey: id
      billingMode: on-demand
      environmentConfig: {production: {deletionProtection: true}}
  database:
    name: db
    serverlessVersion: 2
    backupRetentionDays: "14"
    masterPasswordSecretArn: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-pw
]])
    local s = m.services[1]
    assert.are.equal(90, s.logRetentionDays)
    assert.are.same({ scanOnPush = true, immutableTags = false, maxImages = 50, untaggedDays = 14 },
      public(s.repository))
    assert.are.equal("ssm:/web/api-key", s.secrets.API_KEY)
    assert.are.equal("", config.env_value(s.secrets.TOKEN, "dev"))
    local t = s.dynamodb[1]
    assert.are.equal("orders", t.name)
    assert.are.equal("on-demand", t.billingMode) -- kept as given: lumu.gen.dynamodb checks it
    assert.is_true(t.environmentConfig.production.deletionProtection)
    assert.are.equal("mu.yml:10:7", t._keys.partitionKey)
    assert.are.equal("service.dynamodb[1]", t._path)
    assert.are.equal(14, s.database.backupRetentionDays)
    assert.are.equal(2, s.database.serverlessVersion)
  end)

  it("dynamodb{} in lumu.lua appends to a service's tables", function()
    local m = lua([[
service { name = "web", dynamodb = { { name = "a" } } }
dynamodb { name = "b", partitionKey = "id:N" }
]])
    local names = {}
    for _, t in ipairs(m.services[1].dynamodb) do names[#names + 1] = t.name end
    assert.are.same({ "a", "b" }, names)
    assert.are.equal("lumu.lua:2", m.services[1].dynamodb[2]._where)
  end)

  it("are checked where lumu.config can", function()
    local m, p = config.load_string([[
service:
  logRetentionDays: 0
  dynamodb:
    - partitionKey: id
    - name: bad name
    - name: t1
    - name: t1
  database:
    name: db
    masterPasswordSecretArn: not-an-arn
    serverlessVersion: 3
]], { getenv = no_env, dirname = "proj" })
    assert.is_nil(m)
    local got = {}
    for _, e in ipairs(p) do got[#got + 1] = config.format_error(e) end
    assert.are.same({
      "mu.yml:2:3: service.logRetentionDays: must be between 1 and 3653, got 0",
      "mu.yml:4:7: service.dynamodb[1]: missing required key 'name'",
      "mu.yml:5:7: service.dynamodb[2].name: must contain only letters, digits, '_', '.' and '-', got 'bad name'",
      "mu.yml:7:7: service.dynamodb[4].name: duplicate name 't1' (also at mu.yml:6:7)",
      "mu.yml:10:5: service.database.masterPasswordSecretArn: expected a Secrets Manager secret ARN "
        .. "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), got 'not-an-arn'",
      "mu.yml:11:5: service.database.serverlessVersion: must be between 1 and 2, got 3",
    }, got)
  end)
end)
