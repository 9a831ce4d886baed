--- Shared conventions of lumu's stack generators (mu-compatible).
--
-- Every generator module exposes `stacks(model, ctx) -> list of stack
-- descriptors` where ctx = {namespace=, version=} and a descriptor is
--   { name = "mu-vpc-acceptance",   -- common.stack_name(...)
--     kind = "vpc",                 -- mu's `mu:type` value
--     env = "acceptance" | nil, service = "my-service" | nil,
--     template = <plain table, e.g. cfn.template(...):to_table()>,
--     parameters = { Name = "string value", ... },  -- stack parameter values
--     tags = { ["mu:type"] = "vpc", ... },
--     depends = { "mu-iam-common", ... },           -- stacks that must exist first
--     description = "one line for humans" }
-- Stacks pass values as mu does: a producer exports `<stack>-<Output>`; a
-- consumer gets the export NAME as a parameter and reads it with
-- Fn::ImportValue of Fn::Sub "${Param}" (common.import).
local M = {}

--- mu's CreateStackName: <ns>-<type>-<name1>-<name2>...
function M.stack_name(ns, kind, ...)
  assert(type(ns) == "string" and ns ~= "", "stack_name: namespace expected")
  assert(type(kind) == "string" and kind ~= "", "stack_name: kind expected")
  local parts = { ns, kind }
  for i = 1, select("#", ...) do
    local p = select(i, ...)
    if p ~= nil and p ~= "" then parts[#parts + 1] = tostring(p) end
  end
  return table.concat(parts, "-")
end

--- The shared stacks of the Service Catalog (lumu.gen.catalog.names): here so
-- that placing stacks (lumu.gen.org) need not load the catalog generator.
function M.catalog_names(ns)
  return {
    bucket = M.stack_name(ns, "bucket", "servicecatalog"),
    iam = M.stack_name(ns, "iam", "portfolio", "common"),
    portfolio = M.stack_name(ns, "portfolio", "common"),
  }
end

--- The export name of a stack's output: <stack>-<Output>.
function M.export_name(stack, output)
  return stack .. "-" .. output
end

--- Fn::ImportValue of the export whose NAME is in parameter `param`.
function M.import(param)
  return { ["Fn::ImportValue"] = { ["Fn::Sub"] = "${" .. param .. "}" } }
end

local TAG_FIELDS = { "environment", "service", "provider", "revision", "repo", "name" }
local version = require "lumu.version"

--- Stack tags as mu sets them (mu:type, mu:environment, mu:service,
-- mu:provider, mu:revision, mu:repo) plus mu:version = lumu's version.
function M.tags(kind, fields)
  fields = fields or {}
  local t = { ["mu:type"] = kind, ["mu:version"] = version.version } -- read each time: tests swap it
  for i = 1, #TAG_FIELDS do
    local k = TAG_FIELDS[i]
    if fields[k] ~= nil then t["mu:" .. k] = tostring(fields[k]) end
  end
  return t
end

-- lumu.json's array marker and lumu.cfn.is_intrinsic, looked up once (the
-- helpers below run for every statement of every policy)
local array_mt, is_intrinsic

--- t marked as a JSON array (an empty one stays [] in the output).
function M.array(t)
  array_mt = array_mt or require("lumu.json").array_mt
  return setmetatable(t or {}, array_mt)
end

--- An IAM policy statement: Action (and a Resource list) as JSON arrays;
-- effect defaults to "Allow".
function M.statement(sid, actions, resources, condition, effect)
  local s = { Sid = sid, Effect = effect or "Allow", Action = M.array(actions), Resource = resources }
  is_intrinsic = is_intrinsic or require("lumu.cfn").is_intrinsic
  if type(resources) == "table" and not is_intrinsic(resources) then
    s.Resource = M.array(resources)
  end
  if condition then s.Condition = condition end
  return s
end

--- t:resource with a human description in Metadata["lumu:description"]
-- (shown by deploy progress).  opts are the resource attributes.
function M.resource(t, id, typ, description, props, opts)
  opts = opts or {}
  local meta = opts.Metadata or {}
  meta["lumu:description"] = description
  opts.Metadata = meta
  return t:resource(id, typ, props, opts)
end

--- Checks and returns a stack descriptor (raises on misuse).
function M.stack(d)
  assert(type(d) == "table", "stack: table expected")
  assert(type(d.name) == "string" and d.name:match("^[A-Za-z][A-Za-z0-9%-]*$") and #d.name <= 128,
    "stack: invalid stack name " .. tostring(d.name))
  assert(type(d.kind) == "string", "stack: kind expected")
  assert(type(d.template) == "table", "stack: template table expected")
  d.parameters = d.parameters or {}
  d.tags = d.tags or M.tags(d.kind, { environment = d.env, service = d.service })
  d.depends = d.depends or {}
  return d
end

return M
