--- `lumu pipeline up|list|terminate|logs|show`: mu's pipeline commands.
--
--   pipeline up [SERVICE] [-t TOKEN]   (alias upsert) the pipeline stacks
--       (pipeline IAM + CodePipeline, or the Service Catalog provisioned
--       product) with the IAM stacks they name (common, environment and
--       service IAM of the acceptance/production environments).  -t: mu's
--       GitHub token (a NoEcho parameter; lumu prefers source.connectionArn
--       or source.tokenSecret).
--   pipeline list             (alias ls) the pipeline stacks
--   pipeline terminate [SERVICE]   (alias term) the pipeline and its IAM stack
--       (and, for environments in other accounts, the stages' project stacks
--       there)
--   pipeline logs [FILTER...] [-s SERVICE] [-f] [-t DUR]   the CodeBuild log
--       groups /aws/codebuild/<ns>-pipeline-<svc>-{artifact,image,
--       deploy-acceptance,test-acceptance,deploy-production,test-production}
--   pipeline show [SERVICE]   stack status, URL and the actions' last runs
local project = require "lumu.project"
local json = require "lumu.json"

local function up(ctx, args, opts)
  local s, err, code = project.session(ctx, opts)
  if not s then return nil, err, code end
  local name = args[1] or opts.service
  if #args > 1 then return nil, s.name .. ": unexpected argument '" .. args[2] .. "'", 2 end
  if name then
    local ok
    ok, err, code = s:services(name)
    if not ok then return nil, err, code end
  end
  local stacks
  -- mu's GitHub token: a NoEcho parameter passed in the API call only
  if opts.token then s.secrets = { GitHubToken = opts.token } end
  stacks, err, code = s:plan(nil, opts.token and { github_token = "parameter" } or nil)
  if not stacks then return nil, err, code end
  local descs = project.pick.pipeline(stacks, name)
  if #descs == 0 then
    return nil, s.name .. ": " .. (name and ("service '" .. name .. "'") or "the configuration")
      .. " has no pipeline", 1
  end
  return s:up(descs)
end

local function list(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args > 0 then return nil, s.name .. ": unexpected argument '" .. args[1] .. "'", 2 end
  if s.dryrun then return nil, s.name .. ": --dryrun has nothing to write", 2 end
  local stacks
  stacks, err = s:stacks(function(st) return st.tags["mu:type"] == "pipeline" end)
  if not stacks then return nil, s.name .. ": " .. tostring(err), 1 end
  local rows = {}
  for _, st in ipairs(stacks) do
    rows[#rows + 1] = { service = st.tags["mu:service"], stack = st.name, status = st.status,
      url = st.outputs.CodePipelineUrl, updated = project.iso(st.updated) }
  end
  return s:emit(rows, { { "service", "SERVICE" }, { "stack", "STACK" }, { "status", "STATUS" },
    { "updated", "LAST UPDATE" }, { "url", "URL" } })
end

local function terminate(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  local name = args[1] or opts.service
  local targets = {}
  if s.model then
    if name then
      local ok
      ok, err, code = s:services(name)
      if not ok then return nil, err, code end
    end
    local stacks
    stacks, err, code = s:plan()
    if not stacks then return nil, err, code end
    for _, d in ipairs(stacks) do
      -- (kind "pipeline" with an env: the stage's projects in another account)
      if (name == nil or d.service == name)
          and (d.kind == "pipeline" or (d.env == nil and (d.kind == "catalog-provision"
            or (d.kind == "iam" and d.name == s.namespace .. "-iam-pipeline-" .. tostring(d.service))))) then
        targets[#targets + 1] = d
      end
    end
  elseif name then
    targets = { s.namespace .. "-pipeline-" .. name, s.namespace .. "-iam-pipeline-" .. name }
  else
    return nil, s.name .. ": no configuration here: name the service", 2
  end
  if #targets == 0 then return nil, s.name .. ": no pipeline in the configuration", 1 end
  return s:down(targets)
end

local function names(s, opts, args)
  local n = opts.service
  if n then return { n } end
  local out = {}
  for _, svc in ipairs(s.model and s.model.services or {}) do
    if svc.pipeline then out[#out + 1] = svc.name end
  end
  if #out == 0 then return nil, s.name .. ": name the service (-s SERVICE)", 2 end
  return out
end

local function logs(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if s.dryrun then return nil, s.name .. ": --dryrun has nothing to write", 2 end
  local since, derr = project.duration(opts.search_duration or "1m")
  if not since then return nil, s.name .. ": --search-duration: " .. derr, 2 end
  local svcs
  svcs, err, code = names(s, opts, args)
  if not svcs then return nil, err, code end
  local groups = {}
  for _, svc in ipairs(svcs) do
    for _, p in ipairs(require("lumu.gen.pipeline").PROJECTS) do
      groups[#groups + 1] = "/aws/codebuild/" .. s.namespace .. "-pipeline-" .. svc .. "-" .. p
    end
  end
  return project.tail_logs(s, groups, { filter = table.concat(args, " "), since = since, follow = opts.follow })
end

local function show(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if s.dryrun then return nil, s.name .. ": --dryrun has nothing to write", 2 end
  local svcs
  if args[1] then svcs = { args[1] } else svcs, err, code = names(s, opts, args) end
  if not svcs then return nil, err, code end
  local all = json.array()
  for _, svc in ipairs(svcs) do
    local st
    st, err = s:stack(s.namespace .. "-pipeline-" .. svc)
    if err then return nil, s.name .. ": " .. tostring(err), 1 end
    local info = { service = svc, stack = s.namespace .. "-pipeline-" .. svc,
      status = st and st.status or "NOT DEPLOYED", url = st and st.outputs.CodePipelineUrl, actions = json.array() }
    local pname = st and st.outputs.PipelineName
    if pname then
      local res = s:call("codepipeline", "GetPipelineState", { name = pname })
      for _, stg in ipairs(res and res.stageStates or {}) do
        for _, a in ipairs(stg.actionStates or {}) do
          local le = a.latestExecution or {}
          info.actions[#info.actions + 1] = { stage = stg.stageName, action = a.actionName, status = le.status or "-",
            updated = project.iso(le.lastStatusChange), summary = le.summary }
        end
      end
    end
    all[#all + 1] = info
  end
  if s.output == "json" then
    s.data:write(json.encode(#all == 1 and all[1] or all, { pretty = true }))
    return 0
  end
  for i, info in ipairs(all) do
    if i > 1 then s.data:write("\n") end
    s.data:write("Pipeline: ", info.stack, " (", info.status, ")\n")
    if info.url then s.data:write("URL: ", info.url, "\n") end
    if #info.actions > 0 then
      s.data:write(project.text_table(info.actions, { { "stage", "STAGE" }, { "action", "ACTION" },
        { "status", "STATUS" }, { "updated", "LAST CHANGE" } }))
    end
  end
  return 0
end

local LOG_OPTIONS = {
  { "-s", "--service", arg = "SERVICE", files = false, desc = "the service (default: every one with a pipeline)" },
  { "-f", "--follow", desc = "keep polling for new events (every 5 s)" },
  { "-t", "--search-duration", arg = "DUR", files = false, desc = "how far back to search (default 1m)" },
}

return project.group {
  name = "pipeline",
  summary = "create, list, show, terminate continuous delivery pipelines and read their build logs",
  subcommands = {
    { name = "up", aliases = { "upsert" }, run = up, usage = "lumu pipeline up [SERVICE] [-t TOKEN]",
      summary = "create or update the service's pipeline",
      options = { { "-t", "--token", arg = "TOKEN", files = false,
        desc = "GitHub token (mu; prefer source.connectionArn)" } } },
    { name = "list", aliases = { "ls" }, run = list, usage = "lumu pipeline list [--output json]",
      summary = "list the pipeline stacks" },
    { name = "terminate", aliases = { "term" }, run = terminate, usage = "lumu pipeline terminate [SERVICE]",
      summary = "delete the pipeline and its IAM stack" },
    { name = "logs", run = logs, usage = "lumu pipeline logs [FILTER...] [-s SERVICE] [-f] [-t DUR]",
      summary = "read the pipeline's CodeBuild logs", options = LOG_OPTIONS },
    { name = "show", run = show, usage = "lumu pipeline show [SERVICE] [--output json]",
      summary = "show the pipeline's status, URL and last action runs" },
  },
}
