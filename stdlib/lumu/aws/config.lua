--- lumu.aws.config: the AWS CLI's shared config/credentials files and the
-- resolution of every client setting (profile, region, endpoint URL, retries,
-- CA bundle, proxies), as the AWS CLI / botocore do it.
--
-- local awsconfig = require "lumu.aws.config"
--
-- awsconfig.load([opts]) -> cfg | nil, err
--   opts.profile     the --profile flag (explicit: it also removes the
--                    environment-variable keys from the credential chain)
--   opts.flags       other command-line overrides, by setting name:
--                    { region=, endpoint_url=, ca_bundle=, retry_mode=,
--                      max_attempts=, output=, ... }  (flags beat everything)
--   opts.env         a table of environment variables used INSTEAD of the
--                    process environment (tests, sandboxes); default os.getenv
--   opts.home        home directory for "~" (default $HOME of opts.env)
--   opts.endpoints   a resolver from lumu._awscore.endpoints() (default: the
--                    embedded endpoints.json, loaded on first use)
--   Files: $AWS_CONFIG_FILE (default ~/.aws/config) and
--   $AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials), with "~" and
--   $VAR / ${VAR} expanded; a missing file is an empty file.  The active
--   profile is opts.profile, else $AWS_PROFILE, else $AWS_DEFAULT_PROFILE
--   (botocore's legacy name), else "default".  A profile that was named
--   (flag or environment) must exist in one of the files.
--   Errors (returned): "FILE:LINE: what" for a malformed file (the offending
--   line is never quoted: it may hold a key), unreadable files, a missing
--   named profile, invalid retry_mode / max_attempts values.
--
-- cfg.profile_name        the active profile
-- cfg.profile_source      "flag" | "AWS_PROFILE" | "AWS_DEFAULT_PROFILE" | "default"
-- cfg.explicit_profile    true when given by opts.profile
-- cfg.profile             merged settings of the active profile (config file
--                         values overridden by the credentials file's, as
--                         botocore's full_config); nested sub-sections are tables
-- cfg.config_file, cfg.credentials_file   the paths used
-- cfg.files               { config = {profiles=, sso_sessions=, services=, other=},
--                           credentials = {profiles=} }  (each value a table of
--                           settings; origins in cfg.origin)
-- cfg:getenv(name) -> string | nil   (empty strings count as unset)
-- cfg:get(name) -> value, source     one setting: flag > environment > profile
--   > default, per setting.  Known settings and their environment variables:
--   region (AWS_REGION, AWS_DEFAULT_REGION), output (AWS_DEFAULT_OUTPUT),
--   ca_bundle (AWS_CA_BUNDLE), retry_mode (AWS_RETRY_MODE, default
--   "standard"), max_attempts (AWS_MAX_ATTEMPTS, integer), endpoint_url
--   (AWS_ENDPOINT_URL), ignore_configured_endpoint_urls
--   (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, boolean), use_fips_endpoint
--   (AWS_USE_FIPS_ENDPOINT), use_dualstack_endpoint (AWS_USE_DUALSTACK_ENDPOINT),
--   sts_regional_endpoints (AWS_STS_REGIONAL_ENDPOINTS, default "regional"),
--   metadata_service_timeout (AWS_METADATA_SERVICE_TIMEOUT, 1),
--   metadata_service_num_attempts (AWS_METADATA_SERVICE_NUM_ATTEMPTS, 1),
--   ec2_metadata_service_endpoint (AWS_EC2_METADATA_SERVICE_ENDPOINT),
--   ec2_metadata_service_endpoint_mode (AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE),
--   ec2_metadata_v1_disabled (AWS_EC2_METADATA_V1_DISABLED);
--   any other name is looked up in the profile only.  source is "flag",
--   "env AWS_REGION", "profile NAME (FILE:LINE)" or "default".  Booleans
--   are true for "true" (any case); integers must be integers.
-- cfg:region([{imds = true}]) -> region | nil, source
--   flag > AWS_REGION > AWS_DEFAULT_REGION > profile region > (only when asked)
--   the EC2 instance metadata service.  Never defaults to us-east-1.
-- cfg:endpoint_url(service_id) -> url | nil, source
--   The configured endpoint for a service (service_id = the model's serviceId,
--   e.g. "CloudFormation", "SSO OIDC"): the endpoint_url flag always wins;
--   unless ignore_configured_endpoint_urls is true:
--   AWS_ENDPOINT_URL_<ID> > AWS_ENDPOINT_URL > the profile's [services NAME]
--   section entry for <id> > the profile's endpoint_url.  <ID>/<id> is the
--   service id upper/lower-cased with spaces and '-' turned into '_'.
-- cfg:resolve_endpoint(service [, opts]) -> endpoint | nil, err
--   service = endpoints.json key ("cloudformation", "sts", "portal.sso");
--   opts.service_id (for configured endpoints, default service),
--   opts.signing_name, opts.region (default cfg:region()).
--   endpoint = { url=, signing_region=, signing_name=, region=, source=,
--                custom = true when a configured endpoint was used, partition= }
--   FIPS / dual-stack from use_fips_endpoint / use_dualstack_endpoint,
--   sts_regional_endpoints = legacy and s3.us_east_1_regional_endpoint = legacy
--   honoured.  Without endpoints data: "https://SERVICE.REGION.amazonaws.com"
--   (".amazonaws.com.cn" for cn-* regions).
-- cfg:retry() -> { mode=, max_attempts=, new_retries= }
--   new_retries is AWS_NEW_RETRIES_2026 == "true" (any case).  max_attempts
--   defaults per mode (standard/adaptive 3, legacy 5).
-- cfg:ca_bundle() -> path | nil          flag > AWS_CA_BUNDLE > ca_bundle
-- cfg:proxy_for(url) -> proxy | nil, no_proxy | nil
--   https_proxy/HTTPS_PROXY or http_proxy/HTTP_PROXY by scheme, no_proxy /
--   NO_PROXY; the lowercase name wins when both are set.
-- cfg:http_options(url) -> { cainfo=, proxy=, noproxy= }   for lumu.http.request:
--   every AWS call (STS, SSO, the service itself) uses the same CA bundle
--   and proxies (proxy/noproxy are false when unset, so the process
--   environment is not consulted behind opts.env's back).
-- cfg:sso_session(name) -> settings | nil;  cfg:services(name) -> table | nil
-- cfg:profiles() -> sorted list of profile names (both files)
-- cfg:origin_of(key [, profile]) -> "FILE:LINE" | nil
--
-- awsconfig.parse(text [, filename]) -> config-file view | nil, err
--   { profiles = {name = settings}, sso_sessions =, services =, other = }
-- awsconfig.parse_credentials(text [, filename]) -> { profiles = } | nil, err
-- awsconfig.service_key(service_id) -> "elastic_load_balancing_v2"
-- awsconfig.truthy(value) -> boolean      botocore's ensure_boolean
local core = require "lumu._awscore"
local fs = require "lumu.fs"
local http = require "lumu.http"

local M = {}

local MAX_FILE = 64 * 1024 * 1024

-- ---------------------------------------------------------------------------
-- Parsing
-- ---------------------------------------------------------------------------

-- entries (from _awscore.parse_config) -> settings table, origins table
local function entries_to_table(entries, file)
  local t, origin = {}, {}
  for _, e in ipairs(entries) do
    if e.sub then
      local sub = {}
      for _, s in ipairs(e.sub) do sub[s.key] = s.value end
      t[e.key] = sub
    else
      t[e.key] = e.value
    end
    origin[e.key] = file .. ":" .. e.line
  end
  return t, origin
end

local function parse_config_file(text, filename)
  filename = filename or "<config>"
  local sections, err = core.parse_config(text, filename)
  if not sections then return nil, err end
  local view = { profiles = {}, sso_sessions = {}, services = {}, other = {}, origin = {} }
  local buckets = { profile = "profiles", ["sso-session"] = "sso_sessions", services = "services" }
  for _, s in ipairs(sections) do
    local bucket = buckets[s.kind]
    local t, origin = entries_to_table(s.entries, filename)
    if bucket then
      view[bucket][s.name] = t
      if s.kind == "profile" then view.origin[s.name] = origin end
    elseif s.kind == "other" then
      view.other[s.header] = t
    end
  end
  return view
end

local function parse_credentials_file(text, filename)
  filename = filename or "<credentials>"
  local sections, err = core.parse_config(text, filename)
  if not sections then return nil, err end
  local view = { profiles = {}, origin = {} }
  for _, s in ipairs(sections) do
    view.profiles[s.header], view.origin[s.header] = entries_to_table(s.entries, filename)
  end
  return view
end

function M.parse(text, filename)
  if type(text) ~= "string" then error("awsconfig.parse: text must be a string", 2) end
  local v, err = parse_config_file(text, filename)
  if v then v.origin = nil end
  return v, err
end

function M.parse_credentials(text, filename)
  if type(text) ~= "string" then error("awsconfig.parse_credentials: text must be a string", 2) end
  local v, err = parse_credentials_file(text, filename)
  if v then v.origin = nil end
  return v, err
end

function M.truthy(v)
  if v == true then return true end
  return type(v) == "string" and v:lower() == "true"
end

function M.service_key(service_id)
  return (service_id:gsub("[ %-]", "_"):lower())
end

-- ---------------------------------------------------------------------------
-- Paths
-- ---------------------------------------------------------------------------

-- os.path.expandvars: $NAME and ${NAME}; unknown variables are left as is.
local function expandvars(path, getenv)
  local out = path:gsub("%$(%b{})", function(b)
    local v = getenv(b:sub(2, -2))
    return v
  end)
  out = out:gsub("%$([%a_][%w_]*)", function(name)
    return getenv(name)
  end)
  return out
end

local function expanduser(path, home)
  if home and (path == "~" or path:sub(1, 2) == "~/") then
    return home .. path:sub(2)
  end
  return path
end

local function read_optional(path)
  if not fs.exists(path) then return nil end
  local st = fs.stat(path, { follow = true })
  if st and st.type == "directory" then return nil, path .. ": is a directory" end
  if st and st.size > MAX_FILE then return nil, path .. ": file too large" end
  local text, err = fs.read(path)
  if not text then return nil, err end
  return text
end

-- ---------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------

local SETTINGS = {
  region = { env = { "AWS_REGION", "AWS_DEFAULT_REGION" } },
  output = { env = { "AWS_DEFAULT_OUTPUT" } },
  ca_bundle = { env = { "AWS_CA_BUNDLE" } },
  retry_mode = { env = { "AWS_RETRY_MODE" }, default = "standard",
    check = function(v) return v == "standard" or v == "adaptive" or v == "legacy" end,
    expect = "standard, adaptive or legacy" },
  max_attempts = { env = { "AWS_MAX_ATTEMPTS" }, type = "integer" },
  endpoint_url = { env = { "AWS_ENDPOINT_URL" } },
  ignore_configured_endpoint_urls = { env = { "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" }, type = "boolean" },
  use_fips_endpoint = { env = { "AWS_USE_FIPS_ENDPOINT" }, type = "boolean" },
  use_dualstack_endpoint = { env = { "AWS_USE_DUALSTACK_ENDPOINT" }, type = "boolean" },
  sts_regional_endpoints = { env = { "AWS_STS_REGIONAL_ENDPOINTS" }, default = "regional",
    check = function(v) return v == "regional" or v == "legacy" end, expect = "regional or legacy" },
  metadata_service_timeout = { env = { "AWS_METADATA_SERVICE_TIMEOUT" }, type = "number", default = 1 },
  metadata_service_num_attempts = { env = { "AWS_METADATA_SERVICE_NUM_ATTEMPTS" }, type = "integer",
    default = 1 },
  ec2_metadata_service_endpoint = { env = { "AWS_EC2_METADATA_SERVICE_ENDPOINT" } },
  ec2_metadata_service_endpoint_mode = { env = { "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE" },
    check = function(v) return v:lower() == "ipv4" or v:lower() == "ipv6" end, expect = "IPv4 or IPv6" },
  ec2_metadata_v1_disabled = { env = { "AWS_EC2_METADATA_V1_DISABLED" }, type = "boolean" },
}
M.SETTINGS = SETTINGS

local function convert(name, spec, v, source)
  if type(v) ~= "string" then return v end
  if spec.type == "boolean" then return M.truthy(v) end
  if spec.type == "integer" then
    local n = math.tointeger(tonumber(v))
    if not n then
      return nil, string.format("invalid value for %s from %s: expected an integer", name, source)
    end
    return n
  end
  if spec.type == "number" then
    local n = tonumber(v)
    if not n then
      return nil, string.format("invalid value for %s from %s: expected a number", name, source)
    end
    return n
  end
  if spec.check and not spec.check(v) then
    return nil, string.format("invalid value %q for %s from %s: expected %s", v, name, source, spec.expect)
  end
  return v
end

local Config = { __name = "lumu.aws.Config" }
Config.__index = Config

function Config:__tostring()
  return string.format("<aws config profile %s>", self.profile_name)
end

function Config:getenv(name)
  local v = self._getenv(name)
  if v == "" then return nil end
  return v
end

function Config:origin_of(key, profile)
  profile = profile or self.profile_name
  local o = self._origin[profile]
  return o and o[key]
end

-- value, source | nil, nil, err
function Config:_lookup(name)
  local spec = SETTINGS[name] or {}
  local flags = self.flags
  if flags[name] ~= nil then return flags[name], "flag" end
  for _, var in ipairs(spec.env or {}) do
    local v = self:getenv(var)
    if v then return v, "env " .. var end
  end
  local pv = self.profile[name]
  if pv ~= nil then
    local where = self:origin_of(name)
    return pv, "profile " .. self.profile_name .. (where and (" (" .. where .. ")") or "")
  end
  if spec.default ~= nil then return spec.default, "default" end
  return nil, nil
end

function Config:get(name)
  if type(name) ~= "string" then error("cfg:get: name must be a string", 2) end
  local v, source = self:_lookup(name)
  if v == nil then return nil end
  local spec = SETTINGS[name]
  if spec then
    local cv, err = convert(name, spec, v, source)
    if cv == nil then return nil, err end
    v = cv
  end
  return v, source
end

function Config:region(opts)
  local v, source = self:get("region")
  if v then return v, source end
  if opts and opts.imds then
    local creds = require "lumu.aws.credentials"
    local r = creds.imds_region(self, opts)
    if r then return r, "instance metadata" end
  end
  return nil
end

function Config:services(name)
  return self.files.config.services[name]
end

function Config:sso_session(name)
  return self.files.config.sso_sessions[name]
end

function Config:profiles()
  local seen, list = {}, {}
  for _, src in ipairs { self.files.config.profiles, self.files.credentials.profiles } do
    for name in pairs(src) do
      if not seen[name] then seen[name] = true; list[#list + 1] = name end
    end
  end
  table.sort(list)
  return list
end

function Config:endpoint_url(service_id)
  if type(service_id) ~= "string" or service_id == "" then
    error("cfg:endpoint_url: service_id must be a non-empty string", 2)
  end
  if self.flags.endpoint_url then return self.flags.endpoint_url, "flag" end
  local ignore = self:get("ignore_configured_endpoint_urls")
  if ignore then return nil end
  local key = M.service_key(service_id)
  local var = "AWS_ENDPOINT_URL_" .. key:upper()
  local v = self:getenv(var)
  if v then return v, "env " .. var end
  v = self:getenv("AWS_ENDPOINT_URL")
  if v then return v, "env AWS_ENDPOINT_URL" end
  local sname = self.profile.services
  if type(sname) == "string" then
    local section = self:services(sname)
    local entry = section and section[key]
    if type(entry) == "table" and entry.endpoint_url then
      return entry.endpoint_url, "services " .. sname .. " (" .. key .. ")"
    end
  end
  v = self.profile.endpoint_url
  if type(v) == "string" and v ~= "" then
    return v, "profile " .. self.profile_name
  end
  return nil
end

local default_resolver -- the embedded endpoints.json, loaded once
local function resolver_for(cfg)
  if cfg._endpoints ~= nil then return cfg._endpoints or nil end
  if default_resolver == nil then
    default_resolver = core.endpoints() or false
  end
  return default_resolver or nil
end

function M.set_default_endpoints(resolver)
  default_resolver = resolver or nil
end

function Config:resolve_endpoint(service, opts)
  if type(service) ~= "string" or service == "" then
    error("cfg:resolve_endpoint: service must be a non-empty string", 2)
  end
  opts = opts or {}
  local region = opts.region
  if region == nil then region = self:region() end
  local signing_name = opts.signing_name or service
  local url, source = self:endpoint_url(opts.service_id or service)
  if url then
    if not url:match("^https?://[^/]") then
      return nil, string.format("invalid endpoint URL from %s: expected http:// or https://", source)
    end
    return { url = url, signing_region = region or "us-east-1", signing_name = signing_name,
             region = region, source = source, custom = true }
  end
  if region and not core.valid_region(region) then
    return nil, string.format("invalid region %q", region)
  end
  local r = resolver_for(self)
  if r then
    local s3 = self.profile.s3
    local ep, err = r:resolve {
      service = service, region = region, signing_name = opts.signing_name,
      fips = self:get("use_fips_endpoint") or false,
      dualstack = self:get("use_dualstack_endpoint") or
        (service == "s3" and type(s3) == "table" and M.truthy(s3.use_dualstack_endpoint)) or false,
      sts_legacy = self:get("sts_regional_endpoints") == "legacy",
      s3_legacy = type(s3) == "table" and s3.us_east_1_regional_endpoint == "legacy",
    }
    if not ep then return nil, err end
    ep.source = "endpoints.json"
    ep.custom = false
    return ep
  end
  if not region then return nil, "no region configured for " .. service end
  local suffix = region:match("^cn%-") and "amazonaws.com.cn" or "amazonaws.com"
  return { url = "https://" .. service .. "." .. region .. "." .. suffix, signing_region = region,
           signing_name = signing_name, region = region, source = "default template", custom = false }
end

function Config:retry()
  local mode, err = self:get("retry_mode")
  if mode == nil and err then return nil, err end
  local attempts
  attempts, err = self:get("max_attempts")
  if attempts == nil and err then return nil, err end
  if attempts and (attempts < 1 or attempts > 100) then
    return nil, "invalid value for max_attempts: expected 1..100"
  end
  local new = M.truthy(self:getenv("AWS_NEW_RETRIES_2026"))
  if not attempts then
    attempts = mode == "legacy" and 5 or 3
  end
  return { mode = mode, max_attempts = attempts, new_retries = new }
end

function Config:ca_bundle()
  local v = self:get("ca_bundle")
  if v then return expanduser(v, self.home) end
  return nil
end

function Config:proxy_for(url)
  return http.proxy_for(url, function(name) return self._getenv(name) end)
end

function Config:http_options(url)
  local proxy, noproxy = self:proxy_for(url)
  local o = { proxy = proxy or false, noproxy = noproxy or false }
  if type(url) == "string" and url:match("^[Hh][Tt][Tt][Pp][Ss]://") then
    o.cainfo = self:ca_bundle()
  end
  return o
end

-- ---------------------------------------------------------------------------
-- Loading
-- ---------------------------------------------------------------------------

local function check_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("awsconfig.load: opts must be a table", 3) end
  if opts.profile ~= nil and (type(opts.profile) ~= "string" or opts.profile == "") then
    error("awsconfig.load: opts.profile must be a non-empty string", 3)
  end
  if opts.env ~= nil and type(opts.env) ~= "table" then error("awsconfig.load: opts.env must be a table", 3) end
  if opts.flags ~= nil and type(opts.flags) ~= "table" then error("awsconfig.load: opts.flags must be a table", 3) end
  return opts
end

function M.load(opts)
  opts = check_opts(opts)
  local env = opts.env
  local getenv = env and function(name) return env[name] end or os.getenv
  local function nonempty(name)
    local v = getenv(name)
    if v == "" then return nil end
    return v
  end
  local home = opts.home or nonempty("HOME")
  local function path_of(var, default)
    local p = nonempty(var) or default
    return expanduser(expandvars(p, function(n) return nonempty(n) end), home)
  end
  local config_file = path_of("AWS_CONFIG_FILE", "~/.aws/config")
  local credentials_file = path_of("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")

  local files = {}
  local text, err = read_optional(config_file)
  if err then return nil, err end
  files.config, err = parse_config_file(text or "", config_file)
  if not files.config then return nil, err end
  text, err = read_optional(credentials_file)
  if err then return nil, err end
  files.credentials, err = parse_credentials_file(text or "", credentials_file)
  if not files.credentials then return nil, err end

  local name, source
  if opts.profile then
    name, source = opts.profile, "flag"
  elseif nonempty("AWS_PROFILE") then
    name, source = nonempty("AWS_PROFILE"), "AWS_PROFILE"
  elseif nonempty("AWS_DEFAULT_PROFILE") then
    name, source = nonempty("AWS_DEFAULT_PROFILE"), "AWS_DEFAULT_PROFILE"
  else
    name, source = "default", "default"
  end

  -- full_config: config profiles, updated with the credentials file's keys
  local merged, origin = {}, {}
  for pname, t in pairs(files.config.profiles) do
    local copy = {}
    for k, v in pairs(t) do copy[k] = v end
    merged[pname] = copy
    origin[pname] = {}
    for k, v in pairs(files.config.origin[pname] or {}) do origin[pname][k] = v end
  end
  for pname, t in pairs(files.credentials.profiles) do
    merged[pname] = merged[pname] or {}
    origin[pname] = origin[pname] or {}
    for k, v in pairs(t) do
      merged[pname][k] = v
      origin[pname][k] = files.credentials.origin[pname][k]
    end
  end
  if source ~= "default" and not merged[name] then
    return nil, string.format("the config profile (%s) could not be found (from %s; looked in %s and %s)",
      name, source == "flag" and "--profile" or source, config_file, credentials_file)
  end

  local self = setmetatable({
    profile_name = name,
    profile_source = source,
    explicit_profile = source == "flag",
    profile = merged[name] or {},
    profiles_merged = merged,
    config_file = config_file,
    credentials_file = credentials_file,
    files = files,
    flags = opts.flags or {},
    home = home,
    _origin = origin,
    _getenv = getenv,
    _endpoints = opts.endpoints,
  }, Config)
  -- validate what the CLI validates up front
  for _, k in ipairs { "retry_mode", "max_attempts", "sts_regional_endpoints" } do
    local v, verr = self:get(k)
    if v == nil and verr then return nil, verr end
  end
  return self
end

-- The settings of another profile (source_profile chains), merged the same way.
function Config:profile_settings(name)
  return self.profiles_merged[name]
end

M.Config = Config

return M
