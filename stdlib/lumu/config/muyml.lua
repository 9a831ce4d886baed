--- The mu.yml front end of lumu.config (internal).
--
-- parse(text, {filename=, getenv=}) -> doc (see lumu.config.build)
--   1. `${env:NAME}` is replaced line by line before parsing, as mu does.
--      An unset NAME is an error naming line and column (mu would silently
--      substitute an empty string); on a line that is only a comment it is
--      replaced by "" without complaint.  A variable set to "" is fine.
--   2. The text is parsed with lumu.yaml (positions on), so every problem
--      found later can name "file:line:col".
--   3. `templates`, `parameters` and `tags` become ordered override entries
--      (file order).
-- Besides mu's `service:` (one service), `services:` (a list) is accepted.
-- Never raises on bad input; problems go to doc.problems.
local M = {}

local MAX_LINE_VARS = 1000

-- Replaces ${env:NAME}; returns text, problems.
function M.substitute(text, filename, getenv)
  local problems = {}
  local out = {}
  local lineno = 0
  local pos = 1
  local len = #text
  while pos <= len do
    local nl = text:find("\n", pos, true)
    local line = text:sub(pos, nl and nl or len)
    lineno = lineno + 1
    pos = (nl or len) + 1
    if line:find("${env:", 1, true) then
      local comment = line:match("^%s*#") ~= nil
      local count = 0
      line = line:gsub("()%${env:([^}\n]*)}", function(col, name)
        count = count + 1
        if count > MAX_LINE_VARS then return nil end
        local value = name ~= "" and getenv(name) or nil
        if value == nil then
          if not comment then
            problems[#problems + 1] = {
              where = string.format("%s:%d:%d", filename, lineno, col), path = "",
              message = name == "" and "empty variable name in ${env:}"
                or string.format("environment variable %s is not set (used as ${env:%s})", name, name),
              severity = "error",
            }
          end
          return ""
        end
        return tostring(value) -- a function's result is used literally
      end)
    end
    out[#out + 1] = line
  end
  return table.concat(out), problems
end

local function yaml_problem(msg, filename)
  local where, message = tostring(msg):match("^(.-:%d+:%d+): (.*)$")
  if not where then where, message = filename, tostring(msg) end
  return { where = where, path = "", message = "YAML syntax: " .. message, severity = "error" }
end

--- parse(text, opts) -> doc
function M.parse(text, opts)
  local yaml = require "lumu.yaml"
  local filename = opts.filename or "mu.yml"
  local getenv = opts.getenv or os.getenv
  local doc = {
    file = filename, kind = "yaml", dir = opts.dir, overrides = { templates = {}, parameters = {}, tags = {} },
  }
  local substituted, problems = M.substitute(text, filename, getenv)
  doc.problems = problems
  local value, pos = yaml.load(substituted, { filename = filename, positions = true })
  if value == nil then
    problems[#problems + 1] = yaml_problem(pos, filename)
    doc.root = {}
    return doc
  end
  pos = pos or {}
  local function locate(tbl, key)
    local p = type(tbl) == "table" and pos[tbl]
    if not p then return nil end
    local kp = key ~= nil and ((p.keys and p.keys[key]) or (p.items and p.items[key])) or nil
    local at = kp or p
    return string.format("%s:%d:%d", filename, at.line or 0, at.col or 0)
  end
  doc.locate = locate
  doc.root = value
  if value == yaml.null then doc.root = {} end
  doc.root_where = locate(value) or filename
  if type(value) == "table" and getmetatable(value) == yaml.object_mt then
    for _, kind in ipairs({ "templates", "parameters", "tags" }) do
      local m = value[kind]
      if m ~= nil and m ~= yaml.null then
        if type(m) ~= "table" or getmetatable(m) ~= yaml.object_mt then
          problems[#problems + 1] = {
            where = locate(value, kind), path = kind, severity = "error",
            message = "expected a mapping of stack name pattern to "
              .. (kind == "templates" and "template fragment" or kind == "tags" and "tags" or "parameters")
              .. ", got " .. (type(m) == "table" and "a list" or require("lumu.config.schema").quote(m)),
          }
        else
          local keys = {}
          for k in pairs(m) do keys[#keys + 1] = k end
          local p = pos[m] and pos[m].keys or {}
          table.sort(keys, function(a, b)
            local pa, pb = p[a], p[b]
            if pa and pb and pa.line ~= pb.line then return pa.line < pb.line end
            if pa and pb and pa.col ~= pb.col then return pa.col < pb.col end
            return tostring(a) < tostring(b)
          end)
          for _, k in ipairs(keys) do
            table.insert(doc.overrides[kind], {
              stack = k, value = m[k], where = locate(m, k) or filename,
              path = kind .. string.format("[%q]", tostring(k)),
            })
          end
        end
      end
    end
  end
  return doc
end

return M
