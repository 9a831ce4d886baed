--- The service stack of a service in one environment:
-- <ns>-service-<svc>-<env> (mu.md §4 rows 10 and 10'), plus the shared
-- CodeDeploy stacks of the ec2 provider (rows 7 and 8).
--
-- local service = require "lumu.gen.service"
-- service.stack(sc) -> descriptor (kind "service"); sc from
--   lumu.gen.services.context.
-- ecs / ecs-fargate (resource ids as mu's service-ecs.yml, so `templates`
-- overrides written for mu apply):
--   ServiceLogGroup (named like the stack, retention), MicroserviceTaskDefinition
--   (family = stack name; FARGATE: task cpu/memory rounded up to a valid
--   pair; awsvpc on Fargate; container port, environment values (a value
--   with ${X} goes through Fn::Sub, so it can use the stack's parameters
--   and resources, and the database / table exports, which the variable
--   map imports: ${DatabaseEndpointAddress}, ${TableOrdersName}, ...),
--   `secrets` and ${DatabaseMasterPassword} as valueFrom (SSM / Secrets
--   Manager, never plain text), awslogs), DatabaseSecretPolicy (only for an
--   RDS-managed password: the execution role's read of that secret, an
--   output of the database stack; EcsService waits for it), EcsServiceName
--   (Cloud Map service: SRV, plus A
--   on awsvpc), ElbTargetGroup and listener rules (only with pathPatterns /
--   hostPatterns: path rules at PathListenerRulePriority, host rules after
--   them; with an HTTPS listener the HTTP rules redirect (301) to HTTPS),
--   EcsService (named <ns>-<svc>-<env>; deploymentStrategy blue_green 100/200,
--   rolling 50/100, replace 0/100 min healthy/max percent; deployment
--   circuit breaker with rollback), CPUUtilizationPolicyTarget +
--   CPUUtilizationPolicy (target tracking on average CPU).
--   Outputs: MicroserviceTaskDefinitionArn (exported), EcsServiceName,
--   LogGroup, TargetGroupArn (with patterns).
-- ec2: LaunchTemplate (IMDSv2 only; user data installs the CodeDeploy agent
--   and writes /etc/environment, secrets fetched at boot), AutoScalingGroup,
--   CPU target tracking ScalingPolicy, DeploymentGroup (S3 revision
--   <svc>/<tag>.zip, automatic rollback on failure), ServiceLogGroup, target
--   group and listener rules as above.
-- service.bucket_stack(model, ctx) -> <ns>-bucket-codedeploy (kind "bucket")
-- service.app_stack(model, svc, ctx) -> <ns>-app-<svc> (kind "app")
-- Parameters carry mu's names (ServiceName, ImageUrl, ServicePort, ...);
-- values that come from other stacks are export names read with
-- Fn::ImportValue (lumu.gen.common.import).  The stack depends on the
-- service's database and table stacks in that environment.
local cfn = require "lumu.cfn"
local json = require "lumu.json"
local common = require "lumu.gen.common"
local services = require "lumu.gen.services"

local M = {}

local function sub(s, vars)
  if vars then return { ["Fn::Sub"] = { s, vars } } end
  return { ["Fn::Sub"] = s }
end

local function meta(s)
  return { ["lumu:description"] = s }
end

local function str(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if type(v) == "number" then return tostring(v) end
  return tostring(v)
end

-- ---------------------------------------------------------------------------
-- Builder state: a template plus the parameter values passed to it
-- ---------------------------------------------------------------------------

local function builder(description)
  return { t = cfn.template({ description = description }), params = {}, order = {}, resources = {} }
end

local function param(b, name, value, opts)
  opts = opts or {}
  value = str(value)
  b.t:parameter(name, { Type = opts.type or "String", Description = opts.desc, Default = value,
    AllowedValues = opts.allowed, NoEcho = opts.noecho })
  b.params[name] = value
  return { Ref = name }
end

-- A value from another stack: the parameter holds the export name.
local function import(b, name, export, desc)
  if b.params[name] == nil then
    param(b, name, export, { desc = desc or ("Name of the export holding " .. name) })
  end
  return common.import(name)
end

local function resource(b, id, typ, props, opts)
  local h = b.t:resource(id, typ, props, opts)
  b.resources[id] = h
  return h
end

-- A role ARN: given in service.roles (the parameter holds the ARN), or the
-- service IAM stack's export (the parameter holds the export name).
local function role(b, sc, pname, output, given)
  local arn = given and sc.roles[given]
  if arn then
    return param(b, pname, arn, { desc = "ARN of the IAM role (service.roles." .. given .. ")" })
  end
  if sc.disable_iam then return nil end
  return import(b, pname, common.export_name(sc.stack.iam, output), "Name of the export holding the " .. output)
end

-- Checks the ${X} references of the environment values; X must be a
-- parameter, a resource (${Res.Attr}) or a pseudo parameter.
local function check_refs(b, sc, values)
  for _, e in ipairs(values) do
    if e.value:find("${", 1, true) then
      for _, ref in ipairs(cfn.sub_refs(e.value)) do
        local head = ref:match("^([^%.]+)")
        if not (b.params[ref] or b.resources[head] or sc.sub_vars[ref] or ref:match("^AWS::")) then
          local names = {}
          for k in pairs(b.params) do names[#names + 1] = k end
          for k in pairs(sc.sub_vars) do names[#names + 1] = k end
          table.sort(names)
          services.diag(sc.ctx, "error", sc.where, e.key, string.format(
            "${%s} is not a parameter or resource of stack %s (usable: %s, AWS::* pseudo parameters)", ref,
            sc.stack.service, table.concat(names, ", ")))
        end
      end
    end
  end
end

-- The variables of vars (the database / table exports) that s refers to,
-- or nil.
local function used_vars(s, vars)
  local used
  for _, ref in ipairs(cfn.sub_refs(s)) do
    if vars[ref] ~= nil then
      used = used or {}
      used[ref] = vars[ref]
    end
  end
  return used
end

-- An environment value: plain, or Fn::Sub (with the variable map of the
-- database and table exports it uses).
local function env_value(v, vars)
  if v:find("${", 1, true) then return sub(v, used_vars(v, vars or {})) end
  return v
end

-- Database* parameters the environment values refer to (mu offers them).
local function database_params(b, sc)
  local db = sc.database or {}
  local values = {
    DatabaseName = db.name or "",
    DatabaseMasterUsername = db.masterUsername or "",
    DatabaseEndpointAddress = "",
    DatabaseEndpointPort = "",
  }
  for _, p in ipairs(services.DATABASE_PARAMETERS) do
    if sc.db_params[p] then
      param(b, p, values[p], { desc = p .. " of the service's database (set at deploy time when empty)" })
    end
  end
end

-- ---------------------------------------------------------------------------
-- Target group and listener rules (ECS and EC2)
-- ---------------------------------------------------------------------------

local REDIRECT = {
  Type = "redirect",
  RedirectConfig = { Protocol = "HTTPS", Port = "443", Host = "#{host}", Path = "/#{path}", Query = "#{query}",
    StatusCode = "HTTP_301" },
}

local function target_group(b, sc, target_type)
  local svc = sc.svc
  local vpc = import(b, "VpcId", sc.exports.VpcId)
  local port = b.params.ServicePort and { Ref = "ServicePort" } or param(b, "ServicePort", svc.port)
  local protocol = param(b, "ServiceProtocol", svc.protocol or "HTTP",
    { desc = "Protocol of the target group", allowed = { "HTTP", "HTTPS" } })
  local health = param(b, "ServiceHealthEndpoint", svc.healthEndpoint or "/health",
    { desc = "Health check path" })
  local tg = resource(b, "ElbTargetGroup", "AWS::ElasticLoadBalancingV2::TargetGroup", {
    HealthCheckIntervalSeconds = 30,
    HealthCheckPath = health,
    HealthCheckProtocol = protocol,
    HealthCheckTimeoutSeconds = 5,
    HealthyThresholdCount = 2,
    Matcher = { HttpCode = "200-299" },
    Port = port,
    Protocol = protocol,
    Tags = { { Key = "Name", Value = cfn.StackName } },
    TargetGroupAttributes = { { Key = "deregistration_delay.timeout_seconds", Value = "60" } },
    TargetType = target_type,
    UnhealthyThresholdCount = 5,
    VpcId = vpc,
  }, { Metadata = meta("load balancer target group of " .. sc.name) })

  local forward_rules = {}
  local http = import(b, "ElbHttpListenerArn", sc.exports.ElbHttpListenerArn)
  local https = sc.https and import(b, "ElbHttpsListenerArn", sc.exports.ElbHttpsListenerArn) or nil
  local prio = sc.priority or { path = {}, host = {} }
  local function rules(kind, field, config_key, chunks, prios)
    for i, chunk in ipairs(chunks) do
      local suffix = i == 1 and "" or tostring(i)
      local pname = kind .. "ListenerRulePriority" .. suffix
      local p = param(b, pname, prios[i] or 1, { type = "Number",
        desc = "Priority of the " .. field .. " rule on the listeners" })
      local cond = { { Field = field, [config_key] = { Values = chunk } } }
      local forward = { { Type = "forward", TargetGroupArn = tg.ref } }
      local h = resource(b, "ElbHttp" .. kind .. "ListenerRule" .. suffix,
        "AWS::ElasticLoadBalancingV2::ListenerRule", {
          Actions = https and { REDIRECT } or forward,
          Conditions = cond, ListenerArn = http, Priority = p,
        }, { Metadata = meta((https and "redirects " or "routes ") .. field .. " " .. table.concat(chunk, ", ")
          .. (https and " to HTTPS" or " to " .. sc.name)) })
      if not https then forward_rules[#forward_rules + 1] = h end
      if https then
        forward_rules[#forward_rules + 1] = resource(b, "ElbHttps" .. kind .. "ListenerRule" .. suffix,
          "AWS::ElasticLoadBalancingV2::ListenerRule", {
            Actions = forward, Conditions = cond, ListenerArn = https, Priority = p,
          }, { Metadata = meta("routes HTTPS " .. field .. " " .. table.concat(chunk, ", ") .. " to " .. sc.name) })
      end
    end
  end
  rules("Path", "path-pattern", "PathPatternConfig", sc.path_chunks, prio.path)
  rules("Host", "host-header", "HostHeaderConfig", sc.host_chunks, prio.host)
  return tg, forward_rules
end

-- ---------------------------------------------------------------------------
-- ECS / Fargate
-- ---------------------------------------------------------------------------

local function ecs_stack(sc)
  local svc = sc.svc
  local name = sc.stack.service
  local b = builder("lumu: service " .. sc.name .. " in environment " .. sc.envname .. " ("
    .. sc.provider .. ")")
  local ctx = sc.ctx
  local awsvpc = sc.network_mode == "awsvpc"

  local service_name = param(b, "ServiceName", svc.name, { desc = "Name of the service" })
  local image
  if sc.image.external then
    image = param(b, "ImageUrl", sc.image.external, { desc = "Docker image URL" })
  elseif sc.image.account then
    param(b, "ImageAccount", sc.image.account, { desc = "Account of the ECR repository (the tools account)" })
    param(b, "ImageTag", "latest", { desc = "Image tag to run (lumu deploy sets the pushed revision)" })
    image = sub("${ImageAccount}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/" .. sc.image.name .. ":${ImageTag}")
  else
    local repo_url = import(b, "RepoUrl", sc.exports.RepoUrl, "Name of the export holding the ECR repository URL")
    param(b, "ImageTag", "latest", { desc = "Image tag to run (lumu deploy sets the pushed revision)" })
    image = sub("${Repository}:${ImageTag}", { Repository = repo_url })
  end
  local port = svc.port or 8080
  param(b, "ServicePort", port, { desc = "Port exposed by the container" })
  param(b, "ServiceCpu", svc.cpu, { desc = "CPU units reserved for the container" })
  param(b, "ServiceMemory", svc.memory, { desc = "Memory of the container (MiB)" })
  param(b, "ServiceDesiredCount", svc.desiredCount, { type = "Number", desc = "Number of tasks to run" })
  param(b, "ServiceMinSize", svc.minSize, { type = "Number", desc = "Minimum number of tasks" })
  param(b, "ServiceMaxSize", svc.maxSize, { type = "Number", desc = "Maximum number of tasks" })
  param(b, "MinimumHealthyPercent", sc.min_percent, { type = "Number",
    desc = "Deployment minimum healthy percent (" .. sc.strategy .. ")" })
  param(b, "MaximumPercent", sc.max_percent, { type = "Number",
    desc = "Deployment maximum percent (" .. sc.strategy .. ")" })
  param(b, "TargetCPUUtilization", svc.targetCPUUtilization, { type = "Number",
    desc = "Target average CPU utilization (percent) for auto scaling" })
  param(b, "ServiceDiscoveryTTL", svc.discoveryTTL, { desc = "TTL of the Cloud Map DNS records (seconds)" })
  if sc.fargate then
    param(b, "TaskCpu", sc.task_cpu, { desc = "Fargate task CPU units (rounded up to a valid size)" })
    param(b, "TaskMemory", sc.task_memory, { desc = "Fargate task memory in MiB (rounded up to a valid size)" })
  end
  local cluster = import(b, "EcsCluster", sc.exports.EcsCluster)
  local task_role = role(b, sc, "EcsTaskRoleArn", "EcsTaskRoleArn", "ecsTask")
  local exec_role
  if sc.disable_iam then
    exec_role = task_role -- mu used the task role for both
  else
    exec_role = role(b, sc, "EcsExecutionRoleArn", "EcsExecutionRoleArn", nil)
  end
  if not task_role then
    services.diag(ctx, "error", sc.where, sc.path .. ".roles.ecsTask",
      "disableIAM is set, so the task role ARN must be given here")
  end
  local aas_role = role(b, sc, "ApplicationAutoScalingRoleArn", "ApplicationAutoScalingRoleArn",
    "applicationAutoScaling")
  database_params(b, sc)
  local discovery_name = sc.network_mode ~= "none"
    and import(b, "ServiceDiscoveryName", sc.exports.ServiceDiscoveryName) or nil

  -- log group
  resource(b, "ServiceLogGroup", "AWS::Logs::LogGroup", {
    LogGroupName = cfn.StackName,
    RetentionInDays = sc.log_retention,
  }, { DeletionPolicy = "Delete", UpdateReplacePolicy = "Delete",
    Metadata = meta("logs of " .. sc.name .. " in " .. sc.envname) })

  -- task definition
  local environment = {}
  for _, e in ipairs(sc.environment) do
    environment[#environment + 1] = { Name = e.name, Value = env_value(e.value, sc.sub_vars) }
  end
  if discovery_name then
    environment[#environment + 1] = { Name = "_SERVICE_DISCOVERY_NAME", Value = discovery_name }
  end
  local secrets = {}
  for _, s in ipairs(sc.secrets) do
    secrets[#secrets + 1] = { Name = s.env, ValueFrom = s.value_from }
  end
  -- the database password (lumu.gen.database.bindings): valueFrom, never plain text
  for _, s in ipairs(sc.db_secrets) do
    secrets[#secrets + 1] = { Name = s.Name, ValueFrom = s.ValueFrom }
  end
  table.sort(secrets, function(x, y) return x.Name < y.Name end)
  local port_mappings
  if sc.network_mode ~= "none" then
    local pm = { ContainerPort = { Ref = "ServicePort" }, Protocol = "tcp" }
    if sc.network_mode == "bridge" then pm.HostPort = 0 end
    if sc.network_mode == "host" then pm.HostPort = { Ref = "ServicePort" } end
    port_mappings = { pm }
  end
  local container = {
    Name = service_name,
    Image = image,
    Cpu = { Ref = "ServiceCpu" },
    Memory = { Ref = "ServiceMemory" },
    Essential = true,
    PortMappings = port_mappings,
    Environment = #environment > 0 and environment or nil,
    Secrets = #secrets > 0 and secrets or nil,
    Links = (sc.network_mode == "bridge" and #(svc.links or {}) > 0) and svc.links or nil,
    LogConfiguration = {
      LogDriver = "awslogs",
      Options = {
        ["awslogs-group"] = cfn.StackName,
        ["awslogs-region"] = cfn.Region,
        ["awslogs-stream-prefix"] = "container",
      },
    },
  }
  if #(svc.links or {}) > 0 and sc.network_mode ~= "bridge" then
    services.diag(ctx, "warning", sc.where, sc.path .. ".links", "links need the bridge network mode; ignored on "
      .. sc.network_mode .. " in environment '" .. sc.envname .. "'")
  end
  local task = resource(b, "MicroserviceTaskDefinition", "AWS::ECS::TaskDefinition", {
    Family = cfn.StackName,
    RequiresCompatibilities = { sc.fargate and "FARGATE" or "EC2" },
    Cpu = sc.fargate and { Ref = "TaskCpu" } or nil,
    Memory = sc.fargate and { Ref = "TaskMemory" } or nil,
    NetworkMode = sc.network_mode,
    ContainerDefinitions = { container },
    ExecutionRoleArn = exec_role,
    TaskRoleArn = task_role,
  }, { Metadata = meta("task definition of " .. sc.name) })
  check_refs(b, sc, sc.environment)

  -- Cloud Map
  local registry
  if sc.network_mode ~= "none" then
    local records = { { Type = "SRV", TTL = { Ref = "ServiceDiscoveryTTL" } } }
    if awsvpc then records[#records + 1] = { Type = "A", TTL = { Ref = "ServiceDiscoveryTTL" } } end
    registry = resource(b, "EcsServiceName", "AWS::ServiceDiscovery::Service", {
      Name = service_name,
      DnsConfig = {
        NamespaceId = import(b, "ServiceDiscoveryId", sc.exports.ServiceDiscoveryId),
        DnsRecords = records,
        RoutingPolicy = "MULTIVALUE",
      },
      HealthCheckCustomConfig = { FailureThreshold = 1 },
    }, { Metadata = meta("Cloud Map (DNS) name of " .. sc.name) })
  end

  -- load balancer
  local tg, forward_rules
  if sc.has_tg then
    tg, forward_rules = target_group(b, sc, awsvpc and "ip" or "instance")
  end

  -- service
  local network
  if awsvpc then
    network = { AwsvpcConfiguration = {
      AssignPublicIp = (sc.fargate and svc.assignPublicIp) and "ENABLED" or "DISABLED",
      SecurityGroups = {
        import(b, "ServiceSecurityGroup", sc.exports.ServiceSecurityGroup),
        import(b, "ElbSecurityGroup", sc.exports.ElbSecurityGroup),
      },
      Subnets = { ["Fn::Split"] = { ",", import(b, "ServiceSubnetIds", sc.exports.ServiceSubnetIds) } },
    } }
  elseif svc.assignPublicIp then
    services.diag(ctx, "warning", sc.where, sc.path .. ".assignPublicIp", "only used with the awsvpc network mode; "
      .. "ignored in environment '" .. sc.envname .. "'")
  end
  local depends = {}
  for _, h in ipairs(forward_rules or {}) do depends[#depends + 1] = h end
  -- The RDS-managed password secret is an output of the database stack,
  -- which (with the service IAM stack's key) deploys after the IAM stack:
  -- the execution role gets the read here, before the service starts tasks.
  if sc.db and sc.db.password.store == "rds" and #sc.db_secrets > 0 and exec_role and not sc.disable_iam then
    depends[#depends + 1] = resource(b, "DatabaseSecretPolicy", "AWS::IAM::Policy", {
      PolicyName = "database-password",
      PolicyDocument = { Version = "2012-10-17", Statement = sc.db_statements },
      Roles = { { ["Fn::Select"] = { 1, { ["Fn::Split"] = { "/", exec_role } } } } },
    }, { Metadata = meta("lets the ECS agent of " .. sc.name .. " read the RDS-managed password secret") })
  end
  local ecs_role
  if sc.roles.ecsService then
    if tg and not awsvpc then
      ecs_role = param(b, "EcsServiceRoleArn", sc.roles.ecsService,
        { desc = "ARN of the IAM role (service.roles.ecsService)" })
    else
      services.diag(ctx, "warning", sc.where, sc.path .. ".roles.ecsService", "used only for load-balanced "
        .. "services outside awsvpc; ignored in environment '" .. sc.envname .. "'")
    end
  end
  local ecs = resource(b, "EcsService", "AWS::ECS::Service", {
    Cluster = cluster,
    ServiceName = common.stack_name(sc.ns, sc.name, sc.envname),
    LaunchType = sc.fargate and "FARGATE" or "EC2",
    TaskDefinition = task.ref,
    DesiredCount = { Ref = "ServiceDesiredCount" },
    DeploymentConfiguration = {
      MaximumPercent = { Ref = "MaximumPercent" },
      MinimumHealthyPercent = { Ref = "MinimumHealthyPercent" },
      DeploymentCircuitBreaker = { Enable = true, Rollback = true },
    },
    NetworkConfiguration = network,
    LoadBalancers = tg and { { ContainerName = service_name, ContainerPort = { Ref = "ServicePort" },
      TargetGroupArn = tg.ref } } or nil,
    HealthCheckGracePeriodSeconds = tg and 60 or nil,
    ServiceRegistries = registry and { {
      RegistryArn = registry:getatt("Arn"),
      ContainerName = service_name,
      ContainerPort = { Ref = "ServicePort" },
    } } or nil,
    Role = ecs_role,
    PropagateTags = "SERVICE",
    EnableECSManagedTags = true,
  }, { DependsOn = #depends > 0 and depends or nil,
    Metadata = meta("ECS service " .. common.stack_name(sc.ns, sc.name, sc.envname)) })

  -- auto scaling
  local target = resource(b, "CPUUtilizationPolicyTarget", "AWS::ApplicationAutoScaling::ScalableTarget", {
    MaxCapacity = { Ref = "ServiceMaxSize" },
    MinCapacity = { Ref = "ServiceMinSize" },
    ResourceId = sub("service/${Cluster}/${EcsService.Name}", { Cluster = cluster }),
    RoleARN = aas_role,
    ScalableDimension = "ecs:service:DesiredCount",
    ServiceNamespace = "ecs",
  }, { Metadata = meta("auto scaling range of " .. sc.name) })
  resource(b, "CPUUtilizationPolicy", "AWS::ApplicationAutoScaling::ScalingPolicy", {
    PolicyName = sub("${AWS::StackName}-cpu-utilization"),
    PolicyType = "TargetTrackingScaling",
    ScalingTargetId = target.ref,
    TargetTrackingScalingPolicyConfiguration = {
      PredefinedMetricSpecification = { PredefinedMetricType = "ECSServiceAverageCPUUtilization" },
      TargetValue = { Ref = "TargetCPUUtilization" },
    },
  }, { Metadata = meta("scales " .. sc.name .. " on average CPU") })

  b.t:output("MicroserviceTaskDefinitionArn", task.ref, { description = "Task definition",
    export = sc.exports.TaskDefinitionArn })
  b.t:output("EcsServiceName", ecs:getatt("Name"), { description = "ECS service name" })
  b.t:output("LogGroup", { Ref = "ServiceLogGroup" }, { description = "CloudWatch Logs group" })
  if tg then b.t:output("TargetGroupArn", tg.ref, { description = "Target group" }) end

  local depends_on = { sc.stack.environment, sc.stack.loadbalancer }
  if not sc.disable_iam then table.insert(depends_on, 1, sc.stack.iam) end
  if sc.image.repo and sc.repo_stack then depends_on[#depends_on + 1] = sc.stack.repo end
  for _, d in ipairs(sc.depends) do depends_on[#depends_on + 1] = d end
  return b, depends_on
end

-- ---------------------------------------------------------------------------
-- EC2 (CodeDeploy)
-- ---------------------------------------------------------------------------

local AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"

-- Single-quotes s for sh (inside a Fn::Sub string: ${...} stays for
-- CloudFormation).
local function shq(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function user_data(sc)
  local lines = {
    "#!/bin/bash",
    "set -euo pipefail",
    "umask 077",
    "dnf install -y ruby wget amazon-cloudwatch-agent || yum install -y ruby wget amazon-cloudwatch-agent",
    "cd /tmp",
    "wget -q https://aws-codedeploy-${AWS::Region}.s3.${AWS::Region}.${AWS::URLSuffix}/latest/install",
    "chmod +x ./install && ./install auto",
    ": > /etc/environment.lumu",
  }
  for _, e in ipairs(sc.environment) do
    lines[#lines + 1] = "printf '%s=%s\\n' " .. shq(e.name) .. " " .. shq(e.value) .. " >> /etc/environment.lumu"
  end
  for _, s in ipairs(sc.secrets) do
    local id
    if type(s.value_from) == "table" then id = s.value_from["Fn::Sub"] else id = s.value_from end
    if s.service == "ssm" then
      lines[#lines + 1] = "printf '%s=%s\\n' " .. shq(s.env) .. " \"$(aws --region ${AWS::Region} ssm get-parameter"
        .. " --with-decryption --name " .. shq(id) .. " --query Parameter.Value --output text)\" >> /etc/environment.lumu"
    else
      -- a JSON key (secretsmanager:NAME:key, the database password) is
      -- extracted with python3 (Amazon Linux ships it)
      local key = s.json_key and s.json_key:match("^([%w_%.%-]+)")
      local extract = key and (" | python3 -c " .. shq("import json,sys; print(json.load(sys.stdin)['"
        .. key .. "'])")) or ""
      lines[#lines + 1] = "printf '%s=%s\\n' " .. shq(s.env) .. " \"$(aws --region ${AWS::Region} secretsmanager"
        .. " get-secret-value --secret-id " .. shq(s.secret_id or id) .. " --query SecretString --output text"
        .. extract .. ")\" >> /etc/environment.lumu"
    end
  end
  lines[#lines + 1] = "cat /etc/environment.lumu >> /etc/environment && rm -f /etc/environment.lumu"
  lines[#lines + 1] = "chmod 600 /etc/environment"
  lines[#lines + 1] = "cat > /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json <<'EOF'"
  lines[#lines + 1] = json.encode({ logs = { logs_collected = { files = { collect_list = {
    { file_path = "/var/log/aws/codedeploy-agent/codedeploy-agent.log", log_group_name = "${LogGroup}",
      log_stream_name = "{instance_id}/codedeploy-agent" },
    { file_path = "/opt/codedeploy-agent/deployment-root/deployment-logs/codedeploy-agent-deployments.log",
      log_group_name = "${LogGroup}", log_stream_name = "{instance_id}/deployments" },
  } } } } }, { sort_keys = true })
  lines[#lines + 1] = "EOF"
  lines[#lines + 1] = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s"
    .. " -c file:/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
  return table.concat(lines, "\n") .. "\n"
end
M.user_data = user_data

-- The Fn::Sub variables of the user data: the log group, and the database
-- and table exports the environment values use.
local function user_data_vars(sc, log_group)
  local vars = { LogGroup = log_group.ref }
  for _, e in ipairs(sc.environment) do
    for k, v in pairs(used_vars(e.value, sc.sub_vars) or {}) do vars[k] = v end
  end
  return vars
end

local CODEDEPLOY_CONFIG = {
  blue_green = "CodeDeployDefault.OneAtATime",
  rolling = "CodeDeployDefault.HalfAtATime",
  replace = "CodeDeployDefault.AllAtOnce",
}

local function ec2_stack(sc)
  local svc, env = sc.svc, sc.env
  local cluster = env.cluster or {}
  local b = builder("lumu: service " .. sc.name .. " in environment " .. sc.envname .. " (ec2, CodeDeploy)")
  local ctx = sc.ctx

  param(b, "ServiceName", svc.name, { desc = "Name of the service" })
  param(b, "ServicePort", svc.port or 8080, { desc = "Port the application listens on" })
  param(b, "ServiceDesiredCount", svc.desiredCount, { type = "Number", desc = "Number of instances to run" })
  param(b, "ServiceMinSize", svc.minSize, { type = "Number", desc = "Minimum number of instances" })
  param(b, "ServiceMaxSize", svc.maxSize, { type = "Number", desc = "Maximum number of instances" })
  param(b, "TargetCPUUtilization", svc.targetCPUUtilization, { type = "Number",
    desc = "Target average CPU utilization (percent) for auto scaling" })
  param(b, "InstanceType", cluster.instanceType or "t3.micro", { desc = "EC2 instance type" })
  if cluster.imageId then
    param(b, "ImageId", cluster.imageId, { type = "AWS::EC2::Image::Id", desc = "AMI of the instances" })
  else
    param(b, "ImageId", AMI_PARAMETER, { type = "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
      desc = "SSM parameter holding the AMI of the instances (latest Amazon Linux)" })
  end
  if cluster.keyName then param(b, "KeyName", cluster.keyName, { desc = "EC2 key pair for SSH" }) end
  param(b, "RevisionKey", svc.name .. "/latest.zip", { desc = "S3 key of the CodeDeploy revision "
    .. "(lumu deploy sets <svc>/<tag>.zip)" })
  local subnets = import(b, "ServiceSubnetIds", sc.exports.ServiceSubnetIds)
  local profile_arn, code_deploy_role
  if sc.roles.ec2Instance then
    profile_arn = param(b, "EC2InstanceProfileArn", sc.roles.ec2Instance,
      { desc = "Instance profile ARN (service.roles.ec2Instance)" })
  elseif not sc.disable_iam then
    profile_arn = import(b, "EC2InstanceProfileArn", common.export_name(sc.stack.iam, "EC2InstanceProfileArn"))
  end
  code_deploy_role = role(b, sc, "CodeDeployRoleArn", "CodeDeployRoleArn", "codeDeploy")
  if not profile_arn then
    services.diag(ctx, "error", sc.where, sc.path .. ".roles.ec2Instance",
      "disableIAM is set, so the instance profile ARN must be given here")
  end
  if not code_deploy_role then
    services.diag(ctx, "error", sc.where, sc.path .. ".roles.codeDeploy",
      "disableIAM is set, so the CodeDeploy role ARN must be given here")
  end
  database_params(b, sc)

  local log_group = resource(b, "ServiceLogGroup", "AWS::Logs::LogGroup", {
    LogGroupName = cfn.StackName,
    RetentionInDays = sc.log_retention,
  }, { DeletionPolicy = "Delete", UpdateReplacePolicy = "Delete",
    Metadata = meta("logs of " .. sc.name .. " in " .. sc.envname) })

  local tg, forward_rules
  if sc.has_tg then
    tg, forward_rules = target_group(b, sc, "instance")
  end

  local lt = resource(b, "LaunchTemplate", "AWS::EC2::LaunchTemplate", {
    LaunchTemplateData = {
      ImageId = { Ref = "ImageId" },
      InstanceType = { Ref = "InstanceType" },
      IamInstanceProfile = { Arn = profile_arn },
      KeyName = cluster.keyName and { Ref = "KeyName" } or nil,
      SecurityGroupIds = {
        import(b, "ServiceSecurityGroup", sc.exports.ServiceSecurityGroup),
        import(b, "ElbSecurityGroup", sc.exports.ElbSecurityGroup),
      },
      MetadataOptions = { HttpTokens = "required", HttpPutResponseHopLimit = 1, HttpEndpoint = "enabled" },
      UserData = { ["Fn::Base64"] = sub(user_data(sc), user_data_vars(sc, log_group)) },
      TagSpecifications = { { ResourceType = "instance", Tags = { { Key = "Name", Value = cfn.StackName } } } },
    },
  }, { Metadata = meta("launch template of the " .. sc.name .. " instances") })
  check_refs(b, sc, sc.environment)

  local asg = resource(b, "AutoScalingGroup", "AWS::AutoScaling::AutoScalingGroup", {
    LaunchTemplate = { LaunchTemplateId = lt.ref, Version = lt:getatt("LatestVersionNumber") },
    MinSize = { Ref = "ServiceMinSize" },
    MaxSize = { Ref = "ServiceMaxSize" },
    DesiredCapacity = { Ref = "ServiceDesiredCount" },
    VPCZoneIdentifier = { ["Fn::Split"] = { ",", subnets } },
    TargetGroupARNs = tg and { tg.ref } or nil,
    HealthCheckType = tg and "ELB" or "EC2",
    HealthCheckGracePeriod = 300,
    Tags = { { Key = "Name", Value = cfn.StackName, PropagateAtLaunch = true } },
  }, { DependsOn = (forward_rules and #forward_rules > 0) and forward_rules or nil,
    Metadata = meta("instances of " .. sc.name) })
  resource(b, "CPUUtilizationPolicy", "AWS::AutoScaling::ScalingPolicy", {
    AutoScalingGroupName = asg.ref,
    PolicyType = "TargetTrackingScaling",
    TargetTrackingConfiguration = {
      PredefinedMetricSpecification = { PredefinedMetricType = "ASGAverageCPUUtilization" },
      TargetValue = { Ref = "TargetCPUUtilization" },
    },
  }, { Metadata = meta("scales " .. sc.name .. " on average CPU") })
  local dg = resource(b, "DeploymentGroup", "AWS::CodeDeploy::DeploymentGroup", {
    ApplicationName = import(b, "AppName", sc.exports.AppName),
    ServiceRoleArn = code_deploy_role,
    AutoScalingGroups = { asg.ref },
    DeploymentConfigName = CODEDEPLOY_CONFIG[sc.strategy] or CODEDEPLOY_CONFIG.blue_green,
    DeploymentStyle = { DeploymentType = "IN_PLACE",
      DeploymentOption = tg and "WITH_TRAFFIC_CONTROL" or "WITHOUT_TRAFFIC_CONTROL" },
    LoadBalancerInfo = tg and { TargetGroupInfoList = { { Name = tg:getatt("TargetGroupName") } } } or nil,
    AutoRollbackConfiguration = { Enabled = true, Events = { "DEPLOYMENT_FAILURE" } },
    Deployment = {
      Revision = { RevisionType = "S3", S3Location = {
        Bucket = import(b, "RevisionBucket", sc.exports.RevisionBucket),
        Key = { Ref = "RevisionKey" },
        BundleType = "zip",
      } },
    },
  }, { Metadata = meta("CodeDeploy deployment group of " .. sc.name) })

  b.t:output("AutoScalingGroupName", asg.ref, { description = "Auto Scaling group" })
  b.t:output("DeploymentGroupName", dg.ref, { description = "CodeDeploy deployment group" })
  b.t:output("LogGroup", log_group.ref, { description = "CloudWatch Logs group" })
  if tg then b.t:output("TargetGroupArn", tg.ref, { description = "Target group" }) end

  local depends_on = { sc.stack.environment, sc.stack.loadbalancer, sc.stack.app, sc.stack.bucket }
  if not sc.disable_iam then table.insert(depends_on, 1, sc.stack.iam) end
  for _, d in ipairs(sc.depends) do depends_on[#depends_on + 1] = d end
  return b, depends_on
end

function M.stack(sc)
  local b, depends
  if sc.ec2 then b, depends = ec2_stack(sc) else b, depends = ecs_stack(sc) end
  return common.stack({
    name = sc.stack.service, kind = "service", env = sc.envname, service = sc.name,
    template = b.t:to_table({ consume = true }), parameters = b.params,
    tags = common.tags("service", { environment = sc.envname, service = sc.name, provider = sc.provider }),
    depends = depends,
    description = "service " .. sc.name .. " in " .. sc.envname .. " (" .. sc.provider .. ")",
  })
end

-- ---------------------------------------------------------------------------
-- Shared CodeDeploy stacks
-- ---------------------------------------------------------------------------

function M.bucket_stack(model, ctx)
  local ns = ctx.namespace or model.namespace or "mu"
  local name = common.stack_name(ns, "bucket", "codedeploy")
  local b = builder("lumu: bucket for CodeDeploy revisions")
  param(b, "BucketPrefix", "codedeploy", { desc = "Middle part of the bucket name" })
  local bucket = resource(b, "Bucket", "AWS::S3::Bucket", {
    BucketName = sub(ns .. "-${BucketPrefix}-${AWS::Region}-${AWS::AccountId}"),
    BucketEncryption = { ServerSideEncryptionConfiguration = {
      { ServerSideEncryptionByDefault = { SSEAlgorithm = "AES256" } } } },
    PublicAccessBlockConfiguration = { BlockPublicAcls = true, BlockPublicPolicy = true, IgnorePublicAcls = true,
      RestrictPublicBuckets = true },
    OwnershipControls = { Rules = { { ObjectOwnership = "BucketOwnerEnforced" } } },
    VersioningConfiguration = { Status = "Enabled" },
  }, { DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain",
    Metadata = meta("CodeDeploy revisions (<service>/<tag>.zip)") })
  resource(b, "BucketPolicy", "AWS::S3::BucketPolicy", {
    Bucket = bucket.ref,
    PolicyDocument = { Version = "2012-10-17", Statement = { {
      Sid = "DenyInsecureTransport", Effect = "Deny", Principal = "*", Action = "s3:*",
      Resource = { bucket:getatt("Arn"), sub("${Bucket.Arn}/*") },
      Condition = { Bool = { ["aws:SecureTransport"] = "false" } },
    } } },
  }, { Metadata = meta("TLS only") })
  b.t:output("Bucket", bucket.ref, { description = "Bucket name", export = common.export_name(name, "Bucket") })
  b.t:output("BucketURL", sub("s3://${Bucket}"), { description = "Bucket URL" })
  return common.stack({
    name = name, kind = "bucket", template = b.t:to_table({ consume = true }), parameters = b.params,
    tags = common.tags("bucket", {}), depends = {},
    description = "S3 bucket for CodeDeploy revisions",
  })
end

function M.app_stack(model, svc, ctx)
  local ns = ctx.namespace or model.namespace or "mu"
  local name = common.stack_name(ns, "app", svc.name)
  local b = builder("lumu: CodeDeploy application of service " .. svc.name)
  local app = resource(b, "Application", "AWS::CodeDeploy::Application", {
    ApplicationName = ns .. "-" .. svc.name,
    ComputePlatform = "Server",
  }, { Metadata = meta("CodeDeploy application of " .. svc.name) })
  b.t:output("ApplicationName", app.ref, { export = common.export_name(name, "ApplicationName") })
  return common.stack({
    name = name, kind = "app", service = svc.name, template = b.t:to_table({ consume = true }), parameters = b.params,
    tags = common.tags("app", { service = svc.name }), depends = {},
    description = "CodeDeploy application " .. ns .. "-" .. svc.name,
  })
end

return M
