--- The `<ns>-loadbalancer-<env>` stack (providers ecs, ecs-fargate, ec2), as
-- mu's elb.yml: an application load balancer, its listeners, security
-- groups, DNS records, the Cloud Map namespace and the access-log bucket.
--
-- local lb = require "lumu.gen.loadbalancer"
-- lb.stack(info) -> descriptor; lb.template(info) -> cfn template
-- lb.stacks(model, ctx) -> descriptors of every load balancer stack; nil, err
-- lb.certificate_arn(cert) -> the CertificateArn value for loadbalancer.certificate
--   (an ACM certificate id -> Fn::Sub arn:${AWS::Partition}:acm:${AWS::Region}:
--   ${AWS::AccountId}:certificate/${ElbCert}; a full "arn:..." -> Ref ElbCert)
-- lb.ELB_ACCOUNTS: region -> Elastic Load Balancing account id
--
-- Parameters (mu's): Namespace, EnvironmentName, ServiceDiscoveryName,
-- ElbInternal, VpcId and ElbSubnetIds (export NAMES of the VPC stack),
-- ElbDomainName, ElbHostName ('.' = apex), ElbCert, ElbAccessLogsS3BucketName,
-- ElbAccessLogsS3Prefix. What exists follows mu.yml: the HTTPS listener
-- (policy ELBSecurityPolicy-TLS13-1-2-2021-06) with a certificate, and then
-- the HTTP listener answers 301 to HTTPS (else a fixed 404; services add
-- their rules); Route 53 alias records `<name>.<zone>` and `*.<name>.<zone>`
-- with a hosted zone; access logs always on (mu's behaviour), to
-- accessLogs.s3BucketName when set (the bucket must allow ELB log delivery),
-- else to a bucket this stack creates: SSE-S3 (the only encryption ELB
-- logging supports), public access blocked, bucket-owner-enforced, a policy
-- denying non-TLS access and letting ELB write `<prefix>/AWSLogs/<account>/`:
-- in the regions opened before August 2022 the region's ELB account (mapping
-- ElbAccounts), elsewhere the logdelivery.elasticloadbalancing.amazonaws.com
-- service principal; the bucket is retained when the stack is deleted.
-- Security groups: ElbSG (the ALB; HTTP/HTTPS ingress, no default egress)
-- and ElbInstanceSecurityGroup (added to instances/tasks), linked by
-- separate ingress and egress rule resources.
-- Outputs: BaseUrl, VpcId (E), ElbInstanceSecurityGroup (E as
-- `<stack>-InstanceSecurityGroup`, as mu), ElbHttpListenerArn (E),
-- ElbHttpsListenerArn (E, with a certificate), ServiceDiscoveryId (E),
-- ServiceDiscoveryName (E), ElbDnsName, ElbAccessLogsBucket.
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"

local M = {}

M.TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"

-- Elastic Load Balancing account per region, for the regions that existed
-- before August 2022 (AWS: "Enable access logs for your Application Load
-- Balancer"); newer regions use the log delivery service principal.
M.ELB_ACCOUNTS = {
  ["us-east-1"] = "127311923021", ["us-east-2"] = "033677994240",
  ["us-west-1"] = "027434742980", ["us-west-2"] = "797873946194",
  ["af-south-1"] = "098369216593", ["ap-east-1"] = "754344448648",
  ["ap-southeast-3"] = "589379963580", ["ap-south-1"] = "718504428378",
  ["ap-northeast-3"] = "383597477331", ["ap-northeast-2"] = "600734575887",
  ["ap-southeast-1"] = "114774131450", ["ap-southeast-2"] = "783225319266",
  ["ap-northeast-1"] = "582318560864", ["ca-central-1"] = "985666609251",
  ["eu-central-1"] = "054676820928", ["eu-west-1"] = "156460612806",
  ["eu-west-2"] = "652711504416", ["eu-south-1"] = "635631232127",
  ["eu-west-3"] = "009996457667", ["eu-north-1"] = "897822967062",
  ["me-south-1"] = "076674570225", ["sa-east-1"] = "507241528517",
  ["us-gov-west-1"] = "048591011584", ["us-gov-east-1"] = "190560391635",
  ["cn-north-1"] = "638102146993", ["cn-northwest-1"] = "037604701340",
}

local res = common.resource

local function is_arn(cert)
  return type(cert) == "string" and cert:match("^arn:") ~= nil
end

function M.certificate_arn(cert)
  if is_arn(cert) then return cfn.Ref("ElbCert") end
  return cfn.Sub("arn:${AWS::Partition}:acm:${AWS::Region}:${AWS::AccountId}:certificate/${ElbCert}")
end

local function sorted_regions()
  local r = {}
  for k in pairs(M.ELB_ACCOUNTS) do r[#r + 1] = k end
  table.sort(r)
  return r
end

-- Condition HasElbAccount: the region is one of ELB_ACCOUNTS (Fn::Or takes
-- at most 10 conditions, so the regions are grouped).
local function elb_account_condition(t)
  local regions = sorted_regions()
  local groups = {}
  for i = 1, #regions, 9 do
    local eqs = {}
    for j = i, math.min(i + 8, #regions) do eqs[#eqs + 1] = cfn.Equals(cfn.Region, regions[j]) end
    local name = "IsElbAccountRegion" .. (#groups + 1)
    if #eqs == 1 then
      t:condition(name, eqs[1])
    else
      t:condition(name, cfn.Or(table.unpack(eqs)))
    end
    groups[#groups + 1] = cfn.Condition(name)
  end
  t:condition("HasElbAccount", #groups == 1 and groups[1] or cfn.Or(table.unpack(groups)))
  local map = {}
  for _, r in ipairs(regions) do map[r] = { Account = M.ELB_ACCOUNTS[r] } end
  t:mapping("ElbAccounts", map)
end

local function sg_rule(t, id, typ, desc, group, props)
  props.GroupId = group
  props.IpProtocol = props.IpProtocol or "tcp"
  props.Description = desc
  return res(t, id, typ, desc, props)
end

function M.template(info)
  assert(type(info) == "table", "loadbalancer.template: settings table expected")
  local lbc = info.lb
  local has_cert = lbc.certificate ~= nil and lbc.certificate ~= ""
  local has_domain = lbc.hostedzone ~= nil and lbc.hostedzone ~= ""
  local logs = lbc.accessLogs or {}
  local own_bucket = logs.s3BucketName == nil or logs.s3BucketName == ""

  local t = cfn.template({ description = "lumu load balancer for environment " .. info.name })
  t:parameter("Namespace", { Type = "String", Description = "Namespace for stack prefixes" })
  t:parameter("EnvironmentName", { Type = "String", Description = "Name of environment used for resource namespace" })
  t:parameter("ServiceDiscoveryName", { Type = "String", Description = "Name for the service discovery namespace" })
  t:parameter("ElbInternal", { Type = "String", Description = "Should ELB be internal?", Default = "false",
    AllowedValues = { "true", "false" } })
  t:parameter("VpcId", { Type = "String", Description = "Name of the value to import for the VpcId" })
  t:parameter("ElbSubnetIds", { Type = "String", Description = "Name of the value to import for the elb subnet ids" })
  t:parameter("ElbDomainName", { Type = "String", Default = "",
    Description = "The Route 53 hosted zone for the ELB DNS records. Leave blank to not use DNS for Elb." })
  t:parameter("ElbHostName", { Type = "String", Default = ".",
    Description = "The host name to use for the ELB DNS; prepended to ElbDomainName. Pass '.' for the apex." })
  t:parameter("ElbCert", { Type = "String", Default = "",
    Description = "The ACM certificate id (or ARN) for the HTTPS listener. Leave blank to disable HTTPS" })
  t:parameter("ElbAccessLogsS3BucketName", { Type = "String", Default = "",
    Description = "Bucket for the access logs (blank: a bucket created by this stack)" })
  t:parameter("ElbAccessLogsS3Prefix", { Type = "String", Default = "access-logs",
    Description = "Prefix of the access logs in the bucket" })

  t:condition("IsElbInternal", cfn.Equals(cfn.Ref("ElbInternal"), "true"))
  t:condition("HasElbHostName", cfn.And(cfn.Not(cfn.Equals(cfn.Ref("ElbHostName"), ".")),
    cfn.Not(cfn.Equals(cfn.Ref("ElbHostName"), ""))))
  t:condition("HasAccessLogsPrefix", cfn.Not(cfn.Equals(cfn.Ref("ElbAccessLogsS3Prefix"), "")))
  if own_bucket then elb_account_condition(t) end

  local vpc_id = common.import("VpcId")
  local sd = res(t, "ServiceDiscoveryNamespace", "AWS::ServiceDiscovery::PrivateDnsNamespace",
    "the Cloud Map private DNS namespace for service discovery", {
      Description = cfn.Sub("Service Discovery Namespace for ${AWS::StackName}"),
      Vpc = vpc_id, Name = cfn.Ref("ServiceDiscoveryName"),
    })

  local inst_sg = res(t, "ElbInstanceSecurityGroup", "AWS::EC2::SecurityGroup",
    "the security group of instances and tasks behind the load balancer", {
      VpcId = vpc_id, GroupDescription = "Microservice Host Security Group allowing ELB access",
      Tags = { { Key = "Name", Value = cfn.Sub("${AWS::StackName}-instances") } },
    })
  local elb_sg = res(t, "ElbSG", "AWS::EC2::SecurityGroup", "the load balancer's security group", {
    VpcId = vpc_id, GroupDescription = "ELB Security Group",
    -- replaces the default allow-all egress; the real egress rules follow
    SecurityGroupEgress = { { IpProtocol = "-1", CidrIp = "127.0.0.1/32",
      Description = "no default egress (see Elb2HostRuleEgress)" } },
    Tags = { { Key = "Name", Value = cfn.Sub("${AWS::StackName}-elb") } },
  })
  local elb_gid, inst_gid = elb_sg:getatt("GroupId"), inst_sg:getatt("GroupId")
  sg_rule(t, "ElbHttpIngress", "AWS::EC2::SecurityGroupIngress", "HTTP to the load balancer", elb_gid,
    { FromPort = 80, ToPort = 80, CidrIp = "0.0.0.0/0" })
  if has_cert then
    sg_rule(t, "ElbHttpsIngress", "AWS::EC2::SecurityGroupIngress", "HTTPS to the load balancer", elb_gid,
      { FromPort = 443, ToPort = 443, CidrIp = "0.0.0.0/0" })
  end
  sg_rule(t, "ELB2HostRuleIngress", "AWS::EC2::SecurityGroupIngress", "load balancer to instances (ingress)",
    inst_gid, { FromPort = 0, ToPort = 65535, SourceSecurityGroupId = elb_gid })
  sg_rule(t, "Elb2HostRuleEgress", "AWS::EC2::SecurityGroupEgress", "load balancer to instances (egress)",
    elb_gid, { FromPort = 0, ToPort = 65535, DestinationSecurityGroupId = inst_gid })
  sg_rule(t, "Host2ELBRuleIngress", "AWS::EC2::SecurityGroupIngress", "instances to the load balancer (ingress)",
    elb_gid, { FromPort = 0, ToPort = 65535, SourceSecurityGroupId = inst_gid })
  sg_rule(t, "Host2ELBRuleEgress", "AWS::EC2::SecurityGroupEgress", "instances to the load balancer (egress)",
    inst_gid, { FromPort = 0, ToPort = 65535, DestinationSecurityGroupId = elb_gid })

  local bucket_ref, lb_opts
  local log_path = cfn.If("HasAccessLogsPrefix", cfn.Sub("${ElbAccessLogsS3Prefix}/AWSLogs/${AWS::AccountId}/*"),
    cfn.Sub("AWSLogs/${AWS::AccountId}/*"))
  if own_bucket then
    local bucket = res(t, "ElbAccessLogsBucket", "AWS::S3::Bucket", "the load balancer access-log bucket", {
      BucketEncryption = { ServerSideEncryptionConfiguration = { {
        ServerSideEncryptionByDefault = { SSEAlgorithm = "AES256" }, BucketKeyEnabled = false } } },
      PublicAccessBlockConfiguration = { BlockPublicAcls = true, BlockPublicPolicy = true,
        IgnorePublicAcls = true, RestrictPublicBuckets = true },
      OwnershipControls = { Rules = { { ObjectOwnership = "BucketOwnerEnforced" } } },
      Tags = { { Key = "mu:environment", Value = cfn.Ref("EnvironmentName") } },
    }, { DeletionPolicy = "Retain", UpdateReplacePolicy = "Retain" })
    local arn = bucket:getatt("Arn")
    res(t, "ElbAccessLogsBucketPolicy", "AWS::S3::BucketPolicy",
      "the access-log bucket policy (TLS only; ELB log delivery)", {
        Bucket = bucket,
        PolicyDocument = { Version = "2012-10-17", Statement = {
          { Sid = "DenyInsecureTransport", Effect = "Deny", Principal = "*", Action = "s3:*",
            Resource = { arn, cfn.Join("", { arn, "/*" }) },
            Condition = { Bool = { ["aws:SecureTransport"] = "false" } } },
          { Sid = "AllowElbLogDelivery", Effect = "Allow",
            Principal = cfn.If("HasElbAccount",
              { AWS = cfn.Sub("arn:${AWS::Partition}:iam::${Account}:root",
                { Account = cfn.FindInMap("ElbAccounts", cfn.Region, "Account") }) },
              { Service = "logdelivery.elasticloadbalancing.amazonaws.com" }),
            Action = "s3:PutObject",
            Resource = cfn.Join("", { arn, "/", log_path }) },
        } },
      })
    bucket_ref = bucket.ref
    lb_opts = { DependsOn = "ElbAccessLogsBucketPolicy" }
  else
    bucket_ref = cfn.Ref("ElbAccessLogsS3BucketName")
  end

  local elb = res(t, "Elb", "AWS::ElasticLoadBalancingV2::LoadBalancer", "the application load balancer", {
    Type = "application",
    Scheme = cfn.If("IsElbInternal", "internal", "internet-facing"),
    Subnets = cfn.Split(",", common.import("ElbSubnetIds")),
    SecurityGroups = { elb_gid },
    LoadBalancerAttributes = {
      { Key = "access_logs.s3.enabled", Value = "true" },
      { Key = "access_logs.s3.bucket", Value = bucket_ref },
      cfn.If("HasAccessLogsPrefix", { Key = "access_logs.s3.prefix", Value = cfn.Ref("ElbAccessLogsS3Prefix") },
        cfn.NoValue),
      { Key = "routing.http.drop_invalid_header_fields.enabled", Value = "true" },
    },
    Tags = { { Key = "Name", Value = cfn.StackName } },
  }, lb_opts)

  local not_found = { Type = "fixed-response",
    FixedResponseConfig = { StatusCode = "404", ContentType = "text/plain", MessageBody = "Not Found" } }
  local http_default = not_found
  if has_cert then
    http_default = { Type = "redirect", RedirectConfig = { Protocol = "HTTPS", Port = "443",
      Host = "#{host}", Path = "/#{path}", Query = "#{query}", StatusCode = "HTTP_301" } }
  end
  local http = res(t, "ElbHttpListener", "AWS::ElasticLoadBalancingV2::Listener",
    has_cert and "the HTTP listener (redirects to HTTPS)" or "the HTTP listener", {
      LoadBalancerArn = elb, Port = 80, Protocol = "HTTP", DefaultActions = { http_default },
    })
  local https
  if has_cert then
    https = res(t, "ElbHttpsListener", "AWS::ElasticLoadBalancingV2::Listener", "the HTTPS listener", {
      LoadBalancerArn = elb, Port = 443, Protocol = "HTTPS", SslPolicy = M.TLS_POLICY,
      Certificates = { { CertificateArn = M.certificate_arn(lbc.certificate) } },
      DefaultActions = { not_found },
    })
  end

  if has_domain then
    local function record(prefix)
      return {
        Name = cfn.If("HasElbHostName", cfn.Sub(prefix .. "${ElbHostName}.${ElbDomainName}."),
          cfn.Sub(prefix .. "${ElbDomainName}.")),
        Type = "A",
        AliasTarget = { HostedZoneId = elb:getatt("CanonicalHostedZoneID"), DNSName = elb:getatt("DNSName"),
          EvaluateTargetHealth = false },
      }
    end
    res(t, "ElbDns", "AWS::Route53::RecordSetGroup", "the DNS records of the load balancer", {
      HostedZoneName = cfn.Sub("${ElbDomainName}."),
      Comment = cfn.Sub("DNS for ELB in ${AWS::StackName}"),
      RecordSets = { record(""), record("*.") },
    })
  end

  local scheme = has_cert and "https://" or "http://"
  local base
  if has_domain then
    base = cfn.If("HasElbHostName", cfn.Sub(scheme .. "${ElbHostName}.${ElbDomainName}"),
      cfn.Sub(scheme .. "${ElbDomainName}"))
  else
    base = cfn.Sub(scheme .. "${Elb.DNSName}")
  end
  local function export(name) return cfn.Sub("${AWS::StackName}-" .. name) end
  t:output("BaseUrl", base, { description = "ELB URL" })
  t:output("VpcId", vpc_id, { description = "VPC ID for the microservice cluster", export = export("VpcId") })
  t:output("ElbInstanceSecurityGroup", inst_sg, { description = "Security Group ID for the microservice instances",
    export = export("InstanceSecurityGroup") })
  t:output("ElbHttpListenerArn", http, { description = "Arn of the ELB HTTP Listener.",
    export = export("ElbHttpListenerArn") })
  if https then
    t:output("ElbHttpsListenerArn", https, { description = "Arn of the ELB HTTPS Listener.",
      export = export("ElbHttpsListenerArn") })
  end
  t:output("ServiceDiscoveryId", sd, { description = "Id of the Service Discovery Namespace",
    export = export("ServiceDiscoveryId") })
  t:output("ServiceDiscoveryName", cfn.Ref("ServiceDiscoveryName"),
    { description = "Name of the Service Discovery Namespace", export = export("ServiceDiscoveryName") })
  t:output("ElbDnsName", elb:getatt("DNSName"), { description = "DNS name of the load balancer" })
  t:output("ElbAccessLogsBucket", bucket_ref, { description = "Bucket receiving the access logs" })
  return t
end

function M.stack(info)
  local lbc = info.lb
  local logs = lbc.accessLogs or {}
  local params = {
    Namespace = info.ns, EnvironmentName = info.name,
    VpcId = common.export_name(info.names.network, "VpcId"),
    ElbSubnetIds = common.export_name(info.names.network, "ElbSubnetIds"),
    ServiceDiscoveryName = info.discovery_name,
    ElbInternal = tostring(lbc.internal == true),
  }
  if lbc.certificate and lbc.certificate ~= "" then params.ElbCert = lbc.certificate end
  if lbc.hostedzone and lbc.hostedzone ~= "" then
    params.ElbDomainName = lbc.hostedzone
    params.ElbHostName = (lbc.name and lbc.name ~= "") and lbc.name or info.name
  end
  if logs.s3BucketName and logs.s3BucketName ~= "" then params.ElbAccessLogsS3BucketName = logs.s3BucketName end
  if logs.s3Prefix then params.ElbAccessLogsS3Prefix = logs.s3Prefix end
  local depends = {}
  if info.names.iam_common then depends[#depends + 1] = info.names.iam_common end
  if info.names.network_stack then depends[#depends + 1] = info.names.network_stack end
  return common.stack({
    name = info.names.loadbalancer, kind = "loadbalancer", env = info.name,
    template = M.template(info):to_table({ consume = true }), parameters = params,
    tags = common.tags("loadbalancer", { environment = info.name, provider = info.provider }),
    depends = depends,
    description = "load balancer, DNS and service discovery for environment " .. info.name,
  })
end

function M.stacks(model, ctx)
  return require("lumu.gen.environment").stacks(model, ctx, { kinds = { loadbalancer = true } })
end

return M
