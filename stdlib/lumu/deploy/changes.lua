--- lumu.deploy.changes: change set results as plain tables, and the diff text.
--
-- local changes = require "lumu.deploy.changes"
--
-- changes.normalize(list) -> changes
--   list: DescribeChangeSet's Changes.  Each change:
--   { action = "Add"|"Modify"|"Remove"|"Import"|"Dynamic", logical_id=,
--     physical_id=, resource_type=, replacement = "True"|"False"|
--     "Conditional"|nil, scope = {"Properties", "Tags", ...},
--     details = { {attribute=, name=, path= "/Properties/X/0/Y" (the
--                  service's Path, else /<attribute>/<name>),
--                  recreation = "Never"|"Conditionally"|"Always",
--                  evaluation=, source=, causing=} ... },
--     nested = true for an AWS::CloudFormation::Stack resource }
-- changes.from_template(template) -> changes   every resource as an "Add"
--   (a new stack whose change set cannot be made yet), sorted by logical id
-- changes.no_changes(reason) -> bool   a FAILED change set that only means
--   "nothing to change" (CloudFormation's two wordings)
-- changes.missing_export(reason) -> bool   "No export named X found."
-- changes.counts(changes) -> {add=, modify=, remove=, replace=}
-- changes.format(name, plan [, opts]) -> { lines }
--   plan = {action=, changes=, note=, status=}; opts.color (ANSI),
--   opts.max (lines per stack, default unlimited).  The first line is
--   "<name>: <what>", then one line per resource ("+ Add", "~ Modify",
--   "- Remove") with its type and replacement, then one indented line per
--   changed property path.
local M = {}

local function s(v)
  if v == nil then return nil end
  if type(v) == "table" then return nil end
  return tostring(v)
end

function M.normalize(list)
  local out = {}
  for _, c in ipairs(type(list) == "table" and list or {}) do
    local rc = type(c) == "table" and (c.ResourceChange or c) or nil
    if type(rc) == "table" then
      local details = {}
      for _, d in ipairs(rc.Details or {}) do
        local t = d.Target or {}
        local path = s(t.Path)
        if not path and s(t.Attribute) then
          -- models before the Path member: the attribute and the property name
          path = "/" .. s(t.Attribute) .. (s(t.Name) and ("/" .. s(t.Name)) or "")
        end
        details[#details + 1] = { attribute = s(t.Attribute), name = s(t.Name), path = path,
          recreation = s(t.RequiresRecreation), evaluation = s(d.Evaluation), source = s(d.ChangeSource),
          causing = s(d.CausingEntity) }
      end
      local scope = {}
      for _, x in ipairs(rc.Scope or {}) do scope[#scope + 1] = tostring(x) end
      out[#out + 1] = { action = s(rc.Action), logical_id = s(rc.LogicalResourceId),
        physical_id = s(rc.PhysicalResourceId), resource_type = s(rc.ResourceType),
        replacement = s(rc.Replacement), scope = scope, details = details,
        nested = rc.ResourceType == "AWS::CloudFormation::Stack" or nil }
    end
  end
  return out
end

function M.from_template(template)
  local out, ids = {}, {}
  for id in pairs(type(template) == "table" and template.Resources or {}) do ids[#ids + 1] = id end
  table.sort(ids)
  for _, id in ipairs(ids) do
    local r = template.Resources[id]
    out[#out + 1] = { action = "Add", logical_id = id, resource_type = type(r) == "table" and s(r.Type) or nil,
      scope = {}, details = {} }
  end
  return out
end

function M.no_changes(reason)
  reason = tostring(reason or "")
  return reason:find("didn't contain changes", 1, true) ~= nil
      or reason:find("No updates are to be performed", 1, true) ~= nil
end

function M.missing_export(reason)
  return tostring(reason or ""):find("No export named", 1, true) ~= nil
end

function M.counts(list)
  local c = { add = 0, modify = 0, remove = 0, replace = 0 }
  for _, ch in ipairs(list or {}) do
    if ch.action == "Add" or ch.action == "Import" then
      c.add = c.add + 1
    elseif ch.action == "Remove" then
      c.remove = c.remove + 1
    else
      c.modify = c.modify + 1
      if ch.replacement == "True" then c.replace = c.replace + 1 end
    end
  end
  return c
end

local COLORS = { green = "\27[32m", yellow = "\27[33m", red = "\27[31m", bold = "\27[1m", dim = "\27[2m" }

local function paint(opts, color, text)
  if opts and opts.color then return COLORS[color] .. text .. "\27[0m" end
  return text
end

local SIGN = { Add = { "+", "green" }, Import = { "+", "green" }, Remove = { "-", "red" },
               Modify = { "~", "yellow" }, Dynamic = { "~", "yellow" } }

function M.summary(plan)
  local c = M.counts(plan.changes)
  local parts = {}
  if c.add > 0 then parts[#parts + 1] = c.add .. " to add" end
  if c.modify > 0 then
    parts[#parts + 1] = c.modify .. " to modify" .. (c.replace > 0 and (" (" .. c.replace .. " replaced)") or "")
  end
  if c.remove > 0 then parts[#parts + 1] = c.remove .. " to remove" end
  return table.concat(parts, ", ")
end

function M.format(name, plan, opts)
  opts = opts or {}
  local lines = {}
  local what = plan.note
  if not what then
    local act = plan.action or "update"
    if plan.status == "no changes" then
      what = "no changes"
    elseif act == "create" then
      local n = #(plan.changes or {})
      what = "new stack (" .. n .. " resource" .. (n == 1 and "" or "s") .. ")"
    else
      what = act .. " (" .. M.summary(plan) .. ")"
    end
  end
  lines[1] = paint(opts, "bold", name) .. ": " .. what
  local width = 0
  for _, ch in ipairs(plan.changes or {}) do
    width = math.max(width, #(ch.logical_id or ""))
  end
  width = math.min(width, 40)
  for _, ch in ipairs(plan.changes or {}) do
    if opts.max and #lines >= opts.max then
      lines[#lines + 1] = "  ... " .. (#plan.changes - (#lines - 1)) .. " more"
      break
    end
    local sign = SIGN[ch.action] or { "?", "yellow" }
    local line = "  " .. paint(opts, sign[2], sign[1] .. " " .. string.format("%-7s", ch.action or "?"))
      .. " " .. string.format("%-" .. width .. "s", ch.logical_id or "?") .. "  " .. (ch.resource_type or "")
    if ch.action == "Modify" or ch.action == "Dynamic" then
      if ch.replacement == "True" then
        line = line .. "  " .. paint(opts, "red", "REPLACEMENT")
      elseif ch.replacement == "Conditional" then
        line = line .. "  " .. paint(opts, "yellow", "may be replaced")
      end
    end
    lines[#lines + 1] = line
    for _, d in ipairs(ch.details or {}) do
      local path = d.path or (d.attribute and ("/" .. d.attribute .. (d.name and ("/" .. d.name) or ""))) or "?"
      local why = {}
      if d.recreation == "Always" then why[#why + 1] = "requires replacement"
      elseif d.recreation == "Conditionally" then why[#why + 1] = "may require replacement" end
      if d.source == "ParameterReference" and d.causing then why[#why + 1] = "parameter " .. d.causing
      elseif (d.source == "ResourceReference" or d.source == "ResourceAttribute") and d.causing then
        why[#why + 1] = "from " .. d.causing
      elseif d.evaluation == "Dynamic" then why[#why + 1] = "dynamic" end
      lines[#lines + 1] = "      " .. path .. (#why > 0 and ("  (" .. table.concat(why, ", ") .. ")") or "")
    end
  end
  return lines
end

return M
