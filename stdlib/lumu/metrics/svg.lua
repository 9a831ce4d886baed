--- Small SVG charts drawn by lumu (bar and scatter charts), as well-formed
-- XML fragments for inline use in HTML (no xmlns, no external references).
--
-- svg.bars(spec) -> string
--   spec.id (unique in the page), spec.title, spec.width (520), spec.height
--   (240), spec.labels = { x category labels }, spec.series = { { name =,
--   class =, values = { numbers } } } stacked bottom-up, spec.y_format
--   (function(v) -> tick label), spec.y_max (fixed top, e.g. 100 for %),
--   spec.tip (function(series, i, v) -> tooltip text), spec.integer (ticks
--   on whole numbers).
-- svg.scatter(spec) -> string
--   spec.id, spec.title, spec.width, spec.height, spec.x_min, spec.x_max,
--   spec.x_ticks = { { x =, label = } }, spec.points = { { x =, y =, class =,
--   tip = } }, spec.hlines = { { y =, class =, label = } }, spec.y_unit =
--   { name = "hours", div = 3600 } (y values are divided by div).
-- svg.duration_unit(max_seconds) -> { name =, div = }
-- svg.escape(s) -> s with XML special characters escaped
local M = {}

local floor, ceil, log = math.floor, math.ceil, math.log

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
function M.escape(s)
  s = tostring(s)
  -- characters XML 1.0 does not allow become "?"
  s = s:gsub("[%z\1-\8\11\12\14-\31\127]", "?")
  return (s:gsub("[&<>\"']", ESC))
end
local esc = M.escape

local function n(v)
  local s = string.format("%.1f", v)
  s = s:gsub("%.0$", "")
  if s == "-0" then s = "0" end
  return s
end

-- A tick step of 1, 2 or 5 times a power of ten giving about `count` ticks.
local function nice_step(maxv, count, integer)
  if maxv <= 0 then return 1 end
  local raw = maxv / count
  local mag = 10 ^ floor(log(raw, 10))
  local step
  for _, m in ipairs({ 1, 2, 2.5, 5, 10 }) do
    step = m * mag
    if step >= raw - 1e-12 then break end
  end
  if integer and step < 1 then step = 1 end
  if integer then step = ceil(step) end
  return step
end

local function num_label(v)
  if v == floor(v) then return string.format("%d", floor(v)) end
  return (string.format("%.2f", v):gsub("0+$", ""):gsub("%.$", ""))
end

local MARGIN = { left = 52, right = 14, top = 30, bottom = 42 }

local function frame(spec, kind)
  local w, h = spec.width or 520, spec.height or 240
  local out = {}
  local id = esc(spec.id or "chart")
  out[#out + 1] = string.format('<svg class="chart %s" id="%s" viewBox="0 0 %d %d" width="%d" height="%d" '
    .. 'role="img" aria-labelledby="%s-title">', kind, id, w, h, w, h, id)
  out[#out + 1] = string.format('<title id="%s-title">%s</title>', id, esc(spec.title or ""))
  out[#out + 1] = string.format('<rect class="bg" x="0" y="0" width="%d" height="%d"/>', w, h)
  out[#out + 1] = string.format('<text class="chart-title" x="%s" y="18">%s</text>', n(MARGIN.left), esc(spec.title or ""))
  local plot = { x0 = MARGIN.left, x1 = w - MARGIN.right, y0 = h - MARGIN.bottom, y1 = MARGIN.top }
  return out, plot, w, h
end

-- Horizontal grid lines and y tick labels; returns the scale function.
local function y_axis(out, plot, top, step, label_of, unit)
  local function y(v) return plot.y0 - (v / top) * (plot.y0 - plot.y1) end
  out[#out + 1] = '<g class="y-axis">'
  local v = 0
  while v <= top + 1e-9 do
    local yy = y(v)
    out[#out + 1] = string.format('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>', n(plot.x0), n(yy), n(plot.x1), n(yy))
    out[#out + 1] = string.format('<text class="tick" x="%s" y="%s" text-anchor="end">%s</text>', n(plot.x0 - 6),
      n(yy + 4), esc(label_of(v)))
    v = v + step
  end
  if unit then
    out[#out + 1] = string.format('<text class="unit" x="%s" y="%s">%s</text>', n(4), n(plot.y1 - 10), esc(unit))
  end
  out[#out + 1] = '</g>'
  out[#out + 1] = string.format('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>', n(plot.x0), n(plot.y0),
    n(plot.x1), n(plot.y0))
  return y
end

local function empty_note(out, plot, text)
  out[#out + 1] = string.format('<text class="empty" x="%s" y="%s" text-anchor="middle">%s</text>',
    n((plot.x0 + plot.x1) / 2), n((plot.y0 + plot.y1) / 2), esc(text))
end

function M.bars(spec)
  local out, plot = frame(spec, "bars")
  local labels = spec.labels or {}
  local series = spec.series or {}
  local ncat = #labels
  local maxv = 0
  for i = 1, ncat do
    local sum = 0
    for _, s in ipairs(series) do sum = sum + (s.values[i] or 0) end
    if sum > maxv then maxv = sum end
  end
  local top, step
  if spec.y_max then
    top = spec.y_max
    step = nice_step(top, 4, spec.integer)
  else
    step = nice_step(maxv > 0 and maxv or 1, 4, spec.integer)
    top = step * math.max(1, ceil(maxv / step - 1e-9))
  end
  local y = y_axis(out, plot, top, step, spec.y_format or num_label, spec.y_unit)
  local bw = ncat > 0 and (plot.x1 - plot.x0) / ncat or 0
  local every = math.max(1, ceil(ncat / 10))
  out[#out + 1] = '<g class="x-axis">'
  for i, l in ipairs(labels) do
    if (i - 1) % every == 0 then
      out[#out + 1] = string.format('<text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>',
        n(plot.x0 + (i - 0.5) * bw), n(plot.y0 + 16), esc(l))
    end
  end
  out[#out + 1] = '</g>'
  out[#out + 1] = '<g class="bars">'
  local drawn = 0
  for i = 1, ncat do
    local base = 0
    for _, s in ipairs(series) do
      local v = s.values[i]
      if v and v > 0 then
        local ytop, ybot = y(base + v), y(base)
        local tip = spec.tip and spec.tip(s, i, v) or (tostring(labels[i]) .. ": " .. num_label(v) .. " " .. s.name)
        out[#out + 1] = string.format('<rect class="bar %s" x="%s" y="%s" width="%s" height="%s" data-value="%s">'
          .. '<title>%s</title></rect>', esc(s.class or s.name), n(plot.x0 + (i - 1) * bw + bw * 0.15), n(ytop),
          n(bw * 0.7), n(ybot - ytop), esc(num_label(v)), esc(tip))
        base = base + v
        drawn = drawn + 1
      end
    end
  end
  out[#out + 1] = '</g>'
  if drawn == 0 then empty_note(out, plot, spec.empty or "nothing in this window") end
  if #series > 1 then
    out[#out + 1] = '<g class="legend">'
    local x = plot.x1
    local ly = plot.y0 + 28
    for k = #series, 1, -1 do
      local s = series[k]
      local label = esc(s.name)
      x = x - (#s.name * 6.5 + 22)
      out[#out + 1] = string.format('<rect class="swatch %s" x="%s" y="%s" width="10" height="10"/>'
        .. '<text class="legend-label" x="%s" y="%s">%s</text>', esc(s.class or s.name), n(x), n(ly - 9), n(x + 14),
        n(ly), label)
    end
    out[#out + 1] = '</g>'
  end
  out[#out + 1] = '</svg>'
  return table.concat(out, "\n")
end

function M.duration_unit(maxs)
  if maxs >= 3 * 86400 then return { name = "days", div = 86400 } end
  if maxs >= 2 * 3600 then return { name = "hours", div = 3600 } end
  return { name = "minutes", div = 60 }
end

function M.scatter(spec)
  local out, plot = frame(spec, "scatter")
  local unit = spec.y_unit or { name = "", div = 1 }
  local maxv = 0
  for _, p in ipairs(spec.points or {}) do
    if p.y / unit.div > maxv then maxv = p.y / unit.div end
  end
  for _, l in ipairs(spec.hlines or {}) do
    if l.y / unit.div > maxv then maxv = l.y / unit.div end
  end
  local step = nice_step(maxv > 0 and maxv or 1, 4)
  local top = step * math.max(1, ceil(maxv / step - 1e-9))
  local y = y_axis(out, plot, top, step, num_label, unit.name)
  local x0, x1 = spec.x_min, spec.x_max
  if not (x1 > x0) then x1 = x0 + 1 end
  local function x(v) return plot.x0 + (v - x0) / (x1 - x0) * (plot.x1 - plot.x0) end
  out[#out + 1] = '<g class="x-axis">'
  for _, t in ipairs(spec.x_ticks or {}) do
    if t.x >= x0 and t.x <= x1 then
      out[#out + 1] = string.format('<line class="xtick" x1="%s" y1="%s" x2="%s" y2="%s"/>', n(x(t.x)), n(plot.y0),
        n(x(t.x)), n(plot.y0 + 4))
      out[#out + 1] = string.format('<text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>', n(x(t.x)),
        n(plot.y0 + 16), esc(t.label))
    end
  end
  out[#out + 1] = '</g>'
  out[#out + 1] = '<g class="lines">'
  for _, l in ipairs(spec.hlines or {}) do
    local yy = y(l.y / unit.div)
    out[#out + 1] = string.format('<line class="hline %s" x1="%s" y1="%s" x2="%s" y2="%s"><title>%s</title></line>',
      esc(l.class or ""), n(plot.x0), n(yy), n(plot.x1), n(yy), esc(l.label or ""))
    out[#out + 1] = string.format('<text class="hline-label" x="%s" y="%s" text-anchor="end">%s</text>', n(plot.x1 - 2),
      n(yy - 4), esc(l.label or ""))
  end
  out[#out + 1] = '</g>'
  out[#out + 1] = '<g class="points">'
  for _, p in ipairs(spec.points or {}) do
    out[#out + 1] = string.format('<circle class="point %s" cx="%s" cy="%s" r="4" data-value="%s"><title>%s</title></circle>',
      esc(p.class or ""), n(x(p.x)), n(y(p.y / unit.div)), esc(num_label(floor(p.y + 0.5))), esc(p.tip or ""))
  end
  out[#out + 1] = '</g>'
  if #(spec.points or {}) == 0 then empty_note(out, plot, spec.empty or "nothing in this window") end
  out[#out + 1] = '</svg>'
  return table.concat(out, "\n")
end

return M
