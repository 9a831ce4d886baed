-- Golden tests: `lumu synth` of each case below must write exactly the files
-- under tests/golden/<case>/ (templates, parameters, tags, assets/,
-- README.txt, and the stdout table and stderr as synth.stdout and
-- synth.stderr), byte for byte.  lumu's version is pinned to a marker while
-- synthesising and stored as @VERSION@ (tags, README, the pipelines' lumu
-- download URL), so a version bump alone changes nothing; the shared folder
-- (LUMU_SHARED) is stored as @SHARED@.  git detection is off (the pipelines'
-- LUMU_BASEDIR stays ".").
--
-- Cases: the bundled example (scripts/example/lumu.lua: environments, a
-- service with a per-environment Aurora database, secrets and a pipeline),
-- the seed basic example (pipeline), the seed database example with a real
-- kmsKey (for environments defined elsewhere) and the seed catalog example
-- (portfolio, products, their version templates as assets).
--
-- A deliberate change of the generated templates shows up as a failure
-- naming the first differing line.  Review the difference, then regenerate
-- the golden files on purpose from the repository root:
--   LUMU_GOLDEN_UPDATE=1 build/lumu test tests/lua/synth_golden_spec.lua
-- and commit them with the change (git diff shows what moved).
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local G = dofile(HERE .. "/golden.lua")
local sink, esc, tree = G.sink, G.esc, G.tree
local fs = require "lumu.fs"
local json = require "lumu.json"
local cmd = require "lumu.cli.synth"

local SHARED = os.getenv("LUMU_SHARED") or "../shared"
local MARKER = "0.0.0-golden"

local CASES = {
  { name = "example", config = "scripts/example/lumu.lua" },
  { name = "seed-basic", config = SHARED .. "/corpus/seed-examples/basic/mu.yml" },
  { name = "seed-database", config = "tests/fixtures/synth/seed-database/mu.yml",
    env = { "acceptance", "production" } },
  { name = "seed-catalog", config = SHARED .. "/corpus/seed-examples/catalog/mu.yml" },
}

local function normalise(text)
  text = text:gsub(esc(MARKER), "@VERSION@")
  return (text:gsub(esc(SHARED) .. "/", "@SHARED@/"))
end

-- Runs synth into a fresh directory: files {relpath -> text}, stdout,
-- stderr, rc, msg.
local function synthesise(case, config)
  local version = require "lumu.version"
  local real = version.version
  local dir = assert(fs.tmpdir("lumu-golden-"))
  local out, err = sink(), sink()
  local opts = { config = config or case.config, output = dir .. "/out", env = case.env }
  version.version = MARKER
  local ok, rc, msg = pcall(cmd.run, { stdout = out, stderr = err, git = false }, {}, opts)
  version.version = real
  local files = {}
  if fs.isdir(dir .. "/out") then
    for _, name in ipairs(tree(dir .. "/out")) do
      files[name] = normalise(assert(fs.read(dir .. "/out/" .. name)))
    end
  end
  fs.rmtree(dir)
  if not ok then error(rc, 0) end
  files["synth.stdout"] = normalise(out.text())
  files["synth.stderr"] = normalise(err.text())
  return files, rc, msg
end

for _, case in ipairs(CASES) do
  local golden = "tests/golden/" .. case.name
  describe("golden: " .. case.name .. " (" .. case.config .. ")", function()
    local files, rc, msg = synthesise(case)

    if os.getenv("LUMU_GOLDEN_UPDATE") == "1" then
      it("regenerates " .. golden, function()
        assert.are.equal(0, rc, msg)
        G.regenerate(golden, files)
      end)
      return
    end

    it("synth succeeds", function()
      assert.are.equal(0, rc, msg)
    end)

    it("writes exactly the golden file set", function()
      local got = {}
      for name in pairs(files) do got[#got + 1] = name end
      table.sort(got)
      assert.are.same(tree(golden), got)
    end)

    it("writes every file byte for byte as the golden copy", function()
      G.compare(golden, files, "tests/lua/synth_golden_spec.lua")
    end)

    it("is deterministic: a second run gives the same bytes", function()
      assert.are.same(files, (synthesise(case)))
    end)

    it("no template or parameter file holds a password, a password parameter or a NoEcho value", function()
      for name, text in pairs(files) do
        if name:match("%.json$") then
          assert.is_nil(text:find('"DatabaseMasterPassword"', 1, true), name)
          assert.is_nil(text:find('"MasterUserPassword": "', 1, true), name) -- only references
          assert.is_nil(text:find('"NoEcho"', 1, true), name)
        end
      end
    end)
  end)
end

describe("golden example: what the files say", function()
  local files = synthesise(CASES[1])
  local function tpl(stack) return json.decode(files[stack .. ".template.json"]) end
  local function params(stack)
    local out = {}
    for _, p in ipairs(json.decode(files[stack .. ".parameters.json"])) do out[p.ParameterKey] = p.ParameterValue end
    return out
  end

  it("prints no warning", function()
    assert.are.equal("", files["synth.stderr"])
  end)

  it("mu.yml of the same project gives the same templates, parameters and tags", function()
    local yml = synthesise(CASES[1], "scripts/example/mu.yml")
    local n = 0
    for name, text in pairs(files) do
      if name:match("%.json$") then
        n = n + 1
        assert.are.equal(text, yml[name], name)
      end
    end
    assert.is_true(n >= 54)
  end)

  it("the database follows its per-environment settings", function()
    local a = tpl("mu-database-sample-service-acceptance").Resources
    assert.are.equal("db.serverless", a.DBInstanceClustered.Properties.DBInstanceClass)
    assert.are.equal("600", params("mu-database-sample-service-acceptance").SecondsUntilAutoPause)
    assert.are.equal(false, a.DBCluster.Properties.DeletionProtection)
    local p = tpl("mu-database-sample-service-production").Resources
    assert.is_nil(p.DBCluster.Properties.ServerlessV2ScalingConfiguration)
    assert.are.equal(true, p.DBCluster.Properties.DeletionProtection)
    local pp = params("mu-database-sample-service-production")
    assert.are.same({ "db.r6g.large", "14" }, { pp.DatabaseInstanceClass, pp.BackupRetentionPeriod })
    -- encrypted with the key of the service IAM stack, which exports it
    assert.are.equal("mu-iam-service-sample-service-production-DatabaseKeyArn", pp.DatabaseKeyExport)
    local iam = tpl("mu-iam-service-sample-service-production")
    assert.are.equal("alias/mu-service-sample-service-production",
      iam.Resources.DatabaseKeyAlias.Properties.AliasName)
    assert.are.equal(pp.DatabaseKeyExport, iam.Outputs.DatabaseKeyArn.Export.Name)
  end)

  it("the service reads the database outputs and its password from SSM only", function()
    local c = tpl("mu-service-sample-service-production").Resources.MicroserviceTaskDefinition.Properties
      .ContainerDefinitions[1]
    local names = {}
    for _, s in ipairs(c.Secrets) do names[#names + 1] = s.Name end
    assert.are.same({ "API_TOKEN", "SPRING_DATASOURCE_PASSWORD" }, names)
    for _, e in ipairs(c.Environment) do
      assert.is_true(e.Name ~= "SPRING_DATASOURCE_PASSWORD" and e.Name ~= "API_TOKEN", e.Name)
      if e.Name == "SPRING_DATASOURCE_URL" then
        assert.are.same({ ["Fn::ImportValue"] = "mu-database-sample-service-production-DatabaseEndpointAddress" },
          e.Value["Fn::Sub"][2].DatabaseEndpointAddress)
      end
    end
  end)

  it("the pipeline approves by hand before production", function()
    local stages = tpl("mu-pipeline-sample-service").Resources.Pipeline.Properties.Stages
    local names = {}
    for _, s in ipairs(stages) do names[#names + 1] = s.Name end
    assert.are.same({ "Source", "Build", "Acceptance", "Production" }, names)
    assert.are.equal("Approval", stages[4].Actions[1].ActionTypeId.Category)
    assert.is_true(stages[4].Actions[2].RunOrder > stages[4].Actions[1].RunOrder)
  end)
end)

describe("golden seed-catalog: exactly the portfolio, its products and the group", function()
  local files = synthesise(CASES[4])
  it("has the portfolio, products basic-pipeline (v1, v2) and spring-boot-pipeline (v1)", function()
    local stacks = {}
    for name in pairs(files) do
      local s = name:match("^(.-)%.template%.json$")
      if s then stacks[#stacks + 1] = s end
    end
    table.sort(stacks)
    assert.are.same({ "mu-bucket-servicecatalog", "mu-iam-portfolio-common", "mu-portfolio-common",
      "mu-product-basic-pipeline", "mu-product-spring-boot-pipeline" }, stacks)
    local function versions(stack)
      local t = json.decode(files[stack .. ".template.json"])
      local out = {}
      for _, a in ipairs(t.Resources.Product.Properties.ProvisioningArtifactParameters) do out[#out + 1] = a.Name end
      return out
    end
    assert.are.same({ "v1", "v2" }, versions("mu-product-basic-pipeline"))
    assert.are.same({ "v1" }, versions("mu-product-spring-boot-pipeline"))
    local assets = 0
    for name in pairs(files) do
      if name:match("^assets/products/") then assets = assets + 1 end
    end
    assert.are.equal(3, assets)
  end)

  it("the IAM group holds casey.lee", function()
    local t = json.decode(files["mu-iam-portfolio-common.template.json"])
    local found
    for _, r in pairs(t.Resources) do
      if r.Type == "AWS::IAM::UserToGroupAddition" then found = r.Properties.Users end
    end
    assert.are.same({ "casey.lee" }, found)
  end)
end)
