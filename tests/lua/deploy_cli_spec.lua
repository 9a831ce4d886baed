-- The deploy commands' wiring over fakes (tests/lua/cmd_fakes.lua): the
-- CloudFormation service role (LUMU_CFN_ROLE_ARN, roles.cloudFormation) and
-- -F reach the engine; `svc push --provider s3` zips the project and uploads
-- it where `svc deploy` points RevisionKey; lumu.deploy.render's terminal
-- size.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fakes = dofile(HERE .. "/cmd_fakes.lua")
local fs = require "lumu.fs"
local project = require "lumu.project"
local zip = require "lumu.zip"

local EX = fakes.EXAMPLE
local BUCKET = "mu-codedeploy-eu-west-1-123456789012"

local tmp, cfg
before_each(function()
  tmp = assert(fs.tmpdir("lumu-deploycli-"))
  cfg = fs.join(tmp, "lumu.lua")
  assert(fs.write(cfg, assert(fs.read(EX))))
end)
after_each(function() if tmp then fs.rmtree(tmp) end end)

local function svc(ctx, ...)
  return fakes.run("lumu.cli.svc", ctx, { ... })
end

describe("the engine options of a session", function()
  it("pass the CloudFormation service role from LUMU_CFN_ROLE_ARN, else roles.cloudFormation, else none", function()
    local function engine_opts(env, config)
      local dep = fakes.deploy()
      local s = assert(project.session(fakes.ctx { aws = fakes.aws(fakes.handlers()), deploy = dep, env = env },
        { config = config or cfg }))
      local eng, err = s:engine()
      return dep.opts, eng, err
    end
    local o = engine_opts({})
    assert.is_nil(o.role_arn)
    o = engine_opts({ LUMU_CFN_ROLE_ARN = "arn:aws:iam::123456789012:role/mu-cloudformation-common-eu-west-1" })
    assert.are.equal("arn:aws:iam::123456789012:role/mu-cloudformation-common-eu-west-1", o.role_arn)
    local withrole = fs.join(tmp, "role.lua")
    assert(fs.write(withrole, assert(fs.read(EX)) .. '\nroles { cloudFormation = "arn:aws:iam::123456789012:role/cfn" }\n'))
    o = engine_opts({}, withrole)
    assert.are.equal("arn:aws:iam::123456789012:role/cfn", o.role_arn)
    o = engine_opts({ LUMU_CFN_ROLE_ARN = "arn:aws:iam::123456789012:role/from-env" }, withrole)
    assert.are.equal("arn:aws:iam::123456789012:role/from-env", o.role_arn)
    local _, eng, err = engine_opts({ LUMU_CFN_ROLE_ARN = "not-a-role" })
    assert.is_nil(eng)
    assert.matches("LUMU_CFN_ROLE_ARN must be an IAM role ARN", err)
    -- ... and a command says so (it used to exit 0 silently)
    local ctx = fakes.ctx { aws = fakes.aws(fakes.handlers()), deploy = fakes.deploy(),
      env = { LUMU_CFN_ROLE_ARN = "not-a-role" } }
    local r, msg, code = fakes.run("lumu.cli.env", ctx, { "up", "acceptance", "--yes", "-c", cfg })
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("LUMU_CFN_ROLE_ARN must be an IAM role ARN", msg)
    r, msg, code = fakes.run("lumu.cli.env", ctx, { "terminate", "acceptance", "--yes", "-c", cfg })
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("LUMU_CFN_ROLE_ARN", msg)
  end)

  it("pass --ecs-timeout as seconds and refuse a bad one", function()
    local dep = fakes.deploy()
    local ctx = fakes.ctx { aws = fakes.aws(fakes.handlers()), deploy = dep }
    assert.are.equal(0, fakes.run("lumu.cli.env", ctx, { "up", "acceptance", "--ecs-timeout", "90s", "-c", cfg }))
    assert.are.equal(90, dep.opts.ecs_timeout)
    assert.are.equal(0, fakes.run("lumu.cli.env", ctx, { "up", "acceptance", "-c", cfg }))
    assert.is_nil(dep.opts.ecs_timeout)
    local r, msg, code = fakes.run("lumu.cli.env", ctx, { "up", "acceptance", "--ecs-timeout", "soon", "-c", cfg })
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("%-%-ecs%-timeout", msg)
  end)

  it("wait out throttling and server errors on their own calls (passwords, outputs), within limits", function()
    local n = 0
    local aws = fakes.aws(fakes.handlers({}, { ssm = { GetParameter = function()
      n = n + 1
      if n <= 4 then return nil, setmetatable({ code = "ThrottlingException", status = 400, message = "Rate exceeded" },
        { __tostring = function() return "ThrottlingException" end }) end
      return { Parameter = { Version = 7 } }
    end, PutParameter = function()
      n = n + 1
      return nil, { kind = "http", code = "ConnectionReset", message = "reset" }
    end, DeleteParameter = function()
      n = n + 1
      return nil, { code = "InternalFailure", status = 500 }
    end } }))
    local slept = 0
    local ctx = fakes.ctx { aws = aws, deploy = fakes.deploy() }
    ctx.sleep = function(d) slept = slept + d end
    local s = assert(project.session(ctx, { config = cfg }))
    assert.are.equal(7, project.password_version(s, "p"))
    assert.are.equal(5, n)
    assert.is_true(slept > 0)
    -- a write whose connection dropped is not repeated (it may have gone through)
    n = 0
    assert.is_nil(s:call("ssm", "PutParameter", { Name = "p" }))
    assert.are.equal(1, n)
    -- persistent 5xx: a bounded number of attempts
    n = 0
    local res, err = s:call("ssm", "DeleteParameter", { Name = "p" })
    assert.is_nil(res)
    assert.are.equal(500, err.status)
    assert.are.equal(12, n)
    assert.is_true(project._worth_waiting({ kind = "http" }, "DescribeStacks"))
    assert.is_false(project._worth_waiting({ kind = "http" }, "RunTask"))
    assert.is_false(project._worth_waiting({ code = "ValidationError", status = 400 }, "DescribeStacks"))
  end)

  it("pass -F / --skip-version-check, before or after the subcommand", function()
    for _, args in ipairs({ { "up", "acceptance", "-F" }, { "-F", "up", "acceptance" },
      { "up", "acceptance", "--skip-version-check" } }) do
      local dep = fakes.deploy()
      local ctx = fakes.ctx { aws = fakes.aws(fakes.handlers()), deploy = dep }
      table.insert(args, "-c")
      table.insert(args, cfg)
      assert.are.equal(0, fakes.run("lumu.cli.env", ctx, args))
      assert.is_true(dep.opts.skip_version_check, table.concat(args, " "))
    end
    local dep = fakes.deploy()
    assert.are.equal(0, fakes.run("lumu.cli.env", fakes.ctx { aws = fakes.aws(fakes.handlers()), deploy = dep },
      { "up", "acceptance", "-c", cfg }))
    assert.is_false(dep.opts.skip_version_check)
  end)
end)

describe("up in two phases (key stacks, then the databases with their passwords)", function()
  it("lets one environment finish when the other fails in the first phase", function()
    local store, state = {}, {}
    local KEY = "arn:aws:kms:eu-west-1:123456789012:key/"
    local aws = fakes.aws(fakes.handlers(state, { ssm = {
      GetParameter = function(p)
        local v = store[p.Name]
        if not v then return nil, fakes.err("ParameterNotFound", p.Name) end
        return { Parameter = { Name = p.Name, Version = v.version } }
      end,
      PutParameter = function(p)
        store[p.Name] = { version = 1, key = p.KeyId }
        return { Version = 1 }
      end,
    } }))
    local dep = fakes.deploy({ up = function(descs)
      local rep = { ok = true, exit_code = 0, stacks = {} }
      for _, d in ipairs(descs) do
        if d.env == "production" and d.kind == "iam" then
          rep.stacks[d.name] = { status = "failed", error = "boom" }
          rep.ok, rep.exit_code = false, 1
        elseif d.env == "production" and (d.kind == "database" or d.kind == "service") then
          rep.stacks[d.name] = { status = "skipped" }
        else
          rep.stacks[d.name] = { status = "created" }
          if d.kind == "iam" and d.service then
            state[#state + 1] = { name = d.name, outputs = { DatabaseKeyArn = KEY .. d.env }, tags = { ["mu:type"] = "iam" } }
          end
        end
      end
      return rep
    end })
    local ctx = fakes.ctx { aws = aws, deploy = dep }
    local s = assert(project.session(ctx, { config = cfg, yes = true }))
    local plan = assert(s:plan({ "acceptance", "production" }))
    assert.are.equal(1, s:up(plan))
    assert.are.equal(2, #dep.runs)
    local second = table.concat(dep.runs[2].names, " ")
    assert.matches("mu%-database%-sample%-service%-acceptance", second)
    assert.matches("mu%-service%-sample%-service%-acceptance", second)
    assert.is_nil(second:find("production", 1, true))
    -- only the acceptance password was made, under its key
    assert.are.same({ version = 1, key = KEY .. "acceptance" },
      store["mu-database-sample-service-acceptance-DatabaseMasterPassword"])
    assert.is_nil(store["mu-database-sample-service-production-DatabaseMasterPassword"])
    assert.matches("mu%-database%-sample%-service%-production: skipped: dependency mu%-iam%-[%w%-]+%-production failed",
      ctx.stderr:text())
    -- interrupted or not confirmed in phase 1: nothing more
    for _, c in ipairs({ 4, 130 }) do
      local d2 = fakes.deploy({ up = { ok = false, exit_code = c, stacks = { x = { status = "failed" } } } })
      local s2 = assert(project.session(fakes.ctx { aws = aws, deploy = d2 }, { config = cfg, yes = true }))
      store = {}
      assert.are.equal(c, s2:up(assert(s2:plan({ "production" }))))
      assert.are.equal(1, #d2.runs)
    end
  end)
end)

describe("svc push --provider s3", function()
  local function world(t)
    t = t or {}
    local puts = {}
    local stacks = { { name = "mu-bucket-codedeploy", tags = { ["mu:type"] = "bucket" }, outputs = { Bucket = BUCKET } } }
    local aws = fakes.aws(fakes.handlers(stacks, { s3 = { PutObject = function(p)
      puts[#puts + 1] = p
      if t.put_error then return nil, fakes.err("AccessDenied", "denied") end
      return { ETag = '"x"', VersionId = "v1" }
    end } }))
    local dep = fakes.deploy()
    local ctx = fakes.ctx { aws = aws, deploy = dep, git_revision = t.rev or false }
    return ctx, aws, dep, puts
  end

  local function project_files()
    assert(fs.write(fs.join(tmp, "appspec.yml"), "version: 0.0\nos: linux\n"))
    assert(fs.mkdir(fs.join(tmp, "scripts")))
    assert(fs.write(fs.join(tmp, "scripts/start.sh"), "#!/bin/sh\nexec nginx\n", { mode = "755" }))
    assert(fs.mkdir(fs.join(tmp, ".git")))
    assert(fs.write(fs.join(tmp, ".git/HEAD"), "ref: refs/heads/main\n"))
  end

  it("zips the project (no .git) and uploads it to <bucket>/<service>/<tag>.zip with the revision", function()
    project_files()
    local ctx, aws, dep, puts = world { rev = "abc1234" }
    assert.are.equal(0, svc(ctx, "push", "-c", cfg))
    -- the codedeploy bucket stack first (made even though the example has no ec2 environment)
    assert.are.same({ "mu-bucket-codedeploy" }, dep.runs[1].names)
    assert.are.equal("up", dep.runs[1].action)
    assert.are.equal(1, #puts)
    local p = puts[1]
    assert.are.same({ BUCKET, "sample-service/abc1234.zip", "application/zip" }, { p.Bucket, p.Key, p.ContentType })
    assert.are.equal("abc1234", p.Metadata["lumu-revision"])
    assert.are.equal("sample-service", p.Metadata["lumu-service"])
    assert.matches("^%x+$", p.Metadata["lumu-sha256"])
    assert.is_nil(p.ServerSideEncryption)
    local names = {}
    for _, e in ipairs(assert(zip.list(p.Body))) do names[#names + 1] = e.name end
    assert.are.same({ "appspec.yml", "lumu.lua", "scripts/", "scripts/start.sh" }, names)
    assert.are.equal("#!/bin/sh\nexec nginx\n", zip.read(p.Body, "scripts/start.sh"))
    assert.are.equal(tonumber("755", 8), assert(zip.list(p.Body))[4].mode)
    assert.are.equal("s3://" .. BUCKET .. "/sample-service/abc1234.zip\n", ctx.stdout:text())
    assert.matches("version v1", ctx.stderr:text())
    assert.is_nil(ctx.stderr:text():find("appspec", 1, true))
    assert.are.equal(0, aws.count("ecr"))
  end)

  it("uses SSE-KMS with -k, --tag over the revision, and is forced by -p s3 even with a Dockerfile", function()
    project_files()
    assert(fs.write(fs.join(tmp, "Dockerfile"), "FROM scratch\n"))
    local ctx, _, _, puts = world { rev = "abc1234" }
    assert.are.equal(0, svc(ctx, "push", "-p", "s3", "-k", "alias/mu-pipeline-sample-service", "-t", "v2", "-c", cfg))
    assert.are.same({ "aws:kms", "alias/mu-pipeline-sample-service", "sample-service/v2.zip" },
      { puts[1].ServerSideEncryption, puts[1].SSEKMSKeyId, puts[1].Key })
    local r, msg, code = svc(world(), "push", "-p", "s3", "-k", "bad key;", "-c", cfg)
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("invalid %-%-kms%-key", msg)
  end)

  it("uploads to the pipeline's build.bucket when the configuration names one, without a stack", function()
    project_files()
    local own = fs.join(tmp, "own.lua")
    assert(fs.write(own, (assert(fs.read(EX)):gsub('pipeline {', 'pipeline {\n  build = { bucket = "my-revisions" },', 1))))
    local ctx, _, dep, puts = world { rev = "abc1234" }
    assert.are.equal(0, svc(ctx, "push", "-c", own))
    assert.are.equal(0, #dep.runs)
    assert.are.equal("my-revisions", puts[1].Bucket)
    assert.are.equal("s3://my-revisions/sample-service/abc1234.zip\n", ctx.stdout:text())
  end)

  it("warns without appspec.yml, reports upload errors, and writes only files with --dryrun", function()
    local ctx, _, _, puts = world()
    assert.are.equal(0, svc(ctx, "push", "-t", "t1", "-c", cfg))
    assert.matches("no appspec%.yml in .*CodeDeploy will refuse", ctx.stderr:text())
    assert.are.equal(1, #puts)
    local r, msg, code = svc(world { put_error = true }, "push", "-t", "t1", "-c", cfg)
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("upload to s3://" .. BUCKET:gsub("%-", "%%-") .. "/sample%-service/t1%.zip: .*AccessDenied", msg)
    local dctx, aws, dep, dputs = world()
    local dry = fs.join(tmp, "dry")
    assert.are.equal(0, svc(dctx, "push", "-p", "s3", "-t", "t1", "-c", cfg, "-d", "-O", dry))
    assert.are.equal(0, #aws.calls + #dep.runs + #dputs)
    assert.is_true(fs.isfile(fs.join(dry, "mu-bucket-codedeploy.template.json")))
    assert.matches("would upload .* to s3://<bucket of mu%-bucket%-codedeploy>/sample%-service/t1%.zip", dctx.stderr:text())
  end)

  it("fails cleanly when the project is too big or unreadable", function()
    local ctx, _, dep, puts = world()
    ctx.max_bundle_bytes = 10
    local r, msg, code = svc(ctx, "push", "-p", "s3", "-t", "t1", "-c", cfg)
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("cannot zip .*more than 10 bytes", msg)
    assert.are.equal(0, #puts + #dep.runs)
  end)

  it("svc deploy of an ec2 environment points RevisionKey at the pushed bundle", function()
    local ec2 = fs.join(tmp, "ec2.lua")
    assert(fs.write(ec2, [[
environment { name = "acceptance", provider = "ec2" }
service { name = "web", port = 80, pathPatterns = { "/*" } }
]]))
    local ctx, _, dep = world { rev = "abc1234" }
    assert.are.equal(0, svc(ctx, "deploy", "acceptance", "-c", ec2))
    local svcdesc
    for _, d in ipairs(dep.runs[1].descs) do
      if d.kind == "service" then svcdesc = d end
    end
    assert.are.equal("web/abc1234.zip", svcdesc.parameters.RevisionKey)
    local names = fakes.names(dep.runs[1].descs)
    assert.is_true(table.concat(names, " "):find("mu-bucket-codedeploy", 1, true) ~= nil)
  end)
end)

describe("the terminal view", function()
  it("fits the terminal: stty's rows and columns when COLUMNS/LINES are not set", function()
    local render = require "lumu.deploy.render"
    local r = render.new("tty", { out = fakes.buffer(), size = function() return 12, 50 end })
    assert.are.equal(50, r.width)
    assert.are.equal(11, r.max_lines)
    r = render.new("tty", { out = fakes.buffer(), size = function() return nil end })
    assert.is_true(r.width >= 40 and r.max_lines <= 20)
    r = render.new("tty", { out = fakes.buffer(), size = function() return 100, 300 end })
    assert.are.equal(20, r.max_lines)
    assert.are.equal(300, r.width)
  end)
end)
