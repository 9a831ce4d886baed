--- The `<ns>-vpc-<env>` stack: a VPC managed by lumu, as mu's vpc.yml.
--
-- local vpc = require "lumu.gen.vpc"
-- vpc.stack(info) -> descriptor   info: an environment's settings as built by
--   lumu.gen.environment (environment.settings); raises on misuse.
-- vpc.template(info) -> cfn template (lumu.cfn builder)
-- vpc.stacks(model, ctx) -> descriptors of every environment's VPC stack
--   (environments on a vpcTarget have none); nil, err on a bad model.
-- vpc.DEFAULT_CIDRS: mu's parameter defaults (VpcCidrBlock = 10.0.0.0/16 ...)
--
-- Layout (mu's): one VPC; an ELB subnet and an instance subnet per AZ (up to
-- 3, the third only when AZCount is not 2); a public NAT subnet in AZ1 with
-- one NAT gateway + EIP; an internet gateway; route tables for NAT (to the
-- IGW), instances (to the NAT) and ELB subnets (to the IGW unless the load
-- balancer is internal); one network ACL per tier. The subnet CIDRs are
-- template parameters WITH mu's names and defaults, so a `templates:` override
-- of `Parameters.<Name>.Default` or a `parameters:` override changes them.
-- With cluster.keyName a bastion host (t3.nano, latest Amazon Linux 2023 AMI
-- from the public SSM parameter) is added in the NAT subnet, reachable on 22
-- from SshAllow: cluster.sshAllow, else M.SSH_DEFAULT (inside the VPC; mu
-- used 0.0.0.0/0).
-- Parameters: Namespace, EnvironmentName, InstanceTenancy, SshAllow,
-- VpcCidrBlock, ElbSubnetAZ{1,2,3}CidrBlock, InstanceSubnetAZ{1,2,3}CidrBlock,
-- NatSubnetAZ1CidrBlock, ElbInternal, AZCount, EKSClusterName; with keyName
-- also BastionKeyName, BastionImageId, BastionInstanceType.
-- Outputs: VpcId (E), ElbSubnetIds (E), InstanceSubnetIds (E) as
-- comma-joined lists, BastionHost (with keyName).
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"

local M = {}

M.DEFAULT_CIDRS = {
  VpcCidrBlock = "10.0.0.0/16",
  ElbSubnetAZ1CidrBlock = "10.0.0.0/24",
  ElbSubnetAZ2CidrBlock = "10.0.1.0/24",
  ElbSubnetAZ3CidrBlock = "10.0.2.0/24",
  InstanceSubnetAZ1CidrBlock = "10.0.100.0/24",
  InstanceSubnetAZ2CidrBlock = "10.0.101.0/24",
  InstanceSubnetAZ3CidrBlock = "10.0.102.0/24",
  NatSubnetAZ1CidrBlock = "10.0.200.0/24",
}

-- SshAllow when cluster.sshAllow is not set: lumu's VPC block, so SSH (to the
-- bastion and the instances, which exist only with cluster.keyName) stays
-- inside the VPC.  mu's default was 0.0.0.0/0; lumu never opens SSH to the
-- internet unless cluster.sshAllow says so.
M.SSH_DEFAULT = M.DEFAULT_CIDRS.VpcCidrBlock

M.BASTION_IMAGE_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"

local CIDR_PATTERN = "(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})/(\\d{1,2})"

local res = common.resource

local function cidr_param(t, name, desc, default)
  return t:parameter(name, {
    Type = "String", Description = desc, Default = default,
    MinLength = 9, MaxLength = 18, AllowedPattern = CIDR_PATTERN,
    ConstraintDescription = "must be a valid CIDR block: x.x.x.x/x.",
  })
end

local function name_tag(suffix, network)
  local tags = {}
  if network then tags[#tags + 1] = { Key = "Network", Value = network } end
  tags[#tags + 1] = { Key = "Name", Value = cfn.Sub("${AWS::StackName}" .. (suffix or "")) }
  return tags
end

local function nacl_entry(t, id, desc, acl, rule, proto, egress, cidr, from, to)
  res(t, id, "AWS::EC2::NetworkAclEntry", desc, {
    NetworkAclId = acl, RuleNumber = rule, Protocol = proto, RuleAction = "allow",
    Egress = egress, CidrBlock = cidr, PortRange = { From = from, To = to },
  })
end

--- The VPC template for an environment (info from environment.settings).
function M.template(info)
  assert(type(info) == "table", "vpc.template: settings table expected")
  local t = cfn.template({ description = "lumu VPC with network resources for environment " .. info.name })
  t:parameter("Namespace", { Type = "String", Description = "Namespace for stack prefixes" })
  t:parameter("EnvironmentName", { Type = "String", Description = "Name of environment used for resource namespace" })
  t:parameter("InstanceTenancy", { Type = "String", Description = "Instance tenancy to use for VPC",
    AllowedValues = { "default", "dedicated" }, Default = "default" })
  cidr_param(t, "SshAllow", "Subnet from which to allow SSH access.", M.SSH_DEFAULT)
  local vpc_cidr = cidr_param(t, "VpcCidrBlock", "Subnet block for VPC", M.DEFAULT_CIDRS.VpcCidrBlock)
  for az = 1, 3 do
    cidr_param(t, "ElbSubnetAZ" .. az .. "CidrBlock", "ELB Subnet block for AZ" .. az,
      M.DEFAULT_CIDRS["ElbSubnetAZ" .. az .. "CidrBlock"])
  end
  for az = 1, 3 do
    cidr_param(t, "InstanceSubnetAZ" .. az .. "CidrBlock", "Instance Subnet block for AZ" .. az,
      M.DEFAULT_CIDRS["InstanceSubnetAZ" .. az .. "CidrBlock"])
  end
  local nat_cidr = cidr_param(t, "NatSubnetAZ1CidrBlock", "NAT Subnet block for AZ1", M.DEFAULT_CIDRS.NatSubnetAZ1CidrBlock)
  t:parameter("ElbInternal", { Type = "String", Description = "Should ELB be internal?",
    Default = "false", AllowedValues = { "true", "false" } })
  t:parameter("AZCount", { Type = "String", Description = "Number of availability zones to use (2 or more)",
    Default = "3" })
  t:parameter("EKSClusterName", { Type = "String",
    Description = "Name to use for EKS cluster (leave blank unless provider type is eks)", Default = "" })
  local bastion = info.cluster.keyName ~= nil and info.cluster.keyName ~= ""
  if bastion then
    t:parameter("BastionKeyName", { Type = "String", Description = "SSH key to add to the bastion host" })
    t:parameter("BastionImageId", { Type = "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
      Description = "SSM parameter holding the bastion AMI", Default = M.BASTION_IMAGE_PARAMETER })
    t:parameter("BastionInstanceType", { Type = "String", Description = "Bastion instance type to launch",
      Default = "t3.nano" })
  end

  local function has(name) return cfn.Not(cfn.Equals(cfn.Ref(name), "")) end
  local not2 = cfn.Not(cfn.Equals(cfn.Ref("AZCount"), "2"))
  t:condition("HasElbSubnetAZ1", has("ElbSubnetAZ1CidrBlock"))
  t:condition("HasElbSubnetAZ2", has("ElbSubnetAZ2CidrBlock"))
  t:condition("HasElbSubnetAZ3", cfn.And(not2, has("ElbSubnetAZ3CidrBlock")))
  t:condition("HasInstanceSubnetAZ1", has("InstanceSubnetAZ1CidrBlock"))
  t:condition("HasInstanceSubnetAZ2", has("InstanceSubnetAZ2CidrBlock"))
  t:condition("HasInstanceSubnetAZ3", cfn.And(not2, has("InstanceSubnetAZ3CidrBlock")))
  t:condition("IsPublicElb", cfn.Not(cfn.Equals(cfn.Ref("ElbInternal"), "true")))
  t:condition("IsEKS", has("EKSClusterName"))

  local vpc = res(t, "VPC", "AWS::EC2::VPC", "the VPC", {
    CidrBlock = vpc_cidr, EnableDnsSupport = true, EnableDnsHostnames = true,
    InstanceTenancy = cfn.Ref("InstanceTenancy"), Tags = name_tag(""),
  })
  local igw = res(t, "InternetGateway", "AWS::EC2::InternetGateway", "the internet gateway",
    { Tags = name_tag("", "Public") })
  local attach = res(t, "VPCInternetGateway", "AWS::EC2::VPCGatewayAttachment",
    "the internet gateway attachment", { VpcId = vpc, InternetGatewayId = igw })

  -- NAT tier (public)
  local function az(i) return cfn.Select(i - 1, cfn.GetAZs("")) end
  local nat_subnet = res(t, "NatSubnetAZ1", "AWS::EC2::Subnet", "the public NAT subnet in AZ1", {
    VpcId = vpc, CidrBlock = nat_cidr, MapPublicIpOnLaunch = true, AvailabilityZone = az(1),
    Tags = name_tag("-nat-1", "Public"),
  })
  local eip = res(t, "EipAZ1", "AWS::EC2::EIP", "the NAT gateway's Elastic IP",
    { Domain = "vpc", Tags = name_tag("-nat-1") }, { DependsOn = attach })
  local nat = res(t, "NatAZ1", "AWS::EC2::NatGateway", "the NAT gateway in AZ1", {
    AllocationId = eip:getatt("AllocationId"), SubnetId = nat_subnet, Tags = name_tag("-nat-1"),
  }, { DependsOn = attach })
  local nat_rt = res(t, "NatRouteTable", "AWS::EC2::RouteTable", "the NAT subnet route table",
    { VpcId = vpc, Tags = name_tag("-nat", "Public") })
  res(t, "NatDefaultRoute", "AWS::EC2::Route", "the NAT subnet's route to the internet", {
    RouteTableId = nat_rt, DestinationCidrBlock = "0.0.0.0/0", GatewayId = igw,
  }, { DependsOn = attach })
  res(t, "NatSubnetAZ1RouteTableAssociation", "AWS::EC2::SubnetRouteTableAssociation",
    "the NAT subnet's route table association", { SubnetId = nat_subnet, RouteTableId = nat_rt })
  local nat_acl = res(t, "NatNetworkAcl", "AWS::EC2::NetworkAcl", "the NAT subnet network ACL",
    { VpcId = vpc, Tags = name_tag("-nat", "Public") })
  nacl_entry(t, "NatInboundNetworkAclEntry", "NAT ACL: inbound TCP", nat_acl, 100, 6, false, "0.0.0.0/0", 0, 65535)
  nacl_entry(t, "NatOutboundNetworkAclEntry", "NAT ACL: outbound TCP", nat_acl, 101, 6, true, "0.0.0.0/0", 0, 65535)
  res(t, "NatSubnetAZ1PublicNetworkAclAssociation", "AWS::EC2::SubnetNetworkAclAssociation",
    "the NAT subnet's network ACL association", { SubnetId = nat_subnet, NetworkAclId = nat_acl })

  -- Instance tier (private)
  local function eks_tag(key, value)
    return cfn.If("IsEKS", { Key = key, Value = value }, cfn.NoValue)
  end
  local inst_rt = res(t, "InstanceRouteTable", "AWS::EC2::RouteTable", "the instance subnets' route table",
    { VpcId = vpc, Tags = name_tag("-ec2", "Private") })
  res(t, "InstanceDefaultRoute", "AWS::EC2::Route", "the instance subnets' route to the NAT gateway", {
    RouteTableId = inst_rt, DestinationCidrBlock = "0.0.0.0/0", NatGatewayId = nat,
  })
  local inst_acl = res(t, "InstanceNetworkAcl", "AWS::EC2::NetworkAcl", "the instance subnets' network ACL",
    { VpcId = vpc, Tags = name_tag("-ec2", "Private") })
  nacl_entry(t, "InstanceOutboundNetworkAclEntry", "instance ACL: outbound TCP", inst_acl, 100, 6, true, "0.0.0.0/0", 0, 65535)
  nacl_entry(t, "InstanceOutboundUdpNetworkAclEntry", "instance ACL: outbound UDP", inst_acl, 101, 17, true, "0.0.0.0/0", 0, 65535)
  nacl_entry(t, "InstanceInboundEphemeralUdpPortNetworkAclEntry", "instance ACL: inbound UDP replies",
    inst_acl, 102, 17, false, "0.0.0.0/0", 1024, 65535)
  nacl_entry(t, "InstanceInboundEphemeralPortNetworkAclEntry", "instance ACL: inbound TCP replies",
    inst_acl, 103, 6, false, "0.0.0.0/0", 1024, 65535)
  nacl_entry(t, "InstanceInboundSSHPublicNetworkAclEntry", "instance ACL: SSH from the NAT (bastion) subnet",
    inst_acl, 104, 6, false, nat_cidr, 22, 22)
  nacl_entry(t, "InstanceInboundPriviledgedPortNetworkAclEntry", "instance ACL: TCP from inside the VPC",
    inst_acl, 105, 6, false, vpc_cidr, 0, 65535)
  nacl_entry(t, "InstanceInboundPriviledgedUdpPortNetworkAclEntry", "instance ACL: UDP from inside the VPC",
    inst_acl, 106, 17, false, vpc_cidr, 0, 65535)
  local inst_subnets = {}
  for i = 1, 3 do
    local cond = "HasInstanceSubnetAZ" .. i
    local tags = name_tag("-ec2-" .. i, "Private")
    tags[#tags + 1] = eks_tag("kubernetes.io/role/internal-elb", "1")
    tags[#tags + 1] = eks_tag(cfn.Sub("kubernetes.io/cluster/${EKSClusterName}"), "shared")
    local sn = res(t, "InstanceSubnetAZ" .. i, "AWS::EC2::Subnet", "the private instance subnet in AZ" .. i, {
      VpcId = vpc, CidrBlock = cfn.Ref("InstanceSubnetAZ" .. i .. "CidrBlock"), MapPublicIpOnLaunch = false,
      AvailabilityZone = az(i), Tags = tags,
    }, { Condition = cond })
    res(t, "InstanceSubnetAZ" .. i .. "RouteTableAssociation", "AWS::EC2::SubnetRouteTableAssociation",
      "instance subnet AZ" .. i .. " route table association", { SubnetId = sn, RouteTableId = inst_rt },
      { Condition = cond })
    res(t, "InstanceSubnetAZ" .. i .. "PublicNetworkAclAssociation", "AWS::EC2::SubnetNetworkAclAssociation",
      "instance subnet AZ" .. i .. " network ACL association", { SubnetId = sn, NetworkAclId = inst_acl },
      { Condition = cond })
    inst_subnets[i] = cfn.If(cond, sn, cfn.NoValue)
  end

  -- ELB tier (public unless ElbInternal)
  local network = cfn.If("IsPublicElb", "Public", "Private")
  local elb_rt = res(t, "ElbRouteTable", "AWS::EC2::RouteTable", "the ELB subnets' route table",
    { VpcId = vpc, Tags = name_tag("-elb", network) })
  res(t, "ElbDefaultRoute", "AWS::EC2::Route", "the ELB subnets' route to the internet (public ELB only)", {
    RouteTableId = elb_rt, DestinationCidrBlock = "0.0.0.0/0", GatewayId = igw,
  }, { Condition = "IsPublicElb", DependsOn = attach })
  local elb_acl = res(t, "ElbNetworkAcl", "AWS::EC2::NetworkAcl", "the ELB subnets' network ACL",
    { VpcId = vpc, Tags = name_tag("-elb", network) })
  nacl_entry(t, "ElbOutboundNetworkAclEntry", "ELB ACL: outbound TCP", elb_acl, 100, 6, true, "0.0.0.0/0", 0, 65535)
  nacl_entry(t, "ElbInboundInternalNetworkAclEntry", "ELB ACL: TCP from inside the VPC", elb_acl, 104, 6, false,
    vpc_cidr, 0, 65535)
  nacl_entry(t, "ElbInboundHttpNetworkAclEntry", "ELB ACL: inbound HTTP", elb_acl, 105, 6, false, "0.0.0.0/0", 80, 80)
  nacl_entry(t, "ElbInboundHttpsNetworkAclEntry", "ELB ACL: inbound HTTPS", elb_acl, 106, 6, false, "0.0.0.0/0", 443, 443)
  local elb_subnets = {}
  for i = 1, 3 do
    local cond = "HasElbSubnetAZ" .. i
    local tags = name_tag("-elb-" .. i, network)
    tags[#tags + 1] = eks_tag("kubernetes.io/role/elb", "1")
    tags[#tags + 1] = eks_tag(cfn.Sub("kubernetes.io/cluster/${EKSClusterName}"), "shared")
    local sn = res(t, "ElbSubnetAZ" .. i, "AWS::EC2::Subnet", "the ELB subnet in AZ" .. i, {
      VpcId = vpc, CidrBlock = cfn.Ref("ElbSubnetAZ" .. i .. "CidrBlock"),
      MapPublicIpOnLaunch = cfn.If("IsPublicElb", true, false), AvailabilityZone = az(i), Tags = tags,
    }, { Condition = cond })
    res(t, "ElbSubnetAZ" .. i .. "RouteTableAssociation", "AWS::EC2::SubnetRouteTableAssociation",
      "ELB subnet AZ" .. i .. " route table association", { SubnetId = sn, RouteTableId = elb_rt },
      { Condition = cond })
    res(t, "ElbSubnetAZ" .. i .. "PublicNetworkAclAssociation", "AWS::EC2::SubnetNetworkAclAssociation",
      "ELB subnet AZ" .. i .. " network ACL association", { SubnetId = sn, NetworkAclId = elb_acl },
      { Condition = cond })
    elb_subnets[i] = cfn.If(cond, sn, cfn.NoValue)
  end

  if bastion then
    local sg = res(t, "BastionSG", "AWS::EC2::SecurityGroup", "the bastion host's security group", {
      VpcId = vpc, GroupDescription = "Bastion Host Security Group",
      SecurityGroupEgress = { { IpProtocol = "-1", CidrIp = vpc_cidr, Description = "to the VPC only" } },
      Tags = name_tag("-bastion"),
    })
    res(t, "BastionSshIngress", "AWS::EC2::SecurityGroupIngress", "SSH to the bastion host from SshAllow", {
      GroupId = sg:getatt("GroupId"), IpProtocol = "tcp", FromPort = 22, ToPort = 22,
      CidrIp = cfn.Ref("SshAllow"), Description = "SSH from SshAllow",
    })
    res(t, "BastionHost", "AWS::EC2::Instance", "the bastion host", {
      ImageId = cfn.Ref("BastionImageId"), InstanceType = cfn.Ref("BastionInstanceType"),
      KeyName = cfn.Ref("BastionKeyName"),
      MetadataOptions = { HttpTokens = "required", HttpEndpoint = "enabled" },
      NetworkInterfaces = { {
        AssociatePublicIpAddress = true, DeviceIndex = "0", GroupSet = { sg:getatt("GroupId") },
        SubnetId = nat_subnet,
      } },
      Tags = name_tag("-bastion"),
    }, { DependsOn = attach })
  end

  t:output("VpcId", vpc, { description = "The id of the vpc",
    export = cfn.Sub("${AWS::StackName}-VpcId") })
  if bastion then
    t:output("BastionHost", cfn.GetAtt("BastionHost", "PublicIp"), { description = "IP of the bastion host" })
  end
  t:output("ElbSubnetIds", cfn.Join(",", elb_subnets), { description = "The elb subnetids",
    export = cfn.Sub("${AWS::StackName}-ElbSubnetIds") })
  t:output("InstanceSubnetIds", cfn.Join(",", inst_subnets), { description = "The ec2 subnetids",
    export = cfn.Sub("${AWS::StackName}-InstanceSubnetIds") })
  return t
end

--- The stack descriptor (parameters as mu passes them; the CIDRs keep their
-- template defaults so overrides apply).
function M.stack(info)
  local t = M.template(info)
  local c = info.cluster
  local params = {
    Namespace = info.ns, EnvironmentName = info.name,
    InstanceTenancy = c.instanceTenancy, SshAllow = c.sshAllow, -- nil: M.SSH_DEFAULT
    ElbInternal = tostring(info.lb.internal == true),
  }
  if info.az_count then params.AZCount = tostring(info.az_count) end
  if info.eks then params.EKSClusterName = info.names.environment end
  if c.keyName and c.keyName ~= "" then params.BastionKeyName = c.keyName end
  return common.stack({
    name = info.names.network, kind = "vpc", env = info.name,
    template = t:to_table({ consume = true }), parameters = params,
    tags = common.tags("vpc", { environment = info.name, provider = info.provider }),
    depends = info.names.iam_common and { info.names.iam_common } or {},
    description = "VPC, subnets, NAT and routing for environment " .. info.name,
  })
end

function M.stacks(model, ctx)
  return require("lumu.gen.environment").stacks(model, ctx, { kinds = { vpc = true } })
end

return M
