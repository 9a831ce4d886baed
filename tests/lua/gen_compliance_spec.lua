-- Compliance as code: compliance{...} / compliance: -> the model (defaults,
-- checks) -> `<ns>-compliance-<env>` stacks (lumu.gen.compliance) in the
-- synth plan right after the environment stacks: AWS Config rules (the
-- default set, managed rules with parameters, custom rules from a Lambda
-- ARN), the recorder and delivery channel (a created encrypted/private/
-- TLS-only bucket, or a given one).  Every template passes cfn.check, the
-- registry schemas (LUMU_SHARED/cfn) and lumu nag.  The bad inputs are in
-- tests/fixtures/config/bad/compliance-*.yml.
local config = require "lumu.config"
local synth = require "lumu.synth"
local cfn = require "lumu.cfn"
local nag = require "lumu.nag"
local fs = require "lumu.fs"
local compliance = require "lumu.gen.compliance"

local SHARED = os.getenv("LUMU_SHARED") or "../shared"
local checker = assert(cfn.schema.open(SHARED .. "/cfn"))

local function load(text, name)
  name = name or "mu.yml"
  local m, p = config.load_string(text, { filename = name, dir = ".", dirname = "app", getenv = function() end })
  if not m then error(config.format_error(p[1]), 2) end
  return m, p
end

local function plan(text, opts, name)
  local m = load(text, name)
  opts = opts or {}
  opts.schemas = checker
  local stacks, report = synth.plan(m, opts)
  local by = {}
  for _, d in ipairs(stacks) do by[d.name] = d end
  return stacks, report, by, m
end

local ENVS = "environments:\n  - name: acceptance\n  - name: production\n"

local function of_type(d, typ)
  local out = {}
  for id, r in pairs(d.template.Resources) do
    if r.Type == typ then out[#out + 1] = id end
  end
  table.sort(out)
  return out
end

local function rule_names(d)
  local out = {}
  for _, id in ipairs(of_type(d, "AWS::Config::ConfigRule")) do
    out[#out + 1] = d.template.Resources[id].Properties.ConfigRuleName
  end
  table.sort(out)
  return out
end

local function clean(d)
  assert.are.same({}, d.problems, d.name)
  local f, w = nag.counts(nag.scan(d.template))
  assert.are.equal(0, f, d.name)
  assert.are.equal(0, w, d.name)
end

describe("compliance in the model", function()
  it("is nil without the key, and the defaults when given empty or null", function()
    assert.is_nil(load(ENVS).compliance)
    for _, text in ipairs({ ENVS .. "compliance: {}\n", ENVS .. "compliance:\n" }) do
      local c = load(text).compliance
      assert.is_table(c, text)
      assert.are.same({ "acceptance", "production" }, c.environments)
      assert.is_true(c.defaults)
      assert.are.same({ "acceptance" }, c.recorder.environments)
      assert.is_true(c.recorder.allSupported)
      assert.is_true(c.recorder.includeGlobalResourceTypes)
      assert.are.equal("TwentyFour_Hours", c.delivery.frequency)
      assert.are.same({}, c.rules)
    end
  end)

  it("names rules from the identifier or the Lambda function", function()
    local c = load(ENVS .. "compliance:\n  rules:\n    - identifier: REQUIRED_TAGS\n"
      .. "    - lambdaArn: arn:aws:lambda:eu-west-1:123456789012:function:tag-checker:live\n").compliance
    assert.are.equal("required-tags", c.rules[1].name)
    assert.are.equal("tag-checker", c.rules[2].name)
  end)

  it("lumu.lua compliance{} gives the same model as mu.yml, several calls merged", function()
    local lua = [[
environment { name = "acceptance" }
environment { name = "production" }
compliance { exclude = { "restricted-ssh" } }
compliance { rules = { { identifier = "REQUIRED_TAGS", parameters = { tag1Key = "owner" } } } }
compliance { rules = { { name = "mine", lambdaArn = "arn:aws:lambda:us-east-1:123456789012:function:f" } } }
]]
    local yml = ENVS .. [[
compliance:
  exclude: [restricted-ssh]
  rules:
    - identifier: REQUIRED_TAGS
      parameters: {tag1Key: owner}
    - name: mine
      lambdaArn: arn:aws:lambda:us-east-1:123456789012:function:f
]]
    local _, _, a = plan(lua, {}, "lumu.lua")
    local _, _, b = plan(yml)
    for _, name in ipairs({ "mu-compliance-acceptance", "mu-compliance-production" }) do
      assert.are.equal(b[name].body, a[name].body, name)
    end
    assert.are.equal(2, #load(lua, "lumu.lua").compliance.rules)
  end)

  it("exclude with defaults: false is a warning", function()
    local _, warnings = load(ENVS .. "compliance:\n  defaults: false\n  exclude: [restricted-ssh]\n")
    assert.are.equal(1, #warnings)
    assert.matches("compliance.exclude: warning: ignored: defaults is false", config.format_error(warnings[1]), 1, true)
  end)
end)

describe("the compliance stacks", function()
  it("the default set: a recorder stack for the first environment, rules everywhere, after the environments",
    function()
      local stacks, report, by = plan(ENVS .. "compliance: {}\n")
      assert.are.same({}, report.errors)
      local acc, prod = by["mu-compliance-acceptance"], by["mu-compliance-production"]
      assert.are.equal("compliance", acc.kind)
      assert.are.equal("acceptance", acc.env)
      assert.are.same({ Namespace = "mu", EnvironmentName = "acceptance" }, acc.parameters)
      assert.are.equal("compliance", acc.tags["mu:type"])
      -- placed after every environment stack, before the rest
      local pos, last_env = {}, 0
      for i, d in ipairs(stacks) do
        pos[d.name] = i
        if d.kind == "environment" then last_env = math.max(last_env, i) end
      end
      assert.is_true(pos["mu-compliance-acceptance"] > last_env)
      assert.is_true(pos["mu-compliance-production"] > pos["mu-compliance-acceptance"])
      assert.are.same({ "mu-compliance-acceptance" }, prod.depends)
      assert.are.same({}, acc.depends)
      -- recorder, channel, bucket and role only in the recorder stack
      for _, typ in ipairs({ "AWS::Config::ConfigurationRecorder", "AWS::Config::DeliveryChannel",
        "AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::IAM::Role" }) do
        assert.are.equal(1, #of_type(acc, typ), typ)
        assert.are.equal(0, #of_type(prod, typ), typ)
      end
      assert.are.same({ "CAPABILITY_IAM" }, acc.capabilities)
      assert.is_nil(prod.capabilities)
      -- 8 environment rules each, the 3 account rules once
      assert.are.equal(11, #rule_names(acc))
      assert.are.equal(8, #rule_names(prod))
      assert.contains(rule_names(acc), "mu-root-account-mfa-enabled")
      assert.contains(rule_names(acc), "mu-acceptance-restricted-ssh")
      assert.contains(rule_names(prod), "mu-production-encrypted-volumes")
      clean(acc)
      clean(prod)
    end)

  it("the default rules cover volumes, SSH, S3 public access, RDS encryption, root MFA and CloudTrail", function()
    local ids = {}
    for _, r in ipairs(compliance.DEFAULT_RULES) do ids[r.identifier] = r end
    for _, id in ipairs({ "ENCRYPTED_VOLUMES", "INCOMING_SSH_DISABLED", "S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED",
      "RDS_STORAGE_ENCRYPTED", "ROOT_ACCOUNT_MFA_ENABLED", "CLOUD_TRAIL_ENABLED" }) do
      assert.is_table(ids[id], id)
    end
    assert.is_true(ids.ROOT_ACCOUNT_MFA_ENABLED.account)
    assert.are.equal("TwentyFour_Hours", ids.CLOUD_TRAIL_ENABLED.frequency)
  end)

  it("a managed rule: source, scope, parameters, periodic frequency, after the recorder", function()
    local _, _, by = plan(ENVS .. [[
compliance:
  defaults: false
  rules:
    - identifier: REQUIRED_TAGS
      parameters: {tag1Key: owner, tag2Key: 7}
      resourceTypes: [AWS::S3::Bucket, AWS::RDS::DBInstance]
    - identifier: ACCESS_KEYS_ROTATED
      parameters: {maxAccessKeyAge: "90"}
      frequency: Twelve_Hours
]])
    local r = by["mu-compliance-acceptance"].template.Resources
    local p = r.RuleRequiredTags.Properties
    assert.are.same({ Owner = "AWS", SourceIdentifier = "REQUIRED_TAGS" }, p.Source)
    assert.are.same({ tag1Key = "owner", tag2Key = "7" }, p.InputParameters)
    assert.are.same({ ComplianceResourceTypes = { "AWS::S3::Bucket", "AWS::RDS::DBInstance" } }, p.Scope)
    assert.are.equal("mu-acceptance-required-tags", p.ConfigRuleName)
    assert.are.same({ "ConfigRecorder", "DeliveryChannel" }, r.RuleRequiredTags.DependsOn)
    assert.are.equal("Twelve_Hours", r.RuleAccessKeysRotated.Properties.MaximumExecutionFrequency)
    assert.is_nil(r.RuleAccessKeysRotated.Properties.Scope)
    -- production: no recorder to wait for in its own stack
    assert.is_nil(by["mu-compliance-production"].template.Resources.RuleRequiredTags.DependsOn)
    clean(by["mu-compliance-acceptance"])
  end)

  it("a custom rule: CUSTOM_LAMBDA on changes, or scheduled; AWS Config may invoke it (this account)", function()
    local _, _, by = plan(ENVS .. [[
compliance:
  defaults: false
  rules:
    - name: on-change
      lambdaArn: arn:aws:lambda:us-east-1:123456789012:function:check
    - name: nightly
      lambdaArn: arn:aws:lambda:us-east-1:123456789012:function:check
      frequency: TwentyFour_Hours
]])
    local r = by["mu-compliance-production"].template.Resources
    local s = r.RuleOnChange.Properties.Source
    assert.are.equal("CUSTOM_LAMBDA", s.Owner)
    assert.are.equal("arn:aws:lambda:us-east-1:123456789012:function:check", s.SourceIdentifier)
    assert.are.same({ "ConfigurationItemChangeNotification", "OversizedConfigurationItemChangeNotification" },
      { s.SourceDetails[1].MessageType, s.SourceDetails[2].MessageType })
    local n = r.RuleNightly.Properties.Source.SourceDetails
    assert.are.same({ { EventSource = "aws.config", MessageType = "ScheduledNotification",
      MaximumExecutionFrequency = "TwentyFour_Hours" } }, n)
    local perm = r.RuleOnChangePermission
    assert.are.equal("AWS::Lambda::Permission", perm.Type)
    assert.are.equal("config.amazonaws.com", perm.Properties.Principal)
    assert.are.same({ Ref = "AWS::AccountId" }, perm.Properties.SourceAccount)
    assert.are.same({ "RuleOnChangePermission" }, r.RuleOnChange.DependsOn)
    clean(by["mu-compliance-production"])
    clean(by["mu-compliance-acceptance"])
  end)

  it("a user rule replaces the default with its identifier or name; exclude drops defaults", function()
    local _, _, by = plan(ENVS .. [[
compliance:
  exclude: [ENCRYPTED_VOLUMES, cloudtrail-enabled]
  rules:
    - identifier: INCOMING_SSH_DISABLED
      description: no SSH from anywhere, ours
]])
    local names = rule_names(by["mu-compliance-acceptance"])
    assert.is_nil(table.concat(names, " "):find("encrypted-volumes", 1, true))
    assert.is_nil(table.concat(names, " "):find("cloudtrail", 1, true))
    assert.are.equal(9, #names)
    local ssh = by["mu-compliance-acceptance"].template.Resources.RuleIncomingSshDisabled
    assert.are.equal("no SSH from anywhere, ours", ssh.Properties.Description)
    -- it keeps the default's scope
    assert.are.same({ "AWS::EC2::SecurityGroup" }, ssh.Properties.Scope.ComplianceResourceTypes)
    assert.is_nil(by["mu-compliance-acceptance"].template.Resources.RuleRestrictedSsh)
  end)

  it("the created bucket: encrypted, private, TLS-only, versioned, retained; Config of this account only", function()
    local _, _, by = plan(ENVS .. "compliance:\n  delivery:\n    prefix: config\n")
    local r = by["mu-compliance-acceptance"].template.Resources
    local b = r.ComplianceBucket
    assert.are.equal("AES256",
      b.Properties.BucketEncryption.ServerSideEncryptionConfiguration[1].ServerSideEncryptionByDefault.SSEAlgorithm)
    assert.is_true(b.Properties.PublicAccessBlockConfiguration.RestrictPublicBuckets)
    assert.are.equal("Enabled", b.Properties.VersioningConfiguration.Status)
    assert.are.equal("Retain", b.DeletionPolicy)
    local st = r.ComplianceBucketPolicy.Properties.PolicyDocument.Statement
    assert.are.equal("Deny", st[1].Effect)
    assert.are.same({ Bool = { ["aws:SecureTransport"] = "false" } }, st[1].Condition)
    for i = 2, 4 do
      assert.are.same({ StringEquals = { ["AWS:SourceAccount"] = { Ref = "AWS::AccountId" } } }, st[i].Condition)
    end
    assert.are.same({ ["Fn::Join"] = { "", { { ["Fn::GetAtt"] = { "ComplianceBucket", "Arn" } },
      "/config/AWSLogs/", { Ref = "AWS::AccountId" }, "/Config/*" } } }, st[4].Resource)
    local ch = r.DeliveryChannel
    assert.are.equal("config", ch.Properties.S3KeyPrefix)
    assert.are.same({ Ref = "ComplianceBucket" }, ch.Properties.S3BucketName)
    assert.are.same({ "ConfigRecorder", "ComplianceBucketPolicy" }, ch.DependsOn)
    clean(by["mu-compliance-acceptance"])
  end)

  it("a given bucket, role and SNS topic: nothing created for them, no IAM capability", function()
    local _, _, by = plan(ENVS .. [[
compliance:
  recorder:
    roleArn: arn:aws:iam::123456789012:role/config
  delivery:
    bucket: acme-config-history
    snsTopicArn: arn:aws:sns:us-east-1:123456789012:config
    frequency: Six_Hours
]])
    local d = by["mu-compliance-acceptance"]
    assert.are.same({}, of_type(d, "AWS::S3::Bucket"))
    assert.are.same({}, of_type(d, "AWS::IAM::Role"))
    assert.is_nil(d.capabilities)
    local p = d.template.Resources.DeliveryChannel.Properties
    assert.are.equal("acme-config-history", p.S3BucketName)
    assert.are.equal("arn:aws:sns:us-east-1:123456789012:config", p.SnsTopicARN)
    assert.are.equal("Six_Hours", p.ConfigSnapshotDeliveryProperties.DeliveryFrequency)
    assert.are.equal("arn:aws:iam::123456789012:role/config",
      d.template.Resources.ConfigRecorder.Properties.RoleARN)
    clean(d)
  end)

  it("a created role with a given bucket writes only there; chosen resource types are recorded", function()
    local _, _, by = plan(ENVS .. [[
compliance:
  recorder:
    allSupported: false
    resourceTypes: [AWS::EC2::SecurityGroup, AWS::S3::Bucket]
  delivery:
    bucket: acme-config-history
]])
    local r = by["mu-compliance-acceptance"].template.Resources
    assert.are.same({ AllSupported = false, IncludeGlobalResourceTypes = false,
      ResourceTypes = { "AWS::EC2::SecurityGroup", "AWS::S3::Bucket" } }, r.ConfigRecorder.Properties.RecordingGroup)
    local st = r.ConfigRole.Properties.Policies[1].PolicyDocument.Statement
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:s3:::acme-config-history" }, st[2].Resource)
    clean(by["mu-compliance-acceptance"])
  end)

  it("recorders in several environments (other accounts), or none (the account already records)", function()
    local _, _, by = plan(ENVS .. "compliance:\n  recorder:\n    environments: [acceptance, production]\n")
    assert.are.equal(1, #of_type(by["mu-compliance-production"], "AWS::Config::ConfigurationRecorder"))
    assert.are.same({}, by["mu-compliance-production"].depends)
    assert.are.equal(8, #rule_names(by["mu-compliance-production"])) -- account rules once, in acceptance
    local _, _, by2 = plan(ENVS .. "compliance:\n  recorder:\n    environments: []\n")
    for _, n in ipairs({ "mu-compliance-acceptance", "mu-compliance-production" }) do
      assert.are.same({}, of_type(by2[n], "AWS::Config::ConfigurationRecorder"))
      assert.are.same({}, by2[n].depends)
      assert.is_nil(by2[n].template.Resources.RuleEncryptedVolumes.DependsOn)
      clean(by2[n])
    end
    assert.are.equal(11, #rule_names(by2["mu-compliance-acceptance"]))
  end)

  it("compliance.environments and --env select the stacks", function()
    local _, _, by = plan(ENVS .. "compliance:\n  environments: [production]\n")
    assert.is_nil(by["mu-compliance-acceptance"])
    assert.are.equal(1, #of_type(by["mu-compliance-production"], "AWS::Config::ConfigurationRecorder"))
    assert.are.equal(11, #rule_names(by["mu-compliance-production"]))
    local stacks = plan(ENVS .. "compliance: {}\n", { environments = { "production" } })
    local names = {}
    for _, d in ipairs(stacks) do if d.kind == "compliance" then names[#names + 1] = d.name end end
    assert.are.same({ "mu-compliance-production" }, names)
  end)

  it("defaults: false without rules: the recorder stack only", function()
    local _, _, by = plan(ENVS .. "compliance:\n  defaults: false\n")
    assert.are.same({}, rule_names(by["mu-compliance-acceptance"]))
    assert.is_nil(by["mu-compliance-production"])
    assert.is_nil(by["mu-compliance-acceptance"].template.Outputs.ConfigRuleNames)
  end)

  it("a rule name that would exceed 128 characters is a generation error, located at compliance", function()
    local c = { environments = { string.rep("e", 63) }, defaults = false, exclude = {},
      rules = { { name = string.rep("n", 64), identifier = "REQUIRED_TAGS", parameters = {}, resourceTypes = {} } },
      recorder = { environments = {}, allSupported = true }, delivery = {} }
    local stacks, err = compliance.stacks({ environments = {}, services = {}, compliance = c },
      { namespace = string.rep("a", 10) })
    assert.is_nil(stacks)
    assert.matches("^compliance%.rules: rule name 'n+' makes a Config rule name longer than 128", err)
    -- synth.plan reports a generator error at the compliance record
    local fake = { stacks = function() return nil, "compliance.rules: boom" end }
    local _, report = plan(ENVS .. "\n\ncompliance: {}\n", { generators = { compliance = fake } })
    assert.are.equal(1, #report.errors)
    assert.are.equal("compliance.rules", report.errors[1].key)
    assert.are.equal("boom", report.errors[1].message)
    assert.are.equal("mu.yml:6:1", report.errors[1].where)
  end)

  it("no compliance: no stack; compliance.stacks of a bare model is empty", function()
    local stacks = plan(ENVS)
    for _, d in ipairs(stacks) do assert.are_not.equal("compliance", d.kind) end
    assert.are.same({}, compliance.stacks({ environments = {}, services = {} }, {}))
  end)

  it("the namespace names the rules", function()
    local _, _, by = plan("namespace: acme\n" .. ENVS .. "compliance: {}\n")
    assert.contains(rule_names(by["acme-compliance-acceptance"]), "acme-acceptance-rds-storage-encrypted")
    assert.contains(rule_names(by["acme-compliance-acceptance"]), "acme-root-account-mfa-enabled")
  end)

  it("lumu synth writes them and lumu nag finds them clean", function()
    local dir = assert(fs.tmpdir("lumu-compliance-"))
    finally(function() fs.rmtree(dir) end)
    assert(fs.write(dir .. "/mu.yml", ENVS .. "compliance: {}\n"))
    local buf = {}
    local sink = { write = function(self, ...) for _, s in ipairs({ ... }) do buf[#buf + 1] = s end return self end }
    local rc = require("lumu.cli.synth").run({ stdout = sink, stderr = sink, git = false }, {},
      { config = dir .. "/mu.yml", output = dir .. "/out", schemas = SHARED .. "/cfn" })
    assert.are.equal(0, rc, table.concat(buf))
    assert.is_true(fs.isfile(dir .. "/out/mu-compliance-acceptance.template.json"))
    local r = nag.scan((nag.load_file(dir .. "/out/mu-compliance-acceptance.template.json")))
    assert.are.equal(0, (nag.counts(r)))
    assert.matches("mu%-compliance%-production%s+compliance", table.concat(buf))
  end)
end)
