-- Specs of lumu.test itself: the runner counts, hooks, filters and assertions.
local test = require "lumu.test"

-- A sink that collects what the runner writes.
local function sink()
  local buf = {}
  return { write = function(self, ...) for _, s in ipairs({ ... }) do buf[#buf + 1] = s end return self end,
    flush = function() end, text = function() return table.concat(buf) end }
end

local tmpfiles = {}
local function spec_file(src)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(src)
  f:close()
  tmpfiles[#tmpfiles + 1] = name
  return name
end

local function run(src, opts)
  opts = opts or {}
  local out = sink()
  opts.out = out
  local r = test.runner(opts)
  r:load_file(spec_file(src))
  local summary = r:run()
  return summary, out:text()
end

teardown(function()
  for _, f in ipairs(tmpfiles) do os.remove(f) end
end)

describe("lumu.test runner", function()
  it("counts successes, failures, errors and pending", function()
    local s, text = run([[
      describe("x", function()
        it("ok", function() assert.are.equal(1, 1) end)
        it("fails", function() assert.are.equal(1, 2) end)
        it("errors", function() error("kaput") end)
        pending("later")
        it("no body")
      end)
    ]])
    assert.are.equal(1, s.successes)
    assert.are.equal(1, s.failures)
    assert.are.equal(1, s.errors)
    assert.are.equal(2, s.pending)
    assert.are.equal(2, s.exit_code)
    assert.matches("1 passed, 2 failed, 2 skipped", text, 1, true)
    assert.matches("kaput", text, 1, true)
    assert.matches("Expected objects to be equal", text, 1, true)
  end)

  it("runs hooks in busted order", function()
    local s = run([[
      order = {}
      describe("outer", function()
        setup(function() table.insert(order, "setup") end)
        before_each(function() table.insert(order, "be-outer") end)
        after_each(function() table.insert(order, "ae-outer") end)
        teardown(function() table.insert(order, "teardown") end)
        describe("inner", function()
          before_each(function() table.insert(order, "be-inner") end)
          after_each(function() table.insert(order, "ae-inner") end)
          it("t", function() table.insert(order, "test") end)
        end)
        it("check", function()
          assert.are.same({"setup", "be-outer", "be-inner", "test", "ae-inner", "ae-outer", "be-outer"}, order)
        end)
      end)
    ]])
    assert.are.equal(2, s.successes)
    assert.are.equal(0, s.failures + s.errors)
  end)

  it("isolates globals between files", function()
    local out = sink()
    local r = test.runner { out = out }
    r:load_file(spec_file([[ leaked_global = 42 ; it("a", function() end) ]]))
    r:load_file(spec_file([[ it("b", function() assert.is_nil(leaked_global) end) ]]))
    local s = r:run()
    assert.are.equal(2, s.successes)
    assert.is_nil(rawget(_G, "leaked_global"))
  end)

  it("filters by name and by #tags", function()
    local src = [[
      describe("net #slow", function() it("a", function() end) end)
      describe("fast", function() it("b", function() end) it("c #live", function() end) end)
    ]]
    assert.are.equal(1, (run(src, { tags = { "slow" } })).successes)
    assert.are.equal(2, (run(src, { exclude_tags = { "live" } })).successes)
    assert.are.equal(1, (run(src, { filter = "fast b" })).successes)
    assert.are.equal(2, (run(src, { filter_out = "^net" })).successes)
  end)

  it("reports a syntax error in a spec file as an error", function()
    local s, text = run("describe('x', function( ")
    assert.are.equal(1, s.errors)
    assert.matches("expected", text)
  end)

  it("reports errors in describe bodies and hooks", function()
    local s = run([[
      describe("a", function() error("in describe") end)
      describe("b", function()
        before_each(function() error("in hook") end)
        it("x", function() end)
      end)
    ]])
    assert.are.equal(2, s.errors)
  end)

  it("writes TAP", function()
    local _, text = run([[ it("one", function() end) it("two", function() assert(false, "no") end) ]],
      { output = "tap" })
    assert.matches("ok 1 - one", text, 1, true)
    assert.matches("not ok 2 - two", text, 1, true)
    assert.matches("1..2", text, 1, true)
  end)

  it("writes JSON", function()
    local _, text = run([[ it("one", function() end) ]], { output = "json" })
    assert.matches('"successes":1', text, 1, true)
    assert.matches('"name":"one"', text, 1, true)
  end)

  it("finally() works in every loaded file, not only the last", function()
    local out = sink()
    local r = test.runner { out = out }
    r:load_file(spec_file([[ ran = 0 ; it("a", function() finally(function() ran = ran + 1 end) end) ]]))
    r:load_file(spec_file([[ it("b", function() finally(function() end) end) ]]))
    local s = r:run()
    assert.are.equal(2, s.successes, out:text())
  end)

  it("runs finally() after the test, even when it fails", function()
    local s = run([[
      done = false
      it("uses finally", function() finally(function() done = true end) error("x") end)
      it("sees it", function() assert.is_true(done) end)
    ]])
    assert.are.equal(1, s.successes)
    assert.are.equal(1, s.errors)
  end)
end)

describe("assertions", function()
  local A = test.assert
  local function fails(fn, pattern)
    local ok, err = pcall(fn)
    assert(not ok, "expected the assertion to fail")
    assert(test.is_assertion(err), "expected an assertion error, got " .. tostring(err))
    if pattern then assert(tostring(err):find(pattern, 1, true), tostring(err)) end
  end

  it("compares deeply with same", function()
    A.are.same({ a = { 1, 2 } }, { a = { 1, 2 } })
    fails(function() A.are.same({ a = { 1, 2 } }, { a = { 1, 3 } }) end, "same")
    A.are_not.same({ 1 }, { 2 })
    fails(function() A.is_not.same({ 1 }, { 1 }) end)
    A.same(0 / 0, 0 / 0)
  end)

  it("supports busted's modifier chains and underscore forms", function()
    A.is_true(true)
    A.is.False(false)
    A.is_nil(nil)
    A.is_not_nil(1)
    A.truthy(0)
    A.falsy(nil)
    A.is_number(1)
    A.is_string("x")
    A.has_no.errors(function() end)
    fails(function() A.is_true(1) end, "Expected true")
    fails(function() A.is_not_nil(nil) end)
  end)

  it("checks errors and their messages", function()
    A.has_error(function() error("boom") end, "boom")
    A.has_error(function() error({ code = 1 }) end, { code = 1 })
    A.error_matches(function() error("bad thing 42") end, "thing %d+")
    fails(function() A.has_error(function() end) end)
    fails(function() A.has_error(function() error("x") end, "y") end)
  end)

  it("matches, near, unique, contains", function()
    A.matches("^ab", "abc")
    A.near(1.0, 1.05, 0.1)
    A.unique({ 1, 2, 3 })
    A.contains({ 1, { 2 } }, { 2 })
    fails(function() A.unique({ { 1 }, { 1 } }) end)
    fails(function() A.near(1.0, 2.0, 0.5) end)
  end)

  it("assert(v, msg) still works as plain assert", function()
    assert.are.equal(5, A(5, "m"))
    fails(function() A(false, "my message") end, "my message")
  end)

  it("spies and stubs", function()
    local obj = { add = function(a, b) return a + b end }
    local s = test.spy.on(obj, "add")
    assert.are.equal(3, obj.add(1, 2))
    A.spy(s).was.called(1)
    A.spy(s).was.called_with(1, 2)
    s:revert()
    assert.is_false(test.spy.is_spy(obj.add))
    local st = test.stub(obj, "add", 99)
    assert.are.equal(99, obj.add(1, 2))
    fails(function() A.spy(st).was.called(2) end, "called 1 time")
  end)

  it("lets teams register their own checks", function()
    test.register("even", function(n) return n % 2 == 0, "Expected an even number: " .. tostring(n) end)
    A.is.even(4)
    A.is_not.even(3)
    fails(function() A.even(3) end, "even")
  end)
end)
