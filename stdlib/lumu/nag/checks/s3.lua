--- Built-in nag rules: S3 buckets.
local util = require "lumu.nag.util"

local props = util.props

local BUCKET = "AWS::S3::Bucket"
local POLICY = "AWS::S3::BucketPolicy"

-- The bucket policies of this template that target bucket `id`.
local function bucket_policies(ctx, id, r)
  local out = {}
  local names = ctx:values(props(r).BucketName)
  for _, e in ipairs(ctx:resources_of(POLICY)) do
    local target = props(e.resource).Bucket
    local hit = ctx:refs(target, id)
    if not hit and #names.unknown == 0 then
      for _, n in ipairs(names) do
        if type(n.v) == "string" and ctx:possibly(target, function(x) return x == n.v end) then hit = true end
      end
    end
    if hit then out[#out + 1] = e end
  end
  return out
end

local function key_lookup(t, wanted)
  if type(t) ~= "table" then return nil end
  for k, v in pairs(t) do
    if type(k) == "string" and k:lower() == wanted:lower() then return v end
  end
  return nil
end

local function any_value(ctx, v, pred)
  for _, e in ipairs(ctx:values(v)) do
    if type(e.v) == "table" and not util.intrinsic(e.v) then
      for _, x in ipairs(e.v) do
        for _, xe in ipairs(ctx:values(x)) do
          if pred(xe.v) then return true end
        end
      end
    elseif pred(e.v) then
      return true
    end
  end
  return false
end

-- A Deny statement refusing requests without TLS (or below TLS 1.2).
local function denies_insecure(ctx, stmt)
  if not ctx:surely(stmt.Effect, function(e) return e == "Deny" end) then return false end
  local cond = stmt.Condition
  if type(cond) ~= "table" then return false end
  for _, op in ipairs({ "Bool", "BoolIfExists" }) do
    local v = key_lookup(key_lookup(cond, op), "aws:SecureTransport")
    if v ~= nil and any_value(ctx, v, util.falsy) then return true end
  end
  local v = key_lookup(key_lookup(cond, "NumericLessThan"), "s3:TlsVersion")
  if v ~= nil then return true end
  return false
end

local function is_log_bucket(ctx, id, r)
  if ctx:possibly(props(r).AccessControl, function(a) return a == "LogDeliveryWrite" end) then return true end
  for _, e in ipairs(ctx:resources_of(BUCKET)) do
    local lc = props(e.resource).LoggingConfiguration
    if type(lc) == "table" and ctx:refs(lc.DestinationBucketName, id) then return true end
  end
  for _, e in ipairs(ctx:resources_of("AWS::CloudTrail::Trail")) do
    if ctx:refs(props(e.resource).S3BucketName, id) then return true end
  end
  for _, e in ipairs(ctx:resources_of("AWS::ElasticLoadBalancingV2::LoadBalancer")) do
    for _, item in ipairs(ctx:items(props(e.resource).LoadBalancerAttributes)) do
      if type(item.v) == "table" and item.v.Key == "access_logs.s3.bucket" and ctx:refs(item.v.Value, id) then
        return true
      end
    end
  end
  for _, e in ipairs(ctx:resources_of("AWS::CloudFront::Distribution")) do
    for _, lg in ipairs(ctx:values(props(e.resource).DistributionConfig, { "Logging", "Bucket" })) do
      if ctx:refs(lg.v, id) then return true end
    end
  end
  return false
end

local function acl_is(names)
  return function(a) return names[a] == true end
end

local rules = {
  {
    id = "F13", severity = "failure",
    message = "S3 bucket grants public write or any-AWS-account read through its ACL",
    reason = "PublicReadWrite lets anyone upload (and overwrite) objects, AuthenticatedRead lets "
      .. "every AWS account read them; use bucket policies with named principals.",
    types = { BUCKET }, aliases = { "F14" },
    check = function(r, _, _, ctx)
      local ok, via = ctx:possibly(props(r).AccessControl, acl_is({ PublicReadWrite = true, AuthenticatedRead = true }))
      if ok then return { { path = { "Properties", "AccessControl" }, detail = via } } end
    end,
  },
  {
    id = "W10", severity = "warning",
    message = "S3 bucket grants public read through its ACL",
    reason = "PublicRead publishes every object; serve public content through CloudFront with an "
      .. "origin access control instead, and keep the bucket private.",
    types = { BUCKET }, aliases = { "W31" },
    check = function(r, _, _, ctx)
      local ok, via = ctx:possibly(props(r).AccessControl, acl_is({ PublicRead = true }))
      if ok then return { { path = { "Properties", "AccessControl" }, detail = via } } end
    end,
  },
  {
    id = "F14", severity = "failure",
    message = "S3 bucket has no default encryption configuration",
    reason = "An explicit BucketEncryption states the algorithm and key (SSE-KMS lets you control "
      .. "and audit access to the key); do not rely on account or service defaults.",
    types = { BUCKET }, aliases = { "W40", "W41" },
    check = function(r, _, _, ctx)
      local ok, detail = ctx:surely(props(r), function(list)
        if type(list) ~= "table" or util.intrinsic(list) or #list == 0 then return false end
        for _, rule in ipairs(list) do
          local ok2 = type(rule) == "table" and ctx:surely(rule, function(a)
            return type(a) == "string" and a ~= ""
          end, { "ServerSideEncryptionByDefault", "SSEAlgorithm" })
          if not ok2 then return false end
        end
        return true
      end, { "BucketEncryption", "ServerSideEncryptionConfiguration" })
      if not ok then
        return { { path = { "Properties", "BucketEncryption" }, detail = "ServerSideEncryptionConfiguration " .. detail } }
      end
    end,
  },
  {
    id = "F15", severity = "failure",
    message = "S3 bucket does not block public access",
    reason = "PublicAccessBlockConfiguration with all four flags true stops a later ACL or policy "
      .. "change from making the bucket public by mistake.",
    types = { BUCKET },
    check = function(r, _, _, ctx)
      local missing = {}
      for _, flag in ipairs({ "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets" }) do
        if not ctx:surely(props(r), util.truthy, { "PublicAccessBlockConfiguration", flag }) then
          missing[#missing + 1] = flag
        end
      end
      if #missing > 0 then
        return { { path = { "Properties", "PublicAccessBlockConfiguration" },
          detail = table.concat(missing, ", ") .. " not true" } }
      end
    end,
  },
  {
    id = "F16", severity = "failure",
    message = "S3 bucket has no bucket policy denying requests without TLS",
    reason = "Only a Deny on aws:SecureTransport = false in the bucket policy stops clients from "
      .. "reading or writing the bucket over plain HTTP.",
    types = { BUCKET }, aliases = { "W51" },
    check = function(r, id, _, ctx)
      local pols = bucket_policies(ctx, id, r)
      for _, e in ipairs(pols) do
        for _, st in ipairs(ctx:statements(props(e.resource).PolicyDocument)) do
          if denies_insecure(ctx, st.stmt) then return nil end
        end
      end
      local detail = #pols == 0 and "no AWS::S3::BucketPolicy in this template targets the bucket"
          or "its bucket policy has no Deny on aws:SecureTransport false"
      return { { path = {}, detail = detail } }
    end,
  },
  {
    id = "W11", severity = "warning",
    message = "S3 bucket versioning is not enabled",
    reason = "Versioning keeps overwritten and deleted objects recoverable after mistakes or "
      .. "ransomware-style deletes.",
    types = { BUCKET },
    check = function(r, _, _, ctx)
      local ok, detail = ctx:surely(props(r), function(s) return s == "Enabled" end, { "VersioningConfiguration", "Status" })
      if not ok then
        return { { path = { "Properties", "VersioningConfiguration" }, detail = "VersioningConfiguration.Status " .. detail } }
      end
    end,
  },
  {
    id = "W12", severity = "warning",
    message = "S3 bucket access logging is not configured",
    reason = "Server access logs record who read or changed objects; they are the evidence an "
      .. "investigation needs.  Buckets that receive logs are exempt.",
    types = { BUCKET }, aliases = { "W35" },
    check = function(r, id, _, ctx)
      if ctx:possibly(props(r).LoggingConfiguration, function(v) return v ~= util.ABSENT and type(v) == "table" end) then
        return nil
      end
      if is_log_bucket(ctx, id, r) then return nil end
      return { { path = { "Properties", "LoggingConfiguration" } } }
    end,
  },
}

return rules
