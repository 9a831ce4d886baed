--- lumu.project: what every deploy command shares (env, svc, db, pipeline,
-- catalog, up, diff, purge): mu's global flags, the session they make
-- (configuration, namespace, AWS clients, the deploy engine), subcommand
-- groups, picking the stacks a command touches, dry runs, passwords, git
-- revisions and output helpers.
--
-- local project = require "lumu.project"
--
-- project.OPTIONS   the shared flags, a cli options spec: -c/--config FILE,
--   -r/--region, -p/--profile, -a/--assume-role ARN, -n/--namespace,
--   -s/--silent, -V/--verbose, -d/--dryrun, -O/--dryrun-output DIR,
--   -I/--disable-iam, -F/--skip-version-check, -P/--proxy URL,
--   --allow-data-loss, --endpoint-url URL, --output text|json, --yes,
--   --no-color, --concurrency N, --outputs-file FILE, --ecs-timeout DUR,
--   --debug.
-- project.options(local_spec) -> spec   local_spec first, then OPTIONS; a
--   shared flag whose short name the command uses keeps only its long name
--   (`svc push -p ecr` is --provider; --profile still works).
-- project.is_global(arg) -> boolean   arg names a shared flag ("-n",
--   "--region=x", ...)
-- project.parse_prefix(argv, i) -> opts, next_i | nil, message
--   the shared flags at argv[i..] up to the first word that is not one
--   (mu's `lumu -n ns env up x`); the dispatcher keeps them as
--   ctx.global_opts.
-- project.group{name=, summary=, help=, subcommands={sub...}} -> command
--   A command table for the dispatcher (raw: it parses its arguments
--   itself) running `lumu NAME SUB [args] [options]`.  sub = {name=,
--   aliases=, usage=, summary=, help=, options=, run=function(ctx, args,
--   opts)}; opts holds the shared flags too (ctx.global_opts under them).
--   `lumu NAME SUB --help` prints the subcommand's help.
-- project.command{name=, summary=, usage=, help=, options=, run=,
--   usage_exit=} -> command   a single command taking the shared flags
--   too; usage_exit: the exit status of its usage errors (lumu diff: 1,
--   since 2 means "changes present")
-- project.session(ctx, opts [, how]) -> session | nil, message, code
--   how.config: true (default) the configuration must load; "optional":
--   loaded when found; false: not read.  how.name: the "env up" prefix of
--   error messages.  Validates the flags (--output, --concurrency,
--   --endpoint-url) and reads LUMU_DISABLE_IAM, LUMU_REVISION.
--   session fields: opts, model (or nil), path, namespace, dryrun,
--   dryrun_dir, yes, output ("text"|"json"), silent, verbose,
--   ecs_timeout (--ecs-timeout, seconds), interactive (stdin is a
--   terminal and no --yes), revision (LUMU_REVISION,
--   CODEBUILD_RESOLVED_SOURCE_VERSION, else the git short sha, else nil),
--   out (progress: stderr, a sink with --silent), data (stdout), err.
--   Methods:
--   s:say(fmt, ...)                 a progress line on out
--   s:client(service) -> client | nil, err      cached; ctx.aws replaces
--                                   lumu.aws (tests)
--   s:client(service, desc) -> client | nil, err   per-stack credentials
--                                   (the engine's client): a descriptor with
--                                   `account` (or only `profile`) is reached
--                                   with desc.profile, else
--                                   model.profiles[account], else the session's
--                                   own credentials when they are that
--                                   account's, else by assuming desc.role
--   s:call(service, op, params) -> result | nil, err   one operation;
--                                   throttling and 5xx (and dropped
--                                   connections of Describe/Get/List) are
--                                   waited out: up to 12 attempts, 120 s
--   s:account() -> account id | nil, err        STS GetCallerIdentity, once
--   s:engine() -> engine | nil, err             lumu.deploy.engine{...}
--                                   (ctx.deploy replaces lumu.deploy): the
--                                   flags, account, revision, confirm (the
--                                   session's prompt), secret (s.secrets,
--                                   e.g. {GitHubToken=}), role_arn
--                                   (LUMU_CFN_ROLE_ARN, else
--                                   roles.cloudFormation: the CloudFormation
--                                   service role), skip_version_check (-F)
--   s:plan([environments]) -> descriptors | nil, message, code
--   s:up(descriptors) / s:diff(descriptors) / s:down(targets)
--     -> exit code | nil, message, code   dry-run aware; up creates the
--     managed database passwords first (project.ensure_password); down
--     takes descriptors and/or stack names in deletion order
--   s:stacks([filter [, all]]) -> list of {name=, status=, updated=,
--     created=, tags={}, outputs={}, parameters={}} | nil, err
--     DescribeStacks of the namespace (filter(stack) -> boolean); stacks in
--     REVIEW_IN_PROGRESS (never executed) only with all
--   s:stack(name) -> stack | nil (missing) | nil, err
--   s:confirm(question) -> boolean   true with --yes; false without a
--     terminal (never reads stdin then); question: text or the engine's
--     summary {text=, question=}
--   s:emit(rows, columns)           a table (text) or JSON (--output json)
--     on data; columns = {{key, title}, ...}
-- project.pick.* -> descriptors: environments(stacks, envs, ns),
--   service(stacks, env, svc), database(stacks, env, svc),
--   pipeline(stacks, svc), catalog(stacks, ns), in_environment(stacks, env)
-- project.closure(stacks, roots, allow) -> roots and their dependencies
--   (transitively) for which allow(desc) is true, in plan order
-- project.ensure_password(s, desc [, opts]) -> version | nil, err
--   the managed SSM SecureString of a database descriptor: its version, or
--   a new 32-character password stored (KMS key from the config, else the
--   service IAM stack's output, else alias/aws/ssm) the first time;
--   never printed
-- project.managed_ssm(desc) -> boolean   a database whose password lumu keeps
-- project.password_version(s, name [, desc]) -> version | false (missing) | nil, err
--   (desc: read in the account of that descriptor, as ensure_password does)
-- project.password_key(s, desc) -> key | nil [, err, "missing"]
-- project.order_for_delete(stacks) -> stacks   discovered stacks (tags
--   mu:type), dependants first (project.DELETE_ORDER)
-- project.tail_logs(s, groups, {filter=, since=, follow=, interval=})
--   -> 0 | nil, message, code   CloudWatch Logs FilterLogEvents, events in
--   time order on data (JSON lines with --output json), polled every 5 s
--   with follow (ctx.follow_rounds stops it in tests)
-- project.git_revision(dir) -> short sha | nil   reads .git (HEAD, loose and
--   packed refs, worktrees) without running git
-- project.set_image_tag(descriptors, tag)   ImageTag (ECS) = tag and
--   RevisionKey (EC2) = <service>/<tag>.zip on the service stacks
-- project.read_secret(ctx, prompt) -> text | nil, message   echo off on a
--   terminal (stty); ctx.read_secret replaces it (tests)
-- project.duration(text) -> seconds | nil, message   "1m", "90s", "2h"
-- project.text_table(rows, columns) -> string
-- project.dryrun(s, descriptors, action) -> 0 | nil, message, code
--   writes what `lumu synth` writes (templates, parameters, tags, assets,
--   README.txt) for the descriptors into s.dryrun_dir; no AWS call
local cli = require "lumu.cli"
local fs = require "lumu.fs"
local json = require "lumu.json"

local M = {}

M.EXIT = { ok = 0, failure = 1, usage = 2, internal = 3, not_confirmed = 4, interrupted = 130 }

M.OPTIONS = {
  { "-c", "--config", arg = "FILE", desc = "configuration file (default: lumu.lua, else mu.yml)" },
  { "-r", "--region", arg = "REGION", files = false, desc = "AWS region" },
  { "-p", "--profile", arg = "PROFILE", files = false, desc = "AWS profile" },
  { "-a", "--assume-role", arg = "ARN", files = false, desc = "role to assume for every AWS call" },
  { "-n", "--namespace", arg = "NS", files = false, desc = "stack name prefix (default: MU_NAMESPACE, the file, mu)" },
  { "-s", "--silent", desc = "print errors only" },
  { "-V", "--verbose", desc = "log every AWS request (never secrets)" },
  { "-d", "--dryrun", desc = "write templates and parameters to files, touch nothing" },
  { "-O", "--dryrun-output", arg = "DIR", desc = "dry-run directory (default: $TMPDIR/lumu-dryrun)" },
  { "-I", "--disable-iam", desc = "do not create or update IAM stacks" },
  { "-F", "--skip-version-check", desc = "update stacks written by another major version" },
  { "-P", "--proxy", arg = "URL", files = false, desc = "HTTP(S) proxy for AWS calls" },
  { "--allow-data-loss", desc = "allow replacing/deleting databases and keys" },
  { "--endpoint-url", arg = "URL", files = false, desc = "AWS endpoint (LocalStack, tests)" },
  { "--output", arg = "FORMAT", choices = { "text", "json" }, desc = "text (default) or json" },
  { "--yes", desc = "do not ask before changing anything" },
  { "--no-color", desc = "no colour" },
  { "--concurrency", arg = "N", files = false, desc = "stacks deployed at once" },
  { "--outputs-file", arg = "FILE", desc = "write the deployed stacks' outputs as JSON" },
  { "--ecs-timeout", arg = "DUR", files = false,
    desc = "an ECS service update not stable after DUR is reported and cancelled (default 10m)" },
  { "--debug", desc = "tracebacks with internal errors" },
}

local GLOBAL_BY_NAME = {}
for _, o in ipairs(M.OPTIONS) do
  for _, n in ipairs(o) do GLOBAL_BY_NAME[n] = o end
end

local function opt_key(o)
  return ((o[2] or o[1]):gsub("^%-+", ""):gsub("%-", "_"))
end

function M.options(local_spec)
  local out, taken = {}, {}
  for _, o in ipairs(local_spec or {}) do
    out[#out + 1] = o
    for _, n in ipairs(o) do taken[n] = true end
  end
  for _, o in ipairs(M.OPTIONS) do
    local names = {}
    for _, n in ipairs(o) do
      if not taken[n] then names[#names + 1] = n end
    end
    if #names > 0 then
      local copy = {}
      for k, v in pairs(o) do
        if type(k) ~= "number" then copy[k] = v end
      end
      -- the key stays the long name's
      if #names == 1 and names[1]:sub(1, 2) ~= "--" and o[2] then names[2] = o[2] end
      for i, n in ipairs(names) do copy[i] = n end
      out[#out + 1] = copy
    end
  end
  return out
end

function M.is_global(arg)
  if type(arg) ~= "string" then return false end
  local name = arg:match("^(%-%-[^=]+)=") or arg
  return GLOBAL_BY_NAME[name] ~= nil
end

function M.parse_prefix(argv, i)
  local opts = {}
  while i <= #argv do
    local a = argv[i]
    if type(a) ~= "string" or a:sub(1, 1) ~= "-" or a == "-" or a == "--" then break end
    local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
    name = name or a
    local o = GLOBAL_BY_NAME[name]
    if not o then break end
    local value = true
    if o.arg then
      if inline then
        value = inline
      else
        i = i + 1
        value = argv[i]
        if value == nil then return nil, string.format("option '%s' needs a value (%s)", name, o.arg) end
      end
    elseif inline then
      return nil, string.format("option '%s' takes no value", name)
    end
    opts[opt_key(o)] = value
    i = i + 1
  end
  return opts, i
end

-- ---------------------------------------------------------------------------
-- Subcommand groups
-- ---------------------------------------------------------------------------

local function option_lines(spec)
  local out = {}
  for _, o in ipairs(spec or {}) do
    local names = table.concat(o, ", ")
    if o.arg then names = names .. " " .. o.arg end
    out[#out + 1] = string.format("  %-28s %s", names, o.desc or "")
  end
  return out
end

local function sub_help(group, sub, w)
  w:write("Usage: ", sub.usage or ("lumu " .. group.name .. " " .. sub.name), "\n\n", sub.summary or "", "\n")
  if sub.aliases and #sub.aliases > 0 then
    w:write("Aliases: ", table.concat(sub.aliases, ", "), "\n")
  end
  if sub.help then w:write("\n", sub.help, "\n") end
  local lines = option_lines(sub.options)
  if #lines > 0 then w:write("\nOptions:\n", table.concat(lines, "\n"), "\n") end
  w:write("\nShared options (every deploy command):\n", table.concat(option_lines(M.OPTIONS), "\n"), "\n")
end

function M.group(def)
  assert(type(def) == "table" and type(def.name) == "string" and type(def.subcommands) == "table",
    "project.group{name=, subcommands=}")
  local byname, names = {}, {}
  for _, sub in ipairs(def.subcommands) do
    byname[sub.name] = sub
    names[#names + 1] = sub.name
    for _, a in ipairs(sub.aliases or {}) do byname[a] = sub end
  end
  local lines = {}
  for _, sub in ipairs(def.subcommands) do
    local n = sub.name
    if sub.aliases and #sub.aliases > 0 then n = n .. " (" .. table.concat(sub.aliases, ", ") .. ")" end
    lines[#lines + 1] = string.format("  %-24s %s", n, sub.summary or "")
  end
  -- every option of every subcommand, each name once (help, completion)
  local all, seen = {}, {}
  local function add(o)
    local names = {}
    for _, n in ipairs(o) do
      if not seen[n] then seen[n] = true; names[#names + 1] = n end
    end
    if #names > 0 then
      local copy = {}
      for k, v in pairs(o) do if type(k) ~= "number" then copy[k] = v end end
      for i, n in ipairs(names) do copy[i] = n end
      all[#all + 1] = copy
    end
  end
  for _, sub in ipairs(def.subcommands) do
    for _, o in ipairs(sub.options or {}) do add(o) end
  end
  for _, o in ipairs(M.OPTIONS) do add(o) end
  local complete = {}
  for _, n in ipairs(names) do complete[#complete + 1] = n end
  for _, sub in ipairs(def.subcommands) do
    for _, a in ipairs(sub.aliases or {}) do complete[#complete + 1] = a end
  end

  local cmd = {
    name = def.name,
    summary = def.summary,
    usage = "lumu " .. def.name .. " SUBCOMMAND [args] [options]",
    help = (def.help and (def.help .. "\n\n") or "") .. "Subcommands:\n" .. table.concat(lines, "\n")
      .. "\n\n'lumu " .. def.name .. " SUBCOMMAND --help' shows a subcommand's options.",
    options = all,
    complete = complete,
    raw = true,
    subcommands = def.subcommands,
  }
  cmd.run = function(ctx, args)
    ctx = ctx or {}
    local pre, i = M.parse_prefix(args, 1)
    if not pre then return nil, def.name .. ": " .. i, M.EXIT.usage end
    local subname = args[i]
    if subname == nil then
      return nil, string.format("%s: missing subcommand (%s; see 'lumu help %s')", def.name,
        table.concat(names, ", "), def.name), M.EXIT.usage
    end
    local sub = byname[subname]
    if not sub then
      local s = cli.suggest(subname, complete)
      return nil, string.format("%s: unknown subcommand '%s'%s (%s)", def.name, subname,
        s and (" (did you mean '" .. s .. "'?)") or "", table.concat(names, ", ")), M.EXIT.usage
    end
    local rest = table.move(args, i + 1, #args, 1, {})
    local spec = M.options(sub.options)
    local opts, pos = cli.parse(spec, rest)
    local label = def.name .. " " .. sub.name
    if not opts then
      return nil, string.format("%s: %s (see 'lumu %s --help')", label, pos, label), M.EXIT.usage
    end
    if opts.help then
      sub_help(cmd, sub, ctx.stdout or io.stdout)
      return 0
    end
    -- shared flags given earlier (before the command or the subcommand)
    for _, src in ipairs({ pre, ctx.global_opts or {} }) do
      for k, v in pairs(src) do
        if opts[k] == nil then opts[k] = v end
      end
    end
    opts._command = label
    if opts.debug then ctx.debug = true end
    return sub.run(ctx, pos, opts)
  end
  return cmd
end

-- A single command (up, diff, purge, init) taking the shared flags.
-- def.usage_exit: the exit status of usage errors when it must not be the
-- dispatcher's 2 (lumu diff: 2 means "changes present").
function M.command(def)
  local spec = M.options(def.options)
  local run = def.run
  def.options = spec
  if def.usage_exit then def.raw = true end
  def.run = function(ctx, args, opts)
    ctx = ctx or {}
    if def.raw then
      local perr
      opts, perr = cli.parse(spec, args)
      if not opts then
        return nil, string.format("%s: %s (see 'lumu help %s')", def.name, perr, def.name), def.usage_exit
      end
      if opts.help then
        local rc = require("lumu.cli.help").run(ctx, { def.name })
        return rc or 0
      end
      args = perr
    end
    for k, v in pairs(ctx.global_opts or {}) do
      if opts[k] == nil then opts[k] = v end
    end
    opts._command = def.name
    if opts.debug then ctx.debug = true end
    return run(ctx, args, opts)
  end
  return def
end

-- ---------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------

local NULL_SINK = { write = function(self) return self end, flush = function() return true end }

function M.duration(text)
  if type(text) ~= "string" or text == "" then return nil, "empty duration" end
  local secs, err = require("lumu.time").parse_duration(text)
  if not secs then return nil, err end
  if secs <= 0 then return nil, "duration must be positive" end
  return secs
end

local function pad(s, n)
  s = tostring(s)
  local len = utf8.len(s) or #s
  if len >= n then return s end
  return s .. string.rep(" ", n - len)
end

function M.text_table(rows, columns)
  local w = {}
  for i, c in ipairs(columns) do w[i] = #c[2] end
  local cells = {}
  for r, row in ipairs(rows) do
    cells[r] = {}
    for i, c in ipairs(columns) do
      local v = row[c[1]]
      if v == nil or v == json.null then v = "-" end
      v = tostring(v):gsub("[%c]", " ")
      cells[r][i] = v
      w[i] = math.max(w[i], utf8.len(v) or #v)
    end
  end
  local lines = {}
  local head = {}
  for i, c in ipairs(columns) do head[i] = pad(c[2], w[i]) end
  lines[1] = (table.concat(head, "  "):gsub("%s+$", ""))
  for r = 1, #rows do
    local parts = {}
    for i = 1, #columns do parts[i] = pad(cells[r][i], w[i]) end
    lines[#lines + 1] = (table.concat(parts, "  "):gsub("%s+$", ""))
  end
  return table.concat(lines, "\n") .. "\n"
end

local function iso(t)
  if type(t) ~= "number" then return t end
  return require("lumu.time").iso8601(t)
end
M.iso = iso

-- ---------------------------------------------------------------------------
-- git
-- ---------------------------------------------------------------------------

local function read_first_line(path)
  local text = fs.read(path)
  if not text then return nil end
  return text:match("^([^\r\n]*)")
end

function M.git_revision(dir)
  local abs = fs.abspath(dir or ".")
  local root, gitdir = abs, nil
  for _ = 1, 64 do
    local g = fs.join(root, ".git")
    if fs.isdir(g) then gitdir = g; break end
    if fs.isfile(g) then
      local target = (read_first_line(g) or ""):match("^gitdir:%s*(%S+)")
      if target then gitdir = target:sub(1, 1) == "/" and target or fs.join(root, target) end
      break
    end
    if root == "/" then break end
    root = fs.dirname(root)
  end
  if not gitdir then return nil end
  local head = read_first_line(fs.join(gitdir, "HEAD"))
  if not head then return nil end
  local sha = head:match("^(%x+)$")
  if not sha then
    local ref = head:match("^ref:%s*(%S+)$")
    if not ref or ref:find("..", 1, true) then return nil end
    local common = read_first_line(fs.join(gitdir, "commondir"))
    local cdir = common and (common:sub(1, 1) == "/" and common or fs.join(gitdir, common)) or gitdir
    for _, d in ipairs({ gitdir, cdir }) do
      local v = read_first_line(fs.join(d, ref))
      if v and v:match("^%x+$") then sha = v; break end
    end
    if not sha then
      local packed = fs.read(fs.join(cdir, "packed-refs")) or ""
      for line in packed:gmatch("[^\n]+") do
        local s, r = line:match("^(%x+) (%S+)$")
        if r == ref then sha = s; break end
      end
    end
  end
  if not sha or #sha < 7 then return nil end
  return sha:sub(1, 7):lower()
end

-- ---------------------------------------------------------------------------
-- Secrets from a terminal
-- ---------------------------------------------------------------------------

function M.read_secret(ctx, prompt)
  if ctx and ctx.read_secret then return ctx.read_secret(prompt) end
  local host = require "lumu._host"
  if not host.isatty(0) then return nil, "stdin is not a terminal" end
  io.stderr:write(prompt)
  io.stderr:flush()
  local echo_off = os.execute("stty -echo 2>/dev/null")
  local ok, line = pcall(io.read, "l")
  if echo_off then os.execute("stty echo 2>/dev/null") end
  io.stderr:write("\n")
  if not ok then error(line, 0) end
  if line == nil then return nil, "no input" end
  return line
end

-- ---------------------------------------------------------------------------
-- Picking descriptors
-- ---------------------------------------------------------------------------

local function index(stacks)
  local byname = {}
  for _, d in ipairs(stacks) do byname[d.name] = d end
  return byname
end

function M.closure(stacks, roots, allow)
  local byname = index(stacks)
  local chosen = {}
  local function visit(d, depth)
    if chosen[d.name] or depth > 256 then return end
    chosen[d.name] = true
    for _, dep in ipairs(d.depends or {}) do
      local dd = byname[dep]
      if dd and not chosen[dd.name] and allow(dd) then visit(dd, depth + 1) end
    end
  end
  for _, r in ipairs(roots) do visit(r, 0) end
  local out = {}
  for _, d in ipairs(stacks) do
    if chosen[d.name] then out[#out + 1] = d end
  end
  return out
end

local ENV_KINDS = { vpc = true, target = true, loadbalancer = true, environment = true }

local function is_common_iam(d, ns)
  return d.kind == "iam" and d.env == nil and d.service == nil and d.name == ns .. "-iam-common"
end

M.pick = {}

-- env up: the environment-level stacks of envs, with the common IAM stack.
function M.pick.environments(stacks, envs, ns)
  local want = {}
  for _, e in ipairs(envs) do want[e] = true end
  local out = {}
  for _, d in ipairs(stacks) do
    if d.service == nil and ((d.env and want[d.env] and (ENV_KINDS[d.kind] or d.kind == "iam"))
        or is_common_iam(d, ns)) then
      out[#out + 1] = d
    end
  end
  return out
end

-- What a service owns apart from its database: service IAM, repository,
-- CodeDeploy app and bucket, tables, the service and its schedules.
local function service_side(d, svc, env)
  if d.kind == "database" or ENV_KINDS[d.kind] then return false end
  if d.kind == "bucket" then return d.service == nil and d.name:match("%-bucket%-codedeploy$") ~= nil end
  if d.service ~= svc then return false end
  return d.env == nil or d.env == env
end

function M.pick.service(stacks, env, svc)
  local roots = {}
  for _, d in ipairs(stacks) do
    if d.env == env and (svc == nil or d.service == svc) and (d.kind == "service" or d.kind == "schedule") then
      roots[#roots + 1] = d
    end
  end
  if #roots == 0 then return {} end
  local out = {}
  for _, r in ipairs(roots) do
    for _, d in ipairs(M.closure(stacks, { r }, function(x)
      return x.kind ~= "pipeline" and x.kind ~= "catalog-provision" and service_side(x, r.service, env)
    end)) do
      out[d.name] = true
    end
  end
  local list = {}
  for _, d in ipairs(stacks) do if out[d.name] then list[#list + 1] = d end end
  return list
end

-- db up: the databases of env (of svc), with the service-side stacks they
-- need (service IAM holding the key, the repository it depends on).
function M.pick.database(stacks, env, svc)
  local roots = {}
  for _, d in ipairs(stacks) do
    if d.kind == "database" and d.env == env and (svc == nil or d.service == svc) then roots[#roots + 1] = d end
  end
  if #roots == 0 then return {} end
  return M.closure(stacks, roots, function(x)
    return x.kind ~= "database" and x.service ~= nil and service_side(x, x.service, env)
      and x.kind ~= "service" and x.kind ~= "schedule"
  end)
end

-- pipeline up: pipelines (or catalog-provisioned ones) with the IAM
-- stacks they name directly.
function M.pick.pipeline(stacks, svc)
  local byname = index(stacks)
  local chosen = {}
  for _, d in ipairs(stacks) do
    if (d.kind == "pipeline" or d.kind == "catalog-provision") and (svc == nil or d.service == svc) then
      chosen[d.name] = true
      for _, dep in ipairs(d.depends or {}) do
        local dd = byname[dep]
        if dd and dd.kind == "iam" then chosen[dd.name] = true end
      end
    end
  end
  local out = {}
  for _, d in ipairs(stacks) do if chosen[d.name] then out[#out + 1] = d end end
  return out
end

-- catalog up: the portfolio and products with their bucket and IAM stack.
function M.pick.catalog(stacks, ns)
  local roots = {}
  for _, d in ipairs(stacks) do
    if d.kind == "portfolio" or d.kind == "product" then roots[#roots + 1] = d end
  end
  return M.closure(stacks, roots, function(x)
    return not is_common_iam(x, ns) and (x.kind == "bucket" or x.kind == "iam" or x.kind == "portfolio")
      and x.env == nil and x.service == nil
  end)
end

-- env terminate: everything that lives in env.
function M.pick.in_environment(stacks, env)
  local out = {}
  for _, d in ipairs(stacks) do
    if d.env == env then out[#out + 1] = d end
  end
  return out
end

-- The deletion order of discovered stacks (purge, terminate of stacks the
-- configuration does not describe), dependants first: mu's purge order,
-- adjusted to lumu's stacks (a service IAM stack is used by the database
-- and service, the environment stack uses the load balancer and the
-- environment IAM stack, everything uses the common IAM stack).
M.DELETE_ORDER = { "product", "portfolio", "pipeline", "iam-pipeline", "schedule", "service", "database",
  "dynamodb", "iam-service", "repo", "app", "environment", "loadbalancer", "vpc", "target", "iam-environment",
  "iam", "bucket", "iam-common" }

local function delete_class(st)
  local kind = st.tags and st.tags["mu:type"] or st.kind or "?"
  if kind == "iam" then
    local rest = st.name:match("^[%w]+%-iam%-(.*)$") or st.name:match("%-iam%-(.*)$") or ""
    if rest == "common" then return "iam-common" end
    for _, sub in ipairs({ "pipeline", "service", "environment" }) do
      if rest:sub(1, #sub + 1) == sub .. "-" then return "iam-" .. sub end
    end
  end
  return kind
end

function M.order_for_delete(stacks)
  local rank = {}
  for i, k in ipairs(M.DELETE_ORDER) do rank[k] = i end
  local list = {}
  for i, s in ipairs(stacks) do list[i] = { s = s, i = i, r = rank[delete_class(s)] or 0 } end
  table.sort(list, function(a, b)
    if a.r ~= b.r then return a.r < b.r end
    return a.i < b.i
  end)
  local out = {}
  for i, e in ipairs(list) do out[i] = e.s end
  return out
end

-- ---------------------------------------------------------------------------
-- Sessions
-- ---------------------------------------------------------------------------

local Session = {}
Session.__index = Session

local function getenv_of(ctx)
  return ctx.getenv or os.getenv
end

local function truthy(v)
  return v ~= nil and (v == "1" or v:lower() == "true" or v:lower() == "yes")
end

function M.session(ctx, opts, how)
  ctx = ctx or {}
  opts = opts or {}
  how = how or {}
  local name = how.name or opts._command or "lumu"
  local getenv = getenv_of(ctx)
  local function usage(msg) return nil, name .. ": " .. msg, M.EXIT.usage end

  local output = opts.output or "text"
  if output ~= "text" and output ~= "json" then
    return usage("--output must be text or json, got '" .. tostring(output) .. "'")
  end
  local concurrency
  if opts.concurrency then
    concurrency = math.tointeger(tonumber(opts.concurrency))
    if not concurrency or concurrency < 1 or concurrency > 64 then
      return usage("--concurrency must be an integer from 1 to 64, got '" .. tostring(opts.concurrency) .. "'")
    end
  end
  local ecs_timeout
  if opts.ecs_timeout ~= nil then
    local secs, derr = M.duration(tostring(opts.ecs_timeout))
    if not secs then return usage("--ecs-timeout: " .. tostring(derr) .. " (e.g. 90s, 15m)") end
    ecs_timeout = secs
  end
  if opts.endpoint_url and not tostring(opts.endpoint_url):match("^[Hh][Tt][Tt][Pp][Ss]?://[^/]") then
    return usage("--endpoint-url must be an http:// or https:// URL, got '" .. tostring(opts.endpoint_url) .. "'")
  end
  if opts.proxy and not tostring(opts.proxy):match("^%a[%w+.-]*://[^/]") then
    return usage("--proxy must be a URL (http://host:port), got '" .. tostring(opts.proxy) .. "'")
  end
  if opts.assume_role and not tostring(opts.assume_role):match("^arn:[%w%-]+:iam::%d+:role/.+") then
    return usage("--assume-role must be a role ARN (arn:aws:iam::ACCOUNT:role/NAME), got '"
      .. tostring(opts.assume_role) .. "'")
  end
  local stdout, stderr = ctx.stdout or io.stdout, ctx.stderr or io.stderr
  local isatty = ctx.isatty or function(fd) return require("lumu._host").isatty(fd) end

  local s = setmetatable({
    ctx = ctx, opts = opts, name = name, getenv = getenv,
    output = output, concurrency = concurrency, ecs_timeout = ecs_timeout,
    yes = opts.yes == true, silent = opts.silent == true, verbose = opts.verbose == true,
    dryrun = opts.dryrun == true,
    allow_data_loss = opts.allow_data_loss == true,
    skip_version_check = opts.skip_version_check == true,
    disable_iam = opts.disable_iam == true or truthy(getenv("LUMU_DISABLE_IAM")),
    no_color = opts.no_color == true or ctx.no_color == true or (getenv("NO_COLOR") or "") ~= "",
    region = opts.region, profile = opts.profile, endpoint_url = opts.endpoint_url,
    proxy = opts.proxy, assume_role = opts.assume_role, outputs_file = opts.outputs_file,
    data = stdout, err = stderr,
    out = opts.silent and NULL_SINK or stderr,
    _clients = {},
  }, Session)
  s.isatty = isatty
  s.interactive = not s.yes and isatty(0) and true or false
  local tmp = getenv("TMPDIR")
  if not tmp or tmp == "" then tmp = "/tmp" end
  s.dryrun_dir = opts.dryrun_output or fs.join(tmp, "lumu-dryrun")
  if opts.dryrun_output then s.dryrun = true end

  -- configuration
  local want = how.config
  if want == nil then want = true end
  if want then
    local path = opts.config
    if not path then
      local found, ferr = require("lumu.config").find(".")
      if not found and want == true then return nil, name .. ": " .. ferr .. " (use -c FILE)", M.EXIT.usage end
      path = found
    end
    if path then
      local config = require "lumu.config"
      local model, problems = config.load(path, { namespace = opts.namespace, getenv = getenv })
      local nerr = 0
      for _, p in ipairs(problems or {}) do
        if p.severity ~= "warning" or not s.silent then stderr:write(config.format_error(p), "\n") end
        if p.severity ~= "warning" then nerr = nerr + 1 end
      end
      if not model then
        return nil, string.format("%s: %s: %d configuration error%s", name, path, nerr, nerr == 1 and "" or "s"),
          M.EXIT.usage
      end
      if s.disable_iam then model.disableIAM = true end
      s.model, s.path = model, path
    end
  end
  if s.model then
    s.namespace = s.model.namespace
  else
    local ns = opts.namespace or getenv("MU_NAMESPACE")
    if ns == "" then ns = nil end
    s.namespace = ns or "mu"
  end
  if not s.namespace:match("^[A-Za-z][A-Za-z0-9%-]*$") then
    return usage("invalid namespace '" .. s.namespace .. "' (letters, digits and '-', starting with a letter)")
  end

  -- the revision recorded on stacks (mu:revision) and used as image tag
  local rev = getenv("LUMU_REVISION")
  if not rev or rev == "" then
    local cb = getenv("CODEBUILD_RESOLVED_SOURCE_VERSION")
    rev = cb and cb ~= "" and cb:sub(1, 7) or nil
  end
  if not rev then
    if ctx.git_revision ~= nil then
      rev = ctx.git_revision or nil
    else
      rev = M.git_revision(s.path and fs.dirname(s.path) or ".")
    end
  end
  if rev and not rev:match("^[%w%.%-_]+$") then rev = nil end
  s.revision = rev
  return s
end

function Session:say(fmt, ...)
  self.out:write(string.format(fmt, ...), "\n")
end

function Session:warn(fmt, ...)
  self.err:write("lumu: warning: ", string.format(fmt, ...), "\n")
end

-- AWS -------------------------------------------------------------------------

-- A credential "chain" (duck-typed as lumu.aws's) assuming a role with the
-- base chain's credentials, refreshed before it expires.
local AssumeChain = { __name = "lumu.aws.CredentialChain" }
AssumeChain.__index = AssumeChain

function AssumeChain:get()
  local c = self.creds
  if c and (c.expiration == nil or c.expiration - require("lumu.time").now() > 300) then return c end
  local sts, err = self.sts()
  if not sts then return nil, err end
  local res, aerr = sts:AssumeRole { RoleArn = self.role, RoleSessionName = self.session_name,
    DurationSeconds = 3600 }
  if not res then return nil, aerr end
  local cr = res.Credentials or {}
  local exp = cr.Expiration
  if type(exp) == "string" then exp = require("lumu.time").parse(exp) end
  local creds = require("lumu.aws.credentials").new {
    access_key_id = cr.AccessKeyId, secret_access_key = cr.SecretAccessKey, session_token = cr.SessionToken,
    expiration = exp, provider = "assume-role",
  }
  self.creds = creds
  return creds
end

function Session:_client_opts()
  if self._copts then return self._copts end
  local o = { region = self.region, endpoint_url = self.endpoint_url }
  if self.verbose then o.debug = function(line) self.err:write("lumu: aws: ", line, "\n") end end
  if self.proxy then
    local http = require "lumu.http"
    local proxy = self.proxy
    o.http = function(req)
      req.proxy = proxy
      return http.request(req)
    end
  end
  if not self.ctx.aws then
    -- one configuration and one credential chain for every client
    local awsconfig = require "lumu.aws.config"
    local cfg, err = awsconfig.load { profile = self.profile,
      flags = { region = self.region, endpoint_url = self.endpoint_url } }
    if not cfg then return nil, err end
    o.config = cfg
    local chain, cerr = require("lumu.aws.credentials").chain { config = cfg }
    if not chain then return nil, cerr end
    o.credentials = chain
  elseif self.profile then
    o.profile = self.profile
  end
  if self.assume_role then
    local base = {}
    for k, v in pairs(o) do base[k] = v end
    local aws = self.ctx.aws or require("lumu.aws")
    o.credentials = setmetatable({
      role = self.assume_role,
      session_name = "lumu-" .. tostring(os.time()),
      sts = function() return aws.client("sts", base) end,
    }, AssumeChain)
  end
  self._copts = o
  return o
end

-- Options of a client for a stack in account desc.account (see s:client).
function Session:_account_opts(desc)
  local acct = desc.account and tostring(desc.account)
  local cache_key = acct or ("profile " .. tostring(desc.profile))
  self._acopts = self._acopts or {}
  if self._acopts[cache_key] then return self._acopts[cache_key] end
  local base, err = self:_client_opts()
  if not base then return nil, err end
  local profile = desc.profile or (acct and self.model and self.model.profiles and self.model.profiles[acct])
  local o = {}
  for k, v in pairs(base) do o[k] = v end
  local aws = self.ctx.aws or require("lumu.aws")
  if profile then
    if self.ctx.aws then
      o.profile = profile
    else
      local cfg, cerr = require("lumu.aws.config").load { profile = profile,
        flags = { region = self.region, endpoint_url = self.endpoint_url } }
      if not cfg then return nil, cerr end
      o.config = cfg
      local chain, herr = require("lumu.aws.credentials").chain { config = cfg }
      if not chain then return nil, herr end
      o.credentials = chain
    end
  else
    local mine, aerr = self:account()
    if not mine then return nil, aerr end
    if mine ~= acct then
      if not desc.role then
        return nil, string.format("stack %s lives in account %s, but the credentials are account %s's and "
          .. "nothing says how to reach it (give the environment a profile or role, or profiles[\"%s\"])",
          tostring(desc.name), acct, tostring(mine), acct)
      end
      o.credentials = setmetatable({
        role = desc.role, session_name = "lumu-" .. tostring(os.time()),
        sts = function() return aws.client("sts", base) end,
      }, AssumeChain)
    end
  end
  self._acopts[cache_key] = o
  return o
end

function Session:client(service, desc)
  -- one client per service, and per service and account for a stack
  -- deployed elsewhere (descriptor account/profile)
  local key, elsewhere = service, type(desc) == "table" and (desc.account or desc.profile)
  if elsewhere then
    key = service .. "@" .. (desc.account and tostring(desc.account) or ("profile " .. tostring(desc.profile)))
  end
  local c = self._clients[key]
  if c then return c end
  if self.dryrun then error("project: AWS client asked for during a dry run", 2) end
  local o, err
  if elsewhere then o, err = self:_account_opts(desc) else o, err = self:_client_opts() end
  if not o then return nil, err end
  local aws = self.ctx.aws or require("lumu.aws")
  local copy = {}
  for k, v in pairs(o) do copy[k] = v end
  c, err = aws.client(service, copy)
  if not c then return nil, err end
  self._clients[key] = c
  return c
end

-- Calls op on service: result | nil, err (a readable message)
-- Whether a failed call is worth waiting for: throttling and 5xx always;
-- dropped connections only for reads (a write may have gone through).
local THROTTLES = { Throttling = true, ThrottlingException = true, RequestLimitExceeded = true,
  TooManyRequestsException = true, SlowDown = true, RequestThrottled = true, RequestThrottledException = true }
local function worth_waiting(err, op)
  if type(err) ~= "table" then return false end
  if THROTTLES[err.code] then return true end
  local st = tonumber(err.status)
  if st and st >= 500 then return true end
  if err.kind ~= "http" then return false end
  local o = tostring(op)
  return o:match("^Describe") ~= nil or o:match("^Get") ~= nil or o:match("^List") ~= nil
end
M._worth_waiting = worth_waiting

-- Runs attempt() -> res | nil, err again while err is worth waiting for
-- (the client's own retries gave up: a throttling storm), with backoff, at
-- most 12 times and for up to s.patience seconds (default 120).
function Session:_patient(op, attempt)
  local sleep = self.ctx.sleep or require("lumu.time").sleep
  local now = self.ctx.monotonic or require("lumu.time").monotonic
  local deadline = now() + (self.patience or 120)
  local delay = 0.5
  for _ = 1, 11 do
    local res, err = attempt()
    if res ~= nil or not worth_waiting(err, op) or now() + delay > deadline then return res, err end
    sleep(delay * (0.5 + math.random() * 0.5))
    delay = math.min(delay * 2, 10)
  end
  return attempt()
end

function Session:call(service, op, params)
  local c, err = self:client(service)
  if not c then return nil, err end
  return self:_patient(op, function() return c[op](c, params or {}) end)
end

function Session:account()
  if self._account then return self._account end
  local res, err = self:call("sts", "GetCallerIdentity", {})
  if not res then return nil, err end
  self._account = res.Account
  return res.Account
end

local function map_of(list, k, v)
  local m = {}
  for _, e in ipairs(list or {}) do
    if type(e) == "table" and e[k] ~= nil then m[e[k]] = e[v] end
  end
  return m
end

local function stack_info(st)
  return {
    name = st.StackName, status = st.StackStatus, reason = st.StackStatusReason,
    created = st.CreationTime, updated = st.LastUpdatedTime or st.CreationTime,
    tags = map_of(st.Tags, "Key", "Value"), outputs = map_of(st.Outputs, "OutputKey", "OutputValue"),
    parameters = map_of(st.Parameters, "ParameterKey", "ParameterValue"),
    description = st.Description,
  }
end
M._stack_info = stack_info

local function is_missing(err)
  if type(err) ~= "table" then return tostring(err):find("does not exist", 1, true) ~= nil end
  return (err.code == "ValidationError" and tostring(err.message or ""):find("does not exist", 1, true))
    or err.code == "StackNotFoundException"
end

function Session:stack(name)
  local res, err = self:call("cloudformation", "DescribeStacks", { StackName = name })
  if not res then
    if is_missing(err) then return nil end
    return nil, err
  end
  local st = res.Stacks and res.Stacks[1]
  if not st then return nil end
  return stack_info(st)
end

-- Stacks in REVIEW_IN_PROGRESS (a change set of a new stack, never
-- executed) are left out unless all.
function Session:stacks(filter, all)
  local c, err = self:client("cloudformation")
  if not c then return nil, err end
  local prefix = self.namespace .. "-"
  local out
  local listed, perr = self:_patient("DescribeStacks", function()
    out = {}
    local ok, lerr = pcall(function()
      for page in c:paginate("DescribeStacks", {}) do
        for _, st in ipairs(page.Stacks or {}) do
          if type(st.StackName) == "string" and st.StackName:sub(1, #prefix) == prefix
              and st.StackStatus ~= "DELETE_COMPLETE" and (all or st.StackStatus ~= "REVIEW_IN_PROGRESS") then
            local info = stack_info(st)
            if info.tags["mu:type"] and (filter == nil or filter(info)) then out[#out + 1] = info end
          end
        end
      end
    end)
    if not ok then return nil, lerr end
    return true
  end)
  if not listed then return nil, perr end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- Prompts ---------------------------------------------------------------------

-- question: a string, or the engine's summary {text=, question=, ...}
function Session:confirm(question)
  if self.yes then return true end
  if not self.interactive then return false end
  if type(question) == "table" then
    if question.text and question.text ~= "" then self.err:write(question.text, "\n") end
    question = question.question or "Continue?"
  end
  self.err:write(tostring(question), " [y/N] ")
  if self.err.flush then self.err:flush() end
  local line = (self.ctx.stdin or io.stdin):read("l")
  return line ~= nil and line:match("^%s*[yY]") ~= nil
end

-- Output ------------------------------------------------------------------------

function Session:emit(rows, columns, json_value)
  if self.output == "json" then
    local v = json_value
    if v == nil then
      v = json.array()
      for _, r in ipairs(rows) do
        local o = {}
        for _, c in ipairs(columns) do
          local x = r[c[1]]
          if x ~= nil then o[c[1]] = x end
        end
        v[#v + 1] = o
      end
    end
    self.data:write(json.encode(v, { pretty = true }))
  elseif #rows == 0 then
    self.out:write("(none)\n")
  else
    self.data:write(M.text_table(rows, columns))
  end
  return 0
end

-- Plans -----------------------------------------------------------------------

function Session:plan(environments, extra)
  if not self.model then return nil, self.name .. ": no configuration", M.EXIT.usage end
  if self._plans == nil then self._plans = {} end
  local key = environments and table.concat(environments, "\0") or "\0all"
  if self._plans[key] then return self._plans[key] end
  local synth = require "lumu.synth"
  local git = self.ctx.git
  if git == nil then
    git = require("lumu.cli.synth").detect_git(self.model.source and self.model.source.dir or fs.dirname(self.path))
  elseif git == false then
    git = nil
  end
  local popts = { environments = environments, git = git, fetch = true }
  for k, v in pairs(extra or {}) do popts[k] = v end
  local stacks, report = synth.plan(self.model, popts)
  for _, w in ipairs(report.warnings) do
    if not self.silent then
      self.err:write("lumu: warning: ", (w.key and w.key ~= "") and (w.key .. ": ") or "", w.message, "\n")
    end
  end
  for _, e in ipairs(report.errors) do self.err:write(synth.format_diag(e), "\n") end
  if #report.errors > 0 then
    return nil, string.format("%s: %d error%s in the configuration, nothing deployed", self.name, #report.errors,
      #report.errors == 1 and "" or "s"), M.EXIT.usage
  end
  if report.problems > 0 then
    for _, d in ipairs(stacks) do
      for _, p in ipairs(d.problems or {}) do
        self.err:write(d.name, ": ", p.path ~= "" and (p.path .. ": ") or "", p.message, "\n")
      end
    end
    return nil, string.format("%s: %d template problem%s, nothing deployed", self.name, report.problems,
      report.problems == 1 and "" or "s"), M.EXIT.failure
  end
  self._plans[key] = stacks
  return stacks
end

-- The environments of the configuration, checked: list | nil, message, code
function Session:environments(names, all)
  local defined = {}
  for _, e in ipairs(self.model and self.model.environments or {}) do defined[#defined + 1] = e.name end
  if all then
    if #defined == 0 then return nil, self.name .. ": the configuration defines no environment", M.EXIT.usage end
    return defined
  end
  if #names == 0 then
    return nil, string.format("%s: name an environment%s", self.name,
      #defined > 0 and (" (" .. table.concat(defined, ", ") .. ")") or ""), M.EXIT.usage
  end
  local seen, out = {}, {}
  for _, n in ipairs(names) do
    local found = false
    for _, d in ipairs(defined) do if d == n then found = true end end
    if not found and #defined > 0 then
      local s = cli.suggest(n, defined)
      return nil, string.format("%s: unknown environment '%s'%s", self.name, n,
        s and (" (did you mean '" .. s .. "'?)") or (" (" .. table.concat(defined, ", ") .. ")")), M.EXIT.usage
    end
    if not seen[n] then seen[n] = true; out[#out + 1] = n end
  end
  return out
end

-- The services of the configuration, or the one named: list | nil, message, code
function Session:services(name)
  local list = {}
  for _, svc in ipairs(self.model and self.model.services or {}) do
    if name == nil or svc.name == name then list[#list + 1] = svc end
  end
  if #list == 0 then
    if name then
      local names = {}
      for _, svc in ipairs(self.model and self.model.services or {}) do names[#names + 1] = svc.name end
      local s = cli.suggest(name, names)
      return nil, string.format("%s: unknown service '%s'%s", self.name, name,
        s and (" (did you mean '" .. s .. "'?)") or ""), M.EXIT.usage
    end
    return nil, self.name .. ": the configuration defines no service", M.EXIT.usage
  end
  return list
end

-- Engine ----------------------------------------------------------------------

function Session:progress_mode()
  if self.output == "json" then return "json" end
  local ci = self.getenv("CI")
  if self.isatty(2) and not (ci and ci ~= "" and ci ~= "false" and ci ~= "0") and not self.silent then
    return "tty"
  end
  return "lines"
end

function Session:engine()
  if self._engine then return self._engine end
  local account, err = self:account()
  if not account then return nil, err end
  local cfn, cerr = self:client("cloudformation")
  if not cfn then return nil, cerr end
  local deploy = self.ctx.deploy or require("lumu.deploy")
  local role = self:cfn_role()
  if role and not tostring(role):match("^arn:[%w%-]+:iam::%d+:role/[%w+=,.@_/%-]+$") then
    return nil, "LUMU_CFN_ROLE_ARN must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), got '"
      .. tostring(role) .. "'"
  end
  local eopts = {
    client = function(svc, desc) return self:client(svc, desc) end,
    namespace = self.namespace,
    region = cfn.region or self.region,
    account = account,
    yes = self.yes,
    interactive = self.interactive,
    output = self:progress_mode(),
    concurrency = self.concurrency,
    allow_data_loss = self.allow_data_loss,
    out = self.out,
    data = self.data,
    outputs_file = self.outputs_file,
    no_color = self.no_color,
    revision = self.revision,
    confirm = function(q) return self:confirm(q) end,
    secret = function(_, name) return self.secrets and self.secrets[name] or nil end,
    -- the CloudFormation service role (LUMU_CFN_ROLE_ARN, else
    -- roles.cloudFormation): RoleARN of change sets and deletes
    role_arn = role,
    skip_version_check = self.skip_version_check,
    ecs_timeout = self.ecs_timeout,
  }
  for k, v in pairs(self.ctx.engine_extra or M.ENGINE_EXTRA or {}) do eopts[k] = v(self) end
  local eng, eerr = deploy.engine(eopts)
  if not eng then return nil, eerr end
  self._engine = eng
  return eng
end

function Session:cfn_role()
  local r = self.getenv("LUMU_CFN_ROLE_ARN")
  if r and r ~= "" then return r end
  return self.model and self.model.roles and self.model.roles.cloudFormation or nil
end

-- Options the engine accepts beyond the documented set: name -> fn(session)
M.ENGINE_EXTRA = nil

local function report_code(report)
  if type(report) ~= "table" then return M.EXIT.failure end
  if math.type(report.exit_code) == "integer" then return report.exit_code end
  return report.ok and 0 or M.EXIT.failure
end
M._report_code = report_code

-- Dry runs --------------------------------------------------------------------

function M.dryrun(s, descs, action)
  local synth = require "lumu.synth"
  if action == "down" then
    for _, d in ipairs(descs) do
      s:say("dry run: would delete %s", type(d) == "table" and d.name or tostring(d))
    end
    return 0
  end
  local files = {}
  local index_lines = { "Written by lumu " .. s.name .. " --dryrun (namespace " .. s.namespace .. "): the stacks it "
    .. (action == "diff" and "would compare" or "would deploy") .. ", in order.", "" }
  for i, d in ipairs(descs) do
    if d.body then
      files[#files + 1] = { d.name .. ".template." .. (d.format == "yaml" and "yaml" or "json"), d.body }
    end
    files[#files + 1] = { d.name .. ".parameters.json", synth.parameters_json(d) }
    files[#files + 1] = { d.name .. ".tags.json", synth.tags_json(d) }
    for _, a in ipairs(d.assets or {}) do
      if not tostring(a.key):match("^[%w%-_%./]+$") or a.key:find("..", 1, true) or a.key:sub(1, 1) == "/" then
        return nil, s.name .. ": " .. d.name .. ": bad asset key '" .. tostring(a.key) .. "'", M.EXIT.failure
      end
      files[#files + 1] = { "assets/" .. a.key, a.body }
    end
    index_lines[#index_lines + 1] = string.format("%3d. %s (%s)%s", i, d.name, d.kind,
      #(d.depends or {}) > 0 and (" after " .. table.concat(d.depends, ", ")) or "")
    if d.password and d.password.managed and d.password.store == "ssm" then
      s:say("dry run: %s: would create SSM SecureString %s if missing", d.name, d.password.name)
    end
  end
  files[#files + 1] = { "README.txt", table.concat(index_lines, "\n") .. "\n" }
  local ok, err = require("lumu.cli.synth")._publish(s.dryrun_dir, files)
  if not ok then return nil, s.name .. ": cannot write " .. s.dryrun_dir .. ": " .. tostring(err), M.EXIT.failure end
  s:say("dry run: %d stack%s written to %s (nothing deployed)", #descs, #descs == 1 and "" or "s", s.dryrun_dir)
  return 0
end

-- Passwords -------------------------------------------------------------------

local function managed_ssm(d)
  return d.kind == "database" and type(d.password) == "table" and d.password.store == "ssm" and d.password.managed
end
M.managed_ssm = managed_ssm

-- The version of an SSM parameter: version | false (missing) | nil, err
-- s:call for the account of descriptor d (per-stack credentials)
local function call_for(s, d, service, op, params)
  if not (d and (d.account or d.profile)) then return s:call(service, op, params) end
  local c, err = s:client(service, d)
  if not c then return nil, err end
  return c[op](c, params or {})
end

function M.password_version(s, name, d)
  local res, err = call_for(s, d, "ssm", "GetParameter", { Name = name })
  if not res then
    if type(err) == "table" and err.code == "ParameterNotFound" then return false end
    return nil, err
  end
  return res.Parameter and res.Parameter.Version or 1
end

-- The KMS key for a new managed password: key | nil (SSM's default) , err
function M.password_key(s, d)
  local k = d.password.kms_key
  if k == nil then return nil end
  if type(k) == "string" then return k end
  if type(k) == "table" and k.stack then
    local st, err
    if d.account or d.profile then
      local res, derr = call_for(s, d, "cloudformation", "DescribeStacks", { StackName = k.stack })
      if res and res.Stacks and res.Stacks[1] then
        st = M._stack_info(res.Stacks[1])
      elseif derr and not is_missing(derr) then
        err = derr
      end
    else
      st, err = s:stack(k.stack)
    end
    if err then return nil, err end
    local v = st and st.outputs[k.output or "DatabaseKeyArn"]
    if not v then
      return nil, string.format("the key of %s is not there yet: stack %s has no output %s", d.name, k.stack,
        k.output or "DatabaseKeyArn"), "missing"
    end
    return v
  end
  return nil
end

function M.ensure_password(s, d, opts)
  opts = opts or {}
  local name = d.password.name
  local v, err = M.password_version(s, name, d)
  if v == nil then return nil, err end
  if v then return v end
  local key, kerr, missing = M.password_key(s, d)
  if kerr then return nil, kerr, missing end
  local secrets = require "lumu.gen.secrets"
  local value = secrets.generate_password(32, opts.random_bytes)
  local params = { Name = name, Value = value, Type = "SecureString", Overwrite = false,
    Description = "lumu: master password of " .. d.name }
  if key then params.KeyId = key end
  value = nil -- luacheck: ignore (drop our reference early)
  local res, perr = call_for(s, d, "ssm", "PutParameter", params)
  params.Value = nil
  if not res then
    if type(perr) == "table" and perr.code == "ParameterAlreadyExists" then
      return M.password_version(s, name, d)
    end
    return nil, perr
  end
  s:say("%s: created the master password in SSM parameter %s (SecureString)", d.name, name)
  return res.Version or 1
end

-- Deploys -----------------------------------------------------------------------

local function set_version(d, version)
  local p = d.password.version_parameter
  if p and version then d.parameters[p] = tostring(version) end
end

local function without(descs, names)
  local out = {}
  for _, d in ipairs(descs) do
    if not names[d.name] then out[#out + 1] = d end
  end
  return out
end

function Session:_run(action, descs)
  local eng, err = self:engine()
  if not eng then return nil, self.name .. ": " .. tostring(err), M.EXIT.failure end
  local report = eng[action](eng, descs)
  return report_code(report), report
end

-- _run for a command's result: exit code | nil, message, code
function Session:_result(action, descs)
  local code, report, ecode = self:_run(action, descs)
  if code == nil then return nil, report, ecode end
  return code
end

function Session:up(descs)
  if #descs == 0 then
    self:say("%s: nothing to deploy", self.name)
    return 0
  end
  if self.dryrun then return M.dryrun(self, descs, "up") end
  -- passwords whose key exists are made now; the others after phase 1
  local pending = {}
  for _, d in ipairs(descs) do
    if managed_ssm(d) then
      local v, err, missing = M.ensure_password(self, d)
      if v then
        set_version(d, v)
      elseif missing then
        pending[#pending + 1] = d
      else
        return nil, self.name .. ": " .. d.name .. ": master password: " .. tostring(err), M.EXIT.failure
      end
    end
  end
  if #pending > 0 then
    -- the stacks holding the new passwords' keys deploy first
    local first = M.closure(descs, pending, function(x) return not managed_ssm(x) end)
    local firstset = {}
    local phase1 = {}
    for _, d in ipairs(first) do
      if not managed_ssm(d) then phase1[#phase1 + 1] = d; firstset[d.name] = true end
    end
    -- a failure in phase 1 stops only what depends on the failed stacks
    -- (one environment failing leaves the other to finish)
    local code1, bad = 0, {}
    if #phase1 > 0 then
      local code, report, ecode = self:_run("up", phase1)
      if code == nil then return nil, report, ecode end
      if code == M.EXIT.interrupted or code == M.EXIT.not_confirmed then return code end
      if code ~= 0 then
        code1 = code
        for name, r in pairs(type(report) == "table" and report.stacks or {}) do
          if r.status ~= "created" and r.status ~= "updated" and r.status ~= "no changes" then bad[name] = true end
        end
        if next(bad) == nil then return code end
      end
    end
    local byname = {}
    for _, d in ipairs(descs) do byname[d.name] = d end
    local memo = {}
    local function blocker(d, depth)
      if memo[d.name] ~= nil then return memo[d.name] end
      local found = false
      if depth < 256 then
        for _, dep in ipairs(d.depends or {}) do
          if bad[dep] then found = dep break end
          local dd = byname[dep]
          if dd then
            local b = blocker(dd, depth + 1)
            if b then found = b break end
          end
        end
      end
      memo[d.name] = found
      return found
    end
    local blocked = {}
    for _, d in ipairs(descs) do
      if not firstset[d.name] then
        local b = blocker(d, 0)
        if b then
          blocked[#blocked + 1] = d.name
          firstset[d.name] = true
          self:say("%s: skipped: dependency %s failed", d.name, b)
        end
      end
    end
    for _, d in ipairs(pending) do
      if not blocker(d, 0) then
        local v, err = M.ensure_password(self, d)
        if not v then
          return nil, self.name .. ": " .. d.name .. ": master password: " .. tostring(err), M.EXIT.failure
        end
        set_version(d, v)
      end
    end
    local rest = without(descs, firstset)
    local code2 = 0
    if #rest > 0 then
      local c, e2, ec2 = self:_run("up", rest)
      if c == nil then return nil, e2, ec2 end
      code2 = c
    end
    if code2 == M.EXIT.interrupted or code2 == M.EXIT.not_confirmed then return code2 end
    if code1 ~= 0 or code2 ~= 0 or #blocked > 0 then return M.EXIT.failure end
    return 0
  end
  return self:_result("up", descs)
end

-- lumu diff's exit status: 0 no changes, 2 changes, 1 error (Terraform's
-- -detailed-exitcode).
local function has_changes(report)
  if type(report) ~= "table" then return false end
  if report.changes ~= nil then
    if type(report.changes) == "number" then return report.changes > 0 end
    if type(report.changes) == "table" then return next(report.changes) ~= nil end
    return report.changes == true
  end
  for _, st in pairs(report.stacks or {}) do
    if type(st) == "table" then
      if st.changed or st.has_changes then return true end
      if type(st.changes) == "table" and #st.changes > 0 then return true end
      local a = st.action or st.status
      if a == "create" or a == "update" or a == "delete" or a == "replace" then return true end
    end
  end
  return false
end
M._has_changes = has_changes

function Session:diff(descs)
  if self.dryrun then return M.dryrun(self, descs, "diff") end
  for _, d in ipairs(descs) do
    if managed_ssm(d) then
      local v = M.password_version(self, d.password.name, d)
      if v then set_version(d, v) end
    end
  end
  local eng, err = self:engine()
  if not eng then return nil, self.name .. ": " .. tostring(err), M.EXIT.failure end
  local report = eng:diff(descs)
  local code = report_code(report)
  if code ~= 0 and code ~= M.EXIT.not_confirmed then
    if code == M.EXIT.interrupted then return code end
    return M.EXIT.failure
  end
  return has_changes(report) and 2 or 0
end

-- targets: descriptors (deleted dependants first, by their graph) and/or
-- stack names given in deletion order.  With any name, everything goes to
-- the engine as names in deploy order (it deletes the last first).
local function deletion_order(targets)
  local descs, names = {}, {}
  for _, t in ipairs(targets) do
    if type(t) == "table" then descs[#descs + 1] = t.name else names[#names + 1] = t end
  end
  if #names == 0 then return nil end
  local order = {}
  for i = #descs, 1, -1 do order[#order + 1] = descs[i] end
  for _, n in ipairs(names) do order[#order + 1] = n end
  return order
end
M._deletion_order = deletion_order

function Session:down(targets)
  if #targets == 0 then
    self:say("%s: nothing to delete", self.name)
    return 0
  end
  local order = deletion_order(targets)
  if self.dryrun then
    if not order then
      order = {}
      for i = #targets, 1, -1 do order[#order + 1] = targets[i].name end
    end
    return M.dryrun(self, order, "down")
  end
  if order then
    local deploy_order = {}
    for i = #order, 1, -1 do deploy_order[#deploy_order + 1] = order[i] end
    return self:_result("down", deploy_order)
  end
  return self:_result("down", targets)
end

-- ImageTag (ECS) / RevisionKey (EC2) of the service stacks: tag
function M.set_image_tag(descs, tag)
  if not tag then return end
  for _, d in ipairs(descs) do
    if d.kind == "service" then
      local tparams = type(d.template) == "table" and d.template.Parameters or {}
      if d.parameters.ImageTag ~= nil or tparams.ImageTag then d.parameters.ImageTag = tag end
      if (d.parameters.RevisionKey ~= nil or tparams.RevisionKey) and d.service then
        d.parameters.RevisionKey = d.service .. "/" .. tag .. ".zip"
      end
    end
  end
end

-- Logs ------------------------------------------------------------------------

-- CloudWatch Logs FilterLogEvents over groups, from now - since; with
-- follow, polls every interval seconds (mu: 5) until interrupted.
function M.tail_logs(s, groups, o)
  local logs, err = s:client("logs")
  if not logs then return nil, s.name .. ": " .. tostring(err), M.EXIT.failure end
  local time = require "lumu.time"
  local now = s.ctx.now or time.now
  local sleep = s.ctx.sleep or time.sleep
  local start = math.floor((now() - (o.since or 60)) * 1000)
  local pattern = o.filter and o.filter ~= "" and o.filter or nil
  local seen, missing = {}, {}
  local rounds = 0
  local last = {}
  for _, g in ipairs(groups) do last[g] = start end
  while true do
    rounds = rounds + 1
    local events = {}
    local found = 0
    for _, g in ipairs(groups) do
      if not missing[g] then
        local token
        local pages = 0
        repeat
          local params = { logGroupName = g, startTime = last[g], filterPattern = pattern, nextToken = token,
            interleaved = true }
          local res, lerr = logs:FilterLogEvents(params)
          if not res then
            if type(lerr) == "table" and lerr.code == "ResourceNotFoundException" then
              missing[g] = true
              if #groups > 1 then s:warn("%s: no log group %s", s.name, g) end
              break
            end
            return nil, s.name .. ": " .. tostring(lerr), M.EXIT.failure
          end
          found = found + 1
          for _, e in ipairs(res.events or {}) do
            local id = e.eventId or (tostring(e.timestamp) .. (e.logStreamName or "") .. (e.message or ""))
            if not seen[id] then
              seen[id] = true
              events[#events + 1] = { group = g, stream = e.logStreamName, timestamp = e.timestamp or 0,
                message = e.message or "" }
            end
          end
          token = res.nextToken
          pages = pages + 1
        until not token or token == "" or pages >= 1000
      end
    end
    if rounds == 1 and found == 0 then
      return nil, string.format("%s: no log group %s", s.name, table.concat(groups, ", ")), M.EXIT.failure
    end
    table.sort(events, function(a, b) return a.timestamp < b.timestamp end)
    for _, e in ipairs(events) do
      if e.timestamp > last[e.group] then last[e.group] = e.timestamp end
      if s.output == "json" then
        s.data:write(json.encode({ timestamp = iso(e.timestamp / 1000), group = e.group, stream = e.stream,
          message = e.message }), "\n")
      else
        local prefix = #groups > 1 and ("[" .. e.group .. "] ") or ""
        s.data:write(iso(math.floor(e.timestamp / 1000)), " ", prefix, (e.message:gsub("\n$", "")), "\n")
      end
    end
    if s.data.flush then s.data:flush() end
    if not o.follow then return 0 end
    if s.ctx.follow_rounds and rounds >= s.ctx.follow_rounds then return 0 end
    sleep(o.interval or 5)
  end
end

M.Session = Session
return M
