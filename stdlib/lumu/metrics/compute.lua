--- The four delivery metrics computed from normalised CodePipeline histories
-- (pure: no AWS calls, no clock).  The definitions are documented in
-- lumu.metrics (module header); this file implements them.
--
-- A history (what lumu.metrics.history.fetch returns) is
--   { pipelines = { {
--       name = "svc",
--       stages = { { name = "Source", actions = { { name =, category =,
--                  provider =, run_order = } } }, ... } | nil (unknown),
--       executions = { {
--         id =, status = "Succeeded"|"Failed"|..., start =, updated =,
--         source_revisions = { { action =, revision_id =, summary = } },
--         trigger = "Webhook" | nil,
--         actions = { { stage =, name =, category =, provider =,
--                       status = "Succeeded"|"Failed"|"InProgress"|"Abandoned",
--                       start =, updated =, id = } },
--         revisions = { { name =, revision_id =, created =, summary = } } | nil,
--       } },
--       error = "message" | nil } } }
-- Times are epoch seconds (numbers).
local M = {}

local floor, ceil, huge = math.floor, math.ceil, math.huge

M.DAY = 86400
M.WEEK = 7 * 86400

-- DORA performance bands (lumu's contiguous reading of the State of DevOps
-- reports 2019-2021).  Each list is ordered best first; the first row whose
-- test passes gives the band, else "low".
M.BANDS = {
  -- deployments per day in the window: >= limit
  deployment_frequency = { { "elite", 1 }, { "high", 1 / 7 }, { "medium", 1 / 30 } },
  -- median lead time, seconds: < limit
  lead_time = { { "elite", 86400 }, { "high", 7 * 86400 }, { "medium", 30 * 86400 } },
  -- median time to restore, seconds: < limit
  time_to_restore = { { "elite", 3600 }, { "high", 86400 }, { "medium", 7 * 86400 } },
  -- change failure rate (0..1): <= limit
  change_failure_rate = { { "elite", 0.15 }, { "high", 0.30 }, { "medium", 0.45 } },
}

-- The definitions, as the reports print them (keep in step with the header
-- of lumu.metrics).
M.DEFINITIONS = {
  { "Production deploy",
    "the production stage is the one given with --stage, else the last stage whose name contains "
    .. "\"prod\" (any case), else the last stage; its deploy actions are the one given with --action, else "
    .. "its Deploy-category actions, else its actions named *deploy*, else those that are neither Approval "
    .. "nor Test actions." },
  { "Deployment",
    "an execution whose production deploy actions all succeeded and that did not fail afterwards; "
    .. "its time is when the last deploy action succeeded. An execution that failed at or after production "
    .. "and was then retried to success deploys when the retry succeeded. Executions stopped or superseded "
    .. "after a successful production deploy count (the change is live)." },
  { "Change failure",
    "a failed production deploy action, or an action in the production stage or a later one (approvals "
    .. "excepted) that failed after the production deploy succeeded (one per execution). "
    .. "Rejected approvals, failures before production and abandoned (stopped/superseded) actions are not "
    .. "change failures." },
  { "Deployment frequency", "deployments in the window divided by its length in days (x7 per week)." },
  { "Lead time for changes",
    "from the change to its deployment: the newest artifact revision's created time (the commit time, "
    .. "GetPipelineExecution), else the first source action's start, else the execution's start. Only the "
    .. "first deployment of a revision counts (re-runs of the same commit do not)." },
  { "Change failure rate", "change failures / (change failures + deployments) in the window." },
  { "Time to restore",
    "from the first change failure after a healthy state to the next deployment of the pipeline (even "
    .. "after the window); counted in the window of the failure. Outages not restored yet are open and "
    .. "left out of the median." },
  { "Window",
    "events count when their time is in [since, until) (UTC); weeks start Monday 00:00 UTC. Medians "
    .. "average the two middle values; p90 is the nearest-rank 90th percentile." },
  { "Bands",
    "DORA performance bands (after the State of DevOps reports 2019-2021): deployment frequency elite "
    .. ">= 1/day, high >= 1/week, medium >= 1/month; lead time (median) elite < 1 day, high < 1 week, "
    .. "medium < 1 month; time to restore (median) elite < 1 hour, high < 1 day, medium < 1 week; change "
    .. "failure rate elite <= 15%, high <= 30%, medium <= 45%; low otherwise. For all pipelines together "
    .. "the frequency band uses the mean per pipeline." },
}

--- band(metric, value) -> "elite"|"high"|"medium"|"low" | nil (value nil)
function M.band(metric, value)
  local rows = M.BANDS[metric]
  if not rows then error("band: unknown metric '" .. tostring(metric) .. "'", 2) end
  if value == nil then return nil end
  for _, row in ipairs(rows) do
    local limit = row[2]
    local pass
    if metric == "deployment_frequency" then
      pass = value >= limit
    elseif metric == "change_failure_rate" then
      pass = value <= limit + 1e-12
    else
      pass = value < limit
    end
    if pass then return row[1] end
  end
  return "low"
end

-- ---------------------------------------------------------------------------
-- Statistics
-- ---------------------------------------------------------------------------

--- median(values) -> number | nil: the middle value of the sorted list, the
-- mean of the two middle ones for an even count.
function M.median(values)
  local n = #values
  if n == 0 then return nil end
  local s = table.move(values, 1, n, 1, {})
  table.sort(s)
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

--- percentile(values, p) -> number | nil: nearest rank, the value at rank
-- ceil(p/100 * n) of the sorted list (p90 of 10 values: the 9th).
function M.percentile(values, p)
  local n = #values
  if n == 0 then return nil end
  local s = table.move(values, 1, n, 1, {})
  table.sort(s)
  local rank = ceil(p / 100 * n - 1e-9)
  if rank < 1 then rank = 1 end
  return s[rank]
end

--- summary(values) -> { count, median, p90, mean, min, max } (nil fields
-- when there are no values)
function M.summary(values)
  local n = #values
  local out = { count = n }
  if n == 0 then return out end
  local sum, lo, hi = 0, huge, -huge
  for _, v in ipairs(values) do
    sum = sum + v
    if v < lo then lo = v end
    if v > hi then hi = v end
  end
  out.median = M.median(values)
  out.p90 = M.percentile(values, 90)
  out.mean = sum / n
  out.min, out.max = lo, hi
  return out
end

-- ---------------------------------------------------------------------------
-- Weeks (Monday 00:00 UTC)
-- ---------------------------------------------------------------------------

--- week_start(t) -> epoch seconds of the Monday 00:00 UTC at or before t
function M.week_start(t)
  local days = floor(t / 86400)
  -- 1970-01-01 was a Thursday: (days + 3) % 7 is 0 on Mondays
  return (days - (days + 3) % 7) * 86400
end

-- ---------------------------------------------------------------------------
-- Stages and actions
-- ---------------------------------------------------------------------------

local function lower(s) return tostring(s or ""):lower() end

-- The stages of a pipeline in order: its definition, else inferred from the
-- action executions (stages sorted by the smallest offset of their first
-- action from the start of an execution).
function M.stages_of(p)
  if type(p.stages) == "table" and #p.stages > 0 then return p.stages, "definition" end
  local offset, actions, seen = {}, {}, {}
  for _, e in ipairs(p.executions or {}) do
    local base = e.start or 0
    for _, a in ipairs(e.actions or {}) do
      local s = a.stage
      if s then
        local off = (a.start or base) - base
        if offset[s] == nil or off < offset[s] then offset[s] = off end
        actions[s] = actions[s] or {}
        seen[s] = seen[s] or {}
        if not seen[s][a.name] then
          seen[s][a.name] = true
          table.insert(actions[s], { name = a.name, category = a.category, provider = a.provider })
        end
      end
    end
  end
  local names = {}
  for s in pairs(offset) do names[#names + 1] = s end
  table.sort(names, function(a, b)
    if offset[a] ~= offset[b] then return offset[a] < offset[b] end
    return a < b
  end)
  local out = {}
  for i, s in ipairs(names) do out[i] = { name = s, actions = actions[s] } end
  return out, "inferred"
end

--- production(p, opts) -> { stage =, index =, actions = {name...}, later = {stage=true} } | nil, err
-- opts.stage: the production stage's name; else the last stage whose name
-- contains "prod" (any case), else the last stage.  opts.action: the deploy
-- action's name; else the stage's Deploy-category actions, else its actions
-- whose name contains "deploy", else those that are not Approval or Test
-- actions, else those that are not Approval actions.
function M.production(p, opts)
  opts = opts or {}
  local stages = M.stages_of(p)
  if #stages == 0 then return nil, "no stages known (no executions and no pipeline definition)" end
  local index
  if opts.stage then
    for i, s in ipairs(stages) do
      if s.name == opts.stage then index = i end
    end
    if not index then
      local names = {}
      for i, s in ipairs(stages) do names[i] = s.name end
      return nil, string.format("no stage '%s' (stages: %s)", opts.stage, table.concat(names, ", "))
    end
  else
    for i, s in ipairs(stages) do
      if lower(s.name):find("prod", 1, true) then index = i end
    end
    index = index or #stages
  end
  local stage = stages[index]
  local acts = stage.actions or {}
  local chosen = {}
  if opts.action then
    chosen = { opts.action }
    local found = false
    for _, a in ipairs(acts) do if a.name == opts.action then found = true end end
    if not found and #acts > 0 then
      local names = {}
      for i, a in ipairs(acts) do names[i] = a.name end
      return nil, string.format("no action '%s' in stage '%s' (actions: %s)", opts.action, stage.name,
        table.concat(names, ", "))
    end
  else
    local tests = {
      function(a) return a.category == "Deploy" end,
      function(a) return lower(a.name):find("deploy", 1, true) ~= nil end,
      function(a) return a.category ~= "Approval" and a.category ~= "Test" end,
      function(a) return a.category ~= "Approval" end,
    }
    for _, test in ipairs(tests) do
      for _, a in ipairs(acts) do
        if test(a) then chosen[#chosen + 1] = a.name end
      end
      if #chosen > 0 then break end
    end
    if #chosen == 0 then
      return nil, string.format("stage '%s' has no deploy action (give one with --action)", stage.name)
    end
  end
  local later = {}
  for i = index + 1, #stages do later[stages[i].name] = true end
  return { stage = stage.name, index = index, actions = chosen, later = later }
end

-- ---------------------------------------------------------------------------
-- Events of one execution
-- ---------------------------------------------------------------------------

local function by_start(a, b)
  local sa, sb = a.start or a.updated or 0, b.start or b.updated or 0
  if sa ~= sb then return sa < sb end
  local ua, ub = a.updated or sa, b.updated or sb
  if ua ~= ub then return ua < ub end
  return tostring(a.name) < tostring(b.name)
end

-- When the change of execution e was made: the newest artifact revision
-- created time (not after `deployed`), else the first source action's
-- start, else the execution's start.  -> time, how
function M.change_time(e, deployed)
  local best
  for _, r in ipairs(e.revisions or {}) do
    local c = r.created
    if type(c) == "number" and c <= deployed and (best == nil or c > best) then best = c end
  end
  if best then return best, "revision" end
  local src
  for _, a in ipairs(e.actions or {}) do
    if a.category == "Source" and type(a.start) == "number" and (src == nil or a.start < src) then src = a.start end
  end
  if src then return src, "source" end
  return e.start, "execution"
end

-- The revision key of e (its source revision ids, sorted), or nil.
local function revision_key(e)
  local ids = {}
  for _, r in ipairs(e.source_revisions or {}) do
    if r.revision_id then ids[#ids + 1] = tostring(r.action or "") .. "=" .. tostring(r.revision_id) end
  end
  if #ids == 0 then
    for _, r in ipairs(e.revisions or {}) do
      if r.revision_id then ids[#ids + 1] = tostring(r.name or "") .. "=" .. tostring(r.revision_id) end
    end
  end
  if #ids == 0 then return nil end
  table.sort(ids)
  return table.concat(ids, " ")
end

local function revision_text(e)
  local r = (e.source_revisions or {})[1] or (e.revisions or {})[1]
  if not r then return nil end
  local id = r.revision_id and tostring(r.revision_id) or nil
  if id and #id > 12 and id:match("^%x+$") then id = id:sub(1, 12) end
  return id
end

--- events(e, prod) -> list of events of one execution (see lumu.metrics):
-- { kind = "deployment"|"failure", time =, execution =, reason =,
--   deploy_start = (deployment: start of the production deploy) }
function M.events(e, prod)
  local deploy = {}
  for _, n in ipairs(prod.actions) do deploy[n] = true end
  local acts = {}
  for _, a in ipairs(e.actions or {}) do acts[#acts + 1] = a end
  table.sort(acts, by_start)
  local out = {}
  local firstok, seen, seen_order = {}, {}, {}
  for _, a in ipairs(acts) do
    if a.stage == prod.stage and deploy[a.name] then
      if not seen[a.name] then
        seen[a.name] = true
        seen_order[#seen_order + 1] = a.name
      end
      if a.status == "Failed" then
        out[#out + 1] = { kind = "failure", time = a.updated or a.start, execution = e.id,
          reason = "production deploy action " .. a.name .. " failed" }
      elseif a.status == "Succeeded" and not firstok[a.name] then
        firstok[a.name] = a
      end
    end
  end
  if #seen_order == 0 then return out end
  -- every deploy action that ran has succeeded?
  for _, n in ipairs(seen_order) do if not firstok[n] then return out end end
  -- S: when the last of them succeeded; dstart: when the first one started
  local S, dstart
  for _, n in ipairs(seen_order) do
    local a = firstok[n]
    local t = a.updated or a.start
    if S == nil or t > S then S = t end
    if dstart == nil or (a.start or t) < dstart then dstart = a.start or t end
  end
  -- failures at or after production (not the deploy actions, not approvals)
  local post, last
  for _, a in ipairs(acts) do
    local atprod = (a.stage == prod.stage and not deploy[a.name] or prod.later[a.stage])
      and a.category ~= "Approval"
    if atprod then
      local t = a.updated or a.start
      if a.status == "Failed" and not post and (a.start or t) >= dstart then post = a end
      if (a.stage == prod.stage or prod.later[a.stage]) and (last == nil or t > last) then last = t end
    end
  end
  if post then
    out[#out + 1] = { kind = "failure", time = post.updated or post.start, execution = e.id,
      reason = "action " .. post.stage .. "." .. post.name .. " failed after the production deploy" }
    if e.status == "Succeeded" then
      -- retried successfully: deployed when the last retry succeeded
      local t = S
      if last and last > t then t = last end
      out[#out + 1] = { kind = "deployment", time = t, execution = e.id, deploy_start = dstart,
        reason = "succeeded after a retry" }
    end
  else
    out[#out + 1] = { kind = "deployment", time = S, execution = e.id, deploy_start = dstart }
  end
  table.sort(out, function(a, b)
    if a.time ~= b.time then return a.time < b.time end
    return a.kind == "failure" and b.kind ~= "failure"
  end)
  return out
end

-- ---------------------------------------------------------------------------
-- One pipeline
-- ---------------------------------------------------------------------------

local function in_window(t, w) return t ~= nil and t >= w.since and t < w["until"] end

local function weeks_of(w)
  local weeks = {}
  local ws = M.week_start(w.since)
  while ws < w["until"] do
    weeks[#weeks + 1] = { start = ws, ["end"] = ws + M.WEEK, deployments = 0, failures = 0,
      lead_times = {}, restores = {} }
    ws = ws + M.WEEK
  end
  return weeks
end

local function week_index(weeks, t)
  if #weeks == 0 then return nil end
  local i = floor((M.week_start(t) - weeks[1].start) / M.WEEK) + 1
  if i >= 1 and i <= #weeks then return i end
  return nil
end

local function finish_weeks(weeks)
  for _, wk in ipairs(weeks) do
    local attempts = wk.deployments + wk.failures
    wk.attempts = attempts
    wk.change_failure_rate = attempts > 0 and wk.failures / attempts or nil
    wk.lead_time_median = M.median(wk.lead_times)
    wk.restore_median = M.median(wk.restores)
  end
  return weeks
end

-- Metrics of a list of in-window events and outages.
local function metrics_of(events, outages, w, npipelines)
  local days = (w["until"] - w.since) / 86400
  local deployments, failures, lead = 0, 0, {}
  for _, ev in ipairs(events) do
    if ev.kind == "deployment" then
      deployments = deployments + 1
      if ev.lead_time then lead[#lead + 1] = ev.lead_time end
    else
      failures = failures + 1
    end
  end
  local restores, open = {}, 0
  for _, o in ipairs(outages) do
    if o.open then open = open + 1 else restores[#restores + 1] = o.duration end
  end
  local per_day = days > 0 and deployments / days or 0
  local lt = M.summary(lead)
  lt.band = M.band("lead_time", lt.median)
  local ttr = M.summary(restores)
  ttr.open = open
  ttr.band = M.band("time_to_restore", ttr.median)
  local attempts = deployments + failures
  local rate = attempts > 0 and failures / attempts or nil
  -- several pipelines: the band of the deployments per day of one pipeline
  local band_rate = per_day / math.max(1, npipelines or 1)
  return {
    deployments = { count = deployments, per_day = per_day, per_week = per_day * 7,
      band = M.band("deployment_frequency", band_rate) },
    lead_time = lt,
    change_failure_rate = { failures = failures, attempts = attempts, rate = rate,
      band = M.band("change_failure_rate", rate) },
    time_to_restore = ttr,
  }
end

--- pipeline(p, w [, opts]) -> result (see lumu.metrics: report.pipelines[i])
-- w = { since =, until = }; opts.stage / opts.action as for production().
function M.pipeline(p, w, opts)
  opts = opts or {}
  local r = { name = p.name, warnings = {} }
  if p.error then
    r.error = tostring(p.error)
    return r
  end
  local prod, perr = M.production(p, opts)
  local execs = {}
  for _, e in ipairs(p.executions or {}) do execs[#execs + 1] = e end
  table.sort(execs, function(a, b)
    if (a.start or 0) ~= (b.start or 0) then return (a.start or 0) < (b.start or 0) end
    return tostring(a.id) < tostring(b.id)
  end)
  local executions, statuses = 0, {}
  for _, e in ipairs(execs) do
    if in_window(e.start, w) then
      executions = executions + 1
      local st = e.status or "Unknown"
      statuses[st] = (statuses[st] or 0) + 1
    end
  end
  r.executions = executions
  r.statuses = statuses
  local weeks = weeks_of(w)
  if not prod then
    if #execs > 0 then r.warnings[#r.warnings + 1] = perr end
    r.weeks = finish_weeks(weeks)
    r.events, r.outages = {}, {}
    local m = metrics_of({}, {}, w)
    for k, v in pairs(m) do r[k] = v end
    return r
  end
  r.stage = prod.stage
  r.actions = prod.actions
  -- every event, in time order
  local all = {}
  for _, e in ipairs(execs) do
    for _, ev in ipairs(M.events(e, prod)) do
      ev.exec = e
      all[#all + 1] = ev
    end
  end
  table.sort(all, function(a, b)
    if a.time ~= b.time then return a.time < b.time end
    if a.kind ~= b.kind then return a.kind == "failure" end
    return tostring(a.execution) < tostring(b.execution)
  end)
  -- lead times: first deployment of each revision only
  local deployed = {}
  for _, ev in ipairs(all) do
    ev.revision = revision_text(ev.exec)
    if ev.kind == "deployment" then
      local key = revision_key(ev.exec)
      local ct, how = M.change_time(ev.exec, ev.time)
      if key and deployed[key] then
        ev.redeploy = true
      elseif ct then
        ev.change_time, ev.change_from = ct, how
        ev.lead_time = ev.time - ct
      end
      if key then deployed[key] = true end
    end
  end
  -- outages: from a failure while healthy to the next deployment
  local outages, cur = {}, nil
  for _, ev in ipairs(all) do
    if ev.kind == "failure" then
      if not cur then
        cur = { start = ev.time, execution = ev.execution, failures = 1 }
        outages[#outages + 1] = cur
      else
        cur.failures = cur.failures + 1
      end
    elseif cur then
      cur["end"] = ev.time
      cur.duration = ev.time - cur.start
      cur.restored_by = ev.execution
      cur = nil
    end
  end
  if cur then cur.open = true end
  -- the window
  local events, wouts = {}, {}
  for _, ev in ipairs(all) do
    if in_window(ev.time, w) then
      local out = { kind = ev.kind, time = ev.time, execution = ev.execution, reason = ev.reason,
        lead_time = ev.lead_time, change_time = ev.change_time, change_from = ev.change_from,
        revision = ev.revision, redeploy = ev.redeploy }
      events[#events + 1] = out
      local i = week_index(weeks, ev.time)
      if i then
        local wk = weeks[i]
        if ev.kind == "deployment" then
          wk.deployments = wk.deployments + 1
          if ev.lead_time then wk.lead_times[#wk.lead_times + 1] = ev.lead_time end
        else
          wk.failures = wk.failures + 1
        end
      end
    end
  end
  for _, o in ipairs(outages) do
    if in_window(o.start, w) then
      wouts[#wouts + 1] = o
      local i = week_index(weeks, o.start)
      if i and not o.open then table.insert(weeks[i].restores, o.duration) end
    end
  end
  r.events, r.outages = events, wouts
  r.weeks = finish_weeks(weeks)
  local m = metrics_of(events, wouts, w)
  for k, v in pairs(m) do r[k] = v end
  return r
end

--- report(history, w [, opts]) -> report (see lumu.metrics)
function M.report(history, w, opts)
  assert(type(w) == "table" and type(w.since) == "number" and type(w["until"]) == "number",
    "report: window {since=, until=} expected")
  if w["until"] <= w.since then error("report: the window is empty (until <= since)", 2) end
  local rep = { since = w.since, ["until"] = w["until"], days = (w["until"] - w.since) / 86400, pipelines = {} }
  local events, outages, n = {}, {}, 0
  local weeks = weeks_of(w)
  for _, p in ipairs(history.pipelines or {}) do
    local r = M.pipeline(p, w, opts)
    rep.pipelines[#rep.pipelines + 1] = r
    if not r.error then
      n = n + 1
      for _, ev in ipairs(r.events) do events[#events + 1] = ev end
      for _, o in ipairs(r.outages) do outages[#outages + 1] = o end
      for i, wk in ipairs(r.weeks) do
        local t = weeks[i]
        t.deployments = t.deployments + wk.deployments
        t.failures = t.failures + wk.failures
        for _, v in ipairs(wk.lead_times) do t.lead_times[#t.lead_times + 1] = v end
        for _, v in ipairs(wk.restores) do t.restores[#t.restores + 1] = v end
      end
    end
  end
  local total = metrics_of(events, outages, w, n)
  total.name = "all pipelines"
  total.pipelines = n
  total.weeks = finish_weeks(weeks)
  rep.total = total
  return rep
end

return M
