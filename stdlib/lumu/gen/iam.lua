--- The IAM stacks of environments: `<ns>-iam-common` (once per namespace) and
-- `<ns>-iam-environment-<env>` (per environment), as mu's common-iam.yml and
-- env-iam.yml. mu deploys IAM stacks with CAPABILITY_NAMED_IAM and without
-- the CloudFormation service role, so every IAM role lives here, including
-- the EKS ones (cluster role, node role, Fargate pod execution role): the
-- environment stacks then need no IAM capability.
--
-- local iam = require "lumu.gen.iam"
-- iam.common_stack(ns [, extra_pass_roles [, secret_reads]]) -> descriptor of
--   <ns>-iam-common. extra_pass_roles: role ARNs from mu.yml `roles:` that
--   the CloudFormation role may pass too; secret_reads = {ssm = {arn...},
--   secretsmanager = {arn...}}: the users' own database password parameters
--   and secrets the database stacks resolve (dynamic references).
-- iam.common_template(ns [, extra_pass_roles [, secret_reads]]) -> cfn template
-- iam.environment_stack(info) -> descriptor of <ns>-iam-environment-<env>
-- iam.environment_template(info) -> cfn template
-- iam.stacks(model, ctx) -> the IAM descriptors of lumu.gen.environment; nil, err
-- iam.role_names(ns, env) -> {instance=, eks_service=, eks_pods=} role name
--   patterns with "${AWS::Region}" left in (the names are deterministic, so
--   other stacks build the ARNs without reading this stack's outputs).
-- iam.role_arn(name_pattern) / iam.instance_profile_arn(name_pattern) ->
--   Fn::Sub expressions of the ARN.
--
-- <ns>-iam-common: parameter Namespace; role `<ns>-cloudformation-common-
--   <region>` trusted by cloudformation.amazonaws.com, with managed policies
--   (explicit action lists, one per area: network, load balancer, cluster,
--   service, database, DynamoDB, pass-role / service-linked roles); output
--   CloudFormationRoleArn.
-- <ns>-iam-environment-<env>: parameters Namespace, EnvironmentName,
--   Provider. ecs: EC2Role (ECS agent actions scoped to the environment's
--   cluster, ECR pull, logs to the environment's log groups, SSM core,
--   cfn-signal on the environment stack) + EC2InstanceProfile. eks: the
--   EksServiceRole (AmazonEKSClusterPolicy) and the node role EC2Role
--   (worker node, CNI, ECR read-only, SSM core). eks-fargate: EksServiceRole
--   and EksPodExecutionRole (AmazonEKSFargatePodExecutionRolePolicy, trust
--   limited to this account's Fargate profiles). ec2 and ecs-fargate need no
--   environment role (a WaitConditionHandle keeps the stack valid, as mu).
--   Outputs: EC2InstanceProfileArn, EC2RoleArn, EksServiceRoleArn,
--   EksPodExecutionRoleArn (those that exist for the provider).
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"

local M = {}

local res = common.resource

local function managed(name)
  return cfn.Sub("arn:${AWS::Partition}:iam::aws:policy/" .. name)
end

local function trust(service, condition)
  local st = { Effect = "Allow", Principal = { Service = { service } }, Action = { "sts:AssumeRole" } }
  if condition then st.Condition = condition end
  return { Version = "2012-10-17", Statement = { st } }
end

function M.role_names(ns, env)
  local base = ns .. "-environment-" .. env
  return {
    instance = base .. "-instance-${AWS::Region}",
    eks_service = base .. "-eks-service-${AWS::Region}",
    eks_pods = base .. "-eks-pods-${AWS::Region}",
  }
end

-- IAM role names are at most 64 characters; the region is at most 14
-- ("ap-southeast-2"). names_fit(ns, env, kind) -> fits, the name pattern.
M.MAX_REGION = 14
function M.names_fit(ns, env, kind)
  local pattern = M.role_names(ns, env)[kind or "eks_service"]
  local name = pattern:gsub("%${AWS::Region}", "")
  return #name + M.MAX_REGION <= 64, pattern:gsub("%${AWS::Region}", "<region>")
end

function M.role_arn(pattern)
  return cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/" .. pattern)
end

function M.instance_profile_arn(pattern)
  return cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/" .. pattern)
end

-- ---------------------------------------------------------------------------
-- <ns>-iam-common
-- ---------------------------------------------------------------------------

local function allow(actions, resource, condition)
  local st = { Effect = "Allow", Action = actions, Resource = resource or "*" }
  if condition then st.Condition = condition end
  return st
end

-- Action lists per area: what CloudFormation calls for the resource types of
-- the vpc/target, loadbalancer, environment, service, schedule, app and
-- database stacks (the registry schemas' handler permissions, minus features
-- lumu does not use).
M.POLICIES = {
  {
    id = "NetworkPolicy", desc = "VPC, subnets, routing, security groups, bastion, launch templates",
    statements = function()
      return {
        allow({
          "ec2:CreateVpc", "ec2:DeleteVpc", "ec2:ModifyVpcAttribute", "ec2:ModifyVpcTenancy",
          "ec2:DescribeVpcs", "ec2:DescribeVpcAttribute", "ec2:DescribeVpcEncryptionControls",
          "ec2:DescribeVpnGateways",
          "ec2:CreateInternetGateway", "ec2:DeleteInternetGateway", "ec2:AttachInternetGateway",
          "ec2:DetachInternetGateway", "ec2:DescribeInternetGateways",
          "ec2:AllocateAddress", "ec2:ReleaseAddress", "ec2:AssociateAddress", "ec2:DisassociateAddress",
          "ec2:DescribeAddresses",
          "ec2:CreateNatGateway", "ec2:DeleteNatGateway", "ec2:DescribeNatGateways",
          "ec2:CreateSubnet", "ec2:DeleteSubnet", "ec2:ModifySubnetAttribute", "ec2:DescribeSubnets",
          "ec2:CreateRouteTable", "ec2:DeleteRouteTable", "ec2:DescribeRouteTables", "ec2:AssociateRouteTable",
          "ec2:DisassociateRouteTable", "ec2:ReplaceRouteTableAssociation", "ec2:CreateRoute", "ec2:DeleteRoute",
          "ec2:ReplaceRoute",
          "ec2:CreateNetworkAcl", "ec2:DeleteNetworkAcl", "ec2:DescribeNetworkAcls", "ec2:CreateNetworkAclEntry",
          "ec2:DeleteNetworkAclEntry", "ec2:ReplaceNetworkAclEntry", "ec2:ReplaceNetworkAclAssociation",
          "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:DescribeSecurityGroups",
          "ec2:DescribeSecurityGroupRules", "ec2:AuthorizeSecurityGroupIngress",
          "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress",
          "ec2:UpdateSecurityGroupRuleDescriptionsIngress", "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
          "ec2:CreateTags", "ec2:DeleteTags", "ec2:DescribeTags", "ec2:DescribeAvailabilityZones",
          "ec2:DescribeAccountAttributes", "ec2:DescribeNetworkInterfaces",
        }),
        allow({
          "ec2:RunInstances", "ec2:TerminateInstances", "ec2:StartInstances", "ec2:StopInstances",
          "ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceAttribute",
          "ec2:ModifyInstanceAttribute", "ec2:ModifyInstanceMetadataOptions", "ec2:DescribeImages",
          "ec2:DescribeKeyPairs", "ec2:DescribeVolumes", "ec2:DescribeInstanceCreditSpecifications",
          "ec2:DescribeIamInstanceProfileAssociations", "ec2:AssociateIamInstanceProfile",
          "ec2:DisassociateIamInstanceProfile", "ec2:ReplaceIamInstanceProfileAssociation",
          "ec2:MonitorInstances", "ec2:UnmonitorInstances",
          "ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:DeleteLaunchTemplate",
          "ec2:DeleteLaunchTemplateVersions", "ec2:ModifyLaunchTemplate", "ec2:DescribeLaunchTemplates",
          "ec2:DescribeLaunchTemplateVersions", "ec2:GetLaunchTemplateData",
        }),
        -- AMI ids from AWS's public SSM parameters (parameter types)
        allow({ "ssm:GetParameter", "ssm:GetParameters" },
          cfn.Sub("arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/*")),
      }
    end,
  },
  {
    id = "LoadBalancerPolicy", desc = "load balancer, listeners, rules, DNS, service discovery, access-log bucket",
    statements = function()
      return {
        allow({
          "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer",
          "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
          "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetSecurityGroups",
          "elasticloadbalancing:SetSubnets", "elasticloadbalancing:SetIpAddressType",
          "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
          "elasticloadbalancing:ModifyListener", "elasticloadbalancing:DescribeListeners",
          "elasticloadbalancing:DescribeListenerAttributes", "elasticloadbalancing:ModifyListenerAttributes",
          "elasticloadbalancing:DescribeListenerCertificates", "elasticloadbalancing:AddListenerCertificates",
          "elasticloadbalancing:RemoveListenerCertificates", "elasticloadbalancing:DescribeSSLPolicies",
          "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule", "elasticloadbalancing:ModifyRule",
          "elasticloadbalancing:DescribeRules", "elasticloadbalancing:SetRulePriorities",
          "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DeleteTargetGroup",
          "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
          "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroupAttributes",
          "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:RegisterTargets",
          "elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:AddTags",
          "elasticloadbalancing:RemoveTags", "elasticloadbalancing:DescribeTags",
          "elasticloadbalancing:DescribeCapacityReservation", "ec2:DescribeIpamPools",
          "acm:DescribeCertificate", "acm:ListCertificates",
        }),
        allow({
          "route53:ChangeResourceRecordSets", "route53:GetChange", "route53:GetHostedZone",
          "route53:ListHostedZones", "route53:ListHostedZonesByName", "route53:ListResourceRecordSets",
          "route53:CreateHostedZone", "route53:DeleteHostedZone", "route53:ChangeTagsForResource",
          "route53:ListTagsForResource", "route53:UpdateHostedZoneComment",
          "servicediscovery:CreatePrivateDnsNamespace", "servicediscovery:UpdatePrivateDnsNamespace",
          "servicediscovery:DeleteNamespace", "servicediscovery:GetNamespace", "servicediscovery:ListNamespaces",
          "servicediscovery:GetOperation", "servicediscovery:ListOperations",
          "servicediscovery:CreateService", "servicediscovery:UpdateService", "servicediscovery:DeleteService",
          "servicediscovery:GetService", "servicediscovery:ListServices",
          "servicediscovery:GetServiceAttributes", "servicediscovery:UpdateServiceAttributes",
          "servicediscovery:DeleteServiceAttributes", "servicediscovery:TagResource",
          "servicediscovery:UntagResource", "servicediscovery:ListTagsForResource",
        }),
        allow({
          "s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:GetBucketAcl", "s3:GetBucketLocation",
          "s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
          "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration",
          "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock",
          "s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls",
          "s3:GetBucketTagging", "s3:PutBucketTagging", "s3:ListTagsForResource", "s3:TagResource",
          "s3:UntagResource", "s3:GetBucketVersioning", "s3:PutBucketVersioning",
          "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
          -- what the bucket's read handler reads
          "s3:GetAccelerateConfiguration", "s3:GetAnalyticsConfiguration", "s3:GetBucketAbac",
          "s3:GetBucketCORS", "s3:GetBucketLogging", "s3:GetBucketMetadataTableConfiguration",
          "s3:GetBucketNotification", "s3:GetBucketObjectLockConfiguration", "s3:GetBucketWebsite",
          "s3:GetIntelligentTieringConfiguration", "s3:GetInventoryConfiguration",
          "s3:GetMetricsConfiguration", "s3:GetReplicationConfiguration",
        }),
      }
    end,
  },
  {
    id = "ClusterPolicy", desc = "ECS and EKS clusters, auto scaling groups, log groups, SSM associations",
    statements = function()
      return {
        allow({
          "ecs:CreateCluster", "ecs:DeleteCluster", "ecs:DescribeClusters", "ecs:UpdateCluster",
          "ecs:UpdateClusterSettings", "ecs:PutClusterCapacityProviders", "ecs:TagResource", "ecs:UntagResource",
          "ecs:ListTagsForResource",
          "autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup",
          "autoscaling:DeleteAutoScalingGroup", "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeScalingActivities",
          "autoscaling:DescribePolicies", "autoscaling:DescribeScheduledActions",
          "autoscaling:DescribeLifecycleHooks", "autoscaling:DescribeNotificationConfigurations",
          "autoscaling:DescribeLoadBalancerTargetGroups", "autoscaling:DescribeLoadBalancers",
          "autoscaling:DescribeTrafficSources", "autoscaling:DescribeWarmPool", "autoscaling:DescribeTags",
          "autoscaling:SetDesiredCapacity", "autoscaling:PutScalingPolicy", "autoscaling:DeletePolicy",
          "autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags",
          "autoscaling:TerminateInstanceInAutoScalingGroup", "autoscaling:SuspendProcesses",
          "autoscaling:ResumeProcesses", "autoscaling:EnableMetricsCollection",
          "autoscaling:DisableMetricsCollection", "autoscaling:StartInstanceRefresh",
          "autoscaling:CancelInstanceRefresh",
          "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms",
          "cloudwatch:GetMetricData",
          "ssm:CreateAssociation", "ssm:UpdateAssociation", "ssm:DeleteAssociation", "ssm:DescribeAssociation",
          "ssm:ListAssociations", "ssm:GetCalendarState", "ssm:AddTagsToResource",
          "ssm:RemoveTagsFromResource", "ssm:ListTagsForResource",
          "logs:DescribeLogGroups", "logs:DescribeResourcePolicies", "logs:DescribeIndexPolicies",
        }),
        allow({
          "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy",
          "logs:TagResource", "logs:UntagResource", "logs:ListTagsForResource", "logs:TagLogGroup",
          "logs:UntagLogGroup", "logs:ListTagsLogGroup", "logs:GetDataProtectionPolicy",
        }, {
          cfn.Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${Namespace}-*"),
          cfn.Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${Namespace}-*:*"),
        }),
        allow({
          "eks:CreateCluster", "eks:DeleteCluster", "eks:DescribeCluster", "eks:UpdateClusterConfig",
          "eks:UpdateClusterVersion", "eks:DescribeUpdate", "eks:ListUpdates", "eks:TagResource",
          "eks:UntagResource", "eks:ListTagsForResource",
          "eks:CreateNodegroup", "eks:DeleteNodegroup", "eks:DescribeNodegroup", "eks:UpdateNodegroupConfig",
          "eks:UpdateNodegroupVersion",
          "eks:CreateFargateProfile", "eks:DeleteFargateProfile", "eks:DescribeFargateProfile",
          "eks:CreateAddon", "eks:DeleteAddon", "eks:DescribeAddon", "eks:UpdateAddon",
          "eks:CreateAccessEntry", "eks:DeleteAccessEntry", "eks:DescribeAccessEntry", "eks:UpdateAccessEntry",
          "eks:AssociateAccessPolicy", "eks:DisassociateAccessPolicy", "eks:ListAssociatedAccessPolicies",
        }, {
          cfn.Sub("arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:cluster/${Namespace}-environment-*"),
          cfn.Sub("arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:*/${Namespace}-environment-*/*"),
        }),
        allow({ "eks:ListClusters", "eks:DescribeAddonVersions", "eks:DescribeAddonConfiguration" }),
      }
    end,
  },
  {
    id = "ServicePolicy", desc = "ECS services and tasks, schedules, scaling, CodeDeploy",
    statements = function()
      return {
        allow({
          "ecs:CreateService", "ecs:UpdateService", "ecs:DeleteService", "ecs:DescribeServices",
          "ecs:DescribeServiceDeployments", "ecs:ListServiceDeployments", "ecs:StopServiceDeployment",
          "ecs:RegisterTaskDefinition", "ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition",
          "ecs:ListTaskDefinitions",
          "events:PutRule", "events:DeleteRule", "events:DescribeRule", "events:EnableRule",
          "events:DisableRule", "events:PutTargets", "events:RemoveTargets", "events:ListTargetsByRule",
          "events:ListRules", "events:ListRuleNamesByTarget", "events:TagResource", "events:UntagResource",
          "events:ListTagsForResource",
          "application-autoscaling:RegisterScalableTarget", "application-autoscaling:DeregisterScalableTarget",
          "application-autoscaling:DescribeScalableTargets", "application-autoscaling:PutScalingPolicy",
          "application-autoscaling:DeleteScalingPolicy", "application-autoscaling:DescribeScalingPolicies",
          "application-autoscaling:DescribeScalingActivities", "application-autoscaling:PutScheduledAction",
          "application-autoscaling:DeleteScheduledAction", "application-autoscaling:DescribeScheduledActions",
          "application-autoscaling:TagResource", "application-autoscaling:UntagResource",
          "application-autoscaling:ListTagsForResource",
          "autoscaling:AttachLoadBalancerTargetGroups", "autoscaling:DetachLoadBalancerTargetGroups",
          "autoscaling:AttachTrafficSources", "autoscaling:DetachTrafficSources",
          "codedeploy:CreateApplication", "codedeploy:GetApplication", "codedeploy:UpdateApplication",
          "codedeploy:DeleteApplication", "codedeploy:CreateDeploymentGroup", "codedeploy:GetDeploymentGroup",
          "codedeploy:UpdateDeploymentGroup", "codedeploy:DeleteDeploymentGroup", "codedeploy:CreateDeployment",
          "codedeploy:GetDeployment", "codedeploy:GetDeploymentConfig", "codedeploy:RegisterApplicationRevision",
          "codedeploy:GetApplicationRevision", "codedeploy:ListApplicationRevisions",
          "codedeploy:ListDeployments", "codedeploy:StopDeployment", "codedeploy:TagResource",
          "codedeploy:UntagResource", "codedeploy:ListTagsForResource",
        }),
      }
    end,
  },
  {
    id = "DatabasePolicy", desc = "RDS databases and their secrets",
    statements = function()
      return {
        allow({
          "rds:CreateDBSubnetGroup", "rds:ModifyDBSubnetGroup", "rds:DeleteDBSubnetGroup",
          "rds:DescribeDBSubnetGroups", "rds:CreateDBCluster", "rds:ModifyDBCluster", "rds:DeleteDBCluster",
          "rds:DescribeDBClusters", "rds:CreateDBInstance", "rds:ModifyDBInstance", "rds:DeleteDBInstance",
          "rds:DescribeDBInstances", "rds:RebootDBInstance", "rds:CreateDBClusterSnapshot",
          "rds:CreateDBSnapshot", "rds:DescribeDBClusterSnapshots", "rds:DescribeDBSnapshots",
          "rds:DescribeDBEngineVersions", "rds:DescribeDBParameterGroups", "rds:DescribeDBClusterParameterGroups",
          "rds:DescribeEvents", "rds:AddTagsToResource", "rds:RemoveTagsFromResource", "rds:ListTagsForResource",
          "rds:EnableHttpEndpoint", "rds:DisableHttpEndpoint", "rds:DescribeGlobalClusters",
          "rds:DescribeDBClusterAutomatedBackups", "rds:DescribeDBInstanceAutomatedBackups",
        }),
        -- RDS-managed master passwords (ManageMasterUserPassword)
        allow({ "secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:DescribeSecret" },
          cfn.Sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:rds!*")),
        allow({ "ssm:GetParameter", "ssm:GetParameters" },
          cfn.Sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${Namespace}-*")),
        allow({ "kms:DescribeKey" }),
        allow({ "kms:CreateGrant" }, "*", { Bool = { ["kms:GrantIsForAWSResource"] = "true" } }),
        allow({ "kms:Decrypt" }, "*", { StringEquals = { ["kms:ViaService"] = {
          cfn.Sub("ssm.${AWS::Region}.amazonaws.com"), cfn.Sub("secretsmanager.${AWS::Region}.amazonaws.com") } } }),
      }
    end,
  },
  {
    id = "DataPolicy", desc = "DynamoDB tables of the services",
    statements = function()
      return {
        allow({
          "dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:DescribeTable", "dynamodb:UpdateTable",
          "dynamodb:DescribeTimeToLive", "dynamodb:UpdateTimeToLive", "dynamodb:DescribeContinuousBackups",
          "dynamodb:UpdateContinuousBackups", "dynamodb:DescribeContributorInsights",
          "dynamodb:UpdateContributorInsights", "dynamodb:DescribeKinesisStreamingDestination",
          "dynamodb:ListTagsOfResource", "dynamodb:TagResource", "dynamodb:UntagResource",
          "dynamodb:GetResourcePolicy", "dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy",
        }, cfn.Sub("arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${Namespace}-*")),
      }
    end,
  },
}

M.SERVICE_LINKED = {
  "autoscaling.amazonaws.com", "ecs.amazonaws.com", "ecs.application-autoscaling.amazonaws.com",
  "eks.amazonaws.com", "eks-fargate.amazonaws.com", "eks-nodegroup.amazonaws.com",
  "elasticloadbalancing.amazonaws.com", "rds.amazonaws.com", "ssm.amazonaws.com",
}

local function pass_role_policy(extra, reads)
  local roles = {
    cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Namespace}-environment-*"),
    cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Namespace}-service-*"),
    -- names CloudFormation generates for the roles of lumu's IAM stacks (<ns>-iam-...)
    cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Namespace}-iam-*"),
  }
  for _, arn in ipairs(extra or {}) do roles[#roles + 1] = arn end
  local st = {
    allow({ "iam:PassRole", "iam:GetRole", "iam:ListAttachedRolePolicies" }, roles),
    allow({ "iam:GetInstanceProfile" },
      cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/${Namespace}-*")),
    allow({ "iam:CreateServiceLinkedRole" },
      cfn.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/*"),
      { StringEquals = { ["iam:AWSServiceName"] = M.SERVICE_LINKED } }),
  }
  -- database passwords the database stacks resolve (mu.yml's own SSM
  -- parameters / Secrets Manager secrets; lumu's are covered above)
  if reads and #reads.ssm > 0 then
    st[#st + 1] = allow({ "ssm:GetParameter", "ssm:GetParameters" }, reads.ssm)
  end
  if reads and #reads.secretsmanager > 0 then
    st[#st + 1] = allow({ "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret" }, reads.secretsmanager)
  end
  return st
end

-- Sorted, without duplicates (by JSON encoding: values may be Fn::Sub tables).
local function unique(list)
  local json = require "lumu.json"
  local keyed = {}
  for _, v in ipairs(list or {}) do keyed[#keyed + 1] = { json.encode(v, { sort_keys = true }), v } end
  table.sort(keyed, function(x, y) return x[1] < y[1] end)
  local out = {}
  for i, kv in ipairs(keyed) do
    if i == 1 or keyed[i - 1][1] ~= kv[1] then out[#out + 1] = kv[2] end
  end
  return out
end

function M.common_template(ns, extra_pass_roles, secret_reads)
  local t = cfn.template({ description = "lumu IAM role for CloudFormation (namespace " .. ns .. ")" })
  t:parameter("Namespace", { Type = "String", Description = "Namespace for stack prefixes" })
  local role = res(t, "CloudFormationRole", "AWS::IAM::Role",
    "the service role CloudFormation uses for the environment, service and database stacks", {
      RoleName = cfn.Sub("${Namespace}-cloudformation-common-${AWS::Region}"),
      AssumeRolePolicyDocument = trust("cloudformation.amazonaws.com"),
      Path = "/",
      Tags = { { Key = "mu:namespace", Value = cfn.Ref("Namespace") } },
    })
  local dedup = unique(extra_pass_roles)
  local reads = { ssm = unique(secret_reads and secret_reads.ssm),
    secretsmanager = unique(secret_reads and secret_reads.secretsmanager) }
  local policies = {}
  for _, p in ipairs(M.POLICIES) do policies[#policies + 1] = p end
  policies[#policies + 1] = { id = "PassRolePolicy", desc = "pass lumu's roles; create service-linked roles",
    statements = function() return pass_role_policy(dedup, reads) end }
  for _, p in ipairs(policies) do
    res(t, p.id, "AWS::IAM::ManagedPolicy", "CloudFormation role policy: " .. p.desc, {
      Description = cfn.Sub("lumu ${Namespace}: " .. p.desc),
      PolicyDocument = { Version = "2012-10-17", Statement = p.statements() },
      Roles = { role },
    })
  end
  t:output("CloudFormationRoleArn", role:getatt("Arn"),
    { description = "Role assumed by CloudFormation for lumu's stacks" })
  return t
end

function M.common_stack(ns, extra_pass_roles, secret_reads)
  return common.stack({
    name = common.stack_name(ns, "iam", "common"), kind = "iam",
    template = M.common_template(ns, extra_pass_roles, secret_reads):to_table({ consume = true }),
    parameters = { Namespace = ns },
    tags = common.tags("iam", {}),
    depends = {},
    description = "IAM role CloudFormation uses for the environment stacks",
  })
end

-- ---------------------------------------------------------------------------
-- <ns>-iam-environment-<env>
-- ---------------------------------------------------------------------------

function M.environment_template(info)
  local provider = info.provider
  local t = cfn.template({ description = "lumu IAM roles for environment " .. info.name .. " (" .. provider .. ")" })
  t:parameter("Namespace", { Type = "String", Description = "Namespace for stack prefixes" })
  t:parameter("EnvironmentName", { Type = "String", Description = "Name of environment used for resource namespace" })
  t:parameter("Provider", { Type = "String", Description = "Provider type for services", Default = "ecs",
    AllowedValues = { "ecs", "ecs-fargate", "eks", "eks-fargate", "ec2" } })
  local names = M.role_names("${Namespace}", "${EnvironmentName}")
  local tags = { { Key = "mu:environment", Value = cfn.Ref("EnvironmentName") },
    { Key = "mu:provider", Value = cfn.Ref("Provider") } }
  local made = false

  if provider == "eks" or provider == "eks-fargate" then
    local r = res(t, "EksServiceRole", "AWS::IAM::Role", "the EKS cluster role", {
      RoleName = cfn.Sub(names.eks_service),
      AssumeRolePolicyDocument = trust("eks.amazonaws.com"),
      Path = "/",
      ManagedPolicyArns = { managed("AmazonEKSClusterPolicy") },
      Tags = tags,
    })
    t:output("EksServiceRoleArn", r:getatt("Arn"), { description = "IAM role ARN for EKS clusters" })
    made = true
  end

  if provider == "ecs" or provider == "eks" then
    local props = {
      RoleName = cfn.Sub(names.instance),
      AssumeRolePolicyDocument = trust("ec2.amazonaws.com"),
      Path = "/",
      Tags = tags,
    }
    if provider == "eks" then
      props.ManagedPolicyArns = { managed("AmazonEKSWorkerNodePolicy"), managed("AmazonEKS_CNI_Policy"),
        managed("AmazonEC2ContainerRegistryReadOnly"), managed("AmazonSSMManagedInstanceCore") }
    else
      local cluster_arn = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:cluster/"
        .. "${Namespace}-environment-${EnvironmentName}"
      local on_cluster = { ArnEquals = { ["ecs:cluster"] = cfn.Sub(cluster_arn) } }
      props.ManagedPolicyArns = { managed("AmazonSSMManagedInstanceCore") }
      props.Policies = {
        { PolicyName = "ecs-agent", PolicyDocument = { Version = "2012-10-17", Statement = {
          allow({ "ecs:RegisterContainerInstance", "ecs:DeregisterContainerInstance",
            "ecs:SubmitContainerStateChange", "ecs:SubmitTaskStateChange", "ecs:SubmitAttachmentStateChanges",
            "ecs:ListContainerInstances" }, cfn.Sub(cluster_arn)),
          allow({ "ecs:Poll", "ecs:StartTelemetrySession", "ecs:UpdateContainerInstancesState", "ecs:TagResource" },
            cfn.Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:container-instance/"
              .. "${Namespace}-environment-${EnvironmentName}/*"), on_cluster),
          allow({ "ecs:DiscoverPollEndpoint" }),
        } } },
        { PolicyName = "ecr-pull", PolicyDocument = { Version = "2012-10-17", Statement = {
          allow({ "ecr:GetAuthorizationToken" }),
          allow({ "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer" },
            cfn.Sub("arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/*")),
        } } },
        { PolicyName = "env-logs", PolicyDocument = { Version = "2012-10-17", Statement = {
          allow({ "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams" }, {
            cfn.Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${Namespace}-*"),
            cfn.Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${Namespace}-*:*"),
          }),
        } } },
        { PolicyName = "cfn-signal", PolicyDocument = { Version = "2012-10-17", Statement = {
          allow({ "cloudformation:SignalResource", "cloudformation:DescribeStackResource" },
            cfn.Sub("arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/"
              .. "${Namespace}-environment-${EnvironmentName}/*")),
        } } },
      }
    end
    local role = res(t, "EC2Role", "AWS::IAM::Role",
      provider == "eks" and "the EKS node role" or "the ECS container instance role", props)
    t:output("EC2RoleArn", role:getatt("Arn"), { description = "IAM Role for container instances" })
    if provider == "ecs" then
      local ip = res(t, "EC2InstanceProfile", "AWS::IAM::InstanceProfile", "the container instance profile", {
        InstanceProfileName = cfn.Sub(names.instance), Path = "/", Roles = { role },
      })
      t:output("EC2InstanceProfileArn", ip:getatt("Arn"), { description = "Instance profile for container instances" })
    end
    made = true
  end

  if provider == "eks-fargate" then
    local r = res(t, "EksPodExecutionRole", "AWS::IAM::Role", "the EKS Fargate pod execution role", {
      RoleName = cfn.Sub(names.eks_pods),
      AssumeRolePolicyDocument = trust("eks-fargate-pods.amazonaws.com", {
        ArnLike = { ["aws:SourceArn"] = cfn.Sub("arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:"
          .. "fargateprofile/${Namespace}-environment-${EnvironmentName}/*") },
      }),
      Path = "/",
      ManagedPolicyArns = { managed("AmazonEKSFargatePodExecutionRolePolicy") },
      Tags = tags,
    })
    t:output("EksPodExecutionRoleArn", r:getatt("Arn"), { description = "IAM role ARN for EKS Fargate pods" })
    made = true
  end

  if not made then
    t:resource("WaitHandle", "AWS::CloudFormation::WaitConditionHandle", nil,
      { Metadata = { ["lumu:description"] = "placeholder (" .. provider .. " needs no environment role)" } })
  end
  return t
end

function M.environment_stack(info)
  return common.stack({
    name = info.names.iam_environment, kind = "iam", env = info.name,
    template = M.environment_template(info):to_table({ consume = true }),
    parameters = { Namespace = info.ns, EnvironmentName = info.name, Provider = info.provider },
    tags = common.tags("iam", { environment = info.name, provider = info.provider }),
    depends = { info.names.iam_common },
    description = "IAM roles for environment " .. info.name,
  })
end

function M.stacks(model, ctx)
  return require("lumu.gen.environment").stacks(model, ctx, { kinds = { iam = true } })
end

return M
