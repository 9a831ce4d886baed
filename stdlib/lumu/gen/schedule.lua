--- Scheduled tasks: <ns>-schedule-<svc>-<name>-<env> (mu.md §4 row 11).
--
-- local schedule = require "lumu.gen.schedule"
-- schedule.stack(sc, s) -> descriptor (kind "schedule")
--   sc from lumu.gen.services.context (ECS environments only), s one
--   entry of service.schedules ({name=, expression=, command={...}}).
--   One EventBridge rule (ScheduleEvent) whose target runs the service's
--   task definition (the service stack's exported
--   MicroserviceTaskDefinitionArn) once on the environment's cluster, with
--   the container command overridden by `command` (the target Input is the
--   JSON {"containerOverrides":[{"name":<svc>,"command":[...]}]}); on awsvpc
--   the task gets the service's subnets and security groups.  The rule uses
--   the service IAM stack's EcsEventsRole (or service.roles.ecsEvents).
local cfn = require "lumu.cfn"
local json = require "lumu.json"
local common = require "lumu.gen.common"
local services = require "lumu.gen.services"

local M = {}

--- The target Input: JSON text of the container command override.
function M.input(service_name, command)
  local override = { name = service_name }
  if command and #command > 0 then override.command = json.array(table.move(command, 1, #command, 1, {})) end
  return json.encode({ containerOverrides = { override } }, { sort_keys = true })
end

function M.stack(sc, s)
  local name = common.stack_name(sc.ns, "schedule", sc.name, s.name, sc.envname)
  local t = cfn.template({ description = "lumu: scheduled task " .. s.name .. " of service " .. sc.name
    .. " in environment " .. sc.envname })
  local params = {}
  local function param(pname, value, desc)
    t:parameter(pname, { Type = "String", Description = desc, Default = value })
    params[pname] = value
    return { Ref = pname }
  end
  local function import(pname, export, desc)
    param(pname, export, desc or ("Name of the export holding " .. pname))
    return common.import(pname)
  end

  param("ScheduleExpression", s.expression, "cron(...) or rate(...) expression")
  local cluster = import("EcsCluster", sc.exports.EcsCluster)
  local task = import("MicroserviceTaskDefinitionArn", sc.exports.TaskDefinitionArn)
  local role
  if sc.roles.ecsEvents then
    role = param("EcsEventsRoleArn", sc.roles.ecsEvents, "ARN of the IAM role (service.roles.ecsEvents)")
  elseif not sc.disable_iam then
    role = import("EcsEventsRoleArn", common.export_name(sc.stack.iam, "EcsEventsRoleArn"))
  else
    services.diag(sc.ctx, "error", sc.where, sc.path .. ".roles.ecsEvents",
      "disableIAM is set, so schedules need the EventBridge role ARN here")
    role = param("EcsEventsRoleArn", "", "ARN of the IAM role (service.roles.ecsEvents)")
  end

  local network
  if sc.network_mode == "awsvpc" then
    network = { AwsVpcConfiguration = {
      AssignPublicIp = (sc.fargate and sc.svc.assignPublicIp) and "ENABLED" or "DISABLED",
      SecurityGroups = {
        import("ServiceSecurityGroup", sc.exports.ServiceSecurityGroup),
        import("ElbSecurityGroup", sc.exports.ElbSecurityGroup),
      },
      Subnets = { ["Fn::Split"] = { ",", import("ServiceSubnetIds", sc.exports.ServiceSubnetIds) } },
    } }
  end

  t:resource("ScheduleEvent", "AWS::Events::Rule", {
    Description = "runs " .. sc.name .. " " .. table.concat(s.command or {}, " ") .. " on " .. s.expression,
    ScheduleExpression = { Ref = "ScheduleExpression" },
    State = "ENABLED",
    Targets = { {
      Id = "task",
      Arn = { ["Fn::Sub"] = { "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:cluster/${Cluster}",
        { Cluster = cluster } } },
      RoleArn = role,
      EcsParameters = {
        TaskDefinitionArn = task,
        TaskCount = 1,
        LaunchType = sc.fargate and "FARGATE" or "EC2",
        NetworkConfiguration = network,
      },
      Input = M.input(sc.name, s.command),
    } },
  }, { Metadata = { ["lumu:description"] = "schedule " .. s.name .. " of " .. sc.name } })

  local depends = { sc.stack.service }
  if not sc.disable_iam then table.insert(depends, 1, sc.stack.iam) end
  return common.stack({
    name = name, kind = "schedule", env = sc.envname, service = sc.name,
    template = t:to_table({ consume = true }), parameters = params,
    tags = common.tags("schedule", { environment = sc.envname, service = sc.name, provider = sc.provider }),
    depends = depends,
    description = "schedule " .. s.name .. " of " .. sc.name .. " in " .. sc.envname,
  })
end

return M
