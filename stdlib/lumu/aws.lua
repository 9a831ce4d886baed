--- lumu.aws: a model-driven AWS client (botocore's API models, SigV4,
-- standard retries, the AWS CLI's configuration and credential chain).
--
-- local aws = require "lumu.aws"
--
-- aws.client(service [, opts]) -> client | nil, err
--   service   a botocore service name ("cloudformation", "s3", "elbv2", ...);
--             an unknown name raises "unknown service 'x' (did you mean 'y'?)".
--   opts.region          else the configuration (AWS_REGION, AWS_DEFAULT_REGION,
--                        the profile); global services need none
--   opts.profile         the --profile flag
--   opts.endpoint_url    wins over AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL,
--                        the profile's [services] section and endpoint_url
--   opts.credentials     a lumu.aws.credentials object, a credential chain,
--                        a table {access_key_id=, secret_access_key=,
--                        session_token=}, or false (unsigned requests);
--                        default: the provider chain of the configuration,
--                        refreshed before expiry
--   opts.retry           { mode = "standard"|"adaptive"|"legacy",
--                          max_attempts = n, max_backoff = seconds }
--                        over the configuration's retry_mode / max_attempts
--   opts.timeout         seconds per attempt (default: the profile's
--                        cli_read_timeout, else 60); opts.connect_timeout
--                        (cli_connect_timeout, else 10).  The two profile
--                        settings are the AWS CLI's --cli-read-timeout /
--                        --cli-connect-timeout as config-file keys; values
--                        must be numbers > 0 (else nil, err kind "config")
--   opts.config          a lumu.aws.config object (else loaded with
--                        opts.profile, opts.env, opts.home)
--   opts.s3_addressing   "auto" (default) | "path" | "virtual"; custom
--                        endpoints always use path-style (/bucket/key)
--   opts.debug           true (stderr) or function(line): one line per
--                        attempt and response; never bodies, keys or tokens
--   opts.base64_blobs    blob parameters and results as base64 text (CLI)
--   opts.iso_timestamps  timestamps in results as ISO 8601 strings (CLI)
--   opts.now, opts.sleep, opts.http   clock, sleeper and transport (tests)
--   Returns nil, err (a lumu.aws.Error, kind "config") when the
--   configuration cannot be loaded or no endpoint can be resolved (e.g. no
--   region for a regional service).
-- aws.sts([opts]) -> client | nil, err         aws.client("sts", opts)
-- aws.services() -> { service names }          the embedded models
-- aws.operations(service) -> { operation names }
-- aws.is_error(v) -> boolean;  aws.Error       the error metatable
-- aws.snake(name) -> "describe_stacks"         aws.kebab(name) -> "describe-stacks"
--
-- client:DescribeStacks{StackName = "x"}       (also client:describe_stacks{...})
-- client:call(operation, params) -> result | nil, err
--   operation: CamelCase, snake_case or kebab-case.  params: a table checked
--   against the input shape.  Misuse raises (error level = the caller):
--   an unknown operation or parameter ("did you mean ..."), a wrong type,
--   a missing required parameter.  result: the output shape as Lua tables:
--   integers stay integers, timestamps are epoch seconds (numbers), blobs
--   are strings of raw bytes, lists/structures carry lumu.json's array /
--   object markers.  Requests are signed (SigV4) per attempt; idempotency
--   tokens and the body are kept across retries.  Retries (standard mode):
--   throttling, transient codes, HTTP 500/502/503/504 and connection errors,
--   with exponential backoff and jitter and a retry quota per client.
--   Calls made in several lumu.async tasks run concurrently over lumu.http's
--   shared keep-alive pool.
-- err: a lumu.aws.Error table
--   { kind = "service"|"http"|"parse"|"credentials"|"config"|"waiter"|
--            "pagination",
--     code = "ValidationError", message =, status = 400, request_id =,
--     retryable = bool, service =, operation =, attempts = n,
--     reason = "max_attempts"|"quota" (retries given up), data = modeled
--     error members }
--   tostring(err): "cloudformation DescribeStacks: ValidationError: Stack
--   with id x does not exist (HTTP 400, request id 4b1c...)".  No error or
--   debug line ever contains a secret key, session token or body: AWS's
--   own messages are scrubbed of the credentials used (the canonical request
--   of a SignatureDoesNotMatch holds the session token), the access key id
--   shortened to its first and last 4 characters.
-- client:prepare(operation, params) -> { method=, url=, headers=, body= }
--   the signed request of one attempt, without sending it
-- client:paginate(operation, params [, opts]) -> iterator over result pages
--   for page in cfn:paginate("ListStacks", {}) do ... end
--   paginators-1.json drives it: input/output tokens, more_results,
--   limit_key (opts.page_size), opts.max_pages.  A failed request raises
--   its lumu.aws.Error (catch with pcall); so does a repeated token.
-- client:paginate_items(operation, params [, opts]) -> iterator over items
--   the items of the result_key(s) of every page (second value: the key);
--   opts.max_items stops early.  Operations without a paginator raise.
-- client:wait(waiter, params [, opts]) -> result | nil, err
--   waiters-2.json: polls the waiter's operation every delay seconds up to
--   max_attempts (opts.delay, opts.max_attempts override) and applies the
--   acceptors (matchers path, pathAll, pathAny, status, error; states
--   success, failure, retry).  result: the last response (an empty table
--   when an error matcher succeeded).  err.kind "waiter" with code
--   "WaiterFailure" (a failure acceptor matched; err.last = the response or
--   error) or "MaxAttemptsExceeded"; an unexpected service error is
--   returned as it is.  An unknown waiter raises ("did you mean").
-- client:operations() -> names;  client:waiters() -> names
-- client.service, client.region, client.endpoint (URL), client.signing_region,
-- client.signing_name, client.protocol, client.config
local _aws = require "lumu._aws"
local core = require "lumu._awscore"
local async = require "lumu.async"
local awsconfig = require "lumu.aws.config"
local credentials = require "lumu.aws.credentials"
local http = require "lumu.http"
local jmespath = require "lumu.aws.jmespath"
local time = require "lumu.time"

local M = {}

local VERSION = require("lumu.version").version

-- ---------------------------------------------------------------------------
-- Errors
-- ---------------------------------------------------------------------------

local Error = { __name = "lumu.aws.Error" }
Error.__index = Error
Error.__tostring = function(e)
  local head = tostring(e.service or "aws")
  if e.operation then head = head .. " " .. tostring(e.operation) end
  local body = e.code and tostring(e.code) or nil
  local msg = e.message and tostring(e.message) or ""
  if msg ~= "" then body = body and (body .. ": " .. msg) or msg end
  local extra = {}
  if e.status then extra[#extra + 1] = "HTTP " .. tostring(e.status) end
  if e.request_id then extra[#extra + 1] = "request id " .. tostring(e.request_id) end
  if e.attempts and e.attempts > 1 then extra[#extra + 1] = tostring(e.attempts) .. " attempts" end
  local s = head .. ": " .. (body or "failed")
  if #extra > 0 then s = s .. " (" .. table.concat(extra, ", ") .. ")" end
  return s
end
M.Error = Error

function M.is_error(v)
  return getmetatable(v) == Error
end

local function new_error(t)
  return setmetatable(t, Error)
end

-- ---------------------------------------------------------------------------
-- Names
-- ---------------------------------------------------------------------------

function M.snake(name)
  local s = name:gsub("(%u+)(%u%l)", "%1_%2"):gsub("([%l%d])(%u)", "%1_%2")
  return s:lower()
end

function M.kebab(name)
  return (M.snake(name):gsub("_", "-"))
end

function M.services()
  return _aws.services()
end

local function check_service(service, level)
  if type(service) ~= "string" then error("aws: service must be a string", level + 1) end
  local info, err = _aws.model(service)
  if not info then error("aws: " .. err, level + 1) end
  return info
end

function M.operations(service)
  check_service(service, 2)
  return _aws.operations(service)
end

-- ---------------------------------------------------------------------------
-- Client
-- ---------------------------------------------------------------------------

local Client = { __name = "lumu.aws.Client" }
local methods = {}
M.Client = Client

-- service -> { [any spelling] = operation info }
local op_cache = {}

local function op_info(service, name)
  local per = op_cache[service]
  if not per then
    per = {}
    op_cache[service] = per
  end
  local info = per[name]
  if info then return info end
  local err
  info, err = _aws.operation(service, name)
  if not info then return nil, err end
  per[name] = info
  return info
end

function methods:_op(name, level)
  if type(name) ~= "string" then error(self.service .. ": operation name must be a string", level + 1) end
  local info, err = op_info(self.service, name)
  if not info then error(err, level + 1) end
  return info
end

-- public fields that may be nil (no operation lookup for them)
local FIELDS = { service = true, region = true, endpoint = true, signing_region = true,
                 signing_name = true, protocol = true, config = true }

Client.__index = function(self, k)
  local m = methods[k]
  if m ~= nil then return m end
  if type(k) ~= "string" or k:sub(1, 1) == "_" or FIELDS[k] then return nil end
  local info, err = op_info(rawget(self, "service"), k)
  if not info then error(err, 2) end
  local opname = info.name
  local f = function(client, params)
    if getmetatable(client) ~= Client then
      error(string.format("%s: call it as a method (client:%s{...})", opname, k), 2)
    end
    local res, e = client:_invoke(info, params, 2)
    return res, e
  end
  rawset(self, k, f)
  return f
end

Client.__tostring = function(self)
  return string.format("<aws client %s %s %s>", rawget(self, "service"), rawget(self, "region") or "(no region)",
    rawget(self, "endpoint"))
end

local OPT_KEYS = {
  region = "string", profile = "string", endpoint_url = "string", credentials = "any",
  retry = "table", timeout = "number", connect_timeout = "number", config = "table",
  env = "table", home = "string", s3_addressing = "string", debug = "any",
  base64_blobs = "boolean", iso_timestamps = "boolean", now = "function", sleep = "function",
  http = "function",
}

local function split_url(url)
  local scheme, authority, path = url:match("^(%a[%w+.-]*)://([^/?#]+)([^?#]*)")
  if not scheme then return nil end
  return scheme:lower(), authority, path
end

local function make_debug(d)
  if d == nil or d == false then
    local env = os.getenv("LUMU_AWS_DEBUG")
    if env and env ~= "" and env ~= "0" then d = true else return nil end
  end
  if type(d) == "function" then return d end
  return function(line) io.stderr:write("lumu.aws: ", line, "\n") end
end

function M.client(service, opts)
  local minfo = check_service(service, 2)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("aws.client: opts must be a table", 2) end
  for k, v in pairs(opts) do
    local want = OPT_KEYS[k]
    if not want then error("aws.client: unknown option '" .. tostring(k) .. "'", 2) end
    if want ~= "any" and type(v) ~= want then
      error(string.format("aws.client: option '%s' must be a %s, got %s", k, want, type(v)), 2)
    end
  end
  if opts.s3_addressing and not ({ auto = true, path = true, virtual = true })[opts.s3_addressing] then
    error("aws.client: s3_addressing must be auto, path or virtual", 2)
  end
  local creds = opts.credentials
  if creds ~= nil and creds ~= false then
    -- credentials objects and chains by shape: a copy of lumu.aws.credentials
    -- loaded elsewhere (an insulated require) has other metatables
    local mt = getmetatable(creds)
    local name = type(mt) == "table" and rawget(mt, "__name")
    if name ~= "lumu.aws.Credentials" and name ~= "lumu.aws.CredentialChain" then
      if type(creds) ~= "table" then error("aws.client: credentials must be a table", 2) end
      local ok, c = pcall(credentials.new, creds)
      if not ok then error("aws.client: " .. tostring(c):gsub("^credentials%.new: ", ""), 2) end
      creds = c
    end
  end

  local function fail(kind, message)
    return nil, new_error { kind = kind, service = service, message = tostring(message) }
  end
  local cfg = opts.config
  if cfg == nil then
    local err
    cfg, err = awsconfig.load { profile = opts.profile, env = opts.env, home = opts.home,
                                flags = { region = opts.region, endpoint_url = opts.endpoint_url } }
    if not cfg then return fail("config", err) end
  elseif type(getmetatable(cfg)) ~= "table" or rawget(getmetatable(cfg), "__name") ~= "lumu.aws.Config" then
    error("aws.client: opts.config must be a lumu.aws.config object", 2)
  end
  local region = opts.region or cfg:region()

  local ep, eerr
  if opts.endpoint_url then
    if not split_url(opts.endpoint_url) or not opts.endpoint_url:match("^[Hh][Tt][Tt][Pp][Ss]?://") then
      error("aws.client: endpoint_url must be an http:// or https:// URL", 2)
    end
    ep = { url = opts.endpoint_url, signing_region = region or "us-east-1",
           signing_name = minfo.signing_name or minfo.endpoint_prefix, custom = true }
  else
    ep, eerr = cfg:resolve_endpoint(minfo.endpoint_prefix or service, {
      service_id = minfo.service_id or service, signing_name = minfo.signing_name, region = region })
    if not ep then
      if region == nil then
        return fail("config", "no region configured for " .. service ..
          " (use --region, AWS_REGION or the profile's region)")
      end
      return fail("config", eerr)
    end
  end
  local scheme, host, base_path = split_url(ep.url)
  if not scheme then return fail("config", "invalid endpoint URL " .. tostring(ep.url)) end
  -- the Host header (and so the signature) leaves out a default port
  if (scheme == "https" and host:match(":443$")) or (scheme == "http" and host:match(":80$")) then
    host = host:gsub(":%d+$", "")
  end

  local rcfg, rerr = cfg:retry()
  if not rcfg then return fail("config", rerr) end
  local timeouts = {}
  for _, k in ipairs({ "cli_read_timeout", "cli_connect_timeout" }) do
    local v, src = cfg:get(k)
    if v ~= nil then
      local n = tonumber(v)
      if not n or n <= 0 or n ~= n then
        return fail("config", string.format("invalid value for %s from %s: expected a number of seconds > 0",
          k, tostring(src)))
      end
      timeouts[k] = n
    end
  end
  local r = opts.retry or {}
  local policy = core.retry_policy {
    mode = r.mode or rcfg.mode, max_attempts = r.max_attempts or rcfg.max_attempts,
    new_retries = rcfg.new_retries, service = minfo.endpoint_prefix or service,
    max_backoff = r.max_backoff,
  }

  local hopts = cfg:http_options(ep.url)
  local self = setmetatable({
    service = service,
    region = region,
    endpoint = ep.url,
    signing_region = ep.signing_region or region or "us-east-1",
    signing_name = ep.signing_name or minfo.signing_name or service,
    protocol = minfo.protocol,
    config = cfg,
    _model = minfo,
    _scheme = scheme,
    _host = host,
    _base_path = base_path ~= "" and base_path or nil,
    _custom = ep.custom and true or false,
    _s3 = service == "s3",
    _s3_style = opts.s3_addressing or "auto",
    _creds = creds,
    _retry = policy,
    _timeout = opts.timeout or timeouts.cli_read_timeout or 60,
    _connect_timeout = opts.connect_timeout or timeouts.cli_connect_timeout or 10,
    _http_opts = hopts,
    _debug = make_debug(opts.debug),
    _b64 = opts.base64_blobs or false,
    _parse_opts = (opts.base64_blobs or opts.iso_timestamps)
      and { base64_blobs = opts.base64_blobs, iso_timestamps = opts.iso_timestamps } or nil,
    _now = opts.now or time.now,
    _sleep = opts.sleep or async.sleep,
    _http = opts.http or http.request,
    _ua = "lumu/" .. tostring(VERSION) .. " (" .. service .. ")",
    _sign_opts = { region = ep.signing_region or region or "us-east-1",
                   service = ep.signing_name or minfo.signing_name or service, s3 = service == "s3" },
  }, Client)
  return self
end

function M.sts(opts)
  local c, err = M.client("sts", opts)
  return c, err
end

-- Credentials for a signed call: creds | nil, err
function methods:_credentials()
  local c = self._creds
  if c == nil then
    local chain, err = credentials.chain { config = self.config }
    if not chain then return nil, err end
    self._creds = chain
    c = chain
  end
  local mt = getmetatable(c)
  if type(mt) == "table" and rawget(mt, "__name") == "lumu.aws.CredentialChain" then
    return c:get()
  end
  return c
end

-- The serialized (unsigned) request: req | raises (misuse)
function methods:_serialize(info, params, level)
  if params ~= nil and type(params) ~= "table" then
    error(string.format("%s %s: parameters must be a table, got %s", self.service, info.name, type(params)),
      level + 1)
  end
  local req, msg = _aws.serialize(self.service, info.name, params,
    { host = self._host, base_path = self._base_path, base64_blobs = self._b64 })
  if not req then error(self.service .. " " .. msg, level + 1) end
  local host, path = req.host, req.path
  if self._s3 and not self._custom and self._s3_style ~= "path" and type(params) == "table"
      and type(params.Bucket) == "string" and info.request_uri:match("^/{Bucket}") then
    local url, path_style = core.s3_bucket_url(self._scheme .. "://" .. self._host, params.Bucket, self._s3_style)
    if url and not path_style then
      local vhost = url:match("^%a[%w+.-]*://([^/]+)")
      local rest = path:match("^/[^/?]*(.*)$")
      host, path = vhost, (rest == "" and "/" or rest)
    elseif not url then
      error(string.format("%s %s: Bucket: %s", self.service, info.name, tostring(path_style)), level + 1)
    end
  end
  local url = self._scheme .. "://" .. host .. path
  if req.query ~= "" then url = url .. "?" .. req.query end
  local headers = req.headers
  headers["User-Agent"] = self._ua
  return { method = req.method, url = url, host = host, path = path, query = req.query, headers = headers,
           body = req.body }
end

-- Operations botocore sends unsigned although older models do not say so.
local UNSIGNED = { ["sts.AssumeRoleWithWebIdentity"] = true, ["sts.AssumeRoleWithSAML"] = true }

-- Signs req for one attempt, setting the SigV4 headers in `headers`:
-- true | nil, err
function methods:_sign(info, req, headers)
  if self._creds == false or info.auth_type == "none" or UNSIGNED[self.service .. "." .. info.name] then
    return true
  end
  local creds, err = self:_credentials()
  if not creds then return nil, err end
  local so = self._sign_opts
  so.access_key, so.secret_key, so.session_token = creds.access_key_id, creds:secret_access_key(),
    creds:session_token()
  so.time = math.floor(self._now())
  local signing = { method = req.method, host = req.host, path = req.path, query = req.query,
                    headers = headers, body = req.body }
  local ok, set = pcall(_aws.sign, signing, so)
  so.secret_key, so.session_token = nil, nil
  if not ok then error(set, 0) end
  for k, v in pairs(set) do headers[k] = v end
  return true, creds
end

-- Credential material never leaves in an error: AWS quotes the canonical
-- request, session token included, in SignatureDoesNotMatch messages, and
-- S3 errors name the access key.  Secrets become "<redacted>", the access
-- key id its first and last 4 characters.
local function scrub_text(text, creds)
  local function cut(t, secret, with)
    if type(secret) ~= "string" or #secret < 8 then return t end
    local out, i = {}, 1
    while true do
      local a, b = t:find(secret, i, true)
      if not a then break end
      out[#out + 1] = t:sub(i, a - 1)
      out[#out + 1] = with
      i = b + 1
    end
    out[#out + 1] = t:sub(i)
    return table.concat(out)
  end
  text = cut(text, creds:session_token(), "<redacted>")
  text = cut(text, creds:secret_access_key(), "<redacted>")
  local ak = creds.access_key_id
  if type(ak) == "string" and #ak >= 12 then text = cut(text, ak, ak:sub(1, 4) .. "..." .. ak:sub(-4)) end
  return text
end

local function scrub(v, creds, depth)
  if type(v) == "string" then return scrub_text(v, creds) end
  if type(v) == "table" and depth < 8 then
    for k, x in pairs(v) do
      if type(x) == "string" or type(x) == "table" then v[k] = scrub(x, creds, depth + 1) end
    end
  end
  return v
end

function methods:prepare(op, params)
  local info = self:_op(op, 2)
  local req = self:_serialize(info, params, 2)
  local ok, err = self:_sign(info, req, req.headers)
  if not ok then return nil, err end
  return req
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- Header values never shown in debug lines: signatures, session and bearer
-- tokens (x-amz-sso_bearer_token), S3 customer keys, anything secret-like.
local function secret_header(name)
  name = name:lower()
  return name:find("auth", 1, true) or name:find("token", 1, true) or name:find("secret", 1, true)
    or name:find("key", 1, true) or name:find("password", 1, true) or name:find("credential", 1, true)
end

-- One request with retries: result, nil, status | nil, err
function methods:_invoke(info, params, level)
  local req = self:_serialize(info, params, level + 1)
  local dbg = self._debug
  local token = {}
  local service, opname = self.service, info.name
  local used -- the credentials of the last signed attempt
  while true do
    local headers = copy(req.headers)
    local ok, cerr = self:_sign(info, req, headers)
    used = ok and cerr or used
    if not ok then
      local msg = cerr
      if type(cerr) == "table" then msg = cerr.message or tostring(cerr) end
      return nil, new_error { kind = "credentials", service = service, operation = opname,
                              message = tostring(msg), retryable = false }
    end
    if dbg then
      local names = {}
      for k in pairs(headers) do
        names[#names + 1] = k .. "=" .. (secret_header(k) and "<redacted>" or headers[k])
      end
      table.sort(names)
      dbg(string.format("-> %s %s %s.%s attempt %d, %d body bytes; %s", req.method, req.url, service, opname,
        (token.attempts or 0) + 1, #req.body, table.concat(names, " ")))
    end
    local ho = self._http_opts
    local t0 = async.now()
    local resp, herr = self._http {
      url = req.url, method = req.method, headers = headers, body = req.body,
      timeout = self._timeout, connect_timeout = self._connect_timeout,
      proxy = ho.proxy, noproxy = ho.noproxy, cainfo = ho.cainfo,
    }
    local err, info_in
    if resp then
      if dbg then
        dbg(string.format("<- %d %s.%s, %d body bytes, %.1f ms%s", resp.status, service, opname, #resp.body,
          (async.now() - t0) * 1000, resp.reused and " (reused connection)" or ""))
      end
      local result, perr = _aws.parse(service, opname, resp.status, resp.headers, resp.body, self._parse_opts)
      if result then
        self._retry:success(token)
        return result, nil, resp.status
      end
      err = perr
      info_in = { status = resp.status, code = perr.code, modeled_retryable = perr.modeled_retryable,
                  modeled_throttling = perr.modeled_throttling,
                  retry_after = resp.headers["x-amz-retry-after"] }
      if perr.kind == "parse" and resp.status < 300 then info_in.status = resp.status end
    else
      if dbg then dbg(string.format("<- %s.%s failed: %s", service, opname, tostring(herr))) end
      local kind = type(herr) == "table" and herr.kind or "other"
      err = { kind = "http", message = tostring(herr), transport_kind = kind }
      -- connection, DNS, timeout and reset failures are transient; a
      -- certificate problem or an oversized response is not
      local transient = kind ~= "tls" and kind ~= "too_large"
      info_in = { transport = kind == "timeout" and "timeout" or (transient and "http" or nil) }
    end
    local d = self._retry:decide(token, info_in, async.now())
    if d.retry then
      if dbg then
        dbg(string.format("   retrying %s.%s in %.3f s (%s)", service, opname, d.delay, d.class))
      end
      if d.delay > 0 then self._sleep(d.delay) end
    else
      err.service, err.operation = service, opname
      err.retryable = d.class ~= "none"
      err.attempts = token.attempts
      if d.reason == "max_attempts" or d.reason == "quota" then err.reason = d.reason end
      if used then scrub(err, used, 0) end
      return nil, new_error(err)
    end
  end
end

function methods:call(op, params)
  local info = self:_op(op, 2)
  local res, err = self:_invoke(info, params, 2)
  return res, err
end

function methods:operations()
  return _aws.operations(self.service)
end

function methods:waiters()
  return _aws.waiters(self.service)
end

-- ---------------------------------------------------------------------------
-- Pagination
-- ---------------------------------------------------------------------------

local function as_list(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end

local function paginator(self, op, level)
  local info = self:_op(op, level + 1)
  local pag = _aws.paginator(self.service, info.name)
  if not pag then
    error(string.format("%s %s cannot be paginated (no paginator in the model)", self.service, info.name),
      level + 1)
  end
  return info, pag
end

local function empty_token(v)
  return v == nil or v == "" or (type(v) == "table" and next(v) == nil)
end

function methods:paginate(op, params, opts)
  local info, pag = paginator(self, op, 2)
  if params ~= nil and type(params) ~= "table" then error("paginate: params must be a table", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("paginate: opts must be a table", 2) end
  opts = opts or {}
  local p = copy(params or {})
  local inputs, outputs = as_list(pag.input_token), as_list(pag.output_token)
  if opts.page_size then
    if not pag.limit_key then error("paginate: " .. info.name .. " has no page size parameter", 2) end
    p[pag.limit_key] = opts.page_size
  end
  if opts.starting_token then p[inputs[1]] = opts.starting_token end
  local done, pages = false, 0
  local seen = {}
  return function()
    if done then return nil end
    if opts.max_pages and pages >= opts.max_pages then
      done = true
      return nil
    end
    local res, err = self:_invoke(info, p, 2)
    if not res then
      done = true
      error(err, 0)
    end
    pages = pages + 1
    local more = true
    if pag.more_results then more = jmespath.truthy(jmespath.search(pag.more_results, res)) end
    local any = false
    local key = {}
    for i, expr in ipairs(outputs) do
      local v = jmespath.search(expr, res)
      if empty_token(v) then v = nil end
      if v ~= nil then any = true end
      p[inputs[i]] = v
      key[#key + 1] = tostring(v)
    end
    if not more or not any then
      done = true
    else
      local k = table.concat(key, "\0")
      if seen[k] then
        done = true
        error(new_error { kind = "pagination", service = self.service, operation = info.name,
                          code = "PaginationError",
                          message = "the same next token was received twice" }, 0)
      end
      seen[k] = true
    end
    return res
  end
end

function methods:paginate_items(op, params, opts)
  local _, pag = paginator(self, op, 2)
  opts = opts or {}
  local keys = as_list(pag.result_key)
  if #keys == 0 then error("paginate_items: " .. op .. " has no result key", 2) end
  local pages = self:paginate(op, params, opts)
  local page, ki, ii, items = nil, 1, 0, nil
  local count = 0
  return function()
    while true do
      if opts.max_items and count >= opts.max_items then return nil end
      if page and items and ii < #items then
        ii = ii + 1
        count = count + 1
        return items[ii], keys[ki]
      end
      if page and ki < #keys then
        ki = ki + 1
      else
        page = pages()
        if page == nil then return nil end
        ki = 1
      end
      items, ii = jmespath.search(keys[ki], page), 0
      if type(items) ~= "table" then items = nil end
    end
  end
end

-- ---------------------------------------------------------------------------
-- Waiters
-- ---------------------------------------------------------------------------

local function acceptor_matches(a, res, err, status)
  local m, expected = a.matcher, a.expected
  if m == "status" then
    return status == expected
  elseif m == "error" then
    if expected == true then return err ~= nil end
    if expected == false then return err == nil end
    return err ~= nil and err.code == expected
  end
  if res == nil then return false end
  local v = jmespath.search(a.argument, res)
  if m == "path" then
    return jmespath.equal(v, expected)
  elseif m == "pathAll" then
    if type(v) ~= "table" or #v == 0 then return false end
    for i = 1, #v do
      if not jmespath.equal(v[i], expected) then return false end
    end
    return true
  elseif m == "pathAny" then
    if type(v) ~= "table" then return false end
    for i = 1, #v do
      if jmespath.equal(v[i], expected) then return true end
    end
    return false
  end
  error("unknown waiter matcher " .. tostring(m), 0)
end
M._acceptor_matches = acceptor_matches

function methods:wait(name, params, opts)
  if type(name) ~= "string" then error("wait: waiter name must be a string", 2) end
  local w, werr = _aws.waiter(self.service, name)
  if not w then error(werr, 2) end
  if opts ~= nil and type(opts) ~= "table" then error("wait: opts must be a table", 2) end
  opts = opts or {}
  local info = self:_op(w.operation, 2)
  local delay = opts.delay or w.delay or 15
  local max = opts.max_attempts or w.maxAttempts or 40
  local wname = name
  for attempt = 1, max do
    local res, err, status = self:_invoke(info, params, 2)
    if err then status = err.status end
    local state
    for _, a in ipairs(w.acceptors or {}) do
      if acceptor_matches(a, res, err, status) then
        state = a.state
        break
      end
    end
    if state == "success" then
      return res or {}
    elseif state == "failure" then
      return nil, new_error { kind = "waiter", service = self.service, operation = info.name,
        code = "WaiterFailure", waiter = wname, attempts = attempt, last = res or err,
        message = string.format("waiter %s encountered a terminal failure state%s", wname,
          err and (": " .. tostring(err)) or "") }
    elseif state == nil and err then
      return nil, err
    end
    if attempt < max then self._sleep(delay) end
  end
  return nil, new_error { kind = "waiter", service = self.service, operation = info.name,
    code = "MaxAttemptsExceeded", waiter = wname, attempts = max,
    message = string.format("waiter %s: max attempts (%d) exceeded", wname, max) }
end

return M
