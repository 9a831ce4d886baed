--- fuzz_xml driver: lumu.xml parse (both whitespace modes) and the query
-- helpers on what it returns; escape -> parse round trip of the text.
local xml = require "lumu.xml"

local function walk(el, depth)
  if type(el.tag) ~= "string" then error("element without a tag") end
  if type(el.attr) ~= "table" then error("element without attr") end
  for i, name in ipairs(el.attr) do
    if type(el.attr[name]) ~= "string" then error("attribute " .. i .. " has no value") end
  end
  for _, c in ipairs(el) do
    if type(c) == "table" then walk(c, depth + 1)
    elseif type(c) ~= "string" then error("child of type " .. type(c)) end
  end
end

return function(s)
  for _, strip in ipairs({ true, false }) do
    local root, err = xml.parse(s, { strip_whitespace = strip })
    if root == nil then
      if type(err) ~= "string" or not err:find("^%d+:%d+: ") then
        error("parse error without line:col: " .. tostring(err))
      end
    else
      walk(root, 1)
      local text = xml.text(root)
      local all = xml.find_all(root, "*")
      if #all > 0 and xml.find(root, "*") ~= all[1] then error("find and find_all disagree") end
      for _ in xml.children(root) do end
      local doc = "<a>" .. xml.escape(text) .. "</a>"
      local back, berr = xml.parse(doc, { strip_whitespace = false })
      if back == nil then error("escaped text does not parse: " .. berr) end
      -- a raw CR (from &#13;) reads back as LF: XML end-of-line handling
      if xml.text(back) ~= text:gsub("\r\n?", "\n") then error("escape round trip changed the text") end
    end
  end
end
