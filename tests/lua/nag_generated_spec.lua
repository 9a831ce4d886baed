-- Every template lumu generates passes `lumu nag` with zero failures: each
-- config of ../shared/corpus (seed-examples and mu-examples) that
-- synthesises, the bundled example (scripts/example) and the configs without
-- environments synthesised for an environment defined elsewhere; catalog
-- product templates (assets) included.  The only failures allowed are the
-- ones of resources the USER added (mu-examples/extension's bucket), listed
-- exactly.  Unsuppressed warnings on lumu's own resources are only the ones
-- in OPEN_WARNINGS (gaps lumu does not close yet).  Also: the suppressions
-- lumu writes (lumu.gen.nag) are content-gated, SSH is never open to the
-- internet by default, and `lumu synth` runs nag (exit 1 on failures,
-- --no-nag skips it).  LUMU_SHARED names the shared folder.
local config = require "lumu.config"
local synth = require "lumu.synth"
local nag = require "lumu.nag"
local gennag = require "lumu.gen.nag"
local json = require "lumu.json"
local fs = require "lumu.fs"

local SHARED = os.getenv("LUMU_SHARED") or "../shared"
local CORPUS = SHARED .. "/corpus"
local GIT = { provider = "GitHub", repo = "acme/app", branch = "main" }

-- Warnings lumu leaves visible on its own resources, with why.
local OPEN_WARNINGS = {
  W35 = "EKS secrets envelope encryption needs a KMS key the EKS stacks do not create yet",
}

-- Findings on resources the configuration itself adds (overrides,
-- extensions): "config -> sorted list of 'RULE resource'" (failures only).
local USER_FAILURES = {
  ["mu-examples/extension"] = { "F14 ExtraBucket", "F15 ExtraBucket", "F16 ExtraBucket" },
}

local function load(path)
  return config.load(path, { getenv = function(n) return ({ LOGNAME = "tester" })[n] end })
end

-- "<config>" -> stacks (nil when the config does not load or synthesise)
local function plan(path, envs)
  local m = load(path)
  if not m then return nil end
  local stacks, report = synth.plan(m, { git = GIT, environments = envs })
  if #report.errors > 0 then return nil, report end
  return stacks
end

local function lumus(tpl, id)
  local r = tpl and tpl.Resources and tpl.Resources[id]
  return type(r) == "table" and type(r.Metadata) == "table" and r.Metadata["lumu:description"] ~= nil
end

-- templates of a plan: { {file, table} }
local function templates(stacks)
  local out = {}
  for _, d in ipairs(stacks) do
    if d.template then out[#out + 1] = { d.name, d.template } end
    for _, a in ipairs(d.assets or {}) do out[#out + 1] = { d.name .. "/" .. a.key, json.decode(a.body) } end
  end
  return out
end

local RULES = assert(nag.rules())

-- -> failures {"RULE resource"...} sorted, open {"file: resource RULE"} (lumu's, not allowed)
local function scan(stacks)
  local failures, open, count = {}, {}, 0
  for _, t in ipairs(templates(stacks)) do
    count = count + 1
    local r = nag.scan(t[2], { filename = t[1], rules = RULES })
    for _, v in ipairs(r.violations) do
      if v.severity == "failure" then
        failures[#failures + 1] = v.rule .. " " .. v.resource
      elseif (v.type == "Parameter" or lumus(t[2], v.resource)) and not OPEN_WARNINGS[v.rule] then
        open[#open + 1] = t[1] .. ": " .. v.resource .. " " .. v.rule .. " " .. v.message
      end
    end
  end
  table.sort(failures)
  return failures, open, count
end

local function configs()
  local out = {}
  for _, set in ipairs({ "seed-examples", "mu-examples" }) do
    for _, n in ipairs(assert(fs.list(CORPUS .. "/" .. set))) do
      if fs.isfile(CORPUS .. "/" .. set .. "/" .. n .. "/mu.yml") then out[#out + 1] = set .. "/" .. n end
    end
  end
  table.sort(out)
  return out
end

describe("nag on every generated template", function()
  local scanned, synthesised = 0, 0
  for _, rel in ipairs(configs()) do
    it(rel .. " has zero nag failures on lumu's resources", function()
      local stacks = plan(CORPUS .. "/" .. rel .. "/mu.yml")
      if not stacks then return end -- pipeline-newman, extensions without network: synth_corpus_spec
      synthesised = synthesised + 1
      local failures, open, n = scan(stacks)
      scanned = scanned + n
      assert.are.same(USER_FAILURES[rel] or {}, failures)
      assert.are.same({}, open)
    end)
  end

  for _, rel in ipairs({ "seed-examples/services", "seed-examples/database", "mu-examples/database",
    "mu-examples/database-serveless", "mu-examples/service-env-vars", "mu-examples/pipeline-notification" }) do
    it(rel .. " --env acceptance (an environment defined elsewhere) has zero failures", function()
      local stacks = plan(CORPUS .. "/" .. rel .. "/mu.yml", { "acceptance" })
      if not stacks then
        -- the seed database's placeholder kmsKey stops it: the fixture copy has a real key
        stacks = assert(plan("tests/fixtures/synth/seed-database/mu.yml", { "acceptance" }))
      end
      assert.is_true(#stacks > 0)
      local failures, open = scan(stacks)
      assert.are.same({}, failures)
      assert.are.same({}, open)
    end)
  end

  it("the bundled example (scripts/example), lumu.lua and mu.yml alike", function()
    for _, f in ipairs({ "scripts/example/lumu.lua", "scripts/example/mu.yml" }) do
      local stacks = assert(plan(f))
      local failures, open, n = scan(stacks)
      assert.are.same({}, failures)
      assert.are.same({}, open)
      assert.is_true(n >= 18, f)
    end
  end)

  it("the catalog's product templates (assets) are scanned and clean", function()
    local stacks = assert(plan(CORPUS .. "/seed-examples/catalog/mu.yml"))
    local assets = 0
    for _, t in ipairs(templates(stacks)) do
      if t[1]:find("/products/", 1, true) then
        assets = assets + 1
        local r = nag.scan(t[2], { rules = RULES })
        assert.are.equal(0, (nag.counts(r)), t[1])
        assert.is_true(#r.suppressed > 0) -- the pipeline's justified W5/W12
      end
    end
    assert.are.equal(3, assets)
  end)

  it("covered most of the corpus", function()
    assert(synthesised >= 25, "synthesised " .. synthesised)
    assert(scanned >= 150, "scanned " .. scanned)
  end)

  it("every suppression lumu writes has a reason and names a known rule", function()
    local stacks = assert(plan("scripts/example/lumu.lua"))
    local ids = {}
    for _, r in ipairs(RULES) do ids[r.id] = true end
    local n = 0
    for _, t in ipairs(templates(stacks)) do
      for id, r in pairs(t[2].Resources) do
        local s = type(r.Metadata) == "table" and r.Metadata.lumu_nag
        for _, e in ipairs(s and s.rules_to_suppress or {}) do
          n = n + 1
          assert.is_true(ids[e.id], e.id)
          assert.is_true(#e.reason > 20, id .. " " .. e.id .. ": " .. e.reason)
          assert.is_nil(e.reason:find("\n"), "one line")
        end
      end
    end
    assert(n >= 25, "only " .. n)
  end)
end)

-- ---------------------------------------------------------------------------
-- lumu.gen.nag
-- ---------------------------------------------------------------------------

local function res(typ, props, desc)
  return { Type = typ, Properties = props, Metadata = desc ~= false and { ["lumu:description"] = "x" } or nil }
end

local function role(statements, service)
  return res("AWS::IAM::Role", {
    AssumeRolePolicyDocument = { Statement = { { Effect = "Allow",
      Principal = { Service = service or "ec2.amazonaws.com" }, Action = "sts:AssumeRole" } } },
    Policies = { { PolicyName = "p", PolicyDocument = { Version = "2012-10-17", Statement = statements } } },
  })
end

local function suppressed_ids(r)
  local out = {}
  for _, e in ipairs(((r.Metadata or {}).lumu_nag or {}).rules_to_suppress or {}) do out[#out + 1] = e.id end
  table.sort(out)
  return out
end

describe("lumu.gen.nag.annotate", function()
  it("suppresses Resource '*' for actions that take no resource, with the actions in the reason", function()
    local t = { Resources = {
      R = role({ { Effect = "Allow", Action = { "ecr:GetAuthorizationToken" }, Resource = "*" } }) } }
    local added = gennag.annotate(t)
    assert.are.same({ "W5" }, suppressed_ids(t.Resources.R))
    assert.matches("ecr:GetAuthorizationToken take no resource ARN", added[1].reason, 1, true)
    assert.are.equal(0, select(2, nag.counts(nag.scan(t))))
  end)

  it("keeps W5 when one '*' statement of the resource is not justified", function()
    local t = { Resources = { R = role({
      { Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" },
      { Effect = "Allow", Action = { "s3:PutObject" }, Resource = "*" },
    }) } }
    assert.are.same({}, gennag.annotate(t))
    assert.are.same({}, suppressed_ids(t.Resources.R))
  end)

  it("never justifies a wildcard action or s3:ListBucket on '*'", function()
    for _, a in ipairs({ "ec2:Describe*", "s3:ListBucket" }) do
      local t = { Resources = { R = role({ { Effect = "Allow", Action = a, Resource = "*" } }) } }
      assert.are.same({}, suppressed_ids((gennag.annotate(t) and t).Resources.R), a)
    end
  end)

  it("read-only Describe/List and conditioned statements are justified", function()
    local t = { Resources = { R = role({
      { Effect = "Allow", Action = { "ec2:DescribeVpcs", "ecs:ListTasks" }, Resource = "*" },
      { Effect = "Allow", Action = "kms:Decrypt", Resource = "*",
        Condition = { StringEquals = { ["kms:ViaService"] = "ssm.eu-west-1.amazonaws.com" } } },
    }) } }
    local added = gennag.annotate(t)
    assert.are.same({ "W5" }, suppressed_ids(t.Resources.R))
    assert.matches("read-only", added[1].reason, 1, true)
    assert.matches("kms:ViaService", added[1].reason, 1, true)
  end)

  it("the CloudFormation service role's managed policies, and CodeDeploy's launch-template actions", function()
    local t = { Resources = {
      CfnRole = res("AWS::IAM::Role", { AssumeRolePolicyDocument = { Statement = { { Effect = "Allow",
        Principal = { Service = "cloudformation.amazonaws.com" }, Action = "sts:AssumeRole" } } } }),
      P = res("AWS::IAM::ManagedPolicy", { Roles = { { Ref = "CfnRole" } }, PolicyDocument = { Statement = {
        { Effect = "Allow", Action = { "ec2:CreateVpc" }, Resource = "*" } } } }),
      CD = role({ { Effect = "Allow", Action = { "ec2:RunInstances", "ec2:CreateTags" }, Resource = "*" } },
        "codedeploy.amazonaws.com"),
      NotCD = role({ { Effect = "Allow", Action = { "ec2:RunInstances" }, Resource = "*" } }),
    } }
    gennag.annotate(t)
    assert.are.same({ "W5" }, suppressed_ids(t.Resources.P))
    assert.are.same({ "W5" }, suppressed_ids(t.Resources.CD))
    assert.are.same({}, suppressed_ids(t.Resources.NotCD))
  end)

  it("leaves resources lumu did not generate alone", function()
    local r = role({ { Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" } })
    r.Metadata = nil
    local t = { Resources = { R = r } }
    assert.are.same({}, gennag.annotate(t))
    assert.is_nil(r.Metadata)
  end)

  it("is idempotent", function()
    local t = { Resources = {
      R = role({ { Effect = "Allow", Action = "ecs:DiscoverPollEndpoint", Resource = "*" } }) } }
    assert.are.equal(1, #gennag.annotate(t))
    assert.are.same({}, gennag.annotate(t))
    assert.are.equal(1, #t.Resources.R.Metadata.lumu_nag.rules_to_suppress)
  end)

  local function lb_template(port, https)
    local t = { Resources = {
      Sg = res("AWS::EC2::SecurityGroup", { GroupDescription = "lb", SecurityGroupEgress = {
        { IpProtocol = "-1", CidrIp = "127.0.0.1/32", Description = "none" } } }),
      In = res("AWS::EC2::SecurityGroupIngress", { GroupId = { ["Fn::GetAtt"] = { "Sg", "GroupId" } },
        IpProtocol = "tcp", FromPort = port, ToPort = port, CidrIp = "0.0.0.0/0", Description = "in" }),
      Lb = res("AWS::ElasticLoadBalancingV2::LoadBalancer", {
        SecurityGroups = { { ["Fn::GetAtt"] = { "Sg", "GroupId" } } },
        LoadBalancerAttributes = { { Key = "access_logs.s3.enabled", Value = "true" } } }),
      Http = res("AWS::ElasticLoadBalancingV2::Listener", { LoadBalancerArn = { Ref = "Lb" }, Port = 80,
        Protocol = "HTTP", DefaultActions = { { Type = "fixed-response" } } }),
    } }
    if https then
      t.Resources.Https = res("AWS::ElasticLoadBalancingV2::Listener", { LoadBalancerArn = { Ref = "Lb" }, Port = 443,
        Protocol = "HTTPS", SslPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06",
        DefaultActions = { { Type = "fixed-response" } } })
    end
    return t
  end

  it("W1: 80/443 from anywhere to a load balancer's group; never 22 or 8080", function()
    local t = lb_template(80)
    gennag.annotate(t)
    assert.are.same({ "W1" }, suppressed_ids(t.Resources.In))
    for _, port in ipairs({ 22, 8080 }) do
      local t2 = lb_template(port)
      gennag.annotate(t2)
      assert.are.same({}, suppressed_ids(t2.Resources.In), tostring(port))
    end
  end)

  it("W14: HTTP without HTTPS is justified (no certificate); with an HTTPS listener it is not", function()
    local t = lb_template(80)
    gennag.annotate(t)
    assert.are.same({ "W14" }, suppressed_ids(t.Resources.Http))
    local t2 = lb_template(80, true)
    gennag.annotate(t2)
    assert.are.same({}, suppressed_ids(t2.Resources.Http))
    assert.is_true(#nag.scan(t2, { only = { "W14" } }).violations == 1)
  end)

  it("W34: only subnets routed to an internet gateway", function()
    local function tpl(gateway)
      return { Resources = {
        Igw = res("AWS::EC2::InternetGateway", {}),
        Nat = res("AWS::EC2::NatGateway", {}),
        Rt = res("AWS::EC2::RouteTable", { VpcId = "vpc-1" }),
        Route = res("AWS::EC2::Route", { RouteTableId = { Ref = "Rt" }, DestinationCidrBlock = "0.0.0.0/0",
          [gateway == "Igw" and "GatewayId" or "NatGatewayId"] = { Ref = gateway } }),
        Sn = res("AWS::EC2::Subnet", { VpcId = "vpc-1", CidrBlock = "10.0.0.0/24", MapPublicIpOnLaunch = true }),
        Assoc = res("AWS::EC2::SubnetRouteTableAssociation",
          { SubnetId = { Ref = "Sn" }, RouteTableId = { Ref = "Rt" } }),
      } }
    end
    local pub, priv = tpl("Igw"), tpl("Nat")
    gennag.annotate(pub)
    gennag.annotate(priv)
    assert.are.same({ "W34" }, suppressed_ids(pub.Resources.Sn))
    assert.are.same({}, suppressed_ids(priv.Resources.Sn))
  end)

  it("F34/F35: the known non-secret parameters only, and not when a real secret sits next to them", function()
    local t = { Parameters = { RevisionKey = { Type = "String", Default = "svc/latest.zip" } }, Resources = {} }
    gennag.annotate(t)
    assert.are.same({ "F34", "F35" }, (function()
      local ids = {}
      for _, e in ipairs(t.Metadata.lumu_nag.rules_to_suppress) do ids[#ids + 1] = e.id end
      table.sort(ids)
      return ids
    end)())
    assert.are.equal(0, (nag.counts(nag.scan(t))))
    -- DbPassword (no Default) is F34 only: F34 stays, F35 (RevisionKey's default) is justified
    local t2 = { Parameters = { RevisionKey = { Type = "String", Default = "x" }, DbPassword = { Type = "String" } },
      Resources = {} }
    local added = gennag.annotate(t2)
    assert.are.equal(1, #added)
    assert.are.equal("F35", added[1].rule)
    -- (a template-wide suppression cannot spare RevisionKey alone: both stay)
    local got = {}
    for _, v in ipairs(nag.scan(t2).violations) do got[#got + 1] = v.rule .. " " .. v.resource end
    table.sort(got)
    assert.are.same({ "F34 DbPassword", "F34 RevisionKey" }, got)
  end)

  it("rejects a non-table", function()
    assert.error_matches(function() gennag.annotate("x") end, "template table expected")
  end)
end)

describe("suppressions follow the final content", function()
  local function yml(text)
    local dir = assert(fs.tmpdir("lumu-gennag-"))
    assert(fs.write(dir .. "/mu.yml", text))
    local m, p = config.load(dir .. "/mu.yml")
    fs.rmtree(dir)
    return assert(m, p and p[1] and config.format_error(p[1]))
  end

  it("an override adding a '*' statement to a lumu role brings W5 back", function()
    local m = yml([[
environments:
  - name: acceptance
templates:
  mu-iam-environment-acceptance:
    Resources:
      EC2Role:
        Properties:
          Policies:
            - PolicyName: extra
              PolicyDocument:
                Version: "2012-10-17"
                Statement:
                  - Effect: Allow
                    Action: ["s3:PutObject"]
                    Resource: "*"
]])
    local stacks = synth.plan(m, {})
    local d
    for _, x in ipairs(stacks) do if x.name == "mu-iam-environment-acceptance" then d = x end end
    local r = nag.scan(d.template, { only = { "W5" } })
    assert.is_true(#r.violations >= 1)
    local actions = {}
    for _, v in ipairs(r.violations) do
      assert.are.equal("EC2Role", v.resource)
      local stmt = gennag._at(d.template, (v.path:gsub("%.Resource$", "")))
      actions[#actions + 1] = type(stmt.Action) == "table" and stmt.Action[1] or stmt.Action
    end
    assert.contains(actions, "s3:PutObject")
    assert.are.same({}, suppressed_ids(d.template.Resources.EC2Role))
  end)

  it("suppressions = false leaves the templates bare", function()
    local m = yml("environments:\n  - name: acceptance\n")
    local stacks = synth.plan(m, { suppressions = false })
    for _, d in ipairs(stacks) do
      assert.is_nil(d.body:find("lumu_nag", 1, true), d.name)
    end
  end)
end)

-- ---------------------------------------------------------------------------
-- SSH
-- ---------------------------------------------------------------------------

describe("SSH is never open to the internet by default", function()
  local function plan_of(yaml_text)
    local dir = assert(fs.tmpdir("lumu-ssh-"))
    assert(fs.write(dir .. "/mu.yml", yaml_text))
    local m, p = config.load(dir .. "/mu.yml")
    fs.rmtree(dir)
    assert(m, p and p[1] and config.format_error(p[1]))
    local by = {}
    for _, d in ipairs((synth.plan(m, {}))) do by[d.name] = d end
    return by, m
  end

  it("no keyName, no sshAllow: no SSH rule at all, and the model has no sshAllow", function()
    for _, provider in ipairs({ "ecs", "ec2", "eks" }) do
      local by, m = plan_of("environments:\n  - name: a\n    provider: " .. provider .. "\n")
      assert.is_nil(m.environments[1].cluster.sshAllow)
      local r = by["mu-environment-a"].template.Resources
      assert.is_nil(r.SshIngress, provider)
      assert.is_nil(r.NodeSshIngress, provider)
      assert.are.equal("10.0.0.0/16", by["mu-environment-a"].template.Parameters.SshAllow.Default)
      assert.is_nil(by["mu-environment-a"].parameters.SshAllow)
    end
  end)

  it("keyName only: SSH under HasKeyName from inside the VPC (bastion included)", function()
    local by = plan_of("environments:\n  - name: a\n    cluster:\n      keyName: ops\n")
    local env = by["mu-environment-a"]
    assert.are.equal("HasKeyName", env.template.Resources.SshIngress.Condition)
    assert.are.same({ Ref = "SshAllow" }, env.template.Resources.SshIngress.Properties.CidrIp)
    local vpc = by["mu-vpc-a"]
    assert.are.equal("10.0.0.0/16", vpc.template.Parameters.SshAllow.Default)
    assert.is_nil(vpc.parameters.SshAllow)
    assert.is_table(vpc.template.Resources.BastionSshIngress)
    assert.are.equal(0, (nag.counts(nag.scan(env.template))))
    assert.are.equal(0, (nag.counts(nag.scan(vpc.template))))
  end)

  it("an explicit sshAllow: SSH always, from that range, and passed to the stacks", function()
    local by = plan_of("environments:\n  - name: a\n    cluster:\n      sshAllow: 192.0.2.0/24\n")
    local env = by["mu-environment-a"]
    assert.is_nil(env.template.Resources.SshIngress.Condition)
    assert.are.equal("192.0.2.0/24", env.parameters.SshAllow)
    assert.are.equal("192.0.2.0/24", by["mu-vpc-a"].parameters.SshAllow)
  end)

  it("an explicit 0.0.0.0/0 is honoured, and nag fails it (F1)", function()
    local by = plan_of("environments:\n  - name: a\n    provider: eks\n    cluster:\n      keyName: k\n"
      .. "      sshAllow: 0.0.0.0/0\n")
    -- the value is a stack parameter: synth.nag judges the parameter values
    assert.are.equal(0, #nag.scan(by["mu-environment-a"].template, { only = { "F1" } }).violations)
    local r = assert(synth.nag({ by["mu-environment-a"], by["mu-vpc-a"] }))
    local found = {}
    for _, v in ipairs(r.violations) do
      if v.rule == "F1" then found[#found + 1] = v.file .. " " .. v.resource end
    end
    table.sort(found)
    assert.are.same({ "mu-environment-a.template.json NodeSshIngress", "mu-vpc-a.template.json BastionSshIngress" },
      found)
  end)
end)

-- ---------------------------------------------------------------------------
-- lumu synth runs nag
-- ---------------------------------------------------------------------------

describe("lumu synth runs nag", function()
  local cmd = require "lumu.cli.synth"
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
  local sink = dofile(here .. "/golden.lua").sink
  local function run(yaml_text, extra)
    local dir = assert(fs.tmpdir("lumu-synthnag-"))
    assert(fs.write(dir .. "/mu.yml", yaml_text))
    local out, err = sink(), sink()
    local opts = { config = dir .. "/mu.yml", output = dir .. "/out" }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local rc, msg, code = cmd.run({ stdout = out, stderr = err, git = false }, {}, opts)
    local written = fs.isdir(dir .. "/out")
    fs.rmtree(dir)
    return rc or code, msg, err.text(), written
  end

  local OPEN = "environments:\n  - name: a\n    cluster:\n      sshAllow: 0.0.0.0/0\n"

  it("a nag failure: exit 1, the FAIL lines on stderr, nothing written", function()
    local rc, msg, err, written = run(OPEN)
    assert.are.equal(1, rc)
    assert.matches("nag: 1 failure, nothing written", msg, 1, true) -- no keyName: no bastion
    assert.matches("mu-environment-a.template.json: SshIngress: F1 [FAIL]", err, 1, true)
    assert.is_false(written)
  end)

  it("--no-nag writes anyway", function()
    local rc, _, err, written = run(OPEN, { no_nag = true })
    assert.are.equal(0, rc)
    assert.is_true(written)
    assert.is_nil(err:find("nag", 1, true))
  end)

  it("clean templates: exit 0 and no nag line", function()
    local rc, _, err, written = run("environments:\n  - name: a\n")
    assert.are.equal(0, rc)
    assert.is_true(written)
    assert.are.equal("", err)
  end)

  it("warnings are counted on one stderr line", function()
    local rc, _, err = run("environments:\n  - name: a\n    provider: eks\n")
    assert.are.equal(0, rc)
    assert.matches("^lumu: nag: 1 warning, %d+ suppressed %(lumu nag .-/out shows them%)\n$", err)
  end)
end)
