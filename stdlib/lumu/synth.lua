--- Synthesis: a lumu model -> the ordered list of stacks to deploy, with
-- their template bodies, parameters and tags.  Pure Lua, no AWS calls.
--
-- local synth = require "lumu.synth"
--
-- synth.plan(model, opts) -> stacks, report
--   opts (all optional):
--     namespace     (default model.namespace)
--     environments  list of environment names to generate (--env); default
--                   all.  A name the file does not define is an error when
--                   the file defines environments; when it defines none, the
--                   name stands for an environment deployed from elsewhere
--                   (provider ecs, no HTTPS): only the service-side stacks
--                   (repository, service IAM, database, tables, service,
--                   schedules) are generated for it.  With a selection,
--                   pipelines and the catalog (which span environments) are
--                   left out.
--     format        "json" (default, 2-space pretty, keys in CloudFormation
--                   order) | "yaml" (long-form intrinsics)
--     schemas       a cfn.schema checker: also check every template (and
--                   every asset template) against the resource schemas
--     version       the lumu version the pipelines download (default this
--                   lumu's)
--     git           {provider=, repo=, branch=, basedir=} detected from the
--                   checkout (lumu.cli.synth.detect_git): the pipelines'
--                   source defaults and LUMU_BASEDIR
--     baseurl, github_token   passed to lumu.gen.pipeline / lumu.gen.catalog
--     basedir, cache_dir, fetch (default false)   passed to
--                   lumu.extensions.load (basedir default model.source.dir)
--     suppressions  false: leave out the `lumu nag` suppressions lumu adds
--                   to its own resources (lumu.gen.nag.annotate, applied
--                   to the final templates, after overrides and extensions)
--     generators    {environment=, services=, database=, dynamodb=,
--                   pipeline=, catalog=, compliance=, org=, vending=, devenv=,
--                   extensions = mod | false} (tests;
--                   extensions = false: as if this lumu had no
--                   lumu.extensions)
--   stacks: list of descriptors (lumu.gen.common) in deployment order: the
--     environment stacks (lumu.gen.environment); the compliance stacks of
--     the selected environments (lumu.gen.compliance, with
--     model.compliance); the codedeploy bucket,
--     repositories and applications; DynamoDB tables (lumu.gen.dynamodb);
--     service IAM stacks (they hold the database keys and grant on the
--     tables); databases (lumu.gen.database); services and schedules
--     (lumu.gen.services, which wires each service to its database and
--     tables); pipeline IAM + pipeline stacks, or catalog-provision entries
--     (lumu.gen.pipeline); the catalog (lumu.gen.catalog); the organization
--     stacks first, account vending with the catalog and dev environments
--     (lumu.gen.org.plan; every descriptor then gets its account:
--     lumu.gen.org.place) -- then
--     topologically sorted on `depends` (stable).  Databases and tables are
--     not generated on EKS environments (their services are not yet).
--     Before mu's overrides (lumu.gen.override) come the extensions
--     (lumu.extensions, when this lumu has it: load + apply, which may
--     change templates and add stacks; without it one warning per
--     extension), then subnets left at lumu's defaults outside a VPC an
--     override moved are moved along (synth.realign_subnets).  Each
--     descriptor then gets:
--       body       the template text in opts.format (nil for a
--                  catalog-provision entry, which has no template)
--       size       #body (0 without template); needs_s3 = size > 51,200
--                  (CloudFormation's limit for a template given inline)
--       resources  number of resources
--       problems   cfn.check (and schema) problems of the template and of
--                  its assets (path "assets/<key>: ..."), and cross-stack
--                  ones (synth.cross_check): {path=, message=}
--       overrides  {"templates", "parameters", "tags"} applied
--       notes      short strings for humans ("needs S3 upload", "2 assets
--                  (product templates)", "no template: provisions ...")
--     Descriptors keep their generator's extras: assets (catalog product
--     versions to upload first), password (database), secret_parameters,
--     stack_policy, capabilities (pipelines).
--   Also checked: subnets whose CIDR lies outside their VPC's (after the
--   overrides and the realignment; synth.network_check), reported as errors
--   naming the templates override responsible.
--   report = { warnings = {diag...}, errors = {diag...},
--              problems = total number of template problems }
--     diag = {severity=, where=, key=, message=}; errors are config
--     problems found while generating (a bad secret, a KMS key that is not
--     one, an override that names a parameter the stack lacks, a pipeline
--     repository nothing tells, ...).  Warnings: what is not generated yet
--     (EKS services, rbac), extensions not applied, overrides that matched
--     nothing, subnets moved along, the generators' notes.  Each
--     diagnostic appears once.
--   Raises only on misuse (bad arguments).  Deterministic: the same model
--   and options give byte-identical bodies.
-- synth.realign_subnets(desc, before [, model]) -> diagnostics   (see below)
-- synth.cross_check(stacks) -> list of {stack=, path=, message=}: every
--   Fn::ImportValue (of a literal name or of Fn::Sub over the stack's
--   parameter values) naming an export "<stack>-..." of a stack in the list
--   must be exported by that stack, deployed earlier.  Imports of stacks
--   outside the list (environments deployed from elsewhere) are skipped.
-- synth.nag(stacks [, opts]) -> results | nil, err
--   `lumu nag` over what synth writes: every stack's template (filename
--   "<stack>.template.<format>"; judged with the stack's parameter values,
--   lumu.gen.nag.effective) and asset ("assets/<key>"), merged
--   (lumu.nag.merge).  opts.rules: the rule list (default nag.rules(), the
--   built-in and team rules; nil, err when a team rule does not load);
--   opts.no_suppress.  The rules plan's suppression step already ran on a
--   template (lumu.gen.nag.annotate_pass) are not run again: their findings are
--   reused while the descriptor keeps the template table, body and
--   parameter values plan gave it (edit a template: encode its body again).
-- synth.format_diag(d) -> "where: key: message" (one line)
-- synth.parameters_json(desc) -> text   [{"ParameterKey":..,"ParameterValue":..}]
--   sorted by key, as `aws cloudformation create-stack --parameters file://`
-- synth.tags_json(desc) -> text          [{"Key":..,"Value":..}] sorted
-- synth.NEEDS_S3 = 51200
local json = require "lumu.json"
local cfn = require "lumu.cfn"
local override = require "lumu.gen.override"
local gennag = require "lumu.gen.nag"

local M = {}

M.NEEDS_S3 = 51200

local remember -- (d, pass): see M.nag

local function diag(list, severity, where, key, message)
  list[#list + 1] = { severity = severity, where = where, key = key, message = message }
end

function M.format_diag(d)
  return override.format(d)
end

-- Stable topological sort on `depends` (names outside the list are
-- ignored): stacks keep their order, except that a stack's dependencies are
-- moved before it.  A cycle keeps the given order for the stacks in it.
local function order(stacks)
  local index = {}
  for i, d in ipairs(stacks) do index[d.name] = i end
  local out, state = {}, {}
  local function visit(i)
    if state[i] then return end -- done, or in progress (a cycle)
    state[i] = "visiting"
    for _, dep in ipairs(stacks[i].depends or {}) do
      local j = index[dep]
      if j and not state[j] then visit(j) end
    end
    state[i] = "done"
    out[#out + 1] = stacks[i]
  end
  for i = 1, #stacks do visit(i) end
  return out
end
M._order = order

local function count(t)
  local n = 0
  for _ in pairs(t or {}) do n = n + 1 end
  return n
end

local function selection(model, names, report)
  local envs = model.environments or {}
  if not names or #names == 0 then return envs, envs end
  local byname = {}
  for _, e in ipairs(envs) do byname[e.name:lower()] = e end
  local defined, all, seen = {}, {}, {}
  for _, n in ipairs(names) do
    local e = byname[n:lower()]
    if seen[n:lower()] then
      -- given twice: once is enough
    elseif e then
      defined[#defined + 1] = e
      all[#all + 1] = e
    elseif #envs > 0 then
      local list = {}
      for _, x in ipairs(envs) do list[#list + 1] = x.name end
      diag(report.errors, "error", "--env", n, "no environment named '" .. n .. "' (environments: "
        .. table.concat(list, ", ") .. ")")
    else
      diag(report.warnings, "warning", "--env", n, "not defined in this configuration: generating the service "
        .. "stacks for an existing ecs environment '" .. n .. "' (its stacks come from elsewhere)")
      all[#all + 1] = { name = n, provider = "ecs", loadbalancer = {}, cluster = {}, discovery = {}, roles = {},
        _external = true }
    end
    seen[n:lower()] = true
  end
  -- keep the file's order
  local pos = {}
  for i, e in ipairs(envs) do pos[e] = i end
  table.sort(defined, function(a, b) return pos[a] < pos[b] end)
  return defined, all
end

local function later(report, model)
  if model.rbac and #model.rbac > 0 then
    diag(report.warnings, "warning", model.rbac[1]._where, "rbac",
      "not generated yet (EKS role bindings come with a later version)")
  end
end

-- Extensions (lumu.extensions, when this build has it): loaded and applied
-- right before the overrides, as mu does.  Without the module, one warning per
-- extension naming it.  -> stacks (possibly changed)
local function extensions(model, stacks, opts, report)
  local list = model.extensions or {}
  if #list == 0 then return stacks end
  local ok, mod = true, (opts.generators or {}).extensions
  if mod == false then
    ok, mod = false, "module 'lumu.extensions' not found"
  elseif mod == nil then
    ok, mod = pcall(require, "lumu.extensions")
  end
  if not ok then
    if not tostring(mod):find("not found", 1, true) then
      diag(report.errors, "error", list[1]._where, "extensions", "cannot load lumu.extensions: " .. tostring(mod))
      return stacks
    end
    for i, ext in ipairs(list) do
      local what = ext.url or ext.image or "?"
      diag(report.warnings, "warning", ext._where, ext._path or ("extensions[" .. i .. "]"), "extension '" .. what
        .. "' is not applied: this lumu has no extension support yet (lumu.extensions)")
    end
    return stacks
  end
  local basedir = opts.basedir or (model.source and model.source.dir) or "."
  local exts, err, d = mod.load(model, { basedir = basedir, cache_dir = opts.cache_dir, fetch = opts.fetch == true })
  if not exts then
    if type(d) == "table" and d.message then
      diag(report.errors, "error", d.where, d.key, d.message)
    else
      diag(report.errors, "error", list[1]._where, "extensions", tostring(err))
    end
    return stacks
  end
  for _, w in ipairs(exts.warnings or {}) do
    local l = w.severity == "error" and report.errors or report.warnings
    diag(l, w.severity or "warning", w.where, w.key, w.message)
  end
  local out, diags = mod.apply(stacks, exts, model)
  for _, x in ipairs(diags or {}) do
    local l = x.severity == "error" and report.errors or report.warnings
    diag(l, x.severity or "warning", x.where, x.key, x.message)
  end
  return out or stacks
end

-- Cross-stack references: every Fn::ImportValue whose export name belongs
-- to a stack of this plan (the name starts with "<stack>-") must be
-- exported by that stack, which must come earlier.  Imports of stacks
-- outside the plan (environments deployed from elsewhere) are not checked.
local function param_value(d, name)
  if d.parameters[name] ~= nil then return d.parameters[name] end
  local p = type(d.template.Parameters) == "table" and d.template.Parameters[name]
  return type(p) == "table" and p.Default or nil
end

local function resolve(d, v)
  if type(v) == "string" then return v end
  local s = type(v) == "table" and v["Fn::Sub"]
  if type(s) ~= "string" then return nil end
  local ok = true
  local out = s:gsub("%${([^}!][^}]*)}", function(n)
    if n == "AWS::StackName" then return d.name end
    local pv = param_value(d, n)
    if type(pv) ~= "string" and type(pv) ~= "number" then ok = false; return "" end
    return tostring(pv)
  end)
  return ok and out or nil
end

local cfnutil = require "lumu.cfn.util"

-- fn(x) for the x of every {["Fn::ImportValue"] = x} inside v (parents
-- first; lumu._cfn.values does the same walk in C).
local function imports(v, depth, fn)
  if depth == 0 and cfnutil.use_c and cfnutil.core and cfnutil.core.values then
    local found = cfnutil.core.values(v, "Fn::ImportValue", 100)
    for i = 1, #found do fn(found[i]) end
    return
  end
  if depth > 100 then return end
  local iv = v["Fn::ImportValue"]
  if iv ~= nil then fn(iv) end
  for _, x in pairs(v) do
    if type(x) == "table" then imports(x, depth + 1, fn) end
  end
end

function M.cross_check(stacks)
  local position, exports = {}, {}
  for i, d in ipairs(stacks) do
    position[d.name] = i
    exports[d.name] = {}
    for _, o in pairs(type(d.template.Outputs) == "table" and d.template.Outputs or {}) do
      local n = type(o) == "table" and type(o.Export) == "table" and resolve(d, o.Export.Name)
      if n then exports[d.name][n] = true end
    end
  end
  local found = {}
  for i, d in ipairs(stacks) do
    local seen = {}
    imports(type(d.template.Resources) == "table" and d.template.Resources or {}, 0, function(x)
      local name = resolve(d, x)
      if not name or seen[name] then return end
      seen[name] = true
      -- the producing stack: the longest stack name that prefixes the export
      local producer
      local cut = #name
      while cut > 1 do
        cut = name:sub(1, cut - 1):find("%-[^%-]*$")
        if not cut then break end
        if position[name:sub(1, cut - 1)] then producer = name:sub(1, cut - 1); break end
      end
      if producer and not exports[producer][name] then
        found[#found + 1] = { stack = d.name, path = "Fn::ImportValue", message = "imports " .. name
          .. ", which stack " .. producer .. " does not export" }
      elseif producer and position[producer] > i then
        found[#found + 1] = { stack = d.name, path = "Fn::ImportValue", message = "imports " .. name
          .. " from stack " .. producer .. ", which is deployed after it" }
      end
    end)
  end
  return found
end

-- IPv4 CIDR "a.b.c.d/n" -> address (integer), prefix | nil
local function parse_cidr(s)
  local a, b, c, d, n = tostring(s):match("^(%d+)%.(%d+)%.(%d+)%.(%d+)/(%d+)$")
  if not a then return nil end
  a, b, c, d, n = tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(n)
  if a > 255 or b > 255 or c > 255 or d > 255 or n > 32 then return nil end
  return ((a << 24) | (b << 16) | (c << 8) | d), n
end

local function inside(sub, net)
  local sa, sn = parse_cidr(sub)
  local na, nn = parse_cidr(net)
  if not sa or not na or sn < nn then return false end
  local mask = nn == 0 and 0 or ((0xffffffff << (32 - nn)) & 0xffffffff)
  return (sa & mask) == (na & mask)
end
M._inside = inside

-- A CidrBlock value -> cidr, parameter name (literal or Ref to a parameter).
local function cidr_value(d, v)
  if type(v) == "string" then return v, nil end
  if type(v) == "table" and type(v.Ref) == "string" then
    local pv = param_value(d, v.Ref)
    if type(pv) == "string" then return pv, v.Ref end
  end
  return nil
end

--- network_check(desc) -> list of messages: subnets whose CIDR (a literal
-- or a parameter) lies outside the CIDR of the VPC they are in (same
-- template; skipped when the VPC has secondary CIDR blocks).  A subnet
-- with an empty CIDR is not created (mu's conditions), so it is skipped.
function M.network_check(d)
  local res = type(d.template.Resources) == "table" and d.template.Resources or {}
  local vpcs, secondary = {}, {}
  for id, r in pairs(res) do
    if type(r) == "table" and r.Type == "AWS::EC2::VPC" and type(r.Properties) == "table" then
      local c, p = cidr_value(d, r.Properties.CidrBlock)
      if c then vpcs[id] = { cidr = c, param = p } end
    elseif type(r) == "table" and r.Type == "AWS::EC2::VPCCidrBlock" and type(r.Properties) == "table"
        and type(r.Properties.VpcId) == "table" and r.Properties.VpcId.Ref then
      secondary[r.Properties.VpcId.Ref] = true
    end
  end
  local out = {}
  local ids = {}
  for id in pairs(res) do ids[#ids + 1] = id end
  table.sort(ids)
  for i = 1, #ids do
    local id = ids[i]
    local r = res[id]
    if type(r) == "table" and r.Type == "AWS::EC2::Subnet" and type(r.Properties) == "table" then
      local vref = type(r.Properties.VpcId) == "table" and r.Properties.VpcId.Ref
      local vpc = vref and vpcs[vref]
      local c, p = cidr_value(d, r.Properties.CidrBlock)
      if vpc and c and c ~= "" and not secondary[vref] and parse_cidr(vpc.cidr) and not inside(c, vpc.cidr) then
        out[#out + 1] = string.format("subnet %s gets %s%s, outside the VPC's %s%s: it cannot be created; "
          .. "set %s to a block inside %s", id, c, p and (" (parameter " .. p .. ")") or "", vpc.cidr,
          vpc.param and (" (parameter " .. vpc.param .. ")") or "", p or ("Resources." .. id .. ".Properties.CidrBlock"),
          vpc.cidr)
      end
    end
  end
  return out
end

local function format_cidr(addr, n)
  return string.format("%d.%d.%d.%d/%d", (addr >> 24) & 255, (addr >> 16) & 255, (addr >> 8) & 255, addr & 255, n)
end

local function mask(n) return n == 0 and 0 or ((0xffffffff << (32 - n)) & 0xffffffff) end

local function overlaps(a, an, b, bn)
  local n = math.min(an, bn)
  return (a & mask(n)) == (b & mask(n))
end

-- The override entry that set parameter p of d: a templates entry whose
-- fragment changes its Default, else a parameters entry -> where, key
-- (nil, nil: no override sets it)
local function setter(d, model, p)
  for i = #(d.override_entries or {}), 1, -1 do
    local e = d.override_entries[i]
    local ps = type(e.fragment) == "table" and e.fragment.Parameters
    if type(ps) == "table" and ps[p] ~= nil then
      return e.where, "templates[" .. string.format("%q", e.stack) .. "]"
    end
  end
  local config = require "lumu.config"
  for _, e in ipairs((model and model.parameters) or {}) do
    if e.values and e.values[p] ~= nil and config.stack_matches(e, d.name) then
      return e.where, "parameters[" .. string.format("%q", e.stack) .. "]"
    end
  end
  return nil, nil
end

--- realign_subnets(desc, before [, model]) -> diagnostics
-- When an override moved a VPC's CIDR (a parameter whose value differs
-- from `before`, the parameter values before the overrides) and left
-- subnet CIDR parameters at lumu's values outside the new block, those
-- subnets move along: the same offset inside the new block when it fits
-- and is free, else the first free block of their size.  Changes the
-- parameters' Defaults (and desc.parameters where it passes them, as
-- lumu.gen.override does); returns one warning per
-- VPC naming the override and the moves.  Subnets the overrides set are
-- left alone (synth.network_check reports them).
function M.realign_subnets(d, before, model)
  local out = {}
  if type(before) ~= "table" then return out end
  local res = type(d.template.Resources) == "table" and d.template.Resources or {}
  local ids, secondary = {}, {}
  for id, r in pairs(res) do
    ids[#ids + 1] = id
    if type(r) == "table" and r.Type == "AWS::EC2::VPCCidrBlock" and type(r.Properties) == "table"
        and type(r.Properties.VpcId) == "table" and r.Properties.VpcId.Ref then
      secondary[r.Properties.VpcId.Ref] = true
    end
  end
  table.sort(ids)
  for i = 1, #ids do
    local vid = ids[i]
    local r = res[vid]
    if type(r) == "table" and r.Type == "AWS::EC2::VPC" and type(r.Properties) == "table" and not secondary[vid] then
      local c, p = cidr_value(d, r.Properties.CidrBlock)
      local old = p and before[p]
      local nb, nn = parse_cidr(c)
      local ob, on = parse_cidr(old)
      if p and old ~= c and nb and ob then
        nb, ob = nb & mask(nn), ob & mask(on)
        -- the subnets of this VPC: those to move and those that stay
        local movable, occupied, seenp = {}, {}, {}
        for _, sid in ipairs(ids) do
          local s = res[sid]
          if type(s) == "table" and s.Type == "AWS::EC2::Subnet" and type(s.Properties) == "table"
              and type(s.Properties.VpcId) == "table" and s.Properties.VpcId.Ref == vid then
            local sc, sp = cidr_value(d, s.Properties.CidrBlock)
            local sa, sn = parse_cidr(sc)
            if sa then
              if sp and not seenp[sp] and before[sp] == sc and not inside(sc, c) and not select(2, setter(d, model, sp)) then
                movable[#movable + 1] = { param = sp, addr = sa, n = sn, cidr = sc }
              elseif inside(sc, c) then
                occupied[#occupied + 1] = { sa, sn }
              end
              if sp then seenp[sp] = true end
            end
          end
        end
        local moved = {}
        local function free(a, n)
          for _, o in ipairs(occupied) do
            if overlaps(a, n, o[1], o[2]) then return false end
          end
          return true
        end
        for _, m in ipairs(movable) do
          local target
          if m.n >= nn and inside(m.cidr, old) then
            local off = m.addr - ob
            if off < (1 << (32 - nn)) and free(nb + off, m.n) then target = nb + off end
          end
          if not target and m.n >= nn then
            local size = 1 << (32 - m.n)
            local a = nb
            while a < nb + (1 << (32 - nn)) do
              if free(a, m.n) then target = a; break end
              a = a + size
            end
          end
          if target then
            occupied[#occupied + 1] = { target, m.n }
            local v = format_cidr(target, m.n)
            if d.parameters[m.param] ~= nil then d.parameters[m.param] = v end
            local decl = type(d.template.Parameters) == "table" and d.template.Parameters[m.param]
            if type(decl) == "table" then decl.Default = v end
            moved[#moved + 1] = m.param .. " " .. m.cidr .. " -> " .. v
          end
        end
        if #moved > 0 then
          local where, key = setter(d, model, p)
          out[#out + 1] = { severity = "warning", where = where, key = key or d.name, message = string.format(
            "moves %s of stack %s to %s; %d subnet%s left at lumu's defaults outside it moved along: %s", p, d.name,
            c, #moved, #moved == 1 and "" or "s", table.concat(moved, ", ")) }
        end
      end
    end
  end
  return out
end

local function encode(tpl, format)
  if format == "yaml" then
    return require("lumu.yaml").dump(tpl, { cfn_short = false })
  end
  return json.encode(tpl, { pretty = true, sort_keys = true })
end

-- Where a generator error "path.to.key: message" points: the record the
-- path starts with (a service's pipeline, the catalog).
local function locate(model, key)
  if key and key:match("^catalog") and model.catalog then return model.catalog._where end
  if key and key:match("^compliance") and model.compliance then return model.compliance._where end
  if key and key:match("^organization") and model.organization then return model.organization._where end
  if key and key:match("^devenvs%[(%d+)%]") then
    local d = (model.devenvs or {})[tonumber(key:match("^devenvs%[(%d+)%]"))]
    if d then return d._where end
  end
  for _, svc in ipairs(model.services or {}) do
    local p = svc._path or "service"
    if key and key:sub(1, #p + 1) == p .. "." then
      local rec = key:sub(#p + 2):match("^pipeline") and svc.pipeline or nil
      return (rec and rec._where) or svc._where
    end
  end
  return model.source and model.source.file
end

local function generator_error(report, model, err)
  local msg = tostring(err)
  local key, rest = msg:match("^([%w_%.%[%]\"%-]+): (.*)$")
  diag(report.errors, "error", locate(model, key), key, rest or msg)
end

-- Every problem once (generators that share settings report them alike).
local function dedupe(list)
  local seen, out = {}, {}
  for _, d in ipairs(list) do
    local k = table.concat({ d.severity or "", tostring(d.where), tostring(d.key), tostring(d.message) }, "\0")
    if not seen[k] then
      seen[k] = true
      out[#out + 1] = d
    end
  end
  return out
end

-- Deployment groups: environment stacks; shared service-side stacks
-- (codedeploy bucket, repositories, applications); DynamoDB tables (the
-- service IAM stacks grant on their ARNs); service IAM stacks (they hold the
-- database keys); databases; services; schedules; pipelines; the catalog.
local GROUP = { bucket = 2, repo = 2, app = 2, dynamodb = 3, iam = 4, database = 5, service = 6, schedule = 7 }
local PIPELINES, CATALOG, OTHER = 8, 9, 10

--- plan(model, opts) -> stacks, report
function M.plan(model, opts)
  if type(model) ~= "table" or type(model.environments) ~= "table" or type(model.services) ~= "table" then
    error("bad argument #1 to 'plan' (lumu model expected)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #2 to 'plan' (table expected)", 2) end
  opts = opts or {}
  local format = opts.format or "json"
  if format ~= "json" and format ~= "yaml" then
    error("bad argument #2 to 'plan' (format must be 'json' or 'yaml')", 2)
  end
  local report = { warnings = {}, errors = {}, problems = 0 }
  local gens = opts.generators or {}
  local envgen = gens.environment or require("lumu.gen.environment")
  local svcgen = gens.services or require("lumu.gen.services")
  local dbgen = gens.database or require("lumu.gen.database")
  local pipegen = gens.pipeline or require("lumu.gen.pipeline")
  -- loaded only when the model has what they generate
  local function none() return {} end
  local tables = false
  for _, svc in ipairs(model.services) do tables = tables or svc.dynamodb ~= nil end
  local dyngen = gens.dynamodb or (tables and require("lumu.gen.dynamodb")) or { stacks = none }
  local catgen = gens.catalog or (model.catalog and require("lumu.gen.catalog")) or { stacks = none }
  local compgen = gens.compliance or (model.compliance and require("lumu.gen.compliance"))

  local defined, all = selection(model, opts.environments, report)
  if #report.errors > 0 then return {}, report end

  local ns = opts.namespace or model.namespace or "mu"
  local version = opts.version or require("lumu.version").version
  local diagnostics = {}
  local names
  if opts.environments and #opts.environments > 0 then
    names = {}
    for _, e in ipairs(defined) do names[#names + 1] = e.name end
  end
  local envstacks, enverr = {}, nil
  if #defined > 0 then
    envstacks, enverr = envgen.stacks(model, { namespace = ns, version = version, diagnostics = diagnostics },
      { environments = names })
  end
  if not envstacks then
    diag(report.errors, "error", model.source and model.source.file, nil, tostring(enverr))
    return {}, report
  end
  local groups = {}
  for i = 1, OTHER do groups[i] = {} end
  local function add(list)
    for _, d in ipairs(list or {}) do
      local g = groups[GROUP[d.kind] or OTHER]
      g[#g + 1] = d
    end
  end
  for _, d in ipairs(envstacks) do table.insert(groups[1], d) end
  -- compliance (AWS Config) right after the environment stacks
  if model.compliance and #defined > 0 then
    local cstacks, cerr = compgen.stacks(model, { namespace = ns, environments = names })
    if cstacks then
      for _, d in ipairs(cstacks) do table.insert(groups[1], d) end
    else
      generator_error(report, model, cerr)
    end
  end
  local sctx = { namespace = ns, version = version, environments = all, diagnostics = diagnostics }
  add(svcgen.stacks(model, sctx))
  -- databases and tables belong to the services: none on EKS environments,
  -- whose services are not generated yet (lumu.gen.services warns)
  local dataenvs = {}
  for _, e in ipairs(all) do
    if e.provider ~= "eks" and e.provider ~= "eks-fargate" then dataenvs[#dataenvs + 1] = e end
  end
  if #all == 0 or #dataenvs > 0 then
    add((dbgen.stacks(model, { namespace = ns, environments = dataenvs, diagnostics = diagnostics })))
    add((dyngen.stacks(model, { namespace = ns, environments = dataenvs, diagnostics = diagnostics })))
  end
  -- pipelines and the catalog span environments: left out of an --env selection
  if not names then
    local git = opts.git or {}
    local pctx = { namespace = ns, version = version, git = git, basedir = git.basedir, baseurl = opts.baseurl,
      github_token = opts.github_token }
    local pstacks, perr = pipegen.stacks(model, pctx)
    if pstacks then
      for _, d in ipairs(pstacks) do table.insert(groups[PIPELINES], d) end
    else
      generator_error(report, model, perr)
    end
    local cstacks, cerr = catgen.stacks(model, pctx)
    if cstacks then
      for _, d in ipairs(cstacks) do table.insert(groups[CATALOG], d) end
    else
      generator_error(report, model, cerr)
    end
  end
  -- accounts and guardrails (lumu.gen.org.plan): the organization first, account
  -- vending with the catalog, dev environments after their environment
  local orggen = gens.org or require("lumu.gen.org")
  local extra, oerrs = orggen.plan(model, { namespace = ns, environments = names, git = opts.git, generators = gens })
  for i, d in ipairs(extra.first) do table.insert(groups[1], i, d) end
  for _, d in ipairs(extra.catalog) do table.insert(groups[CATALOG], d) end
  for _, d in ipairs(extra.other) do table.insert(groups[OTHER], d) end
  for _, e in ipairs(oerrs) do generator_error(report, model, e) end
  local stacks = {}
  for _, g in ipairs(groups) do
    for _, d in ipairs(g) do stacks[#stacks + 1] = d end
  end
  -- what the pipeline and catalog generators want the user to know
  for _, d in ipairs(stacks) do
    for _, w in ipairs(d.warnings or {}) do
      local key, rest = tostring(w):match("^([%w_%.%[%]\"%-]+): (.*)$")
      diagnostics[#diagnostics + 1] = { severity = "warning", where = locate(model, key), key = key or d.name,
        message = rest or tostring(w) }
    end
  end
  later(report, model)
  orggen.place(model, stacks, names) -- each stack's account (descriptor.account/profile/role)
  stacks = order(stacks)

  -- mu's order (mu.md §5.11): URL extensions first, then `templates`,
  -- `parameters` and `tags` overrides, so overrides reach what an
  -- extension added and a replace-mode extension cannot wipe them.
  stacks = order(extensions(model, stacks, opts, report))
  local seen = {}
  local before = {}
  for _, d in ipairs(stacks) do
    if d.template then
      before[d] = {}
      for k in pairs(type(d.template.Parameters) == "table" and d.template.Parameters or {}) do
        before[d][k] = param_value(d, k)
      end
      for _, x in ipairs(override.apply(d, model, seen)) do diagnostics[#diagnostics + 1] = x end
    end
  end
  for _, x in ipairs(override.unmatched(model, seen)) do diagnostics[#diagnostics + 1] = x end
  for _, d in ipairs(stacks) do
    if d.template then
      for _, x in ipairs(M.realign_subnets(d, before[d], model)) do diagnostics[#diagnostics + 1] = x end
      local msgs = M.network_check(d)
      if #msgs > 0 then
        -- name the templates override that made the mismatch, when there is one
        local e = d.override_entries and d.override_entries[#d.override_entries]
        for _, msg in ipairs(msgs) do
          diagnostics[#diagnostics + 1] = { severity = "error", where = e and e.where or nil,
            key = e and ("templates[" .. string.format("%q", e.stack) .. "]") or d.name, message = msg }
        end
      end
    end
  end
  for _, x in ipairs(dedupe(diagnostics)) do
    local list = x.severity == "error" and report.errors or report.warnings
    list[#list + 1] = x
  end

  local templated = {}
  for _, d in ipairs(stacks) do
    if d.template then templated[#templated + 1] = d end
  end
  local xref = {}
  for _, p in ipairs(M.cross_check(templated)) do
    xref[p.stack] = xref[p.stack] or {}
    table.insert(xref[p.stack], { path = p.path, message = p.message })
  end
  for _, d in ipairs(stacks) do
    local list = {}
    local notes = {}
    if d.template then
      local pass
      if opts.suppressions ~= false then
        pass = select(2, gennag.annotate_pass(d.template, { parameters = d.parameters }))
      end
      d.body = encode(d.template, format)
      if pass then remember(d, pass) end
      d.format = format
      d.size = #d.body
      d.needs_s3 = d.size > M.NEEDS_S3
      d.resources = count(d.template.Resources)
      local problems = cfn.check(d.template, { body = d.body, schemas = opts.schemas })
      for i = 1, #problems do list[i] = problems[i] end
      for _, p in ipairs(xref[d.name] or {}) do list[#list + 1] = p end
    else
      d.size, d.resources, d.needs_s3 = 0, 0, false
      notes[#notes + 1] = "no template: provisions " .. tostring(d.product) .. " " .. tostring(d.version)
        .. " from Service Catalog"
    end
    -- assets (catalog product versions) are templates too
    for _, a in ipairs(d.assets or {}) do
      local tpl = json.decode(a.body)
      for _, p in ipairs(cfn.check(tpl, { body = a.body, schemas = opts.schemas })) do
        list[#list + 1] = { path = "assets/" .. a.key .. (p.path ~= "" and (": " .. p.path) or ""), message = p.message }
      end
    end
    d.problems = list
    report.problems = report.problems + #list
    if d.needs_s3 then notes[#notes + 1] = "needs S3 upload (over 51,200 bytes)" end
    if d.assets and #d.assets > 0 then
      notes[#notes + 1] = #d.assets .. " asset" .. (#d.assets == 1 and "" or "s") .. " (product templates)"
    end
    if #list > 0 then notes[#notes + 1] = #list .. " problem" .. (#list == 1 and "" or "s") end
    if d.overrides and #d.overrides > 0 then notes[#notes + 1] = "overrides: " .. table.concat(d.overrides, ", ") end
    d.notes = notes
  end
  return stacks, report
end

-- What the annotate step found (the raw findings of the rules it ran), kept
-- per descriptor so that synth.nag does not run those rules again.  Valid
-- while the descriptor has the same template, body and parameter values.
local passes = setmetatable({}, { __mode = "k" })

local function copy(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k] = v end
  return out
end

remember = function(d, pass)
  passes[d] = { template = d.template, body = d.body, parameters = copy(d.parameters), pass = pass }
end

local function same_values(a, b)
  b = b or {}
  for k, v in pairs(a) do
    if b[k] ~= v then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function recalled(d)
  local p = passes[d]
  if p and p.template == d.template and p.body == d.body and same_values(p.parameters, d.parameters) then
    return p.pass
  end
  return nil
end

function M.nag(stacks, opts)
  if type(stacks) ~= "table" then error("bad argument #1 to 'nag' (list of stacks expected)", 2) end
  opts = opts or {}
  local nag = require "lumu.nag"
  local rules, err = opts.rules, nil
  if not rules then
    rules, err = nag.rules()
    if not rules then return nil, err end
  end
  local scan = nag.scanner({ rules = rules, no_suppress = opts.no_suppress })
  local all = {}
  for _, d in ipairs(stacks) do
    if d.template then
      all[#all + 1] = scan(gennag.effective(d.template, d.parameters), {
        filename = d.name .. ".template." .. (d.format or "json"), reuse = recalled(d) })
    end
    for _, a in ipairs(d.assets or {}) do
      all[#all + 1] = scan(json.decode(a.body), { filename = "assets/" .. tostring(a.key) })
    end
  end
  return nag.merge(all)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- A JSON list of {k1: key, k2: value} objects, sorted by key (k1 sorts
-- before k2), values as strings.
local function pairs_json(t, k1, k2)
  local keys = sorted_keys(t)
  if #keys == 0 then return "[]\n" end
  local list = {}
  for i = 1, #keys do
    local k = keys[i]
    list[i] = { [k1] = tostring(k), [k2] = tostring(t[k]) }
  end
  return json.encode(list, { pretty = true, sort_keys = true })
end

function M.parameters_json(desc)
  return pairs_json(desc.parameters or {}, "ParameterKey", "ParameterValue")
end

function M.tags_json(desc)
  return pairs_json(desc.tags or {}, "Key", "Value")
end

return M
