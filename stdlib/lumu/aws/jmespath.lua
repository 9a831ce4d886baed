--- lumu.aws.jmespath: the JMESPath subset the AWS models use (waiter
-- acceptors' `argument`, paginators' output tokens / result keys /
-- more_results), evaluated over the Lua tables lumu.aws returns.
--
-- local jmespath = require "lumu.aws.jmespath"
--
-- jmespath.compile(expr) -> compiled             raises "jmespath: <expr>: <why>"
-- jmespath.search(expr | compiled, data) -> value | nil
--
-- Supported: identifiers (bare and "quoted"), sub-expressions (a.b), index
-- ([0], [-1]), slices ([1:3], [::-1]), list projections ([*]), flatten
-- ([]), object projections (*), filters ([?expr]), pipes (|), or (||), and
-- (&&), not (!), comparisons (== != < <= > >=), parentheses, current node
-- (@), literals (`json`), raw strings ('text'), multi-select lists ([a, b])
-- and hashes ({k: a}), and the functions abs, contains, ends_with, join,
-- keys, length, max, min, not_null, reverse, sort, starts_with, sum,
-- to_number, to_string, type, values.
-- Lists and objects are told apart by lumu.json's marker metatables
-- (results of lumu.aws carry them), else by their keys; json.null and nil
-- are JMESPath null.  Truthiness: false, null, "", [] and {} are false.
-- Evaluation never raises for data of the wrong type (the result is nil),
-- except for function calls with invalid argument types.
local json = require "lumu.json"

local M = {}

local NULL = json.null
local ARRAY_MT, OBJECT_MT = json.array_mt, json.object_mt

-- ---------------------------------------------------------------------------
-- Lexer
-- ---------------------------------------------------------------------------

local SIMPLE = {
  ["."] = "dot", ["*"] = "star", ["]"] = "rbracket", [","] = "comma", [":"] = "colon",
  ["@"] = "current", ["("] = "lparen", [")"] = "rparen", ["{"] = "lbrace", ["}"] = "rbrace",
}

local function lex(expr)
  local toks = {}
  local i, n = 1, #expr
  local function fail(msg) error({ jmespath = true, pos = i, msg = msg }, 0) end
  while i <= n do
    local c = expr:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c:match("[%a_]") then
      local s, e = expr:find("^[%w_]+", i)
      toks[#toks + 1] = { t = "ident", v = expr:sub(s, e), pos = i }
      i = e + 1
    elseif c:match("%d") or (c == "-" and expr:sub(i + 1, i + 1):match("%d")) then
      local s, e = expr:find("^%-?%d+", i)
      toks[#toks + 1] = { t = "number", v = math.tointeger(tonumber(expr:sub(s, e))), pos = i }
      i = e + 1
    elseif c == "[" then
      local nx = expr:sub(i + 1, i + 1)
      if nx == "?" then
        toks[#toks + 1] = { t = "filter", pos = i }; i = i + 2
      elseif nx == "]" then
        toks[#toks + 1] = { t = "flatten", pos = i }; i = i + 2
      else
        toks[#toks + 1] = { t = "lbracket", pos = i }; i = i + 1
      end
    elseif SIMPLE[c] then
      toks[#toks + 1] = { t = SIMPLE[c], pos = i }; i = i + 1
    elseif c == "|" or c == "&" then
      if expr:sub(i + 1, i + 1) == c then
        toks[#toks + 1] = { t = c == "|" and "or" or "and", pos = i }; i = i + 2
      else
        toks[#toks + 1] = { t = c == "|" and "pipe" or "expref", pos = i }; i = i + 1
      end
    elseif c == "!" or c == "<" or c == ">" or c == "=" then
      local two = expr:sub(i, i + 1)
      local map2 = { ["!="] = "ne", ["<="] = "le", [">="] = "ge", ["=="] = "eq" }
      if map2[two] then
        toks[#toks + 1] = { t = map2[two], pos = i }; i = i + 2
      elseif c == "=" then
        fail("'=' is not an operator (use '==')")
      else
        toks[#toks + 1] = { t = ({ ["!"] = "not", ["<"] = "lt", [">"] = "gt" })[c], pos = i }; i = i + 1
      end
    elseif c == "`" or c == "'" or c == '"' then
      local j, buf = i + 1, {}
      while true do
        local d = expr:sub(j, j)
        if d == "" then fail("unterminated " .. c) end
        if d == "\\" and c ~= '"' and expr:sub(j + 1, j + 1) == c then
          buf[#buf + 1] = c; j = j + 2
        elseif d == "\\" and c == '"' then
          buf[#buf + 1] = expr:sub(j, j + 1); j = j + 2
        elseif d == c then
          break
        else
          buf[#buf + 1] = d; j = j + 1
        end
      end
      local text = table.concat(buf)
      if c == "'" then
        toks[#toks + 1] = { t = "literal", v = text, pos = i }
      elseif c == '"' then
        local v = json.decode('"' .. text .. '"')
        if type(v) ~= "string" then fail("invalid quoted identifier") end
        toks[#toks + 1] = { t = "qident", v = v, pos = i }
      else
        local v = json.decode(text)
        if v == nil then fail("invalid JSON literal") end
        if v == NULL then v = nil end
        toks[#toks + 1] = { t = "literal", v = v, pos = i }
      end
      i = j + 1
    else
      fail("unexpected character '" .. c .. "'")
    end
  end
  toks[#toks + 1] = { t = "eof", pos = n + 1 }
  return toks
end

-- ---------------------------------------------------------------------------
-- Parser (top-down operator precedence, binding powers from the spec)
-- ---------------------------------------------------------------------------

local BP = {
  eof = 0, ident = 0, qident = 0, literal = 0, rbracket = 0, rparen = 0, comma = 0,
  rbrace = 0, number = 0, current = 0, expref = 0, colon = 0,
  pipe = 1, ["or"] = 2, ["and"] = 3,
  eq = 5, ne = 5, lt = 5, le = 5, gt = 5, ge = 5,
  flatten = 9, star = 20, filter = 21, dot = 40, ["not"] = 45,
  lbrace = 50, lbracket = 55, lparen = 60,
}
local CMP = { eq = true, ne = true, lt = true, le = true, gt = true, ge = true }
local IDENTITY = { "current" }

local Parser = {}
Parser.__index = Parser

function Parser:fail(msg, tok)
  tok = tok or self.toks[self.i]
  error({ jmespath = true, pos = tok.pos, msg = msg }, 0)
end

function Parser:peek(k) return self.toks[self.i + (k or 0)].t end

function Parser:advance()
  local tok = self.toks[self.i]
  self.i = self.i + 1
  return tok
end

function Parser:expect(t)
  local tok = self:advance()
  if tok.t ~= t then self:fail("expected " .. t .. ", got " .. tok.t, tok) end
  return tok
end

function Parser:expression(rbp)
  local left = self:nud(self:advance())
  while rbp < BP[self:peek()] do
    left = self:led(self:advance(), left)
  end
  return left
end

function Parser:projection_rhs(bp)
  local t = self:peek()
  if BP[t] < 10 then return IDENTITY end
  if t == "lbracket" or t == "filter" then return self:expression(bp) end
  if t == "dot" then
    self:advance()
    return self:dot_rhs(bp)
  end
  self:fail("unexpected " .. t .. " after a projection")
end

function Parser:dot_rhs(bp)
  local t = self:peek()
  if t == "ident" or t == "qident" or t == "star" then return self:expression(bp) end
  if t == "lbracket" then
    self:advance()
    return self:multi_list()
  end
  if t == "lbrace" then
    self:advance()
    return self:multi_hash()
  end
  self:fail("expected an identifier after '.', got " .. t)
end

function Parser:multi_list()
  local items = {}
  repeat
    items[#items + 1] = self:expression(0)
  until self:peek() ~= "comma" or not self:advance()
  self:expect("rbracket")
  return { "multilist", items }
end

function Parser:multi_hash()
  local keys, vals = {}, {}
  repeat
    local k = self:advance()
    if k.t ~= "ident" and k.t ~= "qident" then self:fail("expected a key name", k) end
    self:expect("colon")
    keys[#keys + 1] = k.v
    vals[#vals + 1] = self:expression(0)
  until self:peek() ~= "comma" or not self:advance()
  self:expect("rbrace")
  return { "multihash", keys, vals }
end

-- after '[' with a number or ':' next: an index or a slice
function Parser:index_or_slice()
  local parts, pos = { nil, nil, nil }, 1
  while self:peek() ~= "rbracket" do
    local t = self:peek()
    if t == "colon" then
      pos = pos + 1
      if pos > 3 then self:fail("too many ':' in a slice") end
      self:advance()
    elseif t == "number" then
      parts[pos] = self:advance().v
    else
      self:fail("expected a number or ':' in brackets")
    end
  end
  self:advance()
  if pos == 1 then return { "index", parts[1] } end
  if parts[3] == 0 then self:fail("slice step cannot be 0") end
  return { "slice", parts[1], parts[2], parts[3] }
end

function Parser:bracket(left)
  local t = self:peek()
  if t == "number" or t == "colon" then
    local ix = self:index_or_slice()
    if ix[1] == "index" then return { "sub", left, ix } end
    return { "proj", { "sub", left, ix }, self:projection_rhs(BP.star) }
  end
  if t == "star" and self:peek(1) == "rbracket" then
    self:advance(); self:advance()
    return { "proj", left, self:projection_rhs(BP.star) }
  end
  if left == IDENTITY then return self:multi_list() end
  self:fail("expected a number, ':' or '*' in brackets")
end

function Parser:filter(left)
  local cond = self:expression(0)
  self:expect("rbracket")
  return { "filter", left, cond, self:projection_rhs(BP.filter) }
end

function Parser:nud(tok)
  local t = tok.t
  if t == "literal" then return { "literal", tok.v }
  elseif t == "ident" then return { "field", tok.v }
  elseif t == "qident" then
    if self:peek() == "lparen" then self:fail("quoted identifiers cannot be function names", tok) end
    return { "field", tok.v }
  elseif t == "star" then return { "vproj", IDENTITY, self:projection_rhs(BP.star) }
  elseif t == "filter" then return self:filter(IDENTITY)
  elseif t == "flatten" then return { "proj", { "flatten", IDENTITY }, self:projection_rhs(BP.flatten) }
  elseif t == "lbracket" then return self:bracket(IDENTITY)
  elseif t == "lbrace" then return self:multi_hash()
  elseif t == "not" then return { "not", self:expression(BP["not"]) }
  elseif t == "lparen" then
    local e = self:expression(0)
    self:expect("rparen")
    return e
  elseif t == "current" then return IDENTITY
  elseif t == "expref" then return { "expref", self:expression(BP.expref) }
  end
  self:fail("unexpected " .. t, tok)
end

function Parser:led(tok, left)
  local t = tok.t
  if t == "dot" then
    if self:peek() == "star" then
      self:advance()
      return { "vproj", left, self:projection_rhs(BP.star) }
    end
    return { "sub", left, self:dot_rhs(BP.dot) }
  elseif t == "pipe" then return { "pipe", left, self:expression(BP.pipe) }
  elseif t == "or" then return { "or", left, self:expression(BP["or"]) }
  elseif t == "and" then return { "and", left, self:expression(BP["and"]) }
  elseif CMP[t] then return { "cmp", t, left, self:expression(BP[t]) }
  elseif t == "flatten" then return { "proj", { "flatten", left }, self:projection_rhs(BP.flatten) }
  elseif t == "filter" then return self:filter(left)
  elseif t == "lbracket" then return self:bracket(left)
  elseif t == "lparen" then
    if left[1] ~= "field" then self:fail("only names can be called", tok) end
    local args = {}
    if self:peek() ~= "rparen" then
      repeat
        args[#args + 1] = self:expression(0)
      until self:peek() ~= "comma" or not self:advance()
    end
    self:expect("rparen")
    return { "call", left[2], args }
  end
  self:fail("unexpected " .. t, tok)
end

local cache = setmetatable({}, { __mode = "v" })

function M.compile(expr)
  if type(expr) == "table" and expr.jmespath_ast then return expr end
  if type(expr) ~= "string" then error("jmespath.compile: expression must be a string", 2) end
  local c = cache[expr]
  if c then return c end
  local ok, res = pcall(function()
    local p = setmetatable({ toks = lex(expr), i = 1 }, Parser)
    local ast = p:expression(0)
    if p:peek() ~= "eof" then p:fail("unexpected " .. p:peek()) end
    return ast
  end)
  if not ok then
    if type(res) == "table" and res.jmespath then
      error(string.format("jmespath: %s: %s at position %d", expr, res.msg, res.pos), 2)
    end
    error(res, 0)
  end
  c = { jmespath_ast = res, expr = expr }
  cache[expr] = c
  return c
end

-- ---------------------------------------------------------------------------
-- Evaluation
-- ---------------------------------------------------------------------------

local function is_array(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == ARRAY_MT then return true end
  if mt == OBJECT_MT then return false end
  return rawlen(v) > 0 or next(v) == nil
end

local function is_object(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == OBJECT_MT then return true end
  if mt == ARRAY_MT then return false end
  return rawlen(v) == 0
end

local function null(v)
  if v == NULL then return nil end
  return v
end

local function truthy(v)
  if v == nil or v == false or v == NULL or v == "" then return false end
  if type(v) == "table" then return next(v) ~= nil end
  return true
end
M.truthy = truthy

local function jtype(v)
  v = null(v)
  if v == nil then return "null" end
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then return t end
  if t == "table" then return is_array(v) and "array" or "object" end
  if t == "function" then return "expref" end
  return t
end

local function equal(a, b)
  a, b = null(a), null(b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  if is_array(a) ~= is_array(b) then return false end
  for k, v in pairs(a) do
    if not equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
M.equal = equal

local function new_array(t) return setmetatable(t or {}, ARRAY_MT) end

local eval

local function project(list, rhs)
  local out = new_array()
  for i = 1, #list do
    local v = eval(rhs, list[i])
    if null(v) ~= nil then out[#out + 1] = v end
  end
  return out
end

local FUNCS = {}

local function argerr(name, want, v)
  error(string.format("jmespath: %s() expects %s, got %s", name, want, jtype(v)), 0)
end

function FUNCS.length(a)
  local t = jtype(a)
  if t == "string" then return utf8.len(a) or #a end
  if t == "array" then return #a end
  if t == "object" then
    local n = 0
    for _ in pairs(a) do n = n + 1 end
    return n
  end
  if t == "null" then return nil end
  argerr("length", "a string, array or object", a)
end

function FUNCS.contains(subject, search)
  local t = jtype(subject)
  if t == "string" then
    return type(search) == "string" and subject:find(search, 1, true) ~= nil
  elseif t == "array" then
    for i = 1, #subject do
      if equal(subject[i], search) then return true end
    end
    return false
  elseif t == "null" then
    return nil
  end
  argerr("contains", "a string or array", subject)
end

function FUNCS.starts_with(s, p)
  if type(s) ~= "string" or type(p) ~= "string" then argerr("starts_with", "strings", s) end
  return s:sub(1, #p) == p
end

function FUNCS.ends_with(s, p)
  if type(s) ~= "string" or type(p) ~= "string" then argerr("ends_with", "strings", s) end
  return p == "" or s:sub(-#p) == p
end

function FUNCS.abs(n)
  if type(n) ~= "number" then argerr("abs", "a number", n) end
  return math.abs(n)
end

function FUNCS.keys(o)
  if jtype(o) ~= "object" then argerr("keys", "an object", o) end
  local out = new_array()
  for k in pairs(o) do out[#out + 1] = k end
  table.sort(out)
  return out
end

function FUNCS.values(o)
  if jtype(o) ~= "object" then argerr("values", "an object", o) end
  local keys = FUNCS.keys(o)
  local out = new_array()
  for i, k in ipairs(keys) do out[i] = o[k] end
  return out
end

function FUNCS.type(v) return jtype(v) end

function FUNCS.not_null(...)
  for i = 1, select("#", ...) do
    local v = null((select(i, ...)))
    if v ~= nil then return v end
  end
  return nil
end

function FUNCS.to_string(v)
  if type(v) == "string" then return v end
  return json.encode(v == nil and NULL or v)
end

function FUNCS.to_number(v)
  if type(v) == "number" then return v end
  if type(v) == "string" then return tonumber(v) end
  return nil
end

function FUNCS.join(sep, list)
  if type(sep) ~= "string" or jtype(list) ~= "array" then argerr("join", "a string and an array", list) end
  for i = 1, #list do
    if type(list[i]) ~= "string" then argerr("join", "an array of strings", list[i]) end
  end
  return table.concat(list, sep)
end

local function numeric_or_string_list(name, list)
  if jtype(list) ~= "array" then argerr(name, "an array", list) end
  local kind
  for i = 1, #list do
    local t = type(list[i])
    if (t ~= "number" and t ~= "string") or (kind and kind ~= t) then
      argerr(name, "an array of numbers or of strings", list[i])
    end
    kind = t
  end
end

function FUNCS.max(list)
  numeric_or_string_list("max", list)
  local best
  for i = 1, #list do if best == nil or list[i] > best then best = list[i] end end
  return best
end

function FUNCS.min(list)
  numeric_or_string_list("min", list)
  local best
  for i = 1, #list do if best == nil or list[i] < best then best = list[i] end end
  return best
end

function FUNCS.sum(list)
  if jtype(list) ~= "array" then argerr("sum", "an array", list) end
  local s = 0
  for i = 1, #list do
    if type(list[i]) ~= "number" then argerr("sum", "an array of numbers", list[i]) end
    s = s + list[i]
  end
  return s
end

function FUNCS.sort(list)
  numeric_or_string_list("sort", list)
  local out = new_array(table.move(list, 1, #list, 1, {}))
  table.sort(out)
  return out
end

function FUNCS.reverse(v)
  if type(v) == "string" then return v:reverse() end
  if jtype(v) ~= "array" then argerr("reverse", "a string or an array", v) end
  local out = new_array()
  for i = #v, 1, -1 do out[#out + 1] = v[i] end
  return out
end

local function slice(v, start, stop, step)
  if not is_array(v) then return nil end
  local n = #v
  step = step or 1
  local function norm(x, default)
    if x == nil then return default end
    if x < 0 then x = x + n end
    if x < 0 then return step < 0 and -1 or 0 end
    if x >= n then return step < 0 and n - 1 or n end
    return x
  end
  local a = norm(start, step < 0 and n - 1 or 0)
  local b = norm(stop, step < 0 and -1 or n)
  local out = new_array()
  local i = a
  while (step > 0 and i < b) or (step < 0 and i > b) do
    out[#out + 1] = v[i + 1]
    i = i + step
  end
  return out
end

eval = function(node, cur)
  cur = null(cur)
  local k = node[1]
  if k == "field" then
    if is_object(cur) then return null(cur[node[2]]) end
    return nil
  elseif k == "current" then
    return cur
  elseif k == "sub" then
    local l = eval(node[2], cur)
    if l == nil then return nil end
    return eval(node[3], l)
  elseif k == "index" then
    if not is_array(cur) then return nil end
    local i = node[2]
    if i < 0 then i = #cur + i end
    return null(cur[i + 1])
  elseif k == "slice" then
    return slice(cur, node[2], node[3], node[4])
  elseif k == "proj" then
    local l = eval(node[2], cur)
    if not is_array(l) then return nil end
    return project(l, node[3])
  elseif k == "vproj" then
    local l = eval(node[2], cur)
    if not is_object(l) then return nil end
    local keys = {}
    for key in pairs(l) do keys[#keys + 1] = key end
    table.sort(keys)
    local vals = {}
    for i, key in ipairs(keys) do vals[i] = l[key] end
    return project(vals, node[3])
  elseif k == "flatten" then
    local l = eval(node[2], cur)
    if not is_array(l) then return nil end
    local out = new_array()
    for i = 1, #l do
      local v = l[i]
      if is_array(v) and type(v) == "table" and (getmetatable(v) == ARRAY_MT or rawlen(v) > 0) then
        for j = 1, #v do out[#out + 1] = v[j] end
      elseif null(v) ~= nil then
        out[#out + 1] = v
      end
    end
    return out
  elseif k == "filter" then
    local l = eval(node[2], cur)
    if not is_array(l) then return nil end
    local out = new_array()
    for i = 1, #l do
      if truthy(eval(node[3], l[i])) then
        local v = eval(node[4], l[i])
        if null(v) ~= nil then out[#out + 1] = v end
      end
    end
    return out
  elseif k == "pipe" then
    return eval(node[3], eval(node[2], cur))
  elseif k == "or" then
    local l = eval(node[2], cur)
    if truthy(l) then return l end
    return eval(node[3], cur)
  elseif k == "and" then
    local l = eval(node[2], cur)
    if not truthy(l) then return l end
    return eval(node[3], cur)
  elseif k == "not" then
    return not truthy(eval(node[2], cur))
  elseif k == "cmp" then
    local op, a, b = node[2], eval(node[3], cur), eval(node[4], cur)
    if op == "eq" then return equal(a, b) end
    if op == "ne" then return not equal(a, b) end
    if type(a) ~= "number" or type(b) ~= "number" then return nil end
    if op == "lt" then return a < b
    elseif op == "le" then return a <= b
    elseif op == "gt" then return a > b
    else return a >= b end
  elseif k == "literal" then
    return node[2]
  elseif k == "multilist" then
    if cur == nil then return nil end
    local out = new_array()
    for i, e in ipairs(node[2]) do
      local v = eval(e, cur)
      out[i] = v == nil and NULL or v
    end
    return out
  elseif k == "multihash" then
    if cur == nil then return nil end
    local out = setmetatable({}, OBJECT_MT)
    for i, key in ipairs(node[2]) do
      local v = eval(node[3][i], cur)
      out[key] = v == nil and NULL or v
    end
    return out
  elseif k == "call" then
    local f = FUNCS[node[2]]
    if not f then error("jmespath: unknown function " .. node[2] .. "()", 0) end
    local args = {}
    for i, a in ipairs(node[3]) do args[i] = eval(a, cur) end
    return f(table.unpack(args, 1, #node[3]))
  elseif k == "expref" then
    return function(v) return eval(node[2], v) end
  end
  error("jmespath: bad node " .. tostring(k), 0)
end

function M.search(expr, data)
  local c = M.compile(expr)
  return (eval(c.jmespath_ast, data))
end

M.is_array, M.is_object = is_array, is_object

return M
