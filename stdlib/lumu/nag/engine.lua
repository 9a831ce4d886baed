--- The `lumu nag` engine: rule registry and validation, team rule loading,
-- scanning, suppressions and positions.  Internal; the public API is
-- lumu.nag (see its header).
local util = require "lumu.nag.util"
local json = require "lumu.json"

local M = {}

M.BUILTIN_MODULES = {
  "lumu.nag.checks.network",
  "lumu.nag.checks.iam",
  "lumu.nag.checks.s3",
  "lumu.nag.checks.data",
  "lumu.nag.checks.services",
  "lumu.nag.checks.template",
}

-- The suppression checker is a rule like the others (listed, filterable), but
-- the engine produces its violations; it cannot itself be suppressed.
M.SUPPRESSION_RULE = {
  id = "F37", severity = "failure",
  message = "Suppression is malformed or has no reason",
  reason = "A suppression must say why the finding is acceptable (a non-empty reason) and name a "
    .. "known rule, otherwise reviewers cannot audit it; misspelt keys would silently suppress "
    .. "nothing.",
  types = { "*" },
  check = function() return nil end,
  source = "builtin",
  engine = true,
}

local SEVERITIES = { failure = "F", warning = "W" }

local numbers = setmetatable({}, { __mode = "k" }) -- rule -> number (rule_lt sorts often)

local function rule_number(r)
  local n = numbers[r]
  if n and n.id == r.id then return n.n end
  n = { id = r.id, n = tonumber(r.id:match("^%a+(%d+)$")) or math.huge }
  numbers[r] = n
  return n.n
end

--- Sort order of rule ids: failures first, then by number, then by name.
function M.rule_lt(a, b)
  local sa, sb = a.severity == "failure" and 0 or 1, b.severity == "failure" and 0 or 1
  if sa ~= sb then return sa < sb end
  local na, nb = rule_number(a), rule_number(b)
  if na ~= nb then return na < nb end
  return a.id < b.id
end

--- Sorts a list of rules in rule_lt order, in place; a list in order already
-- (the usual case: builtin() and combine() give sorted lists) costs one pass.
function M.sort_rules(list)
  local lt = M.rule_lt
  for i = 2, #list do
    if lt(list[i], list[i - 1]) then
      -- rank: severity then number, computed once per rule; rule_lt breaks ties
      local rank = {}
      for _, r in ipairs(list) do
        rank[r] = (r.severity == "failure" and 0 or 2 ^ 60) + math.min(rule_number(r), 2 ^ 59)
      end
      table.sort(list, function(a, b)
        local x, y = rank[a], rank[b]
        if x ~= y then return x < y end
        return lt(a, b)
      end)
      return list
    end
  end
  return list
end

-- Validates one rule table; returns true or nil, "what is wrong".
function M.validate_rule(r)
  if type(r) ~= "table" then return nil, "rule must be a table, got " .. type(r) end
  if type(r.id) ~= "string" or not r.id:find("^[%a][%w_%.%-]*$") or #r.id > 64 then
    return nil, "'id' must be a string like F1001 or W1001 (letters, digits, _ . -)"
  end
  if r.severity ~= "failure" and r.severity ~= "warning" then
    return nil, "'severity' must be \"failure\" or \"warning\""
  end
  local prefix = r.id:match("^([FW])%d+$")
  if prefix and prefix ~= SEVERITIES[r.severity] then
    return nil, string.format("id %s does not match severity %q (F ids are failures, W ids warnings)",
      r.id, r.severity)
  end
  for _, f in ipairs({ "message", "reason" }) do
    if type(r[f]) ~= "string" or not r[f]:find("%S") then
      return nil, "'" .. f .. "' must be a non-empty string"
    end
  end
  if type(r.types) ~= "table" or #r.types == 0 then
    return nil, "'types' must be a non-empty list of resource types (\"*\" for all, \"Parameter\")"
  end
  for i, t in ipairs(r.types) do
    if type(t) ~= "string" or not (t == "*" or t == "Parameter" or t:find("^[%w]+::[%w]+::[%w]+$")
          or t:find("^Custom::")) then
      return nil, string.format("types[%d] is not a resource type (AWS::Service::Thing, \"*\" or \"Parameter\")", i)
    end
  end
  if type(r.check) ~= "function" then return nil, "'check' must be a function" end
  if r.aliases ~= nil then
    if type(r.aliases) ~= "table" then return nil, "'aliases' must be a list of cfn_nag ids" end
    for _, a in ipairs(r.aliases) do
      if type(a) ~= "string" then return nil, "'aliases' must be a list of cfn_nag ids" end
    end
  end
  return true
end

-- A module result -> list of rules (a rule table or a list of them).
local function as_list(v)
  if type(v) == "table" and v.id ~= nil then return { v } end
  if type(v) == "table" and #v > 0 then return v end
  return nil
end

local builtin_cache

--- The built-in rules (nag_rules_spec checks each with validate_rule; here
-- only duplicate ids raise).
function M.builtin()
  if builtin_cache then return builtin_cache end
  local list = {}
  for _, mod in ipairs(M.BUILTIN_MODULES) do
    for _, r in ipairs(require(mod)) do
      r.source = "builtin"
      list[#list + 1] = r
    end
  end
  list[#list + 1] = M.SUPPRESSION_RULE
  M.sort_rules(list)
  local seen = {}
  for _, r in ipairs(list) do
    assert(not seen[r.id], "duplicate built-in rule " .. r.id)
    seen[r.id] = true
  end
  builtin_cache = list
  return list
end

-- Validates the rules a file/module returned; stamps their source.
local function adopt(value, where)
  local list = as_list(value)
  if not list then
    return nil, where .. ": must return a rule table or a non-empty list of rule tables"
  end
  for i, r in ipairs(list) do
    local ok, err = M.validate_rule(r)
    if not ok then
      local label = type(r) == "table" and type(r.id) == "string" and (" (" .. r.id .. ")") or ""
      return nil, string.format("%s: rule #%d%s: %s", where, i, label, err)
    end
    r.source = r.source or where
  end
  return list
end

--- Loads team rules from a Lua file: list | nil, "FILE: why".
function M.load_file(path)
  local chunk, err = loadfile(path, "t")
  if not chunk then return nil, err end
  local ok, value = pcall(chunk)
  if not ok then return nil, path .. ": error while loading: " .. tostring(value) end
  return adopt(value, path)
end

--- Loads team rules from a module name: list | nil, err.
function M.load_module(name)
  local ok, value = pcall(require, name)
  if not ok then return nil, "module " .. name .. ": " .. tostring(value):gsub("\n.*", "") end
  return adopt(value, "module " .. name)
end

--- Loads every *.lua file directly in dir (sorted): list | nil, err.
function M.load_dir(dir)
  local fs = require "lumu.fs"
  local names, err = fs.list(dir)
  if not names then return nil, err end
  local out = {}
  local any = false
  for _, n in ipairs(names) do
    local p = fs.join(dir, n)
    if n:match("%.lua$") and fs.isfile(p) then
      any = true
      local list, lerr = M.load_file(p)
      if not list then return nil, lerr end
      for _, r in ipairs(list) do out[#out + 1] = r end
    end
  end
  if not any then return nil, dir .. ": no *.lua rule files" end
  return out
end

--- Loads a --rules argument: a directory, a .lua file or a module name.
function M.load(spec)
  local fs = require "lumu.fs"
  if fs.isdir(spec) then return M.load_dir(spec) end
  if fs.isfile(spec) then return M.load_file(spec) end
  if spec:find("^[%a_][%w_]*[%.%w_]*$") and not spec:find("%.lua$") then return M.load_module(spec) end
  return nil, spec .. ": No such file or directory"
end

--- Module names of lumu.nag.rules.* files found on package.path.
function M.discover(path)
  local fs = require "lumu.fs"
  local names, seen = {}, {}
  for template in (path or package.path):gmatch("[^;]+") do
    local prefix = template:match("^(.*)%?%.lua$")
    if prefix then
      local dir = prefix .. "lumu/nag/rules"
      if fs.isdir(dir) then
        for _, n in ipairs(fs.list(dir) or {}) do
          local base = n:match("^([%a_][%w_]*)%.lua$")
          if base and not seen[base] then
            seen[base] = true
            names[#names + 1] = "lumu.nag.rules." .. base
          end
        end
      end
    end
  end
  table.sort(names)
  return names
end

--- Merges rule lists; rejects duplicate ids.  -> list | nil, err
function M.combine(lists)
  local out, by = {}, {}
  for _, list in ipairs(lists) do
    for _, r in ipairs(list) do
      local prev = by[r.id]
      if prev and prev ~= r then
        return nil, string.format("duplicate rule id %s (%s and %s)", r.id, prev.source or "?", r.source or "?")
      end
      if not prev then
        by[r.id] = r
        out[#out + 1] = r
      end
    end
  end
  M.sort_rules(out)
  return out
end

-- ---------------------------------------------------------------------------
-- Positions
-- ---------------------------------------------------------------------------

--- yaml positions (table-keyed) -> {["Resources.X.Properties.Y[0]"] = {line=, col=}}
function M.position_map(value, pos)
  local map = {}
  if type(pos) ~= "table" or type(value) ~= "table" then return map end
  local seen = {}
  local function walk(t, p, depth)
    if depth > 1000 or seen[t] then return end
    seen[t] = true
    local info = pos[t]
    if type(info) ~= "table" then return end
    if type(info.keys) == "table" then
      for k, kp in pairs(info.keys) do
        local sub = p == "" and tostring(k) or (p .. "." .. tostring(k))
        map[sub] = kp
        local v = t[k]
        if type(v) == "table" then walk(v, sub, depth + 1) end
      end
    elseif type(info.items) == "table" then
      for i, ip in pairs(info.items) do
        if math.type(i) == "integer" then
          local sub = p .. "[" .. (i - 1) .. "]"
          map[sub] = ip
          local v = t[i]
          if type(v) == "table" then walk(v, sub, depth + 1) end
        end
      end
    end
  end
  walk(value, "", 0)
  return map
end

-- The position of path or of its nearest known ancestor.
local function locate(map, p)
  while p and p ~= "" do
    local hit = map[p]
    if hit then return hit end
    p = p:match("^(.*)%[%d+%]$") or p:match("^(.*)%.[^%.]*$")
  end
  return nil
end
M.locate = locate

-- ---------------------------------------------------------------------------
-- Suppressions
-- ---------------------------------------------------------------------------

local SECTIONS = { "lumu_nag", "cfn_nag" } -- finish() tests for both by index

local function is_list(t)
  return type(t) == "table" and getmetatable(t) ~= json.object_mt and (#t > 0 or next(t) == nil)
end

-- Parses Metadata of one resource (or of the template); appends problems.
-- Returns the list of valid suppressions {id=, reason=, source=}.
local function read_suppressions(meta, base, known, problems)
  local out = {}
  if type(meta) ~= "table" then return out end
  for i = 1, #SECTIONS do
    local section = SECTIONS[i]
    local s = meta[section]
    if s ~= nil then
      local sp = base .. "." .. section
      if type(s) ~= "table" or is_list(s) and next(s) ~= nil then
        problems[#problems + 1] = { path = sp, detail = "Metadata." .. section .. " must be a mapping with rules_to_suppress" }
      else
        for k in pairs(s) do
          if k ~= "rules_to_suppress" then
            local hint = require("lumu.cli").suggest(tostring(k), { "rules_to_suppress" })
            problems[#problems + 1] = { path = sp .. "." .. tostring(k),
              detail = "unknown key '" .. tostring(k) .. "' in Metadata." .. section
                .. (hint and " (did you mean 'rules_to_suppress'?)" or " (only rules_to_suppress is read)") }
          end
        end
        local list = s.rules_to_suppress
        local lp = sp .. ".rules_to_suppress"
        if list ~= nil and not is_list(list) then
          problems[#problems + 1] = { path = lp, detail = "rules_to_suppress must be a list of {id, reason}" }
        elseif list ~= nil then
          for i, e in ipairs(list) do
            local ep = lp .. "[" .. (i - 1) .. "]"
            if type(e) ~= "table" or is_list(e) then
              problems[#problems + 1] = { path = ep, detail = "a suppression must be a mapping with id and reason" }
            elseif type(e.id) ~= "string" or e.id == "" then
              problems[#problems + 1] = { path = ep, detail = "suppression without an id" }
            elseif type(e.reason) ~= "string" or not e.reason:find("%S") then
              problems[#problems + 1] = { path = ep, detail = "suppression of " .. e.id .. " has no reason" }
            elseif section == "lumu_nag" and not known.ids[e.id] then
              local hint = require("lumu.cli").suggest(e.id, known.list)
              problems[#problems + 1] = { path = ep .. ".id", detail = "unknown rule id '" .. e.id .. "'"
                .. (hint and (" (did you mean '" .. hint .. "'?)") or "") }
            else
              out[#out + 1] = { id = e.id, reason = e.reason, source = section, path = ep }
            end
          end
        end
      end
    end
  end
  return out
end

-- The suppression in list (from read_suppressions) that covers finding v
-- of rule, or nil.
local function suppression_for(v, rule, list)
  if rule.engine then return nil end
  for i = 1, #list do
    local s = list[i]
    if s.source == "lumu_nag" then
      if s.id == v.rule then return s end
    elseif rule.aliases then
      for _, a in ipairs(rule.aliases) do
        if a == s.id then return s end
      end
    end
  end
  return nil
end

-- ---------------------------------------------------------------------------
-- Scan
-- ---------------------------------------------------------------------------
-- A scan runs in two steps: the rules' checks (run_rules, raw findings) and
-- the verdict (finish: suppressions, F37, positions, order).  synth keeps the
-- raw findings of the rules lumu.gen.nag.annotate runs and hands them back
-- (opts.reuse), so no rule runs twice on a template.

local function sorted_names(t)
  local names = {}
  if type(t) ~= "table" then return names end
  for k in pairs(t) do
    if type(k) == "string" then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

-- rule type -> list of rules (engine rules and the rules in skip left out)
local function index_rules(rules, skip)
  local by = {}
  for _, r in ipairs(rules) do
    if not r.engine and not (skip and skip[r]) then
      for _, t in ipairs(r.types) do
        local list = by[t]
        if not list then
          list = {}
          by[t] = list
        end
        list[#list + 1] = r
      end
    end
  end
  return by
end

-- Compiled rule lists, cached per list (weak keys) and rebuilt when the list
-- no longer holds the same rules: synth scans hundreds of templates with one.
local compiled = setmetatable({}, { __mode = "k" })
local last -- the last one compiled: nag.rules() gives a new list of the same rules each time

-- Does compiled list c hold exactly the n rules of `rules`?
local function holds(c, rules, n)
  if not c or c.n ~= n then return false end
  local snap = c.snapshot
  for i = 1, n do
    if snap[i] ~= rules[i] then return false end
  end
  return true
end

--- compile(rules) -> {by_type=, by_id=, ids= (id set), list= (ids), order=
-- (id -> position in rule_lt order), without= (cache of indexes without
-- other rules)}.  Rules are treated as immutable once scanned.
function M.compile(rules)
  local n = #rules
  local c = compiled[rules]
  if holds(c, rules, n) then return c end
  if holds(last, rules, n) then
    compiled[rules] = last
    return last
  end
  c = { n = n, snapshot = table.move(rules, 1, n, 1, {}), by_type = index_rules(rules), by_id = {}, ids = {},
    list = {}, order = {}, without = setmetatable({}, { __mode = "k" }) }
  for i = 1, n do
    local r = rules[i]
    c.by_id[r.id] = r
    c.ids[r.id] = true
    c.list[i] = r.id
  end
  local sorted = {}
  for i = 1, n do
    local r = rules[i]
    if c.by_id[r.id] == r and c.order[r.id] == nil then
      c.order[r.id] = true
      sorted[#sorted + 1] = r
    end
  end
  M.sort_rules(sorted)
  for i, r in ipairs(sorted) do c.order[r.id] = i end
  compiled[rules] = c
  last = c
  return c
end

-- The subjects of a template in scan order: parameter names (sorted) and
-- the ids of resources with a Type (sorted).
local function subjects(template)
  local resources = type(template.Resources) == "table" and template.Resources or {}
  local ids = {}
  local names = sorted_names(resources)
  for i = 1, #names do
    local id = names[i]
    local res = resources[id]
    if type(res) == "table" and type(res.Type) == "string" then ids[#ids + 1] = id end
  end
  return { params = sorted_names(template.Parameters), resources = ids, by_id = resources }
end

-- Runs the checks of by_type (type -> rules) on every subject and appends
-- their findings to raw: {rule=, severity=, message=, resource=, type=,
-- path=, kind= "parameter"|"resource"}.  Raises when a check raises or
-- returns garbage.
local function run_rules(template, ctx, by_type, subj, raw)
  local function emit(rule, kind, name, typ, base, found)
    if found == nil then return end
    if type(found) ~= "table" then
      error(string.format("nag: rule %s (%s) returned a %s for %s (a list of violations expected)",
        rule.id, rule.source or "?", type(found), name), 0)
    end
    for _, f in ipairs(found) do
      if type(f) ~= "table" then
        error(string.format("nag: rule %s (%s) returned a violation that is not a table for %s",
          rule.id, rule.source or "?", name), 0)
      end
      local message = type(f.message) == "string" and f.message or rule.message
      if type(f.detail) == "string" and f.detail ~= "" then message = message .. ": " .. f.detail end
      raw[#raw + 1] = {
        rule = rule.id, severity = rule.severity, message = message, resource = name, type = typ,
        path = util.path_string(f.path or {}, base), kind = kind,
      }
    end
  end

  local function run(list, subject, name, typ, kind, base)
    for i = 1, #list do
      local rule = list[i]
      local ok, found = pcall(rule.check, subject, name, template, ctx)
      if not ok then
        error(string.format("nag: rule %s (%s) failed on %s: %s", rule.id, rule.source or "?", name,
          tostring(found)), 0)
      end
      if found ~= nil then emit(rule, kind, name, typ, base, found) end
    end
  end

  local prules = by_type.Parameter
  if prules then
    local params = subj.params
    for i = 1, #params do
      local name = params[i]
      run(prules, template.Parameters[name], name, "Parameter", "parameter", "Parameters." .. name)
    end
  end
  local star = by_type["*"]
  local ids = subj.resources
  for i = 1, #ids do
    local id = ids[i]
    local res = subj.by_id[id]
    local list = by_type[res.Type]
    if list or star then
      local base = "Resources." .. id
      if list then run(list, res, id, res.Type, "resource", base) end
      if star then run(star, res, id, res.Type, "resource", base) end
    end
  end
end

-- The verdict on raw findings: F37 for malformed suppressions, suppressions
-- applied (unless no_suppress), positions, order.  Builds new violation
-- tables (raw ones may be shared).
local function finish(template, raw, subj, c, known, opts)
  local filename, map = opts.filename, opts.map
  local sup_rule = c.by_id[M.SUPPRESSION_RULE.id]
  local found = table.move(raw, 1, #raw, 1, {})
  local function problem(kind, name, typ, pr)
    found[#found + 1] = { rule = sup_rule.id, severity = sup_rule.severity,
      message = sup_rule.message .. (pr.detail ~= "" and (": " .. pr.detail) or ""),
      resource = name, type = typ, path = pr.path, kind = kind }
  end
  local problems = {}
  local global = read_suppressions(template.Metadata, "Metadata", known, problems)
  if sup_rule then
    for _, pr in ipairs(problems) do problem("template", "Metadata", "Template", pr) end
  end
  local per = {}
  local ids = subj.resources
  for i = 1, #ids do
    local id = ids[i]
    local res = subj.by_id[id]
    local meta = res.Metadata
    -- only a Metadata holding a suppression section has anything to read
    if type(meta) == "table" and (meta[SECTIONS[1]] ~= nil or meta[SECTIONS[2]] ~= nil) then
      local rp = {}
      per[id] = read_suppressions(res.Metadata, "Resources." .. id .. ".Metadata", known, rp)
      if sup_rule then
        for _, pr in ipairs(rp) do problem("resource", id, res.Type, pr) end
      end
    end
  end

  -- order: by subject (template metadata, parameters, resources, each as
  -- scanned), then rule (failures first), then discovery order
  local prank, rrank = {}, {}
  local params = subj.params
  local np = #params
  for i = 1, np do prank[params[i]] = i end
  for i = 1, #ids do rrank[ids[i]] = np + i end
  local result = { violations = {}, suppressed = {}, rules = opts.rules, templates = 1, files = { filename } }
  -- one number per violation orders it: (subject rank, rule rank, discovery)
  local nfound, nrules = #found + 1, #c.list + 1
  local by_rank = {}
  local by_id, order = c.by_id, c.order
  local positions = map ~= nil and next(map) ~= nil
  local suppress = not opts.no_suppress
  local nglobal = #global
  for i = 1, #found do
    local f = found[i]
    local s
    if suppress then
      local rule = by_id[f.rule]
      local own = f.kind == "resource" and per[f.resource]
      if own then s = suppression_for(f, rule, own) end
      if not s and nglobal > 0 then s = suppression_for(f, rule, global) end
    end
    local pos = positions and locate(map, f.path) or nil
    local v = {
      rule = f.rule, severity = f.severity, message = f.message, file = filename, resource = f.resource,
      type = f.type, path = f.path, line = pos and pos.line or nil, column = pos and pos.col or nil,
      suppressed = s and { reason = s.reason, source = s.source, id = s.id } or nil,
    }
    local group = f.kind == "resource" and rrank[f.resource] or f.kind == "parameter" and prank[f.resource] or 0
    local r = (group * nrules + (order[f.rule] or 0)) * nfound + i
    by_rank[r] = v
    local list = s and result.suppressed or result.violations
    list[#list + 1] = r
  end
  for _, list in ipairs({ result.violations, result.suppressed }) do
    table.sort(list)
    for i = 1, #list do list[i] = by_rank[list[i]] end
  end
  return result
end

-- One scan with compiled rule sets (c: the rules to run, known: the ids
-- suppressions may name).
local function scan_compiled(c, known, rules, template, opts)
  local filename = opts.filename or "<template>"
  local map
  if type(opts.positions) == "table" then
    if opts.positions[template] ~= nil then
      map = M.position_map(template, opts.positions)
    else
      map = opts.positions
    end
  end
  local subj = subjects(template)
  local by_type, found = c.by_type, {}
  local reuse = opts.reuse
  if reuse then
    local rc = reuse.compiled or M.compile(reuse.rules)
    local idx = c.without[rc]
    if not idx then
      local skip = {}
      for _, r in ipairs(reuse.rules) do
        if c.by_id[r.id] == r then skip[r] = true end
      end
      idx = { by_type = index_rules(rules, skip), skip = skip }
      c.without[rc] = idx
    end
    for _, f in ipairs(reuse.findings) do
      local r = c.by_id[f.rule]
      if r and idx.skip[r] then found[#found + 1] = f end
    end
    by_type = idx.by_type
  end
  local ctx = util.context(template, { filename = filename })
  if reuse and reuse.ctx then util.share(ctx, reuse.ctx) end
  run_rules(template, ctx, by_type, subj, found)
  return finish(template, found, subj, c, known, { filename = filename, map = map, rules = rules,
    no_suppress = opts.no_suppress }), { rules = rules, compiled = c, findings = found, ctx = ctx }
end

--- scanner(rules [, all_rules]) -> function(template [, opts]) -> results, pass
-- Compiles the rule lists once for scanning many templates (the lists must
-- not change while it is used); opts as for scan without rules/all_rules.
function M.scanner(rules, all_rules)
  local c = M.compile(rules)
  local known = c
  if all_rules and all_rules ~= rules then known = M.compile(all_rules) end
  return function(template, opts)
    return scan_compiled(c, known, rules, template, opts or {})
  end
end

--- Scans one template table.  opts: filename, positions (yaml positions
-- table or a path map), rules (list), all_rules (the ids suppressions may
-- name; default rules), no_suppress, reuse = an earlier scan's second
-- result (pass) for this very template (the same resources, parameter
-- values and mappings; its Metadata may have changed): the findings of its
-- rules are taken over (those rules do not run again) and its context's
-- caches too.
-- -> {violations=, suppressed=, rules=, templates=1},
--    pass = {rules=, compiled=, findings= (raw, before suppressions), ctx=}
function M.scan(template, opts)
  opts = opts or {}
  return M.scanner(opts.rules or M.builtin(), opts.all_rules)(template, opts)
end

--- Merges scan results of several templates.
function M.merge(list)
  local out = { violations = {}, suppressed = {}, templates = 0, files = {} }
  local rule_lists, seen = {}, {}
  for _, r in ipairs(list) do
    for _, v in ipairs(r.violations or {}) do out.violations[#out.violations + 1] = v end
    for _, v in ipairs(r.suppressed or {}) do out.suppressed[#out.suppressed + 1] = v end
    for _, f in ipairs(r.files or {}) do out.files[#out.files + 1] = f end
    out.templates = out.templates + (r.templates or 1)
    if r.rules and not seen[r.rules] then -- templates scanned with one list: combined once
      seen[r.rules] = true
      rule_lists[#rule_lists + 1] = r.rules
    end
  end
  out.rules = M.combine(rule_lists) or (rule_lists[1] or {})
  return out
end

--- Counts: failures, warnings (unsuppressed), suppressed.
function M.counts(results)
  local f, w = 0, 0
  for _, v in ipairs(results.violations or {}) do
    if v.severity == "failure" then f = f + 1 else w = w + 1 end
  end
  return f, w, #(results.suppressed or {})
end

return M
