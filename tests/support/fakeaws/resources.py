"""What CloudFormation resources look like: physical ids (what Ref returns),
Fn::GetAtt attributes, create-only properties (replacement), custom-name
properties and the IAM capability rules.  Unknown types get generic but
plausible values (name-RANDOM ids, arn:aws:<service>:... ARNs)."""
import hashlib
import re

# type -> property whose value is the physical id when set (custom names)
NAME_PROPS = {
    "AWS::S3::Bucket": "BucketName", "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName", "AWS::IAM::InstanceProfile":
    "InstanceProfileName", "AWS::IAM::User": "UserName", "AWS::IAM::Group": "GroupName",
    "AWS::ECS::Cluster": "ClusterName", "AWS::ECS::Service": "ServiceName",
    "AWS::ECR::Repository": "RepositoryName", "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "Name",
    "AWS::ElasticLoadBalancingV2::TargetGroup": "Name", "AWS::SSM::Parameter": "Name",
    "AWS::SNS::Topic": "TopicName", "AWS::SQS::Queue": "QueueName",
    "AWS::Lambda::Function": "FunctionName", "AWS::DynamoDB::Table": "TableName",
    "AWS::RDS::DBInstance": "DBInstanceIdentifier", "AWS::RDS::DBCluster": "DBClusterIdentifier",
    "AWS::RDS::DBSubnetGroup": "DBSubnetGroupName", "AWS::SecretsManager::Secret": "Name",
    "AWS::EC2::SecurityGroup": "GroupName", "AWS::KMS::Alias": "AliasName",
    "AWS::AutoScaling::AutoScalingGroup": "AutoScalingGroupName",
    "AWS::ServiceDiscovery::Service": "Name", "AWS::CodeBuild::Project": "Name",
    "AWS::Events::Rule": "Name", "AWS::EC2::LaunchTemplate": "LaunchTemplateName",
}

ALWAYS, COND = "Always", "Conditionally"
CREATE_ONLY = {
    "AWS::S3::Bucket": {"BucketName": ALWAYS, "ObjectLockEnabled": ALWAYS},
    "AWS::IAM::Role": {"RoleName": ALWAYS, "Path": ALWAYS},
    "AWS::IAM::ManagedPolicy": {"ManagedPolicyName": ALWAYS, "Path": ALWAYS},
    "AWS::IAM::InstanceProfile": {"InstanceProfileName": ALWAYS, "Path": ALWAYS},
    "AWS::EC2::VPC": {"CidrBlock": ALWAYS, "InstanceTenancy": COND},
    "AWS::EC2::Subnet": {"VpcId": ALWAYS, "CidrBlock": ALWAYS, "AvailabilityZone": ALWAYS,
                         "AvailabilityZoneId": ALWAYS},
    "AWS::EC2::SecurityGroup": {"GroupName": ALWAYS, "GroupDescription": ALWAYS,
                                "VpcId": ALWAYS},
    "AWS::EC2::NatGateway": {"SubnetId": ALWAYS, "AllocationId": ALWAYS},
    "AWS::EC2::RouteTable": {"VpcId": ALWAYS},
    "AWS::EC2::Route": {"RouteTableId": ALWAYS, "DestinationCidrBlock": ALWAYS},
    "AWS::EC2::Instance": {"ImageId": ALWAYS, "SubnetId": ALWAYS, "AvailabilityZone": ALWAYS,
                           "KeyName": ALWAYS, "InstanceType": COND, "UserData": COND},
    "AWS::ECS::Cluster": {"ClusterName": ALWAYS},
    "AWS::ECS::Service": {"ServiceName": ALWAYS, "Cluster": ALWAYS, "LaunchType": ALWAYS,
                          "Role": ALWAYS, "SchedulingStrategy": ALWAYS},
    "AWS::ECR::Repository": {"RepositoryName": ALWAYS, "EncryptionConfiguration": ALWAYS},
    "AWS::Logs::LogGroup": {"LogGroupName": ALWAYS},
    "AWS::ElasticLoadBalancingV2::LoadBalancer": {"Name": ALWAYS, "Scheme": ALWAYS,
                                                  "Type": ALWAYS},
    "AWS::ElasticLoadBalancingV2::TargetGroup": {"Name": ALWAYS, "Port": ALWAYS,
                                                 "Protocol": ALWAYS, "VpcId": ALWAYS,
                                                 "TargetType": ALWAYS},
    "AWS::ElasticLoadBalancingV2::Listener": {"LoadBalancerArn": ALWAYS},
    "AWS::ElasticLoadBalancingV2::ListenerRule": {"ListenerArn": ALWAYS},
    "AWS::SSM::Parameter": {"Name": ALWAYS},
    "AWS::SNS::Topic": {"TopicName": ALWAYS, "FifoTopic": ALWAYS},
    "AWS::SQS::Queue": {"QueueName": ALWAYS, "FifoQueue": ALWAYS},
    "AWS::Lambda::Function": {"FunctionName": ALWAYS},
    "AWS::DynamoDB::Table": {"TableName": ALWAYS, "KeySchema": ALWAYS,
                             "LocalSecondaryIndexes": ALWAYS},
    "AWS::KMS::Alias": {"AliasName": ALWAYS},
    "AWS::RDS::DBInstance": {"DBInstanceIdentifier": ALWAYS, "DBName": ALWAYS,
                             "MasterUsername": ALWAYS, "StorageEncrypted": ALWAYS,
                             "KmsKeyId": ALWAYS, "DBClusterIdentifier": ALWAYS,
                             "Engine": COND, "AvailabilityZone": COND,
                             "AllocatedStorage": COND},
    "AWS::RDS::DBCluster": {"DBClusterIdentifier": ALWAYS, "Engine": ALWAYS,
                            "DatabaseName": ALWAYS, "MasterUsername": ALWAYS,
                            "KmsKeyId": ALWAYS, "StorageEncrypted": ALWAYS},
    "AWS::RDS::DBSubnetGroup": {"DBSubnetGroupName": ALWAYS},
    "AWS::SecretsManager::Secret": {"Name": ALWAYS},
    "AWS::ServiceDiscovery::PrivateDnsNamespace": {"Name": ALWAYS, "Vpc": ALWAYS},
    "AWS::ServiceDiscovery::Service": {"Name": ALWAYS, "NamespaceId": ALWAYS},
    "AWS::AutoScaling::AutoScalingGroup": {"AutoScalingGroupName": ALWAYS},
}
# every property of these types needs a new resource (immutable resources)
IMMUTABLE = {"AWS::ECS::TaskDefinition"}

NAMED_IAM = {"AWS::IAM::Role": "RoleName", "AWS::IAM::User": "UserName",
             "AWS::IAM::Group": "GroupName", "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
             "AWS::IAM::InstanceProfile": "InstanceProfileName"}
IAM_TYPES = set(NAMED_IAM) | {"AWS::IAM::Policy", "AWS::IAM::AccessKey",
                              "AWS::IAM::UserToGroupAddition"}


def requires_recreation(rtype, prop):
    if rtype in IMMUTABLE:
        return "Never" if prop == "Tags" else ALWAYS
    return CREATE_ONLY.get(rtype, {}).get(prop, "Never")


def _hex(seed, n):
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _generated_name(stack, logical, rand, limit=128, lower=False, sep="-"):
    base = f"{stack}{sep}{logical}"
    room = limit - len(rand) - 1
    name = f"{base[:room]}{sep}{rand}"
    name = re.sub(r"[^A-Za-z0-9-]", "-", name) if sep == "-" else name
    return name.lower() if lower else name


def physical_id(rtype, logical, props, stack, region, account, rand, family_rev=None):
    """Physical id (the value Ref returns) of a new resource."""
    name_prop = NAME_PROPS.get(rtype)
    custom = props.get(name_prop) if name_prop else None
    r13 = rand(13)
    h17 = _hex(r13, 17)
    if rtype == "AWS::S3::Bucket":
        return custom or _generated_name(stack, logical, r13.lower(), 63, lower=True)
    if rtype in ("AWS::ECR::Repository",):
        return custom or _generated_name(stack, logical, r13.lower(), 256, lower=True)
    if rtype == "AWS::IAM::ManagedPolicy":
        path = props.get("Path", "/")
        return f"arn:aws:iam::{account}:policy{path}" + (
            custom or _generated_name(stack, logical, r13, 128))
    if rtype == "AWS::ECS::Service":
        cluster = str(props.get("Cluster") or "default").rsplit("/", 1)[-1]
        name = custom or _generated_name(stack, logical, r13, 255)
        return f"arn:aws:ecs:{region}:{account}:service/{cluster}/{name}"
    if rtype == "AWS::ECS::TaskDefinition":
        fam, rev = family_rev
        return f"arn:aws:ecs:{region}:{account}:task-definition/{fam}:{rev}"
    if rtype == "AWS::SSM::Parameter":
        return custom or f"CFN-{logical}-{r13}"
    if rtype in ("AWS::RDS::DBInstance", "AWS::RDS::DBCluster", "AWS::RDS::DBSubnetGroup"):
        return (custom or _generated_name(stack, logical, r13, 63)).lower()
    if rtype == "AWS::ElasticLoadBalancingV2::LoadBalancer":
        name = custom or _generated_name(stack[:10], logical[:8], r13[:8], 32)
        kind = "net" if props.get("Type") == "network" else "app"
        return f"arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/{kind}/{name}/{h17[:16]}"
    if rtype == "AWS::ElasticLoadBalancingV2::TargetGroup":
        name = custom or _generated_name(stack[:10], logical[:8], r13[:8], 32)
        return f"arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{name}/{h17[:16]}"
    if rtype == "AWS::ElasticLoadBalancingV2::Listener":
        lb = str(props.get("LoadBalancerArn", "")).split("loadbalancer/", 1)[-1] or "app/x/0"
        return f"arn:aws:elasticloadbalancing:{region}:{account}:listener/{lb}/{h17[:16]}"
    if rtype == "AWS::ElasticLoadBalancingV2::ListenerRule":
        ls = str(props.get("ListenerArn", "")).split("listener/", 1)[-1] or "app/x/0/0"
        return f"arn:aws:elasticloadbalancing:{region}:{account}:listener-rule/{ls}/{h17[:16]}"
    if rtype in ("AWS::SNS::Topic",):
        return f"arn:aws:sns:{region}:{account}:" + (custom or _generated_name(stack, logical, r13, 256))
    if rtype == "AWS::SQS::Queue":
        name = custom or _generated_name(stack, logical, r13, 80)
        return f"https://sqs.{region}.amazonaws.com/{account}/{name}"
    if rtype == "AWS::SecretsManager::Secret":
        name = custom or _generated_name(stack, logical, r13, 256)
        return f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-{r13[:6]}"
    if rtype == "AWS::KMS::Key":
        h = _hex(r13, 32)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
    if rtype == "AWS::EC2::EIP":
        n = int(h17[:4], 16)
        return f"203.0.{n % 256}.{(n // 256) % 254 + 1}"
    prefixes = {"AWS::EC2::VPC": "vpc", "AWS::EC2::Subnet": "subnet",
                "AWS::EC2::SecurityGroup": "sg", "AWS::EC2::InternetGateway": "igw",
                "AWS::EC2::NatGateway": "nat", "AWS::EC2::RouteTable": "rtb",
                "AWS::EC2::NetworkAcl": "acl", "AWS::EC2::Instance": "i",
                "AWS::EC2::LaunchTemplate": "lt", "AWS::EC2::VPCEndpoint": "vpce",
                "AWS::EC2::SubnetRouteTableAssociation": "rtbassoc",
                "AWS::EC2::SubnetNetworkAclAssociation": "aclassoc",
                "AWS::EC2::SecurityGroupIngress": "sgr", "AWS::EC2::SecurityGroupEgress": "sgr",
                "AWS::ServiceDiscovery::PrivateDnsNamespace": "ns",
                "AWS::ServiceDiscovery::Service": "srv", "AWS::EC2::NetworkInterface": "eni",
                "AWS::EC2::TransitGateway": "tgw"}
    if rtype in prefixes:
        return f"{prefixes[rtype]}-{h17}"
    if rtype == "AWS::CloudFormation::WaitConditionHandle":
        return (f"https://cloudformation-waitcondition-{region}.s3.amazonaws.com/"
                f"arn%3Aaws%3Acloudformation%3A{region}%3A{account}%3Astack/{stack}/{h17}")
    if rtype == "AWS::CloudFormation::Stack":
        h = _hex(r13, 32)
        return (f"arn:aws:cloudformation:{region}:{account}:stack/{stack}-{logical}-{r13}/"
                f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}")
    if rtype == "AWS::ApplicationAutoScaling::ScalingPolicy" or \
            rtype == "AWS::AutoScaling::ScalingPolicy":
        return (f"arn:aws:autoscaling:{region}:{account}:scalingPolicy:{h17}:resource/"
                f"{logical}:policyName/{stack}-{logical}-{r13}")
    if custom:
        return str(custom)
    return _generated_name(stack, logical, r13, 255)


def attributes(rtype, phys, props, region, account, logical):
    """Fn::GetAtt values known for this resource."""
    h = _hex(phys, 20)
    p = props
    if rtype == "AWS::S3::Bucket":
        return {"Arn": f"arn:aws:s3:::{phys}", "DomainName": f"{phys}.s3.amazonaws.com",
                "RegionalDomainName": f"{phys}.s3.{region}.amazonaws.com",
                "DualStackDomainName": f"{phys}.s3.dualstack.{region}.amazonaws.com",
                "WebsiteURL": f"http://{phys}.s3-website-{region}.amazonaws.com"}
    if rtype == "AWS::IAM::Role":
        return {"Arn": f"arn:aws:iam::{account}:role{p.get('Path', '/')}{phys}",
                "RoleId": "AROA" + h[:17].upper()}
    if rtype == "AWS::IAM::InstanceProfile":
        return {"Arn": f"arn:aws:iam::{account}:instance-profile{p.get('Path', '/')}{phys}"}
    if rtype == "AWS::IAM::User":
        return {"Arn": f"arn:aws:iam::{account}:user{p.get('Path', '/')}{phys}"}
    if rtype == "AWS::IAM::ManagedPolicy":
        return {"PolicyArn": phys}
    if rtype == "AWS::ECS::Cluster":
        return {"Arn": f"arn:aws:ecs:{region}:{account}:cluster/{phys}"}
    if rtype == "AWS::ECS::Service":
        return {"Name": phys.rsplit("/", 1)[-1], "ServiceArn": phys}
    if rtype == "AWS::ECS::TaskDefinition":
        return {"TaskDefinitionArn": phys}
    if rtype == "AWS::ECR::Repository":
        return {"Arn": f"arn:aws:ecr:{region}:{account}:repository/{phys}",
                "RepositoryUri": f"{account}.dkr.ecr.{region}.amazonaws.com/{phys}"}
    if rtype == "AWS::Logs::LogGroup":
        return {"Arn": f"arn:aws:logs:{region}:{account}:log-group:{phys}:*"}
    if rtype == "AWS::EC2::VPC":
        return {"CidrBlock": p.get("CidrBlock", "10.0.0.0/16"), "VpcId": phys,
                "DefaultSecurityGroup": "sg-" + h[:17], "DefaultNetworkAcl": "acl-" + h[:17],
                "CidrBlockAssociations": ["vpc-cidr-assoc-" + h[:17]], "Ipv6CidrBlocks": []}
    if rtype == "AWS::EC2::Subnet":
        return {"AvailabilityZone": p.get("AvailabilityZone") or f"{region}a",
                "VpcId": p.get("VpcId", ""), "CidrBlock": p.get("CidrBlock", ""),
                "SubnetId": phys, "NetworkAclAssociationId": "aclassoc-" + h[:17],
                "Ipv6CidrBlocks": []}
    if rtype == "AWS::EC2::SecurityGroup":
        return {"GroupId": phys, "VpcId": p.get("VpcId", "")}
    if rtype == "AWS::EC2::EIP":
        return {"AllocationId": "eipalloc-" + h[:17], "PublicIp": phys}
    if rtype == "AWS::EC2::LaunchTemplate":
        return {"LatestVersionNumber": "1", "DefaultVersionNumber": "1", "LaunchTemplateId": phys}
    if rtype == "AWS::EC2::Instance":
        n = int(h[:4], 16)
        return {"PrivateIp": f"10.0.{n % 256}.{n // 256 % 254 + 1}",
                "PublicIp": f"198.51.100.{n % 254 + 1}",
                "AvailabilityZone": p.get("AvailabilityZone") or f"{region}a",
                "PrivateDnsName": f"ip-10-0-{n % 256}-{n // 256 % 254 + 1}.ec2.internal",
                "PublicDnsName": f"ec2-198-51-100-{n % 254 + 1}.compute-1.amazonaws.com"}
    if rtype == "AWS::ElasticLoadBalancingV2::LoadBalancer":
        full = phys.split("loadbalancer/", 1)[1]
        name = full.split("/")[1]
        return {"DNSName": f"{name}-{int(h[:8], 16)}.{region}.elb.amazonaws.com",
                "CanonicalHostedZoneID": "Z35SXDOTRQ7X7K", "LoadBalancerFullName": full,
                "LoadBalancerName": name, "LoadBalancerArn": phys,
                "SecurityGroups": list(p.get("SecurityGroups") or [])}
    if rtype == "AWS::ElasticLoadBalancingV2::TargetGroup":
        full = phys.split(":", 5)[5]
        return {"TargetGroupFullName": full, "TargetGroupName": full.split("/")[1],
                "LoadBalancerArns": [], "TargetGroupArn": phys}
    if rtype == "AWS::ElasticLoadBalancingV2::Listener":
        return {"ListenerArn": phys}
    if rtype == "AWS::ElasticLoadBalancingV2::ListenerRule":
        return {"RuleArn": phys}
    if rtype == "AWS::SSM::Parameter":
        return {"Type": p.get("Type", "String"), "Value": p.get("Value", "")}
    if rtype == "AWS::SNS::Topic":
        return {"TopicArn": phys, "TopicName": phys.rsplit(":", 1)[-1]}
    if rtype == "AWS::SQS::Queue":
        name = phys.rsplit("/", 1)[-1]
        return {"Arn": f"arn:aws:sqs:{region}:{account}:{name}", "QueueName": name,
                "QueueUrl": phys}
    if rtype == "AWS::Lambda::Function":
        return {"Arn": f"arn:aws:lambda:{region}:{account}:function:{phys}"}
    if rtype == "AWS::DynamoDB::Table":
        return {"Arn": f"arn:aws:dynamodb:{region}:{account}:table/{phys}",
                "StreamArn": f"arn:aws:dynamodb:{region}:{account}:table/{phys}/stream/"
                             "2020-01-01T00:00:00.000"}
    if rtype == "AWS::KMS::Key":
        return {"Arn": f"arn:aws:kms:{region}:{account}:key/{phys}", "KeyId": phys}
    if rtype == "AWS::RDS::DBInstance":
        port = "3306" if "mysql" in str(p.get("Engine", "")).lower() or \
            "maria" in str(p.get("Engine", "")).lower() else "5432"
        return {"Endpoint.Address": f"{phys}.{h[:12]}.{region}.rds.amazonaws.com",
                "Endpoint.Port": port,
                "DBInstanceArn": f"arn:aws:rds:{region}:{account}:db:{phys}"}
    if rtype == "AWS::RDS::DBCluster":
        port = "3306" if "mysql" in str(p.get("Engine", "")).lower() else "5432"
        return {"Endpoint.Address": f"{phys}.cluster-{h[:12]}.{region}.rds.amazonaws.com",
                "ReadEndpoint.Address": f"{phys}.cluster-ro-{h[:12]}.{region}.rds.amazonaws.com",
                "Endpoint.Port": port, "DBClusterArn": f"arn:aws:rds:{region}:{account}:cluster:{phys}",
                "DBClusterResourceId": "cluster-" + h[:26].upper()}
    if rtype == "AWS::SecretsManager::Secret":
        return {"Id": phys}
    if rtype == "AWS::ServiceDiscovery::PrivateDnsNamespace":
        return {"Id": phys, "Arn": f"arn:aws:servicediscovery:{region}:{account}:namespace/{phys}",
                "HostedZoneId": "Z" + h[:13].upper()}
    if rtype == "AWS::ServiceDiscovery::Service":
        return {"Id": phys, "Arn": f"arn:aws:servicediscovery:{region}:{account}:service/{phys}",
                "Name": p.get("Name", logical)}
    return {}


def generic_attribute(rtype, phys, attr, region, account):
    """A plausible value for an attribute the table does not know."""
    parts = rtype.split("::")
    service = parts[1].lower() if len(parts) > 2 else "custom"
    if attr == "Arn" or attr.endswith("Arn"):
        if phys.startswith("arn:"):
            return phys
        return f"arn:aws:{service}:{region}:{account}:{parts[-1].lower()}/{phys}"
    if attr.startswith("Outputs."):
        return f"{phys.rsplit('/', 2)[-2] if phys.startswith('arn:') else phys}-{attr[8:]}"
    return f"{phys}-{attr}"
