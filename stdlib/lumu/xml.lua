--- XML parsing into plain Lua tables (LOM style), and helpers to query them.
--
-- xml.parse(s [, opts]) -> root element | nil, "line:col: message"
--   Parses a whole document (UTF-8, or UTF-16/ISO-8859-1 as declared; names
--   and text come back UTF-8).  An element is a table
--     { tag = "Name",
--       attr = { name = "value", ...; [1] = "name", ... },  -- [i]: names in document order
--       child1, child2, ... }                                -- strings or elements
--   Adjacent text (including CDATA sections and entity references) is merged
--   into one string; comments and processing instructions are dropped.
--   Namespace prefixes stay in tag and attribute names as written
--   ("s3:Key"), and xmlns/xmlns:* declarations stay in `attr`.
--   opts.strip_whitespace (default true): drop whitespace-only text children
--   of elements that also have element children (indentation); an element
--   holding only whitespace keeps it.
--   Malformed XML, elements nested more than 512 deep, external entities and
--   entity-expansion bombs return nil, err ("3:14: mismatched tag").
--   A non-string `s` or a bad `opts` raises.
--
-- xml.text(el) -> string
--   All text in el's subtree, concatenated in document order ("" if none).
--   A string argument is returned as is.
-- xml.find(el, path) -> element | nil
--   First descendant matching path, a "/"-separated list of tag names
--   starting at el's children ("Result/Stacks/member"); "*" matches any tag.
--   The empty path "" returns el itself.
-- xml.find_all(el, path) -> { element, ... }   every match, in document order
-- xml.children(el [, tag]) -> iterator over el's child elements (only those
--   named tag, if given): `for child in xml.children(el, "member") do`.
-- xml.escape(s) -> s with & < > " ' replaced by entity references.
local core = require "lumu._xml"

local M = {}

local function argerror(n, fname, msg)
  error("bad argument #" .. n .. " to '" .. fname .. "' (" .. msg .. ")", 3)
end

function M.parse(s, opts)
  if type(s) ~= "string" then argerror(1, "parse", "string expected, got " .. type(s)) end
  local strip = true
  if opts ~= nil then
    if type(opts) ~= "table" then argerror(2, "parse", "table expected, got " .. type(opts)) end
    if opts.strip_whitespace ~= nil then strip = opts.strip_whitespace and true or false end
  end
  return core.parse(s, strip)
end

local function check_el(el, fname)
  if type(el) ~= "table" or type(el.tag) ~= "string" then
    argerror(1, fname, "element expected, got " .. type(el))
  end
end

local function collect_text(el, out)
  for _, c in ipairs(el) do
    if type(c) == "string" then
      out[#out + 1] = c
    elseif type(c) == "table" then
      collect_text(c, out)
    end
  end
end

function M.text(el)
  if type(el) == "string" then return el end
  check_el(el, "text")
  local out = {}
  collect_text(el, out)
  return table.concat(out)
end

local function split_path(path, fname)
  if type(path) ~= "string" then argerror(2, fname, "string expected, got " .. type(path)) end
  local segs = {}
  if path == "" then return segs end
  for seg in (path .. "/"):gmatch("([^/]*)/") do
    if seg == "" then argerror(2, fname, "empty step in path " .. string.format("%q", path)) end
    segs[#segs + 1] = seg
  end
  return segs
end

-- Depth-first search along segs from el; calls found(match) for each match
-- in document order and stops when it returns true.
local function walk(el, segs, i, found)
  if i > #segs then return found(el) end
  local want = segs[i]
  for _, c in ipairs(el) do
    if type(c) == "table" and (want == "*" or c.tag == want) then
      if walk(c, segs, i + 1, found) then return true end
    end
  end
  return false
end

function M.find(el, path)
  check_el(el, "find")
  local segs = split_path(path, "find")
  local result
  walk(el, segs, 1, function(m) result = m; return true end)
  return result
end

function M.find_all(el, path)
  check_el(el, "find_all")
  local segs = split_path(path, "find_all")
  local out = {}
  walk(el, segs, 1, function(m) out[#out + 1] = m; return false end)
  return out
end

function M.children(el, tag)
  check_el(el, "children")
  if tag ~= nil and type(tag) ~= "string" then argerror(2, "children", "string expected, got " .. type(tag)) end
  local i = 0
  return function()
    while true do
      i = i + 1
      local c = el[i]
      if c == nil then return nil end
      if type(c) == "table" and (tag == nil or c.tag == tag) then return c end
    end
  end
end

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&apos;" }
function M.escape(s)
  if type(s) ~= "string" then argerror(1, "escape", "string expected, got " .. type(s)) end
  return (s:gsub("[&<>\"']", ESC))
end

return M
