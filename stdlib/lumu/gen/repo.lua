--- The ECR repository stack of a service: <ns>-repo-<svc> (mu.md §4 row 6).
--
-- local repo = require "lumu.gen.repo"
-- repo.stack(model, svc, ctx) -> descriptor (kind "repo")
--   ECR::Repository named <ns>-<svc> (mu's RepoName; lower case, as ECR
--   wants), scan on push, tag mutability, AES256 encryption and a lifecycle
--   policy: untagged images expire after `untaggedDays` (default 14), and
--   only the newest `maxImages` (default 100) images are kept.  Settings
--   come from svc.repository = {scanOnPush = true, immutableTags = false,
--   maxImages = 100, untaggedDays = 14} when the model has it.  When
--   environments are in other accounts than the tools account (tools{account=},
--   where the repository is), a repository policy lets those accounts pull.
--   Outputs, exported as <stack>-<Output>: RepoUrl
--   (<acct>.dkr.ecr.<region>.<suffix>/<name>), RepoArn, RepoName.
-- repo.stacks(model, ctx) -> one descriptor per service without
--   imageRepository.
-- repo.lifecycle_policy(max_images, untagged_days) -> JSON text
local cfn = require "lumu.cfn"
local json = require "lumu.json"
local common = require "lumu.gen.common"

local M = {}

function M.lifecycle_policy(max_images, untagged_days)
  local policy = {
    rules = {
      {
        rulePriority = 1,
        description = "expire untagged images after " .. untagged_days .. " days",
        selection = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days",
          countNumber = untagged_days },
        action = { type = "expire" },
      },
      {
        rulePriority = 2,
        description = "keep the newest " .. max_images .. " images",
        selection = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = max_images },
        action = { type = "expire" },
      },
    },
  }
  return json.encode(policy, { sort_keys = true })
end

function M.stack(model, svc, ctx)
  local ns = ctx.namespace or model.namespace or "mu"
  local name = common.stack_name(ns, "repo", svc.name)
  local opts = svc.repository or {}
  local scan = opts.scanOnPush ~= false
  local immutable = opts.immutableTags == true
  local max_images = math.tointeger(opts.maxImages) or 100
  local untagged = math.tointeger(opts.untaggedDays) or 14
  local services = require "lumu.gen.services"
  local repo_name = services.repo_name(ns, svc)
  -- environments in other accounts pull from here (lumu.gen.services.image_account)
  local pullers, seen = {}, {}
  for _, env in ipairs(model.environments or {}) do
    if not svc.imageRepository and services.image_account(model, env) and not seen[tostring(env.account)] then
      seen[tostring(env.account)] = true
      pullers[#pullers + 1] = cfn.Sub("arn:${AWS::Partition}:iam::" .. tostring(env.account) .. ":root")
    end
  end

  local t = cfn.template({ description = "lumu: ECR repository for service " .. svc.name })
  local params = {}
  t:parameter("RepoName", { Type = "String", Description = "Name of the ECR repository", Default = repo_name })
  params.RepoName = repo_name
  local r = t:resource("Repo", "AWS::ECR::Repository", {
    RepositoryName = cfn.Ref("RepoName"),
    ImageScanningConfiguration = { ScanOnPush = scan },
    ImageTagMutability = immutable and "IMMUTABLE" or "MUTABLE",
    EncryptionConfiguration = { EncryptionType = "AES256" },
    LifecyclePolicy = { LifecyclePolicyText = M.lifecycle_policy(max_images, untagged) },
    RepositoryPolicyText = #pullers > 0 and {
      Version = "2012-10-17",
      Statement = { {
        Sid = "PullFromEnvironmentAccounts", Effect = "Allow",
        Principal = { AWS = pullers },
        Action = { "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer" },
      } },
    } or nil,
  }, { Metadata = { ["lumu:description"] = "container images of service " .. svc.name } })
  t:output("RepoUrl", cfn.Sub("${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/${Repo}"),
    { description = "URL to docker push/pull", export = common.export_name(name, "RepoUrl") })
  t:output("RepoArn", r:getatt("Arn"), { export = common.export_name(name, "RepoArn") })
  t:output("RepoName", r.ref, { export = common.export_name(name, "RepoName") })

  return common.stack({
    name = name, kind = "repo", service = svc.name,
    template = t:to_table({ consume = true }), parameters = params,
    tags = common.tags("repo", { service = svc.name }),
    depends = {},
    description = "ECR repository " .. repo_name,
  })
end

function M.stacks(model, ctx)
  ctx = ctx or {}
  local out = {}
  for _, svc in ipairs(model.services or {}) do
    if not svc.imageRepository then out[#out + 1] = M.stack(model, svc, ctx) end
  end
  return out
end

return M
