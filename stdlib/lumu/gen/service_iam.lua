--- The IAM stack of a service in one environment:
-- <ns>-iam-service-<svc>-<env> (mu.md §4 row 9), least privilege.
--
-- local service_iam = require "lumu.gen.service_iam"
-- service_iam.stack(sc) -> descriptor (kind "iam")   sc from
--   lumu.gen.services.context.
-- ecs / ecs-fargate:
--   EcsTaskRole       assumed by ecs-tasks (this account's ECS only); item
--                     access to the service's DynamoDB tables (when it has
--                     some: lumu.gen.dynamodb.bindings), nothing else: the
--                     application's own policies are added with a
--                     `templates` override.
--   EcsExecutionRole  pulls the image (ecr:GetAuthorizationToken, and layer
--                     reads on the service's repository only), writes to the
--                     service's log group only, reads exactly the SSM
--                     parameters / Secrets Manager secrets the task's
--                     `secrets` name and the database password (kms:Decrypt
--                     only through those services; an RDS-managed password
--                     is granted in the service stack instead).
--   ApplicationAutoScalingRole  ecs:DescribeServices/UpdateService on this
--                     service, CloudWatch alarms for target tracking.
--   EcsEventsRole     (only with schedules) ecs:RunTask of this service's
--                     task definition family on its cluster, iam:PassRole of
--                     the two task roles to ECS tasks.
-- ec2 (CodeDeploy):
--   EC2InstanceRole + EC2InstanceProfile  reads revisions under <svc>/ of
--                     the codedeploy bucket, writes its log group, reads the
--                     secrets and the database password (ssm:GetParameter
--                     too: the user data uses the CLI), uses the tables; CodeDeployRole  AWSCodeDeployRole plus what
--                     launch templates need (ec2:RunInstances/CreateTags,
--                     iam:PassRole of the instance role to EC2).
-- Database key: when the service has a database in this environment without
--   kmsKey, DatabaseKey (KMS, rotation on, kept on deletion so snapshots stay
--   readable; the account administers it through IAM) and its alias
--   alias/<ns>-service-<svc>-<env>; lumu.gen.database imports DatabaseKeyArn
--   for the storage, snapshots and the master password parameter.
-- Outputs (exported as <stack>-<Output>): EcsTaskRoleArn,
--   EcsExecutionRoleArn, ApplicationAutoScalingRoleArn, EcsEventsRoleArn;
--   EC2InstanceRoleArn, EC2InstanceProfileArn, CodeDeployRoleArn;
--   DatabaseKeyArn.  The stack depends on the table stack it grants on.
-- A role given in service.roles (ecsTask, ecsEvents,
-- applicationAutoScaling, ec2Instance, codeDeploy) is not created here.
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"

local M = {}

local function assume(service, extra)
  local stmt = {
    Effect = "Allow",
    Principal = { Service = service },
    Action = "sts:AssumeRole",
  }
  if extra then stmt.Condition = extra end
  return { Version = "2012-10-17", Statement = { stmt } }
end

local function sub(s) return { ["Fn::Sub"] = s } end

-- arn:<partition>:<svc>:<region>:<account>:<rest>
local function arn(service, rest)
  return sub("arn:${AWS::Partition}:" .. service .. ":${AWS::Region}:${AWS::AccountId}:" .. rest)
end
M.arn = arn

--- The log group ARN of the service stack (log group name = stack name).
function M.log_group_arn(sc)
  return arn("logs", "log-group:" .. sc.stack.service .. ":*")
end

-- Statements that read the task's secrets: one read statement per store
-- listing exactly the parameters / secrets, and per secret a kms:Decrypt
-- limited to that store (kms:ViaService) and that parameter or secret
-- (encryption context), as lumu.gen.secrets.read_statements does.
local function secret_statements(sc, extra_ssm)
  local secrets = require "lumu.gen.secrets"
  local reads, decrypts = {}, {}
  for _, s in ipairs(sc.secrets) do
    if s.database then goto continue end
    local st = secrets.read_statements({ service = s.service, resource = s.resource, kms_context = s.kms_context })
    local read = reads[s.service]
    if not read then
      read = st[1]
      read.Resource = {}
      read.Sid = s.service == "ssm" and "ReadParameters" or "ReadSecrets"
      reads[s.service] = read
    end
    read.Resource[#read.Resource + 1] = s.resource
    for i = 2, #st do decrypts[#decrypts + 1] = st[i] end
    ::continue::
  end
  local out = {}
  if reads.ssm then out[#out + 1] = reads.ssm end
  if reads.secretsmanager then out[#out + 1] = reads.secretsmanager end
  for i, d in ipairs(decrypts) do
    d.Sid = "Decrypt" .. i
    out[#out + 1] = d
  end
  -- the database password (lumu.gen.database.bindings); an RDS-managed
  -- secret is granted in the service stack (it is an output of the
  -- database stack, which deploys after this one)
  if sc.db and sc.db.password.store ~= "rds" then
    for _, st in ipairs(sc.db_statements or {}) do out[#out + 1] = st end
  end
  if extra_ssm then
    -- `aws ssm get-parameter` (the ec2 user data) needs the singular action
    for _, st in ipairs(out) do
      if type(st.Action) == "table" and st.Action[1] == "ssm:GetParameters" then
        st.Action = { "ssm:GetParameter", "ssm:GetParameters" }
      end
    end
  end
  return out
end

-- The application's statements (DynamoDB tables) as a Policies list, or nil.
local function task_policies(sc)
  if #(sc.task_statements or {}) == 0 then return nil end
  return { { PolicyName = "tables", PolicyDocument = { Version = "2012-10-17", Statement = sc.task_statements } } }
end
M.secret_statements = secret_statements

-- Declares parameter `name` holding the export name `export` (mu's way of
-- passing values between stacks) and returns the Fn::ImportValue reading it.
local function import_param(sc, name, export, desc)
  if not sc._iam_params[name] then
    sc._iam_t:parameter(name, { Type = "String", Description = desc, Default = export })
    sc._iam_params[name] = export
  end
  return common.import(name)
end

local function ecs_roles(sc, t, outputs)
  local roles = sc.roles
  local meta = function(s) return { Metadata = { ["lumu:description"] = s } } end
  local ecs_source = {
    ArnLike = { ["aws:SourceArn"] = arn("ecs", "*") },
    StringEquals = { ["aws:SourceAccount"] = cfn.AccountId },
  }
  local task, exec
  if not roles.ecsTask then
    task = t:resource("EcsTaskRole", "AWS::IAM::Role", {
      AssumeRolePolicyDocument = assume("ecs-tasks.amazonaws.com", ecs_source),
      Path = "/",
      Policies = task_policies(sc),
    }, meta("role of the containers of " .. sc.name .. " (add the application's permissions here)"))
    outputs[#outputs + 1] = { "EcsTaskRoleArn", task:getatt("Arn") }
  end
  local statements = {
    { Sid = "Logs", Effect = "Allow", Action = { "logs:CreateLogStream", "logs:PutLogEvents" },
      Resource = M.log_group_arn(sc) },
  }
  local repo
  if sc.image.account then
    repo = sub("arn:${AWS::Partition}:ecr:${AWS::Region}:" .. sc.image.account .. ":repository/" .. sc.image.name)
  elseif sc.image.repo then
    repo = import_param(sc, "RepoArn", sc.exports.RepoArn, "Name of the export holding the ECR repository ARN")
  elseif sc.image.ecr_arn then
    repo = sub(sc.image.ecr_arn)
  end
  if repo then
    statements[#statements + 1] = { Sid = "EcrLogin", Effect = "Allow", Action = "ecr:GetAuthorizationToken",
      Resource = "*" }
    statements[#statements + 1] = { Sid = "EcrPull", Effect = "Allow",
      Action = { "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer" },
      Resource = repo }
  end
  for _, s in ipairs(secret_statements(sc)) do statements[#statements + 1] = s end
  exec = t:resource("EcsExecutionRole", "AWS::IAM::Role", {
    AssumeRolePolicyDocument = assume("ecs-tasks.amazonaws.com", ecs_source),
    Path = "/",
    Policies = { { PolicyName = "execution", PolicyDocument = { Version = "2012-10-17", Statement = statements } } },
  }, meta("ECS agent role of " .. sc.name .. ": image pull, logs, secrets"))
  outputs[#outputs + 1] = { "EcsExecutionRoleArn", exec:getatt("Arn") }

  local cluster = import_param(sc, "EcsCluster", sc.exports.EcsCluster, "Name of the export holding the ECS cluster name")
  local ecs_service = common.stack_name(sc.ns, sc.name, sc.envname)
  if not roles.applicationAutoScaling then
    local aas = t:resource("ApplicationAutoScalingRole", "AWS::IAM::Role", {
      AssumeRolePolicyDocument = assume("application-autoscaling.amazonaws.com"),
      Path = "/",
      Policies = { { PolicyName = "autoscaling", PolicyDocument = { Version = "2012-10-17", Statement = {
        { Sid = "Service", Effect = "Allow", Action = { "ecs:DescribeServices", "ecs:UpdateService" },
          Resource = { ["Fn::Sub"] = {
            "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/${Cluster}/" .. ecs_service,
            { Cluster = cluster } } } },
        { Sid = "Alarms", Effect = "Allow",
          Action = { "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm" },
          Resource = arn("cloudwatch", "alarm:*") },
      } } } },
    }, meta("Application Auto Scaling role of " .. sc.name))
    outputs[#outputs + 1] = { "ApplicationAutoScalingRoleArn", aas:getatt("Arn") }
  end

  if #(sc.svc.schedules or {}) > 0 and not roles.ecsEvents then
    local pass = {}
    pass[#pass + 1] = task and task:getatt("Arn") or roles.ecsTask
    pass[#pass + 1] = exec:getatt("Arn")
    local events = t:resource("EcsEventsRole", "AWS::IAM::Role", {
      AssumeRolePolicyDocument = assume("events.amazonaws.com"),
      Path = "/",
      Policies = { { PolicyName = "run-task", PolicyDocument = { Version = "2012-10-17", Statement = {
        { Sid = "RunTask", Effect = "Allow", Action = "ecs:RunTask",
          Resource = arn("ecs", "task-definition/" .. sc.stack.service .. ":*"),
          Condition = { ArnEquals = { ["ecs:cluster"] = { ["Fn::Sub"] = {
            "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:cluster/${Cluster}",
            { Cluster = cluster } } } } } },
        { Sid = "PassRoles", Effect = "Allow", Action = "iam:PassRole", Resource = pass,
          Condition = { StringLike = { ["iam:PassedToService"] = "ecs-tasks.amazonaws.com" } } },
      } } } },
    }, meta("EventBridge role that runs the scheduled tasks of " .. sc.name))
    outputs[#outputs + 1] = { "EcsEventsRoleArn", events:getatt("Arn") }
  end
end

local function ec2_roles(sc, t, outputs)
  local roles = sc.roles
  local meta = function(s) return { Metadata = { ["lumu:description"] = s } } end
  local instance_role
  if not roles.ec2Instance then
    local statements = {
      { Sid = "Revisions", Effect = "Allow", Action = "s3:GetObject",
        Resource = { ["Fn::Sub"] = { "arn:${AWS::Partition}:s3:::${Bucket}/" .. sc.name .. "/*",
          { Bucket = import_param(sc, "RevisionBucket", sc.exports.RevisionBucket,
            "Name of the export holding the CodeDeploy revision bucket") } } } },
      { Sid = "Logs", Effect = "Allow",
        Action = { "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents" },
        Resource = M.log_group_arn(sc) },
    }
    for _, s in ipairs(secret_statements(sc, true)) do statements[#statements + 1] = s end
    for _, s in ipairs(sc.task_statements or {}) do statements[#statements + 1] = s end
    instance_role = t:resource("EC2InstanceRole", "AWS::IAM::Role", {
      AssumeRolePolicyDocument = assume("ec2.amazonaws.com"),
      Path = "/",
      Policies = { { PolicyName = "instance", PolicyDocument = { Version = "2012-10-17", Statement = statements } } },
    }, meta("role of the EC2 instances of " .. sc.name .. ": revisions, logs, secrets"))
    local profile = t:resource("EC2InstanceProfile", "AWS::IAM::InstanceProfile", {
      Path = "/", Roles = { instance_role.ref },
    }, meta("instance profile of " .. sc.name))
    outputs[#outputs + 1] = { "EC2InstanceRoleArn", instance_role:getatt("Arn") }
    outputs[#outputs + 1] = { "EC2InstanceProfileArn", profile:getatt("Arn") }
  end
  if not roles.codeDeploy then
    local pass = instance_role and instance_role:getatt("Arn")
      or (roles.ec2Instance and roles.ec2Instance:gsub(":instance%-profile/", ":role/"))
    local cd = t:resource("CodeDeployRole", "AWS::IAM::Role", {
      AssumeRolePolicyDocument = assume("codedeploy.amazonaws.com"),
      Path = "/",
      ManagedPolicyArns = { sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AWSCodeDeployRole") },
      Policies = { { PolicyName = "launch-template", PolicyDocument = { Version = "2012-10-17", Statement = {
        { Sid = "LaunchTemplate", Effect = "Allow", Action = { "ec2:CreateTags", "ec2:RunInstances" }, Resource = "*" },
        { Sid = "PassInstanceRole", Effect = "Allow", Action = "iam:PassRole", Resource = pass,
          Condition = { StringEquals = { ["iam:PassedToService"] = "ec2.amazonaws.com" } } },
      } } } },
    }, meta("CodeDeploy role of " .. sc.name))
    outputs[#outputs + 1] = { "CodeDeployRoleArn", cd:getatt("Arn") }
  end
end

-- The KMS key of the service's database in this environment, when the
-- database names no kmsKey (lumu.gen.database imports DatabaseKeyArn): it
-- encrypts the storage, snapshots and the master password parameter.  Kept
-- when the stack goes (snapshots stay readable).
local function database_key(sc, t, outputs)
  local db = sc.database
  if not db or (db.kmsKey ~= nil and db.kmsKey ~= "") then return end
  local key = t:resource("DatabaseKey", "AWS::KMS::Key", {
    Description = "lumu: database of " .. sc.name .. " in " .. sc.envname .. " (storage, snapshots, master password)",
    EnableKeyRotation = true,
    KeyPolicy = { Version = "2012-10-17", Statement = { {
      Sid = "AccountAdministersThroughIAM", Effect = "Allow",
      Principal = { AWS = sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
      Action = "kms:*", Resource = "*",
    } } },
  }, { DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain",
    Metadata = { ["lumu:description"] = "encrypts the database of " .. sc.name .. " and its master password" } })
  t:resource("DatabaseKeyAlias", "AWS::KMS::Alias", {
    AliasName = "alias/" .. common.stack_name(sc.ns, "service", sc.name, sc.envname),
    TargetKeyId = key.ref,
  }, { Metadata = { ["lumu:description"] = "name of the database key" } })
  outputs[#outputs + 1] = { "DatabaseKeyArn", key:getatt("Arn") }
end

function M.stack(sc)
  local name = sc.stack.iam
  local t = cfn.template({ description = "lumu: IAM roles of service " .. sc.name .. " in environment "
    .. sc.envname })
  local outputs = {}
  sc._iam_t, sc._iam_params = t, {}
  if sc.ec2 then ec2_roles(sc, t, outputs) else ecs_roles(sc, t, outputs) end
  database_key(sc, t, outputs)
  if #outputs == 0 then
    -- every role is given in service.roles: keep a valid (empty) stack
    t:resource("Placeholder", "AWS::CloudFormation::WaitConditionHandle", {})
  end
  for _, o in ipairs(outputs) do
    t:output(o[1], o[2], { export = common.export_name(name, o[1]) })
  end
  local depends = { sc.stack.common_iam }
  -- the task role reads the table ARNs the DynamoDB stack exports
  if sc.tables and #(sc.task_statements or {}) > 0 then depends[#depends + 1] = sc.tables.stack end
  if sc.ec2 then
    depends[#depends + 1] = sc.stack.bucket
  else
    depends[#depends + 1] = sc.stack.environment
    if sc.image.repo and sc.repo_stack then depends[#depends + 1] = sc.stack.repo end
  end
  return common.stack({
    name = name, kind = "iam", env = sc.envname, service = sc.name,
    template = t:to_table({ consume = true }), parameters = sc._iam_params,
    tags = common.tags("iam", { environment = sc.envname, service = sc.name, provider = sc.provider }),
    depends = depends,
    description = "IAM roles of " .. sc.name .. " in " .. sc.envname,
  })
end

return M
