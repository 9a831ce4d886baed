-- `lumu up`, `lumu diff`, `lumu purge`, `lumu init`, `lumu pipeline ...`,
-- `lumu catalog ...` over fakes.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fakes = dofile(HERE .. "/cmd_fakes.lua")
local json = require "lumu.json"
local fs = require "lumu.fs"

local EX = fakes.EXAMPLE
local CATALOG = HERE .. "/../../../shared/corpus/mu-examples/catalog/mu.yml"

local function world(stacks, extra, results, t)
  local aws = fakes.aws(fakes.handlers(stacks or {}, extra))
  local dep = fakes.deploy(results)
  local c = { aws = aws, deploy = dep }
  for k, v in pairs(t or {}) do c[k] = v end
  return fakes.ctx(c), aws, dep
end

local PASSWORDS = { ssm = {
  GetParameter = function(p) return { Parameter = { Name = p.Name, Version = 5 } } end,
} }

local tmp
before_each(function() tmp = assert(fs.tmpdir("lumu-cmdmisc-")) end)
after_each(function() fs.rmtree(tmp) end)

describe("lumu up", function()
  it("deploys every stack of the project in one run, with the revision as image tag", function()
    local ctx, _, dep = world({}, PASSWORDS, nil, { git_revision = "abc1234" })
    assert.are.equal(0, fakes.run("lumu.cli.up", ctx, { "-c", EX, "--yes" }))
    assert.are.equal(1, #dep.runs)
    assert.are.equal(18, #dep.runs[1].names)
    local by = {}
    for _, d in ipairs(dep.runs[1].descs) do by[d.name] = d end
    assert.are.equal("abc1234", by["mu-service-sample-service-production"].parameters.ImageTag)
    assert.are.equal("5", by["mu-database-sample-service-production"].parameters.DatabaseMasterSecretVersion)
    assert.are.equal("abc1234", dep.opts.revision)
    assert.is_true(dep.opts.yes)
  end)

  it("limits the environments with --env", function()
    local ctx, _, dep = world({}, PASSWORDS)
    assert.are.equal(0, fakes.run("lumu.cli.up", ctx, { "-c", EX, "--env", "acceptance" }))
    for _, n in ipairs(dep.runs[1].names) do
      assert.is_nil(n:find("production", 1, true), n)
      assert.is_nil(n:find("pipeline", 1, true), n)
    end
    local r, msg, code = fakes.run("lumu.cli.up", ctx, { "-c", EX, "--env", "qa" })
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("unknown environment 'qa'", msg)
  end)

  it("passes on the engine's codes and takes no positional argument", function()
    local ctx = world({}, PASSWORDS, { up = { ok = false, exit_code = 4 } })
    assert.are.equal(4, fakes.run("lumu.cli.up", ctx, { "-c", EX }))
    local r, msg, code = fakes.run("lumu.cli.up", world(), { "-c", EX, "acceptance" })
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("use %-%-env NAME", msg)
  end)

  it("writes the whole project with --dryrun and calls nothing", function()
    local ctx, aws, dep = world()
    assert.are.equal(0, fakes.run("lumu.cli.up", ctx, { "-c", EX, "--dryrun", "-O", tmp .. "/d" }))
    assert.are.equal(0, #aws.calls + #dep.runs)
    assert.are.equal(18, #fs.glob(tmp .. "/d/*.template.json"))
  end)
end)

describe("lumu diff", function()
  it("exits 0 without changes and 2 with changes", function()
    local ctx, _, dep = world({}, PASSWORDS, { diff = { ok = true, exit_code = 0, stacks = {} } })
    assert.are.equal(0, fakes.run("lumu.cli.diff", ctx, { "-c", EX }))
    assert.are.equal("diff", dep.runs[1].action)
    ctx = world({}, PASSWORDS, { diff = { ok = true, exit_code = 0,
      stacks = { { name = "mu-vpc-acceptance", changes = { { action = "Modify" } } } } } })
    assert.are.equal(2, fakes.run("lumu.cli.diff", ctx, { "-c", EX }))
  end)

  it("exits 1 for errors, usage errors included (2 means changes)", function()
    local ctx = world({}, PASSWORDS, { diff = { ok = false, exit_code = 1, stacks = {} } })
    assert.are.equal(1, fakes.run("lumu.cli.diff", ctx, { "-c", EX }))
    local r, msg, code = fakes.run("lumu.cli.diff", world(), { "-c", EX, "--bogus" })
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("unknown option '%-%-bogus'", msg)
    r, msg, code = fakes.run("lumu.cli.diff", world(), { "-c", EX, "--output", "xml" })
    assert.are.equal(1, code)
    r, msg, code = fakes.run("lumu.cli.diff", world(), { "-c", tmp .. "/none.lua" })
    assert.are.equal(1, code)
    r, msg, code = fakes.run("lumu.cli.diff", world(), { "-c", EX, "--env", "qa" })
    assert.are.equal(1, code)
  end)
end)

describe("lumu purge", function()
  local STACKS = {
    { name = "mu-iam-common", tags = { ["mu:type"] = "iam" } },
    { name = "mu-vpc-a", tags = { ["mu:type"] = "vpc", ["mu:environment"] = "a" } },
    { name = "mu-database-web-a", tags = { ["mu:type"] = "database", ["mu:environment"] = "a", ["mu:service"] = "web" } },
    { name = "mu-service-web-a", tags = { ["mu:type"] = "service", ["mu:environment"] = "a", ["mu:service"] = "web" } },
    { name = "other-vpc-a", tags = { ["mu:type"] = "vpc" } },
    { name = "mu-not-ours", tags = {} },
  }
  local deleted
  local SSM = { ssm = { DeleteParameter = function(p) deleted[#deleted + 1] = p.Name; return {} end } }
  before_each(function() deleted = {} end)

  it("deletes the namespace's stacks in mu's order with --confirm, then the passwords", function()
    local ctx, _, dep = world(STACKS, SSM)
    assert.are.equal(0, fakes.run("lumu.cli.purge", ctx, { "--confirm" }))
    -- in deploy order: the engine deletes the last first
    assert.are.same({ "mu-iam-common", "mu-vpc-a", "mu-database-web-a", "mu-service-web-a" }, dep.runs[1].names)
    assert.is_true(dep.opts.yes)
    assert.are.same({ "mu-database-web-a-DatabaseMasterPassword" }, deleted)
  end)

  it("lists and exits 4 without a terminal and without --confirm", function()
    local ctx, _, dep = world(STACKS, SSM)
    local r, msg, code = fakes.run("lumu.cli.purge", ctx, {})
    assert.is_nil(r)
    assert.are.equal(4, code)
    assert.matches("4 stacks would be deleted", msg)
    assert.matches("mu%-vpc%-a %(vpc%)", ctx.stderr:text())
    assert.are.equal(0, #dep.runs)
  end)

  it("asks on a terminal", function()
    local ctx, _, dep = world(STACKS, SSM, nil, { tty = { [0] = true }, stdin = { read = function() return "n" end } })
    ctx.isatty = function(fd) return fd == 0 end
    assert.are.equal(4, fakes.run("lumu.cli.purge", ctx, {}))
    assert.are.equal(0, #dep.runs)
    ctx, _, dep = world(STACKS, SSM, nil, { stdin = { read = function() return "yes" end } })
    ctx.isatty = function(fd) return fd == 0 end
    assert.are.equal(0, fakes.run("lumu.cli.purge", ctx, {}))
    assert.are.equal(1, #dep.runs)
  end)

  it("uses -n for the namespace and has nothing to do in an empty one", function()
    local ctx, _, dep = world(STACKS, SSM)
    assert.are.equal(0, fakes.run("lumu.cli.purge", ctx, { "-n", "other", "--yes" }))
    assert.are.same({ "other-vpc-a" }, dep.runs[1].names)
    ctx, _, dep = world(STACKS, SSM)
    assert.are.equal(0, fakes.run("lumu.cli.purge", ctx, { "-n", "empty", "--confirm" }))
    assert.are.equal(0, #dep.runs)
    assert.matches("no stack in namespace empty", ctx.stderr:text())
  end)
end)

describe("lumu init", function()
  local function init(...)
    local ctx = fakes.ctx()
    local r, msg, code = fakes.run("lumu.cli.init_project", ctx, { ... })
    return r, msg, code, ctx
  end

  it("writes a lumu.lua that loads and synthesizes, buildspecs and a spec", function()
    local dir = tmp .. "/my-app"
    assert.are.equal(0, init(dir, "-e", "-P", "3000"))
    local config = require "lumu.config"
    local model = assert(config.load(dir .. "/lumu.lua"))
    assert.are.equal("my-app", model.services[1].name)
    assert.are.equal(3000, model.services[1].port)
    assert.are.equal(2, #model.environments)
    local stacks, report = require("lumu.synth").plan(model, {})
    assert.are.equal(0, #report.errors)
    assert.are.equal(0, report.problems)
    assert.is_true(#stacks > 5)
    for _, f in ipairs({ "buildspec.yml", "buildspec-test.yml", "buildspec-prod.yml" }) do
      local doc = assert(require("lumu.yaml").load(assert(fs.read(dir .. "/" .. f))))
      assert.are.equal("0.2", tostring(doc.version))
    end
    assert.matches("lumu test spec/lumu_spec.lua", assert(fs.read(dir .. "/spec/lumu_spec.lua")))
    assert.is_truthy(load(assert(fs.read(dir .. "/spec/lumu_spec.lua"))))
  end)

  it("writes mu.yml with --mu, without environments unless -e", function()
    local dir = tmp .. "/x"
    assert.are.equal(0, init(dir, "--mu", "--name", "api"))
    local model = assert(require("lumu.config").load(dir .. "/mu.yml"))
    assert.are.equal("api", model.services[1].name)
    assert.are.equal(8080, model.services[1].port)
    assert.are.equal(0, #model.environments)
    assert.is_false(fs.exists(dir .. "/lumu.lua"))
  end)

  it("never overwrites without --force", function()
    local dir = tmp .. "/keep"
    assert(fs.mkdir(dir))
    assert(fs.write(dir .. "/lumu.lua", "-- mine\n"))
    local r, msg, code = init(dir)
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("exists: nothing written", msg)
    assert.are.equal("-- mine\n", fs.read(dir .. "/lumu.lua"))
    assert.is_false(fs.exists(dir .. "/buildspec.yml"))
    -- other files are kept, the configuration written
    assert(fs.remove(dir .. "/lumu.lua"))
    assert(fs.write(dir .. "/buildspec.yml", "mine"))
    local _, _, _, ctx = init(dir)
    assert.matches("kept " .. dir:gsub("%-", "%%-") .. "/buildspec.yml", ctx.stdout:text())
    assert.are.equal("mine", fs.read(dir .. "/buildspec.yml"))
    assert.is_true(fs.isfile(dir .. "/lumu.lua"))
    -- with --force everything is rewritten
    assert.are.equal(0, init(dir, "--force"))
    assert.are_not.equal("mine", fs.read(dir .. "/buildspec.yml"))
    -- a mu.yml next to it stops a lumu.lua (lumu would read that instead)
    local other = tmp .. "/other"
    assert(fs.mkdir(other))
    assert(fs.write(other .. "/mu.yml", "service: {}\n"))
    r, msg, code = init(other)
    assert.are.equal(1, code)
    assert.matches("mu%.yml exists", msg)
  end)

  it("checks the port and the name", function()
    local _, msg, code = init(tmp .. "/p", "-P", "99999")
    assert.are.equal(2, code)
    assert.matches("%-%-port", msg)
    _, msg, code = init(tmp .. "/p", "--name", "bad name")
    assert.are.equal(2, code)
    _, msg, code = init(tmp .. "/p", "--name", string.rep("a", 65))
    assert.are.equal(2, code)
    _, msg, code = init("a", "b")
    assert.are.equal(2, code)
  end)

  it("derives a valid service name from an odd directory name", function()
    local dir = tmp .. "/9 Odd_Dir!"
    assert.are.equal(0, init(dir))
    local model = assert(require("lumu.config").load(dir .. "/lumu.lua"))
    assert.are.equal("service", model.services[1].name)
  end)
end)

describe("lumu pipeline", function()
  local function pipe(ctx, ...) return fakes.run("lumu.cli.pipeline", ctx, { ... }) end

  it("up deploys the pipeline with its IAM stacks", function()
    local ctx, _, dep = world()
    assert.are.equal(0, pipe(ctx, "up", "-c", EX))
    local names = dep.runs[1].names
    assert.are.equal("mu-pipeline-sample-service", names[#names])
    assert.are.equal(7, #names)
    local r, msg, code = pipe(world(), "up", "nope", "-c", EX)
    assert.are.equal(2, code)
    assert.matches("unknown service", msg)
  end)

  it("up -t passes mu's GitHub token only through the engine's secret hook", function()
    local ctx, _, dep = world()
    assert.are.equal(0, pipe(ctx, "up", "-t", "ghp_secret_token", "-c", EX))
    local pl = dep.runs[1].descs[#dep.runs[1].descs]
    assert.are.same({ "GitHubToken" }, pl.secret_parameters)
    assert.is_nil(pl.parameters.GitHubToken)
    assert.are.equal("ghp_secret_token", dep.opts.secret(pl, "GitHubToken"))
    assert.is_nil(dep.opts.secret(pl, "Other"))
    assert.is_nil(json.encode(pl.parameters):find("ghp_secret_token", 1, true))
  end)

  it("up says when there is no pipeline", function()
    assert(fs.write(tmp .. "/mu.yml", "environments:\n  - name: dev\nservice:\n  name: web\n"))
    local r, msg, code = pipe(world(), "up", "-c", tmp .. "/mu.yml")
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("has no pipeline", msg)
  end)

  it("terminate deletes the pipeline and its IAM stack only", function()
    local ctx, _, dep = world()
    assert.are.equal(0, pipe(ctx, "term", "-c", EX))
    assert.are.same({ "mu-iam-pipeline-sample-service", "mu-pipeline-sample-service" }, dep.runs[1].names)
    ctx, _, dep = world()
    assert.are.equal(0, pipe(ctx, "terminate", "api"))
    assert.are.same({ "mu-iam-pipeline-api", "mu-pipeline-api" }, dep.runs[1].names)
  end)

  it("list, show and logs read the pipeline's stack, state and CodeBuild groups", function()
    local stacks = { { name = "mu-pipeline-sample-service", tags = { ["mu:type"] = "pipeline", ["mu:service"] = "sample-service" },
      outputs = { CodePipelineUrl = "https://console/x", PipelineName = "mu-sample-service" } } }
    local groups = {}
    local ctx = world(stacks, {
      codepipeline = { GetPipelineState = function() return { stageStates = { { stageName = "Build", actionStates = {
        { actionName = "Artifact", latestExecution = { status = "Failed", summary = "exit 2" } } } } } } end },
      logs = { FilterLogEvents = function(p) groups[#groups + 1] = p.logGroupName; return { events = {} } end },
    })
    assert.are.equal(0, pipe(ctx, "ls", "-c", EX))
    assert.matches("sample%-service%s+mu%-pipeline%-sample%-service%s+CREATE_COMPLETE", ctx.stdout:text())
    ctx.stdout = fakes.buffer()
    assert.are.equal(0, pipe(ctx, "show", "-c", EX, "--output", "json"))
    local v = json.decode(ctx.stdout:text())
    assert.are.equal("Failed", v.actions[1].status)
    assert.are.equal("https://console/x", v.url)
    assert.are.equal(0, pipe(ctx, "logs", "-c", EX))
    assert.are.equal(6, #groups)
    assert.are.equal("/aws/codebuild/mu-pipeline-sample-service-artifact", groups[1])
    assert.are.equal("/aws/codebuild/mu-pipeline-sample-service-test-production", groups[6])
  end)
end)

describe("lumu catalog", function()
  it("up deploys the bucket, portfolio IAM, portfolio and products", function()
    if not fs.isfile(CATALOG) then return pending("no mu example corpus") end
    local ctx, _, dep = world()
    assert.are.equal(0, fakes.run("lumu.cli.catalog", ctx, { "up", "-c", CATALOG }))
    assert.are.same({ "mu-bucket-servicecatalog", "mu-iam-portfolio-common", "mu-portfolio-common",
      "mu-product-basic-pipeline", "mu-product-spring-boot-pipeline" }, dep.runs[1].names)
    ctx, _, dep = world()
    assert.are.equal(0, fakes.run("lumu.cli.catalog", ctx, { "term", "-c", CATALOG }))
    assert.are.equal("down", dep.runs[1].action)
    assert.are.equal(5, #dep.runs[1].names)
  end)

  it("says when there is no catalog", function()
    local r, msg, code = fakes.run("lumu.cli.catalog", world(), { "up", "-c", EX })
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("no catalog", msg)
  end)
end)
