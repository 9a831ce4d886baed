-- Specs of lumu.http and its C core lumu._http, against tests/support/httpd.py
-- on 127.0.0.1 (nothing else is contacted).
local http = require "lumu.http"
local _http = require "lumu._http"

-- Requests must reach 127.0.0.1 directly whatever the caller's *_proxy
-- environment says.
local NOPROXY = "unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY no_proxy NO_PROXY; "
local real_proxy_for = http.proxy_for
local function isolate_proxies()
  http.proxy_for = function(url, getenv) return real_proxy_for(url, getenv or function() return nil end) end
end
local function restore_proxies() http.proxy_for = real_proxy_for end

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local HTTPD = HERE .. "/../support/httpd.py"

local function start_server(extra)
  local f = assert(io.popen("exec python3 " .. HTTPD .. " " .. (extra or ""), "r"))
  local port = (f:read("l") or ""):match("^PORT (%d+)$")
  local pid = (f:read("l") or ""):match("^PID (%d+)$")
  assert(port and pid, "test server did not start")
  return { f = f, port = tonumber(port), pid = pid, base = "http://127.0.0.1:" .. port }
end

local function stop_server(s)
  if not s then return end
  local scheme = s.tls and "https" or "http"
  local res = http.get(scheme .. "://127.0.0.1:" .. s.port .. "/shutdown", { timeout = 5, verify = false })
  if not res then os.execute("kill " .. s.pid .. " 2>/dev/null") end
  s.f:close()
end

-- A small JSON decoder for the echo endpoint (objects, arrays, strings,
-- numbers, literals; \uXXXX up to U+00FF become single bytes, as the server
-- encodes bytes as latin-1).
local function json_decode(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = s:sub(pos, pos)
      if c == '"' then pos = pos + 1 break end
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        if e == "u" then
          local cp = tonumber(s:sub(pos + 2, pos + 5), 16)
          out[#out + 1] = cp < 256 and string.char(cp) or utf8.char(cp)
          pos = pos + 6
        else
          out[#out + 1] = ({ b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" })[e] or e
          pos = pos + 2
        end
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
    return table.concat(out)
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        local k = str()
        ws()
        pos = pos + 1 -- :
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
      end
    elseif c == '"' then
      return str()
    else
      local lit = s:match("^[%w%.%-+]+", pos)
      pos = pos + #lit
      if lit == "true" then return true elseif lit == "false" then return false
      elseif lit == "null" then return nil end
      return tonumber(lit)
    end
  end
  return value()
end

local function lumu_bin()
  local bin = os.getenv("LUMU_BIN")
  if bin and bin ~= "" then return bin end
  local p = io.popen("readlink /proc/$PPID/exe 2>/dev/null")
  bin = p:read("l")
  p:close()
  return bin
end

-- Runs a Lua script in a fresh lumu with extra environment assignments
-- (shell syntax); returns its combined output with "rc=N" appended.
local function run_lumu(env, src)
  local bin = assert(lumu_bin(), "cannot find the lumu binary")
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(src)
  f:close()
  local p = io.popen(string.format(NOPROXY .. "env %s %q %q 2>&1; echo \"rc=$?\"", env, bin, script))
  local out = p:read("a")
  p:close()
  os.remove(script)
  return out
end

describe("lumu.http", function()
  local srv, base

  setup(function()
    isolate_proxies()
    srv = start_server()
    base = srv.base
  end)

  teardown(function()
    stop_server(srv)
    restore_proxies()
  end)

  local function echo(opts)
    opts.url = opts.url or base .. "/echo"
    local res, err = http.request(opts)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    return json_decode(res.body), res
  end

  describe("requests", function()
    it("GETs a URL and returns status, headers and body", function()
      local doc, res = echo { url = base .. "/echo/a/b?x=1&y=2" }
      assert.are.equal("GET", doc.method)
      assert.are.equal("/echo/a/b?x=1&y=2", doc.path)
      assert.are.equal("", doc.body)
      assert.are.equal("application/json", res.headers["content-type"])
      assert.are.equal(#res.body, tonumber(res.headers["content-length"]))
    end)

    it("sends the given headers, numbers and empty values included", function()
      local doc = echo { headers = { ["X-One"] = "1", ["X-Num"] = 42, ["X-Empty"] = "",
        ["User-Agent"] = "spec/1.0" } }
      assert.are.equal("1", doc.headers["X-One"])
      assert.are.equal("42", doc.headers["X-Num"])
      assert.are.equal("", doc.headers["X-Empty"])
      assert.are.equal("spec/1.0", doc.headers["User-Agent"])
    end)

    it("sends a default User-Agent and no Expect header", function()
      local doc = echo { method = "POST", body = string.rep("z", 5000) }
      assert.matches("^lumu/", doc.headers["User-Agent"])
      assert.is_nil(doc.headers["Expect"])
    end)

    it("POSTs a binary body unchanged, without a form Content-Type", function()
      local body = "a\0b\255\1\r\n" .. string.rep("\200", 300)
      local res = assert(http.post(base .. "/echo", body))
      local doc = json_decode(res.body)
      assert.are.equal("POST", doc.method)
      assert.are.equal(body, doc.body)
      assert.are.equal(tostring(#body), doc.headers["Content-Length"])
      assert.is_nil(doc.headers["Content-Type"])
    end)

    it("keeps a Content-Type the caller gives", function()
      local doc = echo { body = "{}", headers = { ["content-type"] = "application/json" } }
      assert.are.equal("application/json", doc.headers["content-type"] or doc.headers["Content-Type"])
    end)

    it("uses POST when a body is given without a method", function()
      assert.are.equal("POST", echo({ body = "x" }).method)
    end)

    it("supports PUT, PATCH and DELETE", function()
      local put = echo { method = "PUT", body = "put-body" }
      assert.are.equal("PUT", put.method)
      assert.are.equal("put-body", put.body)
      local patch = echo { method = "PATCH" }
      assert.are.equal("PATCH", patch.method)
      assert.are.equal("0", patch.headers["Content-Length"])
      local del = echo { method = "DELETE" }
      assert.are.equal("DELETE", del.method)
      assert.are.equal("", del.body)
    end)

    it("HEAD returns headers without a body", function()
      local res = assert(http.request { url = base .. "/echo", method = "HEAD" })
      assert.are.equal(200, res.status)
      assert.are.equal("", res.body)
      assert.is_truthy(tonumber(res.headers["content-length"]) > 0)
    end)

    it("HEAD with an empty body (as the AWS client sends it) does not wait for a body", function()
      local t0 = os.time()
      local res = assert(http.request { url = base .. "/echo", method = "HEAD", body = "", timeout = 5 })
      assert.are.equal(200, res.status)
      assert.are.equal("", res.body)
      assert.is_true(os.time() - t0 < 3)
    end)

    it("returns error statuses as responses, not errors", function()
      for _, code in ipairs({ 201, 204, 400, 404, 500, 503 }) do
        local res, err = http.get(base .. "/status/" .. code)
        assert.is_nil(err)
        assert.are.equal(code, res.status)
      end
    end)

    it("does not follow redirects", function()
      local res = assert(http.get(base .. "/redirect"))
      assert.are.equal(302, res.status)
      assert.are.equal("/echo", res.headers.location)
    end)

    it("lowercases header names, joins repeated ones and trims values", function()
      local res = assert(http.get(base .. "/repeat"))
      assert.are.equal("a, b", res.headers["x-multi"])
      assert.are.equal("c=1, d=2", res.headers["set-cookie"])
      assert.are.equal("", res.headers["x-empty"])
      assert.are.equal("v", res.headers["x-spaced"])
      assert.is_nil(res.headers["X-Multi"])
    end)

    it("reports the HTTP version and timings", function()
      local res = assert(http.get(base .. "/status/200"))
      assert.are.equal("1.1", res.http_version)
      assert.is_number(res.total_time)
      assert.is_truthy(res.total_time >= 0 and res.total_time < 5)
      assert.is_boolean(res.reused)
    end)

    it("receives a 5 MB body completely", function()
      local res = assert(http.get(base .. "/big/5000000"))
      assert.are.equal(5000000, #res.body)
      assert.are.equal(string.rep("x", 100), res.body:sub(-100))
    end)

    it("receives a chunked body", function()
      local res = assert(http.get(base .. "/big/200000?chunked"))
      assert.are.equal(200000, #res.body)
      assert.is_nil(res.headers["content-length"])
    end)

    it("sends many headers", function()
      local h = {}
      for i = 1, 90 do h["X-H" .. i] = tostring(i) end -- Python's http.server allows 100
      h["X-Long"] = string.rep("v", 60000)
      local doc = echo { headers = h }
      assert.are.equal("90", doc.headers["X-H90"])
      assert.are.equal(60000, #doc.headers["X-Long"])
      assert.are.equal("1", doc.headers["X-H1"])
    end)

    it("sends a 2 MB body", function()
      local body = string.rep("0123456789abcdef", 131072)
      local doc = echo { body = body }
      assert.are.equal(#body, #doc.body)
      assert.are.equal(body, doc.body)
    end)
  end)

  describe("errors", function()
    it("connection refused is kind 'connect'", function()
      local res, err = http.get("http://127.0.0.1:1/")
      assert.is_nil(res)
      assert.are.equal("connect", err.kind)
      assert.are.equal(7, err.curl_code)
      assert.is_true(http.is_error(err))
      assert.matches("^http: connect: ", tostring(err))
    end)

    it("a slow response is kind 'timeout' after the timeout", function()
      local t0 = _http.now()
      local res, err = http.get(base .. "/delay/3000", { timeout = 0.3 })
      local dt = _http.now() - t0
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
      assert.are.equal(28, err.curl_code)
      assert.is_truthy(dt >= 0.25 and dt < 2, "took " .. dt)
    end)

    it("a body over max_body is kind 'too_large' (Content-Length known)", function()
      local res, err = http.get(base .. "/big/100000", { max_body = 1000 })
      assert.is_nil(res)
      assert.are.equal("too_large", err.kind)
      assert.matches("1000 bytes", err.message)
    end)

    it("a chunked body over max_body is kind 'too_large'", function()
      local res, err = http.get(base .. "/big/300000?chunked", { max_body = 100000 })
      assert.is_nil(res)
      assert.are.equal("too_large", err.kind)
    end)

    it("a body of exactly max_body bytes is accepted", function()
      assert.are.equal(1000, #assert(http.get(base .. "/big/1000", { max_body = 1000 })).body)
      assert.are.equal(1000, #assert(http.get(base .. "/big/1000?chunked", { max_body = 1000 })).body)
      local _, err = http.get(base .. "/big/1001?chunked", { max_body = 1000 })
      assert.are.equal("too_large", err.kind)
    end)

    it("oversized response headers are kind 'too_large'", function()
      local res, err = http.get(base .. "/hugeheaders")
      assert.is_nil(res)
      assert.are.equal("too_large", err.kind)
    end)

    it("a connection dropped mid-body is an error, not a short body", function()
      local res, err = http.get(base .. "/drop")
      assert.is_nil(res)
      assert.are.equal("other", err.kind)
      assert.is_string(err.message)
      assert.is_true(err.curl_code ~= 0)
    end)

    it("classifies libcurl codes", function()
      local cases = { [28] = "timeout", [7] = "connect", [6] = "dns", [5] = "dns", [35] = "tls",
        [60] = "tls", [63] = "too_large", [42] = "aborted", [52] = "other", [56] = "other" }
      for code, kind in pairs(cases) do
        assert.are.equal(kind, _http.error_kind(code))
      end
    end)
  end)

  describe("misuse raises", function()
    it("for malformed URLs", function()
      assert.error_matches(function() http.get("http://exa mple.com/") end, "malformed URL")
      assert.error_matches(function() http.get("not a url") end, "malformed URL")
      assert.error_matches(function() http.get("") end, "malformed URL")
      assert.error_matches(function() http.get("http://127.0.0.1\0/") end, "NUL")
      assert.error_matches(function() http.get("http://[::1/") end, "malformed URL")
      assert.error_matches(function() http.get("http://127.0.0.1:1/a\nb") end, "malformed URL")
      assert.error_matches(function() http.get("http://127.0.0.1:99999/") end, "malformed URL")
      assert.error_matches(function() http.get("http://127.0.0.1:1/" .. string.rep("a", 9 * 2 ^ 20)) end,
        "malformed URL")
    end)

    it("for schemes other than http and https", function()
      assert.error_matches(function() http.get("ftp://127.0.0.1/x") end, "unsupported URL scheme 'ftp'")
      assert.error_matches(function() http.get("file:///etc/passwd") end, "scheme")
    end)

    it("for a missing URL or options", function()
      assert.error_matches(function() http.request {} end, "'url' must be a string")
      assert.error_matches(function() http.request("http://x") end, "expected an options table")
      assert.error_matches(function() _http.request { method = "GET" } end, "'url' is required")
    end)

    it("for bad option values", function()
      local u = base .. "/echo"
      assert.error_matches(function() http.request { url = u, headers = "x" } end, "'headers' must be a table")
      assert.error_matches(function() http.request { url = u, headers = { ["Bad Name"] = "x" } } end,
        "invalid header name")
      assert.error_matches(function() http.request { url = u, headers = { X = "a\r\nInjected: 1" } } end,
        "CR, LF or NUL")
      assert.error_matches(function() http.request { url = u, headers = { X = {} } } end, "string or number")
      assert.error_matches(function() http.request { url = u, headers = { [1] = "x" } } end, "names must be strings")
      assert.error_matches(function() http.request { url = u, body = 12 } end, "'body' must be a string")
      assert.error_matches(function() http.request { url = u, timeout = -1 } end, "'timeout'")
      assert.error_matches(function() http.request { url = u, timeout = "5" } end, "'timeout'")
      assert.error_matches(function() http.request { url = u, connect_timeout = 0 / 0 } end, "'connect_timeout'")
      assert.error_matches(function() http.request { url = u, max_body = -5 } end, "'max_body'")
      assert.error_matches(function() http.request { url = u, max_body = 1.5 } end, "'max_body'")
      assert.error_matches(function() http.request { url = u, max_body = "1000" } end, "'max_body'")
      assert.error_matches(function() http.request { url = u, verify = "no" } end, "'verify'")
      assert.error_matches(function() http.request { url = u, method = "GE T" } end, "'method'")
      assert.error_matches(function() http.request { url = u, method = string.rep("X", 40) } end, "'method'")
      assert.error_matches(function() http.request { url = u, cainfo = 1 } end, "'cainfo' must be a string")
      assert.error_matches(function() http.request { url = u, bogus = 1 } end, "unknown option 'bogus'")
      assert.error_matches(function() http.post(u, nil) end, "body must be a string")
    end)

    it("with the caller's position in the message", function()
      local ok, err = pcall(function() http.get("ftp://127.0.0.1/") end)
      assert.is_false(ok)
      assert.matches("http_spec%.lua:%d+: http%.request: unsupported URL scheme", err)
    end)
  end)

  describe("connections", function()
    local function connections()
      return tonumber(assert(http.get(base .. "/connections")).body)
    end

    it("sequential requests reuse one connection", function()
      local before = connections()
      local reused = 0
      for _ = 1, 5 do
        local res = assert(http.get(base .. "/status/200"))
        if res.reused then reused = reused + 1 end
      end
      assert.are.equal(before, connections())
      assert.are.equal(5, reused)
    end)

    it("a server-closed connection is not reused", function()
      assert(http.get(base .. "/close"))
      local before = connections() -- opens a new one
      local res = assert(http.get(base .. "/status/200"))
      assert.is_true(res.reused)
      assert.are.equal(before, connections())
      assert(http.get(base .. "/close"))
      res = assert(http.get(base .. "/status/200"))
      assert.is_false(res.reused)
      assert.is_number(res.connect_time)
    end)
  end)

  describe("proxies", function()
    it("sends requests through an explicit proxy", function()
      -- the test server answers proxy-style requests with the echo document
      local res = assert(http.get("http://127.0.0.1:1/echo?via=proxy",
        { proxy = "http://127.0.0.1:" .. srv.port }))
      local doc = json_decode(res.body)
      assert.are.equal("http://127.0.0.1:1/echo?via=proxy", doc.path)
    end)

    it("bypasses the proxy for noproxy hosts", function()
      local res, err = http.get("http://127.0.0.1:1/echo",
        { proxy = "http://127.0.0.1:" .. srv.port, noproxy = "127.0.0.1" })
      assert.is_nil(res)
      assert.are.equal("connect", err.kind)
    end)

    it("proxy = false means no proxy", function()
      local res, err = http.get("http://127.0.0.1:1/", { proxy = false })
      assert.is_nil(res)
      assert.are.equal("connect", err.kind)
    end)

    it("uses http_proxy from the environment", function()
      local out = run_lumu("-u HTTP_PROXY -u NO_PROXY -u no_proxy http_proxy=http://127.0.0.1:" .. srv.port, [[
        local res = assert(require("lumu.http").get("http://127.0.0.1:1/echo?env"))
        print(res.status, res.body:match('"path": "([^"]*)"'))
      ]])
      assert.matches("200\thttp://127.0.0.1:1/echo%?env", out)
      assert.matches("rc=0", out)
    end)

    it("no_proxy from the environment bypasses http_proxy", function()
      local out = run_lumu("-u HTTP_PROXY -u NO_PROXY http_proxy=http://127.0.0.1:" .. srv.port ..
        " no_proxy=127.0.0.1", [[
        local res, err = require("lumu.http").get("http://127.0.0.1:1/echo")
        print(res, err and err.kind)
      ]])
      assert.matches("nil\tconnect", out)
    end)

    it("picks proxies from the environment, lowercase first", function()
      local function env(t) return function(k) return t[k] end end
      local both = env { https_proxy = "lower", HTTPS_PROXY = "upper", http_proxy = "h",
        no_proxy = "n1", NO_PROXY = "n2" }
      assert.are.same({ "lower", "n1" }, { http.proxy_for("https://x/", both) })
      assert.are.same({ "h", "n1" }, { http.proxy_for("http://x/", both) })
      local upper = env { HTTPS_PROXY = "upper", HTTP_PROXY = "hu", NO_PROXY = "n2" }
      assert.are.same({ "upper", "n2" }, { http.proxy_for("HTTPS://x/", upper) })
      assert.are.same({ "hu", "n2" }, { http.proxy_for("http://x/", upper) })
      assert.are.same({}, { http.proxy_for("http://x/", env { http_proxy = "" }) })
      assert.is_nil((http.proxy_for("ftp://x/", upper)))
      assert.is_nil((http.proxy_for("http://x/", env {})))
    end)
  end)

  describe("lumu._http", function()
    it("runs a request through poll", function()
      local req = _http.request { url = base .. "/status/201" }
      assert.is_false(req:done())
      assert.matches("running", tostring(req))
      assert.error_matches(function() req:result() end, "still running")
      local got
      for _ = 1, 100 do
        local list = _http.poll(100)
        for _, r in ipairs(list) do if r == req then got = r end end
        if got then break end
      end
      assert.are.equal(req, got)
      assert.is_true(req:done())
      assert.are.equal(201, req:result().status)
      assert.are.equal(201, req:result().status) -- result() can be read again
      req:close()
      req:close() -- idempotent
      assert.matches("closed", tostring(req))
      assert.error_matches(function() req:result() end, "closed")
    end)

    it("cancels a running request on close", function()
      local before = _http.pending()
      local req = _http.request { url = base .. "/delay/2000" }
      _http.poll(0)
      assert.are.equal(before + 1, _http.pending())
      req:cancel()
      assert.are.equal(before, _http.pending())
      local res, err = req:result()
      assert.is_nil(res)
      assert.are.equal("aborted", err.kind)
    end)

    it("cancels a request held in a to-be-closed variable", function()
      local before = _http.pending()
      do
        local req <close> = _http.request { url = base .. "/delay/2000" }
        _http.poll(0)
        assert.are.equal(before + 1, _http.pending())
      end
      assert.are.equal(before, _http.pending())
    end)

    it("frees abandoned requests when they are collected", function()
      local before = _http.pending()
      for _ = 1, 20 do _http.request { url = base .. "/delay/2000" } end
      assert.are.equal(before + 20, _http.pending())
      collectgarbage()
      collectgarbage()
      assert.are.equal(before, _http.pending())
    end)

    it("poll waits for the timeout when nothing is in flight", function()
      local t0 = _http.now()
      local list = _http.poll(150)
      local dt = _http.now() - t0
      assert.are.same({}, list)
      assert.is_truthy(dt >= 0.12 and dt < 1, "waited " .. dt)
      assert.error_matches(function() _http.poll(-1) end, "timeout must be >= 0")
    end)

    it("drives 50 requests at once", function()
      local reqs, left = {}, 50
      for i = 1, 50 do reqs[i] = _http.request { url = base .. "/delay/100" } end
      local done = {}
      local t0 = _http.now()
      while left > 0 and _http.now() - t0 < 10 do
        for _, r in ipairs(_http.poll(500)) do
          done[r] = true
          left = left - 1
        end
      end
      assert.are.equal(0, left)
      for i = 1, 50 do
        assert.is_true(done[reqs[i]])
        assert.are.equal("delayed 100", reqs[i]:result().body)
      end
    end)

    it("has a monotonic clock and a version", function()
      local a = _http.now()
      local b = _http.now()
      assert.is_truthy(b >= a)
      assert.matches("libcurl", _http.version())
      assert.are.equal(256 * 1024 * 1024, _http.DEFAULT_MAX_BODY)
    end)
  end)

  describe("TLS", function()
    local dir, tls, cert
    local have_openssl = os.execute("command -v openssl >/dev/null 2>&1")

    setup(function()
      if not have_openssl then return end
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir))
      cert = dir .. "/cert.pem"
      assert(os.execute("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" ..
        " -keyout " .. dir .. "/key.pem -out " .. cert .. " -days 1 -subj /CN=127.0.0.1" ..
        " -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1"))
      tls = start_server("--tls " .. cert .. " " .. dir .. "/key.pem")
      tls.tls = true
      tls.base = "https://127.0.0.1:" .. tls.port
    end)

    teardown(function()
      if tls then stop_server(tls) end
      if dir then os.execute("rm -rf " .. dir) end
    end)

    local function tls_it(name, fn)
      if have_openssl then it(name, fn) else pending(name .. " (no openssl)") end
    end

    tls_it("rejects an unknown certificate by default", function()
      local res, err = http.get(tls.base .. "/status/200")
      assert.is_nil(res)
      assert.are.equal("tls", err.kind)
      assert.are.equal(60, err.curl_code)
    end)

    tls_it("accepts it with cainfo", function()
      local res = assert(http.get(tls.base .. "/status/200", { cainfo = cert }))
      assert.are.equal(200, res.status)
    end)

    tls_it("accepts it with verify = false", function()
      local res = assert(http.get(tls.base .. "/status/203", { verify = false }))
      assert.are.equal(203, res.status)
    end)

    tls_it("takes the CA bundle from AWS_CA_BUNDLE", function()
      local src = string.format([[
        local res, err = require("lumu.http").get(%q)
        print(res and res.status, err and err.kind)
      ]], tls.base .. "/status/200")
      assert.matches("200\tnil", run_lumu("AWS_CA_BUNDLE=" .. cert, src))
      assert.matches("nil\ttls", run_lumu("-u AWS_CA_BUNDLE", src))
    end)

    tls_it("fails with a missing cainfo file", function()
      local res, err = http.get(tls.base .. "/status/200", { cainfo = dir .. "/missing.pem" })
      assert.is_nil(res)
      assert.are.equal("tls", err.kind)
    end)
  end)

  describe("exit", function()
    it("closing the state with transfers in flight frees everything", function()
      local bin = lumu_bin()
      assert.is_string(bin)
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(string.format([[
        local _http = require "lumu._http"
        keep = {}
        for i = 1, 10 do keep[i] = _http.request { url = %q, body = "x" } end
        _http.poll(50)
        print("pending", _http.pending())
      ]], base .. "/delay/5000"))
      f:close()
      local p = io.popen(string.format(NOPROXY .. "LUMU_TRACK_ALLOC=1 %q %q 2>&1; echo \"rc=$?\"", bin, script))
      local out = p:read("a")
      p:close()
      os.remove(script)
      assert.matches("pending\t10", out)
      assert.matches("rc=0", out)
      assert.is_nil(out:find("leak", 1, true))
    end)
  end)

  describe("Ctrl-C", function()
    it("interrupts a blocking request", function()
      local bin = lumu_bin()
      assert.is_string(bin)
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(string.format([[
        local http = require "lumu.http"
        io.stdout:write("ready\n"); io.stdout:flush()
        local res, err = http.get(%q)
        print("finished", res, err)
      ]], base .. "/delay/8000"))
      f:close()
      local t0 = _http.now()
      local p = io.popen(string.format(
        NOPROXY .. "{ %q %q & pid=$!; sleep 0.7; kill -INT $pid; wait $pid; echo \"rc=$?\"; } 2>&1", bin, script))
      local out = p:read("a")
      p:close()
      os.remove(script)
      local dt = _http.now() - t0
      assert.matches("ready", out)
      assert.matches("interrupted", out)
      assert.matches("rc=130", out)
      assert.is_nil(out:find("finished", 1, true))
      assert.is_truthy(dt < 5, "took " .. dt)
    end)
  end)
end)
