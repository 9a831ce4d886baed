--- A busted-style test runner: describe/it, hooks, assertions, spies.
--
-- local test = require "lumu.test"
-- local r = test.runner{ filter=, tags=, exclude_tags=, output="plain"|"tap"|"json", verbose= }
-- r:load_file("spec/x_spec.lua")   -- collects (each file runs insulated)
-- local summary = r:run()          -- {successes=, failures=, errors=, pending=, ...}
--
-- Inside spec files: describe/context, it/spec/test, pending, before_each,
-- after_each, setup/teardown (and lazy_/strict_ variants), assert (callable,
-- with busted's modifiers: is/are/has/does/was + not/no), spy, stub, mock,
-- finally(fn) inside a test.
-- test.register(name, fn): a check usable as assert.NAME(...);
-- test.register_subject(name, methods): assert.NAME(value).METHOD(...);
-- test.fail(message [, level]): raises an assertion failure.
local pretty = require "lumu.pretty"

local M = {}

-- ---------------------------------------------------------------------------
-- Assertion errors and assertions
-- ---------------------------------------------------------------------------

local AssertionError = {}
AssertionError.__index = AssertionError
AssertionError.__tostring = function(e) return e.message end

local function fail(message, level)
  error(setmetatable({ message = message, lumu_assertion = true }, AssertionError), (level or 1) + 1)
end

function M.is_assertion(e)
  return getmetatable(e) == AssertionError
end

local function show(v)
  return "(" .. type(v) .. ") " .. pretty.format(v, { depth = 8 })
end

local function deep_equal(a, b, seen)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then
    -- NaN is the same as NaN for `same`
    return type(a) == "number" and type(b) == "number" and a ~= a and b ~= b
  end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, v in pairs(a) do
    if not deep_equal(v, b[k], seen) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
M.deep_equal = deep_equal

-- Each check: function(args...) -> ok, message (message phrased for the
-- positive case; negation is handled by the caller).
local checks = {}
local function def(names, fn)
  for name in names:gmatch("%S+") do checks[name] = fn end
end

def("same", function(expected, actual)
  return deep_equal(expected, actual),
    "Expected objects to be the same.\nPassed in:\n" .. show(actual) .. "\nExpected:\n" .. show(expected)
end)
def("equal equals", function(expected, actual)
  return expected == actual,
    "Expected objects to be equal.\nPassed in:\n" .. show(actual) .. "\nExpected:\n" .. show(expected)
end)
def("unique", function(list)
  local seen = {}
  for _, v in ipairs(list) do
    for _, w in ipairs(seen) do
      if deep_equal(v, w) then return false, "Expected list to have unique values:\n" .. show(list) end
    end
    seen[#seen + 1] = v
  end
  return true, "Expected list to have unique values:\n" .. show(list)
end)
def("near", function(expected, actual, tolerance)
  return type(actual) == "number" and math.abs(actual - expected) <= tolerance,
    string.format("Expected %s to be near %s (tolerance %s)", tostring(actual), tostring(expected), tostring(tolerance))
end)
def("matches match", function(pattern, actual, init, plain)
  return type(actual) == "string" and actual:find(pattern, init, plain) ~= nil,
    "Expected string to match pattern " .. string.format("%q", pattern) .. ".\nPassed in:\n" .. show(actual)
end)
def("truthy", function(v) return v ~= nil and v ~= false, "Expected to be truthy, but value was:\n" .. show(v) end)
def("falsy", function(v) return v == nil or v == false, "Expected to be falsy, but value was:\n" .. show(v) end)
def("True", function(v) return v == true, "Expected true, but value was:\n" .. show(v) end)
def("False", function(v) return v == false, "Expected false, but value was:\n" .. show(v) end)
def("Nil", function(v) return v == nil, "Expected nil, but value was:\n" .. show(v) end)
for _, t in ipairs({ "number", "string", "table", "function", "boolean", "userdata", "thread" }) do
  def(t, function(v) return type(v) == t, "Expected a " .. t .. ", but value was:\n" .. show(v) end)
end
def("returned_arguments returned", function(...) return select("#", ...) > 0, "Expected arguments" end)
def("contains contain", function(list, value)
  for _, v in pairs(list) do
    if deep_equal(v, value) then return true, "Expected table to contain " .. show(value) end
  end
  return false, "Expected table to contain " .. show(value) .. "\nPassed in:\n" .. show(list)
end)
def("key", function(key, tbl)
  return type(tbl) == "table" and tbl[key] ~= nil, "Expected table to have key " .. show(key)
end)

-- error(fn [, expected]): fn must raise; expected compares the message (with
-- the "file:line: " prefix stripped) or the error object.
local function call_error(fn, ...)
  local ok, err = pcall(fn, ...)
  return ok, err
end
local function strip_pos(e)
  if type(e) == "string" then return (e:gsub("^[^:\n]+:%d+: ", "")) end
  return e
end
def("error errors has_error", function(fn, expected)
  local ok, err = call_error(fn)
  if ok then return false, "Expected a different error.\nCaught:\n(no error)\nExpected:\n" .. show(expected) end
  if expected == nil then return true, "Expected no error, but caught:\n" .. show(err) end
  return deep_equal(expected, strip_pos(err)) or deep_equal(expected, err),
    "Expected a different error.\nCaught:\n" .. show(err) .. "\nExpected:\n" .. show(expected)
end)
def("error_matches", function(fn, pattern, init, plain)
  local ok, err = call_error(fn)
  if ok then return false, "Expected an error matching " .. string.format("%q", pattern) .. ", but none was raised" end
  local s = tostring(err)
  return s:find(pattern, init, plain) ~= nil,
    "Expected error to match " .. string.format("%q", pattern) .. ".\nCaught:\n" .. show(err)
end)

-- Spies -------------------------------------------------------------------
local Spy = {}
Spy.__index = Spy
Spy.__call = function(self, ...)
  self.calls[#self.calls + 1] = table.pack(...)
  if self.fn then
    local r = table.pack(self.fn(...))
    self.returns[#self.returns + 1] = r
    return table.unpack(r, 1, r.n)
  end
  self.returns[#self.returns + 1] = table.pack()
end

local function is_spy(v) return getmetatable(v) == Spy end

local spy = {}
function spy.new(fn)
  return setmetatable({ fn = fn, calls = {}, returns = {} }, Spy)
end
function spy.on(tbl, name)
  local original = tbl[name]
  local s = spy.new(original)
  s.target, s.key, s.original = tbl, name, original
  tbl[name] = s
  return s
end
function spy.is_spy(v) return is_spy(v) end
function Spy:revert()
  if self.target then self.target[self.key] = self.original end
  return self
end
function Spy:clear()
  self.calls, self.returns = {}, {}
  return self
end
function Spy:called_with(...)
  local want = table.pack(...)
  for _, c in ipairs(self.calls) do
    if deep_equal(want, c) then return true end
  end
  return false
end
M.spy = spy

--- stub(tbl, name, ...): replaces tbl[name] with a spy returning `...`.
local function stub(tbl, name, ...)
  local ret = table.pack(...)
  local s = spy.on(tbl, name)
  s.fn = function() return table.unpack(ret, 1, ret.n) end
  return s
end
M.stub = setmetatable({ new = stub }, { __call = function(_, ...) return stub(...) end })

--- mock(tbl [, use_stubs]): spies (or stubs) every function of tbl, deeply.
function M.mock(tbl, use_stubs, seen)
  seen = seen or {}
  if seen[tbl] then return tbl end
  seen[tbl] = true
  for k, v in pairs(tbl) do
    if type(v) == "function" then
      if use_stubs then stub(tbl, k) else spy.on(tbl, k) end
    elseif type(v) == "table" and not is_spy(v) then
      M.mock(v, use_stubs, seen)
    end
  end
  return tbl
end

def("called", function(s, times)
  if not is_spy(s) then return false, "Expected a spy, got " .. show(s) end
  local n = #s.calls
  if times == nil then return n > 0, "Expected spy to be called, but it was not" end
  return n == times, string.format("Expected spy to be called %d time(s), but it was called %d time(s)", times, n)
end)
def("called_with", function(s, ...)
  if not is_spy(s) then return false, "Expected a spy, got " .. show(s) end
  return s:called_with(...), "Expected spy to be called with:\n" .. show(table.pack(...)) ..
    "\nCalls were:\n" .. show(s.calls)
end)

-- The assert proxy: assert(v, msg), assert.<mods>.<check>(...)
local FILLERS = { is = true, are = true, has = true, does = true, was = true, have = true,
  be = true, to = true, ["is_"] = true }
local NEGATIONS = { ["not"] = true, no = true, is_not = true, are_not = true, has_no = true,
  does_not = true, was_not = true, not_ = true }

local function lookup(name)
  local c = checks[name]
  if c then return c, false end
  -- is_nil, are_same, has_error, is_not_nil, has_no_errors ...
  local lower = name:lower()
  for prefix in pairs(NEGATIONS) do
    local rest = lower:match("^" .. prefix .. "_(.+)$")
    if rest then
      local c2 = checks[rest] or checks[rest:gsub("^%l", string.upper)] or (rest == "nil" and checks.Nil)
      if c2 then return c2, true end
    end
  end
  for prefix in pairs(FILLERS) do
    local rest = lower:match("^" .. prefix:gsub("_$", "") .. "_(.+)$")
    if rest then
      local c2 = checks[rest] or checks[rest:gsub("^%l", string.upper)] or (rest == "nil" and checks.Nil)
      if c2 then return c2, false end
    end
  end
  if lower == "nil" then return checks.Nil, false end
  if lower == "true" then return checks.True, false end
  if lower == "false" then return checks.False, false end
  return nil
end

-- Subject assertions: assert.NAME(value).METHOD(...) (see M.register_subject).
local subjects = {}

local function subject_proxy(name, methods, value, negated)
  local proxy = {}
  return setmetatable(proxy, {
    __index = function(_, method)
      local fn = methods[method]
      if type(fn) ~= "function" then
        local names = {}
        for k in pairs(methods) do names[#names + 1] = k end
        table.sort(names)
        error("unknown assertion 'assert." .. name .. "(...)." .. tostring(method) .. "' (" .. table.concat(names, ", ")
          .. ")", 2)
      end
      return function(first, ...)
        local ok, msg
        if first == proxy then ok, msg = fn(value, ...) else ok, msg = fn(value, first, ...) end
        msg = msg ~= nil and tostring(msg) or ("assert." .. name .. "(...)." .. method .. " failed")
        if negated then
          if ok then fail("Expected not: " .. msg, 2) end
        elseif not ok then
          fail(msg, 2)
        end
        return proxy
      end
    end,
    __tostring = function() return "assert." .. name .. "(" .. pretty.format(value, { depth = 2 }) .. ")" end,
  })
end

local function make_assert(negated, bound)
  return setmetatable({}, {
    __index = function(_, key)
      if FILLERS[key] then return make_assert(negated, bound) end
      if NEGATIONS[key] then return make_assert(not negated, bound) end
      if subjects[key] and not bound then
        local methods = subjects[key]
        return function(value) return subject_proxy(key, methods, value, negated) end
      end
      if (key == "spy" or key == "stub") and not bound then
        -- assert.spy(s).was.called(2)
        return function(s) return make_assert(negated, { s }) end
      end
      local c, neg = lookup(key)
      if not c then error("unknown assertion '" .. tostring(key) .. "'", 2) end
      local negate = negated ~= neg
      return function(...)
        local ok, msg
        if bound then ok, msg = c(bound[1], ...) else ok, msg = c(...) end
        if negate then
          if ok then
            fail((msg:gsub("^Expected ", "Expected not ", 1)), 2)
          end
        elseif not ok then
          fail(msg, 2)
        end
        return ...
      end
    end,
    __call = function(_, v, msg, ...)
      if not v then fail(msg ~= nil and tostring(msg) or "assertion failed!", 2) end
      return v, msg, ...
    end,
  })
end

M.assert = make_assert(false)

--- Adds a check usable as assert.NAME / assert.is_not.NAME:
-- test.register("even", function(n) return n % 2 == 0, "Expected even: " .. n end)
function M.register(name, fn)
  checks[name] = fn
end

--- Adds a subject assertion assert.NAME(value).METHOD(...): methods is a
-- table METHOD -> function(value, ...) -> ok, message (phrased for the
-- failure); each call raises an assertion failure when ok is false (or,
-- under assert.is_not.NAME(value), when ok is true) and returns the proxy,
-- so calls chain.  An unknown METHOD raises naming the known ones.
-- test.register_subject("security_group", { does_not_allow = function(sg, spec) ... end })
function M.register_subject(name, methods)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    error("bad argument #1 to 'register_subject' (identifier expected)", 2)
  end
  if type(methods) ~= "table" then error("bad argument #2 to 'register_subject' (table expected)", 2) end
  subjects[name] = methods
end

--- Raises an assertion failure with message (level as error()).
function M.fail(message, level)
  fail(tostring(message), (level or 1) + 1)
end

-- ---------------------------------------------------------------------------
-- Collection
-- ---------------------------------------------------------------------------

local Runner = {}
Runner.__index = Runner

--- Creates a runner.  opts: filter (Lua pattern on the full name),
-- filter_out, tags / exclude_tags (lists), output, verbose, out (a file).
function M.runner(opts)
  opts = opts or {}
  local r = setmetatable({ opts = opts, files = {}, out = opts.out or io.stdout }, Runner)
  r.root = { kind = "root", name = "", children = {}, hooks = {} }
  return r
end

local function new_block(parent, name, file)
  return { kind = "describe", name = name, parent = parent, children = {}, file = file,
    hooks = { before_each = {}, after_each = {}, setup = {}, teardown = {} } }
end

local function caller_line(level)
  local info = debug.getinfo(level + 1, "Sl")
  return info and (info.short_src .. ":" .. (info.currentline or 0)) or "?"
end

-- The functions a spec file sees; `state.current` is the open describe.
function Runner:_dsl(state, file)
  local dsl = {}
  local function add_hook(kind)
    return function(fn)
      local hooks = state.current.hooks
      hooks[kind] = hooks[kind] or {}
      table.insert(hooks[kind], fn)
    end
  end
  function dsl.describe(name, fn)
    local block = new_block(state.current, tostring(name), file)
    block.where = caller_line(2)
    table.insert(state.current.children, block)
    local prev = state.current
    state.current = block
    local ok, err = xpcall(fn, debug.traceback)
    state.current = prev
    if not ok then
      table.insert(block.children, { kind = "error", name = "describe body", where = block.where, err = err })
    end
  end
  dsl.context = dsl.describe
  dsl.insulate = dsl.describe
  dsl.expose = dsl.describe
  function dsl.it(name, fn)
    table.insert(state.current.children, { kind = fn and "test" or "pending", name = tostring(name),
      fn = fn, parent = state.current, where = caller_line(2), file = file })
  end
  dsl.spec = dsl.it
  dsl.test = dsl.it
  function dsl.pending(name)
    table.insert(state.current.children, { kind = "pending", name = tostring(name),
      parent = state.current, where = caller_line(2), file = file })
  end
  dsl.before_each = add_hook("before_each")
  dsl.after_each = add_hook("after_each")
  dsl.setup = add_hook("setup")
  dsl.teardown = add_hook("teardown")
  dsl.lazy_setup, dsl.strict_setup = dsl.setup, dsl.setup
  dsl.lazy_teardown, dsl.strict_teardown = dsl.teardown, dsl.teardown
  function dsl.finally(fn)
    local list = self.current_finally -- the running test's, whatever file defined it
    if not list then error("finally() is only allowed inside a test", 2) end
    table.insert(list, fn)
  end
  dsl.assert = M.assert
  dsl.spy = spy
  dsl.stub = M.stub
  dsl.mock = M.mock
  return dsl
end

--- Loads a spec file: runs its top level, collecting describe/it blocks.
-- The file runs with its own globals (reads fall through to _G) and
-- package.loaded is restored afterwards, so files do not leak into each other.
function Runner:load_file(path)
  local block = new_block(self.root, path, path)
  block.is_file = true
  table.insert(self.root.children, block)
  local state = { current = block }
  self.state = state
  local env = setmetatable(self:_dsl(state, path), { __index = _G })
  env._G = env
  local fn, err = loadfile(path, "t", env)
  if not fn then
    table.insert(block.children, { kind = "error", name = "load", where = path, err = err })
    return false
  end
  local loaded = {}
  for k, v in pairs(package.loaded) do loaded[k] = v end
  local ok, rerr = xpcall(fn, debug.traceback)
  block.loaded_snapshot = loaded
  if not ok then
    table.insert(block.children, { kind = "error", name = "file body", where = path, err = rerr })
  end
  for k in pairs(package.loaded) do
    if loaded[k] == nil then package.loaded[k] = nil end
  end
  return ok
end

-- ---------------------------------------------------------------------------
-- Running
-- ---------------------------------------------------------------------------

local function full_name(node)
  local parts = {}
  local n = node
  while n and n.kind ~= "root" do
    if not n.is_file then table.insert(parts, 1, n.name) end
    n = n.parent
  end
  return table.concat(parts, " ")
end

local function tags_of(name)
  local t = {}
  for tag in name:gmatch("#([%w_%-]+)") do t[tag] = true end
  return t
end

function Runner:_selected(node)
  local name = full_name(node)
  local o = self.opts
  if o.filter and not name:find(o.filter) then return false end
  if o.filter_out and name:find(o.filter_out) then return false end
  local tags = tags_of(name)
  if o.tags and #o.tags > 0 then
    local any = false
    for _, t in ipairs(o.tags) do if tags[t] then any = true end end
    if not any then return false end
  end
  for _, t in ipairs(o.exclude_tags or {}) do
    if tags[t] then return false end
  end
  return true
end

local function has_selected(self, block)
  for _, c in ipairs(block.children) do
    if c.kind == "test" or c.kind == "pending" then
      if self:_selected(c) then return true end
    elseif c.kind == "error" then
      return true
    elseif c.kind == "describe" and has_selected(self, c) then
      return true
    end
  end
  return false
end

-- Runs fn, classifying the outcome: "success" | "failure" | "error", message.
local function protected(fn, ...)
  local ok, err = xpcall(fn, function(e)
    if M.is_assertion(e) then
      e.trace = debug.traceback("", 2)
      return e
    end
    return debug.traceback(tostring(e), 2)
  end, ...)
  if ok then return "success" end
  if M.is_assertion(err) then return "failure", err.message, err.trace end
  return "error", tostring(err)
end

local function collect_hooks(node, kind, reverse)
  local chain = {}
  local n = node.parent
  while n do
    if n.hooks and n.hooks[kind] then table.insert(chain, 1, n.hooks[kind]) end
    n = n.parent
  end
  local fns = {}
  for _, list in ipairs(chain) do
    for _, f in ipairs(list) do fns[#fns + 1] = f end
  end
  if reverse then
    local r = {}
    for i = #fns, 1, -1 do r[#r + 1] = fns[i] end
    return r
  end
  return fns
end

function Runner:_record(node, status, message, trace)
  local res = self.results
  local entry = { name = full_name(node), status = status, message = message, where = node.where,
    file = node.file, trace = trace }
  table.insert(res.list, entry)
  res[status == "success" and "successes" or status == "failure" and "failures"
    or status == "error" and "errors" or "pending"] =
    res[status == "success" and "successes" or status == "failure" and "failures"
    or status == "error" and "errors" or "pending"] + 1
  self:_report_one(entry)
end

function Runner:_run_test(node)
  if not self:_selected(node) then return end
  if node.kind == "pending" then
    self:_record(node, "pending")
    return
  end
  local status, message, trace = "success", nil, nil
  for _, h in ipairs(collect_hooks(node, "before_each")) do
    status, message, trace = protected(h)
    if status ~= "success" then
      message = "before_each: " .. tostring(message)
      break
    end
  end
  if status == "success" then
    local finally = {}
    self.current_finally = finally
    status, message, trace = protected(node.fn)
    self.current_finally = nil
    for _, f in ipairs(finally) do
      local s2, m2 = protected(f)
      if s2 ~= "success" and status == "success" then status, message = s2, "finally: " .. tostring(m2) end
    end
  end
  for _, h in ipairs(collect_hooks(node, "after_each", true)) do
    local s2, m2 = protected(h)
    if s2 ~= "success" and status == "success" then status, message = s2, "after_each: " .. tostring(m2) end
  end
  self:_record(node, status, message, trace)
end

function Runner:_run_block(block)
  if not has_selected(self, block) then return end
  local setup_failed
  for _, h in ipairs(block.hooks.setup or {}) do
    local s, m = protected(h)
    if s ~= "success" then
      setup_failed = m
      break
    end
  end
  if setup_failed then
    self:_record({ name = "setup", parent = block, where = block.where, file = block.file }, "error",
      "setup: " .. tostring(setup_failed))
  else
    for _, c in ipairs(block.children) do
      if c.kind == "describe" then
        self:_run_block(c)
      elseif c.kind == "error" then
        self:_record({ name = c.name, parent = block, where = c.where, file = block.file }, "error", c.err)
      else
        self:_run_test(c)
      end
    end
  end
  for _, h in ipairs(block.hooks.teardown or {}) do
    local s, m = protected(h)
    if s ~= "success" then
      self:_record({ name = "teardown", parent = block, where = block.where, file = block.file }, "error",
        "teardown: " .. tostring(m))
    end
  end
end

-- Output ---------------------------------------------------------------------

function Runner:_report_one(e)
  local o, out = self.opts.output or "plain", self.out
  if o == "tap" then
    self.tapn = (self.tapn or 0) + 1
    if e.status == "success" then
      out:write(string.format("ok %d - %s\n", self.tapn, e.name))
    elseif e.status == "pending" then
      out:write(string.format("ok %d - %s # SKIP pending\n", self.tapn, e.name))
    else
      out:write(string.format("not ok %d - %s\n", self.tapn, e.name))
      for line in (tostring(e.message) .. "\n" .. (e.where or "")):gmatch("[^\n]+") do
        out:write("# ", line, "\n")
      end
    end
  elseif o == "plain" and self.opts.verbose then
    local mark = ({ success = "ok", failure = "FAIL", error = "ERROR", pending = "pending" })[e.status]
    out:write(string.format("%-7s %s\n", mark, e.name))
  elseif o == "plain" then
    out:write(({ success = ".", failure = "F", error = "E", pending = "-" })[e.status])
    out:flush()
  end
end

local function json_string(s)
  return '"' .. tostring(s):gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

function Runner:_report_end(elapsed)
  local res, out, o = self.results, self.out, self.opts.output or "plain"
  if o == "tap" then
    out:write(string.format("1..%d\n", self.tapn or 0))
  elseif o == "json" then
    local items = {}
    for _, e in ipairs(res.list) do
      items[#items + 1] = string.format('{"name":%s,"status":%s,"where":%s%s}', json_string(e.name),
        json_string(e.status), json_string(e.where or ""),
        e.message and (',"message":' .. json_string(e.message)) or "")
    end
    out:write(string.format('{"successes":%d,"failures":%d,"errors":%d,"pending":%d,"duration":%.6f,"tests":[%s]}\n',
      res.successes, res.failures, res.errors, res.pending, elapsed, table.concat(items, ",")))
    return
  end
  if o == "plain" and not self.opts.verbose then out:write("\n") end
  for _, e in ipairs(res.list) do
    if e.status == "failure" or e.status == "error" then
      out:write(string.format("\n%s → %s\n%s\n", e.status == "failure" and "Failure" or "Error",
        e.where or "?", e.name))
      out:write(tostring(e.message), "\n")
    end
  end
  out:write(string.format("%d success%s / %d failure%s / %d error%s / %d pending : %.6f seconds\n",
    res.successes, res.successes == 1 and "" or "es", res.failures, res.failures == 1 and "" or "s",
    res.errors, res.errors == 1 and "" or "s", res.pending, elapsed))
  out:write(string.format("%d passed, %d failed, %d skipped\n", res.successes,
    res.failures + res.errors, res.pending))
end

--- Runs everything loaded.  Returns the summary table.
function Runner:run()
  self.results = { list = {}, successes = 0, failures = 0, errors = 0, pending = 0 }
  local t0 = os.clock()
  local wall0 = os.time()
  for _, file in ipairs(self.root.children) do
    self:_run_block(file)
  end
  local elapsed = os.clock() - t0
  if elapsed == 0 then elapsed = os.difftime(os.time(), wall0) end
  self:_report_end(elapsed)
  local r = self.results
  r.exit_code = math.min(255, r.failures + r.errors)
  return r
end

return M
