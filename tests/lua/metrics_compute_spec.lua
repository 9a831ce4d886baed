-- Specs of lumu.metrics' computation: the recorded histories in
-- tests/fixtures/metrics (CodePipeline API responses, replayed through a
-- real lumu.aws client) with hand-computed answers, and edge cases on
-- hand-built histories.
local metrics = require "lumu.metrics"
local compute = require "lumu.metrics.compute"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIX = here .. "/../fixtures/metrics"

local H = 3600
local DAY = 86400
-- 2024-03-04T00:00:00Z, a Monday: every fixture time is T0 + hours
local T0 = 1709510400
local W = { since = T0, ["until"] = T0 + 14 * DAY }

local function replay_client(file)
  local rec = assert(metrics.load_recording(FIX .. "/" .. file))
  return assert(metrics.client({ region = "us-east-1", env = {}, http = metrics.replay_transport(rec),
    credentials = { access_key_id = "AKIDTEST", secret_access_key = "secret" } }))
end

local function report_of(file, pipelines, opts)
  local h = assert(metrics.fetch(replay_client(file), { since = W.since, ["until"] = W["until"], pipelines = pipelines }))
  opts = opts or {}
  return metrics.compute(h, { since = W.since, ["until"] = W["until"], stage = opts.stage, action = opts.action }), h
end

local function by_name(rep, name)
  for _, r in ipairs(rep.pipelines) do if r.name == name then return r end end
  error("no pipeline " .. name)
end

--[[ The recorded pipeline "svc" (tests/fixtures/metrics/svc.json): stages
Source, Build, Acceptance, Production (Approve: Approval; Deploy: CodeBuild,
category Build, so the deploy action is found by its name; Test: Test).
Window [T0, T0+336h) = 2024-03-04 .. 2024-03-18, two weeks.  Executions
(hours from T0; "created" = the artifact revision's created time):
  S0  start -300h: older than since - 8 days (-192h): never read in detail
  S1  start -30h, created -32h, prod Deploy ok at +2h      deployment, lead 2+32 = 34h
  S2  start 24h, no created time; Source action starts 24h, Deploy ok 26h
                                                            deployment, lead 26-24 = 2h
  S3  Build fails at 48.5h                                  before production: nothing
  S4  prod Deploy fails at 75h                              change failure; outage opens at 75h
  S5  created 75.5h, Deploy ok at 78h                       deployment, lead 2.5h; restore 78-75 = 3h
  S6  superseded in Build (Abandoned)                       nothing
  S7  approval rejected at 122h                             nothing
  S8  Deploy ok 173h, prod Test fails 174h                  change failure at 174h; outage opens
  S9  Deploy fails 183h                                     change failure (same outage)
  S10 created 186h, Deploy ok 194h (actions in 2 pages)     deployment, lead 8h; restore 194-174 = 20h
  S11 re-run of S10's commit, Deploy ok 203h                deployment, no lead time (redeploy)
  S12 Deploy fails 310h                                     change failure; outage opens at 310h
  S13 start 340h (after until), Deploy ok 345h              not in the window; restores S12: 345-310 = 35h
ListPipelineExecutions: 3 pages of 5/5/4 (page 3 still has a nextToken, but
reaches before since - lookback, so page 4 is never asked for).

svc in the window:
  deployments 5 (S1 S2 S5 S10 S11); failures 4 (S4 S8 S9 S12); attempts 9
  change failure rate 4/9 = 0.4444 (<= 0.45: medium)
  per day 5/14 = 0.357142..., per week 2.5 (>= 1/7: high)
  lead times {34, 2, 2.5, 8} h, sorted {2, 2.5, 8, 34}:
    median (2.5 + 8)/2 = 5.25h = 18900 s (< 1 day: elite)
    p90 rank ceil(0.9*4) = 4 -> 34h = 122400 s; mean 46.5/4 = 11.625h = 41850 s
  outages {3, 20, 35} h: median 20h = 72000 s (< 1 day: high);
    p90 rank ceil(2.7) = 3 -> 35h = 126000 s; mean 58h/3 = 69600 s; open 0
  week of 03-04: deployments 3 (S1 S2 S5), failures 1 (S4): rate 1/4 = 0.25,
    lead median of {34, 2, 2.5} = 2.5h = 9000 s, restore median {3h} = 10800 s
  week of 03-11: deployments 2 (S10 S11), failures 3 (S8 S9 S12): rate 3/5 = 0.6,
    lead median {8h} = 28800 s, restore median of {20, 35} = 27.5h = 99000 s
  executions started in the window: S2 .. S12 = 11

Pipeline "web" (account.json): stages Source, Build, Staging (Deploy-Staging,
category Deploy), Prod-EU (Approve, Deploy-EU: category Deploy), Verify
(Smoke: a later stage).  "Prod-EU" is the production stage by its name.
  W1 created 9h, Deploy-EU ok 11h, Smoke ok             deployment, lead 2h
  W2 Deploy-EU ok 31h, Smoke (later stage) fails 31.5h  change failure at 31.5h
  W3 created 39h, Deploy-EU ok 41h                      deployment, lead 2h; restore 41-31.5 = 9.5h
  deployments 2, per day 2/14 = 1/7 exactly (>= 1/7: high), failures 1,
  rate 1/3 (medium); lead median 2h = 7200 s; restore median 9.5h = 34200 s (high)
All pipelines (svc + web; "broken" is listed but has no recorded calls):
  deployments 7, per day 0.5 (band of the mean per pipeline 0.25: high)
  failures 5, attempts 12, rate 5/12 = 0.41667 (medium)
  lead {2, 2, 2, 2.5, 8, 34} h: median (2 + 2.5)/2 = 2.25h = 8100 s; p90 rank 6 -> 34h
  restores {3, 9.5, 20, 35} h: median (9.5 + 20)/2 = 14.75h = 53100 s; p90 rank 4 -> 35h
]]
describe("lumu.metrics: recorded histories with known answers", function()
  it("computes the four metrics of svc", function()
    local rep = report_of("svc.json", { "svc" })
    assert.are.equal(1, #rep.pipelines)
    local r = rep.pipelines[1]
    assert.is_nil(r.error)
    assert.are.equal("Production", r.stage)
    assert.are.same({ "Deploy" }, r.actions)
    assert.are.equal(11, r.executions)
    assert.are.same({ Succeeded = 4, Failed = 6, Superseded = 1 }, r.statuses)
    assert.are.equal(5, r.deployments.count)
    assert.is_true(math.abs(r.deployments.per_day - 5 / 14) < 1e-12)
    assert.is_true(math.abs(r.deployments.per_week - 2.5) < 1e-12)
    assert.are.equal("high", r.deployments.band)
    assert.are.equal(4, r.lead_time.count)
    assert.are.equal(18900, r.lead_time.median)
    assert.are.equal(122400, r.lead_time.p90)
    assert.are.equal(41850, r.lead_time.mean)
    assert.are.equal(7200, r.lead_time.min)
    assert.are.equal("elite", r.lead_time.band)
    assert.are.equal(4, r.change_failure_rate.failures)
    assert.are.equal(9, r.change_failure_rate.attempts)
    assert.is_true(math.abs(r.change_failure_rate.rate - 4 / 9) < 1e-12)
    assert.are.equal("medium", r.change_failure_rate.band)
    assert.are.equal(3, r.time_to_restore.count)
    assert.are.equal(0, r.time_to_restore.open)
    assert.are.equal(72000, r.time_to_restore.median)
    assert.are.equal(126000, r.time_to_restore.p90)
    assert.are.equal(69600, r.time_to_restore.mean)
    assert.are.equal("high", r.time_to_restore.band)
  end)

  it("splits svc into weeks", function()
    local r = report_of("svc.json", { "svc" }).pipelines[1]
    assert.are.equal(2, #r.weeks)
    local w1, w2 = r.weeks[1], r.weeks[2]
    assert.are.equal(T0, w1.start)
    assert.are.equal(T0 + 7 * DAY, w2.start)
    assert.are.same({ 3, 1, 4, 0.25, 9000, 10800 },
      { w1.deployments, w1.failures, w1.attempts, w1.change_failure_rate, w1.lead_time_median, w1.restore_median })
    assert.are.same({ 2, 3, 5, 0.6, 28800, 99000 },
      { w2.deployments, w2.failures, w2.attempts, w2.change_failure_rate, w2.lead_time_median, w2.restore_median })
  end)

  it("lists svc's events and outages with their causes", function()
    local r = report_of("svc.json", { "svc" }).pipelines[1]
    local kinds = {}
    for _, ev in ipairs(r.events) do kinds[#kinds + 1] = ev.kind:sub(1, 1) .. ((ev.time - T0) // H) end
    -- d = deployment, f = failure, at hours from T0
    assert.are.same({ "d2", "d26", "f75", "d78", "f174", "f183", "d194", "d203", "f310" }, kinds)
    assert.are.equal("revision", r.events[1].change_from)    -- S1: artifact revision created
    assert.are.equal(T0 - 32 * H, r.events[1].change_time)
    assert.are.equal("source", r.events[2].change_from)      -- S2: no created time
    assert.is_true(r.events[8].redeploy)                     -- S11: S10's commit again
    assert.is_nil(r.events[8].lead_time)
    assert.matches("Production%.Test failed after the production deploy", r.events[5].reason)
    assert.matches("production deploy action Deploy failed", r.events[6].reason)
    assert.are.equal(3, #r.outages)
    assert.are.same({ 75, 174, 310 }, { (r.outages[1].start - T0) // H, (r.outages[2].start - T0) // H,
      (r.outages[3].start - T0) // H })
    assert.are.equal(2, r.outages[2].failures)               -- S8 and S9
    assert.are.equal(T0 + 345 * H, r.outages[3]["end"])      -- restored by S13, after the window
  end)

  it("computes web (Deploy category, a later stage's failure) and the total", function()
    local rep = report_of("account.json")
    assert.are.same({ "broken", "svc", "web" }, { rep.pipelines[1].name, rep.pipelines[2].name, rep.pipelines[3].name })
    assert.matches("PipelineNotFoundException", rep.pipelines[1].error)
    local w = by_name(rep, "web")
    assert.are.equal("Prod-EU", w.stage)
    assert.are.same({ "Deploy-EU" }, w.actions)
    assert.are.equal(2, w.deployments.count)
    assert.are.equal("high", w.deployments.band)              -- 2/14 == 1/7: the boundary is inclusive
    assert.are.same({ 1, 3 }, { w.change_failure_rate.failures, w.change_failure_rate.attempts })
    assert.are.equal("medium", w.change_failure_rate.band)
    assert.are.equal(7200, w.lead_time.median)
    assert.are.equal(34200, w.time_to_restore.median)
    assert.matches("Verify%.Smoke failed after the production deploy", w.events[2].reason)
    local t = rep.total
    assert.are.equal(2, t.pipelines)
    assert.are.equal(7, t.deployments.count)
    assert.are.equal(0.5, t.deployments.per_day)
    assert.are.equal("high", t.deployments.band)
    assert.are.same({ 5, 12 }, { t.change_failure_rate.failures, t.change_failure_rate.attempts })
    assert.are.equal("medium", t.change_failure_rate.band)
    assert.are.equal(6, t.lead_time.count)
    assert.are.equal(8100, t.lead_time.median)
    assert.are.equal(122400, t.lead_time.p90)
    assert.are.equal(4, t.time_to_restore.count)
    assert.are.equal(53100, t.time_to_restore.median)
    assert.are.equal(126000, t.time_to_restore.p90)
    assert.are.same({ 5, 2 }, { t.weeks[1].deployments, t.weeks[2].deployments })
  end)

  it("takes --stage and --action", function()
    -- Acceptance as "production": its Deploy action succeeds in S1 (-29.2h,
    -- before the window), S2, S4, S5, S7, S8, S9, S10, S11, S12; of these,
    -- S4, S9, S12 (Production Deploy) and S8 (Production Test) fail in a
    -- later stage: change failures; S7's rejected approval is not one.
    -- Deployments: S2 S5 S7 S10 S11 = 5, failures 4.
    local rep = report_of("svc.json", { "svc" }, { stage = "Acceptance" })
    local r = rep.pipelines[1]
    assert.are.equal("Acceptance", r.stage)
    assert.are.equal(5, r.deployments.count)
    assert.are.equal(4, r.change_failure_rate.failures)
    -- an unknown stage: a warning, no events
    r = report_of("svc.json", { "svc" }, { stage = "Nope" }).pipelines[1]
    assert.are.equal(0, r.deployments.count)
    assert.matches("no stage 'Nope' %(stages: Source, Build, Acceptance, Production%)", r.warnings[1])
    r = report_of("svc.json", { "svc" }, { action = "Approve" }).pipelines[1]
    assert.are.same({ "Approve" }, r.actions)
    r = report_of("svc.json", { "svc" }, { action = "Nope" }).pipelines[1]
    assert.matches("no action 'Nope' in stage 'Production'", r.warnings[1])
  end)
end)

-- ---------------------------------------------------------------------------
-- Hand-built histories
-- ---------------------------------------------------------------------------

local STAGES = {
  { name = "Source", actions = { { name = "Source", category = "Source" } } },
  { name = "Build", actions = { { name = "Build", category = "Build" } } },
  { name = "Prod", actions = { { name = "Approve", category = "Approval" }, { name = "Deploy", category = "Deploy" },
    { name = "Smoke", category = "Test" } } },
}

local n = 0
-- An execution starting at hour `s` whose actions are { stage, name,
-- category, status, start hour, end hour }.
local function ex(status, s, acts, extra)
  n = n + 1
  local e = { id = "e" .. n, status = status, start = T0 + s * H, updated = T0 + s * H, actions = {},
    source_revisions = { { action = "Source", revision_id = "rev" .. n } } }
  for _, a in ipairs(acts) do
    e.actions[#e.actions + 1] = { stage = a[1], name = a[2], category = a[3], status = a[4], start = T0 + a[5] * H,
      updated = T0 + a[6] * H }
    if T0 + a[6] * H > e.updated then e.updated = T0 + a[6] * H end
  end
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

-- A normal run: source at s, deploy ending at d with `deploy` status, smoke after.
local function run(status, s, d, deploy, smoke)
  local acts = { { "Source", "Source", "Source", "Succeeded", s, s + 0.1 },
    { "Build", "Build", "Build", "Succeeded", s + 0.1, s + 0.2 },
    { "Prod", "Approve", "Approval", "Succeeded", s + 0.2, d - 0.5 },
    { "Prod", "Deploy", "Deploy", deploy or "Succeeded", d - 0.5, d } }
  if (deploy or "Succeeded") == "Succeeded" then
    acts[#acts + 1] = { "Prod", "Smoke", "Test", smoke or "Succeeded", d, d + 0.25 }
  end
  return ex(status, s, acts)
end

local function report(execs, w, opts)
  return compute.report({ pipelines = { { name = "p", stages = STAGES, executions = execs } } }, w or W, opts)
end

describe("lumu.metrics: edge cases", function()
  it("no executions: zero counts, no medians, low frequency", function()
    local rep = report({})
    local r = rep.pipelines[1]
    assert.are.equal(0, r.deployments.count)
    assert.are.equal(0, r.deployments.per_day)
    assert.are.equal("low", r.deployments.band)
    assert.is_nil(r.lead_time.median)
    assert.is_nil(r.lead_time.band)
    assert.is_nil(r.change_failure_rate.rate)
    assert.is_nil(r.change_failure_rate.band)
    assert.is_nil(r.time_to_restore.median)
    assert.are.equal(2, #r.weeks)
    assert.are.equal(0, r.weeks[1].deployments)
    -- no pipelines at all
    local empty = compute.report({ pipelines = {} }, W)
    assert.are.equal(0, empty.total.pipelines)
    assert.are.equal(0, empty.total.deployments.count)
  end)

  it("all failed: rate 1, the outage stays open", function()
    local rep = report({ run("Failed", 1, 3, "Failed"), run("Failed", 10, 12, "Failed"), run("Failed", 20, 22, "Failed") })
    local r = rep.pipelines[1]
    assert.are.equal(0, r.deployments.count)
    assert.are.same({ 3, 3, 1 }, { r.change_failure_rate.failures, r.change_failure_rate.attempts,
      r.change_failure_rate.rate })
    assert.are.equal("low", r.change_failure_rate.band)
    assert.are.equal(1, #r.outages)                -- one outage of three failures
    assert.is_true(r.outages[1].open)
    assert.are.equal(3, r.outages[1].failures)
    assert.are.equal(0, r.time_to_restore.count)
    assert.are.equal(1, r.time_to_restore.open)
    assert.is_nil(r.time_to_restore.median)
  end)

  it("window boundaries: since is in, until is out", function()
    -- deployments exactly at since (T0) and exactly at until (T0 + 48h)
    local w = { since = T0, ["until"] = T0 + 48 * H }
    local rep = report({ run("Succeeded", -5, 0), run("Succeeded", 20, 24), run("Succeeded", 40, 48) }, w)
    local r = rep.pipelines[1]
    assert.are.equal(2, r.deployments.count)      -- at 0h and 24h; 48h is the next window's
    assert.are.equal(1, r.deployments.per_day)    -- 2 in 2 days
    assert.are.equal("elite", r.deployments.band)
    -- a failure 1 s before until counts; its restore after the window is used
    local e = run("Failed", 40, 48, "Failed")
    e.actions[4].updated = T0 + 48 * H - 1
    rep = report({ e, run("Succeeded", 50, 60) }, w)
    r = rep.pipelines[1]
    assert.are.same({ 0, 1 }, { r.deployments.count, r.change_failure_rate.failures })
    assert.are.equal(12 * H + 1, r.time_to_restore.median)
    -- an outage opened before since and restored inside is not counted
    rep = report({ run("Failed", -10, -5, "Failed"), run("Succeeded", 1, 2) }, w)
    r = rep.pipelines[1]
    assert.are.equal(1, r.deployments.count)
    assert.are.equal(0, r.change_failure_rate.failures)
    assert.are.equal(0, r.time_to_restore.count)
    -- weeks cut by the window: a Wednesday-to-Wednesday window has 2 weeks
    rep = report({}, { since = T0 + 2 * DAY, ["until"] = T0 + 9 * DAY })
    assert.are.equal(2, #rep.pipelines[1].weeks)
    assert.are.equal(T0, rep.pipelines[1].weeks[1].start)
  end)

  it("superseded, stopped, abandoned and rejected executions", function()
    local superseded = ex("Superseded", 1, { { "Source", "Source", "Source", "Succeeded", 1, 1.1 },
      { "Build", "Build", "Build", "Abandoned", 1.1, 1.5 } })
    local rejected = ex("Failed", 2, { { "Source", "Source", "Source", "Succeeded", 2, 2.1 },
      { "Prod", "Approve", "Approval", "Failed", 2.2, 3 } })
    local abandoned = ex("Stopped", 4, { { "Source", "Source", "Source", "Succeeded", 4, 4.1 },
      { "Prod", "Deploy", "Deploy", "Abandoned", 4.2, 5 } })
    -- stopped after its deploy succeeded: the change is live, a deployment
    local stopped = ex("Stopped", 6, { { "Source", "Source", "Source", "Succeeded", 6, 6.1 },
      { "Prod", "Deploy", "Deploy", "Succeeded", 6.2, 7 }, { "Prod", "Smoke", "Test", "Abandoned", 7, 7.5 } })
    local inprogress = ex("InProgress", 8, { { "Source", "Source", "Source", "Succeeded", 8, 8.1 },
      { "Prod", "Deploy", "Deploy", "InProgress", 8.2, 8.3 } })
    local r = report({ superseded, rejected, abandoned, stopped, inprogress }).pipelines[1]
    assert.are.equal(5, r.executions)
    assert.are.equal(1, r.deployments.count)
    assert.are.equal(0, r.change_failure_rate.failures)
    assert.are.equal(1, r.change_failure_rate.attempts)
    assert.are.equal(T0 + 7 * H, r.events[1].time)
    assert.are.equal(7 * H - 6 * H, r.events[1].lead_time)   -- from the source action's start
  end)

  it("a retried deploy: a failure and its restore in one execution", function()
    local e = ex("Succeeded", 1, { { "Source", "Source", "Source", "Succeeded", 1, 1.1 },
      { "Prod", "Deploy", "Deploy", "Failed", 2, 3 }, { "Prod", "Deploy", "Deploy", "Succeeded", 4, 5 },
      { "Prod", "Smoke", "Test", "Succeeded", 5, 6 } })
    local r = report({ e }).pipelines[1]
    assert.are.same({ 1, 1 }, { r.deployments.count, r.change_failure_rate.failures })
    assert.are.equal(2 * H, r.time_to_restore.median)   -- failed at 3h, deployed at 5h
    -- a post-deploy test failure retried to success: failure at 6h, deployed at 8h
    e = ex("Succeeded", 1, { { "Source", "Source", "Source", "Succeeded", 1, 1.1 },
      { "Prod", "Deploy", "Deploy", "Succeeded", 4, 5 }, { "Prod", "Smoke", "Test", "Failed", 5, 6 },
      { "Prod", "Smoke", "Test", "Succeeded", 7, 8 } })
    r = report({ e }).pipelines[1]
    assert.are.same({ 1, 1 }, { r.deployments.count, r.change_failure_rate.failures })
    assert.are.equal(T0 + 8 * H, r.events[2].time)
    assert.are.equal(2 * H, r.time_to_restore.median)
    assert.are.equal("succeeded after a retry", r.events[2].reason)
  end)

  it("parallel deploy actions: all must succeed, the last one is the time", function()
    local stages = { { name = "Deploy-Prod", actions = { { name = "EU", category = "Deploy" }, { name = "US", category = "Deploy" } } } }
    local ok = ex("Succeeded", 1, { { "Deploy-Prod", "EU", "Deploy", "Succeeded", 2, 3 },
      { "Deploy-Prod", "US", "Deploy", "Succeeded", 2, 4 } })
    local half = ex("Failed", 10, { { "Deploy-Prod", "EU", "Deploy", "Succeeded", 11, 12 },
      { "Deploy-Prod", "US", "Deploy", "Failed", 11, 13 } })
    local rep = compute.report({ pipelines = { { name = "p", stages = stages, executions = { ok, half } } } }, W)
    local r = rep.pipelines[1]
    assert.are.same({ "EU", "US" }, r.actions)
    assert.are.equal(1, r.deployments.count)
    assert.are.equal(T0 + 4 * H, r.events[1].time)
    assert.are.equal(1, r.change_failure_rate.failures)
  end)

  it("re-runs of a commit count as deployments, not as changes", function()
    local a = run("Succeeded", 1, 3)
    local b = run("Succeeded", 5, 7)
    b.source_revisions = a.source_revisions
    local r = report({ a, b }).pipelines[1]
    assert.are.equal(2, r.deployments.count)
    assert.are.equal(1, r.lead_time.count)
  end)

  it("prefers the newest artifact revision created time not after the deploy", function()
    local e = run("Succeeded", 10, 14)
    e.revisions = { { name = "A", revision_id = "x", created = T0 + 2 * H }, { name = "B", revision_id = "y",
      created = T0 + 8 * H }, { name = "C", revision_id = "z", created = T0 + 20 * H } }
    local r = report({ e }).pipelines[1]
    assert.are.equal(6 * H, r.lead_time.median)          -- 14h - 8h (C is after the deploy)
    assert.are.equal("revision", r.events[1].change_from)
  end)
end)

describe("lumu.metrics: production stage and deploy action", function()
  local function prod(stages, opts)
    return compute.production({ stages = stages, executions = {} }, opts)
  end
  local function st(name, acts)
    local a = {}
    for i, x in ipairs(acts or {}) do a[i] = { name = x[1], category = x[2] } end
    return { name = name, actions = a }
  end

  it("chooses the last stage named *prod*, else the last stage", function()
    assert.are.equal("Production", prod({ st("Source", { { "S", "Source" } }), st("Preprod", { { "D", "Deploy" } }),
      st("Production", { { "D", "Deploy" } }), st("Verify", { { "T", "Test" } }) }).stage)
    local p = prod({ st("Source", { { "S", "Source" } }), st("PROD-eu", { { "D", "Deploy" } }), st("Verify", { { "T", "Test" } }) })
    assert.are.equal("PROD-eu", p.stage)
    assert.is_true(p.later.Verify)
    assert.are.equal("Live", prod({ st("Source", { { "S", "Source" } }), st("Live", { { "Ship", "Deploy" } }) }).stage)
  end)

  it("chooses Deploy actions, else *deploy*, else not Approval/Test, else not Approval", function()
    local function acts(list) return prod({ st("Prod", list) }).actions end
    assert.are.same({ "A", "B" }, acts({ { "Approve", "Approval" }, { "A", "Deploy" }, { "B", "Deploy" }, { "RunDeploy", "Build" } }))
    assert.are.same({ "RunDeploy" }, acts({ { "Approve", "Approval" }, { "RunDeploy", "Build" }, { "X", "Build" } }))
    assert.are.same({ "X" }, acts({ { "Approve", "Approval" }, { "X", "Build" }, { "T", "Test" } }))
    assert.are.same({ "T" }, acts({ { "Approve", "Approval" }, { "T", "Test" } }))
    local p, err = prod({ st("Prod", { { "Approve", "Approval" } }) })
    assert.is_nil(p)
    assert.matches("has no deploy action", err)
    p, err = prod({})
    assert.is_nil(p)
    assert.matches("no stages known", err)
  end)

  it("infers the stage order from action executions without a definition", function()
    local e1 = ex("Succeeded", 0, { { "Source", "Source", "Source", "Succeeded", 0, 0.1 },
      { "Ship", "Deploy", "Deploy", "Succeeded", 2, 3 }, { "Build", "Build", "Build", "Succeeded", 0.1, 1 } })
    local stages, how = compute.stages_of({ executions = { e1 } })
    assert.are.equal("inferred", how)
    assert.are.same({ "Source", "Build", "Ship" }, { stages[1].name, stages[2].name, stages[3].name })
    local rep = compute.report({ pipelines = { { name = "p", executions = { e1 } } } }, W)
    assert.are.equal("Ship", rep.pipelines[1].stage)
    assert.are.equal(1, rep.pipelines[1].deployments.count)
  end)
end)

describe("lumu.metrics: statistics and bands", function()
  it("median and nearest-rank p90", function()
    assert.is_nil(compute.median({}))
    assert.are.equal(5, compute.median({ 5 }))
    assert.are.equal(2.5, compute.median({ 4, 1, 3, 2 }))
    assert.are.equal(2, compute.median({ 3, 1, 2 }))
    assert.are.equal(9, compute.percentile({ 10, 9, 8, 7, 6, 5, 4, 3, 2, 1 }, 90))   -- rank 9 of 10
    assert.are.equal(10, compute.percentile({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 }, 90)) -- rank ceil(9.9) = 10
    assert.are.equal(7, compute.percentile({ 7 }, 90))
    local v = { 3, 1, 2 }
    compute.median(v)
    assert.are.same({ 3, 1, 2 }, v)   -- the input is not sorted in place
  end)

  it("DORA bands at their limits", function()
    assert.are.equal("elite", compute.band("deployment_frequency", 1))
    assert.are.equal("high", compute.band("deployment_frequency", 0.999))
    assert.are.equal("high", compute.band("deployment_frequency", 1 / 7))
    assert.are.equal("medium", compute.band("deployment_frequency", 1 / 30))
    assert.are.equal("low", compute.band("deployment_frequency", 0.03))
    assert.are.equal("elite", compute.band("lead_time", DAY - 1))
    assert.are.equal("high", compute.band("lead_time", DAY))
    assert.are.equal("medium", compute.band("lead_time", 7 * DAY))
    assert.are.equal("low", compute.band("lead_time", 30 * DAY))
    assert.are.equal("elite", compute.band("time_to_restore", H - 1))
    assert.are.equal("high", compute.band("time_to_restore", H))
    assert.are.equal("medium", compute.band("time_to_restore", DAY))
    assert.are.equal("low", compute.band("time_to_restore", 7 * DAY))
    assert.are.equal("elite", compute.band("change_failure_rate", 0.15))
    assert.are.equal("high", compute.band("change_failure_rate", 0.1501))
    assert.are.equal("medium", compute.band("change_failure_rate", 0.45))
    assert.are.equal("low", compute.band("change_failure_rate", 0.46))
    assert.is_nil(compute.band("lead_time", nil))
    assert.has_error(function() compute.band("speed", 1) end)
  end)

  it("weeks start on Monday 00:00 UTC", function()
    assert.are.equal(T0, compute.week_start(T0))
    assert.are.equal(T0, compute.week_start(T0 + 7 * DAY - 1))
    assert.are.equal(T0 - 7 * DAY, compute.week_start(T0 - 1))
    assert.are.equal(-3 * DAY, compute.week_start(0))    -- 1970-01-01 was a Thursday
  end)

  it("rejects empty windows and bad arguments", function()
    assert.error_matches(function() metrics.compute({ pipelines = {} }, { since = T0, ["until"] = T0 }) end, "empty")
    assert.error_matches(function() metrics.compute({ pipelines = {} }, {}) end, "since=, until=")
    assert.error_matches(function() metrics.compute(nil, W) end, "history table expected")
  end)

  it("parses windows", function()
    local now = T0 + 100
    local s, u = metrics.window({}, now)
    assert.are.same({ now - 30 * DAY, now }, { s, u })
    s, u = metrics.window({ since = "2w", ["until"] = "2024-03-18" }, now)
    assert.are.same({ T0, T0 + 14 * DAY }, { s, u })
    s, u = metrics.window({ since = "2024-03-04T00:00:00Z", ["until"] = "1d" }, T0 + 3 * DAY)
    assert.are.same({ T0, T0 + 2 * DAY }, { s, u })
    local ok, err = metrics.window({ since = "yesterday" }, now)
    assert.is_nil(ok)
    assert.matches("neither a duration", err)
    ok, err = metrics.window({ since = "2024-03-05", ["until"] = "2024-03-04" }, now)
    assert.is_nil(ok)
    assert.matches("window is empty", err)
  end)
end)
