-- lumu.deploy end to end against fakeaws (tests/support/fakeaws, 127.0.0.1
-- only, SigV4 checked): create, update with a diff, no changes, failure with
-- rollback and its reason, dependants skipped, concurrency, ROLLBACK_COMPLETE
-- re-created, UPDATE_ROLLBACK_FAILED recovered, in-progress stacks waited
-- for, a throttling / dropped-connection storm, S3 for big templates, exit 4
-- without a TTY, JSON lines, down in reverse order, termination protection,
-- stack policy, a hung ECS service, Ctrl-C (simulated and a real SIGINT).
local aws = require "lumu.aws"
local async = require "lumu.async"
local deploy = require "lumu.deploy"
local fs = require "lumu.fs"
local http = require "lumu.http"
local json = require "lumu.json"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FAKEAWS = HERE .. "/../support/fakeaws"
local AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local ACCOUNT = "123456789012"

local function lumu_bin()
  local bin = os.getenv("LUMU_BIN")
  if bin and bin ~= "" then return bin end
  local p = io.popen("readlink /proc/$PPID/exe 2>/dev/null")
  bin = p:read("l")
  p:close()
  return bin
end

local function buffer()
  local b = { parts = {} }
  function b.write(self, ...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring(select(i, ...)) end
    return self
  end
  function b.text(self) return table.concat(self.parts) end
  return b
end

local function topic(extra)
  local r = { Type = "AWS::SNS::Topic", Properties = {} }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

local function desc(name, resources, o)
  o = o or {}
  local d = { name = name, kind = o.kind or "test", env = o.env, template = { Resources = resources,
    Outputs = o.outputs }, depends = o.depends or {}, tags = o.tags or { ["mu:type"] = o.kind or "test" },
    parameters = o.parameters }
  return d
end

describe("lumu.deploy against fakeaws", function()
  local srv, base, tmp

  local function control(path, doc, method)
    local res = assert(http.request { url = base .. "/__fake" .. path, method = method or (doc and "POST" or "GET"),
      body = doc and json.encode(doc) or nil, proxy = false, timeout = 10 })
    assert.are.equal(200, res.status, res.body)
    return json.decode(res.body)
  end

  local function client(service)
    return aws.client(service, { region = "us-east-1", endpoint_url = base, env = {},
      credentials = { access_key_id = AK, secret_access_key = SK },
      retry = { max_backoff = 0.05, max_attempts = 3 } })
  end

  local cfn
  local function engine(o)
    local out, data = buffer(), buffer()
    local opts = { client = client, yes = true, output = "lines", out = out, data = data, no_color = true,
      poll = { min = 0.05, max = 0.25, changeset = 0.05, throttle_max = 0.4 }, region = "us-east-1",
      namespace = "t", patience = 20, revision = "rev1" }
    for k, v in pairs(o or {}) do opts[k] = v end
    return deploy.engine(opts), out, data
  end

  local function stack(name)
    local r = cfn:DescribeStacks { StackName = name }
    return r and r.Stacks[1] or nil
  end

  local function calls(op)
    return control("/calls?operation=" .. op)
  end

  setup(function()
    local f = assert(io.popen("exec python3 " .. FAKEAWS .. " --port 0 --idle 120", "r"))
    local port = (f:read("l") or ""):match("^PORT (%d+)$")
    local pid = (f:read("l") or ""):match("^PID (%d+)$")
    assert(port and pid, "fakeaws did not start (python3 with botocore needed)")
    srv = { f = f, pid = pid }
    base = "http://127.0.0.1:" .. port
    cfn = assert(client("cloudformation"))
    tmp = assert(fs.tmpdir("lumu-deploy-"))
  end)

  teardown(function()
    if srv then
      local ok = pcall(control, "/shutdown", {})
      if not ok then os.execute("kill " .. srv.pid .. " 2>/dev/null") end
      srv.f:close()
    end
    if tmp then fs.rmtree(tmp) end
  end)

  before_each(function()
    control("/reset", {})
    control("/config", { resource_ms = 40, changeset_ms = 30, ecs_stabilize_ms = 100 })
  end)

  it("creates stacks with tags, outputs, a stack policy and an outputs file", function()
    local file = tmp .. "/outputs.json"
    local eng, out = engine({ outputs_file = file })
    local d = desc("t-create", { T = topic(), B = { Type = "AWS::S3::Bucket", Properties = {} } },
      { outputs = { Topic = { Value = { Ref = "T" } } }, tags = { ["mu:type"] = "test", ["mu:environment"] = "dev" } })
    local rep = eng:up({ d })
    assert.are.equal(0, rep.exit_code, out:text())
    assert.is_true(rep.ok)
    local r = rep.stacks["t-create"]
    assert.are.equal("created", r.status)
    assert.are.equal("create", r.action)
    assert.matches("^arn:aws:sns:", r.outputs.Topic)
    local st = stack("t-create")
    assert.are.equal("CREATE_COMPLETE", st.StackStatus)
    local tags = {}
    for _, t in ipairs(st.Tags) do tags[t.Key] = t.Value end
    assert.are.same({ ["mu:type"] = "test", ["mu:environment"] = "dev", ["mu:revision"] = "rev1",
      ["lumu:version"] = require("lumu.version").version }, tags)
    local pol = json.decode(cfn:GetStackPolicy { StackName = "t-create" }.StackPolicyBody)
    assert.are.equal("Deny", pol.Statement[1].Effect)
    assert.is_false(st.EnableTerminationProtection)
    local text = out:text()
    assert.matches("t%-create: new stack %(2 resources%)", text)
    assert.matches("t%-create  T  CREATE_COMPLETE", text)
    assert.matches("created%s+t%-create", text)
    local saved = json.decode(assert(fs.read(file)))
    assert.are.equal(r.outputs.Topic, saved["t-create"].Topic)
    -- every change set went through CREATE and was executed, none left
    assert.are.equal(1, #calls("CreateChangeSet"))
    assert.are.equal(1, #calls("ExecuteChangeSet"))
    assert.are.equal(0, #calls("CreateStack"))
  end)

  it("shows an update's diff (add, modify with replacement, remove) and applies it", function()
    local eng = engine()
    local d = desc("t-upd", { T = topic(), Q = { Type = "AWS::SQS::Queue", Properties = { QueueName = "q1" } },
      Old = topic() })
    assert.are.equal(0, eng:up({ d }).exit_code)
    local d2 = desc("t-upd", { T = topic(), Q = { Type = "AWS::SQS::Queue", Properties = { QueueName = "q2" } },
      New = topic() })
    local eng2, out2 = engine()
    local drep = eng2:diff({ d2 })
    assert.are.equal(0, drep.exit_code)
    assert.are.equal(1, drep.changes)
    assert.are.equal("changes", drep.stacks["t-upd"].status)
    local acts = {}
    for _, c in ipairs(drep.stacks["t-upd"].changes) do acts[c.logical_id] = c end
    assert.are.equal("Add", acts.New.action)
    assert.are.equal("Remove", acts.Old.action)
    assert.are.equal("Modify", acts.Q.action)
    assert.are.equal("True", acts.Q.replacement)
    assert.are.equal("/Properties/QueueName", acts.Q.details[1].path)
    local text = out2:text()
    assert.matches("%+ Add%s+New%s+AWS::SNS::Topic", text)
    assert.matches("%- Remove%s+Old", text)
    assert.matches("~ Modify%s+Q%s+AWS::SQS::Queue%s+REPLACEMENT", text)
    assert.matches("/Properties/QueueName%s+%(requires replacement%)", text)
    -- diff executed nothing and left no change set behind
    for _, cs in ipairs(cfn:ListChangeSets { StackName = "t-upd" }.Summaries) do
      assert.are.equal("EXECUTE_COMPLETE", cs.ExecutionStatus)
    end
    assert.are.equal(1, #calls("ExecuteChangeSet"))
    local rep = engine():up({ d2 })
    assert.are.equal("updated", rep.stacks["t-upd"].status)
    assert.are.equal("UPDATE_COMPLETE", stack("t-upd").StackStatus)
  end)

  it("treats no changes as success and deletes the empty change set", function()
    local d = desc("t-same", { T = topic() })
    assert.are.equal(0, engine():up({ d }).exit_code)
    local eng, out = engine({ yes = false, interactive = false })
    local rep = eng:up({ d })
    assert.are.equal(0, rep.exit_code, out:text())
    assert.are.equal("no changes", rep.stacks["t-same"].status)
    assert.matches("t%-same: no changes", out:text())
    for _, cs in ipairs(cfn:ListChangeSets { StackName = "t-same" }.Summaries) do
      assert.are.equal("EXECUTE_COMPLETE", cs.ExecutionStatus)
    end
    assert.are.equal(1, #calls("ExecuteChangeSet"))
  end)

  it("passes secret parameters without ever printing them", function()
    local function d()
      local x = desc("t-secret", { T = topic() })
      x.template.Parameters = { GitHubToken = { Type = "String", NoEcho = true } }
      x.secret_parameters = { "GitHubToken" }
      return x
    end
    local rep = engine():up({ d() })
    assert.are.equal(1, rep.exit_code)
    assert.matches("secret parameter GitHubToken has no value", rep.stacks["t-secret"].error)
    assert.is_nil(stack("t-secret"))
    local eng, out, data = engine({ output = "json", secret = function(_, name) return "s3cr3t-" .. name end })
    rep = eng:up({ d() })
    assert.are.equal(0, rep.exit_code)
    assert.is_nil((out:text() .. data:text() .. json.encode(rep.summary_lines)):find("s3cr3t", 1, true))
    local p = stack("t-secret").Parameters[1]
    assert.are.same({ "GitHubToken", "****" }, { p.ParameterKey, p.ParameterValue })
    -- an update without the value keeps the stored one
    local d2 = d()
    d2.template.Resources.U = topic()
    rep = engine():up({ d2 })
    assert.are.equal(0, rep.exit_code)
    assert.are.equal("updated", rep.stacks["t-secret"].status)
  end)

  it("reports the failed resource and its reason after a rollback", function()
    local eng, out = engine()
    local d = desc("t-fail", { A = topic(), Bad = topic({ Metadata = { ["fake:fail"] = "quota exceeded for widgets" },
      DependsOn = "A" }) })
    local rep = eng:up({ d })
    assert.are.equal(1, rep.exit_code)
    assert.is_false(rep.ok)
    local r = rep.stacks["t-fail"]
    assert.are.equal("failed", r.status)
    assert.matches("ROLLBACK_COMPLETE", r.error)
    assert.matches("Bad %(AWS::SNS::Topic%) CREATE_FAILED: quota exceeded for widgets", r.error)
    assert.are.equal("Bad", r.events_failed[1].logical_id)
    assert.are.equal("quota exceeded for widgets", r.events_failed[1].reason)
    for _, f in ipairs(r.events_failed) do assert.is_nil(f.reason:find("cancelled", 1, true)) end
    local summary = table.concat(rep.summary_lines, "\n")
    assert.matches("failed%s+t%-fail%s+ROLLBACK_COMPLETE: Bad", summary)
    assert.matches("quota exceeded for widgets", out:text())
  end)

  it("skips the dependants of a failed stack while an independent sibling deploys", function()
    local eng, out = engine()
    local a = desc("t-a", { X = topic({ Metadata = { ["fake:fail"] = "nope" } }) })
    local b = desc("t-b", { Y = topic() }, { depends = { "t-a" } })
    local c = desc("t-c", { Z = topic({ Metadata = { ["fake:duration-ms"] = 300 } }) })
    local rep = eng:up({ a, b, c })
    assert.are.equal(1, rep.exit_code)
    assert.are.equal("failed", rep.stacks["t-a"].status)
    assert.are.equal("skipped", rep.stacks["t-b"].status)
    assert.are.equal("dependency t-a failed", rep.stacks["t-b"].error)
    assert.are.equal("created", rep.stacks["t-c"].status)
    assert.is_nil(stack("t-b"))
    assert.matches("skipped%s+t%-b%s+dependency t%-a failed", table.concat(rep.summary_lines, "\n"))
    assert.matches("Summary: 1 created, 1 failed, 1 skipped", out:text())
  end)

  it("leaves no REVIEW_IN_PROGRESS stack behind for creates never executed (deferred ones too)", function()
    local function pair(prefix, fail)
      local a = desc(prefix .. "-a", { X = topic(fail and { Metadata = { ["fake:fail"] = "nope" } } or nil) },
        { outputs = { Topic = { Value = { Ref = "X" }, Export = { Name = prefix .. "-a-Topic" } } } })
      local b = desc(prefix .. "-b", { Y = { Type = "AWS::SNS::Subscription", Properties = { Protocol = "email",
        Endpoint = "a@example.com", TopicArn = { ["Fn::ImportValue"] = prefix .. "-a-Topic" } } } },
        { depends = { prefix .. "-a" } })
      return { a, b }
    end
    -- b's change set waits for a's export (deferred); a fails, b is skipped
    local eng, out = engine()
    local rep = eng:up(pair("t-rv", true))
    assert.are.equal(1, rep.exit_code)
    assert.are.equal("skipped", rep.stacks["t-rv-b"].status)
    assert.matches("change set after t%-rv%-a", out:text())
    assert.is_nil(stack("t-rv-b"))
    -- a diff of two new stacks, the second deferred
    rep = engine():diff(pair("t-rvd", false))
    assert.are.equal(0, rep.exit_code)
    assert.is_nil(stack("t-rvd-a"))
    assert.is_nil(stack("t-rvd-b"))
    -- not confirmed
    rep = engine({ yes = false }):up(pair("t-rvn", false))
    assert.are.equal(4, rep.exit_code)
    assert.is_nil(stack("t-rvn-b"))
    for _, s in ipairs(cfn:ListStacks {}.StackSummaries) do
      assert.are_not.equal("REVIEW_IN_PROGRESS", s.StackStatus, s.StackName)
    end
  end)

  it("updates the importer first when an update drops an export still in use, then the exporter", function()
    local function exporter(with_b)
      local outs = { A = { Value = { Ref = "TA" }, Export = { Name = "t-exp-A" } } }
      if with_b then outs.B = { Value = { Ref = "TB" }, Export = { Name = "t-exp-B" } } end
      return desc("t-exp", { TA = topic(), TB = topic() }, { outputs = outs })
    end
    local function importer(with_b)
      local res = { SA = { Type = "AWS::SNS::Subscription", Properties = { Protocol = "email", Endpoint = "a@example.com",
        TopicArn = { ["Fn::ImportValue"] = "t-exp-A" } } } }
      if with_b then
        res.SB = { Type = "AWS::SNS::Subscription", Properties = { Protocol = "email", Endpoint = "b@example.com",
          TopicArn = { ["Fn::ImportValue"] = "t-exp-B" } } }
      end
      return desc("t-imp", res, { depends = { "t-exp" } })
    end
    assert.are.equal(0, engine():up({ exporter(true), importer(true) }).exit_code)
    local eng, out = engine()
    local rep = eng:up({ exporter(false), importer(false) })
    assert.are.equal(0, rep.exit_code, out:text())
    assert.are.same({ "updated", "updated" }, { rep.stacks["t-exp"].status, rep.stacks["t-imp"].status })
    assert.matches("export t%-exp%-B is still imported by t%-imp, which stops importing it: updating t%-imp first",
      out:text())
    local names = {}
    for _, e in ipairs(cfn:ListExports {}.Exports) do names[#names + 1] = e.Name end
    table.sort(names)
    assert.are.same({ "t-exp-A" }, names)
    -- an importer that keeps importing it: the failure says why (the stack's own reason)
    assert.are.equal(0, engine():up({ exporter(true), importer(true) }).exit_code)
    rep = engine():up({ exporter(false), desc("t-imp2", { S = { Type = "AWS::SNS::Subscription", Properties = {
      Protocol = "email", Endpoint = "c@example.com", TopicArn = { ["Fn::ImportValue"] = "t-exp-B" } } } }) })
    assert.are.equal(1, rep.exit_code)
    assert.matches("UPDATE_ROLLBACK_COMPLETE: Export t%-exp%-B cannot be deleted as it is in use by t%-imp",
      rep.stacks["t-exp"].error)
  end)

  it("deploys independent stacks concurrently (wall ~ max, not sum)", function()
    local function stacks(prefix)
      local list = {}
      for i = 1, 4 do
        list[i] = desc(prefix .. i, { R = topic({ Metadata = { ["fake:duration-ms"] = 700 } }) })
      end
      return list
    end
    local t0 = async.now()
    local rep = engine({ concurrency = 4 }):up(stacks("t-par"))
    local par = async.now() - t0
    assert.are.equal(0, rep.exit_code)
    t0 = async.now()
    rep = engine({ concurrency = 1 }):up(stacks("t-seq"))
    local seq = async.now() - t0
    assert.are.equal(0, rep.exit_code)
    -- 4 x 0.7 s: sequential >= 2.8 s; parallel close to 0.7 s plus overhead
    assert.is_true(seq >= 2.8, "sequential took " .. seq)
    assert.is_true(par < seq * 0.6, string.format("parallel %.2fs vs sequential %.2fs", par, seq))
    assert.is_true(par < 2.2, "parallel took " .. par)
  end)

  it("deletes a ROLLBACK_COMPLETE stack and creates it again", function()
    local bad = desc("t-rc", { X = topic({ Metadata = { ["fake:fail"] = "bad image" } }) })
    assert.are.equal(1, engine():up({ bad }).exit_code)
    local old = stack("t-rc")
    assert.are.equal("ROLLBACK_COMPLETE", old.StackStatus)
    -- without --yes and without a TTY nothing is deleted
    local rep0 = engine({ yes = false }):up({ desc("t-rc", { X = topic() }) })
    assert.are.equal(4, rep0.exit_code)
    assert.are.equal(old.StackId, stack("t-rc").StackId)
    -- on a terminal the question names the re-create; "no" keeps the failed stack
    local seen
    local repq = engine({ yes = false, interactive = true, confirm = function(q) seen = q return false end })
      :up({ desc("t-rc", { X = topic() }) })
    assert.are.equal(4, repq.exit_code)
    assert.matches("t%-rc: re%-create: the failed create %(ROLLBACK_COMPLETE%) is deleted first", seen.text)
    assert.are.same({ "t-rc" }, seen.stacks)
    assert.are.equal(old.StackId, stack("t-rc").StackId)
    local eng, out = engine()
    local rep = eng:up({ desc("t-rc", { X = topic() }) })
    assert.are.equal(0, rep.exit_code, out:text())
    assert.are.equal("created", rep.stacks["t-rc"].status)
    local new = stack("t-rc")
    assert.are.equal("CREATE_COMPLETE", new.StackStatus)
    assert.are_not.equal(old.StackId, new.StackId)
    assert.matches("re%-create: the failed create %(ROLLBACK_COMPLETE%)", out:text())
  end)

  it("recovers UPDATE_ROLLBACK_FAILED with ContinueUpdateRollback, then updates", function()
    local v1 = desc("t-urf", { A = topic({ Properties = { DisplayName = "a1" } }), B = topic() })
    assert.are.equal(0, engine():up({ v1 }).exit_code)
    local v2 = desc("t-urf", {
      A = topic({ Properties = { DisplayName = "a2" }, Metadata = { ["fake:fail-rollback"] = "cannot roll back A" } }),
      B = topic({ Properties = { DisplayName = "b2" }, Metadata = { ["fake:fail"] = "B broke" }, DependsOn = "A" }) })
    local rep = engine():up({ v2 })
    assert.are.equal(1, rep.exit_code)
    assert.are.equal("UPDATE_ROLLBACK_FAILED", stack("t-urf").StackStatus)
    assert.matches("B broke", rep.stacks["t-urf"].error)
    local v3 = desc("t-urf", { A = topic({ Properties = { DisplayName = "a3" } }), B = topic() })
    local eng, out = engine()
    rep = eng:up({ v3 })
    assert.are.equal(0, rep.exit_code, out:text())
    assert.are.equal("updated", rep.stacks["t-urf"].status)
    assert.are.equal(1, #calls("ContinueUpdateRollback"))
    assert.are.equal("UPDATE_COMPLETE", stack("t-urf").StackStatus)
    assert.matches("recover: ContinueUpdateRollback", out:text())
  end)

  it("waits for a stack already in progress before deploying it", function()
    local body = json.encode({ Resources = { R = topic({ Metadata = { ["fake:duration-ms"] = 600 } }) } })
    assert(cfn:CreateStack { StackName = "t-busy", TemplateBody = body })
    local eng, out = engine()
    local rep = eng:up({ desc("t-busy", { R = topic({ Metadata = { ["fake:duration-ms"] = 600 } }), S = topic() }) })
    assert.are.equal(0, rep.exit_code, out:text())
    assert.are.equal("updated", rep.stacks["t-busy"].status)
    assert.matches("waiting for CREATE_IN_PROGRESS", out:text())
    assert.matches("t%-busy  R  CREATE_COMPLETE", out:text())
  end)

  it("survives a throttling storm and dropped connections: no duplicates, no lost events", function()
    control("/faults", { spec = "cloudformation:Describe*:throttle@p=0.5,cloudformation:ExecuteChangeSet:reset@1,"
      .. "cloudformation:CreateChangeSet:reset@2,cloudformation:*:throttle@p=0.2", seed = 7 })
    control("/config", { page_sizes = { DescribeStackEvents = 3 } })  -- force paging
    local eng, _, data = engine({ output = "json", concurrency = 3 })
    local list = {}
    for i = 1, 3 do list[i] = desc("t-storm" .. i, { A = topic(), B = topic({ DependsOn = "A" }) }) end
    local rep = eng:up(list)
    assert.are.equal(0, rep.exit_code)
    local faults = control("/faults")
    local fired = 0
    for _, r in ipairs(faults.rules) do fired = fired + r.fired end
    assert.is_true(fired >= 10, "only " .. fired .. " faults fired")
    -- the dropped CreateChangeSet went through: its retry found it existing
    local already = 0
    for _, c in ipairs(calls("CreateChangeSet")) do
      if c.error == "AlreadyExistsException" then already = already + 1 end
    end
    assert.are.equal(1, already)
    assert.is_true(#calls("ExecuteChangeSet") > 3)
    control("/faults", { spec = "" })
    -- exactly the three stacks, each created once
    local names = {}
    for _, s in ipairs(cfn:ListStacks {}.StackSummaries) do names[#names + 1] = s.StackName .. ":" .. s.StackStatus end
    table.sort(names)
    assert.are.same({ "t-storm1:CREATE_COMPLETE", "t-storm2:CREATE_COMPLETE", "t-storm3:CREATE_COMPLETE" }, names)
    -- every event of every stack was emitted exactly once
    local got = {}
    for line in data:text():gmatch("[^\n]+") do
      local o = assert(json.decode(line))
      if o.event_id then
        local key = o.stack .. "/" .. o.event_id   -- fakeaws's ids are unique per stack
        assert.is_nil(got[key], "event emitted twice: " .. key)
        got[key] = true
      end
    end
    for i = 1, 3 do
      for _, ev in ipairs(cfn:DescribeStackEvents { StackName = "t-storm" .. i }.StackEvents) do
        if ev.ResourceStatus ~= "REVIEW_IN_PROGRESS" then
          assert.is_true(got["t-storm" .. i .. "/" .. ev.EventId], "lost event " .. ev.EventId .. " " .. ev.ResourceStatus)
        end
      end
    end
  end)

  it("uploads a template over 51,200 bytes to the managed bucket", function()
    local res = {}
    for i = 1, 60 do
      res["Topic" .. i] = topic({ Metadata = { Note = string.rep("x", 900) } })
    end
    local d = desc("t-big", res)
    d.body = json.encode(d.template, { pretty = true })
    d.needs_s3 = #d.body > 51200
    assert.is_true(d.needs_s3)
    local eng, out = engine()
    local rep = eng:up({ d })
    assert.are.equal(0, rep.exit_code, out:text())
    local bucket = "t-lumu-templates-" .. ACCOUNT .. "-us-east-1"
    local s3c = assert(client("s3"))
    assert.are.equal("Enabled", s3c:GetBucketVersioning { Bucket = bucket }.Status)
    local enc = s3c:GetBucketEncryption { Bucket = bucket }
    assert.are.equal("AES256", enc.ServerSideEncryptionConfiguration.Rules[1].ApplyServerSideEncryptionByDefault.SSEAlgorithm)
    assert.is_true(s3c:GetPublicAccessBlock { Bucket = bucket }.PublicAccessBlockConfiguration.BlockPublicPolicy)
    assert.matches("aws:SecureTransport", s3c:GetBucketPolicy { Bucket = bucket }.Policy)
    local objs = s3c:ListObjectsV2 { Bucket = bucket }.Contents
    assert.are.equal(1, #objs)
    assert.matches("^templates/t%-big/%x+%.json$", objs[1].Key)
    assert.are.equal(d.body, cfn:GetTemplate { StackName = "t-big" }.TemplateBody)
    assert.matches("created template bucket", out:text())
    -- a second deploy reuses the bucket without re-creating it
    assert.are.equal(0, engine():up({ d }).exit_code)
    assert.are.equal(1, #control("/calls?operation=CreateBucket"))
  end)

  it("without --yes and without a TTY shows the diff and exits 4", function()
    local eng, out = engine({ yes = false, interactive = false })
    local rep = eng:up({ desc("t-notty", { T = topic() }), desc("t-notty2", { T = topic() }) })
    assert.are.equal(4, rep.exit_code)
    assert.is_false(rep.ok)
    assert.are.equal("not executed", rep.stacks["t-notty"].status)
    assert.matches("t%-notty: new stack", out:text())
    assert.matches("re%-run with %-%-yes", out:text())
    assert.is_nil(stack("t-notty"))      -- the REVIEW_IN_PROGRESS stack was removed
    assert.are.equal(0, #calls("ExecuteChangeSet"))
    -- interactive: one question for the whole run
    local asked = 0
    local summary_seen
    local eng2 = engine({ yes = false, interactive = true, confirm = function(s)
      asked = asked + 1
      summary_seen = s
      return false
    end })
    assert.are.equal(4, eng2:up({ desc("t-notty", { T = topic() }), desc("t-notty2", { T = topic() }) }).exit_code)
    assert.are.equal(1, asked)
    assert.are.same({ "t-notty", "t-notty2" }, summary_seen.stacks)
    asked = 0
    local eng3 = engine({ yes = false, interactive = true, confirm = function() asked = asked + 1 return true end })
    assert.are.equal(0, eng3:up({ desc("t-notty", { T = topic() }), desc("t-notty2", { T = topic() }) }).exit_code)
    assert.are.equal(1, asked)
  end)

  it("writes JSON lines that parse", function()
    local eng, out, data = engine({ output = "json" })
    local rep = eng:up({ desc("t-json", { T = topic() }) })
    assert.are.equal(0, rep.exit_code)
    assert.are.equal("", out:text())
    local types, n = {}, 0
    for line in data:text():gmatch("[^\n]+") do
      local o, err = json.decode(line)
      assert.is_table(o, err)
      assert.is_string(o.type)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", o.time)
      types[o.type] = (types[o.type] or 0) + 1
      n = n + 1
    end
    assert.is_true(n >= 6)
    assert.is_true(types.resource >= 3 and types.stack >= 2 and types.diff == 1 and types.result == 1)
    local last = json.decode(data:text():match("([^\n]+)\n$"))
    assert.are.equal("summary", last.type)
    assert.are.equal(0, last.exit_code)
  end)

  it("deletes in reverse dependency order", function()
    local a = desc("t-da", { T = topic() })
    local b = desc("t-db", { T = topic() }, { depends = { "t-da" } })
    local c = desc("t-dc", { T = topic() }, { depends = { "t-db" } })
    assert.are.equal(0, engine():up({ a, b, c }).exit_code)
    control("/calls/reset", {})
    local rep = engine():down({ a, b, c })
    assert.are.equal(0, rep.exit_code)
    assert.are.equal(3, #calls("DeleteStack"))
    -- the call log does not name stacks: check the order by deletion time
    for _, n in ipairs({ "t-da", "t-db", "t-dc" }) do
      assert.are.equal("deleted", rep.stacks[n].status)
      assert.is_nil(stack(n))
    end
    local done = {}
    for _, s in ipairs(cfn:ListStacks { StackStatusFilter = { "DELETE_COMPLETE" } }.StackSummaries) do
      done[s.StackName] = s.DeletionTime
    end
    assert.is_true(done["t-dc"] <= done["t-db"] and done["t-db"] <= done["t-da"])
    -- names only: the list is deploy order, the last goes first; missing ones are fine
    local rep2 = engine():down({ "t-da", "t-nothere" })
    assert.are.equal(0, rep2.exit_code)
    assert.are.equal("not found", rep2.stacks["t-nothere"].status)
  end)

  it("protects production: termination protection blocks down unless allow_data_loss", function()
    local d = desc("t-prod", { T = topic() }, { env = "production" })
    assert.are.equal(0, engine():up({ d }).exit_code)
    assert.is_true(stack("t-prod").EnableTerminationProtection)
    local rep = engine():down({ d })
    assert.are.equal(1, rep.exit_code)
    assert.matches("termination protection", rep.stacks["t-prod"].error)
    assert.are.equal("CREATE_COMPLETE", stack("t-prod").StackStatus)
    local eng, out = engine({ allow_data_loss = true })
    rep = eng:down({ d })
    assert.are.equal(0, rep.exit_code, out:text())
    assert.is_nil(stack("t-prod"))
  end)

  it("the stack policy refuses replacing a bucket unless allow_data_loss", function()
    local v1 = desc("t-pol", { B = { Type = "AWS::S3::Bucket", Properties = { BucketName = "t-pol-data-1" } } })
    assert.are.equal(0, engine():up({ v1 }).exit_code)
    local v2 = desc("t-pol", { B = { Type = "AWS::S3::Bucket", Properties = { BucketName = "t-pol-data-2" } } })
    local rep = engine():up({ v2 })
    assert.are.equal(1, rep.exit_code)
    assert.matches("denied by stack policy", rep.stacks["t-pol"].error)
    assert.matches("%-%-allow%-data%-loss", rep.stacks["t-pol"].error)
    rep = engine({ allow_data_loss = true }):up({ v2 })
    assert.are.equal(0, rep.exit_code)
    assert.are.equal("updated", rep.stacks["t-pol"].status)
    -- the protective policy is back after the run
    assert.matches("Update:Replace", cfn:GetStackPolicy { StackName = "t-pol" }.StackPolicyBody)
  end)

  it("detects a hung ECS service update, reports the ECS event and cancels", function()
    local function svc(extra)
      local r = { Type = "AWS::ECS::Service", Properties = { Cluster = "c1", TaskDefinition = "td:1", DesiredCount = 1 } }
      for k, v in pairs(extra or {}) do r.Properties[k] = v end
      return r
    end
    assert.are.equal(0, engine():up({ desc("t-ecs", { Svc = svc() }) }).exit_code)
    local hung = desc("t-ecs", { Svc = svc({ DesiredCount = 2 }) })
    hung.template.Resources.Svc.Metadata = { ["fake:ecs"] = { never_stable = true } }
    local eng, out = engine({ ecs_timeout = 0.8 })
    local t0 = async.now()
    local rep = eng:up({ hung })
    assert.is_true(async.now() - t0 < 10)
    assert.are.equal(1, rep.exit_code)
    local err = rep.stacks["t-ecs"].error
    assert.matches("service not stabilising: %(service [^)]+%) was unable to place a task", err)
    assert.matches("UPDATE_ROLLBACK_COMPLETE", err)
    assert.are.equal(1, #calls("CancelUpdateStack"))
    assert.is_true(#calls("DescribeServices") >= 1)
    assert.matches("ECS", out:text())
    assert.are.equal("UPDATE_ROLLBACK_COMPLETE", stack("t-ecs").StackStatus)
  end)

  it("on Ctrl-C cancels in-flight updates, tails the rollback and exits 130", function()
    local v1 = desc("t-int", { A = topic({ Properties = { DisplayName = "1" } }) })
    local other = desc("t-int-later", { A = topic() }, { depends = { "t-int" } })
    assert.are.equal(0, engine():up({ v1 }).exit_code)
    local v2 = desc("t-int", { A = topic({ Properties = { DisplayName = "2" },
      Metadata = { ["fake:duration-ms"] = 1500 } }) })
    -- the host turns Ctrl-C into an "interrupted!" error out of an HTTP wait:
    -- raise it from the client once the update is being tailed
    local tailing = 0
    local function iclient(service)
      local c = client(service)
      if service ~= "cloudformation" then return c end
      return setmetatable({}, { __index = function(_, op)
        return function(_, params)
          if op == "DescribeStackEvents" then
            tailing = tailing + 1
            if tailing == 4 then error("interrupted!") end
          end
          return c[op](c, params)
        end
      end })
    end
    local eng, out = engine({ client = iclient })
    local rep = eng:up({ v2, other })
    assert.are.equal(130, rep.exit_code, out:text())
    assert.are.equal("cancelled", rep.stacks["t-int"].status)
    assert.are.equal("skipped", rep.stacks["t-int-later"].status)
    assert.are.equal(1, #calls("CancelUpdateStack"))
    assert.are.equal("UPDATE_ROLLBACK_COMPLETE", stack("t-int").StackStatus)
    assert.matches("interrupted: cancelling in%-flight updates", out:text())
    assert.matches("UPDATE_ROLLBACK_COMPLETE", out:text())
    assert.is_nil(stack("t-int-later"))
  end)

  it("a real SIGINT cancels; a second one exits at once with the states and how to resume", function()
    local bin = lumu_bin()
    assert.is_string(bin)
    assert.are.equal(0, engine():up({ desc("t-sig", { A = topic({ Properties = { DisplayName = "1" } }) }) }).exit_code)
    local script = tmp .. "/sig.lua"
    assert(fs.write(script, string.format([[
      local aws = require "lumu.aws"
      local deploy = require "lumu.deploy"
      local function client(s)
        return aws.client(s, { region = "us-east-1", endpoint_url = %q, env = {},
          credentials = { access_key_id = %q, secret_access_key = %q } })
      end
      local eng = deploy.engine{ client = client, yes = true, output = "lines", no_color = true,
        poll = { min = 0.05, max = 0.2, changeset = 0.05 } }
      local rep = eng:up({ { name = "t-sig", kind = "t", depends = {}, template = { Resources = {
        A = { Type = "AWS::SNS::Topic", Properties = { DisplayName = "2" },
              Metadata = { ["fake:duration-ms"] = 4000 } } } } } })
      io.stderr:write("EXIT ", rep.exit_code, " ", rep.stacks["t-sig"].status, "\n")
      os.exit(rep.exit_code)
    ]], base, AK, SK)))
    local log = tmp .. "/sig.log"
    local function run_and_interrupt(n)
      local p = io.popen(string.format("%q %q > %q 2>&1 & echo $!", bin, script, log))
      local pid = p:read("l")
      p:close()
      -- wait until the update is executing
      local t0 = async.now()
      while #calls("ExecuteChangeSet") == 0 and async.now() - t0 < 10 do async.sleep(0.05) end
      async.sleep(0.3)
      for i = 1, n do
        os.execute("kill -INT " .. pid)
        if i < n then async.sleep(0.3) end
      end
      t0 = async.now()
      while os.execute("kill -0 " .. pid .. " 2>/dev/null") and async.now() - t0 < 15 do async.sleep(0.05) end
      return assert(fs.read(log))
    end
    control("/calls/reset", {})
    local text = run_and_interrupt(1)
    assert.matches("interrupted: cancelling in%-flight updates", text)
    assert.matches("EXIT 130 cancelled", text)
    assert.are.equal(1, #calls("CancelUpdateStack"))
    assert.are.equal("UPDATE_ROLLBACK_COMPLETE", stack("t-sig").StackStatus)
    -- twice: the second Ctrl-C stops waiting and says how to resume
    control("/config", { resource_ms = 40, changeset_ms = 30, time_scale = 30 })
    control("/calls/reset", {})
    text = run_and_interrupt(2)
    assert.matches("interrupted again", text)
    assert.matches("t%-sig%s+UPDATE_ROLLBACK_IN_PROGRESS", text)
    assert.matches("Re%-run the same command to resume", text)
    assert.matches("EXIT 130 interrupted", text)
    control("/config", { time_scale = 1 })
  end)

  -- a client that records the parameters of every CloudFormation call
  local function recording(log)
    return function(service)
      local c = client(service)
      if service ~= "cloudformation" then return c end
      return setmetatable({}, { __index = function(_, op)
        return function(_, params)
          log[#log + 1] = { op = op, params = params }
          return c[op](c, params)
        end
      end })
    end
  end

  local function roles_of(log, op)
    local out, n = {}, 0
    for _, e in ipairs(log) do
      if e.op == op then
        n = n + 1
        out[#out + 1] = e.params.RoleARN or "none"
      end
    end
    return out, n
  end

  it("passes the CloudFormation service role (RoleARN), and none when it is unset", function()
    local R1 = "arn:aws:iam::" .. ACCOUNT .. ":role/mu-cloudformation-common-us-east-1"
    local R2 = "arn:aws:iam::" .. ACCOUNT .. ":role/other-cfn-role"
    assert.has_error(function() engine({ role_arn = "mu-cloudformation-common" }) end)
    assert.has_error(function() engine({ role_arn = 42 }) end)
    -- with a role: every CreateChangeSet, and the deletes
    local log = {}
    local rep = engine({ role_arn = R1, client = recording(log) }):up({ desc("t-role", { T = topic() }) })
    assert.are.equal(0, rep.exit_code)
    assert.are.same({ R1 }, (roles_of(log, "CreateChangeSet")))
    assert.are.equal(R1, stack("t-role").RoleARN)
    -- a diff of a new stack deletes its REVIEW_IN_PROGRESS stack with the role too
    log = {}
    rep = engine({ role_arn = R1, client = recording(log) }):diff({ desc("t-role-new", { T = topic() }) })
    assert.are.equal(0, rep.exit_code)
    assert.are.same({ R1 }, (roles_of(log, "CreateChangeSet")))
    assert.are.same({ R1 }, (roles_of(log, "DeleteStack")))
    local id = stack("t-role").StackId
    log = {}
    rep = engine({ role_arn = R2, client = recording(log) }):down({ desc("t-role", { T = topic() }) })
    assert.are.equal(0, rep.exit_code)
    assert.are.same({ R2 }, (roles_of(log, "DeleteStack")))
    local gone = cfn:DescribeStacks { StackName = id }.Stacks[1]
    assert.are.same({ "DELETE_COMPLETE", R2 }, { gone.StackStatus, gone.RoleARN })
    -- per stack: desc.role_arn wins; a stack in another account gets no role of this one
    log = {}
    local other = desc("t-role-acct", { T = topic() })
    other.account = "210987654321"
    local own = desc("t-role-own", { T = topic() })
    own.role_arn = R2
    rep = engine({ role_arn = R1, client = recording(log) }):diff({ other, own })
    assert.are.equal(0, rep.exit_code)
    local byname = {}
    for _, e in ipairs(log) do
      if e.op == "CreateChangeSet" then byname[e.params.StackName] = e.params.RoleARN or "none" end
    end
    assert.are.same({ ["t-role-acct"] = "none", ["t-role-own"] = R2 }, byname)
    -- without one: no RoleARN anywhere, and the stack has none
    log = {}
    rep = engine({ client = recording(log) }):up({ desc("t-norole", { T = topic() }) })
    assert.are.equal(0, rep.exit_code)
    local got, n = roles_of(log, "CreateChangeSet")
    assert.are.same({ "none" }, got)
    assert.are.equal(1, n)
    assert.is_nil(stack("t-norole").RoleARN)
    id = stack("t-norole").StackId
    log = {}
    assert.are.equal(0, engine({ client = recording(log) }):down({ "t-norole" }).exit_code)
    assert.are.same({ "none" }, (roles_of(log, "DeleteStack")))
    assert.is_nil(cfn:DescribeStacks { StackName = id }.Stacks[1].RoleARN)
    -- fakeaws refuses what is not a role ARN (as CloudFormation does)
    local res, err = cfn:CreateChangeSet { StackName = "t-role-bad", ChangeSetName = "c1", ChangeSetType = "CREATE",
      TemplateBody = json.encode({ Resources = { T = topic() } }), RoleARN = "arn:aws:iam::" .. ACCOUNT .. ":user/x" }
    assert.is_nil(res)
    assert.are.equal("ValidationError", err.code)
    assert.matches("is invalid or cannot be assumed", err.message)
  end)

  it("recovers UPDATE_ROLLBACK_FAILED with the service role", function()
    local R = "arn:aws:iam::" .. ACCOUNT .. ":role/cfn"
    assert.are.equal(0, engine():up({ desc("t-urf-role", { A = topic({ Properties = { DisplayName = "a1" } }) }) }).exit_code)
    local v2 = desc("t-urf-role", { A = topic({ Properties = { DisplayName = "a2" },
      Metadata = { ["fake:fail-rollback"] = "stuck", ["fake:fail"] = "broken" } }) })
    assert.are.equal(1, engine():up({ v2 }).exit_code)
    assert.are.equal("UPDATE_ROLLBACK_FAILED", stack("t-urf-role").StackStatus)
    local log = {}
    local rep = engine({ role_arn = R, client = recording(log) }):up({ desc("t-urf-role", { A = topic() }) })
    assert.are.equal(0, rep.exit_code)
    assert.are.same({ R }, (roles_of(log, "ContinueUpdateRollback")))
    assert.are.same({ R }, (roles_of(log, "CreateChangeSet")))
  end)

  it("refuses to update a stack last deployed by a newer lumu unless skip_version_check (-F)", function()
    local function d(v) return desc("t-ver", { T = topic({ Properties = { DisplayName = v } }) }) end
    assert.are.equal(0, engine({ version = "0.3.0" }):up({ d("1") }).exit_code)
    local function tag()
      for _, t in ipairs(stack("t-ver").Tags) do
        if t.Key == "lumu:version" then return t.Value end
      end
    end
    assert.are.equal("0.3.0", tag())
    -- an older lumu: refused before any change set, the stack untouched
    control("/calls/reset", {})
    local eng, out = engine({ version = "0.2.9" })
    local rep = eng:up({ d("2") })
    assert.are.equal(1, rep.exit_code)
    assert.are.equal("failed", rep.stacks["t-ver"].status)
    assert.matches("last deployed by lumu 0%.3%.0, newer than this lumu 0%.2%.9", rep.stacks["t-ver"].error)
    assert.matches("%-F/%-%-skip%-version%-check", rep.stacks["t-ver"].error)
    assert.matches("failed%s+t%-ver%s+last deployed by lumu 0%.3%.0", out:text())
    assert.are.equal(0, #calls("CreateChangeSet"))
    assert.is_nil(stack("t-ver").LastUpdatedTime)
    -- its dependants are skipped as for any failure
    rep = engine({ version = "0.2.9" }):up({ d("2"), desc("t-ver-dep", { T = topic() }, { depends = { "t-ver" } }) })
    assert.are.same({ "failed", "skipped" }, { rep.stacks["t-ver"].status, rep.stacks["t-ver-dep"].status })
    -- diff only warns
    local deng, dout = engine({ version = "0.2.9" })
    rep = deng:diff({ d("2") })
    assert.are.equal(0, rep.exit_code)
    assert.are.equal("changes", rep.stacks["t-ver"].status)
    assert.matches("up will refuse to update it without %-F", dout:text())
    -- a newer patch of the same 0.x minor, and a newer lumu, are fine
    assert.are.equal(0, engine({ version = "0.3.7" }):up({ d("3") }).exit_code)
    assert.are.equal("0.3.7", tag())
    -- -F: updated with a warning, and the tag is this lumu's now
    assert.are.equal(0, engine({ version = "0.4.0" }):up({ d("4") }).exit_code)
    local feng, fout = engine({ version = "0.3.7", skip_version_check = true })
    rep = feng:up({ d("5") })
    assert.are.equal(0, rep.exit_code, fout:text())
    assert.are.equal("updated", rep.stacks["t-ver"].status)
    assert.matches("t%-ver: warning: last deployed by lumu 0%.4%.0, newer than this lumu 0%.3%.7: updating it anyway", fout:text())
    assert.are.equal("0.3.7", tag())
    -- deleting is never refused
    assert.are.equal(0, engine({ version = "0.4.0" }):up({ d("6") }).exit_code)
    assert.are.equal(0, engine({ version = "0.1.0" }):down({ "t-ver" }).exit_code)
    assert.has_error(function() engine({ version = 1 }) end)
  end)
end)
