--- Static security analysis of CloudFormation templates (`lumu nag`), in the
-- spirit of cfn_nag.  Pure Lua; no AWS calls.
--
-- local nag = require "lumu.nag"
--
-- nag.scan(template [, opts]) -> results
--   template: a decoded template table (lumu.json / lumu.yaml / lumu.cfn).
--   opts.filename     name used in results (default "<template>")
--   opts.positions    the positions table of yaml.load(text, {positions=true})
--                     for this template, or a path map as returned by
--                     nag.load_file; violations then carry line/column
--   opts.rules        the rule list (default nag.rules())
--   opts.only / opts.skip   lists of rule ids to run only / to skip
--                     (unknown ids raise)
--   opts.no_suppress  true: ignore suppressions (they are still validated)
--   results = {violations = {v...}, suppressed = {v...}, rules = {...},
--   templates = 1, files = {filename}}; each v = {rule=, severity="failure"|
--   "warning", message=, file=, resource= (logical id, parameter name or
--   "Metadata"), type= (resource type, "Parameter" or "Template"), path=
--   ("Resources.Web.Properties.SecurityGroupIngress[0].CidrIp"), line=,
--   column= (when known)}; suppressed ones also have suppressed = {id=,
--   reason=, source="lumu_nag"|"cfn_nag"}.  Order: by resource, failures
--   first.  A rule whose check raises or returns garbage makes scan raise
--   "nag: rule ID (SOURCE) failed on NAME: ...".
--   opts.reuse        (for lumu.synth) the second result of an internal
--                     scan of this same template (lumu.gen.nag.annotate_pass):
--                     the findings of its rules are taken over, not run again
--
-- nag.scanner([opts]) -> scan(template [, opts2]) -> results
--   The same as nag.scan for many templates: opts (rules, only, skip and
--   defaults for filename, positions, no_suppress) are resolved and the rule
--   list compiled once; opts2 (filename, positions, no_suppress, reuse)
--   apply to one template.  Raises as nag.scan (a team rule that does not
--   load, an unknown id in only/skip) when called.  Do not change the rule
--   list while the scanner is in use.
--
-- nag.rules() -> list | nil, err   built-in rules plus team rules found as
--   lumu.nag.rules.* modules on package.path (files lumu/nag/rules/*.lua
--   under any ?.lua entry), sorted (failures first, by number)
-- nag.builtin_rules() -> list      the built-in rules only
-- nag.load_rules(spec) -> list | nil, "FILE: rule #2 (W1001): why"
--   spec: a directory (every *.lua in it), a .lua file, or a module name.  A
--   rule file/module returns one rule table or a list of them.
-- nag.validate_rule(rule) -> true | nil, why
-- nag.combine({list, ...}) -> list | nil, "duplicate rule id ..."
-- nag.select(rules, {only=, skip=}) -> list | nil, "unknown rule id 'X' ..."
-- nag.load_file(path) -> template, positions | nil, "FILE:LINE:COL: message"
--   (.json, .yaml, .yml; .template sniffed; positions is a path map)
-- nag.is_template(value) -> boolean   (a mapping with a Resources mapping)
-- nag.find(dir) -> sorted template file names below dir | nil, err
-- nag.merge({results, ...}) -> results   (several templates)
-- nag.counts(results) -> failures, warnings, suppressed
-- nag.format(results, "text"|"json"|"sarif") -> string (raises on another
--   format).  text: "FILE: RESOURCE: RULE [FAIL|WARN] message (line N, path)"
--   per violation, "[SUPPRESSED]" lines, then a summary line.  json:
--   {summary, violations, suppressed}.  sarif: SARIF 2.1.0 with the rules in
--   tool.driver.rules, results with ruleId/ruleIndex/level/locations
--   (artifact uri + region + logical location), suppressions (inSource).
-- nag.list(rules, "text"|"json") -> string   the rule catalogue
--
-- Rules -----------------------------------------------------------------------
-- A rule is {id = "F12" | "W7" | any [%a][%w_.-]* (F/W ids must agree with the
-- severity), severity = "failure" | "warning", message = one line,
-- reason = why it matters, types = {"AWS::S3::Bucket", ...} ("*": every
-- resource, "Parameter": each template parameter), aliases = {cfn_nag ids}
-- (optional), check = function(resource, logical_id, template, ctx)}.  check
-- returns nil or a list of {path = {"Properties", "X", 1, ...} | "Properties.X",
-- detail = "appended to the message" (optional), message = "replaces it"
-- (optional)}; paths are relative to the resource (list indexes 1-based, shown
-- 0-based).  ctx and helpers: lumu.nag.util.  Team rule ids should not reuse
-- built-in ids (use F1000+/W1000+ or a prefix); duplicates are an error.
-- Built-in ids are stable: a retired rule's id is never reused.
--
-- Suppressions ------------------------------------------------------------------
-- Resource Metadata: lumu_nag: {rules_to_suppress: [{id: W9, reason: "..."}]}
-- (lumu ids) or cfn_nag: {rules_to_suppress: [{id: W2, reason: ...}]}
-- (cfn_nag ids, matched through each rule's aliases).  The template's own
-- Metadata may hold the same, applying to every resource and parameter.  A
-- suppression without a non-empty reason, with an unknown lumu rule id, or
-- misspelt keys is itself failure F37 (which cannot be suppressed) and
-- suppresses nothing.
local engine = require "lumu.nag.engine"

local M = {}

M.util = require "lumu.nag.util"

-- Reading files and formatting results load on first use: lumu synth needs
-- neither unless nag finds something.
local function loader() return require "lumu.nag.load" end
local function formats() return require "lumu.nag.format" end

function M.builtin_rules()
  local out = {}
  for i, r in ipairs(engine.builtin()) do out[i] = r end
  return out
end

M.validate_rule = engine.validate_rule
M.load_rules = engine.load
M.combine = engine.combine
function M.load_file(path) return loader().file(path) end
function M.is_template(v) return loader().is_template(v) end
function M.find(dir) return loader().find(dir) end
M.merge = engine.merge
M.counts = engine.counts

function M.rules()
  local lists = { engine.builtin() }
  for _, name in ipairs(engine.discover()) do
    local list, err = engine.load_module(name)
    if not list then return nil, err end
    lists[#lists + 1] = list
  end
  return engine.combine(lists)
end

local function id_set(ids, all, what)
  if ids == nil then return nil end
  local by = {}
  local names = {}
  for _, r in ipairs(all) do
    by[r.id] = true
    names[#names + 1] = r.id
  end
  local set = {}
  for _, id in ipairs(ids) do
    if not by[id] then
      local hint = require("lumu.cli").suggest(id, names)
      return nil, string.format("unknown rule id '%s' in %s%s", id, what,
        hint and (" (did you mean '" .. hint .. "'?)") or "")
    end
    set[id] = true
  end
  return set
end

function M.select(rules, opts)
  opts = opts or {}
  local only, err = id_set(opts.only, rules, "the rules to run")
  if err then return nil, err end
  local skip
  skip, err = id_set(opts.skip, rules, "the rules to skip")
  if err then return nil, err end
  local out = {}
  for _, r in ipairs(rules) do
    if (not only or only[r.id]) and not (skip and skip[r.id]) then out[#out + 1] = r end
  end
  return out
end

-- opts -> engine scanner | raises (level: where the caller's caller is)
local function scanner(opts, name, level)
  local all = opts.rules
  if all == nil then
    local err
    all, err = M.rules()
    if not all then error("nag." .. name .. ": " .. err, level + 1) end
  end
  local rules = all
  if opts.only ~= nil or opts.skip ~= nil then
    local err
    rules, err = M.select(all, opts)
    if not rules then error("bad argument #" .. (name == "scan" and 2 or 1) .. " to '" .. name .. "' (" .. err .. ")",
      level + 1) end
  end
  return engine.scanner(rules, all)
end

-- The per-template options of opts (argument #2 of a scan) | raises.
local function scan_opts(opts)
  if opts.reuse ~= nil and (type(opts.reuse) ~= "table" or type(opts.reuse.findings) ~= "table"
      or type(opts.reuse.rules) ~= "table") then
    error("bad argument #2 to 'scan' (reuse must be the pass of an earlier scan)", 3)
  end
  return { filename = opts.filename, positions = opts.positions, no_suppress = opts.no_suppress,
    reuse = opts.reuse }
end

function M.scan(template, opts)
  if type(template) ~= "table" then
    error("bad argument #1 to 'scan' (table expected, got " .. type(template) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'scan' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local so = scan_opts(opts)
  return (scanner(opts, "scan", 2)(template, so))
end

function M.scanner(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'scanner' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local defaults = { filename = opts.filename, positions = opts.positions, no_suppress = opts.no_suppress }
  local scan = scanner(opts, "scanner", 2)
  return function(template, o)
    if type(template) ~= "table" then
      error("bad argument #1 to 'scan' (table expected, got " .. type(template) .. ")", 2)
    end
    if o ~= nil and type(o) ~= "table" then
      error("bad argument #2 to 'scan' (table expected, got " .. type(o) .. ")", 2)
    end
    local so = scan_opts(o or {})
    for k, v in pairs(defaults) do
      if so[k] == nil then so[k] = v end
    end
    return (scan(template, so))
  end
end

local FORMATS = { text = true, json = true, sarif = true }

function M.format(results, fmt, opts)
  fmt = fmt or "text"
  if not FORMATS[fmt] then
    error("bad argument #2 to 'format' (\"text\", \"json\" or \"sarif\" expected, got " .. tostring(fmt) .. ")", 2)
  end
  return formats()[fmt](results, opts)
end

function M.list(rules, fmt)
  fmt = fmt or "text"
  if fmt == "json" then
    local json = require "lumu.json"
    local out = json.array({})
    for _, r in ipairs(rules) do out[#out + 1] = formats().rule_json(r) end
    return json.encode(out, { pretty = true })
  elseif fmt == "sarif" then
    return formats().sarif({ rules = rules, violations = {}, suppressed = {}, files = {}, templates = 0 })
  end
  local lines = {}
  for _, r in ipairs(rules) do
    local extra = (r.aliases and #r.aliases > 0) and ("; cfn_nag " .. table.concat(r.aliases, ",")) or ""
    local src = (r.source and r.source ~= "builtin") and ("; from " .. r.source) or ""
    lines[#lines + 1] = string.format("%-4s [%s] %s (%s%s%s)", r.id, r.severity == "failure" and "FAIL" or "WARN",
      r.message, table.concat(r.types, ", "), extra, src)
  end
  return table.concat(lines, "\n") .. "\n"
end

return M
