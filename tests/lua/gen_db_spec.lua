-- Specs of the database, DynamoDB and secrets generators (lumu.gen.database,
-- lumu.gen.dynamodb, lumu.gen.secrets): every template passes the builder's
-- checks and the CloudFormation registry schemas in $LUMU_SHARED/cfn (default
-- ../shared from the repo root), across engines x modes x options; no
-- plaintext password anywhere; the seed and mu examples per environment.
-- LUMU_UPDATE_GOLDEN=1 rewrites tests/fixtures/gen/db/*.json.
local cfn = require "lumu.cfn"
local json = require "lumu.json"
local config = require "lumu.config"
local common = require "lumu.gen.common"
local database = require "lumu.gen.database"
local dynamodb = require "lumu.gen.dynamodb"
local secrets = require "lumu.gen.secrets"
local override = require "lumu.gen.override"

local SHARED = os.getenv("LUMU_SHARED")
if not SHARED or SHARED == "" then SHARED = "../shared" end
do
  local f = io.open(SHARED .. "/cfn/types.tsv", "rb")
  if not f then
    error("gen_db_spec: " .. SHARED .. "/cfn/types.tsv not found: set LUMU_SHARED to the shared folder "
      .. "(default ../shared from the repository root)", 0)
  end
  f:close()
end
local FIX = "tests/fixtures/gen/db"
local KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
local checker = assert(cfn.schema.open(SHARED .. "/cfn"))

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function no_env() return nil end

local function load_file(path)
  local m, p = config.load(path, { getenv = no_env })
  if not m then
    local out = {}
    for _, x in ipairs(p) do out[#out + 1] = config.format_error(x) end
    error(path .. " did not load:\n" .. table.concat(out, "\n"))
  end
  return m
end

local function load_yaml(text)
  local m, p = config.load_string(text, { getenv = no_env })
  assert(m, p and p[1] and config.format_error(p[1]))
  return m
end

local function fmt(list)
  local out = {}
  for _, d in ipairs(list or {}) do out[#out + 1] = config.format_error(d) end
  return table.concat(out, "\n")
end

local function errors(list)
  local out = {}
  for _, d in ipairs(list or {}) do
    if d.severity == "error" then out[#out + 1] = d end
  end
  return out
end

local function warnings(list)
  local out = {}
  for _, d in ipairs(list or {}) do
    if d.severity == "warning" then out[#out + 1] = d end
  end
  return out
end

-- every problem of the builder checks and the schema checker (empty = fine)
local function problems(tpl)
  local p = cfn.check(tpl, { schemas = checker })
  return cfn.format(p)
end

local function assert_clean(desc)
  local p = problems(desc.template)
  assert(p == "", desc.name .. ":\n" .. p)
end

-- A hand-built model (as lumu.config makes it, without positions)
local function model(db, opts)
  opts = opts or {}
  local envs = {}
  for _, n in ipairs(opts.envs or { "acceptance", "production" }) do envs[#envs + 1] = { name = n } end
  return {
    namespace = opts.namespace or "mu",
    environments = envs,
    disableIAM = opts.disableIAM or false,
    services = { { name = opts.service or "svc", environment = opts.environment or {}, database = db,
      dynamodb = opts.dynamodb, pipeline = opts.pipeline } },
  }
end

local function only(m, env, ctx)
  local d, diags = database.stack(m, m.services[1], env, ctx)
  assert(d, "no descriptor:\n" .. fmt(diags))
  return d, diags
end

local function res(desc, id) return desc.template.Resources[id] end
local function props(desc, id) return assert(res(desc, id), "no resource " .. id).Properties end

-- ===========================================================================
describe("lumu.gen.secrets", function()
  it("names the managed password parameter as mu", function()
    assert.are.equal("mu-database-shop-acceptance-DatabaseMasterPassword",
      secrets.password_parameter_name("mu", "shop", "acceptance"))
    assert.has_error(function() secrets.password_parameter_name("mu", "", "x") end)
  end)

  it("generates 32 alphanumeric characters from the CSPRNG by default", function()
    local a, b = secrets.generate_password(), secrets.generate_password()
    assert.are.equal(32, #a)
    assert.is_truthy(a:match("^[A-Za-z0-9]+$"))
    assert.are_not.equal(a, b)
    assert.are.equal(64, #secrets.generate_password(64))
  end)

  it("rejects the bytes that would bias the alphabet (rejection sampling)", function()
    -- 248..255 are dropped; 0 -> A, 61 -> 9, 62 -> A, 247 -> 9 (247 % 62 = 61)
    local feed = string.char(255, 0, 248, 61, 62, 247, 25, 26, 51, 52)
    local calls = 0
    local function source(n)
      calls = calls + 1
      local s = feed:rep(math.ceil(n / #feed) + 1)
      return s:sub(1, n)
    end
    assert.are.equal("A9A9Zaz0", secrets.generate_password(8, source))
    assert.is_true(calls >= 1)
  end)

  it("covers the whole alphabet about evenly", function()
    local counts, total = {}, 0
    local pw = secrets.generate_password(4096)
    for c in pw:gmatch(".") do
      counts[c] = (counts[c] or 0) + 1
      total = total + 1
    end
    local n = 0
    for _, v in pairs(counts) do
      n = n + 1
      assert.is_true(v < 200, "a character appears " .. v .. " times in 4096")
    end
    assert.are.equal(62, n)
  end)

  it("raises on a bad length or a broken random source", function()
    assert.error_matches(function() secrets.generate_password(4) end, "8 to 4096")
    assert.error_matches(function() secrets.generate_password(1.5) end, "integer")
    assert.error_matches(function() secrets.generate_password(32, function() return "abc" end) end,
      "instead of")
    assert.error_matches(function() secrets.generate_password(32, function(n) return string.rep("\255", n) end) end,
      "rejected bytes")
    assert.error_matches(function() secrets.generate_password(32, "x") end, "function expected")
  end)

  it("builds ssm-secure and secretsmanager dynamic references", function()
    assert.are.equal("{{resolve:ssm-secure:mu-database-a-b-DatabaseMasterPassword:3}}",
      secrets.ssm_secure_ref("mu-database-a-b-DatabaseMasterPassword", 3))
    assert.are.equal("{{resolve:ssm-secure:/team/db/pw}}", secrets.ssm_secure_ref("/team/db/pw"))
    assert.are.equal("{{resolve:ssm-secure:x:12}}", secrets.ssm_secure_ref("x", "12"))
    local arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
    assert.are.equal("{{resolve:secretsmanager:" .. arn .. ":SecretString:password}}", secrets.secretsmanager_ref(arn))
    assert.are.equal("{{resolve:secretsmanager:db:SecretString:pw:AWSCURRENT}}",
      secrets.secretsmanager_ref("db", "pw", "AWSCURRENT"))
    assert.error_matches(function() secrets.ssm_secure_ref("x", 0) end, "positive integer")
    assert.error_matches(function() secrets.ssm_secure_ref("x", "1a") end, "positive integer")
    assert.error_matches(function() secrets.ssm_secure_ref("has space") end, "letters, digits")
    assert.error_matches(function() secrets.ssm_secure_ref("awsThing") end, "must not start")
    assert.error_matches(function() secrets.secretsmanager_ref("bad id!") end, "secret name or ARN")
    assert.error_matches(function() secrets.secretsmanager_ref("db", "a}b") end, "letters")
  end)

  it("turns parameter names into ARNs in the stack's partition, region and account", function()
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/a-b" },
      secrets.ssm_arn("a-b"))
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/team/pw" },
      secrets.ssm_arn("/team/pw"))
    local arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/team/pw"
    assert.are.equal(arn, secrets.ssm_arn(arn))
    assert.error_matches(function() secrets.ssm_arn("a//b") end, "no empty level")
    assert.error_matches(function() secrets.ssm_arn(string.rep("a", 2049)) end, "2048")
  end)

  it("finds where each kind of password lives", function()
    local s = assert(secrets.password_source("mu", "shop", "dev", { name = "x" }))
    assert.are.equal("ssm", s.store)
    assert.is_true(s.managed)
    assert.are.equal("mu-database-shop-dev-DatabaseMasterPassword", s.name)
    s = assert(secrets.password_source("mu", "shop", "dev", { masterPasswordSSMParam = "/team/pw" }))
    assert.are.equal("/team/pw", s.name)
    assert.is_false(s.managed)
    s = assert(secrets.password_source("mu", "shop", "dev",
      { masterPasswordSecretArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team/db" }))
    assert.are.equal("secretsmanager", s.store)
    assert.are.equal("arn:aws:secretsmanager:us-east-1:123456789012:secret:team/db-??????", s.resource)
    assert.are.equal("arn:aws:secretsmanager:us-east-1:123456789012:secret:team/db:password::", s.value_from)
    s = assert(secrets.password_source("mu", "shop", "dev", { manageMasterUserPassword = true }))
    assert.are.equal("rds", s.store)
    local ok, err, key = secrets.password_source("mu", "shop", "dev",
      { masterPasswordSSMParam = "a", manageMasterUserPassword = true })
    assert.is_nil(ok)
    assert.are.equal("give only one of masterPasswordSSMParam, manageMasterUserPassword", err)
    assert.are.equal("manageMasterUserPassword", key)
    ok, err, key = secrets.password_source("mu", "shop", "dev", { masterPasswordSecretArn = "db-secret" })
    assert.is_nil(ok)
    assert.are.equal("masterPasswordSecretArn", key)
    assert.is_truthy(err:find("Secrets Manager secret ARN", 1, true))
  end)

  it("grants read access to exactly one parameter or secret", function()
    local s = assert(secrets.password_source("mu", "shop", "dev", { name = "x" }))
    local st = secrets.read_statements(s)
    assert.are.same({ "ssm:GetParameters" }, st[1].Action)
    assert.are.same(s.resource, st[1].Resource)
    assert.are.same({ "kms:Decrypt" }, st[2].Action)
    assert.are.same(s.resource, st[2].Condition.StringEquals["kms:EncryptionContext:PARAMETER_ARN"])
    assert.are.same({ ["Fn::Sub"] = "ssm.${AWS::Region}.amazonaws.com" }, st[2].Condition.StringEquals["kms:ViaService"])
    s = assert(secrets.password_source("mu", "shop", "dev",
      { masterPasswordSecretArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db" }))
    st = secrets.read_statements(s)
    assert.are.same({ "secretsmanager:GetSecretValue" }, st[1].Action)
    assert.are.equal("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-??????",
      st[2].Condition.StringLike["kms:EncryptionContext:SecretARN"])
  end)

  it("detects a password in text, raw or JSON-escaped", function()
    assert.is_true(secrets.is_plaintext_free('{"a":"b"}', "Secret1"))
    assert.is_false(secrets.is_plaintext_free('{"a":"xSecret1y"}', "Secret1"))
    assert.is_false(secrets.is_plaintext_free('{"a":"p\\/w"}', "p/w"))
    assert.has_error(function() secrets.is_plaintext_free("x", "") end)
  end)
end)

-- ===========================================================================
describe("lumu.gen.database: the seed example", function()
  local SEED = SHARED .. "/corpus/seed-examples/database/mu.yml"
  local ctx = function() return { environments = { "acceptance", "production" } } end

  it("stops on the placeholder kmsKey, naming the key and its position", function()
    local m = load_file(SEED)
    local ds, diags = database.stacks(m, ctx())
    assert.are.equal(0, #ds)
    local errs = errors(diags)
    assert.are.equal(1, #errs) -- once, not once per environment
    assert.are.equal(SEED .. ":24:7", errs[1].where)
    assert.are.equal("service.database.kmsKey", errs[1].key)
    assert.are.equal(SEED .. ":24:7: service.database.kmsKey: 'arn:aws....' is not a KMS key: use a key ARN "
      .. "(arn:aws:kms:REGION:ACCOUNT:key/KEY-ID), an alias ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME), a key id "
      .. "or alias/NAME", config.format_error(errs[1]))
  end)

  it("points at an environmentConfig override when the bad key is there", function()
    local path = FIX .. "/bad-key-override.yml"
    local m = load_file(path)
    local ds, diags = database.stacks(m, {})
    assert.are.equal(1, #ds) -- acceptance is fine
    assert.are.equal("mu-database-api-acceptance", ds[1].name)
    local errs = errors(diags)
    assert.are.equal(1, #errs)
    assert.are.equal("service.database.environmentConfig.production.kmsKey", errs[1].key)
    assert.are.equal(path .. ":13:9", errs[1].where)
  end)

  it("with a real key: Aurora Serverless v2 in acceptance, a MySQL instance in production", function()
    local m = load_file(SEED)
    m.services[1].database.kmsKey = KEY
    local ds, diags = database.stacks(m, ctx())
    assert.are.equal(0, #errors(diags), fmt(diags))
    assert.are.equal(2, #ds)
    local acpt, prod = ds[1], ds[2]
    assert.are.equal("mu-database-my-service-acceptance", acpt.name)
    assert.are.equal("mu-database-my-service-production", prod.name)
    for _, d in ipairs(ds) do assert_clean(d) end
    -- acceptance: the seed's mysql + serverless becomes aurora-mysql Serverless v2
    local c = props(acpt, "DBCluster")
    assert.are.equal("aurora-mysql", c.Engine)
    assert.is_nil(c.EngineMode)
    assert.are.same({ MinCapacity = { Ref = "ScalingMinCapacity" }, MaxCapacity = { Ref = "ScalingMaxCapacity" },
      SecondsUntilAutoPause = { Ref = "SecondsUntilAutoPause" } }, c.ServerlessV2ScalingConfiguration)
    assert.are.equal("0", acpt.parameters.ScalingMinCapacity) -- auto-pause needs MinCapacity 0
    assert.are.equal("2", acpt.parameters.ScalingMaxCapacity)
    assert.are.equal("300", acpt.parameters.SecondsUntilAutoPause)
    assert.are.equal("db.serverless", props(acpt, "DBInstanceClustered").DBInstanceClass)
    assert.is_true(c.EnableIAMDatabaseAuthentication)
    assert.is_false(c.DeletionProtection)
    -- production: a standalone mysql instance, gp3, protected
    local i = props(prod, "DBInstanceStandalone")
    assert.are.equal("mysql", i.Engine)
    assert.are.equal("gp3", i.StorageType)
    assert.are.equal("100", prod.parameters.DatabaseStorage)
    assert.are.equal("db.t2.medium", prod.parameters.DatabaseInstanceClass)
    assert.is_true(i.DeletionProtection)
    assert.is_nil(prod.template.Parameters.ScalingMinCapacity)
    -- the warnings say what happened, where
    local w = fmt(warnings(diags))
    assert.is_truthy(w:find(SEED .. ":29:11: service.database.environmentConfig.acceptance.engineMode: warning: "
      .. "engine 'mysql' has no serverless mode", 1, true), w)
    assert.is_truthy(w:find("service.database.instanceClass: warning: db.t2.medium is a retired", 1, true), w)
  end)

  it("matches the golden templates", function()
    local m = load_file(SEED)
    m.services[1].database.kmsKey = KEY
    local ds = database.stacks(m, ctx())
    for _, d in ipairs(ds) do
      local text = json.encode({ template = d.template, parameters = d.parameters, tags = d.tags,
        depends = d.depends, password = d.password }, { pretty = true, sort_keys = true }) .. "\n"
      text = text:gsub('"mu:version": "[^"]*"', '"mu:version": "X"')
      local file = FIX .. "/seed-" .. d.env .. ".json"
      if os.getenv("LUMU_UPDATE_GOLDEN") == "1" then
        local f = assert(io.open(file, "wb"))
        f:write(text)
        f:close()
      end
      assert.are.equal(read(file), text)
    end
  end)
end)

-- ===========================================================================
describe("lumu.gen.database: mu's examples", function()
  it("database: the default engine is a provisioned aurora-mysql cluster", function()
    local m = load_file(SHARED .. "/corpus/mu-examples/database/mu.yml")
    local ds, diags = database.stacks(m, { environments = { "dev" } })
    assert.are.equal(0, #errors(diags), fmt(diags))
    assert.are.equal(1, #ds)
    assert_clean(ds[1])
    assert.are.equal("aurora-mysql", props(ds[1], "DBCluster").Engine)
    -- mu's db.t2.small default cannot be created any more: a current class is picked
    assert.are.equal("db.t4g.medium", ds[1].parameters.DatabaseInstanceClass)
  end)

  it("database-serveless: serverless in acceptance only, through environmentConfig", function()
    local m = load_file(SHARED .. "/corpus/mu-examples/database-serveless/mu.yml")
    local ds, diags = database.stacks(m, { environments = { "acceptance", "production" } })
    assert.are.equal(0, #errors(diags), fmt(diags))
    for _, d in ipairs(ds) do assert_clean(d) end
    assert.is_table(props(ds[1], "DBCluster").ServerlessV2ScalingConfiguration)
    assert.is_nil(props(ds[2], "DBCluster").ServerlessV2ScalingConfiguration)
    assert.are.same({ Ref = "DatabaseInstanceClass" }, props(ds[2], "DBInstanceClustered").DBInstanceClass)
    assert.are.equal("db.t4g.medium", ds[2].parameters.DatabaseInstanceClass)
  end)

  it("db-param-group: mu's templates override still lands on DBInstanceStandalone", function()
    local m = load_file(SHARED .. "/corpus/mu-examples/db-param-group/mu.yml")
    local ds, diags = database.stacks(m, {})
    assert.are.equal(0, #errors(diags), fmt(diags))
    assert.are.equal("mu-database-myservice-myenv", ds[1].name)
    local ov = override.apply(ds[1], m)
    for _, d in ipairs(ov) do assert.are_not.equal("error", d.severity, override.format(d)) end
    assert.are.same({ Ref = "LowerCaseTableNamesParameterGroup" },
      props(ds[1], "DBInstanceStandalone").DBParameterGroupName)
    assert_clean(ds[1])
  end)
end)

-- ===========================================================================
describe("lumu.gen.database: engines x modes x options", function()
  local ENGINES = { "aurora", "aurora-mysql", "aurora-postgresql", "mysql", "mariadb", "postgres", "sqlserver-ex",
    "sqlserver-web", "sqlserver-se", "sqlserver-ee", "oracle-se2", "oracle-ee" }
  local PORTS = { aurora = 3306, ["aurora-mysql"] = 3306, ["aurora-postgresql"] = 5432, mysql = 3306,
    mariadb = 3306, postgres = 5432, ["oracle-se2"] = 1521, ["oracle-ee"] = 1521 }
  local function port(e) return PORTS[e] or 1433 end
  local function iam_ok(e) return not e:match("^sqlserver") and not e:match("^oracle") end
  local function serverless_ok(e) return e:match("aurora") or e == "mysql" or e == "mariadb" or e == "postgres" end

  for _, engine in ipairs(ENGINES) do
    it("renders clean templates for " .. engine, function()
      local count = 0
      for _, mode in ipairs({ "provisioned", "serverless" }) do
        for _, opt in ipairs({ "plain", "key", "iam", "noiam", "secret", "rds", "ssmparam", "pause0" }) do
          local db = { name = "app", engine = engine, engineMode = mode, allocatedStorage = 50,
            minSize = 2, maxSize = 8, secondsUntilAutoPause = 300 }
          local mopts = {}
          if opt == "key" then db.kmsKey = KEY end
          if opt == "iam" then db.iamAuthentication = iam_ok(engine) end
          if opt == "noiam" then mopts.disableIAM = true end
          if opt == "secret" then
            db.masterPasswordSecretArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
          end
          if opt == "rds" then db.manageMasterUserPassword = true end
          if opt == "ssmparam" then db.masterPasswordSSMParam = "/team/db/password" end
          if opt == "pause0" then db.secondsUntilAutoPause = 0 end
          local m = model(db, mopts)
          local ds, diags = database.stacks(m, {})
          if mode == "serverless" and not serverless_ok(engine) then
            assert.are.equal(0, #ds)
            assert.is_truthy(fmt(errors(diags)):find("has no serverless mode", 1, true))
          else
            assert.are.equal(0, #errors(diags), engine .. "/" .. mode .. "/" .. opt .. ":\n" .. fmt(diags))
            assert.are.equal(2, #ds)
            for _, d in ipairs(ds) do
              assert_clean(d)
              count = count + 1
              -- exactly the engine's port, only from the instance security group
              local ingress = props(d, "DBSecurityGroup").SecurityGroupIngress
              assert.are.equal(1, #ingress)
              assert.are.equal(port(engine), ingress[1].FromPort)
              assert.are.equal(port(engine), ingress[1].ToPort)
              assert.are.same(common.import("InstanceSecurityGroup"), ingress[1].SourceSecurityGroupId)
              -- encrypted, snapshotted
              local main = res(d, "DBCluster") or res(d, "DBInstanceStandalone")
              assert.is_true(main.Properties.StorageEncrypted)
              assert.are.equal("Snapshot", main.DeletionPolicy)
              assert.are.equal("Snapshot", main.UpdateReplacePolicy)
              assert.is_boolean(main.Properties.DeletionProtection)
            end
          end
        end
      end
      assert.is_true(count >= 16, engine .. ": only " .. count .. " templates")
    end)
  end

  it("maps each engine to its port and resource shape", function()
    for _, engine in ipairs(ENGINES) do
      local d = only(model({ name = "app", engine = engine }), "acceptance")
      assert.are.equal(port(engine), d.database.port)
      assert.are.equal(engine:match("aurora") ~= nil, res(d, "DBCluster") ~= nil)
      assert.are.equal(engine:match("aurora") == nil, res(d, "DBInstanceStandalone") ~= nil)
    end
    assert.are.equal("aurora-mysql", only(model({ name = "a", engine = "AURORA" }), "acceptance").database.engine)
    assert.are.equal("postgres", only(model({ name = "a", engine = "Postgres" }), "acceptance").database.engine)
  end)
end)

-- ===========================================================================
describe("lumu.gen.database: settings", function()
  it("uses the given key, the service IAM stack's DatabaseKey, or alias/aws/rds", function()
    local d = only(model({ name = "a", engine = "mysql", kmsKey = KEY }), "acceptance")
    assert.are.same({ Ref = "DatabaseKeyArn" }, props(d, "DBInstanceStandalone").KmsKeyId)
    assert.are.equal(KEY, d.parameters.DatabaseKeyArn)
    assert.are.same({ "mu-environment-acceptance" }, d.depends)
    d = only(model({ name = "a", engine = "mysql" }), "acceptance")
    assert.are.same(common.import("DatabaseKeyExport"), props(d, "DBInstanceStandalone").KmsKeyId)
    assert.are.equal("mu-iam-service-svc-acceptance-DatabaseKeyArn", d.parameters.DatabaseKeyExport)
    assert.are.same({ "mu-environment-acceptance", "mu-iam-service-svc-acceptance" }, d.depends)
    d = only(model({ name = "a", engine = "mysql" }, { disableIAM = true }), "acceptance")
    assert.are.equal("alias/aws/rds", props(d, "DBInstanceStandalone").KmsKeyId)
  end)

  it("classifies KMS key forms", function()
    assert.are.equal("arn", database.kms_key_kind(KEY))
    assert.are.equal("arn", database.kms_key_kind("arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-"
      .. string.rep("a", 32)))
    assert.are.equal("alias-arn", database.kms_key_kind("arn:aws:kms:us-east-1:123456789012:alias/db"))
    assert.are.equal("id", database.kms_key_kind("1234abcd-12ab-34cd-56ef-1234567890ab"))
    assert.are.equal("alias", database.kms_key_kind("alias/aws/rds"))
    for _, bad in ipairs({ "arn:aws....", "", "alias/", "arn:aws:kms:us-east-1:12345:key/x", "key/1234",
      "arn:aws:kms:us-east-1:123456789012:key/not-a-uuid", "alias/a b", string.rep("a", 5000), 42 }) do
      assert.is_nil(database.kms_key_kind(bad), tostring(bad))
    end
  end)

  it("turns iamAuthentication into EnableIAMDatabaseAuthentication, where the engine has it", function()
    local d = only(model({ name = "a", engine = "postgres", iamAuthentication = true }), "acceptance")
    assert.is_true(props(d, "DBInstanceStandalone").EnableIAMDatabaseAuthentication)
    local ds, diags = database.stacks(model({ name = "a", engine = "sqlserver-se", iamAuthentication = true }), {})
    assert.are.equal(0, #ds)
    assert.are.equal("sqlserver-se does not support IAM database authentication", errors(diags)[1].message)
    assert.are.equal("service.database.iamAuthentication", errors(diags)[1].key)
  end)

  it("refuses unknown engines and modes with the list of engines", function()
    local _, diags = database.stacks(model({ name = "a", engine = "mongodb" }), {})
    assert.is_truthy(errors(diags)[1].message:find("unknown engine 'mongodb' (engines: aurora, aurora-mysql", 1, true))
    _, diags = database.stacks(model({ name = "a", engine = "mysql", engineMode = "global" }), {})
    assert.are.equal("expected provisioned or serverless, got 'global'", errors(diags)[1].message)
    _, diags = database.stacks(model({ name = "a", engine = "\0mysql\255" }), {})
    assert.are.equal(1, #errors(diags))
  end)

  it("keeps an explicit instance class and picks a current one for mu's default", function()
    local d = only(model({ name = "a", engine = "postgres", instanceClass = "db.r6g.large" }), "acceptance")
    assert.are.equal("db.r6g.large", d.parameters.DatabaseInstanceClass)
    local m = load_yaml("service:\n  name: s\n  database:\n    name: a\n    engine: oracle-se2\n")
    d = only(m, "dev")
    assert.are.equal("db.m5.large", d.parameters.DatabaseInstanceClass)
    local _, diags = database.stacks(model({ name = "a", engine = "mysql", instanceClass = "db.serverless" }), {})
    assert.is_truthy(errors(diags)[1].message:find("use engineMode serverless (engine mysql", 1, true))
  end)

  it("checks storage, usernames and database names per engine", function()
    local _, diags = database.stacks(model({ name = "a", engine = "mysql", allocatedStorage = 10 }), {})
    assert.are.equal("gp3 storage is 20 to 65536 GiB, got '10'", errors(diags)[1].message)
    _, diags = database.stacks(model({ name = "a", engine = "postgres", masterUsername = "1admin" }), {})
    assert.are.equal("service.database.masterUsername", errors(diags)[1].key)
    _, diags = database.stacks(model({ name = "toolongname", engine = "oracle-ee" }), {})
    assert.is_truthy(errors(diags)[1].message:find("longer than 8 characters", 1, true))
    _, diags = database.stacks(model({ name = string.rep("d", 100000), engine = "mysql" }), {})
    assert.is_truthy(errors(diags)[1].message:find("longer than 64", 1, true))
  end)

  it("SQL Server starts without a database and says so", function()
    local d, diags = only(model({ name = "a", engine = "sqlserver-ex" }), "acceptance")
    local p = props(d, "DBInstanceStandalone")
    assert.is_nil(p.DBName)
    assert.are.equal("license-included", p.LicenseModel)
    assert.is_truthy(fmt(warnings(diags)):find("cannot create a database at launch", 1, true))
    assert.are.equal("bring-your-own-license",
      props(only(model({ name = "a", engine = "oracle-ee" }), "acceptance"), "DBInstanceStandalone").LicenseModel)
  end)

  it("maps serverless capacity and auto-pause onto Aurora Serverless v2", function()
    local d = only(model({ name = "a", engine = "aurora-postgresql", engineMode = "serverless", minSize = 4,
      maxSize = 64, secondsUntilAutoPause = 0 }), "acceptance")
    assert.are.equal("4", d.parameters.ScalingMinCapacity)
    assert.is_nil(props(d, "DBCluster").ServerlessV2ScalingConfiguration.SecondsUntilAutoPause)
    local diags
    d, diags = only(model({ name = "a", engine = "aurora-mysql", engineMode = "serverless", secondsUntilAutoPause = 60,
      minSize = 1, maxSize = 2 }), "acceptance")
    assert.are.equal("300", d.parameters.SecondsUntilAutoPause)
    assert.is_truthy(fmt(diags):find("at least 300 seconds", 1, true))
    local _
    _, diags = database.stacks(model({ name = "a", engine = "aurora-mysql", engineMode = "serverless",
      minSize = 2, maxSize = 384 }), {})
    assert.are.equal("Aurora Serverless v2 scales to at most 256 ACUs, got 384", errors(diags)[1].message)
  end)

  it("renders mu's Serverless v1 shape only on request, with a warning", function()
    local d, diags = only(model({ name = "a", engine = "aurora", engineMode = "serverless", serverlessVersion = 1,
      minSize = 2, maxSize = 16, secondsUntilAutoPause = 600, iamAuthentication = true }), "acceptance")
    assert_clean(d)
    local c = props(d, "DBCluster")
    assert.are.equal("serverless", c.EngineMode)
    assert.is_true(c.ScalingConfiguration.AutoPause)
    assert.is_nil(res(d, "DBInstanceClustered"))
    assert.is_nil(c.EnableIAMDatabaseAuthentication)
    assert.is_truthy(fmt(diags):find("end of life on 2025-03-31", 1, true))
    assert.is_truthy(fmt(diags):find("does not support IAM database authentication; not enabled", 1, true))
    local _
    _, diags = database.stacks(model({ name = "a", engine = "aurora-mysql", engineMode = "serverless",
      serverlessVersion = 1, minSize = 3, maxSize = 16 }), {})
    assert.is_truthy(errors(diags)[1].message:find("capacity must be one of 1, 2, 4", 1, true))
    _, diags = database.stacks(model({ name = "a", engineMode = "serverless", serverlessVersion = 3 }), {})
    assert.are.equal("expected 1 or 2, got '3'", errors(diags)[1].message)
  end)

  it("protects production-like environments from deletion", function()
    local m = model({ name = "a" })
    for name, want in pairs({ production = true, prod = true, ["prod-eu"] = true, ["eu_prd"] = true, live = true,
      acceptance = false, products = false, dev = false, staging = false }) do
      assert.are.equal(want, database.production_like(m, name), name)
    end
    m.services[1].pipeline = { production = { environment = "stable" } }
    assert.is_true(database.production_like(m, "stable"))
    m.services[1].pipeline.production.disabled = true
    assert.is_false(database.production_like(m, "stable"))
    assert.is_true(database.production_like(m, "dev", { production = { dev = true } }))
    assert.is_false(database.production_like(m, "prod", { production = function() return false end }))
    local d = only(model({ name = "a", engine = "mysql", deletionProtection = false }), "production")
    assert.is_false(props(d, "DBInstanceStandalone").DeletionProtection)
  end)

  it("keeps backups for backupRetentionDays (Aurora needs at least one day)", function()
    local d = only(model({ name = "a", engine = "mysql" }), "dev")
    assert.are.equal("7", d.parameters.BackupRetentionPeriod)
    d = only(model({ name = "a", engine = "mysql", backupRetentionDays = 0 }), "dev")
    assert.are.equal("0", d.parameters.BackupRetentionPeriod)
    local _, diags = database.stacks(model({ name = "a", engine = "aurora", backupRetentionDays = 0 }), {})
    assert.are.equal("expected 1 to 35 days for aurora-mysql, got '0'", errors(diags)[1].message)
  end)

  it("exports mu's outputs as <stack>-<Output>", function()
    local d = only(model({ name = "a", engine = "postgres" }), "acceptance")
    for _, o in ipairs(database.OUTPUTS) do
      assert.are.equal("mu-database-svc-acceptance-" .. o, d.template.Outputs[o].Export.Name)
    end
    assert.are.same({ ["Fn::GetAtt"] = { "DBInstanceStandalone", "Endpoint.Address" } },
      d.template.Outputs.DatabaseEndpointAddress.Value)
    assert.are.equal("database", d.tags["mu:type"])
    assert.are.equal("svc", d.tags["mu:service"])
  end)
end)

-- ===========================================================================
describe("lumu.gen.database: stacks", function()
  it("one descriptor per service database x environment, in model order", function()
    local m = model({ name = "a", engine = "mysql" }, { envs = { "dev", "qa" }, namespace = "acme" })
    m.services[2] = { name = "web", environment = {} } -- no database
    m.services[3] = { name = "api", environment = {}, database = { name = "b", engine = "postgres" } }
    local ds = database.stacks(m, {})
    local names = {}
    for _, d in ipairs(ds) do names[#names + 1] = d.name end
    assert.are.same({ "acme-database-svc-dev", "acme-database-api-dev", "acme-database-svc-qa",
      "acme-database-api-qa" }, names)
    ds = database.stacks(m, { namespace = "other", environments = { { name = "x" } } })
    assert.are.equal("other-database-svc-x", ds[1].name)
  end)

  it("skips an environment whose override empties the name, and warns without environments", function()
    local m = model({ name = "a", engine = "mysql", environmentConfig = { acceptance = { name = "" } } })
    local ds = database.stacks(m, {})
    assert.are.equal(1, #ds)
    assert.are.equal("production", ds[1].env)
    m.environments = {}
    local diags
    ds, diags = database.stacks(m, {})
    assert.are.equal(0, #ds)
    assert.is_truthy(warnings(diags)[1].message:find("no environments", 1, true))
  end)

  it("appends to ctx.diagnostics and is deterministic", function()
    local list = {}
    local m = model({ name = "a", engine = "mysql", allocatedStorage = 1 })
    local _, diags = database.stacks(m, { diagnostics = list })
    assert.are.equal(list, diags)
    assert.are.equal(1, #list)
    local a = json.encode(database.stacks(load_file(FIX .. "/secure.yml"), {}), { sort_keys = true })
    local b = json.encode(database.stacks(load_file(FIX .. "/secure.yml"), {}), { sort_keys = true })
    assert.are.equal(a, b)
  end)

  it("raises on misuse", function()
    assert.has_error(function() database.settings(model({ name = "a" }), nil, "dev") end)
    assert.has_error(function() database.settings(model({ name = "a" }), { name = "svc" }, "") end)
  end)
end)

-- ===========================================================================
describe("lumu.gen.database: no plaintext password", function()
  local function all_descriptors()
    local out = {}
    for _, engine in ipairs({ "aurora-mysql", "aurora-postgresql", "mysql", "postgres", "sqlserver-ex", "oracle-se2" }) do
      for _, extra in ipairs({ {}, { masterPasswordSSMParam = "/t/pw" }, { manageMasterUserPassword = true },
        { masterPasswordSecretArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf" } }) do
        local db = { name = "app", engine = engine }
        for k, v in pairs(extra) do db[k] = v end
        for _, d in ipairs((database.stacks(model(db), {}))) do out[#out + 1] = d end
      end
    end
    for _, d in ipairs((database.stacks(load_file(FIX .. "/secure.yml"), {}))) do out[#out + 1] = d end
    return out
  end

  it("db up's password never reaches a template or a stack parameter", function()
    -- what `db up` does: generate, store in SSM (here: a table), pass the version
    local store = {}
    local ds = all_descriptors()
    assert.is_true(#ds >= 40)
    for _, d in ipairs(ds) do
      local pw = d.password
      if pw.store == "ssm" and pw.managed then
        store[pw.name] = { value = secrets.generate_password(), version = 1 }
        d.parameters[pw.version_parameter] = tostring(store[pw.name].version)
      end
    end
    for _, d in ipairs(ds) do
      local text = json.encode({ d.template, d.parameters, d.tags, d.password }, { sort_keys = true })
      for _, s in pairs(store) do
        assert.is_true(secrets.is_plaintext_free(text, s.value), d.name)
      end
      for name, p in pairs(d.template.Parameters) do
        assert.is_falsy(name:find("Password", 1, true) and p.Default ~= nil, d.name .. " " .. name)
        assert.is_nil(p.NoEcho, d.name .. " " .. name)
      end
      local main = res(d, "DBCluster") or res(d, "DBInstanceStandalone")
      local mup = main.Properties.MasterUserPassword
      if d.password.store == "rds" then
        assert.is_nil(mup)
        assert.is_true(main.Properties.ManageMasterUserPassword)
      else
        local s = json.encode(mup)
        assert.is_truthy(s:find("{{resolve:ssm-secure:", 1, true) or s:find("{{resolve:secretsmanager:", 1, true), s)
      end
    end
  end)

  it("uses the managed parameter, the user's SSM parameter or a Secrets Manager secret", function()
    local d = only(model({ name = "a", engine = "mysql" }), "dev")
    assert.are.same({ store = "ssm", managed = true, name = "mu-database-svc-dev-DatabaseMasterPassword",
      version_parameter = "DatabaseMasterSecretVersion",
      kms_key = { stack = "mu-iam-service-svc-dev", output = "DatabaseKeyArn",
        export = "mu-iam-service-svc-dev-DatabaseKeyArn" } }, d.password)
    assert.are.equal("mu-database-svc-dev-DatabaseMasterPassword", d.parameters.DatabaseMasterSecretParameter)
    assert.is_nil(d.parameters.DatabaseMasterSecretVersion) -- filled by db up
    d = only(model({ name = "a", engine = "mysql", kmsKey = KEY }), "dev")
    assert.are.equal(KEY, d.password.kms_key)
    d = only(model({ name = "a", engine = "mysql" }, { disableIAM = true }), "dev")
    assert.is_nil(d.password.kms_key)
    d = only(model({ name = "a", engine = "mysql", masterPasswordSSMParam = "/team/pw" }), "dev")
    assert.is_false(d.password.managed)
    assert.are.equal("/team/pw", d.parameters.DatabaseMasterSecretParameter)
    d = only(model({ name = "a", engine = "mysql",
      masterPasswordSecretArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf" }), "dev")
    assert.are.same({ ["Fn::Sub"] = "{{resolve:secretsmanager:${DatabaseMasterSecretArn}:SecretString:password}}" },
      props(d, "DBInstanceStandalone").MasterUserPassword)
  end)

  it("lets RDS manage the secret with the database key", function()
    local d = only(model({ name = "a", engine = "aurora-postgresql", manageMasterUserPassword = true,
      kmsKey = KEY }), "dev")
    assert_clean(d)
    local c = props(d, "DBCluster")
    assert.are.same({ KmsKeyId = { Ref = "DatabaseKeyArn" } }, c.MasterUserSecret)
    assert.are.same({ ["Fn::GetAtt"] = { "DBCluster", "MasterUserSecret.SecretArn" } },
      d.template.Outputs.DatabaseMasterUserSecretArn.Value)
    d = only(model({ name = "a", engine = "mysql", manageMasterUserPassword = true }, { disableIAM = true }), "dev")
    assert.is_true(props(d, "DBInstanceStandalone").ManageMasterUserPassword)
    assert.is_nil(props(d, "DBInstanceStandalone").MasterUserSecret) -- aws/secretsmanager, not aws/rds
  end)
end)

-- ===========================================================================
describe("lumu.gen.database: bindings", function()
  it("gives the service imports, an ECS secret and the execution role's statements", function()
    local m = load_file(FIX .. "/secure.yml")
    local b, diags = database.bindings(m, m.services[1], "acceptance", {})
    assert(b, fmt(diags))
    assert.are.equal("mu-database-shop-acceptance", b.stack)
    assert.are.equal("mu-database-shop-acceptance-DatabaseEndpointAddress", b.exports.DatabaseEndpointAddress)
    assert.are.same({ ["Fn::ImportValue"] = "mu-database-shop-acceptance-DatabaseName" }, b.values.DatabaseName)
    local arn = { ["Fn::Sub"] = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/"
      .. "mu-database-shop-acceptance-DatabaseMasterPassword" }
    assert.are.same({ { Name = "SPRING_DATASOURCE_PASSWORD", ValueFrom = arn } }, b.secrets)
    assert.are.same({ "ssm:GetParameters" }, b.statements[1].Action)
    assert.are.same(arn, b.statements[1].Resource)
    assert.are.same(arn, b.statements[2].Condition.StringEquals["kms:EncryptionContext:PARAMETER_ARN"])
    -- production also maps the per-environment value
    b = assert(database.bindings(m, m.services[1], { name = "production" }, {}))
    assert.are.same({ "DB_PASSWORD_ONLY_IN_PROD", "SPRING_DATASOURCE_PASSWORD" },
      { b.secrets[1].Name, b.secrets[2].Name })
  end)

  it("refuses the password inside a longer value", function()
    local path = FIX .. "/embedded-password.yml"
    local m = load_file(path)
    local b, diags = database.bindings(m, m.services[1], "dev", {})
    assert.is_nil(b)
    assert.are.equal("service.environment.DATABASE_URL", errors(diags)[1].key)
    assert.is_truthy(errors(diags)[1].message:find("must be the whole value", 1, true))
  end)

  it("is nil without a database, and least-privilege without secrets", function()
    local m = model(nil)
    local b, diags = database.bindings(m, m.services[1], "dev", {})
    assert.is_nil(b)
    assert.are.equal(0, #diags)
    m = model({ name = "a", engine = "mysql" })
    b = assert(database.bindings(m, m.services[1], "dev", {}))
    assert.are.same({}, b.secrets)
    assert.are.same({}, b.statements)
  end)

  it("points ValueFrom at Secrets Manager for secret ARNs and RDS-managed secrets", function()
    local env = { PW = "${DatabaseMasterPassword}" }
    local m = model({ name = "a", engine = "mysql",
      masterPasswordSecretArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf" }, { environment = env })
    local b = assert(database.bindings(m, m.services[1], "dev", {}))
    assert.are.equal("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf:password::", b.secrets[1].ValueFrom)
    assert.are.same({ "secretsmanager:GetSecretValue" }, b.statements[1].Action)
    m = model({ name = "a", engine = "mysql", manageMasterUserPassword = true }, { environment = env })
    b = assert(database.bindings(m, m.services[1], "dev", {}))
    local imp = { ["Fn::ImportValue"] = "mu-database-svc-dev-DatabaseMasterUserSecretArn" }
    assert.are.same({ ["Fn::Join"] = { "", { imp, ":password::" } } }, b.secrets[1].ValueFrom)
    assert.are.same(imp, b.statements[1].Resource)
  end)
end)

-- ===========================================================================
describe("lumu.gen.dynamodb", function()
  local function dmodel(tables, opts)
    opts = opts or {}
    opts.dynamodb = tables
    return model(nil, opts)
  end
  local function one(tables, env, opts)
    local m = dmodel(tables, opts)
    local d, diags = dynamodb.stack(m, m.services[1], env or "dev", {})
    assert(d, fmt(diags))
    return d, diags
  end

  it("makes an on-demand table with point-in-time recovery, kept on delete", function()
    local d = one({ { name = "orders", partitionKey = "id" } })
    assert.are.equal("mu-dynamodb-svc-dev", d.name)
    assert_clean(d)
    local r = res(d, "TableOrders")
    assert.are.equal("Retain", r.DeletionPolicy)
    assert.are.equal("Retain", r.UpdateReplacePolicy)
    local p = r.Properties
    assert.are.equal("mu-svc-dev-orders", p.TableName)
    assert.are.equal("PAY_PER_REQUEST", p.BillingMode)
    assert.is_nil(p.ProvisionedThroughput)
    assert.are.same({ { AttributeName = "id", AttributeType = "S" } }, p.AttributeDefinitions)
    assert.are.same({ { AttributeName = "id", KeyType = "HASH" } }, p.KeySchema)
    assert.is_true(p.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled)
    assert.is_false(p.DeletionProtectionEnabled)
    assert.are.equal("mu-dynamodb-svc-dev-TableOrdersArn", d.template.Outputs.TableOrdersArn.Export.Name)
  end)

  it("renders clean templates across billing x indexes x ttl x encryption x streams", function()
    local n = 0
    for _, billing in ipairs({ "PAY_PER_REQUEST", "provisioned", "on-demand" }) do
      for _, ix in ipairs({ "none", "gsi", "lsi", "both" }) do
        for _, enc in ipairs({ "aws-owned", "aws-managed", "customer" }) do
          for _, stream in ipairs({ false, "NEW_AND_OLD_IMAGES", "keys_only" }) do
            local t = { name = "t1", partitionKey = "pk", sortKey = "sk:N", billingMode = billing, ttl = "exp",
              encryption = enc, kmsKey = enc == "customer" and KEY or nil, stream = stream or nil,
              tableClass = "standard_infrequent_access" }
            if ix == "gsi" or ix == "both" then
              t.globalSecondaryIndexes = { { name = "byEmail", partitionKey = "email", projection = "KEYS_ONLY" },
                { name = "byDate", partitionKey = "day:N", sortKey = "sk:N", projection = { "total", "state" } } }
            end
            if ix == "lsi" or ix == "both" then
              t.localSecondaryIndexes = { { name = "byTime", sortKey = "ts:N" } }
            end
            local d = one({ t }, "prod")
            assert_clean(d)
            n = n + 1
            local p = props(d, "TableT1")
            assert.is_true(p.DeletionProtectionEnabled)
            if billing == "provisioned" then
              assert.are.same({ ReadCapacityUnits = 5, WriteCapacityUnits = 5 }, p.ProvisionedThroughput)
              for _, g in ipairs(p.GlobalSecondaryIndexes or {}) do assert.is_table(g.ProvisionedThroughput) end
            end
          end
        end
      end
    end
    assert.are.equal(108, n)
  end)

  it("defines each key attribute once, and refuses conflicting types", function()
    local d = one({ { name = "t", partitionKey = { name = "pk", type = "s" }, sortKey = "sk",
      globalSecondaryIndexes = { { name = "inv", partitionKey = "sk", sortKey = "pk" } } } })
    assert.are.same({ { AttributeName = "pk", AttributeType = "S" }, { AttributeName = "sk", AttributeType = "S" } },
      props(d, "TableT").AttributeDefinitions)
    local m = dmodel({ { name = "t", partitionKey = "pk", globalSecondaryIndexes = {
      { name = "bad", partitionKey = "pk:N" } } } })
    local _, diags = dynamodb.stacks(m, {})
    assert.are.equal("attribute 'pk' is used as type S and as type N", errors(diags)[1].message)
    assert.are.equal("service.dynamodb[1].globalSecondaryIndexes", errors(diags)[1].key)
  end)

  it("checks capacities against the billing mode", function()
    local d = one({ { name = "t", partitionKey = "id", billingMode = "PROVISIONED", readCapacity = 10,
      writeCapacity = "3" } })
    assert.are.same({ ReadCapacityUnits = 10, WriteCapacityUnits = 3 }, props(d, "TableT").ProvisionedThroughput)
    local _, diags = dynamodb.stacks(dmodel({ { name = "t", partitionKey = "id", readCapacity = 10 } }), {})
    assert.is_truthy(errors(diags)[1].message:find("needs billingMode PROVISIONED", 1, true))
    _, diags = dynamodb.stacks(dmodel({ { name = "t", partitionKey = "id", billingMode = "PROVISIONED",
      writeCapacity = 0 } }), {})
    assert.are.equal("expected 1 to 40000 capacity units, got '0'", errors(diags)[1].message)
    _, diags = dynamodb.stacks(dmodel({ { name = "t", partitionKey = "id", billingMode = "free" } }), {})
    assert.are.equal("service.dynamodb[1].billingMode", errors(diags)[1].key)
  end)

  it("enforces the index rules and limits", function()
    local function err_of(t)
      local _, diags = dynamodb.stacks(dmodel({ t }), { environments = { "dev" } })
      return errors(diags)[1] and errors(diags)[1].message
    end
    assert.are.equal("local secondary indexes need a table sortKey",
      err_of({ name = "t", partitionKey = "id", localSecondaryIndexes = { { name = "lsi1", sortKey = "x" } } }))
    assert.is_truthy(err_of({ name = "t", partitionKey = "id", sortKey = "s",
      localSecondaryIndexes = { { name = "lsi1", partitionKey = "p", sortKey = "x" } } }):find("uses the table's"))
    local many = {}
    for i = 1, 21 do many[i] = { name = "gsi" .. i, partitionKey = "a" .. i } end
    assert.are.equal("at most 20 global secondary indexes",
      err_of({ name = "t", partitionKey = "id", globalSecondaryIndexes = many }))
    local lsis = {}
    for i = 1, 6 do lsis[i] = { name = "lsi" .. i, sortKey = "b" .. i } end
    assert.are.equal("at most 5 local secondary indexes",
      err_of({ name = "t", partitionKey = "id", sortKey = "s", localSecondaryIndexes = lsis }))
    assert.are.equal("duplicate index name 'idx'", err_of({ name = "t", partitionKey = "id",
      globalSecondaryIndexes = { { name = "idx", partitionKey = "a" }, { name = "idx", partitionKey = "b" } } }))
    assert.is_truthy(err_of({ name = "t", partitionKey = "id",
      globalSecondaryIndexes = { { name = "ix", partitionKey = "a" } } }):find("3 to 255"))
    assert.is_truthy(err_of({ name = "t", partitionKey = "id", globalSecondaryIndexes = {
      { name = "idx", partitionKey = "a", projection = "SOME" } } }):find("ALL, KEYS_ONLY"))
    assert.are.equal("is required", err_of({ name = "t" }))
    assert.is_truthy(err_of({ name = "t", partitionKey = "id:X" }):find("S, N or B", 1, true))
  end)

  it("projects listed attributes with INCLUDE", function()
    local d = one({ { name = "t", partitionKey = "id", globalSecondaryIndexes = {
      { name = "byState", partitionKey = "state", projection = { "total" } } } } })
    assert.are.same({ ProjectionType = "INCLUDE", NonKeyAttributes = { "total" } },
      props(d, "TableT").GlobalSecondaryIndexes[1].Projection)
  end)

  it("validates keys, encryption, streams and unknown settings", function()
    local function err_of(t)
      local _, diags = dynamodb.stacks(dmodel({ t }), {})
      return errors(diags)[1]
    end
    assert.is_truthy(err_of({ name = "t", partitionKey = "id", kmsKey = "arn:aws...." }).message:find("not a KMS key"))
    assert.are.equal("customer encryption needs kmsKey",
      err_of({ name = "t", partitionKey = "id", encryption = "customer" }).message)
    assert.is_truthy(err_of({ name = "t", partitionKey = "id", stream = "ALL" }).message:find("NEW_IMAGE", 1, true))
    local e = err_of({ name = "t", partitionKey = "id", partitonKey = "x" })
    assert.are.equal("service.dynamodb[1].partitonKey", e.key)
    assert.are.equal("unknown DynamoDB table key 'partitonKey'", e.message)
    assert.is_truthy(err_of({ name = "bad name", partitionKey = "id" }).message:find("letters, digits"))
    assert.is_truthy(err_of({ name = string.rep("n", 300), partitionKey = "id" }).message:find("longer than 255"))
  end)

  it("applies environmentConfig per environment", function()
    local tables = { { name = "t", partitionKey = "id", environmentConfig = {
      production = { billingMode = "PROVISIONED", readCapacity = 50, writeCapacity = 20 },
      dev = { pointInTimeRecovery = false, deletionProtection = true } } } }
    local ds = dynamodb.stacks(dmodel(tables, { envs = { "dev", "production" } }), {})
    assert.are.equal(2, #ds)
    local dev, prod = props(ds[1], "TableT"), props(ds[2], "TableT")
    assert.are.equal("PAY_PER_REQUEST", dev.BillingMode)
    assert.is_false(dev.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled)
    assert.is_true(dev.DeletionProtectionEnabled)
    assert.are.same({ ReadCapacityUnits = 50, WriteCapacityUnits = 20 }, prod.ProvisionedThroughput)
    assert.is_true(prod.DeletionProtectionEnabled)
    local _, diags = dynamodb.stacks(dmodel({ { name = "t", partitionKey = "id",
      environmentConfig = { dev = { name = "other" } } } }, { envs = { "dev" } }), {})
    assert.are.equal("service.dynamodb[1].environmentConfig.dev.name", errors(diags)[1].key)
  end)

  it("refuses duplicate tables and names that collide as resources", function()
    local _, diags = dynamodb.stacks(dmodel({ { name = "a", partitionKey = "id" }, { name = "a", partitionKey = "id" } }), {})
    assert.are.equal("duplicate table name 'a'", errors(diags)[1].message)
    _, diags = dynamodb.stacks(dmodel({ { name = "a-b", partitionKey = "id" }, { name = "a_b", partitionKey = "id" } }), {})
    assert.are.equal("table names 'a-b' and 'a_b' both become the resource TableAB", errors(diags)[1].message)
    _, diags = dynamodb.stacks(dmodel("orders"), {})
    assert.are.equal("expected a list of tables", errors(diags)[1].message)
  end)

  it("binds tables to the service: names, ARNs and task-role statements", function()
    local m = dmodel({
      { name = "orders", partitionKey = "id", stream = "NEW_IMAGE", kmsKey = KEY,
        globalSecondaryIndexes = { { name = "byUser", partitionKey = "user" } } },
      { name = "ref-data", partitionKey = "code", access = "read" } })
    local b = assert(dynamodb.bindings(m, m.services[1], "dev", {}))
    assert.are.equal("mu-dynamodb-svc-dev", b.stack)
    assert.are.same({ ["Fn::ImportValue"] = "mu-dynamodb-svc-dev-TableOrdersName" }, b.values.TableOrdersName)
    assert.are.equal("mu-dynamodb-svc-dev-TableRefDataArn", b.tables["ref-data"].arn_export)
    local orders = { ["Fn::ImportValue"] = "mu-dynamodb-svc-dev-TableOrdersArn" }
    local ref = { ["Fn::ImportValue"] = "mu-dynamodb-svc-dev-TableRefDataArn" }
    assert.are.same({ orders, { ["Fn::Join"] = { "", { orders, "/index/*" } } }, ref }, b.statements[1].Resource)
    assert.are.same({ orders, { ["Fn::Join"] = { "", { orders, "/index/*" } } } }, b.statements[2].Resource)
    assert.are.same(dynamodb.WRITE_ACTIONS, b.statements[2].Action)
    assert.are.same(dynamodb.STREAM_ACTIONS, b.statements[3].Action)
    assert.are.equal("*", b.statements[4].Resource)
    local none = model(nil)
    assert.is_nil((dynamodb.bindings(none, none.services[1], "dev", {})))
  end)

  it("turns table names into resource ids", function()
    assert.are.equal("TableOrders", dynamodb.logical_id("orders"))
    assert.are.equal("TableOrdersV2", dynamodb.logical_id("orders-v2"))
    assert.are.equal("TableMyTableName", dynamodb.logical_id("my.table_name"))
  end)
end)

-- ===========================================================================
describe("hostile input", function()
  it("reports over-long stack names instead of raising", function()
    local long = string.rep("s", 63)
    local m = model({ name = "a", engine = "mysql" }, { service = long, envs = { string.rep("e", 63) } })
    m.services[1].dynamodb = { { name = "t", partitionKey = "id" } }
    local ds, diags = database.stacks(m, {})
    assert.are.equal(0, #ds)
    assert.is_truthy(errors(diags)[1].message:find("longer than 128 characters", 1, true))
    ds, diags = dynamodb.stacks(m, {})
    assert.are.equal(0, #ds)
    assert.is_truthy(errors(diags)[1].message:find("longer than 128 characters", 1, true))
  end)

  it("survives nested, huge and binary DynamoDB settings", function()
    local deep = {}
    local cur = deep
    for _ = 1, 10000 do
      cur.name = {}
      cur = cur.name
    end
    local many = {}
    for i = 1, 100000 do many[i] = { name = "gsi" .. i, partitionKey = "a" } end
    local m = model(nil, { dynamodb = {
      { name = "a", partitionKey = deep },
      { name = "b\0\255", partitionKey = "id" },
      { name = "c", partitionKey = "id", globalSecondaryIndexes = many },
      { name = "d", partitionKey = "id", environmentConfig = { acceptance = 42 } },
      { name = "e", partitionKey = "id", environmentConfig = "x" },
      "not a table",
    } })
    local ds, diags = dynamodb.stacks(m, {})
    assert.are.equal(0, #ds)
    local keys = {}
    for _, d in ipairs(errors(diags)) do keys[d.key] = true end
    for _, k in ipairs({ "service.dynamodb[1].partitionKey", "service.dynamodb[2].name",
      "service.dynamodb[3].globalSecondaryIndexes", "service.dynamodb[4].environmentConfig",
      "service.dynamodb[5].environmentConfig", "service.dynamodb[6]" }) do
      assert.is_true(keys[k], k .. " in\n" .. fmt(diags))
    end
  end)

  it("survives wrong types in database settings", function()
    for _, db in ipairs({ { name = "a", engine = {} }, { name = "a", minSize = "x", engineMode = "serverless" },
      { name = "a", engine = "mysql", allocatedStorage = { 1 } }, { name = "a", kmsKey = 42 },
      { name = "a", masterPasswordSSMParam = "bad name" }, { name = "a", deletionProtection = "maybe" },
      { name = "a", backupRetentionDays = 99 } }) do
      local ds, diags = database.stacks(model(db), {})
      assert.are.equal(0, #ds)
      assert.is_true(#errors(diags) >= 1, json.encode(db))
    end
  end)
end)
