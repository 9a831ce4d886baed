-- `lumu env up|list|show|terminate|logs` over a fake engine and fake AWS.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fakes = dofile(HERE .. "/cmd_fakes.lua")
local json = require "lumu.json"
local fs = require "lumu.fs"

local EX = fakes.EXAMPLE

local function world(stacks, extra, results)
  local aws = fakes.aws(fakes.handlers(stacks or {}, extra))
  local dep = fakes.deploy(results)
  return fakes.ctx { aws = aws, deploy = dep }, aws, dep
end

local function env(ctx, ...)
  return fakes.run("lumu.cli.env", ctx, { ... })
end

local DEPLOYED = {
  { name = "mu-environment-acceptance", tags = { ["mu:type"] = "environment", ["mu:environment"] = "acceptance",
    ["mu:provider"] = "ecs-fargate", ["mu:revision"] = "abc1234" }, outputs = { EcsCluster = "mu-acceptance" } },
  { name = "mu-loadbalancer-acceptance", tags = { ["mu:type"] = "loadbalancer", ["mu:environment"] = "acceptance" },
    outputs = { BaseUrl = "http://lb-1.example.com" } },
  { name = "mu-vpc-acceptance", tags = { ["mu:type"] = "vpc", ["mu:environment"] = "acceptance" } },
  { name = "mu-service-web-acceptance", status = "UPDATE_COMPLETE", tags = { ["mu:type"] = "service",
    ["mu:environment"] = "acceptance", ["mu:service"] = "web", ["mu:revision"] = "def5678" } },
  { name = "mu-database-web-acceptance", tags = { ["mu:type"] = "database", ["mu:environment"] = "acceptance",
    ["mu:service"] = "web" } },
  { name = "mu-environment-production", tags = { ["mu:type"] = "environment", ["mu:environment"] = "production" } },
  { name = "other-environment-x", tags = { ["mu:type"] = "environment", ["mu:environment"] = "x" } },
  { name = "mu-manual", tags = {} },
}

describe("env up", function()
  it("deploys one environment's stacks with the common IAM stack", function()
    local ctx, _, dep = world()
    assert.are.equal(0, env(ctx, "up", "acceptance", "-c", EX))
    assert.are.equal(1, #dep.runs)
    assert.are.same({ "mu-iam-common", "mu-iam-environment-acceptance", "mu-vpc-acceptance",
      "mu-loadbalancer-acceptance", "mu-environment-acceptance" }, dep.runs[1].names)
  end)

  it("deploys several environments, or all with -A, in one run", function()
    local ctx, _, dep = world()
    assert.are.equal(0, env(ctx, "upsert", "-A", "-c", EX))
    assert.are.equal(1, #dep.runs)
    assert.are.equal(9, #dep.runs[1].names)
    ctx, _, dep = world()
    assert.are.equal(0, env(ctx, "up", "production", "acceptance", "production", "-c", EX))
    assert.are.equal(9, #dep.runs[1].names)
  end)

  it("refuses unknown or missing environments (exit 2) before any AWS call", function()
    local ctx, aws = world()
    local r, msg, code = env(ctx, "up", "acceptanse", "-c", EX)
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("unknown environment 'acceptanse' %(did you mean 'acceptance'%?%)", msg)
    r, msg, code = env(ctx, "up", "-c", EX)
    assert.are.equal(2, code)
    assert.matches("name an environment %(acceptance, production%)", msg)
    assert.are.equal(0, #aws.calls)
  end)

  it("passes the engine's exit code (4: not confirmed)", function()
    local ctx = world(nil, nil, { up = { ok = false, exit_code = 4 } })
    assert.are.equal(4, env(ctx, "up", "acceptance", "-c", EX))
  end)

  it("writes files and calls nothing with --dryrun", function()
    local tmp = assert(fs.tmpdir("lumu-cmdenv-"))
    finally(function() fs.rmtree(tmp) end)
    local ctx, aws, dep = world()
    assert.are.equal(0, env(ctx, "up", "acceptance", "-c", EX, "-d", "-O", tmp .. "/out"))
    assert.are.equal(0, #aws.calls)
    assert.are.equal(0, #dep.runs)
    assert.is_true(fs.isfile(tmp .. "/out/mu-loadbalancer-acceptance.template.json"))
    assert.is_false(fs.exists(tmp .. "/out/mu-vpc-production.template.json"))
  end)
end)

describe("env list", function()
  it("prints a table of the namespace's environment stacks", function()
    local ctx = world(DEPLOYED)
    assert.are.equal(0, env(ctx, "ls", "-c", EX))
    local out = ctx.stdout:text()
    assert.matches("^ENVIRONMENT%s+STACK%s+STATUS", out)
    assert.matches("acceptance%s+mu%-environment%-acceptance%s+CREATE_COMPLETE%s+ecs%-fargate", out)
    assert.matches("production", out)
    assert.is_nil(out:find("other-environment", 1, true))
  end)

  it("prints JSON with --output json, and works without a configuration", function()
    local ctx = world(DEPLOYED)
    ctx.getenv = function(k) if k == "MU_NAMESPACE" then return "other" end end
    local old = fs.cwd()
    assert.are.equal(0, env(ctx, "list", "--output", "json"))
    local v = json.decode(ctx.stdout:text())
    assert.are.equal(1, #v)
    assert.are.equal("other-environment-x", v[1].stack)
    assert.is_truthy(old)
  end)
end)

describe("env show", function()
  it("shows provider, base URL, stacks and services", function()
    local ctx = world(DEPLOYED)
    assert.are.equal(0, env(ctx, "show", "acceptance", "-c", EX))
    local out = ctx.stdout:text()
    assert.matches("Provider:%s+ecs%-fargate", out)
    assert.matches("Base URL:%s+http://lb%-1%.example%.com", out)
    assert.matches("Cluster:%s+mu%-acceptance", out)
    assert.matches("web%s+mu%-service%-web%-acceptance%s+UPDATE_COMPLETE%s+def5678", out)
    assert.is_nil(out:find("mu-database-web-acceptance", 1, true))
  end)

  it("prints only BASE_URL with -f json / -f shell (what the pipelines source)", function()
    local ctx = world(DEPLOYED)
    assert.are.equal(0, env(ctx, "show", "acceptance", "-f", "json", "-c", EX))
    assert.are.same({ BASE_URL = "http://lb-1.example.com" }, json.decode(ctx.stdout:text()))
    ctx = world(DEPLOYED)
    assert.are.equal(0, env(ctx, "show", "acceptance", "--format", "shell", "-c", EX))
    assert.are.equal("export BASE_URL='http://lb-1.example.com'\n", ctx.stdout:text())
  end)

  it("quotes hostile values for the shell", function()
    local ctx = world({ DEPLOYED[1], { name = "mu-loadbalancer-acceptance", tags = { ["mu:type"] = "loadbalancer",
      ["mu:environment"] = "acceptance" }, outputs = { BaseUrl = "http://x/'; rm -rf / #" } } })
    assert.are.equal(0, env(ctx, "show", "acceptance", "-f", "shell", "-c", EX))
    assert.are.equal("export BASE_URL='http://x/'\\''; rm -rf / #'\n", ctx.stdout:text())
  end)

  it("gives everything as JSON with --output json", function()
    local ctx = world(DEPLOYED)
    assert.are.equal(0, env(ctx, "show", "acceptance", "--output", "json", "-c", EX))
    local v = json.decode(ctx.stdout:text())
    assert.are.equal("acceptance", v.environment)
    assert.are.equal("http://lb-1.example.com", v.base_url)
    assert.are.equal(1, #v.services)
    assert.are.equal(3, #v.stacks)
  end)

  it("fails for an environment that is not deployed and for bad formats", function()
    local ctx = world(DEPLOYED)
    local r, msg, code = env(ctx, "show", "staging", "-c", EX)
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("not deployed %(no stack mu%-environment%-staging%)", msg)
    r, msg, code = env(ctx, "show", "acceptance", "-f", "xml", "-c", EX)
    assert.are.equal(2, code)
    assert.matches("%-%-format must be cli, json or shell", msg)
    r, msg, code = env(ctx, "show", "-c", EX)
    assert.are.equal(2, code)
  end)

  it("refreshes with --watch", function()
    local ctx = world(DEPLOYED)
    ctx.follow_rounds = 2
    assert.are.equal(0, env(ctx, "show", "acceptance", "-w", "-f", "json", "-c", EX))
    assert.are.equal(2, select(2, ctx.stdout:text():gsub("BASE_URL", "")))
  end)
end)

describe("env terminate", function()
  local deleted
  local function ssm()
    deleted = {}
    return { ssm = { DeleteParameter = function(p)
      deleted[#deleted + 1] = p.Name
      if p.Name:match("production") then return nil, fakes.err("ParameterNotFound", p.Name) end
      return {}
    end } }
  end

  it("deletes everything in the environment, then the managed passwords", function()
    local ctx, _, dep = world({}, ssm())
    assert.are.equal(0, env(ctx, "term", "acceptance", "-c", EX, "--yes"))
    assert.are.equal("down", dep.runs[1].action)
    local names = dep.runs[1].names
    assert.are.equal(7, #names)
    for _, n in ipairs(names) do
      assert.matches("acceptance", n)
      assert.is_nil(n:find("iam-common", 1, true))
    end
    assert.are.same({ "mu-database-sample-service-acceptance-DatabaseMasterPassword" }, deleted)
  end)

  it("keeps the passwords when the stacks could not be deleted", function()
    local ctx, _, dep = world({}, ssm(), { down = { ok = false, exit_code = 1 } })
    assert.are.equal(1, env(ctx, "terminate", "acceptance", "-c", EX))
    assert.are.equal(1, #dep.runs)
    assert.are.same({}, deleted)
  end)

  it("finds the stacks of an environment the configuration no longer has", function()
    local ctx, _, dep = world(DEPLOYED, ssm())
    assert.are.equal(0, env(ctx, "terminate", "acceptance"))
    -- names go to the engine in deploy order: it deletes the last first
    assert.are.same({ "mu-vpc-acceptance", "mu-loadbalancer-acceptance", "mu-environment-acceptance",
      "mu-database-web-acceptance", "mu-service-web-acceptance" }, dep.runs[1].names)
    assert.are.same({ "mu-database-web-acceptance-DatabaseMasterPassword" }, deleted)
    local r, msg, code = env(ctx, "terminate", "nowhere")
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("no stack of environment 'nowhere'", msg)
  end)

  it("lists instead of deleting with --dryrun", function()
    local ctx, aws, dep = world({}, ssm())
    assert.are.equal(0, env(ctx, "terminate", "acceptance", "-c", EX, "-d"))
    assert.are.equal(0, #aws.calls)
    assert.are.equal(0, #dep.runs)
    assert.matches("would delete mu%-vpc%-acceptance", ctx.stderr:text())
    assert.matches("would delete SSM parameter", ctx.stderr:text())
  end)

  it("needs an environment name", function()
    local r, msg, code = env(world(), "terminate", "-c", EX)
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("name the environments", msg)
  end)
end)

describe("env logs", function()
  it("reads the environment's log group with the filter and duration", function()
    local ctx, aws = world({}, { logs = { FilterLogEvents = function()
      return { events = { { eventId = "e", timestamp = 1700000000000, message = "boot ok" } } }
    end } })
    assert.are.equal(0, env(ctx, "logs", "acceptance", "ERROR", "boot", "-t", "5m", "-c", EX))
    local call = aws.find("logs", "FilterLogEvents")
    assert.are.equal("mu-environment-acceptance", call.params.logGroupName)
    assert.are.equal("ERROR boot", call.params.filterPattern)
    assert.are.equal((1700000000 - 300) * 1000, call.params.startTime)
    assert.matches("boot ok", ctx.stdout:text())
  end)

  it("rejects a bad --search-duration", function()
    local r, msg, code = env(world(), "logs", "acceptance", "-t", "forever", "-c", EX)
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("%-%-search%-duration", msg)
  end)
end)
