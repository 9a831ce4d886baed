-- Specs of lumu.metrics' outputs: text, JSON, the self-contained HTML report
-- (its SVG charts parsed with lumu.xml), value formatting, and CloudWatch
-- metric data.
local metrics = require "lumu.metrics"
local fmt = require "lumu.metrics.fmt"
local svg = require "lumu.metrics.svg"
local json = require "lumu.json"
local xml = require "lumu.xml"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIX = here .. "/../fixtures/metrics"

local H, DAY = 3600, 86400
local T0 = 1709510400 -- 2024-03-04T00:00:00Z
local W = { since = T0, ["until"] = T0 + 14 * DAY }

local function account_report()
  local rec = assert(metrics.load_recording(FIX .. "/account.json"))
  local c = assert(metrics.client({ region = "us-east-1", env = {}, http = metrics.replay_transport(rec),
    credentials = { access_key_id = "AKIDTEST", secret_access_key = "secret" } }))
  local h = assert(metrics.fetch(c, { since = W.since, ["until"] = W["until"] }))
  return metrics.compute(h, W)
end

-- Every <svg>...</svg> of an HTML page, parsed.
local function svgs(html)
  local out = {}
  for frag in html:gmatch("<svg.-</svg>") do
    local root, err = xml.parse(frag)
    assert(root, "SVG not well-formed: " .. tostring(err) .. "\n" .. frag:sub(1, 300))
    out[#out + 1] = root
  end
  return out
end

local function descendants(el, tag, class_prefix, out)
  out = out or {}
  for _, c in ipairs(el) do
    if type(c) == "table" then
      if c.tag == tag and (not class_prefix or (c.attr.class or ""):sub(1, #class_prefix) == class_prefix) then
        out[#out + 1] = c
      end
      descendants(c, tag, class_prefix, out)
    end
  end
  return out
end

local function by_id(list, id)
  for _, s in ipairs(list) do if s.attr.id == id then return s end end
  error("no svg " .. id)
end

-- Fails if a URL appears inside a tag (an attribute), not in text.
local function urls_only_in_text(html)
  local pos = 1
  while true do
    local s = html:find("https?://", pos)
    if not s then return true end
    local before = html:sub(1, s)
    local lt = before:match(".*()<") or 0
    local gt = before:match(".*()>") or 0
    assert(gt > lt, "URL inside a tag near: " .. html:sub(math.max(1, s - 60), s + 40))
    pos = s + 1
  end
end

local function hostile_report()
  local name = "<svg onload=alert(1)>&\"'\1"
  local e = { id = "x<y", status = "Succeeded", start = T0 + H, updated = T0 + 3 * H,
    source_revisions = { { action = "Source", revision_id = "</svg><script>" } },
    actions = { { stage = "Prod]]>", name = "Deploy<&>", category = "Deploy", status = "Succeeded", start = T0 + 2 * H,
      updated = T0 + 3 * H } } }
  return metrics.compute({ pipelines = {
    { name = name, executions = { e } },
    { name = "down", error = "http: connect: failed to connect to https://codepipeline.example/ <b>" },
  } }, W)
end

describe("lumu.metrics: text", function()
  it("prints the table, the total and the weeks", function()
    local text = metrics.text(account_report(), { weekly = true })
    local lines = {}
    for l in text:gmatch("[^\n]*") do lines[#lines + 1] = l end
    assert.are.equal("Delivery metrics, 2024-03-04 00:00 to 2024-03-18 00:00 UTC (14 days)", lines[1])
    assert.matches("^PIPELINE%s+STAGE%s+DEPLOYS%s+FREQUENCY", lines[3])
    assert.matches("^broken%s+error: codepipeline GetPipeline: PipelineNotFoundException", lines[4])
    assert.are.equal("svc       Production  5        2.5/week (high)  5h 15m / 1d 10h (elite)  "
      .. "4/9 44.4% (medium)   20h / 1d 11h (high)", lines[5])
    assert.matches("^web%s+Prod%-EU%s+2%s+1/week %(high%)%s+2h / 2h %(elite%)%s+1/3 33.3%% %(medium%)", lines[6])
    assert.matches("^all %(2%)%s+7%s+3.5/week %(high%)%s+2h 15m / 1d 10h", lines[7])
    assert.matches("svc, per week %(weeks start Monday 00:00 UTC%):", text)
    assert.matches("\n  2024%-03%-11  2%s+3%s+60%%%s+8h%s+1d 3h\n", text)
    assert.matches("Bands: DORA performance", text)
  end)

  it("replaces control characters and copes with nothing", function()
    local text = metrics.text(hostile_report())
    assert.is_nil(text:find("\1", 1, true))
    assert.matches("<svg onload=alert%(1%)>&\"'%?", text)
    local empty = metrics.text(metrics.compute({ pipelines = {} }, W))
    assert.matches("%(no pipelines%)", empty)
  end)
end)

describe("lumu.metrics: JSON", function()
  it("encodes the report with ISO times, seconds and nulls", function()
    local s = metrics.json(account_report())
    local d = assert(json.decode(s))
    assert.are.same({ since = "2024-03-04T00:00:00Z", ["until"] = "2024-03-18T00:00:00Z", days = 14 }, d.window)
    assert.are.equal(3, #d.pipelines)
    assert.are.equal("broken", d.pipelines[1].name)
    assert.matches("PipelineNotFoundException", d.pipelines[1].error)
    local svc = d.pipelines[2]
    assert.are.equal(18900, svc.lead_time.median)
    assert.are.equal(0.4444, svc.change_failure_rate.rate)
    assert.are.equal(72000, svc.time_to_restore.median)
    assert.are.equal(9, #svc.events)
    assert.are.equal("2024-03-04T02:00:00Z", svc.events[1].time)
    assert.is_true(json.is_null(svc.events[3].lead_time))    -- a failure
    assert.are.equal(3, #svc.outages)
    assert.are.equal("2024-03-18T09:00:00Z", svc.outages[3]["end"])
    assert.are.equal(7, d.total.deployments.count)
    assert.are.equal(2, d.total.pipelines)
    -- deterministic
    assert.are.equal(s, metrics.json(account_report()))
    -- no data: null medians and rates
    local e = assert(json.decode(metrics.json(metrics.compute({ pipelines = { { name = "p", executions = {} } } }, W))))
    assert.is_true(json.is_null(e.pipelines[1].lead_time.median))
    assert.is_true(json.is_null(e.pipelines[1].change_failure_rate.rate))
    assert.is_true(json.is_null(e.pipelines[1].stage))
  end)
end)

describe("lumu.metrics: HTML", function()
  it("is one self-contained document", function()
    local html = metrics.html(account_report())
    assert.are.equal("<!DOCTYPE html>\n", html:sub(1, 16))
    assert.matches("</html>\n$", html)
    assert.matches("<style>", html)
    for _, bad in ipairs({ "<script", "<link", "<img", "<iframe", "<object", "<embed", "@import", "url%(" }) do
      assert.is_nil(html:find(bad), bad)
    end
    assert.is_nil(html:find("%shref%s*="))
    assert.is_nil(html:find("%ssrc%s*="))
    assert.is_nil(html:find("https?://"))     -- no URL at all in this report
    assert.matches("<dt>Lead time for changes</dt>", html)
    assert.matches("DORA performance bands", html)
  end)

  it("draws well-formed SVG charts with a bar per week and a point per deployment", function()
    local html = metrics.html(account_report())
    local list = svgs(html)
    -- all pipelines: 4 charts; svc and web: 4 each; broken: none
    assert.are.equal(12, #list)
    for _, s in ipairs(list) do
      assert.are.equal("svg", s.tag)
      assert.is_truthy(s.attr.viewBox)
      assert.is_nil(s.attr.xmlns)
      assert.are.equal("title", descendants(s, "title")[1].tag)
    end
    -- svc: week 1 3 deployments + 1 failure, week 2 2 + 3: 4 stacked bars
    local deploys = by_id(list, "pipeline-svc-deploys")
    local bars = descendants(deploys, "rect", "bar")
    assert.are.equal(4, #bars)
    local values = {}
    for _, b in ipairs(bars) do values[#values + 1] = b.attr.class .. "=" .. b.attr["data-value"] end
    assert.are.same({ "bar ok=3", "bar fail=1", "bar ok=2", "bar fail=3" }, values)
    assert.are.equal(2, #descendants(by_id(list, "pipeline-svc-cfr"), "rect", "bar"))
    local lead = descendants(by_id(list, "pipeline-svc-lead"), "circle", "point")
    assert.are.equal(4, #lead)                 -- S11 is a re-run: no lead time
    assert.are.equal(1, #descendants(by_id(list, "pipeline-svc-lead"), "line", "hline"))
    assert.are.equal(3, #descendants(by_id(list, "pipeline-svc-restore"), "circle", "point"))
    -- web: week 2 is empty: 2 bars (ok, fail) in week 1
    assert.are.equal(2, #descendants(by_id(list, "pipeline-web-deploys"), "rect", "bar"))
    assert.are.equal(4, #descendants(by_id(list, "all-pipelines-deploys"), "rect", "bar"))
    -- bar heights are proportional: week 1 ok (3) is 1.5 times week 2 ok (2)
    local h1, h2 = tonumber(bars[1].attr.height), tonumber(bars[3].attr.height)
    assert.is_true(math.abs(h1 / h2 - 1.5) < 0.02)
  end)

  it("escapes hostile names and keeps URLs out of attributes", function()
    local html = metrics.html(hostile_report())
    assert.is_nil(html:find("<svg onload", 1, true))
    assert.is_nil(html:find("<script", 1, true))
    assert.is_nil(html:find("<b>", 1, true))
    assert.is_nil(html:find("\1", 1, true))
    assert.matches("&lt;svg onload=alert%(1%)&gt;&amp;&quot;&#39;%?", html)
    assert.is_true(urls_only_in_text(html))
    assert.is_truthy(html:find("https://codepipeline.example/", 1, true))   -- in the error text
    local list = svgs(html)
    assert.are.equal(8, #list)      -- all pipelines and the hostile one; "down" has none
    -- ids are safe
    for _, s in ipairs(list) do assert.matches("^[%w_-]+$", s.attr.id) end
  end)

  it("draws empty charts with a note", function()
    local html = metrics.html(metrics.compute({ pipelines = { { name = "quiet", executions = {} } } }, W))
    local list = svgs(html)
    assert.are.equal(4, #list)
    for _, s in ipairs(list) do
      assert.are.equal(0, #descendants(s, "rect", "bar") + #descendants(s, "circle", "point"))
      assert.are.equal(1, #descendants(s, "text", "empty"))
    end
  end)

  it("copes with a year of weeks and huge values", function()
    local execs = {}
    for i = 0, 51 do
      local t = T0 + i * 7 * DAY
      execs[#execs + 1] = { id = "e" .. i, status = "Succeeded", start = t, updated = t + H,
        source_revisions = { { action = "S", revision_id = "r" .. i } },
        revisions = { { name = "S", revision_id = "r" .. i, created = t - 400 * DAY } },
        actions = { { stage = "Prod", name = "Deploy", category = "Deploy", status = "Succeeded", start = t, updated = t + H } } }
    end
    local w = { since = T0, ["until"] = T0 + 364 * DAY }
    local rep = metrics.compute({ pipelines = { { name = "p", executions = execs } } }, w)
    assert.are.equal(52, #rep.pipelines[1].weeks)
    local list = svgs(metrics.html(rep))
    local deploys = by_id(list, "pipeline-p-deploys")
    assert.are.equal(52, #descendants(deploys, "rect", "bar"))
    -- at most about 10 week labels
    local labels = 0
    for _, g in ipairs(descendants(deploys, "g")) do
      if g.attr.class == "x-axis" then labels = #descendants(g, "text") end
    end
    assert.is_true(labels > 0 and labels <= 11)
    assert.are.equal(52, #descendants(by_id(list, "pipeline-p-lead"), "circle", "point"))
    assert.matches('<text class="unit"[^>]*>days</text>', svg.scatter({ id = "x", x_min = 0, x_max = 1,
      points = { { x = 0.5, y = 400 * DAY } }, y_unit = svg.duration_unit(400 * DAY) }))
  end)
end)

describe("lumu.metrics: formatting", function()
  it("durations, rates and frequencies", function()
    assert.are.equal("-", fmt.duration(nil))
    assert.are.equal("0s", fmt.duration(0))
    assert.are.equal("45s", fmt.duration(45))
    assert.are.equal("1m", fmt.duration(60))
    assert.are.equal("12m 5s", fmt.duration(725))
    assert.are.equal("5h 15m", fmt.duration(18900))
    assert.are.equal("1d 10h", fmt.duration(122400))
    assert.are.equal("1d", fmt.duration(86400 + 59))   -- seconds are below the two units shown
    assert.are.equal("2w 1d", fmt.duration(15 * 86400))
    assert.are.equal("-1h", fmt.duration(-3600))
    assert.are.equal("-", fmt.percent(nil))
    assert.are.equal("25%", fmt.percent(0.25))
    assert.are.equal("44.4%", fmt.percent(4 / 9))
    assert.are.equal("0", fmt.frequency(0))
    assert.are.equal("2.5/day", fmt.frequency(2.5))
    assert.are.equal("1/day", fmt.frequency(1))
    assert.are.equal("2.5/week", fmt.frequency(5 / 14))
    assert.are.equal("1/week", fmt.frequency(2 / 14))
    assert.are.equal("2.1/month", fmt.frequency(1 / 14))
    assert.are.equal("0.3/month", fmt.frequency(0.01))
    assert.are.equal("2024-03-04T00:00:00Z", fmt.iso(T0))
    assert.are.equal("2024-03-04T00:00:00.500Z", fmt.iso(T0 + 0.5))
  end)
end)

describe("lumu.metrics: CloudWatch", function()
  it("turns the report into metric data", function()
    local data = metrics.metric_data(account_report())
    -- svc: 8 values; web: 8; ALL: 8 (the broken pipeline has none)
    assert.are.equal(24, #data)
    local byname = {}
    for _, d in ipairs(data) do byname[d.Dimensions[1].Value .. "/" .. d.MetricName] = d end
    assert.are.equal(18900.0, byname["svc/LeadTimeMedian"].Value)
    assert.are.equal("Seconds", byname["svc/LeadTimeMedian"].Unit)
    assert.is_true(math.abs(byname["svc/ChangeFailureRate"].Value - 400 / 9) < 1e-9)
    assert.are.equal("Percent", byname["svc/ChangeFailureRate"].Unit)
    assert.are.equal(7.0, byname["ALL/Deployments"].Value)
    assert.are.equal(T0 + 14 * DAY, byname["ALL/Deployments"].Timestamp)
    assert.is_nil(byname["broken/Deployments"])
    -- missing values are left out
    local quiet = metrics.metric_data(metrics.compute({ pipelines = { { name = "q", executions = {} } } }, W),
      { timestamp = 5 })
    local names = {}
    for _, d in ipairs(quiet) do if d.Dimensions[1].Value == "q" then names[#names + 1] = d.MetricName end end
    assert.are.same({ "Deployments", "DeploymentsPerDay", "ChangeFailures", "OpenOutages" }, names)
    assert.are.equal(5, quiet[1].Timestamp)
  end)

  it("publishes in batches of 20 and reports failures", function()
    local calls = {}
    local cw = { call = function(_, op, params)
      calls[#calls + 1] = { op = op, n = #params.MetricData, ns = params.Namespace }
      return {}
    end }
    local n = assert(metrics.publish(cw, account_report(), { namespace = "Team/Delivery" }))
    assert.are.equal(24, n)
    assert.are.same({ { op = "PutMetricData", n = 20, ns = "Team/Delivery" }, { op = "PutMetricData", n = 4, ns = "Team/Delivery" } },
      calls)
    local failing = { call = function() return nil, "AccessDenied" end }
    local ok, err = metrics.publish(failing, account_report())
    assert.is_nil(ok)
    assert.are.equal("AccessDenied", err)
  end)

  it("builds PutMetricData requests the CloudWatch model accepts", function()
    local sent
    local cw = assert(require("lumu.aws").client("cloudwatch", { region = "us-east-1", env = {},
      credentials = { access_key_id = "AKIDTEST", secret_access_key = "secret" },
      http = function(req)
        sent = req
        return { status = 200, headers = { ["content-type"] = "text/xml" },
          body = '<PutMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">'
            .. '<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PutMetricDataResponse>' }
      end }))
    assert.are.equal(24, assert(metrics.publish(cw, account_report())))
    assert.matches("Namespace=Lumu%%2FDelivery", sent.body)
    assert.matches("MetricData%.member%.1%.MetricName=", sent.body)
  end)
end)
