--- lumu.async: coroutine tasks over libcurl's multi handle, plus timers.
--
-- A task is a coroutine the scheduler resumes when what it waits for is ready
-- (an HTTP transfer, a timer, another task).  Nothing runs in parallel: tasks
-- switch only inside async/http calls, so plain Lua code between them needs
-- no locking.
--
--   async.run(fn, ...) -> fn's results
--       Runs fn as the main task and the scheduler until fn and every task
--       spawned meanwhile have finished.  If fn raises, the remaining tasks are
--       cancelled and the error is re-raised (a string error gets fn's task
--       traceback appended).  If fn succeeds but a spawned task failed and was
--       never awaited (await/all/map/timeout), that error is raised the same
--       way.  Raises "async.run: deadlock ..." when tasks wait on each other
--       with nothing left to wake them.  Inside a task, run(fn, ...) just calls
--       fn(...).  Ctrl-C raises "interrupted!" (tasks are cancelled first).
--   async.spawn(fn, ...) -> task
--       Schedules fn(...) as a new task; it starts at the next scheduler turn.
--       Only inside async.run (raises otherwise).
--   async.await(task) -> task's results
--       Waits for the task; re-raises its error unchanged (cancelled tasks
--       raise an error table {kind="cancelled", message=}).  Only inside a task;
--       a task cannot await itself.
--   async.all(list) -> { table.pack(results of list[1]), ... }
--       list holds functions (spawned) and/or tasks.  Waits until all settle.
--       One failure: raises that error; several: raises an aggregate error
--       table {kind="aggregate", errors={[index]=err...}, message=} with a
--       __tostring.  Only inside a task.
--   async.map(list, fn [, {limit=N}]) -> results
--       results[i] = first result of fn(list[i], i), at most N calls in flight
--       (default 16).  After a failure no new items start; once the running
--       ones settle the error(s) are raised as by all().  Only inside a task.
--   async.sleep(seconds)
--       Suspends the task for that long (a timer; other tasks run).  Outside a
--       task it blocks (still driving HTTP transfers).  sleep(0) yields.
--   async.timeout(seconds, fn, ...) -> fn's results | nil, err
--       Runs fn as a task; if it has not finished in time it is cancelled and
--       timeout returns nil, {kind="timeout", message=}.  fn's own errors are
--       re-raised.  Outside a task it runs inside async.run.
--   async.cancel(task) -> bool
--       Cancels a waiting or ready task (its pending to-be-closed variables,
--       e.g. HTTP requests, are closed).  false if it had already finished.
--       Raises for the running task.
--   async.running() -> bool      true inside a task
--   async.now() -> seconds       monotonic clock (float)
--   async.status(task) -> "ready"|"running"|"waiting"|"done"|"failed"|"cancelled"
--
-- Internal (for lumu.http): async._wait_request(req) suspends the current
-- task until the lumu._http request finishes, or drives the transfers until
-- it does when not in a task.
local _http = require "lumu._http"

local M = {}

local now = _http.now
M.now = now

local unpack, pack = table.unpack, table.pack
local co_running, co_resume, co_yield, co_status, co_close =
  coroutine.running, coroutine.resume, coroutine.yield, coroutine.status, coroutine.close

-- ---------------------------------------------------------------------------
-- Reactor: finished requests are routed to whoever waits for them, so a
-- blocking wait never swallows another task's completion.
-- ---------------------------------------------------------------------------

local waiting = setmetatable({}, { __mode = "k" }) -- request -> function(req)

local function dispatch(timeout_ms)
  local done = _http.poll(timeout_ms)
  for i = 1, #done do
    local req = done[i]
    local cb = waiting[req]
    if cb then
      waiting[req] = nil
      cb(req)
    end
  end
end

-- ---------------------------------------------------------------------------
-- Errors
-- ---------------------------------------------------------------------------

local KindError = { __name = "lumu.async.Error" }
KindError.__index = KindError
KindError.__tostring = function(e) return "async: " .. e.kind .. ": " .. e.message end
M.Error = KindError

local function kind_error(kind, message)
  return setmetatable({ kind = kind, message = message }, KindError)
end

local AggregateError = { __name = "lumu.async.AggregateError" }
AggregateError.__index = AggregateError
AggregateError.__tostring = function(e)
  local lines = { e.message }
  for _, i in ipairs(e.indexes) do
    lines[#lines + 1] = string.format("  [%d] %s", i, tostring(e.errors[i]))
  end
  return table.concat(lines, "\n")
end
M.AggregateError = AggregateError

-- ---------------------------------------------------------------------------
-- Timers: a binary min-heap of {at, seq, fn, cancelled}
-- ---------------------------------------------------------------------------

local function heap_less(a, b)
  return a.at < b.at or (a.at == b.at and a.seq < b.seq)
end

local function heap_push(h, item)
  local i = #h + 1
  h[i] = item
  while i > 1 do
    local p = i // 2
    if heap_less(h[i], h[p]) then
      h[i], h[p] = h[p], h[i]
      i = p
    else
      break
    end
  end
end

local function heap_pop(h)
  local n = #h
  local top = h[1]
  h[1] = h[n]
  h[n] = nil
  n = n - 1
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and heap_less(h[l], h[m]) then m = l end
    if r <= n and heap_less(h[r], h[m]) then m = r end
    if m == i then break end
    h[i], h[m] = h[m], h[i]
    i = m
  end
  return top
end

-- ---------------------------------------------------------------------------
-- Scheduler and tasks
-- ---------------------------------------------------------------------------

local Task = { __name = "lumu.async.Task" }
Task.__index = Task
Task.__tostring = function(t) return string.format("lumu.async.Task (%s) #%d", t.status, t.id) end

local SUSPEND = setmetatable({}, { __name = "lumu.async.SUSPEND" })

local current          -- the innermost running scheduler
local task_of = setmetatable({}, { __mode = "k" }) -- coroutine -> task

local Scheduler = {}
Scheduler.__index = Scheduler

local function new_scheduler()
  return setmetatable({ ready = {}, timers = {}, seq = 0, live = 0, nextid = 0, failed = {},
    tasks = {} }, Scheduler)
end

function Scheduler:add_timer(at, fn)
  self.seq = self.seq + 1
  local t = { at = at, seq = self.seq, fn = fn }
  heap_push(self.timers, t)
  return t
end

function Scheduler:make_ready(task, args)
  task.status = "ready"
  self.ready[#self.ready + 1] = { task, args }
end

function Scheduler:spawn(fn, ...)
  self.nextid = self.nextid + 1
  local task = setmetatable({ id = self.nextid, sched = self, status = "ready", token = 0,
    waiters = {}, observed = false }, Task)
  if type(fn) ~= "function" then -- a callable table
    local obj = fn
    fn = function(...) return obj(...) end
  end
  task.co = coroutine.create(fn)
  task_of[task.co] = task
  self.live = self.live + 1
  self.tasks[task] = true
  self:make_ready(task, pack(...))
  return task
end

-- The task has settled: wake whoever waits on it.
function Scheduler:settle(task)
  self.live = self.live - 1
  self.tasks[task] = nil
  local waiters = task.waiters
  task.waiters = {}
  for _, wake in ipairs(waiters) do wake() end
end

function Scheduler:step(task, args)
  task.status = "running"
  local r = pack(co_resume(task.co, unpack(args, 1, args.n)))
  if task.status == "cancelled" then return end
  if not r[1] then
    task.status = "failed"
    task.err = r[2]
    if type(r[2]) == "string" then task.trace = debug.traceback(task.co, r[2]) end
    co_close(task.co) -- runs pending to-be-closed variables (cancels requests)
    self.failed[#self.failed + 1] = task
    self:settle(task)
  elseif co_status(task.co) == "dead" then
    task.status = "done"
    task.results = pack(unpack(r, 2, r.n))
    self:settle(task)
  elseif r[2] ~= SUSPEND then
    co_close(task.co)
    task.status = "failed"
    task.err = "async: coroutine.yield called directly in a task (use async.sleep/await)"
    task.trace = task.err
    self.failed[#self.failed + 1] = task
    self:settle(task)
  end
end

function Scheduler:cancel(task, err)
  if task.status == "done" or task.status == "failed" or task.status == "cancelled" then
    return false
  end
  if co_status(task.co) ~= "suspended" then
    error("async.cancel: cannot cancel a running task", 3)
  end
  task.status = "cancelled"
  task.err = err or kind_error("cancelled", "task was cancelled")
  co_close(task.co)
  self:settle(task)
  return true
end

function Scheduler:cancel_all()
  local list = {}
  for t in pairs(self.tasks) do list[#list + 1] = t end
  table.sort(list, function(a, b) return a.id < b.id end)
  for _, t in ipairs(list) do
    if co_status(t.co) == "suspended" then
      pcall(self.cancel, self, t)
    end
  end
end

function Scheduler:loop(main)
  while true do
    local q = self.ready
    if #q > 0 then
      self.ready = {}
      for i = 1, #q do
        local task, args = q[i][1], q[i][2]
        if task.status == "ready" then self:step(task, args) end
        if main.status == "failed" then return end
      end
    end
    if self.live == 0 then return end
    local pending = _http.pending()
    local timeout
    if #self.ready > 0 then
      timeout = 0
    else
      local timers = self.timers
      while timers[1] and timers[1].cancelled do heap_pop(timers) end
      if timers[1] then
        timeout = math.max(0, math.ceil((timers[1].at - now()) * 1000))
      elseif pending > 0 then
        timeout = 1000
      else
        error(string.format("async.run: deadlock: %d task(s) waiting with nothing left to wake them",
          self.live), 0)
      end
    end
    if pending > 0 or timeout > 0 then dispatch(timeout) end
    local timers, t = self.timers, now()
    while timers[1] and timers[1].at <= t do
      local item = heap_pop(timers)
      if not item.cancelled then item.fn() end
    end
  end
end

local function current_task()
  local co = co_running()
  local task = task_of[co]
  if task and current and task.sched == current and task.status == "running" then return task end
  return nil
end

-- Returns a function that makes the task ready again with the arguments it
-- gets, once; later or stale calls do nothing.
local function waker(task)
  local token = task.token + 1
  task.token = token
  return function(...)
    if task.token == token and task.status == "waiting" then
      task.token = token + 1
      task.sched:make_ready(task, pack(...))
    end
  end
end

-- Suspends the running task until its waker is called; returns the waker's
-- arguments.
local function suspend(task)
  task.status = "waiting"
  return co_yield(SUSPEND)
end

local function is_task(v) return getmetatable(v) == Task end
M.is_task = is_task

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

-- Waits until task settled (without raising).
local function wait_settled(me, task)
  while task.status ~= "done" and task.status ~= "failed" and task.status ~= "cancelled" do
    local wake = waker(me)
    task.waiters[#task.waiters + 1] = wake
    suspend(me)
  end
end

local function need_task(fname)
  local me = current_task()
  if not me then error("async." .. fname .. ": only allowed inside an async task (async.run)", 3) end
  return me
end

local function raise_with_trace(task)
  task.observed = true
  if type(task.err) == "string" then error(task.trace, 0) end
  error(task.err, 0)
end

-- ---------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------

function M.running()
  return current_task() ~= nil
end

function M.run(fn, ...)
  if not callable(fn) then error("async.run: expected a function, got " .. type(fn), 2) end
  if current_task() then return fn(...) end
  local sched = new_scheduler()
  local prev = current
  current = sched
  local _ <close> = setmetatable({}, { __close = function()
    sched:cancel_all()
    current = prev
  end })
  local main = sched:spawn(fn, ...)
  main.observed = true
  sched:loop(main)
  if main.status == "failed" then raise_with_trace(main) end
  for _, t in ipairs(sched.failed) do
    if not t.observed then raise_with_trace(t) end
  end
  return unpack(main.results, 1, main.results.n)
end

function M.spawn(fn, ...)
  if not callable(fn) then error("async.spawn: expected a function, got " .. type(fn), 2) end
  if not current then error("async.spawn: only allowed inside async.run", 2) end
  return current:spawn(fn, ...)
end

function M.status(task)
  if not is_task(task) then error("async.status: expected a task", 2) end
  return task.status
end

function M.await(task)
  if not is_task(task) then error("async.await: expected a task, got " .. type(task), 2) end
  local me = need_task("await")
  if task == me then error("async.await: a task cannot await itself", 2) end
  if task.sched ~= me.sched then error("async.await: the task belongs to another async.run", 2) end
  wait_settled(me, task)
  task.observed = true
  if task.status ~= "done" then error(task.err, 0) end
  return unpack(task.results, 1, task.results.n)
end

-- Raises the failures of tasks[1..n] (already settled) as all() documents.
local function raise_failures(tasks, n)
  local errors, indexes = {}, {}
  for i = 1, n do
    local t = tasks[i]
    t.observed = true
    if t.status ~= "done" then
      errors[i] = t.err
      indexes[#indexes + 1] = i
    end
  end
  if #indexes == 1 then error(errors[indexes[1]], 0) end
  if #indexes > 1 then
    error(setmetatable({ kind = "aggregate", errors = errors, indexes = indexes,
      message = string.format("%d of %d tasks failed", #indexes, n) }, AggregateError), 0)
  end
end

function M.all(list)
  if type(list) ~= "table" then error("async.all: expected a list of functions or tasks", 2) end
  local me = need_task("all")
  local n = list.n or #list
  local tasks = {}
  for i = 1, n do
    local v = list[i]
    if is_task(v) then
      if v == me then error("async.all: a task cannot await itself", 2) end
      tasks[i] = v
    elseif callable(v) then
      tasks[i] = me.sched:spawn(v)
    else
      error(string.format("async.all: item %d is a %s, not a function or task", i, type(v)), 2)
    end
  end
  for i = 1, n do wait_settled(me, tasks[i]) end
  raise_failures(tasks, n)
  local results = { n = n }
  for i = 1, n do results[i] = tasks[i].results end
  return results
end

function M.map(list, fn, opts)
  if type(list) ~= "table" then error("async.map: expected a list", 2) end
  if not callable(fn) then error("async.map: expected a function", 2) end
  local limit = opts and opts.limit or 16
  if math.type(limit) ~= "integer" or limit < 1 then
    error("async.map: limit must be a positive integer", 2)
  end
  local me = need_task("map")
  local n = list.n or #list
  local results = { n = n }
  local nexti, stop = 1, false
  local function worker()
    while not stop and nexti <= n do
      local i = nexti
      nexti = i + 1
      local ok, r = pcall(fn, list[i], i)
      if not ok then
        stop = true
        error({ index = i, err = r }, 0)
      end
      results[i] = r
    end
  end
  local workers = {}
  for w = 1, math.min(limit, n) do workers[w] = me.sched:spawn(worker) end
  for w = 1, #workers do wait_settled(me, workers[w]) end
  -- errors are reported by item index
  local errors, indexes = {}, {}
  for _, t in ipairs(workers) do
    t.observed = true
    if t.status ~= "done" then
      local e = t.err
      if type(e) == "table" and e.index and getmetatable(e) == nil then
        errors[e.index] = e.err
        indexes[#indexes + 1] = e.index
      else
        errors[0] = e
        indexes[#indexes + 1] = 0
      end
    end
  end
  table.sort(indexes)
  if #indexes == 1 then error(errors[indexes[1]], 0) end
  if #indexes > 1 then
    error(setmetatable({ kind = "aggregate", errors = errors, indexes = indexes,
      message = string.format("%d of %d items failed", #indexes, n) }, AggregateError), 0)
  end
  return results
end

function M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("async.sleep: expected a non-negative number of seconds", 2)
  end
  local me = current_task()
  if me then
    me.sched:add_timer(now() + seconds, waker(me))
    suspend(me)
    return
  end
  local deadline = now() + seconds
  while true do
    local left = deadline - now()
    if left <= 0 then return end
    dispatch(math.max(1, math.ceil(left * 1000)))
  end
end

function M.cancel(task)
  if not is_task(task) then error("async.cancel: expected a task", 2) end
  if task == current_task() then error("async.cancel: cannot cancel the running task", 2) end
  return task.sched:cancel(task)
end

function M.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("async.timeout: expected a non-negative number of seconds", 2)
  end
  if not callable(fn) then error("async.timeout: expected a function", 2) end
  local me = current_task()
  if not me then
    local args = pack(...)
    return M.run(function() return M.timeout(seconds, fn, unpack(args, 1, args.n)) end)
  end
  local sched = me.sched
  local child = sched:spawn(fn, ...)
  local timed_out = false
  local timer = sched:add_timer(now() + seconds, function()
    if sched:cancel(child, kind_error("timeout", string.format("timed out after %g s", seconds))) then
      timed_out = true
    end
  end)
  wait_settled(me, child)
  timer.cancelled = true
  child.observed = true
  if timed_out then return nil, child.err end
  if child.status ~= "done" then error(child.err, 0) end
  return unpack(child.results, 1, child.results.n)
end

-- Used by lumu.http: waits for a lumu._http request to finish.
function M._wait_request(req)
  local me = current_task()
  if me then
    waiting[req] = waker(me)
    suspend(me)
    return
  end
  local done = false
  waiting[req] = function() done = true end
  while not done do dispatch(1000) end
end

return M
