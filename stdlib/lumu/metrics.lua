--- lumu.metrics: the four delivery metrics of "Accelerate" (lead time for
-- changes, deployment frequency, change failure rate, time to restore
-- service) from CodePipeline execution histories, as text, JSON or a
-- self-contained HTML report with SVG charts, and as CloudWatch metrics.
--
-- local metrics = require "lumu.metrics"
--
-- Definitions (also printed in the HTML report's footnote):
-- * Production deploy: the production stage is opts.stage, else the last
--   stage whose name contains "prod" (any case), else the last stage (stage
--   order from GetPipeline; without it, inferred from the action
--   executions).  Its deploy actions: opts.action, else the stage's
--   Deploy-category actions, else its actions whose name contains "deploy",
--   else those that are neither Approval nor Test actions, else those that
--   are not Approval actions.
-- * Deployment: an execution whose production deploy actions (those that
--   ran) all succeeded and that did not fail afterwards; its time is the
--   lastUpdateTime of the last of them.  An execution that failed at or after
--   production and was then retried to success deploys when the retry's last
--   action succeeded.  Executions stopped or superseded after a successful
--   production deploy count (the change is live).
-- * Change failure: a Failed production deploy action execution (each one;
--   its lastUpdateTime), or, after the production deploy succeeded, a Failed
--   action in the production stage or a later one (Approval actions
--   excepted; the first one per execution).  Rejected approvals, failures
--   before production and Abandoned actions (stopped, superseded) are not
--   change failures.  Attempts = deployments + change failures.
-- * Deployment frequency: deployments in the window / window days (per_day),
--   x7 (per_week).
-- * Lead time for changes: deployment time minus the change time: the newest
--   artifact revision `created` time not after the deployment
--   (GetPipelineExecution; the commit time for Git sources), else the first
--   Source action's startTime, else the execution's startTime.  Only the
--   first deployment of a set of source revisions has a lead time (re-runs
--   of a commit count as deployments but not as changes).
-- * Change failure rate: change failures / attempts in the window (nil when
--   there were no attempts).
-- * Time to restore: an outage starts at a change failure while the pipeline
--   is healthy (no outage open) and ends at the pipeline's next deployment,
--   even one after the window; failures during an outage add to it.  Outages
--   are counted in the window of their start; unrestored ones are "open" and
--   not in the median.
-- * Window: [since, until), UTC; an event counts by its time.  Weeks start
--   Monday 00:00 UTC (weeks cut by the window are partial).  Medians average
--   the two middle values; p90 is the nearest-rank percentile (rank
--   ceil(0.9 n)).
-- * Bands (metrics.BANDS, DORA, after the State of DevOps reports 2019-2021):
--   deployments per day elite >= 1, high >= 1/7, medium >= 1/30; median lead
--   time elite < 1 day, high < 1 week, medium < 30 days; median time to
--   restore elite < 1 hour, high < 1 day, medium < 1 week; change failure
--   rate elite <= 15%, high <= 30%, medium <= 45%; else low; nil without
--   data.  All pipelines together: the frequency band of the mean per
--   pipeline.
--
-- API ------------------------------------------------------------------------
-- metrics.window({since=, until=} [, now]) -> since, until | nil, err
--   since/until: a duration ("30d", "12h", "2w") or a time (ISO 8601,
--   RFC 1123, epoch seconds).  until defaults to now (time.now()); a
--   duration `until` means that long before now, a duration `since` that
--   long before until; since defaults to "30d".  err when unparsable or
--   since >= until.
-- metrics.client([{region=, profile=, endpoint_url=, http=, credentials=}])
--   -> codepipeline client | nil, err   (lumu.aws)
-- metrics.fetch(client, opts) -> history | nil, err
--   client: anything with `client:call(op, params) -> result | nil, err`.
--   opts.since, opts.until (epoch seconds, required); opts.pipelines
--   ({names}; nil or empty: every pipeline of ListPipelines, where one that
--   fails is reported with its error instead of failing the whole fetch);
--   opts.stage, opts.action (as above); opts.lookback (seconds, default
--   8 days: executions started that long before since are read, so
--   deployments early in the window are found); opts.concurrency (calls in
--   flight, default 4); opts.max_pages (per listing, default 1000);
--   opts.progress (function(message)).
--   Calls GetPipeline; ListPipelineExecutions (newest first, stops after
--   the page reaching since - lookback); ListActionExecutions per execution
--   updated at or after since and started before until; GetPipelineExecution
--   for the executions that deployed in the window; and, when the window ends in an
--   outage, ListActionExecutions of the later executions (oldest first)
--   until one deploys.  A repeated page token or too many pages is an error.
--   history: see lumu.metrics.compute (module header).
-- metrics.compute(history, {since=, until=, stage=, action=}) -> report
--   report = { since, until, days,
--     pipelines = { { name, stage, actions = {deploy action names},
--       executions (started in the window), statuses = {Succeeded = n, ...},
--       deployments = { count, per_day, per_week, band },
--       lead_time = { count, median, p90, mean, min, max, band } (seconds),
--       change_failure_rate = { failures, attempts, rate (0..1), band },
--       time_to_restore = { count, open, median, p90, mean, min, max, band },
--       weeks = { { start, end, deployments, failures, attempts,
--                   change_failure_rate, lead_time_median, restore_median } },
--       events = { { kind = "deployment"|"failure", time, execution, reason,
--                    lead_time, change_time, change_from = "revision"|
--                    "source"|"execution", revision, redeploy } },
--       outages = { { start, end, duration, open, failures, execution,
--                     restored_by } },
--       warnings = { strings }, error = message (fetch failed; no metrics) } },
--     total = { name = "all pipelines", pipelines = n, deployments,
--       lead_time, change_failure_rate, time_to_restore, weeks } }
--   Raises when until <= since.
-- metrics.to_table(report) -> plain table for JSON: times as ISO 8601
--   strings, durations in seconds, rates 0..1, json.null for missing values.
-- metrics.json(report) -> string (pretty JSON of to_table)
-- metrics.text(report [, {weekly=true}]) -> string (aligned table)
-- metrics.html(report [, {title=}]) -> string: one HTML document, inline CSS
--   and SVG, no scripts and no URLs (links, images, fonts: none).
-- metrics.metric_data(report [, {timestamp=}]) -> list of CloudWatch
--   MetricDatum tables: per pipeline (dimension Pipeline=<name>) and for
--   all pipelines (Pipeline=ALL): Deployments (Count), DeploymentsPerDay
--   (Count), ChangeFailures (Count), ChangeFailureRate (Percent),
--   LeadTimeMedian, LeadTimeP90, TimeToRestoreMedian (Seconds), OpenOutages
--   (Count); missing values are left out.  timestamp default: report.until.
-- metrics.publish(cloudwatch_client, report, {namespace=, timestamp=})
--   -> count | nil, err   PutMetricData in batches of 20.
-- metrics.NAMESPACE = "Lumu/Delivery"
-- metrics.load_recording(path) -> recording | nil, err (a JSON file)
-- metrics.replay_transport(recording) -> transport for aws.client{http=}:
--   answers CodePipeline calls from recording.calls = { { operation =,
--   request = {params}, response = {API response} } }.
-- metrics.recording_transport([inner]) -> transport, recording
-- metrics.BANDS, metrics.DEFINITIONS, metrics.band(metric, value)
local compute = require "lumu.metrics.compute"
local history = require "lumu.metrics.history"
local fmt = require "lumu.metrics.fmt"
local json = require "lumu.json"
local time = require "lumu.time"

local M = {}

M.NAMESPACE = "Lumu/Delivery"
M.BANDS = compute.BANDS
M.DEFINITIONS = compute.DEFINITIONS
M.band = compute.band
M.fetch = history.fetch
M.replay_transport = history.replay_transport
M.recording_transport = history.recording_transport

local function parse_point(s, what)
  if type(s) == "number" then return s, "time" end
  if type(s) ~= "string" or s == "" then return nil, what .. ": duration or time expected" end
  local d = time.parse_duration(s)
  if d then return d, "duration" end
  local t, err = time.parse(s)
  if t then return t, "time" end
  return nil, string.format("%s: '%s' is neither a duration (30d, 12h, 2w) nor a time (%s)", what, s, tostring(err))
end

function M.window(opts, now)
  opts = opts or {}
  now = now or time.now()
  local untl = now
  if opts["until"] ~= nil then
    local v, kind = parse_point(opts["until"], "--until")
    if not v then return nil, kind end
    untl = kind == "duration" and now - v or v
  end
  local v, kind = parse_point(opts.since or "30d", "--since")
  if not v then return nil, kind end
  local since = kind == "duration" and untl - v or v
  if since >= untl then
    return nil, string.format("the window is empty: since %s is not before until %s", fmt.iso(since), fmt.iso(untl))
  end
  return since, untl
end

function M.client(opts)
  opts = opts or {}
  local aws = require "lumu.aws"
  return aws.client("codepipeline", { region = opts.region, profile = opts.profile,
    endpoint_url = opts.endpoint_url, http = opts.http, credentials = opts.credentials, env = opts.env })
end

function M.compute(h, opts)
  if type(h) ~= "table" then error("bad argument #1 to 'compute' (history table expected)", 2) end
  if type(opts) ~= "table" or type(opts.since) ~= "number" or type(opts["until"]) ~= "number" then
    error("bad argument #2 to 'compute' ({since=, until=} expected)", 2)
  end
  if opts["until"] <= opts.since then error("compute: the window is empty (until <= since)", 2) end
  return compute.report(h, { since = opts.since, ["until"] = opts["until"] },
    { stage = opts.stage, action = opts.action })
end

-- ---------------------------------------------------------------------------
-- JSON
-- ---------------------------------------------------------------------------

local null = json.null
local function v(x) if x == nil then return null end return x end
local function round(x, digits)
  if x == nil then return null end
  local m = 10 ^ (digits or 3)
  local r = math.floor(x * m + 0.5) / m
  if r == math.floor(r) and math.abs(r) < 2 ^ 53 then return math.tointeger(r) end
  return r
end
local function iso(t) if t == nil then return null end return fmt.iso(t) end

local function stats(s, extra)
  local t = { count = s.count, median = round(s.median), p90 = round(s.p90), mean = round(s.mean),
    min = round(s.min), max = round(s.max), band = v(s.band) }
  local keys = { "count", "median", "p90", "mean", "min", "max" }
  for k, x in pairs(extra or {}) do t[k] = x; keys[#keys + 1] = k end
  keys[#keys + 1] = "band"
  return json.ordered(t, keys)
end

local function metrics_table(r)
  local d, cfr = r.deployments, r.change_failure_rate
  return {
    deployments = json.ordered({ count = d.count, per_day = round(d.per_day, 4), per_week = round(d.per_week, 4),
      band = v(d.band) }, { "count", "per_day", "per_week", "band" }),
    lead_time = stats(r.lead_time),
    change_failure_rate = json.ordered({ failures = cfr.failures, attempts = cfr.attempts,
      rate = round(cfr.rate, 4), band = v(cfr.band) }, { "failures", "attempts", "rate", "band" }),
    time_to_restore = stats(r.time_to_restore, { open = r.time_to_restore.open or 0 }),
  }
end

local function weeks_table(weeks)
  local out = json.array()
  for _, wk in ipairs(weeks or {}) do
    out[#out + 1] = json.ordered({ start = iso(wk.start), deployments = wk.deployments, failures = wk.failures,
      change_failure_rate = round(wk.change_failure_rate, 4), lead_time_median = round(wk.lead_time_median),
      restore_median = round(wk.restore_median) },
      { "start", "deployments", "failures", "change_failure_rate", "lead_time_median", "restore_median" })
  end
  return out
end

local ORDER = { "name", "error", "stage", "actions", "executions", "statuses", "deployments", "lead_time",
  "change_failure_rate", "time_to_restore", "weeks", "events", "outages", "warnings", "pipelines" }

function M.to_table(rep)
  local pipelines = json.array()
  for _, r in ipairs(rep.pipelines) do
    local t
    if r.error then
      t = { name = r.name, error = r.error }
    else
      t = metrics_table(r)
      t.name, t.stage, t.executions = r.name, v(r.stage), r.executions
      t.actions = json.array(table.move(r.actions or {}, 1, #(r.actions or {}), 1, {}))
      t.statuses = json.object()
      for k, n in pairs(r.statuses or {}) do t.statuses[k] = n end
      t.weeks = weeks_table(r.weeks)
      t.events = json.array()
      for _, ev in ipairs(r.events) do
        t.events[#t.events + 1] = json.ordered({ kind = ev.kind, time = iso(ev.time), execution = v(ev.execution),
          lead_time = round(ev.lead_time), change_time = iso(ev.change_time), change_from = v(ev.change_from),
          revision = v(ev.revision), redeploy = ev.redeploy or false, reason = v(ev.reason) },
          { "kind", "time", "execution", "lead_time", "change_time", "change_from", "revision", "redeploy", "reason" })
      end
      t.outages = json.array()
      for _, o in ipairs(r.outages) do
        t.outages[#t.outages + 1] = json.ordered({ start = iso(o.start), ["end"] = iso(o["end"]),
          duration = round(o.duration), open = o.open or false, failures = o.failures },
          { "start", "end", "duration", "open", "failures" })
      end
      t.warnings = json.array(table.move(r.warnings or {}, 1, #(r.warnings or {}), 1, {}))
    end
    pipelines[#pipelines + 1] = json.ordered(t, ORDER)
  end
  local total = metrics_table(rep.total)
  total.name = rep.total.name
  total.pipelines = rep.total.pipelines
  total.weeks = weeks_table(rep.total.weeks)
  return json.ordered({
    window = json.ordered({ since = iso(rep.since), ["until"] = iso(rep["until"]), days = round(rep.days, 4) },
      { "since", "until", "days" }),
    pipelines = pipelines,
    total = json.ordered(total, ORDER),
  }, { "window", "pipelines", "total" })
end

function M.json(rep)
  return json.encode(M.to_table(rep), { pretty = true })
end

function M.text(rep, opts) return require("lumu.metrics.text").render(rep, opts) end
function M.html(rep, opts) return require("lumu.metrics.html").render(rep, opts) end

-- ---------------------------------------------------------------------------
-- CloudWatch
-- ---------------------------------------------------------------------------

function M.metric_data(rep, opts)
  opts = opts or {}
  local ts = opts.timestamp or rep["until"]
  local out = {}
  local function add(pipeline, name, value, unit)
    if value == nil then return end
    out[#out + 1] = { MetricName = name, Dimensions = { { Name = "Pipeline", Value = pipeline } },
      Timestamp = ts, Value = value + 0.0, Unit = unit }
  end
  local function all(name, r)
    add(name, "Deployments", r.deployments.count, "Count")
    add(name, "DeploymentsPerDay", r.deployments.per_day, "Count")
    add(name, "ChangeFailures", r.change_failure_rate.failures, "Count")
    add(name, "ChangeFailureRate", r.change_failure_rate.rate and r.change_failure_rate.rate * 100, "Percent")
    add(name, "LeadTimeMedian", r.lead_time.median, "Seconds")
    add(name, "LeadTimeP90", r.lead_time.p90, "Seconds")
    add(name, "TimeToRestoreMedian", r.time_to_restore.median, "Seconds")
    add(name, "OpenOutages", r.time_to_restore.open or 0, "Count")
  end
  for _, r in ipairs(rep.pipelines) do
    if not r.error then all(r.name, r) end
  end
  all("ALL", rep.total)
  return out
end

function M.publish(cw, rep, opts)
  opts = opts or {}
  local ns = opts.namespace or M.NAMESPACE
  local data = M.metric_data(rep, opts)
  local sent = 0
  for i = 1, #data, 20 do
    local batch = table.move(data, i, math.min(i + 19, #data), 1, {})
    local ok, err = cw:call("PutMetricData", { Namespace = ns, MetricData = batch })
    if not ok then return nil, err end
    sent = sent + #batch
  end
  return sent
end

function M.load_recording(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  local rec, derr = json.decode(s or "")
  if rec == nil then return nil, path .. ":" .. tostring(derr) end
  if type(rec) ~= "table" or type(rec.calls) ~= "table" then
    return nil, path .. ": not a lumu metrics recording (an object with \"calls\": [...])"
  end
  for i, c in ipairs(rec.calls) do
    if type(c) ~= "table" or type(c.operation) ~= "string" or type(c.response) ~= "table" then
      return nil, string.format("%s: calls[%d]: {\"operation\", \"request\", \"response\"} expected", path, i - 1)
    end
  end
  return rec
end

return M
