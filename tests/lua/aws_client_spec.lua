-- Unit specs of lumu.aws and its C core lumu._aws: Lua <-> model conversions,
-- serialisation per protocol, response and error parsing, the JMESPath
-- subset of the waiters and paginators, the client (retries, pagination,
-- waiters, endpoints, credentials refresh) over a stub transport, misuse
-- errors and the secret canary.  No network: the HTTP layer is injected.
local _aws = require "lumu._aws"
local aws = require "lumu.aws"
local awsconfig = require "lumu.aws.config"
local credentials = require "lumu.aws.credentials"
local fs = require "lumu.fs"
local http = require "lumu.http"
local jmespath = require "lumu.aws.jmespath"
local json = require "lumu.json"

local AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local CREDS = { access_key_id = AK, secret_access_key = SK }
local CFN_NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

local function describe_body(status)
  return '<DescribeStacksResponse xmlns="' .. CFN_NS .. '"><DescribeStacksResult><Stacks><member>' ..
    "<StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/web/1</StackId><StackName>web</StackName>" ..
    "<CreationTime>2023-06-20T10:15:30Z</CreationTime><StackStatus>" .. status .. "</StackStatus>" ..
    "</member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>rid-1</RequestId>" ..
    "</ResponseMetadata></DescribeStacksResponse>"
end

local function query_error(code, msg)
  return '<ErrorResponse xmlns="' .. CFN_NS .. '"><Error><Type>Sender</Type><Code>' .. code ..
    "</Code><Message>" .. msg .. "</Message></Error><RequestId>req-42</RequestId></ErrorResponse>"
end

local function list_page(names, token)
  local items = {}
  for _, n in ipairs(names) do
    items[#items + 1] = "<member><StackId>id-" .. n .. "</StackId><StackName>" .. n ..
      "</StackName><CreationTime>2023-06-01T00:00:00Z</CreationTime><StackStatus>CREATE_COMPLETE" ..
      "</StackStatus></member>"
  end
  return '<ListStacksResponse xmlns="' .. CFN_NS .. '"><ListStacksResult><StackSummaries>' ..
    table.concat(items) .. "</StackSummaries>" .. (token and ("<NextToken>" .. token .. "</NextToken>") or "") ..
    "</ListStacksResult></ListStacksResponse>"
end

-- A transport that answers from a list of responses (the last one repeats)
-- and records every request.
local function stub(responses)
  local s = { requests = {}, sleeps = {} }
  s.http = function(req)
    s.requests[#s.requests + 1] = req
    local r = responses[math.min(#s.requests, #responses)]
    if type(r) == "function" then r = r(req) end
    if r.transport then
      return nil, setmetatable({ kind = r.transport, message = "simulated " .. r.transport }, http.Error)
    end
    return { status = r.status or 200, headers = r.headers or {}, body = r.body or "" }
  end
  s.sleep = function(d) s.sleeps[#s.sleeps + 1] = d end
  return s
end

local function client(service, s, extra)
  local o = { region = "us-east-1", credentials = CREDS, env = {}, http = s and s.http,
              sleep = s and s.sleep }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(aws.client(service, o))
end

local function body_params(body)
  local t = {}
  for k, v in body:gmatch("([^&=]+)=([^&]*)") do t[k] = v end
  return t
end

describe("lumu._aws", function()
  describe("models", function()
    it("embeds the 28 services", function()
      local s = _aws.services()
      assert.are.equal(28, #s)
      for _, name in ipairs { "cloudformation", "s3", "sts", "elbv2", "sso-oidc", "ec2", "dynamodb" } do
        local found = false
        for _, x in ipairs(s) do found = found or x == name end
        assert.is_true(found, name)
      end
    end)

    it("describes a model", function()
      local m = _aws.model("elbv2")
      assert.are.equal("query", m.protocol)
      assert.are.equal("elasticloadbalancing", m.endpoint_prefix)
      assert.are.equal("Elastic Load Balancing v2", m.service_id)
      assert.are.equal("rest-xml", _aws.model("s3").protocol)
      assert.are.equal("1.0", _aws.model("dynamodb").json_version)
    end)

    it("suggests a service name", function()
      local m, err, sug = _aws.model("cloudformaton")
      assert.is_nil(m)
      assert.are.equal("cloudformation", sug)
      assert.matches("did you mean 'cloudformation'", err)
      assert.is_nil(select(3, _aws.model("zzzzzzzzzzzzzzzzzz")))
      assert.has_error(function() _aws.operations("nope-nope") end)
    end)

    it("finds operations in any spelling", function()
      for _, n in ipairs { "DescribeStacks", "describe_stacks", "describe-stacks", "DESCRIBESTACKS" } do
        assert.are.equal("DescribeStacks", _aws.operation("cloudformation", n).name)
      end
      local op = _aws.operation("cloudformation", "CreateStack")
      assert.are.same({ "StackName" }, op.required)
      assert.are.equal("CreateStackInput", op.input)
      local none, err, sug = _aws.operation("cloudformation", "DescribeStack")
      assert.is_nil(none)
      assert.are.equal("DescribeStacks", sug)
      assert.matches("did you mean 'DescribeStacks'", err)
      assert.are.same({ "ClientToken" }, _aws.operation("ec2", "RunInstances").tokens)
      assert.is_true(#_aws.operations("s3") > 50)
    end)

    it("lists waiters and paginators", function()
      assert.are.same({ "ChangeSetCreateComplete", "StackCreateComplete", "StackDeleteComplete", "StackExists",
        "StackImportComplete", "StackRollbackComplete", "StackUpdateComplete", "TypeRegistrationComplete" },
        _aws.waiters("cloudformation"))
      local w = _aws.waiter("cloudformation", "stack_create_complete")
      assert.are.equal("DescribeStacks", w.operation)
      local _, err, sug = _aws.waiter("cloudformation", "StackCreateCompleted")
      assert.are.equal("StackCreateComplete", sug)
      assert.matches("did you mean", err)
      assert.are.same({ input_token = "NextToken", output_token = "NextToken", result_key = "StackSummaries" },
        _aws.paginator("cloudformation", "ListStacks"))
      assert.is_nil(_aws.paginator("cloudformation", "CreateStack"))
      assert.are.same({}, _aws.waiters("sso"))
    end)
  end)

  describe("conversions", function()
    it("keeps integers integers and floats floats", function()
      local t = _aws.from_json("dynamodb", "ConsumedCapacity", '{"CapacityUnits": 2, "ReadCapacityUnits": 1.5}')
      assert.are.equal(2, t.CapacityUnits) -- a double shape: JSON said 2
      assert.are.equal("float", math.type(t.ReadCapacityUnits))
      local text = _aws.to_json("ecs", "RunTaskRequest", { taskDefinition = "t", count = 3.0 })
      assert.are.equal('{"count":3,"taskDefinition":"t"}', text) -- model order, whatever the table's
      local _, err = _aws.to_json("ecs", "RunTaskRequest", { taskDefinition = "t", count = 2.5 })
      assert.matches("count: expected an integer, got number", err)
    end)

    it("turns timestamps into epoch seconds, both ways", function()
      local v = _aws.from_json("cloudformation", "Stack", '{"CreationTime": 1687256130.5, "StackName": "x"}')
      assert.are.equal(1687256130.5, v.CreationTime)
      local iso = _aws.from_json("cloudformation", "Stack", '{"CreationTime": 1687256130}', { iso_timestamps = true })
      assert.are.equal("2023-06-20T10:15:30Z", iso.CreationTime)
      local r = _aws.serialize("cloudformation", "ListStacks", {}, {})
      assert.is_truthy(r)
      local ok = _aws.to_json("cloudwatch", "GetMetricStatisticsInput", {
        Namespace = "n", MetricName = "m", StartTime = "2023-06-20T10:15:30Z", EndTime = 1687256130,
        Period = 60 })
      assert.matches('"StartTime":"2023%-06%-20T10:15:30Z"', ok)
      assert.matches('"EndTime":1687256130', ok)
      local _, err = _aws.to_json("cloudwatch", "GetMetricStatisticsInput", {
        Namespace = "n", MetricName = "m", StartTime = "yesterday", EndTime = 0, Period = 60 })
      assert.matches("StartTime: invalid timestamp", err)
    end)

    it("passes blobs as raw bytes, or base64 on request", function()
      local bytes = "\0\1\255binary\128"
      local req = assert(_aws.serialize("kms", "Decrypt", { CiphertextBlob = bytes }, { host = "kms" }))
      local sent = json.decode(req.body)
      assert.are.equal("AAH/YmluYXJ5gA==", sent.CiphertextBlob)
      local req2 = assert(_aws.serialize("kms", "Decrypt", { CiphertextBlob = "AAH/YmluYXJ5gA==" },
        { host = "kms", base64_blobs = true }))
      assert.are.equal(req.body, req2.body)
      local out = _aws.parse("kms", "Decrypt", 200, {}, '{"Plaintext":"AAH/YmluYXJ5gA==","KeyId":"k"}')
      assert.are.equal(bytes, out.Plaintext)
      local out64 = _aws.parse("kms", "Decrypt", 200, {}, '{"Plaintext":"AAH/YmluYXJ5gA=="}', { base64_blobs = true })
      assert.are.equal("AAH/YmluYXJ5gA==", out64.Plaintext)
      local _, err = _aws.serialize("kms", "Decrypt", { CiphertextBlob = "!!" }, { base64_blobs = true })
      assert.matches("invalid base64", err)
    end)

    it("marks lists and structures for lumu.json", function()
      local v = _aws.parse("cloudformation", "DescribeStacks", 200, {},
        '<DescribeStacksResponse><DescribeStacksResult><Stacks/></DescribeStacksResult></DescribeStacksResponse>')
      assert.are.equal("array", json.kind(v.Stacks))
      assert.are.equal('{"Stacks":[]}', json.encode(v))
      assert.are.equal("object", json.kind(_aws.parse("sts", "GetCallerIdentity", 200, {},
        "<GetCallerIdentityResponse><GetCallerIdentityResult/></GetCallerIdentityResponse>")))
    end)

    it("checks types against the shape with the parameter path", function()
      local cases = {
        { { StackName = 1 }, "CreateStack: StackName: expected a string, got integer" },
        { { StackName = "s", Parameters = { { ParameterKey = true } } },
          "CreateStack: Parameters%[1%]%.ParameterKey: expected a string, got boolean" },
        { { StackName = "s", Parameters = { x = 1 } }, "Parameters: expected a list" },
        { { StackName = "s", Parameters = { [1] = {}, [3] = {} } }, "Parameters: expected a list" },
        { { StackName = "s", DisableRollback = "yes" }, "DisableRollback: expected a boolean, got string" },
        { { StackName = "s", TimeoutInMinutes = "5" }, "TimeoutInMinutes: expected an integer" },
        { { StackName = "s", Tags = "k=v" }, "Tags: expected a list, got string" },
        { { StackName = "s", Parameters = { "x" } }, "Parameters%[1%]: expected a table" },
        { { StackName = "s\255" }, "StackName: invalid UTF%-8" },
        { {}, "missing required parameter 'StackName'" },
        { { StackName = "s", [1] = "x" }, "expected a table of CreateStackInput parameters" },
      }
      for _, c in ipairs(cases) do
        local r, err = _aws.serialize("cloudformation", "CreateStack", c[1], {})
        assert.is_nil(r)
        assert.matches(c[2], err)
      end
    end)

    it("suggests parameter names", function()
      local _, err = _aws.serialize("cloudformation", "DescribeStacks", { StackNme = "x" }, {})
      assert.are.equal("DescribeStacks: StackNme: unknown parameter (did you mean 'StackName'?)", err)
      _, err = _aws.serialize("cloudformation", "DescribeStacks", { stackname = "x" }, {})
      assert.matches("did you mean 'StackName'", err)
      _, err = _aws.serialize("cloudformation", "DescribeStacks", { Zzzzzzzzzz = "x" }, {})
      assert.matches("unknown parameter %(DescribeStacksInput takes: StackName, NextToken%)", err)
      _, err = _aws.serialize("sts", "GetCallerIdentity", { X = 1 }, {})
      assert.matches("unknown parameter", err)
    end)

    it("skips json.null members and accepts marked empty lists", function()
      local r = assert(_aws.serialize("cloudformation", "DescribeStacks", { StackName = json.null }, {}))
      assert.are.equal("Action=DescribeStacks&Version=2010-05-15", r.body)
      r = assert(_aws.serialize("cloudformation", "UpdateStack",
        { StackName = "s", NotificationARNs = json.array() }, {}))
      assert.matches("NotificationARNs=&", r.body .. "&")
    end)

    it("maps need string keys", function()
      local _, err = _aws.to_json("ssm", "PutParameterRequest", { Name = "n", Value = "v", Tags = { { Key = "k", Value = "v" } } })
      assert.is_nil(err)
      _, err = _aws.serialize("dynamodb", "PutItem", { TableName = "t", Item = { [1] = { S = "x" } } }, {})
      assert.matches("Item: expected a map", err)
      _, err = _aws.serialize("dynamodb", "PutItem", { TableName = "t", Item = { ["k\255"] = { S = "x" } } }, {})
      assert.matches("map keys must be UTF%-8", err)
      _, err = _aws.serialize("dynamodb", "PutItem", { TableName = "t", Item = { ["a\0b"] = { S = "x" } } }, {})
      assert.matches("without NUL", err)
    end)

    it("converts documents and jsonvalue members freely", function()
      local r = assert(_aws.serialize("ssm", "PutParameter", { Name = "n", Value = "v" }, { host = "h" }))
      assert.are.same({ Name = "n", Value = "v" }, json.decode(r.body))
      local text = _aws.to_json("ssm", nil, { a = { 1, 2, { b = json.null } }, c = true })
      assert.are.same({ a = { 1, 2, { b = json.null } }, c = true }, json.decode(text))
      local _, err = _aws.to_json("ssm", nil, { 1, x = 2 })
      assert.matches("mixes list and map keys", err)
      _, err = _aws.to_json("ssm", nil, { f = print })
      assert.matches("f: cannot send a function", err)
      _, err = _aws.to_json("ssm", nil, 0 / 0)
      assert.matches("NaN", err)
    end)

    it("survives hostile nesting and large input", function()
      local deep = {}
      local cur = deep
      for _ = 1, 5000 do
        cur.a = {}
        cur = cur.a
      end
      local r, err = _aws.to_json("ssm", nil, deep)
      assert.is_nil(r)
      assert.matches("nesting deeper than 1000", err)
      local cyc = {}
      cyc.self = cyc
      r, err = _aws.to_json("ssm", nil, cyc)
      assert.is_nil(r)
      assert.matches("nesting", err)
      local text = string.rep("[", 3000) .. string.rep("]", 3000)
      local v, derr = _aws.from_json("ssm", nil, text)
      assert.is_nil(v)
      assert.is_string(derr)
      local many = {}
      for i = 1, 100000 do many[i] = "i-" .. i end
      local req = assert(_aws.serialize("ec2", "DescribeInstances", { InstanceIds = many }, {}))
      assert.is_true(#req.body > 1000000)
      assert.matches("InstanceId%.100000=i%-100000", req.body)
      local big = _aws.from_json("ssm", nil, json.encode(many))
      assert.are.equal(100000, #big)
      assert.are.equal(nil, _aws.from_json("ssm", nil, '{"a":'))
    end)

    it("round-trips values through the shapes", function()
      local stack = { StackName = "web", StackStatus = "CREATE_COMPLETE", CreationTime = 1687256130,
        Parameters = { { ParameterKey = "Env", ParameterValue = "prod" } }, DisableRollback = false,
        TimeoutInMinutes = 30, Capabilities = { "CAPABILITY_IAM" } }
      local back = _aws.from_json("cloudformation", "Stack", assert(_aws.to_json("cloudformation", "Stack", stack)))
      assert.are.same(stack, back)
      assert.are.equal("integer", math.type(back.TimeoutInMinutes))
      local r, err = _aws.to_json("dynamodb", "AttributeValue", { B = "\0\255" })
      assert.is_nil(r)
      assert.matches("not UTF%-8", err)
      local item = { a = { S = "x" }, n = { N = "12" }, b = { B = "bytes" }, l = { L = { { BOOL = true } } },
        m = { M = { k = { NULL = true } } } }
      local t = assert(_aws.to_json("dynamodb", "PutItemInputAttributeMap", item))
      assert.are.same(item, _aws.from_json("dynamodb", "PutItemInputAttributeMap", t))
    end)
  end)

  describe("serialize", function()
    it("writes query requests", function()
      local r = assert(_aws.serialize("cloudformation", "CreateStack", {
        StackName = "web", TemplateBody = "{}", Parameters = { { ParameterKey = "A", ParameterValue = "a b" } },
        Capabilities = { "CAPABILITY_IAM" }, Tags = { { Key = "k", Value = "v" } } },
        { host = "cloudformation.us-east-1.amazonaws.com", idempotency_token = "tok" }))
      assert.are.equal("POST", r.method)
      assert.are.equal("/", r.path)
      assert.are.equal("cloudformation.us-east-1.amazonaws.com", r.host)
      local p = body_params(r.body)
      assert.are.equal("CreateStack", p.Action)
      assert.are.equal("a%20b", p["Parameters.member.1.ParameterValue"])
      assert.are.equal("CAPABILITY_IAM", p["Capabilities.member.1"])
      assert.are.equal("k", p["Tags.member.1.Key"])
      assert.matches("^application/x%-www%-form%-urlencoded", r.headers["Content-Type"])
    end)

    it("writes ec2 requests with a generated idempotency token", function()
      local r = assert(_aws.serialize("ec2", "RunInstances", { MinCount = 1, MaxCount = 1, ImageId = "ami-1" }, {}))
      local p = body_params(r.body)
      assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", p.ClientToken)
      local r2 = assert(_aws.serialize("ec2", "RunInstances", { MinCount = 1, MaxCount = 1 }, {}))
      assert.are_not.equal(p.ClientToken, body_params(r2.body).ClientToken)
      local r3 = assert(_aws.serialize("ec2", "RunInstances", { MinCount = 1, MaxCount = 1 },
        { idempotency_token = "fixed-token" }))
      assert.are.equal("fixed-token", body_params(r3.body).ClientToken)
      local f = assert(_aws.serialize("ec2", "DescribeInstances", { Filters = { { Name = "tag:a", Values = { "x" } } } }, {}))
      assert.are.equal("tag%3Aa", body_params(f.body)["Filter.1.Name"])
    end)

    it("writes json requests", function()
      local r = assert(_aws.serialize("dynamodb", "GetItem", { TableName = "t", Key = { id = { S = "1" } } }, { host = "h" }))
      assert.are.equal("DynamoDB_20120810.GetItem", r.headers["X-Amz-Target"])
      assert.are.equal("application/x-amz-json-1.0", r.headers["Content-Type"])
      assert.are.same({ TableName = "t", Key = { id = { S = "1" } } }, json.decode(r.body))
      local s = assert(_aws.serialize("ssm", "GetParameter", { Name = "/a", WithDecryption = true }, { host = "h" }))
      assert.are.equal("AmazonSSM.GetParameter", s.headers["X-Amz-Target"])
      assert.are.equal("application/x-amz-json-1.1", s.headers["Content-Type"])
    end)

    it("writes rest-json requests", function()
      local r = assert(_aws.serialize("eks", "DescribeCluster", { name = "my cluster" }, { host = "h", base_path = "/base" }))
      assert.are.equal("GET", r.method)
      assert.are.equal("/base/clusters/my%20cluster", r.path)
      local l = assert(_aws.serialize("eks", "ListClusters", { maxResults = 5, nextToken = "a/b" }, { host = "h" }))
      assert.matches("maxResults=5", l.query)
      assert.matches("nextToken=a%%2Fb", l.query)
    end)

    it("writes rest-xml requests", function()
      local r = assert(_aws.serialize("s3", "PutObject", { Bucket = "b", Key = "dir/a b.txt", Body = "hello",
        Metadata = { owner = "me" }, ContentType = "text/plain" }, { host = "h" }))
      assert.are.equal("PUT", r.method)
      assert.are.equal("/b/dir/a%20b.txt", r.path)
      assert.are.equal("hello", r.body)
      assert.are.equal("me", r.headers["x-amz-meta-owner"])
      assert.are.equal("text/plain", r.headers["Content-Type"])
      local c = assert(_aws.serialize("route53", "ChangeResourceRecordSets", { HostedZoneId = "Z1",
        ChangeBatch = { Changes = { { Action = "UPSERT", ResourceRecordSet = { Name = "a.example.com", Type = "A",
          TTL = 60, ResourceRecords = { { Value = "1.2.3.4" } } } } } } }, { host = "h" }))
      assert.are.equal("/2013-04-01/hostedzone/Z1/rrset/", c.path)
      assert.matches("<Value>1%.2%.3%.4</Value>", c.body)
      assert.matches('xmlns="https://route53.amazonaws.com/doc/2013%-04%-01/"', c.body)
    end)

    it("raises for misuse of the C API", function()
      assert.has_error(function() _aws.serialize("cloudformation", "Nope", {}, {}) end)
      assert.has_error(function() _aws.serialize("cloudformation", "DescribeStacks", "x", {}) end)
      assert.has_error(function() _aws.serialize("cloudformation", "DescribeStacks", {}, { host = 1 }) end)
      assert.has_error(function() _aws.parse("cloudformation", "DescribeStacks", 99, {}, "") end)
      assert.has_error(function() _aws.parse("cloudformation", "DescribeStacks", 200, { a = 1 }, "") end)
    end)
  end)

  describe("parse", function()
    it("types query output", function()
      local v = assert(_aws.parse("cloudformation", "DescribeStacks", 200, {}, describe_body("CREATE_COMPLETE")))
      assert.are.equal("web", v.Stacks[1].StackName)
      assert.are.equal(1687256130, v.Stacks[1].CreationTime)
      assert.are.equal("integer", math.type(v.Stacks[1].CreationTime))
    end)

    it("returns structured service errors for every protocol", function()
      local _, e = _aws.parse("cloudformation", "DescribeStacks", 400, {}, query_error("ValidationError", "Stack with id x does not exist"))
      assert.are.same({ kind = "service", code = "ValidationError", message = "Stack with id x does not exist",
        status = 400, request_id = "req-42", data = {} }, e)
      _, e = _aws.parse("dynamodb", "GetItem", 400, { ["x-amzn-requestid"] = "RID" },
        '{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}')
      assert.are.equal("ResourceNotFoundException", e.code)
      assert.are.equal("RID", e.request_id)
      assert.are.equal("Requested resource not found", e.message)
      _, e = _aws.parse("s3", "GetObject", 404, { ["x-amz-request-id"] = "S3RID", ["x-amz-id-2"] = "HOST" },
        "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>k</Key></Error>")
      assert.are.equal("NoSuchKey", e.code)
      assert.are.equal("S3RID", e.request_id)
      assert.are.equal("HOST", e.host_id)
      _, e = _aws.parse("eks", "DescribeCluster", 404, { ["x-amzn-errortype"] = "ResourceNotFoundException:http://x" },
        '{"message":"No cluster found for name: x.","clusterName":"x"}')
      assert.are.equal("ResourceNotFoundException", e.code)
      assert.are.equal("x", e.data.clusterName)
      _, e = _aws.parse("ec2", "DescribeInstances", 400, {},
        "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>EC2RID</RequestID></Response>")
      assert.are.equal("RequestLimitExceeded", e.code)
      assert.are.equal("EC2RID", e.request_id)
    end)

    it("reports 5xx without a body and malformed bodies", function()
      local _, e = _aws.parse("cloudformation", "DescribeStacks", 503, {}, "<html><body>down</body></html>")
      assert.are.equal("503", e.code)
      assert.are.equal(503, e.status)
      _, e = _aws.parse("cloudformation", "DescribeStacks", 200, {}, "<DescribeStacksResponse><unclosed>")
      assert.are.equal("parse", e.kind)
      _, e = _aws.parse("dynamodb", "GetItem", 200, {}, "{nope")
      assert.are.equal("parse", e.kind)
      _, e = _aws.parse("dynamodb", "GetItem", 200, {}, "\0\1\2\255")
      assert.are.equal("parse", e.kind)
    end)
  end)
end)

describe("lumu.aws.jmespath", function()
  local data = json.decode([[{"Stacks":[{"StackStatus":"CREATE_COMPLETE","Outputs":[{"K":"a"}]},{"StackStatus":"UPDATE_COMPLETE"}],
    "services":[{"deployments":[1],"runningCount":2,"desiredCount":2}],"Contents":[{"Key":"x"},{"Key":"y"}],
    "n": 3, "s": "text", "e": []}]])

  it("evaluates the expressions the models use", function()
    local cases = {
      { "Stacks[].StackStatus", { "CREATE_COMPLETE", "UPDATE_COMPLETE" } },
      { "Stacks[0].StackStatus", "CREATE_COMPLETE" },
      { "Stacks[-1].StackStatus", "UPDATE_COMPLETE" },
      { "Stacks[].Outputs[].K", { "a" } },
      { "Stacks[*].Outputs[0].K", { "a" } },
      { "NextMarker || Contents[-1].Key", "y" },
      { "length(services[?!(length(deployments) == `1` && runningCount == desiredCount)]) == `0`", true },
      { "length(Stacks[]) > `0`", true },
      { "length(e) == `0`", true },
      { "Stacks[?StackStatus == 'UPDATE_COMPLETE'] | [0].StackStatus", "UPDATE_COMPLETE" },
      { "contains(Stacks[].StackStatus, 'CREATE_COMPLETE')", true },
      { "Contents[1:].Key", { "y" } },
      { "Contents[::-1].Key", { "y", "x" } },
      { "{a: n, b: s}", { a = 3, b = "text" } },
      { "[n, s]", { 3, "text" } },
      { '"n"', 3 },
      { "`{\"x\": [1, 2]}`.x[1]", 2 },
      { "missing.deeper[0]", nil },
      { "s.x", nil },
      { "n < `4` && n >= `3`", true },
      { "s < `4`", nil },
      { "max(Contents[].Key)", "y" },
      { "sort_by", nil },
    }
    for _, c in ipairs(cases) do
      assert.are.same(c[2], jmespath.search(c[1], data), c[1])
    end
  end)

  it("rejects bad expressions with a position", function()
    for _, e in ipairs { "Stacks[", "a = b", "a[?b", "`{bad`", "'open", "a..b", "f(", "[1:2:0]" } do
      assert.error_matches(function() jmespath.compile(e) end, "aws_client_spec.lua:%d+: jmespath: ")
    end
    assert.error_matches(function() jmespath.search("nofunc(a)", {}) end, "unknown function")
    assert.error_matches(function() jmespath.search("length(`1`)", {}) end, "length%(%) expects")
  end)

  it("compiles every waiter and paginator expression of the embedded models", function()
    local n = 0
    for _, service in ipairs(_aws.services()) do
      for _, wname in ipairs(_aws.waiters(service)) do
        local w = _aws.waiter(service, wname)
        assert.is_truthy(_aws.operation(service, w.operation), service .. " " .. wname)
        for _, a in ipairs(w.acceptors) do
          assert.is_truthy(({ path = 1, pathAll = 1, pathAny = 1, status = 1, error = 1 })[a.matcher], a.matcher)
          assert.is_truthy(({ success = 1, failure = 1, retry = 1 })[a.state], a.state)
          if a.argument then
            jmespath.compile(a.argument)
            n = n + 1
          end
        end
      end
      for _, op in ipairs(_aws.operations(service)) do
        local p = _aws.paginator(service, op)
        if p then
          for _, k in ipairs { "output_token", "result_key", "more_results" } do
            local v = p[k]
            for _, e in ipairs(type(v) == "table" and v or { v }) do
              jmespath.compile(e)
              n = n + 1
            end
          end
        end
      end
    end
    assert.is_true(n > 500, "expressions compiled: " .. n)
  end)
end)

describe("lumu.aws", function()
  describe("client", function()
    it("raises for misuse with suggestions", function()
      assert.error_matches(function() aws.client("cloudformaton") end, "did you mean 'cloudformation'")
      assert.error_matches(function() aws.client("cloudformation", { regoin = "x" }) end, "unknown option 'regoin'")
      assert.error_matches(function() aws.client("cloudformation", { region = 1 }) end, "region' must be a string")
      local c = client("cloudformation", stub { { body = describe_body("CREATE_COMPLETE") } })
      assert.error_matches(function() local _ = c:DescribeStack{} end,
        "aws_client_spec.lua:%d+: cloudformation has no operation 'DescribeStack' %(did you mean 'DescribeStacks'%?%)")
      assert.error_matches(function() local _ = c:DescribeStacks{ StackNme = "x" } end,
        "aws_client_spec.lua:%d+: cloudformation DescribeStacks: StackNme: unknown parameter %(did you mean 'StackName'%?%)")
      assert.error_matches(function() return c:DescribeStacks("x") end, "parameters must be a table")
      assert.error_matches(function() local _ = c:call("CreateStack", { StackName = 5 }) end,
        "aws_client_spec.lua:%d+: cloudformation CreateStack: StackName: expected a string, got integer")
      assert.error_matches(function() local _ = c:prepare("CreateStack", {}) end,
        "aws_client_spec.lua:%d+: cloudformation CreateStack: missing required parameter 'StackName'")
      assert.error_matches(function() return c.DescribeStacks({}) end, "call it as a method")
      assert.error_matches(function() c:wait("StackCreateCompleted", {}) end, "did you mean 'StackCreateComplete'")
      assert.error_matches(function() c:paginate("DescribeStackEvents2", {}) end, "did you mean")
      assert.error_matches(function() c:paginate("CreateStack", {}) end, "cannot be paginated")
    end)

    it("calls operations by CamelCase or snake_case name", function()
      local s = stub { { body = describe_body("CREATE_COMPLETE") } }
      local c = client("cloudformation", s)
      local r = assert(c:DescribeStacks{ StackName = "web" })
      assert.are.equal("CREATE_COMPLETE", r.Stacks[1].StackStatus)
      r = assert(c:describe_stacks{ StackName = "web" })
      assert.are.equal("web", r.Stacks[1].StackName)
      assert.is_truthy(c:call("describe-stacks"))
      local req = s.requests[1]
      assert.are.equal("https://cloudformation.us-east-1.amazonaws.com/", req.url)
      assert.are.equal("POST", req.method)
      assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKIDEXAMPLE/%d+/us%-east%-1/cloudformation/aws4_request",
        req.headers.Authorization)
      assert.matches("^lumu/", req.headers["User-Agent"])
      assert.is_truthy(req.headers["X-Amz-Date"])
      assert.are.equal(60, req.timeout)
    end)

    it("returns a readable error object", function()
      local c = client("cloudformation", stub { { status = 400, body = query_error("ValidationError", "Stack with id x does not exist"),
        headers = { ["x-amzn-requestid"] = "4b1c" } } })
      local r, err = c:DescribeStacks{ StackName = "x" }
      assert.is_nil(r)
      assert.is_true(aws.is_error(err))
      assert.are.equal("service", err.kind)
      assert.are.equal("ValidationError", err.code)
      assert.are.equal(400, err.status)
      assert.are.equal("4b1c", err.request_id)
      assert.are.equal("cloudformation", err.service)
      assert.are.equal("DescribeStacks", err.operation)
      assert.is_false(err.retryable)
      assert.are.equal("cloudformation DescribeStacks: ValidationError: Stack with id x does not exist " ..
        "(HTTP 400, request id 4b1c)", tostring(err))
    end)

    it("prepares signed requests without sending them", function()
      local c = client("sts", nil, { now = function() return 1440938160 end })
      local req = assert(c:prepare("GetCallerIdentity", {}))
      assert.are.equal("https://sts.us-east-1.amazonaws.com/", req.url)
      assert.are.equal("20150830T123600Z", req.headers["X-Amz-Date"])
      assert.matches("Credential=AKIDEXAMPLE/20150830/us%-east%-1/sts/aws4_request", req.headers.Authorization)
      local again = assert(c:prepare("GetCallerIdentity", {}))
      assert.are.equal(req.headers.Authorization, again.headers.Authorization)
    end)

    it("sends unsigned requests for authtype none and with credentials = false", function()
      local s = stub { { body = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>" ..
        "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey><SessionToken>T</SessionToken>" ..
        "<Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>" ..
        "</AssumeRoleWithWebIdentityResponse>" } }
      local c = assert(aws.client("sts", { region = "eu-west-1", env = {}, http = s.http }))
      local r = assert(c:AssumeRoleWithWebIdentity{ RoleArn = "arn:aws:iam::1:role/r", RoleSessionName = "s",
        WebIdentityToken = "jwt" })
      assert.are.equal(1893456000, r.Credentials.Expiration)
      assert.is_nil(s.requests[1].headers.Authorization)
      local anon = client("s3", s, { credentials = false })
      anon:call("ListBuckets")
      assert.is_nil(s.requests[2].headers.Authorization)
    end)
  end)

  describe("endpoints", function()
    local function ep(service, extra)
      local o = { credentials = CREDS, env = extra.env or {} }
      for k, v in pairs(extra) do if k ~= "env" then o[k] = v end end
      local c, err = aws.client(service, o)
      return c and c.endpoint, c or err
    end

    it("uses the standard endpoints per partition", function()
      assert.are.equal("https://cloudformation.eu-west-1.amazonaws.com", ep("cloudformation", { region = "eu-west-1" }))
      assert.are.equal("https://cloudformation.cn-north-1.amazonaws.com.cn", ep("cloudformation", { region = "cn-north-1" }))
      assert.are.equal("https://iam.amazonaws.com", ep("iam", { region = "eu-west-1" }))
      assert.are.equal("https://sts.amazonaws.com", ep("sts", {}))
      assert.are.equal("https://elasticloadbalancing.us-west-2.amazonaws.com", ep("elbv2", { region = "us-west-2" }))
      assert.are.equal("https://portal.sso.eu-west-1.amazonaws.com", ep("sso", { region = "eu-west-1" }))
      local _, c = ep("iam", { region = "eu-west-1" })
      assert.are.equal("us-east-1", c.signing_region)
      local none, err = ep("cloudformation", {})
      assert.is_nil(none)
      assert.are.equal("config", err.kind)
      assert.matches("no region configured for cloudformation", tostring(err))
    end)

    it("honours AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE> and endpoint_url", function()
      assert.are.equal("http://localhost:4566", ep("cloudformation",
        { region = "us-east-1", env = { AWS_ENDPOINT_URL = "http://localhost:4566" } }))
      assert.are.equal("http://cfn.local", ep("cloudformation", { region = "us-east-1",
        env = { AWS_ENDPOINT_URL = "http://localhost:4566", AWS_ENDPOINT_URL_CLOUDFORMATION = "http://cfn.local" } }))
      assert.are.equal("http://elb.local", ep("elbv2", { region = "us-east-1",
        env = { AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2 = "http://elb.local" } }))
      assert.are.equal("http://opt.local", ep("cloudformation", { region = "us-east-1", endpoint_url = "http://opt.local",
        env = { AWS_ENDPOINT_URL_CLOUDFORMATION = "http://cfn.local" } }))
      assert.are.equal("https://cloudformation.us-east-1.amazonaws.com", ep("cloudformation", { region = "us-east-1",
        env = { AWS_ENDPOINT_URL = "http://x", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true" } }))
      assert.are.equal("http://localhost:4566", ep("sts", { env = { AWS_ENDPOINT_URL = "http://localhost:4566" } }))
      assert.error_matches(function() aws.client("sts", { endpoint_url = "ftp://x", env = {} }) end, "http:// or https://")
    end)

    it("sends requests to a custom endpoint with its base path", function()
      local s = stub { { body = describe_body("CREATE_COMPLETE") } }
      local c = client("cloudformation", s, { endpoint_url = "http://127.0.0.1:9/proxy/" })
      assert(c:DescribeStacks{})
      assert.are.equal("http://127.0.0.1:9/proxy/", s.requests[1].url)
    end)

    it("uses path-style S3 addressing against custom endpoints", function()
      local s = stub { { body = "" } }
      local c = client("s3", s, { endpoint_url = "http://127.0.0.1:9000" })
      assert(c:GetObject{ Bucket = "my-bucket", Key = "a/b.txt" })
      assert.are.equal("http://127.0.0.1:9000/my-bucket/a/b.txt", s.requests[1].url)
      assert.matches("SignedHeaders=[^,]*x%-amz%-content%-sha256", s.requests[1].headers.Authorization)
      local aws_s3 = client("s3", s)
      assert(aws_s3:GetObject{ Bucket = "my-bucket", Key = "a/b.txt" })
      assert.are.equal("https://my-bucket.s3.us-east-1.amazonaws.com/a/b.txt", s.requests[2].url)
      assert(aws_s3:GetObject{ Bucket = "my.dotted.bucket", Key = "k" })
      assert.are.equal("https://s3.us-east-1.amazonaws.com/my.dotted.bucket/k", s.requests[3].url)
      local forced = client("s3", s, { s3_addressing = "path" })
      assert(forced:GetObject{ Bucket = "my-bucket", Key = "k" })
      assert.are.equal("https://s3.us-east-1.amazonaws.com/my-bucket/k", s.requests[4].url)
    end)
  end)

  describe("retries", function()
    local ok200 = { body = describe_body("CREATE_COMPLETE") }

    it("retries throttling, then succeeds", function()
      local s = stub { { status = 400, body = query_error("Throttling", "Rate exceeded") }, ok200 }
      local c = client("cloudformation", s)
      assert(c:DescribeStacks{})
      assert.are.equal(2, #s.requests)
      assert.are.equal(1, #s.sleeps)
      assert.is_true(s.sleeps[1] >= 0 and s.sleeps[1] < 1)
    end)

    it("retries 500/502/503/504 and connection errors, not validation errors", function()
      for _, r in ipairs { { status = 500, body = query_error("InternalFailure", "x") }, { status = 502 },
        { status = 503, body = "<html>down</html>" }, { status = 504 }, { transport = "connect" },
        { transport = "timeout" } } do
        local s = stub { r, ok200 }
        assert(client("cloudformation", s):DescribeStacks{})
        assert.are.equal(2, #s.requests)
      end
      for _, kind in ipairs { "tls", "too_large" } do
        local t = stub { { transport = kind }, ok200 }
        local _, terr = client("cloudformation", t):DescribeStacks{}
        assert.are.equal(1, #t.requests, kind)
        assert.is_false(terr.retryable)
      end
      local s = stub { { status = 400, body = query_error("ValidationError", "bad") }, ok200 }
      local _, err = client("cloudformation", s):DescribeStacks{}
      assert.are.equal(1, #s.requests)
      assert.are.equal("ValidationError", err.code)
      assert.is_nil(err.reason)
    end)

    it("gives up after max_attempts with a retryable error", function()
      local s = stub { { status = 503, body = query_error("ServiceUnavailable", "busy") } }
      local _, err = client("cloudformation", s, { retry = { max_attempts = 4 } }):DescribeStacks{}
      assert.are.equal(4, #s.requests)
      assert.are.equal(3, #s.sleeps)
      assert.is_true(err.retryable)
      assert.are.equal("max_attempts", err.reason)
      assert.are.equal(4, err.attempts)
      assert.matches("%(HTTP 503, request id req%-42, 4 attempts%)$", tostring(err))
      for i, d in ipairs(s.sleeps) do
        assert.is_true(d >= 0 and d < 2 ^ (i - 1), "exponential backoff")
      end
      local t = stub { { transport = "connect" } }
      local _, terr = client("cloudformation", t):DescribeStacks{}
      assert.are.equal("http", terr.kind)
      assert.are.equal(3, terr.attempts)
      assert.matches("simulated connect", tostring(terr))
    end)

    it("takes the max attempts from AWS_MAX_ATTEMPTS", function()
      local s = stub { { status = 500 } }
      client("cloudformation", s, { env = { AWS_MAX_ATTEMPTS = "2" } }):DescribeStacks{}
      assert.are.equal(2, #s.requests)
    end)

    it("adds jitter to the backoff", function()
      local seen = {}
      for _ = 1, 5 do
        local s = stub { { status = 500 }, ok200 }
        client("cloudformation", s):DescribeStacks{}
        seen[s.sleeps[1]] = true
      end
      local distinct = 0
      for _ in pairs(seen) do distinct = distinct + 1 end
      assert.is_true(distinct > 1)
    end)

    it("keeps the body and idempotency token across attempts, re-signing each", function()
      local clock = 1700000000
      local s = stub { { status = 503, body = "<Response><Errors><Error><Code>Unavailable</Code><Message>m</Message>" ..
        "</Error></Errors><RequestID>r</RequestID></Response>" },
        { body = '<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><reservationId>r-1' ..
          "</reservationId><instancesSet/></RunInstancesResponse>" } }
      local c = client("ec2", s, { now = function() clock = clock + 7 return clock end })
      local r = assert(c:RunInstances{ MinCount = 1, MaxCount = 1, ImageId = "ami-1" })
      assert.are.equal("r-1", r.ReservationId)
      assert.are.equal(2, #s.requests)
      assert.are.equal(s.requests[1].body, s.requests[2].body)
      assert.matches("ClientToken=%x+%-", s.requests[1].body)
      assert.are_not.equal(s.requests[1].headers.Authorization, s.requests[2].headers.Authorization)
    end)

    it("stops retrying when the retry quota is exhausted", function()
      local s = stub { { status = 500, body = query_error("InternalFailure", "x") } }
      local c = client("cloudformation", s)
      for i = 1, 50 do
        local _, err = c:DescribeStacks{}
        assert.are.equal("max_attempts", err.reason, "call " .. i)
      end
      assert.are.equal(150, #s.requests)
      assert.are.equal(0, c._retry:quota())
      local _, err = c:DescribeStacks{}
      assert.are.equal(151, #s.requests)
      assert.are.equal("quota", err.reason)
      assert.are.equal(1, err.attempts)
      assert.is_true(err.retryable)
    end)
  end)

  describe("pagination", function()
    it("follows the tokens over every page", function()
      local s = stub { { body = list_page({ "a", "b" }, "t2") }, { body = list_page({ "c" }, "t3") },
        { body = list_page({ "d" }) } }
      local c = client("cloudformation", s)
      local names = {}
      local n = 0
      for page in c:paginate("ListStacks", { StackStatusFilter = { "CREATE_COMPLETE" } }) do
        n = n + 1
        for _, st in ipairs(page.StackSummaries) do names[#names + 1] = st.StackName end
      end
      assert.are.equal(3, n)
      assert.are.same({ "a", "b", "c", "d" }, names)
      assert.is_nil(body_params(s.requests[1].body).NextToken)
      assert.are.equal("t2", body_params(s.requests[2].body).NextToken)
      assert.are.equal("t3", body_params(s.requests[3].body).NextToken)
      assert.are.equal("CREATE_COMPLETE", body_params(s.requests[3].body)["StackStatusFilter.member.1"])
    end)

    it("iterates items and honours max_items / max_pages / page_size", function()
      local pages = { { body = list_page({ "a", "b" }, "t2") }, { body = list_page({ "c" }) } }
      local c = client("cloudformation", stub(pages))
      local names = {}
      for item, key in c:paginate_items("list_stacks", {}) do
        assert.are.equal("StackSummaries", key)
        names[#names + 1] = item.StackName
      end
      assert.are.same({ "a", "b", "c" }, names)
      names = {}
      for item in client("cloudformation", stub(pages)):paginate_items("ListStacks", {}, { max_items = 2 }) do
        names[#names + 1] = item.StackName
      end
      assert.are.same({ "a", "b" }, names)
      local s = stub(pages)
      local n = 0
      for _ in client("cloudformation", s):paginate("ListStacks", {}, { max_pages = 1 }) do n = n + 1 end
      assert.are.equal(1, n)
      local e = stub { { body = '{"clusters":["a"],"nextToken":"x"}' }, { body = '{"clusters":["b"]}' } }
      local all = {}
      for item in client("eks", e):paginate_items("ListClusters", {}, { page_size = 1 }) do all[#all + 1] = item end
      assert.are.same({ "a", "b" }, all)
      assert.matches("maxResults=1", e.requests[1].url)
      assert.matches("nextToken=x", e.requests[2].url)
    end)

    it("raises a failed page's error and a repeated token", function()
      local c = client("cloudformation", stub { { body = list_page({ "a" }, "t2") },
        { status = 400, body = query_error("AccessDenied", "no") } })
      local ok, err = pcall(function() for _ in c:paginate("ListStacks", {}) do end end)
      assert.is_false(ok)
      assert.is_true(aws.is_error(err))
      assert.are.equal("AccessDenied", err.code)
      local loop = client("cloudformation", stub { { body = list_page({ "a" }, "same") } })
      ok, err = pcall(function() for _ in loop:paginate("ListStacks", {}) do end end)
      assert.is_false(ok)
      assert.are.equal("PaginationError", err.code)
    end)
  end)

  describe("waiters", function()
    it("polls until the success acceptor matches", function()
      local s = stub { { body = describe_body("CREATE_IN_PROGRESS") }, { body = describe_body("CREATE_IN_PROGRESS") },
        { body = describe_body("CREATE_COMPLETE") } }
      local c = client("cloudformation", s)
      local r = assert(c:wait("StackCreateComplete", { StackName = "web" }, { delay = 0.5 }))
      assert.are.equal("CREATE_COMPLETE", r.Stacks[1].StackStatus)
      assert.are.equal(3, #s.requests)
      assert.are.same({ 0.5, 0.5 }, s.sleeps)
    end)

    it("stops on failure acceptors, error matchers and max attempts", function()
      local c = client("cloudformation", stub { { body = describe_body("ROLLBACK_COMPLETE") } })
      local r, err = c:wait("StackCreateComplete", { StackName = "web" }, { delay = 0 })
      assert.is_nil(r)
      assert.are.equal("waiter", err.kind)
      assert.are.equal("WaiterFailure", err.code)
      assert.are.equal("ROLLBACK_COMPLETE", err.last.Stacks[1].StackStatus)
      c = client("cloudformation", stub { { status = 400, body = query_error("ValidationError", "Stack with id web does not exist") } })
      r, err = c:wait("StackCreateComplete", { StackName = "web" }, { delay = 0 })
      assert.are.equal("WaiterFailure", err.code)
      assert.matches("ValidationError", tostring(err))
      local del = client("cloudformation", stub { { status = 400, body = query_error("ValidationError", "gone") } })
      assert.are.same({}, assert(del:wait("StackDeleteComplete", { StackName = "web" }, { delay = 0 })))
      local s = stub { { body = describe_body("CREATE_IN_PROGRESS") } }
      r, err = client("cloudformation", s):wait("StackCreateComplete", { StackName = "web" }, { delay = 0, max_attempts = 4 })
      assert.are.equal("MaxAttemptsExceeded", err.code)
      assert.are.equal(4, #s.requests)
      local unexpected = client("cloudformation", stub { { status = 403, body = query_error("AccessDenied", "no") } })
      r, err = unexpected:wait("StackExists", { StackName = "web" }, { delay = 0 })
      assert.are.equal("AccessDenied", err.code)
    end)

    it("matches with every matcher kind", function()
      local m = aws._acceptor_matches
      local res = json.decode('{"A":[{"s":"x"},{"s":"x"}],"B":"ok","E":[]}')
      assert.is_true(m({ matcher = "path", argument = "B", expected = "ok" }, res))
      assert.is_true(m({ matcher = "pathAll", argument = "A[].s", expected = "x" }, res))
      assert.is_false(m({ matcher = "pathAll", argument = "E[].s", expected = "x" }, res))
      assert.is_true(m({ matcher = "pathAny", argument = "A[].s", expected = "x" }, res))
      assert.is_false(m({ matcher = "pathAny", argument = "A[].s", expected = "y" }, res))
      assert.is_true(m({ matcher = "status", expected = 404 }, nil, {}, 404))
      assert.is_true(m({ matcher = "error", expected = "NotFound" }, nil, { code = "NotFound" }))
      assert.is_true(m({ matcher = "error", expected = true }, nil, { code = "X" }))
      assert.is_true(m({ matcher = "error", expected = false }, res, nil))
      assert.is_false(m({ matcher = "path", argument = "B", expected = "ok" }, nil, { code = "X" }))
    end)
  end)

  describe("credentials", function()
    local dir
    before_each(function() dir = assert(fs.tmpdir("lumu-awsclient-")) end)
    after_each(function() fs.rmtree(dir) end)

    it("refreshes credentials before they expire", function()
      local cfgfile = dir .. "/config"
      assert(fs.write(cfgfile, "[default]\ncredential_process = fake-process\nregion = us-east-1\n"))
      local env = { AWS_CONFIG_FILE = cfgfile, AWS_SHARED_CREDENTIALS_FILE = dir .. "/none", HOME = dir }
      local cfg = assert(awsconfig.load { env = env })
      local now, runs = 1700000000, 0
      local clock = function() return now end
      local chain = assert(credentials.chain { config = cfg, now = clock, file_cache = false, run = function()
        runs = runs + 1
        return json.encode { Version = 1, AccessKeyId = "AKIDRUN" .. runs, SecretAccessKey = "s" .. runs,
          Expiration = os.date("!%Y-%m-%dT%H:%M:%SZ", now + 3600) }, "", 0
      end })
      local s = stub { { body = describe_body("CREATE_COMPLETE") } }
      local c = assert(aws.client("cloudformation", { config = cfg, credentials = chain, now = clock, http = s.http }))
      assert(c:DescribeStacks{})
      assert(c:DescribeStacks{})
      assert.are.equal(1, runs)
      now = now + 3600 - 14 * 60 -- inside the 15-minute refresh window
      assert(c:DescribeStacks{})
      assert.are.equal(2, runs)
      assert.matches("Credential=AKIDRUN1/", s.requests[2].headers.Authorization)
      assert.matches("Credential=AKIDRUN2/", s.requests[3].headers.Authorization)
    end)

    it("reports missing credentials as an error, not a raise", function()
      local env = { AWS_CONFIG_FILE = dir .. "/none", AWS_SHARED_CREDENTIALS_FILE = dir .. "/none", HOME = dir,
        AWS_EC2_METADATA_DISABLED = "true" }
      local s = stub { { body = describe_body("CREATE_COMPLETE") } }
      local c = assert(aws.client("cloudformation", { env = env, region = "us-east-1", http = s.http }))
      local r, err = c:DescribeStacks{}
      assert.is_nil(r)
      assert.are.equal("credentials", err.kind)
      assert.matches("unable to locate credentials", tostring(err))
      assert.are.equal(0, #s.requests)
    end)

    it("never shows secrets in errors, strings or debug output (canary)", function()
      local SECRET, TOKEN = "CANARYSECRETxx7Qz", "CANARYTOKENyy9Wv"
      local lines = {}
      local s = stub { { status = 403, body = query_error("SignatureDoesNotMatch", "bad signature") },
        { transport = "connect" }, { status = 200, body = "<oops" },
        { body = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId>" ..
          "<SecretAccessKey>" .. SECRET .. "</SecretAccessKey><SessionToken>" .. TOKEN .. "</SessionToken>" ..
          "<Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>" } }
      local creds = credentials.new { access_key_id = "AKIDCANARY0000", secret_access_key = SECRET, session_token = TOKEN }
      local c = assert(aws.client("sts", { region = "us-east-1", env = {}, credentials = creds, http = s.http,
        sleep = function() end, retry = { max_attempts = 1 }, debug = function(l) lines[#lines + 1] = l end }))
      local texts = { tostring(c), tostring(creds) }
      local function scan(v, seen)
        seen = seen or {}
        if type(v) == "table" and not seen[v] then
          seen[v] = true
          for k, x in pairs(v) do
            scan(k, seen)
            scan(x, seen)
          end
        elseif type(v) == "string" then
          texts[#texts + 1] = v
        end
      end
      for i = 1, 3 do
        local r, err = c:GetCallerIdentity{}
        assert.is_nil(r, "call " .. i)
        texts[#texts + 1] = tostring(err)
        scan(err)
      end
      local r = assert(c:AssumeRole{ RoleArn = "arn:aws:iam::1:role/r", RoleSessionName = "s" })
      assert.are.equal(SECRET, r.Credentials.SecretAccessKey) -- the caller gets it, the log does not
      local ok, misuse = pcall(c.call, c, "GetCallerIdentity", { Token = TOKEN })
      assert.is_false(ok)
      texts[#texts + 1] = tostring(misuse)
      local sso = assert(aws.client("sso", { region = "us-east-1", env = {}, http = stub { { status = 401,
        body = '{"message":"Session token not found or invalid"}',
        headers = { ["x-amzn-errortype"] = "UnauthorizedException" } } }.http,
        debug = function(l) lines[#lines + 1] = l end }))
      local _, serr = sso:GetRoleCredentials{ roleName = "r", accountId = "123456789012", accessToken = TOKEN }
      assert.are.equal("UnauthorizedException", serr.code)
      texts[#texts + 1] = tostring(serr)
      scan(serr)
      for _, l in ipairs(lines) do texts[#texts + 1] = l end
      assert.is_true(#lines >= 10)
      for _, t in ipairs(texts) do
        assert.is_nil(t:find(SECRET, 1, true), t)
        assert.is_nil(t:find(TOKEN, 1, true), t)
      end
      assert.matches("x%-amz%-sso_bearer_token=<redacted>", table.concat(lines, "\n"))
      assert.matches("X%-Amz%-Security%-Token=<redacted>", table.concat(lines, "\n"))
    end)
  end)
end)
