-- Specs of the environment-side stack generators (lumu.gen.environment and
-- lumu.gen.vpc/target/iam/loadbalancer/cluster): stack names, parameters,
-- outputs and exports as mu's; every template of the provider x option
-- matrix passes cfn.check and the CloudFormation registry schemas in
-- $LUMU_SHARED/cfn (default ../shared next to the repository).
local environment = require "lumu.gen.environment"
local vpc = require "lumu.gen.vpc"
local lb = require "lumu.gen.loadbalancer"
local cluster = require "lumu.gen.cluster"
local iam = require "lumu.gen.iam"
local target = require "lumu.gen.target"
local cfn = require "lumu.cfn"
local json = require "lumu.json"
local config = require "lumu.config"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local SHARED = os.getenv("LUMU_SHARED")
if not SHARED or SHARED == "" then SHARED = here .. "/../../../shared" end
do
  local f = io.open(SHARED .. "/cfn/types.tsv", "rb")
  if not f then
    error("gen_env_spec: the CloudFormation schemas are missing: " .. SHARED .. "/cfn/types.tsv not found. "
      .. "Set LUMU_SHARED to the shared folder (../shared next to the repository); CI always has it.", 0)
  end
  f:close()
end
local checker = assert(cfn.schema.open(SHARED .. "/cfn"))
local SEEDS = SHARED .. "/corpus/seed-examples"

local PROVIDERS = { "ecs", "ecs-fargate", "ec2", "eks", "eks-fargate" }

-- helpers --------------------------------------------------------------------

local function gen(model, ctx, opts)
  local list, err = environment.stacks(model, ctx, opts)
  assert(list, err)
  return list
end

local function by_name(list)
  local m = {}
  for _, d in ipairs(list) do m[d.name] = d end
  return m
end

local function names(list)
  local n = {}
  for i, d in ipairs(list) do n[i] = d.name end
  return n
end

local function one(name, provider, extra)
  local e = { name = name or "acceptance", provider = provider or "ecs" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return { namespace = "mu", environments = { e } }
end

local function problems_of(tpl)
  local p = cfn.check(tpl)
  local s = checker:check_template(tpl)
  local all = {}
  for _, x in ipairs(p) do all[#all + 1] = "check " .. x.path .. ": " .. x.message end
  for _, x in ipairs(s) do all[#all + 1] = "schema " .. x.path .. ": " .. x.message end
  return all
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end

-- mu's template merge, enough for the specs: maps merge, scalars replace
local function merge(base, frag)
  for k, v in pairs(frag) do
    if type(v) == "table" and type(base[k]) == "table" then merge(base[k], v) else base[k] = copy(v) end
  end
  return base
end

-- the value a Ref to a parameter takes: stack parameter, else template default
local function param_value(d, name)
  if d.parameters[name] ~= nil then return d.parameters[name] end
  local p = d.template.Parameters[name]
  return p and p.Default
end

local function resolve(d, v)
  if type(v) == "table" and v.Ref then return param_value(d, v.Ref) end
  return v
end

local function each_policy_action(tpl, fn)
  for id, r in pairs(tpl.Resources) do
    local docs = {}
    if r.Type == "AWS::IAM::ManagedPolicy" then docs[#docs + 1] = r.Properties.PolicyDocument end
    if r.Type == "AWS::IAM::Role" then
      for _, p in ipairs(r.Properties.Policies or {}) do docs[#docs + 1] = p.PolicyDocument end
    end
    for _, doc in ipairs(docs) do
      for _, st in ipairs(doc.Statement) do
        local a = st.Action
        if type(a) == "string" then a = { a } end
        for _, x in ipairs(a) do fn(x, id, st) end
      end
    end
  end
end

local function read_json(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return json.decode(s)
end

-- the option sets of the matrix
local LB_OPTIONS = {
  none = nil,
  full = { hostedzone = "example.com", certificate = "973c1a2f-e1c6-4f65-8d43-000000000000", internal = true,
    accessLogs = { s3BucketName = "my-logs", s3Prefix = "alb" } },
}
local NETWORKS = {
  managed = {},
  target = { vpcTarget = { vpcId = "vpc-0123", instanceSubnetIds = { "subnet-a", "subnet-b" },
    elbSubnetIds = { "subnet-c", "subnet-d" } } },
  bastion = { cluster = { keyName = "my-key" } },
}

-- ---------------------------------------------------------------------------

describe("the provider x option matrix", function()
  for _, provider in ipairs(PROVIDERS) do
    for _, lbname in ipairs({ "none", "full" }) do
      for _, netname in ipairs({ "managed", "target", "bastion" }) do
        it(string.format("%s, load balancer options %s, %s VPC: every template is clean", provider, lbname, netname),
          function()
            local extra = copy(NETWORKS[netname])
            extra.loadbalancer = copy(LB_OPTIONS[lbname])
            local list = gen(one("acceptance", provider, extra))
            assert.is_true(#list >= 4)
            for _, d in ipairs(list) do
              assert.are.same({}, problems_of(d.template), d.name)
              local t = d.template
              for id, r in pairs(t.Resources) do
                assert.are.equal("string", type(r.Metadata and r.Metadata["lumu:description"]), d.name .. " " .. id)
              end
            end
          end)
      end
    end
  end
end)

describe("stack names and order", function()
  it("creates mu's stacks for an ECS environment, in dependency order", function()
    local list = gen(one("acceptance", "ecs"))
    assert.are.same({ "mu-iam-common", "mu-iam-environment-acceptance", "mu-vpc-acceptance",
      "mu-loadbalancer-acceptance", "mu-environment-acceptance" }, names(list))
    local m = by_name(list)
    assert.are.same({ "mu-iam-common", "mu-iam-environment-acceptance", "mu-vpc-acceptance",
      "mu-loadbalancer-acceptance" }, m["mu-environment-acceptance"].depends)
    assert.are.same({ "mu-iam-common", "mu-vpc-acceptance" }, m["mu-loadbalancer-acceptance"].depends)
    assert.are.equal("vpc", m["mu-vpc-acceptance"].kind)
    assert.are.equal("vpc", m["mu-vpc-acceptance"].tags["mu:type"])
    assert.are.equal("ecs", m["mu-environment-acceptance"].tags["mu:provider"])
    assert.are.equal("acceptance", m["mu-environment-acceptance"].tags["mu:environment"])
  end)

  it("creates iam-common once for several environments and no load balancer on EKS", function()
    local model = { namespace = "mu", environments = { { name = "a", provider = "eks" },
      { name = "b", provider = "eks-fargate" }, { name = "c", provider = "ec2" } } }
    local n = names(gen(model))
    assert.are.same({ "mu-iam-common",
      "mu-iam-environment-a", "mu-vpc-a", "mu-environment-a",
      "mu-iam-environment-b", "mu-vpc-b", "mu-environment-b",
      "mu-iam-environment-c", "mu-vpc-c", "mu-loadbalancer-c", "mu-environment-c" }, n)
  end)

  it("skips every IAM stack with disableIAM and uses ctx.namespace", function()
    local model = one("prod", "ecs")
    model.disableIAM = true
    local list = gen(model, { namespace = "team" })
    assert.are.same({ "team-vpc-prod", "team-loadbalancer-prod", "team-environment-prod" }, names(list))
    assert.are.same({ "team-vpc-prod", "team-loadbalancer-prod" }, list[3].depends)
    assert.are.equal("team", list[3].parameters.Namespace)
  end)

  it("filters by kind and by environment name", function()
    local model = { environments = { { name = "a" }, { name = "b" } } }
    assert.are.same({ "mu-vpc-a", "mu-vpc-b" }, names(assert(vpc.stacks(model))))
    assert.are.same({ "mu-loadbalancer-a", "mu-loadbalancer-b" }, names(assert(lb.stacks(model))))
    assert.are.same({ "mu-environment-a", "mu-environment-b" }, names(assert(cluster.stacks(model))))
    assert.are.same({ "mu-iam-common", "mu-iam-environment-a", "mu-iam-environment-b" },
      names(assert(iam.stacks(model))))
    assert.are.same({ "mu-iam-common", "mu-iam-environment-B", "mu-vpc-B", "mu-loadbalancer-B",
      "mu-environment-B" }, names(gen({ environments = { { name = "a" }, { name = "B" } } }, nil,
      { environments = { "b" } })))
  end)

  it("returns nothing for a model without environments", function()
    assert.are.same({}, gen({}))
    assert.are.same({}, gen({ environments = {} }))
  end)
end)

describe("the VPC stack", function()
  local d = by_name(gen(one("acceptance")))["mu-vpc-acceptance"]
  local t = d.template

  it("keeps mu's CIDR parameters with their defaults and does not pass them", function()
    for name, default in pairs(vpc.DEFAULT_CIDRS) do
      assert.are.equal(default, t.Parameters[name].Default, name)
      assert.is_nil(d.parameters[name])
    end
    assert.are.equal("10.0.0.0/16", vpc.DEFAULT_CIDRS.VpcCidrBlock)
    assert.are.same({ Ref = "ElbSubnetAZ2CidrBlock" }, t.Resources.ElbSubnetAZ2.Properties.CidrBlock)
    assert.are.same({ ["Fn::Sub"] = "${AWS::StackName}-VpcId" }, t.Outputs.VpcId.Export.Name)
  end)

  it("changes the subnets when a templates: override changes the parameter defaults (seed vpc-cidr)", function()
    local model = assert(config.load(SEEDS .. "/vpc-cidr/mu.yml"))
    local dd = by_name(gen(model))["mu-vpc-acceptance"]
    local ov = config.overrides_for(model, "mu-vpc-acceptance")
    assert.are.equal(1, #ov.templates)
    for _, frag in ipairs(ov.templates) do merge(dd.template, frag) end
    assert.are.same({}, problems_of(dd.template))
    assert.are.equal("10.200.0.0/16", resolve(dd, dd.template.Resources.VPC.Properties.CidrBlock))
    assert.are.equal("10.200.1.0/24", resolve(dd, dd.template.Resources.ElbSubnetAZ2.Properties.CidrBlock))
    -- not overridden in the seed: mu's default stays
    assert.are.equal("10.0.100.0/24", resolve(dd, dd.template.Resources.InstanceSubnetAZ1.Properties.CidrBlock))
  end)

  it("changes the subnets when a parameters: override sets a CIDR", function()
    local dd = by_name(gen(one("acceptance")))["mu-vpc-acceptance"]
    dd.parameters.InstanceSubnetAZ1CidrBlock = "10.9.100.0/24"
    assert.are.equal("10.9.100.0/24", resolve(dd, dd.template.Resources.InstanceSubnetAZ1.Properties.CidrBlock))
    assert.are.equal("10.0.101.0/24", resolve(dd, dd.template.Resources.InstanceSubnetAZ2.Properties.CidrBlock))
  end)

  it("uses the third AZ only when AZCount is not 2 (ctx.az_count sets it)", function()
    assert.is_nil(d.parameters.AZCount)
    assert.are.equal("3", t.Parameters.AZCount.Default)
    local d2 = by_name(gen(one("acceptance"), { az_count = 2 }))["mu-vpc-acceptance"]
    assert.are.equal("2", d2.parameters.AZCount)
    assert.are.equal("HasElbSubnetAZ3", t.Resources.ElbSubnetAZ3.Condition)
    assert.are.equal("HasInstanceSubnetAZ3", t.Resources.InstanceSubnetAZ3.Condition)
    assert.are.equal("HasElbSubnetAZ2", t.Resources.ElbSubnetAZ2.Condition)
    assert.matches("AZCount", json.encode(t.Conditions.HasElbSubnetAZ3), 1, true)
  end)

  it("has an internet gateway, one NAT gateway with its EIP, routes and network ACLs", function()
    local count = {}
    for _, r in pairs(t.Resources) do count[r.Type] = (count[r.Type] or 0) + 1 end
    assert.are.equal(1, count["AWS::EC2::InternetGateway"])
    assert.are.equal(1, count["AWS::EC2::NatGateway"])
    assert.are.equal(1, count["AWS::EC2::EIP"])
    assert.are.equal(3, count["AWS::EC2::RouteTable"])
    assert.are.equal(3, count["AWS::EC2::Route"])
    assert.are.equal(3, count["AWS::EC2::NetworkAcl"])
    assert.are.equal(7, count["AWS::EC2::Subnet"])
    assert.are.same({ Ref = "NatAZ1" }, t.Resources.InstanceDefaultRoute.Properties.NatGatewayId)
    assert.are.equal("IsPublicElb", t.Resources.ElbDefaultRoute.Condition)
  end)

  it("creates the bastion only with cluster.keyName", function()
    assert.is_nil(t.Resources.BastionHost)
    assert.is_nil(t.Parameters.BastionKeyName)
    assert.is_nil(t.Outputs.BastionHost)
    local db = by_name(gen(one("acceptance", "ecs", { cluster = { keyName = "ops" } })))["mu-vpc-acceptance"]
    local b = db.template
    assert.are.equal("AWS::EC2::Instance", b.Resources.BastionHost.Type)
    assert.are.equal("ops", db.parameters.BastionKeyName)
    assert.are.equal("AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", b.Parameters.BastionImageId.Type)
    assert.are.equal("t3.nano", b.Parameters.BastionInstanceType.Default)
    assert.are.same({ Ref = "NatSubnetAZ1" }, b.Resources.BastionHost.Properties.NetworkInterfaces[1].SubnetId)
    assert.are.same({ Ref = "SshAllow" }, b.Resources.BastionSshIngress.Properties.CidrIp)
    assert.is_table(b.Outputs.BastionHost)
  end)

  it("passes the internal flag, tenancy and the EKS cluster name for subnet tags", function()
    local m = by_name(gen(one("k", "eks", { loadbalancer = { internal = true },
      cluster = { instanceTenancy = "dedicated", sshAllow = "10.1.0.0/16" } })))
    local p = m["mu-vpc-k"].parameters
    assert.are.equal("true", p.ElbInternal)
    assert.are.equal("dedicated", p.InstanceTenancy)
    assert.are.equal("10.1.0.0/16", p.SshAllow)
    assert.are.equal("mu-environment-k", p.EKSClusterName)
    assert.is_nil(by_name(gen(one("k", "ecs")))["mu-vpc-k"].parameters.EKSClusterName)
  end)
end)

describe("vpcTarget", function()
  it("creates the target pass-through stack instead of a VPC", function()
    local list = gen(one("example", "ecs", copy(NETWORKS.target)))
    local m = by_name(list)
    assert.is_nil(m["mu-vpc-example"])
    local d = m["mu-target-example"]
    assert.are.equal("target", d.kind)
    assert.are.same({ Namespace = "mu", EnvironmentName = "example", VpcId = "vpc-0123",
      InstanceSubnetIds = "subnet-a,subnet-b", ElbSubnetIds = "subnet-c,subnet-d" }, d.parameters)
    assert.are.equal("CommaDelimitedList", d.template.Parameters.ElbSubnetIds.Type)
    assert.are.equal("AWS::CloudFormation::WaitConditionHandle", d.template.Resources.WaitHandle.Type)
    assert.are.equal("mu-target-example-VpcId", m["mu-loadbalancer-example"].parameters.VpcId)
    assert.are.equal("mu-target-example-ElbSubnetIds", m["mu-loadbalancer-example"].parameters.ElbSubnetIds)
    assert.are.equal("mu-target-example-InstanceSubnetIds", m["mu-environment-example"].parameters.InstanceSubnetIds)
    assert.are.same({ "mu-iam-common", "mu-target-example" }, m["mu-loadbalancer-example"].depends)
    assert.is_table(target.template(environment.settings(one("example", "ecs", copy(NETWORKS.target)), 1)))
  end)

  it("creates no network stack when vpcTarget.environment names another environment", function()
    local model = { environments = {
      { name = "dev", vpcTarget = { environment = "shared" } },
      { name = "shared", provider = "ecs" },
    } }
    local list = gen(model)
    local n = names(list)
    assert.are.same({ "mu-iam-common", "mu-iam-environment-shared", "mu-vpc-shared", "mu-loadbalancer-shared",
      "mu-environment-shared", "mu-iam-environment-dev", "mu-loadbalancer-dev", "mu-environment-dev" }, n)
    local m = by_name(list)
    assert.are.equal("mu-vpc-shared-VpcId", m["mu-environment-dev"].parameters.VpcId)
    assert.are.same({ "mu-iam-common", "mu-vpc-shared" }, m["mu-loadbalancer-dev"].depends)
  end)

  it("follows the other environment's own vpcTarget and another namespace", function()
    local model = { environments = {
      { name = "a", vpcTarget = { vpcId = "vpc-1", instanceSubnetIds = { "s1" }, elbSubnetIds = { "s2" } } },
      { name = "b", vpcTarget = { environment = "A" } },
      { name = "c", vpcTarget = { environment = "x", namespace = "other" } },
    } }
    local m = by_name(gen(model))
    assert.are.equal("mu-target-a-VpcId", m["mu-environment-b"].parameters.VpcId)
    assert.are.equal("other-vpc-x-VpcId", m["mu-environment-c"].parameters.VpcId)
    assert.are.same({ "mu-iam-common" }, m["mu-loadbalancer-c"].depends)
  end)

  it("reports cycles and missing subnets as errors naming the key", function()
    local list, err = environment.stacks({ environments = {
      { name = "a", vpcTarget = { environment = "b" } }, { name = "b", vpcTarget = { environment = "a" } } } })
    assert.is_nil(list)
    assert.matches("environments%[1%]%.vpcTarget%.environment: .*cycle", err)
    list, err = environment.stacks(one("a", "ecs", { vpcTarget = { vpcId = "vpc-1", elbSubnetIds = { "s" } } }))
    assert.is_nil(list)
    assert.are.equal("environments[1].vpcTarget.instanceSubnetIds: vpcTarget.vpcId needs the subnets for the "
      .. "instances", err)
    list, err = environment.stacks(one("a", "ec2", { vpcTarget = { vpcId = "vpc-1", instanceSubnetIds = { "s" } } }))
    assert.is_nil(list)
    assert.matches("elbSubnetIds", err)
    -- EKS has no load balancer stack: instance subnets are enough
    assert.is_table(gen(one("a", "eks", { vpcTarget = { vpcId = "vpc-1", instanceSubnetIds = { "s" } } })))
  end)
end)

describe("the load balancer stack", function()
  local function lbstack(opts, provider)
    return by_name(gen(one("acceptance", provider or "ecs", { loadbalancer = opts })))["mu-loadbalancer-acceptance"]
  end

  it("builds the certificate ARN from an ACM id and accepts a full ARN", function()
    local d = lbstack({ certificate = "973c1a2f-e1c6-4f65-8d43-0000000000" })
    local l = d.template.Resources.ElbHttpsListener.Properties
    assert.are.equal("973c1a2f-e1c6-4f65-8d43-0000000000", d.parameters.ElbCert)
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:acm:${AWS::Region}:${AWS::AccountId}:certificate/${ElbCert}" },
      l.Certificates[1].CertificateArn)
    assert.are.equal("ELBSecurityPolicy-TLS13-1-2-2021-06", l.SslPolicy)
    assert.are.equal("HTTPS", l.Protocol)
    local arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
    local d2 = lbstack({ certificate = arn })
    assert.are.same({ Ref = "ElbCert" }, d2.template.Resources.ElbHttpsListener.Properties.Certificates[1].CertificateArn)
    assert.are.equal(arn, d2.parameters.ElbCert)
  end)

  it("redirects HTTP to HTTPS with 301 when a certificate is set, else answers 404", function()
    local a = lbstack({ certificate = "id" }).template
    local redirect = a.Resources.ElbHttpListener.Properties.DefaultActions[1]
    assert.are.equal("redirect", redirect.Type)
    assert.are.equal("HTTP_301", redirect.RedirectConfig.StatusCode)
    assert.are.equal("HTTPS", redirect.RedirectConfig.Protocol)
    assert.is_table(a.Outputs.ElbHttpsListenerArn)
    assert.is_table(a.Resources.ElbHttpsIngress)
    local b = lbstack(nil).template
    assert.are.equal("fixed-response", b.Resources.ElbHttpListener.Properties.DefaultActions[1].Type)
    assert.is_nil(b.Resources.ElbHttpsListener)
    assert.is_nil(b.Outputs.ElbHttpsListenerArn)
    assert.is_nil(b.Resources.ElbHttpsIngress)
  end)

  it("makes the scheme internal from loadbalancer.internal", function()
    local d = lbstack({ internal = true })
    assert.are.equal("true", d.parameters.ElbInternal)
    assert.are.same({ ["Fn::If"] = { "IsElbInternal", "internal", "internet-facing" } },
      d.template.Resources.Elb.Properties.Scheme)
    assert.are.equal("false", lbstack(nil).parameters.ElbInternal)
  end)

  it("creates DNS records <name>.<zone> and *.<name>.<zone> only with a hosted zone (seed dns)", function()
    local model = assert(config.load(SEEDS .. "/dns/mu.yml"))
    local m = by_name(gen(model))
    local a = m["mu-loadbalancer-example-default"]
    assert.are.equal("casey.elasticoperations.com", a.parameters.ElbDomainName)
    assert.are.equal("example-default", a.parameters.ElbHostName)
    assert.are.equal("foo", m["mu-loadbalancer-example-override"].parameters.ElbHostName)
    local rs = a.template.Resources.ElbDns.Properties
    assert.are.same({ ["Fn::Sub"] = "${ElbDomainName}." }, rs.HostedZoneName)
    assert.are.equal(2, #rs.RecordSets)
    assert.are.same({ ["Fn::Sub"] = "*.${ElbHostName}.${ElbDomainName}." }, rs.RecordSets[2].Name["Fn::If"][2])
    assert.are.same({ "Elb", "DNSName" }, rs.RecordSets[1].AliasTarget.DNSName["Fn::GetAtt"])
    assert.are.same({ ["Fn::Sub"] = "http://${ElbHostName}.${ElbDomainName}" }, a.template.Outputs.BaseUrl.Value["Fn::If"][2])
    local plain = lbstack(nil).template
    assert.is_nil(plain.Resources.ElbDns)
    assert.are.same({ ["Fn::Sub"] = "http://${Elb.DNSName}" }, plain.Outputs.BaseUrl.Value)
  end)

  it("creates an encrypted, private, TLS-only access-log bucket by default", function()
    local d = lbstack(nil)
    local r = d.template.Resources
    local b = r.ElbAccessLogsBucket.Properties
    assert.are.equal("AES256", b.BucketEncryption.ServerSideEncryptionConfiguration[1].ServerSideEncryptionByDefault.SSEAlgorithm)
    assert.are.same({ BlockPublicAcls = true, BlockPublicPolicy = true, IgnorePublicAcls = true,
      RestrictPublicBuckets = true }, b.PublicAccessBlockConfiguration)
    assert.are.equal("Retain", r.ElbAccessLogsBucket.DeletionPolicy)
    local st = r.ElbAccessLogsBucketPolicy.Properties.PolicyDocument.Statement
    assert.are.equal("Deny", st[1].Effect)
    assert.are.same({ Bool = { ["aws:SecureTransport"] = "false" } }, st[1].Condition)
    assert.are.equal("logdelivery.elasticloadbalancing.amazonaws.com", st[2].Principal["Fn::If"][3].Service)
    assert.are.equal("127311923021", d.template.Mappings.ElbAccounts["us-east-1"].Account)
    assert.are.equal("ElbAccessLogsBucketPolicy", r.Elb.DependsOn)
    local attrs = r.Elb.Properties.LoadBalancerAttributes
    assert.are.same({ Key = "access_logs.s3.enabled", Value = "true" }, attrs[1])
    assert.are.same({ Ref = "ElbAccessLogsBucket" }, attrs[2].Value)
    assert.are.equal("access-logs", d.parameters.ElbAccessLogsS3Prefix)
  end)

  it("logs to accessLogs.s3BucketName when given, without creating a bucket", function()
    local d = lbstack({ accessLogs = { s3BucketName = "corp-logs", s3Prefix = "alb" } })
    local r = d.template.Resources
    assert.is_nil(r.ElbAccessLogsBucket)
    assert.is_nil(r.ElbAccessLogsBucketPolicy)
    assert.is_nil(d.template.Mappings)
    assert.are.same({ Ref = "ElbAccessLogsS3BucketName" }, r.Elb.Properties.LoadBalancerAttributes[2].Value)
    assert.are.equal("corp-logs", d.parameters.ElbAccessLogsS3BucketName)
    assert.are.equal("alb", d.parameters.ElbAccessLogsS3Prefix)
  end)

  it("has separate ingress/egress rules, a Cloud Map namespace and mu's outputs", function()
    local d = lbstack(nil)
    local r = d.template.Resources
    assert.is_nil(r.ElbSG.Properties.SecurityGroupIngress)
    assert.are.equal("AWS::EC2::SecurityGroupIngress", r.ELB2HostRuleIngress.Type)
    assert.are.equal("AWS::EC2::SecurityGroupEgress", r.Elb2HostRuleEgress.Type)
    assert.are.equal("AWS::ServiceDiscovery::PrivateDnsNamespace", r.ServiceDiscoveryNamespace.Type)
    assert.are.equal("acceptance.mu.local", d.parameters.ServiceDiscoveryName)
    local o = d.template.Outputs
    for _, k in ipairs({ "BaseUrl", "VpcId", "ElbInstanceSecurityGroup", "ElbHttpListenerArn",
      "ServiceDiscoveryId", "ServiceDiscoveryName" }) do assert.is_table(o[k], k) end
    assert.are.same({ ["Fn::Sub"] = "${AWS::StackName}-InstanceSecurityGroup" }, o.ElbInstanceSecurityGroup.Export.Name)
    assert.are.equal("mu-vpc-acceptance-VpcId", d.parameters.VpcId)
    assert.are.equal("mu-vpc-acceptance-ElbSubnetIds", d.parameters.ElbSubnetIds)
  end)

  it("takes the discovery name from the config (seed discovery)", function()
    local model = assert(config.load(SEEDS .. "/discovery/mu.yml"))
    local m = by_name(gen(model))
    assert.are.equal("acceptance.mu.local", m["mu-loadbalancer-acceptance"].parameters.ServiceDiscoveryName)
    local d = lbstack(nil)
    assert.are.equal("acceptance.mu.local", d.parameters.ServiceDiscoveryName)
    local model2 = one("x", "ecs", { discovery = { name = "svc.internal" } })
    assert.are.equal("svc.internal", by_name(gen(model2))["mu-loadbalancer-x"].parameters.ServiceDiscoveryName)
  end)
end)

describe("the environment stack", function()
  local function envstack(provider, extra, ctx)
    return by_name(gen(one("acceptance", provider, extra), ctx))["mu-environment-acceptance"]
  end

  it("ecs: launch template (no launch configuration), ASG, reservation scaling, ECS AMI from SSM", function()
    local d = envstack("ecs")
    local r = d.template.Resources
    assert.are.equal("AWS::EC2::LaunchTemplate", r.ContainerInstances.Type)
    for _, res in pairs(r) do assert.are_not.equal("AWS::AutoScaling::LaunchConfiguration", res.Type) end
    assert.are.same({ Ref = "ContainerInstances" }, r.EcsAutoScalingGroup.Properties.LaunchTemplate.LaunchTemplateId)
    assert.are.equal("TargetTrackingScaling", r.CPUReservationPolicy.Properties.PolicyType)
    assert.are.equal("MemoryReservation",
      r.MemoryReservationPolicy.Properties.TargetTrackingConfiguration.CustomizedMetricSpecification.MetricName)
    local img = d.template.Parameters.ImageId
    assert.are.equal("AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", img.Type)
    assert.are.equal("/aws/service/ecs/optimized-ami/amazon-linux-2/recommended/image_id", img.Default)
    assert.is_nil(d.parameters.ImageId)
    assert.are.equal("required", r.ContainerInstances.Properties.LaunchTemplateData.MetadataOptions.HttpTokens)
    assert.are.equal("EC2", d.parameters.LaunchType)
    assert.are.equal("mu-loadbalancer-acceptance-InstanceSecurityGroup", d.parameters.ElbSecurityGroup)
    assert.matches("ECS_CLUSTER=${EcsCluster}",
      r.ContainerInstances.Properties.LaunchTemplateData.UserData["Fn::Base64"]["Fn::Sub"], 1, true)
  end)

  it("ecs: an explicit imageId becomes a plain String parameter", function()
    local d = envstack("ecs", { cluster = { imageId = "ami-12345678" } })
    assert.are.equal("String", d.template.Parameters.ImageId.Type)
    assert.are.equal("ami-12345678", d.parameters.ImageId)
  end)

  it("ecs: the instance profile defaults to the IAM stack's, roles.instance overrides it", function()
    local d = envstack("ecs")
    local arn = d.template.Resources.ContainerInstances.Properties.LaunchTemplateData.IamInstanceProfile.Arn
    assert.are.same({ ["Fn::If"] = { "HasEC2InstanceProfileArn", { Ref = "EC2InstanceProfileArn" }, {
      ["Fn::Sub"] = "arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/"
        .. "${Namespace}-environment-${EnvironmentName}-instance-${AWS::Region}" } } }, arn)
    assert.is_nil(d.parameters.EC2InstanceProfileArn)
    local p = "arn:aws:iam::123456789012:instance-profile/mine"
    assert.are.equal(p, envstack("ecs", { roles = { instance = p } }).parameters.EC2InstanceProfileArn)
  end)

  it("ecs: passes the cluster settings as mu's parameters (seed basic)", function()
    local model = assert(config.load(SEEDS .. "/basic/mu.yml"))
    local m = by_name(gen(model))
    assert.are.equal("2", m["mu-environment-acceptance"].parameters.MaxSize)
    assert.are.equal("5", m["mu-environment-production"].parameters.MaxSize)
    assert.are.equal("t3.micro", m["mu-environment-production"].parameters.InstanceType)
    assert.are.equal("75", m["mu-environment-production"].parameters.TargetCPUReservation)
  end)

  it("ecs-fargate: cluster with FARGATE/FARGATE_SPOT and no instances (seed compute-fargate)", function()
    local model = assert(config.load(SEEDS .. "/compute-fargate/mu.yml"))
    local d = by_name(gen(model))["mu-environment-production"]
    local r = d.template.Resources
    assert.are.same({ "FARGATE", "FARGATE_SPOT" }, r.EcsCluster.Properties.CapacityProviders)
    assert.is_nil(r.EcsAutoScalingGroup)
    assert.is_nil(r.ContainerInstances)
    assert.are.equal("FARGATE", d.parameters.LaunchType)
    for _, k in ipairs({ "EcsCluster", "InstanceSecurityGroup", "LaunchType", "VpcId", "InstanceSubnetIds" }) do
      assert.is_table(d.template.Outputs[k].Export, k)
    end
  end)

  it("ec2: security group plus the instance settings echoed as outputs", function()
    local d = envstack("ec2", { cluster = { keyName = "k", httpProxy = "proxy:3128" } })
    local o = d.template.Outputs
    for _, k in ipairs({ "KeyName", "InstanceType", "SshAllow", "ImageId", "ImageOsType", "HttpProxy",
      "ElbSecurityGroup", "InstanceSecurityGroup", "VpcId", "InstanceSubnetIds" }) do
      assert.is_table(o[k], k)
    end
    assert.is_nil(o.EcsCluster)
    assert.are.equal("proxy:3128", d.parameters.HttpProxy)
    assert.are.equal("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
      d.template.Parameters.ImageId.Default)
    assert.are.equal("HasKeyName", d.template.Resources.SshIngress.Condition)
  end)

  it("eks: EKS cluster and a managed node group on a launch template", function()
    local d = envstack("eks")
    local r = d.template.Resources
    assert.are.equal("AWS::EKS::Cluster", r.EksCluster.Type)
    assert.are.equal("AWS::EKS::Nodegroup", r.EksNodegroup.Type)
    assert.are.equal("AL2023_x86_64_STANDARD", r.EksNodegroup.Properties.AmiType)
    assert.are.same({ Ref = "NodeLaunchTemplate" }, r.EksNodegroup.Properties.LaunchTemplate.Id)
    assert.are.same({ Ref = "DesiredCapacity" }, r.EksNodegroup.Properties.ScalingConfig.DesiredSize)
    assert.are.equal("t2.medium", d.parameters.InstanceType)
    assert.are.equal("3", d.parameters.MaxSize)
    assert.is_nil(r.FargateProfile)
    assert.is_table(d.template.Outputs.EksClusterName)
    assert.are.same({ "mu-iam-common", "mu-iam-environment-acceptance", "mu-vpc-acceptance" }, d.depends)
    local custom = envstack("eks", { cluster = { imageId = "ami-0abc" } }).template
    assert.are.equal("CUSTOM", custom.Resources.EksNodegroup.Properties.AmiType)
    assert.matches("kind: NodeConfig",
      custom.Resources.NodeLaunchTemplate.Properties.LaunchTemplateData.UserData["Fn::Base64"]["Fn::Sub"], 1, true)
  end)

  it("eks-fargate: a Fargate profile with a pod execution role and CoreDNS on Fargate", function()
    local m = by_name(gen(one("acceptance", "eks-fargate")))
    local r = m["mu-environment-acceptance"].template.Resources
    local fp = r.FargateProfile.Properties
    assert.are.equal("AWS::EKS::FargateProfile", r.FargateProfile.Type)
    assert.are.same({ { Namespace = "default" }, { Namespace = "kube-system" }, { Namespace = "mu-ingress" },
      { Namespace = "mu-service-*" } }, fp.Selectors)
    assert.are.same({ "HasEksPodExecutionRoleArn", { Ref = "EksPodExecutionRoleArn" },
      { ["Fn::Sub"] = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"
        .. "${Namespace}-environment-${EnvironmentName}-eks-pods-${AWS::Region}" } }, fp.PodExecutionRoleArn["Fn::If"])
    assert.are.equal("coredns", r.CoreDnsAddon.Properties.AddonName)
    assert.are.same({ computeType = "Fargate" }, json.decode(r.CoreDnsAddon.Properties.ConfigurationValues))
    assert.is_nil(r.EksNodegroup)
    local roles = m["mu-iam-environment-acceptance"].template.Resources
    assert.are.equal("eks-fargate-pods.amazonaws.com",
      roles.EksPodExecutionRole.Properties.AssumeRolePolicyDocument.Statement[1].Principal.Service[1])
    assert.is_table(roles.EksServiceRole)
    assert.is_nil(roles.EC2Role)
    assert.are.equal("FARGATE", m["mu-environment-acceptance"].parameters.LaunchType)
  end)

  it("exports every exported output as <stack>-<Output> (InstanceSecurityGroup of the ELB as mu)", function()
    for _, p in ipairs(PROVIDERS) do
      for _, d in ipairs(gen(one("acceptance", p, { loadbalancer = { certificate = "c" } }))) do
        local seen = 0
        for oname, o in pairs(d.template.Outputs or {}) do
          if o.Export then
            seen = seen + 1
            local want = oname == "ElbInstanceSecurityGroup" and "InstanceSecurityGroup" or oname
            assert.are.same({ ["Fn::Sub"] = "${AWS::StackName}-" .. want }, o.Export.Name, d.name .. " " .. oname)
          end
        end
        if d.kind == "vpc" or d.kind == "environment" or d.kind == "loadbalancer" then
          assert.is_true(seen >= 2, d.name)
        end
      end
    end
  end)
end)

describe("the IAM stacks", function()
  local list = gen(one("acceptance", "ecs", { roles = { eksService = "arn:aws:iam::123456789012:role/eks" } }))
  local common_t = list[1].template

  it("creates mu's CloudFormation role with scoped action lists", function()
    assert.are.equal("mu-iam-common", list[1].name)
    assert.are.same({ Namespace = "mu" }, list[1].parameters)
    local role = common_t.Resources.CloudFormationRole.Properties
    assert.are.same({ ["Fn::Sub"] = "${Namespace}-cloudformation-common-${AWS::Region}" }, role.RoleName)
    assert.is_table(common_t.Outputs.CloudFormationRoleArn)
    local n = 0
    for _, r in pairs(common_t.Resources) do
      if r.Type == "AWS::IAM::ManagedPolicy" then
        n = n + 1
        local size = #json.encode(r.Properties.PolicyDocument)
        assert.is_true(size < 6144, "policy too large: " .. size)
      end
    end
    assert.is_true(n >= 5)
  end)

  it("uses no wildcard actions in any role policy", function()
    for _, p in ipairs(PROVIDERS) do
      for _, d in ipairs(gen(one("acceptance", p))) do
        if d.kind == "iam" then
          each_policy_action(d.template, function(action, id)
            assert.is_nil(action:find("*", 1, true), d.name .. " " .. id .. " " .. action)
            assert.matches("^[%w%-]+:%w+$", action)
          end)
        end
      end
    end
  end)

  it("lets CloudFormation pass only lumu's roles and the roles named in mu.yml", function()
    local found
    for _, r in pairs(common_t.Resources) do
      for _, st in ipairs(r.Type == "AWS::IAM::ManagedPolicy" and r.Properties.PolicyDocument.Statement or {}) do
        local a = type(st.Action) == "table" and st.Action or { st.Action }
        for _, x in ipairs(a) do if x == "iam:PassRole" then found = st end end
      end
    end
    assert.is_table(found)
    local res = json.encode(found.Resource)
    assert.matches("role/${Namespace}-environment-*", res, 1, true)
    assert.matches("role/${Namespace}-iam-*", res, 1, true)
    assert.matches("arn:aws:iam::123456789012:role/eks", res, 1, true)
  end)

  it("covers what CloudFormation calls for every resource type the environment stacks use", function()
    local granted = {}
    each_policy_action(common_t, function(a) granted[a:lower()] = true end)
    -- services and features lumu's templates do not use
    local IGNORE_SERVICES = { ["managed-fleets"] = true, ["vpc-lattice"] = true, s3tables = true, firehose = true,
      ["resource-groups"] = true, ["cognito-idp"] = true, kms = true }
    local types = {}
    for _, p in ipairs(PROVIDERS) do
      for _, o in ipairs({ LB_OPTIONS.full, {} }) do
        for _, d in ipairs(gen(one("a", p, { loadbalancer = o, cluster = { keyName = "k" } }))) do
          if d.kind ~= "iam" then
            for _, r in pairs(d.template.Resources) do types[r.Type] = true end
          end
        end
      end
    end
    local missing = {}
    for typ in pairs(types) do
      local s = read_json(SHARED .. "/cfn/schemas/" .. typ:lower():gsub("::", "-") .. ".json")
      -- read handlers always run; for create/delete the first (main) action must be granted
      local need = {}
      for _, x in ipairs(((s.handlers or {}).read or {}).permissions or {}) do need[#need + 1] = x end
      for _, h in ipairs({ "create", "delete" }) do
        local perms = ((s.handlers or {})[h] or {}).permissions
        if perms and perms[1] then need[#need + 1] = perms[1] end
      end
      for _, x in ipairs(need) do
        local lx = x:lower()
        local svc = lx:match("^([^:]+):")
        local ok = granted[lx] or IGNORE_SERVICES[svc]
        if not ok and lx:find("*", 1, true) then
          local prefix = lx:gsub("%*.*$", "")
          for g in pairs(granted) do if g:sub(1, #prefix) == prefix then ok = true break end end
        end
        if not ok then missing[#missing + 1] = typ .. " " .. x end
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("lets CloudFormation read the users' own database password parameter and secret", function()
    local model = assert(config.load_string([[
environments:
  - name: acceptance
  - name: production
services:
  - name: api
    database:
      name: appdb
      masterPasswordSSMParam: /prod/db/password
  - name: worker
    database:
      name: jobs
      masterPasswordSecretArn: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf
]]))
    local t = gen(model)[1].template
    local st = t.Resources.PassRolePolicy.Properties.PolicyDocument.Statement
    local text = json.encode(st)
    assert.matches("parameter/prod/db/password", text, 1, true)
    assert.matches('"secretsmanager:GetSecretValue"', text, 1, true)
    assert.matches("secret:db-AbCdEf", text, 1, true)
    -- without a database: no such statements
    assert.is_nil(json.encode(common_t.Resources.PassRolePolicy.Properties.PolicyDocument):find("GetSecretValue", 1, true))
  end)

  it("covers the resource types of the service, schedule, app and database stacks", function()
    local granted = {}
    each_policy_action(common_t, function(a) granted[a:lower()] = true end)
    local missing = {}
    for _, typ in ipairs({ "AWS::ECS::Service", "AWS::ECS::TaskDefinition", "AWS::ServiceDiscovery::Service",
      "AWS::ElasticLoadBalancingV2::TargetGroup", "AWS::ElasticLoadBalancingV2::ListenerRule",
      "AWS::ApplicationAutoScaling::ScalableTarget", "AWS::ApplicationAutoScaling::ScalingPolicy",
      "AWS::Events::Rule", "AWS::CodeDeploy::Application", "AWS::CodeDeploy::DeploymentGroup",
      "AWS::RDS::DBSubnetGroup", "AWS::RDS::DBCluster", "AWS::RDS::DBInstance", "AWS::DynamoDB::Table" }) do
      local s = read_json(SHARED .. "/cfn/schemas/" .. typ:lower():gsub("::", "-") .. ".json")
      local need = {}
      for _, x in ipairs(((s.handlers or {}).read or {}).permissions or {}) do need[#need + 1] = x end
      for _, h in ipairs({ "create", "delete" }) do
        local perms = ((s.handlers or {})[h] or {}).permissions
        if perms and perms[1] then need[#need + 1] = perms[1] end
      end
      for _, x in ipairs(need) do
        if not granted[x:lower()] then missing[#missing + 1] = typ .. " " .. x end
      end
    end
    assert.are.same({}, missing)
  end)

  it("gives each provider the environment roles it needs", function()
    local function roles(p)
      local m = by_name(gen(one("acceptance", p)))
      local out = {}
      for id, r in pairs(m["mu-iam-environment-acceptance"].template.Resources) do out[#out + 1] = id end
      table.sort(out)
      return out
    end
    assert.are.same({ "EC2InstanceProfile", "EC2Role" }, roles("ecs"))
    assert.are.same({ "EC2Role", "EksServiceRole" }, roles("eks"))
    assert.are.same({ "EksPodExecutionRole", "EksServiceRole" }, roles("eks-fargate"))
    assert.are.same({ "WaitHandle" }, roles("ec2"))
    assert.are.same({ "WaitHandle" }, roles("ecs-fargate"))
    local t = by_name(gen(one("acceptance", "ecs")))["mu-iam-environment-acceptance"]
    assert.are.same({ Namespace = "mu", EnvironmentName = "acceptance", Provider = "ecs" }, t.parameters)
    assert.are.same({ ["Fn::Sub"] = "${Namespace}-environment-${EnvironmentName}-instance-${AWS::Region}" },
      t.template.Resources.EC2Role.Properties.RoleName)
  end)
end)

describe("errors, hostile input and determinism", function()
  it("reports bad models as nil, message naming the key", function()
    local list, err = environment.stacks(one("a", "kubernetes"))
    assert.is_nil(list)
    assert.matches("^environments%[1%]%.provider: unknown provider 'kubernetes'", err)
    list, err = environment.stacks({ environments = { { provider = "ecs" } } })
    assert.is_nil(list)
    assert.matches("^environments%[1%]%.name:", err)
    list, err = environment.stacks(one("bad name!"))
    assert.is_nil(list)
    assert.matches("cannot be part of a stack name", err)
    list, err = environment.stacks(one(string.rep("x", 40), "eks"))
    assert.is_nil(list)
    assert.are.equal("environments[1].name: the IAM role name 'mu-environment-" .. string.rep("x", 40)
      .. "-eks-service-<region>' would be longer than 64 characters; use a shorter environment name or namespace", err)
    -- no fixed-name role needed: fine
    assert.is_table(gen(one(string.rep("x", 40), "ecs-fargate")))
    assert.is_table(gen(one(string.rep("x", 40), "ecs", { roles = {
      instance = "arn:aws:iam::123456789012:instance-profile/p" } })))
    list, err = environment.stacks(one("a"), { namespace = "9bad" })
    assert.is_nil(list)
    assert.matches("^namespace:", err)
    list, err = environment.stacks({ environments = { { name = "a" }, { name = "A" } } })
    assert.is_nil(list)
    assert.are.equal("environments[2].name: duplicate environment name 'A' (also environments[1])", err)
    list, err = environment.stacks({ environments = { { name = "a", vpcTarget = { environment = 42 } } } })
    assert.are.equal("mu-vpc-42-VpcId", list[#list].parameters.VpcId)
    list, err = environment.stacks({ environments = { "nope" } })
    assert.is_nil(list)
    assert.matches("environments%[1%]", err)
  end)

  it("warns through ctx.diagnostics about settings it cannot apply", function()
    local diags = {}
    local model = { environments = {
      { name = "k", provider = "eks", cluster = { httpProxy = "proxy:3128" },
        roles = { instance = "arn:aws:iam::123456789012:instance-profile/p" } },
      { name = "w", provider = "ecs", cluster = { osType = "windows" } } } }
    gen(model, { diagnostics = diags })
    assert.are.equal(3, #diags)
    assert.are.same({ "environments[1].cluster.httpProxy", "environments[1].roles.instance",
      "environments[2].cluster.osType" }, { diags[1].key, diags[2].key, diags[3].key })
    assert.are.equal("warning", diags[1].severity)
    assert.matches("extraUserData", diags[1].message)
    -- and nothing without a list to fill
    assert.is_table(gen(model))
  end)

  it("raises on bad arguments", function()
    assert.error_matches(function() environment.stacks(nil) end, "bad argument #1 to 'stacks'")
    assert.error_matches(function() environment.stacks({}, 5) end, "bad argument #2 to 'stacks'")
    assert.error_matches(function() environment.stacks({}, { az_count = 1 }) end, "az_count")
    assert.error_matches(function() environment.stacks({}, { namespace = {} }) end, "ctx.namespace")
    assert.error_matches(function() environment.stacks({ environments = "x" }) end, "environments must be a list")
    assert.error_matches(function() environment.stacks({}, {}, 3) end, "bad argument #3")
  end)

  it("ignores unknown and deeply nested keys and handles many environments", function()
    local deep = {}
    local cur = deep
    for _ = 1, 300 do cur.x = {}; cur = cur.x end
    local envs = {}
    for i = 1, 24 do envs[i] = { name = "env" .. i, provider = PROVIDERS[(i - 1) % 5 + 1], junk = deep,
      cluster = { unknown = deep } } end
    local list = gen({ environments = envs })
    local seen = {}
    for _, d in ipairs(list) do
      assert.is_nil(seen[d.name])
      seen[d.name] = true
    end
    assert.are.equal(1 + 24 * 3 + 15, #list)
  end)

  it("is deterministic: same model, same tables and JSON", function()
    local function model()
      return { namespace = "mu", environments = {
        { name = "a", provider = "ecs", loadbalancer = copy(LB_OPTIONS.full), cluster = { keyName = "k" } },
        { name = "b", provider = "eks-fargate" } } }
    end
    local a = gen(model(), { az_count = 3 })
    local b = gen(model(), { az_count = 3 })
    assert.are.same(a, b)
    for i = 1, #a do
      assert.are.equal(json.encode(a[i].template), json.encode(b[i].template))
      assert.are.equal(json.encode(a[i].parameters, { sort_keys = true }), json.encode(b[i].parameters, { sort_keys = true }))
    end
  end)

  it("generates clean stacks for every seed example that has environments", function()
    for _, seed in ipairs({ "basic", "compute-fargate", "discovery", "dns", "https", "vpc-cidr" }) do
      local model = assert(config.load(SEEDS .. "/" .. seed .. "/mu.yml"))
      local list = gen(model)
      assert.is_true(#list >= 5, seed)
      for _, d in ipairs(list) do
        assert.are.same({}, problems_of(d.template), seed .. " " .. d.name)
      end
    end
  end)
end)
