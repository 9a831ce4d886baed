-- The service-side generators: Fargate sizes, listener priorities, secrets,
-- per-environment values, deployment strategies, HTTPS redirects, the ec2
-- (CodeDeploy) variant, schedules and IAM least privilege.
local config = require "lumu.config"
local services = require "lumu.gen.services"
local cfn = require "lumu.cfn"
local json = require "lumu.json"

local SHARED = os.getenv("LUMU_SHARED") or "../shared"
local checker = assert(cfn.schema.open(SHARED .. "/cfn"))

local function model(yml, opts)
  local m, p = config.load_string(yml, opts)
  if not m then error(config.format_error(p[1])) end
  return m
end

-- name -> descriptor, plus the diagnostics
local function gen(m, ctx)
  ctx = ctx or {}
  ctx.diagnostics = ctx.diagnostics or {}
  local list = services.stacks(m, ctx)
  local by = {}
  for _, d in ipairs(list) do by[d.name] = d end
  return by, ctx.diagnostics, list
end

local function clean(d)
  local problems = cfn.check(d.template, { schemas = checker })
  if #problems > 0 then error(d.name .. ":\n" .. cfn.format(problems)) end
  return d
end

local function diag_with(diags, severity, key_pat)
  for _, d in ipairs(diags) do
    if d.severity == severity and (d.key or ""):match(key_pat) then return d end
  end
  return nil
end

describe("Fargate sizes", function()
  it("rounds up to the smallest valid pair", function()
    local cases = {
      { 10, 300, 256, 512 }, { 256, 512, 256, 512 }, { 256, 513, 256, 1024 }, { 256, 2048, 256, 2048 },
      { 256, 2049, 512, 3072 }, { 257, 100, 512, 1024 }, { 512, 4096, 512, 4096 }, { 512, 4097, 1024, 5120 },
      { 1024, 9000, 2048, 9216 }, { 2048, 16384, 2048, 16384 }, { 4000, 100, 4096, 8192 },
      { 4096, 30720, 4096, 30720 }, { 4096, 30721, 8192, 32768 }, { 8192, 61441, 16384, 65536 },
      { 16384, 122880, 16384, 122880 }, { 0, 0, 256, 512 },
    }
    for _, c in ipairs(cases) do
      local cpu, mem = services.fargate_size(c[1], c[2])
      assert.are.same({ c[3], c[4] }, { cpu, mem }, c[1] .. "/" .. c[2])
    end
  end)

  it("every row is a valid Fargate combination", function()
    for _, row in ipairs(services.FARGATE) do
      for _, m in ipairs(row.memory) do
        assert.is_true(m >= 2 * row.cpu or row.cpu == 256, row.cpu .. "/" .. m)
        assert.is_true(m <= 8 * row.cpu, row.cpu .. "/" .. m)
      end
    end
  end)

  it("fails beyond the largest size", function()
    local cpu, err = services.fargate_size(16385, 512)
    assert.is_nil(cpu)
    assert.matches("no Fargate size", err)
    assert.is_nil((services.fargate_size(256, 122881)))
  end)

  it("task cpu/memory of a Fargate service are the rounded pair", function()
    local by = gen(model([[
environments: [{name: a, provider: ecs-fargate}]
service: {name: web, cpu: 300, memory: 700, pathPatterns: [/api/*]}
]]))
    local d = clean(by["mu-service-web-a"])
    assert.are.equal("512", d.parameters.TaskCpu)
    assert.are.equal("1024", d.parameters.TaskMemory)
    assert.are.equal("awsvpc", d.template.Resources.MicroserviceTaskDefinition.Properties.NetworkMode)
    assert.are.same({ "FARGATE" }, d.template.Resources.MicroserviceTaskDefinition.Properties.RequiresCompatibilities)
  end)
end)

describe("listener rule priorities", function()
  it("uses an explicit priority, host rules after path rules", function()
    local m = model([[
service:
  name: s
  priority: 25
  pathPatterns: [/a, /b, /c, /d]
  hostPatterns: [s.*]
]])
    local p = services.priorities(m)
    assert.are.same({ base = 25, path = { 25, 26 }, host = { 27 } }, p.s)
  end)

  it("derives deterministic, non-overlapping blocks; catch-alls go last", function()
    local svcs = {}
    for i = 1, 60 do svcs[#svcs + 1] = { name = "svc" .. i, pathPatterns = { "/p" .. i } } end
    svcs[#svcs + 1] = { name = "root", pathPatterns = { "/*" } }
    svcs[#svcs + 1] = { name = "fixed", priority = 5000, pathPatterns = { "/f" } }
    local p1 = services.priorities({ services = svcs })
    local used = {}
    for name, r in pairs(p1) do
      for _, x in ipairs(r.path) do
        assert.is_nil(used[x], "priority " .. x .. " used twice")
        used[x] = name
        assert.is_true(x >= 1 and x <= 50000)
      end
    end
    assert.are.equal(5000, p1.fixed.base)
    assert.is_true(p1.root.base >= 45000)
    for i = 1, 60 do assert.is_true(p1["svc" .. i].base < 45000) end
    -- the same for another order of the same services
    local rev = {}
    for i = #svcs, 1, -1 do rev[#rev + 1] = svcs[i] end
    assert.are.same(p1, services.priorities({ services = rev }))
    -- adding a service does not move the others
    local more = { table.unpack(svcs) }
    more[#more + 1] = { name = "newcomer", pathPatterns = { "/n" } }
    local p2 = services.priorities({ services = more })
    for name, r in pairs(p1) do assert.are.same(r, p2[name]) end
  end)

  it("reports explicit priorities that overlap", function()
    local diags = {}
    services.priorities({ services = {
      { name = "a", priority = 10, pathPatterns = { "/a" }, hostPatterns = { "a.*" } },
      { name = "b", priority = 11, pathPatterns = { "/b" } },
    } }, diags)
    assert.are.equal(1, #diags)
    assert.matches("priority 11 of service 'b' is also used by service 'a'", diags[1].message)
  end)
end)

describe("service stacks (ecs)", function()
  local yml = [[
environments:
  - name: acceptance
  - name: production
    loadbalancer: {certificate: "973c1a2f-e1c6-4f65-8d43-0000000000"}
service:
  name: web
  port: 8080
  deploymentStrategy: rolling
  pathPatterns: [/api/*]
  hostPatterns: [web.*]
  environment:
    PLAIN: value
    ADDR: ${DatabaseEndpointAddress}
    PER_ENV: {acceptance: one, production: two}
    PASSWORD: ${DatabaseMasterPassword}
  database: {name: webdb}
  schedules:
  - name: nightly
    expression: cron(0 3 * * ? *)
    command: [./cleanup, --all]
]]
  local by, diags, list = gen(model(yml))

  it("generates repo, IAM, service and schedule stacks in dependency order, all clean", function()
    local names = {}
    for _, d in ipairs(list) do names[#names + 1] = d.name; clean(d) end
    assert.are.same({
      "mu-repo-web",
      "mu-iam-service-web-acceptance", "mu-service-web-acceptance", "mu-schedule-web-nightly-acceptance",
      "mu-iam-service-web-production", "mu-service-web-production", "mu-schedule-web-nightly-production",
    }, names)
    assert.are.same({}, diags) -- the database is generated (lumu.gen.database), no warning
    -- the service waits for its database; the IAM stack holds the database's key
    assert.contains(by["mu-service-web-acceptance"].depends, "mu-database-web-acceptance")
    local r = by["mu-iam-service-web-acceptance"].template.Resources
    assert.are.equal("AWS::KMS::Key", r.DatabaseKey.Type)
    assert.is_true(r.DatabaseKey.Properties.EnableKeyRotation)
    assert.are.equal("Retain", r.DatabaseKey.DeletionPolicy)
    assert.are.equal("alias/mu-service-web-acceptance", r.DatabaseKeyAlias.Properties.AliasName)
    local out = by["mu-iam-service-web-acceptance"].template.Outputs.DatabaseKeyArn
    assert.are.equal("mu-iam-service-web-acceptance-DatabaseKeyArn", out.Export.Name)
  end)

  it("picks per-environment values and sends ${X} values through Fn::Sub", function()
    local env = {}
    local c = by["mu-service-web-acceptance"].template.Resources.MicroserviceTaskDefinition.Properties
      .ContainerDefinitions[1]
    for _, e in ipairs(c.Environment) do env[e.Name] = e.Value end
    assert.are.equal("value", env.PLAIN)
    assert.are.equal("one", env.PER_ENV)
    -- the database stack's export, through the Fn::Sub variable map
    assert.are.same({ ["Fn::Sub"] = { "${DatabaseEndpointAddress}", { DatabaseEndpointAddress = {
      ["Fn::ImportValue"] = "mu-database-web-acceptance-DatabaseEndpointAddress" } } } }, env.ADDR)
    assert.is_nil(by["mu-service-web-acceptance"].template.Parameters.DatabaseEndpointAddress)
    assert.is_nil(env.PASSWORD)
    local c2 = by["mu-service-web-production"].template.Resources.MicroserviceTaskDefinition.Properties
      .ContainerDefinitions[1]
    for _, e in ipairs(c2.Environment) do env[e.Name] = e.Value end
    assert.are.equal("two", env.PER_ENV)
  end)

  it("injects the database password as a secret from SSM, never as plain text", function()
    local d = by["mu-service-web-acceptance"]
    local c = d.template.Resources.MicroserviceTaskDefinition.Properties.ContainerDefinitions[1]
    assert.are.equal(1, #c.Secrets)
    assert.are.equal("PASSWORD", c.Secrets[1].Name)
    assert.matches("parameter/mu%-database%-web%-acceptance%-DatabaseMasterPassword$", c.Secrets[1].ValueFrom["Fn::Sub"])
    assert.is_nil(d.template.Parameters.DatabaseMasterPassword)
    -- the execution role may read exactly that parameter
    local iam = json.encode(by["mu-iam-service-web-acceptance"].template)
    assert.matches("ssm:GetParameters", iam)
    assert.matches("mu%-database%-web%-acceptance%-DatabaseMasterPassword", iam)
    assert.is_nil(iam:find("mu-database-web-production", 1, true))
  end)

  it("maps deploymentStrategy to min/max percent, with a rollback circuit breaker", function()
    local d = by["mu-service-web-acceptance"]
    assert.are.equal("50", d.parameters.MinimumHealthyPercent)
    assert.are.equal("100", d.parameters.MaximumPercent)
    local dc = d.template.Resources.EcsService.Properties.DeploymentConfiguration
    assert.are.same({ Enable = true, Rollback = true }, dc.DeploymentCircuitBreaker)
  end)

  it("forwards on HTTP without a certificate; redirects HTTP to HTTPS with one", function()
    local a = by["mu-service-web-acceptance"].template.Resources
    assert.are.equal("forward", a.ElbHttpPathListenerRule.Properties.Actions[1].Type)
    assert.is_nil(a.ElbHttpsPathListenerRule)
    local p = by["mu-service-web-production"].template.Resources
    assert.are.equal("redirect", p.ElbHttpPathListenerRule.Properties.Actions[1].Type)
    assert.are.equal("HTTP_301", p.ElbHttpPathListenerRule.Properties.Actions[1].RedirectConfig.StatusCode)
    assert.are.equal("forward", p.ElbHttpsPathListenerRule.Properties.Actions[1].Type)
    assert.are.equal("forward", p.ElbHttpsHostListenerRule.Properties.Actions[1].Type)
    -- the service waits for the forwarding rules (the target group needs a listener)
    assert.are.same({ "ElbHttpsPathListenerRule", "ElbHttpsHostListenerRule" }, p.EcsService.DependsOn)
    local prio = by["mu-service-web-production"].parameters
    assert.are.equal(tostring(tonumber(prio.PathListenerRulePriority) + 1), prio.HostListenerRulePriority)
  end)

  it("schedules run the service's task definition with the command override", function()
    local s = by["mu-schedule-web-nightly-acceptance"]
    local target = s.template.Resources.ScheduleEvent.Properties.Targets[1]
    assert.are.same({ containerOverrides = { { name = "web", command = { "./cleanup", "--all" } } } },
      json.decode(target.Input))
    assert.are.equal("mu-service-web-acceptance-MicroserviceTaskDefinitionArn",
      s.parameters.MicroserviceTaskDefinitionArn)
    local iam = by["mu-iam-service-web-acceptance"].template.Resources
    assert.is_truthy(iam.EcsEventsRole)
    local run = iam.EcsEventsRole.Properties.Policies[1].PolicyDocument.Statement[1]
    assert.are.equal("ecs:RunTask", run.Action)
    assert.matches("task%-definition/mu%-service%-web%-acceptance:%*$", run.Resource["Fn::Sub"])
  end)

  it("grants no wildcard actions and no resource '*' except ecr:GetAuthorizationToken and kms via a service", function()
    for _, name in ipairs({ "mu-iam-service-web-acceptance", "mu-iam-service-web-production" }) do
      for id, r in pairs(by[name].template.Resources) do
        for _, pol in ipairs(r.Properties.Policies or {}) do
          for _, st in ipairs(pol.PolicyDocument.Statement) do
            local actions = type(st.Action) == "table" and st.Action or { st.Action }
            for _, a in ipairs(actions) do assert.is_nil(a:find("*", 1, true), id .. ": " .. a) end
            if st.Resource == "*" then
              local ok = st.Action == "ecr:GetAuthorizationToken"
                or (actions[1] == "kms:Decrypt" and st.Condition.StringEquals["kms:ViaService"])
              assert.is_truthy(ok, id .. ": Resource '*' for " .. tostring(actions[1]))
            end
          end
        end
      end
    end
  end)
end)

describe("service configuration problems", function()
  it("${DatabaseMasterPassword} inside a longer value is an error", function()
    local _, diags = gen(model([[
environments: [{name: a}]
service: {name: s, database: {name: d}, environment: {URL: "u:${DatabaseMasterPassword}@h"}}
]]))
    local d = diag_with(diags, "error", "environment%.URL$")
    assert.is_truthy(d)
    assert.matches("must be the whole value", d.message)
  end)

  it("unknown ${X} references are errors naming the usable parameters", function()
    local _, diags = gen(model([[
environments: [{name: a}]
service: {name: s, environment: {X: "${NoSuchThing}"}}
]]))
    local d = diag_with(diags, "error", "environment%.X$")
    assert.is_truthy(d)
    assert.matches("NoSuchThing", d.message)
    assert.matches("ServicePort", d.message)
  end)

  it("disableIAM without role ARNs is an error; with them, no IAM stack", function()
    local by, diags = gen(model([[
disableIAM: true
environments: [{name: a}]
service: {name: s}
]]))
    assert.is_nil(by["mu-iam-service-s-a"])
    assert.is_truthy(diag_with(diags, "error", "roles%.ecsTask$"))
    local by2, diags2 = gen(model([[
disableIAM: true
environments: [{name: a}]
service:
  name: s
  roles: {ecsTask: "arn:aws:iam::123456789012:role/task"}
]]))
    assert.is_nil(diag_with(diags2, "error", "."))
    local p = clean(by2["mu-service-s-a"]).template.Resources.MicroserviceTaskDefinition.Properties
    assert.are.same({ Ref = "EcsTaskRoleArn" }, p.TaskRoleArn)
    assert.are.equal("arn:aws:iam::123456789012:role/task", by2["mu-service-s-a"].parameters.EcsTaskRoleArn)
  end)

  it("eks environments get a warning, no stacks", function()
    local by, diags = gen(model([[
environments: [{name: k, provider: eks}]
service: {name: s}
]]))
    assert.is_nil(by["mu-service-s-k"])
    local d = diag_with(diags, "warning", "^service$")
    assert.matches("EKS services come with a later version", d.message)
  end)

  it("imageRepository: no repo stack, the image as given, no ECR permissions", function()
    local by = gen(model([[
environments: [{name: a}]
service: {name: s, imageRepository: "tutum/hello-world"}
]]))
    assert.is_nil(by["mu-repo-s"])
    assert.are.equal("tutum/hello-world", clean(by["mu-service-s-a"]).parameters.ImageUrl)
    assert.is_nil(json.encode(by["mu-iam-service-s-a"].template):find("ecr:", 1, true))
  end)
end)

describe("secret references", function()
  it("accepts SSM and Secrets Manager names and ARNs", function()
    local r = assert(services.secret_ref("ssm:/app/db/password"))
    assert.are.equal("ssm", r.service)
    assert.matches(":parameter/app/db/password$", r.value_from["Fn::Sub"])
    r = assert(services.secret_ref("arn:aws:ssm:eu-west-1:123456789012:parameter/x"))
    assert.are.equal("arn:aws:ssm:eu-west-1:123456789012:parameter/x", r.value_from)
    r = assert(services.secret_ref("secretsmanager:prod/api:token"))
    assert.matches(":secret:prod/api:token::$", r.value_from["Fn::Sub"])
    assert.matches(":secret:prod/api%-%?%?%?%?%?%?$", r.resource["Fn::Sub"])
    r = assert(services.secret_ref("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"))
    assert.are.equal("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf", r.resource)
  end)

  it("rejects anything else", function()
    for _, bad in ipairs({ "", "plain text", "arn:aws:s3:::bucket", "http://x", "ssm:bad name" }) do
      assert.is_nil((services.secret_ref(bad)), bad)
    end
  end)
end)

describe("ec2 provider (CodeDeploy)", function()
  local by, diags, list = gen(model([[
environments: [{name: dev, provider: ec2, cluster: {keyName: k1}}]
service:
  name: app
  port: 8000
  pathPatterns: [/*]
  environment: {GREETING: "it's ${ServiceName}"}
  schedules: [{name: s, expression: rate(1 hour)}]
]]))

  it("generates bucket, app, IAM and service stacks, all clean", function()
    local names = {}
    for _, d in ipairs(list) do names[#names + 1] = d.name; clean(d) end
    assert.are.same({ "mu-bucket-codedeploy", "mu-app-app", "mu-iam-service-app-dev", "mu-service-app-dev" }, names)
    assert.is_truthy(diag_with(diags, "warning", "schedules$"))
  end)

  it("uses a launch template with IMDSv2, CodeDeploy with rollback, and /etc/environment", function()
    local r = by["mu-service-app-dev"].template.Resources
    local lt = r.LaunchTemplate.Properties.LaunchTemplateData
    assert.are.equal("required", lt.MetadataOptions.HttpTokens)
    local script = lt.UserData["Fn::Base64"]["Fn::Sub"][1]
    assert.matches("printf '%%s=%%s\\n' 'GREETING' 'it'\\''s ${ServiceName}' >> /etc/environment.lumu", script)
    assert.are.equal(true, r.DeploymentGroup.Properties.AutoRollbackConfiguration.Enabled)
    assert.are.equal("WITH_TRAFFIC_CONTROL", r.DeploymentGroup.Properties.DeploymentStyle.DeploymentOption)
    assert.are.equal("CodeDeployDefault.OneAtATime", r.DeploymentGroup.Properties.DeploymentConfigName)
    assert.are.same({ Ref = "LaunchTemplate" }, r.AutoScalingGroup.Properties.LaunchTemplate.LaunchTemplateId)
  end)
end)

describe("lumu's service keys beyond mu's", function()
  local m = model([[
environments: [{name: a, provider: ecs-fargate}, {name: e, provider: ec2}]
service:
  name: s
  secrets:
    API_TOKEN: secretsmanager:prod/api:token
    DB_PASS: {a: ssm:/s/db/password, e: /s/db/password}
    NOT_HERE: {other: ssm:/x}
  logRetentionDays: 14
  repository: {immutableTags: true, scanOnPush: false, maxImages: 7, untaggedDays: 2}
]])
  local by, diags = gen(m)

  it("secrets become valueFrom entries and exactly those are readable", function()
    local d = clean(by["mu-service-s-a"])
    local secrets = d.template.Resources.MicroserviceTaskDefinition.Properties.ContainerDefinitions[1].Secrets
    assert.are.equal(2, #secrets) -- NOT_HERE has no value for environment a
    assert.are.equal("API_TOKEN", secrets[1].Name)
    assert.matches(":secret:prod/api:token::$", secrets[1].ValueFrom["Fn::Sub"])
    assert.are.equal("DB_PASS", secrets[2].Name)
    local iam = clean(by["mu-iam-service-s-a"])
    local text = json.encode(iam.template)
    assert.matches("parameter/s/db/password", text)
    assert.matches("secret:prod/api%-%?%?%?%?%?%?", text)
    assert.matches("kms:ViaService", text)
    for _, e in ipairs(d.template.Resources.MicroserviceTaskDefinition.Properties.ContainerDefinitions[1].Environment
        or {}) do
      assert.is_true(e.Name ~= "DB_PASS" and e.Name ~= "API_TOKEN", e.Name)
    end
  end)

  it("on ec2 the secrets are fetched at boot, not written into the template", function()
    local d = clean(by["mu-service-s-e"])
    local script = d.template.Resources.LaunchTemplate.Properties.LaunchTemplateData.UserData["Fn::Base64"]["Fn::Sub"][1]
    assert.matches("ssm get%-parameter %-%-with%-decryption %-%-name 'arn:", script)
    assert.matches("secretsmanager get%-secret%-value %-%-secret%-id 'prod/api'", script)
    -- the JSON key is extracted on the instance too
    assert.matches("%-%-output text | python3 %-c 'import json,sys; print%(json.load%(sys.stdin%)%['\\''token'\\''%]%)'",
      script)
    assert.are.same({}, diags)
    -- `aws ssm get-parameter` needs the singular action
    assert.matches('"ssm:GetParameter"', json.encode(by["mu-iam-service-s-e"].template))
    assert.matches("s3:GetObject", json.encode(clean(by["mu-iam-service-s-e"]).template))
  end)

  it("log retention: as configured (default 30); the helper rounds up to an allowed value", function()
    assert.are.equal(14, by["mu-service-s-a"].template.Resources.ServiceLogGroup.Properties.RetentionInDays)
    assert.are.equal(1, services.log_retention(0))
    assert.are.equal(3653, services.log_retention(99999))
  end)

  it("repository options reach the ECR repository and its lifecycle policy", function()
    local r = clean(by["mu-repo-s"]).template.Resources.Repo.Properties
    assert.are.equal("IMMUTABLE", r.ImageTagMutability)
    assert.are.equal(false, r.ImageScanningConfiguration.ScanOnPush)
    local policy = json.decode(r.LifecyclePolicy.LifecyclePolicyText)
    assert.are.equal(2, policy.rules[1].selection.countNumber)
    assert.are.equal(7, policy.rules[2].selection.countNumber)
    assert.are.equal("any", policy.rules[2].selection.tagStatus) -- "any" must have the highest priority
    assert.are.equal(2, policy.rules[2].rulePriority)
  end)

  it("the defaults: 30 days, scan on push, mutable tags, 100 images, untagged for 14 days", function()
    local by2 = gen(model("environments: [{name: a}]\nservice: {name: t}\n"))
    assert.are.equal(30, by2["mu-service-t-a"].template.Resources.ServiceLogGroup.Properties.RetentionInDays)
    local r = by2["mu-repo-t"].template.Resources.Repo.Properties
    assert.are.equal("MUTABLE", r.ImageTagMutability)
    assert.are.equal(true, r.ImageScanningConfiguration.ScanOnPush)
    local policy = json.decode(r.LifecyclePolicy.LifecyclePolicyText)
    assert.are.same({ 14, 100 }, { policy.rules[1].selection.countNumber, policy.rules[2].selection.countNumber })
  end)

  it("a bad secret reference is a configuration error naming the key", function()
    local m2, p = config.load_string("environments: [{name: a}]\nservice: {name: t, secrets: {X: plain text}}\n")
    assert.is_nil(m2)
    assert.are.equal("mu.yml:2:30: service.secrets.X: must not contain spaces: 'plain text'", config.format_error(p[1]))
  end)

  it("a variable set both as a secret and in environment is an error", function()
    local _, d2 = gen(model("environments: [{name: a}]\nservice: {name: t, environment: {X: x}, secrets: {X: ssm:/x}}\n"))
    local d = diag_with(d2, "error", "secrets%.X$")
    assert.is_truthy(d)
    assert.matches("also set in environment", d.message)
  end)
end)
