--- The HTML renderer of lumu.metrics: one self-contained page (inline CSS,
-- inline SVG charts drawn by lumu.metrics.svg; no scripts, no external
-- files, no URLs) with a summary table, then for all pipelines and each
-- pipeline: the four metrics with their bands and charts per week and per
-- deployment, and the definitions as a footnote.
local compute = require "lumu.metrics.compute"
local fmt = require "lumu.metrics.fmt"
local svg = require "lumu.metrics.svg"

local M = {}

local esc = svg.escape

local CSS = [[
/* chart colours differ from the band badges' (tests find the charts by them) */
:root { --ok: #388e3c; --fail: #d32f2f; --rate: #f57c00; --lead: #1976d2; --restore: #7b1fa2; --ink: #1f2328;
  --muted: #57606a; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0;
  background: #f6f8fa; }
header, main, footer { max-width: 1180px; margin: 0 auto; padding: 16px 24px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 0 0 4px; }
.window, .meta { color: var(--muted); margin: 0 0 8px; }
section.pipeline { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 16px; margin: 16px 0; }
table.summary { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #d0d7de; }
table.summary th, table.summary td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #eaeef2;
  font-size: 14px; }
table.summary th { background: #f0f3f6; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { flex: 1 1 200px; border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 12px; }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 22px; font-weight: 600; margin: 4px 0; }
.card .detail { color: var(--muted); font-size: 12px; }
.band { display: inline-block; border-radius: 10px; padding: 1px 8px; font-size: 12px; font-weight: 600;
  color: #fff; vertical-align: middle; }
.band-elite { background: #1b5e20; } .band-high { background: #2e7d32; }
.band-medium { background: #ef6c00; } .band-low { background: #c62828; } .band-none { background: #8c959f; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { background: #fff; border: 1px solid #eaeef2; border-radius: 6px; max-width: 100%; height: auto; }
svg.chart .bg { fill: #fff; }
svg.chart .chart-title { font-size: 13px; font-weight: 600; fill: var(--ink); }
svg.chart .tick, svg.chart .unit, svg.chart .legend-label, svg.chart .hline-label { font-size: 11px; fill: var(--muted); }
svg.chart .grid { stroke: #eaeef2; stroke-width: 1; }
svg.chart .axis, svg.chart .xtick { stroke: #8c959f; stroke-width: 1; }
svg.chart .ok { fill: var(--ok); } svg.chart .fail { fill: var(--fail); }
svg.chart .rate { fill: var(--rate); } svg.chart .lead { fill: var(--lead); } svg.chart .restore { fill: var(--restore); }
svg.chart .point { stroke: #fff; stroke-width: 1; }
svg.chart .hline { stroke: #57606a; stroke-width: 1.5; stroke-dasharray: 5 3; }
svg.chart .empty { font-size: 13px; fill: #8c959f; }
.error { color: #c62828; font-weight: 600; }
.warning { color: #9a6700; }
footer { font-size: 13px; color: var(--muted); }
footer dt { font-weight: 600; color: var(--ink); margin-top: 6px; }
footer dd { margin: 2px 0 0 16px; }
]]

local function band_html(b)
  if not b then return '<span class="band band-none">n/a</span>' end
  return string.format('<span class="band band-%s">%s</span>', esc(b), esc(b))
end

local function slug(s, used)
  local base = tostring(s):gsub("[^%w_-]", "-")
  if base == "" then base = "p" end
  local id, k = base, 1
  while used[id] do
    k = k + 1
    id = base .. "-" .. k
  end
  used[id] = true
  return id
end

local function card(label, value, band, detail)
  return string.format('<div class="card"><div class="label">%s</div><div class="value">%s %s</div>'
    .. '<div class="detail">%s</div></div>', esc(label), esc(value), band_html(band), esc(detail or ""))
end

local function cards(r)
  local d, lt, cfr, ttr = r.deployments, r.lead_time, r.change_failure_rate, r.time_to_restore
  local open = (ttr.open or 0) > 0 and string.format("; %d open", ttr.open) or ""
  return table.concat({
    '<div class="cards">',
    card("Deployment frequency", fmt.frequency(d.per_day), d.band,
      string.format("%d deployment%s in the window", d.count, d.count == 1 and "" or "s")),
    card("Lead time for changes (median)", fmt.duration(lt.median), lt.band,
      string.format("p90 %s; %d change%s", fmt.duration(lt.p90), lt.count, lt.count == 1 and "" or "s")),
    card("Change failure rate", fmt.percent(cfr.rate), cfr.band,
      string.format("%d failed of %d production deploy%s", cfr.failures, cfr.attempts, cfr.attempts == 1 and "" or "s")),
    card("Time to restore service (median)", fmt.duration(ttr.median), ttr.band,
      string.format("p90 %s; %d restored%s", fmt.duration(ttr.p90), ttr.count, open)),
    '</div>',
  }, "\n")
end

local function week_labels(weeks)
  local labels = {}
  for i, wk in ipairs(weeks) do labels[i] = fmt.date(wk.start):sub(6) end
  return labels
end

local function week_ticks(rep)
  local ticks = {}
  local ws = compute.week_start(rep.since)
  if ws < rep.since then ws = ws + compute.WEEK end
  local step = compute.WEEK
  local count = (rep["until"] - ws) / step
  if count > 10 then step = step * math.ceil(count / 10) end
  while ws <= rep["until"] do
    ticks[#ticks + 1] = { x = ws, label = fmt.date(ws):sub(6) }
    ws = ws + step
  end
  return ticks
end

local function charts(rep, r, id)
  local out = { '<div class="charts">' }
  local weeks = r.weeks
  local labels = week_labels(weeks)
  local dep, fail, rate, ltm = {}, {}, {}, {}
  local maxlt = 0
  for i, wk in ipairs(weeks) do
    dep[i], fail[i] = wk.deployments, wk.failures
    rate[i] = wk.change_failure_rate and wk.change_failure_rate * 100 or 0
    ltm[i] = wk.lead_time_median or 0
    if ltm[i] > maxlt then maxlt = ltm[i] end
  end
  out[#out + 1] = svg.bars({ id = id .. "-deploys", title = "Production deploys per week (week of Monday)",
    labels = labels, integer = true, y_unit = "deploys",
    series = { { name = "deployments", class = "ok", values = dep }, { name = "failures", class = "fail", values = fail } },
    tip = function(s, i, v)
      return string.format("week of %s: %d %s", fmt.date(weeks[i].start), v, v == 1 and s.name:sub(1, -2) or s.name)
    end })
  out[#out + 1] = svg.bars({ id = id .. "-cfr", title = "Change failure rate per week", labels = labels,
    y_max = 100, y_unit = "%", y_format = function(v) return string.format("%d%%", math.floor(v)) end,
    series = { { name = "change failure rate", class = "rate", values = rate } },
    empty = "no failed production deploys",
    tip = function(_, i, v)
      return string.format("week of %s: %s (%d of %d)", fmt.date(weeks[i].start), fmt.percent(v / 100),
        weeks[i].failures, weeks[i].attempts)
    end })
  if r.events then
    -- one point per deployment (a pipeline)
    local points, maxv = {}, 0
    for _, ev in ipairs(r.events) do
      if ev.kind == "deployment" and ev.lead_time then
        points[#points + 1] = { x = ev.time, y = ev.lead_time, class = "lead",
          tip = string.format("%s: deployed %s after the change%s", fmt.when(ev.time), fmt.duration(ev.lead_time),
            ev.revision and (" (" .. ev.revision .. ")") or "") }
        if ev.lead_time > maxv then maxv = ev.lead_time end
      end
    end
    local hl = {}
    if r.lead_time.median then
      hl[1] = { y = r.lead_time.median, class = "median", label = "median " .. fmt.duration(r.lead_time.median) }
    end
    out[#out + 1] = svg.scatter({ id = id .. "-lead", title = "Lead time for changes, per deployment",
      x_min = rep.since, x_max = rep["until"], x_ticks = week_ticks(rep), points = points, hlines = hl,
      y_unit = svg.duration_unit(maxv), empty = "no deployments" })
    local rpoints, rmax = {}, 0
    for _, o in ipairs(r.outages) do
      if not o.open then
        rpoints[#rpoints + 1] = { x = o.start, y = o.duration, class = "restore",
          tip = string.format("failed %s, restored after %s", fmt.when(o.start), fmt.duration(o.duration)) }
        if o.duration > rmax then rmax = o.duration end
      end
    end
    local rl = {}
    if r.time_to_restore.median then
      rl[1] = { y = r.time_to_restore.median, class = "median",
        label = "median " .. fmt.duration(r.time_to_restore.median) }
    end
    out[#out + 1] = svg.scatter({ id = id .. "-restore", title = "Time to restore service, per failure",
      x_min = rep.since, x_max = rep["until"], x_ticks = week_ticks(rep), points = rpoints, hlines = rl,
      y_unit = svg.duration_unit(rmax), empty = "no restored failures" })
  else
    -- all pipelines: medians per week
    out[#out + 1] = svg.bars({ id = id .. "-lead", title = "Lead time for changes, median per week",
      labels = labels, y_unit = svg.duration_unit(maxlt).name,
      series = { { name = "median lead time", class = "lead", values = (function()
        local u, v = svg.duration_unit(maxlt), {}
        for i, x in ipairs(ltm) do v[i] = x / u.div end
        return v
      end)() } },
      empty = "no deployments",
      tip = function(_, i) return string.format("week of %s: median %s", fmt.date(weeks[i].start), fmt.duration(ltm[i])) end })
    local rm, maxr = {}, 0
    for i, wk in ipairs(weeks) do
      rm[i] = wk.restore_median or 0
      if rm[i] > maxr then maxr = rm[i] end
    end
    local ru = svg.duration_unit(maxr)
    local rv = {}
    for i, x in ipairs(rm) do rv[i] = x / ru.div end
    out[#out + 1] = svg.bars({ id = id .. "-restore", title = "Time to restore service, median per week",
      labels = labels, y_unit = ru.name,
      series = { { name = "median time to restore", class = "restore", values = rv } },
      empty = "no restored failures",
      tip = function(_, i) return string.format("week of %s: median %s", fmt.date(weeks[i].start), fmt.duration(rm[i])) end })
  end
  out[#out + 1] = '</div>'
  return table.concat(out, "\n")
end

local function summary_table(rep)
  local rows = { '<table class="summary"><thead><tr><th>Pipeline</th><th>Production stage</th><th>Deployments</th>'
    .. '<th>Frequency</th><th>Lead time (median / p90)</th><th>Change failure rate</th>'
    .. '<th>Time to restore (median / p90)</th></tr></thead><tbody>' }
  local list = {}
  for _, r in ipairs(rep.pipelines) do list[#list + 1] = r end
  if #rep.pipelines > 1 then list[#list + 1] = rep.total end
  for _, r in ipairs(list) do
    if r.error then
      rows[#rows + 1] = string.format('<tr><td>%s</td><td colspan="6" class="error">%s</td></tr>', esc(r.name),
        esc(r.error))
    else
      local d, lt, cfr, ttr = r.deployments, r.lead_time, r.change_failure_rate, r.time_to_restore
      rows[#rows + 1] = string.format('<tr><td>%s</td><td>%s</td><td>%d</td><td>%s %s</td><td>%s / %s %s</td>'
        .. '<td>%s (%d/%d) %s</td><td>%s / %s %s</td></tr>', esc(r.name), esc(r.stage or ""), d.count,
        esc(fmt.frequency(d.per_day)), band_html(d.band), esc(fmt.duration(lt.median)), esc(fmt.duration(lt.p90)),
        band_html(lt.band), esc(fmt.percent(cfr.rate)), cfr.failures, cfr.attempts, band_html(cfr.band),
        esc(fmt.duration(ttr.median)), esc(fmt.duration(ttr.p90)), band_html(ttr.band))
    end
  end
  rows[#rows + 1] = '</tbody></table>'
  return table.concat(rows, "\n")
end

--- render(report [, opts]) -> string (a complete HTML document)
-- opts.title: the page title (default "Delivery metrics").
function M.render(rep, opts)
  opts = opts or {}
  local title = opts.title or "Delivery metrics"
  local out = {
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="generator" content="lumu metrics">',
    '<title>' .. esc(title) .. '</title>',
    '<style>' .. CSS .. '</style>',
    '</head>',
    '<body>',
    '<header><h1>' .. esc(title) .. '</h1><p class="window">' .. esc(fmt.window(rep)) .. '</p></header>',
    '<main>',
  }
  out[#out + 1] = summary_table(rep)
  local used = {}
  local sections = {}
  if #rep.pipelines > 1 then
    sections[#sections + 1] = { r = rep.total, all = true }
  end
  for _, r in ipairs(rep.pipelines) do sections[#sections + 1] = { r = r } end
  for _, s in ipairs(sections) do
    local r = s.r
    local id = slug(s.all and "all-pipelines" or ("pipeline-" .. r.name), used)
    out[#out + 1] = string.format('<section class="pipeline" id="%s">', esc(id))
    if s.all then
      out[#out + 1] = string.format('<h2>All pipelines (%d)</h2>', r.pipelines)
    else
      out[#out + 1] = '<h2>' .. esc(r.name) .. '</h2>'
    end
    if r.error then
      out[#out + 1] = '<p class="error">' .. esc(r.error) .. '</p>'
    else
      if not s.all then
        out[#out + 1] = string.format('<p class="meta">production stage %s, deploy action%s %s; %d execution%s '
          .. 'started in the window</p>', esc(r.stage or "?"), #(r.actions or {}) == 1 and "" or "s",
          esc(table.concat(r.actions or {}, ", ")), r.executions or 0, r.executions == 1 and "" or "s")
      end
      for _, w in ipairs(r.warnings or {}) do out[#out + 1] = '<p class="warning">' .. esc(w) .. '</p>' end
      out[#out + 1] = cards(r)
      out[#out + 1] = charts(rep, s.all and { weeks = r.weeks, lead_time = r.lead_time,
        time_to_restore = r.time_to_restore } or r, id)
    end
    out[#out + 1] = '</section>'
  end
  out[#out + 1] = '</main>'
  out[#out + 1] = '<footer><h2>Definitions</h2><dl>'
  for _, d in ipairs(compute.DEFINITIONS) do
    out[#out + 1] = '<dt>' .. esc(d[1]) .. '</dt><dd>' .. esc(d[2]) .. '</dd>'
  end
  out[#out + 1] = '</dl><p>Times are UTC. Computed by lumu from the CodePipeline execution history '
    .. '(ListPipelineExecutions, ListActionExecutions, GetPipelineExecution, GetPipeline).</p></footer>'
  out[#out + 1] = '</body>'
  out[#out + 1] = '</html>'
  return table.concat(out, "\n") .. "\n"
end

return M
