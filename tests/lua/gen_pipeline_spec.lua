-- Specs of lumu.gen.pipeline and lumu.gen.buildspec: the pipeline IAM and
-- pipeline stacks, checked with lumu.cfn (t:check and the registry schemas in
-- $LUMU_SHARED/cfn, default ../shared from the repository root).
local cfn = require "lumu.cfn"
local config = require "lumu.config"
local json = require "lumu.json"
local yaml = require "lumu.yaml"
local pipeline = require "lumu.gen.pipeline"
local buildspec = require "lumu.gen.buildspec"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIX = here .. "/../fixtures/gen/pipeline"
local SHARED = os.getenv("LUMU_SHARED")
if not SHARED or SHARED == "" then SHARED = here .. "/../../../shared" end
do
  local f = io.open(SHARED .. "/cfn/types.tsv", "rb")
  if not f then
    error("gen_pipeline_spec: " .. SHARED .. "/cfn/types.tsv not found: ../shared (next to the repository, "
      .. "or $LUMU_SHARED) is missing; CI always has it.", 0)
  end
  f:close()
end
local checker = assert(cfn.schema.open(SHARED .. "/cfn"))
local CTX = { version = "0.1.0" }

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- lumu's pipeline keys the config model may not know yet: moved aside for
-- the loader and put back on the model afterwards.
local EXTRA = {
  { "source", "tokenSecret" }, { "source", "connectionArn" }, { "muSha256" },
  { "build", "buildspec" }, { "acceptance", "buildspec" }, { "production", "buildspec" },
  { "production", "image" }, { "production", "type" }, { "production", "computeType" },
}

local function pipelines_of(doc, model)
  local pairs_ = {}
  local i = 0
  if type(doc.service) == "table" then
    i = i + 1
    if doc.service.pipeline then pairs_[#pairs_ + 1] = { doc.service.pipeline, function(m) return m.services[1].pipeline end } end
  end
  for _, s in ipairs(doc.services or {}) do
    i = i + 1
    local n = i
    if s.pipeline then pairs_[#pairs_ + 1] = { s.pipeline, function(m) return m.services[n].pipeline end } end
  end
  for pi, cp in ipairs((doc.catalog and doc.catalog.pipelines) or {}) do
    for v, vc in pairs(cp.versions or {}) do
      pairs_[#pairs_ + 1] = { vc, function(m) return m.catalog.pipelines[pi].versions[v] end }
    end
  end
  return pairs_
end

local function load(text, opts)
  opts = opts or {}
  opts.getenv = opts.getenv or function() return nil end
  opts.dirname = opts.dirname or "svc"
  local m, problems = config.load_string(text, opts)
  if m then return m end
  local doc = assert(yaml.load(text))
  local saved = {}
  for _, pr in ipairs(pipelines_of(doc)) do
    local keep = {}
    for _, path in ipairs(EXTRA) do
      local t = pr[1]
      for j = 1, #path - 1 do t = type(t) == "table" and t[path[j]] or nil end
      if type(t) == "table" and t[path[#path]] ~= nil then
        keep[#keep + 1] = { path, t[path[#path]] }
        t[path[#path]] = nil
      end
    end
    saved[#saved + 1] = { pr[2], keep }
  end
  m, problems = config.load_string(yaml.dump(doc), opts)
  if not m then
    local lines = {}
    for _, p in ipairs(problems) do lines[#lines + 1] = config.format_error(p) end
    error("config: " .. table.concat(lines, "\n"), 2)
  end
  for _, s in ipairs(saved) do
    local rec = s[1](m)
    for _, kv in ipairs(s[2]) do
      local t = rec
      for j = 1, #kv[1] - 1 do t = t[kv[1][j]] end
      t[kv[1][#kv[1]]] = kv[2]
    end
  end
  return m
end

local function load_file(name, opts)
  return load(read(FIX .. "/" .. name), opts)
end

local function gen(model, ctx)
  local c = {}
  for k, v in pairs(CTX) do c[k] = v end
  for k, v in pairs(ctx or {}) do c[k] = v end
  return pipeline.stacks(model, c)
end

local function problems_of(tpl)
  local p = cfn.check(tpl)
  for _, x in ipairs(checker:check_template(tpl)) do p[#p + 1] = x end
  return p
end

local function assert_clean(descs)
  for _, d in ipairs(descs) do
    if d.template then
      local p = problems_of(d.template)
      if #p > 0 then error(d.name .. ":\n" .. cfn.format(p), 2) end
    end
  end
end

local function stage(tpl, name)
  for _, s in ipairs(tpl.Resources.Pipeline.Properties.Stages) do
    if s.Name == name then return s end
  end
end

local function action(st, name)
  for _, a in ipairs(st.Actions) do
    if a.Name == name then return a end
  end
end

local function statement(tpl, role, sid)
  local r = tpl.Resources[role]
  if not r then return nil end
  for _, s in ipairs(r.Properties.Policies[1].PolicyDocument.Statement) do
    if s.Sid == sid then return s end
  end
end

local function env_var(project, name)
  for _, v in ipairs(project.Properties.Environment.EnvironmentVariables) do
    if v.Name == name then return v.Value end
  end
end

-- every string in a value
local function strings(v, out)
  out = out or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" then
    for k, x in pairs(v) do
      if type(k) == "string" then out[#out + 1] = k end
      strings(x, out)
    end
  end
  return out
end

local function no_secrets(d)
  for _, s in ipairs(strings({ d.template, d.parameters })) do
    for _, bad in ipairs({ "ghp_", "gho_", "github_pat_", "AKIA", "BEGIN RSA", "BEGIN PRIVATE" }) do
      if s:find(bad, 1, true) then error(d.name .. ": secret-looking value " .. s, 2) end
    end
  end
  for _, r in pairs((d.template and d.template.Resources) or {}) do
    if r.Type == "AWS::CodePipeline::Pipeline" then
      for _, st in ipairs(r.Properties.Stages) do
        for _, a in ipairs(st.Actions) do
          local tok = a.Configuration and a.Configuration.OAuthToken
          if tok ~= nil then
            local ok = (type(tok) == "string" and tok:match("^{{resolve:secretsmanager:[^}]+}}$"))
              or (type(tok) == "table" and tok.Ref and d.template.Parameters[tok.Ref].NoEcho == true
                and d.template.Parameters[tok.Ref].Default == nil)
            if not ok then error(d.name .. ": OAuthToken is neither a dynamic reference nor a NoEcho parameter", 2) end
          end
        end
      end
    end
  end
  if d.parameters then
    for _, k in ipairs(d.secret_parameters or {}) do
      if d.parameters[k] ~= nil then error(d.name .. ": secret parameter " .. k .. " has a value", 2) end
    end
  end
end

local function matrix_yaml(provider, build, acpt, prod, notify)
  local repo = ({ GitHub = "acme/web", CodeCommit = "web", S3 = "bucket/path/web.zip" })[provider]
  local lines = {
    "environments:", "  - name: acceptance", "  - name: production",
    "service:", "  name: web", "  pipeline:",
    "    source:", "      provider: " .. provider, "      repo: " .. repo,
    "    build:", "      disabled: " .. tostring(not build),
    "    acceptance:", "      disabled: " .. tostring(not acpt),
    "    production:", "      disabled: " .. tostring(not prod),
  }
  if notify then
    lines[#lines + 1] = "    notify: [a@example.com, b@example.com]"
  end
  return table.concat(lines, "\n") .. "\n"
end

describe("lumu.gen.pipeline seed basic", function()
  local model = load(read(SHARED .. "/corpus/seed-examples/basic/mu.yml"), { dirname = "basic" })
  local descs = assert(gen(model))

  it("produces the pipeline IAM and pipeline stacks", function()
    local got = {}
    for _, d in ipairs(descs) do got[#got + 1] = { d.name, d.kind } end
    assert.are.same({ { "mu-iam-pipeline-basic", "iam" }, { "mu-pipeline-basic", "pipeline" } }, got)
    assert.are.same({ "mu-iam-common" }, descs[1].depends)
    assert.are.same({ "mu-iam-pipeline-basic", "mu-iam-common", "mu-iam-environment-acceptance",
      "mu-iam-service-basic-acceptance", "mu-iam-environment-production", "mu-iam-service-basic-production" },
      descs[2].depends)
    assert.are.same({ "CAPABILITY_IAM" }, descs[1].capabilities)
    assert.are.equal("pipeline", descs[2].tags["mu:type"])
    assert.are.equal("basic", descs[2].tags["mu:service"])
  end)

  it("passes t:check and the registry schemas with zero problems", function()
    assert_clean(descs)
    local cfg = assert(pipeline.settings(model.services[1].pipeline, { namespace = "mu", service = "basic",
      version = "0.1.0" }))
    assert.are.same({}, (pipeline.iam_template(cfg):check()))
    assert.are.same({}, (pipeline.pipeline_template(cfg, { split = true }):check()))
    assert.are.same({}, (pipeline.product_template(cfg):check()))
  end)

  it("matches the golden templates and parameters", function()
    for _, d in ipairs(descs) do
      local text = json.encode({ template = d.template, parameters = d.parameters, depends = d.depends },
        { pretty = true })
      local path = FIX .. "/golden/" .. d.name .. ".json"
      if os.getenv("LUMU_UPDATE_GOLDEN") == "1" then
        local f = assert(io.open(path, "wb"))
        f:write(text)
        f:close()
      end
      assert.are.equal(read(path), text)
    end
  end)

  it("is deterministic", function()
    local again = assert(gen(load(read(SHARED .. "/corpus/seed-examples/basic/mu.yml"), { dirname = "basic" })))
    for i = 1, #descs do
      assert.are.equal(json.encode(descs[i].template), json.encode(again[i].template))
    end
  end)

  it("uses a GitHub CodeStar connection by default, created when no ARN is given", function()
    local iam, pl = descs[1].template, descs[2].template
    assert.are.equal("CreateConnection", iam.Resources.GitHubConnection.Condition)
    assert.are.equal("mu-basic", iam.Resources.GitHubConnection.Properties.ConnectionName)
    assert.are.equal("", iam.Parameters.ConnectionArn.Default)
    assert.is_nil(descs[1].parameters.ConnectionArn)
    local src = action(stage(pl, "Source"), "Source")
    assert.are.equal("CodeStarSourceConnection", src.ActionTypeId.Provider)
    assert.are.same({ Ref = "SourceRepo" }, src.Configuration.FullRepositoryId)
    assert.are.equal("cplee/aftp-mu", descs[2].parameters.SourceRepo)
    assert.are.equal("master", descs[2].parameters.SourceBranch)
    assert.are.equal("mu-iam-pipeline-basic-ConnectionArn", descs[2].parameters.ConnectionArn)
    assert.are.equal("V2", pl.Resources.Pipeline.Properties.PipelineType)
  end)

  it("has Source, Build, Acceptance and Production stages, approval before the production deploy", function()
    local pl = descs[2].template
    local names = {}
    for _, s in ipairs(pl.Resources.Pipeline.Properties.Stages) do names[#names + 1] = s.Name end
    assert.are.same({ "Source", "Build", "Acceptance", "Production" }, names)
    local prod = stage(pl, "Production")
    local approve, deploy, test = action(prod, "Approve"), action(prod, "Deploy"), action(prod, "Test")
    assert.are.equal("Approval", approve.ActionTypeId.Category)
    assert.are.equal("Manual", approve.ActionTypeId.Provider)
    assert.is_true(approve.RunOrder < deploy.RunOrder and deploy.RunOrder < test.RunOrder)
    assert.are.same({ Ref = "PipelineNotificationTopic" }, approve.Configuration.NotificationArn)
    assert.are.equal("DeployProductionOutput", test.InputArtifacts[1].Name)
  end)

  it("defaults images to aws/codebuild/standard:7.0 instead of mu's retired ubuntu-base", function()
    local pl = descs[2].template
    for _, id in ipairs({ "ArtifactProject", "ImageProject", "DeployAcceptanceProject", "TestAcceptanceProject",
      "DeployProductionProject", "TestProductionProject" }) do
      assert.are.equal("aws/codebuild/standard:7.0", pl.Resources[id].Properties.Environment.Image)
    end
    assert.is_true(pl.Resources.ImageProject.Properties.Environment.PrivilegedMode)
    assert.are.same({}, descs[2].warnings)
  end)

  it("encrypts artifacts with a rotating key in a locked-down bucket", function()
    local iam = descs[1].template.Resources
    assert.is_true(iam.PipelineKey.Properties.EnableKeyRotation)
    local b = iam.ArtifactBucket.Properties
    assert.are.same({ ["Fn::GetAtt"] = { "PipelineKey", "Arn" } },
      b.BucketEncryption.ServerSideEncryptionConfiguration[1].ServerSideEncryptionByDefault.KMSMasterKeyID)
    for _, k in ipairs({ "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets" }) do
      assert.is_true(b.PublicAccessBlockConfiguration[k])
    end
    local deny = iam.ArtifactBucketPolicy.Properties.PolicyDocument.Statement[1]
    assert.are.equal("Deny", deny.Effect)
    assert.are.same({ Bool = { ["aws:SecureTransport"] = "false" } }, deny.Condition)
    assert.are.equal("Retain", iam.ArtifactBucket.DeletionPolicy)
    assert.are.equal("Retain", iam.PipelineKey.DeletionPolicy)
    local pl = descs[2].template.Resources.Pipeline.Properties
    assert.are.equal("KMS", pl.ArtifactStore.EncryptionKey.Type)
    assert.are.equal("mu-iam-pipeline-basic-PipelineBucket", descs[2].parameters.PipelineBucket)
  end)

  it("exports every ARN the pipeline stack imports", function()
    local outs = descs[1].template.Outputs
    for param, value in pairs(descs[2].parameters) do
      local out = value:match("^mu%-iam%-pipeline%-basic%-(.+)$")
      if out then
        assert.truthy(outs[out], out)
        assert.are.same({ ["Fn::Sub"] = "${AWS::StackName}-" .. out }, outs[out].Export.Name)
        assert.are.equal(out, param)
      end
    end
    assert.truthy(outs.CodeBuildCDAcptRoleArn)
    assert.truthy(outs.CodeBuildCDProdRoleArn)
  end)

  it("limits deploy roles to the CloudFormation service role and their own environment", function()
    local iam = descs[1].template
    local s = statement(iam, "CodeBuildCDAcptRole", "DeployWithServiceRoleOnly")
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/"
      .. "${Namespace}-*-${AcptEnv}/*" }, s.Resource)
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Namespace}-"
      .. "cloudformation-common-${AWS::Region}" }, s.Condition.StringEquals["cloudformation:RoleArn"])
    local pass = statement(iam, "CodeBuildCDAcptRole", "PassServiceRoleToCloudFormation")
    assert.are.same({ "iam:PassRole" }, pass.Action)
    assert.are.equal("cloudformation.amazonaws.com", pass.Condition.StringEquals["iam:PassedToService"])
    local deny = statement(iam, "CodeBuildCDProdRole", "NeverIamStacks")
    assert.are.equal("Deny", deny.Effect)
    assert.is_nil(statement(iam, "CodeBuildCDAcptRole", "AssumeDeployRole"))
    -- no role may do anything with IAM except passing the service role
    for _, r in pairs(iam.Resources) do
      for _, pol in ipairs((r.Type == "AWS::IAM::Role" and r.Properties.Policies) or {}) do
        for _, st in ipairs(pol.PolicyDocument.Statement) do
          for _, a in ipairs(type(st.Action) == "table" and st.Action or { st.Action }) do
            if a:match("^iam:") then assert.are.equal("iam:PassRole", a) end
          end
        end
      end
    end
  end)

  it("runs lumu in the deploy actions and passes env.json on to the tests", function()
    local pl = descs[2].template.Resources
    local p = pl.DeployAcceptanceProject
    assert.are.same({ Ref = "AcptEnv" }, env_var(p, "LUMU_ENV"))
    assert.are.equal("true", env_var(p, "LUMU_DISABLE_IAM"))
    assert.are.equal("https://github.com/lumu-dev/lumu/releases/download/v0.1.0/lumu-linux-amd64",
      env_var(p, "LUMU_DOWNLOAD_URL"))
    assert.is_nil(env_var(p, "LUMU_SHA256"))
    local spec = assert(yaml.load(p.Properties.Source.BuildSpec))
    local build = spec.phases.build.commands[1]
    for _, c in ipairs({ 'lumu env up "$LUMU_ENV" --yes', 'lumu db up "$LUMU_ENV" --yes',
      'lumu svc deploy "$LUMU_ENV" --yes', "> env.json", "> lumu-env.sh" }) do
      assert.truthy(build:find(c, 1, true), c)
    end
    assert.are.same({ "**/*" }, spec.artifacts.files)
    assert.are.equal("buildspec-test.yml", pl.TestAcceptanceProject.Properties.Source.BuildSpec)
    assert.are.equal("buildspec-prod.yml", pl.TestProductionProject.Properties.Source.BuildSpec)
    assert.are.equal("buildspec.yml", pl.ArtifactProject.Properties.Source.BuildSpec)
  end)

  it("notifies failures and successes through the encrypted topic", function()
    local r = descs[2].template.Resources
    assert.are.same({ "FAILED", "SUCCEEDED" }, r.PipelineStateRule.Properties.EventPattern.detail.state)
    assert.are.same({ Ref = "PipelineNotificationTopic" }, r.PipelineStateRule.Properties.Targets[1].Arn)
    local pol = r.PipelineNotificationTopicPolicy.Properties.PolicyDocument.Statement[1]
    assert.are.same({ ["Fn::GetAtt"] = { "PipelineStateRule", "Arn" } }, pol.Condition.ArnEquals["aws:SourceArn"])
    assert.truthy(r.PipelineNotificationTopic.Properties.KmsMasterKeyId)
    assert.is_nil(r.NotifySubscription1)
  end)
end)

describe("lumu.gen.pipeline matrix", function()
  local combos = {}
  for _, b in ipairs({ true, false }) do
    for _, a in ipairs({ true, false }) do
      for _, p in ipairs({ true, false }) do
        if b or a or p then combos[#combos + 1] = { b, a, p } end
      end
    end
  end
  for _, provider in ipairs({ "GitHub", "CodeCommit", "S3" }) do
    for _, c in ipairs(combos) do
      local label = string.format("%s build=%s acceptance=%s production=%s", provider, tostring(c[1]),
        tostring(c[2]), tostring(c[3]))
      it(label .. " (notify on/off) is clean and has exactly the enabled stages", function()
        for _, notify in ipairs({ false, true }) do
          local descs = assert(gen(load(matrix_yaml(provider, c[1], c[2], c[3], notify))))
          assert.are.equal(2, #descs)
          assert_clean(descs)
          for _, d in ipairs(descs) do no_secrets(d) end
          local pl = descs[2].template
          local want = { "Source" }
          if c[1] then want[#want + 1] = "Build" end
          if c[2] then want[#want + 1] = "Acceptance" end
          if c[3] then want[#want + 1] = "Production" end
          local got = {}
          for _, s in ipairs(pl.Resources.Pipeline.Properties.Stages) do got[#got + 1] = s.Name end
          assert.are.same(want, got)
          assert.are.equal(c[1], pl.Resources.ArtifactProject ~= nil)
          assert.are.equal(c[1], descs[1].template.Resources.CodeBuildCIRole ~= nil)
          assert.are.equal(c[2], pl.Resources.DeployAcceptanceProject ~= nil)
          assert.are.equal(c[2], descs[1].template.Resources.CodeBuildCDAcptRole ~= nil)
          assert.are.equal(c[2], pl.Parameters.AcptEnv ~= nil)
          assert.are.equal(c[3], pl.Resources.DeployProductionProject ~= nil)
          assert.are.equal(c[3], descs[1].template.Resources.CodeBuildCDProdRole ~= nil)
          assert.are.equal(notify, pl.Resources.NotifySubscription2 ~= nil)
          assert.is_nil(pl.Resources.NotifySubscription3)
          local approve = c[3] and action(stage(pl, "Production"), "Approve")
          assert.are.equal(c[3], approve ~= nil and approve ~= false)
        end
      end)
    end
  end
end)

describe("lumu.gen.pipeline sources", function()
  it("CodeCommit: event rule, events role and repository permissions", function()
    local descs = assert(gen(load_file("codecommit.yml")))
    assert_clean(descs)
    local iam, pl = descs[1].template, descs[2].template
    local src = action(stage(pl, "Source"), "Source")
    assert.are.equal("CodeCommit", src.ActionTypeId.Provider)
    assert.are.equal("false", src.Configuration.PollForSourceChanges)
    assert.are.same({ Ref = "SourceBranch" }, pl.Resources.SourceChangeRule.Properties.EventPattern.detail.referenceName[1])
    assert.are.equal("main", descs[2].parameters.SourceBranch)
    assert.truthy(iam.Resources.SourceEventRole)
    assert.truthy(statement(iam, "CodePipelineRole", "SourceRepository"))
    assert.is_nil(iam.Resources.GitHubConnection)
    assert.are.equal("mu-iam-pipeline-orders-SourceEventRoleArn", descs[2].parameters.SourceEventRoleArn)
  end)

  it("CodeCommit: keeps custom images, compute types and timeouts", function()
    local descs = assert(gen(load_file("codecommit.yml")))
    local r = descs[2].template.Resources
    assert.are.equal("aws/codebuild/amazonlinux2-x86_64-standard:5.0", r.ArtifactProject.Properties.Environment.Image)
    assert.are.equal("BUILD_GENERAL1_MEDIUM", r.ArtifactProject.Properties.Environment.ComputeType)
    assert.are.equal(45, r.ArtifactProject.Properties.TimeoutInMinutes)
    assert.are.equal("aws/codebuild/standard:6.0", r.TestAcceptanceProject.Properties.Environment.Image)
    assert.are.equal("aws/codebuild/standard:6.0", r.TestProductionProject.Properties.Environment.Image)
    assert.are.equal(20, r.DeployAcceptanceProject.Properties.TimeoutInMinutes)
    assert.are.equal(60, r.TestProductionProject.Properties.TimeoutInMinutes)
    assert.are.equal(1, #(function() local n = {} for k in pairs(r) do if k:match("^NotifySubscription") then n[#n + 1] = k end end return n end)())
    assert.are.equal("ops@example.com", r.NotifySubscription1.Properties.Endpoint)
  end)

  it("S3: bucket/key source, object-created rule, acceptance disabled", function()
    local descs = assert(gen(load_file("s3.yml")))
    assert_clean(descs)
    local pl = descs[2].template
    assert.are.equal("my-source-bucket", descs[2].parameters.SourceBucket)
    assert.are.equal("releases/batch.zip", descs[2].parameters.SourceObjectKey)
    assert.is_nil(descs[2].parameters.SourceRepo)
    local src = action(stage(pl, "Source"), "Source")
    assert.are.equal("S3", src.ActionTypeId.Provider)
    assert.are.equal("Object Created", pl.Resources.SourceChangeRule.Properties.EventPattern["detail-type"][1])
    assert.is_nil(stage(pl, "Acceptance"))
    assert.are.equal("SourceOutput", action(stage(pl, "Production"), "Deploy").InputArtifacts[1].Name)
    assert.truthy(env_var(pl.Resources.DeployProductionProject, "LUMU_ENV"))
    assert.truthy(action(stage(pl, "Build"), "Image").Configuration.EnvironmentVariables:find("VersionId", 1, true))
  end)

  it("S3: a repo without a key is an error naming the key", function()
    local m = load_file("s3.yml")
    m.services[1].pipeline.source.repo = "justabucket"
    local d, err = gen(m)
    assert.is_nil(d)
    assert.matches("service.pipeline.source.repo: an S3 source is bucket/key", err, 1, true)
  end)

  it("GitHub token in Secrets Manager: OAuth action with a dynamic reference only", function()
    local descs = assert(gen(load_file("token-secret.yml")))
    assert_clean(descs)
    for _, d in ipairs(descs) do no_secrets(d) end
    local src = action(stage(descs[2].template, "Source"), "Source")
    assert.are.equal("ThirdParty", src.ActionTypeId.Owner)
    assert.are.equal("{{resolve:secretsmanager:lumu/github-token}}", src.Configuration.OAuthToken)
    assert.is_nil(descs[1].template.Resources.GitHubConnection)
    assert.is_nil(descs[1].template.Parameters.ConnectionArn)
  end)

  it("refuses a token value given as tokenSecret", function()
    local m = load_file("token-secret.yml")
    m.services[1].pipeline.source.tokenSecret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
    local d, err = gen(m)
    assert.is_nil(d)
    assert.matches("tokenSecret: this looks like a token itself", err, 1, true)
  end)

  it("GitHub token as mu's NoEcho parameter: no default, never among the parameter values", function()
    local m = load_file("token-secret.yml")
    m.services[1].pipeline.source.tokenSecret = nil
    local descs = assert(gen(m, { github_token = "parameter" }))
    assert_clean(descs)
    local p = descs[2].template.Parameters.GitHubToken
    assert.is_true(p.NoEcho)
    assert.is_nil(p.Default)
    assert.are.same({ "GitHubToken" }, descs[2].secret_parameters)
    assert.is_nil(descs[2].parameters.GitHubToken)
    for _, d in ipairs(descs) do no_secrets(d) end
  end)

  it("takes the repo, branch and provider from git when the config has none", function()
    local m = load("service:\n  name: g\n  pipeline:\n    notify: [x@example.com]\n")
    local d = assert(gen(m, { git = { provider = "CodeCommit", repo = "g-repo", branch = "develop" } }))
    assert.are.equal("g-repo", d[2].parameters.SourceRepo)
    assert.are.equal("develop", d[2].parameters.SourceBranch)
    assert.are.equal("CodeCommit", action(stage(d[2].template, "Source"), "Source").ActionTypeId.Provider)
    -- the config wins over git
    local m2 = load("service:\n  name: g\n  pipeline:\n    source:\n      repo: a/b\n      branch: rel\n")
    local d2 = assert(gen(m2, { git = { provider = "GitHub", repo = "x/y", branch = "main" } }))
    assert.are.equal("a/b", d2[2].parameters.SourceRepo)
    assert.are.equal("rel", d2[2].parameters.SourceBranch)
  end)

  it("rejects hostile branch and repo values", function()
    for _, bad in ipairs({ "main\nrm -rf /", "a b", "x\0y", ("b"):rep(300), "refs/heads/*", "\27[31m" }) do
      local m = load("service:\n  name: h\n  pipeline:\n    source:\n      repo: a/b\n")
      m.services[1].pipeline.source.branch = bad
      local d, err = gen(m)
      assert.is_nil(d)
      assert.matches("service.pipeline.source.branch: invalid branch name", err, 1, true)
    end
    local m = load("service:\n  name: h\n  pipeline:\n    source:\n      repo: a/b\n")
    m.services[1].pipeline.source.repo = ("r"):rep(100000) .. "/x"
    local d, err = gen(m)
    assert.is_nil(d)
    assert.matches("source.repo: expected at most 512 characters", err, 1, true)
    m.services[1].pipeline.source.repo = "a/b\255\254"
    d, err = gen(m)
    assert.is_nil(d)
    assert.matches("expected owner/repo", err, 1, true)
  end)

  it("reports a missing repo by its key", function()
    local d, err = gen(load("service:\n  name: g\n  pipeline:\n    notify: []\n"))
    assert.is_nil(d)
    assert.are.equal("service.pipeline.source.repo: not set and no git remote was detected", err)
  end)

  it("validates GitHub and connection ARNs", function()
    local d, err = gen(load("service:\n  name: g\n  pipeline:\n    source:\n      repo: not-a-slug\n"))
    assert.is_nil(d)
    assert.matches("expected owner/repo", err, 1, true)
    local m = load_file("cross-account.yml")
    m.services[1].pipeline.source.connectionArn = "arn:aws:s3:::nope"
    d, err = gen(m)
    assert.is_nil(d)
    assert.matches("source.connectionArn: expected a CodeStar connection ARN", err, 1, true)
  end)

  it("hashes connection names longer than CodeStar's 32 characters", function()
    local name = "a-very-long-service-name-for-connections"
    local d = assert(gen(load("service:\n  name: " .. name .. "\n  pipeline:\n    source:\n      repo: a/b\n")))
    local cn = d[1].template.Resources.GitHubConnection.Properties.ConnectionName
    assert.is_true(#cn <= 32)
    assert.matches("^mu%-a%-very%-long%-service%-%x%x%x%x%x%x%x%x$", cn)
    assert_clean(d)
  end)
end)

describe("lumu.gen.pipeline roles and resources", function()
  it("cross-account: the deploy assumes roles.mu; roles.cloudFormation is the service role", function()
    local descs = assert(gen(load_file("cross-account.yml")))
    assert_clean(descs)
    local iam, pl = descs[1].template, descs[2].template
    local a = statement(iam, "CodeBuildCDAcptRole", "AssumeDeployRole")
    assert.are.same({ "sts:AssumeRole" }, a.Action)
    assert.are.equal("arn:aws:iam::222222222222:role/lumu-deploy-acceptance", a.Resource)
    assert.are.equal("arn:aws:iam::333333333333:role/lumu-deploy-production",
      statement(iam, "CodeBuildCDProdRole", "AssumeDeployRole").Resource)
    assert.are.equal("arn:aws:iam::111111111111:role/acme-cfn",
      statement(iam, "CodeBuildCDAcptRole", "PassServiceRoleToCloudFormation").Resource)
    local p = pl.Resources.DeployAcceptanceProject
    assert.are.equal("arn:aws:iam::222222222222:role/lumu-deploy-acceptance", env_var(p, "LUMU_DEPLOY_ROLE_ARN"))
    assert.are.equal("arn:aws:iam::111111111111:role/acme-cfn", env_var(p, "LUMU_CFN_ROLE_ARN"))
    local spec = yaml.load(p.Properties.Source.BuildSpec)
    assert.truthy(spec.phases.build.commands[1]:find("credential_source = EcsContainer", 1, true))
    assert.is_nil(env_var(pl.Resources.TestAcceptanceProject, "LUMU_DEPLOY_ROLE_ARN"))
  end)

  it("downloads lumu from muBaseurl/muVersion and verifies muSha256", function()
    local descs = assert(gen(load_file("cross-account.yml")))
    local p = descs[2].template.Resources.DeployProductionProject
    assert.are.equal("https://downloads.example.com/lumu/v1.2.3/lumu-linux-amd64", env_var(p, "LUMU_DOWNLOAD_URL"))
    assert.are.equal(("0123456789abcdef"):rep(4), env_var(p, "LUMU_SHA256"))
    local install = yaml.load(p.Properties.Source.BuildSpec).phases.install.commands[1]
    assert.truthy(install:find('sha256sum -c -', 1, true))
    assert.truthy(install:find("set -euo pipefail", 1, true))
    assert.are.equal("arn:aws:codestar-connections:us-east-1:111111111111:connection/0c4b0f7e-1a2b-4c3d-9e8f-001122334455",
      descs[1].parameters.ConnectionArn)
  end)

  it("rejects a malformed muSha256 and a non-URL muBaseurl", function()
    local m = load_file("cross-account.yml")
    m.services[1].pipeline.muSha256 = "abc"
    local d, err = gen(m)
    assert.is_nil(d)
    assert.matches("muSha256: expected 64 hex digits", err, 1, true)
    m = load_file("cross-account.yml")
    m.services[1].pipeline.muBaseurl = "ftp://x"
    d, err = gen(m)
    assert.is_nil(d)
    assert.matches("muBaseurl: expected an https:// or s3:// URL", err, 1, true)
  end)

  it("maps mu's release URL to lumu's and warns when it was written", function()
    local m = load("service:\n  name: w\n  pipeline:\n    source:\n      repo: a/b\n"
      .. "    muBaseurl: https://github.com/stelligent/mu/releases/download\n    build:\n"
      .. "      image: aws/codebuild/ubuntu-base:14.04\n")
    local d = assert(gen(m))
    assert.are.equal("https://github.com/lumu-dev/lumu/releases/download/v0.1.0/lumu-linux-amd64",
      env_var(d[2].template.Resources.ImageProject, "LUMU_DOWNLOAD_URL"))
    assert.are.equal(2, #d[2].warnings)
    assert.matches("muBaseurl: mu's release URL", d[2].warnings[2], 1, true)
    assert.matches("build.image: aws/codebuild/ubuntu-base:14.04 is retired", d[2].warnings[1], 1, true)
  end)

  it("uses a Windows image for WINDOWS_CONTAINER builds", function()
    local d = assert(gen(load("service:\n  name: w\n  pipeline:\n    source:\n      repo: a/b\n"
      .. "    build:\n      type: WINDOWS_CONTAINER\n      computeType: BUILD_GENERAL1_MEDIUM\n")))
    local e = d[2].template.Resources.ArtifactProject.Properties.Environment
    assert.are.equal("aws/codebuild/windows-base:2019-3.0", e.Image)
    assert.are.equal("WINDOWS_CONTAINER", e.Type)
    assert.are.equal("LINUX_CONTAINER", d[2].template.Resources.ImageProject.Properties.Environment.Type)
  end)

  it("uses a given key, bucket and pipeline role instead of creating them", function()
    local descs = assert(gen(load_file("given-resources.yml")))
    assert_clean(descs)
    local iam, pl = descs[1].template, descs[2].template
    assert.is_nil(iam.Resources.PipelineKey)
    assert.is_nil(iam.Resources.ArtifactBucket)
    assert.is_nil(iam.Resources.CodePipelineRole)
    assert.are.equal("arn:aws:iam::111111111111:role/pipeline", pl.Resources.Pipeline.Properties.RoleArn)
    assert.are.equal("acme-artifacts", pl.Resources.Pipeline.Properties.ArtifactStore.Location)
    assert.are.equal("arn:aws:kms:us-east-1:111111111111:key/0c4b0f7e-1a2b-4c3d-9e8f-001122334455",
      pl.Resources.Pipeline.Properties.ArtifactStore.EncryptionKey.Id)
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:s3:::acme-artifacts/*" },
      statement(iam, "CodeBuildTestRole", "ArtifactObjects").Resource)
    assert.is_nil(descs[2].parameters.PipelineBucket)
  end)

  it("disableIAM: one pipeline stack with the given roles; sources poll", function()
    local descs = assert(gen(load_file("disable-iam.yml")))
    assert.are.equal(1, #descs)
    assert.are.equal("mu-pipeline-legacy", descs[1].name)
    assert_clean(descs)
    local r = descs[1].template.Resources
    assert.truthy(r.PipelineKey)
    assert.truthy(r.ArtifactBucket)
    assert.is_nil(r.CodePipelineRole)
    assert.is_nil(r.SourceChangeRule)
    assert.are.equal("true", action(stage(descs[1].template, "Source"), "Source").Configuration.PollForSourceChanges)
    assert.are.equal("arn:aws:iam::111111111111:role/cd-acpt", r.TestAcceptanceProject.Properties.ServiceRole)
  end)

  it("disableIAM without the role ARNs names every missing key", function()
    local m = load_file("disable-iam.yml")
    m.services[1].pipeline.roles.build = nil
    m.services[1].pipeline.production.roles.codeBuild = nil
    local d, err = gen(m)
    assert.is_nil(d)
    assert.are.equal("service.pipeline: disableIAM is set, so these role ARNs must be given: "
      .. "service.pipeline.roles.build, service.pipeline.production.roles.codeBuild", err)
  end)

  it("a CI role that can push only the service's image and repo stack", function()
    local descs = assert(gen(load_file("codecommit.yml")))
    local iam = descs[1].template
    assert.are.same({ ["Fn::Sub"] = "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/"
      .. "${Namespace}-${ServiceName}" }, statement(iam, "CodeBuildCIRole", "PushServiceImage").Resource)
    assert.are.equal("*", statement(iam, "CodeBuildCIRole", "EcrLogin").Resource)
    local test = iam.Resources.CodeBuildTestRole.Properties.Policies[1].PolicyDocument.Statement
    for _, s in ipairs(test) do
      for _, a in ipairs(s.Action) do
        assert.truthy(a:match("^logs:") or a:match("^s3:") or a:match("^kms:") or a:match("^codebuild:"), a)
      end
    end
  end)
end)

describe("lumu.gen.pipeline errors and edges", function()
  it("refuses a pipeline with every stage disabled", function()
    local d, err = gen(load(matrix_yaml("GitHub", false, false, false, false)))
    assert.is_nil(d)
    assert.are.equal("service.pipeline: every stage is disabled (build, acceptance, production); a pipeline needs one", err)
  end)

  it("refuses pipeline names over 100 characters", function()
    local m = load("namespace: " .. ("n"):rep(60) .. "\nservice:\n  name: " .. ("s"):rep(50)
      .. "\n  pipeline:\n    source:\n      repo: a/b\n")
    local d, err = gen(m)
    assert.is_nil(d)
    assert.matches("is longer than 100 characters", err, 1, true)
  end)

  it("generates stacks for every service that has a pipeline, and none otherwise", function()
    local m = load("services:\n  - name: a\n    pipeline:\n      source:\n        repo: o/a\n"
      .. "  - name: b\n  - name: c\n    pipeline:\n      source:\n        repo: o/c\n")
    local d = assert(gen(m, { namespace = "team" }))
    local names = {}
    for _, x in ipairs(d) do names[#names + 1] = x.name end
    assert.are.same({ "team-iam-pipeline-a", "team-pipeline-a", "team-iam-pipeline-c", "team-pipeline-c" }, names)
    assert.are.same({}, assert(gen(load("service:\n  name: nopipe\n"))))
  end)

  it("prefixes buildspec paths with the config directory", function()
    local d = assert(gen(load_file("codecommit.yml"), { basedir = "services/orders" }))
    local r = d[2].template.Resources
    assert.are.equal("services/orders/buildspec.yml", r.ArtifactProject.Properties.Source.BuildSpec)
    assert.are.equal("services/orders/buildspec-test.yml", r.TestAcceptanceProject.Properties.Source.BuildSpec)
    assert.are.equal("services/orders", env_var(r.DeployAcceptanceProject, "LUMU_BASEDIR"))
    local bad, err = gen(load_file("codecommit.yml"), { basedir = "../escape" })
    assert.is_nil(bad)
    assert.matches("basedir: expected a path relative", err, 1, true)
  end)

  it("honours per-stage buildspec names", function()
    local m = load_file("codecommit.yml")
    m.services[1].pipeline.acceptance.buildspec = "ci/acceptance.yml"
    m.services[1].pipeline.production.buildspec = "ci/prod.yml"
    local d = assert(gen(m))
    local r = d[2].template.Resources
    assert.are.equal("ci/acceptance.yml", r.TestAcceptanceProject.Properties.Source.BuildSpec)
    assert.truthy(r.DeployProductionProject.Properties.Source.BuildSpec:find("if [ ! -f ci/prod.yml ]", 1, true))
    m.services[1].pipeline.build.buildspec = "/etc/passwd"
    local bad, err = gen(m)
    assert.is_nil(bad)
    assert.matches("build.buildspec: expected a relative file name", err, 1, true)
  end)

  it("mu's pipeline-notification example subscribes both addresses", function()
    local m = load(read(SHARED .. "/corpus/mu-examples/pipeline-notification/mu.yml"), { dirname = "notify" })
    local d = assert(gen(m, { git = { repo = "acme/notify" } }))
    assert_clean(d)
    local r = d[2].template.Resources
    assert.are.equal("joe@getmu.io", r.NotifySubscription1.Properties.Endpoint)
    assert.are.equal("bob@getmu.io", r.NotifySubscription2.Properties.Endpoint)
    assert.are.equal("email", r.NotifySubscription1.Properties.Protocol)
  end)

  it("mu's basic example matches the seed", function()
    local a = assert(gen(load(read(SHARED .. "/corpus/mu-examples/basic/mu.yml"), { dirname = "basic" })))
    local b = assert(gen(load(read(SHARED .. "/corpus/seed-examples/basic/mu.yml"), { dirname = "basic" })))
    assert.are.equal(json.encode(b[2].template), json.encode(a[2].template))
  end)

  it("stays under CloudFormation's limits with many notify addresses", function()
    local emails = {}
    for i = 1, 150 do emails[#emails + 1] = "u" .. i .. "@example.com" end
    local m = load("service:\n  name: n\n  pipeline:\n    source:\n      repo: a/b\n    notify: ["
      .. table.concat(emails, ", ") .. "]\n")
    local d = assert(gen(m))
    assert_clean(d)
    assert.truthy(d[2].template.Resources.NotifySubscription150)
  end)

  it("raises on misuse", function()
    assert.has_error(function() pipeline.stacks("model") end)
    assert.has_error(function() pipeline.stacks({}, 5) end)
    assert.has_error(function() pipeline.settings(nil, {}) end)
    assert.has_error(function() buildspec.download_url("", "1") end)
    assert.has_error(function() buildspec.deploy({ test_buildspec = "../x" }) end)
    assert.has_error(function() buildspec.render({ phases = { build = {} } }) end)
  end)
end)

describe("lumu.gen.pipeline catalog-provision", function()
  it("describes the product version to provision instead of stacks", function()
    local m = load_file("catalog-service.yml")
    local d = assert(gen(m))
    assert.are.equal(1, #d)
    local p = d[1]
    assert.are.equal("catalog-provision", p.kind)
    assert.are.equal("mu-billing", p.name)
    assert.are.equal("standard", p.product)
    assert.are.equal("v1", p.version)
    assert.are.equal("mu-product-standard", p.product_stack)
    assert.are.same({ "mu-product-standard" }, p.depends)
    assert.is_nil(p.template)
    assert.are.same({ Namespace = "mu", ServiceName = "billing", SourceRepo = "acme/billing", SourceBranch = "main",
      ConnectionArn = "arn:aws:codestar-connections:us-east-1:111111111111:connection/0c4b0f7e-1a2b-4c3d-9e8f-001122334455",
      AcptEnv = nil, ProdEnv = nil }, p.parameters)
  end)

  it("keeps only the parameters the version's template declares", function()
    local m = load_file("catalog-service.yml")
    m.services[1].pipeline.catalog.version = "v2"
    local d = assert(gen(m))
    assert.is_nil(d[1].parameters.ConnectionArn)
    assert.are.equal("acme/billing", d[1].parameters.SourceRepo)
  end)

  it("names unknown products, versions and missing parameters", function()
    local m = load_file("catalog-service.yml")
    m.services[1].pipeline.catalog.version = "v9"
    local d, err = gen(m)
    assert.is_nil(d)
    assert.are.equal("service.pipeline.catalog.version: catalog pipeline 'standard' has no version 'v9' "
      .. "(versions: v1, v2)", err)
    m.services[1].pipeline.catalog = { name = "nope", version = "v1" }
    d, err = gen(m)
    assert.is_nil(d)
    assert.matches("no catalog pipeline 'nope'", err, 1, true)
    m = load_file("catalog-service.yml")
    m.services[1].pipeline.source.connectionArn = nil
    d, err = gen(m)
    assert.is_nil(d)
    assert.are.equal("service.pipeline: product standard v1 needs parameter ConnectionArn "
      .. "(set pipeline.source.connectionArn)", err)
  end)

  it("passes the values through when the catalog lives elsewhere", function()
    local m = load("service:\n  name: x\n  pipeline:\n    catalog:\n      name: shared\n      version: v3\n"
      .. "    source:\n      repo: o/x\n")
    local d = assert(gen(m))
    assert.are.same({ Namespace = "mu", ServiceName = "x", SourceRepo = "o/x", SourceBranch = "master" },
      d[1].parameters)
  end)
end)

describe("the build stage", function()
  it("checks the templates with lumu synth (which runs nag) before pushing the image", function()
    local bs = require("lumu.gen.buildspec").image()
    local check = bs:find("lumu synth -o", 1, true)
    local push = bs:find("lumu svc push", 1, true)
    assert.is_truthy(check, bs)
    assert.is_truthy(push, bs)
    assert.is_true(check < push)
  end)
end)
