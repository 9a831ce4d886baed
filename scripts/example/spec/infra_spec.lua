-- Infrastructure specs of the bundled example, test-first: they read the
-- templates `lumu synth` would write (no AWS).  Run them from the repository
-- root with
--   lumu test -c scripts/example/lumu.lua
-- (spec/ next to the config).  The tests tagged #live check what is deployed
-- (security groups, listeners, the health endpoint) and run only with
--   lumu test -c scripts/example/lumu.lua --live
local infra = require "lumu.test.infra"

describe("the sample-service platform", function()
  local p = infra.project()

  describe("security groups", function()
    it("will not allow all traffic on 22", function()
      for _, sg in ipairs(p:resources{ type = "AWS::EC2::SecurityGroup" }) do
        assert.security_group(sg).does_not_allow{ port = 22, cidr = "0.0.0.0/0" }
      end
    end)

    it("let the internet reach the load balancers on HTTP only", function()
      for _, env in ipairs({ "acceptance", "production" }) do
        local elb = p:resource("loadbalancer-" .. env, "ElbSG")
        assert.security_group(elb).allows{ port = 80, cidr = "0.0.0.0/0" }
        assert.security_group(elb).does_not_allow{ port = 8080, cidr = "0.0.0.0/0" }
      end
    end)

    it("keep the container instances private", function()
      local hosts = p:resource("environment-production", "InstanceSecurityGroup")
      assert.security_group(hosts).does_not_allow{ port = 80, cidr = "203.0.113.7" }
      assert.security_group(hosts).allows_egress{ port = 443, cidr = "0.0.0.0/0" }
    end)
  end)

  describe("data", function()
    it("encrypts every database with the service's KMS key", function()
      local clusters = p:resources{ kind = "database", type = "AWS::RDS::DBCluster" }
      assert.are.equal(2, #clusters)
      for _, db in ipairs(clusters) do
        assert.is_true(db:prop("StorageEncrypted"), tostring(db))
        -- resolved across stacks: the key ARN the service IAM stack exports
        assert.are.same({ ["Fn::ImportValue"] = "mu-iam-service-sample-service-" .. db.stack.env .. "-DatabaseKeyArn" },
          db:prop("KmsKeyId"))
      end
    end)

    it("never puts the database password in a template", function()
      for _, db in ipairs(p:resources{ kind = "database", type = "AWS::RDS::DBCluster" }) do
        -- a dynamic reference to the SSM SecureString, resolved by CloudFormation
        assert.matches("^{{resolve:ssm%-secure:", db:prop("MasterUserPassword"))
      end
    end)
  end)

  it("passes lumu nag", function()
    assert.is.nag_clean(p)
  end)

  describe("deployed #live", function()
    local live = p:live()

    it("the production hosts do not allow SSH from anywhere", function()
      local sg = live:security_group{ stack = "mu-environment-production", id = "InstanceSecurityGroup" }
      assert.security_group(sg).does_not_allow{ port = 22, cidr = "0.0.0.0/0" }
    end)

    it("the load balancer's HTTP listener is on port 80", function()
      local l = live:listener{ stack = "mu-loadbalancer-acceptance", id = "ElbHttpListener" }
      assert.listener(l).has_port(80)
    end)

    it("the service answers on its health endpoint", function()
      assert.http(live:health{ stack = "mu-loadbalancer-acceptance", output = "BaseUrl", path = "/" }).is_healthy()
    end)
  end)
end)
