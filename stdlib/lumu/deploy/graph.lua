--- lumu.deploy.graph: the stack dependency graph and a bounded concurrent walk
-- over it (lumu.async tasks).
--
-- local graph = require "lumu.deploy.graph"
--
-- graph.new(nodes) -> g | nil, err
--   nodes: list of { name = "stack", depends = { "other", ... } }.  A
--   dependency outside the list is external (assumed deployed; kept in
--   g.external[name]).  err: "duplicate stack name 'x'", "dependency cycle:
--   a -> b -> a".  Raises on misuse (not a list, a node without a name).
--   g.order      names, topologically sorted, stable (list order among peers)
--   g.deps[n]    dependencies of n inside the set (list)
--   g.rdeps[n]   the stacks that depend on n (list)
--   g.index[n]   position of n in the input list
-- graph.walk(g, opts) -> states
--   Runs opts.run(name) -> truthy (ok) | falsy (failed) for every node once
--   its dependencies are ok (opts.reverse: once every stack depending on it
--   is ok -- deletion order), at most opts.limit (default 4) at once, each in
--   its own lumu.async task.  A node whose dependency failed or was skipped
--   is not run: opts.skip(name, blocker) is called and it is "skipped".  A
--   run that raises is "failed" (opts.error(name, err) is told), except an
--   "interrupted!" error (Ctrl-C), which stops the walk at once: walk raises
--   "interrupted!" and the running tasks are left to the caller (async.run
--   cancels them when the error propagates).  If opts.error itself raises,
--   no new node starts and walk re-raises that error once the running ones
--   settle (a node's task never dies with the walk waiting for it).
--   opts.stop() -> true also stops starting new nodes (they become
--   "skipped" with blocker nil).  states: name -> "ok"|"failed"|"skipped".
--   Only inside an async task (async.run).
-- graph.is_interrupt(err) -> boolean   (the host's Ctrl-C error)
local async = require "lumu.async"

local M = {}

function M.is_interrupt(err)
  return type(err) == "string" and err:find("interrupted!", 1, true) ~= nil
end

function M.new(nodes)
  if type(nodes) ~= "table" then error("graph.new: list of nodes expected", 2) end
  local g = { order = {}, deps = {}, rdeps = {}, index = {}, external = {}, nodes = {} }
  for i, n in ipairs(nodes) do
    if type(n) ~= "table" or type(n.name) ~= "string" then
      error("graph.new: node " .. i .. " has no name", 2)
    end
    if g.index[n.name] then return nil, "duplicate stack name '" .. n.name .. "'" end
    g.index[n.name] = i
    g.nodes[#g.nodes + 1] = n.name
  end
  for _, n in ipairs(nodes) do
    local d, ext, seen = {}, {}, {}
    for _, dep in ipairs(n.depends or {}) do
      if dep ~= n.name and not seen[dep] then
        seen[dep] = true
        if g.index[dep] then d[#d + 1] = dep else ext[#ext + 1] = dep end
      end
    end
    g.deps[n.name], g.external[n.name], g.rdeps[n.name] = d, ext, g.rdeps[n.name] or {}
  end
  for _, name in ipairs(g.nodes) do
    for _, dep in ipairs(g.deps[name]) do
      local r = g.rdeps[dep]
      r[#r + 1] = name
    end
  end
  -- Kahn's algorithm, always taking the earliest ready node (stable)
  local indeg, done = {}, {}
  for _, name in ipairs(g.nodes) do indeg[name] = #g.deps[name] end
  while #g.order < #g.nodes do
    local pick
    for _, name in ipairs(g.nodes) do
      if not done[name] and indeg[name] == 0 then pick = name break end
    end
    if not pick then
      -- a cycle: follow unfinished dependencies until a node repeats
      local start
      for _, name in ipairs(g.nodes) do if not done[name] then start = name break end end
      local path, at, pos = {}, start, {}
      while not pos[at] do
        pos[at] = #path + 1
        path[#path + 1] = at
        for _, dep in ipairs(g.deps[at]) do
          if not done[dep] then at = dep break end
        end
      end
      local cyc = {}
      for i = pos[at], #path do cyc[#cyc + 1] = path[i] end
      cyc[#cyc + 1] = at
      return nil, "dependency cycle: " .. table.concat(cyc, " -> ")
    end
    done[pick] = true
    g.order[#g.order + 1] = pick
    for _, r in ipairs(g.rdeps[pick]) do indeg[r] = indeg[r] - 1 end
  end
  return g
end

-- A wake-up signal between tasks: waiters park on a sleeping task that a
-- signal cancels (lumu.async has no condition variable).  Spurious wake-ups
-- (the sleeper ends after an hour) are fine: callers re-check.
local function sleeper() async.sleep(3600) end

local function cond_wait(c)
  local t = c.task
  if t == nil or (async.status(t) ~= "ready" and async.status(t) ~= "waiting") then
    t = async.spawn(sleeper)
    c.task = t
  end
  pcall(async.await, t)
end

local function cond_signal(c)
  local t = c.task
  c.task = nil
  if t then pcall(async.cancel, t) end
end

function M.walk(g, opts)
  opts = opts or {}
  local limit = opts.limit or 4
  if math.type(limit) ~= "integer" or limit < 1 then error("graph.walk: limit must be a positive integer", 2) end
  local run = opts.run
  if type(run) ~= "function" then error("graph.walk: opts.run function expected", 2) end
  local order = g.order
  local before = opts.reverse and g.rdeps or g.deps
  local state, running, interrupted, fatal = {}, 0, false, nil
  for _, name in ipairs(order) do state[name] = "pending" end
  local c = {}
  -- runs in the node's task: whatever opts.error does, the node is counted
  -- as finished and the walk woken
  local function finish(name, ok, err)
    if err ~= nil then
      if M.is_interrupt(err) then interrupted = true end
      if opts.error and not interrupted then
        local eok, eerr = pcall(opts.error, name, err)
        if not eok and fatal == nil then fatal = { eerr } end
      end
      ok = false
    end
    state[name] = ok and "ok" or "failed"
    running = running - 1
    cond_signal(c)
  end
  local function start(name)
    state[name] = "running"
    running = running + 1
    async.spawn(function()
      local ok, res = pcall(run, name)
      if ok then finish(name, res and true or false) else finish(name, false, res) end
    end)
  end
  local first, last, step = 1, #order, 1
  if opts.reverse then first, last, step = #order, 1, -1 end
  while true do
    if interrupted then
      cond_signal(c)
      error("interrupted!", 0)
    end
    if fatal and running == 0 then error(fatal[1], 0) end
    local stopping = fatal ~= nil or (opts.stop and opts.stop())
    for i = first, last, step do
      local name = order[i]
      if state[name] == "pending" then
        local blocker, waiting = nil, false
        for _, dep in ipairs(before[name]) do
          local s = state[dep]
          if s == "failed" or s == "skipped" then
            blocker = blocker or dep
          elseif s ~= "ok" then
            waiting = true
          end
        end
        if blocker then
          state[name] = "skipped"
          if opts.skip then opts.skip(name, blocker) end
        elseif stopping then
          if not waiting or running == 0 then
            state[name] = "skipped"
            if opts.skip then opts.skip(name, nil) end
          end
        elseif not waiting and running < limit then
          start(name)
        end
      end
    end
    if running == 0 then
      local pending = false
      for _, name in ipairs(order) do if state[name] == "pending" then pending = true end end
      if not pending then break end
      if not stopping then
        -- cannot happen with an acyclic graph; be safe rather than spin
        for _, name in ipairs(order) do
          if state[name] == "pending" then
            state[name] = "skipped"
            if opts.skip then opts.skip(name, nil) end
          end
        end
        break
      end
    else
      cond_wait(c)
    end
  end
  cond_signal(c)
  if fatal then error(fatal[1], 0) end
  local out = {}
  for k, v in pairs(state) do out[k] = v end
  return out
end

return M
