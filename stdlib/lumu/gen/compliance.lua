--- Compliance as code: the `<ns>-compliance-<env>` stacks (AWS Config rules,
-- recorder and delivery channel) from `compliance{...}` / `compliance:`.
--
-- local compliance = require "lumu.gen.compliance"
-- compliance.stacks(model, ctx) -> list of descriptors (lumu.gen.common) | nil, err
--   ctx = {namespace=, environments = {name...} | nil (every compliance
--   environment)}.  No model.compliance: {}.  One stack per environment of
--   compliance.environments (default every environment), in that order,
--   kind "compliance", parameters Namespace and EnvironmentName.
--   err is "compliance.<key>: message" (a rule name too long for AWS).
-- compliance.rules(c) -> the effective rule list of a model.compliance:
--   the DEFAULT_RULES (unless defaults = false) minus `exclude` (identifier
--   or name), each replaced by a user rule with the same name or managed
--   identifier, then the other user rules in order.  Each rule: {name=,
--   identifier= | lambdaArn=, description=, parameters=, resourceTypes=,
--   frequency=, account=, default = true (from DEFAULT_RULES)}.
-- compliance.template(info) -> template table   (tests)
-- compliance.DEFAULT_RULES: the sensible default set (AWS managed rules):
--   encrypted EBS volumes, restricted SSH, S3 public access prohibited, S3
--   TLS-only and default encryption, RDS storage encrypted and not public,
--   ECR scan on push, and the account-level root MFA, no root access key
--   and CloudTrail enabled.
--
-- Stacks.  AWS allows ONE configuration recorder (and delivery channel) per
-- account and region, so they live in the stacks of
-- compliance.recorder.environments only (default: the first compliance
-- environment; list more when environments live in other accounts or
-- regions, none when the account already records).  Such a stack has:
--   ConfigRole (unless recorder.roleArn): trusted by config.amazonaws.com,
--     the AWS_ConfigRole managed policy and delivery to the bucket (the
--     stack then needs CAPABILITY_IAM: descriptor.capabilities);
--   ComplianceBucket (unless delivery.bucket): SSE-S3, public access
--     blocked, bucket owner enforced, versioned (old versions expire after
--     365 days), retained on delete; ComplianceBucketPolicy denies non-TLS
--     access and lets AWS Config (of this account only) check the bucket
--     and write AWSLogs/<account>/Config/;
--   ConfigRecorder (all supported types + global ones by default, or
--     recorder.resourceTypes) and DeliveryChannel (snapshot every
--     delivery.frequency, optional prefix and SNS topic).
-- Account-level rules (account = true: root MFA, root access key,
-- CloudTrail) go only to the first recorder stack (or the first compliance
-- stack when none records); every other rule goes to every stack, named
-- `<ns>-<env>-<name>` (account rules `<ns>-<name>`), scoped to its
-- resourceTypes, depending on the recorder when the stack has one.  A
-- custom rule (lambdaArn) gets an AWS::Lambda::Permission for AWS Config
-- (this account only) and triggers on configuration changes, or periodically
-- with `frequency`.  Stacks without a recorder depend on the first recorder
-- stack (deployed after it).  An environment whose stack would hold neither
-- a recorder nor a rule (defaults = false, no rules) gets no stack.
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"

local M = {}

local function rule(identifier, name, types, desc, extra)
  local r = { identifier = identifier, name = name, resourceTypes = types, description = desc, parameters = {},
    default = true }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

M.DEFAULT_RULES = {
  rule("ENCRYPTED_VOLUMES", "encrypted-volumes", { "AWS::EC2::Volume" }, "attached EBS volumes are encrypted"),
  rule("INCOMING_SSH_DISABLED", "restricted-ssh", { "AWS::EC2::SecurityGroup" },
    "security groups do not allow SSH from 0.0.0.0/0"),
  rule("S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED", "s3-bucket-level-public-access-prohibited", { "AWS::S3::Bucket" },
    "S3 buckets block public access"),
  rule("S3_BUCKET_SSL_REQUESTS_ONLY", "s3-bucket-ssl-requests-only", { "AWS::S3::Bucket" },
    "S3 bucket policies deny requests without TLS"),
  rule("S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED", "s3-bucket-server-side-encryption-enabled", { "AWS::S3::Bucket" },
    "S3 buckets encrypt objects by default"),
  rule("RDS_STORAGE_ENCRYPTED", "rds-storage-encrypted", { "AWS::RDS::DBInstance" },
    "RDS instances encrypt their storage"),
  rule("RDS_INSTANCE_PUBLIC_ACCESS_CHECK", "rds-instance-public-access-check", { "AWS::RDS::DBInstance" },
    "RDS instances are not publicly accessible"),
  rule("ECR_PRIVATE_IMAGE_SCANNING_ENABLED", "ecr-private-image-scanning-enabled", { "AWS::ECR::Repository" },
    "ECR repositories scan images on push"),
  rule("ROOT_ACCOUNT_MFA_ENABLED", "root-account-mfa-enabled", {}, "the root user has MFA",
    { account = true, frequency = "TwentyFour_Hours" }),
  rule("IAM_ROOT_ACCESS_KEY_CHECK", "iam-root-access-key-check", {}, "the root user has no access key",
    { account = true, frequency = "TwentyFour_Hours" }),
  rule("CLOUD_TRAIL_ENABLED", "cloudtrail-enabled", {}, "a CloudTrail trail is enabled",
    { account = true, frequency = "TwentyFour_Hours" }),
}

local MAX_RULE_NAME = 128

local res = common.resource

function M.rules(c)
  local user = c.rules or {}
  local by_name, by_id = {}, {}
  for _, r in ipairs(user) do
    if r.name then by_name[r.name:lower()] = r end
    if r.identifier then by_id[r.identifier] = by_id[r.identifier] or r end
  end
  local excluded = {}
  for _, x in ipairs(c.exclude or {}) do excluded[x] = true; excluded[x:lower()] = true end
  local out, used = {}, {}
  if c.defaults ~= false then
    for _, d in ipairs(M.DEFAULT_RULES) do
      if not excluded[d.identifier] and not excluded[d.name] then
        local u = by_name[d.name] or by_id[d.identifier]
        if u and not used[u] then
          used[u] = true
          local merged = {}
          for k, v in pairs(u) do merged[k] = v end
          if merged.account == nil then merged.account = d.account end
          if merged.frequency == nil and merged.identifier == d.identifier then merged.frequency = d.frequency end
          if (merged.resourceTypes == nil or #merged.resourceTypes == 0) and merged.identifier == d.identifier then
            merged.resourceTypes = d.resourceTypes
          end
          out[#out + 1] = merged
        elseif not u then
          out[#out + 1] = d
        end
      end
    end
  end
  for _, u in ipairs(user) do
    if not used[u] then out[#out + 1] = u end
  end
  return out
end

-- "restricted-ssh" -> "RestrictedSsh" (a logical id part)
local function camel(name)
  local s = tostring(name):gsub("[^%w]+(%w?)", function(c) return c:upper() end)
  return (s:gsub("^%l", string.upper))
end

local function sorted_pairs_object(t)
  local keys = {}
  for k in pairs(t or {}) do if type(k) == "string" and k:sub(1, 1) ~= "_" then keys[#keys + 1] = k end end
  if #keys == 0 then return nil end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[k] = tostring(t[k]) end
  return out
end

local function config_rule(t, r, info, deps)
  local id = "Rule" .. camel(r.name)
  local name = r.account and (info.ns .. "-" .. r.name) or (info.ns .. "-" .. info.name .. "-" .. r.name)
  local source
  local extra_deps = {}
  for _, d in ipairs(deps) do extra_deps[#extra_deps + 1] = d end
  if r.lambdaArn then
    local perm = res(t, id .. "Permission", "AWS::Lambda::Permission",
      "lets AWS Config (this account) invoke the custom rule " .. r.name, {
        Action = "lambda:InvokeFunction", FunctionName = r.lambdaArn, Principal = "config.amazonaws.com",
        SourceAccount = cfn.AccountId,
      })
    extra_deps[#extra_deps + 1] = perm.name
    local details
    if r.frequency then
      details = { { EventSource = "aws.config", MessageType = "ScheduledNotification",
        MaximumExecutionFrequency = r.frequency } }
    else
      details = { { EventSource = "aws.config", MessageType = "ConfigurationItemChangeNotification" },
        { EventSource = "aws.config", MessageType = "OversizedConfigurationItemChangeNotification" } }
    end
    source = { Owner = "CUSTOM_LAMBDA", SourceIdentifier = r.lambdaArn, SourceDetails = details }
  else
    source = { Owner = "AWS", SourceIdentifier = r.identifier }
  end
  local props = {
    ConfigRuleName = name,
    Description = r.description
      or (r.lambdaArn and ("custom rule " .. r.name) or ("AWS managed rule " .. r.identifier)),
    Source = source,
    InputParameters = sorted_pairs_object(r.parameters),
  }
  if r.resourceTypes and #r.resourceTypes > 0 then
    props.Scope = { ComplianceResourceTypes = { table.unpack(r.resourceTypes) } }
  end
  if r.frequency and not r.lambdaArn then props.MaximumExecutionFrequency = r.frequency end
  local opts = nil
  if #extra_deps > 0 then opts = { DependsOn = extra_deps } end
  res(t, id, "AWS::Config::ConfigRule", (r.lambdaArn and "custom" or "managed") .. " Config rule " .. r.name,
    props, opts)
  return name
end

local function bucket_resources(t, info)
  local d = info.delivery
  local bucket = res(t, "ComplianceBucket", "AWS::S3::Bucket", "the AWS Config delivery bucket", {
    BucketEncryption = { ServerSideEncryptionConfiguration = { {
      ServerSideEncryptionByDefault = { SSEAlgorithm = "AES256" }, BucketKeyEnabled = false } } },
    PublicAccessBlockConfiguration = { BlockPublicAcls = true, BlockPublicPolicy = true,
      IgnorePublicAcls = true, RestrictPublicBuckets = true },
    OwnershipControls = { Rules = { { ObjectOwnership = "BucketOwnerEnforced" } } },
    VersioningConfiguration = { Status = "Enabled" },
    LifecycleConfiguration = { Rules = { { Id = "expire-old-versions", Status = "Enabled",
      NoncurrentVersionExpiration = { NoncurrentDays = 365 } } } },
    Tags = { { Key = "mu:environment", Value = cfn.Ref("EnvironmentName") } },
  }, { DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain" })
  local arn = bucket:getatt("Arn")
  local prefix = d.prefix and (d.prefix .. "/") or ""
  local source = { StringEquals = { ["AWS:SourceAccount"] = cfn.AccountId } }
  res(t, "ComplianceBucketPolicy", "AWS::S3::BucketPolicy",
    "the delivery bucket policy (TLS only; AWS Config of this account)", {
      Bucket = bucket,
      PolicyDocument = { Version = "2012-10-17", Statement = {
        { Sid = "DenyInsecureTransport", Effect = "Deny", Principal = "*", Action = "s3:*",
          Resource = { arn, cfn.Join("", { arn, "/*" }) },
          Condition = { Bool = { ["aws:SecureTransport"] = "false" } } },
        { Sid = "AWSConfigBucketPermissionsCheck", Effect = "Allow", Principal = { Service = "config.amazonaws.com" },
          Action = "s3:GetBucketAcl", Resource = arn, Condition = source },
        { Sid = "AWSConfigBucketExistenceCheck", Effect = "Allow", Principal = { Service = "config.amazonaws.com" },
          Action = "s3:ListBucket", Resource = arn, Condition = source },
        { Sid = "AWSConfigBucketDelivery", Effect = "Allow", Principal = { Service = "config.amazonaws.com" },
          Action = "s3:PutObject",
          Resource = cfn.Join("", { arn, "/" .. prefix .. "AWSLogs/", cfn.AccountId, "/Config/*" }),
          Condition = source },
      } },
    })
  return bucket.ref
end

local function recorder_resources(t, info)
  local d, r = info.delivery, info.recorder
  local bucket_name
  local deps = { "ConfigRecorder" } -- AWS Config wants the recorder before the channel
  if d.bucket then
    bucket_name = d.bucket
  else
    bucket_name = bucket_resources(t, info)
    deps[#deps + 1] = "ComplianceBucketPolicy"
  end
  local role_arn
  if r.roleArn then
    role_arn = r.roleArn
  else
    local bucket_arn = d.bucket and cfn.Sub("arn:${AWS::Partition}:s3:::" .. d.bucket)
      or cfn.GetAtt("ComplianceBucket", "Arn")
    local statements = {
      { Sid = "Delivery", Effect = "Allow", Action = { "s3:PutObject" },
        Resource = cfn.Join("", { bucket_arn, "/" .. (d.prefix and (d.prefix .. "/") or "") .. "AWSLogs/",
          cfn.AccountId, "/Config/*" }) },
      { Sid = "DeliveryCheck", Effect = "Allow", Action = { "s3:GetBucketAcl" }, Resource = bucket_arn },
    }
    if d.snsTopicArn then
      statements[#statements + 1] = { Sid = "Notify", Effect = "Allow", Action = { "sns:Publish" },
        Resource = d.snsTopicArn }
    end
    local role = res(t, "ConfigRole", "AWS::IAM::Role", "the role AWS Config records and delivers with", {
      AssumeRolePolicyDocument = { Version = "2012-10-17", Statement = { {
        Effect = "Allow", Principal = { Service = { "config.amazonaws.com" } }, Action = { "sts:AssumeRole" },
        Condition = { StringEquals = { ["AWS:SourceAccount"] = cfn.AccountId } } } } },
      ManagedPolicyArns = { cfn.Sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AWS_ConfigRole") },
      Policies = { { PolicyName = "delivery", PolicyDocument = { Version = "2012-10-17", Statement = statements } } },
    })
    role_arn = role:getatt("Arn")
    info.capabilities = { "CAPABILITY_IAM" }
  end
  local group
  if r.allSupported then
    group = { AllSupported = true, IncludeGlobalResourceTypes = r.includeGlobalResourceTypes ~= false }
  else
    group = { AllSupported = false, IncludeGlobalResourceTypes = false,
      ResourceTypes = { table.unpack(r.resourceTypes) } }
  end
  res(t, "ConfigRecorder", "AWS::Config::ConfigurationRecorder", "the AWS Config recorder of this account and region", {
    Name = cfn.StackName, RoleARN = role_arn, RecordingGroup = group,
  })
  res(t, "DeliveryChannel", "AWS::Config::DeliveryChannel", "where AWS Config delivers snapshots and history", {
    Name = cfn.StackName, S3BucketName = bucket_name, S3KeyPrefix = d.prefix, SnsTopicARN = d.snsTopicArn,
    ConfigSnapshotDeliveryProperties = { DeliveryFrequency = d.frequency or "TwentyFour_Hours" },
  }, { DependsOn = deps })
  t:output("ConfigRecorderName", cfn.Ref("ConfigRecorder"), { description = "The AWS Config recorder" })
  t:output("DeliveryBucket", d.bucket or cfn.Ref("ComplianceBucket"),
    { description = "Where AWS Config delivers", export = cfn.Sub("${AWS::StackName}-DeliveryBucket") })
end

--- info = {ns=, name= (environment), rules= (effective), recorder= (bool),
-- account= (bool: holds the account rules), delivery=, recorder_settings=}
function M.template(info)
  local t = cfn.template({ description = "lumu compliance (AWS Config rules"
    .. (info.has_recorder and ", recorder and delivery channel" or "") .. ") for environment " .. info.name })
  t:parameter("Namespace", { Type = "String", Description = "Namespace for stack prefixes" })
  t:parameter("EnvironmentName", { Type = "String", Description = "Name of environment used for resource namespace" })
  if info.has_recorder then recorder_resources(t, info) end
  local deps = info.has_recorder and { "ConfigRecorder", "DeliveryChannel" } or {}
  local names = {}
  for _, r in ipairs(info.rules) do
    if not r.account or info.account then
      names[#names + 1] = config_rule(t, r, info, deps)
    end
  end
  if #names > 0 then
    t:output("ConfigRuleNames", table.concat(names, ","), { description = "The AWS Config rules of this stack" })
  end
  return t:to_table({ consume = true }), names
end

local function contains(list, name)
  for _, x in ipairs(list or {}) do
    if x:lower() == name:lower() then return true end
  end
  return false
end

function M.stacks(model, ctx)
  local c = model.compliance
  if not c then return {} end
  ctx = ctx or {}
  local ns = ctx.namespace or model.namespace or "mu"
  local rules = M.rules(c)
  for _, r in ipairs(rules) do
    local longest = #ns + 1 + #r.name
    for _, e in ipairs(c.environments or {}) do
      if not r.account then longest = math.max(longest, #ns + #e + 2 + #r.name) end
    end
    if longest > MAX_RULE_NAME then
      return nil, "compliance.rules: rule name '" .. r.name .. "' makes a Config rule name longer than "
        .. MAX_RULE_NAME .. " characters (<namespace>-<environment>-<name>)"
    end
  end
  local recorder_envs = (c.recorder and c.recorder.environments) or {}
  local account_env = recorder_envs[1] or (c.environments or {})[1]
  local first_recorder = recorder_envs[1] and common.stack_name(ns, "compliance", recorder_envs[1]) or nil
  local out = {}
  for _, env in ipairs(c.environments or {}) do
    if ctx.environments == nil or contains(ctx.environments, env) then
      local info = {
        ns = ns, name = env, rules = rules,
        has_recorder = contains(recorder_envs, env),
        account = account_env ~= nil and env:lower() == account_env:lower(),
        delivery = c.delivery or {}, recorder = c.recorder or { allSupported = true },
      }
      local tpl, names = M.template(info)
      local depends = {}
      if not info.has_recorder and first_recorder then depends[1] = first_recorder end
      local d = common.stack({
        name = common.stack_name(ns, "compliance", env), kind = "compliance", env = env,
        template = tpl, parameters = { Namespace = ns, EnvironmentName = env },
        tags = common.tags("compliance", { environment = env }),
        depends = depends,
        description = "AWS Config rules" .. (info.has_recorder and ", recorder and delivery channel" or "")
          .. " for environment " .. env,
      })
      d.capabilities = info.capabilities
      -- a stack without recorder and without rules would have no resource
      if info.has_recorder or #names > 0 then out[#out + 1] = d end
    end
  end
  return out
end

return M
