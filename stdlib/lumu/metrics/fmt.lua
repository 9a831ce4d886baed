--- Value formatting shared by lumu.metrics' renderers (text, HTML).
local time = require "lumu.time"

local M = {}

local floor = math.floor

--- duration(seconds) -> "1d 2h" | "3h 12m" | "12m 5s" | "45s" | "-"
-- (the two largest units, rounded to whole seconds)
function M.duration(s)
  if s == nil then return "-" end
  local neg = s < 0
  s = floor(math.abs(s) + 0.5)
  local units = { { "w", 7 * 86400 }, { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } }
  local parts = {}
  for i, u in ipairs(units) do
    local n = s // u[2]
    if n > 0 then
      parts[1] = n .. u[1]
      local nxt = units[i + 1]
      if nxt then
        local m = (s - n * u[2]) // nxt[2]
        if m > 0 then parts[2] = m .. nxt[1] end
      end
      break
    end
  end
  if #parts == 0 then parts[1] = "0s" end
  return (neg and "-" or "") .. table.concat(parts, " ")
end

--- percent(rate) -> "14.3%" | "-"
function M.percent(rate)
  if rate == nil then return "-" end
  local p = rate * 100
  if p == floor(p) then return string.format("%d%%", floor(p)) end
  return string.format("%.1f%%", p)
end

--- frequency(per_day) -> "2.5/day" | "3.5/week" | "0.3/month" (30 days) | "0"
function M.frequency(per_day)
  if per_day == nil or per_day == 0 then return "0" end
  local function num(x)
    local s = string.format("%.1f", x)
    return (s:gsub("%.0$", ""))
  end
  if per_day >= 1 - 1e-9 then return num(per_day) .. "/day" end
  if per_day * 7 >= 1 - 1e-9 then return num(per_day * 7) .. "/week" end
  return num(per_day * 30) .. "/month"
end

--- when(t) -> "2024-03-01 12:00" (UTC, minutes)
function M.when(t)
  if t == nil then return "-" end
  return time.format(floor(t), "%Y-%m-%d %H:%M")
end

--- date(t) -> "2024-03-01"
function M.date(t)
  return time.format(floor(t), "%Y-%m-%d")
end

--- iso(t) -> "2024-03-01T12:00:00Z" (milliseconds when t has a fraction)
function M.iso(t)
  if t == nil then return nil end
  if t ~= floor(t) then return time.iso8601(t, { ms = true }) end
  return time.iso8601(t)
end

--- window(report) -> "2024-03-01 00:00 to 2024-03-31 00:00 UTC (30 days)"
function M.window(rep)
  local days = rep.days
  local d = days == floor(days) and string.format("%d", floor(days)) or string.format("%.1f", days)
  return string.format("%s to %s UTC (%s day%s)", M.when(rep.since), M.when(rep["until"]), d,
    days == 1 and "" or "s")
end

return M
