--- mu's template, parameter and tag overrides (mu.md §5.10), on stack
-- descriptors (see lumu.gen.common).
--
-- local override = require "lumu.gen.override"
--
-- override.merge(dest, src [, path]) -> value | nil, err
--   mu's MapApply on plain tables (the result of cfn t:to_table() or decoded
--   JSON/YAML): dest is changed in place and returned.
--   * maps merge key by key, recursively; scalars replace;
--   * lists append (dest list .. src list);
--   * {["Fn::Replace"] = v} replaces the value outright (v may be a map or
--     a list, which then neither merges nor appends);
--   * {["Fn::Splice"] = {start, count, {items}}} removes `count` elements of
--     the dest list at 0-based `start` (clamped to its length) and inserts
--     the items there, deep-merging item i into the removed element i for
--     i < count (so {1, 1, {}} deletes the second element and
--     {0, 1, {{Key="x"}}} patches the first);
--   * a null value (json.null / yaml.null) deletes the key.
--   lumu departs from mu in two places, both where mu silently did nothing
--   useful: a map given for a scalar or list replaces it (mu ignored it), and
--   Fn::Replace / Fn::Splice inside a newly added subtree are resolved (mu
--   left them in the template, where CloudFormation rejects them).
--   Errors (returned, never raised): Fn::Splice that is not
--   [integer >= 0, integer >= 0, list] or targets a map; nesting deeper
--   than 200; tables that refer to themselves.  `path` (default "") prefixes
--   the dotted path in messages.
--
-- override.apply(desc, model [, seen]) -> diagnostics
--   Applies every model.templates, model.parameters and model.tags entry
--   whose pattern matches desc.name (config.stack_matches: Go regex ^key$),
--   in file order: templates merge into desc.template, then parameters set
--   desc.parameters[k] (they win over lumu's values), then tags set
--   desc.tags[k]; tags with empty values are dropped (as mu does).
--   Also: a template fragment that changes a parameter's Default also sets
--   desc.parameters[name] (else the value lumu passes would hide it);
--   a fragment resource (or parameter/output) without Type/Value that names
--   something the stack does not have is skipped with a warning (mu's
--   templates keep such resources behind false Conditions; lumu leaves them
--   out); a parameters entry naming a parameter the template does not
--   declare is an error (CloudFormation would reject the stack).
--   desc.overrides gets the list of applied kinds ("templates",
--   "parameters", "tags"); desc.override_entries the templates entries
--   applied, in order.  seen[entry] = true for every entry that matched
--   (for override.unmatched).
--   diagnostics: list of {severity="warning"|"error", where=, key=, message=}.
--
-- override.unmatched(model, seen) -> diagnostics   one warning per entry
--   that matched no stack.
-- override.format(d) -> "where: key: message" (one line)
local json = require "lumu.json"

local M = {}

local MAX_DEPTH = 200
local KINDS = { "templates", "parameters", "tags" }

local function config()
  return require "lumu.config"
end

local function is_null(v)
  return v == json.null
end

local function kind(v)
  if type(v) ~= "table" then return nil end
  return json.kind(v)
end

local function join(path, k)
  if math.type(k) == "integer" then return path .. "[" .. (k - 1) .. "]" end
  if path == "" then return tostring(k) end
  return path .. "." .. tostring(k)
end

local copy_clean

-- A Fn::Splice argument -> start, count, items | nil, err
local function splice_args(arg, path)
  if kind(arg) ~= "array" or #arg ~= 3 then
    return nil, path .. ": Fn::Splice needs [start, count, [items]]"
  end
  local start, count, items = arg[1], arg[2], arg[3]
  start, count = math.tointeger(start), math.tointeger(count)
  if not start or start < 0 or not count or count < 0 then
    return nil, path .. ": Fn::Splice start and count must be integers >= 0"
  end
  if kind(items) ~= "array" and not (type(items) == "table" and next(items) == nil) then
    return nil, path .. ": Fn::Splice items must be a list"
  end
  return start, count, items
end

-- Copies a value for insertion, resolving Fn::Replace / Fn::Splice markers.
copy_clean = function(v, path, depth, onpath)
  if type(v) ~= "table" or is_null(v) then return v end
  if depth > MAX_DEPTH then return nil, path .. ": nested more than " .. MAX_DEPTH .. " levels deep" end
  if onpath[v] then return nil, path .. ": table refers to itself" end
  if kind(v) == "object" then
    if v["Fn::Replace"] ~= nil then
      return copy_clean(v["Fn::Replace"], path, depth + 1, onpath)
    end
    if v["Fn::Splice"] ~= nil then
      local start, err, items = splice_args(v["Fn::Splice"], path)
      if not start then return nil, err end
      return copy_clean(items, path, depth + 1, onpath)
    end
  end
  onpath[v] = true
  local out = {}
  for k, x in pairs(v) do
    if not is_null(x) or kind(v) == "array" then
      local c, err = copy_clean(x, join(path, k), depth + 1, onpath)
      if err then onpath[v] = nil; return nil, err end
      out[k] = c
    end
  end
  onpath[v] = nil
  local mt = getmetatable(v)
  if mt == json.array_mt or mt == json.object_mt then
    setmetatable(out, mt)
  elseif kind(v) == "array" then
    setmetatable(out, json.array_mt)
  end
  return out
end

local merge_value

local function merge_map(dest, src, path, depth, onpath)
  if depth > MAX_DEPTH then return nil, path .. ": nested more than " .. MAX_DEPTH .. " levels deep" end
  if onpath[src] then return nil, path .. ": table refers to itself" end
  onpath[src] = true
  local keys = {}
  for k in pairs(src) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local sv = src[k]
    if is_null(sv) then
      dest[k] = nil
    else
      local v, err = merge_value(dest[k], sv, join(path, k), depth + 1, onpath)
      if err then onpath[src] = nil; return nil, err end
      dest[k] = v
    end
  end
  onpath[src] = nil
  return dest
end

merge_value = function(dest, src, path, depth, onpath)
  if depth > MAX_DEPTH then return nil, path .. ": nested more than " .. MAX_DEPTH .. " levels deep" end
  local sk = kind(src)
  if sk == "object" then
    local sp = src["Fn::Splice"]
    if sp ~= nil then
      local start, count, items = splice_args(sp, path)
      if not start then return nil, count end
      if dest == nil then return copy_clean(items, path, depth + 1, onpath) end
      if kind(dest) ~= "array" and not (type(dest) == "table" and next(dest) == nil) then
        return nil, path .. ": Fn::Splice needs a list here, the template has a " .. (kind(dest) or type(dest))
      end
      local n = #dest
      if start > n then start = n end
      local out = {}
      for i = 1, start do out[#out + 1] = dest[i] end
      for i = 1, #items do
        local item = items[i]
        if i <= count and start + i <= n then
          local v, err = merge_value(dest[start + i], item, join(path, start + i), depth + 1, onpath)
          if err then return nil, err end
          out[#out + 1] = v
        else
          local v, err = copy_clean(item, join(path, #out + 1), depth + 1, onpath)
          if err then return nil, err end
          out[#out + 1] = v
        end
      end
      for i = start + count + 1, n do out[#out + 1] = dest[i] end
      return setmetatable(out, json.array_mt)
    end
    if src["Fn::Replace"] ~= nil then
      return copy_clean(src["Fn::Replace"], path, depth + 1, onpath)
    end
    if kind(dest) == "object" then
      return merge_map(dest, src, path, depth, onpath)
    end
    return copy_clean(src, path, depth + 1, onpath)
  elseif sk == "array" then
    if kind(dest) == "array" then
      for i = 1, #src do
        local v, err = copy_clean(src[i], join(path, #dest + 1), depth + 1, onpath)
        if err then return nil, err end
        dest[#dest + 1] = v
      end
      return dest
    end
    return copy_clean(src, path, depth + 1, onpath)
  end
  return src
end

--- merge(dest, src [, path]) -> value | nil, err
function M.merge(dest, src, path)
  return merge_value(dest, src, path or "", 0, {})
end

-- ---------------------------------------------------------------------------
-- Applying the entries of a model
-- ---------------------------------------------------------------------------

local function diag(list, severity, entry, key, message)
  list[#list + 1] = { severity = severity, where = entry and entry.where, key = key, message = message }
end

local function entry_key(kindname, entry)
  return kindname .. "[" .. string.format("%q", entry.stack) .. "]"
end

-- Sections whose entries need a field to exist on their own.
local NEEDS = { Resources = "Type", Parameters = "Type", Outputs = "Value", Conditions = nil }

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- Runs a Lua override function on desc.template: fn(template, descriptor)
-- edits it in place or returns a replacement table.  Errors name the
-- override's call site.  Returns false on error.
local function apply_edit(desc, entry, diags)
  local key = entry_key("templates", entry)
  local ok, res = pcall(entry.edit, desc.template, desc)
  if not ok then
    diag(diags, "error", entry, key, "override function failed on " .. desc.name .. ": " .. tostring(res))
    return false
  end
  if res ~= nil then
    if type(res) ~= "table" then
      diag(diags, "error", entry, key, "override function must edit the template or return a table, got "
        .. type(res))
      return false
    end
    desc.template = res
  end
  return true
end

-- Merges one templates fragment into desc.template; returns false on error.
local function apply_template(desc, entry, diags)
  if entry.edit then return apply_edit(desc, entry, diags) end
  local frag = entry.fragment
  local key = entry_key("templates", entry)
  if type(frag) ~= "table" then
    diag(diags, "error", entry, key, "expected a template fragment (a mapping)")
    return false
  end
  local tpl = desc.template
  -- Work on a shallow copy of the fragment so skipped entries do not touch it.
  local work = {}
  for _, sec in ipairs(sorted_keys(frag)) do
    local v = frag[sec]
    local need = NEEDS[sec]
    if need and kind(v) == "object" then
      local base = tpl[sec]
      local kept = setmetatable({}, json.object_mt)
      for _, id in ipairs(sorted_keys(v)) do
        local item = v[id]
        local exists = type(base) == "table" and base[id] ~= nil
        local whole = type(item) == "table" and item["Fn::Replace"] or item
        if not exists and not is_null(item) and (type(whole) ~= "table" or whole[need] == nil) then
          local what = sec == "Resources" and "resource" or sec == "Parameters" and "parameter" or "output"
          diag(diags, "warning", entry, key .. "." .. sec .. "." .. tostring(id), string.format(
            "stack %s has no %s '%s' and the override gives no %s, so it is ignored",
            desc.name, what, tostring(id), need))
        else
          kept[id] = item
        end
      end
      work[sec] = kept
    else
      work[sec] = v
    end
  end
  -- Parameter defaults before the merge, to see what the fragment changed.
  local before = {}
  if type(tpl.Parameters) == "table" then
    for name, p in pairs(tpl.Parameters) do
      if type(p) == "table" then before[name] = p.Default end
    end
  end
  local _, err = M.merge(tpl, work, "")
  if err then
    diag(diags, "error", entry, key, err)
    return false
  end
  if type(tpl.Parameters) == "table" then
    for _, name in ipairs(sorted_keys(tpl.Parameters)) do
      local p = tpl.Parameters[name]
      if type(p) == "table" and p.Default ~= before[name] and p.Default ~= nil and type(p.Default) ~= "table" then
        local d = p.Default
        if type(d) == "boolean" then d = tostring(d) end
        if math.type(d) == "integer" then d = string.format("%d", d) end
        if type(d) == "number" then d = tostring(d) end
        if desc.parameters[name] ~= nil then desc.parameters[name] = d end
      end
    end
  end
  return true
end

local function declared_parameters(tpl)
  local names = {}
  for k in pairs(type(tpl.Parameters) == "table" and tpl.Parameters or {}) do names[#names + 1] = k end
  table.sort(names)
  return names
end

--- apply(desc, model [, seen]) -> diagnostics
function M.apply(desc, model, seen)
  assert(type(desc) == "table" and type(desc.name) == "string", "apply: stack descriptor expected")
  assert(type(model) == "table", "apply: model expected")
  seen = seen or {}
  local diags = {}
  local applied = {}
  local matches = config().stack_matches
  desc.parameters = desc.parameters or {}
  desc.tags = desc.tags or {}
  for _, kindname in ipairs(KINDS) do
    for _, entry in ipairs(model[kindname] or {}) do
      if matches(entry, desc.name) then
        seen[entry] = true
        applied[kindname] = true
        if kindname == "templates" then
          desc.override_entries = desc.override_entries or {}
          table.insert(desc.override_entries, entry)
          apply_template(desc, entry, diags)
        elseif kindname == "parameters" then
          local params = desc.template.Parameters
          for _, k in ipairs(sorted_keys(entry.values or {})) do
            if type(params) ~= "table" or params[k] == nil then
              local names = declared_parameters(desc.template)
              diag(diags, "error", entry, entry_key("parameters", entry) .. "." .. k, string.format(
                "stack %s has no parameter '%s'%s", desc.name, k,
                #names > 0 and (" (its parameters: " .. table.concat(names, ", ") .. ")") or ""))
            else
              desc.parameters[k] = tostring(entry.values[k])
            end
          end
        else
          for k, v in pairs(entry.values or {}) do desc.tags[k] = tostring(v) end
        end
      end
    end
  end
  for k, v in pairs(desc.tags) do
    if v == "" then desc.tags[k] = nil end
  end
  local kinds = {}
  for _, k in ipairs(KINDS) do
    if applied[k] then kinds[#kinds + 1] = k end
  end
  desc.overrides = kinds
  return diags
end

--- unmatched(model, seen) -> diagnostics
function M.unmatched(model, seen)
  local diags = {}
  for _, kindname in ipairs(KINDS) do
    for _, entry in ipairs(model[kindname] or {}) do
      if not seen[entry] then
        diag(diags, "warning", entry, entry_key(kindname, entry),
          "matches no generated stack, so it is not applied")
      end
    end
  end
  return diags
end

--- format(d) -> one line
function M.format(d)
  local parts = {}
  if d.where and d.where ~= "" then parts[#parts + 1] = d.where end
  if d.key and d.key ~= "" then parts[#parts + 1] = d.key end
  parts[#parts + 1] = d.message
  return (table.concat(parts, ": "):gsub("[\r\n]+%s*", " "))
end

return M
