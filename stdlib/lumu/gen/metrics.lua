--- The delivery metrics stack: a CloudWatch dashboard of lumu's delivery
-- metrics and a scheduled publisher that computes them and sends them to
-- CloudWatch as custom metrics.  Pure Lua; no AWS calls.
--
-- Publisher: an EventBridge schedule rule starts a CodeBuild project that
-- downloads lumu (the pipeline buildspecs' download, checked against
-- sha256 when given) and runs
--   lumu metrics --since "$LUMU_METRICS_WINDOW" --publish \
--     --namespace "$LUMU_METRICS_NAMESPACE" [--stage S] [--action A] PIPELINE...
-- (every pipeline of the account and region when the Pipelines parameter is
-- empty).  CodeBuild rather than a Lambda function with inline (ZipFile)
-- code: the metrics are computed by the same lumu code as `lumu metrics`
-- (one set of definitions), an inline function is limited to 4 KB, and a
-- daily run costs about a build minute.
-- Metrics (namespace parameter MetricNamespace, default "Lumu/Delivery";
-- dimension Pipeline = <name> or ALL; see lumu.metrics.metric_data):
-- Deployments, DeploymentsPerDay, ChangeFailures, ChangeFailureRate
-- (Percent), LeadTimeMedian, LeadTimeP90, TimeToRestoreMedian (Seconds),
-- OpenOutages; each a rolling value over the Window parameter.
-- Dashboard `<stack name>`: one graph per metric with a SEARCH over every
-- pipeline, and a text widget with the definitions.
--
-- local gen = require "lumu.gen.metrics"
-- gen.stack(opts, ctx) -> descriptor (lumu.gen.common contract)
--   ctx = { namespace = "mu" (mu namespace of the stack name), version = }
--   opts.schedule      EventBridge schedule expression ("rate(1 day)")
--   opts.window        rolling window, a lumu duration ("30d")
--   opts.metric_namespace  CloudWatch namespace ("Lumu/Delivery")
--   opts.pipelines     list of pipeline names ({} = all)
--   opts.stage, opts.action   passed to lumu metrics (--stage, --action)
--   opts.download_url  lumu binary URL (https:// or s3://bucket/key); default
--                      lumu.gen.buildspec.download_url(
--                      lumu.gen.pipeline.DEFAULT_BASEURL, ctx.version or
--                      lumu's version); s3:// adds s3:GetObject on it
--   opts.sha256        hex sha256 of the binary (64 hex digits) or nil
--   opts.image         CodeBuild image ("aws/codebuild/standard:7.0")
--   opts.log_retention days (30)
--   Descriptor: name `<ns>-metrics`, kind "metrics", parameters
--   {MetricNamespace, Schedule, Window, Pipelines}, capabilities
--   {"CAPABILITY_IAM"}, outputs exported as `<stack>-DashboardName`,
--   `<stack>-PublisherProject`.  Misuse (bad option types or values) raises.
-- gen.stacks(model, ctx) -> { descriptor } when model.metrics is a table
--   (the opts above), else {}.
-- gen.buildspec(opts) -> yaml string   the publisher's buildspec
-- gen.dashboard_body(opts) -> string   the DashboardBody (for Fn::Sub:
--   ${AWS::Region}, ${MetricNamespace}, ${Window}, ${Schedule})
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"
local buildspec = require "lumu.gen.buildspec"
local json = require "lumu.json"

local M = {}

M.DEFAULTS = {
  schedule = "rate(1 day)", window = "30d", metric_namespace = "Lumu/Delivery",
  image = "aws/codebuild/standard:7.0", log_retention = 30,
}

local function argerr(fname, msg) error(string.format("bad argument #1 to '%s' (%s)", fname, msg), 3) end

local arr = common.array

local RETENTION = {}
for _, d in ipairs({ 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
  2922, 3288, 3653 }) do RETENTION[d] = true end

local function check(opts, fname)
  if opts ~= nil and type(opts) ~= "table" then argerr(fname, "table expected") end
  opts = opts or {}
  local o = {}
  for k, v in pairs(M.DEFAULTS) do o[k] = v end
  for _, k in ipairs({ "schedule", "window", "metric_namespace", "stage", "action", "download_url", "sha256",
    "image" }) do
    local v = opts[k]
    if v ~= nil then
      if type(v) ~= "string" or v == "" then argerr(fname, k .. ": non-empty string expected") end
      o[k] = v
    end
  end
  if not (o.schedule:match("^rate%(%d+ %a+%)$") or o.schedule:match("^cron%(.+%)$")) then
    argerr(fname, "schedule: rate(...) or cron(...) expected, got '" .. o.schedule .. "'")
  end
  if not require("lumu.time").parse_duration(o.window) then
    argerr(fname, "window: a duration (30d, 2w) expected, got '" .. o.window .. "'")
  end
  if not o.metric_namespace:match("^[%w%.%-_/#:]+$") or o.metric_namespace:sub(1, 4) == "AWS/" then
    argerr(fname, "metric_namespace: letters, digits and . - _ / # : expected (not AWS/...)")
  end
  if o.sha256 and not o.sha256:match("^" .. string.rep("%x", 64) .. "$") then
    argerr(fname, "sha256: 64 hex digits expected")
  end
  if opts.log_retention ~= nil then
    if not RETENTION[opts.log_retention] then argerr(fname, "log_retention: a CloudWatch Logs retention in days expected") end
    o.log_retention = opts.log_retention
  end
  o.pipelines = {}
  if opts.pipelines ~= nil then
    if type(opts.pipelines) ~= "table" then argerr(fname, "pipelines: list of names expected") end
    for i, p in ipairs(opts.pipelines) do
      if type(p) ~= "string" or not p:match("^[A-Za-z0-9%.@%-_]+$") then
        argerr(fname, "pipelines[" .. i .. "]: pipeline name expected")
      end
      o.pipelines[i] = p
    end
  end
  for _, k in ipairs({ "stage", "action" }) do
    if o[k] and not o[k]:match("^[A-Za-z0-9%.@%-_]+$") then argerr(fname, k .. ": a stage/action name expected") end
  end
  return o
end

--- The publisher's buildspec (bash; the variables come from the project).
function M.buildspec(opts)
  local o = check(opts, "buildspec")
  local args = {}
  if o.stage then args[#args + 1] = "--stage " .. o.stage end
  if o.action then args[#args + 1] = "--action " .. o.action end
  local cmd = 'lumu metrics --since "$LUMU_METRICS_WINDOW" --publish --namespace "$LUMU_METRICS_NAMESPACE"'
    .. (#args > 0 and (" " .. table.concat(args, " ")) or "") .. " $LUMU_METRICS_PIPELINES"
  return buildspec.render({
    env = { shell = "bash" },
    phases = {
      install = buildspec.install_commands(),
      build = { "set -euo pipefail\n# word splitting of $LUMU_METRICS_PIPELINES is wanted: pipeline names\n"
        .. cmd .. "\n" },
    },
  })
end

local function metric_widget(x, y, title, metric, stat, label, scale)
  local expr = "SEARCH('{${MetricNamespace},Pipeline} MetricName=\"" .. metric .. "\"', '" .. stat .. "', 86400)"
  if scale then expr = expr .. "/" .. scale end
  return json.ordered({
    type = "metric", x = x, y = y, width = 12, height = 6,
    properties = json.ordered({
      title = title, region = "${AWS::Region}", view = "timeSeries", period = 86400, stat = stat,
      yAxis = { left = { label = label, min = 0 } },
      metrics = arr({ arr({ { expression = expr, id = "e1", label = "" } }) }),
    }, { "title", "region", "view", "period", "stat", "yAxis", "metrics" }),
  }, { "type", "x", "y", "width", "height", "properties" })
end

function M.dashboard_body()
  local text = table.concat({
    "## Delivery metrics (lumu)",
    "Rolling ${Window} window per pipeline (ALL: every pipeline), published on ${Schedule} by `lumu metrics --publish`.",
    "Deployment: the production stage's deploy succeeded; lead time: artifact revision created to that deploy; "
      .. "change failure rate: failed production deploys / all attempts; time to restore: first failure to the next "
      .. "deployment. Definitions: `lumu help metrics`.",
  }, "\n\n")
  local widgets = arr({
    json.ordered({ type = "text", x = 0, y = 0, width = 24, height = 3, properties = { markdown = text } },
      { "type", "x", "y", "width", "height", "properties" }),
    metric_widget(0, 3, "Deployment frequency (deployments per day)", "DeploymentsPerDay", "Maximum", "per day"),
    metric_widget(12, 3, "Lead time for changes, median (hours)", "LeadTimeMedian", "Maximum", "hours", 3600),
    metric_widget(0, 9, "Change failure rate (%)", "ChangeFailureRate", "Maximum", "%"),
    metric_widget(12, 9, "Time to restore service, median (hours)", "TimeToRestoreMedian", "Maximum", "hours", 3600),
  })
  return json.encode({ widgets = widgets })
end

function M.stack(opts, ctx)
  local o = check(opts, "stack")
  if ctx ~= nil and type(ctx) ~= "table" then error("bad argument #2 to 'stack' (table expected)", 2) end
  ctx = ctx or {}
  local ns = ctx.namespace or "mu"
  local version = ctx.version or require("lumu.version").version
  local name = common.stack_name(ns, "metrics")
  local url = o.download_url or buildspec.download_url(require("lumu.gen.pipeline").DEFAULT_BASEURL, version)
  if not (url:match("^https://") or url:match("^s3://[^/]+/.+")) then
    argerr("stack", "download_url: https:// or s3://bucket/key expected")
  end

  local t = cfn.template({ description = "lumu delivery metrics: CloudWatch dashboard and scheduled publisher ("
    .. ns .. ")" })
  t:parameter("MetricNamespace", { Type = "String", Default = o.metric_namespace,
    AllowedPattern = "^[A-Za-z0-9.\\-_/#:]+$", Description = "CloudWatch namespace of the published metrics" })
  t:parameter("Schedule", { Type = "String", Default = o.schedule,
    Description = "When the publisher runs (EventBridge schedule expression)" })
  t:parameter("Window", { Type = "String", Default = o.window, AllowedPattern = "^[0-9]+(\\.[0-9]+)?[smhdw]$",
    Description = "Rolling window of every published value (a lumu duration: 30d, 2w)" })
  t:parameter("Pipelines", { Type = "String", Default = table.concat(o.pipelines, " "),
    Description = "Pipeline names separated by spaces; empty: every pipeline in the account and region" })

  local lg = common.resource(t, "PublisherLogs", "AWS::Logs::LogGroup", "Logs of the metrics publisher builds", {
    LogGroupName = cfn.Sub("/aws/codebuild/${AWS::StackName}-publisher"),
    RetentionInDays = o.log_retention,
  })

  local statements = arr({
    { Sid = "Logs", Effect = "Allow", Action = arr({ "logs:CreateLogStream", "logs:PutLogEvents" }),
      Resource = arr({ lg:getatt("Arn") }) },
    { Sid = "ListPipelines", Effect = "Allow", Action = arr({ "codepipeline:ListPipelines" }), Resource = "*" },
    { Sid = "ReadPipelineHistory", Effect = "Allow",
      Action = arr({ "codepipeline:GetPipeline", "codepipeline:ListPipelineExecutions",
        "codepipeline:GetPipelineExecution", "codepipeline:ListActionExecutions" }),
      Resource = cfn.Sub("arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:*") },
    { Sid = "PublishMetrics", Effect = "Allow", Action = arr({ "cloudwatch:PutMetricData" }), Resource = "*",
      Condition = { StringEquals = { ["cloudwatch:namespace"] = cfn.Ref("MetricNamespace") } } },
  })
  local bucket, key = url:match("^s3://([^/]+)/(.+)$")
  if bucket then
    statements[#statements + 1] = { Sid = "DownloadLumu", Effect = "Allow", Action = arr({ "s3:GetObject" }),
      Resource = cfn.Sub("arn:${AWS::Partition}:s3:::" .. bucket .. "/" .. (key:gsub("%${", "${!"))) }
  end
  local role = common.resource(t, "PublisherRole", "AWS::IAM::Role",
    "Role of the metrics publisher: reads pipeline histories, puts metrics in its namespace", {
      AssumeRolePolicyDocument = { Version = "2012-10-17", Statement = arr({ { Effect = "Allow",
        Principal = { Service = "codebuild.amazonaws.com" }, Action = "sts:AssumeRole" } }) },
      Policies = arr({ { PolicyName = "publish-delivery-metrics",
        PolicyDocument = { Version = "2012-10-17", Statement = statements } } }),
    }, { Metadata = { lumu_nag = { rules_to_suppress = arr({
      { id = "W5", reason = "codepipeline:ListPipelines and cloudwatch:PutMetricData have no resource-level "
        .. "permissions; PutMetricData is limited to the MetricNamespace by a condition" } }) } } })

  local env = arr({
    { Name = "LUMU_DOWNLOAD_URL", Type = "PLAINTEXT", Value = url },
    { Name = "LUMU_SHA256", Type = "PLAINTEXT", Value = o.sha256 or "" },
    { Name = "LUMU_METRICS_NAMESPACE", Type = "PLAINTEXT", Value = cfn.Ref("MetricNamespace") },
    { Name = "LUMU_METRICS_WINDOW", Type = "PLAINTEXT", Value = cfn.Ref("Window") },
    { Name = "LUMU_METRICS_PIPELINES", Type = "PLAINTEXT", Value = cfn.Ref("Pipelines") },
  })
  local project = common.resource(t, "PublisherProject", "AWS::CodeBuild::Project",
    "Computes the delivery metrics with lumu and publishes them to CloudWatch", {
      Name = cfn.Sub("${AWS::StackName}-publisher"),
      Description = "lumu metrics --publish (scheduled)",
      ServiceRole = role:getatt("Arn"),
      Source = { Type = "NO_SOURCE", BuildSpec = M.buildspec(opts) },
      Artifacts = { Type = "NO_ARTIFACTS" },
      Environment = { Type = "LINUX_CONTAINER", ComputeType = "BUILD_GENERAL1_SMALL", Image = o.image,
        EnvironmentVariables = env },
      LogsConfig = { CloudWatchLogs = { Status = "ENABLED", GroupName = lg.ref } },
      TimeoutInMinutes = 20,
    })

  local events_role = common.resource(t, "ScheduleRole", "AWS::IAM::Role",
    "Lets the schedule rule start the publisher build", {
      AssumeRolePolicyDocument = { Version = "2012-10-17", Statement = arr({ { Effect = "Allow",
        Principal = { Service = "events.amazonaws.com" }, Action = "sts:AssumeRole" } }) },
      Policies = arr({ { PolicyName = "start-publisher",
        PolicyDocument = { Version = "2012-10-17", Statement = arr({ { Effect = "Allow",
          Action = arr({ "codebuild:StartBuild" }), Resource = arr({ project:getatt("Arn") }) } }) } } }),
    })
  common.resource(t, "ScheduleRule", "AWS::Events::Rule", "Runs the metrics publisher on the schedule", {
    Description = cfn.Sub("lumu: publish delivery metrics (${AWS::StackName})"),
    ScheduleExpression = cfn.Ref("Schedule"),
    State = "ENABLED",
    Targets = arr({ { Id = "publisher", Arn = project:getatt("Arn"), RoleArn = events_role:getatt("Arn") } }),
  })
  local dash = common.resource(t, "Dashboard", "AWS::CloudWatch::Dashboard", "Delivery metrics dashboard", {
    DashboardName = cfn.Sub("${AWS::StackName}"),
    DashboardBody = cfn.Sub(M.dashboard_body()),
  })
  t:output("DashboardName", dash.ref, { description = "CloudWatch dashboard of the delivery metrics",
    export = common.export_name(name, "DashboardName") })
  t:output("PublisherProject", project.ref, { description = "CodeBuild project publishing the metrics",
    export = common.export_name(name, "PublisherProject") })

  local d = common.stack({
    name = name, kind = "metrics",
    template = t:to_table({ consume = true }),
    parameters = { MetricNamespace = o.metric_namespace, Schedule = o.schedule, Window = o.window,
      Pipelines = table.concat(o.pipelines, " ") },
    tags = common.tags("metrics", {}),
    description = "delivery metrics dashboard and publisher",
  })
  d.capabilities = { "CAPABILITY_IAM" }
  return d
end

function M.stacks(model, ctx)
  if type(model) ~= "table" then error("bad argument #1 to 'stacks' (model table expected)", 2) end
  ctx = ctx or {}
  if type(model.metrics) ~= "table" then return {} end
  local c = { namespace = ctx.namespace or model.namespace, version = ctx.version }
  return { M.stack(model.metrics, c) }
end

return M
