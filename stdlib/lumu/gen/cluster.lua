--- The `<ns>-environment-<env>` stack: the compute of an environment, per
-- provider (mu's env-ecs.yml, env-ec2.yml, env-eks-bootstrap.yml + env-eks.yml).
--
-- local cluster = require "lumu.gen.cluster"
-- cluster.stack(info) -> descriptor; cluster.template(info) -> cfn template
-- cluster.stacks(model, ctx) -> descriptors of every environment stack; nil, err
-- cluster.IMAGE_PARAMETERS: provider -> public SSM parameter of the AMI used
--   when cluster.imageId is not set
--
-- Inputs from other stacks follow mu: VpcId, InstanceSubnetIds and
-- ElbSecurityGroup hold export NAMES (read with Fn::ImportValue); role ARN
-- parameters (EC2InstanceProfileArn, EksServiceRoleArn, EksNodeRoleArn,
-- EksPodExecutionRoleArn) default to '' = the role of <ns>-iam-environment-
-- <env>, whose names are fixed, so no output needs to be read back.
--
-- ecs (LaunchType EC2): ECS cluster; instance security group with separate
--   ingress/egress rules (SSH from SshAllow only with cluster.keyName or an
--   explicit cluster.sshAllow; SshAllow defaults to the VPC block); a launch
--   template (IMDSv2, the ECS-optimised Amazon Linux 2 AMI from
--   /aws/service/ecs/optimized-ami/amazon-linux-2/recommended/image_id as an
--   AWS::SSM::Parameter::Value<AWS::EC2::Image::Id> parameter unless imageId
--   is set; user data joins the cluster, applies HttpProxy, runs
--   ExtraUserData, ships logs with the CloudWatch agent and cfn-signals);
--   an auto scaling group (rolling updates waiting for signals); target
--   tracking on the cluster's CPU and memory reservation; log group
--   `<stack>`; SSM inventory association.
-- ecs-fargate (LaunchType FARGATE): ECS cluster with the FARGATE and
--   FARGATE_SPOT capacity providers (default strategy FARGATE); the security
--   group for tasks. No instances.
-- ec2: the instance security group; the instance settings are echoed as
--   outputs (KeyName, InstanceType, SshAllow, ImageId, ImageOsType,
--   HttpProxy, ElbSecurityGroup) for the service stacks, which create the
--   CodeDeploy-managed instances (mu's design). ImageId defaults to Amazon
--   Linux 2023 (SSM parameter), which runs the CodeDeploy agent.
-- eks: EKS cluster (access entries API_AND_CONFIG_MAP; EksAdminPrincipalArn
--   gets cluster admin when set) and a managed node group
--   (AWS::EKS::Nodegroup, AL2023 AMI, or imageId with a nodeadm NodeConfig)
--   with a launch template (IMDSv2, the cluster security group + a node
--   security group carrying SSH from SshAllow with a keyName or sshAllow).
-- eks-fargate: EKS cluster, a Fargate profile (namespaces default,
--   kube-system, mu-ingress, mu-service-*; pod execution role from the IAM
--   stack) and the CoreDNS add-on configured for Fargate, so DNS runs
--   without any node.
-- The EKS cluster role, node role and pod execution role are in the IAM
-- stack (IAM stacks are the only ones deployed with CAPABILITY_NAMED_IAM).
-- Outputs/exports: VpcId (E), InstanceSubnetIds (E), InstanceSecurityGroup (E),
-- EcsCluster (E, ecs*), LaunchType (E, not ec2), EksClusterName (eks*).
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"
local iam = require "lumu.gen.iam"
local vpc = require "lumu.gen.vpc"

local M = {}

M.IMAGE_PARAMETERS = {
  ecs = "/aws/service/ecs/optimized-ami/amazon-linux-2/recommended/image_id",
  ec2 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
}
M.SERVICE_CIDR = "172.20.0.0/16"
M.FARGATE_NAMESPACES = { "default", "kube-system", "mu-ingress", "mu-service-*" }

local CIDR_PATTERN = "(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})/(\\d{1,2})"

local res = common.resource

local function export(name) return cfn.Sub("${AWS::StackName}-" .. name) end

-- Parameters shared by the providers ------------------------------------------

local function base_parameters(t)
  t:parameter("Namespace", { Type = "String", Description = "Namespace for stack prefixes" })
  t:parameter("EnvironmentName", { Type = "String", Description = "Name of environment used for resource namespace" })
  t:parameter("VpcId", { Type = "String", Description = "Name of the value to import for the VpcId" })
  t:parameter("InstanceSubnetIds", { Type = "String",
    Description = "Name of the value to import for the instance subnet ids" })
end

local function instance_parameters(t, info, opts)
  local c = info.cluster
  t:parameter("InstanceType", { Type = "String", Description = "Instance type to use.", Default = c.instanceType })
  if opts.sizes then
    t:parameter("MinSize", { Type = "Number", Default = tostring(c.minSize),
      Description = "Minimum number of instances" })
    t:parameter("DesiredCapacity", { Type = "Number", Default = tostring(c.desiredCapacity),
      Description = "Number of instances to launch" })
    t:parameter("MaxSize", { Type = "Number", Default = tostring(c.maxSize),
      Description = "Maximum number of instances" })
  end
  t:parameter("KeyName", { Type = "String", Default = "",
    Description = "KeyName to associate with worker instances.  Leave blank to disable SSH access." })
  t:parameter("SshAllow", { Type = "String", Description = "Subnet from which to allow SSH access.",
    Default = vpc.SSH_DEFAULT, MinLength = 9, MaxLength = 18, AllowedPattern = CIDR_PATTERN,
    ConstraintDescription = "must be a valid CIDR block: x.x.x.x/x." })
  if opts.image then
    if c.imageId and c.imageId ~= "" then
      t:parameter("ImageId", { Type = "String", Description = "AMI to launch" })
    else
      t:parameter("ImageId", { Type = "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
        Description = "Public SSM parameter holding the AMI to launch", Default = opts.image })
    end
    t:parameter("ImageOsType", { Type = "String", Description = "OS Type of the AMI", Default = "amazon",
      AllowedValues = { "amazon", "centos7", "windows" } })
  end
  if opts.proxy then
    t:parameter("HttpProxy", { Type = "String", Default = "",
      Description = "Proxy to use from cluster instances (host:port)" })
  end
  if opts.extra then
    t:parameter("ExtraUserData", { Type = "String", Default = "", Description = "Additional user data script" })
  end
  t:condition("HasKeyName", cfn.Not(cfn.Equals(cfn.Ref("KeyName"), "")))
end

local function launch_type_parameter(t, value)
  t:parameter("LaunchType", { Type = "String", Description = "Launch type for services", Default = value,
    AllowedValues = { "EC2", "FARGATE" } })
end

-- A role ARN parameter: '' means the role of the environment's IAM stack.
local function role_parameter(t, name, desc, default_arn)
  t:parameter(name, { Type = "String", Default = "", Description = desc .. " (blank: the environment IAM stack's)" })
  local cond = "Has" .. name
  t:condition(cond, cfn.Not(cfn.Equals(cfn.Ref(name), "")))
  return cfn.If(cond, cfn.Ref(name), default_arn)
end

-- Security group for instances/tasks, rules as separate resources (mu's) ----

-- SSH ingress (lumu's deviation from mu, which always opened 22 to SshAllow,
-- default 0.0.0.0/0, when a KeyName was given): only when the cluster has a
-- keyName (then under the HasKeyName condition) or an explicit sshAllow
-- (then unconditionally); SshAllow defaults to vpc.SSH_DEFAULT.
-- -> "none" | "keyname" | "explicit"
local function ssh_mode(c)
  if c.sshAllow ~= nil and c.sshAllow ~= "" then return "explicit" end
  if c.keyName ~= nil and c.keyName ~= "" then return "keyname" end
  return "none"
end
M._ssh_mode = ssh_mode

local function ssh_ingress(t, id, desc, gid, mode)
  if mode == "none" then return end
  res(t, id, "AWS::EC2::SecurityGroupIngress", desc, {
    GroupId = gid, IpProtocol = "tcp", FromPort = 22, ToPort = 22, CidrIp = cfn.Ref("SshAllow"),
    Description = "SSH from SshAllow",
  }, mode == "keyname" and { Condition = "HasKeyName" } or nil)
end

local function instance_security_group(t, ssh, desc)
  local sg = res(t, "InstanceSecurityGroup", "AWS::EC2::SecurityGroup", desc, {
    VpcId = common.import("VpcId"), GroupDescription = "Microservice Host Security Group",
    Tags = { { Key = "Name", Value = cfn.Sub("${AWS::StackName}-instances") } },
  })
  local gid = sg:getatt("GroupId")
  ssh_ingress(t, "SshIngress", "SSH to instances from SshAllow", gid, ssh or "none")
  res(t, "Host2HostRuleIngress", "AWS::EC2::SecurityGroupIngress", "instance to instance traffic (ingress)", {
    GroupId = gid, IpProtocol = "tcp", FromPort = 0, ToPort = 65535, SourceSecurityGroupId = gid,
    Description = "from the environment's instances",
  })
  res(t, "Host2HostRuleEgress", "AWS::EC2::SecurityGroupEgress", "instance to instance traffic (egress)", {
    GroupId = gid, IpProtocol = "tcp", FromPort = 0, ToPort = 65535, DestinationSecurityGroupId = gid,
    Description = "to the environment's instances",
  })
  res(t, "Host2InternetEgress", "AWS::EC2::SecurityGroupEgress", "instance traffic to the internet (egress)", {
    GroupId = gid, IpProtocol = "tcp", FromPort = 0, ToPort = 65535, CidrIp = "0.0.0.0/0",
    Description = "to the internet",
  })
  return sg, gid
end

local function network_outputs(t)
  t:output("InstanceSubnetIds", common.import("InstanceSubnetIds"),
    { description = "Subnet Ids for the cluster", export = export("InstanceSubnetIds") })
  t:output("VpcId", common.import("VpcId"), { description = "Vpc Id for the environment", export = export("VpcId") })
end

-- ecs / ecs-fargate ------------------------------------------------------------

local USER_DATA = [[
#!/bin/bash -x
PROXY="${HttpProxy}"
CFN_PROXY_ARGS=""
echo "ECS_CLUSTER=${EcsCluster}" >> /etc/ecs/ecs.config
if [ -n "$PROXY" ]; then
  echo "proxy=http://$PROXY" >> /etc/yum.conf
  echo "HTTP_PROXY=$PROXY" >> /etc/ecs/ecs.config
  echo "NO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock" >> /etc/ecs/ecs.config
  echo "export HTTP_PROXY=http://$PROXY/" >> /etc/sysconfig/docker
  echo "export HTTPS_PROXY=http://$PROXY/" >> /etc/sysconfig/docker
  echo "export NO_PROXY=169.254.169.254,169.254.170.2" >> /etc/sysconfig/docker
  systemctl try-restart docker
  CFN_PROXY_ARGS="--http-proxy http://$PROXY --https-proxy http://$PROXY"
fi
setup() {
  yum install -y aws-cfn-bootstrap amazon-cloudwatch-agent || return 1
  mkdir -p /opt/aws/amazon-cloudwatch-agent/etc
  cat > /opt/aws/amazon-cloudwatch-agent/etc/lumu.json <<'LUMU_EOF'
{"logs": {"logs_collected": {"files": {"collect_list": [
  {"file_path": "/var/log/ecs/ecs-agent.log*", "log_group_name": "${AWS::StackName}", "log_stream_name": "instance/ecs-agent/{instance_id}"},
  {"file_path": "/var/log/ecs/ecs-init.log*", "log_group_name": "${AWS::StackName}", "log_stream_name": "instance/ecs-init/{instance_id}"},
  {"file_path": "/var/log/messages", "log_group_name": "${AWS::StackName}", "log_stream_name": "instance/messages/{instance_id}"},
  {"file_path": "/var/log/cloud-init-output.log", "log_group_name": "${AWS::StackName}", "log_stream_name": "instance/cloud-init/{instance_id}"}
]}}}}
LUMU_EOF
  /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
    -c file:/opt/aws/amazon-cloudwatch-agent/etc/lumu.json || echo "cloudwatch agent not started"
  cat > /var/lib/lumu-extra-user-data.sh <<'LUMU_EOF'
${ExtraUserData}
LUMU_EOF
  bash -x /var/lib/lumu-extra-user-data.sh
}
setup
/opt/aws/bin/cfn-signal -e $? --stack ${AWS::StackName} --resource EcsAutoScalingGroup --region ${AWS::Region} $CFN_PROXY_ARGS
]]

local function ecs_template(info, t)
  local fargate = info.provider == "ecs-fargate"
  local c = info.cluster
  launch_type_parameter(t, fargate and "FARGATE" or "EC2")
  local cluster_props = {
    ClusterName = cfn.StackName,
    Tags = { { Key = "mu:environment", Value = cfn.Ref("EnvironmentName") } },
  }
  if fargate then
    cluster_props.CapacityProviders = { "FARGATE", "FARGATE_SPOT" }
    cluster_props.DefaultCapacityProviderStrategy = { { CapacityProvider = "FARGATE", Weight = 1 } }
  end

  local profile_arn
  if not fargate then
    local names = iam.role_names("${Namespace}", "${EnvironmentName}")
    t:parameter("ElbSecurityGroup", { Type = "String",
      Description = "Name of the value to import for the load balancer's instance security group" })
    profile_arn = role_parameter(t, "EC2InstanceProfileArn", "ARN of instance profile for EC2 instance to assume",
      iam.instance_profile_arn(names.instance))
    instance_parameters(t, info, { sizes = true, image = M.IMAGE_PARAMETERS.ecs, proxy = true, extra = true })
    t:parameter("TargetCPUReservation", { Type = "Number", Default = "75",
      Description = "Target CPU reservation % for autoscaling" })
    t:parameter("TargetMemoryReservation", { Type = "Number", Default = "75",
      Description = "Target Memory reservation % for autoscaling" })
  end

  local ecs = res(t, "EcsCluster", "AWS::ECS::Cluster",
    fargate and "the ECS cluster (Fargate capacity providers)" or "the ECS cluster", cluster_props)
  local _, gid = instance_security_group(t, not fargate and ssh_mode(info.cluster),
    fargate and "the security group of the environment's tasks" or "the security group of the container instances")

  if not fargate then
    res(t, "ClusterLogGroup", "AWS::Logs::LogGroup", "the log group of the container instances",
      { LogGroupName = cfn.StackName, RetentionInDays = 30 }, { DeletionPolicy = "Delete" })
    local lt = res(t, "ContainerInstances", "AWS::EC2::LaunchTemplate", "the container instance launch template", {
      LaunchTemplateData = {
        ImageId = cfn.Ref("ImageId"), InstanceType = cfn.Ref("InstanceType"),
        IamInstanceProfile = { Arn = profile_arn },
        SecurityGroupIds = { gid, common.import("ElbSecurityGroup") },
        KeyName = cfn.If("HasKeyName", cfn.Ref("KeyName"), cfn.NoValue),
        MetadataOptions = { HttpTokens = "required", HttpPutResponseHopLimit = 2, HttpEndpoint = "enabled" },
        UserData = cfn.Base64(cfn.Sub(USER_DATA)),
        TagSpecifications = {
          { ResourceType = "instance", Tags = { { Key = "Name", Value = cfn.StackName } } },
          { ResourceType = "volume", Tags = { { Key = "Name", Value = cfn.StackName } } },
        },
      },
    })
    local min_in_service = (tonumber(c.maxSize) or 2) > 1 and 1 or 0
    local asg = res(t, "EcsAutoScalingGroup", "AWS::AutoScaling::AutoScalingGroup",
      "the container instances' auto scaling group", {
        VPCZoneIdentifier = cfn.Split(",", common.import("InstanceSubnetIds")),
        LaunchTemplate = { LaunchTemplateId = lt, Version = lt:getatt("LatestVersionNumber") },
        MinSize = cfn.Ref("MinSize"), MaxSize = cfn.Ref("MaxSize"), DesiredCapacity = cfn.Ref("DesiredCapacity"),
        HealthCheckType = "EC2", HealthCheckGracePeriod = 300,
        Tags = { { Key = "Name", Value = cfn.StackName, PropagateAtLaunch = true } },
      }, {
        DependsOn = { "ClusterLogGroup", "Host2InternetEgress" },
        CreationPolicy = { ResourceSignal = { Count = cfn.Ref("DesiredCapacity"), Timeout = "PT15M" } },
        UpdatePolicy = { AutoScalingRollingUpdate = {
          MinInstancesInService = min_in_service, MaxBatchSize = 1, PauseTime = "PT15M",
          WaitOnResourceSignals = true,
          SuspendProcesses = { "HealthCheck", "ReplaceUnhealthy", "AZRebalance", "AlarmNotification",
            "ScheduledActions" },
        } },
      })
    for _, m in ipairs({ { "CPUReservationPolicy", "CPUReservation", "TargetCPUReservation", "CPU" },
      { "MemoryReservationPolicy", "MemoryReservation", "TargetMemoryReservation", "memory" } }) do
      res(t, m[1], "AWS::AutoScaling::ScalingPolicy",
        "target tracking of the cluster's " .. m[4] .. " reservation", {
          AutoScalingGroupName = asg, PolicyType = "TargetTrackingScaling", EstimatedInstanceWarmup = 300,
          TargetTrackingConfiguration = {
            CustomizedMetricSpecification = {
              MetricName = m[2], Namespace = "AWS/ECS", Statistic = "Average",
              Dimensions = { { Name = "ClusterName", Value = ecs } },
            },
            TargetValue = cfn.Ref(m[3]),
          },
        })
    end
    res(t, "InventoryAssociation", "AWS::SSM::Association", "SSM software inventory of the container instances", {
      AssociationName = cfn.Sub("${AWS::StackName}-inventory"),
      Name = "AWS-GatherSoftwareInventory",
      ScheduleExpression = "rate(1 day)",
      Parameters = {
        applications = { "Enabled" }, awsComponents = { "Enabled" }, customInventory = { "Enabled" },
        instanceDetailedInformation = { "Enabled" }, networkConfig = { "Enabled" }, services = { "Enabled" },
        windowsRoles = { "Enabled" }, windowsUpdates = { "Enabled" },
      },
      Targets = { { Key = "tag:aws:autoscaling:groupName", Values = { asg } } },
    })
  end

  network_outputs(t)
  t:output("EcsCluster", ecs, { description = "Name of the ECS cluster.", export = export("EcsCluster") })
  t:output("InstanceSecurityGroup", gid, { description = "Security Group ID for the microservice instances",
    export = export("InstanceSecurityGroup") })
  t:output("LaunchType", cfn.Ref("LaunchType"), { description = "Launch type for services",
    export = export("LaunchType") })
end

-- ec2 -----------------------------------------------------------------------

local function ec2_template(info, t)
  t:parameter("ElbSecurityGroup", { Type = "String",
    Description = "Name of the value to import for the load balancer's instance security group" })
  instance_parameters(t, info, { sizes = true, image = M.IMAGE_PARAMETERS.ec2, proxy = true })
  local _, gid = instance_security_group(t, ssh_mode(info.cluster), "the security group of the service instances")
  network_outputs(t)
  t:output("InstanceSecurityGroup", gid, { description = "Security Group ID for the microservice instances",
    export = export("InstanceSecurityGroup") })
  for _, name in ipairs({ "KeyName", "InstanceType", "SshAllow", "ImageId", "ImageOsType", "HttpProxy",
    "MinSize", "DesiredCapacity", "MaxSize" }) do
    t:output(name, cfn.Ref(name), { description = name .. " for the service instances" })
  end
  t:output("ElbSecurityGroup", common.import("ElbSecurityGroup"),
    { description = "The load balancer's security group for the service instances" })
end

-- eks / eks-fargate ------------------------------------------------------------

local NODE_USER_DATA_HEAD = [[
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==LUMU=="

]]
local NODE_CONFIG = [[
--==LUMU==
Content-Type: application/node.eks.aws

---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: ${EksCluster}
    apiServerEndpoint: ${EksCluster.Endpoint}
    certificateAuthority: ${EksCluster.CertificateAuthorityData}
    cidr: ${ServiceIpv4Cidr}

]]
local NODE_SCRIPT = [[
--==LUMU==
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash
${ExtraUserData}

]]
local NODE_USER_DATA_TAIL = "--==LUMU==--\n"

local function eks_template(info, t)
  local fargate = info.provider == "eks-fargate"
  local c = info.cluster
  local names = iam.role_names("${Namespace}", "${EnvironmentName}")
  launch_type_parameter(t, fargate and "FARGATE" or "EC2")
  local service_role = role_parameter(t, "EksServiceRoleArn", "ARN of IAM role for EKS service to use",
    iam.role_arn(names.eks_service))
  t:parameter("KubernetesVersion", { Type = "String", Default = "",
    Description = "Kubernetes version of the cluster (blank: EKS's default)" })
  t:parameter("ServiceIpv4Cidr", { Type = "String", Default = M.SERVICE_CIDR,
    Description = "CIDR block for Kubernetes service IPs (must not overlap the VPC)" })
  t:parameter("EksAdminPrincipalArn", { Type = "String", Default = "",
    Description = "IAM principal given cluster admin through an access entry (blank: none)" })
  t:condition("HasKubernetesVersion", cfn.Not(cfn.Equals(cfn.Ref("KubernetesVersion"), "")))
  t:condition("HasEksAdminPrincipal", cfn.Not(cfn.Equals(cfn.Ref("EksAdminPrincipalArn"), "")))
  local node_role, pod_role
  local custom = c.imageId ~= nil and c.imageId ~= ""
  if fargate then
    pod_role = role_parameter(t, "EksPodExecutionRoleArn", "ARN of the Fargate pod execution role",
      iam.role_arn(names.eks_pods))
  else
    node_role = role_parameter(t, "EksNodeRoleArn", "ARN of the node role", iam.role_arn(names.instance))
    instance_parameters(t, info, { sizes = true, image = custom and "custom" or nil, extra = true })
    t:condition("HasExtraUserData", cfn.Not(cfn.Equals(cfn.Ref("ExtraUserData"), "")))
  end

  local eks = res(t, "EksCluster", "AWS::EKS::Cluster", "the EKS cluster (control plane)", {
    Name = cfn.StackName,
    RoleArn = service_role,
    Version = cfn.If("HasKubernetesVersion", cfn.Ref("KubernetesVersion"), cfn.NoValue),
    KubernetesNetworkConfig = { ServiceIpv4Cidr = cfn.Ref("ServiceIpv4Cidr") },
    ResourcesVpcConfig = {
      SubnetIds = cfn.Split(",", common.import("InstanceSubnetIds")),
      EndpointPublicAccess = true, EndpointPrivateAccess = true,
    },
    AccessConfig = { AuthenticationMode = "API_AND_CONFIG_MAP", BootstrapClusterCreatorAdminPermissions = true },
    Tags = { { Key = "mu:environment", Value = cfn.Ref("EnvironmentName") } },
  })
  local cluster_sg = eks:getatt("ClusterSecurityGroupId")
  res(t, "EksAdminAccessEntry", "AWS::EKS::AccessEntry", "cluster admin access for EksAdminPrincipalArn", {
    ClusterName = eks, PrincipalArn = cfn.Ref("EksAdminPrincipalArn"), Type = "STANDARD",
    AccessPolicies = { {
      PolicyArn = cfn.Sub("arn:${AWS::Partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"),
      AccessScope = { Type = "cluster" },
    } },
  }, { Condition = "HasEksAdminPrincipal" })

  if fargate then
    local profile = res(t, "FargateProfile", "AWS::EKS::FargateProfile",
      "the Fargate profile running the environment's pods", {
        ClusterName = eks, FargateProfileName = "lumu",
        PodExecutionRoleArn = pod_role,
        Subnets = cfn.Split(",", common.import("InstanceSubnetIds")),
        Selectors = (function()
          local s = {}
          for i, ns in ipairs(M.FARGATE_NAMESPACES) do s[i] = { Namespace = ns } end
          return s
        end)(),
      })
    res(t, "CoreDnsAddon", "AWS::EKS::Addon", "CoreDNS, configured to run on Fargate", {
      ClusterName = eks, AddonName = "coredns", ResolveConflicts = "OVERWRITE",
      ConfigurationValues = '{"computeType":"Fargate"}',
    }, { DependsOn = profile })
  else
    local node_sg = res(t, "NodeSecurityGroup", "AWS::EC2::SecurityGroup", "the extra security group of the nodes", {
      VpcId = common.import("VpcId"), GroupDescription = "Security group for all nodes in the cluster",
      Tags = { { Key = "Name", Value = cfn.Sub("${AWS::StackName}-nodes") } },
    })
    ssh_ingress(t, "NodeSshIngress", "SSH to the nodes from SshAllow", node_sg:getatt("GroupId"),
      ssh_mode(info.cluster))
    local data = {
      SecurityGroupIds = { cluster_sg, node_sg:getatt("GroupId") },
      KeyName = cfn.If("HasKeyName", cfn.Ref("KeyName"), cfn.NoValue),
      MetadataOptions = { HttpTokens = "required", HttpPutResponseHopLimit = 2, HttpEndpoint = "enabled" },
      TagSpecifications = { { ResourceType = "instance", Tags = { { Key = "Name", Value = cfn.StackName } } } },
    }
    if custom then
      data.ImageId = cfn.Ref("ImageId")
      data.UserData = cfn.Base64(cfn.Sub(NODE_USER_DATA_HEAD .. NODE_CONFIG .. NODE_SCRIPT .. NODE_USER_DATA_TAIL))
    else
      data.UserData = cfn.If("HasExtraUserData",
        cfn.Base64(cfn.Sub(NODE_USER_DATA_HEAD .. NODE_SCRIPT .. NODE_USER_DATA_TAIL)), cfn.NoValue)
    end
    local lt = res(t, "NodeLaunchTemplate", "AWS::EC2::LaunchTemplate", "the node launch template",
      { LaunchTemplateData = data })
    res(t, "EksNodegroup", "AWS::EKS::Nodegroup", "the managed node group", {
      ClusterName = eks, NodeRole = node_role,
      Subnets = cfn.Split(",", common.import("InstanceSubnetIds")),
      ScalingConfig = { MinSize = cfn.Ref("MinSize"), DesiredSize = cfn.Ref("DesiredCapacity"),
        MaxSize = cfn.Ref("MaxSize") },
      InstanceTypes = { cfn.Ref("InstanceType") },
      AmiType = custom and "CUSTOM" or "AL2023_x86_64_STANDARD",
      LaunchTemplate = { Id = lt, Version = lt:getatt("LatestVersionNumber") },
      UpdateConfig = { MaxUnavailable = 1 },
      Tags = { ["mu:environment"] = info.name },
    })
  end

  network_outputs(t)
  t:output("EksClusterName", eks, { description = "Name of the EKS cluster." })
  t:output("InstanceSecurityGroup", cluster_sg, { description = "Security Group ID of the cluster's nodes and pods",
    export = export("InstanceSecurityGroup") })
  t:output("LaunchType", cfn.Ref("LaunchType"), { description = "Launch type for services",
    export = export("LaunchType") })
end

local DESCRIPTIONS = {
  ecs = "lumu environment containing an ECS cluster and instances for running containers",
  ["ecs-fargate"] = "lumu environment containing an ECS cluster for Fargate tasks",
  ec2 = "lumu environment for EC2 microservices",
  eks = "lumu environment containing an EKS cluster and a managed node group",
  ["eks-fargate"] = "lumu environment containing an EKS cluster running pods on Fargate",
}

function M.template(info)
  assert(type(info) == "table", "cluster.template: settings table expected")
  local t = cfn.template({ description = DESCRIPTIONS[info.provider] .. " (" .. info.name .. ")" })
  base_parameters(t)
  if info.provider == "ecs" or info.provider == "ecs-fargate" then
    ecs_template(info, t)
  elseif info.provider == "ec2" then
    ec2_template(info, t)
  else
    eks_template(info, t)
  end
  return t
end

function M.stack(info)
  local c, p = info.cluster, info.provider
  local net = info.names.network
  local params = {
    Namespace = info.ns, EnvironmentName = info.name,
    VpcId = common.export_name(net, "VpcId"),
    InstanceSubnetIds = common.export_name(net, "InstanceSubnetIds"),
  }
  local function set(k, v) if v ~= nil and v ~= "" then params[k] = tostring(v) end end
  if p ~= "ecs-fargate" and p ~= "eks-fargate" then
    set("InstanceType", c.instanceType)
    set("KeyName", c.keyName)
    set("SshAllow", c.sshAllow)
    set("DesiredCapacity", c.desiredCapacity)
    set("MinSize", c.minSize)
    set("MaxSize", c.maxSize)
    set("ImageId", c.imageId)
  end
  if p == "ecs" or p == "ec2" then
    params.ElbSecurityGroup = common.export_name(info.names.loadbalancer, "InstanceSecurityGroup")
    set("ImageOsType", c.osType)
    set("HttpProxy", c.httpProxy)
  end
  if p == "ecs" then
    set("TargetCPUReservation", c.targetCPUReservation)
    set("TargetMemoryReservation", c.targetMemoryReservation)
    set("ExtraUserData", c.extraUserData)
    set("EC2InstanceProfileArn", info.roles.instance)
  end
  if p == "eks" then
    set("ExtraUserData", c.extraUserData)
    if info.roles.instance and info.roles.instance:match(":role/") then set("EksNodeRoleArn", info.roles.instance) end
  end
  if p == "eks" or p == "eks-fargate" then set("EksServiceRoleArn", info.roles.eksService) end
  if p == "ecs" or p == "ecs-fargate" then params.LaunchType = p == "ecs" and "EC2" or "FARGATE" end
  if p == "eks" or p == "eks-fargate" then params.LaunchType = p == "eks" and "EC2" or "FARGATE" end

  local depends = {}
  if info.names.iam_common then depends[#depends + 1] = info.names.iam_common end
  if info.names.iam_environment then depends[#depends + 1] = info.names.iam_environment end
  if info.names.network_stack then depends[#depends + 1] = info.names.network_stack end
  if info.names.loadbalancer then depends[#depends + 1] = info.names.loadbalancer end
  return common.stack({
    name = info.names.environment, kind = "environment", env = info.name,
    template = M.template(info):to_table({ consume = true }), parameters = params,
    tags = common.tags("environment", { environment = info.name, provider = p }),
    depends = depends,
    description = p .. " cluster for environment " .. info.name,
  })
end

function M.stacks(model, ctx)
  return require("lumu.gen.environment").stacks(model, ctx, { kinds = { environment = true } })
end

return M
