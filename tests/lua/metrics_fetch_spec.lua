-- Specs of lumu.metrics' history fetching: the calls it makes (pagination,
-- lookback, details only where needed), errors, hostile responses, and the
-- replay/record transports.
local metrics = require "lumu.metrics"
local history = require "lumu.metrics.history"
local json = require "lumu.json"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIX = here .. "/../fixtures/metrics"

local H, DAY = 3600, 86400
local T0 = 1709510400 -- 2024-03-04T00:00:00Z
local CREDS = { access_key_id = "AKIDTEST", secret_access_key = "secret" }

-- A real lumu.aws client over the replay transport; log gets "Op token|id".
local function replay(file, log)
  local rec = assert(metrics.load_recording(FIX .. "/" .. file))
  local inner = metrics.replay_transport(rec)
  local function transport(req)
    local body = json.decode(req.body)
    local op = req.headers["X-Amz-Target"]:gsub("^.*%.", "")
    log[#log + 1] = op .. " " .. tostring(body.nextToken or (body.filter and body.filter.pipelineExecutionId)
      or body.pipelineExecutionId or "")
    return inner(req)
  end
  return assert(metrics.client({ region = "us-east-1", env = {}, http = transport, credentials = CREDS }))
end

local function count(log, prefix)
  local n = 0
  for _, l in ipairs(log) do if l:sub(1, #prefix) == prefix then n = n + 1 end end
  return n
end

-- A test double: responses by operation, a function(params, n) or a list.
local function fake(handlers)
  local c = { log = {} }
  function c:call(op, params)
    self.log[#self.log + 1] = { op = op, params = params }
    local h = handlers[op]
    if h == nil then return nil, "fake: no " .. op end
    if type(h) == "function" then return h(params, #self.log) end
    return h
  end
  return c
end

local function summary(id, start_h, status, updated_h)
  return { pipelineExecutionId = id, status = status or "Succeeded", startTime = T0 + start_h * H,
    lastUpdateTime = T0 + (updated_h or start_h + 1) * H,
    sourceRevisions = { { actionName = "Source", revisionId = "r-" .. id } } }
end

local DEF = { pipeline = { name = "p", stages = {
  { name = "Source", actions = { { name = "Source", actionTypeId = { category = "Source", owner = "AWS", provider = "S3", version = "1" } } } },
  { name = "Prod", actions = { { name = "Deploy", actionTypeId = { category = "Deploy", owner = "AWS", provider = "ECS", version = "1" } } } },
} } }

local function actions_of(id, start_h, deploy_status)
  return { actionExecutionDetails = {
    { pipelineExecutionId = id, stageName = "Prod", actionName = "Deploy", status = deploy_status or "Succeeded",
      startTime = T0 + (start_h + 0.5) * H, lastUpdateTime = T0 + (start_h + 1) * H,
      input = { actionTypeId = { category = "Deploy", owner = "AWS", provider = "ECS", version = "1" } } },
    { pipelineExecutionId = id, stageName = "Source", actionName = "Source", status = "Succeeded",
      startTime = T0 + start_h * H, lastUpdateTime = T0 + (start_h + 0.1) * H,
      input = { actionTypeId = { category = "Source", owner = "AWS", provider = "S3", version = "1" } } },
  } }
end

describe("lumu.metrics.history: calls", function()
  it("reads the recorded svc history page by page (3 pages, never the 4th)", function()
    local log = {}
    local h = assert(metrics.fetch(replay("svc.json", log), { since = T0, ["until"] = T0 + 14 * DAY,
      pipelines = { "svc" } }))
    assert.are.equal(1, count(log, "GetPipeline "))
    assert.are.equal(3, count(log, "ListPipelineExecutions"))
    assert.are.equal(1, count(log, "ListPipelineExecutions svc-page-2"))
    assert.are.equal(1, count(log, "ListPipelineExecutions svc-page-3"))
    assert.are.equal(0, count(log, "ListPipelineExecutions svc-page-4"))
    -- S1..S12 in the window (+1 page for S10), S13 for the open outage; not S0
    assert.are.equal(14, count(log, "ListActionExecutions"))
    -- revisions only of the 5 executions that deployed in the window
    assert.are.equal(5, count(log, "GetPipelineExecution"))
    local p = h.pipelines[1]
    assert.are.equal(13, #p.executions)
    assert.are.same({ "Source", "Build", "Acceptance", "Production" },
      { p.stages[1].name, p.stages[2].name, p.stages[3].name, p.stages[4].name })
    assert.are.same({ "Approve", "Deploy", "Test" }, { p.stages[4].actions[1].name, p.stages[4].actions[2].name,
      p.stages[4].actions[3].name })
    -- timestamps come back as epoch seconds through the real client
    assert.are.equal("number", type(p.executions[1].start))
    assert.are.equal(1709510400 - 30 * 3600, p.executions[1].start)   -- S1
  end)

  it("lists every pipeline and keeps going past a broken one", function()
    local log = {}
    local h = assert(metrics.fetch(replay("account.json", log), { since = T0, ["until"] = T0 + 14 * DAY }))
    assert.are.equal(1, count(log, "ListPipelines"))
    assert.are.same({ "broken", "svc", "web" }, { h.pipelines[1].name, h.pipelines[2].name, h.pipelines[3].name })
    assert.matches("PipelineNotFoundException", h.pipelines[1].error)
    -- a named pipeline that fails fails the fetch
    local ok, err = metrics.fetch(replay("account.json", {}), { since = T0, ["until"] = T0 + DAY, pipelines = { "broken" } })
    assert.is_nil(ok)
    assert.are.equal("lumu.aws.Error", getmetatable(err).__name)
    assert.are.equal("PipelineNotFoundException", err.code)
  end)

  it("pages through three pages of a fake client and stops at since - lookback", function()
    local pages = {
      { pipelineExecutionSummaries = { summary("e5", 50), summary("e4", 40) }, nextToken = "t2" },
      { pipelineExecutionSummaries = { summary("e3", 30), summary("e2", -100, "Succeeded", 5) }, nextToken = "t3" },
      -- e1 starts before since - 8 days: the last page asked for
      { pipelineExecutionSummaries = { summary("e1", -150), summary("e0", -200) }, nextToken = "t4" },
    }
    local c = fake({
      GetPipeline = DEF,
      ListPipelineExecutions = function(p)
        if p.nextToken == nil then return pages[1] end
        if p.nextToken == "t2" then return pages[2] end
        if p.nextToken == "t3" then return pages[3] end
        error("page 4 asked for")
      end,
      ListActionExecutions = function(p)
        local id = p.filter.pipelineExecutionId
        local start = ({ e5 = 50, e4 = 40, e3 = 30, e2 = -100 })[id]
        assert(start, "details of " .. id .. " asked for")
        return actions_of(id, start)
      end,
      GetPipelineExecution = function(p)
        return { pipelineExecution = { pipelineExecutionId = p.pipelineExecutionId, artifactRevisions = {
          { name = "SourceOutput", revisionId = "r", created = T0 - 10 * DAY } } } }
      end,
    })
    local h = assert(metrics.fetch(c, { since = T0, ["until"] = T0 + 7 * DAY, pipelines = { "p" }, concurrency = 2 }))
    local ops = {}
    for _, l in ipairs(c.log) do ops[l.op] = (ops[l.op] or 0) + 1 end
    assert.are.same({ GetPipeline = 1, ListPipelineExecutions = 3, ListActionExecutions = 4, GetPipelineExecution = 3 }, ops)
    -- e2 started 100 h before since (within the lookback) and was updated in the window
    local ids = {}
    for _, e in ipairs(h.pipelines[1].executions) do ids[#ids + 1] = e.id end
    assert.are.same({ "e2", "e3", "e4", "e5" }, ids)
    local rep = metrics.compute(h, { since = T0, ["until"] = T0 + 7 * DAY })
    -- e2 deployed at -99h (before the window): 3 deployments
    assert.are.equal(3, rep.pipelines[1].deployments.count)
    assert.are.equal(30 * H + H + 10 * DAY, rep.pipelines[1].events[1].lead_time)
  end)

  it("with a short lookback, skips executions started before it", function()
    local c = fake({
      GetPipeline = DEF,
      ListPipelineExecutions = { pipelineExecutionSummaries = { summary("a", 10), summary("b", -30, "Succeeded", 2) } },
      ListActionExecutions = function(p) return actions_of(p.filter.pipelineExecutionId, 10) end,
      GetPipelineExecution = { pipelineExecution = {} },
    })
    local h = assert(metrics.fetch(c, { since = T0, ["until"] = T0 + DAY, pipelines = { "p" }, lookback = DAY }))
    assert.are.equal(1, #h.pipelines[1].executions)
  end)

  it("reads executions after the window only to close an open outage", function()
    local c = fake({
      GetPipeline = DEF,
      ListPipelineExecutions = { pipelineExecutionSummaries = { summary("late2", 40), summary("late1", 30),
        summary("fail", 10, "Failed") } },
      ListActionExecutions = function(p)
        local id = p.filter.pipelineExecutionId
        if id == "fail" then return actions_of(id, 10, "Failed") end
        if id == "late1" then return actions_of(id, 30, "Failed") end
        if id == "late2" then return actions_of(id, 40) end
        error(id)
      end,
      GetPipelineExecution = { pipelineExecution = {} },
    })
    local h = assert(metrics.fetch(c, { since = T0, ["until"] = T0 + DAY, pipelines = { "p" } }))
    assert.are.equal(3, #h.pipelines[1].executions)
    local r = metrics.compute(h, { since = T0, ["until"] = T0 + DAY }).pipelines[1]
    assert.are.equal(1, r.change_failure_rate.failures)
    assert.are.equal(41 * H - 11 * H, r.time_to_restore.median)   -- failed at 11h, late2 deployed at 41h
    -- no outage open at the end: nothing after the window is read
    c = fake({
      GetPipeline = DEF,
      ListPipelineExecutions = { pipelineExecutionSummaries = { summary("late", 30), summary("ok", 10) } },
      ListActionExecutions = function(p)
        assert(p.filter.pipelineExecutionId == "ok", "details of " .. p.filter.pipelineExecutionId)
        return actions_of("ok", 10)
      end,
      GetPipelineExecution = { pipelineExecution = {} },
    })
    assert.is_truthy(metrics.fetch(c, { since = T0, ["until"] = T0 + DAY, pipelines = { "p" } }))
  end)
end)

describe("lumu.metrics.history: errors and hostile responses", function()
  it("a repeated page token is an error, and so are too many pages", function()
    local c = fake({ GetPipeline = DEF,
      ListPipelineExecutions = { pipelineExecutionSummaries = { summary("a", 10) }, nextToken = "same" } })
    local ok, err = metrics.fetch(c, { since = T0, ["until"] = T0 + DAY, pipelines = { "p" } })
    assert.is_nil(ok)
    assert.matches("repeated the page token", err)
    local k = 0
    c = fake({ GetPipeline = DEF, ListPipelineExecutions = function()
      k = k + 1
      return { pipelineExecutionSummaries = { summary("a" .. k, 10) }, nextToken = "t" .. k }
    end })
    ok, err = metrics.fetch(c, { since = T0, ["until"] = T0 + DAY, pipelines = { "p" }, max_pages = 3 })
    assert.is_nil(ok)
    assert.matches("more than 3 pages", err)
  end)

  it("passes on errors of the detail calls", function()
    local c = fake({ GetPipeline = DEF,
      ListPipelineExecutions = { pipelineExecutionSummaries = { summary("a", 10), summary("b", 12) } },
      ListActionExecutions = function() return nil, "AccessDenied: not allowed" end })
    local ok, err = metrics.fetch(c, { since = T0, ["until"] = T0 + DAY, pipelines = { "p" } })
    assert.is_nil(ok)
    assert.matches("AccessDenied", err)
    c = fake({ GetPipeline = DEF,
      ListPipelineExecutions = { pipelineExecutionSummaries = { summary("a", 10) } },
      ListActionExecutions = actions_of("a", 10),
      GetPipelineExecution = function() return nil, "Throttled" end })
    ok, err = metrics.fetch(c, { since = T0, ["until"] = T0 + DAY, pipelines = { "p" } })
    assert.is_nil(ok)
    assert.matches("Throttled", err)
  end)

  it("tolerates missing and mistyped fields", function()
    local c = fake({
      GetPipeline = { pipeline = { stages = { { name = "Prod", actions = { { name = 7 }, "x" } }, "junk" } } },
      ListPipelineExecutions = { pipelineExecutionSummaries = {
        { pipelineExecutionId = "nostart" },
        { startTime = T0 + H },                                   -- no id
        { pipelineExecutionId = "x", startTime = "soon", status = {} },
        { pipelineExecutionId = "ok", startTime = T0 + H, sourceRevisions = "bad", trigger = 5 },
        "junk",
      } },
      ListActionExecutions = { actionExecutionDetails = { { stageName = {}, status = 3, input = "x" },
        { pipelineExecutionId = "other", stageName = "Prod", actionName = "Deploy", status = "Succeeded" }, 4 } },
      GetPipelineExecution = { pipelineExecution = { artifactRevisions = { { created = "yesterday" } } } },
    })
    local h = assert(metrics.fetch(c, { since = T0, ["until"] = T0 + DAY, pipelines = { "p" } }))
    assert.are.equal(1, #h.pipelines[1].executions)
    local e = h.pipelines[1].executions[1]
    assert.are.equal("ok", e.id)
    assert.are.equal(1, #e.actions)            -- the other execution's action is dropped
    local rep = metrics.compute(h, { since = T0, ["until"] = T0 + DAY })
    assert.are.equal(0, rep.pipelines[1].deployments.count)
  end)

  it("misuse raises", function()
    assert.error_matches(function() metrics.fetch(fake({}), {}) end, "opts.since and opts.until")
    assert.error_matches(function() metrics.replay_transport({}) end, "calls=")
    assert.error_matches(function() metrics.replay_transport({ calls = { { operation = 1 } } }) end, "calls%[1%]")
  end)
end)

describe("lumu.metrics: recordings", function()
  it("load_recording rejects what is not a recording", function()
    local dir = assert(require("lumu.fs").tmpdir("metrics-"))
    finally(function() require("lumu.fs").rmtree(dir) end)
    local function file(name, text)
      local p = dir .. "/" .. name
      assert(require("lumu.fs").write(p, text))
      return p
    end
    local ok, err = metrics.load_recording(file("a.json", "{"))
    assert.is_nil(ok)
    assert.matches("a.json:", err)
    ok, err = metrics.load_recording(file("b.json", "[1, 2]"))
    assert.is_nil(ok)
    assert.matches("not a lumu metrics recording", err)
    ok, err = metrics.load_recording(file("c.json", '{"calls": [{"operation": "X"}]}'))
    assert.is_nil(ok)
    assert.matches("calls%[0%]", err)
    ok, err = metrics.load_recording(dir .. "/missing.json")
    assert.is_nil(ok)
    assert.matches("No such file", err)
  end)

  it("the replay transport answers unrecorded calls with service errors", function()
    local c = replay("svc.json", {})
    local res, err = c:call("ListPipelineExecutions", { pipelineName = "svc", nextToken = "svc-page-4" })
    assert.is_nil(res)
    assert.are.equal("ValidationException", err.code)
    assert.matches("no recorded response", err.message)
    res, err = c:call("GetPipeline", { name = "elsewhere" })
    assert.is_nil(res)
    assert.are.equal("PipelineNotFoundException", err.code)
  end)

  it("records what it reads, and the recording replays to the same report", function()
    local rec0 = assert(metrics.load_recording(FIX .. "/svc.json"))
    local transport, rec = metrics.recording_transport(metrics.replay_transport(rec0))
    local c = assert(metrics.client({ region = "us-east-1", env = {}, http = transport, credentials = CREDS }))
    local w = { since = T0, ["until"] = T0 + 14 * DAY, pipelines = { "svc" } }
    local h1 = assert(metrics.fetch(c, w))
    assert.are.equal(23, #rec.calls)            -- every recorded call of svc.json is needed
    local again = json.decode(json.encode(rec))
    local c2 = assert(metrics.client({ region = "us-east-1", env = {}, http = metrics.replay_transport(again),
      credentials = CREDS }))
    local h2 = assert(metrics.fetch(c2, w))
    local r1 = metrics.json(metrics.compute(h1, w))
    assert.are.equal(r1, metrics.json(metrics.compute(h2, w)))
    -- failed calls are not recorded
    local before = #rec.calls
    assert.is_nil(c:call("GetPipeline", { name = "elsewhere" }))
    assert.are.equal(before, #rec.calls)
  end)
end)
