--- Account vending: a Service Catalog product, in the catalog portfolio, that
-- creates a product team's account with a baseline, so teams get an account
-- without a ticket.  Pure Lua, no AWS calls.
--
-- local vending = require "lumu.gen.vending"
-- vending.stacks(model, ctx) -> descriptors | nil, err   ({} unless
--   model.organization.vending).  ctx = {namespace=}.  In deploy order:
--   * the catalog's bucket, portfolio IAM and portfolio stacks
--     (lumu.gen.catalog) when the model has no `catalog` (the product needs
--     the portfolio);
--   * `<ns>-iam-vending` (kind "iam", CAPABILITY_IAM): the launch role
--     Service Catalog provisions the product with: organizations
--     CreateAccount and the reads that follow it, service-managed StackSets
--     named SC-*, the product's own stacks SC-*, the catalog bucket.
--     Export VendingRoleArn;
--   * `<ns>-product-<vending.name>` (kind "product"): the product (version
--     v1), its portfolio association and the launch role constraint; the
--     version template is an asset (descriptor.assets, as lumu.gen.catalog's
--     products) uploaded to the catalog bucket first.
--   Every stack goes to the management account (organization.account,
--   profile, role): only it may create accounts.  The catalog stacks made
--   by lumu.gen.catalog get the same placement from lumu.synth.
-- vending.product_template(model, ns) -> template table: what a provisioned
--   product runs.  Parameters AccountName, AccountEmail, ToolsAccount
--   (default tools.account), TrailBucket (default vending.trailBucket, else
--   the log archive stack's bucket), DeployRoleName (default vending.deployRoleName,
--   else <ns>-deploy).  Resources: the AWS::Organizations::Account (in
--   vending.unit, imported from `<ns>-org`, or the root; kept on delete) and
--   an AWS::CloudFormation::StackSet (PermissionModel SERVICE_MANAGED,
--   CAPABILITY_NAMED_IAM) deploying vending.baseline_template to exactly the
--   new account (its unit INTERSECTION the account) in vending.regions (default
--   the stack's region).  Outputs AccountId, BaselineStackSetId.
--   Needs trusted access between Organizations and StackSets (once:
--   aws organizations enable-aws-service-access --service-principal
--   member.org.stacksets.cloudformation.amazonaws.com).
-- vending.baseline_template(ns) -> template table: the new account's
--   baseline: a multi-region CloudTrail trail `<ns>-baseline` (log file
--   validation) to TrailBucket; the AWS Config recorder (all supported and
--   global types) and delivery channel to TrailBucket (prefix config); the
--   deploy role DeployRoleName trusted by the tools account's pipeline roles
--   (role path /<ns>/pipeline/, lumu.gen.pipeline): it may run the
--   `<ns>-pipeline-*` CodeBuild projects, use that account's artifact
--   buckets and keys, and read stacks (CodePipeline assumes it for the
--   deploy and test actions).  Outputs DeployRoleArn.
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"
local json = require "lumu.json"
local org = require "lumu.gen.org"

local M = {}

local arr = common.array

local res = common.resource

local stmt = common.statement

function M.names(ns, v)
  return {
    iam = common.stack_name(ns, "iam", "vending"),
    product = common.stack_name(ns, "product", v.name or "account-vending"),
  }
end

--- The baseline of a vended account (a StackSet template).
function M.baseline_template(ns)
  local t = cfn.template({ description = "lumu account baseline: CloudTrail, AWS Config and the pipeline deploy role" })
  t:parameter("Namespace", { Type = "String", Default = ns, Description = "Namespace for stack prefixes" })
  t:parameter("ToolsAccount", { Type = "String", AllowedPattern = "^[0-9]{12}$",
    Description = "Account of the pipelines that deploy here" })
  t:parameter("TrailBucket", { Type = "String", MinLength = 3,
    Description = "The log archive account's CloudTrail bucket" })
  t:parameter("DeployRoleName", { Type = "String", Default = ns .. "-deploy", AllowedPattern = "^[\\w+=,.@-]{1,64}$",
    Description = "Name of the role the tools account's pipelines deploy with" })
  res(t, "Trail", "AWS::CloudTrail::Trail", "multi-region trail to the log archive account", {
    TrailName = ns .. "-baseline", S3BucketName = cfn.Ref("TrailBucket"), IsLogging = true,
    IsMultiRegionTrail = true, IncludeGlobalServiceEvents = true, EnableLogFileValidation = true,
  }, { Metadata = { lumu_nag = { rules_to_suppress = arr({ { id = "W17", reason = "the logs go to the log "
    .. "archive account's private bucket, encrypted at rest (SSE-S3) and versioned, that this account cannot "
    .. "read or delete; log file validation detects tampering" } }) } } })
  local config_role = res(t, "ConfigRole", "AWS::IAM::Role", "the role AWS Config records with", {
    AssumeRolePolicyDocument = { Version = "2012-10-17", Statement = arr({ {
      Effect = "Allow", Principal = { Service = "config.amazonaws.com" }, Action = "sts:AssumeRole",
      Condition = { StringEquals = { ["AWS:SourceAccount"] = cfn.AccountId } } } }) },
    ManagedPolicyArns = arr({ cfn.Sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AWS_ConfigRole") }),
    Policies = arr({ { PolicyName = "delivery", PolicyDocument = { Version = "2012-10-17", Statement = arr({
      stmt("Delivery", { "s3:PutObject" }, cfn.Sub("arn:${AWS::Partition}:s3:::${TrailBucket}/config/AWSLogs/"
        .. "${AWS::AccountId}/*")),
      stmt("DeliveryCheck", { "s3:GetBucketAcl" }, cfn.Sub("arn:${AWS::Partition}:s3:::${TrailBucket}")),
    }) } } }),
  })
  res(t, "ConfigRecorder", "AWS::Config::ConfigurationRecorder", "the AWS Config recorder of the account", {
    Name = ns .. "-baseline", RoleARN = config_role:getatt("Arn"),
    RecordingGroup = { AllSupported = true, IncludeGlobalResourceTypes = true },
  })
  res(t, "DeliveryChannel", "AWS::Config::DeliveryChannel", "AWS Config delivers to the log archive account", {
    Name = ns .. "-baseline", S3BucketName = cfn.Ref("TrailBucket"), S3KeyPrefix = "config",
    ConfigSnapshotDeliveryProperties = { DeliveryFrequency = "TwentyFour_Hours" },
  }, { DependsOn = "ConfigRecorder" })
  local tools_root = cfn.Sub("arn:${AWS::Partition}:iam::${ToolsAccount}:root")
  local deploy = res(t, "DeployRole", "AWS::IAM::Role",
    "the role the tools account's pipelines deploy with (CodePipeline action role)", {
      RoleName = cfn.Ref("DeployRoleName"),
      AssumeRolePolicyDocument = { Version = "2012-10-17", Statement = arr({ {
        Effect = "Allow", Principal = { AWS = tools_root }, Action = "sts:AssumeRole",
        Condition = { ArnLike = { ["aws:PrincipalArn"] = cfn.Sub(
          "arn:${AWS::Partition}:iam::${ToolsAccount}:role/${Namespace}/pipeline/*") } } } }) },
      Policies = arr({ { PolicyName = "pipeline-actions", PolicyDocument = { Version = "2012-10-17", Statement = arr({
        stmt("RunDeployProjects", { "codebuild:BatchGetBuilds", "codebuild:StartBuild", "codebuild:StopBuild" },
          cfn.Sub("arn:${AWS::Partition}:codebuild:${AWS::Region}:${AWS::AccountId}:project/${Namespace}-pipeline-*")),
        stmt("ToolsArtifacts", { "s3:GetBucketLocation", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket",
          "s3:PutObject" }, arr({ cfn.Sub("arn:${AWS::Partition}:s3:::" .. ns:lower() .. "-*-artifacts-${ToolsAccount}"),
            cfn.Sub("arn:${AWS::Partition}:s3:::" .. ns:lower() .. "-*-artifacts-${ToolsAccount}/*") }),
          { StringEquals = { ["s3:ResourceAccount"] = cfn.Ref("ToolsAccount") } }),
        stmt("ToolsArtifactKeys", { "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*",
          "kms:ReEncrypt*" }, cfn.Sub("arn:${AWS::Partition}:kms:*:${ToolsAccount}:key/*")),
        stmt("ReadStacks", { "cloudformation:DescribeStackEvents", "cloudformation:DescribeStacks",
          "cloudformation:GetTemplate" },
          cfn.Sub("arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${Namespace}-*/*")),
      }) } } }),
    })
  t:output("DeployRoleArn", deploy:getatt("Arn"), { description = "The pipelines' deploy role in this account" })
  return t:to_table({ consume = true })
end

local function trail_bucket(model, ns)
  local o = model.organization
  local v = o.vending
  if v.trailBucket then return v.trailBucket end
  for _, a in ipairs(o.accounts or {}) do
    if o.logArchive and a.name:lower() == o.logArchive:lower() and a.id then return org.trail_bucket(ns, a.id) end
  end
  return nil
end

--- What a provisioned vending product runs.
function M.product_template(model, ns)
  local o = model.organization
  local v = o.vending
  local t = cfn.template({ description = "lumu account vending: a product team's account with its baseline" })
  t:parameter("AccountName", { Type = "String", MinLength = 1, MaxLength = 50, AllowedPattern = "^[\\w][\\w .-]*$",
    ConstraintDescription = "letters, digits, spaces, '.', '_' and '-'", Description = "Name of the new account" })
  t:parameter("AccountEmail", { Type = "String", MinLength = 6, MaxLength = 64,
    AllowedPattern = "^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$", ConstraintDescription = "an e-mail address",
    Description = "E-mail address of the new account's root user (unique across AWS)" })
  local tools = {Type = "String", AllowedPattern = "^[0-9]{12}$",
    Description = "Account of the pipelines that deploy into the new account" }
  if model.tools and model.tools.account then tools.Default = model.tools.account end
  t:parameter("ToolsAccount", tools)
  t:parameter("TrailBucket", { Type = "String", MinLength = 3, Default = trail_bucket(model, ns),
    Description = "The log archive account's CloudTrail bucket" })
  t:parameter("DeployRoleName", { Type = "String", Default = v.deployRoleName or (ns .. "-deploy"),
    AllowedPattern = "^[\\w+=,.@-]{1,64}$", Description = "Name of the pipelines' deploy role in the new account" })
  local parent
  if v.unit and v.unit ~= "Root" then
    parent = cfn.ImportValue(common.export_name(common.stack_name(ns, "org"), "Unit" .. org.logical(v.unit) .. "Id"))
  else
    parent = o.rootId
  end
  local account = res(t, "Account", "AWS::Organizations::Account", "the product team's account", {
    AccountName = cfn.Ref("AccountName"), Email = cfn.Ref("AccountEmail"), ParentIds = arr({ parent }),
    RoleName = org.DEFAULT_ROLE_NAME,
    Tags = arr({ { Key = "lumu:namespace", Value = ns }, { Key = "lumu:vended-by", Value = cfn.StackName } }),
  }, { DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain" })
  local regions = {}
  for i, r in ipairs(v.regions or {}) do regions[i] = r end
  if #regions == 0 then regions[1] = cfn.Region end
  local baseline = json.encode(M.baseline_template(ns))
  local function param(k, value) return { ParameterKey = k, ParameterValue = value } end
  local set = res(t, "Baseline", "AWS::CloudFormation::StackSet", "the account's baseline (service-managed StackSet)", {
    StackSetName = cfn.Sub("${AWS::StackName}-baseline"),
    Description = "lumu baseline of a vended account",
    PermissionModel = "SERVICE_MANAGED",
    AutoDeployment = { Enabled = false },
    Capabilities = arr({ "CAPABILITY_NAMED_IAM" }),
    ManagedExecution = { Active = true },
    OperationPreferences = { FailureToleranceCount = 0, MaxConcurrentCount = 1, RegionConcurrencyType = "SEQUENTIAL" },
    Parameters = arr({
      param("Namespace", ns), param("ToolsAccount", cfn.Ref("ToolsAccount")),
      param("TrailBucket", cfn.Ref("TrailBucket")), param("DeployRoleName", cfn.Ref("DeployRoleName")),
    }),
    StackInstancesGroup = arr({ {
      DeploymentTargets = { OrganizationalUnitIds = arr({ parent }), Accounts = arr({ account:getatt("AccountId") }),
        AccountFilterType = "INTERSECTION" },
      Regions = arr(regions),
    } }),
    TemplateBody = baseline,
  })
  t:output("AccountId", account:getatt("AccountId"), { description = "The new account" })
  t:output("BaselineStackSetId", set:getatt("StackSetId"), { description = "The baseline StackSet" })
  t:output("DeployRoleArn", cfn.Sub("arn:${AWS::Partition}:iam::${Id}:role/${DeployRoleName}",
    { Id = account:getatt("AccountId") }), { description = "Give this to the environment as role" })
  return t:to_table({ consume = true })
end

local function iam_template(ns)
  local t = cfn.template({ description = "lumu account vending: the Service Catalog launch role" })
  t:parameter("Namespace", { Type = "String", Default = ns, Description = "Namespace for stack prefixes" })
  t:parameter("CatalogBucket", { Type = "String", Description = "Export name of the template bucket" })
  local stacksets = cfn.Sub("arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stackset/SC-*")
  local statements = {
    stmt("ReadProductTemplates", { "s3:GetObject" },
      cfn.Sub("arn:${AWS::Partition}:s3:::${B}/*", { B = common.import("CatalogBucket") })),
    stmt("ProvisionedStacks", { "cloudformation:CreateStack", "cloudformation:DeleteStack",
      "cloudformation:DescribeStackEvents", "cloudformation:DescribeStacks", "cloudformation:GetTemplate",
      "cloudformation:SetStackPolicy", "cloudformation:UpdateStack" },
      cfn.Sub("arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/SC-*/*")),
    stmt("TemplateChecks", { "cloudformation:GetTemplateSummary", "cloudformation:ValidateTemplate" }, "*"),
    stmt("BaselineStackSets", { "cloudformation:CreateStackInstances", "cloudformation:CreateStackSet",
      "cloudformation:DeleteStackInstances", "cloudformation:DeleteStackSet", "cloudformation:DescribeStackSet",
      "cloudformation:DescribeStackSetOperation", "cloudformation:ListStackInstances",
      "cloudformation:UpdateStackInstances", "cloudformation:UpdateStackSet" },
      arr({ stacksets, cfn.Sub("arn:${AWS::Partition}:cloudformation:*::type/resource/*"),
        cfn.Sub("arn:${AWS::Partition}:cloudformation:*:${AWS::AccountId}:stackset-target/SC-*/*") })),
    stmt("CreateAccounts", { "organizations:CreateAccount", "organizations:DescribeCreateAccountStatus",
      "organizations:DescribeOrganization", "organizations:ListRoots" }, "*"),
    stmt("ManageAccounts", { "organizations:DescribeAccount", "organizations:ListParents",
      "organizations:ListTagsForResource", "organizations:MoveAccount", "organizations:TagResource",
      "organizations:UntagResource" },
      arr({ cfn.Sub("arn:${AWS::Partition}:organizations::${AWS::AccountId}:account/o-*/*"),
        cfn.Sub("arn:${AWS::Partition}:organizations::${AWS::AccountId}:ou/o-*/ou-*"),
        cfn.Sub("arn:${AWS::Partition}:organizations::${AWS::AccountId}:root/o-*/r-*") })),
    stmt("OrganizationsServiceRole", { "iam:CreateServiceLinkedRole" }, "*",
      { StringEquals = { ["iam:AWSServiceName"] = "organizations.amazonaws.com" } }),
  }
  local role = res(t, "VendingLaunchRole", "AWS::IAM::Role", "Service Catalog provisions vended accounts with this role", {
    Path = cfn.Sub("/${Namespace}/catalog/"),
    AssumeRolePolicyDocument = { Version = "2012-10-17", Statement = arr({ {
      Effect = "Allow", Principal = { Service = "servicecatalog.amazonaws.com" }, Action = "sts:AssumeRole" } }) },
    Policies = arr({ { PolicyName = "VendAccounts", PolicyDocument = { Version = "2012-10-17",
      Statement = arr(statements) } } }),
  }, { Metadata = { lumu_nag = { rules_to_suppress = arr({ { id = "W5", reason = "organizations:CreateAccount, "
    .. "DescribeCreateAccountStatus, DescribeOrganization and ListRoots have no resource type (AWS requires '*'); "
    .. "the template checks take no resource ARN; iam:CreateServiceLinkedRole is limited to Organizations' role "
    .. "by the condition iam:AWSServiceName" } }) } } })
  t:output("VendingRoleArn", role:getatt("Arn"), { export = cfn.Sub("${AWS::StackName}-VendingRoleArn") })
  return t:to_table({ consume = true })
end

local function product_stack(ns, v, key)
  local t = cfn.template({ description = "lumu Service Catalog product " .. v.name .. " (account vending)" })
  t:parameter("PortfolioId", { Type = "String", Description = "Export name of the portfolio id" })
  t:parameter("VendingRoleArn", { Type = "String", Description = "Export name of the vending launch role ARN" })
  t:parameter("CatalogBucket", { Type = "String", Description = "Export name of the template bucket" })
  local product = res(t, "Product", "AWS::ServiceCatalog::CloudFormationProduct", "Account vending product " .. v.name, {
    Name = v.name, Owner = ns, Distributor = "lumu",
    Description = "A product team's AWS account with lumu's baseline (CloudTrail, AWS Config, deploy role)",
    ProvisioningArtifactParameters = arr({ {
      Name = "v1", Description = "account + baseline (v1)", Type = "CLOUD_FORMATION_TEMPLATE",
      Info = { LoadTemplateFromURL = cfn.Sub("https://${Bucket}.s3.${AWS::Region}.${AWS::URLSuffix}/" .. key,
        { Bucket = common.import("CatalogBucket") }) },
    } }),
  })
  local assoc = res(t, "PortfolioProduct", "AWS::ServiceCatalog::PortfolioProductAssociation",
    "The product in the catalog portfolio", { PortfolioId = common.import("PortfolioId"), ProductId = product })
  res(t, "LaunchConstraint", "AWS::ServiceCatalog::LaunchRoleConstraint", "Provision with the vending launch role", {
    PortfolioId = common.import("PortfolioId"), ProductId = product, RoleArn = common.import("VendingRoleArn"),
    Description = "lumu: vend accounts with the vending launch role",
  }, { DependsOn = assoc })
  t:output("ProductId", product, { export = cfn.Sub("${AWS::StackName}-ProductId") })
  return t:to_table({ consume = true })
end

function M.stacks(model, ctx)
  if type(model) ~= "table" then error("bad argument #1 to 'stacks' (model table expected)", 2) end
  local o = model.organization
  local v = o and o.vending
  if not v then return {} end
  ctx = ctx or {}
  local ns = ctx.namespace or model.namespace or "mu"
  if not trail_bucket(model, ns) then
    return nil, "organization.vending.trailBucket: needed (no log archive account with an id)"
  end
  local catalog = require "lumu.gen.catalog"
  local cnames = catalog.names(ns)
  local out = {}
  if not model.catalog then
    local base = {}
    for k, x in pairs(model) do base[k] = x end
    base.catalog = { iamUsers = {}, pipelines = {} }
    local cstacks, cerr = catalog.stacks(base, ctx)
    if not cstacks then return nil, cerr end
    for _, d in ipairs(cstacks) do out[#out + 1] = d end
  end
  local names = M.names(ns, v)
  out[#out + 1] = common.stack({
    name = names.iam, kind = "iam", template = iam_template(ns),
    parameters = { Namespace = ns, CatalogBucket = common.export_name(cnames.bucket, "Bucket") },
    depends = { cnames.bucket }, capabilities = { "CAPABILITY_IAM" },
    description = "Launch role of the account vending product",
  })
  local body_tbl = M.product_template(model, ns)
  require("lumu.gen.nag").annotate(body_tbl)
  local body = json.encode(body_tbl, { pretty = true })
  local crypto = require "lumu.crypto"
  local key = "products/" .. v.name .. "/v1/vending-" .. crypto.hex(crypto.sha256(body)):sub(1, 16) .. ".json"
  out[#out + 1] = common.stack({
    name = names.product, kind = "product", template = product_stack(ns, v, key),
    parameters = {
      PortfolioId = common.export_name(cnames.portfolio, "PortfolioId"),
      VendingRoleArn = common.export_name(names.iam, "VendingRoleArn"),
      CatalogBucket = common.export_name(cnames.bucket, "Bucket"),
    },
    tags = common.tags("product", { name = v.name }),
    depends = { cnames.portfolio, names.iam, cnames.bucket, common.stack_name(ns, "org") },
    assets = { { key = key, body = body, content_type = "application/json", version = "v1",
      bucket_stack = cnames.bucket, bucket_output = "Bucket" } },
    description = "Service Catalog product " .. v.name .. " (account vending, v1)",
  })
  local where = org.placement(o, model)
  for _, d in ipairs(out) do org._place(d, where) end
  return out
end

return M
