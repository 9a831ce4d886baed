--- Helpers for `lumu nag` rules: built-in checks use them and so can team
-- rules (`local util = require "lumu.nag.util"`).  Pure Lua, no AWS calls.
--
-- Values and intrinsic functions ---------------------------------------------
-- util.ABSENT              marker for "property not set" (also Ref AWS::NoValue
--                          and null)
-- util.intrinsic(v) -> "Ref" | "Fn::If" | ... | nil   (a one-key table whose key
--                          is Ref, Condition or Fn::*)
-- util.truthy(x)           x is true or "true" (any case)
-- util.falsy(x)            x is false or "false" (any case)
-- util.show(x)             short printable form ('text', 12, true, <absent>, {...})
-- util.path_string(list [, base]) -> "Properties.Rules[0].Cidr" (list holds
--                          keys and 1-based indexes; indexes print 0-based)
-- util.secret_name(name)   true when a variable/parameter name looks like it
--                          holds a secret (PASSWORD, SECRET, TOKEN, KEY ...
--                          words; *_ARN, *_ID, *_NAME, *_URL ... excluded)
-- util.dynamic_ref(s) -> "secure" | "plain" | nil   "{{resolve:secretsmanager:"
--                          and "{{resolve:ssm-secure:" are secure, "{{resolve:ssm:"
--                          is plain
-- util.glob_match(pattern, s)  IAM-style wildcards (* and ?), case-insensitive
-- util.props(resource) -> its Properties (or {})
-- util.path(list, key...) -> a new path list
-- util.require_true({key, ...} [, {skip=fn, what=s}]) -> check function that
--     reports Properties.key... unless it is surely true
--
-- Context (the `ctx` given to every check) -------------------------------------
-- ctx.template, ctx.filename, ctx.parameters, ctx.resources, ctx.mappings
-- ctx:values(v) -> list of {v = concrete value, via = "how it was derived" | nil},
--     list.unknown = {reason, ...} for the parts that cannot be known before
--     deploy.  What is knowable is evaluated: literals; Ref to a parameter
--     (its AllowedValues, else its Default); Fn::If (both branches);
--     Fn::FindInMap (every candidate when a key is not known); Fn::Join,
--     Fn::Sub, Fn::Select over knowable parts; Ref AWS::NoValue -> ABSENT;
--     nil / null -> ABSENT.  Ref to a resource or pseudo parameter,
--     Fn::GetAtt, Fn::ImportValue, ... are unknown.  At most 64 values, 32
--     levels of nesting and 20,000 steps are followed (the rest counts as
--     unknown).
-- ctx:values(v, {key, ...}) -> the same for v.key.key...: every level is
--     evaluated (a Fn::If between levels gives both sides; a missing level
--     gives ABSENT)
-- ctx:possibly(v, pred [, keys]) -> true, via | false   some knowable value
--     satisfies pred
-- ctx:surely(v, pred [, keys]) -> true | false, detail  every value satisfies pred and
--     nothing is unknown; detail says which value fails ("is 'false' (default
--     of parameter Enc)", "is not set", "cannot be evaluated before deploy
--     (Fn::ImportValue); assumed unsafe")
-- ctx:strings(v) -> list of strings (a string or a list of strings, each item
--     evaluated), list.unknown as for values
-- ctx:text(v) -> string  best-effort rendering for pattern matching: Fn::Sub
--     and Fn::Join keep their literal parts, unknown parts become "?"
-- ctx:plaintext(v) -> nil | detail   why a secret-bearing value is exposed: a
--     literal, a plain {{resolve:ssm:}} reference, a Ref to a parameter that is
--     not NoEcho or has a Default, a Mappings value; nil when it is a secure
--     dynamic reference, a NoEcho parameter without Default, or unknowable
-- ctx:refs(v, id) -> boolean   v is Ref id or Fn::GetAtt id.* (through Fn::If)
-- ctx:items(v) -> list of {v=, index=} for a list whose items may be Fn::If
--     or AWS::NoValue (v itself may be an Fn::If); index is the 1-based
--     position in the written list; items that cannot be evaluated are kept
--     raw with unknown = true
-- ctx:resources_of(type) -> sorted list of {id=, resource=}
-- ctx:statements(doc) -> list of {stmt=, path=}   the statements of a policy
--     document (a table or a JSON string; Statement a mapping or a list; Fn::If
--     and AWS::NoValue items evaluated); path is relative to doc
-- ctx:policies(resource) -> list of {doc=, path=, kind=}   policy documents a
--     resource holds: kind "identity" (IAM Role/User/Group inline policies,
--     AWS::IAM::Policy, ManagedPolicy, RolePolicy, UserPolicy, GroupPolicy),
--     "trust" (a role's AssumeRolePolicyDocument) or "resource" (S3 bucket,
--     SQS queue, SNS topic, KMS key, Secrets Manager, ECR, OpenSearch, EFS,
--     Logs policies)
-- ctx:allows(stmt) -> boolean   Effect is Allow (or not knowable)
-- ctx:allowed_statements(resource) -> list of {stmt=, kind=, path=}   the
--     statements of every policy of the resource (ctx:policies) that
--     ctx:allows, in order; path is relative to the resource
-- ctx:wildcard_principal(p) -> boolean   "*" or {AWS = "*"} (lists too)
-- The results of ctx:strings, ctx:statements, ctx:policies, ctx:allows,
-- ctx:allowed_statements and ctx:resources_of are cached for the scan (a
-- template does not change while it is scanned; rules run one after the
-- other on the same values): they are shared, so read them, never modify
-- them.
local json = require "lumu.json"

local M = {}

M.MAX_DEPTH = 32
M.MAX_VALUES = 64
M.MAX_STEPS = 20000 -- evaluation steps per ctx:values call

-- One ABSENT per Lua state, even if this module is loaded twice (a test
-- runner restoring package.loaded, a team rule loading its own copy).
local REGISTRY = debug.getregistry()
if REGISTRY["lumu.nag.ABSENT"] == nil then
  REGISTRY["lumu.nag.ABSENT"] = setmetatable({}, {
    __name = "lumu.nag.ABSENT",
    __tostring = function() return "<absent>" end,
  })
end
M.ABSENT = REGISTRY["lumu.nag.ABSENT"]

local ABSENT = M.ABSENT
local null = json.null
local NONE = {} -- an empty list never written to

function M.intrinsic(v)
  if type(v) ~= "table" then return nil end
  local k = next(v)
  if type(k) ~= "string" or next(v, k) ~= nil then return nil end
  if k == "Ref" or k == "Condition" or k:sub(1, 4) == "Fn::" then return k end
  return nil
end
-- the same in C (one call instead of five), when the binary has it
do
  local ok, core = pcall(require, "lumu._cfn")
  if ok and type(core) == "table" and core.intrinsic_name then M.intrinsic = core.intrinsic_name end
end
local intrinsic = M.intrinsic

function M.truthy(x)
  return x == true or (type(x) == "string" and x:lower() == "true")
end

function M.falsy(x)
  return x == false or (type(x) == "string" and x:lower() == "false")
end

function M.show(x)
  if x == ABSENT or x == nil or x == null then return "<absent>" end
  if type(x) == "string" then
    if #x > 60 then x = x:sub(1, 57) .. "..." end
    return "'" .. x .. "'"
  end
  if type(x) == "table" then
    local fn = intrinsic(x)
    return fn and ("{" .. fn .. " ...}") or "{...}"
  end
  return tostring(x)
end
local show = M.show

function M.path_string(list, base)
  local out = base or ""
  if type(list) == "string" then
    if list == "" then return out end
    if out == "" then return list end
    return list:sub(1, 1) == "[" and (out .. list) or (out .. "." .. list)
  end
  list = list or NONE
  for i = 1, #list do
    local k = list[i]
    if math.type(k) == "integer" then
      out = out .. "[" .. (k - 1) .. "]"
    elseif out == "" then
      out = tostring(k)
    else
      out = out .. "." .. tostring(k)
    end
  end
  return out
end

-- Word lists for secret-looking names.
local SECRET_WORDS = {
  PASSWORD = true, PASSWD = true, PASSPHRASE = true, SECRET = true, SECRETS = true,
  TOKEN = true, TOKENS = true, KEY = true, APIKEY = true, CREDENTIAL = true,
  CREDENTIALS = true, PRIVATEKEY = true, AUTHTOKEN = true, PWD = false,
}
local NOT_SECRET_LAST = {
  ARN = true, ID = true, IDS = true, NAME = true, FILE = true, PATH = true, URL = true,
  URI = true, ENDPOINT = true, REGION = true, LENGTH = true, TTL = true, TYPE = true,
  HEADER = true, PARAM = true, PARAMETER = true, VERSION = true, ALIAS = true,
  ROTATION = true, PREFIX = true, FIELD = true, POLICY = true, SIZE = true,
}

local secret_names, nsecret_names = {}, 0 -- name -> verdict (bounded cache)
local secret_name

function M.secret_name(name)
  if type(name) ~= "string" or name == "" then return false end
  local hit = secret_names[name]
  if hit == nil then
    if nsecret_names >= 4096 then secret_names, nsecret_names = {}, 0 end
    hit = secret_name(name)
    secret_names[name] = hit
    nsecret_names = nsecret_names + 1
  end
  return hit
end

secret_name = function(name)
  -- split camelCase and separators into upper-case words
  local s = name:gsub("(%l)(%u)", "%1_%2"):gsub("(%u)(%u%l)", "%1_%2"):upper()
  local words = {}
  for w in s:gmatch("[%u%d]+") do words[#words + 1] = w end
  if #words == 0 then return false end
  if NOT_SECRET_LAST[words[#words]] then return false end
  for i = 1, #words do
    if SECRET_WORDS[words[i]] then return true end
  end
  -- run-together names: dbpassword, APISECRET
  local flat = s:gsub("[^%u]", "")
  return flat:find("PASSWORD", 1, true) ~= nil or flat:find("SECRET", 1, true) ~= nil
      or flat:find("TOKEN", 1, true) ~= nil or flat:find("APIKEY", 1, true) ~= nil
end

function M.dynamic_ref(s)
  if type(s) ~= "string" then return nil end
  if s:find("{{resolve:secretsmanager:", 1, true) or s:find("{{resolve:ssm-secure:", 1, true) then
    return "secure"
  end
  if s:find("{{resolve:ssm:", 1, true) then return "plain" end
  return nil
end

local globs, nglobs = {}, 0 -- IAM pattern -> Lua pattern (bounded cache)

function M.glob_match(pattern, s)
  if type(pattern) ~= "string" or type(s) ~= "string" then return false end
  local p = globs[pattern]
  if not p then
    if nglobs >= 4096 then globs, nglobs = {}, 0 end
    p = "^" .. pattern:lower():gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
    globs[pattern] = p
    nglobs = nglobs + 1
  end
  return s:lower():find(p) ~= nil
end

local function join_via(a, b)
  if not a then return b end
  if not b then return a end
  return a .. ", " .. b
end

-- ---------------------------------------------------------------------------
-- Context
-- ---------------------------------------------------------------------------

local Context = {}
Context.__index = Context
M.Context = Context

local function tbl(v)
  return type(v) == "table" and v or {}
end

--- util.context(template [, {filename=}]) -> ctx
function M.context(template, opts)
  local self = setmetatable({}, Context)
  self.template = template
  self.filename = opts and opts.filename or "<template>"
  self.parameters = tbl(template.Parameters)
  self.resources = tbl(template.Resources)
  self.mappings = tbl(template.Mappings)
  self._by_type = nil
  self._budget = M.MAX_STEPS
  -- per-scan caches (the template does not change during a scan)
  self._strings, self._statements, self._policies, self._allows, self._allowed = {}, {}, {}, {}, {}
  return self
end

local CACHES = { "_strings", "_statements", "_policies", "_allows", "_allowed", "_by_type" }

--- util.share(ctx, from): ctx takes over the caches of from, a context of the
-- same template content (same resources, parameter values and mappings).
-- Internal (lumu.nag.engine).
function M.share(ctx, from)
  for _, k in ipairs(CACHES) do
    if from[k] ~= nil then ctx[k] = from[k] end
  end
  return ctx
end

local eval

local function unknown(out, why)
  local u = out.unknown
  if #u < 8 then
    for _, w in ipairs(u) do
      if w == why then return end
    end
    u[#u + 1] = why
  end
end

local function add(out, v, via)
  if #out >= M.MAX_VALUES then
    out.truncated = true
    unknown(out, "too many possible values")
    return
  end
  out[#out + 1] = { v = v, via = via }
end

local function sub_values(self, v, depth, via)
  local o = { unknown = {} }
  eval(self, v, o, depth, via)
  return o
end

-- Cartesian product of string pieces (each a list of {v=, via=}), bounded.
local function combine(self, out, pieces, sep, via)
  local acc = { { s = "", via = via } }
  for _, choices in ipairs(pieces) do
    local nxt = {}
    for _, a in ipairs(acc) do
      for _, c in ipairs(choices) do
        if #nxt >= M.MAX_VALUES then
          unknown(out, "too many possible values")
          break
        end
        local cv = c.v
        if type(cv) ~= "string" and type(cv) ~= "number" and type(cv) ~= "boolean" then
          return false
        end
        nxt[#nxt + 1] = { s = a.s .. (a.first == nil and "" or sep) .. tostring(cv), first = false,
          via = join_via(a.via, c.via) }
      end
    end
    acc = nxt
  end
  for _, a in ipairs(acc) do add(out, a.s, a.via) end
  return true
end

local function eval_findinmap(self, arg, out, depth, via)
  if type(arg) ~= "table" or #arg < 3 then return unknown(out, "malformed Fn::FindInMap") end
  local names = sub_values(self, arg[1], depth + 1)
  if #names.unknown > 0 then return unknown(out, "Fn::FindInMap with an unknown map name") end
  for _, n in ipairs(names) do
    local map = type(n.v) == "string" and self.mappings[n.v]
    if type(map) ~= "table" then
      unknown(out, "Fn::FindInMap of a missing map")
    else
      local tops = sub_values(self, arg[2], depth + 1)
      local top_keys = {}
      if #tops.unknown > 0 then
        for k in pairs(map) do top_keys[#top_keys + 1] = k end
        table.sort(top_keys)
      else
        for _, t in ipairs(tops) do top_keys[#top_keys + 1] = tostring(t.v) end
      end
      for _, tk in ipairs(top_keys) do
        local level = map[tk]
        if type(level) == "table" then
          local seconds = sub_values(self, arg[3], depth + 1)
          local second_keys = {}
          if #seconds.unknown > 0 then
            for k in pairs(level) do second_keys[#second_keys + 1] = k end
            table.sort(second_keys)
          else
            for _, s in ipairs(seconds) do second_keys[#second_keys + 1] = tostring(s.v) end
          end
          for _, sk in ipairs(second_keys) do
            if level[sk] ~= nil then
              eval(self, level[sk], out, depth + 1, join_via(via, "Mappings " .. n.v .. "." .. tk .. "." .. sk))
            end
          end
        end
      end
    end
  end
end

local function eval_sub(self, arg, out, depth, via)
  local s, vars = arg, nil
  if type(arg) == "table" then s, vars = arg[1], arg[2] end
  if type(s) ~= "string" then return unknown(out, "malformed Fn::Sub") end
  vars = type(vars) == "table" and vars or {}
  local pieces = {}
  local pos = 1
  while true do
    local a, b, name = s:find("%${([^}]*)}", pos)
    if not a then break end
    if a > pos then pieces[#pieces + 1] = { { v = s:sub(pos, a - 1) } } end
    if name:sub(1, 1) == "!" then
      pieces[#pieces + 1] = { { v = "${" .. name:sub(2) .. "}" } }
    else
      local src
      if vars[name] ~= nil then
        src = vars[name]
      elseif self.parameters[name] ~= nil then
        src = { Ref = name }
      else
        return unknown(out, "Fn::Sub of ${" .. name .. "}")
      end
      local vals = sub_values(self, src, depth + 1)
      if #vals.unknown > 0 or #vals == 0 then
        return unknown(out, "Fn::Sub of ${" .. name .. "}: " .. (vals.unknown[1] or "no value"))
      end
      pieces[#pieces + 1] = vals
    end
    pos = b + 1
  end
  if pos <= #s then pieces[#pieces + 1] = { { v = s:sub(pos) } } end
  if not combine(self, out, pieces, "", via) then unknown(out, "Fn::Sub of a non-scalar") end
end

local function eval_join(self, arg, out, depth, via)
  if type(arg) ~= "table" or type(arg[1]) ~= "string" then return unknown(out, "malformed Fn::Join") end
  local lists = sub_values(self, arg[2], depth + 1)
  if #lists.unknown > 0 then return unknown(out, "Fn::Join of " .. lists.unknown[1]) end
  for _, l in ipairs(lists) do
    if type(l.v) ~= "table" or intrinsic(l.v) then
      unknown(out, "Fn::Join of a non-list")
    else
      local pieces = {}
      for _, item in ipairs(l.v) do
        local vals = sub_values(self, item, depth + 1)
        if #vals.unknown > 0 or #vals == 0 then
          return unknown(out, "Fn::Join of " .. (vals.unknown[1] or "no value"))
        end
        pieces[#pieces + 1] = vals
      end
      if not combine(self, out, pieces, arg[1], join_via(via, l.via)) then
        unknown(out, "Fn::Join of a non-scalar")
      end
    end
  end
end

local function eval_select(self, arg, out, depth, via)
  if type(arg) ~= "table" or #arg ~= 2 then return unknown(out, "malformed Fn::Select") end
  local idx = sub_values(self, arg[1], depth + 1)
  local lists = sub_values(self, arg[2], depth + 1)
  if #idx.unknown > 0 or #lists.unknown > 0 then return unknown(out, "Fn::Select of an unknown value") end
  for _, i in ipairs(idx) do
    local n = math.tointeger(tonumber(i.v))
    for _, l in ipairs(lists) do
      if n and type(l.v) == "table" and not intrinsic(l.v) and l.v[n + 1] ~= nil then
        eval(self, l.v[n + 1], out, depth + 1, join_via(via, join_via(i.via, l.via)))
      else
        unknown(out, "Fn::Select out of range")
      end
    end
  end
end

eval = function(self, v, out, depth, via)
  if depth > M.MAX_DEPTH then return unknown(out, "nested too deeply") end
  if #out >= M.MAX_VALUES then return unknown(out, "too many possible values") end
  local budget = self._budget - 1
  self._budget = budget
  if budget < 0 then return unknown(out, "too complex to evaluate") end
  if v == nil or v == null then return add(out, ABSENT, via) end
  local fn = intrinsic(v)
  if not fn then return add(out, v, via) end
  local arg = v[fn]
  if fn == "Ref" then
    if arg == "AWS::NoValue" then return add(out, ABSENT, via) end
    if type(arg) ~= "string" then return unknown(out, "malformed Ref") end
    local p = self.parameters[arg]
    if type(p) == "table" then
      local allowed = p.AllowedValues
      if type(allowed) == "table" and #allowed > 0 and not intrinsic(allowed) then
        for _, a in ipairs(allowed) do
          add(out, a, join_via(via, "parameter " .. arg .. " allows " .. show(a)))
        end
        return
      end
      if p.Default ~= nil and p.Default ~= null then
        return add(out, p.Default, join_via(via, "default of parameter " .. arg))
      end
      return unknown(out, "parameter " .. arg .. " has no default")
    end
    return unknown(out, "Ref " .. arg)
  elseif fn == "Fn::If" then
    if type(arg) ~= "table" or #arg ~= 3 then return unknown(out, "malformed Fn::If") end
    local cond = type(arg[1]) == "string" and arg[1] or "?"
    eval(self, arg[2], out, depth + 1, join_via(via, "when " .. cond .. " is true"))
    eval(self, arg[3], out, depth + 1, join_via(via, "when " .. cond .. " is false"))
  elseif fn == "Fn::FindInMap" then
    eval_findinmap(self, arg, out, depth, via)
  elseif fn == "Fn::Sub" then
    eval_sub(self, arg, out, depth, via)
  elseif fn == "Fn::Join" then
    eval_join(self, arg, out, depth, via)
  elseif fn == "Fn::Select" then
    eval_select(self, arg, out, depth, via)
  elseif fn == "Fn::GetAtt" then
    local what = type(arg) == "table" and table.concat({ tostring(arg[1]), tostring(arg[2]) }, ".")
        or tostring(arg)
    unknown(out, "Fn::GetAtt " .. what)
  else
    unknown(out, fn)
  end
end

function Context:values(v, keys)
  local out = { unknown = {} }
  self._budget = M.MAX_STEPS
  if not keys or #keys == 0 then
    eval(self, v, out, 0, nil)
    return out
  end
  -- dig: evaluate each level, then follow the key into every candidate
  local cur = { { v = v } }
  for _, k in ipairs(keys) do
    local nxt = {}
    for _, c in ipairs(cur) do
      local level = { unknown = {} }
      eval(self, c.v, level, 0, c.via)
      for _, w in ipairs(level.unknown) do unknown(out, w) end
      for _, e in ipairs(level) do
        if #nxt >= M.MAX_VALUES then
          unknown(out, "too many possible values")
          break
        end
        local x = e.v
        if type(x) == "table" and x ~= ABSENT and not intrinsic(x) then
          nxt[#nxt + 1] = { v = x[k], via = e.via }
        else
          nxt[#nxt + 1] = { v = nil, via = e.via }
        end
      end
    end
    cur = nxt
  end
  for _, c in ipairs(cur) do eval(self, c.v, out, 0, c.via) end
  return out
end

function Context:possibly(v, pred, keys)
  local vals = self:values(v, keys)
  for i = 1, #vals do
    local e = vals[i]
    if pred(e.v) then return true, e.via end
  end
  return false
end

function Context:surely(v, pred, keys)
  local vals = self:values(v, keys)
  for _, e in ipairs(vals) do
    if not pred(e.v) then
      local d = e.v == ABSENT and "is not set" or ("is " .. show(e.v))
      if e.via then d = d .. " (" .. e.via .. ")" end
      return false, d
    end
  end
  if #vals.unknown > 0 then
    return false, "cannot be evaluated before deploy (" .. vals.unknown[1] .. "); assumed unsafe"
  end
  if #vals == 0 then return false, "has no value" end
  return true
end

-- A Context method: fn(self, x), computed once per x while the context
-- keeps its caches (self[field]); x == nil (or skip(x)) is never cached.
local function memo(field, fn, skip)
  return function(self, x)
    local cache = self[field]
    if x == nil or not cache or (skip and skip(x)) then return fn(self, x) end
    local out = cache[x]
    if out == nil then
      out = fn(self, x)
      cache[x] = out
    end
    return out
  end
end

local strings_of

Context.strings = memo("_strings", function(self, v) return strings_of(self, v) end)

-- a plain value (not nil, null, ABSENT or an intrinsic function): what
-- ctx:values gives as its only candidate
local function plain(v)
  return v ~= nil and v ~= null and v ~= ABSENT and not intrinsic(v)
end

strings_of = function(self, v)
  if type(v) == "table" and plain(v) then
    -- a written list: strings as they are, other items evaluated
    local out = { unknown = {} }
    for _, item in ipairs(v) do
      if type(item) == "string" then
        out[#out + 1] = item
      else
        local iv = self:values(item)
        for _, w in ipairs(iv.unknown) do unknown(out, w) end
        for _, x in ipairs(iv) do
          if type(x.v) == "string" then out[#out + 1] = x.v end
        end
      end
    end
    return out
  end
  local out = { unknown = {} }
  local vals = self:values(v)
  out.unknown = vals.unknown
  for _, e in ipairs(vals) do
    if type(e.v) == "table" and not intrinsic(e.v) then
      for _, item in ipairs(e.v) do
        local iv = self:values(item)
        for _, w in ipairs(iv.unknown) do unknown(out, w) end
        for _, x in ipairs(iv) do
          if type(x.v) == "string" then out[#out + 1] = x.v end
        end
      end
    elseif type(e.v) == "string" then
      out[#out + 1] = e.v
    end
  end
  return out
end

local PSEUDO_TEXT = { ["AWS::Partition"] = "aws", ["AWS::URLSuffix"] = "amazonaws.com" }

local function text(self, v, depth)
  if depth > M.MAX_DEPTH then return "?" end
  if type(v) == "string" then return v end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  local fn = intrinsic(v)
  if fn == "Fn::Sub" then
    local s = type(v[fn]) == "table" and v[fn][1] or v[fn]
    if type(s) ~= "string" then return "?" end
    return (s:gsub("%${([^}]*)}", function(name)
      if name:sub(1, 1) == "!" then return "${" .. name:sub(2) .. "}" end
      return PSEUDO_TEXT[name] or "?"
    end))
  elseif fn == "Fn::Join" then
    local a = v[fn]
    if type(a) ~= "table" or type(a[1]) ~= "string" or type(a[2]) ~= "table" or intrinsic(a[2]) then
      return "?"
    end
    local parts = {}
    for i, item in ipairs(a[2]) do parts[i] = text(self, item, depth + 1) end
    return table.concat(parts, a[1])
  elseif fn == "Ref" and PSEUDO_TEXT[v.Ref] then
    return PSEUDO_TEXT[v.Ref]
  elseif fn then
    local vals = self:values(v)
    if #vals == 1 and #vals.unknown == 0 and type(vals[1].v) == "string" then return vals[1].v end
  end
  return "?"
end

function Context:text(v)
  return text(self, v, 0)
end

local function plaintext(self, v, depth)
  if depth > M.MAX_DEPTH then return nil end
  if v == nil or v == null then return nil end
  if type(v) == "string" then
    local d = M.dynamic_ref(v)
    if d == "secure" then return nil end
    if d == "plain" then return "a {{resolve:ssm:...}} reference reads a plain String parameter" end
    if v == "" then return nil end
    return "a literal value"
  elseif type(v) == "number" then
    return "a literal value"
  end
  local fn = intrinsic(v)
  if not fn then return nil end
  local arg = v[fn]
  if fn == "Ref" then
    local p = self.parameters[arg]
    if type(p) ~= "table" then return nil end
    if p.Type and type(p.Type) == "string" and p.Type:find("^AWS::SSM::Parameter::Value") then
      return "parameter " .. arg .. " resolves a plain SSM parameter"
    end
    if not M.truthy(p.NoEcho) then return "parameter " .. arg .. " is not NoEcho" end
    if p.Default ~= nil and p.Default ~= null and p.Default ~= "" then
      return "parameter " .. arg .. " has a Default value"
    end
    return nil
  elseif fn == "Fn::If" then
    if type(arg) ~= "table" then return nil end
    return plaintext(self, arg[2], depth + 1) or plaintext(self, arg[3], depth + 1)
  elseif fn == "Fn::Sub" then
    local s = type(arg) == "table" and arg[1] or arg
    if type(s) ~= "string" then return nil end
    if M.dynamic_ref(s) == "secure" then return nil end
    local vars = type(arg) == "table" and type(arg[2]) == "table" and arg[2] or {}
    local any_ref = false
    for name in s:gmatch("%${([^}!][^}]*)}") do
      any_ref = true
      local src = vars[name]
      if src == nil and self.parameters[name] ~= nil then src = { Ref = name } end
      if src ~= nil then
        local why = plaintext(self, src, depth + 1)
        if why then return why end
      end
    end
    if not any_ref then return plaintext(self, s, depth + 1) end
    return nil
  elseif fn == "Fn::Join" then
    if type(arg) ~= "table" or type(arg[2]) ~= "table" or intrinsic(arg[2]) then return nil end
    local all_literal = true
    for _, item in ipairs(arg[2]) do
      if type(item) == "string" and M.dynamic_ref(item) == "secure" then return nil end
      if type(item) ~= "string" then
        all_literal = false
        local why = plaintext(self, item, depth + 1)
        if why and not why:find("^a literal") then return why end
      end
    end
    if all_literal then return "a literal value" end
    return nil
  elseif fn == "Fn::FindInMap" then
    return "a value from the template's Mappings"
  end
  return nil
end

function Context:plaintext(v)
  return plaintext(self, v, 0)
end

local function refs(self, v, id, depth)
  if depth > M.MAX_DEPTH or type(v) ~= "table" then return false end
  local fn = intrinsic(v)
  if fn == "Ref" then return v.Ref == id end
  if fn == "Fn::GetAtt" then
    local a = v[fn]
    if type(a) == "table" then return a[1] == id end
    if type(a) == "string" then return a == id or a:sub(1, #id + 1) == id .. "." end
    return false
  end
  if fn == "Fn::If" and type(v[fn]) == "table" then
    return refs(self, v[fn][2], id, depth + 1) or refs(self, v[fn][3], id, depth + 1)
  end
  if fn == "Fn::Sub" then
    local s = type(v[fn]) == "table" and v[fn][1] or v[fn]
    return type(s) == "string" and (s:find("${" .. id .. "}", 1, true) ~= nil
      or s:find("${" .. id .. ".", 1, true) ~= nil)
  end
  return false
end

function Context:refs(v, id)
  return refs(self, v, id, 0)
end

function Context:resources_of(typ)
  if not self._by_type then
    local by = {}
    local ids = {}
    for id in pairs(self.resources) do
      if type(id) == "string" then ids[#ids + 1] = id end
    end
    table.sort(ids)
    for _, id in ipairs(ids) do
      local r = self.resources[id]
      if type(r) == "table" and type(r.Type) == "string" then
        by[r.Type] = by[r.Type] or {}
        table.insert(by[r.Type], { id = id, resource = r })
      end
    end
    self._by_type = by
  end
  return self._by_type[typ] or {}
end

-- Policy documents ------------------------------------------------------------

local function list_items(self, v)
  -- a list whose items may be Fn::If / NoValue: -> {{v=, index=}}
  local out = {}
  local vals = plain(v) and { { v = v } } or self:values(v)
  for j = 1, #vals do
    local e = vals[j]
    if type(e.v) == "table" and not intrinsic(e.v) and (#e.v > 0 or next(e.v) == nil)
        and getmetatable(e.v) ~= json.object_mt then
      for i, item in ipairs(e.v) do
        local ivals = plain(item) and { { v = item }, unknown = NONE } or self:values(item)
        for k = 1, #ivals do
          local x = ivals[k]
          if x.v ~= ABSENT then out[#out + 1] = { v = x.v, index = i } end
        end
        if #ivals == 0 and #ivals.unknown > 0 then
          -- not knowable before deploy (Ref to a resource, Fn::Sub of a
          -- pseudo parameter ...): keep the raw item for ctx:refs/ctx:text
          out[#out + 1] = { v = item, index = i, unknown = true }
        end
      end
    elseif e.v ~= ABSENT then
      out[#out + 1] = { v = e.v }
    end
  end
  return out
end
M.list_items = list_items
Context.items = list_items

local statements_of

Context.statements = memo("_statements", function(self, doc) return statements_of(self, doc) end)

statements_of = function(self, doc)
  if type(doc) == "string" then
    local ok, d = pcall(json.decode, doc)
    doc = ok and d or nil
  end
  local out = {}
  local docs = self:values(doc)
  for i = 1, #docs do
    local d = docs[i].v
    if type(d) == "table" and not intrinsic(d) then
      if type(d) == "table" and d.Statement ~= nil then
        local items = list_items(self, d.Statement)
        for j = 1, #items do
          local item = items[j]
          if type(item.v) == "table" and not intrinsic(item.v) then
            out[#out + 1] = { stmt = item.v, path = item.index and { "Statement", item.index } or { "Statement" } }
          end
        end
      end
    end
  end
  return out
end

local IDENTITY_DOCS = {
  ["AWS::IAM::Policy"] = "PolicyDocument",
  ["AWS::IAM::ManagedPolicy"] = "PolicyDocument",
  ["AWS::IAM::RolePolicy"] = "PolicyDocument",
  ["AWS::IAM::UserPolicy"] = "PolicyDocument",
  ["AWS::IAM::GroupPolicy"] = "PolicyDocument",
}
local INLINE_POLICIES = { ["AWS::IAM::Role"] = true, ["AWS::IAM::User"] = true, ["AWS::IAM::Group"] = true }
local RESOURCE_DOCS = {
  ["AWS::S3::BucketPolicy"] = "PolicyDocument",
  ["AWS::SQS::QueuePolicy"] = "PolicyDocument",
  ["AWS::SQS::QueueInlinePolicy"] = "PolicyDocument",
  ["AWS::SNS::TopicPolicy"] = "PolicyDocument",
  ["AWS::SNS::TopicInlinePolicy"] = "PolicyDocument",
  ["AWS::KMS::Key"] = "KeyPolicy",
  ["AWS::SecretsManager::ResourcePolicy"] = "ResourcePolicy",
  ["AWS::ECR::Repository"] = "RepositoryPolicyText",
  ["AWS::OpenSearchService::Domain"] = "AccessPolicies",
  ["AWS::Elasticsearch::Domain"] = "AccessPolicies",
  ["AWS::EFS::FileSystem"] = "FileSystemPolicy",
  ["AWS::Logs::ResourcePolicy"] = "PolicyDocument",
  ["AWS::S3::AccessPoint"] = "Policy",
}

M.IDENTITY_TYPES = { "AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group" }
for t in pairs(IDENTITY_DOCS) do M.IDENTITY_TYPES[#M.IDENTITY_TYPES + 1] = t end
table.sort(M.IDENTITY_TYPES)
M.RESOURCE_POLICY_TYPES = {}
for t in pairs(RESOURCE_DOCS) do M.RESOURCE_POLICY_TYPES[#M.RESOURCE_POLICY_TYPES + 1] = t end
table.sort(M.RESOURCE_POLICY_TYPES)

local policies_of

Context.policies = memo("_policies", function(self, r) return policies_of(self, r) end,
  function(r) return type(r) ~= "table" end)

policies_of = function(self, resource)
  local out = {}
  if type(resource) ~= "table" then return out end
  local props = type(resource.Properties) == "table" and resource.Properties or {}
  local t = resource.Type
  if INLINE_POLICIES[t] then
    for _, item in ipairs(list_items(self, props.Policies)) do
      if type(item.v) == "table" and item.v.PolicyDocument ~= nil then
        out[#out + 1] = { doc = item.v.PolicyDocument, kind = "identity",
          path = { "Properties", "Policies", item.index, "PolicyDocument" } }
      end
    end
    if t == "AWS::IAM::Role" and props.AssumeRolePolicyDocument ~= nil then
      out[#out + 1] = { doc = props.AssumeRolePolicyDocument, kind = "trust",
        path = { "Properties", "AssumeRolePolicyDocument" } }
    end
  elseif IDENTITY_DOCS[t] then
    local k = IDENTITY_DOCS[t]
    if props[k] ~= nil then out[#out + 1] = { doc = props[k], kind = "identity", path = { "Properties", k } } end
  elseif RESOURCE_DOCS[t] then
    local k = RESOURCE_DOCS[t]
    if props[k] ~= nil then out[#out + 1] = { doc = props[k], kind = "resource", path = { "Properties", k } } end
  end
  return out
end

local function allows(self, stmt)
  local vals = self:values(stmt.Effect)
  if #vals.unknown > 0 then return true end
  for i = 1, #vals do
    if vals[i].v == "Allow" then return true end
  end
  return false
end

Context.allows = memo("_allows", allows)

Context.allowed_statements = memo("_allowed", function(self, resource)
  local out = {}
  local pols = self:policies(resource)
  for i = 1, #pols do
    local pol = pols[i]
    local sts = self:statements(pol.doc)
    for j = 1, #sts do
      local st = sts[j]
      if self:allows(st.stmt) then
        local p = table.move(pol.path, 1, #pol.path, 1, {})
        table.move(st.path, 1, #st.path, #p + 1, p)
        out[#out + 1] = { stmt = st.stmt, kind = pol.kind, path = p }
      end
    end
  end
  return out
end, function(r) return type(r) ~= "table" end)

function Context:wildcard_principal(p)
  for _, e in ipairs(self:values(p)) do
    local v = e.v
    if v == "*" then return true end
    if type(v) == "table" and not intrinsic(v) then
      for _, s in ipairs(self:strings(v.AWS)) do
        if s == "*" then return true end
      end
    end
  end
  return false
end

--- The Properties table of a resource (an empty table when missing).
function M.props(r)
  return type(r) == "table" and type(r.Properties) == "table" and r.Properties or {}
end

--- A check reporting Properties.<keys...> unless it is surely true.
-- opts.skip(resource, ctx) -> true skips the resource; opts.what names the
-- property in the detail (default the dotted keys).
function M.require_true(keys, opts)
  local what = (opts and opts.what) or table.concat(keys, ".")
  return function(r, _, _, ctx)
    if opts and opts.skip and opts.skip(r, ctx) then return nil end
    local ok, detail = ctx:surely(M.props(r), M.truthy, keys)
    if ok then return nil end
    return { { path = M.path({ "Properties" }, table.unpack(keys)), detail = what .. " " .. detail } }
  end
end

--- Concatenates two path lists (returns a new list).
function M.path(base, ...)
  local out = {}
  local n = base and #base or 0
  for i = 1, n do out[i] = base[i] end
  for i = 1, select("#", ...) do out[n + i] = (select(i, ...)) end
  return out
end

return M
