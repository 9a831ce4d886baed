-- lumu.deploy pieces without a server: the dependency graph and its bounded
-- walk, change set normalisation and the diff text, the three renderers,
-- the event poller against a scripted client (paging, throttling, tokens),
-- engine misuse, and Service Catalog provisioning with a fake client.
local async = require "lumu.async"
local changes = require "lumu.deploy.changes"
local deploy = require "lumu.deploy"
local events = require "lumu.deploy.events"
local graph = require "lumu.deploy.graph"
local json = require "lumu.json"
local render = require "lumu.deploy.render"
local s3 = require "lumu.deploy.s3"

local function buffer()
  local b = { parts = {} }
  function b.write(self, ...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring(select(i, ...)) end
    return self
  end
  function b.text(self) return table.concat(self.parts) end
  return b
end

describe("lumu.deploy.graph", function()
  it("orders stably along dependencies and keeps external ones aside", function()
    local g = assert(graph.new({
      { name = "svc", depends = { "db", "env" } },
      { name = "vpc" },
      { name = "env", depends = { "vpc", "mu-iam-common" } },
      { name = "db", depends = { "env" } },
      { name = "other" },
    }))
    assert.are.same({ "vpc", "env", "db", "svc", "other" }, g.order)
    assert.are.same({ "mu-iam-common" }, g.external.env)
    assert.are.same({ "svc" }, g.rdeps.db)
  end)

  it("reports cycles, duplicates and misuse", function()
    local g, err = graph.new({ { name = "a", depends = { "c" } }, { name = "b", depends = { "a" } },
      { name = "c", depends = { "b" } }, { name = "d" } })
    assert.is_nil(g)
    assert.matches("^dependency cycle: ", err)
    assert.matches("a %-> c %-> b %-> a", err)
    g, err = graph.new({ { name = "a" }, { name = "a" } })
    assert.is_nil(g)
    assert.are.equal("duplicate stack name 'a'", err)
    assert.has_error(function() graph.new("x") end)
    assert.has_error(function() graph.new({ { depends = {} } }) end)
    -- a self-dependency is ignored
    assert.are.same({ "a" }, assert(graph.new({ { name = "a", depends = { "a" } } })).order)
  end)

  it("handles a long chain and a wide fan-out", function()
    local nodes = {}
    for i = 1, 400 do nodes[i] = { name = "s" .. i, depends = i > 1 and { "s" .. (i - 1) } or nil } end
    local g = assert(graph.new(nodes))
    assert.are.equal("s400", g.order[400])
    local wide = { { name = "root" } }
    for i = 1, 300 do wide[#wide + 1] = { name = "leaf" .. i, depends = { "root" } } end
    assert.are.equal(301, #assert(graph.new(wide)).order)
  end)

  it("walks concurrently within the limit, skipping dependants of failures", function()
    local g = assert(graph.new({
      { name = "a" }, { name = "b" }, { name = "c" }, { name = "d" },
      { name = "e", depends = { "a" } }, { name = "f", depends = { "e" } }, { name = "g", depends = { "b", "c" } },
    }))
    local running, peak, ran, skipped = 0, 0, {}, {}
    local states = async.run(function()
      return graph.walk(g, { limit = 2,
        run = function(name)
          running = running + 1
          peak = math.max(peak, running)
          async.sleep(0.02)
          running = running - 1
          ran[#ran + 1] = name
          return name ~= "a"
        end,
        skip = function(name, blocker) skipped[name] = blocker end })
    end)
    assert.are.equal(2, peak)
    assert.are.same({ a = "failed", b = "ok", c = "ok", d = "ok", e = "skipped", f = "skipped", g = "ok" }, states)
    assert.are.same({ e = "a", f = "e" }, skipped)
    assert.are.equal(5, #ran)
  end)

  it("walks in reverse for deletion and reports errors raised by run", function()
    local g = assert(graph.new({ { name = "vpc" }, { name = "env", depends = { "vpc" } },
      { name = "svc", depends = { "env" } } }))
    local order, errs = {}, {}
    local states = async.run(function()
      return graph.walk(g, { reverse = true, run = function(name)
        order[#order + 1] = name
        if name == "env" then error("boom") end
        return true
      end, error = function(name, err) errs[name] = tostring(err) end })
    end)
    assert.are.same({ "svc", "env" }, order)
    assert.are.equal("skipped", states.vpc)
    assert.matches("boom", errs.env)
  end)

  it("stops at an interrupt and raises it", function()
    local g = assert(graph.new({ { name = "a" }, { name = "b", depends = { "a" } } }))
    local ok, err = pcall(async.run, function()
      return graph.walk(g, { run = function() error("interrupted!") end })
    end)
    assert.is_false(ok)
    assert.is_true(graph.is_interrupt(err))
    -- opts.stop: nothing new starts
    local states = async.run(function()
      return graph.walk(g, { run = function() return true end, stop = function() return true end })
    end)
    assert.are.same({ a = "skipped", b = "skipped" }, states)
  end)
end)

describe("lumu.deploy.changes", function()
  local raw = {
    { Type = "Resource", ResourceChange = { Action = "Add", LogicalResourceId = "New", ResourceType = "AWS::SNS::Topic",
      Scope = {}, Details = {} } },
    { Type = "Resource", ResourceChange = { Action = "Modify", LogicalResourceId = "Db", ResourceType = "AWS::RDS::DBInstance",
      Replacement = "True", Scope = { "Properties" }, Details = {
        { Target = { Attribute = "Properties", Name = "Engine", RequiresRecreation = "Always" }, Evaluation = "Static",
          ChangeSource = "DirectModification" },
        { Target = { Attribute = "Properties", Name = "DBInstanceClass", RequiresRecreation = "Never",
          Path = "/Properties/DBInstanceClass" }, Evaluation = "Static", ChangeSource = "ParameterReference",
          CausingEntity = "InstanceClass" } } } },
    { Type = "Resource", ResourceChange = { Action = "Remove", LogicalResourceId = "Old", ResourceType = "AWS::SQS::Queue",
      PhysicalResourceId = "https://q", Scope = {}, Details = {} } },
  }

  it("normalises change set changes", function()
    local c = changes.normalize(raw)
    assert.are.equal(3, #c)
    assert.are.equal("Modify", c[2].action)
    assert.are.equal("True", c[2].replacement)
    assert.are.equal("/Properties/Engine", c[2].details[1].path)
    assert.are.equal("/Properties/DBInstanceClass", c[2].details[2].path)
    assert.are.equal("InstanceClass", c[2].details[2].causing)
    assert.are.same({ add = 1, modify = 1, remove = 1, replace = 1 }, changes.counts(c))
    assert.are.same({}, changes.normalize(nil))
    assert.are.same({}, changes.normalize({ "junk", 42 }))
  end)

  it("formats the diff", function()
    local lines = changes.format("mu-db", { action = "update", changes = changes.normalize(raw) })
    assert.are.equal("mu-db: update (1 to add, 1 to modify (1 replaced), 1 to remove)", lines[1])
    local text = table.concat(lines, "\n")
    assert.matches("%+ Add%s+New%s+AWS::SNS::Topic", text)
    assert.matches("~ Modify%s+Db%s+AWS::RDS::DBInstance%s+REPLACEMENT", text)
    assert.matches("/Properties/Engine%s+%(requires replacement%)", text)
    assert.matches("/Properties/DBInstanceClass%s+%(parameter InstanceClass%)", text)
    assert.matches("%- Remove%s+Old", text)
    assert.is_nil(text:find("\27", 1, true))
    local colored = table.concat(changes.format("x", { action = "update", changes = changes.normalize(raw) },
      { color = true }), "\n")
    assert.matches("\27%[32m", colored)
    assert.are.same({ "x: no changes" }, changes.format("x", { status = "no changes", changes = {} }))
    local capped = changes.format("x", { action = "create", changes = changes.from_template({ Resources = {
      A = { Type = "T" }, B = { Type = "T" }, C = { Type = "T" } } }) }, { max = 2 })
    assert.are.equal("x: new stack (3 resources)", capped[1])
    assert.matches("%.%.%. 2 more", capped[#capped])
  end)

  it("recognises the no-changes and missing-export reasons", function()
    assert.is_true(changes.no_changes("The submitted information didn't contain changes. Submit different information"))
    assert.is_true(changes.no_changes("No updates are to be performed."))
    assert.is_false(changes.no_changes("Template format error"))
    assert.is_false(changes.no_changes(nil))
    assert.is_true(changes.missing_export("No export named mu-vpc-dev-VpcId found."))
    local t = changes.from_template({ Resources = { Z = { Type = "AWS::SNS::Topic" }, A = { Type = "AWS::SQS::Queue" } } })
    assert.are.same({ "A", "Z" }, { t[1].logical_id, t[2].logical_id })
    assert.are.same({}, changes.from_template(nil))
  end)
end)

describe("lumu.deploy.render", function()
  it("lines: one append-only line per event", function()
    local out = buffer()
    local r = render.new("lines", { out = out })
    r:event({ type = "resource", stack = "s1", time = 0, logical_id = "Db", status = "CREATE_FAILED",
      reason = "bad\nthing" })
    r:event({ type = "stack", stack = "s1", time = 60, status = "ROLLBACK_COMPLETE" })
    r:event({ type = "message", stack = "s1", level = "warn", text = "careful" })
    r:event({ type = "phase", stack = "s1", phase = "plan", text = "reading" })
    r:event({ type = "summary", lines = { "Summary: 1 failed" } })
    assert.are.equal("00:00:00  s1  Db  CREATE_FAILED  bad thing\n00:01:00  s1  -  ROLLBACK_COMPLETE\n"
      .. "s1: warning: careful\nSummary: 1 failed\n", out:text())
  end)

  it("json: every line is one object", function()
    local data, out = buffer(), buffer()
    local r = render.new("json", { data = data, out = out })
    r:event({ type = "resource", stack = "s", time = 1795677160.5, logical_id = "A", status = "CREATE_COMPLETE",
      id = "e1" })
    r:event({ type = "diff", stack = "s", action = "create", changes = changes.from_template({ Resources = {
      A = { Type = "T" } } }) })
    r:event({ type = "result", stack = "s", status = "failed", error = "x", events_failed = {
      { logical_id = "A", reason = "r", nested = { { logical_id = "B", reason = "inner" } } } } })
    r:event({ type = "summary", ok = false, exit_code = 1, lines = {} })
    local objs = {}
    for line in data:text():gmatch("[^\n]+") do objs[#objs + 1] = assert(json.decode(line)) end
    assert.are.equal(4, #objs)
    assert.are.equal("2026-11-26T07:12:40.500Z", objs[1].time)
    assert.are.equal("e1", objs[1].event_id)
    assert.are.equal("Add", objs[2].changes[1].action)
    assert.are.equal("inner", objs[3].events_failed[1].nested[1].reason)
    assert.are.equal("[]", json.encode(objs[4].lines))
    assert.are.equal("", out:text())
  end)

  it("tty: a live view of at most 20 lines, redrawn in place", function()
    local out = buffer()
    local now = 100
    local r = render.new("tty", { out = out, width = 80, now = function() return now end })
    for i = 1, 40 do
      r:event({ type = "phase", stack = string.format("mu-service-%02d", i), phase = "execute", text = "creating", total = 3 })
      now = now + 0.2
    end
    r:event({ type = "resource", stack = "mu-service-01", logical_id = "A", status = "CREATE_COMPLETE" })
    r:event({ type = "result", stack = "mu-service-02", status = "failed", error = "boom" })
    now = now + 1
    r:tick()
    local text = out:text()
    -- every frame starts by moving up over the previous one
    local frames = {}
    for frame in (text .. "\27["):gmatch("(.-)\27%[%d+A\27%[J") do frames[#frames + 1] = frame end
    assert.is_true(#frames >= 3)
    for _, f in ipairs(frames) do
      local n = select(2, f:gsub("\n", ""))
      assert.is_true(n <= 20, "frame of " .. n .. " lines")
    end
    local last = text:match(".*\27%[J(.*)$")
    assert.matches("%.%.%. %d+ more: ", last)
    assert.matches("mu%-service%-01%s+executing%s+1/3", last)
    for line in last:gmatch("[^\n]+") do assert.is_true(#line <= 80) end
    r:pause()
    assert.matches("\27%[J$", out:text())
    assert.has_error(function() render.new("fancy") end)
  end)
end)

-- A scripted CloudFormation client for the poller: events appear over time.
local function scripted_cfn(o)
  local c = { n = 0, events = {}, status = o.status or "UPDATE_IN_PROGRESS", log = {} }
  function c.DescribeStackEvents(self, p)
    self.n = self.n + 1
    self.log[#self.log + 1] = "events"
    if o.throttle and o.throttle[self.n] then
      return nil, { code = "Throttling", message = "Rate exceeded", status = 400, retryable = true }
    end
    if o.step then o.step(self, self.n) end
    if o.stable then
      -- tokens as CloudFormation's and fakeaws's: a position that new events do not move
      local size = o.page or 2
      local stop = tonumber(p.NextToken or tostring(#self.events))
      local page = {}
      for i = stop, math.max(1, stop - size + 1), -1 do page[#page + 1] = self.events[i] end
      local rest = stop - size
      return { StackEvents = page, NextToken = rest >= 1 and tostring(rest) or nil }
    end
    local all = {}
    for i = #self.events, 1, -1 do all[#all + 1] = self.events[i] end
    local start = tonumber(p.NextToken or "1")
    local page = {}
    for i = start, math.min(#all, start + 1) do page[#page + 1] = all[i] end
    return { StackEvents = page, NextToken = (start + 2 <= #all) and tostring(start + 2) or nil }
  end
  function c.DescribeStacks(self)
    self.log[#self.log + 1] = "stacks"
    return { Stacks = { { StackName = "s", StackId = "arn:s", StackStatus = self.status,
      Outputs = { { OutputKey = "K", OutputValue = "V" } } } } }
  end
  function c.push(self, id, lid, status, reason, tok)
    local stack = lid == "s"
    self.events[#self.events + 1] = { EventId = id, StackName = "s", StackId = "arn:s", LogicalResourceId = lid,
      PhysicalResourceId = stack and "arn:s" or ("p-" .. lid), ResourceType = stack and "AWS::CloudFormation::Stack"
      or "AWS::SNS::Topic", ResourceStatus = status, ResourceStatusReason = reason, Timestamp = #self.events,
      ClientRequestToken = tok }
    if stack then self.status = status end
  end
  return c
end

local function ctx_for(c, emitted)
  return {
    call = function(_, op, params) return c[op](c, params) end,
    emit = function(ev) emitted[#emitted + 1] = ev end,
    poll = { min = 0.001, max = 0.004, throttle_max = 0.01 },
    retryable = deploy.retryable,
  }
end

describe("lumu.deploy.events.tail", function()
  it("emits each new event once, oldest first, across pages and throttling", function()
    local c = scripted_cfn({ throttle = { [2] = true, [3] = true, [5] = true }, step = function(self, n)
      if n == 1 then
        self:push("old1", "s", "UPDATE_COMPLETE", nil, "other")
        self:push("e1", "s", "UPDATE_IN_PROGRESS", "User Initiated", "tok")
        for i = 1, 5 do self:push("r" .. i, "R" .. i, "UPDATE_IN_PROGRESS", nil, "tok") end
      elseif n == 4 then
        for i = 1, 5 do self:push("c" .. i, "R" .. i, "UPDATE_COMPLETE", nil, "tok") end
      elseif n == 6 then
        self:push("e2", "s", "UPDATE_COMPLETE", nil, "tok")
      end
    end })
    local emitted = {}
    local r = async.run(function()
      return events.tail(ctx_for(c, emitted), { stack = "s", ref = "arn:s", tokens = { tok = true } })
    end)
    assert.are.equal("UPDATE_COMPLETE", r.status)
    assert.are.equal("V", r.stack.Outputs[1].OutputValue)
    local ids = {}
    for _, ev in ipairs(emitted) do ids[#ids + 1] = ev.id end
    assert.are.same({ "e1", "r1", "r2", "r3", "r4", "r5", "c1", "c2", "c3", "c4", "c5", "e2" }, ids)
    assert.are.equal("stack", emitted[1].type)
    assert.are.equal("resource", emitted[2].type)
    assert.are.equal(12, #r.events)
  end)

  it("resumes a scan cut short by throttling from its token: progress in a storm, nothing lost or repeated", function()
    -- 60 events, 3 per page, and every third call throttled: a scan from the
    -- top would never get through 20 pages in a row
    local c = scripted_cfn({ stable = true, page = 3, step = function(self, n)
      if n == 1 then
        self:push("start", "s", "UPDATE_IN_PROGRESS", "User Initiated", "tok")
        for i = 1, 58 do self:push("r" .. i, "R" .. i, i % 2 == 0 and "UPDATE_COMPLETE" or "UPDATE_IN_PROGRESS", nil, "tok") end
      elseif n == 40 then
        self:push("end", "s", "UPDATE_COMPLETE", nil, "tok")
      end
    end })
    local real = c.DescribeStackEvents
    c.DescribeStackEvents = function(self, p)
      if self.n > 400 then error("no progress after 400 calls", 0) end
      if (self.n + 1) % 3 == 0 then
        self.n = self.n + 1
        return nil, { code = "Throttling", message = "Rate exceeded", status = 400, retryable = true }
      end
      return real(self, p)
    end
    local emitted = {}
    local r = async.run(function()
      return events.tail(ctx_for(c, emitted), { stack = "s", ref = "arn:s", tokens = { tok = true } })
    end)
    assert.are.equal("UPDATE_COMPLETE", r.status)
    local ids = {}
    for _, ev in ipairs(emitted) do ids[#ids + 1] = ev.id end
    local want = { "start" }
    for i = 1, 58 do want[#want + 1] = "r" .. i end
    want[#want + 1] = "end"
    assert.are.same(want, ids)
    assert.is_true(r.polls < 40, "polls: " .. r.polls)
  end)

  it("joins an operation in progress from its start event", function()
    local c = scripted_cfn({ step = function(self, n)
      if n == 1 then
        self:push("a0", "s", "CREATE_COMPLETE")
        self:push("a1", "s", "UPDATE_IN_PROGRESS", "User Initiated")
        self:push("a2", "R", "UPDATE_IN_PROGRESS")
      elseif n == 2 then
        self:push("a3", "R", "UPDATE_FAILED", "broken")
        self:push("a4", "s", "UPDATE_ROLLBACK_IN_PROGRESS", "The following resource(s) failed to update: [R].")
        self:push("a5", "R", "UPDATE_FAILED", "Resource update cancelled")
        self:push("a6", "s", "UPDATE_ROLLBACK_COMPLETE")
      end
    end })
    local emitted = {}
    local r = async.run(function()
      return events.tail(ctx_for(c, emitted), { stack = "s", ref = "arn:s", attach = true })
    end)
    assert.are.equal("UPDATE_ROLLBACK_COMPLETE", r.status)
    assert.are.equal("a1", emitted[1].id)
    local f = events.failures(ctx_for(c, {}), r.events, "s")
    assert.are.equal(1, #f)
    assert.are.equal("broken", f[1].reason)
  end)

  it("follows a failed nested stack to its own first failure", function()
    local function ev(stack, id, lid, typ, status, reason, phys)
      return { EventId = id, StackName = stack, StackId = "arn:" .. stack, LogicalResourceId = lid,
        ResourceType = typ, ResourceStatus = status, ResourceStatusReason = reason, PhysicalResourceId = phys }
    end
    local nested = {   -- newest first, as DescribeStackEvents returns them
      ev("inner", "n4", "inner", "AWS::CloudFormation::Stack", "CREATE_FAILED", "failed", "arn:inner"),
      ev("inner", "n3", "Sg", "AWS::EC2::SecurityGroup", "CREATE_FAILED", "Resource creation cancelled", "sg"),
      ev("inner", "n2", "Role", "AWS::IAM::Role", "CREATE_FAILED", "not authorized: iam:CreateRole", "r"),
      ev("inner", "n1", "inner", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated", "arn:inner"),
      ev("inner", "n0", "inner", "AWS::CloudFormation::Stack", "CREATE_COMPLETE", nil, "arn:inner"),
    }
    local c = { asked = {} }
    function c.DescribeStackEvents(self, p)
      self.asked[#self.asked + 1] = p.StackName
      return { StackEvents = nested }
    end
    local outer = {
      ev("outer", "o1", "outer", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated", "arn:outer"),
      ev("outer", "o2", "Inner", "AWS::CloudFormation::Stack", "CREATE_FAILED", "Embedded stack arn:inner was not successfully created", "arn:inner"),
      ev("outer", "o3", "Other", "AWS::SNS::Topic", "CREATE_FAILED", "Resource creation cancelled", "t"),
      ev("outer", "o4", "outer", "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS", "x", "arn:outer"),
    }
    local f = events.failures(ctx_for(c, {}), outer, "outer")
    assert.are.equal(1, #f)
    assert.are.equal("Inner", f[1].logical_id)
    assert.are.same({ "arn:inner" }, c.asked)
    assert.are.equal(1, #f[1].nested)
    assert.are.equal("Role", f[1].nested[1].logical_id)
    assert.are.equal("not authorized: iam:CreateRole", f[1].nested[1].reason)
  end)

  it("gives up after persistent non-retryable errors, never on throttling", function()
    local c = { n = 0 }
    function c.DescribeStackEvents(self)
      self.n = self.n + 1
      return nil, { code = "AccessDenied", message = "no", status = 403 }
    end
    local r = async.run(function()
      return events.tail(ctx_for(c, {}), { stack = "s", ref = "s" })
    end)
    assert.are.equal("AccessDenied", r.err.code)
    assert.are.equal(5, c.n)
    -- a delete that finds the stack gone is done
    function c.DescribeStackEvents()
      return nil, { code = "ValidationError", message = "Stack with id s does not exist", status = 400 }
    end
    r = async.run(function() return events.tail(ctx_for(c, {}), { stack = "s", ref = "s", deleting = true }) end)
    assert.is_true(r.gone)
    assert.are.equal("DELETE_COMPLETE", r.status)
  end)
end)

describe("lumu.deploy engine", function()
  it("raises on misuse", function()
    assert.has_error(function() deploy.engine() end)
    assert.error_matches(function() deploy.engine({}) end, "opts.client")
    assert.error_matches(function() deploy.engine({ client = print, output = "xml" }) end, "output")
    assert.error_matches(function() deploy.engine({ client = print, concurrency = 0 }) end, "concurrency")
    local eng = deploy.engine({ client = function() return {} end, out = buffer() })
    assert.error_matches(function() eng:up("x") end, "list of stack descriptors")
    assert.error_matches(function() eng:up({ { name = "a", template = {}, depends = { "b" } },
      { name = "b", template = {}, depends = { "a" } } }) end, "dependency cycle")
    assert.error_matches(function() eng:up({ { name = "a" } }) end, "has no template")
    assert.error_matches(function() eng:diff({ 42 }) end, "not a stack descriptor")
    assert.error_matches(function() eng:outputs(1) end, "stack name expected")
  end)

  it("compares lumu versions as the version guard does (major; minor for 0.x)", function()
    local newer = deploy.version_newer
    assert.is_true(newer("0.2.0", "0.1.9"))
    assert.is_true(newer("1.0.0", "0.9.9"))
    assert.is_true(newer("2.0.0", "1.9.0"))
    assert.is_true(newer("v0.3.0-rc1", "0.2.0"))
    assert.is_true(newer("3", "2.5.0"))
    assert.is_false(newer("0.1.5", "0.1.0"))    -- a newer patch: compatible
    assert.is_false(newer("1.9.0", "1.0.0"))    -- a newer minor of 1.x: compatible
    assert.is_false(newer("0.1.0", "0.2.0"))    -- older: fine
    assert.is_false(newer("1.0.0", "1.0.0"))
    for _, bad in ipairs({ "", "dev", "x.1", "1e3.0", string.rep("9", 40) .. ".0", {}, false }) do
      assert.is_false(newer(bad, "0.1.0"))
      assert.is_false(newer("9.0.0", bad))
    end
  end)

  it("builds the policies and knows production-like names", function()
    local pol = json.decode(deploy.protective_policy())
    assert.are.equal("Deny", pol.Statement[1].Effect)
    assert.are.same({ "Update:Replace", "Update:Delete" }, pol.Statement[1].Action)
    assert.are.equal("Allow", pol.Statement[2].Effect)
    assert.are.same({ "Db", "Key" }, deploy.stateful_resources({ Resources = {
      Key = { Type = "AWS::KMS::Key" }, Db = { Type = "AWS::RDS::DBInstance" }, T = { Type = "AWS::SNS::Topic" } } }))
    assert.is_true(deploy.production_like("production"))
    assert.is_true(deploy.production_like("eu-prod-1"))
    assert.is_false(deploy.production_like("product"))
    assert.is_false(deploy.production_like(nil))
    assert.are.equal("https://b.s3.eu-west-1.amazonaws.com/k.json", s3.url("https://s3.eu-west-1.amazonaws.com", "b", "k.json", "eu-west-1"))
    assert.are.equal("http://127.0.0.1:9/b/k", s3.url("http://127.0.0.1:9/", "b", "k", "us-east-1"))
    assert.matches("^templates/s/%x+%.json$", s3.key("s", "{}"))
  end)

  -- Service Catalog: a fake client that records calls
  local function sc_client(o)
    local sc = { calls = {}, records = 0 }
    local function rec(op, p) sc.calls[#sc.calls + 1] = { op = op, p = p } end
    function sc.DescribeProvisionedProduct(_, p)
      rec("DescribeProvisionedProduct", p)
      if o.exists then return { ProvisionedProductDetail = { Name = p.Name, Status = "AVAILABLE" } } end
      return nil, { code = "ResourceNotFoundException", message = "not found", status = 400 }
    end
    for _, op in ipairs({ "ProvisionProduct", "UpdateProvisionedProduct", "TerminateProvisionedProduct" }) do
      sc[op] = function(_, p)
        rec(op, p)
        return { RecordDetail = { RecordId = "rec-1", Status = "CREATED" } }
      end
    end
    function sc.DescribeRecord(_, p)
      rec("DescribeRecord", p)
      sc.records = sc.records + 1
      if sc.records < 2 then return { RecordDetail = { Status = "IN_PROGRESS" } } end
      if o.fail then
        return { RecordDetail = { Status = "FAILED", RecordErrors = { { Code = "X", Description = "launch role missing" } } } }
      end
      return { RecordDetail = { Status = "SUCCEEDED" } }
    end
    return sc
  end

  local function provision_desc()
    return { name = "mu-svc", kind = "catalog-provision", product = "pipe", version = "v2",
      parameters = { ServiceName = "svc", SourceRepo = "o/r" }, tags = { ["mu:type"] = "pipeline" },
      depends = { "mu-product-pipe" } }
  end

  it("provisions, updates and terminates Service Catalog products", function()
    local sc = sc_client({})
    local out = buffer()
    local eng = deploy.engine({ client = function() return sc end, yes = true, out = out,
      poll = { min = 0.001, max = 0.002 } })
    local rep = eng:up({ provision_desc() })
    assert.are.equal(0, rep.exit_code, out:text())
    assert.are.equal("created", rep.stacks["mu-svc"].status)
    local prov
    for _, c in ipairs(sc.calls) do if c.op == "ProvisionProduct" then prov = c.p end end
    assert.are.equal("pipe", prov.ProductName)
    assert.are.equal("v2", prov.ProvisioningArtifactName)
    assert.are.same({ { Key = "ServiceName", Value = "svc" }, { Key = "SourceRepo", Value = "o/r" } },
      prov.ProvisioningParameters)
    assert.is_string(prov.ProvisionToken)
    assert.matches("provision product pipe version v2", out:text())
    -- existing: update; a failed record is reported with its reason
    local sc2 = sc_client({ exists = true, fail = true })
    rep = deploy.engine({ client = function() return sc2 end, yes = true, out = buffer(),
      poll = { min = 0.001, max = 0.002 } }):up({ provision_desc() })
    assert.are.equal(1, rep.exit_code)
    assert.matches("launch role missing", rep.stacks["mu-svc"].error)
    assert.are.equal("UpdateProvisionedProduct", sc2.calls[2].op)
    -- down
    local sc3 = sc_client({ exists = true })
    rep = deploy.engine({ client = function() return sc3 end, yes = true, out = buffer(),
      poll = { min = 0.001, max = 0.002 } }):down({ provision_desc() })
    assert.are.equal(0, rep.exit_code)
    assert.are.equal("deleted", rep.stacks["mu-svc"].status)
    -- without yes and a TTY nothing is provisioned
    local sc4 = sc_client({})
    rep = deploy.engine({ client = function() return sc4 end, out = buffer(),
      poll = { min = 0.001, max = 0.002 } }):up({ provision_desc() })
    assert.are.equal(4, rep.exit_code)
    for _, c in ipairs(sc4.calls) do assert.are_not.equal("ProvisionProduct", c.op) end
  end)

  it("works from inside an async task too", function()
    local cl = {}
    function cl.DescribeStacks() return nil, { code = "ValidationError", message = "Stack with id x does not exist" } end
    local eng = deploy.engine({ client = function() return cl end, out = buffer() })
    local rep = async.run(function() return eng:down({ "x", "y" }) end)
    assert.are.equal(0, rep.exit_code)
    assert.are.equal("not found", rep.stacks.x.status)
    assert.are.equal("not found", rep.stacks.y.status)
  end)

  it("reports a client that cannot be made as a stack failure", function()
    local eng = deploy.engine({ client = function() return nil, "no region" end, yes = true, out = buffer(),
      poll = { min = 0.001, max = 0.002 } })
    local rep = eng:up({ { name = "a", kind = "t", template = { Resources = {} } } })
    assert.are.equal(1, rep.exit_code)
    assert.matches("no region", rep.stacks.a.error)
    local o, err = eng:outputs("a")
    assert.is_nil(o)
    assert.matches("no region", err)
  end)
end)
