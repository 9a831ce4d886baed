--- The Service Catalog "pipeline factory" (mu.md §3.1 catalog, §4 rows 8 and
-- 15-17, §5.5 catalog up): pure Lua, no AWS calls.
--
-- local catalog = require "lumu.gen.catalog"
--
-- catalog.stacks(model, ctx) -> descriptors | nil, err   (empty list when
--   model.catalog is nil).  ctx as for lumu.gen.pipeline (namespace,
--   version, baseurl, basedir).  In deploy order:
--   1. `<ns>-bucket-servicecatalog` (kind "bucket"): the template bucket
--      (SSE-S3: product templates hold no secrets and Service Catalog reads
--      them with the caller's credentials; versioned, public access blocked,
--      owner-enforced, TLS-only).  Export Bucket.
--   2. `<ns>-iam-portfolio-common` (kind "iam", CAPABILITY_IAM): the catalog
--      users group (AWSServiceCatalogEndUserFullAccess) with `iamUsers`
--      added, and the launch role Service Catalog provisions with.  The
--      launch role may only manage what a pipeline product creates: stacks
--      `SC-*`, roles under `/<ns>/pipeline/` (and pass them to CodePipeline,
--      CodeBuild and EventBridge), keys and `alias/<ns>-pipeline-*`,
--      buckets `sc-*`, pipelines `<ns>-*`, projects and topics
--      `<ns>-pipeline-*`, rules `SC-*`, connections (pass/use), and read
--      the catalog bucket.  Exports CatalogGroupArn, CatalogRoleArn.
--   3. `<ns>-portfolio-common` (kind "portfolio"): the portfolio and its
--      principal association with the group.  Export PortfolioId.
--   4. `<ns>-product-<name>` per catalog pipeline (kind "product"): the
--      product with one provisioning artifact per version (versions in
--      natural order: v1, v2, ..., v10), its portfolio association and the
--      launch role constraint.  Export ProductId.
--      descriptor.assets = { {key=, body=, content_type="application/json",
--      bucket_stack="<ns>-bucket-servicecatalog", bucket_output="Bucket",
--      version=} ... }: the version templates the deployer uploads BEFORE
--      the product stack (key "products/<name>/<version>/pipeline-<sha256
--      prefix>.json", so a changed template gets a new URL).
-- A version's template is lumu.gen.pipeline.product_template of that
-- version's pipeline config: IAM + key + bucket + pipeline in one template,
-- parameters ServiceName, SourceRepo + SourceBranch (or SourceBucket +
-- SourceObjectKey), ConnectionArn (GitHub through a connection: required
-- unless the version gives source.connectionArn), GitHubToken (NoEcho, with
-- ctx.github_token = "parameter"), AcptEnv/ProdEnv (defaults from config);
-- Namespace is fixed to the catalog's namespace.
-- catalog.version_template(model, vcfg, opts) -> template table | nil, err
-- catalog.sort_versions(map) -> sorted list of version names
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"
local pipeline = require "lumu.gen.pipeline"
local json = require "lumu.json"

local M = {}

local arr = common.array

local res = common.resource

local stmt = common.statement

local function arn(service, suffix)
  return cfn.Sub("arn:${AWS::Partition}:" .. service .. ":${AWS::Region}:${AWS::AccountId}:" .. suffix)
end

--- Natural order: v1 < v2 < v10 < v10a; then byte order.
function M.sort_versions(map)
  local list = {}
  for k in pairs(map or {}) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then list[#list + 1] = k end
  end
  local function parts(s)
    local out = {}
    for text, num in s:gmatch("(%D*)(%d*)") do
      if text ~= "" then out[#out + 1] = text end
      if num ~= "" then out[#out + 1] = tonumber(num) end
    end
    return out
  end
  table.sort(list, function(a, b)
    local pa, pb = parts(a), parts(b)
    for i = 1, math.max(#pa, #pb) do
      local x, y = pa[i], pb[i]
      if x == nil then return true end
      if y == nil then return false end
      if type(x) ~= type(y) then return type(x) == "number" end
      if x ~= y then return x < y end
    end
    return a < b
  end)
  return list
end

M.names = common.catalog_names

local function bucket_template()
  local t = cfn.template({ description = "lumu Service Catalog template bucket" })
  local b = res(t, "CatalogBucket", "AWS::S3::Bucket", "Templates of the catalog's product versions", {
    BucketEncryption = { ServerSideEncryptionConfiguration = arr({ {
      ServerSideEncryptionByDefault = { SSEAlgorithm = "AES256" },
    } }) },
    PublicAccessBlockConfiguration = {
      BlockPublicAcls = true, BlockPublicPolicy = true, IgnorePublicAcls = true, RestrictPublicBuckets = true,
    },
    OwnershipControls = { Rules = arr({ { ObjectOwnership = "BucketOwnerEnforced" } }) },
    VersioningConfiguration = { Status = "Enabled" },
  }, { DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain" })
  local barn = b:getatt("Arn")
  res(t, "CatalogBucketPolicy", "AWS::S3::BucketPolicy", "TLS-only access to the template bucket", {
    Bucket = b,
    PolicyDocument = { Version = "2012-10-17", Statement = arr({ {
      Sid = "DenyInsecureTransport", Effect = "Deny", Principal = "*", Action = "s3:*",
      Resource = arr({ barn, cfn.Sub("${B}/*", { B = barn }) }),
      Condition = { Bool = { ["aws:SecureTransport"] = "false" } },
    } }) },
  })
  t:output("Bucket", b, { description = "Bucket holding the product templates",
    export = cfn.Sub("${AWS::StackName}-Bucket") })
  return t
end

local function iam_template(ns, users)
  local t = cfn.template({ description = "lumu Service Catalog IAM: catalog users group and launch role" })
  t:parameter("Namespace", { Type = "String", Default = ns, AllowedValues = arr({ ns }),
    Description = "Namespace for stack prefixes" })
  t:parameter("CatalogBucket", { Type = "String", Description = "Export name of the template bucket" })
  local group = res(t, "CatalogUsersGroup", "AWS::IAM::Group", "Users allowed to provision catalog pipelines", {
    Path = cfn.Sub("/${Namespace}/catalog/"),
    ManagedPolicyArns = arr({ cfn.Sub("arn:${AWS::Partition}:iam::aws:policy/AWSServiceCatalogEndUserFullAccess") }),
  })
  if #users > 0 then
    res(t, "CatalogUsers", "AWS::IAM::UserToGroupAddition", "catalog.iamUsers in the group", {
      GroupName = group, Users = arr(users),
    })
  end
  local bucket = common.import("CatalogBucket")
  local roles = cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Namespace}/pipeline/*")
  local stacks = arn("cloudformation", "stack/SC-*/*")
  local statements = {
    stmt("ReadProductTemplates", { "s3:GetObject" },
      cfn.Sub("arn:${AWS::Partition}:s3:::${B}/*", { B = bucket })),
    stmt("ProvisionedStacks", { "cloudformation:CreateChangeSet", "cloudformation:CreateStack",
      "cloudformation:DeleteChangeSet", "cloudformation:DeleteStack", "cloudformation:DescribeChangeSet",
      "cloudformation:DescribeStackEvents", "cloudformation:DescribeStacks", "cloudformation:ExecuteChangeSet",
      "cloudformation:GetTemplate", "cloudformation:SetStackPolicy", "cloudformation:UpdateStack" }, stacks),
    stmt("TemplateChecks", { "cloudformation:GetTemplateSummary", "cloudformation:ValidateTemplate" }, "*"),
    stmt("PipelineRoles", { "iam:AttachRolePolicy", "iam:CreateRole", "iam:DeleteRole", "iam:DeleteRolePolicy",
      "iam:DetachRolePolicy", "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies",
      "iam:ListRolePolicies", "iam:PutRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:UpdateAssumeRolePolicy" },
      roles),
    stmt("PassPipelineRoles", { "iam:PassRole" }, roles, { StringEquals = { ["iam:PassedToService"] = arr({
      "codebuild.amazonaws.com", "codepipeline.amazonaws.com", "events.amazonaws.com" }) } }),
    stmt("CreateKeys", { "kms:CreateKey" }, "*"),
    stmt("ManageKeys", { "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey", "kms:EnableKeyRotation",
      "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags", "kms:PutKeyPolicy",
      "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UpdateAlias" }, {
      arn("kms", "key/*"), arn("kms", "alias/${Namespace}-pipeline-*"),
    }),
    stmt("ArtifactBuckets", { "s3:CreateBucket", "s3:DeleteBucket", "s3:DeleteBucketPolicy",
      "s3:GetBucketLocation", "s3:GetBucketPolicy", "s3:GetBucketTagging", "s3:GetBucketVersioning",
      "s3:GetEncryptionConfiguration", "s3:GetLifecycleConfiguration", "s3:ListBucket", "s3:PutBucketOwnershipControls",
      "s3:PutBucketPolicy", "s3:PutBucketPublicAccessBlock", "s3:PutBucketTagging", "s3:PutBucketVersioning",
      "s3:PutEncryptionConfiguration", "s3:PutLifecycleConfiguration" },
      cfn.Sub("arn:${AWS::Partition}:s3:::sc-*")),
    stmt("Pipelines", { "codepipeline:CreatePipeline", "codepipeline:DeletePipeline", "codepipeline:GetPipeline",
      "codepipeline:GetPipelineState", "codepipeline:ListTagsForResource", "codepipeline:TagResource",
      "codepipeline:UntagResource", "codepipeline:UpdatePipeline" }, arn("codepipeline", "${Namespace}-*")),
    stmt("BuildProjects", { "codebuild:BatchGetProjects", "codebuild:CreateProject", "codebuild:DeleteProject",
      "codebuild:UpdateProject" }, arn("codebuild", "project/${Namespace}-pipeline-*")),
    stmt("NotificationTopics", { "sns:CreateTopic", "sns:DeleteTopic", "sns:GetSubscriptionAttributes",
      "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic", "sns:SetTopicAttributes", "sns:Subscribe",
      "sns:TagResource", "sns:Unsubscribe" }, arn("sns", "${Namespace}-pipeline-*")),
    stmt("EventRules", { "events:DeleteRule", "events:DescribeRule", "events:PutRule", "events:PutTargets",
      "events:RemoveTargets" }, arn("events", "rule/SC-*")),
    stmt("Connections", { "codeconnections:GetConnection", "codeconnections:PassConnection",
      "codeconnections:UseConnection", "codestar-connections:GetConnection", "codestar-connections:PassConnection",
      "codestar-connections:UseConnection" }, {
      arn("codeconnections", "connection/*"), arn("codestar-connections", "connection/*"),
    }),
  }
  local launch = res(t, "CatalogLaunchRole", "AWS::IAM::Role", "Service Catalog provisions pipelines with this role", {
    Path = cfn.Sub("/${Namespace}/catalog/"),
    AssumeRolePolicyDocument = {
      Version = "2012-10-17",
      Statement = arr({ {
        Effect = "Allow", Principal = { Service = "servicecatalog.amazonaws.com" }, Action = "sts:AssumeRole",
      } }),
    },
    Policies = arr({ { PolicyName = "ProvisionPipelines",
      PolicyDocument = { Version = "2012-10-17", Statement = arr(statements) } } }),
  })
  t:output("CatalogGroupArn", group:getatt("Arn"), { export = cfn.Sub("${AWS::StackName}-CatalogGroupArn") })
  t:output("CatalogRoleArn", launch:getatt("Arn"), { export = cfn.Sub("${AWS::StackName}-CatalogRoleArn") })
  return t
end

local function portfolio_template(ns)
  local t = cfn.template({ description = "lumu Service Catalog portfolio: the pipeline factory" })
  t:parameter("CatalogGroupArn", { Type = "String", Description = "Export name of the catalog users group ARN" })
  local pf = res(t, "Portfolio", "AWS::ServiceCatalog::Portfolio", "The pipeline factory", {
    DisplayName = ns .. " pipelines", ProviderName = "lumu",
    Description = "Delivery pipelines of namespace " .. ns .. ", provisioned by lumu",
  })
  res(t, "PortfolioPrincipal", "AWS::ServiceCatalog::PortfolioPrincipalAssociation",
    "The catalog users group may use the portfolio", {
      PortfolioId = pf, PrincipalARN = common.import("CatalogGroupArn"), PrincipalType = "IAM",
    })
  t:output("PortfolioId", pf, { export = cfn.Sub("${AWS::StackName}-PortfolioId") })
  return t
end

--- The template of one catalog version (a pipeline record).
function M.version_template(model, vcfg, opts)
  opts = opts or {}
  local cfg, err = pipeline.settings(vcfg, {
    namespace = opts.namespace, catalog = true, path = opts.path, version = opts.version,
    baseurl = opts.baseurl, basedir = opts.basedir, github_token = opts.github_token,
    cfn_role = model.roles and model.roles.cloudFormation,
  })
  if not cfg then return nil, err end
  return pipeline.product_template(cfg):to_table({ consume = true }), cfg.warnings
end

local function product_template(ns, cp, versions)
  local t = cfn.template({ description = "lumu Service Catalog product " .. cp.name })
  t:parameter("PortfolioId", { Type = "String", Description = "Export name of the portfolio id" })
  t:parameter("CatalogRoleArn", { Type = "String", Description = "Export name of the launch role ARN" })
  t:parameter("CatalogBucket", { Type = "String", Description = "Export name of the template bucket" })
  local artifacts = {}
  for _, v in ipairs(versions) do
    artifacts[#artifacts + 1] = {
      Name = v.version,
      Description = (cp.description and cp.description ~= "" and (cp.description .. " ") or "")
        .. "(" .. v.version .. ")",
      Type = "CLOUD_FORMATION_TEMPLATE",
      Info = { LoadTemplateFromURL = cfn.Sub("https://${Bucket}.s3.${AWS::Region}.${AWS::URLSuffix}/" .. v.key,
        { Bucket = common.import("CatalogBucket") }) },
    }
  end
  local product = res(t, "Product", "AWS::ServiceCatalog::CloudFormationProduct", "Pipeline product " .. cp.name, {
    Name = cp.name, Owner = ns, Distributor = "lumu",
    Description = (cp.description and cp.description ~= "") and cp.description or ("lumu pipeline " .. cp.name),
    ProvisioningArtifactParameters = arr(artifacts),
  })
  local assoc = res(t, "PortfolioProduct", "AWS::ServiceCatalog::PortfolioProductAssociation",
    "The product in the portfolio", { PortfolioId = common.import("PortfolioId"), ProductId = product })
  res(t, "LaunchConstraint", "AWS::ServiceCatalog::LaunchRoleConstraint",
    "Provision with the catalog launch role", {
      PortfolioId = common.import("PortfolioId"), ProductId = product, RoleArn = common.import("CatalogRoleArn"),
      Description = "lumu: provision " .. cp.name .. " with the catalog launch role",
    }, { DependsOn = assoc })
  t:output("ProductId", product, { export = cfn.Sub("${AWS::StackName}-ProductId") })
  return t
end

--- See the header.
function M.stacks(model, ctx)
  if type(model) ~= "table" then error("bad argument #1 to 'stacks' (model table expected)", 2) end
  if ctx ~= nil and type(ctx) ~= "table" then error("bad argument #2 to 'stacks' (table expected)", 2) end
  ctx = ctx or {}
  local cat = model.catalog
  if not cat then return {} end
  local ns = ctx.namespace or model.namespace or "mu"
  local names = M.names(ns)
  local crypto = require "lumu.crypto"
  local out = {}
  local users = {}
  for _, u in ipairs(cat.iamUsers or {}) do users[#users + 1] = tostring(u) end
  out[#out + 1] = common.stack({
    name = names.bucket, kind = "bucket", template = bucket_template():to_table({ consume = true }),
    description = "Bucket for the catalog's product templates",
  })
  out[#out + 1] = common.stack({
    name = names.iam, kind = "iam", template = iam_template(ns, users):to_table({ consume = true }),
    parameters = { Namespace = ns, CatalogBucket = common.export_name(names.bucket, "Bucket") },
    depends = { names.bucket }, capabilities = { "CAPABILITY_IAM" },
    description = "Catalog users group and launch role",
  })
  out[#out + 1] = common.stack({
    name = names.portfolio, kind = "portfolio", template = portfolio_template(ns):to_table({ consume = true }),
    parameters = { CatalogGroupArn = common.export_name(names.iam, "CatalogGroupArn") },
    depends = { names.iam },
    description = "Service Catalog portfolio of the pipeline factory",
  })
  for i, cp in ipairs(cat.pipelines or {}) do
    local path = (cp._path or ("catalog.pipelines[" .. i .. "]"))
    if type(cp.name) ~= "string" or not cp.name:match("^[A-Za-z0-9][A-Za-z0-9-]*$") then
      return nil, path .. ".name: invalid catalog pipeline name '" .. tostring(cp.name) .. "'"
    end
    local vnames = M.sort_versions(cp.versions)
    if #vnames == 0 then
      return nil, path .. ".versions: catalog pipeline '" .. cp.name .. "' has no versions"
    end
    local versions, assets, warnings = {}, {}, {}
    for _, v in ipairs(vnames) do
      if not v:match("^[%w%._%-]+$") then
        return nil, path .. ".versions: invalid version name '" .. v .. "' (letters, digits, '.', '_', '-')"
      end
      local body_tbl, w = M.version_template(model, cp.versions[v], {
        namespace = ns, path = path .. ".versions." .. v, version = ctx.version, baseurl = ctx.baseurl,
        basedir = ctx.basedir, github_token = ctx.github_token,
      })
      if not body_tbl then return nil, w end
      for _, x in ipairs(w or {}) do warnings[#warnings + 1] = x end
      require("lumu.gen.nag").annotate(body_tbl) -- the pipeline's justified nag suppressions
      local body = json.encode(body_tbl, { pretty = true })
      local key = "products/" .. cp.name .. "/" .. v .. "/pipeline-" .. crypto.hex(crypto.sha256(body)):sub(1, 16)
        .. ".json"
      versions[#versions + 1] = { version = v, key = key }
      assets[#assets + 1] = { key = key, body = body, content_type = "application/json", version = v,
        bucket_stack = names.bucket, bucket_output = "Bucket" }
    end
    out[#out + 1] = common.stack({
      name = common.stack_name(ns, "product", cp.name), kind = "product",
      template = product_template(ns, cp, versions):to_table({ consume = true }),
      parameters = {
        PortfolioId = common.export_name(names.portfolio, "PortfolioId"),
        CatalogRoleArn = common.export_name(names.iam, "CatalogRoleArn"),
        CatalogBucket = common.export_name(names.bucket, "Bucket"),
      },
      tags = common.tags("product", { name = cp.name }),
      depends = { names.portfolio, names.iam, names.bucket },
      assets = assets, warnings = warnings,
      description = "Service Catalog product " .. cp.name .. " (" .. table.concat(vnames, ", ") .. ")",
    })
  end
  return out
end

return M
