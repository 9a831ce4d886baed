--- The text renderer of lumu.metrics: a table per report, optionally one per
-- pipeline and week.
local fmt = require "lumu.metrics.fmt"

local M = {}

local function pad(s, w) return s .. string.rep(" ", w - (utf8.len(s) or #s)) end

-- Lines of an aligned table (rows of strings; the last column not padded).
local function table_lines(rows)
  local widths = {}
  for _, r in ipairs(rows) do
    if not r.span then
      for i, c in ipairs(r) do
        local n = utf8.len(c) or #c
        if not widths[i] or n > widths[i] then widths[i] = n end
      end
    end
  end
  local out = {}
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do
      cells[i] = i < #r and pad(c, widths[i] or 0) or c
    end
    out[#out + 1] = (table.concat(cells, "  "):gsub("%s+$", ""))
  end
  return out
end

local function band(b) return b and ("(" .. b .. ")") or "" end

-- Text of control characters replaced (names and messages come from AWS).
local function clean(s)
  return (tostring(s):gsub("[%c]", "?"))
end

local function row(name, stage, r)
  if r.error then return { clean(name), "error: " .. clean(r.error), span = true } end
  local lt, cfr, ttr, d = r.lead_time, r.change_failure_rate, r.time_to_restore, r.deployments
  local restore = fmt.duration(ttr.median) .. " / " .. fmt.duration(ttr.p90)
  if ttr.open and ttr.open > 0 then restore = restore .. " (" .. ttr.open .. " open)" end
  return {
    clean(name), clean(stage or "-"), tostring(d.count), fmt.frequency(d.per_day) .. " " .. band(d.band),
    fmt.duration(lt.median) .. " / " .. fmt.duration(lt.p90) .. " " .. band(lt.band),
    string.format("%d/%d %s %s", cfr.failures, cfr.attempts, fmt.percent(cfr.rate), band(cfr.band)),
    restore .. " " .. band(ttr.band),
  }
end

--- render(report [, opts]) -> string.  opts.weekly: a table per pipeline
-- and week.
function M.render(rep, opts)
  opts = opts or {}
  local out = { "Delivery metrics, " .. fmt.window(rep), "" }
  local rows = { { "PIPELINE", "STAGE", "DEPLOYS", "FREQUENCY", "LEAD TIME median / p90",
    "CHANGE FAILURES", "TIME TO RESTORE median / p90" } }
  for _, r in ipairs(rep.pipelines) do rows[#rows + 1] = row(r.name, r.stage, r) end
  if #rep.pipelines == 0 then
    rows[#rows + 1] = { "(no pipelines)" }
  elseif #rep.pipelines > 1 then
    rows[#rows + 1] = row(string.format("all (%d)", rep.total.pipelines), "", rep.total)
  end
  for _, l in ipairs(table_lines(rows)) do out[#out + 1] = l end
  if opts.weekly then
    local list = {}
    for _, r in ipairs(rep.pipelines) do if not r.error then list[#list + 1] = r end end
    if #rep.pipelines > 1 then list[#list + 1] = rep.total end
    for _, r in ipairs(list) do
      out[#out + 1] = ""
      out[#out + 1] = clean(r.name) .. ", per week (weeks start Monday 00:00 UTC):"
      local wrows = { { "WEEK", "DEPLOYS", "FAILURES", "FAILURE RATE", "LEAD TIME median", "RESTORE median" } }
      for _, wk in ipairs(r.weeks) do
        wrows[#wrows + 1] = { fmt.date(wk.start), tostring(wk.deployments), tostring(wk.failures),
          fmt.percent(wk.change_failure_rate), fmt.duration(wk.lead_time_median), fmt.duration(wk.restore_median) }
      end
      for _, l in ipairs(table_lines(wrows)) do out[#out + 1] = "  " .. l end
    end
  end
  local notes = {}
  for _, r in ipairs(rep.pipelines) do
    for _, w in ipairs(r.warnings or {}) do notes[#notes + 1] = "warning: " .. clean(r.name) .. ": " .. clean(w) end
  end
  out[#out + 1] = ""
  for _, n in ipairs(notes) do out[#out + 1] = n end
  out[#out + 1] = "Bands: DORA performance (elite, high, medium, low); definitions: lumu help metrics."
  return table.concat(out, "\n") .. "\n"
end

return M
