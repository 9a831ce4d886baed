--- Reading CloudFormation templates for `lumu nag` (internal; see lumu.nag).
local json = require "lumu.json"
local yaml = require "lumu.yaml"
local fs = require "lumu.fs"
local engine = require "lumu.nag.engine"

local M = {}

M.EXTENSIONS = { json = true, yaml = true, yml = true, template = true }

local function ext_of(path)
  return (path:match("%.([%w]+)$") or ""):lower()
end

function M.is_template_name(path)
  return M.EXTENSIONS[ext_of(path)] == true
end

--- A decoded value looks like a template: a mapping with a Resources mapping.
function M.is_template(v)
  return type(v) == "table" and getmetatable(v) ~= json.array_mt and type(v.Resources) == "table"
      and getmetatable(v.Resources) ~= json.array_mt
end

--- Parses template text.  -> template, position map | nil, "NAME:line:col: message"
function M.parse(text, name)
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end -- UTF-8 BOM
  local kind = ext_of(name)
  if kind == "template" or (kind ~= "json" and kind ~= "yaml" and kind ~= "yml") then
    kind = text:match("^%s*{") and "json" or "yaml"
  end
  if kind == "json" then
    local v, err = json.decode(text)
    if v == nil then return nil, name .. ":" .. err end
    if not M.is_template(v) then return v, {} end
    -- JSON is YAML: libyaml gives the positions (best effort)
    local ok, yv, ypos = pcall(yaml.load, text, { positions = true, filename = name })
    local map = (ok and yv ~= nil) and engine.position_map(yv, ypos) or {}
    return v, map
  end
  local v, pos = yaml.load(text, { positions = true, filename = name })
  if v == nil then return nil, pos end
  return v, engine.position_map(v, pos)
end

--- Reads and parses a template file.  -> template, map | nil, err
function M.file(path)
  local text, err = fs.read(path)
  if not text then return nil, err end
  return M.parse(text, path)
end

local SKIP_DIRS = { node_modules = true, lua_modules = true }

--- Template candidates under dir (recursive, sorted; hidden entries,
-- node_modules and lua_modules skipped).  -> list | nil, err
function M.find(dir)
  dir = dir:gsub("(.)/+$", "%1")
  local out = {}
  local ok, err = pcall(function()
    for p, typ in fs.walk(dir) do
      local rel = p:sub(#dir + 2)
      local hidden = ("/" .. rel):find("/%.") ~= nil
      local skipped = false
      for part in rel:gmatch("[^/]+") do
        if SKIP_DIRS[part] then skipped = true end
      end
      local file = typ == "file" or (typ == "link" and fs.isfile(p))
      if file and not hidden and not skipped and M.is_template_name(p) then out[#out + 1] = p end
    end
  end)
  if not ok then return nil, tostring(err) end
  table.sort(out)
  return out
end

return M
