--- The `<ns>-target-<env>` stack: an existing VPC (vpcTarget.vpcId), passed
-- through as mu's vpc-target.yml does, so the other stacks import the same
-- export names (`<stack>-VpcId`, `-ElbSubnetIds`, `-InstanceSubnetIds`) as
-- from a managed VPC.
--
-- local target = require "lumu.gen.target"
-- target.stack(info) -> descriptor (info from lumu.gen.environment)
-- target.template(info) -> cfn template
-- target.stacks(model, ctx) -> descriptors of every target stack; nil, err
-- Parameters: Namespace, EnvironmentName, VpcId, InstanceSubnetIds and
-- ElbSubnetIds (CommaDelimitedList), AZCount. One resource: a
-- WaitConditionHandle (a stack needs one).
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"

local M = {}

function M.template(info)
  assert(type(info) == "table", "target.template: settings table expected")
  local t = cfn.template({ description = "lumu VPC target: existing VPC and subnets for environment "
    .. info.name .. " (not managed by lumu)" })
  t:parameter("Namespace", { Type = "String", Description = "Namespace for stack prefixes" })
  t:parameter("EnvironmentName", { Type = "String", Description = "Name of environment used for resource namespace" })
  t:parameter("VpcId", { Type = "String", Description = "VPC to target" })
  t:parameter("InstanceSubnetIds", { Type = "CommaDelimitedList", Description = "EC2 subnet ids" })
  t:parameter("ElbSubnetIds", { Type = "CommaDelimitedList", Description = "ELB subnet ids" })
  t:parameter("AZCount", { Type = "String", Description = "Number of availability zones to use", Default = "3" })
  t:resource("WaitHandle", "AWS::CloudFormation::WaitConditionHandle", nil,
    { Metadata = { ["lumu:description"] = "placeholder (this stack only passes values through)" } })
  t:output("VpcId", cfn.Ref("VpcId"), { description = "The id of the vpc",
    export = cfn.Sub("${AWS::StackName}-VpcId") })
  t:output("InstanceSubnetIds", cfn.Join(",", cfn.Ref("InstanceSubnetIds")),
    { description = "The EC2 subnetids", export = cfn.Sub("${AWS::StackName}-InstanceSubnetIds") })
  t:output("ElbSubnetIds", cfn.Join(",", cfn.Ref("ElbSubnetIds")),
    { description = "The ELB subnetids", export = cfn.Sub("${AWS::StackName}-ElbSubnetIds") })
  return t
end

function M.stack(info)
  local vt = info.vpc_target
  local params = {
    Namespace = info.ns, EnvironmentName = info.name, VpcId = vt.vpcId,
    InstanceSubnetIds = table.concat(vt.instanceSubnetIds, ","),
    -- an EKS environment has no load balancer stack: default to the instance subnets
    ElbSubnetIds = table.concat(#vt.elbSubnetIds > 0 and vt.elbSubnetIds or vt.instanceSubnetIds, ","),
  }
  if info.az_count then params.AZCount = tostring(info.az_count) end
  return common.stack({
    name = info.names.network, kind = "target", env = info.name,
    template = M.template(info):to_table({ consume = true }), parameters = params,
    tags = common.tags("target", { environment = info.name, provider = info.provider }),
    depends = info.names.iam_common and { info.names.iam_common } or {},
    description = "existing VPC " .. vt.vpcId .. " for environment " .. info.name,
  })
end

function M.stacks(model, ctx)
  return require("lumu.gen.environment").stacks(model, ctx, { kinds = { target = true } })
end

return M
