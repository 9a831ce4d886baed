--- Fetching CodePipeline execution histories for lumu.metrics (documented
-- there), through an injectable client: anything with
-- `client:call(operation, params) -> result | nil, err` (a lumu.aws client,
-- or a test double).  Also: a transport that replays recorded API responses
-- through a real lumu.aws client, and a transport wrapper that records them.
local json = require "lumu.json"
local compute = require "lumu.metrics.compute"

local M = {}

M.LOOKBACK = 8 * 86400   -- executions may start this long before `since`
M.MAX_PAGES = 1000       -- per listing
M.CONCURRENCY = 4        -- calls in flight (lumu.async) per pipeline

local TARGET_PREFIX = "CodePipeline_20150709."

local function err_text(e) return tostring(e) end

-- Pages of `op` until `stop(page)` says so.  -> pages | nil, err
local function pages(client, op, params, stop, max_pages)
  local out, seen = {}, {}
  local token
  for _ = 1, max_pages or M.MAX_PAGES do
    local p = {}
    for k, v in pairs(params) do p[k] = v end
    p.nextToken = token
    local page, err = client:call(op, p)
    if not page then return nil, err end
    out[#out + 1] = page
    token = page.nextToken
    if token == nil or token == json.null or token == "" or (stop and stop(page)) then return out end
    if seen[token] then
      return nil, string.format("codepipeline %s: the service repeated the page token %q", op, token)
    end
    seen[token] = true
  end
  return nil, string.format("codepipeline %s: more than %d pages", op, max_pages or M.MAX_PAGES)
end

local function list(v) if type(v) == "table" then return v end return {} end
local function num(v) if type(v) == "number" then return v end return nil end
local function str(v) if type(v) == "string" then return v end return nil end

--- normalise_summary(s) -> execution (without actions)
function M.normalise_summary(s)
  local e = { id = str(s.pipelineExecutionId), status = str(s.status), start = num(s.startTime),
    updated = num(s.lastUpdateTime), source_revisions = {} }
  for _, r in ipairs(list(s.sourceRevisions)) do
    if type(r) ~= "table" then r = {} end
    e.source_revisions[#e.source_revisions + 1] = { action = str(r.actionName), revision_id = str(r.revisionId),
      summary = str(r.revisionSummary) }
  end
  if type(s.trigger) == "table" then e.trigger = str(s.trigger.triggerType) end
  return e
end

--- normalise_action(d) -> action execution
function M.normalise_action(d)
  local input = type(d.input) == "table" and d.input or {}
  local typ = type(input.actionTypeId) == "table" and input.actionTypeId or {}
  return { stage = str(d.stageName), name = str(d.actionName), id = str(d.actionExecutionId),
    category = str(typ.category), provider = str(typ.provider), status = str(d.status),
    start = num(d.startTime), updated = num(d.lastUpdateTime) }
end

--- normalise_pipeline(GetPipeline result) -> stages
function M.normalise_stages(res)
  local stages = {}
  local pl = type(res) == "table" and res.pipeline or nil
  for _, s in ipairs(list(type(pl) == "table" and pl.stages)) do
    if type(s) ~= "table" then s = {} end
    local acts = {}
    for _, a in ipairs(list(s.actions)) do
      if type(a) ~= "table" then a = {} end
      local typ = type(a.actionTypeId) == "table" and a.actionTypeId or {}
      acts[#acts + 1] = { name = str(a.name), category = str(typ.category), provider = str(typ.provider),
        run_order = num(a.runOrder) }
    end
    table.sort(acts, function(x, y)
      if (x.run_order or 1) ~= (y.run_order or 1) then return (x.run_order or 1) < (y.run_order or 1) end
      return false
    end)
    stages[#stages + 1] = { name = str(s.name), actions = acts }
  end
  return stages
end

local function revisions_of(res)
  local out = {}
  local pe = type(res) == "table" and res.pipelineExecution or nil
  for _, r in ipairs(list(type(pe) == "table" and pe.artifactRevisions)) do
    if type(r) ~= "table" then r = {} end
    out[#out + 1] = { name = str(r.name), revision_id = str(r.revisionId), created = num(r.created),
      summary = str(r.revisionSummary) }
  end
  return out
end

-- Runs fn(item) for every item, `limit` at a time under lumu.async; fn
-- returns true | nil, err.  -> true | nil, first error
local function each(items, limit, fn)
  if #items == 0 then return true end
  local async = require "lumu.async"
  local results = async.run(function()
    return async.map(items, function(item)
      local ok, err = fn(item)
      return { ok = ok, err = err }
    end, { limit = limit })
  end)
  for _, r in ipairs(results) do
    if not r.ok then return nil, r.err end
  end
  return true
end

local function action_details(client, name, e, max_pages)
  local ps, err = pages(client, "ListActionExecutions",
    { pipelineName = name, filter = { pipelineExecutionId = e.id } }, nil, max_pages)
  if not ps then return nil, err end
  e.actions = {}
  for _, page in ipairs(ps) do
    for _, d in ipairs(list(page.actionExecutionDetails)) do
      -- a filter the service ignored must not mix executions
      if type(d) == "table" and (d.pipelineExecutionId == nil or d.pipelineExecutionId == e.id) then
        e.actions[#e.actions + 1] = M.normalise_action(d)
      end
    end
  end
  return true
end

--- pipeline(client, name, opts) -> pipeline history | nil, err
-- opts: since, until (epoch seconds, required), stage, action, lookback,
-- max_pages, concurrency, progress (function(message)).
function M.pipeline(client, name, opts)
  local since, untl = opts.since, opts["until"]
  local lookback = opts.lookback or M.LOOKBACK
  local progress = opts.progress or function() end
  local p = { name = name, executions = {} }
  local def, err = client:call("GetPipeline", { name = name })
  if not def then return nil, err end
  p.stages = M.normalise_stages(def)
  -- newest first: stop after the page reaching before since - lookback
  local oldest_needed = since - lookback
  local ps
  ps, err = pages(client, "ListPipelineExecutions", { pipelineName = name }, function(page)
    for _, s in ipairs(list(page.pipelineExecutionSummaries)) do
      if type(s) == "table" and type(s.startTime) == "number" and s.startTime < oldest_needed then return true end
    end
    return false
  end, opts.max_pages)
  if not ps then return nil, err end
  local window, later = {}, {}
  local seen = {}
  for _, page in ipairs(ps) do
    for _, s in ipairs(list(page.pipelineExecutionSummaries)) do
      local e = type(s) == "table" and M.normalise_summary(s) or {}
      if e.id and e.start and not seen[e.id] then
        seen[e.id] = true
        if e.start >= untl then
          later[#later + 1] = e
        elseif e.start >= oldest_needed and (e.updated or e.start) >= since then
          window[#window + 1] = e
        end
      end
    end
  end
  table.sort(window, function(a, b) return a.start < b.start end)
  table.sort(later, function(a, b) return a.start < b.start end)
  progress(string.format("%s: %d executions in the window", name, #window))
  local max_pages = opts.max_pages
  local limit = opts.concurrency or M.CONCURRENCY
  local ok
  ok, err = each(window, limit, function(e) return action_details(client, name, e, max_pages) end)
  if not ok then return nil, err end
  for _, e in ipairs(window) do p.executions[#p.executions + 1] = e end
  -- the revisions (lead time) of the executions that deployed
  local prod = compute.production(p, opts)
  local deployed, events = {}, {}
  if prod then
    for _, e in ipairs(window) do
      local evs = compute.events(e, prod)
      for _, ev in ipairs(evs) do events[#events + 1] = ev end
      for _, ev in ipairs(evs) do
        if ev.kind == "deployment" and ev.time >= since and ev.time < untl then
          deployed[#deployed + 1] = e
          break
        end
      end
    end
  end
  table.sort(events, function(a, b)
    if a.time ~= b.time then return a.time < b.time end
    return a.kind == "failure" and b.kind ~= "failure"
  end)
  local open = #events > 0 and events[#events].kind == "failure"
  ok, err = each(deployed, limit, function(e)
    local res, gerr = client:call("GetPipelineExecution", { pipelineName = name, pipelineExecutionId = e.id })
    if not res then return nil, gerr end
    e.revisions = revisions_of(res)
    return true
  end)
  if not ok then return nil, err end
  -- an outage still open at the end of the window: the executions after it,
  -- oldest first, until one deploys (its restore time)
  if prod and open then
    for _, e in ipairs(later) do
      ok, err = action_details(client, name, e, max_pages)
      if not ok then return nil, err end
      p.executions[#p.executions + 1] = e
      local done = false
      for _, ev in ipairs(compute.events(e, prod)) do
        if ev.kind == "deployment" then done = true end
      end
      if done then break end
    end
  end
  return p
end

--- pipelines(client) -> { names } | nil, err   (ListPipelines, every page)
function M.names(client, max_pages)
  local ps, err = pages(client, "ListPipelines", {}, nil, max_pages)
  if not ps then return nil, err end
  local names = {}
  for _, page in ipairs(ps) do
    for _, pl in ipairs(list(page.pipelines)) do
      if type(pl) == "table" and type(pl.name) == "string" then names[#names + 1] = pl.name end
    end
  end
  table.sort(names)
  return names
end

--- fetch(client, opts) -> history | nil, err
function M.fetch(client, opts)
  assert(type(opts) == "table" and type(opts.since) == "number" and type(opts["until"]) == "number",
    "fetch: opts.since and opts.until (epoch seconds) expected")
  local names = opts.pipelines
  if names == nil or #names == 0 then
    local err
    names, err = M.names(client, opts.max_pages)
    if not names then return nil, err end
  end
  local h = { pipelines = {} }
  for _, name in ipairs(names) do
    local p, err = M.pipeline(client, name, opts)
    if not p then
      -- a missing pipeline or a denied call spoils only that pipeline when
      -- all pipelines are listed; a named pipeline must work
      if opts.pipelines and #opts.pipelines > 0 then return nil, err end
      p = { name = name, error = err_text(err), executions = {} }
    end
    h.pipelines[#h.pipelines + 1] = p
  end
  return h
end

-- ---------------------------------------------------------------------------
-- Recording and replaying API responses
-- ---------------------------------------------------------------------------

local function canonical(v)
  if v == nil then return "{}" end
  return json.encode(v, { sort_keys = true })
end

local function header(req, name)
  for k, v in pairs(req.headers or {}) do
    if type(k) == "string" and k:lower() == name then return v end
  end
  return nil
end

local function op_of(req)
  local target = header(req, "x-amz-target")
  if type(target) ~= "string" then return nil end
  return (target:gsub("^.*%.", "")), target
end

local function decode_body(body)
  if body == nil or body == "" then return {} end
  local v = json.decode(body)
  return v or {}
end

local function error_response(code, message)
  return { status = 400, headers = { ["content-type"] = "application/x-amz-json-1.1" },
    body = json.encode({ __type = code, message = message }) }
end

--- replay_transport(recording) -> function(req) -> response
-- recording = { calls = { { operation =, request = {params}, response =
-- {API response} } } }: a request is answered with the response of the call
-- with the same operation and the same parameters (compared as canonical
-- JSON); an unknown pipeline gets PipelineNotFoundException, anything else
-- unrecorded a ValidationException.
function M.replay_transport(recording)
  assert(type(recording) == "table" and type(recording.calls) == "table", "replay_transport: {calls={...}} expected")
  local index, names = {}, {}
  for i, c in ipairs(recording.calls) do
    if type(c) ~= "table" or type(c.operation) ~= "string" or type(c.response) ~= "table" then
      error(string.format("replay_transport: calls[%d]: {operation=, request=, response=} expected", i), 2)
    end
    index[c.operation .. " " .. canonical(c.request or {})] = c.response
    local req = type(c.request) == "table" and c.request or {}
    if req.pipelineName then names[req.pipelineName] = true end
    if req.name then names[req.name] = true end
  end
  return function(req)
    local op = op_of(req)
    if not op then return error_response("UnknownOperationException", "no X-Amz-Target") end
    local params = decode_body(req.body)
    local resp = index[op .. " " .. canonical(params)]
    if resp then
      return { status = 200, headers = { ["content-type"] = "application/x-amz-json-1.1" },
        body = json.encode(resp) }
    end
    local pname = params.pipelineName or params.name
    if pname and not names[pname] then
      return error_response("PipelineNotFoundException", "The account does not have a pipeline with name '"
        .. tostring(pname) .. "' (lumu replay)")
    end
    return error_response("ValidationException", "lumu replay: no recorded response for " .. op .. " "
      .. canonical(params))
  end
end

--- recording_transport(inner) -> transport, recording
-- Passes requests to inner (lumu.http.request by default) and records the
-- successful CodePipeline responses as replay_transport reads them.
function M.recording_transport(inner)
  inner = inner or require("lumu.http").request
  local rec = { calls = json.array() }
  local function transport(req)
    local resp, err = inner(req)
    local op, target = op_of(req)
    if resp and resp.status == 200 and op and target:sub(1, #TARGET_PREFIX) == TARGET_PREFIX then
      local body = json.decode(resp.body or "")
      if body then
        rec.calls[#rec.calls + 1] = json.ordered({ operation = op, request = decode_body(req.body), response = body },
          { "operation", "request", "response" })
      end
    end
    return resp, err
  end
  return transport, rec
end

return M
