-- Every config of ../shared/corpus (seed-examples and mu-examples)
-- synthesises with zero template, schema and cross-stack problems, and with
-- exactly the warnings this spec lists (what is not generated yet, overrides
-- that match nothing), or fails with the decided configuration error.
-- Configs without environments are also synthesised for an environment
-- defined elsewhere (--env acceptance).  LUMU_SHARED names the shared folder.
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

local function plan(rel, envs)
  local m, p = load(rel)
  if not m then error(rel .. ": " .. config.format_error(p[1]), 0) end
  local stacks, report = synth.plan(m, { schemas = checker, environments = envs })
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

local function problems_text(stacks)
  local lines = {}
  for _, d in ipairs(stacks) do
    for _, p in ipairs(d.problems) do lines[#lines + 1] = d.name .. ": " .. p.path .. ": " .. p.message end
  end
  return table.concat(lines, "\n")
end

local function sorted(t) table.sort(t); return t end

-- rel -> { warnings = sorted warning keys, stacks = names that must exist,
--          envs = --env list, check = function(by, stacks, report) }
local CASES = {
  ["seed-examples/basic"] = { warnings = { "service.pipeline" },
    stacks = { "mu-service-basic-acceptance", "mu-service-basic-production", "mu-repo-basic" } },
  ["seed-examples/catalog"] = { warnings = { "catalog" }, count = 0 },
  ["seed-examples/compute-fargate"] = { warnings = {},
    stacks = { "mu-service-ecs-fargate-example-acceptance", "mu-service-ecs-fargate-example-production" } },
  ["seed-examples/database"] = { warnings = sorted { "service.database", "service" }, count = 0 },
  ["seed-examples/discovery"] = { warnings = {}, stacks = { "mu-loadbalancer-acceptance" } },
  ["seed-examples/dns"] = { warnings = {}, stacks = { "mu-loadbalancer-example-override" } },
  ["seed-examples/extensions"] = { warnings = { "extensions[1]", "extensions[2]" }, count = 0 },
  ["seed-examples/https"] = { warnings = {}, stacks = { "mu-loadbalancer-env-with-elb-https" } },
  ["seed-examples/services"] = { warnings = { "service" }, count = 0 },
  -- The seed moves the VPC and its ELB subnets to 10.200.0.0/16 but leaves the
  -- instance and NAT subnets in 10.0.x.0/24, which AWS cannot create: a clear
  -- error naming the override and the parameters to set (custom-cidr, mu's
  -- complete version of it, synthesises).
  ["seed-examples/vpc-cidr"] = { warnings = {}, stacks = { "mu-vpc-acceptance" },
    errors = { 'templates["mu-vpc-acceptance"]', 'templates["mu-vpc-acceptance"]', 'templates["mu-vpc-acceptance"]',
      'templates["mu-vpc-acceptance"]' },
    error_messages = { "set InstanceSubnetAZ1CidrBlock to a block inside 10.200.0.0/16",
      "set InstanceSubnetAZ2CidrBlock", "set InstanceSubnetAZ3CidrBlock", "set NatSubnetAZ1CidrBlock" } },
  ["mu-examples/basic"] = { warnings = { "service.pipeline" }, stacks = { "mu-service-basic-production" } },
  ["mu-examples/catalog"] = { warnings = { "catalog" }, stacks = { "mu-environment-prod-fargate" } },
  ["mu-examples/custom-cidr"] = { warnings = {}, stacks = { "mu-vpc-acceptance" } },
  ["mu-examples/custom-cloudformation"] = {
    warnings = { 'parameters["mu-environment-acceptance"]', 'tags["mu-environment-acceptance"]',
      'templates["mu-cluster-example"]' },
    stacks = { "mu-environment-example" } },
  ["mu-examples/database-serveless"] = { warnings = sorted { "service.database", "service" }, count = 0 },
  ["mu-examples/database"] = { warnings = sorted { "service.database", "service" }, count = 0 },
  ["mu-examples/db-param-group"] = {
    warnings = sorted { "service.database", 'templates["mu-database-myservice-myenv"]' },
    stacks = { "mu-service-myservice-myenv" },
    check = function(by)
      local r = by["mu-iam-common"].template.Resources.RDSPolicy
      assert.are.equal("AWS::IAM::Policy", r.Type)
      assert.are.same({ "templates" }, by["mu-iam-common"].overrides)
    end },
  ["mu-examples/ec2-provider"] = { warnings = {},
    stacks = { "mu-bucket-codedeploy", "mu-app-basic-example", "mu-iam-service-basic-example-dev",
      "mu-service-basic-example-dev" } },
  ["mu-examples/ecs-fargate"] = { warnings = {}, stacks = { "mu-service-ecs-fargate-example-acceptance" } },
  ["mu-examples/eks"] = {
    warnings = sorted { "extensions[1]", "rbac", "service.database", "service", "service",
      'templates["mu-environment-acceptance-ConfigMap-aws-auth"]' },
    absent = { "mu-service-eks-example-acceptance" } },
  ["mu-examples/elb-dns"] = { warnings = {}, stacks = { "mu-loadbalancer-example-default" } },
  ["mu-examples/elb-https"] = { warnings = {}, stacks = { "mu-loadbalancer-env-with-elb-https" } },
  ["mu-examples/elb-sticky-session"] = {
    -- no pathPatterns, so no target group: the override has nothing to change
    warnings = { 'templates["mu-service-myservice-myenv"].Resources.ElbTargetGroup' },
    stacks = { "mu-service-myservice-myenv" } },
  ["mu-examples/extension"] = { warnings = { "extensions[1]", "extensions[2]" }, stacks = { "mu-vpc-acceptance" } },
  ["mu-examples/mu-yml-env-variables"] = { warnings = { "service.pipeline" },
    stacks = { "mu-tester-service-basic-example-acceptance" } },
  ["mu-examples/pipeline-newman"] = {
    config_error = "service.pipeline.acceptance.environment: environment 'acceptance' is not defined" },
  ["mu-examples/pipeline-notification"] = { warnings = sorted { "service.pipeline", "service" }, count = 0 },
  ["mu-examples/scheduled-tasks"] = { warnings = {},
    stacks = { "mu-schedule-sample-service-minutely-acceptance", "mu-schedule-sample-service-hourly-acceptance" } },
  ["mu-examples/service-env-vars"] = { warnings = { "service" }, count = 0 },
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
    for k in pairs(CASES) do want[#want + 1] = k end
    table.sort(found)
    table.sort(want)
    assert.are.same(want, found)
  end)
end)

local names = {}
for k in pairs(CASES) do names[#names + 1] = k end
table.sort(names)

for _, rel in ipairs(names) do
  local case = CASES[rel]
  describe(rel, function()
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
      local stacks, report, by = plan(rel .. "/mu.yml")
      assert.are.same(case.errors or {}, keys(report.errors))
      for i, m in ipairs(case.error_messages or {}) do
        assert.matches(m, report.errors[i].message, 1, true)
      end
      assert.are.equal(0, report.problems, problems_text(stacks))
      assert.are.same(case.warnings, keys(report.warnings))
      if case.count then assert.are.equal(case.count, #stacks) end
      for _, n in ipairs(case.stacks or {}) do assert.is_truthy(by[n], "missing stack " .. n) end
      for _, n in ipairs(case.absent or {}) do assert.is_nil(by[n], "unexpected stack " .. n) end
      if case.check then case.check(by, stacks, report) end
    end)
  end)
end

describe("configs without environments, for an environment defined elsewhere", function()
  for _, rel in ipairs({ "seed-examples/services", "seed-examples/database", "mu-examples/database",
    "mu-examples/database-serveless", "mu-examples/service-env-vars", "mu-examples/pipeline-notification" }) do
    it(rel .. " --env acceptance", function()
      local stacks, report, by = plan(rel .. "/mu.yml", { "acceptance" })
      assert.are.same({}, keys(report.errors))
      assert.are.equal(0, report.problems, problems_text(stacks))
      local svc
      for _, d in ipairs(stacks) do
        if d.kind == "service" then svc = d end
        assert.is_true(d.kind == "service" or d.kind == "iam" or d.kind == "repo", d.name)
      end
      assert.is_truthy(svc)
      assert.is_truthy(by[svc.name:gsub("^mu%-service%-", "mu-iam-service-")])
      local w = keys(report.warnings)
      assert.are.equal("acceptance", w[1]) -- the --env note comes first (key "acceptance")
    end)
  end

  it("seed services: the explicit priority 25 (path) and 26 (host), image as given", function()
    local _, _, by = plan("seed-examples/services/mu.yml", { "acceptance" })
    local d = by["mu-service-my-service-acceptance"]
    assert.are.equal("25", d.parameters.PathListenerRulePriority)
    assert.are.equal("26", d.parameters.HostListenerRulePriority)
    assert.are.equal("tutum/hello-world", d.parameters.ImageUrl)
    assert.are.equal("4", d.parameters.ServiceDesiredCount)
    assert.is_nil(by["mu-repo-my-service"])
  end)

  it("seed database: the password is a secret, the other outputs parameters", function()
    local _, _, by = plan("seed-examples/database/mu.yml", { "acceptance" })
    local d = by["mu-service-my-service-acceptance"]
    local c = d.template.Resources.MicroserviceTaskDefinition.Properties.ContainerDefinitions[1]
    assert.are.equal("SPRING_DATASOURCE_PASSWORD", c.Secrets[1].Name)
    assert.are.equal("mydbname", d.parameters.DatabaseName)
    local text = require("lumu.json").encode(d.template)
    assert.is_nil(text:find('"DatabaseMasterPassword":', 1, true)) -- no such parameter
    assert.is_nil(text:find("NoEcho", 1, true))
  end)
end)

-- The CIDR a subnet or VPC gets: a literal, or a Ref to a parameter (value
-- passed, else its Default), or Fn::Select over Fn::Cidr of one.
local function cidr_of(d, v)
  if type(v) == "string" then return v end
  if type(v) == "table" and v.Ref then
    return d.parameters[v.Ref] or d.template.Parameters[v.Ref].Default
  end
  return nil
end

describe("the vpc-cidr override", function()
  for _, rel in ipairs({ "seed-examples/vpc-cidr", "mu-examples/custom-cidr" }) do
    it(rel .. " really changes the VPC and subnet CIDRs", function()
      local _, _, by = plan(rel .. "/mu.yml")
      local d = by["mu-vpc-acceptance"]
      local vpc, elb = nil, {}
      for _, r in pairs(d.template.Resources) do
        if r.Type == "AWS::EC2::VPC" then vpc = cidr_of(d, r.Properties.CidrBlock) end
        if r.Type == "AWS::EC2::Subnet" then
          local c = cidr_of(d, r.Properties.CidrBlock)
          if c then elb[#elb + 1] = c end
        end
      end
      assert.are.equal("10.200.0.0/16", vpc)
      table.sort(elb)
      assert.is_true(#elb >= 2)
      local moved = {}
      for _, c in ipairs(elb) do
        if c:match("^10%.200%.") then moved[#moved + 1] = c end
      end
      -- the ELB subnets (and, in custom-cidr, all of them) moved into 10.200.0.0/16
      for _, want in ipairs({ "10.200.0.0/24", "10.200.1.0/24", "10.200.2.0/24" }) do
        local hit = false
        for _, c in ipairs(moved) do hit = hit or c == want end
        assert.is_true(hit, want)
      end
      if rel == "mu-examples/custom-cidr" then assert.are.equal(#elb, #moved) end
      -- and the values passed to the stack agree with the template
      assert.are.equal("10.200.0.0/16", d.parameters.VpcCidrBlock or d.template.Parameters.VpcCidrBlock.Default)
    end)
  end

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
end)
