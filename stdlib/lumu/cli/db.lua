--- `lumu db up|list|terminate|get-password|set-password` (alias
-- `database`): mu's database commands.
--
--   db up ENV [SERVICE]      (alias upsert) the service's database stack in ENV,
--       with the service IAM stack holding its KMS key.  The master password
--       (mu: <ns>-database-<svc>-<env>-DatabaseMasterPassword) is created the
--       first time as an SSM SecureString (32 random alphanumerics, KMS key
--       from the configuration, else the service IAM stack's DatabaseKeyArn
--       output) and its version is passed to the stack; it is never printed.
--       Nothing to do (exit 0) when the service has no database.
--   db list                  (alias ls) the database stacks
--   db terminate ENV [SERVICE]   (alias term) deletes the database stack, then
--       the managed password parameter
--   db get-password ENV [SERVICE]   (alias gp) prints the master password
--       (SSM, or the Secrets Manager secret) on stdout
--   db set-password ENV [SERVICE] [--password-stdin]   (alias sp) replaces
--       the managed password: asked twice with echo off on a terminal, or
--       read from stdin (one line) with --password-stdin; `db up` then
--       passes the new version to the database
-- ctx.read_secret(prompt) -> text replaces the terminal prompt (tests).
local project = require "lumu.project"
local json = require "lumu.json"

-- The database descriptors of env (of svc): list | nil, message, code
local function databases(s, env, svc, need)
  local envs, err, code = s:environments({ env })
  if not envs then return nil, err, code end
  if svc then
    local ok
    ok, err, code = s:services(svc)
    if not ok then return nil, err, code end
  end
  local stacks
  stacks, err, code = s:plan(envs)
  if not stacks then return nil, err, code end
  local out = {}
  for _, d in ipairs(stacks) do
    if d.kind == "database" and d.env == env and (svc == nil or d.service == svc) then out[#out + 1] = d end
  end
  if #out == 0 and need then
    return nil, string.format("%s: %s has no database in '%s'", s.name, svc and ("service '" .. svc .. "'")
      or "the configuration", env), 1
  end
  return out, stacks
end

local function service_of(args, opts)
  return args[2] or opts.service
end

local function up(ctx, args, opts)
  local s, err, code = project.session(ctx, opts)
  if not s then return nil, err, code end
  if #args < 1 or #args > 2 then return nil, s.name .. ": usage: lumu db up ENV [SERVICE]", 2 end
  local dbs, stacks
  dbs, stacks, code = databases(s, args[1], service_of(args, opts), false)
  if not dbs then return nil, stacks, code end
  if #dbs == 0 then
    s:say("%s: no database in '%s': nothing to do", s.name, args[1])
    return 0
  end
  return s:up(project.pick.database(stacks, args[1], service_of(args, opts)))
end

local function list(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args > 0 then return nil, s.name .. ": unexpected argument '" .. args[1] .. "'", 2 end
  if s.dryrun then return nil, s.name .. ": --dryrun has nothing to write", 2 end
  local stacks
  stacks, err = s:stacks(function(st) return st.tags["mu:type"] == "database" end)
  if not stacks then return nil, s.name .. ": " .. tostring(err), 1 end
  local rows = {}
  for _, st in ipairs(stacks) do
    rows[#rows + 1] = { environment = st.tags["mu:environment"], service = st.tags["mu:service"], stack = st.name,
      status = st.status, endpoint = st.outputs.DatabaseEndpointAddress, updated = project.iso(st.updated) }
  end
  return s:emit(rows, { { "environment", "ENVIRONMENT" }, { "service", "SERVICE" }, { "stack", "STACK" },
    { "status", "STATUS" }, { "endpoint", "ENDPOINT" }, { "updated", "LAST UPDATE" } })
end

local function terminate(ctx, args, opts)
  local s, err, code = project.session(ctx, opts, { config = "optional" })
  if not s then return nil, err, code end
  if #args < 1 or #args > 2 then return nil, s.name .. ": usage: lumu db terminate ENV [SERVICE]", 2 end
  local env, svc = args[1], service_of(args, opts)
  local targets, params = {}, {}
  local secrets = require "lumu.gen.secrets"
  if s.model then
    local dbs, serr, scode = databases(s, env, svc, true)
    if not dbs then return nil, serr, scode end
    for _, d in ipairs(dbs) do
      targets[#targets + 1] = d
      if project.managed_ssm(d) then params[#params + 1] = d.password.name end
    end
  else
    if not svc then return nil, s.name .. ": no configuration here: name the service", 2 end
    targets[1] = s.namespace .. "-database-" .. svc .. "-" .. env
    params[1] = secrets.password_parameter_name(s.namespace, svc, env)
  end
  local rc, rerr, rcode = s:down(targets)
  if rc ~= 0 then return rc, rerr, rcode end
  for _, p in ipairs(params) do
    if s.dryrun then
      s:say("dry run: would delete SSM parameter %s", p)
    else
      local ok, perr = s:call("ssm", "DeleteParameter", { Name = p })
      if ok then
        s:say("deleted SSM parameter %s", p)
      elseif not (type(perr) == "table" and perr.code == "ParameterNotFound") then
        return nil, s.name .. ": " .. tostring(perr), 1
      end
    end
  end
  return 0
end

-- The one database descriptor for get/set-password: desc | nil, message, code
local function one_database(s, args, opts)
  if #args < 1 or #args > 2 then
    return nil, s.name .. ": usage: lumu db " .. s.name:match("%S+$") .. " ENV [SERVICE]", 2
  end
  local dbs, err, code = databases(s, args[1], service_of(args, opts), true)
  if not dbs then return nil, err, code end
  if #dbs > 1 then return nil, s.name .. ": several services have a database: name one", 2 end
  return dbs[1]
end

local function get_password(ctx, args, opts)
  local s, err, code = project.session(ctx, opts)
  if not s then return nil, err, code end
  if s.dryrun then return nil, s.name .. ": --dryrun reads nothing", 2 end
  local d
  d, err, code = one_database(s, args, opts)
  if not d then return nil, err, code end
  local pw = d.password or {}
  local value
  if pw.store == "ssm" then
    local res, gerr = s:call("ssm", "GetParameter", { Name = pw.name, WithDecryption = true })
    if not res then
      if type(gerr) == "table" and gerr.code == "ParameterNotFound" then
        return nil, string.format("%s: no password yet: SSM parameter %s does not exist (run 'lumu db up %s')",
          s.name, pw.name, args[1]), 1
      end
      return nil, s.name .. ": " .. tostring(gerr), 1
    end
    value = res.Parameter and res.Parameter.Value
  else
    local id = pw.id
    if pw.store == "rds" then
      local st, serr = s:stack(d.name)
      if serr then return nil, s.name .. ": " .. tostring(serr), 1 end
      id = st and st.outputs.DatabaseMasterUserSecretArn
      if not id then return nil, s.name .. ": " .. d.name .. " has no DatabaseMasterUserSecretArn output yet", 1 end
    end
    local res, gerr = s:call("secretsmanager", "GetSecretValue", { SecretId = id })
    if not res then return nil, s.name .. ": " .. tostring(gerr), 1 end
    local doc = json.decode(res.SecretString or "")
    value = type(doc) == "table" and doc.password or nil
    if type(value) ~= "string" then return nil, s.name .. ": the secret has no \"password\" key", 1 end
  end
  if type(value) ~= "string" then return nil, s.name .. ": the parameter has no value", 1 end
  s.data:write(value, "\n")
  return 0
end

-- RDS: 8-128 printable ASCII characters except / " @ and space.
local function check_password(p)
  if #p < 8 or #p > 128 then return nil, "the password must have 8 to 128 characters" end
  if p:find("[^\33-\126]") then return nil, "the password must be printable ASCII without spaces" end
  if p:find("[/\"@]") then return nil, "the password must not contain / \" or @" end
  return true
end

local function set_password(ctx, args, opts)
  ctx = ctx or {}
  local s, err, code = project.session(ctx, opts)
  if not s then return nil, err, code end
  local d
  d, err, code = one_database(s, args, opts)
  if not d then return nil, err, code end
  if not project.managed_ssm(d) then
    return nil, s.name .. ": " .. d.name .. ": the password is not lumu's to set (" .. tostring(d.password and
      (d.password.name or d.password.id or d.password.store)) .. " is managed elsewhere)", 1
  end
  local value
  if opts.password_stdin then
    value = (ctx.stdin or io.stdin):read("a") or ""
    value = value:gsub("\r?\n$", "")
  else
    if not ctx.read_secret and not s.isatty(0) then
      return nil, s.name .. ": stdin is not a terminal: pipe the password with --password-stdin", 2
    end
    local a, rerr = project.read_secret(ctx, "New master password for " .. d.name .. ": ")
    if not a then return nil, s.name .. ": " .. tostring(rerr), 1 end
    local b
    b, rerr = project.read_secret(ctx, "Again: ")
    if not b then return nil, s.name .. ": " .. tostring(rerr), 1 end
    if a ~= b then return nil, s.name .. ": the passwords differ", 1 end
    value = a
  end
  local ok, perr = check_password(value)
  if not ok then return nil, s.name .. ": " .. perr, 2 end
  if s.dryrun then
    s:say("dry run: would write SSM SecureString %s", d.password.name)
    return 0
  end
  local key, kerr = project.password_key(s, d)
  if kerr then return nil, s.name .. ": " .. tostring(kerr), 1 end
  local params = { Name = d.password.name, Value = value, Type = "SecureString", Overwrite = true,
    Description = "lumu: master password of " .. d.name }
  if key then params.KeyId = key end
  value = nil
  local res, werr = s:call("ssm", "PutParameter", params)
  params.Value = nil
  if not res then return nil, s.name .. ": " .. tostring(werr), 1 end
  s:say("%s: stored version %s of %s; run 'lumu db up %s' to apply it", s.name, tostring(res.Version),
    d.password.name, args[1])
  return 0
end

return project.group {
  name = "db",
  summary = "create, list, terminate databases and manage their master passwords (mu's database)",
  subcommands = {
    { name = "up", aliases = { "upsert" }, run = up, usage = "lumu db up ENV [SERVICE]",
      summary = "create or update the service's database in an environment",
      help = "The master password is created once in SSM (SecureString, KMS) and never printed." },
    { name = "list", aliases = { "ls" }, run = list, usage = "lumu db list [--output json]",
      summary = "list the database stacks" },
    { name = "terminate", aliases = { "term" }, run = terminate, usage = "lumu db terminate ENV [SERVICE]",
      summary = "delete the database stack and its managed password",
      help = "Production databases are protected (deletion protection, stack policy) unless --allow-data-loss." },
    { name = "get-password", aliases = { "gp" }, run = get_password, usage = "lumu db get-password ENV [SERVICE]",
      summary = "print the master password" },
    { name = "set-password", aliases = { "sp" }, run = set_password,
      usage = "lumu db set-password ENV [SERVICE] [--password-stdin]",
      summary = "replace the master password (asked with echo off, or read from stdin)",
      options = { { "--password-stdin", desc = "read the password from stdin (one line)" } } },
  },
}
