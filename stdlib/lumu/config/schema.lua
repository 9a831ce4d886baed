--- The mu.yml schema as data: every key, its type, default, enum and check.
--
-- Internal to lumu.config (see docs/model.md for the contract).  Node kinds:
--   {t="string", enum=, check=, warn=, normalize=, default=}
--   {t="int", min=, max=, default=}      integers; numeric strings accepted
--   {t="bool", default=}                 true/false; "true"/"yes"/"on"... accepted
--   {t="list", of=node}                  defaults to an empty list
--   {t="map", of=node, key=check}        free keys (env names, versions, ...)
--   {t="record", fields={...}, aliases=, fill=true|false}
--        fill=true: created with defaults when absent; false: stays nil
--   {t="any"}                            copied as given (template fragments)
--   {t="envvalue"}                       service.environment value
--   {t="skip"}                           handled by the builder itself
--   {t="open", required=, check_name=}   a mapping kept as given (deep copy)
--        plus _where/_path/_keys; its fields are checked by a generator
-- Checks return an error message (string) or nil; `warn` returns a warning.
local M = {}

-- ---------------------------------------------------------------------------
-- Value checks
-- ---------------------------------------------------------------------------

local function quote(s)
  s = tostring(s)
  if #s > 60 then s = s:sub(1, 57) .. "..." end
  return "'" .. s:gsub("[%c\128-\255]", "?") .. "'"
end
M.quote = quote

function M.name(max)
  max = max or 63
  return function(v)
    if v == "" then return "must not be empty" end
    if not v:match("^[%w%-]+$") then
      return "must contain only letters, digits and dashes, got " .. quote(v)
    end
    if #v > max then
      return string.format("must be at most %d characters, got %d (%s)", max, #v, quote(v))
    end
  end
end

function M.namespace(v)
  local e = M.name(63)(v)
  if e then return e end
  if not v:match("^%a") then return "must start with a letter (stack names do), got " .. quote(v) end
end

function M.cidr(v)
  local a, b, c, d, n = v:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)/(%d+)$")
  if not a then return "expected an IPv4 CIDR like 10.0.0.0/16, got " .. quote(v) end
  for _, o in ipairs({ a, b, c, d }) do
    if #o > 3 or tonumber(o) > 255 then return "octet out of range in CIDR " .. quote(v) end
  end
  if #n > 2 or tonumber(n) > 32 then return "prefix length must be 0-32 in CIDR " .. quote(v) end
end

-- arn:<partition>:iam::<12 digits>:role/<path/name>, at most 95 characters (mu's rule).
function M.role_arn(v)
  if #v > 95 or not v:match("^arn:aws[%w%-]*:iam::%d%d%d%d%d%d%d%d%d%d%d%d:role/[%w+=,.@_/%-]+$") then
    return "expected an IAM role ARN like arn:aws:iam::123456789012:role/name (at most 95 characters), got "
      .. quote(v)
  end
end

-- roles.instance: mu passes it on as an instance profile ARN; accept both forms.
function M.role_or_profile_arn(v)
  if v:match("^arn:aws[%w%-]*:iam::%d%d%d%d%d%d%d%d%d%d%d%d:instance%-profile/[%w+=,.@_/%-]+$") then return nil end
  return M.role_arn(v)
end

function M.kms_warn(v)
  local head = "^arn:aws[%w%-]*:kms:[%w%-]+:%d%d%d%d%d%d%d%d%d%d%d%d:"
  if not (v:match(head .. "key/.+$") or v:match(head .. "alias/.+$")) then
    return "does not look like a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID): "
      .. quote(v) .. " is kept as given and will fail at deploy time"
  end
end

function M.prefixed(prefix)
  return function(v)
    if not v:match("^" .. prefix:gsub("%-", "%%-") .. "%w+$") then
      return string.format("expected an id like %sxxxxxxxx, got %s", prefix, quote(v))
    end
  end
end

function M.instance_type(v)
  if not v:match("^[%l%d%-]+%.[%l%d%-]+$") then
    return "expected an instance type like t3.micro, got " .. quote(v)
  end
end

function M.db_instance_class(v)
  if not v:match("^db%.[%l%d%-]+%.[%l%d%-]+$") then
    return "expected a DB instance class like db.t2.small, got " .. quote(v)
  end
end

function M.db_name(v)
  if not v:match("^%a[%w_]*$") or #v > 63 then
    return "must start with a letter and contain only letters, digits and underscores (at most 63), got "
      .. quote(v)
  end
end

function M.hostname(v)
  if not v:match("^[%w][%w%-%.]*%.?$") or v:find("..", 1, true) then
    return "expected a DNS name like example.com, got " .. quote(v)
  end
end

local URL_CHARS = "^[%w%-%._~:/%?#%[%]@!%$&'%(%)%*%+,;=%%]*$"
function M.path(v)
  if v:sub(1, 1) ~= "/" or not v:match(URL_CHARS) then
    return "expected a URL path starting with '/', got " .. quote(v)
  end
end

function M.http_proxy(v)
  if not v:match("^[%w%-%.]+:%d+$") and not v:match("^https?://[%w%-%.]+:%d+/?$") then
    return "expected host:port, got " .. quote(v)
  end
  local port = tonumber(v:match(":(%d+)/?$"))
  if port < 1 or port > 65535 then return "port out of range in " .. quote(v) end
end

function M.email(v)
  if not v:match("^[^@%s]+@[^@%s]+%.[^@%s]+$") then return "expected an email address, got " .. quote(v) end
end

function M.schedule_expression(v)
  if not (v:match("^cron%(.+%)$") or v:match("^rate%(.+%)$")) then
    return "expected cron(...) or rate(...), got " .. quote(v)
  end
end

function M.url(v)
  if not v:match("^https?://[^%s]+$") then return "expected an http(s) URL, got " .. quote(v) end
end

function M.no_space(v)
  if v == "" or v:find("%s") then return "must be non-empty without spaces, got " .. quote(v) end
end

function M.nonempty(v)
  if v == "" then return "must not be empty" end
end

function M.sha256_hex(v)
  if not v:match("^" .. string.rep("%x", 64) .. "$") then
    return "expected a sha256 as 64 hexadecimal digits, got " .. quote(v)
  end
end

function M.connection_arn(v)
  if not v:match("^arn:aws[%w%-]*:code[%w%-]*:[%w%-]+:%d%d%d%d%d%d%d%d%d%d%d%d:connection/.+$") then
    return "expected a CodeStar connection ARN (arn:aws:codeconnections:REGION:ACCOUNT:connection/ID), got "
      .. quote(v)
  end
end

function M.secret_arn(v)
  if not v:match("^arn:aws[%w%-]*:secretsmanager:[%w%-]+:%d%d%d%d%d%d%d%d%d%d%d%d:secret:.+$") then
    return "expected a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), got "
      .. quote(v)
  end
end

function M.table_name(v)
  if not v:match("^[%w_%.%-]+$") or #v > 255 then
    return "must contain only letters, digits, '_', '.' and '-', got " .. quote(v)
  end
end

-- CloudWatch Logs retention periods (days) the API accepts.
M.LOG_RETENTION = { 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
  2922, 3288, 3653 }

-- service.secrets names: container environment variable names.
function M.env_var(v)
  if not v:match("^[%a_][%w_]*$") or #v > 255 then
    return "must be an environment variable name (letters, digits and '_', not starting with a digit), got "
      .. quote(v)
  end
end

-- service.secrets values: an SSM parameter (ssm:NAME, /path/name or its
-- ARN) or a Secrets Manager secret (secretsmanager:NAME[:json-key] or its
-- ARN[:json-key[:stage[:version]]]); the grammar is lumu.gen.services.secret_ref.
function M.secret_ref(v)
  if v == "" then return "must not be empty (an SSM parameter or Secrets Manager reference)" end
  local ok, services = pcall(require, "lumu.gen.services")
  if not ok then return nil end
  local ref, err = services.secret_ref(v)
  if not ref then return err end
end

-- ACM certificate: mu wants the id; an ARN is reduced to its id.
function M.certificate_normalize(v)
  local id = v:match("^arn:aws[%w%-]*:acm:[%w%-]+:%d+:certificate/(.+)$")
  return id or v
end

-- AWS Config: managed rule identifiers (SourceIdentifier), custom rule
-- Lambda ARNs, resource types, rule names, S3 bucket names, SNS topic ARNs.
function M.managed_rule(v)
  if not v:match("^[A-Z][A-Z0-9_]*$") or #v > 256 then
    return "expected an AWS managed rule identifier like ENCRYPTED_VOLUMES, got " .. quote(v)
  end
end

function M.lambda_arn(v)
  if not v:match("^arn:aws[%w%-]*:lambda:[%w%-]+:%d%d%d%d%d%d%d%d%d%d%d%d:function:[%w%-_]+$")
      and not v:match("^arn:aws[%w%-]*:lambda:[%w%-]+:%d%d%d%d%d%d%d%d%d%d%d%d:function:[%w%-_]+:[%w%-_%$]+$") then
    return "expected a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME), got " .. quote(v)
  end
end

function M.resource_type(v)
  if not v:match("^AWS::%w+::%w+$") then
    return "expected a CloudFormation resource type like AWS::EC2::Volume, got " .. quote(v)
  end
end

function M.config_rule_name(v)
  if not v:match("^[%w][%w%-_]*$") or #v > 64 then
    return "must be letters, digits, '-' and '_' (at most 64), got " .. quote(v)
  end
end

function M.bucket_name(v)
  if #v < 3 or #v > 63 or not v:match("^[%l%d][%l%d%.%-]*[%l%d]$") or v:find("..", 1, true) then
    return "expected an S3 bucket name (3-63 lower-case letters, digits, '.' and '-'), got " .. quote(v)
  end
end

function M.sns_arn(v)
  if not v:match("^arn:aws[%w%-]*:sns:[%w%-]+:%d%d%d%d%d%d%d%d%d%d%d%d:[%w%-_]+$") then
    return "expected an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME), got " .. quote(v)
  end
end

M.CONFIG_FREQUENCIES = { "One_Hour", "Three_Hours", "Six_Hours", "Twelve_Hours", "TwentyFour_Hours" }

-- Accounts and guardrails (lumu.gen.org, vending, devenv).
function M.account_id(v)
  if not v:match("^" .. string.rep("%d", 12) .. "$") then
    return "expected a 12-digit AWS account id, got " .. quote(v)
  end
end

function M.org_name(max)
  return function(v)
    if not v:match("^[%w][%w%-_%. ]*$") or #v > max then
      return string.format("must start with a letter or digit and contain only letters, digits, spaces, '-', "
        .. "'_' and '.' (at most %d), got %s", max, quote(v))
    end
  end
end

function M.root_id(v)
  if not v:match("^r%-[%l%d]+$") or #v < 6 or #v > 34 then
    return "expected the organization's root id like r-ab12 (aws organizations list-roots), got " .. quote(v)
  end
end

function M.org_id(v)
  if not v:match("^o%-[%l%d]+$") or #v < 12 or #v > 34 then
    return "expected the organization id like o-a1b2c3d4e5 (aws organizations describe-organization), got " .. quote(v)
  end
end

function M.region(v)
  if not v:match("^%l%l%-[%l%-]+%-%d+$") then return "expected an AWS region like eu-west-1, got " .. quote(v) end
end

function M.role_name(v)
  if not v:match("^[%w+=,.@_%-]+$") or #v > 64 then
    return "expected an IAM role name (letters, digits and +=,.@_-, at most 64), got " .. quote(v)
  end
end

-- a role name where '*' and '?' stand for any characters (guardrail exemptions)
function M.role_pattern(v)
  if not v:match("^[%w+=,.@_%-%*%?/]+$") or #v > 128 then
    return "expected an IAM role name, '*' allowed (like stacksets-exec-*), got " .. quote(v)
  end
end

function M.principal_arn(v)
  if not (v:match("^arn:aws[%w%-]*:iam::%d%d%d%d%d%d%d%d%d%d%d%d:user/[%w+=,.@_/%-]+$")
      or v:match("^arn:aws[%w%-]*:iam::%d%d%d%d%d%d%d%d%d%d%d%d:role/[%w+=,.@_/%-]+$")
      or v:match("^arn:aws[%w%-]*:sts::%d%d%d%d%d%d%d%d%d%d%d%d:assumed%-role/[%w+=,.@_%-]+/[%w+=,.@_%-]+$")) then
    return "expected an IAM user or role ARN (arn:aws:iam::123456789012:user/alice), got " .. quote(v)
  end
end

function M.git_url(v)
  if not v:match("^https://[%w%-%.]+[:%d]*/[^%s]+$") then
    return "expected an https:// repository URL (GitHub or CodeCommit), got " .. quote(v)
  end
end

function M.policy_name(v)
  if not v:match("^[%w][%w%-_%.]*$") or #v > 128 then
    return "must be letters, digits, '-', '_' and '.' (at most 128), got " .. quote(v)
  end
end

-- ---------------------------------------------------------------------------
-- Node constructors
-- ---------------------------------------------------------------------------

local function S(t) t = t or {}; t.t = "string"; return t end
local function I(t) t = t or {}; t.t = "int"; return t end
local function B(default) return { t = "bool", default = default } end
local function L(of) return { t = "list", of = of } end
local function MAP(of, t) t = t or {}; t.t = "map"; t.of = of; return t end
local function R(fields, t) t = t or {}; t.t = "record"; t.fields = fields; if t.fill == nil then t.fill = true end; return t end
local ROLE = S { check = M.role_arn }

M.S, M.I, M.B, M.L, M.MAP, M.R = S, I, B, L, MAP, R

M.PROVIDERS = { "ecs", "ecs-fargate", "ec2", "eks", "eks-fargate" }

-- §3.2 environments[]
M.Environment = R({
  name = S { check = M.name(63), required = true },
  provider = S { enum = M.PROVIDERS, default = "ecs" },
  loadbalancer = R {
    hostedzone = S { check = M.hostname },
    name = S { check = M.name(32) },
    certificate = S { check = M.nonempty, normalize = M.certificate_normalize },
    internal = B(false),
    accessLogs = R {
      s3BucketName = S { check = M.no_space },
      s3Prefix = S { default = "access-logs" },
    },
  },
  cluster = R {
    instanceType = S { check = M.instance_type }, -- default by provider
    imageId = S { check = M.prefixed("ami-") },
    osType = S { enum = { "amazon", "centos7", "windows" }, default = "amazon" },
    instanceTenancy = S { enum = { "default", "dedicated", "host" }, default = "default" },
    desiredCapacity = I { min = 0, default = 1 },
    minSize = I { min = 0, default = 1 },
    maxSize = I { min = 1 }, -- default by provider
    keyName = S { check = M.nonempty },
    sshAllow = S { check = M.cidr }, -- no default: mu's 0.0.0.0/0 is not lumu's (docs/model.md)
    targetCPUReservation = I { min = 1, max = 100, default = 75 },
    targetMemoryReservation = I { min = 1, max = 100, default = 75 },
    httpProxy = S { check = M.http_proxy },
    extraUserData = S {},
  },
  discovery = R {
    provider = S {},
    name = S { check = M.hostname }, -- default <env>.<ns>.local
  },
  vpcTarget = R({
    vpcId = S { check = M.prefixed("vpc-") },
    instanceSubnetIds = L(S { check = M.prefixed("subnet-") }),
    elbSubnetIds = L(S { check = M.prefixed("subnet-") }),
    environment = S { check = M.name(63) },
    namespace = S { check = M.namespace },
  }, { fill = false }),
  roles = R {
    instance = S { check = M.role_or_profile_arn },
    eksService = ROLE,
  },
  -- lumu: the account the environment lives in (lumu.gen.pipeline deploys to it
  -- through its deploy role; lumu env up reaches it with profile, profiles or role)
  account = S { check = M.account_id },
  role = ROLE,       -- the deploy role in that account (default <ns>-deploy)
  profile = S { check = M.no_space }, -- the AWS profile for it (laptops)
}, { name = "environment" })

-- §3.4 pipeline (also catalog.pipelines[].versions.<v>)
local BUILD_TYPES = { "LINUX_CONTAINER", "WINDOWS_CONTAINER" }
local COMPUTE = { "BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE" }
local DEFAULT_IMAGE = "aws/codebuild/ubuntu-base:14.04"
local TIMEOUT = I { min = 5, max = 480, default = 30 }

M.Pipeline = R({
  catalog = R({ name = S { check = M.nonempty }, version = S { check = M.nonempty } }, { fill = false }),
  source = R {
    provider = S { enum = { "GitHub", "CodeCommit", "S3" }, ci = true },
    repo = S { check = M.nonempty },
    branch = S { check = M.no_space },
    -- lumu: GitHub through a CodeStar connection, or mu's token kept in Secrets Manager
    connectionArn = S { check = M.connection_arn },
    tokenSecret = S { check = M.no_space },
  },
  build = R {
    disabled = B(false),
    type = S { enum = BUILD_TYPES, ci = true, default = "LINUX_CONTAINER" },
    computeType = S { enum = COMPUTE, ci = true, default = "BUILD_GENERAL1_SMALL" },
    image = S { check = M.no_space, default = DEFAULT_IMAGE },
    bucket = S { check = M.no_space },
    timeout = TIMEOUT,
    buildspec = S { check = M.no_space },
  },
  acceptance = R {
    disabled = B(false),
    environment = S { check = M.name(63), default = "acceptance" },
    type = S { enum = BUILD_TYPES, ci = true, default = "LINUX_CONTAINER" },
    computeType = S { enum = COMPUTE, ci = true, default = "BUILD_GENERAL1_SMALL" },
    image = S { check = M.no_space, default = DEFAULT_IMAGE },
    roles = R { codeBuild = ROLE, mu = ROLE },
    timeout = TIMEOUT,
    buildspec = S { check = M.no_space },
  },
  production = R {
    disabled = B(false),
    environment = S { check = M.name(63), default = "production" },
    type = S { enum = BUILD_TYPES, ci = true },
    computeType = S { enum = COMPUTE, ci = true },
    image = S { check = M.no_space },
    roles = R { codeBuild = ROLE, mu = ROLE },
    timeout = TIMEOUT,
    buildspec = S { check = M.no_space },
  },
  -- where CodeBuild downloads lumu; the pipeline generator owns the default
  muBaseurl = S { check = M.url },
  muVersion = S { check = M.no_space },
  muSha256 = S { check = M.sha256_hex },
  kmsKey = S { warn = M.kms_warn },
  roles = R { pipeline = ROLE, build = ROLE },
  bucket = S { check = M.no_space },
  notify = L(S { check = M.email }),
}, { name = "pipeline", fill = false })

-- §3.5 database fields (top level and environmentConfig.<env>)
local function database_fields(with_defaults)
  local function d(v)
    if with_defaults then return v end
    return nil
  end
  return {
    name = S { check = M.db_name },
    engine = S { check = M.no_space, default = d("aurora") },
    engineMode = S { check = M.no_space, default = d("provisioned") },
    instanceClass = S { check = M.db_instance_class, default = d("db.t2.small") },
    allocatedStorage = I { min = 1, max = 65536, default = d(100) },
    masterUsername = S { check = M.nonempty, default = d("admin") },
    masterPasswordSSMParam = S { check = M.no_space },
    kmsKey = S { warn = M.kms_warn },
    iamAuthentication = B(d(false)),
    minSize = I { min = 1, max = 384, default = d(2) },
    maxSize = I { min = 1, max = 384, default = d(256) },
    secondsUntilAutoPause = I { min = 0, max = 86400, default = d(300) },
    -- lumu extensions (no mu key; defaults belong to lumu.gen.database)
    backupRetentionDays = I { min = 0, max = 35 },
    deletionProtection = B(nil),
    manageMasterUserPassword = B(nil),
    masterPasswordSecretArn = S { check = M.secret_arn },
    serverlessVersion = I { min = 1, max = 2 },
  }
end
M.DATABASE_ALIASES = { autoPauseSeconds = "secondsUntilAutoPause" }

M.DatabaseOverride = R(database_fields(false), { aliases = M.DATABASE_ALIASES, name = "database override" })
do
  local f = database_fields(true)
  f.environmentConfig = MAP(M.DatabaseOverride, { key = M.name(63) })
  M.Database = R(f, { aliases = M.DATABASE_ALIASES, fill = false, name = "database" })
end

-- §3.3 service
M.Service = R({
  name = S { check = M.name(63) }, -- default: directory name
  deploymentStrategy = S { enum = { "blue_green", "rolling", "replace" }, ci = true, default = "blue_green" },
  desiredCount = I { min = 0, default = 2 },
  minSize = I { min = 0, default = 1 },
  maxSize = I { min = 0, default = 2 },
  dockerfile = S { check = M.nonempty, default = "Dockerfile" },
  imageRepository = S { check = M.no_space },
  port = I { min = 1, max = 65535, default = 8080 },
  protocol = S { enum = { "HTTP", "HTTPS" }, ci = true, default = "HTTP" },
  healthEndpoint = S { check = M.path, default = "/health" },
  cpu = I { min = 0, default = 10 },
  memory = I { min = 1, default = 300 },
  networkMode = S { enum = { "none", "bridge", "awsvpc", "host" }, ci = true }, -- default by provider
  assignPublicIp = B(false),
  links = L(S { check = M.nonempty }),
  environment = MAP({ t = "envvalue" }),
  pathPatterns = L(S { check = M.nonempty }),
  hostPatterns = L(S { check = M.nonempty }),
  priority = I { min = 1, max = 50000 },
  pipeline = M.Pipeline,
  database = M.Database,
  schedules = L(R({
    name = S { check = M.name(63), required = true },
    expression = S { check = M.schedule_expression, required = true },
    command = L(S {}),
  }, { name = "schedule" })),
  targetCPUUtilization = I { min = 1, max = 100, default = 75 },
  discoveryTTL = I { min = 0, max = 2147483647, default = 60 },
  roles = R {
    ec2Instance = ROLE, codeDeploy = ROLE, ecsEvents = ROLE,
    ecsService = ROLE, ecsTask = ROLE, applicationAutoScaling = ROLE,
  },
  -- lumu extensions (no mu key)
  secrets = MAP({ t = "envvalue", check = M.secret_ref }, { key = M.env_var }), -- VAR -> reference (lumu.gen.services)
  dynamodb = L({ t = "open", required = "name", check_name = M.table_name }), -- tables (lumu.gen.dynamodb)
  logRetentionDays = I { min = 1, max = 3653, default = 30, allowed = M.LOG_RETENTION,
    allowed_what = "must be a CloudWatch Logs retention in days:" },
  repository = R({
    scanOnPush = B(true), immutableTags = B(false),
    maxImages = I { min = 1, max = 10000, default = 100 }, untaggedDays = I { min = 1, max = 3650, default = 14 },
  }, { name = "repository" }),
}, { name = "service" })

-- §3.1 top level
M.Extension = R({
  url = S { check = M.nonempty },
  image = S { check = M.nonempty },
  sha256 = S { check = M.sha256_hex }, -- lumu: pin of the extension archive
}, { name = "extension" })

M.Rbac = R({
  role = S { enum = { "admin", "view", "deploy" }, ci = true, required = true },
  environments = L(S { check = M.name(63) }),
  users = L(S { check = M.nonempty }),
  services = L(S { check = M.name(63) }),
}, { name = "rbac binding" })

M.Catalog = R({
  iamUsers = L(S { check = M.nonempty }),
  pipelines = L(R({
    name = S { check = M.name(63), required = true },
    description = S {},
    versions = MAP(M.Pipeline, { key = M.no_space }),
  }, { name = "catalog pipeline" })),
}, { fill = false, name = "catalog" })

-- lumu: compliance as code (AWS Config), lumu.gen.compliance
M.ComplianceRule = R({
  name = S { check = M.config_rule_name }, -- default: from identifier / the function name
  identifier = S { check = M.managed_rule }, -- an AWS managed rule
  lambdaArn = S { check = M.lambda_arn }, -- or a custom rule
  description = S {},
  parameters = MAP(S {}), -- InputParameters
  resourceTypes = L(S { check = M.resource_type }), -- Scope.ComplianceResourceTypes
  frequency = S { enum = M.CONFIG_FREQUENCIES }, -- periodic (MaximumExecutionFrequency)
}, { name = "compliance rule" })

M.Compliance = R({
  environments = L(S { check = M.name(63) }), -- default: every environment
  defaults = B(true),
  exclude = L(S { check = M.nonempty }),
  rules = L(M.ComplianceRule),
  recorder = R {
    environments = L(S { check = M.name(63) }), -- default: the first compliance environment
    allSupported = B(true),
    includeGlobalResourceTypes = B(true),
    resourceTypes = L(S { check = M.resource_type }),
    roleArn = ROLE,
  },
  delivery = R {
    bucket = S { check = M.bucket_name },
    prefix = S { check = M.no_space },
    frequency = S { enum = M.CONFIG_FREQUENCIES, default = "TwentyFour_Hours" },
    snsTopicArn = S { check = M.sns_arn },
  },
}, { fill = false, name = "compliance" })

-- lumu: accounts and guardrails as code (lumu.gen.org, lumu.gen.vending)
M.OrgUnit = R({
  name = S { check = M.org_name(128), required = true },
  parent = S { check = M.org_name(128) }, -- another unit's name; default the root
}, { name = "organizational unit" })

M.OrgAccount = R({
  name = S { check = M.org_name(50), required = true },
  email = S { check = M.email },           -- required to create it
  id = S { check = M.account_id },         -- an existing account: not created
  unit = S { check = M.org_name(128) },    -- default the root
  roleName = S { check = M.role_name },    -- default OrganizationAccountAccessRole
  tags = MAP(S {}),
}, { name = "account" })

M.OrgPolicy = R({
  name = S { check = M.policy_name, required = true },
  description = S {},
  statements = { t = "any" },              -- a list of IAM policy statements
  targets = L(S { check = M.nonempty }),   -- "Root", unit or account names, account ids
}, { name = "service control policy" })

M.Guardrails = R({
  leaveOrganization = B(true),  -- deny organizations:LeaveOrganization
  cloudTrail = B(true),         -- deny stopping, deleting and changing trails
  config = B(true),             -- deny stopping and deleting AWS Config
  guardDuty = B(true),          -- deny deleting, disassociating and changing GuardDuty
  rootUser = B(true),           -- deny every action of the root user
  regions = L(S { check = M.region }), -- allow-list; empty: no region guardrail
  exemptRoles = L(S { check = M.role_pattern }), -- role names the guardrails do not apply to
  targets = L(S { check = M.nonempty }), -- default { "Root" }
})

M.Vending = R({
  name = S { check = M.name(63), default = "account-vending" }, -- the product name
  unit = S { check = M.org_name(128) },     -- where vended accounts go (default the root)
  regions = L(S { check = M.region }),      -- where the baseline is deployed (default: the stack's)
  trailBucket = S { check = M.bucket_name }, -- default <ns>-org-trail-<log archive account id>
  deployRoleName = S { check = M.role_name }, -- default <ns>-deploy
}, { fill = false, name = "vending" })

M.Organization = R({
  account = S { check = M.account_id },    -- the management account (default: the caller's)
  profile = S { check = M.no_space },
  role = ROLE,
  rootId = S { check = M.root_id },
  id = S { check = M.org_id },             -- o-...: scopes the log archive bucket to the organization
  units = L(M.OrgUnit),
  accounts = L(M.OrgAccount),
  guardrails = M.Guardrails,
  policies = L(M.OrgPolicy),
  logArchive = S { check = M.org_name(50) }, -- the accounts[] entry receiving CloudTrail
  vending = M.Vending,
}, { fill = false, name = "organization" })

M.Tools = R({
  account = S { check = M.account_id },    -- where pipelines run
  profile = S { check = M.no_space },
  role = ROLE,
}, { fill = false, name = "tools" })

M.DevenvMember = R({
  name = S { check = M.name(40), required = true },
  ownerArn = S { check = M.principal_arn, required = true },
  instanceType = S { check = M.instance_type },
}, { name = "team member" })

M.Devenv = R({
  environment = S { check = M.name(63), required = true },
  members = L(M.DevenvMember),
  instanceType = S { check = M.instance_type, default = "t3.small" },
  automaticStopTimeMinutes = I { min = 0, max = 20160, default = 30 },
  imageId = S { check = M.no_space, default = "amazonlinux-2023-x86_64" },
  repository = S { check = M.git_url },     -- default: the first pipeline's source
  path = S { check = M.no_space },          -- where it is cloned (default /<repo name>)
}, { name = "devenv" })

M.Top = R({
  namespace = S { check = M.namespace },
  environments = L(M.Environment),
  service = M.Service, -- mu: one service
  services = L(M.Service), -- lumu: several
  templates = { t = "skip" },
  parameters = { t = "skip" },
  tags = { t = "skip" },
  extensions = L(M.Extension),
  disableIAM = B(false),
  roles = R { cloudFormation = ROLE },
  rbac = L(M.Rbac),
  catalog = M.Catalog,
  compliance = M.Compliance,
  organization = M.Organization,
  tools = M.Tools,
  profiles = MAP(S { check = M.no_space }, { key = M.account_id }), -- account id -> AWS profile
  devenvs = L(M.Devenv),
}, { name = "config" })
M.Top.fields.service = setmetatable({ fill = false }, { __index = M.Service })

return M
