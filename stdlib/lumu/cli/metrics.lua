--- `lumu metrics [PIPELINE...]`: the four delivery metrics (lead time for
-- changes, deployment frequency, change failure rate, time to restore
-- service) of CodePipeline pipelines over a window.  See lumu.metrics for
-- the definitions.
--
-- PIPELINE: pipeline names; none: every pipeline of the account and region
-- (ListPipelines; a pipeline that cannot be read is reported with its error).
-- stdout (or --file): the report, -o text (default) | json | html.
-- --history FILE: answer the CodePipeline calls from a recording (as written
-- by --record) instead of AWS.  --publish: also put the metrics into
-- CloudWatch (PutMetricData, namespace --namespace).  --stack-template:
-- print the dashboard + publisher stack template (lumu.gen.metrics) as JSON
-- and exit.
-- Exit: 0 ok; 1 AWS failures (a pipeline that could not be read, a failed
-- call or publish: the report is still written); 2 usage errors (bad
-- option, window or file).
-- ctx.stdout / ctx.stderr (file-like) replace io.stdout / io.stderr (tests);
-- ctx.now (epoch seconds) replaces the clock.
local metrics = require "lumu.metrics"
local compute = require "lumu.metrics.compute"
local json = require "lumu.json"

local USAGE = "lumu metrics [--since DUR|TIME] [--until DUR|TIME] [-o text|json|html] [--file FILE] "
  .. "[--stage NAME] [--action NAME] [--weekly] [--region R] [--profile P] [--endpoint-url U] "
  .. "[--history FILE] [--record FILE] [--publish [--namespace NS]] [--stack-template] [PIPELINE...]"

local function definitions()
  local lines = {}
  for _, d in ipairs(compute.DEFINITIONS) do
    local text = d[1] .. ": " .. d[2]
    -- wrap at 78 columns, indented
    local line = " "
    for word in text:gmatch("%S+") do
      if #line + #word + 1 > 78 then
        lines[#lines + 1] = line
        line = "   " .. word
      else
        line = line .. " " .. word
      end
    end
    lines[#lines + 1] = line
  end
  return table.concat(lines, "\n")
end

local M = {
  summary = "delivery metrics (lead time, deployment frequency, change failure rate, time to restore) of pipelines",
  usage = USAGE,
  options = {
    { "--since", arg = "WHEN", files = false, desc = "window start: a duration before --until (30d, 2w) or a time (default 30d)" },
    { "--until", arg = "WHEN", files = false, desc = "window end: a time, or a duration before now (default now)" },
    { "-o", "--output", arg = "FORMAT", choices = { "text", "json", "html" }, files = false,
      desc = "report format: text (default), json or html (self-contained, with charts)" },
    { "-f", "--file", arg = "FILE", desc = "write the report to FILE instead of stdout" },
    { "--stage", arg = "NAME", files = false, desc = "the production stage (default: last stage named *prod*, else the last)" },
    { "--action", arg = "NAME", files = false, desc = "the production deploy action (default: see the definitions)" },
    { "--weekly", desc = "text: also a table per pipeline and week" },
    { "--region", arg = "REGION", files = false, desc = "AWS region (default: AWS_REGION, the profile)" },
    { "--profile", arg = "PROFILE", files = false, desc = "AWS profile" },
    { "--endpoint-url", arg = "URL", files = false, desc = "CodePipeline endpoint URL" },
    { "--history", arg = "FILE", desc = "replay recorded CodePipeline responses (see --record) instead of calling AWS" },
    { "--record", arg = "FILE", desc = "save the CodePipeline responses read to FILE (for --history)" },
    { "--publish", desc = "also publish the metrics to CloudWatch (PutMetricData)" },
    { "--namespace", arg = "NS", files = false, desc = "CloudWatch namespace (default Lumu/Delivery)" },
    { "--stack-template", desc = "print the dashboard + scheduled publisher stack template (JSON) and exit" },
    { "-h", "--help", desc = "this help" },
  },
}

M.help = [[
Reads the execution history of CodePipeline pipelines (GetPipeline,
ListPipelineExecutions, ListActionExecutions, GetPipelineExecution) and
computes, per pipeline and for all of them, over the window [since, until):
deployment frequency, lead time for changes (median, p90), change failure
rate and time to restore service (median, p90), each with its DORA band
(elite, high, medium, low), and per week (weeks start Monday, UTC).

Definitions:
]] .. definitions() .. [[


Examples:
  lumu metrics --since 30d                      every pipeline, last 30 days
  lumu metrics -o html -f metrics.html my-svc   HTML report with charts
  lumu metrics --since 2024-01-01 --until 2024-04-01 -o json
  lumu metrics --stack-template > metrics-stack.json
Exit status: 0 ok, 1 AWS failures (the report is still written), 2 usage errors.]]

local function write_file(path, data)
  local fs = require "lumu.fs"
  return fs.write(path, data)
end

local function stack_template(out, args, opts, window_text)
  local gen = require "lumu.gen.metrics"
  local ok, d = pcall(gen.stack, { pipelines = args, stage = opts.stage, action = opts.action,
    metric_namespace = opts.namespace, window = window_text })
  if not ok then
    return nil, "metrics: --stack-template: " .. tostring(d):gsub("^.-bad argument #1 to 'stack' %((.*)%)$", "%1"), 2
  end
  out:write(json.encode(d.template, { pretty = true }))
  return 0
end

function M.run(ctx, args, opts)
  ctx = ctx or {}
  local out = ctx.stdout or io.stdout
  local errw = ctx.stderr or io.stderr
  local fmt = opts.output or "text"
  if fmt ~= "text" and fmt ~= "json" and fmt ~= "html" then
    return nil, "metrics: unknown output format '" .. tostring(fmt) .. "' (text, json or html)", 2
  end
  if opts.history and opts.record then
    return nil, "metrics: --history and --record exclude each other", 2
  end
  if opts.namespace and not opts.publish and not opts.stack_template then
    return nil, "metrics: --namespace only goes with --publish or --stack-template", 2
  end
  if opts.stack_template then
    local w = opts.since or "30d"
    if not require("lumu.time").parse_duration(w) then
      return nil, "metrics: --stack-template: --since must be a duration (the rolling window), got '" .. w .. "'", 2
    end
    return stack_template(out, args, opts, w)
  end
  local since, untl = metrics.window({ since = opts.since, ["until"] = opts["until"] }, ctx.now)
  if not since then return nil, "metrics: " .. untl, 2 end

  local copts = { region = opts.region, profile = opts.profile, endpoint_url = opts.endpoint_url }
  local recording
  if opts.history then
    local rec, err = metrics.load_recording(opts.history)
    if not rec then return nil, "metrics: --history: " .. tostring(err), 2 end
    copts.http = metrics.replay_transport(rec)
    copts.region = copts.region or rec.region or "us-east-1"
    copts.credentials = { access_key_id = "AKIDREPLAY", secret_access_key = "replay" }
    copts.endpoint_url = nil
  elseif opts.record then
    copts.http, recording = metrics.recording_transport()
  end
  local client, cerr = metrics.client(copts)
  if not client then return nil, "metrics: " .. tostring(cerr), 1 end

  local h, ferr = metrics.fetch(client, { since = since, ["until"] = untl, pipelines = args,
    stage = opts.stage, action = opts.action })
  if recording then
    local ok, werr = write_file(opts.record, json.encode(recording, { pretty = true }))
    if not ok then errw:write("lumu: metrics: --record: ", tostring(werr), "\n") end
  end
  if not h then return nil, "metrics: " .. tostring(ferr), 1 end
  local rep = metrics.compute(h, { since = since, ["until"] = untl, stage = opts.stage, action = opts.action })

  local text
  if fmt == "json" then
    text = metrics.json(rep)
  elseif fmt == "html" then
    text = metrics.html(rep)
  else
    text = metrics.text(rep, { weekly = opts.weekly })
  end
  if opts.file then
    local ok, werr = write_file(opts.file, text)
    if not ok then return nil, "metrics: " .. tostring(werr), 2 end
  else
    out:write(text)
  end

  local status = 0
  for _, r in ipairs(rep.pipelines) do
    if r.error then
      errw:write("lumu: metrics: ", r.name, ": ", r.error, "\n")
      status = 1
    end
  end
  if opts.publish then
    local aws = require "lumu.aws"
    local cw, err = aws.client("cloudwatch", { region = client.region, profile = opts.profile })
    local n
    if cw then n, err = metrics.publish(cw, rep, { namespace = opts.namespace }) end
    if not n then
      errw:write("lumu: metrics: --publish: ", tostring(err), "\n")
      status = 1
    else
      errw:write(string.format("lumu: metrics: published %d values to CloudWatch namespace %s\n", n,
        opts.namespace or metrics.NAMESPACE))
    end
  end
  return status
end

return M
