-- Specs of lumu.gen.metrics: the dashboard + scheduled publisher stack,
-- checked with cfn.check, the registry schemas ($LUMU_SHARED/cfn, default
-- ../shared from the repository root) and lumu nag; its buildspec runs a
-- lumu metrics command line the CLI accepts, and its dashboard shows the
-- metrics lumu.metrics publishes.
local cfn = require "lumu.cfn"
local json = require "lumu.json"
local gen = require "lumu.gen.metrics"
local metrics = require "lumu.metrics"
local nag = require "lumu.nag"
local cli = require "lumu.cli"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local SHARED = os.getenv("LUMU_SHARED")
if not SHARED or SHARED == "" then SHARED = here .. "/../../../shared" end
do
  local f = io.open(SHARED .. "/cfn/types.tsv", "rb")
  if not f then
    error("metrics_gen_spec: " .. SHARED .. "/cfn/types.tsv not found: ../shared (next to the repository, "
      .. "or $LUMU_SHARED) is missing; CI always has it.", 0)
  end
  f:close()
end
local checker = assert(cfn.schema.open(SHARED .. "/cfn"))
local CTX = { namespace = "acme", version = "1.2.3" }

local function resources_of(t, typ)
  local out = {}
  for id, r in pairs(t.Resources) do if r.Type == typ then out[#out + 1] = id end end
  table.sort(out)
  return out
end

-- The DashboardBody with its ${...} variables replaced, decoded.
local function dashboard(t, vars)
  local body = t.Resources.Dashboard.Properties.DashboardBody["Fn::Sub"]
  assert.are.equal("string", type(body))
  local s = body:gsub("%${([%w:]+)}", function(k)
    local v = vars[k]
    assert(v, "unknown variable " .. k)
    return v
  end)
  return assert(json.decode(s))
end

describe("lumu.gen.metrics", function()
  it("generates a stack that passes cfn.check, the schemas and nag", function()
    for _, opts in ipairs({ {}, { pipelines = { "svc", "web" }, stage = "Prod-EU", action = "Deploy-EU",
      download_url = "s3://artifacts/lumu/lumu-linux-amd64", sha256 = string.rep("ab", 32), log_retention = 90,
      schedule = "cron(0 6 * * ? *)", window = "2w", metric_namespace = "Team/Delivery" } }) do
      local d = gen.stack(opts, CTX)
      assert.are.equal("acme-metrics", d.name)
      assert.are.equal("metrics", d.kind)
      assert.are.same({ "CAPABILITY_IAM" }, d.capabilities)
      assert.are.equal("metrics", d.tags["mu:type"])
      local problems = cfn.check(d.template, { schemas = checker })
      assert.are.equal("", cfn.format(problems))
      -- the template as deployed (JSON text) checks the same
      local again = assert(json.decode(json.encode(d.template)))
      assert.are.equal(0, #cfn.check(again, { schemas = checker }))
      local res = nag.scan(again, { filename = "metrics.json" })
      assert.are.equal(0, #res.violations)
      -- the wildcard resources are suppressed with a reason
      for _, v in ipairs(res.suppressed) do
        assert.are.equal("W5", v.rule)
        assert.matches("no resource%-level permissions", v.suppressed.reason)
      end
    end
  end)

  it("has the resources and parameters it documents", function()
    local d = gen.stack({ pipelines = { "svc", "web" } }, CTX)
    local t = d.template
    assert.are.same({ "PublisherProject" }, resources_of(t, "AWS::CodeBuild::Project"))
    assert.are.same({ "ScheduleRule" }, resources_of(t, "AWS::Events::Rule"))
    assert.are.same({ "Dashboard" }, resources_of(t, "AWS::CloudWatch::Dashboard"))
    assert.are.same({ "PublisherRole", "ScheduleRole" }, resources_of(t, "AWS::IAM::Role"))
    assert.are.same({ "PublisherLogs" }, resources_of(t, "AWS::Logs::LogGroup"))
    assert.are.same({ MetricNamespace = "Lumu/Delivery", Schedule = "rate(1 day)", Window = "30d",
      Pipelines = "svc web" }, d.parameters)
    assert.are.equal("rate(1 day)", t.Parameters.Schedule.Default)
    local rule = t.Resources.ScheduleRule.Properties
    assert.are.same({ Ref = "Schedule" }, rule.ScheduleExpression)
    assert.are.same({ ["Fn::GetAtt"] = { "PublisherProject", "Arn" } }, rule.Targets[1].Arn)
    local project = t.Resources.PublisherProject.Properties
    assert.are.equal("NO_SOURCE", project.Source.Type)
    local env = {}
    for _, v in ipairs(project.Environment.EnvironmentVariables) do env[v.Name] = v.Value end
    assert.are.equal("https://github.com/lumu-dev/lumu/releases/download/v1.2.3/lumu-linux-amd64", env.LUMU_DOWNLOAD_URL)
    assert.are.same({ Ref = "Window" }, env.LUMU_METRICS_WINDOW)
    assert.are.same({ Ref = "Pipelines" }, env.LUMU_METRICS_PIPELINES)
    -- least privilege: PutMetricData only in the namespace; history reads on pipelines
    local stmts = t.Resources.PublisherRole.Properties.Policies[1].PolicyDocument.Statement
    local by = {}
    for _, s in ipairs(stmts) do by[s.Sid] = s end
    assert.are.same({ StringEquals = { ["cloudwatch:namespace"] = { Ref = "MetricNamespace" } } }, by.PublishMetrics.Condition)
    assert.are.same({ "codepipeline:GetPipeline", "codepipeline:ListPipelineExecutions",
      "codepipeline:GetPipelineExecution", "codepipeline:ListActionExecutions" }, by.ReadPipelineHistory.Action)
    assert.is_nil(by.DownloadLumu)
    local ev = t.Resources.ScheduleRole.Properties.Policies[1].PolicyDocument.Statement[1]
    assert.are.same({ "codebuild:StartBuild" }, ev.Action)
    assert.are.equal("acme-metrics-DashboardName", t.Outputs.DashboardName.Export.Name)
    -- an s3:// download may be read, and only that object
    t = gen.stack({ download_url = "s3://bucket/tools/${v}/lumu" }, CTX).template
    stmts = t.Resources.PublisherRole.Properties.Policies[1].PolicyDocument.Statement
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:s3:::bucket/tools/${!v}/lumu" }, stmts[#stmts].Resource)
  end)

  it("runs a lumu metrics command line the CLI accepts", function()
    local spec = gen.buildspec({ stage = "Prod-EU", action = "Deploy-EU" })
    local line = spec:match("\n%s*(lumu metrics [^\n]*)")
    assert.is_truthy(line)
    assert.are.equal('lumu metrics --since "$LUMU_METRICS_WINDOW" --publish --namespace "$LUMU_METRICS_NAMESPACE" '
      .. '--stage Prod-EU --action Deploy-EU $LUMU_METRICS_PIPELINES', line)
    assert.matches("sha256sum %-c", spec)                 -- the download is verified when LUMU_SHA256 is set
    local words = {}
    for w in line:gsub('"', ""):gmatch("%S+") do words[#words + 1] = w end
    local cmd = require "lumu.cli.metrics"
    local opts, pos = cli.parse(cmd.options, words, 3)
    assert.is_truthy(opts, pos)
    assert.is_true(opts.publish)
    assert.are.equal("Prod-EU", opts.stage)
    assert.are.same({ "$LUMU_METRICS_PIPELINES" }, pos)
  end)

  it("shows on the dashboard what the publisher sends", function()
    local t = gen.stack({}, CTX).template
    local body = dashboard(t, { ["AWS::Region"] = "eu-west-1", MetricNamespace = "Lumu/Delivery", Window = "30d",
      Schedule = "rate(1 day)" })
    assert.are.equal(5, #body.widgets)
    assert.are.equal("text", body.widgets[1].type)
    -- a report with one failure and one deployment has every metric
    local all = {}
    for _, m in ipairs(metrics.metric_data(metrics.compute({ pipelines = { { name = "p", executions = {
      { id = "e", status = "Succeeded", start = 0, updated = 10, actions = {
        { stage = "Prod", name = "Deploy", category = "Deploy", status = "Failed", start = 1, updated = 2 },
        { stage = "Prod", name = "Deploy", category = "Deploy", status = "Succeeded", start = 3, updated = 4 } } } } } } },
      { since = 0, ["until"] = 86400 }))) do all[m.MetricName] = true end
    local shown = {}
    for i = 2, 5 do
      local w = body.widgets[i]
      assert.are.equal("metric", w.type)
      assert.are.equal("eu-west-1", w.properties.region)
      local expr = w.properties.metrics[1][1].expression
      local name = expr:match('MetricName="(%w+)"')
      assert.is_truthy(name)
      assert.is_true(all[name], name)
      shown[#shown + 1] = name
      assert.matches("^SEARCH%('{Lumu/Delivery,Pipeline} ", expr)
    end
    assert.are.same({ "DeploymentsPerDay", "LeadTimeMedian", "ChangeFailureRate", "TimeToRestoreMedian" }, shown)
  end)

  it("rejects bad options", function()
    local cases = {
      { { schedule = "every day" }, "schedule: rate%(...%) or cron" },
      { { window = "a month" }, "window: a duration" },
      { { metric_namespace = "AWS/CodePipeline" }, "metric_namespace" },
      { { metric_namespace = "bad space" }, "metric_namespace" },
      { { sha256 = "abc" }, "sha256: 64 hex digits" },
      { { log_retention = 13 }, "log_retention" },
      { { pipelines = "svc" }, "pipelines: list of names" },
      { { pipelines = { "ok", "b a d" } }, "pipelines%[2%]" },
      { { stage = "x y" }, "stage: a stage/action name" },
      { { download_url = "ftp://x/lumu" }, "download_url: https:// or s3://" },
      { { image = 5 }, "image: non%-empty string" },
      { "x", "table expected" },
    }
    for _, c in ipairs(cases) do
      assert.error_matches(function() gen.stack(c[1], CTX) end, c[2])
    end
  end)

  it("stacks(model, ctx): only with a metrics section", function()
    assert.are.same({}, gen.stacks({ namespace = "x" }, {}))
    local list = gen.stacks({ namespace = "team", metrics = { window = "7d" } }, { version = "0.1.0" })
    assert.are.equal(1, #list)
    assert.are.equal("team-metrics", list[1].name)
    assert.are.equal("7d", list[1].parameters.Window)
    assert.has_error(function() gen.stacks(nil) end)
    -- deterministic
    assert.are.equal(json.encode(gen.stack({}, CTX).template), json.encode(gen.stack({}, CTX).template))
  end)
end)
