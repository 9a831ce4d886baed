--- lumu.aws.credentials: the AWS credential provider chain, in botocore's
-- order, with caching and refresh before expiry.
--
-- local credentials = require "lumu.aws.credentials"
--
-- credentials.chain([opts]) -> chain | nil, err
--   opts.config       a lumu.aws.config object; otherwise opts is also passed
--                     to lumu.aws.config.load (profile, env, home, flags ...)
--   opts.credentials  explicit keys (command-line options), first in the chain:
--                     { access_key_id=, secret_access_key=, session_token= }
--   opts.sts          function(operation, params, creds, region, config) -> result | nil, err
--                     the STS caller for "AssumeRole" (creds = the source
--                     credentials) and "AssumeRoleWithWebIdentity" (creds =
--                     nil: unsigned).  result.Credentials = { AccessKeyId=,
--                     SecretAccessKey=, SessionToken=, Expiration = epoch
--                     seconds or an ISO 8601 string }.  Default: lazily
--                     require "lumu.aws" and call
--                     aws.client("sts", {credentials=, region=, config=}):call(operation, params)
--   opts.http         function(req) -> resp | nil, err  (lumu.http.request shape;
--                     default lumu.http.request with the config's CA bundle and proxies)
--   opts.prompt       function(text) -> code | nil   asks for an MFA code
--   opts.isatty       function() -> boolean          default: stdin is a terminal
--   opts.run          function(argv) -> stdout, stderr, exit_code   (credential_process)
--   opts.now          function() -> epoch seconds    (default lumu.time.now)
--   opts.sleep        function(seconds)              (container retries; default lumu.async.sleep)
--   opts.file_cache   false: do not read/write ~/.aws/cli/cache (default true:
--                     assumed-role and SSO credentials are shared with the AWS CLI)
--   opts.session_name default RoleSessionName (default "lumu-session-<epoch>")
--   opts.container_attempts (3), opts.container_timeout (2 s)
--   Returns nil, err only when the configuration cannot be loaded.
--
-- chain:get() -> creds | nil, err
--   The first provider that is configured wins; a configured provider that
--   fails is an error (the chain does not fall through), exactly as botocore:
--     explicit keys -> environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
--     AWS_SESSION_TOKEN/AWS_SECURITY_TOKEN, AWS_CREDENTIAL_EXPIRATION; skipped
--     when the profile was given explicitly) -> assume role (role_arn +
--     source_profile | credential_source, chained, mfa_serial, external_id,
--     role_session_name, duration_seconds) -> web identity
--     (AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN/AWS_ROLE_SESSION_NAME or the
--     profile's keys) -> IAM Identity Center (sso_session + [sso-session], or
--     the legacy sso_start_url/sso_region layout; token from
--     ~/.aws/sso/cache/<sha1>.json, refreshed through SSO OIDC for
--     sso-session profiles; GetRoleCredentials on the SSO portal) -> shared
--     credentials file -> credential_process -> config file -> container
--     (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI appended to http://169.254.170.2,
--     or _FULL_URI: https, or http to loopback / 169.254.170.2 /
--     169.254.170.23 / fd00:ec2::23 only; Authorization from
--     AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read on every refresh), else
--     _TOKEN; 3 attempts, 2 s timeouts, never through a proxy) -> EC2 instance
--     metadata (PUT /latest/api/token then GETs with X-aws-ec2-metadata-token;
--     metadata_service_timeout (1 s) and _num_attempts (1); IMDSv1 fallback
--     after a 403/404/405 or a timed-out token request, unless
--     ec2_metadata_v1_disabled; nothing after a 400 or an unreachable
--     endpoint; ec2_metadata_service_endpoint[_mode];
--     AWS_EC2_METADATA_DISABLED=true skips it).
--   The result is cached; it is refreshed when it expires in less than 15
--   minutes (a failed refresh is tolerated until 10 minutes are left).
--   Inside lumu.async tasks one resolution runs at a time: concurrent get()
--   calls wait for it and share its result.
--   Assumed-role, web-identity and SSO credentials are also cached by their
--   request parameters (in memory and in ~/.aws/cli/cache, AWS CLI format),
--   so an MFA code is asked for once per session (and again, on a terminal,
--   when the session must be renewed).  MFA codes are asked only when stdin
--   is a terminal; otherwise the error says so.
--   err is a lumu.aws.CredentialsError { kind = "credentials", provider =,
--   profile =, message = } with a __tostring.  No error, log or __tostring
--   ever contains a secret key, session token or bearer token.
-- chain:describe() -> report        which provider won and why (no secrets):
--   { profile=, profile_source=, region=, region_source=, provider=, reason=,
--     access_key = "AKIA****MPLE", expiration=, expires_in=, error=,
--     steps = { {provider=, status = "used"|"skipped"|"error", detail=}, ... } }
--   tostring(report) renders it as text (for `lumu doctor`).
-- chain.config                      the lumu.aws.config object in use
--
-- credentials.resolve([opts]) -> creds | nil, err        chain(opts):get()
-- credentials.describe([opts]) -> report | nil, err
-- credentials.new{ access_key_id=, secret_access_key=, session_token=,
--                  expiration=, provider=, profile= } -> creds
-- creds.access_key_id, creds.expiration (epoch | nil), creds.provider,
-- creds.profile, creds.account_id
-- creds:secret_access_key(), creds:session_token()
-- creds:expires_in([now]) -> seconds | nil
-- creds:sign(request, {region=, service=, time=, s3=, expires=, algorithm=})
--   -> headers | query, details   (lumu._awscore.sign with these keys)
-- tostring(creds) -> "<credentials AKIA****MPLE from env>"
-- credentials.is_error(v), credentials.clear_cache()
-- credentials.imds_region(cfg [, opts]) -> region | nil   (EC2 placement/region)
local core = require "lumu._awscore"
local awsconfig = require "lumu.aws.config"
local crypto = require "lumu.crypto"
local fs = require "lumu.fs"
local json = require "lumu.json"
local time = require "lumu.time"

local M = {}

local ADVISORY_REFRESH = 15 * 60
local MANDATORY_REFRESH = 10 * 60
local CACHE_WINDOW = 15 * 60
local SSO_REFRESH_WINDOW = 15 * 60
local IMDS_TOKEN_TTL = "21600"
local CONTAINER_HOST = "http://169.254.170.2"

-- ---------------------------------------------------------------------------
-- Errors
-- ---------------------------------------------------------------------------

local Error = { __name = "lumu.aws.CredentialsError" }
Error.__index = Error
Error.__tostring = function(e)
  return "credentials: " .. (e.provider and (e.provider .. ": ") or "") .. tostring(e.message)
end
M.Error = Error

function M.is_error(v)
  return getmetatable(v) == Error
end

-- ---------------------------------------------------------------------------
-- Credentials objects: secrets live in a private weak table, never in fields
-- ---------------------------------------------------------------------------

local SECRETS = setmetatable({}, { __mode = "k" })
local REFRESH = setmetatable({}, { __mode = "k" })

local function mask(ak)
  if type(ak) ~= "string" then return "?" end
  if #ak >= 12 then return ak:sub(1, 4) .. "****" .. ak:sub(-4) end
  return "****"
end
M.mask = mask

local Credentials = { __name = "lumu.aws.Credentials" }
local methods = {}
Credentials.__index = methods
Credentials.__tostring = function(c)
  return string.format("<credentials %s from %s>", mask(c.access_key_id), c.provider)
end
M.Credentials = Credentials

function methods:secret_access_key()
  return SECRETS[self].secret
end

function methods:session_token()
  return SECRETS[self].token
end

function methods:expires_in(now)
  if not self.expiration then return nil end
  return self.expiration - (now or time.now())
end

function methods:sign(request, opts)
  if type(opts) ~= "table" then error("creds:sign: opts must be a table", 2) end
  local s = SECRETS[self]
  return core.sign(request, {
    access_key = self.access_key_id, secret_key = s.secret, session_token = s.token,
    region = opts.region, service = opts.service, time = opts.time or math.floor(time.now()),
    s3 = opts.s3, expires = opts.expires, algorithm = opts.algorithm,
    omit_session_token = opts.omit_session_token, add_content_sha256 = opts.add_content_sha256,
  })
end

local function nonempty_string(v)
  return type(v) == "string" and v ~= ""
end

function M.new(t)
  if type(t) ~= "table" then error("credentials.new: expected a table", 2) end
  if not nonempty_string(t.access_key_id) then error("credentials.new: access_key_id must be a non-empty string", 2) end
  if not nonempty_string(t.secret_access_key) then
    error("credentials.new: secret_access_key must be a non-empty string", 2)
  end
  if t.session_token ~= nil and type(t.session_token) ~= "string" then
    error("credentials.new: session_token must be a string", 2)
  end
  if t.expiration ~= nil and type(t.expiration) ~= "number" then
    error("credentials.new: expiration must be epoch seconds", 2)
  end
  local c = setmetatable({
    access_key_id = t.access_key_id, expiration = t.expiration,
    provider = t.provider or "static", profile = t.profile, account_id = t.account_id,
  }, Credentials)
  SECRETS[c] = { secret = t.secret_access_key, token = t.session_token ~= "" and t.session_token or nil }
  return c
end

-- ---------------------------------------------------------------------------
-- Helpers: time, Python-compatible JSON for cache keys, URL encoding
-- ---------------------------------------------------------------------------

-- epoch seconds | nil, err
local function parse_time(v)
  if v == nil or v == json.null then return nil end
  if type(v) == "number" then
    if v > 1e11 then return v / 1000 end -- milliseconds (SSO)
    return v
  end
  if type(v) == "string" then
    local t, err = time.parse(v)
    if not t then return nil, "invalid expiration time: " .. tostring(err) end
    return t
  end
  return nil, "invalid expiration time"
end

-- json.dumps(v, sort_keys=True, separators=...) of a flat object (ensure_ascii)
local function py_string(s)
  local out = { '"' }
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    if c == 34 then out[#out + 1] = '\\"'
    elseif c == 92 then out[#out + 1] = "\\\\"
    elseif c == 10 then out[#out + 1] = "\\n"
    elseif c == 13 then out[#out + 1] = "\\r"
    elseif c == 9 then out[#out + 1] = "\\t"
    elseif c == 8 then out[#out + 1] = "\\b"
    elseif c == 12 then out[#out + 1] = "\\f"
    elseif c < 32 or c == 127 then out[#out + 1] = string.format("\\u%04x", c)
    elseif c < 128 then out[#out + 1] = string.char(c)
    else
      local cp, len = nil, 1
      local ok, r = pcall(utf8.codepoint, s, i)
      if ok then cp = r; len = #utf8.char(cp) else cp = 0xfffd end
      if cp >= 0x10000 then
        local v = cp - 0x10000
        out[#out + 1] = string.format("\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff))
      else
        out[#out + 1] = string.format("\\u%04x", cp)
      end
      i = i + len - 1
    end
    i = i + 1
  end
  out[#out + 1] = '"'
  return table.concat(out)
end

local function py_dumps(t, item_sep, kv_sep)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    local sv = type(v) == "number" and tostring(math.tointeger(v) or v) or py_string(tostring(v))
    parts[#parts + 1] = py_string(k) .. kv_sep .. sv
  end
  return "{" .. table.concat(parts, item_sep) .. "}"
end
M._py_dumps = py_dumps

local function sha1_hex(s)
  return crypto.hex(crypto.sha1(s))
end

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- ---------------------------------------------------------------------------
-- Context: one resolution run (config, injected functions, secret registry)
-- ---------------------------------------------------------------------------

local Ctx = {}
Ctx.__index = Ctx

function Ctx:secret(s)
  if type(s) == "string" and #s >= 8 then self.secrets[s] = true end
  return s
end

function Ctx:redact(msg)
  msg = tostring(msg)
  for s in pairs(self.secrets) do
    local from = 1
    while true do
      local i, j = msg:find(s, from, true)
      if not i then break end
      msg = msg:sub(1, i - 1) .. "****" .. msg:sub(j + 1)
      from = i + 4
    end
  end
  return msg
end

-- false, err  (a configured provider failed)
function Ctx:fail(provider, fmt, ...)
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  return false, setmetatable({ kind = "credentials", provider = provider, profile = self.profile,
                               message = self:redact(msg) }, Error)
end

function Ctx:env(name)
  return self.cfg:getenv(name)
end

-- Registers a value as secret and builds credentials.
function Ctx:make(t, refresh)
  self:secret(t.secret_access_key)
  self:secret(t.session_token)
  local c = M.new(t)
  REFRESH[c] = refresh
  return c
end

function Ctx:step(provider, status, detail)
  local steps = self.steps
  steps[#steps + 1] = { provider = provider, status = status, detail = detail and self:redact(detail) }
end

-- An HTTP request; returns resp | nil, err (err text redacted by callers).
function Ctx:request(req)
  local ok, res, err = pcall(self.http, req)
  if not ok then return nil, tostring(res) end
  return res, err
end

-- The response of an STS operation, or false, err.
function Ctx:call_sts(provider, operation, params, creds)
  local region = self.cfg:region()
  local res, err = self.sts(operation, params, creds, region, self.cfg)
  if not res then
    return self:fail(provider, "STS %s failed: %s", operation, tostring(err))
  end
  local c = type(res) == "table" and res.Credentials
  if type(c) ~= "table" or not nonempty_string(c.AccessKeyId) or not nonempty_string(c.SecretAccessKey) then
    return self:fail(provider, "STS %s returned no credentials", operation)
  end
  self:secret(c.SecretAccessKey)
  self:secret(c.SessionToken)
  return res
end

-- ---------------------------------------------------------------------------
-- Credential cache (memory + the AWS CLI's ~/.aws/cli/cache/<key>.json)
-- ---------------------------------------------------------------------------

local MEMCACHE = {}

function M.clear_cache()
  MEMCACHE = {}
end

function Ctx:cache_dir()
  local home = self.cfg.home
  return home and (home .. "/.aws/cli/cache") or nil
end

-- The cached response for key if it is valid for CACHE_WINDOW more seconds.
function Ctx:cache_get(key)
  local dir = self:cache_dir() or ""
  local entry = MEMCACHE[dir .. "/" .. key]
  if not entry and self.file_cache and dir ~= "" then
    local text = fs.read(dir .. "/" .. key .. ".json")
    local doc = text and json.decode(text)
    if type(doc) == "table" and type(doc.Credentials) == "table" then entry = doc end
  end
  if not entry then return nil end
  local c = entry.Credentials
  local exp = parse_time(c.Expiration)
  if not exp or exp - self.now() < CACHE_WINDOW then return nil end
  if not nonempty_string(c.AccessKeyId) or not nonempty_string(c.SecretAccessKey) then return nil end
  self:secret(c.SecretAccessKey)
  self:secret(c.SessionToken)
  MEMCACHE[dir .. "/" .. key] = entry
  return entry
end

function Ctx:cache_put(key, entry)
  local dir = self:cache_dir() or ""
  MEMCACHE[dir .. "/" .. key] = entry
  if self.file_cache and dir ~= "" then
    if fs.mkdir(dir, "700") then
      local exp = parse_time(entry.Credentials.Expiration)
      local doc = {
        ProviderType = entry.ProviderType,
        Credentials = {
          AccessKeyId = entry.Credentials.AccessKeyId,
          SecretAccessKey = entry.Credentials.SecretAccessKey,
          SessionToken = entry.Credentials.SessionToken,
          Expiration = exp and time.iso8601(exp) or nil,
        },
      }
      local ok, text = pcall(json.encode, doc)
      if ok then fs.write(dir .. "/" .. key .. ".json", text, { mode = "600" }) end
    end
  end
end

-- Credentials from a cached/fresh STS-shaped response.
function Ctx:from_response(res, provider, refresh)
  local c = res.Credentials
  local exp, err = parse_time(c.Expiration)
  if c.Expiration ~= nil and not exp then return self:fail(provider, "%s", err) end
  local account
  local arn = type(res.AssumedRoleUser) == "table" and res.AssumedRoleUser.Arn
  if type(arn) == "string" then account = arn:match("^arn:[^:]*:[^:]*:[^:]*:(%d+):") end
  return self:make({
    access_key_id = c.AccessKeyId, secret_access_key = c.SecretAccessKey,
    session_token = c.SessionToken, expiration = exp, provider = provider,
    profile = self.profile, account_id = account or res.AccountId,
  }, refresh)
end

-- Cached fetch: key_args -> cache key (botocore's, so the AWS CLI shares it).
function Ctx:cached(provider, key, fetch, refresh)
  local hit = self:cache_get(key)
  if hit then return self:from_response(hit, provider, refresh) end
  local res, err = fetch()
  if not res then return false, err end
  self:cache_put(key, res)
  return self:from_response(res, provider, refresh)
end

-- ---------------------------------------------------------------------------
-- Providers.  Each returns creds | nil, why-skipped | false, err
-- ---------------------------------------------------------------------------

local providers = {}

function providers.explicit(ctx)
  local e = ctx.opts.credentials
  if e == nil then return nil, "no credentials given on the command line" end
  if not nonempty_string(e.access_key_id) or not nonempty_string(e.secret_access_key) then
    ctx:secret(e.secret_access_key)
    return ctx:fail("explicit", "both access_key_id and secret_access_key are required")
  end
  return ctx:make({ access_key_id = e.access_key_id, secret_access_key = e.secret_access_key,
                    session_token = e.session_token, provider = "explicit" }),
         "given on the command line"
end

function providers.env(ctx)
  local ak = ctx:env("AWS_ACCESS_KEY_ID")
  local sk = ctx:secret(ctx:env("AWS_SECRET_ACCESS_KEY"))
  local token = ctx:secret(ctx:env("AWS_SESSION_TOKEN") or ctx:env("AWS_SECURITY_TOKEN"))
  if not ak then return nil, "AWS_ACCESS_KEY_ID is not set" end
  if not sk then
    return ctx:fail("env", "partial credentials: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
  end
  local exp, err
  local exps = ctx:env("AWS_CREDENTIAL_EXPIRATION")
  if exps then
    exp, err = parse_time(exps)
    if not exp then return ctx:fail("env", "AWS_CREDENTIAL_EXPIRATION: %s", err) end
  end
  return ctx:make({ access_key_id = ak, secret_access_key = sk, session_token = token,
                    expiration = exp, provider = "env" },
                  function(c2) return providers.env(c2) end),
         "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set"
end

-- Static keys of a profile in one of the two files.
local function static_from(ctx, pname, which, provider)
  local prof = ctx.cfg.files[which].profiles[pname]
  if not prof then return nil, "no profile " .. pname .. " in " .. ctx.cfg[which .. "_file"] end
  ctx:secret(prof.aws_secret_access_key)
  ctx:secret(prof.aws_session_token)
  ctx:secret(prof.aws_security_token)
  if prof.aws_access_key_id == nil then
    return nil, "profile " .. pname .. " has no aws_access_key_id in " .. ctx.cfg[which .. "_file"]
  end
  if not nonempty_string(prof.aws_access_key_id) or not nonempty_string(prof.aws_secret_access_key) then
    return ctx:fail(provider, "partial credentials in profile %s (%s): aws_secret_access_key is missing",
      pname, ctx.cfg[which .. "_file"])
  end
  local token = prof.aws_session_token or prof.aws_security_token
  return ctx:make({ access_key_id = prof.aws_access_key_id, secret_access_key = prof.aws_secret_access_key,
                    session_token = type(token) == "string" and token or nil, provider = provider,
                    profile = pname }),
         "aws_access_key_id in profile " .. pname .. " (" .. (ctx.cfg:origin_of("aws_access_key_id", pname) or
           ctx.cfg[which .. "_file"]) .. ")"
end

function providers.shared_credentials_file(ctx, pname)
  return static_from(ctx, pname, "credentials", "shared-credentials-file")
end

function providers.config_file(ctx, pname)
  local prof = ctx.cfg.files.config.profiles[pname]
  if not prof then return nil, "no profile " .. pname .. " in " .. ctx.cfg.config_file end
  return static_from(ctx, pname, "config", "config-file")
end

-- credential_process ----------------------------------------------------------

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function default_run(argv)
  local dir, derr = fs.tmpdir("lumu-cp-")
  if not dir then return nil, "cannot create a temporary directory: " .. tostring(derr), -1 end
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = shell_quote(a) end
  local errfile = dir .. "/stderr"
  local cmd = table.concat(parts, " ") .. " 2>" .. shell_quote(errfile)
  local p, perr = io.popen(cmd, "r")
  if not p then
    fs.rmtree(dir)
    return nil, tostring(perr), -1
  end
  local out = p:read("a") or ""
  local _, how, code = p:close()
  local stderr = fs.read(errfile) or ""
  fs.rmtree(dir)
  if how == "signal" then code = 128 + (code or 0) end
  return out, stderr, code or 0
end

function providers.process(ctx, pname)
  local prof = ctx.cfg:profile_settings(pname) or {}
  local cmd = prof.credential_process
  if type(cmd) ~= "string" or cmd == "" then return nil, "profile " .. pname .. " has no credential_process" end
  local argv, perr = core.shlex(cmd)
  if not argv then
    return ctx:fail("credential-process", "cannot parse credential_process of profile %s: %s", pname, perr)
  end
  if #argv == 0 then return ctx:fail("credential-process", "empty credential_process in profile %s", pname) end
  local function fetch(c)
    c = c or ctx
    local ok, out, stderr, code = pcall(c.run, argv)
    if not ok then return c:fail("credential-process", "cannot run %s: %s", argv[1], tostring(out)) end
    if code ~= 0 then
      local msg = trim(tostring(stderr or ""))
      if #msg > 2000 then msg = msg:sub(1, 2000) .. "..." end
      return c:fail("credential-process", "%s exited with status %s%s", argv[1], tostring(code),
        msg ~= "" and (": " .. msg) or "")
    end
    local doc, jerr = json.decode(out or "")
    if type(doc) ~= "table" then
      return c:fail("credential-process", "%s did not print a JSON object (%s)", argv[1],
        jerr and ("at " .. tostring(jerr):match("^%d+:%d+") or "parse error") or "not an object")
    end
    c:secret(type(doc.SecretAccessKey) == "string" and doc.SecretAccessKey or nil)
    c:secret(type(doc.SessionToken) == "string" and doc.SessionToken or nil)
    if doc.Version ~= 1 then
      return c:fail("credential-process",
        "unsupported version %s for the credential process provider, supported versions: 1",
        doc.Version == nil and "<Version key not provided>" or ("'" .. tostring(doc.Version) .. "'"))
    end
    for _, k in ipairs { "AccessKeyId", "SecretAccessKey" } do
      if not nonempty_string(doc[k]) then
        return c:fail("credential-process", "missing required key in response: %s", k)
      end
    end
    local exp, eerr = parse_time(doc.Expiration)
    if doc.Expiration ~= nil and doc.Expiration ~= json.null and not exp then
      return c:fail("credential-process", "%s", eerr)
    end
    return c:make({ access_key_id = doc.AccessKeyId, secret_access_key = doc.SecretAccessKey,
                    session_token = nonempty_string(doc.SessionToken) and doc.SessionToken or nil,
                    expiration = exp, provider = "credential-process", profile = pname,
                    account_id = nonempty_string(doc.AccountId) and doc.AccountId or nil },
                  function(c2) return fetch(c2) end)
  end
  local creds, err = fetch()
  if not creds then return false, err end
  return creds, "credential_process in profile " .. pname
end

-- HTTP metadata endpoints ---------------------------------------------------

local function is_loopback_v4(host)
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, x in ipairs { a, b, c, d } do
    if tonumber(x) > 255 then return false end
  end
  return tonumber(a) == 127
end

-- scheme, host (no brackets, lower-case) of a URL
local function url_host(url)
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return nil end
  authority = authority:gsub("^.*@", "")
  local host = authority:match("^%[([^%]]+)%]") or authority:match("^([^:]*)")
  return scheme:lower(), (host or ""):lower()
end

local CONTAINER_HOSTS = { ["169.254.170.2"] = true, ["169.254.170.23"] = true, ["fd00:ec2::23"] = true,
                          ["localhost"] = true, ["::1"] = true }

local function container_url_allowed(url)
  local scheme, host = url_host(url)
  if not scheme then return false, "is not a URL" end
  if scheme == "https" then return true end
  if scheme ~= "http" then return false, "must use http or https" end
  if CONTAINER_HOSTS[host] or is_loopback_v4(host) then return true end
  return false, "unsupported host '" .. host .. "': http URLs must point at a loopback address, " ..
    "169.254.170.2, 169.254.170.23 or fd00:ec2::23"
end

function providers.container(ctx)
  local rel = ctx:env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
  local full = ctx:env("AWS_CONTAINER_CREDENTIALS_FULL_URI")
  if not rel and not full then
    return nil, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI are not set"
  end
  local url, source
  if rel then
    url, source = CONTAINER_HOST .. rel, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
  else
    url, source = full, "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    local ok, why = container_url_allowed(full)
    if not ok then return ctx:fail("container", "AWS_CONTAINER_CREDENTIALS_FULL_URI %s", why) end
  end
  local function fetch(c)
    c = c or ctx
    local headers = { Accept = "application/json" }
    local token
    local tfile = c:env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    if tfile then
      local text, err = fs.read(tfile)
      if not text then
        return c:fail("container", "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %s", tostring(err))
      end
      token = text
    else
      token = c:env("AWS_CONTAINER_AUTHORIZATION_TOKEN")
    end
    if token then
      c:secret(token)
      c:secret(trim(token))
      if token:find("[\r\n]") then
        return c:fail("container", "the container authorization token is not a legal header value")
      end
      headers.Authorization = token
    end
    local last
    for attempt = 1, c.container_attempts do
      if attempt > 1 then c.sleep(1) end
      local res, err = c:request { method = "GET", url = url, headers = headers, proxy = false,
                                   noproxy = false, timeout = c.container_timeout,
                                   connect_timeout = c.container_timeout }
      if not res then
        last = "request failed: " .. tostring(err)
      elseif res.status ~= 200 then
        last = "the endpoint answered HTTP " .. tostring(res.status)
      else
        local doc = json.decode(res.body or "")
        if type(doc) ~= "table" then
          last = "the endpoint did not return JSON"
        else
          c:secret(doc.SecretAccessKey)
          c:secret(doc.Token)
          if not nonempty_string(doc.AccessKeyId) or not nonempty_string(doc.SecretAccessKey) then
            return c:fail("container", "the container credentials response lacks AccessKeyId/SecretAccessKey")
          end
          local exp, eerr = parse_time(doc.Expiration)
          if doc.Expiration ~= nil and not exp then return c:fail("container", "%s", eerr) end
          return c:make({ access_key_id = doc.AccessKeyId, secret_access_key = doc.SecretAccessKey,
                          session_token = nonempty_string(doc.Token) and doc.Token or nil, expiration = exp,
                          provider = "container", account_id = nonempty_string(doc.AccountId) and doc.AccountId or nil },
                        function(c2) return fetch(c2) end)
        end
      end
    end
    return c:fail("container", "cannot get credentials from %s: %s", source, last)
  end
  local creds, err = fetch()
  if not creds then return false, err end
  return creds, source .. " is set"
end

-- IMDS ----------------------------------------------------------------------

local Imds = {}
Imds.__index = Imds

local function imds_client(ctx)
  local cfg = ctx.cfg
  if awsconfig.truthy(cfg:getenv("AWS_EC2_METADATA_DISABLED")) then
    return nil, "AWS_EC2_METADATA_DISABLED is true"
  end
  local base = cfg:get("ec2_metadata_service_endpoint")
  if not base then
    local mode = cfg:get("ec2_metadata_service_endpoint_mode")
    base = (mode and mode:lower() == "ipv6") and "http://[fd00:ec2::254]" or "http://169.254.169.254"
  end
  if not base:match("^https?://[^/]") then return nil, "invalid ec2_metadata_service_endpoint" end
  base = base:gsub("/+$", "")
  local timeout = cfg:get("metadata_service_timeout") or 1
  local attempts = cfg:get("metadata_service_num_attempts") or 1
  if attempts < 1 then attempts = 1 end
  return setmetatable({ ctx = ctx, base = base, timeout = timeout, attempts = attempts,
                        v1_disabled = cfg:get("ec2_metadata_v1_disabled") and true or false }, Imds)
end

-- token | nil (use v1) | false, why (give up)
function Imds:token()
  local ctx = self.ctx
  for _ = 1, self.attempts do
    local res, err = ctx:request { method = "PUT", url = self.base .. "/latest/api/token",
      headers = { ["x-aws-ec2-metadata-token-ttl-seconds"] = IMDS_TOKEN_TTL },
      timeout = self.timeout, connect_timeout = self.timeout }
    if res then
      if res.status == 200 and res.body and res.body ~= "" then
        return ctx:secret(res.body)
      elseif res.status == 403 or res.status == 404 or res.status == 405 then
        return nil
      elseif res.status == 400 then
        return false, "the metadata service rejected the token request (HTTP 400)"
      end
    else
      local kind = type(err) == "table" and err.kind
      if kind == "timeout" then return nil end -- hop limit reached: IMDSv1 may still answer
      if kind == "connect" or kind == "dns" then
        return false, "the metadata service is not reachable (" .. tostring(err) .. ")"
      end
    end
  end
  return nil
end

-- body | nil, why
function Imds:get(path, token)
  local ctx = self.ctx
  local headers = {}
  if token then headers["x-aws-ec2-metadata-token"] = token end
  local last = "no answer"
  for _ = 1, self.attempts do
    local res, err = ctx:request { method = "GET", url = self.base .. "/" .. path, headers = headers,
                                   timeout = self.timeout, connect_timeout = self.timeout }
    if not res then
      last = tostring(err)
    elseif res.status == 200 and res.body and res.body ~= "" then
      return res.body
    else
      last = "HTTP " .. tostring(res.status)
    end
  end
  return nil, last
end

-- token or v1; nil, why when IMDS cannot be used
function Imds:session()
  local token, why = self:token()
  if token == false then return nil, why end
  if token == nil and self.v1_disabled then
    return nil, "no IMDSv2 token and the IMDSv1 fallback is disabled (ec2_metadata_v1_disabled)"
  end
  return token or true
end

function providers.imds(ctx)
  local client, why = imds_client(ctx)
  if not client then return nil, why end
  local function fetch(c)
    c = c or ctx
    client.ctx = c
    local token, terr = client:session()
    if not token then return nil, terr end
    if token == true then token = nil end
    local role, rerr = client:get("latest/meta-data/iam/security-credentials/", token)
    if not role then return nil, "no instance profile role (" .. tostring(rerr) .. ")" end
    role = role:match("^[^\r\n]+")
    if not role then return nil, "no instance profile role" end
    local body, berr = client:get("latest/meta-data/iam/security-credentials/" .. role, token)
    if not body then return nil, "cannot read the role credentials (" .. tostring(berr) .. ")" end
    local doc = json.decode(body)
    if type(doc) ~= "table" then return nil, "the metadata service returned invalid JSON" end
    c:secret(doc.SecretAccessKey)
    c:secret(doc.Token)
    if not (nonempty_string(doc.AccessKeyId) and nonempty_string(doc.SecretAccessKey) and
            nonempty_string(doc.Token) and doc.Expiration) then
      return nil, "the metadata service returned incomplete credentials" ..
        (doc.Code and (" (" .. tostring(doc.Code) .. ")") or "")
    end
    local exp = parse_time(doc.Expiration)
    local now = c.now()
    if exp then
      -- static stability: keep expired credentials usable for a while
      local offset = ADVISORY_REFRESH + math.random(120, 600)
      if now >= exp - offset then exp = now + offset end
    end
    return c:make({ access_key_id = doc.AccessKeyId, secret_access_key = doc.SecretAccessKey,
                    session_token = doc.Token, expiration = exp, provider = "instance-metadata" },
                  function(c2)
                    local again, aerr = fetch(c2)
                    if again then return again end
                    return c2:fail("instance-metadata", "%s", aerr or "refresh failed")
                  end), "instance profile role " .. role .. (token and " (IMDSv2)" or " (IMDSv1)")
  end
  return fetch()
end

function M.imds_region(cfg, opts)
  local ctx = M._context(cfg, opts or {})
  local client = imds_client(ctx)
  if not client then return nil end
  local token = client:session()
  if not token then return nil end
  if token == true then token = nil end
  local body = client:get("latest/meta-data/placement/region", token)
  if body and core.valid_region(trim(body)) then return trim(body) end
  return nil
end

-- Web identity ----------------------------------------------------------------

local WEB_ENV = { web_identity_token_file = "AWS_WEB_IDENTITY_TOKEN_FILE", role_arn = "AWS_ROLE_ARN",
                  role_session_name = "AWS_ROLE_SESSION_NAME" }

function providers.web_identity(ctx, pname, disable_env)
  local prof = ctx.cfg:profile_settings(pname) or {}
  local function get(key)
    if not disable_env then
      local v = ctx:env(WEB_ENV[key])
      if v then return v end
    end
    return prof[key]
  end
  local token_file = get("web_identity_token_file")
  if not nonempty_string(token_file) then
    return nil, "no web_identity_token_file / AWS_WEB_IDENTITY_TOKEN_FILE"
  end
  local role_arn = get("role_arn")
  if not nonempty_string(role_arn) then
    return ctx:fail("web-identity", "web identity is configured (web_identity_token_file) but no role ARN: " ..
      "set role_arn in the profile or AWS_ROLE_ARN")
  end
  local session_name = get("role_session_name")
  local key_args = { RoleArn = role_arn, RoleSessionName = session_name }
  local key = sha1_hex(py_dumps(key_args, ", ", ": "))
  local function fetch(c)
    c = c or ctx
    return c:cached("web-identity", key, function()
      local token, err = fs.read(token_file)
      if not token then
        return c:fail("web-identity", "cannot read the web identity token file: %s", tostring(err))
      end
      c:secret(token)
      c:secret(trim(token))
      return c:call_sts("web-identity", "AssumeRoleWithWebIdentity", {
        RoleArn = role_arn, RoleSessionName = session_name or c.default_session_name(),
        WebIdentityToken = token,
      }, nil)
    end, function(c2) return fetch(c2) end)
  end
  local creds, err = fetch()
  if not creds then return false, err end
  return creds, "web identity token file with role " .. role_arn
end

-- SSO -------------------------------------------------------------------------

local function sso_config(ctx, pname)
  local prof = ctx.cfg:profile_settings(pname) or {}
  if prof.sso_role_name == nil and prof.sso_account_id == nil then
    return nil, "profile " .. pname .. " has no sso_account_id / sso_role_name"
  end
  local conf = {}
  for k, v in pairs(prof) do conf[k] = v end
  local required = { "sso_role_name", "sso_account_id", "sso_start_url", "sso_region" }
  local session_name = prof.sso_session
  if session_name ~= nil then
    local session = ctx.cfg:sso_session(session_name)
    if not session then
      return ctx:fail("sso", 'the specified sso-session does not exist: "%s"', tostring(session_name))
    end
    for k, v in pairs(session) do
      if conf[k] ~= nil and conf[k] ~= v then
        return ctx:fail("sso", "the value for %s is inconsistent between profile (%s) and sso-session (%s)",
          k, tostring(conf[k]), tostring(v))
      end
      conf[k] = v
    end
    required[#required + 1] = "sso_session"
  end
  local missing = {}
  for _, k in ipairs(required) do
    if not nonempty_string(conf[k]) then missing[#missing + 1] = k end
  end
  if #missing > 0 then
    return ctx:fail("sso", 'the profile "%s" is configured to use SSO but is missing required configuration: %s',
      pname, table.concat(missing, ", "))
  end
  return conf
end

local function login_hint(conf, pname)
  return string.format("the SSO session for profile %s has expired or is invalid; run `aws sso login %s`",
    pname, conf.sso_session and ("--sso-session " .. conf.sso_session) or ("--profile " .. pname))
end

-- Refreshes an sso-session token through SSO OIDC CreateToken.
local function sso_refresh_token(ctx, conf, doc, path)
  local ep = ctx.cfg:resolve_endpoint("oidc", { service_id = "SSO OIDC", region = conf.sso_region })
  if not ep then return nil end
  local body = json.encode { grantType = "refresh_token", clientId = doc.clientId,
                             clientSecret = doc.clientSecret, refreshToken = doc.refreshToken }
  local res = ctx:request { method = "POST", url = ep.url:gsub("/+$", "") .. "/token", body = body,
                            headers = { ["Content-Type"] = "application/json" }, timeout = 30 }
  if not res or res.status ~= 200 then return nil end
  local out = json.decode(res.body or "")
  if type(out) ~= "table" or not nonempty_string(out.accessToken) or type(out.expiresIn) ~= "number" then
    return nil
  end
  ctx:secret(out.accessToken)
  ctx:secret(out.refreshToken)
  local new = {}
  for k, v in pairs(doc) do new[k] = v end
  new.accessToken = out.accessToken
  new.expiresAt = time.iso8601(ctx.now() + out.expiresIn)
  if nonempty_string(out.refreshToken) then new.refreshToken = out.refreshToken end
  local ok, text = pcall(json.encode, new)
  if ok then fs.write(path, text, { mode = "600" }) end
  return new
end

local function sso_token(ctx, conf, pname)
  local home = ctx.cfg.home
  if not home then return ctx:fail("sso", "no home directory to find the SSO token cache") end
  local key = conf.sso_session or conf.sso_start_url
  local path = home .. "/.aws/sso/cache/" .. sha1_hex(key) .. ".json"
  local text = fs.read(path)
  local doc = text and json.decode(text)
  if type(doc) ~= "table" or not nonempty_string(doc.accessToken) or doc.expiresAt == nil then
    return ctx:fail("sso", "%s (no cached token)", login_hint(conf, pname))
  end
  ctx:secret(doc.accessToken)
  ctx:secret(doc.refreshToken)
  ctx:secret(doc.clientSecret)
  local exp = parse_time(doc.expiresAt)
  local now = ctx.now()
  if conf.sso_session and exp and exp - now < SSO_REFRESH_WINDOW and nonempty_string(doc.refreshToken)
      and nonempty_string(doc.clientId) and nonempty_string(doc.clientSecret) then
    local reg = parse_time(doc.registrationExpiresAt)
    if not reg or reg > now then
      local new = sso_refresh_token(ctx, conf, doc, path)
      if new then
        doc = new
        exp = parse_time(doc.expiresAt)
      end
    end
  end
  if not exp or exp <= now then
    return ctx:fail("sso", "%s (token expired)", login_hint(conf, pname))
  end
  return doc.accessToken
end

function providers.sso(ctx, pname)
  local conf, err = sso_config(ctx, pname)
  if not conf then return conf, err end
  local args = { roleName = conf.sso_role_name, accountId = conf.sso_account_id }
  if conf.sso_session then args.sessionName = conf.sso_session else args.startUrl = conf.sso_start_url end
  local key = sha1_hex(py_dumps(args, ",", ":"))
  local function fetch(c)
    c = c or ctx
    return c:cached("sso", key, function()
      local token, terr = sso_token(c, conf, pname)
      if not token then return false, terr end
      local ep, eerr = c.cfg:resolve_endpoint("portal.sso", { service_id = "SSO", region = conf.sso_region,
                                                              signing_name = "awsssoportal" })
      if not ep then return c:fail("sso", "cannot resolve the SSO portal endpoint: %s", tostring(eerr)) end
      local url = ep.url:gsub("/+$", "") .. "/federation/credentials?account_id=" ..
        urlencode(conf.sso_account_id) .. "&role_name=" .. urlencode(conf.sso_role_name)
      local res, herr = c:request { method = "GET", url = url, timeout = 30,
                                    headers = { ["x-amz-sso_bearer_token"] = token, Accept = "application/json" } }
      if not res then return c:fail("sso", "GetRoleCredentials failed: %s", tostring(herr)) end
      if res.status == 401 or res.status == 403 then
        return c:fail("sso", "%s (GetRoleCredentials: HTTP %d)", login_hint(conf, pname), res.status)
      end
      if res.status ~= 200 then
        return c:fail("sso", "GetRoleCredentials failed: HTTP %d%s", res.status,
          res.headers and res.headers["x-amzn-errortype"] and (" " .. res.headers["x-amzn-errortype"]) or "")
      end
      local doc = json.decode(res.body or "")
      local rc = type(doc) == "table" and doc.roleCredentials
      if type(rc) ~= "table" or not nonempty_string(rc.accessKeyId) or not nonempty_string(rc.secretAccessKey) then
        return c:fail("sso", "GetRoleCredentials returned no credentials")
      end
      c:secret(rc.secretAccessKey)
      c:secret(rc.sessionToken)
      local exp = parse_time(rc.expiration)
      return {
        ProviderType = "sso",
        AccountId = conf.sso_account_id,
        Credentials = { AccessKeyId = rc.accessKeyId, SecretAccessKey = rc.secretAccessKey,
                        SessionToken = rc.sessionToken, Expiration = exp and time.iso8601(exp) or nil },
      }
    end, function(c2) return fetch(c2) end)
  end
  local creds, ferr = fetch()
  if not creds then return false, ferr end
  if not creds.account_id then creds.account_id = conf.sso_account_id end
  return creds, "SSO role " .. conf.sso_role_name .. " in account " .. conf.sso_account_id ..
    (conf.sso_session and (" (sso-session " .. conf.sso_session .. ")") or " (legacy SSO profile)")
end

-- Assume role -----------------------------------------------------------------

local function has_static(prof)
  return prof.aws_access_key_id ~= nil or prof.aws_secret_access_key ~= nil
end

local function has_assume(prof)
  return prof.role_arn ~= nil and prof.web_identity_token_file == nil
end

local SOURCES = { environment = "env", ec2instancemetadata = "imds", ecscontainer = "container" }

local assume_role -- forward

-- botocore's ProfileProviderBuilder.providers for a source profile
local function profile_providers(ctx, pname, disable_env)
  local order = {
    { "web-identity", function() return providers.web_identity(ctx, pname, disable_env) end },
    { "sso", function() return providers.sso(ctx, pname) end },
    { "shared-credentials-file", function() return providers.shared_credentials_file(ctx, pname) end },
    { "credential-process", function() return providers.process(ctx, pname) end },
    { "config-file", function() return providers.config_file(ctx, pname) end },
  }
  return order
end

local function source_from_profile(ctx, sname, visited)
  local prof = ctx.cfg:profile_settings(sname)
  if has_static(prof) or not has_assume(prof) then
    for _, p in ipairs(profile_providers(ctx, sname, true)) do
      local creds, err = p[2]()
      if creds then return creds end
      if creds == false then return false, err end
    end
    return ctx:fail("assume-role", 'the source profile "%s" must have credentials', sname)
  end
  return assume_role(ctx, sname, visited)
end

local function prompt_mfa(ctx, pname, serial)
  if not ctx.isatty() then
    return ctx:fail("assume-role",
      "profile %s needs an MFA code (mfa_serial = %s) but stdin is not a terminal; run interactively " ..
      "to enter the code, or use credentials that do not require MFA", pname, serial)
  end
  local code = ctx.prompt("Enter MFA code for " .. serial .. ": ")
  if type(code) ~= "string" or trim(code) == "" then
    return ctx:fail("assume-role", "no MFA code entered for %s", serial)
  end
  return trim(code)
end

function assume_role(ctx, pname, visited)
  local prof = ctx.cfg:profile_settings(pname)
  local role_arn = prof.role_arn
  local sprof, csource = prof.source_profile, prof.credential_source
  if sprof ~= nil and csource ~= nil then
    return ctx:fail("assume-role", 'the profile "%s" contains both source_profile and credential_source', pname)
  end
  if sprof == nil and csource == nil then
    return ctx:fail("assume-role", 'the profile "%s" has role_arn but neither source_profile nor credential_source',
      pname)
  end
  local source, sdesc
  if csource ~= nil then
    local which = SOURCES[tostring(csource):lower()]
    if not which then
      return ctx:fail("assume-role", 'the credential_source "%s" referenced in profile "%s" is not valid ' ..
        "(Environment, Ec2InstanceMetadata or EcsContainer)", tostring(csource), pname)
    end
    local creds, err = providers[which](ctx)
    if creds == false then return false, err end
    if not creds then
      return ctx:fail("assume-role", "no credentials found in credential_source %s referenced in profile %s (%s)",
        tostring(csource), pname, tostring(err))
    end
    source, sdesc = creds, "credential_source " .. csource
  else
    if not ctx.cfg:profile_settings(sprof) then
      return ctx:fail("assume-role", 'the source_profile "%s" referenced in the profile "%s" does not exist',
        tostring(sprof), pname)
    end
    for _, v in ipairs(visited) do
      if v == sprof and (sprof ~= pname or not has_static(ctx.cfg:profile_settings(sprof))) then
        return ctx:fail("assume-role", "infinite loop in the source_profile chain: %s -> %s",
          table.concat(visited, " -> "), sprof)
      end
    end
    local chain = {}
    for i, v in ipairs(visited) do chain[i] = v end
    chain[#chain + 1] = sprof
    local creds, err = source_from_profile(ctx, sprof, chain)
    if not creds then return false, err end
    source, sdesc = creds, "source_profile " .. sprof
  end

  local extra = {}
  if prof.role_session_name ~= nil then extra.RoleSessionName = prof.role_session_name end
  if prof.external_id ~= nil then extra.ExternalId = prof.external_id end
  if prof.mfa_serial ~= nil then extra.SerialNumber = prof.mfa_serial end
  if prof.duration_seconds ~= nil then
    local d = math.tointeger(tonumber(prof.duration_seconds))
    if d then extra.DurationSeconds = d end
  end
  local key_args = { RoleArn = role_arn }
  for k, v in pairs(extra) do key_args[k] = v end
  local key = sha1_hex(py_dumps(key_args, ", ", ": "))
  local function fetch(c)
    c = c or ctx
    return c:cached("assume-role", key, function()
      local params = { RoleArn = role_arn }
      for k, v in pairs(extra) do params[k] = v end
      if not params.RoleSessionName then params.RoleSessionName = c.default_session_name() end
      if params.SerialNumber then
        local code, err = prompt_mfa(c, pname, params.SerialNumber)
        if not code then return false, err end
        params.TokenCode = code
      end
      return c:call_sts("assume-role", "AssumeRole", params, source)
    end, function(c2)
      -- re-resolve the source too: it may have expired
      return assume_role(c2, pname, { pname })
    end)
  end
  local creds, err = fetch()
  if not creds then return false, err end
  creds.profile = pname
  return creds, "role_arn " .. tostring(role_arn) .. " in profile " .. pname .. " (" .. sdesc ..
    (prof.mfa_serial and ", MFA" or "") .. ")"
end

function providers.assume_role(ctx, pname)
  local prof = ctx.cfg:profile_settings(pname) or {}
  if not has_assume(prof) then return nil, "profile " .. pname .. " has no role_arn" end
  return assume_role(ctx, pname, { pname })
end

-- ---------------------------------------------------------------------------
-- The chain
-- ---------------------------------------------------------------------------

local function default_sts(operation, params, creds, region, cfg)
  local ok, aws = pcall(require, "lumu.aws")
  if not ok or type(aws) ~= "table" or type(aws.client) ~= "function" then
    return nil, "the STS client (lumu.aws) is not available"
  end
  local client, err = aws.client("sts", { credentials = creds, region = region, config = cfg })
  if not client then return nil, err end
  return client:call(operation, params)
end

function M._context(cfg, opts)
  local ctx = setmetatable({
    cfg = cfg, opts = opts, profile = cfg.profile_name, secrets = {}, steps = {},
    now = opts.now or time.now,
    http = opts.http,
    sts = opts.sts or default_sts,
    prompt = opts.prompt or function(text)
      io.stderr:write(text)
      io.stderr:flush()
      return io.stdin:read("l")
    end,
    isatty = opts.isatty or function() return require("lumu._host").isatty(0) end,
    run = opts.run or default_run,
    sleep = opts.sleep or function(s) require("lumu.async").sleep(s) end,
    file_cache = opts.file_cache ~= false,
    container_attempts = opts.container_attempts or 3,
    container_timeout = opts.container_timeout or 2,
  }, Ctx)
  if not ctx.http then
    ctx.http = function(req)
      local o = cfg:http_options(req.url)
      if req.proxy == nil then req.proxy, req.noproxy = o.proxy, o.noproxy end
      if o.cainfo and req.cainfo == nil then req.cainfo = o.cainfo end
      return require("lumu.http").request(req)
    end
  end
  local sname = opts.session_name
  ctx.default_session_name = function()
    return sname or ("lumu-session-" .. math.floor(ctx.now()))
  end
  return ctx
end

local Chain = { __name = "lumu.aws.CredentialChain" }
Chain.__index = Chain
M.Chain = Chain

local OPT_KEYS = { config = true, credentials = true, sts = true, http = true, prompt = true, isatty = true,
                   run = true, now = true, sleep = true, file_cache = true, session_name = true,
                   container_attempts = true, container_timeout = true,
                   -- lumu.aws.config.load options
                   profile = true, env = true, home = true, flags = true, endpoints = true }

function M.chain(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("credentials.chain: opts must be a table", 2) end
  for k in pairs(opts) do
    if not OPT_KEYS[k] then error("credentials.chain: unknown option '" .. tostring(k) .. "'", 2) end
  end
  for _, k in ipairs { "sts", "http", "prompt", "isatty", "run", "now", "sleep" } do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      error("credentials.chain: opts." .. k .. " must be a function", 2)
    end
  end
  if opts.credentials ~= nil and type(opts.credentials) ~= "table" then
    error("credentials.chain: opts.credentials must be a table", 2)
  end
  local cfg = opts.config
  if cfg == nil then
    local err
    cfg, err = awsconfig.load { profile = opts.profile, env = opts.env, home = opts.home, flags = opts.flags,
                                endpoints = opts.endpoints }
    if not cfg then
      return nil, setmetatable({ kind = "credentials", message = tostring(err) }, Error)
    end
  elseif getmetatable(cfg) ~= awsconfig.Config then
    error("credentials.chain: opts.config must be a lumu.aws.config object", 2)
  end
  return setmetatable({ config = cfg, _opts = opts }, Chain)
end

function Chain:__tostring()
  return string.format("<credential chain for profile %s>", self.config.profile_name)
end

-- Runs the providers in order: creds, name, reason | nil, err (ctx.steps filled)
local function run_chain(ctx)
  local cfg = ctx.cfg
  local pname = cfg.profile_name
  local list = {
    { "explicit", function() return providers.explicit(ctx) end },
    { "env", function()
      if cfg.explicit_profile then return nil, "the profile was given explicitly (--profile)" end
      return providers.env(ctx)
    end },
  }
  list[#list + 1] = { "assume-role", function() return providers.assume_role(ctx, pname) end }
  for _, p in ipairs(profile_providers(ctx, pname, cfg.explicit_profile)) do list[#list + 1] = p end
  list[#list + 1] = { "container", function() return providers.container(ctx) end }
  list[#list + 1] = { "instance-metadata", function() return providers.imds(ctx) end }
  for _, p in ipairs(list) do
    local creds, why = p[2]()
    if creds then
      ctx:step(p[1], "used", why)
      return creds, p[1], why
    elseif creds == false then
      ctx:step(p[1], "error", tostring(why and why.message or why))
      return nil, why
    else
      ctx:step(p[1], "skipped", why)
    end
  end
  local tried = {}
  for _, s in ipairs(ctx.steps) do tried[#tried + 1] = s.provider end
  return nil, setmetatable({ kind = "credentials", profile = pname,
    message = "unable to locate credentials for profile " .. pname .. " (tried " ..
      table.concat(tried, ", ") .. "); configure them with `aws configure`, `aws sso login`, " ..
      "or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment variables" }, Error)
end

function Chain:_resolve()
  local ctx = M._context(self.config, self._opts)
  self._ctx = ctx
  local creds, name, why = run_chain(ctx)
  if not creds then return nil, name end
  self._creds, self._provider, self._reason = creds, name, why
  return creds
end

-- One resolution at a time: other lumu.async tasks wait for it (so a refresh
-- does not run twice, nor ask for two MFA codes).
function Chain:get()
  local async = package.loaded["lumu.async"]
  while self._busy and async and async.running() do async.sleep(0.005) end
  self._busy = true
  local ok, creds, err = pcall(self._get, self)
  self._busy = false
  if not ok then error(creds, 0) end
  return creds, err
end

function Chain:_get()
  local c = self._creds
  if c then
    local now = (self._opts.now or time.now)()
    if not c.expiration or c.expiration - now > ADVISORY_REFRESH then return c end
    local mandatory = c.expiration - now <= MANDATORY_REFRESH
    local refresh = REFRESH[c]
    local fresh, err
    if refresh then
      local ctx = M._context(self.config, self._opts)
      fresh, err = refresh(ctx)
      if fresh == nil and err == nil then err = "refresh failed" end
    else
      fresh, err = self:_resolve()
    end
    if fresh then
      self._creds = fresh
      return fresh
    end
    if not mandatory then return c end
    if not M.is_error(err) then
      err = setmetatable({ kind = "credentials", provider = self._provider, message = tostring(err) }, Error)
    end
    return nil, err
  end
  return self:_resolve()
end

local Report = { __name = "lumu.aws.CredentialsReport" }
Report.__index = Report
Report.__tostring = function(r)
  local lines = {}
  lines[#lines + 1] = string.format("profile:     %s (%s)", r.profile, r.profile_source)
  lines[#lines + 1] = string.format("region:      %s%s", r.region or "(none)",
    r.region_source and (" (" .. r.region_source .. ")") or "")
  if r.provider then
    lines[#lines + 1] = string.format("credentials: %s from %s", r.access_key, r.provider)
    lines[#lines + 1] = string.format("  because:   %s", r.reason or "")
    if r.expiration then
      lines[#lines + 1] = string.format("  expires:   %s (in %d min)", time.iso8601(r.expiration),
        math.floor((r.expires_in or 0) / 60))
    end
  else
    lines[#lines + 1] = "credentials: none"
    lines[#lines + 1] = "  error:     " .. tostring(r.error)
  end
  lines[#lines + 1] = "chain:"
  for _, s in ipairs(r.steps) do
    lines[#lines + 1] = string.format("  %-24s %-8s %s", s.provider, s.status, s.detail or "")
  end
  return table.concat(lines, "\n")
end

function Chain:describe()
  self._creds = nil
  local creds, err = self:_resolve()
  local cfg = self.config
  local region, rsource = cfg:region()
  local r = setmetatable({
    profile = cfg.profile_name, profile_source = cfg.profile_source,
    region = region, region_source = rsource,
    steps = self._ctx and self._ctx.steps or {},
  }, Report)
  if creds then
    r.provider, r.reason = self._provider, self._reason
    r.access_key = mask(creds.access_key_id)
    r.expiration = creds.expiration
    r.expires_in = creds.expiration and (creds.expiration - (self._opts.now or time.now)())
  else
    r.error = tostring(err)
  end
  return r
end

function M.resolve(opts)
  local chain, err = M.chain(opts)
  if not chain then return nil, err end
  return chain:get()
end

function M.describe(opts)
  local chain, err = M.chain(opts)
  if not chain then return nil, err end
  return chain:describe()
end

return M
