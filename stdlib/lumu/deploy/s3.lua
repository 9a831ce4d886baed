--- lumu.deploy.s3: the lumu-managed template bucket and uploads.
--
-- local s3 = require "lumu.deploy.s3"
--
-- s3.ensure_bucket(call, bucket, region) -> "exists"|"created" | nil, err
--   call(service, op, params) -> res | nil, err (the engine's retrying call).
--   A missing bucket is created: SSE-S3 (AES256, bucket key), public access
--   blocked, a bucket policy denying non-TLS requests, then versioning (last:
--   a bucket whose versioning is "Enabled" is known to be complete, so a
--   creation that was interrupted is finished on the next run).
--   BucketAlreadyOwnedByYou is fine; a bucket of another account is an error
--   naming the template_bucket option.
-- s3.key(stack, body) -> "templates/<stack>/<sha256 prefix>.json"
--   (content-addressed: an unchanged template keeps its URL)
-- s3.url(endpoint, bucket, key, region) -> URL CloudFormation can read:
--   https://<bucket>.s3.<region>.amazonaws.com/<key> for AWS endpoints
--   (.amazonaws.com.cn in China), else path style on the custom endpoint
--   (<endpoint>/<bucket>/<key>: LocalStack, moto, tests).
-- s3.put(call, bucket, key, body, content_type) -> true | nil, err
local crypto = require "lumu.crypto"
local json = require "lumu.json"

local M = {}

function M.key(stack, body)
  return "templates/" .. stack .. "/" .. crypto.hex(crypto.sha256(body)):sub(1, 32) .. ".json"
end

function M.url(endpoint, bucket, key, region)
  local host = type(endpoint) == "string" and endpoint:match("^%a+://([^/:]+)") or nil
  if host == nil or host:match("amazonaws%.com$") or host:match("amazonaws%.com%.cn$") then
    local suffix = (host and host:match("amazonaws%.com%.cn$")) and "amazonaws.com.cn" or "amazonaws.com"
    return "https://" .. bucket .. ".s3." .. (region or "us-east-1") .. "." .. suffix .. "/" .. key
  end
  return (endpoint:gsub("/+$", "")) .. "/" .. bucket .. "/" .. key
end

local function tls_policy(bucket)
  return json.encode({
    Version = "2012-10-17",
    Statement = json.array({ {
      Sid = "DenyInsecureTransport", Effect = "Deny", Principal = "*", Action = "s3:*",
      Resource = json.array({ "arn:aws:s3:::" .. bucket, "arn:aws:s3:::" .. bucket .. "/*" }),
      Condition = { Bool = { ["aws:SecureTransport"] = "false" } },
    } }),
  })
end

function M.ensure_bucket(call, bucket, region)
  local v, err = call("s3", "GetBucketVersioning", { Bucket = bucket })
  if v and v.Status == "Enabled" then return "exists" end
  if not v then
    if err and err.code ~= "NoSuchBucket" and err.status ~= 404 then
      if err.code == "AccessDenied" or err.status == 403 then
        return nil, "template bucket " .. bucket .. " belongs to another account (AccessDenied): choose another"
          .. " name with the template_bucket option"
      end
      return nil, "template bucket " .. bucket .. ": " .. tostring(err)
    end
    local params = { Bucket = bucket }
    if region and region ~= "us-east-1" then
      params.CreateBucketConfiguration = { LocationConstraint = region }
    end
    local _, cerr = call("s3", "CreateBucket", params)
    if cerr and cerr.code ~= "BucketAlreadyOwnedByYou" then
      return nil, "cannot create template bucket " .. bucket .. ": " .. tostring(cerr)
    end
  end
  local steps = {
    { "PutPublicAccessBlock", { Bucket = bucket, PublicAccessBlockConfiguration = {
      BlockPublicAcls = true, IgnorePublicAcls = true, BlockPublicPolicy = true, RestrictPublicBuckets = true } } },
    { "PutBucketEncryption", { Bucket = bucket, ServerSideEncryptionConfiguration = { Rules = { {
      ApplyServerSideEncryptionByDefault = { SSEAlgorithm = "AES256" }, BucketKeyEnabled = true } } } } },
    { "PutBucketPolicy", { Bucket = bucket, Policy = tls_policy(bucket) } },
    { "PutBucketVersioning", { Bucket = bucket, VersioningConfiguration = { Status = "Enabled" } } },
  }
  for _, st in ipairs(steps) do
    local _, serr = call("s3", st[1], st[2])
    if serr then return nil, "template bucket " .. bucket .. ": " .. st[1] .. ": " .. tostring(serr) end
  end
  return "created"
end

function M.put(call, bucket, key, body, content_type)
  local _, err = call("s3", "PutObject", { Bucket = bucket, Key = key, Body = body,
    ContentType = content_type or "application/json" })
  if err then return nil, "upload s3://" .. bucket .. "/" .. key .. ": " .. tostring(err) end
  return true
end

return M
