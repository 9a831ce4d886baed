-- lumu.project: shared flags, subcommand groups, sessions (flags, namespace,
-- revision), git revisions, picking stacks, dry runs, passwords, phases of
-- `up`, `diff` exit codes, logs, assume-role credentials.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fakes = dofile(HERE .. "/cmd_fakes.lua")
local project = require "lumu.project"
local fs = require "lumu.fs"
local json = require "lumu.json"

local tmp
before_each(function() tmp = assert(fs.tmpdir("lumu-cmdproj-")) end)
after_each(function() if tmp then fs.rmtree(tmp) end end)

local function write(path, text)
  assert(fs.mkdir(fs.dirname(path)))
  assert(fs.write(path, text))
end

describe("shared options", function()
  it("are mu's global flags plus lumu's", function()
    local names = {}
    for _, o in ipairs(project.OPTIONS) do for _, n in ipairs(o) do names[n] = true end end
    for _, n in ipairs({ "-c", "--config", "-r", "--region", "-p", "--profile", "-a", "--assume-role", "-n",
      "--namespace", "-s", "--silent", "-V", "--verbose", "-d", "--dryrun", "-O", "--dryrun-output", "-I",
      "--disable-iam", "-F", "--skip-version-check", "-P", "--proxy", "--allow-data-loss", "--endpoint-url",
      "--output", "--yes", "--no-color" }) do
      assert.is_true(names[n], n)
    end
  end)

  it("give way to a command's own short names and keep the long ones", function()
    local spec = project.options({ { "-p", "--provider", arg = "P" }, { "-s", "--service", arg = "S" } })
    local cli = require "lumu.cli"
    local opts, pos = cli.parse(spec, { "-p", "ecr", "--profile", "dev", "-s", "web", "--silent", "x" })
    assert.are.equal("ecr", opts.provider)
    assert.are.equal("dev", opts.profile)
    assert.are.equal("web", opts.service)
    assert.is_true(opts.silent)
    assert.are.same({ "x" }, pos)
    local bad = cli.parse(spec, { "--bogus" })
    assert.is_nil(bad)
  end)

  it("parse before a command up to the first word", function()
    local opts, i = project.parse_prefix({ "-n", "ns", "--region=eu-west-1", "-d", "env", "up", "-n", "x" }, 1)
    assert.are.same({ namespace = "ns", region = "eu-west-1", dryrun = true }, opts)
    assert.are.equal(5, i)
    local none, j = project.parse_prefix({ "--bogus", "env" }, 1)
    assert.are.same({}, none)
    assert.are.equal(1, j)
    local bad, err = project.parse_prefix({ "-n" }, 1)
    assert.is_nil(bad)
    assert.matches("needs a value", err)
    bad, err = project.parse_prefix({ "--yes=no" }, 1)
    assert.is_nil(bad)
    assert.matches("takes no value", err)
    assert.is_true(project.is_global("--endpoint-url=http://x"))
    assert.is_false(project.is_global("-e"))
    assert.is_false(project.is_global(nil))
  end)
end)

describe("project.group", function()
  local ran
  local grp = project.group {
    name = "thing",
    summary = "things",
    subcommands = {
      { name = "up", aliases = { "upsert" }, summary = "make", options = { { "-A", "--all" } },
        run = function(_, args, opts) ran = { args = args, opts = opts }; return 0 end },
      { name = "list", aliases = { "ls" }, summary = "list", run = function() return 7 end },
    },
  }

  it("dispatches subcommands and aliases with the shared flags merged", function()
    ran = nil
    local ctx = fakes.ctx { global_opts = { namespace = "outer", region = "r1" } }
    assert.are.equal(0, grp.run(ctx, { "-r", "r2", "upsert", "a", "-A", "b", "--yes" }))
    assert.are.same({ "a", "b" }, ran.args)
    assert.is_true(ran.opts.all)
    assert.is_true(ran.opts.yes)
    assert.are.equal("r2", ran.opts.region)        -- before the subcommand beats before the command
    assert.are.equal("outer", ran.opts.namespace)
    assert.are.equal("thing up", ran.opts._command)
    assert.are.equal(7, grp.run(fakes.ctx(), { "ls" }))
  end)

  it("reports missing, unknown and misused subcommands as usage errors", function()
    local r, msg, code = grp.run(fakes.ctx(), {})
    assert.is_nil(r); assert.are.equal(2, code); assert.matches("missing subcommand", msg)
    r, msg, code = grp.run(fakes.ctx(), { "uo" })
    assert.are.equal(2, code); assert.matches("did you mean 'up'", msg)
    r, msg, code = grp.run(fakes.ctx(), { "up", "--nope" })
    assert.are.equal(2, code); assert.matches("thing up: unknown option '%-%-nope'", msg)
  end)

  it("prints a subcommand's help", function()
    local ctx = fakes.ctx()
    assert.are.equal(0, grp.run(ctx, { "up", "--help" }))
    assert.matches("Aliases: upsert", ctx.stdout:text())
    assert.matches("%-%-assume%-role", ctx.stdout:text())
  end)

  it("lists every option once for help and completion", function()
    local seen = {}
    for _, o in ipairs(grp.options) do
      for _, n in ipairs(o) do
        assert.is_nil(seen[n], n)
        seen[n] = true
      end
    end
    assert.is_true(seen["-A"])
    assert.is_true(seen["--namespace"])
    assert.are.same({ "up", "list", "upsert", "ls" }, grp.complete)
  end)
end)

describe("sessions", function()
  local cfg
  before_each(function()
    cfg = fs.join(tmp, "mu.yml")
    write(cfg, "namespace: filens\nenvironments:\n  - name: dev\nservice:\n  name: web\n")
  end)

  it("take the namespace from the flag, MU_NAMESPACE, the file, else mu", function()
    local s = assert(project.session(fakes.ctx { env = { MU_NAMESPACE = "envns" } }, { config = cfg, namespace = "flag" }))
    assert.are.equal("flag", s.namespace)
    s = assert(project.session(fakes.ctx { env = { MU_NAMESPACE = "envns" } }, { config = cfg }))
    assert.are.equal("envns", s.namespace)
    s = assert(project.session(fakes.ctx(), { config = cfg }))
    assert.are.equal("filens", s.namespace)
    s = assert(project.session(fakes.ctx(), {}, { config = false }))
    assert.are.equal("mu", s.namespace)
    s = assert(project.session(fakes.ctx { env = { MU_NAMESPACE = "e2" } }, {}, { config = false }))
    assert.are.equal("e2", s.namespace)
  end)

  it("reject bad flag values as usage errors", function()
    local cases = {
      { { output = "yaml" }, "%-%-output must be text or json" },
      { { concurrency = "0" }, "%-%-concurrency" },
      { { concurrency = "lots" }, "%-%-concurrency" },
      { { endpoint_url = "localhost:4566" }, "%-%-endpoint%-url" },
      { { proxy = "proxy" }, "%-%-proxy" },
      { { assume_role = "admin" }, "%-%-assume%-role" },
      { { namespace = "bad ns!" }, "namespace" },
    }
    for _, c in ipairs(cases) do
      local s, msg, code = project.session(fakes.ctx(), c[1], { config = false, name = "x" })
      assert.is_nil(s)
      assert.are.equal(2, code)
      assert.matches(c[2], msg)
    end
  end)

  it("need a configuration unless told otherwise", function()
    local old = fs.cwd()
    local empty = fs.join(tmp, "empty")
    assert(fs.mkdir(empty))
    local s, msg, code = project.session(fakes.ctx(), { config = fs.join(empty, "nope.yml") }, { name = "env up" })
    assert.is_nil(s)
    assert.are.equal(2, code)
    assert.matches("^env up: ", msg)
    assert.is_truthy(old)
  end)

  it("report configuration errors with their positions", function()
    write(cfg, "service:\n  port: five\n")
    local ctx = fakes.ctx()
    local s, msg, code = project.session(ctx, { config = cfg }, { name = "env up" })
    assert.is_nil(s)
    assert.are.equal(2, code)
    assert.matches("configuration error", msg)
    assert.matches("mu.yml:2:%d+: service.port", ctx.stderr:text())
  end)

  it("take the revision from LUMU_REVISION, CodeBuild, then git", function()
    local s = assert(project.session(fakes.ctx { env = { LUMU_REVISION = "rel-1.2" }, git_revision = "abcdef1" },
      { config = cfg }))
    assert.are.equal("rel-1.2", s.revision)
    s = assert(project.session(fakes.ctx { env = { CODEBUILD_RESOLVED_SOURCE_VERSION = "0123456789abcdef" } },
      { config = cfg }))
    assert.are.equal("0123456", s.revision)
    s = assert(project.session(fakes.ctx { git_revision = "abcdef1" }, { config = cfg }))
    assert.are.equal("abcdef1", s.revision)
    s = assert(project.session(fakes.ctx { env = { LUMU_REVISION = "bad rev;rm" } }, { config = cfg }))
    assert.is_nil(s.revision)
  end)

  it("read LUMU_DISABLE_IAM and -I into the model", function()
    local s = assert(project.session(fakes.ctx { env = { LUMU_DISABLE_IAM = "true" } }, { config = cfg }))
    assert.is_true(s.model.disableIAM)
    s = assert(project.session(fakes.ctx(), { config = cfg, disable_iam = true }))
    assert.is_true(s.model.disableIAM)
    -- the generators then ask for the roles mu would have made
    local stacks, msg, code = s:plan()
    assert.is_nil(stacks)
    assert.are.equal(2, code)
    assert.matches("1 error in the configuration", msg)
  end)

  it("ask only on a terminal and never without one", function()
    local s = assert(project.session(fakes.ctx { tty = { [0] = true }, stdin = { read = function() return "y" end } },
      { config = cfg }))
    assert.is_true(s.interactive)
    assert.is_true(s:confirm("go?"))
    s = assert(project.session(fakes.ctx { tty = { [0] = true }, stdin = { read = function() return "no" end } },
      { config = cfg }))
    assert.is_false(s:confirm("go?"))
    s = assert(project.session(fakes.ctx { stdin = { read = function() error("must not read") end } },
      { config = cfg }))
    assert.is_false(s.interactive)
    assert.is_false(s:confirm("go?"))
    s = assert(project.session(fakes.ctx(), { config = cfg, yes = true }))
    assert.is_true(s:confirm("go?"))
  end)

  it("silence progress with --silent", function()
    local ctx = fakes.ctx()
    local s = assert(project.session(ctx, { config = cfg, silent = true }))
    s:say("hello")
    assert.are.equal("", ctx.stderr:text())
  end)

  it("build the engine with the documented options", function()
    local aws = fakes.aws(fakes.handlers())
    local dep = fakes.deploy()
    local ctx = fakes.ctx { aws = aws, deploy = dep, tty = { [2] = true } }
    local s = assert(project.session(ctx, { config = cfg, yes = true, concurrency = "3", allow_data_loss = true,
      outputs_file = "o.json", region = "eu-central-1", endpoint_url = "http://127.0.0.1:9" }))
    assert(s:engine())
    local o = dep.opts
    assert.are.equal("filens", o.namespace)
    assert.are.equal("123456789012", o.account)
    assert.are.equal("eu-central-1", o.region)
    assert.is_true(o.yes)
    assert.are.equal(3, o.concurrency)
    assert.is_true(o.allow_data_loss)
    assert.are.equal("o.json", o.outputs_file)
    assert.are.equal("tty", o.output)
    assert.are.equal("function", type(o.client))
    assert.are.equal("function", type(o.confirm))
    assert.are.equal("http://127.0.0.1:9", aws.opts.sts.endpoint_url)
    assert.are.equal("eu-central-1", aws.opts.sts.region)
    local c = assert(o.client("cloudformation"))
    assert.are.equal("cloudformation", c.service)
    -- CI and --output json switch the renderer
    s = assert(project.session(fakes.ctx { aws = aws, deploy = dep, tty = { [2] = true }, env = { CI = "true" } },
      { config = cfg }))
    assert(s:engine())
    assert.are.equal("lines", dep.opts.output)
    s = assert(project.session(fakes.ctx { aws = aws, deploy = dep }, { config = cfg, output = "json" }))
    assert(s:engine())
    assert.are.equal("json", dep.opts.output)
  end)

  it("fail cleanly when STS does", function()
    local aws = fakes.aws({ sts = { GetCallerIdentity = function() return nil, fakes.err("ExpiredToken", "expired") end } })
    local s = assert(project.session(fakes.ctx { aws = aws, deploy = fakes.deploy() }, { config = cfg }))
    local eng, err = s:engine()
    assert.is_nil(eng)
    assert.matches("ExpiredToken", tostring(err))
  end)

  it("never make a client during a dry run", function()
    local s = assert(project.session(fakes.ctx { aws = fakes.aws({}) }, { config = cfg, dryrun = true }))
    assert.has_error(function() s:client("sts") end)
    -- -O alone means a dry run too
    s = assert(project.session(fakes.ctx(), { config = cfg, dryrun_output = fs.join(tmp, "d") }))
    assert.is_true(s.dryrun)
  end)
end)

describe("assume-role and proxy", function()
  it("assume the role once with the base credentials and reuse the result", function()
    local assumed = 0
    local aws = fakes.aws({ sts = {
      AssumeRole = function(p)
        assumed = assumed + 1
        assert.are.equal("arn:aws:iam::111122223333:role/deploy", p.RoleArn)
        return { Credentials = { AccessKeyId = "ASIAEXAMPLEEXAMPLE", SecretAccessKey = "s3cr3t", SessionToken = "tok",
          Expiration = "2099-01-01T00:00:00Z" } }
      end } })
    local s = assert(project.session(fakes.ctx { aws = aws }, { assume_role = "arn:aws:iam::111122223333:role/deploy" },
      { config = false }))
    assert(s:client("cloudformation"))
    local creds = aws.opts.cloudformation.credentials
    assert.are.equal("lumu.aws.CredentialChain", getmetatable(creds).__name)
    local c1 = assert(creds:get())
    local c2 = assert(creds:get())
    assert.are.equal(1, assumed)
    assert.are.equal(c1, c2)
    assert.are.equal("ASIAEXAMPLEEXAMPLE", c1.access_key_id)
    assert.is_nil(tostring(c1):find("s3cr3t", 1, true))
    -- the STS client itself does not assume the role (no recursion)
    assert.is_nil(aws.opts.sts.credentials)
  end)

  it("report a refused AssumeRole", function()
    local aws = fakes.aws({ sts = { AssumeRole = function() return nil, fakes.err("AccessDenied", "no") end } })
    local s = assert(project.session(fakes.ctx { aws = aws }, { assume_role = "arn:aws:iam::111122223333:role/x" },
      { config = false }))
    assert(s:client("s3"))
    local c, err = aws.opts.s3.credentials:get()
    assert.is_nil(c)
    assert.matches("AccessDenied", tostring(err))
  end)

  it("send every request through --proxy", function()
    local aws = fakes.aws({})
    local s = assert(project.session(fakes.ctx { aws = aws }, { proxy = "http://proxy.internal:3128" }, { config = false }))
    assert(s:client("ssm"))
    local http = require "lumu.http"
    local seen
    local orig = http.request
    http.request = function(req) seen = req; return { status = 200, headers = {}, body = "" } end
    local ok, err = pcall(aws.opts.ssm.http, { url = "https://ssm.eu-west-1.amazonaws.com/", proxy = false })
    http.request = orig
    assert.is_true(ok, err)
    assert.are.equal("http://proxy.internal:3128", seen.proxy)
  end)
end)

describe("git revisions", function()
  it("read loose refs, packed refs, detached heads and worktrees without git", function()
    local repo = fs.join(tmp, "repo")
    write(fs.join(repo, ".git/HEAD"), "ref: refs/heads/main\n")
    write(fs.join(repo, ".git/refs/heads/main"), "0123456789abcdef0123456789abcdef01234567\n")
    write(fs.join(repo, "sub/dir/x"), "")
    assert.are.equal("0123456", project.git_revision(fs.join(repo, "sub/dir")))
    assert(fs.remove(fs.join(repo, ".git/refs/heads/main")))
    write(fs.join(repo, ".git/packed-refs"), "# pack-refs with: peeled\nfedcba9876543210fedcba9876543210fedcba98 refs/heads/main\n")
    assert.are.equal("fedcba9", project.git_revision(repo))
    write(fs.join(repo, ".git/HEAD"), "ABCDEF0123456789ABCDEF0123456789ABCDEF01\n")
    assert.are.equal("abcdef0", project.git_revision(repo))
    -- a worktree: .git is a file naming the real git dir
    local wt = fs.join(tmp, "wt")
    write(fs.join(repo, ".git/worktrees/wt/HEAD"), "ref: refs/heads/feature\n")
    write(fs.join(repo, ".git/worktrees/wt/commondir"), "../..\n")
    write(fs.join(repo, ".git/refs/heads/feature"), "1111111222222233333334444444555555566666\n")
    write(fs.join(wt, ".git"), "gitdir: " .. fs.join(repo, ".git/worktrees/wt") .. "\n")
    assert.are.equal("1111111", project.git_revision(wt))
  end)

  it("give nil for garbage, escapes and no checkout", function()
    local repo = fs.join(tmp, "bad")
    write(fs.join(repo, ".git/HEAD"), "ref: ../../../../etc/passwd\n")
    assert.is_nil(project.git_revision(repo))
    write(fs.join(repo, ".git/HEAD"), string.rep("\255", 5000))
    assert.is_nil(project.git_revision(repo))
    write(fs.join(repo, ".git/HEAD"), "ref: refs/heads/none\n")
    assert.is_nil(project.git_revision(repo))
    write(fs.join(repo, ".git/HEAD"), "abc\n")
    assert.is_nil(project.git_revision(repo))
  end)
end)

describe("helpers", function()
  it("render aligned tables, '-' for missing cells and no control characters", function()
    local t = project.text_table({ { a = "x", b = "long value" }, { a = "yy\27[31m" } }, { { "a", "A" }, { "b", "BEE" } })
    assert.are.equal("A        BEE\nx        long value\nyy [31m  -\n", t)
    assert.is_nil(t:find("\27", 1, true))
  end)

  it("parse durations", function()
    assert.are.equal(60, project.duration("1m"))
    assert.are.equal(5400, project.duration("1h30m"))
    assert.is_nil(project.duration("soon"))
    assert.is_nil(project.duration(""))
    assert.is_nil(project.duration("0s"))
  end)

  it("order discovered stacks for deletion: dependants first", function()
    local function st(name, kind) return { name = name, tags = { ["mu:type"] = kind } } end
    local out = project.order_for_delete({ st("mu-iam-common", "iam"), st("mu-vpc-a", "vpc"), st("mu-service-s-a", "service"),
      st("mu-iam-service-s-a", "iam"), st("mu-database-s-a", "database"), st("mu-environment-a", "environment"),
      st("mu-loadbalancer-a", "loadbalancer"), st("mu-pipeline-s", "pipeline"), st("mu-iam-environment-a", "iam") })
    assert.are.same({ "mu-pipeline-s", "mu-service-s-a", "mu-database-s-a", "mu-iam-service-s-a", "mu-environment-a",
      "mu-loadbalancer-a", "mu-vpc-a", "mu-iam-environment-a", "mu-iam-common" }, fakes.names(out))
  end)

  it("order every stack of the example (and the catalog) after all that depend on it", function()
    local configs = { fakes.EXAMPLE }
    local cat = HERE .. "/../../../shared/corpus/mu-examples/catalog/mu.yml"
    if fs.isfile(cat) then configs[2] = cat end
    for _, cfg in ipairs(configs) do
      local s = assert(project.session(fakes.ctx(), { config = cfg }))
      local plan = assert(s:plan())
      local discovered = {}
      for i = #plan, 1, -1 do
        if plan[i].kind ~= "catalog-provision" then
          discovered[#discovered + 1] = { name = plan[i].name, tags = plan[i].tags }
        end
      end
      local pos = {}
      for i, st in ipairs(project.order_for_delete(discovered)) do pos[st.name] = i end
      for _, d in ipairs(plan) do
        for _, dep in ipairs(d.depends or {}) do
          if pos[d.name] and pos[dep] then
            assert.is_true(pos[d.name] < pos[dep], d.name .. " must go before " .. dep)
          end
        end
      end
    end
  end)
end)

describe("picking stacks of the bundled example", function()
  local stacks
  before_each(function()
    local s = assert(project.session(fakes.ctx(), { config = fakes.EXAMPLE }))
    stacks = assert(s:plan())
  end)

  it("env up: environment stacks and the common IAM stack", function()
    assert.are.same({ "mu-iam-common", "mu-iam-environment-production", "mu-vpc-production",
      "mu-loadbalancer-production", "mu-environment-production" },
      fakes.names(project.pick.environments(stacks, { "production" }, "mu")))
  end)

  it("svc deploy: the service side only (no environment, no database)", function()
    assert.are.same({ "mu-repo-sample-service", "mu-iam-service-sample-service-acceptance",
      "mu-service-sample-service-acceptance" }, fakes.names(project.pick.service(stacks, "acceptance", "sample-service")))
    assert.are.same({}, project.pick.service(stacks, "acceptance", "other"))
  end)

  it("db up: the database with its key's stack", function()
    assert.are.same({ "mu-repo-sample-service", "mu-iam-service-sample-service-production",
      "mu-database-sample-service-production" }, fakes.names(project.pick.database(stacks, "production")))
  end)

  it("pipeline up: the pipeline with the IAM stacks it names", function()
    assert.are.same({ "mu-iam-common", "mu-iam-environment-acceptance", "mu-iam-environment-production",
      "mu-iam-service-sample-service-acceptance", "mu-iam-service-sample-service-production",
      "mu-iam-pipeline-sample-service", "mu-pipeline-sample-service" }, fakes.names(project.pick.pipeline(stacks)))
  end)

  it("env terminate: everything in the environment", function()
    local names = fakes.names(project.pick.in_environment(stacks, "acceptance"))
    assert.are.equal(7, #names)
    for _, n in ipairs(names) do assert.matches("acceptance", n) end
  end)
end)

describe("deletion order", function()
  it("hands names to the engine in deploy order, descriptors as they are", function()
    local d1, d2 = { name = "mu-vpc-a" }, { name = "mu-environment-a" }
    assert.is_nil(project._deletion_order({ d1, d2 }))
    assert.are.same({ "mu-environment-a", "mu-vpc-a", "x-service", "x-vpc" },
      project._deletion_order({ d1, d2, "x-service", "x-vpc" }))
    local dep = fakes.deploy()
    local s = assert(project.session(fakes.ctx { aws = fakes.aws(fakes.handlers()), deploy = dep }, {},
      { config = false }))
    assert.are.equal(0, s:down({ "mu-service-s-a", "mu-vpc-a" }))
    assert.are.same({ "mu-vpc-a", "mu-service-s-a" }, dep.runs[1].names)
    assert.are.equal(0, s:down({ d1, d2 }))
    assert.are.equal(d1, dep.runs[2].descs[1])
  end)
end)

describe("dry runs", function()
  it("write templates, parameters, tags and an index, and call nothing", function()
    local aws = fakes.aws({})
    local out = fs.join(tmp, "dry")
    local ctx = fakes.ctx { aws = aws }
    local s = assert(project.session(ctx, { config = fakes.EXAMPLE, dryrun = true, dryrun_output = out }))
    local stacks = assert(s:plan())
    assert.are.equal(0, s:up(stacks))
    assert.are.equal(0, #aws.calls)
    assert.is_true(fs.isfile(fs.join(out, "mu-vpc-acceptance.template.json")))
    local params = json.decode(assert(fs.read(fs.join(out, "mu-database-sample-service-acceptance.parameters.json"))))
    assert.are.equal("table", type(params))
    assert.matches("mu%-pipeline%-sample%-service %(pipeline%)", assert(fs.read(fs.join(out, "README.txt"))))
    assert.matches("would create SSM SecureString mu%-database%-sample%-service%-acceptance%-DatabaseMasterPassword",
      ctx.stderr:text())
    assert.are.equal(0, s:down({ "mu-vpc-acceptance" }))
    assert.matches("would delete mu%-vpc%-acceptance", ctx.stderr:text())
    assert.are.equal(0, #aws.calls)
  end)
end)

-- a session over fakes with a stack table and an SSM store
local function ssm_world(opts)
  opts = opts or {}
  local store = opts.store or {}
  local stacks = opts.stacks or {}
  local aws = fakes.aws(fakes.handlers(stacks, { ssm = {
    GetParameter = function(p)
      local v = store[p.Name]
      if not v then return nil, fakes.err("ParameterNotFound", p.Name) end
      return { Parameter = { Name = p.Name, Version = v.version, Value = p.WithDecryption and v.value or "****" } }
    end,
    PutParameter = function(p)
      local v = store[p.Name]
      if v and not p.Overwrite then return nil, fakes.err("ParameterAlreadyExists", p.Name) end
      store[p.Name] = { value = p.Value, version = (v and v.version or 0) + 1, key = p.KeyId, type = p.Type }
      return { Version = store[p.Name].version }
    end,
  } }))
  local dep = fakes.deploy(opts.results)
  local ctx = fakes.ctx { aws = aws, deploy = dep }
  local s = assert(project.session(ctx, { config = fakes.EXAMPLE, yes = true }))
  return s, aws, dep, store, ctx
end

describe("managed database passwords", function()
  local KEY = "arn:aws:kms:eu-west-1:123456789012:key/abc"
  local IAM = { name = "mu-iam-service-sample-service-acceptance", outputs = { DatabaseKeyArn = KEY },
    tags = { ["mu:type"] = "iam" } }

  it("are created once, as SecureStrings under the service key, and never printed", function()
    local s, aws, _, store, ctx = ssm_world { stacks = { IAM } }
    local stacks = assert(s:plan({ "acceptance" }))
    local db
    for _, d in ipairs(stacks) do if d.kind == "database" then db = d end end
    assert.are.equal(1, project.ensure_password(s, db))
    local p = store["mu-database-sample-service-acceptance-DatabaseMasterPassword"]
    assert.are.equal("SecureString", p.type)
    assert.are.equal(KEY, p.key)
    assert.matches("^[%w]+$", p.value)
    assert.are.equal(32, #p.value)
    assert.are.equal(1, project.ensure_password(s, db))
    assert.are.equal(1, aws.count("ssm", "PutParameter"))
    assert.is_nil(ctx.stderr:text():find(p.value, 1, true))
    assert.is_nil(ctx.stdout:text():find(p.value, 1, true))
  end)

  it("survive a concurrent creation", function()
    local s, aws, _, store = ssm_world { stacks = { IAM } }
    local db
    for _, d in ipairs(assert(s:plan({ "acceptance" }))) do if d.kind == "database" then db = d end end
    local real = aws.client
    local first = true
    aws.client = function(svc, o)
      local c = real(svc, o)
      if svc == "ssm" then
        local put = c.PutParameter
        rawset(c, "PutParameter", function(self, p)
          if first then
            first = false
            store[p.Name] = { value = "other", version = 4 }
            return nil, fakes.err("ParameterAlreadyExists", p.Name)
          end
          return put(self, p)
        end)
      end
      return c
    end
    assert.are.equal(4, project.ensure_password(s, db))
  end)

  it("need the key's stack output when the configuration names no key", function()
    local s = ssm_world { stacks = { { name = "mu-iam-service-sample-service-acceptance", outputs = {},
      tags = { ["mu:type"] = "iam" } } } }
    local db
    for _, d in ipairs(assert(s:plan({ "acceptance" }))) do if d.kind == "database" then db = d end end
    local v, err = project.ensure_password(s, db)
    assert.is_nil(v)
    assert.matches("no output DatabaseKeyArn", err)
  end)

  it("make `up` deploy the key's stacks first, then the rest with the version", function()
    local stacks_state = {}
    local s, aws, dep, store = ssm_world { stacks = stacks_state, results = { up = function(descs)
      for _, d in ipairs(descs) do
        if d.name == "mu-iam-service-sample-service-acceptance" then stacks_state[#stacks_state + 1] = IAM end
      end
      return { ok = true, exit_code = 0, stacks = {} }
    end } }
    local plan = assert(s:plan({ "acceptance" }))
    local descs = project.pick.database(plan, "acceptance")
    assert.are.equal(0, s:up(descs))
    assert.are.equal(2, #dep.runs)
    assert.are.same({ "mu-repo-sample-service", "mu-iam-service-sample-service-acceptance" }, dep.runs[1].names)
    assert.are.same({ "mu-database-sample-service-acceptance" }, dep.runs[2].names)
    assert.are.equal("1", dep.runs[2].descs[1].parameters.DatabaseMasterSecretVersion)
    assert.is_truthy(store["mu-database-sample-service-acceptance-DatabaseMasterPassword"])
    -- second run: the parameter exists, one engine run, no new password
    dep.runs = {}
    local s2 = assert(project.session(fakes.ctx { aws = aws, deploy = dep }, { config = fakes.EXAMPLE, yes = true }))
    local d2 = project.pick.database(assert(s2:plan({ "acceptance" })), "acceptance")
    assert.are.equal(0, s2:up(d2))
    assert.are.equal(1, #dep.runs)
    assert.are.equal(3, #dep.runs[1].names)
    assert.are.equal(1, aws.count("ssm", "PutParameter"))
  end)

  it("stop `up` when the first phase fails, before any password", function()
    local s, aws, dep = ssm_world { results = { up = { ok = false, exit_code = 1, stacks = {} } } }
    local descs = project.pick.database(assert(s:plan({ "acceptance" })), "acceptance")
    assert.are.equal(1, s:up(descs))
    assert.are.equal(1, #dep.runs)
    assert.are.equal(0, aws.count("ssm", "PutParameter"))
  end)

  it("pass the engine's exit codes through (4: not confirmed, 130: interrupted)", function()
    for _, c in ipairs({ 4, 130 }) do
      local s = ssm_world { store = { ["mu-database-sample-service-acceptance-DatabaseMasterPassword"] =
        { value = "x", version = 2 } }, results = { up = { ok = false, exit_code = c } } }
      local descs = project.pick.database(assert(s:plan({ "acceptance" })), "acceptance")
      assert.are.equal(c, s:up(descs))
    end
  end)
end)

describe("diff exit codes", function()
  local function with(report)
    local s = ssm_world { results = { diff = report } }
    return s:diff(assert(s:plan({ "acceptance" })))
  end

  it("are 0 without changes, 2 with changes, 1 on errors", function()
    assert.are.equal(0, with({ ok = true, exit_code = 0, stacks = { { name = "a", changes = {} } } }))
    assert.are.equal(2, with({ ok = true, exit_code = 0, stacks = { { name = "a", changes = { { action = "Add" } } } } }))
    assert.are.equal(2, with({ ok = true, exit_code = 0, changes = 3, stacks = {} }))
    assert.are.equal(2, with({ ok = true, exit_code = 0, stacks = { { name = "a", action = "create" } } }))
    assert.are.equal(1, with({ ok = false, exit_code = 1, stacks = {} }))
    assert.are.equal(130, with({ ok = false, exit_code = 130, stacks = {} }))
  end)
end)

describe("logs", function()
  local function world(events_by_group)
    local polls = 0
    local aws = fakes.aws({ logs = { FilterLogEvents = function(p)
      polls = polls + 1
      local ev = events_by_group[p.logGroupName]
      if not ev then return nil, fakes.err("ResourceNotFoundException", "no group") end
      local out = {}
      for _, e in ipairs(ev) do if e.timestamp >= p.startTime then out[#out + 1] = e end end
      return { events = out }
    end } })
    return aws, function() return polls end
  end

  it("print events in time order from now - duration, with a filter", function()
    local aws = world({ g1 = { { eventId = "1", timestamp = 1700000000000 - 30000, message = "late\n" },
      { eventId = "0", timestamp = 1700000000000 - 50000, message = "early" },
      { eventId = "x", timestamp = 1700000000000 - 120000, message = "too old" } } })
    local ctx = fakes.ctx { aws = aws }
    local s = assert(project.session(ctx, {}, { config = false, name = "env logs" }))
    assert.are.equal(0, project.tail_logs(s, { "g1" }, { filter = "ERROR", since = 60 }))
    assert.are.equal("2023-11-14T22:12:30Z early\n2023-11-14T22:12:50Z late\n", ctx.stdout:text())
    local call = aws.find("logs", "FilterLogEvents")
    assert.are.equal("ERROR", call.params.filterPattern)
    assert.are.equal(1700000000000 - 60000, call.params.startTime)
  end)

  it("follow without repeating events and report missing groups", function()
    local aws, polls = world({ g1 = { { eventId = "1", timestamp = 1700000000000, message = "m" } } })
    local ctx = fakes.ctx { aws = aws, follow_rounds = 3 }
    local s = assert(project.session(ctx, { output = "json" }, { config = false, name = "svc logs" }))
    assert.are.equal(0, project.tail_logs(s, { "g1", "gone" }, { follow = true, since = 60 }))
    local lines = {}
    for l in ctx.stdout:text():gmatch("[^\n]+") do lines[#lines + 1] = json.decode(l) end
    assert.are.equal(1, #lines)
    assert.are.equal("g1", lines[1].group)
    assert.are.equal(4, polls()) -- g1 three times, "gone" once
    assert.matches("no log group gone", ctx.stderr:text())
    local r, msg = project.tail_logs(s, { "gone" }, {})
    assert.is_nil(r)
    assert.matches("no log group gone", msg)
  end)
end)
