--- lumu.deploy: the deploy engine.  Stack descriptors (lumu.synth.plan) ->
-- change sets -> diff -> one confirmation -> concurrent execution along the
-- dependency graph -> live progress -> a report with the root causes.
--
-- local deploy = require "lumu.deploy"
-- local eng = deploy.engine{
--   client = function(service) return aws.client(service, {...}) end,  -- required
--                           -- per-stack credentials: called as client(service,
--                           -- desc) where desc is the descriptor whose stack
--                           -- the call is for (nil otherwise); clients are
--                           -- cached per service and desc.account (or
--                           -- desc.profile without account)
--   namespace = "mu", region = "eu-west-1", account = "123456789012",
--   yes = false,            -- --yes: never ask
--   interactive = false,    -- a TTY to ask on (the CLI decides); without it
--                           -- and without yes nothing is executed: exit 4
--   confirm = fn(summary) -> bool,   -- the question (default: a y/N prompt on
--                           -- `out`, answer from stdin); summary = {text=,
--                           -- stacks={names}, lines={...}}
--   output = "tty"|"lines"|"json",   -- progress renderer (lumu.deploy.render);
--                           -- "tty" falls back to "lines" when out is stderr
--                           -- and stderr is not a terminal
--   out = io.stderr, data = io.stdout,
--   no_color = false,       -- colour is also off with $NO_COLOR or when out
--                           -- is a stderr that is not a terminal
--   concurrency = 4,        -- stacks planned / deployed at once
--   allow_data_loss = false,-- lifts the stack policy and termination protection
--   outputs_file = path,    -- after up: {"stack": {"OutputKey": "value"}} JSON
--   template_bucket = name, -- default "<ns>-lumu-templates-<account>-<region>"
--                           -- (account from opts.account, else STS)
--   revision = "abc1234",   -- tagged mu:revision on every stack
--   role_arn = "arn:aws:iam::123456789012:role/x",  -- the CloudFormation
--                           -- service role: RoleARN of every CreateChangeSet,
--                           -- DeleteStack and ContinueUpdateRollback (none
--                           -- when unset: the caller's own permissions).
--                           -- desc.role_arn overrides it per stack; a stack
--                           -- with desc.account other than the role's gets none
--   version = "0.1.0",      -- tagged lumu:version (default: this lumu's)
--   skip_version_check = false,  -- -F: update stacks whose lumu:version is
--                           -- newer (see Behaviour)
--   secret = fn(desc, name) -> value | nil,   -- values of desc.secret_parameters
--   before_deploy = fn(desc) -> true | nil, err,  -- up only, before planning
--   production = fn(env) -> bool | {env=true},    -- production-like envs
--                           -- (default: a name token prod/production/prd/live)
--   poll = {min=2, max=10, throttle_max=30, changeset=1},   -- seconds
--   patience = 600,         -- how long one call retries retryable errors
--   ecs_timeout = 600, ecs_cancel = true,   -- hung ECS service updates
-- }
-- eng:diff(descriptors) -> report      change sets created, shown, deleted
--                                      (and the REVIEW_IN_PROGRESS stacks they
--                                      made for new stacks); nothing executed
-- eng:up(descriptors) -> report        deploy in dependency order
-- eng:down(descriptors_or_names) -> report   delete in reverse order (names:
--                                      the list is deploy order, deleted last
--                                      first, one at a time)
-- eng:outputs(stack_name) -> {OutputKey = value} | nil, err
-- eng.bus                              lumu.deploy.events bus: subscribe(fn(ev))
-- eng.calls                            {["cloudformation:DescribeStackEvents"] = n, ...}
--                                      API calls made (attempts), for benchmarks
-- Raises on misuse (bad options, descriptors without name, a dependency
-- cycle, duplicate names).  AWS failures never raise: they are in the report.
--
-- report = { ok = bool, exit_code = 0|1|4|130, changes = n (stacks with
--   changes), stacks = { [name] = { status=, action=, changes=, outputs=,
--   error=, events_failed = {...}, elapsed = seconds } }, summary_lines = {...} }
--   status: "created", "updated", "no changes", "deleted", "not found",
--   "changes" (diff: would change), "failed", "skipped" (error = "dependency
--   X failed" / "interrupted"), "not executed" (exit 4), "cancelled" (Ctrl-C:
--   rolled back), "interrupted" (still changing in AWS after a second Ctrl-C).
--   events_failed: lumu.deploy.events.failures (first = root cause; nested
--   stacks followed).  changes: lumu.deploy.changes.normalize.
-- Exit codes: 0 success (including "no changes"); 1 a stack failed or was
--   skipped; 4 changes were shown but not executed: no --yes and no TTY to
--   ask on, or the question was answered no (CI: run `lumu diff` for the
--   diff only, `--yes` to apply); 130 interrupted (Ctrl-C).
--
-- Behaviour
-- * Every create/update is a change set (CREATE for new stacks and stacks
--   in REVIEW_IN_PROGRESS, UPDATE otherwise); "no changes" (the FAILED change
--   set with that reason) is success and the change set is deleted.  All
--   stacks are planned (concurrently) before anything runs, every diff is
--   shown, then one confirmation covers the whole run.  A change set that
--   fails only because an export of a stack deployed in this run is missing
--   ("No export named") is made again once its dependencies are deployed
--   (the diff shows the template's resources until then); so are the
--   change sets of stacks that must be recovered or re-created first.
-- * An update rolled back only because an export it removes is still
--   imported by a dependant in this run whose own update stops importing it
--   ("Export X cannot be deleted as it is in use by Y") updates that
--   dependant first, then itself again (once).  A failure without a failed
--   resource is explained by the reason on the stack's own event.
-- * Templates over 51,200 bytes (desc.needs_s3) go to the template bucket
--   (created on demand, lumu.deploy.s3) and are passed by TemplateURL, in
--   diff too.  desc.assets (catalog product templates) are uploaded to the
--   bucket named by the output desc.assets[i].bucket_output of the stack
--   assets[i].bucket_stack just before their stack executes.
-- * Parameters: desc.parameters, plus desc.secret_parameters from
--   opts.secret (never printed; an existing stack keeps its previous value
--   when none is given).  Tags: desc.tags + mu:revision + lumu:version.
--   Capabilities:
--   desc.capabilities, CAPABILITY_NAMED_IAM when the template has IAM
--   resources (or kind "iam"), CAPABILITY_AUTO_EXPAND with a Transform.
-- * Version guard (mu's, with lumu's tag): an existing stack whose
--   lumu:version tag is newer than this lumu in a way that may not be
--   compatible (a higher major version; for 0.x, a higher minor) is not
--   updated ("failed": upgrade lumu, or -F) unless skip_version_check, which
--   updates it with a warning.  diff only warns.  Stacks without the tag
--   (mu's, or older lumu's), failed creates re-created and deletes are not
--   checked.
-- * Safety: stacks with stateful resources (RDS instances/clusters, KMS keys,
--   DynamoDB tables, S3 buckets, EFS file systems) or desc.stack_policy get a
--   stack policy denying Update:Replace and Update:Delete on them (set after
--   every successful deploy); stacks of production-like environments get
--   termination protection (also when unchanged).  allow_data_loss: the policy is replaced by an
--   allow-all one for the update (and restored after it), and `down` turns
--   termination protection off; without it `down` refuses those stacks.
-- * Orchestration (lumu.deploy.graph): independent stacks run concurrently,
--   at most `concurrency`; a failure skips its dependants ("skipped:
--   dependency X failed") while running siblings finish; all failures are
--   reported.  Resume: a stack *_IN_PROGRESS is waited for first;
--   ROLLBACK_COMPLETE / ROLLBACK_FAILED (a failed create) is deleted and
--   created again (covered by the confirmation); UPDATE_ROLLBACK_FAILED gets
--   ContinueUpdateRollback, then the update; UPDATE_ROLLBACK_COMPLETE is
--   updated normally; DELETE_FAILED is an error (delete it first).  diff
--   waits for stacks in progress too (it never executes anything).
-- * Ctrl-C while stacks execute: updates in flight get CancelUpdateStack
--   (CloudFormation rolls them back); creates, deletes and rollbacks in
--   flight have no cancel and are waited for: a create is NOT deleted (that
--   would be a second destructive operation nobody asked for; if it fails it
--   rolls back by itself and the next run re-creates it).  No new stack
--   starts; progress keeps tailing until all settle; exit 130.  A second
--   Ctrl-C exits at once: it prints each stack's state and how to resume
--   (re-run the command: in-progress stacks are waited for).  Change sets
--   not executed yet are deleted.  Works when called from inside a
--   lumu.async task too (then without re-arming Ctrl-C).
-- * Progress: one poller per executing stack (lumu.deploy.events.tail) emits
--   to eng.bus; renderers (lumu.deploy.render) draw it.  Failures: the first
--   failed resource of each stack and its reason (nested stacks followed),
--   repeated in the summary.
-- * A service stack UPDATE_IN_PROGRESS on an AWS::ECS::Service for longer
--   than ecs_timeout seconds: "service not stabilising: <last ECS event>"
--   (ecs:DescribeServices), then CancelUpdateStack unless ecs_cancel=false.
--   The latest ECS event is shown as the stack's activity meanwhile.
-- * Service Catalog (desc.kind "catalog-provision", no template): the
--   provisioned product desc.name of product desc.product, version
--   desc.version, is provisioned or updated (servicecatalog ProvisionProduct /
--   UpdateProvisionedProduct with tokens, DescribeRecord until done); down
--   terminates it.  No change set: the diff says what will be provisioned.
local async = require "lumu.async"
local changes = require "lumu.deploy.changes"
local crypto = require "lumu.crypto"
local events = require "lumu.deploy.events"
local fs = require "lumu.fs"
local graph = require "lumu.deploy.graph"
local json = require "lumu.json"
local render = require "lumu.deploy.render"
local s3 = require "lumu.deploy.s3"

local M = {}

M.EXIT_OK, M.EXIT_FAILED, M.EXIT_NOT_EXECUTED, M.EXIT_INTERRUPTED = 0, 1, 4, 130
M.S3_THRESHOLD = 51200

local UPDATABLE = { CREATE_COMPLETE = true, UPDATE_COMPLETE = true, UPDATE_ROLLBACK_COMPLETE = true,
                    IMPORT_COMPLETE = true, IMPORT_ROLLBACK_COMPLETE = true }

local THROTTLE = { Throttling = true, ThrottlingException = true, RequestLimitExceeded = true,
                   TooManyRequestsException = true, SlowDown = true, RequestThrottled = true,
                   RequestThrottledException = true, PriorRequestNotComplete = true }

M.STATEFUL_TYPES = { "AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table", "AWS::EFS::FileSystem",
                     "AWS::KMS::Key", "AWS::RDS::DBCluster", "AWS::RDS::DBInstance", "AWS::S3::Bucket" }
local STATEFUL = {}
for _, t in ipairs(M.STATEFUL_TYPES) do STATEFUL[t] = true end

local PROD_TOKENS = { prod = true, production = true, prd = true, live = true }

M.VERSION_TAG = "lumu:version"

-- "1.2.3", "v0.4.0-rc1" -> major, minor | nil
local function parse_version(v)
  if type(v) ~= "string" then return nil end
  local major, minor = v:match("^v?(%d+)%.(%d+)")
  if not major then
    major = v:match("^v?(%d+)$")
    minor = major and "0"
  end
  if not major or #major > 9 or #minor > 9 then return nil end
  return tonumber(major), tonumber(minor)
end

--- M.version_newer(stack_version, own) -> boolean: stack_version is newer
-- than own in a way that may not be compatible: a higher major, or for
-- 0.x (semver: anything may change) a higher minor.  Unparseable: false.
function M.version_newer(stack_version, own)
  local smaj, smin = parse_version(stack_version)
  local omaj, omin = parse_version(own)
  if not smaj or not omaj then return false end
  if smaj ~= omaj then return smaj > omaj end
  return smaj == 0 and smin > omin
end

local function is_interrupt(err) return graph.is_interrupt(err) end

local function retryable(err)
  if type(err) ~= "table" then return false end
  if err.retryable or THROTTLE[err.code] then return true end
  if err.kind == "http" then return true end
  local st = tonumber(err.status)
  return st ~= nil and st >= 500
end
M.retryable = retryable

local function errtext(err)
  if err == nil then return "unknown error" end
  if type(err) == "table" and getmetatable(err) == nil then
    return tostring(err.message or err.code or "error")
  end
  return tostring(err)
end

local function rand_hex(n)
  return crypto.hex(crypto.random_bytes(n))
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t or {}) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

--- Stack policy helpers (exported for the CLI and tests).
function M.stateful_resources(template)
  local out = {}
  for _, id in ipairs(sorted_keys(type(template) == "table" and template.Resources or {})) do
    local r = template.Resources[id]
    if type(r) == "table" and STATEFUL[r.Type] then out[#out + 1] = id end
  end
  return out
end

function M.protective_policy(types)
  local list = {}
  for _, t in ipairs(types or M.STATEFUL_TYPES) do list[#list + 1] = t end
  return json.encode({ Statement = json.array({
    { Effect = "Deny", Principal = "*", Action = json.array({ "Update:Replace", "Update:Delete" }), Resource = "*",
      Condition = { StringEquals = { ResourceType = json.array(list) } } },
    { Effect = "Allow", Principal = "*", Action = "Update:*", Resource = "*" },
  }) })
end

M.PERMISSIVE_POLICY = json.encode({ Statement = json.array({
  { Effect = "Allow", Principal = "*", Action = "Update:*", Resource = "*" } }) })

local function default_production(env)
  if type(env) ~= "string" then return false end
  for token in env:lower():gmatch("[^%-_%.]+") do
    if PROD_TOKENS[token] then return true end
  end
  return false
end
M.production_like = default_production

-- ---------------------------------------------------------------------------
-- Engine
-- ---------------------------------------------------------------------------

local Engine = {}
Engine.__index = Engine

local OUTPUTS = { tty = true, lines = true, json = true }

function M.engine(opts)
  if type(opts) ~= "table" then error("deploy.engine: options table expected", 2) end
  if type(opts.client) ~= "function" then error("deploy.engine: opts.client must be a function(service)", 2) end
  local output = opts.output or "lines"
  if not OUTPUTS[output] then error("deploy.engine: output must be tty, lines or json", 2) end
  local conc = opts.concurrency or 4
  if math.type(conc) ~= "integer" or conc < 1 then
    error("deploy.engine: concurrency must be a positive integer", 2)
  end
  for _, k in ipairs({ "confirm", "secret", "before_deploy" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then error("deploy.engine: opts." .. k .. " must be a function", 2) end
  end
  if opts.role_arn ~= nil and (type(opts.role_arn) ~= "string"
      or not opts.role_arn:match("^arn:[%w%-]+:iam::%d+:role/[%w+=,.@_/%-]+$")) then
    error("deploy.engine: opts.role_arn must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), got "
      .. tostring(opts.role_arn), 2)
  end
  local version = opts.version
  if version == nil then
    local okv, v = pcall(require, "lumu.version")
    version = okv and v.version or "0.0.0"
  end
  if type(version) ~= "string" or version == "" then error("deploy.engine: opts.version must be a string", 2) end
  local out = opts.out or io.stderr
  local color = not opts.no_color and output ~= "json"
  local nc = os.getenv("NO_COLOR")
  if nc and nc ~= "" then color = false end
  if out == io.stderr then
    local ok, host = pcall(require, "lumu._host")
    local tty = ok and host.isatty(2)
    if not tty then
      if output == "tty" then output = "lines" end
      color = false
    end
  end
  local poll = { min = 2, max = 10, throttle_max = 30, changeset = 1 }
  for k, v in pairs(opts.poll or {}) do poll[k] = v end
  local eng = setmetatable({
    opts = opts, client_fn = opts.client, clients = {}, namespace = opts.namespace or "mu",
    region = opts.region, account = opts.account, yes = opts.yes and true or false,
    interactive = opts.interactive and true or false, concurrency = conc,
    allow_data_loss = opts.allow_data_loss and true or false, out = out, data = opts.data or io.stdout,
    output = output, poll = poll, patience = opts.patience or 600,
    ecs_timeout = opts.ecs_timeout or 600, ecs_cancel = opts.ecs_cancel ~= false,
    revision = opts.revision, calls = {}, throttled = 0, bus = events.bus(),
    role_arn = opts.role_arn, version = version, skip_version_check = opts.skip_version_check and true or false,
    task_desc = setmetatable({}, { __mode = "k" }), -- coroutine -> descriptor it works for
  }, Engine)
  local prod = opts.production
  if type(prod) == "function" then
    eng.is_production = function(env) return env ~= nil and prod(env) and true or false end
  elseif type(prod) == "table" then
    eng.is_production = function(env) return env ~= nil and prod[env] and true or false end
  else
    eng.is_production = default_production
  end
  eng.render_opts = { out = out, data = eng.data, color = color }
  eng.renderer = render.new(output, eng.render_opts)
  eng.bus:subscribe(function(ev) eng.renderer:event(ev) end)
  return eng
end

-- The descriptor the running task works for (per-stack credentials), set by
-- Engine:_for at the start of each stack's task.
function Engine:_desc()
  return self.task_desc[coroutine.running()]
end

function Engine:_for(desc)
  self.task_desc[coroutine.running()] = desc
end

function Engine:_client(service)
  local d = self:_desc()
  local where = d and (d.account or (d.profile and ("profile " .. tostring(d.profile))))
  local key = where and (service .. "@" .. tostring(where)) or service
  local c = self.clients[key]
  if c then return c end
  local cl, err = self.client_fn(service, d)
  if not cl then return nil, err or ("no client for " .. service) end
  self.clients[key] = cl
  return cl
end

-- One API call; retryable errors (throttling, 5xx, connection) are retried
-- with backoff for up to `patience` seconds unless copts.retry == false.
function Engine:_call(service, op, params, copts)
  local c, cerr = self:_client(service)
  if not c then return nil, { code = "ClientError", message = errtext(cerr) } end
  local delay = math.max(0.05, math.min(1, self.poll.min / 2))
  local deadline = async.now() + self.patience
  while true do
    local key = service .. ":" .. op
    self.calls[key] = (self.calls[key] or 0) + 1
    local res, err = c[op](c, params)
    if res ~= nil then return res end
    if err == nil then err = { code = "Unknown", message = op .. " returned nothing" } end
    if (copts and copts.retry == false) or not retryable(err) or async.now() + delay > deadline then
      return nil, err
    end
    if THROTTLE[err.code] then self.throttled = self.throttled + 1 end
    async.sleep(delay * (0.5 + math.random() * 0.5))
    delay = math.min(delay * 2, self.poll.throttle_max)
  end
end

function Engine:_emit(ev)
  self.bus:emit(ev)
end

function Engine:_ctx()
  if not self.ctx then
    self.ctx = {
      call = function(service, op, params, copts) return self:_call(service, op, params, copts) end,
      emit = function(ev) self:_emit(ev) end,
      poll = self.poll,
      retryable = retryable,
      on_throttle = function() self.throttled = self.throttled + 1 end,
    }
  end
  return self.ctx
end

-- DescribeStacks: the stack, false when it does not exist, nil, err.
function Engine:_describe(ref)
  local res, err = self:_call("cloudformation", "DescribeStacks", { StackName = ref })
  if not res then
    if events.not_found(err) then return false end
    return nil, err
  end
  local st = res.Stacks and res.Stacks[1]
  if not st or st.StackStatus == "DELETE_COMPLETE" then return false end
  return st
end

local function outputs_of(st)
  local o = {}
  for _, x in ipairs(st and st.Outputs or {}) do
    if x.OutputKey then o[x.OutputKey] = x.OutputValue end
  end
  return o
end

function Engine:outputs(name)
  if type(name) ~= "string" then error("eng:outputs: stack name expected", 2) end
  local st, err = self:_describe(name)
  if st == nil then return nil, errtext(err) end
  if st == false then return nil, "stack " .. name .. " does not exist" end
  return outputs_of(st)
end

-- The newest event id of a stack (events up to it belong to earlier operations).
function Engine:_baseline(ref)
  local res = self:_call("cloudformation", "DescribeStackEvents", { StackName = ref })
  local ev = res and res.StackEvents and res.StackEvents[1]
  return ev and ev.EventId or nil
end

-- ---------------------------------------------------------------------------
-- Runs and reports
-- ---------------------------------------------------------------------------

local function new_run(self, mode)
  self.renderer = render.new(self.output, self.render_opts)   -- a fresh view per run
  return { mode = mode, plans = {}, order = {}, inflight = {}, created_cs = {}, review = {}, started = async.now(),
           report = { ok = true, exit_code = 0, changes = 0, stacks = {}, summary_lines = {} },
           outputs = {} }
end

local function result(self, run, name, fields)
  local r = run.report.stacks[name] or {}
  for k, v in pairs(fields) do r[k] = v end
  run.report.stacks[name] = r
  local p = run.plans[name]
  if p and p.t0 and not r.elapsed then r.elapsed = async.now() - p.t0 end
  if fields.status then
    self:_emit({ type = "result", stack = name, status = r.status, error = r.error, elapsed = r.elapsed,
                 events_failed = r.events_failed })
  end
  return r
end

local function fail(self, run, p, msg, extra)
  p.failed = true
  local fields = { status = "failed", error = msg, action = p.action }
  for k, v in pairs(extra or {}) do fields[k] = v end
  result(self, run, p.name, fields)
  return false
end

local function first_failure_text(f)
  if not f then return nil end
  local s = (f.logical_id or "?") .. " (" .. (f.resource_type or "?") .. ") " .. (f.status or "") .. ": "
    .. tostring(f.reason or "no reason given")
  if f.nested and f.nested[1] then s = s .. "\n    nested: " .. first_failure_text(f.nested[1]) end
  return s
end

-- ---------------------------------------------------------------------------
-- Stack inputs
-- ---------------------------------------------------------------------------

local function template_of(d)
  return type(d.template) == "table" and d.template or nil
end

local function capabilities(d)
  local caps, seen = {}, {}
  local function add(c)
    if not seen[c] then
      seen[c] = true
      caps[#caps + 1] = c
    end
  end
  for _, c in ipairs(d.capabilities or {}) do add(c) end
  local t = template_of(d)
  local iam = d.kind == "iam"
  for _, r in pairs(t and t.Resources or {}) do
    if type(r) == "table" and type(r.Type) == "string" and r.Type:sub(1, 10) == "AWS::IAM::" then iam = true end
  end
  if iam then add("CAPABILITY_NAMED_IAM") end
  if t and t.Transform ~= nil then add("CAPABILITY_AUTO_EXPAND") end
  table.sort(caps)
  return caps
end

-- The CloudFormation service role for descriptor d: d.role_arn, else
-- opts.role_arn unless d lives in another account (d.account) than the role.
function Engine:_role(d)
  if type(d) == "table" and type(d.role_arn) == "string" then return d.role_arn end
  local r = self.role_arn
  if r and type(d) == "table" and d.account and r:match("^arn:[^:]+:iam::(%d+):") ~= tostring(d.account) then
    return nil
  end
  return r
end

function Engine:_tags(d)
  local t = {}
  for k, v in pairs(d.tags or {}) do t[k] = tostring(v) end
  if self.revision then t["mu:revision"] = tostring(self.revision) end
  t[M.VERSION_TAG] = self.version
  local out = {}
  for _, k in ipairs(sorted_keys(t)) do out[#out + 1] = { Key = k, Value = t[k] } end
  return out
end

-- Parameters list, or nil, err when a secret parameter has no value.
function Engine:_parameters(d, existing)
  local out = {}
  for _, k in ipairs(sorted_keys(d.parameters)) do
    local v = d.parameters[k]
    if type(v) == "table" then v = table.concat(v, ",") end
    out[#out + 1] = { ParameterKey = k, ParameterValue = tostring(v) }
  end
  for _, k in ipairs(d.secret_parameters or {}) do
    local v = self.opts.secret and self.opts.secret(d, k)
    if v ~= nil then
      out[#out + 1] = { ParameterKey = k, ParameterValue = tostring(v) }
    else
      local had = false
      for _, p in ipairs(existing and existing.Parameters or {}) do
        if p.ParameterKey == k then had = true end
      end
      if not had then
        return nil, "secret parameter " .. k .. " has no value (not stored on the stack yet either)"
      end
      out[#out + 1] = { ParameterKey = k, UsePreviousValue = true }
    end
  end
  return out
end

function Engine:_bucket_name()
  if self.opts.template_bucket then return self.opts.template_bucket end
  local d = self:_desc()
  if d and d.account then -- a stack in another account: that account's bucket
    local region = self.region or (self:_client("s3") or {}).region or "us-east-1"
    return self.namespace .. "-lumu-templates-" .. tostring(d.account) .. "-" .. region
  end
  if not self.account then
    local res, err = self:_call("sts", "GetCallerIdentity", {})
    if not res then return nil, "cannot find the account for the template bucket: " .. errtext(err) end
    self.account = res.Account
  end
  local region = self.region or (self:_client("s3") or {}).region or "us-east-1"
  self.region = self.region or region
  return self.namespace .. "-lumu-templates-" .. tostring(self.account) .. "-" .. region
end

function Engine:_ensure_bucket(bucket)
  self.buckets = self.buckets or {}
  local st = self.buckets[bucket]
  while st == "pending" do
    async.sleep(0.05)
    st = self.buckets[bucket]
  end
  if st == "ok" then return true end
  self.buckets[bucket] = "pending"
  local call = function(service, op, params) return self:_call(service, op, params) end
  local how, err = s3.ensure_bucket(call, bucket, self.region)
  if not how then
    self.buckets[bucket] = nil
    return nil, err
  end
  if how == "created" then
    self:_emit({ type = "message", level = "info", text = "created template bucket " .. bucket
      .. " (encrypted, versioned, public access blocked, TLS only)" })
  end
  self.buckets[bucket] = "ok"
  return true
end

-- {TemplateBody=} or {TemplateURL=} for the descriptor (uploads big ones).
function Engine:_template_source(d)
  local body = d.body
  if body == nil then
    local t = template_of(d)
    if not t then return nil, "descriptor has neither body nor template" end
    body = json.encode(t, { pretty = true })
  end
  if not (d.needs_s3 or #body > M.S3_THRESHOLD) then return { TemplateBody = body } end
  local bucket, err = self:_bucket_name()
  if not bucket then return nil, err end
  local ok, berr = self:_ensure_bucket(bucket)
  if not ok then return nil, berr end
  local key = s3.key(d.name, body)
  local call = function(service, op, params) return self:_call(service, op, params) end
  self:_emit({ type = "phase", stack = d.name, phase = "upload", text = "uploading template ("
    .. #body .. " bytes) to s3://" .. bucket .. "/" .. key })
  local put, perr = s3.put(call, bucket, key, body, "application/json")
  if not put then return nil, perr end
  local cl = self:_client("s3")
  return { TemplateURL = s3.url(cl and cl.endpoint, bucket, key, self.region or (cl and cl.region)) }
end

function Engine:_upload_assets(run, p)
  local d = p.desc
  local call = function(service, op, params) return self:_call(service, op, params) end
  for _, a in ipairs(d.assets or {}) do
    local bucket = a.bucket
    if not bucket and a.bucket_stack then
      local outs = run.outputs[a.bucket_stack]
      if not outs then
        local o, err = self:outputs(a.bucket_stack)
        if not o then return nil, "asset " .. tostring(a.key) .. ": " .. errtext(err) end
        outs = o
        run.outputs[a.bucket_stack] = o
      end
      bucket = outs[a.bucket_output or "Bucket"]
      if not bucket then
        return nil, "asset " .. tostring(a.key) .. ": stack " .. a.bucket_stack .. " has no output "
          .. tostring(a.bucket_output or "Bucket")
      end
    end
    if not bucket then return nil, "asset " .. tostring(a.key) .. ": no bucket" end
    self:_emit({ type = "phase", stack = d.name, phase = "upload", text = "uploading " .. a.key })
    local ok, err = s3.put(call, bucket, a.key, a.body, a.content_type)
    if not ok then return nil, err end
  end
  return true
end

-- ---------------------------------------------------------------------------
-- Change sets
-- ---------------------------------------------------------------------------

-- Creates the change set of plan p (p.action "create"|"update"), waits for
-- it and fills p.cs, p.changes, p.status ("changes"|"no changes"), or
-- p.deferred (missing export of a dependency in this run), or fails p.
function Engine:_changeset(run, p)
  local d = p.desc
  local name = d.name
  local params, perr = self:_parameters(d, p.existing)
  if not params then return fail(self, run, p, perr) end
  local src, serr = self:_template_source(d)
  if not src then return fail(self, run, p, serr) end
  local cs_name = "lumu-" .. os.date("!%Y%m%d%H%M%S") .. "-" .. rand_hex(4)
  local req = { StackName = name, ChangeSetName = cs_name, ChangeSetType = p.action == "create" and "CREATE" or "UPDATE",
    TemplateBody = src.TemplateBody, TemplateURL = src.TemplateURL, Parameters = params,
    Capabilities = capabilities(d), Tags = self:_tags(d), ClientToken = cs_name, RoleARN = self:_role(d),
    Description = ("lumu" .. (self.revision and (" revision " .. tostring(self.revision)) or "")) }
  self:_emit({ type = "phase", stack = name, phase = "changeset", text = "creating change set" })
  local res, err = self:_call("cloudformation", "CreateChangeSet", req)
  local cs_id, stack_id
  if res then
    cs_id, stack_id = res.Id, res.StackId
  elseif err and err.code == "AlreadyExistsException" then
    -- a retried request that had gone through: find it
    local got = self:_call("cloudformation", "DescribeChangeSet", { StackName = name, ChangeSetName = cs_name })
    if not got then return fail(self, run, p, "change set: " .. errtext(err)) end
    cs_id, stack_id = got.ChangeSetId, got.StackId
  else
    return fail(self, run, p, "cannot create the change set: " .. errtext(err))
  end
  run.created_cs[#run.created_cs + 1] = { stack = name, id = cs_id, stack_id = stack_id,
    new_stack = p.action == "create" and not p.existing, plan = p }
  -- a CREATE change set leaves a REVIEW_IN_PROGRESS stack until executed
  -- (also when the change set is deleted and made again later)
  if p.action == "create" then run.review[name] = { id = stack_id, plan = p } end
  p.cs, p.stack_id = cs_id, stack_id or p.stack_id
  -- wait
  local interval = self.poll.changeset
  local got
  while true do
    async.sleep(interval)
    local r, derr = self:_call("cloudformation", "DescribeChangeSet", { ChangeSetName = cs_id, StackName = stack_id })
    if not r then return fail(self, run, p, "change set: " .. errtext(derr)) end
    local st = r.Status
    if st == "CREATE_COMPLETE" or st == "FAILED" or (st or ""):sub(1, 7) == "DELETE_" then
      got = r
      break
    end
    interval = math.min(interval * 1.5, self.poll.max)
  end
  if got.Status ~= "CREATE_COMPLETE" then
    local reason = got.StatusReason or got.Status
    if changes.no_changes(reason) then
      p.status, p.changes = "no changes", {}
      self:_delete_cs(run, cs_id, stack_id)
      return true
    end
    if changes.missing_export(reason) and #(run.g.deps[name] or {}) > 0 and not p.second_try then
      p.deferred = true
      p.changes = p.action == "create" and changes.from_template(template_of(d)) or {}
      p.note = (p.action == "create" and ("new stack (" .. #p.changes .. " resource" .. (#p.changes == 1 and "" or "s")
        .. ")") or "update")
        .. "; change set after " .. table.concat(run.g.deps[name], ", ") .. " (" .. tostring(reason) .. ")"
      self:_delete_cs(run, cs_id, stack_id)
      return true
    end
    return fail(self, run, p, "change set failed: " .. tostring(reason))
  end
  local list = {}
  for _, c in ipairs(got.Changes or {}) do list[#list + 1] = c end
  local next_token = got.NextToken
  while next_token and next_token ~= "" do
    local r, derr = self:_call("cloudformation", "DescribeChangeSet",
      { ChangeSetName = cs_id, StackName = stack_id, NextToken = next_token })
    if not r then return fail(self, run, p, "change set: " .. errtext(derr)) end
    for _, c in ipairs(r.Changes or {}) do list[#list + 1] = c end
    next_token = r.NextToken
  end
  p.changes = changes.normalize(list)
  p.status = "changes"
  p.deferred = nil
  return true
end

function Engine:_delete_cs(run, cs_id, stack_id)
  self:_call("cloudformation", "DeleteChangeSet", { ChangeSetName = cs_id, StackName = stack_id })
  for i, c in ipairs(run.created_cs) do
    if c.id == cs_id then
      table.remove(run.created_cs, i)
      break
    end
  end
end

-- Deletes the change sets made in this run and never executed (and the
-- REVIEW_IN_PROGRESS stacks they created).
function Engine:_cleanup(run)
  local list = run.created_cs
  run.created_cs = {}
  for _, c in ipairs(list) do
    if not c.executed then
      self:_for(c.plan and c.plan.desc)
      self:_call("cloudformation", "DeleteChangeSet", { ChangeSetName = c.id, StackName = c.stack_id })
    end
  end
  -- the REVIEW_IN_PROGRESS stacks of creates never executed (not
  -- confirmed, skipped, interrupted, a diff), deferred ones included
  local review = run.review or {}
  run.review = {}
  local names = {}
  for name in pairs(review) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local r = review[name]
    self:_for(r.plan and r.plan.desc)
    local st = self:_describe(r.id or name)
    if st and st.StackStatus == "REVIEW_IN_PROGRESS" then
      self:_call("cloudformation", "DeleteStack", { StackName = r.id or name, RoleARN = self:_role(r.plan and r.plan.desc) })
    end
  end
  self:_for(nil)
end

-- ---------------------------------------------------------------------------
-- Planning
-- ---------------------------------------------------------------------------

function Engine:_wait_settled(run, p, st)
  self:_emit({ type = "phase", stack = p.name, phase = "wait",
    text = "waiting for " .. st.StackStatus .. " (started earlier) to finish" })
  local r = events.tail(self:_ctx(), { stack = p.name, ref = st.StackId, attach = true,
    deleting = st.StackStatus:sub(1, 7) == "DELETE_" })
  if r.err then return nil, "while waiting for " .. st.StackStatus .. ": " .. errtext(r.err) end
  if r.gone then return false end
  return r.stack or self:_describe(st.StackId)
end

-- mu's version guard with the lumu:version tag: true | nil, message
function Engine:_version_check(run, p, st)
  local tagged
  for _, t in ipairs(st.Tags or {}) do
    if t.Key == M.VERSION_TAG then tagged = t.Value end
  end
  if not M.version_newer(tagged, self.version) then return true end
  local what = "last deployed by lumu " .. tostring(tagged) .. ", newer than this lumu " .. self.version
  if self.skip_version_check then
    self:_emit({ type = "message", stack = p.name, level = "warn",
      text = what .. ": updating it anyway (-F/--skip-version-check)" })
    return true
  end
  if run.mode ~= "up" then
    self:_emit({ type = "message", stack = p.name, level = "warn",
      text = what .. ": up will refuse to update it without -F/--skip-version-check" })
    return true
  end
  return nil, what .. ": not updated (upgrade lumu, or -F/--skip-version-check to update it anyway)"
end

function Engine:_plan(run, d)
  local name = d.name
  local p = run.plans[name]
  p.t0 = async.now()
  if d.kind == "catalog-provision" then return self:_plan_provision(run, p) end
  if run.mode == "up" and self.opts.before_deploy then
    local ok, herr = self.opts.before_deploy(d)
    if not ok then return fail(self, run, p, errtext(herr or "before_deploy failed")) end
  end
  self:_emit({ type = "phase", stack = name, phase = "plan", text = "reading stack" })
  local st, err = self:_describe(name)
  if st == nil then return fail(self, run, p, "cannot read the stack: " .. errtext(err)) end
  if st and events.in_progress(st.StackStatus) then
    st, err = self:_wait_settled(run, p, st)
    if st == nil then return fail(self, run, p, err) end
  end
  p.existing = st or nil
  p.stack_id = st and st.StackId or nil
  if st then run.outputs[name] = outputs_of(st) end
  local status = st and st.StackStatus
  if st and status ~= "REVIEW_IN_PROGRESS" and status ~= "ROLLBACK_COMPLETE" and status ~= "ROLLBACK_FAILED" then
    local ok, verr = self:_version_check(run, p, st)
    if not ok then return fail(self, run, p, verr) end
  end
  if not st or status == "REVIEW_IN_PROGRESS" then
    p.action = "create"
  elseif status == "ROLLBACK_COMPLETE" or status == "ROLLBACK_FAILED" then
    p.action = "recreate"
    p.deferred = true
    p.changes = changes.from_template(template_of(d))
    p.note = "re-create: the failed create (" .. status .. ") is deleted first, then the stack is created ("
      .. #p.changes .. " resource" .. (#p.changes == 1 and "" or "s") .. ")"
    return true
  elseif status == "UPDATE_ROLLBACK_FAILED" then
    p.action = "recover"
    p.deferred = true
    p.changes = {}
    p.note = "recover: ContinueUpdateRollback (the stack is UPDATE_ROLLBACK_FAILED), then update"
      .. " (changes shown once recovered)"
    return true
  elseif status == "DELETE_FAILED" then
    return fail(self, run, p, "the stack is DELETE_FAILED: delete it first (down/terminate), retaining"
      .. " what cannot be deleted")
  elseif UPDATABLE[status] then
    p.action = "update"
  else
    return fail(self, run, p, "the stack is " .. tostring(status) .. " and cannot be deployed")
  end
  return self:_changeset(run, p)
end

-- ---------------------------------------------------------------------------
-- Execution
-- ---------------------------------------------------------------------------

-- Watches AWS::ECS::Service resources of an executing stack for a hang.
function Engine:_ecs_watch(run, p, tokens)
  local svcs = {}
  local every = math.max(self.poll.min, math.min(30, self.ecs_timeout / 4))
  local w = {}
  function w.on_event(ev)
    if ev.type ~= "resource" or ev.resource_type ~= "AWS::ECS::Service" then return end
    if ev.status == "UPDATE_IN_PROGRESS" or ev.status == "CREATE_IN_PROGRESS" then
      local s = svcs[ev.logical_id]
      if not s then
        s = { since = async.now(), checked = async.now(), status = ev.status }
        svcs[ev.logical_id] = s
      end
      if ev.physical_id and ev.physical_id ~= "" then s.arn = ev.physical_id end
    else
      svcs[ev.logical_id] = nil
    end
  end
  function w.on_tick(info)
    local now = async.now()
    for lid, s in pairs(svcs) do
      if s.arn and now - s.checked >= every then
        s.checked = now
        local cluster = s.arn:match("service/([^/]+)/[^/]+$")
        local res = self:_call("ecs", "DescribeServices", { cluster = cluster, services = { s.arn } },
          { retry = false })
        local sv = res and res.services and res.services[1]
        if sv then
          local ev = sv.events and sv.events[1]
          s.last = ev and ev.message or s.last
          local dep = sv.deployments and sv.deployments[1]
          local state = dep and (dep.rolloutState or dep.status) or ""
          self:_emit({ type = "phase", stack = p.name, phase = "execute", text = lid .. ": ECS " .. state
            .. (dep and (" " .. tostring(dep.runningCount or 0) .. "/" .. tostring(dep.desiredCount or 0) .. " tasks") or "")
            .. (s.last and (": " .. s.last) or "") })
        end
      end
      if not s.fired and now - s.since >= self.ecs_timeout then
        s.fired = true
        local msg = "service not stabilising: " .. (s.last or ("no ECS event for " .. lid)) .. " (after "
          .. math.floor(now - s.since) .. "s)"
        p.hang = msg
        self:_emit({ type = "message", stack = p.name, level = "warn", text = msg })
        if self.ecs_cancel and info.status == "UPDATE_IN_PROGRESS" then
          local tok = "lumu-cancel-" .. rand_hex(8)
          tokens[tok] = true
          self:_emit({ type = "phase", stack = p.name, phase = "cancel", text = "cancelling the update (CancelUpdateStack)" })
          self:_call("cloudformation", "CancelUpdateStack", { StackName = p.stack_id or p.name, ClientRequestToken = tok })
        elseif self.ecs_cancel then
          self:_emit({ type = "message", stack = p.name, level = "warn",
            text = "a stack create cannot be cancelled; waiting for CloudFormation's own timeout" })
        end
      end
    end
  end
  return w
end

-- Tails one operation of p; returns the tail result.  Records it in
-- run.inflight while it runs (for Ctrl-C).
function Engine:_follow(run, p, kind, o)
  local fl = { kind = kind, ref = o.ref, tokens = o.tokens, seen = {}, p = p }
  run.inflight[p.name] = fl
  o.stack = p.name
  o.seen = fl.seen
  local r = events.tail(self:_ctx(), o)
  run.inflight[p.name] = nil
  return r
end

function Engine:_post_success(run, p, st)
  local d = p.desc
  local tpl = template_of(d)
  local stateful = tpl and M.stateful_resources(tpl) or {}
  if d.stack_policy or #stateful > 0 then
    local body = d.stack_policy and (type(d.stack_policy) == "string" and d.stack_policy or json.encode(d.stack_policy))
      or M.protective_policy()
    local _, err = self:_call("cloudformation", "SetStackPolicy", { StackName = p.stack_id or p.name, StackPolicyBody = body })
    if err then self:_emit({ type = "message", stack = p.name, level = "warn", text = "stack policy not set: " .. errtext(err) }) end
  end
  self:_protect(p, st)
end

-- Termination protection for production-like environments.
function Engine:_protect(p, st)
  if self.is_production(p.desc.env) and st and not st.EnableTerminationProtection then
    local _, err = self:_call("cloudformation", "UpdateTerminationProtection",
      { StackName = p.stack_id or p.name, EnableTerminationProtection = true })
    if err then
      self:_emit({ type = "message", stack = p.name, level = "warn", text = "termination protection not enabled: " .. errtext(err) })
    end
  end
end

local SUCCESS = { CREATE_COMPLETE = "created", UPDATE_COMPLETE = "updated", IMPORT_COMPLETE = "updated" }

-- The reason on the stack's own event that started the rollback (or
-- failure) of operation r, when it has one: the only explanation when no
-- resource failed ("Export X cannot be deleted as it is in use by Y").
local function stack_reason(r, name)
  for _, ev in ipairs(r.events or {}) do
    local st = ev.ResourceStatus or ""
    if events.is_stack_event(ev, name) and (st:sub(-20) == "ROLLBACK_IN_PROGRESS" or st:sub(-7) == "_FAILED")
        and ev.ResourceStatusReason and ev.ResourceStatusReason ~= "" and ev.ResourceStatusReason ~= "User Initiated" then
      return ev.ResourceStatusReason
    end
  end
  return nil
end

function Engine:_explain(run, p, r)
  local evs = events.failures(self:_ctx(), r.events or {}, p.name)
  local msg
  if p.hang then msg = p.hang end
  local first = evs[1]
  local text = first and first_failure_text(first) or stack_reason(r, p.name) or (r.reason and tostring(r.reason)) or nil
  if text then msg = msg and (msg .. "\n    " .. text) or text end
  msg = (r.status or "failed") .. (msg and (": " .. msg) or "")
  if msg:find("stack policy", 1, true) then
    msg = msg .. "\n    (the stack policy protects stateful resources; --allow-data-loss lifts it for one run)"
  end
  return msg, evs
end

function Engine:_execute(run, name)
  local p = run.plans[name]
  local d = p.desc
  if p.early ~= nil then return p.early end   -- executed ahead (an export still in use)
  if p.failed then return false end
  p.t0 = async.now()
  if d.kind == "catalog-provision" then return self:_provision(run, p) end
  if p.status == "no changes" then
    self:_protect(p, p.existing)
    result(self, run, name, { status = "no changes", action = p.action, changes = {}, outputs = run.outputs[name] or {} })
    return true
  end
  if p.action == "recreate" then
    local ok = self:_delete(run, p, { recreate = true })
    if not ok then return false end
    p.existing, p.stack_id, p.action = nil, nil, "create"
  elseif p.action == "recover" then
    local tok = "lumu-continue-" .. rand_hex(8)
    local base = self:_baseline(p.stack_id)
    self:_emit({ type = "phase", stack = name, phase = "recover", text = "ContinueUpdateRollback" })
    local _, err = self:_call("cloudformation", "ContinueUpdateRollback", { StackName = p.stack_id, ClientRequestToken = tok,
      RoleARN = self:_role(d) })
    if err then
      local st = self:_describe(p.stack_id)
      if not (st and (st.StackStatus == "UPDATE_ROLLBACK_IN_PROGRESS" or st.StackStatus == "UPDATE_ROLLBACK_COMPLETE")) then
        return fail(self, run, p, "ContinueUpdateRollback: " .. errtext(err))
      end
    end
    local r = self:_follow(run, p, "recover", { ref = p.stack_id, baseline = base, tokens = { [tok] = true },
      start_status = "UPDATE_ROLLBACK_IN_PROGRESS", attach = true })
    if r.err then return fail(self, run, p, "while recovering: " .. errtext(r.err)) end
    if r.status ~= "UPDATE_ROLLBACK_COMPLETE" then
      local msg, evs = self:_explain(run, p, r)
      return fail(self, run, p, "could not recover from UPDATE_ROLLBACK_FAILED: " .. msg
        .. "\n    (skip the resources that cannot roll back: aws cloudformation continue-update-rollback"
        .. " --stack-name " .. name .. " --resources-to-skip ...)", { events_failed = evs })
    end
    self:_emit({ type = "message", stack = name, level = "info", text = "recovered (UPDATE_ROLLBACK_COMPLETE)" })
    p.existing = r.stack or p.existing
    p.action = "update"
  end
  if p.deferred or not p.cs then
    p.deferred, p.second_try = nil, true
    p.note = nil
    local ok = self:_changeset(run, p)
    if not ok then return false end
    self:_emit({ type = "diff", stack = name, action = p.action, status = p.status, changes = p.changes })
    if p.status == "no changes" then
      result(self, run, name, { status = "no changes", action = p.action, changes = {}, outputs = run.outputs[name] or {} })
      return true
    end
  end
  local ok, aerr = self:_upload_assets(run, p)
  if not ok then return fail(self, run, p, aerr) end
  local tpl = template_of(d)
  local lifted = false
  if p.action == "update" and self.allow_data_loss and (d.stack_policy or (tpl and #M.stateful_resources(tpl) > 0)) then
    local _, err = self:_call("cloudformation", "SetStackPolicy", { StackName = p.stack_id, StackPolicyBody = M.PERMISSIVE_POLICY })
    if err then return fail(self, run, p, "cannot lift the stack policy: " .. errtext(err)) end
    lifted = true
    self:_emit({ type = "message", stack = name, level = "warn", text = "--allow-data-loss: stack policy lifted for this update" })
  end
  local base = p.action == "update" and self:_baseline(p.stack_id) or nil
  local tok = "lumu-exec-" .. rand_hex(8)
  local tokens = { [tok] = true }
  local total = #(p.changes or {})
  self:_emit({ type = "phase", stack = name, phase = "execute", total = total,
    text = (p.action == "create" and "creating" or "updating") .. " (" .. total .. " resource changes)" })
  for _, c in ipairs(run.created_cs) do
    if c.id == p.cs then c.executed = true end
  end
  run.inflight[name] = { kind = p.action, ref = p.stack_id or name, tokens = tokens, seen = {}, p = p }
  local _, err = self:_call("cloudformation", "ExecuteChangeSet", { ChangeSetName = p.cs, StackName = p.stack_id,
    ClientRequestToken = tok })
  if err then
    run.inflight[name] = nil
    return fail(self, run, p, "cannot execute the change set: " .. errtext(err))
  end
  run.review[name] = nil
  local watch = self:_ecs_watch(run, p, tokens)
  local r = self:_follow(run, p, p.action, { ref = p.stack_id or name, baseline = base, tokens = tokens,
    on_event = watch.on_event, on_tick = watch.on_tick, stop_status = p.action == "create" and "REVIEW_IN_PROGRESS" or nil })
  if r.err then return fail(self, run, p, "lost track of the stack: " .. errtext(r.err)) end
  local st = r.stack
  if st then run.outputs[name] = outputs_of(st) end
  local done = SUCCESS[r.status]
  if done and p.hang then done = nil end
  if done then
    self:_post_success(run, p, st)
    result(self, run, name, { status = done, action = p.action, changes = p.changes, outputs = run.outputs[name] or {} })
    return true
  end
  if lifted then self:_post_success(run, p, nil) end
  -- an export this update removes is still imported by a stack of this run
  -- that stops importing it: update that one first, then this one again
  local export, user = tostring(stack_reason(r, name) or ""):match("Export (%S+) cannot be deleted as it is in use by ([%w%-]+)")
  local up = user and run.plans[user]
  if up and r.status == "UPDATE_ROLLBACK_COMPLETE" and not p.export_retry and up.early == nil and up.cs
      and not up.deferred and not up.failed and up.action == "update" and not run.report.stacks[user] then
    p.export_retry = true
    self:_emit({ type = "message", stack = name, level = "info", text = "export " .. export .. " is still imported by "
      .. user .. ", which stops importing it: updating " .. user .. " first, then " .. name .. " again" })
    self:_for(up.desc)
    local ok = self:_execute(run, user)
    self:_for(p.desc)
    up.early = ok and true or false
    if ok then
      local st = self:_describe(p.stack_id or name)
      if st then
        p.existing, p.action, p.cs, p.deferred = st, "update", nil, true
        return self:_execute(run, name)
      end
    end
  end
  local msg, evs = self:_explain(run, p, r)
  return fail(self, run, p, msg, { events_failed = evs, changes = p.changes })
end

-- Deletes p's stack (down, or the failed create of a re-create).
function Engine:_delete(run, p, o)
  o = o or {}
  local name = p.name
  local st = p.existing
  if st and events.in_progress(st.StackStatus) then
    local err
    st, err = self:_wait_settled(run, p, st)
    if st == nil then return fail(self, run, p, err) end
  end
  if not st then
    if not o.recreate then result(self, run, name, { status = "not found", action = "delete" }) end
    return true
  end
  if st.EnableTerminationProtection then
    if not self.allow_data_loss then
      return fail(self, run, p, "termination protection is on (a production-like environment); --allow-data-loss"
        .. " turns it off for this run")
    end
    local _, err = self:_call("cloudformation", "UpdateTerminationProtection",
      { StackName = st.StackId, EnableTerminationProtection = false })
    if err then return fail(self, run, p, "cannot turn termination protection off: " .. errtext(err)) end
    self:_emit({ type = "message", stack = name, level = "warn", text = "--allow-data-loss: termination protection turned off" })
  end
  local base = self:_baseline(st.StackId)
  local tok = "lumu-delete-" .. rand_hex(8)
  self:_emit({ type = "phase", stack = name, phase = "delete", text = o.recreate and
    ("deleting the failed create (" .. st.StackStatus .. ")") or "deleting" })
  run.inflight[name] = { kind = "delete", ref = st.StackId, tokens = { [tok] = true }, seen = {}, p = p }
  local _, err = self:_call("cloudformation", "DeleteStack", { StackName = st.StackId, ClientRequestToken = tok,
    RoleARN = self:_role(p.desc) })
  if err then
    run.inflight[name] = nil
    return fail(self, run, p, "cannot delete: " .. errtext(err))
  end
  local r = self:_follow(run, p, "delete", { ref = st.StackId, baseline = base, tokens = { [tok] = true }, deleting = true })
  if r.err then return fail(self, run, p, "lost track of the stack: " .. errtext(r.err)) end
  if r.status == "DELETE_COMPLETE" or r.gone then
    if not o.recreate then result(self, run, name, { status = "deleted", action = "delete" }) end
    return true
  end
  local msg, evs = self:_explain(run, p, r)
  return fail(self, run, p, msg, { events_failed = evs, action = "delete" })
end

-- ---------------------------------------------------------------------------
-- Service Catalog provisioned products (kind "catalog-provision")
-- ---------------------------------------------------------------------------

function Engine:_pp_describe(name)
  local res, err = self:_call("servicecatalog", "DescribeProvisionedProduct", { Name = name })
  if not res then
    if err and err.code == "ResourceNotFoundException" then return false end
    return nil, err
  end
  return res.ProvisionedProductDetail or false
end

function Engine:_plan_provision(run, p)
  local d = p.desc
  local pp, err = self:_pp_describe(d.name)
  if pp == nil then return fail(self, run, p, "cannot read provisioned product: " .. errtext(err)) end
  p.existing_pp = pp or nil
  p.action = "provision"
  p.changes = {}
  p.status = "changes"
  p.note = (pp and "update provisioned product" or "provision product") .. " " .. tostring(d.product)
    .. " version " .. tostring(d.version) .. " (Service Catalog; no change set)"
  return true
end

function Engine:_record_wait(run, p, record_id)
  local interval = self.poll.min
  while true do
    local r, err = self:_call("servicecatalog", "DescribeRecord", { Id = record_id })
    if not r then return nil, "DescribeRecord: " .. errtext(err) end
    local rd = r.RecordDetail or {}
    local st = rd.Status
    if st == "SUCCEEDED" then return true end
    if st == "FAILED" or st == "IN_PROGRESS_IN_ERROR" then
      local msgs = {}
      for _, e in ipairs(rd.RecordErrors or {}) do msgs[#msgs + 1] = tostring(e.Description or e.Code) end
      return nil, "Service Catalog record " .. tostring(st) .. ": " .. (msgs[1] and table.concat(msgs, "; ") or "no reason")
    end
    self:_emit({ type = "phase", stack = p.name, phase = "provision", text = "record " .. tostring(st) })
    async.sleep(interval)
    interval = math.min(interval * 1.5, self.poll.max)
  end
end

function Engine:_provision(run, p)
  local d = p.desc
  local params = {}
  for _, k in ipairs(sorted_keys(d.parameters)) do params[#params + 1] = { Key = k, Value = tostring(d.parameters[k]) } end
  local tok = "lumu-" .. rand_hex(12)
  local res, err
  self:_emit({ type = "phase", stack = p.name, phase = "provision", text = p.note })
  if p.existing_pp then
    res, err = self:_call("servicecatalog", "UpdateProvisionedProduct", { ProvisionedProductName = d.name,
      ProductName = d.product, ProvisioningArtifactName = d.version, ProvisioningParameters = params, UpdateToken = tok })
  else
    res, err = self:_call("servicecatalog", "ProvisionProduct", { ProvisionedProductName = d.name,
      ProductName = d.product, ProvisioningArtifactName = d.version, ProvisioningParameters = params,
      Tags = self:_tags(d), ProvisionToken = tok })
  end
  if not res then return fail(self, run, p, "Service Catalog: " .. errtext(err)) end
  local ok, werr = self:_record_wait(run, p, res.RecordDetail and res.RecordDetail.RecordId)
  if not ok then return fail(self, run, p, werr) end
  result(self, run, p.name, { status = p.existing_pp and "updated" or "created", action = "provision", changes = {} })
  return true
end

function Engine:_terminate_product(run, p)
  local pp, err = self:_pp_describe(p.name)
  if pp == nil then return fail(self, run, p, errtext(err)) end
  if not pp then
    result(self, run, p.name, { status = "not found", action = "delete" })
    return true
  end
  local res, terr = self:_call("servicecatalog", "TerminateProvisionedProduct",
    { ProvisionedProductName = p.name, TerminateToken = "lumu-" .. rand_hex(12) })
  if not res then return fail(self, run, p, "Service Catalog: " .. errtext(terr)) end
  local ok, werr = self:_record_wait(run, p, res.RecordDetail and res.RecordDetail.RecordId)
  if not ok then return fail(self, run, p, werr) end
  result(self, run, p.name, { status = "deleted", action = "delete" })
  return true
end

-- ---------------------------------------------------------------------------
-- Confirmation, summary, interruption
-- ---------------------------------------------------------------------------

function Engine:_ask(summary)
  self.renderer:pause()
  if self.opts.confirm then return self.opts.confirm(summary) and true or false end
  self.out:write(summary.text .. "\n" .. (summary.question or "Continue?") .. " [y/N] ")
  if self.out.flush then self.out:flush() end
  local line = io.stdin:read("l")
  return line ~= nil and (line:lower() == "y" or line:lower() == "yes")
end

-- "yes" | "no" | "no-tty"
function Engine:_confirm(summary)
  if self.yes then return "yes" end
  if not self.interactive then return "no-tty" end
  return self:_ask(summary) and "yes" or "no"
end

local function fmt_elapsed(s)
  if not s then return "" end
  s = math.floor(s + 0.5)
  if s >= 60 then return string.format("%dm%02ds", s // 60, s % 60) end
  return s .. "s"
end

function Engine:_summarize(run)
  local rep = run.report
  local counts, lines = {}, {}
  local order = run.order
  for _, name in ipairs(order) do
    local r = rep.stacks[name]
    if r then counts[r.status] = (counts[r.status] or 0) + 1 end
  end
  local parts = {}
  for _, k in ipairs({ "created", "updated", "deleted", "no changes", "changes", "not found", "failed", "skipped",
    "not executed", "cancelled", "interrupted" }) do
    if counts[k] then parts[#parts + 1] = counts[k] .. " " .. (k == "changes" and "to change" or k) end
  end
  lines[1] = "Summary: " .. (parts[1] and table.concat(parts, ", ") or "nothing to do") .. " ("
    .. fmt_elapsed(async.now() - run.started) .. ")"
  local w = 0
  for _, name in ipairs(order) do w = math.max(w, #name) end
  for _, name in ipairs(order) do
    local r = rep.stacks[name]
    if r then
      local l = string.format("  %-12s %-" .. w .. "s", r.status, name)
      if r.elapsed and (r.status == "created" or r.status == "updated" or r.status == "deleted") then
        l = l .. "  (" .. fmt_elapsed(r.elapsed) .. ")"
      end
      if r.error then
        local first, rest = tostring(r.error):match("^([^\n]*)\n?(.*)$")
        l = l .. "  " .. first
        lines[#lines + 1] = l
        for extra in (rest or ""):gmatch("[^\n]+") do lines[#lines + 1] = "      " .. extra:gsub("^%s+", "") end
      else
        lines[#lines + 1] = (l:gsub("%s+$", ""))
      end
    end
  end
  rep.summary_lines = lines
  rep.counts = counts
  return counts
end

function Engine:_finish(run)
  local rep = run.report
  local bad = false
  for _, name in ipairs(run.order) do
    local r = rep.stacks[name]
    if r and (r.status == "failed" or r.status == "skipped" or r.status == "interrupted" or r.status == "cancelled") then
      bad = true
    end
  end
  if rep.exit_code == 0 and bad then rep.exit_code = M.EXIT_FAILED end
  rep.ok = rep.exit_code == 0
  if run.mode == "up" and self.opts.outputs_file and rep.exit_code ~= M.EXIT_NOT_EXECUTED then
    local all = {}
    for _, name in ipairs(run.order) do
      local r = rep.stacks[name]
      if r and (r.status == "created" or r.status == "updated" or r.status == "no changes") then
        all[name] = json.object(r.outputs or run.outputs[name] or {})
      end
    end
    local ok, err = fs.write(self.opts.outputs_file, json.encode(json.object(all), { pretty = true }))
    if not ok then
      self:_emit({ type = "message", level = "error", text = "outputs file: " .. tostring(err) })
      if rep.exit_code == 0 then rep.exit_code = M.EXIT_FAILED end
      rep.ok = false
    end
  end
  local counts = self:_summarize(run)
  self:_emit({ type = "summary", ok = rep.ok, exit_code = rep.exit_code, lines = rep.summary_lines, counts = counts })
  self.renderer:close()
  rep.calls = self.calls
  return rep
end

-- Runs fn inside a protected call that re-arms Ctrl-C (lumu._host.docall);
-- inside an async task (a C boundary cannot be yielded across) a plain pcall.
local function protected(fn)
  if async.running() then return pcall(fn) end
  local ok, host = pcall(require, "lumu._host")
  if ok and host.docall then
    local r = table.pack(host.docall(fn))
    return r[1], r[2]
  end
  return pcall(fn)
end

function Engine:_interrupted(run)
  local rep = run.report
  rep.exit_code = M.EXIT_INTERRUPTED
  local flights = {}
  for name, fl in pairs(run.inflight) do flights[#flights + 1] = { name = name, fl = fl } end
  table.sort(flights, function(a, b) return a.name < b.name end)
  self:_emit({ type = "message", level = "warn", text = "interrupted: "
    .. (#flights > 0 and "cancelling in-flight updates and waiting for the stacks to settle (Ctrl-C again to stop waiting)"
      or "nothing was executing") })
  local states = {}
  for _, f in ipairs(flights) do states[f.name] = f.fl.kind .. " in progress" end
  local ok, err = protected(function()
    async.run(function()
      local tasks = {}
      for _, f in ipairs(flights) do
        tasks[#tasks + 1] = function()
          local fl, p = f.fl, f.fl.p
          self:_for(p and p.desc)
          local st = self:_describe(fl.ref)
          if st == false then
            states[f.name] = "DELETE_COMPLETE"
            result(self, run, f.name, { status = fl.kind == "delete" and "deleted" or "cancelled", error = "interrupted" })
            return
          end
          if not st then return end
          states[f.name] = st.StackStatus
          if st.StackStatus == "UPDATE_IN_PROGRESS" then
            local tok = "lumu-cancel-" .. rand_hex(8)
            fl.tokens[tok] = true
            self:_emit({ type = "phase", stack = f.name, phase = "cancel", text = "cancelling the update (CancelUpdateStack)" })
            local _, cerr = self:_call("cloudformation", "CancelUpdateStack", { StackName = fl.ref, ClientRequestToken = tok })
            if cerr then
              self:_emit({ type = "message", stack = f.name, level = "warn", text = "CancelUpdateStack: " .. errtext(cerr) })
            end
          end
          local r = st
          if events.in_progress(st.StackStatus) then
            local t = events.tail(self:_ctx(), { stack = f.name, ref = fl.ref, tokens = fl.tokens, seen = fl.seen,
              attach = true, deleting = fl.kind == "delete",
              on_tick = function(info) if info.status then states[f.name] = info.status end end })
            states[f.name] = t.status or states[f.name]
            r = t.stack or { StackStatus = t.status }
            if t.gone then r = { StackStatus = "DELETE_COMPLETE" } end
            local status = r.StackStatus
            local fields = { error = "interrupted" }
            if SUCCESS[status] then
              fields.status = SUCCESS[status]
              fields.error = nil
            elseif status == "DELETE_COMPLETE" then
              fields.status = fl.kind == "delete" and "deleted" or "cancelled"
              if fl.kind == "delete" then fields.error = nil end
            else
              fields.status = "cancelled"
              local _, evs = self:_explain(run, p, t)
              fields.events_failed = evs
              fields.error = "interrupted; the stack is " .. tostring(status)
            end
            result(self, run, f.name, fields)
          end
          states[f.name] = r.StackStatus
        end
      end
      if #tasks > 0 then async.all(tasks) end
      self:_cleanup(run)
    end)
  end)
  if not ok and not is_interrupt(err) then error(err, 0) end
  for _, name in ipairs(run.order) do
    local r = rep.stacks[name]
    if not r then
      rep.stacks[name] = { status = "skipped", error = "interrupted" }
    end
  end
  if not ok then
    -- second Ctrl-C: tell where things are and how to resume
    self.renderer:pause()
    local lines = { "interrupted again: not waiting any longer. Stacks still changing in AWS:" }
    for _, f in ipairs(flights) do
      local st = states[f.name] or "unknown"
      lines[#lines + 1] = "  " .. f.name .. "  " .. st
      if events.in_progress(st) or st:find("in progress", 1, true) then
        rep.stacks[f.name] = { status = "interrupted", error = "still " .. st .. " in AWS" }
      end
    end
    lines[#lines + 1] = "Re-run the same command to resume: stacks in progress are waited for,"
      .. " failed creates re-created, failed rollbacks continued."
    for _, l in ipairs(lines) do self:_emit({ type = "message", level = "warn", text = l }) end
  end
  return self:_finish(run)
end

-- Runs body(run) in async.run with Ctrl-C handling; returns the report.
function Engine:_run(run, body)
  self.renderer_ticker = nil
  local ok, err = protected(function()
    return async.run(function()
      local ticker
      if self.output == "tty" then
        ticker = async.spawn(function()
          while true do
            async.sleep(1)
            self.renderer:tick()
          end
        end)
      end
      local okb, berr = pcall(body, run)
      if ticker then async.cancel(ticker) end
      if not okb then error(berr, 0) end
    end)
  end)
  if not ok then
    if is_interrupt(err) then return self:_interrupted(run) end
    error(err, 0)
  end
  return self:_finish(run)
end

-- ---------------------------------------------------------------------------
-- Public operations
-- ---------------------------------------------------------------------------

local function check_descriptors(list, fname, allow_names)
  if type(list) ~= "table" then error("eng:" .. fname .. ": list of stack descriptors expected", 3) end
  local nodes = {}
  for i, d in ipairs(list) do
    if allow_names and type(d) == "string" then
      nodes[i] = { name = d, depends = i > 1 and { type(list[i - 1]) == "string" and list[i - 1] or list[i - 1].name } or {},
                   desc = { name = d, kind = "stack" } }
    elseif type(d) == "table" and type(d.name) == "string" then
      if d.kind ~= "catalog-provision" and not allow_names and d.body == nil and type(d.template) ~= "table" then
        error("eng:" .. fname .. ": descriptor " .. d.name .. " has no template", 3)
      end
      nodes[i] = { name = d.name, depends = d.depends or {}, desc = d }
    else
      error("eng:" .. fname .. ": item " .. i .. " is not a stack descriptor" .. (allow_names and " or name" or ""), 3)
    end
  end
  local g, err = graph.new(nodes)
  if not g then error("eng:" .. fname .. ": " .. err, 3) end
  return g, nodes
end

local function setup_run(self, mode, g, nodes)
  local run = new_run(self, mode)
  run.g = g
  for _, n in ipairs(nodes) do run.plans[n.name] = { name = n.name, desc = n.desc } end
  for _, name in ipairs(g.order) do run.order[#run.order + 1] = name end
  return run
end

-- Plans every stack (concurrently, bounded); emits the diffs in order.
function Engine:_plan_all(run)
  local flat = {}
  for _, name in ipairs(run.order) do flat[#flat + 1] = { name = name } end
  local fg = graph.new(flat)
  graph.walk(fg, { limit = self.concurrency, run = function(name)
    self:_for(run.plans[name].desc)
    return self:_plan(run, run.plans[name].desc)
  end, error = function(name, err)
    fail(self, run, run.plans[name], "internal error: " .. errtext(err))
  end })
  for _, name in ipairs(run.order) do
    local p = run.plans[name]
    if not p.failed then
      self:_emit({ type = "diff", stack = name, action = p.action, status = p.status, changes = p.changes, note = p.note })
      if p.status ~= "no changes" then run.report.changes = run.report.changes + 1 end
      if run.mode == "up" then
        local deps = run.g.deps[name]
        self:_emit({ type = "phase", stack = name, phase = "queued",
          text = #deps > 0 and ("after " .. table.concat(deps, ", ")) or "" })
      end
    end
  end
end

local function plan_summary(run, verb)
  local names, lines = {}, {}
  for _, name in ipairs(run.order) do
    local p = run.plans[name]
    if not p.failed and p.status ~= "no changes" then
      names[#names + 1] = name
      lines[#lines + 1] = "  " .. name .. ": " .. (p.note or (p.action or verb))
    end
  end
  return { stacks = names, lines = lines,
    text = #names .. " stack" .. (#names == 1 and "" or "s") .. " to " .. verb .. ":\n" .. table.concat(lines, "\n") }
end

function Engine:_not_executed(run, why)
  for _, name in ipairs(run.order) do
    local p = run.plans[name]
    if not p.failed and not run.report.stacks[name] then
      local st = p.status == "no changes" and "no changes" or "not executed"
      run.report.stacks[name] = { status = st, action = p.action, changes = p.changes }
    end
  end
  run.report.exit_code = M.EXIT_NOT_EXECUTED
  self:_emit({ type = "message", level = "warn", text = why })
end

function Engine:diff(list)
  local g, nodes = check_descriptors(list, "diff")
  local run = setup_run(self, "diff", g, nodes)
  return self:_run(run, function()
    self:_plan_all(run)
    self:_cleanup(run)
    for _, name in ipairs(run.order) do
      local p = run.plans[name]
      if not p.failed then
        result(self, run, name, { status = p.status == "no changes" and "no changes" or "changes", action = p.action,
          changes = p.changes, note = p.note, outputs = run.outputs[name] })
      end
    end
  end)
end

function Engine:up(list)
  local g, nodes = check_descriptors(list, "up")
  local run = setup_run(self, "up", g, nodes)
  return self:_run(run, function()
    self:_plan_all(run)
    local summary = plan_summary(run, "deploy")
    if #summary.stacks > 0 then
      local answer = self:_confirm(summary)
      if answer ~= "yes" then
        self:_cleanup(run)
        self:_not_executed(run, answer == "no-tty"
          and "changes not applied: no terminal to confirm on; re-run with --yes to apply them (exit code 4)"
          or "changes not applied (answered no; exit code 4)")
        return
      end
    end
    local states = graph.walk(g, { limit = self.concurrency,
      run = function(name)
        self:_for(run.plans[name].desc)
        return self:_execute(run, name)
      end,
      skip = function(name, blocker)
        result(self, run, name, { status = "skipped", error = blocker and ("dependency " .. blocker .. " failed") or "interrupted" })
      end,
      error = function(name, err)
        fail(self, run, run.plans[name], "internal error: " .. errtext(err))
      end })
    local _ = states
    self:_cleanup(run)
  end)
end

function Engine:down(list)
  local g, nodes = check_descriptors(list, "down", true)
  local run = setup_run(self, "down", g, nodes)
  return self:_run(run, function()
    local flat = {}
    for _, name in ipairs(run.order) do flat[#flat + 1] = { name = name } end
    graph.walk(graph.new(flat), { limit = self.concurrency, run = function(name)
      local p = run.plans[name]
      self:_for(p.desc)
      p.action = "delete"
      if p.desc.kind == "catalog-provision" then
        local pp, err = self:_pp_describe(name)
        if pp == nil then return fail(self, run, p, errtext(err)) end
        p.exists = pp and true or false
        return true
      end
      local st, err = self:_describe(name)
      if st == nil then return fail(self, run, p, "cannot read the stack: " .. errtext(err)) end
      p.existing = st or nil
      p.exists = st and true or false
      return true
    end })
    local names, lines = {}, {}
    for i = #run.order, 1, -1 do
      local name = run.order[i]
      local p = run.plans[name]
      if p.exists then
        names[#names + 1] = name
        local prot = p.existing and p.existing.EnableTerminationProtection
        lines[#lines + 1] = "  " .. name .. (prot and "  (termination protection" ..
          (self.allow_data_loss and ": turned off by --allow-data-loss)" or ": will be refused)") or "")
        self:_emit({ type = "diff", stack = name, action = "delete", changes = {},
          note = "delete" .. (p.existing and (" (" .. p.existing.StackStatus .. ")") or "") })
        run.report.changes = run.report.changes + 1
      elseif not p.failed then
        self:_emit({ type = "diff", stack = name, action = "delete", changes = {}, note = "does not exist" })
      end
    end
    if #names > 0 then
      local answer = self:_confirm({ stacks = names, lines = lines, question = "Delete them?",
        text = #names .. " stack" .. (#names == 1 and "" or "s") .. " to delete (in this order):\n" .. table.concat(lines, "\n") })
      if answer ~= "yes" then
        for _, name in ipairs(run.order) do
          local p = run.plans[name]
          if not p.failed then
            run.report.stacks[name] = { status = p.exists and "not executed" or "not found", action = "delete" }
          end
        end
        run.report.exit_code = M.EXIT_NOT_EXECUTED
        self:_emit({ type = "message", level = "warn", text = answer == "no-tty"
          and "nothing deleted: no terminal to confirm on; re-run with --yes (exit code 4)"
          or "nothing deleted (answered no; exit code 4)" })
        return
      end
    end
    graph.walk(g, { limit = self.concurrency, reverse = true,
      run = function(name)
        local p = run.plans[name]
        self:_for(p.desc)
        if p.failed then return false end
        p.t0 = async.now()
        if p.desc.kind == "catalog-provision" then
          if not p.exists then
            result(self, run, name, { status = "not found", action = "delete" })
            return true
          end
          return self:_terminate_product(run, p)
        end
        return self:_delete(run, p)
      end,
      skip = function(name, blocker)
        result(self, run, name, { status = "skipped", action = "delete",
          error = blocker and ("stack " .. blocker .. " (which uses it) was not deleted") or "interrupted" })
      end,
      error = function(name, err)
        fail(self, run, run.plans[name], "internal error: " .. errtext(err))
      end })
  end)
end

return M
