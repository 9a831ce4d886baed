--- The Lua walk of lumu.cfn.check: every rule, with its messages.  Internal:
-- lumu.cfn.check loads it when the C fast path (lumu._cfn.check_ok) does not
-- vouch for a template, so a synth of clean templates never loads it.
local util = require "lumu.cfn.util"
util.own(debug.getinfo(1, "S").source)
local fn = require "lumu.cfn.intrinsics"

local show, join, kind, sorted_keys = util.show, util.join, util.kind, util.sorted_keys
local find, sub, byte = string.find, string.sub, string.byte

local M = {}

M.LIMITS = require("lumu.cfn.check").LIMITS -- check sets it before each walk

local function set_of(s)
  local t = {}
  for w in s:gmatch("%S+") do t[w] = true end
  return t
end

local TOP_KEYS = set_of("AWSTemplateFormatVersion Description Metadata Parameters Rules Mappings "
  .. "Conditions Transform Resources Outputs Hooks")
local TOP_LIST = sorted_keys(TOP_KEYS)
local RESOURCE_KEYS = set_of("Type Properties DependsOn Condition Metadata DeletionPolicy "
  .. "UpdateReplacePolicy UpdatePolicy CreationPolicy")
local RESOURCE_LIST = sorted_keys(RESOURCE_KEYS)
local PARAM_KEYS = set_of("Type Default AllowedValues AllowedPattern ConstraintDescription "
  .. "Description MaxLength MaxValue MinLength MinValue NoEcho")
local PARAM_LIST = sorted_keys(PARAM_KEYS)
local OUTPUT_KEYS = set_of("Description Value Export Condition")
local DELETION = set_of("Delete Retain RetainExceptOnCreate Snapshot")
local REPLACE = set_of("Delete Retain Snapshot")
local FUNCTIONS = set_of("Ref Fn::GetAtt Fn::Sub Fn::Join Fn::Select Fn::Split Fn::GetAZs Fn::If "
  .. "Fn::Equals Fn::And Fn::Or Fn::Not Fn::ImportValue Fn::FindInMap Fn::Base64 Fn::Cidr "
  .. "Fn::Length Fn::ToJsonString Fn::Transform")
local RULE_FUNCTIONS = set_of("Fn::Contains Fn::EachMemberEquals Fn::EachMemberIn Fn::RefAll "
  .. "Fn::ValueOf Fn::ValueOfAll")
local LANGEXT = "AWS::LanguageExtensions"
local POLICIES = { DeletionPolicy = DELETION, UpdateReplacePolicy = REPLACE }
local WALKED = { "Properties", "Metadata", "CreationPolicy", "UpdatePolicy", "DeletionPolicy",
  "UpdateReplacePolicy" }
local MIN_MAX = { "MinLength", "MaxLength", "MinValue", "MaxValue" }

-- Are all keys of t in the set `allowed`?
local function only_keys(t, allowed)
  for k in pairs(t) do
    if not allowed[k] then return false end
  end
  return true
end

-- ---------------------------------------------------------------------------
-- Context
-- ---------------------------------------------------------------------------

local function problem(ctx, path, message)
  ctx.problems[#ctx.problems + 1] = { path = path, message = message }
end

-- A section table, or {} after reporting a non-object.
local function section(ctx, tpl, name)
  local s = tpl[name]
  if s == nil then return {}, false end
  local k = kind(s)
  if k ~= "object" and k ~= "empty" then
    problem(ctx, name, "expected an object, got " .. show(s))
    return {}, false
  end
  return s, true
end

-- Sorted string names of a section ("params", "resources", "conditions",
-- "mappings", or "refs" = parameters and resources), computed once per check.
local function names(ctx, which)
  local cached = ctx.names[which]
  if cached then return cached end
  local list = {}
  local sources = which == "refs" and { ctx.params, ctx.resources } or { ctx[which] }
  for _, sec in ipairs(sources) do
    for k in pairs(sec) do
      if type(k) == "string" then list[#list + 1] = k end
    end
  end
  table.sort(list)
  ctx.names[which] = list
  return list
end

local function add_edge(edges, from, to)
  local e = edges[from]
  if not e then e = {}; edges[from] = e end
  e[to] = true
end

local function is_array(v)
  local k = kind(v)
  return k == "array" or k == "empty"
end

-- ---------------------------------------------------------------------------
-- Value walk: intrinsic functions and their reference targets
-- ---------------------------------------------------------------------------

local walk

-- The name of the function referencing a target, for messages: `where`, or
-- for a reference inside an Fn::Sub string (where == nil), "Fn::Sub '${ref}'"
-- (built only when there is a problem to report).
local function sub_where(where, ref)
  return where or ("Fn::Sub '${" .. ref .. "}'")
end

-- Is `name` a valid Ref target here; records the dependency edge.
local function ref_target(ctx, path, name, where, scope, ref)
  if fn.PSEUDO_SET[name] then return true end
  if ctx.params[name] ~= nil then return true end
  if ctx.resources[name] ~= nil then
    if scope == "condition" or scope == "rule" then
      where = sub_where(where, ref)
      problem(ctx, path, where .. ": " .. (scope == "rule" and "Rules" or "Conditions")
        .. " can only reference parameters, not resource '" .. name .. "'")
      return true
    end
    if ctx.current then add_edge(ctx.edges, ctx.current, name) end
    return true
  end
  if ctx.macro then return true end -- a macro (e.g. SAM) may create it
  local candidates = names(ctx, (scope == "condition" or scope == "rule") and "params" or "refs")
  where = sub_where(where, ref)
  problem(ctx, path, where .. ": unknown " .. (scope == "condition" and "parameter" or "parameter or resource")
    .. " '" .. name .. "'" .. util.did_you_mean(name, candidates))
  return false
end

local function getatt_target(ctx, path, res, where, scope, ref)
  if scope == "condition" or scope == "rule" then
    where = sub_where(where, ref)
    problem(ctx, path, where .. ": Fn::GetAtt cannot be used in " .. (scope == "rule" and "Rules" or "Conditions"))
    return
  end
  if ctx.resources[res] ~= nil then
    if ctx.current then add_edge(ctx.edges, ctx.current, res) end
    return
  end
  if ctx.macro then return end
  where = sub_where(where, ref)
  if ctx.params[res] ~= nil or fn.PSEUDO_SET[res] then
    problem(ctx, path, where .. ": '" .. res .. "' is not a resource")
  else
    problem(ctx, path, where .. ": unknown resource '" .. res .. "'"
      .. util.did_you_mean(res, names(ctx, "resources")))
  end
end

local function need_langext(ctx, path, what)
  if not ctx.transforms[LANGEXT] then
    problem(ctx, path, what .. " needs the " .. LANGEXT .. " transform")
  end
end

local function arity(ctx, path, name, arg, lo, hi, form)
  if kind(arg) ~= "array" or #arg < lo or #arg > (hi or lo) then
    problem(ctx, path, name .. " expects " .. form .. ", got " .. show(arg))
    return false
  end
  return true
end

local handlers = {}

handlers["Ref"] = function(ctx, path, arg, depth, scope)
  if type(arg) ~= "string" then
    problem(ctx, path, "Ref expects a name, got " .. show(arg))
    return
  end
  ref_target(ctx, path, arg, "Ref", scope)
end

handlers["Fn::GetAtt"] = function(ctx, path, arg, depth, scope)
  local res, attr
  if type(arg) == "string" then
    res, attr = arg:match("^([^.]+)%.(.+)$")
  elseif kind(arg) == "array" and #arg == 2 and type(arg[1]) == "string" then
    res, attr = arg[1], arg[2]
  end
  if not res or not (type(attr) == "string" or util.intrinsic(attr)) then
    problem(ctx, path, "Fn::GetAtt expects [resource, attribute], got " .. show(arg))
    return
  end
  getatt_target(ctx, path, res, "Fn::GetAtt", scope)
  if type(attr) == "table" then walk(ctx, attr, path, depth + 1, scope) end
end

handlers["Fn::Sub"] = function(ctx, path, arg, depth, scope)
  local s, vars
  if type(arg) == "string" then
    s = arg
  elseif kind(arg) == "array" and #arg == 2 and type(arg[1]) == "string"
      and (kind(arg[2]) == "object" or kind(arg[2]) == "empty") then
    s, vars = arg[1], arg[2]
  else
    problem(ctx, path, "Fn::Sub expects a string or [string, {variables}], got " .. show(arg))
    return
  end
  local refs = fn.sub_refs(s)
  for i = 1, #refs do
    local name = refs[i]
    if vars == nil or vars[name] == nil then
      -- "Res.Attr": name:match("^([^.]+)%.(.+)$")
      local dot = find(name, ".", 1, true)
      local res = dot and dot > 1 and dot < #name and sub(name, 1, dot - 1) or nil
      if res and not fn.PSEUDO_SET[name] then
        getatt_target(ctx, path, res, nil, scope, name)
      elseif name == "" then
        problem(ctx, path, "Fn::Sub: empty variable '${}'")
      else
        ref_target(ctx, path, name, nil, scope, name)
      end
    end
  end
  if vars ~= nil and next(vars) ~= nil then
    for _, k in ipairs(sorted_keys(vars)) do
      walk(ctx, vars[k], join(path, k), depth + 1, scope)
    end
  end
end

handlers["Fn::If"] = function(ctx, path, arg, depth, scope)
  if not arity(ctx, path, "Fn::If", arg, 3, 3, "[condition, value_if_true, value_if_false]") then return end
  local c = arg[1]
  if type(c) ~= "string" then
    problem(ctx, path, "Fn::If: condition name expected, got " .. show(c))
  elseif ctx.conditions[c] == nil then
    problem(ctx, path, "Fn::If: unknown condition '" .. c .. "'"
      .. util.did_you_mean(c, names(ctx, "conditions")))
  end
  walk(ctx, arg[2], path, depth + 1, scope)
  walk(ctx, arg[3], path, depth + 1, scope)
end

handlers["Fn::Join"] = function(ctx, path, arg, depth, scope)
  if not arity(ctx, path, "Fn::Join", arg, 2, 2, "[delimiter, list]") then return end
  if type(arg[1]) ~= "string" then problem(ctx, path, "Fn::Join: delimiter must be a string, got " .. show(arg[1])) end
  if not is_array(arg[2]) and not util.intrinsic(arg[2]) then
    problem(ctx, path, "Fn::Join: list expected, got " .. show(arg[2]))
  end
  walk(ctx, arg[2], path, depth + 1, scope)
end

handlers["Fn::Select"] = function(ctx, path, arg, depth, scope)
  if not arity(ctx, path, "Fn::Select", arg, 2, 2, "[index, list]") then return end
  local i = arg[1]
  if type(i) == "string" then i = math.tointeger(tonumber(i)) end
  if not util.intrinsic(arg[1]) and (math.tointeger(i) == nil or i < 0) then
    problem(ctx, path, "Fn::Select: index must be an integer >= 0, got " .. show(arg[1]))
  end
  if not is_array(arg[2]) and not util.intrinsic(arg[2]) then
    problem(ctx, path, "Fn::Select: list expected, got " .. show(arg[2]))
  elseif math.tointeger(i) and kind(arg[2]) == "array" and i >= #arg[2] then
    problem(ctx, path, "Fn::Select: index " .. i .. " is out of range for a list of " .. #arg[2])
  end
  walk(ctx, arg[1], path, depth + 1, scope)
  walk(ctx, arg[2], path, depth + 1, scope)
end

handlers["Fn::Split"] = function(ctx, path, arg, depth, scope)
  if not arity(ctx, path, "Fn::Split", arg, 2, 2, "[delimiter, string]") then return end
  if type(arg[1]) ~= "string" then problem(ctx, path, "Fn::Split: delimiter must be a string, got " .. show(arg[1])) end
  walk(ctx, arg[2], path, depth + 1, scope)
end

handlers["Fn::FindInMap"] = function(ctx, path, arg, depth, scope)
  if not arity(ctx, path, "Fn::FindInMap", arg, 3, 4, "[map, top_key, second_key]") then return end
  local m, top, second, default = arg[1], arg[2], arg[3], arg[4]
  if default ~= nil then
    need_langext(ctx, path, "Fn::FindInMap with a DefaultValue")
    walk(ctx, default, path, depth + 1, scope)
  end
  if type(m) == "string" then
    local map = ctx.mappings[m]
    if map == nil then
      problem(ctx, path, "Fn::FindInMap: unknown mapping '" .. m .. "'"
        .. util.did_you_mean(m, names(ctx, "mappings")))
    elseif default == nil and type(map) == "table" and type(top) == "string" then
      local inner = map[top]
      if inner == nil then
        problem(ctx, path, "Fn::FindInMap: mapping '" .. m .. "' has no key '" .. top .. "'")
      elseif type(inner) == "table" and type(second) == "string" and inner[second] == nil then
        problem(ctx, path, "Fn::FindInMap: mapping '" .. m .. "' has no key '" .. top .. "." .. second .. "'")
      end
    end
  else
    walk(ctx, m, path, depth + 1, scope)
  end
  walk(ctx, top, path, depth + 1, scope)
  walk(ctx, second, path, depth + 1, scope)
end

handlers["Fn::Cidr"] = function(ctx, path, arg, depth, scope)
  if not arity(ctx, path, "Fn::Cidr", arg, 3, 3, "[ip_block, count, cidr_bits]") then return end
  for i = 1, 3 do walk(ctx, arg[i], path, depth + 1, scope) end
end

handlers["Fn::GetAZs"] = function(ctx, path, arg, depth, scope)
  if type(arg) ~= "string" and not util.intrinsic(arg) then
    problem(ctx, path, "Fn::GetAZs expects a region name or Ref, got " .. show(arg))
  end
  walk(ctx, arg, path, depth + 1, scope)
end

handlers["Fn::Length"] = function(ctx, path, arg, depth, scope)
  need_langext(ctx, path, "Fn::Length")
  walk(ctx, arg, path, depth + 1, scope)
end

handlers["Fn::ToJsonString"] = function(ctx, path, arg, depth, scope)
  need_langext(ctx, path, "Fn::ToJsonString")
  walk(ctx, arg, path, depth + 1, scope)
end

-- Condition functions used inside values: allowed in Conditions and Rules.
local function cond_fn(name)
  return function(ctx, path, arg, depth, scope)
    if scope ~= "condition" and scope ~= "rule" then
      problem(ctx, path, name .. " can only be used in Conditions (use Fn::If and a condition)")
    end
    walk(ctx, arg, path, depth + 1, scope)
  end
end
handlers["Fn::Equals"] = cond_fn("Fn::Equals")
handlers["Fn::And"] = cond_fn("Fn::And")
handlers["Fn::Or"] = cond_fn("Fn::Or")
handlers["Fn::Not"] = cond_fn("Fn::Not")

local function intrinsic_call(ctx, k, arg, path, depth, scope)
  local h = handlers[k]
  if h then return h(ctx, path, arg, depth, scope) end
  if k:find("^Fn::ForEach::") then
    need_langext(ctx, path, "Fn::ForEach")
    return
  end
  if not FUNCTIONS[k] and not (scope == "rule" and RULE_FUNCTIONS[k]) then
    local all = sorted_keys(FUNCTIONS)
    problem(ctx, path, "unknown intrinsic function '" .. k .. "'" .. util.did_you_mean(k, all))
  end
  return walk(ctx, arg, path, depth + 1, scope)
end

function walk(ctx, v, path, depth, scope)
  if ctx.fast and util.use_c and util.core then
    -- lumu._cfn.scan finds the intrinsic function calls (or says that there
    -- is a problem, which the sorted walk then reports)
    local found = util.core.scan(v, depth, util.MAX_DEPTH)
    if not found then
      problem(ctx, path, "(walk again)")
      return
    end
    for i = 1, #found, 2 do
      local node = found[i]
      local k, arg = next(node)
      intrinsic_call(ctx, k, arg, path, found[i + 1], scope)
    end
    return
  end
  if type(v) ~= "table" then
    if v ~= nil and v == util.null then
      problem(ctx, path, "null values are not allowed in templates")
    end
    return
  end
  if depth > util.MAX_DEPTH then
    if not ctx.too_deep then
      ctx.too_deep = true
      problem(ctx, path, "nested too deeply (more than " .. util.MAX_DEPTH .. " levels)")
    end
    return
  end
  -- util.intrinsic(v), inlined
  local k, arg = next(v)
  if type(k) == "string" and next(v, k) == nil and (k == "Ref" or (byte(k, 1) == 70 and byte(k, 2) == 110
      and byte(k, 3) == 58 and byte(k, 4) == 58)) then
    return intrinsic_call(ctx, k, arg, path, depth, scope)
  end
  if ctx.fast then
    -- any order, no paths: a problem makes walk_top walk again, sorted
    local null = util.null
    for _, x in pairs(v) do
      if type(x) == "table" then
        walk(ctx, x, path, depth + 1, scope)
      elseif x ~= nil and x == null then
        problem(ctx, path, "null values are not allowed in templates")
      end
    end
    return
  end
  for _, key in ipairs(sorted_keys(v)) do
    walk(ctx, v[key], join(path, key), depth + 1, scope)
  end
end

-- walk() from the top of a section entry.  Most values have no problem:
-- walk them first in any order without building paths, and walk again,
-- in key order with paths, only when that found a problem (the second walk
-- reports the same problems, in the same order, as a single sorted walk).
local function walk_top(ctx, v, path, scope)
  if type(v) ~= "table" then return walk(ctx, v, path, 1, scope) end
  local problems = ctx.problems
  local n, too_deep = #problems, ctx.too_deep
  ctx.fast = true
  walk(ctx, v, path, 1, scope)
  ctx.fast = false
  if #problems > n then
    for i = #problems, n + 1, -1 do problems[i] = nil end
    ctx.too_deep = too_deep
    walk(ctx, v, path, 1, scope)
  end
end

-- ---------------------------------------------------------------------------
-- Conditions (expressions, references between conditions)
-- ---------------------------------------------------------------------------

local function walk_condition(ctx, v, path, depth, from)
  if depth > util.MAX_DEPTH then
    problem(ctx, path, "nested too deeply")
    return
  end
  local k, arg = util.intrinsic(v, true)
  if k == "Condition" then
    if type(arg) ~= "string" then
      problem(ctx, path, "Condition expects a condition name, got " .. show(arg))
    elseif ctx.conditions[arg] == nil then
      problem(ctx, path, "Condition: unknown condition '" .. arg .. "'"
        .. util.did_you_mean(arg, names(ctx, "conditions")))
    else
      add_edge(ctx.cond_edges, from, arg)
    end
  elseif k == "Fn::Equals" then
    if arity(ctx, path, "Fn::Equals", arg, 2, 2, "[value, value]") then
      walk(ctx, arg[1], path, depth + 1, "condition")
      walk(ctx, arg[2], path, depth + 1, "condition")
    end
  elseif k == "Fn::And" or k == "Fn::Or" then
    if arity(ctx, path, k, arg, 2, 10, "a list of 2 to 10 conditions") then
      for i, c in ipairs(arg) do walk_condition(ctx, c, join(path, i), depth + 1, from) end
    end
  elseif k == "Fn::Not" then
    if arity(ctx, path, k, arg, 1, 1, "a list of one condition") then
      walk_condition(ctx, arg[1], join(path, 1), depth + 1, from)
    end
  else
    problem(ctx, path, "expected a condition function (Fn::Equals, Fn::And, Fn::Or, Fn::Not, Condition), got "
      .. (k and ("'" .. k .. "'") or show(v)))
  end
end

-- ---------------------------------------------------------------------------
-- Cycles: strongly connected components (Tarjan), one path per cycle
-- ---------------------------------------------------------------------------

local function find_cycles(nodes, edges)
  local index, low, onstack, stack, sccs = {}, {}, {}, {}, {}
  local counter = 0
  local function targets(n)
    return edges[n] and sorted_keys(edges[n]) or {}
  end
  local NONE = {}
  local function any_targets(n)
    local e = edges[n]
    if not e then return NONE end
    local list = {}
    for k in pairs(e) do list[#list + 1] = k end
    return list
  end
  -- Tarjan's algorithm without recursion (dependency chains can be long).
  local function strong(root)
    local work = {}
    local function enter(v)
      counter = counter + 1
      index[v], low[v] = counter, counter
      stack[#stack + 1] = v
      onstack[v] = true
      work[#work + 1] = { v = v, ts = any_targets(v), i = 1 }
    end
    enter(root)
    while #work > 0 do
      local frame = work[#work]
      local v = frame.v
      local w = frame.ts[frame.i]
      if w ~= nil then
        frame.i = frame.i + 1
        if not index[w] then
          enter(w)
        elseif onstack[w] then
          low[v] = math.min(low[v], index[w])
        end
      else
        work[#work] = nil
        if low[v] == index[v] then
          local comp, size = {}, 0
          repeat
            local x = stack[#stack]
            stack[#stack] = nil
            onstack[x] = nil
            comp[x] = true
            size = size + 1
          until x == v
          if size > 1 or (edges[v] and edges[v][v]) then sccs[#sccs + 1] = comp end
        end
        local parent = work[#work]
        if parent then low[parent.v] = math.min(low[parent.v], low[v]) end
      end
    end
  end
  for _, n in ipairs(nodes) do
    if not index[n] then strong(n) end
  end
  -- A cycle path through each component, starting at its smallest member.
  local cycles = {}
  for _, comp in ipairs(sccs) do
    local members = sorted_keys(comp)
    local start = members[1]
    if #members > 1 or (edges[start] and edges[start][start]) then
      -- breadth-first search inside the component back to `start`
      local prev, queue, found = { [start] = false }, { start }, nil
      local qi = 1
      while qi <= #queue and not found do
        local v = queue[qi]
        qi = qi + 1
        for _, w in ipairs(targets(v)) do
          if w == start then found = v break end
          if comp[w] and prev[w] == nil then
            prev[w] = v
            queue[#queue + 1] = w
          end
        end
      end
      local back = {}
      local v = found
      while v and v ~= start do
        back[#back + 1] = v
        v = prev[v]
      end
      local path = { start }
      for i = #back, 1, -1 do path[#path + 1] = back[i] end
      path[#path + 1] = start
      cycles[#cycles + 1] = path
    end
  end
  table.sort(cycles, function(a, b) return a[1] < b[1] end)
  return cycles
end
M.find_cycles = find_cycles

-- "A -> B -> A", eliding the middle of very long cycles.
local function cycle_text(cyc)
  if #cyc <= 25 then return table.concat(cyc, " -> ") end
  return table.concat(cyc, " -> ", 1, 10) .. " -> ... (" .. (#cyc - 20) .. " more) -> "
    .. table.concat(cyc, " -> ", #cyc - 9, #cyc)
end

-- ---------------------------------------------------------------------------
-- Sections
-- ---------------------------------------------------------------------------

local function check_name(ctx, path, name, what)
  if type(name) ~= "string" then
    problem(ctx, path, what .. " names must be strings, got " .. show(name))
    return false
  end
  if not util.valid_name(name) then
    problem(ctx, path, what .. " name '" .. name .. "' must be 1-" .. M.LIMITS.name
      .. " alphanumeric characters (A-Za-z0-9)")
    return false
  end
  return true
end

local function count_limit(ctx, path, sec, limit, what)
  local n = 0
  for _ in pairs(sec) do n = n + 1 end
  if n > limit then
    problem(ctx, path, string.format("%d %s, more than the limit of %d", n, what, limit))
  end
  return n
end

local function object_entry(ctx, path, v, what)
  local k = kind(v)
  if k ~= "object" and k ~= "empty" then
    problem(ctx, path, what .. " must be an object, got " .. show(v))
    return false
  end
  return true
end

local function check_parameters(ctx, params)
  count_limit(ctx, "Parameters", params, M.LIMITS.parameters, "parameters")
  for _, name in ipairs(sorted_keys(params)) do
    local path = join("Parameters", name)
    local p = params[name]
    if check_name(ctx, path, name, "parameter") and object_entry(ctx, path, p, "a parameter") then
      if ctx.resources[name] ~= nil then
        problem(ctx, path, "'" .. name .. "' is both a parameter and a resource")
      end
      if not only_keys(p, PARAM_KEYS) then
        for _, k in ipairs(sorted_keys(p)) do
          if not PARAM_KEYS[k] then
            problem(ctx, join(path, k), "unknown parameter attribute " .. show(k) .. util.did_you_mean(k, PARAM_LIST))
          end
        end
      end
      if p.Type == nil then
        problem(ctx, path, "Type is required")
      elseif not util.valid_param_type(p.Type) then
        problem(ctx, join(path, "Type"), "unknown parameter type " .. show(p.Type))
      end
      local dv = p.Default
      if dv ~= nil and type(dv) ~= "string" and type(dv) ~= "number" and type(dv) ~= "boolean" then
        problem(ctx, join(path, "Default"), "expected a string or number, got " .. show(dv))
        dv = nil
      end
      local av = p.AllowedValues
      if av ~= nil and kind(av) ~= "array" then
        problem(ctx, join(path, "AllowedValues"), "expected a non-empty list, got " .. show(av))
        av = nil
      end
      local is_list = type(p.Type) == "string" and p.Type:find("List") ~= nil
      if dv ~= nil and av and not is_list then
        local found = false
        for _, a in ipairs(av) do
          if tostring(a) == tostring(dv) then found = true break end
        end
        if not found then
          local names = {}
          for i, a in ipairs(av) do names[i] = tostring(a) end
          problem(ctx, join(path, "Default"), "expected one of " .. table.concat(names, ", ") .. ", got " .. show(dv))
        end
      end
      for _, k in ipairs(MIN_MAX) do
        if p[k] ~= nil and tonumber(p[k]) == nil then
          problem(ctx, join(path, k), "expected a number, got " .. show(p[k]))
        end
      end
      if type(dv) == "string" and p.Type == "String" then
        local minl, maxl = tonumber(p.MinLength), tonumber(p.MaxLength)
        if minl and #dv < minl then
          problem(ctx, join(path, "Default"), "shorter than MinLength " .. minl)
        end
        if maxl and #dv > maxl then
          problem(ctx, join(path, "Default"), "longer than MaxLength " .. maxl)
        end
      end
      if dv ~= nil and p.Type == "Number" then
        local n = tonumber(dv)
        if n == nil then
          problem(ctx, join(path, "Default"), "expected a number, got " .. show(dv))
        else
          local minv, maxv = tonumber(p.MinValue), tonumber(p.MaxValue)
          if minv and n < minv then problem(ctx, join(path, "Default"), "less than MinValue " .. tostring(p.MinValue)) end
          if maxv and n > maxv then problem(ctx, join(path, "Default"), "greater than MaxValue " .. tostring(p.MaxValue)) end
        end
      end
      local ne = p.NoEcho
      if ne ~= nil and type(ne) ~= "boolean" and ne ~= "true" and ne ~= "false" then
        problem(ctx, join(path, "NoEcho"), "expected a boolean, got " .. show(ne))
      end
      if type(p.Description) == "string" and #p.Description > 4000 then
        problem(ctx, join(path, "Description"), "longer than 4000 bytes")
      end
    end
  end
end

local function check_mappings(ctx, mappings)
  count_limit(ctx, "Mappings", mappings, M.LIMITS.mappings, "mappings")
  for _, name in ipairs(sorted_keys(mappings)) do
    local path = join("Mappings", name)
    local m = mappings[name]
    if check_name(ctx, path, name, "mapping") and object_entry(ctx, path, m, "a mapping") then
      local n = count_limit(ctx, path, m, M.LIMITS.mapping_attributes, "mapping attributes")
      if n == 0 then problem(ctx, path, "a mapping needs at least one key") end
      for _, top in ipairs(sorted_keys(m)) do
        local p2 = join(path, top)
        if type(top) ~= "string" then
          problem(ctx, path, "mapping keys must be strings, got " .. show(top))
        elseif object_entry(ctx, p2, m[top], "a mapping entry") then
          for _, k in ipairs(sorted_keys(m[top])) do
            local v = m[top][k]
            local vk = kind(v)
            if type(k) ~= "string" then
              problem(ctx, p2, "mapping keys must be strings, got " .. show(k))
            elseif vk ~= "string" and vk ~= "number" and vk ~= "boolean" and vk ~= "array" and vk ~= "empty" then
              problem(ctx, join(p2, k), "mapping values must be strings, numbers or lists, got " .. show(v))
            end
          end
        end
      end
    end
  end
end

local function check_conditions(ctx, conditions)
  for _, name in ipairs(sorted_keys(conditions)) do
    local path = join("Conditions", name)
    if name:find("^Fn::ForEach::") then
      need_langext(ctx, path, "Fn::ForEach")
    elseif check_name(ctx, path, name, "condition") then
      walk_condition(ctx, conditions[name], path, 1, name)
    end
  end
  for _, cyc in ipairs(find_cycles(sorted_keys(conditions), ctx.cond_edges)) do
    problem(ctx, join("Conditions", cyc[1]), "circular condition reference: " .. cycle_text(cyc))
  end
end

local function check_depends_on(ctx, path, id, d)
  local list = d
  if type(d) == "string" then
    list = { d }
  elseif kind(d) ~= "array" then
    problem(ctx, path, "expected a resource name or a list of them, got " .. show(d))
    return
  end
  for i, target in ipairs(list) do
    local p = type(d) == "string" and path or join(path, i)
    if type(target) ~= "string" then
      problem(ctx, p, "expected a resource name, got " .. show(target))
    elseif target == id then
      problem(ctx, p, "'" .. id .. "' cannot depend on itself")
    elseif ctx.resources[target] == nil then
      if not ctx.macro then
        problem(ctx, p, "unknown resource '" .. target .. "'" .. util.did_you_mean(target, names(ctx, "resources")))
      end
    else
      add_edge(ctx.edges, id, target)
    end
  end
end

local function check_condition_ref(ctx, path, c)
  if type(c) ~= "string" then
    problem(ctx, path, "expected a condition name, got " .. show(c))
  elseif ctx.conditions[c] == nil then
    problem(ctx, path, "unknown condition '" .. c .. "'" .. util.did_you_mean(c, names(ctx, "conditions")))
  end
end

local function check_resources(ctx, resources)
  local n = count_limit(ctx, "Resources", resources, M.LIMITS.resources, "resources")
  if n == 0 then problem(ctx, "Resources", "a template needs at least one resource") end
  local ids = sorted_keys(resources)
  for _, id in ipairs(ids) do
    local path = join("Resources", id)
    local r = resources[id]
    if type(id) == "string" and id:find("^Fn::ForEach::") then
      need_langext(ctx, path, "Fn::ForEach")
    elseif check_name(ctx, path, id, "resource") and object_entry(ctx, path, r, "a resource") then
      ctx.current = id
      if not only_keys(r, RESOURCE_KEYS) then
        for _, k in ipairs(sorted_keys(r)) do
          if not RESOURCE_KEYS[k] then
            problem(ctx, join(path, k), "unknown resource attribute " .. show(k) .. util.did_you_mean(k, RESOURCE_LIST))
          end
        end
      end
      if r.Type == nil then
        problem(ctx, path, "Type is required")
      elseif not util.valid_resource_type(r.Type) then
        problem(ctx, join(path, "Type"), "invalid resource type " .. show(r.Type))
      end
      local props = r.Properties
      if props ~= nil and not util.intrinsic(props) then
        local k = kind(props)
        if k ~= "object" and k ~= "empty" then
          problem(ctx, join(path, "Properties"), "expected an object, got " .. show(props))
        end
      end
      if r.Condition ~= nil then check_condition_ref(ctx, join(path, "Condition"), r.Condition) end
      if r.DependsOn ~= nil then check_depends_on(ctx, join(path, "DependsOn"), id, r.DependsOn) end
      for key, allowed in pairs(POLICIES) do
        local v = r[key]
        if v ~= nil and not util.intrinsic(v) and not allowed[v] then
          problem(ctx, join(path, key), "expected one of " .. table.concat(sorted_keys(allowed), ", ")
            .. ", got " .. show(v))
        end
      end
      for _, key in ipairs(WALKED) do
        if r[key] ~= nil then walk_top(ctx, r[key], join(path, key), "resource") end
      end
      ctx.current = nil
    end
  end
  local nodes = {}
  for _, id in ipairs(ids) do
    if type(id) == "string" then nodes[#nodes + 1] = id end
  end
  for _, cyc in ipairs(find_cycles(nodes, ctx.edges)) do
    problem(ctx, join("Resources", cyc[1]), "circular dependency: " .. cycle_text(cyc))
  end
end

local function check_outputs(ctx, outputs)
  count_limit(ctx, "Outputs", outputs, M.LIMITS.outputs, "outputs")
  local exports = {}
  for _, name in ipairs(sorted_keys(outputs)) do
    local path = join("Outputs", name)
    local o = outputs[name]
    if type(name) == "string" and name:find("^Fn::ForEach::") then
      need_langext(ctx, path, "Fn::ForEach")
    elseif check_name(ctx, path, name, "output") and object_entry(ctx, path, o, "an output") then
      if not only_keys(o, OUTPUT_KEYS) then
        for _, k in ipairs(sorted_keys(o)) do
          if not OUTPUT_KEYS[k] then
            problem(ctx, join(path, k), "unknown output attribute " .. show(k)
              .. util.did_you_mean(k, sorted_keys(OUTPUT_KEYS)))
          end
        end
      end
      local v = o.Value
      if v == nil then
        problem(ctx, path, "Value is required")
      elseif type(v) == "table" and not util.intrinsic(v) then
        problem(ctx, join(path, "Value"), "expected a string or an intrinsic function, got " .. show(v))
      else
        walk_top(ctx, v, join(path, "Value"), "output")
      end
      local d = o.Description
      if d ~= nil and (type(d) ~= "string" or #d > M.LIMITS.description) then
        problem(ctx, join(path, "Description"), "expected a string of at most " .. M.LIMITS.description .. " bytes")
      end
      if o.Condition ~= nil then check_condition_ref(ctx, join(path, "Condition"), o.Condition) end
      local e = o.Export
      if e ~= nil then
        local ep = join(path, "Export")
        if kind(e) ~= "object" or e.Name == nil then
          problem(ctx, ep, "expected {Name = ...}, got " .. show(e))
        else
          walk_top(ctx, e.Name, join(ep, "Name"), "output")
          if type(e.Name) == "string" then
            if exports[e.Name] then
              problem(ctx, join(ep, "Name"), "export name '" .. e.Name .. "' is also used by output " .. exports[e.Name])
            end
            exports[e.Name] = name
          end
        end
      end
    end
  end
end

local function check_rules(ctx, rules)
  for _, name in ipairs(sorted_keys(rules)) do
    local path = join("Rules", name)
    local r = rules[name]
    if check_name(ctx, path, name, "rule") and object_entry(ctx, path, r, "a rule") then
      if kind(r.Assertions) ~= "array" then
        problem(ctx, join(path, "Assertions"), "expected a non-empty list of assertions")
      end
      walk_top(ctx, r, path, "rule")
    end
  end
end

-- ---------------------------------------------------------------------------
-- The walk
-- ---------------------------------------------------------------------------

--- walk(tpl, body, encode_err) -> problems, info: what check reports (body:
-- the JSON encoding, or nil and encode_err saying why there is none).
function M.walk(tpl, body, encode_err)
  local ctx = { problems = {}, edges = {}, cond_edges = {}, transforms = {}, names = {} }

  for _, k in ipairs(sorted_keys(tpl)) do
    if not TOP_KEYS[k] then
      problem(ctx, tostring(k), "unknown top-level section " .. show(k) .. util.did_you_mean(k, TOP_LIST))
    end
  end
  local v = tpl.AWSTemplateFormatVersion
  if v ~= nil and v ~= "2010-09-09" then
    problem(ctx, "AWSTemplateFormatVersion", "expected '2010-09-09', got " .. show(v))
  end
  local d = tpl.Description
  if d ~= nil and type(d) ~= "string" then
    problem(ctx, "Description", "expected a string, got " .. show(d))
  elseif d and #d > M.LIMITS.description then
    problem(ctx, "Description", string.format("%d bytes, more than the limit of %d", #d, M.LIMITS.description))
  end
  local tr = tpl.Transform
  if type(tr) == "string" then
    ctx.transforms[tr] = true
  elseif tr ~= nil and kind(tr) == "array" then
    for i, t in ipairs(tr) do
      if type(t) == "string" then ctx.transforms[t] = true
      elseif not (type(t) == "table" and t.Name) then
        problem(ctx, join("Transform", i), "expected a transform name, got " .. show(t))
      end
    end
  elseif tr ~= nil and not (type(tr) == "table" and tr.Name) then
    problem(ctx, "Transform", "expected a transform name or a list of them, got " .. show(tr))
  end
  for t in pairs(ctx.transforms) do
    if t ~= LANGEXT then ctx.macro = true end
  end

  ctx.params = section(ctx, tpl, "Parameters")
  local resources_ok
  ctx.resources, resources_ok = section(ctx, tpl, "Resources")
  ctx.conditions = section(ctx, tpl, "Conditions")
  ctx.mappings = section(ctx, tpl, "Mappings")
  local outputs = section(ctx, tpl, "Outputs")
  local rules = section(ctx, tpl, "Rules")
  section(ctx, tpl, "Metadata")
  if tpl.Resources == nil then problem(ctx, "Resources", "the Resources section is required") end

  check_parameters(ctx, ctx.params)
  check_mappings(ctx, ctx.mappings)
  check_conditions(ctx, ctx.conditions)
  check_rules(ctx, rules)
  if resources_ok then check_resources(ctx, ctx.resources) end
  check_outputs(ctx, outputs)

  -- Size: the body given, else the compact JSON encoding.
  local info = { needs_s3 = false }
  if encode_err ~= nil then
    problem(ctx, "", "the template cannot be encoded as JSON: " .. tostring(encode_err))
  end
  if body then
    info.size = #body
    info.needs_s3 = #body > M.LIMITS.body_direct
    if #body > M.LIMITS.body then
      problem(ctx, "", string.format("template body is %d bytes, more than the limit of %d (1 MB)",
        #body, M.LIMITS.body))
    end
  end

  return ctx.problems, info
end

return M
