-- `lumu svc push|deploy|undeploy|show|logs|exec|restart` over fakes: the
-- container engine runner, ECR login (the password only on stdin), tags
-- and revisions, stack selection, ECS calls.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fakes = dofile(HERE .. "/cmd_fakes.lua")
local json = require "lumu.json"
local fs = require "lumu.fs"
local crypto = require "lumu.crypto"

local EX = fakes.EXAMPLE
local PASSWORD = "ecr-Pa55word-that-must-stay-secret"
local REPO_URL = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mu-sample-service"

local function svc(ctx, ...)
  return fakes.run("lumu.cli.svc", ctx, { ... })
end

-- A project directory holding the example and a Dockerfile.
local tmp, cfg
before_each(function()
  tmp = assert(fs.tmpdir("lumu-cmdsvc-"))
  cfg = fs.join(tmp, "lumu.lua")
  assert(fs.write(cfg, assert(fs.read(EX))))
  assert(fs.write(fs.join(tmp, "Dockerfile"), "FROM scratch\n"))
end)
after_each(function() fs.rmtree(tmp) end)

local function push_world(t)
  t = t or {}
  local stacks = { { name = "mu-repo-sample-service", tags = { ["mu:type"] = "repo" }, outputs = { RepoUrl = REPO_URL } } }
  local aws = fakes.aws(fakes.handlers(stacks, { ecr = { GetAuthorizationToken = function()
    return { authorizationData = { { authorizationToken = crypto.base64_encode("AWS:" .. PASSWORD),
      proxyEndpoint = "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com" } } }
  end } }))
  local dep = fakes.deploy()
  local execs = {}
  local ctx = fakes.ctx { aws = aws, deploy = dep, container_engine = t.engine == nil and "docker" or t.engine,
    git_revision = t.rev or false,
    exec = function(argv, o)
      execs[#execs + 1] = { argv = argv, stdin = o.stdin, env = o.env }
      if t.fail and argv[2] == t.fail then return false, 1 end
      if argv[2] == "login" then
        -- the credentials store is a throw-away directory that exists during the run
        local dir = o.env and o.env.DOCKER_CONFIG or fs.dirname(argv[4])
        assert(fs.isdir(dir))
        t.store = dir
      end
      return true, 0
    end }
  return ctx, aws, dep, execs
end

describe("svc push", function()
  it("deploys the repository, logs in over stdin, builds and pushes with the git revision", function()
    local t = { rev = "abc1234" }
    local ctx, aws, dep, execs = push_world(t)
    assert.are.equal(0, svc(ctx, "push", "-c", cfg))
    assert.are.same({ "mu-repo-sample-service" }, dep.runs[1].names)
    assert.are.equal(1, aws.count("ecr", "GetAuthorizationToken"))
    assert.are.equal(3, #execs)
    local login, build, push = execs[1], execs[2], execs[3]
    assert.are.same({ "docker", "login", "--username", "AWS", "--password-stdin",
      "123456789012.dkr.ecr.eu-west-1.amazonaws.com" }, login.argv)
    assert.are.equal(PASSWORD, login.stdin)
    assert.are.same({ "docker", "build", "--label", "SERVICE_NAME=sample-service", "-t", REPO_URL .. ":abc1234",
      "-f", fs.join(tmp, "Dockerfile"), tmp }, build.argv)
    assert.are.same({ "docker", "push", REPO_URL .. ":abc1234" }, push.argv)
    assert.are.equal(login.env.DOCKER_CONFIG, push.env.DOCKER_CONFIG)
    assert.is_nil(build.env)
    assert.are.equal(REPO_URL .. ":abc1234\n", ctx.stdout:text())
    -- the password: never in an argument, on a stream or left on disk
    for _, e in ipairs(execs) do
      for _, a in ipairs(e.argv) do assert.is_nil(a:find(PASSWORD, 1, true)) end
    end
    assert.is_nil(ctx.stderr:text():find(PASSWORD, 1, true))
    assert.is_nil(ctx.stdout:text():find(PASSWORD, 1, true))
    assert.is_false(fs.exists(t.store))
  end)

  it("uses podman's --authfile and a timestamp tag without git", function()
    local t = { engine = "/usr/bin/podman" }
    local ctx, _, _, execs = push_world(t)
    assert.are.equal(0, svc(ctx, "push", "-c", cfg))
    assert.are.equal("--authfile", execs[1].argv[3])
    assert.is_nil(execs[1].env)
    assert.are.same({ "/usr/bin/podman", "push", "--authfile", execs[1].argv[4], REPO_URL .. ":20231114221320" },
      execs[3].argv)
    assert.is_false(fs.exists(t.store))
  end)

  it("takes --tag over the revision and rejects bad tags", function()
    local ctx, _, _, execs = push_world { rev = "abc1234" }
    assert.are.equal(0, svc(ctx, "push", "-t", "v1.2.3", "-c", cfg))
    assert.are.equal(REPO_URL .. ":v1.2.3", execs[3].argv[3])
    local r, msg, code = svc(push_world(), "push", "-t", "bad tag;rm", "-c", cfg)
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("invalid image tag", msg)
  end)

  it("says clearly when there is no container engine, before touching AWS", function()
    local ctx, aws, dep = push_world { engine = false }
    local r, msg, code = svc(ctx, "push", "-c", cfg)
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("no container engine: install docker or podman", msg)
    assert.are.equal(0, #dep.runs)
    assert.are.equal(0, aws.count("ecr"))
  end)

  it("stops at the first failing step and cleans up", function()
    local t = { fail = "build" }
    local ctx, _, _, execs = push_world(t)
    local r, msg, code = svc(ctx, "push", "-c", cfg)
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("docker build failed", msg)
    assert.are.equal(2, #execs)
    assert.is_false(fs.exists(t.store))
  end)

  it("takes the S3 bundle provider without a Dockerfile, and refuses a missing Dockerfile for ecr", function()
    assert(fs.remove(fs.join(tmp, "Dockerfile")))
    -- (the bundle path itself: deploy_cli_spec.lua; here the bucket stack has no outputs)
    local ctx, _, dep = push_world()
    local r, msg, code = svc(ctx, "push", "-c", cfg)
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.are.same({ "mu-bucket-codedeploy" }, dep.runs[1].names)
    assert.matches("mu%-bucket%-codedeploy", msg)
    r, msg, code = svc(push_world(), "push", "-p", "ecr", "-c", cfg)
    assert.are.equal(1, code)
    assert.matches("no .*Dockerfile", msg)
    r, msg, code = svc(push_world(), "push", "-p", "gcr", "-c", cfg)
    assert.are.equal(2, code)
  end)

  it("rejects a malformed authorization token", function()
    local ctx, aws = push_world()
    local real = aws.client
    aws.client = function(s, o)
      local c = real(s, o)
      if s == "ecr" then
        rawset(c, "GetAuthorizationToken", function() return { authorizationData = { { authorizationToken = "%%%" } } } end)
      end
      return c
    end
    local r, msg = svc(ctx, "push", "-c", cfg)
    assert.is_nil(r)
    assert.matches("unexpected authorization token", msg)
  end)

  it("writes the repository stack and runs nothing with --dryrun", function()
    local ctx, aws, dep, execs = push_world()
    assert.are.equal(0, svc(ctx, "push", "-c", cfg, "-d", "-O", fs.join(tmp, "dry")))
    assert.are.equal(0, #aws.calls + #dep.runs + #execs)
    assert.is_true(fs.isfile(fs.join(tmp, "dry/mu-repo-sample-service.template.json")))
  end)
end)

describe("svc deploy", function()
  it("deploys the service side of one environment with the image tag", function()
    local ctx, _, dep = push_world { rev = "abc1234" }
    assert.are.equal(0, svc(ctx, "deploy", "acceptance", "-c", cfg))
    assert.are.same({ "mu-repo-sample-service", "mu-iam-service-sample-service-acceptance",
      "mu-service-sample-service-acceptance" }, dep.runs[1].names)
    assert.are.equal("abc1234", dep.runs[1].descs[3].parameters.ImageTag)
    assert.are.equal("abc1234", dep.opts.revision)
    ctx, _, dep = push_world { rev = "abc1234" }
    assert.are.equal(0, svc(ctx, "deploy", "production", "-t", "v9", "-c", cfg))
    assert.are.equal("v9", dep.runs[1].descs[3].parameters.ImageTag)
  end)

  it("keeps the template's tag without a revision", function()
    local ctx, _, dep = push_world()
    assert.are.equal(0, svc(ctx, "deploy", "acceptance", "-c", cfg))
    assert.are.equal("latest", dep.runs[1].descs[3].parameters.ImageTag)
  end)

  it("checks the environment and the service", function()
    local r, msg, code = svc(push_world(), "deploy", "qa", "-c", cfg)
    assert.are.equal(2, code)
    assert.matches("unknown environment 'qa'", msg)
    r, msg, code = svc(push_world(), "deploy", "acceptance", "-s", "sample-servise", "-c", cfg)
    assert.are.equal(2, code)
    assert.matches("did you mean 'sample%-service'", msg)
    r, msg, code = svc(push_world(), "deploy", "-c", cfg)
    assert.are.equal(2, code)
    assert.is_nil(r)
  end)
end)

describe("svc undeploy", function()
  it("deletes the service stack of the environment", function()
    local ctx, _, dep = push_world()
    assert.are.equal(0, svc(ctx, "undeploy", "acceptance", "-c", cfg))
    assert.are.equal("down", dep.runs[1].action)
    assert.are.same({ "mu-service-sample-service-acceptance" }, dep.runs[1].names)
  end)

  it("works by name without a configuration", function()
    local ctx, _, dep = push_world()
    assert.are.equal(0, svc(ctx, "undeploy", "qa", "api"))
    assert.are.same({ "mu-service-api-qa" }, dep.runs[1].names)
    local r, _, code = svc(push_world(), "undeploy", "qa")
    assert.is_nil(r)
    assert.are.equal(2, code)
  end)
end)

local ECS_STACKS = {
  { name = "mu-service-sample-service-acceptance", tags = { ["mu:type"] = "service", ["mu:service"] = "sample-service",
    ["mu:environment"] = "acceptance", ["mu:revision"] = "abc1234" },
    outputs = { EcsServiceName = "mu-sample-service-acceptance", MicroserviceTaskDefinitionArn = "arn:td:7" } },
  { name = "mu-environment-acceptance", tags = { ["mu:type"] = "environment", ["mu:environment"] = "acceptance" },
    outputs = { EcsCluster = "cluster-a" } },
  { name = "mu-pipeline-sample-service", tags = { ["mu:type"] = "pipeline", ["mu:service"] = "sample-service" },
    outputs = { CodePipelineUrl = "https://console/p", PipelineName = "mu-sample-service" } },
}

local function ecs_world()
  local running = 2
  local aws = fakes.aws(fakes.handlers(ECS_STACKS, {
    ecs = {
      DescribeServices = function()
        return { services = { { serviceName = "mu-sample-service-acceptance", runningCount = running, desiredCount = 2,
          launchType = "FARGATE", taskDefinition = "arn:td:6",
          networkConfiguration = { awsvpcConfiguration = { subnets = { "subnet-1" } } } } } }
      end,
      RunTask = function() return { tasks = { { taskArn = "arn:aws:ecs:task/cluster-a/t1" } }, failures = {} } end,
      ListTasks = function() return { taskArns = { "arn:task/a", "arn:task/b" } } end,
      StopTask = function() running = running - 1; return { task = {} } end,
    },
    codepipeline = { GetPipelineState = function()
      return { stageStates = { { stageName = "Source", actionStates = { { actionName = "Source",
        latestExecution = { status = "Succeeded", lastStatusChange = 1700000000 } } } } } }
    end },
  }))
  local ctx = fakes.ctx { aws = aws, deploy = fakes.deploy(), sleep = function() running = 2 end }
  return ctx, aws
end

describe("svc show", function()
  it("shows the pipeline and the deployments", function()
    local ctx = ecs_world()
    assert.are.equal(0, svc(ctx, "show", "-c", cfg))
    local out = ctx.stdout:text()
    assert.matches("Pipeline: mu%-pipeline%-sample%-service %(CREATE_COMPLETE%)", out)
    assert.matches("Pipeline URL: https://console/p", out)
    assert.matches("Source%s+Source%s+Succeeded", out)
    assert.matches("acceptance%s+mu%-service%-sample%-service%-acceptance%s+CREATE_COMPLETE%s+abc1234", out)
  end)

  it("gives JSON with --output json", function()
    local ctx = ecs_world()
    assert.are.equal(0, svc(ctx, "show", "sample-service", "--output", "json"))
    local v = json.decode(ctx.stdout:text())
    assert.are.equal("sample-service", v.service)
    assert.are.equal(1, #v.deployments)
    assert.are.equal("Succeeded", v.pipeline.actions[1].status)
  end)
end)

describe("svc logs", function()
  it("reads the service's log group", function()
    local ctx, aws = ecs_world()
    local real = aws.client
    aws.client = function(s, o)
      local c = real(s, o)
      if s == "logs" then rawset(c, "FilterLogEvents", function(_, p)
        aws.calls[#aws.calls + 1] = { service = "logs", op = "FilterLogEvents", params = p }
        return { events = {} }
      end) end
      return c
    end
    ctx.follow_rounds = 2
    assert.are.equal(0, svc(ctx, "logs", "acceptance", "-c", cfg, "-f"))
    assert.are.equal(2, aws.count("logs", "FilterLogEvents"))
    assert.are.equal("mu-service-sample-service-acceptance", aws.find("logs", "FilterLogEvents").params.logGroupName)
  end)
end)

describe("svc exec", function()
  it("runs the task once with the command, with the service's network", function()
    local ctx, aws = ecs_world()
    assert.are.equal(0, svc(ctx, "exec", "acceptance", "-c", cfg, "--", "rake", "db:migrate"))
    local p = aws.find("ecs", "RunTask").params
    assert.are.equal("cluster-a", p.cluster)
    assert.are.equal("arn:td:7", p.taskDefinition)
    assert.are.equal("FARGATE", p.launchType)
    assert.are.same({ "subnet-1" }, p.networkConfiguration.awsvpcConfiguration.subnets)
    assert.are.same({ { name = "sample-service", command = { "rake", "db:migrate" } } }, p.overrides.containerOverrides)
    assert.are.equal("arn:aws:ecs:task/cluster-a/t1\n", ctx.stdout:text())
  end)

  it("fails when the service is not deployed", function()
    local ctx = ecs_world()
    local r, msg, code = svc(ctx, "exec", "production", "-c", cfg, "--", "ls")
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("not deployed in 'production'", msg)
    r, msg, code = svc(ctx, "exec", "acceptance", "-c", cfg)
    assert.are.equal(2, code)
  end)
end)

describe("svc restart", function()
  it("stops the tasks batch by batch, waiting for the count to come back", function()
    local ctx, aws = ecs_world()
    assert.are.equal(0, svc(ctx, "restart", "acceptance", "-c", cfg))
    assert.are.equal(2, aws.count("ecs", "StopTask"))
    assert.matches("restarted 2 tasks", ctx.stderr:text())
    ctx, aws = ecs_world()
    assert.are.equal(0, svc(ctx, "restart", "acceptance", "-b", "2", "-c", cfg))
    assert.are.equal(2, aws.count("ecs", "StopTask"))
    local r, msg, code = svc(ctx, "restart", "acceptance", "-b", "0", "-c", cfg)
    assert.are.equal(2, code)
    assert.matches("batch%-size", msg)
  end)

  it("gives up after the timeout", function()
    local ctx, aws = ecs_world()
    ctx.sleep = function() end -- tasks never come back
    local r, msg, code = svc(ctx, "restart", "acceptance", "--timeout", "10", "-c", cfg)
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("runs 1 of 2 tasks after 10 s", msg)
    assert.are.equal(1, aws.count("ecs", "StopTask"))
  end)
end)
