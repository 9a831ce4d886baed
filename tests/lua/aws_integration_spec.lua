-- Integration specs of lumu.aws over real HTTP: a local endpoint
-- (tests/support/awsrecorder.py, 127.0.0.1 only) verifies the SigV4 signature
-- of every request with botocore.auth and answers from recorded AWS
-- responses.  Drives DescribeStacks, ListStacks pagination (3 pages), the
-- StackCreateComplete waiter, throttled / 500 retries, retry-quota
-- exhaustion, concurrent calls in lumu.async tasks over the keep-alive pool,
-- STS through AWS_ENDPOINT_URL, and `lumu aws` from the command line.
local aws = require "lumu.aws"
local async = require "lumu.async"
local fs = require "lumu.fs"
local http = require "lumu.http"
local json = require "lumu.json"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local RECORDER = HERE .. "/../support/awsrecorder.py"
local AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local NOPROXY = "unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY no_proxy NO_PROXY; "

local function lumu_bin()
  local bin = os.getenv("LUMU_BIN")
  if bin and bin ~= "" then return bin end
  local p = io.popen("readlink /proc/$PPID/exe 2>/dev/null")
  bin = p:read("l")
  p:close()
  return bin
end

describe("lumu.aws against a signature-verifying endpoint", function()
  local srv, base, checked, bad_expected, tmp

  local function control(path, doc)
    local res = assert(http.request { url = base .. path, method = doc and "POST" or "GET",
      body = doc and json.encode(doc) or nil, proxy = false, timeout = 10 })
    assert.are.equal(200, res.status, res.body)
    return json.decode(res.body)
  end

  local function script(doc) control("/__script", doc) end

  local function log_since()
    local all = control("/__log")
    local new = {}
    for i = checked + 1, #all do new[#new + 1] = all[i] end
    return new, all
  end

  local function cfn(extra)
    local o = { region = "us-east-1", endpoint_url = base, credentials = { access_key_id = AK, secret_access_key = SK },
                env = {}, retry = { max_backoff = 0.05 } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(aws.client("cloudformation", o))
  end

  setup(function()
    local f = assert(io.popen("exec python3 " .. RECORDER .. " --idle 120", "r"))
    local port = (f:read("l") or ""):match("^PORT (%d+)$")
    local pid = (f:read("l") or ""):match("^PID (%d+)$")
    assert(port and pid, "the recorder did not start (python3 with botocore needed)")
    srv = { f = f, pid = pid }
    base = "http://127.0.0.1:" .. port
    checked, bad_expected = 0, 0
    tmp = assert(fs.tmpdir("lumu-awsint-"))
  end)

  teardown(function()
    if srv then
      local ok = pcall(control, "/__shutdown")
      if not ok then os.execute("kill " .. srv.pid .. " 2>/dev/null") end
      srv.f:close()
    end
    if tmp then fs.rmtree(tmp) end
  end)

  after_each(function()
    local new, all = log_since()
    checked = #all
    local bad = 0
    for _, e in ipairs(new) do
      if not e.signature_ok then bad = bad + 1 end
      assert.is_true(e.signed or e.operation == "AssumeRoleWithWebIdentity", "unsigned request " .. e.operation)
    end
    assert.are.equal(bad_expected, bad, "requests with a bad signature")
    bad_expected = 0
  end)

  it("calls DescribeStacks and returns typed results", function()
    script { ["cloudformation.DescribeStacks"] = { "stack_create_complete" } }
    local r = assert(cfn():DescribeStacks{ StackName = "web" })
    local st = r.Stacks[1]
    assert.are.equal("web", st.StackName)
    assert.are.equal("CREATE_COMPLETE", st.StackStatus)
    assert.are.equal(1687256130.123, st.CreationTime)
    assert.is_false(st.DisableRollback)
    assert.are.same({ "CAPABILITY_IAM" }, st.Capabilities)
    assert.are.equal("prod", st.Parameters[1].ParameterValue)
    local new = log_since()
    assert.are.equal(1, #new)
    assert.are.equal("DescribeStacks", new[1].operation)
    assert.are.equal("us-east-1", new[1].region)
    assert.matches("StackName=web", new[1].body)
  end)

  it("returns the service error as an error object", function()
    script { ["cloudformation.DescribeStacks"] = { "stack_does_not_exist" } }
    local r, err = cfn():DescribeStacks{ StackName = "x" }
    assert.is_nil(r)
    assert.are.equal("ValidationError", err.code)
    assert.are.equal(400, err.status)
    assert.are.equal("cloudformation DescribeStacks: ValidationError: Stack with id x does not exist " ..
      "(HTTP 400, request id e7a1c3d5-9b2f-4e6a-8c0d-1f3b5d7f9a2c)", tostring(err))
  end)

  it("is rejected with a wrong secret (the endpoint does verify)", function()
    script { ["cloudformation.DescribeStacks"] = { "stack_create_complete" } }
    bad_expected = 1
    local _, err = cfn { credentials = { access_key_id = AK, secret_access_key = "not-the-secret" } }:DescribeStacks{}
    assert.are.equal("SignatureDoesNotMatch", err.code)
    assert.are.equal(403, err.status)
  end)

  it("paginates ListStacks over 3 pages", function()
    script { ["cloudformation.ListStacks"] = { "list_stacks_page1", "list_stacks_page2", "list_stacks_page3" } }
    local names, pages = {}, 0
    for page in cfn():paginate("ListStacks", { StackStatusFilter = { "CREATE_COMPLETE" } }) do
      pages = pages + 1
      for _, s in ipairs(page.StackSummaries) do names[#names + 1] = s.StackName end
    end
    assert.are.equal(3, pages)
    assert.are.same({ "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7" }, names)
    local new = log_since()
    assert.are.equal(3, #new)
    assert.is_nil(new[1].body:match("NextToken"))
    assert.matches("NextToken=token%-page%-2", new[2].body)
    assert.matches("NextToken=token%-page%-3", new[3].body)
  end)

  it("waits for StackCreateComplete (in progress twice, then complete)", function()
    script { ["cloudformation.DescribeStacks"] = { "stack_create_in_progress", "stack_create_in_progress",
      "stack_create_complete" } }
    local t0 = async.now()
    local r = assert(cfn():wait("StackCreateComplete", { StackName = "web" }, { delay = 0.05 }))
    assert.are.equal("CREATE_COMPLETE", r.Stacks[1].StackStatus)
    assert.is_true(async.now() - t0 >= 0.1)
    assert.are.equal(3, #log_since())
  end)

  it("reports a waiter failure state", function()
    script { ["cloudformation.DescribeStacks"] = { "stack_create_in_progress", "stack_rollback_complete" } }
    local r, err = cfn():wait("StackCreateComplete", { StackName = "web" }, { delay = 0.01 })
    assert.is_nil(r)
    assert.are.equal("WaiterFailure", err.code)
    assert.matches("^cloudformation DescribeStacks: WaiterFailure: waiter StackCreateComplete", tostring(err))
  end)

  it("retries a throttled call, then succeeds", function()
    script { ["cloudformation.DescribeStacks"] = { "throttling", "stack_create_complete" } }
    local r = assert(cfn():DescribeStacks{ StackName = "web" })
    assert.are.equal("CREATE_COMPLETE", r.Stacks[1].StackStatus)
    local new = log_since()
    assert.are.equal(2, #new)
    assert.are.equal(new[1].body, new[2].body)
    assert.is_true(new[1].signature_ok and new[2].signature_ok)
  end)

  it("retries a 500, then succeeds", function()
    script { ["cloudformation.DescribeStacks"] = { "internal_failure", "service_unavailable_html", "stack_create_complete" } }
    assert(cfn():DescribeStacks{ StackName = "web" })
    assert.are.equal(3, #log_since())
  end)

  it("stops retrying when the retry quota is exhausted", function()
    script { ["cloudformation.DescribeStacks"] = { "internal_failure" } }
    local c = cfn { retry = { max_attempts = 60, max_backoff = 0.0001 } }
    local _, e1 = c:DescribeStacks{}
    assert.are.equal("max_attempts", e1.reason)
    assert.are.equal(60, e1.attempts)
    local _, e2 = c:DescribeStacks{}
    assert.are.equal("quota", e2.reason)
    assert.is_true(e2.attempts > 1 and e2.attempts < 60)
    local _, e3 = c:DescribeStacks{}
    assert.are.equal("quota", e3.reason)
    assert.are.equal(1, e3.attempts)
    assert.are.equal("InternalFailure", e3.code)
    assert.is_true(e3.retryable)
    assert.are.equal(60 + e2.attempts + 1, #log_since())
  end)

  it("runs calls in several async tasks concurrently over the keep-alive pool", function()
    script { ["cloudformation.DescribeStacks"] = { { recorded = "stack_create_complete", delay_ms = 400 } } }
    local c = cfn()
    local function round()
      local t0 = async.now()
      local results = async.run(function()
        return async.map({ 1, 2, 3, 4, 5 }, function() return assert(c:DescribeStacks{ StackName = "web" }) end)
      end)
      for _, r in ipairs(results) do assert.are.equal("web", r.Stacks[1].StackName) end
      return async.now() - t0
    end
    local before = control("/__stats").connections
    local first = round()
    local after_first = control("/__stats").connections
    local second = round()
    local after_second = control("/__stats").connections
    assert.is_true(first < 1.2, "5 calls of 400 ms took " .. first .. " s")
    assert.is_true(second < 1.2, "5 calls of 400 ms took " .. second .. " s")
    assert.is_true(after_first - before <= 5)
    assert.are.equal(after_first, after_second, "the second round reused the connections")
    assert.are.equal(10, #log_since())
  end)

  it("calls STS GetCallerIdentity through AWS_ENDPOINT_URL with environment credentials", function()
    script { ["sts.GetCallerIdentity"] = { "get_caller_identity" } }
    local sts = assert(aws.sts { env = { AWS_ENDPOINT_URL = base, AWS_ACCESS_KEY_ID = AK, AWS_SECRET_ACCESS_KEY = SK,
      AWS_CONFIG_FILE = tmp .. "/none", AWS_SHARED_CREDENTIALS_FILE = tmp .. "/none", HOME = tmp } })
    local r = assert(sts:GetCallerIdentity{})
    assert.are.equal("123456789012", r.Account)
    local new = log_since()
    assert.are.equal("sts", new[1].service)
    assert.are.equal("us-east-1", new[1].region)
  end)

  it("assumes a role through the credential chain, then signs with the session token", function()
    script { ["sts.AssumeRole"] = { "assume_role" }, ["cloudformation.DescribeStacks"] = { "stack_create_complete" } }
    fs.write(tmp .. "/config", "[profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/deploy\n" ..
      "source_profile = base\nregion = us-east-1\n")
    fs.write(tmp .. "/credentials", "[base]\naws_access_key_id = " .. AK .. "\naws_secret_access_key = " .. SK .. "\n")
    local c = assert(aws.client("cloudformation", { profile = "deploy", env = { AWS_ENDPOINT_URL = base,
      AWS_CONFIG_FILE = tmp .. "/config", AWS_SHARED_CREDENTIALS_FILE = tmp .. "/credentials", HOME = tmp } }))
    assert(c:DescribeStacks{ StackName = "web" })
    assert(c:DescribeStacks{ StackName = "web" })
    local new = log_since()
    assert.are.equal(3, #new)
    assert.are.equal("AssumeRole", new[1].operation)
    assert.are.equal(AK, new[1].access_key)
    assert.matches("RoleArn=arn%%3Aaws%%3Aiam%%3A%%3A123456789012%%3Arole%%2Fdeploy", new[1].body)
    for i = 2, 3 do
      assert.are.equal("ASIATEMPEXAMPLE00001", new[i].access_key)
      assert.are.equal("FwoGZXIvYXdzEXAMPLEsessiontoken//////////", new[i].token)
    end
  end)

  describe("lumu aws", function()
    local function run(args, env)
      local bin = assert(lumu_bin(), "cannot find the lumu binary")
      local registered = require("lumu.cli").commands.aws ~= nil
      local cmd
      if registered then
        cmd = string.format("%q aws %s", bin, args)
      else -- until lumu.cli registers the command
        local wrapper = tmp .. "/aws-cli.lua"
        fs.write(wrapper, 'local cli = require "lumu.cli"\ncli.register("aws", "lumu.cli.aws")\n' ..
          'local argv = { [0] = "lumu", "aws", ... }\nos.exit(cli.main(argv))\n')
        cmd = string.format("%q %q %s", bin, wrapper, args)
      end
      local full = string.format(NOPROXY .. "env -i PATH=\"$PATH\" HOME=%q AWS_ACCESS_KEY_ID=%s " ..
        "AWS_SECRET_ACCESS_KEY=%q AWS_REGION=us-east-1 AWS_CONFIG_FILE=/nonexistent " ..
        "AWS_SHARED_CREDENTIALS_FILE=/nonexistent %s %s 2>%q; echo \"rc=$?\"", tmp, AK, SK,
        env or "", cmd, tmp .. "/stderr")
      local p = io.popen(full)
      local out = p:read("a")
      p:close()
      local rc = tonumber(out:match("rc=(%d+)\n$"))
      return out:gsub("rc=%d+\n$", ""), rc, fs.read(tmp .. "/stderr") or ""
    end

    it("describe-stacks prints the result as JSON", function()
      script { ["cloudformation.DescribeStacks"] = { "stack_create_complete" } }
      local out, rc, err = run("cloudformation describe-stacks --endpoint-url " .. base ..
        " --json-args '{\"StackName\": \"web\"}'")
      assert.are.equal(0, rc, err)
      local doc = assert(json.decode(out))
      assert.are.equal("CREATE_COMPLETE", doc.Stacks[1].StackStatus)
      assert.are.equal("2023-06-20T10:15:30.123000Z", doc.Stacks[1].CreationTime)
      assert.matches("StackName=web", log_since()[1].body)
    end)

    it("prints an AWS error on one line and exits 1", function()
      script { ["cloudformation.DescribeStacks"] = { "stack_does_not_exist" } }
      local out, rc, err = run("cloudformation describe-stacks --json-args '{\"StackName\":\"x\"}'",
        "AWS_ENDPOINT_URL_CLOUDFORMATION=" .. base)
      assert.are.equal(1, rc)
      assert.are.equal("", out)
      assert.are.equal("lumu: cloudformation DescribeStacks: ValidationError: Stack with id x does not exist " ..
        "(HTTP 400, request id e7a1c3d5-9b2f-4e6a-8c0d-1f3b5d7f9a2c)\n", err)
    end)

    it("exits 1, not 2, when a known service's model does not load", function()
      local dir = tmp .. "/badmodels/sqs/2012-11-05"
      assert(fs.mkdir(dir))
      assert(fs.write(dir .. "/service-2.json", "{broken"))
      local out, rc, err = run("sqs list-queues", "LUMU_MODELS_DIR=" .. tmp .. "/badmodels")
      assert.are.equal(1, rc, err)
      assert.are.equal("", out)
      assert.matches("^lumu: aws: service sqs: .*service%-2%.json: invalid JSON", err)
      assert.are.equal(0, #log_since())
    end)

    it("exits 2 with a suggestion for unknown operations and parameters", function()
      local _, rc, err = run("cloudformation describe-stack")
      assert.are.equal(2, rc)
      assert.matches("did you mean 'describe%-stacks'", err)
      _, rc, err = run("cloudformaton list-stacks")
      assert.are.equal(2, rc)
      assert.matches("did you mean 'cloudformation'", err)
      _, rc, err = run("cloudformation describe-stacks --json-args '{\"StackNme\":\"x\"}'")
      assert.are.equal(2, rc)
      assert.matches("StackNme: unknown parameter %(did you mean 'StackName'%?%)", err)
      _, rc, err = run("cloudformation describe-stacks --json-args '[1'")
      assert.are.equal(2, rc)
      assert.matches("invalid JSON", err)
      assert.are.equal(0, #log_since())
    end)

    it("lists operations and services", function()
      local out, rc = run("cloudformation")
      assert.are.equal(0, rc)
      assert.matches("\ndescribe%-stacks\n", out)
      out, rc = run("")
      assert.are.equal(0, rc)
      assert.matches("\ncloudformation\n", out)
    end)
  end)
end)
