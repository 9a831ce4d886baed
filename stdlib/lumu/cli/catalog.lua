--- `lumu catalog up|terminate` (alias `cat`): mu's Service Catalog
-- "pipeline factory".
--
--   catalog up         (alias upsert) the catalog bucket, portfolio IAM,
--                      portfolio and one product stack per catalog pipeline
--                      (their version templates are uploaded first)
--   catalog terminate  (alias term) the same stacks, products first
local project = require "lumu.project"

local function stacks_of(s)
  local stacks, err, code = s:plan()
  if not stacks then return nil, err, code end
  local descs = project.pick.catalog(stacks, s.namespace)
  if #descs == 0 then return nil, s.name .. ": the configuration has no catalog", 1 end
  return descs
end

local function up(ctx, args, opts)
  local s, err, code = project.session(ctx, opts)
  if not s then return nil, err, code end
  if #args > 0 then return nil, s.name .. ": unexpected argument '" .. args[1] .. "'", 2 end
  local descs
  descs, err, code = stacks_of(s)
  if not descs then return nil, err, code end
  return s:up(descs)
end

local function terminate(ctx, args, opts)
  local s, err, code = project.session(ctx, opts)
  if not s then return nil, err, code end
  if #args > 0 then return nil, s.name .. ": unexpected argument '" .. args[1] .. "'", 2 end
  local descs
  descs, err, code = stacks_of(s)
  if not descs then return nil, err, code end
  return s:down(descs)
end

return project.group {
  name = "catalog",
  summary = "create or terminate the Service Catalog pipeline factory (mu's catalog)",
  subcommands = {
    { name = "up", aliases = { "upsert" }, run = up, usage = "lumu catalog up",
      summary = "create or update the portfolio and its products" },
    { name = "terminate", aliases = { "term" }, run = terminate, usage = "lumu catalog terminate",
      summary = "delete the products, the portfolio and their stacks" },
  },
}
