-- Specs of lumu.async: tasks, timers, all/map/timeout/cancel, and HTTP
-- requests in flight together (against tests/support/httpd.py on 127.0.0.1).
local async = require "lumu.async"
local http = require "lumu.http"
local _http = require "lumu._http"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local HTTPD = HERE .. "/../support/httpd.py"

local now = async.now

-- Requests must reach 127.0.0.1 directly whatever the caller's *_proxy
-- environment says.
local NOPROXY = "unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY no_proxy NO_PROXY; "
local real_proxy_for = http.proxy_for
local function isolate_proxies()
  http.proxy_for = function(url, getenv) return real_proxy_for(url, getenv or function() return nil end) end
end
local function restore_proxies() http.proxy_for = real_proxy_for end

local function elapsed(fn)
  local t0 = now()
  fn()
  return now() - t0
end

describe("lumu.async", function()
  describe("run", function()
    it("returns fn's results, nils included", function()
      local a, b, c, d = async.run(function(x, y) return x, nil, y, nil end, 1, 2)
      assert.are.same({ 1, nil, 2, nil }, { a, b, c, d })
      assert.are.equal(4, select("#", async.run(function() return 1, nil, 2, nil end)))
    end)

    it("re-raises fn's error with the task's traceback", function()
      local ok, err = pcall(async.run, function()
        async.sleep(0)
        error("boom")
      end)
      assert.is_false(ok)
      assert.matches("async_spec%.lua:%d+: boom", err)
      assert.matches("stack traceback:", err)
    end)

    it("re-raises non-string errors unchanged", function()
      local obj = { code = 42 }
      local ok, err = pcall(async.run, function() error(obj) end)
      assert.is_false(ok)
      assert.are.equal(obj, err)
    end)

    it("waits for spawned tasks nobody awaited", function()
      local done = {}
      async.run(function()
        for i = 1, 3 do
          async.spawn(function() async.sleep(0.01 * i) done[#done + 1] = i end)
        end
      end)
      assert.are.same({ 1, 2, 3 }, done)
    end)

    it("raises the error of a spawned task nobody awaited", function()
      assert.error_matches(function()
        async.run(function()
          async.spawn(function() async.sleep(0.01) error("lost task") end)
          return "main ok"
        end)
      end, "lost task")
    end)

    it("does not re-raise a spawned error that was awaited and caught", function()
      local r = async.run(function()
        local t = async.spawn(function() error("handled") end)
        local ok, err = pcall(async.await, t)
        assert.is_false(ok)
        assert.matches("handled", err)
        return "fine"
      end)
      assert.are.equal("fine", r)
    end)

    it("cancels the other tasks when fn fails", function()
      local closed = false
      local finished = false
      assert.error_matches(function()
        async.run(function()
          async.spawn(function()
            local _ <close> = setmetatable({}, { __close = function() closed = true end })
            async.sleep(5)
            finished = true
          end)
          async.sleep(0.01)
          error("main failed")
        end)
      end, "main failed")
      assert.is_true(closed)
      assert.is_false(finished)
    end)

    it("detects a deadlock", function()
      assert.error_matches(function()
        async.run(function()
          local a, b
          a = async.spawn(function() async.sleep(0) return async.await(b) end)
          b = async.spawn(function() async.sleep(0) return async.await(a) end)
          return async.await(a)
        end)
      end, "deadlock")
    end)

    it("inside a task just calls fn", function()
      local r = async.run(function()
        return async.run(function(x) return async.running() and x * 2 end, 21)
      end)
      assert.are.equal(42, r)
    end)

    it("rejects a non-function", function()
      assert.error_matches(function() async.run(42) end, "expected a function")
    end)

    it("accepts callable tables", function()
      local obj = setmetatable({}, { __call = function(_, x) return x + 1 end })
      assert.are.equal(2, async.run(obj, 1))
    end)
  end)

  describe("spawn and await", function()
    it("await returns the task's results", function()
      local a, b = async.run(function()
        local t = async.spawn(function(x) async.sleep(0.01) return x, x + 1 end, 10)
        assert.are.equal("ready", async.status(t))
        return async.await(t)
      end)
      assert.are.same({ 10, 11 }, { a, b })
    end)

    it("await of a finished task returns at once, more than once", function()
      async.run(function()
        local t = async.spawn(function() return "v" end)
        async.sleep(0.01)
        assert.are.equal("done", async.status(t))
        assert.are.equal("v", async.await(t))
        assert.are.equal("v", async.await(t))
      end)
    end)

    it("await re-raises the task's error unchanged", function()
      local obj = { kind = "x" }
      async.run(function()
        local t = async.spawn(function() error(obj) end)
        local ok, err = pcall(async.await, t)
        assert.is_false(ok)
        assert.are.equal(obj, err)
        assert.are.equal("failed", async.status(t))
      end)
    end)

    it("spawned tasks start at the next turn, in order", function()
      local order = {}
      async.run(function()
        for i = 1, 3 do async.spawn(function() order[#order + 1] = i end) end
        order[#order + 1] = "main"
      end)
      assert.are.same({ "main", 1, 2, 3 }, order)
    end)

    it("running() tells tasks from plain code", function()
      assert.is_false(async.running())
      local inside, nested, gen
      async.run(function()
        inside = async.running()
        nested = async.await(async.spawn(function() return async.running() end))
        gen = coroutine.wrap(function() return async.running() end)()
      end)
      assert.is_true(inside)
      assert.is_true(nested)
      assert.is_false(gen) -- a plain coroutine inside a task is not a task
    end)

    it("spawn, await, all and map raise outside a task", function()
      assert.error_matches(function() async.spawn(function() end) end, "only allowed inside async.run")
      assert.error_matches(function() async.all({}) end, "only allowed inside an async task")
      assert.error_matches(function() async.map({}, print) end, "only allowed inside an async task")
      local t
      async.run(function() t = async.spawn(function() end) end)
      assert.error_matches(function() async.await(t) end, "only allowed inside an async task")
    end)

    it("rejects bad arguments", function()
      async.run(function()
        assert.error_matches(function() async.await({}) end, "expected a task")
        assert.error_matches(function() async.spawn(5) end, "expected a function")
        assert.error_matches(function() async.all({ 1 }) end, "item 1 is a number")
        assert.error_matches(function() async.sleep(-1) end, "non%-negative")
        assert.error_matches(function() async.sleep("1") end, "non%-negative")
        assert.error_matches(function() async.map({}, print, { limit = 0 }) end, "positive integer")
      end)
    end)

    it("a task cannot await itself", function()
      async.run(function()
        local me
        me = async.spawn(function() return pcall(async.await, me) end)
        local ok, err = async.await(me)
        assert.is_false(ok)
        assert.matches("cannot await itself", err)
      end)
    end)

    it("a raw coroutine.yield in a task is an error", function()
      assert.error_matches(function()
        async.run(function() coroutine.yield(1) end)
      end, "coroutine.yield called directly")
    end)

    it("plain coroutines still work inside tasks", function()
      local r = async.run(function()
        local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
        async.sleep(0)
        return gen() + gen() + gen()
      end)
      assert.are.equal(6, r)
    end)

    it("handles a chain of 200 nested awaits", function()
      local function chain(n)
        if n == 0 then return 0 end
        return 1 + async.await(async.spawn(chain, n - 1))
      end
      assert.are.equal(200, async.run(chain, 200))
    end)

    it("runs 5000 tasks", function()
      local sum = async.run(function()
        local tasks = {}
        for i = 1, 5000 do tasks[i] = async.spawn(function() async.sleep(0) return i end) end
        local s = 0
        for i = 1, 5000 do s = s + async.await(tasks[i]) end
        return s
      end)
      assert.are.equal(5000 * 5001 // 2, sum)
    end)
  end)

  describe("sleep", function()
    it("wakes tasks in deadline order", function()
      local order = {}
      async.run(function()
        for _, d in ipairs({ 0.06, 0.02, 0.04, 0.0 }) do
          async.spawn(function() async.sleep(d) order[#order + 1] = d end)
        end
      end)
      assert.are.same({ 0.0, 0.02, 0.04, 0.06 }, order)
    end)

    it("sleeps concurrently in many tasks", function()
      local dt = elapsed(function()
        async.run(function()
          local fns = {}
          for i = 1, 20 do fns[i] = function() async.sleep(0.2) end end
          async.all(fns)
        end)
      end)
      assert.is_truthy(dt >= 0.19 and dt < 0.6, "took " .. dt)
    end)

    it("does not busy-wait", function()
      local c0 = os.clock()
      local dt = elapsed(function() async.run(function() async.sleep(0.3) end) end)
      local cpu = os.clock() - c0
      assert.is_truthy(dt >= 0.29, "took " .. dt)
      assert.is_truthy(cpu < 0.1, "cpu " .. cpu)
    end)

    it("blocks outside a task", function()
      local dt = elapsed(function() async.sleep(0.1) end)
      assert.is_truthy(dt >= 0.099 and dt < 0.5, "took " .. dt)
    end)

    it("sleep(0) lets other tasks run", function()
      local order = {}
      async.run(function()
        async.spawn(function() order[#order + 1] = "b" end)
        order[#order + 1] = "a1"
        async.sleep(0)
        order[#order + 1] = "a2"
      end)
      assert.are.same({ "a1", "b", "a2" }, order)
    end)
  end)

  describe("all", function()
    it("returns packed results in list order", function()
      local res = async.run(function()
        local t = async.spawn(function() async.sleep(0.02) return "task" end)
        return async.all({
          function() async.sleep(0.03) return 1, 2 end,
          t,
          function() return nil end,
        })
      end)
      assert.are.equal(3, res.n)
      assert.are.same({ 1, 2, n = 2 }, res[1])
      assert.are.same({ "task", n = 1 }, res[2])
      assert.are.same({ n = 1 }, res[3])
    end)

    it("of an empty list is empty", function()
      assert.are.same({ n = 0 }, async.run(function() return async.all({}) end))
    end)

    it("raises the single failure after all settle", function()
      local slow_done = false
      async.run(function()
        local ok, err = pcall(async.all, {
          function() error({ which = "first" }) end,
          function() async.sleep(0.05) slow_done = true end,
        })
        assert.is_false(ok)
        assert.are.same({ which = "first" }, err)
        assert.is_true(slow_done)
      end)
    end)

    it("raises an aggregate error for several failures", function()
      async.run(function()
        local ok, err = pcall(async.all, {
          function() error("e1", 0) end,
          function() return "ok" end,
          function() async.sleep(0.01) error("e3", 0) end,
        })
        assert.is_false(ok)
        assert.are.equal("aggregate", err.kind)
        assert.are.same({ 1, 3 }, err.indexes)
        assert.are.equal("e1", err.errors[1])
        assert.are.equal("e3", err.errors[3])
        local text = tostring(err)
        assert.matches("2 of 3 tasks failed", text)
        assert.matches("%[3%] e3", text)
      end)
    end)
  end)

  describe("map", function()
    it("maps in order with bounded concurrency", function()
      local active, peak = 0, 0
      local res = async.run(function()
        local list = {}
        for i = 1, 12 do list[i] = i end
        return async.map(list, function(v, i)
          active = active + 1
          peak = math.max(peak, active)
          async.sleep(0.01 * (13 - i) % 0.05)
          active = active - 1
          return v * v
        end, { limit = 3 })
      end)
      assert.are.equal(3, peak)
      assert.are.equal(12, res.n)
      for i = 1, 12 do assert.are.equal(i * i, res[i]) end
    end)

    it("takes about n / limit rounds of time", function()
      local dt = elapsed(function()
        async.run(function()
          async.map({ 1, 2, 3, 4, 5, 6 }, function() async.sleep(0.1) end, { limit = 2 })
        end)
      end)
      assert.is_truthy(dt >= 0.29 and dt < 0.6, "took " .. dt)
    end)

    it("stops starting items after a failure and raises it", function()
      local started = {}
      async.run(function()
        local ok, err = pcall(async.map, { 1, 2, 3, 4, 5, 6 }, function(v)
          started[#started + 1] = v
          async.sleep(0.01)
          if v == 2 then error("bad item 2", 0) end
        end, { limit = 2 })
        assert.is_false(ok)
        assert.are.equal("bad item 2", err)
      end)
      assert.is_truthy(#started < 6, "started " .. #started)
    end)

    it("of an empty list is empty", function()
      assert.are.same({ n = 0 }, async.run(function() return async.map({}, error) end))
    end)
  end)

  describe("timeout and cancel", function()
    it("returns fn's results when it finishes in time", function()
      local a, b = async.run(function()
        return async.timeout(1, function(x) async.sleep(0.01) return x, "y" end, "x")
      end)
      assert.are.same({ "x", "y" }, { a, b })
    end)

    it("cancels fn and returns nil, err when time runs out", function()
      local closed = false
      local res, err
      local dt = elapsed(function()
        res, err = async.run(function()
          return async.timeout(0.05, function()
            local _ <close> = setmetatable({}, { __close = function() closed = true end })
            async.sleep(10)
            return "late"
          end)
        end)
      end)
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
      assert.matches("timed out", tostring(err))
      assert.is_true(closed)
      assert.is_truthy(dt < 1, "took " .. dt)
    end)

    it("re-raises fn's error", function()
      assert.error_matches(function()
        async.run(function() return async.timeout(1, function() error("inner") end) end)
      end, "inner")
    end)

    it("works outside a task", function()
      local res, err = async.timeout(0.02, function() async.sleep(1) end)
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
    end)

    it("cancel stops a waiting task; await raises 'cancelled'", function()
      async.run(function()
        local t = async.spawn(function() async.sleep(10) end)
        async.sleep(0)
        assert.is_true(async.cancel(t))
        assert.are.equal("cancelled", async.status(t))
        assert.is_false(async.cancel(t))
        local ok, err = pcall(async.await, t)
        assert.is_false(ok)
        assert.are.equal("cancelled", err.kind)
      end)
    end)

    it("cannot cancel the running task", function()
      async.run(function()
        local me
        me = async.spawn(function() return pcall(async.cancel, me) end)
        local ok, err = async.await(me)
        assert.is_false(ok)
        assert.matches("running task", err)
      end)
    end)
  end)

  describe("with HTTP", function()
    local srv, base

    setup(function()
      isolate_proxies()
      local f = assert(io.popen("exec python3 " .. HTTPD, "r"))
      local port = (f:read("l") or ""):match("^PORT (%d+)$")
      local pid = (f:read("l") or ""):match("^PID (%d+)$")
      assert(port and pid, "test server did not start")
      srv = { f = f, pid = pid }
      base = "http://127.0.0.1:" .. port
    end)

    teardown(function()
      if not srv then return end
      if not http.get(base .. "/shutdown", { timeout = 5 }) then os.execute("kill " .. srv.pid) end
      srv.f:close()
      restore_proxies()
    end)

    local function connections()
      return tonumber(assert(http.get(base .. "/connections")).body)
    end

    it("10 delayed requests from 10 tasks overlap", function()
      local statuses = {}
      local dt = elapsed(function()
        async.run(function()
          for i = 1, 10 do
            async.spawn(function()
              local res = assert(http.get(base .. "/delay/300"))
              statuses[i] = res.status
            end)
          end
        end)
      end)
      assert.are.equal(10, #statuses)
      for i = 1, 10 do assert.are.equal(200, statuses[i]) end
      assert.is_truthy(dt < 1.5, "concurrent took " .. dt)
    end)

    it("the same 10 requests one after the other take 10x as long", function()
      local dt = elapsed(function()
        async.run(function()
          for _ = 1, 10 do assert(http.get(base .. "/delay/300")) end
        end)
      end)
      assert.is_truthy(dt > 2.5, "sequential took " .. dt)
    end)

    it("map with a limit bounds the requests in flight", function()
      local dt = elapsed(function()
        local res = async.run(function()
          return async.map({ 1, 2, 3, 4, 5, 6 }, function()
            return assert(http.get(base .. "/delay/200")).status
          end, { limit = 3 })
        end)
        assert.are.same({ 200, 200, 200, 200, 200, 200, n = 6 }, res)
      end)
      assert.is_truthy(dt >= 0.38 and dt < 1.2, "took " .. dt)
    end)

    it("sequential requests in a task reuse one connection", function()
      local before = connections()
      local reused = async.run(function()
        local n = 0
        for _ = 1, 5 do
          if assert(http.get(base .. "/status/200")).reused then n = n + 1 end
        end
        return n
      end)
      assert.are.equal(5, reused)
      assert.are.equal(before, connections())
    end)

    it("a request error in a task is returned, not raised", function()
      local res, err = async.run(function() return http.get("http://127.0.0.1:1/") end)
      assert.is_nil(res)
      assert.are.equal("connect", err.kind)
    end)

    it("a task waits for its request while others sleep and compute", function()
      local log = {}
      async.run(function()
        async.spawn(function()
          local res = assert(http.get(base .. "/delay/100"))
          log[#log + 1] = "http " .. res.body
        end)
        async.spawn(function()
          async.sleep(0.02)
          log[#log + 1] = "sleep"
        end)
      end)
      assert.are.same({ "sleep", "http delayed 100" }, log)
    end)

    it("a blocking request in a plain coroutine does not lose other tasks' responses", function()
      local got = async.run(function()
        local t = async.spawn(function() return assert(http.get(base .. "/delay/50")).body end)
        local inner = coroutine.wrap(function()
          return assert(http.get(base .. "/delay/200")).body -- blocks: not a task
        end)()
        return { async.await(t), inner }
      end)
      assert.are.same({ "delayed 50", "delayed 200" }, got)
    end)

    it("timeout cancels an in-flight request", function()
      local res, err = async.run(function()
        return async.timeout(0.1, function() return http.get(base .. "/delay/3000") end)
      end)
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
      assert.are.equal(0, _http.pending())
    end)

    it("a failing main task cancels requests in flight", function()
      assert.error_matches(function()
        async.run(function()
          for _ = 1, 3 do async.spawn(function() http.get(base .. "/delay/3000") end) end
          async.sleep(0.05)
          assert.are.equal(3, _http.pending())
          error("stop")
        end)
      end, "stop")
      assert.are.equal(0, _http.pending())
    end)

    it("Ctrl-C interrupts async.run and cancels its tasks", function()
      local bin = os.getenv("LUMU_BIN")
      if not bin or bin == "" then
        local p = io.popen("readlink /proc/$PPID/exe 2>/dev/null")
        bin = p:read("l")
        p:close()
      end
      assert.is_string(bin)
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(string.format([[
        local async, http = require "lumu.async", require "lumu.http"
        async.run(function()
          async.spawn(function() async.sleep(30) end)
          async.spawn(function() print("finished", http.get(%q)) end)
          io.stdout:write("ready\n"); io.stdout:flush()
        end)
        print("after run")
      ]], base .. "/delay/8000"))
      f:close()
      local t0 = now()
      local p = io.popen(string.format(
        NOPROXY .. "{ %q %q & pid=$!; sleep 0.7; kill -INT $pid; wait $pid; echo \"rc=$?\"; } 2>&1", bin, script))
      local out = p:read("a")
      p:close()
      os.remove(script)
      local dt = now() - t0
      assert.matches("ready", out)
      assert.matches("interrupted", out)
      assert.matches("rc=130", out)
      assert.is_nil(out:find("finished", 1, true))
      assert.is_nil(out:find("after run", 1, true))
      assert.is_truthy(dt < 5, "took " .. dt)
    end)
  end)
end)
