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

  it("checks the imports an override adds, in JSON and YAML, in stacks that had none", function()
    -- the VPC stack imports nothing; the override gives it an import of an
    -- export its environment stack does not have, and one the service stack lacks
    local yml = "environments: [{name: a}]\nservice: {name: s}\ntemplates:\n  mu-vpc-a:\n    Resources:\n"
      .. "      T: {Type: 'AWS::SNS::Topic', Properties: {TopicName: {'Fn::ImportValue': mu-environment-a-Nope}}}\n"
      .. "      U: {Type: 'AWS::SNS::Topic', Properties: {TopicName: {'Fn::ImportValue': mu-service-s-a-Url}}}\n"
    for _, format in ipairs({ "json", "yaml" }) do
      local stacks, report = synth.plan(model(yml), { format = format })
      local vpc
      for _, d in ipairs(stacks) do
        if d.name == "mu-vpc-a" then vpc = d end
      end
      local msgs = {}
      for _, p in ipairs(vpc.problems) do msgs[#msgs + 1] = p.message end
      table.sort(msgs)
      assert.are.same({ "imports mu-environment-a-Nope, which stack mu-environment-a does not export",
        "imports mu-service-s-a-Url, which stack mu-service-s-a does not export" }, msgs)
      assert.are.equal(2, report.problems)
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
  it("keep quotes, control characters and UTF-8 exactly", function()
    local vals = { "plain", "", "a\1b\31\"\\/\n\t\b\f\r\127é", "x\0y", string.rep("q\"", 100) }
    for i, v in ipairs(vals) do
      local d = { parameters = { ["P" .. i] = v }, tags = { [v ~= "" and v or "k"] = v } }
      assert.are.same({ { ParameterKey = "P" .. i, ParameterValue = v } }, json.decode(synth.parameters_json(d)))
      assert.are.same({ { Key = v ~= "" and v or "k", Value = v } }, json.decode(synth.tags_json(d)))
    end
    -- numbers and booleans are written as strings, as the AWS CLI wants them
    assert.are.same({ { ParameterKey = "N", ParameterValue = "3" }, { ParameterKey = "T", ParameterValue = "true" } },
      json.decode(synth.parameters_json({ parameters = { N = 3, T = true } })))
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

-- ---------------------------------------------------------------------------
-- Integration: databases, tables, pipelines, the catalog, extensions
-- ---------------------------------------------------------------------------

local function by_name(stacks)
  local by, pos = {}, {}
  for i, d in ipairs(stacks) do by[d.name], pos[d.name] = d, i end
  return by, pos
end

describe("synth.plan with databases, tables and pipelines", function()
  local m = model([[
environments: [{name: acceptance, provider: ecs-fargate}, {name: production}]
service:
  name: web
  pathPatterns: [/web/*]
  environment:
    DB_URL: "mysql://${DatabaseEndpointAddress}:${DatabaseEndpointPort}/${DatabaseName}"
    DB_PASSWORD: ${DatabaseMasterPassword}
    ORDERS: ${TableOrdersName}
  schedules: [{name: nightly, expression: rate(1 day)}]
  database: {name: webdb, engine: postgres}
  dynamodb: [{name: orders, partitionKey: id}]
  pipeline: {source: {repo: acme/web}}
]])
  local stacks, report = synth.plan(m)
  local by, pos = by_name(stacks)

  it("plans every kind in dependency order, with no warning and no problem", function()
    assert.are.same({}, report.errors)
    assert.are.same({}, report.warnings)
    assert.are.equal(0, report.problems)
    local kinds = {}
    for _, d in ipairs(stacks) do
      if kinds[#kinds] ~= d.kind then kinds[#kinds + 1] = d.kind end
    end
    -- environment stacks, then the repository, tables, service IAM (database
    -- keys, table grants), databases, services, schedules, pipeline IAM +
    -- pipeline
    assert.are.same({ "iam", "vpc", "loadbalancer", "environment", "iam", "vpc", "loadbalancer", "environment",
      "repo", "dynamodb", "iam", "database", "service", "schedule", "iam", "pipeline" }, kinds)
    for i, d in ipairs(stacks) do
      for _, dep in ipairs(d.depends) do
        if pos[dep] then assert.is_true(pos[dep] < i, d.name .. " after " .. dep) end
      end
    end
  end)

  it("the service imports the database and table outputs and depends on both stacks", function()
    local d = by["mu-service-web-production"]
    assert.contains(d.depends, "mu-database-web-production")
    assert.contains(d.depends, "mu-dynamodb-web-production")
    local env = {}
    for _, e in ipairs(d.template.Resources.MicroserviceTaskDefinition.Properties.ContainerDefinitions[1].Environment) do
      env[e.Name] = e.Value
    end
    local vars = env.DB_URL["Fn::Sub"][2]
    assert.are.same({ "DatabaseEndpointAddress", "DatabaseEndpointPort", "DatabaseName" },
      (function() local k = {}; for n in pairs(vars) do k[#k + 1] = n end; table.sort(k); return k end)())
    assert.are.same({ ["Fn::ImportValue"] = "mu-dynamodb-web-production-TableOrdersName" },
      env.ORDERS["Fn::Sub"][2].TableOrdersName)
    assert.is_nil(env.DB_PASSWORD)
  end)

  it("the task role may use the table; the IAM stack waits for the table stack", function()
    local iam = by["mu-iam-service-web-acceptance"]
    assert.contains(iam.depends, "mu-dynamodb-web-acceptance")
    local text = json.encode(iam.template.Resources.EcsTaskRole)
    assert.matches("dynamodb:PutItem", text, 1, true)
    assert.matches("mu-dynamodb-web-acceptance-TableOrdersArn", text, 1, true)
    -- the database key, which the database stack imports
    assert.are.equal("AWS::KMS::Key", iam.template.Resources.DatabaseKey.Type)
    assert.contains(by["mu-database-web-acceptance"].depends, "mu-iam-service-web-acceptance")
  end)

  it("--env leaves the pipeline out (it spans environments)", function()
    local only = synth.plan(m, { environments = { "production" } })
    local b = by_name(only)
    assert.is_truthy(b["mu-database-web-production"])
    assert.is_nil(b["mu-database-web-acceptance"])
    assert.is_nil(b["mu-pipeline-web"])
    assert.is_truthy(by["mu-pipeline-web"])
  end)
end)

describe("an RDS-managed master password", function()
  it("is read through a policy in the service stack (the IAM stack deploys before the database)", function()
    local stacks, report = synth.plan(model([[
environments: [{name: a}]
service:
  name: s
  environment: {PW: "${DatabaseMasterPassword}"}
  database: {name: d, engine: postgres, manageMasterUserPassword: true}
]]))
    assert.are.same({}, report.errors)
    assert.are.equal(0, report.problems)
    local by = by_name(stacks)
    local svc = by["mu-service-s-a"].template.Resources
    assert.are.equal("AWS::IAM::Policy", svc.DatabaseSecretPolicy.Type)
    assert.contains(svc.EcsService.DependsOn, "DatabaseSecretPolicy")
    local c = svc.MicroserviceTaskDefinition.Properties.ContainerDefinitions[1]
    assert.are.same({ ["Fn::Join"] = { "", { { ["Fn::ImportValue"] = "mu-database-s-a-DatabaseMasterUserSecretArn" },
      ":password::" } } }, c.Secrets[1].ValueFrom)
    -- no import of the database stack in the IAM stack: no cycle
    assert.is_nil(json.encode(by["mu-iam-service-s-a"].template):find("mu-database-s-a", 1, true))
  end)
end)

describe("a pipeline from the catalog", function()
  local m = assert(config.load("tests/fixtures/gen/pipeline/catalog-service.yml"))
  local stacks, report = synth.plan(m)
  local by, pos = by_name(stacks)
  it("is a catalog-provision entry without template, after its product", function()
    assert.are.same({}, report.errors)
    assert.are.equal(0, report.problems)
    local d = by["mu-billing"]
    assert.are.equal("catalog-provision", d.kind)
    assert.is_nil(d.body)
    assert.are.same({ 0, 0 }, { d.size, d.resources })
    assert.matches("no template: provisions standard v1 from Service Catalog", table.concat(d.notes, "; "), 1, true)
    assert.is_true(pos["mu-product-standard"] < pos["mu-billing"])
    assert.are.equal(2, #by["mu-product-standard"].assets)
  end)
end)

describe("subnets when an override moves the VPC", function()
  local function plan_vpc(extra)
    local stacks, report = synth.plan(model("environments: [{name: a}]\n" .. extra))
    return by_name(stacks)["mu-vpc-a"], report
  end
  local function cidr(d, p) return d.parameters[p] or d.template.Parameters[p].Default end

  it("a subnet the override sets outside the new VPC stays an error; the others move", function()
    local d, report = plan_vpc([[
templates:
  mu-vpc-a:
    Parameters:
      VpcCidrBlock: {Default: 10.200.0.0/16}
      InstanceSubnetAZ1CidrBlock: {Default: 10.0.100.0/24}
]])
    assert.are.equal(1, #report.errors)
    assert.are.equal('templates["mu-vpc-a"]', report.errors[1].key)
    assert.matches("set InstanceSubnetAZ1CidrBlock to a block inside 10.200.0.0/16", report.errors[1].message, 1, true)
    assert.are.equal(1, #report.warnings)
    assert.matches("6 subnets left at lumu's defaults outside it moved along", report.warnings[1].message, 1, true)
    assert.are.equal("10.0.100.0/24", cidr(d, "InstanceSubnetAZ1CidrBlock"))
    assert.are.equal("10.200.101.0/24", cidr(d, "InstanceSubnetAZ2CidrBlock"))
    assert.are.equal("10.200.0.0/24", cidr(d, "ElbSubnetAZ1CidrBlock"))
  end)

  it("a smaller block: the first free blocks when the offsets do not fit", function()
    local d, report = plan_vpc([[
parameters:
  mu-vpc-a:
    VpcCidrBlock: 192.168.16.0/20
]])
    assert.are.same({}, report.errors)
    assert.are.equal('parameters["mu-vpc-a"]', report.warnings[1].key)
    local seen = {}
    for _, p in ipairs({ "ElbSubnetAZ1", "ElbSubnetAZ2", "ElbSubnetAZ3", "InstanceSubnetAZ1", "InstanceSubnetAZ2",
      "InstanceSubnetAZ3", "NatSubnetAZ1" }) do
      local c = cidr(d, p .. "CidrBlock")
      assert.is_true(synth._inside(c, "192.168.16.0/20"), p .. " " .. c)
      assert.is_nil(seen[c], c)
      seen[c] = true
    end
    -- same offsets where they fit (ELB 0-2), the next free /24 blocks after
    assert.are.equal("192.168.16.0/24", cidr(d, "ElbSubnetAZ1CidrBlock"))
    assert.are.equal("192.168.19.0/24", cidr(d, "InstanceSubnetAZ1CidrBlock"))
    assert.are.same({}, synth.network_check(d))
  end)

  it("no room at all leaves the subnets, and the error, in place", function()
    local _, report = plan_vpc([[
parameters:
  mu-vpc-a:
    VpcCidrBlock: 10.9.0.0/26
]])
    assert.is_true(#report.errors >= 1)
    assert.are.same({}, report.warnings) -- a /24 cannot move into a /26
  end)

  it("realign_subnets does nothing without a moved VPC", function()
    local stacks = synth.plan(model("environments: [{name: a}]\n"))
    local d = by_name(stacks)["mu-vpc-a"]
    local before = {}
    for k, p in pairs(d.template.Parameters) do before[k] = p.Default end
    assert.are.same({}, synth.realign_subnets(d, before))
    assert.are.same({}, synth.realign_subnets(d, nil))
  end)
end)

describe("extensions in synth.plan", function()
  local yml = "environments: [{name: a}]\nextensions: [{url: one}, {url: 'https://example.com/two.zip'}]\n"

  it("without lumu.extensions: one warning per extension, naming it", function()
    local _, report = synth.plan(model(yml), { generators = { extensions = false } })
    assert.are.same({}, report.errors)
    assert.are.equal(2, #report.warnings)
    assert.are.equal("extensions[1]", report.warnings[1].key)
    assert.matches("extension 'one' is not applied", report.warnings[1].message, 1, true)
    assert.matches("extension 'https://example.com/two.zip' is not applied", report.warnings[2].message, 1, true)
  end)

  it("with it: load gets the config directory and no fetching, apply may change and add stacks", function()
    local got
    local fake = {
      load = function(_, opts)
        got = opts
        return { extensions = {}, warnings = { { severity = "warning", key = "extensions[1]", message = "note" } } }
      end,
      apply = function(descriptors, _, _)
        for _, d in ipairs(descriptors) do
          if d.name == "mu-vpc-a" then d.template.Resources.Extra = { Type = "AWS::SNS::Topic" } end
        end
        descriptors[#descriptors + 1] = { name = "mu-extra", kind = "extra", parameters = {}, tags = {},
          depends = { "mu-vpc-a" }, template = { Resources = { T = { Type = "AWS::SNS::Topic" } } } }
        return descriptors, { { severity = "error", key = "extensions[2]", message = "hook failed" } }
      end,
    }
    local stacks, report = synth.plan(model(yml), { generators = { extensions = fake } })
    assert.are.same({ basedir = ".", fetch = false }, got)
    local by = by_name(stacks)
    assert.are.equal("AWS::SNS::Topic", by["mu-vpc-a"].template.Resources.Extra.Type)
    assert.is_truthy(by["mu-extra"].body)
    assert.are.equal("note", report.warnings[1].message)
    assert.are.equal("hook failed", report.errors[1].message)
  end)

  it("a load failure is an error with the module's diagnostic", function()
    local fake = {
      load = function() return nil, "x", { severity = "error", where = "mu.yml:2:1", key = "extensions[2]",
        message = "not in the cache" } end,
      apply = function() error("not reached") end,
    }
    local _, report = synth.plan(model(yml), { generators = { extensions = fake } })
    assert.are.same({ { severity = "error", where = "mu.yml:2:1", key = "extensions[2]", message = "not in the cache" } },
      report.errors)
  end)
end)

describe("lumu synth's git detection", function()
  local cli = require "lumu.cli.synth"
  local fs = require "lumu.fs"

  it("reads GitHub and CodeCommit remotes", function()
    local cases = {
      { "git@github.com:acme/shop.git", "GitHub", "acme/shop" },
      { "https://github.com/acme/shop", "GitHub", "acme/shop" },
      { "https://token@github.com/acme/shop.git/", "GitHub", "acme/shop" },
      { "https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/shop", "CodeCommit", "shop" },
      { "codecommit::us-east-1://shop", "CodeCommit", "shop" },
      { "ssh://git-codecommit.us-east-1.amazonaws.com/v1/repos/shop", "CodeCommit", "shop" },
    }
    for _, c in ipairs(cases) do
      assert.are.same({ c[2], c[3] }, { cli._parse_remote(c[1]) }, c[1])
    end
    assert.is_nil(cli._parse_remote("https://gitlab.com/acme/shop.git"))
    assert.is_nil(cli._parse_remote("git@github.com:acme/shop/extra.git"))
  end)

  it("finds the checkout above the config, its branch and the relative directory", function()
    local root = assert(fs.tmpdir("lumu-git-"))
    assert(fs.mkdir(root .. "/.git"))
    assert(fs.mkdir(root .. "/svc/api"))
    assert(fs.write(root .. "/.git/HEAD", "ref: refs/heads/feature/x\n"))
    assert(fs.write(root .. "/.git/config", '[remote "upstream"]\n\turl = git@github.com:other/repo.git\n'
      .. '[remote "origin"]\n\turl = https://github.com/acme/shop.git\n[branch "main"]\n\tremote = origin\n'))
    local g = cli.detect_git(root .. "/svc/api")
    assert.are.same({ provider = "GitHub", repo = "acme/shop", branch = "feature/x", basedir = "svc/api" }, g)
    assert.are.equal(".", cli.detect_git(root).basedir)
    -- a worktree: .git is a file pointing at the git directory
    local wt = assert(fs.tmpdir("lumu-wt-"))
    assert(fs.write(wt .. "/.git", "gitdir: " .. root .. "/.git\n"))
    assert.are.equal("acme/shop", cli.detect_git(wt).repo)
    -- detached HEAD: no branch
    assert(fs.write(root .. "/.git/HEAD", "0123456789abcdef0123456789abcdef01234567\n"))
    assert.is_nil(cli.detect_git(root).branch)
    fs.rmtree(root)
    fs.rmtree(wt)
  end)
end)
