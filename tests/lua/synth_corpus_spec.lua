-- Every config of ../shared/corpus (seed-examples and mu-examples)
-- synthesises with zero template, schema and cross-stack problems (database,
-- pipeline and catalog stacks included), and with exactly the warnings this
-- spec lists (EKS and rbac not generated yet, overrides that match nothing,
-- the subnets the vpc-cidr override moves), or stops with the decided error
-- (a value that cannot work on AWS, a remote extension without network, a
-- pipeline repository that only git could tell).  Configs without
-- environments are also synthesised for an environment defined elsewhere
-- (--env acceptance).  LUMU_SHARED names the shared folder.
local config = require "lumu.config"
local synth = require "lumu.synth"
local cfn = require "lumu.cfn"
local fs = require "lumu.fs"

local SHARED = os.getenv("LUMU_SHARED") or "../shared"
local CORPUS = SHARED .. "/corpus"
local checker = assert(cfn.schema.open(SHARED .. "/cfn"))

local function load(rel)
  return config.load(CORPUS .. "/" .. rel, { getenv = function(n) return ({ LOGNAME = "tester" })[n] end })
end

local function plan(rel, envs, git)
  local m, p = load(rel)
  if not m then error(rel .. ": " .. config.format_error(p[1]), 0) end
  local stacks, report = synth.plan(m, { schemas = checker, environments = envs, git = git })
  local by = {}
  for _, d in ipairs(stacks) do by[d.name] = d end
  return stacks, report, by
end

local function keys(list)
  local out = {}
  for _, d in ipairs(list) do out[#out + 1] = d.key end
  table.sort(out)
  return out
end

-- "key: message" of each diagnostic, sorted
local function lines(list)
  local out = {}
  for _, d in ipairs(list) do out[#out + 1] = tostring(d.key) .. ": " .. d.message end
  table.sort(out)
  return out
end

local function problems_text(stacks)
  local lines = {}
  for _, d in ipairs(stacks) do
    for _, p in ipairs(d.problems) do lines[#lines + 1] = d.name .. ": " .. p.path .. ": " .. p.message end
  end
  return table.concat(lines, "\n")
end

local function sorted(t) table.sort(t); return t end

-- Whether this lumu has extension support (lumu.extensions): the
-- extension cases differ.
local EXT = pcall(require, "lumu.extensions")

local function no_env_service(name)
  return "service: no environments in this configuration, so service '" .. name .. "' is not deployed anywhere "
    .. "(lumu synth --env NAME generates it for an environment defined elsewhere)"
end
local function no_env_database(name)
  return "service.database.name: no environments in this configuration, so the database of service '" .. name
    .. "' is not generated (lumu synth --env NAME)"
end
local function ext_not_applied(i, url)
  return "extensions[" .. i .. "]: extension '" .. url .. "' is not applied: this lumu has no extension support yet "
    .. "(lumu.extensions)"
end
local function eks_service(env)
  return "service: service 'eks-example' on eks environment '" .. env .. "': not generated yet (EKS services and "
    .. "their database come with a later version)"
end
local function unmatched(kind, stack)
  return kind .. '["' .. stack .. '"]: matches no generated stack, so it is not applied'
end

-- rel -> { warnings = the exact "key: message" of every warning (any order),
--          errors = { {key, message substring}, ... } (intended errors: the
--            value cannot work on AWS, or needs what the corpus lacks),
--          config_error = substring of the load error,
--          count = number of stacks, stacks = names that must exist,
--          absent = names that must not, git = opts.git for synth.plan,
--          check = function(by, stacks, report) }
local CASES = {
  ["seed-examples/basic"] = { warnings = {},
    stacks = { "mu-service-basic-acceptance", "mu-service-basic-production", "mu-repo-basic", "mu-iam-pipeline-basic",
      "mu-pipeline-basic" } },
  ["seed-examples/catalog"] = { warnings = {}, count = 5,
    stacks = { "mu-bucket-servicecatalog", "mu-iam-portfolio-common", "mu-portfolio-common",
      "mu-product-basic-pipeline", "mu-product-spring-boot-pipeline" },
    check = function(by)
      local function versions(name)
        local out = {}
        for _, a in ipairs(by[name].assets) do out[#out + 1] = a.version end
        return out
      end
      assert.are.same({ "v1", "v2" }, versions("mu-product-basic-pipeline"))
      assert.are.same({ "v1" }, versions("mu-product-spring-boot-pipeline"))
      local users = by["mu-iam-portfolio-common"].template.Resources.CatalogUsers.Properties.Users
      assert.are.same({ "casey.lee" }, users)
    end },
  ["seed-examples/compute-fargate"] = { warnings = {},
    stacks = { "mu-service-ecs-fargate-example-acceptance", "mu-service-ecs-fargate-example-production" } },
  ["seed-examples/database"] = { warnings = { no_env_service("my-service"), no_env_database("my-service") },
    count = 0 },
  ["seed-examples/discovery"] = { warnings = {}, stacks = { "mu-loadbalancer-acceptance" } },
  ["seed-examples/dns"] = { warnings = {}, stacks = { "mu-loadbalancer-example-override" } },
  -- a remote zip and a local folder the seed does not ship: without network
  -- (synth.plan does not fetch by default) the remote one is a clear error
  ["seed-examples/extensions"] = EXT and { warnings = {}, count = 0,
    errors = { { "extensions[1]", "https://github.com/stelligent/mu-cfn_nag/archive/v0.2.zip is not in the "
      .. "extension cache" } } }
    or { warnings = { ext_not_applied(1, "https://github.com/stelligent/mu-cfn_nag/archive/v0.2.zip"),
      ext_not_applied(2, "application") }, count = 0 },
  ["seed-examples/https"] = { warnings = {}, stacks = { "mu-loadbalancer-env-with-elb-https" } },
  ["seed-examples/services"] = { warnings = { no_env_service("my-service") }, count = 0 },
  -- The seed moves the VPC and its ELB subnets to 10.200.0.0/16 but leaves the
  -- instance and NAT subnets at lumu's defaults in 10.0.x.0/24: they move
  -- along, with one warning (the CIDRs: "the vpc-cidr override" below).
  ["seed-examples/vpc-cidr"] = { stacks = { "mu-vpc-acceptance" }, warnings = {
    'templates["mu-vpc-acceptance"]: moves VpcCidrBlock of stack mu-vpc-acceptance to 10.200.0.0/16; 4 subnets '
      .. "left at lumu's defaults outside it moved along: InstanceSubnetAZ1CidrBlock 10.0.100.0/24 -> "
      .. "10.200.100.0/24, InstanceSubnetAZ2CidrBlock 10.0.101.0/24 -> 10.200.101.0/24, InstanceSubnetAZ3CidrBlock "
      .. "10.0.102.0/24 -> 10.200.102.0/24, NatSubnetAZ1CidrBlock 10.0.200.0/24 -> 10.200.200.0/24" } },
  ["mu-examples/basic"] = { warnings = {}, stacks = { "mu-service-basic-production", "mu-pipeline-basic" } },
  ["mu-examples/catalog"] = { warnings = {},
    stacks = { "mu-environment-prod-fargate", "mu-portfolio-common", "mu-product-basic-pipeline" } },
  ["mu-examples/custom-cidr"] = { warnings = {}, stacks = { "mu-vpc-acceptance" } },
  ["mu-examples/custom-cloudformation"] = {
    warnings = { unmatched("parameters", "mu-environment-acceptance"), unmatched("tags", "mu-environment-acceptance"),
      unmatched("templates", "mu-cluster-example") },
    stacks = { "mu-environment-example" } },
  ["mu-examples/database-serveless"] = {
    warnings = { no_env_service("sample-service"), no_env_database("sample-service") }, count = 0 },
  ["mu-examples/database"] = {
    warnings = { no_env_service("sample-service"), no_env_database("sample-service") }, count = 0 },
  ["mu-examples/db-param-group"] = { warnings = {},
    stacks = { "mu-service-myservice-myenv", "mu-database-myservice-myenv" },
    check = function(by)
      local r = by["mu-iam-common"].template.Resources.RDSPolicy
      assert.are.equal("AWS::IAM::Policy", r.Type)
      assert.are.same({ "templates" }, by["mu-iam-common"].overrides)
      -- the override reaches the database stack now that it is generated
      local db = by["mu-database-myservice-myenv"].template.Resources
      assert.are.equal("AWS::RDS::DBParameterGroup", db.LowerCaseTableNamesParameterGroup.Type)
      assert.are.same({ Ref = "LowerCaseTableNamesParameterGroup" },
        db.DBInstanceStandalone.Properties.DBParameterGroupName)
    end },
  ["mu-examples/ec2-provider"] = { warnings = {},
    stacks = { "mu-bucket-codedeploy", "mu-app-basic-example", "mu-iam-service-basic-example-dev",
      "mu-service-basic-example-dev" } },
  ["mu-examples/ecs-fargate"] = { warnings = {}, stacks = { "mu-service-ecs-fargate-example-acceptance" } },
  -- EKS services (and so their databases) and rbac are not generated yet
  ["mu-examples/eks"] = {
    warnings = EXT and { "rbac: not generated yet (EKS role bindings come with a later version)",
      eks_service("acceptance"), eks_service("production"),
      unmatched("templates", "mu-environment-acceptance-ConfigMap-aws-auth"),
      "extensions[1]: extension custom-ingress: has no template file lumu knows and no init.lua, so it changes nothing",
      "extensions[1]: extension custom-ingress: ingress.yml ignored (Kubernetes manifests are not generated by lumu)" }
      or { "rbac: not generated yet (EKS role bindings come with a later version)",
      eks_service("acceptance"), eks_service("production"),
      unmatched("templates", "mu-environment-acceptance-ConfigMap-aws-auth"), ext_not_applied(1, "custom-ingress") },
    absent = { "mu-service-eks-example-acceptance", "mu-database-eks-example-acceptance" } },
  ["mu-examples/elb-dns"] = { warnings = {}, stacks = { "mu-loadbalancer-example-default" } },
  ["mu-examples/elb-https"] = { warnings = {}, stacks = { "mu-loadbalancer-env-with-elb-https" } },
  ["mu-examples/elb-sticky-session"] = {
    -- no pathPatterns, so no target group: the override has nothing to change
    warnings = { 'templates["mu-service-myservice-myenv"].Resources.ElbTargetGroup: stack mu-service-myservice-myenv '
      .. "has no resource 'ElbTargetGroup' and the override gives no Type, so it is ignored" },
    stacks = { "mu-service-myservice-myenv" } },
  ["mu-examples/extension"] = EXT and { warnings = {}, stacks = { "mu-vpc-acceptance" },
    check = function(by)
      local r = by["mu-environment-acceptance"].template.Resources
      assert.are.equal("AWS::S3::Bucket", r.ExtraBucket.Type)
      assert.are.equal("AWS::EC2::SecurityGroup", r.ExtraSG.Type)
    end }
    or { warnings = { ext_not_applied(1, "bucket"), ext_not_applied(2, "security-group") },
      stacks = { "mu-vpc-acceptance" } },
  ["mu-examples/mu-yml-env-variables"] = { warnings = {},
    stacks = { "mu-tester-service-basic-example-acceptance", "mu-tester-pipeline-basic-example" } },
  ["mu-examples/pipeline-newman"] = {
    config_error = "service.pipeline.acceptance.environment: environment 'acceptance' is not defined" },
  -- no source.repo: mu took it from the git checkout, which the corpus is
  -- not (lumu synth reads .git/config); with a remote it synthesises
  ["mu-examples/pipeline-notification"] = { warnings = { no_env_service("pipeline-notification") }, count = 0,
    errors = { { "service.pipeline.source.repo", "not set and no git remote was detected" } } },
  ["mu-examples/pipeline-notification+git"] = { file = "mu-examples/pipeline-notification",
    git = { provider = "GitHub", repo = "acme/notify", branch = "main" },
    warnings = { no_env_service("pipeline-notification") },
    stacks = { "mu-iam-pipeline-pipeline-notification", "mu-pipeline-pipeline-notification" },
    check = function(by)
      local n = 0
      for _, r in pairs(by["mu-pipeline-pipeline-notification"].template.Resources) do
        if r.Type == "AWS::SNS::Subscription" then n = n + 1 end
      end
      assert.are.equal(2, n) -- joe@ and bob@
      assert.are.equal("acme/notify", by["mu-pipeline-pipeline-notification"].parameters.SourceRepo)
    end },
  ["mu-examples/scheduled-tasks"] = { warnings = {},
    stacks = { "mu-schedule-sample-service-minutely-acceptance", "mu-schedule-sample-service-hourly-acceptance" } },
  ["mu-examples/service-env-vars"] = { warnings = { no_env_service("service-with-env-vars") }, count = 0 },
  ["mu-examples/vpc-target"] = { warnings = {}, stacks = { "mu-target-example-vpc-target" } },
  ["mu-examples/vpn"] = { warnings = {}, stacks = { "mu-vpc-prod" },
    check = function(by)
      local r = by["mu-vpc-prod"].template.Resources
      assert.are.equal("AWS::EC2::VPNConnection", r.VPNconnection.Type)
      assert.are.equal("AWS::EC2::VPNGatewayRoutePropagation", r.VPNRoutePropagation.Type)
    end },
}

describe("the corpus", function()
  it("has a case for every config (and no stale case)", function()
    local found, want = {}, {}
    for _, set in ipairs({ "seed-examples", "mu-examples" }) do
      for _, n in ipairs(assert(fs.list(CORPUS .. "/" .. set))) do
        if fs.isfile(CORPUS .. "/" .. set .. "/" .. n .. "/mu.yml") then found[#found + 1] = set .. "/" .. n end
      end
    end
    for k, c in pairs(CASES) do
      if not c.file then want[#want + 1] = k end
    end
    table.sort(found)
    table.sort(want)
    assert.are.same(want, found)
  end)
end)

local names = {}
for k in pairs(CASES) do names[#names + 1] = k end
table.sort(names)

for _, name in ipairs(names) do
  local case = CASES[name]
  local rel = case.file or name
  describe(name, function()
    if case.config_error then
      it("fails to load with the decided error", function()
        local m, p = load(rel .. "/mu.yml")
        assert.is_nil(m)
        local text = {}
        for _, x in ipairs(p) do text[#text + 1] = config.format_error(x) end
        assert.matches(case.config_error, table.concat(text, "\n"), 1, true)
      end)
      return
    end
    it("synthesises with zero problems and exactly the expected warnings", function()
      local stacks, report, by = plan(rel .. "/mu.yml", nil, case.git)
      local want_errors = {}
      for _, e in ipairs(case.errors or {}) do want_errors[#want_errors + 1] = e[1] end
      table.sort(want_errors)
      assert.are.same(want_errors, keys(report.errors), table.concat(lines(report.errors), "\n"))
      for i, e in ipairs(case.errors or {}) do
        assert.matches(e[2], report.errors[i].message, 1, true)
      end
      assert.are.equal(0, report.problems, problems_text(stacks))
      local want = { table.unpack(case.warnings) }
      table.sort(want)
      assert.are.same(want, lines(report.warnings))
      if case.count then assert.are.equal(case.count, #stacks) end
      for _, n in ipairs(case.stacks or {}) do assert.is_truthy(by[n], "missing stack " .. n) end
      for _, n in ipairs(case.absent or {}) do assert.is_nil(by[n], "unexpected stack " .. n) end
      if case.check then case.check(by, stacks, report) end
    end)
  end)
end

describe("configs without environments, for an environment defined elsewhere", function()
  -- the service-side stacks of that environment, its database included;
  -- pipelines (which span environments) are left out of an --env selection
  local KINDS = { service = true, iam = true, repo = true, database = true }
  -- corpus configs, and the seed database with a real KMS key
  for _, path in ipairs({ "seed-examples/services", "mu-examples/database", "mu-examples/database-serveless",
    "mu-examples/service-env-vars", "mu-examples/pipeline-notification", "tests/fixtures/synth/seed-database" }) do
    it(path .. " --env acceptance", function()
      local stacks, report, by
      if path:match("^tests/") then
        local m = assert(config.load(path .. "/mu.yml"))
        stacks, report = synth.plan(m, { schemas = checker, environments = { "acceptance" } })
        by = {}
        for _, d in ipairs(stacks) do by[d.name] = d end
      else
        stacks, report, by = plan(path .. "/mu.yml", { "acceptance" })
      end
      assert.are.same({}, keys(report.errors), table.concat(lines(report.errors), "\n"))
      assert.are.equal(0, report.problems, problems_text(stacks))
      local svc
      for _, d in ipairs(stacks) do
        if d.kind == "service" then svc = d end
        assert.is_true(KINDS[d.kind], d.name)
      end
      assert.is_truthy(svc)
      assert.is_truthy(by[svc.name:gsub("^mu%-service%-", "mu-iam-service-")])
      local w = keys(report.warnings)
      assert.are.equal("acceptance", w[1]) -- the --env note comes first (key "acceptance")
    end)
  end

  it("the seed database's placeholder kmsKey is an error naming the key", function()
    local _, report = plan("seed-examples/database/mu.yml", { "acceptance" })
    assert.are.same({ "service.database.kmsKey" }, keys(report.errors))
    assert.matches("mu.yml:24:7$", report.errors[1].where)
    assert.matches("'arn:aws....' is not a KMS key", report.errors[1].message, 1, true)
  end)

  it("seed services: the explicit priority 25 (path) and 26 (host), image as given", function()
    local _, _, by = plan("seed-examples/services/mu.yml", { "acceptance" })
    local d = by["mu-service-my-service-acceptance"]
    assert.are.equal("25", d.parameters.PathListenerRulePriority)
    assert.are.equal("26", d.parameters.HostListenerRulePriority)
    assert.are.equal("tutum/hello-world", d.parameters.ImageUrl)
    assert.are.equal("4", d.parameters.ServiceDesiredCount)
    assert.is_nil(by["mu-repo-my-service"])
  end)

  it("seed database (real key): the password is a secret, the outputs imports of the database stack", function()
    local m = assert(config.load("tests/fixtures/synth/seed-database/mu.yml"))
    local stacks = synth.plan(m, { environments = { "acceptance" } })
    local by = {}
    for _, d in ipairs(stacks) do by[d.name] = d end
    local d = by["mu-service-my-service-acceptance"]
    local c = d.template.Resources.MicroserviceTaskDefinition.Properties.ContainerDefinitions[1]
    assert.are.equal("SPRING_DATASOURCE_PASSWORD", c.Secrets[1].Name)
    assert.contains(d.depends, "mu-database-my-service-acceptance")
    local env = {}
    for _, e in ipairs(c.Environment) do env[e.Name] = e.Value end
    assert.are.same({ ["Fn::ImportValue"] = "mu-database-my-service-acceptance-DatabaseName" },
      env.SPRING_DATASOURCE_URL["Fn::Sub"][2].DatabaseName)
    local text = require("lumu.json").encode(d.template)
    assert.is_nil(text:find('"DatabaseMasterPassword":', 1, true)) -- no such parameter
    assert.is_nil(text:find("NoEcho", 1, true))
    -- the database uses the given key: no key in the service IAM stack
    assert.is_nil(by["mu-iam-service-my-service-acceptance"].template.Resources.DatabaseKey)
    assert.are.equal("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      by["mu-database-my-service-acceptance"].parameters.DatabaseKeyArn)
  end)
end)

-- The CIDR a subnet or VPC gets: a literal, or a Ref to a parameter (value
-- passed, else its Default).
local function cidr_of(d, v)
  if type(v) == "string" then return v end
  if type(v) == "table" and v.Ref then
    return d.parameters[v.Ref] or d.template.Parameters[v.Ref].Default
  end
  return nil
end

describe("the vpc-cidr override", function()
  -- subnet resource -> CIDR (value passed and template Default agree)
  local function subnets(d)
    local out = {}
    for id, r in pairs(d.template.Resources) do
      if r.Type == "AWS::EC2::Subnet" then
        local ref = r.Properties.CidrBlock.Ref
        out[id] = cidr_of(d, r.Properties.CidrBlock)
        if ref and d.parameters[ref] then assert.are.equal(d.parameters[ref], d.template.Parameters[ref].Default, ref) end
      end
    end
    return out
  end

  it("seed vpc-cidr: the ELB subnets as set, the instance and NAT subnets moved along", function()
    local _, report, by = plan("seed-examples/vpc-cidr/mu.yml")
    assert.are.same({}, report.errors)
    local d = by["mu-vpc-acceptance"]
    assert.are.equal("10.200.0.0/16", d.parameters.VpcCidrBlock or d.template.Parameters.VpcCidrBlock.Default)
    assert.are.same({
      ElbSubnetAZ1 = "10.200.0.0/24", ElbSubnetAZ2 = "10.200.1.0/24", ElbSubnetAZ3 = "10.200.2.0/24",
      InstanceSubnetAZ1 = "10.200.100.0/24", InstanceSubnetAZ2 = "10.200.101.0/24",
      InstanceSubnetAZ3 = "10.200.102.0/24", NatSubnetAZ1 = "10.200.200.0/24",
    }, subnets(d))
    assert.are.same({}, synth.network_check(d))
    assert.are.equal(1, #report.warnings)
  end)

  it("mu's custom-cidr (every subnet set) moves nothing and warns about nothing", function()
    local _, report, by = plan("mu-examples/custom-cidr/mu.yml")
    assert.are.same({}, report.warnings)
    local d = by["mu-vpc-acceptance"]
    assert.are.equal("10.200.0.0/16", d.parameters.VpcCidrBlock or d.template.Parameters.VpcCidrBlock.Default)
    for id, c in pairs(subnets(d)) do assert.is_truthy(c:match("^10%.200%."), id .. " " .. c) end
  end)

  it("without the override the VPC keeps mu's 10.0.0.0/16", function()
    local _, _, by = plan("seed-examples/discovery/mu.yml")
    local d = by["mu-vpc-acceptance"]
    for _, r in pairs(d.template.Resources) do
      if r.Type == "AWS::EC2::VPC" then assert.are.equal("10.0.0.0/16", cidr_of(d, r.Properties.CidrBlock)) end
    end
  end)
end)

describe("cross-stack references", function()
  it("flag an import the producing stack does not export, and a producer deployed later", function()
    local stacks = synth.plan((load("mu-examples/ecs-fargate/mu.yml")), {})
    -- drop an export from the environment stack
    for _, d in ipairs(stacks) do
      if d.name == "mu-environment-acceptance" then d.template.Outputs.EcsCluster = nil end
    end
    local found = synth.cross_check(stacks)
    assert.is_true(#found >= 2)
    assert.matches("imports mu%-environment%-acceptance%-EcsCluster, which stack mu%-environment%-acceptance "
      .. "does not export", found[1].message)
    local fresh = synth.plan((load("mu-examples/ecs-fargate/mu.yml")), {})
    local rev = {}
    for i = #fresh, 1, -1 do rev[#rev + 1] = fresh[i] end
    found = synth.cross_check(rev)
    assert.is_true(#found > 0)
    assert.matches("which is deployed after it", found[1].message)
  end)

  it("finds the same imports in C and in Lua, nested ones included", function()
    local util = require "lumu.cfn.util"
    local stacks = synth.plan((load("mu-examples/ecs-fargate/mu.yml")), {})
    local d = stacks[#stacks]
    -- an import nested in another intrinsic, one inside an import, and a missing one
    d.template.Resources.Extra = { Type = "AWS::SNS::Topic", Properties = { TopicName = { ["Fn::Join"] = { "-", {
      { ["Fn::ImportValue"] = "mu-nothere-X" },
      { ["Fn::ImportValue"] = { ["Fn::Sub"] = "${AWS::StackName}-Y", Inner = { ["Fn::ImportValue"] = "mu-gone-Z" } } },
    } } } } }
    local rev = {}
    for i = #stacks, 1, -1 do rev[#rev + 1] = stacks[i] end
    local use_c = util.use_c
    util.use_c = false
    local lua_found = synth.cross_check(rev)
    util.use_c = use_c
    local c_found = synth.cross_check(rev)
    assert.is_true(#lua_found > 0)
    assert.are.same(lua_found, c_found)
    if util.core then
      local list = util.core.values({ a = { b = { k = 1, c = { k = 2 } } }, k = 0 }, "k", 100)
      assert.are.same({ 0, 1, 2 }, list)
      assert.are.same({}, util.core.values({ a = { a = { a = { k = 1 } } } }, "k", 2))
      assert.are.same({}, util.core.values("x", "k", 100))
    end
  end)
end)
