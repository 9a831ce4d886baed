-- Specs of `lumu metrics` (lumu.cli.metrics) on recorded histories
-- (--history): text, JSON, HTML to a file, the stack template, exit codes.
local cli = require "lumu.cli"
local cmd = require "lumu.cli.metrics"
local json = require "lumu.json"
local fs = require "lumu.fs"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIX = here .. "/../fixtures/metrics"
local WINDOW = { "--since", "14d", "--until", "2024-03-18T00:00:00Z" }

local function buffer()
  local b = { parts = {} }
  function b:write(...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function b:text() return table.concat(self.parts) end
  return b
end

-- Runs `lumu metrics ARGS` as the dispatcher would: -> rc, stdout, stderr
local function run(args, now)
  local out, err = buffer(), buffer()
  local opts, pos = cli.parse(cmd.options, args)
  if not opts then return 2, "", pos end
  local r1, r2, r3 = cmd.run({ stdout = out, stderr = err, now = now }, pos, opts)
  local rc
  if r1 == nil and r2 ~= nil then
    err:write("lumu: ", r2, "\n")
    rc = r3 or 1
  else
    rc = r1 or 0
  end
  return rc, out:text(), err:text()
end

local function with(list, ...)
  local t = table.move(list, 1, #list, 1, {})
  for i = 1, select("#", ...) do t[#t + 1] = select(i, ...) end
  return t
end

describe("lumu metrics", function()
  it("prints the text table of a recorded pipeline", function()
    local rc, out, err = run(with(WINDOW, "--history", FIX .. "/svc.json", "svc"))
    assert.are.equal(0, rc)
    assert.are.equal("", err)
    assert.matches("^Delivery metrics, 2024%-03%-04 00:00 to 2024%-03%-18 00:00 UTC %(14 days%)\n", out)
    assert.matches("\nsvc%s+Production%s+5%s+2.5/week %(high%)%s+5h 15m / 1d 10h %(elite%)", out)
    assert.is_nil(out:find("per week (weeks", 1, true))
    rc, out = run(with(WINDOW, "--history", FIX .. "/svc.json", "--weekly", "svc"))
    assert.are.equal(0, rc)
    assert.matches("svc, per week", out)
  end)

  it("reports every pipeline, and exits 1 when one cannot be read", function()
    local rc, out, err = run(with(WINDOW, "--history", FIX .. "/account.json"))
    assert.are.equal(1, rc)
    assert.matches("\nweb%s+Prod%-EU", out)
    assert.matches("\nall %(2%)", out)
    assert.matches("^lumu: metrics: broken: codepipeline GetPipeline: PipelineNotFoundException", err)
    -- a named pipeline that does not exist: no report
    rc, out, err = run(with(WINDOW, "--history", FIX .. "/account.json", "nope"))
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.matches("PipelineNotFoundException", err)
  end)

  it("prints JSON that parses", function()
    local rc, out = run(with(WINDOW, "--history", FIX .. "/account.json", "-o", "json", "svc", "web"))
    assert.are.equal(0, rc)
    local d = assert(json.decode(out))
    assert.are.equal(2, #d.pipelines)
    assert.are.equal(18900, d.pipelines[1].lead_time.median)
    assert.are.equal(34200, d.pipelines[2].time_to_restore.median)
    assert.are.equal(53100, d.total.time_to_restore.median)
    assert.are.equal("2024-03-04T00:00:00Z", d.window.since)
  end)

  it("writes the HTML report to a file", function()
    local dir = assert(fs.tmpdir("metrics-cli-"))
    finally(function() fs.rmtree(dir) end)
    local rc, out = run(with(WINDOW, "--history", FIX .. "/svc.json", "-o", "html", "--file", dir .. "/r.html", "svc"))
    assert.are.equal(0, rc)
    assert.are.equal("", out)
    local html = assert(fs.read(dir .. "/r.html"))
    assert.matches("^<!DOCTYPE html>", html)
    assert.matches('<svg class="chart bars" id="pipeline%-svc%-deploys"', html)
    -- an unwritable file is a usage error
    rc = run(with(WINDOW, "--history", FIX .. "/svc.json", "--file", dir .. "/missing/r.txt", "svc"))
    assert.are.equal(2, rc)
  end)

  it("takes relative windows from the clock", function()
    -- until defaults to now: 2024-03-11T00:00Z, the last 7 days
    local rc, out = run({ "--history", FIX .. "/svc.json", "--since", "7d", "-o", "json", "svc" }, 1709510400 + 7 * 86400)
    assert.are.equal(0, rc)
    local d = assert(json.decode(out))
    assert.are.equal("2024-03-11T00:00:00Z", d.window["until"])
    assert.are.equal(3, d.pipelines[1].deployments.count)   -- S1, S2, S5
  end)

  it("prints the dashboard stack template", function()
    local rc, out = run({ "--stack-template", "--since", "7d", "--namespace", "Team/Delivery", "--stage", "Prod", "svc" })
    assert.are.equal(0, rc)
    local t = assert(json.decode(out))
    assert.are.equal("AWS::CloudWatch::Dashboard", t.Resources.Dashboard.Type)
    assert.are.equal("7d", t.Parameters.Window.Default)
    assert.are.equal("Team/Delivery", t.Parameters.MetricNamespace.Default)
    assert.are.equal("svc", t.Parameters.Pipelines.Default)
    assert.matches("%-%-stage Prod", t.Resources.PublisherProject.Properties.Source.BuildSpec)
    local err
    rc, out, err = run({ "--stack-template", "--since", "2024-01-01" })
    assert.are.equal(2, rc)
    assert.matches("must be a duration", err)
    rc, out, err = run({ "--stack-template", "bad name" })
    assert.are.equal(2, rc)
    assert.matches("pipelines%[1%]: pipeline name expected", err)
  end)

  it("usage errors exit 2", function()
    local cases = {
      { { "-o", "yaml" }, "unknown output format 'yaml'" },
      { { "--since", "soon" }, "%-%-since: 'soon' is neither a duration" },
      { { "--since", "2024-03-05", "--until", "2024-03-04" }, "window is empty" },
      { { "--history", FIX .. "/missing.json" }, "%-%-history: .*No such file" },
      { { "--history", FIX .. "/svc.json", "--record", "x.json" }, "exclude each other" },
      { { "--namespace", "X" }, "only goes with %-%-publish" },
      { { "--bogus" }, "unknown option '%-%-bogus'" },
    }
    for _, c in ipairs(cases) do
      local rc, out, err = run(c[1])
      assert.are.equal(2, rc, table.concat(c[1], " "))
      assert.are.equal("", out)
      assert.matches(c[2], err)
    end
  end)

  it("documents the definitions in its help", function()
    assert.matches("Lead time for changes: from the change to its deployment", cmd.help)
    assert.matches("Time to restore:", cmd.help)
    for line in cmd.help:gmatch("[^\n]+") do assert.is_true(#line <= 80, line) end
    local names = {}
    for _, o in ipairs(cmd.options) do names[#names + 1] = o[#o] end
    for _, n in ipairs({ "--since", "--until", "--output", "--file", "--stage", "--action", "--history", "--record",
      "--publish", "--namespace", "--stack-template" }) do
      local found = false
      for _, m in ipairs(names) do if m == n then found = true end end
      assert.is_true(found, n)
    end
  end)

  it("runs through the command dispatcher", function()
    if not cli.commands.metrics then cli.register("metrics", "lumu.cli.metrics") end
    local c = cli.command("metrics")
    assert.are.equal(cmd.usage, c.usage)
    assert.are.equal(2, cli.main({ [0] = "lumu", "metrics", "--output" }))
  end)
end)
