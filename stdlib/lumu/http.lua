--- lumu.http: HTTP/1.1 and HTTP/2 requests with libcurl, cooperative with
-- lumu.async.  libcurl.so.4 is loaded on the first request (lua/lazylib.h);
-- without it request() raises "libcurl.so.4 not available: <why>".
--
--   http.request(opts) -> response | nil, err
--     opts.url        (string, required) http:// or https:// URL
--     opts.method     (string) default "GET", or "POST" when a body is given
--     opts.headers    (table) name -> string|number; "" sends an empty header
--     opts.body       (string) request body (sent with Content-Length)
--     opts.timeout    (seconds, default 60; 0 = none) whole transfer
--     opts.connect_timeout (seconds, default 10)
--     opts.max_body   (bytes, default 256 MiB) larger responses fail "too_large"
--     opts.verify     (boolean, default true) TLS peer + host verification;
--                     false raises for https URLs of AWS endpoints (hosts
--                     under http.AWS_DOMAINS): verification of AWS stays on
--     opts.cainfo     (string) CA bundle file; default $AWS_CA_BUNDLE if set
--     opts.proxy      (string | false) default from the environment:
--                     https_proxy/HTTPS_PROXY for https URLs, http_proxy/
--                     HTTP_PROXY for http (the lowercase name wins); false = none
--     opts.noproxy    (string | false) default no_proxy/NO_PROXY
--   response = { status = 200, headers = { ["content-type"] = "...", ... },
--                body = "...", http_version = "1.1"|"2"|..., total_time = s,
--                connect_time = s (absent when no new connection),
--                reused = true when an existing connection was reused }
--     Header names are lowercase; repeated headers are joined with ", ".
--     Any HTTP status is a response (no error for 404/500); redirects are not
--     followed.
--   err = { kind = "timeout"|"connect"|"dns"|"tls"|"too_large"|"aborted"|"other",
--           message = "...", curl_code = n }  with a __tostring
--     ("http: <kind>: <message>"); http.is_error(v) recognises it.
--   Raises (misuse): opts not a table, missing or malformed URL, scheme other
--   than http/https, bad option types, invalid header names or values with
--   CR/LF/NUL, verify = false for an AWS endpoint.  Also raises
--   "interrupted!" on Ctrl-C.
--
--   Inside a lumu.async task the call suspends only that task, so requests
--   from many tasks are in flight at once over one connection pool (keep-alive
--   and HTTP/2 multiplexing).  Outside a task it drives the transfers itself
--   until this one is done.
--
--   http.get(url [, opts]) -> response | nil, err
--   http.post(url, body [, opts]) -> response | nil, err
--   http.proxy_for(url [, getenv]) -> proxy string | nil, noproxy string | nil
--     The environment lookup request() uses (getenv defaults to os.getenv).
local _http = require "lumu._http"
local async = require "lumu.async"

local M = {}

local Error = { __name = "lumu.http.Error" }
Error.__index = Error
Error.__tostring = function(e) return "http: " .. tostring(e.kind) .. ": " .. tostring(e.message) end
M.Error = Error

function M.is_error(v)
  return getmetatable(v) == Error
end

-- lowercase wins when both are set
local function env_pair(getenv, lower, upper)
  local v = getenv(lower)
  if v == nil then v = getenv(upper) end
  if v == "" then return nil end
  return v
end

function M.proxy_for(url, getenv)
  getenv = getenv or os.getenv
  local scheme = type(url) == "string" and url:match("^(%a[%w+.-]*)://")
  scheme = scheme and scheme:lower()
  local proxy
  if scheme == "https" then
    proxy = env_pair(getenv, "https_proxy", "HTTPS_PROXY")
  elseif scheme == "http" then
    proxy = env_pair(getenv, "http_proxy", "HTTP_PROXY")
  end
  return proxy, env_pair(getenv, "no_proxy", "NO_PROXY")
end

-- The DNS suffixes of AWS's partitions (botocore's endpoints/partitions data)
M.AWS_DOMAINS = { "amazonaws.com", "amazonaws.com.cn", "api.aws", "api.amazonwebservices.com.cn",
  "c2s.ic.gov", "sc2s.sgov.gov", "cloud.adc-e.uk", "csp.hci.ic.gov", "amazonaws.eu" }

-- true when url is https:// on a host under one of M.AWS_DOMAINS
local function aws_https(url)
  local authority = url:match("^[Hh][Tt][Tt][Pp][Ss]://([^/?#]+)")
  if not authority then return false end
  local host = authority:gsub("^.*@", ""):gsub(":%d*$", ""):lower():gsub("%.+$", "")
  for _, d in ipairs(M.AWS_DOMAINS) do
    if host == d or host:sub(-#d - 1) == "." .. d then return true end
  end
  return false
end

local KNOWN = { url = true, method = true, headers = true, body = true, timeout = true,
  connect_timeout = true, max_body = true, verify = true, cainfo = true, proxy = true,
  noproxy = true }

-- The options handed to _http.request, with defaults from the environment.
local function prepare(opts, level)
  if type(opts) ~= "table" then
    error("http.request: expected an options table, got " .. type(opts), level + 1)
  end
  local o = {}
  for k, v in pairs(opts) do
    if not KNOWN[k] then error("http.request: unknown option '" .. tostring(k) .. "'", level + 1) end
    o[k] = v
  end
  if type(o.url) ~= "string" then error("http.request: 'url' must be a string", level + 1) end
  if o.method == nil then o.method = o.body ~= nil and "POST" or "GET" end
  if o.verify == false and aws_https(o.url) then
    error("http.request: TLS verification cannot be turned off for AWS endpoints", level + 1)
  end
  local eproxy, enoproxy = M.proxy_for(o.url)
  if o.proxy == nil then o.proxy = eproxy elseif o.proxy == false then o.proxy = nil end
  if o.noproxy == nil then o.noproxy = enoproxy elseif o.noproxy == false then o.noproxy = nil end
  if o.cainfo == nil then
    local ca = os.getenv("AWS_CA_BUNDLE")
    if ca and ca ~= "" then o.cainfo = ca end
  end
  return o
end

local function start(o, level)
  local ok, req = pcall(_http.request, o)
  if not ok then
    if type(req) == "string" then
      error((req:gsub("^bad argument #1 to '[^']*' %(", "http.request: "):gsub("%)$", "")), level + 1)
    end
    error(req, level + 1)
  end
  return req
end

local function perform(opts, level)
  local o = prepare(opts, level + 1)
  local req <close> = start(o, level + 1)
  async._wait_request(req)
  local res, err = req:result()
  if not res then return nil, setmetatable(err, Error) end
  return res
end

-- (no tail calls below: they would shift the error levels)
function M.request(opts)
  local res, err = perform(opts, 2)
  return res, err
end

function M.get(url, opts)
  if opts ~= nil and type(opts) ~= "table" then error("http.get: opts must be a table", 2) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url, o.method = url, o.method or "GET"
  local res, err = perform(o, 2)
  return res, err
end

function M.post(url, body, opts)
  if type(body) ~= "string" then error("http.post: body must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("http.post: opts must be a table", 2) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url, o.body, o.method = url, body, o.method or "POST"
  local res, err = perform(o, 2)
  return res, err
end

return M
