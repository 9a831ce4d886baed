--- `lumu org up|diff|show` (alias `organization`): accounts and guardrails
-- as code (organization{...} / organization:, lumu.gen.org).
--
--   org up     (alias upsert) the organization stack `<ns>-org` (units,
--              accounts, service control policies) in the management
--              account, the log archive stack in its account, and the
--              account vending product with the catalog stacks it needs
--              (each stack in its own account: lumu.deploy's per-stack
--              credentials)
--   org diff   the same stacks' change sets, shown and deleted; exit 0 no
--              changes, 2 changes, 1 error (as `lumu diff`)
--   org show   each of those stacks: account, status, and its outputs (unit,
--              account and policy ids); the guardrails the configuration
--              asks for.  --output json: {stacks = [{stack=, account=,
--              status=, outputs={}}], guardrails = [{name=, targets=}]}
-- Shared flags: lumu.project.OPTIONS.  Exit: 0 ok, 1 failure, 2 usage or
-- configuration error (also: the configuration has no organization), 4
-- changes not confirmed (no terminal and no --yes), 130 interrupted.
local project = require "lumu.project"
local json = require "lumu.json"

local M = {}

local BASE = { bucket = true, iam = true, portfolio = true, org = true }

--- The descriptors `org up` deploys, in plan order: the "org" stacks and
-- the vending product with the catalog stacks, launch role and org stack it
-- depends on (never the pipeline products).
function M.pick(stacks, model, ns)
  local roots = {}
  local vending = model.organization and model.organization.vending
  local product = vending and (ns .. "-product-" .. (vending.name or "account-vending"))
  for _, d in ipairs(stacks) do
    if d.kind == "org" or (product and d.name == product) then roots[#roots + 1] = d end
  end
  return project.closure(stacks, roots, function(x)
    return BASE[x.kind] and x.env == nil and x.service == nil and x.name ~= ns .. "-iam-common"
  end)
end

local function stacks_of(s)
  if not (s.model and s.model.organization) then
    return nil, s.name .. ": the configuration has no organization (organization{...} / organization:)", 2
  end
  local stacks, err, code = s:plan()
  if not stacks then return nil, err, code end
  return M.pick(stacks, s.model, s.namespace)
end

-- The session and the organization's descriptors of a subcommand (which
-- takes no arguments), or nil, message, exit code.
local function prepare(ctx, args, opts, no_dryrun)
  local s, err, code = project.session(ctx, opts)
  if not s then return nil, err, code end
  if #args > 0 then return nil, s.name .. ": unexpected argument '" .. args[1] .. "'", 2 end
  if no_dryrun and s.dryrun then return nil, s.name .. ": --dryrun has nothing to write", 2 end
  local descs
  descs, err, code = stacks_of(s)
  if not descs then return nil, err, code end
  return s, descs
end

local function up(ctx, args, opts)
  local s, descs, code = prepare(ctx, args, opts)
  if not s then return nil, descs, code end
  return s:up(descs)
end

local function diff(ctx, args, opts)
  local s, descs, code = prepare(ctx, args, opts)
  if not s then return nil, descs, code end
  return s:diff(descs)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function show(ctx, args, opts)
  local s, descs, code = prepare(ctx, args, opts, true)
  if not s then return nil, descs, code end
  local rows = {}
  for _, d in ipairs(descs) do
    local c, cerr = s:client("cloudformation", d)
    if not c then return nil, s.name .. ": " .. d.name .. ": " .. tostring(cerr), 1 end
    local res, derr = c:DescribeStacks({ StackName = d.name })
    local row = { stack = d.name, account = d.account or "(default)", status = "not deployed", outputs = {} }
    if res and res.Stacks and res.Stacks[1] then
      local st = res.Stacks[1]
      row.status = st.StackStatus
      for _, o in ipairs(st.Outputs or {}) do row.outputs[o.OutputKey] = o.OutputValue end
    elseif derr and not tostring(derr.message or derr):find("does not exist", 1, true) then
      return nil, s.name .. ": " .. d.name .. ": " .. tostring(derr.message or derr), 1
    end
    rows[#rows + 1] = row
  end
  local guardrails = {}
  local o = s.model.organization
  for _, g in ipairs(require("lumu.gen.org").guardrails(o)) do
    guardrails[#guardrails + 1] = { name = s.namespace .. "-" .. g.name, targets = table.concat(o.guardrails.targets
      or { "Root" }, ", ") }
  end
  for _, p in ipairs(o.policies or {}) do
    guardrails[#guardrails + 1] = { name = s.namespace .. "-" .. p.name, targets = table.concat(p.targets, ", ") }
  end
  if s.output == "json" then
    local list = json.array()
    for _, r in ipairs(rows) do
      list[#list + 1] = { stack = r.stack, account = r.account, status = r.status, outputs = json.object(r.outputs) }
    end
    local gl = json.array()
    for _, g in ipairs(guardrails) do gl[#gl + 1] = g end
    s.data:write(json.encode({ stacks = list, guardrails = gl }, { pretty = true }))
    return 0
  end
  s.data:write(project.text_table(rows, { { "stack", "STACK" }, { "account", "ACCOUNT" }, { "status", "STATUS" } }))
  for _, r in ipairs(rows) do
    local keys = sorted_keys(r.outputs)
    if #keys > 0 then
      local out = {}
      for _, k in ipairs(keys) do out[#out + 1] = { output = k, value = r.outputs[k] } end
      s.data:write("\n", r.stack, ":\n")
      s.data:write(project.text_table(out, { { "output", "OUTPUT" }, { "value", "VALUE" } }))
    end
  end
  s.data:write("\nService control policies:\n")
  s.data:write(project.text_table(guardrails, { { "name", "POLICY" }, { "targets", "TARGETS" } }))
  return 0
end

local cmd = project.group {
  name = "org",
  summary = "deploy the organization: units, accounts, guardrails, account vending",
  subcommands = {
    { name = "up", aliases = { "upsert" }, run = up, usage = "lumu org up",
      summary = "create or update the organization, log archive and vending stacks" },
    { name = "diff", run = diff, usage = "lumu org diff",
      summary = "show what org up would change (exit 2 when something would)" },
    { name = "show", run = show, usage = "lumu org show",
      summary = "the organization stacks, their accounts, status and ids" },
  },
}
cmd.pick = M.pick
return cmd
