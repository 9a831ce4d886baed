--- lumu.deploy.render: progress renderers subscribed to the deploy event bus
-- (lumu.deploy.events).
--
-- local render = require "lumu.deploy.render"
-- local r = render.new(kind, opts)      kind: "tty" | "lines" | "json"
--   opts.out   stream for humans (default io.stderr): progress, diffs, summary
--   opts.data  stream for data (default io.stdout): the json renderer only
--   opts.color ANSI colours (the caller decides: --no-color, NO_COLOR, TTY)
--   opts.width columns for the tty view (default: the terminal's)
--   opts.max_lines  height of the tty view (default 20, at most 23, and
--              at most the terminal's rows - 1)
--   opts.size  function() -> rows, columns | nil: the terminal's size
--              (default: $LINES/$COLUMNS, else `stty size` on /dev/tty,
--              else 100 columns)
-- r:event(ev)    render one bus event (bus:subscribe(function(ev) r:event(ev) end))
-- r:tick()       tty: redraw elapsed times (the engine calls it every second)
-- r:pause()      tty: remove the live view (before a prompt); it comes back
--                with the next event
-- r:close()      tty: final redraw, the view stays on screen
--
-- tty: a live block of at most max_lines lines, one per stack (status,
--   resources done/total, elapsed, current activity; running stacks first
--   when there are more stacks than lines), redrawn in place with ANSI
--   cursor movement at most 10 times a second.  Diffs, warnings, failed
--   resources and the summary are printed above it and stay.  Only for a
--   terminal (the engine falls back to "lines" otherwise).
-- lines: append-only "HH:MM:SS  stack  resource  STATUS  reason" (the
--   time of the AWS event, UTC), plus diffs, messages and the summary.
-- json: one JSON object per event on opts.data: {"type": ..., "stack": ...,
--   "time": "2026-11-26T07:12:40.123Z", ...} with the event's fields
--   (diff: "changes" list; result: "events_failed"; summary: "lines").
--   Nothing on opts.out.
local changes = require "lumu.deploy.changes"
local json = require "lumu.json"
local time = require "lumu.time"

local M = {}

local function write(stream, s)
  stream:write(s)
  if stream.flush then stream:flush() end
end

local COL = { red = "\27[31m", green = "\27[32m", yellow = "\27[33m", dim = "\27[2m", bold = "\27[1m",
              cyan = "\27[36m" }

local function paint(r, color, text)
  if r.color and color then return COL[color] .. text .. "\27[0m" end
  return text
end

local function status_color(status)
  status = status or ""
  if status:find("FAILED", 1, true) or status:find("ROLLBACK", 1, true) then return "red" end
  if status:find("IN_PROGRESS", 1, true) then return "yellow" end
  if status:find("COMPLETE", 1, true) then return "green" end
  return nil
end

local function clock(t)
  if type(t) ~= "number" then t = time.now() end
  return time.format(t, "%H:%M:%S")
end

local function one_line(s)
  return (tostring(s or ""):gsub("[\r\n]+", " "))
end

-- ---------------------------------------------------------------------------
-- lines
-- ---------------------------------------------------------------------------

local Lines = {}
Lines.__index = Lines

function Lines:say(text)
  write(self.out, text .. "\n")
end

function Lines:event(ev)
  local t = ev.type
  if t == "resource" or t == "stack" then
    local res = t == "stack" and "-" or (ev.logical_id or "?")
    local line = clock(ev.time) .. "  " .. ev.stack .. "  " .. res .. "  "
      .. paint(self, status_color(ev.status), ev.status or "?")
    if ev.reason and ev.reason ~= "" then line = line .. "  " .. one_line(ev.reason) end
    self:say(line)
  elseif t == "phase" then
    if ev.phase ~= "plan" and ev.phase ~= "queued" then
      self:say(clock() .. "  " .. ev.stack .. "  " .. paint(self, "dim", ev.text or ev.phase))
    end
  elseif t == "diff" then
    for _, l in ipairs(changes.format(ev.stack, ev, { color = self.color })) do self:say(l) end
  elseif t == "message" then
    local lvl = ev.level == "error" and paint(self, "red", "error: ")
      or ev.level == "warn" and paint(self, "yellow", "warning: ") or ""
    self:say((ev.stack and (ev.stack .. ": ") or "") .. lvl .. ev.text)
  elseif t == "summary" then
    for _, l in ipairs(ev.lines or {}) do self:say(l) end
  end
end

function Lines:tick() end
function Lines:pause() end
function Lines:close() end

-- ---------------------------------------------------------------------------
-- json
-- ---------------------------------------------------------------------------

local Json = {}
Json.__index = Json

local function arr(t)
  return json.array(t or {})
end

local function changes_json(list)
  local out = {}
  for _, c in ipairs(list or {}) do
    local details = {}
    for _, d in ipairs(c.details or {}) do
      details[#details + 1] = { attribute = d.attribute, name = d.name, path = d.path,
        requires_recreation = d.recreation, evaluation = d.evaluation, change_source = d.source,
        causing_entity = d.causing }
    end
    out[#out + 1] = { action = c.action, logical_id = c.logical_id, physical_id = c.physical_id,
      resource_type = c.resource_type, replacement = c.replacement, scope = arr(c.scope), details = arr(details) }
  end
  return arr(out)
end

local function failures_json(list)
  local out = {}
  for _, f in ipairs(list or {}) do
    out[#out + 1] = { logical_id = f.logical_id, resource_type = f.resource_type, status = f.status,
      reason = f.reason, physical_id = f.physical_id, nested = f.nested and failures_json(f.nested) or nil }
  end
  return arr(out)
end

function Json:event(ev)
  local o = { type = ev.type, stack = ev.stack }
  local t = ev.type
  o.time = time.iso8601(type(ev.time) == "number" and ev.time or time.now(), { ms = true })
  if t == "resource" or t == "stack" then
    o.logical_id, o.physical_id, o.resource_type = ev.logical_id, ev.physical_id, ev.resource_type
    o.status, o.reason, o.event_id = ev.status, ev.reason, ev.id
  elseif t == "phase" then
    o.phase, o.text, o.total = ev.phase, ev.text, ev.total
  elseif t == "diff" then
    o.action, o.status, o.note, o.changes = ev.action, ev.status, ev.note, changes_json(ev.changes)
  elseif t == "message" then
    o.level, o.text = ev.level, ev.text
  elseif t == "result" then
    o.status, o.error, o.elapsed = ev.status, ev.error, ev.elapsed
    o.events_failed = failures_json(ev.events_failed)
  elseif t == "summary" then
    o.ok, o.exit_code, o.lines = ev.ok, ev.exit_code, arr(ev.lines)
    o.counts = ev.counts
  end
  write(self.data, json.encode(o) .. "\n")
end

function Json:tick() end
function Json:pause() end
function Json:close() end

-- ---------------------------------------------------------------------------
-- tty
-- ---------------------------------------------------------------------------

local Tty = {}
Tty.__index = Tty

local SPIN = { "|", "/", "-", "\\" }

function Tty:stack(name)
  local s = self.by[name]
  if not s then
    s = { name = name, status = "waiting", done = 0, total = nil, started = nil, finished = nil,
          activity = "", seen = {}, failed = false, order = #self.list + 1 }
    self.by[name] = s
    self.list[#self.list + 1] = s
  end
  return s
end

function Tty:clear()
  if self.drawn > 0 then
    write(self.out, "\r\27[" .. self.drawn .. "A\27[J")
    self.drawn = 0
  end
end

function Tty:say(text)
  self:clear()
  write(self.out, text .. "\n")
  self.dirty = true
end

local function elapsed(s, now)
  if not s.started then return "" end
  local d = math.floor((s.finished or now) - s.started)
  if d >= 60 then return string.format("%dm%02ds", d // 60, d % 60) end
  return d .. "s"
end

function Tty:lines()
  local now = self.now()
  local rows = {}
  for _, s in ipairs(self.list) do rows[#rows + 1] = s end
  local max = self.max_lines
  local extra
  if #rows > max - 1 then
    -- running first, then failed, then the rest; keep the input order inside
    local function rank(s)
      if s.started and not s.finished then return 0 end
      if s.failed then return 1 end
      if not s.finished then return 2 end
      return 3
    end
    table.sort(rows, function(a, b)
      local ra, rb = rank(a), rank(b)
      if ra ~= rb then return ra < rb end
      return a.order < b.order
    end)
    local shown = {}
    for i = 1, max - 2 do shown[i] = rows[i] end
    local done, waiting, failed = 0, 0, 0
    for i = max - 1, #rows do
      local s = rows[i]
      if s.failed then failed = failed + 1 elseif s.finished then done = done + 1 else waiting = waiting + 1 end
    end
    extra = string.format("  ... %d more: %d done, %d failed, %d waiting", #rows - (max - 2), done, failed, waiting)
    rows = shown
  end
  local namew = 0
  for _, s in ipairs(rows) do namew = math.max(namew, #s.name) end
  namew = math.min(namew, 48)
  local out = {}
  local spin = SPIN[(math.floor(now * 4) % #SPIN) + 1]
  for _, s in ipairs(rows) do
    local icon = s.failed and "x" or (s.finished and "+") or (s.started and spin) or "."
    local progress = s.total and (s.done .. "/" .. s.total) or (s.done > 0 and tostring(s.done) or "")
    local text = string.format("%s %-" .. namew .. "s  %-28s %7s %7s  %s", icon, s.name:sub(1, namew),
      s.status:sub(1, 28), progress, elapsed(s, now), one_line(s.activity))
    if #text > self.width then text = text:sub(1, self.width - 1) end
    local color = s.failed and "red" or (s.finished and "green") or (s.started and "yellow") or "dim"
    out[#out + 1] = paint(self, color, text)
  end
  if extra then out[#out + 1] = extra:sub(1, self.width - 1) end
  return out
end

function Tty:draw(force)
  local now = self.now()
  if not force and now - self.last_draw < 0.1 then
    self.dirty = true
    return
  end
  self.last_draw = now
  self.dirty = false
  local lines = self:lines()
  local buf = {}
  if self.drawn > 0 then buf[#buf + 1] = "\r\27[" .. self.drawn .. "A\27[J" end
  for _, l in ipairs(lines) do buf[#buf + 1] = l .. "\n" end
  write(self.out, table.concat(buf))
  self.drawn = #lines
end

local PHASE_STATUS = { plan = "planning", queued = "queued", changeset = "planning", upload = "uploading", wait = "waiting",
                       execute = "executing", delete = "deleting", recover = "recovering", cancel = "cancelling",
                       provision = "provisioning" }

local DONE_STATUS = { CREATE_COMPLETE = true, UPDATE_COMPLETE = true, DELETE_COMPLETE = true,
                      DELETE_SKIPPED = true, IMPORT_COMPLETE = true }

function Tty:event(ev)
  local t = ev.type
  if t == "diff" then
    self:clear()
    for _, l in ipairs(changes.format(ev.stack, ev, { color = self.color })) do write(self.out, l .. "\n") end
    return
  elseif t == "message" then
    local lvl = ev.level == "error" and paint(self, "red", "error: ")
      or ev.level == "warn" and paint(self, "yellow", "warning: ") or ""
    self:say((ev.stack and (ev.stack .. ": ") or "") .. lvl .. ev.text)
  elseif t == "summary" then
    self:draw(true)
    self.drawn = 0
    for _, l in ipairs(ev.lines or {}) do write(self.out, l .. "\n") end
    return
  elseif ev.stack then
    local s = self:stack(ev.stack)
    if t == "phase" then
      s.started = s.started or self.now()
      s.finished = nil
      s.activity = ev.text or ev.phase
      if not s.cfn then s.status = PHASE_STATUS[ev.phase] or s.status end
      if ev.total then s.total, s.done, s.seen = ev.total, 0, {} end
    elseif t == "stack" then
      s.started = s.started or self.now()
      s.status = ev.status or s.status
      s.cfn = true
      if ev.reason and ev.reason ~= "" and ev.reason ~= "User Initiated" then s.activity = ev.reason end
    elseif t == "resource" then
      s.activity = (ev.logical_id or "") .. " " .. (ev.status or "")
      if DONE_STATUS[ev.status] and not s.seen[ev.logical_id] then
        s.seen[ev.logical_id] = true
        s.done = s.done + 1
      end
      if (ev.status or ""):sub(-7) == "_FAILED" and not tostring(ev.reason or ""):find("cancelled", 1, true) then
        self:say(paint(self, "red", ev.stack .. "  " .. (ev.logical_id or "?") .. "  " .. ev.status)
          .. (ev.reason and ("  " .. one_line(ev.reason)) or ""))
      end
    elseif t == "result" then
      s.finished = self.now()
      s.started = s.started or s.finished
      s.status = ev.status
      if ev.status == "no changes" or ev.status == "changes" then s.total, s.done = nil, 0 end
      s.failed = ev.status == "failed"
      s.activity = ev.error and one_line(ev.error) or ""
    end
  end
  self:draw(false)
end

function Tty:tick()
  self:draw(true)
end

function Tty:pause()
  self:clear()
end

function Tty:close()
  if self.dirty then self:draw(true) end
end

-- ---------------------------------------------------------------------------

-- rows, columns of the terminal | nil (each may be nil)
local function terminal_size()
  local rows, cols = tonumber(os.getenv("LINES") or ""), tonumber(os.getenv("COLUMNS") or "")
  if rows and cols then return rows, cols end
  local p = io.popen("stty size 2>/dev/null </dev/tty", "r")
  local line = p and p:read("l")
  if p then p:close() end
  local r, c = (line or ""):match("^(%d+) (%d+)$")
  r, c = tonumber(r), tonumber(c)
  if r == 0 or c == 0 then r, c = nil, nil end
  return rows or r, cols or c
end
M.terminal_size = terminal_size

function M.new(kind, opts)
  opts = opts or {}
  local r = { out = opts.out or io.stderr, data = opts.data or io.stdout, color = opts.color and true or false }
  if kind == "lines" then
    return setmetatable(r, Lines)
  elseif kind == "json" then
    return setmetatable(r, Json)
  elseif kind == "tty" then
    r.by, r.list, r.drawn, r.last_draw, r.dirty = {}, {}, 0, -1, false
    local rows, cols = (opts.size or terminal_size)()
    r.width = opts.width or cols or 100
    if r.width < 40 then r.width = 40 end
    local max = opts.max_lines or 20
    if rows and rows - 1 < max then max = rows - 1 end
    r.max_lines = math.min(max, 23)
    if r.max_lines < 3 then r.max_lines = 3 end
    r.now = opts.now or require("lumu.async").now
    return setmetatable(r, Tty)
  end
  error("render.new: kind must be \"tty\", \"lines\" or \"json\", got " .. tostring(kind), 2)
end

return M
