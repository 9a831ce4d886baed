--- Template checks before deploy (documented in lumu.cfn): structure,
-- reference targets, dependency cycles, names and service limits.
local util = require "lumu.cfn.util"
util.own(debug.getinfo(1, "S").source)
local fn = require "lumu.cfn.intrinsics"

local show = util.show

local M = {}

M.LIMITS = {
  body_direct = 51200,  -- bytes in TemplateBody; above: upload to S3 (needs_s3)
  body = 1048576,       -- bytes of a template in S3 (1 MB)
  resources = 500,
  parameters = 200,
  outputs = 200,
  mappings = 200,
  mapping_attributes = 200,
  description = 1024,
  name = 255,
}

-- The rules in Lua (lumu.cfn.check_walk), loaded on first need.
local function walker()
  local w = require "lumu.cfn.check_walk"
  w.LIMITS = M.LIMITS
  return w
end

--- find_cycles(nodes, edges) -> cycles (lumu.cfn.check_walk.find_cycles)
function M.find_cycles(nodes, edges)
  return walker().find_cycles(nodes, edges)
end

-- What lumu._cfn.check_ok needs to know (read on each call: LIMITS may change).
local C_ENV = { pseudo = fn.PSEUDO_SET, limits = M.LIMITS, max_depth = util.MAX_DEPTH,
  valid_resource_type = util.valid_resource_type, valid_param_type = util.valid_param_type }

-- The result of check: problems (a JSON array) whose fields fall back to info.
local function result(problems, info, tpl, opts)
  if opts.schemas ~= nil then
    local sp = opts.schemas:check_template(tpl)
    for _, p in ipairs(sp) do problems[#problems + 1] = p end
  end
  return setmetatable(problems, { __jsontype = "array", __index = info }), info
end

--- check(template [, opts]) -> problems, info
function M.check(tpl, opts)
  if type(tpl) ~= "table" then util.argerr(1, "check", "template table expected, got " .. show(tpl)) end
  if opts ~= nil and type(opts) ~= "table" then util.argerr(2, "check", "table expected, got " .. show(opts)) end
  opts = opts or {}
  local body = opts.body
  if body ~= nil and type(body) ~= "string" then
    util.argerr(2, "check", "opts.body must be a string, got " .. show(body))
  end
  local encode_err -- body == nil: why the template has no JSON encoding
  if body == nil and util.json then
    local ok, s = pcall(util.json.encode, tpl)
    if ok then body = s else encode_err = s end
  end
  -- The common case, a template without problems, is recognised in C
  -- (lumu._cfn.check_ok); anything else is checked below, which alone
  -- writes the messages.
  local c_check = util.use_c and util.core and util.core.check_ok
  C_ENV.limits, C_ENV.max_depth = M.LIMITS, util.MAX_DEPTH
  if c_check and body and c_check(tpl, #body, C_ENV) then
    return result({}, { needs_s3 = #body > M.LIMITS.body_direct, size = #body }, tpl, opts)
  end
  local problems, info = walker().walk(tpl, body, encode_err)
  return result(problems, info, tpl, opts)
end

--- format(problems) -> "path: message" lines (one per problem, "\n"-joined)
function M.format(problems)
  local lines = {}
  for i, p in ipairs(problems) do
    lines[i] = (p.path ~= "" and (p.path .. ": ") or "") .. p.message
  end
  return table.concat(lines, "\n")
end

return M
