--- The pipeline stacks (mu.md §3.4, §4 rows 13-14, §5.7): per service with a
-- `pipeline`, `<ns>-iam-pipeline-<svc>` and `<ns>-pipeline-<svc>`; a
-- "catalog-provision" descriptor instead when `pipeline.catalog` names a
-- Service Catalog product version.  Pure Lua; no AWS calls.
--
-- local pipeline = require "lumu.gen.pipeline"
--
-- pipeline.stacks(model, ctx) -> descriptors | nil, err
--   ctx (all optional): namespace (default model.namespace), version (the
--   lumu version to download when muVersion is unset; default: this lumu's
--   version), git = {provider=, repo=, branch=} (what the
--   caller detected; the config wins over git, unlike mu), basedir (the
--   config directory relative to the repository root, default "."),
--   github_token = "parameter" (mu's OAuth way: see Secrets), baseurl (the
--   default download base URL).  err names the key: "service.pipeline.x: ...".
-- pipeline.settings(p, opts) -> cfg, warnings | nil, err   one pipeline
--   record (model shape) resolved: defaults, source, stages, images, roles.
--   opts: namespace, service (nil with catalog=true), catalog, git, basedir,
--   version, baseurl, github_token, disable_iam, cfn_role, path.
-- pipeline.iam_template(cfg) / pipeline.pipeline_template(cfg, {split=bool})
-- pipeline.product_template(cfg) -> lumu.cfn templates (builders)
--   product_template is IAM + infrastructure + pipeline in one template,
--   for a Service Catalog product version (lumu.gen.catalog).
-- pipeline.names(ns, svc) -> {iam=, pipeline=, codepipeline=, projects={...}}
--
-- Keys beyond mu's §3.4 (read when present): source.connectionArn,
-- source.tokenSecret, muSha256, build/acceptance/production.buildspec
-- (defaults buildspec.yml, buildspec-test.yml, buildspec-prod.yml), and
-- production.image/type/computeType (default: acceptance's, as mu does).
--
-- Layout (decided here):
-- * `<ns>-iam-pipeline-<svc>` (kind "iam", CAPABILITY_IAM): the KMS key
--   (rotation on) + alias `alias/<ns>-pipeline-<svc>`, the artifact bucket
--   (SSE-KMS with that key, versioned, public access blocked, owner-enforced,
--   TLS-only policy; unlike mu, one bucket per pipeline, so every role is
--   scoped to its own bucket), the CodeStar connection (GitHub), and the
--   roles: pipeline, CI build, test, acceptance deploy, production deploy,
--   source events (CodeCommit/S3).  Key and bucket are kept on stack
--   deletion (DeletionPolicy Retain) and the descriptor carries mu's stack
--   policy (no replacing/deleting them).  Every ARN is exported
--   (`<stack>-<Output>`); given values (kmsKey, bucket, roles.*) are used
--   as they are and not created.
-- * `<ns>-pipeline-<svc>` (kind "pipeline"): CodePipeline V2 `<ns>-<svc>`,
--   CodeBuild projects `<ns>-pipeline-<svc>-{artifact,image,deploy-acceptance,
--   test-acceptance,deploy-production,test-production}`, the SNS topic
--   `<ns>-pipeline-<svc>` (KMS-encrypted) with `notify` e-mail subscriptions,
--   an EventBridge rule sending SUCCEEDED/FAILED to it, the approval action's
--   notice, and the source event rule (CodeCommit/S3).
-- * disableIAM: no IAM stack; key, bucket and connection move into the
--   pipeline stack and the role ARNs must be given (roles.pipeline,
--   roles.build, <stage>.roles.codeBuild); sources poll.
-- Stages: Source; Build (artifact: the repo's buildspec, then image:
-- `lumu svc push`); Acceptance (deploy, test); Production (manual approval,
-- deploy, test).  `disabled` stages are absent.  Deploy actions run lumu in
-- CodeBuild (lumu.gen.buildspec) with the stage's role: it may only create/
-- update `<ns>-*-<env>` stacks passing the CloudFormation service role
-- (cloudformation:RoleArn condition, iam:PassRole on that role only), never
-- `<ns>-iam-*` stacks (LUMU_DISABLE_IAM=true: the IAM stacks come first, as
-- mu's pipeline up does: see `depends`).  The service role is
-- roles.cloudFormation, else mu's `<ns>-cloudformation-common-<region>`.
-- acceptance/production.roles.mu: the deploy assumes that role (another
-- account); the stage's role may only sts:AssumeRole it.
-- Cross-account delivery (an environment with `account`, other than
-- tools.account): the stage's Deploy and Test actions run in that account:
-- CodePipeline assumes the environment's deploy role (action RoleArn:
-- environment.role, default arn:aws:iam::<account>:role/<ns>-deploy, the
-- vending baseline's) to start the projects `<ns>-pipeline-<svc>-deploy-<stage>`
-- and `-test-<stage>` of the stack `<ns>-pipeline-<svc>-<env>` (kind
-- "pipeline", env, deployed there: descriptor.account/role/profile), whose
-- CodeBuild roles deploy through the CloudFormation service role of that
-- account.  The tools account's pipeline role may sts:AssumeRole exactly
-- those deploy roles; the artifact bucket (then named
-- <ns>-<svc>-artifacts-<tools account>, lower case) and the KMS key grant
-- exactly those accounts (root principals); no deploy role of that stage is
-- created in the tools account.  Needs tools.account.  A given kmsKey or
-- bucket must grant the accounts itself (a warning says so).
-- pipeline.target_template(cfg, key) -> the `<ns>-pipeline-<svc>-<env>`
--   template of a cross-account stage (key "acpt" | "prod").
-- Images: mu's default aws/codebuild/ubuntu-base:14.04 is retired; it becomes
-- aws/codebuild/standard:7.0 (windows-base:2019-3.0 for WINDOWS_CONTAINER).
-- lumu download: muBaseurl (mu's stelligent URL means lumu's default,
-- pipeline.DEFAULT_BASEURL) + "/v<muVersion>/lumu-linux-amd64", checked
-- against muSha256 when given.
-- Secrets: GitHub uses a CodeStar connection by default (created PENDING:
-- finish the handshake in the console once; or give source.connectionArn).
-- mu's OAuth token: source.tokenSecret (a Secrets Manager secret: the
-- template holds only a {{resolve:secretsmanager:...}} reference), or
-- ctx.github_token = "parameter": a NoEcho parameter GitHubToken without a
-- default, listed in descriptor.secret_parameters; it never appears in
-- descriptor.parameters: the deployer must pass it in the API call only.
-- Descriptor extras (beyond lumu.gen.common): capabilities ({"CAPABILITY_IAM"}
-- on IAM stacks), stack_policy (a table: deny replacing/deleting the key and
-- bucket), secret_parameters (names the deployer must ask for and pass only
-- in the API call), warnings (strings to show the user).
-- catalog-provision descriptor: {name = "<ns>-<svc>" (provisioned product),
--   kind = "catalog-provision", service=, product=, version=, product_stack=
--   "<ns>-product-<name>", parameters = {...}, tags=, depends = {product
--   stack}, template = nil}.
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"
local buildspec = require "lumu.gen.buildspec"
local json = require "lumu.json"

local M = {}

M.DEFAULT_IMAGE = "aws/codebuild/standard:7.0"
M.DEFAULT_WINDOWS_IMAGE = "aws/codebuild/windows-base:2019-3.0"
M.MU_DEFAULT_IMAGE = "aws/codebuild/ubuntu-base:14.04"
M.MU_DEFAULT_BASEURL = "https://github.com/stelligent/mu/releases/download"
M.DEFAULT_BASEURL = "https://github.com/lumu-dev/lumu/releases/download"
M.DEFAULT_BRANCH = "master"
M.PROJECTS = { "artifact", "image", "deploy-acceptance", "test-acceptance", "deploy-production", "test-production" }

local PROVIDERS = { GitHub = true, CodeCommit = true, S3 = true }
local NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9-]*$"

local arr = common.array

--- The accounts of cfg's cross-account stages, sorted, unique.
function M.target_accounts(cfg)
  local seen, out = {}, {}
  for _, key in ipairs({ "acpt", "prod" }) do
    local t = cfg.targets and cfg.targets[key]
    if t and not seen[t.account] then
      seen[t.account] = true
      out[#out + 1] = t.account
    end
  end
  table.sort(out)
  return out
end

local function account_roots(cfg)
  local out = {}
  for i, a in ipairs(M.target_accounts(cfg)) do out[i] = cfn.Sub("arn:${AWS::Partition}:iam::" .. a .. ":root") end
  return arr(out)
end

-- ---------------------------------------------------------------------------
-- Names
-- ---------------------------------------------------------------------------

function M.names(ns, svc)
  local n = {
    iam = common.stack_name(ns, "iam", "pipeline", svc),
    pipeline = common.stack_name(ns, "pipeline", svc),
    codepipeline = ns .. "-" .. svc,
    topic = ns .. "-pipeline-" .. svc,
    projects = {},
  }
  for _, p in ipairs(M.PROJECTS) do n.projects[p] = n.topic .. "-" .. p end
  return n
end

-- ---------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------

local function wrote(rec, key)
  return type(rec) == "table" and type(rec._keys) == "table" and rec._keys[key] ~= nil
end

local function image_for(rec, typ, path, warnings)
  local v = rec and rec.image
  if v == nil or v == "" or v == M.MU_DEFAULT_IMAGE then
    if v == M.MU_DEFAULT_IMAGE and wrote(rec, "image") then
      warnings[#warnings + 1] = path .. ".image: " .. M.MU_DEFAULT_IMAGE
        .. " is retired in CodeBuild; using " .. M.DEFAULT_IMAGE
    end
    if typ == "WINDOWS_CONTAINER" then return M.DEFAULT_WINDOWS_IMAGE end
    return M.DEFAULT_IMAGE
  end
  return v
end

local function timeout(v, path)
  if v == nil then return 30 end
  local n = math.tointeger(tonumber(v))
  if not n or n < 5 or n > 480 then
    return nil, path .. ": expected minutes between 5 and 480, got " .. tostring(v)
  end
  return n
end

local function relpath_ok(s)
  return type(s) == "string" and s ~= "" and s:sub(1, 1) ~= "/" and not s:find("%.%.")
    and s:match("^[%w%._/%-]+$") ~= nil
end

local function looks_like_token(s)
  return s:match("^ghp_") or s:match("^gho_") or s:match("^github_pat_") or s:match("^%x+$") and #s == 40
end

--- Resolves one pipeline record; see the header.
function M.settings(p, opts)
  if type(p) ~= "table" then error("bad argument #1 to 'settings' (pipeline table expected)", 2) end
  if type(opts) ~= "table" then error("bad argument #2 to 'settings' (options table expected)", 2) end
  local path = opts.path or "pipeline"
  local ns = opts.namespace
  if type(ns) ~= "string" or not ns:match("^%a[%w%-]*$") then
    return nil, "namespace: invalid namespace " .. tostring(ns)
  end
  local catalog = opts.catalog == true
  local svc = opts.service
  if not catalog then
    if type(svc) ~= "string" or not svc:match(NAME_PATTERN) then
      return nil, path .. ": the service has no valid name (" .. tostring(svc) .. ")"
    end
    if #ns + 1 + #svc > 100 then
      return nil, path .. ": pipeline name '" .. ns .. "-" .. svc .. "' is longer than 100 characters"
    end
  end
  local warnings = {}
  local cfg = { ns = ns, service = svc, catalog = catalog, path = path, warnings = warnings }
  local src = p.source or {}
  local git = opts.git or {}
  local provider = src.provider or git.provider or "GitHub"
  if not PROVIDERS[provider] then
    return nil, path .. ".source.provider: expected GitHub, CodeCommit or S3, got " .. tostring(provider)
  end
  cfg.provider = provider
  local repo = src.repo
  if repo == nil and (git.provider == nil or git.provider == provider) then repo = git.repo end
  cfg.branch = src.branch or git.branch or M.DEFAULT_BRANCH
  if type(cfg.branch) ~= "string" or #cfg.branch > 255 or not cfg.branch:match("^[^%s%c~^:?*%[\\]+$") then
    return nil, path .. ".source.branch: invalid branch name '" .. tostring(cfg.branch):sub(1, 60) .. "'"
  end
  if repo ~= nil and (type(repo) ~= "string" or #repo > 512) then
    return nil, path .. ".source.repo: expected at most 512 characters"
  end
  if provider == "S3" then
    if repo ~= nil then
      local b, k = tostring(repo):match("^([^/]+)/(.+)$")
      if not b then return nil, path .. ".source.repo: an S3 source is bucket/key, got '" .. tostring(repo) .. "'" end
      cfg.source_bucket, cfg.source_key = b, k
    elseif not catalog then
      return nil, path .. ".source.repo: an S3 source needs repo: bucket/key"
    end
  else
    if repo ~= nil then
      if provider == "GitHub" and not tostring(repo):match("^[%w%._%-]+/[%w%._%-]+$") then
        return nil, path .. ".source.repo: expected owner/repo for GitHub, got '" .. tostring(repo) .. "'"
      end
      if provider == "CodeCommit" and not tostring(repo):match("^[%w%._%-]+$") then
        return nil, path .. ".source.repo: expected a CodeCommit repository name, got '" .. tostring(repo) .. "'"
      end
      cfg.repo = repo
    elseif not catalog then
      return nil, path .. ".source.repo: not set and no git remote was detected"
    end
  end
  if provider == "GitHub" then
    if src.tokenSecret ~= nil then
      local s = tostring(src.tokenSecret)
      if looks_like_token(s) then
        return nil, path .. ".source.tokenSecret: this looks like a token itself; store the token in Secrets Manager "
          .. "and give the secret's name"
      end
      if not s:match("^{{resolve:secretsmanager:[^{}]+}}$") then
        if not s:match("^[%w/_+=%.@:%-]+$") then
          return nil, path .. ".source.tokenSecret: expected a Secrets Manager secret name or ARN, got '" .. s .. "'"
        end
        s = "{{resolve:secretsmanager:" .. s .. "}}"
      end
      cfg.auth, cfg.token_ref = "secret", s
    elseif opts.github_token == "parameter" then
      cfg.auth = "parameter"
    else
      cfg.auth = "connection"
      cfg.connection_arn = src.connectionArn
      if cfg.connection_arn ~= nil
        and not tostring(cfg.connection_arn):match("^arn:aws[%w%-]*:code[%w%-]*connections:[%w%-]+:%d+:connection/.+$") then
        return nil, path .. ".source.connectionArn: expected a CodeStar connection ARN, got '"
          .. tostring(cfg.connection_arn) .. "'"
      end
    end
  end

  local build, acpt, prod = p.build or {}, p.acceptance or {}, p.production or {}
  cfg.stages = { build = not build.disabled, acceptance = not acpt.disabled, production = not prod.disabled }
  if not (cfg.stages.build or cfg.stages.acceptance or cfg.stages.production) then
    return nil, path .. ": every stage is disabled (build, acceptance, production); a pipeline needs one"
  end
  local err
  local function project(rec, fallback, spath, spec)
    local typ = rec.type or (fallback and fallback.type) or "LINUX_CONTAINER"
    local pr = {
      type = typ,
      computeType = rec.computeType or (fallback and fallback.computeType) or "BUILD_GENERAL1_SMALL",
      image = (rec.image ~= nil) and image_for(rec, typ, spath, warnings)
        or image_for(fallback, typ, spath, warnings),
      buildspec = rec.buildspec or spec,
    }
    if not relpath_ok(pr.buildspec) then
      err = spath .. ".buildspec: expected a relative file name, got '" .. tostring(pr.buildspec) .. "'"
    end
    return pr
  end
  cfg.build = project(build, nil, path .. ".build", "buildspec.yml")
  cfg.test = project(acpt, nil, path .. ".acceptance", "buildspec-test.yml")
  cfg.prod_test = project(prod, acpt, path .. ".production", "buildspec-prod.yml")
  if err then return nil, err end
  cfg.build.timeout, err = timeout(build.timeout, path .. ".build.timeout")
  if err then return nil, err end
  cfg.test.timeout, err = timeout(acpt.timeout, path .. ".acceptance.timeout")
  if err then return nil, err end
  cfg.prod_test.timeout, err = timeout(prod.timeout, path .. ".production.timeout")
  if err then return nil, err end
  cfg.acpt_env = acpt.environment or "acceptance"
  cfg.prod_env = prod.environment or "production"
  for _, e in ipairs({ { cfg.acpt_env, "acceptance" }, { cfg.prod_env, "production" } }) do
    if not tostring(e[1]):match(NAME_PATTERN) then
      return nil, path .. "." .. e[2] .. ".environment: invalid environment name '" .. tostring(e[1]) .. "'"
    end
  end

  -- the lumu download
  local base = p.muBaseurl
  if base == nil or base == "" or base == M.MU_DEFAULT_BASEURL then
    if base == M.MU_DEFAULT_BASEURL and wrote(p, "muBaseurl") then
      warnings[#warnings + 1] = path .. ".muBaseurl: mu's release URL holds mu, not lumu; using "
        .. (opts.baseurl or M.DEFAULT_BASEURL)
    end
    base = opts.baseurl or M.DEFAULT_BASEURL
  end
  if not (tostring(base):match("^https?://[^%s]+$") or tostring(base):match("^s3://[^%s]+$")) then
    return nil, path .. ".muBaseurl: expected an https:// or s3:// URL, got '" .. tostring(base) .. "'"
  end
  local version = p.muVersion or opts.version or require("lumu.version").version
  if type(version) ~= "string" or not version:match("^v?[%w][%w%.%-+_]*$") then
    return nil, path .. ".muVersion: invalid version '" .. tostring(version) .. "'"
  end
  cfg.download_url = buildspec.download_url(base, version)
  if p.muSha256 ~= nil then
    local s = tostring(p.muSha256):lower()
    if not s:match("^" .. ("%x"):rep(64) .. "$") then
      return nil, path .. ".muSha256: expected 64 hex digits (the sha256 of the lumu binary)"
    end
    cfg.sha256 = s
  end

  -- given resources
  local roles = p.roles or {}
  local aroles, proles = acpt.roles or {}, prod.roles or {}
  cfg.kms_key = p.kmsKey
  cfg.bucket = p.bucket
  cfg.given = {
    pipeline = roles.pipeline, ci = roles.build,
    acpt = aroles.codeBuild, prod = proles.codeBuild,
  }
  cfg.assume = { acpt = aroles.mu, prod = proles.mu }
  -- cross-account stages: {acpt = {account=, role=, profile=, env=}, ...}
  cfg.targets = {}
  for key, t in pairs(opts.targets or {}) do
    if cfg.stages[key == "acpt" and "acceptance" or "production"] then cfg.targets[key] = t end
  end
  cfg.tools_account = opts.tools_account
  if next(cfg.targets) then
    if not cfg.tools_account then
      local key = cfg.targets.acpt and "acpt" or "prod"
      local stage = key == "acpt" and "acceptance" or "production"
      return nil, path .. "." .. stage .. ".environment: environment '" .. cfg.targets[key].env .. "' lives in account "
        .. cfg.targets[key].account .. "; set tools.account (the account the pipeline runs in) so the accounts can "
        .. "trust it"
    end
    if cfg.kms_key or p.bucket then
      warnings[#warnings + 1] = path .. ": kmsKey/bucket are given: grant the accounts of "
        .. "the other environments (" .. table.concat(M.target_accounts(cfg), ", ") .. ") access yourself"
    end
    local bucket = (ns .. "-" .. tostring(svc) .. "-artifacts-" .. cfg.tools_account):lower()
    if not catalog and #bucket > 63 then
      return nil, path .. ": the artifact bucket name " .. bucket .. " is longer than 63 characters (shorter "
        .. "namespace or service name)"
    end
    cfg.artifact_bucket_name = bucket
  end
  cfg.codedeploy_bucket = build.bucket
  cfg.cfn_role = opts.cfn_role
  cfg.disable_iam = opts.disable_iam == true
  cfg.notify = {}
  for _, e in ipairs(p.notify or {}) do cfg.notify[#cfg.notify + 1] = tostring(e) end
  cfg.basedir = opts.basedir or "."
  if cfg.basedir ~= "." and not relpath_ok(cfg.basedir) then
    return nil, "basedir: expected a path relative to the repository root, got '" .. tostring(cfg.basedir) .. "'"
  end
  if cfg.disable_iam then
    local missing = {}
    if not cfg.given.pipeline then missing[#missing + 1] = path .. ".roles.pipeline" end
    if cfg.stages.build and not cfg.given.ci then missing[#missing + 1] = path .. ".roles.build" end
    if cfg.stages.acceptance and not cfg.given.acpt then missing[#missing + 1] = path .. ".acceptance.roles.codeBuild" end
    if cfg.stages.production and not cfg.given.prod then missing[#missing + 1] = path .. ".production.roles.codeBuild" end
    if #missing > 0 then
      return nil, path .. ": disableIAM is set, so these role ARNs must be given: " .. table.concat(missing, ", ")
    end
  end
  return cfg, warnings
end

-- ---------------------------------------------------------------------------
-- Template helpers
-- ---------------------------------------------------------------------------

local res = common.resource

local function arn(service, suffix)
  return cfn.Sub("arn:${AWS::Partition}:" .. service .. ":${AWS::Region}:${AWS::AccountId}:" .. suffix)
end

local function s3arn(suffix)
  return cfn.Sub("arn:${AWS::Partition}:s3:::" .. suffix)
end

local stmt = common.statement

local function policy(name, statements)
  return { PolicyName = name, PolicyDocument = { Version = "2012-10-17", Statement = arr(statements) } }
end

-- aws:SourceAccount (confused deputy) only for services documented to set it.
local SOURCE_ACCOUNT = { ["codebuild.amazonaws.com"] = true, ["events.amazonaws.com"] = true }

local function trust(service)
  local s = { Effect = "Allow", Principal = { Service = service }, Action = "sts:AssumeRole" }
  if SOURCE_ACCOUNT[service] then
    s.Condition = { StringEquals = { ["aws:SourceAccount"] = cfn.AccountId } }
  end
  return { Version = "2012-10-17", Statement = arr({ s }) }
end

local function cfn_role_arn(cfg)
  if cfg.cfn_role then return cfg.cfn_role end
  return cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Namespace}-cloudformation-common-${AWS::Region}")
end

local PREFIX = "${Namespace}-pipeline-${ServiceName}"

local function connection_name(ns, svc)
  local n = ns .. "-" .. svc
  if #n <= 32 then return n end
  local crypto = require "lumu.crypto"
  return (n:sub(1, 23):gsub("%-+$", "")) .. "-" .. crypto.hex(crypto.sha256(n)):sub(1, 8)
end

-- Parameters shared by every template of a pipeline.
local function add_parameters(t, cfg, what)
  if cfg.catalog then
    t:parameter("Namespace", { Type = "String", Default = cfg.ns, AllowedValues = arr({ cfg.ns }),
      Description = "Namespace for stack prefixes (fixed by the catalog)" })
    t:parameter("ServiceName", { Type = "String", MinLength = 1, MaxLength = math.min(63, 100 - #cfg.ns - 1),
      AllowedPattern = NAME_PATTERN, ConstraintDescription = "letters, digits and dashes",
      Description = "Name of the service the pipeline builds and deploys" })
  else
    t:parameter("Namespace", { Type = "String", Default = cfg.ns, AllowedPattern = "^[A-Za-z][A-Za-z0-9-]*$",
      Description = "Namespace for stack prefixes" })
    t:parameter("ServiceName", { Type = "String", Default = cfg.service, AllowedPattern = NAME_PATTERN,
      Description = "Name of the service the pipeline builds and deploys" })
  end
  if cfg.provider == "S3" then
    t:parameter("SourceBucket", { Type = "String", Default = cfg.source_bucket, MinLength = 3,
      Description = "S3 bucket holding the source archive (versioning and EventBridge notifications on)" })
    t:parameter("SourceObjectKey", { Type = "String", Default = cfg.source_key, MinLength = 1,
      Description = "S3 key of the source archive (zip)" })
  else
    local def = { Type = "String", Default = cfg.repo, MinLength = 1,
      Description = cfg.provider == "GitHub" and "GitHub repository: owner/repo" or "CodeCommit repository name" }
    if cfg.provider == "GitHub" then
      def.AllowedPattern = "^[^/]+/[^/]+$"
      def.ConstraintDescription = "owner/repo"
    end
    t:parameter("SourceRepo", def)
    t:parameter("SourceBranch", { Type = "String", Default = cfg.branch, MinLength = 1,
      Description = "Branch that triggers the pipeline" })
  end
  if cfg.provider == "GitHub" and cfg.auth == "connection" and what.connection then
    local def = { Type = "String", AllowedPattern = "^(arn:aws[a-z-]*:code[a-z-]*connections:.+)?$",
      Description = "ARN of a CodeStar connection to GitHub" }
    if cfg.catalog then
      def.Default = cfg.connection_arn
      def.MinLength = 1
    else
      def.Default = ""
      def.Description = def.Description .. " (empty: create one, then finish its handshake in the console)"
    end
    t:parameter("ConnectionArn", def)
  end
  if cfg.provider == "GitHub" and cfg.auth == "parameter" and what.token then
    t:parameter("GitHubToken", { Type = "String", NoEcho = true, MinLength = 1,
      Description = "GitHub OAuth token (given at deploy time only; never stored by lumu)" })
  end
  if cfg.stages.acceptance then
    t:parameter("AcptEnv", { Type = "String", Default = cfg.acpt_env, AllowedPattern = NAME_PATTERN,
      Description = "Environment the acceptance stage deploys to" })
  end
  if cfg.stages.production then
    t:parameter("ProdEnv", { Type = "String", Default = cfg.prod_env, AllowedPattern = NAME_PATTERN,
      Description = "Environment the production stage deploys to" })
  end
end

local function needs_events_role(cfg)
  return cfg.provider ~= "GitHub" and not cfg.disable_iam
end

-- Key, bucket, connection.  Returns refs {key_arn=, bucket=, bucket_arn=,
-- connection_arn=, created={...}}.
local function add_infra(t, cfg, with_connection)
  local refs = { created = {} }
  local cross = next(cfg.targets or {}) ~= nil
  if cfg.kms_key then
    refs.key_arn = cfg.kms_key
  else
    local key_statements = arr({
      { Sid = "AccountAdministration", Effect = "Allow",
        Principal = { AWS = cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
        Action = "kms:*", Resource = "*" },
      { Sid = "EventBridgeToEncryptedTopic", Effect = "Allow",
        Principal = { Service = "events.amazonaws.com" },
        Action = arr({ "kms:Decrypt", "kms:GenerateDataKey*" }), Resource = "*" },
    })
    if cross then
      -- the deploy and test actions of the other accounts read and write artifacts
      key_statements[#key_statements + 1] = { Sid = "OtherAccountsArtifacts", Effect = "Allow",
        Principal = { AWS = account_roots(cfg) },
        Action = arr({ "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*" }),
        Resource = "*" }
    end
    local key = res(t, "PipelineKey", "AWS::KMS::Key", "KMS key for the pipeline's artifacts and notifications", {
      Description = cfn.Sub("lumu pipeline artifacts and notifications for ${Namespace}-${ServiceName}"),
      EnableKeyRotation = true,
      KeyPolicy = {
        Version = "2012-10-17",
        Statement = key_statements,
      },
    }, { DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain" })

    res(t, "PipelineKeyAlias", "AWS::KMS::Alias", "Alias of the pipeline key", {
      AliasName = cfn.Sub("alias/${Namespace}-pipeline-${ServiceName}"), TargetKeyId = key,
    })
    refs.key_arn = key:getatt("Arn")
    refs.created.key = true
  end
  if cfg.bucket then
    refs.bucket = cfg.bucket
    refs.bucket_arn = s3arn(cfg.bucket)
  else
    local b = res(t, "ArtifactBucket", "AWS::S3::Bucket", "Artifact store of the pipeline", {
      BucketName = cross and cfg.artifact_bucket_name or nil,
      BucketEncryption = { ServerSideEncryptionConfiguration = arr({ {
        ServerSideEncryptionByDefault = { SSEAlgorithm = "aws:kms", KMSMasterKeyID = refs.key_arn },
        BucketKeyEnabled = true,
      } }) },
      PublicAccessBlockConfiguration = {
        BlockPublicAcls = true, BlockPublicPolicy = true, IgnorePublicAcls = true, RestrictPublicBuckets = true,
      },
      OwnershipControls = { Rules = arr({ { ObjectOwnership = "BucketOwnerEnforced" } }) },
      VersioningConfiguration = { Status = "Enabled" },
      LifecycleConfiguration = { Rules = arr({ {
        Id = "expire-old-artifacts", Status = "Enabled",
        NoncurrentVersionExpiration = { NoncurrentDays = 30 },
        AbortIncompleteMultipartUpload = { DaysAfterInitiation = 7 },
      } }) },
    }, { DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain" })
    refs.bucket = b
    refs.bucket_arn = b:getatt("Arn")
    local bstatements = arr({ {
      Sid = "DenyInsecureTransport", Effect = "Deny", Principal = "*", Action = "s3:*",
      Resource = arr({ refs.bucket_arn, cfn.Sub("${B}/*", { B = refs.bucket_arn }) }),
      Condition = { Bool = { ["aws:SecureTransport"] = "false" } },
    } })
    if cross then
      bstatements[#bstatements + 1] = { Sid = "OtherAccountsArtifactObjects", Effect = "Allow",
        Principal = { AWS = account_roots(cfg) }, Action = arr({ "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject" }),
        Resource = cfn.Sub("${B}/*", { B = refs.bucket_arn }) }
      bstatements[#bstatements + 1] = { Sid = "OtherAccountsArtifactBucket", Effect = "Allow",
        Principal = { AWS = account_roots(cfg) }, Action = arr({ "s3:GetBucketLocation", "s3:ListBucket" }),
        Resource = refs.bucket_arn }
    end
    res(t, "ArtifactBucketPolicy", "AWS::S3::BucketPolicy", cross
      and "TLS-only access to the artifact bucket; the other environments' accounts use the artifacts"
      or "TLS-only access to the artifact bucket", {
      Bucket = b,
      PolicyDocument = { Version = "2012-10-17", Statement = bstatements },
    })
    refs.created.bucket = true
  end
  if cfg.provider == "GitHub" and cfg.auth == "connection" and with_connection then
    if cfg.catalog then
      refs.connection_arn = cfn.Ref("ConnectionArn")
    else
      t:condition("CreateConnection", cfn.Equals(cfn.Ref("ConnectionArn"), ""))
      local c = res(t, "GitHubConnection", "AWS::CodeStarConnections::Connection",
        "Connection to GitHub (PENDING until its handshake is finished in the console)", {
          ConnectionName = connection_name(cfg.ns, cfg.service), ProviderType = "GitHub",
        }, { Condition = "CreateConnection" })
      refs.connection_arn = cfn.If("CreateConnection", c, cfn.Ref("ConnectionArn"))
      refs.created.connection = true
    end
  end
  return refs
end

local function bucket_objects(refs)
  if type(refs.bucket) == "string" then return s3arn(refs.bucket .. "/*") end
  return cfn.Sub("${B}/*", { B = refs.bucket_arn })
end

local function codebuild_base(refs)
  return {
    stmt("Logs", { "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents" }, {
      arn("logs", "log-group:/aws/codebuild/" .. PREFIX .. "-*"),
      arn("logs", "log-group:/aws/codebuild/" .. PREFIX .. "-*:*"),
    }),
    stmt("ArtifactObjects", { "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject" }, bucket_objects(refs)),
    stmt("ArtifactBucket", { "s3:GetBucketAcl", "s3:GetBucketLocation", "s3:ListBucket" }, refs.bucket_arn),
    stmt("ArtifactKey", { "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*" },
      refs.key_arn),
  }
end

local function append(list, more)
  for _, v in ipairs(more) do list[#list + 1] = v end
  return list
end

local ROLE_PATH = "/${Namespace}/pipeline/"

local function role(t, id, desc, service, statements)
  return res(t, id, "AWS::IAM::Role", desc, {
    Path = cfn.Sub(ROLE_PATH),
    AssumeRolePolicyDocument = trust(service),
    Policies = arr({ policy(id, statements) }),
  })
end

local function deploy_statements(cfg, refs, envparam, assume)
  local stacks = arn("cloudformation", "stack/${Namespace}-*-${" .. envparam .. "}/*")
  local cfnrole = cfn_role_arn(cfg)
  local s = codebuild_base(refs)
  append(s, {
    stmt("DeployWithServiceRoleOnly",
      { "cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:CreateChangeSet",
        "cloudformation:DeleteStack" },
      stacks, { StringEquals = { ["cloudformation:RoleArn"] = cfnrole } }),
    stmt("ManageEnvironmentStacks",
      { "cloudformation:CancelUpdateStack", "cloudformation:ContinueUpdateRollback",
        "cloudformation:DeleteChangeSet", "cloudformation:DescribeChangeSet", "cloudformation:DescribeStackEvents",
        "cloudformation:DescribeStackResource", "cloudformation:DescribeStackResources",
        "cloudformation:DescribeStacks", "cloudformation:ExecuteChangeSet", "cloudformation:GetTemplate",
        "cloudformation:ListChangeSets", "cloudformation:ListStackResources", "cloudformation:SetStackPolicy",
        "cloudformation:UpdateTerminationProtection" },
      stacks),
    stmt("NeverIamStacks",
      { "cloudformation:CreateChangeSet", "cloudformation:CreateStack", "cloudformation:DeleteStack",
        "cloudformation:ExecuteChangeSet", "cloudformation:UpdateStack" },
      arn("cloudformation", "stack/${Namespace}-iam-*/*"), nil, "Deny"),
    stmt("PassServiceRoleToCloudFormation", { "iam:PassRole" }, cfnrole,
      { StringEquals = { ["iam:PassedToService"] = "cloudformation.amazonaws.com" } }),
    stmt("ReadOnly",
      { "cloudformation:DescribeStacks", "cloudformation:GetTemplateSummary", "cloudformation:ListExports",
        "cloudformation:ListStacks", "cloudformation:ValidateTemplate", "ec2:DescribeAvailabilityZones",
        "ec2:DescribeImages", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ecr:DescribeImages",
        "ecr:DescribeRepositories", "ecs:DescribeClusters", "ecs:DescribeServices", "ecs:DescribeTasks",
        "ecs:ListTasks", "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups",
        "rds:DescribeDBClusters", "rds:DescribeDBInstances" },
      "*"),
    stmt("PublicAmiParameters", { "ssm:GetParameter", "ssm:GetParameters" },
      cfn.Sub("arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/*")),
    stmt("DatabasePassword", { "ssm:GetParameter", "ssm:GetParameters", "ssm:PutParameter" },
      arn("ssm", "parameter/${Namespace}-database-${ServiceName}-${" .. envparam .. "}-*")),
    stmt("DatabasePasswordKey", { "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey" }, "*",
      { StringEquals = { ["kms:ViaService"] = cfn.Sub("ssm.${AWS::Region}.amazonaws.com") } }),
  })
  if assume then
    s[#s + 1] = stmt("AssumeDeployRole", { "sts:AssumeRole" }, assume)
  end
  return s
end

-- Roles.  Returns refs.roles = {pipeline=, ci=, test=, acpt=, prod=, events=}
-- and refs.created_roles (ids of the created ones).
local function add_roles(t, cfg, refs)
  local roles, created = {}, {}
  refs.roles, refs.created_roles = roles, created
  local names = {
    projects = arn("codebuild", "project/" .. PREFIX .. "-*"),
    topic = arn("sns", PREFIX),
    pipeline = arn("codepipeline", "${Namespace}-${ServiceName}"),
  }
  if cfg.given.pipeline then
    roles.pipeline = cfg.given.pipeline
  else
    local s = {
      stmt("ArtifactObjects", { "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject" }, bucket_objects(refs)),
      stmt("ArtifactBucket", { "s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:ListBucket" }, refs.bucket_arn),
      stmt("ArtifactKey", { "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*" },
        refs.key_arn),
      stmt("RunOwnBuilds", { "codebuild:BatchGetBuilds", "codebuild:StartBuild", "codebuild:StopBuild" },
        names.projects),
      stmt("ApprovalNotices", { "sns:Publish" }, names.topic),
    }
    if cfg.provider == "GitHub" and cfg.auth == "connection" then
      s[#s + 1] = stmt("UseConnection", { "codeconnections:UseConnection", "codestar-connections:UseConnection" },
        refs.connection_arn)
    elseif cfg.provider == "CodeCommit" then
      s[#s + 1] = stmt("SourceRepository", { "codecommit:CancelUploadArchive", "codecommit:GetBranch",
        "codecommit:GetCommit", "codecommit:GetRepository", "codecommit:GetUploadArchiveStatus",
        "codecommit:UploadArchive" }, arn("codecommit", "${SourceRepo}"))
    elseif cfg.provider == "S3" then
      s[#s + 1] = stmt("SourceObject", { "s3:GetObject", "s3:GetObjectVersion" },
        s3arn("${SourceBucket}/${SourceObjectKey}"))
      s[#s + 1] = stmt("SourceBucket", { "s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:ListBucket" },
        s3arn("${SourceBucket}"))
    end
    local troles = {}
    for _, key in ipairs({ "acpt", "prod" }) do
      local tg = cfg.targets and cfg.targets[key]
      if tg then
        local dup = false
        for _, r in ipairs(troles) do if r == tg.role then dup = true end end
        if not dup then troles[#troles + 1] = tg.role end
      end
    end
    if #troles > 0 then
      s[#s + 1] = stmt("AssumeOtherAccountsDeployRoles", { "sts:AssumeRole" }, troles)
    end
    roles.pipeline = role(t, "CodePipelineRole", "Role of CodePipeline: artifacts, own builds, notices, source",
      "codepipeline.amazonaws.com", s):getatt("Arn")
    created.pipeline = "CodePipelineRole"
  end
  if cfg.stages.build then
    if cfg.given.ci then
      roles.ci = cfg.given.ci
    else
      local deploy_bucket = cfg.codedeploy_bucket or "${Namespace}-codedeploy-${AWS::Region}-${AWS::AccountId}"
      local s = append(codebuild_base(refs), {
        stmt("EcrLogin", { "ecr:GetAuthorizationToken" }, "*"),
        stmt("PushServiceImage", { "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
          "ecr:CompleteLayerUpload", "ecr:CreateRepository", "ecr:DescribeImages", "ecr:DescribeRepositories",
          "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:ListTagsForResource",
          "ecr:PutImage", "ecr:PutLifecyclePolicy", "ecr:SetRepositoryPolicy", "ecr:TagResource",
          "ecr:UploadLayerPart" }, arn("ecr", "repository/${Namespace}-${ServiceName}")),
        stmt("ArtifactStacks", { "cloudformation:CreateChangeSet", "cloudformation:CreateStack",
          "cloudformation:DeleteChangeSet", "cloudformation:DescribeChangeSet", "cloudformation:DescribeStackEvents",
          "cloudformation:DescribeStacks", "cloudformation:ExecuteChangeSet", "cloudformation:GetTemplate",
          "cloudformation:UpdateStack" }, {
          arn("cloudformation", "stack/${Namespace}-repo-${ServiceName}/*"),
          arn("cloudformation", "stack/${Namespace}-app-${ServiceName}/*"),
          arn("cloudformation", "stack/${Namespace}-bucket-codedeploy/*"),
        }),
        stmt("ReadStacks", { "cloudformation:DescribeStacks", "cloudformation:GetTemplateSummary",
          "cloudformation:ListExports", "cloudformation:ValidateTemplate" }, "*"),
        stmt("CodeDeployRevisions", { "s3:GetObject", "s3:PutObject" }, s3arn(deploy_bucket .. "/${ServiceName}/*")),
        stmt("CodeDeployBucket", { "s3:CreateBucket", "s3:GetBucketLocation", "s3:ListBucket", "s3:PutBucketPolicy",
          "s3:PutBucketPublicAccessBlock", "s3:PutBucketVersioning", "s3:PutEncryptionConfiguration" },
          s3arn(deploy_bucket)),
        stmt("CodeDeployApplication", { "codedeploy:CreateApplication", "codedeploy:GetApplication",
          "codedeploy:TagResource" }, arn("codedeploy", "application:${Namespace}-${ServiceName}*")),
      })
      roles.ci = role(t, "CodeBuildCIRole", "Role of the build stage: artifacts, image push, repo stack",
        "codebuild.amazonaws.com", s):getatt("Arn")
      created.ci = "CodeBuildCIRole"
    end
  end
  if cfg.stages.acceptance or cfg.stages.production then
    if cfg.disable_iam then
      roles.test = nil -- falls back to each stage's deploy role
    else
      local s = append(codebuild_base(refs), {
        stmt("TestReports", { "codebuild:BatchPutCodeCoverages", "codebuild:BatchPutTestCases",
          "codebuild:CreateReport", "codebuild:CreateReportGroup", "codebuild:UpdateReport" },
          arn("codebuild", "report-group/" .. PREFIX .. "-*")),
      })
      roles.test = role(t, "CodeBuildTestRole", "Role of the test actions: logs, artifacts and reports only",
        "codebuild.amazonaws.com", s):getatt("Arn")
      created.test = "CodeBuildTestRole"
    end
  end
  for _, st in ipairs({ { "acceptance", "acpt", "AcptEnv", "CodeBuildCDAcptRole" },
    { "production", "prod", "ProdEnv", "CodeBuildCDProdRole" } }) do
    local stage, key, envparam, id = st[1], st[2], st[3], st[4]
    if cfg.stages[stage] and not (cfg.targets and cfg.targets[key]) then
      if cfg.given[key] then
        roles[key] = cfg.given[key]
      else
        roles[key] = role(t, id, "Role of the " .. stage .. " deploy: lumu deploys through the CloudFormation "
          .. "service role only", "codebuild.amazonaws.com", deploy_statements(cfg, refs, envparam, cfg.assume[key]))
          :getatt("Arn")
        created[key] = id
      end
    end
  end
  if needs_events_role(cfg) then
    roles.events = role(t, "SourceEventRole", "Lets EventBridge start the pipeline on source changes",
      "events.amazonaws.com", { stmt("StartPipeline", { "codepipeline:StartPipelineExecution" }, names.pipeline) })
      :getatt("Arn")
    created.events = "SourceEventRole"
  end
  return refs
end

-- IAM stack outputs, in a fixed order: {output name, refs path}.
local EXPORTS = {
  { "CodePipelineKeyArn", "key_arn", "key" },
  { "PipelineBucket", "bucket", "bucket" },
  { "ConnectionArn", "connection_arn", "connection" },
  { "CodePipelineRoleArn", "pipeline", "role" },
  { "CodeBuildCIRoleArn", "ci", "role" },
  { "CodeBuildTestRoleArn", "test", "role" },
  { "CodeBuildCDAcptRoleArn", "acpt", "role" },
  { "CodeBuildCDProdRoleArn", "prod", "role" },
  { "SourceEventRoleArn", "events", "role" },
}

local function exported(cfg, refs)
  local out = {}
  for _, e in ipairs(EXPORTS) do
    local name, field, kind = e[1], e[2], e[3]
    local value, made
    if kind == "role" then
      value, made = refs.roles[field], refs.created_roles[field] ~= nil
    elseif kind == "connection" then
      value, made = refs.connection_arn, refs.connection_arn ~= nil
    else
      value, made = refs[field], refs.created[kind]
    end
    if made then out[#out + 1] = { name = name, field = field, kind = kind, value = value } end
  end
  return out
end

-- CodeBuild project.
local function project(t, id, name, desc, role_arn, refs, env, buildspec_text, timeout_min, vars, privileged)
  local evars = {}
  for _, v in ipairs(vars) do
    if v[2] ~= nil then evars[#evars + 1] = { Name = v[1], Value = v[2], Type = "PLAINTEXT" } end
  end
  return res(t, id, "AWS::CodeBuild::Project", desc, {
    Name = cfn.Sub(PREFIX .. "-" .. name),
    Description = desc,
    ServiceRole = role_arn,
    EncryptionKey = refs.key_arn,
    TimeoutInMinutes = timeout_min,
    Artifacts = { Type = "CODEPIPELINE" },
    Source = { Type = "CODEPIPELINE", BuildSpec = buildspec_text },
    Environment = {
      Type = env.type, ComputeType = env.computeType, Image = env.image,
      PrivilegedMode = privileged == true,
      EnvironmentVariables = arr(evars),
    },
  })
end

local function spec_path(cfg, file)
  if cfg.basedir == "." then return file end
  return cfg.basedir .. "/" .. file
end

local DEPLOY_ENV = { type = "LINUX_CONTAINER", computeType = "BUILD_GENERAL1_SMALL" }

local function revision_variable(cfg)
  if cfg.provider == "S3" then return "#{SourceVariables.VersionId}" end
  return "#{SourceVariables.CommitId}"
end

local function codebuild_action(name, category, project_handle, input, output, order, cfg)
  local a = {
    Name = name,
    ActionTypeId = { Category = category, Owner = "AWS", Provider = "CodeBuild", Version = "1" },
    Configuration = {
      ProjectName = project_handle,
      EnvironmentVariables = json.encode(arr({ { name = "LUMU_REVISION", value = revision_variable(cfg),
        type = "PLAINTEXT" } })),
    },
    InputArtifacts = arr({ { Name = input } }),
    RunOrder = order,
  }
  if output then a.OutputArtifacts = arr({ { Name = output } }) end
  return a
end

local function source_action(cfg, refs)
  local a = { Name = "Source", Namespace = "SourceVariables", RunOrder = 1,
    OutputArtifacts = arr({ { Name = "SourceOutput" } }) }
  local poll = refs.roles.events == nil and "true" or "false"
  if cfg.provider == "GitHub" then
    if cfg.auth == "connection" then
      a.ActionTypeId = { Category = "Source", Owner = "AWS", Provider = "CodeStarSourceConnection", Version = "1" }
      a.Configuration = { ConnectionArn = refs.connection_arn, FullRepositoryId = cfn.Ref("SourceRepo"),
        BranchName = cfn.Ref("SourceBranch"), OutputArtifactFormat = "CODE_ZIP", DetectChanges = "true" }
    else
      a.ActionTypeId = { Category = "Source", Owner = "ThirdParty", Provider = "GitHub", Version = "1" }
      a.Configuration = {
        Owner = cfn.Select(0, cfn.Split("/", cfn.Ref("SourceRepo"))),
        Repo = cfn.Select(1, cfn.Split("/", cfn.Ref("SourceRepo"))),
        Branch = cfn.Ref("SourceBranch"),
        OAuthToken = cfg.auth == "secret" and cfg.token_ref or cfn.Ref("GitHubToken"),
        PollForSourceChanges = "true",
      }
    end
  elseif cfg.provider == "CodeCommit" then
    a.ActionTypeId = { Category = "Source", Owner = "AWS", Provider = "CodeCommit", Version = "1" }
    a.Configuration = { RepositoryName = cfn.Ref("SourceRepo"), BranchName = cfn.Ref("SourceBranch"),
      PollForSourceChanges = poll }
  else
    a.ActionTypeId = { Category = "Source", Owner = "AWS", Provider = "S3", Version = "1" }
    a.Configuration = { S3Bucket = cfn.Ref("SourceBucket"), S3ObjectKey = cfn.Ref("SourceObjectKey"),
      PollForSourceChanges = poll }
  end
  return a
end

-- The pipeline and everything that runs it.
local function add_pipeline(t, cfg, refs)
  local roles = refs.roles
  local common_vars = {
    { "MU_NAMESPACE", cfn.Ref("Namespace") },
    { "LUMU_DOWNLOAD_URL", cfg.download_url },
    { "LUMU_SHA256", cfg.sha256 },
    { "LUMU_BASEDIR", cfg.basedir },
  }
  local function vars(extra)
    local v = {}
    for _, x in ipairs(common_vars) do v[#v + 1] = x end
    for _, x in ipairs(extra or {}) do v[#v + 1] = x end
    return v
  end
  local topic = res(t, "PipelineNotificationTopic", "AWS::SNS::Topic",
    "Pipeline notices: success, failure, approval requests", {
      TopicName = cfn.Sub(PREFIX), DisplayName = cfn.Sub("lumu pipeline ${Namespace}-${ServiceName}"),
      KmsMasterKeyId = refs.key_arn,
    })
  for i, email in ipairs(cfg.notify) do
    res(t, "NotifySubscription" .. i, "AWS::SNS::Subscription", "E-mail subscription " .. email, {
      Protocol = "email", Endpoint = email, TopicArn = topic,
    })
  end

  local stages = {}
  stages[#stages + 1] = { Name = "Source", Actions = arr({ source_action(cfg, refs) }) }
  local deploy_input = "SourceOutput"
  if cfg.stages.build then
    local artifact = project(t, "ArtifactProject", "artifact", "Builds the service with the repository's buildspec",
      roles.ci, refs, cfg.build, spec_path(cfg, cfg.build.buildspec), cfg.build.timeout, vars(), false)
    local image = project(t, "ImageProject", "image", "Pushes the service image or bundle (lumu svc push)",
      roles.ci, refs, { type = "LINUX_CONTAINER", computeType = cfg.build.computeType, image = M.DEFAULT_IMAGE },
      buildspec.image(), cfg.build.timeout, vars(), true)
    stages[#stages + 1] = { Name = "Build", Actions = arr({
      codebuild_action("Artifact", "Build", artifact, "SourceOutput", "ArtifactOutput", 1, cfg),
      codebuild_action("Image", "Build", image, "ArtifactOutput", nil, 2, cfg),
    }) }
  end
  local function stage_projects(stage, key, envparam, test_cfg, tid, did)
    local tg = cfg.targets and cfg.targets[key]
    if tg then
      -- the projects live in the environment's account (M.target_template)
      return cfn.Sub(PREFIX .. "-deploy-" .. stage), cfn.Sub(PREFIX .. "-test-" .. stage), tg.role
    end
    local assume = cfg.assume[key]
    local extra = {
      { "LUMU_ENV", cfn.Ref(envparam) },
      { "LUMU_CFN_ROLE_ARN", cfn_role_arn(cfg) },
      { "LUMU_DISABLE_IAM", "true" },
      { "LUMU_DEPLOY_ROLE_ARN", assume },
    }
    local dimage = { type = DEPLOY_ENV.type, computeType = DEPLOY_ENV.computeType, image = M.DEFAULT_IMAGE }
    local deploy = project(t, did, "deploy-" .. stage, "Deploys the environment, database and service to the "
      .. stage .. " environment (lumu)", roles[key], refs, dimage,
      buildspec.deploy({ test_buildspec = test_cfg.buildspec, assume_role = assume ~= nil }),
      (stage == "acceptance") and cfg.test.timeout or cfg.prod_test.timeout, vars(extra), false)
    local test = project(t, tid, "test-" .. stage, "Tests the " .. stage .. " environment ("
      .. test_cfg.buildspec .. ")", roles.test or roles[key], refs, test_cfg, spec_path(cfg, test_cfg.buildspec),
      test_cfg.timeout, vars({ { "LUMU_ENV", cfn.Ref(envparam) } }), false)
    return deploy, test
  end
  if cfg.stages.acceptance then
    local deploy, test, action_role = stage_projects("acceptance", "acpt", "AcptEnv", cfg.test,
      "TestAcceptanceProject", "DeployAcceptanceProject")
    local actions = arr({
      codebuild_action("Deploy", "Build", deploy, deploy_input, "DeployAcceptanceOutput", 1, cfg),
      codebuild_action("Test", "Test", test, "DeployAcceptanceOutput", nil, 2, cfg),
    })
    if action_role then
      for _, a in ipairs(actions) do a.RoleArn = action_role end
    end
    stages[#stages + 1] = { Name = "Acceptance", Actions = actions }
  end
  if cfg.stages.production then
    local deploy, test, action_role = stage_projects("production", "prod", "ProdEnv", cfg.prod_test,
      "TestProductionProject", "DeployProductionProject")
    local actions = arr({
      {
        Name = "Approve",
        ActionTypeId = { Category = "Approval", Owner = "AWS", Provider = "Manual", Version = "1" },
        Configuration = {
          NotificationArn = topic,
          CustomData = cfn.Sub("Approve deploying ${ServiceName} to ${ProdEnv} (revision #{SourceVariables."
            .. (cfg.provider == "S3" and "VersionId" or "CommitId") .. "})"),
        },
        RunOrder = 1,
      },
      codebuild_action("Deploy", "Build", deploy, deploy_input, "DeployProductionOutput", 2, cfg),
      codebuild_action("Test", "Test", test, "DeployProductionOutput", nil, 3, cfg),
    })
    if action_role then
      actions[2].RoleArn = action_role
      actions[3].RoleArn = action_role
    end
    stages[#stages + 1] = { Name = "Production", Actions = actions }
  end

  local pl = res(t, "Pipeline", "AWS::CodePipeline::Pipeline", "The service's delivery pipeline", {
    Name = cfn.Sub("${Namespace}-${ServiceName}"),
    PipelineType = "V2",
    RoleArn = roles.pipeline,
    RestartExecutionOnUpdate = false,
    ArtifactStore = { Type = "S3", Location = refs.bucket, EncryptionKey = { Id = refs.key_arn, Type = "KMS" } },
    Stages = arr(stages),
  })
  local pipeline_arn = cfn.Sub("arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:${Pipeline}")
  local rule = res(t, "PipelineStateRule", "AWS::Events::Rule", "Sends pipeline successes and failures to the topic", {
    Description = cfn.Sub("lumu: ${Namespace}-${ServiceName} pipeline succeeded or failed"),
    State = "ENABLED",
    EventPattern = {
      source = arr({ "aws.codepipeline" }),
      ["detail-type"] = arr({ "CodePipeline Pipeline Execution State Change" }),
      resources = arr({ pipeline_arn }),
      detail = { state = arr({ "FAILED", "SUCCEEDED" }) },
    },
    Targets = arr({ {
      Id = "PipelineNotificationTopic", Arn = topic,
      InputTransformer = {
        InputPathsMap = { pipeline = "$.detail.pipeline", state = "$.detail.state", execution = "$.detail.execution-id" },
        InputTemplate = '"Pipeline <pipeline> <state> (execution <execution>)"',
      },
    } }),
  })
  res(t, "PipelineNotificationTopicPolicy", "AWS::SNS::TopicPolicy", "Lets the state rule publish to the topic", {
    Topics = arr({ topic }),
    PolicyDocument = { Version = "2012-10-17", Statement = arr({
      { Sid = "EventBridgePublish", Effect = "Allow", Principal = { Service = "events.amazonaws.com" },
        Action = "sns:Publish", Resource = topic,
        Condition = { ArnEquals = { ["aws:SourceArn"] = rule:getatt("Arn") } } },
      { Sid = "DenyInsecureTransport", Effect = "Deny", Principal = "*", Action = "sns:Publish", Resource = topic,
        Condition = { Bool = { ["aws:SecureTransport"] = "false" } } },
    }) },
  })
  if roles.events then
    local pattern
    if cfg.provider == "CodeCommit" then
      pattern = {
        source = arr({ "aws.codecommit" }),
        ["detail-type"] = arr({ "CodeCommit Repository State Change" }),
        resources = arr({ arn("codecommit", "${SourceRepo}") }),
        detail = { event = arr({ "referenceCreated", "referenceUpdated" }), referenceType = arr({ "branch" }),
          referenceName = arr({ cfn.Ref("SourceBranch") }) },
      }
    else
      pattern = {
        source = arr({ "aws.s3" }),
        ["detail-type"] = arr({ "Object Created" }),
        detail = { bucket = { name = arr({ cfn.Ref("SourceBucket") }) },
          object = { key = arr({ cfn.Ref("SourceObjectKey") }) } },
      }
    end
    res(t, "SourceChangeRule", "AWS::Events::Rule", "Starts the pipeline when the source changes", {
      Description = cfn.Sub("lumu: start ${Namespace}-${ServiceName} on source changes"),
      State = "ENABLED", EventPattern = pattern,
      Targets = arr({ { Id = "Pipeline", Arn = pipeline_arn, RoleArn = roles.events } }),
    })
  end
  t:output("CodePipelineUrl", cfn.Sub(
    "https://${AWS::Region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/${Pipeline}/view"),
    { description = "The pipeline in the AWS console" })
  t:output("PipelineName", pl, { description = "Name of the pipeline" })
  t:output("PipelineNotificationTopicArn", topic, { description = "SNS topic of the pipeline's notices" })
  return pl
end

local function connection_outputs(t, refs, export)
  if refs.created.connection then
    t:output("ConnectionStatus", cfn.GetAtt("GitHubConnection", "ConnectionStatus"), {
      description = "PENDING until the GitHub handshake is finished in the console", condition = "CreateConnection" })
  end
  if export == false and refs.connection_arn then
    t:output("ConnectionArn", refs.connection_arn, { description = "The CodeStar connection to GitHub" })
  end
end

--- The `<ns>-iam-pipeline-<svc>` template.
function M.iam_template(cfg)
  local t = cfn.template({ description = "lumu pipeline IAM: key, artifact bucket, connection and roles for "
    .. cfg.ns .. "-" .. tostring(cfg.service) })
  add_parameters(t, cfg, { connection = true })
  local refs = add_infra(t, cfg, true)
  add_roles(t, cfg, refs)
  local out = exported(cfg, refs)
  for _, e in ipairs(out) do
    t:output(e.name, e.value, { export = cfn.Sub("${AWS::StackName}-" .. e.name) })
  end
  connection_outputs(t, refs)
  if #out == 0 then
    res(t, "Placeholder", "AWS::CloudFormation::WaitConditionHandle", "Nothing to create: every role is given", {})
  end
  return t, out
end

--- The `<ns>-pipeline-<svc>` template.  opts.split: the IAM stack exists and
-- its exports are read through parameters (returned as the second value:
-- {param = output name}).
function M.pipeline_template(cfg, opts)
  opts = opts or {}
  local t = cfn.template({ description = "lumu pipeline for " .. cfg.ns .. "-" .. tostring(cfg.service) })
  local imports = {}
  if opts.split then
    add_parameters(t, cfg, { token = true })
    -- what the IAM stack made: same settings, same decisions
    local probe = cfn.template()
    add_parameters(probe, cfg, { connection = true })
    local prefs = add_infra(probe, cfg, true)
    add_roles(probe, cfg, prefs)
    local refs = { created = {}, roles = {} }
    for _, e in ipairs(exported(cfg, prefs)) do
      t:parameter(e.name, { Type = "String", Description = "Export name of " .. e.name .. " (pipeline IAM stack)" })
      imports[e.name] = e.name
      local v = common.import(e.name)
      if e.kind == "role" then refs.roles[e.field] = v else refs[e.field] = v end
    end
    refs.key_arn = refs.key_arn or cfg.kms_key
    if not refs.bucket then refs.bucket = cfg.bucket end
    for k, v in pairs(prefs.roles) do
      if refs.roles[k] == nil and type(v) == "string" then refs.roles[k] = v end
    end
    add_pipeline(t, cfg, refs)
  else
    add_parameters(t, cfg, { connection = true, token = true })
    local refs = add_infra(t, cfg, true)
    refs.roles = {}
    for k, v in pairs(cfg.given) do refs.roles[k] = v end
    add_pipeline(t, cfg, refs)
    connection_outputs(t, refs, false)
  end
  return t, imports
end

--- IAM + infrastructure + pipeline in one template (Service Catalog).
function M.product_template(cfg)
  local t = cfn.template({ description = "lumu pipeline (Service Catalog product)" })
  add_parameters(t, cfg, { connection = true, token = true })
  local refs = add_infra(t, cfg, true)
  add_roles(t, cfg, refs)
  add_pipeline(t, cfg, refs)
  if refs.created.key then t:output("CodePipelineKeyArn", refs.key_arn) end
  return t
end

--- The `<ns>-pipeline-<svc>-<env>` template of a cross-account stage: the
-- deploy and test projects and their roles, in the environment's account.
function M.target_template(cfg, key)
  local tg = cfg.targets[key]
  local stage = key == "acpt" and "acceptance" or "production"
  local envparam = key == "acpt" and "AcptEnv" or "ProdEnv"
  local tools = cfg.tools_account
  local t = cfn.template({ description = "lumu pipeline " .. cfg.ns .. "-" .. tostring(cfg.service) .. ": the "
    .. stage .. " deploy and test projects in account " .. tg.account .. " (pipeline in account " .. tools .. ")" })
  t:parameter("Namespace", { Type = "String", Default = cfg.ns, AllowedPattern = "^[A-Za-z][A-Za-z0-9-]*$",
    Description = "Namespace for stack prefixes" })
  t:parameter("ServiceName", { Type = "String", Default = cfg.service, AllowedPattern = NAME_PATTERN,
    Description = "Name of the service the pipeline builds and deploys" })
  t:parameter(envparam, { Type = "String", Default = tg.env, AllowedPattern = NAME_PATTERN,
    Description = "Environment the " .. stage .. " stage deploys to" })
  local bucket = cfg.bucket or cfg.artifact_bucket_name
  local refs = { created = {}, bucket = bucket, bucket_arn = s3arn(bucket) }
  local key_arn = cfg.kms_key or cfn.Sub("arn:${AWS::Partition}:kms:${AWS::Region}:" .. tools .. ":key/*")
  refs.key_arn = key_arn
  local function scoped(statements)
    for _, x in ipairs(statements) do
      if x.Sid == "ArtifactKey" and not cfg.kms_key then
        -- the tools account's pipeline key, by its alias
        x.Condition = { ["ForAnyValue:StringEquals"] = { ["kms:ResourceAliases"] = cfn.Sub(
          "alias/${Namespace}-pipeline-${ServiceName}") } }
      end
    end
    return statements
  end
  local deploy_role = role(t, "CodeBuildDeployRole", "Role of the " .. stage .. " deploy: lumu deploys through the "
    .. "CloudFormation service role only", "codebuild.amazonaws.com",
    scoped(deploy_statements(cfg, refs, envparam, nil))):getatt("Arn")
  local test_role = role(t, "CodeBuildTestRole", "Role of the " .. stage .. " tests: logs, artifacts and reports only",
    "codebuild.amazonaws.com", scoped(append(codebuild_base(refs), {
      stmt("TestReports", { "codebuild:BatchPutCodeCoverages", "codebuild:BatchPutTestCases",
        "codebuild:CreateReport", "codebuild:CreateReportGroup", "codebuild:UpdateReport" },
        arn("codebuild", "report-group/" .. PREFIX .. "-*")),
    }))):getatt("Arn")
  local prefs = { key_arn = cfg.kms_key or cfn.Sub("arn:${AWS::Partition}:kms:${AWS::Region}:" .. tools
    .. ":alias/${Namespace}-pipeline-${ServiceName}") }
  local vars = {
    { "MU_NAMESPACE", cfn.Ref("Namespace") },
    { "LUMU_DOWNLOAD_URL", cfg.download_url },
    { "LUMU_SHA256", cfg.sha256 },
    { "LUMU_BASEDIR", cfg.basedir },
  }
  local function with(extra)
    local v = {}
    for _, x in ipairs(vars) do v[#v + 1] = x end
    for _, x in ipairs(extra) do v[#v + 1] = x end
    return v
  end
  local test_cfg = key == "acpt" and cfg.test or cfg.prod_test
  local dimage = { type = DEPLOY_ENV.type, computeType = DEPLOY_ENV.computeType, image = M.DEFAULT_IMAGE }
  project(t, "DeployProject", "deploy-" .. stage, "Deploys the environment, database and service to the " .. stage
    .. " environment (lumu)", deploy_role, prefs, dimage, buildspec.deploy({ test_buildspec = test_cfg.buildspec }),
    test_cfg.timeout, with({ { "LUMU_ENV", cfn.Ref(envparam) }, { "LUMU_CFN_ROLE_ARN", cfn_role_arn(cfg) },
      { "LUMU_DISABLE_IAM", "true" } }), false)
  project(t, "TestProject", "test-" .. stage, "Tests the " .. stage .. " environment (" .. test_cfg.buildspec .. ")",
    test_role, prefs, test_cfg, spec_path(cfg, test_cfg.buildspec), test_cfg.timeout,
    with({ { "LUMU_ENV", cfn.Ref(envparam) } }), false)
  return t
end

-- Parameter values of a pipeline template (not the secret ones).
local function parameter_values(cfg)
  local v = { Namespace = cfg.ns, ServiceName = cfg.service }
  if cfg.provider == "S3" then
    v.SourceBucket, v.SourceObjectKey = cfg.source_bucket, cfg.source_key
  else
    v.SourceRepo, v.SourceBranch = cfg.repo, cfg.branch
  end
  if cfg.provider == "GitHub" and cfg.auth == "connection" then v.ConnectionArn = cfg.connection_arn end
  if cfg.stages.acceptance then v.AcptEnv = cfg.acpt_env end
  if cfg.stages.production then v.ProdEnv = cfg.prod_env end
  return v
end
M.parameter_values = parameter_values

local STACK_POLICY = {
  Statement = arr({
    { Effect = "Deny", Action = arr({ "Update:Replace", "Update:Delete" }), Principal = "*", Resource = "*",
      Condition = { StringEquals = { ResourceType = arr({ "AWS::KMS::Key", "AWS::S3::Bucket" }) } } },
    { Effect = "Allow", Action = "Update:*", Principal = "*", Resource = "*" },
  }),
}

-- The template table of builder t (which this uses up) and the parameters
-- it declares.
local function finish(t)
  local tbl = t:to_table({ consume = true })
  return tbl, tbl.Parameters or {}
end

local function only_declared(values, params)
  local out = {}
  for k, v in pairs(values) do
    if params[k] ~= nil and v ~= nil then out[k] = tostring(v) end
  end
  return out
end

-- The service's stacks (or its catalog-provision descriptor).
local function service_stacks(model, ctx, svc, index, out)
  local p = svc.pipeline
  local ns = ctx.namespace or model.namespace or "mu"
  local path = (svc._path or ("services[" .. index .. "]")) .. ".pipeline"
  if p.catalog and p.catalog.name and p.catalog.version then
    return M.provision(model, ctx, svc, path, out)
  end
  local cfg, warnings = M.settings(p, {
    namespace = ns, service = svc.name, git = ctx.git, basedir = ctx.basedir, version = ctx.version,
    baseurl = ctx.baseurl, github_token = ctx.github_token, path = path,
    disable_iam = model.disableIAM == true or ctx.disable_iam == true,
    cfn_role = model.roles and model.roles.cloudFormation,
    targets = M.targets(model, ns, p), tools_account = model.tools and model.tools.account,
  })
  if not cfg then return nil, warnings end
  local names = M.names(ns, svc.name)
  local values = parameter_values(cfg)
  local tags = common.tags("pipeline", { service = svc.name, repo = cfg.repo })
  local depends = { common.stack_name(ns, "iam", "common") }
  for _, st in ipairs({ { "acceptance", cfg.acpt_env, "acpt" }, { "production", cfg.prod_env, "prod" } }) do
    -- (a cross-account stage's IAM stacks live in its account, deployed there)
    if cfg.stages[st[1]] and not cfg.targets[st[3]] then
      depends[#depends + 1] = common.stack_name(ns, "iam", "environment", st[2])
      depends[#depends + 1] = common.stack_name(ns, "iam", "service", svc.name, st[2])
    end
  end
  local secret = (cfg.auth == "parameter") and { "GitHubToken" } or nil
  if cfg.disable_iam then
    local t = M.pipeline_template(cfg, { split = false })
    local tbl, params = finish(t)
    out[#out + 1] = common.stack({
      name = names.pipeline, kind = "pipeline", service = svc.name,
      template = tbl, parameters = only_declared(values, params), tags = tags,
      depends = depends, secret_parameters = secret, warnings = warnings, stack_policy = STACK_POLICY,
      description = "CodePipeline for service " .. svc.name .. " (IAM disabled: given roles)",
    })
    return true, cfg
  end
  local it = M.iam_template(cfg)
  local iam_depends = { depends[1] }
  local itbl, iparams = finish(it)
  out[#out + 1] = common.stack({
    name = names.iam, kind = "iam", service = svc.name,
    template = itbl, parameters = only_declared(values, iparams),
    tags = common.tags("iam", { service = svc.name }), depends = iam_depends,
    capabilities = { "CAPABILITY_IAM" }, stack_policy = STACK_POLICY, warnings = warnings,
    description = "Pipeline key, artifact bucket, connection and roles for service " .. svc.name,
  })
  local pt, imports = M.pipeline_template(cfg, { split = true })
  local pvalues = {}
  for k, v in pairs(values) do pvalues[k] = v end
  for param, output in pairs(imports) do pvalues[param] = common.export_name(names.iam, output) end
  local pdeps = { names.iam }
  for i = 1, #depends do pdeps[#pdeps + 1] = depends[i] end
  local ptbl, pparams = finish(pt)
  out[#out + 1] = common.stack({
    name = names.pipeline, kind = "pipeline", service = svc.name,
    template = ptbl, parameters = only_declared(pvalues, pparams), tags = tags,
    depends = pdeps, secret_parameters = secret, warnings = warnings,
    description = "CodePipeline for service " .. svc.name,
  })
  return true, cfg
end

--- The cross-account stages of pipeline record p: {acpt = {env=, account=,
-- role=, profile=}, prod = ...} for stages whose environment (of the model)
-- has an account other than tools.account.
function M.targets(model, ns, p)
  local out = {}
  local tools = model.tools and model.tools.account
  for _, st in ipairs({ { "acpt", p.acceptance or {} }, { "prod", p.production or {} } }) do
    local key, rec = st[1], st[2]
    local envname = rec.environment or (key == "acpt" and "acceptance" or "production")
    for _, e in ipairs(model.environments or {}) do
      if type(e.name) == "string" and e.name:lower() == envname:lower() and e.account and e.account ~= tools then
        out[key] = { env = e.name, account = e.account, profile = e.profile,
          role = e.role or ("arn:aws:iam::" .. e.account .. ":role/" .. ns .. "-deploy") }
      end
    end
  end
  return out
end

-- Where the stacks of a service's pipeline go: the tools account (tools.*)
-- for the pipeline and its IAM stack, the environments' accounts for the
-- cross-account stages' stacks (appended).
local function place_and_target(model, ctx, svc, cfg, out, first)
  local tools = model.tools
  for i = first, #out do
    if tools and (tools.account or tools.profile or tools.role) then
      out[i].account, out[i].profile, out[i].role = tools.account, tools.profile, tools.role
    end
  end
  if not cfg or not next(cfg.targets or {}) then return end
  local ns = ctx.namespace or model.namespace or "mu"
  local names = M.names(ns, svc.name)
  local pipe
  for i = first, #out do if out[i].name == names.pipeline then pipe = out[i] end end
  for _, key in ipairs({ "acpt", "prod" }) do
    local tg = cfg.targets[key]
    if tg then
      local tbl, params = finish(M.target_template(cfg, key))
      local d = common.stack({
        name = common.stack_name(ns, "pipeline", svc.name, tg.env), kind = "pipeline", service = svc.name,
        env = tg.env, template = tbl,
        parameters = only_declared(parameter_values(cfg), params),
        tags = common.tags("pipeline", { service = svc.name, environment = tg.env }),
        capabilities = { "CAPABILITY_IAM" },
        description = "Deploy and test projects of service " .. svc.name .. " in account " .. tg.account
          .. " (environment " .. tg.env .. ")",
      })
      d.account, d.profile, d.role = tg.account, tg.profile, tg.role
      out[#out + 1] = d
      if pipe then pipe.depends[#pipe.depends + 1] = d.name end
    end
  end
end

--- The catalog-provision descriptor of a service whose pipeline names a
-- catalog product version (appended to out).
function M.provision(model, ctx, svc, path, out)
  local p = svc.pipeline
  local ns = ctx.namespace or model.namespace or "mu"
  local name, version = p.catalog.name, p.catalog.version
  local product_stack = common.stack_name(ns, "product", name)
  local src = p.source or {}
  local git = ctx.git or {}
  local values = { Namespace = ns, ServiceName = svc.name }
  local repo = src.repo or git.repo
  local provider = src.provider or git.provider or "GitHub"
  if provider == "S3" and repo then
    values.SourceBucket, values.SourceObjectKey = tostring(repo):match("^([^/]+)/(.+)$")
  else
    values.SourceRepo = repo
    values.SourceBranch = src.branch or git.branch or M.DEFAULT_BRANCH
  end
  if src.connectionArn then values.ConnectionArn = src.connectionArn end
  -- when this model defines the catalog, check the version and its parameters
  local product
  for _, cp in ipairs((model.catalog and model.catalog.pipelines) or {}) do
    if cp.name == name then product = cp end
  end
  if model.catalog and model.catalog.pipelines and #model.catalog.pipelines > 0 and not product then
    return nil, path .. ".catalog.name: no catalog pipeline '" .. tostring(name) .. "' in catalog.pipelines"
  end
  if product then
    local vcfg = product.versions and product.versions[version]
    if not vcfg then
      local have = {}
      for k in pairs(product.versions or {}) do have[#have + 1] = k end
      table.sort(have)
      return nil, path .. ".catalog.version: catalog pipeline '" .. name .. "' has no version '" .. tostring(version)
        .. "' (versions: " .. table.concat(have, ", ") .. ")"
    end
    local cfg, err = M.settings(vcfg, { namespace = ns, catalog = true, path = "catalog", version = ctx.version,
      baseurl = ctx.baseurl, basedir = ctx.basedir, cfn_role = model.roles and model.roles.cloudFormation })
    if not cfg then return nil, err end
    local _, params = finish(M.product_template(cfg))
    local filtered = only_declared(values, params)
    for k, def in pairs(params) do
      if filtered[k] == nil and def.Default == nil and not def.NoEcho then
        return nil, path .. ": product " .. name .. " " .. version .. " needs parameter " .. k
          .. ({ SourceRepo = " (set pipeline.source.repo)", ConnectionArn = " (set pipeline.source.connectionArn)",
            SourceBucket = " (set pipeline.source.repo: bucket/key)" })[k] or ""
      end
    end
    values = filtered
  else
    values = only_declared(values, setmetatable({}, { __index = function() return true end }))
  end
  out[#out + 1] = {
    name = ns .. "-" .. svc.name, kind = "catalog-provision", service = svc.name,
    product = name, version = version, product_stack = product_stack,
    parameters = values, tags = common.tags("pipeline", { service = svc.name }),
    depends = { product_stack },
    description = "Provision pipeline " .. name .. " " .. version .. " for service " .. svc.name,
  }
  return true
end

--- See the header.
function M.stacks(model, ctx)
  if type(model) ~= "table" then error("bad argument #1 to 'stacks' (model table expected)", 2) end
  if ctx ~= nil and type(ctx) ~= "table" then error("bad argument #2 to 'stacks' (table expected)", 2) end
  ctx = ctx or {}
  local out = {}
  for i, svc in ipairs(model.services or {}) do
    if svc.pipeline then
      local first = #out + 1
      local ok, err = service_stacks(model, ctx, svc, i, out)
      if not ok then return nil, err end
      place_and_target(model, ctx, svc, err, out, first)
    end
  end
  return out
end

return M
