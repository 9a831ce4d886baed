-- Specs of lumu.aws.credentials: the provider chain against temp HOMEs, fake
-- files, injected environments, a fake STS caller and tests/support/fakemeta.py
-- on 127.0.0.1 playing IMDS, the container endpoint, the SSO portal and SSO
-- OIDC.  Nothing else is contacted: every environment sets
-- AWS_EC2_METADATA_DISABLED or points IMDS at the fake server.
local credentials = require "lumu.aws.credentials"
local awsconfig = require "lumu.aws.config"
local crypto = require "lumu.crypto"
local fs = require "lumu.fs"
local http = require "lumu.http"
local json = require "lumu.json"
local pretty = require "lumu.pretty"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FAKEMETA = HERE .. "/../support/fakemeta.py"

local CANARY = "CANARY-SECRET-9f8e7d6c5b4a"
local CANARY_TOKEN = "CANARY-TOKEN-1a2b3c4d5e6f"

-- ---------------------------------------------------------------------------
-- helpers
-- ---------------------------------------------------------------------------

local server
local function meta()
  if server then return server end
  local f = assert(io.popen("exec python3 " .. FAKEMETA, "r"))
  local port = (f:read("l") or ""):match("^PORT (%d+)$")
  local pid = (f:read("l") or ""):match("^PID (%d+)$")
  assert(port and pid, "fakemeta.py did not start")
  server = { f = f, pid = pid, base = "http://127.0.0.1:" .. port }
  return server
end

local function meta_post(path, doc)
  local res = assert(http.request { method = "POST", url = meta().base .. path,
    body = doc and json.encode(doc) or "", timeout = 5, proxy = false })
  assert(res.status == 200, "control request failed: " .. res.status)
end

local function meta_reset() meta_post("/_reset") end
local function meta_config(doc) meta_post("/_config", doc) end
local function meta_log()
  local res = assert(http.request { url = meta().base .. "/_log", timeout = 5, proxy = false })
  return json.decode(res.body)
end

local home
local function write(rel, text, mode)
  local path = home .. "/" .. rel
  assert(fs.mkdir(fs.dirname(path)))
  assert(fs.write(path, text, mode and { mode = mode } or nil))
  return path
end

-- an environment with a temp HOME and IMDS off, plus extra
local function env(extra)
  local e = { HOME = home, AWS_EC2_METADATA_DISABLED = "true" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

-- a fake STS caller that records its calls
local function fake_sts(opts)
  opts = opts or {}
  local calls = {}
  local fn = function(operation, params, creds, region)
    local copy = {}
    for k, v in pairs(params) do copy[k] = v end
    calls[#calls + 1] = { operation = operation, params = copy, creds = creds, region = region }
    if opts.fail then return nil, opts.fail end
    local n = #calls
    return {
      Credentials = {
        AccessKeyId = "ASIASTS" .. n .. "XXXXXXXXXX",
        SecretAccessKey = opts.secret or ("sts-secret-" .. n .. "-0123456789"),
        SessionToken = "sts-token-" .. n .. "-0123456789",
        Expiration = opts.expiration or (os.time() + 3600),
      },
      AssumedRoleUser = { Arn = "arn:aws:sts::123456789012:assumed-role/r/s" },
    }
  end
  return fn, calls
end

local function no_secret(s, ...)
  s = tostring(s)
  for _, secret in ipairs { CANARY, CANARY_TOKEN, ... } do
    assert.is_nil(s:find(secret, 1, true), "secret leaked into: " .. s)
  end
end

local NOW = 1795677160 -- 2026-11-26T07:12:40Z

before_each(function()
  home = assert(fs.tmpdir("lumu-creds-"))
  credentials.clear_cache()
end)

after_each(function()
  if home then fs.rmtree(home) end
  home = nil
end)

teardown(function()
  if server then
    local ok = pcall(http.request, { url = server.base .. "/shutdown", timeout = 5, proxy = false })
    if not ok then os.execute("kill " .. server.pid .. " 2>/dev/null") end
    server.f:close()
    server = nil
  end
end)

-- ---------------------------------------------------------------------------
describe("credentials objects", function()
  it("hide the secret from fields, tostring and pretty", function()
    local c = credentials.new { access_key_id = "AKIAIOSFODNN7EXAMPLE", secret_access_key = CANARY,
                                session_token = CANARY_TOKEN, provider = "env" }
    assert.are.equal("<credentials AKIA****MPLE from env>", tostring(c))
    assert.are.equal(CANARY, c:secret_access_key())
    assert.are.equal(CANARY_TOKEN, c:session_token())
    no_secret(pretty.format(c))
    for _, v in pairs(c) do no_secret(v) end
  end)

  it("raise on misuse", function()
    assert.has_error(function() credentials.new { access_key_id = "A" } end)
    assert.has_error(function() credentials.chain { bogus = 1 } end)
    assert.has_error(function() credentials.chain { sts = "nope" } end)
  end)

  it("sign a request with the hidden secret", function()
    local c = credentials.new { access_key_id = "AKIDEXAMPLE",
                                secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
    local headers, details = c:sign({ method = "GET", url = "https://example.amazonaws.com/" },
                                    { region = "us-east-1", service = "service", time = 1440938160 })
    assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKIDEXAMPLE/20150830/us%-east%-1/service/aws4_request",
      headers.Authorization)
    assert.are.equal("20150830T123600Z", headers["X-Amz-Date"])
    assert.are.equal(64, #details.signature)
  end)
end)

-- ---------------------------------------------------------------------------
describe("environment provider", function()
  it("wins with AWS_ACCESS_KEY_ID / SECRET / SESSION_TOKEN", function()
    write(".aws/credentials", "[default]\naws_access_key_id = AKIAFILEFILEFILE1\naws_secret_access_key = filesecret1234\n")
    local c = assert(credentials.resolve { env = env { AWS_ACCESS_KEY_ID = "AKIAENVIRONMENT01",
      AWS_SECRET_ACCESS_KEY = CANARY, AWS_SESSION_TOKEN = CANARY_TOKEN } })
    assert.are.equal("env", c.provider)
    assert.are.equal("AKIAENVIRONMENT01", c.access_key_id)
    assert.are.equal(CANARY_TOKEN, c:session_token())
  end)

  it("accepts AWS_SECURITY_TOKEN and AWS_CREDENTIAL_EXPIRATION", function()
    local c = assert(credentials.resolve { env = env { AWS_ACCESS_KEY_ID = "AKIAENVIRONMENT01",
      AWS_SECRET_ACCESS_KEY = "s3cr3t-s3cr3t", AWS_SECURITY_TOKEN = "legacy-token-123",
      AWS_CREDENTIAL_EXPIRATION = "2026-11-26T08:12:40Z" } })
    assert.are.equal("legacy-token-123", c:session_token())
    assert.are.equal(NOW + 3600, c.expiration)
  end)

  it("fails on partial keys instead of falling through", function()
    write(".aws/credentials", "[default]\naws_access_key_id = AKIAFILEFILEFILE1\naws_secret_access_key = filesecret1234\n")
    local c, err = credentials.resolve { env = env { AWS_ACCESS_KEY_ID = "AKIAENVIRONMENT01" } }
    assert.is_nil(c)
    assert.is_true(credentials.is_error(err))
    assert.are.equal("env", err.provider)
    assert.matches("AWS_SECRET_ACCESS_KEY", tostring(err))
  end)

  it("is skipped for an explicit --profile but not for AWS_PROFILE", function()
    write(".aws/credentials", "[dev]\naws_access_key_id = AKIAFILEFILEFILE1\naws_secret_access_key = filesecret1234\n")
    local e = env { AWS_ACCESS_KEY_ID = "AKIAENVIRONMENT01", AWS_SECRET_ACCESS_KEY = "envsecret-1234" }
    local c = assert(credentials.resolve { env = e, profile = "dev" })
    assert.are.equal("shared-credentials-file", c.provider)
    e.AWS_PROFILE = "dev"
    c = assert(credentials.resolve { env = e })
    assert.are.equal("env", c.provider)
  end)

  it("loses to explicit command-line keys", function()
    local c = assert(credentials.resolve { env = env { AWS_ACCESS_KEY_ID = "AKIAENVIRONMENT01",
      AWS_SECRET_ACCESS_KEY = "envsecret-1234" },
      credentials = { access_key_id = "AKIAFLAGFLAGFLAG", secret_access_key = "flagsecret-1234" } })
    assert.are.equal("explicit", c.provider)
    assert.are.equal("AKIAFLAGFLAGFLAG", c.access_key_id)
  end)
end)

-- ---------------------------------------------------------------------------
describe("shared files", function()
  it("read the credentials file, then the config file", function()
    write(".aws/credentials", "[default]\naws_access_key_id = AKIACREDFILE0001\naws_secret_access_key = credsecret-1\n" ..
      "aws_security_token = legacy-token-file\n")
    write(".aws/config", "[profile cfgonly]\naws_access_key_id = AKIACONFIGFILE01\naws_secret_access_key = cfgsecret-1\n")
    local c = assert(credentials.resolve { env = env() })
    assert.are.equal("shared-credentials-file", c.provider)
    assert.are.equal("legacy-token-file", c:session_token())
    c = assert(credentials.resolve { env = env { AWS_PROFILE = "cfgonly" } })
    assert.are.equal("config-file", c.provider)
    assert.are.equal("AKIACONFIGFILE01", c.access_key_id)
  end)

  it("honour AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE with ~ and $VAR", function()
    write("elsewhere/creds", "[default]\naws_access_key_id = AKIAELSEWHERE001\naws_secret_access_key = elsesecret-1\n")
    write("elsewhere/conf", "[default]\nregion = ap-south-1\n")
    local chain = assert(credentials.chain { env = env { AWS_SHARED_CREDENTIALS_FILE = "~/elsewhere/creds",
      AWS_CONFIG_FILE = "$HOME/elsewhere/conf" } })
    assert.are.equal("AKIAELSEWHERE001", assert(chain:get()).access_key_id)
    assert.are.equal("ap-south-1", chain.config:region())
  end)

  it("report partial keys in a file as an error", function()
    write(".aws/credentials", "[default]\naws_access_key_id = AKIAPARTIAL00001\n")
    local c, err = credentials.resolve { env = env() }
    assert.is_nil(c)
    assert.matches("partial credentials in profile default", tostring(err))
  end)

  it("refuse a named profile that does not exist", function()
    local chain, err = credentials.chain { env = env { AWS_PROFILE = "nope" } }
    assert.is_nil(chain)
    assert.matches("config profile %(nope%) could not be found", tostring(err))
  end)

  it("report malformed files with file:line", function()
    write(".aws/config", "[default]\nregion = x\n[profile a]\n  = broken\n")
    local chain, err = credentials.chain { env = env() }
    assert.is_nil(chain)
    assert.matches("%.aws/config:4: ", tostring(err))
  end)
end)

-- ---------------------------------------------------------------------------
describe("assume role", function()
  local BASE = "[base]\naws_access_key_id = AKIABASEBASEBASE\naws_secret_access_key = " .. CANARY .. "\n"

  it("passes exactly the configured parameters to STS", function()
    write(".aws/credentials", BASE)
    write(".aws/config", "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n" ..
      "external_id = ext-42\nduration_seconds = 900\nregion = eu-west-1\n")
    local sts, calls = fake_sts()
    local c = assert(credentials.resolve { env = env(), profile = "dev", sts = sts, now = function() return NOW end })
    assert.are.equal("assume-role", c.provider)
    assert.are.equal(1, #calls)
    assert.are.equal("AssumeRole", calls[1].operation)
    assert.are.same({ RoleArn = "arn:aws:iam::123456789012:role/dev", RoleSessionName = "lumu-session-" .. NOW,
                      ExternalId = "ext-42", DurationSeconds = 900 }, calls[1].params)
    assert.are.equal("eu-west-1", calls[1].region)
    assert.are.equal("AKIABASEBASEBASE", calls[1].creds.access_key_id)
    assert.are.equal("123456789012", c.account_id)
  end)

  it("uses role_session_name and prompts for MFA on a terminal, once", function()
    write(".aws/credentials", BASE)
    write(".aws/config", "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n" ..
      "mfa_serial = arn:aws:iam::123456789012:mfa/me\nrole_session_name = alice\n")
    local sts, calls = fake_sts()
    local prompts = {}
    local opts = { env = env(), profile = "dev", sts = sts, isatty = function() return true end,
                   prompt = function(text) prompts[#prompts + 1] = text return " 123456 \n" end }
    assert(credentials.resolve(opts))
    assert.are.same({ RoleArn = "arn:aws:iam::123456789012:role/dev", RoleSessionName = "alice",
                      SerialNumber = "arn:aws:iam::123456789012:mfa/me", TokenCode = "123456" }, calls[1].params)
    assert.are.same({ "Enter MFA code for arn:aws:iam::123456789012:mfa/me: " }, prompts)
    -- a new process: the memory cache is gone, the file cache answers
    credentials.clear_cache()
    local c = assert(credentials.resolve(opts))
    assert.are.equal(1, #calls)
    assert.are.equal(1, #prompts)
    assert.are.equal("ASIASTS1XXXXXXXXXX", c.access_key_id)
  end)

  it("fails clearly when MFA is needed without a terminal", function()
    write(".aws/credentials", BASE)
    write(".aws/config", "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n" ..
      "mfa_serial = arn:aws:iam::123456789012:mfa/me\n")
    local sts, calls = fake_sts()
    local c, err = credentials.resolve { env = env(), profile = "dev", sts = sts, isatty = function() return false end,
      prompt = function() error("must not prompt") end }
    assert.is_nil(c)
    assert.are.equal(0, #calls)
    assert.matches("stdin is not a terminal", tostring(err))
    assert.matches("mfa_serial = arn:aws:iam::123456789012:mfa/me", tostring(err), 1, true)
  end)

  it("chains roles through source profiles", function()
    write(".aws/credentials", BASE)
    write(".aws/config", "[profile a]\nrole_arn = arn:aws:iam::111111111111:role/a\nsource_profile = b\n" ..
      "[profile b]\nrole_arn = arn:aws:iam::222222222222:role/b\nsource_profile = base\n")
    local sts, calls = fake_sts()
    local c = assert(credentials.resolve { env = env(), profile = "a", sts = sts })
    assert.are.equal(2, #calls)
    assert.are.equal("arn:aws:iam::222222222222:role/b", calls[1].params.RoleArn)
    assert.are.equal("AKIABASEBASEBASE", calls[1].creds.access_key_id)
    assert.are.equal("arn:aws:iam::111111111111:role/a", calls[2].params.RoleArn)
    assert.are.equal("ASIASTS1XXXXXXXXXX", calls[2].creds.access_key_id)
    assert.are.equal("ASIASTS2XXXXXXXXXX", c.access_key_id)
  end)

  it("takes credential_source = Environment even for an explicit profile", function()
    write(".aws/config", "[profile ci]\nrole_arn = arn:aws:iam::123456789012:role/ci\ncredential_source = Environment\n")
    local sts, calls = fake_sts()
    assert(credentials.resolve { env = env { AWS_ACCESS_KEY_ID = "AKIAENVIRONMENT01",
      AWS_SECRET_ACCESS_KEY = "envsecret-1234" }, profile = "ci", sts = sts })
    assert.are.equal("AKIAENVIRONMENT01", calls[1].creds.access_key_id)
  end)

  it("rejects broken role configurations", function()
    write(".aws/credentials", BASE)
    write(".aws/config", table.concat({
      "[profile both]", "role_arn = arn:aws:iam::1:role/x", "source_profile = base", "credential_source = Environment",
      "[profile neither]", "role_arn = arn:aws:iam::1:role/x",
      "[profile badsource]", "role_arn = arn:aws:iam::1:role/x", "credential_source = Laptop",
      "[profile missing]", "role_arn = arn:aws:iam::1:role/x", "source_profile = ghost",
      "[profile loop1]", "role_arn = arn:aws:iam::1:role/x", "source_profile = loop2",
      "[profile loop2]", "role_arn = arn:aws:iam::1:role/y", "source_profile = loop1",
      "[profile empty]", "region = eu-west-1",
      "[profile needsempty]", "role_arn = arn:aws:iam::1:role/x", "source_profile = empty",
    }, "\n") .. "\n")
    local sts, calls = fake_sts()
    local expect = {
      both = "both source_profile and credential_source",
      neither = "neither source_profile nor credential_source",
      badsource = 'credential_source "Laptop"',
      missing = 'source_profile "ghost"',
      loop1 = "infinite loop",
      needsempty = 'source profile "empty" must have credentials',
    }
    for profile, pattern in pairs(expect) do
      local c, err = credentials.resolve { env = env(), profile = profile, sts = sts }
      assert.is_nil(c, profile)
      assert.matches(pattern, tostring(err), 1, true)
      no_secret(err)
    end
    assert.are.equal(0, #calls)
  end)

  it("allows a profile that is its own source when it has static keys", function()
    write(".aws/credentials", "[self]\naws_access_key_id = AKIASELFSELFSELF\naws_secret_access_key = selfsecret-12\n")
    write(".aws/config", "[profile self]\nrole_arn = arn:aws:iam::123456789012:role/self\nsource_profile = self\n")
    local sts, calls = fake_sts()
    local c = assert(credentials.resolve { env = env(), profile = "self", sts = sts })
    assert.are.equal("assume-role", c.provider)
    assert.are.equal("AKIASELFSELFSELF", calls[1].creds.access_key_id)
  end)

  it("sources credentials from a credential_process profile", function()
    write(".aws/config", "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = proc\n" ..
      "[profile proc]\ncredential_process = get-creds --json\n")
    local sts, calls = fake_sts()
    local runs = {}
    local c = assert(credentials.resolve { env = env(), profile = "dev", sts = sts, run = function(argv)
      runs[#runs + 1] = argv
      return '{"Version": 1, "AccessKeyId": "AKIAPROCPROCPROC", "SecretAccessKey": "procsecret-123"}', "", 0
    end })
    assert.are.same({ { "get-creds", "--json" } }, runs)
    assert.are.equal("AKIAPROCPROCPROC", calls[1].creds.access_key_id)
    assert.are.equal("assume-role", c.provider)
  end)

  it("redacts secrets in STS failures", function()
    write(".aws/credentials", BASE)
    write(".aws/config", "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n")
    local sts = fake_sts { fail = "AccessDenied: signature with " .. CANARY .. " did not match" }
    local c, err = credentials.resolve { env = env(), profile = "dev", sts = sts }
    assert.is_nil(c)
    assert.matches("STS AssumeRole failed: AccessDenied", tostring(err))
    no_secret(err)
    no_secret(err.message)
  end)

  it("writes the AWS CLI cache under botocore's key", function()
    write(".aws/credentials", BASE)
    write(".aws/config", "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n" ..
      "external_id = ext-42\nduration_seconds = 900\n")
    local sts = fake_sts()
    assert(credentials.resolve { env = env(), profile = "dev", sts = sts })
    -- botocore: sha1(json.dumps(args, sort_keys=True)) without the generated session name
    local args = '{"DurationSeconds": 900, "ExternalId": "ext-42", "RoleArn": "arn:aws:iam::123456789012:role/dev"}'
    local key = crypto.hex(crypto.sha1(args))
    local p = io.popen("python3 -c 'import json,hashlib;print(hashlib.sha1(json.dumps({\"RoleArn\": " ..
      "\"arn:aws:iam::123456789012:role/dev\", \"ExternalId\": \"ext-42\", \"DurationSeconds\": 900}, " ..
      "sort_keys=True).encode()).hexdigest())' 2>/dev/null")
    local py = p and p:read("l")
    if p then p:close() end
    if py and #py == 40 then assert.are.equal(py, key) end
    local path = home .. "/.aws/cli/cache/" .. key .. ".json"
    local st = assert(fs.stat(path))
    assert.are.equal(tonumber("600", 8), st.mode)
    local doc = json.decode(assert(fs.read(path)))
    assert.are.equal("ASIASTS1XXXXXXXXXX", doc.Credentials.AccessKeyId)
  end)
end)

-- ---------------------------------------------------------------------------
describe("web identity", function()
  it("calls AssumeRoleWithWebIdentity unsigned with the token file's contents", function()
    local tok = write("token.jwt", "eyJhbGciOi.CANARY-JWT-PAYLOAD.sig")
    local sts, calls = fake_sts()
    local c = assert(credentials.resolve { env = env { AWS_WEB_IDENTITY_TOKEN_FILE = tok,
      AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/gha", AWS_ROLE_SESSION_NAME = "gha-run" }, sts = sts })
    assert.are.equal("web-identity", c.provider)
    assert.are.equal("AssumeRoleWithWebIdentity", calls[1].operation)
    assert.is_nil(calls[1].creds)
    assert.are.same({ RoleArn = "arn:aws:iam::123456789012:role/gha", RoleSessionName = "gha-run",
                      WebIdentityToken = "eyJhbGciOi.CANARY-JWT-PAYLOAD.sig" }, calls[1].params)
  end)

  it("reads the profile's keys, ignoring the environment for an explicit profile", function()
    local tok = write("token.jwt", "profile-token-abcdef")
    write(".aws/config", "[profile irsa]\nweb_identity_token_file = " .. tok ..
      "\nrole_arn = arn:aws:iam::123456789012:role/irsa\n")
    local sts, calls = fake_sts()
    assert(credentials.resolve { env = env { AWS_ROLE_ARN = "arn:aws:iam::9:role/env" }, profile = "irsa",
      sts = sts, now = function() return NOW end })
    assert.are.equal("arn:aws:iam::123456789012:role/irsa", calls[1].params.RoleArn)
    assert.are.equal("lumu-session-" .. NOW, calls[1].params.RoleSessionName)
  end)

  it("needs a role ARN and a readable token file", function()
    local sts, calls = fake_sts()
    local c, err = credentials.resolve { env = env { AWS_WEB_IDENTITY_TOKEN_FILE = home .. "/t" }, sts = sts }
    assert.is_nil(c)
    assert.matches("no role ARN", tostring(err))
    c, err = credentials.resolve { env = env { AWS_WEB_IDENTITY_TOKEN_FILE = home .. "/missing",
      AWS_ROLE_ARN = "arn:aws:iam::1:role/x" }, sts = sts }
    assert.is_nil(c)
    assert.matches("cannot read the web identity token file", tostring(err))
    assert.are.equal(0, #calls)
  end)
end)

-- ---------------------------------------------------------------------------
describe("credential_process", function()
  local function process_env(cmd)
    write(".aws/config", "[default]\ncredential_process = " .. cmd .. "\n")
    return env()
  end

  it("parses the JSON and its Expiration", function()
    local e = process_env("/opt/bin/creds --profile 'my team'")
    local seen
    local c = assert(credentials.resolve { env = e, run = function(argv)
      seen = argv
      return json.encode { Version = 1, AccessKeyId = "AKIAPROCESS00001", SecretAccessKey = CANARY,
                           SessionToken = CANARY_TOKEN, Expiration = "2026-11-26T08:12:40Z" }, "", 0
    end })
    assert.are.same({ "/opt/bin/creds", "--profile", "my team" }, seen)
    assert.are.equal("credential-process", c.provider)
    assert.are.equal(NOW + 3600, c.expiration)
  end)

  it("surfaces stderr of a failing process, redacted", function()
    local e = process_env("creds")
    local c, err = credentials.resolve { env = e, run = function()
      return "", "token expired for " .. CANARY .. "\nplease log in\n", 3
    end }
    assert.is_nil(c)
    assert.matches("creds exited with status 3: token expired", tostring(err))
    assert.matches("please log in", tostring(err))
    -- the canary was never a known secret here: only redacted when registered
    local c2, err2 = credentials.resolve { env = env { AWS_SECRET_ACCESS_KEY = CANARY }, run = function()
      return "", "leak " .. CANARY, 1
    end }
    assert.is_nil(c2)
    no_secret(err2)
  end)

  it("rejects bad output without echoing it", function()
    local e = process_env("creds")
    local cases = {
      { '{"Version": 1, "AccessKeyId": "AKIA", "SecretAccessKey": "' .. CANARY .. '"', "did not print a JSON object" },
      { '{"Version": 2, "AccessKeyId": "AKIA1", "SecretAccessKey": "' .. CANARY .. '"}', "unsupported version '2'" },
      { '{"AccessKeyId": "AKIA1", "SecretAccessKey": "' .. CANARY .. '"}', "<Version key not provided>" },
      { '{"Version": 1, "AccessKeyId": "AKIA1", "SessionToken": "' .. CANARY .. '"}', "missing required key in response: SecretAccessKey" },
    }
    for _, case in ipairs(cases) do
      local c, err = credentials.resolve { env = e, run = function() return case[1], "", 0 end }
      assert.is_nil(c)
      assert.matches(case[2], tostring(err), 1, true)
      no_secret(err)
    end
  end)

  it("runs a real command line without a shell", function()
    local script = write("bin/creds.sh", "#!/bin/sh\nprintf '{\"Version\":1,\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"x-secret-123\"}' \"$1\"\n",
      "755")
    local e = process_env(script .. " 'AKIA SPACED;$(id)'")
    local c = assert(credentials.resolve { env = e })
    assert.are.equal("AKIA SPACED;$(id)", c.access_key_id)
    local bad = write("bin/fail.sh", "#!/bin/sh\necho 'no session' >&2\nexit 7\n", "755")
    local c2, err = credentials.resolve { env = process_env(bad) }
    assert.is_nil(c2)
    assert.matches("exited with status 7: no session", tostring(err))
  end)

  it("loses to SSO settings in the same profile", function()
    write(".aws/config", "[default]\nsso_account_id = 111122223333\nsso_role_name = Admin\n" ..
      "credential_process = creds\n")
    local c, err = credentials.resolve { env = env(), run = function() error("must not run") end }
    assert.is_nil(c)
    assert.are.equal("sso", err.provider)
    assert.matches("missing required configuration: sso_start_url, sso_region", tostring(err))
  end)
end)

-- ---------------------------------------------------------------------------
describe("SSO", function()
  local function token_file(key, doc)
    local path = ".aws/sso/cache/" .. crypto.hex(crypto.sha1(key)) .. ".json"
    return write(path, json.encode(doc))
  end

  local function sso_env()
    meta_reset()
    return env { AWS_ENDPOINT_URL_SSO = meta().base, AWS_ENDPOINT_URL_SSO_OIDC = meta().base }
  end

  it("uses an sso-session token and calls GetRoleCredentials", function()
    local e = sso_env()
    write(".aws/config", "[profile sso]\nsso_session = corp\nsso_account_id = 111122223333\n" ..
      "sso_role_name = Admin+Ops\nregion = eu-west-1\n" ..
      "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-2\n" ..
      "sso_registration_scopes = sso:account:access\n")
    token_file("corp", { accessToken = "SSO-ACCESS-TOKEN", expiresAt = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 7200) })
    local c = assert(credentials.resolve { env = e, profile = "sso" })
    assert.are.equal("sso", c.provider)
    assert.are.equal("ASIASSOEXAMPLEKEY", c.access_key_id)
    assert.are.equal("111122223333", c.account_id)
    local log = meta_log()
    assert.are.equal(1, #log)
    assert.are.equal("GET", log[1].method)
    assert.are.equal("/federation/credentials?account_id=111122223333&role_name=Admin%2BOps", log[1].path)
    assert.are.equal("SSO-ACCESS-TOKEN", log[1].headers["x-amz-sso_bearer_token"])
  end)

  it("uses the legacy layout keyed by the start URL", function()
    local e = sso_env()
    write(".aws/config", "[default]\nsso_start_url = https://legacy.awsapps.com/start\nsso_region = eu-west-1\n" ..
      "sso_account_id = 111122223333\nsso_role_name = ReadOnly\n")
    token_file("https://legacy.awsapps.com/start", { accessToken = "SSO-ACCESS-TOKEN",
      expiresAt = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 7200) })
    assert.are.equal("sso", assert(credentials.resolve { env = e }).provider)
  end)

  it("asks for `aws sso login` when the token is missing, expired or refused", function()
    local e = sso_env()
    write(".aws/config", "[default]\nsso_start_url = https://legacy.awsapps.com/start\nsso_region = eu-west-1\n" ..
      "sso_account_id = 111122223333\nsso_role_name = ReadOnly\n")
    local c, err = credentials.resolve { env = e }
    assert.is_nil(c)
    assert.matches("aws sso login %-%-profile default", tostring(err))
    token_file("https://legacy.awsapps.com/start", { accessToken = CANARY_TOKEN, expiresAt = "2020-01-01T00:00:00Z" })
    c, err = credentials.resolve { env = e }
    assert.matches("token expired", tostring(err))
    token_file("https://legacy.awsapps.com/start", { accessToken = CANARY_TOKEN,
      expiresAt = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 7200) })
    c, err = credentials.resolve { env = e }
    assert.is_nil(c)
    assert.matches("HTTP 401", tostring(err))
    no_secret(err)
  end)

  it("checks the profile against its sso-session", function()
    sso_env()
    write(".aws/config", "[profile p]\nsso_session = corp\nsso_region = eu-west-1\nsso_account_id = 1\nsso_role_name = r\n" ..
      "[profile q]\nsso_session = ghost\nsso_account_id = 1\nsso_role_name = r\n" ..
      "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-2\n")
    local _, err = credentials.resolve { env = env(), profile = "p" }
    assert.matches("sso_region is inconsistent", tostring(err))
    _, err = credentials.resolve { env = env(), profile = "q" }
    assert.matches('sso%-session does not exist: "ghost"', tostring(err))
  end)

  it("refreshes an expiring sso-session token through SSO OIDC", function()
    local e = sso_env()
    meta_config { sso = { token = "SSO-ACCESS-TOKEN-2" } }
    write(".aws/config", "[default]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Admin\n" ..
      "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-2\n")
    local path = token_file("corp", { accessToken = "SSO-ACCESS-TOKEN", refreshToken = "REFRESH-1",
      clientId = "client-1", clientSecret = "client-secret-1",
      expiresAt = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 60),
      registrationExpiresAt = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 86400) })
    local c = assert(credentials.resolve { env = e })
    assert.are.equal("sso", c.provider)
    local log = meta_log()
    assert.are.equal("POST", log[1].method)
    assert.are.equal("/token", log[1].path)
    assert.are.same({ grantType = "refresh_token", clientId = "client-1", clientSecret = "client-secret-1",
                      refreshToken = "REFRESH-1" }, json.decode(log[1].body))
    assert.are.equal("SSO-ACCESS-TOKEN-2", log[2].headers["x-amz-sso_bearer_token"])
    local doc = json.decode(assert(fs.read(path)))
    assert.are.equal("SSO-ACCESS-TOKEN-2", doc.accessToken)
    assert.are.equal("REFRESH-1-next", doc.refreshToken)
  end)

  it("serves as the source profile of a role (aws-cdk#19897)", function()
    local e = sso_env()
    write(".aws/config", "[profile deploy]\nrole_arn = arn:aws:iam::444455556666:role/deploy\nsource_profile = sso\n" ..
      "[profile sso]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Admin\n" ..
      "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-2\n")
    token_file("corp", { accessToken = "SSO-ACCESS-TOKEN", expiresAt = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 7200) })
    local sts, calls = fake_sts()
    local c = assert(credentials.resolve { env = e, profile = "deploy", sts = sts })
    assert.are.equal("assume-role", c.provider)
    assert.are.equal("ASIASSOEXAMPLEKEY", calls[1].creds.access_key_id)
    assert.are.equal("sso", calls[1].creds.provider)
  end)
end)

-- ---------------------------------------------------------------------------
describe("container provider", function()
  it("sends the token from the environment as Authorization", function()
    meta_reset()
    meta_config { container = { token = "Bearer " .. CANARY_TOKEN } }
    local c = assert(credentials.resolve { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = meta().base .. "/container/v2",
      AWS_CONTAINER_AUTHORIZATION_TOKEN = "Bearer " .. CANARY_TOKEN } })
    assert.are.equal("container", c.provider)
    assert.are.equal("ASIAECSEXAMPLEKEY", c.access_key_id)
    local log = meta_log()
    assert.are.equal("Bearer " .. CANARY_TOKEN, log[1].headers.authorization)
    assert.are.equal("application/json", log[1].headers.accept)
  end)

  it("prefers the token file and re-reads it on refresh", function()
    meta_reset()
    meta_config { container = { token = "file-token-1", creds = { AccessKeyId = "ASIAECS1", SecretAccessKey = "ecs-secret-1",
      Token = "ecs-token-1", Expiration = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 300) } } }
    local tf = write("eks/token", "file-token-1")
    local chain = assert(credentials.chain { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = meta().base .. "/container/x",
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = tf, AWS_CONTAINER_AUTHORIZATION_TOKEN = "env-token" } })
    assert.are.equal("ASIAECS1", assert(chain:get()).access_key_id)
    -- the token rotates; the credentials expire in 5 minutes, so get() refreshes
    write("eks/token", "file-token-2")
    meta_config { container = { token = "file-token-2", creds = { AccessKeyId = "ASIAECS2", SecretAccessKey = "ecs-secret-2",
      Token = "ecs-token-2", Expiration = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600) } } }
    assert.are.equal("ASIAECS2", assert(chain:get()).access_key_id)
    local log = meta_log()
    assert.are.equal("file-token-1", log[1].headers.authorization)
    assert.are.equal("file-token-2", log[2].headers.authorization)
  end)

  it("appends RELATIVE_URI to 169.254.170.2 with 2 s timeouts and no proxy", function()
    local seen = {}
    local c = assert(credentials.resolve { env = env { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/v2/credentials/abc",
      HTTP_PROXY = "http://proxy.invalid:3128" }, http = function(req)
        seen[#seen + 1] = req
        return { status = 200, headers = {}, body = json.encode { AccessKeyId = "ASIAREL0000000001",
          SecretAccessKey = "rel-secret-123", Token = "rel-token-123", Expiration = "2026-11-26T08:12:40Z" } }
      end })
    assert.are.equal("container", c.provider)
    assert.are.equal("http://169.254.170.2/v2/credentials/abc", seen[1].url)
    assert.are.same({ 2, false }, { seen[1].timeout, seen[1].proxy })
    assert.is_nil(seen[1].headers.Authorization)
  end)

  it("allows only https or the container/loopback hosts for FULL_URI", function()
    local _, err = credentials.resolve { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://example.com/creds" } }
    assert.matches("unsupported host 'example.com'", tostring(err))
    _, err = credentials.resolve { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = "ftp://127.0.0.1/creds" } }
    assert.matches("must use http or https", tostring(err))
    -- https anywhere is allowed: it fails to connect (port 1), not on the host rule
    _, err = credentials.resolve { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = "https://127.0.0.1:1/creds" },
      sleep = function() end }
    assert.matches("cannot get credentials", tostring(err))
  end)

  it("rejects a token with a line break and retries failures three times", function()
    meta_reset()
    local _, err = credentials.resolve { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = meta().base .. "/container/x",
      AWS_CONTAINER_AUTHORIZATION_TOKEN = CANARY_TOKEN .. "\r\nX-Injected: 1" } }
    assert.matches("not a legal header value", tostring(err))
    no_secret(err)
    meta_config { container = { status = 500 } }
    local slept = 0
    _, err = credentials.resolve { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = meta().base .. "/container/x" },
      sleep = function() slept = slept + 1 end }
    assert.matches("HTTP 500", tostring(err))
    assert.are.equal(3, #meta_log())
    assert.are.equal(2, slept)
  end)
end)

-- ---------------------------------------------------------------------------
describe("instance metadata provider", function()
  local function imds_env(extra)
    meta_reset()
    local e = env(extra)
    e.AWS_EC2_METADATA_DISABLED = nil
    e.AWS_EC2_METADATA_SERVICE_ENDPOINT = meta().base
    return e
  end

  it("gets an IMDSv2 token, then the role and its credentials", function()
    local e = imds_env()
    meta_config { imds = { require_token = true } }
    local c = assert(credentials.resolve { env = e })
    assert.are.equal("instance-metadata", c.provider)
    assert.are.equal("ASIAIMDSEXAMPLEKEY", c.access_key_id)
    local log = meta_log()
    assert.are.equal(3, #log)
    assert.are.equal("PUT", log[1].method)
    assert.are.equal("/latest/api/token", log[1].path)
    assert.are.equal("21600", log[1].headers["x-aws-ec2-metadata-token-ttl-seconds"])
    assert.are.equal("/latest/meta-data/iam/security-credentials/", log[2].path)
    assert.are.equal("IMDSTOKEN-0123456789", log[2].headers["x-aws-ec2-metadata-token"])
    assert.are.equal("/latest/meta-data/iam/security-credentials/lumu-role", log[3].path)
    assert.are.equal("IMDSTOKEN-0123456789", log[3].headers["x-aws-ec2-metadata-token"])
  end)

  it("uses 169.254.169.254 with 1 s timeouts by default, or the IPv6 endpoint", function()
    local urls, timeouts = {}, {}
    local function fake(req)
      urls[#urls + 1] = req.method .. " " .. req.url
      timeouts[#timeouts + 1] = req.timeout
      return nil, setmetatable({ kind = "connect", message = "unreachable" },
        { __tostring = function(e) return e.message end })
    end
    local e = env()
    e.AWS_EC2_METADATA_DISABLED = nil
    assert.is_nil((credentials.resolve { env = e, http = fake }))
    assert.are.same({ "PUT http://169.254.169.254/latest/api/token" }, urls)
    assert.are.same({ 1 }, timeouts)
    e.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE = "IPv6"
    assert.is_nil((credentials.resolve { env = e, http = fake }))
    assert.are.equal("PUT http://[fd00:ec2::254]/latest/api/token", urls[2])
  end)

  it("falls back to IMDSv1 on 403/404/405 unless v1 is disabled", function()
    local e = imds_env()
    for _, status in ipairs { 403, 404, 405 } do
      meta_reset()
      meta_config { imds = { token_status = status } }
      local c = assert(credentials.resolve { env = e })
      assert.are.equal("instance-metadata", c.provider)
      local log = meta_log()
      assert.is_nil(log[2].headers["x-aws-ec2-metadata-token"])
    end
    meta_reset()
    meta_config { imds = { token_status = 404 } }
    e.AWS_EC2_METADATA_V1_DISABLED = "true"
    local c, err = credentials.resolve { env = e }
    assert.is_nil(c)
    assert.matches("unable to locate credentials", tostring(err))
    assert.are.equal(1, #meta_log())
    local report = credentials.describe { env = e }
    assert.matches("IMDSv1 fallback is disabled", tostring(report))
  end)

  it("gives up on a 400 token answer and never contacts IMDS when disabled", function()
    local e = imds_env()
    meta_config { imds = { token_status = 400 } }
    assert.is_nil((credentials.resolve { env = e }))
    assert.are.equal(1, #meta_log())
    meta_reset()
    e.AWS_EC2_METADATA_DISABLED = "TRUE"
    assert.is_nil((credentials.resolve { env = e }))
    assert.are.equal(0, #meta_log())
  end)

  it("falls back to IMDSv1 when the token request times out", function()
    local e = imds_env { AWS_METADATA_SERVICE_TIMEOUT = "0.3" }
    meta_config { imds = { token_delay_ms = 1500 } }
    local c = assert(credentials.resolve { env = e })
    assert.are.equal("instance-metadata", c.provider)
    local log = meta_log()
    assert.are.equal("/latest/meta-data/iam/security-credentials/", log[2].path)
    assert.is_nil(log[2].headers["x-aws-ec2-metadata-token"])
  end)

  it("provides the region when asked", function()
    local e = imds_env()
    local cfg = assert(awsconfig.load { env = e })
    assert.is_nil(cfg:region())
    local region, source = cfg:region { imds = true }
    assert.are.equal("eu-central-1", region)
    assert.are.equal("instance metadata", source)
  end)
end)

-- ---------------------------------------------------------------------------
describe("the chain", function()
  it("refreshes expiring credentials from the same provider", function()
    write(".aws/config", "[default]\ncredential_process = creds\n")
    local now, runs = NOW, 0
    local chain = assert(credentials.chain { env = env(), now = function() return now end, run = function()
      runs = runs + 1
      return json.encode { Version = 1, AccessKeyId = "AKIARUN" .. runs .. "XXXXXXXX", SecretAccessKey = "s-secret-" .. runs,
                           Expiration = os.date("!%Y-%m-%dT%H:%M:%SZ", now + 3600) }, "", 0
    end })
    local c1 = assert(chain:get())
    assert.are.equal(c1, assert(chain:get()))         -- cached
    now = now + 46 * 60                               -- 14 min left: advisory refresh
    local c2 = assert(chain:get())
    assert.are.equal(2, runs)
    assert.are_not.equal(c1.access_key_id, c2.access_key_id)
  end)

  it("keeps old credentials on a failed advisory refresh, fails when mandatory", function()
    write(".aws/config", "[default]\ncredential_process = creds\n")
    local now, fail = NOW, false
    local chain = assert(credentials.chain { env = env(), now = function() return now end, run = function()
      if fail then return "", "offline", 1 end
      return json.encode { Version = 1, AccessKeyId = "AKIAREFRESH00001", SecretAccessKey = "s-secret-1",
                           Expiration = os.date("!%Y-%m-%dT%H:%M:%SZ", NOW + 3600) }, "", 0
    end })
    local c1 = assert(chain:get())
    fail = true
    now = NOW + 47 * 60 -- 13 min left
    assert.are.equal(c1, assert(chain:get()))
    now = NOW + 52 * 60 -- 8 min left
    local c, err = chain:get()
    assert.is_nil(c)
    assert.matches("offline", tostring(err))
  end)

  it("lets concurrent tasks share one resolution", function()
    local async = require "lumu.async"
    meta_reset()
    local chain = assert(credentials.chain { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = meta().base .. "/container/c" } })
    local results = async.run(function()
      return async.all { function() return chain:get() end, function() return chain:get() end,
                         function() return chain:get() end }
    end)
    assert.are.equal(3, #results)
    assert.are.equal(results[1][1], results[2][1])
    assert.are.equal(results[1][1], results[3][1])
    assert.are.equal(1, #meta_log())
  end)

  it("explains which provider won, without secrets", function()
    write(".aws/credentials", "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = " .. CANARY ..
      "\naws_session_token = " .. CANARY_TOKEN .. "\n")
    write(".aws/config", "[default]\nregion = eu-north-1\n")
    local report = assert(credentials.describe { env = env() })
    assert.are.equal("shared-credentials-file", report.provider)
    assert.are.equal("AKIA****MPLE", report.access_key)
    assert.are.equal("eu-north-1", report.region)
    local names = {}
    for _, s in ipairs(report.steps) do names[#names + 1] = s.provider .. "=" .. s.status end
    assert.are.same({ "explicit=skipped", "env=skipped", "assume-role=skipped", "web-identity=skipped", "sso=skipped",
                      "shared-credentials-file=used" }, names)
    local text = tostring(report)
    assert.matches("credentials: AKIA%*%*%*%*MPLE from shared%-credentials%-file", text)
    no_secret(text)
    no_secret(pretty.format(report))
  end)

  it("lists what it tried when nothing is configured", function()
    local c, err = credentials.resolve { env = env() }
    assert.is_nil(c)
    assert.matches("unable to locate credentials for profile default", tostring(err))
    assert.matches("instance%-metadata", tostring(err))
  end)

  it("never leaks the canary secret through an error path", function()
    local S = { AWS_SECRET_ACCESS_KEY = CANARY, AWS_SESSION_TOKEN = CANARY_TOKEN }
    local scenarios = {
      function() -- partial env: secret without key id? key id without secret:
        write(".aws/credentials", "[default]\naws_secret_access_key = " .. CANARY .. "\naws_access_key_id = \n")
        return credentials.resolve { env = env() }
      end,
      function()
        write(".aws/config", "[default]\ncredential_process = x\n")
        return credentials.resolve { env = env(S), profile = "default",
          run = function() return CANARY .. CANARY_TOKEN, CANARY .. " " .. CANARY_TOKEN, 2 end }
      end,
      function()
        write(".aws/config", "[default]\ncredential_process = x\n")
        return credentials.resolve { env = env(S), profile = "default",
          run = function() return '{"Version":1,"AccessKeyId":"' .. CANARY .. '"', "", 0 end }
      end,
      function()
        write(".aws/credentials", "[b]\naws_access_key_id = AKIABBBBBBBBBBBB\naws_secret_access_key = " .. CANARY .. "\n")
        write(".aws/config", "[profile r]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = b\n")
        return credentials.resolve { env = env(), profile = "r",
          sts = function(_, _, creds) return nil, "denied for " .. creds:secret_access_key() end }
      end,
      function()
        return credentials.resolve { env = env { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://evil.example/" .. CANARY } }
      end,
      function()
        write(".aws/config", "[default]\nsso_start_url = u\nsso_region = eu-west-1\nsso_account_id = 1\nsso_role_name = r\n")
        write(".aws/sso/cache/" .. crypto.hex(crypto.sha1("u")) .. ".json",
          json.encode { accessToken = CANARY_TOKEN, expiresAt = "2001-01-01T00:00:00Z" })
        return credentials.resolve { env = env(S), profile = "default" }
      end,
      function()
        write(".aws/config", "[default]\nregion = x\nthis line has " .. CANARY .. " and no equals sign\n")
        return credentials.resolve { env = env() }
      end,
    }
    for i, fn in ipairs(scenarios) do
      local c, err = fn()
      assert.is_nil(c, "scenario " .. i)
      assert.is_not_nil(err, "scenario " .. i)
      no_secret(err)
      no_secret(err.message or "")
      no_secret(pretty.format(err))
    end
  end)
end)
