-- Specs of lumu.gen.catalog: the Service Catalog pipeline factory (bucket,
-- portfolio IAM, portfolio, one product per catalog pipeline with one
-- provisioning artifact per version and its template as an asset).
local cfn = require "lumu.cfn"
local config = require "lumu.config"
local crypto = require "lumu.crypto"
local json = require "lumu.json"
local yaml = require "lumu.yaml"
local catalog = require "lumu.gen.catalog"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local SHARED = os.getenv("LUMU_SHARED")
if not SHARED or SHARED == "" then SHARED = here .. "/../../../shared" end
do
  local f = io.open(SHARED .. "/cfn/types.tsv", "rb")
  if not f then
    error("gen_catalog_spec: " .. SHARED .. "/cfn/types.tsv not found: ../shared (next to the repository, "
      .. "or $LUMU_SHARED) is missing; CI always has it.", 0)
  end
  f:close()
end
local checker = assert(cfn.schema.open(SHARED .. "/cfn"))

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function load(text)
  local m, problems = config.load_string(text, { getenv = function() return nil end, dirname = "cat" })
  if not m then
    local lines = {}
    for _, p in ipairs(problems) do lines[#lines + 1] = config.format_error(p) end
    error("config: " .. table.concat(lines, "\n"), 2)
  end
  return m
end

local function gen(model, ctx)
  ctx = ctx or {}
  ctx.version = ctx.version or "0.1.0"
  return catalog.stacks(model, ctx)
end

local function problems_of(tpl)
  local p = cfn.check(tpl)
  for _, x in ipairs(checker:check_template(tpl)) do p[#p + 1] = x end
  return p
end

local function assert_clean(descs)
  for _, d in ipairs(descs) do
    local p = problems_of(d.template)
    if #p > 0 then error(d.name .. ":\n" .. cfn.format(p), 2) end
    for _, a in ipairs(d.assets or {}) do
      local body = assert(json.decode(a.body))
      p = problems_of(body)
      if #p > 0 then error(d.name .. " asset " .. a.key .. ":\n" .. cfn.format(p), 2) end
    end
  end
end

local function by_name(descs)
  local out = {}
  for _, d in ipairs(descs) do out[d.name] = d end
  return out
end

local SEED = load(read(SHARED .. "/corpus/seed-examples/catalog/mu.yml"))
local SEED_DESCS = assert(gen(SEED))

describe("lumu.gen.catalog seed catalog", function()
  it("produces bucket, portfolio IAM, portfolio and one product per pipeline, in deploy order", function()
    local got = {}
    for _, d in ipairs(SEED_DESCS) do got[#got + 1] = { d.name, d.kind } end
    assert.are.same({
      { "mu-bucket-servicecatalog", "bucket" },
      { "mu-iam-portfolio-common", "iam" },
      { "mu-portfolio-common", "portfolio" },
      { "mu-product-basic-pipeline", "product" },
      { "mu-product-spring-boot-pipeline", "product" },
    }, got)
    local s = by_name(SEED_DESCS)
    assert.are.same({}, s["mu-bucket-servicecatalog"].depends)
    assert.are.same({ "mu-bucket-servicecatalog" }, s["mu-iam-portfolio-common"].depends)
    assert.are.same({ "mu-iam-portfolio-common" }, s["mu-portfolio-common"].depends)
    assert.are.same({ "mu-portfolio-common", "mu-iam-portfolio-common", "mu-bucket-servicecatalog" },
      s["mu-product-basic-pipeline"].depends)
    assert.are.same({ "CAPABILITY_IAM" }, s["mu-iam-portfolio-common"].capabilities)
  end)

  it("passes t:check and the registry schemas, version templates included", function()
    assert_clean(SEED_DESCS)
  end)

  it("makes one provisioning artifact per version, in natural order, loading its asset", function()
    local d = by_name(SEED_DESCS)["mu-product-basic-pipeline"]
    local arts = d.template.Resources.Product.Properties.ProvisioningArtifactParameters
    assert.are.equal(2, #arts)
    assert.are.equal("v1", arts[1].Name)
    assert.are.equal("v2", arts[2].Name)
    assert.are.equal("CLOUD_FORMATION_TEMPLATE", arts[1].Type)
    assert.are.equal(2, #d.assets)
    for i, a in ipairs(d.assets) do
      assert.are.equal(arts[i].Name, a.version)
      local sub = arts[i].Info.LoadTemplateFromURL["Fn::Sub"]
      assert.are.equal("https://${Bucket}.s3.${AWS::Region}.${AWS::URLSuffix}/" .. a.key, sub[1])
      assert.are.same({ ["Fn::ImportValue"] = { ["Fn::Sub"] = "${CatalogBucket}" } }, sub[2].Bucket)
      assert.are.equal("products/basic-pipeline/" .. a.version .. "/pipeline-"
        .. crypto.hex(crypto.sha256(a.body)):sub(1, 16) .. ".json", a.key)
      assert.are.equal("mu-bucket-servicecatalog", a.bucket_stack)
      assert.are.equal("Bucket", a.bucket_output)
      assert.are.equal("application/json", a.content_type)
    end
    assert.are.equal("mu-bucket-servicecatalog-Bucket", d.parameters.CatalogBucket)
    assert.are.equal("mu-portfolio-common-PortfolioId", d.parameters.PortfolioId)
    assert.are.equal("mu-iam-portfolio-common-CatalogRoleArn", d.parameters.CatalogRoleArn)
  end)

  it("builds each version's template from that version's pipeline config", function()
    local d = by_name(SEED_DESCS)["mu-product-basic-pipeline"]
    local v1 = json.decode(d.assets[1].body)
    local v2 = json.decode(d.assets[2].body)
    assert.is_nil(v2.Parameters.AcptEnv) -- acceptance disabled
    assert.are.equal("prod-fargate", v2.Parameters.ProdEnv.Default)
    assert.are.equal("prod-ec2", v1.Parameters.ProdEnv.Default)
    local function url(t)
      for _, v in ipairs(t.Resources.DeployProductionProject.Properties.Environment.EnvironmentVariables) do
        if v.Name == "LUMU_DOWNLOAD_URL" then return v.Value end
      end
    end
    assert.are.equal("https://github.com/lumu-dev/lumu/releases/download/v1.5.3/lumu-linux-amd64", url(v1))
    assert.are.equal("https://github.com/lumu-dev/lumu/releases/download/v0.1.0/lumu-linux-amd64", url(v2))
    local sb = json.decode(by_name(SEED_DESCS)["mu-product-spring-boot-pipeline"].assets[1].body)
    assert.are.equal("aws/codebuild/java:openjdk-8", sb.Resources.ArtifactProject.Properties.Environment.Image)
    assert.are.equal("acpt-fargate", sb.Parameters.AcptEnv.Default)
  end)

  it("asks the provisioning user for the service, repo and connection; fixes the namespace", function()
    local v = json.decode(by_name(SEED_DESCS)["mu-product-basic-pipeline"].assets[2].body)
    local p = v.Parameters
    assert.is_nil(p.ServiceName.Default)
    assert.is_nil(p.SourceRepo.Default)
    assert.is_nil(p.ConnectionArn.Default)
    assert.are.equal("master", p.SourceBranch.Default)
    assert.are.same({ "mu" }, p.Namespace.AllowedValues)
    assert.is_nil(v.Resources.GitHubConnection)
    assert.is_nil(v.Conditions)
    -- IAM, key, bucket and pipeline in one template
    for _, id in ipairs({ "PipelineKey", "ArtifactBucket", "CodePipelineRole", "CodeBuildCDProdRole", "Pipeline" }) do
      assert.truthy(v.Resources[id], id)
    end
    assert.is_nil(v.Resources.CodeBuildCDAcptRole)
  end)

  it("is deterministic", function()
    local again = assert(gen(load(read(SHARED .. "/corpus/seed-examples/catalog/mu.yml"))))
    for i = 1, #SEED_DESCS do
      assert.are.equal(json.encode(SEED_DESCS[i].template), json.encode(again[i].template))
      for j, a in ipairs(SEED_DESCS[i].assets or {}) do
        assert.are.equal(a.body, again[i].assets[j].body)
      end
    end
  end)
end)

describe("lumu.gen.catalog stacks", function()
  it("puts iamUsers in the catalog group and lets the group use the portfolio", function()
    local s = by_name(SEED_DESCS)
    local iam = s["mu-iam-portfolio-common"].template.Resources
    assert.are.same({ "casey.lee" }, iam.CatalogUsers.Properties.Users)
    assert.are.same({ Ref = "CatalogUsersGroup" }, iam.CatalogUsers.Properties.GroupName)
    assert.truthy(iam.CatalogUsersGroup.Properties.ManagedPolicyArns[1]["Fn::Sub"]:find(
      "AWSServiceCatalogEndUserFullAccess", 1, true))
    local pf = s["mu-portfolio-common"].template.Resources
    assert.are.equal("IAM", pf.PortfolioPrincipal.Properties.PrincipalType)
    assert.are.same({ ["Fn::ImportValue"] = { ["Fn::Sub"] = "${CatalogGroupArn}" } },
      pf.PortfolioPrincipal.Properties.PrincipalARN)
    assert.are.equal("mu-iam-portfolio-common-CatalogGroupArn", s["mu-portfolio-common"].parameters.CatalogGroupArn)
    assert.are.equal("lumu", pf.Portfolio.Properties.ProviderName)
  end)

  it("constrains launches to the launch role, after the product joins the portfolio", function()
    local r = by_name(SEED_DESCS)["mu-product-spring-boot-pipeline"].template.Resources
    assert.are.equal("PortfolioProduct", r.LaunchConstraint.DependsOn)
    assert.are.same({ ["Fn::ImportValue"] = { ["Fn::Sub"] = "${CatalogRoleArn}" } }, r.LaunchConstraint.Properties.RoleArn)
    assert.are.same({ Ref = "Product" }, r.PortfolioProduct.Properties.ProductId)
    assert.are.equal("spring-boot-pipeline", r.Product.Properties.Name)
  end)

  it("scopes the launch role to what pipeline products create", function()
    local role = by_name(SEED_DESCS)["mu-iam-portfolio-common"].template.Resources.CatalogLaunchRole
    assert.are.equal("servicecatalog.amazonaws.com",
      role.Properties.AssumeRolePolicyDocument.Statement[1].Principal.Service)
    local st = {}
    for _, s in ipairs(role.Properties.Policies[1].PolicyDocument.Statement) do st[s.Sid] = s end
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Namespace}/pipeline/*" },
      st.PipelineRoles.Resource)
    assert.are.same({ "codebuild.amazonaws.com", "codepipeline.amazonaws.com", "events.amazonaws.com" },
      st.PassPipelineRoles.Condition.StringEquals["iam:PassedToService"])
    for _, s in pairs(st) do
      for _, a in ipairs(s.Action) do
        assert.is_nil(a:match("^iam:%*"))
        if a:match("^iam:") then assert.truthy(s.Sid == "PipelineRoles" or s.Sid == "PassPipelineRoles", a) end
      end
      if s.Resource == "*" then
        assert.truthy(s.Sid == "TemplateChecks" or s.Sid == "CreateKeys", s.Sid)
      end
    end
    -- the pipeline roles of every version live under that path
    local v = json.decode(by_name(SEED_DESCS)["mu-product-basic-pipeline"].assets[1].body)
    assert.are.same({ ["Fn::Sub"] = "/${Namespace}/pipeline/" }, v.Resources.CodePipelineRole.Properties.Path)
  end)

  it("keeps the template bucket private and TLS-only", function()
    local r = by_name(SEED_DESCS)["mu-bucket-servicecatalog"].template
    local b = r.Resources.CatalogBucket.Properties
    assert.is_true(b.PublicAccessBlockConfiguration.BlockPublicPolicy)
    assert.are.equal("Deny", r.Resources.CatalogBucketPolicy.Properties.PolicyDocument.Statement[1].Effect)
    assert.are.same({ ["Fn::Sub"] = "${AWS::StackName}-Bucket" }, r.Outputs.Bucket.Export.Name)
  end)

  it("returns nothing without a catalog, and no products without pipelines", function()
    assert.are.same({}, assert(gen(load("service:\n  name: x\n"))))
    local d = assert(gen(load("catalog:\n  iamUsers: []\n")))
    assert.are.equal(3, #d)
    assert.is_nil(d[2].template.Resources.CatalogUsers)
    assert_clean(d)
  end)

  it("follows the namespace", function()
    local d = assert(gen(load("namespace: acme\ncatalog:\n  pipelines:\n    - name: p\n      versions:\n"
      .. "        v1:\n          source:\n            provider: CodeCommit\n")))
    assert.are.equal("acme-product-p", d[4].name)
    local v = json.decode(d[4].assets[1].body)
    assert.are.same({ "acme" }, v.Parameters.Namespace.AllowedValues)
    assert.is_nil(v.Parameters.ConnectionArn)
    assert_clean(d)
    local d2 = assert(gen(load("catalog:\n  pipelines: []\n"), { namespace = "other" }))
    assert.are.equal("other-portfolio-common", d2[3].name)
  end)

  it("loads mu's catalog example", function()
    local d = assert(gen(load(read(SHARED .. "/corpus/mu-examples/catalog/mu.yml"))))
    assert.are.equal(5, #d)
    assert_clean(d)
  end)

  it("reports a version whose stages are all disabled by its path", function()
    local m = load("catalog:\n  pipelines:\n    - name: p\n      versions:\n        v1:\n          build:\n"
      .. "            disabled: true\n          acceptance:\n            disabled: true\n          production:\n"
      .. "            disabled: true\n")
    local d, err = gen(m)
    assert.is_nil(d)
    assert.matches("catalog.pipelines[1].versions.v1: every stage is disabled", err, 1, true)
  end)

  it("reports a catalog pipeline without versions", function()
    local m = load("catalog:\n  pipelines:\n    - name: empty\n")
    local d, err = gen(m)
    assert.is_nil(d)
    assert.matches("has no versions", err, 1, true)
  end)

  it("uses a Secrets Manager reference for token-based versions", function()
    local m = load("catalog:\n  pipelines:\n    - name: p\n      versions:\n        v1:\n          source:\n"
      .. "            provider: GitHub\n")
    m.catalog.pipelines[1].versions.v1.source.tokenSecret = "team/github"
    local d = assert(gen(m))
    local v = json.decode(d[4].assets[1].body)
    local src = v.Resources.Pipeline.Properties.Stages[1].Actions[1]
    assert.are.equal("{{resolve:secretsmanager:team/github}}", src.Configuration.OAuthToken)
    assert_clean(d)
  end)

  it("sorts versions naturally", function()
    assert.are.same({ "v1", "v2", "v9", "v10", "v10a", "v11" },
      catalog.sort_versions({ v10 = 1, v2 = 1, v11 = 1, v1 = 1, v10a = 1, v9 = 1 }))
    assert.are.same({ "1.2", "1.10", "beta" }, catalog.sort_versions({ beta = 1, ["1.10"] = 1, ["1.2"] = 1 }))
    assert.are.same({}, catalog.sort_versions(nil))
  end)

  it("raises on misuse", function()
    assert.has_error(function() catalog.stacks(nil) end)
    assert.has_error(function() catalog.stacks({}, "ctx") end)
  end)

  it("yields parseable YAML for version templates too", function()
    local d = by_name(SEED_DESCS)["mu-product-basic-pipeline"]
    local v = json.decode(d.assets[1].body)
    local again = assert(yaml.load(yaml.dump(v)))
    assert.are.same(#problems_of(again), 0)
  end)
end)
