-- Specs of lumu.aws.config and the lumu._awscore bindings (config parser,
-- shlex, endpoint resolver, retry policy, SigV4 signer).  Where python3 with
-- botocore is installed, the parser is also compared with botocore's own
-- configloader on a corpus of tricky files.
local awsconfig = require "lumu.aws.config"
local core = require "lumu._awscore"
local fs = require "lumu.fs"
local json = require "lumu.json"

local ENDPOINTS_JSON = "/usr/lib/python3/dist-packages/botocore/data/endpoints.json"

local home
local function write(rel, text)
  local path = home .. "/" .. rel
  assert(fs.mkdir(fs.dirname(path)))
  assert(fs.write(path, text))
  return path
end

local function load(env, opts)
  opts = opts or {}
  local e = { HOME = home }
  for k, v in pairs(env or {}) do e[k] = v end
  opts.env = e
  return awsconfig.load(opts)
end

before_each(function() home = assert(fs.tmpdir("lumu-awscfg-")) end)
after_each(function() if home then fs.rmtree(home) end home = nil end)

-- ---------------------------------------------------------------------------
describe("config file parsing", function()
  it("sorts sections into profiles, sso-sessions, services and the rest", function()
    local v = assert(awsconfig.parse(table.concat({
      "# comment", "; another", "[default]", "region = us-west-2", "",
      "[profile dev]", "output: json", "s3 =", "  addressing_style = path", "  signature_version = s3v4",
      '[profile "with space"]', "region = eu-west-1",
      "[sso-session corp]", "sso_start_url = https://x.awsapps.com/start",
      "[services local]", "cloudformation =", "  endpoint_url = http://localhost:4566",
      "[preview]", "cloudfront = true",
      "[profile a b]", "ignored = yes",
      "[profilefoo bar]", "quirk = botocore keeps this as profile bar",
    }, "\n")))
    assert.are.same({ region = "us-west-2" }, v.profiles.default)
    assert.are.same({ output = "json", s3 = { addressing_style = "path", signature_version = "s3v4" } },
      v.profiles.dev)
    assert.are.equal("eu-west-1", v.profiles["with space"].region)
    assert.are.equal("https://x.awsapps.com/start", v.sso_sessions.corp.sso_start_url)
    assert.are.same({ cloudformation = { endpoint_url = "http://localhost:4566" } }, v.services["local"])
    assert.are.equal("true", v.other.preview.cloudfront)
    assert.is_nil(v.profiles["a b"])
    assert.is_nil(v.profiles.a)
    assert.are.equal("botocore keeps this as profile bar", v.profiles.bar.quirk)
  end)

  it("lets a later [profile default] replace [default]", function()
    local v = assert(awsconfig.parse("[default]\nregion = a\n[profile default]\nregion = b\n"))
    assert.are.equal("b", v.profiles.default.region)
  end)

  it("keeps credentials-file section names verbatim", function()
    local v = assert(awsconfig.parse_credentials("[profile x]\naws_access_key_id = A\n[default]\nk = v\n"))
    assert.are.equal("A", v.profiles["profile x"].aws_access_key_id)
    assert.are.equal("v", v.profiles.default.k)
  end)

  it("reports errors with file and line and never quotes the line", function()
    local cases = {
      { "region = x\n", "f:1: key before the first" },
      { "[a]\nk = 1\nK = 2\n", "f:3: duplicate key (first at line 2)" },
      { "[a]\n[b]\n[a]\n", "f:3: section declared twice (first at line 1)" },
      { "[a]\nsecretvalue-without-delimiter\n", "f:2: expected 'key = value'" },
      { "[a]\n = v\n", "f:2: missing key" },
      { "[a]\ns3 =\n  secretvalue-nested\n", "f:3: expected 'name = value'" },
      { "[a]\nk = \255\n", "f:2: invalid UTF-8" },
      { "[a]\nk = v\0w\n", "f:2: NUL byte" },
    }
    for _, c in ipairs(cases) do
      local v, err = awsconfig.parse(c[1], "f")
      assert.is_nil(v)
      assert.matches(c[2], err, 1, true)
      assert.is_nil(err:find("secretvalue", 1, true))
    end
  end)

  it("copes with huge lines and many sections", function()
    local big = string.rep("x", 1024 * 1024)
    local parts = { "[default]", "big = " .. big }
    for i = 1, 5000 do parts[#parts + 1] = "[profile p" .. i .. "]\nk = " .. i end
    local v = assert(awsconfig.parse(table.concat(parts, "\n")))
    assert.are.equal(#big, #v.profiles.default.big)
    assert.are.equal("5000", v.profiles.p5000.k)
  end)

  it("matches botocore's configloader on tricky input", function()
    local ok = os.execute("python3 -c 'import botocore.configloader' 2>/dev/null")
    if not ok then return end -- no oracle here
    local corpus = {
      "[a]\nk = v # not a comment\n  cont\n\n  after blank\n; comment inside\nk2: x=y\n",
      "[a]\r\nk = v\r\n[b]\rk = w\r",
      "  [indented]\n  k = 1\n  j = 2\n",
      "[a]\nk = 1\n  [not a section]\n",
      "[DEFAULT]\nshared = d\n[a]\nk = 1\n[b]\nshared = own\n",
      "[a]\ns3 =\n  x = 1\n\n  y = 2\n  x = 3\nafter = 1\n",
      "[ spaced ]\nK = Upper\n[a]]b]\nq = 1\n",
      "[a]\nk = \t tabbed \t\n\tcont\n",
      "\239\187\191[bom]\nk = 1\n",
      "[a]\nk =\n",
      "[a]\nk = x\n   \n\n",
      "[a]\nempty_nested =\n  # only a comment\n",
      "[a]\nk:v:w\nj=v=w\n",
      "[u]\nk = caf\195\169\n",
    }
    local dir = home .. "/oracle"
    assert(fs.mkdir(dir))
    for i, text in ipairs(corpus) do assert(fs.write(dir .. "/" .. i .. ".ini", text)) end
    local script = write("oracle.py", [[
import json, sys, os
from botocore.configloader import raw_config_parse
out = {}
for name in sorted(os.listdir(sys.argv[1])):
    try:
        out[name] = raw_config_parse(os.path.join(sys.argv[1], name))
    except Exception as e:
        out[name] = None
print(json.dumps(out))
]])
    local p = assert(io.popen("python3 " .. script .. " " .. dir))
    local expected = json.decode(p:read("a"))
    p:close()
    for i, text in ipairs(corpus) do
      local want = expected[i .. ".ini"]
      local sections = core.parse_config(text, "x")
      if text:sub(1, 3) == "\239\187\191" then
        -- deliberate difference: lumu skips a UTF-8 byte order mark
        assert.is_not_nil(sections)
      elseif want == json.null then
        assert.is_nil(sections, "case " .. i)
      else
        local got = {}
        for _, s in ipairs(sections) do
          local t = {}
          for _, e in ipairs(s.entries) do
            if e.sub then
              local sub = {}
              for _, x in ipairs(e.sub) do sub[x.key] = x.value end
              t[e.key] = sub
            else
              t[e.key] = e.value
            end
          end
          got[s.header] = t
        end
        local plain = json.decode(json.encode(got))
        assert.are.same(json.decode(json.encode(want)), plain, "case " .. i .. ": " .. text)
      end
    end
  end)
end)

-- ---------------------------------------------------------------------------
describe("settings resolution", function()
  it("picks the profile: flag > AWS_PROFILE > AWS_DEFAULT_PROFILE > default", function()
    write(".aws/config", "[default]\nregion = d\n[profile a]\nregion = a\n[profile b]\nregion = b\n[profile c]\nregion = c\n")
    local cfg = assert(load({ AWS_PROFILE = "b", AWS_DEFAULT_PROFILE = "c" }, { profile = "a" }))
    assert.are.equal("a", cfg.profile_name)
    assert.is_true(cfg.explicit_profile)
    cfg = assert(load { AWS_PROFILE = "b", AWS_DEFAULT_PROFILE = "c" })
    assert.are.same({ "b", "AWS_PROFILE", false }, { cfg.profile_name, cfg.profile_source, cfg.explicit_profile })
    cfg = assert(load { AWS_DEFAULT_PROFILE = "c" })
    assert.are.equal("c", cfg.profile_name)
    cfg = assert(load())
    assert.are.equal("default", cfg.profile_name)
    assert.are.same({ "a", "b", "c", "default" }, cfg:profiles())
  end)

  it("works without any file, and only a named profile must exist", function()
    local cfg = assert(load())
    assert.is_nil(cfg:region())
    local none, err = load({}, { profile = "default" })
    assert.is_nil(none)
    assert.matches("could not be found", err)
  end)

  it("resolves the region per setting: flag > AWS_REGION > AWS_DEFAULT_REGION > profile", function()
    write(".aws/config", "[default]\nregion = eu-west-1\n")
    local function region(env, flags)
      local cfg = assert(load(env, { flags = flags }))
      return { cfg:region() }
    end
    assert.are.same({ "eu-west-1", "profile default (" .. home .. "/.aws/config:2)" }, region())
    assert.are.same({ "us-east-2", "env AWS_DEFAULT_REGION" }, region { AWS_DEFAULT_REGION = "us-east-2" })
    assert.are.same({ "ap-south-1", "env AWS_REGION" },
      region { AWS_DEFAULT_REGION = "us-east-2", AWS_REGION = "ap-south-1" })
    assert.are.same({ "ca-central-1", "flag" }, region({ AWS_REGION = "ap-south-1" }, { region = "ca-central-1" }))
    assert.are.same({ "eu-west-1", "profile default (" .. home .. "/.aws/config:2)" }, region { AWS_REGION = "" })
  end)

  it("merges the credentials file over the config file", function()
    write(".aws/config", "[profile p]\nregion = from-config\noutput = text\n")
    write(".aws/credentials", "[p]\nregion = from-credentials\n")
    local cfg = assert(load({}, { profile = "p" }))
    assert.are.equal("from-credentials", cfg:region())
    assert.are.equal("text", cfg:get("output"))
    assert.matches("credentials:2$", cfg:origin_of("region"))
  end)

  it("orders endpoint URLs as the SDKs do", function()
    write(".aws/config", "[default]\nendpoint_url = http://profile-global\nservices = local\n" ..
      "[services local]\ncloudformation =\n  endpoint_url = http://services-cfn\n" ..
      "elastic_load_balancing_v2 =\n  endpoint_url = http://services-elb\n")
    local function url(env, service, flags)
      local cfg = assert(load(env, { flags = flags }))
      return cfg:endpoint_url(service)
    end
    assert.are.equal("http://services-cfn", url({}, "CloudFormation"))
    assert.are.equal("http://services-elb", url({}, "Elastic Load Balancing v2"))
    assert.are.equal("http://profile-global", url({}, "STS"))
    assert.are.equal("http://env-global", url({ AWS_ENDPOINT_URL = "http://env-global" }, "CloudFormation"))
    assert.are.equal("http://env-cfn", url({ AWS_ENDPOINT_URL = "http://env-global",
      AWS_ENDPOINT_URL_CLOUDFORMATION = "http://env-cfn" }, "CloudFormation"))
    assert.are.equal("http://env-oidc", url({ AWS_ENDPOINT_URL_SSO_OIDC = "http://env-oidc" }, "SSO OIDC"))
    assert.is_nil(url({ AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true", AWS_ENDPOINT_URL = "http://x" }, "CloudFormation"))
    assert.are.equal("http://flag", url({ AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true" }, "CloudFormation",
      { endpoint_url = "http://flag" }))
    write(".aws/config", "[default]\nendpoint_url = http://profile-global\nignore_configured_endpoint_urls = TRUE\n")
    assert.is_nil(url({}, "STS"))
    assert.are.equal("elastic_load_balancing_v2", awsconfig.service_key("Elastic Load Balancing v2"))
    assert.are.equal("sso_oidc", awsconfig.service_key("SSO-OIDC"))
  end)

  it("resolves endpoints from the embedded endpoints.json or a configured URL", function()
    write(".aws/config", "[default]\nregion = eu-west-1\n[profile legacy]\nregion = eu-west-1\n" ..
      "sts_regional_endpoints = legacy\n[profile fips]\nregion = us-east-1\nuse_fips_endpoint = true\n")
    local cfg = assert(load())
    local ep = assert(cfg:resolve_endpoint("cloudformation"))
    assert.are.same({ "https://cloudformation.eu-west-1.amazonaws.com", "eu-west-1", "cloudformation", false },
      { ep.url, ep.signing_region, ep.signing_name, ep.custom })
    ep = assert(cfg:resolve_endpoint("sts"))
    assert.are.equal("https://sts.eu-west-1.amazonaws.com", ep.url)
    ep = assert(assert(load({}, { profile = "legacy" })):resolve_endpoint("sts"))
    assert.are.same({ "https://sts.amazonaws.com", "us-east-1" }, { ep.url, ep.signing_region })
    ep = assert(assert(load({}, { profile = "fips" })):resolve_endpoint("cloudformation"))
    assert.are.equal("https://cloudformation-fips.us-east-1.amazonaws.com", ep.url)
    ep = assert(assert(load { AWS_ENDPOINT_URL = "http://localhost:4566" }):resolve_endpoint("s3"))
    assert.are.same({ "http://localhost:4566", "eu-west-1", "s3", true }, { ep.url, ep.signing_region, ep.signing_name, ep.custom })
    local none, err = assert(load { AWS_REGION = "eu-west-1/../evil" }):resolve_endpoint("s3")
    assert.is_nil(none)
    assert.matches("invalid region", err)
    none, err = assert(load { AWS_ENDPOINT_URL = "localhost:4566" }):resolve_endpoint("s3")
    assert.is_nil(none)
    assert.matches("invalid endpoint URL from env AWS_ENDPOINT_URL", err)
  end)

  it("reads retry settings, with the 2026 switch", function()
    write(".aws/config", "[default]\nretry_mode = adaptive\nmax_attempts = 7\n[profile bad]\nretry_mode = fast\n" ..
      "[profile badn]\nmax_attempts = lots\n")
    assert.are.same({ mode = "adaptive", max_attempts = 7, new_retries = false }, assert(load()):retry())
    assert.are.same({ mode = "legacy", max_attempts = 5, new_retries = true },
      assert(load { AWS_RETRY_MODE = "legacy", AWS_MAX_ATTEMPTS = "", AWS_NEW_RETRIES_2026 = "True",
        AWS_CONFIG_FILE = home .. "/none" }):retry())
    assert.are.same({ mode = "standard", max_attempts = 2, new_retries = false },
      assert(load { AWS_RETRY_MODE = "standard", AWS_MAX_ATTEMPTS = "2" }):retry())
    local cfg, err = load({}, { profile = "bad" })
    assert.is_nil(cfg)
    assert.matches('invalid value "fast" for retry_mode', err)
    cfg, err = load({}, { profile = "badn" })
    assert.is_nil(cfg)
    assert.matches("max_attempts .* expected an integer", err)
  end)

  it("finds the CA bundle and proxies for every AWS call", function()
    write(".aws/config", "[default]\nca_bundle = ~/corp.pem\n")
    local cfg = assert(load { HTTPS_PROXY = "http://upper:3128", https_proxy = "http://lower:3128", NO_PROXY = "169.254.169.254" })
    assert.are.equal(home .. "/corp.pem", cfg:ca_bundle())
    assert.are.same({ cainfo = home .. "/corp.pem", proxy = "http://lower:3128", noproxy = "169.254.169.254" },
      cfg:http_options("https://sts.amazonaws.com/"))
    assert.are.same({ proxy = false, noproxy = "169.254.169.254" }, cfg:http_options("http://169.254.169.254/"))
    cfg = assert(load { AWS_CA_BUNDLE = "/etc/env.pem" })
    assert.are.equal("/etc/env.pem", cfg:ca_bundle())
    assert.are.equal("/etc/flag.pem", assert(load({}, { flags = { ca_bundle = "/etc/flag.pem" } })):ca_bundle())
  end)

  it("converts booleans and integers and names the source", function()
    write(".aws/config", "[default]\nuse_fips_endpoint = TRUE\nmetadata_service_num_attempts = 3\ncustom = x\n")
    local cfg = assert(load { AWS_USE_DUALSTACK_ENDPOINT = "false" })
    assert.are.same({ true, "profile default (" .. home .. "/.aws/config:2)" }, { cfg:get("use_fips_endpoint") })
    assert.are.same({ false, "env AWS_USE_DUALSTACK_ENDPOINT" }, { cfg:get("use_dualstack_endpoint") })
    assert.are.equal(3, cfg:get("metadata_service_num_attempts"))
    assert.are.equal(1, cfg:get("metadata_service_timeout"))
    assert.are.equal("x", cfg:get("custom"))
    assert.is_nil(cfg:get("nothing"))
    assert.has_error(function() cfg:get(42) end)
    assert.has_error(function() awsconfig.load { profile = "" } end)
  end)
end)

-- ---------------------------------------------------------------------------
describe("lumu._awscore", function()
  it("splits command lines like shlex", function()
    assert.are.same({ "a", "b c", "d'e", "f\"g", "h\\i", "" }, core.shlex([[a "b c" 'd'"'"'e' f\"g "h\\i" '']]))
    assert.are.same({}, core.shlex("   "))
    local words, err = core.shlex("a 'unterminated")
    assert.is_nil(words)
    assert.matches("no closing quotation", err)
    assert.is_nil((core.shlex("trailing\\")))
  end)

  it("resolves endpoints from botocore's endpoints.json", function()
    local text = fs.read(ENDPOINTS_JSON)
    if not text then return end
    local r = assert(core.endpoints(text))
    local cases = {
      { { service = "cloudformation", region = "us-east-1" }, "cloudformation.us-east-1.amazonaws.com", "us-east-1" },
      { { service = "iam", region = "eu-west-1" }, "iam.amazonaws.com", "us-east-1" },
      { { service = "iam", region = "cn-north-1" }, "iam.cn-north-1.amazonaws.com.cn", "cn-north-1" },
      { { service = "iam", region = "us-gov-west-1" }, "iam.us-gov.amazonaws.com", "us-gov-west-1" },
      { { service = "route53", region = "ap-southeast-2" }, "route53.amazonaws.com", "us-east-1" },
      { { service = "route53" }, "route53.amazonaws.com", "us-east-1" },
      { { service = "organizations", region = "eu-central-1" }, "organizations.us-east-1.amazonaws.com", "us-east-1" },
      { { service = "cloudformation", region = "cn-northwest-1" }, "cloudformation.cn-northwest-1.amazonaws.com.cn",
        "cn-northwest-1" },
      { { service = "sts", region = "us-gov-east-1" }, "sts.us-gov-east-1.amazonaws.com", "us-gov-east-1" },
      { { service = "s3", region = "us-east-1", dualstack = true }, "s3.dualstack.us-east-1.amazonaws.com", "us-east-1" },
      { { service = "ec2", region = "eu-west-1", dualstack = true, fips = false }, "ec2.eu-west-1.api.aws", "eu-west-1" },
      { { service = "cloudformation", region = "xx-new-7" }, "cloudformation.xx-new-7.amazonaws.com", "xx-new-7" },
      { { service = "portal.sso", region = "eu-west-1" }, "portal.sso.eu-west-1.amazonaws.com", "eu-west-1" },
    }
    for _, c in ipairs(cases) do
      local ep = assert(r:resolve(c[1]))
      assert.are.equal(c[2], ep.hostname, json.encode(c[1]))
      assert.are.equal("https://" .. c[2], ep.url)
      assert.are.equal(c[3], ep.signing_region, json.encode(c[1]))
    end
    assert.are.equal("aws-cn", r:partition("cn-north-1"))
    assert.is_nil(r:partition("mars-1"))
    -- botocore skips the iso partitions for dual-stack, then forces "aws"
    assert.are.equal("cloudformation.us-iso-east-1.api.aws",
      assert(r:resolve { service = "cloudformation", region = "us-iso-east-1", dualstack = true }).hostname)
    assert.are.equal("s3-fips.dualstack.us-east-1.amazonaws.com",
      assert(r:resolve { service = "s3", region = "us-east-1", dualstack = true, fips = true }).hostname)
    local small = assert(core.endpoints(json.encode { version = 3, partitions = { {
      partition = "p", dnsSuffix = "example.com", regionRegex = "^xx\\-\\w+\\-\\d+$", regions = {},
      defaults = { hostname = "{service}.{region}.{dnsSuffix}", protocols = { "https" } },
      services = { svc = { endpoints = { ["xx-a-1"] = {} } } } } } }))
    assert.are.equal("https://svc.xx-b-2.example.com", assert(small:resolve { service = "svc", region = "xx-b-2" }).url)
    local none, err = small:resolve { service = "svc", region = "xx-a-1", fips = true }
    assert.is_nil(none)
    assert.matches("no FIPS endpoint for svc in region xx-a-1", err, 1, true)
    none, err = r:resolve { service = "cloudformation" }
    assert.is_nil(none)
    assert.matches("no region", err)
    assert.has_error(function() r:resolve {} end)
  end)

  it("rejects documents that are not endpoints.json", function()
    local r, err = core.endpoints("{not json")
    assert.is_nil(r)
    assert.matches("^endpoints: 1:", err)
    r, err = core.endpoints('{"partitions": []}')
    assert.is_nil(r)
    assert.matches("not a partitions document", err)
  end)

  it("builds S3 bucket URLs, path-style on custom endpoints", function()
    assert.are.same({ "https://my-bucket.s3.eu-west-1.amazonaws.com/", false },
      { core.s3_bucket_url("https://s3.eu-west-1.amazonaws.com", "my-bucket") })
    assert.are.same({ "http://localhost:4566/my-bucket/", true },
      { core.s3_bucket_url("http://localhost:4566", "my-bucket", "auto", true) })
    assert.are.same({ "https://s3.amazonaws.com/my.dotted.bucket/", true },
      { core.s3_bucket_url("https://s3.amazonaws.com", "my.dotted.bucket") })
    assert.are.same({ "https://s3.amazonaws.com/Upper_Case/", true },
      { core.s3_bucket_url("https://s3.amazonaws.com", "Upper_Case") })
    local none, err = core.s3_bucket_url("https://s3.amazonaws.com", "Upper_Case", "virtual")
    assert.is_nil(none)
    assert.matches("virtual%-hosted", err)
  end)

  it("runs the standard retry policy", function()
    local p = core.retry_policy { service = "cloudformation" }
    assert.are.equal("standard", p:mode())
    assert.are.equal(3, p:max_attempts())
    assert.are.same({ "throttling", false }, { p:classify { status = 400, code = "Throttling" } })
    assert.are.same({ "transient", true }, { p:classify { transport = "timeout" } })
    assert.are.same({ "none", false }, { p:classify { status = 400, code = "ValidationError" } })
    local tok = {}
    local d = p:decide(tok, { status = 503, random = 0.5 })
    assert.are.same({ retry = true, delay = 0.5, class = "transient", timeout = false, reason = "retry", cost = 5 }, d)
    d = p:decide(tok, { status = 503, random = 0.5 })
    assert.are.equal(1.0, d.delay)
    assert.are.equal(490, p:quota())
    d = p:decide(tok, { status = 503, random = 0.5 })
    assert.are.same({ false, "max_attempts" }, { d.retry, d.reason })
    p:success(tok)
    assert.are.equal(495, p:quota())
    assert.are.equal(20, p:backoff("throttling", 10, 0.999999999))
    assert.matches("^<retry policy standard, 3 attempts", tostring(p))
    assert.has_error(function() core.retry_policy { mode = "fast" } end)
    assert.has_error(function() core.retry_policy { max_attempts = 0 } end)
    assert.has_error(function() p:decide(tok, { transport = "carrier-pigeon" }) end)
  end)

  it("applies the 2026 retry defaults", function()
    local p = core.retry_policy { new_retries = true }
    local d = p:decide({}, { status = 500, random = 1 - 1e-12, retry_after = "1500" })
    assert.are.equal(14, d.cost)
    assert.are.near(1.5, d.delay, 1e-9)
    d = p:decide({}, { status = 400, code = "ThrottlingException", random = 0.5 })
    assert.are.same({ 5, 0.5 }, { d.cost, d.delay })
    local ddb = core.retry_policy { new_retries = true, service = "dynamodb" }
    assert.are.equal(4, ddb:max_attempts())
    assert.are.near(0.025, ddb:backoff("transient", 1, 1), 1e-12)
  end)

  it("signs requests (AWS SigV4 test suite get-vanilla)", function()
    local req = { method = "GET", url = "https://example.amazonaws.com/", headers = {} }
    local creds = { access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    region = "us-east-1", service = "service", time = 1440938160 }
    local headers, details = core.sign(req, creds)
    assert.are.equal("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, " ..
      "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
      headers.Authorization)
    assert.are.equal("20150830T123600Z", headers["X-Amz-Date"])
    assert.matches("^GET\n/\n\nhost:example.amazonaws.com\n", details.canonical_request)
    creds.session_token = "TOKEN-CANARY-0123456789"
    headers = core.sign({ method = "POST", url = "https://example.amazonaws.com:8443/a?b=1", body = "x",
                          headers = { ["Content-Length"] = 1 } }, creds)
    assert.are.equal("TOKEN-CANARY-0123456789", headers["X-Amz-Security-Token"])
    local q = core.sign({ method = "GET", url = "https://example.amazonaws.com/", unsigned = true },
      { access_key = "AKIDEXAMPLE", secret_key = "s3cr3t-s3cr3t", region = "us-east-1", service = "s3",
        s3 = true, time = 1440938160, expires = 300 })
    assert.matches("X%-Amz%-Expires=300", q)
    assert.matches("X%-Amz%-Signature=%x+$", q)
  end)

  it("raises sign misuse without showing secrets", function()
    local base = { access_key = "AKIDEXAMPLE", secret_key = "SECRET-CANARY-0123456789", region = "us-east-1",
                   service = "s", time = 1440938160 }
    local bad = {
      { { method = "GET", url = "example.com/" }, base, "absolute" },
      { { method = "GET", url = "https://x/" }, { access_key = "A", secret_key = "SECRET-CANARY-0123456789",
        service = "s", time = 1 }, "'region' is required" },
      { { method = "GET", url = "https://x/" }, { access_key = "A", secret_key = "SECRET-CANARY-0123456789",
        region = "r", service = "s" }, "'time'" },
      { { method = "GET", url = "https://x/", headers = { ["Bad Name"] = "v" } }, base, "invalid name" },
      { { method = "GET", url = "https://x/", headers = { ok = {} } }, base, "must be a string" },
    }
    for _, b in ipairs(bad) do
      local ok, err = pcall(core.sign, b[1], b[2])
      assert.is_false(ok)
      assert.matches(b[3], tostring(err), 1, true)
      assert.is_nil(tostring(err):find("SECRET-CANARY", 1, true))
    end
  end)
  local bin = os.getenv("LUMU_BIN")
  local it_bin = bin and it or function(name) pending(name .. " (needs LUMU_BIN; run through ctest)") end
  it_bin("survives allocation failures in every binding", function()
    local script = home .. "/oom.lua"
    assert(fs.write(script, [==[
local core = require "lumu._awscore"
local host = require "lumu._host"
io.write("base=", host.memstats().total, "\n")
local ok, r = pcall(function()
  assert(core.parse_config("[DEFAULT]\nd = 1\n[default]\nregion = x\ns3 =\n  a = b\n[profile p]\nk = v\n  more\n", "f"))
  assert(core.shlex("a 'b c' d"))
  core.sign({ method = "GET", url = "https://x.amazonaws.com/a?b=1", headers = { ["X-A"] = 1 } },
    { access_key = "AK", secret_key = "SECRETSECRET", session_token = "tok", region = "us-east-1",
      service = "s", time = 1440938160 })
  local r = assert(core.endpoints('{"partitions":[{"partition":"p","dnsSuffix":"d","regions":{},' ..
    '"regionRegex":"^x\\\\-\\\\w+$","defaults":{"hostname":"{service}.{region}.{dnsSuffix}",' ..
    '"protocols":["https"]},"services":{}}]}'))
  assert(r:resolve { service = "s", region = "x-a" })
  local p = core.retry_policy { mode = "adaptive" }
  p:decide({}, { status = 503 }, 1)
  return "parsed"
end)
io.write(ok and r or ("raised: " .. tostring(r)), "\n")
]==]))
    local function run(n)
      local p = assert(io.popen(string.format("LUMU_TRACK_ALLOC=1 LUMU_FAIL_ALLOC=%d %s %s 2>&1; echo rc=$?", n, bin, script)))
      local out = p:read("a")
      p:close()
      return out
    end
    local first = run(0)
    local base = tonumber(first:match("base=(%d+)"))
    assert.matches("parsed", first)
    local outcomes = {}
    for n = base + 1, base + 160, 2 do
      local out = run(n)
      assert.is_nil(out:find("leak", 1, true), out)
      local rc = tonumber(out:match("rc=(%d+)"))
      assert.is_true(rc == 0 or rc == 1 or rc == 3, out)
      local what = out:match("\n(%a+)")
      if what then outcomes[what] = true end
    end
    assert.is_true(outcomes.raised or false)
  end)
end)
