--- `lumu env up|list|show|terminate|logs` (alias `environment`): mu's
-- environment commands.
--
--   env up ENV... | -A        (alias upsert) the environment stacks (common
--                             IAM, environment IAM, VPC or target, load
--                             balancer, cluster) of one or more
--                             environments, deployed together
--   env list                  (alias ls) the environment stacks: table or JSON
--   env show ENV [-f cli|json|shell] [-w]   provider, base URL, stacks and
--                             services; json/shell print only BASE_URL (what
--                             the pipelines source), --output json all of it
--   env terminate ENV...      (alias term) everything in the environments:
--                             services, schedules, databases (and their
--                             managed passwords), tables, service IAM, the
--                             environment stacks, in reverse order
--   env logs ENV [FILTER...] [-f] [-t DUR]   CloudWatch Logs of the
--                             environment (log group <ns>-environment-<env>)
-- Shared flags: lumu.project.OPTIONS.  Exit: 0 ok, 1 failure, 2 usage or
-- configuration error, 4 changes not confirmed (no terminal and no --yes),
-- 130 interrupted.
local project = require "lumu.project"

local function up(ctx, args, opts)
  local s, err, code = project.session(ctx, opts)
  if not s then return nil, err, code end
  local envs
  envs, err, code = s:environments(args, opts.all)
  if not envs then return nil, err, code end
  local stacks
  stacks, err, code = s:plan(envs)
  if not stacks then return nil, err, code end
  return s:up(project.pick.environments(stacks, envs, s.namespace))
end

local function list(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args > 0 then return nil, s.name .. ": unexpected argument '" .. args[1] .. "'", 2 end
  if s.dryrun then return nil, s.name .. ": --dryrun has nothing to write", 2 end
  local stacks
  stacks, err = s:stacks(function(st) return st.tags["mu:type"] == "environment" end)
  if not stacks then return nil, s.name .. ": " .. tostring(err), 1 end
  local rows = {}
  for _, st in ipairs(stacks) do
    rows[#rows + 1] = { environment = st.tags["mu:environment"], stack = st.name, status = st.status,
      provider = st.tags["mu:provider"], updated = project.iso(st.updated), revision = st.tags["mu:revision"] }
  end
  return s:emit(rows, { { "environment", "ENVIRONMENT" }, { "stack", "STACK" }, { "status", "STATUS" },
    { "provider", "PROVIDER" }, { "updated", "LAST UPDATE" }, { "revision", "REVISION" } })
end

local function shell_quote(v)
  return "'" .. tostring(v):gsub("'", "'\\''") .. "'"
end

-- Everything `env show` shows: info | nil, message, code
local function gather(s, env)
  local stacks, err = s:stacks(function(st) return st.tags["mu:environment"] == env end)
  if not stacks then return nil, s.name .. ": " .. tostring(err), 1 end
  local info = { environment = env, stacks = {}, services = {} }
  local envstack
  for _, st in ipairs(stacks) do
    local kind = st.tags["mu:type"]
    if kind == "service" then
      info.services[#info.services + 1] = { service = st.tags["mu:service"], stack = st.name, status = st.status,
        revision = st.tags["mu:revision"], updated = project.iso(st.updated) }
    elseif kind ~= "schedule" and kind ~= "database" and kind ~= "dynamodb" and not st.tags["mu:service"] then
      info.stacks[#info.stacks + 1] = { type = kind, stack = st.name, status = st.status,
        updated = project.iso(st.updated) }
      if kind == "environment" then envstack = st end
      if kind == "loadbalancer" then info.base_url = st.outputs.BaseUrl end
      if kind == "vpc" then info.bastion = st.outputs.BastionHost end
    end
  end
  if not envstack then
    return nil, string.format("%s: environment '%s' is not deployed (no stack %s-environment-%s)", s.name, env,
      s.namespace, env), 1
  end
  info.provider = envstack.tags["mu:provider"]
  info.cluster = envstack.outputs.EcsCluster or envstack.outputs.EksClusterName
  info.status = envstack.status
  return info
end

local function show_once(s, env, format)
  local info, err, code = gather(s, env)
  if not info then return nil, err, code end
  if format == "json" then
    s.data:write(require("lumu.json").encode({ BASE_URL = info.base_url or "" }), "\n")
    return 0
  elseif format == "shell" then
    s.data:write("export BASE_URL=", shell_quote(info.base_url or ""), "\n")
    return 0
  end
  if s.output == "json" then
    local json = require "lumu.json"
    info.stacks = json.array(info.stacks)
    info.services = json.array(info.services)
    s.data:write(json.encode(info, { pretty = true }))
    return 0
  end
  local w = s.data
  w:write("Environment: ", env, "\n")
  w:write("Provider:    ", info.provider or "-", "\n")
  w:write("Status:      ", info.status or "-", "\n")
  w:write("Base URL:    ", info.base_url or "-", "\n")
  if info.cluster then w:write("Cluster:     ", info.cluster, "\n") end
  if info.bastion and info.bastion ~= "" then w:write("Bastion:     ", info.bastion, "\n") end
  w:write("\nStacks:\n")
  w:write(project.text_table(info.stacks, { { "type", "TYPE" }, { "stack", "STACK" }, { "status", "STATUS" },
    { "updated", "LAST UPDATE" } }))
  w:write("\nServices:\n")
  if #info.services == 0 then
    w:write("(none)\n")
  else
    w:write(project.text_table(info.services, { { "service", "SERVICE" }, { "stack", "STACK" },
      { "status", "STATUS" }, { "revision", "REVISION" }, { "updated", "LAST UPDATE" } }))
  end
  return 0
end

local function show(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args ~= 1 then return nil, s.name .. ": name one environment", 2 end
  if s.dryrun then return nil, s.name .. ": --dryrun has nothing to write", 2 end
  local format = opts.format or "cli"
  if format ~= "cli" and format ~= "json" and format ~= "shell" then
    return nil, s.name .. ": --format must be cli, json or shell, got '" .. tostring(format) .. "'", 2
  end
  if not opts.watch then return show_once(s, args[1], format) end
  local sleep = ctx and ctx.sleep or require("lumu.time").sleep
  local rounds = 0
  while true do
    rounds = rounds + 1
    if s.isatty(1) then s.data:write("\27[H\27[2J") end
    local c, e, cc = show_once(s, args[1], format)
    if c ~= 0 then return c, e, cc end
    if ctx and ctx.follow_rounds and rounds >= ctx.follow_rounds then return 0 end
    sleep(10)
  end
end

-- Stacks of env found in the account (for environments the configuration
-- no longer has): names in deletion order.
local function discovered(s, env)
  local stacks, err = s:stacks(function(st) return st.tags["mu:environment"] == env end)
  if not stacks then return nil, err end
  return project.order_for_delete(stacks)
end

local function terminate(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args == 0 then return nil, s.name .. ": name the environments to terminate", 2 end
  local targets, passwords = {}, {}
  local defined = {}
  for _, e in ipairs(s.model and s.model.environments or {}) do defined[e.name] = true end
  local plan_envs = {}
  for _, env in ipairs(args) do
    if defined[env] then plan_envs[#plan_envs + 1] = env end
  end
  local stacks = {}
  if #plan_envs > 0 then
    stacks, err, code = s:plan(plan_envs)
    if not stacks then return nil, err, code end
  end
  for _, env in ipairs(args) do
    if defined[env] then
      for _, d in ipairs(project.pick.in_environment(stacks, env)) do
        targets[#targets + 1] = d
        if project.managed_ssm(d) then passwords[#passwords + 1] = d.password.name end
      end
    elseif s.dryrun then
      return nil, s.name .. ": environment '" .. env .. "' is not in the configuration: a dry run cannot look it up", 2
    else
      local found, derr = discovered(s, env)
      if not found then return nil, s.name .. ": " .. tostring(derr), 1 end
      if #found == 0 then
        return nil, string.format("%s: no stack of environment '%s' in namespace %s", s.name, env, s.namespace), 1
      end
      for _, st in ipairs(found) do
        targets[#targets + 1] = st.name
        if st.tags["mu:type"] == "database" and st.tags["mu:service"] then
          passwords[#passwords + 1] = require("lumu.gen.secrets").password_parameter_name(s.namespace,
            st.tags["mu:service"], env)
        end
      end
    end
  end
  local rc, rerr, rcode = s:down(targets)
  if rc ~= 0 then return rc, rerr, rcode end
  if s.dryrun then
    for _, p in ipairs(passwords) do s:say("dry run: would delete SSM parameter %s", p) end
    return 0
  end
  for _, p in ipairs(passwords) do
    local ok, perr = s:call("ssm", "DeleteParameter", { Name = p })
    if ok then
      s:say("deleted SSM parameter %s", p)
    elseif not (type(perr) == "table" and perr.code == "ParameterNotFound") then
      return nil, s.name .. ": " .. tostring(perr), 1
    end
  end
  return 0
end

local function logs(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args < 1 then return nil, s.name .. ": name an environment", 2 end
  if s.dryrun then return nil, s.name .. ": --dryrun has nothing to write", 2 end
  local since, derr = project.duration(opts.search_duration or "1m")
  if not since then return nil, s.name .. ": --search-duration: " .. derr, 2 end
  local env = args[1]
  local filter = table.concat(args, " ", 2)
  return project.tail_logs(s, { s.namespace .. "-environment-" .. env }, { filter = filter, since = since,
    follow = opts.follow })
end

local LOG_OPTIONS = {
  { "-f", "--follow", desc = "keep polling for new events (every 5 s)" },
  { "-t", "--search-duration", arg = "DUR", files = false, desc = "how far back to search (default 1m)" },
}

return project.group {
  name = "env",
  summary = "create, list, show, terminate environments and read their logs (mu's environment)",
  help = "Environments are the network, load balancer and cluster that services run in.",
  subcommands = {
    { name = "up", aliases = { "upsert" }, run = up,
      usage = "lumu env up ENV... | -A [options]",
      summary = "create or update one or more environments (together)",
      help = "Deploys the common IAM stack and each environment's IAM, VPC (or target), load balancer and\n"
        .. "cluster stacks; several environments deploy concurrently.",
      options = { { "-A", "--all", desc = "every environment of the configuration" } } },
    { name = "list", aliases = { "ls" }, run = list, usage = "lumu env list [--output json]",
      summary = "list the environment stacks" },
    { name = "show", run = show, usage = "lumu env show ENV [-f cli|json|shell] [-w]",
      summary = "show an environment: provider, base URL, stacks, services",
      options = {
        { "-f", "--format", arg = "FORMAT", choices = { "cli", "json", "shell" },
          desc = "cli (default); json/shell print only BASE_URL" },
        { "-w", "--watch", desc = "refresh every 10 seconds" },
      } },
    { name = "terminate", aliases = { "term" }, run = terminate, usage = "lumu env terminate ENV... [--yes]",
      summary = "delete everything in one or more environments",
      help = "Deletes the services, schedules, databases (and their managed SSM passwords), tables,\n"
        .. "service IAM and environment stacks, dependants first.  Databases and keys are protected\n"
        .. "unless --allow-data-loss." },
    { name = "logs", run = logs, usage = "lumu env logs ENV [FILTER...] [-f] [-t DUR]",
      summary = "read the environment's CloudWatch Logs (container instances)", options = LOG_OPTIONS },
  },
}
