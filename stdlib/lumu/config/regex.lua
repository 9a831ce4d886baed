--- A small RE2-subset regular expression matcher for mu's stack-name keys.
--
-- mu compiles each `templates`, `parameters` and `tags` key as the Go regex
-- `^key$` and matches it against stack names.  Lua patterns cannot express
-- alternation or groups, so this module implements the subset those keys use:
--
--   literals, `.`, `[...]`/`[^...]` (ranges, `\d \w \s` inside), escapes
--   `\d \D \w \W \s \S` and `\<punct>`, groups `(...)` and `(?:...)`,
--   alternation `|`, quantifiers `* + ? {n} {n,} {n,m}` (a trailing `?`
--   for laziness is accepted: with a whole-string match it does not change
--   the result), anchors `^` and `$`.
--
-- Not supported (compile error): backreferences, lookaround, named groups,
-- flags `(?i)`, Unicode classes `\p{..}`, POSIX `[[:alpha:]]`.
--
-- local regex = require "lumu.config.regex"
-- local re, err = regex.compile("mu-(vpc|environment)-.*")
--   -- re | nil, "message"; never raises on bad input
-- re:match("mu-vpc-prod")  --> true   (whole string, like Go's ^(?:key)$)
-- re.source                --> "mu-(vpc|environment)-.*"
-- re.lua_pattern           --> Lua pattern with the same meaning, or nil
--                              when the regex needs groups/alternation/{n}
-- regex.to_lua_pattern(src) --> pattern | nil
--
-- Matching is backtracking with a step budget (STEP_LIMIT); a regex that
-- exceeds it on some input simply does not match that input.
local M = {}

local STEP_LIMIT = 200000
local MAX_SOURCE = 1024
local MAX_REPEAT = 1000

-- Character-class predicates for escapes.
local function is_digit(c) return c >= 48 and c <= 57 end
local function is_word(c)
  return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c == 95
end
local function is_space(c) return c == 32 or (c >= 9 and c <= 13) end

local ESCAPE_CLASS = {
  d = function(c) return is_digit(c) end,
  D = function(c) return not is_digit(c) end,
  w = function(c) return is_word(c) end,
  W = function(c) return not is_word(c) end,
  s = function(c) return is_space(c) end,
  S = function(c) return not is_space(c) end,
}
local ESCAPE_CHAR = { n = 10, t = 9, r = 13, f = 12, v = 11 }

-- ---------------------------------------------------------------------------
-- Parser: source -> AST
--   {k="char", c=byte} {k="any"} {k="set", neg=bool, items={...}}
--   {k="cls", f=fn, e="d"} {k="bol"} {k="eol"} {k="cat", list} {k="alt", list}
--   {k="rep", node, min, max (nil = inf)} {k="group", node}
-- ---------------------------------------------------------------------------

local Parser = {}
Parser.__index = Parser

local function perr(p, msg)
  error({ regex_error = string.format("%s at offset %d", msg, p.i) }, 0)
end

function Parser:peek() return self.s:byte(self.i) end
function Parser:eof() return self.i > #self.s end
function Parser:next()
  local c = self.s:byte(self.i)
  self.i = self.i + 1
  return c
end

function Parser:parse_alt(depth)
  if depth > 50 then perr(self, "groups nested too deeply") end
  local alts = { self:parse_cat(depth) }
  while not self:eof() and self:peek() == 124 do -- |
    self:next()
    alts[#alts + 1] = self:parse_cat(depth)
  end
  if #alts == 1 then return alts[1] end
  return { k = "alt", list = alts }
end

function Parser:parse_cat(depth)
  local list = {}
  while not self:eof() do
    local c = self:peek()
    if c == 124 or c == 41 then break end -- | )
    local atom = self:parse_atom(depth)
    atom = self:parse_quant(atom)
    list[#list + 1] = atom
  end
  return { k = "cat", list = list }
end

function Parser:parse_escape_in_set()
  local e = self:next()
  if not e then perr(self, "trailing backslash") end
  local ch = string.char(e)
  if ESCAPE_CLASS[ch] then return { k = "cls", f = ESCAPE_CLASS[ch], e = ch } end
  if ESCAPE_CHAR[ch] then return { k = "char", c = ESCAPE_CHAR[ch] } end
  if is_word(e) then perr(self, "unsupported escape \\" .. ch) end
  return { k = "char", c = e }
end

function Parser:parse_set()
  -- after '['
  local set = { k = "set", neg = false, items = {} }
  if self:peek() == 94 then -- ^
    set.neg = true
    self:next()
  end
  local first = true
  while true do
    if self:eof() then perr(self, "missing ]") end
    local c = self:next()
    if c == 93 and not first then break end -- ]
    first = false
    local item
    if c == 92 then
      item = self:parse_escape_in_set()
    elseif c == 91 and self:peek() == 58 then -- [:
      perr(self, "POSIX classes like [[:alpha:]] are not supported")
    else
      item = { k = "char", c = c }
    end
    if item.k == "char" and self:peek() == 45 and self.s:byte(self.i + 1) and self.s:byte(self.i + 1) ~= 93 then
      self:next() -- '-'
      local hi = self:next()
      if hi == 92 then
        local h = self:parse_escape_in_set()
        if h.k ~= "char" then perr(self, "bad range") end
        hi = h.c
      end
      if hi < item.c then perr(self, "bad range") end
      item = { k = "range", lo = item.c, hi = hi }
    end
    set.items[#set.items + 1] = item
  end
  return set
end

function Parser:parse_atom(depth)
  local c = self:next()
  if c == 40 then -- (
    if self:peek() == 63 then -- ?
      if self.s:byte(self.i + 1) == 58 then
        self.i = self.i + 2
      else
        perr(self, "only (?:...) groups are supported")
      end
    end
    local inner = self:parse_alt(depth + 1)
    if self:eof() or self:next() ~= 41 then perr(self, "missing )") end
    return { k = "group", node = inner }
  elseif c == 91 then
    return self:parse_set()
  elseif c == 46 then
    return { k = "any" }
  elseif c == 94 then
    return { k = "bol" }
  elseif c == 36 then
    return { k = "eol" }
  elseif c == 92 then
    local e = self:next()
    if not e then perr(self, "trailing backslash") end
    local ch = string.char(e)
    if ESCAPE_CLASS[ch] then return { k = "cls", f = ESCAPE_CLASS[ch], e = ch } end
    if ESCAPE_CHAR[ch] then return { k = "char", c = ESCAPE_CHAR[ch] } end
    if is_word(e) then perr(self, "unsupported escape \\" .. ch) end
    return { k = "char", c = e }
  elseif c == 42 or c == 43 or c == 63 then
    self.i = self.i - 1
    perr(self, "missing argument to repetition operator " .. string.char(c))
  elseif c == 123 and self.s:sub(self.i):match("^%d+,?%d*}") then
    self.i = self.i - 1
    perr(self, "missing argument to repetition operator {")
  end
  return { k = "char", c = c }
end

function Parser:parse_quant(atom)
  while not self:eof() do
    local c = self:peek()
    local min, max
    if c == 42 then min, max = 0, nil
    elseif c == 43 then min, max = 1, nil
    elseif c == 63 then min, max = 0, 1
    elseif c == 123 then
      local a, b, len
      local rest = self.s:sub(self.i)
      local m1, m2 = rest:match("^{(%d+),(%d*)}")
      if m1 then
        a, b = tonumber(m1), (m2 ~= "" and tonumber(m2) or nil)
        len = #m1 + #m2 + 3
      else
        m1 = rest:match("^{(%d+)}")
        if not m1 then return atom end -- a literal '{'
        a, b, len = tonumber(m1), tonumber(m1), #m1 + 2
      end
      if a > MAX_REPEAT or (b and b > MAX_REPEAT) then perr(self, "repeat count too large") end
      if b and b < a then perr(self, "bad repeat range") end
      self.i = self.i + len - 1
      min, max = a, b
    else
      return atom
    end
    self:next()
    if atom.k == "rep" or atom.k == "bol" or atom.k == "eol" then
      perr(self, "invalid nested repetition operator")
    end
    if not self:eof() and self:peek() == 63 then self:next() end -- lazy: same for full match
    atom = { k = "rep", node = atom, min = min, max = max }
  end
  return atom
end

-- ---------------------------------------------------------------------------
-- Matcher: continuation-passing backtracking over the AST.
-- m(node, s, i, k) -> bool, where k(i) continues with the rest.
-- ---------------------------------------------------------------------------

local function set_has(set, c)
  local hit = false
  for _, it in ipairs(set.items) do
    if it.k == "char" then
      if it.c == c then hit = true break end
    elseif it.k == "range" then
      if c >= it.lo and c <= it.hi then hit = true break end
    elseif it.f(c) then
      hit = true
      break
    end
  end
  if set.neg then return not hit end
  return hit
end

local function single(node, c)
  local k = node.k
  if k == "char" then return c == node.c end
  if k == "any" then return c ~= 10 end
  if k == "set" then return set_has(node, c) end
  if k == "cls" then return node.f(c) end
  return nil
end

local function run(ast, s)
  local steps = 0
  local m
  local function step()
    steps = steps + 1
    if steps > STEP_LIMIT then error({ regex_budget = true }, 0) end
  end
  m = function(node, i, k)
    step()
    local kind = node.k
    if kind == "cat" then
      local list = node.list
      local function go(j, pos)
        if j > #list then return k(pos) end
        return m(list[j], pos, function(p) return go(j + 1, p) end)
      end
      return go(1, i)
    elseif kind == "alt" then
      for _, alt in ipairs(node.list) do
        if m(alt, i, k) then return true end
      end
      return false
    elseif kind == "group" then
      return m(node.node, i, k)
    elseif kind == "bol" then
      return i == 1 and k(i)
    elseif kind == "eol" then
      return i == #s + 1 and k(i)
    elseif kind == "rep" then
      local inner, min, max = node.node, node.min, node.max
      -- greedy; guard against empty iterations looping forever
      local function rep(count, pos)
        step()
        if (max == nil or count < max) then
          local ok = m(inner, pos, function(p)
            if p == pos then return false end -- empty iteration: stop
            return rep(count + 1, p)
          end)
          if ok then return true end
        end
        if count >= min then return k(pos) end
        -- min not reached and inner can only match empty: allow empty matches
        return m(inner, pos, function(p) return p == pos and rep(min, p) end)
      end
      return rep(0, i)
    else
      local c = s:byte(i)
      if c and single(node, c) then return k(i + 1) end
      return false
    end
  end
  local ok, res = pcall(m, ast, 1, function(p) return p == #s + 1 end)
  if not ok then
    if type(res) == "table" and res.regex_budget then return false end
    if type(res) == "string" and res:find("stack overflow", 1, true) then return false end
    error(res, 0)
  end
  return res
end

-- ---------------------------------------------------------------------------
-- Translation to a Lua pattern (when it has the same meaning).
-- ---------------------------------------------------------------------------

local LUA_CLASS = { d = "%d", D = "%D", w = "[%w_]", W = "[^%w_]", s = "%s", S = "%S" }
local LUA_CLASS_IN_SET = { d = "%d", w = "%w_", s = "%s" }

local function lua_char(c)
  local ch = string.char(c)
  if ch:match("[%^%$%(%)%%%.%[%]%*%+%-%?]") then return "%" .. ch end
  if c < 32 or c > 126 then return nil end
  return ch
end

local function lua_set_char(c)
  local ch = string.char(c)
  if ch:match("[%^%]%%%-%[]") then return "%" .. ch end
  if c < 32 or c > 126 then return nil end
  return ch
end

local function lua_single(node)
  if node.k == "char" then return lua_char(node.c) end
  if node.k == "any" then return "." end -- '.' excludes \n in RE2; stack names have none
  if node.k == "cls" then return LUA_CLASS[node.e] end
  if node.k == "set" then
    local parts = { "[", node.neg and "^" or "" }
    for _, it in ipairs(node.items) do
      if it.k == "char" then
        local ch = lua_set_char(it.c)
        if not ch then return nil end
        parts[#parts + 1] = ch
      elseif it.k == "range" then
        local lo, hi = lua_set_char(it.lo), lua_set_char(it.hi)
        if not lo or not hi or #lo > 1 or #hi > 1 then return nil end
        parts[#parts + 1] = lo .. "-" .. hi
      else
        local cls = LUA_CLASS_IN_SET[it.e]
        if not cls then return nil end
        parts[#parts + 1] = cls
      end
    end
    parts[#parts + 1] = "]"
    return table.concat(parts)
  end
  return nil
end

local function to_lua(ast)
  if ast.k ~= "cat" then return nil end
  local out = { "^" }
  for idx, node in ipairs(ast.list) do
    if node.k == "bol" then
      if idx ~= 1 then return nil end
    elseif node.k == "eol" then
      if idx ~= #ast.list then return nil end
    elseif node.k == "rep" then
      local one = lua_single(node.node)
      if not one then return nil end
      if node.min == 0 and node.max == nil then out[#out + 1] = one .. "*"
      elseif node.min == 1 and node.max == nil then out[#out + 1] = one .. "+"
      elseif node.min == 0 and node.max == 1 then out[#out + 1] = one .. "?"
      else return nil end
    else
      local one = lua_single(node)
      if not one then return nil end
      out[#out + 1] = one
    end
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

-- ---------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------

local Regex = {}
Regex.__index = Regex

function Regex:match(s)
  if type(s) ~= "string" then return false end
  return run(self.ast, s)
end

Regex.__tostring = function(self) return "regex(" .. self.source .. ")" end

local function parse(src)
  if type(src) ~= "string" then return nil, "expected a string" end
  if #src > MAX_SOURCE then return nil, "regular expression too long" end
  local p = setmetatable({ s = src, i = 1 }, Parser)
  local ok, ast = pcall(function()
    local a = p:parse_alt(0)
    if not p:eof() then perr(p, "unexpected )") end
    return a
  end)
  if not ok then
    if type(ast) == "table" and ast.regex_error then return nil, ast.regex_error end
    error(ast, 0)
  end
  return ast
end

--- compile(src) -> regex | nil, message
function M.compile(src)
  local ast, err = parse(src)
  if not ast then return nil, err end
  return setmetatable({ source = src, ast = ast, lua_pattern = to_lua(ast) }, Regex)
end

--- to_lua_pattern(src) -> Lua pattern equivalent to Go's ^(?:src)$, or nil.
function M.to_lua_pattern(src)
  local ast = parse(src)
  return ast and to_lua(ast) or nil
end

return M
