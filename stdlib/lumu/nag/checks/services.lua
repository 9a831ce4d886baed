--- Built-in nag rules: KMS, CloudTrail, Lambda, ECS/Batch, SNS/SQS, Kinesis,
-- CloudFront, API Gateway, Cognito, EKS, ECR, CloudWatch Logs, and secrets in
-- resource properties.
local util = require "lumu.nag.util"

local props, path = util.props, util.path
local ABSENT = util.ABSENT

local ROLE = "AWS::IAM::Role"
local TASKDEF = "AWS::ECS::TaskDefinition"
local BATCH = "AWS::Batch::JobDefinition"
local FUNCTION = "AWS::Lambda::Function"

-- A check reporting Properties.<keys...> when it may be absent or empty.
local function require_set(keys, what)
  what = what or table.concat(keys, ".")
  return function(r, _, _, ctx)
    local ok, via = ctx:possibly(props(r), function(x) return x == ABSENT or x == "" end, keys)
    if ok then
      return { { path = path({ "Properties" }, table.unpack(keys)),
        detail = what .. " is not set" .. (via and (" (" .. via .. ")") or "") } }
    end
  end
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do
    if type(k) == "string" then ks[#ks + 1] = k end
  end
  table.sort(ks)
  return ks
end

local HARMLESS = { ["true"] = true, ["false"] = true, yes = true, no = true, [""] = true }

-- Violation detail for a secret-named variable holding `value`, or nil.
local function secret_env(ctx, name, value)
  if not util.secret_name(name) then return nil end
  if type(value) == "string" and HARMLESS[value:lower()] then return nil end
  if type(value) == "boolean" then return nil end
  local why = ctx:plaintext(value)
  if why then return name .. " is " .. why end
  return nil
end

-- Containers of a task/job definition: list of {c=, path=}.
local function containers(ctx, r)
  local p = props(r)
  local out = {}
  if r.Type == TASKDEF then
    for _, item in ipairs(ctx:items(p.ContainerDefinitions)) do
      if type(item.v) == "table" then
        out[#out + 1] = { c = item.v, path = { "Properties", "ContainerDefinitions", item.index } }
      end
    end
  elseif r.Type == BATCH and type(p.ContainerProperties) == "table" then
    out[1] = { c = p.ContainerProperties, path = { "Properties", "ContainerProperties" } }
  end
  return out
end

-- The in-template role `v` points at (Ref or Fn::GetAtt ...Arn), or nil.
local function role_of(ctx, v)
  if v == nil then return nil end
  for _, e in ipairs(ctx:resources_of(ROLE)) do
    if ctx:refs(v, e.id) then return e end
  end
  return nil
end

-- Policy documents that apply to role `rid`: {doc=, where=}.
local function role_documents(ctx, role)
  local docs = {}
  for _, pol in ipairs(ctx:policies(role.resource)) do
    if pol.kind == "identity" then docs[#docs + 1] = { doc = pol.doc, where = "an inline policy" } end
  end
  for _, t in ipairs({ "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy" }) do
    for _, e in ipairs(ctx:resources_of(t)) do
      local p = props(e.resource)
      for _, item in ipairs(ctx:items(p.Roles)) do
        if ctx:refs(item.v, role.id) then
          docs[#docs + 1] = { doc = p.PolicyDocument, where = e.id }
          break
        end
      end
    end
  end
  for _, e in ipairs(ctx:resources_of("AWS::IAM::RolePolicy")) do
    local p = props(e.resource)
    if ctx:refs(p.RoleName, role.id) then docs[#docs + 1] = { doc = p.PolicyDocument, where = e.id } end
  end
  for _, item in ipairs(ctx:items(props(role.resource).ManagedPolicyArns)) do
    for _, e in ipairs(ctx:resources_of("AWS::IAM::ManagedPolicy")) do
      if ctx:refs(item.v, e.id) then docs[#docs + 1] = { doc = props(e.resource).PolicyDocument, where = e.id } end
    end
    if ctx:text(item.v):find(":policy/AdministratorAccess$") then
      docs[#docs + 1] = { doc = { Statement = { { Effect = "Allow", Action = "*", Resource = "*" } } },
        where = "AdministratorAccess" }
    end
  end
  return docs
end

local function allows_star(ctx, doc)
  for _, st in ipairs(ctx:statements(doc)) do
    if ctx:allows(st.stmt) then
      for _, a in ipairs(ctx:strings(st.stmt.Action)) do
        if a == "*" or a == "*:*" then return true end
      end
    end
  end
  return false
end

-- Secret-bearing properties per type: lists of keys ("*" = every list item).
local SECRET_PROPS = {
  ["AWS::IAM::User"] = { { "LoginProfile", "Password" } },
  ["AWS::ElastiCache::ReplicationGroup"] = { { "AuthToken" } },
  ["AWS::DMS::Endpoint"] = { { "Password" } },
  ["AWS::DirectoryService::MicrosoftAD"] = { { "Password" } },
  ["AWS::DirectoryService::SimpleAD"] = { { "Password" } },
  ["AWS::AmazonMQ::Broker"] = { { "Users", "*", "Password" } },
  ["AWS::OpenSearchService::Domain"] = { { "AdvancedSecurityOptions", "MasterUserOptions", "MasterUserPassword" } },
  ["AWS::Elasticsearch::Domain"] = { { "AdvancedSecurityOptions", "MasterUserOptions", "MasterUserPassword" } },
  ["AWS::CodePipeline::Webhook"] = { { "AuthenticationConfiguration", "SecretToken" } },
  ["AWS::CodeBuild::SourceCredential"] = { { "Token" } },
  ["AWS::Amplify::App"] = { { "OauthToken" }, { "AccessToken" }, { "BasicAuthConfig", "Password" } },
  ["AWS::SecretsManager::Secret"] = { { "SecretString" } },
}
local SECRET_TYPES = sorted_keys(SECRET_PROPS)

-- Walks literal tables along keys; yields {v=, path=}.
local function dig(ctx, t, keys, i, p, out)
  if i > #keys then
    out[#out + 1] = { v = t, path = p }
    return
  end
  if type(t) ~= "table" then return end
  local k = keys[i]
  if k == "*" then
    for _, item in ipairs(ctx:items(t)) do
      dig(ctx, item.v, keys, i + 1, path(p, item.index), out)
    end
  else
    dig(ctx, t[k], keys, i + 1, path(p, k), out)
  end
end

local rules = {
  {
    id = "F21", severity = "failure",
    message = "Credential property is in plaintext",
    reason = "Passwords, tokens and secret strings written into a template (or a parameter without "
      .. "NoEcho, or with a Default) are visible to everyone who can read the stack; use "
      .. "{{resolve:secretsmanager:...}} or generate the secret.",
    types = SECRET_TYPES,
    check = function(r, _, _, ctx)
      local found = {}
      for _, keys in ipairs(SECRET_PROPS[r.Type] or {}) do
        local hits = {}
        dig(ctx, props(r), keys, 1, { "Properties" }, hits)
        for _, h in ipairs(hits) do
          if h.v ~= nil then
            local why = ctx:plaintext(h.v)
            if why then found[#found + 1] = { path = h.path, detail = util.path_string(h.path) .. " is " .. why } end
          end
        end
      end
      return found
    end,
  },
  {
    id = "F22", severity = "failure",
    message = "KMS key rotation is not enabled",
    reason = "Yearly automatic rotation limits how much data one key version protects; symmetric "
      .. "keys support it at no extra effort.",
    types = { "AWS::KMS::Key" }, aliases = { "F19" },
    check = util.require_true({ "EnableKeyRotation" }, {
      skip = function(r, ctx)
        local p = props(r)
        if ctx:possibly(p.Origin, function(o) return o == "EXTERNAL" or o == "AWS_CLOUDHSM" or o == "EXTERNAL_KEY_STORE" end) then
          return true
        end
        return not ctx:possibly(p.KeySpec, function(s) return s == ABSENT or s == "SYMMETRIC_DEFAULT" end)
      end,
    }),
  },
  {
    id = "F23", severity = "failure",
    message = "CloudTrail log file validation is not enabled",
    reason = "EnableLogFileValidation writes signed digests so tampering with or deleting trail "
      .. "logs can be detected.",
    types = { "AWS::CloudTrail::Trail" },
    check = util.require_true({ "EnableLogFileValidation" }),
  },
  {
    id = "W17", severity = "warning",
    message = "CloudTrail logs are not encrypted with a KMS key",
    reason = "KMSKeyId adds a key policy between the trail and its readers; S3 default encryption "
      .. "alone lets anyone with bucket access read the logs.",
    types = { "AWS::CloudTrail::Trail" },
    check = require_set({ "KMSKeyId" }),
  },
  {
    id = "W18", severity = "warning",
    message = "CloudTrail trail is not multi-region",
    reason = "A single-region trail misses activity in every other region, where an attacker would "
      .. "go first.",
    types = { "AWS::CloudTrail::Trail" },
    check = util.require_true({ "IsMultiRegionTrail" }),
  },
  {
    id = "F24", severity = "failure",
    message = "Lambda permission allows any principal ('*') without a source restriction",
    reason = "Principal '*' without SourceArn, SourceAccount or PrincipalOrgID lets every AWS "
      .. "account (and, with a function URL, everyone) invoke the function.",
    types = { "AWS::Lambda::Permission" },
    check = function(r, _, _, ctx)
      local p = props(r)
      if not ctx:wildcard_principal(p.Principal) then return nil end
      if p.SourceArn ~= nil or p.SourceAccount ~= nil or p.PrincipalOrgID ~= nil then return nil end
      return { { path = { "Properties", "Principal" } } }
    end,
  },
  {
    id = "W20", severity = "warning",
    message = "Lambda permission grants an action other than lambda:InvokeFunction",
    reason = "Resource-based permissions are for invoking; granting other Lambda actions (or "
      .. "lambda:*) lets callers change or read the function.",
    types = { "AWS::Lambda::Permission" }, aliases = { "W24" },
    check = function(r, _, _, ctx)
      local ok, via = ctx:possibly(props(r).Action, function(a)
        return type(a) == "string" and a ~= "lambda:InvokeFunction" and a ~= "lambda:InvokeFunctionUrl"
      end)
      if ok then return { { path = { "Properties", "Action" }, detail = via } } end
    end,
  },
  {
    id = "W19", severity = "warning",
    message = "Lambda function has no dead-letter queue or on-failure destination",
    reason = "Asynchronous invocations that keep failing are dropped after the retries unless a "
      .. "DeadLetterConfig or an EventInvokeConfig OnFailure destination keeps them.",
    types = { FUNCTION },
    check = function(r, id, _, ctx)
      if not ctx:possibly(props(r), function(x) return x == ABSENT or x == "" end, { "DeadLetterConfig", "TargetArn" }) then
        return nil
      end
      for _, e in ipairs(ctx:resources_of("AWS::Lambda::EventInvokeConfig")) do
        local p = props(e.resource)
        if ctx:refs(p.FunctionName, id) and not ctx:possibly(p, function(x) return x == ABSENT end,
              { "DestinationConfig", "OnFailure", "Destination" }) then
          return nil
        end
      end
      return { { path = { "Properties", "DeadLetterConfig" } } }
    end,
  },
  {
    id = "F27", severity = "failure",
    message = "Lambda environment variable holds a secret in plaintext",
    reason = "Environment variables are shown in the console and returned by GetFunction; read "
      .. "secrets at runtime from Secrets Manager or SSM SecureString instead.",
    types = { FUNCTION },
    check = function(r, _, _, ctx)
      local found = {}
      for _, vars in ipairs(ctx:values(props(r), { "Environment", "Variables" })) do
        if type(vars.v) == "table" and not util.intrinsic(vars.v) then
          for _, name in ipairs(sorted_keys(vars.v)) do
            local d = secret_env(ctx, name, vars.v[name])
            if d then
              found[#found + 1] = { path = { "Properties", "Environment", "Variables", name }, detail = d }
            end
          end
        end
      end
      return found
    end,
  },
  {
    id = "F25", severity = "failure",
    message = "Container runs privileged",
    reason = "A privileged container has root on the host: a compromise escapes the container and "
      .. "reaches every task on the instance.",
    types = { TASKDEF, BATCH },
    check = function(r, _, _, ctx)
      local found = {}
      for _, c in ipairs(containers(ctx, r)) do
        local ok, via = ctx:possibly(c.c.Privileged, util.truthy)
        if ok then found[#found + 1] = { path = path(c.path, "Privileged"), detail = via } end
      end
      return found
    end,
  },
  {
    id = "F26", severity = "failure",
    message = "Container environment holds a secret in plaintext",
    reason = "Environment values are visible in the task definition to anyone with read access; "
      .. "pass secrets through the container's Secrets (valueFrom Secrets Manager or SSM).",
    types = { TASKDEF, BATCH },
    check = function(r, _, _, ctx)
      local found = {}
      for _, c in ipairs(containers(ctx, r)) do
        for _, item in ipairs(ctx:items(c.c.Environment)) do
          local e = item.v
          if type(e) == "table" and type(e.Name) == "string" then
            local d = secret_env(ctx, e.Name, e.Value)
            if d then found[#found + 1] = { path = path(c.path, "Environment", item.index, "Value"), detail = d } end
          end
        end
      end
      return found
    end,
  },
  {
    id = "F28", severity = "failure",
    message = "ECS task role allows every action ('*')",
    reason = "The task role's credentials are available to every process in the task; with '*' a "
      .. "single application bug hands out full control of the account.",
    types = { TASKDEF },
    check = function(r, _, _, ctx)
      local role = role_of(ctx, props(r).TaskRoleArn)
      if not role then return nil end
      for _, d in ipairs(role_documents(ctx, role)) do
        if allows_star(ctx, d.doc) then
          return { { path = { "Properties", "TaskRoleArn" },
            detail = "role " .. role.id .. " (" .. d.where .. ") allows '*'" } }
        end
      end
    end,
  },
  {
    id = "W21", severity = "warning",
    message = "SNS topic is not encrypted with a KMS key",
    reason = "KmsMasterKeyId encrypts messages at rest and puts a key policy in front of them.",
    types = { "AWS::SNS::Topic" },
    check = require_set({ "KmsMasterKeyId" }),
  },
  {
    id = "W22", severity = "warning",
    message = "SQS queue is not encrypted with a KMS key",
    reason = "KmsMasterKeyId (SSE-KMS) encrypts messages with a key you control; SQS-managed "
      .. "encryption cannot be audited or revoked per key.",
    types = { "AWS::SQS::Queue" },
    check = require_set({ "KmsMasterKeyId" }),
  },
  {
    id = "W38", severity = "warning",
    message = "Kinesis stream is not encrypted",
    reason = "StreamEncryption with KMS encrypts records at rest in the stream.",
    types = { "AWS::Kinesis::Stream" },
    check = function(r, _, _, ctx)
      local ok, detail = ctx:surely(props(r), function(t) return t == "KMS" end, { "StreamEncryption", "EncryptionType" })
      if not ok then
        return { { path = { "Properties", "StreamEncryption" }, detail = "StreamEncryption.EncryptionType " .. detail } }
      end
    end,
  },
  {
    id = "W25", severity = "warning",
    message = "CloudFront distribution allows viewer TLS below 1.2",
    reason = "The default *.cloudfront.net certificate and old MinimumProtocolVersion values "
      .. "accept TLS 1.0/1.1; use your own certificate with TLSv1.2_2021 or later.",
    types = { "AWS::CloudFront::Distribution" }, aliases = { "W70" },
    check = function(r, _, _, ctx)
      local dc = props(r).DistributionConfig
      local base = { "Properties", "DistributionConfig", "ViewerCertificate" }
      if ctx:possibly(dc, function(x) return x == ABSENT end, { "ViewerCertificate" }) then
        return { { path = base, detail = "no ViewerCertificate: the default certificate allows TLSv1" } }
      end
      if ctx:possibly(dc, util.truthy, { "ViewerCertificate", "CloudFrontDefaultCertificate" }) then
        return { { path = path(base, "CloudFrontDefaultCertificate"), detail = "the default certificate allows TLSv1" } }
      end
      local ok, detail = ctx:surely(dc, function(v)
        return type(v) == "string" and (v:find("^TLSv1%.2") ~= nil or v:find("^TLSv1%.3") ~= nil)
      end, { "ViewerCertificate", "MinimumProtocolVersion" })
      if not ok then return { { path = path(base, "MinimumProtocolVersion"), detail = "MinimumProtocolVersion " .. detail } } end
    end,
  },
  {
    id = "W26", severity = "warning",
    message = "CloudFront distribution access logging is not enabled",
    reason = "Standard logs record every viewer request; without them abuse and data access go "
      .. "unnoticed.",
    types = { "AWS::CloudFront::Distribution" }, aliases = { "W10" },
    check = function(r, _, _, ctx)
      if ctx:possibly(props(r).DistributionConfig, function(x) return x == ABSENT end, { "Logging" }) then
        return { { path = { "Properties", "DistributionConfig", "Logging" } } }
      end
    end,
  },
  {
    id = "W27", severity = "warning",
    message = "CloudFront cache behavior allows plain HTTP to viewers",
    reason = "ViewerProtocolPolicy allow-all serves content (and cookies) over HTTP; use "
      .. "redirect-to-https or https-only.",
    types = { "AWS::CloudFront::Distribution" },
    check = function(r, _, _, ctx)
      local found = {}
      local dc = props(r).DistributionConfig
      if type(dc) ~= "table" then return nil end
      local function allow_all(v) return v == "allow-all" end
      if ctx:possibly(dc.DefaultCacheBehavior, allow_all, { "ViewerProtocolPolicy" }) then
        found[#found + 1] = { path = { "Properties", "DistributionConfig", "DefaultCacheBehavior", "ViewerProtocolPolicy" } }
      end
      for _, item in ipairs(ctx:items(dc.CacheBehaviors)) do
        if ctx:possibly(item.v, allow_all, { "ViewerProtocolPolicy" }) then
          found[#found + 1] = { path = { "Properties", "DistributionConfig", "CacheBehaviors", item.index, "ViewerProtocolPolicy" } }
        end
      end
      return found
    end,
  },
  {
    id = "W28", severity = "warning",
    message = "API Gateway stage has no access logging",
    reason = "Access logs (AccessLogSetting / AccessLogSettings with a DestinationArn) record every "
      .. "API call with its caller.",
    types = { "AWS::ApiGateway::Stage", "AWS::ApiGatewayV2::Stage", "AWS::ApiGateway::Deployment" },
    aliases = { "W69" },
    check = function(r, _, _, ctx)
      local p = props(r)
      local keys
      if r.Type == "AWS::ApiGateway::Stage" then
        keys = { "AccessLogSetting", "DestinationArn" }
      elseif r.Type == "AWS::ApiGatewayV2::Stage" then
        keys = { "AccessLogSettings", "DestinationArn" }
      else
        if p.StageName == nil then return nil end
        keys = { "StageDescription", "AccessLogSetting", "DestinationArn" }
      end
      local ok, via = ctx:possibly(p, function(x) return x == ABSENT or x == "" end, keys)
      if ok then
        return { { path = path({ "Properties" }, keys[1]), detail = table.concat(keys, ".") .. " is not set"
          .. (via and (" (" .. via .. ")") or "") } }
      end
    end,
  },
  {
    id = "W29", severity = "warning",
    message = "API Gateway method has no authorization",
    reason = "AuthorizationType NONE without an API key leaves the method open to anyone on the "
      .. "internet; use IAM, Cognito or a Lambda authorizer.",
    types = { "AWS::ApiGateway::Method" },
    check = function(r, _, _, ctx)
      local p = props(r)
      if ctx:surely(p.HttpMethod, function(m) return type(m) == "string" and m:upper() == "OPTIONS" end) then return nil end
      if ctx:surely(p.ApiKeyRequired, util.truthy) then return nil end
      local ok, via = ctx:possibly(p.AuthorizationType, function(a) return a == ABSENT or a == "NONE" end)
      if ok then return { { path = { "Properties", "AuthorizationType" }, detail = via } } end
    end,
  },
  {
    id = "F36", severity = "failure",
    message = "Cognito user pool does not use multi-factor authentication",
    reason = "MfaConfiguration ON (or OPTIONAL) protects accounts whose passwords leak or are reused.",
    types = { "AWS::Cognito::UserPool" }, aliases = { "F85" },
    check = function(r, _, _, ctx)
      local ok, detail = ctx:surely(props(r).MfaConfiguration, function(m) return m == "ON" or m == "OPTIONAL" end)
      if not ok then return { { path = { "Properties", "MfaConfiguration" }, detail = "MfaConfiguration " .. detail } } end
    end,
  },
  {
    id = "W33", severity = "warning",
    message = "Cognito identity pool allows unauthenticated identities",
    reason = "Guest identities get AWS credentials without signing in; make sure their role grants "
      .. "almost nothing.",
    types = { "AWS::Cognito::IdentityPool" },
    check = function(r, _, _, ctx)
      local ok, via = ctx:possibly(props(r).AllowUnauthenticatedIdentities, util.truthy)
      if ok then return { { path = { "Properties", "AllowUnauthenticatedIdentities" }, detail = via } } end
    end,
  },
  {
    id = "W35", severity = "warning",
    message = "EKS cluster does not envelope-encrypt Kubernetes secrets",
    reason = "EncryptionConfig with a KMS key for 'secrets' encrypts Secret objects in etcd with a "
      .. "key you control.",
    types = { "AWS::EKS::Cluster" },
    check = function(r, _, _, ctx)
      for _, item in ipairs(ctx:items(props(r).EncryptionConfig)) do
        if type(item.v) == "table" then
          for _, s in ipairs(ctx:strings(item.v.Resources)) do
            if s == "secrets" then return nil end
          end
        end
      end
      return { { path = { "Properties", "EncryptionConfig" } } }
    end,
  },
  {
    id = "W36", severity = "warning",
    message = "CloudWatch log group has no retention period",
    reason = "Without RetentionInDays logs are kept (and paid for) forever, including whatever "
      .. "sensitive data they captured.",
    types = { "AWS::Logs::LogGroup" },
    check = require_set({ "RetentionInDays" }),
  },
  {
    id = "W40", severity = "warning",
    message = "ECR repository does not scan images on push",
    reason = "Scanning on push reports known CVEs in an image before it is deployed.",
    types = { "AWS::ECR::Repository" },
    check = util.require_true({ "ImageScanningConfiguration", "ScanOnPush" }),
  },
  {
    id = "W37", severity = "warning",
    message = "Credentials in AWS::CloudFormation::Authentication metadata",
    reason = "Access keys and passwords in cfn-init authentication metadata are readable by anyone "
      .. "who can describe the stack; use a role (type S3 with roleName) instead.",
    types = { "*" }, aliases = { "W1" },
    check = function(r, _, _, ctx)
      local auth = type(r.Metadata) == "table" and r.Metadata["AWS::CloudFormation::Authentication"]
      if type(auth) ~= "table" then return nil end
      local found = {}
      for _, name in ipairs(sorted_keys(auth)) do
        local a = auth[name]
        if type(a) == "table" then
          for _, key in ipairs({ "accessKeyId", "secretKey", "password" }) do
            if a[key] ~= nil then
              local why = ctx:plaintext(a[key])
              if why then
                found[#found + 1] = { path = { "Metadata", "AWS::CloudFormation::Authentication", name, key },
                  detail = name .. "." .. key .. " is " .. why }
              end
            end
          end
        end
      end
      return found
    end,
  },
}

return rules
