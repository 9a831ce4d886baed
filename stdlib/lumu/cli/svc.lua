--- `lumu svc push|deploy|undeploy|show|logs|exec|restart` (alias
-- `service`): mu's service commands.
--
--   svc push [-t TAG] [-p ecr|s3] [-k KEY] [-s SVC]   the provider is
--       --provider, else ecr when the service's Dockerfile exists, else s3
--       (mu's rule).
--       ecr: builds the image with docker or podman (LUMU_CONTAINER_ENGINE,
--       else the first on PATH; a clear error when neither is there) and
--       pushes it to the service's ECR repository (its stack is deployed
--       first).  ECR login through GetAuthorizationToken, the password
--       handed over stdin into a throw-away credentials store; never printed
--       or kept.  stdout: the pushed image.
--       s3 (CodeDeploy, the ec2 provider): zips the project directory (the
--       configuration's; without .git/.hg/.svn, symlinks and special files
--       skipped, at most 256 MiB) with lumu.zip and uploads it to
--       s3://<bucket>/<service>/<tag>.zip -- the key `svc deploy` passes as
--       RevisionKey.  The bucket is the service's pipeline.build.bucket, else
--       the <ns>-bucket-codedeploy stack's (deployed first).  -k KEY: SSE-KMS
--       with that key (else the bucket's default encryption).  The object
--       records the revision (metadata lumu-revision, lumu-service,
--       lumu-sha256 of the zip).  stdout: the s3:// URL.  A bundle without
--       appspec.yml gets a warning (CodeDeploy needs one).
--       Tag: --tag, else LUMU_REVISION / CodeBuild's source version / the
--       git short sha, else a UTC timestamp (YYYYMMDDhhmmss).
--   svc deploy ENV [-t TAG] [-s SVC]   the service stacks (service IAM,
--       repository, tables, service, schedules) of ENV; ImageTag is --tag,
--       else the revision (the stacks' mu:revision).
--   svc undeploy ENV [SVC]             deletes the service and its schedules
--   svc show [SVC]                     pipeline and deployments per environment
--   svc logs ENV [FILTER...] [-s SVC] [-f] [-t DUR]   log group
--       <ns>-service-<svc>-<env>
--   svc exec ENV [-s SVC] -- CMD...    runs the task once (ECS RunTask) with
--       the container command overridden; prints the task ARN
--   svc restart ENV [-s SVC] [-b N]    stops the running tasks N at a time,
--       waiting after each batch until the service runs as many as before
-- ctx.exec(argv, {stdin=, env=, silent=}) -> ok, code and
-- ctx.container_engine ("docker" | "podman" | false) replace the process
-- runner and the PATH lookup (tests).
local project = require "lumu.project"
local fs = require "lumu.fs"
local json = require "lumu.json"

local function shell_quote(v)
  return "'" .. tostring(v):gsub("'", "'\\''") .. "'"
end

-- Runs argv (no shell interpretation of the arguments): ok, exit code.
-- Its stdout goes to stderr: stdout is for data.
local function default_exec(argv, o)
  o = o or {}
  local parts = {}
  if o.env and next(o.env) then
    parts[#parts + 1] = "env"
    local keys = {}
    for k in pairs(o.env) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = shell_quote(k .. "=" .. o.env[k]) end
  end
  for _, a in ipairs(argv) do parts[#parts + 1] = shell_quote(a) end
  local cmd = table.concat(parts, " ") .. (o.silent and " >/dev/null 2>&1" or " 1>&2")
  local ok, how, code
  if o.stdin then
    local f = io.popen(cmd, "w")
    if not f then return false, 127 end
    f:write(o.stdin)
    ok, how, code = f:close()
  else
    ok, how, code = os.execute(cmd)
  end
  if how == "signal" then return false, 128 + (code or 0) end
  return ok == true, code or (ok and 0 or 1)
end

local function find_engine(ctx, s)
  if ctx and ctx.container_engine ~= nil then return ctx.container_engine or nil end
  local forced = s.getenv("LUMU_CONTAINER_ENGINE")
  if forced and forced ~= "" then return forced end
  for _, name in ipairs({ "docker", "podman" }) do
    if os.execute("command -v " .. name .. " >/dev/null 2>&1") then return name end
  end
  return nil
end

local function flavour(engine)
  return fs.basename(engine):find("podman", 1, true) and "podman" or "docker"
end

local function service_arg(s, opts, args, i)
  local name = opts.service or args[i]
  return s:services(name)
end

-- push ------------------------------------------------------------------------

-- The S3 (CodeDeploy) provider: zip the project and upload it.  0 | nil, message, code
local function push_bundle(ctx, s, svc, tag, stacks, opts, basedir)
  local key = svc.name .. "/" .. tag .. ".zip"
  if opts.kms_key ~= nil and not tostring(opts.kms_key):match("^[%w:/_%-]+$") then
    return nil, s.name .. ": invalid --kms-key '" .. tostring(opts.kms_key) .. "'", 2
  end
  local given = svc.pipeline and svc.pipeline.build and svc.pipeline.build.bucket
  local bucket_desc
  if not given then
    local want = s.namespace .. "-bucket-codedeploy"
    for _, d in ipairs(stacks) do
      if d.name == want then bucket_desc = d end
    end
    if not bucket_desc then
      -- not in the plan (no ec2 environment): made as lumu synth would
      bucket_desc = require("lumu.gen.service").bucket_stack(s.model, { namespace = s.namespace })
      require("lumu.gen.nag").annotate(bucket_desc.template, { parameters = bucket_desc.parameters })
      bucket_desc.body = json.encode(bucket_desc.template, { pretty = true, sort_keys = true })
    end
  end
  local zip = require "lumu.zip"
  local body, info = zip.dir(basedir, { max_bytes = ctx.max_bundle_bytes })
  if not body then return nil, s.name .. ": " .. svc.name .. ": cannot zip " .. basedir .. ": " .. tostring(info), 1 end
  if not fs.isfile(fs.join(basedir, "appspec.yml")) and not fs.isfile(fs.join(basedir, "appspec.yaml")) then
    s:warn("%s: no appspec.yml in %s: CodeDeploy will refuse the revision", svc.name, basedir)
  end
  for _, name in ipairs(info.skipped) do s:say("%s: left out of the bundle: %s (not a file or directory)", svc.name, name) end
  local what = string.format("%d file%s, %d bytes, zipped to %d", info.files, info.files == 1 and "" or "s",
    info.bytes, #body)
  if s.dryrun then
    if bucket_desc then
      local rc, derr, dcode = project.dryrun(s, { bucket_desc }, "up")
      if rc ~= 0 then return rc, derr, dcode end
    end
    s:say("dry run: would upload %s (%s) to s3://%s/%s", basedir, what, given or "<bucket of " .. bucket_desc.name .. ">",
      key)
    return 0
  end
  local bucket = given
  if not bucket then
    local rc, uerr, ucode = s:up({ bucket_desc })
    if rc ~= 0 then return rc, uerr, ucode end
    local st, serr = s:stack(bucket_desc.name)
    if not st then return nil, s.name .. ": " .. (serr and tostring(serr) or ("no stack " .. bucket_desc.name)), 1 end
    bucket = st.outputs.Bucket
    if not bucket or bucket == "" then return nil, s.name .. ": stack " .. bucket_desc.name .. " has no Bucket output", 1 end
  end
  local crypto = require "lumu.crypto"
  local params = { Bucket = bucket, Key = key, Body = body, ContentType = "application/zip",
    Metadata = { ["lumu-revision"] = tag, ["lumu-service"] = svc.name,
      ["lumu-sha256"] = crypto.hex(crypto.sha256(body)) } }
  if opts.kms_key then
    params.ServerSideEncryption = "aws:kms"
    params.SSEKMSKeyId = opts.kms_key
  end
  s:say("%s: uploading %s (%s) to s3://%s/%s", svc.name, basedir, what, bucket, key)
  local res, perr = s:call("s3", "PutObject", params)
  if not res then return nil, s.name .. ": " .. svc.name .. ": upload to s3://" .. bucket .. "/" .. key .. ": " .. tostring(perr), 1 end
  if res.VersionId and res.VersionId ~= "" then s:say("%s: s3://%s/%s version %s", svc.name, bucket, key, res.VersionId) end
  s.data:write("s3://", bucket, "/", key, "\n")
  return 0
end

local function push(ctx, args, opts)
  ctx = ctx or {}
  local s, err, code = project.session(ctx, opts)
  if not s then return nil, err, code end
  if #args > 0 then return nil, s.name .. ": unexpected argument '" .. args[1] .. "' (use -s SERVICE)", 2 end
  local services
  services, err, code = service_arg(s, opts, args, 99)
  if not services then return nil, err, code end
  if opts.provider and opts.provider ~= "ecr" and opts.provider ~= "s3" then
    return nil, s.name .. ": --provider must be ecr or s3, got '" .. tostring(opts.provider) .. "'", 2
  end
  if opts.tag and not tostring(opts.tag):match("^[%w_][%w_.%-]*$") then
    return nil, s.name .. ": invalid image tag '" .. tostring(opts.tag) .. "'", 2
  end
  local now = ctx.now or require("lumu.time").now
  local tag = opts.tag or s.revision or require("lumu.time").format(now(), "%Y%m%d%H%M%S")
  local basedir = fs.dirname(s.path)
  local stacks
  stacks, err, code = s:plan()
  if not stacks then return nil, err, code end
  local exec = ctx.exec or default_exec
  for _, svc in ipairs(services) do
    local dockerfile = fs.join(basedir, svc.dockerfile or "Dockerfile")
    local provider = opts.provider or (fs.isfile(dockerfile) and "ecr" or "s3")
    if provider == "s3" then
      local rc, perr, pcode = push_bundle(ctx, s, svc, tag, stacks, opts, basedir)
      if rc ~= 0 then return rc, perr, pcode end
    elseif svc.imageRepository then
      s:say("%s: uses the image %s: nothing to push", svc.name, svc.imageRepository)
    else
      if not fs.isfile(dockerfile) then
        return nil, s.name .. ": " .. svc.name .. ": no " .. dockerfile, 1
      end
      local repo
      for _, d in ipairs(stacks) do
        if d.kind == "repo" and d.service == svc.name then repo = d end
      end
      if not repo then return nil, s.name .. ": " .. svc.name .. ": no repository stack in the plan", 1 end
      if s.dryrun then
        local rc, derr, dcode = project.dryrun(s, { repo }, "up")
        if rc ~= 0 then return rc, derr, dcode end
        s:say("dry run: would build %s and push it as %s:%s", dockerfile, repo.name, tag)
      else
        local engine = find_engine(ctx, s)
        if not engine then
          return nil, s.name .. ": no container engine: install docker or podman (or set LUMU_CONTAINER_ENGINE)", 1
        end
        local kind = flavour(engine)
        local rc, uerr, ucode = s:up({ repo })
        if rc ~= 0 then return rc, uerr, ucode end
        local st, serr = s:stack(repo.name)
        if not st then return nil, s.name .. ": " .. (serr and tostring(serr) or ("no stack " .. repo.name)), 1 end
        local url = st.outputs.RepoUrl
        if not url or url == "" then return nil, s.name .. ": stack " .. repo.name .. " has no RepoUrl output", 1 end
        local res, terr = s:call("ecr", "GetAuthorizationToken", {})
        if not res then return nil, s.name .. ": ECR login: " .. tostring(terr), 1 end
        local auth = res.authorizationData and res.authorizationData[1]
        local decoded = auth and auth.authorizationToken
          and require("lumu.crypto").base64_decode(auth.authorizationToken)
        local user, password = (decoded or ""):match("^([^:]+):(.+)$")
        if not user then return nil, s.name .. ": ECR login: unexpected authorization token", 1 end
        local registry = (auth.proxyEndpoint or ""):gsub("^%a+://", ""):gsub("/.*$", "")
        if registry == "" then registry = url:match("^([^/]+)") end
        local image = url .. ":" .. tag
        local tmp, tmperr = fs.tmpdir("lumu-push-")
        if not tmp then return nil, s.name .. ": " .. tostring(tmperr), 1 end
        local authfile = fs.join(tmp, "auth.json")
        local env = kind == "docker" and { DOCKER_CONFIG = tmp } or nil
        local function login_args()
          local a = { engine, "login" }
          if kind == "podman" then a[#a + 1] = "--authfile"; a[#a + 1] = authfile end
          for _, x in ipairs({ "--username", user, "--password-stdin", registry }) do a[#a + 1] = x end
          return a
        end
        local steps = {
          { what = "login to " .. registry, argv = login_args(), stdin = password, env = env },
          { what = "build", argv = { engine, "build", "--label", "SERVICE_NAME=" .. svc.name, "-t", image,
            "-f", dockerfile, basedir } },
          { what = "push", argv = kind == "podman" and { engine, "push", "--authfile", authfile, image }
            or { engine, "push", image }, env = env },
        }
        password = nil
        local failed
        local ok, perr = pcall(function()
          for _, step in ipairs(steps) do
            s:say("%s: %s %s", svc.name, kind, step.what == "build" and ("build " .. image) or step.what)
            local sok, scode = exec(step.argv, { stdin = step.stdin, env = step.env, silent = s.silent })
            step.stdin = nil
            if not sok then
              failed = string.format("%s: %s %s failed (exit %s)", svc.name, kind, step.what, tostring(scode))
              return
            end
          end
        end)
        fs.rmtree(tmp)
        if not ok then error(perr, 0) end
        if failed then return nil, s.name .. ": " .. failed, 1 end
        s.data:write(image, "\n")
      end
    end
  end
  return 0
end

-- deploy / undeploy -------------------------------------------------------------

local function deploy(ctx, args, opts)
  local s, err, code = project.session(ctx, opts)
  if not s then return nil, err, code end
  if #args ~= 1 then return nil, s.name .. ": name one environment", 2 end
  local envs
  envs, err, code = s:environments(args)
  if not envs then return nil, err, code end
  local services
  services, err, code = s:services(opts.service)
  if not services then return nil, err, code end
  if opts.tag and not tostring(opts.tag):match("^[%w_][%w_.%-]*$") then
    return nil, s.name .. ": invalid image tag '" .. tostring(opts.tag) .. "'", 2
  end
  local stacks
  stacks, err, code = s:plan(envs)
  if not stacks then return nil, err, code end
  local descs = {}
  for _, svc in ipairs(services) do
    for _, d in ipairs(project.pick.service(stacks, envs[1], svc.name)) do descs[#descs + 1] = d end
  end
  if #descs == 0 then
    return nil, string.format("%s: no service stack for environment '%s' (is it an EKS environment?)", s.name,
      envs[1]), 1
  end
  project.set_image_tag(descs, opts.tag or s.revision)
  return s:up(descs)
end

local function undeploy(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args < 1 or #args > 2 then return nil, s.name .. ": usage: lumu svc undeploy ENV [SERVICE]", 2 end
  local env, name = args[1], args[2] or opts.service
  local targets = {}
  if s.model then
    local services
    services, err, code = s:services(name)
    if not services then return nil, err, code end
    local known = false
    for _, e in ipairs(s.model.environments or {}) do if e.name == env then known = true end end
    if known or #(s.model.environments or {}) == 0 then
      local stacks
      stacks, err, code = s:plan({ env })
      if not stacks then return nil, err, code end
      for _, svc in ipairs(services) do
        for _, d in ipairs(stacks) do
          if d.env == env and d.service == svc.name and (d.kind == "service" or d.kind == "schedule") then
            targets[#targets + 1] = d
          end
        end
      end
    else
      for _, svc in ipairs(services) do targets[#targets + 1] = s.namespace .. "-service-" .. svc.name .. "-" .. env end
    end
  else
    if not name then return nil, s.name .. ": no configuration here: name the service", 2 end
    targets[1] = s.namespace .. "-service-" .. name .. "-" .. env
  end
  -- dependants first: schedules before their service
  table.sort(targets, function(a, b)
    local ka = type(a) == "table" and a.kind == "schedule" and 0 or 1
    local kb = type(b) == "table" and b.kind == "schedule" and 0 or 1
    if ka ~= kb then return ka < kb end
    return (type(a) == "table" and a.name or a) < (type(b) == "table" and b.name or b)
  end)
  return s:down(targets)
end

-- show --------------------------------------------------------------------------

local function show(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if s.dryrun then return nil, s.name .. ": --dryrun has nothing to write", 2 end
  local name = args[1] or opts.service
  if not name then
    local services = s.model and s.model.services or {}
    if #services ~= 1 then
      return nil, s.name .. ": name the service" .. (#services > 1 and " (the configuration has several)" or ""), 2
    end
    name = services[1].name
  end
  local stacks
  stacks, err = s:stacks(function(st) return st.tags["mu:service"] == name end)
  if not stacks then return nil, s.name .. ": " .. tostring(err), 1 end
  local info = { service = name, deployments = json.array(), pipeline = nil }
  for _, st in ipairs(stacks) do
    local kind = st.tags["mu:type"]
    if kind == "service" then
      info.deployments[#info.deployments + 1] = { environment = st.tags["mu:environment"], stack = st.name,
        status = st.status, revision = st.tags["mu:revision"], updated = project.iso(st.updated) }
    elseif kind == "pipeline" then
      info.pipeline = { stack = st.name, status = st.status, url = st.outputs.CodePipelineUrl,
        name = st.outputs.PipelineName }
    end
  end
  if info.pipeline and info.pipeline.name then
    local res = s:call("codepipeline", "GetPipelineState", { name = info.pipeline.name })
    if res then
      local stages = json.array()
      for _, stg in ipairs(res.stageStates or {}) do
        for _, a in ipairs(stg.actionStates or {}) do
          stages[#stages + 1] = { stage = stg.stageName, action = a.actionName,
            status = a.latestExecution and a.latestExecution.status or "-",
            updated = project.iso(a.latestExecution and a.latestExecution.lastStatusChange) }
        end
      end
      info.pipeline.actions = stages
    end
  end
  if s.output == "json" then
    s.data:write(json.encode(info, { pretty = true }))
    return 0
  end
  local w = s.data
  w:write("Service: ", name, "\n")
  if info.pipeline then
    w:write("Pipeline: ", info.pipeline.stack, " (", info.pipeline.status, ")", "\n")
    if info.pipeline.url then w:write("Pipeline URL: ", info.pipeline.url, "\n") end
    if info.pipeline.actions and #info.pipeline.actions > 0 then
      w:write(project.text_table(info.pipeline.actions, { { "stage", "STAGE" }, { "action", "ACTION" },
        { "status", "STATUS" }, { "updated", "LAST CHANGE" } }))
    end
  else
    w:write("Pipeline: -\n")
  end
  w:write("\nDeployments:\n")
  if #info.deployments == 0 then
    w:write("(none)\n")
  else
    w:write(project.text_table(info.deployments, { { "environment", "ENVIRONMENT" }, { "stack", "STACK" },
      { "status", "STATUS" }, { "revision", "REVISION" }, { "updated", "LAST UPDATE" } }))
  end
  return 0
end

-- logs --------------------------------------------------------------------------

local function service_names(s, opts)
  if opts.service then return { opts.service } end
  local out = {}
  for _, svc in ipairs(s.model and s.model.services or {}) do out[#out + 1] = svc.name end
  if #out == 0 then return nil, s.name .. ": name the service (-s SERVICE)", 2 end
  return out
end

local function logs(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args < 1 then return nil, s.name .. ": name an environment", 2 end
  if s.dryrun then return nil, s.name .. ": --dryrun has nothing to write", 2 end
  local since, derr = project.duration(opts.search_duration or "1m")
  if not since then return nil, s.name .. ": --search-duration: " .. derr, 2 end
  local names
  names, err, code = service_names(s, opts)
  if not names then return nil, err, code end
  local groups = {}
  for _, n in ipairs(names) do groups[#groups + 1] = s.namespace .. "-service-" .. n .. "-" .. args[1] end
  return project.tail_logs(s, groups, { filter = table.concat(args, " ", 2), since = since, follow = opts.follow })
end

-- exec / restart ----------------------------------------------------------------

-- The ECS service of svc in env: {cluster=, service=, task_definition=,
-- description=} | nil, message, code
local function ecs_service(s, env, svc)
  local sstack, err = s:stack(s.namespace .. "-service-" .. svc .. "-" .. env)
  if err then return nil, s.name .. ": " .. tostring(err), 1 end
  if not sstack then
    return nil, string.format("%s: service '%s' is not deployed in '%s' (no stack %s-service-%s-%s)", s.name, svc,
      env, s.namespace, svc, env), 1
  end
  local estack
  estack, err = s:stack(s.namespace .. "-environment-" .. env)
  if err then return nil, s.name .. ": " .. tostring(err), 1 end
  local cluster = estack and estack.outputs.EcsCluster
  if not cluster then return nil, s.name .. ": environment '" .. env .. "' has no ECS cluster", 1 end
  local name = sstack.outputs.EcsServiceName
  if not name then return nil, s.name .. ": stack " .. sstack.name .. " has no ECS service (EcsServiceName)", 1 end
  local res, derr = s:call("ecs", "DescribeServices", { cluster = cluster, services = { name } })
  if not res then return nil, s.name .. ": " .. tostring(derr), 1 end
  local desc = res.services and res.services[1]
  if not desc then return nil, s.name .. ": ECS service " .. name .. " not found in cluster " .. cluster, 1 end
  return { cluster = cluster, service = name, container = svc,
    task_definition = sstack.outputs.MicroserviceTaskDefinitionArn or desc.taskDefinition, description = desc }
end

local function one_service(s, opts)
  local names, err, code = service_names(s, opts)
  if not names then return nil, err, code end
  if #names > 1 then return nil, s.name .. ": several services: choose one with -s SERVICE", 2 end
  return names[1]
end

local function exec_cmd(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args < 2 then return nil, s.name .. ": usage: lumu svc exec ENV [-s SERVICE] -- COMMAND...", 2 end
  if s.dryrun then return nil, s.name .. ": --dryrun: exec runs nothing", 2 end
  local name
  name, err, code = one_service(s, opts)
  if not name then return nil, err, code end
  local e
  e, err, code = ecs_service(s, args[1], name)
  if not e then return nil, err, code end
  local command = table.move(args, 2, #args, 1, json.array())
  local params = {
    cluster = opts.cluster or e.cluster, taskDefinition = opts.task or e.task_definition, count = 1,
    startedBy = "lumu-svc-exec",
    overrides = { containerOverrides = { { name = e.container, command = command } } },
  }
  local d = e.description
  if d.networkConfiguration then params.networkConfiguration = d.networkConfiguration end
  if d.capacityProviderStrategy and #d.capacityProviderStrategy > 0 then
    params.capacityProviderStrategy = d.capacityProviderStrategy
  elseif d.launchType then
    params.launchType = d.launchType
  end
  local res, rerr = s:call("ecs", "RunTask", params)
  if not res then return nil, s.name .. ": " .. tostring(rerr), 1 end
  if res.failures and #res.failures > 0 then
    local f = res.failures[1]
    return nil, s.name .. ": RunTask: " .. tostring(f.reason) .. (f.detail and (": " .. f.detail) or ""), 1
  end
  for _, t in ipairs(res.tasks or {}) do s.data:write(t.taskArn, "\n") end
  return 0
end

local function restart(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args ~= 1 then return nil, s.name .. ": name one environment", 2 end
  if s.dryrun then return nil, s.name .. ": --dryrun: restart stops nothing", 2 end
  local batch = math.tointeger(tonumber(opts.batch_size or "1"))
  if not batch or batch < 1 then return nil, s.name .. ": --batch-size must be a positive integer", 2 end
  local name
  name, err, code = one_service(s, opts)
  if not name then return nil, err, code end
  local e
  e, err, code = ecs_service(s, args[1], name)
  if not e then return nil, err, code end
  local tasks = {}
  local ok, perr = pcall(function()
    local c = assert(s:client("ecs"))
    for page in c:paginate("ListTasks", { cluster = e.cluster, serviceName = e.service, desiredStatus = "RUNNING" }) do
      for _, t in ipairs(page.taskArns or {}) do tasks[#tasks + 1] = t end
    end
  end)
  if not ok then return nil, s.name .. ": " .. tostring(perr), 1 end
  if #tasks == 0 then
    s:say("%s: no running task in %s", name, e.service)
    return 0
  end
  local want = e.description.runningCount or #tasks
  local sleep = ctx and ctx.sleep or require("lumu.time").sleep
  local timeout = tonumber(opts.timeout or "600") or 600
  for i = 1, #tasks, batch do
    for j = i, math.min(i + batch - 1, #tasks) do
      local _, serr = s:call("ecs", "StopTask", { cluster = e.cluster, task = tasks[j], reason = "lumu svc restart" })
      if serr then return nil, s.name .. ": " .. tostring(serr), 1 end
      s:say("%s: stopped %s", name, tasks[j]:match("[^/]+$") or tasks[j])
    end
    local waited = 0
    while true do
      sleep(5)
      waited = waited + 5
      local res, derr = s:call("ecs", "DescribeServices", { cluster = e.cluster, services = { e.service } })
      if not res then return nil, s.name .. ": " .. tostring(derr), 1 end
      local d = res.services and res.services[1] or {}
      if (d.runningCount or 0) >= want then break end
      if waited >= timeout then
        return nil, string.format("%s: %s runs %d of %d tasks after %d s: stopped waiting", s.name, e.service,
          d.runningCount or 0, want, waited), 1
      end
    end
  end
  s:say("%s: restarted %d task%s", name, #tasks, #tasks == 1 and "" or "s")
  return 0
end

local SERVICE_OPT = { "-s", "--service", arg = "SERVICE", files = false,
  desc = "the service (default: the configuration's)" }

return project.group {
  name = "svc",
  summary = "push, deploy, undeploy, show, restart services, run commands and read logs (mu's service)",
  subcommands = {
    { name = "push", run = push, usage = "lumu svc push [-t TAG] [-p ecr|s3] [-k KEY] [-s SERVICE]",
      summary = "build and push the service's image to ECR, or zip the project to S3 for CodeDeploy",
      help = "ecr (default with a Dockerfile): builds the image with docker or podman and pushes it to the\n"
        .. "service's ECR repository; prints the image.  s3 (default without one: the ec2 provider's\n"
        .. "CodeDeploy revision): zips the project directory (no .git) to s3://<codedeploy bucket>/<svc>/<tag>.zip;\n"
        .. "prints the s3:// URL.  The tag is --tag, else LUMU_REVISION, CodeBuild's source version or the git\n"
        .. "short sha, else a UTC timestamp.",
      options = {
        { "-t", "--tag", arg = "TAG", files = false, desc = "image tag (default: the git short sha)" },
        { "-p", "--provider", arg = "PROVIDER", choices = { "ecr", "s3" },
          desc = "ecr (default with a Dockerfile) or s3 (CodeDeploy bundle)" },
        { "-k", "--kms-key", arg = "KEY", files = false, desc = "KMS key (id, ARN or alias) for s3 bundles (SSE-KMS)" },
        SERVICE_OPT,
      } },
    { name = "deploy", run = deploy, usage = "lumu svc deploy ENV [-t TAG] [-s SERVICE]",
      summary = "deploy the service to an environment",
      options = { { "-t", "--tag", arg = "TAG", files = false, desc = "image tag (default: the revision)" },
        SERVICE_OPT } },
    { name = "undeploy", run = undeploy, usage = "lumu svc undeploy ENV [SERVICE]",
      summary = "delete the service (and its schedules) from an environment", options = { SERVICE_OPT } },
    { name = "show", run = show, usage = "lumu svc show [SERVICE] [--output json]",
      summary = "show the service's pipeline and its deployments", options = {
        SERVICE_OPT, { "-w", "--watch", desc = "(mu; accepted)" }, { "-t", "--tasks", desc = "(mu; accepted)" } } },
    { name = "logs", run = logs, usage = "lumu svc logs ENV [FILTER...] [-s SERVICE] [-f] [-t DUR]",
      summary = "read the service's CloudWatch Logs", options = {
        SERVICE_OPT,
        { "-f", "--follow", desc = "keep polling for new events (every 5 s)" },
        { "-t", "--search-duration", arg = "DUR", files = false, desc = "how far back to search (default 1m)" },
      } },
    { name = "exec", run = exec_cmd, usage = "lumu svc exec ENV [-s SERVICE] -- COMMAND [ARGS...]",
      summary = "run the service's task once with another command (ECS)", options = {
        SERVICE_OPT,
        { "--task", arg = "ARN", files = false, desc = "task definition (default: the service's)" },
        { "--cluster", arg = "NAME", files = false, desc = "cluster (default: the environment's)" },
      } },
    { name = "restart", run = restart, usage = "lumu svc restart ENV [-s SERVICE] [-b N]",
      summary = "rolling restart of the service's tasks (ECS)", options = {
        SERVICE_OPT,
        { "-b", "--batch-size", arg = "N", files = false, desc = "tasks stopped at once (default 1)" },
        { "--timeout", arg = "SECONDS", files = false, desc = "wait per batch (default 600)" },
      } },
  },
}
