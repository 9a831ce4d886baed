--- lumu.deploy.events: the one event source of a deploy (a poller of
-- DescribeStackEvents + DescribeStacks per stack, with backoff) and the bus
-- renderers subscribe to.
--
-- local events = require "lumu.deploy.events"
--
-- events.bus() -> bus;  bus:subscribe(fn);  bus:emit(ev)   (fn(ev) in order)
--   Event tables (ev.type):
--     "resource"  stack=, time= (epoch s, AWS clock), logical_id=,
--                 physical_id=, resource_type=, status=, reason=
--     "stack"     stack=, time=, status=, reason=   (the stack's own events)
--     "phase"     stack=, phase= ("plan"|"queued"|"changeset"|"execute"|"wait"|
--                 "delete"|"recover"|"cancel"|"upload"|"provision"),
--                 text= (one line for humans), total= (resources expected)
--     "diff"      stack=, action=, changes=, note=       (lumu.deploy.changes)
--     "message"   stack= (or nil), level= "info"|"warn"|"error", text=
--     "result"    stack=, status=, error=, elapsed=, events_failed=
--     "summary"   ok=, exit_code=, counts=
-- events.tail(ctx, o) -> result
--   Polls one stack operation until the stack settles.  ctx.call(service,
--   op, params, {retry=false}) -> res | nil, err (one attempt);
--   ctx.emit(ev); ctx.poll = {min=, max=, throttle_max=} seconds;
--   ctx.retryable(err) -> bool.  o.stack = name shown, o.ref = StackId (or
--   name), o.baseline = the newest event id before the operation (events
--   up to it are old), o.tokens = set of our ClientRequestTokens (an event
--   with another token ends the scan), o.attach = joining an operation
--   started elsewhere (its events start at the stack's last *_IN_PROGRESS
--   start event, or o.start_status), o.stop_status = a stack status whose
--   event ends the scan unseen (REVIEW_IN_PROGRESS for creates), o.seen =
--   a set of event ids already shown (shared between tails of one stack),
--   o.deleting = a vanished stack means deleted,
--   o.on_tick(info) called after each poll (info: status=, reason=,
--   resources = {logical id -> status}, last = last event), o.on_event(ev).
--   New events are emitted oldest first, each exactly once (pages are
--   followed until a known event), so nothing is lost when polls are slow;
--   a scan cut short (an error on a later page, or 50 pages) is resumed
--   from its NextToken by the next poll.
--   The interval starts at poll.min, grows x1.25 up to poll.max while nothing
--   happens and back to min on news; throttling and other retryable errors
--   double it up to poll.throttle_max (unless pages came through before the
--   error) and never end the wait; 5 other errors in a row do.  A terminal stack event is confirmed with one
--   DescribeStacks (which also gives the outputs); without stack events
--   DescribeStacks is asked every 6th idle poll (and believed once the
--   operation's events were seen, or after 12 idle polls: endpoints that
--   write no stack events).
--   result = { status=, reason=, stack = DescribeStacks entry | nil,
--              gone = true when the stack no longer exists, events = list
--              (oldest first), polls = n, err = error when it gave up }
-- events.failures(ctx, evs, stack_name [, depth]) -> list
--   The failed resource events of an operation, oldest first, without
--   "... cancelled" noise and the stack's own events: {logical_id=,
--   resource_type=, status=, reason=, physical_id=, time=, nested = list
--   (the failures inside a failed nested stack, followed up to 3 deep)}.
-- events.in_progress(status) -> bool   (*_IN_PROGRESS except REVIEW_IN_PROGRESS)
-- events.is_stack_event(ev, name) -> bool
local async = require "lumu.async"

local M = {}

local Bus = {}
Bus.__index = Bus

function M.bus()
  return setmetatable({ subs = {} }, Bus)
end

function Bus:subscribe(fn)
  if type(fn) ~= "function" then error("bus:subscribe: function expected", 2) end
  self.subs[#self.subs + 1] = fn
end

function Bus:emit(ev)
  for _, fn in ipairs(self.subs) do fn(ev) end
end

function M.in_progress(status)
  return type(status) == "string" and status:sub(-12) == "_IN_PROGRESS" and status ~= "REVIEW_IN_PROGRESS"
end

function M.is_stack_event(ev, name)
  return ev.ResourceType == "AWS::CloudFormation::Stack"
      and (ev.LogicalResourceId == name or ev.LogicalResourceId == ev.StackName)
      and (ev.PhysicalResourceId == ev.StackId or ev.PhysicalResourceId == nil or ev.PhysicalResourceId == "")
end

-- Stack-level statuses that begin an operation.
local START = { CREATE_IN_PROGRESS = true, UPDATE_IN_PROGRESS = true, DELETE_IN_PROGRESS = true,
                IMPORT_IN_PROGRESS = true }

local function not_found(err)
  return type(err) == "table" and err.code == "ValidationError"
      and tostring(err.message or ""):find("does not exist", 1, true) ~= nil
end
M.not_found = not_found

local function convert(ev, stack_name)
  if M.is_stack_event(ev, ev.StackName or stack_name) then
    return { type = "stack", stack = stack_name, time = ev.Timestamp, status = ev.ResourceStatus,
             reason = ev.ResourceStatusReason, id = ev.EventId }
  end
  return { type = "resource", stack = stack_name, time = ev.Timestamp, logical_id = ev.LogicalResourceId,
           physical_id = ev.PhysicalResourceId, resource_type = ev.ResourceType, status = ev.ResourceStatus,
           reason = ev.ResourceStatusReason, id = ev.EventId }
end
M.convert = convert

function M.tail(ctx, o)
  local poll = ctx.poll or {}
  local pmin, pmax = poll.min or 2, poll.max or 10
  local tmax = poll.throttle_max or math.max(pmax, 30)
  local seen, tokens = o.seen or {}, o.tokens or {}
  local name = o.stack
  local result = { events = {}, polls = 0 }
  local info = { status = nil, reason = nil, resources = {}, last = nil }
  local interval = pmin
  local errors_in_row, idle, started = 0, 0, not o.attach
  local function confirm()
    local res, err = ctx.call("cloudformation", "DescribeStacks", { StackName = o.ref })
    if not res then
      if not_found(err) then return "gone" end
      return nil, err
    end
    local st = res.Stacks and res.Stacks[1]
    if not st then return "gone" end
    return st
  end
  -- newest first, stopping at what we know.  A scan cut short (an error,
  -- throttling included, or 50 pages) is kept and resumed from its NextToken
  -- by the next poll, so a storm that fails one page in a few still makes
  -- progress and loses nothing.
  local partial
  -- true when a page of a resumed scan holds an event newer than the oldest
  -- one kept: the endpoint's tokens moved with new events (then the scan
  -- starts again from the top; what it had is found again)
  local function moved(page, floor, have)
    if not floor then return false end
    for _, ev in ipairs(page) do
      local t = tonumber(ev.Timestamp)
      if t and t > floor and not have[ev.EventId] then return true end
    end
    return false
  end
  local function fetch()
    local out, next_token, pages, have, floor = {}, nil, 0, {}, nil
    if partial then
      out, next_token, partial = partial.evs, partial.token, nil
      for _, ev in ipairs(out) do have[ev.EventId] = true end
      floor = out[#out] and tonumber(out[#out].Timestamp)
    end
    local progressed = false
    while true do
      pages = pages + 1
      if pages > 50 then
        partial = { evs = out, token = next_token }
        return {}
      end
      local res, err = ctx.call("cloudformation", "DescribeStackEvents",
        { StackName = o.ref, NextToken = next_token }, { retry = false })
      if not res then
        if next_token then partial = { evs = out, token = next_token } end
        return nil, err, progressed
      end
      progressed = true
      local page = res.StackEvents or {}
      if moved(page, floor, have) then
        out, next_token, have, floor = {}, nil, {}, nil
      else
        floor = nil
        local stop = false
        for _, ev in ipairs(page) do
          local tok = ev.ClientRequestToken
          if seen[ev.EventId] or ev.EventId == o.baseline then stop = true break end
          if next(tokens) and tok and tok ~= "" and not tokens[tok] then stop = true break end
          if o.stop_status and ev.ResourceStatus == o.stop_status and M.is_stack_event(ev, name) then
            stop = true
            break
          end
          if not have[ev.EventId] then
            have[ev.EventId] = true
            out[#out + 1] = ev
          end
          if o.attach and M.is_stack_event(ev, name) and (START[ev.ResourceStatus]
              or (o.start_status and ev.ResourceStatus == o.start_status)) then
            stop = true
            break
          end
        end
        next_token = res.NextToken
        if stop or not next_token or next_token == "" then return out end
      end
    end
  end
  while true do
    local evs, err, progressed = fetch()
    result.polls = result.polls + 1
    local terminal = false
    if not evs then
      if o.deleting and not_found(err) then
        result.gone, result.status = true, "DELETE_COMPLETE"
        info.status = result.status
        return result
      end
      if ctx.retryable(err) then
        errors_in_row = 0
        -- slower, unless pages came through before it (the scan resumes)
        interval = progressed and math.max(interval, pmin) or math.min(math.max(interval * 2, pmin), tmax)
        if ctx.on_throttle then ctx.on_throttle(name, err) end
      else
        errors_in_row = errors_in_row + 1
        if errors_in_row >= 5 then
          result.err = err
          return result
        end
        interval = math.min(interval * 2, tmax)
      end
    else
      errors_in_row = 0
      for i = #evs, 1, -1 do
        local raw = evs[i]
        seen[raw.EventId] = true
        local ev = convert(raw, name)
        result.events[#result.events + 1] = raw
        info.last = ev
        if ev.type == "stack" then
          started = true
          info.status, info.reason = ev.status, ev.reason
          if not M.in_progress(ev.status) then terminal = true else terminal = false end
        else
          info.resources[ev.logical_id] = ev.status
        end
        if o.on_event then o.on_event(ev, raw) end
        ctx.emit(ev)
      end
      if #evs > 0 then
        interval, idle = pmin, 0
      else
        interval = math.min(interval * 1.25, pmax)
        idle = idle + 1
      end
    end
    if terminal or (idle > 0 and idle % 6 == 0) then
      local st, cerr = confirm()
      if st == "gone" then
        result.gone = true
        result.status = o.deleting and "DELETE_COMPLETE" or (info.status or "DELETE_COMPLETE")
        info.status = result.status
        return result
      elseif st then
        local settled = not M.in_progress(st.StackStatus)
          and (terminal or started or (idle >= 12 and st.StackStatus ~= "REVIEW_IN_PROGRESS"))
        if settled then
          result.status, result.reason, result.stack = st.StackStatus, st.StackStatusReason, st
          if not terminal then
            -- settled without us seeing its final event: one last scan
            local more = fetch()
            for i = #(more or {}), 1, -1 do
              local raw = more[i]
              seen[raw.EventId] = true
              local ev = convert(raw, name)
              result.events[#result.events + 1] = raw
              if o.on_event then o.on_event(ev, raw) end
              ctx.emit(ev)
            end
          end
          info.status = result.status
          if o.on_tick then o.on_tick(info) end
          return result
        end
        info.status = st.StackStatus
      elseif cerr and not ctx.retryable(cerr) then
        errors_in_row = errors_in_row + 1
        if errors_in_row >= 5 then
          result.err = cerr
          return result
        end
      end
    end
    if o.on_tick then o.on_tick(info) end
    async.sleep(interval)
  end
end

local CANCEL_NOISE = { "Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled" }

local function noise(reason)
  reason = reason or ""
  for _, n in ipairs(CANCEL_NOISE) do
    if reason:find(n, 1, true) then return true end
  end
  return false
end

-- The events of the latest operation of a (nested) stack, newest first.
local function nested_events(ctx, ref)
  local out, next_token, pages = {}, nil, 0
  repeat
    pages = pages + 1
    local res = ctx.call("cloudformation", "DescribeStackEvents", { StackName = ref, NextToken = next_token })
    if not res then return out end
    for _, ev in ipairs(res.StackEvents or {}) do
      out[#out + 1] = ev
      if M.is_stack_event(ev, ev.StackName) and START[ev.ResourceStatus] then return out end
    end
    next_token = res.NextToken
  until not next_token or next_token == "" or pages >= 10
  return out
end

function M.failures(ctx, evs, stack_name, depth)
  depth = depth or 0
  local out = {}
  for _, ev in ipairs(evs) do
    local st = ev.ResourceStatus or ""
    if st:sub(-7) == "_FAILED" and not M.is_stack_event(ev, stack_name) and not noise(ev.ResourceStatusReason) then
      local f = { logical_id = ev.LogicalResourceId, resource_type = ev.ResourceType, status = st,
                  reason = ev.ResourceStatusReason, physical_id = ev.PhysicalResourceId, time = ev.Timestamp }
      if ev.ResourceType == "AWS::CloudFormation::Stack" and depth < 3 and ev.PhysicalResourceId
          and ev.PhysicalResourceId ~= "" then
        local nevs = nested_events(ctx, ev.PhysicalResourceId)
        local chron = {}
        for i = #nevs, 1, -1 do chron[#chron + 1] = nevs[i] end
        local inner = M.failures(ctx, chron, nevs[1] and nevs[1].StackName or ev.LogicalResourceId, depth + 1)
        if #inner > 0 then f.nested = inner end
      end
      out[#out + 1] = f
    end
  end
  return out
end

return M
